//! `vault hooks install`: git hooks in the store, so that plain `git push` and `git pull` keep
//! the team's rules too. `pre-push` refuses a HEAD where a former member or an unknown key can
//! read an entry, or where a recipient's addition was not vouched for; `post-merge` says when
//! `vault repair` is needed. Each hook runs `vault hook NAME` and fails with a clear message when
//! vault is not installed.

use std::io::Write;
use std::path::PathBuf;

use vault::audit::{audit, Filter};
use vault::trust::verify;
use vault::Error;

use crate::cli::{Global, HookName};
use crate::commands::{anchor, open, store_path};

/// Marks a hook file as vault's: one without it is the user's, and never overwritten.
const MARKER: &str = "installed by `vault hooks install`";

const HOOKS: [(&str, &str); 2] = [
    ("pre-push", "refuses to push a HEAD a former member or an unknown key can read, or with an unvouched recipient"),
    ("post-merge", "says when `vault repair` is needed after a merge or pull"),
];

/// Writes the hooks into the store's hooks folder (`core.hooksPath`, else `.git/hooks`).
pub fn install(global: &Global, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = store_path(global)?;
    let repo = vault::git::Repo::open(&store)?;
    let dir = repo.hooks_dir();
    // A hooks folder outside the store (a global core.hooksPath) serves other repositories
    // too, where `vault hook` would refuse every push: not there.
    let inside = dir.starts_with(repo.git_dir()) || dir.starts_with(repo.root());
    if !inside {
        return Err(Error::BadFile {
            file: dir.display().to_string(),
            problem: "core.hooksPath points outside this store, to hooks other repositories \
                      share; vault installs its hooks only into the store's own"
                .into(),
        }
        .into());
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    // A hook of the user's anywhere stops the install before anything is written.
    for (name, _) in HOOKS {
        let path = dir.join(name);
        // Anything there that is not readably vault's (a binary, a link, unreadable) is the
        // user's.
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            let ours = !meta.file_type().is_symlink()
                && std::fs::read_to_string(&path).is_ok_and(|text| text.contains(MARKER));
            if !ours {
                return Err(Error::BadFile {
                    file: path.display().to_string(),
                    problem: "it is a hook vault did not install, which it will not replace; \
                              merge it by hand: call `vault hook NAME` from it"
                        .into(),
                }
                .into());
            }
        }
    }
    for (name, what) in HOOKS {
        let path = dir.join(name);
        let script = format!(
            "#!/bin/sh\n# {MARKER}: {what}.\n\
             if ! command -v vault >/dev/null 2>&1; then\n\
             \techo \"vault {name} hook: vault is not installed (or not on PATH), so the team's rules cannot be checked; install vault, or remove $0\" >&2\n\
             \texit 1\n\
             fi\n\
             exec vault --store \"$(git rev-parse --show-toplevel)\" hook {name}\n"
        );
        write_executable(&path, &script)?;
        writeln!(out, "installed {}: {what}", path.display())?;
    }
    Ok(())
}

fn write_executable(path: &PathBuf, script: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    vault::git::write_file_durably(path, script.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io("making executable", path, e))?;
    Ok(())
}

/// What a hook runs. `pre-push` fails (exit 1) on what the module documentation says;
/// `post-merge` only reports.
pub fn run(
    global: &Global,
    hook: &HookName,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    let vault = open(global, err)?;
    match hook {
        HookName::PrePush => {
            let mut problems = Vec::new();
            let report = audit(&vault, &Filter::default(), None)?;
            for e in &report.entries {
                for p in &e.problems {
                    if p.starts_with("former member")
                        || p.starts_with("it is encrypted to an unknown key")
                    {
                        problems.push(format!("{}: {p}", vault::text::escape(&e.name)));
                    }
                }
            }
            let anchor = anchor(&vault, global, err)?;
            let v = verify(vault.repo(), &anchor, vault.head())?;
            for f in &v.violations {
                problems.push(format!("commit {} by {}: {}", f.commit, f.author, f.change));
            }
            if problems.is_empty() {
                return Ok(0);
            }
            writeln!(err, "vault pre-push hook: not pushing this HEAD:")?;
            for p in &problems {
                writeln!(err, "  {p}")?;
            }
            writeln!(
                err,
                "Run `vault repair` (entries), or `vault verify` (unvouched changes), then push again."
            )?;
            Ok(1)
        }
        HookName::PostMerge => {
            let plan = vault.plan_repair();
            let (wrong, _) = vault.unrepaired(&plan)?;
            if !wrong.is_empty() {
                writeln!(
                    out,
                    "vault: {} not encrypted to exactly {} .gpg-id after this merge: run `vault repair` (or `vault sync`).",
                    vault::text::count(wrong.len(), "entry is", "entries are"),
                    if wrong.len() == 1 { "its" } else { "their" }
                )?;
            }
            Ok(0)
        }
    }
}
