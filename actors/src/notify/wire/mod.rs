//! How a notification leaves the process, and nothing about which one or why: the
//! notifier's rules, templates and signatures are pure functions in
//! `stella_domain::notify`; the delivery job decides when to try again. This module takes a
//! rendered message and puts it on the wire once, saying what happened in terms the
//! delivery job can act on ([`WireOutcome`]) and record (the receipt's status, latency,
//! error and first bytes of the answer).
//!
//! Layout:
//! - [`http`]: webhook, Slack and Teams POSTs through the outbound guard
//!   ([`crate::outbound::Outbound::post`]), judged into a [`WireOutcome`];
//! - [`smtp`]: email through `lettre` ([`Mailer`], [`Mail`]), multipart text + HTML with a
//!   Message-ID stable across a delivery's attempts;
//! - [`secrets`]: [`SecretBox`], channel secrets sealed at rest with a key from settings.
//!
//! Idempotency on the wire: every attempt of one logical delivery carries the same
//! identifier (`webhook-id`, `Message-ID`), chosen by the caller from the delivery, so a
//! receiver can drop an attempt it already has; nothing here generates one per attempt.

pub mod http;
pub mod secrets;
pub mod smtp;

use std::time::Duration;

pub use http::{deliver, judge, HttpAttempt};
pub use secrets::{SecretBox, SecretError};
pub use smtp::{message_id_for, Mail, MailError, Mailer, SmtpReceipt};

/// What one wire attempt means for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireOutcome {
    /// The receiver took it (HTTP 2xx, SMTP 250).
    Delivered,
    /// Worth another attempt, after `after` when the receiver said (`Retry-After`), else
    /// after the delivery's own back-off.
    Retry { after: Option<Duration> },
    /// Trying again gives the same answer: a 4xx other than 429, an SMTP 5xx, a refused or
    /// forbidden destination, a bad address.
    Failed,
}
