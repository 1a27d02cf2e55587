//! The `stella` command line: parses arguments and runs one command; every failure ends
//! as one `error:` line on stderr (a JSON object with `--output json`) and the exit code
//! the README lists.
//!
//! It lives in the library rather than beside `main.rs` because the `bench` commands
//! sit next to their benchmarks in [`crate::bench`] and print through [`output`] as the
//! other commands do, and because the tests of the command tree (every flag documented,
//! connection flags in either place) then run with the library's. It is the binary's
//! edge all the same: it turns the `anyhow` errors of the commands, the benchmarks and
//! the diagnostics into one line and an exit code, and `main.rs` only calls [`main`].
//!
//! Layout:
//! - this file: the root command, where the connection flags may stand, and the error
//!   edge (exit code and message);
//! - `args`: arguments several commands share (ranges, paging);
//! - `output`: tables or JSON, terminal-safe text, writes that survive a closed pipe;
//! - `server`: `serve`, `worker`, `scheduler`, `migrate`, `config show`;
//! - `mirror`: `mirror import` (a bundle from another instance, into the configured store);
//! - `diag`: `diag noop`; `crate::bench`: `bench ...`;
//! - `completions`: `completions SHELL`;
//! - `client/`: the commands that talk to a server, one file per resource, and the
//!   HTTP client (`client/http.rs`).

// Every write goes through `outln!`/`errln!`: `println!` panics on a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub(crate) mod args;
mod client;
mod completions;
pub(crate) mod connect;
mod diag;
mod mirror;
pub(crate) mod output;
pub(crate) mod sbom;
pub(crate) mod server;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use client::http::{ClientError, ExitKind};
use client::{ClientArgs, ClientCommand};
use output::{errln, terminal_safe, Format};
use server::ServerCommand;

/// Where `--help` lists the options every command takes, after the command's own.
const GLOBAL: &str = "Global options";

#[derive(Debug, Parser)]
#[command(
    name = "stella",
    version,
    about = "Multi-tenant job orchestration for container-security pipelines"
)]
pub(crate) struct Cli {
    /// TOML settings file (default: $STELLA_CONFIG, else built-in defaults only).
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    config: Option<PathBuf>,

    /// How results, reports and errors are printed.
    #[arg(long, global = true, value_enum, env = "STELLA_OUTPUT", default_value_t = Format::Table, help_heading = GLOBAL)]
    output: Format,

    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Server(ServerCommand),
    #[command(flatten)]
    Client(ClientCommand),
    /// Make an SBOM of a container image archive on this machine (no server needed).
    Sbom(sbom::Sbom),
    /// Print a shell completion script.
    Completions(completions::Completions),
}

/// Runs the command line of this process and returns its exit code.
pub fn main() -> ExitCode {
    let args = hoist_client_flags(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err, &args),
    };
    let format = cli.output;
    let result = cli.run().and_then(|()| match output::stdout_error() {
        // The output is incomplete, so the command must not end with exit code 0.
        Some(message) => Err(anyhow::Error::msg(message)),
        None => Ok(()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err, format),
    }
}

impl Cli {
    fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Server(command) => command.run(self.config.as_deref(), self.output),
            Command::Client(command) => Ok(command.run(self.output)?),
            Command::Sbom(sbom) => sbom.run(),
            Command::Completions(completions) => {
                completions.run();
                Ok(())
            }
        }
    }
}

/// Prints a failed command's error on stderr, the whole chain on one line, and returns
/// its exit code: a client command's [`ExitKind`] (with the server's problem document in
/// JSON), 1 for everything else.
fn report(err: &anyhow::Error, format: Format) -> ExitCode {
    let client = err.downcast_ref::<ClientError>();
    let error = ClientError {
        kind: client.map_or(ExitKind::Failure, |e| e.kind),
        problem: client.and_then(|e| e.problem.clone()),
        message: format!("{err:#}"),
    };
    match format {
        Format::Json => errln!("{}", error.to_json()),
        Format::Table => errln!(
            "error: {}",
            terminal_safe(&error.message.replace('\n', " "))
        ),
    }
    ExitCode::from(error.kind as u8)
}

