//! The Grafana dashboards in `dashboards/grafana/`: well-formed, wired to the data sources the
//! provisioning file defines, and naming only metrics and labels that really exist: the gateway's
//! own (read from `gateway/src/metrics/mod.rs`, cross-checked with what `/metrics` prints) and the
//! time-series layout of the kind catalogue (`gateway/kinds.toml`). The last test writes lines made
//! by the gateway's own decoder and writer to a real VictoriaMetrics and runs every query.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gridwatch_e2e::payload::{self, now_ms};
use gridwatch_e2e::{http, VictoriaMetrics};
use gridwatch_firmware::wire::{Message, Readings, Value as Reading};
use gridwatch_gateway::catalogue::{Catalogue, ReadingType};
use gridwatch_gateway::decode::decode;
use gridwatch_gateway::metrics::Metrics;
use gridwatch_gateway::registry::Registry;
use gridwatch_gateway::sinks::tsdb::write_message;
use serde_json::Value;

/// The store of readings.
const VM_UID: &str = "gridwatch-vm";
/// Where the gateway's own metrics are scraped.
const PROM_UID: &str = "gridwatch-prom";
/// Labels every scraped series has, whatever the gateway registers.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];
/// Tags of every line the gateway writes (`sinks/tsdb`).
const DEVICE_TAGS: [&str; 4] = ["building", "community", "device", "grid"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn grafana() -> PathBuf {
    repo().join("dashboards/grafana")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every dashboard file, by file name.
fn dashboards() -> BTreeMap<String, Value> {
    let dir = grafana().join("dashboards");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let json = serde_json::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
        out.insert(name, json);
    }
    out
}

/// The uids of the provisioned data sources (a minimal reading of the YAML: `uid:` keys).
fn provisioned_uids() -> BTreeSet<String> {
    read(&grafana().join("provisioning/datasources/gridwatch.yaml"))
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.strip_prefix("- ").unwrap_or(l).strip_prefix("uid:"))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What exists

/// Metric names that exist, with their labels.
#[derive(Debug, Default)]
struct Known {
    /// Name and labels of each metric.
    labels: BTreeMap<String, BTreeSet<String>>,
    /// Histograms, which also have `_bucket` (with `le`), `_sum` and `_count` series.
    histograms: BTreeSet<String>,
    /// Labels every series has.
    always: BTreeSet<String>,
    /// For some labels, the values that exist (matchers on them are checked).
    values: BTreeMap<String, BTreeSet<String>>,
}

impl Known {
    /// The labels of the series `name`, if it exists.
    fn series(&self, name: &str) -> Option<BTreeSet<String>> {
        if let Some(l) = self.labels.get(name) {
            return Some(l.clone());
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if self.histograms.contains(base) {
                    let mut l = self.labels[base].clone();
                    if suffix == "_bucket" {
                        l.insert("le".into());
                    }
                    return Some(l);
                }
            }
        }
        None
    }
}

/// The string literals in `text`, with their byte offsets (no escapes in the metric definitions).
fn string_literals(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut base = 0;
    while let Some(start) = rest.find('"') {
        let Some(len) = rest[start + 1..].find('"') else {
            break;
        };
        out.push((base + start, &rest[start + 1..start + 1 + len]));
        let next = start + len + 2;
        base += next;
        rest = &rest[next..];
    }
    out
}

/// The gateway's metrics, read from the source that registers them: every `"gridwatch_…"`
/// literal is a metric name, the `&[…]` after it (before the next name) its labels, and one
/// built with `HistogramOpts::new(` a histogram.
fn gateway_metrics() -> Known {
    let src = read(&repo().join("gateway/src/metrics/mod.rs"));
    let names: Vec<(usize, &str)> = string_literals(&src)
        .into_iter()
        .filter(|(_, s)| s.starts_with("gridwatch_"))
        .collect();
    let mut known = Known {
        always: TARGET_LABELS.iter().map(|l| l.to_string()).collect(),
        ..Known::default()
    };
    let mut previous_end = 0;
    for (i, (at, name)) in names.iter().enumerate() {
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name:?} read from metrics/mod.rs is not a metric name"
        );
        let end = names.get(i + 1).map_or(src.len(), |(next, _)| *next);
        let after = &src[at + name.len() + 2..end];
        let mut labels = BTreeSet::new();
        if let Some(open) = after.find("&[") {
            let close = after[open..].find(']').expect("a label list ends") + open;
            labels.extend(
                string_literals(&after[open..=close])
                    .into_iter()
                    .map(|(_, l)| l.to_owned()),
            );
        }
        if src[previous_end..*at].contains("HistogramOpts::new(") {
            known.histograms.insert(name.to_string());
        }
        previous_end = at + name.len() + 2;
        assert!(
            known.labels.insert(name.to_string(), labels).is_none(),
            "{name} registered twice"
        );
    }
    known
}

