//! The committed layout of a store: entries, the `.gpg-id` that governs each (symbolic links
//! followed as the kernel would in a checkout), and everything vault does not read, with why.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::git::{BlobId, FileKind, TreeFile};

/// An entry: `infra/hetzner/root` is the file `infra/hetzner/root.gpg`.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The entry name, without `.gpg`.
    pub name: String,
    /// The file path relative to the store.
    pub path: String,
    pub blob: BlobId,
    /// The folder whose `.gpg-id` governs it (`None`: no `.gpg-id` above it).
    pub governed_by: Option<Folder>,
}

/// A committed file vault does not read, and why. A membership change refuses to run when one
/// lies in a folder whose readers it changes: vault could not re-encrypt it, and it would keep
/// its old readers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The path as committed (not UTF-8 bytes shown as U+FFFD); escape it before showing it.
    pub path: String,
    /// Why, for people: "a symbolic link to /etc/passwd, outside the store", …
    pub why: String,
}

/// The committed layout of a store, classified.
#[derive(Debug, Default)]
pub struct Layout {
    pub entries: Vec<Entry>,
    /// Folder -> the blob pass reads as its `.gpg-id`: the file itself or, for a symbolic link
    /// inside the store, the regular `.gpg-id` it leads to.
    pub gpg_ids: BTreeMap<Folder, BlobId>,
    /// Folders whose `.gpg-id` is a symbolic link -> the folder whose regular `.gpg-id` it leads
    /// to. Both folders share one recipient file: changing one changes the other.
    pub gpg_id_links: BTreeMap<Folder, Folder>,
    /// Folders with a `.gpg-id` vault cannot read (a link out of the store or to nothing, a path
    /// that is not UTF-8 or not valid) -> why. They still govern their folder, as in pass.
    pub broken_gpg_ids: BTreeMap<Folder, String>,
    /// `.public-keys/<name>` files: name -> blob.
    pub public_keys: BTreeMap<String, BlobId>,
    pub members: Option<BlobId>,
    /// Entries and links vault cannot read: reported by audit, refused by changes near them.
    pub skipped: Vec<Skipped>,
    /// Symbolic links inside the store, which pass follows: link path -> the path it leads to.
    /// A linked entry is read through its target, which is itself an entry.
    pub links: BTreeMap<String, String>,
    /// Committed files named like vault's own temporaries (`.NAME….vault-tmp`): a plant (see
    /// docs/threat-model.md). Every change refuses while one is committed.
    pub temporaries: Vec<String>,
    /// Secrets in a form vault cannot read or re-encrypt, which someone may still read: age
    /// files and recipient lists (passage, a half-finished migration), git submodules (another
    /// store). Reported by audit and named by every membership change near them.
    pub foreign: Vec<Skipped>,
    /// `.gpg-id.sig` files (pass's signed recipients): path -> blob (through a link inside the
    /// store, its target's).
    pub signatures: BTreeMap<String, BlobId>,
}

/// The name suffix of vault's temporaries (`.NAME.XXXXXX.vault-tmp`, see `git::Staging`).
pub const TMP_SUFFIX: &str = ".vault-tmp";

/// Whether a file name is one vault gives its temporaries: hidden, ending in [`TMP_SUFFIX`].
pub fn is_temporary_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TMP_SUFFIX)
}

/// The entry name of an entry file path (`ops/dns.gpg` -> `ops/dns`): pass's `*.gpg`, matched
/// without regard to case as pass's `find -iname '*.gpg'` does. Boundary-safe on any string.
pub fn entry_name(path: &str) -> Option<&str> {
    let cut = path.len().checked_sub(4)?;
    let suffix = path.as_bytes().get(cut..)?;
    // The four bytes are ASCII, so `cut` is a character boundary.
    (cut > 0 && suffix.eq_ignore_ascii_case(b".gpg")).then(|| &path[..cut])
}

/// Whether vault may commit the file at `path`: entries (`*.gpg`), `.gpg-id`, `.gpg-id.sig`,
/// `.public-keys/*`, `.members.toml`, `.gitattributes` and `.gitignore`
/// (docs/store-format.md). Anything else in the work tree stays out of vault's commits.
pub fn is_store_file(path: &str) -> bool {
    let name = file_name(path);
    entry_name(path).is_some()
        || matches!(
            name,
            GPG_ID | ".gpg-id.sig" | ".gitattributes" | ".gitignore"
        )
        || path.starts_with(".public-keys/")
        || path == MEMBERS
}

