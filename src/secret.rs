//! Plaintext and passphrases: held only in zeroizing memory, never displayed by accident.

use std::fmt;
use zeroize::Zeroizing;

/// Secret bytes: a decrypted entry or a passphrase. Zeroed on drop, redacted in `Debug`, no
/// `Display`; the bytes are reached only through the loudly named [`Secret::expose`].
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Secret(bytes)
    }

    /// The secret bytes. Every caller is a place where plaintext is in use: keep them few.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(Zeroizing::new(s.into_bytes()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([REDACTED; {} bytes])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::from("hunter2".to_string());
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("REDACTED"));
    }
}
