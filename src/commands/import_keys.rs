//! `vault import-keys`: the team's keys in the user's own GnuPG keyring, for plain `pass` and
//! `gpg`, with GnuPG's trust following vault's.
//!
//! pass encrypts with `gpg --encrypt -r KEY` for each `.gpg-id` line, and GnuPG refuses a key it
//! does not consider valid ("There is no assurance this key belongs to the named user"). Teams
//! used to get past that with `gpg --import .public-keys/*` and `trust-model always`, which makes
//! pass encrypt to any key a push puts in `.gpg-id`. Instead, this command:
//!
//! 1. reads the store at HEAD and checks its history from this clone's trust anchor, as
//!    `vault verify` does (on first use the anchor the user confirms is saved, so that a later
//!    run judges what arrives after it);
//! 2. finds the user's own key: the secret key in GnuPG whose fingerprint is a member's, which
//!    must have ultimate ownertrust (see [`own_key`]);
//! 3. imports each recipient of any `.gpg-id` that `vault verify` vouches for, from
//!    `.public-keys/`, and certifies it locally with the user's key (`gpg --quick-lsign-key`: a
//!    non-exportable certification that never leaves the keyring), unless it is certified
//!    already;
//! 4. withdraws that certification from former members, and from recipients no longer vouched
//!    for (`gpg --quick-revoke-sig`);
//! 5. leaves out, and names with the commit that added them, the recipients nobody trusted
//!    vouched for, and recipients without a usable certificate: with no valid key for them,
//!    pass fails for their folders instead of encrypting to them. Any such recipient makes the
//!    exit code 3;
//! 6. asks GnuPG whether it now considers each imported key valid, and says to how many
//!    members pass can encrypt.
//!
//! It changes nothing in the store (only this clone's trust anchor, on first use); run again,
//! it changes nothing in the keyring either. The gpg invocations are in [`vault::keyring`].

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Context;

use vault::crypto::Fingerprint;
use vault::keyring::{self, Certifications, Imported, Unlock};
use vault::snapshot::Snapshot;
use vault::text::escape;
use vault::trust::{verify, Anchor};
use vault::Error;

use crate::cli::Global;
use crate::commands::verify::say_reanchored;
use crate::commands::{anchor, report_recovery, store_path};
use crate::ui;

