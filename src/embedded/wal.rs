//! The write-ahead log in front of redb: what makes an enqueue durable without an fsync'd redb
//! commit.
//!
//! An fsync'd redb commit rewrites and flushes ten or more B-tree and allocator pages; appending
//! a batch's new jobs to this file and flushing it is one sequential write. So a batch of
//! enqueues commits to redb without an fsync, its jobs are appended here as one record and
//! `fdatasync`'d, and only then are the senders answered. Every fsync'd redb commit (at the
//! latest `MAX_UNSYNCED` after the first unsynced one) is a checkpoint: it stores the log's
//! generation in `META`, after which that generation's records are never read again. On open
//! and on every reopen after a storage fault, records of a generation newer than the stored one
//! are put back into redb before anything else runs (see docs/storage.md, "The write-ahead log").
//!
//! Two files take turns, one generation each: a checkpoint seals the generation it covers and
//! appending goes on in the other file while redb commits, so no enqueue waits for a checkpoint
//! (docs/storage.md, "Checkpoints off the enqueue path"). A file is started over only once the
//! generation it held is checkpointed for good.
//!
//! A record: `len: u32 LE | crc32(gen ‖ payload): u32 LE | gen: u64 LE | payload`, the payload a
//! postcard list of [`Put`]s. Reading a file stops at the first record that is short or fails
//! its checksum: a torn tail is a write that was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File names of the log inside the data directory: generation `g` goes to `FILE_NAMES[g % 2]`.
pub(super) const FILE_NAMES: [&str; 2] = ["hookgate.wal", "hookgate-1.wal"];
/// Key in `META` of the newest log generation whose records redb holds durably.
pub(crate) const CHECKPOINTED: &str = "wal_checkpointed";
/// Size each file is given up front, in zeros. Appending into blocks the file already has lets an
/// `fdatasync` flush only the data (growing the file also writes its inode and block map), and
/// a new generation then starts over at offset 0 instead of truncating. Past this the file
/// grows. 4 MiB holds the ~100 ms between two checkpoints at 30k events/s of 1 KiB.
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

/// Records read back, oldest generation first: each one's generation and the jobs it holds.
pub(crate) type Records = Vec<(u64, Vec<Put>)>;

/// The open log; only the writer thread appends (the slot locks it for a reopen).
pub(super) struct Wal {
    /// Each file's cursor stands where its generation's next record goes.
    files: [File; 2],
    dir: PathBuf,
    /// Generation of the records appended now.
    generation: u64,
    /// Whether records of `generation` were appended.
    dirty: bool,
    /// The newest generation a durable checkpoint covers, as far as this log knows: the other
    /// file may be started over only once it holds nothing newer.
    confirmed: u64,
}

impl Wal {
    /// Opens (or creates) the log's files in `dir` and returns it with every intact record in
    /// them, oldest generation first, as (generation, puts).
    pub(super) fn open(dir: &Path) -> io::Result<(Wal, Records)> {
        let mut files = Vec::with_capacity(2);
        for name in FILE_NAMES {
            let path = dir.join(name);
            super::private::prepare_file(&path)?;
            files.push(OpenOptions::new().read(true).write(true).open(&path)?);
        }
        let mut files: [File; 2] = files
            .try_into()
            .map_err(|_| io::Error::other("two files"))?;
        let records = read_both(&mut files)?;
        let generation = records.iter().map(|(g, _)| g + 1).max().unwrap_or(1);
        for (file, name) in files.iter_mut().zip(FILE_NAMES) {
            if let Err(e) = preallocate(file) {
                // A nearly full disk: the log still works, growing as it goes.
                tracing::warn!(path = %dir.join(name).display(), error = %e, "could not preallocate the write-ahead log");
            }
            file.seek(SeekFrom::Start(0))?;
        }
        let wal = Wal {
            files,
            dir: dir.to_owned(),
            generation,
            dirty: !records.is_empty(),
            // Until the replay has read the stored checkpoint (`resume_after`).
            confirmed: 0,
        };
        Ok((wal, records))
    }

    /// Every intact record in the files, for a replay after a reopen; appending then goes on
    /// where it stood.
    pub(super) fn reread(&mut self) -> io::Result<Records> {
        let at = [
            self.files[0].stream_position()?,
            self.files[1].stream_position()?,
        ];
        let records = read_both(&mut self.files);
        for (file, at) in self.files.iter_mut().zip(at) {
            file.seek(SeekFrom::Start(at))?;
        }
        records
    }

    /// Gives the preallocated zeros back to the file system, keeping every record not yet
    /// checkpointed (each file is cut where its last append ended). Called before the replay of
    /// a reopen: the fault behind it is most often a full disk, and the replay's commit needs
    /// room for the jobs the reopen undid. Without this, those 8 MiB could be exactly what a
    /// full disk lacks, and the store would never recover; the log then grows as it goes until
    /// the next start.
    pub(super) fn release_reserve(&mut self) -> io::Result<()> {
        for file in &mut self.files {
            let at = file.stream_position()?;
            file.set_len(at)?;
        }
        Ok(())
    }

