//! Carrying out a plan: the checks that come first (signers, temporaries, what cannot be
//! re-encrypted), phase 1 (read and unlock every affected entry, writing nothing), phase 2
//! (re-encrypt or re-wrap, staged and packed), then the one commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use super::*;
use crate::crypto::{self, CryptoError, Envelope, Identity, KeyId, Recipients};
use crate::error::{Error, Result};
use crate::git::{BlobId, Change, NewBlob, Objects, Staging};
use crate::snapshot::*;
use crate::store::{
    gpg_id_path, render_gpg_id, render_gpg_id_keeping, Entry, Folder, Layout, MEMBERS,
};

/// Who signs each `.gpg-id.sig` a change writes.
type GpgIdSigners<'i> = BTreeMap<String, &'i Identity>;

impl Snapshot {
    /// For each `.gpg-id.sig` the plan must write (one exists, or `PASSWORD_STORE_SIGNING_KEY`
    /// is set), the key to sign it with: one pass will accept, as pass checks a signature's
    /// signer (primary or signing key) against `PASSWORD_STORE_SIGNING_KEY`. When that is unset
    /// here, the team's pass still expects the key that signed the existing signature, so that
    /// key it must be. Decided before anything is decrypted or written.
    ///
    /// # Errors
    /// [`Error::GpgIdSigner`] naming the file and the key pass expects when neither the operator
    /// nor the plan's `.gpg-id` signer is that key.
    fn gpg_id_signers<'i>(
        &self,
        plan: &'i Plan,
        operator: &'i Identity,
    ) -> Result<GpgIdSigners<'i>> {
        let mut out = BTreeMap::new();
        for folder in &plan.changed {
            let sig_path = format!("{}.sig", gpg_id_path(folder));
            if let Some(target) = self.layout.links.get(&sig_path) {
                // A link to the signature of the `.gpg-id` this folder reads is kept valid by
                // re-signing that one; a link anywhere else would go stale.
                let source = plan.links.get(folder).unwrap_or(folder);
                if *target == format!("{}.sig", gpg_id_path(source)) {
                    continue;
                }
                return Err(Error::BadFile {
                    file: crate::text::escape(&sig_path).into_owned(),
                    problem: format!(
                        "a symbolic link to {}, which is not the signature of the .gpg-id this \
                         folder reads: the change would leave it stale, and pass would refuse it",
                        crate::text::escape(target)
                    ),
                });
            }
            // A store that signs its `.gpg-id` files signs every one: a new folder's needs a
            // signature too, or every teammate's pass refuses it ("Signature … does not exist").
            let existing: Vec<_> = match self.layout.signatures.get(&sig_path) {
                Some(sig) => vec![*sig],
                None => self.layout.signatures.values().copied().collect(),
            };
            if existing.is_empty() && plan.pass_signing_keys.is_empty() {
                continue;
            }
            let (expected, rule): (Vec<String>, &str) = if plan.pass_signing_keys.is_empty() {
                let mut issuers = Vec::new();
                for sig in existing {
                    issuers.extend(crypto::signature_issuers(&self.repo.read(sig)?));
                }
                // pass matches the signer's primary fingerprint as well as its signing key's: a
                // member's newer signing subkey is as good as the one that signed before.
                let primaries: Vec<String> = issuers
                    .iter()
                    .filter_map(|h| self.key_named(h))
                    .map(|k| k.fingerprint().to_string())
                    .collect();
                issuers.extend(primaries);
                issuers.sort();
                issuers.dedup();
                if issuers.is_empty() {
                    return Err(Error::BadFile {
                        file: crate::text::escape(&sig_path).into_owned(),
                        problem: "the store's .gpg-id signatures do not say who made them, so \
                                  vault cannot tell which key the team's pass accepts"
                            .into(),
                    });
                }
                (
                    issuers,
                    "the key that signed the store's .gpg-id files (pass checks it against \
                     PASSWORD_STORE_SIGNING_KEY)",
                )
            } else {
                (
                    plan.pass_signing_keys
                        .iter()
                        .map(|f| f.to_string())
                        .collect(),
                    "PASSWORD_STORE_SIGNING_KEY",
                )
            };
            let accepted = |id: &Identity| expected.iter().any(|h| id.signs_as(h));
            let signer = [Some(operator), plan.gpg_id_signer.as_ref()]
                .into_iter()
                .flatten()
                .find(|id| accepted(id))
                .ok_or_else(|| Error::GpgIdSigner {
                    file: crate::text::escape(&sig_path).into_owned(),
                    expected: expected
                        .iter()
                        .map(|h| self.describe_key(h))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    rule: rule.into(),
                    operator: operator.fingerprint().to_string(),
                })?;
            out.insert(sig_path, signer);
        }
        Ok(out)
    }

    /// The member certificate that binds the key `handle` names (a fingerprint or key id, hex).
    fn key_named(&self, handle: &str) -> Option<&MemberKey> {
        let fpr = crypto::Fingerprint::parse(handle);
        let id = crypto::KeyId::parse(handle);
        self.keys.values().find(|k| {
            fpr.is_some_and(|f| k.has_fingerprint(f)) || id.is_some_and(|i| k.has_bound_key_id(i))
        })
    }

    /// A key named by fingerprint or key id (hex), with the member's name when it is a member's.
    fn describe_key(&self, handle: &str) -> String {
        match self.key_named(handle) {
            Some(k) => format!("{handle} (member {})", self.display_name(k.fingerprint())),
            None => handle.to_string(),
        }
    }

    /// Carries out a plan: re-encrypts what must change (decrypting with `identity`), then makes
    /// one commit. On any error, nothing is changed.
    ///
    /// # Errors
    /// [`Error::MemberKey`] if a recipient's key cannot be encrypted to; [`Error::NoIdentity`] if
    /// an entry must be re-encrypted and there is no operator key; [`Error::CannotDecrypt`] listing
    /// every entry the operator cannot read; [`Error::Entry`] for an unreadable entry;
    /// [`Error::Interrupted`]; git errors.
    pub fn execute(
        &self,
        plan: Plan,
        identity: Option<&Identity>,
        monitor: &Monitor,
    ) -> Result<Outcome> {
        // Every commit vault makes is signed by the operator.
        let operator = identity.ok_or(Error::NoIdentity)?;
        if !operator.can_sign() {
            return Err(Error::Identity {
                file: operator.fingerprint().to_string(),
                problem: "it has no usable signing key, and vault signs every commit it makes"
                    .into(),
            });
        }
        let sign = |data: &[u8]| sign_as(operator, data, true);
        // An entry vault cannot rewrite (a symbolic link, perhaps out of the store) would keep
        // its old readers: refuse rather than leave it readable by someone who lost access.
        if !self.layout.temporaries.is_empty() {
            return Err(Error::Temporaries(escaped(&self.layout.temporaries)));
        }
        for skipped in &self.layout.skipped {
            let governed = Layout::governing_in(&plan.recipients, Layout::folder_of(&skipped.path));
            if governed.is_some_and(|g| plan.changed.contains(&g)) {
                return Err(Error::Unreadable {
                    path: crate::text::escape(&skipped.path).into_owned(),
                    problem: format!(
                        "{}: vault cannot re-encrypt it, and it would keep its old readers",
                        skipped.why
                    ),
                });
            }
        }
        let gpg_id_signers = self.gpg_id_signers(&plan, operator)?;
        // Which entries does the change govern, and to whom must each be encrypted?
        let mut work: Vec<(&Entry, &Folder)> = Vec::new();
        // Entries outside the changed folders, and outside any `.gpg-id`: when someone loses
        // access, their ciphertexts decide too (below).
        let mut elsewhere: Vec<(&Entry, Option<&Folder>)> = Vec::new();
        for e in &self.layout.entries {
            let Some(gov) = Layout::governing_in(&plan.recipients, Layout::folder_of(&e.path))
            else {
                elsewhere.push((e, None));
                continue;
            };
            let gov = plan
                .recipients
                .get_key_value(&gov)
                .expect("governing folder exists")
                .0;
            if e.governed_by.as_ref() != Some(gov) || plan.changed.contains(gov) {
                work.push((e, gov));
            } else {
                elsewhere.push((e, Some(gov)));
            }
        }
        // Clients that ignore a sub-folder's `.gpg-id` (ripasso saving an entry, older gopass
        // inserting one) encrypt to other readers than `.gpg-id` says: an entry the leaving member
        // can actually read is re-encrypted to its proper readers wherever it is, and listed to
        // rotate. One that no `.gpg-id` governs cannot be: it is named instead.
        // What vault cannot re-encrypt (age files, submodules) is named: in the changed folders,
        // and anywhere when someone loses access (an `.age-recipients`, not a `.gpg-id`, says
        // who reads an age file): never a clean summary over something someone may still read.
        let mut not_reencrypted: Vec<String> = self
            .layout
            .foreign
            .iter()
            .filter(|f| {
                !plan.removed_key_ids.is_empty()
                    || Layout::governing_in(&plan.recipients, Layout::folder_of(&f.path))
                        .is_some_and(|g| plan.changed.contains(&g))
            })
            .map(|f| format!("{}: {}", crate::text::escape(&f.path), f.why))
            .collect();
        let mut outside: Vec<String> = Vec::new();
        if !plan.removed_key_ids.is_empty() {
            let root = self.repo.root();
            let readable: Vec<bool> = elsewhere
                .par_iter()
                .map_init(
                    || Objects::open(root),
                    |objects, (entry, _)| {
                        let Ok(objects) = Objects::opened(objects) else {
                            return true; // checked (and reported) with the rest in phase 1
                        };
                        match objects.read(entry.blob).map(|b| {
                            Envelope::parse(&b)
                                .map(|env| may_read(&env.readers(), &plan.removed_key_ids))
                        }) {
                            Ok(Ok(exposed)) => exposed,
                            _ => true, // unreadable: phase 1 names it
                        }
                    },
                )
                .collect();
            for ((entry, gov), exposed) in elsewhere.into_iter().zip(readable) {
                match (exposed, gov) {
                    (false, _) => {}
                    (true, Some(gov)) => work.push((entry, gov)),
                    (true, None) => {
                        outside.push(entry.name.clone());
                        not_reencrypted.push(format!(
                        "{}: no .gpg-id governs it, so vault cannot tell whom to re-encrypt it to; \
                         the member can still read it",
                        crate::text::escape(&entry.name)
                    ))
                    }
                }
            }
        }
        let mut targets: BTreeMap<&Folder, (Recipients, BTreeSet<KeyId>)> = BTreeMap::new();
        for (_, folder) in &work {
            if targets.contains_key(folder) {
                continue;
            }
            let mut members = Vec::new();
            for fpr in &plan.recipients[*folder] {
                let added = plan.added.as_ref().filter(|k| k.fingerprint() == *fpr);
                let key = added
                    .or(self.keys.get(fpr))
                    .ok_or_else(|| Error::MissingKey {
                        fingerprint: fpr.to_string(),
                        file: gpg_id_path(folder),
                    })?;
                if let Some(problem) = key.problem() {
                    return Err(Error::MemberKey {
                        member: self.display_name(*fpr),
                        fingerprint: fpr.to_string(),
                        problem: problem.clone(),
                    });
                }
                members.push(key);
            }
            let recipients = Recipients::new(&members);
            let ids = recipients.key_ids().into_iter().collect();
            targets.insert(folder, (recipients, ids));
        }

        // Phase 1, in parallel, writes nothing: read every affected entry and unlock its session
        // key, so that an entry the operator cannot read (or a malformed one) stops the change
        // before anything is written, with every such entry named. Whether the data of an entry
        // to re-encrypt is intact (its integrity check) is proven in phase 2, when it is
        // decrypted, still before the commit point: a tampered entry stops the change there.
        let total = 2 * work.len();
        let done = AtomicUsize::new(0);
        let tick = || (monitor.progress)(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        let failed = AtomicBool::new(false);
        let failures: Mutex<Vec<(String, Failure)>> = Mutex::new(Vec::new());
        let fail = |name: &str, f: Failure| {
            failed.store(true, Ordering::Relaxed);
            failures
                .lock()
                .expect("no panics hold this lock")
                .push((name.to_string(), f));
        };
        let root = self.repo.root();
        let checked: Vec<Option<Checked>> = work
            .par_iter()
            .map_init(
                || (Objects::open(root), identity.cloned()),
                |(objects, identity), (entry, folder)| {
                    let wanted = &targets[folder].1;
                    let result = check_entry(
                        entry,
                        objects,
                        identity.as_mut(),
                        wanted,
                        &plan.removed_key_ids,
                        failed.load(Ordering::Relaxed),
                        monitor,
                    );
                    tick();
                    result.map_err(|f| fail(&entry.name, f)).ok()
                },
            )
            .collect();
        let failures = failures.into_inner().expect("no panics hold this lock");
        if !failures.is_empty() {
            return Err(summarise_failures(failures, identity));
        }
        // The store's own files, signatures included, are made before anything is written.
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for folder in &plan.changed {
            // Comments and the comments of kept lines stay; everything is written with LF.
            let text = match self.gpg_id_texts.get(folder) {
                Some((old, resolved)) => {
                    render_gpg_id_keeping(old, resolved, &plan.recipients[folder])
                }
                None => render_gpg_id(&plan.recipients[folder]),
            };
            let path = gpg_id_path(folder);
            // Keep pass's signed recipients valid: re-sign, never leave a stale signature.
            let sig_path = format!("{path}.sig");
            if let Some(signer) = gpg_id_signers.get(&sig_path) {
                let sig = sign_as(signer, text.as_bytes(), false)?;
                files.push((sig_path, sig));
            }
            // A `.gpg-id` that is a symbolic link stays one: the file it leads to is written
            // (it is in the plan, with the same recipients).
            if !plan.links.contains_key(folder) {
                files.push((path, text.into_bytes()));
            }
        }
        files.extend(plan.key_writes.iter().cloned());
        files.push((MEMBERS.into(), plan.roster.render().into_bytes()));
        self.repo.check_writable(
            work.iter()
                .map(|(e, _)| e.path.as_str())
                .chain(files.iter().map(|(p, _)| p.as_str()))
                .chain(plan.key_deletes.iter().map(String::as_str)),
        )?;

        // Phase 2 rewrites, with the session keys unlocked in phase 1. Workers stage each new
        // file beside the old one and hash its blob; this thread collects the blobs, and the
        // store's own files, for one pack, which joins the object database only when complete.
        // A change that stops before its commit point leaves neither the pack nor the staged files.
        let staging = self.repo.begin(plan.action)?;
        // Two files of a change may have the same content (two `.gpg-id` files left with the same
        // recipients): each object goes to the pack once.
        let pack = self.repo.write_pack(|sink| {
            let (results, sent) = std::thread::scope(|scope| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<NewBlob>(256);
                let workers = scope.spawn(|| {
                    let tx = tx;
                    work.par_iter()
                        .zip(checked)
                        .map_init(
                            || (Objects::open(root), tx.clone()),
                            |(objects, tx), ((entry, folder), check)| {
                                let check = check.expect("phase 1 succeeded for every entry");
                                let r = rewrite_entry(
                                    entry,
                                    check,
                                    objects,
                                    &targets[folder].0,
                                    monitor,
                                    (&staging, tx),
                                );
                                tick();
                                r
                            },
                        )
                        .collect::<Vec<Result<Rewritten>>>()
                });
                let mut sent: Result<()> = Ok(());
                for packed in rx.iter() {
                    if let Err(e) = sink(packed) {
                        sent = Err(e);
                        break; // dropping the receiver stops the workers
                    }
                    crate::git::fault_point("blob written");
                }
                drop(rx); // so that workers blocked on a full channel stop
                (workers.join().expect("a worker panicked"), sent)
            });
            sent?;
            let results = results.into_iter().collect::<Result<Vec<Rewritten>>>()?;
            let mut ids = Vec::new();
            let mut sent = BTreeSet::new();
            for (path, bytes) in &files {
                let blob = NewBlob::new(bytes.to_vec());
                ids.push((path.clone(), blob.id()));
                if sent.insert(bytes) {
                    sink(blob)?;
                }
            }
            Ok((results, ids))
        });
        let ((results, file_ids), new_packs) = pack.inspect_err(|_| self.repo.abandon(&staging))?;

        let finish = || -> Result<Outcome> {
            let mut change = Change {
                writes: Vec::new(),
                deletes: plan.key_deletes.clone(),
                message: String::new(),
                action: plan.action.to_string(),
            };
            let (mut rewrapped, mut reencrypted, mut unchanged, mut exposed) =
                (0, 0, 0, Vec::new());
            for r in results {
                if r.exposed {
                    exposed.push(r.name.clone());
                }
                match r.how {
                    How::Unchanged => unchanged += 1,
                    How::Rewrapped(blob) => {
                        rewrapped += 1;
                        change.writes.push((r.path, blob));
                    }
                    How::Reencrypted(blob) => {
                        reencrypted += 1;
                        change.writes.push((r.path, blob));
                    }
                }
            }
            exposed.extend(outside.iter().cloned());
            exposed.sort();
            change.writes.extend(file_ids);
            let mut trailers = plan.trailers.clone();
            trailers.push((
                "Vault-Reencrypted".into(),
                (rewrapped + reencrypted).to_string(),
            ));
            change.message = commit_message(&plan.subject, &plan.body, &trailers);
            let commit = self.repo.commit(
                &change,
                false,
                Some(&sign),
                Some(&staging),
                monitor.interrupted,
            )?;
            Ok(Outcome {
                commit,
                rewrapped,
                reencrypted,
                unchanged,
                exposed,
                changed_gpg_ids: plan.changed_gpg_ids(),
                not_reencrypted: not_reencrypted.clone(),
            })
        };
        finish().inspect_err(|e| {
            // Before the commit point nothing happened: remove what this run added.
            if !matches!(e, Error::Unfinished { .. }) {
                self.repo.discard_packs(&new_packs);
                self.repo.abandon(&staging);
            }
        })
    }
}

