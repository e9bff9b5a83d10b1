//! The in-memory index of the queue: per lane, which jobs are due when, and which are leased.
//!
//! Only (due, seq) pairs live here; events stay on disk until leased, so a long upstream
//! outage grows the file, not the heap.
//!
//! Ordered jobs (an `order_by` key) also sit in their key's chain: only the chain's active job
//! (its oldest) is in `due` or `leased`; the others are held until it is settled. Seqs grow in
//! order of acceptance, and a replayed dead letter that held its key keeps its old seq, so a
//! chain in seq order is the key's delivery order, also when rebuilt after a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::{BlockedKey, OrderStats};

/// What a receiver should do next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// This job is now leased to the caller.
    Lease(u64),
    /// Nothing is due before this time (ms since the epoch).
    WaitUntil(u64),
    /// The lane's queue is empty.
    Wait,
}

/// Per-lane schedules behind one lock: every operation is a few map updates.
#[derive(Default)]
pub(super) struct Schedule {
    lanes: Mutex<HashMap<String, LaneQueue>>,
}

#[derive(Default)]
struct LaneQueue {
    /// Jobs waiting, ordered by due time then order of arrival.
    due: BTreeSet<(u64, u64)>,
    /// Jobs handed to a worker and not yet acked, retried or dead-lettered.
    leased: HashSet<u64>,
    /// Ordered jobs by key.
    chains: HashMap<Arc<str>, Chain>,
    /// The key of every ordered job in `chains`.
    keys: HashMap<u64, Arc<str>>,
    /// Jobs held in chains behind their key's active job (counted in the depth).
    held: usize,
    /// Wakes receivers when a job is added or becomes due earlier than they expect.
    notify: Arc<Notify>,
}

/// One key's jobs in one lane.
#[derive(Default)]
struct Chain {
    /// The job in `due` or `leased`, if any.
    active: Option<u64>,
    /// Jobs waiting behind it: seq -> due time once it is their turn.
    held: BTreeMap<u64, u64>,
    /// A dead letter holding the key (`on_dead = "block"`): (event id, since ms).
    blocked: Option<(String, u64)>,
}

impl Chain {
    fn is_empty(&self) -> bool {
        self.active.is_none() && self.held.is_empty() && self.blocked.is_none()
    }
}

impl LaneQueue {
    /// Makes the key's oldest held job active if the key is free; true if one became due.
    fn pump(&mut self, key: &str) -> bool {
        let Some(chain) = self.chains.get_mut(key) else {
            return false;
        };
        if chain.active.is_some() || chain.blocked.is_some() {
            return false;
        }
        let Some((seq, due)) = chain.held.pop_first() else {
            if chain.is_empty() {
                self.chains.remove(key);
            }
            return false;
        };
        chain.active = Some(seq);
        self.held -= 1;
        self.due.insert((due, seq));
        true
    }

    /// Drops a job from its chain (settled or gone); false if it is not an ordered job.
    fn unchain(&mut self, seq: u64) -> bool {
        let Some(key) = self.keys.remove(&seq) else {
            return false;
        };
        if let Some(chain) = self.chains.get_mut(&key) {
            if chain.active == Some(seq) {
                chain.active = None;
            } else if chain.held.remove(&seq).is_some() {
                self.held -= 1;
            }
        }
        if self.pump(&key) {
            self.notify.notify_waiters();
        }
        true
    }
}

impl Schedule {
    /// Adds a stored job (new, retried, replayed or requeued) and wakes the lane's receivers.
    /// `key` is the job's `order_by` key; a job the schedule already knows keeps its own.
    pub(super) fn insert(&self, lane: &str, due_ms: u64, seq: u64, key: Option<&str>) {
        let mut lanes = self.lock();
        let queue = entry(&mut lanes, lane);
        queue.leased.remove(&seq);
        let known = queue.keys.get(&seq).cloned();
        match (known, key) {
            (None, None) => {
                queue.due.insert((due_ms, seq));
            }
            (Some(key), _) => {
                let chain = queue.chains.entry(key).or_default();
                if chain.active == Some(seq) {
                    queue.due.insert((due_ms, seq));
                } else {
                    chain.held.insert(seq, due_ms);
                }
            }
            (None, Some(key)) => {
                let key: Arc<str> = queue
                    .chains
                    .get_key_value(key)
                    .map_or_else(|| Arc::from(key), |(k, _)| Arc::clone(k));
                queue.keys.insert(seq, Arc::clone(&key));
                queue
                    .chains
                    .entry(Arc::clone(&key))
                    .or_default()
                    .held
                    .insert(seq, due_ms);
                queue.held += 1;
                queue.pump(&key);
            }
        }
        // Every waiter re-checks: a sleeper may have to wake earlier for this job.
        queue.notify.notify_waiters();
    }

