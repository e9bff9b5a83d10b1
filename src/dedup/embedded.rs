//! Dedup for a single replica: claims in memory, done records in the embedded database.
//!
//! Claims are deliberately not persisted: a crash forgets them, so the sender's retry of an
//! event that never reached the queue is accepted, as the claim protocol requires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::WriteTransaction;

use super::{Claim, DedupError, Store};
use crate::embedded::{DEDUP, DEDUP_BY_EXPIRY, Db, Durable, StorageError, now_ms};

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
}

/// Claims in flight: (route, id) → their state.
#[derive(Default)]
struct Claims {
    until: HashMap<(String, String), Pending>,
    inserts: u32,
}

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
        EmbeddedDedup {
            db,
            dedup_ttl,
            claim_ttl,
            claims: Arc::default(),
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
        if self.is_done(route, id)? {
            return Ok(Claim::Duplicate);
        }
        claims.insert(key, Pending::Claimed(deadline(now, self.claim_ttl)), now);
        Ok(Claim::Fresh)
    }

    /// Whether a done record of `id` exists and has not expired (sweeping may lag behind).
    fn is_done(&self, route: &str, id: &str) -> Result<bool, StorageError> {
        let txn = self.db.read()?;
        let done = txn.open_table(DEDUP)?;
        let expires = done.get((route, id))?.map(|g| g.value());
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

    /// Returns once the record is handed to the writer; it commits with the next group commit,
    /// after any enqueue sent before it.
    async fn complete(&self, route: &str, id: &str) -> Result<(), DedupError> {
        let expires = now_ms().saturating_add(self.ttl_ms());
        let key = (route.to_owned(), id.to_owned());
        let record = key.clone();
        let claims = Arc::clone(&self.claims);
        let on_commit = move |result: Result<(), StorageError>| match result {
            Ok(()) => drop(lock(&claims).until.remove(&key)),
            // The marker stays: until it expires it keeps the enqueued event a duplicate.
            Err(e) => {
                tracing::warn!(route = %key.0, event_id = %key.1, error = %e, "dedup record lost")
            }
        };
        let now = Instant::now();
        let marker = Pending::Completing(deadline(now, self.dedup_ttl));
        lock(&self.claims).insert(record.clone(), marker, now);
        let write = move |txn: &WriteTransaction| put_done(txn, &record.0, &record.1, expires);
        // Lost in a crash, the record lets a retry of an enqueued event through once more.
        self.db
            .submit(Durable::Later, write, on_commit)
            .await
            .map_err(DedupError::Unavailable)
    }

    async fn release(&self, route: &str, id: &str) -> Result<(), DedupError> {
        lock(&self.claims)
            .until
            .remove(&(route.to_owned(), id.to_owned()));
        Ok(())
    }
}

/// Stores the done record and its expiry index entry, replacing an older one.
fn put_done(
    txn: &WriteTransaction,
    route: &str,
    id: &str,
    expires: u64,
) -> Result<(), StorageError> {
    let mut done = txn.open_table(DEDUP)?;
    let mut by_expiry = txn.open_table(DEDUP_BY_EXPIRY)?;
    let old = done.insert((route, id), expires)?.map(|g| g.value());
    if let Some(old) = old {
        by_expiry.remove((old, route, id))?;
    }
    by_expiry.insert((expires, route, id), ())?;
    Ok(())
}

/// The claims stay consistent even if a holder panicked: every update is a single map call.
fn lock(claims: &Mutex<Claims>) -> MutexGuard<'_, Claims> {
    claims.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
