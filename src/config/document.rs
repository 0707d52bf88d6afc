//! The structural pass of every config file, on toml's spanned document
//! ([`toml::de::DeTable`]): the text is parsed once into keys and values that keep their
//! spans, then deserialized into raw serde structs (`deny_unknown_fields`, leaves in
//! [`toml::Spanned`]). serde stops at its first error, so an unknown key is recorded (with
//! the closest valid name as a hint), removed from the document, and the document is read
//! again; any other error (wrong type) is recorded at its span and ends the pass.
//!
//! A "type"-tagged array of tables (`[[fault]]` by `type`, `[[probe]]` by `kind`,
//! `[[promise]]` by `type`) is taken out of the document as [`Table`]s before the rest is
//! read; each table is then read on its own: its tag checked ([`Table::tag`]), its common
//! keys split off ([`Table::split_off`]) and each part read as its struct
//! ([`Table::read`]). Every error keeps the span the parser gave it.

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Collector, Diagnostic, name_hint};

/// How many unknown keys one document may report before we stop reading it.
const MAX_UNKNOWN_FIELDS: usize = 50;

/// The structural pass on a whole file: deserializes `text` into `T`, reporting every
/// unknown key. Returns the value when the text (minus its unknown keys) deserialized, and
/// the diagnostics found on the way; spans in both refer to `text`.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> (Option<T>, Vec<Diagnostic>) {
    let mut c = Collector::new(path, text);
    let value = Document::parse(&mut c).and_then(|doc| doc.read(&mut c));
    (value, c.take())
}

/// A parsed TOML document.
#[derive(Debug)]
pub struct Document<'i> {
    root: Spanned<DeTable<'i>>,
}

impl<'i> Document<'i> {
    /// Parses the collector's text; a syntax error is recorded at its place.
    pub fn parse(c: &mut Collector<'i>) -> Option<Self> {
        match DeTable::parse(c.source()) {
            Ok(root) => Some(Document { root }),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                c.error(span, readable_type_error(e.message()));
                None
            }
        }
    }

    /// Removes the array of tables `array` (`[[fault]]`) from the document and returns its
    /// tables, each labelled `[[fault]] "name"` (or `[[fault]] #2` when it has no `name`).
    /// A value that is not an array of tables is an error at it.
    /// A dotted `array` (`target.activities`) names an array inside a table.
    pub fn take_tables(&mut self, array: &str, c: &mut Collector<'_>) -> Vec<Table<'i>> {
        let mut table = self.root.get_mut();
        let mut parts: Vec<&str> = array.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        for part in parts {
            match table.get_mut(part).map(|v| v.get_mut()) {
                Some(DeValue::Table(t)) => table = t,
                _ => return Vec::new(),
            }
        }
        let Some((key, value)) = table.remove_entry(last) else {
            return Vec::new();
        };
        let not_tables = |c: &mut Collector<'_>, span| {
            c.error_with_hint(
                span,
                format!("`{}` must be an array of tables", key.get_ref()),
                format!("write each as a `[[{array}]]` table"),
            )
        };
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            not_tables(c, span);
            return Vec::new();
        };
        let mut tables = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let span = item.span();
            match item.into_inner() {
                DeValue::Table(entries) => {
                    let label = match entries.get("name").and_then(|v| v.get_ref().as_str()) {
                        Some(n) => format!("[[{array}]] {n:?}"),
                        None => format!("[[{array}]] #{}", i + 1),
                    };
                    tables.push(Table {
                        span,
                        entries,
                        label,
                    });
                }
                _ => not_tables(c, span),
            }
        }
        tables
    }

    /// Deserializes the document into `T`: every unknown key reported, then the first other
    /// error.
    pub fn read<T: DeserializeOwned>(self, c: &mut Collector<'_>) -> Option<T> {
        read_reporting(self.root, c, None, &|_, _, _| None)
    }
}

/// Tailors the message and hint of an unknown key: `(key, the keys the struct takes,
/// the closest of them)` -> `Some((message, hint))`, or `None` for the usual ones.
pub type UnknownKey<'f> = dyn Fn(&str, &[&str], Option<&str>) -> Option<(String, String)> + 'f;

/// One table of an array of tables (one `[[fault]]`), its keys and values with their spans.
#[derive(Debug, Clone)]
pub struct Table<'i> {
    span: Range<usize>,
    entries: DeTable<'i>,
    label: String,
}

