//! Everything that talks to the person at the terminal: confirmations and passphrases (here),
//! progress, colours ([`paint`]) and signals ([`signals`]). The library reaches none of this.

mod paint;
mod signals;

use std::io::IsTerminal;

pub use paint::Paint;
pub use signals::{
    begin_change, catch_file_size_limit, catch_hangup, catch_interrupts, clear_interrupted,
    interrupted, private_process,
};

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

/// Asks for a new secret twice on the terminal, as `pass insert` does (no echo; asked again
/// until both match).
pub fn new_secret(prompt: &str, again: &str) -> anyhow::Result<Secret> {
    let p = dialoguer::Password::new()
        .with_prompt(prompt)
        .with_confirmation(again, "the two do not match; try again")
        .interact()
        .context("reading the password")?;
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
