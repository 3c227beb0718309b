//! The real vault binary against the real GnuPG and pass: stores made by pass are adopted, members
//! are added and removed, and each person's own GnuPG (`pass show`) decides who can read what.
//! After every vault change `pass init` with the same ids must re-encrypt nothing.

mod common;

use std::fs;

use common::*;

fn entries_of(list: &[&[(&'static str, &'static str)]]) -> Vec<(&'static str, &'static str)> {
    list.iter().flat_map(|l| l.iter().copied()).collect()
}

fn bytes_of(store: &Store, entries: &[(&str, &str)]) -> Vec<Vec<u8>> {
    entries.iter().map(|(e, _)| store.entry_bytes(e)).collect()
}

fn members_json(lab: &Lab, store: &Store, who: &Person) -> serde_json::Value {
    let out = lab.vault(store, who, &["members", "--json"]);
    out.ok();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("vault members --json is not JSON ({e}):\n{out}"))
}

/// The folders (without trailing '/', root = "/") a member reads according to `vault members --json`.
fn folders_of(json: &serde_json::Value, name: &str) -> Vec<String> {
    let m = json["members"]
        .as_array()
        .expect("members is an array")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no member {name} in {json:#}"));
    let mut f: Vec<String> = m["folders"]
        .as_array()
        .expect("folders is an array")
        .iter()
        .map(|f| {
            let f = f.as_str().unwrap();
            if f == "/" {
                "/".to_string()
            } else {
                f.trim_end_matches('/').to_string()
            }
        })
        .collect();
    f.sort();
    f
}

// ---------------------------------------------------------------------------------------------
// 1. Adopting stores
// ---------------------------------------------------------------------------------------------

#[test]
fn init_adopts_a_store_made_by_pass() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    introduce(&[&alice, &bob]);
    let store = pass_store(&lab, &alice, &[&alice, &bob], &[&alice]);
    let all = entries_of(&[ROOT_ENTRIES, OPS_ENTRIES]);
    let commits = store.commit_count();
    let before = bytes_of(&store, &all);
    let root_ids = store.read(".gpg-id");
    let ops_ids = store.read("ops/.gpg-id");

    lab.vault(&store, &alice, &["init"]).ok();

    assert_eq!(
        store.commit_count(),
        commits + 1,
        "vault init makes exactly one commit"
    );
    store.assert_clean();
    assert_eq!(
        bytes_of(&store, &all),
        before,
        "vault init must not re-encrypt"
    );
    assert_eq!(store.read(".gpg-id"), root_ids);
    assert_eq!(store.read("ops/.gpg-id"), ops_ids);

    // .members.toml names each member after their e-mail's local part.
    let toml = store.members_toml();
    let members = toml["members"].as_table().expect("[members] table");
    assert_eq!(members.len(), 2, "{toml}");
    assert_eq!(members["alice"].as_str(), Some(alice.fpr.as_str()));
    assert_eq!(members["bob"].as_str(), Some(bob.fpr.as_str()));

    // .public-keys/<FPR>: armored public keys only, of exactly that key.
    let inspector = Gpg::new();
    for p in [&alice, &bob] {
        let rel = format!(".public-keys/{}", p.fpr);
        let text = store.read(&rel);
        assert!(
            text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
            "{rel} is not armored"
        );
        assert!(!text.contains("PRIVATE KEY"), "{rel} holds secret material");
        let listing = inspector.gpg([
            "--with-colons",
            "--import-options",
            "show-only",
            "--import",
            store.file(&rel).to_str().unwrap(),
        ]);
        listing.ok();
        assert_eq!(
            primary_fingerprints(&listing.stdout),
            vec![p.fpr.clone()],
            "{rel}"
        );
        assert!(
            !listing.stdout.lines().any(|l| l.starts_with("sec:")),
            "{rel}"
        );
    }
    let committed = store.git_ok(&["ls-files"]);
    assert!(
        committed.lines().any(|l| l == ".members.toml"),
        "{committed}"
    );
    assert!(committed
        .lines()
        .any(|l| l == format!(".public-keys/{}", alice.fpr)));

    // `vault members` sees who reads which folder.
    let json = members_json(&lab, &store, &alice);
    assert_eq!(folders_of(&json, "alice"), vec!["/", "ops"]);
    assert_eq!(folders_of(&json, "bob"), vec!["/"]);

    // pass keeps working on the adopted store.
    lab.assert_reads(&store, &bob, ROOT_ENTRIES);
    lab.assert_reads(&store, &alice, &all);
    lab.pass(&store, &alice, &["insert", "-m", "new/one"], "n3w\n")
        .ok();
    store.assert_clean();
    lab.assert_reads(&store, &bob, &[("new/one", "n3w\n")]);
}