/// The time-series layout of the kind catalogue: `{kind}_{reading}` per reading, `event_count`
/// and `event_seq` (with `event` and `kind`), `heartbeat_count`, `status_online`.
fn store_metrics(catalogue: &Catalogue) -> Known {
    let tags: BTreeSet<String> = DEVICE_TAGS.iter().map(|t| t.to_string()).collect();
    let mut event_tags = tags.clone();
    event_tags.extend(["event".to_owned(), "kind".to_owned()]);
    let mut known = Known::default();
    let mut events = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for kind in catalogue.kinds() {
        kinds.insert(kind.name.clone());
        for r in &kind.readings {
            known
                .labels
                .insert(format!("{}_{}", kind.name, r.name), tags.clone());
        }
        events.extend(kind.events.iter().map(|e| e.name.clone()));
    }
    for name in ["event_count", "event_seq"] {
        known.labels.insert(name.into(), event_tags.clone());
    }
    for name in ["heartbeat_count", "status_online"] {
        known.labels.insert(name.into(), tags.clone());
    }
    known.values.insert("event".into(), events);
    known.values.insert("kind".into(), kinds);
    known
}

fn catalogue() -> Catalogue {
    Catalogue::load(&repo().join("gateway/kinds.toml")).expect("gateway/kinds.toml loads")
}

// ---------------------------------------------------------------------------------------------
// Reading PromQL and MetricsQL, as far as names go

/// What a query names.
#[derive(Debug, Default)]
struct Names {
    /// Metric names.
    metrics: Vec<String>,
    /// Labels matched on or grouped by.
    labels: Vec<String>,
    /// Matchers: label, operator, value.
    matchers: Vec<(String, String, String)>,
}

const AGGREGATIONS: [&str; 13] = [
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
];
const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The index after the string literal that starts at `i`.
fn skip_string(c: &[char], i: usize) -> Result<usize, String> {
    let quote = c[i];
    let mut j = i + 1;
    while j < c.len() {
        match c[j] {
            '\\' if quote != '`' => j += 2,
            q if q == quote => return Ok(j + 1),
            _ => j += 1,
        }
    }
    Err("a string is not closed".into())
}

/// The index of the bracket that closes the one at `i`, strings skipped.
fn closing(c: &[char], i: usize, close: char) -> Result<usize, String> {
    let mut j = i + 1;
    while j < c.len() {
        match c[j] {
            '"' | '\'' | '`' => j = skip_string(c, j)?,
            x if x == close => return Ok(j),
            _ => j += 1,
        }
    }
    Err(format!("{:?} is not closed", c[i]))
}

/// Splits on commas outside strings.
fn split_top(c: &[char]) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let (mut start, mut j) = (0, 0);
    while j < c.len() {
        match c[j] {
            '"' | '\'' | '`' => j = skip_string(c, j)?,
            '{' => j = closing(c, j, '}')? + 1,
            '(' => j = closing(c, j, ')')? + 1,
            ',' => {
                parts.push(c[start..j].iter().collect::<String>().trim().to_owned());
                j += 1;
                start = j;
            }
            _ => j += 1,
        }
    }
    let last = c[start..].iter().collect::<String>().trim().to_owned();
    if !last.is_empty() {
        parts.push(last);
    }
    Ok(parts)
}

