//! A commit's tree comes from anyone who can push: any paths (any bytes but NUL and `/`-rules a
//! crafted tree may still break), any symbolic links. Classify arbitrary path lists the way vault
//! classifies a store.
//!
//! Input: one file per line; the first byte picks the kind (regular, link, submodule, other), the
//! rest is the path, and for a link a NUL then its target.
//!
//! Invariants: never panics; every entry's path is valid and is its name plus `.gpg`; every entry
//! is governed by a folder with a (possibly broken) `.gpg-id`; each link leads to a committed
//! file or folder; folders sharing a `.gpg-id` through links include the folder itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault::git::{BlobId, FileKind, TreeFile};
use vault::store::{entry_name, path_problem, Layout};

fuzz_target!(|data: &[u8]| {
    let files: Vec<TreeFile> = data
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (kind, rest) = (line[0], &line[1..]);
            let (path, link) = match rest.iter().position(|b| *b == 0) {
                Some(i) => (&rest[..i], Some(rest[i + 1..].to_vec())),
                None => (rest, None),
            };
            let kind = match kind % 4 {
                0 => FileKind::Regular,
                1 => FileKind::Symlink,
                2 => FileKind::Submodule,
                _ => FileKind::Other,
            };
            TreeFile {
                path: String::from_utf8_lossy(path).into_owned(),
                utf8: std::str::from_utf8(path).is_ok(),
                blob: BlobId::hash(path),
                link: (kind == FileKind::Symlink).then(|| link.unwrap_or_default()),
                kind,
            }
        })
        .collect();
    let layout = Layout::new(files.clone());
    for e in &layout.entries {
        assert_eq!(path_problem(&e.path), None, "{:?}", e.path);
        assert_eq!(entry_name(&e.path), Some(e.name.as_str()));
        if let Some(g) = &e.governed_by {
            assert!(layout.gpg_ids.contains_key(g) || layout.broken_gpg_ids.contains_key(g));
            assert_eq!(layout.sharing(g).iter().filter(|f| *f == g).count(), 1);
        }
    }
    for (from, to) in &layout.links {
        assert!(files.iter().any(|f| &f.path == from));
        assert!(
            files.iter().any(|f| &f.path == to || f.path.starts_with(&format!("{to}/")))
                || to.is_empty(),
            "{from} -> {to}"
        );
    }
});
