//! Carrying out a plan: the checks that come first (signers, temporaries, what cannot be
//! re-encrypted), phase 1 (read and unlock every affected entry, writing nothing), phase 2
//! (re-encrypt or re-wrap, staged and packed), then the one commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use super::failures::{summarise_failures, Failure};
use super::signers::GpgIdSigners;
use super::*;
use crate::crypto::{self, CryptoError, Envelope, Identity, KeyId, Recipients};
use crate::error::{Error, Result};
use crate::git::{BlobId, Change, NewBlob, Objects, Staging};
use crate::snapshot::*;
use crate::store::{
    gpg_id_path, render_gpg_id, render_gpg_id_keeping, Entry, Folder, Layout, MEMBERS, README,
};

impl Snapshot {
    /// Carries out a plan: re-encrypts what must change (decrypting with `identity`), then makes
    /// one commit, signed by `identity`. On any error, nothing is changed. The phases, in order:
    /// the checks ([`Snapshot::refuse_unrewritable`], signers), the scope of the change
    /// ([`Snapshot::scope`]), the recipients of each folder ([`Snapshot::targets`]), phase 1
    /// ([`Snapshot::unlock_all`]: read and unlock, writing nothing), the store's own files, phase
    /// 2 ([`Snapshot::rewrite_all`]: re-wrap or re-encrypt, staged and packed), the commit.
    ///
    /// # Errors
    /// [`Error::MemberKey`] if a recipient's key cannot be encrypted to; [`Error::NoIdentity`] if
    /// there is no operator key; [`Error::Identity`] if it cannot sign; [`Error::CannotDecrypt`]
    /// listing every entry the operator cannot read; [`Error::Entry`] for an unreadable entry;
    /// [`Error::Temporaries`] and [`Error::Unreadable`] for what vault cannot rewrite;
    /// [`Error::Interrupted`]; git errors.
    pub fn execute(
        &self,
        plan: Plan,
        identity: Option<&Identity>,
        monitor: &Monitor,
    ) -> Result<Outcome> {
        let operator = signing_operator(identity)?;
        self.refuse_unrewritable(&plan)?;
        let gpg_id_signers = self.gpg_id_signers(&plan, operator)?;
        let scope = self.scope(&plan);
        let content_folders = content_folders(&plan)?;
        let targets = self.targets(
            &plan,
            scope
                .work
                .iter()
                .map(|(_, f)| *f)
                .chain(content_folders.iter().copied()),
        )?;
        let steps = Steps {
            done: AtomicUsize::new(0),
            total: 2 * scope.work.len(),
            monitor,
        };
        let checked = self.unlock_all(&plan, &scope.work, &targets, identity, &steps)?;
        let nothing_to_do = checked
            .iter()
            .all(|c| matches!(c, Checked::Unchanged { .. }));
        // Whoever this change makes an outsider (a member leaving, a key compromised): the
        // entries audit will list to rotate for them, computed once for the change's own list
        // and for the README.
        let was: BTreeSet<String> = crate::audit::former_ids(&self.roster)
            .into_values()
            .collect();
        let newly: BTreeSet<String> = crate::audit::former_ids(&plan.roster)
            .into_values()
            .filter(|n| !was.contains(n))
            .collect();
        let current_readme = self.readme_bytes()?;
        let readme_kept = plan.create_readme
            || current_readme
                .as_deref()
                .is_some_and(crate::readme::is_generated);
        let rotation = match !newly.is_empty() || readme_kept {
            true => Some(crate::audit::rotation(self, &plan.roster)?),
            false => None,
        };
        let to_rotate: Option<Vec<String>> = (!newly.is_empty()).then(|| {
            rotation
                .iter()
                .flatten()
                .filter(|(_, who)| who.iter().any(|w| newly.contains(w)))
                .map(|(name, _)| name.clone())
                .collect()
        });
        let readme = match (rotation, readme_kept) {
            (Some(rotation), true) => {
                self.readme_after(&plan, current_readme.as_deref(), rotation)?
            }
            _ => None,
        };
        if plan.every_entry && plan.replaces.is_none() && nothing_to_do && readme.is_none() {
            return Err(Error::NothingToRepair {
                not_reencrypted: scope.not_reencrypted,
            });
        }
        let mut files = self.store_files(&plan, &gpg_id_signers)?;
        files.extend(readme.map(|text| (README.to_string(), text)));
        for ((path, plain), folder) in plan.content.iter().zip(&content_folders) {
            let ct = crypto::encrypt(plain, &targets[folder].0).map_err(|e| Error::Entry {
                entry: crate::text::escape(path).into_owned(),
                problem: e.to_string(),
            })?;
            files.push((path.clone(), ct));
        }
        self.repo.check_writable(
            scope
                .work
                .iter()
                .map(|(e, _)| e.path.as_str())
                .chain(files.iter().map(|(p, _)| p.as_str()))
                .chain(plan.copies.iter().map(|(p, _)| p.as_str()))
                .chain(plan.deletes.iter().map(String::as_str)),
        )?;
        let staging = self.repo.begin(plan.action)?;
        let ((rewritten, file_ids), new_packs) = self
            .rewrite_all(&scope.work, checked, &targets, &files, &staging, &steps)
            .inspect_err(|_| self.repo.abandon(&staging))?;
        self.commit_change(
            &plan,
            (scope, to_rotate),
            (rewritten, file_ids),
            &staging,
            operator,
            monitor,
        )
        .inspect_err(|e| {
            // Before the commit point nothing happened: remove what this run added.
            if !matches!(e, Error::Unfinished { .. }) {
                self.repo.discard_packs(&new_packs);
                self.repo.abandon(&staging);
            }
        })
    }