/// Whether a file decides who can read the store: a `.gpg-id` or its `.gpg-id.sig`, a key in
/// `.public-keys/`, or `.members.toml` (what `vault verify` checks each commit for).
pub fn is_membership_file(path: &str) -> bool {
    matches!(file_name(path), GPG_ID | ".gpg-id.sig")
        || path == MEMBERS
        || path
            .strip_prefix(PUBLIC_KEYS)
            .is_some_and(|r| r.starts_with('/'))
}

fn folder_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map(|(_, n)| n).unwrap_or(path)
}

/// `folder` or its nearest parent (up to the root, `""`) for which `has` holds: pass's rule for
/// the `.gpg-id` that governs a folder.
fn nearest(folder: &str, has: impl Fn(&str) -> bool) -> Option<Folder> {
    let mut f = Some(folder);
    while let Some(cur) = f {
        if has(cur) {
            return Some(cur.to_string());
        }
        f = parent(cur);
    }
    None
}

/// Where a symbolic link leads, inside the committed tree.
enum Resolved {
    File(String),
    Folder(String),
}

/// At most this many links are followed for one path (Linux's own limit is 40).
const MAX_HOPS: usize = 40;

/// The committed tree as paths, for following links the way the kernel would in a checkout.
struct Tree<'a> {
    /// Path -> kind, link target, blob.
    kinds: BTreeMap<&'a str, (FileKind, Option<&'a [u8]>, BlobId)>,
    folders: BTreeSet<&'a str>,
}

/// The longest link target the kernel follows (PATH_MAX, 4096 with its NUL).
const MAX_TARGET: usize = 4095;

impl<'a> Tree<'a> {
    fn new(files: &'a [TreeFile]) -> Self {
        let mut kinds = BTreeMap::new();
        let mut folders = BTreeSet::from([""]);
        for f in files {
            kinds.insert(f.path.as_str(), (f.kind, f.link.as_deref(), f.blob));
            let mut p = f.path.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                folders.insert(parent);
                p = parent;
            }
        }
        Tree { kinds, folders }
    }

    /// The blob of a committed file.
    fn blob(&self, path: &str) -> Option<BlobId> {
        self.kinds.get(path).map(|(_, _, b)| *b)
    }

    /// Follows the symbolic link at `path` (and every link on the way) to a committed file or
    /// folder as the kernel would in a checkout, or says why it cannot: it leaves the store
    /// (absolute, too many `..`, into `.git`), leads to nothing (ENOENT, also for a missing
    /// folder on the way), passes through a file (ENOTDIR, also for a trailing `/`), loops, is
    /// longer than PATH_MAX, or is not UTF-8.
    fn resolve(&self, path: &str) -> std::result::Result<Resolved, String> {
        let target = |p: &str| -> std::result::Result<String, String> {
            let bytes = self
                .kinds
                .get(p)
                .and_then(|(_, t, _)| *t)
                .unwrap_or_default();
            if bytes.len() > MAX_TARGET {
                return Err("a symbolic link whose target is longer than PATH_MAX".into());
            }
            let t = std::str::from_utf8(bytes)
                .map_err(|_| "a symbolic link whose target is not UTF-8".to_string())?;
            if t.starts_with('/') {
                return Err(format!(
                    "a symbolic link to {}, outside the store",
                    crate::text::escape(t)
                ));
            }
            Ok(t.to_string())
        };
        let first = target(path)?;
        let mut done: Vec<String> = folder_of(path)
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        let mut rest: std::collections::VecDeque<String> =
            first.split('/').map(str::to_string).collect();
        let outside = || {
            format!(
                "a symbolic link to {}, outside the store",
                crate::text::escape(&first)
            )
        };
        let nothing = || {
            format!(
                "a symbolic link to {}, which does not exist in the store",
                crate::text::escape(&first)
            )
        };
        let mut hops = 1;
        while let Some(c) = rest.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop().ok_or_else(outside)?;
                    continue;
                }
                _ => done.push(c),
            }
            if done.iter().any(|c| c.eq_ignore_ascii_case(".git")) {
                return Err(outside());
            }
            let here = done.join("/");
            match self.kinds.get(here.as_str()) {
                Some((FileKind::Symlink, _, _)) => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err("a symbolic link that loops".into());
                    }
                    let next = target(&here)?;
                    done.pop();
                    for part in next.split('/').rev() {
                        rest.push_front(part.to_string());
                    }
                }
                // A file with anything after it, even `/` or `/.`: ENOTDIR.
                Some(_) if !rest.is_empty() => {
                    return Err(format!(
                        "a symbolic link to {}, which passes through a file",
                        crate::text::escape(&first)
                    ))
                }
                Some(_) => {}
                // A folder on the way must exist (`nothere/../x` is ENOENT for the kernel).
                None if !rest.is_empty() && !self.folders.contains(here.as_str()) => {
                    return Err(nothing())
                }
                None => {}
            }
        }
        let end = done.join("/");
        match self.kinds.get(end.as_str()) {
            Some((FileKind::Regular, _, _)) => Ok(Resolved::File(end)),
            Some(_) => Err(format!(
                "a symbolic link to {}, which is not a regular file",
                crate::text::escape(&first)
            )),
            None if self.folders.contains(end.as_str()) => Ok(Resolved::Folder(end)),
            None => Err(nothing()),
        }
    }
}

