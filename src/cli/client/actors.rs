//! `stella actors`: the server's supervision tree.

use super::http::{Client, ClientError};
use super::Run;
use crate::cli::output::{print_tree, Format};

#[derive(Debug, clap::Args)]
pub(crate) struct Actors {}

impl Run for Actors {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let tree = client.get("/system/actors", &[])?;
        match client.format {
            Format::Json => client.print(&tree, &[]),
            Format::Table => print_tree(&tree, 0),
        }
        Ok(())
    }
}
