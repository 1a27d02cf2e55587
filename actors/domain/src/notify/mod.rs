//! The notifier's pure part: which events a rule wants, what a channel is, when to send
//! (digest windows, throttles, quiet hours, `Retry-After`), what to say (templates and the
//! summary they read) and in which form (Standard Webhooks signatures, Slack Block Kit,
//! Teams Adaptive Cards). No I/O and no clock: times are arguments.
//!
//! Not here: storing rules, channels, secrets and deliveries, sending anything (HTTP, SMTP,
//! the destination guard), scheduling retries; those are the `notify` job kind's.
//!
//! Layout:
//! - [`event`]: the versioned [`Envelope`] of every platform event, its id, and the payload
//!   conventions the matcher reads;
//! - [`rule`]: [`RuleSpec`] parsed with JSON pointers to faults, and [`RuleMatch::matches`];
//! - [`channel`]: [`ChannelSpec`] (email, webhook, Slack, Teams), throttles, quiet hours;
//! - [`window`]: digest and throttle windows, quiet hours across midnight and DST,
//!   [`retry_after`];
//! - [`summary`]: the headline, details and facts a person reads;
//! - [`template`]: the shipped templates and tenants' ones, checked and rendered in a
//!   MiniJinja sandbox;
//! - [`webhook`]: webhook bodies (canonical JSON) and their Standard Webhooks signatures;
//! - [`slack`], [`teams`]: the Slack and Teams payloads.

pub mod channel;
pub mod event;
pub mod rule;
pub mod slack;
pub mod summary;
pub mod teams;
pub mod template;
pub mod webhook;
pub mod window;

pub use channel::{ChannelConfig, ChannelSpec, ChannelType, QuietHours, QuietMode, Throttle};
pub use event::{delivery_id, event_id, Envelope, Severity, ENVELOPE_VERSION, EVENT_KINDS};
pub use rule::{Action, DigestWindow, RuleMatch, RuleSpec};
pub use slack::slack_payload;
pub use summary::Summary;
pub use teams::teams_payload;
pub use template::{
    check_template, default_template, render, render_digest, Rendered, TemplateError,
};
pub use webhook::{digest_envelope, new_secret, webhook_body, WebhookSecret};
pub use window::retry_after;

/// A rejected rule or channel: the JSON pointer of the fault and what is wrong, the same
/// shape as every other rejected document.
pub type SpecError = crate::error::InputError;

/// Deserializes `T` from a JSON value, reporting the first fault with its JSON pointer
/// (an unknown field is pointed at itself).
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    json: &serde_json::Value,
) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(json).map_err(|e| {
        let mut pointer = crate::osv::json_pointer(&e.path().to_string());
        let message = e.inner().to_string();
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            if !pointer.ends_with(&format!("/{}", crate::error::pointer_token(field))) {
                pointer.push('/');
                pointer.push_str(&crate::error::pointer_token(field));
            }
        }
        SpecError::new(pointer, message)
    })
}
