//! Changes of content, the commands a pass user types every day: an entry written (`vault
//! insert`, `generate`, `edit`), removed (`rm`), renamed or copied (`mv`, `cp`). Each is one
//! [`Plan`] carried out by [`Snapshot::execute`] like a membership change: encrypted to the
//! recipients of the entry's nearest `.gpg-id` (vouched certificates from `.public-keys/`), one
//! signed commit with pass's own message plus vault's trailers, all or nothing.

use super::*;
use crate::secret::Secret;
use crate::snapshot::Snapshot;
use crate::store::{Entry, Layout};
use crate::text::escape;

impl Snapshot {
    /// The committed entry named `name` (`web/shop`), if there is one.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.layout.entries.iter().find(|e| e.name == name)
    }

    /// The entries named `name` or below folder `name/` (pass's `rm -r`, `mv` and `cp` of a
    /// folder), sorted.
    pub fn entries_under(&self, name: &str) -> Vec<&Entry> {
        let prefix = format!("{name}/");
        let mut found: Vec<&Entry> = self
            .layout
            .entries
            .iter()
            .filter(|e| name.is_empty() || e.name == name || e.name.starts_with(&prefix))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    /// Decrypts `entry` with the operator's key: its plaintext, in zeroizing memory.
    ///
    /// # Errors
    /// [`Error::Entry`] for an entry that cannot be read or is not OpenPGP;
    /// [`Error::CannotDecrypt`] when it is not encrypted to the operator.
    pub fn decrypt_entry(&self, entry: &Entry, identity: &mut Identity) -> Result<Secret> {
        let bad = |problem: String| Error::Entry {
            entry: escape(&entry.name).into_owned(),
            problem,
        };
        let bytes = self.repo.read(entry.blob)?;
        identity
            .open(&bytes)
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| Error::CannotDecrypt {
                identity: identity.fingerprint().to_string(),
                entries: vec![escape(&entry.name).into_owned()],
            })
    }

    /// Who reads an entry file at `path` (`web/shop.gpg`): its nearest `.gpg-id`'s recipients.
    pub fn readers_of(&self, path: &str) -> Option<&[Fingerprint]> {
        let gov = Layout::governing_in(&self.recipients, Layout::folder_of(path))?;
        self.recipients.get(&gov).map(Vec::as_slice)
    }

    /// Plans writing `plain` as entry `name` (pass's `insert`, `generate`, `edit`), with pass's
    /// commit `subject` and `Vault-Action: action`.
    ///
    /// # Errors
    /// [`Error::EntryExists`] when the entry exists and not `overwrite`; [`Error::NoRootGpgId`]
    /// when no `.gpg-id` governs it.
    pub fn plan_write(
        &self,
        name: &str,
        plain: Secret,
        (action, subject): (&'static str, String),
        overwrite: bool,
    ) -> Result<Plan> {
        if self.entry(name).is_some() && !overwrite {
            return Err(Error::EntryExists(escape(name).into_owned()));
        }
        // An existing entry keeps its file's name (`Web.GPG` is the entry `Web` too).
        let path = self
            .entry(name)
            .map(|e| e.path.clone())
            .unwrap_or_else(|| format!("{name}.gpg"));
        if self.readers_of(&path).is_none() {
            return Err(Error::NoRootGpgId);
        }
        Ok(Plan {
            subject,
            trailers: entry_trailers(action, &[name]),
            content: vec![(path, plain)],
            ..Plan::unchanged(action, self.recipients.clone(), self.roster.clone())
        })
    }

    /// Plans `vault rotate`: each entry written with its new content (a new first line, every
    /// other line kept), one commit with `Vault-Action: rotate` and the entries. A rotation is a
    /// content change: audit's rotation flags clear.
    pub fn plan_rotate(&self, rotated: Vec<(String, Secret)>) -> Plan {
        let names: Vec<&str> = rotated.iter().map(|(n, _)| n.as_str()).collect();
        Plan {
            subject: format!(
                "Rotate {}",
                crate::text::count(rotated.len(), "password", "passwords")
            ),
            body: format!(
                "New passwords for {} (changed at their services).",
                names
                    .iter()
                    .map(|n| escape(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            trailers: entry_trailers("rotate", &names),
            content: rotated
                .into_iter()
                .map(|(n, plain)| {
                    let path = self
                        .entry(&n)
                        .map(|e| e.path.clone())
                        .unwrap_or_else(|| format!("{n}.gpg"));
                    (path, plain)
                })
                .collect(),
            ..Plan::unchanged("rotate", self.recipients.clone(), self.roster.clone())
        }
    }

    /// Plans removing entry `name`, or, when `recursive`, every entry below folder `name/`
    /// (pass's `rm [-r]`). Returns the plan and the entries it removes.
    ///
    /// # Errors
    /// [`Error::NoSuchEntry`] when nothing matches; [`Error::IsAFolder`] for a folder without
    /// `recursive`.
    pub fn plan_rm(&self, name: &str, recursive: bool) -> Result<(Plan, Vec<String>)> {
        let found: Vec<&Entry> = match self.entry(name) {
            Some(e) => vec![e],
            None => {
                let under = self.entries_under(name);
                if under.is_empty() {
                    return Err(self.no_such_entry(name));
                }
                if !recursive {
                    return Err(Error::IsAFolder(escape(name).into_owned()));
                }
                under
            }
        };
        let names: Vec<String> = found.iter().map(|e| e.name.clone()).collect();
        let mut deletes: Vec<String> = found.iter().map(|e| e.path.clone()).collect();
        // As pass's `rm -r`: the folder goes whole, its own .gpg-id (and signature) with it, so
        // that an entry added there later is not encrypted to readers nobody sees any more.
        let mut recipients = self.recipients.clone();
        if recursive && self.entry(name).is_none() {
            let inside = |f: &String| f == name || f.starts_with(&format!("{name}/"));
            if let Some((from, _)) = self
                .layout
                .gpg_id_links
                .iter()
                .find(|(from, to)| inside(to) && !inside(from))
            {
                return Err(Error::Usage(format!(
                    "{} links to a .gpg-id inside {}: removing it would leave that link \
                     dangling. Replace the link with a file of its own first; nothing was changed",
                    escape(&crate::store::gpg_id_path(from)),
                    escape(name)
                )));
            }
            for folder in self.recipients.keys().filter(|f| inside(f)) {
                recipients.remove(folder);
                let gpg_id = crate::store::gpg_id_path(folder);
                let sig = format!("{gpg_id}.sig");
                if self.layout.signatures.contains_key(&sig) {
                    deletes.push(sig);
                }
                deletes.push(gpg_id);
            }
        }
        let plan = Plan {
            subject: format!("Remove {} from store.", escape(name)),
            trailers: entry_trailers("rm", &names.iter().map(String::as_str).collect::<Vec<_>>()),
            deletes,
            ..Plan::unchanged("rm", recipients, self.roster.clone())
        };
        Ok((plan, names))
    }

    /// The moves of pass's `mv`/`cp OLD NEW`: the name `from` gets (NEW resolved), and each
    /// entry at or below `from` and where it goes.
    /// As pass: NEW ending in `/`, or an existing folder, receives OLD under its own last name.
    ///
    /// # Errors
    /// [`Error::NoSuchEntry`]; [`Error::EntryExists`] for a destination that exists, unless
    /// `overwrite`; [`Error::InvalidName`] for a destination vault refuses.
    pub fn moves(
        &self,
        from: &str,
        to: &str,
        overwrite: bool,
    ) -> Result<(String, Vec<(&Entry, String)>)> {
        let sources = match self.entry(from) {
            Some(e) => vec![e],
            None => self.entries_under(from),
        };
        if sources.is_empty() {
            return Err(self.no_such_entry(from));
        }
        let into_folder = to.ends_with('/')
            || !self.entries_under(to.trim_end_matches('/')).is_empty() && self.entry(to).is_none();
        let base = to.trim_end_matches('/');
        let last = from.rsplit('/').next().unwrap_or(from);
        let target = if into_folder && !base.is_empty() {
            format!("{base}/{last}")
        } else if into_folder {
            last.to_string()
        } else {
            base.to_string()
        };
        let target = crate::store::parse_entry(&target)?;
        if target == from || target.starts_with(&format!("{from}/")) {
            return Err(Error::Usage(format!(
                "cannot move {} into itself",
                escape(from)
            )));
        }
        let mut out = Vec::new();
        for e in sources {
            let dest = match e.name.strip_prefix(from) {
                Some(rest) if !rest.is_empty() => format!("{target}{rest}"),
                _ => target.clone(),
            };
            let dest = crate::store::parse_entry(&dest)?;
            if dest == e.name {
                return Err(Error::EntryExists(escape(&dest).into_owned()));
            }
            if self.entry(&dest).is_some() && !overwrite {
                return Err(Error::EntryExists(escape(&dest).into_owned()));
            }
            out.push((e, dest));
        }
        // Two files named as one entry (`a.gpg` and `a.GPG`) would land on one destination.
        let mut dests: Vec<&String> = out.iter().map(|(_, d)| d).collect();
        dests.sort();
        if let Some(w) = dests.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Usage(format!(
                "two files would become {}: entries that differ only in the case of .gpg; \
                 rename one with git first",
                escape(w[0])
            )));
        }
        // A destination that is also a source would be written, then deleted with the sources.
        if let Some((_, dest)) = out
            .iter()
            .find(|(_, d)| out.iter().any(|(src, _)| src.name == *d))
        {
            return Err(Error::Usage(format!(
                "{} is both moved and written over by this move: move it elsewhere first",
                escape(dest)
            )));
        }
        Ok((target, out))
    }

    /// Plans pass's `mv` (`keep` false) or `cp` (`keep` true) of `moves` (see
    /// [`Snapshot::moves`]): `from` and `to` as typed, `target` what `from` is renamed to. An entry whose destination has the same readers keeps its
    /// ciphertext byte for byte; one whose readers differ is written from `plain` (its
    /// plaintext, which the caller decrypted), encrypted to the destination's recipients.
    ///
    /// # Panics
    /// If an entry whose readers change has no plaintext in `plain`.
    pub fn plan_move(
        &self,
        (from, to, target): (&str, &str, &str),
        moves: &[(&Entry, String)],
        mut plain: BTreeMap<String, Secret>,
        keep: bool,
    ) -> Plan {
        let (action, subject) = if keep {
            ("cp", format!("Copy {} to {}.", escape(from), escape(to)))
        } else {
            ("mv", format!("Rename {} to {}.", escape(from), escape(to)))
        };
        let mut plan = Plan {
            subject,
            // The resolved name: what `audit` follows a rename by (pass's subject keeps the
            // words typed).
            trailers: entry_trailers(action, &[from, target]),
            ..Plan::unchanged(action, self.recipients.clone(), self.roster.clone())
        };
        for (entry, dest) in moves {
            plan.moved.push((entry.name.clone(), dest.clone()));
            // Written over (--force): the existing file keeps its name (`b.GPG` is `b` too).
            let path = self
                .entry(dest)
                .map(|e| e.path.clone())
                .unwrap_or_else(|| format!("{dest}.gpg"));
            if self.needs_reencrypting(entry, &path) {
                let text = plain
                    .remove(&entry.name)
                    .expect("the caller decrypted every entry whose readers change");
                plan.content.push((path, text));
            } else {
                plan.copies.push((path, entry.blob));
            }
            if !keep {
                plan.deletes.push(entry.path.clone());
            }
        }
        plan
    }

    /// Whether `entry` moved to `path` must be encrypted anew: its new folder's readers are not
    /// its old folder's.
    pub fn needs_reencrypting(&self, entry: &Entry, path: &str) -> bool {
        let sorted = |r: Option<&[Fingerprint]>| {
            let mut r = r.map(<[Fingerprint]>::to_vec).unwrap_or_default();
            r.sort();
            r
        };
        sorted(self.readers_of(&entry.path)) != sorted(self.readers_of(path))
    }

    fn no_such_entry(&self, name: &str) -> Error {
        let nearest = self
            .layout
            .entries
            .iter()
            .map(|e| (strsim::damerau_levenshtein(&e.name, name), &e.name))
            .filter(|(d, n)| *d <= 2.max(n.len() / 4))
            .min()
            .map(|(_, n)| escape(n).into_owned());
        Error::NoSuchEntry {
            entry: escape(name).into_owned(),
            nearest,
        }
    }
}

/// `Vault-Action: action` and one `Vault-Entry` per entry name (escaped: a name cannot add a
/// line, let alone a trailer).
fn entry_trailers(action: &str, names: &[&str]) -> Vec<(String, String)> {
    let mut t = vec![("Vault-Action".to_string(), action.to_string())];
    t.extend(
        names
            .iter()
            .map(|n| ("Vault-Entry".to_string(), escape(n).into_owned())),
    );
    t
}
