//! Stella's typed settings.
//!
//! Settings come from three layers, later ones winning: the built-in defaults (the embedded
//! profile: SQLite, embedded mailbox and a local object folder under `./stella-data`), an
//! optional TOML file (`--config PATH` or `STELLA_CONFIG`), and `STELLA_`-prefixed
//! environment variables. Every key is declared once in [`KEYS`]; that table maps keys to
//! environment names, tells their type and whether they are secret, and drives
//! `stella config show`. Unknown keys (in the file or in the environment) are errors, and
//! every error names the key and the source it came from.
//!
//! This crate reads no process state itself: callers pass the environment as a map, so
//! tests build settings without touching the process environment.
//!
//! Layout:
//! - [`Settings`] and its sections: the typed result;
//! - [`Loaded`]: settings plus the source of each value, for `config show`;
//! - [`Secret`]: a string that never prints itself;
//! - [`ConfigError`]: what can go wrong, always naming key and source.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variables with the `STELLA_` prefix that are not settings of the server
/// (the CLI client and the config file locator read them).
const NOT_SETTINGS: &[&str] = &[
    "STELLA_CONFIG",
    "STELLA_SERVER",
    "STELLA_TOKEN",
    "STELLA_TENANT",
    "STELLA_OUTPUT",
];

/// Prefixes of environment variables used by the test harness and `ops/services.sh`,
/// never by the server.
const NOT_SETTINGS_PREFIXES: &[&str] = &["STELLA_TEST_", "STELLA_SERVICES_"];

/// The effective settings of one Stella process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Folder for embedded state: the SQLite database, the object folder, the admin token.
    pub data_dir: PathBuf,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// If set and no admin token exists, an admin token with exactly this value is created.
    pub bootstrap_token: Option<Secret>,
    /// Log filter, in `tracing_subscriber::EnvFilter` syntax.
    pub log: String,
    /// Log format: `text` or `json`.
    pub log_format: String,
    /// Ed25519 private key (PKCS#8 PEM) that signs attestations. Unset: the key in
    /// `<data_dir>/signing-key.pem`, generated on first start.
    pub signing_key_file: Option<PathBuf>,
    pub database: DatabaseSettings,
    pub valkey: ValkeySettings,
    pub s3: S3Settings,
    pub api: ApiSettings,
    pub runtime: RuntimeSettings,
    pub scheduler: SchedulerSettings,
    pub outbound: OutboundSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./stella-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            bootstrap_token: None,
            log: "info".to_owned(),
            log_format: "text".to_owned(),
            signing_key_file: None,
            database: DatabaseSettings::default(),
            valkey: ValkeySettings::default(),
            s3: S3Settings::default(),
            api: ApiSettings::default(),
            runtime: RuntimeSettings::default(),
            scheduler: SchedulerSettings::default(),
            outbound: OutboundSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://...` selects PostgreSQL; `sqlite://...` or unset selects SQLite under the
    /// data dir.
    pub url: Option<Secret>,
    pub max_connections: u32,
    /// Seconds to wait for a connection before reporting the database unreachable.
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            connect_timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ValkeySettings {
    /// `redis://...` selects Valkey mailboxes; unset selects the embedded mailbox.
    pub url: Option<Secret>,
    /// Prefix of every key Stella writes, so several deployments can share one server.
    pub key_prefix: String,
    pub pool_size: usize,
}