    /// The entries `plan` would rewrite because their readers (PKESKs) are not exactly their
    /// target folder's recipients, found from the ciphertexts alone (no secret key needed): for
    /// [`Snapshot::plan_repair`], whether there is anything to repair. Unreadable entries count
    /// (repairing names them). Also returns what the plan cannot re-encrypt at all, one
    /// sentence each (see [`Outcome::not_reencrypted`]).
    ///
    /// # Errors
    /// As [`Snapshot::execute`]'s recipient checks; git errors.
    pub fn unrepaired(&self, plan: &Plan) -> Result<(Vec<String>, Vec<String>)> {
        let scope = self.scope(plan);
        let targets = self.targets(plan, scope.work.iter().map(|(_, f)| *f))?;
        let root = self.repo.root();
        let wrong: Vec<Option<String>> = scope
            .work
            .par_iter()
            .map_init(
                || Objects::open(root),
                |objects, (entry, folder)| {
                    let right = Objects::opened(objects)
                        .and_then(|o| o.read(entry.blob))
                        .ok()
                        .and_then(|bytes| {
                            let env = Envelope::parse(&bytes).ok()?;
                            Some(readers_are(&env, &targets[folder].1))
                        })
                        .unwrap_or(false);
                    (!right).then(|| entry.name.clone())
                },
            )
            .collect();
        Ok((wrong.into_iter().flatten().collect(), scope.not_reencrypted))
    }

    /// The store's `README.md` as the change leaves it, for a store whose README vault keeps (or
    /// a plan that creates it), when its text differs from `current` (the committed one): the
    /// plan's members and recipients, and
    /// `rotate`, the entries to rotate once the plan's former members are former
    /// ([`crate::audit::rotation`]). None: nothing to write.
    fn readme_after(
        &self,
        plan: &Plan,
        current: Option<&[u8]>,
        mut rotate: BTreeMap<String, Vec<String>>,
    ) -> Result<Option<Vec<u8>>> {
        // The entries after the change: written ones in, deleted ones out. Audit's rotation rule
        // after the commit: an entry the change writes anew (new content, or a new name) has no
        // version a former member could read; every other entry keeps its marks.
        let name_of = |path: &str| crate::store::entry_name(path).unwrap_or(path).to_string();
        let written: BTreeSet<String> = plan
            .content
            .iter()
            .map(|(p, _)| name_of(p))
            .chain(plan.copies.iter().map(|(p, _)| name_of(p)))
            .collect();
        let deleted: BTreeSet<String> = plan.deletes.iter().map(|p| name_of(p)).collect();
        let names: Vec<String> = self
            .layout
            .entries
            .iter()
            .map(|e| e.name.clone())
            .filter(|n| !deleted.contains(n) && !written.contains(n))
            .chain(written.iter().cloned())
            .collect();
        // A renamed or copied entry keeps its password: what is to rotate goes along.
        let carried: Vec<(String, Vec<String>)> = plan
            .moved
            .iter()
            .filter_map(|(from, to)| rotate.get(from).map(|who| (to.clone(), who.clone())))
            .collect();
        rotate.retain(|name, _| !written.contains(name) && !deleted.contains(name));
        rotate.extend(carried);
        let keys = |f: Fingerprint| {
            plan.added
                .as_ref()
                .filter(|k| k.fingerprint() == f)
                .or(self.keys.get(&f))
        };
        let view = crate::readme::View::of(
            (&names, crate::readme::unreadable(&self.layout)),
            &plan.recipients,
            &plan.roster,
            &keys,
            &rotate,
        );
        let text = crate::readme::render(&view).into_bytes();
        Ok((current != Some(text.as_slice())).then_some(text))
    }

