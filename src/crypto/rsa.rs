//! RSA decryption of session keys with the whole private key (RFC 8017 §5.1.2, the Chinese
//! Remainder Theorem form), for RSA key files.
//!
//! sequoia-openpgp 2.4's OpenSSL backend hands OpenSSL only n, e and d, so each decryption is a
//! full-size exponentiation: about 7 ms per RSA-3072 PKESK on this project's machine, against
//! about 2 ms with p, q and their CRT exponents (issue 18). An OpenPGP secret key carries p, q,
//! d and u (RFC 9580 §5.5.5.1); the CRT exponents are derived from them once per key. The
//! decryption itself is OpenSSL's (`RSA_private_decrypt` with PKCS #1 v1.5 padding, RFC 9580
//! §5.1.3): blinding, the constant-time padding check and the check of the CRT result against
//! the public key are OpenSSL's, as on sequoia's own path.

use openssl::bn::{BigNum, BigNumContext};
use openssl::pkey::Private;
use openssl::rsa::{Padding, Rsa};
use zeroize::Zeroizing;

use super::{openpgp, PublicKey};
use openpgp::crypto::mpi;
use openpgp::crypto::{Decryptor, KeyPair, SessionKey};

/// An RSA secret key as OpenSSL uses it fastest, beside the OpenPGP key it came from.
#[derive(Clone)]
pub(super) struct RsaCrt {
    public: PublicKey,
    key: Rsa<Private>,
}

impl RsaCrt {
    /// The CRT form of `pair`'s key, or `None` when it is not an RSA key or its parameters do
    /// not fit together (n ≠ p·q): sequoia's own decryption is then used, as before.
    pub(super) fn of(pair: &KeyPair) -> Option<RsaCrt> {
        let mpi::PublicKey::RSA { e, n } = pair.public().mpis() else {
            return None;
        };
        let key = pair.secret().map(|secret| match secret {
            mpi::SecretKeyMaterial::RSA { d, p, q, u } => build(
                n.value(),
                e.value(),
                d.value(),
                p.value(),
                q.value(),
                u.value(),
            )
            .ok(),
            _ => None,
        })?;
        Some(RsaCrt {
            public: pair.public().clone(),
            key,
        })
    }
}

/// OpenSSL's key from OpenPGP's parameters. OpenPGP orders the primes p < q and stores
/// u = p⁻¹ mod q (RFC 9580 §5.5.5.1); OpenSSL's coefficient is q⁻¹ mod p for its own first
/// prime, so OpenPGP's q is OpenSSL's first prime and u is the coefficient as it is.
fn build(
    n: &[u8],
    e: &[u8],
    d: &[u8],
    p: &[u8],
    q: &[u8],
    u: &[u8],
) -> Result<Rsa<Private>, openssl::error::ErrorStack> {
    // Secret numbers live in OpenSSL's secure heap, which is cleared when they are freed.
    let secret = |bytes: &[u8]| -> Result<BigNum, openssl::error::ErrorStack> {
        let mut b = BigNum::new_secure()?;
        b.copy_from_slice(bytes)?;
        b.set_const_time();
        Ok(b)
    };
    let mut ctx = BigNumContext::new_secure()?;
    let (n, e) = (BigNum::from_slice(n)?, BigNum::from_slice(e)?);
    let (d, first, second, coefficient) = (secret(d)?, secret(q)?, secret(p)?, secret(u)?);
    let mut product = BigNum::new_secure()?;
    product.checked_mul(&first, &second, &mut ctx)?;
    if product != n {
        return Err(openssl::error::ErrorStack::get());
    }
    let one = BigNum::from_u32(1)?;
    let exponent = |prime: &BigNum, ctx: &mut BigNumContext| {
        let mut less = BigNum::new_secure()?;
        less.set_const_time();
        less.checked_sub(prime, &one)?;
        let mut out = BigNum::new_secure()?;
        out.set_const_time();
        out.checked_rem(&d, &less, ctx)?;
        Ok::<BigNum, openssl::error::ErrorStack>(out)
    };
    let (dmp1, dmq1) = (exponent(&first, &mut ctx)?, exponent(&second, &mut ctx)?);
    Rsa::from_private_components(n, e, d, first, second, dmp1, dmq1, coefficient)
}

impl Decryptor for RsaCrt {
    fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The PKCS #1 v1.5-decoded session key payload (algorithm, key, checksum: sequoia checks
    /// them), as sequoia's backend returns it.
    fn decrypt(
        &mut self,
        ciphertext: &mpi::Ciphertext,
        _plaintext_len: Option<usize>,
    ) -> openpgp::Result<SessionKey> {
        let mpi::Ciphertext::RSA { c } = ciphertext else {
            return Err(openpgp::Error::InvalidOperation("not an RSA ciphertext".into()).into());
        };
        let mut out = Zeroizing::new(vec![0u8; self.key.size() as usize]);
        let len = self
            .key
            .private_decrypt(c.value(), &mut out, Padding::PKCS1)?;
        Ok(SessionKey::from(&out[..len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openpgp::cert::prelude::*;
    use openpgp::packet::pkesk::PKESK3;
    use openpgp::types::SymmetricAlgorithm;

    /// The CRT decryptor unwraps exactly what sequoia's own does, and refuses what it refuses.
    #[test]
    fn crt_decryption_matches_sequoia() {
        let (cert, _) = CertBuilder::new()
            .set_cipher_suite(CipherSuite::RSA3k)
            .add_transport_encryption_subkey()
            .generate()
            .unwrap();
        let key = cert.keys().subkeys().secret().next().unwrap().key().clone();
        let mut pair = key.role_into_unspecified().into_keypair().unwrap();
        let mut crt = RsaCrt::of(&pair).expect("an RSA key has a CRT form");
        // OpenSSL would quietly fall back to the slow way with wrong CRT parameters: check them.
        assert!(crt.key.check_key().unwrap());
        for _ in 0..3 {
            let session = SessionKey::new(32).unwrap();
            let pkesk =
                PKESK3::for_recipient(SymmetricAlgorithm::AES256, &session, pair.public()).unwrap();
            let theirs = pkesk.decrypt(&mut pair, None).unwrap();
            let ours = pkesk.decrypt(&mut crt, None).unwrap();
            assert_eq!(theirs.0, ours.0);
            assert_eq!(&ours.1[..], &session[..]);
        }
        // Another key's ciphertext: both refuse it (the padding or checksum does not hold).
        let (other, _) = CertBuilder::new()
            .set_cipher_suite(CipherSuite::RSA3k)
            .add_transport_encryption_subkey()
            .generate()
            .unwrap();
        let other = other.keys().subkeys().next().unwrap().key().clone();
        let session = SessionKey::new(32).unwrap();
        let foreign = PKESK3::for_recipient(
            SymmetricAlgorithm::AES256,
            &session,
            other.parts_as_public().role_as_unspecified(),
        )
        .unwrap();
        assert!(foreign.decrypt(&mut crt, None).is_none());
        assert!(foreign.decrypt(&mut pair, None).is_none());
    }

    #[test]
    fn no_crt_form_for_other_algorithms() {
        let (cert, _) = CertBuilder::new()
            .add_transport_encryption_subkey()
            .generate()
            .unwrap();
        let key = cert.keys().subkeys().secret().next().unwrap().key().clone();
        let pair = key.role_into_unspecified().into_keypair().unwrap();
        assert!(RsaCrt::of(&pair).is_none());
    }
}
