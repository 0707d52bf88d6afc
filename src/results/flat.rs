//! A fast scanner for the flat JSON objects of the ledger files (`accepted.jsonl`,
//! `completions.jsonl`: one object per line, scalar values only), used before serde.
//!
//! [`scan`] accepts only a strict subset of JSON: one object of scalar members on a line of
//! printable ASCII without a backslash (so keys and string values have no escapes), numbers
//! in JSON's grammar, `true`, `false`, `null`, and spaces around tokens; a line may end in
//! `\n` or `\r\n`. For anything else it returns `None` and the caller parses the line with
//! `serde_json`, which then decides (and words any error). So the fast path never accepts a
//! line serde would refuse; `tests` check it against serde.
//!
//! Speed: the line is checked once, in a branch-free pass the compiler vectorizes
//! (`plain`); after it a string ends at the next quote, with no check of each byte.
//! [`Picker`] remembers the layout of the last line it read (its keys, in order) and reads a
//! line of the same layout by comparing each `"key":` in place instead of scanning for it:
//! a ledger's lines all share one layout.

/// A member's value as the scanner saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'a> {
    /// A string without escapes (ASCII).
    Str(&'a str),
    /// A number, as written (valid JSON number syntax).
    Num(&'a [u8]),
    /// `true`, `false` or `null`.
    Literal,
}

impl Scalar<'_> {
    /// The value as a `u64`, when it is a plain non-negative integer that fits (what serde
    /// would deserialize into a `u64` field; `1e3` and `1.0` are not).
    pub fn as_u64(&self) -> Option<u64> {
        let Scalar::Num(digits) = self else {
            return None;
        };
        decimal(digits)
    }
}

/// `digits` (ASCII decimal digits only, at least one) as a `u64`; `None` for anything else
/// or on overflow. Leading zeros are accepted (the JSON grammar is checked elsewhere).
pub fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Calls `member(key, value)` for each member of the flat object `line`, in order; `None`
/// (possibly after some calls) when the line is not in the subset described above.
pub fn scan<'a>(line: &'a [u8], mut member: impl FnMut(&'a str, Scalar<'a>)) -> Option<()> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !plain(line) {
        return None;
    }
    let mut at = skip_ws(line, 0);
    if line.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_ws(line, at + 1);
    if line.get(at) == Some(&b'}') {
        return end(line, at + 1);
    }
    loop {
        let (key, next) = string(line, at)?;
        at = skip_ws(line, next);
        if line.get(at) != Some(&b':') {
            return None;
        }
        at = skip_ws(line, at + 1);
        let (value, next) = scalar(line, at)?;
        member(key, value);
        at = skip_ws(line, next);
        match line.get(at)? {
            b',' => at = skip_ws(line, at + 1),
            b'}' => return end(line, at + 1),
            _ => return None,
        }
    }
}

/// Picks the members named by `keys` out of flat lines ([`scan`]'s subset), reading a line
/// of the last accepted line's layout without scanning for its keys.
///
/// The layout fast path accepts a line only if it is printable ASCII without a backslash or
/// any whitespace, and is `{`, then for each remembered member its exact `"key":`, a scalar
/// as [`scan`] reads it, and `,` (`}` at the end of the line after the last): a subset of
/// what [`scan`] accepts, with the same members in the same order. Any other line goes
/// through [`scan`], whose layout (when it is accepted) is remembered instead.
#[derive(Debug)]
pub struct Picker<const N: usize> {
    keys: [&'static str; N],
    /// The remembered members' `"key":` bytes, one after the other.
    opens: Vec<u8>,
    /// Per remembered member: the length of its `"key":` and which of `keys` it is.
    members: Vec<(usize, Option<usize>)>,
}

impl<const N: usize> Picker<N> {
    pub fn new(keys: [&'static str; N]) -> Self {
        Picker {
            keys,
            opens: Vec::new(),
            members: Vec::new(),
        }
    }

    /// The values of `keys` in `line`, in the order of `keys` (`None` for an absent one).
    /// `None` when the line is not in [`scan`]'s subset or names one of `keys` twice.
    pub fn pick<'a>(&mut self, line: &'a [u8]) -> Option<[Option<Scalar<'a>>; N]> {
        if !self.members.is_empty()
            && let Some(found) = self.pick_in_layout(line)
        {
            return Some(found);
        }
        let mut found = [None; N];
        let mut twice = false;
        self.opens.clear();
        self.members.clear();
        let (keys, opens, members) = (&self.keys, &mut self.opens, &mut self.members);
        let scanned = scan(line, |key, value| {
            let index = keys.iter().position(|k| *k == key);
            if let Some(i) = index {
                twice |= found[i].replace(value).is_some();
            }
            let start = opens.len();
            opens.push(b'"');
            opens.extend_from_slice(key.as_bytes());
            opens.extend_from_slice(b"\":");
            members.push((opens.len() - start, index));
        });
        if scanned.is_none() || twice {
            self.members.clear();
            return None;
        }
        Some(found)
    }

