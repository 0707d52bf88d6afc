//! Human-readable quantities: durations (`1h30m`, `1.5s`), sizes (`800KiB`, `200KB`)
//! and rates (`400/s`, `50/m`), parsed from and formatted for people.
//!
//! Parsing is exact where it can be: `1.5s` is 1.5 seconds to the nanosecond and
//! `1.5GiB` is 1.5 x 2^30 bytes, both computed with integers, never through `f64`.
//! These functions only reject text that is not a quantity (or is negative); whether
//! zero is acceptable is the caller's business.

use std::time::Duration;

use thiserror::Error;

/// Text that is not the quantity it was meant to be.
///
/// The message says what a valid value looks like; [`UnitError::hint`] lists the units.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnitError {
    #[error("expected a duration like `30s`, `1h30m` or `250ms`, found `{0}`")]
    Duration(String),
    #[error("expected a size like `800KiB`, `12MiB` or `200KB`, found `{0}`")]
    Size(String),
    #[error("expected a rate like `400/s` or `50/m`, found `{0}`")]
    Rate(String),
    #[error("{what} must not be negative, found `{input}`")]
    Negative { what: &'static str, input: String },
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl UnitError {
    /// The accepted units for the kind of quantity that failed to parse.
    pub fn hint(&self) -> &'static str {
        match self {
            UnitError::Duration(_) => DURATION_HINT,
            UnitError::Size(_) => SIZE_HINT,
            UnitError::Rate(_) => RATE_HINT,
            UnitError::Negative { .. } | UnitError::TooLarge(_) => {
                "use a value of zero or more that fits in 64 bits"
            }
        }
    }
}

/// Units accepted by [`parse_duration`].
pub const DURATION_HINT: &str =
    "units: ns, us, ms, s, m (or min), h, d; combine them (`1h30m`) or use decimals (`1.5s`)";
/// Units accepted by [`parse_size`].
pub const SIZE_HINT: &str = "units: B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000); a bare number is bytes";
/// Units accepted by [`parse_rate`].
pub const RATE_HINT: &str = "a number per time unit: `/s`, `/m` (or `/min`), `/h`";

/// A decimal number split into its integer digits and fractional digits, both exact.
#[derive(Debug, Clone, Copy)]
struct Decimal {
    int: u128,
    frac: u128,
    /// 10^(number of fractional digits).
    scale: u128,
}

impl Decimal {
    /// `self * mult`, rounded to the nearest integer; `None` on overflow.
    fn times(self, mult: u128) -> Option<u128> {
        let whole = self.int.checked_mul(mult)?;
        let part = self.frac.checked_mul(mult)?;
        whole.checked_add((part + self.scale / 2) / self.scale)
    }

    fn to_f64(self) -> f64 {
        self.int as f64 + self.frac as f64 / self.scale as f64
    }
}

/// Splits a leading unsigned decimal number (`12`, `1.5`, `.5`) off `s`.
fn split_number(s: &str) -> Option<(Decimal, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(end);
    let num: String = num.chars().filter(|&c| c != '_').collect();
    let (int_digits, frac_digits) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num.as_str(), ""),
    };
    if (int_digits.is_empty() && frac_digits.is_empty()) || frac_digits.contains('.') {
        return None;
    }
    // More digits than this cannot be represented exactly anyway.
    if int_digits.len() > 30 || frac_digits.len() > 18 {
        return None;
    }
    let int = if int_digits.is_empty() {
        0
    } else {
        int_digits.parse().ok()?
    };
    let frac = if frac_digits.is_empty() {
        0
    } else {
        frac_digits.parse().ok()?
    };
    let scale = 10u128.pow(frac_digits.len() as u32);
    Some((Decimal { int, frac, scale }, rest))
}

/// Strips a leading `-` (remembering it) and surrounding whitespace.
fn strip_sign(s: &str) -> (bool, &str) {
    let s = s.trim();
    match s.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, s.strip_prefix('+').unwrap_or(s).trim_start()),
    }
}

