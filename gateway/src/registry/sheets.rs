//! The registry as the spreadsheets community staff keep: four sheets in, the registry file out,
//! and back again.
//!
//! | sheet (XLSX name / CSV file)        | one row is                                          |
//! |-------------------------------------|-----------------------------------------------------|
//! | `社区 community` / `community.csv`   | the community: id, name, time zone (one row)        |
//! | `楼栋与网格 buildings` / `buildings.csv` | a building and the grid it belongs to           |
//! | `设备 devices` / `devices.csv`       | a device: id, kind, building, grid, location, tags |
//! | `人员与排班 workers` / `workers.csv`  | a worker's contacts, and a role or a shift         |
//!
//! Row 1 of every sheet is its header; a column is found by its English key or its Chinese name
//! (the template writes both, `楼栋编号 building_id`), so staff may reorder or relabel columns.
//! A worker takes one row per role or shift; their contact cells may be left empty on the rows
//! after the first, and must agree where they are not.
//!
//! Import is all or nothing: it builds the registry file's text with one value per line,
//! remembering which cell each line came from, and runs the registry's own check over it, so
//! every problem (the registry's and the sheets' own) is reported with its sheet, row and column,
//! all at once. Nothing is written unless there are none.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::catalogue::Catalogue;

use super::Registry;

/// One of the four sheets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sheet {
    /// The community itself.
    Community,
    /// Buildings and their grids.
    Buildings,
    /// Devices.
    Devices,
    /// Workers, their roles and shifts.
    Workers,
}

impl Sheet {
    /// Every sheet, in the order they are written.
    pub const ALL: [Sheet; 4] = [
        Sheet::Community,
        Sheet::Buildings,
        Sheet::Devices,
        Sheet::Workers,
    ];

    /// The English key: the CSV file's stem and the end of the XLSX sheet's name.
    pub fn key(self) -> &'static str {
        match self {
            Sheet::Community => "community",
            Sheet::Buildings => "buildings",
            Sheet::Devices => "devices",
            Sheet::Workers => "workers",
        }
    }

    /// The Chinese name staff know it by.
    pub fn zh(self) -> &'static str {
        match self {
            Sheet::Community => "社区",
            Sheet::Buildings => "楼栋与网格",
            Sheet::Devices => "设备",
            Sheet::Workers => "人员与排班",
        }
    }

    /// The XLSX sheet name: Chinese, then the key.
    pub fn title(self) -> String {
        format!("{} {}", self.zh(), self.key())
    }

    /// The sheet a sheet name or file stem stands for, by its key or Chinese name.
    pub fn named(name: &str) -> Option<Sheet> {
        Self::ALL
            .into_iter()
            .find(|s| tokens(name).any(|t| t.eq_ignore_ascii_case(s.key()) || t == s.zh()))
    }

    /// The sheet's columns, in template order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Sheet::Community => COMMUNITY,
            Sheet::Buildings => BUILDINGS,
            Sheet::Devices => DEVICES,
            Sheet::Workers => WORKERS,
        }
    }
}

/// The name of the instructions sheet the template adds; import passes over it.
pub const README_SHEET: &str = "说明 readme";

/// A column of a sheet.
#[derive(Debug)]
pub struct Column {
    /// The English key, as the registry file names the value.
    pub key: &'static str,
    /// The Chinese header.
    pub zh: &'static str,
    /// Whether every row must fill it.
    pub required: bool,
    /// What to write, for the template's instructions.
    pub help: &'static str,
    /// An example value.
    pub example: &'static str,
}

macro_rules! col {
    ($key:literal, $zh:literal, $req:literal, $help:literal, $ex:literal) => {
        Column {
            key: $key,
            zh: $zh,
            required: $req,
            help: $help,
            example: $ex,
        }
    };
}

#[rustfmt::skip]
const COMMUNITY: &[Column] = &[
    col!("id", "社区编号", true, "字母、数字、-、_，最长64位 / letters, digits, - and _, up to 64", "yangguang"),
    col!("name", "社区名称", true, "社区名称 / the community's name", "阳光社区"),
    col!("time_zone", "时区", false, "排班所用时区，默认 Asia/Shanghai / the roster's time zone", "Asia/Shanghai"),
];

#[rustfmt::skip]
const BUILDINGS: &[Column] = &[
    col!("building_id", "楼栋编号", false, "楼栋编号；只建网格时可空 / building id; empty for a grid without buildings", "b1"),
    col!("building_name", "楼栋名称", false, "楼栋名称 / the building's name", "1号楼"),
    col!("grid_id", "网格编号", true, "该楼所属网格 / the grid the building is in", "g1"),
    col!("grid_name", "网格名称", false, "网格名称，同一网格写一次即可 / the grid's name, once per grid", "第一网格"),
];

#[rustfmt::skip]
const DEVICES: &[Column] = &[
    col!("device_id", "设备编号", true, "唯一，字母、数字、-、_ / unique; letters, digits, - and _", "elev-b1-1"),
    col!("kind", "类型", true, "类型名或中文名：电梯、井盖、消防通道、一键呼救 / a kind from the catalogue, by name or label", "电梯"),
    col!("building_id", "楼栋编号", true, "楼栋与网格表中的楼栋 / a building of the buildings sheet", "b1"),
    col!("grid_id", "网格编号", false, "空则取楼栋所属网格 / empty: the building's grid", ""),
    col!("location", "位置", true, "给上门人员看的位置 / where, for the worker who goes there", "1单元客梯"),
    col!("tags", "标签", false, "逗号分隔，如 living_alone（独居老人）/ comma-separated tags rules select on", ""),
];

