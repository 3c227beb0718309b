//! Hostile and broken input: a corpus of bad key files, names, store contents and repository
//! states. For each, vault must exit non-zero, name the bad thing (file, key, entry, member, line)
//! on stderr, and leave the store byte-identical: every file and folder, `.git` included, and HEAD.
//!
//! The key files are fixtures in `tests/data/hostile/`, made by GnuPG with `make-keys.sh` there
//! (expired and SHA-1-bound keys cannot be made on demand by every GnuPG version); the stores are
//! made at test time: `vault init` with alice, `vault add-member` bob, three entries encrypted by
//! GnuPG and committed with git, then broken with plain git commits (vault reads committed HEAD).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// The hostile key files, generated once per test run by `tests/data/hostile/make-keys.sh` (with
/// GnuPG, in under a second) so that no secret key is committed outside `keys/`.
fn data(file: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-keys");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("make-keys.sh");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile/make-keys.sh"),
            &script,
        )
        .unwrap();
        let out = Command::new("sh").arg(&script).output().unwrap();
        assert!(
            out.status.success(),
            "make-keys.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .join(file)
}

fn data_str(file: &str) -> String {
    data(file).to_str().unwrap().to_string()
}

/// The entries of the base store: name -> plaintext.
const ENTRIES: &[(&str, &str)] = &[
    ("bank", "correct horse battery staple\nIBAN: DE00 1234\n"),
    ("mail/work", "hunter2\nuser: alice@coop.example\n"),
    ("web/shop", "Sh0p-P4ss!\nlogin: coop\n"),
];

struct Ctx {
    lab: Lab,
    /// A GnuPG home with the public keys of alice, bob and carol (for encrypting entries).
    gpg: Gpg,
    /// alice (operator) + bob, three entries; every case starts from a copy.
    base: Store,
    alice: String,
    bob: String,
    carol: String,
}

/// The primary fingerprint of the one key in a key file.
fn fingerprint_of(file: &Path) -> String {
    vault::crypto::MemberKey::parse(&fs::read(file).unwrap())
        .unwrap()
        .fingerprint()
        .to_string()
}

impl Ctx {
    fn new() -> Ctx {
        let lab = Lab::new();
        let gpg = Gpg::new();
        for k in ["alice.asc", "bob.asc", "carol.asc"] {
            gpg.import(&data(k));
        }
        let alice = fingerprint_of(&data("alice.asc"));
        let bob = fingerprint_of(&data("bob.asc"));
        let carol = fingerprint_of(&data("carol.asc"));
        let base = lab.store("base");
        let ctx = Ctx {
            lab,
            gpg,
            base,
            alice,
            bob,
            carol,
        };
        let init = ctx.vault(
            &ctx.base.path,
            &[
                "--identity",
                &data_str("alice.secret.asc"),
                "init",
                &data_str("alice.asc"),
                "--name",
                "alice",
            ],
        );
        assert!(init.status.success(), "{}", show(&init));
        let add = ctx.as_alice(
            &ctx.base.path,
            &["--yes", "add-member", &data_str("bob.asc"), "--name", "bob"],
        );
        assert!(add.status.success(), "{}", show(&add));
        for (name, text) in ENTRIES {
            let f = ctx.base.entry_file(name);
            ctx.encrypt(text.as_bytes(), &f, &[&ctx.alice, &ctx.bob]);
        }
        ctx.base.git_ok(&["add", "-A"]);
        ctx.base.git_ok(&["commit", "-q", "-m", "Add entries"]);
        ctx.base.assert_clean();
        ctx
    }

    /// Encrypts `plain` to `to` with GnuPG (as pass does) into `file`.
    fn encrypt(&self, plain: &[u8], file: &Path, to: &[&str]) {
        self.gpg.encrypt_to(plain, file, to, &[]);
    }

    /// A fresh copy of the base store (`cp -a`, .git included).
    fn case(&self, name: &str) -> Store {
        self.lab.copy_store(&self.base, name)
    }

    fn vault(&self, store: &Path, args: &[&str]) -> Output {
        self.lab
            .clean_vault(self.gpg.home(), store, args)
            .output()
            .expect("running vault")
    }

    fn as_alice(&self, store: &Path, args: &[&str]) -> Output {
        let id = data_str("alice.secret.asc");
        let mut all = vec!["--identity", id.as_str()];
        all.extend_from_slice(args);
        self.vault(store, &all)
    }

    /// `add-member FILE --name carol --yes` as alice.
    fn add_key(&self, store: &Path, file: &str) -> Output {
        self.as_alice(store, &["--yes", "add-member", file, "--name", "carol"])
    }