/// Imports and certifies the vouched recipients' keys; returns whether a recipient was left
/// out (exit code 3).
pub fn run(global: &Global, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<bool> {
    // Lenient: a `.gpg-id` line whose certificate is missing is named below, not fatal.
    let (vault, recovery) = Snapshot::open_lenient(&store_path(global)?)?;
    report_recovery(recovery, err)?;
    if vault.layout().members.is_none() {
        return Err(Error::NotAdopted(vault.root().to_path_buf()).into());
    }
    if global.identity.is_some() {
        writeln!(
            err,
            "note: import-keys certifies with your secret key in GnuPG; --identity is not used"
        )?;
    }

    let fresh = Anchor::load(vault.repo())?.is_none();
    let anchor = anchor(&vault, global, err)?;
    if fresh {
        anchor.save(vault.repo())?;
    }
    let v = verify(vault.repo(), &anchor, vault.head())?;
    if let Some(r) = &v.reanchored {
        r.anchor.save(vault.repo())?;
        say_reanchored(r, err)?;
    }
    let unvouched = |f: &Fingerprint| v.unverified.contains_key(&f.to_string());

    let members: BTreeSet<Fingerprint> = vault.roster().members().map(|(_, f)| *f).collect();
    let recipients: BTreeSet<Fingerprint> =
        vault.recipients().values().flatten().copied().collect();
    let own = own_key(&vault, &members)?;
    let unlock = match &global.passphrase_file {
        Some(file) => Unlock::File(file),
        None if global.yes || !ui::interactive() => Unlock::Never,
        None => Unlock::Agent,
    };
    let mut report = Report::new(&vault, out);

    // Vouched recipients: named members first, then keys `.members.toml` does not name.
    let mut vouched: Vec<Fingerprint> = vault
        .roster()
        .members()
        .map(|(_, f)| *f)
        .filter(|f| recipients.contains(f))
        .collect();
    vouched.extend(recipients.iter().filter(|f| !members.contains(f)));
    vouched.retain(|f| !unvouched(f));
    // First, so that nothing below can keep it from happening: former members, replaced keys
    // and recipients vault does not vouch for keep no certification of ours.
    let former: Vec<Fingerprint> = vault
        .roster()
        .former()
        .iter()
        .map(|f| f.fingerprint)
        .filter(|f| !members.contains(f) && !recipients.contains(f) && *f != own)
        .collect();
    let unvouched_keys: Vec<Fingerprint> = v
        .unverified
        .keys()
        .filter_map(|r| Fingerprint::parse(r))
        .filter(|f| *f != own)
        .collect();
    // Keys members replaced (`vault replace-key`): pass must not encrypt to them either.
    let replaced: Vec<(Fingerprint, &str)> = vault
        .roster()
        .replaced()
        .iter()
        .filter(|r| !recipients.contains(&r.fingerprint) && r.fingerprint != own)
        .map(|r| {
            let label = if r.compromised {
                "compromised old key"
            } else {
                "replaced key"
            };
            (r.fingerprint, label)
        })
        .collect();
    let to_withdraw = former
        .iter()
        .map(|f| (*f, "former member"))
        .chain(replaced)
        .chain(unvouched_keys.iter().map(|f| (*f, "not vouched for")));
    for (fpr, who) in to_withdraw {
        let Some(before) = keyring::certifications(fpr, own)? else {
            continue;
        };
        if before.live {
            withdraw(&mut report, fpr, who, own, &before, unlock)?;
        }
    }

    let mut readable = Vec::new();
    for fpr in vouched {
        if fpr == own {
            report.row("your key", fpr, "")?;
            readable.push(fpr);
            continue;
        }
        let Some(key) = vault.keys().get(&fpr) else {
            continue; // a resolved recipient has a key; the unresolved are problems, below
        };
        // A certificate an unsigned commit changed (rolled back to before a subkey was revoked,
        // say) is not imported until a trusted member signs for it.
        let key_file = format!("changes key {}/{fpr}", vault::store::PUBLIC_KEYS);
        if let Some(w) = v.warnings.iter().find(|w| w.change.starts_with(&key_file)) {
            report.left_out(
                "NOT IMPORTED",
                fpr,
                &format!(
                    "its certificate was changed by commit {} without a trusted member's \
                     signature; a trusted member takes the right one with `vault update-member`, \
                     or accepts that change with `vault verify --accept {}`",
                    w.commit, w.commit
                ),
            )?;
            continue;
        }
        if let Some(problem) = key.problem() {
            report.left_out(
                "NOT IMPORTED",
                fpr,
                &format!(
                    "{problem}: pass cannot encrypt to it; ask its owner for a current key \
                     (`vault update-member`)"
                ),
            )?;
            continue;
        }
        let name = vault.display_name(fpr);
        // A certificate gpg refuses (no user id it accepts, say) is that member's problem only.
        let imported = match keyring::import(key.armored(), fpr) {
            Ok(i) => i,
            Err(e) => {
                let note = format!("gpg refused its certificate: {}", e.detail);
                report.left_out("NOT IMPORTED", fpr, &note)?;
                continue;
            }
        };
        let before = keyring::certifications(fpr, own)?.unwrap_or_default();
        let certified = !before.live;
        if certified {
            keyring::certify_locally(fpr, own, &before, unlock)
                .with_context(|| certify_failed(&name, fpr, unlock))?;
        }
        let status = match (imported, certified) {
            (Imported::New, _) => "imported, certified",
            (Imported::Updated, true) => "updated, certified",
            (Imported::Updated, false) => "updated",
            (Imported::Unchanged, true) => "certified",
            (Imported::Unchanged, false) => "already certified",
        };
        report.row(status, fpr, "")?;
        readable.push(fpr);
    }

    // What pass must not encrypt to, or cannot.
    let still_valid = keyring::public_keys(&unvouched_keys)?;
    for (r, commit) in &v.unverified {
        let fpr = Fingerprint::parse(r);
        let folders = fpr.map(|f| vault.folders_of(f)).unwrap_or_default();
        let mut note = format!(
            "added by commit {commit} without a trusted member's signature{}",
            listed_in(&folders)
        );
        if let Some(t) = fpr.and_then(|f| still_valid.get(&f)).filter(|t| t.valid()) {
            note.push_str(&format!(
                "; WARNING: your GnuPG still considers it valid (validity {}: certified by you \
                 or by someone you trust), so pass WILL encrypt to it",
                t.validity
            ));
        }
        match fpr {
            Some(f) => report.left_out("NOT IMPORTED", f, &note)?,
            None => report.left_out_text("NOT IMPORTED", r, &note)?,
        }
    }
    for problem in vault.gpg_id_problems() {
        match problem {
            Error::MissingKey { fingerprint, file } => {
                if v.unverified.contains_key(fingerprint) {
                    continue;
                }
                report.left_out_text(
                    "NOT IMPORTED",
                    fingerprint,
                    &format!(
                        "listed in {file}, but its certificate is not in .public-keys/: pass \
                         cannot encrypt to it"
                    ),
                )?;
            }
            other => report.left_out_text("CANNOT READ", "-", &other.to_string())?,
        }
    }

    // GnuPG's own word on what pass can now encrypt to.
    let trust = keyring::public_keys(&readable)?;
    let mut can = 0;
    for fpr in &readable {
        match trust.get(fpr) {
            Some(t) if t.valid() => can += 1,
            Some(t) => report.left_out(
                "NOT VALID",
                *fpr,
                &format!(
                    "certified, but your GnuPG does not consider it valid (validity {}): check \
                     `trust-model` in your gpg.conf (pgp, the default, counts these \
                     certifications)",
                    t.validity
                ),
            )?,
            None => report.left_out("NOT VALID", *fpr, "not in your GnuPG keyring")?,
        }
    }
    let left_out = report.left_out;
    writeln!(
        report.out,
        "\npass and gpg can now encrypt to the {} vault vouches for.",
        vault::text::count(can, "member", "members")
    )?;
    if left_out > 0 {
        writeln!(
            report.out,
            "{} left out: pass fails in the folders that list them instead of encrypting to \
             them. For a recipient nobody vouched for, ask who made that commit: if it is \
             right, a trusted member runs `vault verify --accept COMMIT`; if not, remove it.",
            vault::text::count(left_out, "recipient", "recipients")
        )?;
    }
    Ok(left_out > 0)
}

/// The user's own key: the secret key in their GnuPG keyring whose primary fingerprint is a
/// current member's, with its primary secret key there (certifying needs it).
///
/// Its ownertrust must already be ultimate, or the command stops before changing anything:
/// gpg counts only certifications by keys the user trusts (ultimately, for one certification
/// to be enough), so without it the certifications would change nothing and pass would still
/// refuse the members' keys. vault does not set it itself: ultimate ownertrust makes every
/// certification that key ever made, not only vault's, decide validity in that keyring, a
/// decision for the key's owner, which the error spells out in one command. A key generated
/// with gpg has it; one imported from another machine usually has not.
fn own_key(vault: &Snapshot, members: &BTreeSet<Fingerprint>) -> anyhow::Result<Fingerprint> {
    let secret = keyring::secret_keys()?;
    let mine: Vec<&keyring::SecretKey> = secret
        .iter()
        .filter(|k| members.contains(&k.fingerprint))
        .collect();
    let usable = mine
        .iter()
        .find(|k| k.primary_available && !matches!(k.validity, 'r' | 'e' | 'i' | 'd'));
    let Some(own) = usable else {
        if let Some(k) = mine.first() {
            let f = k.fingerprint;
            let why = if k.primary_available {
                "is revoked, expired or disabled in GnuPG"
            } else {
                "has its primary secret key elsewhere (`sec#`: kept offline), and certifying \
                 needs it"
            };
            anyhow::bail!(
                "your member key {f} ({}) {why}: run vault import-keys where the primary key is, \
                 or ask the team to move you to a current key (`vault replace-key`)",
                vault.display_name(f)
            );
        }
        let home = std::env::var_os("GNUPGHOME")
            .filter(|h| !h.is_empty())
            .map(|h| std::path::PathBuf::from(h).display().to_string())
            .unwrap_or_else(|| "~/.gnupg".into());
        anyhow::bail!(
            "none of the secret keys in your GnuPG keyring ({}) is a member's key: import your \
             secret key into GnuPG (`gpg --import YOUR-SECRET-KEY.asc`) and run vault \
             import-keys again; if you are not a member yet, ask a member to add you \
             (`vault add-member`)",
            escape(&home)
        );
    };
    let f = own.fingerprint;
    let ownertrust = keyring::public_keys(&[f])?
        .get(&f)
        .map_or('-', |t| t.ownertrust);
    if ownertrust != 'u' {
        anyhow::bail!(
            "your key {f} ({}) is not ultimately trusted in your GnuPG keyring (its ownertrust \
             is {}), so gpg would not count your certifications and pass would still refuse \
             the members' keys. If it is your own key, trust it ultimately with \
             `echo {f}:6: | gpg --import-ownertrust` (or `gpg --edit-key {f} trust`, then 5) \
             and run vault import-keys again. Nothing was changed",
            vault.display_name(f),
            ownertrust_name(ownertrust)
        );
    }
    Ok(f)
}

fn ownertrust_name(c: char) -> &'static str {
    match c {
        'n' => "never",
        'm' => "marginal",
        'f' => "full",
        'u' => "ultimate",
        _ => "unknown",
    }
}

