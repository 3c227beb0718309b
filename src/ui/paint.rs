//! Colours for people reading a terminal, with anstyle. Whether to colour follows the
//! conventions anstream implements: only on a terminal, never with `NO_COLOR` set
//! (<https://no-color.org>), always with `CLICOLOR_FORCE`.

use anstyle::{AnsiColor, Style};

/// Paints text for standard output, or leaves it plain.
pub struct Paint {
    on: bool,
}

impl Paint {
    /// Colours if standard output is a terminal that should get them.
    pub fn for_stdout() -> Paint {
        Paint {
            on: anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never,
        }
    }

    /// Problems.
    pub fn red(&self, s: &str) -> String {
        self.with(AnsiColor::Red.on_default(), s)
    }

    /// Warnings and things to do.
    pub fn yellow(&self, s: &str) -> String {
        self.with(AnsiColor::Yellow.on_default(), s)
    }

    /// Headings.
    pub fn bold(&self, s: &str) -> String {
        self.with(Style::new().bold(), s)
    }

    /// Details.
    pub fn dim(&self, s: &str) -> String {
        self.with(Style::new().dimmed(), s)
    }

    fn with(&self, style: Style, s: &str) -> String {
        if self.on {
            format!("{style}{s}{style:#}")
        } else {
            s.to_string()
        }
    }
}
