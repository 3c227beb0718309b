//! `vault sync` against a bare remote and clones of their own, each person with their own
//! GnuPG home, some using plain pass and git: the real programs throughout.

mod common;

use std::fs;

use common::*;

/// `pass insert -m ENTRY` as `who` in their clone (pass commits it), then `git pull --rebase`
/// and `git push`, as a plain pass user does.
fn pass_insert_and_push(lab: &Lab, store: &Store, who: &Person, entry: &str, plain: &str) {
    lab.pass(store, who, &["insert", "-m", entry], plain).ok();
    store.git_ok(&["pull", "-q", "--rebase"]);
    store.git_ok(&["push", "-q"]);
}

#[test]
fn sync_fast_forwards_checks_repairs_and_pushes() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob, carol) = (&team.alice, &team.bob, &team.carol);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");

    // alice onboards carol: with an upstream, add-member pushes its signed commit.
    let carol_args = carol.add_member_with(&["--yes"]);
    lab.vault_as(alice_clone, alice, &carol_args)
        .ok()
        .stdout_has("Pushed to origin/main.");
    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .ok()
        .stdout_has("Nothing new from origin/main.")
        .stdout_has("Nothing pushed.");
    // bob, on plain pass, has not pulled: his pass encrypts to alice and bob only.
    pass_insert_and_push(lab, &bob_clone, bob, "bob/new", "from bob\n");

    let run = lab.vault_as(alice_clone, alice, &["--yes", "sync"]);
    run.ok()
        .stdout_has("From origin/main: 1 new commit.")
        .stdout_has("Add given password for bob/new to store. (bob/new.gpg)")
        .stdout_has("Fast-forwarded to ")
        .stdout_has("Repaired 1 entry (1 gained readers, 0 re-encrypted")
        .stdout_has("Pushed ");
    alice_clone.assert_clean();
    assert_eq!(
        alice_clone.head(),
        alice_clone.git_ok(&["rev-parse", "origin/main"]),
        "pushed"
    );

    // At the remote's HEAD, as a fresh clone sees it: carol reads bob's entry; pass agrees.
    let carol_clone = clone(lab, &remote, "carol");
    lab.assert_reads(&carol_clone, carol, &[("bob/new", "from bob\n")]);
    lab.assert_reads(&carol_clone, bob, &[("bob/new", "from bob\n")]);
    lab.assert_pass_init_reencrypts_nothing(&carol_clone, alice, "");
    lab.vault(alice_clone, alice, &["verify"]).ok();

    // Nothing new: nothing done.
    let head = alice_clone.head();
    lab.vault_as(alice_clone, alice, &["--yes", "sync", "--json"])
        .ok()
        .stdout_has("\"pushed\": null");
    assert_eq!(alice_clone.head(), head);
}

#[test]
fn sync_refuses_an_incoming_recipient_nobody_vouched_for() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, carol) = (&team.alice, &team.carol);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    // Someone with push access adds carol by hand.
    add_by_hand(&bob_clone, carol);
    git_commit_all(&bob_clone, "Add carol");
    bob_clone.git_ok(&["push", "-q"]);
    let bad = bob_clone.git_ok(&["rev-parse", "--short=10", "HEAD"]);
    let (head, remote_head) = (alice_clone.head(), bob_clone.head());

    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .fails()
        .stderr_has(&format!("the upstream's commit {bad} by Vault Test adds "))
        .stderr_has("nothing was merged")
        .stderr_has(&format!("`vault verify --accept {bad}`"));
    assert_eq!(alice_clone.head(), head, "nothing merged");
    alice_clone.assert_clean();
    assert_eq!(
        bob_clone
            .git_ok(&["ls-remote", &remote, "main"])
            .split_whitespace()
            .next(),
        Some(remote_head.as_str())
    );
    lab.assert_cannot_read(alice_clone, carol, ROOT_ENTRIES);
}

