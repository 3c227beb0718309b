//! Crash safety of a membership change, with the real gpg and git.
//!
//! A store of a few hundred entries (each with its own known plaintext, encrypted by GnuPG to alice
//! and bob) loses bob with `vault remove-member bob`, and the run is interrupted:
//! - at chosen steps with the debug build's fault injection (`VAULT_FAULT_POINT=N` aborts at step
//!   N, like a crash), covering every step of the commit phase and a sample of the blob writes;
//! - by a real SIGKILL (and SIGINT, Ctrl-C) at moments spread over the measured run time;
//! - by writes that fail: a store that cannot be written at all, and a file-size limit
//!   (`RLIMIT_FSIZE`, which root cannot ignore either) that makes the object writes, the tree
//!   write or the index write fail (the last one after the commit point).
//!
//! After each interruption the next vault command (`vault members`) must finish or undo the change,
//! and then: the work tree is clean and equal to HEAD, HEAD is the commit before or exactly one new
//! commit on top of it, no entry is missing, added or left as a temporary file, every entry
//! decrypts with alice's own GnuPG to its original plaintext, and bob's own GnuPG can decrypt the
//! entries if and only if HEAD did not move.
//!
//! Where HEAD did not move, every work-tree file must be byte-identical to the pristine store,
//! whose entries were checked once with both alice's and bob's GnuPG when it was made: identical
//! bytes decrypt identically, so those runs skip the slow per-entry gpg calls.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Entries in the test store.
const ENTRIES: usize = 200;
/// Of which this many sit in one folder, so that its git tree object is bigger than any blob
/// (the file-size-limit test makes the tree write fail while blob writes succeed).
const BIG_FOLDER: usize = 150;
/// Longest a single vault run may take before the test fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The names of the commit-phase steps, in order (see src/git/transaction.rs).
const COMMIT_STEPS: &[&str] = &[
    "journal begun",
    "objects synced",
    "journal written",
    "branch moved",
    "work tree updated",
    "index written",
    "work tree synced",
    "journal removed",
];

struct Fixture {
    lab: Lab,
    alice: Person,
    bob: Person,
    pristine: Store,
    /// Entry file (relative path, `big/acct-007.gpg`) -> its plaintext.
    plaintexts: BTreeMap<String, Vec<u8>>,
    /// Every work-tree file of the pristine store (not `.git`) -> its bytes.
    files: BTreeMap<String, Vec<u8>>,
    /// HEAD of the pristine store.
    head: String,
}

fn entry_path(i: usize) -> String {
    if i < BIG_FOLDER {
        format!("big/acct-{i:03}.gpg")
    } else {
        match i % 4 {
            0 => format!("infra/db/host-{i:03}.gpg"),
            1 => format!("web/site-{i:03}.gpg"),
            2 => format!("mail/box {i:03}.gpg"), // a space, as people name entries
            _ => format!("root-{i:03}.gpg"),
        }
    }
}

fn plaintext(i: usize) -> Vec<u8> {
    format!(
        "crash-pw-{i:03}-{:08x}\nuser: user{i}@coop.example\nurl: https://host{i}.coop.example/\n",
        (i as u32).wrapping_mul(2_654_435_761)
    )
    .into_bytes()
}