#[test]
fn init_resolves_emails_and_key_ids_in_gpg_id() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    let carol = Person::generate("carol", KeyKind::Ed25519);
    introduce(&[&alice, &bob, &carol]);
    let store = lab.store("store");
    let bob_keyid = &bob.fpr[24..];
    lab.pass(&store, &alice, &["init", &alice.email, bob_keyid], "")
        .ok();
    lab.pass(&store, &alice, &["git", "init"], "").ok();
    insert_entries(&lab, &store, &alice, ROOT_ENTRIES);

    lab.vault(
        &store,
        &alice,
        &["init", "--name", &format!("{}=robert", bob.fpr)],
    )
    .ok();
    let toml = store.members_toml();
    let members = toml["members"].as_table().unwrap();
    assert_eq!(
        members["alice"].as_str(),
        Some(alice.fpr.as_str()),
        "{toml}"
    );
    assert_eq!(members["robert"].as_str(), Some(bob.fpr.as_str()), "{toml}");
    assert!(store.file(&format!(".public-keys/{}", bob.fpr)).is_file());

    lab.vault_as(&store, &alice, &carol.add_member_args()).ok();
    // vault writes only full fingerprints.
    let mut ids = store.gpg_ids("");
    ids.sort();
    let mut want = vec![alice.fpr.clone(), bob.fpr.clone(), carol.fpr.clone()];
    want.sort();
    assert_eq!(ids, want, "root .gpg-id after add-member");
    for p in [&alice, &bob, &carol] {
        lab.assert_reads(&store, p, ROOT_ENTRIES);
    }
    lab.assert_pass_init_reencrypts_nothing(&store, &alice, "");
}

#[test]
fn init_makes_a_plain_pass_folder_a_git_repository() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let store = lab.store("store");
    lab.pass(&store, &alice, &["init", &alice.fpr], "").ok();
    insert_entries(&lab, &store, &alice, ROOT_ENTRIES);
    assert!(!store.file(".git").exists());

    lab.vault(&store, &alice, &["init"]).ok();

    assert_eq!(store.commit_count(), 1);
    store.assert_clean();
    let tracked = store.git_ok(&["ls-files"]);
    for (e, _) in ROOT_ENTRIES {
        assert!(
            tracked.lines().any(|l| l == format!("{e}.gpg")),
            "{e}.gpg not committed"
        );
    }
    // pass now commits its own changes in that repository.
    lab.pass(&store, &alice, &["insert", "-m", "later"], "x\n")
        .ok();
    assert_eq!(store.commit_count(), 2);
    store.assert_clean();
}

