//! Diagnostics for config files: errors with file, line, column, the offending source line
//! underlined, and a hint, rendered the way rustc does. Knows nothing about any one format.
//!
//! ```text
//! error: unknown field `pth` in stream "photos".request
//!   --> profiles/bad.toml:7:29
//!    |
//!  7 | request = { method = "PUT", pth = "/x" }
//!    |                             ^^^
//!    = hint: did you mean `path`?
//! ```

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One error in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the user named it.
    pub path: PathBuf,
    /// 1-based line; 0 when the error is about the whole file (e.g. it cannot be read).
    pub line: usize,
    /// 1-based column, counted in characters; 0 with `line == 0`.
    pub column: usize,
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
    /// The text of line `line`, without its line break.
    pub source_line: String,
    /// How many characters of `source_line` to underline, at least 1.
    pub width: usize,
}

impl Diagnostic {
    /// An error at byte range `span` of `source` (the whole text of `path`).
    ///
    /// Out-of-range or mid-character spans are clamped, never a panic.
    pub fn at(path: &Path, source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let start = floor_char_boundary(source, span.start);
        let end = floor_char_boundary(source, span.end.max(start));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let source_line = source[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let width = source[start..end.min(line_end)].chars().count().max(1);
        Diagnostic {
            path: path.to_path_buf(),
            line: source[..start].matches('\n').count() + 1,
            column: source[line_start..start].chars().count() + 1,
            message: message.into(),
            hint: None,
            source_line,
            width,
        }
    }

    /// An error about the whole file, with no position (unreadable, not UTF-8...).
    pub fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
            hint: None,
            source_line: String::new(),
            width: 0,
        }
    }

    /// Adds (or replaces) the hint; an empty hint is none (never printed).
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        self.hint = (!hint.trim().is_empty()).then_some(hint);
        self
    }
}

/// The largest char boundary of `s` at or below `i`.
fn floor_char_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        if self.line == 0 {
            write!(f, "  --> {}", self.path.display())?;
            if let Some(hint) = &self.hint {
                write!(f, "\n   = hint: {hint}")?;
            }
            return Ok(());
        }
        let number = self.line.to_string();
        let pad = " ".repeat(number.len() + 1);
        // Keep tabs so the caret lines up under the same characters.
        let indent: String = self
            .source_line
            .chars()
            .take(self.column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        writeln!(
            f,
            "{pad}--> {}:{}:{}",
            self.path.display(),
            self.line,
            self.column
        )?;
        writeln!(f, "{pad} |")?;
        writeln!(f, " {number} | {}", self.source_line)?;
        write!(f, "{pad} | {indent}{}", "^".repeat(self.width))?;
        if let Some(hint) = &self.hint {
            write!(f, "\n{pad} = hint: {hint}")?;
        }
        Ok(())
    }
}

/// One or more diagnostics, sorted by file and position. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// Sorts `diagnostics` by position; `None` when there are none (i.e. no error).
    pub fn new(mut diagnostics: Vec<Diagnostic>) -> Option<Self> {
        if diagnostics.is_empty() {
            return None;
        }
        diagnostics.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
        Some(Diagnostics(diagnostics))
    }

    /// Exactly one diagnostic.
    pub fn single(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }

    /// How many errors (at least 1).
    pub fn count(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.0 {
            writeln!(f, "{diagnostic}\n")?;
        }
        let mut files: Vec<String> = self
            .0
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        files.dedup();
        let noun = if self.0.len() == 1 { "error" } else { "errors" };
        write!(f, "{} {noun} in {}", self.0.len(), files.join(", "))
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics for one file while a config is checked, so that every error is found.
#[derive(Debug)]
pub struct Collector<'a> {
    path: &'a Path,
    source: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Collector<'a> {
    pub fn new(path: &'a Path, source: &'a str) -> Self {
        Collector {
            path,
            source,
            diagnostics: Vec::new(),
        }
    }

    pub fn path(&self) -> &'a Path {
        self.path
    }

    pub fn source(&self) -> &'a str {
        self.source
    }

    /// Records an error at `span`.
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(Diagnostic::at(self.path, self.source, span, message));
    }

    /// Records an error at `span` with a hint.
    pub fn error_with_hint(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Diagnostic::at(self.path, self.source, span, message).with_hint(hint));
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn has_errors(&self) -> bool {
        !self.diagnostics.is_empty()
    }

    /// `value` when nothing was recorded, all the diagnostics otherwise.
    pub fn finish<T>(self, value: T) -> Result<T, Diagnostics> {
        match Diagnostics::new(self.diagnostics) {
            None => Ok(value),
            Some(diagnostics) => Err(diagnostics),
        }
    }

    /// The diagnostics recorded so far, leaving none.
    pub fn take(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.diagnostics)
    }
}

