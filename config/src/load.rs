//! Layering: the defaults, then the TOML file, then the `STELLA_` environment; the source
//! of every value; errors that name the key and its source.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::validate::validate;
use crate::{Kind, Settings, KEYS};

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

impl Loaded {
    pub fn source_of(&self, key: &str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }
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
            if !KEYS.iter().any(|def| def.matches(&key)) {
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
        let Some(def) = KEYS
            .iter()
            .find(|def| !def.env.is_empty() && def.env == name)
        else {
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
        Kind::List => Ok(toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_owned()))
                .collect(),
        )),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{env, file};
    use crate::{DatabaseBackend, MailboxBackend, ObjectBackend};

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
                url: "redis://cache:6379".into(),
                cluster: false,
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
}
