//! `${...}` references in step configs, inputs and conditions.
//!
//! - `${params.NAME}`: a workflow parameter;
//! - `${steps.NAME.output}` and `${steps.NAME.output.a.0.b}`: an earlier step's output, or a
//!   part of it; `${steps.NAME.status}`: how it ended (`succeeded`, `failed`, `skipped`);
//! - `${env:NAME}` and `${secret:NAME}`: resolved by the host like plugin settings.
//!
//! A string that is one reference and nothing else takes the referenced value whole (an
//! object stays an object); a reference inside longer text is replaced by the value's text.
//! `$${` writes a literal `${`.

use std::fmt;

/// One reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `${params.NAME}`.
    Param(String),
    /// `${steps.NAME.output...}`, with the path below the output.
    StepOutput {
        /// The step.
        step: String,
        /// Keys and indexes below its output.
        path: Vec<String>,
    },
    /// `${steps.NAME.status}`.
    StepStatus(String),
    /// `${env:NAME}`.
    Env(String),
    /// `${secret:NAME}`.
    Secret(String),
}

impl Reference {
    /// The step it refers to, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            Reference::StepOutput { step, .. } | Reference::StepStatus(step) => Some(step),
            _ => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Param(name) => write!(f, "${{params.{name}}}"),
            Reference::StepOutput { step, path } if path.is_empty() => {
                write!(f, "${{steps.{step}.output}}")
            }
            Reference::StepOutput { step, path } => {
                write!(f, "${{steps.{step}.output.{}}}", path.join("."))
            }
            Reference::StepStatus(step) => write!(f, "${{steps.{step}.status}}"),
            Reference::Env(name) => write!(f, "${{env:{name}}}"),
            Reference::Secret(name) => write!(f, "${{secret:{name}}}"),
        }
    }
}

/// A piece of a string with references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Plain text.
    Text(String),
    /// A reference.
    Ref(Reference),
}

/// Splits `text` into text and references; an unterminated or unknown `${...}` is an error
/// saying what was expected.
pub fn parse_template(text: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        plain.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(escaped) = after.strip_prefix("$${") {
            plain.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            plain.push('$');
            rest = &after[1..];
            continue;
        };
        let end = body_start
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in `{text}`"))?;
        let body = body_start[..end].trim();
        if !plain.is_empty() {
            segments.push(Segment::Text(std::mem::take(&mut plain)));
        }
        segments.push(Segment::Ref(parse_reference(body)?));
        rest = &body_start[end + 1..];
    }
    plain.push_str(rest);
    if !plain.is_empty() {
        segments.push(Segment::Text(plain));
    }
    Ok(segments)
}

fn parse_reference(body: &str) -> Result<Reference, String> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if let Some(name) = body.strip_prefix("env:") {
        return if name_ok(name) {
            Ok(Reference::Env(name.to_string()))
        } else {
            Err(format!("`${{{body}}}`: bad environment variable name"))
        };
    }
    if let Some(name) = body.strip_prefix("secret:") {
        return if !name.is_empty() && !name.contains(char::is_whitespace) {
            Ok(Reference::Secret(name.to_string()))
        } else {
            Err(format!("`${{{body}}}`: bad secret name"))
        };
    }
    let parts: Vec<&str> = body.split('.').collect();
    match parts.as_slice() {
        ["params", name] if name_ok(name) => Ok(Reference::Param(name.to_string())),
        ["steps", step, "status"] if name_ok(step) => Ok(Reference::StepStatus(step.to_string())),
        ["steps", step, "output", path @ ..] if name_ok(step) => {
            if path.iter().any(|p| p.is_empty()) {
                return Err(format!("`${{{body}}}`: empty key in the output path"));
            }
            Ok(Reference::StepOutput {
                step: step.to_string(),
                path: path.iter().map(|p| p.to_string()).collect(),
            })
        }
        _ => Err(format!(
            "`${{{body}}}` is not a reference; write ${{params.NAME}}, ${{steps.NAME.output}}, \
             ${{steps.NAME.output.KEY}}, ${{steps.NAME.status}}, ${{env:NAME}} or ${{secret:NAME}}"
        )),
    }
}

/// Every reference in a JSON value's strings (keys included), in order, with the JSON
/// pointer of the string that holds it; a malformed one is an error with its pointer.
pub fn references_in(
    value: &serde_json::Value,
) -> Result<Vec<(String, Reference)>, (String, String)> {
    fn walk(
        value: &serde_json::Value,
        pointer: &mut String,
        out: &mut Vec<(String, Reference)>,
    ) -> Result<(), (String, String)> {
        match value {
            serde_json::Value::String(s) => {
                for segment in parse_template(s).map_err(|e| (pointer.clone(), e))? {
                    if let Segment::Ref(r) = segment {
                        out.push((pointer.clone(), r));
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    walk(item, pointer, out)?;
                    pointer.truncate(len);
                }
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    for segment in parse_template(key).map_err(|e| (pointer.clone(), e))? {
                        if let Segment::Ref(r) = segment {
                            out.push((pointer.clone(), r));
                        }
                    }
                    walk(item, pointer, out)?;
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(value, &mut String::new(), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_text_and_references() {
        let parts = parse_template("rows since ${params.since} from ${steps.extract.output.table}")
            .unwrap_or_default();
        assert_eq!(
            parts,
            vec![
                Segment::Text("rows since ".into()),
                Segment::Ref(Reference::Param("since".into())),
                Segment::Text(" from ".into()),
                Segment::Ref(Reference::StepOutput {
                    step: "extract".into(),
                    path: vec!["table".into()]
                }),
            ]
        );
        assert_eq!(
            parse_template("cost: $5, literal $${x}").unwrap_or_default(),
            vec![Segment::Text("cost: $5, literal ${x}".into())]
        );
        assert_eq!(
            parse_template("${steps.a.status}").unwrap_or_default(),
            vec![Segment::Ref(Reference::StepStatus("a".into()))]
        );
    }

    #[test]
    fn malformed_references_say_what_is_expected() {
        for bad in [
            "${params}",
            "${steps.a}",
            "${steps.a.output..b}",
            "${oops",
            "${env:}",
        ] {
            let error = parse_template(bad).unwrap_err();
            assert!(
                error.contains(bad.trim_end_matches('}')) || error.contains("closing"),
                "{error}"
            );
        }
    }

    #[test]
    fn references_are_found_with_their_pointer() {
        let value =
            serde_json::json!({"q": "${params.x}", "list": [1, {"k": "${steps.s.output}"}]});
        let found = references_in(&value).unwrap_or_default();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, "/q");
        assert_eq!(found[1].0, "/list/1/k");
        let error = references_in(&serde_json::json!({"a": ["${nope}"]})).unwrap_err();
        assert_eq!(error.0, "/a/0");
    }
}
