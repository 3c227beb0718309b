//! The raw cryptographic floor of a membership change (issue 7): what sequoia alone costs per
//! entry for exactly the work `vault` does, without process start, store loading, git or files.
//!
//! - add-member: parse the envelope, unlock the session key with the operator's key, wrap it for
//!   the new member (one more PKESK; the encrypted data packet is kept).
//! - remove-member: parse, unlock, decrypt the entry, encrypt it with a fresh session key to the
//!   remaining recipients.
//! - audit: parse the envelope and list its readers (nothing is decrypted).
//!
//! Each is timed on one thread over many distinct entries (median of several passes); the floor
//! of a run over N entries is `per-entry cost x N / cores`. For information, the same work is also
//! timed across all cores with rayon, as vault does it.
//!
//! Two modes:
//! - no arguments (`cargo bench --bench crypto_floor`): self-contained; sequoia generates Cv25519
//!   keys and 10-recipient entries in memory.
//! - on a real store (what `scripts/bench.sh` does, so the floor is measured on the very
//!   ciphertexts and gpg-made keys vault is timed on):
//!   `cargo bench --bench crypto_floor -- --store DIR --identity SECRET_KEY --add PUBLIC_KEY
//!    --remove FINGERPRINT [--limit N] [--passes K] [--label TEXT]`
//!   Recipients are the certificates in DIR/.public-keys; entries are DIR's `*.gpg` files.
//!
//! Besides the human-readable report, one line starting with `floor:` gives the figures as
//! `key=value` pairs (microseconds per entry) for scripts.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::serialize::SerializeInto;
use vault::crypto::{self, Envelope, Fingerprint, Identity, MemberKey, Recipients};
use vault::secret::Secret;

struct Setup {
    label: String,
    identity: Identity,
    members: Vec<MemberKey>,
    added: MemberKey,
    removed: Fingerprint,
    entries: Vec<Vec<u8>>,
}

fn usage() -> ! {
    eprintln!(
        "usage: crypto_floor [--store DIR --identity SECRET_KEY --add PUBLIC_KEY --remove FPR \
         [--limit N] [--passes K] [--label TEXT]]"
    );
    std::process::exit(2)
}

fn no_passphrase() -> vault::Result<Secret> {
    Err(vault::Error::Usage(
        "the operator key must not be passphrase-protected".into(),
    ))
}

fn load_identity(bytes: &[u8]) -> Identity {
    Identity::from_bytes(bytes, &mut no_passphrase)
        .unwrap_or_else(|e| panic!("loading the operator key: {e:?}"))
}

/// Every `*.gpg` file under `dir` (not in `.git`), sorted, at most `limit`.
fn entry_files(dir: &Path, limit: usize) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut items: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        items.sort();
        for p in items {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let meta = std::fs::symlink_metadata(&p).expect("metadata");
            if meta.is_dir() && name != ".git" {
                walk(&p, out);
            } else if meta.is_file() && name.ends_with(".gpg") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.truncate(limit);
    out
}

fn from_store(args: &[String]) -> (Setup, usize) {
    let mut store = None;
    let mut identity = None;
    let mut add = None;
    let mut remove = None;
    let mut limit = 1000usize;
    let mut passes = 3usize;
    let mut label = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--store" => store = Some(PathBuf::from(value())),
            "--identity" => identity = Some(PathBuf::from(value())),
            "--add" => add = Some(PathBuf::from(value())),
            "--remove" => remove = Some(value()),
            "--limit" => limit = value().parse().unwrap_or_else(|_| usage()),
            "--passes" => passes = value().parse().unwrap_or_else(|_| usage()),
            "--label" => label = Some(value()),
            "--bench" => {} // cargo bench passes this to harness-less benches
            _ => usage(),
        }
    }
    let (Some(store), Some(identity), Some(add), Some(remove)) = (store, identity, add, remove)
    else {
        usage()
    };
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut members = Vec::new();
    let keys_dir = store.join(".public-keys");
    let mut key_files: Vec<_> = std::fs::read_dir(&keys_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", keys_dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    key_files.sort();
    for p in key_files {
        members.push(MemberKey::parse_strict(&read(&p)).expect("a usable member key"));
    }
    let added = MemberKey::parse_strict(&read(&add)).expect("a usable new member key");
    let removed = Fingerprint::parse(&remove).unwrap_or_else(|| usage());
    assert!(
        members.iter().any(|m| m.fingerprint() == removed),
        "--remove {removed} is not a member of the store"
    );
    let entries: Vec<Vec<u8>> = entry_files(&store, limit).iter().map(|p| read(p)).collect();
    assert!(
        !entries.is_empty(),
        "no *.gpg entries in {}",
        store.display()
    );
    let label = label.unwrap_or_else(|| store.display().to_string());
    (
        Setup {
            label,
            identity: load_identity(&read(&identity)),
            members,
            added,
            removed,
            entries,
        },
        passes,
    )
}