#[test]
fn sync_merges_diverged_histories_in_one_signed_commit() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob, carol) = (&team.alice, &team.bob, &team.carol);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    // alice onboards carol but does not push; bob, on plain pass, adds an entry and pushes.
    let carol_args = carol.add_member_with(&["--yes", "--no-push"]);
    lab.vault_as(alice_clone, alice, &carol_args)
        .ok()
        .stdout_has("Not pushed (--no-push)");
    pass_insert_and_push(lab, &bob_clone, bob, "bob/new", "from bob\n");
    let bobs = bob_clone.git_ok(&["rev-parse", "--short=10", "HEAD"]);
    // bob's clone trusts its own HEAD (the upstream's side of the coming merge).
    lab.vault(&bob_clone, bob, &["--yes", "verify"]).ok();
    // Membership commands do not merge: they say to sync.
    lab.vault_as(alice_clone, alice, &["--yes", "remove-member", "bob"])
        .fails()
        .stderr_has("this clone and the upstream have both changed since")
        .stderr_has("(1 commit here, 1 commit there)")
        .stderr_has("vault sync");

    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .ok()
        .stdout_has("From origin/main: 1 new commit.")
        .stdout_has("Merged in one signed commit ")
        .stdout_has("Pushed ");
    alice_clone.assert_clean();
    let merge = alice_clone.git_ok(&["cat-file", "-p", "HEAD"]);
    assert_eq!(merge.matches("\nparent ").count(), 2, "{merge}");
    assert!(merge.contains("gpgsig "), "the merge is signed:\n{merge}");
    assert!(merge.contains("Vault-Action: merge"), "{merge}");
    lab.vault(alice_clone, alice, &["verify"]).ok();
    // audit credits bob's commit with the entry, not the merge that brought it in.
    let audit = lab.vault(alice_clone, alice, &["audit", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&audit.stdout).unwrap();
    let entry = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "bob/new")
        .unwrap();
    assert_eq!(entry["last_changed"]["commit"], bobs.as_str(), "{entry}");

    // bob's clone, anchored on the other side of the merge, accepts it: alice signed it.
    bob_clone.git_ok(&["pull", "-q", "--ff-only"]);
    let verified = lab.vault(&bob_clone, bob, &["verify"]);
    verified.ok();
    assert!(!verified.has_violation(), "{verified}");

    let carol_clone = clone(lab, &remote, "carol");
    lab.assert_reads(&carol_clone, carol, &[("bob/new", "from bob\n")]);
    lab.assert_reads(&carol_clone, carol, ROOT_ENTRIES);
    lab.assert_reads(&carol_clone, bob, &[("bob/new", "from bob\n")]);
    lab.assert_pass_init_reencrypts_nothing(&carol_clone, alice, "");
}

#[test]
fn a_removal_and_a_stale_edit_merge_into_the_edit_without_the_leaver() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob) = (&team.alice, &team.bob);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    lab.vault_as(
        alice_clone,
        alice,
        &["--yes", "--no-push", "remove-member", "bob"],
    )
    .ok();
    // bob, not knowing, changes the bank password with his pass and pushes.
    lab.pass(
        &bob_clone,
        bob,
        &["insert", "-f", "-m", "bank"],
        "new-bank-pw\n",
    )
    .ok();
    bob_clone.git_ok(&["push", "-q"]);

    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .ok()
        .stdout_has("Merged in one signed commit ")
        .stdout_has("A former member could read 1 entry until now.")
        .stdout_has("  bank\n")
        .stdout_has("Pushed ");
    // audit follows both sides of the merge: bob could read this content on his side.
    let audit = lab.vault(alice_clone, alice, &["audit", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&audit.stdout).unwrap();
    let bank = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "bank")
        .unwrap();
    assert_eq!(bank["rotate"], serde_json::json!(["bob"]), "{bank}");
    let fresh = clone(lab, &remote, "fresh");
    lab.assert_reads(&fresh, alice, &[("bank", "new-bank-pw\n")]);
    lab.assert_cannot_read(&fresh, bob, &[("bank", "new-bank-pw\n")]);
    lab.assert_cannot_read(&fresh, bob, &ROOT_ENTRIES[1..]);
    lab.assert_pass_init_reencrypts_nothing(&fresh, alice, "");
}

#[test]
fn a_true_conflict_stops_before_anything_is_written_until_settled() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob) = (&team.alice, &team.bob);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    lab.pass(
        alice_clone,
        alice,
        &["insert", "-f", "-m", "bank"],
        "alice-pw\n",
    )
    .ok();
    lab.pass(&bob_clone, bob, &["insert", "-f", "-m", "bank"], "bob-pw\n")
        .ok();
    bob_clone.git_ok(&["push", "-q"]);
    let head = alice_clone.head();

    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .fails()
        .stderr_has("the upstream cannot be merged: bank.gpg (changed differently on both sides)")
        .stderr_has("--ours ENTRY");
    assert_eq!(alice_clone.head(), head);
    alice_clone.assert_clean();

    lab.vault_as(alice_clone, alice, &["--yes", "sync", "--ours", "bank"])
        .ok()
        .stdout_has("Merged in one signed commit ");
    let fresh = clone(lab, &remote, "fresh");
    lab.assert_reads(&fresh, bob, &[("bank", "alice-pw\n")]);
}

