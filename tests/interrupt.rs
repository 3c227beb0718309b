//! Ctrl-C (SIGINT) during a membership change: the change is undone before its commit point, or
//! completes after it; either way the store is consistent and the message says which.

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;

const ENTRIES: usize = 400;

/// A store adopted by vault with `ENTRIES` entries for alice and bob, encrypted by one gpg
/// process (`--encrypt-files`), as pass would write them.
fn big_store() -> Team {
    let team = adopted_team();
    let dir = team.store.file("bulk");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for i in 0..ENTRIES {
        let f = dir.join(format!("e{i:04}"));
        std::fs::write(&f, format!("secret-{i}\n")).unwrap();
        files.push(f);
    }
    let mut args: Vec<String> = [
        "--yes",
        "--compress-algo",
        "none",
        "-r",
        &team.alice.fpr,
        "-r",
        &team.bob.fpr,
        "--encrypt-files",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
    team.alice.gpg.gpg(&args).ok();
    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    team.store.git_ok(&["add", "-A"]);
    team.store
        .git_ok(&["commit", "-q", "-m", "Add bulk entries"]);
    team
}

#[test]
fn ctrl_c_during_remove_member_leaves_a_consistent_store() {
    let team = big_store();
    let store = &team.store;
    let before = store.head();

    // Learn how long the change takes, on a copy.
    let copy = team.lab.path("copy");
    let status = Command::new("cp")
        .args(["-a", store.path_str(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let timed = Instant::now();
    let mut probe = vault_command(&team, copy.to_str().unwrap());
    assert!(probe.status().unwrap().success());
    let full = timed.elapsed();

    // Interrupt the real run a third of the way in.
    let child = vault_command(&team, store.path_str())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(full / 3);
    // SAFETY: kill sends a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);

    eprintln!(
        "run took {full:?} uninterrupted; interrupted at {:?}: exit {:?}, {stderr}",
        full / 3,
        out.status.code()
    );
    store.assert_clean();
    assert!(
        !store.file(".git/vault-journal").exists(),
        "the journal was left behind"
    );
    let after = store.head();
    if out.status.success() {
        // The signal came after the commit point: the change completed.
        assert_ne!(before, after);
        team.lab
            .assert_cannot_read(store, &team.bob, &[("bulk/e0000", "secret-0\n")]);
    } else {
        // Before it: undone (or not begun), and the message says nothing changed.
        assert!(
            stderr.contains("interrupted") && stderr.contains("nothing was changed"),
            "{stderr}"
        );
        assert_eq!(before, after, "an interrupted change moved HEAD");
        team.lab.assert_reads(
            store,
            &team.bob,
            &[("bulk/e0000", "secret-0\n"), ("bulk/e0399", "secret-399\n")],
        );
    }
    // Either way the next command works on a consistent store.
    team.lab.vault(store, &team.alice, &["members"]).ok();
    // How fast the change ran is the benchmark's business (scripts/bench.sh), not this test's.
}

fn vault_command(team: &Team, store: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vault"));
    c.args([
        "--store",
        store,
        "--identity",
        team.alice.secret_str(),
        "--yes",
        "remove-member",
        "bob",
    ])
    .env_remove("VAULT_IDENTITY")
    .env("HOME", team.lab.home())
    .env("GNUPGHOME", team.alice.gpg.home())
    .stdin(Stdio::null());
    c
}
