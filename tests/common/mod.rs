//! Helpers for the integration tests: private GnuPG homes, people with their own keys, a pass
//! store made by the real `pass`, and runners for `vault`, `pass`, `gpg` and `git` that never touch
//! the real user's configuration (every process gets a temporary `HOME` and `GNUPGHOME`).
//!
//! Each person in a test has their own GnuPG home holding only their own secret key and everyone's
//! public keys, so "can X read entry Y" is asked of X's own GnuPG (`pass show`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

/// Longest any one child process may run before the test fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Environment variables that could point a child process at the real user's files or change
/// what vault, pass or git do; removed from every child.
const SCRUBBED: &[&str] = &[
    "PASSWORD_STORE_DIR",
    "PASSWORD_STORE_KEY",
    "PASSWORD_STORE_GPG_OPTS",
    "PASSWORD_STORE_SIGNING_KEY",
    "PASSWORD_STORE_ENABLE_EXTENSIONS",
    "PASSWORD_STORE_UMASK",
    "VAULT_IDENTITY",
    "GNUPGHOME",
    "GPG_AGENT_INFO",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_CONFIG_GLOBAL",
    "XDG_CONFIG_HOME",
    "EDITOR",
    "VISUAL",
];

/// The result of one child process, with a description for failure messages.
pub struct Run {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: Vec<u8>,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Asserts the command succeeded; returns it for chaining.
    #[track_caller]
    pub fn ok(&self) -> &Run {
        assert!(self.success(), "expected success:\n{self}");
        self
    }

    /// Asserts the command failed (non-zero exit, not killed by a signal or the timeout).
    #[track_caller]
    pub fn fails(&self) -> &Run {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a non-zero exit:\n{self}"
        );
        self
    }

    /// Asserts stderr contains `needle` (case-sensitive).
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "expected stderr to contain {needle:?}:\n{self}"
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "expected stdout to contain {needle:?}:\n{self}"
        );
        self
    }

    /// Whether `vault verify` reported a violation: a line starting with `BAD ` (not the three
    /// letters anywhere: they occur in hex fingerprints).
    pub fn has_violation(&self) -> bool {
        self.stdout.lines().any(|l| l.starts_with("BAD "))
    }

    /// stdout and stderr together.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.what)?;
        writeln!(f, "exit: {:?}", self.code)?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        writeln!(f, "--- stderr\n{}", self.stderr)
    }
}

fn describe(cmd: &assert_cmd::Command, env: &[(&str, &Path)]) -> String {
    let mut s = String::new();
    for (k, v) in env {
        s.push_str(&format!("{k}={} ", v.display()));
    }
    s.push_str(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push_str(&format!(" {a}"));
        }
    }
    s
}

