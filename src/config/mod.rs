//! Config files: traffic profiles now, experiments and sandbox configs later.
//!
//! Every file goes through the same two passes, so that a user sees *all* their mistakes at once:
//!
//! 1. **structural** ([`parse_toml`]): TOML -> raw serde structs (`deny_unknown_fields`, leaves
//!    wrapped in `toml::Spanned`). serde stops at its first error, so an unknown field is recorded
//!    (with the closest valid name as a hint), blanked out of a copy of the text, and the text is
//!    parsed again. Any other error (syntax, wrong type) is reported and ends this pass.
//! 2. **semantic** (per format, e.g. [`profile`]): raw -> validated plan, recording every error.
//!
//! Before both, [`vars`] expands `${env:NAME}` in string values. Arrays of tables whose
//! shape depends on a key (`[[fault]]` by `type`) are read as [`RawTable`]s, then each table
//! on its own with [`parse_table`] (same spans, the rest of the text blanked), so that every
//! table's errors are reported at its keys and values.
//!
//! [`diag`] renders the result rustc-style with file:line:col.

pub mod diag;
pub mod profile;
pub mod vars;

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

use diag::{Diagnostic, Diagnostics, name_hint};

/// How many unknown fields one file may report before we stop re-parsing it.
const MAX_UNKNOWN_FIELDS: usize = 50;

/// Reads a config file; an I/O or encoding error becomes a diagnostic naming the file.
pub fn read_config(path: &Path) -> Result<String, Diagnostics> {
    std::fs::read_to_string(path).map_err(|err| {
        Diagnostics::single(Diagnostic::whole_file(
            path,
            format!("cannot read {}: {err}", path.display()),
        ))
    })
}

/// The structural pass: deserializes `text` into `T`, reporting every unknown field.
///
/// Returns the value when the text (minus its unknown fields) deserialized, and the
/// diagnostics found on the way. Spans in the value and the diagnostics refer to `text`.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> (Option<T>, Vec<Diagnostic>) {
    let tree: Option<Spanned<Loose>> = toml::from_str(text).ok();
    let mut work = text.to_string();
    let mut diagnostics = Vec::new();
    for _ in 0..MAX_UNKNOWN_FIELDS {
        let err = match toml::from_str::<T>(&work) {
            Ok(value) => return (Some(value), diagnostics),
            Err(err) => err,
        };
        let span = err.span().unwrap_or(0..0);
        let Some((name, expected)) = parse_unknown_field(err.message()) else {
            diagnostics.push(other_error(text, path, span, err.message(), tree.as_ref()));
            return (None, diagnostics);
        };
        let place = tree
            .as_ref()
            .and_then(|t| describe_key(t, &span))
            .unwrap_or_default();
        let mut diagnostic = Diagnostic::at(
            path,
            text,
            span.clone(),
            format!("unknown field `{name}`{place}"),
        );
        let candidates: Vec<&str> = expected.iter().map(String::as_str).collect();
        diagnostic = diagnostic.with_hint(if candidates.is_empty() {
            "this table takes no fields".to_string()
        } else {
            name_hint(&name, &candidates)
        });
        diagnostics.push(diagnostic);
        if !blank_entry(&mut work, span) {
            return (None, diagnostics);
        }
    }
    diagnostics.push(Diagnostic::whole_file(
        path,
        format!(
            "stopped after {MAX_UNKNOWN_FIELDS} unknown fields; is this the right kind of file?"
        ),
    ));
    (None, diagnostics)
}

/// One table of an array of tables (`[[fault]]`, `[[promise]]`) as written: its entries
/// with the spans of their keys and values. Reading it never fails, so that one bad table
/// does not hide the errors of the others: each is then read on its own with
/// [`parse_table`], every error at its key or value.
#[derive(Debug, Clone, Default)]
pub struct RawTable {
    /// `(key, value)` pairs.
    pub entries: Vec<(Spanned<String>, Spanned<toml::Value>)>,
}

impl RawTable {
    /// The entry for `key`.
    pub fn get(&self, key: &str) -> Option<&(Spanned<String>, Spanned<toml::Value>)> {
        self.entries.iter().find(|(k, _)| k.get_ref() == key)
    }

    /// The string value of `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|(_, v)| v.get_ref().as_str())
    }
}