#[test]
fn init_with_a_key_file_creates_a_store_that_pass_uses() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    introduce(&[&alice, &bob]);
    let store = lab.store("new/store");

    lab.vault(
        &store,
        &alice,
        &["init", alice.public_str(), "--name", "alice"],
    )
    .ok();

    assert_eq!(store.gpg_ids(""), vec![alice.fpr.clone()]);
    assert_eq!(store.commit_count(), 1);
    store.assert_clean();
    assert!(store.file(&format!(".public-keys/{}", alice.fpr)).is_file());
    let toml = store.members_toml();
    assert_eq!(toml["members"]["alice"].as_str(), Some(alice.fpr.as_str()));

    insert_entries(&lab, &store, &alice, ROOT_ENTRIES);
    store.assert_clean();
    lab.vault_as(&store, &alice, &["--yes", "add-member", bob.public_str()])
        .ok();
    lab.assert_reads(&store, &bob, ROOT_ENTRIES);
    lab.assert_pass_init_reencrypts_nothing(&store, &alice, "");
}

// ---------------------------------------------------------------------------------------------
// 2-3. Adding members
// ---------------------------------------------------------------------------------------------

#[test]
fn add_member_reads_root_entries_not_ops_and_pass_init_agrees() {
    let t = adopted_team();
    let (lab, store) = (&t.lab, &t.store);
    let commits = store.commit_count();
    let ops_before = bytes_of(store, OPS_ENTRIES);
    let ops_ids = store.read("ops/.gpg-id");

    let out = lab.vault_as(store, &t.alice, &t.carol.add_member_args());
    out.ok();

    assert_eq!(
        store.commit_count(),
        commits + 1,
        "add-member makes exactly one commit"
    );
    store.assert_clean();
    let subject = store.last_subject();
    assert!(
        subject.starts_with("Add member"),
        "commit subject: {subject}"
    );
    assert!(subject.contains("carol"), "commit subject: {subject}");
    let message = store.last_message();
    assert!(message.contains("Vault-Action: add-member"), "{message}");
    assert_eq!(
        store.git_ok(&["log", "-1", "--format=%an <%ae>"]),
        "Vault Test <vault-test@coop.example>",
        "the commit's author comes from git config"
    );
    let changed = store.last_changed_paths();
    for (e, _) in ROOT_ENTRIES {
        assert!(
            changed.contains(&format!("{e}.gpg")),
            "{e}.gpg not in the commit: {changed:?}"
        );
        store.assert_private(&format!("{e}.gpg"));
    }
    for (e, _) in OPS_ENTRIES {
        assert!(
            !changed.contains(&format!("{e}.gpg")),
            "{e}.gpg changed: {changed:?}"
        );
    }
    store.assert_private(&format!(".public-keys/{}", t.carol.fpr));

    // carol's own GnuPG reads every root entry, and none under ops/.
    lab.assert_reads(store, &t.carol, ROOT_ENTRIES);
    lab.assert_cannot_read(store, &t.carol, OPS_ENTRIES);
    lab.assert_reads(store, &t.alice, &entries_of(&[ROOT_ENTRIES, OPS_ENTRIES]));
    lab.assert_reads(store, &t.bob, ROOT_ENTRIES);
    lab.assert_cannot_read(store, &t.bob, OPS_ENTRIES);
    assert_eq!(
        bytes_of(store, OPS_ENTRIES),
        ops_before,
        "ops/ entries must not be touched"
    );
    assert_eq!(store.read("ops/.gpg-id"), ops_ids);

    assert!(store.gpg_ids("").contains(&t.carol.fpr));
    assert!(store
        .file(&format!(".public-keys/{}", t.carol.fpr))
        .is_file());
    assert_eq!(
        store.members_toml()["members"]["carol"].as_str(),
        Some(t.carol.fpr.as_str())
    );

    // Exactly one PKESK per encryption subkey of the .gpg-id, in a format GnuPG 2.2 reads.
    let want = subkeys_of(&t.alice, &[&t.alice, &t.bob, &t.carol]);
    assert_pkesks(store, &t.alice, ROOT_ENTRIES, &want);
    for (e, _) in ROOT_ENTRIES {
        assert_gnupg_format(store, &t.carol, e);
    }

    // pass agrees that every entry is encrypted to the right keys.
    lab.assert_pass_init_reencrypts_nothing(store, &t.alice, "");
    lab.assert_pass_init_reencrypts_nothing(store, &t.alice, "ops");
}