#[test]
fn membership_commands_catch_up_with_the_upstream_first_and_push() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob, carol) = (&team.alice, &team.bob, &team.carol);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    // bob, on plain pass, adds an entry; alice has not pulled.
    pass_insert_and_push(lab, &bob_clone, bob, "bob/new", "from bob\n");
    // alice's add-member fast-forwards first, so carol gets bob's entry too, and pushes.
    let carol_args = carol.add_member_with(&["--yes"]);
    lab.vault_as(alice_clone, alice, &carol_args)
        .ok()
        .stderr_has("Fast-forwarded to ")
        .stdout_has("Pushed to origin/main.");
    let carol_clone = clone(lab, &remote, "carol");
    lab.assert_reads(&carol_clone, carol, &[("bob/new", "from bob\n")]);
    // remove-member too: bob loses his own entry at the remote's HEAD.
    lab.vault_as(alice_clone, alice, &["--yes", "remove-member", "bob"])
        .ok()
        .stdout_has("Pushed to origin/main.");
    bob_clone.git_ok(&["pull", "-q"]);
    lab.assert_cannot_read(&bob_clone, bob, &[("bob/new", "from bob\n")]);
}

#[test]
fn sync_without_an_upstream_says_how_to_set_one() {
    let team = adopted_team();
    let head = team.store.head();
    team.lab
        .vault_as(&team.store, &team.alice, &["--yes", "sync"])
        .fails()
        .stderr_has("the branch main has no upstream to sync with")
        .stderr_has("--set-upstream-to=origin/main");
    team.lab
        .vault_as(
            &team.store,
            &team.alice,
            &["--yes", "sync", "--remote", "nowhere"],
        )
        .fails()
        .stderr_has("no remote named \"nowhere\"");
    assert_eq!(team.store.head(), head);
}

#[test]
fn two_onboardings_on_two_clones_merge_into_both() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob, carol) = (&team.alice, &team.bob, &team.carol);
    let dave = Person::generate("dave", KeyKind::Ed25519);
    introduce(&[alice, bob, carol, &dave]);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    // alice adds carol locally; bob, with vault in his clone, adds dave and pushes.
    let carol_args = carol.add_member_with(&["--yes", "--no-push"]);
    lab.vault_as(alice_clone, alice, &carol_args).ok();
    let dave_args = dave.add_member_with(&["--yes"]);
    lab.vault_as(&bob_clone, bob, &dave_args)
        .ok()
        .stdout_has("Pushed to origin/main.");

    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .ok()
        .stdout_has("Merged in one signed commit ")
        .stdout_has("Pushed ");
    let fresh = clone(lab, &remote, "fresh");
    lab.assert_reads(&fresh, carol, ROOT_ENTRIES);
    lab.assert_reads(&fresh, &dave, ROOT_ENTRIES);
    lab.assert_cannot_read(&fresh, &dave, OPS_ENTRIES);
    lab.assert_pass_init_reencrypts_nothing(&fresh, alice, "");
    let members = lab.vault(&fresh, alice, &["members"]);
    members.ok().stdout_has("carol").stdout_has("dave");
    lab.vault(alice_clone, alice, &["verify"]).ok();
    bob_clone.git_ok(&["pull", "-q", "--ff-only"]);
    let verified = lab.vault(&bob_clone, bob, &["verify"]);
    verified.ok();
    assert!(!verified.has_violation(), "{verified}");
}