impl<'de> Deserialize<'de> for RawTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTable;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTable, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(RawTable { entries })
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// Reads one table of the array `array` (its header at `header`, e.g. `[[fault]]`) as a
/// `T`, keeping only the entries for which `keep(key)` holds: the structural pass on that
/// table alone, every unknown key reported, spans those of `text`. `label` names the table
/// in messages (`[[fault]] "kill-web"`).
pub fn parse_table<T: DeserializeOwned>(
    text: &str,
    path: &Path,
    array: &str,
    header: Range<usize>,
    table: &RawTable,
    label: &str,
    keep: &dyn Fn(&str) -> bool,
) -> (Option<T>, Vec<Diagnostic>) {
    let Some(isolated) = isolate(text, array, header.clone(), table, keep) else {
        // An inline table (`fault = [{ ... }]`): read from its values, errors at the table.
        let value = toml::Value::Table(
            table
                .entries
                .iter()
                .filter(|(k, _)| keep(k.get_ref()))
                .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
                .collect(),
        );
        return match T::deserialize(value) {
            Ok(v) => (Some(v), vec![]),
            Err(e) => {
                let message = e.to_string().replace('\n', " ");
                (
                    None,
                    vec![Diagnostic::at(
                        path,
                        text,
                        header,
                        format!("{label}: {message}"),
                    )],
                )
            }
        };
    };
    let (value, diagnostics) =
        parse_toml::<std::collections::BTreeMap<String, Vec<T>>>(&isolated, path);
    let lines: Vec<&str> = text.lines().collect();
    let here = format!("{array}[0]");
    let diagnostics = diagnostics
        .into_iter()
        .map(|mut d| {
            if d.line > 0
                && let Some(l) = lines.get(d.line - 1)
            {
                d.source_line = l.trim_end_matches('\r').to_string();
            }
            d.message = match d.message.strip_prefix("missing field `") {
                Some(rest) => format!(
                    "{label} needs `{}`",
                    rest.split('`').next().unwrap_or_default()
                ),
                None => d.message.replace(&here, label),
            };
            d
        })
        .collect();
    let value = value
        .and_then(|mut m| m.remove(array))
        .and_then(|mut v| v.pop());
    (value, diagnostics)
}

/// `text` with everything but the table at `header` (and, of it, the kept entries)
/// blanked; `None` for an inline table.
fn isolate(
    text: &str,
    array: &str,
    header: Range<usize>,
    table: &RawTable,
    keep: &dyn Fn(&str) -> bool,
) -> Option<String> {
    if !text.get(header.clone())?.starts_with("[[") {
        return None;
    }
    let start = text[..header.start].rfind('\n').map_or(0, |i| i + 1);
    // The section: the header's line up to the next header that is not one of its sub-tables.
    let mut end = text.len();
    let mut offset = text[start..]
        .find('\n')
        .map_or(text.len(), |i| start + i + 1);
    while offset < text.len() {
        let line = text[offset..].trim_start();
        let sub = [format!("[{array}."), format!("[[{array}.")];
        if line.starts_with('[') && !sub.iter().any(|p| line.starts_with(p.as_str())) {
            end = offset;
            break;
        }
        offset = text[offset..]
            .find('\n')
            .map_or(text.len(), |i| offset + i + 1);
    }
    let mut out: String = text
        .char_indices()
        .map(|(i, c)| {
            if (start..end).contains(&i) || c == '\n' || c == '\r' {
                c.to_string()
            } else {
                " ".repeat(c.len_utf8())
            }
        })
        .collect();
    for (k, _) in &table.entries {
        if !keep(k.get_ref()) && (start..end).contains(&k.span().start) {
            blank_entry(&mut out, k.span());
        }
    }
    Some(out)
}

/// A serde error other than an unknown field, made readable.
fn other_error(
    text: &str,
    path: &Path,
    span: Range<usize>,
    message: &str,
    tree: Option<&Spanned<Loose>>,
) -> Diagnostic {
    let found = tree.and_then(|t| find_entry(t.get_ref(), &|_, v| v.span() == span));
    if let (Some((parents, key)), Some(readable)) = (&found, wrong_type(message)) {
        let place = if parents.is_empty() {
            String::new()
        } else {
            format!(" (in {})", parents.join("."))
        };
        return Diagnostic::at(path, text, span, format!("`{key}` {readable}{place}"));
    }
    let message = readable_type_error(message);
    let place = tree
        .and_then(|t| describe_value(t, &span))
        .unwrap_or_default();
    Diagnostic::at(path, text, span, format!("{message}{place}"))
}

