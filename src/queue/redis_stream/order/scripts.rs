//! The Lua scripts of ordered delivery. Each runs atomically on one shard of one lane, so two
//! replicas can never both let an event of one key into the stream.
//!
//! A key's state lives in four keys of the lane's shard (see `super`): `order` (key → `"lo hi"`,
//! or `"lo hi <dead id>"` while a dead letter blocks it), `order-wait` (field `"<i>:<key>"`, lo ≤ i
//! < hi, → the record of a held event), `order-waiting` (the keys with held events) and
//! `order-blocked` (blocked keys scored by when they were blocked). A key with an `order` field
//! has exactly one head: a stream entry (queued or leased), a retry, or the dead letter blocking
//! it. Every script declares every key it touches: none is built inside Lua.

use std::sync::LazyLock;

use redis::Script;

/// The functions the scripts share. `O`, `W`, `H` are the `order`, `order-wait` and
/// `order-waiting` keys of the script's lane shard, `S` its stream.
const LIB: &str = r"
local function state(O, k)
  local v = redis.call('HGET', O, k)
  if not v then return nil end
  local lo, hi, by = string.match(v, '^(%d+) (%d+) ?(.*)$')
  return tonumber(lo), tonumber(hi), by
end
local function put(O, k, lo, hi, by)
  local v = lo .. ' ' .. hi
  if by ~= '' then v = v .. ' ' .. by end
  redis.call('HSET', O, k, v)
end
-- job becomes k's next event: its head (a stream entry) if k is idle, else held at its tail.
-- Returns the entry id, or '' when held.
local function push(S, O, W, H, k, job)
  local lo, hi, by = state(O, k)
  if not lo then
    redis.call('HSET', O, k, '0 0')
    return redis.call('XADD', S, '*', 'j', job)
  end
  redis.call('HSET', W, hi .. ':' .. k, job)
  redis.call('SADD', H, k)
  put(O, k, lo, hi + 1, by)
  return ''
end
-- k's head is settled: k's oldest held event enters the stream, or k goes idle.
local function release(S, O, W, H, k)
  local lo, hi = state(O, k)
  if not lo then return end
  while lo < hi do
    local field = lo .. ':' .. k
    local job = redis.call('HGET', W, field)
    redis.call('HDEL', W, field)
    lo = lo + 1
    if job then
      if lo == hi then
        redis.call('SREM', H, k)
        lo, hi = 0, 0
      end
      put(O, k, lo, hi, '')
      redis.call('XADD', S, '*', 'j', job)
      return
    end
  end
  redis.call('SREM', H, k)
  redis.call('HDEL', O, k)
end
";

fn with_lib(body: &str) -> Script {
    Script::new(&format!("{LIB}{body}"))
}

/// Enqueues the events of one shard. KEYS: per event its lane's stream, order, order-wait,
/// order-waiting. ARGV: per event "1" (ordered) or "0", its key, its job record. Returns per
/// event its stream entry id, or "" for one held behind an earlier event of its key.
pub(super) static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    with_lib(
        r"
local out = {}
for i = 1, #ARGV / 3 do
  local S, ordered, k, job = KEYS[4 * i - 3], ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  if ordered == '1' then
    out[i] = push(S, KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i], k, job)
  else
    out[i] = redis.call('XADD', S, '*', 'j', job)
  end
end
return out
",
    )
});

/// Settles the head of a key, if its entry is still leased (a second settle of the same entry,
/// by a replica that took it over, must not release the key twice).
/// KEYS: stream, order, order-wait, order-waiting, order-blocked, retry, dead, dead-order.
/// ARGV: group, entry id, key, then `ack`; `retry`, due, member; or `release`|`block`, event id,
/// dead record, time of death. A retry keeps the key; a block holds it; the others release it.
/// Returns 1 if settled, 0 if the entry was no longer leased.
pub(super) static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    with_lib(
        r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
local k, how = ARGV[3], ARGV[4]
if how == 'retry' then
  redis.call('ZADD', KEYS[6], ARGV[5], ARGV[6])
  return 1
end
if how ~= 'ack' then
  local id, at = ARGV[5], ARGV[7]
  redis.call('HSET', KEYS[7], id, ARGV[6])
  redis.call('ZADD', KEYS[8], at, id)
  if how == 'block' then
    local lo, hi = state(KEYS[2], k)
    put(KEYS[2], k, lo or 0, hi or 0, id)
    redis.call('ZADD', KEYS[5], at, k)
    return 1
  end
end
release(KEYS[1], KEYS[2], KEYS[3], KEYS[4], k)
return 1
",
    )
});