impl<'i> Table<'i> {
    /// The span of the whole table (from its `[[header]]`).
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// How messages name it: `[[fault]] "kill-web"` or `[[fault]] #2`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The string value of `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.entries.get(key).and_then(|v| v.get_ref().as_str())
    }

    /// The span of `key`'s value.
    pub fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.entries.get(key).map(Spanned::span)
    }

    /// The span of `key` itself.
    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entries.get_key_value(key).map(|(k, _)| k.span())
    }

    /// Moves the entries whose keys are in `keys` into a table of their own (same span and
    /// label): the keys every table of the array has, read apart from the type's own.
    pub fn split_off(&mut self, keys: &[&str]) -> Table<'i> {
        let mut taken = DeTable::new();
        for key in keys {
            if let Some((k, v)) = self.entries.remove_entry(*key) {
                taken.insert(k, v);
            }
        }
        Table {
            span: self.span.clone(),
            entries: taken,
            label: self.label.clone(),
        }
    }

    /// Removes the tag `key` (`type`) and returns which of `types` it is; a missing tag is an
    /// error at the table, an unknown one at its value, both with the valid names as a hint.
    pub fn tag(
        &mut self,
        key: &str,
        types: &[&'static str],
        c: &mut Collector<'_>,
    ) -> Option<&'static str> {
        let Some(value) = self.entries.remove(key) else {
            c.error_with_hint(
                self.span.clone(),
                format!("{} has no `{key}`", self.label),
                format!("add `{key} = \"...\"`: {}", name_hint("", types)),
            );
            return None;
        };
        match value.get_ref().as_str() {
            Some(t) => {
                let found = types.iter().copied().find(|x| *x == t);
                if found.is_none() {
                    c.error_with_hint(
                        value.span(),
                        format!("unknown {} {key} `{t}`", self.array()),
                        name_hint(t, types),
                    );
                }
                found
            }
            None => {
                c.error_with_hint(
                    value.span(),
                    format!("`{key}` must be a string"),
                    name_hint("", types),
                );
                None
            }
        }
    }

    /// `fault` of `[[fault]] "x"`.
    fn array(&self) -> &str {
        self.label
            .trim_start_matches("[[")
            .split(']')
            .next()
            .unwrap_or_default()
    }

    /// [`Table::read`], also returning what could be read without the bad values, and
    /// whether there were none (unknown keys aside): for a caller that looks further into
    /// a table with errors (what a promise names).
    pub fn read_leniently<T: DeserializeOwned>(
        self,
        c: &mut Collector<'_>,
        unknown: &UnknownKey<'_>,
    ) -> (Option<T>, bool) {
        let root = Spanned::new(self.span, self.entries);
        read_leniently(root, c, Some(&self.label), unknown)
    }

    /// Deserializes the table as a `T`: every unknown key at the key (tailored by
    /// `unknown`), a missing key at the table (`[[fault]] "x" needs `queue``), any other
    /// error at its value.
    pub fn read<T: DeserializeOwned>(
        self,
        c: &mut Collector<'_>,
        unknown: &UnknownKey<'_>,
    ) -> Option<T> {
        let root = Spanned::new(self.span, self.entries);
        read_reporting(root, c, Some(&self.label), unknown)
    }
}

/// The loop of the structural pass: deserialize, and on an error record it, remove the key
/// (or the value) from the tree and try again, so that every error is found; a key missing
/// because its value was removed is not reported twice. The value is returned when only
/// unknown keys were wrong (the rest is still checked), `None` after any other error.
fn read_reporting<T: DeserializeOwned>(
    root: Spanned<DeTable<'_>>,
    c: &mut Collector<'_>,
    label: Option<&str>,
    unknown: &UnknownKey<'_>,
) -> Option<T> {
    match read_leniently(root, c, label, unknown) {
        (Some(value), true) => Some(value),
        _ => None,
    }
}

