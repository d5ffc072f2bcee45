//! The config file's keys as the code documents them: the one source of `gridwatch config
//! print-default`, of the README's configuration reference and of the checks that reject an
//! unknown key with the nearest valid name.
//!
//! The source is the doc comment on each field of the config structs, read through their
//! `schemars::JsonSchema` derive, and each field's value in `Config::default()`. A key is written
//! as its dotted path (`store.influx.url`); a key inside an array of tables carries `[]`
//! (`serial[].port`). A key that is not set by default (an `Option`) has no default; the
//! `#[schemars(example = ...)]` on its field is what the default config shows, commented out.
//! A table that is absent by default (an optional table, an array of tables) is printed
//! commented out, with its keys.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use toml::de::{DeTable, DeValue};

use crate::config::{line_at, Config, ConfigProblem};

/// One key that holds a value.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// The dotted path, e.g. `store.influx.url`.
    pub path: String,
    /// The field's doc comment on one line.
    pub doc: String,
    /// The default value; `None` when the key is not set by default.
    pub default: Option<toml::Value>,
    /// A value to show for a key that is not set by default.
    pub example: Option<toml::Value>,
    /// The values an enumeration accepts, e.g. `local` and `influx`; empty for other keys.
    pub allowed: Vec<String>,
}

/// One table of keys: `[mqtt]`, `[store.local]`, `[[serial]]`, or the file itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The dotted path; empty for the file itself.
    pub path: String,
    /// The field's doc comment on one line.
    pub doc: String,
    /// Written `[[path]]`: a list of tables.
    pub array: bool,
    /// Absent unless written (an optional table or a list of tables).
    pub optional: bool,
    /// The keys that hold values, in the order of the struct's fields.
    pub keys: Vec<Key>,
    /// The tables inside this one, in the order of the struct's fields.
    pub tables: Vec<Table>,
}

impl Table {
    /// The last part of the path, as written in the file.
    fn name(&self) -> &str {
        last_part(&self.path)
    }

    /// Every table, this one first, depth first.
    pub fn all(&self) -> Vec<&Table> {
        let mut out = vec![self];
        for t in &self.tables {
            out.extend(t.all());
        }
        out
    }
}

fn last_part(path: &str) -> &str {
    let name = path.rsplit('.').next().unwrap_or(path);
    name.strip_suffix("[]").unwrap_or(name)
}

/// Every key of the config file, from the config structs.
pub fn schema() -> Table {
    let schema = schemars::schema_for!(Config);
    let root = schema.as_value();
    let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
    let mut out = table("", String::new(), root, false, false, &defs);
    let default = toml::to_string(&Config::default()).unwrap_or_default();
    let mut order = HashMap::new();
    if let Ok(doc) = DeTable::parse(&default) {
        positions(doc.get_ref(), "", &mut order);
    }
    sort(&mut out, &order);
    out
}

/// Where each key is in the serialized default config, which follows the structs' field order
/// (the schema's property maps are sorted by name).
fn positions(doc: &DeTable<'_>, prefix: &str, out: &mut HashMap<String, usize>) {
    for (k, v) in doc.iter() {
        let path = join(prefix, k.get_ref());
        out.insert(path.clone(), k.span().start);
        if let DeValue::Table(t) = v.get_ref() {
            positions(t, &path, out);
        }
    }
}

/// Puts keys and tables in the structs' field order; those the default config leaves out
/// (not set) come last, by name.
fn sort(table: &mut Table, order: &HashMap<String, usize>) {
    let at = |path: &str| order.get(path).copied().unwrap_or(usize::MAX);
    table.keys.sort_by_key(|k| at(&k.path));
    table.tables.sort_by_key(|t| at(&t.path));
    for t in &mut table.tables {
        sort(t, order);
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Follows a `$ref` into the definitions.
fn resolve<'a>(schema: &'a Value, defs: &'a Value) -> &'a Value {
    match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| defs.get(name))
    {
        Some(def) => resolve(def, defs),
        None => schema,
    }
}

/// The schema of a field without the `null` an `Option` adds, and whether it had one.
fn without_null<'a>(schema: &'a Value, defs: &'a Value) -> (&'a Value, bool) {
    let null = Value::from("null");
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let others: Vec<&Value> = any
            .iter()
            .filter(|s| s.get("type") != Some(&null))
            .collect();
        if let [only] = others[..] {
            return (resolve(only, defs), others.len() < any.len());
        }
    }
    let nullable = schema
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|types| types.contains(&null));
    (resolve(schema, defs), nullable)
}