/// The unit names of [`parse_duration`]: the short ones, plus every spelling `humantime`
/// accepts (the grammar of the fault and probe tables before they used this one), so a
/// file written for either still parses. A month is 30.44 days and a year 365.25 days, as
/// in `humantime`.
fn duration_unit_nanos(unit: &str) -> Option<u128> {
    const SEC: u128 = 1_000_000_000;
    Some(match unit {
        "ns" | "nsec" | "nanos" => 1,
        "us" | "µs" | "usec" => 1_000,
        "ms" | "msec" | "millis" => 1_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => SEC,
        "m" | "min" | "mins" | "minute" | "minutes" => 60 * SEC,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600 * SEC,
        "d" | "day" | "days" => 86_400 * SEC,
        "w" | "wk" | "wks" | "week" | "weeks" => 7 * 86_400 * SEC,
        "M" | "month" | "months" => 2_630_016 * SEC,
        "y" | "year" | "years" => 31_557_600 * SEC,
        _ => return None,
    })
}

/// Parses a duration: one or more `<number><unit>` parts, e.g. `30s`, `1h30m`, `250ms`, `1.5s`,
/// `1h 30m`, `2 minutes`. This is the one duration grammar of every config file (profiles,
/// experiments, plan files: [`serde_duration`] reads it in serde structs).
///
/// A unit is required (`30` alone is ambiguous). Zero is accepted; negative is an error.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let bad = || UnitError::Duration(text.to_string());
    let (negative, mut rest) = strip_sign(text);
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let (number, after) = split_number(rest).ok_or_else(bad)?;
        // `30 s` as well as `30s`.
        let after = after.trim_start();
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(after.len());
        let unit = duration_unit_nanos(&after[..unit_end]).ok_or_else(bad)?;
        let part = number
            .times(unit)
            .ok_or_else(|| UnitError::TooLarge(text.to_string()))?;
        nanos = nanos
            .checked_add(part)
            .ok_or_else(|| UnitError::TooLarge(text.to_string()))?;
        rest = after[unit_end..].trim_start();
    }
    if negative && nanos > 0 {
        return Err(UnitError::Negative {
            what: "a duration",
            input: text.to_string(),
        });
    }
    let secs =
        u64::try_from(nanos / 1_000_000_000).map_err(|_| UnitError::TooLarge(text.to_string()))?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

fn size_unit_bytes(unit: &str) -> Option<u128> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    })
}

/// Parses a size in bytes: `512`, `512B`, `800KiB`, `1.5GiB`, `200KB` (KB/MB/GB = powers of 1000).
///
/// Units are case-insensitive; fractions are rounded to the nearest byte.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Size(text.to_string());
    let (negative, rest) = strip_sign(text);
    let (number, unit) = split_number(rest).ok_or_else(bad)?;
    let mult = size_unit_bytes(unit.trim()).ok_or_else(bad)?;
    let bytes = number
        .times(mult)
        .ok_or_else(|| UnitError::TooLarge(text.to_string()))?;
    if negative && bytes > 0 {
        return Err(UnitError::Negative {
            what: "a size",
            input: text.to_string(),
        });
    }
    u64::try_from(bytes).map_err(|_| UnitError::TooLarge(text.to_string()))
}

fn rate_unit_secs(unit: &str) -> Option<f64> {
    Some(match unit {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hr" | "hour" => 3600.0,
        _ => return None,
    })
}

/// Parses a rate into events per second: `400/s`, `1.5/s`, `50/m` (= `50/min`), `3600/h`, `0/s`.
pub fn parse_rate(text: &str) -> Result<f64, UnitError> {
    let bad = || UnitError::Rate(text.to_string());
    let (negative, rest) = strip_sign(text);
    let (count, per) = rest.split_once('/').ok_or_else(bad)?;
    let (number, tail) = split_number(count.trim_end()).ok_or_else(bad)?;
    if !tail.is_empty() {
        return Err(bad());
    }
    let secs = rate_unit_secs(per.trim()).ok_or_else(bad)?;
    let rate = number.to_f64() / secs;
    if negative && rate > 0.0 {
        return Err(UnitError::Negative {
            what: "a rate",
            input: text.to_string(),
        });
    }
    if !rate.is_finite() {
        return Err(UnitError::TooLarge(text.to_string()));
    }
    Ok(rate)
}

