//! The commands a pass user types every day, without a GnuPG keyring: `show`, `ls`, `find`,
//! `grep` read; `insert`, `generate`, `edit`, `rm`, `mv`, `cp` write, each in one signed commit
//! with pass's own message (`Add given password for X to store.` …) and vault's trailers,
//! encrypted to the nearest `.gpg-id`'s vouched recipients, pushed when there is an upstream.
//! Plaintext stays in zeroizing memory; only `edit` hands it to `$EDITOR`, in a private folder
//! on tmpfs (`/dev/shm`, as pass does), and refuses when there is none.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};

use anyhow::Context;
use zeroize::Zeroizing;

use vault::crypto::Identity;
use vault::secret::Secret;
use vault::snapshot::Snapshot;
use vault::store::{parse_entry, parse_folder, Entry};
use vault::text::{count, escape};
use vault::Error;

use crate::cli::{
    EntryArg, FindArgs, GenerateArgs, Global, GrepArgs, InsertArgs, LsArgs, MoveArgs, RmArgs,
    ShowArgs,
};
use crate::commands::sync::{catch_up, publish};
use crate::commands::{carry_out, carry_out_checked, check_trust, identity, open, open_for_change};
use crate::ui;

/// The operator's identity, required: these commands decrypt.
pub(super) fn operator(global: &Global, vault: &Snapshot) -> anyhow::Result<Identity> {
    Ok(identity(global, Some(vault))?.ok_or(Error::NoIdentity)?)
}

fn find_entry<'v>(vault: &'v Snapshot, name: &str) -> anyhow::Result<&'v Entry> {
    let name = parse_entry(name)?;
    if let Some(e) = vault.entry(&name) {
        return Ok(e);
    }
    if !vault.entries_under(&name).is_empty() {
        anyhow::bail!(
            "{} is a folder, not an entry: `vault ls {}` lists what is in it",
            escape(&name),
            escape(&name)
        );
    }
    // The same error as rm's, with its "did you mean".
    Err(vault
        .plan_rm(&name, false)
        .err()
        .unwrap_or(Error::IsAFolder(escape(&name).into_owned()))
        .into())
}

/// `vault show ENTRY [--line N]`: the plaintext on standard output.
pub fn show(
    global: &Global,
    args: &ShowArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open(global, err)?;
    let entry = find_entry(&vault, &args.entry)?;
    let mut identity = operator(global, &vault)?;
    let plain = vault.decrypt_entry(entry, &mut identity)?;
    if args.clip {
        let n = args.line.unwrap_or(1);
        if n == 0 {
            return Err(Error::Usage("--line counts from 1 (the password)".into()).into());
        }
        let Some(line) = plain.expose().split(|b| *b == b'\n').nth(n - 1) else {
            anyhow::bail!("entry {} has no line {n}", escape(&entry.name));
        };
        let seconds = crate::commands::clip::copy(line)?;
        writeln!(
            out,
            "Copied {} to clipboard. Will clear in {seconds} seconds.",
            escape(&entry.name)
        )?;
        return Ok(());
    }
    match args.line {
        None => out.write_all(plain.expose())?,
        Some(0) => return Err(Error::Usage("--line counts from 1 (the password)".into()).into()),
        Some(n) => {
            let line = plain.expose().split(|b| *b == b'\n').nth(n - 1);
            match line {
                Some(l) => {
                    out.write_all(l)?;
                    out.write_all(b"\n")?;
                }
                None => anyhow::bail!("entry {} has no line {n}", escape(&entry.name)),
            }
        }
    }
    Ok(())
}

