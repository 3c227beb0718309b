//! Rotation that really happened: after an offboarding, a credential counts as rotated only when
//! its password (first line) changed. A rename (pass mv, in one folder or into another) carries
//! the flag; a rewrite with the same password or a notes-only edit does not clear it, which
//! `vault audit --decrypt` proves by decrypting the versions in memory (without it, audit says
//! "changed since, not verified"). remove-member's list is audit's list.

mod common;

use common::*;

/// `vault audit [--decrypt]` as alice: (exit code, stdout).
fn audit(lab: &Lab, store: &Store, alice: &Person, decrypt: bool) -> Run {
    let mut args = vec!["--identity", alice.secret_str(), "audit"];
    if decrypt {
        args.push("--decrypt");
    }
    lab.vault(store, alice, &args)
}

/// The audit's notes under entry `leaf` (the indented lines after it), or "".
fn note_under(run: &Run, leaf: &str) -> String {
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with(&format!("{leaf} ")))
        .unwrap_or_else(|| panic!("no entry {leaf} in:\n{run}"));
    lines[at + 1..]
        .iter()
        .take_while(|l| l.starts_with("   "))
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn renames_carry_the_flag_and_only_a_new_password_clears_it() {
    let t = adopted_team();
    let (lab, store, alice, bob) = (&t.lab, &t.store, &t.alice, &t.bob);
    // web/ gets a .gpg-id of its own (alice only) by plain pass: web/shop is re-encrypted
    // without bob, so only an older version of it was his to read.
    lab.pass(store, alice, &["init", "-p", "web", &alice.fpr], "")
        .ok();
    let removed = lab.vault_as(store, alice, &["--yes", "remove-member", "bob"]);
    removed.ok();
    let before = audit(lab, store, alice, false);
    assert_eq!(before.code, Some(3));
    // The same list, computed once: remove-member names web/shop too.
    for entry in ["bank", "email/work", "web/shop"] {
        removed.stdout_has(&format!("  {entry}\n"));
        assert!(note_under(&before, entry.rsplit('/').next().unwrap()).contains("rotate: bob"));
    }

    // pass mv within one .gpg-id (the ciphertext kept) and into another folder (re-encrypted):
    // the flag goes along.
    lab.pass(store, alice, &["mv", "web/shop", "web/store"], "")
        .ok();
    lab.pass(store, alice, &["mv", "email/work", "ops/work"], "")
        .ok();
    // Copies carry it too (pass cp keeps the ciphertext; vault cp re-encrypts into ops/), and
    // so does a move into a folder named without its slash.
    lab.pass(store, alice, &["cp", "web/store", "web/copy"], "")
        .ok();
    lab.vault_as(store, alice, &["--yes", "cp", "web/store", "ops/copy2"])
        .ok();
    lab.pass(store, alice, &["cp", "ops/work", "web/work2"], "")
        .ok();
    lab.pass(store, alice, &["mv", "web/work2", "ops"], "").ok();
    // A rewrite with the same password, and a notes-only edit.
    lab.pass(
        store,
        alice,
        &["insert", "-m", "-f", "bank"],
        ROOT_ENTRIES[0].1,
    )
    .ok();
    lab.pass(
        store,
        alice,
        &["insert", "-m", "-f", "web/store"],
        "Sh0p-P4ss!\nlogin: coop\nnew note\n",
    )
    .ok();
    let run = audit(lab, store, alice, false);
    for leaf in ["work", "copy", "copy2", "work2"] {
        assert!(
            note_under(&run, leaf).contains("rotate: bob"),
            "{leaf}: {run}"
        );
    }
    // Content changed: without decrypting, audit cannot say whether the password did.
    for leaf in ["bank", "store"] {
        let note = note_under(&run, leaf);
        assert!(
            note.contains("changed since bob could read it, not verified"),
            "{run}"
        );
    }

    // --decrypt: the same passwords, so still to rotate.
    let run = audit(lab, store, alice, true);
    for leaf in ["bank", "store", "work"] {
        assert!(note_under(&run, leaf).contains("rotate: bob"), "{run}");
    }

    // A new password really rotates it.
    lab.pass(
        store,
        alice,
        &["insert", "-m", "-f", "bank"],
        "n3w-p4ss\nIBAN: DE00 1234 5678 9000\n",
    )
    .ok();
    let run = audit(lab, store, alice, true);
    let note = note_under(&run, "bank");
    assert!(
        !note.contains("rotate") && !note.contains("changed since"),
        "{run}"
    );
    lab.assert_cannot_read(store, bob, &[("bank", "n3w-p4ss\n")]);
}

#[test]
fn decrypt_finds_empty_weak_and_reused_passwords_and_max_age_old_ones() {
    let t = adopted_team();
    let (lab, store, alice) = (&t.lab, &t.store, &t.alice);
    lab.pass(store, alice, &["insert", "-m", "web/a"], "password1\n")
        .ok();
    lab.pass(
        store,
        alice,
        &["insert", "-m", "web/b"],
        "password1\nother\n",
    )
    .ok();
    lab.pass(store, alice, &["insert", "-m", "web/c"], "\nnotes only\n")
        .ok();
    lab.pass(
        store,
        alice,
        &["insert", "-m", "web/d"],
        "Xk9#mQ2$vL7@pR4!zT6&w\n",
    )
    .ok();
    let run = audit(lab, store, alice, true);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(note_under(&run, "a").contains("weak password"), "{run}");
    run.stdout_has("same password as web/b");
    run.stdout_has("same password as web/a");
    assert!(
        note_under(&run, "c").contains("its password (first line) is empty"),
        "{run}"
    );
    assert!(!run.stdout.contains("password1"), "never a secret:\n{run}");
    // A strong unique one is fine.
    assert_eq!(note_under(&run, "d"), "", "{run}");

    // Commit times have whole seconds: a second later, every entry is older than 0 days.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let old = lab.vault(store, alice, &["audit", "--max-age", "0d"]);
    old.stdout_has("unchanged for 0 days (more than --max-age 0 days)");
    lab.vault(store, alice, &["audit", "--max-age", "1y"]).ok();
    lab.vault(store, alice, &["audit", "--max-age", "soon"])
        .fails();
}
