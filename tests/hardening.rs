//! Regression tests for the hardening issue: nothing anyone with push access can commit may crash
//! vault, make it write outside the store, forge trust or widen a folder. Each test is named after
//! the fault it pins, runs the real binary against the real gpg, pass and git, and where vault
//! refuses, checks that the store (its `.git` included) is byte-identical.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::process::Stdio;

use common::*;

/// Runs `vault` as alice and asserts it refuses with exit code 1, every needle on stderr, no
/// panic, and every file under the store (`.git` included) exactly as before.
#[track_caller]
fn assert_refused(team: &Team, args: &[&str], needles: &[&str]) -> Run {
    let before = everything(&team.store.path);
    let head = team.store.head();
    let out = team.lab.vault_as(&team.store, &team.alice, args);
    assert_eq!(out.code, Some(1), "expected a refusal (exit 1):\n{out}");
    assert!(!out.stderr.contains("panicked"), "{out}");
    for n in needles {
        out.stderr_has(n);
    }
    assert_eq!(head, team.store.head(), "HEAD moved:\n{out}");
    let after = everything(&team.store.path);
    if before != after {
        let changed: Vec<&String> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        panic!("the store changed ({changed:?}):\n{out}");
    }
    out
}

/// Asserts a command ran to an answer (exit 0, or 3 for "needs attention"), without a panic.
#[track_caller]
fn assert_answers(out: &Run) {
    assert!(
        matches!(out.code, Some(0) | Some(3)) && !out.stderr.contains("panicked"),
        "expected an answer (exit 0 or 3):\n{out}"
    );
}

fn add_carol(team: &Team) -> Run {
    team.lab
        .vault_as(&team.store, &team.alice, &team.carol.add_member_args())
}

#[test]
fn non_ascii_file_names_do_not_crash_any_command() {
    let team = adopted_team();
    let (lab, store, alice) = (&team.lab, &team.store, &team.alice);
    // `日本` is six bytes: its last four split a character (the old byte-offset slicing).
    fs::write(store.file("日本"), "notes\n").unwrap();
    fs::write(store.file("ab日"), "notes\n").unwrap();
    git_commit_all(store, "Add notes");
    insert_entries(lab, store, alice, &[("日本語/パスワード", "s3cret\n")]);
    for args in [
        &["audit"][..],
        &["members"],
        &["verify"],
        &["audit", "--json"],
    ] {
        assert_answers(&lab.vault_as(store, alice, args));
    }
    lab.vault_as(store, alice, &["audit"])
        .stdout_has("パスワード");
    add_carol(&team).ok();
    lab.vault_as(store, alice, &["--yes", "remove-member", "bob"])
        .ok();
    lab.assert_reads(store, &team.carol, &[("日本語/パスワード", "s3cret\n")]);
    lab.assert_pass_init_reencrypts_nothing(store, alice, "");
}

/// Rewrites HEAD with `date` (seconds since 1970) as its author and committer time: git itself
/// refuses such dates, but anyone can write the object (`git hash-object --literally`).
fn redate_head(lab: &Lab, store: &Store, date: &str) {
    let raw = store.git_ok(&["cat-file", "commit", "HEAD"]);
    let mut text = String::new();
    for line in raw.lines() {
        let line = match line.split_once(' ') {
            Some((k @ ("author" | "committer"), rest)) => {
                let who = rest.rsplitn(3, ' ').nth(2).unwrap();
                format!("{k} {who} {date} +0000")
            }
            _ => line.to_string(),
        };
        text.push_str(&line);
        text.push('\n');
    }
    let obj = lab.path("redated-commit");
    fs::write(&obj, text).unwrap();
    let id = store.git_ok(&[
        "hash-object",
        "-t",
        "commit",
        "--literally",
        "-w",
        obj.to_str().unwrap(),
    ]);
    store.git_ok(&["update-ref", "HEAD", &id]);
}

