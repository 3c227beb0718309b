//! Trust: signed membership changes, `.gpg-id.sig`, the trust anchor and `vault verify`, with the
//! real git, GnuPG and pass.

mod common;

use std::path::Path;

use common::*;

/// Runs a command with HOME and GNUPGHOME set (and the rest of the environment scrubbed of
/// anything that points at the real user).
fn cmd(
    program: &str,
    args: &[&str],
    home: &Path,
    gnupg: &Path,
    extra: &[(&str, &str)],
) -> std::process::Output {
    let mut c = std::process::Command::new(program);
    c.args(args)
        .env_remove("VAULT_IDENTITY")
        .env_remove("PASSWORD_STORE_SIGNING_KEY")
        .env_remove("GIT_AUTHOR_NAME")
        .env_remove("GIT_AUTHOR_EMAIL")
        .env("HOME", home)
        .env("GNUPGHOME", gnupg)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C");
    for (k, v) in extra {
        c.env(k, v);
    }
    c.output().expect("running a command")
}

/// `git log` signature status letters (%G?) of the last `n` commits, as `who`'s GnuPG sees them.
fn signature_status(team: &Team, who: &Person, n: usize) -> Vec<String> {
    let out = cmd(
        "git",
        &[
            "-C",
            team.store.path_str(),
            "log",
            &format!("-{n}"),
            "--format=%G? %s",
        ],
        team.lab.home(),
        who.gpg.home(),
        &[],
    );
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_chain_of_vault_changes_verifies_and_git_accepts_the_signatures() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    lab.vault_as(store, &team.alice, &team.carol.add_member_args())
        .ok();
    lab.vault_as(store, &team.alice, &["--yes", "remove-member", "bob"])
        .ok();
    let v = lab.vault(store, &team.alice, &["verify"]);
    v.ok().stdout_has("Every addition was vouched for");
    // Both of vault's commits carry a signature that GnuPG (through git) calls good.
    for line in signature_status(&team, &team.alice, 2) {
        assert!(
            line.starts_with("G ") || line.starts_with("U "),
            "not a good signature: {line}"
        );
    }
    // The JSON form names the vouched addition.
    let json = lab.vault(store, &team.alice, &["verify", "--json"]);
    json.ok();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["violations"].as_array().unwrap().len(), 0);
}

#[test]
fn a_plain_commit_by_a_non_member_adding_a_key_is_reported_and_blocks_changes() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    // mallory pushes a commit that adds her key to .gpg-id and .public-keys/.
    let mallory = Person::generate("mallory", KeyKind::Ed25519);
    add_by_hand(store, &mallory);
    store.git_ok(&["add", "-A"]);
    store.git_ok(&["commit", "-q", "-m", "Fix typo"]);
    let bad = store.git_ok(&["rev-parse", "--short=10", "HEAD"]);

    let v = lab.vault(store, &team.alice, &["verify"]);
    assert_eq!(v.code, Some(3), "verify must fail:\n{v}");
    v.stdout_has(&bad).stdout_has(&mallory.fpr);
    assert!(v.has_violation(), "{v}");

    // Any re-encryption now refuses to encrypt to mallory, naming the commit; nothing changes.
    let before = store.snapshot();
    let out = lab.vault_as(store, &team.alice, &team.carol.add_member_args());
    out.fails()
        .stderr_has(&mallory.fpr)
        .stderr_has(&bad)
        .stderr_has("vault verify");
    assert_same(&before, &store.snapshot(), "after add-member was refused");
    let out = lab.vault_as(store, &team.alice, &["--yes", "remove-member", "bob"]);
    out.fails().stderr_has(&mallory.fpr);
    assert_same(
        &before,
        &store.snapshot(),
        "after remove-member was refused",
    );
    // mallory never got a PKESK.
    lab.assert_cannot_read(store, &mallory, ROOT_ENTRIES);

    // The recovery override works, and says loudly what it does.
    let out = lab.vault_as(
        store,
        &team.alice,
        &["--yes", "--trust-unverified", "remove-member", "bob"],
    );
    out.ok().stderr_has("WARNING").stderr_has(&mallory.fpr);
    lab.assert_reads(store, &mallory, ROOT_ENTRIES);
}

