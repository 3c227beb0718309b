//! The user's GnuPG keyring: the only code that runs `gpg`, and never once per entry.
//!
//! - `vault init` looks up the `.gpg-id` recipients that `.public-keys/` lacks, and
//!   `vault update-member --from-gpg` a member's renewed key ([`export`]).
//! - `vault import-keys` puts the vouched members' certificates into the keyring and certifies
//!   them locally with the user's own key, so that pass, which runs `gpg --encrypt -r KEY` and
//!   so needs GnuPG to consider KEY valid, encrypts to them without `trust-model always`; and it
//!   withdraws that certification from former members: [`secret_keys`], [`public_keys`],
//!   [`import`], [`certifications`], [`certify_locally`], [`withdraw_certifications`].
//!
//! Everything vault reads back comes from gpg's machine-readable output (`--with-colons`,
//! `--status-fd`; GnuPG's `doc/DETAILS`), which does not depend on the language gpg speaks; its
//! parsers are pure functions, tested below. gpg finds its home as it always does
//! (`$GNUPGHOME`, else `~/.gnupg`), and reads the user's `gpg.conf`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ids::Fingerprint;
use crate::store::Recipient;

/// Exports the public certificates GnuPG finds for `recipient` (none: empty output).
///
/// # Errors
/// A message for people if gpg cannot be run or fails.
pub fn export(recipient: &Recipient) -> Result<Vec<u8>, String> {
    let query = match recipient {
        Recipient::Fingerprint(f) => f.to_string(),
        Recipient::KeyId(k) => k.to_string(),
        Recipient::Email(e) => format!("<{e}>"),
    };
    let out = Command::new("gpg")
        .args(["--batch", "--no-tty", "--quiet", "--export", "--", &query])
        .output()
        .map_err(|e| {
            format!("cannot run gpg to look the key up ({e}); put the key in .public-keys/<FINGERPRINT> instead")
        })?;
    if !out.status.success() && out.stdout.is_empty() {
        return Err(format!(
            "gpg --export failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// A gpg command that could not be run or that failed: what vault asked of it, and gpg's own
/// words (its last lines of stderr, on one line).
#[derive(Debug, thiserror::Error)]
#[error("{action}: {detail}")]
pub struct GpgError {
    /// What vault asked gpg to do (`gpg --quick-lsign-key 3AA5…`).
    pub action: String,
    /// Why it failed, in gpg's words where gpg gave any.
    pub detail: String,
}

/// A secret key in the user's GnuPG keyring (`sec` record of `--list-secret-keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKey {
    pub fingerprint: Fingerprint,
    /// GnuPG's validity letter for the key (`u` for the user's own usable keys; `r` revoked,
    /// `e` expired, `i` invalid, `d` disabled).
    pub validity: char,
    /// Whether the primary key's secret part is there (or on a card): certifying needs it. A
    /// key whose primary is kept offline (`sec#` in gpg's listing) can sign with a subkey but
    /// cannot certify.
    pub primary_available: bool,
}

/// How GnuPG sees one public key (`pub` record of `--list-keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTrust {
    /// The key's validity as gpg computes it: `f` full or `u` ultimate, gpg encrypts to it
    /// without asking; `e`, `r`, `i`, `d` (expired, revoked, invalid, disabled), never; any
    /// other letter (`-`, `q`, `n`, `m`: unknown, undefined, never, marginal), it warns and
    /// refuses or asks.
    pub validity: char,
    /// The ownertrust the user gave it (`u`: ultimate, as for their own key).
    pub ownertrust: char,
}

impl KeyTrust {
    /// Whether gpg (and so pass) encrypts to the key without asking and without
    /// `trust-model always`.
    pub fn valid(&self) -> bool {
        matches!(self.validity, 'f' | 'u')
    }
}

/// What one key carries of another key's certifications of its user ids (0x10-0x13), and of
/// revocations of them (0x30), as `gpg --check-sigs` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Certifications {
    /// Some user id has a good certification by the certifier that GnuPG counts: for each user
    /// id, gpg takes the certifier's newest good signature, a later packet winning a tie of
    /// seconds (`mark_usable_uid_certs` in `g10/trustdb.c`); it counts when that one is a
    /// certification that has not expired, not when it is a revocation.
    pub live: bool,
    /// A certification the certifier made exportable (class `1Xx`, a public certification) is
    /// among them: `gpg --quick-revoke-sig` would revoke it as well.
    pub exportable: bool,
    /// The certifier has certified this key at all (any good certification, live or revoked):
    /// a new one then needs `--force-sign-key`, gpg otherwise says "already signed" even of a
    /// revoked one.
    pub any: bool,
    /// The newest creation time (seconds since 1970) of a good certification or revocation by
    /// the certifier: the next one must be later (see [`certify_locally`]).
    pub newest: Option<i64>,
}

/// What `gpg --import` did with a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// The key was not in the keyring.
    New,
    /// It was, and gained user ids, signatures or subkeys.
    Updated,
    /// It was, exactly so.
    Unchanged,
}