/// alice and bob (own GnuPG homes), a store created by `vault init alice.asc`, bob added with
/// `vault add-member`, then ENTRIES entries encrypted by GnuPG to both and committed with git.
fn fixture() -> Fixture {
    let lab = Lab::new();
    let alice = Person::generate("alice", KeyKind::Ed25519);
    let bob = Person::generate("bob", KeyKind::Ed25519);
    introduce(&[&alice, &bob]);
    let pristine = lab.store("pristine");
    lab.vault(
        &pristine,
        &alice,
        &["init", alice.public_str(), "--name", "alice"],
    )
    .ok();
    lab.vault_as(
        &pristine,
        &alice,
        &["--yes", "add-member", bob.public_str(), "--name", "bob"],
    )
    .ok();

    // Plaintexts go to a scratch folder outside the store; one gpg process encrypts them all.
    let plain = lab.path("plain");
    let mut plaintexts = BTreeMap::new();
    let mut args: Vec<String> = [
        "--yes",
        "--compress-algo",
        "none",
        "-r",
        &alice.fpr,
        "-r",
        &bob.fpr,
        "--encrypt-files",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 0..ENTRIES {
        let rel = entry_path(i);
        let src = plain.join(rel.strip_suffix(".gpg").unwrap());
        fs::create_dir_all(src.parent().unwrap()).unwrap();
        fs::write(&src, plaintext(i)).unwrap();
        args.push(src.to_str().unwrap().to_string());
        plaintexts.insert(rel, plaintext(i));
    }
    alice.gpg.gpg(&args).ok();
    for rel in plaintexts.keys() {
        let dst = pristine.path.join(rel);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::rename(plain.join(rel), &dst).unwrap();
    }
    fs::remove_dir_all(&plain).unwrap();
    pristine.git_ok(&["add", "-A"]);
    pristine.git_ok(&["commit", "-q", "-m", "Add the entries"]);
    pristine.assert_clean();

    let files = worktree(&pristine.path);
    let head = pristine.head();
    let fx = Fixture {
        lab,
        alice,
        bob,
        pristine,
        plaintexts,
        files,
        head,
    };
    // Both members' GnuPG read every entry of the pristine store.
    for who in [&fx.alice, &fx.bob] {
        let got = decrypt_all(who, &fx.pristine.path, fx.plaintexts.keys());
        for (rel, want) in &fx.plaintexts {
            assert_eq!(
                got[rel].as_deref(),
                Some(&want[..]),
                "fixture: {} cannot read {rel}",
                who.name
            );
        }
    }
    fx
}

impl Fixture {
    /// A copy of the whole pristine store (work tree and .git), as `cp -a` makes it.
    fn copy(&self, name: &str) -> Store {
        self.lab.copy_store(&self.pristine, name)
    }

    /// `vault --store STORE ARGS` as alice (her GNUPGHOME), with a clean environment.
    fn vault(&self, store: &Path, args: &[&str]) -> Command {
        self.lab.clean_vault(self.alice.gpg.home(), store, args)
    }

    /// `vault remove-member bob` as alice, confirmed.
    fn remove_bob(&self, store: &Path) -> Command {
        self.vault(
            store,
            &[
                "--identity",
                self.alice.secret_str(),
                "--yes",
                "remove-member",
                "bob",
            ],
        )
    }
}

/// Every file of a work tree (not `.git`), path relative to the root -> bytes. Symlinks are
/// recorded as `symlink -> TARGET`.
fn worktree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            if rel == ".git" {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &path, out);
            } else if ft.is_symlink() {
                let t = fs::read_link(&path).unwrap();
                out.insert(rel, format!("symlink -> {}", t.display()).into_bytes());
            } else {
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Decrypts each entry file of `store` with `who`'s own GnuPG (one `gpg --decrypt-files` run on
/// copies in a scratch folder): entry -> plaintext, or `None` where gpg could not decrypt it.
fn decrypt_all<'a>(
    who: &Person,
    store: &Path,
    entries: impl Iterator<Item = &'a String>,
) -> BTreeMap<String, Option<Vec<u8>>> {
    let scratch = tempfile::Builder::new()
        .prefix("vt-crash-dec.")
        .tempdir_in("/tmp")
        .unwrap();
    let mut args: Vec<String> = [
        "--yes",
        "--quiet",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--decrypt-files",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let names: Vec<String> = entries.cloned().collect();
    for (i, rel) in names.iter().enumerate() {
        let copy = scratch.path().join(format!("{i}.gpg"));
        fs::copy(store.join(rel), &copy).unwrap();
        args.push(copy.to_str().unwrap().to_string());
    }
    who.gpg.gpg(&args); // fails as a whole when any entry fails; each output is checked below
    names
        .into_iter()
        .enumerate()
        .map(|(i, rel)| (rel, fs::read(scratch.path().join(i.to_string())).ok()))
        .collect()
}

/// Waits for a child with a deadline, collecting its output.
fn wait_output(mut child: Child) -> Output {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).ok();
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        err.read_to_end(&mut v).ok();
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("vault did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

fn run(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running vault");
    wait_output(child)
}

/// `fault-point N NAME` lines of a traced run.
fn fault_points(stderr: &str) -> Vec<(usize, String)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("fault-point "))
        .map(|l| {
            let (n, name) = l.split_once(' ').unwrap();
            (n.parse().unwrap(), name.to_string())
        })
        .collect()
}