enum Failure {
    NoIdentity,
    CannotDecrypt,
    Corrupt(String),
    Other(Error),
}

fn summarise_failures(mut failures: Vec<(String, Failure)>, identity: Option<&Identity>) -> Error {
    failures.sort_by(|a, b| a.0.cmp(&b.0));
    if failures
        .iter()
        .any(|(_, f)| matches!(f, Failure::Other(Error::Interrupted)))
    {
        return Error::Interrupted;
    }
    if let Some(i) = failures
        .iter()
        .position(|(_, f)| matches!(f, Failure::Corrupt(_)))
    {
        let (entry, f) = failures.swap_remove(i);
        let Failure::Corrupt(problem) = f else {
            unreachable!()
        };
        return Error::Entry { entry, problem };
    }
    if let Some(i) = failures
        .iter()
        .position(|(_, f)| matches!(f, Failure::Other(_)))
    {
        let Failure::Other(e) = failures.swap_remove(i).1 else {
            unreachable!()
        };
        return e;
    }
    if failures
        .iter()
        .any(|(_, f)| matches!(f, Failure::NoIdentity))
    {
        return Error::NoIdentity;
    }
    if let Some(agent) = identity.and_then(|i| i.agent_error()) {
        return Error::Identity {
            file: "gpg-agent".into(),
            problem: format!(
                "it could not decrypt ({agent}). With --yes or without a terminal, vault does not let the agent ask for a passphrase: \
                 unlock the key first (gpg-preset-passphrase, or `pass show` one entry), run on a terminal, or give --passphrase-file"
            ),
        };
    }
    Error::CannotDecrypt {
        identity: identity
            .map(|i| format!("{} ({})", i.fingerprint(), i.user_id()))
            .unwrap_or_default(),
        entries: failures
            .into_iter()
            .filter(|(_, f)| matches!(f, Failure::CannotDecrypt))
            .map(|(n, _)| n)
            .collect(),
    }
}

