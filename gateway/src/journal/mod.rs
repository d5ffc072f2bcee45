//! Stage 3: the journal. Every accepted message is written here and fsync'd before the broker gets
//! its PUBACK; downstream stages read it back and confirm what they have finished with.
//!
//! On disk: a folder of segments named `{id:020}.seg`, each a run of records
//!
//! ```text
//! [len: u32 LE][crc32(body): u32 LE][body: len bytes]
//! body = [class: u8][received_ms: u64 LE][topic_len: u16 LE][topic][payload]
//! ```
//!
//! - Records are staged in memory, then written and fsync'd a group at a time ([`Journal::commit`]):
//!   one fsync covers every message that arrived while the previous one ran.
//! - A group never straddles two segments; a new segment starts once the current one passed
//!   `segment_bytes`.
//! - Consumers (the time-series sink, the alert outbox) keep their own cursor; a segment is deleted
//!   only when every cursor is past it ([`Journal::release`]).
//! - Beyond `max_bytes` the oldest segment is dropped even if a consumer has not read it, but its
//!   event records are first copied to the end: telemetry is shed, events never ([`Journal::enforce_budget`]).
//! - On open, a torn or corrupt tail of the newest segment is cut off, and an older segment with a
//!   bad record is moved to `quarantine/`; both are counted, and the gateway starts either way.
//! - The folder carries a format stamp ([`format`]); one from a newer gridwatch is refused.

pub mod cursor;
pub mod format;
pub mod handle;
pub mod record;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub use cursor::Cursor;
pub use handle::JournalHandle;
pub use record::{Class, Record};

/// A place in the journal: a segment and a byte offset in it. Orders by segment, then offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Segment id.
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: u64,
}

/// Size limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A new segment starts once the current one has this many bytes.
    pub segment_bytes: u64,
    /// The most the journal may hold on disk before the oldest telemetry is dropped.
    pub max_bytes: u64,
}

/// What opening the journal found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records found intact.
    pub records: u64,
    /// Bytes cut off the newest segment's tail (a write torn by a crash).
    pub torn_bytes: u64,
    /// Older segments with a bad record, moved to `quarantine/`.
    pub quarantined: Vec<PathBuf>,
}

/// What dropping a segment for the disk budget cost.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Shed {
    /// Telemetry records that were not yet past `cursor` and are gone.
    pub telemetry_lost: u64,
    /// Event records copied to the end of the journal instead.
    pub events_kept: u64,
}

/// A staged group taken out for writing: its bytes, where they go, and the file to write them to.
pub struct Group {
    at: Position,
    bytes: Vec<u8>,
    file: File,
}

impl Group {
    /// Writes and fsyncs the group without holding the journal; returns where it ends.
    pub fn write(&self) -> io::Result<Position> {
        let mut f = &self.file;
        f.write_all(&self.bytes)?;
        f.sync_data()?;
        Ok(Position {
            segment: self.at.segment,
            offset: self.at.offset + self.bytes.len() as u64,
        })
    }

