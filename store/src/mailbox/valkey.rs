use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_redis::redis::streams::{
    StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamRangeReply, StreamReadReply,
};
use deadpool_redis::redis::{self, Script};
use deadpool_redis::Connection;

use super::{
    too_many_deliveries, Claimed, ConsumerName, DeadLetter, Delivery, Envelope, Mailbox,
    MailboxConfig, MailboxStats, Receipt, Role,
};
use crate::error::{Backend, Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::{TenantId, Valkey};

/// The one consumer group of every stream: a stream belongs to one role already.
const GROUP: &str = "stella";
/// Tenant streams read in one XREADGROUP; the rotation covers every tenant in turn.
const WINDOW: usize = 64;

/// The body shared by [`SEND`] and [`RETRY`]: drops a duplicate, parks a future entry in
/// the delay set, otherwise appends it to its tenant's stream (creating stream and group
/// on first use). Uses KEYS[S], KEYS[S+1], KEYS[S+2], KEYS[S+3] = stream, tenants set,
/// dedupe key, delayed set and ARGV[A]..ARGV[A+4] = tenant, envelope, dedupe ttl ms
/// (0 = none), not_before ms, now ms, with `S` and `A` set by the caller.
macro_rules! send_body {
    () => {
        r#"
if tonumber(ARGV[A + 2]) > 0 then
  if not redis.call('SET', KEYS[S + 2], '1', 'NX', 'PX', ARGV[A + 2]) then return 0 end
end
if tonumber(ARGV[A + 3]) > tonumber(ARGV[A + 4]) then
  redis.call('ZADD', KEYS[S + 3], ARGV[A + 3], ARGV[A] .. '|' .. ARGV[A + 1])
else
  if redis.call('EXISTS', KEYS[S]) == 0 then
    redis.call('XGROUP', 'CREATE', KEYS[S], 'stella', '0', 'MKSTREAM')
  end
  redis.call('XADD', KEYS[S], '*', 'e', ARGV[A + 1])
end
redis.call('SADD', KEYS[S + 1], ARGV[A])
return 1
"#
    };
}

/// Sends one envelope (see [`send_body!`]).
const SEND: &str = concat!("local S, A = 1, 1\n", send_body!());

/// Sends many envelopes of one (role, tenant) stream in one call: the body of
/// [`send_body!`] in a loop, so a batch costs one script call per tenant stream instead
/// of one per envelope (a script call's fixed cost dominates an XADD's).
/// KEYS: stream, tenants set, delayed set, then one dedupe key per envelope;
/// ARGV: tenant, dedupe ttl ms (0 = none), now ms, then (envelope, not_before ms) per
/// envelope. Returns how many were new.
const SEND_MANY: &str = r#"
local ttl, now = tonumber(ARGV[2]), tonumber(ARGV[3])
local sent, ready = 0, false
for i = 4, #KEYS do
  local a = 4 + (i - 4) * 2
  if ttl <= 0 or redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[2]) then
    local due = tonumber(ARGV[a + 1])
    if due > now then
      redis.call('ZADD', KEYS[3], due, ARGV[1] .. '|' .. ARGV[a])
    else
      if not ready and redis.call('EXISTS', KEYS[1]) == 0 then
        redis.call('XGROUP', 'CREATE', KEYS[1], 'stella', '0', 'MKSTREAM')
      end
      ready = true
      redis.call('XADD', KEYS[1], '*', 'e', ARGV[a])
    end
    sent = sent + 1
  end
end
if sent > 0 then redis.call('SADD', KEYS[2], ARGV[1]) end
return sent
"#;

/// Entries touched per pipeline at most.
const TOUCH_CHUNK: usize = 1000;

/// Envelopes per [`SEND_MANY`] call at most.
const SEND_CHUNK: usize = 256;

