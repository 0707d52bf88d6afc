//! Request templates: paths, headers and event bodies with fields such as `{id}` or `{uuid}`.
//!
//! # Syntax
//!
//! A template is literal text with fields in braces. The rule is built so that JSON
//! needs no escaping:
//!
//! - a `{` **immediately followed by a letter or `_`** starts a field, which ends at the next
//!   `}`: `{id}`, `{rand_int:1:100}`. A field that is never closed (a newline, a `{` or the end
//!   of the text comes first) is an error, and so is an unknown field name;
//! - every other `{` is literal, so `{"id":"{id}"}` renders as `{"id":"42"}`: the outer `{` is
//!   followed by `"`, not a letter;
//! - `}` outside a field is literal, so nested JSON (`{"a":{"b":1}}`) is fine as is;
//! - to write a literal field-looking text, double the braces as in format strings:
//!   `{{` is a literal `{`, and a `}}` that closes an earlier `{{` is a literal `}`.
//!   `{{id}}` renders `{id}`. A `}}` with no `{{` before it is just two braces.
//!
//! # Fields
//!
//! | field | renders |
//! |---|---|
//! | `{id}` | the request's id (unique within the run) |
//! | `{seq}` | the request's sequence number within its stream, from 0 |
//! | `{stream}` | the stream's name |
//! | `{now_ms}` | the intended send time, Unix milliseconds |
//! | `{uuid}` | a random UUID v4 |
//! | `{rand_int:LO:HI}` | a random integer in `LO..=HI` |
//! | `{rand_float:LO:HI}` | a random number in `LO..HI` |
//! | `{rand_hex:N}` | `N` random hex digits (1 to 1024) |
//! | `{rand_choice:a\|b\|c}` | one of the `\|`-separated choices |
//!
//! Random fields draw from the generator passed to [`Template::render`], so a seeded run
//! renders the same bodies every time.

use std::io::Write as _;

use thiserror::Error;

use crate::config::diag::closest_name;

/// The names of every field, as written between braces.
pub const FIELD_NAMES: [&str; 9] = [
    "id",
    "seq",
    "stream",
    "now_ms",
    "uuid",
    "rand_int",
    "rand_float",
    "rand_hex",
    "rand_choice",
];

/// The longest `{rand_hex:N}`.
const MAX_HEX: usize = 1024;

/// A template that failed to parse; `offset` is the byte offset in the template text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// The per-request values a template can refer to.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub id: &'a str,
    pub seq: u64,
    pub stream: &'a str,
    pub now_ms: u64,
}

/// A parsed template, ready to render many times without re-parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Field(Field),
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Id,
    Seq,
    Stream,
    NowMs,
    Uuid,
    RandInt { lo: i64, hi: i64 },
    RandFloat { lo: f64, hi: f64 },
    RandHex(usize),
    RandChoice(Vec<String>),
}