#[test]
fn a_trusted_member_can_vouch_for_a_hand_added_key() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    // carol's key added by hand, unsigned.
    add_by_hand(store, &team.carol);
    store.git_ok(&["add", "-A"]);
    store.git_ok(&["commit", "-q", "-m", "add carol"]);
    assert_eq!(lab.vault(store, &team.alice, &["verify"]).code, Some(3));
    // alice checks carol's fingerprint and adds her with vault: the signed commit vouches.
    lab.vault_as(store, &team.alice, &team.carol.add_member_args())
        .ok();
    lab.vault(store, &team.alice, &["verify"]).ok();
    lab.assert_reads(store, &team.carol, ROOT_ENTRIES);
}

#[test]
fn a_commit_signed_by_a_removed_member_is_rejected() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    lab.vault_as(store, &team.alice, &["--yes", "remove-member", "bob"])
        .ok();
    // bob, still able to push, signs a commit that puts his key back.
    add_by_hand(store, &team.bob);
    let path = store.path_str();
    let add = cmd(
        "git",
        &["-C", path, "add", "-A"],
        lab.home(),
        team.bob.gpg.home(),
        &[],
    );
    assert!(add.status.success());
    let commit = cmd(
        "git",
        &[
            "-C",
            path,
            "-c",
            &format!("user.signingkey={}", team.bob.fpr),
            "commit",
            "-q",
            "-S",
            "-m",
            "Restore access",
        ],
        lab.home(),
        team.bob.gpg.home(),
        &[],
    );
    assert!(
        commit.status.success(),
        "{}",
        String::from_utf8_lossy(&commit.stderr)
    );
    let status = signature_status(&team, &team.bob, 1);
    assert!(
        status[0].starts_with("G ") || status[0].starts_with("U "),
        "bob's commit is signed: {status:?}"
    );

    let v = lab.vault(store, &team.alice, &["verify"]);
    assert_eq!(v.code, Some(3), "{v}");
    v.stdout_has(&team.bob.fpr);
    lab.vault_as(store, &team.alice, &team.carol.add_member_args())
        .fails()
        .stderr_has(&team.bob.fpr);
}

