//! `stella tokens`: create (the secret is printed once), list, show and revoke API tokens.

use clap::Subcommand;
use serde_json::json;

use super::http::{segment as seg, Client, ClientError, ExitKind};
use super::{Run, Subcommands};
use crate::cli::args::{PageArgs, MAX_EXPIRY_DAYS};
use crate::cli::output::{errln, Format};

const COLUMNS: &[&str] = &["id", "tenant", "name", "scopes", "expires_at", "revoked_at"];

pub(crate) type Tokens = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Create a token; its secret is printed once.
    Create {
        /// What the token is for, e.g. `ci`.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, e.g. `jobs:read,jobs:write`.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// The tenant the token acts on (omit for an administrator token).
        #[arg(long = "for-tenant", value_name = "TENANT")]
        for_tenant: Option<String>,
        /// Expire after this many days.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_EXPIRY_DAYS))]
        expires_in_days: Option<u32>,
    },
    /// List a tenant's tokens, or administrator tokens.
    List {
        /// The tenant whose tokens to list (omit for administrator tokens).
        #[arg(long = "for-tenant", value_name = "TENANT")]
        for_tenant: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One token (never its secret).
    Get {
        /// The token's id.
        id: String,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id.
        id: String,
    },
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let token = match self {
            Self::Create {
                name,
                scopes,
                for_tenant,
                expires_in_days,
            } => {
                // clap checks the range; checked_add keeps any day count from panicking
                // on a date past chrono's last year all the same.
                let expires_at = expires_in_days
                    .map(|days| {
                        chrono::Utc::now()
                            .checked_add_signed(chrono::Duration::days(i64::from(days)))
                            .ok_or_else(|| {
                                ClientError::new(
                                    ExitKind::Invalid,
                                    format!("--expires-in-days {days} is out of range"),
                                )
                            })
                    })
                    .transpose()?;
                let created = client.post(
                    "/tokens",
                    &json!({ "tenant": for_tenant, "name": name, "scopes": scopes, "expires_at": expires_at }),
                )?;
                client.print(&created, &["id", "tenant", "name", "scopes", "token"]);
                if client.format == Format::Table {
                    errln!("the token is shown once; store it now");
                }
                return Ok(());
            }
            Self::List { for_tenant, page } => client.list(
                "/tokens",
                page.query_with(&[("tenant", for_tenant.as_ref())]),
                page.all,
            )?,
            Self::Get { id } => client.get(&format!("/tokens/{}", seg(id)), &[])?,
            Self::Revoke { id } => client.delete(&format!("/tokens/{}", seg(id)))?,
        };
        client.print(&token, COLUMNS);
        Ok(())
    }
}
