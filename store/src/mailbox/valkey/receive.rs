//! The fair receive: one stream per tenant, read a window of tenant streams at a time
//! with an equal per-stream COUNT, so each tenant gets at most its share of a batch; the
//! window rotates over the role's tenants so every tenant is read in turn.

use std::collections::BTreeMap;

use crate::ValkeyConn as Connection;
use deadpool_redis::redis::{self, streams::StreamReadReply};

use super::keys::{tenant_of, GROUP};
use super::{envelope_of, ValkeyMailbox};
use crate::error::{Backend, Result, StoreError};
use crate::mailbox::{ConsumerName, Delivery, Receipt, Role};

/// Tenant streams read in one XREADGROUP; the rotation covers every tenant in turn.
pub(super) const WINDOW: usize = 64;

/// Reads of one window per receive: the first takes an equal share from each tenant, the
/// others top up from tenants that filled theirs, so a batch fills up when few tenants
/// have work. Bounded, so a receive costs a known number of round trips.
const READ_ROUNDS: usize = 4;

/// Where a role's reads and claims are in the tenant list.
#[derive(Debug, Default)]
pub(super) struct Rotation {
    tenants: Vec<String>,
    read_at: usize,
    claim_at: usize,
    /// Set at the end of each turn: reload the tenant list before the next window.
    stale: bool,
}

impl ValkeyMailbox {
    /// [`Deliver::receive`](crate::mailbox::Deliver::receive): windows of tenant streams
    /// in turn until one yields entries or a whole turn found none.
    pub(super) async fn receive_fair(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        max: usize,
        own_pending: bool,
    ) -> Result<Vec<Delivery>> {
        let max = max.max(1);
        let mut conn = self.conn().await?;
        let prefix = self.keys.stream_prefix(role);
        let mut scanned = 0usize;
        let mut refreshed = false;
        loop {
            let (tenants, total) = self.window(&mut conn, role, false, max).await?;
            let streams: Vec<String> = tenants.iter().map(|t| format!("{prefix}{t}")).collect();
            let deliveries = if streams.is_empty() {
                Vec::new()
            } else {
                self.read_fair(&mut conn, &prefix, &streams, consumer, max, own_pending)
                    .await?
            };
            scanned += streams.len();
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            if scanned >= total {
                // A whole turn found nothing. A tenant that appeared since the list was
                // loaded would wait a turn: reload once and look again if it changed.
                if refreshed || !self.refresh(&mut conn, role).await? {
                    return Ok(Vec::new());
                }
                refreshed = true;
                scanned = 0;
            }
        }
    }

