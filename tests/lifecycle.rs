//! A member's key changes over time, made by the real gpg: a new encryption subkey, an expiry
//! extended (also of a key and subkey that already expired), a revoked subkey, a move to a new
//! key; and folders granted and revoked. After each change the real pass reads everything for
//! every member, and `pass init` with the same ids re-encrypts nothing.

mod common;

use std::path::PathBuf;

use common::*;

/// `gpg --pinentry-mode loopback --passphrase '' ARGS` as `who` (their keys have no passphrase).
fn gpg_as(who: &Person, args: &[&str]) -> Run {
    let mut all = vec!["--pinentry-mode", "loopback", "--passphrase", ""];
    all.extend_from_slice(args);
    who.gpg.gpg(&all)
}

/// `who`'s public key as their GnuPG has it now, written to a new file.
fn export(who: &Person, file: &str) -> PathBuf {
    let path = who.gpg.scratch().join(file);
    who.gpg.export_public(&who.fpr, &path);
    path
}

/// Revokes `who`'s encryption subkey number `index` (1 = the first) with GnuPG's revocation
/// reason menu `code` (0 no reason, 1 compromised, 2 superseded, 3 no longer used), through
/// `gpg --edit-key`, which has no non-interactive form for this in GnuPG 2.2.
fn revoke_subkey(who: &Person, index: usize, code: u8) {
    let script = format!("key {index}\nrevkey\ny\n{code}\nrevoked in a test\n\ny\nsave\n");
    let script_file = who.gpg.scratch().join("revkey.script");
    std::fs::write(&script_file, script).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gpg --batch --pinentry-mode loopback --passphrase '' --command-fd 0 --edit-key {} < {}",
            who.fpr,
            script_file.display()
        ))
        .env("GNUPGHOME", who.gpg.home())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A team whose bob has two encryption subkeys: a store made by pass (root: alice and bob, ops/:
/// alice), adopted by vault.
fn team_with_two_subkeys() -> (Lab, Person, Person, Store) {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::TwoEncryptionSubkeys);
    introduce(&[&alice, &bob]);
    let store = pass_store(&lab, &alice, &[&alice, &bob], &[&alice]);
    lab.vault(&store, &alice, &["init"]).ok();
    (lab, alice, bob, store)
}

/// After every change: pass reads every entry for every member who should read it, `pass init`
/// with the same ids re-encrypts nothing, `vault verify` vouches for everything, and vault's own
/// check finds nothing to repair.
#[track_caller]
fn assert_pass_works(lab: &Lab, store: &Store, alice: &Person, bob: &Person, bob_reads_ops: bool) {
    store.assert_clean();
    lab.assert_reads(store, alice, ROOT_ENTRIES);
    lab.assert_reads(store, alice, OPS_ENTRIES);
    lab.assert_reads(store, bob, ROOT_ENTRIES);
    if bob_reads_ops {
        lab.assert_reads(store, bob, OPS_ENTRIES);
    } else {
        lab.assert_cannot_read(store, bob, OPS_ENTRIES);
    }
    // bob's GnuPG has his current key and alice's: what pass compares PKESKs with.
    lab.assert_pass_init_reencrypts_nothing(store, bob, "");
    lab.assert_pass_init_reencrypts_nothing(store, alice, "ops");
    lab.vault(store, alice, &["verify"]).ok();
    lab.vault(store, alice, &["repair"])
        .ok()
        .stdout_has("Nothing to repair");
}

