//! A job's `seq` is its stream id `<ms>-<n>` packed into a u64: increasing in stream order,
//! and reversible, so acking needs nothing but the job.

use crate::redis_conn::RedisError;

/// Bits of a job's `seq` that hold the sequence part of its stream id.
pub(super) const SEQ_BITS: u32 = 20;

/// A job's `seq` from its stream id `<ms>-<n>`: increasing in stream order, and reversible.
pub(super) fn seq_of(id: &str) -> Result<u64, RedisError> {
    let bad = || RedisError::Reply(format!("stream id {id:?}"));
    let (ms, n) = id.split_once('-').ok_or_else(bad)?;
    let (ms, n): (u64, u64) = (
        ms.parse().map_err(|_| bad())?,
        n.parse().map_err(|_| bad())?,
    );
    if n >= 1 << SEQ_BITS || ms >= 1 << (64 - SEQ_BITS) {
        return Err(bad());
    }
    Ok(ms << SEQ_BITS | n)
}

/// The stream id a `seq` came from.
pub(super) fn id_of(seq: u64) -> String {
    format!("{}-{}", seq >> SEQ_BITS, seq & ((1 << SEQ_BITS) - 1))
}
