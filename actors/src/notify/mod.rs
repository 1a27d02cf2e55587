//! The `notify` job kind: platform events in, messages out, once per (event, rule,
//! channel) in effect.
//!
//! - [`dispatch`]: the scheduler's leader reads the events stream, matches each tenant's
//!   rules, and makes one delivery per (event, rule, channel) behind a unique dedupe key
//!   (`sha256(event id, rule id, channel id)`): an instant delivery with its own `notify`
//!   job (idempotency key = the dedupe key), a digested one as an item of its rule's
//!   digest group. It also gives every digest group with waiting items its digest job.
//! - The job's steps, run by the notifier role ([`deliver`]): `route` holds a delivery
//!   through its channel's quiet hours, or folds it into a digest when the channel's
//!   throttle window is full, and otherwise sends it at once; `send` (a step of its own
//!   only after quiet hours) renders the template and sends it, recording a receipt per
//!   wire attempt; a digest job's `route` waits for its due time and
//!   `compose` sends one message for every item it claimed (nothing for none).
//! - Wire retries of one delivery carry the same `webhook-id` / `Message-ID` (the
//!   delivery id), so a receiver drops a duplicate attempt; `429`/`503` honour
//!   `Retry-After`, other `4xx` fail at once, the rest back off (2 s, ×2, ≤ 5 min, 5
//!   attempts), and then the delivery is dead-lettered and can be redelivered.
//! - [`manage`]: the use cases the API calls (channels with sealed secrets, rules,
//!   templates, preview, test, redeliver).

mod deliver;
pub mod dispatch;
pub mod manage;
mod metrics;
pub mod wire;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_store::repo::{Effect, Job};
use stella_supervisor::{Kind, Step, StepContext, StepError, StepOutcome, Submitters};

pub use metrics::NotifyMetrics;

use crate::outbound::Outbound;
use crate::roles::Role;

/// What the notifier's steps need besides the store.
#[derive(Debug, Clone)]
pub struct NotifyDeps {
    /// The guard every webhook, Slack and Teams URL goes through.
    pub outbound: Outbound,
    /// SMTP, or why the SMTP settings are unusable (an unreadable `notify.smtp.ca_file`,
    /// say): email deliveries then fail visibly with that reason in their receipt, and
    /// the log said it at startup.
    pub mailer: Result<wire::Mailer, wire::MailError>,
    /// Opens the channels' sealed secrets.
    pub secrets: wire::SecretBox,
    /// How long one webhook, Slack or Teams POST may take (`notify.webhook_timeout_secs`).
    pub timeout: std::time::Duration,
    pub metrics: NotifyMetrics,
}

impl NotifyDeps {
    /// The notifier's parts, given: a guard, a secrets box and an SMTP relay.
    pub fn new(
        outbound: Outbound,
        secrets: wire::SecretBox,
        smtp: &stella_config::SmtpSettings,
    ) -> Self {
        Self {
            outbound,
            mailer: wire::Mailer::new(smtp),
            secrets,
            timeout: std::time::Duration::from_secs(10),
            metrics: NotifyMetrics::new(),
        }
    }

    /// The notifier's parts from settings: the secrets key (generated in the data dir on
    /// the embedded default), the SMTP client, the guard.
    pub fn from_settings(
        settings: &stella_config::Settings,
        outbound: Outbound,
    ) -> Result<Self, wire::SecretError> {
        let secrets = wire::SecretBox::from_settings(&settings.notify, &settings.data_dir)?;
        let mailer = wire::Mailer::new(&settings.notify.smtp);
        if let Err(err) = &mailer {
            tracing::error!(error = %err, "notify.smtp is unusable; email deliveries will fail");
        }
        Ok(Self {
            outbound,
            mailer,
            secrets,
            timeout: std::time::Duration::from_secs(settings.notify.webhook_timeout_secs),
            metrics: NotifyMetrics::new(),
        })
    }
}

/// A notify job's parameters: one delivery, or one generation of a digest group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum NotifyParams {
    Delivery {
        delivery_id: String,
        channel_id: String,
        #[serde(default)]
        rule_id: Option<String>,
        #[serde(default)]
        template: Option<String>,
        /// The event's envelope.
        event: Value,
        /// A test or a redelivery an operator asked for: no quiet hours, no throttle.
        #[serde(default)]
        immediate: bool,
    },
    Digest {
        group_key: String,
        generation: i64,
        channel_id: String,
        #[serde(default)]
        rule_id: Option<String>,
        #[serde(default)]
        template: Option<String>,
        /// Not composed before.
        due_at: DateTime<Utc>,
    },
}

/// The `notify` job kind.
#[derive(Debug, Clone)]
pub struct Notify {
    deps: NotifyDeps,
}

impl Notify {
    pub fn new(deps: NotifyDeps) -> Self {
        Self { deps }
    }
}

/// The notifier's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyStep {
    /// Quiet hours, throttles; a digest waits for its due time.
    Route,
    /// Render and send one delivery.
    Send,
    /// Claim a digest's items and send one message for them.
    Compose,
}

impl Step for NotifyStep {
    const ALL: &'static [Self] = &[NotifyStep::Route, NotifyStep::Send, NotifyStep::Compose];

    fn name(self) -> &'static str {
        match self {
            NotifyStep::Route => "route",
            NotifyStep::Send => "send",
            NotifyStep::Compose => "compose",
        }
    }

    fn role(self) -> stella_store::mailbox::Role {
        Role::Notifier.mailbox()
    }
}

#[async_trait]
impl Kind for Notify {
    const NAME: &'static str = "notify";
    // Made by the dispatcher and the API's test and redeliver routes.
    const SUBMITTERS: Submitters = Submitters::Internal;
    type Params = NotifyParams;
    type Step = NotifyStep;

    async fn run(
        &self,
        step: NotifyStep,
        params: &NotifyParams,
        ctx: &mut StepContext<'_>,
    ) -> Result<StepOutcome<NotifyStep>, StepError> {
        match (step, params) {
            (NotifyStep::Route, NotifyParams::Digest { due_at, .. }) => Ok(if *due_at > ctx.now {
                StepOutcome::Later(NotifyStep::Compose, *due_at)
            } else {
                StepOutcome::Next(NotifyStep::Compose)
            }),
            (NotifyStep::Route, NotifyParams::Delivery { .. }) => {
                deliver::route(&self.deps, params, ctx).await
            }
            (NotifyStep::Send, NotifyParams::Delivery { .. }) => {
                deliver::send(&self.deps, params, ctx).await
            }
            (NotifyStep::Compose, NotifyParams::Digest { .. }) => {
                deliver::compose(&self.deps, params, ctx).await
            }
            (step, _) => Err(StepError::abort(format!(
                "step {:?} does not apply to these parameters",
                step.name()
            ))),
        }
    }

    /// Counted; the delivery shows `dead_lettered` (read from this job's state).
    fn failed(&self, _job: &Job, _error: &str) -> Vec<Effect> {
        self.deps.metrics.dead_lettered.inc();
        Vec::new()
    }
}
