//! Channels: where messages go, how many per window, and when not to send them.
//!
//! ```json
//! {"name": "sec-mail", "config": {"type": "email", "to": ["sec@example.com"]},
//!  "throttle": {"max": 10, "per_seconds": 60},
//!  "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin", "mode": "hold"}}
//! ```
//!
//! Secrets (a webhook's signing secrets, SMTP credentials) are not part of the spec: they
//! are written once through the API and stored apart, encrypted. A Slack or Teams webhook
//! URL carries its own token in the path; the spec holds it as given, and whoever shows a
//! channel shows [`ChannelConfig::redacted`].

use chrono::NaiveTime;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::rule::check_name;
use super::{typed, SpecError};

/// At most this many recipients per email channel.
pub const MAX_RECIPIENTS: usize = 50;

/// A channel as a tenant writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelSpec {
    pub name: String,
    pub config: ChannelConfig,
    pub throttle: Throttle,
    pub quiet_hours: Option<QuietHours>,
}

/// The destination, by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ChannelConfig {
    /// Addresses (`local@domain`), checked and kept in the order given without duplicates.
    Email { to: Vec<String> },
    /// A JSON POST signed per Standard Webhooks.
    Webhook { url: String },
    /// A Slack incoming webhook (Block Kit).
    Slack { url: String },
    /// A Microsoft Teams Workflows webhook (Adaptive Card).
    Teams { url: String },
}

/// The channel types, for templates and payload builders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    Email,
    Webhook,
    Slack,
    Teams,
}

impl ChannelType {
    pub const ALL: [ChannelType; 4] = [
        ChannelType::Email,
        ChannelType::Webhook,
        ChannelType::Slack,
        ChannelType::Teams,
    ];

    /// The lowercase name (`email`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Email => "email",
            ChannelType::Webhook => "webhook",
            ChannelType::Slack => "slack",
            ChannelType::Teams => "teams",
        }
    }
}

impl ChannelConfig {
    pub fn channel_type(&self) -> ChannelType {
        match self {
            ChannelConfig::Email { .. } => ChannelType::Email,
            ChannelConfig::Webhook { .. } => ChannelType::Webhook,
            ChannelConfig::Slack { .. } => ChannelType::Slack,
            ChannelConfig::Teams { .. } => ChannelType::Teams,
        }
    }

    /// The URL of a webhook, Slack or Teams channel.
    pub fn url(&self) -> Option<&str> {
        match self {
            ChannelConfig::Email { .. } => None,
            ChannelConfig::Webhook { url }
            | ChannelConfig::Slack { url }
            | ChannelConfig::Teams { url } => Some(url),
        }
    }

    /// The config as it may be shown: Slack and Teams URLs carry a token in their path and
    /// query, so only the scheme and host are kept (`https://hooks.slack.com/…`).
    pub fn redacted(&self) -> ChannelConfig {
        let hide = |url: &str| match url::Url::parse(url) {
            Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")),
            Err(_) => "…".to_owned(),
        };
        match self {
            ChannelConfig::Slack { url } => ChannelConfig::Slack { url: hide(url) },
            ChannelConfig::Teams { url } => ChannelConfig::Teams { url: hide(url) },
            other => other.clone(),
        }
    }
}

/// At most `max` messages per aligned window of `per_seconds`; the rest wait for the next
/// digest (never dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    pub max: u32,
    pub per_seconds: u32,
}

impl Default for Throttle {
    /// 10 per 60 seconds (DESIGN.md, after StellaOps Notify).
    fn default() -> Throttle {
        Throttle {
            max: 10,
            per_seconds: 60,
        }
    }
}

/// Hours in the channel's timezone during which nothing is sent; `start` to `end` may
/// wrap midnight (`22:00`–`07:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    #[serde(serialize_with = "ser_time", deserialize_with = "de_time")]
    pub start: NaiveTime,
    #[serde(serialize_with = "ser_time", deserialize_with = "de_time")]
    pub end: NaiveTime,
    /// An IANA zone name (`Europe/Berlin`).
    #[serde(serialize_with = "ser_tz", deserialize_with = "de_tz")]
    pub timezone: chrono_tz::Tz,
    pub mode: QuietMode,
}

/// What happens to messages that fall in quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuietMode {
    /// Each is held and sent, as it was, when the quiet hours end.
    Hold,
    /// They are summarised in one digest sent when the quiet hours end.
    Digest,
}

fn ser_time<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.format("%H:%M").to_string())
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
    let s = String::deserialize(d)?;
    NaiveTime::parse_from_str(&s, "%H:%M")
        .map_err(|_| serde::de::Error::custom(format!("expected a time as HH:MM, got {s:?}")))
}

fn ser_tz<S: Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