#[test]
fn commits_dated_after_year_9999_do_not_crash() {
    let team = adopted_team();
    let (lab, store, alice) = (&team.lab, &team.store, &team.alice);
    insert_entries(lab, store, alice, &[("far/future", "x\n")]);
    redate_head(lab, store, "253402300800"); // 10000-01-01
                                             // An unsigned removal: `vault verify` shows it, with its date.
    fs::write(store.file(".gpg-id"), format!("{}\n", team.alice.fpr)).unwrap();
    git_commit_all(store, "Remove bob by hand");
    redate_head(lab, store, "99999999999999999"); // beyond any calendar
    for args in [
        &["audit"][..],
        &["verify"],
        &["members"],
        &["audit", "--json"],
    ] {
        assert_answers(&lab.vault_as(store, alice, args));
    }
    let audit = lab.vault_as(store, alice, &["audit", "--json"]);
    assert!(audit.stdout.contains("+10000-01-01T00:00:00Z"), "{audit}");
    let verify = lab.vault_as(store, alice, &["verify"]);
    assert!(verify.stdout.contains("no date"), "{verify}");
    add_carol(&team).ok();
}

#[test]
fn committed_files_named_like_temporaries_refuse_every_change() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    // The old predictable temporary of `bank.gpg`, as a link to a file of the operator's.
    let victim = lab.path("victim");
    fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, store.file(".bank.gpg.vault-tmp")).unwrap();
    fs::write(store.file("web/.shop.gpg.Ab3dE9xZ.vault-tmp"), "x").unwrap();
    git_commit_all(store, "Plant temporaries");
    assert_refused(
        &team,
        &team.carol.add_member_args(),
        &[
            ".bank.gpg.vault-tmp",
            "web/.shop.gpg.Ab3dE9xZ.vault-tmp",
            "git rm",
        ],
    );
    assert_refused(&team, &["--yes", "remove-member", "bob"], &["vault-tmp"]);
    let audit = lab.vault_as(store, &team.alice, &["audit"]);
    assert_eq!(audit.code, Some(3), "{audit}");
    audit.stdout_has(".bank.gpg.vault-tmp");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");

    // Once removed, a change works, and writes nothing through any link.
    store.git_ok(&[
        "rm",
        "-q",
        ".bank.gpg.vault-tmp",
        "web/.shop.gpg.Ab3dE9xZ.vault-tmp",
    ]);
    store.git_ok(&["commit", "-q", "-m", "Remove the plants"]);
    add_carol(&team).ok();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    store.assert_clean();
    let leftovers: Vec<String> = store
        .snapshot()
        .files
        .into_keys()
        .filter(|p| p.ends_with(".vault-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_linked_folder_in_the_work_tree_is_never_written_through() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    let outside = lab.path("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(store.file(".gitignore"), "linked\n").unwrap();
    git_commit_all(store, "Ignore linked");
    std::os::unix::fs::symlink(&outside, store.file("linked")).unwrap();
    let mut args = team.carol.add_member_args().to_vec();
    args.extend(["--folder", "linked", "--create"]);
    assert_refused(&team, &args, &["linked", "symbolic link"]);
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

/// `finance/.gpg-id` is a link to `../ops/.gpg-id` (alice only), as pass users make them.
fn link_finance_to_ops(team: &Team) {
    let store = &team.store;
    fs::create_dir_all(store.file("finance")).unwrap();
    std::os::unix::fs::symlink("../ops/.gpg-id", store.file("finance/.gpg-id")).unwrap();
    git_commit_all(store, "finance/ is read by ops' readers");
    // pass follows the link: the entry is encrypted to alice only.
    insert_entries(
        &team.lab,
        store,
        &team.alice,
        &[("finance/budget", "b-pw\n")],
    );
}

#[test]
fn a_symlinked_gpg_id_is_followed_as_pass_follows_it() {
    let team = adopted_team();
    let (lab, store, alice, bob, carol) =
        (&team.lab, &team.store, &team.alice, &team.bob, &team.carol);
    link_finance_to_ops(&team);
    let budget = [("finance/budget", "b-pw\n")];
    lab.assert_cannot_read(store, bob, &budget);

    // A change to the root must not widen finance/ to the root's readers.
    add_carol(&team).ok();
    lab.assert_cannot_read(store, carol, &budget);
    lab.assert_cannot_read(store, bob, &budget);
    lab.assert_reads(store, alice, &budget);

    // A change to finance/ writes the file the link leads to (both folders change), and the
    // link stays a link.
    let dave = Person::generate("dave", KeyKind::Ed25519);
    introduce(&[alice, &dave]);
    let mut args = dave.add_member_args().to_vec();
    args.extend(["--folder", "finance"]);
    let out = lab.vault_as(store, alice, &args);
    out.ok().stderr_has("finance/.gpg-id -> ops/.gpg-id");
    let meta = fs::symlink_metadata(store.file("finance/.gpg-id")).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "finance/.gpg-id is no longer a link"
    );
    assert!(store.gpg_ids("ops").contains(&dave.fpr));
    lab.assert_reads(store, &dave, &budget);
    lab.assert_reads(store, &dave, OPS_ENTRIES);
    lab.assert_cannot_read(store, carol, &budget);
    lab.assert_pass_init_reencrypts_nothing(store, alice, "ops");
    store.assert_clean();

    let audit = lab.vault_as(store, alice, &["audit"]);
    audit.stdout_has("finance/.gpg-id -> ops/.gpg-id");
}

#[test]
fn a_gpg_id_linked_out_of_the_store_or_to_nothing_is_refused() {
    for (name, target) in [
        ("out of the store", "../../outside/.gpg-id"),
        ("absolute", "/etc/hostname"),
        ("dangling", "../nowhere/.gpg-id"),
        ("to an entry", "../bank.gpg"),
    ] {
        let team = adopted_team();
        let (lab, store) = (&team.lab, &team.store);
        fs::create_dir_all(lab.path("outside")).unwrap();
        fs::write(lab.path("outside/.gpg-id"), format!("{}\n", team.carol.fpr)).unwrap();
        fs::create_dir_all(store.file("finance")).unwrap();
        std::os::unix::fs::symlink(target, store.file("finance/.gpg-id")).unwrap();
        git_commit_all(store, "finance/ links its recipients");
        let out = assert_refused(&team, &team.carol.add_member_args(), &["finance/.gpg-id"]);
        assert!(out.stderr.contains("symbolic link"), "{name}:\n{out}");
        let audit = lab.vault_as(store, &team.alice, &["audit"]);
        assert_eq!(audit.code, Some(3), "{name}:\n{audit}");
        audit.stdout_has("finance/.gpg-id");
    }
}

#[test]
fn symlinked_entries_are_listed_by_audit() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    std::os::unix::fs::symlink("bank.gpg", store.file("bank-alias.gpg")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", store.file("passwd.gpg")).unwrap();
    git_commit_all(store, "Links");
    let audit = lab.vault_as(store, &team.alice, &["audit"]);
    assert_eq!(audit.code, Some(3), "{audit}");
    audit.stdout_has("bank-alias.gpg -> bank.gpg");
    audit.stdout_has("passwd.gpg: a symbolic link to /etc/passwd, outside the store");
    // The link out of the store is under the root's .gpg-id: a change there refuses.
    assert_refused(
        &team,
        &team.carol.add_member_args(),
        &["passwd.gpg", "outside the store"],
    );
}

#[test]
fn user_ids_with_newlines_and_escapes_cannot_forge_trailers_or_redraw_the_terminal() {
    let team = adopted_team();
    let (lab, store, alice, carol) = (&team.lab, &team.store, &team.alice, &team.carol);
    let mallory = Person::generate("mallory", KeyKind::Ed25519);
    let forged = format!(
        "Carol\nVault-Member: mallory <{}>\n\x1b[1A\x1b[2K  fingerprint  0000 0000",
        mallory.fpr
    );
    carol.gpg.gpg(["--quick-add-uid", &carol.fpr, &forged]).ok();
    carol.gpg.export_public(&carol.fpr, &carol.public);
    let out = lab.vault_as(store, alice, &carol.add_member_args());
    out.ok();
    assert!(
        !out.all_output().contains('\x1b'),
        "a raw escape reached the terminal:\n{out}"
    );
    out.stderr_has("Carol\\nVault-Member: mallory");
    out.stderr_has("\\x1b[1A");
    let message = store.last_message();
    assert!(!message.contains('\x1b'), "{message}");
    let trailers = store.git_ok(&[
        "log",
        "-1",
        "--format=%(trailers:key=Vault-Member,valueonly)",
    ]);
    assert_eq!(trailers.trim(), format!("carol <{}>", carol.fpr));
    let verify = lab.vault_as(store, alice, &["verify", "--json"]);
    verify.ok();
    assert!(!verify.stdout.contains(&mallory.fpr), "{verify}");
}

#[test]
fn two_runs_at_once_never_break_a_change() {
    let team = adopted_team();
    let (lab, store, alice) = (&team.lab, &team.store, &team.alice);
    // Run 1 stops (for 8 s) with its change staged and its journal live.
    let mut first = lab.clean_vault(alice.gpg.home(), &store.path, &[]);
    first
        .args(["--identity", alice.secret_str()])
        .args(team.carol.add_member_args())
        .env("VAULT_FAULT_STALL", "pack written")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut first = first.spawn().unwrap();
    let pid = first.id();
    let mut stderr = BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("stalled") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "run 1 ended early"
        );
    }
    // Another writer waits, then gives up naming run 1; it touches nothing of run 1's.
    let mut second = lab.clean_vault(alice.gpg.home(), &store.path, &["--yes"]);
    second
        .args(["--identity", alice.secret_str(), "remove-member", "bob"])
        .env("VAULT_LOCK_WAIT", "1");
    let second = second.output().unwrap();
    assert_eq!(second.status.code(), Some(1), "{}", show(&second));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!(
            "another vault command (pid {pid}) is changing this store"
        )),
        "{err}"
    );
    // Readers answer from the committed state meanwhile.
    let audit = lab
        .clean_vault(alice.gpg.home(), &store.path, &["audit"])
        .output()
        .unwrap();
    assert_eq!(audit.status.code(), Some(0), "{}", show(&audit));
    // Run 1 finishes its change.
    let status = first.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "run 1 failed: {rest}");
    store.assert_clean();
    assert!(store.gpg_ids("").contains(&team.carol.fpr));
    lab.assert_reads(store, &team.carol, ROOT_ENTRIES);
    // And the second run, tried again, works.
    lab.vault_as(store, alice, &["--yes", "remove-member", "bob"])
        .ok();
}

