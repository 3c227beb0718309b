//! Signals and process settings: Ctrl-C and SIGTERM (stop at once, or let the running change undo
//! or finish itself), SIGXFSZ (a write past `ulimit -f` fails instead of killing vault), no core
//! dumps, and pass's umask.

use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGXFSZ};
use signal_hook::SigId;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static IN_CHANGE: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C/SIGTERM handler for the whole run: outside a change, vault stops at once
/// (exit code 130, as a shell reports SIGINT); during one (see [`begin_change`]) the change is
/// asked to stop, and undoes itself before its commit point or completes after it.
pub fn catch_interrupts() {
    for signal in [SIGINT, SIGTERM] {
        // SAFETY: the action only touches atomics and makes async-signal-safe calls (write(2)
        // through rustix, _exit(2) through signal-hook).
        let installed = unsafe {
            signal_hook::low_level::register(signal, || {
                if IN_CHANGE.load(Ordering::SeqCst) {
                    INTERRUPTED.store(true, Ordering::SeqCst);
                    return;
                }
                let _ = rustix::io::write(
                    rustix::stdio::stderr(),
                    b"vault: interrupted; nothing was changed\n",
                );
                signal_hook::low_level::exit(130);
            })
        };
        installed.expect("SIGINT and SIGTERM can be caught");
    }
}

/// A write past the file size limit fails with EFBIG instead of killing vault mid-change, and
/// the error can say so ([`vault::git::FILE_SIZE_LIMIT_HIT`]).
pub fn catch_file_size_limit() {
    // SAFETY: the action only stores to an atomic.
    let installed = unsafe {
        signal_hook::low_level::register(SIGXFSZ, || {
            vault::git::FILE_SIZE_LIMIT_HIT.store(true, Ordering::SeqCst);
        })
    };
    installed.expect("SIGXFSZ can be caught");
}

/// From now on, Ctrl-C asks the running change to stop instead of ending the process.
pub fn begin_change() {
    IN_CHANGE.store(true, Ordering::SeqCst);
}

/// While the returned guard lives, a hang-up (the terminal closed) asks the running work to stop,
/// as Ctrl-C does, instead of killing vault: for `vault edit`, whose file must be removed. Only
/// then, so that `nohup vault …` keeps ignoring it.
pub fn catch_hangup() -> HangupGuard {
    // SAFETY: the action only stores to an atomic.
    let id = unsafe {
        signal_hook::low_level::register(SIGHUP, || INTERRUPTED.store(true, Ordering::SeqCst))
    };
    HangupGuard(id.ok())
}

/// See [`catch_hangup`]; dropping it restores what SIGHUP did before.
pub struct HangupGuard(Option<SigId>);

impl Drop for HangupGuard {
    fn drop(&mut self) {
        if let Some(id) = self.0.take() {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Forgets a Ctrl-C that arrived while a child program (an editor) had the terminal and went
/// on: what the person did there stands.
pub fn clear_interrupted() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// Whether Ctrl-C or SIGTERM arrived since [`begin_change`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Keeps what this process holds to its owner: no core dumps (they would hold decrypted
/// secrets), and, like pass (`umask 077`), files it creates are readable by their owner only.
pub fn private_process() {
    use rustix::process::{setrlimit, umask, Resource, Rlimit};
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    // Lowering a limit cannot fail for an unprivileged process; if it somehow does, secrets
    // are still zeroized after use.
    let _ = setrlimit(Resource::Core, none);
    umask(rustix::fs::Mode::from_raw_mode(0o077));
}