#[rustfmt::skip]
const WORKERS: &[Column] = &[
    col!("worker_id", "工号", true, "人员编号 / worker id", "w-wangfang"),
    col!("name", "姓名", false, "姓名，每人写一次即可 / name, once per worker", "王芳"),
    col!("phone", "电话", false, "手机号，群机器人@提醒 / phone, @-mentioned by group robots", "13800000001"),
    col!("role", "职责", false, "值班 on_duty、备班 backup、网格长 leader、总值班 duty_officer；空则只登记联系方式 / empty: contacts only", "值班"),
    col!("grid_id", "网格编号", false, "职责所在网格（总值班不填）/ the grid of the role (none for duty_officer)", "g1"),
    col!("days", "排班日", false, "有班次时填：daily、mon-fri、sat,sun / the days a shift starts on", ""),
    col!("from", "开始", false, "班次开始 HH:MM；空则长期在岗 / shift start; empty: always", ""),
    col!("to", "结束", false, "班次结束 HH:MM，早于开始即跨夜 / shift end; before the start: overnight", ""),
    col!("wecom", "企业微信机器人", false, "企业微信群机器人地址 / WeCom group robot URL", ""),
    col!("dingtalk", "钉钉机器人", false, "钉钉群机器人地址 / DingTalk group robot URL", ""),
    col!("dingtalk_secret", "钉钉加签密钥", false, "钉钉加签 SEC… / DingTalk signing secret", ""),
    col!("feishu", "飞书机器人", false, "飞书群机器人地址 / Feishu group robot URL", ""),
    col!("feishu_secret", "飞书签名密钥", false, "飞书签名校验密钥 / Feishu signing secret", ""),
    col!("email", "邮箱", false, "电子邮箱 / e-mail address", ""),
    col!("webhook", "Webhook", false, "签名的 Webhook 地址（如值班 App）/ a signed webhook URL", "https://app.example.cn/hook/w-wangfang"),
];

/// The contact columns of the workers sheet: the first row of a worker gives them.
const CONTACTS: [&str; 9] = [
    "name",
    "phone",
    "wecom",
    "dingtalk",
    "dingtalk_secret",
    "feishu",
    "feishu_secret",
    "email",
    "webhook",
];

/// The ways of reaching a worker: a worker with none of them cannot be paged.
const REACH: [&str; 5] = ["wecom", "dingtalk", "feishu", "email", "webhook"];

/// One sheet as read from a file: rows of trimmed cells, row 0 the header.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Which sheet.
    pub sheet: Sheet,
    /// Where it came from, for messages: `devices.csv`, `registry.xlsx: 设备 devices`.
    pub source: String,
    /// The cells, row by row; row 0 is the header.
    pub rows: Vec<Vec<String>>,
}

/// Something wrong in the sheets, with the cell it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The sheet's source.
    pub source: String,
    /// The spreadsheet row, from 1 (the header).
    pub row: Option<usize>,
    /// The column's letter and header.
    pub column: Option<(String, String)>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(row) = self.row {
            write!(f, " row {row}")?;
        }
        if let Some((letter, header)) = &self.column {
            write!(f, " column {letter} ({header})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The column letters of a 0-based index: A … Z, AA ….
pub fn column_letter(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8_lossy(&letters).into_owned()
}

/// The words of a header or sheet name: split at spaces, brackets and slashes.
fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c.is_whitespace() || "()（）[]/".contains(c))
        .filter(|t| !t.is_empty())
}

/// Where a value came from: a table, a row index into it, and a column index.
#[derive(Clone, Copy, Debug)]
struct Cell {
    table: usize,
    row: usize,
    col: Option<usize>,
}

/// One sheet's rows with its columns found.
struct Located<'t> {
    index: usize,
    table: &'t Table,
    columns: HashMap<&'static str, usize>,
}

impl<'t> Located<'t> {
    fn get(&self, row: usize, key: &str) -> &'t str {
        self.columns
            .get(key)
            .and_then(|&c| self.table.rows[row].get(c))
            .map_or("", |s| s.as_str())
    }

    fn cell(&self, row: usize, key: &str) -> Cell {
        Cell {
            table: self.index,
            row,
            col: self.columns.get(key).copied(),
        }
    }

    /// The data rows that are not wholly empty, as indices into `rows`.
    fn data_rows(&self) -> impl Iterator<Item = usize> + 't {
        let t = self.table;
        (1..t.rows.len()).filter(move |&r| t.rows[r].iter().any(|c| !c.is_empty()))
    }
}

/// What an import made.
#[derive(Debug)]
pub struct Imported {
    /// The registry file's text.
    pub text: String,
    /// The registry it describes, checked.
    pub registry: Registry,
}

/// The registry file's text being built, one value per line, each line's origin kept.
struct Out {
    text: String,
    origins: Vec<Option<Cell>>,
}

impl Out {
    fn line(&mut self, line: &str, origin: Option<Cell>) {
        self.text.push_str(line);
        self.text.push('\n');
        self.origins.push(origin);
    }

    fn table(&mut self, header: &str, origin: Option<Cell>) {
        self.line("", None);
        self.line(header, origin);
    }

