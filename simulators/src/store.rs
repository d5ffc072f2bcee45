//! The non-volatile memory of a community's virtual nodes: each node's sequence-number lease
//! (`gridwatch_firmware::seq`), kept in one small file per community so that a simulation started
//! again goes on numbering where the last one left off. The gateway refuses a number it has seen
//! from a device, so without this a restarted demo's nodes would be taken for replays.
//!
//! The file is `{dir}/{community}.seq`, one line per device and slot: `device slot value`. It is
//! rewritten whole on every write (to a temporary file, synced, then renamed over the old one),
//! which the firmware does once per 1,024 messages of a device. A missing file is an erased
//! memory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use gridwatch_firmware::hal::NvStore;

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A line of the file is not `device slot value`.
    #[error("{path}:{line}: not `device slot value`: {text:?}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What it says.
        text: String,
    },
}

/// The non-volatile memory of every virtual node of one community.
#[derive(Debug, Default)]
pub struct SeqStore {
    path: Option<PathBuf>,
    values: BTreeMap<(String, u8), u64>,
}

impl SeqStore {
    /// A memory that lasts as long as the simulation: a restart begins at sequence number 1.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The memory of `community`'s nodes in `dir` (made if missing).
    pub fn open(dir: &Path, community: &str) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(format!("{community}.seq"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let mut values = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let mut words = line.split_whitespace();
            let parsed = match (words.next(), words.next(), words.next(), words.next()) {
                (Some(device), Some(slot), Some(value), None) => slot
                    .parse::<u8>()
                    .ok()
                    .zip(value.parse::<u64>().ok())
                    .map(|(slot, value)| ((device.to_owned(), slot), value)),
                (None, ..) => continue,
                _ => None,
            };
            let (key, value) = parsed.ok_or_else(|| StoreError::Malformed {
                path: path.clone(),
                line: i + 1,
                text: line.to_owned(),
            })?;
            values.insert(key, value);
        }
        Ok(Self {
            path: Some(path),
            values,
        })
    }

    /// The memory of one device, as its firmware sees it.
    pub fn device<'a>(&'a mut self, id: &'a str) -> DeviceStore<'a> {
        DeviceStore { store: self, id }
    }

    fn save(&self) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("seq.tmp");
        let io = |source| StoreError::Io {
            path: tmp.clone(),
            source,
        };
        let mut text = String::new();
        for ((device, slot), value) in &self.values {
            text.push_str(&format!("{device} {slot} {value}\n"));
        }
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })
    }
}

/// One device's view of its community's [`SeqStore`]: the firmware's [`NvStore`].
#[derive(Debug)]
pub struct DeviceStore<'a> {
    store: &'a mut SeqStore,
    id: &'a str,
}

impl NvStore for DeviceStore<'_> {
    type Error = StoreError;

    fn read(&mut self, slot: u8) -> Result<Option<u64>, StoreError> {
        Ok(self.store.values.get(&(self.id.to_owned(), slot)).copied())
    }

    fn write(&mut self, slot: u8, value: u64) -> Result<(), StoreError> {
        let key = (self.id.to_owned(), slot);
        let before = self.store.values.insert(key.clone(), value);
        self.store.save().inspect_err(|_| {
            // Not written: the firmware is told so and must not count on the new value.
            match before {
                Some(v) => self.store.values.insert(key, v),
                None => self.store.values.remove(&key),
            };
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_firmware::seq::SeqCounter;

    fn numbers(store: &mut SeqStore, id: &str, n: usize) -> Vec<u64> {
        let mut mem = store.device(id);
        let mut seq = SeqCounter::boot(&mut mem, 0).unwrap();
        (0..n).map(|_| seq.next(&mut mem).unwrap()).collect()
    }

    #[test]
    fn a_store_opened_again_goes_on_numbering_above_every_number_already_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SeqStore::open(dir.path(), "yg").unwrap();
        let first = numbers(&mut store, "sos-1", 5);
        assert_eq!(first, [1, 2, 3, 4, 5]);
        assert_eq!(numbers(&mut store, "mh-1", 1), [1]);
        drop(store);
        let mut again = SeqStore::open(dir.path(), "yg").unwrap();
        let next = numbers(&mut again, "sos-1", 1)[0];
        assert!(next > 5, "{next}");
        let text = std::fs::read_to_string(dir.path().join("yg.seq")).unwrap();
        assert_eq!(text, format!("mh-1 0 1025\nsos-1 0 {}\n", next + 1024));
    }

    #[test]
    fn an_in_memory_store_starts_every_device_at_one() {
        let mut store = SeqStore::in_memory();
        assert_eq!(numbers(&mut store, "a", 3), [1, 2, 3]);
        assert_eq!(numbers(&mut store, "b", 1), [1]);
    }

    #[test]
    fn a_malformed_line_is_named_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("yg.seq"), "sos-1 0 1025\nsos-2 zero 7\n").unwrap();
        let err = SeqStore::open(dir.path(), "yg").unwrap_err().to_string();
        assert!(
            err.ends_with("yg.seq:2: not `device slot value`: \"sos-2 zero 7\""),
            "{err}"
        );
    }

    #[test]
    fn a_failed_write_is_reported_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SeqStore::open(dir.path(), "yg").unwrap();
        std::fs::remove_dir_all(dir.path()).unwrap();
        let mut mem = store.device("sos-1");
        assert!(mem.write(0, 1025).is_err());
        assert_eq!(mem.read(0).unwrap(), None);
    }
}