enum How {
    Unchanged,
    Rewrapped(BlobId),
    Reencrypted(BlobId),
}

struct Rewritten {
    name: String,
    path: String,
    how: How,
    exposed: bool,
}

/// What phase 1 found out about an entry.
enum Checked {
    /// Its readers are already right: left byte-identical.
    Unchanged { exposed: bool },
    /// New readers only: keep the data, add PKESKs for `missing`.
    Rewrap {
        unlocked: crypto::Unlocked,
        missing: Vec<KeyId>,
        exposed: bool,
    },
    /// Someone loses access (or the message is not one to keep): fresh session key.
    Reencrypt {
        unlocked: crypto::Unlocked,
        exposed: bool,
    },
}

/// Whether someone with one of the keys `ids` may be able to read a message with these
/// `readers` (its PKESKs): one is addressed to such a key, or one hides its recipient
/// (`gpg --throw-keyids`), which could be anyone's.
fn may_read(readers: &[crypto::Reader], ids: &[KeyId]) -> bool {
    readers.iter().any(|r| r.is_none_or(|id| ids.contains(&id)))
}

/// Phase 1 for one entry: decides what it needs and proves the operator can do it. Once any
/// entry has failed (`checking_only`), it only checks whether the operator can decrypt, so the
/// error can list every such entry without wasted work.
fn check_entry(
    entry: &Entry,
    objects: &Result<Objects>,
    identity: Option<&mut Identity>,
    wanted: &BTreeSet<KeyId>,
    removed: &[KeyId],
    checking_only: bool,
    monitor: &Monitor,
) -> std::result::Result<Checked, Failure> {
    if (monitor.interrupted)() {
        return Err(Failure::Other(Error::Interrupted));
    }
    let objects = Objects::opened(objects).map_err(Failure::Other)?;
    let bytes = objects.read(entry.blob).map_err(Failure::Other)?;
    let env = Envelope::parse(&bytes).map_err(|e| Failure::Corrupt(e.to_string()))?;
    let readers = env.readers();
    let exposed = !removed.is_empty() && may_read(&readers, removed);
    let actual: BTreeSet<KeyId> = readers.iter().flatten().copied().collect();
    let all_named = readers.iter().all(Option::is_some) && env.password_session_keys() == 0;
    if all_named && actual == *wanted && readers.len() == wanted.len() {
        return Ok(Checked::Unchanged { exposed });
    }
    let identity = identity.ok_or(Failure::NoIdentity)?;
    let unlocked = identity.unlock(&env).ok_or(Failure::CannotDecrypt)?;
    if checking_only {
        // Another entry failed: the change will not happen; only the decryption check matters.
        return Ok(Checked::Unchanged { exposed });
    }
    if all_named && actual.is_subset(wanted) && env.is_seipd_v1() {
        let missing = wanted.difference(&actual).copied().collect();
        return Ok(Checked::Rewrap {
            unlocked,
            missing,
            exposed,
        });
    }
    Ok(Checked::Reencrypt { unlocked, exposed })
}

