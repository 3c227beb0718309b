//! `vault verify --accept COMMIT`: a trusted member settles a reviewed violation for the whole
//! team with a signed commit that changes no file and names the accepted commit in its
//! trailers (`Vault-Action: accept`, `Vault-Accept: <full id>`); `vault verify` in every clone
//! then counts what that commit added as vouched for by the signer.

use super::*;
use crate::crypto::Identity;
use crate::error::{Error, Result};
use crate::git::{Change, CommitId};
use crate::snapshot::Snapshot;
use crate::text::escape;

impl Snapshot {
    /// Records the acceptance of `commit`, whose `changes` (what `verify` found unvouched in
    /// it, one line each) the operator reviewed, as one commit signed by `operator`.
    ///
    /// # Errors
    /// [`Error::Identity`] if the operator's key cannot sign; git errors.
    pub fn accept(
        &self,
        commit: CommitId,
        changes: &[String],
        operator: &Identity,
    ) -> Result<CommitId> {
        let body = changes
            .iter()
            .map(|c| format!("- {}", escape(c)))
            .collect::<Vec<_>>()
            .join("\n");
        let message = commit_message(
            &format!("Accept the changes of commit {}", commit.short()),
            &format!(
                "Reviewed by {} ({}), who vouches for:\n{body}",
                escape(operator.user_id()),
                operator.fingerprint()
            ),
            &[
                ("Vault-Action".into(), "accept".into()),
                ("Vault-Accept".into(), commit.to_string()),
            ],
        );
        let change = Change {
            writes: Vec::new(),
            deletes: Vec::new(),
            message,
            action: "accept".into(),
            replaces: None,
        };
        let sign = |data: &[u8]| sign_as(operator, data, true);
        if !operator.can_sign() {
            return Err(Error::Identity {
                file: operator.fingerprint().to_string(),
                problem: "it has no usable signing key, and an acceptance must be signed".into(),
            });
        }
        self.repo
            .commit(&change, false, Some(&sign), None, &|| false)
    }
}
