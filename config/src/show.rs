//! `stella config show`: every key with its effective value, redacted, and its source.

use serde::Serialize;

use crate::{redact_url, Loaded, Show, KEYS};

/// One row of `stella config show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShownValue {
    pub key: String,
    /// The value as TOML, with secrets and URL passwords redacted; `None` when unset.
    pub value: Option<String>,
    pub source: String,
}

impl Loaded {
    /// Every key with its effective value (redacted) and source, in [`KEYS`] order; a
    /// key with a `*` segment once for each name the settings have there.
    pub fn show(&self) -> Vec<ShownValue> {
        let tree = toml::Value::try_from(&self.settings).ok();
        KEYS.iter()
            .flat_map(|def| {
                let keys = if def.is_pattern() {
                    expand(tree.as_ref(), def.key)
                } else {
                    vec![def.key.to_owned()]
                };
                keys.into_iter().map(move |key| (def, key))
            })
            .map(|(def, key)| {
                let value = tree
                    .as_ref()
                    .and_then(|tree| lookup(tree, &key))
                    .map(|value| match (def.show, value) {
                        (Show::Secret, _) => "\"[redacted]\"".to_owned(),
                        (Show::Url, toml::Value::String(_)) => {
                            let raw = self.raw_string(def.key).unwrap_or_default();
                            toml::Value::String(redact_url(&raw)).to_string()
                        }
                        (_, value) => value.to_string(),
                    });
                ShownValue {
                    source: self.source_of(&key).to_string(),
                    key,
                    value,
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

/// The concrete keys of `pattern` (one `*` segment): one per name in the table at the
/// `*`, in name order.
fn expand(tree: Option<&toml::Value>, pattern: &str) -> Vec<String> {
    let Some((head, tail)) = pattern.split_once(".*.") else {
        return Vec::new();
    };
    let Some(toml::Value::Table(table)) = tree.and_then(|tree| lookup(tree, head)) else {
        return Vec::new();
    };
    table
        .keys()
        .map(|name| format!("{head}.{name}.{tail}"))
        .collect()
}

fn lookup<'a>(tree: &'a toml::Value, key: &str) -> Option<&'a toml::Value> {
    key.split('.').try_fold(tree, |node, part| node.get(part))
}

#[cfg(test)]
mod tests {
    use crate::testing::env;
    use crate::{load, KEYS};

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
        // A key named by the operator shows once per name: none here.
        assert_eq!(
            shown.len(),
            KEYS.iter().filter(|def| !def.is_pattern()).count()
        );
    }
}
