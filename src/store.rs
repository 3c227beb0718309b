//! The pass layout: which files are entries, which `.gpg-id` governs each entry, what a `.gpg-id`
//! says, and the names people type. Pure logic over a list of committed files; no I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::crypto::{Fingerprint, KeyId};
use crate::error::{Error, Result};
use crate::git::{BlobId, FileKind, TreeFile};
pub use crate::ids::MemberName;

pub const GPG_ID: &str = ".gpg-id";
pub const PUBLIC_KEYS: &str = ".public-keys";
pub const MEMBERS: &str = ".members.toml";

/// A folder of the store, relative to its root: `""` for the root, else `"ops"`, `"ops/dns"`.
pub type Folder = String;

/// How a folder is shown to people: `/` for the root, `ops/` otherwise, escaped
/// ([`crate::text::escape`]: folder names come from the tree, and anyone can commit one).
pub fn show_folder(f: &str) -> String {
    if f.is_empty() {
        "/".into()
    } else {
        format!("{}/", crate::text::escape(f))
    }
}

/// The `.gpg-id` path of a folder.
pub fn gpg_id_path(folder: &str) -> String {
    if folder.is_empty() {
        GPG_ID.into()
    } else {
        format!("{folder}/{GPG_ID}")
    }
}

fn parent(folder: &str) -> Option<&str> {
    if folder.is_empty() {
        None
    } else {
        Some(folder.rsplit_once('/').map(|(p, _)| p).unwrap_or(""))
    }
}

/// Why a path (relative to the store, `/`-separated) cannot name an entry or a folder, if it
/// cannot: it is empty or absolute, holds NUL, a `.`, `..` or empty component, or a `.git`
/// component (in any case: git refuses those, and a crafted tree may still hold them). The one
/// rule for entry paths from the tree, `.gpg-id` folders, and folders typed on the command line.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("it is empty")
    } else if path.starts_with('/') {
        Some("it is absolute: give it relative to the store")
    } else if path.contains('\0') {
        Some("it contains NUL")
    } else if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("it must not contain '..', '.' or empty components")
    } else if path.split('/').any(|c| c.eq_ignore_ascii_case(".git")) {
        Some("it is inside a .git folder, which is not part of the password store")
    } else {
        None
    }
}

/// Checks a folder given on the command line (`--folder ops/dns`) and normalises it (no trailing
/// `/`; `""`, `.` and `/` alone are the root).
///
/// # Errors
/// [`Error::InvalidName`] for what [`path_problem`] refuses, and for `.public-keys`.
pub fn parse_folder(s: &str) -> Result<Folder> {
    let bad = |why| Error::InvalidName {
        what: "folder",
        value: crate::text::escape(s).into_owned(),
        why,
    };
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() && !s.is_empty() || trimmed.is_empty() || trimmed == "." {
        return Ok(String::new());
    }
    if s.starts_with('/') {
        return Err(bad("give it relative to the store"));
    }
    if let Some(why) = path_problem(trimmed) {
        return Err(bad(why));
    }
    if trimmed.split('/').next() == Some(PUBLIC_KEYS) {
        return Err(bad("that folder is not part of the password store"));
    }
    Ok(trimmed.to_string())
}

/// One recipient line of a `.gpg-id`, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    Fingerprint(Fingerprint),
    KeyId(KeyId),
    Email(String),
}

/// A line of a `.gpg-id` file.
#[derive(Clone, Debug)]
pub struct GpgIdLine {
    /// 1-based line number.
    pub number: usize,
    pub text: String,
    pub spec: Spec,
}