    fn value(&mut self, key: &str, value: &str, origin: Cell) {
        let quoted = toml::Value::String(value.to_owned()).to_string();
        self.line(&format!("{key} = {quoted}"), Some(origin));
    }
}

struct Problems<'a> {
    tables: &'a [Table],
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn at(&mut self, cell: Cell, message: String) {
        let table = &self.tables[cell.table];
        let column = cell.col.map(|c| {
            let header = table.rows[0].get(c).cloned().unwrap_or_default();
            (column_letter(c), header)
        });
        self.list.push(Problem {
            source: table.source.clone(),
            row: Some(cell.row + 1),
            column,
            message,
        });
    }

    fn sheet(&mut self, source: &str, message: String) {
        self.list.push(Problem {
            source: source.into(),
            row: None,
            column: None,
            message,
        });
    }
}

/// The sheets' tables turned into a checked registry and its file text, or every problem.
pub fn import(tables: &[Table], catalogue: Arc<Catalogue>) -> Result<Imported, Vec<Problem>> {
    let mut p = Problems {
        tables,
        list: Vec::new(),
    };
    let mut found: BTreeMap<Sheet, Located<'_>> = BTreeMap::new();
    for (index, table) in tables.iter().enumerate() {
        if let Some(earlier) = found.get(&table.sheet) {
            p.sheet(
                &table.source,
                format!(
                    "a second {} sheet (the first is {}); merge them into one",
                    table.sheet.key(),
                    earlier.table.source
                ),
            );
            continue;
        }
        found.insert(table.sheet, locate(index, table, &mut p));
    }
    for sheet in Sheet::ALL {
        if !found.contains_key(&sheet) {
            p.sheet(
                sheet.key(),
                format!(
                    "the {} sheet is missing: add a sheet (or a {}.csv) named \"{}\" (`gridwatch registry template` writes one)",
                    sheet.key(),
                    sheet.key(),
                    sheet.title()
                ),
            );
        }
    }
    if !p.list.is_empty() {
        return Err(sorted(p.list));
    }
    let mut out = Out {
        text: String::from(
            "# Written by `gridwatch registry import` from the community's spreadsheets.\n",
        ),
        origins: vec![None],
    };
    let duty_officer = workers(&found[&Sheet::Workers], &mut out, &mut p, true);
    community(&found[&Sheet::Community], duty_officer, &mut out, &mut p);
    let building_grids = buildings(&found[&Sheet::Buildings], &mut out, &mut p);
    workers(&found[&Sheet::Workers], &mut out, &mut p, false);
    devices(
        &found[&Sheet::Devices],
        &catalogue,
        &building_grids,
        &mut out,
        &mut p,
    );
    match Registry::parse_with(&out.text, catalogue) {
        Ok(registry) if p.list.is_empty() => Ok(Imported {
            text: out.text,
            registry,
        }),
        Ok(_) => Err(sorted(p.list)),
        Err(problems) => {
            for problem in problems {
                let origin = problem
                    .strip_prefix("line ")
                    .and_then(|rest| rest.split_once(": "))
                    .and_then(|(n, message)| Some((n.parse::<usize>().ok()?, message)));
                match origin
                    .and_then(|(n, m)| Some((out.origins.get(n.checked_sub(1)?).copied()??, m)))
                {
                    Some((cell, message)) => p.at(cell, in_sheet_terms(message)),
                    // Without a line it is a consequence of a problem already listed
                    // (no community row, say), unless there is none.
                    None if p.list.is_empty() => p.sheet("registry", problem),
                    None => {}
                }
            }
            Err(sorted(p.list))
        }
    }
}

/// A registry problem's message with the file's tables named as the sheets that hold them.
fn in_sheet_terms(message: &str) -> String {
    message
        .replace("[[grids]]", "the buildings sheet's grids")
        .replace("[[buildings]]", "the buildings sheet")
        .replace("[[workers]]", "the workers sheet")
}

/// Problems in reading order: by sheet, row and column.
fn sorted(mut problems: Vec<Problem>) -> Vec<Problem> {
    let sheet_order = |source: &str| {
        Sheet::ALL
            .iter()
            .position(|s| Sheet::named(source) == Some(*s))
            .unwrap_or(Sheet::ALL.len())
    };
    problems.sort_by_key(|p| {
        (
            sheet_order(&p.source),
            p.source.clone(),
            p.row,
            p.column
                .as_ref()
                .map(|(letter, _)| (letter.len(), letter.clone())),
        )
    });
    problems.dedup();
    problems
}