/// `vault ls [FOLDER]`: the entries as a tree, as `pass ls` prints it.
pub fn ls(
    global: &Global,
    args: &LsArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open(global, err)?;
    let folder = args
        .folder
        .as_deref()
        .map(parse_folder)
        .transpose()?
        .unwrap_or_default();
    let prefix = format!("{folder}/");
    let names: Vec<String> = vault
        .entries_under(&folder)
        .into_iter()
        .map(|e| e.name.clone())
        .filter(|n| folder.is_empty() || n.starts_with(&prefix))
        .collect();
    if names.is_empty() && vault.entry(&folder).is_some() {
        // An entry, not a folder: pass shows it.
        let args = ShowArgs {
            entry: folder,
            line: None,
            clip: false,
        };
        return show(global, &args, out, err);
    }
    if names.is_empty() && !folder.is_empty() {
        return Err(Error::NoSuchFolder {
            folder: vault::store::show_folder(&folder),
            nearest: None,
        }
        .into());
    }
    let title = if folder.is_empty() {
        "Password Store".to_string()
    } else {
        escape(&folder).into_owned()
    };
    writeln!(out, "{title}")?;
    let relative: Vec<&str> = names
        .iter()
        .map(|n| {
            if folder.is_empty() {
                n.as_str()
            } else {
                &n[prefix.len()..]
            }
        })
        .collect();
    tree(&relative, out)
}

/// `vault find NAME…`: the entries any part of whose name contains one of the NAMEs (ignoring
/// case), as a tree, as `pass find` prints it.
pub fn find(
    global: &Global,
    args: &FindArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open(global, err)?;
    let terms: Vec<String> = args.names.iter().map(|n| n.to_lowercase()).collect();
    let names: Vec<String> = vault
        .entries_under("")
        .into_iter()
        .map(|e| e.name.clone())
        .filter(|n| {
            let lower = n.to_lowercase();
            terms
                .iter()
                .any(|t| lower.split('/').any(|part| part.contains(t.as_str())))
        })
        .collect();
    writeln!(
        out,
        "Search Terms: {}",
        args.names
            .iter()
            .map(|n| escape(n))
            .collect::<Vec<_>>()
            .join(",")
    )?;
    tree(&names.iter().map(String::as_str).collect::<Vec<_>>(), out)
}

/// Prints sorted entry names as `tree` does (`├── `, `└── `, `│   `), folders before their
/// contents, every name escaped.
fn tree(names: &[&str], out: &mut dyn Write) -> anyhow::Result<()> {
    // Folder path -> its children (name, is a folder), in order.
    let mut children: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for name in names {
        let parts: Vec<&str> = name.split('/').collect();
        for depth in 0..parts.len() {
            let parent = parts[..depth].join("/");
            let child = (parts[depth].to_string(), depth + 1 < parts.len());
            let list = children.entry(parent).or_default();
            if !list.contains(&child) {
                list.push(child);
            }
        }
    }
    for list in children.values_mut() {
        list.sort();
    }
    fn walk(
        children: &BTreeMap<String, Vec<(String, bool)>>,
        folder: &str,
        indent: &str,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let Some(list) = children.get(folder) else {
            return Ok(());
        };
        for (i, (name, is_folder)) in list.iter().enumerate() {
            let last = i + 1 == list.len();
            writeln!(
                out,
                "{indent}{}{}",
                if last { "└── " } else { "├── " },
                escape(name)
            )?;
            if *is_folder {
                let path = if folder.is_empty() {
                    name.clone()
                } else {
                    format!("{folder}/{name}")
                };
                let deeper = format!("{indent}{}", if last { "    " } else { "│   " });
                walk(children, &path, &deeper, out)?;
            }
        }
        Ok(())
    }
    walk(&children, "", "", out)?;
    Ok(())
}