/// Parses a `.gpg-id` file as pass reads it: one recipient per line, `#` starts a comment.
///
/// # Errors
/// [`Error::GpgIdLine`] naming the file and line for anything vault cannot resolve (short key
/// ids, names, group names, binary junk).
pub fn parse_gpg_id(file: &str, bytes: &[u8]) -> Result<Vec<GpgIdLine>> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::BadFile {
        file: file.into(),
        problem: "it is not UTF-8 text (one recipient per line is expected)".into(),
    })?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let err = |problem: &str| Error::GpgIdLine {
            file: file.into(),
            line: i + 1,
            text: content.chars().take(80).collect(),
            problem: problem.into(),
        };
        let hex: String = content
            .trim_start_matches("0x")
            .trim_start_matches("0X")
            .chars()
            .filter(|c| *c != ' ')
            .collect();
        if let Some(exact) = content.strip_suffix('!') {
            if Fingerprint::parse(exact).is_some() || KeyId::parse(exact).is_some() {
                return Err(err(
                    "'!' asks GnuPG for exactly that key or subkey, and vault encrypts to all of a \
                     member's current encryption subkeys: write the key without '!' (pass then \
                     encrypts to all of them too), or keep managing this folder with pass",
                ));
            }
        }
        let spec = if let Some(f) = Fingerprint::parse(content) {
            Spec::Fingerprint(f)
        } else if let Some(k) = KeyId::parse(content) {
            Spec::KeyId(k)
        } else if hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(err(
                "short key ids are ambiguous and unsafe; use the full fingerprint",
            ));
        } else if let Some(email) = parse_email(content) {
            Spec::Email(email)
        } else {
            return Err(err(
                "not a fingerprint, long key id or e-mail address (group names are not supported)",
            ));
        };
        out.push(GpgIdLine {
            number: i + 1,
            text: content.to_string(),
            spec,
        });
    }
    Ok(out)
}

fn parse_email(s: &str) -> Option<String> {
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    let (local, domain) = s.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '<' && c != '>');
    ok.then(|| s.to_ascii_lowercase())
}

/// The text of a `.gpg-id` as vault writes it: full fingerprints, one per line.
pub fn render_gpg_id(recipients: &[Fingerprint]) -> String {
    recipients.iter().map(|f| format!("{f}\n")).collect()
}

/// The text of a changed `.gpg-id` as vault writes it, from the file as it was (`old`, with
/// `resolved`: the line numbers of its recipient lines and the key each names): comment and blank
/// lines are kept where they were; a recipient line whose key stays is rewritten as its full
/// fingerprint followed by the line's own comment; a line whose key goes is dropped with its
/// comment; recipients new to the file follow at the end, one fingerprint per line. Line ends
/// are LF (pass hands a CR to `gpg -r`). pass strips `#…` from each line (pass 1.7.4), and GnuPG
/// ignores the space left before it.
pub fn render_gpg_id_keeping(
    old: &str,
    resolved: &[(usize, Fingerprint)],
    recipients: &[Fingerprint],
) -> String {
    let mut out = String::new();
    let mut written: Vec<Fingerprint> = Vec::new();
    for (i, raw) in old.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let (content, comment) = match line.split_once('#') {
            Some((c, rest)) => (c.trim(), Some(rest)),
            None => (line.trim(), None),
        };
        if content.is_empty() {
            out.push_str(line.trim_end());
            out.push('\n');
            continue;
        }
        let Some((_, fpr)) = resolved.iter().find(|(n, _)| *n == i + 1) else {
            continue; // a line vault could not resolve is not kept in a file it writes
        };
        if !recipients.contains(fpr) || written.contains(fpr) {
            continue;
        }
        written.push(*fpr);
        match comment {
            Some(c) => out.push_str(&format!("{fpr} #{}\n", c.trim_end())),
            None => out.push_str(&format!("{fpr}\n")),
        }
    }
    for fpr in recipients.iter().filter(|f| !written.contains(f)) {
        out.push_str(&format!("{fpr}\n"));
    }
    out
}

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