fn generate(uid: &str) -> (MemberKey, Vec<u8>) {
    let (cert, _) = CertBuilder::general_purpose(Some(uid))
        .set_profile(openpgp::Profile::RFC4880)
        .expect("RFC 4880 profile")
        .set_cipher_suite(CipherSuite::Cv25519)
        .generate()
        .expect("generating a key");
    let public = cert
        .clone()
        .strip_secret_key_material()
        .armored()
        .to_vec()
        .expect("serialising");
    let secret = cert.as_tsk().to_vec().expect("serialising");
    (
        MemberKey::parse_strict(&public).expect("a usable key"),
        secret,
    )
}

fn self_contained() -> (Setup, usize) {
    const R: usize = 10;
    const N: usize = 1000;
    let mut members = Vec::new();
    let mut operator_secret = Vec::new();
    for i in 0..R {
        let (key, secret) = generate(&format!("member{i} <member{i}@bench.example>"));
        if i == 0 {
            operator_secret = secret;
        }
        members.push(key);
    }
    let (added, _) = generate("newbie <newbie@bench.example>");
    let removed = members[R - 1].fingerprint();
    let refs: Vec<&MemberKey> = members.iter().collect();
    let all = Recipients::new(&refs);
    let entries = (0..N)
        .map(|i| {
            let text = format!(
                "p4ssw0rd-{i:05}-Xq9vLk2m\nuser: admin{i}\nurl: https://host{i}.example/\n"
            );
            crypto::encrypt(&Secret::from(text), &all).expect("encrypting")
        })
        .collect();
    (
        Setup {
            label: format!("self-contained: sequoia-made Cv25519 keys, R={R}, {N} entries"),
            identity: load_identity(&operator_secret),
            members,
            added,
            removed,
            entries,
        },
        3,
    )
}

