//! Reading one `[[promise]]` table's values: the helpers every promise's raw parameter
//! struct uses in its [`super::PromiseParams::build`], each recording its errors at the
//! span of the value (or, for a missing key, of the `type`), and the names a promise
//! refers to ([`Reference`]), declared as they are read so that the experiment can check
//! them without knowing any promise type.

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::diag::Collector;
use crate::units;

/// What a name in a promise refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// A `[[fault]]` by name (`name#k`: its occurrence k).
    Fault,
    /// A `[[probe]]` by name.
    Probe,
    /// A stream of the experiment's profiles.
    Stream,
}

/// A name a promise refers to, with the span of the value that names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub kind: RefKind,
    pub name: String,
    pub span: Range<usize>,
}

/// Reads the values of one raw promise, recording errors and references.
pub struct Reader<'r, 'a> {
    c: &'r mut Collector<'a>,
    kind: &'static str,
    /// The span of the `type` value: where a missing key is reported.
    at: Range<usize>,
    refs: Vec<Reference>,
    completions: bool,
}

impl<'r, 'a> Reader<'r, 'a> {
    pub(super) fn new(c: &'r mut Collector<'a>, kind: &'static str, at: Range<usize>) -> Self {
        Reader {
            c,
            kind,
            at,
            refs: Vec::new(),
            completions: false,
        }
    }

    /// What was declared: the references and whether the promise reads completions.
    pub(super) fn finish(self) -> (Vec<Reference>, bool) {
        (self.refs, self.completions)
    }

    /// The span of the table's `type`, for errors about the table as a whole.
    pub fn at(&self) -> Range<usize> {
        self.at.clone()
    }

    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.c.error(span, message);
    }

    pub fn error_with_hint(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.c.error_with_hint(span, message, hint);
    }

    /// A key the promise needs is missing.
    pub fn missing(&mut self, key: &str) {
        let span = self.at();
        self.c
            .error(span, format!("a `{}` promise needs `{key}`", self.kind));
    }

    pub fn string(&self, v: &Option<Spanned<String>>) -> Option<String> {
        v.as_ref().map(|s| s.get_ref().clone())
    }

    pub fn required_string(&mut self, v: &Option<Spanned<String>>, key: &str) -> String {
        match v {
            Some(s) => s.get_ref().clone(),
            None => {
                self.missing(key);
                String::new()
            }
        }
    }

    /// Declares that the promise names `name` (at `span`).
    pub fn refer(&mut self, kind: RefKind, name: &str, span: Range<usize>) {
        self.refs.push(Reference {
            kind,
            name: name.to_owned(),
            span,
        });
    }

    /// Declares that the promise reads the message ledger's completions.
    pub fn reads_completions(&mut self) {
        self.completions = true;
    }

    /// An optional name of a `kind` (a fault, probe or stream), declared as a reference.
    pub fn name(&mut self, kind: RefKind, v: &Option<Spanned<String>>) -> Option<String> {
        let s = v.as_ref()?;
        self.refer(kind, s.get_ref(), s.span());
        Some(s.get_ref().clone())
    }

    /// A required name of a `kind`, declared as a reference.
    pub fn required_name(
        &mut self,
        kind: RefKind,
        v: &Option<Spanned<String>>,
        key: &str,
    ) -> String {
        if v.is_none() {
            self.missing(key);
        }
        self.name(kind, v).unwrap_or_default()
    }

    pub fn duration(&mut self, v: &Option<Spanned<String>>) -> Option<Duration> {
        let s = v.as_ref()?;
        match units::parse_duration(s.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                let hint = e.hint();
                self.c.error_with_hint(s.span(), e.to_string(), hint);
                None
            }
        }
    }

    pub fn required_duration(&mut self, v: &Option<Spanned<String>>, key: &str) -> Duration {
        if v.is_none() {
            self.missing(key);
        }
        self.duration(v).unwrap_or_default()
    }

    /// A number > 0, or `default` when absent.
    pub fn positive(&mut self, v: &Option<Spanned<f64>>, default: f64) -> f64 {
        match v {
            Some(s) if !(s.get_ref().is_finite() && *s.get_ref() > 0.0) => {
                self.c.error(
                    s.span(),
                    format!("must be a number > 0, found {}", s.get_ref()),
                );
                default
            }
            Some(s) => *s.get_ref(),
            None => default,
        }
    }

    pub fn value<T: Copy>(&self, v: &Option<Spanned<T>>) -> Option<T> {
        v.as_ref().map(|s| *s.get_ref())
    }

    /// A rate like `50/s`.
    pub fn rate(&mut self, v: &Option<Spanned<String>>) -> Option<f64> {
        let s = v.as_ref()?;
        match units::parse_rate(s.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                let hint = e.hint();
                self.c.error_with_hint(s.span(), e.to_string(), hint);
                None
            }
        }
    }
}

/// A fraction written as a number (`0.01`) or a percentage (`"1%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio(pub f64);

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ratio, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum R {
            N(f64),
            I(i64),
            S(String),
        }
        let v = match R::deserialize(d)? {
            R::N(v) => v,
            R::I(v) => v as f64,
            R::S(s) => s
                .trim()
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
                .map(|p| p / 100.0)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "expected a fraction like 0.01 or a percentage like \"1%\", found `{s}`"
                    ))
                })?,
        };
        if !(0.0..=1.0).contains(&v) {
            return Err(serde::de::Error::custom(format!(
                "expected a fraction between 0 and 1, found {v}"
            )));
        }
        Ok(Ratio(v))
    }
}
