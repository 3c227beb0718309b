//! The pass layout: which files are entries, which `.gpg-id` governs each entry, what a `.gpg-id`
//! says, and the names people type. Pure logic over a list of committed files; no I/O.

use std::collections::BTreeMap;
use std::fmt;

use crate::crypto::{Fingerprint, KeyId};
use crate::error::{Error, Result};
use crate::history::{BlobId, FileKind, TreeFile};

pub const GPG_ID: &str = ".gpg-id";
pub const PUBLIC_KEYS: &str = ".public-keys";
pub const MEMBERS: &str = ".members.toml";

/// A folder of the store, relative to its root: `""` for the root, else `"ops"`, `"ops/dns"`.
pub type Folder = String;

/// How a folder is shown to people: `/` for the root, `ops/` otherwise.
pub fn show_folder(f: &str) -> String {
    if f.is_empty() {
        "/".into()
    } else {
        format!("{f}/")
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

/// A member's name as people type it: letters, digits, `.`, `_`, `-`; not starting with `.` or
/// `-`; at most 64 characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct MemberName(String);

impl MemberName {
    /// # Errors
    /// [`Error::InvalidName`] naming the value.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why| Error::InvalidName {
            what: "member name",
            value: s.to_string(),
            why,
        };
        if s.is_empty() || s.len() > 64 {
            return Err(bad("it must be 1 to 64 characters long"));
        }
        if s.starts_with('.') || s.starts_with('-') {
            return Err(bad("it must not start with '.' or '-'"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(bad("it may hold only letters, digits, '.', '_' and '-'"));
        }
        if s.contains("..") {
            return Err(bad("it must not contain '..'"));
        }
        Ok(MemberName(s.to_string()))
    }

    /// A name made from an e-mail address's local part (`Eduardo.Diaz@coop` -> `eduardo.diaz`).
    pub fn from_email(email: &str) -> Option<Self> {
        let local = email.split('@').next()?.to_ascii_lowercase();
        let cleaned: String = local
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let trimmed = cleaned.trim_start_matches(['.', '-']).replace("..", ".");
        Self::parse(&trimmed).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Checks a folder given on the command line (`--folder ops/dns`) and normalises it.
///
/// # Errors
/// [`Error::InvalidName`] for absolute paths, `..`, empty components or NUL.
pub fn parse_folder(s: &str) -> Result<Folder> {
    let bad = |why| Error::InvalidName {
        what: "folder",
        value: s.to_string(),
        why,
    };
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        return Ok(String::new());
    }
    if trimmed.starts_with('/') {
        return Err(bad("give it relative to the store"));
    }
    if trimmed.contains('\0') {
        return Err(bad("it contains NUL"));
    }
    let parts: Vec<&str> = trimmed.split('/').collect();
    if parts
        .iter()
        .any(|p| *p == ".." || p.is_empty() || *p == ".")
    {
        return Err(bad("it must not contain '..', '.' or empty components"));
    }
    if parts[0] == ".git" || parts[0] == PUBLIC_KEYS {
        return Err(bad("that folder is not part of the password store"));
    }
    Ok(parts.join("/"))
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

/// The committed layout of a store, classified.
#[derive(Debug, Default)]
pub struct Layout {
    pub entries: Vec<Entry>,
    /// Folder -> blob of its `.gpg-id`.
    pub gpg_ids: BTreeMap<Folder, BlobId>,
    /// `.public-keys/<name>` files: name -> blob.
    pub public_keys: BTreeMap<String, BlobId>,
    pub members: Option<BlobId>,
    /// Entries that are symlinks or otherwise not regular files: skipped, reported.
    pub skipped: Vec<String>,
    /// `.gpg-id.sig` files (pass's signed recipients): path -> blob.
    pub signatures: BTreeMap<String, BlobId>,
}

fn folder_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Checks an entry path as it comes from the tree: no `..`, no leading `/`, no NUL.
fn valid_entry_path(path: &str) -> bool {
    !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != ".." && c != ".")
}

impl Layout {
    /// Classifies the files of a committed tree the way pass does: every `*.gpg` outside `.git`,
    /// `.extensions` and `.public-keys` is an entry.
    pub fn new(files: Vec<TreeFile>) -> Layout {
        let mut layout = Layout::default();
        for f in files {
            let path = f.path;
            let top = path.split('/').next().unwrap_or("");
            let name = path.rsplit('/').next().unwrap_or(&path);
            if top == PUBLIC_KEYS && path.matches('/').count() == 1 {
                if f.kind == FileKind::Regular {
                    layout.public_keys.insert(name.to_string(), f.blob);
                }
                continue;
            }
            if top == ".git" || top == ".extensions" || top == PUBLIC_KEYS {
                continue;
            }
            if path == MEMBERS {
                layout.members = Some(f.blob);
            } else if name == GPG_ID {
                if f.kind == FileKind::Regular {
                    layout.gpg_ids.insert(folder_of(&path).to_string(), f.blob);
                }
            } else if name == ".gpg-id.sig" {
                layout.signatures.insert(path, f.blob);
            } else if path.len() > 4 && path[path.len() - 4..].eq_ignore_ascii_case(".gpg") {
                if f.kind != FileKind::Regular || !valid_entry_path(&path) {
                    layout.skipped.push(path);
                    continue;
                }
                layout.entries.push(Entry {
                    name: path[..path.len() - 4].to_string(),
                    path,
                    blob: f.blob,
                    governed_by: None,
                });
            }
        }
        let mut entries = std::mem::take(&mut layout.entries);
        for e in &mut entries {
            e.governed_by = layout.governing(folder_of(&e.path));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        layout.entries = entries;
        layout
    }

    /// The folder whose `.gpg-id` governs `folder`: its own, else the nearest parent's.
    pub fn governing(&self, folder: &str) -> Option<Folder> {
        let mut f = Some(folder);
        while let Some(cur) = f {
            if self.gpg_ids.contains_key(cur) {
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

    /// The folder of an entry path.
    pub fn folder_of(path: &str) -> &str {
        folder_of(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
