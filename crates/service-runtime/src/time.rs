use std::fmt;

use time::format_description::FormatItem;
use time::macros::{datetime, format_description};
use time::OffsetDateTime;

/// Fixed-width UTC timestamps (microseconds), so their text sorts in time order inside keys.
const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }

    pub fn from_unix_seconds(secs: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(secs).ok().map(Self)
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Reads the text [`Display`](fmt::Display) writes (an event's `occurred_at`); anything else
    /// is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        time::PrimitiveDateTime::parse(text, FORMAT)
            .ok()
            .map(|t| Self(t.assume_utc()))
    }

    /// Milliseconds from `earlier` to `self`, with microsecond precision; negative when `earlier`
    /// is later (a writer's clock ahead of the consumer's).
    pub fn millis_since(self, earlier: Self) -> f64 {
        (self.0 - earlier.0).whole_microseconds() as f64 / 1000.0
    }

    /// Saturates at years 0 and 9999 instead of panicking: a setting or an event may carry any
    /// number, and no arithmetic on it may take a function down (nor produce a time that the
    /// fixed-width format cannot write).
    pub fn plus_seconds(self, secs: i64) -> Self {
        const EARLIEST: OffsetDateTime = datetime!(0000-01-01 00:00 UTC);
        const LATEST: OffsetDateTime = datetime!(9999-12-31 23:59:59.999_999 UTC);
        let moved = self
            .0
            .checked_add(time::Duration::seconds(secs))
            .unwrap_or(if secs < 0 { EARLIEST } else { LATEST });
        Self(moved.clamp(EARLIEST, LATEST))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Formatting a UTC date between years 0 and 9999 with this description cannot fail.
        let text = self.0.format(FORMAT).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_timestamp_reads_back_and_differences_are_in_milliseconds() {
        let at = Timestamp::parse("2026-11-26T05:43:12.123456Z").unwrap();
        assert_eq!(at.to_string(), "2026-11-26T05:43:12.123456Z");
        let later = Timestamp::parse("2026-11-26T05:43:13.124456Z").unwrap();
        assert_eq!(later.millis_since(at), 1001.0);
        assert_eq!(at.millis_since(later), -1001.0);
        for bad in ["", "2026-11-26", "2026-11-26T05:43:12Z", "not a time"] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn time_arithmetic_saturates_instead_of_panicking() {
        let now = Timestamp::now();
        for secs in [i64::MAX, i64::MIN, 1_000_000_000_000, -1_000_000_000_000] {
            let moved = now.plus_seconds(secs);
            assert_eq!(moved > now, secs > 0, "{secs}");
            let _ = moved.unix_seconds();
            assert_eq!(
                moved.to_string().len(),
                now.to_string().len(),
                "{secs}: {moved}"
            );
        }
    }
}
