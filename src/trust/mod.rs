//! Who may change who can read the store: the per-clone trust anchor and `vault verify`.
//!
//! Anyone who can push to the team's remote can add a key to `.gpg-id`; the next honest
//! re-encryption would then hand them every credential. So each clone pins, locally (in
//! `.git/vault-anchor`, never in the repository), a commit and the fingerprints the user trusted
//! at that commit. From there, every commit on the first-parent line to HEAD that changes who can
//! read (`.gpg-id` files, `.public-keys/`, `.members.toml`) is checked: an addition must be
//! vouched for — the commit signed by a key that was a trusted member in its parent, or (stores
//! using pass's signing) a `.gpg-id.sig` by such a key. Trusted members who leave every `.gpg-id`
//! stop being trusted, so a removed member cannot vouch for anything later.

//!
//! The parts: [`anchor`] (the pinned commit and fingerprints), `state` (who reads what at one
//! commit), `judge` (the rules for one commit, pure) and [`verify`] (the walk that feeds it).

mod anchor;
mod judge;
mod state;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use anchor::{anchor_at, Anchor};
use judge::{judge, shown_gpg_id, Ledger, Stamp, Vouchers};
use state::{Reader, State};

use crate::crypto::{verify_detached, Fingerprint, MemberKey};
use crate::error::Result;
use crate::git::{CommitId, Repo, TreeCache};
use crate::store::{gpg_id_path, is_membership_file};
use crate::text::{escape, format_unix};

/// One change of who can read, found by [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Short commit id, for people.
    pub commit: String,
    /// Full commit id (hex): what to match on (a short id can be ground to collide).
    #[serde(skip)]
    pub id: String,
    pub author: String,
    pub date: String,
    /// What the commit changed, for people.
    pub change: String,
    /// Who vouched for it (signer or `.gpg-id.sig` key), if anyone trusted did.
    pub vouched_by: Option<String>,
    /// The recipient an unvouched addition concerns (to clear it if vouched for later).
    #[serde(skip)]
    subject: Option<String>,
}

/// The outcome of [`verify`].
#[derive(Debug, Default, Serialize)]
pub struct Verification {
    /// Unvouched additions of recipients or keys, bad `.gpg-id.sig` files, a broken chain.
    pub violations: Vec<Finding>,
    /// Unvouched removals and edits.
    pub warnings: Vec<Finding>,
    /// Additions vouched for by a trusted member.
    pub vouched: Vec<Finding>,
    /// Commits that changed who can read, and were checked.
    pub checked: usize,
    /// Recipients at HEAD whose addition was not vouched for, with the commit that added them.
    pub unverified: BTreeMap<String, String>,
    /// Fingerprints trusted at HEAD.
    #[serde(skip)]
    pub trusted: BTreeSet<Fingerprint>,
    /// When this clone's trusted commit is no longer in HEAD's history (a reset, a rebase, an
    /// amended commit), the anchor the walk started from instead: see [`verify`].
    pub reanchored: Option<Reanchored>,
}

/// Trust moved back to where the old trusted commit and HEAD meet.
#[derive(Debug, Clone, Serialize)]
pub struct Reanchored {
    /// The trusted commit that left the history (short id).
    pub from: String,
    /// Their merge base (short id), now the trusted commit.
    pub to: String,
    /// The anchor to save: the merge base, trusting only those the old anchor trusted who were
    /// recipients there.
    #[serde(skip)]
    pub anchor: Anchor,
}

