//! The identifiers vault validates once, at the edge, and passes around: key fingerprints and key
//! ids (RFC 9580 §5.5.4: a v4 fingerprint is 20 bytes, its key id the low 8), and member names.
//! No sequoia, no git: `crypto` converts from sequoia's types.

use std::fmt;

use crate::error::{Error, Result};

/// A v4 OpenPGP fingerprint: 20 bytes, written as 40 upper-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 20]);

/// A v4 key id: the low 8 bytes of a key's fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02X}"))
}

impl Fingerprint {
    /// Parses 40 hex digits (spaces and a `0x` prefix allowed).
    pub fn parse(s: &str) -> Option<Self> {
        parse_hex(s).map(Fingerprint)
    }

    pub fn key_id(&self) -> KeyId {
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.0[12..]);
        KeyId(id)
    }

    /// Groups of four digits, as GnuPG shows them for comparison by people.
    pub fn grouped(&self) -> String {
        let hex = self.to_string();
        let groups: Vec<&str> = (0..10).map(|i| &hex[i * 4..i * 4 + 4]).collect();
        format!("{}  {}", groups[..5].join(" "), groups[5..].join(" "))
    }

    /// The first two groups: enough to recognise a key in a commit subject.
    pub fn short(&self) -> String {
        let hex = self.to_string();
        format!("{} {} …", &hex[0..4], &hex[4..8])
    }

    /// A fingerprint from its 20 bytes.
    pub(crate) fn from_bytes(bytes: [u8; 20]) -> Self {
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl KeyId {
    /// Parses 16 hex digits (a `0x` prefix allowed).
    pub fn parse(s: &str) -> Option<Self> {
        parse_hex(s).map(KeyId)
    }

    /// A key id from its 8 bytes.
    pub(crate) fn from_bytes(bytes: [u8; 8]) -> Self {
        KeyId(bytes)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A member's name as people type it: letters, digits, `.`, `_`, `-`; not starting with `.` or
/// `-`; at most 64 characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct MemberName(String);

impl MemberName {
    /// # Errors
    /// [`Error::InvalidName`] naming the value.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why| Error::InvalidName {
            what: "member name",
            value: s.to_string(),
            why,
        };
        if s.is_empty() || s.len() > 64 {
            return Err(bad("it must be 1 to 64 characters long"));
        }
        if s.starts_with('.') || s.starts_with('-') {
            return Err(bad("it must not start with '.' or '-'"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(bad("it may hold only letters, digits, '.', '_' and '-'"));
        }
        if s.contains("..") {
            return Err(bad("it must not contain '..'"));
        }
        Ok(MemberName(s.to_string()))
    }

    /// A name made from an e-mail address's local part (`Eduardo.Diaz@coop` -> `eduardo.diaz`).
    pub fn from_email(email: &str) -> Option<Self> {
        let local = email.split('@').next()?.to_ascii_lowercase();
        let cleaned: String = local
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let trimmed = cleaned.trim_start_matches(['.', '-']).replace("..", ".");
        Self::parse(&trimmed).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}