/// How gpg may get the passphrase of the user's secret key to certify with it.
#[derive(Debug, Clone, Copy)]
pub enum Unlock<'a> {
    /// As gpg always does: gpg-agent's pinentry (a terminal one on the terminal gpg was started
    /// from: gpg gets the caller's stdin, so it can name that terminal to the agent; or a
    /// graphical one). `--batch` stops only gpg's own prompts, not the agent's pinentry.
    Agent,
    /// Never ask (`--pinentry-mode error`): a key the agent has not unlocked (cached) fails at
    /// once instead of waiting for someone.
    Never,
    /// The first line of this file, given to the agent through loopback
    /// (`--pinentry-mode loopback --passphrase-file FILE`).
    File(&'a Path),
}

enum Input<'a> {
    Null,
    Bytes(&'a [u8]),
    Inherit,
}

/// gpg's stderr for an error message: its last few lines, joined on one line.
fn stderr_of(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(6)..];
    if tail.is_empty() {
        format!("gpg exited with {}", out.status)
    } else {
        tail.join("; ")
    }
}

/// Runs `gpg --batch ARGS` (stdout and stderr captured) with `input` as its stdin. Only the
/// failure to start or to talk to gpg is an error here; its exit status is the caller's to
/// judge.
fn gpg(action: &str, args: &[OsString], input: Input) -> Result<Output, GpgError> {
    let fail = |detail: String| GpgError {
        action: action.to_string(),
        detail,
    };
    let mut cmd = Command::new("gpg");
    cmd.arg("--batch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(match input {
            Input::Null => Stdio::null(),
            Input::Bytes(_) => Stdio::piped(),
            Input::Inherit => Stdio::inherit(),
        });
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot run gpg ({e}); is GnuPG installed?")))?;
    let stdin = child.stdin.take();
    std::thread::scope(|s| {
        // Written from a thread: gpg may write (and fill a pipe) before it has read everything.
        if let (Input::Bytes(bytes), Some(mut pipe)) = (&input, stdin) {
            s.spawn(move || {
                let _ = pipe.write_all(bytes);
            });
        }
        child
            .wait_with_output()
            .map_err(|e| fail(format!("cannot read gpg's output ({e})")))
    })
}

fn args<const N: usize>(a: [&str; N]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

/// The fields of a `--with-colons` record (`pub:u:255:…`), indexed from 0 (GnuPG's DETAILS
/// numbers them from 1).
fn fields(line: &str) -> Vec<&str> {
    line.split(':').collect()
}

fn field<'l>(f: &[&'l str], i: usize) -> &'l str {
    f.get(i).copied().unwrap_or("")
}

fn letter(s: &str) -> char {
    s.chars().next().unwrap_or('-')
}

/// The secret keys in the user's keyring: `gpg --batch --with-colons --list-secret-keys`.
///
/// # Errors
/// [`GpgError`] when gpg cannot be run or fails (for instance, a `$GNUPGHOME` that does not
/// exist). An empty keyring is no error.
pub fn secret_keys() -> Result<Vec<SecretKey>, GpgError> {
    let action = "gpg --list-secret-keys";
    let out = gpg(
        action,
        &args(["--no-tty", "--with-colons", "--list-secret-keys"]),
        Input::Null,
    )?;
    if !out.status.success() {
        return Err(GpgError {
            action: action.into(),
            detail: stderr_of(&out),
        });
    }
    Ok(parse_secret_keys(&String::from_utf8_lossy(&out.stdout)))
}

