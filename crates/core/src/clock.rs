//! The clock spans read on the hot path.
//!
//! Spans need wall-clock times (UTC) for their start and end, and durations
//! that no wall-clock step — an NTP correction, a resumed VM — can make
//! negative. So a span's start reads both clocks ([`stamp`]), and a span that
//! started in this process ends at its start plus the *monotonic* time
//! elapsed ([`end_after`]): never before it started, whatever the wall clock
//! did meanwhile. A span rebuilt from another process (whose start came from
//! another host's clock) ends now, but never before its start.
//!
//! `chrono::Utc::now()` converts seconds since the epoch into a calendar date
//! on every call (measured: ~9 % of the cost of recording a span); the date
//! changes once a day, so each thread caches it, and an end on the same day
//! as its start reuses the start's date.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};

const DAY: u64 = 86_400;
const NANOS: u32 = 1_000_000_000;

thread_local! {
    /// (days since the epoch, that day's date).
    static DAY_CACHE: Cell<Option<(u64, NaiveDate)>> = const { Cell::new(None) };
}

/// A span's start: the wall time, and the monotonic instant read with it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    pub(crate) wall: DateTime<Utc>,
    mono: Instant,
}

/// The current UTC time.
pub(crate) fn now() -> DateTime<Utc> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(utc)
        // A clock before 1970, or past chrono's range: let chrono handle it.
        .unwrap_or_else(Utc::now)
}

/// The current time, wall and monotonic.
pub(crate) fn stamp() -> Stamp {
    let wall = now();
    Stamp {
        wall,
        mono: Instant::now(),
    }
}

/// When a span ends. Started in this process (`started` is its start
/// reading): the start plus the monotonic time since, so the duration is
/// exact and never negative. Started elsewhere (a rebuilt span): now, but
/// never before `start`.
pub(crate) fn end_after(start: DateTime<Utc>, started: Option<&Stamp>) -> DateTime<Utc> {
    let Some(s) = started else {
        return now().max(start);
    };
    let elapsed = s.mono.elapsed();
    let start = s.wall.naive_utc();
    let t = start.time();
    // Our start times never hold a leap second: `nanosecond()` is below 1e9.
    let nanos = t.nanosecond() + elapsed.subsec_nanos();
    let (nanos, carry) = if nanos >= NANOS {
        (nanos - NANOS, 1)
    } else {
        (nanos, 0)
    };
    let secs = u64::from(t.num_seconds_from_midnight())
        .saturating_add(elapsed.as_secs())
        .saturating_add(carry);
    // On the start's day (nearly always): its date, no calendar arithmetic.
    if secs < DAY
        && let Some(time) = NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, nanos)
    {
        return start.date().and_time(time).and_utc();
    }
    past_midnight(s.wall, elapsed)
}

#[cold]
fn past_midnight(start: DateTime<Utc>, elapsed: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(elapsed)
        .ok()
        .and_then(|d| start.checked_add_signed(d))
        .unwrap_or(start)
}

/// A time since the epoch as a UTC date-time, the date from the day cache.
fn utc(since: Duration) -> Option<DateTime<Utc>> {
    let days = since.as_secs() / DAY;
    let date = match DAY_CACHE.with(Cell::get) {
        Some((d, date)) if d == days => date,
        _ => {
            let date = DateTime::from_timestamp(i64::try_from(days * DAY).ok()?, 0)?.date_naive();
            DAY_CACHE.with(|c| c.set(Some((days, date))));
            date
        }
    };
    Some(date.and_time(time_of_day(since)?).and_utc())
}

fn time_of_day(since: Duration) -> Option<NaiveTime> {
    // `secs % DAY` is below 86 400, so it fits a u32.
    NaiveTime::from_num_seconds_from_midnight_opt(
        (since.as_secs() % DAY) as u32,
        since.subsec_nanos(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_chrono() {
        for _ in 0..1000 {
            let before = chrono::Utc::now();
            let ours = now();
            let after = chrono::Utc::now();
            assert!(before <= ours && ours <= after, "{before} {ours} {after}");
        }
    }

    #[test]
    fn a_span_started_here_ends_at_its_start_plus_elapsed_time() {
        let s = stamp();
        std::thread::sleep(Duration::from_millis(5));
        let end = end_after(s.wall, Some(&s));
        let d = (end - s.wall).to_std().unwrap();
        assert!(d >= Duration::from_millis(5), "{d:?}");
        assert!(d < Duration::from_secs(5), "{d:?}");
    }

    #[test]
    fn a_span_started_on_a_clock_ahead_of_ours_ends_no_earlier_than_it_started() {
        let ahead = now() + TimeDelta::seconds(3);
        assert_eq!(end_after(ahead, None), ahead);
        let behind = now() - TimeDelta::seconds(3);
        assert!(end_after(behind, None) > behind);
    }
}