/// Runs `cmd` (whose stdin is a pipe, never a terminal) with `stdin` written to it.
fn run(mut cmd: assert_cmd::Command, env: &[(&str, &Path)], stdin: &[u8]) -> Run {
    for k in SCRUBBED {
        cmd.env_remove(k);
    }
    cmd.env("LC_ALL", "C")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.timeout(TIMEOUT);
    cmd.write_stdin(stdin.to_vec());
    let what = describe(&cmd, env);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    Run {
        what,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout_bytes: out.stdout,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn temp_dir(prefix: &str) -> TempDir {
    // Short paths under /tmp: gpg-agent's socket path must stay short.
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("creating a temporary directory")
}

// ---------------------------------------------------------------------------------------------
// GnuPG
// ---------------------------------------------------------------------------------------------

/// The kinds of key a test can generate with GnuPG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ed25519 primary (sign) + one cv25519 encryption subkey.
    Ed25519,
    /// rsa3072 primary (sign) + one rsa3072 encryption subkey.
    Rsa3072,
    /// ed25519 primary + TWO cv25519 encryption subkeys.
    TwoEncryptionSubkeys,
    /// ed25519 primary and no encryption subkey at all.
    SignOnly,
    /// ed25519 + cv25519, made with a faked clock in 2020 and expired in 2021.
    Expired,
    /// ed25519 + cv25519, revoked with the revocation certificate GnuPG made for it.
    Revoked,
}

/// A private GnuPG home in a temp dir (mode 0700). Dropping it stops its gpg-agent.
pub struct Gpg {
    dir: TempDir,
    home: PathBuf,
}

impl Gpg {
    pub fn new() -> Gpg {
        let dir = temp_dir("vt-gpg.");
        let home = dir.path().join("g");
        fs::create_dir(&home).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(home.join("gpg.conf"), "trust-model always\n").unwrap();
        fs::write(home.join("gpg-agent.conf"), "allow-loopback-pinentry\n").unwrap();
        Gpg { dir, home }
    }

    /// The GNUPGHOME.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// A scratch folder next to the GnuPG home (for exported key files).
    pub fn scratch(&self) -> PathBuf {
        let p = self.dir.path().join("files");
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// Runs `gpg --batch ARGS` with this home.
    pub fn gpg<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = assert_cmd::Command::new("gpg");
        cmd.arg("--batch").args(args);
        run(
            cmd,
            &[("GNUPGHOME", &self.home), ("HOME", self.dir.path())],
            b"",
        )
    }

    /// Encrypts `plain` into `file` (folders made) to the fingerprints `to`, as pass does
    /// (`--compress-algo none`), with `extra` options (e.g. `--throw-keyids`).
    pub fn encrypt_to(&self, plain: &[u8], file: &Path, to: &[&str], extra: &[&str]) {
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        let src = self.scratch().join("plain");
        fs::write(&src, plain).unwrap();
        let mut args = vec![
            "--yes",
            "--compress-algo",
            "none",
            "-o",
            file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        for r in to {
            args.extend(["-r", r]);
        }
        args.extend(["--encrypt", src.to_str().unwrap()]);
        self.gpg(&args).ok();
        fs::remove_file(&src).unwrap();
    }

    /// Generates a key (no passphrase) and returns its fingerprint.
    pub fn generate(&self, name: &str, email: &str, kind: KeyKind) -> String {
        let uid = format!("{name} <{email}>");
        let lb = ["--pinentry-mode", "loopback", "--passphrase", ""];
        let mut fake: Vec<&str> = vec![];
        if kind == KeyKind::Expired {
            fake = vec!["--faked-system-time", "20200101T000000!"];
        }
        let (primary, primary_expiry) = match kind {
            KeyKind::Rsa3072 => ("rsa3072", "never"),
            KeyKind::Expired => ("ed25519", "1y"),
            _ => ("ed25519", "never"),
        };
        let mut args: Vec<&str> = fake.clone();
        args.extend(lb);
        args.extend(["--quick-gen-key", &uid, primary, "sign", primary_expiry]);
        self.gpg(&args).ok();
        let fpr = self.fingerprint(email);
        let subkeys: &[(&str, &str)] = match kind {
            KeyKind::Rsa3072 => &[("rsa3072", "never")],
            KeyKind::TwoEncryptionSubkeys => &[("cv25519", "never"), ("cv25519", "never")],
            KeyKind::SignOnly => &[],
            KeyKind::Expired => &[("cv25519", "1y")],
            KeyKind::Ed25519 | KeyKind::Revoked => &[("cv25519", "never")],
        };
        for (algo, expiry) in subkeys {
            let mut args: Vec<&str> = fake.clone();
            args.extend(lb);
            args.extend(["--quick-add-key", &fpr, algo, "encr", expiry]);
            self.gpg(&args).ok();
        }
        if kind == KeyKind::Revoked {
            // GnuPG stores a revocation certificate for every key it makes, with its armor
            // header "escaped" by a leading ':'; importing it revokes the key.
            let rev = self
                .home
                .join("openpgp-revocs.d")
                .join(format!("{fpr}.rev"));
            let text = fs::read_to_string(&rev).unwrap();
            let text = text.replace(":-----BEGIN PGP", "-----BEGIN PGP");
            let file = self.scratch().join("revocation.asc");
            fs::write(&file, text).unwrap();
            self.gpg(["--import", s(&file)]).ok();
        }
        fpr
    }

    /// The primary fingerprint of the one key `query` names in this keyring.
    #[track_caller]
    pub fn fingerprint(&self, query: &str) -> String {
        let out = self.gpg(["--with-colons", "--list-keys", query]);
        out.ok();
        let fprs = primary_fingerprints(&out.stdout);
        assert_eq!(fprs.len(), 1, "expected one key for {query}:\n{out}");
        fprs[0].clone()
    }

    /// Key ids (16 upper-case hex) of the encryption-capable subkeys of `fpr`, as pass sees them.
    pub fn encryption_subkeys(&self, fpr: &str) -> Vec<String> {
        let out = self.gpg(["--with-colons", "--list-keys", fpr]);
        out.ok();
        let mut ids: Vec<String> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("sub:"))
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                let validity = f.get(1).copied().unwrap_or("");
                let caps = f.get(11).copied().unwrap_or("");
                (caps.contains('e') && !validity.contains(['i', 'd', 'r', 'e']))
                    .then(|| f[4].to_string())
            })
            .collect();
        ids.sort();
        ids
    }

    /// Writes the armored public key of `fpr` to `file`.
    pub fn export_public(&self, fpr: &str, file: &Path) {
        let out = self.gpg(["--armor", "--export", fpr]);
        out.ok();
        assert!(out.stdout.contains("BEGIN PGP PUBLIC KEY BLOCK"), "{out}");
        fs::write(file, &out.stdout_bytes).unwrap();
    }

    /// Writes the armored secret key of `fpr` to `file`.
    pub fn export_secret(&self, fpr: &str, file: &Path) {
        let out = self.gpg([
            "--armor",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--export-secret-keys",
            fpr,
        ]);
        out.ok();
        assert!(out.stdout.contains("BEGIN PGP PRIVATE KEY BLOCK"), "{out}");
        fs::write(file, &out.stdout_bytes).unwrap();
    }

    /// Imports a key file (public or secret).
    #[track_caller]
    pub fn import(&self, file: &Path) {
        self.gpg([
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--import",
            s(file),
        ])
        .ok();
    }

    /// Key ids (16 upper-case hex) that the PKESK packets of an encrypted file name, sorted.
    pub fn pkesk_key_ids(&self, file: &Path) -> Vec<String> {
        // `--list-only` stops before decrypting; `-v` makes gpg say "public key is KEYID" for
        // every PKESK, which is exactly what pass compares in `pass init`.
        let out = self.gpg([
            "-v",
            "--list-only",
            "--keyid-format",
            "long",
            "--decrypt",
            s(file),
        ]);
        let mut ids: Vec<String> = out
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix("gpg: public key is "))
            .map(|id| id.trim().to_string())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// `gpg --list-packets FILE` (stdout + stderr).
    pub fn list_packets(&self, file: &Path) -> String {
        self.gpg(["--list-packets", s(file)]).all_output()
    }

    /// Decrypts a file with this home's secret key, printing the session key.
    pub fn decrypt_verbose(&self, file: &Path) -> Run {
        self.gpg([
            "-v",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--show-session-key",
            "--decrypt",
            s(file),
        ])
    }

    /// The session key of an encrypted file (decrypted with this home's secret key).
    #[track_caller]
    pub fn session_key(&self, file: &Path) -> String {
        let out = self.decrypt_verbose(file);
        out.ok();
        out.stderr
            .lines()
            .find_map(|l| l.strip_prefix("gpg: session key: "))
            .unwrap_or_else(|| panic!("no session key in:\n{out}"))
            .trim()
            .to_string()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", &self.home)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Primary-key fingerprints in `gpg --with-colons` output (the `fpr:` line after each `pub:`/`sec:`).
pub fn primary_fingerprints(colons: &str) -> Vec<String> {
    let mut out = vec![];
    let mut want = false;
    for line in colons.lines() {
        if line.starts_with("pub:") || line.starts_with("sec:") {
            want = true;
        } else if line.starts_with("fpr:") && want {
            out.push(line.split(':').nth(9).unwrap_or("").to_string());
            want = false;
        } else if line.starts_with("sub:") || line.starts_with("ssb:") {
            want = false;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// People
// ---------------------------------------------------------------------------------------------

/// A team member: their own GnuPG home with their own secret key, and exported key files.
pub struct Person {
    pub name: String,
    pub email: String,
    pub fpr: String,
    /// `<name>.asc`: the armored public key (its file stem is the name).
    pub public: PathBuf,
    /// `<name>.secret.asc`: the armored secret key, if we have it.
    pub secret: PathBuf,
    pub gpg: Gpg,
}

impl Person {
    /// A person whose key GnuPG generates now.
    pub fn generate(name: &str, kind: KeyKind) -> Person {
        let gpg = Gpg::new();
        let email = format!("{name}@coop.example");
        let display = capitalise(name);
        let fpr = gpg.generate(&display, &email, kind);
        let public = gpg.scratch().join(format!("{name}.asc"));
        let secret = gpg.scratch().join(format!("{name}.secret.asc"));
        gpg.export_public(&fpr, &public);
        gpg.export_secret(&fpr, &secret);
        Person {
            name: name.into(),
            email,
            fpr,
            public,
            secret,
            gpg,
        }
    }

    /// A person whose key files exist already (e.g. the sequoia-generated demo keys).
    #[track_caller]
    pub fn from_files(name: &str, public: &Path, secret: Option<&Path>) -> Person {
        let gpg = Gpg::new();
        assert!(public.is_file(), "missing key file {}", public.display());
        let listing = gpg.gpg([
            "--with-colons",
            "--import-options",
            "show-only",
            "--import",
            s(public),
        ]);
        listing.ok();
        let fprs = primary_fingerprints(&listing.stdout);
        assert_eq!(fprs.len(), 1, "expected one key in {}", public.display());
        let fpr = fprs[0].clone();
        let email = listing
            .stdout
            .lines()
            .find(|l| l.starts_with("uid:"))
            .and_then(|l| l.split(':').nth(9))
            .and_then(|u| u.split('<').nth(1))
            .map(|u| u.trim_end_matches('>').to_string())
            .unwrap_or_default();
        gpg.import(public);
        let own_public = gpg.scratch().join(format!("{name}.asc"));
        fs::copy(public, &own_public).unwrap();
        let own_secret = gpg.scratch().join(format!("{name}.secret.asc"));
        if let Some(sec) = secret {
            assert!(sec.is_file(), "missing key file {}", sec.display());
            gpg.import(sec);
            fs::copy(sec, &own_secret).unwrap();
        }
        Person {
            name: name.into(),
            email,
            fpr,
            public: own_public,
            secret: own_secret,
            gpg,
        }
    }

    /// A person whose key sequoia generates now with its defaults (v4, Cv25519), which advertise
    /// SEIPDv2 as well as SEIPDv1: what a sequoia-based tool hands out. GnuPG 2.2 cannot read
    /// SEIPDv2, so whatever vault writes to such keys must still be SEIPDv1.
    pub fn sequoia_default(name: &str) -> Person {
        use openpgp::cert::prelude::*;
        use openpgp::serialize::SerializeInto;
        use sequoia_openpgp as openpgp;

        let uid = format!("{} <{name}@coop.example>", capitalise(name));
        let (cert, _revocation) = CertBuilder::general_purpose(Some(uid.as_str()))
            .set_profile(openpgp::Profile::RFC4880)
            .expect("RFC 4880 profile")
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_validity_period(None)
            .generate()
            .expect("sequoia generates a key");
        let policy = openpgp::policy::StandardPolicy::new();
        let features = cert
            .with_policy(&policy, None)
            .unwrap()
            .features()
            .expect("sequoia's default key advertises features");
        assert!(
            features.supports_seipdv2(),
            "the fixture needs a key that advertises SEIPDv2; sequoia's defaults changed: {features:?}"
        );
        let dir = temp_dir("vt-sq.");
        let public = dir.path().join(format!("{name}.asc"));
        let secret = dir.path().join(format!("{name}.secret.asc"));
        fs::write(&public, cert.armored().to_vec().unwrap()).unwrap();
        fs::write(&secret, cert.as_tsk().armored().to_vec().unwrap()).unwrap();
        Person::from_files(name, &public, Some(&secret))
    }

    /// `add-member KEYFILE --fingerprint FPR` for this person (the fingerprint asserted).
    pub fn add_member_args(&self) -> [&str; 4] {
        ["add-member", self.public_str(), "--fingerprint", &self.fpr]
    }

    /// `OPTIONS… add-member KEYFILE --fingerprint FPR` for this person.
    pub fn add_member_with<'a>(&'a self, options: &[&'a str]) -> Vec<&'a str> {
        [options, &self.add_member_args()[..]].concat()
    }

    pub fn public_str(&self) -> &str {
        s(&self.public)
    }

    pub fn secret_str(&self) -> &str {
        s(&self.secret)
    }

    /// Key ids of this person's encryption subkeys, as their GnuPG lists them.
    pub fn encryption_subkeys(&self) -> Vec<String> {
        self.gpg.encryption_subkeys(&self.fpr)
    }
}

fn capitalise(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Imports every person's public key into every other person's GnuPG home.
pub fn introduce(people: &[&Person]) {
    for p in people {
        for q in people {
            if p.fpr != q.fpr {
                p.gpg.import(&q.public);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The lab: HOME, the store, and runners for pass, git and vault
// ---------------------------------------------------------------------------------------------

/// A temp dir with a HOME (with a .gitconfig) and room for a store.
pub struct Lab {
    dir: TempDir,
    home: PathBuf,
}

impl Lab {
    pub fn new() -> Lab {
        let dir = temp_dir("vt-lab.");
        let home = dir.path().join("home");
        fs::create_dir(&home).unwrap();
        fs::write(
            home.join(".gitconfig"),
            "[user]\n\tname = Vault Test\n\temail = vault-test@coop.example\n\
             [init]\n\tdefaultBranch = main\n\
             [commit]\n\tgpgsign = false\n\
             [advice]\n\tdetachedHead = false\n",
        )
        .unwrap();
        Lab { dir, home }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// A path inside the lab (not created).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A store at `lab/<rel>` (the folder is not created).
    pub fn store(&self, rel: &str) -> Store {
        Store {
            path: self.path(rel),
            home: self.home.clone(),
        }
    }

    /// A copy of the whole store `from` (work tree and .git), as `cp -a` makes it, at `lab/<rel>`.
    pub fn copy_store(&self, from: &Store, rel: &str) -> Store {
        let store = self.store(rel);
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(&from.path)
            .arg(&store.path)
            .status()
            .unwrap();
        assert!(st.success(), "cp -a failed");
        store
    }

    /// `vault --store STORE ARGS` as a command to spawn, with a cleared environment: only PATH,
    /// the lab's HOME, `gnupg` as GNUPGHOME, LC_ALL=C and GIT_CONFIG_NOSYSTEM; stdin is empty.
    /// For tests that spawn, signal or limit the process themselves.
    pub fn clean_vault(&self, gnupg: &Path, store: &Path, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vault"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("GNUPGHOME", gnupg)
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .arg("--store")
            .arg(store)
            .args(args)
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// Runs `pass ARGS` on `store` as `who` (their GNUPGHOME), with `stdin`.
    pub fn pass(&self, store: &Store, who: &Person, args: &[&str], stdin: &str) -> Run {
        let mut cmd = assert_cmd::Command::new("pass");
        cmd.args(args);
        run(
            cmd,
            &[
                ("PASSWORD_STORE_DIR", &store.path),
                ("GNUPGHOME", who.gpg.home()),
                ("HOME", &self.home),
            ],
            stdin.as_bytes(),
        )
    }

    /// Runs `vault --store STORE ARGS` with `gpg_home` as GNUPGHOME (no --identity added).
    pub fn vault_with(&self, store: &Store, gpg_home: &Path, args: &[&str]) -> Run {
        let mut cmd = assert_cmd::Command::cargo_bin("vault").expect("the vault binary is built");
        cmd.arg("--store").arg(&store.path).args(args);
        run(cmd, &[("GNUPGHOME", gpg_home), ("HOME", &self.home)], b"")
    }

    /// Runs `vault --store STORE ARGS` with `gpg_home` as GNUPGHOME, `stdin` as its standard
    /// input, and extra environment `env` (e.g. EDITOR).
    pub fn vault_input(
        &self,
        store: &Store,
        gpg_home: &Path,
        (args, env): (&[&str], &[(&str, &Path)]),
        stdin: &str,
    ) -> Run {
        let mut cmd = assert_cmd::Command::cargo_bin("vault").expect("the vault binary is built");
        cmd.arg("--store").arg(&store.path).args(args);
        let mut all: Vec<(&str, &Path)> = vec![("GNUPGHOME", gpg_home), ("HOME", &self.home)];
        all.extend_from_slice(env);
        run(cmd, &all, stdin.as_bytes())
    }

    /// Runs `vault ARGS` (no --store) with `gpg_home` as GNUPGHOME and extra environment `env`
    /// (e.g. PASSWORD_STORE_DIR, VAULT_IDENTITY).
    pub fn vault_env(&self, gpg_home: &Path, env: &[(&str, &Path)], args: &[&str]) -> Run {
        let mut cmd = assert_cmd::Command::cargo_bin("vault").expect("the vault binary is built");
        cmd.args(args);
        let mut all: Vec<(&str, &Path)> = vec![("GNUPGHOME", gpg_home), ("HOME", &self.home)];
        all.extend_from_slice(env);
        run(cmd, &all, b"")
    }

    /// Runs `vault --store STORE ARGS` as `operator` (their GNUPGHOME; no --identity added).
    pub fn vault(&self, store: &Store, operator: &Person, args: &[&str]) -> Run {
        self.vault_with(store, operator.gpg.home(), args)
    }

    /// Runs `vault --store STORE --identity OPERATOR.secret ARGS` as `operator`.
    pub fn vault_as(&self, store: &Store, operator: &Person, args: &[&str]) -> Run {
        let mut all = vec!["--identity", operator.secret_str()];
        all.extend_from_slice(args);
        self.vault(store, operator, &all)
    }

    /// `pass show ENTRY` as `who`: their plaintext, or None when their GnuPG cannot decrypt it.
    pub fn read_as(&self, store: &Store, who: &Person, entry: &str) -> Option<Vec<u8>> {
        let out = self.pass(store, who, &["show", entry], "");
        out.success().then_some(out.stdout_bytes)
    }

    /// Asserts that `who` reads each entry with `pass show` and gets exactly its plaintext.
    #[track_caller]
    pub fn assert_reads(&self, store: &Store, who: &Person, entries: &[(&str, &str)]) {
        for (entry, plaintext) in entries {
            let out = self.pass(store, who, &["show", entry], "");
            assert!(
                out.success(),
                "{} should be able to read {entry}:\n{out}",
                who.name
            );
            assert_eq!(
                out.stdout, *plaintext,
                "{} read {entry} but got a different plaintext",
                who.name
            );
        }
    }

    /// Asserts that `who`'s GnuPG cannot decrypt any of the entries.
    #[track_caller]
    pub fn assert_cannot_read(&self, store: &Store, who: &Person, entries: &[(&str, &str)]) {
        for (entry, plaintext) in entries {
            let out = self.pass(store, who, &["show", entry], "");
            assert!(
                !out.success(),
                "{} should NOT be able to read {entry}:\n{out}",
                who.name
            );
            assert!(
                !out.stdout.contains(plaintext.lines().next().unwrap_or("")),
                "{} got the plaintext of {entry}:\n{out}",
                who.name
            );
        }
    }

    /// Runs `pass init [-p FOLDER] IDS` as `who`, with the ids read from that folder's .gpg-id
    /// (in the same order, so pass rewrites it byte-identically), and asserts that pass
    /// re-encrypted nothing: no "reencrypting" line, every entry byte-identical, no new commit,
    /// clean work tree.
    #[track_caller]
    pub fn assert_pass_init_reencrypts_nothing(&self, store: &Store, who: &Person, folder: &str) {
        let ids = store.gpg_ids(folder);
        assert!(!ids.is_empty(), "{folder}/.gpg-id lists nobody");
        let before = store.snapshot();
        let mut args = vec!["init"];
        if !folder.is_empty() {
            args.extend(["-p", folder]);
        }
        args.extend(ids.iter().map(String::as_str));
        let out = self.pass(store, who, &args, "");
        out.ok();
        assert!(
            !out.all_output().contains("reencrypting"),
            "pass init re-encrypted entries that vault wrote:\n{out}"
        );
        let after = store.snapshot();
        assert_same(&before, &after, "after `pass init` with the same ids");
    }
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

pub struct Store {
    pub path: PathBuf,
    home: PathBuf,
}

/// Every file and folder of a store's work tree (bytes), its HEAD and `git status`.
#[derive(PartialEq, Eq)]
pub struct Snapshot {
    pub files: BTreeMap<String, Option<Vec<u8>>>,
    pub head: String,
    pub status: String,
}

/// Asserts two snapshots are equal, naming what differs.
#[track_caller]
pub fn assert_same(before: &Snapshot, after: &Snapshot, when: &str) {
    if before == after {
        return;
    }
    let mut diffs = vec![];
    for (k, v) in &before.files {
        match after.files.get(k) {
            None => diffs.push(format!("removed: {k}")),
            Some(w) if w != v => diffs.push(format!("changed: {k}")),
            _ => {}
        }
    }
    for k in after.files.keys() {
        if !before.files.contains_key(k) {
            diffs.push(format!("added: {k}"));
        }
    }
    if before.head != after.head {
        diffs.push(format!("HEAD moved: {} -> {}", before.head, after.head));
    }
    if before.status != after.status {
        diffs.push(format!(
            "git status changed:\n{}\n->\n{}",
            before.status, after.status
        ));
    }
    panic!("the store changed {when}:\n  {}", diffs.join("\n  "));
}

impl Store {
    /// The HOME every command on this store runs with (the lab's).
    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn path_str(&self) -> &str {
        s(&self.path)
    }

    /// Runs `git -C STORE ARGS`.
    pub fn git(&self, args: &[&str]) -> Run {
        let mut cmd = assert_cmd::Command::new("git");
        cmd.arg("-C").arg(&self.path).args(args);
        run(cmd, &[("HOME", &self.home)], b"")
    }

    /// Runs git and returns its trimmed stdout, asserting success.
    #[track_caller]
    pub fn git_ok(&self, args: &[&str]) -> String {
        let out = self.git(args);
        out.ok();
        out.stdout.trim_end().to_string()
    }

    pub fn head(&self) -> String {
        self.git_ok(&["rev-parse", "HEAD"])
    }

    pub fn commit_count(&self) -> usize {
        self.git_ok(&["rev-list", "--count", "HEAD"])
            .parse()
            .unwrap()
    }

    pub fn status(&self) -> String {
        self.git_ok(&["status", "--porcelain", "--untracked-files=all"])
    }

    #[track_caller]
    pub fn assert_clean(&self) {
        let st = self.status();
        assert!(st.is_empty(), "the work tree is not clean:\n{st}");
    }

    /// Subject of the last commit.
    pub fn last_subject(&self) -> String {
        self.git_ok(&["log", "-1", "--format=%s"])
    }

    /// Full message of the last commit.
    pub fn last_message(&self) -> String {
        self.git_ok(&["log", "-1", "--format=%B"])
    }

    /// Paths changed by the last commit.
    pub fn last_changed_paths(&self) -> Vec<String> {
        self.git_ok(&["show", "--name-only", "--format=", "HEAD"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// `ENTRY.gpg`.
    pub fn entry_file(&self, entry: &str) -> PathBuf {
        self.path.join(format!("{entry}.gpg"))
    }

    pub fn entry_bytes(&self, entry: &str) -> Vec<u8> {
        fs::read(self.entry_file(entry)).unwrap()
    }

    /// Asserts a file or folder in the store is private to its owner (no group/other bits).
    #[track_caller]
    pub fn assert_private(&self, rel: &str) {
        let mode = fs::metadata(self.file(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{rel} has mode {:o}; new store files must be 0600, folders 0700",
            mode & 0o7777
        );
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.file(rel))
            .unwrap_or_else(|e| panic!("reading {rel} in the store: {e}"))
    }

    /// The recipients listed in FOLDER/.gpg-id ("" = root), comments and blanks skipped.
    pub fn gpg_ids(&self, folder: &str) -> Vec<String> {
        let rel = if folder.is_empty() {
            ".gpg-id".to_string()
        } else {
            format!("{folder}/.gpg-id")
        };
        self.read(&rel)
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The parsed `.members.toml`.
    pub fn members_toml(&self) -> toml::Table {
        self.read(".members.toml")
            .parse::<toml::Table>()
            .expect(".members.toml is valid TOML")
    }

    /// Every file and folder of the work tree (not .git), HEAD and git status.
    pub fn snapshot(&self) -> Snapshot {
        let mut files = BTreeMap::new();
        walk(&self.path, &self.path, &mut files);
        Snapshot {
            files,
            head: self.git_ok(&["rev-parse", "--verify", "-q", "HEAD"]),
            status: self.status(),
        }
    }

    /// Every entry name (`*.gpg` outside .git, without the extension), sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut files = BTreeMap::new();
        walk(&self.path, &self.path, &mut files);
        files
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .filter_map(|(k, _)| k.strip_suffix(".gpg").map(str::to_string))
            .collect()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd {
        let e = e.unwrap();
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel == ".git" {
            continue;
        }
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.insert(format!("{rel}/"), None);
            walk(root, &path, out);
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).unwrap();
            out.insert(
                rel,
                Some(format!("symlink -> {}", target.display()).into_bytes()),
            );
        } else {
            out.insert(rel, Some(fs::read(&path).unwrap()));
        }
    }
}

/// A finished process's status, stdout and stderr, for assertion messages.
pub fn show(out: &std::process::Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file and folder under `root`, `.git` included: path -> (mode, bytes or link target).
/// Panics on anything it cannot read. `.git/vault.lock` is left out: it is the store's lock
/// (made by the first writing command, holding the last holder's process id), not store content.
pub fn everything(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == ".git/vault.lock" {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                out.insert(format!("{rel}/"), (mode, Vec::new()));
                walk(root, &path, out);
            } else if meta.file_type().is_symlink() {
                let t = fs::read_link(&path).unwrap();
                out.insert(rel, (mode, t.as_os_str().as_encoded_bytes().to_vec()));
            } else {
                out.insert(rel, (mode, fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// The standard fixture: a store made by pass, adopted by vault
// ---------------------------------------------------------------------------------------------

/// Entries governed by the root `.gpg-id` (multi-line plaintexts, in pass's convention).
pub const ROOT_ENTRIES: &[(&str, &str)] = &[
    (
        "bank",
        "correct horse battery staple\nIBAN: DE00 1234 5678 9000\n",
    ),
    (
        "email/work",
        "hunter2\nuser: alice@coop.example\nurl: https://mail.coop.example/\n",
    ),
    (
        "web/shop",
        "Sh0p-P4ss!\nlogin: coop\n\nnotes after a blank line\n",
    ),
];

/// Entries under `ops/`, which has its own `.gpg-id` (alice only).
pub const OPS_ENTRIES: &[(&str, &str)] = &[
    ("ops/db", "pg-s3cret\nhost: db.internal\nport: 5432\n"),
    ("ops/servers/root", "r00t-pw\n"),
];

/// Adds `who` to the root `.gpg-id` and `.public-keys/` by hand (not committed), as anyone with
/// push access could.
pub fn add_by_hand(store: &Store, who: &Person) {
    fs::copy(
        &who.public,
        store.file(&format!(".public-keys/{}", who.fpr)),
    )
    .unwrap();
    let gpg_id = store.file(".gpg-id");
    let mut ids = fs::read_to_string(&gpg_id).unwrap();
    ids.push_str(&format!("{}\n", who.fpr));
    fs::write(&gpg_id, ids).unwrap();
}

/// Commits everything in the work tree with plain git, as anyone with push access could.
#[track_caller]
pub fn git_commit_all(store: &Store, msg: &str) {
    store.git_ok(&["add", "-A"]);
    store.git_ok(&["commit", "-q", "-m", msg]);
    store.assert_clean();
}

/// `pass insert -m` each entry as `who`.
#[track_caller]
pub fn insert_entries(lab: &Lab, store: &Store, who: &Person, entries: &[(&str, &str)]) {
    for (name, plaintext) in entries {
        lab.pass(store, who, &["insert", "-m", name], plaintext)
            .ok();
    }
}

/// A store made by the real pass as `owner`: `pass init RECIPIENTS`, `pass git init`, the root
/// entries, then `pass init -p ops OPS_RECIPIENTS` and the ops entries. Not adopted by vault.
pub fn pass_store(lab: &Lab, owner: &Person, root: &[&Person], ops: &[&Person]) -> Store {
    let store = lab.store("store");
    let mut args = vec!["init"];
    args.extend(root.iter().map(|p| p.fpr.as_str()));
    lab.pass(&store, owner, &args, "").ok();
    lab.pass(&store, owner, &["git", "init"], "").ok();
    insert_entries(lab, &store, owner, ROOT_ENTRIES);
    let mut args = vec!["init", "-p", "ops"];
    args.extend(ops.iter().map(|p| p.fpr.as_str()));
    lab.pass(&store, owner, &args, "").ok();
    insert_entries(lab, &store, owner, OPS_ENTRIES);
    store.assert_clean();
    store
}

/// alice, bob and carol (GnuPG ed25519/cv25519 keys, each in their own home, all introduced),
/// and a pass store made by alice for alice + bob (ops/: alice only), adopted with `vault init`.
pub struct Team {
    pub alice: Person,
    pub bob: Person,
    pub carol: Person,
    pub store: Store,
    pub lab: Lab,
}

pub fn adopted_team() -> Team {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    let carol = Person::generate("carol", KeyKind::Ed25519);
    introduce(&[&alice, &bob, &carol]);
    let store = pass_store(&lab, &alice, &[&alice, &bob], &[&alice]);
    lab.vault(&store, &alice, &["init"]).ok();
    store.assert_clean();
    Team {
        alice,
        bob,
        carol,
        store,
        lab,
    }
}

/// The demo keys in the repository's `keys/` folder.
pub fn demo_key(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("keys")
        .join(file)
}

/// Asserts an entry file is in the format pass and GnuPG 2.2 expect (STORE-FORMAT.md): SEIPD v1
/// with MDC, AES-256, no compression, nothing GnuPG calls an unknown packet version. `reader`
/// must hold a secret key the entry is encrypted to.
#[track_caller]
pub fn assert_gnupg_format(store: &Store, reader: &Person, entry: &str) {
    let file = store.entry_file(entry);
    let packets = reader.gpg.list_packets(&file);
    assert!(
        packets.contains(":encrypted data packet:") && packets.contains("mdc_method: 2"),
        "{entry}: expected a SEIPD v1 packet with MDC:\n{packets}"
    );
    assert!(
        !packets.contains(":compressed packet:"),
        "{entry}: pass writes uncompressed entries:\n{packets}"
    );
    assert!(
        !packets.contains("unknown version") && !packets.contains(":aead encrypted packet:"),
        "{entry}: GnuPG 2.2 cannot read this:\n{packets}"
    );
    let key = reader.gpg.session_key(&file);
    assert!(
        key.trim_matches('\'').starts_with("9:"),
        "{entry}: expected AES-256 (algorithm 9), session key {key}"
    );
}

/// The sorted union of the encryption subkey ids of `people`, as `reader`'s GnuPG lists them.
pub fn subkeys_of(reader: &Person, people: &[&Person]) -> Vec<String> {
    let mut ids: Vec<String> = people
        .iter()
        .flat_map(|p| reader.gpg.encryption_subkeys(&p.fpr))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Asserts that every entry in `entries` has PKESKs for exactly `expected` (sorted key ids).
#[track_caller]
pub fn assert_pkesks(
    store: &Store,
    inspector: &Person,
    entries: &[(&str, &str)],
    expected: &[String],
) {
    for (entry, _) in entries {
        let got = inspector.gpg.pkesk_key_ids(&store.entry_file(entry));
        assert_eq!(
            got, expected,
            "{entry}: PKESK recipients differ from the encryption subkeys of its .gpg-id"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A shared remote
// ---------------------------------------------------------------------------------------------

/// A bare repository at `lab/remote.git` made from `store`, which gets it as `origin`, with
/// its branch tracking `origin/main`.
pub fn share(lab: &Lab, store: &Store) -> String {
    let remote = lab.path("remote.git");
    let remote = remote.to_str().unwrap().to_string();
    store.git_ok(&["clone", "-q", "--bare", store.path_str(), &remote]);
    store.git_ok(&["remote", "add", "origin", &remote]);
    store.git_ok(&["fetch", "-q", "origin"]);
    store.git_ok(&["branch", "-q", "--set-upstream-to=origin/main"]);
    remote
}

/// A clone of `remote` at `lab/<name>`, as a teammate makes it.
pub fn clone(lab: &Lab, remote: &str, name: &str) -> Store {
    let store = lab.store(name);
    let st = lab.store("");
    st.git_ok(&["clone", "-q", remote, store.path_str()]);
    store
}