fn is_table(schema: &Value) -> bool {
    schema.get("properties").is_some()
}

/// A doc comment as one line: schemars splits a title from the description.
fn doc_of(schema: &Value) -> String {
    let part = |k: &str| {
        schema
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    format!("{} {}", part("title"), part("description"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn to_toml(value: &Value) -> Option<toml::Value> {
    if value.is_null() {
        return None;
    }
    toml::Value::try_from(value).ok()
}

fn table(
    path: &str,
    doc: String,
    schema: &Value,
    array: bool,
    optional: bool,
    defs: &Value,
) -> Table {
    let mut out = Table {
        path: path.to_owned(),
        doc,
        array,
        optional,
        keys: Vec::new(),
        tables: Vec::new(),
    };
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return out;
    };
    for (name, field) in props {
        let child = join(path, name);
        let doc = doc_of(field);
        let (inner, nullable) = without_null(field, defs);
        let items = inner.get("items").map(|i| resolve(i, defs));
        if is_table(inner) {
            out.tables
                .push(table(&child, doc, inner, false, nullable || optional, defs));
        } else if let Some(items) = items.filter(|i| is_table(i)) {
            out.tables
                .push(table(&format!("{child}[]"), doc, items, true, true, defs));
        } else {
            out.keys.push(Key {
                path: child,
                doc,
                default: field.get("default").and_then(to_toml),
                example: field
                    .get("examples")
                    .and_then(|e| e.get(0))
                    .and_then(to_toml),
                allowed: allowed_values(inner),
            });
        }
    }
    out
}

/// The values of an enumeration: `enum`, or `oneOf` of `const`s (when the variants have docs).
fn allowed_values(schema: &Value) -> Vec<String> {
    let from_enum = schema.get("enum").and_then(Value::as_array).cloned();
    let from_one_of = schema.get("oneOf").and_then(Value::as_array).map(|alts| {
        alts.iter()
            .flat_map(|a| {
                a.get("const").cloned().into_iter().chain(
                    a.get("enum")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .cloned(),
                )
            })
            .collect::<Vec<_>>()
    });
    from_enum
        .or(from_one_of)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Greedy word wrap of `text` into lines that start with `prefix`, at most `width` wide.
fn wrapped(text: &str, prefix: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from(prefix);
    for word in text.split_whitespace() {
        if line.len() > prefix.len() && line.len() + 1 + word.len() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from(prefix);
        }
        if line.len() > prefix.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if line.len() > prefix.len() {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The default config file: every table and key with its doc comment above it as a `#` comment,
/// and its default value. Keys and tables not set by default are there too, commented out.
/// Parsed back, it is `Config::default()`.
pub fn default_toml() -> String {
    let mut out = String::from(
        "# Gridwatch gateway config (`gridwatch config print-default`): every key, its meaning and\n\
         # its default. Every key is optional; delete what you do not change. Secrets are never\n\
         # read from this file: they come from the environment (see the README).\n",
    );
    for t in schema().all().into_iter().skip(1) {
        let off = if t.optional { "# " } else { "" };
        out.push('\n');
        out.push_str(&wrapped(&t.doc, "# ", 100));
        let header = t.path.trim_end_matches("[]");
        if t.array {
            out.push_str(&format!("{off}[[{header}]]\n"));
        } else {
            out.push_str(&format!("{off}[{header}]\n"));
        }
        for k in &t.keys {
            out.push_str(&wrapped(&key_doc(k), "# ", 100));
            let name = last_part(&k.path);
            match (&k.default, &k.example) {
                (Some(v), _) => out.push_str(&format!("{off}{name} = {v}\n")),
                (None, Some(v)) => out.push_str(&format!("# {name} = {v}\n")),
                (None, None) => out.push_str(&format!("# {name} =\n")),
            }
        }
    }
    out
}

fn key_doc(k: &Key) -> String {
    if k.allowed.is_empty() {
        k.doc.clone()
    } else {
        let values: Vec<String> = k.allowed.iter().map(|v| format!("`{v}`")).collect();
        format!("{} One of: {}.", k.doc, values.join(", "))
    }
}

/// The README's "Configuration reference": a Markdown table of every key (path, default,
/// meaning), tables included.
pub fn reference_markdown() -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::from("| key | default | meaning |\n|---|---|---|\n");
    for t in schema().all().into_iter().skip(1) {
        let header = t.path.trim_end_matches("[]");
        let (shown, default) = if t.array {
            (format!("[[{header}]]"), "none")
        } else if t.optional {
            (format!("[{header}]"), "not set")
        } else {
            (format!("[{header}]"), "")
        };
        out.push_str(&format!(
            "| **`{shown}`** | {default} | {} |\n",
            cell(&t.doc)
        ));
        for k in &t.keys {
            let default = match &k.default {
                Some(v) => format!("`{}`", cell(&v.to_string())),
                None => "not set".to_owned(),
            };
            out.push_str(&format!(
                "| `{}` | {default} | {} |\n",
                k.path,
                cell(&key_doc(k))
            ));
        }
    }
    out
}

/// Checks the shape of a parsed file against the keys: every unknown key (with the nearest
/// valid name) and every value of the wrong type, each with its dotted key and line, in the
/// file's order. Returns the config when the shape is right, and the problems.
pub(crate) fn shape(
    mut doc: toml::Spanned<DeTable<'_>>,
    text: &str,
) -> (Option<Config>, Vec<ConfigProblem>) {
    let mut problems = Vec::new();
    strip_unknown(doc.get_mut(), &schema(), "", text, &mut problems);
    // Each round reports one wrong value and removes it, so the next round finds the next one.
    loop {
        let span = doc.span();
        let de = toml::de::Deserializer::from(toml::Spanned::new(span, doc.get_ref().clone()));
        let err = match Config::deserialize(de) {
            Ok(config) => {
                problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
                return (Some(config), problems);
            }
            Err(err) => err,
        };
        let at = err.span().map(|s| s.start);
        let path = at.and_then(|at| path_at(doc.get_ref(), at));
        problems.push(ConfigProblem {
            key: path.as_ref().map(|p| p.join(".")).unwrap_or_default(),
            line: at.map(|at| line_at(text, at)),
            message: err.message().to_owned(),
        });
        if !path.is_some_and(|p| remove(doc.get_mut(), &p)) {
            problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            return (None, problems);
        }
    }
}

/// Removes every key `table` does not know from `doc`, with a problem for each.
fn strip_unknown(
    doc: &mut DeTable<'_>,
    table: &Table,
    prefix: &str,
    text: &str,
    problems: &mut Vec<ConfigProblem>,
) {
    let known: Vec<&str> = table
        .keys
        .iter()
        .map(|k| last_part(&k.path))
        .chain(table.tables.iter().map(Table::name))
        .collect();
    let dotted = |name: &str| join(prefix, name);
    let unknown: Vec<(String, usize)> = doc
        .iter()
        .filter(|(k, _)| !known.contains(&k.get_ref().as_ref()))
        .map(|(k, _)| (k.get_ref().to_string(), line_at(text, k.span().start)))
        .collect();
    for (name, line) in unknown {
        problems.push(ConfigProblem {
            key: dotted(&name),
            line: Some(line),
            message: unknown_message(&name, &known),
        });
        doc.remove(name.as_str());
    }
    for sub in &table.tables {
        let Some(value) = doc.get_mut(sub.name()) else {
            continue;
        };
        match value.get_mut() {
            DeValue::Table(t) => strip_unknown(t, sub, &dotted(sub.name()), text, problems),
            DeValue::Array(items) if sub.array => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let DeValue::Table(t) = item.get_mut() {
                        let at = format!("{}[{i}]", dotted(sub.name()));
                        strip_unknown(t, sub, &at, text, problems);
                    }
                }
            }
            _ => {}
        }
    }
}

/// "unknown key; did you mean `host`?" when a valid name is close (a few edits away, or one
/// name of three letters or more the start of the other), else the valid names.
fn unknown_message(name: &str, known: &[&str]) -> String {
    let nearest = known
        .iter()
        .map(|k| {
            let prefix =
                name.len().min(k.len()) >= 3 && (k.starts_with(name) || name.starts_with(k));
            (!prefix, strsim::damerau_levenshtein(name, k), *k)
        })
        .min();
    match nearest {
        Some((far, distance, k)) if !far || distance <= (name.len() / 3).max(2) => {
            format!("unknown key; did you mean `{k}`?")
        }
        _ => format!(
            "unknown key; the keys here are {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The path of the deepest key whose name or value holds byte `at`; tables are searched inside
/// because a `[table]` header's span does not cover its keys.
fn path_at(doc: &DeTable<'_>, at: usize) -> Option<Vec<String>> {
    for (k, v) in doc.iter() {
        if let DeValue::Table(t) = v.get_ref() {
            if let Some(mut inner) = path_at(t, at) {
                inner.insert(0, k.get_ref().to_string());
                return Some(inner);
            }
        }
        if k.span().contains(&at) || v.span().contains(&at) {
            return Some(vec![k.get_ref().to_string()]);
        }
    }
    None
}

/// Removes the key at `path`; false if it is not there.
fn remove(doc: &mut DeTable<'_>, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => doc.remove(last.as_str()).is_some(),
        [first, rest @ ..] => match doc.get_mut(first.as_str()).map(|v| v.get_mut()) {
            Some(DeValue::Table(t)) => remove(t, rest),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn leaves(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = value {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, v, out);
            }
        } else if value
            .as_array()
            .is_some_and(|a| a.is_empty() || a.iter().all(toml::Value::is_table))
        {
            // An array of tables (`[[serial]]`): its keys are documented as `serial[].…`,
            // which the schema's own tests check.
        } else {
            out.push(prefix.to_owned());
        }
    }

    fn all_keys() -> Vec<Key> {
        schema()
            .all()
            .into_iter()
            .flat_map(|t| t.keys.clone())
            .collect()
    }

    #[test]
    fn every_key_of_the_default_config_is_documented_with_its_default() {
        let default = toml::Value::try_from(Config::default()).unwrap();
        let mut paths = Vec::new();
        leaves("", &default, &mut paths);
        let keys = all_keys();
        for path in &paths {
            let key = keys.iter().find(|k| &k.path == path);
            let key = key.unwrap_or_else(|| panic!("{path} is not in the schema"));
            assert!(key.default.is_some(), "{path} has no default in the schema");
        }
        assert!(paths.len() >= 40, "only {} keys", paths.len());
    }

    #[test]
    fn every_key_and_table_has_a_doc_comment() {
        for t in schema().all().into_iter().skip(1) {
            assert!(!t.doc.is_empty(), "table {} has no doc comment", t.path);
            for k in &t.keys {
                assert!(!k.doc.is_empty(), "{} has no doc comment", k.path);
            }
        }
    }

    #[test]
    fn no_key_holds_a_secret_which_come_from_the_environment_only() {
        for k in all_keys() {
            let name = last_part(&k.path);
            // A path or file names where a secret is kept (readable by the gateway only), not one.
            if name.ends_with("_path") || name.ends_with("_file") {
                continue;
            }
            for word in ["password", "token", "secret", "key"] {
                assert!(
                    !name.contains(word),
                    "{}: secrets belong in Secrets",
                    k.path
                );
            }
        }
    }

    #[test]
    fn every_key_not_set_by_default_has_an_example() {
        for k in all_keys().iter().filter(|k| k.default.is_none()) {
            assert!(
                k.example.is_some(),
                "{} needs #[schemars(example = ...)]",
                k.path
            );
        }
    }

    #[test]
    fn the_schema_knows_optional_tables_and_enumerations() {
        let s = schema();
        let smtp = s
            .all()
            .into_iter()
            .find(|t| t.path == "notify.smtp")
            .unwrap();
        assert!(smtp.optional && !smtp.array);
        let backend = all_keys()
            .into_iter()
            .find(|k| k.path == "store.backend")
            .unwrap();
        assert_eq!(backend.allowed, vec!["local", "influx"]);
        assert_eq!(backend.default, Some(toml::Value::from("local")));
        assert!(backend.doc.starts_with("Where readings go: `local` files"));
    }

    #[test]
    fn the_default_config_file_parses_back_to_the_defaults() {
        let text = default_toml();
        let parsed = Config::parse(&text, Path::new("default.toml")).unwrap();
        assert_eq!(format!("{parsed:#?}"), format!("{:#?}", Config::default()));
    }

    #[test]
    fn the_default_config_file_shows_each_doc_above_its_key() {
        let text = default_toml();
        assert!(
            text.contains("# Broker host name or address.\nhost = \"127.0.0.1\"\n"),
            "{text}"
        );
        assert!(
            text.contains("from `GRIDWATCH_MQTT_PASSWORD`.\n# username = \"gateway\"\n"),
            "{text}"
        );
        assert!(text.contains("\n# [notify.smtp]\n"), "{text}");
        assert!(text.contains("\n# port = 587\n"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    }

    fn is_assignment(line: &str) -> bool {
        line.split_once(" = ").is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
    }

    #[test]
    fn uncommenting_the_optional_keys_of_the_default_config_still_parses() {
        let text = default_toml()
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.starts_with('[') || is_assignment(rest) => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&text, Path::new("x.toml")).unwrap();
        assert_eq!(c.mqtt.username.as_deref(), Some("gateway"));
        assert_eq!(c.notify.smtp.unwrap().port, 587);
    }

    #[test]
    fn the_reference_has_one_row_per_key_and_table() {
        let md = reference_markdown();
        assert!(
            md.contains("| `mqtt.port` | `1883` | Broker port. |\n"),
            "{md}"
        );
        assert!(
            md.contains("| `mqtt.username` | not set | User name"),
            "{md}"
        );
        assert!(md.contains("| **`[notify.smtp]`** | not set |"), "{md}");
        let tables = schema().all().len() - 1;
        assert_eq!(md.lines().count(), 2 + tables + all_keys().len());
    }

    fn problems(text: &str) -> Vec<String> {
        let (doc, syntax) = DeTable::parse_recoverable(text);
        assert!(syntax.is_empty());
        shape(doc, text).1.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn an_unknown_key_names_the_nearest_valid_one_with_its_line() {
        assert_eq!(
            problems("[mqtt]\nport = 1\n\nhots = \"a\"\n"),
            vec!["line 4: mqtt.hots: unknown key; did you mean `host`?"]
        );
    }

    #[test]
    fn a_one_letter_key_is_not_taken_for_the_start_of_a_name() {
        assert_eq!(
            problems("a = 1\n")[0],
            "line 1: a: unknown key; the keys here are `mqtt`, `ingest`, `journal`, `store`, \
             `notify`, `alerts`, `http`, `registry`, `catalogue`, `rules`, `serial`"
        );
    }

    #[test]
    fn an_unknown_key_far_from_every_name_lists_the_valid_ones() {
        assert_eq!(
            problems("[store.local]\nwhatever = 1\n"),
            vec![
                "line 2: store.local.whatever: unknown key; the keys here are `path`, \
                 `rotate_bytes`, `max_bytes`"
            ]
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_all_reported_at_once() {
        let text = "[mqq]\nhost = 1\n[mqtt]\nport = \"x\"\nkeep_alive = 3\n[http]\nlisten = 5\n[notify.smtp]\nprot = 1\n";
        assert_eq!(
            problems(text),
            vec![
                "line 1: mqq: unknown key; did you mean `mqtt`?",
                "line 4: mqtt.port: invalid type: string \"x\", expected u16",
                "line 5: mqtt.keep_alive: unknown key; did you mean `keep_alive_secs`?",
                "line 7: http.listen: invalid type: integer `5`, expected socket address",
                "line 9: notify.smtp.prot: unknown key; did you mean `port`?",
            ]
        );
    }
}
