//! Delivery history in the embedded store: a ring of `HISTORY_MAX` slots per lane, so keeping
//! only the newest attempts costs no deletes and no counting.
//!
//! Lines wait in memory and are written by the next checkpoint, so history never costs an fsync
//! of its own on the delivery path, and of the lines a lane gathered meanwhile only the newest
//! `HISTORY_MAX` are written (the rest would be overwritten in the same transaction). Written
//! with every commit instead, a busy lane rewrote its ring's pages a hundred times a second
//! (docs/performance.md, "2026-12-07, evening"). When nothing else writes, a delayed flush writes
//! them. Reads see pending lines too. A crash may lose the newest lines.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redb::WriteTransaction;

use super::EmbeddedQueue;
use crate::embedded::{Commit, Db, Deferred, Durable, HISTORY, Settle, StorageError};
use crate::queue::{AttemptRecord, HISTORY_MAX, record};

/// How long a line may wait for another write before it is written on its own.
const FLUSH_AFTER: Duration = Duration::from_millis(500);
/// Pending lines past which an unsynced commit writes them too, so memory stays bounded should
/// checkpoints lag: about a third of a second of deliveries at 24k per second.
const WRITE_BEYOND: usize = 8 * HISTORY_MAX;

/// History numbering and the lines not yet handed to the writer.
#[derive(Default)]
pub(super) struct Rings {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The lane's name shared by its lines, and the next number to write; loaded from disk on
    /// a lane's first line.
    next: HashMap<String, (Arc<str>, u64)>,
    pending: Vec<Line>,
    flush_scheduled: bool,
}

/// One attempt waiting to be written into its lane's ring; encoded only if it is written.
pub(super) struct Line {
    lane: Arc<str>,
    n: u64,
    rec: AttemptRecord,
}

impl Rings {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Each update leaves the state consistent, so a panic elsewhere is harmless.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the pending lines, for the caller's transaction to write.
    pub(super) fn take(&self) -> Vec<Line> {
        std::mem::take(&mut self.lock().pending)
    }
}

impl Deferred for Rings {
    fn write(&self, txn: &WriteTransaction, commit: Commit) -> Result<Settle, StorageError> {
        let lines = {
            let mut state = self.lock();
            match commit {
                Commit::Unsynced if state.pending.len() < WRITE_BEYOND => {
                    return Ok(Box::new(drop));
                }
                _ => std::mem::take(&mut state.pending),
            }
        };
        let n = lines.len();
        write(txn, lines)?;
        Ok(Box::new(move |committed| {
            if !committed && n > 0 {
                tracing::warn!(lines = n, "delivery history lines lost");
            }
        }))
    }

    fn pending(&self) -> bool {
        !self.lock().pending.is_empty()
    }
}

/// Writes `lines` into their rings, in key order and only the newest `HISTORY_MAX` of a lane;
/// called inside another write's transaction.
pub(super) fn write(txn: &WriteTransaction, mut lines: Vec<Line>) -> Result<(), StorageError> {
    if lines.is_empty() {
        return Ok(());
    }
    // Newest first within a lane: the first line seen for a slot is the one that stays.
    lines.sort_unstable_by(|a, b| a.lane.cmp(&b.lane).then(b.n.cmp(&a.n)));
    let mut table = txn.open_table(HISTORY)?;
    let mut newest = None;
    for line in &lines {
        if newest.as_ref().is_none_or(|(lane, _)| *lane != line.lane) {
            newest = Some((Arc::clone(&line.lane), line.n));
        }
        let top = newest.as_ref().map_or(line.n, |(_, n)| *n);
        if top - line.n >= HISTORY_MAX as u64 {
            continue; // overwritten by a newer line of this batch
        }
        // The line's number, then the record: what `postcard` writes for `(n, rec)`.
        let mut bytes = postcard::to_stdvec(&line.n)?;
        bytes.extend_from_slice(&record::encode_attempt(&line.rec)?);
        table.insert((&*line.lane, slot(line.n)), bytes.as_slice())?;
    }
    Ok(())
}

/// Writes the pending lines in a write of their own.
async fn flush(db: &Db, rings: &Rings) {
    let lines = rings.take();
    if lines.is_empty() {
        return;
    }
    // A missing line costs no event: committed at once, fsync'd with a later commit.
    let write = move |txn: &WriteTransaction| write(txn, lines);
    if let Err(e) = db.write_with(Durable::Later, write).await {
        tracing::warn!(error = %e, "delivery history lines lost");
    }
}

fn slot(n: u64) -> u32 {
    u32::try_from(n % HISTORY_MAX as u64).unwrap_or_default()
}

impl EmbeddedQueue {
    /// Numbers `rec` and keeps it for the next write; schedules a flush if none is due.
    pub(super) fn append_history(
        &self,
        lane: &str,
        rec: AttemptRecord,
    ) -> Result<(), StorageError> {
        let mut state = self.history.lock();
        let (lane, n) = match state.next.get_mut(lane) {
            Some((lane, n)) => (Arc::clone(lane), std::mem::replace(n, *n + 1)),
            None => {
                let n = self.ring(lane)?.into_keys().max().map_or(0, |n| n + 1);
                let name = Arc::<str>::from(lane);
                state
                    .next
                    .insert(lane.to_owned(), (Arc::clone(&name), n + 1));
                (name, n)
            }
        };
        state.pending.push(Line { lane, n, rec });
        let runtime = tokio::runtime::Handle::try_current();
        if let Ok(rt) = runtime
            && !std::mem::replace(&mut state.flush_scheduled, true)
        {
            // Weak handles: a pending flush must not keep the database open.
            let (db, rings) = (self.db.downgrade(), Arc::downgrade(&self.history));
            rt.spawn(async move {
                tokio::time::sleep(FLUSH_AFTER).await;
                if let (Some(db), Some(rings)) = (db.upgrade(), rings.upgrade()) {
                    rings.lock().flush_scheduled = false;
                    flush(&db, &rings).await;
                }
            });
        }
        Ok(())
    }

    /// Writes pending history lines now (no-op when none wait); used by the delayed flush and
    /// at shutdown.
    pub async fn flush_history(&self) {
        flush(&self.db, &self.history).await;
    }

    /// Newest first, at most `limit`, optionally only `event_id`'s attempts.
    pub(super) fn read_history(
        &self,
        lane: &str,
        event_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, StorageError> {
        let mut ring = self.ring(lane)?;
        for line in self
            .history
            .lock()
            .pending
            .iter()
            .filter(|l| &*l.lane == lane)
        {
            ring.insert(line.n, line.rec.clone());
        }
        // A pending line overwrites its slot's older number: keep the newest HISTORY_MAX.
        if let Some(&max) = ring.keys().next_back() {
            ring = ring.split_off(&max.saturating_sub(HISTORY_MAX as u64 - 1));
        }
        Ok(crate::queue::newest_attempts(
            ring.into_values().rev(),
            event_id,
            limit,
        ))
    }

    /// Every stored record of the lane by number.
    fn ring(&self, lane: &str) -> Result<BTreeMap<u64, AttemptRecord>, StorageError> {
        let txn = self.db.read()?;
        let table = txn.open_table(HISTORY)?;
        let mut out = BTreeMap::new();
        for entry in table.range((lane, 0)..=(lane, u32::MAX))? {
            let (_, bytes) = entry?;
            let (n, rest) = postcard::take_from_bytes::<u64>(bytes.value())?;
            let rec = record::decode_attempt(rest)?;
            out.insert(n, rec);
        }
        Ok(out)
    }
}