#[test]
fn add_member_to_a_folder_with_its_own_gpg_id() {
    let t = adopted_team();
    let (lab, store) = (&t.lab, &t.store);
    let root_before = bytes_of(store, ROOT_ENTRIES);
    let root_ids = store.read(".gpg-id");
    let commits = store.commit_count();

    lab.vault_as(
        store,
        &t.alice,
        &[
            "--yes",
            "add-member",
            t.carol.public_str(),
            "--folder",
            "ops",
        ],
    )
    .ok();

    assert_eq!(store.commit_count(), commits + 1);
    store.assert_clean();
    lab.assert_reads(store, &t.carol, OPS_ENTRIES);
    lab.assert_reads(store, &t.alice, OPS_ENTRIES);
    lab.assert_cannot_read(store, &t.carol, ROOT_ENTRIES);
    lab.assert_cannot_read(store, &t.bob, OPS_ENTRIES);
    assert_eq!(
        bytes_of(store, ROOT_ENTRIES),
        root_before,
        "root entries must not be touched"
    );
    assert_eq!(store.read(".gpg-id"), root_ids);
    let mut ids = store.gpg_ids("ops");
    ids.sort();
    let mut want = vec![t.alice.fpr.clone(), t.carol.fpr.clone()];
    want.sort();
    assert_eq!(ids, want);

    let json = members_json(lab, store, &t.alice);
    assert_eq!(folders_of(&json, "carol"), vec!["ops"]);

    lab.assert_pass_init_reencrypts_nothing(store, &t.alice, "ops");
    lab.assert_pass_init_reencrypts_nothing(store, &t.alice, "");
}

#[test]
fn add_member_to_a_folder_without_gpg_id_creates_one_from_inherited_recipients() {
    let t = adopted_team();
    let (lab, store) = (&t.lab, &t.store);
    let web = &[ROOT_ENTRIES[2]];
    assert_eq!(web[0].0, "web/shop");
    let others = &ROOT_ENTRIES[..2];
    let others_before = bytes_of(store, others);
    assert!(!store.file("web/.gpg-id").exists());

    lab.vault_as(
        store,
        &t.alice,
        &[
            "add-member",
            t.carol.public_str(),
            "--folder",
            "web",
            "--fingerprint",
            &t.carol.fpr,
        ],
    )
    .ok();

    store.assert_clean();
    let mut ids = store.gpg_ids("web");
    ids.sort();
    let mut want = vec![t.alice.fpr.clone(), t.bob.fpr.clone(), t.carol.fpr.clone()];
    want.sort();
    assert_eq!(ids, want, "web/.gpg-id = inherited recipients + carol");
    store.assert_private("web/.gpg-id");
    store.assert_private("web/shop.gpg");
    assert_eq!(store.gpg_ids("").len(), 2, "root .gpg-id unchanged");
    for p in [&t.alice, &t.bob, &t.carol] {
        lab.assert_reads(store, p, web);
    }
    lab.assert_cannot_read(store, &t.carol, others);
    lab.assert_cannot_read(store, &t.carol, OPS_ENTRIES);
    assert_eq!(bytes_of(store, others), others_before);

    lab.assert_pass_init_reencrypts_nothing(store, &t.alice, "web");
    lab.assert_pass_init_reencrypts_nothing(store, &t.alice, "");
}

// ---------------------------------------------------------------------------------------------
// 4. Removing members
// ---------------------------------------------------------------------------------------------

