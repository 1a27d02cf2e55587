//! The table of every setting: its dotted key, its `STELLA_` environment name, its type and
//! how `config show` prints it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
    /// A list of strings (comma-separated in an environment variable).
    List,
}

impl KeyDef {
    /// Whether the concrete dotted `key` is this setting (a `*` segment matches any one).
    pub fn matches(&self, key: &str) -> bool {
        let mut have = key.split('.');
        let mut want = self.key.split('.');
        loop {
            match (have.next(), want.next()) {
                (None, None) => return true,
                (Some(h), Some(w)) if w == "*" || w == h => {}
                _ => return false,
            }
        }
    }

    /// Whether the key names any member of a table of tables (has a `*` segment).
    pub fn is_pattern(&self) -> bool {
        self.key.split('.').any(|part| part == "*")
    }
}

/// One setting: its dotted key, its environment name, its type, and how to show it.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    /// The dotted key; a `*` segment stands for any name (the operator's names of a table
    /// of tables, such as `export.destinations.<name>`).
    pub key: &'static str,
    /// The environment variable; empty for keys set in the config file only (those with
    /// a `*` segment).
    pub env: &'static str,
    pub kind: Kind,
    pub show: Show,
}

/// How `config show` prints a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Plain,
    /// Never printed.
    Secret,
    /// A URL printed with its password replaced.
    Url,
}

macro_rules! key {
    ($key:literal, $env:literal, $kind:ident) => {
        key!($key, $env, $kind, Plain)
    };
    ($key:literal, $env:literal, $kind:ident, $show:ident) => {
        KeyDef {
            key: $key,
            env: $env,
            kind: Kind::$kind,
            show: Show::$show,
        }
    };
}

