//! On-disk encoding of queued jobs and dead letters.
//!
//! postcard: compact, driven by serde, and its wire format is stable across releases (1.x).
//!
//! Fields added after a record type was first written go *after* its serde fields, each an
//! `Option`, as trailing fields: postcard cannot skip a missing field in the middle, but a record
//! that ends early is one written before the field existed (and an older version reading a newer
//! record ignores what follows its own fields).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{AttemptRecord, DeadEvent, Event, Job};
use crate::deliver::ErrorKind;

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
    #[allow(dead_code)] // read by `due_and_key_of`
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
    // Sized up front (body, headers, the short fields): grown from empty, a 1 KiB body was
    // copied by several reallocations.
    let headers: usize = event
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum();
    let guess = event.body.len() + headers + event.route.len() + event.id.len() + 96;
    let mut out = postcard::to_extend(
        &StoredRef {
            due_ms,
            attempts,
            last_error,
            event,
        },
        Vec::with_capacity(guess),
    )?;
    push_trailing(&mut out, event.traceparent.as_deref())?;
    push_trailing(&mut out, event.order_key.as_deref())?;
    Ok(out)
}

/// Decodes a queued job read at `seq`.
pub(super) fn decode_job(seq: u64, bytes: &[u8]) -> Result<Job, postcard::Error> {
    let (stored, rest) = postcard::take_from_bytes::<Stored>(bytes)?;
    let mut event = stored.event;
    let (traceparent, rest) = trailing::<String>(rest)?;
    event.traceparent = traceparent;
    event.order_key = trailing::<String>(rest)?.0;
    Ok(Job {
        seq,
        event,
        attempts: stored.attempts,
        last_error: stored.last_error,
    })
}

/// An event as stored, borrowed: enough to read past it without copying its body.
#[derive(Deserialize)]
#[allow(dead_code)] // only read past
struct EventSkip<'a> {
    route: &'a str,
    id: &'a str,
    received_at_ms: u64,
    #[serde(borrow)]
    headers: Vec<(&'a str, &'a [u8])>,
    body: &'a [u8],
    dedup_unavailable: bool,
    event_type: Option<&'a str>,
    upstream: Option<&'a str>,
}

/// A queued job's serde fields, borrowed.
#[derive(Deserialize)]
#[allow(dead_code)] // only read past
struct StoredSkip<'a> {
    due_ms: u64,
    attempts: u32,
    last_error: Option<&'a str>,
    #[serde(borrow)]
    event: EventSkip<'a>,
}

/// Reads only the due time and the order key of an encoded job: rebuilding the schedule at
/// open must not decode (and copy) every body.
pub(super) fn due_and_key_of(bytes: &[u8]) -> Result<(u64, Option<&str>), postcard::Error> {
    let (stored, rest) = postcard::take_from_bytes::<StoredSkip<'_>>(bytes)?;
    let (_traceparent, rest) = trailing_str(rest)?;
    Ok((stored.due_ms, trailing_str(rest)?.0))
}

/// A dead letter's serde fields, borrowed.
#[derive(Deserialize)]
#[allow(dead_code)] // only read past
struct DeadSkip<'a> {
    seq: u64,
    #[serde(borrow)]
    event: EventSkip<'a>,
    attempts: u32,
    last_error: &'a str,
    died_at_ms: u64,
}

/// A dead letter holding its order key: (key, event id, died at ms).
pub(super) type Hold<'a> = (&'a str, &'a str, u64);

/// Reads only whether an encoded dead letter holds its order key, and which.
pub(super) fn hold_of(bytes: &[u8]) -> Result<Option<Hold<'_>>, postcard::Error> {
    let (dead, rest) = postcard::take_from_bytes::<DeadSkip<'_>>(bytes)?;
    let (_kind, rest) = trailing_str(rest)?;
    let (_traceparent, rest) = trailing_str(rest)?;
    let (key, rest) = trailing_str(rest)?;
    let holds = trailing::<bool>(rest)?.0.unwrap_or(false);
    Ok(key
        .filter(|_| holds)
        .map(|k| (k, dead.event.id, dead.died_at_ms)))
}

/// Encodes a dead letter; its error kind, its event's `traceparent` (a replay then continues
/// the event's trace), its order key and whether it holds that key trail.
pub(super) fn encode_dead(dead: &DeadEvent) -> Result<Vec<u8>, postcard::Error> {
    let mut out = postcard::to_stdvec(dead)?;
    push_trailing(&mut out, Some(dead.last_error_kind.name()))?;
    push_trailing(&mut out, dead.event.traceparent.as_deref())?;
    push_trailing(&mut out, dead.event.order_key.as_deref())?;
    push_trailing(&mut out, Some(dead.holds_key))?;
    Ok(out)
}