/// What the store turned into after an interruption and the next vault command.
#[derive(Debug)]
struct Outcome {
    moved: bool,
    /// The `note:` the next command printed about the interrupted change.
    note: Option<String>,
}

/// Runs `vault members` on an interrupted store (which finishes or undoes the change) and checks
/// everything the module documentation promises.
#[track_caller]
fn recover_and_check(fx: &Fixture, store: &Store, what: &str) -> Outcome {
    let git_dir = store.path.join(".git");
    let had_journal = git_dir.join("vault-journal").exists();

    let members = run(fx.vault(&store.path, &["members"]));
    let stderr = String::from_utf8_lossy(&members.stderr).into_owned();
    assert!(
        members.status.success(),
        "{what}: `vault members` after the interruption failed:\n{}",
        show(&members)
    );
    let note = stderr
        .lines()
        .find(|l| l.starts_with("note:"))
        .map(str::to_string);
    assert_eq!(
        note.is_some(),
        had_journal,
        "{what}: a journal was {}left, but the next command {} a note:\n{stderr}",
        if had_journal { "" } else { "not " },
        if note.is_some() {
            "printed"
        } else {
            "did not print"
        },
    );
    for f in std::fs::read_dir(&git_dir).unwrap() {
        let f = f.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !f.contains("vault-journal"),
            "{what}: .git/{f} is still there after recovery"
        );
    }

    // HEAD: the commit before, or exactly one new commit on top of it, on the same branch.
    assert_eq!(
        store.git_ok(&["symbolic-ref", "HEAD"]),
        "refs/heads/main",
        "{what}"
    );
    let head = store.head();
    let moved = head != fx.head;
    if moved {
        assert_eq!(
            store.git_ok(&["rev-parse", "HEAD^"]),
            fx.head,
            "{what}: HEAD moved by more than one commit"
        );
        let subject = store.last_subject();
        assert!(
            subject.starts_with("Remove member bob"),
            "{what}: unexpected new commit {subject:?}"
        );
    }
    if let Some(n) = &note {
        let expected = if moved {
            "already been committed"
        } else {
            "undone"
        };
        assert!(
            n.contains(expected),
            "{what}: HEAD moved: {moved}, but: {n}"
        );
    }

    // A clean work tree, equal to HEAD's tree byte for byte (hashed here, not trusted from the
    // index's stat data), and an intact object database.
    let status = store.git_ok(&[
        "status",
        "--porcelain",
        "--untracked-files=all",
        "--ignored",
    ]);
    assert!(
        status.is_empty(),
        "{what}: the work tree is not clean:\n{status}"
    );
    let files = worktree(&store.path);
    let leftovers: Vec<&String> = files
        .keys()
        .filter(|p| p.contains(".vault-tmp") || p.contains("vault-journal"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{what}: temporary files left: {leftovers:?}"
    );
    let tree: BTreeMap<String, String> = store
        .git_ok(&["-c", "core.quotePath=false", "ls-tree", "-r", "HEAD"])
        .lines()
        .map(|l| {
            let (meta, path) = l.split_once('\t').unwrap();
            (
                path.to_string(),
                meta.split(' ').nth(2).unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        tree.keys().collect::<Vec<_>>(),
        "{what}: the work tree's files are not HEAD's"
    );
    for (path, bytes) in &files {
        let id = git2::Oid::hash_object(git2::ObjectType::Blob, bytes).unwrap();
        assert_eq!(
            id.to_string(),
            tree[path],
            "{what}: {path} in the work tree differs from HEAD"
        );
    }
    store.git_ok(&["fsck", "--no-progress", "--no-dangling"]);

    // No entry missing, none extra.
    let entries: BTreeSet<&String> = files.keys().filter(|p| p.ends_with(".gpg")).collect();
    let expected: BTreeSet<&String> = fx.plaintexts.keys().collect();
    assert_eq!(entries, expected, "{what}: the set of entries changed");

    if !moved {
        // The change never happened: every file as it was (and so readable by both, as checked
        // with their GnuPG when the fixture was made).
        if files != fx.files {
            let changed: Vec<&String> = fx
                .files
                .iter()
                .filter(|(k, v)| files.get(*k) != Some(*v))
                .map(|(k, _)| k)
                .collect();
            panic!("{what}: HEAD did not move but files changed: {changed:?}");
        }
    } else {
        assert_eq!(
            store.read(".gpg-id"),
            format!("{}\n", fx.alice.fpr),
            "{what}: .gpg-id after removing bob"
        );
        assert!(!store.file(&format!(".public-keys/{}", fx.bob.fpr)).exists());
        assert!(store
            .file(&format!(".public-keys/{}", fx.alice.fpr))
            .exists());
        for rel in fx.plaintexts.keys() {
            assert_ne!(
                files[rel], fx.files[rel],
                "{what}: {rel} was not re-encrypted"
            );
        }
        let alice = decrypt_all(&fx.alice, &store.path, fx.plaintexts.keys());
        for (rel, want) in &fx.plaintexts {
            assert_eq!(
                alice[rel].as_deref(),
                Some(&want[..]),
                "{what}: alice's GnuPG does not read {rel} as its original plaintext"
            );
        }
        let bob = decrypt_all(&fx.bob, &store.path, fx.plaintexts.keys());
        let readable: Vec<&String> = bob
            .iter()
            .filter(|(_, v)| v.as_ref().is_some_and(|v| !v.is_empty()))
            .map(|(k, _)| k)
            .collect();
        assert!(
            readable.is_empty(),
            "{what}: bob was removed but his GnuPG still decrypts {readable:?}"
        );
    }

    // What vault committed is vouched for by the history (signed by alice).
    let verify = run(fx.vault(&store.path, &["verify"]));
    assert!(
        verify.status.success(),
        "{what}: `vault verify` after recovery:\n{}",
        show(&verify)
    );
    Outcome { moved, note }
}

/// Step numbers to crash at: every commit-phase step, the first, second, middle and last two
/// work-tree file writes, and four blob writes spread over the re-encryption.
fn chosen_points(steps: &[(usize, String)]) -> Vec<usize> {
    let of = |name: &str| -> Vec<usize> {
        steps
            .iter()
            .filter(|(_, n)| n == name)
            .map(|(i, _)| *i)
            .collect()
    };
    let mut out = BTreeSet::new();
    for name in COMMIT_STEPS {
        let found = of(name);
        assert_eq!(found.len(), 1, "expected one {name:?} step: {steps:?}");
        out.insert(found[0]);
    }
    let files = of("work-tree file written");
    assert!(
        files.len() > ENTRIES,
        "every entry is written to the work tree"
    );
    for i in [0, 1, files.len() / 2, files.len() - 2, files.len() - 1] {
        out.insert(files[i]);
    }
    let blobs = of("blob written");
    assert_eq!(blobs.len(), ENTRIES, "one blob per re-encrypted entry");
    for i in [0, blobs.len() / 3, 2 * blobs.len() / 3, blobs.len() - 1] {
        out.insert(blobs[i]);
    }
    let staged = of("temporary written");
    assert_eq!(staged.len(), ENTRIES, "each re-encrypted entry is staged");
    for i in [0, staged.len() / 2, staged.len() - 1] {
        out.insert(staged[i]);
    }
    out.into_iter().collect()
}

/// A traced, uninterrupted `remove-member bob` on a copy of the fixture: the store it left and
/// the steps it named (`fault-point N NAME`).
fn traced_run(fx: &Fixture) -> (Store, Vec<(usize, String)>) {
    let store = fx.copy("traced");
    let mut cmd = fx.remove_bob(&store.path);
    cmd.env("VAULT_FAULT_TRACE", "1");
    let out = run(cmd);
    assert!(out.status.success(), "traced run:\n{}", show(&out));
    let steps = fault_points(&String::from_utf8_lossy(&out.stderr));
    (store, steps)
}

#[test]
fn remove_member_crashing_at_each_step_of_the_commit_loses_nothing() {
    let fx = fixture();

    // Learn the steps from a traced, uninterrupted run (itself a valid end state).
    let (store, steps) = traced_run(&fx);
    let names: Vec<&str> = steps.iter().map(|(_, n)| n.as_str()).collect();
    let order: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| COMMIT_STEPS.contains(n))
        .collect();
    assert_eq!(order, COMMIT_STEPS, "the commit steps, in order");
    let o = recover_and_check(&fx, &store, "uninterrupted run");
    assert!(o.moved && o.note.is_none());
    fs::remove_dir_all(&store.path).unwrap();

    let step_of = |name: &str| steps.iter().find(|(_, n)| n == name).unwrap().0;
    let (journal, moved_at, removed) = (
        step_of("journal begun"),
        step_of("branch moved"),
        step_of("journal removed"),
    );
    let mut report = Vec::new();
    for n in chosen_points(&steps) {
        let name = &steps[n - 1].1;
        let what = format!("crash at step {n} ({name})");
        let store = fx.copy(&format!("crash-{n}"));
        let mut cmd = fx.remove_bob(&store.path);
        cmd.env("VAULT_FAULT_POINT", n.to_string());
        let out = run(cmd);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{what}: expected the process to abort there:\n{}",
            show(&out)
        );
        let o = recover_and_check(&fx, &store, &what);
        assert_eq!(o.moved, n >= moved_at, "{what}: HEAD moved: {}", o.moved);
        assert_eq!(
            o.note.is_some(),
            n >= journal && n < removed,
            "{what}: {:?}",
            o.note
        );
        report.push(format!("{what}: moved={} note={:?}", o.moved, o.note));
        fs::remove_dir_all(&store.path).unwrap();
    }
    eprintln!("{}", report.join("\n"));
}

