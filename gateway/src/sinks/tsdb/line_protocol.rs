//! InfluxDB line protocol, written by hand because the hot path needs what `influxdb2` lacks.
//!
//! `influxdb2` 0.5's escaping misses backslashes and newlines and it writes NaN and infinities,
//! which line protocol cannot carry; its `DataPoint` also costs about eleven times a hand-written
//! line. So: every string is escaped here, a newline anywhere is refused (line protocol has no
//! escape for it), non-finite numbers are refused, a measurement starting with `#` is refused (the
//! line would be a comment, and `\#` has no defined meaning), and a refused line leaves the buffer
//! untouched.
//!
//! Layout (one line per message):
//! - telemetry: measurement = device kind, tags `building,community,device,grid`, one field per
//!   reading (floats and booleans), timestamp = the device's `ts` in milliseconds;
//! - events: measurement `event`, the same tags plus `event` and `kind`, fields `count=1i,seq=…i`;
//! - status: measurement `status`, the same tags, field `online` (boolean).

use std::fmt::Write;

/// A field value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Field<'a> {
    /// A finite float.
    Float(f64),
    /// A signed integer, written with the `i` suffix.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A string, quoted and escaped.
    Str(&'a str),
}

/// Why a point cannot be written as line protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// NaN or an infinity, which line protocol cannot carry.
    #[error("field {0:?} is not a finite number")]
    NonFinite(String),
    /// A newline in a name or value; line protocol has no escape for it.
    #[error("a newline in {0:?}")]
    Newline(String),
    /// An empty measurement, tag key or field key.
    #[error("an empty measurement or key")]
    EmptyKey,
    /// A point needs at least one field.
    #[error("no fields")]
    NoFields,
    /// A measurement starting with `#`: the line would be read as a comment and dropped.
    #[error("measurement {0:?} starts with `#`, which makes the line a comment")]
    Comment(String),
}

fn check(s: &str) -> Result<(), LineError> {
    if s.contains(['\n', '\r']) {
        Err(LineError::Newline(s.to_owned()))
    } else {
        Ok(())
    }
}

/// Writes `s` escaping each of `special` and backslashes with a backslash.
fn escaped(buf: &mut String, s: &str, special: &[char]) {
    for c in s.chars() {
        if c == '\\' || special.contains(&c) {
            buf.push('\\');
        }
        buf.push(c);
    }
}

fn write_float(buf: &mut String, n: f64) {
    let m = n.abs();
    // Exponent notation keeps 1e300 from being spelled with 301 digits; both forms are accepted.
    let _ = if m != 0.0 && !(1e-4..1e15).contains(&m) {
        write!(buf, "{n:e}")
    } else {
        write!(buf, "{n}")
    };
}