/// The context of a failed certification: whose key, and what to do.
fn certify_failed(name: &str, fpr: Fingerprint, unlock: Unlock) -> String {
    let unlock_hint = match unlock {
        Unlock::Never => {
            " (with --yes or without a terminal, gpg-agent may not ask for your passphrase: \
             run it on a terminal, give --passphrase-file, or unlock your key in the agent \
             first)"
        }
        _ => "",
    };
    format!(
        "could not certify {name}'s key {fpr} with yours{unlock_hint}; run vault import-keys \
         again once fixed"
    )
}

/// Withdraws the user's local certification of `fpr` (`who`: why it must go), or says why
/// not: `gpg --quick-revoke-sig` revokes every certification by the user's key, and would
/// publish a revocation of a public (exportable) one the user made themselves.
fn withdraw(
    report: &mut Report,
    fpr: Fingerprint,
    who: &str,
    own: Fingerprint,
    before: &Certifications,
    unlock: Unlock,
) -> anyhow::Result<()> {
    if before.exportable {
        report.row(
            "still certified",
            fpr,
            &format!(
                "{who}, but you certified this key publicly (an exportable signature), which \
                 vault leaves to you: pass still encrypts to it. To withdraw it: \
                 `gpg --quick-revoke-sig {fpr} {own}`"
            ),
        )?;
        return Ok(());
    }
    keyring::withdraw_certifications(fpr, own, before, unlock).with_context(|| {
        format!(
            "could not withdraw your local certification of {fpr} ({who}); run vault \
             import-keys again once fixed"
        )
    })?;
    report.row(
        "withdrawn",
        fpr,
        &format!("{who}: your local certification is revoked"),
    )?;
    Ok(())
}