/// A run of `remove-member bob` started now, with its trace read on a thread: each fault point
/// with the time it was reached.
struct Traced {
    child: Child,
    start: Instant,
    marks: Arc<Mutex<Vec<(Duration, String)>>>,
    reader: std::thread::JoinHandle<String>,
}

impl Traced {
    fn spawn(fx: &Fixture, store: &Path) -> Traced {
        Traced::spawn_with(fx, store, &[])
    }

    /// Like [`Traced::spawn`], with extra environment (e.g. `VAULT_FAULT_STALL`).
    fn spawn_with(fx: &Fixture, store: &Path, env: &[(&str, &str)]) -> Traced {
        let mut cmd = fx.remove_bob(store);
        cmd.envs(env.iter().copied());
        cmd.env("VAULT_FAULT_TRACE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd.spawn().expect("running vault");
        let stderr = child.stderr.take().unwrap();
        let marks = Arc::new(Mutex::new(Vec::new()));
        let m = marks.clone();
        let reader = std::thread::spawn(move || {
            let mut rest = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("fault-point ") {
                    Some(p) => {
                        let name = p.split_once(' ').map(|x| x.1).unwrap_or("").to_string();
                        m.lock().unwrap().push((start.elapsed(), name));
                    }
                    None => {
                        rest.push_str(&line);
                        rest.push('\n');
                    }
                }
            }
            rest
        });
        Traced {
            child,
            start,
            marks,
            reader,
        }
    }

