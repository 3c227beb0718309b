//! Entries as OpenPGP messages: who they are encrypted to (their PKESKs, read without
//! decrypting), re-wrapping a session key for new readers, decrypting and encrypting as GnuPG 2.2
//! and pass read them.

use std::borrow::Cow;
use std::io::{Read, Write};

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::SessionKey;
use openpgp::packet::{Packet, PKESK};
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper,
};
use openpgp::parse::{PacketParser, PacketParserResult, Parse};
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message, Recipient};
use openpgp::serialize::Serialize;
use openpgp::types::{DataFormat, Features, SymmetricAlgorithm};
use zeroize::Zeroizing;

use crate::secret::Secret;

use super::*;

/// Where a message's encrypted data starts, and who its session key is wrapped for.
pub struct Envelope<'a> {
    pub(super) bytes: Cow<'a, [u8]>,
    pub(super) pkesks: Vec<PKESK>,
    pub(super) skesks: usize,
    pub(super) data_start: usize,
    pub(super) seipd_v1: bool,
}

/// A PKESK's recipient: a key id, or `None` for an anonymous ("wildcard") recipient.
pub type Reader = Option<KeyId>;

pub(super) struct Header {
    tag: u8,
    header_len: usize,
    /// `None` for a partial (streamed) or indeterminate body length.
    body_len: Option<usize>,
}

pub(super) fn read_header(buf: &[u8]) -> Result<Header, Malformed> {
    let first = *buf.first().ok_or("truncated packet header")?;
    if first & 0x80 == 0 {
        return Err(format!("invalid packet header byte 0x{first:02x}").into());
    }
    let byte = |i: usize| buf.get(i).copied().ok_or("truncated packet header");
    if first & 0x40 != 0 {
        let tag = first & 0x3f;
        let l0 = byte(1)? as usize;
        Ok(match l0 {
            0..=191 => Header {
                tag,
                header_len: 2,
                body_len: Some(l0),
            },
            192..=223 => Header {
                tag,
                header_len: 3,
                body_len: Some(((l0 - 192) << 8) + byte(2)? as usize + 192),
            },
            255 => {
                let mut n = 0usize;
                for i in 2..6 {
                    n = (n << 8) | byte(i)? as usize;
                }
                Header {
                    tag,
                    header_len: 6,
                    body_len: Some(n),
                }
            }
            _ => Header {
                tag,
                header_len: 1,
                body_len: None,
            },
        })
    } else {
        let tag = (first >> 2) & 0x0f;
        let len_bytes = match first & 3 {
            0 => 1,
            1 => 2,
            2 => 4,
            _ => {
                return Ok(Header {
                    tag,
                    header_len: 1,
                    body_len: None,
                })
            }
        };
        let mut n = 0usize;
        for i in 0..len_bytes {
            n = (n << 8) | byte(1 + i)? as usize;
        }
        Ok(Header {
            tag,
            header_len: 1 + len_bytes,
            body_len: Some(n),
        })
    }
}

/// Checks that a data packet (new format, possibly with partial body lengths) ends exactly at
/// the end of `buf`.
pub(super) fn check_data_extent(buf: &[u8], header: &Header) -> Result<(), Malformed> {
    let truncated = || Malformed::from("the encrypted data is truncated");
    let trailing = || Malformed::from("there is trailing data after the encrypted data");
    match header.body_len {
        Some(n) => match buf.len().cmp(&(header.header_len + n)) {
            std::cmp::Ordering::Less => Err(truncated()),
            std::cmp::Ordering::Greater => Err(trailing()),
            std::cmp::Ordering::Equal => Ok(()),
        },
        None if buf[0] & 0x40 == 0 => Ok(()), // old-format indeterminate: runs to the end
        None => {
            // New-format partial lengths: the first length octet is at buf[1].
            let mut pos = 1;
            loop {
                let l0 = *buf.get(pos).ok_or_else(truncated)? as usize;
                let (len, octets, last) = match l0 {
                    0..=191 => (l0, 1, true),
                    192..=223 => {
                        let l1 = *buf.get(pos + 1).ok_or_else(truncated)? as usize;
                        (((l0 - 192) << 8) + l1 + 192, 2, true)
                    }
                    255 => {
                        let b = buf.get(pos + 1..pos + 5).ok_or_else(truncated)?;
                        (
                            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
                            5,
                            true,
                        )
                    }
                    _ => (1usize << (l0 & 0x1f), 1, false),
                };
                pos += octets + len;
                if last {
                    return match buf.len().cmp(&pos) {
                        std::cmp::Ordering::Less => Err(truncated()),
                        std::cmp::Ordering::Greater => Err(trailing()),
                        std::cmp::Ordering::Equal => Ok(()),
                    };
                }
                if pos > buf.len() {
                    return Err(truncated());
                }
            }
        }
    }
}