/// Acknowledges entries and deletes them from their stream, so acknowledged entries never
/// accumulate and trimming can never touch an unacknowledged one. Used for ghost entries;
/// `ack` sends the same two commands in a MULTI/EXEC.
const ACK: &str = r#"
-- KEYS: stream; ARGV: ids
redis.call('XACK', KEYS[1], 'stella', unpack(ARGV))
return redis.call('XDEL', KEYS[1], unpack(ARGV))
"#;

/// Acknowledges an entry and records it as a dead letter, atomically.
const BURY: &str = r#"
-- KEYS: stream, dead stream; ARGV: id, envelope, error, deliveries, died_at ms
redis.call('XACK', KEYS[1], 'stella', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return redis.call('XADD', KEYS[2], '*', 'e', ARGV[2], 'error', ARGV[3], 'deliveries', ARGV[4], 'died_at', ARGV[5])
"#;

/// Acknowledges an entry and schedules its next attempt, atomically.
/// KEYS: stream, then the send keys; ARGV: id, then the send arguments.
const RETRY: &str = concat!(
    "redis.call('XACK', KEYS[1], 'stella', ARGV[1])\n",
    "redis.call('XDEL', KEYS[1], ARGV[1])\n",
    "local S, A = 2, 2\n",
    send_body!()
);

/// Moves due entries from the delay set into their tenant streams, atomically per call.
const PROMOTE: &str = r#"
-- KEYS: delayed zset, tenants set; ARGV: now ms, limit, stream key prefix
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local sep = string.find(member, '|', 1, true)
  local tenant = string.sub(member, 1, sep - 1)
  local stream = ARGV[3] .. tenant
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, 'stella', '0', 'MKSTREAM')
  end
  redis.call('XADD', stream, '*', 'e', string.sub(member, sep + 1))
  redis.call('SADD', KEYS[2], tenant)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"#;

