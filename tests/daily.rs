//! The daily commands against the real pass, in both directions: vault writes (with an empty
//! GnuPG home on its side: no keyring at all, the operator's key file only) and pass reads;
//! pass writes and vault reads. Every write is one commit with pass's message and vault's
//! trailers, and `pass init` with the same ids re-encrypts nothing afterwards.

mod common;

use std::path::Path;

use common::*;

/// alice's side: an empty GnuPG home and her secret key file.
struct Alice<'t> {
    lab: &'t Lab,
    store: &'t Store,
    empty: Gpg,
    secret: &'t str,
}

impl<'t> Alice<'t> {
    fn new(lab: &'t Lab, store: &'t Store, alice: &'t Person) -> Alice<'t> {
        Alice {
            lab,
            store,
            empty: Gpg::new(),
            secret: alice.secret_str(),
        }
    }

    fn vault(&self, args: &[&str], stdin: &str) -> Run {
        self.vault_env(args, &[], stdin)
    }

    fn vault_env(&self, args: &[&str], env: &[(&str, &Path)], stdin: &str) -> Run {
        let mut all = vec!["--identity", self.secret, "--yes"];
        all.extend_from_slice(args);
        self.lab
            .vault_input(self.store, self.empty.home(), (&all, env), stdin)
    }
}

#[test]
fn vault_writes_with_no_keyring_and_pass_reads_everything() {
    let t = adopted_team();
    let (lab, store, alice, bob) = (&t.lab, &t.store, &t.alice, &t.bob);
    let a = Alice::new(lab, store, alice);

    // insert --multiline: pass's commit message, vault's trailers; pass reads it for everyone.
    a.vault(&["insert", "-m", "web/new"], "n3w-pass\nlogin: coop\n")
        .ok();
    assert_eq!(
        store.last_subject(),
        "Add given password for web/new to store."
    );
    assert!(store.last_message().contains("Vault-Action: insert"));
    let new = [("web/new", "n3w-pass\nlogin: coop\n")];
    lab.assert_reads(store, alice, &new);
    lab.assert_reads(store, bob, &new);
    // Exists: refused without --force, nothing changed; one line only without -m.
    let head = store.head();
    a.vault(&["insert", "web/new"], "other\n")
        .fails()
        .stderr_has("entry web/new exists already");
    assert_eq!(store.head(), head);
    a.vault(&["insert", "--force", "web/new"], "first\nsecond\n")
        .ok();
    // Nothing on standard input: refused, nothing changed (pass fails too).
    let head = store.head();
    a.vault(&["insert", "--force", "web/new"], "")
        .fails()
        .stderr_has("no password for web/new");
    assert_eq!(store.head(), head);
    lab.assert_reads(store, bob, &[("web/new", "first\n")]);

    // generate: the password printed once, stored as its first line; --in-place keeps the rest.
    let run = a.vault(&["generate", "web/gen", "30", "--no-symbols"], "");
    run.ok();
    assert_eq!(store.last_subject(), "Add generated password for web/gen.");
    let password = run.stdout.lines().last().unwrap().to_string();
    assert_eq!(password.len(), 30);
    assert!(
        password.chars().all(|c| c.is_ascii_alphanumeric()),
        "{password}"
    );
    lab.assert_reads(store, bob, &[("web/gen", &format!("{password}\n"))]);
    let run = a.vault(&["generate", "--in-place", "bank"], "");
    run.ok();
    let new_password = run.stdout.lines().last().unwrap().to_string();
    assert_eq!(new_password.len(), 25);
    let old_bank = ROOT_ENTRIES[0].1;
    let rest = &old_bank[old_bank.find('\n').unwrap()..];
    lab.assert_reads(store, bob, &[("bank", &format!("{new_password}{rest}"))]);

    // show, --line.
    a.vault(&["show", "email/work"], "")
        .ok()
        .stdout_has(ROOT_ENTRIES[1].1);
    let line = a.vault(&["show", "email/work", "--line", "2"], "");
    assert_eq!(line.ok().stdout, "user: alice@coop.example\n");
    a.vault(&["show", "email/wrok"], "")
        .fails()
        .stderr_has("did you mean email/work?");
    a.vault(&["show", "email"], "")
        .fails()
        .stderr_has("email is a folder, not an entry");
    a.vault(&["ls", "email/work"], "")
        .ok()
        .stdout_has("user: alice@coop.example");

    // mv into a folder with other readers: encrypted anew, bob loses it; cp with the same
    // readers keeps the ciphertext byte for byte; rm.
    a.vault(&["mv", "web/shop", "ops/"], "").ok();
    assert_eq!(store.last_subject(), "Rename web/shop to ops/.");
    let shop = [("ops/shop", ROOT_ENTRIES[2].1)];
    lab.assert_reads(store, alice, &shop);
    lab.assert_cannot_read(store, bob, &shop);
    assert!(!store.file("web/shop.gpg").exists());
    // Moving to where others read needs a yes; a folder with its own .gpg-id is not moved.
    let head = store.head();
    lab.vault_input(
        store,
        a.empty.home(),
        (&["--identity", a.secret, "mv", "ops/db", "web/"], &[]),
        "",
    )
    .fails()
    .stderr_has("can read what they could not before: bob");
    a.vault(&["mv", "ops", "archive/ops"], "")
        .fails()
        .stderr_has("has its own ops/.gpg-id");
    assert_eq!(store.head(), head);
    a.vault(&["cp", "email/work", "email/work2"], "").ok();
    assert_eq!(store.last_subject(), "Copy email/work to email/work2.");
    assert_eq!(
        store.entry_bytes("email/work"),
        store.entry_bytes("email/work2")
    );
    a.vault(&["rm", "email/work2"], "").ok();
    assert_eq!(store.last_subject(), "Remove email/work2 from store.");
    a.vault(&["rm", "web"], "")
        .fails()
        .stderr_has("web is a folder");

    // edit: $EDITOR on a file in /dev/shm; the result committed.
    let editor = store.home().join("edit.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/hunter2/hunter3/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    a.vault_env(&["edit", "email/work"], &[("EDITOR", &editor)], "")
        .ok();
    assert!(store
        .last_subject()
        .starts_with("Edit password for email/work using "));
    let edited = ROOT_ENTRIES[1].1.replace("hunter2", "hunter3");
    lab.assert_reads(store, bob, &[("email/work", &edited)]);

    // ls, find, grep.
    let ls = a.vault(&["ls"], "");
    assert_eq!(
        ls.ok().stdout,
        "Password Store\n├── bank\n├── email\n│   └── work\n├── ops\n│   ├── db\n│   ├── servers\n│   │   └── root\n│   └── shop\n└── web\n    ├── gen\n    └── new\n"
    );
    a.vault(&["find", "WOR"], "")
        .ok()
        .stdout_has("Search Terms: WOR\n└── email\n    └── work\n");
    a.vault(&["grep", "^login:"], "")
        .ok()
        .stdout_has("ops/shop:\nlogin: coop\n");

    // Everything is as pass wants it: pass init with the same ids re-encrypts nothing, and
    // vault finds nothing to repair.
    store.assert_clean();
    lab.assert_pass_init_reencrypts_nothing(store, bob, "");
    lab.assert_pass_init_reencrypts_nothing(store, alice, "ops");
    a.vault(&["repair"], "")
        .ok()
        .stdout_has("Nothing to repair");
}

#[test]
fn pass_writes_and_vault_reads_with_no_keyring() {
    let t = adopted_team();
    let (lab, store, alice, bob) = (&t.lab, &t.store, &t.alice, &t.bob);
    lab.pass(
        store,
        bob,
        &["insert", "-m", "dns/registrar"],
        "dns-pw\nurl: x\n",
    )
    .ok();
    let a = Alice::new(lab, store, alice);
    let show = a.vault(&["show", "dns/registrar"], "");
    assert_eq!(show.ok().stdout, "dns-pw\nurl: x\n");
}

#[test]
fn writing_refuses_an_unvouched_recipient_and_changes_nothing() {
    let t = adopted_team();
    let (lab, store, alice, carol) = (&t.lab, &t.store, &t.alice, &t.carol);
    add_by_hand(store, carol);
    git_commit_all(store, "carol, by hand");
    let head = store.head();
    let a = Alice::new(lab, store, alice);
    a.vault(&["insert", "web/x"], "pw\n")
        .fails()
        .stderr_has("vault verify");
    assert_eq!(store.head(), head);
    assert!(!store.file("web/x.gpg").exists());
}

#[test]
fn rotate_yes_rotates_what_audit_lists_keeping_every_other_line_and_the_flags_clear() {
    let t = adopted_team();
    let (lab, store, alice) = (&t.lab, &t.store, &t.alice);
    lab.vault_as(store, alice, &["--yes", "remove-member", "bob"])
        .ok();
    let audit = lab.vault(store, alice, &["audit"]);
    assert_eq!(audit.code, Some(3), "{audit}");
    let a = Alice::new(lab, store, alice);
    // Without a terminal and without --yes: refused, nothing changed.
    let head = store.head();
    lab.vault_input(
        store,
        a.empty.home(),
        (&["--identity", a.secret, "rotate"], &[]),
        "",
    )
    .fails()
    .stderr_has("--yes");
    assert_eq!(store.head(), head);

    let run = a.vault(&["rotate"], "");
    run.ok().stdout_has("Rotated 3 entries");
    assert_eq!(store.last_subject(), "Rotate 3 passwords");
    let message = store.last_message();
    assert!(message.contains("Vault-Action: rotate"), "{message}");
    for (entry, plain) in ROOT_ENTRIES {
        assert!(
            message.contains(&format!("Vault-Entry: {entry}")),
            "{message}"
        );
        assert!(!run.stdout.contains(plain.lines().next().unwrap()));
        let now = String::from_utf8(lab.read_as(store, alice, entry).unwrap()).unwrap();
        let (old_first, old_rest) = plain.split_once('\n').unwrap();
        let (new_first, new_rest) = now.split_once('\n').unwrap();
        assert_ne!(new_first, old_first, "{entry}: the password changed");
        assert_eq!(new_rest, old_rest, "{entry}: every other line kept");
    }
    // ops/ was never bob's: untouched.
    lab.assert_reads(store, alice, OPS_ENTRIES);
    let audit = lab.vault(store, alice, &["audit"]);
    assert_eq!(audit.code, Some(0), "the flags clear:\n{audit}");
    a.vault(&["rotate"], "")
        .ok()
        .stdout_has("Nothing to rotate.");
}

#[test]
fn shells_complete_entry_and_member_names_from_the_store_and_the_man_page_renders() {
    let t = adopted_team();
    let (lab, store, alice) = (&t.lab, &t.store, &t.alice);
    let env = [
        ("PASSWORD_STORE_DIR", Path::new(store.path_str())),
        ("COMPLETE", Path::new("fish")),
    ];
    let entries = lab.vault_env(alice.gpg.home(), &env, &["--", "vault", "show", "e"]);
    assert_eq!(entries.ok().stdout, "email/work\n");
    let members = lab.vault_env(alice.gpg.home(), &env, &["--", "vault", "grant", "b"]);
    assert_eq!(members.ok().stdout, "bob\n");
    for shell in ["bash", "zsh", "fish"] {
        let script = lab.vault_env(alice.gpg.home(), &[], &["completions", shell]);
        assert!(script.ok().stdout.contains("COMPLETE="), "{script}");
    }
    let bash = lab.vault_env(alice.gpg.home(), &[], &["completions", "bash"]);
    let check = std::process::Command::new("bash")
        .args(["-n", "-c", &bash.stdout])
        .status()
        .unwrap();
    assert!(check.success(), "the bash script parses");
    let man = lab.vault_env(alice.gpg.home(), &[], &["man"]);
    assert!(man.ok().stdout.contains(".TH vault 1"), "{man}");
    assert!(man.stdout.contains("update\\-member"), "subcommands listed");
}

#[test]
fn rm_recursive_takes_the_folders_gpg_id_and_mv_refuses_moves_into_itself() {
    let t = adopted_team();
    let (lab, store, alice, bob) = (&t.lab, &t.store, &t.alice, &t.bob);
    let a = Alice::new(lab, store, alice);
    let head = store.head();
    a.vault(&["mv", "ops", "ops/deeper"], "")
        .fails()
        .stderr_has("cannot move ops into itself");
    assert_eq!(store.head(), head);
    // A folder elsewhere reads ops/'s .gpg-id through a link: removing ops/ would leave it
    // dangling.
    std::os::unix::fs::symlink("../ops/.gpg-id", store.file("web/.gpg-id")).unwrap();
    git_commit_all(store, "web reads as ops does");
    a.vault(&["rm", "-r", "ops"], "")
        .fails()
        .stderr_has("web/.gpg-id links to a .gpg-id inside ops");
    store.git_ok(&["rm", "-q", "web/.gpg-id"]);
    store.git_ok(&["commit", "-q", "-m", "web reads as the root does again"]);
    a.vault(&["rm", "-r", "ops"], "")
        .ok()
        .stdout_has("Removed 2 entries");
    assert!(!store.file("ops/.gpg-id").exists(), "as pass's rm -r");
    store.assert_clean();
    // An entry added there now goes to the root's readers, as pass would encrypt it.
    a.vault(&["insert", "ops/new"], "pw\n").ok();
    lab.assert_reads(store, bob, &[("ops/new", "pw\n")]);
    lab.assert_pass_init_reencrypts_nothing(store, bob, "");
    a.vault(&["verify"], "").ok();
}

#[test]
fn the_rotate_walk_on_a_terminal_shows_each_entry_and_records_what_was_confirmed() {
    let t = adopted_team();
    let (lab, store, alice) = (&t.lab, &t.store, &t.alice);
    lab.vault_as(store, alice, &["--yes", "remove-member", "bob"])
        .ok();
    // A real terminal (script(1) gives vault a pty): for each of bank, email/work and web/shop,
    // "generate?" yes, then "changed at the service?": yes, no (email/work is skipped), yes.
    let vault = env!("CARGO_BIN_EXE_vault");
    let command = format!(
        "{vault} --store {} --identity {} rotate",
        store.path_str(),
        alice.secret_str()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("GNUPGHOME", alice.gpg.home())
        .env("HOME", store.home())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        for key in ["y", "y", "y", "n", "y", "y"] {
            input.write_all(key.as_bytes()).unwrap();
            input.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    let out = child.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{screen}");
    // Each entry's other lines were shown, to change the credential at the service.
    for line in [
        "IBAN: DE00 1234 5678 9000",
        "user: alice@coop.example",
        "login: coop",
    ] {
        assert!(screen.contains(line), "{line} in:\n{screen}");
    }
    assert!(
        screen.contains("skipped: email/work keeps its password"),
        "{screen}"
    );
    assert!(screen.contains("Rotated 2 entries"), "{screen}");
    assert_eq!(store.last_subject(), "Rotate 2 passwords");
    lab.assert_reads(store, alice, &[("email/work", ROOT_ENTRIES[1].1)]);
    let bank = String::from_utf8(lab.read_as(store, alice, "bank").unwrap()).unwrap();
    assert!(!bank.starts_with("correct horse"), "bank rotated");
    assert!(bank.ends_with("IBAN: DE00 1234 5678 9000\n"), "{bank}");
    // The new password shown on the terminal is the one recorded.
    let first = bank.lines().next().unwrap();
    assert!(
        screen.contains(&format!("new password: {first}")),
        "{screen}"
    );
}
