//! Wall-clock time as run files, the ledger and the sandbox write it: milliseconds since the
//! Unix epoch. (Durations and the run's own timeline use `Instant`; this is only for stamps
//! shared with other processes.)

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as milliseconds since the Unix epoch (0 before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_epoch_milliseconds() {
        assert_eq!(unix_ms(UNIX_EPOCH), 0);
        assert_eq!(unix_ms(UNIX_EPOCH - std::time::Duration::from_secs(1)), 0);
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(unix_ms(t), 1_700_000_000_123);
        assert!(now_ms() > 1_700_000_000_000);
    }
}