    /// Reloads the role's tenant list.
    async fn refresh(&self, conn: &mut Connection, role: &Role) -> Result<bool> {
        let mut tenants: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.tenants(role))
            .query_async(conn)
            .await
            .map_err(|err| self.err(err))?;
        tenants.sort();
        let mut rotation = self.rotation.lock().map_err(poisoned)?;
        let entry = rotation.entry(role.clone()).or_default();
        let changed = entry.tenants != tenants;
        entry.tenants = tenants;
        entry.stale = false;
        Ok(changed)
    }

    /// The next window of (at most [`WINDOW`]) tenants for `role` and the number of
    /// tenants in the rotation. The tenant list is reloaded once per full turn, so a new
    /// tenant waits at most one turn.
    pub(super) async fn window(
        &self,
        conn: &mut Connection,
        role: &Role,
        claim: bool,
        size: usize,
    ) -> Result<(Vec<String>, usize)> {
        let stale = {
            let rotation = self.rotation.lock().map_err(poisoned)?;
            rotation
                .get(role)
                .is_none_or(|r| r.stale || r.tenants.is_empty())
        };
        if stale {
            self.refresh(conn, role).await?;
        }
        let mut rotation = self.rotation.lock().map_err(poisoned)?;
        let entry = rotation.entry(role.clone()).or_default();
        let len = entry.tenants.len();
        if len == 0 {
            return Ok((Vec::new(), 0));
        }
        let cursor = if claim {
            &mut entry.claim_at
        } else {
            &mut entry.read_at
        };
        let start = *cursor % len;
        let end = (start + size.clamp(1, WINDOW)).min(len);
        *cursor = end % len;
        if *cursor == 0 {
            entry.stale = true;
        }
        Ok((entry.tenants[start..end].to_vec(), len))
    }

    /// Reads up to `max` entries from `streams`, an equal share from each; tenants whose
    /// share was full are read again for what is left, so a batch fills up when few
    /// tenants have work.
    async fn read_fair(
        &self,
        conn: &mut Connection,
        prefix: &str,
        streams: &[String],
        consumer: &ConsumerName,
        max: usize,
        own_pending: bool,
    ) -> Result<Vec<Delivery>> {
        let mut per_tenant: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
        let mut open: Vec<String> = streams.to_vec();
        let mut got = 0usize;
        // Own-pending reads restart from the beginning of the pending list each time, so
        // they are read once.
        for _ in 0..if own_pending { 1 } else { READ_ROUNDS } {
            if open.is_empty() || got >= max {
                break;
            }
            // Never read more than `max` in total: what is read becomes pending here.
            open.truncate(max - got);
            let share = (max - got) / open.len();
            let reply = self
                .read_window(conn, &open, consumer, share, own_pending)
                .await?;
            let mut full = Vec::new();
            for key in reply.keys {
                let tenant = tenant_of(&key.key, prefix)?;
                if key.ids.len() >= share {
                    full.push(key.key.clone());
                }
                let mut ghosts = Vec::new();
                let mut batch = Vec::new();
                for entry in &key.ids {
                    match envelope_of(entry) {
                        // Deleted while pending: nothing to deliver, clear it from the PEL.
                        None => ghosts.push(entry.id.clone()),
                        Some(envelope) => batch.push(Delivery {
                            envelope: envelope?,
                            receipt: Receipt {
                                tenant: tenant.clone(),
                                id: entry.id.clone(),
                            },
                            deliveries: 1,
                        }),
                    }
                }
                self.ack_ghosts(conn, &key.key, &ghosts).await?;
                if own_pending && !batch.is_empty() {
                    let ids: Vec<&str> = batch.iter().map(|d| d.receipt.id.as_str()).collect();
                    let counts = self.delivery_counts(conn, &key.key, &ids).await?;
                    for delivery in &mut batch {
                        delivery.deliveries =
                            counts.get(&delivery.receipt.id).copied().unwrap_or(1);
                    }
                }
                got += batch.len();
                per_tenant.entry(key.key).or_default().extend(batch);
            }
            open = full;
        }
        // Rank 1 of each tenant, then rank 2, ...
        Ok(interleave(per_tenant.into_values().collect(), max))
    }

    async fn read_window(
        &self,
        conn: &mut Connection,
        streams: &[String],
        consumer: &ConsumerName,
        per_stream: usize,
        own_pending: bool,
    ) -> Result<StreamReadReply> {
        let read = || {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(GROUP)
                .arg(consumer.as_str())
                .arg("COUNT")
                .arg(per_stream)
                .arg("STREAMS")
                .arg(streams);
            for _ in streams {
                cmd.arg(if own_pending { "0" } else { ">" });
            }
            cmd
        };
        match read().query_async::<Option<StreamReadReply>>(conn).await {
            Ok(reply) => Ok(reply.unwrap_or_default()),
            Err(err) if err.code() == Some("NOGROUP") => {
                self.ensure_groups(conn, streams).await?;
                read()
                    .query_async::<Option<StreamReadReply>>(conn)
                    .await
                    .map(Option::unwrap_or_default)
                    .map_err(|err| self.err(err))
            }
            Err(err) => Err(self.err(err)),
        }
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> StoreError {
    StoreError::Backend {
        backend: Backend::Valkey,
        reason: "mailbox rotation lock poisoned".into(),
    }
}

/// Interleaves per-tenant batches (rank 1 of each tenant, then rank 2, ...) and keeps
/// `max`, so the batch is fair even when the window returned more.
fn interleave(mut per_tenant: Vec<Vec<Delivery>>, max: usize) -> Vec<Delivery> {
    let mut out = Vec::new();
    for batch in &mut per_tenant {
        batch.reverse();
    }
    while out.len() < max {
        let mut took = false;
        for batch in &mut per_tenant {
            if out.len() >= max {
                break;
            }
            if let Some(delivery) = batch.pop() {
                out.push(delivery);
                took = true;
            }
        }
        if !took {
            break;
        }
    }
    out
}
