//! Config files: traffic profiles, experiments (with their faults, probes and promises)
//! and sandbox configs.
//!
//! Every file goes through the same two passes, so that a user sees *all* their mistakes at once:
//!
//! 1. **structural** ([`document`]): the text is parsed once into toml's spanned document,
//!    then deserialized into raw serde structs (`deny_unknown_fields`, leaves wrapped in
//!    `toml::Spanned`). Every unknown key is reported (with the closest valid name as a
//!    hint) and removed, and the rest read again; any other error (wrong type) is reported
//!    at its span. A "type"-tagged array of tables (`[[fault]]`, `[[probe]]`, `[[promise]]`)
//!    is taken out of the document as [`document::Table`]s and each table read on its own,
//!    so that one bad table does not hide the errors of the others.
//! 2. **semantic** (per format, e.g. [`profile`]): raw -> validated plan, recording every
//!    error at the span of the key or value it is about.
//!
//! Before both, [`vars`] expands `${env:NAME}` in string values. [`diag`] renders the
//! result rustc-style with file:line:col.

pub mod diag;
pub mod document;
pub mod profile;
pub mod vars;

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use diag::{Diagnostic, Diagnostics};
pub use document::{Document, Table, parse_toml};

/// Reads a config file; an I/O or encoding error becomes a diagnostic naming the file.
pub fn read_config(path: &Path) -> Result<String, Diagnostics> {
    std::fs::read_to_string(path).map_err(|err| {
        Diagnostics::single(Diagnostic::whole_file(
            path,
            format!("cannot read {}: {err}", path.display()),
        ))
    })
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
