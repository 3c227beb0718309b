//! Regression tests for the fidelity issue: everything pass accepts, vault understands or flags.
//! Each case is a small store rebuilt with the real pass and GnuPG the way a team's other tools
//! leave it, named after the case; the right value is the assertion.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Encrypts `plain` into `file` with `who`'s GnuPG, to `to`, as a client that ignores `.gpg-id`
/// would (ripasso saving an entry, an older gopass inserting one).
fn encrypt_as(who: &Person, plain: &str, file: &Path, to: &[&str], extra: &[&str]) {
    who.gpg.encrypt_to(plain.as_bytes(), file, to, extra);
}

#[test]
fn removal_re_encrypts_what_the_member_can_actually_read_not_only_what_gpg_id_says() {
    let team = adopted_team(); // root: alice, bob; ops/: alice only
    let (lab, store, alice, bob) = (&team.lab, &team.store, &team.alice, &team.bob);
    let saved = [("ops/saved-by-ripasso", "rip-pw\nuser: x\n")];
    encrypt_as(
        alice,
        saved[0].1,
        &store.entry_file(saved[0].0),
        &[&alice.fpr, &bob.fpr],
        &[],
    );
    git_commit_all(store, "Save ops/saved-by-ripasso");
    lab.assert_reads(store, bob, &saved);

    let out = lab.vault_as(store, alice, &["--yes", "remove-member", "bob"]);
    out.ok().stdout_has("  ops/saved-by-ripasso");
    lab.assert_cannot_read(store, bob, &saved);
    lab.assert_reads(store, alice, &saved);
    lab.assert_pass_init_reencrypts_nothing(store, alice, "ops");
    lab.assert_pass_init_reencrypts_nothing(store, alice, "");
    store.assert_clean();
}

#[test]
fn removal_names_an_entry_no_gpg_id_governs() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    introduce(&[&alice, &bob]);
    // No root .gpg-id: two folders with their own, and one entry left at the root by hand.
    let store = lab.store("store");
    fs::create_dir_all(&store.path).unwrap();
    store.git_ok(&["init", "-q"]);
    for folder in ["a", "b"] {
        lab.pass(
            &store,
            &alice,
            &["init", "-p", folder, &alice.fpr, &bob.fpr],
            "",
        )
        .ok();
    }
    insert_entries(&lab, &store, &alice, &[("a/x", "ax\n"), ("b/y", "by\n")]);
    let loose = [("loose", "loose-pw\n")];
    encrypt_as(
        &alice,
        loose[0].1,
        &store.entry_file("loose"),
        &[&alice.fpr, &bob.fpr],
        &[],
    );
    git_commit_all(&store, "Add loose");
    lab.vault_as(&store, &alice, &["init"]).ok();

    let out = lab.vault_as(&store, &alice, &["--yes", "remove-member", "bob"]);
    out.ok()
        .stdout_has("  loose\n")
        .stdout_has("vault could not re-encrypt")
        .stdout_has("loose: no .gpg-id governs it");
    lab.assert_cannot_read(&store, &bob, &[("a/x", "ax\n"), ("b/y", "by\n")]);
    lab.assert_reads(&store, &bob, &loose); // said, not hidden
}

