//! `stella events`: the events stream, a page at a time or (`--follow`) live.

use serde_json::Value;

use super::http::{Client, ClientError, ExitKind};
use super::Run;
use crate::cli::args::PageArgs;
use crate::cli::output::{outln, terminal_safe, Format};

#[derive(Debug, clap::Args)]
pub(crate) struct Events {
    /// Only events of this kind: `scan.completed`, `advisory.delta`, `vex.imported` or
    /// `policy.updated`.
    #[arg(long)]
    kind: Option<String>,
    /// Print events as they happen, one line each (one JSON object each with
    /// `--output json`), until interrupted; with `--cursor SEQ`, from after that event.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    page: PageArgs,
}

impl Run for Events {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let Self { kind, follow, page } = self;
        if *follow {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(kind) = kind {
                query.push(("kind", kind.clone()));
            }
            if let Some((_, cursor)) = page.query().into_iter().find(|(k, _)| *k == "cursor") {
                query.push(("after", cursor));
            }
            let json = client.format == Format::Json;
            let offered =
                client.read_stream("/events/stream", &query, "events", None, |name, data| {
                    if json {
                        outln!("{data}");
                    } else {
                        let text =
                            |v: &Value| terminal_safe(v.as_str().unwrap_or("-")).into_owned();
                        outln!(
                            "{}  {}  {}  {}  {}",
                            data["seq"],
                            terminal_safe(name),
                            text(&data["tenant"]),
                            text(&data["created_at"]),
                            terminal_safe(&data["payload"].to_string())
                        );
                    }
                    true
                })?;
            if !offered {
                return Err(ClientError::new(
                    ExitKind::Unavailable,
                    "the server offers no event stream (GET /api/v1/events/stream)",
                ));
            }
            return Ok(());
        }
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
