//! No plaintext reaches the disk: after `add-member` (which only re-wraps session keys) and
//! `remove-member` (which decrypts and re-encrypts every entry in memory), none of the entries'
//! plaintexts, nor the operator key's passphrase, appears anywhere in the store's work tree, in
//! `.git` (raw files, and every object decompressed by git, loose or packed, reachable or not),
//! in the private TMPDIR vault ran with, or in its HOME.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// Random hex from the kernel, so that a match can only come from this run's secrets.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

struct Setup {
    lab: Lab,
    alice_gpg: Gpg,
    alice_fpr: String,
    identity: PathBuf,
    passphrase_file: PathBuf,
    passphrase: String,
    bob: Person,
    carol: Person,
    tmp: PathBuf,
}

impl Setup {
    fn vault(&self, store: &Store, args: &[&str]) -> Output {
        let mut all = vec![
            "--identity",
            self.identity.to_str().unwrap(),
            "--passphrase-file",
            self.passphrase_file.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let out = self
            .lab
            .clean_vault(self.alice_gpg.home(), &store.path, &all)
            .env("TMPDIR", &self.tmp)
            .output()
            .expect("running vault");
        // `audit` exits 3 when something needs attention (here: entries bob could read).
        let ok = out.status.success() || (args == ["audit"] && out.status.code() == Some(3));
        assert!(
            ok,
            "vault {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Every regular file under `root` (symlinks not followed): path -> bytes.
fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(&e.path(), out);
            } else if ft.is_file() {
                out.insert(e.path(), fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `git cat-file --batch-all-objects --batch`: every object in the repository (loose and packed,
/// reachable or not), decompressed.
fn all_objects(store: &Store) -> Vec<u8> {
    let out = Command::new("git")
        .arg("-C")
        .arg(&store.path)
        .args(["cat-file", "--batch-all-objects", "--batch"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Loose object ids (from the file names under .git/objects/xx/).
fn loose_objects(store: &Store) -> Vec<String> {
    let mut ids = Vec::new();
    for d in fs::read_dir(store.path.join(".git/objects")).unwrap() {
        let d = d.unwrap();
        let name = d.file_name().to_string_lossy().into_owned();
        if name.len() != 2 {
            continue;
        }
        for f in fs::read_dir(d.path()).unwrap() {
            let f = f.unwrap().file_name().to_string_lossy().into_owned();
            ids.push(format!("{name}{f}"));
        }
    }
    ids
}

#[test]
fn no_plaintext_or_passphrase_reaches_the_disk() {
    let lab = Lab::new();
    let tmp = lab.path("tmp");
    fs::create_dir(&tmp).unwrap();

    // alice, the operator, with a passphrase-protected key.
    let alice_gpg = Gpg::new();
    let passphrase = format!("pass-{}", random_hex(16));
    let lb = ["--pinentry-mode", "loopback", "--passphrase", &passphrase];
    let mut args = lb.to_vec();
    args.extend([
        "--quick-gen-key",
        "Alice <alice@coop.example>",
        "ed25519",
        "sign",
        "never",
    ]);
    alice_gpg.gpg(&args).ok();
    let alice_fpr = alice_gpg.fingerprint("alice@coop.example");
    let mut args = lb.to_vec();
    args.extend(["--quick-add-key", &alice_fpr, "cv25519", "encr", "never"]);
    alice_gpg.gpg(&args).ok();
    let public = alice_gpg.scratch().join("alice.asc");
    alice_gpg.export_public(&alice_fpr, &public);
    let identity = alice_gpg.scratch().join("alice.secret.asc");
    let mut args = lb.to_vec();
    args.extend(["--armor", "--export-secret-keys", &alice_fpr]);
    let out = alice_gpg.gpg(&args);
    out.ok();
    fs::write(&identity, &out.stdout_bytes).unwrap();
    let passphrase_file = alice_gpg.scratch().join("passphrase");
    fs::write(&passphrase_file, format!("{passphrase}\n")).unwrap();

    let bob = Person::generate("bob", KeyKind::Ed25519);
    let carol = Person::generate("carol", KeyKind::Ed25519);
    for p in [&bob, &carol] {
        alice_gpg.import(&p.public);
    }
    let s = Setup {
        lab,
        alice_gpg,
        alice_fpr,
        identity,
        passphrase_file,
        passphrase,
        bob,
        carol,
        tmp,
    };

    let store = s.lab.store("store");
    s.vault(
        &store,
        &["init", public.to_str().unwrap(), "--name", "alice"],
    );
    s.vault(
        &store,
        &["--yes", "add-member", s.bob.public_str(), "--name", "bob"],
    );

    // Entries with distinctive plaintexts: a password line, a note, and one big entry (to make
    // the in-memory buffers grow), encrypted by GnuPG to alice and bob.
    let mut secrets: Vec<String> = Vec::new();
    let mut plaintexts: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..12 {
        let pw = format!("PW{i:02}-{}", random_hex(12));
        let note = format!("NOTE{i:02}-{}", random_hex(12));
        let mut text = format!("{pw}\nuser: u{i}\nnote: {note}\n");
        if i == 0 {
            for k in 0..2000 {
                text.push_str(&format!("line {k} of a long entry\n"));
            }
        }
        secrets.extend([pw, note]);
        let name = match i % 3 {
            0 => format!("web/site{i}"),
            1 => format!("ops/db/host{i}"),
            _ => format!("entry{i}"),
        };
        plaintexts.push((name, text.into_bytes()));
    }
    for (name, text) in &plaintexts {
        let file = store.entry_file(name);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        let mut child = Command::new("gpg")
            .env("GNUPGHOME", s.alice_gpg.home())
            .args([
                "--batch",
                "--yes",
                "--compress-algo",
                "none",
                "-r",
                &s.alice_fpr,
                "-r",
                &s.bob.fpr,
                "-o",
                file.to_str().unwrap(),
                "--encrypt",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text).unwrap();
        assert!(child.wait().unwrap().success());
    }
    store.git_ok(&["add", "-A"]);
    store.git_ok(&["commit", "-q", "-m", "entries"]);

    // The changes: add carol (re-wraps session keys), remove bob (decrypts and
    // re-encrypts everything), then remove carol from ops/ (re-encrypts ops/).
    let outputs = [
        s.vault(
            &store,
            &[
                "--yes",
                "add-member",
                s.carol.public_str(),
                "--name",
                "carol",
            ],
        ),
        s.vault(&store, &["--yes", "remove-member", "bob"]),
        s.vault(
            &store,
            &["--yes", "remove-member", "carol", "--folder", "ops"],
        ),
        s.vault(&store, &["members"]),
        s.vault(&store, &["audit"]),
    ];
    store.assert_clean();
    assert_eq!(
        store.commit_count(),
        6,
        "init, bob, entries, carol, -bob, -carol/ops"
    );

    // The changes really happened: alice's GnuPG reads every entry, bob's none.
    for (name, text) in &plaintexts {
        let file = store.entry_file(name);
        let out = s.alice_gpg.gpg([
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            &s.passphrase,
            "--decrypt",
            file.to_str().unwrap(),
        ]);
        out.ok();
        assert_eq!(&out.stdout_bytes, text, "{name}");
        assert!(!s.bob.gpg.decrypt_verbose(&file).success(), "{name}");
    }

    let mut needles: Vec<(String, &[u8])> = secrets
        .iter()
        .map(|x| (format!("plaintext {x}"), x.as_bytes()))
        .collect();
    needles.push(("the passphrase".into(), s.passphrase.as_bytes()));

    // Where to look: raw files of the store (work tree and .git), of TMPDIR and of HOME, and every
    // git object decompressed.
    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    for root in [&store.path, &s.tmp, &s.lab.home().to_path_buf()] {
        for (path, bytes) in files_under(root) {
            haystacks.push((path.display().to_string(), bytes));
        }
    }
    let objects = all_objects(&store);
    // The decompression is real: text vault committed is readable only decompressed.
    assert!(find(&objects, b"Managed by vault"));
    assert!(!haystacks
        .iter()
        .any(|(p, b)| p.contains("/.git/") && find(b, b"Managed by vault")));
    // Every loose object file is an object git can read (nothing else hides under objects/).
    let loose = loose_objects(&store);
    assert!(loose.len() > 40, "{} loose objects", loose.len());
    for id in &loose {
        assert!(
            find(&objects, id.as_bytes()),
            "loose object {id} is not readable by git"
        );
    }
    haystacks.push(("git objects (decompressed)".into(), objects));
    for (i, out) in outputs.iter().enumerate() {
        haystacks.push((format!("output of vault run {i}"), out.stdout.clone()));
        haystacks.push((format!("stderr of vault run {i}"), out.stderr.clone()));
    }
    let tmp_files = files_under(&s.tmp);
    assert!(
        tmp_files.is_empty(),
        "vault left files in TMPDIR: {:?}",
        tmp_files.keys()
    );

    let mut found = Vec::new();
    for (what, needle) in &needles {
        for (place, bytes) in &haystacks {
            if find(bytes, needle) {
                found.push(format!("{what} in {place}"));
            }
        }
    }
    assert!(found.is_empty(), "secrets on disk:\n{}", found.join("\n"));
}