#[test]
fn entries_readable_only_through_a_revoked_subkey_are_flagged_and_re_encrypted_to_the_current_one()
{
    let team = adopted_team();
    let (lab, store, alice, bob) = (&team.lab, &team.store, &team.alice, &team.bob);
    let old = bob.encryption_subkeys();
    // bob adds a new encryption subkey and revokes the old one (GnuPG's own commands).
    let lb = ["--pinentry-mode", "loopback", "--passphrase", ""];
    let mut args = lb.to_vec();
    args.extend(["--quick-add-key", &bob.fpr, "cv25519", "encr", "never"]);
    bob.gpg.gpg(&args).ok();
    let edit = lab.path("revkey");
    fs::write(&edit, "key 1\nrevkey\ny\n0\n\ny\nsave\n").unwrap();
    let mut args = lb.to_vec();
    args.extend([
        "--yes",
        "--command-file",
        edit.to_str().unwrap(),
        "--edit-key",
        &bob.fpr,
    ]);
    bob.gpg.gpg(&args).ok();
    let new = bob.encryption_subkeys();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_ne!(new, old);
    bob.gpg.export_public(&bob.fpr, &bob.public);
    alice.gpg.import(&bob.public);
    fs::copy(
        &bob.public,
        store.file(&format!(".public-keys/{}", bob.fpr)),
    )
    .unwrap();
    git_commit_all(store, "bob's renewed key");

    let audit = lab.vault_as(store, alice, &["audit"]);
    assert_eq!(audit.code, Some(3), "{audit}");
    audit.stdout_has("bob can read it only through a revoked or expired subkey");

    // The next re-encryption of the root uses only bob's current subkey.
    lab.vault_as(store, alice, &team.carol.add_member_args())
        .ok();
    let pkesks = alice.gpg.pkesk_key_ids(&store.entry_file("bank"));
    assert!(pkesks.contains(&new[0]), "{pkesks:?}");
    assert!(!pkesks.contains(&old[0]), "{pkesks:?}");
    lab.assert_reads(store, bob, ROOT_ENTRIES);
    let audit = lab.vault_as(store, alice, &["audit"]);
    assert!(
        !audit.stdout.contains("revoked or expired subkey"),
        "{audit}"
    );
    lab.assert_pass_init_reencrypts_nothing(store, alice, "");
}

#[test]
fn entries_with_hidden_recipients_are_said_to_be_unknown_not_unreadable() {
    let team = adopted_team();
    let (lab, store, alice, bob) = (&team.lab, &team.store, &team.alice, &team.bob);
    encrypt_as(
        alice,
        "hidden-pw\n",
        &store.entry_file("hidden"),
        &[&alice.fpr, &bob.fpr],
        &["--throw-keyids"],
    );
    git_commit_all(store, "Add hidden");
    let audit = lab.vault_as(store, alice, &["audit", "--json"]);
    assert_eq!(audit.code, Some(3), "{audit}");
    let report: serde_json::Value = serde_json::from_str(&audit.stdout).unwrap();
    let hidden = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "hidden")
        .unwrap();
    let problems: Vec<&str> = hidden["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        problems,
        ["its recipients are hidden (written with gpg --throw-keyids): vault cannot tell who can read it"]
    );
}

#[test]
fn a_crlf_gpg_id_is_flagged_and_written_back_with_lf() {
    let team = adopted_team();
    let (lab, store, alice) = (&team.lab, &team.store, &team.alice);
    let crlf = store.read(".gpg-id").replace('\n', "\r\n");
    fs::write(store.file(".gpg-id"), &crlf).unwrap();
    git_commit_all(store, "Edited on Windows");
    // pass can no longer encrypt with it ...
    let out = lab.pass(store, alice, &["insert", "-m", "new"], "x\n");
    assert!(!out.success(), "pass accepted a CRLF .gpg-id?\n{out}");
    // ... vault reads it, and audit says so.
    let audit = lab.vault_as(store, alice, &["audit"]);
    assert_eq!(audit.code, Some(3), "{audit}");
    audit.stdout_has(".gpg-id has Windows (CRLF) line ends");
    lab.vault_as(store, alice, &team.carol.add_member_args())
        .ok();
    assert!(!store.read(".gpg-id").contains('\r'));
    lab.pass(store, alice, &["insert", "-m", "new"], "x\n").ok();
    let audit = lab.vault_as(store, alice, &["audit"]);
    assert!(!audit.stdout.contains("CRLF"), "{audit}");
}

