//! The durable queue between ingress and delivery: enqueue (durable) → receive → ack, retry
//! or dead-letter; plus the dead letters and the delivery history the admin API reads.
//!
//! Everything is kept per *lane*: a route's single upstream, or one upstream of a fan-out route
//! (`"route/upstream"`), so each upstream keeps its own position, retries and dead letters.
//! Delivery is at-least-once: a job leased when the process stops is delivered again after
//! the restart, with the same event id.

mod backend;
pub mod embedded;
mod record;
pub mod redis_stream;
mod schedule;
#[cfg(test)]
pub(crate) mod testing;

use std::time::{Duration, SystemTime};

pub use backend::Backend;

use crate::config::OnDead;
use crate::deliver::{ErrorKind, Failure};
use crate::embedded::StorageError;

/// Attempts kept per lane in the delivery history; older ones are dropped.
pub const HISTORY_MAX: usize = 1000;

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
    /// Fan-out: which upstream of the route; None = the route's single upstream.
    #[serde(default)]
    pub upstream: Option<String>,
    /// W3C `traceparent` of the request's span, so delivery attempts continue its trace; None
    /// with telemetry off. A trailing field of the job record (see `record.rs`).
    #[serde(skip)]
    pub traceparent: Option<String>,
    /// The route's `order_by` key: events of a lane with equal keys are delivered one at a
    /// time, in order of acceptance; None = unordered. A trailing field (see `record.rs`).
    #[serde(skip)]
    pub order_key: Option<String>,
}

impl Event {
    /// The queue lane: the route name, or "route/upstream" for a fan-out upstream.
    pub fn lane(&self) -> String {
        match &self.upstream {
            Some(up) => format!("{}/{up}", self.route),
            None => self.route.clone(),
        }
    }
}

/// An event leased to one delivery worker.
#[derive(Clone, Debug)]
pub struct Job {
    /// Position in its lane, increasing in order of arrival (the backend's handle on the job).
    pub seq: u64,
    /// The stored event.
    pub event: Event,
    /// Delivery attempts already made.
    pub attempts: u32,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
}

/// A job that exhausted its retries. A lane keeps one per event id (the latest).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DeadEvent {
    /// Identifies it among the lane's dead letters (embedded: increasing in order of death, but
    /// the job's own seq for one that holds its key, so a replay takes its old place; Redis: the
    /// job's stream position).
    pub seq: u64,
    /// The stored event.
    pub event: Event,
    /// Delivery attempts made, the last one included.
    pub attempts: u32,
    /// Error of the last attempt, as text for operators.
    pub last_error: String,
    /// When it was dead-lettered, ms since the Unix epoch.
    pub died_at_ms: u64,
    /// What kind of failure the last attempt was (a trailing field: see `record.rs`).
    #[serde(skip)]
    pub last_error_kind: ErrorKind,
    /// An ordered event dead-lettered with `on_dead = "block"`: its key's later events wait
    /// until it is replayed (and delivered first) or purged. A trailing field.
    #[serde(skip)]
    pub holds_key: bool,
}

impl DeadEvent {
    /// The dead letter of `job` after its last attempt failed with `error`, filed under `seq`
    /// (each backend numbers dead letters its own way). It holds the job's key when the route
    /// blocks on dead events and the job has one.
    pub fn of(job: &Job, error: &Failure, on_dead: OnDead, seq: u64) -> DeadEvent {
        DeadEvent {
            seq,
            event: job.event.clone(),
            attempts: job.attempts + 1,
            last_error: error.detail.clone(),
            died_at_ms: crate::embedded::now_ms(),
            last_error_kind: error.kind,
            holds_key: on_dead == OnDead::Block && job.event.order_key.is_some(),
        }
    }
}

/// How long ago an event received at `received_at_ms` arrived: a lane's queue age, the same on
/// every backend.
pub(crate) fn age_since(received_at_ms: u64) -> Duration {
    Duration::from_millis(crate::embedded::now_ms().saturating_sub(received_at_ms))
}

/// A lane's history as `Queue::history` returns it, from its attempts newest first: only
/// `event_id`'s if given, at most `limit`.
pub(crate) fn newest_attempts(
    newest_first: impl IntoIterator<Item = AttemptRecord>,
    event_id: Option<&str>,
    limit: usize,
) -> Vec<AttemptRecord> {
    let wanted = |r: &AttemptRecord| event_id.is_none_or(|id| r.event_id == id);
    newest_first
        .into_iter()
        .filter(wanted)
        .take(limit)
        .collect()
}

/// Ordered delivery in one lane, for the admin API and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OrderStats {
    /// Keys with at least one event held back behind an earlier one of the same key.
    pub waiting_keys: usize,
    /// Events held back behind an earlier event of their key (not yet receivable).
    pub waiting_events: usize,
    /// Keys held by a dead letter (`on_dead = "block"`).
    pub blocked_keys: usize,
    /// The key blocked the longest, if any.
    pub oldest_blocked: Option<BlockedKey>,
}

/// A key held by a dead letter.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BlockedKey {
    /// The `order_by` key.
    pub key: String,
    /// The dead event holding it.
    pub event_id: String,
    /// When that event was dead-lettered, ms since the Unix epoch.
    pub since_ms: u64,
}

