//! Bad input: every refusal exits non-zero, says on stderr which file, key, entry or member is
//! wrong, and leaves the store exactly as it was (work tree bytes, HEAD, git status).

mod common;

use std::fs;

use common::*;

/// Runs `f`, which must fail, and asserts the store is byte-for-byte unchanged afterwards.
#[track_caller]
fn refused(store: &Store, what: &str, f: impl FnOnce() -> Run) -> Run {
    let before = store.snapshot();
    let out = f();
    if std::env::var_os("SHOW").is_some() {
        eprintln!("=== {what}\n{out}");
    }
    out.fails();
    assert!(
        !out.stderr.trim().is_empty(),
        "{what}: no error message:\n{out}"
    );
    assert_same(&before, &store.snapshot(), &format!("by a refused {what}"));
    assert!(
        !store.path.join(".git/vault-journal").exists(),
        "{what}: a journal was left behind"
    );
    out
}

#[test]
fn add_member_refuses_bad_key_files() {
    let t = adopted_team();
    let (lab, store, alice) = (&t.lab, &t.store, &t.alice);
    let dir = alice.gpg.scratch();
    let add = |file: &str| lab.vault_as(store, alice, &["--yes", "add-member", file]);

    // A secret key: refused, with advice to export only the public key.
    let out = refused(store, "add-member SECRET KEY", || add(t.carol.secret_str()));
    out.stderr_has("secret key material")
        .stderr_has("gpg --export")
        .stderr_has(t.carol.secret_str());

    // Garbage, an empty file, a missing file.
    let garbage = dir.join("garbage.asc");
    fs::write(&garbage, b"\x00\x9f this is not an OpenPGP key \xff\xfe\n").unwrap();
    refused(store, "add-member GARBAGE", || {
        add(garbage.to_str().unwrap())
    })
    .stderr_has(garbage.to_str().unwrap());
    let armored_garbage = dir.join("armored.asc");
    fs::write(
        &armored_garbage,
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n",
    )
    .unwrap();
    refused(store, "add-member ARMORED GARBAGE", || {
        add(armored_garbage.to_str().unwrap())
    })
    .stderr_has(armored_garbage.to_str().unwrap());
    let empty = dir.join("empty.asc");
    fs::write(&empty, b"").unwrap();
    refused(store, "add-member EMPTY", || add(empty.to_str().unwrap()))
        .stderr_has(empty.to_str().unwrap())
        .stderr_has("empty");
    let missing = dir.join("missing.asc");
    refused(store, "add-member MISSING", || {
        add(missing.to_str().unwrap())
    })
    .stderr_has(missing.to_str().unwrap());

    // Two certificates in one file.
    let two = dir.join("two.asc");
    let mut both = fs::read(&t.carol.public).unwrap();
    both.extend(fs::read(&t.bob.public).unwrap());
    fs::write(&two, both).unwrap();
    refused(store, "add-member TWO KEYS", || add(two.to_str().unwrap()))
        .stderr_has(two.to_str().unwrap());

    // Someone who is already a member.
    refused(store, "add-member EXISTING MEMBER", || {
        add(t.bob.public_str())
    })
    .stderr_has("bob");

    // A fingerprint that does not match the key.
    let out = refused(store, "add-member WRONG --fingerprint", || {
        lab.vault_as(
            store,
            alice,
            &[
                "add-member",
                t.carol.public_str(),
                "--fingerprint",
                &t.bob.fpr,
            ],
        )
    });
    out.stderr_has(&t.carol.fpr);
}

#[test]
fn add_member_refuses_unusable_keys() {
    let t = adopted_team();
    let (lab, store, alice) = (&t.lab, &t.store, &t.alice);
    for (name, kind, says) in [
        ("signer", KeyKind::SignOnly, "encryption"),
        ("old", KeyKind::Expired, "expired"),
        ("gone", KeyKind::Revoked, "revoked"),
    ] {
        let p = Person::generate(name, kind);
        let out = refused(store, &format!("add-member {kind:?} key"), || {
            lab.vault_as(store, alice, &["--yes", "add-member", p.public_str()])
        });
        out.stderr_has(says).stderr_has(p.public_str());
    }
}

#[test]
fn remove_member_refuses_unknown_names_and_emptying_a_gpg_id() {
    let t = adopted_team();
    let (lab, store, alice) = (&t.lab, &t.store, &t.alice);

    refused(store, "remove-member UNKNOWN", || {
        lab.vault_as(store, alice, &["--yes", "remove-member", "zed"])
    })
    .stderr_has("zed");

    // alice is the only recipient of ops/.gpg-id.
    refused(store, "remove-member LAST RECIPIENT", || {
        lab.vault_as(store, alice, &["--yes", "remove-member", "alice"])
    })
    .stderr_has("ops/.gpg-id");
    refused(store, "remove-member LAST RECIPIENT of a folder", || {
        lab.vault_as(
            store,
            alice,
            &["--yes", "remove-member", "alice", "--folder", "ops"],
        )
    })
    .stderr_has("ops/.gpg-id");

    // bob is not a recipient of ops/.
    refused(store, "remove-member NOT A RECIPIENT of the folder", || {
        lab.vault_as(
            store,
            alice,
            &["--yes", "remove-member", "bob", "--folder", "ops"],
        )
    })
    .stderr_has("bob");
}

