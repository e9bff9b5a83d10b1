//! Reading a request body within `max_body`, `body_timeout` and the gateway-wide memory budget.
//!
//! `server.max_inflight_body` bounds the body bytes held in memory across all connections and
//! streams: each request reserves its bytes from one semaphore (bytes are permits) before holding
//! them — all of `Content-Length` up front, or as a streamed body's buffer grows — and gives them
//! back when the request is answered. A request that finds the budget spent gets 503 `overloaded`
//! + `Retry-After` instead of waiting, so memory stays bounded whatever the senders do.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::IngestError;

/// Body bytes that may be held in memory at once.
#[derive(Clone)]
pub struct Budget(Arc<Semaphore>);

/// Bytes reserved from the budget by one request; returned on drop.
pub struct Reserved(Option<OwnedSemaphorePermit>);

impl Budget {
    /// A budget of `bytes` (config caps it at 4 GiB).
    pub fn new(bytes: u64) -> Budget {
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        Budget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// Reserves `n` bytes now, or `Overloaded` when they are not free.
    pub fn reserve(&self, n: u64) -> Result<Reserved, IngestError> {
        let mut held = Reserved(None);
        held.grow(self, n)?;
        Ok(held)
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }
}

impl Reserved {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.0.as_ref().map_or(0, |p| p.num_permits() as u64)
    }

    /// Adds `n` bytes to the reservation.
    fn grow(&mut self, budget: &Budget, n: u64) -> Result<(), IngestError> {
        if n == 0 {
            return Ok(());
        }
        let n = u32::try_from(n).map_err(|_| IngestError::Overloaded)?;
        let more = budget
            .0
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| IngestError::Overloaded)?;
        match &mut self.0 {
            Some(held) => held.merge(more),
            None => self.0 = Some(more),
        }
        Ok(())
    }
}

/// Reads the whole body: refused up front when `Content-Length` is over `max`, cut off when a
/// streamed body grows past it, bounded in time so a slow sender cannot hold memory for long, and
/// reserved from `budget`. The reservation must be kept as long as the body is.
pub async fn read_body<B: Body<Data = Bytes> + Unpin>(
    headers: &HeaderMap,
    body: B,
    max: u64,
    timeout: Duration,
    budget: &Budget,
) -> Result<(Bytes, Reserved), IngestError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(IngestError::TooLarge);
    }
    let mut held = budget.reserve(declared.unwrap_or(0))?;
    let read = collect(body, max, budget, &mut held);
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(IngestError::BodyTimeout),
        Ok(Err(e)) => Err(e),
        Ok(Ok(bytes)) => Ok((bytes, held)),
    }
}

/// Collects the frames into one buffer whose capacity is always reserved in `held`.
async fn collect<B: Body<Data = Bytes> + Unpin>(
    mut body: B,
    max: u64,
    budget: &Budget,
    held: &mut Reserved,
) -> Result<Bytes, IngestError> {
    let mut buf = Vec::with_capacity(held.bytes() as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| IngestError::BodyRead)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing the pipeline reads
        };
        let len = buf.len() + data.len();
        if len as u64 > max {
            return Err(IngestError::TooLarge);
        }
        if len > buf.capacity() {
            // Doubling keeps copies few; never past `max`, so one body always fits the budget.
            let want = (buf.capacity() * 2).max(len).min(max as usize);
            held.grow(budget, (want as u64).saturating_sub(held.bytes()))?;
            buf.reserve_exact(want - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_refused_past_the_budget_and_returned_on_drop() {
        let budget = Budget::new(100);
        let a = budget.reserve(60).unwrap();
        assert!(matches!(budget.reserve(41), Err(IngestError::Overloaded)));
        let mut b = budget.reserve(40).unwrap();
        assert_eq!(budget.available(), 0);
        drop(a);
        b.grow(&budget, 60).unwrap();
        assert_eq!(b.bytes(), 100);
        drop(b);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn an_empty_reservation_holds_nothing() {
        let budget = Budget::new(1);
        let held = budget.reserve(0).unwrap();
        assert_eq!((held.bytes(), budget.available()), (0, 1));
    }
}
