//! Reading and writing the registry's spreadsheets: XLSX workbooks (and whatever else calamine
//! reads: XLS, ODS) and folders of CSV files.
//!
//! CSV files are read as UTF-8 (with or without the byte-order mark) or, failing that, as GB18030,
//! which is what Excel writes on a Chinese system when told "CSV"; they are written as UTF-8 with
//! a byte-order mark, so Excel opens the Chinese text correctly. Cells are trimmed; a time cell an
//! XLSX stored as a fraction of a day reads back as `HH:MM`, and a whole number as an integer
//! (phone numbers typed into a number cell).

use std::path::{Path, PathBuf};

use calamine::{Data, Reader};

use super::sheets::{Sheet, Table, README_SHEET};

/// Why spreadsheets could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SheetFileError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A workbook could not be opened or a sheet read.
    #[error("{path}: cannot read the workbook: {message}")]
    Workbook {
        /// Which.
        path: String,
        /// Why.
        message: String,
    },
    /// A CSV file is not CSV.
    #[error("{path}: {message}")]
    Csv {
        /// Which.
        path: String,
        /// Why.
        message: String,
    },
    /// A file's name does not say which sheet it is.
    #[error("{path}: not a registry sheet; name it community, buildings, devices or workers (.csv), or give an .xlsx workbook or a folder of them")]
    UnknownSheet {
        /// Which.
        path: String,
    },
    /// A workbook could not be written.
    #[error("{path}: cannot write the workbook: {message}")]
    Write {
        /// Which.
        path: String,
        /// Why.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SheetFileError + '_ {
    move |source| SheetFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads the sheets in `paths`: each an XLSX (or XLS/ODS) workbook, a CSV file named after its
/// sheet, or a folder of such CSV files.
pub fn read(paths: &[PathBuf]) -> Result<Vec<Table>, SheetFileError> {
    let mut tables = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io(path))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
                .collect();
            files.sort();
            for file in files {
                if let Some(table) = read_csv(&file)? {
                    tables.push(table);
                }
            }
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            match read_csv(path)? {
                Some(table) => tables.push(table),
                None => {
                    return Err(SheetFileError::UnknownSheet {
                        path: path.display().to_string(),
                    })
                }
            }
        } else {
            tables.extend(read_workbook(path)?);
        }
    }
    Ok(tables)
}

/// A CSV file's table, or `None` for a file that is no registry sheet (the template's readme).
fn read_csv(path: &Path) -> Result<Option<Table>, SheetFileError> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(sheet) = Sheet::named(&stem) else {
        if stem.contains("readme") || stem.contains("说明") {
            return Ok(None);
        }
        return Err(SheetFileError::UnknownSheet {
            path: path.display().to_string(),
        });
    };
    let bytes = std::fs::read(path).map_err(io(path))?;
    let text = decode_text(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| SheetFileError::Csv {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        rows.push(record.iter().map(|c| c.trim().to_owned()).collect());
    }
    Ok(Some(Table {
        sheet,
        source: path
            .file_name()
            .map_or(stem.clone(), |n| n.to_string_lossy().into_owned()),
        rows,
    }))
}

/// Text from UTF-8 (byte-order mark dropped) or else GB18030.
pub fn decode_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => encoding_rs::GB18030.decode(bytes).0.into_owned(),
    }
}

fn read_workbook(path: &Path) -> Result<Vec<Table>, SheetFileError> {
    let fail = |message: String| SheetFileError::Workbook {
        path: path.display().to_string(),
        message,
    };
    let mut book = calamine::open_workbook_auto(path).map_err(|e| fail(e.to_string()))?;
    let file = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut tables = Vec::new();
    for name in book.sheet_names() {
        let Some(sheet) = Sheet::named(&name) else {
            continue;
        };
        let range = book
            .worksheet_range(&name)
            .map_err(|e| fail(format!("sheet {name:?}: {e}")))?;
        // The range starts at the first used cell; pad so row and column numbers match Excel's.
        let (top, left) = range.start().unwrap_or((0, 0));
        let mut rows: Vec<Vec<String>> = vec![Vec::new(); top as usize];
        for row in range.rows() {
            let mut cells = vec![String::new(); left as usize];
            cells.extend(row.iter().map(cell_text));
            rows.push(cells);
        }
        tables.push(Table {
            sheet,
            source: format!("{file}: {name}"),
            rows,
        });
    }
    Ok(tables)
}

/// A cell as the text staff typed.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_owned(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => {
            let day = d.as_f64().fract();
            let minutes = (day * 24.0 * 60.0).round() as u32;
            format!("{:02}:{:02}", minutes / 60, minutes % 60)
        }
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

/// Writes `tables` (and the instructions `readme`, if any) to `path`: an `.xlsx` workbook, or
/// else a folder of CSV files that is made if missing.
pub fn write(
    path: &Path,
    tables: &[Table],
    readme: Option<&[Vec<String>]>,
) -> Result<(), SheetFileError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"))
    {
        write_workbook(path, tables, readme).map_err(|e| SheetFileError::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    } else {
        std::fs::create_dir_all(path).map_err(io(path))?;
        let readme_table = readme.map(|rows| (README_SHEET, rows));
        let named = tables
            .iter()
            .map(|t| (t.sheet.key(), t.rows.as_slice()))
            .chain(readme_table.map(|(_, rows)| ("readme", rows)));
        for (stem, rows) in named {
            let file = path.join(format!("{stem}.csv"));
            let mut bytes = b"\xEF\xBB\xBF".to_vec();
            {
                let mut writer = csv::WriterBuilder::new()
                    .flexible(true)
                    .from_writer(&mut bytes);
                for row in rows {
                    writer.write_record(row).map_err(|e| SheetFileError::Csv {
                        path: file.display().to_string(),
                        message: e.to_string(),
                    })?;
                }
                writer.flush().map_err(io(&file))?;
            }
            std::fs::write(&file, bytes).map_err(io(&file))?;
        }
        Ok(())
    }
}

