//! The format stamp of a data folder: a `FORMAT` file saying which on-disk format wrote it.
//!
//! ```text
//! gridwatch journal format 1
//! ```
//!
//! Version 1 of the journal folder covers its segments, cursors, `cases.log` and
//! `rules-state.json`; version 1 of the local store covers its line-protocol files. A folder
//! from before the stamp existed holds version 1 and is stamped on first open. A folder stamped
//! by a newer gridwatch is refused before anything in it is read or changed, with a message that
//! names the file and both versions: a downgrade must never half-read data it does not know.
//! When a format changes, its version goes up here and the step from the old one is added
//! beside [`check`], run before the stamp is rewritten.

use std::fs;
use std::io;
use std::path::Path;

/// The stamp's file name.
pub const FILE: &str = "FORMAT";

/// The journal folder's current format.
pub const JOURNAL: Format = Format {
    what: "journal",
    version: 1,
};

/// The local store folder's current format.
pub const LOCAL_STORE: Format = Format {
    what: "local store",
    version: 1,
};

/// A kind of data folder and the format version this build writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// What the folder holds, as the stamp names it.
    pub what: &'static str,
    /// The version.
    pub version: u32,
}

impl Format {
    fn line(&self) -> String {
        format!("gridwatch {} format {}\n", self.what, self.version)
    }
}

/// Checks `dir`'s stamp against `format`, stamping a folder that has none; refuses a folder
/// stamped by a newer build or with a stamp it cannot read.
pub fn check(dir: &Path, format: Format) -> io::Result<()> {
    let path = dir.join(FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::write(&path, format.line())?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let prefix = format!("gridwatch {} format ", format.what);
    let found = text
        .trim()
        .strip_prefix(&prefix)
        .and_then(|v| v.parse::<u32>().ok());
    match found {
        Some(v) if v == format.version => Ok(()),
        Some(v) if v > format.version => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} says {} format {v}, written by a newer gridwatch; this one reads format {} \
                 only. Install that newer version again (or restore the backup taken before the \
                 upgrade); nothing in the folder was changed",
                path.display(),
                format.what,
                format.version
            ),
        )),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} should read \"{}\" but reads {:?}: is this folder gridwatch's {}? Nothing in \
                 it was changed",
                path.display(),
                format.line().trim(),
                text.trim(),
                format.what
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_folder_and_one_from_before_the_stamp_are_stamped_with_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("00000000000000000001.seg"), b"old data").unwrap();
        check(dir.path(), JOURNAL).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE)).unwrap(),
            "gridwatch journal format 1\n"
        );
        check(dir.path(), JOURNAL).unwrap();
    }

    #[test]
    fn a_folder_from_a_newer_build_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), "gridwatch journal format 7\n").unwrap();
        let e = check(dir.path(), JOURNAL).unwrap_err().to_string();
        assert!(
            e.contains("journal format 7, written by a newer gridwatch"),
            "{e}"
        );
        assert!(e.contains("reads format 1"), "{e}");
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE)).unwrap(),
            "gridwatch journal format 7\n"
        );
    }

    #[test]
    fn a_stamp_of_another_kind_of_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        check(dir.path(), LOCAL_STORE).unwrap();
        let e = check(dir.path(), JOURNAL).unwrap_err().to_string();
        assert!(e.contains("is this folder gridwatch's journal?"), "{e}");
    }
}