    /// Checks, writing nothing, that `plan`'s new content can be encrypted: a `.gpg-id`
    /// governs each entry and each of its recipients has a usable certificate. For `vault
    /// rotate`, before anyone changes a password at a service.
    ///
    /// # Errors
    /// As [`Snapshot::execute`]'s recipient checks.
    pub fn check_content(&self, plan: &Plan) -> Result<()> {
        self.refuse_unrewritable(plan)?;
        let folders = content_folders(plan)?;
        self.targets(plan, folders.iter().copied()).map(|_| ())
    }

    /// The entries whose ciphertext someone holding one of the keys `ids` may read now (a PKESK
    /// addressed to one of them, or a hidden recipient), from the packets alone (no secret key
    /// needed). An entry whose packets cannot be read counts.
    pub fn readable_by(&self, ids: &[KeyId]) -> Vec<String> {
        let root = self.repo.root();
        let readable: Vec<Option<String>> = self
            .layout
            .entries
            .par_iter()
            .map_init(
                || Objects::open(root),
                |objects, entry| {
                    let exposed = Objects::opened(objects)
                        .and_then(|o| o.read(entry.blob))
                        .ok()
                        .and_then(|b| Envelope::parse(&b).ok().map(|env| env.readers()))
                        .is_none_or(|readers| may_read(&readers, ids));
                    exposed.then(|| entry.name.clone())
                },
            )
            .collect();
        readable.into_iter().flatten().collect()
    }

    /// Refuses a change that would leave something it cannot rewrite with its old readers:
    /// committed look-alikes of vault's temporaries anywhere, and files vault cannot read (a
    /// symbolic link out of the store, a name that is not UTF-8) in a folder whose readers
    /// change.
    fn refuse_unrewritable(&self, plan: &Plan) -> Result<()> {
        if !self.layout.temporaries.is_empty() {
            return Err(Error::Temporaries(escaped(&self.layout.temporaries)));
        }
        for skipped in &self.layout.skipped {
            let governed = Layout::governing_in(&plan.recipients, Layout::folder_of(&skipped.path));
            if governed.is_some_and(|g| plan.rereads(&g)) {
                return Err(Error::Unreadable {
                    path: crate::text::escape(&skipped.path).into_owned(),
                    problem: format!(
                        "{}: vault cannot re-encrypt it, and it would keep its old readers",
                        skipped.why
                    ),
                });
            }
        }
        Ok(())
    }

