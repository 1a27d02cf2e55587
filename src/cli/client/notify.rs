//! `stella notify`: notification channels, rules, templates and deliveries.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::http::{segment as seg, Client, ClientError};
use super::{unreadable, Run, Subcommands};
use crate::cli::args::PageArgs;

pub(crate) type Notify = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Channels: where messages go (email, webhook, Slack, Teams).
    Channels {
        #[command(subcommand)]
        action: ChannelAction,
    },
    /// Rules: which events notify which channels.
    Rules {
        #[command(subcommand)]
        action: RuleAction,
    },
    /// Templates that override the shipped ones (minijinja).
    Templates {
        #[command(subcommand)]
        action: TemplateAction,
    },
    /// Deliveries and their receipts.
    Deliveries {
        #[command(subcommand)]
        action: DeliveryAction,
    },
}

/// A channel's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ChannelType {
    Email,
    Webhook,
    Slack,
    Teams,
}

/// What quiet hours do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum QuietMode {
    /// Hold it and send it when the quiet hours end.
    Hold,
    /// Fold it into one digest sent when they end.
    Digest,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChannelAction {
    /// Create or replace a channel.
    Set {
        /// The channel's name.
        name: String,
        /// The channel's type.
        #[arg(long = "type", value_enum)]
        kind: ChannelType,
        /// The destination URL (webhook, Slack incoming webhook, Teams Workflows webhook).
        #[arg(long, required_if_eq_any = [("kind", "webhook"), ("kind", "slack"), ("kind", "teams")])]
        url: Option<String>,
        /// Email recipients (repeat the flag for several).
        #[arg(long = "to", required_if_eq("kind", "email"))]
        to: Vec<String>,
        /// A webhook's signing secret (`whsec_…`); without it Stella makes one and shows
        /// it once.
        #[arg(long)]
        secret: Option<String>,
        /// At most this many messages per throttle window (the rest go into the next
        /// digest).
        #[arg(long, default_value_t = 10)]
        throttle_max: u32,
        /// The throttle window, in seconds.
        #[arg(long, default_value_t = 60)]
        throttle_seconds: u32,
        /// Quiet hours as `HH:MM-HH:MM` in `--timezone` (may span midnight).
        #[arg(long)]
        quiet_hours: Option<String>,
        /// The quiet hours' IANA timezone, e.g. `Europe/Berlin`.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// What quiet hours do with a message.
        #[arg(long, value_enum, default_value_t = QuietMode::Hold)]
        quiet_mode: QuietMode,
    },
    /// The tenant's channels.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// One channel.
    Get {
        /// The channel's name.
        name: String,
    },
    /// Delete a channel no rule uses.
    Delete {
        /// The channel's name.
        name: String,
    },
    /// Send a test message now.
    Test {
        /// The channel's name.
        name: String,
    },
    /// Rotate a webhook's signing secret (the previous one signs too for a day).
    RotateSecret {
        /// The channel's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RuleAction {
    /// Create or replace a rule from flags, or from a JSON file with `--file`.
    Set(RuleArgs),
    /// Which of the last events a draft rule would have matched (nothing is saved).
    Preview {
        #[command(flatten)]
        rule: RuleArgs,
        /// Events to examine.
        #[arg(long, default_value_t = 100)]
        last: u32,
    },
    /// The tenant's rules.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// One rule.
    Get {
        /// The rule's name.
        name: String,
    },
    /// Delete a rule.
    Delete {
        /// The rule's name.
        name: String,
    },
}

/// A digest window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Digest {
    Instant,
    #[value(name = "5m")]
    FiveMinutes,
    #[value(name = "1h")]
    OneHour,
    #[value(name = "1d")]
    OneDay,
}

