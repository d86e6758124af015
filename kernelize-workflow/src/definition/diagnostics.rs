//! Problems found in a workflow file, each with the file, line and column it is about.
//!
//! A [`Diagnostic`] prints as `FILE:LINE:COL: PATH: message`, the shape editors and terminals
//! turn into a link; [`Diagnostics`] prints one per line and becomes a
//! [`kernelize_core::Error`] of kind [`ErrorKind::ConfigInvalid`] (the CLI exits 2 on it).

use std::fmt;

use kernelize_core::{Error, ErrorKind};

/// A place in a source text: line and column, both counted from 1 (columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters.
    pub column: usize,
}

impl Position {
    /// The first character of a file.
    pub const START: Position = Position { line: 1, column: 1 };

    /// A position from a 1-based line and column.
    pub fn new(line: usize, column: usize) -> Self {
        Position { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or other source) it is in, as given to the parser.
    pub source: String,
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
    /// The JSON pointer of the node it is about (`/workflows/data_sync/steps/2/plugin`);
    /// empty for the whole document.
    pub pointer: String,
    /// What is wrong, for people.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at `position` about the node at `pointer`.
    pub fn new(
        source: &str,
        position: Position,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            source: source.to_string(),
            line: position.line,
            column: position.column,
            pointer: pointer.into(),
            message: message.into(),
        }
    }

    /// Where it is.
    pub fn position(&self) -> Position {
        Position::new(self.line, self.column)
    }

    /// The pointer written the way people read paths: `workflows.data_sync.steps[2].plugin`.
    pub fn path(&self) -> String {
        human_path(&self.pointer)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.source, self.line, self.column)?;
        if !self.pointer.is_empty() {
            write!(f, "{}: ", self.path())?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Every problem found in a workflow file, in the order they appear in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// No problems yet.
    pub fn new() -> Self {
        Diagnostics(Vec::new())
    }

    /// Adds one problem.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over them.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// Sorts them by position (stable, so problems at one node keep the order they were
    /// found in) and drops exact repeats.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.source, a.line, a.column).cmp(&(&b.source, b.line, b.column)));
        self.0.dedup();
    }

    /// `Ok(())` when there are none, else `Err(self)` sorted by position.
    pub fn into_result(mut self) -> Result<(), Diagnostics> {
        if self.is_empty() {
            Ok(())
        } else {
            self.sort();
            Err(self)
        }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
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
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostics> for Error {
    /// A `ConfigInvalid` error whose message holds every diagnostic, one per line.
    fn from(diagnostics: Diagnostics) -> Self {
        let mut error = Error::new(ErrorKind::ConfigInvalid, diagnostics.to_string());
        if let Some(first) = diagnostics.0.first() {
            error = error.with_context("file", &first.source);
        }
        error
    }
}

/// A JSON pointer written as a path: `/workflows/a.b/steps/2/plugin` becomes
/// `workflows["a.b"].steps[2].plugin`.
pub fn human_path(pointer: &str) -> String {
    let mut out = String::new();
    if pointer.is_empty() {
        return out;
    }
    for token in pointer.trim_start_matches('/').split('/') {
        let token = unescape_token(token);
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) && !out.is_empty() {
            out.push('[');
            out.push_str(&token);
            out.push(']');
        } else if !token.is_empty()
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        } else {
            out.push('[');
            out.push_str(&format!("{token:?}"));
            out.push(']');
        }
    }
    out
}

/// One JSON pointer token for a key: `~` becomes `~0`, `/` becomes `~1`.
pub(crate) fn escape_token(key: &str) -> String {
    if key.contains(['~', '/']) {
        key.replace('~', "~0").replace('/', "~1")
    } else {
        key.to_string()
    }
}

/// The key a JSON pointer token stands for.
pub(crate) fn unescape_token(token: &str) -> String {
    if token.contains('~') {
        token.replace("~1", "/").replace("~0", "~")
    } else {
        token.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_paths_read_like_code() {
        assert_eq!(
            human_path("/workflows/data_sync/steps/2/plugin"),
            "workflows.data_sync.steps[2].plugin"
        );
        assert_eq!(
            human_path("/triggers/0/webhook~1x/a b"),
            "triggers[0][\"webhook/x\"][\"a b\"]"
        );
        assert_eq!(human_path(""), "");
    }

    #[test]
    fn diagnostics_print_file_line_column_then_message() {
        let d = Diagnostic::new(
            "flow.yaml",
            Position::new(3, 7),
            "/workflows/w/steps/0/plugin",
            "unknown plugin `x`",
        );
        assert_eq!(
            d.to_string(),
            "flow.yaml:3:7: workflows.w.steps[0].plugin: unknown plugin `x`"
        );
        let all = Diagnostics(vec![d.clone(), d]);
        assert_eq!(all.to_string().lines().count(), 2);
    }

    #[test]
    fn diagnostics_become_config_invalid_errors() {
        let d = Diagnostic::new("f.yaml", Position::START, "", "empty");
        let error: Error = Diagnostics::from(d).into();
        assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
        assert!(error.message().contains("f.yaml:1:1: empty"));
        assert_eq!(error.context_value("file"), Some("f.yaml"));
    }
}