    /// Waits for the end; returns the status, the other stderr lines, and the marks.
    fn finish(mut self) -> (std::process::ExitStatus, String, Vec<(Duration, String)>) {
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if self.start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                panic!("vault did not finish within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let rest = self.reader.join().unwrap();
        let marks = self.marks.lock().unwrap().clone();
        (status, rest, marks)
    }
}

#[test]
fn remove_member_killed_or_interrupted_at_any_moment_loses_nothing() {
    let fx = fixture();

    // Measure a whole run, and when it reaches the commit phase.
    let store = fx.copy("measured");
    let (status, rest, marks) = Traced::spawn(&fx, &store.path).finish();
    assert!(status.success(), "measured run: {status:?}\n{rest}");
    let total = marks.last().unwrap().0;
    let at = |name: &str| marks.iter().find(|(_, n)| n == name).unwrap().0;
    let (synced, moved, updated) = (
        at("objects synced"),
        at("branch moved"),
        at("work tree updated"),
    );
    recover_and_check(&fx, &store, "measured run");
    fs::remove_dir_all(&store.path).unwrap();

    // SIGKILL at moments spread over the run, and around the commit point.
    let mut delays: Vec<Duration> = (1..=7).map(|k| total * k / 8).collect();
    delays.extend([synced, moved, (moved + updated) / 2, updated]);
    delays.sort();
    let mut report = vec![format!(
        "run time {total:?}; objects synced at {synced:?}, branch moved at {moved:?}, work tree updated at {updated:?}"
    )];
    let mut killed_mid_run = 0;
    for (i, delay) in delays.iter().enumerate() {
        let store = fx.copy(&format!("kill-{i}"));
        let mut traced = Traced::spawn(&fx, &store.path);
        std::thread::sleep(delay.saturating_sub(traced.start.elapsed()));
        let _ = traced.child.kill(); // SIGKILL
        let (status, rest, marks) = traced.finish();
        let last = marks.last().map(|(_, n)| n.clone()).unwrap_or_default();
        let what = format!("SIGKILL after {delay:?} (last step reached: {last:?})");
        if status.signal() == Some(libc::SIGKILL) {
            killed_mid_run += 1;
        } else {
            assert!(status.success(), "{what}: {status:?}\n{rest}");
        }
        let o = recover_and_check(&fx, &store, &what);
        report.push(format!(
            "{what}: {status:?} moved={} note={:?}",
            o.moved, o.note
        ));
        fs::remove_dir_all(&store.path).unwrap();
    }
    report.push(format!(
        "{killed_mid_run} of those kills landed while vault ran"
    ));

    // Kills that land whatever the machine's load: the run is paused (VAULT_FAULT_STALL) at a
    // step before, at and after the commit point when SIGKILL comes.
    for point in ["pack written", "branch moved", "work tree updated"] {
        let store = fx.copy(&format!("stalled-{}", point.replace(' ', "-")));
        let mut traced = Traced::spawn_with(&fx, &store.path, &[("VAULT_FAULT_STALL", point)]);
        let stalled = format!("at {point}"); // the trace line `fault-point stalled at NAME`
        while !traced
            .marks
            .lock()
            .unwrap()
            .iter()
            .any(|(_, n)| *n == stalled)
        {
            assert!(
                traced.start.elapsed() < TIMEOUT && traced.child.try_wait().unwrap().is_none(),
                "vault never paused at {point}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = traced.child.kill(); // SIGKILL
        let (status, rest, _) = traced.finish();
        let what = format!("SIGKILL while paused at {point:?}");
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{what}: {status:?}\n{rest}"
        );
        let o = recover_and_check(&fx, &store, &what);
        assert_eq!(o.moved, point != "pack written", "{what}: {o:?}");
        report.push(format!("{what}: moved={} note={:?}", o.moved, o.note));
        fs::remove_dir_all(&store.path).unwrap();
    }

    // SIGINT (Ctrl-C): before the commit point the change is undone with a message; after it,
    // the change completes. Either way nothing is left for the next command to recover.
    for (i, delay) in [total / 5, total / 2, synced, (moved + updated) / 2]
        .iter()
        .enumerate()
    {
        let store = fx.copy(&format!("int-{i}"));
        let traced = Traced::spawn(&fx, &store.path);
        std::thread::sleep(delay.saturating_sub(traced.start.elapsed()));
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(traced.child.id() as libc::pid_t, libc::SIGINT);
        }
        let (status, rest, marks) = traced.finish();
        let last = marks.last().map(|(_, n)| n.clone()).unwrap_or_default();
        let what = format!("SIGINT after {delay:?} (last step reached: {last:?})");
        let journal_left = store.path.join(".git/vault-journal").exists();
        let o = recover_and_check(&fx, &store, &what);
        match status.code() {
            Some(0) => assert!(o.moved, "{what}: exit 0 but nothing committed"),
            Some(_) => {
                assert!(
                    rest.contains("interrupted"),
                    "{what}: no clear message:\n{rest}"
                );
                assert!(!o.moved, "{what}: failed, yet HEAD moved:\n{rest}");
                assert!(!journal_left, "{what}: Ctrl-C left a journal to recover");
            }
            None => assert_eq!(status.signal(), Some(libc::SIGINT), "{what}"), // before the handler
        }
        report.push(format!("{what}: {status:?} moved={} {rest:?}", o.moved));
        fs::remove_dir_all(&store.path).unwrap();
    }
    eprintln!("{}", report.join("\n"));
}

/// Runs `cmd` with `RLIMIT_FSIZE` set to `bytes` and SIGXFSZ ignored: every write that would make
/// a file bigger fails with EFBIG, even for root (it behaves like a full disk for big files).
fn with_file_size_limit(mut cmd: Command, bytes: u64) -> Output {
    // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run(cmd)
}

/// Asserts that a failed run left the store as it was: every file that existed (work tree and
/// .git) byte-identical, HEAD unchanged, and nothing new except unreferenced objects.
#[track_caller]
fn assert_unchanged(
    before: &BTreeMap<String, (u32, Vec<u8>)>,
    store: &Store,
    fx: &Fixture,
    what: &str,
) {
    let after = everything(&store.path);
    for (path, v) in before {
        match after.get(path) {
            None => panic!("{what}: {path} disappeared"),
            Some(w) if w != v => panic!("{what}: {path} changed"),
            _ => {}
        }
    }
    let new: Vec<&String> = after
        .keys()
        .filter(|p| !before.contains_key(*p) && !p.starts_with(".git/objects/"))
        .collect();
    assert!(new.is_empty(), "{what}: new files: {new:?}");
    assert_eq!(store.head(), fx.head, "{what}: HEAD moved");
}

/// Makes every file and folder of the store unwritable, even for root: `chattr +i` (root
/// ignores permission bits), or `chmod a-w` when not root.
fn make_unwritable(root: &Path, on: bool) -> bool {
    if unsafe { libc::geteuid() } == 0 {
        let st = Command::new("chattr")
            .arg("-R")
            .arg(if on { "+i" } else { "-i" })
            .arg(root)
            .stderr(Stdio::null())
            .status();
        matches!(st, Ok(s) if s.success())
    } else {
        let st = Command::new("chmod")
            .arg("-R")
            .arg(if on { "a-w" } else { "u+w" })
            .arg(root)
            .status();
        matches!(st, Ok(s) if s.success())
    }
}

#[test]
fn remove_member_on_a_store_that_cannot_be_written() {
    let fx = fixture();

    // (1) A store nobody may write to.
    let store = fx.copy("readonly");
    let before = everything(&store.path);
    if make_unwritable(&store.path, true) && fs::write(store.path.join("probe"), b"x").is_err() {
        let out = run(fx.remove_bob(&store.path));
        make_unwritable(&store.path, false);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "read-only store: {}", show(&out));
        assert!(
            err.contains(store.path.to_str().unwrap()),
            "read-only store: the error should name the path it could not write:\n{err}"
        );
        assert!(
            err.contains("Operation not permitted") || err.contains("Permission denied"),
            "read-only store: the error should say why:\n{err}"
        );
        assert_unchanged(&before, &store, &fx, "read-only store");
        recover_and_check(&fx, &store, "read-only store, made writable again");
    } else {
        make_unwritable(&store.path, false);
        eprintln!("skipped the read-only store: cannot make it unwritable here");
    }
    fs::remove_dir_all(&store.path).unwrap();

