//! Decrypting through the member's own gpg-agent (no --identity): unprotected keys, protected keys
//! with a preset or loopback passphrase, a locked key with --yes, and an operator with no key.

mod common;

use std::path::Path;

use common::*;

/// A person whose secret key is protected by `passphrase` (GnuPG, ed25519 + cv25519).
fn protected_person(name: &str, passphrase: &str) -> Person {
    protected_person_with(name, passphrase, ("ed25519", "cv25519"))
}

/// A person whose secret key is protected by `passphrase`, with `algos`' primary (sign) and
/// encryption subkey.
fn protected_person_with(name: &str, passphrase: &str, algos: (&str, &str)) -> Person {
    let gpg = Gpg::new();
    let email = format!("{name}@coop.example");
    let uid = format!("{name} <{email}>");
    let lb = ["--pinentry-mode", "loopback", "--passphrase", passphrase];
    let mut args: Vec<&str> = lb.to_vec();
    args.extend(["--quick-gen-key", &uid, algos.0, "sign", "never"]);
    gpg.gpg(&args).ok();
    let fpr = gpg.fingerprint(&email);
    let mut args: Vec<&str> = lb.to_vec();
    args.extend(["--quick-add-key", &fpr, algos.1, "encr", "never"]);
    gpg.gpg(&args).ok();
    let public = gpg.scratch().join(format!("{name}.asc"));
    gpg.export_public(&fpr, &public);
    // Let the agent accept preset passphrases, and start it afresh with that setting.
    std::fs::write(
        gpg.home().join("gpg-agent.conf"),
        "allow-loopback-pinentry\nallow-preset-passphrase\n",
    )
    .unwrap();
    kill_agent(gpg.home());
    Person {
        name: name.into(),
        email,
        fpr,
        secret: gpg.scratch().join("no-secret-file"),
        public,
        gpg,
    }
}

fn kill_agent(home: &Path) {
    let _ = std::process::Command::new("gpgconf")
        .args(["--kill", "gpg-agent"])
        .env("GNUPGHOME", home)
        .status();
}

/// Presets the passphrase of every secret key of `who` in their agent.
fn preset(who: &Person, passphrase: &str) {
    let out = who.gpg.gpg([
        "--with-colons",
        "--with-keygrip",
        "--list-secret-keys",
        &who.fpr,
    ]);
    out.ok();
    let _ = who.gpg.gpg(["--list-secret-keys"]); // starts the agent
    for grip in out.stdout.lines().filter(|l| l.starts_with("grp:")) {
        let grip = grip.split(':').nth(9).unwrap();
        let status = std::process::Command::new("/usr/lib/gnupg/gpg-preset-passphrase")
            .args(["--preset", "-P", passphrase, grip])
            .env("GNUPGHOME", who.gpg.home())
            .status()
            .unwrap();
        assert!(status.success(), "gpg-preset-passphrase failed");
    }
}

/// alice's team with dave, whose key is passphrase-protected, as a member of the whole store.
fn team_with_dave() -> (Team, Person) {
    let team = adopted_team();
    let dave = protected_person("dave", "correct horse");
    introduce(&[&team.alice, &team.bob, &team.carol, &dave]);
    team.lab
        .vault_as(&team.store, &team.alice, &dave.add_member_args())
        .ok();
    (team, dave)
}

#[test]
fn an_unprotected_key_in_the_agent_is_the_operator() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    // No --identity: alice's own GnuPG home holds her secret key.
    let out = lab.vault(store, &team.alice, &team.carol.add_member_args());
    out.ok();
    lab.assert_reads(store, &team.carol, ROOT_ENTRIES);
    store.assert_clean();
    let out = lab.vault(store, &team.alice, &["--yes", "remove-member", "bob"]);
    out.ok();
    lab.assert_cannot_read(store, &team.bob, ROOT_ENTRIES);
    lab.assert_reads(store, &team.alice, ROOT_ENTRIES);
}