impl Default for ValkeySettings {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "stella".to_owned(),
            pool_size: 16,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Set to select S3; unset selects the folder `objects/` under the data dir.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// Prefix of every object key, so several deployments can share one bucket.
    pub prefix: String,
    /// Objects larger than this are uploaded in parts of this size (S3 minimum: 5 MiB).
    pub part_size_bytes: u64,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            bucket: "stella".to_owned(),
            region: "us-east-1".to_owned(),
            access_key_id: None,
            secret_access_key: None,
            prefix: String::new(),
            part_size_bytes: 8 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Largest accepted request body.
    pub max_body_bytes: u64,
    /// Most component entries an uploaded SBOM may list (CycloneDX components, nested
    /// ones included; SPDX packages): bounds a scan's memory and evaluation time.
    pub max_sbom_components: u64,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Sustained requests per second each tenant may make (0: no limit).
    pub rate_limit_per_second: u64,
    /// Requests a tenant may make at once above the sustained rate.
    pub rate_limit_burst: u64,
    /// Seconds a request body may take to arrive in full (then 408).
    pub body_read_timeout_secs: u64,
    /// Failed authentications per minute one client address may make (0: no limit).
    pub auth_failures_per_minute: u64,
    /// Failed authentications a client address may make at once above that rate.
    pub auth_failure_burst: u64,
    /// Whether tenant tokens may submit the diagnostic `noop` job kind through
    /// `POST /jobs` (administrators always may).
    pub tenant_noop_jobs: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 50 * 1024 * 1024,
            max_sbom_components: 200_000,
            shutdown_timeout_secs: 5,
            rate_limit_per_second: 50,
            rate_limit_burst: 200,
            body_read_timeout_secs: 30,
            auth_failures_per_minute: 60,
            auth_failure_burst: 20,
            tenant_noop_jobs: false,
        }
    }
}

/// The durable actor runtime: how workers take, run and retry work.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Entries taken from the mailbox per receive.
    pub batch_size: u32,
    /// Jobs running at once in one process.
    pub concurrency: u32,
    /// Jobs of one tenant running at once in one process.
    pub tenant_concurrency: u32,
    /// An entry unacknowledged this long is taken over from its (presumed dead)
    /// consumer. Must exceed the slowest legitimate handler; running entries are kept
    /// alive by heartbeats, so it bounds only how long a crash goes unnoticed.
    pub min_idle_ms: u64,
    /// Deliveries (crashed or stalled runs) after which an entry is dead-lettered.
    pub max_deliveries: u32,
    /// Handler attempts (failures and panics) after which a job fails.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter, up to the maximum.
    pub retry_min_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    /// A tenant supervisor with no work for this long is stopped.
    pub tenant_idle_secs: u64,
    /// Restart intensity: more panics than this within `restart_within_secs`
    /// quarantine the tenant's actor.
    pub restart_max: u32,
    pub restart_within_secs: u64,
    /// How long a quarantine lasts before the actor takes work again.
    pub quarantine_secs: u64,
    /// How often idle loops (receive, outbox relay) look for work.
    pub poll_interval_ms: u64,
    /// Seconds in-flight jobs get to finish on shutdown; the rest is left to other
    /// processes.
    pub shutdown_timeout_secs: u64,
    /// This process's consumer name; generated (`<host>-<pid>-<random>`) when unset. A
    /// stable name lets a restarted process drain its own unacknowledged entries first;
    /// a name held by a live process is refused.
    pub consumer_name: Option<String>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            // A delivery's latency is a few round trips (receive, commit, acknowledge),
            // so throughput is about `concurrency / latency`: hold enough deliveries to
            // keep the backends busy. A held delivery costs a few hundred bytes; a
            // tenant may use an eighth of the process, so eight busy tenants share it.
            batch_size: 256,
            concurrency: 512,
            tenant_concurrency: 64,
            min_idle_ms: 30_000,
            max_deliveries: 5,
            max_attempts: 5,
            retry_min_delay_ms: 2_000,
            retry_max_delay_ms: 300_000,
            tenant_idle_secs: 60,
            restart_max: 5,
            restart_within_secs: 10,
            quarantine_secs: 300,
            poll_interval_ms: 20,
            shutdown_timeout_secs: 5,
            consumer_name: None,
        }
    }
}

/// The scheduler: cron firings, drift re-evaluation, the leader lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// Whether `stella serve` runs the scheduler (`stella scheduler` always does).
    pub enabled: bool,
    /// How long a leader's lease lasts without renewal: when the leader dies, another
    /// process takes over within this time.
    pub lease_ttl_secs: u64,
    /// How often the scheduler looks for due schedules, new events and ended scans.
    pub poll_interval_ms: u64,
    /// A due time whose fire time passed longer ago than this is *missed* (no scheduler
    /// ran then): the schedule's missed-fire policy decides.
    pub misfire_grace_secs: u64,
    /// The jitter window of a schedule created without `jitter_seconds`.
    pub default_jitter_secs: u64,
    /// Clock speed factor for demos and tests: `60` makes a minute pass in a second.
    /// Only with `clock_origin`, the real instant from which the clock runs faster (so
    /// several processes agree on the time).
    pub clock_speed: u64,
    pub clock_origin: Option<String>,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            lease_ttl_secs: 15,
            poll_interval_ms: 500,
            misfire_grace_secs: 60,
            default_jitter_secs: 60,
            clock_speed: 1,
            clock_origin: None,
        }
    }
}