/// [`read_reporting`], also returning the value read without the bad values (and whether
/// there were none), for callers that look further into a table that has errors.
fn read_leniently<T: DeserializeOwned>(
    mut root: Spanned<DeTable<'_>>,
    c: &mut Collector<'_>,
    label: Option<&str>,
    unknown: &UnknownKey<'_>,
) -> (Option<T>, bool) {
    let mut failed = false;
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_UNKNOWN_FIELDS {
        let err = match T::deserialize(toml::de::Deserializer::from(root.clone())) {
            Ok(value) => return (Some(value), !failed),
            Err(err) => err,
        };
        let span = err.span().unwrap_or(0..0);
        let Some((name, expected)) = parse_unknown_field(err.message()) else {
            let missing = err
                .message()
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next());
            if missing.is_some_and(|m| removed.iter().any(|r| r == m)) {
                return (None, false);
            }
            c.push(other_error(c, &root, label, span.clone(), err.message()));
            // Read on without the bad value, to find the errors after it.
            match remove_value(root.get_mut(), &span) {
                Some(key) if missing.is_none() => {
                    removed.push(key);
                    failed = true;
                    continue;
                }
                _ => return (None, false),
            }
        };
        let candidates: Vec<&str> = expected.iter().map(String::as_str).collect();
        let closest = super::diag::closest_name(&name, candidates.iter().copied());
        let (message, hint) = match unknown(&name, &candidates, closest) {
            Some(tailored) => tailored,
            None => {
                let place = describe_key(root.get_ref(), &span, label).unwrap_or_default();
                let hint = if candidates.is_empty() {
                    "this table takes no fields".to_string()
                } else {
                    name_hint(&name, &candidates)
                };
                (format!("unknown field `{name}`{place}"), hint)
            }
        };
        c.error_with_hint(span.clone(), message, hint);
        if !remove_key(root.get_mut(), &span) {
            return (None, false);
        }
    }
    c.push(Diagnostic::whole_file(
        c.path(),
        format!(
            "stopped after {MAX_UNKNOWN_FIELDS} unknown fields; is this the right kind of file?"
        ),
    ));
    (None, false)
}

/// Removes the entry whose value is at `span` (not a whole table: an error there is about
/// the table), wherever it is in the tree; returns its key.
fn remove_value(table: &mut DeTable<'_>, span: &Range<usize>) -> Option<String> {
    let hit = table
        .iter()
        .find(|(_, v)| v.span() == *span && !v.get_ref().is_table())
        .map(|(k, _)| k.get_ref().to_string());
    if let Some(key) = hit {
        table.remove(key.as_str());
        return Some(key);
    }
    table.iter_mut().find_map(|(_, v)| match v.get_mut() {
        DeValue::Table(t) => remove_value(t, span),
        DeValue::Array(items) => items.iter_mut().find_map(|i| match i.get_mut() {
            DeValue::Table(t) => remove_value(t, span),
            _ => None,
        }),
        _ => None,
    })
}

/// Removes the entry whose key is at `span`, wherever it is in the tree.
fn remove_key(table: &mut DeTable<'_>, span: &Range<usize>) -> bool {
    let hit = table
        .keys()
        .find(|k| k.span() == *span)
        .map(|k| k.get_ref().to_string());
    if let Some(key) = hit {
        table.remove(key.as_str());
        return true;
    }
    table.iter_mut().any(|(_, v)| remove_in(v.get_mut(), span))
}

fn remove_in(value: &mut DeValue<'_>, span: &Range<usize>) -> bool {
    match value {
        DeValue::Table(t) => remove_key(t, span),
        DeValue::Array(items) => items.iter_mut().any(|i| remove_in(i.get_mut(), span)),
        _ => false,
    }
}

/// A serde error other than an unknown key, made readable.
fn other_error(
    c: &Collector<'_>,
    root: &Spanned<DeTable<'_>>,
    label: Option<&str>,
    span: Range<usize>,
    message: &str,
) -> Diagnostic {
    let at = |message: String| Diagnostic::at(c.path(), c.source(), span.clone(), message);
    if let (Some(label), Some(rest)) = (label, message.strip_prefix("missing field `")) {
        let key = rest.split('`').next().unwrap_or_default();
        return at(format!("{label} needs `{key}`"));
    }
    let found = find_entry(root.get_ref(), &|_, v| v.span() == span);
    if let (Some((parents, key)), Some(readable)) = (&found, wrong_type(message)) {
        let parents = with_label(parents.clone(), label);
        let place = if parents.is_empty() {
            String::new()
        } else {
            format!(" (in {})", parents.join("."))
        };
        return at(format!("`{key}` {readable}{place}"));
    }
    let message = readable_type_error(message);
    let place = found.map_or_else(String::new, |(parents, key)| {
        let mut path = with_label(parents, label);
        path.push(key);
        format!(" for `{}`", path.join("."))
    });
    let message = match label {
        Some(label) if place.is_empty() => format!("{label}: {message}"),
        _ => format!("{message}{place}"),
    };
    at(message)
}

fn with_label(mut path: Vec<String>, label: Option<&str>) -> Vec<String> {
    if let Some(label) = label {
        path.insert(0, label.to_string());
    }
    path
}

