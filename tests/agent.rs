//! Decrypting through the member's own gpg-agent (no --identity): unprotected keys, protected keys
//! with a preset or loopback passphrase, a locked key with --yes, and an operator with no key.

mod common;

use std::path::Path;

use common::*;

/// A person whose secret key is protected by `passphrase` (GnuPG, ed25519 + cv25519).
fn protected_person(name: &str, passphrase: &str) -> Person {
    let gpg = Gpg::new();
    let email = format!("{name}@coop.example");
    let uid = format!("{name} <{email}>");
    let lb = ["--pinentry-mode", "loopback", "--passphrase", passphrase];
    let mut args: Vec<&str> = lb.to_vec();
    args.extend(["--quick-gen-key", &uid, "ed25519", "sign", "never"]);
    gpg.gpg(&args).ok();
    let fpr = gpg.fingerprint(&email);
    let mut args: Vec<&str> = lb.to_vec();
    args.extend(["--quick-add-key", &fpr, "cv25519", "encr", "never"]);
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