impl Template {
    /// Parses template text; see the module docs for the syntax.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut open_escapes = 0usize;
        let mut i = 0;
        while let Some(c) = text[i..].chars().next() {
            let rest = &text[i..];
            if rest.starts_with("{{") {
                literal.push('{');
                open_escapes += 1;
                i += 2;
            } else if rest.starts_with("}}") && open_escapes > 0 {
                literal.push('}');
                open_escapes -= 1;
                i += 2;
            } else if c == '{'
                && rest[1..].starts_with(|n: char| n.is_ascii_alphabetic() || n == '_')
            {
                let close = field_end(text, i)?;
                let field = parse_field(&text[i + 1..close], i + 1)?;
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Field(field));
                i = close + 1;
            } else {
                literal.push(c);
                i += c.len_utf8();
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template {
            source: text.to_string(),
            segments,
        })
    }

    /// A template that renders `text` exactly, braces and all.
    pub fn literal(text: &str) -> Template {
        let segments = if text.is_empty() {
            Vec::new()
        } else {
            vec![Segment::Literal(text.to_string())]
        };
        Template {
            source: escape(text),
            segments,
        }
    }

    /// The template text as written (for a [`Template::literal`], its escaped spelling).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether it renders the `{id}` field.
    pub fn uses_id(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Field(Field::Id)))
    }

    /// True when the template has no fields, so every render is the same.
    pub fn is_static(&self) -> bool {
        self.as_static().is_some()
    }

    /// The rendered text when the template has no fields.
    pub fn as_static(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [] => Some(""),
            [Segment::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// Appends the rendered template to `out`; allocates nothing beyond `out`'s growth.
    pub fn render(&self, fields: &Fields, rng: &mut impl rand::Rng, out: &mut Vec<u8>) {
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Segment::Field(field) => render_field(field, fields, rng, out),
            }
        }
    }

    /// Renders into a fresh `String` (convenient in tests and dry runs).
    pub fn render_to_string(&self, fields: &Fields, rng: &mut impl rand::Rng) -> String {
        let mut out = Vec::new();
        self.render(fields, rng, &mut out);
        // Literals come from a &str and fields write ASCII or caller-supplied &str.
        String::from_utf8(out).expect("templates render UTF-8")
    }
}

/// Escapes `text` so that [`Template::parse`] reads it back as exactly `text`, no fields.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open_escapes = 0usize;
    for c in text.chars() {
        match c {
            '{' => {
                out.push_str("{{");
                open_escapes += 1;
            }
            '}' if open_escapes > 0 => {
                out.push_str("}}");
                open_escapes -= 1;
            }
            _ => out.push(c),
        }
    }
    out
}

/// The byte index of the `}` closing the field that opens at `open`.
fn field_end(text: &str, open: usize) -> Result<usize, TemplateError> {
    let unclosed = || TemplateError {
        offset: open,
        message: "unclosed `{`: a field like `{id}` needs its `}` (write `{{` for a literal `{`)"
            .to_string(),
    };
    let body = &text[open + 1..];
    let stop = body.find(['}', '{', '\n']).ok_or_else(unclosed)?;
    if body.as_bytes()[stop] != b'}' {
        return Err(unclosed());
    }
    Ok(open + 1 + stop)
}

/// Parses the text between the braces of a field; `offset` is where that text starts.
fn parse_field(inner: &str, offset: usize) -> Result<Field, TemplateError> {
    let err = |message: String| TemplateError { offset, message };
    let (name, args) = match inner.split_once(':') {
        Some((name, args)) => (name, Some(args)),
        None => (inner, None),
    };
    let no_args = |field: Field| match args {
        None => Ok(field),
        Some(_) => Err(err(format!("`{{{name}}}` takes no arguments"))),
    };
    match name {
        "id" => no_args(Field::Id),
        "seq" => no_args(Field::Seq),
        "stream" => no_args(Field::Stream),
        "now_ms" => no_args(Field::NowMs),
        "uuid" => no_args(Field::Uuid),
        "rand_int" => parse_rand_int(args).map_err(err),
        "rand_float" => parse_rand_float(args).map_err(err),
        "rand_hex" => parse_rand_hex(args).map_err(err),
        "rand_choice" => parse_rand_choice(args).map_err(err),
        _ => Err(err(unknown_field_message(name))),
    }
}

fn unknown_field_message(name: &str) -> String {
    let mut message = format!("unknown template field `{{{name}}}`");
    match closest_name(name, FIELD_NAMES) {
        Some(near) => message.push_str(&format!(" (did you mean `{{{near}}}`?)")),
        None => message.push_str(&format!(
            " (known fields: {}; write `{{{{` for a literal `{{`)",
            FIELD_NAMES.map(|f| format!("`{f}`")).join(", ")
        )),
    }
    message
}