    /// Adds the stored unordered jobs of a lane, `(due_ms, seq)`, at once: the schedule rebuilt
    /// at open. Built from sorted input, the set's nodes are full; inserted one by one in seq
    /// order, each node keeps 6 of its 11 slots, and a million queued jobs cost ~34 MB instead
    /// of ~18 (docs/performance.md, "Kept: the schedule of a stored backlog built at once").
    pub(super) fn load(&self, lane: &str, jobs: Vec<(u64, u64)>) {
        let mut lanes = self.lock();
        let queue = entry(&mut lanes, lane);
        let mut jobs: BTreeSet<(u64, u64)> = jobs.into_iter().collect();
        // `append` merges by building anew from both sorted sets: full nodes as well.
        queue.due.append(&mut jobs);
        queue.notify.notify_waiters();
    }

    /// Leases the earliest job due at `now_ms`, or says how long to wait.
    pub(super) fn lease(&self, lane: &str, now_ms: u64) -> Next {
        let mut lanes = self.lock();
        let queue = entry(&mut lanes, lane);
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

    /// Forgets a leased job: acked, dead-lettered, or gone from disk. An ordered job hands its
    /// key to the key's next job.
    pub(super) fn remove(&self, lane: &str, seq: u64) {
        if let Some(queue) = self.lock().get_mut(lane) {
            queue.leased.remove(&seq);
            queue.unchain(seq);
        }
    }

    /// Forgets a leased ordered job that died holding its key: the key's later jobs wait until
    /// [`Schedule::unblock`].
    pub(super) fn remove_blocking(&self, lane: &str, seq: u64, event_id: &str, since_ms: u64) {
        let mut lanes = self.lock();
        let queue = entry(&mut lanes, lane);
        queue.leased.remove(&seq);
        if let Some(key) = queue.keys.get(&seq).cloned() {
            queue.chains.entry(key).or_default().blocked = Some((event_id.to_owned(), since_ms));
            queue.unchain(seq);
        }
    }

    /// Marks `key` as held by the dead event `event_id` (rebuilding the schedule at open).
    pub(super) fn block(&self, lane: &str, key: &str, event_id: &str, since_ms: u64) {
        let mut lanes = self.lock();
        let queue = entry(&mut lanes, lane);
        let chain = queue.chains.entry(Arc::from(key)).or_default();
        chain.blocked = Some((event_id.to_owned(), since_ms));
    }

    /// Releases a key held by a dead letter (replayed or purged): its next job is due.
    pub(super) fn unblock(&self, lane: &str, key: &str) {
        let mut lanes = self.lock();
        let queue = entry(&mut lanes, lane);
        if let Some(chain) = queue.chains.get_mut(key) {
            chain.blocked = None;
        }
        queue.pump(key);
        queue.notify.notify_waiters();
    }

    /// Releases every blocked key of the lane (its dead letters were purged).
    pub(super) fn unblock_all(&self, lane: &str) {
        let mut lanes = self.lock();
        let queue = entry(&mut lanes, lane);
        let blocked: Vec<Arc<str>> = queue
            .chains
            .iter_mut()
            .filter_map(|(k, c)| c.blocked.take().map(|_| Arc::clone(k)))
            .collect();
        for key in blocked {
            queue.pump(&key);
        }
        queue.notify.notify_waiters();
    }

    /// The lane's ordered keys: how many wait and which are blocked.
    pub(super) fn ordering(&self, lane: &str) -> OrderStats {
        let lanes = self.lock();
        let Some(queue) = lanes.get(lane) else {
            return OrderStats::default();
        };
        let mut stats = OrderStats {
            waiting_events: queue.held,
            ..OrderStats::default()
        };
        for (key, chain) in &queue.chains {
            stats.waiting_keys += usize::from(!chain.held.is_empty());
            let Some((id, since)) = &chain.blocked else {
                continue;
            };
            stats.blocked_keys += 1;
            if stats
                .oldest_blocked
                .as_ref()
                .is_none_or(|b| *since < b.since_ms)
            {
                stats.oldest_blocked = Some(BlockedKey {
                    key: key.to_string(),
                    event_id: id.clone(),
                    since_ms: *since,
                });
            }
        }
        stats
    }

    /// The lane's wake-up signal; register with it before calling [`Schedule::lease`].
    pub(super) fn notifier(&self, lane: &str) -> Arc<Notify> {
        Arc::clone(&entry(&mut self.lock(), lane).notify)
    }

    /// Jobs of the lane not yet acknowledged (waiting + leased + held behind their key).
    pub(super) fn depth(&self, lane: &str) -> usize {
        self.lock()
            .get(lane)
            .map_or(0, |q| q.due.len() + q.leased.len() + q.held)
    }

    /// Routes (lanes) with jobs waiting, held or leased.
    pub(super) fn lanes(&self) -> Vec<String> {
        let lanes = self.lock();
        let busy = lanes
            .iter()
            .filter(|(_, q)| !q.due.is_empty() || !q.leased.is_empty() || q.held > 0);
        busy.map(|(name, _)| name.clone()).collect()
    }

    /// Adds the stored `jobs` (due, seq, key) of `lane` that it neither holds nor has leased,
    /// due at their stored time; returns how many. For a store that may have undone acks.
    pub(super) fn restore(&self, lane: &str, jobs: &[(u64, u64, Option<String>)]) -> usize {
        let missing: Vec<&(u64, u64, Option<String>)> = {
            let mut lanes = self.lock();
            let queue = entry(&mut lanes, lane);
            let known: HashSet<u64> = queue.due.iter().map(|(_, seq)| *seq).collect();
            jobs.iter()
                .filter(|(_, seq, _)| {
                    !known.contains(seq)
                        && !queue.leased.contains(seq)
                        && !queue.keys.contains_key(seq)
                })
                .collect()
        };
        for (due, seq, key) in &missing {
            self.insert(lane, *due, *seq, key.as_deref());
        }
        missing.len()
    }

    /// Makes every leased job of every lane due at `now_ms`; returns how many. Only for when
    /// no worker runs: their leases are abandoned (the workers were stopped or aborted).
    pub(super) fn release_all(&self, now_ms: u64) -> usize {
        let mut lanes = self.lock();
        let mut released = 0;
        for queue in lanes.values_mut() {
            released += queue.leased.len();
            for seq in queue.leased.drain() {
                queue.due.insert((now_ms, seq));
            }
            queue.notify.notify_waiters();
        }
        released
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, LaneQueue>> {
        // Each critical section leaves the maps consistent, so a panic elsewhere is harmless.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn entry<'a>(lanes: &'a mut HashMap<String, LaneQueue>, lane: &str) -> &'a mut LaneQueue {
    if !lanes.contains_key(lane) {
        lanes.insert(lane.to_owned(), LaneQueue::default());
    }
    lanes.get_mut(lane).expect("inserted above")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_in_due_then_arrival_order() {
        let s = Schedule::default();
        s.insert("r", 10, 2, None);
        s.insert("r", 10, 1, None);
        s.insert("r", 50, 0, None);
        assert_eq!(s.lease("r", 5), Next::WaitUntil(10));
        assert_eq!(s.lease("r", 10), Next::Lease(1));
        assert_eq!(s.lease("r", 10), Next::Lease(2));
        assert_eq!(s.lease("r", 10), Next::WaitUntil(50));
        assert_eq!(s.depth("r"), 3);
        s.remove("r", 1);
        assert_eq!(s.depth("r"), 2);
        assert_eq!(s.lease("other", 10), Next::Wait);
    }

    /// Jobs loaded at once keep due-then-arrival order, merge with jobs already there and
    /// count in the depth like jobs inserted one by one.
    #[test]
    fn loaded_jobs_lease_like_inserted_ones() {
        let s = Schedule::default();
        s.insert("r", 10, 5, None);
        s.load("r", vec![(50, 0), (10, 2), (10, 1), (5, 9)]);
        s.load("other", vec![]);
        assert_eq!(s.depth("r"), 5);
        let leased: Vec<Next> = (0..5).map(|_| s.lease("r", 10)).collect();
        use Next::*;
        assert_eq!(
            leased,
            [Lease(9), Lease(1), Lease(2), Lease(5), WaitUntil(50)]
        );
        assert_eq!(s.lease("other", 10), Wait);
    }

    #[test]
    fn released_leases_are_due_again() {
        let s = Schedule::default();
        s.insert("r", 10, 1, None);
        s.insert("r", 10, 2, None);
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
        s.insert("r", 10, 1, None);
        s.insert("r", 10, 2, None);
        assert_eq!(s.lease("r", 10), Next::Lease(1));
        s.remove("r", 3); // never held: as if its ack had been undone
        assert_eq!(
            s.restore("r", &[(10, 1, None), (10, 2, None), (5, 3, None)]),
            1
        );
        assert_eq!(s.depth("r"), 3, "1 leased, 2 and 3 due");
        assert_eq!(s.lease("r", 10), Next::Lease(3));
        assert_eq!(s.lease("r", 10), Next::Lease(2));
        assert_eq!(
            s.restore("r", &[(10, 1, None), (10, 2, None), (5, 3, None)]),
            0
        );
    }

    #[test]
    fn a_key_has_one_job_out_at_a_time_and_held_jobs_count_in_the_depth() {
        let s = Schedule::default();
        s.insert("r", 10, 1, Some("A"));
        s.insert("r", 10, 2, Some("A"));
        s.insert("r", 10, 3, Some("B"));
        s.insert("r", 10, 4, None);
        assert_eq!(s.depth("r"), 4);
        assert_eq!(s.lease("r", 10), Next::Lease(1));
        assert_eq!(s.lease("r", 10), Next::Lease(3));
        assert_eq!(s.lease("r", 10), Next::Lease(4));
        assert_eq!(s.lease("r", 10), Next::Wait, "2 is held behind 1");
        let stats = s.ordering("r");
        assert_eq!((stats.waiting_keys, stats.waiting_events), (1, 1));
        // A retry keeps the key: 1 is due again, 2 still held.
        s.insert("r", 20, 1, None);
        assert_eq!(s.lease("r", 15), Next::WaitUntil(20));
        assert_eq!(s.lease("r", 20), Next::Lease(1));
        s.remove("r", 1);
        assert_eq!(s.lease("r", 20), Next::Lease(2), "the ack handed A on");
        s.remove("r", 2);
        assert_eq!(s.depth("r"), 2, "3 and 4 leased");
        assert_eq!(s.ordering("r"), OrderStats::default());
    }

    #[test]
    fn a_blocked_key_waits_for_its_dead_job_to_come_back_first() {
        let s = Schedule::default();
        for seq in [1, 2, 3] {
            s.insert("r", 10, seq, Some("A"));
        }
        assert_eq!(s.lease("r", 10), Next::Lease(1));
        s.remove_blocking("r", 1, "a1", 99);
        assert_eq!(s.lease("r", 10), Next::Wait);
        let stats = s.ordering("r");
        assert_eq!((stats.waiting_events, stats.blocked_keys), (2, 1));
        assert_eq!(stats.oldest_blocked.map(|b| b.since_ms), Some(99));
        assert_eq!(s.depth("r"), 2, "the dead job is not in the depth");
        // The replay goes back under its old seq, then the key is freed: it is first.
        s.insert("r", 10, 1, Some("A"));
        assert_eq!(
            s.lease("r", 10),
            Next::Wait,
            "still blocked until unblocked"
        );
        s.unblock("r", "A");
        assert_eq!(s.lease("r", 10), Next::Lease(1));
        s.remove("r", 1);
        assert_eq!(s.lease("r", 10), Next::Lease(2));
    }

    #[test]
    fn unblock_all_frees_every_blocked_key_and_block_at_open_holds_what_follows() {
        let s = Schedule::default();
        s.block("r", "A", "a1", 5);
        s.block("r", "B", "b1", 3);
        s.insert("r", 10, 7, Some("A"));
        s.insert("r", 10, 8, Some("B"));
        assert_eq!(s.lease("r", 10), Next::Wait);
        let oldest = s.ordering("r").oldest_blocked.unwrap();
        assert_eq!((oldest.key.as_str(), oldest.event_id.as_str()), ("B", "b1"));
        s.unblock_all("r");
        assert_eq!(s.lease("r", 10), Next::Lease(7));
        assert_eq!(s.lease("r", 10), Next::Lease(8));
        assert_eq!(s.ordering("r").blocked_keys, 0);
    }
}
