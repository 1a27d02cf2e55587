//! Checks of the loaded settings that serde cannot make (ranges, URL schemes, keys that go
//! together); each error names the offending key and the source of its value.

use crate::database::is_postgres_url;
use crate::{redact_url, ConfigError, Loaded, SmtpMode};

pub(crate) fn validate(loaded: &Loaded) -> Result<(), ConfigError> {
    let s = &loaded.settings;
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: loaded.source_of(key),
        reason,
    };
    if s.data_dir.as_os_str().is_empty() {
        return Err(invalid("data_dir", "must not be empty".into()));
    }
    if !matches!(s.log_format.as_str(), "text" | "json") {
        return Err(invalid(
            "log_format",
            format!("expected `text` or `json`, got {:?}", s.log_format),
        ));
    }
    if let Some(endpoint) = &s.otlp_endpoint {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(invalid(
                "otlp_endpoint",
                format!("expected an http:// or https:// URL, got {endpoint:?}"),
            ));
        }
    }
    if let Some(url) = &s.database.url {
        let url = url.expose();
        if !is_postgres_url(url) && !url.starts_with("sqlite:") {
            return Err(invalid(
                "database.url",
                format!(
                    "expected a postgres:// or sqlite:// URL, got {:?}",
                    redact_url(url)
                ),
            ));
        }
    }
    if s.database.max_connections == 0 {
        return Err(invalid(
            "database.max_connections",
            "must be at least 1".into(),
        ));
    }
    if let Some(url) = &s.valkey.url {
        let valid = |url: &str| {
            url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("valkey://")
                || url.starts_with("valkeys://")
        };
        let url = url.expose();
        if !url.split(',').map(str::trim).all(valid) {
            return Err(invalid(
                "valkey.url",
                format!(
                    "expected a redis:// or valkey:// URL, got {:?}",
                    redact_url(url)
                ),
            ));
        }
    }
    if s.valkey.pool_size == 0 {
        return Err(invalid("valkey.pool_size", "must be at least 1".into()));
    }
    if s.valkey.key_prefix.is_empty()
        || s.valkey
            .key_prefix
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '{' | '}' | '*' | '?' | '[' | ']'))
    {
        return Err(invalid(
            "valkey.key_prefix",
            format!(
                "must be non-empty without spaces, braces (hash tags) or glob characters, got {:?}",
                s.valkey.key_prefix
            ),
        ));
    }
    if s.valkey.wait_replicas > 16 {
        return Err(invalid(
            "valkey.wait_replicas",
            format!("must be at most 16, got {}", s.valkey.wait_replicas),
        ));
    }
    let o = &s.outbound;
    for (key, value, max) in [
        ("outbound.connect_timeout_secs", o.connect_timeout_secs, 300),
        ("outbound.timeout_secs", o.timeout_secs, 3_600),
    ] {
        if !(1..=max).contains(&value) {
            return Err(invalid(key, format!("must be 1 to {max} seconds")));
        }
    }
    if o.max_bytes == 0 {
        return Err(invalid("outbound.max_bytes", "must be at least 1".into()));
    }
    if o.max_redirects > 20 {
        return Err(invalid("outbound.max_redirects", "must be 0 to 20".into()));
    }
    let n = &s.notify;
    if !(1..=300).contains(&n.webhook_timeout_secs) {
        return Err(invalid(
            "notify.webhook_timeout_secs",
            "must be 1 to 300 seconds".into(),
        ));
    }
    let smtp = &n.smtp;
    if smtp.host.trim().is_empty() {
        return Err(invalid("notify.smtp.host", "must not be empty".into()));
    }
    if smtp.port == 0 {
        return Err(invalid("notify.smtp.port", "must be 1 to 65535".into()));
    }
    if !(1..=600).contains(&smtp.timeout_secs) {
        return Err(invalid(
            "notify.smtp.timeout_secs",
            "must be 1 to 600 seconds".into(),
        ));
    }
    match smtp.from.rsplit_once('@') {
        Some((local, domain)) if !local.trim().is_empty() && !domain.trim().is_empty() => {}
        _ => {
            return Err(invalid(
                "notify.smtp.from",
                format!(
                    "expected an address such as `Stella <stella@example.com>`, got {:?}",
                    smtp.from
                ),
            ))
        }
    }
    if smtp.password.is_some() && smtp.username.is_none() {
        return Err(invalid(
            "notify.smtp.username",
            "must be set when notify.smtp.password is".into(),
        ));
    }
    if smtp.username.is_some() && smtp.mode == SmtpMode::Plain && !smtp.is_local() {
        return Err(invalid(
            "notify.smtp.mode",
            "is `plain` with credentials for a relay on another host, which would send \
             the password unencrypted: use `starttls` or `tls`"
                .into(),
        ));
    }
    if smtp.ca_file.is_some() && smtp.mode == SmtpMode::Plain {
        return Err(invalid(
            "notify.smtp.ca_file",
            "is set but notify.smtp.mode is `plain`, which uses no TLS: use `starttls` or \
             `tls`"
                .into(),
        ));
    }
    if let Some(endpoint) = &s.s3.endpoint {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(invalid(
                "s3.endpoint",
                format!("expected an http:// or https:// URL, got {endpoint:?}"),
            ));
        }
        if s.s3.bucket.is_empty() {
            return Err(invalid(
                "s3.bucket",
                "must be set when s3.endpoint is".into(),
            ));
        }
        if s.s3.access_key_id.as_deref().unwrap_or("").is_empty() {
            return Err(invalid(
                "s3.access_key_id",
                "must be set when s3.endpoint is".into(),
            ));
        }
        if s.s3
            .secret_access_key
            .as_ref()
            .is_none_or(|secret| secret.expose().is_empty())
        {
            return Err(invalid(
                "s3.secret_access_key",
                "must be set when s3.endpoint is".into(),
            ));
        }
    }
    let r = &s.runtime;
    for (key, value) in [
        ("runtime.batch_size", u64::from(r.batch_size)),
        ("runtime.concurrency", u64::from(r.concurrency)),
        (
            "runtime.tenant_concurrency",
            u64::from(r.tenant_concurrency),
        ),
        ("runtime.min_idle_ms", r.min_idle_ms),
        ("runtime.max_deliveries", u64::from(r.max_deliveries)),
        ("runtime.max_attempts", u64::from(r.max_attempts)),
        ("runtime.poll_interval_ms", r.poll_interval_ms),
        ("api.body_read_timeout_secs", s.api.body_read_timeout_secs),
    ] {
        if value == 0 {
            return Err(invalid(key, "must be at least 1".into()));
        }
    }
    if r.lease_secs < 6 {
        // Renewed every 5 s: a shorter lease would lapse between two renewals.
        return Err(invalid(
            "runtime.lease_secs",
            "must be at least 6 (the lease is renewed every 5 s)".into(),
        ));
    }
    let sch = &s.scheduler;
    for (key, value) in [
        ("scheduler.lease_ttl_secs", sch.lease_ttl_secs),
        ("scheduler.poll_interval_ms", sch.poll_interval_ms),
        ("scheduler.clock_speed", sch.clock_speed),
    ] {
        if value == 0 {
            return Err(invalid(key, "must be at least 1".into()));
        }
    }
    if sch.default_jitter_secs > 3600 {
        return Err(invalid(
            "scheduler.default_jitter_secs",
            "must be at most 3600".into(),
        ));
    }
    if let Some(origin) = &sch.clock_origin {
        if chrono::DateTime::parse_from_rfc3339(origin).is_err() {
            return Err(invalid(
                "scheduler.clock_origin",
                format!("expected an RFC 3339 time such as 2026-01-01T00:00:00Z, got {origin:?}"),
            ));
        }
    }
    if r.retry_max_delay_ms < r.retry_min_delay_ms {
        return Err(invalid(
            "runtime.retry_max_delay_ms",
            "must not be below runtime.retry_min_delay_ms".into(),
        ));
    }
    if s.s3.part_size_bytes < 5 * 1024 * 1024 {
        return Err(invalid(
            "s3.part_size_bytes",
            "must be at least 5 MiB (5242880), the S3 minimum part size".into(),
        ));
    }
    if let Err((key, reason)) = crate::export::validate(s) {
        return Err(ConfigError::Invalid {
            origin: loaded.source_of(&key),
            key,
            reason,
        });
    }
    if s.s3.prefix.starts_with('/') || s.s3.prefix.split('/').any(|part| part == "..") {
        return Err(invalid(
            "s3.prefix",
            "must be a relative key prefix without `..`".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::load;
    use crate::testing::env;

    #[test]
    fn s3_endpoint_without_credentials_is_rejected() {
        let err = load(
            None,
            &env(&[("STELLA_S3_ENDPOINT", "http://127.0.0.1:3900")]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid value for `s3.access_key_id` from default: must be set when s3.endpoint is"
        );
    }

    #[test]
    fn wrong_database_scheme_is_rejected_without_leaking_the_password() {
        let err = load(
            None,
            &env(&[("STELLA_DATABASE_URL", "mysql://root:hunter2@db/x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("database.url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
