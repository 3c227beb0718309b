//! Entries come from the repository: vault reads the packets in front of the encrypted data
//! (who it is encrypted to) without decrypting. Parse arbitrary bytes as an entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault::crypto::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::parse(data) {
        let _ = env.readers();
        let _ = env.password_session_keys();
        let _ = env.is_seipd_v1();
    }
});
