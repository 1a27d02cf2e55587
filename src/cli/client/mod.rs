//! The commands that talk to a Stella server over HTTP, one file per resource. Each
//! command's arguments (or its subcommands, through [`Subcommands`]) implement [`Run`];
//! [`Remote`] adds the connection flags (`--server`, `--token`, `--tenant`), so those
//! flags exist on these commands only.

mod actors;
mod advisories;
mod audit;
mod dead_letters;
mod events;
mod exceptions;
mod export_verify;
mod exports;
pub(crate) mod http;
mod images;
mod jobs;
mod keys;
mod notify;
mod policy;
mod rollouts;
mod runs;
mod scans;
mod schedules;
mod targets;
mod tenants;
mod tokens;
mod verify;
mod vex;

use std::path::Path;

use clap::Subcommand;

use crate::cli::output::Format;
use http::{Client, ClientError, ExitKind};

/// What a client command does with a connection.
pub(crate) trait Run {
    fn run(&self, client: &Client) -> Result<(), ClientError>;
}

// Where the client commands connect (no doc comment: a flattened struct's would become
// the `about` of the command it is flattened into). `global`: the flags may follow the
// resource's own subcommand too (`stella jobs list --tenant acme`).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Connection")]
pub(crate) struct ClientArgs {
    /// The Stella server to talk to.
    #[arg(
        long,
        global = true,
        env = "STELLA_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,

    /// API token (`Authorization: Bearer`).
    #[arg(long, global = true, env = "STELLA_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Tenant an administrator token acts on (sent as `X-Stella-Tenant`).
    #[arg(long, global = true, env = "STELLA_TENANT")]
    tenant: Option<String>,
}

// A client command's own arguments with the connection flags (see `ClientArgs`).
#[derive(Debug, clap::Args)]
pub(crate) struct Remote<C: clap::Args> {
    #[command(flatten)]
    command: C,
    #[command(flatten)]
    client: ClientArgs,
}

// A resource's subcommands (`stella tenants create ...`) as its command's arguments:
// each resource file names its `Action` enum's alias, e.g. `Tenants = Subcommands<Action>`.
#[derive(Debug, clap::Args)]
pub(crate) struct Subcommands<A: Subcommand> {
    #[command(subcommand)]
    action: A,
}

impl<A: Subcommand + Run> Run for Subcommands<A> {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        self.action.run(client)
    }
}

impl<C: clap::Args + Run> Remote<C> {
    fn run(&self, format: Format) -> Result<(), ClientError> {
        let ClientArgs {
            server,
            token,
            tenant,
        } = &self.client;
        let client = Client::new(server, token.clone(), tenant.clone(), format)?;
        self.command.run(&client)
    }
}

/// A file the command line names that cannot be read: exit code 6.
fn unreadable(path: &Path, err: std::io::Error) -> ClientError {
    ClientError::new(
        ExitKind::Invalid,
        format!("cannot read {}: {err}", path.display()),
    )
}

/// The commands that talk to a server (`stella COMMAND`, flattened into the root).
#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Tenants (administrator token).
    Tenants(Remote<tenants::Tenants>),
    /// API tokens (administrator token).
    Tokens(Remote<tokens::Tokens>),
    /// Jobs of a tenant.
    Jobs(Remote<jobs::Jobs>),
    /// Dead letters of a tenant.
    DeadLetters(Remote<dead_letters::DeadLetters>),
    /// Advisories (OSV), shared by every tenant.
    Advisories(Remote<advisories::Advisories>),
    /// Scan an SBOM (CycloneDX or SPDX JSON): submit it, and with `--wait` print the
    /// verdict and findings; exit code 1 when the policy blocks, so CI can gate on it.
    Scan(Remote<scans::Scan>),
    /// Scans of a tenant: status, findings, attestation.
    Scans(Remote<scans::Scans>),
    /// Container images of a tenant: upload an archive (its SBOM is made by the server),
    /// list, show.
    Images(Remote<images::Images>),
    /// VEX statements (OpenVEX or CycloneDX VEX).
    Vex(Remote<vex::Vex>),
    /// The tenant's policy (TOML) and its lifecycle.
    Policy(Remote<policy::Policy>),
    /// Exceptions (waivers) of a tenant: request, approve, reject, revoke, list.
    Exceptions(Remote<exceptions::Exceptions>),
    /// Rollouts of policy packs through waves of tenants (administrator token).
    Rollouts(Remote<rollouts::Rollouts>),
    /// The events stream (`scan.completed`, `finding.new`, `verdict.changed`,
    /// `advisory.delta`, `export.completed`, ...).
    Events(Remote<events::Events>),
    /// Exports of a tenant: profiles, runs and their files.
    Export(Remote<exports::Export>),
    /// Notifications of a tenant: channels, rules, templates, deliveries.
    Notify(Remote<notify::Notify>),
    /// Targets of a tenant: named images or applications re-scans evaluate.
    Targets(Remote<targets::Targets>),
    /// Schedules of a tenant: cron re-scans and advisory syncs.
    Schedules(Remote<schedules::Schedules>),
    /// Runs of a tenant's schedules and of drift re-evaluations.
    Runs(Remote<runs::Runs>),
    /// The server's supervision tree (administrator token).
    Actors(Remote<actors::Actors>),
    /// The audit log (administrator token).
    Audit(Remote<audit::Audit>),
    /// Verify an attestation (a DSSE envelope from `scans/{id}/attestation`) with a public
    /// key file, or with the server's published keys.
    Verify(Remote<verify::Verify>),
    /// The public keys that sign attestations and exports (no token needed); `--pem`
    /// for `verify --key` and `export verify --key`.
    Keys(Remote<keys::Keys>),
}

impl ClientCommand {
    /// Connects and runs the command; its error carries the exit code.
    pub(crate) fn run(&self, format: Format) -> Result<(), ClientError> {
        match self {
            Self::Tenants(command) => command.run(format),
            Self::Tokens(command) => command.run(format),
            Self::Jobs(command) => command.run(format),
            Self::DeadLetters(command) => command.run(format),
            Self::Advisories(command) => command.run(format),
            Self::Scan(command) => command.run(format),
            Self::Scans(command) => command.run(format),
            Self::Images(command) => command.run(format),
            Self::Vex(command) => command.run(format),
            Self::Policy(command) => command.run(format),
            Self::Exceptions(command) => command.run(format),
            Self::Rollouts(command) => command.run(format),
            Self::Events(command) => command.run(format),
            Self::Export(command) => command.run(format),
            Self::Notify(command) => command.run(format),
            Self::Targets(command) => command.run(format),
            Self::Schedules(command) => command.run(format),
            Self::Runs(command) => command.run(format),
            Self::Actors(command) => command.run(format),
            Self::Audit(command) => command.run(format),
            Self::Verify(command) => command.run(format),
            Self::Keys(command) => command.run(format),
        }
    }
}
