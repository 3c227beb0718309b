//! The user's GnuPG public keyring, read only when adopting a store: `gpg --export` for each
//! `.gpg-id` recipient that `.public-keys/` does not have. (This one-time import is the only
//! place vault runs gpg; entries are never decrypted or encrypted by it.)

use std::process::Command;

use crate::store::Recipient;

/// Exports the public certificates GnuPG finds for `recipient` (none: empty output).
///
/// # Errors
/// A message for people if gpg cannot be run or fails.
pub fn export(recipient: &Recipient) -> Result<Vec<u8>, String> {
    let query = match recipient {
        Recipient::Fingerprint(f) => f.to_string(),
        Recipient::KeyId(k) => k.to_string(),
        Recipient::Email(e) => format!("<{e}>"),
    };
    let out = Command::new("gpg")
        .args(["--batch", "--no-tty", "--quiet", "--export", "--", &query])
        .output()
        .map_err(|e| {
            format!("cannot run gpg to look the key up ({e}); put the key in .public-keys/<FINGERPRINT> instead")
        })?;
    if !out.status.success() && out.stdout.is_empty() {
        return Err(format!(
            "gpg --export failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}