/// Phase 2 for one entry: the new ciphertext, staged in the work tree, and framed as a blob and
/// sent to the pack writer.
fn rewrite_entry(
    entry: &Entry,
    check: Checked,
    objects: &Result<Objects>,
    recipients: &Recipients,
    monitor: &Monitor,
    (staging, pack): (&Staging, &std::sync::mpsc::SyncSender<NewBlob>),
) -> Result<Rewritten> {
    let done = |how, exposed| {
        Ok(Rewritten {
            name: entry.name.clone(),
            path: entry.path.clone(),
            how,
            exposed,
        })
    };
    if let Checked::Unchanged { exposed } = check {
        return done(How::Unchanged, exposed);
    }
    if (monitor.interrupted)() {
        return Err(Error::Interrupted);
    }
    let objects = Objects::opened(objects)?;
    let bytes = objects.read(entry.blob)?;
    let corrupt = |problem: CryptoError| Error::Entry {
        entry: entry.name.clone(),
        problem: problem.to_string(),
    };
    let env = Envelope::parse(&bytes).map_err(corrupt)?;
    let write = |ct: &[u8]| -> Result<BlobId> {
        staging.write(&entry.path, ct)?;
        let new = NewBlob::new(ct.to_vec());
        let blob = new.id();
        // The receiver goes away only when writing the pack failed: stop quietly.
        pack.send(new).map_err(|_| Error::Interrupted)?;
        Ok(blob)
    };
    match check {
        Checked::Unchanged { .. } => unreachable!("handled above"),
        Checked::Rewrap {
            unlocked,
            missing,
            exposed,
        } => {
            let ct = crypto::add_readers(&env, &unlocked, &recipients.only(&missing))
                .map_err(corrupt)?;
            done(How::Rewrapped(write(&ct)?), exposed)
        }
        Checked::Reencrypt { unlocked, exposed } => {
            let plain = crypto::decrypt(&env, &unlocked).map_err(corrupt)?;
            let ct = crypto::encrypt(&plain, recipients).map_err(corrupt)?;
            done(How::Reencrypted(write(&ct)?), exposed)
        }
    }
}