#[test]
fn an_onboarding_and_an_offboarding_merge_without_the_leaver() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob, carol) = (&team.alice, &team.bob, &team.carol);
    let dave = Person::generate("dave", KeyKind::Ed25519);
    introduce(&[alice, bob, carol, &dave]);
    let remote = share(lab, alice_clone);
    // carol joins (pushed), then bob's clone is made.
    lab.vault_as(alice_clone, alice, &carol.add_member_with(&["--yes"]))
        .ok();
    let bob_clone = clone(lab, &remote, "bob");
    // alice adds dave locally; bob removes carol and pushes.
    lab.vault_as(
        alice_clone,
        alice,
        &dave.add_member_with(&["--yes", "--no-push"]),
    )
    .ok();
    lab.vault_as(&bob_clone, bob, &["--yes", "remove-member", "carol"])
        .ok()
        .stdout_has("Pushed to origin/main.");

    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .ok()
        .stdout_has("Merged in one signed commit ")
        .stdout_has("A former member could read ")
        .stdout_has("Pushed ");
    let fresh = clone(lab, &remote, "fresh");
    lab.assert_reads(&fresh, &dave, ROOT_ENTRIES);
    lab.assert_cannot_read(&fresh, carol, ROOT_ENTRIES);
    lab.assert_pass_init_reencrypts_nothing(&fresh, alice, "");
    let members = lab.vault(&fresh, alice, &["members"]);
    members
        .ok()
        .stdout_has("dave")
        .stdout_has("Former members:");
    let (current, former) = members.stdout.split_once("Former members:").unwrap();
    assert!(
        !current.contains("carol") && former.contains("carol"),
        "{members}"
    );
}

#[test]
fn a_reviewed_violation_is_accepted_for_the_whole_team() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, carol) = (&team.alice, &team.carol);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    // Another member's clone, anchored before the change.
    let other = clone(lab, &remote, "other");
    lab.vault(&other, alice, &["--yes", "verify"]).ok();
    // bob adds carol by hand (plain git, unsigned) and pushes.
    add_by_hand(&bob_clone, carol);
    git_commit_all(&bob_clone, "Add carol");
    bob_clone.git_ok(&["push", "-q"]);
    let bad = bob_clone.git_ok(&["rev-parse", "--short=10", "HEAD"]);

    // sync refuses it, and its hint works as written.
    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .fails()
        .stderr_has(&format!("`vault verify --accept {bad}`"));
    // carol herself (not a member anyone trusts) cannot accept it, and nothing comes in.
    let carols = clone(lab, &remote, "carols");
    carols.git_ok(&["reset", "-q", "--hard", "HEAD~1"]);
    lab.vault(&carols, carol, &["--yes", "verify"]).ok();
    let before = carols.head();
    lab.vault_as(&carols, carol, &["--yes", "verify", "--accept", &bad])
        .fails()
        .stderr_has("not a member this clone trusts");
    assert_eq!(carols.head(), before, "nothing was let in");
    lab.vault_as(alice_clone, alice, &["--yes", "verify", "--accept", &bad])
        .ok()
        .stderr_has("adds ")
        .stdout_has(&format!("Accepted the changes of commit {bad}"))
        .stdout_has("Pushed to origin/main.");
    let verified = lab.vault(alice_clone, alice, &["verify"]);
    verified.ok();
    assert!(!verified.has_violation(), "{verified}");
    // Now sync brings carol her entries, and every clone agrees.
    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .ok()
        .stdout_has("Repaired ");
    let fresh = clone(lab, &remote, "fresh");
    lab.assert_reads(&fresh, carol, ROOT_ENTRIES);
    other.git_ok(&["pull", "-q", "--ff-only"]);
    let theirs = lab.vault(&other, alice, &["verify"]);
    theirs
        .ok()
        .stdout_has("(accepted by a trusted member later)")
        .stdout_has(&format!("accepts the changes of commit {bad}"));
    assert!(!theirs.has_violation(), "{theirs}");
    // Accepting a commit with nothing to accept is refused.
    lab.vault_as(alice_clone, alice, &["--yes", "verify", "--accept", "HEAD"])
        .fails()
        .stderr_has("there is nothing to accept");
}

/// `git ARGS` in `store` with the vault under test first on PATH (as a member who installed
/// vault has it), or without it (`with_vault` false).
fn git_with_vault(
    store: &Store,
    who: &Person,
    args: &[&str],
    with_vault: bool,
) -> std::process::Output {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_vault"))
        .parent()
        .unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let path = if with_vault {
        format!("{}:{path}", bin.display())
    } else {
        path.split(':')
            .filter(|d| std::path::Path::new(d) != bin)
            .collect::<Vec<_>>()
            .join(":")
    };
    std::process::Command::new("git")
        .arg("-C")
        .arg(&store.path)
        .args(args)
        .env("PATH", path)
        .env("HOME", store.home())
        .env("GNUPGHOME", who.gpg.home())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("VAULT_IDENTITY")
        .output()
        .unwrap()
}