#[test]
fn a_protected_key_with_a_preset_passphrase() {
    let (team, dave) = team_with_dave();
    preset(&dave, "correct horse");
    let out = team
        .lab
        .vault(&team.store, &dave, &["--yes", "remove-member", "bob"]);
    out.ok().stdout_has("Removed bob");
    team.lab
        .assert_cannot_read(&team.store, &team.bob, ROOT_ENTRIES);
    team.lab.assert_reads(&team.store, &dave, ROOT_ENTRIES);
}

#[test]
fn a_protected_key_with_a_passphrase_through_loopback() {
    let (team, dave) = team_with_dave();
    let pp = dave.gpg.scratch().join("passphrase");
    std::fs::write(&pp, "correct horse\n").unwrap();
    let out = team.lab.vault(
        &team.store,
        &dave,
        &[
            "--yes",
            "--passphrase-file",
            pp.to_str().unwrap(),
            "remove-member",
            "bob",
        ],
    );
    out.ok();
    team.lab
        .assert_cannot_read(&team.store, &team.bob, ROOT_ENTRIES);
}

#[test]
fn a_locked_key_with_yes_fails_fast_and_changes_nothing() {
    let (team, dave) = team_with_dave();
    let before = team.store.snapshot();
    let started = std::time::Instant::now();
    let out = team
        .lab
        .vault(&team.store, &dave, &["--yes", "remove-member", "bob"]);
    out.fails().stderr_has("gpg-agent").stderr_has("passphrase");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "vault must not wait for a passphrase it cannot get"
    );
    assert_same(
        &before,
        &team.store.snapshot(),
        "after the agent could not decrypt",
    );
}

#[test]
fn an_operator_with_no_members_key_is_told_which_keys_were_looked_for() {
    let team = adopted_team();
    let stranger = Person::generate("stranger", KeyKind::Ed25519);
    let before = team.store.snapshot();
    let out = team
        .lab
        .vault(&team.store, &stranger, &["--yes", "remove-member", "bob"]);
    out.fails()
        .stderr_has("gpg-agent")
        .stderr_has(&team.alice.fpr)
        .stderr_has(&team.bob.fpr);
    assert_same(
        &before,
        &team.store.snapshot(),
        "after failing to find the operator",
    );
}

/// More entries than gpg-agent gets requests at once (vault keeps several in flight on its one
/// connection): entries whose recipients are hidden (`gpg --throw-keyids`), so that the agent
/// is asked with the operator's key for each PKESK in turn, are re-encrypted with the rest; and
/// when some entries are not encrypted to the operator, every one is named, after the others
/// were unlocked on the same connection, and nothing changes.
#[test]
fn many_entries_in_flight_through_the_agent_hidden_recipients_and_unreadable_ones() {
    let team = adopted_team(); // root: alice, bob; ops/: alice only
    let (lab, store, alice, bob) = (&team.lab, &team.store, &team.alice, &team.bob);
    let names: Vec<String> = (0..40).map(|i| format!("bulk/entry{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        // Every fourth with hidden recipients, in both orders: in half of them bob's PKESK
        // comes first, and the agent's answer for it is not the session key.
        let extra: &[&str] = if i % 4 == 0 { &["--throw-keyids"] } else { &[] };
        let to = match i % 8 {
            0 => [bob.fpr.as_str(), alice.fpr.as_str()],
            _ => [alice.fpr.as_str(), bob.fpr.as_str()],
        };
        let plain = format!("pw-{i}\n");
        alice
            .gpg
            .encrypt_to(plain.as_bytes(), &store.entry_file(name), &to, extra);
    }
    git_commit_all(store, "Add bulk entries");
    let out = lab.vault(store, alice, &team.carol.add_member_args());
    out.ok();
    let expected: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), format!("pw-{i}\n")))
        .collect();
    let expected: Vec<(&str, &str)> = expected
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_str()))
        .collect();
    lab.assert_reads(store, &team.carol, &expected);
    lab.assert_reads(store, &team.carol, ROOT_ENTRIES);
    lab.assert_pass_init_reencrypts_nothing(store, alice, "");

    // Three entries only bob can read, among the others.
    let bobs = ["bulk/bob-a", "bulk/entry17x", "zz/bob-z"];
    for name in bobs {
        bob.gpg
            .encrypt_to(b"bob-only\n", &store.entry_file(name), &[&bob.fpr], &[]);
    }
    // And two with hidden recipients, in both orders: where bob's PKESK comes first, the
    // agent's answer for it does not unwrap, which is not the agent failing (the entries are
    // listed, not a passphrase hint).
    for (name, to) in [
        ("bulk/hidden-1", [&bob.fpr, &alice.fpr]),
        ("bulk/hidden-2", [&alice.fpr, &bob.fpr]),
    ] {
        let to = to.map(String::as_str);
        alice.gpg.encrypt_to(
            b"hidden\n",
            &store.entry_file(name),
            &to,
            &["--throw-keyids"],
        );
    }
    git_commit_all(store, "Add bob's entries");
    let before = store.snapshot();
    let out = lab.vault(store, alice, &["--yes", "remove-member", "bob"]);
    out.fails();
    for name in bobs {
        out.stderr_has(&format!("{name} (readable by bob)"));
    }
    assert_same(
        &before,
        &store.snapshot(),
        "after entries the agent could not decrypt",
    );
}