fn folder_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map(|(_, n)| n).unwrap_or(path)
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
        let mut f = Some(folder);
        while let Some(cur) = f {
            if self.gpg_ids.contains_key(cur) || self.broken_gpg_ids.contains_key(cur) {
                return Some(cur.to_string());
            }
            f = parent(cur);
        }
        None
    }

    /// The folder that would govern `folder` if `gpg_ids` (a set of folders with a `.gpg-id`)
    /// were the store's `.gpg-id` files.
    pub fn governing_in<V>(gpg_ids: &BTreeMap<Folder, V>, folder: &str) -> Option<Folder> {
        let mut f = Some(folder);
        while let Some(cur) = f {
            if gpg_ids.contains_key(cur) {
                return Some(cur.to_string());
            }
            f = parent(cur);
        }
        None
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::{BlobId, FileKind, TreeFile};

    #[test]
    fn member_names() {
        assert!(MemberName::parse("eduardo").is_ok());
        assert!(MemberName::parse("a.b-c_d").is_ok());
        for bad in ["", "a/b", "a b", "..", "a..b", ".hidden", "-x", "é"] {
            assert!(MemberName::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            MemberName::from_email("Eduardo.Diaz@coop.example")
                .unwrap()
                .as_str(),
            "eduardo.diaz"
        );
    }

    #[test]
    fn gpg_id_lines() {
        let text = b"# team\n3AA5C34371567BD2E1A4A2A5D2E6B2F3A1B2C3D4 # nick\n\n0x1234567890ABCDEF\n<eduardo@coop.example>\n";
        let lines = parse_gpg_id(".gpg-id", text).unwrap();
        assert_eq!(lines.len(), 3);
        assert!(matches!(lines[0].spec, Spec::Fingerprint(_)));
        assert!(matches!(lines[1].spec, Spec::KeyId(_)));
        assert_eq!(lines[2].spec, Spec::Email("eduardo@coop.example".into()));
        let err = parse_gpg_id("ops/.gpg-id", b"ABCD1234\n").unwrap_err();
        assert!(err.to_string().contains("ops/.gpg-id line 1"), "{err}");
        assert!(parse_gpg_id(".gpg-id", b"some group\n").is_err());
    }

    fn file(path: &[u8], kind: FileKind, link: Option<&str>) -> TreeFile {
        TreeFile {
            path: String::from_utf8_lossy(path).into_owned(),
            utf8: std::str::from_utf8(path).is_ok(),
            blob: BlobId::hash(path),
            kind,
            link: link.map(|l| l.as_bytes().to_vec()),
        }
    }

    #[test]
    fn layout_follows_gpg_id_links_like_pass() {
        use FileKind::*;
        let layout = Layout::new(vec![
            file(b".gpg-id", Regular, None),
            file(b"ops/.gpg-id", Regular, None),
            file(b"ops/db.gpg", Regular, None),
            file(b"finance/.gpg-id", Symlink, Some("../ops/.gpg-id")),
            file(b"finance/budget.gpg", Regular, None),
            file(b"shared", Symlink, Some("ops")),
            file(b"hr/.gpg-id", Symlink, Some("../shared/.gpg-id")),
            file(b"out/.gpg-id", Symlink, Some("../../x/.gpg-id")),
            file(b"out/a.gpg", Regular, None),
            file(b"abs/.gpg-id", Symlink, Some("/etc/passwd")),
            file(b"loop/.gpg-id", Symlink, Some(".gpg-id")),
            file(b"entry/.gpg-id", Symlink, Some("../ops/db.gpg")),
            // What the kernel refuses, vault refuses: ENOTDIR, ENOENT on the way, PATH_MAX.
            file(b"slash/.gpg-id", Symlink, Some("../ops/.gpg-id/")),
            file(b"dot/.gpg-id", Symlink, Some("../ops/.gpg-id/.")),
            file(b"gap/.gpg-id", Symlink, Some("../nothere/../ops/.gpg-id")),
            file(b"keys/.gpg-id", Symlink, Some("../.public-keys/.gpg-id")),
            file(b".public-keys/.gpg-id", Regular, None),
            file(b"long/.gpg-id", Symlink, Some(&"a/".repeat(3000))),
        ]);
        assert_eq!(layout.gpg_ids[""], BlobId::hash(b".gpg-id"));
        assert_eq!(layout.gpg_ids["finance"], BlobId::hash(b"ops/.gpg-id"));
        assert_eq!(layout.gpg_ids["hr"], BlobId::hash(b"ops/.gpg-id"));
        assert_eq!(layout.gpg_id_links["finance"], "ops");
        assert_eq!(layout.sharing("ops"), ["finance", "hr", "ops"]);
        assert_eq!(layout.sharing("finance"), ["finance", "hr", "ops"]);
        for (folder, why) in [
            ("out", "outside the store"),
            ("abs", "outside the store"),
            ("loop", "loops"),
            ("entry", "not a folder's .gpg-id"),
            ("slash", "passes through a file"),
            ("dot", "passes through a file"),
            ("gap", "does not exist"),
            ("keys", "not a folder's .gpg-id"),
            ("long", "longer than PATH_MAX"),
        ] {
            assert!(layout.broken_gpg_ids[folder].contains(why), "{folder}");
        }
        // An unreadable .gpg-id still governs its folder: never the root's recipients.
        let a = layout.entries.iter().find(|e| e.name == "out/a").unwrap();
        assert_eq!(a.governed_by.as_deref(), Some("out"));
        let budget = layout
            .entries
            .iter()
            .find(|e| e.name == "finance/budget")
            .unwrap();
        assert_eq!(budget.governed_by.as_deref(), Some("finance"));
    }

    #[test]
    fn layout_reports_what_it_does_not_read() {
        use FileKind::*;
        let layout = Layout::new(vec![
            file(b".gpg-id", Regular, None),
            file("日本".as_bytes(), Regular, None),
            file("日本.gpg".as_bytes(), Regular, None),
            file(b"caf\xe9.gpg", Regular, None),
            file(b"alias.gpg", Symlink, Some("日本.gpg")),
            file(b"passwd.gpg", Symlink, Some("/etc/passwd")),
            file(b"gone.gpg", Symlink, Some("nowhere.gpg")),
            file(b"store2", Submodule, None),
            file(b".x.gpg.Ab12Cd34.vault-tmp", Regular, None),
            file(b"a/../b.gpg", Regular, None),
        ]);
        let names: Vec<&str> = layout.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["日本"]);
        assert_eq!(layout.links["alias.gpg"], "日本.gpg");
        let skipped: Vec<&str> = layout.skipped.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            skipped,
            ["a/../b.gpg", "caf\u{fffd}.gpg", "gone.gpg", "passwd.gpg",]
        );
        let foreign: Vec<&str> = layout.foreign.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(foreign, ["store2"]);
        assert_eq!(layout.temporaries, [".x.gpg.Ab12Cd34.vault-tmp"]);
        assert_eq!(entry_name("日本.gpg"), Some("日本"));
        assert_eq!(entry_name("本"), None);
        assert_eq!(entry_name(".gpg"), None);
        assert_eq!(entry_name("X.GPG"), Some("X"));
    }

    #[test]
    fn rewritten_gpg_ids_keep_their_comments() {
        let [a, b, c] = ["A", "B", "C"].map(|x| Fingerprint::parse(&x.repeat(40)).unwrap());
        let old = "# the ops team\r\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA # alice\r\n\n\
                   bob@coop.example  # bob, by mail\r\n# end\r\n";
        let resolved = [(2, a), (4, b)];
        assert_eq!(
            render_gpg_id_keeping(old, &resolved, &[a, c]),
            format!("# the ops team\n{a} # alice\n\n# end\n{c}\n")
        );
        assert_eq!(
            render_gpg_id_keeping(old, &resolved, &[b, a]),
            format!("# the ops team\n{a} # alice\n\n{b} # bob, by mail\n# end\n")
        );
    }

    #[test]
    fn store_files() {
        for yes in [
            "a.gpg",
            ".gpg-id",
            "x/.gpg-id.sig",
            ".public-keys/ABC",
            ".members.toml",
            ".gitignore",
        ] {
            assert!(is_store_file(yes), "{yes}");
        }
        for no in ["export.csv", "notes.txt", ".public-keysX", "README.md"] {
            assert!(!is_store_file(no), "{no}");
        }
    }

    #[test]
    fn folders() {
        assert_eq!(parse_folder("ops/").unwrap(), "ops");
        assert!(parse_folder("/etc")
            .unwrap_err()
            .to_string()
            .contains("folder"));
        assert!(parse_folder("../x").is_err());
        assert!(parse_folder("a//b").is_err());
        assert_eq!(parse_folder("").unwrap(), "");
    }
}