    // Sizes that decide which write fails under a file-size limit.
    let objects = everything(&fx.pristine.path.join(".git/objects"));
    let index = fs::metadata(fx.pristine.path.join(".git/index"))
        .unwrap()
        .len();
    let big_tree_id = fx.pristine.git_ok(&["rev-parse", "HEAD:big"]);
    let big_tree = fs::metadata(
        fx.pristine
            .path
            .join(".git/objects")
            .join(&big_tree_id[..2])
            .join(&big_tree_id[2..]),
    )
    .unwrap()
    .len();
    let biggest_blob = objects
        .iter()
        .filter(|(p, _)| !p.ends_with(&big_tree_id[2..]))
        .map(|(_, (_, b))| b.len())
        .max()
        .unwrap() as u64;
    assert!(
        biggest_blob < big_tree && big_tree < index,
        "fixture sizes: blob {biggest_blob}, tree {big_tree}, index {index}"
    );

    // (2) Writes fail before the commit point: a tiny limit stops the journal that starts the
    // change; one between a blob's and the tree's size stops the pack of new objects.
    for (limit, fails) in [
        (1, "vault-journal"),
        ((biggest_blob + big_tree) / 2, "writing a pack"),
    ] {
        let what = format!("file size limit {limit} bytes");
        let store = fx.copy(&format!("fsize-{limit}"));
        let before = everything(&store.path);
        let out = with_file_size_limit(fx.remove_bob(&store.path), limit);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{what}: {}", show(&out));
        assert!(
            err.contains(fails) && err.contains("File too large"),
            "{what}: expected a clear error ({fails}: File too large):\n{err}"
        );
        assert_unchanged(&before, &store, &fx, &what);
        let o = recover_and_check(&fx, &store, &what);
        assert!(!o.moved && o.note.is_none(), "{what}: {o:?}");
        fs::remove_dir_all(&store.path).unwrap();
    }