    /// Records in the group.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// The journal writer. One per gateway; the pipeline stages and commits, consumers release.
pub struct Journal {
    dir: PathBuf,
    limits: Limits,
    /// Every segment on disk with its committed length, oldest first.
    segments: BTreeMap<u64, u64>,
    active: Option<(u64, File)>,
    staged: Vec<u8>,
    /// Where the staged group will start; `None` when nothing is staged.
    staged_at: Option<Position>,
    /// Where the group being written ends, while one is.
    writing_end: Option<Position>,
    /// Each consumer's place.
    cursors: BTreeMap<&'static str, Position>,
    /// Bumped whenever the budget rewrites a segment.
    generation: u64,
    /// Segments the budget has rewritten.
    shed_segments: std::collections::BTreeSet<u64>,
}

/// The ids of the segments in a journal folder, oldest first.
fn segment_ids(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The segments in a journal folder with their sizes, oldest first, without opening the journal
/// for writing: for reading a copy of another gateway's journal (a backtest).
pub fn segments_in(dir: &Path) -> io::Result<Vec<(u64, u64)>> {
    segment_ids(dir)?
        .into_iter()
        .map(|id| Ok((id, fs::metadata(segment_path(dir, id))?.len())))
        .collect()
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// Reads whole records from `bytes`; returns how many bytes they span and how many there are.
fn scan(bytes: &[u8]) -> (usize, u64) {
    let mut at = 0;
    let mut n = 0;
    while let Some((_, len)) = record::parse(&bytes[at..]) {
        at += len;
        n += 1;
    }
    (at, n)
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, repairing what a crash left behind.
    pub fn open(dir: &Path, limits: Limits) -> io::Result<(Self, Recovery)> {
        fs::create_dir_all(dir)?;
        format::check(dir, format::JOURNAL)?;
        let ids = segment_ids(dir)?;
        let mut recovery = Recovery::default();
        let mut segments = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            let path = segment_path(dir, *id);
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            let (good, n) = scan(&bytes);
            recovery.records += n;
            if good < bytes.len() {
                if i + 1 == ids.len() {
                    // The newest segment: a crash tore its last write. Keep what is whole.
                    let f = OpenOptions::new().write(true).open(&path)?;
                    f.set_len(good as u64)?;
                    f.sync_all()?;
                    recovery.torn_bytes = (bytes.len() - good) as u64;
                } else {
                    let q = dir.join("quarantine");
                    fs::create_dir_all(&q)?;
                    let to = q.join(path.file_name().expect("segment paths have names"));
                    fs::rename(&path, &to)?;
                    recovery.records -= n;
                    recovery.quarantined.push(to);
                    continue;
                }
            }
            segments.insert(*id, good as u64);
        }
        let journal = Self {
            dir: dir.to_owned(),
            limits,
            segments,
            active: None,
            staged: Vec::new(),
            staged_at: None,
            writing_end: None,
            cursors: BTreeMap::new(),
            generation: 0,
            shed_segments: Default::default(),
        };
        Ok((journal, recovery))
    }

    /// Where the committed records end.
    pub fn end(&self) -> Position {
        match self.segments.iter().next_back() {
            Some((&segment, &offset)) => Position { segment, offset },
            None => Position {
                segment: 1,
                offset: 0,
            },
        }
    }

    /// Where the records handed to [`Journal::stage`] so far end, written or not: a record
    /// staged later lands here or beyond.
    pub fn staged_end(&self) -> Position {
        match self.staged_at {
            Some(at) => Position {
                segment: at.segment,
                offset: at.offset + self.staged.len() as u64,
            },
            None => self.writing_end.unwrap_or_else(|| self.end()),
        }
    }

    /// Stages a record for the next group and returns the position it will have.
    pub fn stage(
        &mut self,
        class: Class,
        received_ms: u64,
        topic: &str,
        payload: &[u8],
    ) -> Position {
        let base = self.writing_end.unwrap_or_else(|| self.end());
        let segment_bytes = self.limits.segment_bytes;
        let at = *self.staged_at.get_or_insert_with(|| {
            if base.offset >= segment_bytes {
                Position {
                    segment: base.segment + 1,
                    offset: 0,
                }
            } else {
                base
            }
        });
        let pos = Position {
            segment: at.segment,
            offset: at.offset + self.staged.len() as u64,
        };
        record::write(&mut self.staged, class, received_ms, topic, payload);
        pos
    }

    /// Takes the staged records out as a group to write; `None` when nothing is staged or a group
    /// is still being written (one at a time keeps the segment in order).
    pub fn take_group(&mut self) -> io::Result<Option<Group>> {
        if self.writing_end.is_some() {
            return Ok(None);
        }
        let Some(at) = self.staged_at else {
            return Ok(None);
        };
        if self.active.as_ref().map(|(id, _)| *id) != Some(at.segment) {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&self.dir, at.segment))?;
            // The new file's name must survive a crash too.
            File::open(&self.dir)?.sync_all()?;
            self.segments.entry(at.segment).or_insert(0);
            self.active = Some((at.segment, f));
        }
        let file = self.active.as_ref().expect("opened above").1.try_clone()?;
        self.staged_at = None;
        let bytes = std::mem::take(&mut self.staged);
        self.writing_end = Some(Position {
            segment: at.segment,
            offset: at.offset + bytes.len() as u64,
        });
        Ok(Some(Group { at, bytes, file }))
    }