/// `vault grep PATTERN`: decrypts every entry the operator can read and prints the matching
/// lines under the entry's name, as `pass grep` does. Entries it cannot decrypt are named on
/// standard error, never skipped in silence.
pub fn grep(
    global: &Global,
    args: &GrepArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<bool> {
    let vault = open(global, err)?;
    let pattern = regex::bytes::RegexBuilder::new(&args.pattern)
        .case_insensitive(args.ignore_case)
        .build()
        .map_err(|e| Error::Usage(format!("the pattern is not a regular expression: {e}")))?;
    let mut identity = operator(global, &vault)?;
    let mut unreadable = Vec::new();
    for entry in vault.entries_under("") {
        let plain = match vault.decrypt_entry(entry, &mut identity) {
            Ok(p) => p,
            Err(e) => {
                unreadable.push(format!("{}: {e}", escape(&entry.name)));
                continue;
            }
        };
        let lines: Vec<&[u8]> = plain
            .expose()
            .split(|b| *b == b'\n')
            .filter(|l| pattern.is_match(l))
            .collect();
        if !lines.is_empty() {
            writeln!(out, "{}:", escape(&entry.name))?;
            for l in lines {
                out.write_all(l)?;
                out.write_all(b"\n")?;
            }
        }
    }
    for u in &unreadable {
        writeln!(err, "not searched: {u}")?;
    }
    Ok(!unreadable.is_empty())
}

/// Reads an entry's new content from standard input (all of it with `multiline`, else the first
/// line), or asks twice on a terminal, as `pass insert` does.
fn read_new_content(name: &str, multiline: bool) -> anyhow::Result<Secret> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() && !multiline {
        return ui::new_secret(
            &format!("Enter password for {}", escape(name)),
            &format!("Retype password for {}", escape(name)),
        )
        .map(|s| with_newline(s.expose()));
    }
    let mut content = Zeroizing::new(Vec::with_capacity(4096));
    let mut lock = stdin.lock();
    if multiline {
        lock.read_to_end(&mut content)
            .context("reading standard input")?;
        return Ok(Secret::new(content));
    }
    // One line, read a byte at a time: what follows it stays for whoever reads next (a script
    // that inserts line by line), as pass's `read` leaves it.
    let mut byte = [0u8; 1];
    let mut ended = false;
    while lock.read(&mut byte).context("reading standard input")? == 1 {
        if byte[0] == b'\n' {
            ended = true;
            break;
        }
        content.push(byte[0]);
    }
    if content.is_empty() && !ended {
        return Err(Error::Usage(format!(
            "no password for {} on standard input: nothing was changed",
            escape(name)
        ))
        .into());
    }
    Ok(with_newline(&content))
}

/// `line` and a newline, as pass stores a one-line entry.
fn with_newline(line: &[u8]) -> Secret {
    let mut v = Zeroizing::new(Vec::with_capacity(line.len() + 1));
    v.extend_from_slice(line);
    v.push(b'\n');
    Secret::new(v)
}

/// Carries out a content plan and pushes; says what was committed.
fn commit(
    vault: &Snapshot,
    global: &Global,
    plan: vault::change::Plan,
    upstream: Option<&vault::git::Upstream>,
    (done, out, err): (&str, &mut dyn Write, &mut dyn Write),
) -> anyhow::Result<()> {
    let outcome = carry_out(vault, global, plan, None, err)?;
    writeln!(out, "{done}; commit {}.", outcome.commit.short())?;
    publish(vault.repo(), upstream, global, out)
}

/// `vault insert ENTRY [--multiline] [--force]`.
pub fn insert(
    global: &Global,
    args: &InsertArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let name = parse_entry(&args.entry)?;
    let (vault, upstream) = catch_up(vault, global, err)?;
    if vault.entry(&name).is_some() && !args.force {
        return Err(Error::EntryExists(escape(&name).into_owned()).into());
    }
    let plain = read_new_content(&name, args.multiline)?;
    let subject = format!("Add given password for {} to store.", escape(&name));
    let plan = vault.plan_write(&name, plain, ("insert", subject), args.force)?;
    let done = format!("Added {}", escape(&name));
    commit(&vault, global, plan, upstream.as_ref(), (&done, out, err))
}

