//! The pass store as pass reads it, pure logic over a list of committed files (no I/O): which files
//! are entries and which `.gpg-id` governs each (`layout.rs`), what a `.gpg-id` says and how vault
//! rewrites one (`gpg_id.rs`), the names in `.members.toml` (`roster.rs`), and the one rule for
//! paths.

mod gpg_id;
mod layout;
pub mod roster;

pub use gpg_id::{
    merge_gpg_id, parse_gpg_id, render_gpg_id, render_gpg_id_keeping, GpgIdLine, Recipient,
};
pub use layout::{
    entry_name, is_membership_file, is_store_file, is_temporary_name, Entry, Layout, Skipped,
    TMP_SUFFIX,
};

use crate::error::{Error, Result};
pub use crate::ids::MemberName;

pub const GPG_ID: &str = ".gpg-id";
pub const PUBLIC_KEYS: &str = ".public-keys";
pub const MEMBERS: &str = ".members.toml";
/// The store's README at its root, which vault may generate (see [`crate::readme`]).
pub const README: &str = "README.md";

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

pub(super) fn parent(folder: &str) -> Option<&str> {
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

/// Checks an entry name given on the command line (`web/shop`, as pass takes it, without
/// `.gpg`) and returns it unchanged.
///
/// # Errors
/// [`Error::InvalidName`] for what [`path_problem`] refuses, a name ending in `/`, and names
/// inside `.public-keys` or that are vault's own files.
pub fn parse_entry(s: &str) -> Result<String> {
    let bad = |why| Error::InvalidName {
        what: "entry",
        value: crate::text::escape(s).into_owned(),
        why,
    };
    if s.ends_with('/') {
        return Err(bad("it names a folder, not an entry"));
    }
    if let Some(why) = path_problem(s) {
        return Err(bad(why));
    }
    if s.split('/').next() == Some(PUBLIC_KEYS) {
        return Err(bad("that folder is not part of the password store"));
    }
    let last = s.rsplit('/').next().unwrap_or(s);
    if last == GPG_ID || is_temporary_name(&format!("{last}.gpg")) {
        return Err(bad("that name is one of the store's own files"));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Fingerprint;
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
        assert!(matches!(lines[0].recipient, Recipient::Fingerprint(_)));
        assert!(matches!(lines[1].recipient, Recipient::KeyId(_)));
        assert_eq!(
            lines[2].recipient,
            Recipient::Email("eduardo@coop.example".into())
        );
        let err = parse_gpg_id("ops/.gpg-id", b"ABCD1234\n").unwrap_err();
        assert!(err.to_string().contains("ops/.gpg-id line 1"), "{err}");
        assert!(parse_gpg_id(".gpg-id", b"some group\n").is_err());
        // pass strips only spaces and tabs (bash's read): a no-break space stays in the recipient.
        let nbsp = "3AA5C34371567BD2E1A4A2A5D2E6B2F3A1B2C3D4\u{a0}\n";
        assert!(parse_gpg_id(".gpg-id", nbsp.as_bytes()).is_err());
        assert!(parse_gpg_id(".gpg-id", b"\t3AA5C34371567BD2E1A4A2A5D2E6B2F3A1B2C3D4 \n").is_ok());
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
            format!("# the ops team\n# alice\n{a}\n\n# end\n{c}\n")
        );
        assert_eq!(
            render_gpg_id_keeping(old, &resolved, &[b, a]),
            format!("# the ops team\n# alice\n{a}\n\n# bob, by mail\n{b}\n# end\n")
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
        for yes in [
            ".gpg-id",
            "a/b/.gpg-id.sig",
            ".public-keys/X",
            ".members.toml",
        ] {
            assert!(is_membership_file(yes), "{yes}");
        }
        for no in ["a.gpg", ".public-keysX/Y", "x/.members.toml", ".gpg-id.bak"] {
            assert!(!is_membership_file(no), "{no}");
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
