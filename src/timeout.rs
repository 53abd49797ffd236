//! Time-outs as the engine takes them from flags and files: never zero, never unbounded.

use std::time::Duration;

/// The longest connect or transfer time-out accepted (a day); longer values are cut to it.
pub const MAX_SECS: u64 = 86_400;

/// The most retries accepted: with the delay capped at a minute, about 20 minutes of
/// waiting on one host.
pub const MAX_RETRIES: u32 = 20;

/// A time-out in seconds as the engine uses it: 0 is one second (never "wait forever"),
/// and nothing is longer than [`MAX_SECS`].
pub fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs.clamp(1, MAX_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn time_outs_are_never_zero_nor_unbounded() {
        assert_eq!(secs(0), Duration::from_secs(1));
        assert_eq!(secs(7), Duration::from_secs(7));
        assert_eq!(secs(u64::MAX), Duration::from_secs(MAX_SECS));
        // Far in the future, but representable: no overflow when added to now.
        assert!(Instant::now().checked_add(secs(u64::MAX)).is_some());
    }
}