/// `sec` records and the `fpr` record that follows each (field 2: validity; field 15: `#`
/// when the secret primary key is not available).
fn parse_secret_keys(colons: &str) -> Vec<SecretKey> {
    let mut out = Vec::new();
    let mut pending: Option<(char, bool)> = None;
    for line in colons.lines() {
        let f = fields(line);
        match field(&f, 0) {
            "sec" => pending = Some((letter(field(&f, 1)), field(&f, 14) != "#")),
            "fpr" => {
                if let Some((validity, primary_available)) = pending.take() {
                    if let Some(fingerprint) = Fingerprint::parse(field(&f, 9)) {
                        out.push(SecretKey {
                            fingerprint,
                            validity,
                            primary_available,
                        });
                    }
                }
            }
            _ if line.starts_with("[GNUPG:]") => {}
            _ => pending = None,
        }
    }
    out
}

/// The validity and ownertrust of those of `keys` that are in the user's public keyring:
/// `gpg --batch --with-colons --list-keys FPR…`. A key that is not there is not in the map.
///
/// # Errors
/// [`GpgError`] when gpg cannot be run, or fails for another reason than a missing key (gpg
/// says so on its status line: `ERROR keylist.getkey 9`, GPG_ERR_NO_PUBKEY).
pub fn public_keys(keys: &[Fingerprint]) -> Result<BTreeMap<Fingerprint, KeyTrust>, GpgError> {
    if keys.is_empty() {
        return Ok(BTreeMap::new());
    }
    let action = "gpg --list-keys";
    let mut a = args([
        "--no-tty",
        "--with-colons",
        "--status-fd",
        "1",
        "--list-keys",
    ]);
    a.push("--".into());
    a.extend(keys.iter().map(|k| OsString::from(k.to_string())));
    let out = gpg(action, &a, Input::Null)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let found = parse_public_keys(&stdout);
    let only_missing = stdout
        .lines()
        .filter(|l| l.starts_with("[GNUPG:] ERROR "))
        .all(|l| l.trim_end().ends_with(" 9"));
    if !out.status.success() && !only_missing {
        return Err(GpgError {
            action: action.into(),
            detail: stderr_of(&out),
        });
    }
    Ok(found)
}

/// `pub` records and the `fpr` record that follows each (field 2: validity; field 9:
/// ownertrust).
fn parse_public_keys(colons: &str) -> BTreeMap<Fingerprint, KeyTrust> {
    let mut out = BTreeMap::new();
    let mut pending: Option<KeyTrust> = None;
    for line in colons.lines() {
        let f = fields(line);
        match field(&f, 0) {
            "pub" => {
                pending = Some(KeyTrust {
                    validity: letter(field(&f, 1)),
                    ownertrust: letter(field(&f, 8)),
                })
            }
            "fpr" => {
                if let (Some(t), Some(fpr)) = (pending.take(), Fingerprint::parse(field(&f, 9))) {
                    out.insert(fpr, t);
                }
            }
            _ if line.starts_with("[GNUPG:]") => {}
            _ => pending = None,
        }
    }
    out
}

/// Imports one public certificate (`armored`, whose primary fingerprint is `expect`) into the
/// user's keyring: `gpg --batch --no-tty --status-fd 1 --import`, the certificate on stdin.
/// GnuPG merges it with what the keyring has of that key, and drops non-exportable (local)
/// signatures from it unless told otherwise.
///
/// # Errors
/// [`GpgError`] when gpg fails, or does not report `IMPORT_OK` for `expect` (it imported
/// something else, or nothing).
pub fn import(armored: &[u8], expect: Fingerprint) -> Result<Imported, GpgError> {
    let action = format!("gpg --import (the key {expect})");
    let out = gpg(
        &action,
        &args(["--no-tty", "--status-fd", "1", "--import"]),
        Input::Bytes(armored),
    )?;
    match parse_import(&String::from_utf8_lossy(&out.stdout), expect) {
        Some(i) if out.status.success() => Ok(i),
        _ => Err(GpgError {
            action,
            detail: stderr_of(&out),
        }),
    }
}

