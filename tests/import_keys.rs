//! `vault import-keys`: the members' keys in a member's own GnuPG keyring, certified locally with
//! their key, so that the real `pass` encrypts to them without `trust-model always`; a key nobody
//! trusted vouched for is never imported, and a former member's certification is withdrawn.
//! Real gpg, pass and git throughout; carol's GnuPG home has no `gpg.conf` at all.

mod common;

use std::fs;

use common::*;

/// Someone whose key the real gpg generated in their own, otherwise empty, GnuPG home (so it
/// has ultimate ownertrust), with no `trust-model always`: gpg's defaults.
fn newcomer(name: &str) -> Person {
    let p = Person::generate(name, KeyKind::Ed25519);
    fs::remove_file(p.gpg.home().join("gpg.conf")).unwrap();
    p
}

struct Setup {
    lab: Lab,
    alice: Person,
    bob: Person,
    carol: Person,
    remote: String,
    alice_clone: Store,
    carol_clone: Store,
}

/// alice and bob's store (made by pass, adopted by vault, shared through a bare remote); alice
/// adds carol, a newcomer, with vault (pushed); carol clones it.
fn team_with_newcomer() -> Setup {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    introduce(&[&alice, &bob]);
    let carol = newcomer("carol");
    let alice_clone = pass_store(&lab, &alice, &[&alice, &bob], &[&alice]);
    lab.vault(&alice_clone, &alice, &["init"]).ok();
    let remote = share(&lab, &alice_clone);
    lab.vault_as(&alice_clone, &alice, &carol.add_member_with(&["--yes"]))
        .ok();
    let carol_clone = clone(&lab, &remote, "carol");
    Setup {
        lab,
        alice,
        bob,
        carol,
        remote,
        alice_clone,
        carol_clone,
    }
}

/// carol runs `vault --yes import-keys` in her clone, with her own GnuPG home.
fn import_keys(s: &Setup) -> Run {
    s.lab
        .vault(&s.carol_clone, &s.carol, &["--yes", "import-keys"])
}

/// `gpg --encrypt -r FPR` (empty stdin) in `who`'s GnuPG home, with its own configuration.
fn encrypt_to(who: &Person, fpr: &str) -> Run {
    who.gpg.gpg(["--no-tty", "--encrypt", "-r", fpr])
}

/// The line of `run`'s stdout about `fpr`.
#[track_caller]
fn line_of<'r>(run: &'r Run, fpr: &str) -> &'r str {
    run.stdout
        .lines()
        .find(|l| l.contains(fpr))
        .unwrap_or_else(|| panic!("no line about {fpr}:\n{run}"))
}

#[test]
fn a_newcomer_imports_the_members_keys_and_pass_insert_works() {
    let s = team_with_newcomer();
    let (lab, carol, mine) = (&s.lab, &s.carol, &s.carol_clone);
    // Without the members' keys, carol's pass cannot encrypt: the test can fail.
    lab.pass(mine, carol, &["insert", "-m", "carol/first"], "s3cret\n")
        .fails()
        .stderr_has("No public key");
    assert!(!mine.entry_file("carol/first").exists());

    // A keyring without a member's secret key, or with carol's secret key but not trusted
    // ultimately (imported, not generated there): refused, and nothing imported.
    let stranger = Gpg::new();
    lab.vault_with(mine, stranger.home(), &["--yes", "import-keys"])
        .fails()
        .stderr_has("none of the secret keys in your GnuPG keyring")
        .stderr_has("gpg --import YOUR-SECRET-KEY.asc")
        .stderr_has("vault add-member");
    let moved = Gpg::new();
    moved.import(&carol.secret);
    lab.vault_with(mine, moved.home(), &["--yes", "import-keys"])
        .fails()
        .stderr_has(&format!(
            "your key {} (carol) is not ultimately trusted",
            carol.fpr
        ))
        .stderr_has(&format!("echo {}:6: | gpg --import-ownertrust", carol.fpr))
        .stderr_has("Nothing was changed");
    moved.gpg(["--list-keys", &s.alice.fpr]).fails();

    let run = import_keys(&s);
    run.ok()
        .stdout_has("pass and gpg can now encrypt to the 3 members vault vouches for.");
    assert!(
        line_of(&run, &s.alice.fpr).starts_with("imported, certified  alice"),
        "{run}"
    );
    assert!(
        line_of(&run, &s.bob.fpr).starts_with("imported, certified  bob"),
        "{run}"
    );
    assert!(line_of(&run, &carol.fpr).starts_with("your key"), "{run}");

    // The real pass, with gpg's default trust model, now encrypts to alice, bob and carol.
    lab.pass(mine, carol, &["insert", "-m", "carol/first"], "s3cret\n")
        .ok();
    for who in [&s.alice, &s.bob, carol] {
        lab.assert_reads(mine, who, &[("carol/first", "s3cret\n")]);
    }
    // Encrypted to exactly its .gpg-id's keys, as vault's audit judges it too.
    let mut expected: Vec<String> = [&s.alice, &s.bob, carol]
        .iter()
        .flat_map(|p| p.encryption_subkeys())
        .collect();
    expected.sort();
    assert_pkesks(mine, &s.alice, &[("carol/first", "")], &expected);
    lab.vault(mine, carol, &["audit"]).ok();

    // Again: nothing to do.
    let again = import_keys(&s);
    again.ok();
    assert!(
        line_of(&again, &s.alice.fpr).starts_with("already certified"),
        "{again}"
    );
    assert!(
        line_of(&again, &s.bob.fpr).starts_with("already certified"),
        "{again}"
    );
}

