//! Everything that talks to the person at the terminal: confirmations, passphrases, progress,
//! and Ctrl-C. The library reaches none of this directly.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use vault::secret::Secret;

/// Whether a person is there to answer prompts.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks a yes/no question. `--yes` answers yes; without a terminal it fails with `needs`.
pub fn confirm(yes: bool, question: &str, needs: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !interactive() {
        bail!("{needs}");
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .context("reading the answer")
}

/// Asks for a passphrase on the terminal.
pub fn passphrase(prompt: &str) -> anyhow::Result<Secret> {
    let p = dialoguer::Password::new()
        .with_prompt(prompt)
        .interact()
        .context("reading the passphrase")?;
    Ok(Secret::from(p))
}

/// A progress bar on stderr for `total` steps, only on a terminal and for runs worth watching.
pub fn progress(total: usize, what: &str) -> ProgressBar {
    if total < 50 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta} left)")
            .expect("the template is valid"),
    );
    bar.set_message(what.to_string());
    bar
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static IN_CHANGE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    if IN_CHANGE.load(Ordering::SeqCst) {
        INTERRUPTED.store(true, Ordering::SeqCst);
        return;
    }
    // Nothing is being changed: leave at once (write and _exit are async-signal-safe).
    const MSG: &[u8] = b"vault: interrupted; nothing was changed\n";
    // SAFETY: write(2) and _exit(2) may be called from a signal handler.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::_exit(130);
    }
}

/// Installs the Ctrl-C/SIGTERM handler for the whole run: outside a change, vault stops at once;
/// during one (see [`begin_change`]) the change is asked to stop, and undoes itself before its
/// commit point or completes after it.
pub fn catch_interrupts() {
    // SAFETY: the handler only touches atomics and calls async-signal-safe functions.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

extern "C" fn on_file_too_large(_: libc::c_int) {
    vault::git::FILE_SIZE_LIMIT_HIT.store(true, Ordering::SeqCst);
}

/// A write past the file size limit fails with EFBIG instead of killing vault mid-change, and
/// the error can say so.
pub fn catch_file_size_limit() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGXFSZ,
            on_file_too_large as *const () as libc::sighandler_t,
        );
    }
}

/// From now on, Ctrl-C asks the running change to stop instead of ending the process.
pub fn begin_change() {
    IN_CHANGE.store(true, Ordering::SeqCst);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Secrets must not end up in a core dump.
pub fn disable_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
    }
}