/// gpg-agent's process id, asked of the agent of `home` (started if it is not running).
fn agent_pid(home: &Path) -> u32 {
    let out = std::process::Command::new("gpg-connect-agent")
        .args(["GETINFO pid", "/bye"])
        .env("GNUPGHOME", home)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("D "))
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid from gpg-agent: {text}"))
}

/// gpg-agent dying in the middle of a change (killed, or crashed) while vault waits for its
/// answer: vault stops with an error that names the agent, instead of waiting for answers that
/// will never come, and the store is as it was. With a passphrase through loopback one request
/// is in flight at a time, so the agent has read all of it when it dies and the connection
/// ends cleanly (with requests still unread, the end is a reset, an error either way).
#[test]
fn an_agent_that_dies_in_the_middle_of_a_change_stops_it_and_changes_nothing() {
    let lab = Lab::new();
    // RSA-3072: milliseconds of the agent's time per entry, so the change lasts seconds.
    let alice = protected_person_with("alice", "correct horse", ("rsa3072", "rsa3072"));
    let bob = Person::generate("bob", KeyKind::Ed25519);
    introduce(&[&alice, &bob]);
    let store = lab.store("store");
    let names: Vec<String> = (0..300).map(|i| format!("bulk/entry{i:03}")).collect();
    for name in &names {
        alice.gpg.encrypt_to(
            b"pw\n",
            &store.entry_file(name),
            &[&alice.fpr, &bob.fpr],
            &[],
        );
    }
    std::fs::write(
        store.file(".gpg-id"),
        format!("{}\n{}\n", alice.fpr, bob.fpr),
    )
    .unwrap();
    store.git(&["init", "-q"]).ok();
    git_commit_all(&store, "A store of 300 entries");
    let pp = alice.gpg.scratch().join("passphrase");
    std::fs::write(&pp, "correct horse\n").unwrap();
    let with_pp = |args: &[&str]| {
        let mut all = vec!["--yes", "--passphrase-file", pp.to_str().unwrap()];
        all.extend_from_slice(args);
        all.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let init = with_pp(&["init"]);
    let init: Vec<&str> = init.iter().map(String::as_str).collect();
    lab.vault(&store, &alice, &init).ok();
    let before = store.snapshot();
    let pid = agent_pid(alice.gpg.home());
    let remove = with_pp(&["remove-member", "bob"]);
    let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
    let mut child = lab
        .clean_vault(alice.gpg.home(), Path::new(store.path_str()), &remove)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the change ended before gpg-agent was killed: make it longer"
    );
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "could not kill gpg-agent {pid}");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("vault still runs a minute after gpg-agent died");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !status.success(),
        "vault succeeded without its agent: {stderr}"
    );
    assert!(
        stderr.contains("gpg-agent: the connection to it broke during the change")
            && stderr.contains("so nothing was changed; run the command again"),
        "{stderr}"
    );
    assert_same(&before, &store.snapshot(), "after gpg-agent died");
}