/// pass's password alphabet: `[:graph:]` (printable ASCII but space), or `[:alnum:]`.
pub(super) fn alphabet(symbols: bool) -> Vec<u8> {
    (b'!'..=b'~')
        .filter(|c| symbols || c.is_ascii_alphanumeric())
        .collect()
}

/// A password of `length` characters drawn uniformly from `alphabet`, from the operating
/// system's random source (getrandom), by rejection sampling (no modulo bias).
pub(super) fn generate_password(
    length: usize,
    alphabet: &[u8],
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let n = alphabet.len();
    let limit = 256 - 256 % n; // bytes at or above it would favour the first characters
    let mut out = Zeroizing::new(Vec::with_capacity(length + 1));
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < length {
        getrandom::getrandom(&mut buf[..])
            .map_err(|e| anyhow::anyhow!("reading the system's random source: {e}"))?;
        for b in buf.iter().map(|b| usize::from(*b)).filter(|b| *b < limit) {
            if out.len() == length {
                break;
            }
            out.push(alphabet[b % n]);
        }
    }
    Ok(out)
}

/// The length of a generated password: `given`, else `$PASSWORD_STORE_GENERATED_LENGTH`, else
/// 25 (pass's default).
///
/// # Errors
/// [`Error::Usage`] for a length of 0 or a variable that is not a number.
pub(super) fn password_length(given: Option<usize>) -> anyhow::Result<usize> {
    let length = match given {
        Some(l) => l,
        None => match std::env::var("PASSWORD_STORE_GENERATED_LENGTH") {
            Ok(v) => v.trim().parse().map_err(|_| {
                Error::Usage(format!(
                    "PASSWORD_STORE_GENERATED_LENGTH={:?} is not a number",
                    escape(&v)
                ))
            })?,
            Err(_) => 25,
        },
    };
    if length == 0 {
        return Err(Error::Usage("the length must be at least 1".into()).into());
    }
    Ok(length)
}

/// `vault generate ENTRY [LENGTH] [--no-symbols] [--in-place] [--force]`.
pub fn generate(
    global: &Global,
    args: &GenerateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let name = parse_entry(&args.entry)?;
    let length = password_length(args.length)?;
    let (vault, upstream) = catch_up(vault, global, err)?;
    let existing = vault.entry(&name);
    if existing.is_some() && !args.force && !args.in_place {
        return Err(Error::EntryExists(escape(&name).into_owned()).into());
    }
    let password = generate_password(length, &alphabet(!args.no_symbols))?;
    // Room for everything up front: a growing buffer would leave copies behind.
    let mut content = Zeroizing::new(Vec::with_capacity(password.len() + 1 + 65_536));
    content.extend_from_slice(&password);
    content.push(b'\n');
    let (subject, done) = match (args.in_place, existing) {
        (true, Some(entry)) => {
            // Keep every line but the first, byte for byte.
            let mut identity = operator(global, &vault)?;
            let old = vault.decrypt_entry(entry, &mut identity)?;
            if let Some(at) = old.expose().iter().position(|b| *b == b'\n') {
                content.extend_from_slice(&old.expose()[at + 1..]);
            }
            (
                format!("Replace generated password for {}.", escape(&name)),
                "Replaced the password of",
            )
        }
        (true, None) => {
            return Err(vault.plan_rm(&name, false).err().map_or_else(
                || anyhow::anyhow!("there is no entry {}", escape(&name)),
                Into::into,
            ))
        }
        (false, _) => (
            format!("Add generated password for {}.", escape(&name)),
            "Generated",
        ),
    };
    let plan = vault.plan_write(
        &name,
        Secret::new(content),
        ("generate", subject),
        args.force || args.in_place,
    )?;
    let outcome = carry_out(&vault, global, plan, None, err)?;
    writeln!(
        out,
        "{done} {}; commit {}. The generated password:",
        escape(&name),
        outcome.commit.short()
    )?;
    out.write_all(&password)?;
    out.write_all(b"\n")?;
    publish(vault.repo(), upstream.as_ref(), global, out)
}