/// ` in stream "photos".request` for the key at `span`, or ` at the top level`.
fn describe_key(root: &DeTable<'_>, span: &Range<usize>, label: Option<&str>) -> Option<String> {
    let (path, _) = find_entry(root, &|k, _| k.span() == *span)?;
    let path = with_label(path, label);
    Some(if path.is_empty() {
        " at the top level".to_string()
    } else {
        format!(" in {}", path.join("."))
    })
}

type Entry<'a, 'i> = (&'a Spanned<Cow<'i, str>>, &'a Spanned<DeValue<'i>>);

/// A test on one key and its value.
type EntryTest<'f> = dyn Fn(&Spanned<Cow<'_, str>>, &Spanned<DeValue<'_>>) -> bool + 'f;

/// Finds the entry matching `hit` depth-first; returns the path of the table holding it
/// (array elements named by their `name` when they have one) and its key.
fn find_entry(table: &DeTable<'_>, hit: &EntryTest<'_>) -> Option<(Vec<String>, String)> {
    for (key, value) in table.iter() {
        let entry: Entry<'_, '_> = (key, value);
        if hit(entry.0, entry.1) {
            return Some((Vec::new(), key.get_ref().to_string()));
        }
        let found = match value.get_ref() {
            DeValue::Table(t) => find_entry(t, hit).map(|(mut path, k)| {
                path.insert(0, key.get_ref().to_string());
                (path, k)
            }),
            DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let DeValue::Table(t) = item.get_ref() else {
                    return None;
                };
                find_entry(t, hit).map(|(mut path, k)| {
                    let step = match t.get("name").and_then(|n| n.get_ref().as_str()) {
                        Some(name) => format!("{} {name:?}", key.get_ref()),
                        None => format!("{}[{i}]", key.get_ref()),
                    };
                    path.insert(0, step);
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
    let mut out = message.trim_end().replace('\n', " ");
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        method: Option<String>,
        path: Option<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        a: Option<i64>,
        r: Option<Inner>,
        s: Option<Vec<Inner>>,
    }

    /// Unknown keys anywhere (a line, an inline table, a dotted key, a header, an array of
    /// tables) are each reported at the key, and the rest is still read.
    #[test]
    fn every_unknown_key_at_its_place() {
        let text = "a = 1\npth = \"x\" # c\nr = { method = \"PUT\", pth = \"/x\" }\nr2.pth = 1\n[zz]\ny = 2\n[[s]]\nname = 1\n";
        let (value, mut d) = parse_toml::<Outer>(text, Path::new("t.toml"));
        d.sort_by_key(|d| (d.line, d.column));
        let got: Vec<(usize, usize, &str)> = d
            .iter()
            .map(|d| (d.line, d.column, d.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, 1, "unknown field `pth` at the top level"),
                (3, 23, "unknown field `pth` in r"),
                (4, 1, "unknown field `r2` at the top level"),
                (5, 2, "unknown field `zz` at the top level"),
                (8, 1, "unknown field `name` in s[0]"),
            ],
            "{d:#?}"
        );
        assert_eq!(d[1].hint.as_deref(), Some("did you mean `path`?"));
        assert_eq!(value.unwrap().a, Some(1));
    }

    #[test]
    fn tables_of_an_array_are_read_one_by_one() {
        let text =
            "x = 1\n[[fault]]\nname = \"a\"\ntype = \"t\"\nq = 1\n\n[[fault]]\ntype = \"zz\"\n";
        let mut c = Collector::new(Path::new("t.toml"), text);
        let mut doc = Document::parse(&mut c).unwrap();
        let tables = doc.take_tables("fault", &mut c);
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[0].label(), "[[fault]] \"a\"");
        assert_eq!(tables[1].label(), "[[fault]] #2");
        let mut second = tables[1].clone();
        assert_eq!(second.tag("type", &["t"], &mut c), None);
        let d = c.take();
        assert_eq!((d[0].line, d[0].column), (8, 8), "{d:#?}");
        assert_eq!(d[0].message, "unknown fault type `zz`");
        let mut first = tables[0].clone();
        assert_eq!(first.tag("type", &["t"], &mut c), Some("t"));
        let common = first.split_off(&["name"]);
        assert_eq!(common.str("name"), Some("a"));
        let inner: Option<Inner> = first.read(&mut c, &|_, _, _| None);
        assert_eq!(inner.unwrap().path, None);
        let d = c.take();
        assert_eq!((d[0].line, d[0].column), (5, 1), "{d:#?}");
        assert_eq!(d[0].message, "unknown field `q` in [[fault]] \"a\"");
    }
}
