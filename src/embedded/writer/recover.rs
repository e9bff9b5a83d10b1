//! What the writer does after a commit failed on the file itself (a full disk, an I/O error).
//!
//! redb refuses every later operation on that `Database`, so the writer closes it and opens the
//! file again, then proves that writes work with a tiny probe commit. Until the probe commits,
//! storage is unhealthy: every op that arrives is refused at once (the ingress answers 503 and
//! no caller hangs on a full disk), `/readyz` says so and no delivery starts. Attempts back off
//! from `FIRST_BACKOFF` to `MAX_BACKOFF`, so recovery follows the returning space within seconds.

use std::time::{Duration, Instant};

use redb::Durability;
use tokio::sync::mpsc::{self, error::TryRecvError};

use super::Op;
use crate::embedded::slot::Slot;
use crate::embedded::{META, StorageError, now_ms};

/// First wait before reopening; doubles after each failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between two attempts: bounds the delay between space returning and recovery.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often ops that arrived meanwhile are refused.
const POLL: Duration = Duration::from_millis(20);
/// Key in `META` the probe commit writes (the time of the last recovery, ms since the epoch).
const PROBE: &str = "recovered_at";

/// Reopens the database until a probe commits; false once every sender is gone (closing).
pub(super) fn run(slot: &Slot, rx: &mut mpsc::Receiver<Op>) -> bool {
    tracing::error!("storage failing: refusing writes until a reopened database commits");
    let started = Instant::now();
    let mut wait = FIRST_BACKOFF;
    loop {
        if !refuse_for(wait, rx) {
            return false;
        }
        match slot.reopen().and_then(|()| probe(slot)) {
            Ok(()) => break,
            Err(e) => {
                slot.errors.inc("reopen");
                wait = (wait * 2).min(MAX_BACKOFF);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "storage still failing");
            }
        }
    }
    slot.set_healthy(true);
    let after_ms = started.elapsed().as_millis() as u64;
    tracing::info!(after_ms, "storage recovered: writes commit again");
    true
}

/// Refuses every op that arrives during `wait`; false if the channel closed.
fn refuse_for(wait: Duration, rx: &mut mpsc::Receiver<Op>) -> bool {
    let until = Instant::now() + wait;
    while refuse_waiting(rx) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(POLL.min(left));
    }
    false
}

/// Refuses the ops waiting now; false if the channel closed.
fn refuse_waiting(rx: &mut mpsc::Receiver<Op>) -> bool {
    loop {
        match rx.try_recv() {
            Ok(op) => op.finish(Err(StorageError::Unavailable)),
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
}

/// One small durable write: storage is healthy again only once this commits.
fn probe(slot: &Slot) -> Result<(), StorageError> {
    let mut txn = slot.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.open_table(META)?.insert(PROBE, now_ms())?;
    txn.commit()?;
    Ok(())
}