#[test]
fn hooks_keep_the_rules_for_plain_git_too() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob) = (&team.alice, &team.bob);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    lab.vault(alice_clone, alice, &["hooks", "install"])
        .ok()
        .stdout_has("pre-push")
        .stdout_has("post-merge");
    // Hooks other repositories share (a hooksPath outside the store) are not touched.
    let shared = lab.path("shared-hooks");
    alice_clone.git_ok(&["config", "core.hooksPath", shared.to_str().unwrap()]);
    lab.vault(alice_clone, alice, &["hooks", "install"])
        .fails()
        .stderr_has("outside this store");
    assert!(!shared.exists());
    alice_clone.git_ok(&["config", "--unset", "core.hooksPath"]);
    // Installing again replaces vault's own hooks; a hook of the user's is never replaced.
    lab.vault(alice_clone, alice, &["hooks", "install"]).ok();
    let mine = bob_clone.file(".git/hooks/post-merge");
    fs::write(&mine, "#!/bin/sh\necho mine\n").unwrap();
    lab.vault(&bob_clone, bob, &["hooks", "install"])
        .fails()
        .stderr_has("a hook vault did not install");
    assert_eq!(fs::read_to_string(&mine).unwrap(), "#!/bin/sh\necho mine\n");
    assert!(
        !bob_clone.file(".git/hooks/pre-push").exists(),
        "nothing installed"
    );
    fs::remove_file(&mine).unwrap();

    // post-merge: a plain pass insert with stale recipients comes in with git pull.
    lab.vault_as(
        alice_clone,
        alice,
        &["--yes", "--no-push", "remove-member", "bob"],
    )
    .ok();
    lab.pass(&bob_clone, bob, &["insert", "-m", "late"], "late\n")
        .ok();
    bob_clone.git_ok(&["push", "-q"]);
    let pulled = git_with_vault(
        alice_clone,
        alice,
        &["pull", "-q", "--no-rebase", "--no-edit"],
        true,
    );
    let said = String::from_utf8_lossy(&pulled.stdout).into_owned()
        + &String::from_utf8_lossy(&pulled.stderr);
    assert!(pulled.status.success(), "{said}");
    assert!(said.contains("run `vault repair`"), "{said}");

    // pre-push: a HEAD the former member bob can read is not pushed.
    let pushed = git_with_vault(alice_clone, alice, &["push", "-q"], true);
    let said = String::from_utf8_lossy(&pushed.stderr).into_owned();
    assert!(!pushed.status.success(), "{said}");
    assert!(
        said.contains("not pushing this HEAD") && said.contains("former member bob can read it"),
        "{said}"
    );
    // Without vault on PATH the hook says so, and nothing is pushed either.
    let pushed = git_with_vault(alice_clone, alice, &["push", "-q"], false);
    let said = String::from_utf8_lossy(&pushed.stderr).into_owned();
    assert!(
        !pushed.status.success() && said.contains("vault is not installed"),
        "{said}"
    );
    // Repaired, it goes.
    lab.vault_as(alice_clone, alice, &["--yes", "--no-push", "repair"])
        .ok();
    let pushed = git_with_vault(alice_clone, alice, &["push", "-q"], true);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
}

#[test]
fn keep_both_keeps_theirs_under_the_name_and_ours_beside_it() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob) = (&team.alice, &team.bob);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    lab.pass(
        alice_clone,
        alice,
        &["insert", "-f", "-m", "bank"],
        "alice-pw\n",
    )
    .ok();
    let ours = alice_clone.git_ok(&["rev-parse", "--short=10", "HEAD"]);
    lab.pass(&bob_clone, bob, &["insert", "-f", "-m", "bank"], "bob-pw\n")
        .ok();
    bob_clone.git_ok(&["push", "-q"]);

    lab.vault_as(alice_clone, alice, &["--yes", "sync", "--keep-both"])
        .ok()
        .stdout_has("Merged in one signed commit ");
    let fresh = clone(lab, &remote, "fresh");
    let kept = format!("bank.conflict-{ours}");
    for who in [alice, bob] {
        lab.assert_reads(&fresh, who, &[("bank", "bob-pw\n"), (&kept, "alice-pw\n")]);
    }
    lab.assert_pass_init_reencrypts_nothing(&fresh, alice, "");
}