#[test]
fn changes_need_an_operator_key_that_can_decrypt() {
    let t = adopted_team();
    let (lab, store) = (&t.lab, &t.store);

    // No --identity, and a GnuPG (gpg-agent) that holds no member's secret key, while entries
    // must be re-encrypted.
    let keyless = Gpg::new();
    for p in [&t.alice, &t.bob, &t.carol] {
        keyless.import(&p.public);
    }
    refused(store, "add-member WITHOUT AN OPERATOR KEY", || {
        lab.vault_with(store, keyless.home(), &t.carol.add_member_args())
    })
    .stderr_has("--identity");
    refused(store, "remove-member WITHOUT AN OPERATOR KEY", || {
        lab.vault_with(store, keyless.home(), &["--yes", "remove-member", "bob"])
    })
    .stderr_has("--identity");

    // bob's gpg-agent (no --identity) cannot decrypt ops/ either.
    let out = refused(store, "add-member --folder ops BY BOB'S GPG-AGENT", || {
        lab.vault(
            store,
            &t.bob,
            &[
                "--yes",
                "add-member",
                t.carol.public_str(),
                "--folder",
                "ops",
            ],
        )
    });
    for (e, _) in OPS_ENTRIES {
        out.stderr_has(e);
    }

    // bob cannot decrypt ops/: the error names exactly those entries.
    let out = refused(store, "add-member --folder ops BY BOB", || {
        lab.vault_as(
            store,
            &t.bob,
            &[
                "--yes",
                "add-member",
                t.carol.public_str(),
                "--folder",
                "ops",
            ],
        )
    });
    for (e, _) in OPS_ENTRIES {
        out.stderr_has(&format!("{e} (readable by alice)"));
    }
    for (e, _) in ROOT_ENTRIES {
        assert!(
            !out.stderr.contains(e),
            "{e} is readable by bob but listed:\n{out}"
        );
    }

    // A public key is not an operator key.
    refused(store, "add-member WITH A PUBLIC KEY AS --identity", || {
        lab.vault(
            store,
            &t.alice,
            &[
                "--identity",
                t.alice.public_str(),
                "--yes",
                "add-member",
                t.carol.public_str(),
            ],
        )
    })
    .stderr_has(t.alice.public_str());
}

#[test]
fn a_dirty_work_tree_is_refused() {
    let t = adopted_team();
    let (lab, store, alice) = (&t.lab, &t.store, &t.alice);
    let bank = store.entry_file("bank");
    let mut bytes = fs::read(&bank).unwrap();
    bytes.push(0);
    fs::write(&bank, bytes).unwrap();

    refused(store, "add-member ON A DIRTY TREE", || {
        lab.vault_as(store, alice, &t.carol.add_member_args())
    })
    .stderr_has("bank.gpg");
    refused(store, "remove-member ON A DIRTY TREE", || {
        lab.vault_as(store, alice, &["--yes", "remove-member", "bob"])
    })
    .stderr_has("bank.gpg");
}

#[test]
fn without_a_terminal_changes_need_yes_or_fingerprint() {
    let t = adopted_team();
    let (lab, store, alice) = (&t.lab, &t.store, &t.alice);
    // stdin is a pipe (not a terminal): vault must fail rather than wait for an answer.
    let out = refused(store, "add-member WITHOUT --yes/--fingerprint", || {
        lab.vault_as(store, alice, &["add-member", t.carol.public_str()])
    });
    assert!(
        out.stderr.contains("--fingerprint") || out.stderr.contains("--yes"),
        "the error should say how to confirm non-interactively:\n{out}"
    );
    let out = refused(store, "remove-member WITHOUT --yes", || {
        lab.vault_as(store, alice, &["remove-member", "bob"])
    });
    out.stderr_has("--yes");
}

#[test]
fn stores_vault_has_not_adopted_or_already_adopted() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    introduce(&[&alice, &bob]);
    let store = pass_store(&lab, &alice, &[&alice], &[&alice]);

    refused(&store, "add-member ON AN UNADOPTED STORE", || {
        lab.vault_as(&store, &alice, &["--yes", "add-member", bob.public_str()])
    })
    .stderr_has("vault init");

    lab.vault(&store, &alice, &["init"]).ok();
    refused(&store, "a second vault init", || {
        lab.vault(&store, &alice, &["init"])
    });

    // A recipient whose key is nowhere to be found: init names it and changes nothing.
    let lab2 = Lab::new();
    let store2 = lab2.store("store");
    lab2.pass(&store2, &alice, &["init", &alice.fpr, &bob.fpr], "")
        .ok();
    lab2.pass(&store2, &alice, &["git", "init"], "").ok();
    insert_entries(&lab2, &store2, &alice, ROOT_ENTRIES);
    let stranger = Gpg::new(); // a GnuPG home with alice's key but not bob's
    stranger.import(&alice.public);
    refused(&store2, "init WITH A MISSING KEY", || {
        lab2.vault_with(&store2, stranger.home(), &["init"])
    })
    .stderr_has(&bob.fpr);
}