#[test]
fn a_closed_output_pipe_still_records_the_trust_anchor() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    introduce(&[&alice, &bob]);
    let store = pass_store(&lab, &alice, &[&alice, &bob], &[&alice]);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // `vault init | true`: nobody reads vault's output
    let mut init = lab.clean_vault(alice.gpg.home(), &store.path, &["init"]);
    init.stdout(writer);
    let init = init.output().unwrap();
    assert!(init.status.success(), "{}", show(&init));
    assert!(
        store.path.join(".git/vault-anchor").is_file(),
        "no trust anchor was saved"
    );
    // Without a terminal, a clone with no anchor could not go on: this one can.
    lab.vault_as(&store, &alice, &["verify"]).ok();
}

#[test]
fn init_commits_only_store_files() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let store = lab.store("store");
    lab.pass(&store, &alice, &["init", &alice.fpr], "").ok();
    insert_entries(&lab, &store, &alice, &[("bank", "pw\n")]);
    assert!(!store.path.join(".git").exists());
    fs::write(store.file("export-from-keepass.csv"), "bank,pw\n").unwrap();
    let before = everything(&store.path);
    let out = lab.vault(&store, &alice, &["init"]);
    out.fails()
        .stderr_has("export-from-keepass.csv")
        .stderr_has(".gitignore");
    assert_eq!(
        before,
        everything(&store.path),
        "a refused init changed the folder"
    );

    fs::write(store.file(".gitignore"), "*.csv\n").unwrap();
    lab.vault(&store, &alice, &["init"]).ok();
    let files = store.git_ok(&["ls-files"]);
    assert!(!files.contains("export-from-keepass.csv"), "{files}");
    assert!(
        files.contains(".gitignore") && files.contains("bank.gpg"),
        "{files}"
    );

    // The same rule for every command that commits: a file vault does not know stops it.
    fs::write(store.file("notes.txt"), "todo\n").unwrap();
    let bob = Person::generate("bob", KeyKind::Ed25519);
    let team = Team {
        alice,
        bob,
        carol: Person::generate("carol", KeyKind::Ed25519),
        store,
        lab,
    };
    assert_refused(
        &team,
        &team.bob.add_member_args(),
        &["notes.txt", ".gitignore"],
    );
}