/// The `IMPORT_OK <reason> <fingerprint>` status line for `expect`: reason 0 is "not
/// changed", bit 1 "new key"; any other bits, something new in a key the keyring had.
fn parse_import(status: &str, expect: Fingerprint) -> Option<Imported> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix("[GNUPG:] IMPORT_OK ")?;
        let mut parts = rest.split_whitespace();
        let reason: u32 = parts.next()?.parse().ok()?;
        let fpr = Fingerprint::parse(parts.next()?)?;
        (fpr == expect).then_some(if reason == 0 {
            Imported::Unchanged
        } else if reason & 1 != 0 {
            Imported::New
        } else {
            Imported::Updated
        })
    })
}

/// The certifications `by` made of `key`'s user ids, checked by gpg:
/// `gpg --batch --with-colons --check-sigs KEY`. `None` when `key` is not in the keyring.
///
/// # Errors
/// [`GpgError`] when gpg cannot be run or fails for another reason than a missing key.
pub fn certifications(
    key: Fingerprint,
    by: Fingerprint,
) -> Result<Option<Certifications>, GpgError> {
    let action = format!("gpg --check-sigs {key}");
    let a = args([
        "--no-tty",
        "--with-colons",
        "--status-fd",
        "1",
        "--check-sigs",
        "--",
        &key.to_string(),
    ]);
    let out = gpg(&action, &a, Input::Null)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.lines().any(|l| l.starts_with("pub:")) {
        if stdout.contains("[GNUPG:] ERROR keylist.getkey 9") {
            return Ok(None);
        }
        return Err(GpgError {
            action,
            detail: stderr_of(&out),
        });
    }
    Ok(Some(parse_certifications(&stdout, by, unix_now())))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One signature by the certifier on a user id: (created, is a certification (not a
/// revocation), exportable, expires).
type Own = (i64, bool, bool, Option<i64>);

/// Reads the `sig` and `rev` records under each `uid`/`uat` of a `--check-sigs` listing:
/// field 2 `!` (a good signature), 5 the issuer's key id, 6 its creation, 7 its expiry, 11 its
/// class (`10l`, `13x`, `30l,00`: class, then `l` local or `x` exportable), 13 the issuer's
/// fingerprint (empty in signatures made without one: then the key id decides). Applies
/// GnuPG's rule (see [`Certifications::live`]) at time `now`.
fn parse_certifications(colons: &str, by: Fingerprint, now: i64) -> Certifications {
    let by_hex = by.to_string();
    let by_id = by.key_id().to_string();
    let mut out = Certifications::default();
    let mut uid: Option<Vec<Own>> = None;
    let settle = |sigs: Vec<Own>, out: &mut Certifications| {
        // The newest; of equal seconds, the later packet (listed in keyblock order).
        let winner = sigs
            .iter()
            .enumerate()
            .max_by_key(|(i, (created, ..))| (*created, *i))
            .map(|(_, s)| *s);
        if let Some((_, true, _, expires)) = winner {
            if expires.is_none_or(|e| e > now) {
                out.live = true;
            }
        }
    };
    for line in colons.lines() {
        let f = fields(line);
        match field(&f, 0) {
            "uid" | "uat" => {
                if let Some(sigs) = uid.replace(Vec::new()) {
                    settle(sigs, &mut out);
                }
            }
            "sig" | "rev" => {
                let Some(sigs) = uid.as_mut() else { continue };
                let issuer = field(&f, 12);
                let mine = if issuer.is_empty() {
                    field(&f, 4).eq_ignore_ascii_case(&by_id)
                } else {
                    issuer.eq_ignore_ascii_case(&by_hex)
                };
                if !mine || field(&f, 1) != "!" {
                    continue;
                }
                let class = field(&f, 10).split(',').next().unwrap_or("");
                let certification = matches!(class.get(..2), Some("10" | "11" | "12" | "13"));
                let revocation = class.starts_with("30");
                if !certification && !revocation {
                    continue;
                }
                let Ok(created) = field(&f, 5).parse::<i64>() else {
                    continue;
                };
                let exportable = class.ends_with('x');
                let expires = field(&f, 6).parse::<i64>().ok();
                out.newest = Some(out.newest.map_or(created, |n| n.max(created)));
                if certification {
                    out.any = true;
                    out.exportable |= exportable;
                }
                sigs.push((created, certification, exportable, expires));
            }
            "pub" | "sub" | "sec" | "ssb" => {
                if let Some(sigs) = uid.take() {
                    settle(sigs, &mut out);
                }
            }
            // `fpr`, `grp`, `tru`, and `[GNUPG:]` status lines between the records.
            _ => {}
        }
    }
    if let Some(sigs) = uid.take() {
        settle(sigs, &mut out);
    }
    out
}

/// GnuPG orders a key's certifications and revocations by their creation time in whole
/// seconds, and breaks a tie by packet order, where a revocation made in the same second as
/// the certification it revokes can land first and lose (measured with gpg 2.2.40: the key
/// stayed valid). So a new certification or revocation is only made once the clock has passed
/// the newest one by the same key: this waits up to a second.
///
/// # Errors
/// When the newest one is dated more than a few seconds ahead of this machine's clock.
fn wait_past(action: &str, newest: Option<i64>) -> Result<(), GpgError> {
    let Some(newest) = newest else { return Ok(()) };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let until = (newest + 1) as f64;
    if until - now > 5.0 {
        return Err(GpgError {
            action: action.into(),
            detail: format!(
                "your key's last certification of it is dated {}, ahead of this machine's clock: \
                 check the clock",
                crate::text::format_unix(newest)
            ),
        });
    }
    if until > now {
        std::thread::sleep(Duration::from_secs_f64(until - now + 0.05));
    }
    Ok(())
}

fn unlock_args(unlock: Unlock, a: &mut Vec<OsString>) -> Input<'static> {
    match unlock {
        Unlock::Agent => Input::Inherit,
        Unlock::Never => {
            a.extend(args(["--pinentry-mode", "error"]));
            Input::Null
        }
        Unlock::File(path) => {
            a.extend(args(["--pinentry-mode", "loopback", "--passphrase-file"]));
            a.push(path.into());
            Input::Null
        }
    }
}

/// Certifies `key` locally (a non-exportable certification of all its user ids, which never
/// leaves this keyring) with the user's key `by`:
/// `gpg --batch --no-tty --yes -u BY [--force-sign-key] --quick-lsign-key KEY`. `before` is
/// what [`certifications`] said; `--force-sign-key` is given when `by` certified `key` before
/// and that certification was revoked (gpg otherwise answers "already signed" and does
/// nothing). The result is read back: it must be a live certification.
///
/// # Errors
/// [`GpgError`] with gpg's stderr when gpg fails (a locked key with [`Unlock::Never`], a
/// wrong passphrase, an expired or revoked `key`), or when gpg exits without `key` carrying a
/// live certification by `by`.
pub fn certify_locally(
    key: Fingerprint,
    by: Fingerprint,
    before: &Certifications,
    unlock: Unlock,
) -> Result<(), GpgError> {
    let action = format!("gpg -u {by} --quick-lsign-key {key}");
    wait_past(&action, before.newest)?;
    let mut a = args(["--no-tty", "--yes"]);
    let input = unlock_args(unlock, &mut a);
    a.extend(args(["-u", &by.to_string()]));
    if before.any {
        a.push("--force-sign-key".into());
    }
    a.extend(args(["--quick-lsign-key", "--", &key.to_string()]));
    let out = gpg(&action, &a, input)?;
    if !out.status.success() {
        return Err(GpgError {
            action,
            detail: stderr_of(&out),
        });
    }
    match certifications(key, by)? {
        Some(c) if c.live => Ok(()),
        _ => Err(GpgError {
            action,
            detail: format!(
                "gpg reported success, but the key carries no valid certification by yours: {}",
                stderr_of(&out)
            ),
        }),
    }
}

/// Withdraws the user's certifications of `key`: `gpg --batch --no-tty --yes
/// --quick-revoke-sig KEY BY`, which revokes every certification by `by` on `key`'s user ids
/// with a revocation of the same kind (a local one for a local certification: measured with
/// gpg 2.2.40, it is accepted, and `gpg --encrypt -r KEY` then fails with "There is no
/// assurance this key belongs to the named user"). The caller checks `before.exportable`
/// first: a public certification would be revoked publicly too. The result is read back: no
/// certification by `by` may stay live.
///
/// # Errors
/// [`GpgError`] with gpg's stderr when gpg fails, or when a certification by `by` is still
/// live afterwards.
pub fn withdraw_certifications(
    key: Fingerprint,
    by: Fingerprint,
    before: &Certifications,
    unlock: Unlock,
) -> Result<(), GpgError> {
    let action = format!("gpg --quick-revoke-sig {key} {by}");
    wait_past(&action, before.newest)?;
    let mut a = args(["--no-tty", "--yes"]);
    let input = unlock_args(unlock, &mut a);
    a.extend(args([
        "--quick-revoke-sig",
        "--",
        &key.to_string(),
        &by.to_string(),
    ]));
    let out = gpg(&action, &a, input)?;
    if !out.status.success() {
        return Err(GpgError {
            action,
            detail: stderr_of(&out),
        });
    }
    match certifications(key, by)? {
        Some(c) if c.live => Err(GpgError {
            action,
            detail: format!(
                "gpg reported success, but your certification is still valid: {}",
                stderr_of(&out)
            ),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAROL: &str = "580CE1418199106C5A25670C671860C86CF301B2";
    const BOB: &str = "4C0A026C989E783A344D1E3729532E86123A5888";

    fn fpr(s: &str) -> Fingerprint {
        Fingerprint::parse(s).unwrap()
    }

    /// `gpg --with-colons --check-sigs BOB` in carol's keyring (gpg 2.2.40), with the
    /// certification and revocation lines given.
    fn listing(on_uid: &[&str]) -> String {
        let mut s = format!(
            "tru:o:1:1796011940:1:3:1:5\n\
             pub:f:255:22:29532E86123A5888:1796011938:::-:::scESC:::::ed25519:::0:\n\
             fpr:::::::::{BOB}:\n\
             uid:f::::1796011938::2EB7::Bob <bob@x>::::::::::0:\n\
             sig:!::22:29532E86123A5888:1796011938::::Bob <bob@x>:13x::{BOB}:::8:\n"
        );
        for l in on_uid {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str(&format!(
            "sub:f:255:18:35C9A1C7E12B5873:1796011938::::::e:::::cv25519::\n\
             fpr:::::::::8B99075FDED41D6A4B48842335C9A1C7E12B5873:\n\
             sig:!::22:29532E86123A5888:1796011938::::Bob <bob@x>:18x::{BOB}:::8:\n"
        ));
        s
    }

    fn sig(kind: &str, time: i64, class: &str) -> String {
        format!("{kind}:!::22:671860C86CF301B2:{time}::::Carol <carol@x>:{class}::{CAROL}:::8:")
    }

    #[test]
    fn status_lines_between_records_are_skipped() {
        let mut text = listing(&[
            "[GNUPG:] KEY_CONSIDERED 580CE1418199106C5A25670C671860C86CF301B2 0",
            &sig("sig", 100, "10l"),
        ]);
        text = text.replacen("fpr:", "[GNUPG:] KEY_CONSIDERED X 0\nfpr:", 1);
        assert!(parse_certifications(&text, fpr(CAROL), 200).live);
        assert!(parse_public_keys(&text).contains_key(&fpr(BOB)));
    }

    fn certs(lines: &[String], now: i64) -> Certifications {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        parse_certifications(&listing(&refs), fpr(CAROL), now)
    }

    #[test]
    fn a_local_certification_is_live_until_a_later_revocation() {
        let none = certs(&[], 2_000_000_000);
        assert_eq!(none, Certifications::default());
        let signed = certs(&[sig("sig", 100, "10l")], 200);
        assert!(signed.live && signed.any && !signed.exportable);
        assert_eq!(signed.newest, Some(100));
        // As gpg lists it after `--quick-revoke-sig`: the revocation first.
        let revoked = certs(&[sig("rev", 101, "30l,00"), sig("sig", 100, "10l")], 200);
        assert!(!revoked.live && revoked.any);
        assert_eq!(revoked.newest, Some(101));
        // Certified again later (`--force-sign-key`).
        let again = certs(
            &[
                sig("rev", 101, "30l,00"),
                sig("sig", 100, "10l"),
                sig("sig", 102, "10l"),
            ],
            200,
        );
        assert!(again.live);
        // A tie of seconds: the later packet wins (here the certification).
        let tie = certs(&[sig("rev", 100, "30l,00"), sig("sig", 100, "10l")], 200);
        assert!(tie.live);
    }

    #[test]
    fn only_good_signatures_by_the_certifier_count() {
        let bad = sig("sig", 100, "10l").replacen("sig:!", "sig:-", 1);
        assert!(!certs(&[bad], 200).any);
        let other = "sig:!::22:1111111111111111:100::::Mallory:10l::1111111111111111111111111111111111111111:::8:".to_string();
        assert!(!certs(&[other], 200).any);
        // Without an issuer fingerprint, the key id decides.
        let by_id = "sig:!::22:671860C86CF301B2:100::::Carol:10l:::::8:".to_string();
        assert!(certs(&[by_id], 200).live);
        // An expired certification does not count; an exportable one is flagged.
        let expired = sig("sig", 100, "10l").replacen(":100::", ":100:150:", 1);
        assert!(!certs(&[expired], 200).live);
        let public = certs(&[sig("sig", 100, "13x")], 200);
        assert!(public.live && public.exportable);
        // Signatures on subkeys are not certifications of user ids.
        let on_sub = format!(
            "pub:f:255:22:29532E86123A5888:1::::::::\nfpr:::::::::{BOB}:\n\
             sub:f:255:18:35C9A1C7E12B5873:1::::::e:::::cv25519::\n{}\n",
            sig("sig", 100, "10l")
        );
        assert!(!parse_certifications(&on_sub, fpr(CAROL), 200).any);
    }

    #[test]
    fn listings_and_status_lines_parse() {
        let secret = format!(
            "sec:u:255:22:671860C86CF301B2:1796011938:::u:::scESC:::+::ed25519:::0:\n\
             fpr:::::::::{CAROL}:\n\
             grp:::::::::2E6DAA52446ACF81BF13C0032D546C2F23200D37:\n\
             uid:u::::1796011938::2B31::Carol <carol@x>::::::::::0:\n\
             ssb:u:255:18:5301B478F4AC7C5A:1796011938::::::e:::+::cv25519::\n\
             fpr:::::::::60E5BD0CE7DBCA724AFD26495301B478F4AC7C5A:\n\
             sec:u:255:22:29532E86123A5888:1796011938:::u:::scESC:::#::ed25519:::0:\n\
             fpr:::::::::{BOB}:\n"
        );
        assert_eq!(
            parse_secret_keys(&secret),
            vec![
                SecretKey {
                    fingerprint: fpr(CAROL),
                    validity: 'u',
                    primary_available: true
                },
                SecretKey {
                    fingerprint: fpr(BOB),
                    validity: 'u',
                    primary_available: false
                },
            ]
        );
        let public = parse_public_keys(&listing(&[]));
        assert_eq!(
            public.get(&fpr(BOB)),
            Some(&KeyTrust {
                validity: 'f',
                ownertrust: '-'
            })
        );
        assert_eq!(public.len(), 1, "subkey fingerprints are not keys");
        let status = format!(
            "[GNUPG:] IMPORTED 29532E86123A5888 Bob\n[GNUPG:] IMPORT_OK 1 {BOB}\n\
             [GNUPG:] IMPORT_OK 4 {CAROL}\n"
        );
        assert_eq!(parse_import(&status, fpr(BOB)), Some(Imported::New));
        assert_eq!(parse_import(&status, fpr(CAROL)), Some(Imported::Updated));
        let same = format!("[GNUPG:] IMPORT_OK 0 {BOB}\n");
        assert_eq!(parse_import(&same, fpr(BOB)), Some(Imported::Unchanged));
        assert_eq!(parse_import("", fpr(BOB)), None);
    }
}