impl Layout {
    /// Classifies the files of a committed tree the way pass reads them: every `*.gpg` outside
    /// `.git`, `.extensions` and `.public-keys` is an entry; the nearest `.gpg-id` governs it,
    /// followed through symbolic links as pass follows them. Whatever vault does not read is
    /// recorded with the reason ([`Layout::skipped`], [`Layout::broken_gpg_ids`],
    /// [`Layout::temporaries`]), never dropped. Pure: takes any list of paths, never panics.
    pub fn new(files: Vec<TreeFile>) -> Layout {
        let tree = Tree::new(&files);
        let mut layout = Layout::default();
        let skip = |layout: &mut Layout, path: &str, why: String| {
            layout.skipped.push(Skipped {
                path: path.to_string(),
                why,
            })
        };
        for f in &files {
            let path = f.path.as_str();
            let name = file_name(path);
            let top = path.split('/').next().unwrap_or("");
            if top == PUBLIC_KEYS && path.matches('/').count() == 1 {
                if f.kind == FileKind::Regular && f.utf8 {
                    layout.public_keys.insert(name.to_string(), f.blob);
                }
                continue;
            }
            if top == ".git" || top == ".extensions" || top == PUBLIC_KEYS {
                continue;
            }
            let problem = if !f.utf8 {
                Some("its name is not UTF-8".to_string())
            } else {
                path_problem(path).map(|p| format!("its path is not valid ({p})"))
            };
            if name == GPG_ID {
                let folder = folder_of(path).to_string();
                let read = match (&problem, f.kind) {
                    (Some(p), _) => Err(p.clone()),
                    (None, FileKind::Regular) => Ok((f.blob, None)),
                    (None, FileKind::Symlink) => match tree.resolve(path) {
                        Ok(Resolved::File(t))
                            if file_name(&t) == GPG_ID
                                && !matches!(
                                    t.split('/').next(),
                                    Some(PUBLIC_KEYS | ".extensions")
                                ) =>
                        {
                            let blob = tree.blob(&t).unwrap_or(f.blob);
                            Ok((blob, Some(folder_of(&t).to_string())))
                        }
                        Ok(Resolved::File(t) | Resolved::Folder(t)) => Err(format!(
                            "a symbolic link to {}, which is not a folder's .gpg-id",
                            crate::text::escape(&t)
                        )),
                        Err(why) => Err(why),
                    },
                    (None, _) => Err("not a regular file".into()),
                };
                match read {
                    Ok((blob, link)) => {
                        layout.gpg_ids.insert(folder.clone(), blob);
                        if let Some(to) = link {
                            layout.links.insert(path.to_string(), gpg_id_path(&to));
                            layout.gpg_id_links.insert(folder, to);
                        }
                    }
                    Err(why) => {
                        layout.broken_gpg_ids.insert(folder, why);
                    }
                }
                continue;
            }
            if path == MEMBERS {
                layout.members = Some(f.blob);
                continue;
            }
            if name == ".gpg-id.sig" {
                match f.kind {
                    FileKind::Regular => {
                        layout.signatures.insert(path.to_string(), f.blob);
                    }
                    FileKind::Symlink => match tree.resolve(path) {
                        Ok(Resolved::File(t)) if file_name(&t) == ".gpg-id.sig" => {
                            if let Some(blob) = tree.blob(&t) {
                                layout.signatures.insert(path.to_string(), blob);
                            }
                            layout.links.insert(path.to_string(), t);
                        }
                        Ok(Resolved::File(t) | Resolved::Folder(t)) => skip(
                            &mut layout,
                            path,
                            format!(
                                "a symbolic link to {}, which is not a .gpg-id.sig",
                                crate::text::escape(&t)
                            ),
                        ),
                        Err(why) => skip(&mut layout, path, why),
                    },
                    _ => {}
                }
                continue;
            }
            if is_temporary_name(name) {
                layout.temporaries.push(path.to_string());
                continue;
            }
            let entry = entry_name(path);
            match (f.kind, problem) {
                (FileKind::Submodule, _) => layout.foreign.push(Skipped {
                    path: path.to_string(),
                    why:
                        "a git submodule (another repository, perhaps another store): vault \
                          cannot read or re-encrypt what it holds, and whoever it lists can read it"
                            .into(),
                }),
                (_, None) if name == ".age-recipients" => layout.foreign.push(Skipped {
                    path: path.to_string(),
                    why: "age recipients (passage): whoever it lists can read the .age files \
                          below it, which vault cannot re-encrypt"
                        .into(),
                }),
                (_, None) if path.ends_with(".age") => layout.foreign.push(Skipped {
                    path: path.to_string(),
                    why: "an age-encrypted file (passage): vault cannot read or re-encrypt it; \
                          whoever the .age-recipients above it lists can read it"
                        .into(),
                }),
                (_, Some(why)) if entry.is_some() => skip(&mut layout, path, why),
                (FileKind::Regular, None) => {
                    if let Some(name) = entry {
                        layout.entries.push(Entry {
                            name: name.to_string(),
                            path: path.to_string(),
                            blob: f.blob,
                            governed_by: None,
                        });
                    }
                }
                (FileKind::Symlink, _) => match tree.resolve(path) {
                    Ok(Resolved::File(t)) if entry.is_none() || entry_name(&t).is_some() => {
                        layout.links.insert(path.to_string(), t);
                    }
                    Ok(Resolved::Folder(t)) if entry.is_none() => {
                        layout.links.insert(path.to_string(), t);
                    }
                    Ok(Resolved::File(t) | Resolved::Folder(t)) => skip(
                        &mut layout,
                        path,
                        format!(
                            "a symbolic link to {}, which is not an entry",
                            crate::text::escape(&t)
                        ),
                    ),
                    Err(why) => skip(&mut layout, path, why),
                },
                (FileKind::Other, _) if entry.is_some() => {
                    skip(&mut layout, path, "not a regular file".into())
                }
                _ => {}
            }
        }
        let mut entries = std::mem::take(&mut layout.entries);
        for e in &mut entries {
            e.governed_by = layout.governing(folder_of(&e.path));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        layout.entries = entries;
        layout.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        layout.temporaries.sort();
        layout.foreign.sort_by(|a, b| a.path.cmp(&b.path));
        layout
    }

    /// The folder whose `.gpg-id` governs `folder`: its own, else the nearest parent's. A
    /// `.gpg-id` vault cannot read still governs (pass would use it, or fail).
    pub fn governing(&self, folder: &str) -> Option<Folder> {
        nearest(folder, |f| {
            self.gpg_ids.contains_key(f) || self.broken_gpg_ids.contains_key(f)
        })
    }

    /// The folder that would govern `folder` if `gpg_ids` (a set of folders with a `.gpg-id`)
    /// were the store's `.gpg-id` files.
    pub fn governing_in<V>(gpg_ids: &BTreeMap<Folder, V>, folder: &str) -> Option<Folder> {
        nearest(folder, |f| gpg_ids.contains_key(f))
    }

    /// The folders that share `folder`'s recipient file: `folder` itself, the folder whose
    /// `.gpg-id` it links to, and every folder whose `.gpg-id` links to the same file (pass
    /// reads one file for all of them). Sorted; `folder` alone when it has no link.
    pub fn sharing(&self, folder: &str) -> Vec<Folder> {
        let source = self
            .gpg_id_links
            .get(folder)
            .map(String::as_str)
            .unwrap_or(folder);
        let mut out: BTreeSet<Folder> = BTreeSet::from([folder.to_string(), source.to_string()]);
        out.extend(
            self.gpg_id_links
                .iter()
                .filter(|(_, to)| to.as_str() == source)
                .map(|(from, _)| from.clone()),
        );
        out.into_iter().collect()
    }

    /// The folder of an entry path.
    pub fn folder_of(path: &str) -> &str {
        folder_of(path)
    }
}
