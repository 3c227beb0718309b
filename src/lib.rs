//! vault: manage who can read a team's pass-compatible password store.
//!
//! The library never prints and never prompts: commands in the binary compose it. sequoia lives
//! in [`crypto`], git2 in [`git`].

pub mod audit;
pub mod change;
pub mod crypto;
pub mod error;
pub mod git;
pub mod ids;
pub mod keyring;
pub mod readme;
pub mod secret;
pub mod snapshot;
pub mod store;
pub mod text;
pub mod trust;

pub use error::{Error, Result};