/// Takes a consumer-name lease, or renews it if this instance holds it.
const LEASE: &str = r#"
-- KEYS: lease key; ARGV: instance, ttl ms
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// The mailbox on Valkey (or Redis ≥ 7) Streams.
///
/// Keys, under the configured prefix `P`:
/// - `P:mb:<role>:t:<tenant>`: one stream per role and tenant, consumer group `stella`;
/// - `P:mb:<role>:tenants`: the set of tenants that have a stream for the role;
/// - `P:mb:<role>:delayed`: delayed entries, scored by due time;
/// - `P:mb:<role>:dead`: the dead-letter stream;
/// - `P:mb:dedupe:<tenant>:<role>:<key>:<attempt>`: recently sent messages;
/// - `P:consumer:<name>`: consumer-name leases.
///
/// One stream per tenant is what makes dispatch fair: a receive reads a window of tenant
/// streams with a per-stream COUNT, so each tenant gets at most its share of a batch.
#[derive(Debug)]
pub struct ValkeyMailbox {
    valkey: Valkey,
    prefix: String,
    config: MailboxConfig,
    scripts: Scripts,
    rotation: Mutex<BTreeMap<Role, Rotation>>,
    /// Set once the server turns out not to support `WAITAOF` (Redis < 7.2, or
    /// append-only persistence off): sends are then only as durable as its fsync policy.
    no_waitaof: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Scripts {
    send: Script,
    send_many: Script,
    ack: Script,
    bury: Script,
    retry: Script,
    promote: Script,
    lease: Script,
    release: Script,
}

/// Where a role's reads and claims are in the tenant list.
#[derive(Debug, Default)]
struct Rotation {
    tenants: Vec<String>,
    read_at: usize,
    claim_at: usize,
    /// Set at the end of each turn: reload the tenant list before the next window.
    stale: bool,
}

impl ValkeyMailbox {
    pub fn new(valkey: Valkey, key_prefix: &str, config: MailboxConfig) -> Self {
        Self {
            valkey,
            prefix: key_prefix.to_owned(),
            config,
            scripts: Scripts {
                send: Script::new(SEND),
                send_many: Script::new(SEND_MANY),
                ack: Script::new(ACK),
                bury: Script::new(BURY),
                retry: Script::new(RETRY),
                promote: Script::new(PROMOTE),
                lease: Script::new(LEASE),
                release: Script::new(RELEASE),
            },
            rotation: Mutex::new(BTreeMap::new()),
            no_waitaof: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Waits until what this connection wrote is fsynced to the append-only file, so an
    /// entry the caller is told about (and for instance marks relayed in the outbox)
    /// survives a Valkey crash.
    async fn wait_durable(&self, conn: &mut Connection) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.no_waitaof.load(Ordering::Relaxed) {
            return Ok(());
        }
        let reply: redis::RedisResult<Vec<i64>> = redis::cmd("WAITAOF")
            .arg(1)
            .arg(0)
            .arg(5000)
            .query_async(conn)
            .await;
        match reply {
            Ok(acks) if acks.first() == Some(&1) => Ok(()),
            Ok(_) => Err(unavailable(
                self.valkey.url(),
                "the append-only file was not fsynced within 5s",
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

    fn stream_prefix(&self, role: &Role) -> String {
        format!("{}:mb:{role}:t:", self.prefix)
    }

    fn stream(&self, role: &Role, tenant: &str) -> String {
        format!("{}{tenant}", self.stream_prefix(role))
    }

    fn tenants_key(&self, role: &Role) -> String {
        format!("{}:mb:{role}:tenants", self.prefix)
    }

    fn delayed_key(&self, role: &Role) -> String {
        format!("{}:mb:{role}:delayed", self.prefix)
    }

    fn dead_key(&self, role: &Role) -> String {
        format!("{}:mb:{role}:dead", self.prefix)
    }

    fn dedupe_key(&self, envelope: &Envelope) -> String {
        format!(
            "{}:mb:dedupe:{}:{}:{}",
            self.prefix,
            envelope.tenant,
            envelope.role,
            envelope.dedupe_key()
        )
    }

    fn lease_key(&self, consumer: &ConsumerName) -> String {
        format!("{}:consumer:{consumer}", self.prefix)
    }

    fn dedupe_ttl(&self) -> u64 {
        u64::try_from(self.config.dedupe_window.as_millis()).unwrap_or(u64::MAX)
    }

    async fn conn(&self) -> Result<Connection> {
        self.valkey
            .pool()
            .get()
            .await
            .map_err(|err| unavailable(self.valkey.url(), err))
    }

    fn err(&self, err: redis::RedisError) -> StoreError {
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_timeout()
            || err.is_connection_refusal()
            || matches!(err.code(), Some("LOADING" | "TRYAGAIN"))
        {
            unavailable(self.valkey.url(), err)
        } else {
            StoreError::Backend {
                backend: Backend::Valkey,
                reason: err.to_string(),
            }
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
            .key(self.stream(role, envelope.tenant.as_str()))
            .key(self.tenants_key(role))
            .key(self.dedupe_key(envelope))
            .key(self.delayed_key(role))
            .arg(envelope.tenant.as_str())
            .arg(envelope.to_json()?)
            .arg(if dedupe { self.dedupe_ttl() } else { 0 })
            .arg(to_millis(envelope.not_before))
            .arg(to_millis(now));
        Ok(invocation)
    }

    /// Reloads the role's tenant list.
    async fn refresh(&self, conn: &mut Connection, role: &Role) -> Result<bool> {
        let mut tenants: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.tenants_key(role))
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
    async fn window(
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
        for _ in 0..if own_pending { 1 } else { 4 } {
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
            .key(self.stream(role, delivery.receipt.tenant.as_str()))
            .key(self.dead_key(role))
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

fn unavailable(url: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        backend: Backend::Valkey,
        reason: format!("{url}: {err}"),
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> StoreError {
    StoreError::Backend {
        backend: Backend::Valkey,
        reason: "mailbox rotation lock poisoned".into(),
    }
}

/// Splits `P:mb:<role>:t:<tenant>` back into the tenant.
fn tenant_of(stream: &str, prefix: &str) -> Result<TenantId> {
    let tenant = stream
        .strip_prefix(prefix)
        .ok_or_else(|| StoreError::Corrupt(format!("unexpected stream key {stream}")))?;
    TenantId::parse(tenant)
}

fn envelope_of(entry: &StreamId) -> Option<Result<Envelope>> {
    let text: String = entry.get("e")?;
    Some(Envelope::from_json(&text))
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

#[async_trait]
impl Mailbox for ValkeyMailbox {
    fn kind(&self) -> &'static str {
        "valkey"
    }

    async fn send(&self, envelopes: &[Envelope], now: DateTime<Utc>) -> Result<usize> {
        if envelopes.is_empty() {
            return Ok(0);
        }
        // Group by stream, keeping each stream's order; one SEND_MANY call per stream
        // (and chunk), all calls in one pipeline, then one WAITAOF for the whole batch.
        let mut by_stream: BTreeMap<(&Role, &str), Vec<&Envelope>> = BTreeMap::new();
        for envelope in envelopes {
            by_stream
                .entry((&envelope.role, envelope.tenant.as_str()))
                .or_default()
                .push(envelope);
        }
        let mut pipe = redis::pipe();
        for ((role, tenant), group) in &by_stream {
            for chunk in group.chunks(SEND_CHUNK) {
                let mut invocation = self.scripts.send_many.prepare_invoke();
                invocation
                    .key(self.stream(role, tenant))
                    .key(self.tenants_key(role))
                    .key(self.delayed_key(role))
                    .arg(*tenant)
                    .arg(self.dedupe_ttl())
                    .arg(to_millis(now));
                for envelope in chunk {
                    invocation
                        .key(self.dedupe_key(envelope))
                        .arg(envelope.to_json()?)
                        .arg(to_millis(envelope.not_before));
                }
                pipe.invoke_script(&invocation);
            }
        }
        let mut conn = self.conn().await?;
        let replies: Vec<i64> = match pipe.query_async(&mut conn).await {
            Ok(replies) => replies,
            Err(err) if err.code() == Some("NOSCRIPT") => {
                self.scripts
                    .send_many
                    .prepare_invoke()
                    .load_async(&mut conn)
                    .await
                    .map_err(|err| self.err(err))?;
                pipe.query_async(&mut conn)
                    .await
                    .map_err(|err| self.err(err))?
            }
            Err(err) => return Err(self.err(err)),
        };
        let sent = usize::try_from(replies.iter().sum::<i64>()).unwrap_or(0);
        self.wait_durable(&mut conn).await?;
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
        let max = max.max(1);
        let mut conn = self.conn().await?;
        let prefix = self.stream_prefix(role);
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

    async fn ack(&self, role: &Role, receipts: &[Receipt]) -> Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut by_stream: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for receipt in receipts {
            by_stream
                .entry(self.stream(role, receipt.tenant.as_str()))
                .or_default()
                .push(&receipt.id);
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
        let mut conn = self.conn().await?;
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
        let mut conn = self.conn().await?;
        self.scripts
            .retry
            .key(self.stream(role, delivery.receipt.tenant.as_str()))
            .key(self.stream(&next.role, next.tenant.as_str()))
            .key(self.tenants_key(&next.role))
            .key(self.dedupe_key(next))
            .key(self.delayed_key(&next.role))
            .arg(&delivery.receipt.id)
            .arg(next.tenant.as_str())
            .arg(next.to_json()?)
            .arg(self.dedupe_ttl())
            .arg(to_millis(next.not_before))
            .arg(to_millis(now))
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        self.wait_durable(&mut conn).await
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        self.bury(&mut conn, delivery, error, now).await?;
        self.wait_durable(&mut conn).await
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
        let prefix = self.stream_prefix(role);
        let (tenants, _) = self.window(&mut conn, role, true, WINDOW).await?;
        let idle_ms = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
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
        // In pipelines of a bounded size: a process may hold 100,000 entries, and one
        // pipeline for all of them would build (and hold) tens of megabytes of commands
        // and replies at once.
        for chunk in receipts.chunks(TOUCH_CHUNK) {
            let mut pipe = redis::pipe();
            for receipt in chunk {
                // XCLAIM to ourselves with JUSTID resets the idle time without counting
                // a delivery.
                pipe.cmd("XCLAIM")
                    .arg(self.stream(role, receipt.tenant.as_str()))
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

    async fn promote_due(&self, role: &Role, now: DateTime<Utc>) -> Result<usize> {
        let mut conn = self.conn().await?;
        let mut moved = 0usize;
        loop {
            let n: usize = self
                .scripts
                .promote
                .key(self.delayed_key(role))
                .key(self.tenants_key(role))
                .arg(to_millis(now))
                .arg(500)
                .arg(self.stream_prefix(role))
                .invoke_async(&mut conn)
                .await
                .map_err(|err| self.err(err))?;
            moved += n;
            if n < 500 {
                return Ok(moved);
            }
        }
    }

    async fn stats(&self, role: &Role, _now: DateTime<Utc>) -> Result<MailboxStats> {
        let mut conn = self.conn().await?;
        let tenants: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.tenants_key(role))
            .query_async(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        let mut stats = MailboxStats::default();
        for chunk in tenants.chunks(256) {
            let mut pipe = redis::pipe();
            for tenant in chunk {
                let stream = self.stream(role, tenant);
                pipe.cmd("XLEN").arg(&stream);
                pipe.cmd("XPENDING").arg(&stream).arg(GROUP);
            }
            let replies: Vec<redis::Value> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|err| self.err(err))?;
            for pair in replies.chunks(2) {
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
                stats.ready += len.saturating_sub(pending);
            }
        }
        let (delayed, dead): (u64, u64) = redis::pipe()
            .cmd("ZCARD")
            .arg(self.delayed_key(role))
            .cmd("XLEN")
            .arg(self.dead_key(role))
            .query_async(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        stats.delayed = delayed;
        stats.dead = dead;
        Ok(stats)
    }

    async fn dead_letters(&self, role: &Role, limit: usize) -> Result<Vec<DeadLetter>> {
        let mut conn = self.conn().await?;
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.dead_key(role))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        reply.ids.iter().map(dead_letter_of).collect()
    }

    async fn replay_dead_letter(&self, role: &Role, id: &str, now: DateTime<Utc>) -> Result<()> {
        let mut conn = self.conn().await?;
        let dead_key = self.dead_key(role);
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&dead_key)
            .arg(id)
            .arg(id)
            .query_async(&mut conn)
            .await
            .map_err(|err| match err.code() {
                // A malformed id is simply not a dead letter.
                Some("ERR") => StoreError::NotFound(format!("dead letter {id}")),
                _ => self.err(err),
            })?;
        let Some(entry) = reply.ids.first() else {
            return Err(StoreError::NotFound(format!("dead letter {id}")));
        };
        let letter = dead_letter_of(entry)?;
        let mut fresh = letter.envelope.next_attempt(now, now);
        fresh.attempt = 0;
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
            .arg(self.dead_key(role))
            .arg(id)
            .query_async(&mut conn)
            .await
            .map_err(|err| match err.code() {
                // A malformed id is simply not a dead letter.
                Some("ERR") => StoreError::NotFound(format!("dead letter {id}")),
                _ => self.err(err),
            })?;
        if removed == 0 {
            return Err(StoreError::NotFound(format!("dead letter {id}")));
        }
        Ok(())
    }

    async fn register(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let ttl = u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX);
        let taken: i64 = self
            .scripts
            .lease
            .key(self.lease_key(consumer))
            .arg(instance)
            .arg(ttl)
            .invoke_async(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        if taken == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "consumer name {consumer} is held by a live process"
            )))
        }
    }

    async fn renew(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        self.register(consumer, instance).await
    }

    async fn unregister(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        self.scripts
            .release
            .key(self.lease_key(consumer))
            .arg(instance)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(|err| self.err(err))?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.valkey.ping().await
    }
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