/// The candidate closest to `input` (edit distance, transpositions count as one), if it is
/// close enough to be a plausible typo: at most a third of the input's length, and at least 1.
pub fn closest_name<'c>(
    input: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (input.chars().count() / 3).max(1);
    let lowered = input.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&lowered, &c.to_lowercase()), c))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, c)| c)
}

/// A hint for a misspelt name: `did you mean `x`?`, or the list of valid names.
pub fn name_hint(input: &str, candidates: &[&str]) -> String {
    if candidates.is_empty() {
        return "there is none to choose from in this file".into();
    }
    match closest_name(input, candidates.iter().copied()) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!("expected one of {}", quoted_list(candidates)),
    }
}

/// `` `a`, `b`, `c` ``
pub fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "name = \"x\"\n\n[[stream]]\nname = \"photos\"\nkind = \"upload\"\nstages = []\nrequest = { method = \"PUT\", pth = \"/x\" }\n";

    #[test]
    fn renders_like_rustc() {
        let start = SOURCE.find("pth").unwrap();
        let d = Diagnostic::at(
            Path::new("profiles/bad.toml"),
            SOURCE,
            start..start + 3,
            "unknown field `pth` in stream \"photos\".request",
        )
        .with_hint("did you mean `path`?");
        assert_eq!((d.line, d.column), (7, 29));
        let want = "\
error: unknown field `pth` in stream \"photos\".request
  --> profiles/bad.toml:7:29
   |
 7 | request = { method = \"PUT\", pth = \"/x\" }
   |                             ^^^
   = hint: did you mean `path`?";
        assert_eq!(d.to_string(), want);
        let all = Diagnostics::single(d).to_string();
        assert!(all.ends_with("\n\n1 error in profiles/bad.toml"), "{all}");
    }

    #[test]
    fn sorted_and_counted() {
        let path = Path::new("p.toml");
        let late = Diagnostic::at(path, SOURCE, 40..41, "late");
        let early = Diagnostic::at(path, SOURCE, 0..1, "early");
        let all = Diagnostics::new(vec![late, early]).unwrap();
        let messages: Vec<&str> = all.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages, ["early", "late"]);
        assert!(all.to_string().ends_with("2 errors in p.toml"));
        assert!(Diagnostics::new(Vec::new()).is_none());
    }

    #[test]
    fn spans_are_clamped_not_panicking() {
        let path = Path::new("p.toml");
        let d = Diagnostic::at(path, "é\nab", 1..99, "x");
        assert_eq!((d.line, d.column, d.width), (1, 1, 1));
        #[allow(clippy::reversed_empty_ranges)]
        let d = Diagnostic::at(path, "", 5..3, "x");
        assert_eq!((d.line, d.column), (1, 1));
        let d = Diagnostic::at(path, "a\nb", 2..3, "x");
        assert_eq!((d.line, d.column, d.source_line.as_str()), (2, 1, "b"));
    }

    #[test]
    fn whole_file_errors_name_the_file() {
        let d = Diagnostic::whole_file(Path::new("gone.toml"), "cannot read: not found");
        assert_eq!(
            d.to_string(),
            "error: cannot read: not found\n  --> gone.toml"
        );
    }

    #[test]
    fn closest_names() {
        assert_eq!(
            closest_name("pth", ["method", "path", "headers"]),
            Some("path")
        );
        assert_eq!(closest_name("uplaod", ["upload", "event"]), Some("upload"));
        assert_eq!(closest_name("zzzzzz", ["upload", "event"]), None);
        assert_eq!(name_hint("zz", &["a", "b"]), "expected one of `a`, `b`");
        assert!(!name_hint("zz", &[]).contains("expected one of"));
        let d = Diagnostic::whole_file(Path::new("p.toml"), "x").with_hint("");
        assert!(!d.to_string().contains("hint"), "{d}");
    }
}
