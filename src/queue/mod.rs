//! The durable queue between ingress and delivery: enqueue (durable) → receive → ack, retry
//! or dead-letter.
//!
//! Delivery is at-least-once: a job leased when the process stops is delivered again after
//! the restart, with the same event id.

mod dlq;
pub mod embedded;
mod record;
mod schedule;

use std::time::SystemTime;

use crate::embedded::StorageError;

/// A verified webhook ready to be stored and forwarded.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Name of the route it arrived on.
    pub route: String,
    /// Event id (scheme-specific, else SHA-256 of the body); the dedup key.
    pub id: String,
    /// When the gateway received it, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// The provider's headers, forwarded upstream.
    pub headers: Vec<(String, bytes::Bytes)>,
    /// The raw body, byte for byte.
    pub body: bytes::Bytes,
    /// The dedup store could not be asked: forwarded as `X-Hookgate-Dedup: unavailable`.
    pub dedup_unavailable: bool,
    /// Provider event type when the scheme knows it (fan-out filters on it).
    pub event_type: Option<String>,
}

/// An event leased to one delivery worker.
#[derive(Clone, Debug)]
pub struct Job {
    /// Position in the queue, unique across routes, increasing in order of arrival.
    pub seq: u64,
    /// The stored event.
    pub event: Event,
    /// Delivery attempts already made.
    pub attempts: u32,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
}

/// A job that exhausted its retries.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DeadEvent {
    /// The job's sequence number when it died (its key in the dead-letter table).
    pub seq: u64,
    /// The stored event.
    pub event: Event,
    /// Delivery attempts made, the last one included.
    pub attempts: u32,
    /// Error of the last attempt.
    pub last_error: String,
    /// When it was dead-lettered, ms since the Unix epoch.
    pub died_at_ms: u64,
}

/// Failure of a queue operation.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Too many writes are waiting for the disk: answer 503 + `Retry-After`.
    #[error("queue is full")]
    Full,
    /// The store failed or is closed: answer 503 + `Retry-After`.
    #[error("queue unavailable: {0}")]
    Unavailable(#[source] StorageError),
}

impl From<StorageError> for QueueError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Busy => QueueError::Full,
            e => QueueError::Unavailable(e),
        }
    }
}

/// A queue backend. Each route is its own queue, delivered in order of arrival.
pub trait Queue: Send + Sync {
    /// Stores `event` at the tail of its route's queue; durable (fsync'd) when Ok. Returns its
    /// sequence number.
    fn enqueue(&self, event: Event) -> impl Future<Output = Result<u64, QueueError>> + Send;

    /// Waits until a job of `route` is due and leases it. Cancel safe: nothing is leased unless
    /// returned.
    fn receive(&self, route: &str) -> impl Future<Output = Result<Job, QueueError>> + Send;

    /// Removes a delivered job.
    fn ack(&self, job: &Job) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Records a failed attempt (attempts + 1, last_error) and makes the job due again at `at`.
    fn retry(
        &self,
        job: &Job,
        at: SystemTime,
        error: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Moves the job to the dead-letter table.
    fn dead_letter(
        &self,
        job: &Job,
        error: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Jobs of `route` not yet acknowledged (queued + leased).
    fn depth(&self, route: &str) -> usize;
}

/// The queue backend chosen from config; cheap to clone (handles share one store).
#[derive(Clone)]
pub enum Backend {
    /// The embedded redb queue (one replica).
    Embedded(embedded::EmbeddedQueue),
}

impl Queue for Backend {
    async fn enqueue(&self, event: Event) -> Result<u64, QueueError> {
        match self {
            Backend::Embedded(q) => q.enqueue(event).await,
        }
    }

    async fn receive(&self, route: &str) -> Result<Job, QueueError> {
        match self {
            Backend::Embedded(q) => q.receive(route).await,
        }
    }

    async fn ack(&self, job: &Job) -> Result<(), QueueError> {
        match self {
            Backend::Embedded(q) => q.ack(job).await,
        }
    }

    async fn retry(&self, job: &Job, at: SystemTime, error: &str) -> Result<(), QueueError> {
        match self {
            Backend::Embedded(q) => q.retry(job, at, error).await,
        }
    }

    async fn dead_letter(&self, job: &Job, error: &str) -> Result<(), QueueError> {
        match self {
            Backend::Embedded(q) => q.dead_letter(job, error).await,
        }
    }

    fn depth(&self, route: &str) -> usize {
        match self {
            Backend::Embedded(q) => q.depth(route),
        }
    }
}
