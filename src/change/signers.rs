//! Who signs the `.gpg-id.sig` files a change writes: a key the team's pass accepts there.

use std::collections::BTreeMap;

use super::*;
use crate::crypto::{self, Identity, MemberKey};
use crate::error::{Error, Result};
use crate::snapshot::*;
use crate::store::gpg_id_path;

/// Who signs each `.gpg-id.sig` a change writes.
pub(super) type GpgIdSigners<'i> = BTreeMap<String, &'i Identity>;

impl Snapshot {
    /// For each `.gpg-id.sig` the plan must write (one exists, or `PASSWORD_STORE_SIGNING_KEY`
    /// is set), the key to sign it with: one pass will accept, as pass checks a signature's
    /// signer (primary or signing key) against `PASSWORD_STORE_SIGNING_KEY`. When that is unset
    /// here, the team's pass still expects the key that signed the existing signature, so that
    /// key it must be. Decided before anything is decrypted or written.
    ///
    /// # Errors
    /// [`Error::GpgIdSigner`] naming the file and the key pass expects when neither the operator
    /// nor the plan's `.gpg-id` signer is that key.
    pub(super) fn gpg_id_signers<'i>(
        &self,
        plan: &'i Plan,
        operator: &'i Identity,
    ) -> Result<GpgIdSigners<'i>> {
        let mut out = BTreeMap::new();
        for folder in &plan.changed {
            let sig_path = format!("{}.sig", gpg_id_path(folder));
            if let Some(target) = self.layout.links.get(&sig_path) {
                // A link to the signature of the `.gpg-id` this folder reads is kept valid by
                // re-signing that one; a link anywhere else would go stale.
                let source = plan.links.get(folder).unwrap_or(folder);
                if *target == format!("{}.sig", gpg_id_path(source)) {
                    continue;
                }
                return Err(Error::BadFile {
                    file: crate::text::escape(&sig_path).into_owned(),
                    problem: format!(
                        "a symbolic link to {}, which is not the signature of the .gpg-id this \
                         folder reads: the change would leave it stale, and pass would refuse it",
                        crate::text::escape(target)
                    ),
                });
            }
            // A store that signs its `.gpg-id` files signs every one: a new folder's needs a
            // signature too, or every teammate's pass refuses it ("Signature … does not exist").
            let existing: Vec<_> = match self.layout.signatures.get(&sig_path) {
                Some(sig) => vec![*sig],
                None => self.layout.signatures.values().copied().collect(),
            };
            if existing.is_empty() && plan.pass_signing_keys.is_empty() {
                continue;
            }
            let (expected, rule): (Vec<String>, &str) = if plan.pass_signing_keys.is_empty() {
                let mut issuers = Vec::new();
                for sig in existing {
                    issuers.extend(crypto::signature_issuers(&self.repo.read(sig)?));
                }
                // pass matches the signer's primary fingerprint as well as its signing key's: a
                // member's newer signing subkey is as good as the one that signed before.
                let primaries: Vec<String> = issuers
                    .iter()
                    .filter_map(|h| self.key_named(h))
                    .map(|k| k.fingerprint().to_string())
                    .collect();
                issuers.extend(primaries);
                issuers.sort();
                issuers.dedup();
                if issuers.is_empty() {
                    return Err(Error::BadFile {
                        file: crate::text::escape(&sig_path).into_owned(),
                        problem: "the store's .gpg-id signatures do not say who made them, so \
                                  vault cannot tell which key the team's pass accepts"
                            .into(),
                    });
                }
                (
                    issuers,
                    "the key that signed the store's .gpg-id files (pass checks it against \
                     PASSWORD_STORE_SIGNING_KEY)",
                )
            } else {
                (
                    plan.pass_signing_keys
                        .iter()
                        .map(|f| f.to_string())
                        .collect(),
                    "PASSWORD_STORE_SIGNING_KEY",
                )
            };
            let accepted = |id: &Identity| expected.iter().any(|h| id.signs_as(h));
            let signer = [Some(operator), plan.gpg_id_signer.as_ref()]
                .into_iter()
                .flatten()
                .find(|id| accepted(id))
                .ok_or_else(|| Error::GpgIdSigner {
                    file: crate::text::escape(&sig_path).into_owned(),
                    expected: expected
                        .iter()
                        .map(|h| self.describe_key(h))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    rule: rule.into(),
                    operator: operator.fingerprint().to_string(),
                })?;
            out.insert(sig_path, signer);
        }
        Ok(out)
    }

    /// The member certificate that binds the key `handle` names (a fingerprint or key id, hex).
    fn key_named(&self, handle: &str) -> Option<&MemberKey> {
        let fpr = crypto::Fingerprint::parse(handle);
        let id = crypto::KeyId::parse(handle);
        self.keys.values().find(|k| {
            fpr.is_some_and(|f| k.has_fingerprint(f)) || id.is_some_and(|i| k.has_bound_key_id(i))
        })
    }

    /// A key named by fingerprint or key id (hex), with the member's name when it is a member's.
    fn describe_key(&self, handle: &str) -> String {
        match self.key_named(handle) {
            Some(k) => format!("{handle} (member {})", self.display_name(k.fingerprint())),
            None => handle.to_string(),
        }
    }
}