#[test]
fn remove_member_locks_them_out_and_lists_what_to_rotate() {
    let t = adopted_team();
    let (lab, store) = (&t.lab, &t.store);
    lab.vault_as(store, &t.alice, &t.carol.add_member_args())
        .ok();
    lab.assert_reads(store, &t.bob, ROOT_ENTRIES);
    let bob_subkeys = t.bob.encryption_subkeys();
    let session_keys: Vec<String> = ROOT_ENTRIES
        .iter()
        .map(|(e, _)| t.alice.gpg.session_key(&store.entry_file(e)))
        .collect();
    let ops_before = bytes_of(store, OPS_ENTRIES);
    let commits = store.commit_count();

    let out = lab.vault_as(store, &t.alice, &["--yes", "remove-member", "bob"]);
    out.ok();

    assert_eq!(
        store.commit_count(),
        commits + 1,
        "remove-member makes exactly one commit"
    );
    store.assert_clean();
    let subject = store.last_subject();
    assert!(
        subject.starts_with("Remove member bob"),
        "commit subject: {subject}"
    );

    // bob's own GnuPG reads nothing any more; alice and carol still read everything they did.
    lab.assert_cannot_read(store, &t.bob, ROOT_ENTRIES);
    lab.assert_reads(store, &t.alice, &entries_of(&[ROOT_ENTRIES, OPS_ENTRIES]));
    lab.assert_reads(store, &t.carol, ROOT_ENTRIES);
    assert_eq!(
        bytes_of(store, OPS_ENTRIES),
        ops_before,
        "bob never read ops/"
    );

    // Fresh session keys: bob may have kept the old ones.
    for ((e, _), old) in ROOT_ENTRIES.iter().zip(&session_keys) {
        let new = t.alice.gpg.session_key(&store.entry_file(e));
        assert_ne!(&new, old, "{e} kept its session key after removing bob");
        assert_gnupg_format(store, &t.carol, e);
    }
    let want = subkeys_of(&t.alice, &[&t.alice, &t.carol]);
    assert_pkesks(store, &t.alice, ROOT_ENTRIES, &want);

    // The output lists what bob could read, to rotate; not what he never could.
    for (e, _) in ROOT_ENTRIES {
        out.stdout_has(e);
    }
    for (e, _) in OPS_ENTRIES {
        assert!(
            !out.stdout.contains(e),
            "{e} listed though bob never read it:\n{out}"
        );
    }

    assert!(!store.file(&format!(".public-keys/{}", t.bob.fpr)).exists());
    assert!(!store.gpg_ids("").contains(&t.bob.fpr));
    let toml = store.members_toml();
    assert!(toml["members"].get("bob").is_none(), "{toml}");
    let former = toml["former"].as_array().expect("a [[former]] list");
    let f = former
        .iter()
        .find(|f| f["name"].as_str() == Some("bob"))
        .unwrap_or_else(|| panic!("bob is not recorded as a former member:\n{toml}"));
    assert_eq!(f["fingerprint"].as_str(), Some(t.bob.fpr.as_str()));
    let recorded: Vec<String> = f["encryption_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_uppercase())
        .collect();
    for k in &bob_subkeys {
        assert!(
            recorded.contains(k),
            "former bob: {k} not among {recorded:?}"
        );
    }

    lab.assert_pass_init_reencrypts_nothing(store, &t.alice, "");
    lab.assert_pass_init_reencrypts_nothing(store, &t.alice, "ops");
}

#[test]
fn remove_member_from_one_folder_keeps_them_elsewhere() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    introduce(&[&alice, &bob]);
    let store = pass_store(&lab, &alice, &[&alice, &bob], &[&alice, &bob]);
    lab.vault(&store, &alice, &["init"]).ok();
    let root_before = bytes_of(&store, ROOT_ENTRIES);

    let out = lab.vault_as(
        &store,
        &alice,
        &["--yes", "remove-member", "bob", "--folder", "ops"],
    );
    out.ok();

    store.assert_clean();
    lab.assert_cannot_read(&store, &bob, OPS_ENTRIES);
    lab.assert_reads(&store, &bob, ROOT_ENTRIES);
    lab.assert_reads(&store, &alice, OPS_ENTRIES);
    assert_eq!(bytes_of(&store, ROOT_ENTRIES), root_before);
    assert_eq!(store.gpg_ids("ops"), vec![alice.fpr.clone()]);
    assert!(
        store.file(&format!(".public-keys/{}", bob.fpr)).is_file(),
        "bob is still a member"
    );
    assert_eq!(
        store.members_toml()["members"]["bob"].as_str(),
        Some(bob.fpr.as_str())
    );
    for (e, _) in OPS_ENTRIES {
        out.stdout_has(e);
    }
    lab.assert_pass_init_reencrypts_nothing(&store, &alice, "ops");
}