/// Puts an ordered dead letter back, if it is still the one read: first of its key again if it
/// blocks the key, else at the key's tail. KEYS: dead, dead-order, stream, order, order-wait,
/// order-waiting, order-blocked. ARGV: event id, dead record as read, job record, key.
/// Returns 1 if moved.
pub(super) static REVIVE: LazyLock<Script> = LazyLock::new(|| {
    with_lib(
        r"
local id, k = ARGV[1], ARGV[4]
if redis.call('HGET', KEYS[1], id) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
local lo, hi, by = state(KEYS[4], k)
if lo and by == id then
  put(KEYS[4], k, lo, hi, '')
  redis.call('ZREM', KEYS[7], k)
  redis.call('XADD', KEYS[3], '*', 'j', ARGV[3])
else
  push(KEYS[3], KEYS[4], KEYS[5], KEYS[6], k, ARGV[3])
end
return 1
",
    )
});

/// Deletes an ordered dead letter; one that blocks its key releases it. KEYS: as `REVIVE`.
/// ARGV: event id, key. Returns 1 if there was one.
pub(super) static PURGE: LazyLock<Script> = LazyLock::new(|| {
    with_lib(
        r"
local id, k = ARGV[1], ARGV[2]
if redis.call('HDEL', KEYS[1], id) == 0 then return 0 end
redis.call('ZREM', KEYS[2], id)
local lo, hi, by = state(KEYS[4], k)
if lo and by == id then
  redis.call('ZREM', KEYS[7], k)
  release(KEYS[3], KEYS[4], KEYS[5], KEYS[6], k)
end
return 1
",
    )
});

/// Deletes every dead letter of a lane shard and releases every key they blocked. KEYS: as
/// `REVIVE`. Returns how many dead letters there were.
pub(super) static PURGE_LANE: LazyLock<Script> = LazyLock::new(|| {
    with_lib(
        r"
local n = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
for _, k in ipairs(redis.call('ZRANGE', KEYS[7], 0, -1)) do
  release(KEYS[3], KEYS[4], KEYS[5], KEYS[6], k)
end
redis.call('DEL', KEYS[7])
return n
",
    )
});

/// Ordering counts of a lane shard. KEYS: order, order-wait, order-waiting, order-blocked.
/// Returns {waiting keys, waiting events, blocked keys, oldest blocked key or '', its time of
/// blocking or '', the dead event blocking it or ''}.
pub(super) static STATS: LazyLock<Script> = LazyLock::new(|| {
    with_lib(
        r"
local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
local k, since, by = oldest[1] or '', oldest[2] or '', ''
if k ~= '' then
  local lo, hi, id = state(KEYS[1], k)
  by = id or ''
end
return {redis.call('SCARD', KEYS[3]), redis.call('HLEN', KEYS[2]), redis.call('ZCARD', KEYS[4]), k, since, by}
",
    )
});

/// The first held event of each of the `ARGV[1]` longest-blocked keys (the oldest held events:
/// a key that is not blocked has an older head in the stream or the retry set). KEYS: order,
/// order-wait, order-blocked. Returns their job records.
pub(super) static OLDEST_HELD: LazyLock<Script> = LazyLock::new(|| {
    with_lib(
        r"
local out = {}
for _, k in ipairs(redis.call('ZRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1)) do
  local lo, hi = state(KEYS[1], k)
  if lo and lo < hi then
    local job = redis.call('HGET', KEYS[2], lo .. ':' .. k)
    if job then out[#out + 1] = job end
  end
end
return out
",
    )
});