    fn remove_bob(&self, store: &Path) -> Output {
        self.as_alice(store, &["--yes", "remove-member", "bob"])
    }
}

/// Commits everything in the work tree with plain git (no vault involved).
fn commit(store: &Store, msg: &str) {
    store.git_ok(&["add", "-A"]);
    store.git_ok(&["commit", "-q", "--allow-empty", "-m", msg]);
    store.assert_clean();
}

/// [`everything`] under `root`, which may also be a file (its mode and bytes, under ""), or
/// `None` if it does not exist.
fn everything_or_file(root: &Path) -> Option<BTreeMap<String, (u32, Vec<u8>)>> {
    let meta = fs::symlink_metadata(root).ok()?;
    if meta.is_dir() {
        return Some(everything(root));
    }
    Some(BTreeMap::from([(
        String::new(),
        (meta.permissions().mode(), fs::read(root).unwrap()),
    )]))
}

fn head_of(root: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "--verify", "-q", "HEAD"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Collects every case that was not refused as it should be, so that one test reports all of
/// them instead of stopping at the first.
#[derive(Default)]
struct Report(std::cell::RefCell<Vec<String>>);

impl Report {
    /// Runs `run` on the store at `root`, which must refuse: exit code 1 (not a crash, not
    /// success), an `error:` on stderr containing every one of `needles`, and every file and
    /// folder (`.git` included) and HEAD exactly as before.
    fn refused(&self, what: &str, root: &Path, run: impl FnOnce() -> Output, needles: &[&str]) {
        let before = everything_or_file(root);
        let head = head_of(root);
        let out = run();
        let err = String::from_utf8_lossy(&out.stderr);
        if std::env::var_os("SHOW").is_some() {
            eprintln!("=== {what}\n{err}");
        }
        let mut problems = Vec::new();
        if out.status.code() != Some(1) {
            problems.push("expected exit code 1 (an error, not a crash or success)".to_string());
        }
        if !err.contains("error: ") || err.contains("panicked") {
            problems.push("expected an error message (and no panic)".to_string());
        }
        for n in needles {
            if !err.contains(n) {
                problems.push(format!("the error should name {n:?}"));
            }
        }
        let after = everything_or_file(root);
        if before != after {
            let (b, a) = (before.unwrap_or_default(), after.unwrap_or_default());
            let mut diffs = Vec::new();
            for (k, v) in &b {
                match a.get(k) {
                    None => diffs.push(format!("removed {k}")),
                    Some(w) if w != v => diffs.push(format!("changed {k}")),
                    _ => {}
                }
            }
            let added: Vec<&String> = a.keys().filter(|k| !b.contains_key(*k)).collect();
            let objects = added
                .iter()
                .filter(|k| k.starts_with(".git/objects/") && !k.ends_with('/'))
                .count();
            if objects > 0 {
                diffs.push(format!("added {objects} loose objects in .git/objects/"));
            }
            diffs.extend(
                added
                    .iter()
                    .filter(|k| !k.starts_with(".git/objects/"))
                    .map(|k| format!("added {k}")),
            );
            problems.push(format!("the store changed: {}", diffs.join(", ")));
        }
        if head != head_of(root) {
            problems.push("HEAD moved".to_string());
        }
        if !problems.is_empty() {
            self.0.borrow_mut().push(format!(
                "{what}:\n  - {}\n  {}",
                problems.join("\n  - "),
                show(&out).replace('\n', "\n  ")
            ));
        }
    }

    #[track_caller]
    fn finish(self) {
        let fails = self.0.into_inner();
        assert!(
            fails.is_empty(),
            "{} case(s) not refused cleanly:\n\n{}",
            fails.len(),
            fails.join("\n\n")
        );
    }
}

/// A copy of a binary (old-format packets, as GnuPG writes them) certificate whose first
/// signature gets one more *unhashed* subpacket: an issuer fingerprint (type 33) of version 0x84,
/// which no standard defines. The signature stays valid (unhashed subpackets are not signed), so
/// the key is fine under the standard policy; found by the `key_file` fuzzer.
fn with_unknown_issuer_fingerprint(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut done = false;
    while pos < key.len() {
        let ctb = key[pos];
        assert!(ctb & 0xc0 == 0x80, "expected old-format packets");
        let n = [1usize, 2, 4][(ctb & 3) as usize];
        let len = key[pos + 1..pos + 1 + n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | *b as usize);
        let body = &key[pos + 1 + n..pos + 1 + n + len];
        let tag = (ctb >> 2) & 0x0f;
        if tag == 2 && !done && body[0] == 4 {
            let hashed = u16::from_be_bytes([body[4], body[5]]) as usize;
            let u = 6 + hashed;
            let unhashed = u16::from_be_bytes([body[u], body[u + 1]]) as usize;
            let mut sub = vec![22u8, 33, 0x84];
            sub.extend(0u8..20);
            let mut new = body[..u].to_vec();
            new.extend(((unhashed + sub.len()) as u16).to_be_bytes());
            new.extend(&body[u + 2..u + 2 + unhashed]);
            new.extend(&sub);
            new.extend(&body[u + 2 + unhashed..]);
            out.push(0x80 | (tag << 2) | 1); // two length octets
            out.extend((new.len() as u16).to_be_bytes());
            out.extend(new);
            done = true;
        } else {
            out.extend(&key[pos..pos + 1 + n + len]);
        }
        pos += 1 + n + len;
    }
    assert!(done);
    out
}

// ---------------------------------------------------------------------------------------------
// Key files given to add-member
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_key_files_are_refused_by_name() {
    let ctx = Ctx::new();
    let report = Report::default();
    let store = ctx.case("keys");
    let root = &store.path;
    let scratch = ctx.lab.path("keyfiles");
    fs::create_dir_all(&scratch).unwrap();
    let file = |name: &str, bytes: &[u8]| -> String {
        let p = scratch.join(name);
        fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let carol = fs::read(data("carol.asc")).unwrap();
    let binary = {
        let out = scratch.join("carol.gpg");
        ctx.gpg
            .gpg([
                "--dearmor",
                "-o",
                out.to_str().unwrap(),
                &data_str("carol.asc"),
            ])
            .ok();
        fs::read(&out).unwrap()
    };

    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "garbage",
            file("garbage.asc", b"\x00\x9f this is not an OpenPGP key \xff\xfe\n"),
            vec!["garbage.asc", "not an OpenPGP key"],
        ),
        (
            "armored garbage",
            file(
                "armored.asc",
                b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n",
            ),
            vec!["armored.asc"],
        ),
        (
            "truncated armored key",
            file("truncated.asc", &carol[..carol.len() / 2]),
            vec!["truncated.asc"],
        ),
        (
            "truncated binary key",
            file("truncated.gpg", &binary[..binary.len() - 40]),
            vec!["truncated.gpg"],
        ),
        ("empty file", file("empty.asc", b""), vec!["empty.asc", "empty"]),
        (
            "whitespace only",
            file("blank.asc", b"\n  \n\t\n"),
            vec!["blank.asc", "empty"],
        ),
        (
            "a secret key (armored)",
            data_str("carol.secret.asc"),
            vec!["carol.secret.asc", "secret key material"],
        ),
        (
            "a secret key (binary)",
            data_str("dave.secret.gpg"),
            vec!["dave.secret.gpg", "secret key material"],
        ),
        (
            "two certificates in one file",
            data_str("two-certs.asc"),
            vec!["two-certs.asc", "2 certificates"],
        ),
        (
            "no encryption subkey",
            data_str("sign-only.asc"),
            vec!["sign-only.asc", "encryption-capable subkey"],
        ),
        (
            "expired key",
            data_str("expired.asc"),
            vec!["expired.asc", "expired"],
        ),
        (
            "expired encryption subkey",
            data_str("expired-subkey.asc"),
            vec!["expired-subkey.asc", "encryption subkeys expired"],
        ),
        (
            "revoked key",
            data_str("revoked.asc"),
            vec!["revoked.asc", "revoked"],
        ),
        (
            "revoked encryption subkey",
            data_str("revoked-subkey.asc"),
            vec!["revoked-subkey.asc", "encryption-capable subkey"],
        ),
        (
            "RSA-1024",
            data_str("rsa1024.asc"),
            vec!["rsa1024.asc", "RSA1024"],
        ),
        (
            "SHA-1-only binding signatures",
            data_str("sha1-binding.asc"),
            vec!["sha1-binding.asc", "SHA1", "standard policy"],
        ),
        (
            "a missing key file",
            scratch.join("missing.asc").to_str().unwrap().to_string(),
            vec!["missing.asc", "No such file"],
        ),
        (
            "a folder instead of a key file",
            scratch.to_str().unwrap().to_string(),
            vec![scratch.to_str().unwrap()],
        ),
        (
            "the key of an existing member under a new name",
            data_str("bob.asc"),
            vec!["bob", &ctx.bob],
        ),
        (
            "a valid key with an issuer fingerprint of unknown version (unhashed)",
            file(
                "unknown-issuer-version.gpg",
                &with_unknown_issuer_fingerprint(&binary),
            ),
            vec!["unknown-issuer-version.gpg"],
        ),
    ];
    assert!(cases.len() >= 19);
    for (what, path, needles) in &cases {
        report.refused(what, root, || ctx.add_key(root, path), needles);
    }

    // A fingerprint asserted with --fingerprint that is not the key's.
    let wrong = ctx.alice.clone();
    report.refused(
        "a wrong --fingerprint",
        root,
        || {
            ctx.as_alice(
                root,
                &[
                    "add-member",
                    &data_str("carol.asc"),
                    "--name",
                    "carol",
                    "--fingerprint",
                    &wrong,
                ],
            )
        },
        &[&ctx.carol, &wrong],
    );
    // A new key under a name already taken.
    report.refused(
        "a member name already taken",
        root,
        || {
            ctx.as_alice(
                root,
                &[
                    "--yes",
                    "add-member",
                    &data_str("carol.asc"),
                    "--name",
                    "bob",
                ],
            )
        },
        &["bob"],
    );
    report.finish();
}

