//! Fault injection for the crash-safety tests (debug builds only).

#[cfg(debug_assertions)]
use std::time::Duration;

/// Fault injection for the crash-safety tests, in debug builds only: with
/// `VAULT_FAULT_TRACE=1` each step of a change is named on stderr as `fault-point N NAME`; with
/// `VAULT_FAULT_POINT=N` the process aborts (no clean-up, like SIGKILL) on reaching step N; with
/// `VAULT_FAULT_STALL=NAME` it pauses for 8 seconds the first time it reaches the step NAME (for
/// the tests of two runs at once).
#[cfg(debug_assertions)]
pub(crate) fn fault_point(name: &str) {
    static STALLED: std::sync::Once = std::sync::Once::new();
    if std::env::var("VAULT_FAULT_STALL").is_ok_and(|s| s == name) {
        STALLED.call_once(|| {
            eprintln!("fault-point stalled at {name}");
            std::thread::sleep(Duration::from_secs(8));
        });
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static CONFIG: OnceLock<(bool, Option<usize>)> = OnceLock::new();
    let (trace, stop) = *CONFIG.get_or_init(|| {
        (
            std::env::var_os("VAULT_FAULT_TRACE").is_some(),
            std::env::var("VAULT_FAULT_POINT")
                .ok()
                .and_then(|v| v.parse().ok()),
        )
    });
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if trace {
        eprintln!("fault-point {n} {name}");
    }
    if stop == Some(n) {
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn fault_point(_: &str) {}
