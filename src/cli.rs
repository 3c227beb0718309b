//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

#[derive(Parser, Debug)]
#[command(
    name = "vault",
    version,
    about = "Manage who can read a team's pass-compatible password store",
    long_about = "vault manages the members of a pass password store (a git repository of *.gpg \
files encrypted to the keys in .gpg-id): it adds and removes members, re-encrypting exactly what \
must change in one git commit, and stays compatible with pass, gopass and GnuPG."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The password store [default: $PASSWORD_STORE_DIR, else ~/.password-store]
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Your secret key file (armored or binary), used to decrypt entries
    #[arg(long, global = true, value_name = "FILE", env = "VAULT_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Read the identity's passphrase from this file instead of prompting
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// A secret key file to sign `.gpg-id.sig` with when pass expects another key than yours
    /// there (the team's PASSWORD_STORE_SIGNING_KEY)
    #[arg(long, global = true, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Do not ask for confirmation (for scripts)
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Commands that change the store commit locally only (with an upstream they push by
    /// default)
    #[arg(long, global = true)]
    pub no_push: bool,
    /// DANGEROUS, for recovery only: encrypt even to recipients whose addition `vault verify`
    /// cannot vouch for
    #[arg(long, global = true)]
    pub trust_unverified: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Adopt an existing pass store, or create a new one with a first member
    Init(InitArgs),
    /// Add a member's public key and re-encrypt what they must read
    AddMember(AddMemberArgs),
    /// Remove a member, re-encrypt without them, and list what to rotate
    RemoveMember(RemoveMemberArgs),
    /// Take a member's renewed or extended key (same fingerprint): merge it, re-encrypt what
    /// must change, one commit
    UpdateMember(UpdateMemberArgs),
    /// Move a member to a new key (new fingerprint): re-encrypt everything they read
    ReplaceKey(ReplaceKeyArgs),
    /// Give an existing member one more folder
    Grant(FolderAccessArgs),
    /// Take one folder away from a member (what `remove-member --folder` does)
    Revoke(FolderAccessArgs),
    /// Import the vouched members' keys into your GnuPG keyring and certify them locally, so
    /// pass and gpg encrypt to them. Exit code 0: all imported; 3: an unvouched recipient was
    /// left out; 1: error
    ImportKeys,
    /// List the members, their keys and the folders they read
    Members(MembersArgs),
    /// Report every entry, who can read it (from the ciphertext), and what needs attention.
    /// Exit code 0: nothing needs attention; 3: problems or entries to rotate; 1: error
    Audit(AuditArgs),
    /// Check that every change of who can read, since this clone's trust anchor, was made by a
    /// trusted member. Exit code 0: all vouched for; 3: violations; 1: error
    Verify(VerifyArgs),
    /// Encrypt every entry to exactly its nearest .gpg-id (after other tools, hand edits or a
    /// merge), in one signed commit, and list what a former member could read
    Repair,
    /// Fetch the branch's upstream, check every incoming commit as `vault verify` does,
    /// fast-forward or merge (one signed merge commit), encrypt every entry to exactly its
    /// .gpg-id again, and push (--no-push: not)
    Sync(SyncArgs),
    /// Decrypt an entry and print it (--line N: that line only; --clip: to the clipboard)
    Show(ShowArgs),
    /// Add an entry from standard input or a prompt asked twice, as `pass insert` does
    Insert(InsertArgs),
    /// Add an entry with a generated password, as `pass generate` does
    Generate(GenerateArgs),
    /// Edit an entry in $EDITOR (a file on tmpfs, as pass does), as `pass edit` does
    Edit(EntryArg),
    /// Remove an entry (or a folder with --recursive), as `pass rm` does
    Rm(RmArgs),
    /// Rename an entry or folder, re-encrypting when the destination's readers differ
    Mv(MoveArgs),
    /// Copy an entry or folder, re-encrypting when the destination's readers differ
    Cp(MoveArgs),
    /// List the entries as a tree, as `pass ls` does
    Ls(LsArgs),
    /// List the entries whose name contains NAME (any part, case-insensitively)
    Find(FindArgs),
    /// Decrypt every entry and print the lines that match PATTERN (a regular expression)
    Grep(GrepArgs),
    /// Walk the entries audit says to rotate (or the ones named): change each credential at its
    /// service and record the new password, keeping every other line
    Rotate(RotateArgs),
    /// Write README.md for the team (what the store is, how to work with it, the members, the
    /// credential inventory: names only); every vault command keeps it up to date afterwards
    Readme,
    /// Git hooks that keep the team's rules for plain git too (`vault hooks install`)
    Hooks(HooksArgs),
    /// What an installed git hook runs (not for people)
    #[command(hide = true)]
    Hook(HookArgs),
    /// Print the shell's completion script (entry and member names complete from the store):
    /// `source <(vault completions bash)`
    Completions {
        #[arg(value_parser = ["bash", "zsh", "fish", "elvish", "powershell"])]
        shell: String,
    },
    /// Print the man page (roff): `vault man > ~/.local/share/man/man1/vault.1`
    Man,
    /// What `show --clip` leaves behind to clear the clipboard (not for people)
    #[command(hide = true)]
    ClipRestore { seconds: u64 },
}

