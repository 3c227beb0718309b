//! `vault show --clip`: a line of an entry on the clipboard, cleared after
//! `$PASSWORD_STORE_CLIP_TIME` seconds (45), as pass does it: with `wl-copy` under Wayland, else
//! `xclip` under X11 (selection `$PASSWORD_STORE_X_SELECTION`, `clipboard`), the clipboard's
//! earlier content put back afterwards unless someone copied something else meanwhile, and an
//! earlier `--clip` still waiting ended first (so it cannot put back this run's secret).
//!
//! The waiting is done by a detached `vault clip-restore` process (its own session, so closing
//! the terminal does not stop it), which gets the secret and the earlier content on standard
//! input, holds them in zeroizing memory, and nothing else: no file, no argument, no variable.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use zeroize::Zeroizing;

use crate::ui;

/// How this session's clipboard is reached.
struct Tool {
    copy: Vec<String>,
    paste: Vec<String>,
    /// Which display, for the name of the waiting process's pid file.
    display: String,
}

impl Tool {
    /// wl-copy/wl-paste under Wayland, else xclip under X11, as pass chooses.
    fn find() -> anyhow::Result<Tool> {
        let has = |program: &str| {
            std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
        };
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(display) = var("WAYLAND_DISPLAY").filter(|_| has("wl-copy")) {
            return Ok(Tool {
                copy: vec!["wl-copy".into()],
                paste: vec!["wl-paste".into(), "-n".into()],
                display: format!("wayland-{display}"),
            });
        }
        if let Some(display) = var("DISPLAY").filter(|_| has("xclip")) {
            let selection = var("PASSWORD_STORE_X_SELECTION").unwrap_or_else(|| "clipboard".into());
            return Ok(Tool {
                copy: vec!["xclip".into(), "-selection".into(), selection.clone()],
                paste: vec!["xclip".into(), "-o".into(), "-selection".into(), selection],
                display,
            });
        }
        anyhow::bail!(
            "no clipboard: --clip needs a Wayland display with wl-copy, or an X11 display with \
             xclip (as pass does); print the entry instead (`vault show ENTRY --line 1`)"
        )
    }

    /// What the clipboard holds now (empty when it holds nothing, or nothing readable).
    fn paste(&self) -> Zeroizing<Vec<u8>> {
        let out = Command::new(&self.paste[0])
            .args(&self.paste[1..])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        Zeroizing::new(out.map(|o| o.stdout).unwrap_or_default())
    }

    /// Puts `bytes` on the clipboard. The copying program stays behind to serve it: it gets no
    /// handle of ours but its standard input.
    fn copy(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let mut child = Command::new(&self.copy[0])
            .args(&self.copy[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("running {}", self.copy[0]))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(bytes)
            .context("writing to the clipboard")?;
        let status = child.wait().context("waiting for the clipboard")?;
        if !status.success() {
            anyhow::bail!(
                "{} could not copy to the clipboard ({status})",
                self.copy[0]
            );
        }
        Ok(())
    }

    /// Where the waiting process of this display writes its pid: `$XDG_RUNTIME_DIR`, else
    /// `~/.cache/vault` (never a shared folder such as /tmp, where anyone could plant a link).
    fn pid_file(&self) -> anyhow::Result<PathBuf> {
        let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => {
                let home = std::env::var_os("HOME")
                    .context("neither $XDG_RUNTIME_DIR nor $HOME is set")?;
                let d = PathBuf::from(home).join(".cache").join("vault");
                std::fs::create_dir_all(&d).with_context(|| format!("making {}", d.display()))?;
                d
            }
        };
        let uid = rustix::process::getuid().as_raw();
        let display: String = self
            .display
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Ok(dir.join(format!("vault-clip-{uid}-{display}.pid")))
    }
}

/// The clipboard time: `$PASSWORD_STORE_CLIP_TIME` seconds, else 45 (pass's).
fn clip_time() -> anyhow::Result<u64> {
    match std::env::var("PASSWORD_STORE_CLIP_TIME") {
        Err(_) => Ok(45),
        Ok(v) => v.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "PASSWORD_STORE_CLIP_TIME={:?} is not a number of seconds",
                vault::text::escape(&v)
            )
        }),
    }
}

/// Copies `secret` (one line, without its newline) to the clipboard and leaves a detached
/// `vault clip-restore` to clear it after the clipboard time. Returns the time, in seconds.
pub fn copy(secret: &[u8]) -> anyhow::Result<u64> {
    let tool = Tool::find()?;
    let seconds = clip_time()?;
    end_earlier_wait(&tool);
    let before = tool.paste();
    tool.copy(secret)?;
    let exe = std::env::current_exe().context("finding vault's own program")?;
    let mut cmd = Command::new(exe);
    cmd.arg("clip-restore")
        .arg(seconds.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            rustix::process::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            // Nobody would clear it: put back what was there now.
            let _ = tool.copy(&before);
            return Err(e).context("starting the clipboard clearer; the clipboard was put back");
        }
    };
    let mut input = child.stdin.take().expect("piped");
    for field in [secret, &before[..]] {
        input.write_all(&(field.len() as u64).to_be_bytes())?;
        input.write_all(field)?;
    }
    drop(input);
    note_pid(&tool.pid_file()?, child.id()).context("noting the clipboard clearer's pid")?;
    Ok(seconds)
}

/// Writes `pid` to `file`, never through a symbolic link, readable by its owner only.
fn note_pid(file: &std::path::Path, pid: u32) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        file,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    std::fs::File::from(fd).write_all(pid.to_string().as_bytes())
}

/// Ends the waiting `vault clip-restore` of an earlier `--clip` on this display, if any, and
/// waits (up to 2 s) until it has put the clipboard back: else it would later put back the
/// secret this run is about to replace.
fn end_earlier_wait(tool: &Tool) {
    let Ok(pid) = tool
        .pid_file()
        .and_then(|f| Ok(std::fs::read_to_string(f)?))
    else {
        return;
    };
    let Ok(pid) = pid.trim().parse::<i32>() else {
        return;
    };
    // Only our own clearer: the pid may have been reused since.
    let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.windows(12).any(|w| w == b"clip-restore"));
    let Some(pid) = rustix::process::Pid::from_raw(pid).filter(|_| ours) else {
        return;
    };
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{}", pid.as_raw_nonzero())).exists()
        && start.elapsed() < Duration::from_secs(2)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `vault clip-restore SECONDS` (hidden): reads the secret and the clipboard's earlier content
/// from standard input, waits SECONDS (or until SIGTERM), then, if the clipboard still holds
/// the secret, puts the earlier content back.
pub fn restore(seconds: u64) -> anyhow::Result<()> {
    let mut input = Zeroizing::new(Vec::new());
    std::io::stdin().lock().read_to_end(&mut input)?;
    let mut fields = Vec::new();
    let mut rest: &[u8] = &input;
    for _ in 0..2 {
        let (len, tail) = rest.split_at_checked(8).context("short input")?;
        let len = usize::try_from(u64::from_be_bytes(len.try_into()?))?;
        let (field, tail) = tail.split_at_checked(len).context("short input")?;
        fields.push(field);
        rest = tail;
    }
    let (secret, before) = (fields[0], fields[1]);
    ui::begin_change(); // SIGTERM ends the wait instead of the process
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline && !ui::interrupted() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let tool = Tool::find()?;
    if tool.paste().as_slice() == secret {
        // What was there before may itself be this secret (an earlier wait cut short): then
        // the clipboard is emptied instead.
        let back = if before == secret { &[][..] } else { before };
        tool.copy(back)?;
    }
    Ok(())
}