// ---------------------------------------------------------------------------------------------
// 5. Key types
// ---------------------------------------------------------------------------------------------

#[test]
fn rsa3072_member_and_operator() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let rob = Person::generate("rob", KeyKind::Rsa3072);
    let dave = Person::generate("dave", KeyKind::Ed25519);
    introduce(&[&alice, &rob, &dave]);
    let store = pass_store(&lab, &alice, &[&alice], &[&alice]);
    lab.vault(&store, &alice, &["init"]).ok();

    lab.vault_as(&store, &alice, &rob.add_member_args()).ok();
    lab.assert_reads(&store, &rob, ROOT_ENTRIES);
    lab.assert_cannot_read(&store, &rob, OPS_ENTRIES);
    assert_pkesks(
        &store,
        &alice,
        ROOT_ENTRIES,
        &subkeys_of(&alice, &[&alice, &rob]),
    );
    lab.assert_pass_init_reencrypts_nothing(&store, &alice, "");

    // rob, with his RSA key, operates vault.
    lab.vault_as(&store, &rob, &dave.add_member_args()).ok();
    for p in [&alice, &rob, &dave] {
        lab.assert_reads(&store, p, ROOT_ENTRIES);
    }
    for (e, _) in ROOT_ENTRIES {
        assert_gnupg_format(&store, &rob, e);
    }
    lab.assert_pass_init_reencrypts_nothing(&store, &rob, "");
}

#[test]
fn key_with_two_encryption_subkeys_gets_a_pkesk_for_each() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let tess = Person::generate("tess", KeyKind::TwoEncryptionSubkeys);
    introduce(&[&alice, &tess]);
    let tess_subkeys = tess.encryption_subkeys();
    assert_eq!(
        tess_subkeys.len(),
        2,
        "the fixture key has two encryption subkeys"
    );
    let store = pass_store(&lab, &alice, &[&alice], &[&alice]);
    lab.vault(&store, &alice, &["init"]).ok();

    lab.vault_as(&store, &alice, &tess.add_member_args()).ok();

    for (e, _) in ROOT_ENTRIES {
        let ids = alice.gpg.pkesk_key_ids(&store.entry_file(e));
        for k in &tess_subkeys {
            assert!(
                ids.contains(k),
                "{e}: no PKESK for tess's subkey {k}; PKESKs: {ids:?}"
            );
        }
    }
    assert_pkesks(
        &store,
        &alice,
        ROOT_ENTRIES,
        &subkeys_of(&alice, &[&alice, &tess]),
    );
    lab.assert_reads(&store, &tess, ROOT_ENTRIES);
    lab.assert_pass_init_reencrypts_nothing(&store, &alice, "");

    // Removing tess records both her encryption subkeys.
    lab.vault_as(&store, &alice, &["--yes", "remove-member", "tess"])
        .ok();
    lab.assert_cannot_read(&store, &tess, ROOT_ENTRIES);
    let toml = store.members_toml();
    let former = toml["former"].as_array().expect("[[former]]");
    let recorded: Vec<String> = former[0]["encryption_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_uppercase())
        .collect();
    for k in &tess_subkeys {
        assert!(
            recorded.contains(k),
            "former tess: {k} not among {recorded:?}"
        );
    }
    lab.assert_pass_init_reencrypts_nothing(&store, &alice, "");
}