    /// Records the outcome of writing a group. On error the part that reached the file is cut
    /// off and the group's bytes are staged again in front of anything staged since, so nothing
    /// is acknowledged that is not on disk and nothing is lost from the journal's view.
    pub fn finish(&mut self, group: Group, result: &io::Result<Position>) {
        self.writing_end = None;
        match result {
            Ok(end) => {
                self.segments.insert(end.segment, end.offset);
            }
            Err(_) => {
                let _ = group.file.set_len(group.at.offset);
                // Open the file afresh next time: the handle may be what is broken.
                self.active = None;
                let mut bytes = group.bytes;
                bytes.extend_from_slice(&self.staged);
                self.staged = bytes;
                self.staged_at = Some(group.at);
            }
        }
    }

    /// Writes what is staged, blocking, in one call: for tests (the pipeline writes a group
    /// outside the lock with [`Journal::take_group`], [`Group::write`] and [`Journal::finish`]).
    #[cfg(test)]
    pub fn commit(&mut self) -> io::Result<Position> {
        match self.take_group()? {
            None => Ok(self.end()),
            Some(group) => {
                let result = group.write();
                self.finish(group, &result);
                result
            }
        }
    }

    /// The committed segments from `from` on, as (id, length), for readers.
    pub fn segments_from(&self, from: Position) -> Vec<(u64, u64)> {
        self.segments
            .range(from.segment..)
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    /// Whether the journal holds more than its disk budget.
    pub fn over_budget(&self) -> bool {
        self.disk_bytes() > self.limits.max_bytes
    }

    /// When the oldest record on disk was received, in ms since the epoch.
    pub fn oldest_received_ms(&self) -> Option<u64> {
        let (&id, &len) = self.segments.iter().find(|(_, len)| **len > 0)?;
        let mut f = File::open(segment_path(&self.dir, id)).ok()?;
        let mut header = [0u8; 8];
        f.read_exact(&mut header).ok()?;
        let body = u32::from_le_bytes(header[..4].try_into().ok()?) as u64;
        let mut bytes = header.to_vec();
        bytes.resize((8 + body).min(len) as usize, 0);
        f.read_exact(&mut bytes[8..]).ok()?;
        record::parse(&bytes).map(|(r, _)| r.received_ms)
    }

    /// Bytes of committed records from `from` up to `to`.
    pub fn bytes_between(&self, from: Position, to: Position) -> u64 {
        self.segments
            .range(from.segment..=to.segment)
            .map(|(&id, &len)| {
                let start = if id == from.segment {
                    from.offset.min(len)
                } else {
                    0
                };
                let end = if id == to.segment {
                    to.offset.min(len)
                } else {
                    len
                };
                end.saturating_sub(start)
            })
            .sum()
    }

    /// The journal's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.values().sum()
    }

    /// Deletes every segment wholly before `upto` (never the one being written).
    fn release(&mut self, upto: Position) -> io::Result<()> {
        let old: Vec<u64> = self
            .segments
            .range(..upto.segment)
            .map(|(k, _)| *k)
            .collect();
        for id in old {
            if self.active.as_ref().is_some_and(|(a, _)| *a == id) {
                continue;
            }
            fs::remove_file(segment_path(&self.dir, id))?;
            self.segments.remove(&id);
            self.shed_segments.remove(&id);
        }
        Ok(())
    }