// ---------------------------------------------------------------------------------------------
// Names and folders typed on the command line
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_member_names_and_folders_are_refused_by_name() {
    let ctx = Ctx::new();
    let report = Report::default();
    let store = ctx.case("names");
    let root = &store.path;
    let carol = data_str("carol.asc");
    for name in ["a/b", "two words", "..", "../bob", ".hidden", "-rf", "é"] {
        report.refused(
            &format!("add-member --name {name:?}"),
            root,
            || {
                ctx.as_alice(
                    root,
                    &["--yes", "add-member", &carol, &format!("--name={name}")],
                )
            },
            &["member name", name],
        );
    }
    for name in ["../bob", "bob/..", "b ob"] {
        report.refused(
            &format!("remove-member {name:?}"),
            root,
            || ctx.as_alice(root, &["--yes", "remove-member", name]),
            &["member name", name],
        );
    }
    report.refused(
        "remove-member of nobody",
        root,
        || ctx.as_alice(root, &["--yes", "remove-member", "mallory"]),
        &["mallory"],
    );
    for folder in [
        "../outside",
        "/etc",
        "web/../..",
        "a//b",
        ".git",
        ".public-keys",
    ] {
        report.refused(
            &format!("add-member --folder {folder:?}"),
            root,
            || {
                ctx.as_alice(
                    root,
                    &[
                        "--yes",
                        "add-member",
                        &carol,
                        "--name",
                        "carol",
                        "--folder",
                        folder,
                    ],
                )
            },
            &["folder", folder],
        );
    }
    report.refused(
        "remove-member --folder ../x",
        root,
        || ctx.as_alice(root, &["--yes", "remove-member", "bob", "--folder", "../x"]),
        &["folder", "../x"],
    );
    report.finish();
}