/// `vault edit ENTRY`: the plaintext in a file in a private folder on tmpfs (`/dev/shm`, as
/// pass uses), `$EDITOR` (else `vi`) on it, and the result committed if it changed. The file is
/// overwritten with zeros and removed afterwards, whatever happens.
pub fn edit(
    global: &Global,
    args: &EntryArg,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let name = parse_entry(&args.entry)?;
    let (vault, upstream) = catch_up(vault, global, err)?;
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        anyhow::bail!(
            "there is no /dev/shm (a tmpfs) to edit {} in: vault does not write plaintext to a disk. Use `vault insert --multiline --force {}` instead",
            escape(&name),
            escape(&name)
        );
    }
    let old = match vault.entry(&name) {
        Some(entry) => {
            let mut identity = operator(global, &vault)?;
            Some(vault.decrypt_entry(entry, &mut identity)?)
        }
        None => None,
    };
    // What could refuse the commit is checked before the person edits: their edit is not lost.
    let recipients = vault.recipients().values().flatten().copied().collect();
    let trusted = check_trust(&vault, global, &recipients, err)?;
    vault.check_content(&vault.plan_write(
        &name,
        old.clone().unwrap_or_default(),
        ("edit", String::new()),
        true,
    )?)?;
    // Ctrl-C, SIGTERM and a hang-up while the file exists must not skip its removal below.
    ui::begin_change();
    let hangup = ui::catch_hangup();
    let dir = tempfile::Builder::new()
        .prefix("vault.")
        .tempdir_in(shm)
        .context("making a private folder in /dev/shm")?;
    let leaf = name.rsplit('/').next().unwrap_or(&name).replace(
        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
        "_",
    );
    let file = dir.path().join(format!("{leaf}.txt"));
    let edited = (|| -> anyhow::Result<Secret> {
        std::fs::write(&file, old.as_ref().map(|o| o.expose()).unwrap_or_default())
            .context("writing the entry to /dev/shm")?;
        let editor = std::env::var("EDITOR")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "vi".into());
        // As pass does: $EDITOR may hold arguments (`code --wait`), so the shell splits it.
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&file)
            .status()
            .with_context(|| format!("running the editor {editor:?}"))?;
        if !status.success() {
            anyhow::bail!(
                "the editor exited with {status}: {} was not changed",
                escape(&name)
            );
        }
        Ok(Secret::new(Zeroizing::new(
            std::fs::read(&file).context("reading the edited entry")?,
        )))
    })();
    // Overwrite before removing: tmpfs is memory, but swap is not.
    if let Ok(meta) = std::fs::metadata(&file) {
        let _ = std::fs::write(&file, vec![0u8; meta.len() as usize]);
    }
    drop(dir);
    drop(hangup);
    let edited = edited?;
    // The editor closed normally: a Ctrl-C it took (ed, a shell it ran) does not undo the edit.
    ui::clear_interrupted();
    if old.as_ref().is_some_and(|o| o.expose() == edited.expose()) {
        writeln!(out, "{} unchanged: nothing committed.", escape(&name))?;
        return Ok(());
    }
    let editor = std::env::var("EDITOR").unwrap_or_else(|_| "vi".into());
    let action = if old.is_some() { "Edit" } else { "Add" };
    let subject = format!(
        "{action} password for {} using {}.",
        escape(&name),
        escape(&editor)
    );
    let plan = vault.plan_write(&name, edited, ("edit", subject), true)?;
    // Trust was checked before the edit, on this same snapshot: not walked again.
    let outcome = carry_out_checked(&vault, global, plan, trusted, err)?;
    writeln!(
        out,
        "Saved {}; commit {}.",
        escape(&name),
        outcome.commit.short()
    )?;
    publish(vault.repo(), upstream.as_ref(), global, out)
}