#[test]
fn a_mistyped_folder_is_refused_unless_created_on_purpose() {
    let team = adopted_team();
    let (lab, store, alice, carol) = (&team.lab, &team.store, &team.alice, &team.carol);
    let before = store.snapshot();
    let mut args = carol.add_member_args().to_vec();
    args.extend(["--folder", "opps"]);
    lab.vault_as(store, alice, &args)
        .fails()
        .stderr_has("the store has no folder opps/")
        .stderr_has("did you mean ops/?")
        .stderr_has("--create");
    lab.vault_as(
        store,
        alice,
        &["--yes", "remove-member", "bob", "--folder", "emial"],
    )
    .fails()
    .stderr_has("did you mean email/?");
    assert_same(&before, &store.snapshot(), "after a mistyped --folder");
    args.push("--create");
    lab.vault_as(store, alice, &args).ok();
    assert_eq!(
        store.gpg_ids("opps").len(),
        3,
        "alice, bob (inherited) and carol"
    );
}

#[test]
fn a_merge_or_rebase_in_progress_stops_changes_with_the_right_advice() {
    let team = adopted_team();
    let (lab, store, alice) = (&team.lab, &team.store, &team.alice);
    store.git_ok(&["branch", "other"]);
    lab.pass(store, alice, &["insert", "-f", "-m", "bank"], "main-pw\n")
        .ok();
    store.git_ok(&["checkout", "-q", "other"]);
    lab.pass(store, alice, &["insert", "-f", "-m", "bank"], "other-pw\n")
        .ok();
    store.git_ok(&["checkout", "-q", "main"]);

    for (what, start, advice) in [
        (
            "a merge",
            &["merge", "-q", "other"][..],
            "git merge --abort",
        ),
        ("a rebase", &["rebase", "other"][..], "git rebase --abort"),
    ] {
        assert!(!store.git(start).success(), "{what}: expected a conflict");
        let before = everything(&store.path);
        let out = lab.vault_as(store, alice, &team.carol.add_member_args());
        out.fails()
            .stderr_has(&format!("{what} is in progress"))
            .stderr_has(advice);
        assert!(
            !out.stderr.contains("detached"),
            "{what}: wrong advice:\n{out}"
        );
        assert_eq!(before, everything(&store.path), "{what}: the store changed");
        let audit = lab.vault_as(store, alice, &["audit"]);
        assert_eq!(audit.code, Some(3), "{what}:\n{audit}");
        audit.stdout_has(&format!("{what} is in progress"));
        let abort = if what == "a merge" { "merge" } else { "rebase" };
        store.git_ok(&[abort, "--abort"]);
    }
    lab.vault_as(store, alice, &team.carol.add_member_args())
        .ok();
}

/// The fingerprint of `who`'s (first) encryption subkey, as GnuPG lists it.
fn encryption_subkey_fingerprint(who: &Person) -> String {
    let out = who.gpg.gpg([
        "--with-colons",
        "--with-subkey-fingerprint",
        "--list-keys",
        &who.fpr,
    ]);
    out.ok();
    let mut after_sub = false;
    for line in out.stdout.lines() {
        let f: Vec<&str> = line.split(':').collect();
        match f[0] {
            "sub" => after_sub = f.get(11).is_some_and(|c| c.contains('e')),
            "fpr" if after_sub => return f[9].to_string(),
            _ => after_sub = false,
        }
    }
    panic!("no encryption subkey:\n{out}");
}

