//! The `[valkey]` section and the mailbox backend it selects.

use serde::{Deserialize, Serialize};

use crate::{Secret, Settings};

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

/// Which mailbox backend the settings select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxBackend {
    Embedded,
    Valkey { url: String },
}

impl Settings {
    pub fn mailbox_backend(&self) -> MailboxBackend {
        match &self.valkey.url {
            Some(url) => MailboxBackend::Valkey {
                url: url.expose().to_owned(),
            },
            None => MailboxBackend::Embedded,
        }
    }
}