/// Appends one point and a newline to `buf`. Tags with empty values are left out (line protocol
/// has no empty tag value); pass tags sorted by key, which servers ingest fastest.
pub fn write_line(
    buf: &mut String,
    measurement: &str,
    tags: &[(&str, &str)],
    fields: &[(&str, Field<'_>)],
    ts_ms: u64,
) -> Result<(), LineError> {
    if measurement.is_empty()
        || tags.iter().any(|(k, _)| k.is_empty())
        || fields.iter().any(|(k, _)| k.is_empty())
    {
        return Err(LineError::EmptyKey);
    }
    if fields.is_empty() {
        return Err(LineError::NoFields);
    }
    check(measurement)?;
    if measurement.starts_with('#') {
        return Err(LineError::Comment(measurement.to_owned()));
    }
    for (k, v) in tags {
        check(k)?;
        check(v)?;
    }
    for (k, v) in fields {
        check(k)?;
        match v {
            Field::Str(s) => check(s)?,
            Field::Float(f) if !f.is_finite() => return Err(LineError::NonFinite((*k).to_owned())),
            _ => {}
        }
    }
    escaped(buf, measurement, &[',', ' ']);
    for (k, v) in tags.iter().filter(|(_, v)| !v.is_empty()) {
        buf.push(',');
        escaped(buf, k, &[',', '=', ' ']);
        buf.push('=');
        escaped(buf, v, &[',', '=', ' ']);
    }
    for (i, (k, v)) in fields.iter().enumerate() {
        buf.push(if i == 0 { ' ' } else { ',' });
        escaped(buf, k, &[',', '=', ' ']);
        buf.push('=');
        match v {
            Field::Float(f) => write_float(buf, *f),
            Field::Int(n) => {
                let _ = write!(buf, "{n}i");
            }
            Field::Bool(b) => buf.push_str(if *b { "true" } else { "false" }),
            Field::Str(s) => {
                buf.push('"');
                escaped(buf, s, &['"']);
                buf.push('"');
            }
        }
    }
    let _ = writeln!(buf, " {ts_ms}");
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(
        m: &str,
        tags: &[(&str, &str)],
        fields: &[(&str, Field<'_>)],
    ) -> Result<String, LineError> {
        let mut buf = String::new();
        write_line(&mut buf, m, tags, fields, 1_795_000_000_123).map(|()| buf)
    }

    #[test]
    fn writes_a_telemetry_line() {
        assert_eq!(
            line(
                "manhole",
                &[("building", "b1"), ("device", "mh-1")],
                &[
                    ("tilt_deg", Field::Float(3.2)),
                    ("cover_open", Field::Bool(false))
                ]
            )
            .unwrap(),
            "manhole,building=b1,device=mh-1 tilt_deg=3.2,cover_open=false 1795000000123\n"
        );
    }

    #[test]
    fn escapes_every_special_character_and_backslashes() {
        assert_eq!(
            line(
                "a b,c",
                &[("k=1", "v 1,x\\")],
                &[("f", Field::Str(r#"say "hi" \o/"#)), ("n", Field::Int(-3))]
            )
            .unwrap(),
            "a\\ b\\,c,k\\=1=v\\ 1\\,x\\\\ f=\"say \\\"hi\\\" \\\\o/\",n=-3i 1795000000123\n"
        );
    }

    #[test]
    fn refuses_what_line_protocol_cannot_carry_and_leaves_the_buffer_alone() {
        let mut buf = String::from("earlier\n");
        let nan = write_line(&mut buf, "m", &[], &[("x", Field::Float(f64::NAN))], 1);
        assert_eq!(nan, Err(LineError::NonFinite("x".into())));
        let nl = write_line(
            &mut buf,
            "m",
            &[("loc", "a\nb")],
            &[("x", Field::Int(1))],
            1,
        );
        assert!(matches!(nl, Err(LineError::Newline(_))));
        assert_eq!(
            write_line(&mut buf, "m", &[], &[], 1),
            Err(LineError::NoFields)
        );
        assert_eq!(buf, "earlier\n");
    }

    #[test]
    fn a_measurement_that_would_make_a_comment_is_refused() {
        let mut buf = String::new();
        let got = write_line(&mut buf, "#m", &[], &[("x", Field::Int(1))], 1);
        assert_eq!(got, Err(LineError::Comment("#m".into())));
        assert_eq!(buf, "");
        assert_eq!(
            line("m#", &[], &[("x", Field::Int(1))]).unwrap(),
            "m# x=1i 1795000000123\n"
        );
    }

    #[test]
    fn leaves_out_empty_tag_values_and_keeps_large_numbers_short() {
        assert_eq!(
            line(
                "m",
                &[("a", ""), ("b", "x")],
                &[("f", Field::Float(1e300)), ("g", Field::Float(3.0))]
            )
            .unwrap(),
            "m,b=x f=1e300,g=3 1795000000123\n"
        );
    }

    /// Reads back one escaped token the way servers do: a backslash takes the next character.
    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            out.push(if c == '\\' { it.next().unwrap() } else { c });
        }
        out
    }

    /// Splits at the first unescaped occurrence of `sep`.
    fn split_unescaped(s: &str, sep: char) -> (&str, &str) {
        let mut escaped = false;
        for (i, c) in s.char_indices() {
            if !escaped && c == sep {
                return (&s[..i], &s[i + 1..]);
            }
            escaped = !escaped && c == '\\';
        }
        (s, "")
    }

    /// A point as a strict line-protocol reader sees it.
    #[derive(Debug, PartialEq)]
    pub(crate) struct Point {
        pub(crate) measurement: String,
        pub(crate) tags: Vec<(String, String)>,
        pub(crate) fields: Vec<(String, Read)>,
        pub(crate) ts: u64,
    }

    /// A field value as read back.
    #[derive(Debug, PartialEq)]
    pub(crate) enum Read {
        Float(f64),
        Int(i64),
        Bool(bool),
        Str(String),
    }

    /// Reads one token up to an unescaped `stop`. Strict: a backslash may only escape itself or
    /// one of `specials`, an unescaped special that is not a stop is an error, and so is a newline.
    fn token(
        it: &mut std::iter::Peekable<std::str::Chars<'_>>,
        specials: &[char],
        stops: &[char],
    ) -> Result<(String, Option<char>), String> {
        let mut out = String::new();
        while let Some(c) = it.next() {
            match c {
                '\\' => match it.next() {
                    Some(e) if e == '\\' || specials.contains(&e) => out.push(e),
                    other => return Err(format!("stray backslash before {other:?} in {out:?}")),
                },
                '\n' | '\r' => return Err(format!("line break in {out:?}")),
                c if stops.contains(&c) => return Ok((out, Some(c))),
                c if specials.contains(&c) => return Err(format!("unescaped {c:?} in {out:?}")),
                c => out.push(c),
            }
        }
        Ok((out, None))
    }

    /// Parses exactly one line, newline included, the way the line protocol reference defines
    /// it, refusing anything the reference leaves ambiguous.
    pub(crate) fn parse_line(text: &str) -> Result<Point, String> {
        let body = text.strip_suffix('\n').ok_or("no final newline")?;
        if body.contains(['\n', '\r']) {
            return Err("more than one line".into());
        }
        if body.starts_with('#') {
            return Err("a comment line".into());
        }
        let mut it = body.chars().peekable();
        let (measurement, mut stop) = token(&mut it, &[',', ' '], &[',', ' '])?;
        if measurement.is_empty() {
            return Err("empty measurement".into());
        }
        let mut tags = Vec::new();
        while stop == Some(',') {
            let (k, eq) = token(&mut it, &[',', '=', ' '], &['='])?;
            let (v, next) = token(&mut it, &[',', '=', ' '], &[',', ' '])?;
            if k.is_empty() || v.is_empty() || eq != Some('=') {
                return Err(format!("bad tag {k:?}={v:?}"));
            }
            tags.push((k, v));
            stop = next;
        }
        if stop != Some(' ') {
            return Err("no field set".into());
        }
        let mut fields = Vec::new();
        loop {
            let (k, eq) = token(&mut it, &[',', '=', ' '], &['='])?;
            if k.is_empty() || eq != Some('=') {
                return Err(format!("bad field key {k:?}"));
            }
            let value = if it.peek() == Some(&'"') {
                it.next();
                let (s, close) = token(&mut it, &['"'], &['"'])?;
                if close != Some('"') {
                    return Err("unterminated string".into());
                }
                Read::Str(s)
            } else {
                let raw: String =
                    std::iter::from_fn(|| it.next_if(|c| !matches!(c, ',' | ' '))).collect();
                match raw.as_str() {
                    "true" => Read::Bool(true),
                    "false" => Read::Bool(false),
                    r if r.ends_with('i') => {
                        Read::Int(r[..r.len() - 1].parse().map_err(|e| format!("{r}: {e}"))?)
                    }
                    r => Read::Float(r.parse().map_err(|e| format!("{r}: {e}"))?),
                }
            };
            fields.push((k, value));
            match it.next() {
                Some(',') => continue,
                Some(' ') => break,
                other => return Err(format!("{other:?} after a field")),
            }
        }
        let ts: String = it.collect();
        let ts = ts.parse().map_err(|e| format!("timestamp {ts:?}: {e}"))?;
        Ok(Point {
            measurement,
            tags,
            fields,
            ts,
        })
    }

    /// Strings made mostly of what could break a line: separators, quotes, escapes, line breaks,
    /// NUL, wildcards, non-ASCII.
    pub(crate) fn nasty() -> impl Strategy<Value = String> {
        let special = prop::sample::select(vec![
            ' ', ',', '=', '"', '\\', '#', '/', '+', '\0', '\t', 'é', '井', '\u{2028}', 'a', '_',
        ]);
        // Line breaks are rare, or nearly every point would be refused for one.
        let line_break = prop::sample::select(vec!['\n', '\r']);
        prop::collection::vec(
            prop_oneof![40 => special, 10 => any::<char>(), 1 => line_break],
            0..10,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    fn field() -> impl Strategy<Value = (String, FieldValue)> {
        let value = prop_oneof![
            any::<f64>().prop_map(FieldValue::Float),
            any::<i64>().prop_map(FieldValue::Int),
            any::<bool>().prop_map(FieldValue::Bool),
            nasty().prop_map(FieldValue::Str),
        ];
        (nasty(), value)
    }

    /// An owned [`Field`], for generating.
    #[derive(Clone, Debug)]
    enum FieldValue {
        Float(f64),
        Int(i64),
        Bool(bool),
        Str(String),
    }

    proptest! {
        #[test]
        fn no_string_can_add_a_line_or_move_a_tag_or_field(
            measurement in nasty(),
            tags in prop::collection::vec((nasty(), nasty()), 0..4),
            fields in prop::collection::vec(field(), 1..4),
            ts in any::<u64>(),
        ) {
            let tag_refs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let field_refs: Vec<(&str, Field<'_>)> = fields
                .iter()
                .map(|(k, v)| {
                    let f = match v {
                        FieldValue::Float(f) => Field::Float(*f),
                        FieldValue::Int(n) => Field::Int(*n),
                        FieldValue::Bool(b) => Field::Bool(*b),
                        FieldValue::Str(s) => Field::Str(s),
                    };
                    (k.as_str(), f)
                })
                .collect();
            let mut strings = vec![measurement.as_str()];
            strings.extend(tags.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]));
            strings.extend(fields.iter().map(|(k, _)| k.as_str()));
            strings.extend(fields.iter().filter_map(|(_, v)| match v {
                FieldValue::Str(s) => Some(s.as_str()),
                _ => None,
            }));
            let writable = !strings.iter().any(|s| s.contains(['\n', '\r']))
                && !measurement.is_empty()
                && !measurement.starts_with('#')
                && tags.iter().all(|(k, _)| !k.is_empty())
                && fields.iter().all(|(k, v)| !k.is_empty() && !matches!(v, FieldValue::Float(f) if !f.is_finite()));

            let mut buf = String::from("earlier 1\n");
            let result = write_line(&mut buf, &measurement, &tag_refs, &field_refs, ts);
            prop_assert_eq!(result.is_ok(), writable, "{:?}", result);
            if !writable {
                prop_assert_eq!(buf, "earlier 1\n");
                return Ok(());
            }
            let line = buf.strip_prefix("earlier 1\n").unwrap();
            let point = parse_line(line).map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
            let expected = Point {
                measurement: measurement.clone(),
                tags: tags.iter().filter(|(_, v)| !v.is_empty()).cloned().collect(),
                fields: fields
                    .iter()
                    .map(|(k, v)| {
                        let r = match v {
                            FieldValue::Float(f) => Read::Float(*f),
                            FieldValue::Int(n) => Read::Int(*n),
                            FieldValue::Bool(b) => Read::Bool(*b),
                            FieldValue::Str(s) => Read::Str(s.clone()),
                        };
                        (k.clone(), r)
                    })
                    .collect(),
                ts,
            };
            prop_assert_eq!(point, expected);
        }

        #[test]
        fn any_tag_value_reads_back_unchanged(v in "[^\n\r]{1,40}", f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let text = line("m", &[("t", &v)], &[("f", Field::Float(f))]).unwrap();
            let (series, rest) = split_unescaped(text.trim_end(), ' ');
            let (_, tag) = split_unescaped(series, ',');
            let (_, value) = split_unescaped(tag, '=');
            prop_assert_eq!(unescape(value), v);
            let (field, _) = split_unescaped(rest, ' ');
            prop_assert_eq!(field.strip_prefix("f=").unwrap().parse::<f64>().unwrap(), f);
        }
    }
}
