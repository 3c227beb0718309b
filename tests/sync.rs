//! `vault sync` against a bare remote and clones of their own, each person with their own
//! GnuPG home, some using plain pass and git: the real programs throughout.

mod common;

use std::fs;

use common::*;

/// A bare repository at `lab/remote.git` made from `store`, which gets it as `origin`, with
/// its branch tracking `origin/main`.
fn share(lab: &Lab, store: &Store) -> String {
    let remote = lab.path("remote.git");
    let remote = remote.to_str().unwrap().to_string();
    store.git_ok(&["clone", "-q", "--bare", store.path_str(), &remote]);
    store.git_ok(&["remote", "add", "origin", &remote]);
    store.git_ok(&["fetch", "-q", "origin"]);
    store.git_ok(&["branch", "-q", "--set-upstream-to=origin/main"]);
    remote
}

/// A clone of `remote` at `lab/<name>`, as a teammate makes it.
fn clone(lab: &Lab, remote: &str, name: &str) -> Store {
    let store = lab.store(name);
    let st = lab.store("");
    st.git_ok(&["clone", "-q", remote, store.path_str()]);
    store
}

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
    let carol_args = [
        "--yes",
        "add-member",
        carol.public_str(),
        "--fingerprint",
        &carol.fpr,
    ];
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
        .stdout_has("Add given password for bob/new to store.")
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
    fs::copy(
        &carol.public,
        bob_clone.file(&format!(".public-keys/{}", carol.fpr)),
    )
    .unwrap();
    let gpg_id = bob_clone.file(".gpg-id");
    let text = fs::read_to_string(&gpg_id).unwrap() + &format!("{}\n", carol.fpr);
    fs::write(&gpg_id, text).unwrap();
    git_commit_all(&bob_clone, "Add carol");
    bob_clone.git_ok(&["push", "-q"]);
    let bad = bob_clone.git_ok(&["rev-parse", "--short=10", "HEAD"]);
    let (head, remote_head) = (alice_clone.head(), bob_clone.head());

    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .fails()
        .stderr_has(&format!("the upstream's commit {bad} by Vault Test adds "))
        .stderr_has("nothing was merged")
        .stderr_has("vault add-member KEYFILE");
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
fn sync_stops_on_diverged_histories_and_changes_nothing() {
    let team = adopted_team();
    let (lab, alice_clone) = (&team.lab, &team.store);
    let (alice, bob, carol) = (&team.alice, &team.bob, &team.carol);
    let remote = share(lab, alice_clone);
    let bob_clone = clone(lab, &remote, "bob");
    let carol_args = [
        "--yes",
        "--no-push",
        "add-member",
        carol.public_str(),
        "--fingerprint",
        &carol.fpr,
    ];
    lab.vault_as(alice_clone, alice, &carol_args)
        .ok()
        .stdout_has("Not pushed (--no-push)");
    pass_insert_and_push(lab, &bob_clone, bob, "bob/new", "from bob\n");
    let head = alice_clone.head();

    lab.vault_as(alice_clone, alice, &["--yes", "sync"])
        .fails()
        .stderr_has("this clone and the upstream have both changed since")
        .stderr_has("(1 commit here, 1 commit there)")
        .stderr_has("nothing was changed");
    assert_eq!(alice_clone.head(), head);
    alice_clone.assert_clean();
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
    let carol_args = [
        "--yes",
        "add-member",
        carol.public_str(),
        "--fingerprint",
        &carol.fpr,
    ];
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
