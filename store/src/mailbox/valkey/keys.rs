//! The Valkey layout: key names under the configured prefix `P`, and the consumer group.
//!
//! - `P:mb:<role>:t:<tenant>`: one stream per role and tenant, consumer group [`GROUP`];
//! - `P:mb:<role>:tenants`: the set of tenants that have a stream for the role;
//! - `P:mb:<role>:delayed`: delayed entries, scored by due time;
//! - `P:mb:<role>:dead`: the dead-letter stream;
//! - `P:mb:dedupe:<tenant>:<role>:<key>:<attempt>`: recently sent messages;
//! - `P:consumer:<name>`: consumer-name leases.
//!
//! On a Valkey Cluster the role is a hash tag, `P:mb:{<role>}:...`, and the dedupe keys
//! live under it (`P:mb:{<role>}:dedupe:...`): every key a script or a pipeline touches
//! belongs to one role, so all of them share one slot, and one XREADGROUP still reads
//! a window of many tenants. Roles spread over the primaries; one role's traffic is
//! served by one primary. (A single server keeps the untagged names, so an existing
//! deployment's keys stay where they are.)

use crate::error::{Result, StoreError};
use crate::mailbox::{ConsumerName, Envelope, Role};
use crate::TenantId;

/// The one consumer group of every stream: a stream belongs to one role already. The
/// scripts get it from here too (see `scripts.rs`).
pub(super) const GROUP: &str = "stella";

/// Names the keys of one mailbox.
#[derive(Debug)]
pub(super) struct Keys {
    prefix: String,
    cluster: bool,
}

impl Keys {
    pub(super) fn new(prefix: &str, cluster: bool) -> Self {
        Self {
            prefix: prefix.to_owned(),
            cluster,
        }
    }

    /// `P:mb:<role>:<what>`, on a cluster `P:mb:{<role>}:<what>`.
    fn of_role(&self, role: &Role, what: &str) -> String {
        if self.cluster {
            format!("{}:mb:{{{role}}}:{what}", self.prefix)
        } else {
            format!("{}:mb:{role}:{what}", self.prefix)
        }
    }

    /// What every tenant stream of `role` starts with; the tenant follows.
    pub(super) fn stream_prefix(&self, role: &Role) -> String {
        self.of_role(role, "t:")
    }

    pub(super) fn stream(&self, role: &Role, tenant: &str) -> String {
        format!("{}{tenant}", self.stream_prefix(role))
    }

    pub(super) fn tenants(&self, role: &Role) -> String {
        self.of_role(role, "tenants")
    }

    pub(super) fn delayed(&self, role: &Role) -> String {
        self.of_role(role, "delayed")
    }

    pub(super) fn dead(&self, role: &Role) -> String {
        self.of_role(role, "dead")
    }

    pub(super) fn dedupe(&self, envelope: &Envelope) -> String {
        if self.cluster {
            self.of_role(&envelope.role, &format!("dedupe:{}", envelope.dedupe_key()))
        } else {
            format!("{}:mb:dedupe:{}", self.prefix, envelope.dedupe_key())
        }
    }

    pub(super) fn lease(&self, consumer: &ConsumerName) -> String {
        format!("{}:consumer:{consumer}", self.prefix)
    }
}

/// Splits a tenant stream's key (`stream_prefix` + tenant) back into the tenant.
pub(super) fn tenant_of(stream: &str, prefix: &str) -> Result<TenantId> {
    let tenant = stream
        .strip_prefix(prefix)
        .ok_or_else(|| StoreError::Corrupt(format!("unexpected stream key {stream}")))?;
    TenantId::parse(tenant)
}

#[cfg(test)]
mod tests {
    use super::{Keys, GROUP};
    use crate::mailbox::Role;

    /// On a cluster every key of a role hashes to one slot (the scripts and pipelines
    /// touch several of them at once); on a single server the names are untagged.
    #[test]
    fn cluster_keys_of_a_role_share_a_hash_tag() {
        let role = Role::parse("scan").unwrap();
        let cluster = Keys::new("stella", true);
        let tag = |key: &str| {
            let open = key.find('{').expect("a hash tag");
            let close = key[open..].find('}').expect("a closed hash tag");
            key[open + 1..open + close].to_owned()
        };
        for key in [
            cluster.stream(&role, "acme"),
            cluster.stream(&role, "globex"),
            cluster.tenants(&role),
            cluster.delayed(&role),
            cluster.dead(&role),
        ] {
            assert_eq!(tag(&key), "scan", "{key}");
        }
        assert_eq!(cluster.stream(&role, "acme"), "stella:mb:{scan}:t:acme");
        let single = Keys::new("stella", false);
        assert_eq!(single.stream(&role, "acme"), "stella:mb:scan:t:acme");
        assert!(!single.delayed(&role).contains('{'));
    }

    /// The scripts embed the group name in a single-quoted Lua string
    /// (`scripts.rs`): a quote or a backslash in it would change every script.
    #[test]
    fn the_group_name_is_safe_inside_a_lua_string() {
        assert!(!GROUP.is_empty());
        assert!(GROUP
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
