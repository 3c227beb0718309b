//! Key files come from new members (`add-member KEYFILE`) and from `.public-keys/` in the
//! repository: parse them as vault does, use every accessor, and check that the armored
//! certificate vault would write parses back to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault::crypto::MemberKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = MemberKey::parse(data) {
        let _ = (
            key.user_ids(),
            key.emails(),
            key.expiry(),
            key.problem(),
            key.encryption_key_ids(),
            key.all_key_ids(),
            key.subkey_ids(),
            key.weakness(),
        );
        let armored = key.armored();
        let again = MemberKey::parse(&armored).expect("vault's own armored key parses");
        assert_eq!(key.fingerprint(), again.fingerprint());
        let _ = MemberKey::parse_strict(data);
    }
    if let Ok(keys) = MemberKey::parse_many(data) {
        for k in keys {
            let _ = k.fingerprint();
        }
    }
});