/// Walks a message's packets in front of its encrypted data (RFC 9580 §10.3: session key
/// packets, then one encrypted data packet that ends the message), calling `session_key` with
/// each session key packet's tag (1 PKESK, 3 SKESK, 10 marker) and bytes, header included.
/// Returns where the encrypted data starts and whether it is SEIPD v1.
fn walk(
    bytes: &[u8],
    mut session_key: impl FnMut(u8, &[u8]) -> Result<(), Malformed>,
) -> Result<(usize, bool), CryptoError> {
    if bytes.is_empty() {
        return Err(Malformed::from("the file is empty").into());
    }
    let mut pos = 0;
    loop {
        if pos >= bytes.len() {
            return Err(
                Malformed::from("there is no encrypted data after the session keys").into(),
            );
        }
        let h = read_header(&bytes[pos..])?;
        match h.tag {
            1 | 3 | 10 => {
                let len = h
                    .body_len
                    .ok_or(Malformed::from("a session key packet has an invalid length"))?;
                let end = pos + h.header_len + len;
                if end > bytes.len() {
                    return Err(Malformed::from("a session key packet is truncated").into());
                }
                session_key(h.tag, &bytes[pos..end])?;
                pos = end;
            }
            9 | 18 | 20 => {
                check_data_extent(&bytes[pos..], &h)?;
                let seipd_v1 = h.tag == 18 && bytes.get(pos + h.header_len).copied() == Some(1);
                return Ok((pos, seipd_v1));
            }
            tag => {
                return Err(CryptoError::Malformed(format!(
                    "it is not an encrypted OpenPGP message (packet tag {tag} where encrypted data was expected)"
                )))
            }
        }
    }
}

/// The PKESKs among a message's session key packets, `bytes` (framed as [`walk`] checked),
/// parsed in one pass of sequoia's packet parser: building a parser for each packet was most
/// of an audit's fixed cost, ten PKESKs per entry for a team of ten (issue 18).
fn pkesks_of(bytes: &[u8]) -> Result<Vec<PKESK>, Malformed> {
    let invalid = |e: anyhow::Error| Malformed(format!("an invalid session key packet: {e}"));
    let mut pkesks = Vec::new();
    let mut ppr = PacketParser::from_bytes(bytes).map_err(invalid)?;
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp.next().map_err(invalid)?;
        match packet {
            Packet::PKESK(p) => pkesks.push(p),
            // A PKESK sequoia could not read (sequoia keeps it as an unknown packet).
            Packet::Unknown(u) if u.tag() == openpgp::packet::Tag::PKESK => {
                return Err(Malformed::from("an unsupported session key packet"))
            }
            // SKESKs are counted, not read; markers are ignored (RFC 9580 §5.8).
            _ => {}
        }
        ppr = next;
    }
    Ok(pkesks)
}

pub(super) const ARMOR_MESSAGE: &[u8] = b"-----BEGIN PGP MESSAGE-----";

