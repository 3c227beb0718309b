//! Phase 1's failures, gathered from every entry, and the one error that tells people about
//! them (an interruption first, then a corrupt entry, then any other error, then every entry the
//! operator cannot decrypt, named together).

use crate::crypto::Identity;
use crate::error::Error;

/// Why phase 1 could not prepare one entry.
pub(super) enum Failure {
    NoIdentity,
    CannotDecrypt,
    Corrupt(String),
    Other(Error),
}

pub(super) fn summarise_failures(
    mut failures: Vec<(String, Failure)>,
    identity: Option<&Identity>,
) -> Error {
    failures.sort_by(|a, b| a.0.cmp(&b.0));
    if failures
        .iter()
        .any(|(_, f)| matches!(f, Failure::Other(Error::Interrupted)))
    {
        return Error::Interrupted;
    }
    if let Some(i) = failures
        .iter()
        .position(|(_, f)| matches!(f, Failure::Corrupt(_)))
    {
        let (entry, f) = failures.swap_remove(i);
        let Failure::Corrupt(problem) = f else {
            unreachable!()
        };
        return Error::Entry { entry, problem };
    }
    if let Some(i) = failures
        .iter()
        .position(|(_, f)| matches!(f, Failure::Other(_)))
    {
        let Failure::Other(e) = failures.swap_remove(i).1 else {
            unreachable!()
        };
        return e;
    }
    if failures
        .iter()
        .any(|(_, f)| matches!(f, Failure::NoIdentity))
    {
        return Error::NoIdentity;
    }
    if let Some(agent) = identity.and_then(|i| i.agent_error()) {
        return Error::Identity {
            file: "gpg-agent".into(),
            problem: format!(
                "it could not decrypt ({agent}). With --yes or without a terminal, vault does not let the agent ask for a passphrase: \
                 unlock the key first (gpg-preset-passphrase, or `pass show` one entry), run on a terminal, or give --passphrase-file"
            ),
        };
    }
    Error::CannotDecrypt {
        identity: identity
            .map(|i| format!("{} ({})", i.fingerprint(), i.user_id()))
            .unwrap_or_default(),
        entries: failures
            .into_iter()
            .filter(|(_, f)| matches!(f, Failure::CannotDecrypt))
            .map(|(n, _)| n)
            .collect(),
    }
}