/// Splits `LO:HI`, both parsed with `parse`.
fn two_bounds<T: std::str::FromStr + PartialOrd>(
    args: Option<&str>,
    field: &str,
) -> Result<(T, T), String> {
    let usage = || format!("`{{{field}}}` needs bounds, like `{{{field}:1:100}}`");
    let (lo, hi) = args.and_then(|a| a.split_once(':')).ok_or_else(usage)?;
    let lo: T = lo.trim().parse().map_err(|_| usage())?;
    let hi: T = hi.trim().parse().map_err(|_| usage())?;
    if lo > hi {
        return Err(format!(
            "`{{{field}}}`: the low bound is above the high bound"
        ));
    }
    Ok((lo, hi))
}

fn parse_rand_int(args: Option<&str>) -> Result<Field, String> {
    let (lo, hi) = two_bounds::<i64>(args, "rand_int")?;
    Ok(Field::RandInt { lo, hi })
}

fn parse_rand_float(args: Option<&str>) -> Result<Field, String> {
    let (lo, hi) = two_bounds::<f64>(args, "rand_float")?;
    if !(lo.is_finite() && hi.is_finite()) {
        return Err("`{rand_float}` bounds must be finite numbers".to_string());
    }
    Ok(Field::RandFloat { lo, hi })
}

fn parse_rand_hex(args: Option<&str>) -> Result<Field, String> {
    let usage = || {
        format!("`{{rand_hex}}` needs a digit count from 1 to {MAX_HEX}, like `{{rand_hex:16}}`")
    };
    let n: usize = args.and_then(|a| a.trim().parse().ok()).ok_or_else(usage)?;
    if n == 0 || n > MAX_HEX {
        return Err(usage());
    }
    Ok(Field::RandHex(n))
}

fn parse_rand_choice(args: Option<&str>) -> Result<Field, String> {
    let choices: Vec<String> = match args {
        Some(a) if !a.is_empty() => a.split('|').map(str::to_string).collect(),
        _ => {
            return Err(
                "`{rand_choice}` needs choices, like `{rand_choice:red|green|blue}`".to_string(),
            );
        }
    };
    Ok(Field::RandChoice(choices))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn render_field(field: &Field, fields: &Fields, rng: &mut impl rand::Rng, out: &mut Vec<u8>) {
    // Writing to a Vec<u8> cannot fail.
    match field {
        Field::Id => out.extend_from_slice(fields.id.as_bytes()),
        Field::Seq => write!(out, "{}", fields.seq).expect("write to Vec"),
        Field::Stream => out.extend_from_slice(fields.stream.as_bytes()),
        Field::NowMs => write!(out, "{}", fields.now_ms).expect("write to Vec"),
        Field::Uuid => render_uuid(rng.random(), out),
        Field::RandInt { lo, hi } => {
            write!(out, "{}", rng.random_range(*lo..=*hi)).expect("write to Vec")
        }
        Field::RandFloat { lo, hi } => {
            let x = lo + (hi - lo) * rng.random::<f64>();
            write!(out, "{x}").expect("write to Vec")
        }
        Field::RandHex(n) => render_hex(*n, rng, out),
        Field::RandChoice(choices) => {
            out.extend_from_slice(choices[rng.random_range(0..choices.len())].as_bytes())
        }
    }
}

/// A version 4, variant 1 UUID in its 8-4-4-4-12 spelling.
fn render_uuid(bits: u128, out: &mut Vec<u8>) {
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push(b'-');
        }
        out.push(HEX[((bits >> (124 - 4 * i)) & 0xf) as usize]);
    }
}

