//! The embedded store for `gridwatch demo` and single-box installs: line-protocol files on disk.
//!
//! Each batch is appended to `readings.lp` in the store's folder and fsync'd before it counts as
//! written. Past `rotate_bytes` the file is renamed `readings-{unix_ms}.lp` and a new one started.
//! The files hold exactly the bytes a server would have received, so data kept locally can later
//! be sent to a server with its write API (`precision=ms`); the README shows the command.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::writer::WriteError;

/// Line-protocol files in one folder.
#[derive(Clone, Debug)]
pub struct LocalStore {
    dir: PathBuf,
    rotate_bytes: u64,
}

impl LocalStore {
    /// A store in `dir`, created if missing.
    pub fn open(dir: &Path, rotate_bytes: u64) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            rotate_bytes,
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
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current)?;
        f.write_all(body)?;
        f.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_and_rotates() {
        let dir = std::env::temp_dir().join(format!("gridwatch-local-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = LocalStore::open(&dir, 10).unwrap();
        store.write(Bytes::from_static(b"m f=1 1\n")).await.unwrap();
        store.write(Bytes::from_static(b"m f=2 2\n")).await.unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("readings.lp")).unwrap(),
            "m f=1 1\nm f=2 2\n"
        );
        store.write(Bytes::from_static(b"m f=3 3\n")).await.unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("readings.lp")).unwrap(),
            "m f=3 3\n"
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
