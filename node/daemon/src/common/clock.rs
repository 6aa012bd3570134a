//! The wall clock, in one place: the node, the CLI and `lf makegenesis` read the time
//! through [`now`]; times as text (`YYYY-MM-DDTHH:MM:SSZ`, UTC) for history and watch.

/// Unix seconds now (0 if the clock is before 1970).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix seconds, or `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn parse_time(s: &str) -> Option<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let s = s.strip_suffix('Z')?;
    let (d, t) = s.split_once('T')?;
    let d: Vec<i32> = d
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<u8> = t
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let ([y, mo, day], [h, mi, sec]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    let date =
        time::Date::from_calendar_date(*y, time::Month::try_from(*mo as u8).ok()?, *day as u8)
            .ok()?;
    let ts = time::PrimitiveDateTime::new(date, time::Time::from_hms(*h, *mi, *sec).ok()?)
        .assume_utc()
        .unix_timestamp();
    u64::try_from(ts).ok()
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix seconds.
pub fn format_time(ts: u64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ts as i64) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => ts.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_print_in_utc() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_time("2023-11-14 22:13:20"), None);
        assert_eq!(parse_time("2023-13-14T22:13:20Z"), None);
    }
}
