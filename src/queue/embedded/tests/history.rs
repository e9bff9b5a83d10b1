//! Delivery history: a ring of the newest attempts per lane.

use super::*;
use crate::queue::{AttemptRecord, HISTORY_MAX};

/// Longer than the delayed flush's wait.
const FLUSH_WAIT: Duration = Duration::from_millis(900);

#[tokio::test]
async fn newest_first_and_filtered_by_event() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    for n in 1..=3 {
        q.record_attempt("r", attempt("a", n)).await.unwrap();
        q.record_attempt("r", attempt("b", n)).await.unwrap();
    }
    let all = q.history("r", None, 100).await.unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!((all[0].event_id.as_str(), all[0].attempt), ("b", 3));
    assert_eq!(all[0], attempt("b", 3).with_at(all[0].at_ms));
    let a = q.history("r", Some("a"), 2).await.unwrap();
    let got: Vec<_> = a.iter().map(|r| (r.event_id.as_str(), r.attempt)).collect();
    assert_eq!(got, [("a", 3), ("a", 2)]);
    assert!(q.history("other", None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn keeps_only_the_newest_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    let total = HISTORY_MAX as u32 + 5;
    for n in 1..=total {
        q.record_attempt("r", attempt("e", n)).await.unwrap();
    }
    let h = q.history("r", None, usize::MAX).await.unwrap();
    assert_eq!(h.len(), HISTORY_MAX);
    assert_eq!((h[0].attempt, h[HISTORY_MAX - 1].attempt), (total, 6));
    q.flush_history().await;
    q.db.close();
    drop(q);

    let q = open(&dir);
    q.record_attempt("r", attempt("e", total + 1))
        .await
        .unwrap();
    let h = q.history("r", None, 2).await.unwrap();
    assert_eq!(
        (h[0].attempt, h[1].attempt),
        (total + 1, total),
        "numbering goes on"
    );
    // The flush wrote all its lines in one transaction, the overwritten ones skipped: the ring
    // on disk holds the newest, each in its own slot.
    let h = q.history("r", None, usize::MAX).await.unwrap();
    let attempts: Vec<u32> = h.iter().map(|a| a.attempt).collect();
    assert_eq!(attempts, (7..=total + 1).rev().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_a_stored_jobs_ack_ride_along_with_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    q.enqueue(event("r", "e")).await.unwrap();
    let job = recv(&q, "r").await;
    // Stored by a checkpoint, so its ack is a write (one only the log holds needs none).
    q.db.flush().await.unwrap();
    let syncs = q.db.syncs();
    q.record_attempt("r", attempt("e", 1)).await.unwrap();
    q.ack(&job).await.unwrap();
    assert_eq!(q.db.syncs() - syncs, 0, "neither waits for an fsync");
    assert_eq!(
        q.depth("r").await.unwrap(),
        0,
        "the schedule forgot it at once"
    );
    assert_eq!(q.history("r", Some("e"), 10).await.unwrap().len(), 1);
    // Whether the delete is in yet depends on timing: the writer's wake-up commit writes
    // deferred state too when the last spill is `SPILL_EVERY` old. Within a checkpoint it is.
    tokio::time::sleep(FLUSH_WAIT).await;
    assert!(
        stored(&q).is_empty(),
        "deleted by a commit of deferred state"
    );
    assert_eq!(
        q.db.syncs() - syncs,
        1,
        "one sync made both durable, no delayed flush of its own"
    );
    q.db.close();
    drop(q);
    let q = open(&dir);
    assert!(nothing_for(&q, "r", 50).await, "acknowledged for good");
    assert_eq!(q.history("r", Some("e"), 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn pending_lines_are_read_and_flushed_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    let before = q.db.commits();
    q.record_attempt("r", attempt("e", 1)).await.unwrap();
    assert_eq!(
        q.history("r", None, 10).await.unwrap().len(),
        1,
        "read before written"
    );
    tokio::time::sleep(FLUSH_WAIT).await;
    assert_eq!(
        q.db.commits() - before,
        2,
        "written by the delayed flush, then fsync'd by the writer's own sync"
    );
    q.db.close();
    drop(q);
    let q = open(&dir);
    assert_eq!(q.history("r", None, 10).await.unwrap().len(), 1);
}

trait WithAt {
    fn with_at(self, at: u64) -> Self;
}

impl WithAt for AttemptRecord {
    fn with_at(self, at_ms: u64) -> Self {
        AttemptRecord { at_ms, ..self }
    }
}