fn unquote(v: &str) -> Result<String, String> {
    let v = v.trim();
    let q = v.chars().next().ok_or("an empty matcher value")?;
    if !matches!(q, '"' | '\'' | '`') || !v.ends_with(q) || v.len() < 2 {
        return Err(format!("{v} is not a quoted value"));
    }
    Ok(v[1..v.len() - 1].to_owned())
}

/// `label="value", …` inside braces.
fn matchers(inner: &[char], names: &mut Names) -> Result<(), String> {
    for m in split_top(inner)? {
        let label: String = m.chars().take_while(|c| is_ident(*c)).collect();
        let rest = m[label.len()..].trim_start();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .ok_or_else(|| format!("{m:?} is not a label matcher"))?;
        let value = unquote(&rest[op.len()..])?;
        if label == "__name__" {
            if op != "=" {
                return Err(format!(
                    "{m}: a metric name regex cannot be checked; name the metrics"
                ));
            }
            names.metrics.push(value);
        } else {
            names.labels.push(label.clone());
            names.matchers.push((label, op.to_owned(), value));
        }
    }
    Ok(())
}

/// The metric names, labels and matchers of a query, with Grafana's `$variables` left alone.
fn names(expr: &str) -> Result<Names, String> {
    let c: Vec<char> = expr.chars().collect();
    let mut out = Names::default();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if matches!(ch, '"' | '\'' | '`') {
            i = skip_string(&c, i)?;
        } else if ch == '{' {
            let end = closing(&c, i, '}')?;
            matchers(&c[i + 1..end], &mut out)?;
            i = end + 1;
        } else if ch == '[' {
            i = closing(&c, i, ']')? + 1;
        } else if ch == '$' {
            i += 1;
            while i < c.len() && is_ident(c[i]) {
                i += 1;
            }
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
        } else if is_ident_start(ch) {
            let start = i;
            while i < c.len() && is_ident(c[i]) {
                i += 1;
            }
            let ident: String = c[start..i].iter().collect();
            let mut next = i;
            while next < c.len() && c[next].is_whitespace() {
                next += 1;
            }
            let call = c.get(next) == Some(&'(');
            if GROUPING.contains(&ident.as_str()) {
                if call {
                    let end = closing(&c, next, ')')?;
                    out.labels.extend(split_top(&c[next + 1..end])?);
                    i = end + 1;
                }
            } else if !(call
                || KEYWORDS.contains(&ident.as_str())
                || AGGREGATIONS.contains(&ident.as_str()))
            {
                out.metrics.push(ident);
            }
        } else {
            i += 1;
        }
    }
    Ok(out)
}

/// A template variable's query: `label_values(label)` or `label_values(selector, label)`.
fn label_values(query: &str) -> Result<(Option<String>, String), String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .ok_or_else(|| format!("{query:?}: only label_values(…) menus are checked"))?;
    let c: Vec<char> = inner.chars().collect();
    let mut parts = split_top(&c)?;
    match parts.len() {
        1 => Ok((None, parts.remove(0))),
        2 => {
            let label = parts.remove(1);
            Ok((Some(parts.remove(0)), label))
        }
        _ => Err(format!(
            "{query:?}: label_values takes one or two arguments"
        )),
    }
}

