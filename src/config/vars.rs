//! Variables in config files: `${env:NAME}` and `${env:NAME:-default}` in string values.
//!
//! The text is expanded before it is parsed, inside string values only (never in keys or
//! comments), so one experiment can be pointed at another queue, host or pid file without
//! editing it:
//!
//! ```toml
//! [target]
//! http = "http://${env:WEB_HOST:-127.0.0.1}:8080"
//! queue = "${env:QUEUE}"                 # unset and no default: an error at its place
//! apply = "echo $${HOME}"                # `$${` is a literal `${` (here for the shell)
//! ```
//!
//! A value put into a `"basic"` string is escaped (quotes, backslashes, line breaks); a
//! `'literal'` string cannot hold a `'` or a line break, so such a value is an error there.
//! Expansion never adds a line, so the line numbers of later errors stay those of the file.

use std::borrow::Cow;
use std::path::Path;

use super::diag::{Diagnostic, Diagnostics};

/// Expands the variables of `text` (from `path`); every unset variable or malformed
/// reference is a diagnostic, all of them at once.
pub fn expand<'t>(text: &'t str, path: &Path) -> Result<Cow<'t, str>, Diagnostics> {
    if !text.contains("${") {
        return Ok(Cow::Borrowed(text));
    }
    expand_with(text, path, &|name| std::env::var(name).ok())
}

/// [`expand`] with the variables looked up by `lookup` (tests).
pub fn expand_with<'t>(
    text: &'t str,
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Cow<'t, str>, Diagnostics> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p);
            }
            q @ (b'"' | b'\'') => {
                let triple = bytes[i..].starts_with(&[q; 3]);
                let open = if triple { 3 } else { 1 };
                let Some(end) = skip_string(bytes, i) else {
                    // Unterminated: the parser will say so.
                    break;
                };
                let body = i + open..end - open;
                if !is_key(bytes, end) && text[body.clone()].contains("${") {
                    out.push_str(&text[copied..body.start]);
                    let literal = q == b'\'';
                    expand_string(
                        text,
                        body.clone(),
                        literal,
                        path,
                        lookup,
                        &mut out,
                        &mut errors,
                    );
                    copied = body.end;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    if let Some(d) = Diagnostics::new(errors) {
        return Err(d);
    }
    if copied == 0 {
        return Ok(Cow::Borrowed(text));
    }
    out.push_str(&text[copied..]);
    Ok(Cow::Owned(out))
}

/// A quoted key (`"a b" = 1`, `"a".b = 1`) rather than a value.
fn is_key(bytes: &[u8], end: usize) -> bool {
    bytes[end..]
        .iter()
        .find(|&&b| b != b' ' && b != b'\t')
        .is_some_and(|&b| b == b'=' || b == b'.')
}

/// Expands the body of one string literal into `out`.
fn expand_string(
    text: &str,
    body: std::ops::Range<usize>,
    literal: bool,
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
    errors: &mut Vec<Diagnostic>,
) {
    let s = &text[body.clone()];
    let mut k = 0;
    while k < s.len() {
        let rest = &s[k..];
        if rest.starts_with("$${") {
            out.push_str("${");
            k += 3;
            continue;
        }
        if !rest.starts_with("${env:") {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            k += c.len_utf8();
            continue;
        }
        let at = body.start + k;
        let Some(close) = rest.find('}') else {
            errors.push(
                Diagnostic::at(path, text, at..at + 6, "`${env:` without a closing `}`").with_hint(
                    "write `${env:NAME}` or `${env:NAME:-default}`; `$${` is a literal `${`",
                ),
            );
            out.push_str(rest);
            return;
        };
        let span = at..at + close + 1;
        let inner = &rest[6..close];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        k += close + 1;
        if !valid_name(name) {
            errors.push(
                Diagnostic::at(path, text, span, format!("`{name}` is not a variable name"))
                    .with_hint("names are letters, digits and `_`, not starting with a digit: `${env:QUEUE_NAME}`"),
            );
            continue;
        }
        let value = match (lookup(name), default) {
            (Some(v), _) => v,
            // The default is copied as written: it is already in this literal's syntax.
            (None, Some(d)) => {
                out.push_str(d);
                continue;
            }
            (None, None) => {
                errors.push(
                    Diagnostic::at(
                        path,
                        text,
                        span,
                        format!("environment variable `{name}` is not set"),
                    )
                    .with_hint(format!(
                        "set it, or give a default: `${{env:{name}:-value}}`"
                    )),
                );
                continue;
            }
        };
        if literal {
            if value.contains('\'') || value.contains('\n') || value.contains('\r') {
                errors.push(
                    Diagnostic::at(
                        path,
                        text,
                        span,
                        format!(
                            "the value of `{name}` holds a quote or a line break, which a '...' string cannot"
                        ),
                    )
                    .with_hint("use a \"...\" string here: the value is escaped in it"),
                );
            } else {
                out.push_str(&value);
            }
        } else {
            escape_basic(&value, out);
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Escapes `value` for a TOML basic string (never emits a line break).
fn escape_basic(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
}

/// The offset just past the string starting at `i` (basic, literal, or their multi-line forms).
fn skip_string(bytes: &[u8], i: usize) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<String, String> {
        let lookup = |n: &str| match n {
            "QUEUE" => Some("jobs".to_string()),
            "ODD" => Some("a\"b\\c\nd".to_string()),
            "QUOTE" => Some("it's".to_string()),
            _ => None,
        };
        expand_with(text, Path::new("x.toml"), &lookup)
            .map(|c| c.into_owned())
            .map_err(|d| d.to_string())
    }

    #[test]
    fn expands_in_values_with_defaults_and_escapes() {
        assert_eq!(
            run("q = \"${env:QUEUE}-dlq\" # ${env:NOPE}\n").unwrap(),
            "q = \"jobs-dlq\" # ${env:NOPE}\n"
        );
        assert_eq!(
            run("h = '${env:HOST:-127.0.0.1}'").unwrap(),
            "h = '127.0.0.1'"
        );
        assert_eq!(
            run("a = \"$${HOME} ${HOME}\"").unwrap(),
            "a = \"${HOME} ${HOME}\""
        );
        let odd = run("v = \"${env:ODD}\"\nw = 1").unwrap();
        assert_eq!(odd, "v = \"a\\\"b\\\\c\\nd\"\nw = 1");
        assert_eq!(
            toml::from_str::<toml::Table>(&odd).unwrap()["v"].as_str(),
            Some("a\"b\\c\nd")
        );
        // Keys are not values.
        assert_eq!(run("\"${env:QUEUE}\" = 1").unwrap(), "\"${env:QUEUE}\" = 1");
    }

    #[test]
    fn unset_variables_are_errors_at_their_place() {
        let err = run("a = 1\nq = \"x ${env:MISSING}\"\nb = '${env:QUOTE}'\n").unwrap_err();
        assert!(
            err.contains("environment variable `MISSING` is not set"),
            "{err}"
        );
        assert!(err.contains("x.toml:2:8"), "{err}");
        assert!(err.contains("x.toml:3:6"), "{err}");
        assert!(err.contains("2 errors"), "{err}");
    }
}