    /// [`Picker::pick`] for a line of the remembered layout; `None` for any other line.
    #[inline(always)]
    fn pick_in_layout<'a>(&self, line: &'a [u8]) -> Option<[Option<Scalar<'a>>; N]> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if !plain(line) || line.first() != Some(&b'{') {
            return None;
        }
        let mut found = [None; N];
        let (mut at, mut open) = (1, 0);
        for (k, &(len, index)) in self.members.iter().enumerate() {
            if !same(line.get(at..at + len)?, &self.opens[open..open + len]) {
                return None;
            }
            open += len;
            let (value, next) = scalar(line, at + len)?;
            if let Some(i) = index {
                found[i] = Some(value);
            }
            let close = if k + 1 == self.members.len() {
                b'}'
            } else {
                b','
            };
            if *line.get(next)? != close {
                return None;
            }
            at = next + 1;
        }
        (at == line.len()).then_some(found)
    }
}

/// Whether every byte is printable ASCII (0x20-0x7e) and none is a backslash. No early exit,
/// so the loop vectorizes: a ledger line is checked in a few dozen instructions.
#[inline(always)]
fn plain(line: &[u8]) -> bool {
    let bad = line.iter().fold(0u8, |bad, &b| {
        bad | u8::from(b.wrapping_sub(0x20) >= 0x5f) | u8::from(b == b'\\')
    });
    bad == 0
}

/// Past the spaces from `at` (the only whitespace a [`plain`] line has).
#[inline(always)]
fn skip_ws(line: &[u8], mut at: usize) -> usize {
    while line.get(at) == Some(&b' ') {
        at += 1;
    }
    at
}

/// Only whitespace may follow the object.
fn end(line: &[u8], at: usize) -> Option<()> {
    (skip_ws(line, at) == line.len()).then_some(())
}

/// A string starting at `at` (its opening quote), in a [`plain`] line: it has no escapes, so
/// it ends at the next quote.
#[inline(always)]
fn string(line: &[u8], at: usize) -> Option<(&str, usize)> {
    if line.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let len = first_quote(&line[start..])?;
    let text = &line[start..start + len];
    // SAFETY: `scan` checked that every byte of the line is printable ASCII ([`plain`]),
    // which is UTF-8.
    let text = unsafe { std::str::from_utf8_unchecked(text) };
    Some((text, start + len + 1))
}

#[inline(always)]
fn scalar(line: &[u8], at: usize) -> Option<(Scalar<'_>, usize)> {
    match line.get(at)? {
        b'"' => string(line, at).map(|(s, next)| (Scalar::Str(s), next)),
        b't' | b'f' | b'n' => ["true", "false", "null"].into_iter().find_map(|word| {
            line[at..]
                .starts_with(word.as_bytes())
                .then_some((Scalar::Literal, at + word.len()))
        }),
        _ => {
            let end = number_end(line, at)?;
            Some((Scalar::Num(&line[at..end]), end))
        }
    }
}