fn render_hex(n: usize, rng: &mut impl rand::Rng, out: &mut Vec<u8>) {
    let mut left = n;
    while left > 0 {
        let word: u64 = rng.random();
        for k in 0..left.min(16) {
            out.push(HEX[((word >> (4 * k)) & 0xf) as usize]);
        }
        left = left.saturating_sub(16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const FIELDS: Fields<'static> = Fields {
        id: "42",
        seq: 7,
        stream: "clicks",
        now_ms: 1_700_000_000_000,
    };

    fn render(text: &str) -> String {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        Template::parse(text)
            .unwrap()
            .render_to_string(&FIELDS, &mut rng)
    }

    #[test]
    fn plain_fields() {
        assert_eq!(
            render("/upload/{id}?s={seq}&n={stream}&t={now_ms}"),
            "/upload/42?s=7&n=clicks&t=1700000000000"
        );
    }

    #[test]
    fn json_needs_no_escaping() {
        let text =
            r#"{"id":"{id}","detail":{"seq":{seq},"tags":["a","b"],"nested":{"x":{"y":1}}}}"#;
        let want = r#"{"id":"42","detail":{"seq":7,"tags":["a","b"],"nested":{"x":{"y":1}}}}"#;
        assert_eq!(render(text), want);
        let rendered = render(
            r#"{"user":"u{rand_int:1:9}","price":{rand_float:1:2},"k":"{rand_choice:a|b}"}"#,
        );
        let value: serde_json::Value = serde_json::from_str(&rendered).unwrap();
        assert!(value["price"].as_f64().is_some(), "{rendered}");
    }

    #[test]
    fn multiline_json_with_whitespace_after_brace() {
        let text = "{\n  \"id\": \"{id}\",\n  \"when\": {now_ms}\n}\n";
        assert_eq!(
            render(text),
            "{\n  \"id\": \"42\",\n  \"when\": 1700000000000\n}\n"
        );
    }

    #[test]
    fn doubled_braces_escape_a_field() {
        assert_eq!(render("{{id}} is {id}"), "{id} is 42");
        assert_eq!(render("a}}b"), "a}}b");
        assert_eq!(render("{{"), "{");
    }

    #[test]
    fn random_fields_have_the_right_shape() {
        let out = render("{uuid} {rand_hex:20} {rand_int:5:5} {rand_choice:only}");
        let parts: Vec<&str> = out.split(' ').collect();
        let uuid = parts[0];
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{uuid}");
        assert_eq!(parts[1].len(), 20);
        assert!(parts[1].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(&parts[2..], ["5", "only"]);
    }

    #[test]
    fn same_seed_same_render() {
        assert_eq!(
            render("{uuid}{rand_float:0:1}"),
            render("{uuid}{rand_float:0:1}")
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        let err = Template::parse("/u/{idd}").unwrap_err();
        assert_eq!(err.offset, 4);
        assert!(
            err.message
                .contains("unknown template field `{idd}` (did you mean `{id}`?)"),
            "{}",
            err.message
        );
        let err = Template::parse(r#"{"a":"{id"#).unwrap_err();
        assert_eq!(err.offset, 6);
        assert!(err.message.starts_with("unclosed `{`"));
        let err = Template::parse("{id\n}").unwrap_err();
        assert!(err.message.starts_with("unclosed `{`"));
        assert!(
            Template::parse("{rand_int:9:1}")
                .unwrap_err()
                .message
                .contains("low bound")
        );
        assert!(Template::parse("{rand_hex:0}").is_err());
        assert!(Template::parse("{rand_choice:}").is_err());
        assert!(
            Template::parse("{id:3}")
                .unwrap_err()
                .message
                .contains("no arguments")
        );
        assert!(Template::parse("{rand_float:0:inf}").is_err());
    }

    #[test]
    fn static_templates() {
        assert_eq!(
            Template::parse("/events").unwrap().as_static(),
            Some("/events")
        );
        assert_eq!(Template::parse("").unwrap().as_static(), Some(""));
        assert!(!Template::parse("/u/{id}").unwrap().is_static());
        assert_eq!(Template::literal("{id}").as_static(), Some("{id}"));
    }

    proptest! {
        #[test]
        fn text_without_open_braces_renders_itself(text in "[^{]{0,40}") {
            prop_assert_eq!(render(&text), text);
        }

        #[test]
        fn escaped_text_renders_itself(text in "\\PC{0,40}") {
            prop_assert_eq!(render(&escape(&text)), text.clone());
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            prop_assert_eq!(Template::literal(&text).render_to_string(&FIELDS, &mut rng), text);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = Template::parse(&text);
        }
    }
}