/// One delivery attempt, as the delivery history keeps it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttemptRecord {
    /// The event attempted.
    pub event_id: String,
    /// Attempt number, 1-based.
    pub attempt: u32,
    /// The upstream's HTTP status; None when no answer came (timeout, refused).
    pub status: Option<u16>,
    /// Time from sending to the answer (or the failure).
    pub latency_ms: u64,
    /// When the attempt started, ms since the Unix epoch.
    pub at_ms: u64,
    /// Why it failed, if it did, as text for operators.
    pub error: Option<String>,
    /// The first 4 KiB of the upstream's answer.
    pub answer: bytes::Bytes,
    /// What kind of failure it was; None when delivered (a trailing field: see `record.rs`).
    #[serde(skip)]
    pub kind: Option<ErrorKind>,
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
    /// Redis failed, timed out or is unreachable: answer 503 + `Retry-After`.
    #[error("queue unavailable: {0}")]
    Redis(#[from] crate::redis_conn::RedisError),
}

impl From<StorageError> for QueueError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Busy => QueueError::Full,
            e => QueueError::Unavailable(e),
        }
    }
}

/// A queue backend. Each lane is its own queue, delivered in order of arrival.
pub trait Queue: Send + Sync {
    /// Stores `event` at the tail of its lane; durable (fsync'd or acknowledged by the server)
    /// when Ok. Returns its sequence number.
    fn enqueue(&self, event: Event) -> impl Future<Output = Result<u64, QueueError>> + Send;

    /// Enqueues several events (one per fan-out upstream) durably and atomically (one commit);
    /// all or none. Returns their sequence numbers in order.
    fn enqueue_all(
        &self,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<Vec<u64>, QueueError>> + Send;

    /// Waits until a job of `lane` is due and leases it. Cancel safe: nothing is leased unless
    /// returned (a backend may instead hand such a job out again after its visibility timeout).
    fn receive(&self, lane: &str) -> impl Future<Output = Result<Job, QueueError>> + Send;

    /// Removes a delivered job.
    fn ack(&self, job: &Job) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Records a failed attempt (attempts + 1, last_error) and makes the job due again at `at`.
    fn retry(
        &self,
        job: &Job,
        at: SystemTime,
        error: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Moves the job to its lane's dead letters, replacing an older one of the same event id.
    /// An ordered job releases its key to the next event of that key, or with
    /// [`OnDead::Block`] holds it until the dead letter is replayed or purged.
    fn dead_letter(
        &self,
        job: &Job,
        error: &Failure,
        on_dead: OnDead,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Jobs of `lane` not yet acknowledged (queued, waiting for a retry, or leased).
    fn depth(&self, lane: &str) -> impl Future<Output = Result<usize, QueueError>> + Send;

    /// Age of the oldest not-yet-delivered event of the lane, None when empty.
    fn oldest_age(
        &self,
        lane: &str,
    ) -> impl Future<Output = Result<Option<Duration>, QueueError>> + Send;

    /// Dead letters of a lane, newest first, at most `limit`.
    fn dead(
        &self,
        lane: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DeadEvent>, QueueError>> + Send;

    /// One dead event by its event id.
    fn dead_by_id(
        &self,
        lane: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<DeadEvent>, QueueError>> + Send;

    /// Back onto the queue (same event id, attempts reset); false if no such dead event. An
    /// ordered dead event that holds its key is its key's next delivery again; one that released
    /// it queues behind the key's events accepted since.
    fn replay(&self, lane: &str, id: &str)
    -> impl Future<Output = Result<bool, QueueError>> + Send;

    /// Ordered delivery in the lane: keys waiting and keys blocked. One pass over the lane's
    /// ordering state, for the admin API and metrics, not for a request path.
    fn ordering(&self, lane: &str) -> impl Future<Output = Result<OrderStats, QueueError>> + Send;

    /// Replays every dead event of the lane; returns how many went back on the queue.
    fn replay_all(&self, lane: &str) -> impl Future<Output = Result<usize, QueueError>> + Send;

    /// Deletes one dead event; false if there was none. One that held its key releases it.
    fn purge(&self, lane: &str, id: &str) -> impl Future<Output = Result<bool, QueueError>> + Send;

    /// Deletes every dead event of the lane; returns how many.
    fn purge_all(&self, lane: &str) -> impl Future<Output = Result<usize, QueueError>> + Send;

    /// Lanes that may hold queued, retrying or dead events, whatever the configuration says
    /// (e.g. of a route since removed); a lane listed may turn out empty. One pass over the
    /// store's lanes or keys, for the start of the gateway, not for a request path.
    fn stored_lanes(&self) -> impl Future<Output = Result<Vec<String>, QueueError>> + Send;

    /// Appends one delivery attempt to the lane's history, keeping the newest `HISTORY_MAX`.
    /// Not durable on its own: it rides along with the next write, so a crash may lose the
    /// newest lines (never an event).
    fn record_attempt(
        &self,
        lane: &str,
        rec: AttemptRecord,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Newest first, at most `limit`; optionally only one event id's attempts.
    fn history(
        &self,
        lane: &str,
        event_id: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AttemptRecord>, QueueError>> + Send;
}