#[test]
fn key_selectors_gnupg_accepts_resolve_and_comments_survive_a_rewrite() {
    let team = adopted_team();
    let (lab, store, alice, bob, carol) =
        (&team.lab, &team.store, &team.alice, &team.bob, &team.carol);
    let bob_sub = encryption_subkey_fingerprint(bob);
    fs::write(
        store.file(".gpg-id"),
        format!(
            "# the coop's tech group\n0x{} # alice\n{bob_sub} # bob, by his encryption subkey\n",
            alice.fpr.to_lowercase()
        ),
    )
    .unwrap();
    git_commit_all(store, "Comment the recipients");
    lab.vault_as(store, alice, &["members"])
        .ok()
        .stdout_has("bob");
    lab.vault_as(store, alice, &carol.add_member_args()).ok();
    assert_eq!(
        store.read(".gpg-id"),
        format!(
            "# the coop's tech group\n# alice\n{}\n# bob, by his encryption subkey\n{}\n{}\n",
            alice.fpr, bob.fpr, carol.fpr
        )
    );
    lab.pass(store, alice, &["insert", "-m", "new"], "n\n").ok();
    lab.assert_reads(store, carol, &[("new", "n\n")]);
    lab.assert_reads(store, bob, &[("new", "n\n")]);
    // pass init with the same ids re-encrypts nothing (it drops the comments, as it always does).
    let entries: Vec<Vec<u8>> = ROOT_ENTRIES
        .iter()
        .map(|(e, _)| store.entry_bytes(e))
        .collect();
    let ids = store.gpg_ids("");
    let mut args = vec!["init"];
    args.extend(ids.iter().map(String::as_str));
    let out = lab.pass(store, alice, &args, "");
    assert!(!out.ok().all_output().contains("reencrypting"), "{out}");
    let after: Vec<Vec<u8>> = ROOT_ENTRIES
        .iter()
        .map(|(e, _)| store.entry_bytes(e))
        .collect();
    assert_eq!(entries, after);

    // `FPR!` (exactly that subkey, for GnuPG) gets an accurate error, not "group names".
    fs::write(store.file("ops/.gpg-id"), format!("{}!\n", alice.fpr)).unwrap();
    git_commit_all(store, "Exactly alice's primary");
    lab.vault_as(store, alice, &["members"])
        .fails()
        .stderr_has("ops/.gpg-id line 1")
        .stderr_has("'!' asks GnuPG for exactly that key or subkey");
}

#[test]
fn content_vault_cannot_read_is_reported_and_named_never_skipped() {
    let team = adopted_team();
    let (lab, store, alice) = (&team.lab, &team.store, &team.alice);
    // A half-finished move to passage: an age file and the recipients who can read it.
    fs::create_dir_all(store.file("cloud")).unwrap();
    fs::write(
        store.file("cloud/.age-recipients"),
        "# bob\nage1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj\n",
    )
    .unwrap();
    fs::write(
        store.file("cloud/aws-root.age"),
        "age-encryption.org/v1\n-> X25519 x\n",
    )
    .unwrap();
    // A submodule holding another store.
    fs::create_dir(store.file("vendor-store")).unwrap();
    store.git_ok(&[
        "update-index",
        "--add",
        "--cacheinfo",
        "160000,1111111111111111111111111111111111111111,vendor-store",
    ]);
    git_commit_all(store, "Half-migrated");

    let audit = lab.vault_as(store, alice, &["audit"]);
    assert_eq!(audit.code, Some(3), "{audit}");
    audit
        .stdout_has("cloud/aws-root.age: an age-encrypted file (passage)")
        .stdout_has("cloud/.age-recipients: age recipients (passage)")
        .stdout_has("vendor-store: a git submodule");

    let out = lab.vault_as(store, alice, &["--yes", "remove-member", "bob"]);
    out.ok()
        .stdout_has("vault could not re-encrypt what follows, and bob may still read it now:")
        .stdout_has("  cloud/aws-root.age: an age-encrypted file")
        .stdout_has("  vendor-store: a git submodule");
    let out = lab.vault_as(store, alice, &team.carol.add_member_args());
    out.ok()
        .stdout_has("so carol cannot read it yet")
        .stdout_has("  cloud/aws-root.age");
}

#[test]
fn counts_agree_with_their_nouns_and_hints_do_not_force_rotation() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    introduce(&[&alice, &bob]);
    let store = lab.store("store");
    lab.pass(&store, &alice, &["init", &alice.fpr], "").ok();
    lab.pass(&store, &alice, &["git", "init"], "").ok();
    insert_entries(&lab, &store, &alice, &[("bank", "pw\n")]);
    lab.vault_as(&store, &alice, &["init"])
        .ok()
        .stdout_has("(1 entry)")
        .stdout_has("now trusts this key as");
    lab.vault_as(&store, &alice, &bob.add_member_args())
        .ok()
        .stdout_has("1 entry now readable by bob");
    lab.vault_as(&store, &alice, &["audit"])
        .ok()
        .stdout_has("1 entry in 1 folder, 2 members: 0 problems, 0 warnings, 0 entries to rotate");
    // The same key under another name: the hint must not send them down the rotation path.
    let mut again = bob.add_member_args().to_vec();
    again.extend(["--name", "robert"]);
    lab.vault_as(&store, &alice, &again)
        .fails()
        .stderr_has("do not remove and re-add them");
    let out = lab.vault_as(&store, &alice, &["--yes", "remove-member", "bob"]);
    out.ok()
        .stdout_has("1 entry re-encrypted")
        .stdout_has("bob could read this entry");
}

