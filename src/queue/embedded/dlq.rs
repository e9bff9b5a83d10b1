//! Dead letters in the embedded store: kept under (lane, seq at death) so a listing is newest
//! first, with an index by event id so one can be shown, replayed or purged by id.

use redb::{ReadableTable, WriteTransaction};

use super::{EmbeddedQueue, Schedule, put_job, settle};
use crate::embedded::{DEAD, DEAD_IDS, Durable, QUEUE, StorageError, bump_last_seq, now_ms};
use crate::queue::{DeadEvent, Job, record};

impl EmbeddedQueue {
    /// Up to `limit` dead events of `lane`, newest first.
    pub(super) fn dead_list(
        &self,
        lane: &str,
        limit: usize,
    ) -> Result<Vec<DeadEvent>, StorageError> {
        let txn = self.db.read()?;
        let table = txn.open_table(DEAD)?;
        let mut out = Vec::new();
        for entry in table.range((lane, 0)..=(lane, u64::MAX))?.rev().take(limit) {
            let (_, bytes) = entry?;
            out.push(record::decode_dead(bytes.value())?);
        }
        Ok(out)
    }

    /// Lanes with dead letters: one lookup per lane, skipping over each lane's entries.
    pub(super) fn dead_lanes(&self) -> Result<Vec<String>, StorageError> {
        let txn = self.db.read()?;
        let table = txn.open_table(DEAD)?;
        let mut lanes = Vec::new();
        let mut from = String::new();
        loop {
            let Some(entry) = table.range((from.as_str(), 0)..)?.next() else {
                return Ok(lanes);
            };
            let lane = entry?.0.value().0.to_owned();
            // The least string above `lane`: lane names never hold a NUL.
            from = format!("{lane}\0");
            lanes.push(lane);
        }
    }

    /// The dead event of `lane` with event id `id`, if there is one.
    pub(super) fn dead_one(&self, lane: &str, id: &str) -> Result<Option<DeadEvent>, StorageError> {
        let txn = self.db.read()?;
        let Some(seq) = txn
            .open_table(DEAD_IDS)?
            .get((lane, id))?
            .map(|g| g.value())
        else {
            return Ok(None);
        };
        let Some(bytes) = txn.open_table(DEAD)?.get((lane, seq))? else {
            return Ok(None);
        };
        Ok(Some(record::decode_dead(bytes.value())?))
    }

    /// Deletes the job from the queue and files `dead` in one transaction.
    pub(super) async fn move_to_dead(
        &self,
        job: &Job,
        dead: DeadEvent,
    ) -> Result<(), StorageError> {
        let bytes = record::encode_dead(&dead)?;
        let (lane, seq, id) = (job.event.lane(), job.seq, job.event.id.clone());
        let key = lane.clone();
        let hold = dead.holds_key.then(|| (id.clone(), dead.died_at_ms));
        let write = move |txn: &WriteTransaction| {
            txn.open_table(QUEUE)?.remove((key.as_str(), seq))?;
            put_dead(txn, &key, &id, dead.seq, &bytes)
        };
        let hot = self.hot.clone();
        let after = move |s: &Schedule, ok: Option<&()>| {
            if ok.is_some() {
                // A checkpoint, like every fsync'd commit: it stored the job first if only the
                // log held it, and this write removed it again.
                hot.take(&lane, seq);
            }
            match (ok, hold) {
                (Some(()), Some((id, since))) => s.remove_blocking(&lane, seq, &id, since),
                (ok, _) => settle(s, &lane, seq, ok.is_some()),
            }
        };
        // Durable before it is reported, although a crash would only put the job back in the
        // queue: an operator reads the DLQ, and a dead letter that vanishes on a restart (its
        // lane maybe gone from the config) misleads. Rare enough that its fsync costs nothing.
        self.write_then(Durable::Now, write, after).await
    }