/// `invalid type: string "abc", expected i32` -> `must be a whole number, got the string "abc"`.
pub(crate) fn wrong_type(message: &str) -> Option<String> {
    let rest = message.lines().next()?.strip_prefix("invalid type: ")?;
    let (got, expected) = rest.rsplit_once(", expected ")?;
    let expected = match expected.trim() {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".to_string(),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a boolean" => "`true` or `false`".to_string(),
        "a string or number" => "a string like `30s` or a number".to_string(),
        "a sequence" => "an array `[...]`".to_string(),
        "a map" => "a table `{ ... }`".to_string(),
        other => other.to_string(),
    };
    let got = if let Some(s) = got.strip_prefix("string ") {
        format!("the string {s}")
    } else if let Some(n) = got
        .strip_prefix("integer ")
        .or_else(|| got.strip_prefix("floating point "))
    {
        format!("the number {}", n.trim_matches('`'))
    } else if let Some(b) = got.strip_prefix("boolean ") {
        format!("`{}`", b.trim_matches('`'))
    } else {
        match got {
            "map" => "a table".to_string(),
            "sequence" => "an array".to_string(),
            other => other.to_string(),
        }
    };
    Some(format!("must be {expected}, got {got}"))
}

/// serde speaks Rust (`expected i64`); users write TOML.
fn readable_type_error(message: &str) -> String {
    let mut out = message.to_string();
    for (rust, toml) in [
        ("expected i64", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
        (
            "expected a string or number",
            "expected a string like `30s` or a number",
        ),
    ] {
        out = out.replace(rust, toml);
    }
    out
}

/// `unknown field `pth`, expected `method` or `path`` -> (`pth`, [`method`, `path`]).
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((name.to_string(), expected))
}

/// Blanks the entry whose key is at `key` (spaces, keeping line breaks so every other span stays
/// valid). Handles `key = value` lines, keys in inline tables, dotted keys and table headers.
/// Returns false when nothing could be blanked.
pub(crate) fn blank_entry(text: &mut String, key: Range<usize>) -> bool {
    if key.end > text.len() || !text.is_char_boundary(key.start) || !text.is_char_boundary(key.end)
    {
        return false;
    }
    let bytes = text.as_bytes();
    let line_start = text[..key.start].rfind('\n').map_or(0, |i| i + 1);
    let range = if text[line_start..].trim_start().starts_with('[')
        && !inside_value(bytes, line_start, key.start)
    {
        header_section(text, line_start)
    } else {
        let start = key_start(bytes, key.start);
        match entry_end(bytes, key.end) {
            Some((end, stop)) => widen_for_separator(bytes, start, end, stop),
            None => return false,
        }
    };
    if range.is_empty() {
        return false;
    }
    let blanked: String = text[range.clone()]
        .chars()
        .map(|c| {
            if c == '\n' || c == '\r' {
                c.to_string()
            } else {
                " ".repeat(c.len_utf8())
            }
        })
        .collect();
    text.replace_range(range, &blanked);
    true
}

/// True if `pos` on a line starting with `[` is inside a value (e.g. an array), not a header:
/// a header has only brackets, key characters, dots and quotes before its key.
fn inside_value(bytes: &[u8], line_start: usize, pos: usize) -> bool {
    !bytes[line_start..pos].iter().all(|&c| {
        c.is_ascii_alphanumeric()
            || matches!(c, b'[' | b' ' | b'\t' | b'.' | b'_' | b'-' | b'"' | b'\'')
    })
}

/// A `[header]` line and everything up to the next header.
fn header_section(text: &str, line_start: usize) -> Range<usize> {
    let mut end = text.len();
    let mut offset = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i + 1);
    while offset < text.len() {
        let line = &text[offset..];
        if line.trim_start().starts_with('[') {
            end = offset;
            break;
        }
        offset = line.find('\n').map_or(text.len(), |i| offset + i + 1);
    }
    line_start..end
}

/// Walks back from a key over a dotted-key prefix (`request.pth`) to where the entry starts.
fn key_start(bytes: &[u8], key: usize) -> usize {
    let mut start = key;
    while start > 0 {
        let c = bytes[start - 1];
        if c.is_ascii_alphanumeric()
            || matches!(c, b'_' | b'-' | b'.' | b' ' | b'\t' | b'"' | b'\'')
        {
            start -= 1;
        } else {
            break;
        }
    }
    start
}

