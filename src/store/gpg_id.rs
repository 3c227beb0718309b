//! `.gpg-id`: parsing it as pass reads it (one recipient per line, `#` comments), and writing it
//! back as vault does (full fingerprints, comments kept, LF).

use crate::crypto::{Fingerprint, KeyId};
use crate::error::{Error, Result};

/// A recipient as a `.gpg-id` line names it, which pass hands to `gpg -r` as is: a full
/// fingerprint, a key id (`0x` allowed), or an e-mail address (`<addr>` or bare). Resolved to a
/// member's certificate by `snapshot::matching`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    Fingerprint(Fingerprint),
    KeyId(KeyId),
    Email(String),
}

/// A line of a `.gpg-id` file.
#[derive(Clone, Debug)]
pub struct GpgIdLine {
    /// 1-based line number.
    pub number: usize,
    pub text: String,
    pub recipient: Recipient,
}

/// `s` without the blanks bash's `read` strips around a line (space and tab): what pass hands
/// to `gpg -r`. Other white space (a no-break space, a form feed) stays, and makes the line one
/// vault does not resolve, as pass could not.
fn trim_blanks(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Parses a `.gpg-id` file as pass reads it: one recipient per line, `#` starts a comment.
///
/// # Errors
/// [`Error::GpgIdLine`] naming the file and line for anything vault cannot resolve (short key
/// ids, names, group names, binary junk).
pub fn parse_gpg_id(file: &str, bytes: &[u8]) -> Result<Vec<GpgIdLine>> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::BadFile {
        file: file.into(),
        problem: "it is not UTF-8 text (one recipient per line is expected)".into(),
    })?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = trim_blanks(raw.split('#').next().unwrap_or(""));
        if content.is_empty() {
            continue;
        }
        let err = |problem: &str| Error::GpgIdLine {
            file: file.into(),
            line: i + 1,
            text: content.chars().take(80).collect(),
            problem: problem.into(),
        };
        let hex: String = content
            .trim_start_matches("0x")
            .trim_start_matches("0X")
            .chars()
            .filter(|c| *c != ' ')
            .collect();
        if let Some(c) = content
            .chars()
            .find(|c| (c.is_whitespace() || c.is_control()) && !matches!(c, ' ' | '\t'))
        {
            return Err(err(&format!(
                "it holds {} (U+{:04X}), which pass hands to gpg as part of the recipient: only \
                 spaces and tabs may surround or separate what a line says",
                if c.is_control() {
                    "a control character"
                } else {
                    "white space other than a space"
                },
                c as u32
            )));
        }
        if let Some(exact) = content.strip_suffix('!') {
            if Fingerprint::parse(exact).is_some() || KeyId::parse(exact).is_some() {
                return Err(err(
                    "'!' asks GnuPG for exactly that key or subkey, and vault encrypts to all of a \
                     member's current encryption subkeys: write the key without '!' (pass then \
                     encrypts to all of them too), or keep managing this folder with pass",
                ));
            }
        }
        let recipient = if let Some(f) = Fingerprint::parse(content) {
            Recipient::Fingerprint(f)
        } else if let Some(k) = KeyId::parse(content) {
            Recipient::KeyId(k)
        } else if hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(err(
                "short key ids are ambiguous and unsafe; use the full fingerprint",
            ));
        } else if let Some(email) = parse_email(content) {
            Recipient::Email(email)
        } else {
            return Err(err(
                "not a fingerprint, long key id or e-mail address (group names are not supported)",
            ));
        };
        out.push(GpgIdLine {
            number: i + 1,
            text: content.to_string(),
            recipient,
        });
    }
    Ok(out)
}

fn parse_email(s: &str) -> Option<String> {
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    let (local, domain) = s.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '<' && c != '>');
    ok.then(|| s.to_ascii_lowercase())
}

/// The text of a `.gpg-id` as vault writes it: full fingerprints, one per line.
pub fn render_gpg_id(recipients: &[Fingerprint]) -> String {
    recipients.iter().map(|f| format!("{f}\n")).collect()
}

/// The text of a changed `.gpg-id` as vault writes it, from the file as it was (`old`, with
/// `resolved`: the line numbers of its recipient lines and the key each names): comment and blank
/// lines are kept where they were; a recipient line whose key stays is rewritten as its full
/// fingerprint, its own comment kept on a line of its own just above it (vault writes no inline
/// comments); a line whose key goes is dropped with its comment; recipients new to the file
/// follow at the end, one fingerprint per line. Line ends are LF (pass hands a CR to `gpg -r`).
pub fn render_gpg_id_keeping(
    old: &str,
    resolved: &[(usize, Fingerprint)],
    recipients: &[Fingerprint],
) -> String {
    let mut out = String::new();
    let mut written: Vec<Fingerprint> = Vec::new();
    for (i, raw) in old.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let (content, comment) = match line.split_once('#') {
            Some((c, rest)) => (trim_blanks(c), Some(rest)),
            None => (trim_blanks(line), None),
        };
        if content.is_empty() {
            out.push_str(line.trim_end());
            out.push('\n');
            continue;
        }
        let Some((_, fpr)) = resolved.iter().find(|(n, _)| *n == i + 1) else {
            continue; // a line vault could not resolve is not kept in a file it writes
        };
        if !recipients.contains(fpr) || written.contains(fpr) {
            continue;
        }
        written.push(*fpr);
        match comment {
            Some(c) => out.push_str(&format!("#{}\n{fpr}\n", c.trim_end())),
            None => out.push_str(&format!("{fpr}\n")),
        }
    }
    for fpr in recipients.iter().filter(|f| !written.contains(f)) {
        out.push_str(&format!("{fpr}\n"));
    }
    out
}

/// The three-way merge of a `.gpg-id` both sides of a git merge changed: every recipient line
/// either side added is in, every one either side removed is out (a removal wins over keeping),
/// comments and order as in `ours`, then `theirs`' additions. Lines are compared as pass reads
/// them (surrounding spaces and tabs trimmed); a missing side is empty. LF line ends.
pub fn merge_gpg_id(base: &[u8], ours: &[u8], theirs: &[u8]) -> String {
    let lines = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect()
    };
    let recipient = |l: &str| {
        let t = trim_blanks(l);
        (!t.is_empty() && !t.starts_with('#')).then(|| t.to_string())
    };
    let set = |ls: &[String]| -> std::collections::BTreeSet<String> {
        ls.iter().filter_map(|l| recipient(l)).collect()
    };
    let (base, ours, theirs) = (lines(base), lines(ours), lines(theirs));
    let (b, t) = (set(&base), set(&theirs));
    let removed_by_theirs: Vec<&String> = b.difference(&t).collect();
    let mut out: Vec<String> = ours
        .iter()
        .filter(|l| recipient(l).is_none_or(|r| !removed_by_theirs.contains(&&r)))
        .cloned()
        .collect();
    let have = set(&out);
    for l in &theirs {
        if let Some(r) = recipient(l) {
            if !b.contains(&r) && !have.contains(&r) {
                out.push(r);
            }
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}