/// URLs Stella fetches on someone's behalf (advisory sources today, webhooks later): every
/// such fetch goes through one guard with these limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundSettings {
    /// Comma-separated host names or IP addresses that may be fetched from even though
    /// they are (or resolve to) loopback, private, link-local or other internal
    /// addresses, on any port. Empty: only public addresses.
    pub allow_hosts: String,
    /// Seconds to wait for a TCP (and TLS) connection.
    pub connect_timeout_secs: u64,
    /// Seconds one fetch may take in all, body included.
    pub timeout_secs: u64,
    /// Largest body accepted from one URL.
    pub max_bytes: u64,
    /// Redirects followed per fetch (each one checked like the first URL).
    pub max_redirects: u32,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            allow_hosts: String::new(),
            connect_timeout_secs: 5,
            timeout_secs: 120,
            max_bytes: 512 * 1024 * 1024,
            max_redirects: 5,
        }
    }
}

impl OutboundSettings {
    /// The allow-listed hosts, lowercased, without empty entries.
    pub fn allowed_hosts(&self) -> Vec<String> {
        self.allow_hosts
            .split(',')
            .map(|h| {
                h.trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            })
            .filter(|h| !h.is_empty())
            .collect()
    }
}

/// Which relational backend the settings select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseBackend {
    Postgres { url: String },
    Sqlite { url: String },
}

/// Which mailbox backend the settings select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxBackend {
    Embedded,
    Valkey { url: String },
}

/// Which object store backend the settings select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectBackend {
    Folder { root: PathBuf },
    S3(S3Target),
}

#[derive(Clone, PartialEq, Eq)]
pub struct S3Target {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub prefix: String,
    pub part_size_bytes: u64,
}

impl fmt::Debug for S3Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Target")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn database_backend(&self) -> DatabaseBackend {
        match &self.database.url {
            Some(url) if is_postgres_url(url.expose()) => DatabaseBackend::Postgres {
                url: url.expose().to_owned(),
            },
            Some(url) => DatabaseBackend::Sqlite {
                url: url.expose().to_owned(),
            },
            None => DatabaseBackend::Sqlite {
                url: format!(
                    "sqlite://{}?mode=rwc",
                    self.data_dir.join("stella.db").display()
                ),
            },
        }
    }

    pub fn mailbox_backend(&self) -> MailboxBackend {
        match &self.valkey.url {
            Some(url) => MailboxBackend::Valkey {
                url: url.expose().to_owned(),
            },
            None => MailboxBackend::Embedded,
        }
    }

    pub fn object_backend(&self) -> ObjectBackend {
        let s3 = &self.s3;
        match (&s3.endpoint, &s3.access_key_id, &s3.secret_access_key) {
            (Some(endpoint), Some(id), Some(secret)) => ObjectBackend::S3(S3Target {
                endpoint: endpoint.clone(),
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                prefix: s3.prefix.clone(),
                part_size_bytes: s3.part_size_bytes,
            }),
            // `validate` guarantees the credentials are present whenever the endpoint is.
            _ => ObjectBackend::Folder {
                root: self.data_dir.join("objects"),
            },
        }
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A string that is never printed: `Debug`, `Display` and `Serialize` show `[redacted]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

/// Replaces the password of a `scheme://user:password@host` URL with `****`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:****{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
}

/// One setting: its dotted key, its environment name, its type, and how to show it.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    pub key: &'static str,
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
    key!("runtime.consumer_name", "STELLA_RUNTIME_CONSUMER_NAME", Str),
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
];

/// What went wrong while loading settings. Every variant names the key (or file) and the
/// source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    ReadFile { path: PathBuf, reason: String },
    #[error("config file {path} is not valid TOML: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("unknown key `{key}` in {origin}")]
    UnknownKey { key: String, origin: Source },
    #[error("invalid value for `{key}` from {origin}: {reason}")]
    Invalid {
        key: String,
        origin: Source,
        reason: String,
    },
}