// ---------------------------------------------------------------------------------------------
// Broken store contents, committed with plain git
// ---------------------------------------------------------------------------------------------

#[test]
fn broken_gpg_ids_keys_and_rosters_are_refused_by_name() {
    let ctx = Ctx::new();
    let report = Report::default();
    let twin = fingerprint_of(&data("alice-twin.asc"));
    let expired = fingerprint_of(&data("expired.asc"));

    // .gpg-id cases: (what, folder, text, needles).
    let unknown = "0123456789ABCDEF0123456789ABCDEF01234567";
    let gpg_ids: Vec<(&str, &str, Vec<u8>, Vec<String>)> = vec![
        (
            ".gpg-id naming an unknown key",
            "",
            format!("{}\n{}\n{unknown}\n", ctx.alice, ctx.bob).into_bytes(),
            vec![unknown.into(), ".gpg-id".into()],
        ),
        (
            ".gpg-id with an e-mail matching two keys",
            "",
            format!("alice@coop.example\n{}\n", ctx.bob).into_bytes(),
            vec![
                ".gpg-id line 1".into(),
                "alice@coop.example".into(),
                twin.clone(),
            ],
        ),
        (
            ".gpg-id with a malformed line",
            "",
            format!("{}\n{}\nthis is not a key!\n", ctx.alice, ctx.bob).into_bytes(),
            vec![".gpg-id line 3".into(), "this is not a key!".into()],
        ),
        (
            ".gpg-id with a short key id",
            "",
            format!("{}\n{}\n1234ABCD\n", ctx.alice, ctx.bob).into_bytes(),
            vec![".gpg-id line 3".into(), "short key id".into()],
        ),
        (
            ".gpg-id that is not text",
            "",
            b"\xff\xfe\x00binary\x80\n".to_vec(),
            vec![".gpg-id".into(), "UTF-8".into()],
        ),
        (
            "sub-folder .gpg-id with a malformed line",
            "web",
            format!("{}\n<not an email>\n", ctx.alice).into_bytes(),
            vec!["web/.gpg-id line 2".into()],
        ),
    ];
    for (i, (what, folder, text, needles)) in gpg_ids.iter().enumerate() {
        let store = ctx.case(&format!("gpgid-{i}"));
        // The twin's key in .public-keys/ so that the e-mail matches two keys there.
        fs::copy(
            data("alice-twin.asc"),
            store.file(&format!(".public-keys/{twin}")),
        )
        .unwrap();
        let rel = if folder.is_empty() {
            ".gpg-id".to_string()
        } else {
            format!("{folder}/.gpg-id")
        };
        fs::write(store.file(&rel), text).unwrap();
        commit(&store, what);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        report.refused(what, &store.path, || ctx.remove_bob(&store.path), &needles);
        report.refused(
            &format!("{what} (members)"),
            &store.path,
            || ctx.vault(&store.path, &["members"]),
            &needles,
        );
        fs::remove_dir_all(&store.path).unwrap();
    }

    // .members.toml cases.
    let (a, b) = (&ctx.alice, &ctx.bob);
    let rosters: Vec<(&str, String, Vec<String>)> = vec![
        (
            ".members.toml with a syntax error",
            format!("[members]\nalice = \"{a}\"\nbob = \"{b}\n"),
            vec![".members.toml".into()],
        ),
        (
            ".members.toml with a duplicate name",
            format!("[members]\nalice = \"{a}\"\nbob = \"{b}\"\nbob = \"{a}\"\n"),
            vec![".members.toml".into(), "bob".into()],
        ),
        (
            ".members.toml with a duplicate fingerprint",
            format!("[members]\nalice = \"{a}\"\nbob = \"{b}\"\nrobert = \"{b}\"\n"),
            vec![".members.toml".into(), b.to_string(), "two members".into()],
        ),
        (
            ".members.toml with a name containing /",
            format!("[members]\nalice = \"{a}\"\n\"b/ob\" = \"{b}\"\n"),
            vec![".members.toml".into(), "b/ob".into()],
        ),
        (
            ".members.toml with a name containing a space",
            format!("[members]\nalice = \"{a}\"\n\"b ob\" = \"{b}\"\n"),
            vec![".members.toml".into(), "b ob".into()],
        ),
        (
            ".members.toml with the name ..",
            format!("[members]\nalice = \"{a}\"\n\"..\" = \"{b}\"\n"),
            vec![".members.toml".into(), "\"..\"".into()],
        ),
        (
            ".members.toml with a bad fingerprint",
            format!("[members]\nalice = \"{a}\"\nbob = \"B0B\"\n"),
            vec![".members.toml".into(), "bob".into(), "B0B".into()],
        ),
        (
            ".members.toml with an unknown field",
            format!("[members]\nalice = \"{a}\"\nbob = \"{b}\"\n[admins]\nalice = true\n"),
            vec![".members.toml".into(), "admins".into()],
        ),
        (
            ".members.toml with a NUL character",
            "\u{0}".to_string(),
            vec![".members.toml".into()],
        ),
    ];
    for (i, (what, text, needles)) in rosters.iter().enumerate() {
        let store = ctx.case(&format!("roster-{i}"));
        fs::write(store.file(".members.toml"), text).unwrap();
        commit(&store, what);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        report.refused(
            what,
            &store.path,
            || ctx.vault(&store.path, &["members"]),
            &needles,
        );
        report.refused(
            &format!("{what} (remove-member)"),
            &store.path,
            || ctx.remove_bob(&store.path),
            &needles,
        );
        fs::remove_dir_all(&store.path).unwrap();
    }

    // .public-keys/ cases: (what, file name, content, needles).
    let keys: Vec<(&str, String, Vec<u8>, Vec<String>)> = vec![
        (
            ".public-keys/ file holding another key than its name",
            b.to_string(),
            fs::read(data("carol.asc")).unwrap(),
            vec![format!(".public-keys/{b}"), ctx.carol.clone()],
        ),
        (
            ".public-keys/ file whose name is not a fingerprint",
            "bob.asc".into(),
            fs::read(data("bob.asc")).unwrap(),
            vec![".public-keys/bob.asc".into()],
        ),
        (
            ".public-keys/ file with secret key material",
            b.to_string(),
            fs::read(data("dave.secret.gpg")).unwrap(),
            vec![format!(".public-keys/{b}"), "secret key material".into()],
        ),
        (
            ".public-keys/ file with garbage",
            b.to_string(),
            b"garbage\n".to_vec(),
            vec![format!(".public-keys/{b}")],
        ),
        (
            ".public-keys/ file that is empty",
            b.to_string(),
            Vec::new(),
            vec![format!(".public-keys/{b}"), "empty".into()],
        ),
    ];
    for (i, (what, name, content, needles)) in keys.iter().enumerate() {
        let store = ctx.case(&format!("keys-{i}"));
        fs::write(store.file(&format!(".public-keys/{name}")), content).unwrap();
        commit(&store, what);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        report.refused(what, &store.path, || ctx.remove_bob(&store.path), &needles);
        fs::remove_dir_all(&store.path).unwrap();
    }

    // A member whose key (committed by hand) has expired: no re-encryption can include them.
    let store = ctx.case("expired-member");
    fs::copy(
        data("expired.asc"),
        store.file(&format!(".public-keys/{expired}")),
    )
    .unwrap();
    fs::write(
        store.file(".gpg-id"),
        format!("{}\n{}\n{expired}\n", ctx.alice, ctx.bob),
    )
    .unwrap();
    fs::write(
        store.file(".members.toml"),
        format!(
            "[members]\nalice = \"{}\"\nbob = \"{}\"\nold = \"{expired}\"\n",
            ctx.alice, ctx.bob
        ),
    )
    .unwrap();
    commit(&store, "an expired member");
    report.refused(
        "a member whose key expired",
        &store.path,
        || ctx.remove_bob(&store.path),
        &[&expired],
    );
    report.finish();
}