#[derive(Args, Debug)]
pub struct HooksArgs {
    #[command(subcommand)]
    pub action: HooksAction,
}

#[derive(Subcommand, Debug)]
pub enum HooksAction {
    /// Install pre-push (refuses a HEAD a former member or an unknown key can read, or with an
    /// unvouched recipient) and post-merge (says when `vault repair` is needed)
    Install,
}

#[derive(Args, Debug)]
pub struct HookArgs {
    #[arg(value_enum)]
    pub name: HookName,
}

#[derive(clap::ValueEnum, Clone, Debug)]
pub enum HookName {
    PrePush,
    PostMerge,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Sync with this remote instead of the branch's upstream remote
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
    /// Push even if a former member can still read an entry vault could not re-encrypt
    #[arg(long)]
    pub force: bool,
    /// When both sides changed ENTRY differently, keep this clone's version (repeatable)
    #[arg(long, value_name = "ENTRY")]
    pub ours: Vec<String>,
    /// When both sides changed ENTRY differently, keep the upstream's version (repeatable)
    #[arg(long, value_name = "ENTRY")]
    pub theirs: Vec<String>,
    /// When both sides changed an entry differently, keep both: the upstream's under its name,
    /// this clone's as NAME.conflict-<commit>
    #[arg(long)]
    pub keep_both: bool,
    /// Print what sync did as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Create a new store in an empty folder with this public key as its first member
    #[arg(value_name = "KEYFILE")]
    pub key: Option<PathBuf>,
    /// With KEYFILE: the first member's name. When adopting: FINGERPRINT=NAME (repeatable)
    #[arg(long, value_name = "NAME")]
    pub name: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AddMemberArgs {
    /// The new member's public key (armored or binary)
    #[arg(value_name = "KEYFILE")]
    pub key: PathBuf,
    /// The member's name [default: the key file's name without extension]
    #[arg(long)]
    pub name: Option<String>,
    /// Give access to this folder only (its .gpg-id is created if needed; a folder that holds
    /// nothing yet needs --create)
    #[arg(long, value_name = "DIR")]
    pub folder: Option<String>,
    /// With --folder: the folder may be new (holds no entry and no .gpg-id yet)
    #[arg(long, requires = "folder")]
    pub create: bool,
    /// Assert the key's fingerprint (checked with the member out of band); no prompt
    #[arg(long, value_name = "FPR")]
    pub fingerprint: Option<String>,
}

#[derive(Args, Debug)]
pub struct RemoveMemberArgs {
    /// The member's name (see `vault members`)
    #[arg(add = ArgValueCandidates::new(members))]
    pub name: String,
    /// Remove access to this folder only
    #[arg(long, value_name = "DIR")]
    pub folder: Option<String>,
    /// With --folder: the folder may be new (holds no entry and no .gpg-id yet)
    #[arg(long, requires = "folder")]
    pub create: bool,
    /// Run as `vault revoke`: refuse to take away a member's last folder (that is removing them)
    #[arg(skip)]
    pub only_a_folder: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The entry (as pass names it: `web/shop`)
    #[arg(add = ArgValueCandidates::new(entries))]
    pub entry: String,
    /// Only line N (1 is the password)
    #[arg(long, value_name = "N")]
    pub line: Option<usize>,
    /// Copy the line (the first one unless --line) to the clipboard instead of printing it, and
    /// clear it after $PASSWORD_STORE_CLIP_TIME seconds (45), as pass does
    #[arg(long, short = 'c')]
    pub clip: bool,
}

#[derive(Args, Debug)]
pub struct InsertArgs {
    /// The entry (as pass names it: `web/shop`)
    pub entry: String,
    /// Read every line until end of input (else one line, the password)
    #[arg(long, short = 'm')]
    pub multiline: bool,
    /// Overwrite an existing entry
    #[arg(long, short = 'f')]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The entry (as pass names it: `web/shop`)
    #[arg(add = ArgValueCandidates::new(entries))]
    pub entry: String,
    /// Length [default: $PASSWORD_STORE_GENERATED_LENGTH, else 25]
    pub length: Option<usize>,
    /// Letters and digits only
    #[arg(long, short = 'n')]
    pub no_symbols: bool,
    /// Replace only the first line (the password) of an existing entry, keeping the rest
    #[arg(long, short = 'i', conflicts_with = "force")]
    pub in_place: bool,
    /// Overwrite an existing entry
    #[arg(long, short = 'f')]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct EntryArg {
    /// The entry (as pass names it: `web/shop`)
    #[arg(add = ArgValueCandidates::new(entries))]
    pub entry: String,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// The entry (as pass names it: `web/shop`), or a folder with --recursive
    #[arg(add = ArgValueCandidates::new(entries))]
    pub entry: String,
    /// Remove a folder and everything in it
    #[arg(long, short = 'r')]
    pub recursive: bool,
}

#[derive(Args, Debug)]
pub struct MoveArgs {
    /// The entry or folder
    #[arg(add = ArgValueCandidates::new(entries))]
    pub from: String,
    /// The new name (ending in `/`, or an existing folder: into that folder)
    pub to: String,
    /// Overwrite existing entries
    #[arg(long, short = 'f')]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only this folder
    pub folder: Option<String>,
}

#[derive(Args, Debug)]
pub struct FindArgs {
    /// Part of a name (several: any of them)
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct GrepArgs {
    /// A regular expression (Rust regex syntax)
    pub pattern: String,
    /// Ignore case
    #[arg(long, short = 'i')]
    pub ignore_case: bool,
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// These entries [default: every entry `vault audit` says to rotate]
    #[arg(add = ArgValueCandidates::new(entries))]
    pub entries: Vec<String>,
    /// Only what this former member could read
    #[arg(long, value_name = "NAME", conflicts_with = "entries")]
    pub member: Option<String>,
    /// Password length for generated passwords [default: $PASSWORD_STORE_GENERATED_LENGTH, else 25]
    #[arg(long)]
    pub length: Option<usize>,
}

#[derive(Args, Debug)]
pub struct UpdateMemberArgs {
    /// The member's name (see `vault members`)
    #[arg(add = ArgValueCandidates::new(members))]
    pub name: String,
    /// The member's updated public key (armored or binary)
    #[arg(value_name = "KEYFILE", required_unless_present = "from_gpg")]
    pub key: Option<PathBuf>,
    /// Take the updated key from your GnuPG keyring (`gpg --export FINGERPRINT`)
    #[arg(long, conflicts_with = "key")]
    pub from_gpg: bool,
}

#[derive(Args, Debug)]
pub struct ReplaceKeyArgs {
    /// The member's name (see `vault members`)
    #[arg(add = ArgValueCandidates::new(members))]
    pub name: String,
    /// The member's new public key (armored or binary)
    #[arg(value_name = "NEWKEYFILE")]
    pub key: PathBuf,
    /// The old key was compromised: list what it could read, to rotate
    #[arg(long)]
    pub compromised: bool,
    /// Assert the new key's fingerprint (checked with the member out of band); no prompt
    #[arg(long, value_name = "FPR")]
    pub fingerprint: Option<String>,
}

#[derive(Args, Debug)]
pub struct FolderAccessArgs {
    /// The member's name (see `vault members`)
    #[arg(add = ArgValueCandidates::new(members))]
    pub name: String,
    /// The folder
    #[arg(long, value_name = "DIR", required = true)]
    pub folder: String,
    /// The folder may be new (holds no entry and no .gpg-id yet)
    #[arg(long)]
    pub create: bool,
}

/// How many days ahead `members` and `audit` warn of a member key's expiry.
#[derive(Args, Debug, Clone, Copy)]
pub struct ExpiryArgs {
    /// Warn of member keys that expire within DAYS days
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = 30,
        env = "VAULT_EXPIRY_WARNING_DAYS"
    )]
    pub expiry_warning: u32,
}

