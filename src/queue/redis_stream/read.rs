//! Receiving: reclaim leases of dead replicas, move due retries back, then read new entries.
//!
//! Each step is cheap when there is nothing to do, and the two housekeeping steps run at most
//! every so often per shard, so a busy lane pays one `XREADGROUP` per `READ_BATCH` jobs: a read
//! takes up to that many new entries, and the ones not handed out at once wait in the shard's
//! buffer (leased to this replica in Redis like any other).
//!
//! A sharded lane is read in turns: a pass visits every shard once, starting one further than
//! the last pass, reading without blocking except at the pass's last shard, which blocks up to
//! `POLL`. A busy lane finds work at once; an idle one costs about one command per shard per
//! `POLL`, and an event that lands on an idle lane waits at most one `POLL` plus a pass.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};

use super::{GROUP, Keys, RedisQueue, scripts, seq_of};
use crate::embedded::now_ms;
use crate::queue::{Job, QueueError, record};
use crate::redis_conn::{Conn, RedisError};

/// Longest blocking read; also how often due retries scheduled by other replicas are noticed.
const POLL: Duration = Duration::from_millis(250);
/// How often a lane looks for leases of dead replicas.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);
/// Retries moved back per script run (bounds the time the script holds Redis).
const MOVE_BATCH: usize = 100;
/// Leases returned per lane at shutdown (a lane holds at most its concurrency).
const RETURN_BATCH: usize = 1000;
/// Idle blocking-read connections kept for reuse.
const MAX_IDLE_READERS: usize = 64;
/// New entries one read takes. A job buffered here waits for this replica's next receive of the
/// lane; a few per read saves most of the reads of a busy lane without hoarding a backlog that
/// other replicas could deliver.
const READ_BATCH: usize = 8;

/// What one replica remembers about a lane between receives.
#[derive(Default)]
pub(super) struct LaneState {
    /// The shard the next pass starts at.
    next: u32,
    shards: Vec<ShardState>,
}

/// What one replica remembers about a shard of a lane.
struct ShardState {
    group_ready: bool,
    reclaim_at: Instant,
    /// When the mover should run next, ms since the epoch.
    move_at_ms: u64,
    /// Entries read but not handed out yet, with when they were read.
    buffered: VecDeque<(Instant, StreamId)>,
}

impl Default for ShardState {
    fn default() -> Self {
        ShardState {
            group_ready: false,
            reclaim_at: Instant::now(),
            move_at_ms: 0,
            buffered: VecDeque::new(),
        }
    }
}

impl LaneState {
    fn shard(&mut self, shard: u32) -> &mut ShardState {
        let i = shard as usize;
        if self.shards.len() <= i {
            self.shards.resize_with(i + 1, ShardState::default);
        }
        &mut self.shards[i]
    }
}

