//! Carrying out a plan: the checks that come first (signers, temporaries, what cannot be
//! re-encrypted), then for every affected entry phase 1 (read it and unlock its session key)
//! and at once phase 2 (re-encrypt or re-wrap, staged and packed), then the one commit. Nothing
//! is committed unless every entry passed both phases.

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
    /// one commit, signed by `identity`. On any error, nothing is changed (what was staged is
    /// removed). The phases, in order: the checks ([`Snapshot::refuse_unrewritable`],
    /// signers), the scope of the change ([`Snapshot::scope`]), the recipients of each folder
    /// ([`Snapshot::targets`]), the store's own files in memory ([`Snapshot::store_files`]) and
    /// that every path written is writable, both phases for each entry
    /// ([`Snapshot::rewrite_all`]: read and unlock, then re-wrap or re-encrypt, staged and
    /// packed), the `.gpg-id.sig` signatures ([`sign_all`]), the commit.
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
        let writes_readme = readme.is_some();
        let (mut files, to_sign) = self.store_files(&plan, &gpg_id_signers);
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
                .chain(to_sign.iter().map(|(p, ..)| p.as_str()))
                .chain(plan.copies.iter().map(|(p, _)| p.as_str()))
                .chain(plan.deletes.iter().map(String::as_str)),
        )?;
        // The `.gpg-id.sig` signatures are made once every entry was unlocked: a signing
        // prompt (pinentry, a card's touch) only for a change that can happen.
        let files = || -> Result<Vec<(String, Vec<u8>)>> {
            let mut files = files;
            files.extend(sign_all(to_sign)?);
            Ok(files)
        };
        let staging = self.repo.begin(plan.action)?;
        let work = Work {
            plan: &plan,
            entries: &scope.work,
            targets: &targets,
            identity,
            steps: &steps,
        };
        let ((rewritten, file_ids), new_packs) = self
            .rewrite_all(&work, files, &staging)
            .inspect_err(|_| self.repo.abandon(&staging))?;
        let nothing_to_do = rewritten.iter().all(|r| matches!(r.how, How::Unchanged));
        if plan.every_entry && plan.replaces.is_none() && nothing_to_do && !writes_readme {
            self.repo.discard_packs(&new_packs);
            self.repo.abandon(&staging);
            return Err(Error::NothingToRepair {
                not_reencrypted: scope.not_reencrypted,
            });
        }
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

    /// The store's own files the change writes, made in memory: each changed `.gpg-id`
    /// (comments and the comments of kept lines kept, LF line ends; a `.gpg-id` that is a
    /// symbolic link stays one, and the file it leads to is written), the new member's
    /// certificate, and `.members.toml`; and each `.gpg-id.sig` to re-sign (never left stale),
    /// with its signer and the text it signs, for [`sign_all`] once every entry was unlocked.
    fn store_files<'i>(
        &self,
        plan: &Plan,
        signers: &GpgIdSigners<'i>,
    ) -> (Vec<(String, Vec<u8>)>, Vec<ToSign<'i>>) {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut to_sign = Vec::new();
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
                to_sign.push((sig_path, *signer, text.clone().into_bytes()));
            }
            if !plan.links.contains_key(folder) {
                files.push((path, text.into_bytes()));
            }
        }
        files.extend(plan.key_writes.iter().cloned());
        files.push((MEMBERS.into(), plan.roster.render().into_bytes()));
        (files, to_sign)
    }

    /// Both phases, entry by entry: phase 1 ([`check_entry`]) reads an entry and unlocks its
    /// session key, phase 2 ([`rewrite_entry`]) at once re-wraps or re-encrypts it, stages the
    /// new file beside the old one and hashes its blob. With a key file every core does both
    /// ([`Phases::in_parallel`]); with gpg-agent, which does one private-key operation at a
    /// time, one thread keeps it busy while the other cores rewrite ([`Phases::in_order`]).
    /// This thread collects the blobs, then the store's own `files` (completed only once every
    /// entry passed both phases: the signatures; each distinct content once), for one pack,
    /// which joins the object database only when complete.
    ///
    /// Once any entry fails, no entry is rewritten any more and the others are only checked,
    /// so that the error names every entry the operator cannot read, as when phase 1 ran to the
    /// end before phase 2 began. Returns each entry's outcome, the blob of each of `files`, and
    /// the new pack's files. A change that stops here leaves no pack; the caller removes the
    /// staged files.
    ///
    /// # Errors
    /// The one error [`summarise_failures`] makes of every entry's phase 1 failure; otherwise
    /// the pack's error, then the first phase 2 error ([`Error::Entry`] for an entry whose data
    /// fails its integrity check, file system errors, [`Error::Interrupted`]), then `files`'s.
    fn rewrite_all(
        &self,
        work: &Work,
        files: impl FnOnce() -> Result<Vec<(String, Vec<u8>)>>,
        staging: &Staging,
    ) -> Result<(Rewrites, Vec<std::path::PathBuf>)> {
        let phases = Phases {
            work,
            staging,
            root: self.repo.root(),
            failed: AtomicBool::new(false),
            failures: Mutex::new(Vec::new()),
            rewrite_error: Mutex::new(None),
        };
        self.repo.write_pack(|sink| {
            let (results, sent) = std::thread::scope(|scope| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<NewBlob>(256);
                let workers = scope.spawn(|| match work.identity.filter(|i| i.is_serial()) {
                    Some(serial) => phases.in_order(serial, tx),
                    None => phases.in_parallel(tx),
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
            let failures = std::mem::take(&mut *lock(&phases.failures));
            if !failures.is_empty() {
                return Err(self.phase_one_error(failures, work.identity));
            }
            sent?;
            if let Some(e) = lock(&phases.rewrite_error).take() {
                return Err(e);
            }
            let results: Vec<Rewritten> = results
                .into_iter()
                .map(|r| r.expect("every entry was rewritten"))
                .collect();
            // Two files of a change may have the same content (two `.gpg-id` files left with
            // the same recipients): each object goes to the pack once.
            let files = files()?;
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
        })
    }

    /// The one error for phase 1's `failures` ([`summarise_failures`]), naming the members
    /// who can read each entry the operator cannot.
    fn phase_one_error(
        &self,
        failures: Vec<(String, Failure)>,
        identity: Option<&Identity>,
    ) -> Error {
        let member = |id: KeyId| {
            self.keys
                .values()
                .find(|k| k.all_key_ids().contains(&id))
                .map(|k| self.display_name(k.fingerprint()))
        };
        summarise_failures(failures, identity, &member)
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

/// A `.gpg-id.sig` to write: its path, who signs it, and the `.gpg-id` text it signs.
type ToSign<'i> = (String, &'i Identity, Vec<u8>);

/// Makes each detached `.gpg-id.sig` (binary, as pass's `gpg --detach-sign` writes it).
///
/// # Errors
/// [`Error::Identity`] if a signer cannot sign.
fn sign_all(to_sign: Vec<ToSign>) -> Result<Vec<(String, Vec<u8>)>> {
    to_sign
        .into_iter()
        .map(|(path, signer, text)| Ok((path, sign_as(signer, &text, false)?)))
        .collect()
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

/// What both phases work on: the plan, each entry with its target folder, the folders'
/// recipients, the operator who decrypts, and the progress counter.
struct Work<'w, 's> {
    plan: &'w Plan,
    entries: &'w [(&'s Entry, &'s Folder)],
    targets: &'w Targets<'s>,
    identity: Option<&'w Identity>,
    steps: &'w Steps<'w>,
}

/// Both phases of [`Snapshot::rewrite_all`] under way: what they work on, and how they stop.
struct Phases<'p, 'w, 's> {
    work: &'p Work<'w, 's>,
    staging: &'p Staging,
    root: &'p std::path::Path,
    /// Set by the first failure: no entry is rewritten after it.
    failed: AtomicBool,
    /// Every entry phase 1 could not prepare.
    failures: Mutex<Vec<(String, Failure)>>,
    /// The first error of phase 2.
    rewrite_error: Mutex<Option<Error>>,
}

impl Phases<'_, '_, '_> {
    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Phase 1 could not prepare `entry`.
    fn fail(&self, entry: &Entry, failure: Failure) {
        self.failed.store(true, Ordering::Relaxed);
        lock(&self.failures).push((entry.name.clone(), failure));
    }

    /// Phase 2 for one entry checked in phase 1; `None` once anything failed.
    fn rewrite(
        &self,
        (entry, folder): (&Entry, &Folder),
        check: Checked,
        pack: &std::sync::mpsc::SyncSender<NewBlob>,
    ) -> Option<Rewritten> {
        if self.failed() {
            return None; // the change will not happen
        }
        let recipients = &self.work.targets[folder].0;
        let rewritten = rewrite_entry(
            entry,
            check,
            recipients,
            self.work.steps.monitor,
            (self.staging, pack),
        );
        self.work.steps.tick();
        rewritten
            .map_err(|e| {
                self.failed.store(true, Ordering::Relaxed);
                lock(&self.rewrite_error).get_or_insert(e);
            })
            .ok()
    }

    /// Both phases on every core, each entry unlocked by the worker that rewrites it (a key
    /// file: each worker has its own copy of the secret keys).
    fn in_parallel(&self, pack: std::sync::mpsc::SyncSender<NewBlob>) -> Vec<Option<Rewritten>> {
        let work = self.work;
        work.entries
            .par_iter()
            .map_init(
                || {
                    (
                        Objects::open(self.root),
                        work.identity.cloned(),
                        pack.clone(),
                    )
                },
                |(objects, identity, pack), (entry, folder)| {
                    let check = check_entry(
                        entry,
                        objects,
                        identity.as_mut(),
                        (&work.targets[folder].1, &work.plan.removed_key_ids),
                        self.failed(),
                        work.steps.monitor,
                    );
                    work.steps.tick();
                    let check = check.map_err(|f| self.fail(entry, f)).ok()?;
                    self.rewrite((entry, folder), check, pack)
                },
            )
            .collect()
    }

    /// Both phases with an operator whose private-key operations are serial (gpg-agent): one
    /// thread reads the entries in order and has the operator unlock them, several requests
    /// in flight ([`Identity::unlock_in_order`]), while the other cores rewrite the entries
    /// already unlocked. The agent never waits for vault's work, nor vault's work for a
    /// phase 1 to end.
    fn in_order(
        &self,
        operator: &Identity,
        pack: std::sync::mpsc::SyncSender<NewBlob>,
    ) -> Vec<Option<Rewritten>> {
        let work = self.work;
        let removed = &work.plan.removed_key_ids[..];
        let (ready, checked) = std::sync::mpsc::sync_channel::<(usize, Checked)>(64);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let objects = Objects::open(self.root);
                let mut operator = operator.clone();
                let locked = work
                    .entries
                    .iter()
                    .enumerate()
                    .take_while(|(_, (entry, _))| {
                        let go = !(work.steps.monitor.interrupted)();
                        if !go {
                            self.fail(entry, Failure::Other(Error::Interrupted));
                        }
                        go
                    })
                    .filter_map(|(i, (entry, folder))| {
                        let looked = Objects::opened(&objects)
                            .and_then(|o| o.read(entry.blob))
                            .map_err(Failure::Other)
                            .and_then(|bytes| {
                                Ok(match look(&bytes, &work.targets[folder].1, removed)? {
                                    Looked::Locked(env) => Looked::Locked(env.into_owned()),
                                    Looked::Done(checked) => Looked::Done(checked),
                                })
                            });
                        match looked {
                            Ok(Looked::Locked(env)) => Some((i, env)),
                            Ok(Looked::Done(checked)) => {
                                work.steps.tick();
                                let _ = ready.send((i, checked));
                                None
                            }
                            Err(f) => {
                                work.steps.tick();
                                self.fail(entry, f);
                                None
                            }
                        }
                    });
                operator.unlock_in_order(locked, |i, env, unlocked| {
                    let (entry, folder) = work.entries[i];
                    let wanted = &work.targets[folder].1;
                    work.steps.tick();
                    match decide(env, unlocked, (wanted, removed), self.failed()) {
                        Ok(checked) => {
                            let _ = ready.send((i, checked));
                        }
                        Err(f) => self.fail(entry, f),
                    }
                });
                // Dropping `ready` ends the rewriting below.
            });
            let mut results: Vec<Option<Rewritten>> = work.entries.iter().map(|_| None).collect();
            let rewritten: Vec<(usize, Option<Rewritten>)> = checked
                .into_iter()
                .par_bridge()
                .map_with(pack, |pack, (i, check)| {
                    (i, self.rewrite(work.entries[i], check, pack))
                })
                .collect();
            for (i, r) in rewritten {
                results[i] = r;
            }
            results
        })
    }
}