/// Checks every membership change from the anchor to `head` (see the module documentation).
///
/// When the anchor's commit is no longer on HEAD's first-parent line (someone reset, rebased or
/// amended), the walk starts from the merge base of the two instead, trusting only the
/// fingerprints the anchor trusted that were recipients at the merge base: never more than the
/// old anchor did (everything after the merge base is judged again). The new anchor is in
/// [`Verification::reanchored`], for the caller to save.
///
/// # Errors
/// Git errors reading history.
pub fn verify(repo: &Repo, anchor: &Anchor, head: CommitId) -> Result<Verification> {
    let mut out = Verification {
        trusted: anchor.trusted.clone(),
        ..Default::default()
    };
    let mut anchor = anchor;
    let rebased;
    let mut chain = repo.chain(anchor.commit, head)?;
    if chain.is_none() {
        let base = repo.merge_base(anchor.commit, head);
        if let Some((base, from_base)) =
            base.and_then(|b| Some((b, repo.chain(b, head).ok().flatten()?)))
        {
            rebased = narrowed(repo, anchor, base)?;
            chain = Some(from_base);
            out.reanchored = Some(Reanchored {
                from: anchor.commit.short(),
                to: base.short(),
                anchor: rebased.clone(),
            });
            out.trusted = rebased.trusted.clone();
            anchor = &rebased;
        }
    }
    let Some(chain) = chain else {
        out.violations.push(Finding::at_head(
            head,
            format!(
                "HEAD does not descend from the trusted commit {} (history was rewritten, or this \
                 is another store)",
                anchor.commit.short()
            ),
        ));
        return Ok(out);
    };
    let mut reader = Reader::new(repo);
    let mut prev = reader.state(anchor.commit)?;
    let mut ledger = Ledger {
        trusted: anchor.trusted.iter().map(|f| f.to_string()).collect(),
        ..Default::default()
    };
    let mut trees = TreeCache::default();
    for (info, parent) in &chain {
        // A symbolic link anywhere can change which `.gpg-id` a folder reads (pass follows
        // them, and so does vault): such a commit is checked too.
        // A `vault verify --accept` commit changes no file: it is checked for its trailers.
        let membership = |p: &str, is_link: bool| is_link || is_membership_file(p);
        if !repo.touches(info.id, *parent, &membership, &mut trees)?
            && judge::accepted_commits(&info.message).is_empty()
        {
            continue;
        }
        let state = reader.state(info.id)?;
        out.checked += 1;
        let vouchers = vouchers(repo, info.id, &ledger, (&prev, &state));
        let stamp = Stamp {
            id: info.id.to_string(),
            commit: info.id.short(),
            author: info.author.clone(),
            date: format_unix(info.time),
            message: &info.message,
        };
        judge(&mut out, &mut ledger, &stamp, (&prev, &state), &vouchers);
        prev = state;
    }
    check_signed_gpg_ids(repo, head, &prev, &ledger, &mut out);
    settle(&mut out, ledger, &prev, anchor);
    Ok(out)
}

/// This clone's trust carried to `commit` (an ancestor of HEAD or of the upstream, such as
/// their merge base): verified from the anchor when the anchor leads to it; otherwise (the
/// anchor is past it) the anchor's fingerprints that are recipients there: never more than the
/// anchor trusts.
///
/// # Errors
/// Git errors reading history.
pub fn trust_at(repo: &Repo, anchor: &Anchor, commit: CommitId) -> Result<Anchor> {
    if repo.chain(anchor.commit, commit)?.is_some() {
        let v = verify(repo, anchor, commit)?;
        return Ok(Anchor {
            commit,
            trusted: v.trusted,
        });
    }
    narrowed(repo, anchor, commit)
}

/// An anchor at `commit` trusting only those `anchor` trusts who are recipients there: never
/// more than the anchor did.
fn narrowed(repo: &Repo, anchor: &Anchor, commit: CommitId) -> Result<Anchor> {
    let state = Reader::new(repo).state(commit)?;
    let recipients = state.recipients();
    Ok(Anchor {
        commit,
        trusted: anchor
            .trusted
            .iter()
            .filter(|f| recipients.contains(f.to_string().as_str()))
            .copied()
            .collect(),
    })
}

