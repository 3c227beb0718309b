//! Text that came from someone else, made safe to show, and dates made safe to format.
//!
//! Everything a push can commit — file names, user ids in certificates, commit authors and
//! messages — is hostile input (docs/threat-model.md). A newline in a user id could add a line of
//! its own to a commit message (a forged trailer) or to the fingerprint the operator compares; an
//! ANSI escape sequence could redraw the terminal. [`escape`] turns every such character into a
//! visible escape before the text reaches a terminal or a commit message. Dates from git and from
//! certificates can be anything an `i64` holds; [`format_unix`] formats all of them.

use std::borrow::Cow;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether `c` must not reach a terminal or a commit message as it is: C0 and C1 control
/// characters (newline, carriage return, escape, …), DEL, and the Unicode bidirectional
/// overrides and isolates (U+202A–U+202E, U+2066–U+2069), which reorder what people see
/// ("Trojan Source", CVE-2021-42574). Zero-width characters are also shown escaped
/// (U+200B–U+200F, U+2028–U+2029, U+FEFF), so that two names that look the same do not.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `s` with every character that could change how text around it is read shown as an escape:
/// `\n`, `\r`, `\t`, `\\` before any of those, and `\x1b` or `\u{202e}` for the rest. Text with
/// none of them (the usual case) is returned borrowed. The result is one line, and printing it
/// cannot move the cursor, change colours, or reorder text.
///
/// A backslash is doubled only when the text also holds a character that needs escaping, so an
/// ordinary path or user id with a backslash reads as written.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A point in time given as seconds since 1970-01-01 UTC (git's commit time, which the committer
/// chooses freely), as RFC 3339 in UTC to the second: `2026-11-29T22:45:44Z`. Years after 9999
/// are written with a sign (`+10000-01-01T00:00:00Z`, ISO 8601's expanded form); a value outside
/// what a calendar can show (about ±262,000 years) is said as such instead. Never panics.
pub fn format_unix(seconds: i64) -> String {
    match chrono::DateTime::from_timestamp(seconds, 0) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => format!("(no date: {seconds} s since 1970)"),
    }
}

/// [`format_unix`] for a [`SystemTime`] (a certificate's expiry, now). Never panics.
pub fn format_time(t: SystemTime) -> String {
    let seconds = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs())
            .map(|s| -s)
            .unwrap_or(i64::MIN),
    };
    format_unix(seconds)
}

/// The calendar day of an RFC 3339 date made by [`format_unix`] (`2026-11-29`), or the whole text
/// when it is not one. Safe on any string.
pub fn day_of(date: &str) -> &str {
    date.split_once('T').map(|(day, _)| day).unwrap_or(date)
}

/// `n` with the noun that goes with it, for people: `count(1, "entry", "entries")` is
/// "1 entry", `count(3, …)` "3 entries".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            escape("eduardo <e@coop.example>"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(escape("日本/パスワード"), Cow::Borrowed(_)));
        assert_eq!(escape(r"C:\keys"), r"C:\keys");
    }

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(
            escape("x\nVault-Member: mallory <AB>"),
            "x\\nVault-Member: mallory <AB>"
        );
        assert_eq!(escape("\x1b[2Kfingerprint"), "\\x1b[2Kfingerprint");
        assert_eq!(escape("a\r\tb\\"), "a\\r\\tb\\\\");
        assert_eq!(escape("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(escape("\u{9b}31m"), "\\x9b31m");
        assert!(!escape("a\u{7f}\u{2028}b").contains(['\u{7f}', '\u{2028}']));
    }

    #[test]
    fn every_date_formats() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(253_402_300_799), "9999-12-31T23:59:59Z");
        assert!(format_unix(253_402_300_800).contains("10000-01-01"));
        assert!(format_unix(-1).starts_with("1969-12-31"));
        for extreme in [i64::MAX, i64::MIN, i64::MAX / 2] {
            assert!(format_unix(extreme).contains("no date"), "{extreme}");
        }
        let far = UNIX_EPOCH + std::time::Duration::from_secs(400_000_000_000);
        assert!(format_time(far).contains("14645"));
        assert_eq!(day_of("2026-11-29T22:45:44Z"), "2026-11-29");
        assert_eq!(
            day_of("(no date: 1 s since 1970)"),
            "(no date: 1 s since 1970)"
        );
    }
}