/// Finds a table's columns; unknown and missing ones are problems. A `备注 notes` column is
/// for people and passed over.
fn locate<'t>(index: usize, table: &'t Table, p: &mut Problems<'_>) -> Located<'t> {
    let mut columns = HashMap::new();
    let Some(header) = table.rows.first() else {
        p.sheet(
            &table.source,
            "the sheet is empty: row 1 must be its header".into(),
        );
        return Located {
            index,
            table,
            columns,
        };
    };
    let mut ok = true;
    for (c, text) in header.iter().enumerate() {
        if text.is_empty() || tokens(text).any(|t| t == "备注" || t.eq_ignore_ascii_case("notes"))
        {
            continue;
        }
        let column = table.sheet.columns().iter().find(|col| {
            tokens(text).any(|t| t.eq_ignore_ascii_case(col.key) || t == col.zh)
                || text.eq_ignore_ascii_case(col.key)
        });
        let here = Cell {
            table: index,
            row: 0,
            col: Some(c),
        };
        match column {
            Some(col) if columns.insert(col.key, c).is_some() => {
                p.at(here, format!("column {} appears twice", col.key));
                ok = false;
            }
            Some(_) => {}
            None => {
                let known: Vec<String> = table
                    .sheet
                    .columns()
                    .iter()
                    .map(|c| format!("{} {}", c.zh, c.key))
                    .collect();
                p.at(
                    here,
                    format!(
                        "unknown column {text:?}; this sheet's columns are: {}",
                        known.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    for col in table.sheet.columns().iter().filter(|c| c.required) {
        if !columns.contains_key(col.key) {
            p.sheet(
                &table.source,
                format!("column \"{} {}\" is missing from row 1", col.zh, col.key),
            );
            ok = false;
        }
    }
    let located = Located {
        index,
        table,
        columns,
    };
    for row in located.data_rows() {
        for col in table.sheet.columns().iter().filter(|c| c.required) {
            if ok && located.get(row, col.key).is_empty() {
                p.at(
                    located.cell(row, col.key),
                    format!("{} ({}) must be filled in", col.zh, col.key),
                );
            }
        }
    }
    located
}

fn community(
    sheet: &Located<'_>,
    duty_officer: Option<(String, Cell)>,
    out: &mut Out,
    p: &mut Problems<'_>,
) {
    let rows: Vec<usize> = sheet.data_rows().collect();
    let Some(&row) = rows.first() else {
        p.sheet(
            &sheet.table.source,
            "the community sheet needs one row under its header: id and name".into(),
        );
        return;
    };
    for &extra in &rows[1..] {
        p.at(
            sheet.cell(extra, "id"),
            "one gateway serves one community: keep one row".into(),
        );
    }
    out.table("[community]", Some(sheet.cell(row, "id")));
    out.value("id", sheet.get(row, "id"), sheet.cell(row, "id"));
    out.value("name", sheet.get(row, "name"), sheet.cell(row, "name"));
    let zone = sheet.get(row, "time_zone");
    if !zone.is_empty() {
        out.value("time_zone", zone, sheet.cell(row, "time_zone"));
    }
    if let Some((id, cell)) = duty_officer {
        out.value("duty_officer", &id, cell);
    }
}

/// Writes the buildings and grids; returns each building's grids, for devices without one.
fn buildings(
    sheet: &Located<'_>,
    out: &mut Out,
    p: &mut Problems<'_>,
) -> HashMap<String, Vec<String>> {
    let mut names: BTreeMap<String, (String, Cell)> = BTreeMap::new();
    let mut grids: BTreeMap<String, (String, Cell)> = BTreeMap::new();
    let mut building_grids: HashMap<String, Vec<String>> = HashMap::new();
    let mut order = Vec::new();
    for row in sheet.data_rows() {
        let grid = sheet.get(row, "grid_id");
        let grid_name = sheet.get(row, "grid_name");
        agree(
            &mut grids,
            grid,
            grid_name,
            sheet.cell(row, "grid_name"),
            "grid",
            p,
        );
        let building = sheet.get(row, "building_id");
        if building.is_empty() {
            continue;
        }
        if !names.contains_key(building) {
            order.push(building.to_owned());
        }
        agree(
            &mut names,
            building,
            sheet.get(row, "building_name"),
            sheet.cell(row, "building_name"),
            "building",
            p,
        );
        let in_grids = building_grids.entry(building.to_owned()).or_default();
        if !in_grids.iter().any(|g| g == grid) {
            in_grids.push(grid.to_owned());
        }
    }
    for id in &order {
        let (name, cell) = &names[id];
        let id_cell = Cell {
            col: sheet.columns.get("building_id").copied(),
            ..*cell
        };
        out.table("[[buildings]]", Some(id_cell));
        out.value("id", id, id_cell);
        out.value("name", if name.is_empty() { id } else { name }, *cell);
    }
    for (id, (name, cell)) in &grids {
        let id_cell = Cell {
            col: sheet.columns.get("grid_id").copied(),
            ..*cell
        };
        out.table("[[grids]]", Some(id_cell));
        out.value("id", id, id_cell);
        out.value("name", if name.is_empty() { id } else { name }, *cell);
    }
    building_grids
}

/// Records `id`'s name, the first non-empty one; a different one later is a problem.
fn agree(
    names: &mut BTreeMap<String, (String, Cell)>,
    id: &str,
    name: &str,
    cell: Cell,
    what: &str,
    p: &mut Problems<'_>,
) {
    match names.get_mut(id) {
        None => {
            names.insert(id.to_owned(), (name.to_owned(), cell));
        }
        Some((known, at)) if known.is_empty() => {
            known.push_str(name);
            *at = cell;
        }
        Some((known, at)) if !name.is_empty() && name != known => p.at(
            cell,
            format!(
                "{what} {id:?} is called {known:?} in row {}; one name per {what}",
                at.row + 1
            ),
        ),
        Some(_) => {}
    }
}

fn devices(
    sheet: &Located<'_>,
    catalogue: &Catalogue,
    building_grids: &HashMap<String, Vec<String>>,
    out: &mut Out,
    p: &mut Problems<'_>,
) {
    for row in sheet.data_rows() {
        let building = sheet.get(row, "building_id");
        let Some(in_grids) = building_grids.get(building) else {
            p.at(
                sheet.cell(row, "building_id"),
                format!("building {building:?} is not in the buildings sheet"),
            );
            continue;
        };
        let grid = match (sheet.get(row, "grid_id"), in_grids.as_slice()) {
            ("", [only]) => only.as_str(),
            ("", several) => {
                p.at(
                    sheet.cell(row, "grid_id"),
                    format!(
                        "building {building:?} is in grids {}: say which one this device is in",
                        several.join(", ")
                    ),
                );
                continue;
            }
            (grid, _) => grid,
        };
        let kind = sheet.get(row, "kind");
        let kind = catalogue
            .kinds()
            .into_iter()
            .find(|k| {
                k.name == kind || k.label.zh_cn == kind || k.label.en.eq_ignore_ascii_case(kind)
            })
            .map_or(kind, |k| k.name.as_str());
        let id = sheet.cell(row, "device_id");
        out.table("[[devices]]", Some(id));
        out.value("id", sheet.get(row, "device_id"), id);
        out.value("kind", kind, sheet.cell(row, "kind"));
        out.value("building", building, sheet.cell(row, "building_id"));
        let grid_cell = match sheet.get(row, "grid_id") {
            "" => sheet.cell(row, "building_id"),
            _ => sheet.cell(row, "grid_id"),
        };
        out.value("grid", grid, grid_cell);
        out.value(
            "location",
            sheet.get(row, "location"),
            sheet.cell(row, "location"),
        );
        let tags: Vec<String> = sheet
            .get(row, "tags")
            .split([',', ';', '，', '；', '、', ' '])
            .filter(|t| !t.is_empty())
            .map(|t| toml::Value::String(t.to_owned()).to_string())
            .collect();
        if !tags.is_empty() {
            out.line(
                &format!("tags = [{}]", tags.join(", ")),
                Some(sheet.cell(row, "tags")),
            );
        }
    }
}

/// The roles of the workers sheet, by key or Chinese name.
fn role(text: &str) -> Option<&'static str> {
    Some(match text {
        "on_duty" | "值班" | "值班员" => "on_duty",
        "backup" | "备班" | "备岗" => "backup",
        "leader" | "网格长" => "leader",
        "duty_officer" | "总值班" | "值班领导" => "duty_officer",
        _ => return None,
    })
}

/// The workers sheet. With `officer_only` it writes nothing and returns the duty officer (who
/// goes into `[community]`); otherwise it writes workers, duty and shifts.
fn workers(
    sheet: &Located<'_>,
    out: &mut Out,
    p: &mut Problems<'_>,
    officer_only: bool,
) -> Option<(String, Cell)> {
    let mut problems = Problems {
        tables: p.tables,
        list: Vec::new(),
    };
    let mut order: Vec<String> = Vec::new();
    let mut contacts: HashMap<String, BTreeMap<&'static str, (String, Cell)>> = HashMap::new();
    let mut first_row: HashMap<String, Cell> = HashMap::new();
    let mut duty: BTreeMap<String, BTreeMap<&'static str, (String, Cell)>> = BTreeMap::new();
    let mut officer: Option<(String, Cell)> = None;
    let mut shifts = Vec::new();
    for row in sheet.data_rows() {
        let id = sheet.get(row, "worker_id").to_owned();
        let mine = contacts.entry(id.clone()).or_insert_with(|| {
            order.push(id.clone());
            first_row.insert(id.clone(), sheet.cell(row, "worker_id"));
            BTreeMap::new()
        });
        for key in CONTACTS {
            let value = sheet.get(row, key);
            if value.is_empty() {
                continue;
            }
            match mine.get(key) {
                None => {
                    mine.insert(key, (value.to_owned(), sheet.cell(row, key)));
                }
                Some((known, at)) if known != value => problems.at(
                    sheet.cell(row, key),
                    format!(
                        "worker {id:?} has {key} {known:?} in row {}; leave it empty here or make them agree",
                        at.row + 1
                    ),
                ),
                Some(_) => {}
            }
        }
        let role_text = sheet.get(row, "role");
        let (from, to) = (sheet.get(row, "from"), sheet.get(row, "to"));
        let timed = !from.is_empty() || !to.is_empty() || !sheet.get(row, "days").is_empty();
        if role_text.is_empty() && !timed {
            continue;
        }
        let Some(role) = role(if role_text.is_empty() {
            "on_duty"
        } else {
            role_text
        }) else {
            problems.at(
                sheet.cell(row, "role"),
                format!("role {role_text:?} is not one of 值班 on_duty, 备班 backup, 网格长 leader, 总值班 duty_officer"),
            );
            continue;
        };
        let grid = sheet.get(row, "grid_id");
        if role == "duty_officer" && !grid.is_empty() {
            problems.at(
                sheet.cell(row, "grid_id"),
                "the duty officer covers the whole community: leave the grid empty".into(),
            );
            continue;
        }
        if role != "duty_officer" && grid.is_empty() {
            problems.at(
                sheet.cell(row, "grid_id"),
                format!("a {role} role needs the grid it covers"),
            );
            continue;
        }
        if timed {
            shifts.push((row, id, role));
        } else if role == "duty_officer" {
            if let Some((other, at)) = &officer {
                problems.at(
                    sheet.cell(row, "role"),
                    format!(
                        "{other:?} is already the duty officer (row {}); keep one, or give them shifts",
                        at.row + 1
                    ),
                );
            } else {
                officer = Some((id, sheet.cell(row, "worker_id")));
            }
        } else {
            let roles = duty.entry(grid.to_owned()).or_default();
            if let Some((other, at)) = roles.get(role) {
                problems.at(
                    sheet.cell(row, "role"),
                    format!(
                        "grid {grid:?} already has {other:?} as {role} (row {}); keep one, or give them shifts",
                        at.row + 1
                    ),
                );
            } else {
                roles.insert(role, (id, sheet.cell(row, "worker_id")));
            }
        }
    }
    if officer_only {
        return officer;
    }
    p.list.extend(problems.list);
    for id in &order {
        let mine = &contacts[id];
        let first = first_row[id];
        if !REACH.iter().any(|k| mine.contains_key(k)) {
            p.at(
                first,
                format!("worker {id:?} has no way to be reached: fill in 企业微信机器人 wecom, 钉钉机器人 dingtalk, 飞书机器人 feishu, 邮箱 email or webhook"),
            );
        }
        out.table("[[workers]]", Some(first));
        out.value("id", id, first);
        let name = mine.get("name").map_or(id.as_str(), |(n, _)| n.as_str());
        out.value("name", name, mine.get("name").map_or(first, |(_, c)| *c));
        for key in CONTACTS.iter().filter(|&&k| k != "name") {
            if let Some((value, cell)) = mine.get(key) {
                out.value(key, value, *cell);
            }
        }
    }
    for (grid, roles) in &duty {
        let (_, first) = roles.values().next().expect("a grid in `duty` has a role");
        let grid_cell = Cell {
            col: sheet.columns.get("grid_id").copied(),
            ..*first
        };
        out.table("[[duty]]", Some(grid_cell));
        out.value("grid", grid, grid_cell);
        for (role, key) in [
            ("on_duty", "worker"),
            ("backup", "backup"),
            ("leader", "leader"),
        ] {
            if let Some((id, cell)) = roles.get(role) {
                out.value(key, id, *cell);
            }
        }
    }
    for (row, id, role) in shifts {
        out.table("[[shifts]]", Some(sheet.cell(row, "worker_id")));
        let grid = sheet.get(row, "grid_id");
        if !grid.is_empty() {
            out.value("grid", grid, sheet.cell(row, "grid_id"));
        }
        out.value("worker", &id, sheet.cell(row, "worker_id"));
        out.value("role", role, sheet.cell(row, "role"));
        for key in ["days", "from", "to"] {
            let value = sheet.get(row, key);
            if !value.is_empty() || key != "days" {
                out.value(key, value, sheet.cell(row, key));
            }
        }
    }
    None
}

/// The registry file's text as the four sheets' tables, in the template's columns.
pub fn export(text: &str) -> Result<Vec<Table>, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let list = |key: &str| -> Vec<toml::Table> {
        doc.get(key)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|t| t.as_table().cloned()).collect())
            .unwrap_or_default()
    };
    let get = |t: &toml::Table, key: &str| -> String {
        match t.get(key) {
            Some(toml::Value::String(s)) => s.clone(),
            Some(toml::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    };
    let row = |sheet: Sheet, values: &dyn Fn(&str) -> String| -> Vec<String> {
        sheet.columns().iter().map(|c| values(c.key)).collect()
    };
    let mut tables: Vec<Table> = Sheet::ALL.iter().map(|&s| header_only(s)).collect();
    let community = doc
        .get("community")
        .and_then(|c| c.as_table())
        .cloned()
        .unwrap_or_default();
    tables[0]
        .rows
        .push(row(Sheet::Community, &|k| get(&community, k)));
    let buildings = list("buildings");
    let grids = list("grids");
    let devices = list("devices");
    let grid_name = |id: &str| {
        grids
            .iter()
            .find(|g| get(g, "id") == id)
            .map(|g| get(g, "name"))
            .unwrap_or_default()
    };
    let mut named_grids = std::collections::HashSet::new();
    for b in &buildings {
        let id = get(b, "id");
        let mut in_grids: Vec<String> = devices
            .iter()
            .filter(|d| get(d, "building") == id)
            .map(|d| get(d, "grid"))
            .collect();
        in_grids.sort();
        in_grids.dedup();
        if in_grids.is_empty() {
            in_grids.push(grids.first().map(|g| get(g, "id")).unwrap_or_default());
        }
        for grid in in_grids {
            let first = named_grids.insert(grid.clone());
            tables[1].rows.push(row(Sheet::Buildings, &|k| match k {
                "building_id" => id.clone(),
                "building_name" => get(b, "name"),
                "grid_id" => grid.clone(),
                "grid_name" if first => grid_name(&grid),
                _ => String::new(),
            }));
        }
    }
    for g in &grids {
        let id = get(g, "id");
        if named_grids.insert(id.clone()) {
            tables[1].rows.push(row(Sheet::Buildings, &|k| match k {
                "grid_id" => id.clone(),
                "grid_name" => get(g, "name"),
                _ => String::new(),
            }));
        }
    }
    let single_grid = |building: &str| {
        let mut grids: Vec<String> = devices
            .iter()
            .filter(|d| get(d, "building") == building)
            .map(|d| get(d, "grid"))
            .collect();
        grids.sort();
        grids.dedup();
        grids.len() == 1
    };
    for d in &devices {
        let building = get(d, "building");
        let implied = single_grid(&building);
        tables[2].rows.push(row(Sheet::Devices, &|k| match k {
            "device_id" => get(d, "id"),
            "building_id" => building.clone(),
            "grid_id" if implied => String::new(),
            "grid_id" => get(d, "grid"),
            other => get(d, other),
        }));
    }
    let workers = list("workers");
    let duty = list("duty");
    let shifts = list("shifts");
    let officer = get(&community, "duty_officer");
    for w in &workers {
        let id = get(w, "id");
        let mut roles: Vec<(String, String, Option<&toml::Table>)> = Vec::new();
        for d in &duty {
            for (key, role) in [("worker", "值班"), ("backup", "备班"), ("leader", "网格长")]
            {
                if get(d, key) == id {
                    roles.push((role.into(), get(d, "grid"), None));
                }
            }
        }
        if officer == id {
            roles.push(("总值班".into(), String::new(), None));
        }
        for s in shifts.iter().filter(|s| get(s, "worker") == id) {
            let role = match get(s, "role").as_str() {
                "backup" => "备班",
                "leader" => "网格长",
                "duty_officer" => "总值班",
                _ => "值班",
            };
            roles.push((role.into(), get(s, "grid"), Some(s)));
        }
        if roles.is_empty() {
            roles.push((String::new(), String::new(), None));
        }
        for (i, (role, grid, shift)) in roles.iter().enumerate() {
            tables[3].rows.push(row(Sheet::Workers, &|k| match k {
                "worker_id" => id.clone(),
                "role" => role.clone(),
                "grid_id" => grid.clone(),
                "days" | "from" | "to" => shift.map(|s| get(s, k)).unwrap_or_default(),
                contact if i == 0 => get(w, contact),
                _ => String::new(),
            }));
        }
    }
    Ok(tables)
}

/// A sheet's table with only its header row.
fn header_only(sheet: Sheet) -> Table {
    Table {
        sheet,
        source: sheet.title(),
        rows: vec![sheet
            .columns()
            .iter()
            .map(|c| format!("{} {}", c.zh, c.key))
            .collect()],
    }
}

/// The template: the four sheets with their headers only, and the instructions as rows of
/// (sheet, column, required, what to write, example).
pub fn template() -> (Vec<Table>, Vec<Vec<String>>) {
    let mut readme = vec![vec![
        "表 sheet".into(),
        "列 column".into(),
        "必填 required".into(),
        "说明 what to write".into(),
        "示例 example".into(),
    ]];
    for sheet in Sheet::ALL {
        for c in sheet.columns() {
            readme.push(vec![
                sheet.title(),
                format!("{} {}", c.zh, c.key),
                if c.required { "是 yes" } else { "" }.into(),
                c.help.into(),
                c.example.into(),
            ]);
        }
    }
    (Sheet::ALL.iter().map(|&s| header_only(s)).collect(), readme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(sheet: Sheet, csv: &str) -> Table {
        Table {
            sheet,
            source: format!("{}.csv", sheet.key()),
            rows: csv
                .lines()
                .map(|l| l.split(',').map(|c| c.trim().to_owned()).collect())
                .collect(),
        }
    }

    /// A small community: two buildings in one grid, a worker on duty by day and one by night.
    fn community() -> Vec<Table> {
        vec![
            table(Sheet::Community, "社区编号,社区名称\nyg,阳光社区"),
            table(
                Sheet::Buildings,
                "楼栋编号,楼栋名称,网格编号,网格名称\nb1,1号楼,g1,第一网格\nb2,2号楼,g1,",
            ),
            table(
                Sheet::Devices,
                "设备编号,类型,楼栋编号,网格编号,位置,标签\n\
                 elev-b1-1,电梯,b1,,1单元客梯,\n\
                 sos-b2-301,sos,b2,g1,301室,living_alone",
            ),
            table(
                Sheet::Workers,
                "工号,姓名,职责,网格编号,开始,结束,企业微信机器人,邮箱\n\
                 w-wang,王芳,值班,g1,,,https://qyapi.weixin.qq.com/x,\n\
                 w-li,李军,值班,g1,20:00,08:00,,li@example.cn\n\
                 w-li,,备班,g1,,,,\n\
                 w-zhang,张主任,总值班,,,,,zhang@example.cn",
            ),
        ]
    }

    fn problems(tables: &[Table]) -> Vec<String> {
        import(tables, Arc::new(Catalogue::builtin()))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_community_imports_with_kinds_by_label_grids_by_building_and_shifts() {
        let imported = import(&community(), Arc::new(Catalogue::builtin())).unwrap();
        let r = &imported.registry;
        let elevator = r.device("elev-b1-1").unwrap();
        assert_eq!(
            (&*elevator.kind, &*elevator.grid, &*elevator.grid_name),
            ("elevator", "g1", "第一网格")
        );
        assert_eq!(
            &*r.device("sos-b2-301").unwrap().tags,
            [Arc::from("living_alone")]
        );
        let staff = r.staff();
        assert_eq!(staff.shifts(), 1);
        assert_eq!(staff.worker("w-li").unwrap().reach.len(), 1);
        let chain = staff.chain(
            "g1",
            &[
                gridwatch_edge_rules::Level::Backup,
                gridwatch_edge_rules::Level::DutyOfficer,
            ],
            0,
        );
        let ids: Vec<_> = chain
            .iter()
            .map(|w| w.as_ref().map(|w| w.id.as_str()))
            .collect();
        assert_eq!(ids, [Some("w-li"), Some("w-zhang")]);
    }

    #[test]
    fn export_then_import_gives_the_same_registry_file() {
        let first = import(&community(), Arc::new(Catalogue::builtin())).unwrap();
        let tables = export(&first.text).unwrap();
        let second = import(&tables, Arc::new(Catalogue::builtin())).unwrap();
        assert_eq!(first.text, second.text);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_sheet_row_and_column() {
        let mut tables = community();
        tables[2].rows.extend(
            [
                "elev-b1-1,电梯,b1,,重复,",
                "mh 9,manhole,b1,,坏编号,",
                "x-1,lift,b1,,未知类型,",
                "x-2,manhole,b9,,未知楼,",
            ]
            .map(|l| l.split(',').map(str::to_owned).collect()),
        );
        tables[3].rows.push(
            "w-nobody,无名,,,,,,"
                .split(',')
                .map(str::to_owned)
                .collect(),
        );
        assert_eq!(
            problems(&tables),
            [
                "devices.csv row 4 column A (设备编号): device id \"elev-b1-1\" is listed twice",
                "devices.csv row 5 column A (设备编号): device id \"mh 9\" must match [A-Za-z0-9_-]{1,64}",
                "devices.csv row 6 column B (类型): kind \"lift\" is not in the kind catalogue (electrical, elevator, fire_passage, manhole, parking, perimeter, sos)",
                "devices.csv row 7 column C (楼栋编号): building \"b9\" is not in the buildings sheet",
                "workers.csv row 6 column A (工号): worker \"w-nobody\" has no way to be reached: fill in 企业微信机器人 wecom, 钉钉机器人 dingtalk, 飞书机器人 feishu, 邮箱 email or webhook",
            ]
        );
    }

    #[test]
    fn roles_and_shifts_are_checked_against_grids_and_each_other() {
        let mut tables = community();
        tables[3].rows.extend(
            [
                "w-wang,,值班,g1,,,,",
                "w-wang,,巡逻,g1,,,,",
                "w-wang,,值班,,,,,",
                "w-wang,,值班,g7,08:00,25:00,,",
            ]
            .map(|l| l.split(',').map(str::to_owned).collect()),
        );
        let got = problems(&tables);
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(got[0].starts_with("workers.csv row 6 column C (职责): grid \"g1\" already has \"w-wang\" as on_duty (row 2)"), "{got:#?}");
        assert!(
            got[1].starts_with("workers.csv row 7 column C (职责): role \"巡逻\" is not one of"),
            "{got:#?}"
        );
        assert!(
            got[2].starts_with(
                "workers.csv row 8 column D (网格编号): a on_duty role needs the grid"
            ),
            "{got:#?}"
        );
        assert!(
            got[3].starts_with("workers.csv row 9 column D (网格编号): "),
            "{got:#?}"
        );
        assert!(
            got[4].starts_with("workers.csv row 9 column F (结束): "),
            "{got:#?}"
        );
    }

    #[test]
    fn contact_cells_of_a_worker_must_agree_across_rows() {
        let mut tables = community();
        tables[3].rows[3][1] = "李君".into();
        assert_eq!(
            problems(&tables),
            ["workers.csv row 4 column B (姓名): worker \"w-li\" has name \"李军\" in row 3; leave it empty here or make them agree"]
        );
    }

    #[test]
    fn missing_sheets_columns_and_cells_and_unknown_columns_are_named() {
        let mut tables = community();
        tables.remove(0);
        tables[0].rows[0][3] = "片区".into();
        tables[0].rows[0].push("备注".into());
        tables[1].rows[1][4] = String::new();
        let got = problems(&tables);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].starts_with("community: the community sheet is missing"));
        assert!(
            got[1].starts_with("buildings.csv row 1 column D (片区): unknown column \"片区\""),
            "{got:#?}"
        );
        assert!(got[2]
            .starts_with("devices.csv row 2 column E (位置): 位置 (location) must be filled in"));
    }

    #[test]
    fn headers_are_found_by_key_or_chinese_name_in_any_order() {
        let mut tables = community();
        tables[0] = table(Sheet::Community, "name,社区编号 (id)\n阳光社区,yg");
        assert!(import(&tables, Arc::new(Catalogue::builtin())).is_ok());
    }

    #[test]
    fn the_template_has_every_column_and_imports_as_missing_rows_only() {
        let (tables, readme) = template();
        assert_eq!(
            readme.len(),
            1 + Sheet::ALL.iter().map(|s| s.columns().len()).sum::<usize>()
        );
        let got = problems(&tables);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].contains("the community sheet needs one row"));
    }

    #[test]
    fn column_letters_go_past_z() {
        assert_eq!(
            [0, 25, 26, 27, 701, 702].map(column_letter),
            ["A", "Z", "AA", "AB", "ZZ", "AAA"]
        );
    }

    #[test]
    fn sheet_names_are_found_in_either_language() {
        assert_eq!(Sheet::named("设备 devices"), Some(Sheet::Devices));
        assert_eq!(Sheet::named("人员与排班"), Some(Sheet::Workers));
        assert_eq!(Sheet::named("Buildings"), Some(Sheet::Buildings));
        assert_eq!(Sheet::named("说明 readme"), None);
    }
}
