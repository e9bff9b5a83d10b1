//! Dedup for a single replica: claims in memory, done records in the embedded database.
//!
//! Claims are deliberately not persisted: a crash forgets them, so the sender's retry of an
//! event that never reached the queue is accepted, as the claim protocol requires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::{ReadOnlyTable, WriteTransaction};

use super::{Claim, DedupError, Store};
use crate::embedded::{Commit, DEDUP, DEDUP_BY_EXPIRY, Db, Deferred, Settle, StorageError, now_ms};

/// Inserts between two prunings of expired markers (claims whose owner vanished).
const PRUNE_EVERY: u32 = 1024;
/// TTLs are capped here so that `Instant` arithmetic cannot overflow (about 100 years).
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Dedup over the embedded [`Db`]. Cheap to clone; clones share the claims.
#[derive(Clone)]
pub struct EmbeddedDedup {
    db: Db,
    dedup_ttl: Duration,
    claim_ttl: Duration,
    claims: Arc<Mutex<Claims>>,
    unwritten: Unwritten,
}

/// Done records not yet written: the next commit of deferred state writes them all in one
/// transaction, at most `SPILL_EVERY` later (see `embedded::Deferred`), and their `Completing`
/// markers answer for them until it commits.
#[derive(Clone, Default)]
struct Unwritten {
    records: Arc<Mutex<Vec<Done>>>,
    claims: Arc<Mutex<Claims>>,
}

/// A done record: (route, id) and its expiry, ms since the Unix epoch.
type Done = (String, String, u64);

/// Claims in flight: (route, id) → their state.
#[derive(Default)]
struct Claims {
    until: HashMap<(String, String), Pending>,
    inserts: u32,
    /// The done records of the storage's shared snapshot, and its generation: opened once per
    /// commit instead of a read transaction and a table per claim (docs/performance.md,
    /// "2026-12-07, evening"). Kept under the claims' lock, which every claim holds anyway.
    done: Option<(u64, DoneTable)>,
}

/// The `DEDUP` table as a shared snapshot reads it.
type DoneTable = ReadOnlyTable<(&'static str, &'static str), u64>;

/// A claim, before and after its event became durable. Each carries its expiry: past it, the
/// marker counts for nothing and the next pruning drops it, whatever happened to its owner.
#[derive(Clone, Copy)]
enum Pending {
    /// Enqueue not yet confirmed; stops blocking others at this instant (`claim_ttl`).
    Claimed(Instant),
    /// Enqueued; the done record is waiting for the next group commit. A retry arriving in that
    /// window is a duplicate, not a conflict: the event is already safe. The commit removes the
    /// marker; if the record never commits (writer closed, write failed) the marker stands in
    /// for it until the record would have expired (`dedup_ttl`), never longer.
    Completing(Instant),
}

impl Pending {
    fn until(self) -> Instant {
        match self {
            Pending::Claimed(t) | Pending::Completing(t) => t,
        }
    }
}

impl EmbeddedDedup {
    /// Done ids block for `dedup_ttl`; an unfinished claim blocks for `claim_ttl`.
    pub fn new(db: Db, dedup_ttl: Duration, claim_ttl: Duration) -> Self {
        let claims = Arc::<Mutex<Claims>>::default();
        let unwritten = Unwritten {
            records: Arc::default(),
            claims: Arc::clone(&claims),
        };
        db.defer(Arc::new(unwritten.clone()));
        EmbeddedDedup {
            db,
            dedup_ttl,
            claim_ttl,
            claims,
            unwritten,
        }
    }

    /// The whole decision under one lock, so two requests cannot both see the id as free.
    ///
    /// The done record is read while the lock is held: `complete` drops the claim only after
    /// its record is committed, so a claim sees InFlight, then Duplicate, never Fresh between;
    /// once the enqueue is confirmed (`complete` called) it already answers Duplicate.
    fn claim_now(&self, route: &str, id: &str) -> Result<Claim, StorageError> {
        let key = (route.to_owned(), id.to_owned());
        let now = Instant::now();
        let mut claims = lock(&self.claims);
        match claims.until.get(&key) {
            Some(Pending::Completing(until)) if *until > now => return Ok(Claim::Duplicate),
            Some(Pending::Claimed(until)) if *until > now => return Ok(Claim::InFlight),
            _ => {}
        }
        if self.is_done(&mut claims, route, id)? {
            return Ok(Claim::Duplicate);
        }
        claims.insert(key, Pending::Claimed(deadline(now, self.claim_ttl)), now);
        Ok(Claim::Fresh)
    }