    /// Puts `dead` back at the tail of `lane` with attempts reset and the same event ids, in
    /// one transaction; skips any that were purged or replayed meanwhile. Durable when Ok.
    /// One that held its key goes back under its old seq, first of its key, and frees the key.
    pub(super) async fn revive(
        &self,
        lane: &str,
        dead: Vec<DeadEvent>,
    ) -> Result<usize, StorageError> {
        let due = now_ms();
        let mut moves = Vec::with_capacity(dead.len());
        // Encoded here: the writer only moves bytes, so a bad record cannot fail a batch.
        for d in dead {
            let bytes = record::encode_job(due, 0, None, &d.event)?;
            let seq = if d.holds_key { d.seq } else { self.next_seq() };
            let key = d.event.order_key;
            moves.push((d.event.id, d.seq, seq, bytes, key, d.holds_key));
        }
        let lane_key = lane.to_owned();
        let write = move |txn: &WriteTransaction| {
            let mut moved = Vec::new();
            for (id, dead_seq, seq, bytes, key, holds) in moves {
                if take_dead(txn, &lane_key, &id, dead_seq)? {
                    put_job(txn, &lane_key, seq, &bytes)?;
                    moved.push((seq, key, holds));
                }
            }
            Ok(moved)
        };
        let lane = lane.to_owned();
        // Scheduled on the writer thread, so a cancelled caller cannot strand the jobs.
        let after = move |s: &Schedule, moved: Option<&Vec<(u64, Option<String>, bool)>>| {
            for (seq, key, holds) in moved.into_iter().flatten() {
                s.insert(&lane, due, *seq, key.as_deref());
                if let (Some(key), true) = (key, holds) {
                    s.unblock(&lane, key);
                }
            }
        };
        Ok(self.write_then(Durable::Now, write, after).await?.len())
    }

    /// Deletes the dead event `id` of `lane`; false if there was none. Durable when Ok.
    /// One that held its key releases it.
    pub(super) async fn purge_one(&self, lane: &str, id: &str) -> Result<bool, StorageError> {
        // Read first for its key; `take_dead` checks it is still the one filed.
        let Some(dead) = self.dead_one(lane, id)? else {
            return Ok(false);
        };
        let (key, id, seq) = (lane.to_owned(), id.to_owned(), dead.seq);
        let write = move |txn: &WriteTransaction| take_dead(txn, &key, &id, seq);
        let (lane, hold) = (
            lane.to_owned(),
            dead.event.order_key.filter(|_| dead.holds_key),
        );
        let after = move |s: &Schedule, taken: Option<&bool>| {
            if let (Some(true), Some(key)) = (taken, &hold) {
                s.unblock(&lane, key);
            }
        };
        self.write_then(Durable::Now, write, after).await
    }

    /// Deletes every dead event of `lane`; returns how many. Durable when Ok.
    pub(super) async fn purge_lane(&self, lane: &str) -> Result<usize, StorageError> {
        let key = lane.to_owned();
        let write = move |txn: &WriteTransaction| {
            let mut removed = 0;
            let range = (key.as_str(), 0)..=(key.as_str(), u64::MAX);
            txn.open_table(DEAD)?.retain_in(range, |_, _| {
                removed += 1;
                false
            })?;
            let mut ids = txn.open_table(DEAD_IDS)?;
            let mut stale = Vec::new();
            for entry in ids.range((key.as_str(), "")..)? {
                let (k, _) = entry?;
                let (l, id) = k.value();
                if l != key {
                    break;
                }
                stale.push(id.to_owned());
            }
            for id in &stale {
                ids.remove((key.as_str(), id.as_str()))?;
            }
            Ok(removed)
        };
        let lane = lane.to_owned();
        // Every dead letter of the lane is gone, so none holds a key any more.
        let after = move |s: &Schedule, ok: Option<&usize>| {
            if ok.is_some() {
                s.unblock_all(&lane);
            }
        };
        self.write_then(Durable::Now, write, after).await
    }
}

/// Files a dead letter under `seq`, replacing an older one of the same event id.
fn put_dead(
    txn: &WriteTransaction,
    lane: &str,
    id: &str,
    seq: u64,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let mut dead = txn.open_table(DEAD)?;
    let old = txn
        .open_table(DEAD_IDS)?
        .insert((lane, id), seq)?
        .map(|g| g.value());
    if let Some(old) = old {
        dead.remove((lane, old))?;
    }
    dead.insert((lane, seq), bytes)?;
    bump_last_seq(txn, seq)
}

/// Removes the dead letter `seq` of `id` if it is still the one filed; true if it was.
fn take_dead(txn: &WriteTransaction, lane: &str, id: &str, seq: u64) -> Result<bool, StorageError> {
    let mut ids = txn.open_table(DEAD_IDS)?;
    if ids.get((lane, id))?.map(|g| g.value()) != Some(seq) {
        return Ok(false);
    }
    ids.remove((lane, id))?;
    txn.open_table(DEAD)?.remove((lane, seq))?;
    Ok(true)
}