/// Settings together with the source of each value.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    sources: BTreeMap<String, Source>,
}

/// One row of `stella config show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShownValue {
    pub key: String,
    /// The value as TOML, with secrets and URL passwords redacted; `None` when unset.
    pub value: Option<String>,
    pub source: String,
}

impl Loaded {
    pub fn source_of(&self, key: &str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }

    /// Every key with its effective value (redacted) and source, in [`KEYS`] order.
    pub fn show(&self) -> Vec<ShownValue> {
        let tree = toml::Value::try_from(&self.settings).ok();
        KEYS.iter()
            .map(|def| {
                let value =
                    tree.as_ref()
                        .and_then(|tree| lookup(tree, def.key))
                        .map(|value| match (def.show, value) {
                            (Show::Secret, _) => "\"[redacted]\"".to_owned(),
                            (Show::Url, toml::Value::String(_)) => {
                                let raw = self.raw_string(def.key).unwrap_or_default();
                                toml::Value::String(redact_url(&raw)).to_string()
                            }
                            (_, value) => value.to_string(),
                        });
                ShownValue {
                    key: def.key.to_owned(),
                    value,
                    source: self.source_of(def.key).to_string(),
                }
            })
            .collect()
    }

    fn raw_string(&self, key: &str) -> Option<String> {
        match key {
            "database.url" => self.settings.database.url.as_ref(),
            "valkey.url" => self.settings.valkey.url.as_ref(),
            _ => None,
        }
        .map(|secret| secret.expose().to_owned())
    }
}

fn lookup<'a>(tree: &'a toml::Value, key: &str) -> Option<&'a toml::Value> {
    key.split('.').try_fold(tree, |node, part| node.get(part))
}

/// Loads settings: defaults, then the TOML file (`file`, or else `STELLA_CONFIG` from
/// `env`), then the `STELLA_` variables of `env`.
pub fn load(file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Loaded, ConfigError> {
    let mut tree = toml::Table::new();
    let mut sources = BTreeMap::new();

    let file = file
        .map(Path::to_path_buf)
        .or_else(|| env.get("STELLA_CONFIG").map(PathBuf::from));
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|err| ConfigError::ReadFile {
            path: path.clone(),
            reason: err.to_string(),
        })?;
        let table: toml::Table =
            text.parse()
                .map_err(|err: toml::de::Error| ConfigError::Syntax {
                    path: path.clone(),
                    reason: err.to_string().trim_end().replace('\n', " "),
                })?;
        let mut leaves = Vec::new();
        collect_leaves(&table, "", &mut leaves);
        for key in leaves {
            if !KEYS.iter().any(|def| def.key == key) {
                return Err(ConfigError::UnknownKey {
                    key,
                    origin: Source::File(path.clone()),
                });
            }
            sources.insert(key, Source::File(path.clone()));
        }
        tree = table;
    }

    for (name, raw) in env {
        if !name.starts_with("STELLA_")
            || NOT_SETTINGS_PREFIXES.iter().any(|p| name.starts_with(p))
            || NOT_SETTINGS.contains(&name.as_str())
        {
            continue;
        }
        let Some(def) = KEYS.iter().find(|def| def.env == name) else {
            return Err(ConfigError::UnknownKey {
                key: name.clone(),
                origin: Source::Env(name.clone()),
            });
        };
        let source = Source::Env(name.clone());
        let value = parse_env(def.kind, raw).map_err(|reason| ConfigError::Invalid {
            key: def.key.to_owned(),
            origin: source.clone(),
            reason,
        })?;
        insert(&mut tree, def.key, value);
        sources.insert(def.key.to_owned(), source);
    }

    let settings: Settings =
        serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|err| {
            let key = err.path().to_string();
            ConfigError::Invalid {
                origin: sources.get(&key).cloned().unwrap_or(Source::Default),
                reason: err.into_inner().to_string(),
                key,
            }
        })?;
    let loaded = Loaded { settings, sources };
    validate(&loaded)?;
    Ok(loaded)
}