fn de_tz<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<chrono_tz::Tz>().map_err(|_| {
        serde::de::Error::custom(format!(
            "unknown timezone {s:?}: expected an IANA name like Europe/Berlin"
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: String,
    config: Value,
    #[serde(default)]
    throttle: Option<Throttle>,
    #[serde(default)]
    quiet_hours: Option<QuietHours>,
}

impl ChannelSpec {
    /// Reads and checks a channel; the error names the JSON pointer of the first fault (an
    /// unknown type is refused at `/config/type`).
    pub fn parse(json: &Value) -> Result<ChannelSpec, SpecError> {
        let raw: RawChannel = typed(json)?;
        check_name(&raw.name, "/name")?;
        let config = parse_config(&raw.config)?;
        let throttle = raw.throttle.unwrap_or_default();
        if throttle.max == 0 {
            return Err(SpecError::new(
                "/throttle/max",
                "a throttle lets at least one message through per window",
            ));
        }
        if !(1..=86_400).contains(&throttle.per_seconds) {
            return Err(SpecError::new(
                "/throttle/per_seconds",
                "a throttle window is 1 to 86400 seconds",
            ));
        }
        if let Some(q) = &raw.quiet_hours {
            if q.start == q.end {
                return Err(SpecError::new(
                    "/quiet_hours/end",
                    "quiet hours that start when they end are empty",
                ));
            }
        }
        Ok(ChannelSpec {
            name: raw.name,
            config,
            throttle,
            quiet_hours: raw.quiet_hours,
        })
    }
}

fn parse_config(json: &Value) -> Result<ChannelConfig, SpecError> {
    let Some(object) = json.as_object() else {
        return Err(SpecError::new("/config", "expected an object"));
    };
    let kind = match object.get("type") {
        None => return Err(SpecError::new("/config/type", "a channel needs a type")),
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(SpecError::new("/config/type", "expected a string")),
    };
    if !["email", "webhook", "slack", "teams"].contains(&kind) {
        return Err(SpecError::new(
            "/config/type",
            format!("unknown channel type {kind:?}: expected email, webhook, slack or teams"),
        ));
    }
    let mut config: ChannelConfig = typed(json).map_err(|e| SpecError {
        pointer: format!("/config{}", e.pointer),
        message: e.message,
    })?;
    match &mut config {
        ChannelConfig::Email { to } => {
            if to.is_empty() {
                return Err(SpecError::new(
                    "/config/to",
                    "an email channel needs at least one address",
                ));
            }
            if to.len() > MAX_RECIPIENTS {
                return Err(SpecError::new(
                    "/config/to",
                    format!("an email channel has at most {MAX_RECIPIENTS} addresses"),
                ));
            }
            for (i, address) in to.iter().enumerate() {
                check_address(address).map_err(|m| SpecError::new(format!("/config/to/{i}"), m))?;
            }
            let mut kept = Vec::new();
            for address in to.drain(..) {
                if !kept
                    .iter()
                    .any(|k: &String| k.eq_ignore_ascii_case(&address))
                {
                    kept.push(address);
                }
            }
            *to = kept;
        }
        ChannelConfig::Webhook { url }
        | ChannelConfig::Slack { url }
        | ChannelConfig::Teams { url } => {
            check_url(url).map_err(|m| SpecError::new("/config/url", m))?;
        }
    }
    Ok(config)
}

/// A destination URL: absolute `http` or `https` with a host, no user or password in it
/// (credentials are secrets, stored apart), at most 2048 bytes. Whether the host may be
/// reached is the sender's guard, checked when it resolves.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > 2048 {
        return Err("a URL has at most 2048 bytes".into());
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "unsupported scheme {:?}: expected http or https",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("a URL needs a host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a URL cannot carry a user or password; credentials are set as secrets".into());
    }
    Ok(())
}

/// An email address as RFC 5321 lets it be sent: a dot-atom local part (at most 64
/// bytes), `@`, a domain of LDH labels with at least one dot (or an IDN in UTF-8), at most
/// 254 bytes in all. Quoted local parts, comments, display names and IP literals are
/// refused: a notification address has no need for them, and each is a way to smuggle a
/// second recipient or a header.
pub fn check_address(address: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid email address {address:?}: {why}"));
    if address.len() > 254 {
        return bad("longer than 254 bytes");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return bad("no @");
    };
    if local.is_empty() || local.len() > 64 {
        return bad("the part before @ has 1 to 64 characters");
    }
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~".contains(c)
            || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
    };
    if local
        .split('.')
        .any(|part| part.is_empty() || !part.chars().all(atext))
    {
        return bad("the part before @ has a character or dot that needs quoting");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return bad("the domain needs a dot");
    }
    for label in labels {
        let ok_char = |c: char| {
            c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
        };
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(ok_char)
        {
            return bad("the domain is not a host name");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses() {
        for ok in [
            "a@example.com",
            "first.last+tag@sub.example.org",
            "ü@bücher.de",
        ] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "a@localhost",
            "a@@example.com",
            ".a@example.com",
            "a..b@example.com",
            "a b@example.com",
            "a@example.com\r\nBcc: x@y.z",
            "\"q\"@example.com",
            "a@-x.com",
            "a@[127.0.0.1]",
            "Name <a@example.com>",
            "a@example.com,b@example.com",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls() {
        assert!(check_url("https://hooks.slack.com/services/T/B/X").is_ok());
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("https://user:pw@example.com/").is_err());
        assert!(check_url("/relative").is_err());
    }

    #[test]
    fn defaults_and_redaction() {
        let c = ChannelSpec::parse(&json!({
            "name": "s", "config": {"type": "slack", "url": "https://hooks.slack.com/services/T0/B0/secret"}
        }))
        .unwrap();
        assert_eq!(
            c.throttle,
            Throttle {
                max: 10,
                per_seconds: 60
            }
        );
        assert_eq!(c.quiet_hours, None);
        assert_eq!(
            c.config.redacted(),
            ChannelConfig::Slack {
                url: "https://hooks.slack.com/…".into()
            }
        );
        let e = ChannelSpec::parse(&json!({
            "name": "m", "config": {"type": "email", "to": ["A@x.org", "a@x.org", "b@x.org"]}
        }))
        .unwrap();
        assert_eq!(
            e.config,
            ChannelConfig::Email {
                to: vec!["A@x.org".into(), "b@x.org".into()]
            }
        );
    }
}