#[test]
fn an_unvouched_key_pushed_by_a_plain_commit_is_never_imported() {
    let s = team_with_newcomer();
    let (lab, carol, mine) = (&s.lab, &s.carol, &s.carol_clone);
    import_keys(&s).ok();
    // Someone with push access adds mallory's key with plain git: no signature.
    let mallory = Person::generate("mallory", KeyKind::Ed25519);
    let theirs = clone(lab, &s.remote, "mallory");
    add_by_hand(&theirs, &mallory);
    git_commit_all(&theirs, "Add a colleague");
    theirs.git_ok(&["push", "-q"]);
    let bad = theirs.git_ok(&["rev-parse", "--short=10", "HEAD"]);
    mine.git_ok(&["pull", "-q", "--ff-only"]);

    let run = import_keys(&s);
    assert_eq!(run.code, Some(3), "{run}");
    let line = line_of(&run, &mallory.fpr);
    assert!(line.starts_with("NOT IMPORTED"), "{run}");
    assert!(
        line.contains(&format!(
            "added by commit {bad} without a trusted member's signature"
        )),
        "{run}"
    );
    assert!(line.contains("listed in /"), "{run}");
    run.stdout_has("pass and gpg can now encrypt to the 3 members vault vouches for.")
        .stdout_has("1 recipient left out");
    carol.gpg.gpg(["--list-keys", &mallory.fpr]).fails();

    // pass fails loudly rather than encrypt to mallory; nothing is written.
    let insert = lab.pass(mine, carol, &["insert", "-m", "after"], "x\n");
    insert.fails();
    assert!(insert.all_output().contains(&mallory.fpr), "{insert}");
    assert!(!mine.entry_file("after").exists());
    mine.assert_clean();
}

#[test]
fn a_former_members_local_certification_is_withdrawn() {
    let s = team_with_newcomer();
    let (lab, carol, mine) = (&s.lab, &s.carol, &s.carol_clone);
    import_keys(&s).ok();
    encrypt_to(carol, &s.bob.fpr).ok();

    lab.vault_as(&s.alice_clone, &s.alice, &["--yes", "remove-member", "bob"])
        .ok();
    mine.git_ok(&["pull", "-q", "--ff-only"]);
    let run = import_keys(&s);
    run.ok()
        .stdout_has("pass and gpg can now encrypt to the 2 members vault vouches for.");
    let line = line_of(&run, &s.bob.fpr);
    assert!(line.starts_with("withdrawn"), "{run}");
    assert!(
        line.contains("former member: your local certification is revoked"),
        "{run}"
    );
    // gpg (and so pass) no longer encrypts to bob; still to alice.
    encrypt_to(carol, &s.bob.fpr)
        .fails()
        .stderr_has("There is no assurance this key belongs to the named user");
    encrypt_to(carol, &s.alice.fpr).ok();
    lab.pass(mine, carol, &["insert", "-m", "without-bob"], "new\n")
        .ok();
    lab.assert_cannot_read(mine, &s.bob, &[("without-bob", "new\n")]);
    // Run again: nothing left to withdraw.
    let again = import_keys(&s);
    again.ok();
    assert!(!again.stdout.contains(&s.bob.fpr), "{again}");

    // bob cannot come back with the same key (audit treats what it read as read by an
    // outsider): a returning member brings a new one.
    lab.vault_as(&s.alice_clone, &s.alice, &s.bob.add_member_with(&["--yes"]))
        .fails()
        .stderr_has("bob is the name of a former member");
    let mut robert = s.bob.add_member_with(&["--yes"]);
    robert.extend(["--name", "robert"]);
    lab.vault_as(&s.alice_clone, &s.alice, &robert)
        .fails()
        .stderr_has("may not be used again");
}