/// Problems with one query against what exists.
fn check_query(expr: &str, known: &Known) -> Vec<String> {
    let names = match names(expr) {
        Ok(n) => n,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    let mut allowed = known.always.clone();
    if names.metrics.is_empty() {
        // a bare selector such as `{community="…"}` matches any series
        allowed.extend(known.labels.values().flatten().cloned());
    }
    for m in &names.metrics {
        match known.series(m) {
            Some(labels) => allowed.extend(labels),
            None => problems.push(format!("no metric `{m}`")),
        }
    }
    if !problems.is_empty() {
        // labels of a metric that does not exist say nothing more
        return problems;
    }
    for label in &names.labels {
        if !allowed.contains(label) {
            problems.push(format!(
                "label `{label}` is not a label of {:?}",
                names.metrics
            ));
        }
    }
    for (label, op, value) in &names.matchers {
        let Some(values) = known.values.get(label) else {
            continue;
        };
        let wanted: Vec<&str> = match op.as_str() {
            "=" => vec![value.as_str()],
            "=~" => value.split('|').collect(),
            _ => continue,
        };
        for v in wanted {
            if !v.contains('$') && !values.contains(v) {
                problems.push(format!("{label}=\"{v}\" does not exist"));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Walking a dashboard

/// A query of a panel or a menu.
struct Query {
    /// Where it is, for messages.
    at: String,
    /// Its data source uid.
    uid: String,
    expr: String,
    instant: bool,
    /// A `label_values` menu rather than a panel query.
    menu: bool,
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

fn uid_of(v: &Value) -> Option<String> {
    v["datasource"]["uid"].as_str().map(str::to_owned)
}

fn queries(d: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for p in panels(d) {
        let title = p["title"].as_str().unwrap_or("?");
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(Query {
                at: format!("panel {title:?} query {}", t["refId"]),
                uid: uid_of(t).or_else(|| uid_of(p)).unwrap_or_default(),
                expr: t["expr"].as_str().unwrap_or_default().to_owned(),
                instant: t["instant"].as_bool().unwrap_or(false),
                menu: false,
            });
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .unwrap_or_default();
            out.push(Query {
                at: format!("menu {}", v["name"]),
                uid: uid_of(v).unwrap_or_default(),
                expr: q.to_owned(),
                instant: true,
                menu: true,
            });
        }
    }
    out
}

/// Every problem with one dashboard.
fn check_dashboard(
    d: &Value,
    provisioned: &BTreeSet<String>,
    known: &BTreeMap<&str, Known>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for key in ["uid", "title"] {
        if d[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("no {key}"));
        }
    }
    if !d["id"].is_null() {
        problems.push("\"id\" must be null, or an import overwrites another dashboard".into());
    }
    if d["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        problems.push("schemaVersion missing or older than 36".into());
    }
    let all = panels(d);
    if all.is_empty() {
        problems.push("no panels".into());
    }
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, [i64; 4])> = Vec::new();
    for p in &all {
        let title = p["title"].as_str().unwrap_or("?").to_owned();
        if title.is_empty() {
            problems.push(format!("panel {} has no title", p["id"]));
        }
        match p["id"].as_u64() {
            Some(id) if ids.insert(id) => {}
            _ => problems.push(format!("panel {title:?}: id {} missing or taken", p["id"])),
        }
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_i64().unwrap_or(-1));
        if x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > 24 {
            problems.push(format!("panel {title:?}: gridPos {g} is outside the grid"));
        }
        for (other, [ox, oy, ow, oh]) in &boxes {
            if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                problems.push(format!("panels {other:?} and {title:?} overlap"));
            }
        }
        boxes.push((title.clone(), [x, y, w, h]));
        if p["type"] == "row" {
            continue;
        }
        match uid_of(p) {
            Some(uid) if provisioned.contains(&uid) => {}
            other => problems.push(format!(
                "panel {title:?}: data source uid {other:?} is not provisioned"
            )),
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel {title:?} has no query"));
        }
        let mut refs = BTreeSet::new();
        for t in &targets {
            if !refs.insert(t["refId"].as_str().unwrap_or_default().to_owned()) {
                problems.push(format!(
                    "panel {title:?}: refId {} missing or twice",
                    t["refId"]
                ));
            }
            match uid_of(t) {
                Some(uid) if provisioned.contains(&uid) => {}
                other => problems.push(format!(
                    "panel {title:?}: query data source uid {other:?} is not provisioned"
                )),
            }
        }
    }
    for q in queries(d) {
        if !provisioned.contains(&q.uid) {
            problems.push(format!(
                "{}: data source uid {:?} is not provisioned",
                q.at, q.uid
            ));
        }
        if q.expr.trim().is_empty() {
            problems.push(format!("{}: empty query", q.at));
            continue;
        }
        let Some(k) = known.get(q.uid.as_str()) else {
            problems.push(format!(
                "{}: no metric list for data source {}",
                q.at, q.uid
            ));
            continue;
        };
        let found = if q.menu {
            match label_values(&q.expr) {
                Ok((selector, label)) => {
                    let mut p = selector.map_or_else(Vec::new, |s| check_query(&s, k));
                    let exists =
                        k.always.contains(&label) || k.labels.values().any(|l| l.contains(&label));
                    if !exists {
                        p.push(format!("no series has the label `{label}`"));
                    }
                    p
                }
                Err(e) => vec![e],
            }
        } else {
            check_query(&q.expr, k)
        };
        problems.extend(found.into_iter().map(|p| format!("{}: {p}", q.at)));
    }
    problems
}

fn known_by_uid() -> BTreeMap<&'static str, Known> {
    BTreeMap::from([
        (PROM_UID, gateway_metrics()),
        (VM_UID, store_metrics(&catalogue())),
    ])
}