#[test]
fn a_rebase_over_a_vouched_change_is_reported_and_can_be_accepted() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob, carol) = (&team.alice, &team.bob, &team.carol);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    let carol_args = carol.add_member_with(&["--yes", "--no-push"]);
    lab.vault_as(alice_clone, alice, &carol_args).ok();
    pass_insert_and_push(lab, &bob_clone, bob, "bob/new", "from bob\n");
    // alice uses plain git: her signed add-member commit is re-created, unsigned, by the rebase.
    alice_clone.git_ok(&["pull", "-q", "--rebase"]);
    let rebased = alice_clone.git_ok(&["rev-parse", "--short=10", "HEAD"]);
    let verified = lab.vault(alice_clone, alice, &["verify"]);
    verified
        .fails()
        .stderr_has("is no longer in the store's history")
        .stdout_has(&format!("BAD  {rebased} "));
    assert_eq!(verified.code, Some(3));
    // Every change refuses to encrypt to carol now; the hint's way out works as written.
    lab.vault_as(alice_clone, alice, &["--yes", "repair"])
        .fails()
        .stderr_has("vault verify --accept COMMIT");
    lab.vault_as(
        alice_clone,
        alice,
        &["--yes", "verify", "--accept", &rebased],
    )
    .ok()
    .stdout_has("Pushed to origin/main.");
    lab.vault(alice_clone, alice, &["verify"]).ok();
    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .ok()
        .stdout_has("Repaired 1 entry");
    let fresh = clone(lab, &remote, "fresh");
    lab.assert_reads(&fresh, carol, &[("bob/new", "from bob\n")]);
    lab.assert_reads(&fresh, carol, ROOT_ENTRIES);
}

#[test]
fn a_removal_and_a_concurrent_insert_merge_without_the_leaver() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob) = (&team.alice, &team.bob);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    lab.vault(&bob_clone, bob, &["--yes", "verify"]).ok();
    lab.vault_as(
        alice_clone,
        alice,
        &["--yes", "--no-push", "remove-member", "bob"],
    )
    .ok();
    // bob, not knowing yet, stores a new credential (his pass encrypts it to himself too).
    pass_insert_and_push(lab, &bob_clone, bob, "new-server", "s3rver\n");

    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .ok()
        .stdout_has("Merged in one signed commit ")
        .stdout_has("  new-server\n")
        .stdout_has("Pushed ");
    let fresh = clone(lab, &remote, "fresh");
    lab.assert_reads(&fresh, alice, &[("new-server", "s3rver\n")]);
    lab.assert_cannot_read(&fresh, bob, &[("new-server", "s3rver\n")]);
    lab.assert_cannot_read(&fresh, bob, ROOT_ENTRIES);
    lab.assert_pass_init_reencrypts_nothing(&fresh, alice, "");
    // Both clones verify the merge clean.
    lab.vault(alice_clone, alice, &["verify"]).ok();
    bob_clone.git_ok(&["pull", "-q", "--ff-only"]);
    let theirs = lab.vault(&bob_clone, bob, &["verify"]);
    theirs.ok();
    assert!(!theirs.has_violation(), "{theirs}");
}

#[test]
fn sync_refuses_what_it_cannot_trust_or_write_and_changes_nothing() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, carol) = (&team.alice, &team.carol);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    let head = alice_clone.head();

    // A submodule (sync writes regular files only).
    let sub = bob_clone.head();
    bob_clone.git_ok(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{sub},tools"),
    ]);
    bob_clone.git_ok(&["commit", "-q", "-m", "Add a submodule"]);
    bob_clone.git_ok(&["push", "-q"]);
    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .fails()
        .stderr_has("tools, a submodule, which vault does not write into a store");
    assert_eq!(alice_clone.head(), head);
    // Someone replaces alice's certificate with another key, unsigned.
    let alices_file = bob_clone.file(&format!(".public-keys/{}", alice.fpr));
    fs::copy(&carol.public, &alices_file).unwrap();
    git_commit_all(&bob_clone, "Update a key");
    bob_clone.git_ok(&["push", "-q"]);
    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .fails()
        .stderr_has("changes key .public-keys/")
        .stderr_has("nothing was merged");
    assert_eq!(alice_clone.head(), head);
    alice_clone.assert_clean();
    assert!(!alice_clone.file(".git/vault-journal").exists());
    lab.vault(alice_clone, alice, &["members"]).ok();
}
