//! JSON Schema checks of plugin settings and step configs, skipping what references fill in.

use std::collections::HashMap;

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::Checker;
use super::references::holds_reference;
use crate::definition::diagnostics::escape_token;

/// One way an instance fails its schema.
struct Problem {
    /// The JSON pointer below the instance of the node it is about.
    pointer: String,
    message: String,
    /// Whether to show it at the node's key rather than its value.
    at_key: bool,
}

/// Compiled schemas, by a key naming whose schema it is.
#[derive(Default)]
pub(super) struct SchemaCache {
    validators: HashMap<String, Result<Validator, String>>,
}

impl SchemaCache {
    /// Every way `instance` fails `schema`; an error when the schema itself is invalid. With `masked`, messages do not repeat
    /// the values (plugin settings may hold credentials written in clear).
    fn problems(
        &mut self,
        key: &str,
        schema: &Value,
        instance: &Value,
        masked: bool,
    ) -> Result<Vec<Problem>, String> {
        let validator = self
            .validators
            .entry(key.to_string())
            .or_insert_with(|| jsonschema::validator_for(schema).map_err(|e| e.to_string()));
        let validator = validator.as_ref().map_err(Clone::clone)?;
        Ok(validator
            .iter_errors(instance)
            .filter(|e| !filled_by_reference(instance, e.instance_path().as_str(), e.kind()))
            .map(|e| {
                let message = if masked {
                    e.masked().to_string()
                } else {
                    e.to_string()
                };
                let mut pointer = e.instance_path().as_str().to_string();
                let mut at_key = false;
                // An unexpected property is best shown where its key is written.
                if let ValidationErrorKind::AdditionalProperties { unexpected }
                | ValidationErrorKind::UnevaluatedProperties { unexpected } = e.kind()
                    && let Some(first) = unexpected.first()
                {
                    pointer = format!("{pointer}/{}", escape_token(first));
                    at_key = true;
                }
                Problem {
                    pointer,
                    message,
                    at_key,
                }
            })
            .collect())
    }
}

/// Whether a schema error is about a value a `${...}` reference fills in at run time: the
/// value itself is such a string, or a combinator (`anyOf`, `oneOf`, `not`) failed on a
/// value holding one.
fn filled_by_reference(instance: &Value, path: &str, kind: &ValidationErrorKind) -> bool {
    let Some(value) = instance.pointer(path) else {
        return false;
    };
    match value {
        Value::String(s) => holds_reference(s),
        _ if matches!(
            kind,
            ValidationErrorKind::AnyOf { .. }
                | ValidationErrorKind::OneOfNotValid { .. }
                | ValidationErrorKind::OneOfMultipleValid { .. }
                | ValidationErrorKind::Not { .. }
        ) =>
        {
            contains_reference(value)
        }
        _ => false,
    }
}

fn contains_reference(value: &Value) -> bool {
    match value {
        Value::String(s) => holds_reference(s),
        Value::Array(items) => items.iter().any(contains_reference),
        Value::Object(map) => map.values().any(contains_reference),
        _ => false,
    }
}

impl Checker<'_> {
    /// Checks `instance`, written at `pointer`, against `schema`; each problem is reported
    /// at the node it is about, prefixed with `what` ("settings of `http`").
    pub(super) fn check_schema(
        &mut self,
        pointer: &str,
        key: &str,
        schema: &Value,
        instance: &Value,
        masked: bool,
        what: &str,
    ) {
        match self.schemas.problems(key, schema, instance, masked) {
            Err(e) => self.error(pointer, format!("the schema of the {what} is invalid: {e}")),
            Ok(problems) => {
                for problem in problems {
                    let at = format!("{pointer}{}", problem.pointer);
                    let message = format!("{what}: {}", problem.message);
                    if problem.at_key {
                        self.key_error(&at, message);
                    } else {
                        self.error(&at, message);
                    }
                }
            }
        }
    }

    /// Like [`Checker::check_schema`] for a value that may be absent (`null`): absent is
    /// fine when the schema accepts `null` or `{}`, as the plugin's config parsing does.
    pub(super) fn check_optional_schema(
        &mut self,
        pointer: &str,
        key: &str,
        schema: &Value,
        instance: &Value,
        masked: bool,
        what: &str,
    ) {
        if instance.is_null() {
            let accepts_null = self
                .schemas
                .problems(key, schema, instance, masked)
                .is_ok_and(|p| p.is_empty());
            if accepts_null {
                return;
            }
            let empty = Value::Object(Default::default());
            self.check_schema(pointer, key, schema, &empty, masked, what);
        } else {
            self.check_schema(pointer, key, schema, instance, masked, what);
        }
    }
}
