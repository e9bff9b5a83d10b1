//! Removal of expired dedup records.
//!
//! Expired records are already ignored by `claim`; sweeping only keeps the file from growing
//! with every event id ever seen.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redb::{ReadableTable, WriteTransaction};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{DEDUP, DEDUP_BY_EXPIRY, Db, Inner, StorageError, now_ms};

/// Records removed per transaction, so a sweep never holds up ingress commits for long.
const SWEEP_BATCH: usize = 4096;

impl Db {
    /// Removes dedup records whose expiry is before `now_ms`; returns how many. Durable when Ok.
    pub async fn sweep(&self, now_ms: u64) -> Result<usize, StorageError> {
        let mut total = 0;
        loop {
            let removed = self
                .write(move |txn| sweep_batch(txn, now_ms, SWEEP_BATCH))
                .await?;
            total += removed;
            if removed < SWEEP_BATCH {
                return Ok(total);
            }
        }
    }

    /// Sweeps every `every` (first at once) until `shutdown` turns true or is dropped.
    ///
    /// Needs a tokio runtime. The task holds no strong handle: dropping every `Db` ends it too.
    pub fn spawn_sweeper(
        &self,
        every: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let db = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if !sweep_once(&db).await {
                            return;
                        }
                    }
                    () = stopped(&mut shutdown) => return,
                }
            }
        })
    }
}

/// Resolves once shutdown is asked for or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The returned guard is not Send: drop it here rather than hold it in the select.
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}

/// One periodic sweep; false once the database is gone.
async fn sweep_once(db: &Weak<Inner>) -> bool {
    let Some(inner) = db.upgrade() else {
        return false;
    };
    let db = Db { inner };
    match db.sweep(now_ms()).await {
        Ok(removed) => tracing::debug!(removed, "swept expired dedup records"),
        Err(StorageError::Closed) => return false,
        Err(e) => tracing::warn!(error = %e, "dedup sweep failed"),
    }
    true
}

/// Range-deletes up to `limit` index entries that expired before `now`.
fn sweep_batch(txn: &WriteTransaction, now: u64, limit: usize) -> Result<usize, StorageError> {
    let mut by_expiry = txn.open_table(DEDUP_BY_EXPIRY)?;
    let mut done = txn.open_table(DEDUP)?;
    let mut expired = Vec::new();
    for entry in by_expiry.range(..(now, "", ""))?.take(limit) {
        let (key, _) = entry?;
        let (at, route, id) = key.value();
        expired.push((at, route.to_owned(), id.to_owned()));
    }
    for (at, route, id) in &expired {
        by_expiry.remove((*at, route.as_str(), id.as_str()))?;
        // The id may have been completed again since; then its record has a later expiry.
        let current = done.get((route.as_str(), id.as_str()))?.map(|g| g.value());
        if current == Some(*at) {
            done.remove((route.as_str(), id.as_str()))?;
        }
    }
    Ok(expired.len())
}
