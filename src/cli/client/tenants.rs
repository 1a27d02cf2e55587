//! `stella tenants`: create, list, rename, disable and enable tenants.

use clap::Subcommand;
use serde_json::json;

use super::http::{segment as seg, Client, ClientError};
use super::{Run, Subcommands};
use crate::cli::args::PageArgs;

const COLUMNS: &[&str] = &["id", "name", "status", "labels", "created_at"];

pub(crate) type Tenants = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Create a tenant.
    Create {
        /// Lowercase slug, e.g. `acme`.
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Every tenant.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// One tenant.
    Get {
        /// The tenant's id.
        id: String,
    },
    /// Change a tenant's display name.
    Rename {
        /// The tenant's id.
        id: String,
        /// The new display name.
        #[arg(long)]
        name: String,
    },
    /// Replace a tenant's labels (what rollout waves select tenants by).
    Label {
        /// The tenant's id.
        id: String,
        /// `key=value`; repeat for several; none removes every label.
        #[arg(value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// Disable a tenant: its tokens stop working, its data is kept.
    Disable {
        /// The tenant's id.
        id: String,
    },
    /// Enable a disabled tenant again.
    Enable {
        /// The tenant's id.
        id: String,
    },
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let tenant = match self {
            Self::Create { id, name } => {
                client.post("/tenants", &json!({ "id": id, "name": name }))?
            }
            Self::List { page } => client.list("/tenants", page.query(), page.all)?,
            Self::Get { id } => client.get(&format!("/tenants/{}", seg(id)), &[])?,
            Self::Rename { id, name } => {
                client.patch(&format!("/tenants/{}", seg(id)), &json!({ "name": name }))?
            }
            Self::Label { id, labels } => {
                let mut map = serde_json::Map::new();
                for label in labels {
                    let (key, value) = label.split_once('=').ok_or_else(|| {
                        ClientError::new(
                            super::http::ExitKind::Invalid,
                            format!("{label:?}: give a label as key=value"),
                        )
                    })?;
                    map.insert(key.to_owned(), json!(value));
                }
                client.patch(&format!("/tenants/{}", seg(id)), &json!({ "labels": map }))?
            }
            Self::Disable { id } => client.post_empty(&format!("/tenants/{}/disable", seg(id)))?,
            Self::Enable { id } => client.post_empty(&format!("/tenants/{}/enable", seg(id)))?,
        };
        client.print(&tenant, COLUMNS);
        Ok(())
    }
}
