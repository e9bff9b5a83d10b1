//! Jobs the write-ahead log holds and the database does not yet: enqueued since the last
//! checkpoint.
//!
//! An enqueue made durable by the log is not written to redb at all; its job waits here. Most
//! jobs are delivered before the next checkpoint and so cost redb nothing: no insert, no read to
//! deliver them, no delete to acknowledge them. Each checkpoint writes the ones still queued
//! (see [`Deferred`]); from then on they are ordinary stored jobs. A crash loses this map, and
//! the log's replay puts every job it held back into the queue, delivered or not: a redelivery
//! at worst, as with an acknowledgement not yet fsync'd.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::WriteTransaction;

use crate::embedded::{Commit, Deferred, Put, Settle, StorageError, bump_last_seq, put_jobs};

/// How long a job may wait here before an unsynced commit stores it: a job delivered within
/// this costs no write, one still queued after it is stored a little at a time rather than all
/// by the next checkpoint. As long as `MAX_UNSYNCED`: under load, deliveries lag ingest by
/// tens of milliseconds, and at 20 ms half the jobs were stored and then deleted again for
/// nothing (docs/performance.md, "2026-12-07, evening").
const HOT_FOR: Duration = Duration::from_millis(100);
/// With more jobs than `CROWDED` here, a backlog is building (an upstream slow or down): jobs
/// older than this are stored then, so that no checkpoint has 100 ms of jobs to write at once
/// (one that did held every enqueue behind it: docs/storage.md, point 2).
const CROWDED_FOR: Duration = Duration::from_millis(20);
/// Jobs here past which `CROWDED_FOR` applies: what ~30 ms of ingest at full speed leaves in
/// flight. At 4,096 a stopped upstream filled the map for ~130 ms before the count was
/// reached, so checkpoints held ~100 ms of jobs (docs/performance.md, "2026-12-07, evening").
const CROWDED: usize = 1024;

/// The jobs not yet in the database, by lane and seq. Cheap to clone; clones share the map.
#[derive(Clone, Default)]
pub(super) struct Hot {
    lanes: Arc<Mutex<HashMap<String, BTreeMap<u64, Entry>>>>,
    /// The queue's next sequence number: each checkpoint stores the highest handed out.
    next_seq: Arc<AtomicU64>,
}

/// One job's encoded record, since when it is here, and whether a commit is storing it now.
struct Entry {
    bytes: Bytes,
    since: Instant,
    flushing: bool,
}

/// What taking a job out of the map found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Taken {
    /// Only the map held it: nothing is left to write.
    Hot,
    /// A commit is storing it: the database will hold it, so it must be deleted there too.
    Flushing,
    /// Not here: the database holds it.
    Stored,
}