impl<'a> Envelope<'a> {
    /// Reads the packets in front of a message's encrypted data. Nothing is decrypted; the result
    /// says who the session key is wrapped for. Fails, with a reason for people, on anything that
    /// is not a well-formed public-key encrypted OpenPGP message.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CryptoError> {
        let bytes: Cow<'a, [u8]> = if bytes.starts_with(ARMOR_MESSAGE) {
            let mut reader = openpgp::armor::Reader::from_bytes(
                bytes,
                openpgp::armor::ReaderMode::Tolerant(Some(openpgp::armor::Kind::Message)),
            );
            let mut out = Vec::new();
            reader
                .read_to_end(&mut out)
                .map_err(|e| Malformed(format!("invalid ASCII armor: {e}")))?;
            Cow::Owned(out)
        } else {
            Cow::Borrowed(bytes)
        };
        let (mut skesks, mut any_pkesk) = (0, false);
        let (data_start, seipd_v1) = walk(&bytes, |tag, _| {
            skesks += usize::from(tag == 3);
            any_pkesk |= tag == 1;
            Ok(())
        })?;
        let pkesks = match any_pkesk {
            true => pkesks_of(&bytes[..data_start])?,
            false => Vec::new(),
        };
        Ok(Envelope {
            bytes,
            pkesks,
            skesks,
            data_start,
            seipd_v1,
        })
    }

    /// Who a message's session key is wrapped for, as [`Envelope::readers`] says, for walking
    /// thousands of old versions (audit's history, issue 18): a v3 PKESK's recipient is read
    /// from its first octets (RFC 9580 §5.1.1: version 3, then the eight-octet key ID, zero for
    /// an anonymous recipient) instead of parsing the whole packet; other PKESKs, and armored
    /// messages, are parsed as [`Envelope::parse`] does. The framing is checked as there; the
    /// public-key algorithm's fields of a v3 PKESK are not.
    ///
    /// # Errors
    /// As [`Envelope::parse`], for a message that is not a public-key encrypted one.
    pub fn readers_of(bytes: &[u8]) -> Result<Vec<Reader>, CryptoError> {
        if bytes.starts_with(ARMOR_MESSAGE) {
            return Envelope::parse(bytes).map(|env| env.readers());
        }
        let mut readers = Vec::new();
        walk(bytes, |tag, packet| {
            if tag != 1 {
                return Ok(());
            }
            let header = read_header(packet)?;
            let body = &packet[header.header_len..];
            match body {
                [3, id @ .., _algo] if body.len() >= 10 => {
                    let id: [u8; 8] = id[..8].try_into().expect("eight octets");
                    readers.push((id != [0; 8]).then(|| KeyId::from_bytes(id)));
                }
                _ => match Packet::from_bytes(packet) {
                    Ok(Packet::PKESK(p)) => {
                        readers.push(p.recipient().as_ref().and_then(KeyId::from_handle))
                    }
                    _ => return Err(Malformed::from("an invalid session key packet")),
                },
            }
            Ok(())
        })?;
        Ok(readers)
    }

    /// The same envelope, holding its own copy of the message's bytes.
    pub fn into_owned(self) -> Envelope<'static> {
        Envelope {
            bytes: Cow::Owned(self.bytes.into_owned()),
            pkesks: self.pkesks,
            skesks: self.skesks,
            data_start: self.data_start,
            seipd_v1: self.seipd_v1,
        }
    }

    /// Who the session key is wrapped for: one item per PKESK, `None` for a wildcard recipient.
    pub fn readers(&self) -> Vec<Reader> {
        self.pkesks
            .iter()
            .map(|p| p.recipient().as_ref().and_then(KeyId::from_handle))
            .collect()
    }

    /// Number of password-encrypted session keys (pass never writes these).
    pub fn password_session_keys(&self) -> usize {
        self.skesks
    }

    /// Whether the data is a SEIPD v1 packet, the only kind GnuPG 2.2 reads and vault keeps.
    pub fn is_seipd_v1(&self) -> bool {
        self.seipd_v1
    }
}

/// A recipient's encryption keys, ready to wrap session keys for.
pub struct Recipients<'k> {
    keys: Vec<&'k PublicKey>,
}

impl<'k> Recipients<'k> {
    pub fn new(members: &[&'k MemberKey]) -> Self {
        Recipients {
            keys: members.iter().flat_map(|m| m.encryption.iter()).collect(),
        }
    }

    pub fn key_ids(&self) -> Vec<KeyId> {
        self.keys
            .iter()
            .filter_map(|k| KeyId::from_openpgp(&k.keyid()))
            .collect()
    }

    /// Keeps only the keys with these ids.
    pub fn only(&self, ids: &[KeyId]) -> Recipients<'k> {
        Recipients {
            keys: self
                .keys
                .iter()
                .copied()
                .filter(|k| KeyId::from_openpgp(&k.keyid()).is_some_and(|id| ids.contains(&id)))
                .collect(),
        }
    }
}