#[test]
fn gpg_id_folders_that_are_not_utf8_are_refused_not_ignored() {
    let team = adopted_team();
    let (lab, store) = (&team.lab, &team.store);
    let folder = store.path.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    fs::create_dir(&folder).unwrap();
    fs::write(folder.join(".gpg-id"), format!("{}\n", team.alice.fpr)).unwrap();
    git_commit_all(store, "A folder named in Latin-1");
    let out = assert_refused(
        &team,
        &team.carol.add_member_args(),
        &[".gpg-id", "not UTF-8"],
    );
    assert!(out.stderr.contains("caf"), "{out}");
    let audit = lab.vault_as(store, &team.alice, &["audit"]);
    assert_eq!(audit.code, Some(3), "{audit}");
    audit.stdout_has("not UTF-8");
}

#[test]
fn path_rules_are_one_rule() {
    use vault::store::{parse_folder, path_problem};
    for bad in ["a/../b", "/etc", "a//b", "./a", "a/.git/b", ".GIT", "a\0b"] {
        assert!(path_problem(bad).is_some(), "{bad:?}");
        assert!(parse_folder(bad).is_err(), "{bad:?}");
    }
    for good in ["ops", "ops/dns", "日本語/パス", "a b/c"] {
        assert_eq!(path_problem(good), None);
        assert_eq!(parse_folder(&format!("{good}/")).unwrap(), good);
    }
}

