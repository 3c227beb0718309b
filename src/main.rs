//! The `vault` binary: parse, run, print the error chain with a hint, exit with a code.

mod cli;
mod commands;
mod ui;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// Runs the command; returns the exit code for a run without error.
fn run(cli: &Cli) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut err = std::io::stderr();
    let g = &cli.global;
    match &cli.command {
        Command::Init(a) => commands::init::run(g, a, &mut out, &mut err)?,
        Command::AddMember(a) => commands::add_member::run(g, a, &mut out, &mut err)?,
        Command::RemoveMember(a) => commands::remove_member::run(g, a, &mut out, &mut err)?,
        Command::UpdateMember(a) => commands::update_member::run(g, a, &mut out, &mut err)?,
        Command::ReplaceKey(a) => commands::replace_key::run(g, a, &mut out, &mut err)?,
        Command::Grant(a) => commands::grant::run(g, a, &mut out, &mut err)?,
        Command::Revoke(a) => {
            let args = cli::RemoveMemberArgs {
                name: a.name.clone(),
                folder: Some(a.folder.clone()),
                create: a.create,
                only_a_folder: true,
            };
            commands::remove_member::run(g, &args, &mut out, &mut err)?
        }
        Command::ImportKeys => {
            if commands::import_keys::run(g, &mut out, &mut err)? {
                return Ok(commands::audit::ATTENTION);
            }
        }
        Command::Members(a) => commands::members::run(g, a, &mut out, &mut err)?,
        Command::Repair => commands::repair::run(g, &mut out, &mut err)?,
        Command::Readme => commands::readme::run(g, &mut out, &mut err)?,
        Command::Rotate(a) => commands::rotate::run(g, a, &mut out, &mut err)?,
        Command::Show(a) => commands::entries::show(g, a, &mut out, &mut err)?,
        Command::Insert(a) => commands::entries::insert(g, a, &mut out, &mut err)?,
        Command::Generate(a) => commands::entries::generate(g, a, &mut out, &mut err)?,
        Command::Edit(a) => commands::entries::edit(g, a, &mut out, &mut err)?,
        Command::Rm(a) => commands::entries::rm(g, a, &mut out, &mut err)?,
        Command::Mv(a) => commands::entries::move_or_copy(g, a, false, &mut out, &mut err)?,
        Command::Cp(a) => commands::entries::move_or_copy(g, a, true, &mut out, &mut err)?,
        Command::Ls(a) => commands::entries::ls(g, a, &mut out, &mut err)?,
        Command::Find(a) => commands::entries::find(g, a, &mut out, &mut err)?,
        Command::Grep(a) => {
            if commands::entries::grep(g, a, &mut out, &mut err)? {
                return Ok(commands::audit::ATTENTION);
            }
        }
        Command::Sync(a) => commands::sync::run(g, a, &mut out, &mut err)?,
        Command::Hooks(a) => match a.action {
            cli::HooksAction::Install => commands::hooks::install(g, &mut out)?,
        },
        Command::Hook(a) => return commands::hooks::run(g, &a.name, &mut out, &mut err),
        Command::ClipRestore { seconds } => commands::clip::restore(*seconds)?,
        Command::Completions { shell } => {
            let shells = clap_complete::env::Shells::builtins();
            let completer = shells.completer(shell).expect("clap checked the name");
            completer.write_registration("COMPLETE", "vault", "vault", "vault", &mut out)?;
        }
        Command::Man => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out)?
        }
        Command::Verify(a) => {
            if commands::verify::run(g, a, &mut out, &mut err)? {
                return Ok(commands::audit::ATTENTION);
            }
        }
        Command::Audit(a) => {
            if commands::audit::run(g, a, &mut out, &mut err)? {
                return Ok(commands::audit::ATTENTION);
            }
        }
    }
    Ok(0)
}

fn main() -> ExitCode {
    ui::private_process();
    ui::catch_interrupts();
    ui::catch_file_size_limit();
    // `COMPLETE=bash vault -- vault show we…`: the shell asking for candidates (clap_complete's
    // protocol, set up by `vault completions SHELL`).
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            // Errors quote names from the store (entries, folders, user ids): each line is
            // escaped so none of them can add a line or move the cursor.
            let escape = |s: String| vault::text::escape(&s).into_owned();
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {}", escape(e.to_string()));
            for cause in e.chain().skip(1) {
                let _ = writeln!(stderr, "  caused by: {}", escape(cause.to_string()));
            }
            if let Some(hint) = e.downcast_ref::<vault::Error>().and_then(|v| v.hint()) {
                let _ = writeln!(stderr, "hint: {}", escape(hint));
            }
            ExitCode::FAILURE
        }
    }
}