// ---------------------------------------------------------------------------------------------
// Broken entries
// ---------------------------------------------------------------------------------------------

#[test]
fn broken_entries_are_refused_by_name() {
    let ctx = Ctx::new();
    let report = Report::default();
    let shop = fs::read(ctx.base.entry_file("web/shop")).unwrap();
    type Setup<'a> = Box<dyn Fn(&Store) + 'a>;
    let entries: Vec<(&str, &str, Setup)> = vec![
        (
            "a corrupt entry (random bytes)",
            "web/shop",
            Box::new(|s: &Store| {
                fs::write(
                    s.entry_file("web/shop"),
                    b"\x85\x01\x0cgarbage garbage garbage",
                )
                .unwrap()
            }),
        ),
        (
            "a truncated entry",
            "web/shop",
            Box::new(|s: &Store| {
                fs::write(s.entry_file("web/shop"), &shop[..shop.len() / 2]).unwrap()
            }),
        ),
        (
            "an entry with trailing bytes",
            "web/shop",
            Box::new(|s: &Store| {
                let mut longer = shop.clone();
                longer.extend_from_slice(b"trailing");
                fs::write(s.entry_file("web/shop"), longer).unwrap()
            }),
        ),
        (
            "an empty entry",
            "web/shop",
            Box::new(|s: &Store| fs::write(s.entry_file("web/shop"), b"").unwrap()),
        ),
        (
            "an entry that is a public key",
            "web/shop",
            Box::new(|s: &Store| {
                fs::copy(data("carol.asc"), s.entry_file("web/shop")).unwrap();
            }),
        ),
        (
            "an entry with a bit flipped in its encrypted data",
            "web/shop",
            Box::new(|s: &Store| {
                let mut flipped = shop.clone();
                let n = flipped.len();
                flipped[n - 10] ^= 0x40;
                fs::write(s.entry_file("web/shop"), flipped).unwrap()
            }),
        ),
        (
            "an entry encrypted to no member",
            "mail/carol-only",
            Box::new(|s: &Store| {
                ctx.encrypt(
                    b"carol's secret\n",
                    &s.entry_file("mail/carol-only"),
                    &[&ctx.carol],
                )
            }),
        ),
        (
            "an entry encrypted with a password only",
            "mail/symmetric",
            Box::new(|s: &Store| {
                let src = ctx.gpg.scratch().join("sym");
                fs::write(&src, b"symmetric secret\n").unwrap();
                let out = s.entry_file("mail/symmetric");
                ctx.gpg
                    .gpg([
                        "--pinentry-mode",
                        "loopback",
                        "--passphrase",
                        "pw",
                        "-o",
                        out.to_str().unwrap(),
                        "--symmetric",
                        src.to_str().unwrap(),
                    ])
                    .ok();
            }),
        ),
    ];
    for (i, (what, entry, setup)) in entries.iter().enumerate() {
        let store = ctx.case(&format!("entry-{i}"));
        setup(&store);
        commit(&store, what);
        report.refused(what, &store.path, || ctx.remove_bob(&store.path), &[entry]);
        fs::remove_dir_all(&store.path).unwrap();
    }

    // An entry path with a `..` component, made with git's plumbing (web/../evil.gpg).
    let store = ctx.case("dotdot");
    let blob = store.git_ok(&["rev-parse", "HEAD:web/shop.gpg"]);
    let mktree = |input: String| -> String {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(&store.path)
            .arg("mktree")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let inner = mktree(format!("100644 blob {blob}\tevil.gpg\n"));
    let web = mktree(format!(
        "040000 tree {inner}\t..\n100644 blob {blob}\tshop.gpg\n"
    ));
    let mut root_tree: String = store
        .git_ok(&["ls-tree", "HEAD"])
        .lines()
        .filter(|l| !l.ends_with("\tweb"))
        .map(|l| format!("{l}\n"))
        .collect();
    root_tree.push_str(&format!("040000 tree {web}\tweb\n"));
    let tree = mktree(root_tree);
    let commit_id = store.git_ok(&["commit-tree", &tree, "-p", "HEAD", "-m", "dotdot"]);
    store.git_ok(&["update-ref", "refs/heads/main", &commit_id]);
    report.refused(
        "an entry named web/../evil",
        &store.path,
        || ctx.remove_bob(&store.path),
        &["web/../evil"],
    );
    fs::remove_dir_all(&store.path).unwrap();

    // A symlinked entry pointing outside the store, at a file bob can read: pass follows it
    // (`pass show web/link`), so removing bob must not silently leave it readable.
    let store = ctx.case("symlink");
    let outside = ctx.lab.path("outside/secret.gpg");
    ctx.encrypt(b"outside secret\n", &outside, &[&ctx.alice, &ctx.bob]);
    std::os::unix::fs::symlink(&outside, store.entry_file("web/link")).unwrap();
    commit(&store, "a symlinked entry");
    let outside_before = fs::read(&outside).unwrap();
    report.refused(
        "a symlinked entry pointing outside the store",
        &store.path,
        || ctx.remove_bob(&store.path),
        &["web/link"],
    );
    assert_eq!(fs::read(&outside).unwrap(), outside_before);
    report.finish();
}

// ---------------------------------------------------------------------------------------------
// Repository states
// ---------------------------------------------------------------------------------------------

#[test]
fn broken_repositories_are_refused_by_name() {
    let ctx = Ctx::new();
    let report = Report::default();

    let missing = ctx.lab.path("no-such-store");
    report.refused(
        "a store path that does not exist",
        &missing,
        || ctx.vault(&missing, &["members"]),
        &["no password store", missing.to_str().unwrap()],
    );
    let file = ctx.lab.path("a-file");
    fs::write(&file, b"not a folder").unwrap();
    report.refused(
        "a store path that is a file",
        &file,
        || ctx.vault(&file, &["members"]),
        &[file.to_str().unwrap()],
    );

    // Not a git repository: the base store's files without .git.
    let store = ctx.case("not-git");
    fs::remove_dir_all(store.path.join(".git")).unwrap();
    report.refused(
        "a store that is not a git repository",
        &store.path,
        || ctx.remove_bob(&store.path),
        &["not a git repository", store.path_str()],
    );

    // Inside a repository but not at its top.
    let store = ctx.case("subfolder");
    let sub = store.path.join("web");
    report.refused(
        "a store inside a repository",
        &store.path,
        || ctx.vault(&sub, &["members"]),
        &["not at its top", sub.to_str().unwrap()],
    );

    let store = ctx.case("detached");
    store.git_ok(&["checkout", "-q", "--detach", "HEAD"]);
    report.refused(
        "a detached HEAD",
        &store.path,
        || ctx.remove_bob(&store.path),
        &["detached"],
    );

    let store = ctx.case("unborn");
    store.git_ok(&["symbolic-ref", "HEAD", "refs/heads/nothing-yet"]);
    report.refused(
        "an unborn branch",
        &store.path,
        || ctx.remove_bob(&store.path),
        &["no commits"],
    );

    let store = ctx.case("not-adopted");
    store.git_ok(&["rm", "-q", ".members.toml"]);
    store.git_ok(&["commit", "-q", "-m", "forget vault"]);
    report.refused(
        "a pass store vault has not adopted",
        &store.path,
        || ctx.remove_bob(&store.path),
        &[".members.toml"],
    );

    // A journal left by something else: unreadable, or naming commits that are not the branch's.
    let store = ctx.case("journal-garbage");
    fs::write(store.path.join(".git/vault-journal"), b"\x00garbage\n").unwrap();
    report.refused(
        "an unreadable journal",
        &store.path,
        || ctx.vault(&store.path, &["members"]),
        &["vault-journal"],
    );
    let store = ctx.case("journal-foreign");
    let zero = "1".repeat(40);
    fs::write(
        store.path.join(".git/vault-journal"),
        format!(
            "vault-journal 1\nref refs/heads/main\nold {zero}\nnew {zero}\naction remove-member\n"
        ),
    )
    .unwrap();
    report.refused(
        "a journal naming foreign commits",
        &store.path,
        || ctx.vault(&store.path, &["members"]),
        &["refs/heads/main", &zero],
    );

    // Operator key files that are not usable secret keys.
    let store = ctx.case("identities");
    let garbage = ctx.lab.path("identity-garbage.asc");
    fs::write(&garbage, b"garbage").unwrap();
    for (what, id, needle) in [
        (
            "an operator key that is garbage",
            garbage.to_str().unwrap().to_string(),
            "identity-garbage.asc",
        ),
        (
            "an operator key that is a public key",
            data_str("carol.asc"),
            "carol.asc",
        ),
        (
            "an operator key that is not a member's",
            data_str("carol.secret.asc"),
            ctx.carol.as_str(),
        ),
        (
            "a missing operator key",
            data_str("nobody.secret.asc"),
            "nobody.secret.asc",
        ),
    ] {
        report.refused(
            what,
            &store.path,
            || {
                ctx.vault(
                    &store.path,
                    &["--identity", &id, "--yes", "remove-member", "bob"],
                )
            },
            &[needle],
        );
    }

    // A read-only store: chattr +i as root (root ignores permission bits), chmod a-w otherwise.
    let store = ctx.case("read-only");
    let root_user = unsafe { libc::geteuid() } == 0;
    let lock = |on: bool| {
        let (prog, arg) = match (root_user, on) {
            (true, true) => ("chattr", "+i"),
            (true, false) => ("chattr", "-i"),
            (false, true) => ("chmod", "a-w"),
            (false, false) => ("chmod", "u+w"),
        };
        Command::new(prog)
            .args(["-R", arg])
            .arg(&store.path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if lock(true) && fs::write(store.path.join("probe"), b"x").is_err() {
        let before = everything_or_file(&store.path);
        let out = ctx.remove_bob(&store.path);
        let add = ctx.add_key(&store.path, &data_str("carol.asc"));
        lock(false);
        for (what, out) in [("remove-member", out), ("add-member", add)] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "read-only store, {what}: {}",
                show(&out)
            );
            assert!(
                err.contains(store.path_str())
                    && (err.contains("Operation not permitted")
                        || err.contains("Permission denied")),
                "read-only store, {what}: the error should name the path and the reason:\n{err}"
            );
        }
        assert!(
            before == everything_or_file(&store.path),
            "read-only store: changed"
        );
    } else {
        lock(false);
        eprintln!("skipped the read-only store: cannot make it unwritable here");
    }
    report.finish();
}

// ---------------------------------------------------------------------------------------------
// Inputs the fuzzers found (tests/data/fuzz-regressions/<target>/*)
// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions");
    let Ok(targets) = fs::read_dir(&dir) else {
        return;
    };
    for target in targets {
        let target = target.unwrap().path();
        let name = target.file_name().unwrap().to_str().unwrap().to_string();
        for input in fs::read_dir(&target).unwrap() {
            let input = input.unwrap().path();
            let bytes = fs::read(&input).unwrap();
            let run = std::panic::catch_unwind(|| match name.as_str() {
                "gpg_id" => {
                    let _ = vault::store::parse_gpg_id(".gpg-id", &bytes);
                }
                "members_toml" => {
                    let _ = vault::store::roster::Roster::parse(&bytes);
                }
                "key_file" => {
                    // As the fuzz target: parse, then what vault does with a parsed key.
                    if let Ok(key) = vault::crypto::MemberKey::parse(&bytes) {
                        let _ = key.armored();
                    }
                    let _ = vault::crypto::MemberKey::parse_many(&bytes);
                }
                "entry_header" => {
                    if let Ok(env) = vault::crypto::Envelope::parse(&bytes) {
                        let _ = env.readers();
                    }
                }
                other => panic!("unknown fuzz target folder {other}"),
            });
            assert!(run.is_ok(), "{} panics again", input.display());
        }
    }
}