fn collect_leaves(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => collect_leaves(inner, &key, out),
            _ => out.push(key),
        }
    }
}

fn parse_env(kind: Kind, raw: &str) -> Result<toml::Value, String> {
    match kind {
        Kind::Str => Ok(toml::Value::String(raw.to_owned())),
        Kind::Int => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("expected an integer, got {raw:?}")),
        Kind::Bool => match raw.trim() {
            "true" | "1" | "yes" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
    }
}

fn insert(tree: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut node = tree;
    for part in parts {
        let entry = node
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else {
            unreachable!("entry was just made a table")
        };
        node = inner;
    }
    node.insert(last.to_owned(), value);
}

fn validate(loaded: &Loaded) -> Result<(), ConfigError> {
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
        let url = url.expose();
        if !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("valkey://")
            || url.starts_with("valkeys://"))
        {
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
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn defaults_are_the_embedded_profile() {
        let loaded = load(None, &env(&[])).unwrap();
        let s = &loaded.settings;
        assert_eq!(s.data_dir, PathBuf::from("./stella-data"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            s.database_backend(),
            DatabaseBackend::Sqlite {
                url: "sqlite://./stella-data/stella.db?mode=rwc".into()
            }
        );
        assert_eq!(s.mailbox_backend(), MailboxBackend::Embedded);
        assert_eq!(
            s.object_backend(),
            ObjectBackend::Folder {
                root: PathBuf::from("./stella-data/objects")
            }
        );
        assert_eq!(loaded.source_of("listen"), Source::Default);
    }

    #[test]
    fn the_documented_environment_names_select_the_server_backends() {
        let loaded = load(
            None,
            &env(&[
                ("STELLA_DATA_DIR", "/srv/stella"),
                ("STELLA_LISTEN", "0.0.0.0:9000"),
                ("STELLA_DATABASE_URL", "postgres://u:pw@db:5432/stella"),
                ("STELLA_VALKEY_URL", "redis://cache:6379"),
                ("STELLA_S3_ENDPOINT", "http://s3:3900"),
                ("STELLA_S3_BUCKET", "evidence"),
                ("STELLA_S3_REGION", "garage"),
                ("STELLA_S3_ACCESS_KEY_ID", "GK123"),
                ("STELLA_S3_SECRET_ACCESS_KEY", "s3cr3t"),
                ("STELLA_BOOTSTRAP_TOKEN", "12345"),
                ("STELLA_SERVER", "http://ignored-by-the-server"),
                ("STELLA_TEST_SERVICES", "1"),
                ("STELLA_SERVICES_DIR", "/var/tmp/x"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        let s = &loaded.settings;
        assert_eq!(s.data_dir, PathBuf::from("/srv/stella"));
        assert_eq!(s.listen.port(), 9000);
        assert!(matches!(
            s.database_backend(),
            DatabaseBackend::Postgres { .. }
        ));
        assert_eq!(
            s.mailbox_backend(),
            MailboxBackend::Valkey {
                url: "redis://cache:6379".into()
            }
        );
        let ObjectBackend::S3(target) = s.object_backend() else {
            panic!("S3 endpoint set but folder selected")
        };
        assert_eq!(target.bucket, "evidence");
        assert_eq!(target.region, "garage");
        assert_eq!(target.secret_access_key.expose(), "s3cr3t");
        assert_eq!(s.bootstrap_token.as_ref().unwrap().expose(), "12345");
        assert_eq!(
            loaded.source_of("s3.bucket"),
            Source::Env("STELLA_S3_BUCKET".into())
        );
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        let f = file("listen = \"127.0.0.1:7000\"\n[database]\nmax_connections = 3\n");
        let loaded = load(
            Some(f.path()),
            &env(&[("STELLA_DATABASE_MAX_CONNECTIONS", "4")]),
        )
        .unwrap();
        assert_eq!(loaded.settings.listen.port(), 7000);
        assert_eq!(loaded.settings.database.max_connections, 4);
        assert_eq!(loaded.source_of("listen"), Source::File(f.path().into()));
        assert_eq!(
            loaded.source_of("database.max_connections"),
            Source::Env("STELLA_DATABASE_MAX_CONNECTIONS".into())
        );
        assert_eq!(loaded.source_of("log"), Source::Default);
    }

    #[test]
    fn stella_config_names_the_file_when_no_flag_does() {
        let f = file("log = \"debug\"\n");
        let loaded = load(None, &env(&[("STELLA_CONFIG", f.path().to_str().unwrap())])).unwrap();
        assert_eq!(loaded.settings.log, "debug");
    }

    #[test]
    fn unknown_file_key_is_named_with_its_file() {
        let f = file("[s3]\nendpont = \"http://x\"\n");
        let err = load(Some(f.path()), &env(&[])).unwrap_err().to_string();
        assert!(err.contains("`s3.endpont`"), "{err}");
        assert!(err.contains(&f.path().display().to_string()), "{err}");
    }

    #[test]
    fn unknown_environment_setting_is_an_error() {
        let err = load(None, &env(&[("STELLA_LISTN", "x")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown key `STELLA_LISTN` in environment variable STELLA_LISTN"
        );
    }

    #[test]
    fn bad_values_name_key_and_source() {
        let err = load(None, &env(&[("STELLA_LISTEN", "not-an-address")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid value for `listen` from environment variable STELLA_LISTEN"),
            "{err}"
        );

        let f = file("[database]\nmax_connections = \"ten\"\n");
        let err = load(Some(f.path()), &env(&[])).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "invalid value for `database.max_connections` from file {}",
                f.path().display()
            )),
            "{err}"
        );

        let err = load(None, &env(&[("STELLA_DATABASE_MAX_CONNECTIONS", "many")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected an integer"), "{err}");
    }

    #[test]
    fn malformed_file_is_reported_with_its_path() {
        let f = file("listen = \n");
        let err = load(Some(f.path()), &env(&[])).unwrap_err().to_string();
        assert!(err.starts_with("config file "), "{err}");
        assert!(err.contains("is not valid TOML"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");

        let err = load(Some(Path::new("/nonexistent/stella.toml")), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/stella.toml"), "{err}");
    }

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

    #[test]
    fn show_redacts_secrets_and_passwords_and_names_sources() {
        let loaded = load(
            None,
            &env(&[
                ("STELLA_DATABASE_URL", "postgres://stella:hunter2@db/stella"),
                ("STELLA_BOOTSTRAP_TOKEN", "tok-secret"),
            ]),
        )
        .unwrap();
        let shown = loaded.show();
        let text = format!("{shown:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("tok-secret"), "{text}");
        let url = shown.iter().find(|v| v.key == "database.url").unwrap();
        assert_eq!(
            url.value.as_deref(),
            Some("\"postgres://stella:****@db/stella\"")
        );
        assert_eq!(url.source, "environment variable STELLA_DATABASE_URL");
        let endpoint = shown.iter().find(|v| v.key == "s3.endpoint").unwrap();
        assert_eq!(endpoint.value, None);
        assert_eq!(endpoint.source, "default");
        assert_eq!(shown.len(), KEYS.len());
    }

    #[test]
    fn every_key_is_settable_from_the_environment() {
        // Guards the KEYS table against drifting from the structs: each key set through
        // its variable must land in the settings without an unknown-field error.
        for def in KEYS {
            let value = match (def.kind, def.key) {
                (Kind::Int, "s3.part_size_bytes") => "6000000",
                (Kind::Int, "runtime.retry_max_delay_ms") => "600000",
                (Kind::Int, _) => "7",
                (Kind::Bool, _) => "true",
                (Kind::Str, "listen") => "127.0.0.1:1",
                (Kind::Str, "database.url") => "sqlite://x.db",
                (Kind::Str, "valkey.url") => "redis://h",
                (Kind::Str, "log_format") => "json",
                (Kind::Str, "s3.endpoint") => continue,
                (Kind::Str, "scheduler.clock_origin") => "2026-01-01T00:00:00Z",
                (Kind::Str, _) => "v",
            };
            let loaded = load(None, &env(&[(def.env, value)]))
                .unwrap_or_else(|err| panic!("{}: {err}", def.env));
            assert_eq!(loaded.source_of(def.key), Source::Env(def.env.into()));
        }
    }

    #[test]
    fn redact_url_keeps_everything_but_the_password() {
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:****@h:1/0");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
