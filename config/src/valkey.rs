//! The `[valkey]` section and the mailbox backend it selects.

use serde::{Deserialize, Serialize};

use crate::{Secret, Settings};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ValkeySettings {
    /// `redis://...` selects Valkey mailboxes; unset selects the embedded mailbox. A
    /// comma-separated list of node URLs selects a Valkey Cluster (as does `cluster`).
    pub url: Option<Secret>,
    /// The server is a Valkey Cluster: `url` names one or more of its nodes, the client
    /// follows MOVED / ASK and failovers, and key names carry hash tags so that every
    /// script's keys share a slot (all keys of one role in one slot).
    pub cluster: bool,
    /// How many replicas must have received a mailbox write (`WAIT <n>`, after this
    /// node's own fsync, `WAITAOF 1 0`) before it counts as sent. 0: the fsync only. On a
    /// cluster whose primaries each have a replica, 1 makes a failover lose no sent
    /// message.
    pub wait_replicas: u32,
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
            cluster: false,
            wait_replicas: 0,
        }
    }
}

/// Which mailbox backend the settings select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxBackend {
    Embedded,
    Valkey { url: String, cluster: bool },
}

impl Settings {
    pub fn mailbox_backend(&self) -> MailboxBackend {
        match &self.valkey.url {
            Some(url) => MailboxBackend::Valkey {
                url: url.expose().to_owned(),
                cluster: self.valkey.cluster || url.expose().contains(','),
            },
            None => MailboxBackend::Embedded,
        }
    }
}