impl ExpiryArgs {
    /// The warning period.
    pub fn within(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.expiry_warning) * 86_400)
    }
}

#[derive(Args, Debug)]
pub struct MembersArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub expiry: ExpiryArgs,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Print one JSON document (schema: docs/audit-json.md)
    #[arg(long)]
    pub json: bool,
    /// Only what this member can read now
    #[arg(long, value_name = "NAME")]
    pub member: Option<String>,
    /// Only entries in this folder
    #[arg(long, value_name = "DIR")]
    pub folder: Option<String>,
    #[command(flatten)]
    pub expiry: ExpiryArgs,
    /// Decrypt (in memory, with your key) to check that rotated passwords really changed, and
    /// to find empty, weak (zxcvbn) and reused passwords; only names and findings are printed
    #[arg(long)]
    pub decrypt: bool,
    /// Entries unchanged for longer than this are a problem: days (`365`, `365d`), weeks
    /// (`52w`) or years (`1y`)
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub max_age: Option<std::time::Duration>,
}

/// `--max-age`: `N`, `Nd`, `Nw` or `Ny`.
fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (number, days_per) = match s.strip_suffix(['d', 'w', 'y']) {
        Some(n) if s.ends_with('w') => (n, 7),
        Some(n) if s.ends_with('y') => (n, 365),
        Some(n) => (n, 1),
        None => (s, 1),
    };
    let bad = || "give a number of days (365 or 365d), weeks (52w) or years (1y)".to_string();
    let n: u64 = number.trim().parse().map_err(|_| bad())?;
    n.checked_mul(days_per * 86_400)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// Settle a reviewed violation for the whole team: record, in a commit signed by you (a
    /// trusted member), that the changes of COMMIT are vouched for
    #[arg(long, value_name = "COMMIT")]
    pub accept: Option<String>,
}

/// The store completion reads: `$PASSWORD_STORE_DIR`, else `~/.password-store` (a shell
/// completing a word has not parsed `--store`).
fn completion_store() -> Option<vault::snapshot::Snapshot> {
    let dir = std::env::var_os("PASSWORD_STORE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".password-store")))?;
    vault::snapshot::Snapshot::open_lenient(&dir)
        .ok()
        .map(|(s, _)| s)
}

/// Entry names, for the shell's completion.
fn entries() -> Vec<CompletionCandidate> {
    let Some(store) = completion_store() else {
        return Vec::new();
    };
    store
        .layout()
        .entries
        .iter()
        .map(|e| CompletionCandidate::new(e.name.clone()))
        .collect()
}

/// Member names, for the shell's completion.
fn members() -> Vec<CompletionCandidate> {
    let Some(store) = completion_store() else {
        return Vec::new();
    };
    store
        .roster()
        .members()
        .map(|(n, _)| CompletionCandidate::new(n.to_string()))
        .collect()
}