#[test]
fn sequoia_generated_demo_keys() {
    let lab = Lab::new();
    let akshay = Person::from_files(
        "akshay",
        &demo_key("akshay.asc"),
        Some(&demo_key("akshay.secret.asc")),
    );
    let nick = Person::from_files("nick", &demo_key("nick.asc"), None);
    let eduardo = Person::from_files("eduardo", &demo_key("eduardo.asc"), None);
    let noah = Person::from_files("noah", &demo_key("noah.asc"), None);
    let will = Person::from_files("will", &demo_key("will.asc"), None);
    for p in [&nick, &eduardo, &noah, &will] {
        akshay.gpg.import(&p.public);
    }

    // A new store with a sequoia key, filled by pass (GnuPG encrypting to the sequoia key).
    let store = lab.store("store");
    lab.vault(
        &store,
        &akshay,
        &["init", akshay.public_str(), "--name", "akshay"],
    )
    .ok();
    insert_entries(&lab, &store, &akshay, ROOT_ENTRIES);
    lab.pass(&store, &akshay, &["init", "-p", "ops", &akshay.fpr], "")
        .ok();
    insert_entries(&lab, &store, &akshay, OPS_ENTRIES);
    store.assert_clean();

    let id = akshay.secret_str();
    for p in [&nick, &noah, &will] {
        lab.vault(
            &store,
            &akshay,
            &[
                "--identity",
                id,
                "add-member",
                p.public_str(),
                "--fingerprint",
                &p.fpr,
            ],
        )
        .ok();
    }
    lab.vault(
        &store,
        &akshay,
        &[
            "--identity",
            id,
            "--yes",
            "add-member",
            eduardo.public_str(),
            "--folder",
            "ops",
        ],
    )
    .ok();
    store.assert_clean();

    // GnuPG 2.2 reads what vault wrote to these sequoia keys.
    lab.assert_reads(&store, &akshay, &entries_of(&[ROOT_ENTRIES, OPS_ENTRIES]));
    for (e, _) in entries_of(&[ROOT_ENTRIES, OPS_ENTRIES]) {
        assert_gnupg_format(&store, &akshay, e);
    }
    assert_pkesks(
        &store,
        &akshay,
        ROOT_ENTRIES,
        &subkeys_of(&akshay, &[&akshay, &nick, &noah, &will]),
    );
    assert_pkesks(
        &store,
        &akshay,
        OPS_ENTRIES,
        &subkeys_of(&akshay, &[&akshay, &eduardo]),
    );
    lab.assert_pass_init_reencrypts_nothing(&store, &akshay, "");
    lab.assert_pass_init_reencrypts_nothing(&store, &akshay, "ops");

    let json = members_json(&lab, &store, &akshay);
    assert_eq!(folders_of(&json, "akshay"), vec!["/", "ops"]);
    assert_eq!(folders_of(&json, "eduardo"), vec!["ops"]);
    assert_eq!(folders_of(&json, "will"), vec!["/"]);

    // And removing one of them re-encrypts to what pass expects.
    lab.vault(
        &store,
        &akshay,
        &["--identity", id, "--yes", "remove-member", "will"],
    )
    .ok();
    assert_pkesks(
        &store,
        &akshay,
        ROOT_ENTRIES,
        &subkeys_of(&akshay, &[&akshay, &nick, &noah]),
    );
    lab.assert_reads(&store, &akshay, ROOT_ENTRIES);
    lab.assert_pass_init_reencrypts_nothing(&store, &akshay, "");
    assert!(fs::metadata(store.file(&format!(".public-keys/{}", will.fpr))).is_err());
}

