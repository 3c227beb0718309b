//! `vault audit` against stores changed by the real gpg and pass.

mod common;

use common::*;
use serde_json::Value;

fn audit_json(team: &Team) -> (Option<i32>, Value) {
    let out = team
        .lab
        .vault(&team.store, &team.alice, &["audit", "--json"]);
    let doc: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("audit --json is not JSON ({e}):\n{out}"));
    (out.code, doc)
}

fn entry<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no entry {name} in the audit"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn has_problem(e: &Value, needle: &str) -> bool {
    strings(&e["problems"]).iter().any(|p| p.contains(needle))
}

/// Encrypts `plaintext` to exactly `recipients` with `who`'s GnuPG, as pass would, into the
/// entry's file, and commits it with a pass-like content message.
fn encrypt_by_hand(
    team: &Team,
    who: &Person,
    entry: &str,
    plaintext: &str,
    recipients: &[&str],
    message: &str,
) {
    let file = team.store.entry_file(entry);
    let input = who.gpg.scratch().join("plain");
    std::fs::write(&input, plaintext).unwrap();
    let mut args = vec![
        "--yes",
        "--compress-algo",
        "none",
        "--output",
        file.to_str().unwrap(),
        "--encrypt",
    ];
    for r in recipients {
        args.extend(["--recipient", r]);
    }
    args.push(input.to_str().unwrap());
    who.gpg.gpg(&args).ok();
    std::fs::remove_file(&input).unwrap();
    team.store.git_ok(&["commit", "-q", "-a", "-m", message]);
}

#[test]
fn a_clean_store_needs_no_attention_and_the_json_is_complete() {
    let team = adopted_team();
    let (code, doc) = audit_json(&team);
    assert_eq!(code, Some(0), "{doc:#}");
    for key in ["entries", "members", "former_members", "summary"] {
        assert!(doc.get(key).is_some(), "missing top-level {key}");
    }
    let e = entry(&doc, "email/work");
    assert_eq!(e["folder"], "email/");
    assert_eq!(e["gpg_id"], ".gpg-id");
    assert_eq!(strings(&e["readers"]), ["alice", "bob"]);
    assert_eq!(strings(&e["expected"]), ["alice", "bob"]);
    assert!(strings(&e["problems"]).is_empty());
    assert!(strings(&e["rotate"]).is_empty());
    assert_eq!(e["last_changed"]["author"], "Vault Test");
    assert!(e["last_changed"]["commit"].as_str().unwrap().len() >= 7);
    assert!(e["last_changed"]["date"].as_str().unwrap().ends_with('Z'));
    let ops = entry(&doc, "ops/db");
    assert_eq!(ops["gpg_id"], "ops/.gpg-id");
    assert_eq!(strings(&ops["readers"]), ["alice"]);
    let alice = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "alice")
        .unwrap();
    assert_eq!(alice["fingerprint"], team.alice.fpr.as_str());
    assert_eq!(strings(&alice["folders"]), ["/", "ops/"]);
    let total = doc["entries"].as_array().unwrap().len();
    assert_eq!(alice["entries_readable"], total);
    assert_eq!(doc["summary"]["entries"], total);
    assert_eq!(doc["summary"]["problems"], 0);
    assert_eq!(doc["summary"]["entries_to_rotate"], 0);

    // The text report names every entry and says nothing is wrong; no colour when piped.
    let out = team.lab.vault(&team.store, &team.alice, &["audit"]);
    out.ok().stdout_has("email/").stdout_has("0 problems");
    assert!(!out.stdout.contains('\x1b'), "colour codes in piped output");
}

#[test]
fn missing_readers_unknown_keys_and_corrupt_files_are_problems() {
    let team = adopted_team();
    let stranger = Person::generate("stranger", KeyKind::Ed25519);
    introduce(&[&team.alice, &stranger]);
    // Re-encrypted by hand to a subset of its readers: bob is missing.
    encrypt_by_hand(
        &team,
        &team.alice,
        "email/work",
        "pw\n",
        &[&team.alice.fpr],
        "Edit password for email/work using vim.",
    );
    // Encrypted to a stranger's key as well.
    encrypt_by_hand(
        &team,
        &team.alice,
        "web/shop",
        "dns\n",
        &[&team.alice.fpr, &team.bob.fpr, &stranger.fpr],
        "Edit password for web/shop using vim.",
    );
    // A corrupt entry.
    std::fs::write(team.store.entry_file("bank"), b"not openpgp at all").unwrap();
    team.store.git_ok(&["commit", "-q", "-a", "-m", "oops"]);

    let (code, doc) = audit_json(&team);
    assert_eq!(code, Some(3));
    let web1 = entry(&doc, "email/work");
    assert_eq!(strings(&web1["readers"]), ["alice"]);
    assert!(
        has_problem(web1, "bob is in .gpg-id but cannot read it"),
        "{web1:#}"
    );
    let dns = entry(&doc, "web/shop");
    let stranger_id = &team.alice.gpg.encryption_subkeys(&stranger.fpr)[0];
    assert!(
        strings(&dns["readers"])
            .iter()
            .any(|r| r.contains("unknown") && r.contains(stranger_id.as_str())),
        "{dns:#}"
    );
    assert!(has_problem(dns, "unknown key"), "{dns:#}");
    let mail = entry(&doc, "bank");
    assert!(
        has_problem(mail, "not a readable OpenPGP message"),
        "{mail:#}"
    );
    assert!(doc["summary"]["problems"].as_u64().unwrap() >= 3);
}

