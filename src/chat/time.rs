//! RFC 3339 UTC timestamps with milliseconds (`2026-12-01T10:00:00.123Z`) from unix
//! milliseconds.
//!
//! Owns only the formatting: the caller reads its clock and passes milliseconds in. Civil
//! date from day number after Howard Hinnant's `civil_from_days` (proleptic Gregorian), no
//! chrono, no allocation: the text is written into a fixed 24-byte array.

/// Length of every timestamp: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub const TIMESTAMP_LEN: usize = 24;

/// The last instant with a four-digit year, 9999-12-31T23:59:59.999Z, in unix milliseconds.
/// Later inputs are written as this instant.
pub const MAX_UNIX_MS: u64 = 253_402_300_799_999;

const MS_PER_DAY: u64 = 86_400_000;

/// A formatted timestamp (always ASCII, always [`TIMESTAMP_LEN`] bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp([u8; TIMESTAMP_LEN]);

impl Timestamp {
    /// Formats `unix_ms` (milliseconds since 1970-01-01T00:00:00Z), clamped to
    /// [`MAX_UNIX_MS`].
    #[must_use]
    pub fn from_unix_ms(unix_ms: u64) -> Self {
        let mut buf = [0u8; TIMESTAMP_LEN];
        format_rfc3339_millis(unix_ms, &mut buf);
        Self(buf)
    }

    /// The text as bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; TIMESTAMP_LEN] {
        &self.0
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Every byte is an ASCII digit or one of `-T:.Z`, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// Writes `unix_ms` (clamped to [`MAX_UNIX_MS`]) as `YYYY-MM-DDTHH:MM:SS.mmmZ` into `out`.
pub fn format_rfc3339_millis(unix_ms: u64, out: &mut [u8; TIMESTAMP_LEN]) {
    let ms = unix_ms.min(MAX_UNIX_MS);
    let (year, month, day) = civil_from_days(ms / MS_PER_DAY);
    let in_day = ms % MS_PER_DAY;
    let (hour, minute, second, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    digits(&mut out[0..4], year);
    out[4] = b'-';
    digits(&mut out[5..7], month);
    out[7] = b'-';
    digits(&mut out[8..10], day);
    out[10] = b'T';
    digits(&mut out[11..13], hour);
    out[13] = b':';
    digits(&mut out[14..16], minute);
    out[16] = b':';
    digits(&mut out[17..19], second);
    out[19] = b'.';
    digits(&mut out[20..23], milli);
    out[23] = b'Z';
}

/// Writes the low `out.len()` decimal digits of `v`, zero-padded.
fn digits(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// (year, month 1..=12, day 1..=31) of the day `days` after 1970-01-01.
///
/// Hinnant's algorithm: shift the epoch to 0000-03-01 so the leap day ends the year, split
/// into 400-year eras of 146,097 days, then year of era, day of year, and a month from the
/// 153-day five-month cycle. Unsigned, since `days` is never before 1970.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ms: u64) -> String {
        Timestamp::from_unix_ms(ms).as_str().to_string()
    }

    #[test]
    fn known_instants() {
        assert_eq!(ts(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(ts(1), "1970-01-01T00:00:00.001Z");
        assert_eq!(ts(86_399_999), "1970-01-01T23:59:59.999Z");
        assert_eq!(ts(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(ts(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(ts(951_868_800_000), "2000-03-01T00:00:00.000Z");
        assert_eq!(ts(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
        assert_eq!(ts(1_798_797_600_123), "2027-01-01T10:00:00.123Z");
        assert_eq!(
            ts(1_796_083_200_000 + 36_000_123),
            "2026-12-01T10:00:00.123Z"
        );
        // 2100 is not a leap year: February 28 is followed by March 1.
        assert_eq!(ts(4_107_456_000_000), "2100-02-28T00:00:00.000Z");
        assert_eq!(ts(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(ts(253_402_214_400_000), "9999-12-31T00:00:00.000Z");
        assert_eq!(ts(MAX_UNIX_MS), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn beyond_year_9999_is_clamped() {
        assert_eq!(ts(MAX_UNIX_MS + 1), "9999-12-31T23:59:59.999Z");
        assert_eq!(ts(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    /// Days from civil date, the inverse algorithm, as an independent reference.
    fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y / 400;
        let yoe = y - era * 400;
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn is_leap(y: u64) -> bool {
        y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
    }

    #[test]
    fn every_day_is_the_next_calendar_day() {
        // Walk day by day from 1970 to 9999 against a plain calendar counter.
        let (mut y, mut m, mut d) = (1970, 1, 1);
        let month_len = |y, m| match m {
            2 if is_leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        for day in 0..=(MAX_UNIX_MS / MS_PER_DAY) {
            assert_eq!(civil_from_days(day), (y, m, d), "day {day}");
            assert_eq!(days_from_civil(y, m, d), day);
            d += 1;
            if d > month_len(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        assert_eq!((y, m, d), (10_000, 1, 1));
    }

    #[test]
    fn time_of_day_fields() {
        let t = Timestamp::from_unix_ms(days_from_civil(2026, 12, 1) * MS_PER_DAY + 45_296_789);
        assert_eq!(t.as_bytes(), b"2026-12-01T12:34:56.789Z");
    }
}
