//! Duplicate detection: claim an event id → enqueue → complete (or release on failure).
//!
//! The claim is short-lived so that a crash between claim and enqueue cannot swallow the
//! sender's retry; only `complete`, called after the durable enqueue, makes the id a duplicate
//! for `dedup_ttl`.

pub mod embedded;
pub mod redis;

/// Result of claiming an event id on a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nobody holds the id: the caller owns it until `complete` or `release`.
    Fresh,
    /// The id was completed within `dedup_ttl`: answer 200 "duplicate", enqueue nothing.
    Duplicate,
    /// Another request holds the id right now: answer 409 so the sender retries.
    InFlight,
}

/// Failure of the dedup store.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// The store cannot be asked; the ingress fails open (accepts, marks `dedup_unavailable`).
    #[error("dedup store unavailable: {0}")]
    Unavailable(#[source] crate::embedded::StorageError),
    /// Redis cannot be asked (down, slow, or refusing); the ingress fails open too.
    #[error("dedup store unavailable: {0}")]
    Redis(#[from] crate::redis_conn::RedisError),
}

/// A dedup backend. Ids are scoped by route: the same id on two routes are two events.
pub trait Store: Send + Sync {
    /// Claims `id` on `route` for a short TTL; Duplicate if it was completed within dedup_ttl;
    /// InFlight if another claim holds it.
    fn claim(
        &self,
        route: &str,
        id: &str,
    ) -> impl Future<Output = Result<Claim, DedupError>> + Send;

    /// Marks `id` done for dedup_ttl (call after the durable enqueue). May return before the
    /// record is fsync'd.
    fn complete(
        &self,
        route: &str,
        id: &str,
    ) -> impl Future<Output = Result<(), DedupError>> + Send;

    /// Drops a claim whose enqueue failed so the sender's retry is accepted.
    fn release(&self, route: &str, id: &str)
    -> impl Future<Output = Result<(), DedupError>> + Send;
}

/// The dedup backend chosen from config; cheap to clone (clones share one store).
#[derive(Clone)]
pub enum Dedup {
    /// Claims in memory, done records in the embedded redb file (one replica).
    Embedded(embedded::EmbeddedDedup),
    /// Claims and done records in Redis, shared by every replica.
    Redis(redis::RedisDedup),
}

impl Store for Dedup {
    async fn claim(&self, route: &str, id: &str) -> Result<Claim, DedupError> {
        match self {
            Dedup::Embedded(d) => d.claim(route, id).await,
            Dedup::Redis(d) => d.claim(route, id).await,
        }
    }

    async fn complete(&self, route: &str, id: &str) -> Result<(), DedupError> {
        match self {
            Dedup::Embedded(d) => d.complete(route, id).await,
            Dedup::Redis(d) => d.complete(route, id).await,
        }
    }

    async fn release(&self, route: &str, id: &str) -> Result<(), DedupError> {
        match self {
            Dedup::Embedded(d) => d.release(route, id).await,
            Dedup::Redis(d) => d.release(route, id).await,
        }
    }
}
