//! vault's errors. Each one names the file, key, entry or member concerned, and [`Error::hint`]
//! says what to do next.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with a key file or a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error("it is empty")]
    Empty,
    #[error("it is not an OpenPGP key ({0})")]
    NotOpenPgp(String),
    #[error("it holds {0} certificates, expected exactly one")]
    Several(usize),
    #[error("it contains secret key material")]
    SecretMaterial,
    #[error("it is a version {0} key; GnuPG 2.2 and pass need version 4 keys")]
    NotV4(u8),
    #[error("it is not valid under the standard policy ({0})")]
    Policy(String),
    #[error("it is revoked")]
    Revoked,
    #[error("it expired on {0}")]
    Expired(String),
    #[error("it has no alive, non-revoked, encryption-capable subkey")]
    NoEncryptionSubkey,
    #[error("its encryption subkeys expired (the last on {0})")]
    SubkeysExpired(String),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system call failed: what vault was doing, on which path, and the OS's reason.
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    /// A libgit2 call failed; the cause keeps libgit2's message, class and code.
    #[error("git: {what}")]
    Git {
        what: String,
        #[source]
        cause: git2::Error,
    },
    #[error("no password store at {0}")]
    NoStore(PathBuf),
    #[error("{0} is a pass store that vault has not adopted yet (no .members.toml)")]
    NotAdopted(PathBuf),
    #[error("{0} is not a git repository")]
    NotGitRepo(PathBuf),
    #[error("{path} is inside the git repository at {top}, not at its top")]
    NotRepoTop { path: PathBuf, top: PathBuf },
    #[error("the store's git HEAD is {0}")]
    BadHead(&'static str),
    #[error("the store has uncommitted changes: {}", .0.join(", "))]
    Dirty(Vec<String>),
    #[error("key file {file}: {problem}")]
    KeyFile { file: String, problem: KeyProblem },
    #[error("{file} line {line} ({text:?}): {problem}")]
    GpgIdLine {
        file: String,
        line: usize,
        text: String,
        problem: String,
    },
    #[error("{file}: {problem}")]
    BadFile { file: String, problem: String },
    #[error("no member named {0:?}")]
    UnknownMember(String),
    #[error("the branch {0} has no upstream to sync with")]
    NoUpstream(String),
    #[error("the repository has no remote named {0:?}")]
    NoRemote(String),
    /// The user's `git` program failed (fetch, push): the command and what git said.
    #[error("{command} failed: {output}")]
    GitProgram { command: String, output: String },
    /// An incoming commit adds a recipient or key nobody trusted vouched for: nothing merged.
    #[error("the upstream's commit {commit} by {author} {change}, and no trusted member vouched for it: nothing was merged")]
    IncomingViolation {
        commit: String,
        author: String,
        change: String,
    },
    /// Both the branch and its upstream have commits since `base`.
    #[error("this clone and the upstream have both changed since {base} ({ours} here, {theirs} there): nothing was changed")]
    Diverged {
        base: String,
        ours: String,
        theirs: String,
    },
    /// What an upstream commit brings that vault cannot write into the work tree.
    #[error("the upstream ({commit}) brings {path}, {why}, which vault does not write into a store: nothing was changed")]
    Unmergeable {
        commit: String,
        path: String,
        why: &'static str,
    },
    #[error("there is no commit {0:?} in the store's history")]
    NoSuchCommit(String),
    #[error(
        "commit {0} added no recipient or key that verify reports: there is nothing to accept"
    )]
    NothingToAccept(String),
    /// Paths both sides of a merge changed that vault cannot merge, each with why.
    #[error("the upstream cannot be merged: {}", .0.iter().map(|(p, why)| format!("{p} ({why})")).collect::<Vec<_>>().join(", "))]
    MergeConflicts(Vec<(String, String)>),
    /// The remote kept getting new commits while sync integrated them.
    #[error("the upstream moved again on each of {0} tries while this clone integrated it")]
    PushRaced(usize),
    #[error("{name} is a former member (removed {removed}{})", by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default())]
    FormerMember {
        name: String,
        removed: String,
        /// Who removed them and in which commit, when history says.
        by: Option<String>,
        /// How many entries they can still read now (other tools encrypted to them since).
        still_readable: usize,
    },
    /// `vault repair` found every entry encrypted to exactly its `.gpg-id`: no commit. Not a
    /// failure: the command reports it, with `not_reencrypted`, what vault cannot repair (one
    /// sentence each).
    #[error("nothing to repair: every entry is encrypted to exactly its .gpg-id")]
    NothingToRepair { not_reencrypted: Vec<String> },
    #[error("{0}")]
    MemberExists(String),
    #[error("the key given for {member} is {actual}, not their key {expected}")]
    OtherKey {
        member: String,
        expected: String,
        actual: String,
    },
    #[error("the key given for {member} has a user id with {email}, which is {owner}'s address")]
    TakenEmail {
        member: String,
        email: String,
        owner: String,
    },
    #[error("the key given for {0} is the key they have now")]
    SameKey(String),
    #[error("{member} already reads {folder}")]
    AlreadyReads { member: String, folder: String },
    #[error("entry {0} exists already")]
    EntryExists(String),
    #[error("there is no entry {entry}{}", nearest.as_ref().map(|n| format!(" (did you mean {n}?)")).unwrap_or_default())]
    NoSuchEntry {
        entry: String,
        nearest: Option<String>,
    },
    #[error("{0} is a folder")]
    IsAFolder(String),
    #[error("README.md is not one vault generated (it lacks vault's first line): vault never touches it")]
    HandWrittenReadme,
    #[error("invalid {what} {value:?}: {why}")]
    InvalidName {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("removing {member} would leave {file} with no recipients")]
    WouldEmpty { member: String, file: String },
    #[error("{member} is not a recipient of {folder}")]
    NotRecipient { member: String, folder: String },
    #[error("the operator key {identity} cannot decrypt {} entr{}: {}", .entries.len(), if .entries.len() == 1 { "y" } else { "ies" }, .entries.join(", "))]
    CannotDecrypt {
        identity: String,
        entries: Vec<String>,
    },
    #[error("no operator key: this command decrypts entries and needs your secret key")]
    NoIdentity,
    #[error("operator key {file}: {problem}")]
    Identity { file: String, problem: String },
    #[error("entry {entry}: {problem}")]
    Entry { entry: String, problem: String },
    #[error("{path}: {problem}")]
    Unreadable { path: String, problem: String },
    #[error("member {member} ({fingerprint}): {problem}")]
    MemberKey {
        member: String,
        fingerprint: String,
        problem: KeyProblem,
        /// The encryption subkeys the member can extend (fingerprints), for the hint.
        renewable: Vec<String>,
    },
    #[error(
        "recipient {fingerprint} listed in {file} has no key in .public-keys/ or the GnuPG keyring"
    )]
    MissingKey { fingerprint: String, file: String },
    #[error("the key's fingerprint is {actual}, not the {expected} you asserted")]
    FingerprintMismatch { expected: String, actual: String },
    #[error("{0} is already a vault store")]
    AlreadyInitialised(PathBuf),
    /// A command line or environment value vault cannot use (`--name`, `$VAULT_LOCK_WAIT`).
    #[error("{0}")]
    Usage(String),
    #[error("{0} has no .gpg-id: it is not a pass store")]
    NotPassStore(PathBuf),
    #[error("{0} is already a pass store")]
    AlreadyPassStore(PathBuf),
    #[error("{path} {why}: a new store needs a new folder")]
    NotEmpty { path: PathBuf, why: &'static str },
    #[error("--name {0}=…: that key is not a recipient in any .gpg-id")]
    NameNotRecipient(String),
    #[error("key {0} has no e-mail address to name its member after")]
    NoNameFor(String),
    #[error("the store has no root .gpg-id to add a member to")]
    NoRootGpgId,
    #[error("git does not know who you are: the commit needs an author")]
    NoGitIdentity,
    #[error("PASSWORD_STORE_SIGNING_KEY: {0:?} is not a full fingerprint")]
    BadSigningKeyVar(String),
    /// Recipients nobody trusted vouched for, each with where it came from ("added in commit
    /// X", "never vouched for" …).
    #[error("refusing to encrypt to recipients whose addition nobody trusted vouched for: {}", .0.iter().map(|(r, c)| format!("{r} ({c})")).collect::<Vec<_>>().join(", "))]
    Unverified(Vec<(String, String)>),
    #[error("interrupted: nothing was changed")]
    Interrupted,
    #[error("the change was committed ({commit}) but its files could not all be written to the work tree")]
    Unfinished {
        commit: String,
        #[source]
        cause: Box<Error>,
    },
    #[error("an earlier vault change could not be finished: {0}")]
    Journal(String),
    #[error("{} in the work tree is a symbolic link (or a file) where vault needs a folder: vault never writes through a link, which could lead out of the store", .path.display())]
    Link { path: PathBuf },
    #[error("another vault command{} is changing this store", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Busy { pid: Option<u32> },
    #[error("the folder holds files that are not part of a password store, which vault will not commit: {}", .0.join(", "))]
    ForeignFiles(Vec<String>),
    #[error("{file} must be signed again, and pass accepts only a signature by {expected} ({rule}); your key {operator} is not that key")]
    GpgIdSigner {
        file: String,
        expected: String,
        rule: String,
        operator: String,
    },
    #[error("the store has no folder {folder}: it holds no entry and no .gpg-id{}", .nearest.as_ref().map(|n| format!(" (did you mean {n}?)")).unwrap_or_default())]
    NoSuchFolder {
        folder: String,
        nearest: Option<String>,
    },
    #[error("{0} is in progress in the store's repository: vault changes nothing until it is finished or aborted")]
    InProgress(&'static str),
    #[error("committed files are named like vault's own temporaries (.NAME….vault-tmp), which nobody but vault should make: {}", .0.join(", "))]
    Temporaries(Vec<String>),
}

impl Error {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            cause: source,
        }
    }

    /// A libgit2 failure while doing `what`.
    pub fn git(what: impl Into<String>, cause: git2::Error) -> Self {
        Error::Git {
            what: what.into(),
            cause,
        }
    }

    /// This error and every cause below it, joined by `: ` (for a message that is one line
    /// inside another, such as an audit problem).
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    /// A git failure vault itself detected (no libgit2 error behind it).
    pub fn git_msg(what: impl Into<String>, message: &str) -> Self {
        Error::git(what, git2::Error::from_str(message))
    }

    /// What the user should do next, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        use Error::*;
        Some(match self {
            Io { cause, what, .. }
                if what.starts_with("writing")
                    && matches!(
                        cause.kind(),
                        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                    ) =>
            {
                "the store is not writable there (permissions, or a read-only file system): make it writable, then run vault again".into()
            }
            Io { cause, what, .. }
                if what.starts_with("writing")
                    && cause.kind() == std::io::ErrorKind::FileTooLarge =>
            {
                "a file size limit (`ulimit -f`) stopped the write: raise it, then run vault again".into()
            }
            Io { cause, .. } if cause.kind() == std::io::ErrorKind::StorageFull => {
                "the disk is full: free some space, then run vault again".into()
            }
            Io { cause, .. } if cause.kind() == std::io::ErrorKind::PermissionDenied => {
                "check the permissions of that path".into()
            }
            Io { .. } => "check that the path exists and is readable".into(),
            NoStore(_) => "give the store with --store DIR or $PASSWORD_STORE_DIR, or create one with `vault init KEYFILE --name NAME`".into(),
            NotAdopted(_) => "run `vault init` to adopt it".into(),
            NotGitRepo(_) => "run `vault init` to adopt the store (it becomes a git repository)".into(),
            NotRepoTop { top, .. } => format!("point --store at {}, or give the store a repository of its own", top.display()),
            BadHead(_) => "check out a branch (`git -C STORE switch main`) with at least one commit; `vault init` makes the first one".into(),
            Dirty(_) => "commit or discard those changes first (`git -C STORE status`), then run vault again; move files that are not part of the store out of it, or list them in .gitignore".into(),
            KeyFile { problem, .. } => key_hint(problem).into(),
            GpgIdLine { .. } => "fix that line: vault reads full fingerprints, 16-digit key ids and e-mail addresses whose key is in .public-keys/".into(),
            BadFile { file, problem } if file == ".members.toml" && problem.contains("unknown field") => "a newer vault wrote it (replaced keys came in on 2026-11-30): upgrade vault".into(),
            BadFile { file, .. } => format!("fix {file} (or restore it from git history: `git -C STORE log -- {file}`)"),
            UnknownMember(_) => "run `vault members` to see the members' names".into(),
            OtherKey { member, .. } => format!("if {member} moved to a new key, run `vault replace-key {member} NEWKEY.asc` (with --compromised if the old one was); update-member takes only their current key, renewed or extended"),
            TakenEmail { member, owner, .. } => format!("ask {member} to remove that user id (`gpg --quick-revoke-uid`) and send the key again: pass and gpg would not know whether the address means {member} or {owner}"),
            SameKey(member) => format!("to take a renewed or extended copy of {member}'s current key, run `vault update-member {member} KEYFILE`"),
            AlreadyReads { .. } => "nothing to do: `vault members` shows who reads which folders".into(),
            EntryExists(_) => "give --force to overwrite it (the old content stays in git history)".into(),
            NoSuchEntry { .. } => "`vault ls` lists the entries, `vault find NAME` searches them".into(),
            IsAFolder(_) => "give --recursive to remove everything in it".into(),
            HandWrittenReadme => "keep your README.md as it is, or move it (e.g. to HOWTO.md) and run `vault readme` again to have vault write and keep one".into(),
            FormerMember { name, still_readable: 0, .. } => format!("nothing in the store is readable by them now; `vault audit` lists what they could read before and must be rotated. To have {name} back, `vault add-member` a new key of theirs under a new name"),
            FormerMember { still_readable, .. } => format!("they can still read {} now (encrypted to them since, by another tool): run `vault repair` to re-encrypt, then rotate what `vault audit` lists", crate::text::count(*still_readable, "entry", "entries")),
            NothingToRepair { .. } => return None,
            NoUpstream(b) => format!("set one with `git -C STORE branch --set-upstream-to=origin/{b}`, or name the remote with --remote"),
            NoRemote(_) => "see the remotes with `git -C STORE remote -v`".into(),
            GitProgram { .. } => "fix what git says (network, ssh key, credentials), then run vault sync again: nothing was changed".into(),
            IncomingViolation { commit, .. } => format!("check with the team who made that change. If it is right, a trusted member accepts it for everyone: `vault verify --accept {commit}`; otherwise undo it upstream. Until then sync merges nothing"),
            Diverged { .. } => "run `vault sync` first: it merges them (and signs the merge)".into(),
            Unmergeable { .. } => "sync writes regular files only: ask who pushed it whether it is meant, and either have it removed upstream or integrate it with `git pull` yourself and check the store with `vault audit`".into(),
            NoSuchCommit(_) => "give a commit id from `vault verify` (the BAD lines)".into(),
            NothingToAccept(_) => "`vault verify` lists the commits with violations (BAD)".into(),
            MergeConflicts(_) => "nothing was changed. Decide each entry with `vault sync --ours ENTRY` (keep this clone's) or `--theirs ENTRY` (keep the upstream's), after comparing them (`pass show`, and `git show @{u}:ENTRY.gpg | gpg -d`), or keep both with `--keep-both` (yours becomes ENTRY.conflict-<commit>)".into(),
            PushRaced(_) => "run vault sync again when the team's pushes have settled".into(),
            MemberExists(_) => "use a different --name for a different person. To change an existing member's key or folders, do not remove and re-add them: removal makes every credential they read one to rotate".into(),
            InvalidName { .. } => "names are letters, digits, '.', '_' and '-', and do not start with '.' or '-'".into(),
            WouldEmpty { .. } => "add another member first (`vault add-member`) so someone can still read those entries".into(),
            NotRecipient { .. } => "run `vault members` to see which folders each member reads".into(),
            CannotDecrypt { .. } => "ask a member named above to run this (each entry says who can read it), or ask the team why those entries are not encrypted to you".into(),
            NoIdentity => "give your secret key file with --identity FILE or $VAULT_IDENTITY".into(),
            Identity { .. } => "give the secret key of a member with --identity FILE (a passphrase can come from --passphrase-file)".into(),
            Entry { .. } => "restore a good version from git history (`git -C STORE log -- ENTRY.gpg`, then `git -C STORE checkout COMMIT -- ENTRY.gpg`), or remove it (`pass rm ENTRY`), and commit".into(),
            Unreadable { .. } => "make it a regular file with a valid UTF-8 name (or a link to an entry inside the store), or remove it, and commit; vault never follows a link out of the store".into(),
            MemberKey { member, fingerprint, problem, renewable } => member_key_hint(member, fingerprint, problem, renewable),
            MissingKey { .. } => "import that key into your GnuPG keyring (or put it in .public-keys/) and run `vault init` again, or fix the .gpg-id".into(),
            FingerprintMismatch { .. } => "do not add this key: confirm the fingerprint with its owner out of band".into(),
            AlreadyInitialised(_) => "use `vault add-member` to add members".into(),
            Usage(_) => "see `vault --help`".into(),
            NotPassStore(_) => "give the pass store with --store DIR (or $PASSWORD_STORE_DIR), or create a new store with `vault init KEYFILE --name NAME`".into(),
            AlreadyPassStore(_) => "run `vault init` without a key file to adopt it".into(),
            NotEmpty { .. } => "give a folder that does not exist yet (or is empty) for a new store; to adopt an existing pass store, run `vault init` without a key file".into(),
            NameNotRecipient(_) => "give --name only for keys that a .gpg-id lists".into(),
            NoNameFor(fpr) => format!("give it a name: --name {fpr}=NAME"),
            NoRootGpgId => "create the root .gpg-id with `pass init` (or `vault init KEYFILE --name NAME` for a new store), or give the member one folder with --folder DIR".into(),
            NoGitIdentity => "set `git config --global user.name` and `user.email` (or $GIT_AUTHOR_NAME and $GIT_AUTHOR_EMAIL), then run vault again".into(),
            BadSigningKeyVar(_) => "set it as pass expects: full 40-digit fingerprints, separated by spaces".into(),
            Interrupted => "run the command again when ready".into(),
            Unverified(_) => "run `vault verify` to see who made that change. If it is legitimate, a trusted member accepts it for the team with `vault verify --accept COMMIT` (a signed commit that vouches for it); if not, remove it from the .gpg-id and .public-keys/ in a commit. --trust-unverified overrides, for recovery only".into(),
            Unfinished { .. } => "fix the cause (disk space, permissions), then run any vault command: it finishes the change first".into(),
            GpgIdSigner { .. } => "give that key's secret key file with --signing-key FILE (e.g. the team's signing key), or ask whoever holds it to make this change; to move the store to another signing key, every member changes PASSWORD_STORE_SIGNING_KEY and re-signs with `pass init`".into(),
            NoSuchFolder { .. } => "check the name (`vault members` lists the folders each member reads), or give --create to make a new folder with its own .gpg-id".into(),
            InProgress(what) => match *what {
                "a merge" => "resolve the conflicts and `git commit`, or `git merge --abort`; then run vault again (vault audit shows the state meanwhile)".into(),
                "a rebase" => "resolve the conflicts and `git rebase --continue`, or `git rebase --abort`; then run vault again. A rebase re-creates vault's signed commits unsigned: prefer a merge".into(),
                "a cherry-pick" => "finish it (`git cherry-pick --continue`) or `git cherry-pick --abort`, then run vault again".into(),
                "a revert" => "finish it (`git revert --continue`) or `git revert --abort`, then run vault again".into(),
                _ => "finish or abort it (`git -C STORE status` says how), then run vault again".into(),
            },
            Link { .. } => "replace the link with a real folder (or remove it), then run vault again".into(),
            Busy { .. } => "wait until it has finished, then run vault again ($VAULT_LOCK_WAIT sets how many seconds to wait)".into(),
            ForeignFiles(_) => "move those files out of the store, or list them in .gitignore, then run vault again".into(),
            Temporaries(_) => "someone with push access committed them: check who (`git -C STORE log --stat -- FILE`), remove them with `git rm`, commit, then run vault again".into(),
            Journal(_) => "inspect the store with `git -C STORE status` and `git log`; remove .git/vault-journal once the store is consistent".into(),
            Git { .. } => "check that the store and its .git folder are writable and the disk is not full, then run vault again (it finishes or undoes an interrupted change first)".into(),
        })
    }
}

