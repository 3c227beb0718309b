//! `vault repair` (every entry encrypted to exactly its `.gpg-id`) and trust that survives a
//! reset: with the real gpg, pass and git.

mod common;

use common::*;

/// Encrypts `plain` to `to` as `who`'s GnuPG would (as other tools or a hand edit do), at
/// `ENTRY.gpg`.
fn encrypt_by_hand(store: &Store, who: &Person, entry: &str, plain: &str, to: &[&Person]) {
    let to: Vec<&str> = to.iter().map(|p| p.fpr.as_str()).collect();
    who.gpg.encrypt_to(
        plain.as_bytes(),
        &store.file(&format!("{entry}.gpg")),
        &to,
        &["--trust-model", "always"],
    );
}

#[test]
fn repair_encrypts_every_entry_to_exactly_its_gpg_id() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    let (alice, bob, carol) = (&team.alice, &team.bob, &team.carol);
    // What other tools and hand edits leave behind: ops/ is alice's only, the root is alice's
    // and bob's, carol is no member.
    encrypt_by_hand(store, alice, "ops/extra", "ops-only\n", &[alice, bob]);
    encrypt_by_hand(store, alice, "missing-bob", "for both\n", &[alice]);
    encrypt_by_hand(
        store,
        alice,
        "carol-too",
        "not carol's\n",
        &[alice, bob, carol],
    );
    git_commit_all(store, "Entries written by other tools");
    let commits = store.commit_count();

    let run = lab.vault_as(store, alice, &["--yes", "repair"]);
    run.ok()
        .stdout_has("Repaired 3 entries: 1 gained readers, 2 re-encrypted");
    assert_eq!(store.commit_count(), commits + 1);
    store.assert_clean();
    let message = store.git_ok(&["log", "-1", "--format=%B"]);
    assert!(message.contains("Vault-Action: repair"), "{message}");
    assert!(
        store
            .git_ok(&["cat-file", "-p", "HEAD"])
            .contains("gpgsig "),
        "the repair commit is signed"
    );

    lab.assert_reads(
        store,
        bob,
        &[
            ("missing-bob", "for both\n"),
            ("carol-too", "not carol's\n"),
        ],
    );
    lab.assert_cannot_read(store, bob, &[("ops/extra", "ops-only\n")]);
    lab.assert_cannot_read(store, carol, &[("carol-too", "not carol's\n")]);
    lab.assert_reads(
        store,
        alice,
        &[("ops/extra", "ops-only\n"), ("missing-bob", "for both\n")],
    );
    lab.assert_pass_init_reencrypts_nothing(store, alice, "");
    lab.assert_pass_init_reencrypts_nothing(store, alice, "ops");

    // Repaired means repaired: a second run changes nothing and says so.
    lab.vault_as(store, alice, &["--yes", "repair"])
        .ok()
        .stdout_has("Nothing to repair");
    assert_eq!(store.commit_count(), commits + 1);
    // audit agrees.
    lab.vault(store, alice, &["audit"]).ok();
}

#[test]
fn repair_lists_what_a_former_member_could_read_and_remove_member_points_to_it() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    let (alice, bob) = (&team.alice, &team.bob);
    lab.vault_as(store, alice, &["--yes", "remove-member", "bob"])
        .ok();
    // A teammate whose pass still had bob in an old .gpg-id writes an entry for him.
    encrypt_by_hand(
        store,
        alice,
        "late",
        "written after bob left\n",
        &[alice, bob],
    );
    git_commit_all(store, "Add late");
    let commits = store.commit_count();

    lab.vault_as(store, alice, &["--yes", "remove-member", "bob"])
        .fails()
        .stderr_has("bob is a former member (removed ")
        .stderr_has("vault repair");
    assert_eq!(store.commit_count(), commits);

    lab.vault_as(store, alice, &["--yes", "repair"])
        .ok()
        .stdout_has("A former member could read 1 entry until now. Rotate it")
        .stdout_has("  late\n");
    lab.assert_cannot_read(store, bob, &[("late", "written after bob left\n")]);
    lab.assert_reads(store, alice, &[("late", "written after bob left\n")]);
}

#[test]
fn repair_never_encrypts_to_a_recipient_nobody_vouched_for() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    let (alice, carol) = (&team.alice, &team.carol);
    // Someone with push access adds carol by hand, unsigned.
    add_by_hand(store, carol);
    git_commit_all(store, "Add carol by hand");
    let before = store.head();

    lab.vault_as(store, alice, &["--yes", "repair"])
        .fails()
        .stderr_has("nobody trusted vouched for");
    assert_eq!(store.head(), before);
    lab.assert_cannot_read(store, carol, ROOT_ENTRIES);
}

#[test]
fn trust_survives_a_reset_over_a_vouched_change_and_never_grows() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    let (alice, carol) = (&team.alice, &team.carol);
    lab.vault_as(store, alice, &carol.add_member_with(&["--yes"]))
        .ok();
    // This clone's anchor is now the add-member commit; the team drops it.
    store.git_ok(&["reset", "-q", "--hard", "HEAD~1"]);

    let run = lab.vault(store, alice, &["verify"]);
    run.ok()
        .stderr_has("is no longer in the store's history")
        .stderr_has("trust now starts at");
    assert!(!run.has_violation(), "{run}");
    // Later runs start from the new anchor, silently.
    let again = lab.vault(store, alice, &["verify"]);
    again.ok();
    assert!(!again.stderr.contains("no longer"), "{again}");

    // carol was trusted at the old anchor only because of the commit that is gone: adding her
    // by hand now, unsigned, is a violation, and no change encrypts to her.
    add_by_hand(store, carol);
    git_commit_all(store, "Add carol by hand");
    assert!(lab.vault(store, alice, &["verify"]).has_violation());
    lab.vault_as(store, alice, &["--yes", "repair"])
        .fails()
        .stderr_has("nobody trusted vouched for");
}