/// Median of `passes` single-threaded passes over every entry: microseconds per entry.
fn per_entry_single(
    setup: &Setup,
    passes: usize,
    work: &(dyn Fn(&mut Identity, &[u8]) + Sync),
) -> f64 {
    let mut identity = setup.identity.clone();
    // Warm up caches and lazy initialisation.
    for e in setup.entries.iter().take(20) {
        work(&mut identity, e);
    }
    let mut samples: Vec<f64> = (0..passes.max(1))
        .map(|_| {
            let start = Instant::now();
            for e in &setup.entries {
                work(&mut identity, e);
            }
            start.elapsed().as_secs_f64() * 1e6 / setup.entries.len() as f64
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    samples[samples.len() / 2]
}

/// One pass across all cores (rayon, one identity per worker as vault does): microseconds of
/// wall time per entry.
fn per_entry_parallel(setup: &Setup, work: &(dyn Fn(&mut Identity, &[u8]) + Sync)) -> f64 {
    let start = Instant::now();
    setup
        .entries
        .par_iter()
        .for_each_init(|| setup.identity.clone(), |id, e| work(id, e));
    start.elapsed().as_secs_f64() * 1e6 / setup.entries.len() as f64
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (setup, passes) = if args.is_empty() {
        self_contained()
    } else {
        from_store(&args)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let member_refs: Vec<&MemberKey> = setup.members.iter().collect();
    let remaining: Vec<&MemberKey> = setup
        .members
        .iter()
        .filter(|m| m.fingerprint() != setup.removed)
        .collect();
    let add = Recipients::new(&[&setup.added]);
    let rest = Recipients::new(&remaining);
    let r = member_refs.len();

    // Every entry must be readable by the operator and carry exactly the members' keys.
    {
        let mut id = setup.identity.clone();
        for (i, e) in setup.entries.iter().enumerate() {
            let env = Envelope::parse(e).unwrap_or_else(|p| panic!("entry {i}: {p}"));
            assert!(
                id.unlock(&env).is_some(),
                "entry {i}: the operator cannot decrypt it"
            );
        }
    }

    let audit = |_: &mut Identity, e: &[u8]| {
        let env = Envelope::parse(e).expect("parse");
        black_box(env.readers());
    };
    let add_member = |id: &mut Identity, e: &[u8]| {
        let env = Envelope::parse(e).expect("parse");
        let unlocked = id.unlock(&env).expect("unlock");
        black_box(crypto::add_readers(&env, &unlocked, &add).expect("add_readers"));
    };
    let remove_member = |id: &mut Identity, e: &[u8]| {
        let env = Envelope::parse(e).expect("parse");
        let unlocked = id.unlock(&env).expect("unlock");
        let plain = crypto::decrypt(&env, &unlocked).expect("decrypt");
        black_box(crypto::encrypt(&plain, &rest).expect("encrypt"));
    };
    let unlock_only = |id: &mut Identity, e: &[u8]| {
        let env = Envelope::parse(e).expect("parse");
        black_box(id.unlock(&env).expect("unlock"));
    };

    let audit_us = per_entry_single(&setup, passes, &audit);
    let unlock_us = per_entry_single(&setup, passes, &unlock_only);
    let add_us = per_entry_single(&setup, passes, &add_member);
    let remove_us = per_entry_single(&setup, passes, &remove_member);
    let par_add_us = per_entry_parallel(&setup, &add_member);
    let par_remove_us = per_entry_parallel(&setup, &remove_member);

    let n = setup.entries.len();
    println!("crypto floor: {}", setup.label);
    println!(
        "  {n} distinct entries, {r} recipients ({} after removal, +1 added), {cores} cores, median of {passes} passes",
        remaining.len()
    );
    println!("  per entry, one thread:");
    println!("    audit  (parse envelope, list readers)          {audit_us:>9.1} µs");
    println!("    unlock (parse + decrypt the session key)       {unlock_us:>9.1} µs");
    println!("    add-member    (unlock + wrap for 1 more)       {add_us:>9.1} µs");
    println!(
        "    remove-member (unlock + decrypt + encrypt to {}) {remove_us:>9.1} µs",
        remaining.len()
    );
    println!("  per entry, wall time on all {cores} cores (rayon):");
    println!(
        "    add-member {par_add_us:.1} µs (speed-up {:.2}x), remove-member {par_remove_us:.1} µs (speed-up {:.2}x)",
        add_us / par_add_us,
        remove_us / par_remove_us
    );
    println!("  floor for N entries = per-entry x N / {cores}; e.g. N = 1000:");
    println!(
        "    add-member {:.3} s, remove-member {:.3} s, audit {:.3} s",
        add_us * 1000.0 / cores as f64 / 1e6,
        remove_us * 1000.0 / cores as f64 / 1e6,
        audit_us * 1000.0 / cores as f64 / 1e6
    );
    println!(
        "floor: entries={n} recipients={r} cores={cores} audit_us={audit_us:.2} unlock_us={unlock_us:.2} \
         add_us={add_us:.2} remove_us={remove_us:.2} par_add_us={par_add_us:.2} par_remove_us={par_remove_us:.2}"
    );
}