/// Decodes a dead letter; one written without a kind gets the kind its text suggests.
pub(super) fn decode_dead(bytes: &[u8]) -> Result<DeadEvent, postcard::Error> {
    let (mut dead, rest) = postcard::take_from_bytes::<DeadEvent>(bytes)?;
    let (kind, rest) = trailing::<String>(rest)?;
    dead.last_error_kind = match kind {
        Some(name) => ErrorKind::from_name(&name),
        None => ErrorKind::of_legacy(None, &dead.last_error),
    };
    let (traceparent, rest) = trailing::<String>(rest)?;
    dead.event.traceparent = traceparent;
    let (order_key, rest) = trailing::<String>(rest)?;
    dead.event.order_key = order_key;
    dead.holds_key = trailing::<bool>(rest)?.0.unwrap_or(false);
    Ok(dead)
}

/// Encodes a history line; its error kind trails.
pub(super) fn encode_attempt(rec: &AttemptRecord) -> Result<Vec<u8>, postcard::Error> {
    let text = rec.error.as_ref().map_or(0, String::len);
    let guess = rec.event_id.len() + text + rec.answer.len() + 48;
    let mut out = postcard::to_extend(rec, Vec::with_capacity(guess))?;
    push_trailing(&mut out, rec.kind.map(ErrorKind::name))?;
    Ok(out)
}

/// Decodes a history line. A failed one written without a kind (a new one always has one)
/// gets the kind its status or text suggests.
pub(super) fn decode_attempt(bytes: &[u8]) -> Result<AttemptRecord, postcard::Error> {
    let (mut rec, rest) = postcard::take_from_bytes::<AttemptRecord>(bytes)?;
    rec.kind = match trailing::<String>(rest)?.0 {
        Some(name) => Some(ErrorKind::from_name(&name)),
        None => rec
            .error
            .as_deref()
            .map(|e| ErrorKind::of_legacy(rec.status, e)),
    };
    Ok(rec)
}

/// Appends one optional trailing field.
fn push_trailing<T: Serialize>(out: &mut Vec<u8>, field: Option<T>) -> Result<(), postcard::Error> {
    *out = postcard::to_extend(&field, std::mem::take(out))?;
    Ok(())
}

/// Reads one optional trailing field and what follows it; `(None, [])` when the record ends
/// before it (written by a version without the field).
fn trailing<T: DeserializeOwned>(rest: &[u8]) -> Result<(Option<T>, &[u8]), postcard::Error> {
    if rest.is_empty() {
        return Ok((None, rest));
    }
    postcard::take_from_bytes::<Option<T>>(rest)
}

