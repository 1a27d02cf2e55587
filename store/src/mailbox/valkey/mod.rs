//! The mailbox on Valkey Streams.
//!
//! Layout:
//! - `mod.rs`: the adapter, its connection and error handling, the capabilities;
//! - `keys`: key names and the consumer group;
//! - `scripts`: the Lua scripts (every multi-key change is one);
//! - `receive`: the fair receive across tenants (the window rotation).

mod keys;
mod receive;
mod scripts;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_redis::redis;
use deadpool_redis::redis::streams::{
    StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamRangeReply,
};

use self::keys::{Keys, GROUP};
use self::receive::{Rotation, WINDOW};
use self::scripts::Scripts;
use super::{
    name_taken, no_dead_letter, too_many_deliveries, Claimed, ConsumerLease, ConsumerName,
    DeadLetter, DeadLetters, Deliver, Delivery, Envelope, Inspect, MailboxConfig, MailboxStats,
    Receipt, Reclaim, Role,
};
use crate::error::{Backend, Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::{TenantId, Valkey, ValkeyConn as Connection};

/// Entries touched per pipeline at most: a process may hold 100,000 entries, and one
/// pipeline for all of them would build (and hold) tens of megabytes at once.
const TOUCH_CHUNK: usize = 1000;

/// Envelopes per `SEND_MANY` script call at most: a script blocks the server while it
/// runs and holds all its arguments, so a batch of thousands goes in bounded calls (all
/// in one pipeline).
const SEND_CHUNK: usize = 256;

/// Delayed entries moved per `PROMOTE` call: a script blocks the server while it runs,
/// so a large backlog of due entries moves in bounded steps, other clients served
/// between them.
const PROMOTE_BATCH: usize = 500;

/// Tenant streams counted per `stats` pipeline (an XLEN and an XPENDING each): a role
/// with many thousands of tenants does not build one huge pipeline and reply.
const STATS_CHUNK: usize = 256;

/// How long a write waits for the append-only file's fsync before the mailbox reports
/// Valkey unavailable: with `appendfsync everysec` an fsync is due every second, so a
/// wait this long means the disk is stuck, not slow.
const WAITAOF_TIMEOUT: Duration = Duration::from_secs(5);

/// The mailbox on Valkey (or Redis ≥ 7) Streams.
///
/// One stream per role and tenant (the key layout is in `keys.rs`) is what makes
/// dispatch fair: a receive reads a window of tenant streams with a per-stream COUNT, so
/// each tenant gets at most its share of a batch (`receive.rs`).
#[derive(Debug)]
pub struct ValkeyMailbox {
    valkey: Valkey,
    keys: Keys,
    config: MailboxConfig,
    scripts: Scripts,
    rotation: Mutex<BTreeMap<Role, Rotation>>,
    wait_replicas: u32,
    /// Set once the server turns out not to support `WAITAOF` (Redis < 7.2, or
    /// append-only persistence off): sends are then only as durable as its fsync policy.
    no_waitaof: std::sync::atomic::AtomicBool,
}

impl ValkeyMailbox {
    /// `wait_replicas`: how many replicas must have fsynced a write before a send
    /// returns (see `valkey.wait_replicas`).
    pub fn new(valkey: Valkey, key_prefix: &str, config: MailboxConfig) -> Self {
        Self::with_replicas(valkey, key_prefix, config, 0)
    }

    pub fn with_replicas(
        valkey: Valkey,
        key_prefix: &str,
        config: MailboxConfig,
        wait_replicas: u32,
    ) -> Self {
        Self {
            keys: Keys::new(key_prefix, valkey.is_cluster()),
            valkey,
            wait_replicas,
            config,
            scripts: Scripts::new(),
            rotation: Mutex::new(BTreeMap::new()),
            no_waitaof: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Waits until what this connection wrote to the server holding `key` (on a
    /// cluster: the primary of its slot) is fsynced to the append-only file and, with
    /// `wait_replicas`, received by that many replicas, so an entry the caller is told
    /// about (and for instance marks relayed in the outbox) survives a Valkey crash or a
    /// failover.
    async fn wait_durable(&self, conn: &mut Connection, key: &str) -> Result<()> {
        self.wait_fsync(conn, key).await?;
        if self.wait_replicas == 0 {
            return Ok(());
        }
        // WAIT, not WAITAOF's replica count: a replica fsyncs its own file once a second
        // (`appendfsync everysec`), so waiting for that capped sends near one batch a
        // second (510 msgs/s against 30,000, docs/BENCHMARKS.md); WAIT asks the replicas
        // for an immediate acknowledgement of what they received. A failover promotes a
        // replica that holds the entry; losing both at once is what it does not cover.
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.wait_replicas).arg(millis(WAITAOF_TIMEOUT));
        let acked: i64 = conn
            .query_at(key, &cmd)
            .await
            .map_err(|err| self.err(err))?;
        if acked < i64::from(self.wait_replicas) {
            return Err(unavailable(
                self.valkey.url(),
                format!(
                    "{acked} of {} replicas acknowledged the write within {}s (valkey.wait_replicas)",
                    self.wait_replicas,
                    WAITAOF_TIMEOUT.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// `WAITAOF 1 0`: this server's own fsync.
    async fn wait_fsync(&self, conn: &mut Connection, key: &str) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.no_waitaof.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut cmd = redis::cmd("WAITAOF");
        cmd.arg(1).arg(0).arg(millis(WAITAOF_TIMEOUT));
        let reply: redis::RedisResult<Vec<i64>> = conn.query_at(key, &cmd).await;
        match reply {
            Ok(acks) if acks.first() == Some(&1) => Ok(()),
            Ok(_) => Err(unavailable(
                self.valkey.url(),
                format!(
                    "the append-only file was not fsynced within {}s",
                    WAITAOF_TIMEOUT.as_secs()
                ),
            )),
            Err(err)
                if err.kind()
                    == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
            {
                self.no_waitaof.store(true, Ordering::Relaxed);
                tracing::warn!(error = %err, "Valkey cannot confirm fsync (WAITAOF); mailbox writes are as durable as its appendfsync policy");
                Ok(())
            }
            Err(err) => Err(self.err(err)),
        }
    }

    fn dedupe_ttl(&self) -> u64 {
        millis(self.config.dedupe_window)
    }

    async fn conn(&self) -> Result<Connection> {
        self.valkey.conn().await
    }

    fn err(&self, err: redis::RedisError) -> StoreError {
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_timeout()
            || err.is_connection_refusal()
            || matches!(
                err.code(),
                Some("LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "READONLY")
            )
        {
            unavailable(self.valkey.url(), err)
        } else {
            StoreError::Backend {
                backend: Backend::Valkey,
                reason: err.to_string(),
            }
        }
    }

    /// An error of a command on the dead letter `id`.
    fn dead_letter_err(&self, err: redis::RedisError, id: &str) -> StoreError {
        match err.code() {
            // A malformed id is simply not a dead letter.
            Some("ERR") => no_dead_letter(id),
            _ => self.err(err),
        }
    }

    fn send_invocation(
        &self,
        envelope: &Envelope,
        dedupe: bool,
        now: DateTime<Utc>,
    ) -> Result<redis::ScriptInvocation<'_>> {
        let role = &envelope.role;
        let mut invocation = self.scripts.send.prepare_invoke();
        invocation
            .key(self.keys.stream(role, envelope.tenant.as_str()))
            .key(self.keys.tenants(role))
            .key(self.keys.dedupe(envelope))
            .key(self.keys.delayed(role))
            .arg(envelope.tenant.as_str())
            .arg(envelope.to_json()?)
            .arg(if dedupe { self.dedupe_ttl() } else { 0 })
            .arg(to_millis(envelope.not_before))
            .arg(to_millis(now));
        Ok(invocation)
    }

    /// Runs a pipeline of `script` calls; a server that lost its scripts (a restart, or
    /// a replica promoted on a cluster) is given `script` (on a cluster: every primary)
    /// and the pipeline runs again.
    async fn query_scripts<T: redis::FromRedisValue>(
        &self,
        conn: &mut Connection,
        pipe: &redis::Pipeline,
        script: &redis::Script,
    ) -> Result<T> {
        match pipe.query_async(conn).await {
            Ok(replies) => Ok(replies),
            Err(err) if err.code() == Some("NOSCRIPT") => {
                script
                    .prepare_invoke()
                    .load_async(conn)
                    .await
                    .map_err(|err| self.err(err))?;
                pipe.query_async(conn).await.map_err(|err| self.err(err))
            }
            Err(err) => Err(self.err(err)),
        }
    }

    /// Creates the consumer group on each stream that lacks it (a stream recreated after a
    /// Valkey restart without persistence, or written by something else).
    async fn ensure_groups(&self, conn: &mut Connection, streams: &[String]) -> Result<()> {
        for stream in streams {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(conn)
                .await;
            match created {
                Ok(()) => {}
                Err(err) if err.code() == Some("BUSYGROUP") => {}
                Err(err) => return Err(self.err(err)),
            }
        }
        Ok(())
    }

    /// Delivery counts of `ids` in `stream`, from the pending list.
    async fn delivery_counts(
        &self,
        conn: &mut Connection,
        stream: &str,
        ids: &[&str],
    ) -> Result<HashMap<String, u32>> {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING")
                .arg(stream)
                .arg(GROUP)
                .arg(*id)
                .arg(*id)
                .arg(1);
        }
        let replies: Vec<StreamPendingCountReply> =
            pipe.query_async(conn).await.map_err(|err| self.err(err))?;
        Ok(replies
            .into_iter()
            .flat_map(|reply| reply.ids)
            .map(|p| (p.id, u32::try_from(p.times_delivered).unwrap_or(u32::MAX)))
            .collect())
    }

    async fn bury(
        &self,
        conn: &mut Connection,
        delivery: &Delivery,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let role = &delivery.envelope.role;
        self.scripts
            .bury
            .key(self.keys.stream(role, delivery.receipt.tenant.as_str()))
            .key(self.keys.dead(role))
            .arg(&delivery.receipt.id)
            .arg(delivery.envelope.to_json()?)
            .arg(error)
            .arg(delivery.deliveries)
            .arg(to_millis(now))
            .invoke_async::<String>(conn)
            .await
            .map_err(|err| self.err(err))?;
        Ok(())
    }

    async fn ack_ghosts(&self, conn: &mut Connection, stream: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.scripts
            .ack
            .key(stream)
            .arg(ids)
            .invoke_async::<i64>(conn)
            .await
            .map_err(|err| self.err(err))?;
        Ok(())
    }
}

/// A duration in milliseconds, as Valkey takes timeouts and TTLs.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn unavailable(url: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        backend: Backend::Valkey,
        reason: format!("{url}: {err}"),
    }
}

fn envelope_of(entry: &StreamId) -> Option<Result<Envelope>> {
    let text: String = entry.get("e")?;
    Some(Envelope::from_json(&text))
}

#[async_trait]
impl Deliver for ValkeyMailbox {
    async fn send(&self, envelopes: &[Envelope], now: DateTime<Utc>) -> Result<usize> {
        if envelopes.is_empty() {
            return Ok(0);
        }
        // Group by stream, keeping each stream's order; one SEND_MANY call per stream
        // (and chunk), all calls in one pipeline, then one WAITAOF for the whole batch.
        // On a cluster, one pipeline (and WAITAOF) per role: a pipeline's keys must
        // share a slot, and a role's keys do.
        let mut by_stream: BTreeMap<(&Role, &str), Vec<&Envelope>> = BTreeMap::new();
        for envelope in envelopes {
            by_stream
                .entry((&envelope.role, envelope.tenant.as_str()))
                .or_default()
                .push(envelope);
        }
        // (a key of the pipeline's slot, its role, the pipeline)
        let mut pipes: Vec<(String, &Role, redis::Pipeline)> = Vec::new();
        for ((role, tenant), group) in &by_stream {
            let stream = self.keys.stream(role, tenant);
            let same_slot = pipes
                .last()
                .is_some_and(|(_, last, _)| !self.valkey.is_cluster() || last == role);
            if !same_slot {
                pipes.push((stream.clone(), role, redis::pipe()));
            }
            let Some((_, _, pipe)) = pipes.last_mut() else {
                continue;
            };
            for chunk in group.chunks(SEND_CHUNK) {
                let mut invocation = self.scripts.send_many.prepare_invoke();
                invocation
                    .key(&stream)
                    .key(self.keys.tenants(role))
                    .key(self.keys.delayed(role))
                    .arg(*tenant)
                    .arg(self.dedupe_ttl())
                    .arg(to_millis(now));
                for envelope in chunk {
                    invocation
                        .key(self.keys.dedupe(envelope))
                        .arg(envelope.to_json()?)
                        .arg(to_millis(envelope.not_before));
                }
                pipe.invoke_script(&invocation);
            }
        }
        let mut conn = self.conn().await?;
        let mut sent = 0usize;
        for (key, _, pipe) in &pipes {
            let replies: Vec<i64> = self
                .query_scripts(&mut conn, pipe, &self.scripts.send_many)
                .await?;
            sent += usize::try_from(replies.iter().sum::<i64>()).unwrap_or(0);
            self.wait_durable(&mut conn, key).await?;
        }
        Ok(sent)
    }

    async fn receive(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        max: usize,
        own_pending: bool,
        _now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>> {
        self.receive_fair(role, consumer, max, own_pending).await
    }

    async fn ack(&self, role: &Role, receipts: &[Receipt]) -> Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut by_stream: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for receipt in receipts {
            by_stream
                .entry(self.keys.stream(role, receipt.tenant.as_str()))
                .or_default()
                .push(&receipt.id);
        }
        let mut conn = self.conn().await?;
        if self.valkey.is_cluster() {
            // One ACK script call per stream, pipelined: a cluster client cannot follow
            // a MOVED answered inside a MULTI/EXEC (after a failover the transaction
            // would abort again and again), while it redirects a plain pipeline.
            let mut pipe = redis::pipe();
            for (stream, ids) in &by_stream {
                let mut invocation = self.scripts.ack.prepare_invoke();
                invocation.key(stream).arg(ids);
                pipe.invoke_script(&invocation);
            }
            let _: Vec<i64> = self
                .query_scripts(&mut conn, &pipe, &self.scripts.ack)
                .await?;
            return Ok(());
        }
        // XACK + XDEL per stream, every stream of the batch in one MULTI/EXEC: atomic
        // like the ACK script, without a script call's fixed cost per stream (the two
        // commands need no condition between them, so they need no script).
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (stream, ids) in &by_stream {
            pipe.cmd("XACK").arg(stream).arg(GROUP).arg(ids).ignore();
            pipe.cmd("XDEL").arg(stream).arg(ids).ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|err| self.err(err))
    }

    async fn retry_later(
        &self,
        delivery: &Delivery,
        next: &Envelope,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let role = &delivery.envelope.role;
        if self.valkey.is_cluster() && next.role != *role {
            return Err(StoreError::Invalid(format!(
                "a retry goes to its own role on a Valkey Cluster: {role} -> {}",
                next.role
            )));
        }
        let mut conn = self.conn().await?;
        self.scripts
            .retry
            .key(self.keys.stream(role, delivery.receipt.tenant.as_str()))
            .key(self.keys.stream(&next.role, next.tenant.as_str()))
            .key(self.keys.tenants(&next.role))
            .key(self.keys.dedupe(next))
            .key(self.keys.delayed(&next.role))
            .arg(&delivery.receipt.id)
            .arg(next.tenant.as_str())
            .arg(next.to_json()?)
            .arg(self.dedupe_ttl())
            .arg(to_millis(next.not_before))
            .arg(to_millis(now))
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        self.wait_durable(
            &mut conn,
            &self.keys.stream(&next.role, next.tenant.as_str()),
        )
        .await
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        self.bury(&mut conn, delivery, error, now).await?;
        self.wait_durable(&mut conn, &self.keys.dead(&delivery.envelope.role))
            .await
    }
}

#[async_trait]
impl Reclaim for ValkeyMailbox {
    async fn promote_due(&self, role: &Role, now: DateTime<Utc>) -> Result<usize> {
        let mut conn = self.conn().await?;
        let mut moved = 0usize;
        loop {
            let n: usize = self
                .scripts
                .promote
                .key(self.keys.delayed(role))
                .key(self.keys.tenants(role))
                .arg(to_millis(now))
                .arg(PROMOTE_BATCH)
                .arg(self.keys.stream_prefix(role))
                .invoke_async(&mut conn)
                .await
                .map_err(|err| self.err(err))?;
            moved += n;
            if n < PROMOTE_BATCH {
                return Ok(moved);
            }
        }
    }

    async fn claim_abandoned(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        min_idle: Duration,
        max: usize,
        now: DateTime<Utc>,
    ) -> Result<Claimed> {
        let mut conn = self.conn().await?;
        let prefix = self.keys.stream_prefix(role);
        let (tenants, _) = self.window(&mut conn, role, true, WINDOW).await?;
        let idle_ms = millis(min_idle);
        let mut claimed = Claimed::default();
        for tenant in tenants {
            if claimed.deliveries.len() >= max {
                break;
            }
            let stream = format!("{prefix}{tenant}");
            let reply: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
                .arg(&stream)
                .arg(GROUP)
                .arg(consumer.as_str())
                .arg(idle_ms)
                .arg("0-0")
                .arg("COUNT")
                .arg(max - claimed.deliveries.len())
                .query_async(&mut conn)
                .await;
            let reply = match reply {
                Ok(reply) => reply,
                Err(err) if err.code() == Some("NOGROUP") => {
                    self.ensure_groups(&mut conn, std::slice::from_ref(&stream))
                        .await?;
                    continue;
                }
                Err(err) => return Err(self.err(err)),
            };
            if reply.claimed.is_empty() {
                continue;
            }
            let tenant = TenantId::parse(&tenant)?;
            let ids: Vec<&str> = reply.claimed.iter().map(|e| e.id.as_str()).collect();
            let counts = self.delivery_counts(&mut conn, &stream, &ids).await?;
            let mut ghosts = Vec::new();
            for entry in &reply.claimed {
                let Some(envelope) = envelope_of(entry) else {
                    ghosts.push(entry.id.clone());
                    continue;
                };
                let delivery = Delivery {
                    envelope: envelope?,
                    receipt: Receipt {
                        tenant: tenant.clone(),
                        id: entry.id.clone(),
                    },
                    deliveries: counts.get(&entry.id).copied().unwrap_or(1),
                };
                if delivery.deliveries > self.config.max_deliveries {
                    let reason =
                        too_many_deliveries(delivery.deliveries, self.config.max_deliveries);
                    self.bury(&mut conn, &delivery, &reason, now).await?;
                    claimed.dead_lettered.push((delivery.envelope, reason));
                } else {
                    claimed.deliveries.push(delivery);
                }
            }
            self.ack_ghosts(&mut conn, &stream, &ghosts).await?;
        }
        Ok(claimed)
    }

    async fn touch(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        receipts: &[Receipt],
        _now: DateTime<Utc>,
    ) -> Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        for chunk in receipts.chunks(TOUCH_CHUNK) {
            let mut pipe = redis::pipe();
            for receipt in chunk {
                // XCLAIM to ourselves with JUSTID resets the idle time without counting
                // a delivery.
                pipe.cmd("XCLAIM")
                    .arg(self.keys.stream(role, receipt.tenant.as_str()))
                    .arg(GROUP)
                    .arg(consumer.as_str())
                    .arg(0)
                    .arg(&receipt.id)
                    .arg("JUSTID")
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|err| self.err(err))?;
        }
        Ok(())
    }
}

#[async_trait]
impl DeadLetters for ValkeyMailbox {
    async fn replay_dead_letter(&self, role: &Role, id: &str, now: DateTime<Utc>) -> Result<()> {
        let mut conn = self.conn().await?;
        let dead_key = self.keys.dead(role);
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&dead_key)
            .arg(id)
            .arg(id)
            .query_async(&mut conn)
            .await
            .map_err(|err| self.dead_letter_err(err, id))?;
        let Some(entry) = reply.ids.first() else {
            return Err(no_dead_letter(id));
        };
        let fresh = dead_letter_of(entry)?.envelope.replayed(now);
        // Replays bypass deduplication: the original send's key is still remembered.
        self.send_invocation(&fresh, false, now)?
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        redis::cmd("XDEL")
            .arg(&dead_key)
            .arg(id)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        Ok(())
    }

    async fn discard_dead_letter(&self, role: &Role, id: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let removed: i64 = redis::cmd("XDEL")
            .arg(self.keys.dead(role))
            .arg(id)
            .query_async(&mut conn)
            .await
            .map_err(|err| self.dead_letter_err(err, id))?;
        if removed == 0 {
            return Err(no_dead_letter(id));
        }
        Ok(())
    }
}

#[async_trait]
impl ConsumerLease for ValkeyMailbox {
    async fn register(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let ttl = millis(self.config.lease);
        let taken: i64 = self
            .scripts
            .lease
            .key(self.keys.lease(consumer))
            .arg(instance)
            .arg(ttl)
            .invoke_async(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        if taken == 1 {
            Ok(())
        } else {
            Err(name_taken(consumer))
        }
    }

    async fn renew(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        self.register(consumer, instance).await
    }

    async fn unregister(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        self.scripts
            .release
            .key(self.keys.lease(consumer))
            .arg(instance)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        Ok(())
    }
}

#[async_trait]
impl Inspect for ValkeyMailbox {
    fn kind(&self) -> &'static str {
        "valkey"
    }

    async fn ping(&self) -> Result<()> {
        self.valkey.ping().await
    }

    async fn stats(&self, role: &Role, now: DateTime<Utc>) -> Result<MailboxStats> {
        let mut conn = self.conn().await?;
        let tenants: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.tenants(role))
            .query_async(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        let mut stats = MailboxStats::default();
        let now_ms = u64::try_from(to_millis(now)).unwrap_or(0);
        let mut by_tenant: Vec<(TenantId, u64)> = Vec::new();
        for chunk in tenants.chunks(STATS_CHUNK) {
            let mut pipe = redis::pipe();
            for tenant in chunk {
                let stream = self.keys.stream(role, tenant);
                pipe.cmd("XLEN").arg(&stream);
                pipe.cmd("XPENDING").arg(&stream).arg(GROUP);
                pipe.cmd("XINFO").arg("GROUPS").arg(&stream);
            }
            let replies: Vec<redis::Value> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|err| self.err(err))?;
            // The oldest ready entry of each tenant stream: the first after the group's
            // last delivered id; its id's milliseconds are when it was appended (sent,
            // or promoted when due).
            let mut oldest = redis::pipe();
            let mut asked = 0usize;
            for (tenant, triple) in chunk.iter().zip(replies.chunks(3)) {
                if let Some(last) = last_delivered_id(&triple[2]) {
                    oldest
                        .cmd("XRANGE")
                        .arg(self.keys.stream(role, tenant))
                        .arg(format!("({last}"))
                        .arg("+")
                        .arg("COUNT")
                        .arg(1);
                    asked += 1;
                }
            }
            if asked > 0 {
                let firsts: Vec<StreamRangeReply> = oldest
                    .query_async(&mut conn)
                    .await
                    .map_err(|err| self.err(err))?;
                for first in firsts.iter().filter_map(|r| r.ids.first()) {
                    let appended: u64 = first
                        .id
                        .split('-')
                        .next()
                        .and_then(|ms| ms.parse().ok())
                        .unwrap_or(now_ms);
                    stats.oldest_ready_ms =
                        stats.oldest_ready_ms.max(now_ms.saturating_sub(appended));
                }
            }
            for (tenant, pair) in chunk.iter().zip(replies.chunks(3)) {
                let len: u64 = redis::from_redis_value(pair[0].clone()).unwrap_or(0);
                // XPENDING summary: [count, smallest id, greatest id, consumers]; an error
                // reply (no group yet) counts as nothing pending.
                let pending: u64 = match &pair[1] {
                    redis::Value::Array(items) => items
                        .first()
                        .and_then(|v| redis::from_redis_value(v.clone()).ok())
                        .unwrap_or(0),
                    _ => 0,
                };
                stats.pending += pending;
                // Acknowledged entries are deleted, so the stream holds ready + pending.
                let ready = len.saturating_sub(pending);
                stats.ready += ready;
                if ready > 0 {
                    if let Ok(tenant) = TenantId::parse(tenant) {
                        by_tenant.push((tenant, ready));
                    }
                }
            }
            // Bounded while counting: a role with many thousands of tenants keeps a few.
            if by_tenant.len() > 4 * super::BUSIEST_TENANTS {
                by_tenant = super::busiest(by_tenant);
            }
        }
        let (delayed, dead): (u64, u64) = redis::pipe()
            .cmd("ZCARD")
            .arg(self.keys.delayed(role))
            .cmd("XLEN")
            .arg(self.keys.dead(role))
            .query_async(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        stats.delayed = delayed;
        stats.dead = dead;
        stats.busiest = super::busiest(by_tenant);
        Ok(stats)
    }

    async fn dead_letters(&self, role: &Role, limit: usize) -> Result<Vec<DeadLetter>> {
        let mut conn = self.conn().await?;
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys.dead(role))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        reply.ids.iter().map(dead_letter_of).collect()
    }
}

/// The `last-delivered-id` of the consumer group in an `XINFO GROUPS` reply (a list of
/// groups, each a flat key/value list or a map); `None` for an error reply (no stream or
/// no group yet: nothing ready to age).
fn last_delivered_id(reply: &redis::Value) -> Option<String> {
    let redis::Value::Array(groups) = reply else {
        return None;
    };
    for group in groups {
        let pairs: Vec<(&redis::Value, &redis::Value)> = match group {
            redis::Value::Array(items) => items
                .chunks(2)
                .filter_map(|kv| Some((kv.first()?, kv.get(1)?)))
                .collect(),
            redis::Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
            _ => continue,
        };
        let text = |v: &redis::Value| redis::from_redis_value::<String>(v.clone()).ok();
        let name = pairs
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some("name"));
        if name.and_then(|(_, v)| text(v)).as_deref() != Some(GROUP) {
            continue;
        }
        return pairs
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some("last-delivered-id"))
            .and_then(|(_, v)| text(v));
    }
    None
}

fn dead_letter_of(entry: &StreamId) -> Result<DeadLetter> {
    let envelope = envelope_of(entry).ok_or_else(|| {
        StoreError::Corrupt(format!("dead letter {} has no envelope", entry.id))
    })??;
    let died_at: i64 = entry.get("died_at").unwrap_or(0);
    Ok(DeadLetter {
        id: entry.id.clone(),
        envelope,
        error: entry.get("error").unwrap_or_default(),
        deliveries: entry.get("deliveries").unwrap_or(0),
        died_at: from_millis(died_at),
    })
}