/// Keeps a message's encrypted data and its PKESKs byte for byte, and adds a PKESK for each of
/// `add` with the same session key.
pub fn add_readers(
    env: &Envelope,
    unlocked: &Unlocked,
    add: &Recipients,
) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::with_capacity(env.bytes.len() + 200 * add.keys.len());
    out.extend_from_slice(&env.bytes[..env.data_start]);
    for key in &add.keys {
        let pkesk =
            openpgp::packet::pkesk::PKESK3::for_recipient(unlocked.algo, &unlocked.key, *key)
                .map_err(|e| {
                    CryptoError::openpgp(format!("wrapping the session key for {}", key.keyid()), e)
                })?;
        Packet::from(PKESK::from(pkesk))
            .serialize(&mut out)
            .map_err(|e| CryptoError::openpgp("writing a session key packet", e))?;
    }
    out.extend_from_slice(&env.bytes[env.data_start..]);
    Ok(out)
}

pub(super) struct SessionKeyHelper<'u>(&'u Unlocked);

impl VerificationHelper for SessionKeyHelper<'_> {
    fn get_certs(&mut self, _ids: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }
    fn check(&mut self, _structure: MessageStructure) -> openpgp::Result<()> {
        Ok(()) // Entries are not signed by pass; signatures, if any, are not vault's concern.
    }
}

impl DecryptionHelper for SessionKeyHelper<'_> {
    fn decrypt(
        &mut self,
        _pkesks: &[PKESK],
        _skesks: &[openpgp::packet::SKESK],
        _sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        if decrypt(Some(self.0.algo), &self.0.key) {
            Ok(None)
        } else {
            Err(anyhow::anyhow!("the session key does not decrypt the data"))
        }
    }
}

/// Reads all of `r` into zeroizing memory without leaving copies behind when the buffer grows.
pub(super) fn read_zeroizing(mut r: impl Read, hint: usize) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; hint.max(256)]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            let mut bigger = Zeroizing::new(vec![0u8; buf.len() * 2]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger; // the old buffer is zeroed as it drops
        }
        match r.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len); // truncate does not reallocate; the tail is zeroed on drop with the rest
    Ok(buf)
}

/// Decrypts a whole entry in memory with an unlocked session key.
pub fn decrypt(env: &Envelope, unlocked: &Unlocked) -> Result<Secret, CryptoError> {
    let decryptor = DecryptorBuilder::from_bytes(&env.bytes[..])
        .and_then(|d| d.with_policy(&POLICY, None, SessionKeyHelper(unlocked)))
        .map_err(|e| CryptoError::openpgp("", e))?;
    let plain = read_zeroizing(decryptor, env.bytes.len())
        .map_err(|e| CryptoError::openpgp("", e.into()))?;
    Ok(Secret::new(plain))
}

/// Encrypts `plain` with a fresh session key to every key in `to`: binary, SEIPD v1, AES-256,
/// no compression, one PKESK per key.
pub fn encrypt(plain: &Secret, to: &Recipients) -> Result<Vec<u8>, CryptoError> {
    let seipdv1 = Features::empty().set_seipdv1();
    let recipients: Vec<Recipient> = to
        .keys
        .iter()
        .map(|k| Recipient::new(seipdv1.clone(), openpgp::KeyHandle::from(k.keyid()), *k))
        .collect();
    let mut out = Vec::with_capacity(plain.len() + 64 + 200 * recipients.len());
    let run = |out: &mut Vec<u8>| -> openpgp::Result<()> {
        let message = Message::new(out);
        let message = Encryptor::for_recipients(message, recipients)
            .symmetric_algo(SymmetricAlgorithm::AES256)
            .build()?;
        let mut literal = LiteralWriter::new(message)
            .format(DataFormat::Binary)
            .build()?;
        literal.write_all(plain.expose())?;
        literal.finalize()?;
        Ok(())
    };
    run(&mut out).map_err(|e| CryptoError::openpgp("", e))?;
    Ok(out)
}

/// A break of the packet grammar found while framing a message, said for people.
#[derive(Debug)]
pub(super) struct Malformed(String);

impl From<&str> for Malformed {
    fn from(s: &str) -> Malformed {
        Malformed(s.to_string())
    }
}

impl From<String> for Malformed {
    fn from(s: String) -> Malformed {
        Malformed(s)
    }
}

impl From<Malformed> for CryptoError {
    fn from(m: Malformed) -> CryptoError {
        CryptoError::Malformed(m.0)
    }
}