#[test]
fn init_never_commits_a_file_staged_by_hand() {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let store = lab.store("store");
    lab.pass(&store, &alice, &["init", &alice.fpr], "").ok();
    insert_entries(&lab, &store, &alice, &[("bank", "pw\n")]);
    fs::write(store.file("export-from-keepass.csv"), "bank,pw\n").unwrap();
    store.git_ok(&["init", "-q"]);
    store.git_ok(&["add", "-A"]); // staged, not committed: still not vault's to commit
    let before = everything(&store.path);
    lab.vault(&store, &alice, &["init"])
        .fails()
        .stderr_has("export-from-keepass.csv");
    assert_eq!(
        before,
        everything(&store.path),
        "a refused init changed the folder"
    );
}

#[test]
fn verify_checks_a_commit_that_only_retargets_a_link() {
    let team = adopted_team(); // root: alice, bob; ops/: alice
    let (lab, store, alice) = (&team.lab, &team.store, &team.alice);
    // hr/ reads ops' recipients through two links; this clone trusts that state.
    std::os::unix::fs::symlink("ops", store.file("shared")).unwrap();
    fs::create_dir(store.file("hr")).unwrap();
    std::os::unix::fs::symlink("../shared/.gpg-id", store.file("hr/.gpg-id")).unwrap();
    git_commit_all(store, "hr/ is read by ops' readers");
    fs::remove_file(store.file(".git/vault-anchor")).unwrap();
    lab.vault_as(store, alice, &["--yes", "verify"]).ok();
    // A push that changes only the folder link: hr/ now reads the root's (wider) .gpg-id.
    fs::remove_file(store.file("shared")).unwrap();
    std::os::unix::fs::symlink(".", store.file("shared")).unwrap();
    git_commit_all(store, "Tidy links");
    let retarget = store.git_ok(&["rev-parse", "--short=10", "HEAD"]);
    // bob is trusted, so this is not a violation; but it is reported, against the right commit.
    let out = lab.vault_as(store, alice, &["verify"]);
    out.ok();
    let warn = out
        .stdout
        .lines()
        .find(|l| l.starts_with("warn") && l.contains("hr/.gpg-id"))
        .unwrap_or_else(|| panic!("the widening of hr/ is not reported:\n{out}"));
    assert!(warn.contains(&retarget), "{out}");
    assert!(
        warn.contains(&team.bob.fpr) && warn.contains("already a trusted member"),
        "{out}"
    );
    assert!(
        !out.stdout.contains("vouched for by a trusted member later"),
        "{out}"
    );

    // The same for someone nobody trusts: a violation, blamed on the link's commit.
    let mallory = Person::generate("mallory", KeyKind::Ed25519);
    fs::create_dir(store.file("public")).unwrap();
    fs::write(store.file("public/.gpg-id"), format!("{}\n", mallory.fpr)).unwrap();
    fs::copy(
        &mallory.public,
        store.file(&format!(".public-keys/{}", mallory.fpr)),
    )
    .unwrap();
    git_commit_all(store, "A public folder"); // itself a violation: mallory is not trusted
    fs::remove_file(store.file("shared")).unwrap();
    std::os::unix::fs::symlink("public", store.file("shared")).unwrap();
    git_commit_all(store, "Tidy links again");
    let retarget = store.git_ok(&["rev-parse", "--short=10", "HEAD"]);
    let out = lab.vault_as(store, alice, &["verify"]);
    assert_eq!(out.code, Some(3), "{out}");
    let bad = out
        .stdout
        .lines()
        .find(|l| l.starts_with("BAD") && l.contains(&retarget))
        .unwrap_or_else(|| panic!("no violation for the link's commit:\n{out}"));
    assert!(
        bad.contains(&mallory.fpr) && bad.contains("hr/.gpg-id"),
        "{out}"
    );
}
