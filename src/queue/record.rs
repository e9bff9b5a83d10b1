//! On-disk encoding of queued jobs and dead letters.
//!
//! postcard: compact, driven by serde, and its wire format is stable across releases (1.x).

use serde::{Deserialize, Serialize};

use super::{DeadEvent, Event, Job};

/// A queued job as written. `due_ms` comes first so a restart can rebuild the schedule by
/// decoding one varint per record instead of every event.
#[derive(Serialize)]
struct StoredRef<'a> {
    due_ms: u64,
    attempts: u32,
    last_error: Option<&'a str>,
    event: &'a Event,
}

/// The same record, read back.
#[derive(Deserialize)]
struct Stored {
    #[allow(dead_code)] // read alone by `due_of`
    due_ms: u64,
    attempts: u32,
    last_error: Option<String>,
    event: Event,
}

/// Encodes a queued job due at `due_ms`.
pub(super) fn encode_job(
    due_ms: u64,
    attempts: u32,
    last_error: Option<&str>,
    event: &Event,
) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(&StoredRef {
        due_ms,
        attempts,
        last_error,
        event,
    })
}

/// Decodes a queued job read at `seq`.
pub(super) fn decode_job(seq: u64, bytes: &[u8]) -> Result<Job, postcard::Error> {
    let stored: Stored = postcard::from_bytes(bytes)?;
    Ok(Job {
        seq,
        event: stored.event,
        attempts: stored.attempts,
        last_error: stored.last_error,
    })
}

/// Reads only the due time of an encoded job.
pub(super) fn due_of(bytes: &[u8]) -> Result<u64, postcard::Error> {
    let (due, _rest) = postcard::take_from_bytes::<u64>(bytes)?;
    Ok(due)
}

/// Encodes a dead letter.
pub(super) fn encode_dead(dead: &DeadEvent) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(dead)
}

/// Decodes a dead letter.
pub(super) fn decode_dead(bytes: &[u8]) -> Result<DeadEvent, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            route: "stripe".into(),
            id: "evt_1".into(),
            received_at_ms: 1_700_000_000_000,
            headers: vec![("content-type".into(), "application/json".into())],
            body: bytes::Bytes::from_static(b"{\"id\":\"evt_1\"}"),
            dedup_unavailable: true,
            event_type: Some("invoice.paid".into()),
            upstream: Some("billing".into()),
        }
    }

    #[test]
    fn job_round_trips_and_due_reads_alone() {
        let bytes = encode_job(1234, 2, Some("503"), &event()).unwrap();
        assert_eq!(due_of(&bytes).unwrap(), 1234);
        let job = decode_job(9, &bytes).unwrap();
        assert_eq!((job.seq, job.attempts), (9, 2));
        assert_eq!(job.last_error.as_deref(), Some("503"));
        assert_eq!(job.event, event());
    }

    #[test]
    fn dead_round_trips() {
        let dead = DeadEvent {
            seq: 3,
            event: event(),
            attempts: 5,
            last_error: "timeout".into(),
            died_at_ms: 42,
        };
        let back = decode_dead(&encode_dead(&dead).unwrap()).unwrap();
        assert_eq!((back.seq, back.attempts, back.died_at_ms), (3, 5, 42));
        assert_eq!((back.event, back.last_error), (event(), dead.last_error));
    }
}
