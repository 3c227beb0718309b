//! `.gpg-id` files come from the repository, so from anyone who can push: parse them.
//! Invariant: the fingerprints of a parsed file, rendered as vault writes them, parse back to the
//! same fingerprints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault::store::{parse_gpg_id, render_gpg_id, Spec};

fuzz_target!(|data: &[u8]| {
    let Ok(lines) = parse_gpg_id("fuzz/.gpg-id", data) else {
        return;
    };
    let fprs: Vec<_> = lines
        .iter()
        .filter_map(|l| match l.spec {
            Spec::Fingerprint(f) => Some(f),
            _ => None,
        })
        .collect();
    let text = render_gpg_id(&fprs);
    let again = parse_gpg_id("fuzz/.gpg-id", text.as_bytes()).expect("vault's own .gpg-id parses");
    let again: Vec<_> = again
        .iter()
        .map(|l| match l.spec {
            Spec::Fingerprint(f) => f,
            _ => panic!("vault wrote a line that is not a fingerprint: {:?}", l.text),
        })
        .collect();
    assert_eq!(fprs, again);
});