    /// While the journal is over `max_bytes`, sheds its oldest unread telemetry: the oldest
    /// segment is rewritten with only the event records no consumer has finished with (or
    /// deleted when it has none). Cursors inside a rewritten segment go back to its start, so
    /// their consumers read its events again; both consumers tolerate repeats.
    pub fn enforce_budget(&mut self) -> io::Result<Shed> {
        let mut shed = Shed::default();
        let slowest = self.slowest();
        let oldest: Vec<(u64, u64)> = self.segments.iter().map(|(k, v)| (*k, *v)).collect();
        for (id, len) in oldest {
            if self.disk_bytes() <= self.limits.max_bytes {
                break;
            }
            if self.active.as_ref().is_some_and(|(a, _)| *a == id)
                || self.shed_segments.contains(&id)
            {
                continue;
            }
            let path = segment_path(&self.dir, id);
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            bytes.truncate(len as usize);
            let mut kept = Vec::new();
            let mut at = 0;
            while let Some((rec, n)) = record::parse(&bytes[at..]) {
                if (Position {
                    segment: id,
                    offset: at as u64,
                }) >= slowest
                {
                    match rec.class {
                        Class::Event => {
                            record::write(
                                &mut kept,
                                Class::Event,
                                rec.received_ms,
                                rec.topic,
                                rec.payload,
                            );
                            shed.events_kept += 1;
                        }
                        Class::Telemetry => shed.telemetry_lost += 1,
                    }
                }
                at += n;
            }
            let tmp = path.with_extension("seg.tmp");
            fs::write(&tmp, &kept)?;
            File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()?;
            self.segments.insert(id, kept.len() as u64);
            self.shed_segments.insert(id);
            self.generation += 1;
            for (name, pos) in self.cursors.iter_mut() {
                if pos.segment == id {
                    *pos = Position {
                        segment: id,
                        offset: 0,
                    };
                    let _ = Cursor::new(&self.dir, name).save(*pos);
                }
            }
        }
        Ok(shed)
    }

    /// Registers a consumer and returns where it resumes: its saved cursor, or the oldest record.
    pub fn register(&mut self, name: &'static str) -> Position {
        let saved = Cursor::new(&self.dir, name).load();
        let start = match self.segments.keys().next() {
            Some(&segment) => Position { segment, offset: 0 },
            None => self.end(),
        };
        let pos = saved.map_or(start, |p| p.max(start).min(self.end()));
        self.cursors.insert(name, pos);
        pos
    }

    /// A consumer's cursor and the journal's generation, to hand back to [`Journal::advance`].
    pub fn cursor(&self, name: &str) -> (Position, u64) {
        (
            self.cursors.get(name).copied().unwrap_or_default(),
            self.generation,
        )
    }

    /// Moves a consumer's cursor to `pos`, read at `generation`; ignored if the budget rewrote
    /// segments since (the consumer then re-reads from where the rewrite put it). Saves the
    /// cursor and deletes the segments every consumer is past.
    pub fn advance(
        &mut self,
        name: &'static str,
        pos: Position,
        generation: u64,
    ) -> io::Result<()> {
        if generation != self.generation {
            return Ok(());
        }
        let pos = if self.shed_segments.contains(&pos.segment) {
            pos.min(Position {
                segment: pos.segment,
                offset: self.segments.get(&pos.segment).copied().unwrap_or(0),
            })
        } else {
            pos
        };
        self.cursors.insert(name, pos);
        Cursor::new(&self.dir, name).save(pos)?;
        self.release(self.slowest())
    }

    /// The slowest consumer's cursor (the end when there are none).
    fn slowest(&self) -> Position {
        self.cursors
            .values()
            .min()
            .copied()
            .unwrap_or_else(|| self.end())
    }
}

/// How much of a segment [`read`] holds in memory at once (a larger record is read whole).
const READ_WINDOW: u64 = 256 << 10;