#[test]
fn pass_signing_keeps_working_after_vault_changes_members() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    let carol = Person::generate("carol", KeyKind::Ed25519);
    introduce(&[&alice, &bob, &carol]);
    let store = lab.store("store");
    let path = store.path.clone();
    let env: [(&str, &str); 2] = [
        ("PASSWORD_STORE_DIR", path.to_str().unwrap()),
        ("PASSWORD_STORE_SIGNING_KEY", &alice.fpr),
    ];
    let pass =
        |args: &[&str], stdin: &str| pass_signed(&lab, &store, &alice, &alice.fpr, args, stdin);
    assert!(pass(&["init", &alice.fpr, &bob.fpr], "").status.success());
    assert!(pass(&["git", "init"], "").status.success());
    assert!(pass(&["insert", "-m", "servers/web1"], "root-pw\n")
        .status
        .success());
    assert!(store.file(".gpg-id.sig").is_file());

    let vault = |args: &[&str]| {
        let mut all = vec![
            "--store",
            path.to_str().unwrap(),
            "--identity",
            alice.secret_str(),
        ];
        all.extend_from_slice(args);
        cmd(
            env!("CARGO_BIN_EXE_vault"),
            &all,
            lab.home(),
            alice.gpg.home(),
            &env,
        )
    };
    let out = vault(&["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_sig = std::fs::read(store.file(".gpg-id.sig")).unwrap();
    let out = vault(&carol.add_member_args());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        std::fs::read(store.file(".gpg-id.sig")).unwrap(),
        old_sig,
        "the signature was not renewed"
    );
    let out = vault(&["--yes", "remove-member", "bob"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // pass verifies .gpg-id.sig before encrypting: insert works, to alice and carol.
    let out = pass(&["insert", "-m", "servers/web2"], "new-pw\n");
    assert!(
        out.status.success(),
        "pass rejected vault's .gpg-id.sig: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.assert_reads(
        &store,
        &carol,
        &[("servers/web2", "new-pw\n"), ("servers/web1", "root-pw\n")],
    );
    lab.assert_cannot_read(&store, &bob, &[("servers/web1", "root-pw\n")]);

    // An operator whose key PASSWORD_STORE_SIGNING_KEY does not list is refused: pass would
    // reject the signature; the store does not change. (dave: bob, a former member, could not
    // come back with the same key anyway.)
    let dave = Person::generate("dave", KeyKind::Ed25519);
    let before = store.snapshot();
    let mut all = vec![
        "--store",
        path.to_str().unwrap(),
        "--identity",
        alice.secret_str(),
        "add-member",
    ];
    all.extend([dave.public.to_str().unwrap(), "--fingerprint", &dave.fpr]);
    let out = cmd(
        env!("CARGO_BIN_EXE_vault"),
        &all,
        lab.home(),
        alice.gpg.home(),
        &[("PASSWORD_STORE_SIGNING_KEY", &carol.fpr)],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PASSWORD_STORE_SIGNING_KEY"));
    assert_same(&before, &store.snapshot(), "after a refused re-signing");
}

/// Runs the real pass as `who` on `store` with `PASSWORD_STORE_SIGNING_KEY=signing`.
fn pass_signed(
    lab: &Lab,
    store: &Store,
    who: &Person,
    signing: &str,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut c = std::process::Command::new("pass");
    c.args(args)
        .env("HOME", lab.home())
        .env("GNUPGHOME", who.gpg.home())
        .env("PASSWORD_STORE_DIR", &store.path)
        .env("PASSWORD_STORE_SIGNING_KEY", signing)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn gpg_id_signed_with_the_team_signing_key_stays_valid_for_pass() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    let carol = Person::generate("carol", KeyKind::Ed25519);
    // The team's signing key: not a member; every member's pass has it as
    // PASSWORD_STORE_SIGNING_KEY, and alice and bob hold its secret key.
    let team_key = Person::generate("team", KeyKind::Ed25519);
    introduce(&[&alice, &bob, &carol, &team_key]);
    for who in [&alice, &bob] {
        who.gpg.import(&team_key.secret);
    }
    let store = lab.store("store");
    let t = team_key.fpr.as_str();
    for args in [&["init", &alice.fpr, &bob.fpr][..], &["git", "init"]] {
        let out = pass_signed(&lab, &store, &alice, t, args, "");
        assert!(out.status.success(), "{}", show(&out));
    }
    let out = pass_signed(&lab, &store, &alice, t, &["insert", "-m", "bank"], "pw\n");
    assert!(out.status.success(), "{}", show(&out));
    lab.vault_as(&store, &alice, &["init"]).ok();

    // alice runs vault without the variable: re-signing with her own key would break every
    // member's pass ("Signature for .gpg-id is invalid"), so vault refuses, naming the key.
    let before = store.snapshot();
    let out = lab.vault_as(&store, &alice, &carol.add_member_args());
    out.fails()
        .stderr_has(".gpg-id.sig")
        .stderr_has(&team_key.fpr)
        .stderr_has("--signing-key");
    assert_same(&before, &store.snapshot(), "after a refused re-signing");

    // With the team's key to sign with, the change goes through and pass accepts it.
    let mut args = vec!["--signing-key", team_key.secret_str()];
    args.extend(carol.add_member_args());
    lab.vault_as(&store, &alice, &args).ok();
    let out = pass_signed(&lab, &store, &bob, t, &["insert", "-m", "web"], "web-pw\n");
    assert!(
        out.status.success(),
        "pass rejected the signature: {}",
        show(&out)
    );
    lab.assert_reads(&store, &carol, &[("bank", "pw\n"), ("web", "web-pw\n")]);

    // A new folder's .gpg-id in a signed store is signed too, with the same key.
    let args = [
        "--signing-key",
        team_key.secret_str(),
        "--yes",
        "remove-member",
        "bob",
        "--folder",
        "board",
        "--create",
    ];
    lab.vault_as(&store, &alice, &args).ok();
    assert!(store.file("board/.gpg-id.sig").is_file());
    let out = pass_signed(&lab, &store, &alice, t, &["insert", "-m", "board/x"], "x\n");
    assert!(
        out.status.success(),
        "pass rejected the new folder: {}",
        show(&out)
    );
}
