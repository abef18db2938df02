//! Durations on the command line: `30d`, `12h`, `15m`, `90s`, `2w`.

/// Parses `<number><unit>` with unit `s`, `m`, `h`, `d` or `w`.
pub(crate) fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 30d, 12h, 15m; got {s:?}"))?;
    let secs_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("unknown unit in {s:?}: use s, m, h, d or w")),
    };
    n.checked_mul(secs_per_unit)
        .and_then(chrono::Duration::try_seconds)
        .filter(|d| *d > chrono::Duration::zero())
        .ok_or_else(|| format!("duration {s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn parses_units_and_rejects_garbage() {
        assert_eq!(parse_duration("30d").unwrap(), chrono::Duration::days(30));
        assert_eq!(parse_duration("12h").unwrap(), chrono::Duration::hours(12));
        assert_eq!(parse_duration("2w").unwrap(), chrono::Duration::weeks(2));
        for bad in [
            "",
            "d",
            "30",
            "30y",
            "-1d",
            "0d",
            "99999999999999999d",
            "1.5h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