/// Whether `a` and `b` are the same bytes, compared a word at a time in line: keys and id
/// prefixes are a few bytes long, shorter than a call to `memcmp` takes to set up.
#[inline(always)]
pub fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        return word(a, n - 8) == word(b, n - 8); // the last word, overlapping
    }
    if n >= 4 {
        let half =
            |x: &[u8], at: usize| u32::from_le_bytes(x[at..at + 4].try_into().expect("four"));
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// Eight bytes of `bytes` from `at`, little-endian (the first byte lowest).
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

/// The position of the first `"` in `bytes`. Eight bytes at a time: keys and ids are short
/// and of every length, and a byte-at-a-time loop mispredicted its exit on nearly every
/// string (a third of the scanner's time on a ledger); a vectorized search costs more to
/// set up than these strings take.
#[inline(always)]
fn first_quote(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while at + 8 <= bytes.len() {
        // A byte of `x` is zero where the byte is a quote. The lowest flagged byte is
        // exact (only bytes above a zero byte can be flagged falsely).
        let x = word(bytes, at) ^ (ONES * u64::from(b'"'));
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..].iter().position(|&b| b == b'"').map(|n| at + n)
}

/// How many ASCII digits `bytes` starts with, eight bytes at a time where it can.
#[inline(always)]
fn digit_run(bytes: &[u8]) -> usize {
    const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    let mut at = 0;
    while at + 8 <= bytes.len() {
        // `b ^ '0'` is 0..=9 for a digit. Any other byte either has a high nibble, or a low
        // nibble of 10-15 that adding 6 carries into the high nibble. A carry out of a byte
        // (0xfa-0xff) only comes from a byte flagged already and only reaches the bytes
        // above it: the lowest flagged byte is exact.
        let x = word(bytes, at) ^ 0x3030_3030_3030_3030;
        let other = (x | x.wrapping_add(0x0606_0606_0606_0606)) & HIGH_NIBBLES;
        if other != 0 {
            return at + (other.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// The end of the JSON number starting at `at`: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
#[inline(always)]
fn number_end(line: &[u8], mut at: usize) -> Option<usize> {
    let digits = |line: &[u8], from: usize| {
        let n = digit_run(&line[from..]);
        (n > 0).then_some(from + n)
    };
    if line.get(at) == Some(&b'-') {
        at += 1;
    }
    at = match line.get(at)? {
        b'0' => at + 1,
        b'1'..=b'9' => digits(line, at)?,
        _ => return None,
    };
    if line.get(at) == Some(&b'.') {
        at = digits(line, at + 1)?;
    }
    if matches!(line.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(line.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        at = digits(line, at)?;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The word-at-a-time searches and comparison agree with a byte at a time, at every
        /// length and alignment, whatever the bytes.
        #[test]
        fn word_searches_agree_with_bytes(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'0'), Just(b'9'), Just(b'/'), Just(b':'), any::<u8>()],
                0..40,
            ),
            digits in 0usize..24,
        ) {
            prop_assert_eq!(first_quote(&bytes), bytes.iter().position(|&b| b == b'"'));
            // Equal at every length; unequal wherever one byte differs, and in length.
            for n in 0..=bytes.len() {
                let copy = bytes[..n].to_vec(); // the same bytes elsewhere in memory
                prop_assert!(same(&bytes[..n], &copy));
                let longer = &bytes[..bytes.len().min(n + 1)];
                prop_assert_eq!(same(&bytes[..n], longer), n == bytes.len());
                for k in 0..n {
                    let mut other = bytes[..n].to_vec();
                    other[k] ^= 1 << (digits % 8);
                    prop_assert!(!same(&bytes[..n], &other));
                }
            }
            let mut number: Vec<u8> = (0..digits).map(|i| b'0' + (i % 10) as u8).collect();
            number.extend(&bytes);
            prop_assert_eq!(
                digit_run(&number),
                number.iter().take_while(|b| b.is_ascii_digit()).count()
            );
        }
    }

    fn members(line: &str) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        scan(line.as_bytes(), |k, v| {
            let v = match v {
                Scalar::Str(s) => format!("s:{s}"),
                Scalar::Num(n) => format!("n:{}", String::from_utf8_lossy(n)),
                Scalar::Literal => "lit".into(),
            };
            out.push((k.to_owned(), v));
        })
        .map(|()| out)
    }

    #[test]
    fn flat_objects_scan_and_everything_else_falls_back() {
        let got = members(r#" {"id":"r-0-5", "t_ms" : 17, "x":-1.5e3,"y":null} "#).unwrap();
        assert_eq!(
            got,
            [
                ("id".into(), "s:r-0-5".into()),
                ("t_ms".into(), "n:17".into()),
                ("x".into(), "n:-1.5e3".into()),
                ("y".into(), "lit".into()),
            ]
        );
        assert_eq!(members("{}\r\n"), Some(vec![]));
        assert_eq!(
            members("{\"id\":\"a\"}\n"),
            Some(vec![("id".into(), "s:a".into())])
        );
        for fallback in [
            r#"{"id":"a\"b"}"#,
            r#"{"id":"é"}"#,
            "{\"id\":\t1}",
            "{\"id\":1}\n\n",
            "{\"id\":\"a\x7f\"}",
            r#"{"id":{"nested":1}}"#,
            r#"{"id":[1]}"#,
            r#"{"id":01}"#,
            r#"{"id":1.}"#,
            r#"{"id":tru}"#,
            r#"{"id":1,}"#,
            r#"{"id":1} x"#,
            r#"{"id":1"#,
            r#"["id"]"#,
            "",
        ] {
            assert_eq!(members(fallback), None, "{fallback}");
        }
    }

    #[test]
    fn only_plain_integers_are_u64() {
        assert_eq!(
            Scalar::Num(b"1796227220720").as_u64(),
            Some(1_796_227_220_720)
        );
        assert_eq!(
            Scalar::Num(b"18446744073709551615").as_u64(),
            Some(u64::MAX)
        );
        assert_eq!(decimal(b"007"), Some(7));
        for not in [&b"1e3"[..], b"1.0", b"-1", b"18446744073709551616", b""] {
            assert_eq!(Scalar::Num(not).as_u64(), None);
        }
        assert_eq!(Scalar::Str("1").as_u64(), None);
    }

    /// Pieces of lines, valid and not, glued at random.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{", "}", "\"id\"", "\"t_ms\"", ":", ",", " ", "\"a-1\"", "\"\\n\"", "0", "12", "-3",
            "1.5", "2e9", "1e", "-", "true", "nul", "null", "[", "]", "\"é\"", "\t",
        ])
    }

    /// Objects of members built from the same pieces: mostly valid, sometimes not.
    fn object() -> impl Strategy<Value = String> {
        let value = prop::sample::select(vec![
            "\"a-1\"",
            "\"\"",
            "0",
            "12",
            "-3",
            "1.5",
            "2e9",
            "1E+2",
            "true",
            "false",
            "null",
            "1e",
            "01",
            "\"\\u0041\"",
            "{}",
            "[1]",
        ]);
        let key = prop::sample::select(vec!["\"id\"", "\"t_ms\"", "\"x y\"", "\"\""]);
        let ws = prop::sample::select(vec!["", " ", "\t", "\r\n"]);
        proptest::collection::vec((key, ws.clone(), value, ws), 0..5).prop_map(|members| {
            let members: Vec<String> = members
                .into_iter()
                .map(|(k, w1, v, w2)| format!("{w1}{k}{w2}:{w1}{v}{w2}"))
                .collect();
            format!("{{{}}}", members.join(","))
        })
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::collection::vec(piece(), 0..14).prop_map(|p| p.concat()),
            object(),
        ]
    }

    /// Objects without whitespace, of few keys: two of them often share a layout.
    fn compact() -> impl Strategy<Value = String> {
        let value = prop::sample::select(vec![
            "\"a-1\"", "\"\"", "7", "-3", "1.5", "null", "01", "{}",
        ]);
        let key = prop::sample::select(vec!["\"id\"", "\"t_ms\"", "\"x\""]);
        proptest::collection::vec((key, value), 0..4).prop_map(|members| {
            let members: Vec<String> = members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}\n", members.join(","))
        })
    }

    fn picked(picker: &mut Picker<2>, line: &str) -> Option<Vec<Option<String>>> {
        let found = picker.pick(line.as_bytes())?;
        Some(found.iter().map(|v| v.map(|v| format!("{v:?}"))).collect())
    }

    proptest! {
        /// A picker that remembers the layout of one line picks from the next exactly what a
        /// fresh one (the scanner alone) picks: for lines of the same layout, of another, and
        /// for the first line cut short, grown, or with a byte changed.
        #[test]
        fn a_remembered_layout_picks_what_a_fresh_scan_picks(
            first in compact(),
            other in prop_oneof![compact(), line()],
            edit in 0u8..4,
            at in any::<prop::sample::Index>(),
            piece in piece(),
        ) {
            let second = match edit {
                0 => other,
                1 => first[..at.index(first.len())].to_string(),
                2 => format!("{}{piece}", first.trim_end()),
                _ => {
                    let i = at.index(first.len());
                    format!("{}{piece}{}", &first[..i], &first[i + 1..])
                }
            };
            let mut warm = Picker::new(["id", "t_ms"]);
            let _ = picked(&mut warm, &first);
            let fresh = picked(&mut Picker::new(["id", "t_ms"]), &second);
            prop_assert_eq!(picked(&mut warm, &second), fresh);
        }

        /// Whatever the scanner accepts, serde accepts too, with the same members.
        #[test]
        fn the_scanner_never_accepts_what_serde_refuses(line in line()) {
            if let Some(scanned) = members(&line) {
                let parsed: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&line).expect("serde accepts what the scanner did");
                let last: std::collections::HashMap<_, _> = scanned.iter().cloned().collect();
                prop_assert_eq!(parsed.len(), last.len());
                for (key, value) in &parsed {
                    let expect = match value {
                        serde_json::Value::String(s) => format!("s:{s}"),
                        serde_json::Value::Null | serde_json::Value::Bool(_) => "lit".into(),
                        serde_json::Value::Number(_) => {
                            let raw = &last[key];
                            prop_assert!(raw.starts_with("n:"));
                            raw.clone()
                        }
                        other => panic!("scanner accepted a nested value {other}"),
                    };
                    prop_assert_eq!(&last[key], &expect);
                }
            }
        }
    }
}
