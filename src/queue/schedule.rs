//! The in-memory index of the queue: per route, which jobs are due when, and which are leased.
//!
//! Only (due, seq) pairs live here; events stay on disk until leased, so a long upstream
//! outage grows the file, not the heap.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// What a receiver should do next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// This job is now leased to the caller.
    Lease(u64),
    /// Nothing is due before this time (ms since the epoch).
    WaitUntil(u64),
    /// The route's queue is empty.
    Wait,
}

/// Per-route schedules behind one lock: every operation is a few map updates.
#[derive(Default)]
pub(super) struct Schedule {
    routes: Mutex<HashMap<String, RouteQueue>>,
}

#[derive(Default)]
struct RouteQueue {
    /// Jobs waiting, ordered by due time then order of arrival.
    due: BTreeSet<(u64, u64)>,
    /// Jobs handed to a worker and not yet acked, retried or dead-lettered.
    leased: HashSet<u64>,
    /// Wakes receivers when a job is added or becomes due earlier than they expect.
    notify: Arc<Notify>,
}

impl Schedule {
    /// Adds a stored job (new, retried, replayed or requeued) and wakes the route's receivers.
    pub(super) fn insert(&self, route: &str, due_ms: u64, seq: u64) {
        let mut routes = self.lock();
        let queue = entry(&mut routes, route);
        queue.leased.remove(&seq);
        queue.due.insert((due_ms, seq));
        // Every waiter re-checks: a sleeper may have to wake earlier for this job.
        queue.notify.notify_waiters();
    }

    /// Leases the earliest job due at `now_ms`, or says how long to wait.
    pub(super) fn lease(&self, route: &str, now_ms: u64) -> Next {
        let mut routes = self.lock();
        let queue = entry(&mut routes, route);
        match queue.due.first().copied() {
            Some((due, seq)) if due <= now_ms => {
                queue.due.remove(&(due, seq));
                queue.leased.insert(seq);
                Next::Lease(seq)
            }
            Some((due, _)) => Next::WaitUntil(due),
            None => Next::Wait,
        }
    }

    /// Forgets a leased job: acked, dead-lettered, or gone from disk.
    pub(super) fn remove(&self, route: &str, seq: u64) {
        if let Some(queue) = self.lock().get_mut(route) {
            queue.leased.remove(&seq);
        }
    }

    /// The route's wake-up signal; register with it before calling [`Schedule::lease`].
    pub(super) fn notifier(&self, route: &str) -> Arc<Notify> {
        Arc::clone(&entry(&mut self.lock(), route).notify)
    }

    /// Jobs of the route not yet acknowledged (waiting + leased).
    pub(super) fn depth(&self, route: &str) -> usize {
        self.lock()
            .get(route)
            .map_or(0, |q| q.due.len() + q.leased.len())
    }

    /// Routes (lanes) with jobs waiting or leased.
    pub(super) fn lanes(&self) -> Vec<String> {
        let routes = self.lock();
        let busy = routes
            .iter()
            .filter(|(_, q)| !q.due.is_empty() || !q.leased.is_empty());
        busy.map(|(name, _)| name.clone()).collect()
    }

    /// Adds the stored `jobs` (due, seq) of `route` that it neither holds nor has leased, due
    /// at their stored time; returns how many. For a store that may have undone acks.
    pub(super) fn restore(&self, route: &str, jobs: &[(u64, u64)]) -> usize {
        let mut routes = self.lock();
        let queue = entry(&mut routes, route);
        let known: HashSet<u64> = queue.due.iter().map(|(_, seq)| *seq).collect();
        let missing = jobs
            .iter()
            .filter(|(_, seq)| !known.contains(seq) && !queue.leased.contains(seq));
        let missing: Vec<(u64, u64)> = missing.copied().collect();
        queue.due.extend(missing.iter().copied());
        if !missing.is_empty() {
            queue.notify.notify_waiters();
        }
        missing.len()
    }

    /// Makes every leased job of every route due at `now_ms`; returns how many. Only for when
    /// no worker runs: their leases are abandoned (the workers were stopped or aborted).
    pub(super) fn release_all(&self, now_ms: u64) -> usize {
        let mut routes = self.lock();
        let mut released = 0;
        for queue in routes.values_mut() {
            released += queue.leased.len();
            for seq in queue.leased.drain() {
                queue.due.insert((now_ms, seq));
            }
            queue.notify.notify_waiters();
        }
        released
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, RouteQueue>> {
        // Each critical section leaves the maps consistent, so a panic elsewhere is harmless.
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn entry<'a>(routes: &'a mut HashMap<String, RouteQueue>, route: &str) -> &'a mut RouteQueue {
    if !routes.contains_key(route) {
        routes.insert(route.to_owned(), RouteQueue::default());
    }
    routes.get_mut(route).expect("inserted above")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_in_due_then_arrival_order() {
        let s = Schedule::default();
        s.insert("r", 10, 2);
        s.insert("r", 10, 1);
        s.insert("r", 50, 0);
        assert_eq!(s.lease("r", 5), Next::WaitUntil(10));
        assert_eq!(s.lease("r", 10), Next::Lease(1));
        assert_eq!(s.lease("r", 10), Next::Lease(2));
        assert_eq!(s.lease("r", 10), Next::WaitUntil(50));
        assert_eq!(s.depth("r"), 3);
        s.remove("r", 1);
        assert_eq!(s.depth("r"), 2);
        assert_eq!(s.lease("other", 10), Next::Wait);
    }

    #[test]
    fn released_leases_are_due_again() {
        let s = Schedule::default();
        s.insert("r", 10, 1);
        s.insert("r", 10, 2);
        assert_eq!(s.lease("r", 10), Next::Lease(1));
        assert_eq!(s.release_all(20), 1);
        assert_eq!(s.depth("r"), 2, "nothing lost, nothing doubled");
        assert_eq!(s.lease("r", 20), Next::Lease(2));
        assert_eq!(s.lease("r", 20), Next::Lease(1));
        assert_eq!(s.release_all(30), 2);
    }

    #[test]
    fn restore_adds_only_what_is_neither_due_nor_leased() {
        let s = Schedule::default();
        s.insert("r", 10, 1);
        s.insert("r", 10, 2);
        assert_eq!(s.lease("r", 10), Next::Lease(1));
        s.remove("r", 3); // never held: as if its ack had been undone
        assert_eq!(s.restore("r", &[(10, 1), (10, 2), (5, 3)]), 1);
        assert_eq!(s.depth("r"), 3, "1 leased, 2 and 3 due");
        assert_eq!(s.lease("r", 10), Next::Lease(3));
        assert_eq!(s.lease("r", 10), Next::Lease(2));
        assert_eq!(s.restore("r", &[(10, 1), (10, 2), (5, 3)]), 0);
    }
}
