//! InfluxDB line protocol, written by hand because the hot path needs what `influxdb2` lacks.
//!
//! `influxdb2` 0.5's escaping misses backslashes and newlines and it writes NaN and infinities,
//! which line protocol cannot carry; its `DataPoint` also costs about eleven times a hand-written
//! line. So: every string is escaped here, a newline anywhere is refused (line protocol has no
//! escape for it), non-finite numbers are refused, and a refused line leaves the buffer untouched.
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
mod tests {
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

    proptest! {
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