/// [`trailing`] for a string, borrowed from the record.
fn trailing_str(rest: &[u8]) -> Result<(Option<&str>, &[u8]), postcard::Error> {
    if rest.is_empty() {
        return Ok((None, rest));
    }
    postcard::take_from_bytes::<Option<&str>>(rest)
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
            traceparent: None,
            order_key: None,
        }
    }

    #[test]
    fn job_round_trips_and_due_reads_alone() {
        let bytes = encode_job(1234, 2, Some("503"), &event()).unwrap();
        assert_eq!(due_and_key_of(&bytes).unwrap(), (1234, None));
        let job = decode_job(9, &bytes).unwrap();
        assert_eq!((job.seq, job.attempts), (9, 2));
        assert_eq!(job.last_error.as_deref(), Some("503"));
        assert_eq!(job.event, event());
    }

    #[test]
    fn a_job_keeps_its_traceparent_and_an_old_job_has_none() {
        let mut ev = event();
        ev.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        let job = decode_job(1, &encode_job(5, 0, None, &ev).unwrap()).unwrap();
        assert_eq!(job.event, ev);
        // A record written before the field: the serde fields alone.
        let old = postcard::to_stdvec(&StoredRef {
            due_ms: 5,
            attempts: 1,
            last_error: Some("x"),
            event: &ev,
        })
        .unwrap();
        let job = decode_job(1, &old).unwrap();
        assert_eq!((job.event.traceparent, job.attempts), (None, 1));
        assert_eq!(due_and_key_of(&old).unwrap(), (5, None));
    }

    #[test]
    fn dead_round_trips_with_its_kind_and_traceparent() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let dead = DeadEvent {
            seq: 3,
            event: Event {
                traceparent: Some(traceparent.into()),
                ..event()
            },
            attempts: 5,
            last_error: "request failed: refused".into(),
            died_at_ms: 42,
            last_error_kind: ErrorKind::Connect,
            holds_key: false,
        };
        let back = decode_dead(&encode_dead(&dead).unwrap()).unwrap();
        assert_eq!((back.seq, back.attempts, back.died_at_ms), (3, 5, 42));
        assert_eq!(
            (&back.event, &back.last_error),
            (&dead.event, &dead.last_error)
        );
        assert_eq!(back.last_error_kind, ErrorKind::Connect);
    }

    /// A dead letter written before kinds existed: the serde fields alone.
    #[test]
    fn dead_without_a_kind_still_decodes() {
        let dead = DeadEvent {
            seq: 3,
            event: event(),
            attempts: 5,
            last_error: "timed out after 30s".into(),
            died_at_ms: 42,
            last_error_kind: ErrorKind::Unknown,
            holds_key: false,
        };
        let old = postcard::to_stdvec(&dead).unwrap();
        let back = decode_dead(&old).unwrap();
        assert_eq!((back.seq, back.last_error_kind), (3, ErrorKind::Timeout));
        let mut text = dead.clone();
        text.last_error = "request failed: x".into();
        let back = decode_dead(&postcard::to_stdvec(&text).unwrap()).unwrap();
        assert_eq!(back.last_error_kind, ErrorKind::Unknown);
    }

    #[test]
    fn order_keys_round_trip_in_jobs_and_dead_letters() {
        let ev = Event {
            order_key: Some("cus_1".into()),
            ..event()
        };
        let job = decode_job(1, &encode_job(5, 0, None, &ev).unwrap()).unwrap();
        assert_eq!(job.event.order_key.as_deref(), Some("cus_1"));
        assert_eq!(job.event, ev);
        let dead = DeadEvent {
            seq: 3,
            event: ev,
            attempts: 5,
            last_error: "x".into(),
            died_at_ms: 42,
            last_error_kind: ErrorKind::Timeout,
            holds_key: true,
        };
        let back = decode_dead(&encode_dead(&dead).unwrap()).unwrap();
        assert_eq!(back.event.order_key.as_deref(), Some("cus_1"));
        assert!(back.holds_key);
        // Written before ordering existed: kind and traceparent only.
        let mut old = postcard::to_stdvec(&dead).unwrap();
        push_trailing(&mut old, Some("timeout")).unwrap();
        push_trailing(&mut old, None::<&str>).unwrap();
        let back = decode_dead(&old).unwrap();
        assert_eq!((back.event.order_key, back.holds_key), (None, false));
        assert_eq!(hold_of(&old).unwrap(), None);
    }

    #[test]
    fn the_cheap_readers_find_key_and_hold() {
        let ev = Event {
            order_key: Some("cus_1".into()),
            traceparent: Some("00-tp".into()),
            ..event()
        };
        let bytes = encode_job(77, 1, Some("503"), &ev).unwrap();
        assert_eq!(due_and_key_of(&bytes).unwrap(), (77, Some("cus_1")));
        let plain = encode_job(78, 0, None, &event()).unwrap();
        assert_eq!(due_and_key_of(&plain).unwrap(), (78, None));
        let mut dead = DeadEvent {
            seq: 3,
            event: ev,
            attempts: 5,
            last_error: "x".into(),
            died_at_ms: 42,
            last_error_kind: ErrorKind::Timeout,
            holds_key: true,
        };
        let held = encode_dead(&dead).unwrap();
        assert_eq!(hold_of(&held).unwrap(), Some(("cus_1", "evt_1", 42)));
        dead.holds_key = false;
        assert_eq!(hold_of(&encode_dead(&dead).unwrap()).unwrap(), None);
    }

    fn attempt(kind: Option<ErrorKind>) -> AttemptRecord {
        AttemptRecord {
            event_id: "evt_1".into(),
            attempt: 2,
            status: Some(503),
            latency_ms: 7,
            at_ms: 1_700_000_000_000,
            error: kind.map(|_| "upstream answered 503".into()),
            answer: bytes::Bytes::from_static(b"busy"),
            kind,
        }
    }

    #[test]
    fn attempts_round_trip_with_their_kind() {
        for kind in [None, Some(ErrorKind::Tls), Some(ErrorKind::Status5xx)] {
            let rec = attempt(kind);
            assert_eq!(decode_attempt(&encode_attempt(&rec).unwrap()).unwrap(), rec);
        }
    }

    /// History lines written before kinds existed take theirs from the stored status.
    #[test]
    fn attempts_without_a_kind_still_decode() {
        let rec = attempt(Some(ErrorKind::Unknown));
        let back = decode_attempt(&postcard::to_stdvec(&rec).unwrap()).unwrap();
        assert_eq!(back.kind, Some(ErrorKind::Status5xx));
        let ok = attempt(None);
        assert_eq!(
            decode_attempt(&postcard::to_stdvec(&ok).unwrap()).unwrap(),
            ok
        );
    }
}
