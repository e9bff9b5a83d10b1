//! The end of the pipeline: dedup claim → durable enqueue → complete (or release on failure).
//!
//! These steps run in a task of their own that the request handler only awaits. hyper drops the
//! handler's future when the client resets the connection; were the steps inside it, a reset
//! right after the durable enqueue would leave the claim pending, and the sender's retry — once
//! the claim expired — would be enqueued and delivered a second time. A spawned task runs to the
//! end whatever the client does, and the gateway waits for these tasks before it closes storage.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio_util::task::TaskTracker;

use super::IngestError;
use crate::config::DedupOn;
use crate::dedup::{Claim, Dedup, Store};
use crate::metrics::Metrics;
use crate::queue::{Backend, Event, Queue};

/// What the dedup step decided for one event.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Accepted,
    Duplicate,
}

/// What claiming every key of an event gave.
enum Claimed {
    /// Every key was fresh: the caller owns them all.
    All(Vec<Key>),
    /// One key was a duplicate or in flight; the keys claimed before it were released.
    Refused(Claim),
    /// The store failed; the keys it did grant are settled like any other (fail open).
    Unavailable(Vec<Key>),
}

/// One dedup record: the scope (a route, or a route's body-hash scope) and the key in it.
type Key = (String, String);

/// A verified event on its way into the queue.
pub(super) struct Admission {
    pub route: String,
    pub keys: Vec<Key>,
    /// One per upstream that wants the event (none: accepted and dropped).
    pub events: Vec<Event>,
}

/// The stores an admission needs, cloned into its task.
#[derive(Clone)]
pub(super) struct Admitter {
    pub dedup: Dedup,
    pub queue: Backend,
    pub metrics: Arc<Metrics>,
    pub tasks: TaskTracker,
}

/// The dedup keys of an event.
///
/// `id+body` claims a second key, the SHA-256 of the body, in the scope `"{route}#body"` (route
/// names cannot contain `#`, so it never meets a real route's ids). Both must be fresh: the id
/// key answers an honest retry (same id, same body) as a duplicate before the body key is even
/// asked, and the body key refuses a captured request replayed under a fresh id, for schemes
/// whose signature does not cover the id (see docs/providers.md). One derived key would not do:
/// `hash(id, body)` misses the replay, and `hash(body)` alone would turn two distinct events
/// with equal bodies into one while still needing the id for honest retries.
pub(super) fn keys(route: &str, id: &str, on: DedupOn, body: &[u8]) -> Vec<Key> {
    let mut keys = vec![(route.to_owned(), id.to_owned())];
    if on == DedupOn::IdAndBody {
        keys.push((format!("{route}#body"), hex::encode(Sha256::digest(body))));
    }
    keys
}

impl Admitter {
    /// Runs the admission to the end in a tracked task, even if the caller is dropped.
    pub(super) async fn admit(&self, a: Admission) -> Result<Outcome, IngestError> {
        let this = self.clone();
        // Boxed: a task moves its future by value when spawned and when it finishes, and this
        // one is kilobytes (the dedup and queue futures of either backend).
        let task = self.tasks.spawn(Box::pin(async move { this.run(a).await }));
        task.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "admission task failed; answering 503");
            Err(IngestError::Unavailable)
        })
    }

    async fn run(&self, mut a: Admission) -> Result<Outcome, IngestError> {
        let claimed = match self.claim_all(&a.route, &a.keys).await {
            Claimed::All(claimed) => claimed,
            Claimed::Refused(Claim::Duplicate) => return Ok(Outcome::Duplicate),
            Claimed::Refused(_) => return Err(IngestError::InFlight),
            Claimed::Unavailable(claimed) => {
                // Fail open (README.md, "What happens to a request"): a sender that sees errors suspends the endpoint, losing more.
                self.metrics.dedup_unavailable(&a.route);
                a.events.iter_mut().for_each(|e| e.dedup_unavailable = true);
                claimed
            }
        };
        match self.queue.enqueue_all(a.events).await {
            Ok(_) => {
                self.settle(&claimed, true).await;
                Ok(Outcome::Accepted)
            }
            Err(e) => {
                tracing::error!(route = %a.route, error = %e, "durable enqueue failed; answering 503");
                self.settle(&claimed, false).await;
                Err(IngestError::Unavailable)
            }
        }
    }

    /// Claims every key in order, stopping at the first that is not fresh.
    async fn claim_all(&self, route: &str, keys: &[Key]) -> Claimed {
        let mut claimed = Vec::with_capacity(keys.len());
        for key in keys {
            match self.dedup.claim(&key.0, &key.1).await {
                Ok(Claim::Fresh) => claimed.push(key.clone()),
                Ok(other) => {
                    self.settle(&claimed, false).await;
                    return Claimed::Refused(other);
                }
                Err(e) => {
                    tracing::warn!(route, error = %e, "dedup store unavailable; accepting without dedup");
                    return Claimed::Unavailable(claimed);
                }
            }
        }
        Claimed::All(claimed)
    }

    /// Completes (`done`) or releases each claimed key; a failure is logged, not answered.
    async fn settle(&self, claimed: &[Key], done: bool) {
        for (scope, key) in claimed {
            let r = match done {
                true => self.dedup.complete(scope, key).await,
                false => self.dedup.release(scope, key).await,
            };
            if let Err(e) = r {
                tracing::warn!(scope, error = %e, done, "could not settle the dedup claim");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_keys_one_record_and_id_body_two() {
        assert_eq!(
            keys("gh", "d-1", DedupOn::Id, b"{}"),
            [("gh".into(), "d-1".into())]
        );
        let both = keys("gh", "d-1", DedupOn::IdAndBody, b"{}");
        assert_eq!(both.len(), 2);
        assert_eq!(both[1].0, "gh#body");
        // SHA-256 of "{}".
        assert_eq!(
            both[1].1,
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