impl Digest {
    fn as_str(self) -> &'static str {
        match self {
            Digest::Instant => "instant",
            Digest::FiveMinutes => "5m",
            Digest::OneHour => "1h",
            Digest::OneDay => "1d",
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct RuleArgs {
    /// The rule's name.
    name: String,
    /// The whole rule as JSON (the flags below are ignored).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Event kinds it matches (repeat), e.g. `finding.new`, `verdict.changed`.
    #[arg(long = "event", required_unless_present = "file")]
    events: Vec<String>,
    /// Only findings at or above this severity (critical, high, medium, low).
    #[arg(long)]
    min_severity: Option<String>,
    /// Only these dispositions (repeat): pass, warn, block.
    #[arg(long = "disposition")]
    dispositions: Vec<String>,
    /// Only these targets (repeat; `*` globs).
    #[arg(long = "target")]
    targets: Vec<String>,
    /// Only these vulnerability ids (repeat).
    #[arg(long = "vulnerability")]
    vulnerabilities: Vec<String>,
    /// Only these VEX statuses (repeat): not_affected, affected, fixed.
    #[arg(long = "vex-status")]
    vex_status: Vec<String>,
    /// The channel to notify (repeat for several).
    #[arg(long = "channel", required_unless_present = "file")]
    channels: Vec<String>,
    /// A tenant template to render with, instead of the shipped one.
    #[arg(long)]
    template: Option<String>,
    /// Send each event at once, or one digest per window.
    #[arg(long, value_enum, default_value_t = Digest::Instant)]
    digest: Digest,
    /// Save it disabled.
    #[arg(long)]
    disabled: bool,
}

impl RuleArgs {
    fn body(&self) -> Result<Value, ClientError> {
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path).map_err(|err| unreadable(path, err))?;
            let mut body: Value = serde_json::from_str(&text).map_err(|err| {
                ClientError::new(
                    super::http::ExitKind::Invalid,
                    format!("{} is not JSON: {err}", path.display()),
                )
            })?;
            if body.get("name").is_none() && body.is_object() {
                body["name"] = json!(self.name);
            }
            return Ok(body);
        }
        let mut matcher = json!({ "event_kinds": self.events });
        if let Some(s) = &self.min_severity {
            matcher["min_severity"] = json!(s);
        }
        for (key, list) in [
            ("dispositions", &self.dispositions),
            ("targets", &self.targets),
            ("vulnerabilities", &self.vulnerabilities),
            ("vex_status", &self.vex_status),
        ] {
            if !list.is_empty() {
                matcher[key] = json!(list);
            }
        }
        let actions: Vec<Value> = self
            .channels
            .iter()
            .map(|c| json!({ "channel": c, "template": self.template, "digest": self.digest.as_str() }))
            .collect();
        Ok(json!({
            "name": self.name,
            "enabled": !self.disabled,
            "match": matcher,
            "actions": actions,
        }))
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum TemplateAction {
    /// Create or replace a template from a file (refused with its line and column when
    /// it does not render).
    Set {
        /// The template's name (rules name it in `--template`).
        name: String,
        /// The channel type it renders for.
        #[arg(long = "type", value_enum)]
        kind: ChannelType,
        /// The template's source file.
        #[arg(long)]
        file: PathBuf,
    },
    /// The tenant's templates.
    List,
    /// Delete a template.
    Delete {
        /// The template's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeliveryAction {
    /// Deliveries, newest first.
    List {
        /// pending, held, digested, throttled, delivered, dead_lettered, cancelled.
        #[arg(long)]
        status: Option<String>,
        /// A channel's name.
        #[arg(long)]
        channel: Option<String>,
        /// A rule's name.
        #[arg(long)]
        rule: Option<String>,
        /// An event kind.
        #[arg(long)]
        event_kind: Option<String>,
        /// Created at or after (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One delivery with its receipts.
    Get {
        /// The delivery's id (`dlv_…`).
        id: String,
    },
    /// Send a delivery again (same id on the wire).
    Redeliver {
        /// The delivery's id (`dlv_…`).
        id: String,
    },
}

const CHANNEL_COLUMNS: &[&str] = &[
    "name",
    "channel_type",
    "has_secret",
    "signing_secret",
    "updated_at",
];
const RULE_COLUMNS: &[&str] = &["name", "enabled", "spec", "updated_at"];
const DELIVERY_COLUMNS: &[&str] = &[
    "id",
    "event_kind",
    "channel_type",
    "mode",
    "status",
    "created_at",
    "attempts",
];

fn type_name(kind: ChannelType) -> &'static str {
    match kind {
        ChannelType::Email => "email",
        ChannelType::Webhook => "webhook",
        ChannelType::Slack => "slack",
        ChannelType::Teams => "teams",
    }
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        match self {
            Self::Channels { action } => channels(client, action),
            Self::Rules { action } => rules(client, action),
            Self::Templates { action } => templates(client, action),
            Self::Deliveries { action } => deliveries(client, action),
        }
    }
}

fn channels(client: &Client, action: &ChannelAction) -> Result<(), ClientError> {
    let path = |name: &str| format!("/notify/channels/{}", seg(name));
    let value = match action {
        ChannelAction::Set {
            name,
            kind,
            url,
            to,
            secret,
            throttle_max,
            throttle_seconds,
            quiet_hours,
            timezone,
            quiet_mode,
        } => {
            let mut config = json!({ "type": type_name(*kind) });
            if let Some(url) = url {
                config["url"] = json!(url);
            }
            if *kind == ChannelType::Email {
                config["to"] = json!(to);
            }
            let mut body = json!({
                "config": config,
                "throttle": { "max": throttle_max, "per_seconds": throttle_seconds },
            });
            if let Some(hours) = quiet_hours {
                let (start, end) = hours.split_once('-').ok_or_else(|| {
                    ClientError::new(
                        super::http::ExitKind::Invalid,
                        format!("--quiet-hours {hours:?}: give HH:MM-HH:MM"),
                    )
                })?;
                body["quiet_hours"] = json!({
                    "start": start,
                    "end": end,
                    "timezone": timezone,
                    "mode": match quiet_mode { QuietMode::Hold => "hold", QuietMode::Digest => "digest" },
                });
            }
            if let Some(secret) = secret {
                body["secret"] = json!(secret);
            }
            body["name"] = json!(name);
            client.post("/notify/channels", &body)?
        }
        ChannelAction::List { page } => client.list("/notify/channels", page.query(), page.all)?,
        ChannelAction::Get { name } => client.get(&path(name), &[])?,
        ChannelAction::Delete { name } => {
            client.delete(&path(name))?;
            return Ok(());
        }
        ChannelAction::Test { name } => {
            let d = client.post_empty(&format!("{}/test", path(name)))?;
            client.print(&d, DELIVERY_COLUMNS);
            return Ok(());
        }
        ChannelAction::RotateSecret { name } => {
            let v = client.post_empty(&format!("{}/rotate-secret", path(name)))?;
            client.print(&v, &["signing_secret"]);
            return Ok(());
        }
    };
    client.print(&value, CHANNEL_COLUMNS);
    Ok(())
}

fn rules(client: &Client, action: &RuleAction) -> Result<(), ClientError> {
    let value = match action {
        RuleAction::Set(rule) => client.post("/notify/rules", &rule.body()?)?,
        RuleAction::Preview { rule, last } => {
            let v = client.post(
                &format!("/notify/rules/preview?limit={last}"),
                &rule.body()?,
            )?;
            client.print(&v, &["examined", "matched", "events"]);
            return Ok(());
        }
        RuleAction::List { page } => client.list("/notify/rules", page.query(), page.all)?,
        RuleAction::Get { name } => client.get(&format!("/notify/rules/{}", seg(name)), &[])?,
        RuleAction::Delete { name } => {
            client.delete(&format!("/notify/rules/{}", seg(name)))?;
            return Ok(());
        }
    };
    client.print(&value, RULE_COLUMNS);
    Ok(())
}

fn templates(client: &Client, action: &TemplateAction) -> Result<(), ClientError> {
    let value = match action {
        TemplateAction::Set { name, kind, file } => {
            let source = std::fs::read_to_string(file).map_err(|err| unreadable(file, err))?;
            client.post(
                "/notify/templates",
                &json!({ "name": name, "channel_type": type_name(*kind), "source": source }),
            )?
        }
        TemplateAction::List => client.get("/notify/templates", &[])?,
        TemplateAction::Delete { name } => {
            client.delete(&format!("/notify/templates/{}", seg(name)))?;
            return Ok(());
        }
    };
    client.print(&value, &["name", "channel_type", "updated_at"]);
    Ok(())
}

fn deliveries(client: &Client, action: &DeliveryAction) -> Result<(), ClientError> {
    let value = match action {
        DeliveryAction::List {
            status,
            channel,
            rule,
            event_kind,
            since,
            page,
        } => client.list(
            "/notify/deliveries",
            page.query_with(&[
                ("status", status.as_ref()),
                ("channel", channel.as_ref()),
                ("rule", rule.as_ref()),
                ("event_kind", event_kind.as_ref()),
                ("since", since.as_ref()),
            ]),
            page.all,
        )?,
        DeliveryAction::Get { id } => {
            client.get(&format!("/notify/deliveries/{}", seg(id)), &[])?
        }
        DeliveryAction::Redeliver { id } => {
            client.post_empty(&format!("/notify/deliveries/{}/redeliver", seg(id)))?
        }
    };
    client.print(&value, DELIVERY_COLUMNS);
    Ok(())
}