#[test]
fn a_former_members_exposure_clears_only_when_the_content_changes() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    lab.vault_as(store, &team.alice, &["--yes", "remove-member", "bob"])
        .ok();
    let (code, doc) = audit_json(&team);
    assert_eq!(code, Some(3));
    for (name, _) in ROOT_ENTRIES {
        assert_eq!(strings(&entry(&doc, name)["rotate"]), ["bob"], "{name}");
    }
    for (name, _) in OPS_ENTRIES {
        assert!(
            strings(&entry(&doc, name)["rotate"]).is_empty(),
            "{name} was never bob's"
        );
    }
    let bob = &doc["former_members"][0];
    assert_eq!(bob["name"], "bob");
    assert_eq!(bob["entries_to_rotate"], ROOT_ENTRIES.len());

    // A re-encryption by pass (adding carol) does not change any content: still to rotate.
    let ids: Vec<String> = store.gpg_ids("");
    let mut args: Vec<&str> = vec!["init"];
    args.extend(ids.iter().map(String::as_str));
    args.push(&team.carol.fpr);
    lab.pass(store, &team.alice, &args, "").ok();
    let (_, doc) = audit_json(&team);
    assert_eq!(strings(&entry(&doc, "email/work")["rotate"]), ["bob"]);

    // The credential is changed with pass: the flag clears for that entry only.
    lab.pass(
        store,
        &team.alice,
        &["insert", "-m", "-f", "email/work"],
        "rotated\n",
    )
    .ok();
    let (_, doc) = audit_json(&team);
    let web1 = entry(&doc, "email/work");
    assert!(strings(&web1["rotate"]).is_empty(), "{web1:#}");
    assert_eq!(web1["last_changed"]["author"], "Vault Test");
    assert_eq!(strings(&entry(&doc, "web/shop")["rotate"]), ["bob"]);
    assert_eq!(
        doc["former_members"][0]["entries_to_rotate"],
        ROOT_ENTRIES.len() - 1
    );
}

#[test]
fn member_and_folder_filters() {
    let team = adopted_team();
    let out = team.lab.vault(
        &team.store,
        &team.alice,
        &["audit", "--json", "--member", "bob"],
    );
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        ROOT_ENTRIES.len(),
        "bob reads the root entries only: {names:?}"
    );
    assert!(names.iter().all(|n| !n.starts_with("ops/")));
    assert_eq!(doc["members"].as_array().unwrap().len(), 1);

    let out = team.lab.vault(
        &team.store,
        &team.alice,
        &["audit", "--json", "--folder", "ops"],
    );
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["name"].as_str().unwrap().starts_with("ops/")));

    team.lab
        .vault(&team.store, &team.alice, &["audit", "--member", "nobody"])
        .fails()
        .stderr_has("nobody");
}

#[test]
fn an_expired_member_key_is_a_problem() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let old = Person::generate("old", KeyKind::Expired);
    introduce(&[&alice, &old]);
    let store = lab.store("store");
    lab.pass(&store, &alice, &["init", &alice.fpr], "").ok();
    lab.pass(&store, &alice, &["git", "init"], "").ok();
    lab.pass(&store, &alice, &["insert", "-m", "x"], "x\n").ok();
    // The expired key joins .gpg-id and .public-keys by hand (pass cannot encrypt to it).
    std::fs::write(
        store.file(".gpg-id"),
        format!("{}\n{}\n", alice.fpr, old.fpr),
    )
    .unwrap();
    store.git_ok(&["commit", "-q", "-a", "-m", "Add old"]);
    lab.vault(&store, &alice, &["init"]).ok();
    let out = lab.vault(&store, &alice, &["audit", "--json"]);
    assert_eq!(out.code, Some(3));
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let m = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "old")
        .unwrap();
    assert!(
        strings(&m["problems"])
            .iter()
            .any(|p| p.contains("expired")),
        "{m:#}"
    );
}

#[test]
fn a_gpg_id_line_that_resolves_to_no_key_is_a_store_problem() {
    let team = adopted_team();
    let path = team.store.file("ops/.gpg-id");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("ghost@coop.example\n");
    std::fs::write(&path, text).unwrap();
    team.store
        .git_ok(&["commit", "-q", "-a", "-m", "add ghost"]);
    let (code, doc) = audit_json(&team);
    assert_eq!(code, Some(3));
    let problems = strings(&doc["store_problems"]);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("ops/.gpg-id line 2") && p.contains("ghost@coop.example")),
        "{problems:?}"
    );
    // The rest of the report is still there.
    assert_eq!(strings(&entry(&doc, "ops/db")["readers"]), ["alice"]);
}