/// Scans from the end of a key over `= value` to where the entry ends: returns the end offset and
/// the byte that stopped the scan (`,`, `}`, `\n`, `#`, or 0 at the end of the text).
fn entry_end(bytes: &[u8], from: usize) -> Option<(usize, u8)> {
    let mut i = from;
    let mut depth = 0usize;
    let mut seen_equals = false;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' | b'\'' => i = skip_string(bytes, i)?,
            b'=' if depth == 0 => {
                seen_equals = true;
                i += 1;
            }
            b'[' | b'{' => {
                depth += 1;
                i += 1;
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                i += 1;
            }
            b'#' if depth > 0 => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p)
            }
            b',' | b'}' | b'\n' | b'#' if depth == 0 && seen_equals => return Some((i, c)),
            _ => i += 1,
        }
    }
    seen_equals.then_some((bytes.len(), 0))
}

/// The offset just past the string starting at `i` (basic, literal, or their multi-line forms).
pub(crate) fn skip_string(bytes: &[u8], i: usize) -> Option<usize> {
    let quote = bytes[i];
    let triple = bytes[i..].starts_with(&[quote; 3]);
    let mut j = i + if triple { 3 } else { 1 };
    while j < bytes.len() {
        if quote == b'"' && bytes[j] == b'\\' {
            j += 2;
            continue;
        }
        if !triple && bytes[j] == b'\n' {
            return None;
        }
        if bytes[j] == quote && (!triple || bytes[j..].starts_with(&[quote; 3])) {
            // A multi-line string may end with up to two extra quotes: `""""x"""""`.
            let mut end = j + if triple { 3 } else { 1 };
            while triple && end < bytes.len() && bytes[end] == quote && end < j + 5 {
                end += 1;
            }
            return Some(end);
        }
        j += 1;
    }
    None
}

/// In an inline table, also blank the comma that separated the entry from its neighbour.
fn widen_for_separator(bytes: &[u8], start: usize, end: usize, stop: u8) -> Range<usize> {
    match stop {
        b',' => start..end + 1,
        b'}' => {
            let mut s = start;
            while s > 0 && matches!(bytes[s - 1], b' ' | b'\t' | b'\n' | b'\r') {
                s -= 1;
            }
            if s > 0 && bytes[s - 1] == b',' {
                s - 1..end
            } else {
                start..end
            }
        }
        _ => start..end,
    }
}

