//! The write-ahead log in front of redb: what makes an enqueue durable without an fsync'd redb
//! commit.
//!
//! An fsync'd redb commit rewrites and flushes ten or more B-tree and allocator pages; appending
//! a batch's new jobs to this file and flushing it is one sequential write. So a batch of
//! enqueues commits to redb without an fsync, its jobs are appended here as one record and
//! `fdatasync`'d, and only then are the senders answered. Every fsync'd redb commit (at the
//! latest `MAX_UNSYNCED` after the first unsynced one) is a checkpoint: it stores the log's
//! generation in `META`, after which the log starts over. On open and on every reopen after a
//! storage fault, records of a generation newer than the stored one are put back into redb before
//! anything else runs (see docs/storage.md, "The write-ahead log").
//!
//! A record: `len: u32 LE | crc32(gen ‖ payload): u32 LE | gen: u64 LE | payload`, the payload a
//! postcard list of [`Put`]s. Reading stops at the first record that is short or fails its
//! checksum: a torn tail is a write that was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the log inside the data directory.
pub(super) const FILE_NAME: &str = "hookgate.wal";
/// Key in `META` of the newest log generation whose records redb holds durably.
pub(crate) const CHECKPOINTED: &str = "wal_checkpointed";
/// Size the log is given up front, in zeros. Appending into blocks the file already has lets an
/// `fdatasync` flush only the data (growing the file also writes its inode and block map), and
/// a checkpoint then starts over at offset 0 instead of truncating. Past this the file grows.
/// 4 MiB holds the ~100 ms between two checkpoints at 30k events/s of 1 KiB.
#[cfg(not(test))]
const PREALLOCATE: u64 = 4 << 20;
#[cfg(test)]
const PREALLOCATE: u64 = 64 << 10;
/// Bytes before a record's payload.
const HEADER: usize = 16;
/// A record longer than this is not one the writer wrote (a batch holds at most 1024 jobs of at
/// most the largest `max_body`): reading stops there rather than allocating it.
const MAX_RECORD: u32 = 1 << 30;

/// One queued job as the log keeps it: its key and encoded record in the `QUEUE` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Put {
    pub(crate) lane: String,
    pub(crate) seq: u64,
    /// Shared with the job's write: the log needs no copy of it.
    pub(crate) bytes: bytes::Bytes,
}

/// Records read back, oldest first: each one's generation and the jobs it holds.
pub(crate) type Records = Vec<(u64, Vec<Put>)>;

/// The open log; only the writer thread appends (the slot locks it for a reopen).
pub(super) struct Wal {
    file: File,
    path: PathBuf,
    /// Generation of the records appended now.
    generation: u64,
    /// Whether records were appended since the last checkpoint.
    dirty: bool,
}

impl Wal {
    /// Opens (or creates) the log in `dir` and returns it with every intact record in it,
    /// oldest first, as (generation, puts).
    pub(super) fn open(dir: &Path) -> io::Result<(Wal, Records)> {
        let path = dir.join(FILE_NAME);
        super::private::prepare_file(&path)?;
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        let records = read_all(&mut file)?;
        let generation = records.iter().map(|(g, _)| g + 1).max().unwrap_or(1);
        if let Err(e) = preallocate(&mut file) {
            // A nearly full disk: the log still works, growing as it goes.
            tracing::warn!(path = %path.display(), error = %e, "could not preallocate the write-ahead log");
        }
        file.seek(SeekFrom::Start(0))?;
        let wal = Wal {
            file,
            path,
            generation,
            dirty: !records.is_empty(),
        };
        Ok((wal, records))
    }

    /// Every intact record in the file, for a replay after a reopen; appending then goes on
    /// where it stood.
    pub(super) fn reread(&mut self) -> io::Result<Records> {
        let at = self.file.stream_position()?;
        let records = read_all(&mut self.file);
        self.file.seek(SeekFrom::Start(at))?;
        records
    }

    /// Gives the preallocated zeros back to the file system, keeping every record of the current
    /// generation (older ones are checkpointed). Called before the replay of a reopen: the fault
    /// behind it is most often a full disk, and the replay's commit needs room for the jobs the
    /// reopen undid. Without this, those 4 MiB could be exactly what a full disk lacks, and the
    /// store would never recover; the log then grows as it goes until the next start.
    pub(super) fn release_reserve(&mut self) -> io::Result<()> {
        let at = self.file.stream_position()?;
        self.file.set_len(at)
    }

    /// The generation a checkpoint now covers.
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a checkpoint has anything to cover.
    pub(super) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Appends one record holding `puts` and flushes it to the disk.
    pub(super) fn append(&mut self, puts: &[&Put]) -> io::Result<()> {
        // Serialized straight behind room for the header, into a buffer sized for the batch up
        // front: growing it from empty re-copied a batch of 1 KiB jobs several times over
        // (docs/performance.md, 2026-12-07 later).
        let size: usize = puts.iter().map(|p| p.lane.len() + p.bytes.len() + 24).sum();
        let mut record = Vec::with_capacity(HEADER + size + 8);
        record.resize(HEADER, 0);
        let mut record = postcard::to_extend(puts, record).map_err(io::Error::other)?;
        let payload = &record[HEADER..];
        let len = u32::try_from(payload.len()).map_err(io::Error::other)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.generation.to_le_bytes());
        crc.update(payload);
        let crc = crc.finalize();
        record[..4].copy_from_slice(&len.to_le_bytes());
        record[4..8].copy_from_slice(&crc.to_le_bytes());
        record[8..HEADER].copy_from_slice(&self.generation.to_le_bytes());
        self.dirty = true;
        self.file.write_all(&record)?;
        self.file.sync_data()
    }

    /// After a checkpoint covering [`Wal::generation`]: the records so far are in redb for good,
    /// so the log starts over at offset 0 with the next generation. The old records behind the
    /// new ones are skipped by a replay (their generation is checkpointed) or end it (a record
    /// cut by the new ones fails its checksum); either way none is put back. If the seek fails,
    /// new records follow the old ones, which is as correct and only longer.
    pub(super) fn checkpointed(&mut self) {
        self.generation += 1;
        self.dirty = false;
        if let Err(e) = self.file.seek(SeekFrom::Start(0)) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not rewind the write-ahead log");
        }
    }
}

