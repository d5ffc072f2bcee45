//! `gridwatch replay`: sends what the local store kept to a server, oldest file first.
//!
//! The files are already line protocol with explicit timestamps, so replaying twice, or replaying
//! readings the server already has, overwrites rather than duplicates. Each chunk is retried until
//! the server takes it; a chunk it refuses as malformed is reported and skipped.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;

use super::local;
use super::writer::WriteError;
use super::HttpStore;
use crate::backoff::Backoff;

/// What a replay sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Files read.
    pub files: usize,
    /// Lines the server took.
    pub lines: u64,
    /// Lines in chunks the server refused as malformed.
    pub refused: u64,
}

/// Sends every readings file in `dir` to `store` in chunks of `chunk_lines`, reporting progress.
pub async fn replay(
    dir: &Path,
    store: &HttpStore,
    chunk_lines: usize,
    mut progress: impl FnMut(&Replayed, &Path),
) -> anyhow::Result<Replayed> {
    let mut done = Replayed::default();
    let files = local::files(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    if files.is_empty() {
        anyhow::bail!("{} holds no readings files (readings*.lp)", dir.display());
    }
    for file in files {
        let text = tokio::fs::read_to_string(&file)
            .await
            .with_context(|| format!("cannot read {}", file.display()))?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        for chunk in lines.chunks(chunk_lines.max(1)) {
            let mut body = chunk.join("\n");
            body.push('\n');
            let body = Bytes::from(body);
            let mut backoff = Backoff::new(200, 10_000);
            loop {
                match store.write(body.clone()).await {
                    Ok(()) => {
                        done.lines += chunk.len() as u64;
                        break;
                    }
                    Err(WriteError::Rejected(e)) => {
                        tracing::error!(file = %file.display(), "server refused {} lines: {e}", chunk.len());
                        done.refused += chunk.len() as u64;
                        break;
                    }
                    Err(WriteError::Retry(e)) => {
                        let wait = backoff.next_wait();
                        tracing::warn!("server not taking writes ({e}); retrying in {wait:?}");
                        tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                    }
                }
            }
            progress(&done, &file);
        }
        done.files += 1;
    }
    Ok(done)
}