/// What to do about a member whose key cannot be encrypted to: extend it and `vault
/// update-member` (GnuPG's `'*'` does not extend subkeys that already expired, so they are named),
/// move to a new key with `vault replace-key`, or remove them.
fn member_key_hint(member: &str, fpr: &str, problem: &KeyProblem, renewable: &[String]) -> String {
    let update = format!(
        "they send it (`gpg --export --armor {fpr} > {member}.asc`) and you run `vault update-member {member} {member}.asc`"
    );
    match problem {
        KeyProblem::Expired(_) | KeyProblem::SubkeysExpired(_) => {
            let subkeys = format!(
                "`gpg --quick-set-expire {fpr} 1y {}` (naming the subkeys: `'*'` skips those already expired)",
                renewable.join(" ")
            );
            // A primary key that never expires is left so: only its subkeys need extending.
            let extend = match (problem, renewable.is_empty()) {
                (KeyProblem::Expired(_), true) => format!("`gpg --quick-set-expire {fpr} 1y`"),
                (KeyProblem::Expired(_), false) => {
                    format!("`gpg --quick-set-expire {fpr} 1y`, then {subkeys}")
                }
                _ => subkeys,
            };
            format!("{member} extends their key: {extend}; {update}. Or remove them: `vault remove-member {member}`")
        }
        KeyProblem::NoEncryptionSubkey => format!(
            "{member} adds an encryption subkey (`gpg --quick-add-key {fpr} cv25519 encr 2y`); {update}. Or remove them: `vault remove-member {member}`"
        ),
        KeyProblem::Revoked => format!(
            "ask {member} for their new key and run `vault replace-key {member} NEWKEY.asc` (with --compromised if the old one was), or remove them: `vault remove-member {member}`"
        ),
        _ => format!(
            "ask {member} for a current key and run `vault replace-key {member} NEWKEY.asc`, or remove them: `vault remove-member {member}`"
        ),
    }
}

fn key_hint(p: &KeyProblem) -> &'static str {
    match p {
        KeyProblem::SecretMaterial => {
            "export only the public key: `gpg --export --armor FINGERPRINT > name.asc`"
        }
        KeyProblem::Several(_) => "export exactly one key: `gpg --export --armor FINGERPRINT`",
        KeyProblem::Expired(_)
        | KeyProblem::SubkeysExpired(_)
        | KeyProblem::Revoked
        | KeyProblem::NoEncryptionSubkey => {
            "ask the key's owner for a current key with a valid encryption subkey"
        }
        KeyProblem::Policy(_) | KeyProblem::NotV4(_) => {
            "ask the key's owner for a modern v4 key (e.g. `gpg --quick-gen-key NAME ed25519 cert` with a cv25519 encryption subkey)"
        }
        KeyProblem::Empty | KeyProblem::NotOpenPgp(_) => {
            "give a public key exported with `gpg --export --armor FINGERPRINT`"
        }
    }
}
