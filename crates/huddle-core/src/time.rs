//! Timestamps: milliseconds since the Unix epoch, rendered like JavaScript's
//! `Date.toISOString()` (`2026-11-22T00:20:27.123Z`), which is what join.cloud clients parse.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub fn rfc3339(&self) -> String {
        self.to_string()
    }

    /// Year, month, day, hour, minute, second, millisecond (UTC).
    fn parts(&self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let ms = self.0.rem_euclid(1000) as u32;
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, rem / 3600, (rem / 60) % 60, rem % 60, ms)
    }
}

/// Every message is rendered with its timestamp, so the common case (years 0–9999) is
/// written digit by digit: the formatter's padding cost several times as much. Other
/// years go through the formatter (a sign, more digits).
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d, h, min, s, ms) = self.parts();
        let Ok(y @ 0..=9999) = u32::try_from(y) else {
            return write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z");
        };
        let mut out = *b"0000-00-00T00:00:00.000Z";
        for (at, width, mut n) in [
            (0, 4, y),
            (5, 2, m),
            (8, 2, d),
            (11, 2, h),
            (14, 2, min),
            (17, 2, s),
            (20, 3, ms),
        ] {
            for digit in out[at..at + width].iter_mut().rev() {
                *digit = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digit-by-digit rendering gives what the padded format gives, at the edges of
    /// its range and across far years (those outside it are formatted).
    #[test]
    fn digits_match_the_padded_format() {
        let edges = [
            -62_167_219_200_001, // the last moment of year -1
            -62_167_219_200_000, // 0000-01-01T00:00:00.000Z
            -62_135_596_800_001, // the last moment of year 0
            -1,
            253_402_300_799_999, // the last moment of year 9999
            253_402_300_800_000, // 10000-01-01
        ];
        let mut t: i64 = -100_000_000_000_000;
        let mut samples = edges.to_vec();
        while t < 300_000_000_000_000 {
            samples.push(t);
            t += 7_919_999_999_977;
        }
        for ms in samples {
            let (y, m, d, h, min, s, milli) = Timestamp(ms).parts();
            let padded = format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z");
            assert_eq!(Timestamp(ms).rfc3339(), padded, "{ms}");
        }
        assert_eq!(
            Timestamp(-62_167_219_200_000).rfc3339(),
            "0000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp(253_402_300_799_999).rfc3339(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn renders_like_to_iso_string() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        // 2026-11-22T00:20:27.123Z
        assert_eq!(
            Timestamp(1_795_306_827_123).to_string(),
            "2026-11-22T00:20:27.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
