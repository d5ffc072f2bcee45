//! The embedded store for `gridwatch demo` and single-box installs: line-protocol files on disk.
//!
//! Each batch is appended to `readings.lp` in the store's folder and fsync'd before it counts as
//! written. Past `rotate_bytes` the file is renamed `readings-{unix_ms}.lp` and a new one started;
//! closed files beyond `max_bytes` in all are deleted, oldest first (the retention). The files hold
//! exactly the bytes a server would have received, so data kept locally can later be sent to a
//! server with its write API (`precision=ms`); the README shows the command.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::config::LocalStoreConfig;

use super::writer::WriteError;

/// Line-protocol files in one folder.
#[derive(Clone, Debug)]
pub struct LocalStore {
    dir: PathBuf,
    rotate_bytes: u64,
    max_bytes: u64,
}

impl LocalStore {
    /// A store as `cfg` says, its folder created if missing.
    pub fn open(cfg: &LocalStoreConfig) -> std::io::Result<Self> {
        fs::create_dir_all(&cfg.path)?;
        crate::journal::format::check(&cfg.path, crate::journal::format::LOCAL_STORE)?;
        Ok(Self {
            dir: cfg.path.clone(),
            rotate_bytes: cfg.rotate_bytes,
            max_bytes: cfg.max_bytes,
        })
    }

    /// The folder, for logs.
    pub fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    /// Appends and fsyncs one batch.
    pub async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.append(&body))
            .await
            .map_err(|e| WriteError::Retry(format!("writer task: {e}")))?
            .map_err(|e| WriteError::Retry(format!("{}: {e}", self.dir.display())))
    }

    fn append(&self, body: &[u8]) -> std::io::Result<()> {
        let current = self.dir.join("readings.lp");
        if fs::metadata(&current).map(|m| m.len()).unwrap_or(0) >= self.rotate_bytes {
            let closed = self
                .dir
                .join(format!("readings-{}.lp", crate::clock::now_ms()));
            fs::rename(&current, closed)?;
            self.apply_retention()?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current)?;
        f.write_all(body)?;
        f.sync_data()
    }

    /// Deletes the oldest closed files while all of them together exceed `max_bytes`.
    fn apply_retention(&self) -> std::io::Result<()> {
        let mut closed: Vec<(PathBuf, u64)> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("readings-") && name.ends_with(".lp")
            })
            .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
            .collect();
        // The names carry the time they were closed, zero-padded by nature until year 2286.
        closed.sort();
        let mut total: u64 = closed.iter().map(|(_, len)| len).sum();
        for (path, len) in closed {
            if total <= self.max_bytes {
                break;
            }
            fs::remove_file(&path)?;
            tracing::info!(file = %path.display(), "local store retention: deleted the oldest readings file");
            total -= len;
        }
        Ok(())
    }
}

/// Every file of a local store's folder that holds readings, oldest first, for replay.
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut closed: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("readings-") && n.ends_with(".lp"))
        })
        .collect();
    closed.sort();
    let current = dir.join("readings.lp");
    if current.exists() {
        closed.push(current);
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str, rotate_bytes: u64, max_bytes: u64) -> LocalStore {
        let path =
            std::env::temp_dir().join(format!("gridwatch-local-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        LocalStore::open(&LocalStoreConfig {
            path,
            rotate_bytes,
            max_bytes,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn appends_and_rotates() {
        let store = store("rotate", 10, 1 << 20);
        store.write(Bytes::from_static(b"m f=1 1\n")).await.unwrap();
        store.write(Bytes::from_static(b"m f=2 2\n")).await.unwrap();
        let current = store.dir.join("readings.lp");
        assert_eq!(fs::read_to_string(&current).unwrap(), "m f=1 1\nm f=2 2\n");
        store.write(Bytes::from_static(b"m f=3 3\n")).await.unwrap();
        assert_eq!(fs::read_to_string(&current).unwrap(), "m f=3 3\n");
        let all = files(&store.dir).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], current, "the file being written comes last");
        fs::remove_dir_all(&store.dir).unwrap();
    }

    #[tokio::test]
    async fn retention_deletes_the_oldest_closed_files() {
        let store = store("retention", 8, 16);
        for i in 0..6 {
            store
                .write(Bytes::from(format!("m f={i} {i}\n")))
                .await
                .unwrap();
            // Closed files are named by the millisecond they were closed in.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let all = files(&store.dir).unwrap();
        let kept: Vec<String> = all.iter().map(|p| fs::read_to_string(p).unwrap()).collect();
        assert_eq!(kept, ["m f=3 3\n", "m f=4 4\n", "m f=5 5\n"]);
        fs::remove_dir_all(&store.dir).unwrap();
    }
}
