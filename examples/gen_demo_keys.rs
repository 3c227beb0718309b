//! Generates the demo team's OpenPGP keys into `keys/`.
//!
//! PUBLIC TEST MATERIAL: these keys exist for `scripts/demo.sh` and the tests. The secret key of
//! akshay (the demo operator) is written unencrypted and published on purpose; none of these keys
//! may ever guard anything real.
//!
//! Run from the repository root: `cargo run --example gen_demo_keys`. Every run makes NEW keys
//! (new fingerprints), so `keys/README.md` must be updated afterwards.

use std::fs;
use std::path::Path;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto;
use openpgp::types::Features;

/// (member name, user id). The e-mail local part is the member name: `vault init` names members
/// after it.
const TEAM: &[(&str, &str)] = &[
    ("nick", "Nick Ferreira <nick@coop.example>"),
    ("eduardo", "Eduardo Salgado <eduardo@coop.example>"),
    ("akshay", "Akshay Raman <akshay@coop.example>"),
    ("noah", "Noah Lindqvist <noah@coop.example>"),
    ("will", "Will Okafor <will@coop.example>"),
];

/// The member whose secret key is published for the demo.
const OPERATOR: &str = "akshay";

fn main() -> openpgp::Result<()> {
    let policy = StandardPolicy::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("keys");
    fs::create_dir_all(&dir)?;

    for (name, uid) in TEAM {
        let (cert, _revocation) = CertBuilder::general_purpose(Some(*uid))
            .set_profile(openpgp::Profile::RFC4880)?
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_validity_period(None)
            // sequoia advertises SEIPDv2 by default, even with the RFC 4880 profile; then a
            // message to these keys alone could be SEIPDv2, which GnuPG 2.2 (and so pass)
            // cannot read. Advertise SEIPDv1 (MDC) only.
            .set_features(Features::empty().set_seipdv1())?
            .generate()?;

        // Check what the certificate really advertises, as a reader would see it.
        let vc = cert.with_policy(&policy, None)?;
        let features = vc
            .features()
            .ok_or_else(|| anyhow::anyhow!("{name}: certificate advertises no features"))?;
        if features.supports_seipdv2() || !features.supports_seipdv1() {
            return Err(anyhow::anyhow!(
                "{name}: certificate must advertise SEIPDv1 only, advertises {features:?}"
            ));
        }
        if cert.primary_key().key().version() != 4 {
            return Err(anyhow::anyhow!("{name}: not a v4 key"));
        }
        let encryption_subkeys = vc
            .keys()
            .subkeys()
            .for_storage_encryption()
            .for_transport_encryption()
            .count();
        if encryption_subkeys != 1 {
            return Err(anyhow::anyhow!(
                "{name}: expected one encryption subkey, found {encryption_subkeys}"
            ));
        }

        let public = dir.join(format!("{name}.asc"));
        fs::write(&public, cert.armored().to_vec()?)?;
        println!(
            "{name:8} {}  {}",
            cert.fingerprint().to_hex(),
            public.display()
        );

        if *name == OPERATOR {
            let secret = dir.join(format!("{name}.secret.asc"));
            fs::write(&secret, cert.as_tsk().armored().to_vec()?)?;
            println!("{:8} (secret key, unencrypted)  {}", "", secret.display());
        }
    }
    Ok(())
}
