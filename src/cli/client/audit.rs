//! `stella audit`: the audit log of every mutating call.

use super::http::{Client, ClientError};
use super::Run;
use crate::cli::args::PageArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct Audit {
    /// Only this tenant's entries.
    #[arg(long = "of-tenant", value_name = "TENANT")]
    of_tenant: Option<String>,
    #[command(flatten)]
    page: PageArgs,
}

impl Run for Audit {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let Self { of_tenant, page } = self;
        client.print(
            &client.list(
                "/audit",
                page.query_with(&[("tenant", of_tenant.as_ref())]),
                page.all,
            )?,
            &["seq", "at", "tenant", "actor", "action", "target"],
        );
        Ok(())
    }
}