    /// Which entries the change rewrites: those a changed `.gpg-id` governs (or whose governing
    /// `.gpg-id` the plan changes), and, when someone loses access, any other entry they can
    /// actually read (from its PKESKs): clients that ignore a sub-folder's `.gpg-id` (ripasso
    /// saving an entry, older gopass inserting one) encrypt to other readers than `.gpg-id`
    /// says. What cannot be rewritten is named: foreign content (age files, submodules) in the
    /// changed folders, or anywhere when someone loses access, and readable entries no
    /// `.gpg-id` governs.
    fn scope<'s>(&'s self, plan: &'s Plan) -> Scope<'s> {
        let mut work: Vec<(&Entry, &Folder)> = Vec::new();
        let mut elsewhere: Vec<(&Entry, Option<&Folder>)> = Vec::new();
        let deleted: BTreeSet<&str> = plan.deletes.iter().map(String::as_str).collect();
        for e in &self.layout.entries {
            if deleted.contains(e.path.as_str()) {
                continue; // removed by the change (`vault rm`, the source of `vault mv`)
            }
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
            if plan.every_entry || e.governed_by.as_ref() != Some(gov) || plan.rereads(gov) {
                work.push((e, gov));
            } else {
                elsewhere.push((e, Some(gov)));
            }
        }
        let mut not_reencrypted: Vec<String> = self
            .layout
            .foreign
            .iter()
            .filter(|f| {
                !plan.removed_key_ids.is_empty()
                    || Layout::governing_in(&plan.recipients, Layout::folder_of(&f.path))
                        .is_some_and(|g| plan.rereads(&g))
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
                            "{}: no .gpg-id governs it, so vault cannot tell whom to re-encrypt \
                             it to; the member can still read it",
                            crate::text::escape(&entry.name)
                        ))
                    }
                }
            }
        }
        Scope {
            work,
            outside,
            not_reencrypted,
        }
    }

    /// The recipients of every folder the work goes to: each member's validated certificate
    /// (the newcomer's from the plan), and their encryption key ids.
    ///
    /// # Errors
    /// [`Error::MissingKey`] for a recipient without a certificate; [`Error::MemberKey`] for
    /// one that cannot be encrypted to (expired, revoked, no encryption subkey).
    fn targets<'s>(
        &'s self,
        plan: &'s Plan,
        folders: impl IntoIterator<Item = &'s Folder>,
    ) -> Result<Targets<'s>> {
        let mut targets = Targets::new();
        for folder in folders {
            if targets.contains_key(folder) {
                continue;
            }
            let mut members = Vec::new();
            for fpr in &plan.recipients[folder] {
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
                        renewable: key
                            .renewable_subkeys()
                            .iter()
                            .map(|f| f.to_string())
                            .collect(),
                    });
                }
                members.push(key);
            }
            let recipients = Recipients::new(&members);
            let ids = recipients.key_ids().into_iter().collect();
            targets.insert(folder, (recipients, ids));
        }
        Ok(targets)
    }

    /// Phase 1, in parallel, writes nothing: reads every entry of `work` and unlocks its session
    /// key, so that an entry the operator cannot read (or a malformed one) stops the change
    /// before anything is written, with every such entry named. Whether the data of an entry
    /// to re-encrypt is intact (its integrity check) is proven in phase 2, when it is
    /// decrypted, still before the commit point: a tampered entry stops the change there.
    ///
    /// # Errors
    /// The one error [`summarise_failures`] makes of every entry's failure.
    fn unlock_all(
        &self,
        plan: &Plan,
        work: &[(&Entry, &Folder)],
        targets: &Targets,
        identity: Option<&Identity>,
        steps: &Steps,
    ) -> Result<Vec<Checked>> {
        let failed = AtomicBool::new(false);
        let failures: Mutex<Vec<(String, Failure)>> = Mutex::new(Vec::new());
        let root = self.repo.root();
        let checked: Vec<Option<Checked>> = work
            .par_iter()
            .map_init(
                || (Objects::open(root), identity.cloned()),
                |(objects, identity), (entry, folder)| {
                    let result = check_entry(
                        entry,
                        objects,
                        identity.as_mut(),
                        &targets[folder].1,
                        &plan.removed_key_ids,
                        failed.load(Ordering::Relaxed),
                        steps.monitor,
                    );
                    steps.tick();
                    result
                        .map_err(|f| {
                            failed.store(true, Ordering::Relaxed);
                            failures
                                .lock()
                                .expect("no panics hold this lock")
                                .push((entry.name.clone(), f));
                        })
                        .ok()
                },
            )
            .collect();
        let failures = failures.into_inner().expect("no panics hold this lock");
        if !failures.is_empty() {
            let member = |id: KeyId| {
                self.keys
                    .values()
                    .find(|k| k.all_key_ids().contains(&id))
                    .map(|k| self.display_name(k.fingerprint()))
            };
            return Err(summarise_failures(failures, identity, &member));
        }
        Ok(checked
            .into_iter()
            .map(|c| c.expect("phase 1 succeeded for every entry"))
            .collect())
    }

    /// The store's own files the change writes, made before anything is written: each changed
    /// `.gpg-id` (comments and the comments of kept lines kept, LF line ends; a `.gpg-id` that is
    /// a symbolic link stays one, and the file it leads to is written), its `.gpg-id.sig`
    /// re-signed (never left stale), the new member's certificate, and `.members.toml`.
    fn store_files(&self, plan: &Plan, signers: &GpgIdSigners) -> Result<Vec<(String, Vec<u8>)>> {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for folder in &plan.changed {
            let text = match self.gpg_id_texts.get(folder) {
                Some((old, resolved)) => {
                    render_gpg_id_keeping(old, resolved, &plan.recipients[folder])
                }
                None => render_gpg_id(&plan.recipients[folder]),
            };
            let path = gpg_id_path(folder);
            let sig_path = format!("{path}.sig");
            if let Some(signer) = signers.get(&sig_path) {
                let sig = sign_as(signer, text.as_bytes(), false)?;
                files.push((sig_path, sig));
            }
            if !plan.links.contains_key(folder) {
                files.push((path, text.into_bytes()));
            }
        }
        files.extend(plan.key_writes.iter().cloned());
        files.push((MEMBERS.into(), plan.roster.render().into_bytes()));
        Ok(files)
    }

    /// Phase 2 rewrites, with the session keys unlocked in phase 1. Workers stage each new file
    /// beside the old one and hash its blob; this thread collects the blobs, and the store's own
    /// `files` (each distinct content once), for one pack, which joins the object database only
    /// when complete. Returns each entry's outcome, the blob of each of `files`, and the new
    /// pack's files. A change that stops here leaves no pack; the caller removes the staged
    /// files.
    fn rewrite_all(
        &self,
        work: &[(&Entry, &Folder)],
        checked: Vec<Checked>,
        targets: &Targets,
        files: &[(String, Vec<u8>)],
        staging: &Staging,
        steps: &Steps,
    ) -> Result<(Rewrites, Vec<std::path::PathBuf>)> {
        let root = self.repo.root();
        self.repo.write_pack(|sink| {
            let (results, sent) = std::thread::scope(|scope| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<NewBlob>(256);
                let workers = scope.spawn(|| {
                    let tx = tx;
                    work.par_iter()
                        .zip(checked)
                        .map_init(
                            || (Objects::open(root), tx.clone()),
                            |(objects, tx), ((entry, folder), check)| {
                                let r = rewrite_entry(
                                    entry,
                                    check,
                                    objects,
                                    &targets[folder].0,
                                    steps.monitor,
                                    (staging, tx),
                                );
                                steps.tick();
                                r
                            },
                        )
                        .collect::<Vec<Result<Rewritten>>>()
                });
                let mut sent: Result<()> = Ok(());
                for blob in rx.iter() {
                    if let Err(e) = sink(blob) {
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
            // Two files of a change may have the same content (two `.gpg-id` files left with
            // the same recipients): each object goes to the pack once.
            let mut ids = Vec::new();
            let mut sent = BTreeSet::new();
            for (path, bytes) in files {
                let blob = NewBlob::new(bytes.to_vec());
                ids.push((path.clone(), blob.id()));
                if sent.insert(bytes) {
                    sink(blob)?;
                }
            }
            Ok((results, ids))
        })
    }

    /// The commit: every rewritten entry and store file, the key files deleted, the plan's
    /// message with its trailers (and `Vault-Reencrypted`), signed by the operator; the commit
    /// point is inside ([`crate::git::Repo::commit`]).
    fn commit_change(
        &self,
        plan: &Plan,
        (scope, to_rotate): (Scope, Option<Vec<String>>),
        (rewritten, file_ids): Rewrites,
        staging: &Staging,
        operator: &Identity,
        monitor: &Monitor,
    ) -> Result<Outcome> {
        let mut change = Change {
            writes: Vec::new(),
            deletes: plan.deletes.clone(),
            message: String::new(),
            action: plan.action.to_string(),
            replaces: plan.replaces,
        };
        let (mut rewrapped, mut reencrypted, mut unchanged) = (0, 0, 0);
        let mut exposed = scope.outside;
        for r in rewritten {
            if r.exposed {
                exposed.push(r.name);
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
        if let Some(list) = to_rotate {
            // The same list audit shows for whoever this change made an outsider.
            exposed = list;
        }
        exposed.sort();
        change.writes.extend(file_ids);
        change.writes.extend(plan.copies.iter().cloned());
        let mut trailers = plan.trailers.clone();
        trailers.push((
            "Vault-Reencrypted".into(),
            (rewrapped + reencrypted).to_string(),
        ));
        change.message = commit_message(&plan.subject, &plan.body, &trailers);
        let sign = |data: &[u8]| sign_as(operator, data, true);
        let commit = self.repo.commit(
            &change,
            false,
            Some(&sign),
            Some(staging),
            monitor.interrupted,
        )?;
        Ok(Outcome {
            commit,
            rewrapped,
            reencrypted,
            unchanged,
            exposed,
            changed_gpg_ids: plan.changed_gpg_ids(),
            not_reencrypted: scope.not_reencrypted,
        })
    }
}

/// The folder whose recipients each entry written with new content goes to: its nearest
/// `.gpg-id`'s, as pass reads it.
///
/// # Errors
/// [`Error::NoRootGpgId`] for an entry no `.gpg-id` governs.
fn content_folders(plan: &Plan) -> Result<Vec<&Folder>> {
    plan.content
        .iter()
        .map(|(path, _)| {
            Layout::governing_in(&plan.recipients, Layout::folder_of(path))
                .and_then(|g| plan.recipients.get_key_value(&g))
                .map(|(f, _)| f)
                .ok_or(Error::NoRootGpgId)
        })
        .collect()
}

/// The operator, who signs every commit vault makes.
///
/// # Errors
/// [`Error::NoIdentity`] without one; [`Error::Identity`] if its key cannot sign.
fn signing_operator(identity: Option<&Identity>) -> Result<&Identity> {
    let operator = identity.ok_or(Error::NoIdentity)?;
    if !operator.can_sign() {
        return Err(Error::Identity {
            file: operator.fingerprint().to_string(),
            problem: "it has no usable signing key, and vault signs every commit it makes".into(),
        });
    }
    Ok(operator)
}

/// The entries a change rewrites, and what it cannot rewrite (see [`Snapshot::scope`]).
struct Scope<'s> {
    /// Each entry to rewrite, with the folder whose (new) recipients it gets.
    work: Vec<(&'s Entry, &'s Folder)>,
    /// Entries the member losing access can read that no `.gpg-id` governs: reported, kept.
    outside: Vec<String>,
    /// What the change cannot re-encrypt, one sentence each for people.
    not_reencrypted: Vec<String>,
}

/// Each target folder's recipients, and their encryption key ids.
type Targets<'s> = BTreeMap<&'s Folder, (Recipients<'s>, BTreeSet<KeyId>)>;

/// Phase 2's outcome: each entry's, and each store file's path and blob.
type Rewrites = (Vec<Rewritten>, Vec<(String, BlobId)>);

/// The steps of both phases (two per entry), counted for the progress callback.
struct Steps<'m> {
    done: AtomicUsize,
    total: usize,
    monitor: &'m Monitor<'m>,
}

impl Steps<'_> {
    fn tick(&self) {
        (self.monitor.progress)(self.done.fetch_add(1, Ordering::Relaxed) + 1, self.total);
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

/// Whether a message is encrypted to exactly the keys `wanted`: one PKESK each, every
/// recipient named (no `--throw-keyids`), no password (SKESK) besides.
fn readers_are(env: &Envelope, wanted: &BTreeSet<KeyId>) -> bool {
    let readers = env.readers();
    let actual: BTreeSet<KeyId> = readers.iter().flatten().copied().collect();
    let all_named = readers.iter().all(Option::is_some) && env.password_session_keys() == 0;
    all_named && actual == *wanted && readers.len() == wanted.len()
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
    if readers_are(&env, wanted) {
        return Ok(Checked::Unchanged { exposed });
    }
    let identity = identity.ok_or(Failure::NoIdentity)?;
    let unlocked = identity
        .unlock(&env)
        .ok_or_else(|| Failure::CannotDecrypt(readers.clone()))?;
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