/// Keys made with sequoia's defaults advertise SEIPDv2. When every recipient does, a naive
/// sequoia encryptor writes SEIPDv2, which GnuPG 2.2 and pass cannot read; vault must not.
#[test]
fn sequoia_default_keys_advertising_seipdv2_still_get_seipdv1() {
    let lab = Lab::new();
    let sam = Person::sequoia_default("sam");
    let uma = Person::sequoia_default("uma");
    introduce(&[&sam, &uma]);
    let store = lab.store("store");
    lab.vault(&store, &sam, &["init", sam.public_str(), "--name", "sam"])
        .ok();
    insert_entries(&lab, &store, &sam, ROOT_ENTRIES);

    lab.vault_as(&store, &sam, &uma.add_member_args()).ok();
    for p in [&sam, &uma] {
        lab.assert_reads(&store, p, ROOT_ENTRIES);
    }
    // Removing uma encrypts every entry afresh, to sam alone: all recipients advertise SEIPDv2.
    lab.vault_as(&store, &sam, &["--yes", "remove-member", "uma"])
        .ok();
    lab.assert_reads(&store, &sam, ROOT_ENTRIES);
    lab.assert_cannot_read(&store, &uma, ROOT_ENTRIES);
    for (e, _) in ROOT_ENTRIES {
        assert_gnupg_format(&store, &sam, e);
    }
    assert_pkesks(&store, &sam, ROOT_ENTRIES, &subkeys_of(&sam, &[&sam]));
    lab.assert_pass_init_reencrypts_nothing(&store, &sam, "");
}

// ---------------------------------------------------------------------------------------------
// Environment, and the harness itself
// ---------------------------------------------------------------------------------------------

#[test]
fn store_and_identity_from_the_environment() {
    let t = adopted_team();
    let (lab, store) = (&t.lab, &t.store);
    lab.vault_env(
        t.alice.gpg.home(),
        &[
            ("PASSWORD_STORE_DIR", &store.path),
            ("VAULT_IDENTITY", &t.alice.secret),
        ],
        &t.carol.add_member_args(),
    )
    .ok();
    lab.assert_reads(store, &t.carol, ROOT_ENTRIES);
    store.assert_clean();
}

/// Without --identity, vault decrypts through the operator's own gpg-agent (their GNUPGHOME).
#[test]
fn operator_key_from_gpg_agent() {
    let t = adopted_team();
    let (lab, store) = (&t.lab, &t.store);
    lab.vault(store, &t.alice, &t.carol.add_member_args()).ok();
    lab.assert_reads(store, &t.carol, ROOT_ENTRIES);
    lab.assert_pass_init_reencrypts_nothing(store, &t.alice, "");

    // carol, a new member, removes bob with her own GnuPG.
    lab.vault(store, &t.carol, &["--yes", "remove-member", "bob"])
        .ok();
    lab.assert_cannot_read(store, &t.bob, ROOT_ENTRIES);
    lab.assert_reads(store, &t.carol, ROOT_ENTRIES);
    lab.assert_reads(store, &t.alice, ROOT_ENTRIES);
    lab.assert_pass_init_reencrypts_nothing(store, &t.alice, "");
    store.assert_clean();
}

/// The check used after every vault change really catches entries pass would re-encrypt: GnuPG
/// itself encrypts to only one of a key's two encryption subkeys, so `pass init` re-encrypts a
/// store pass made for such a key (which is why vault must encrypt to every subkey).
#[test]
#[should_panic(expected = "pass init re-encrypted")]
fn harness_catches_entries_pass_would_reencrypt() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let tess = Person::generate("tess", KeyKind::TwoEncryptionSubkeys);
    introduce(&[&alice, &tess]);
    let store = lab.store("store");
    lab.pass(&store, &alice, &["init", &alice.fpr, &tess.fpr], "")
        .ok();
    lab.pass(&store, &alice, &["git", "init"], "").ok();
    insert_entries(&lab, &store, &alice, &ROOT_ENTRIES[..1]);
    lab.assert_pass_init_reencrypts_nothing(&store, &alice, "");
}