impl Hot {
    /// A map whose checkpoints persist the counter behind `next_seq`.
    pub(super) fn new(next_seq: Arc<AtomicU64>) -> Hot {
        Hot {
            lanes: Arc::default(),
            next_seq,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, BTreeMap<u64, Entry>>> {
        // Every update is a single map call: a panic elsewhere leaves it consistent.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps jobs that the log has just made durable.
    pub(super) fn insert(&self, puts: &[Put]) {
        let mut lanes = self.lock();
        let since = Instant::now();
        for put in puts {
            let entry = Entry {
                bytes: put.bytes.clone(),
                since,
                flushing: false,
            };
            match lanes.get_mut(put.lane.as_str()) {
                Some(jobs) => drop(jobs.insert(put.seq, entry)),
                None => drop(lanes.insert(put.lane.clone(), BTreeMap::from([(put.seq, entry)]))),
            }
        }
    }

    /// The job's record, if only the log holds it (or a checkpoint is writing it).
    pub(super) fn get(&self, lane: &str, seq: u64) -> Option<Bytes> {
        let lanes = self.lock();
        Some(lanes.get(lane)?.get(&seq)?.bytes.clone())
    }

    /// The lane's oldest job here, as (seq, record).
    pub(super) fn first(&self, lane: &str) -> Option<(u64, Bytes)> {
        let lanes = self.lock();
        let (seq, entry) = lanes.get(lane)?.first_key_value()?;
        Some((*seq, entry.bytes.clone()))
    }

    /// Takes the job out (delivered or dead), saying whether the database has it to delete.
    pub(super) fn take(&self, lane: &str, seq: u64) -> Taken {
        let mut lanes = self.lock();
        let Some(jobs) = lanes.get_mut(lane) else {
            return Taken::Stored;
        };
        let taken = match jobs.remove(&seq) {
            Some(e) if e.flushing => Taken::Flushing,
            Some(_) => Taken::Hot,
            None => Taken::Stored,
        };
        if jobs.is_empty() {
            lanes.remove(lane);
        }
        taken
    }

    /// Replaces the record of a job only the map holds (a retry); false if the database holds
    /// it or is about to, and the new record must be written there.
    pub(super) fn replace(&self, lane: &str, seq: u64, bytes: Bytes) -> bool {
        let mut lanes = self.lock();
        match lanes.get_mut(lane).and_then(|jobs| jobs.get_mut(&seq)) {
            Some(entry) if !entry.flushing => {
                entry.bytes = bytes;
                true
            }
            _ => false,
        }
    }

    /// Jobs here, all lanes together.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().values().map(BTreeMap::len).sum()
    }
}

impl Deferred for Hot {
    /// Stores the jobs still here (a checkpoint) or those here for `HOT_FOR` (`CROWDED_FOR`
    /// while more than `CROWDED` wait); they leave the map once that commit is done. The records
    /// are copied out first (reference counts), so no delivery waits for the transaction.
    fn write(&self, txn: &WriteTransaction, commit: Commit) -> Result<Settle, StorageError> {
        let mut lanes = self.lock();
        let crowded = lanes.values().map(BTreeMap::len).sum::<usize>() > CROWDED;
        let hold = if crowded { CROWDED_FOR } else { HOT_FOR };
        let old = Instant::now().checked_sub(hold);
        let wanted = |e: &Entry| {
            !e.flushing && (commit == Commit::Checkpoint || old.is_some_and(|t| e.since <= t))
        };
        let mut puts = Vec::new();
        for (lane, jobs) in lanes.iter_mut() {
            for (seq, entry) in jobs.iter_mut().filter(|(_, e)| wanted(e)) {
                entry.flushing = true;
                let (lane, seq, bytes) = (lane.clone(), *seq, entry.bytes.clone());
                puts.push(Put { lane, seq, bytes });
            }
        }
        drop(lanes); // no delivery waits for the transaction
        if puts.is_empty() && commit == Commit::Unsynced {
            return Ok(Box::new(drop));
        }
        put_jobs(txn, &puts)?;
        bump_last_seq(txn, self.next_seq.load(Ordering::Relaxed).saturating_sub(1))?;
        let this = self.clone();
        Ok(Box::new(move |committed| this.settle(&puts, committed)))
    }

    fn pending(&self) -> bool {
        let lanes = self.lock();
        lanes
            .values()
            .flat_map(BTreeMap::values)
            .any(|e| !e.flushing)
    }

    /// The replay stored every job the log held: the database has all of them now.
    fn replayed(&self) {
        self.lock().clear();
    }
}

impl Hot {
    /// After a commit: what it stored leaves the map (the log covers it until a checkpoint),
    /// or stays for the next one.
    fn settle(&self, puts: &[Put], committed: bool) {
        let mut lanes = self.lock();
        for put in puts {
            let Some(jobs) = lanes.get_mut(put.lane.as_str()) else {
                continue; // taken meanwhile (`Taken::Flushing`)
            };
            match committed {
                true => drop(jobs.remove(&put.seq)),
                false => {
                    if let Some(e) = jobs.get_mut(&put.seq) {
                        e.flushing = false;
                    }
                }
            }
            if jobs.is_empty() {
                lanes.remove(put.lane.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use redb::backends::InMemoryBackend;
    use redb::{Database, ReadableDatabase, ReadableTable};

    use super::*;
    use crate::embedded::QUEUE;

    fn put(seq: u64) -> Put {
        Put {
            lane: "r".into(),
            seq,
            bytes: Bytes::from(vec![seq as u8; 8]),
        }
    }

    fn memory_db() -> Database {
        Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap()
    }

    fn stored_seqs(db: &Database) -> Vec<u64> {
        let txn = db.begin_read().unwrap();
        let Ok(table) = txn.open_table(QUEUE) else {
            return Vec::new();
        };
        let rows = table.iter().unwrap().map(|r| r.unwrap().0.value().1);
        rows.collect()
    }

    #[test]
    fn a_checkpoint_stores_what_is_left_and_a_job_taken_meanwhile_must_be_deleted() {
        let db = memory_db();
        let hot = Hot::new(Arc::new(AtomicU64::new(4)));
        hot.insert(&[put(1), put(2), put(3)]);
        assert_eq!(
            hot.take("r", 1),
            Taken::Hot,
            "delivered before the checkpoint"
        );
        let txn = db.begin_write().unwrap();
        let young = hot.write(&txn, Commit::Unsynced).unwrap();
        young(true);
        assert_eq!(hot.len(), 2, "an unsynced commit leaves young jobs alone");
        let settle = hot.write(&txn, Commit::Checkpoint).unwrap();
        // While the commit runs: 2 is taken (its ack must delete it), 3 cannot change in memory.
        assert_eq!(hot.take("r", 2), Taken::Flushing);
        assert!(!hot.replace("r", 3, Bytes::from_static(b"new")));
        assert!(!hot.pending(), "nothing new since the checkpoint began");
        txn.commit().unwrap();
        settle(true);
        assert_eq!(stored_seqs(&db), [2, 3]);
        assert_eq!(hot.len(), 0);
        assert_eq!(hot.take("r", 3), Taken::Stored);
    }

    #[test]
    fn a_failed_checkpoint_keeps_the_jobs_for_the_next_one() {
        let db = memory_db();
        let hot = Hot::new(Arc::new(AtomicU64::new(3)));
        hot.insert(&[put(1), put(2)]);
        let txn = db.begin_write().unwrap();
        let settle = hot.write(&txn, Commit::Checkpoint).unwrap();
        drop(txn);
        settle(false);
        assert!(hot.pending());
        assert!(hot.replace("r", 2, Bytes::from_static(b"retried")));
        assert_eq!(hot.get("r", 2).unwrap(), Bytes::from_static(b"retried"));
        assert_eq!(hot.first("r").map(|(seq, _)| seq), Some(1));
        hot.replayed();
        assert_eq!(hot.len(), 0, "a replay stored them all");
    }

    #[test]
    fn an_unsynced_commit_stores_the_jobs_here_for_hot_for() {
        let db = memory_db();
        let hot = Hot::new(Arc::new(AtomicU64::new(2)));
        hot.insert(&[put(1)]);
        std::thread::sleep(HOT_FOR + Duration::from_millis(5));
        hot.insert(&[put(2)]);
        let txn = db.begin_write().unwrap();
        let settle = hot.write(&txn, Commit::Unsynced).unwrap();
        txn.commit().unwrap();
        settle(true);
        assert_eq!(stored_seqs(&db), [1]);
        assert_eq!(hot.first("r").map(|(seq, _)| seq), Some(2));
    }

    #[test]
    fn a_crowded_map_stores_its_jobs_after_crowded_for() {
        let db = memory_db();
        let n = CROWDED as u64;
        let hot = Hot::new(Arc::new(AtomicU64::new(n + 2)));
        let puts: Vec<Put> = (1..=n).map(put).collect();
        hot.insert(&puts);
        std::thread::sleep(CROWDED_FOR + Duration::from_millis(5));
        let txn = db.begin_write().unwrap();
        let settle = hot.write(&txn, Commit::Unsynced).unwrap();
        settle(true);
        assert_eq!(
            hot.len(),
            CROWDED,
            "not crowded yet: the jobs wait for HOT_FOR"
        );
        hot.insert(&[put(n + 1)]);
        let settle = hot.write(&txn, Commit::Unsynced).unwrap();
        txn.commit().unwrap();
        settle(true);
        assert_eq!(
            stored_seqs(&db).len(),
            CROWDED,
            "crowded: the older jobs are stored"
        );
        assert_eq!(
            hot.first("r").map(|(seq, _)| seq),
            Some(n + 1),
            "the young one waits"
        );
    }
}