/// The lock's value; no code panics while holding these locks.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("no panics hold this lock")
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
        env: Envelope<'static>,
        unlocked: crypto::Unlocked,
        missing: Vec<KeyId>,
        exposed: bool,
    },
    /// Someone loses access (or the message is not one to keep): fresh session key.
    Reencrypt {
        env: Envelope<'static>,
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

/// Phase 1 for one entry: decides what it needs and proves the operator can do it. Whether the
/// data of an entry to re-encrypt is intact (its integrity check) is proven in phase 2, when it
/// is decrypted, still before the commit point. Once any entry has failed (`checking_only`), it
/// only checks whether the operator can decrypt, so the error can list every such entry without
/// wasted work.
fn check_entry(
    entry: &Entry,
    objects: &Result<Objects>,
    identity: Option<&mut Identity>,
    (wanted, removed): (&BTreeSet<KeyId>, &[KeyId]),
    checking_only: bool,
    monitor: &Monitor,
) -> std::result::Result<Checked, Failure> {
    if (monitor.interrupted)() {
        return Err(Failure::Other(Error::Interrupted));
    }
    let objects = Objects::opened(objects).map_err(Failure::Other)?;
    let bytes = objects.read(entry.blob).map_err(Failure::Other)?;
    match look(&bytes, wanted, removed)? {
        Looked::Done(checked) => Ok(checked),
        Looked::Locked(env) => {
            let identity = identity.ok_or(Failure::NoIdentity)?;
            let unlocked = identity.unlock(&env);
            decide(env, unlocked, (wanted, removed), checking_only)
        }
    }
}

/// Phase 1's first half for one entry: its message, parsed; done if its readers are already
/// `wanted`, else to be unlocked.
enum Looked<'m> {
    Done(Checked),
    Locked(Envelope<'m>),
}

/// Parses an entry's ciphertext `bytes` and tells whether it has to be unlocked.
fn look<'m>(
    bytes: &'m [u8],
    wanted: &BTreeSet<KeyId>,
    removed: &[KeyId],
) -> std::result::Result<Looked<'m>, Failure> {
    let env = Envelope::parse(bytes).map_err(|e| Failure::Corrupt(e.to_string()))?;
    if readers_are(&env, wanted) {
        let exposed = !removed.is_empty() && may_read(&env.readers(), removed);
        return Ok(Looked::Done(Checked::Unchanged { exposed }));
    }
    Ok(Looked::Locked(env))
}

