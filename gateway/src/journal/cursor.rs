//! A consumer's place in the journal, kept in a small file so a restart resumes where it was.
//!
//! The file is replaced atomically (write, then rename). It is not fsync'd: if a crash loses the
//! latest update the consumer resumes a little earlier and repeats some work, which every consumer
//! tolerates (store writes carry explicit timestamps; webhooks carry idempotency ids).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Position;

/// A named cursor file in the journal's folder.
#[derive(Debug)]
pub struct Cursor {
    path: PathBuf,
}

impl Cursor {
    /// The cursor `name` in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            path: dir.join(format!("{name}.cursor")),
        }
    }

    /// The saved position, if any (an unreadable file counts as none: start from the beginning).
    pub fn load(&self) -> Option<Position> {
        let text = fs::read_to_string(&self.path).ok()?;
        let (s, o) = text.trim().split_once(' ')?;
        Some(Position {
            segment: s.parse().ok()?,
            offset: o.parse().ok()?,
        })
    }

    /// Saves `pos`.
    pub fn save(&self, pos: Position) -> io::Result<()> {
        let tmp = self.path.with_extension("cursor.tmp");
        fs::write(&tmp, format!("{} {}\n", pos.segment, pos.offset))?;
        fs::rename(tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads() {
        let dir = std::env::temp_dir().join(format!("gridwatch-cursor-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let c = Cursor::new(&dir, "tsdb");
        assert_eq!(c.load(), None);
        c.save(Position {
            segment: 3,
            offset: 77,
        })
        .unwrap();
        assert_eq!(
            c.load(),
            Some(Position {
                segment: 3,
                offset: 77
            })
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