fn write_workbook(
    path: &Path,
    tables: &[Table],
    readme: Option<&[Vec<String>]>,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    // Text format: Excel would turn ids like 001 into 1 and 08:00 into a time.
    let text = Format::new().set_num_format("@");
    let sheets = tables
        .iter()
        .map(|t| (t.sheet.title(), t.rows.as_slice()))
        .chain(readme.map(|rows| (README_SHEET.to_owned(), rows)));
    for (title, rows) in sheets {
        let sheet = book.add_worksheet();
        sheet.set_name(&title)?;
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        for c in 0..width {
            let widest = rows
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| {
                    s.chars()
                        .map(|ch| if ch.is_ascii() { 1 } else { 2 })
                        .sum::<usize>()
                })
                .max()
                .unwrap_or(8);
            let col = u16::try_from(c).unwrap_or(u16::MAX);
            sheet.set_column_width(col, (widest.clamp(8, 60) + 2) as f64)?;
            sheet.set_column_format(col, &text)?;
        }
        for (r, row) in rows.iter().enumerate() {
            let r = u32::try_from(r).unwrap_or(u32::MAX);
            for (c, value) in row.iter().enumerate() {
                let c = u16::try_from(c).unwrap_or(u16::MAX);
                if r == 0 {
                    sheet.write_string_with_format(r, c, value, &bold)?;
                } else {
                    sheet.write_string_with_format(r, c, value, &text)?;
                }
            }
        }
        sheet.set_freeze_panes(1, 0)?;
    }
    book.save(path)
}

/// Writes the registry file `text` to `path` by way of a temporary file and a rename, so a
/// running gateway never reads half of it; an existing file is kept as `path.bak`, returned.
pub fn install(path: &Path, text: &str) -> Result<Option<PathBuf>, SheetFileError> {
    let fresh = path.with_extension("toml.new");
    std::fs::write(&fresh, text).map_err(io(&fresh))?;
    let backup = if path.exists() {
        let backup = path.with_extension("toml.bak");
        std::fs::copy(path, &backup).map_err(io(&backup))?;
        Some(backup)
    } else {
        None
    };
    std::fs::rename(&fresh, path).map_err(io(path))?;
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::sheets::{self, Sheet};

    fn tables() -> Vec<Table> {
        let mut tables = sheets::template().0;
        tables[2].rows.push(
            ["elev-b1-1", "电梯", "b1", "", "1单元客梯", ""]
                .map(String::from)
                .to_vec(),
        );
        tables[3].rows.push(
            [
                "w-li",
                "李军",
                "013800000002",
                "值班",
                "g1",
                "mon-fri",
                "20:00",
                "08:00",
            ]
            .map(String::from)
            .to_vec(),
        );
        tables
    }

    #[test]
    fn a_workbook_reads_back_as_written_with_text_kept_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.xlsx");
        write(&path, &tables(), Some(&sheets::template().1)).unwrap();
        let back = read(&[path]).unwrap();
        assert_eq!(back.len(), 4, "the readme sheet is passed over");
        for (want, got) in tables().iter().zip(&back) {
            assert_eq!(got.sheet, want.sheet);
            assert_eq!(got.source, format!("registry.xlsx: {}", want.sheet.title()));
            let trimmed: Vec<Vec<String>> = want
                .rows
                .iter()
                .map(|r| {
                    let end = r.iter().rposition(|c| !c.is_empty()).map_or(0, |i| i + 1);
                    r[..end].to_vec()
                })
                .collect();
            let got_trimmed: Vec<Vec<String>> = got
                .rows
                .iter()
                .map(|r| {
                    let end = r.iter().rposition(|c| !c.is_empty()).map_or(0, |i| i + 1);
                    r[..end].to_vec()
                })
                .collect();
            assert_eq!(got_trimmed, trimmed);
        }
    }

    #[test]
    fn a_csv_folder_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &tables(), Some(&sheets::template().1)).unwrap();
        let raw = std::fs::read(dir.path().join("devices.csv")).unwrap();
        assert!(
            raw.starts_with(b"\xEF\xBB\xBF"),
            "Excel needs the BOM to read UTF-8"
        );
        let mut back = read(&[dir.path().to_owned()]).unwrap();
        back.sort_by_key(|t| t.sheet);
        let want = tables();
        assert_eq!(
            back.iter().map(|t| &t.rows).collect::<Vec<_>>(),
            want.iter().map(|t| &t.rows).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_csv_excel_saved_in_gb18030_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let text = "社区编号,社区名称\nyg,阳光社区\n";
        let (bytes, _, _) = encoding_rs::GB18030.encode(text);
        assert!(std::str::from_utf8(&bytes).is_err());
        let path = dir.path().join("community.csv");
        std::fs::write(&path, &bytes).unwrap();
        let back = read(&[path]).unwrap();
        assert_eq!(back[0].rows[1], ["yg", "阳光社区"]);
    }

    #[test]
    fn a_csv_named_for_no_sheet_is_refused_with_the_names_to_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.csv");
        std::fs::write(&path, "a,b\n").unwrap();
        let e = read(&[path]).unwrap_err().to_string();
        assert!(
            e.contains("name it community, buildings, devices or workers"),
            "{e}"
        );
    }

    #[test]
    fn install_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.toml");
        assert_eq!(install(&path, "a = 1\n").unwrap(), None);
        let backup = install(&path, "a = 2\n").unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a = 2\n");
        assert_eq!(std::fs::read_to_string(backup).unwrap(), "a = 1\n");
        assert_eq!(Sheet::named("registry"), None);
    }
}