    /// The generation appended now.
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a checkpoint has anything to cover.
    pub(super) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Appends one record holding `puts` to the current generation and flushes it to the disk.
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
        let file = &mut self.files[slot(self.generation)];
        file.write_all(&record)?;
        file.sync_data()
    }

    /// Before a checkpoint that may commit while appends go on: ends the current generation and
    /// returns it (the one the checkpoint must cover), appending from now on to the other file.
    /// None if that file still holds a generation no durable checkpoint covers (the last
    /// checkpoint failed): the checkpoint then covers the current generation, and nothing may
    /// be appended until it is done.
    pub(super) fn seal(&mut self) -> Option<u64> {
        if self.generation.saturating_sub(1) > self.confirmed {
            return None;
        }
        let sealed = self.generation;
        self.start(sealed + 1);
        Some(sealed)
    }

    /// Once the stored checkpoint is known (on open and on every reopen): appending goes on past
    /// it, and what it covers is checkpointed for good.
    pub(super) fn resume_after(&mut self, checkpointed: u64) {
        self.confirmed = self.confirmed.max(checkpointed);
        if self.generation <= checkpointed {
            self.start(checkpointed + 1);
        }
    }

    /// After a durable checkpoint covering `generation`: what it covers is in redb for good.
    /// If it covers the current generation (an unsealed checkpoint, a replay), the log starts
    /// over with the next one.
    pub(super) fn checkpointed(&mut self, generation: u64) {
        self.confirmed = self.confirmed.max(generation);
        if generation >= self.generation {
            self.start(generation + 1);
        }
    }

    /// Appending goes to `generation`'s file from offset 0. The old records behind the new ones
    /// are skipped by a replay (their generation is checkpointed) or end it (a record cut by the
    /// new ones fails its checksum); either way none is put back. If the seek fails, new records
    /// follow the old ones, which is as correct and only longer.
    fn start(&mut self, generation: u64) {
        self.generation = generation;
        self.dirty = false;
        let (file, name) = (
            &mut self.files[slot(generation)],
            FILE_NAMES[slot(generation)],
        );
        if let Err(e) = file.seek(SeekFrom::Start(0)) {
            tracing::warn!(path = %self.dir.join(name).display(), error = %e, "could not rewind the write-ahead log");
        }
    }
}

/// Which of the two files holds `generation`.
fn slot(generation: u64) -> usize {
    (generation % 2) as usize
}

/// Every intact record of both files, oldest generation first (a generation lies in one file,
/// in the order it was appended).
fn read_both(files: &mut [File; 2]) -> io::Result<Records> {
    let mut records = read_all(&mut files[0])?;
    records.extend(read_all(&mut files[1])?);
    records.sort_by_key(|(generation, _)| *generation);
    Ok(records)
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

    fn end_of(wal: &mut Wal) -> usize {
        let file = &mut wal.files[slot(wal.generation)];
        file.stream_position().unwrap() as usize
    }

    fn path_of(dir: &Path, generation: u64) -> PathBuf {
        dir.join(FILE_NAMES[slot(generation)])
    }

    #[test]
    fn records_survive_a_reopen_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, old) = Wal::open(dir.path()).unwrap();
        assert!(old.is_empty() && !wal.is_dirty());
        wal.append(&[&put(1), &put(2)]).unwrap();
        wal.append(&[&put(3)]).unwrap();
        let end = end_of(&mut wal);
        drop(wal);
        // A record cut short by a crash mid-write, right after the intact ones.
        let path = path_of(dir.path(), 1);
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
        wal.checkpointed(1);
        assert!(!wal.is_dirty());
        wal.append(&[&put(2), &put(3)]).unwrap();
        wal.checkpointed(2);
        wal.append(&[&put(4)]).unwrap();
        drop(wal);
        // Generation 3 overwrote generation 1 from offset 0 in the same file; generation 2 is
        // still in the other one, checkpointed (a replay skips it).
        let (_, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![(2, vec![put(2), put(3)]), (3, vec![put(4)])]);
    }

    #[test]
    fn a_sealed_generation_stays_while_the_next_is_appended_in_the_other_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.resume_after(0);
        wal.append(&[&put(1)]).unwrap();
        assert_eq!(wal.seal(), Some(1));
        assert!(!wal.is_dirty());
        wal.append(&[&put(2)]).unwrap();
        // The checkpoint of 1 has not been confirmed: 1's file must not be started over.
        assert_eq!(
            wal.seal(),
            None,
            "no second seal before the first is durable"
        );
        let (_, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![(1, vec![put(1)]), (2, vec![put(2)])]);
        wal.checkpointed(1);
        assert_eq!(
            wal.generation(),
            2,
            "a sealed checkpoint leaves the current one"
        );
        assert_eq!(wal.seal(), Some(2));
        wal.append(&[&put(3)]).unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            records,
            vec![(2, vec![put(2)]), (3, vec![put(3)])],
            "3 replaced 1 in its file"
        );
    }

    #[test]
    fn the_log_goes_on_past_a_stored_checkpoint_it_has_no_record_of() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, records) = Wal::open(dir.path()).unwrap();
        assert!(records.is_empty());
        // As after a crash that tore the first record of both files: the database says 7.
        wal.resume_after(7);
        assert_eq!(wal.generation(), 8);
        assert_eq!(wal.seal(), Some(8), "everything up to 7 is durable");
        wal.resume_after(3);
        assert_eq!(wal.generation(), 9, "an older checkpoint changes nothing");
    }

    #[test]
    fn a_flipped_bit_ends_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(&[&put(1)]).unwrap();
        wal.append(&[&put(2)]).unwrap();
        let end = end_of(&mut wal);
        drop(wal);
        let path = path_of(dir.path(), 1);
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