/// `vault rm ENTRY [--recursive]`.
pub fn rm(
    global: &Global,
    args: &RmArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let name = args.entry.trim_end_matches('/');
    let name = parse_entry(name)?;
    let (vault, upstream) = catch_up(vault, global, err)?;
    let (plan, removed) = vault.plan_rm(&name, args.recursive)?;
    let yes = ui::confirm(
        global.yes,
        &format!(
            "Remove {} ({})?",
            escape(&name),
            count(removed.len(), "entry", "entries")
        ),
        "rm needs confirmation: pass --yes",
    )?;
    if !yes {
        writeln!(err, "Nothing changed.")?;
        return Ok(());
    }
    let done = format!("Removed {}", count(removed.len(), "entry", "entries"));
    commit(&vault, global, plan, upstream.as_ref(), (&done, out, err))
}

/// `vault mv OLD NEW` (`keep` false) and `vault cp OLD NEW` (`keep` true).
pub fn move_or_copy(
    global: &Global,
    args: &MoveArgs,
    keep: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let from = parse_entry(args.from.trim_end_matches('/'))?;
    let (vault, upstream) = catch_up(vault, global, err)?;
    let (target, moves) = vault.moves(&from, &args.to, args.force)?;
    // pass's mv of a folder takes its .gpg-id along; vault moves entries only. A folder with a
    // .gpg-id of its own (or below it) would change readers: refused, with pass's way.
    if vault.entry(&from).is_none() {
        let own: Vec<String> = vault
            .recipients()
            .keys()
            .filter(|f| *f == &from || f.starts_with(&format!("{from}/")))
            .map(|f| escape(&vault::store::gpg_id_path(f)).into_owned())
            .collect();
        if !own.is_empty() {
            anyhow::bail!(
                "{} has its own {}: vault {} moves entries, not who reads them. Move the folder \
                 with its .gpg-id as pass does (`pass {} {} {}`, then `vault sync`), or give \
                 the entries one by one; nothing was changed",
                escape(&from),
                own.join(", "),
                if keep { "cp" } else { "mv" },
                if keep { "cp" } else { "mv" },
                escape(&from),
                escape(&args.to)
            );
        }
    }
    // Whoever gains access by the move is named, and asked about.
    let mut gained: Vec<String> = Vec::new();
    for (entry, dest) in &moves {
        let before = vault.readers_of(&entry.path).unwrap_or_default();
        for f in vault.readers_of(&format!("{dest}.gpg")).unwrap_or_default() {
            let name = vault.display_name(*f);
            if !before.contains(f) && !gained.contains(&name) {
                gained.push(name);
            }
        }
    }
    if !gained.is_empty() {
        writeln!(
            err,
            "At its new place, {} can read what they could not before: {}.",
            escape(&from),
            gained.join(", ")
        )?;
        let yes = ui::confirm(
            global.yes,
            "Give them access?",
            "this move gives others access: confirm on a terminal, or pass --yes",
        )?;
        if !yes {
            writeln!(err, "Nothing changed.")?;
            return Ok(());
        }
    }
    // Entries whose readers change are decrypted (and encrypted anew in the change).
    let mut plain = BTreeMap::new();
    let mut identity = None;
    for (entry, dest) in &moves {
        if vault.needs_reencrypting(entry, &format!("{dest}.gpg")) {
            if identity.is_none() {
                identity = Some(operator(global, &vault)?);
            }
            let id = identity.as_mut().expect("set above");
            plain.insert(entry.name.clone(), vault.decrypt_entry(entry, id)?);
        }
    }
    let reencrypted = plain.len();
    let plan = vault.plan_move((&from, &args.to, &target), &moves, plain, keep);
    let done = format!(
        "{} {} ({} encrypted anew for other readers)",
        if keep { "Copied" } else { "Moved" },
        count(moves.len(), "entry", "entries"),
        reencrypted
    );
    commit(&vault, global, plan, upstream.as_ref(), (&done, out, err))
}