/// Formats a duration exactly and compactly: `1h30m`, `2m`, `1.5s`, `250ms`, `0s`.
///
/// [`parse_duration`] reads the result back to the same value.
pub fn format_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let hours = total / 3_600_000_000_000;
    let minutes = total / 60_000_000_000 % 60;
    let secs = total / 1_000_000_000 % 60;
    let sub = total % 1_000_000_000;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if secs > 0 {
        let frac = format!("{sub:09}");
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            out.push_str(&format!("{secs}s"));
        } else {
            out.push_str(&format!("{secs}.{frac}s"));
        }
    } else if sub > 0 {
        out.push_str(&format_sub_second(sub));
    }
    out
}

/// A non-zero sub-second remainder in the largest unit that keeps it exact-ish.
fn format_sub_second(nanos: u128) -> String {
    if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos >= 1_000_000 {
        let frac = format!("{:06}", nanos % 1_000_000);
        format!("{}.{}ms", nanos / 1_000_000, frac.trim_end_matches('0'))
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

/// Trims a fixed-precision decimal: `1.50` -> `1.5`, `2.00` -> `2`.
fn trim_decimal(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Formats a size for people with binary units and up to two decimals: `800KiB`, `1.5MiB`, `512B`.
///
/// Exact below 1 KiB and for whole multiples; otherwise within 0.5% of the value.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{}{}", trim_decimal(format!("{value:.2}")), UNITS[unit])
}

/// Formats a rate (per second) for people: `400/s`, `1.5/s`; rates below 1/s as per minute (`50/m`).
///
/// Within 0.5% of the value; [`parse_rate`] reads it back.
pub fn format_rate(per_sec: f64) -> String {
    if per_sec == 0.0 || !per_sec.is_finite() {
        return "0/s".to_string();
    }
    let (value, unit) = if per_sec >= 1.0 {
        (per_sec, "s")
    } else if per_sec * 60.0 >= 1.0 {
        (per_sec * 60.0, "m")
    } else {
        (per_sec * 3600.0, "h")
    };
    // About four significant digits, however small the value.
    let decimals = (3 - value.log10().floor() as i32).clamp(0, 15) as usize;
    format!("{}/{unit}", trim_decimal(format!("{value:.decimals$}")))
}

/// Serde adapter for a [`Duration`] written as text in the [`parse_duration`] grammar:
/// `#[serde(with = "crate::units::serde_duration")]`. Written back in `humantime`'s format
/// (`1m 30s`), which the grammar reads, so files written before stay byte-identical.
pub mod serde_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    /// The same for an `Option<Duration>` (`#[serde(default, with = "crate::units::serde_duration::option")]`).
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<std::borrow::Cow<str>>::deserialize(d)? {
                None => Ok(None),
                Some(text) => super::super::parse_duration(&text)
                    .map(Some)
                    .map_err(serde::de::Error::custom),
            }
        }

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.collect_str(&humantime::format_duration(*d)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every spelling `humantime` reads, and what it reads it as, is read the same here.
    #[test]
    fn reads_everything_humantime_reads() {
        for text in [
            "30s",
            "1.5s",
            "2m",
            "1h30m",
            "1h 30m",
            "250ms",
            "5 min",
            "2 minutes",
            "1hour",
            "3days",
            "1w",
            "2weeks",
            "1M",
            "1y",
            "10nsec",
            "7usec",
            "3msec",
            "1sec 500ms",
            "1m 30s",
            "12 secs",
            "90 seconds",
            "0s",
            "1d 2h 3m 4s 5ms 6us 7ns",
        ] {
            assert_eq!(
                parse_duration(text).ok(),
                humantime::parse_duration(text).ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn the_serde_adapter_reads_the_grammar_and_writes_humantime() {
        #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
        struct T {
            #[serde(with = "serde_duration")]
            a: Duration,
            #[serde(default, with = "serde_duration::option")]
            b: Option<Duration>,
        }
        let t: T = toml::from_str("a = \"1.5s\"\nb = \"1h 30m\"").unwrap();
        assert_eq!(
            t,
            T {
                a: Duration::from_millis(1500),
                b: Some(Duration::from_secs(5400))
            }
        );
        assert_eq!(toml::from_str::<T>("a = \"1s\"").unwrap().b, None);
        let err = toml::from_str::<T>("a = \"soon\"").unwrap_err();
        assert!(
            err.message().contains("expected a duration like `30s`"),
            "{err}"
        );
        assert_eq!(err.span(), Some(4..10));
        let back = toml::to_string(&t).unwrap();
        assert_eq!(back, "a = \"1s 500ms\"\nb = \"1h 30m\"\n");
    }

    #[test]
    fn durations_in_the_usual_spellings() {
        let cases = [
            ("30s", Duration::from_secs(30)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("250ms", Duration::from_millis(250)),
            ("1.5s", Duration::from_millis(1500)),
            ("0s", Duration::ZERO),
            ("1m 30s", Duration::from_secs(90)),
            ("2min", Duration::from_secs(120)),
            ("10us", Duration::from_micros(10)),
            (".5s", Duration::from_millis(500)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn durations_rejected_with_a_useful_message() {
        for text in ["", "30", "fast", "1.2.3s", "s", "5 parsecs", "1h-30m"] {
            let err = parse_duration(text).unwrap_err();
            assert!(
                err.to_string().contains("expected a duration like `30s`"),
                "{text}: {err}"
            );
        }
        assert!(matches!(
            parse_duration("-5s"),
            Err(UnitError::Negative { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999h"),
            Err(UnitError::TooLarge(_))
        ));
    }

    #[test]
    fn sizes_binary_decimal_and_bare() {
        let cases = [
            ("512", 512),
            ("512B", 512),
            ("800KiB", 800 * 1024),
            ("12MiB", 12 << 20),
            ("1.5GiB", 3 << 29),
            ("200KB", 200_000),
            ("1 MB", 1_000_000),
            ("4kib", 4096),
            ("0", 0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn sizes_rejected() {
        for text in ["big", "KiB", "12 furlongs", "1..5MiB", ""] {
            let err = parse_size(text).unwrap_err();
            assert!(
                err.to_string().contains("expected a size like `800KiB`"),
                "{text}: {err}"
            );
        }
        assert!(matches!(
            parse_size("-1KiB"),
            Err(UnitError::Negative { .. })
        ));
        assert!(matches!(
            parse_size("20000000TiB"),
            Err(UnitError::TooLarge(_))
        ));
    }

    #[test]
    fn rates_per_second_minute_hour() {
        let cases = [
            ("400/s", 400.0),
            ("50/m", 50.0 / 60.0),
            ("2000/s", 2000.0),
            ("0/s", 0.0),
            ("1.5/s", 1.5),
            ("400/min", 400.0 / 60.0),
            ("3600/h", 1.0),
            ("10 / s", 10.0),
        ];
        for (text, want) in cases {
            let got = parse_rate(text).unwrap();
            assert!((got - want).abs() < 1e-12, "{text}: {got} != {want}");
        }
    }

    #[test]
    fn rates_rejected_with_a_useful_message() {
        let err = parse_rate("fast").unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a rate like `400/s` or `50/m`, found `fast`"
        );
        for text in ["400", "400/fortnight", "/s", "4x/s"] {
            assert!(
                matches!(parse_rate(text), Err(UnitError::Rate(_))),
                "{text}"
            );
        }
        assert!(matches!(
            parse_rate("-3/s"),
            Err(UnitError::Negative { .. })
        ));
    }

    #[test]
    fn formatting_examples() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_size(800 * 1024), "800KiB");
        assert_eq!(format_size(3 << 19), "1.5MiB");
        assert_eq!(format_size(512), "512B");
        assert_eq!(format_rate(400.0), "400/s");
        assert_eq!(format_rate(1.5), "1.5/s");
        assert_eq!(format_rate(50.0 / 60.0), "50/m");
        assert_eq!(format_rate(0.0), "0/s");
    }

    proptest! {
        #[test]
        fn duration_round_trips_exactly(nanos in 0u64..=u64::MAX / 2) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn size_round_trips_within_half_a_percent(bytes in 0u64..(1u64 << 50)) {
            let back = parse_size(&format_size(bytes)).unwrap();
            let err = (back as f64 - bytes as f64).abs();
            prop_assert!(err <= bytes as f64 * 0.006, "{} -> {} -> {}", bytes, format_size(bytes), back);
        }

        #[test]
        fn rate_round_trips_within_half_a_percent(rate in 0.0f64..1e6) {
            let back = parse_rate(&format_rate(rate)).unwrap();
            prop_assert!((back - rate).abs() <= rate * 0.005 + 1e-9, "{} -> {} -> {}", rate, format_rate(rate), back);
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,20}") {
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
            let _ = parse_rate(&s);
        }
    }
}