/// A command line clap refused: its own message and exit code 2, or with JSON output
/// asked for, one JSON object (the arguments did not parse, so `--output` is looked for
/// by hand).
fn usage_error(err: &clap::Error, args: &[OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    let wants_json = {
        let args: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
        args.windows(2)
            .any(|w| w[0] == "--output" && w[1] == "json")
            || args.iter().any(|a| a == "--output=json")
            || std::env::var("STELLA_OUTPUT").is_ok_and(|v| v == "json")
    };
    let informational = matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !wants_json || informational {
        // clap writes help and errors itself, and ignores a closed pipe.
        err.exit();
    }
    // The first line says what is wrong; the rest is usage help for a human.
    let rendered = err.render().to_string();
    let message = rendered
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ");
    errln!(
        "{}",
        serde_json::json!({ "error": { "type": "usage", "message": message, "exit_code": 2 } })
    );
    ExitCode::from(2)
}

/// `stella --tenant acme scan …` read as `stella scan --tenant acme …`.
///
/// The connection flags (`--server`, `--token`, `--tenant`) belong to the client
/// commands only ([`ClientArgs`]), yet written before the command's name they read
/// naturally and scripts do so. Such flags are moved to just after the command's name;
/// the root's own options stay in place and nothing else changes, so clap still refuses
/// a connection flag on a command that does not connect (`stella --tenant acme serve`).
/// Without a command name the arguments are left as they are.
fn hoist_client_flags(args: Vec<OsString>) -> Vec<OsString> {
    let longs = |command: clap::Command, only_with_values: bool| -> Vec<String> {
        command
            .get_arguments()
            .filter(|arg| !only_with_values || arg.get_action().takes_values())
            .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
            .collect()
    };
    // Every connection flag takes a value; of the root's options, `--config PATH` and
    // `--output FORMAT` do.
    let client_flags = longs(
        ClientArgs::augment_args(clap::Command::new("client")),
        false,
    );
    let takes_value = longs(Cli::command(), true);
    let mut kept = Vec::with_capacity(args.len());
    let mut hoisted = Vec::new();
    let mut rest = args.iter().cloned();
    kept.extend(rest.next());
    while let Some(arg) = rest.next() {
        let Some(text) = arg.to_str() else {
            return args;
        };
        if text == "--" || !text.starts_with('-') {
            // The command's name.
            kept.push(arg);
            kept.append(&mut hoisted);
            kept.extend(rest);
            return kept;
        }
        let (name, inline_value) = match text.split_once('=') {
            Some((name, _)) => (name, true),
            None => (text, false),
        };
        let is_client_flag = client_flags.iter().any(|flag| flag == name);
        let into = if is_client_flag {
            &mut hoisted
        } else {
            &mut kept
        };
        into.push(arg.clone());
        let needs_value = is_client_flag || takes_value.iter().any(|t| t == name);
        if needs_value && !inline_value {
            into.extend(rest.next());
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        let args = line.split(' ').map(OsString::from).collect();
        Cli::try_parse_from(hoist_client_flags(args))
    }

    fn hoisted(line: &str) -> String {
        let args = line.split(' ').map(OsString::from).collect();
        let args: Vec<String> = hoist_client_flags(args)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        args.join(" ")
    }

    #[test]
    fn every_command_and_every_flag_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() {
                missing.push(format!("`{path}` has no about"));
            }
            for arg in command.get_arguments() {
                if arg.get_help().is_none() {
                    missing.push(format!("`{path}` argument `{}` has no help", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut root = Cli::command();
        // Built, as a user sees it: global flags copied down, `help` subcommands added.
        root.build();
        let mut missing = Vec::new();
        walk(&root, "", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
        // The walk does reach the leaves: an undocumented flag there would be found.
        let leaves = root
            .find_subcommand("tokens")
            .and_then(|tokens| tokens.find_subcommand("create"))
            .map(|create| create.get_arguments().count());
        assert!(leaves.is_some_and(|n| n > 5), "{leaves:?}");
    }

    #[test]
    fn connection_flags_exist_only_on_commands_that_connect() {
        let root = Cli::command();
        let longs = |command: &clap::Command| -> Vec<String> {
            command
                .get_arguments()
                .filter_map(|a| a.get_long().map(str::to_owned))
                .collect()
        };
        for flag in ["server", "token", "tenant"] {
            assert!(
                !longs(&root).contains(&flag.to_owned()),
                "root has --{flag}"
            );
            for command in [
                "serve",
                "worker",
                "migrate",
                "bench",
                "diag",
                "completions",
                "mirror",
            ] {
                let found = root.find_subcommand(command).unwrap();
                assert!(!longs(found).contains(&flag.to_owned()), "{command}");
            }
            for command in ["tenants", "scan", "events", "actors", "verify", "runs"] {
                let found = root.find_subcommand(command).unwrap();
                assert!(longs(found).contains(&flag.to_owned()), "{command}");
            }
        }
        let err = parse("stella --tenant acme serve").unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument, "{err}");
        assert!(parse("stella serve --token x").is_err());
        assert!(parse("stella bench jobs --server http://x").is_err());
    }

    #[test]
    fn connection_flags_may_come_before_the_command_or_after_it() {
        assert_eq!(
            hoisted("stella --tenant acme --output json events --all"),
            "stella --output json events --tenant acme --all"
        );
        assert_eq!(
            hoisted("stella --config c.toml --server=http://x --token t jobs list"),
            "stella --config c.toml jobs --server=http://x --token t list"
        );
        assert_eq!(
            hoisted("stella jobs list --tenant a"),
            "stella jobs list --tenant a"
        );
        assert_eq!(hoisted("stella --tenant"), "stella --tenant");
        for line in [
            "stella --tenant acme jobs list",
            "stella jobs --tenant acme list",
            "stella jobs list --tenant acme",
            "stella --tenant=acme jobs list",
        ] {
            let cli = parse(line).unwrap_or_else(|err| panic!("{line}: {err}"));
            let Command::Client(ClientCommand::Jobs(jobs)) = &cli.command else {
                panic!("{line}: {cli:?}");
            };
            let jobs = format!("{jobs:?}");
            assert!(jobs.contains(r#"tenant: Some("acme")"#), "{line}: {jobs}");
        }
    }
}