/// The trusted keys that vouch for `commit`: who signed it, and whose `.gpg-id.sig` verifies
/// each folder it adds someone to. Trusted means trusted before the commit; their certificates
/// come from the parent or, for a key the commit itself updates, from the commit.
fn vouchers(
    repo: &Repo,
    commit: CommitId,
    ledger: &Ledger,
    (prev, state): (&State, &State),
) -> Vouchers {
    let certs: Vec<&MemberKey> = ledger
        .trusted
        .iter()
        .filter_map(|t| Fingerprint::parse(t))
        .filter_map(|f| prev.keys.get(&f).or(state.keys.get(&f)))
        .collect();
    let signer = repo
        .signature(commit)
        .and_then(|(sig, data)| verify_detached(&sig, &data, &certs));
    let folders = state
        .pairs
        .difference(&prev.pairs)
        .map(|(folder, _)| folder)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|folder| {
            let sig = state
                .signatures
                .get(&format!("{}.sig", gpg_id_path(folder)))?;
            let data = state.gpg_ids.get(folder)?;
            let by = verify_detached(&repo.read(*sig).ok()?, &repo.read(*data).ok()?, &certs)?;
            Some((folder.clone(), by))
        })
        .collect();
    Vouchers { signer, folders }
}

/// pass's signed recipients (`.gpg-id.sig`) must verify, at HEAD, against a trusted member.
fn check_signed_gpg_ids(
    repo: &Repo,
    head: CommitId,
    at_head: &State,
    ledger: &Ledger,
    out: &mut Verification,
) {
    let certs: Vec<&MemberKey> = ledger
        .trusted
        .iter()
        .filter_map(|t| Fingerprint::parse(t).and_then(|f| at_head.keys.get(&f)))
        .collect();
    for (path, sig) in &at_head.signatures {
        let folder = path
            .strip_suffix(".gpg-id.sig")
            .map(|f| f.strip_suffix('/').unwrap_or(f))
            .unwrap_or(path);
        let ok = at_head
            .gpg_ids
            .get(folder)
            .and_then(|g| verify_detached(&repo.read(*sig).ok()?, &repo.read(*g).ok()?, &certs))
            .is_some();
        if !ok {
            out.violations.push(Finding::at_head(
                head,
                format!(
                    "{} is not a valid signature of {} by a trusted member",
                    escape(path),
                    shown_gpg_id(folder)
                ),
            ));
        }
    }
}

/// Ends the walk: an addition vouched for later (a trusted member re-added the key) is no
/// longer a violation; recipients at HEAD nobody vouched for are listed with the commit that
/// added them (the anchor's, if they were there before it and not trusted then).
fn settle(out: &mut Verification, ledger: Ledger, at_head: &State, anchor: &Anchor) {
    let Ledger {
        trusted,
        added_by,
        accepted,
    } = ledger;
    let (cleared, violations): (Vec<Finding>, Vec<Finding>) = std::mem::take(&mut out.violations)
        .into_iter()
        .partition(|f| {
            accepted.contains(&f.id) || f.subject.as_ref().is_some_and(|r| trusted.contains(r))
        });
    out.violations = violations;
    out.warnings.extend(cleared.into_iter().map(|f| Finding {
        change: if accepted.contains(&f.id) {
            format!("{} (accepted by a trusted member later)", f.change)
        } else {
            format!("{} (vouched for by a trusted member later)", f.change)
        },
        ..f
    }));
    for r in at_head.recipients() {
        if !trusted.contains(r) {
            let commit = added_by
                .get(r)
                .map(|full| full.chars().take(10).collect())
                .unwrap_or_else(|| anchor.commit.short());
            out.unverified.insert(r.to_string(), commit);
        }
    }
    out.trusted = trusted
        .iter()
        .filter_map(|t| Fingerprint::parse(t))
        .collect();
}

impl Finding {
    /// A finding about the store at HEAD rather than about one commit.
    fn at_head(head: CommitId, change: String) -> Finding {
        Finding {
            commit: head.short(),
            id: head.to_string(),
            author: String::new(),
            date: String::new(),
            change,
            vouched_by: None,
            subject: None,
        }
    }
}