    /// Whether a done record of `id` exists and has not expired (sweeping may lag behind).
    ///
    /// Reads the storage's shared snapshot of its newest commit: a record's marker leaves
    /// `claims` only once its commit is reported, and the snapshot is replaced before that, so
    /// a claim that finds no marker finds the record.
    fn is_done(&self, claims: &mut Claims, route: &str, id: &str) -> Result<bool, StorageError> {
        let generation = self.db.generation();
        if claims.done.as_ref().is_none_or(|(g, _)| *g != generation) {
            claims.done = match self.db.latest() {
                Some(s) => Some((s.generation, s.txn.open_table(DEDUP)?)),
                None => None,
            };
        }
        let expires = match &claims.done {
            Some((_, done)) => done.get((route, id))?.map(|g| g.value()),
            // No shared snapshot (just reopened): a read of its own.
            None => {
                let txn = self.db.read()?;
                let done = txn.open_table(DEDUP)?;
                done.get((route, id))?.map(|g| g.value())
            }
        };
        Ok(expires.is_some_and(|at| at > now_ms()))
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.dedup_ttl.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Claims {
    fn insert(&mut self, key: (String, String), marker: Pending, now: Instant) {
        self.until.insert(key, marker);
        self.inserts += 1;
        if self.inserts >= PRUNE_EVERY {
            self.inserts = 0;
            self.until.retain(|_, p| p.until() > now);
        }
    }
}

/// `now + ttl`, without overflow.
fn deadline(now: Instant, ttl: Duration) -> Instant {
    now + ttl.min(MAX_TTL)
}

impl Store for EmbeddedDedup {
    /// Reads redb on the calling thread: a point lookup, normally served from the page cache.
    async fn claim(&self, route: &str, id: &str) -> Result<Claim, DedupError> {
        self.claim_now(route, id).map_err(DedupError::Unavailable)
    }

    /// Returns at once: the record waits for the next commit of deferred state, fsync'd within
    /// `MAX_UNSYNCED`. Lost in a crash, the record lets a retry of an enqueued event through
    /// once more.
    async fn complete(&self, route: &str, id: &str) -> Result<(), DedupError> {
        let expires = now_ms().saturating_add(self.ttl_ms());
        let now = Instant::now();
        let marker = Pending::Completing(deadline(now, self.dedup_ttl));
        let key = (route.to_owned(), id.to_owned());
        lock(&self.claims).insert(key.clone(), marker, now);
        let first = {
            let mut records = lock(&self.unwritten.records);
            records.push((key.0, key.1, expires));
            records.len() == 1
        };
        if first {
            // Nothing may be on its way to the writer (an event no upstream wanted).
            self.db.kick();
        }
        Ok(())
    }

    async fn release(&self, route: &str, id: &str) -> Result<(), DedupError> {
        lock(&self.claims)
            .until
            .remove(&(route.to_owned(), id.to_owned()));
        Ok(())
    }
}

impl Deferred for Unwritten {
    fn write(&self, txn: &WriteTransaction, _: Commit) -> Result<Settle, StorageError> {
        let mut records = std::mem::take(&mut *lock(&self.records));
        put_done(txn, &mut records)?;
        let this = self.clone();
        Ok(Box::new(move |committed| this.settle(records, committed)))
    }

    fn pending(&self) -> bool {
        !lock(&self.records).is_empty()
    }
}

impl Unwritten {
    /// Once stored, a record answers for its marker; a failed checkpoint leaves it for the next.
    fn settle(&self, records: Vec<Done>, committed: bool) {
        if committed {
            let mut claims = lock(&self.claims);
            for (route, id, _) in records {
                claims.until.remove(&(route, id));
            }
        } else {
            lock(&self.records).extend(records);
        }
    }
}

/// Stores each done record and its expiry index entry, replacing an older one.
///
/// The tables are opened once per batch, not once per record (an open walks the table tree),
/// and the records go in key order: ids arrive in random order, and neighbours in key order
/// share the B-tree leaves that the copy-on-write commit has to rewrite.
fn put_done(txn: &WriteTransaction, records: &mut [Done]) -> Result<(), StorageError> {
    if records.is_empty() {
        return Ok(());
    }
    records.sort_unstable();
    let mut done = txn.open_table(DEDUP)?;
    let mut by_expiry = txn.open_table(DEDUP_BY_EXPIRY)?;
    for (route, id, expires) in records.iter() {
        let (route, id) = (route.as_str(), id.as_str());
        let old = done.insert((route, id), *expires)?.map(|g| g.value());
        if let Some(old) = old {
            by_expiry.remove((old, route, id))?;
        }
        by_expiry.insert((*expires, route, id), ())?;
    }
    Ok(())
}

/// The claims and records stay consistent even if a holder panicked: every update is a single
/// call.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
