//! `stella events`: the events stream.

use super::http::{Client, ClientError};
use super::Run;
use crate::cli::args::PageArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct Events {
    /// Only events of this kind: `scan.completed`, `advisory.delta`, `vex.imported` or
    /// `policy.updated`.
    #[arg(long)]
    kind: Option<String>,
    #[command(flatten)]
    page: PageArgs,
}

impl Run for Events {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let Self { kind, page } = self;
        client.print(
            &client.list(
                "/events",
                page.query_with(&[("kind", kind.as_ref())]),
                page.all,
            )?,
            &["seq", "kind", "tenant", "created_at", "payload"],
        );
        Ok(())
    }
}
