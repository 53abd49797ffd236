//! The build's clock. Every timestamp written into an archive or ISO comes from one epoch:
//! `SOURCE_DATE_EPOCH` when set (the reproducible-builds convention), else a fallback the
//! caller chooses. Also the calendar arithmetic for Cosmic date versions and DOS/ISO stamps.

use anyhow::{bail, Context, Result};

/// Seconds since 1970 from `SOURCE_DATE_EPOCH`, if it is set.
pub fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => {
            let secs: i64 = v.trim().parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970")
            })?;
            if !(0..=253_402_300_799).contains(&secs) {
                bail!("SOURCE_DATE_EPOCH={v} is out of range (0 to year 9999)");
            }
            Ok(Some(secs))
        }
        _ => Ok(None),
    }
}

/// Now, in seconds since 1970.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A UTC calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Calendar time of a Unix timestamp (proleptic Gregorian, UTC).
pub fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
    }
}

/// `YYYYMMDDhhmmss00`, the form xorriso takes for the volume UUID date.
pub fn iso_volume_stamp(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}00",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// A zip entry's timestamp for `secs` (clamped into DOS time, see [`dos_civil`]).
pub fn zip_datetime(secs: i64) -> Result<zip::DateTime, zip::result::DateTimeRangeError> {
    let c = dos_civil(secs);
    zip::DateTime::from_date_and_time(
        c.year as u16,
        c.month as u8,
        c.day as u8,
        c.hour as u8,
        c.minute as u8,
        c.second as u8,
    )
}

/// Zip's DOS date and time cannot go before 1980 or past 2107; clamp into that range.
pub fn dos_civil(secs: i64) -> Civil {
    const MIN: i64 = 315_532_800; // 1980-01-01
    const MAX: i64 = 4_354_819_199; // 2107-12-31 23:59:59
    civil(secs.clamp(MIN, MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_matches_known_dates() {
        let all = |c: Civil| (c.year, c.month, c.day, c.hour, c.minute, c.second);
        assert_eq!(all(civil(0)), (1970, 1, 1, 0, 0, 0));
        // 2016-04-03 19:51:18 UTC, the day of the Cosmic README's screenshot.
        assert_eq!(all(civil(1_459_713_078)), (2016, 4, 3, 19, 51, 18));
        let leap = civil(951_782_400); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    #[test]
    fn volume_stamp_is_padded() {
        assert_eq!(iso_volume_stamp(1_700_000_000), "2023111422132000");
    }

    #[test]
    fn dos_dates_are_clamped() {
        assert_eq!(dos_civil(0).year, 1980);
        assert_eq!(dos_civil(i64::MAX / 2).year, 2107);
    }
}
