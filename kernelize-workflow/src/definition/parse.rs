//! Reading a workflow file: YAML text to a [`WorkflowFile`], with the line and column of
//! every node kept for the diagnostics of [`super::validate`].
//!
//! ```
//! use kernelize_workflow::definition::parse;
//!
//! let loaded = parse("flow.yaml", "workflows:\n  w:\n    steps: []\n").map_err(|d| d.to_string())?;
//! assert!(loaded.file.workflows.contains_key("w"));
//! assert_eq!(loaded.position("/workflows/w/steps").map(|p| (p.line, p.column)), Some((3, 12)));
//!
//! let error = parse("flow.yaml", "workflows:\n  w:\n    stepz: []\n").unwrap_err();
//! assert!(error.to_string().starts_with("flow.yaml:3:5: "));
//! # Ok::<(), String>(())
//! ```

use std::io::Read;
use std::path::Path;

use serde_path_to_error::Segment;

use super::diagnostics::{Diagnostic, Diagnostics, Position, escape_token};
use super::model::WorkflowFile;
use super::yaml::{self, PositionMap};

/// Largest workflow file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

/// A parsed workflow file, with where each of its nodes was written.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The definitions.
    pub file: WorkflowFile,
    /// The name the file was read under (its path, or what the caller called it).
    pub source: String,
    positions: PositionMap,
}

impl Loaded {
    /// Where the value at a JSON pointer (`/workflows/w/steps/2/plugin`) was written; for a
    /// node with no position of its own (a default, or a part of an alias), that of its
    /// nearest ancestor that has one.
    pub fn position(&self, pointer: &str) -> Option<Position> {
        self.find(pointer, |p| p.value.or(p.key))
    }

    /// Where the key of the value at a JSON pointer was written; the value's position for an
    /// item of a list, and the nearest ancestor's for a node not written in the file.
    pub fn key_position(&self, pointer: &str) -> Option<Position> {
        self.find(pointer, |p| p.key.or(p.value))
    }

    fn find(
        &self,
        pointer: &str,
        pick: impl Fn(&yaml::NodePositions) -> Option<Position>,
    ) -> Option<Position> {
        let mut pointer = pointer;
        loop {
            if let Some(found) = self.positions.get(pointer).and_then(&pick) {
                return Some(found);
            }
            let cut = pointer.rfind('/')?;
            pointer = &pointer[..cut];
        }
    }

    /// A diagnostic about the value at `pointer`, at its position.
    pub fn diagnostic(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        let at = self.position(pointer).unwrap_or(Position::START);
        Diagnostic::new(&self.source, at, pointer, message)
    }

    /// A diagnostic about the key of the value at `pointer`, at the key's position.
    pub fn key_diagnostic(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        let at = self.key_position(pointer).unwrap_or(Position::START);
        Diagnostic::new(&self.source, at, pointer, message)
    }
}

/// Parses a workflow file's text. `source_name` names it in diagnostics.
///
/// The YAML must be one document of at most [`MAX_FILE_BYTES`], nested at most
/// [`MAX_DEPTH`](super::MAX_DEPTH) deep, with no repeated key in a mapping; anchors and
/// aliases are expanded within [`MAX_NODES`](super::MAX_NODES) values. A syntax error, or a
/// value of the wrong shape for [`WorkflowFile`] (an unknown field, a wrong type, a bad
/// duration, an unknown error kind), is one diagnostic at the offending node.
pub fn parse(source_name: &str, text: &str) -> Result<Loaded, Diagnostics> {
    let whole_file = |message: String| {
        Diagnostics::from(Diagnostic::new(source_name, Position::START, "", message))
    };
    if text.len() > MAX_FILE_BYTES {
        return Err(whole_file(too_large(text.len() as u64)));
    }
    let (value, positions) = yaml::to_json(text)
        .map_err(|e| Diagnostics::from(Diagnostic::new(source_name, e.position, "", e.message)))?;
    if value.is_null() {
        return Err(whole_file(
            "the file holds no definitions; expected `workflows:`, `pipelines:` and/or `plugins:`"
                .into(),
        ));
    }
    let loaded = Loaded {
        file: WorkflowFile::default(),
        source: source_name.to_string(),
        positions,
    };
    match serde_path_to_error::deserialize::<_, WorkflowFile>(value) {
        Ok(file) => Ok(Loaded { file, ..loaded }),
        Err(error) => {
            let mut pointer = String::new();
            for segment in error.path().iter() {
                match segment {
                    Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
                    Segment::Map { key } | Segment::Enum { variant: key } => {
                        pointer.push('/');
                        pointer.push_str(&escape_token(key));
                    }
                    Segment::Unknown => {}
                }
            }
            let message = error.inner().to_string();
            // serde names an unknown field in its message; point at that key.
            if let Some(field) = unknown_field(&message) {
                let key_pointer = format!("{pointer}/{}", escape_token(field));
                if !pointer.ends_with(&format!("/{}", escape_token(field)))
                    && loaded.positions.contains_key(&key_pointer)
                {
                    pointer = key_pointer;
                }
                return Err(loaded.key_diagnostic(&pointer, message).into());
            }
            Err(loaded.diagnostic(&pointer, message).into())
        }
    }
}