/// Extends the file with zeros to `PREALLOCATE` (zeros end a replay: no record has a zero
/// checksum over a zero generation), once, and makes that durable.
/// On failure the file is cut back to its old length.
fn preallocate(file: &mut File) -> io::Result<()> {
    let len = file.seek(SeekFrom::End(0))?;
    if len >= PREALLOCATE {
        return Ok(());
    }
    let zeros = vec![0u8; (PREALLOCATE - len) as usize];
    let written = file.write_all(&zeros).and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = file.set_len(len);
    }
    written
}

/// Every intact record from the start of the file.
fn read_all(file: &mut File) -> io::Result<Records> {
    let mut data = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut data)?;
    Ok(parse(&data))
}

/// The intact records at the start of `data`.
fn parse(mut data: &[u8]) -> Records {
    let mut out = Vec::new();
    while data.len() >= HEADER {
        let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap_or_default());
        let (len, crc) = (word(0), word(4));
        let generation = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
        if len > MAX_RECORD || data.len() - HEADER < len as usize {
            break;
        }
        let payload = &data[HEADER..HEADER + len as usize];
        let mut check = crc32fast::Hasher::new();
        check.update(&generation.to_le_bytes());
        check.update(payload);
        if check.finalize() != crc {
            break;
        }
        let Ok(puts) = postcard::from_bytes::<Vec<Put>>(payload) else {
            break;
        };
        out.push((generation, puts));
        data = &data[HEADER + len as usize..];
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn put(seq: u64) -> Put {
        Put {
            lane: "stripe".into(),
            seq,
            bytes: vec![seq as u8; 40].into(),
        }
    }

    #[test]
    fn records_survive_a_reopen_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, old) = Wal::open(dir.path()).unwrap();
        assert!(old.is_empty() && !wal.is_dirty());
        wal.append(&[&put(1), &put(2)]).unwrap();
        wal.append(&[&put(3)]).unwrap();
        let end = wal.file.stream_position().unwrap() as usize;
        drop(wal);
        // A record cut short by a crash mid-write, right after the intact ones.
        let path = dir.path().join(FILE_NAME);
        let mut data = std::fs::read(&path).unwrap();
        assert_eq!(
            data.len() as u64,
            PREALLOCATE,
            "the log keeps its preallocated size"
        );
        data[end..end + 4].copy_from_slice(&100u32.to_le_bytes());
        data[end + 4..end + 34].copy_from_slice(&[7; 30]);
        std::fs::write(&path, &data).unwrap();
        let (wal, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![(1, vec![put(1), put(2)]), (1, vec![put(3)])]);
        assert_eq!(
            wal.generation(),
            2,
            "the next generation follows the newest found"
        );
        assert!(wal.is_dirty());
    }

    #[test]
    fn a_checkpoint_starts_the_log_over_with_the_next_generation() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(&[&put(1)]).unwrap();
        wal.checkpointed();
        assert!(!wal.is_dirty());
        wal.append(&[&put(2), &put(3)]).unwrap();
        drop(wal);
        // The new record overwrote the old one from offset 0 and is the only one read back.
        let (_, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![(2, vec![put(2), put(3)])]);
    }

    #[test]
    fn a_flipped_bit_ends_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(&[&put(1)]).unwrap();
        wal.append(&[&put(2)]).unwrap();
        let end = wal.file.stream_position().unwrap() as usize;
        drop(wal);
        let path = dir.path().join(FILE_NAME);
        let mut data = std::fs::read(&path).unwrap();
        data[end - 1] ^= 1;
        std::fs::write(&path, &data).unwrap();
        let (_, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![(1, vec![put(1)])]);
    }

    proptest! {
        /// Whatever the bytes, reading the log neither panics nor allocates beyond the input.
        #[test]
        fn any_bytes_parse_without_panicking(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let records = parse(&data);
            let total: usize = records.iter().map(|(_, p)| p.len()).sum();
            prop_assert!(total <= data.len());
        }

        /// Records appended are read back in order, for any contents.
        #[test]
        fn appended_records_read_back(batches in proptest::collection::vec(
            proptest::collection::vec((any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)), 1..4), 0..6)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            let batches: Vec<Vec<Put>> = batches.into_iter().map(|b| b.into_iter()
                .map(|(seq, bytes)| Put { lane: "l".into(), seq, bytes: bytes.into() }).collect()).collect();
            for b in &batches {
                wal.append(&b.iter().collect::<Vec<_>>()).unwrap();
            }
            drop(wal);
            let (_, records) = Wal::open(dir.path()).unwrap();
            let read: Vec<Vec<Put>> = records.into_iter().map(|(_, p)| p).collect();
            prop_assert_eq!(read, batches);
        }
    }
}