#[test]
fn a_new_encryption_subkey_is_added_to_what_the_member_reads_keeping_the_data() {
    let t = adopted_team();
    let (lab, store, alice, bob) = (&t.lab, &t.store, &t.alice, &t.bob);
    let old_subkeys = bob.encryption_subkeys();
    let bank = store.entry_file("bank");
    let session_before = alice.gpg.session_key(&bank);
    gpg_as(bob, &["--quick-add-key", &bob.fpr, "cv25519", "encr", "2y"]).ok();
    let new_subkey: Vec<String> = bob
        .encryption_subkeys()
        .into_iter()
        .filter(|k| !old_subkeys.contains(k))
        .collect();
    assert_eq!(new_subkey.len(), 1);
    let updated = export(bob, "bob-updated.asc");
    let commits = store.commit_count();

    let run = lab.vault_as(
        store,
        alice,
        &["--yes", "update-member", "bob", updated.to_str().unwrap()],
    );
    run.ok()
        .stderr_has("added (encryption")
        .stdout_has("3 entries re-wrapped");
    assert_eq!(store.commit_count(), commits + 1);
    assert!(store.last_message().contains("Vault-Action: update-member"));
    assert!(store
        .last_changed_paths()
        .contains(&format!(".public-keys/{}", bob.fpr)));
    // The data was kept (same session key); the new subkey got a PKESK; ops/ was not touched.
    assert_eq!(alice.gpg.session_key(&bank), session_before);
    assert!(alice.gpg.pkesk_key_ids(&bank).contains(&new_subkey[0]));
    assert!(!store
        .last_changed_paths()
        .iter()
        .any(|p| p.starts_with("ops/")));
    assert_pass_works(lab, store, alice, bob, false);

    // The same key again: nothing to do, no commit.
    lab.vault_as(
        store,
        alice,
        &["--yes", "update-member", "bob", updated.to_str().unwrap()],
    )
    .ok()
    .stdout_has("adds nothing");
    assert_eq!(store.commit_count(), commits + 1);
}

#[test]
fn an_expired_member_key_blocks_changes_until_it_is_extended_as_the_hint_says() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    // bob's key was made in 2020 (no expiry then), so vault can adopt it today.
    let bob = {
        let gpg = Gpg::new();
        let fake = ["--faked-system-time", "20200101T000000!"];
        let lb = ["--pinentry-mode", "loopback", "--passphrase", ""];
        let mut args = fake.to_vec();
        args.extend(lb);
        args.extend([
            "--quick-gen-key",
            "Bob <bob@coop.example>",
            "ed25519",
            "sign",
            "never",
        ]);
        gpg.gpg(&args).ok();
        let fpr = gpg.fingerprint("bob@coop.example");
        let mut args = fake.to_vec();
        args.extend(lb);
        args.extend(["--quick-add-key", &fpr, "cv25519", "encr", "never"]);
        gpg.gpg(&args).ok();
        let public = gpg.scratch().join("bob.asc");
        let secret = gpg.scratch().join("bob.secret.asc");
        gpg.export_public(&fpr, &public);
        gpg.export_secret(&fpr, &secret);
        Person::from_files("bob", &public, Some(&secret))
    };
    introduce(&[&alice, &bob]);
    let store = pass_store(&lab, &alice, &[&alice, &bob], &[&alice]);
    lab.vault(&store, &alice, &["init"]).ok();
    let subkey = bob_subkey_fingerprint(&bob);

    // In 2021 bob gave his key and its subkey one year: it expired on 2022-01-01. alice signs the
    // commit that brings the expired key into the store (as if vault had stored it in 2021).
    for target in [bob.fpr.as_str(), subkey.as_str()] {
        let mut args = vec!["--faked-system-time", "20210101T000000!"];
        args.extend(["--quick-set-expire", &bob.fpr, "1y"]);
        if target != bob.fpr {
            args.push(target);
        }
        gpg_as(&bob, &args).ok();
    }
    let expired = export(&bob, "bob-expired.asc");
    std::fs::copy(&expired, store.file(&format!(".public-keys/{}", bob.fpr))).unwrap();
    alice.gpg.import(&expired);
    store.git_ok(&["add", "-A"]);
    signed_commit(&store, &alice, "bob's key as stored in 2021");

    // Any change that encrypts to bob fails, naming him, the date and the way out.
    let carol = Person::generate("carol", KeyKind::Ed25519);
    let head = store.head();
    let run = lab.vault_as(&store, &alice, &carol.add_member_with(&["--yes"]));
    run.fails()
        .stderr_has("member bob")
        .stderr_has("expired on 2022-01-01")
        .stderr_has(&format!("gpg --quick-set-expire {} 1y {subkey}", bob.fpr))
        .stderr_has("vault update-member bob");
    assert_eq!(store.head(), head, "nothing changed");
    // vault members shows it too.
    lab.vault(&store, &alice, &["members"])
        .ok()
        .stdout_has("expired on 2022-01-01");

    // bob follows the hint with today's clock: the primary key, then the subkey by name.
    gpg_as(&bob, &["--quick-set-expire", &bob.fpr, "1y"]).ok();
    gpg_as(&bob, &["--quick-set-expire", &bob.fpr, "1y", &subkey]).ok();
    let renewed = export(&bob, "bob-renewed.asc");
    let run = lab.vault_as(
        &store,
        &alice,
        &["--yes", "update-member", "bob", renewed.to_str().unwrap()],
    );
    run.ok().stderr_has("expires      2022-01-01");
    // Same subkey: no entry had to change.
    run.stdout_has("0 entries re-wrapped")
        .stdout_has(", 0 re-encrypted");
    alice.gpg.import(&renewed);
    lab.vault_as(&store, &alice, &carol.add_member_with(&["--yes"]))
        .ok();
    bob.gpg.import(&carol.public);
    assert_pass_works(&lab, &store, &alice, &bob, false);
}