/// Every setting Stella knows. A key missing here cannot be set from the environment and
/// is rejected in a file.
pub const KEYS: &[KeyDef] = &[
    key!("data_dir", "STELLA_DATA_DIR", Str),
    key!("listen", "STELLA_LISTEN", Str),
    key!("bootstrap_token", "STELLA_BOOTSTRAP_TOKEN", Str, Secret),
    key!("log", "STELLA_LOG", Str),
    key!("log_format", "STELLA_LOG_FORMAT", Str),
    key!("otlp_endpoint", "STELLA_OTLP_ENDPOINT", Str),
    key!("metrics_listen", "STELLA_METRICS_LISTEN", Str),
    key!("signing_key_file", "STELLA_SIGNING_KEY_FILE", Str),
    key!("database.url", "STELLA_DATABASE_URL", Str, Url),
    key!(
        "database.max_connections",
        "STELLA_DATABASE_MAX_CONNECTIONS",
        Int
    ),
    key!(
        "database.connect_timeout_secs",
        "STELLA_DATABASE_CONNECT_TIMEOUT_SECS",
        Int
    ),
    key!("valkey.url", "STELLA_VALKEY_URL", Str, Url),
    key!("valkey.key_prefix", "STELLA_VALKEY_KEY_PREFIX", Str),
    key!("valkey.pool_size", "STELLA_VALKEY_POOL_SIZE", Int),
    key!("valkey.cluster", "STELLA_VALKEY_CLUSTER", Bool),
    key!("valkey.wait_replicas", "STELLA_VALKEY_WAIT_REPLICAS", Int),
    key!("s3.endpoint", "STELLA_S3_ENDPOINT", Str),
    key!("s3.bucket", "STELLA_S3_BUCKET", Str),
    key!("s3.region", "STELLA_S3_REGION", Str),
    key!("s3.access_key_id", "STELLA_S3_ACCESS_KEY_ID", Str),
    key!(
        "s3.secret_access_key",
        "STELLA_S3_SECRET_ACCESS_KEY",
        Str,
        Secret
    ),
    key!("s3.prefix", "STELLA_S3_PREFIX", Str),
    key!("s3.part_size_bytes", "STELLA_S3_PART_SIZE_BYTES", Int),
    key!("api.max_body_bytes", "STELLA_API_MAX_BODY_BYTES", Int),
    key!(
        "api.max_sbom_components",
        "STELLA_API_MAX_SBOM_COMPONENTS",
        Int
    ),
    key!("api.max_image_bytes", "STELLA_API_MAX_IMAGE_BYTES", Int),
    key!(
        "api.max_concurrent_image_uploads",
        "STELLA_API_MAX_CONCURRENT_IMAGE_UPLOADS",
        Int
    ),
    key!(
        "api.shutdown_timeout_secs",
        "STELLA_API_SHUTDOWN_TIMEOUT_SECS",
        Int
    ),
    key!(
        "api.rate_limit_per_second",
        "STELLA_API_RATE_LIMIT_PER_SECOND",
        Int
    ),
    key!("api.rate_limit_burst", "STELLA_API_RATE_LIMIT_BURST", Int),
    key!(
        "api.body_read_timeout_secs",
        "STELLA_API_BODY_READ_TIMEOUT_SECS",
        Int
    ),
    key!(
        "api.auth_failures_per_minute",
        "STELLA_API_AUTH_FAILURES_PER_MINUTE",
        Int
    ),
    key!(
        "api.auth_failure_burst",
        "STELLA_API_AUTH_FAILURE_BURST",
        Int
    ),
    key!("api.tenant_noop_jobs", "STELLA_API_TENANT_NOOP_JOBS", Bool),
    key!(
        "api.stream_heartbeat_secs",
        "STELLA_API_STREAM_HEARTBEAT_SECS",
        Int
    ),
    key!(
        "api.max_streams_per_tenant",
        "STELLA_API_MAX_STREAMS_PER_TENANT",
        Int
    ),
    key!(
        "api.max_export_runs_per_tenant",
        "STELLA_API_MAX_EXPORT_RUNS_PER_TENANT",
        Int
    ),
    key!("runtime.batch_size", "STELLA_RUNTIME_BATCH_SIZE", Int),
    key!("runtime.concurrency", "STELLA_RUNTIME_CONCURRENCY", Int),
    key!(
        "runtime.tenant_concurrency",
        "STELLA_RUNTIME_TENANT_CONCURRENCY",
        Int
    ),
    key!("runtime.min_idle_ms", "STELLA_RUNTIME_MIN_IDLE_MS", Int),
    key!(
        "runtime.max_deliveries",
        "STELLA_RUNTIME_MAX_DELIVERIES",
        Int
    ),
    key!("runtime.max_attempts", "STELLA_RUNTIME_MAX_ATTEMPTS", Int),
    key!(
        "runtime.retry_min_delay_ms",
        "STELLA_RUNTIME_RETRY_MIN_DELAY_MS",
        Int
    ),
    key!(
        "runtime.retry_max_delay_ms",
        "STELLA_RUNTIME_RETRY_MAX_DELAY_MS",
        Int
    ),
    key!(
        "runtime.tenant_idle_secs",
        "STELLA_RUNTIME_TENANT_IDLE_SECS",
        Int
    ),
    key!("runtime.restart_max", "STELLA_RUNTIME_RESTART_MAX", Int),
    key!(
        "runtime.restart_within_secs",
        "STELLA_RUNTIME_RESTART_WITHIN_SECS",
        Int
    ),
    key!(
        "runtime.quarantine_secs",
        "STELLA_RUNTIME_QUARANTINE_SECS",
        Int
    ),
    key!(
        "runtime.poll_interval_ms",
        "STELLA_RUNTIME_POLL_INTERVAL_MS",
        Int
    ),
    key!(
        "runtime.shutdown_timeout_secs",
        "STELLA_RUNTIME_SHUTDOWN_TIMEOUT_SECS",
        Int
    ),
    key!("runtime.lease_secs", "STELLA_RUNTIME_LEASE_SECS", Int),
    key!("runtime.consumer_name", "STELLA_RUNTIME_CONSUMER_NAME", Str),
    key!("runtime.in_serve", "STELLA_RUNTIME_IN_SERVE", Bool),
    key!("scheduler.enabled", "STELLA_SCHEDULER_ENABLED", Bool),
    key!(
        "scheduler.lease_ttl_secs",
        "STELLA_SCHEDULER_LEASE_TTL_SECS",
        Int
    ),
    key!(
        "scheduler.poll_interval_ms",
        "STELLA_SCHEDULER_POLL_INTERVAL_MS",
        Int
    ),
    key!(
        "scheduler.misfire_grace_secs",
        "STELLA_SCHEDULER_MISFIRE_GRACE_SECS",
        Int
    ),
    key!(
        "scheduler.default_jitter_secs",
        "STELLA_SCHEDULER_DEFAULT_JITTER_SECS",
        Int
    ),
    key!("scheduler.clock_speed", "STELLA_SCHEDULER_CLOCK_SPEED", Int),
    key!(
        "scheduler.clock_origin",
        "STELLA_SCHEDULER_CLOCK_ORIGIN",
        Str
    ),
    key!("outbound.allow_hosts", "STELLA_OUTBOUND_ALLOW_HOSTS", Str),
    key!(
        "outbound.connect_timeout_secs",
        "STELLA_OUTBOUND_CONNECT_TIMEOUT_SECS",
        Int
    ),
    key!("outbound.timeout_secs", "STELLA_OUTBOUND_TIMEOUT_SECS", Int),
    key!("outbound.max_bytes", "STELLA_OUTBOUND_MAX_BYTES", Int),
    key!(
        "outbound.max_redirects",
        "STELLA_OUTBOUND_MAX_REDIRECTS",
        Int
    ),
    key!(
        "notify.secrets_key_file",
        "STELLA_NOTIFY_SECRETS_KEY_FILE",
        Str
    ),
    key!(
        "notify.webhook_timeout_secs",
        "STELLA_NOTIFY_WEBHOOK_TIMEOUT_SECS",
        Int
    ),
    key!("notify.smtp.host", "STELLA_NOTIFY_SMTP_HOST", Str),
    key!("notify.smtp.port", "STELLA_NOTIFY_SMTP_PORT", Int),
    key!("notify.smtp.mode", "STELLA_NOTIFY_SMTP_MODE", Str),
    key!("notify.smtp.username", "STELLA_NOTIFY_SMTP_USERNAME", Str),
    key!(
        "notify.smtp.password",
        "STELLA_NOTIFY_SMTP_PASSWORD",
        Str,
        Secret
    ),
    key!("notify.smtp.from", "STELLA_NOTIFY_SMTP_FROM", Str),
    key!(
        "notify.smtp.timeout_secs",
        "STELLA_NOTIFY_SMTP_TIMEOUT_SECS",
        Int
    ),
    key!("notify.smtp.ca_file", "STELLA_NOTIFY_SMTP_CA_FILE", Str),
    key!("mirror.trusted_keys", "STELLA_MIRROR_TRUSTED_KEYS", Str),
    // Named by the operator: set in the config file only.
    key!("export.destinations.*.path", "", Str),
    key!("export.destinations.*.bucket", "", Str),
    key!("export.destinations.*.prefix", "", Str),
    key!("export.destinations.*.endpoint", "", Str),
    key!("export.destinations.*.region", "", Str),
    key!("export.destinations.*.access_key_id", "", Str),
    key!("export.destinations.*.secret_access_key", "", Str, Secret),
    key!("export.destinations.*.tenants", "", List),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::env;
    use crate::{load, Source};

    #[test]
    fn every_key_is_settable_from_the_environment() {
        // Guards the KEYS table against drifting from the structs: each key set through
        // its variable must land in the settings without an unknown-field error.
        for def in KEYS.iter().filter(|def| !def.env.is_empty()) {
            let value = match (def.kind, def.key) {
                (Kind::Int, "s3.part_size_bytes") => "6000000",
                (Kind::Int, "runtime.retry_max_delay_ms") => "600000",
                (Kind::Int, _) => "7",
                (Kind::Bool, _) => "true",
                (Kind::Str, "listen" | "metrics_listen") => "127.0.0.1:1",
                (Kind::Str, "database.url") => "sqlite://x.db",
                (Kind::Str, "valkey.url") => "redis://h",
                (Kind::Str, "log_format") => "json",
                (Kind::Str, "otlp_endpoint") => "http://127.0.0.1:4318",
                (Kind::Str, "s3.endpoint" | "notify.smtp.password") => continue,
                (Kind::Str, "scheduler.clock_origin") => "2026-01-01T00:00:00Z",
                (Kind::Str, "notify.smtp.mode") => "starttls",
                // Needs a TLS mode, which this loop sets one key at a time.
                (Kind::Str, "notify.smtp.ca_file") => continue,
                (Kind::Str, "notify.smtp.from") => "stella@example.com",
                (Kind::Str, _) => "v",
                (Kind::List, _) => "a, b",
            };
            let loaded = load(None, &env(&[(def.env, value)]))
                .unwrap_or_else(|err| panic!("{}: {err}", def.env));
            assert_eq!(loaded.source_of(def.key), Source::Env(def.env.into()));
        }
        // Only the keys named by the operator lack a variable.
        for def in KEYS.iter().filter(|def| def.env.is_empty()) {
            assert!(def.is_pattern(), "{} has no environment variable", def.key);
        }
    }

    #[test]
    fn pattern_keys_match_one_segment() {
        let def = KEYS
            .iter()
            .find(|d| d.key == "export.destinations.*.bucket")
            .unwrap();
        assert!(def.matches("export.destinations.archive.bucket"));
        assert!(!def.matches("export.destinations.bucket"));
        assert!(!def.matches("export.destinations.a.b.bucket"));
        assert!(!def.matches("export.destinations.a.path"));
    }
}