/// Phase 1's second half for one entry whose readers must change, given what unlocking its
/// session key gave (`None`: the operator cannot). The message goes on to phase 2, which does
/// not read the entry again.
fn decide(
    env: Envelope,
    unlocked: Option<crypto::Unlocked>,
    (wanted, removed): (&BTreeSet<KeyId>, &[KeyId]),
    checking_only: bool,
) -> std::result::Result<Checked, Failure> {
    let readers = env.readers();
    let exposed = !removed.is_empty() && may_read(&readers, removed);
    let actual: BTreeSet<KeyId> = readers.iter().flatten().copied().collect();
    let all_named = readers.iter().all(Option::is_some) && env.password_session_keys() == 0;
    let unlocked = unlocked.ok_or_else(|| Failure::CannotDecrypt(readers.clone()))?;
    if checking_only {
        // Another entry failed: the change will not happen; only the decryption check matters.
        return Ok(Checked::Unchanged { exposed });
    }
    if all_named && actual.is_subset(wanted) && env.is_seipd_v1() {
        let missing = wanted.difference(&actual).copied().collect();
        return Ok(Checked::Rewrap {
            env: env.into_owned(),
            unlocked,
            missing,
            exposed,
        });
    }
    Ok(Checked::Reencrypt {
        env: env.into_owned(),
        unlocked,
        exposed,
    })
}

/// Phase 2 for one entry: the new ciphertext, staged in the work tree, and framed as a blob and
/// sent to the pack writer.
fn rewrite_entry(
    entry: &Entry,
    check: Checked,
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
    let corrupt = |problem: CryptoError| Error::Entry {
        entry: entry.name.clone(),
        problem: problem.to_string(),
    };
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
            env,
            unlocked,
            missing,
            exposed,
        } => {
            let ct = crypto::add_readers(&env, &unlocked, &recipients.only(&missing))
                .map_err(corrupt)?;
            done(How::Rewrapped(write(&ct)?), exposed)
        }
        Checked::Reencrypt {
            env,
            unlocked,
            exposed,
        } => {
            let plain = crypto::decrypt(&env, &unlocked).map_err(corrupt)?;
            let ct = crypto::encrypt(&plain, recipients).map_err(corrupt)?;
            done(How::Reencrypted(write(&ct)?), exposed)
        }
    }
}