/// `; listed in /, ops/`: the folders, escaped (they are paths from the tree).
fn listed_in(folders: &[String]) -> String {
    if folders.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = folders.iter().map(|f| escape(f).into_owned()).collect();
    format!("; listed in {}", shown.join(", "))
}

/// The lines printed, one per key: status, name, fingerprint, note; and how many recipients
/// were left out.
struct Report<'a> {
    vault: &'a Snapshot,
    out: &'a mut dyn Write,
    width: usize,
    left_out: usize,
}

impl<'a> Report<'a> {
    fn new(vault: &'a Snapshot, out: &'a mut dyn Write) -> Report<'a> {
        let width = vault
            .roster()
            .members()
            .map(|(n, _)| n.to_string().len())
            .chain(
                vault
                    .roster()
                    .former()
                    .iter()
                    .map(|f| f.name.to_string().len()),
            )
            .chain([9])
            .max()
            .unwrap_or(9);
        Report {
            vault,
            out,
            width,
            left_out: 0,
        }
    }

    /// The member's name, a former member's, or `(unnamed)`.
    fn name(&self, fpr: Fingerprint) -> String {
        if let Some(n) = self.vault.roster().name_of(fpr) {
            return n.to_string();
        }
        self.vault
            .roster()
            .former()
            .iter()
            .find(|f| f.fingerprint == fpr)
            .map_or_else(|| "(unnamed)".into(), |f| f.name.to_string())
    }

    fn row(&mut self, status: &str, fpr: Fingerprint, note: &str) -> std::io::Result<()> {
        let name = self.name(fpr);
        self.line(status, &name, &fpr.to_string(), note)
    }

    /// One line, every part escaped (names, `.gpg-id` lines and paths come from the tree);
    /// flushed, so each key shows as soon as gpg is done with it.
    fn line(&mut self, status: &str, name: &str, key: &str, note: &str) -> std::io::Result<()> {
        let sep = if note.is_empty() { "" } else { "  " };
        let line = format!(
            "{status:<19}  {:<w$}  {}{sep}{}",
            escape(name),
            escape(key),
            escape(note),
            w = self.width
        );
        writeln!(self.out, "{}", line.trim_end())?;
        self.out.flush()
    }

    fn left_out(&mut self, status: &str, fpr: Fingerprint, note: &str) -> std::io::Result<()> {
        self.left_out += 1;
        self.row(status, fpr, note)
    }

    fn left_out_text(&mut self, status: &str, what: &str, note: &str) -> std::io::Result<()> {
        self.left_out += 1;
        let name = Fingerprint::parse(what).map_or_else(|| "-".into(), |f| self.name(f));
        self.line(status, &name, what, note)
    }
}
