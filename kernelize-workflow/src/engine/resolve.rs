//! Resolving `${...}` references in a step's config and input, and evaluating `when`
//! conditions, against a run's parameters and the outputs of the steps before.

use std::collections::BTreeMap;
use std::sync::Arc;

use kernelize_core::{Error, ErrorKind, Payload, Result, SecretStore};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::definition::prepare_condition;
use crate::definition::reference::{Reference, Segment, parse_template};

/// What references can see.
pub(crate) struct Scope<'a> {
    pub(crate) params: &'a BTreeMap<String, Value>,
    pub(crate) outputs: &'a BTreeMap<String, Payload>,
    pub(crate) statuses: &'a BTreeMap<String, &'static str>,
    pub(crate) secrets: &'a Arc<dyn SecretStore>,
    pub(crate) env: &'a (dyn Fn(&str) -> Option<String> + Send + Sync),
}

impl Scope<'_> {
    /// The value a reference stands for.
    fn value_of(&self, reference: &Reference) -> Result<Value> {
        match reference {
            Reference::Param(name) => self.params.get(name).cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("{reference}: the run has no parameter `{name}`"),
                )
            }),
            Reference::StepStatus(step) => Ok(Value::String(
                self.statuses
                    .get(step)
                    .copied()
                    .unwrap_or("pending")
                    .to_string(),
            )),
            Reference::StepOutput { step, path } => {
                let output = self.outputs.get(step).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("{reference}: step `{step}` has no output (it did not succeed)"),
                    )
                })?;
                let mut value = output.clone().into_json()?;
                for key in path {
                    value = match value {
                        Value::Object(mut map) => map.remove(key),
                        Value::Array(mut items) => key
                            .parse::<usize>()
                            .ok()
                            .filter(|i| *i < items.len())
                            .map(|i| items.swap_remove(i)),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidInput,
                            format!("{reference}: the output of `{step}` has no `{key}` there"),
                        )
                    })?;
                }
                Ok(value)
            }
            Reference::Env(name) => (self.env)(name).map(Value::String).ok_or_else(|| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("{reference}: the environment variable is not set"),
                )
            }),
            Reference::Secret(name) => self
                .secrets
                .get(name)
                .map(|s| Value::String(s.expose_secret().to_string()))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::ConfigInvalid,
                        format!("{reference}: no such secret"),
                    )
                }),
        }
    }

    /// `value` with every reference replaced: a string that is one reference takes the
    /// value whole; references inside text become text.
    pub(crate) fn resolve(&self, value: &Value) -> Result<Value> {
        Ok(match value {
            Value::String(s) => self.resolve_str(s)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve(v))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    let key = match self.resolve_str(k)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.insert(key, self.resolve(v)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    fn resolve_str(&self, text: &str) -> Result<Value> {
        if !text.contains('$') {
            return Ok(Value::String(text.to_string()));
        }
        let segments = parse_template(text).map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
        if let [Segment::Ref(reference)] = segments.as_slice() {
            return self.value_of(reference);
        }
        let mut out = String::new();
        for segment in segments {
            match segment {
                Segment::Text(t) => out.push_str(&t),
                Segment::Ref(r) => match self.value_of(&r)? {
                    Value::String(s) => out.push_str(&s),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(Value::String(out))
    }

    /// Whether a `when` condition holds. References become variables of a MiniJinja
    /// expression (never spliced into its text), so `${steps.count.output.rows} > 0 and
    /// ${params.env} == "prod"` compares values, whatever they hold.
    pub(crate) fn condition(&self, when: &str) -> Result<bool> {
        let condition =
            prepare_condition(when).map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
        let mut vars = BTreeMap::new();
        for (i, reference) in condition.references.iter().enumerate() {
            let value = minijinja::Value::from(minijinja::value::Serde(self.value_of(reference)?));
            vars.insert(format!("ref_{i}"), value);
        }
        let env = minijinja::Environment::new();
        let compiled = env.compile_expression(&condition.expression).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("`when: {when}` is not a valid condition: {e}"),
            )
        })?;
        let result = compiled
            .eval(minijinja::Value::from_pairs(vars))
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("`when: {when}` could not be evaluated: {e}"),
                )
            })?;
        Ok(result.is_true())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_scope<T>(f: impl FnOnce(&Scope<'_>) -> T) -> T {
        let params = BTreeMap::from([
            ("env".to_string(), json!("prod")),
            ("n".to_string(), json!(3)),
        ]);
        let outputs = BTreeMap::from([(
            "count".to_string(),
            Payload::Json(json!({"rows": 5, "tables": ["a", "b"]})),
        )]);
        let statuses = BTreeMap::from([("count".to_string(), "succeeded")]);
        let secrets: Arc<dyn SecretStore> =
            Arc::new(kernelize_core::config::MapSecretStore::default());
        let env = |name: &str| (name == "HOME_X").then(|| "/home/x".to_string());
        f(&Scope {
            params: &params,
            outputs: &outputs,
            statuses: &statuses,
            secrets: &secrets,
            env: &env,
        })
    }

    #[test]
    fn references_resolve_whole_or_as_text() {
        with_scope(|s| {
            let v = s
                .resolve(&json!({
                    "whole": "${steps.count.output}",
                    "part": "${steps.count.output.tables.1}",
                    "text": "${params.env}: ${steps.count.output.rows} rows in ${env:HOME_X}",
                    "n": "${params.n}"
                }))
                .unwrap_or_default();
            assert_eq!(v["whole"], json!({"rows": 5, "tables": ["a", "b"]}));
            assert_eq!(v["part"], "b");
            assert_eq!(v["text"], "prod: 5 rows in /home/x");
            assert_eq!(v["n"], 3, "a whole reference keeps its type");
            let e = s
                .resolve(&json!("${steps.count.output.missing}"))
                .unwrap_err();
            assert!(e.to_string().contains("missing"), "{e}");
            assert!(s.resolve(&json!("${secret:nope}")).is_err());
        });
    }

    #[test]
    fn conditions_compare_values_without_splicing_them() {
        with_scope(|s| {
            assert!(
                s.condition("${steps.count.output.rows} > 0")
                    .unwrap_or(false)
            );
            assert!(
                s.condition("${params.env} == \"prod\" and ${params.n} < 4")
                    .unwrap_or(false)
            );
            assert!(
                !s.condition("${steps.count.status} == \"failed\"")
                    .unwrap_or(true)
            );
            // A value that looks like code is only a value.
            assert!(
                !s.condition("${params.env} == \"x\" or false")
                    .unwrap_or(true)
            );
            assert!(s.condition("${params.env} >").is_err());
        });
    }
}
