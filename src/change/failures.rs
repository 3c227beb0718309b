//! Phase 1's failures, gathered from every entry, and the one error that tells people about
//! them (an interruption first, then a corrupt entry, then any other error, then every entry the
//! operator cannot decrypt, named together).

use crate::crypto::Identity;
use crate::error::Error;

/// Why phase 1 could not prepare one entry.
pub(super) enum Failure {
    NoIdentity,
    /// The operator is not among its readers: the key ids of those who are (`None`: hidden).
    CannotDecrypt(Vec<Option<crate::crypto::KeyId>>),
    Corrupt(String),
    Other(Error),
}

/// `readers` names a reader key id: the member's name, when it is a member's key.
pub(super) fn summarise_failures(
    mut failures: Vec<(String, Failure)>,
    identity: Option<&Identity>,
    readers: &dyn Fn(crate::crypto::KeyId) -> Option<String>,
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
    if let Some(agent) = identity
        .filter(|i| i.agent_lost())
        .and_then(|i| i.agent_error())
    {
        return Error::Identity {
            file: "gpg-agent".into(),
            problem: format!(
                "the connection to it broke during the change ({agent}), so nothing was changed; \
                 run the command again (gpg-agent starts again when asked)"
            ),
        };
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
        // Each entry with who can repair it: the members among its readers.
        entries: failures
            .into_iter()
            .filter_map(|(name, f)| match f {
                Failure::CannotDecrypt(ids) => {
                    let mut who: Vec<String> =
                        ids.iter().flatten().filter_map(|id| readers(*id)).collect();
                    who.sort();
                    who.dedup();
                    Some(match who.is_empty() {
                        true => format!("{} (no member can read it)", crate::text::escape(&name)),
                        false => format!(
                            "{} (readable by {})",
                            crate::text::escape(&name),
                            who.join(", ")
                        ),
                    })
                }
                _ => None,
            })
            .collect(),
    }
}
