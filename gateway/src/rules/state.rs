//! The engine's saved state: its timers, windows and open alerts, the maintenance windows, and
//! the journal position they cover. On start the gateway restores it and runs the journal's
//! records after that position through the engine again, so a `for` timer half way through a
//! restart carries on where it was.

use std::path::{Path, PathBuf};

use gridwatch_edge_rules::{Silence, Snapshot};
use serde::{Deserialize, Serialize};

use crate::decode::guard::Mark;
use crate::journal::Position;
use std::collections::HashMap;

/// The file name, in the journal's folder.
pub const FILE: &str = "rules-state.json";

/// What is saved.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// The engine covers every journal record before this segment and offset.
    pub segment: u64,
    /// See `segment`.
    pub offset: u64,
    /// When it was saved.
    pub saved_ms: u64,
    /// Maintenance windows.
    #[serde(default)]
    pub silences: Vec<Silence>,
    /// The engine's state.
    pub engine: Snapshot,
    /// Each device's last accepted sequence number, for catching replays across a restart.
    #[serde(default)]
    pub seq: HashMap<String, Mark>,
}

impl Saved {
    /// The journal position the state covers up to.
    pub fn position(&self) -> Position {
        Position {
            segment: self.segment,
            offset: self.offset,
        }
    }
}

/// What is saved, borrowed: serialized straight from the engine, read back as [`Saved`].
#[derive(Serialize)]
pub struct SavedView<'a, E: Serialize> {
    /// See [`Saved::segment`].
    pub segment: u64,
    /// See [`Saved::offset`].
    pub offset: u64,
    /// See [`Saved::saved_ms`].
    pub saved_ms: u64,
    /// See [`Saved::silences`].
    pub silences: &'a [Silence],
    /// The engine's [`gridwatch_edge_rules::Engine::view`].
    pub engine: E,
    /// See [`Saved::seq`].
    pub seq: HashMap<&'a str, Mark>,
}

/// The state file in `journal_dir`.
pub fn path(journal_dir: &Path) -> PathBuf {
    journal_dir.join(FILE)
}

/// Reads the saved state; `Ok(None)` when there is none yet.
pub fn load(journal_dir: &Path) -> std::io::Result<Option<Saved>> {
    match std::fs::read(path(journal_dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `saved` ([`Saved`] or a [`SavedView`]) into a temporary file beside the state file,
/// straight from the value: no copy of the state is made in memory, however large it is.
/// [`commit`] makes it the state file.
pub fn write(journal_dir: &Path, saved: &impl Serialize) -> std::io::Result<std::fs::File> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(tmp_path(journal_dir))?);
    serde_json::to_writer(&mut out, saved).map_err(std::io::Error::other)?;
    out.into_inner().map_err(|e| e.into_error())
}

/// Makes the file [`write`] wrote the state file, whole or not at all: fsync'd, then renamed.
pub fn commit(journal_dir: &Path, written: std::fs::File) -> std::io::Result<()> {
    written.sync_all()?;
    std::fs::rename(tmp_path(journal_dir), path(journal_dir))?;
    std::fs::File::open(journal_dir)?.sync_all()
}

fn tmp_path(journal_dir: &Path) -> PathBuf {
    journal_dir.join(format!("{FILE}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_save_and_a_load() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let saved = Saved {
            segment: 3,
            offset: 1234,
            saved_ms: 9,
            ..Saved::default()
        };
        let written = write(dir.path(), &saved).unwrap();
        commit(dir.path(), written).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(saved));
        std::fs::write(path(dir.path()), b"{not json").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
