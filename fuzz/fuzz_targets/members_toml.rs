//! `.members.toml` comes from the repository: parse it. Invariant: what vault renders from a
//! parsed roster parses back to the same roster.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault::store::roster::Roster;

fuzz_target!(|data: &[u8]| {
    let Ok(roster) = Roster::parse(data) else {
        return;
    };
    let text = roster.render();
    let again = Roster::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("vault's own rendering does not parse: {e}\n{text}"));
    assert_eq!(roster, again, "round trip changed the roster:\n{text}");
});