    // (3) The index write fails after the commit point (a directory squats on .git/index.lock,
    // so libgit2 cannot take the index lock): the change is committed; vault must say so and why,
    // keep the journal, and the next command (once the obstacle is gone) finishes it.
    let _ = index;
    let what = "index.lock taken (index write fails after the commit point)".to_string();
    let store = fx.copy("index-locked");
    fs::create_dir(store.path.join(".git/index.lock")).unwrap();
    let out = fx.remove_bob(&store.path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{what}: {}", show(&out));
    assert!(
        store.path.join(".git/vault-journal").exists(),
        "{what}: the journal must stay for recovery"
    );
    assert!(
        err.contains("committed") && err.contains("index"),
        "{what}: the error should say the change was committed and that writing the index failed:\n{err}"
    );
    fs::remove_dir(store.path.join(".git/index.lock")).unwrap();
    let o = recover_and_check(&fx, &store, &what);
    assert!(o.moved && o.note.is_some(), "{what}: {o:?}");
    fs::remove_dir_all(&store.path).unwrap();
}

/// A run killed while libgit2 writes the index leaves `.git/index.lock` (a SIGKILL at the wrong
/// millisecond did, in a timed run of the test above): the next run finishes the change anyway
/// (nothing releases that lock, so it is stale) instead of failing on it for ever.
#[test]
fn a_change_killed_while_writing_the_index_is_finished_by_the_next_run() {
    let fx = fixture();
    let (store, steps) = traced_run(&fx);
    let (n, _) = steps
        .iter()
        .find(|(_, name)| name == "work tree updated")
        .expect("the step before the index is written");
    fs::remove_dir_all(&store.path).unwrap();

    let store = fx.copy("index-lock");
    let mut cmd = fx.remove_bob(&store.path);
    cmd.env("VAULT_FAULT_POINT", n.to_string());
    let out = run(cmd);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", show(&out));
    // What a kill inside the index write leaves: the lock, half written.
    let lock = store.path.join(".git/index.lock");
    fs::write(&lock, b"DIRC\0\0\0\x02").unwrap();
    let o = recover_and_check(&fx, &store, "killed while writing the index");
    assert!(o.moved, "the change was past its commit point: {o:?}");
    assert!(!lock.exists(), "the stale index.lock is still there");
}
