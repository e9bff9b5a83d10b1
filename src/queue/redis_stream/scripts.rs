//! Lua scripts: each runs atomically in Redis, so a job is never in two places or in none.

use std::sync::LazyLock;

use redis::Script;

/// Moves due retries back into the stream. KEYS: retry set, stream. ARGV: now (ms), batch.
/// A member is the 8-byte seq of the job it came from, then the job record.
/// Returns {moved, score of the next member or ""}.
pub(super) static MOVE_DUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'j', string.sub(member, 9))
  redis.call('ZREM', KEYS[1], member)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, next[2] or ''}
",
    )
});

/// Puts a dead letter back into the stream if it is still the one read. KEYS: dead hash,
/// dead order, stream. ARGV: event id, dead record as read, job record. Returns 1 if moved.
pub(super) static REVIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'j', ARGV[3])
return 1
",
    )
});

/// At a graceful stop: puts every entry leased to this consumer back at the tail of the stream
/// (same fields, new id), then removes the consumer from the group once it holds nothing.
/// KEYS: stream. ARGV: group, consumer, batch. Returns how many entries went back.
pub(super) static RETURN_LEASES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[3]), ARGV[2])
local returned = 0
for _, p in ipairs(pending) do
  local entry = redis.call('XRANGE', KEYS[1], p[1], p[1])
  if entry[1] then
    redis.call('XADD', KEYS[1], '*', unpack(entry[1][2]))
    returned = returned + 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], p[1])
  redis.call('XDEL', KEYS[1], p[1])
end
if #pending < tonumber(ARGV[3]) then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return returned
",
    )
});