/// The fingerprint of bob's (only) encryption subkey, from his GnuPG.
fn bob_subkey_fingerprint(bob: &Person) -> String {
    let out = bob.gpg.gpg(["--with-colons", "--list-keys", &bob.fpr]);
    out.ok();
    let mut fprs = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .map(|l| l.split(':').nth(9).unwrap().to_string());
    assert_eq!(fprs.next().as_deref(), Some(bob.fpr.as_str()));
    fprs.next().expect("bob has a subkey")
}

/// `git commit -S` as `who` (their GnuPG signs), as a member can sign by hand.
fn signed_commit(store: &Store, who: &Person, message: &str) {
    let out = std::process::Command::new("git")
        .args(["-C", store.path_str(), "-c"])
        .arg(format!("user.signingkey={}", who.fpr))
        .args(["commit", "-q", "-S", "-m", message])
        .env("GNUPGHOME", who.gpg.home())
        .env("HOME", store.home())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_revoked_subkey_gets_fresh_session_keys_and_a_compromised_one_a_rotation_list() {
    let (lab, alice, bob, store) = team_with_two_subkeys();
    let subkeys = bob.encryption_subkeys();
    assert_eq!(subkeys.len(), 2);
    // pass (gpg) encrypted to one of bob's subkeys, the newest, which is a toss-up when both
    // were made in the same second; vault encrypts to both, so which one goes is what matters.
    lab.vault_as(&store, &alice, &["--yes", "repair"])
        .ok()
        .stdout_has("3 gained readers");
    let bank = store.entry_file("bank");
    let session_before = alice.gpg.session_key(&bank);

    // The first subkey is retired (not compromised): fresh session keys, nothing to rotate.
    revoke_subkey(&bob, 1, 3);
    let left = bob.encryption_subkeys();
    assert_eq!(left.len(), 1, "{left:?}");
    let updated = export(&bob, "bob-retired.asc");
    let run = lab.vault_as(
        &store,
        &alice,
        &["--yes", "update-member", "bob", updated.to_str().unwrap()],
    );
    run.ok()
        .stderr_has("revoked (Key is retired")
        .stdout_has("3 re-encrypted");
    assert!(!run.stdout.contains("Rotate"), "{run}");
    assert_ne!(alice.gpg.session_key(&bank), session_before);
    let readers = alice.gpg.pkesk_key_ids(&bank);
    assert!(!readers
        .iter()
        .any(|k| !left.contains(k) && subkeys.contains(k)));
    assert_pass_works(&lab, &store, &alice, &bob, false);

    // A new subkey, then the remaining old one revoked as compromised: what it could read is
    // listed to rotate, and audit names the entries too.
    gpg_as(
        &bob,
        &["--quick-add-key", &bob.fpr, "cv25519", "encr", "2y"],
    )
    .ok();
    revoke_subkey(&bob, 2, 1);
    let updated = export(&bob, "bob-compromised.asc");
    let run = lab.vault_as(
        &store,
        &alice,
        &["--yes", "update-member", "bob", updated.to_str().unwrap()],
    );
    run.ok()
        .stderr_has("revoked (Key material has been compromised")
        .stdout_has("Rotate them");
    for (entry, _) in ROOT_ENTRIES {
        run.stdout_has(&format!("  {entry}\n"));
    }
    for (entry, _) in OPS_ENTRIES {
        assert!(!run.stdout.contains(entry), "{run}");
    }
    // Recorded, so audit flags what it could read in history until rotated.
    let members = store.members_toml();
    let replaced = &members["replaced"].as_array().unwrap()[0];
    assert_eq!(replaced["compromised"].as_bool(), Some(true));
    let audit = lab.vault(&store, &alice, &["audit"]);
    assert_eq!(audit.code, Some(3), "{audit}");
    audit.stdout_has("bob's compromised old key");
    // Not the repair check's business: the store is as pass wants it.
    store.assert_clean();
    lab.assert_pass_init_reencrypts_nothing(&store, &bob, "");
}

#[test]
fn update_member_refuses_a_user_id_with_another_members_address() {
    let t = adopted_team();
    let (lab, store, alice, bob) = (&t.lab, &t.store, &t.alice, &t.bob);
    gpg_as(
        bob,
        &[
            "--quick-add-uid",
            &bob.fpr,
            "Not Alice <alice@coop.example>",
        ],
    )
    .ok();
    let updated = export(bob, "bob-alice-uid.asc");
    let head = store.head();
    lab.vault_as(
        store,
        alice,
        &["--yes", "update-member", "bob", updated.to_str().unwrap()],
    )
    .fails()
    .stderr_has("alice@coop.example, which is alice's address");
    assert_eq!(store.head(), head);
}

#[test]
fn replace_key_moves_a_member_to_a_new_key_and_keeps_the_old_one_on_record() {
    let t = adopted_team();
    let (lab, store, alice, bob) = (&t.lab, &t.store, &t.alice, &t.bob);
    let old_subkeys = bob.encryption_subkeys();
    // bob makes a new key in his own GnuPG and certifies it with the old one.
    let new_fpr = bob
        .gpg
        .generate("Bob", "bob.new@coop.example", KeyKind::Ed25519);
    gpg_as(bob, &["-u", &bob.fpr, "--quick-sign-key", &new_fpr]).ok();
    let new_key = bob.gpg.scratch().join("bob-new.asc");
    bob.gpg.export_public(&new_fpr, &new_key);
    let new_subkeys = bob.gpg.encryption_subkeys(&new_fpr);

    // update-member refuses another fingerprint and points to replace-key.
    let head = store.head();
    lab.vault_as(
        store,
        alice,
        &["--yes", "update-member", "bob", new_key.to_str().unwrap()],
    )
    .fails()
    .stderr_has("vault replace-key bob");
    assert_eq!(store.head(), head);

    alice.gpg.import(&new_key);
    let run = lab.vault_as(
        store,
        alice,
        &[
            "replace-key",
            "bob",
            new_key.to_str().unwrap(),
            "--compromised",
            "--fingerprint",
            &new_fpr,
        ],
    );
    run.ok()
        .stderr_has("certified    by the old key")
        .stdout_has("3 entries re-encrypted")
        .stdout_has("Rotate them");
    for (entry, _) in ROOT_ENTRIES {
        run.stdout_has(&format!("  {entry}\n"));
    }
    assert!(store.last_message().contains("Vault-Action: replace-key"));
    let ids = store.gpg_ids("");
    assert!(ids.contains(&new_fpr) && !ids.contains(&bob.fpr), "{ids:?}");
    assert!(!store.file(&format!(".public-keys/{}", bob.fpr)).exists());
    assert!(store.file(&format!(".public-keys/{new_fpr}")).exists());
    let members = store.members_toml();
    assert_eq!(members["members"]["bob"].as_str(), Some(new_fpr.as_str()));
    let replaced = &members["replaced"].as_array().unwrap()[0];
    assert_eq!(replaced["fingerprint"].as_str(), Some(bob.fpr.as_str()));
    assert_eq!(replaced["compromised"].as_bool(), Some(true));
    for (entry, _) in ROOT_ENTRIES {
        let readers = alice.gpg.pkesk_key_ids(&store.entry_file(entry));
        assert!(new_subkeys.iter().all(|k| readers.contains(k)), "{entry}");
        assert!(!old_subkeys.iter().any(|k| readers.contains(k)), "{entry}");
    }
    // bob's GnuPG holds both keys, so pass reads with the new one; pass init agrees.
    lab.assert_reads(store, bob, ROOT_ENTRIES);
    lab.assert_pass_init_reencrypts_nothing(store, bob, "");
    lab.vault(store, alice, &["verify"]).ok();
    lab.vault(store, alice, &["members"])
        .ok()
        .stdout_has("Replaced keys:")
        .stdout_has(&format!("{}  replaced", bob.fpr));
    // The old key was compromised: audit says what it could read, in history, must be rotated.
    let audit = lab.vault(store, alice, &["audit"]);
    assert_eq!(audit.code, Some(3), "{audit}");
    audit.stdout_has("bob's compromised old key");

    // A key that was someone's is never taken again.
    let old_key = bob.gpg.scratch().join("bob-old.asc");
    bob.gpg.export_public(&bob.fpr, &old_key);
    lab.vault_as(
        store,
        alice,
        &["--yes", "replace-key", "bob", old_key.to_str().unwrap()],
    )
    .fails()
    .stderr_has("may not be used again");
}

#[test]
fn grant_gives_one_more_folder_and_revoke_takes_it_away() {
    let t = adopted_team();
    let (lab, store, alice, bob) = (&t.lab, &t.store, &t.alice, &t.bob);
    let db = store.entry_file("ops/db");
    let session_before = alice.gpg.session_key(&db);
    let run = lab.vault_as(store, alice, &["--yes", "grant", "bob", "--folder", "ops"]);
    run.ok()
        .stdout_has("bob now reads ops/")
        .stdout_has("2 re-wrapped");
    assert!(store.last_message().contains("Vault-Action: grant"));
    assert_eq!(alice.gpg.session_key(&db), session_before, "data kept");
    assert_pass_works(lab, store, alice, bob, true);

    // Again: refused, nothing changed.
    let head = store.head();
    lab.vault_as(store, alice, &["--yes", "grant", "bob", "--folder", "ops"])
        .fails()
        .stderr_has("bob already reads ops/");
    lab.vault_as(store, alice, &["--yes", "grant", "bob", "--folder", "opz"])
        .fails()
        .stderr_has("ops");
    assert_eq!(store.head(), head);

    let run = lab.vault_as(store, alice, &["--yes", "revoke", "bob", "--folder", "ops"]);
    run.ok().stdout_has("Rotate them");
    assert_ne!(
        alice.gpg.session_key(&db),
        session_before,
        "fresh session key"
    );
    assert_pass_works(lab, store, alice, bob, false);
}

#[test]
fn members_and_audit_warn_before_a_key_expires() {
    let t = adopted_team();
    let (lab, store, alice, bob) = (&t.lab, &t.store, &t.alice, &t.bob);
    gpg_as(bob, &["--quick-set-expire", &bob.fpr, "10d"]).ok();
    let updated = export(bob, "bob-10d.asc");
    lab.vault_as(
        store,
        alice,
        &["--yes", "update-member", "bob", updated.to_str().unwrap()],
    )
    .ok();
    let members = lab.vault(store, alice, &["members"]);
    members
        .ok()
        .stdout_has("its key expires on")
        .stdout_has("vault update-member bob");
    let quiet = lab.vault(store, alice, &["members", "--expiry-warning", "5"]);
    assert!(!quiet.ok().stdout.contains("expires on"), "{quiet}");
    let audit = lab.vault(store, alice, &["audit"]);
    assert!(audit.stdout.contains("its key expires on"), "{audit}");
    let json = lab.vault(store, alice, &["members", "--json"]);
    assert!(
        json.ok()
            .stdout
            .contains("\"warning\": \"its key expires on"),
        "{json}"
    );
}

#[test]
fn removing_a_former_member_says_when_they_left() {
    let t = adopted_team();
    let (lab, store, alice) = (&t.lab, &t.store, &t.alice);
    lab.vault_as(store, alice, &["--yes", "remove-member", "bob"])
        .ok();
    let removal = store.git_ok(&["rev-parse", "--short=10", "HEAD"]);
    let head = store.head();
    lab.vault_as(store, alice, &["--yes", "remove-member", "bob"])
        .fails()
        .stderr_has("bob is a former member (removed ")
        .stderr_has(&format!("by Vault Test in commit {removal})"))
        .stderr_has("nothing in the store is readable by them now");
    lab.vault_as(store, alice, &["--yes", "grant", "bob", "--folder", "ops"])
        .fails()
        .stderr_has("former member");
    // Not back with the same key, nor someone else under bob's name.
    let mut robert = t.bob.add_member_with(&["--yes"]);
    robert.extend(["--name", "robert"]);
    lab.vault_as(store, alice, &robert)
        .fails()
        .stderr_has("may not be used again");
    let mut carol_as_bob = t.carol.add_member_with(&["--yes"]);
    carol_as_bob.extend(["--name", "bob"]);
    lab.vault_as(store, alice, &carol_as_bob)
        .fails()
        .stderr_has("bob is the name of a former member");
    assert_eq!(store.head(), head);

    // Someone's stale pass encrypts a new entry to bob too: now the hint says to repair.
    alice.gpg.encrypt_to(
        b"new-secret\n",
        &store.file("wifi.gpg"),
        &[&alice.fpr, &t.bob.fpr],
        &["--trust-model", "always"],
    );
    git_commit_all(store, "Add wifi by hand");
    lab.vault_as(store, alice, &["--yes", "remove-member", "bob"])
        .fails()
        .stderr_has("they can still read 1 entry now")
        .stderr_has("vault repair");
}

#[test]
fn grant_refuses_a_key_nobody_vouched_for_and_revoke_a_members_last_folder() {
    let t = adopted_team();
    let (lab, store, alice, bob, carol) = (&t.lab, &t.store, &t.alice, &t.bob, &t.carol);
    // revoke of the only folder bob reads would remove him: refused, pointing to remove-member.
    let head = store.head();
    lab.vault_as(store, alice, &["--yes", "revoke", "bob", "--folder", "/"])
        .fails()
        .stderr_has("vault remove-member bob");
    assert_eq!(store.head(), head);

    // Someone with push access renames carol's key to "bob" in .members.toml, unsigned, and
    // adds her key file: bob's real key still reads /, now without a name.
    std::fs::copy(
        &carol.public,
        store.file(&format!(".public-keys/{}", carol.fpr)),
    )
    .unwrap();
    let roster = store.read(".members.toml").replace(&bob.fpr, &carol.fpr);
    std::fs::write(store.file(".members.toml"), roster).unwrap();
    git_commit_all(store, "tidy the member list");
    let head = store.head();
    lab.vault_as(store, alice, &["--yes", "grant", "bob", "--folder", "ops"])
        .fails()
        .stderr_has(&carol.fpr)
        .stderr_has("never vouched for");
    assert_eq!(store.head(), head);
    lab.assert_cannot_read(store, carol, OPS_ENTRIES);
}