#[test]
fn entries_with_hidden_recipients_count_as_readable_by_a_member_who_leaves() {
    let team = adopted_team(); // root: alice, bob; ops/: alice
    let (lab, store, alice, bob) = (&team.lab, &team.store, &team.alice, &team.bob);
    let hidden = [("ops/hidden", "h-pw\n")];
    encrypt_as(
        alice,
        hidden[0].1,
        &store.entry_file(hidden[0].0),
        &[&alice.fpr, &bob.fpr],
        &["--throw-keyids"],
    );
    git_commit_all(store, "Save ops/hidden with hidden recipients");
    // Nobody can tell whether bob can read it: it is listed to rotate, and re-encrypted to its
    // folder's readers with named recipients.
    let before = store.entry_bytes("ops/hidden");
    let out = lab.vault_as(store, alice, &["--yes", "remove-member", "bob"]);
    out.ok().stdout_has("  ops/hidden");
    assert_ne!(before, store.entry_bytes("ops/hidden"));
    let pkesks = alice.gpg.pkesk_key_ids(&store.entry_file("ops/hidden"));
    assert_eq!(pkesks, alice.encryption_subkeys());
    lab.assert_reads(store, alice, &hidden);
}

/// A certificate for `owner` that also binds `victim`'s primary key as an encryption subkey:
/// anyone can publish one (a binding is signed by the certificate's own primary key only).
fn certificate_grafting(owner: &Person, victim: &Person) -> Vec<u8> {
    use openpgp::packet::signature::SignatureBuilder;
    use openpgp::parse::Parse;
    use openpgp::serialize::SerializeInto;
    use openpgp::types::{KeyFlags, SignatureType};
    use sequoia_openpgp as openpgp;
    let secret = openpgp::Cert::from_file(&owner.secret).unwrap();
    let stolen = openpgp::Cert::from_file(&victim.public).unwrap();
    let subkey = stolen.primary_key().key().clone().role_into_subordinate();
    let mut signer = secret
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let flags = KeyFlags::empty()
        .set_transport_encryption()
        .set_storage_encryption();
    let binding = subkey
        .bind(
            &mut signer,
            &secret,
            SignatureBuilder::new(SignatureType::SubkeyBinding)
                .set_key_flags(flags)
                .unwrap(),
        )
        .unwrap();
    let (grafted, _) = secret
        .strip_secret_key_material()
        .insert_packets(vec![openpgp::Packet::from(subkey), binding.into()])
        .unwrap();
    let armored = grafted.armored().to_vec().unwrap();
    armored
}

#[test]
fn a_certificate_that_binds_a_members_key_cannot_make_their_line_ambiguous() {
    let team = adopted_team();
    let (lab, store, alice) = (&team.lab, &team.store, &team.alice);
    let mallory = Person::generate("mallory", KeyKind::Ed25519);
    fs::write(
        store.file(&format!(".public-keys/{}", mallory.fpr)),
        certificate_grafting(&mallory, alice),
    )
    .unwrap();
    git_commit_all(store, "A key that claims alice's");
    // alice's line in .gpg-id still names alice alone: nothing is blocked, nothing taken over.
    lab.vault_as(store, alice, &["members"]).ok();
    lab.vault_as(store, alice, &team.carol.add_member_args())
        .ok();
    lab.assert_reads(store, alice, ROOT_ENTRIES);
}
