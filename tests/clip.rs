//! `vault show --clip` with a real X server (Xvfb) and a real clipboard tool (xclip), as pass
//! uses them: the line is on the clipboard, and the earlier content is back after the clip time;
//! an earlier wait is ended so it can never put back a secret.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// An Xvfb server on a display it picks itself; stopped when dropped.
struct X {
    server: Child,
    display: String,
}

impl X {
    fn start() -> X {
        let mut server = Command::new("Xvfb")
            .args(["-displayfd", "1", "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (scripts/setup.sh installs it)");
        let mut line = String::new();
        BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        X {
            server,
            display: format!(":{}", line.trim()),
        }
    }

    fn xclip(&self, args: &[&str], input: Option<&str>) -> String {
        let mut child = Command::new("xclip")
            .args(args)
            .env("DISPLAY", &self.display)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(if input.is_some() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if let Some(text) = input {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn clipboard(&self) -> String {
        self.xclip(&["-o", "-selection", "clipboard"], None)
    }

    fn set_clipboard(&self, text: &str) {
        self.xclip(&["-selection", "clipboard"], Some(text));
    }

    /// Waits (up to 10 s) until the clipboard holds `text`.
    #[track_caller]
    fn wait_for(&self, text: &str) {
        let start = Instant::now();
        while self.clipboard() != text {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the clipboard holds {:?}, not {text:?}",
                self.clipboard()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for X {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[test]
fn clip_copies_the_line_and_puts_the_clipboard_back_after_the_clip_time() {
    let t = adopted_team();
    let (lab, store, alice) = (&t.lab, &t.store, &t.alice);
    let x = X::start();
    let runtime = lab.path("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    let display = Path::new(&x.display);
    let clip = |args: &[&str], seconds: &str| {
        let mut all = vec!["--identity", alice.secret_str(), "show", "--clip"];
        all.extend_from_slice(args);
        lab.vault_input(
            store,
            alice.gpg.home(),
            (
                &all,
                &[
                    ("DISPLAY", display),
                    ("XDG_RUNTIME_DIR", &runtime),
                    ("PASSWORD_STORE_CLIP_TIME", Path::new(seconds)),
                ],
            ),
            "",
        )
    };
    x.set_clipboard("what was there before");
    x.wait_for("what was there before");

    let run = clip(&["bank"], "2");
    assert_eq!(
        run.ok().stdout,
        "Copied bank to clipboard. Will clear in 2 seconds.\n"
    );
    assert!(!run.stdout.contains("correct horse"), "never printed");
    assert_eq!(x.clipboard(), "correct horse battery staple");
    x.wait_for("what was there before");

    // A second --clip while the first still waits: the first wait is ended (putting back what
    // was there), so when the second one ends, it is that, not the first secret, that returns.
    clip(&["bank"], "60").ok();
    assert_eq!(x.clipboard(), "correct horse battery staple");
    clip(&["email/work", "--line", "2"], "2").ok();
    assert_eq!(x.clipboard(), "user: alice@coop.example");
    x.wait_for("what was there before");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(x.clipboard(), "what was there before");

    // Someone copies something else meanwhile: it is left alone.
    clip(&["bank"], "1").ok();
    x.set_clipboard("copied meanwhile");
    std::thread::sleep(Duration::from_millis(1800));
    assert_eq!(x.clipboard(), "copied meanwhile");

    // No display: a clear error, nothing copied.
    let all = ["--identity", alice.secret_str(), "show", "--clip", "bank"];
    lab.vault_input(store, alice.gpg.home(), (&all, &[]), "")
        .fails()
        .stderr_has("no clipboard");
}
