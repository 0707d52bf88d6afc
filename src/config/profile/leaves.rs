//! Single values of a profile: required keys, choices, durations, sizes, rates, templates.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::check::Checker;
use crate::config::diag::name_hint;
use crate::config::{Scalar, string_offset_span};
use crate::template::{Template, TemplateError};
use crate::units::{self, UnitError};

impl Checker<'_> {
    /// `field`, or an error at `span` (the enclosing table) when it is missing.
    pub(super) fn required<'f, T>(
        &mut self,
        field: &'f Option<Spanned<T>>,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Option<&'f Spanned<T>> {
        if field.is_none() {
            self.out.error_with_hint(span, message, hint);
        }
        field.as_ref()
    }

    pub(super) fn non_empty(&mut self, value: &Spanned<String>, what: &str) -> Option<String> {
        if value.get_ref().trim().is_empty() {
            self.out
                .error(value.span(), format!("{what} must not be empty"));
            return None;
        }
        Some(value.get_ref().clone())
    }

    /// One of `options`, or an error with the closest option as a hint.
    pub(super) fn choice(
        &mut self,
        value: &Spanned<String>,
        what: &str,
        options: &[&'static str],
    ) -> Option<&'static str> {
        let found = options.iter().copied().find(|o| *o == value.get_ref());
        if found.is_none() {
            self.out.error_with_hint(
                value.span(),
                format!("unknown {what} `{}`", value.get_ref()),
                name_hint(value.get_ref(), options),
            );
        }
        found
    }

    pub(super) fn unit_error(&mut self, span: Range<usize>, err: UnitError) {
        let hint = err.hint();
        self.out.error_with_hint(span, err.to_string(), hint);
    }

    /// A duration that must be more than zero.
    pub(super) fn duration(&mut self, value: &Spanned<Scalar>, what: &str) -> Option<Duration> {
        let text = match value.get_ref() {
            Scalar::Str(text) => text,
            other => {
                self.out.error_with_hint(
                    value.span(),
                    format!(
                        "expected a duration like `30s`, `1h30m` or `250ms`, found {}",
                        scalar_text(other)
                    ),
                    "durations are strings with a unit, e.g. `\"30s\"`",
                );
                return None;
            }
        };
        match units::parse_duration(text) {
            Err(err) => {
                self.unit_error(value.span(), err);
                None
            }
            Ok(d) if d.is_zero() => {
                self.out.error_with_hint(
                    value.span(),
                    format!("`{what}` must be more than zero, found `{text}`"),
                    "e.g. `\"30s\"`",
                );
                None
            }
            Ok(d) => Some(d),
        }
    }

    /// A size in bytes: a string with a unit, or a non-negative integer of bytes.
    pub(super) fn size(&mut self, value: &Spanned<Scalar>) -> Option<u64> {
        let parsed = match value.get_ref() {
            Scalar::Str(text) => units::parse_size(text),
            Scalar::Int(n) => u64::try_from(*n).map_err(|_| UnitError::Negative {
                what: "a size",
                input: n.to_string(),
            }),
            other => Err(UnitError::Size(scalar_text(other))),
        };
        parsed
            .map_err(|err| self.unit_error(value.span(), err))
            .ok()
    }

    /// A rate per second: a string like `"50/s"`.
    pub(super) fn rate(&mut self, value: &Spanned<Scalar>) -> Option<f64> {
        match value.get_ref() {
            Scalar::Str(text) => units::parse_rate(text)
                .map_err(|err| self.unit_error(value.span(), err))
                .ok(),
            other => {
                self.out.error_with_hint(
                    value.span(),
                    format!(
                        "expected a rate like `400/s` or `50/m`, found {}",
                        scalar_text(other)
                    ),
                    "rates are strings with a time unit, e.g. `\"400/s\"`",
                );
                None
            }
        }
    }

    /// A template in a TOML string; errors point inside the string when they can.
    pub(super) fn template(&mut self, value: &Spanned<String>) -> Option<Template> {
        match Template::parse(value.get_ref()) {
            Ok(template) => Some(template),
            Err(TemplateError { offset, message }) => {
                let text = value.get_ref();
                let width = text[offset..].find(['}', '\n']).unwrap_or(1).max(1);
                let span = string_offset_span(self.out.source(), value.span(), offset, width);
                self.out.error_with_hint(
                    span,
                    message,
                    "write `{{` for a literal `{` before a letter",
                );
                None
            }
        }
    }
}

/// How a non-string scalar looked in the file, for messages.
fn scalar_text(value: &Scalar) -> String {
    match value {
        Scalar::Str(text) => format!("`{text}`"),
        Scalar::Int(n) => format!("the number {n}"),
        Scalar::Float(x) => format!("the number {x}"),
        Scalar::Bool(b) => format!("`{b}`"),
    }
}

/// `events/click.json` written where a template was expected.
pub(super) fn looks_like_a_file_name(text: &str) -> bool {
    !text.contains(|c: char| c.is_whitespace() || c == '{' || c == '"')
        && [".json", ".txt", ".xml"]
            .iter()
            .any(|ext| text.ends_with(ext))
}
