//! Durations as people write them in rule files: `90s`, `5m`, `2h`, `1h30m`, `1d`.

/// Parses a duration into milliseconds, or says what to write instead.
pub fn parse_ms(s: &str) -> Result<u64, String> {
    const HINT: &str = "write a number with a unit: s, m, h or d, e.g. \"30s\", \"5m\", \"1h30m\"";
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("an empty duration; {HINT}"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            _ => return Err(format!("`{s}` is not a duration; {HINT}")),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{s}` is not a duration; {HINT}"))?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("`{s}` is too long"))?;
    }
    if !digits.is_empty() {
        return Err(format!("`{s}` has no unit; {HINT}"));
    }
    Ok(total)
}

/// Writes milliseconds back the way [`parse_ms`] reads them, to the second.
pub fn show_ms(ms: u64) -> String {
    if ms < 1000 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut left = ms / 1000;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= size {
            out.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn units_add_up() {
        assert_eq!(parse_ms("90s"), Ok(90_000));
        assert_eq!(parse_ms("5m"), Ok(300_000));
        assert_eq!(parse_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_ms("1d"), Ok(86_400_000));
        assert_eq!(parse_ms("0s"), Ok(0));
    }

    #[test]
    fn mistakes_say_what_to_write() {
        for bad in [
            "",
            "5",
            "5 min",
            "m",
            "-5s",
            "1.5h",
            "99999999999999999999d",
        ] {
            let e = parse_ms(bad).expect_err(bad);
            assert!(
                e.contains("duration") || e.contains("unit") || e.contains("long"),
                "{bad}: {e}"
            );
        }
    }

    proptest! {
        #[test]
        fn shown_durations_read_back(s in 0u64..10_000_000, ms in 0u64..1000) {
            prop_assert_eq!(parse_ms(&show_ms(s * 1000 + ms)), Ok(s * 1000));
        }
    }
}