impl RedisQueue {
    /// Waits for the lane's next job. A read cancelled in flight may leave an entry leased to
    /// this replica; it is reclaimed after the visibility timeout, never lost.
    pub(super) async fn next_job(&self, lane: &str) -> Result<Job, QueueError> {
        let count = self.redis.shards();
        loop {
            let start = {
                let mut lanes = self.lanes();
                let state = lanes.entry(lane.to_owned()).or_default();
                let start = state.next % count;
                state.next = (start + 1) % count;
                start
            };
            for i in 0..count {
                let shard = (start + i) % count;
                let keys = self.keys(lane, shard);
                self.ensure_group(lane, shard, &keys).await?;
                let block = i + 1 == count;
                match self.step(lane, shard, &keys, block).await {
                    Ok(Some(job)) => return Ok(job),
                    Ok(None) => {}
                    // The stream vanished (purged, or Redis restarted without persistence).
                    Err(RedisError::Command(e)) if e.code() == Some("NOGROUP") => {
                        self.shard_state(lane, shard, |s| s.group_ready = false);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    /// Runs `f` on what this replica remembers of a shard of a lane.
    fn shard_state<T>(&self, lane: &str, shard: u32, f: impl FnOnce(&mut ShardState) -> T) -> T {
        let mut lanes = self.lanes();
        f(lanes.entry(lane.to_owned()).or_default().shard(shard))
    }

    /// Hands every lease of this replica back to the queue (call once no worker runs), so a
    /// graceful restart does not wait out the visibility timeout. Logs what it cannot do.
    pub async fn return_leases(&self) {
        // Buffered entries are leases too: they go back with the rest, and must not be handed
        // out again from here.
        let lanes: Vec<String> = {
            let mut lanes = self.lanes();
            let shards = lanes.values_mut().flat_map(|l| l.shards.iter_mut());
            shards.for_each(|s| s.buffered.clear());
            lanes.keys().cloned().collect()
        };
        for (lane, shard) in lanes
            .iter()
            .flat_map(|l| self.shards().map(move |s| (l, s)))
        {
            let keys = self.keys(lane, shard);
            let mut call = scripts::RETURN_LEASES.key(&keys.stream);
            call.arg(GROUP).arg(&*self.consumer).arg(RETURN_BATCH);
            let mut conn = self.redis.conn();
            match self.redis.run(call.invoke_async::<u64>(&mut conn)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(lane, returned = n, "leased events returned to the queue"),
                Err(e) => {
                    tracing::warn!(lane, error = %e, "could not return leases; another replica takes them over after the visibility timeout")
                }
            }
        }
    }

    /// Lets this replica's receivers pick up a retry due at `due_ms` without waiting a poll.
    pub(super) fn due_at(&self, lane: &str, shard: u32, due_ms: u64) {
        self.shard_state(lane, shard, |s| s.move_at_ms = s.move_at_ms.min(due_ms));
    }

    /// One shard's turn: a reclaimed lease, else a due retry moved back, else a new entry,
    /// read with `block` up to the next due retry (at most `POLL`), else without blocking.
    async fn step(
        &self,
        lane: &str,
        shard: u32,
        keys: &Keys,
        block: bool,
    ) -> Result<Option<Job>, RedisError> {
        if let Some(entry) = self.buffered(lane, shard) {
            return self.accept(lane, keys, entry).await;
        }
        if let Some(entry) = self.reclaim(lane, shard, keys).await? {
            return self.accept(lane, keys, entry).await;
        }
        let wait = self.move_due(lane, shard, keys).await?;
        let read = match block {
            true => self.read_new(keys, wait).await?,
            false => self.read_ready(keys).await?,
        };
        let mut read = read.into_iter();
        let Some(first) = read.next() else {
            return Ok(None);
        };
        let now = Instant::now();
        self.shard_state(lane, shard, |s| {
            s.buffered.extend(read.map(|entry| (now, entry)));
        });
        self.accept(lane, keys, first).await
    }

    /// The oldest buffered entry still fresh. One buffered for half the visibility timeout is
    /// dropped instead: another replica may take it over soon, and delivering it here too would
    /// deliver it twice. It stays leased to this replica, so a reclaim brings it back if none
    /// does; nothing is lost.
    fn buffered(&self, lane: &str, shard: u32) -> Option<StreamId> {
        let stale = self.visibility / 2;
        self.shard_state(lane, shard, |s| {
            while let Some((at, entry)) = s.buffered.pop_front() {
                if at.elapsed() < stale {
                    return Some(entry);
                }
            }
            None
        })
    }

    /// Creates the consumer group (and the stream) once; start id 0 so nothing added before
    /// is skipped.
    async fn ensure_group(&self, lane: &str, shard: u32, keys: &Keys) -> Result<(), RedisError> {
        if self.shard_state(lane, shard, |s| s.group_ready) {
            return Ok(());
        }
        let mut create = redis::cmd("XGROUP");
        create
            .arg("CREATE")
            .arg(&keys.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self.redis.query::<()>(&create).await {
            Ok(()) => {}
            Err(RedisError::Command(e)) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        self.shard_state(lane, shard, |s| s.group_ready = true);
        Ok(())
    }

    /// Takes over one entry leased longer than the visibility timeout (its replica died).
    async fn reclaim(
        &self,
        lane: &str,
        shard: u32,
        keys: &Keys,
    ) -> Result<Option<StreamId>, RedisError> {
        if self.shard_state(lane, shard, |s| s.reclaim_at > Instant::now()) {
            return Ok(None);
        }
        let idle_ms = self.visibility.as_millis() as u64;
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&keys.stream)
            .arg(GROUP)
            .arg(&*self.consumer)
            .arg(idle_ms);
        cmd.arg("0-0").arg("COUNT").arg(1);
        let reply: StreamAutoClaimReply = self.redis.query(&cmd).await?;
        let entry = reply.claimed.into_iter().next();
        match &entry {
            Some(e) => {
                tracing::warn!(lane, entry = %e.id, "took over an event leased by a replica that stopped answering")
            }
            // Nothing stale: look again later. (After a find, look again at once.)
            None => self.shard_state(lane, shard, |s| {
                s.reclaim_at = Instant::now() + RECLAIM_EVERY
            }),
        }
        Ok(entry)
    }

    /// Runs the mover when a retry may be due; returns how long a read may block.
    async fn move_due(&self, lane: &str, shard: u32, keys: &Keys) -> Result<Duration, RedisError> {
        let now = now_ms();
        let move_at = self.shard_state(lane, shard, |s| s.move_at_ms);
        let next = if move_at <= now {
            let mut conn = self.redis.conn();
            let mut call = scripts::MOVE_DUE.key(&keys.retry);
            call.key(&keys.stream).arg(now).arg(MOVE_BATCH);
            let (_moved, next): (u64, String) =
                self.redis.run(call.invoke_async(&mut conn)).await?;
            let poll = now + POLL.as_millis() as u64;
            let next = next
                .parse::<f64>()
                .map_or(poll, |due| (due as u64).min(poll));
            self.shard_state(lane, shard, |s| s.move_at_ms = next);
            next
        } else {
            move_at
        };
        let wait = Duration::from_millis(next.saturating_sub(now));
        Ok(wait.clamp(Duration::from_millis(1), POLL))
    }

    /// Reads up to `READ_BATCH` new entries, blocking up to `block` on a connection of its own.
    async fn read_new(&self, keys: &Keys, block: Duration) -> Result<Vec<StreamId>, RedisError> {
        let mut conn = self.reader().await?;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(&*self.consumer);
        cmd.arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(block.as_millis() as u64);
        cmd.arg("STREAMS").arg(&keys.stream).arg(">");
        let limit = block + self.redis.op_timeout();
        let reply: Option<StreamReadReply> =
            self.redis.within(limit, cmd.query_async(&mut conn)).await?;
        self.give_back(conn);
        Ok(entries(reply))
    }

    /// Reads up to `READ_BATCH` new entries without blocking (on the shared connection).
    async fn read_ready(&self, keys: &Keys) -> Result<Vec<StreamId>, RedisError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(&*self.consumer);
        cmd.arg("COUNT").arg(READ_BATCH);
        cmd.arg("STREAMS").arg(&keys.stream).arg(">");
        let reply: Option<StreamReadReply> = self.redis.query(&cmd).await?;
        Ok(entries(reply))
    }

    /// The job in `entry`; an entry that cannot be decoded is set aside in `corrupt:L`.
    async fn accept(
        &self,
        lane: &str,
        keys: &Keys,
        entry: StreamId,
    ) -> Result<Option<Job>, RedisError> {
        let raw: Option<Vec<u8>> = entry.get("j");
        let decoded = seq_of(&entry.id).and_then(|seq| {
            let raw = raw.as_deref().unwrap_or_default();
            Ok(record::decode_job(seq, raw)?)
        });
        let error = match decoded {
            Ok(job) => return Ok(Some(job)),
            Err(e) => e,
        };
        tracing::error!(lane, entry = %entry.id, error = %error, "undecodable queue entry set aside");
        let mut pipe = redis::pipe();
        pipe.atomic();
        let raw = raw.unwrap_or_default();
        pipe.cmd("XADD")
            .arg(&keys.corrupt)
            .arg("*")
            .arg("id")
            .arg(&entry.id)
            .arg("j")
            .arg(raw)
            .ignore();
        pipe.cmd("XACK")
            .arg(&keys.stream)
            .arg(GROUP)
            .arg(&entry.id)
            .ignore();
        pipe.cmd("XDEL").arg(&keys.stream).arg(&entry.id).ignore();
        self.transact(&pipe).await?;
        Ok(None)
    }

    async fn reader(&self) -> Result<Conn, RedisError> {
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.redis.blocking(POLL).await,
        }
    }

    /// Keeps a connection whose last read completed; one that failed or was cancelled is
    /// dropped instead, which closes it.
    fn give_back(&self, conn: Conn) {
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

/// The entries a read of one stream returned, oldest first.
fn entries(reply: Option<StreamReadReply>) -> Vec<StreamId> {
    let stream = reply.and_then(|r| r.keys.into_iter().next());
    stream.map(|k| k.ids).unwrap_or_default()
}
