//! The Lua scripts: every change to more than one key is one script, so it is atomic.
//!
//! Every stream script starts with the prelude built by [`prelude`]: the consumer group's
//! name, taken from [`GROUP`] so it is written once, and the two steps several scripts
//! share.

use deadpool_redis::redis::Script;

use super::keys::GROUP;

/// Lua helpers after `local GROUP = '<GROUP>'`:
/// - `ensure_group(stream)` creates the stream and its consumer group unless the stream
///   exists;
/// - `ack(stream, id...)` acknowledges entries and deletes them from their stream, so
///   acknowledged entries never accumulate and trimming can never touch an
///   unacknowledged one; returns how many were deleted.
const HELPERS: &str = r#"
local function ensure_group(stream)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM')
  end
end
local function ack(stream, ...)
  redis.call('XACK', stream, GROUP, ...)
  return redis.call('XDEL', stream, ...)
end
"#;

fn prelude() -> String {
    format!("local GROUP = '{GROUP}'\n{HELPERS}")
}

/// The body shared by [`SEND`] and [`RETRY`]: drops a duplicate, parks a future entry in
/// the delay set, otherwise appends it to its tenant's stream (creating stream and group
/// on first use). Uses `KEYS[S]`, `KEYS[S+1]`, `KEYS[S+2]`, `KEYS[S+3]` = stream, tenants
/// set, dedupe key, delayed set and `ARGV[A]..ARGV[A+4]` = tenant, envelope, dedupe ttl
/// ms (0 = none), not_before ms, now ms, with `S` and `A` set by the caller.
macro_rules! send_body {
    () => {
        r#"
if tonumber(ARGV[A + 2]) > 0 then
  if not redis.call('SET', KEYS[S + 2], '1', 'NX', 'PX', ARGV[A + 2]) then return 0 end
end
if tonumber(ARGV[A + 3]) > tonumber(ARGV[A + 4]) then
  redis.call('ZADD', KEYS[S + 3], ARGV[A + 3], ARGV[A] .. '|' .. ARGV[A + 1])
else
  ensure_group(KEYS[S])
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
      if not ready then
        ensure_group(KEYS[1])
        ready = true
      end
      redis.call('XADD', KEYS[1], '*', 'e', ARGV[a])
    end
    sent = sent + 1
  end
end
if sent > 0 then redis.call('SADD', KEYS[2], ARGV[1]) end
return sent
"#;

/// Acknowledges entries and deletes them: used for ghost entries, and by `ack` on a
/// cluster; `ack` on one server sends the same two commands in a MULTI/EXEC.
const ACK: &str = r#"
-- KEYS: stream; ARGV: ids
return ack(KEYS[1], unpack(ARGV))
"#;

/// Acknowledges an entry and records it as a dead letter, atomically.
const BURY: &str = r#"
-- KEYS: stream, dead stream; ARGV: id, envelope, error, deliveries, died_at ms
ack(KEYS[1], ARGV[1])
return redis.call('XADD', KEYS[2], '*', 'e', ARGV[2], 'error', ARGV[3], 'deliveries', ARGV[4], 'died_at', ARGV[5])
"#;

/// Acknowledges an entry and schedules its next attempt, atomically.
/// KEYS: stream, then the send keys; ARGV: id, then the send arguments.
const RETRY: &str = concat!(
    "ack(KEYS[1], ARGV[1])\n",
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
  ensure_group(stream)
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

/// Gives a consumer-name lease up if this instance holds it.
const RELEASE: &str = r#"
-- KEYS: lease key; ARGV: instance
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

#[derive(Debug)]
pub(super) struct Scripts {
    pub(super) send: Script,
    pub(super) send_many: Script,
    pub(super) ack: Script,
    pub(super) bury: Script,
    pub(super) retry: Script,
    pub(super) promote: Script,
    pub(super) lease: Script,
    pub(super) release: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let prelude = prelude();
        let on_streams = |body: &str| Script::new(&format!("{prelude}{body}"));
        Self {
            send: on_streams(SEND),
            send_many: on_streams(SEND_MANY),
            ack: on_streams(ACK),
            bury: on_streams(BURY),
            retry: on_streams(RETRY),
            promote: on_streams(PROMOTE),
            lease: Script::new(LEASE),
            release: Script::new(RELEASE),
        }
    }
}