// ---------------------------------------------------------------------------------------------

#[test]
fn the_metrics_read_from_the_source_are_the_ones_metrics_prints() {
    let known = gateway_metrics();
    let text = Metrics::new().encode();
    let mut printed = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                known.labels.contains_key(name),
                "/metrics prints {name}, which the scan of metrics/mod.rs missed"
            );
            assert_eq!(
                kind == "histogram",
                known.histograms.contains(name),
                "{name} is a {kind}"
            );
            printed += 1;
        } else if !line.starts_with('#') {
            // a sample: its labels must be the ones the scan found
            let series = line.split(' ').next().unwrap_or_default();
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            let labels = labels.trim_end_matches('}');
            let scanned = known
                .series(name)
                .unwrap_or_else(|| panic!("sample of unknown metric {name}"));
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let label = pair.split('=').next().unwrap_or_default();
                assert!(scanned.contains(label), "{name} has label {label}");
            }
        }
    }
    // labelled metrics without samples yet print nothing, hence the scan of the source
    assert!(printed >= 10, "only {printed} metrics printed");
    assert!(known.labels.len() >= printed, "{known:?}");
    assert_eq!(
        known.labels["gridwatch_alerts_opened_total"],
        BTreeSet::from(["rule".to_owned(), "severity".to_owned()])
    );
    assert_eq!(
        known.histograms,
        BTreeSet::from(["gridwatch_case_seconds".to_owned()])
    );
}

#[test]
fn every_dashboard_is_well_formed_and_names_only_what_exists() {
    let dashboards = dashboards();
    for expected in ["gridwatch-community.json", "gridwatch-gateway.json"] {
        assert!(dashboards.contains_key(expected), "{expected} is missing");
    }
    let provisioned = provisioned_uids();
    assert_eq!(
        provisioned,
        BTreeSet::from([VM_UID.to_owned(), PROM_UID.to_owned()]),
        "provisioning/datasources/gridwatch.yaml"
    );
    let provider = read(&grafana().join("provisioning/dashboards/gridwatch.yaml"));
    assert!(
        provider.contains("type: file") && provider.contains("path: /"),
        "the dashboard provider reads a folder"
    );
    let readme = read(&repo().join("dashboards/README.md"));
    let known = known_by_uid();

    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for (file, d) in &dashboards {
        if !uids.insert(d["uid"].as_str().unwrap_or_default().to_owned()) {
            problems.push(format!("{file}: uid {} is taken", d["uid"]));
        }
        if !readme.contains(file.as_str()) {
            problems.push(format!("{file}: dashboards/README.md does not mention it"));
        }
        problems.extend(
            check_dashboard(d, &provisioned, &known)
                .into_iter()
                .map(|p| format!("{file}: {p}")),
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // each dashboard reads the data source it is for
    let uids_of = |file: &str| -> BTreeSet<String> {
        queries(&dashboards[file])
            .into_iter()
            .map(|q| q.uid)
            .collect()
    };
    assert_eq!(
        uids_of("gridwatch-gateway.json"),
        BTreeSet::from([PROM_UID.to_owned()])
    );
    assert_eq!(
        uids_of("gridwatch-community.json"),
        BTreeSet::from([VM_UID.to_owned()])
    );
}

#[test]
fn the_gateway_dashboard_shows_every_gateway_metric() {
    let dashboards = dashboards();
    let known = known_by_uid();
    let used: BTreeSet<String> = queries(&dashboards["gridwatch-gateway.json"])
        .iter()
        .flat_map(|q| names(&q.expr).map(|n| n.metrics).unwrap_or_default())
        .map(|m| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    m.strip_suffix(s)
                        .filter(|b| known[PROM_UID].histograms.contains(*b))
                })
                .unwrap_or(&m)
                .to_owned()
        })
        .collect();
    let missing: Vec<&String> = known[PROM_UID]
        .labels
        .keys()
        .filter(|m| !used.contains(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "the gateway dashboard does not show {missing:?}: add a panel to \
         dashboards/grafana/dashboards/gridwatch-gateway.json (and its row in dashboards/README.md)"
    );
}

