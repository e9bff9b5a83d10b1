//! The queue backend chosen from config: a closed enum, so callers get static dispatch and no
//! boxed futures.

use std::time::{Duration, SystemTime};

use super::{
    AttemptRecord, DeadEvent, Event, Job, OrderStats, Queue, QueueError, embedded, redis_stream,
};
use crate::config::OnDead;
use crate::deliver::Failure;

/// The queue backend chosen from config; cheap to clone (handles share one store).
#[derive(Clone)]
pub enum Backend {
    /// The embedded redb queue (one replica).
    Embedded(embedded::EmbeddedQueue),
    /// Redis Streams, shared by every replica.
    Redis(redis_stream::RedisQueue),
}

impl Backend {
    /// At a graceful stop, once no worker runs: writes what is buffered in memory (embedded
    /// history lines) and hands leases back to the queue (Redis).
    pub async fn shutdown(&self) {
        match self {
            Backend::Embedded(q) => q.flush_history().await,
            Backend::Redis(q) => q.return_leases().await,
        }
    }

    /// Whether events can be stored now, else the reason code `/readyz` gives: the embedded
    /// store's last commit failed and it is not yet reopened, or Redis does not answer a PING.
    pub async fn ready(&self) -> Result<(), &'static str> {
        match self {
            Backend::Embedded(q) if q.db.is_healthy() => Ok(()),
            Backend::Embedded(_) => Err("storage_failing"),
            Backend::Redis(q) => q.ping().await.map_err(|_| "redis_unavailable"),
        }
    }

    /// Between two generations of workers (a reload), once the old one is gone: hands back
    /// the leases its stopped or aborted workers left, so the new one can deliver them at once.
    pub async fn return_leases(&self) {
        match self {
            Backend::Embedded(q) => q.return_leases(),
            Backend::Redis(q) => q.return_leases().await,
        }
    }
}

/// Forwards one call to whichever backend is configured.
macro_rules! each {
    ($self:ident, $q:ident => $call:expr) => {
        match $self {
            Backend::Embedded($q) => $call,
            Backend::Redis($q) => $call,
        }
    };
}

impl Queue for Backend {
    async fn enqueue(&self, event: Event) -> Result<u64, QueueError> {
        each!(self, q => q.enqueue(event).await)
    }

    /// Nothing to store (an event no upstream of the route wants) costs no write at all.
    async fn enqueue_all(&self, events: Vec<Event>) -> Result<Vec<u64>, QueueError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        each!(self, q => q.enqueue_all(events).await)
    }

    async fn receive(&self, lane: &str) -> Result<Job, QueueError> {
        each!(self, q => q.receive(lane).await)
    }

    async fn ack(&self, job: &Job) -> Result<(), QueueError> {
        each!(self, q => q.ack(job).await)
    }

    async fn retry(&self, job: &Job, at: SystemTime, error: &str) -> Result<(), QueueError> {
        each!(self, q => q.retry(job, at, error).await)
    }

    async fn dead_letter(
        &self,
        job: &Job,
        error: &Failure,
        on_dead: OnDead,
    ) -> Result<(), QueueError> {
        each!(self, q => q.dead_letter(job, error, on_dead).await)
    }

    async fn ordering(&self, lane: &str) -> Result<OrderStats, QueueError> {
        each!(self, q => q.ordering(lane).await)
    }

    async fn depth(&self, lane: &str) -> Result<usize, QueueError> {
        each!(self, q => q.depth(lane).await)
    }

    async fn oldest_age(&self, lane: &str) -> Result<Option<Duration>, QueueError> {
        each!(self, q => q.oldest_age(lane).await)
    }

    async fn dead(&self, lane: &str, limit: usize) -> Result<Vec<DeadEvent>, QueueError> {
        each!(self, q => q.dead(lane, limit).await)
    }

    async fn dead_by_id(&self, lane: &str, id: &str) -> Result<Option<DeadEvent>, QueueError> {
        each!(self, q => q.dead_by_id(lane, id).await)
    }

    async fn replay(&self, lane: &str, id: &str) -> Result<bool, QueueError> {
        each!(self, q => q.replay(lane, id).await)
    }

    async fn replay_all(&self, lane: &str) -> Result<usize, QueueError> {
        each!(self, q => q.replay_all(lane).await)
    }

    async fn purge(&self, lane: &str, id: &str) -> Result<bool, QueueError> {
        each!(self, q => q.purge(lane, id).await)
    }

    async fn purge_all(&self, lane: &str) -> Result<usize, QueueError> {
        each!(self, q => q.purge_all(lane).await)
    }

    async fn stored_lanes(&self) -> Result<Vec<String>, QueueError> {
        each!(self, q => q.stored_lanes().await)
    }

    async fn record_attempt(&self, lane: &str, rec: AttemptRecord) -> Result<(), QueueError> {
        each!(self, q => q.record_attempt(lane, rec).await)
    }

    async fn history(
        &self,
        lane: &str,
        event_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, QueueError> {
        each!(self, q => q.history(lane, event_id, limit).await)
    }
}
