//! `vault sync` over ssh, as a team's GitLab or Gitea remote is reached: an sshd on 127.0.0.1
//! started by this test (Debian's openssh-server, installed by `scripts/setup.sh`), git's own ssh
//! client with a key of the test's, and clones of their own. Proves that vault's fetch and push
//! go through the user's git and ssh configuration (`GIT_SSH_COMMAND` here).

mod common;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// An sshd for this test only, stopped when dropped.
struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(file: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(file)
        .status()
        .expect("ssh-keygen (openssh-client) is installed");
    assert!(st.success());
}

/// Starts sshd on a free port of 127.0.0.1, accepting only a key made here; returns it and the
/// `GIT_SSH_COMMAND` that logs in with that key.
fn start_sshd(dir: &Path) -> (Sshd, String) {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(
        sshd.exists(),
        "this test needs Debian's openssh-server (scripts/setup.sh installs it)"
    );
    fs::create_dir_all(dir).unwrap();
    keygen(&dir.join("host_key"));
    keygen(&dir.join("user_key"));
    fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
    // sshd's privilege separation folder (created at boot on a normal system).
    if !Path::new("/run/sshd").exists() {
        fs::create_dir_all("/run/sshd")
            .expect("sshd needs /run/sshd: run the tests as root, or create it");
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let d = dir.display();
    let config = dir.join("sshd_config");
    fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPermitRootLogin prohibit-password\nAllowUsers {user}\n\
             PidFile {d}/sshd.pid\n"
        ),
    )
    .unwrap();
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Sshd { child, port };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("sshd exited at once: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "sshd did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ssh = format!(
        "ssh -i {d}/user_key -o IdentitiesOnly=yes -o BatchMode=yes \
         -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    );
    server.port = port;
    (server, format!("{ssh}#{user}"))
}

#[test]
fn sync_works_over_ssh() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob, carol) = (&team.alice, &team.bob, &team.carol);
    let (sshd, ssh_and_user) = start_sshd(&lab.path("ssh"));
    let (ssh, user) = ssh_and_user.split_once('#').unwrap();
    // Every git in this test (and the git vault runs) reaches the remote with this ssh.
    std::env::set_var("GIT_SSH_COMMAND", ssh);

    let bare = lab.path("remote.git");
    alice_clone.git_ok(&[
        "clone",
        "-q",
        "--bare",
        alice_clone.path_str(),
        bare.to_str().unwrap(),
    ]);
    let url = format!("ssh://{user}@127.0.0.1:{}{}", sshd.port, bare.display());
    alice_clone.git_ok(&["remote", "add", "origin", &url]);
    alice_clone.git_ok(&["fetch", "-q", "origin"]);
    alice_clone.git_ok(&["branch", "-q", "--set-upstream-to=origin/main"]);
    let clone = |name: &str| {
        let store = lab.store(name);
        lab.store("")
            .git_ok(&["clone", "-q", &url, store.path_str()]);
        store
    };
    let bob_clone = clone("bob");

    // alice onboards carol: fetched and pushed over ssh.
    lab.vault_as(alice_clone, alice, &carol.add_member_with(&["--yes"]))
        .ok()
        .stdout_has("Pushed to origin/main.");
    // bob (plain pass, stale) adds an entry and pushes over ssh; alice's sync repairs it.
    lab.pass(&bob_clone, bob, &["insert", "-m", "bob/new"], "from bob\n")
        .ok();
    bob_clone.git_ok(&["pull", "-q", "--rebase"]);
    bob_clone.git_ok(&["push", "-q"]);
    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .ok()
        .stdout_has("From origin/main: 1 new commit.")
        .stdout_has("Repaired 1 entry")
        .stdout_has("Pushed ");
    let fresh = clone("fresh");
    lab.assert_reads(&fresh, carol, &[("bob/new", "from bob\n")]);

    // A failing remote is git's message and changes nothing.
    let head = alice_clone.head();
    drop(sshd);
    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .fails()
        .stderr_has("git fetch")
        .stderr_has("nothing was changed");
    assert_eq!(alice_clone.head(), head);
}