/// Reads and parses a workflow file; a file that cannot be read is a diagnostic too.
pub fn load(path: &Path) -> Result<Loaded, Diagnostics> {
    let source = path.display().to_string();
    let whole_file =
        |message: String| Diagnostics::from(Diagnostic::new(&source, Position::START, "", message));
    let file = std::fs::File::open(path).map_err(|e| whole_file(format!("cannot open: {e}")))?;
    let mut bytes = Vec::new();
    // Read one byte past the limit to know it was passed, without reading all of a huge file.
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| whole_file(format!("cannot read: {e}")))?;
    if bytes.len() > MAX_FILE_BYTES {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(whole_file(too_large(size)));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        whole_file(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    parse(&source, &text)
}

fn too_large(size: u64) -> String {
    format!(
        "the file is {size} bytes; workflow files are limited to {} MiB",
        MAX_FILE_BYTES / (1024 * 1024)
    )
}

/// The field an "unknown field `x`, expected ..." message names.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.find('`').map(|end| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(result: Result<Loaded, Diagnostics>) -> Diagnostic {
        match result {
            Ok(_) => panic!("expected a diagnostic"),
            Err(d) => {
                d.0.into_iter()
                    .next()
                    .unwrap_or_else(|| panic!("empty diagnostics"))
            }
        }
    }

    #[test]
    fn unknown_fields_point_at_their_key() {
        let d = first(parse(
            "f.yaml",
            "workflows:\n  w:\n    steps:\n      - name: a\n        plugin: p\n        action: x\n        \
             retries: 3\n",
        ));
        assert_eq!((d.line, d.column), (7, 9), "{d}");
        assert_eq!(d.pointer, "/workflows/w/steps/0/retries");
        assert!(d.message.contains("unknown field `retries`"), "{d}");
    }

    #[test]
    fn wrong_types_point_at_the_value() {
        let d = first(parse(
            "f.yaml",
            "workflows:\n  w:\n    steps:\n      - name: a\n        plugin: p\n        action: x\n        \
             retry: {max_attempts: \"x\"}\n",
        ));
        assert_eq!((d.line, d.column), (7, 31), "{d}");
        assert_eq!(d.pointer, "/workflows/w/steps/0/retry/max_attempts");
    }

    #[test]
    fn missing_fields_point_at_their_mapping() {
        let d = first(parse(
            "f.yaml",
            "workflows:\n  w:\n    steps:\n      - name: a\n        action: x\n",
        ));
        assert_eq!((d.line, d.column), (4, 9), "{d}");
        assert!(d.message.contains("missing field `plugin`"), "{d}");
    }

    #[test]
    fn positions_fall_back_to_the_nearest_ancestor() {
        let loaded =
            parse("f.yaml", "workflows:\n  w:\n    steps: []\n").unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(
            loaded.position("/workflows/w/steps/4/config/x"),
            Some(Position::new(3, 12))
        );
        assert_eq!(
            loaded.key_position("/workflows/w"),
            Some(Position::new(2, 3))
        );
        assert_eq!(loaded.position("/nothing"), Some(Position::new(1, 1)));
    }

    #[test]
    fn empty_and_oversized_texts_are_refused() {
        assert!(
            first(parse("f.yaml", "# nothing\n"))
                .message
                .contains("no definitions")
        );
        let big = format!("a: \"{}\"\n", "x".repeat(MAX_FILE_BYTES));
        let d = first(parse("f.yaml", &big));
        assert!(d.message.contains("limited to 8 MiB"), "{d}");
    }
}