/// Reads committed records from `from`, over `segments` (from [`Journal::segments_from`]), calling
/// `each` until it returns false or the records run out. Returns where reading stopped.
pub fn read(
    dir: &Path,
    segments: &[(u64, u64)],
    from: Position,
    mut each: impl FnMut(Position, Record<'_>) -> bool,
) -> io::Result<Position> {
    let mut pos = from;
    for &(id, len) in segments {
        if id < pos.segment {
            continue;
        }
        if id > pos.segment {
            // The segment we were in is gone (released or shed): carry on at the next one.
            pos = Position {
                segment: id,
                offset: 0,
            };
        }
        if pos.offset >= len {
            continue;
        }
        let mut f = File::open(segment_path(dir, id))?;
        // A window at a time: a consumer usually wants a batch, not the rest of a segment.
        let mut bytes = Vec::new();
        let mut window = READ_WINDOW;
        while pos.offset < len {
            let want = (len - pos.offset).min(window) as usize;
            io::Seek::seek(&mut f, io::SeekFrom::Start(pos.offset))?;
            bytes.resize(want, 0);
            f.read_exact(&mut bytes)?;
            let mut at = 0;
            while let Some((rec, n)) = record::parse(&bytes[at..]) {
                if !each(pos, rec) {
                    return Ok(pos);
                }
                at += n;
                pos.offset += n as u64;
            }
            if at > 0 {
                window = READ_WINDOW;
                continue;
            }
            // Not one whole record in the window: a record larger than it, or damage.
            let need = bytes
                .get(..4)
                .and_then(|h| h.try_into().ok())
                .map(|h| u64::from(u32::from_le_bytes(h)) + 8);
            match need {
                Some(need) if need > want as u64 && pos.offset + need <= len => window = need,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad record in segment {id} at byte {}", pos.offset),
                    ))
                }
            }
        }
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            segment_bytes: 200,
            max_bytes: 1 << 20,
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("gridwatch-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn all(j: &Journal, from: Position) -> Vec<(Position, String)> {
        let mut out = Vec::new();
        read(j.dir(), &j.segments_from(from), from, |p, r| {
            out.push((p, String::from_utf8(r.payload.to_vec()).unwrap()));
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn committed_records_read_back_in_order_across_segments() {
        let d = dir("order");
        let (mut j, rec) = Journal::open(&d, limits()).unwrap();
        assert_eq!(rec, Recovery::default());
        let mut positions = Vec::new();
        for group in 0..5 {
            for i in 0..3 {
                positions.push(j.stage(
                    Class::Telemetry,
                    1,
                    "t",
                    format!("{group}-{i}").as_bytes(),
                ));
            }
            j.commit().unwrap();
        }
        let got = all(&j, Position::default());
        assert_eq!(got.len(), 15);
        assert_eq!(j.oldest_received_ms(), Some(1));
        assert_eq!(got.iter().map(|(p, _)| *p).collect::<Vec<_>>(), positions);
        assert_eq!(got[14].1, "4-2");
        assert!(j.segments_from(Position::default()).len() > 1, "rotated");
        let from = positions[7];
        assert_eq!(all(&j, from)[0].1, "2-1");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_staged_end_is_where_the_next_record_lands() {
        let d = dir("staged-end");
        let (mut j, _) = Journal::open(&d, limits()).unwrap();
        assert_eq!(j.staged_end(), j.end());
        j.stage(Class::Telemetry, 1, "t", b"one");
        let end = j.staged_end();
        assert!(end > j.end(), "staged but not written");
        assert_eq!(j.stage(Class::Event, 2, "t", b"two"), end);
        let end = j.staged_end();
        j.commit().unwrap();
        assert_eq!((j.staged_end(), j.end()), (end, end));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_keeps_the_group_staged_and_a_retry_writes_it() {
        let d = dir("full");
        let (mut j, _) = Journal::open(&d, limits()).unwrap();
        // Every write to /dev/full fails with "no space left on device".
        std::os::unix::fs::symlink("/dev/full", segment_path(&d, 1)).unwrap();
        let first = j.stage(Class::Event, 1, "t", b"sos");
        assert!(j.commit().is_err());
        assert_eq!(
            j.end(),
            Position {
                segment: 1,
                offset: 0
            }
        );
        let second = j.stage(Class::Telemetry, 2, "t", b"later");
        assert_eq!(
            first,
            Position {
                segment: 1,
                offset: 0
            }
        );
        assert!(second > first);
        fs::remove_file(segment_path(&d, 1)).unwrap();
        j.commit().unwrap();
        let got: Vec<String> = all(&j, Position::default())
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(got, ["sos", "later"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn records_larger_than_the_read_window_read_back_whole() {
        let d = dir("large");
        let (mut j, _) = Journal::open(
            &d,
            Limits {
                segment_bytes: 4 << 20,
                max_bytes: 1 << 30,
            },
        )
        .unwrap();
        let big = vec![b'x'; READ_WINDOW as usize + 1000];
        j.stage(Class::Telemetry, 1, "t", b"small");
        j.stage(Class::Telemetry, 2, "t", &big);
        for i in 0..3000 {
            j.stage(Class::Telemetry, 3, "t", format!("after {i}").as_bytes());
        }
        j.commit().unwrap();
        let got = all(&j, Position::default());
        assert_eq!(got.len(), 3002);
        assert_eq!(got[1].1.len(), big.len());
        assert_eq!(got[3001].1, "after 2999");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn reopening_finds_everything_and_continues_after_it() {
        let d = dir("reopen");
        let (mut j, _) = Journal::open(&d, limits()).unwrap();
        j.stage(Class::Event, 7, "gw/v1/c/d/event", b"one");
        j.commit().unwrap();
        drop(j);
        let (mut j, rec) = Journal::open(&d, limits()).unwrap();
        assert_eq!(rec.records, 1);
        j.stage(Class::Telemetry, 8, "t", b"two");
        j.commit().unwrap();
        let got: Vec<String> = all(&j, Position::default())
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(got, ["one", "two"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_and_a_corrupt_old_segment_is_quarantined() {
        let d = dir("torn");
        let (mut j, _) = Journal::open(&d, limits()).unwrap();
        for i in 0..40 {
            j.stage(
                Class::Telemetry,
                1,
                "t",
                format!("record {i:02}").as_bytes(),
            );
            j.commit().unwrap();
        }
        let segs = j.segments_from(Position::default());
        drop(j);
        let (first, last) = (segs[0].0, segs[segs.len() - 1].0);
        // A crash mid-write leaves half a record at the end of the newest segment.
        let mut f = OpenOptions::new()
            .append(true)
            .open(segment_path(&d, last))
            .unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        // A flipped bit in an old segment.
        let mut bytes = fs::read(segment_path(&d, first)).unwrap();
        bytes[20] ^= 0x40;
        fs::write(segment_path(&d, first), bytes).unwrap();

        let (j, rec) = Journal::open(&d, limits()).unwrap();
        assert_eq!(rec.torn_bytes, 6);
        assert_eq!(rec.quarantined.len(), 1);
        assert!(rec.quarantined[0].exists());
        let got = all(&j, Position::default());
        assert_eq!(rec.records as usize, got.len());
        assert_eq!(got.last().unwrap().1, "record 39");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn segments_go_only_when_every_consumer_is_past_them_and_cursors_survive_a_restart() {
        let d = dir("release");
        let (mut j, _) = Journal::open(&d, limits()).unwrap();
        assert_eq!(
            j.register("fast"),
            Position {
                segment: 1,
                offset: 0
            }
        );
        j.register("slow");
        let mut positions = Vec::new();
        for i in 0..30 {
            positions.push(j.stage(Class::Telemetry, 1, "t", format!("r{i}").as_bytes()));
            j.commit().unwrap();
        }
        let before = j.segments_from(Position::default()).len();
        let (_, generation) = j.cursor("fast");
        j.advance("fast", j.end(), generation).unwrap();
        assert_eq!(
            j.segments_from(Position::default()).len(),
            before,
            "slow still needs them"
        );
        j.advance("slow", positions[15], generation).unwrap();
        let after = j.segments_from(Position::default());
        assert!(after.len() < before);
        assert_eq!(all(&j, positions[15])[0].1, "r15");
        drop(j);
        let (mut j, _) = Journal::open(&d, limits()).unwrap();
        assert_eq!(j.register("slow"), positions[15]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn over_budget_the_oldest_telemetry_goes_and_events_stay() {
        let d = dir("budget");
        let (mut j, _) = Journal::open(
            &d,
            Limits {
                segment_bytes: 200,
                max_bytes: 600,
            },
        )
        .unwrap();
        j.register("store");
        for i in 0..60 {
            let class = if i % 10 == 0 {
                Class::Event
            } else {
                Class::Telemetry
            };
            j.stage(class, 1, "t", format!("r{i:02}").as_bytes());
            j.commit().unwrap();
        }
        let (_, generation) = j.cursor("store");
        let shed = j.enforce_budget().unwrap();
        assert!(j.disk_bytes() <= 600, "{}", j.disk_bytes());
        assert!(shed.telemetry_lost > 0);
        assert!(j.cursor("store").1 > generation);
        let got: Vec<String> = all(&j, Position::default())
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        for e in ["r00", "r10", "r20", "r30", "r40", "r50"] {
            assert!(got.contains(&e.to_owned()), "event {e} kept: {got:?}");
        }
        assert_eq!(got.len() as u64 + shed.telemetry_lost, 60);
        fs::remove_dir_all(&d).unwrap();
    }
}