/// A loosely typed TOML tree that keeps the spans of keys and values, used to describe where
/// a structural error is (`in stream "photos".request`).
#[derive(Debug)]
enum Loose {
    Table(Vec<(Spanned<String>, Spanned<Loose>)>),
    Array(Vec<Spanned<Loose>>),
    Str(String),
    Other,
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::Str(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Loose, E> {
        Ok(Loose::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Loose, E> {
        Ok(Loose::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Loose, E> {
        Ok(Loose::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Loose, E> {
        Ok(Loose::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Loose::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Loose::Table(entries))
    }
}

/// One step of a path: a key, or an array element (named by its `name` field when it has one).
fn step_label(key: &str, index: usize, element: &Loose) -> String {
    let name = match element {
        Loose::Table(entries) => {
            entries
                .iter()
                .find_map(|(k, v)| match (k.get_ref().as_str(), v.get_ref()) {
                    ("name", Loose::Str(name)) => Some(name.clone()),
                    _ => None,
                })
        }
        _ => None,
    };
    match name {
        Some(name) => format!("{key} {name:?}"),
        None => format!("{key}[{index}]"),
    }
}

/// Finds the entry matching `hit` depth-first; returns the path of the table holding it and its key.
fn find_entry(
    table: &Loose,
    hit: &dyn Fn(&Spanned<String>, &Spanned<Loose>) -> bool,
) -> Option<(Vec<String>, String)> {
    let Loose::Table(entries) = table else {
        return None;
    };
    for (key, value) in entries {
        if hit(key, value) {
            return Some((Vec::new(), key.get_ref().clone()));
        }
        let found = match value.get_ref() {
            Loose::Table(_) => find_entry(value.get_ref(), hit).map(|(mut path, k)| {
                path.insert(0, key.get_ref().clone());
                (path, k)
            }),
            Loose::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                find_entry(item.get_ref(), hit).map(|(mut path, k)| {
                    path.insert(0, step_label(key.get_ref(), i, item.get_ref()));
                    (path, k)
                })
            }),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// ` in stream "photos".request` for the key at `span`, or ` at the top level`.
fn describe_key(tree: &Spanned<Loose>, span: &Range<usize>) -> Option<String> {
    let (path, _) = find_entry(tree.get_ref(), &|k, _| k.span() == *span)?;
    Some(if path.is_empty() {
        " at the top level".to_string()
    } else {
        format!(" in {}", path.join("."))
    })
}

/// ` for `stream "photos".seed`` for the value at `span`.
fn describe_value(tree: &Spanned<Loose>, span: &Range<usize>) -> Option<String> {
    let (mut path, key) = find_entry(tree.get_ref(), &|_, v| v.span() == *span)?;
    path.push(key);
    Some(format!(" for `{}`", path.join(".")))
}

/// A TOML leaf that should hold a quantity (`"30s"`, `"1MiB"`, `"50/s"`) or a plain number;
/// kept loose so that the semantic pass can explain what was expected, for every field at once.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// The span of character `offset` (byte offset in the *value*) of the TOML string literal at
/// `span`, when the literal is spelled without escapes; otherwise the whole literal.
pub fn string_offset_span(
    source: &str,
    span: Range<usize>,
    offset: usize,
    len: usize,
) -> Range<usize> {
    let Some(raw) = source.get(span.clone()) else {
        return span;
    };
    let prefix = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        3 + usize::from(raw[3..].starts_with('\n')) + usize::from(raw[3..].starts_with("\r\n"))
    } else if raw.starts_with('"') || raw.starts_with('\'') {
        1
    } else {
        return span;
    };
    let escapes = raw.starts_with('"') && raw.contains('\\');
    let start = span.start + prefix + offset;
    if escapes || start + len > span.end {
        return span;
    }
    start..start + len.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(text: &str, key: &str) -> String {
        let mut work = text.to_string();
        let start = text.find(key).unwrap();
        assert!(blank_entry(&mut work, start..start + key.len()));
        assert_eq!(work.len(), text.len());
        assert_eq!(work.matches('\n').count(), text.matches('\n').count());
        work
    }

    #[test]
    fn blanks_a_line_entry() {
        assert_eq!(
            blank("a = 1\npth = \"x\" # c\nb = 2\n", "pth"),
            "a = 1\n          # c\nb = 2\n"
        );
    }

    #[test]
    fn blanks_inside_inline_tables() {
        let text = "r = { method = \"PUT\", pth = \"/x\" }";
        assert_eq!(blank(text, "pth"), "r = { method = \"PUT\"             }");
        let text = "r = { pth = \"a,}\", method = \"PUT\" }";
        assert_eq!(blank(text, "pth"), "r = {              method = \"PUT\" }");
        let text = "r = { pth = { a = [1, 2] }, method = \"PUT\" }";
        assert!(toml::from_str::<toml::Table>(&blank(text, "pth")).is_ok());
    }

    #[test]
    fn blanks_dotted_keys_multiline_values_and_headers() {
        assert_eq!(
            blank("request.pth = 1\nx = 2", "pth"),
            "               \nx = 2"
        );
        let text = "pth = [\n  1, # one\n  2,\n]\nx = 1\n";
        assert_eq!(blank(text, "pth"), "       \n          \n    \n \nx = 1\n");
        let text = "[a]\nx = 1\n[zz]\ny = 2\n[b]\n";
        assert_eq!(blank(text, "zz"), "[a]\nx = 1\n    \n     \n[b]\n");
    }

    #[test]
    fn reads_serde_unknown_field_messages() {
        let (name, expected) =
            parse_unknown_field("unknown field `pth`, expected `method` or `path`").unwrap();
        assert_eq!(
            (name.as_str(), expected),
            ("pth", vec!["method".to_string(), "path".to_string()])
        );
        let (_, expected) = parse_unknown_field("unknown field `x`, there are no fields").unwrap();
        assert!(expected.is_empty());
        assert!(parse_unknown_field("invalid type: string").is_none());
    }

    #[test]
    fn wrong_types_read_like_toml() {
        assert_eq!(
            wrong_type("invalid type: string \"abc\", expected i32").unwrap(),
            "must be a whole number, got the string \"abc\""
        );
        assert_eq!(
            wrong_type("invalid type: floating point `1.5`, expected usize").unwrap(),
            "must be a whole number (0 or more), got the number 1.5"
        );
        assert!(wrong_type("unknown field `x`").is_none());
    }

    #[test]
    fn string_offsets_map_into_the_source() {
        let source = "p = \"/u/{idd}\"";
        let span = 4..source.len();
        assert_eq!(string_offset_span(source, span.clone(), 4, 3), 9..12);
        let escaped = "p = \"\\u0041{idd}\"";
        assert_eq!(
            string_offset_span(escaped, 4..escaped.len(), 2, 3),
            4..escaped.len()
        );
    }
}