#[test]
fn a_dashboard_naming_a_metric_or_label_that_does_not_exist_fails() {
    let dashboards = dashboards();
    let provisioned = provisioned_uids();
    let known = known_by_uid();
    let broken = |file: &str, from: &str, to: &str| -> Vec<String> {
        let text = serde_json::to_string(&dashboards[file]).unwrap();
        assert!(text.contains(from), "{file} has no {from}");
        let d: Value = serde_json::from_str(&text.replacen(from, to, 1)).unwrap();
        check_dashboard(&d, &provisioned, &known)
    };
    for (file, from, to, why) in [
        (
            "gridwatch-gateway.json",
            "gridwatch_messages_received_total",
            "gridwatch_messages_recieved_total",
            "no metric `gridwatch_messages_recieved_total`",
        ),
        (
            "gridwatch-gateway.json",
            "gridwatch_case_seconds_bucket",
            "gridwatch_journal_bytes_bucket",
            "no metric `gridwatch_journal_bytes_bucket`",
        ),
        (
            "gridwatch-gateway.json",
            "by (reason)",
            "by (cause)",
            "label `cause`",
        ),
        (
            "gridwatch-community.json",
            "manhole_tilt_deg",
            "manhole_tilt_degrees",
            "no metric `manhole_tilt_degrees`",
        ),
        (
            "gridwatch-community.json",
            "event=\\\"sos_pressed\\\"",
            "event=\\\"sos_pushed\\\"",
            "event=\"sos_pushed\" does not exist",
        ),
        (
            "gridwatch-community.json",
            "\"uid\":\"gridwatch-vm\"",
            "\"uid\":\"victoria\"",
            "\"victoria\"",
        ),
    ] {
        let problems = broken(file, from, to);
        assert!(
            problems.iter().any(|p| p.contains(why)),
            "{file} with {to} instead of {from}: expected {why:?} in {problems:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Against a real VictoriaMetrics

const REGISTRY_HEAD: &str = r#"
[community]
id = "yg"
name = "阳光社区"
[[buildings]]
id = "b1"
name = "1号楼"
[[buildings]]
id = "b2"
name = "2号楼"
[[grids]]
id = "g1"
name = "第一网格"
"#;

/// Grafana's variables as the menus' "All" and a time range of an hour would set them.
fn substitute(expr: &str) -> String {
    let mut out = expr.to_owned();
    for (var, value) in [
        ("$__rate_interval", "4m"),
        ("$__interval", "1m"),
        ("$__range", "1h"),
        ("$community", "yg"),
        ("$building", ".*"),
        ("$instance", ".*"),
        ("$device", ".*"),
        ("$window", "1d"),
        ("$grid", ".*"),
        ("$job", "gridwatch"),
    ] {
        out = out.replace(var, value);
    }
    assert!(!out.contains('$'), "a variable is left in {out}");
    out
}

/// Half an hour of telemetry from one device of each kind (one battery low), each kind's
/// events, a heartbeat each and status words (one device offline), as the gateway writes them.
fn community_lines(catalogue: Arc<Catalogue>, now: u64) -> String {
    let mut registry = REGISTRY_HEAD.to_owned();
    for (i, kind) in catalogue.kinds().iter().enumerate() {
        registry.push_str(&format!(
            "[[devices]]\nid = \"{0}-1\"\nkind = \"{0}\"\nbuilding = \"b{1}\"\ngrid = \"g1\"\nlocation = \"{0}\"\n",
            kind.name,
            i % 2 + 1
        ));
    }
    let registry = Registry::parse_with(&registry, catalogue.clone())
        .unwrap_or_else(|p| panic!("test registry: {p:?}"));
    let mut lines = String::new();
    let mut put = |channel: &str, device: &str, payload: &[u8], received: u64| {
        let topic = format!("gw/v1/yg/{device}/{channel}");
        let msg =
            decode(&topic, payload, &registry, 4096).unwrap_or_else(|r| panic!("{topic}: {r:?}"));
        write_message(&mut lines, &msg, received).expect("a line");
    };
    for kind in catalogue.kinds() {
        let device = format!("{}-1", kind.name);
        let mut seq = 0;
        for i in (1..=30u64).rev() {
            let ts = now - i * 60_000;
            let readings: Vec<(&str, Reading)> = kind
                .readings
                .iter()
                .map(|r| {
                    let v = match (&r.value, r.name.as_str()) {
                        (ReadingType::Bool, _) => Reading::Bool(i % 2 == 1),
                        (_, "battery_v") if kind.name == "sos" => Reading::Number(3.1),
                        (_, "battery_v") => Reading::Number(3.6),
                        (_, "last_motion_ts") => Reading::Number((now - 3_600_000) as f64),
                        (_, "run_count") => Reading::Number((130 - i) as f64),
                        (ReadingType::Number { min, max, .. }, _) => {
                            Reading::Number((min.max(0.0) + 1.5).min(*max))
                        }
                    };
                    (r.name.as_str(), v)
                })
                .collect();
            seq += 1;
            put(
                "telemetry",
                &device,
                &payload::telemetry(&kind.name, ts, seq, &readings),
                ts,
            );
        }
        for e in &kind.events {
            seq += 1;
            let msg = Message {
                ts: now - 600_000,
                seq,
                kind: &kind.name,
                event: Some(&e.name),
                data: Readings::new(),
                mac: None,
            };
            put("event", &device, &payload::encode(&msg), now - 600_000);
        }
        seq += 1;
        put(
            "telemetry",
            &device,
            &payload::telemetry(&kind.name, now - 300_000, seq, &[]),
            now - 300_000,
        );
        let status: &[u8] = if kind.name == "fire_passage" {
            b"offline"
        } else {
            b"online"
        };
        put("status", &device, status, now - 120_000);
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_runs_on_victoria_metrics_and_the_community_ones_find_data(
) -> anyhow::Result<()> {
    let vm = VictoriaMetrics::start()?;
    let now = now_ms();
    let lines = community_lines(Arc::new(catalogue()), now);
    let client = http();
    client
        .post(format!(
            "{}/api/v2/write?org=gridwatch&bucket=gridwatch&precision=ms",
            vm.url()
        ))
        .body(lines)
        .send()
        .await?
        .error_for_status()?;
    assert!(
        !vm.export(r#"{community="yg"}"#).await?.is_empty(),
        "the lines are stored"
    );

    let now_s = (now / 1000).to_string();
    let start_s = (now / 1000 - 3600).to_string();
    let mut problems = Vec::new();
    for (file, d) in dashboards() {
        for q in queries(&d) {
            let community = q.uid == VM_UID;
            let response = if q.menu {
                let (selector, label) = label_values(&q.expr).map_err(anyhow::Error::msg)?;
                let mut req = client.get(format!("{}/api/v1/label/{label}/values", vm.url()));
                if let Some(s) = selector {
                    req = req.query(&[("match[]", substitute(&s))]);
                }
                req.send().await?
            } else if q.instant {
                client
                    .get(format!("{}/api/v1/query", vm.url()))
                    .query(&[("query", substitute(&q.expr)), ("time", now_s.clone())])
                    .send()
                    .await?
            } else {
                client
                    .get(format!("{}/api/v1/query_range", vm.url()))
                    .query(&[
                        ("query", substitute(&q.expr)),
                        ("start", start_s.clone()),
                        ("end", now_s.clone()),
                        ("step", "60".to_owned()),
                    ])
                    .send()
                    .await?
            };
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() || body["status"] != "success" {
                problems.push(format!("{file} {}: {status} {body}", q.at));
                continue;
            }
            let results = if q.menu {
                &body["data"]
            } else {
                &body["data"]["result"]
            };
            if community && results.as_array().is_none_or(Vec::is_empty) {
                problems.push(format!("{file} {}: no data for {}", q.at, q.expr));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
