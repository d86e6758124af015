//! Giving each `:name` placeholder its value: from the call's `params`, else from the run's
//! variables.

use std::collections::BTreeMap;

use kernelize_core::{Error, ErrorKind, Result};
use serde_json::{Map, Value};

use super::dialect::Dialect;
use super::placeholders::NamedQuery;
use super::value::SqlValue;

/// A statement ready to run: its SQL in the dialect's bind syntax and one value per slot.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundQuery {
    /// The SQL with every placeholder replaced by a bind slot.
    pub sql: String,
    /// The value of each slot, in slot order.
    pub values: Vec<SqlValue>,
}

/// Where placeholder values come from, first match wins: the step's own `params`, then the
/// variables the caller offers (a workflow run's `last_sync`, `run_id`, `workflow` and its
/// parameters; see [`kernelize_core::Call::vars`]).
#[derive(Debug, Clone, Copy)]
pub struct ParamSources<'a> {
    /// The call config's `params`.
    pub params: &'a Map<String, Value>,
    /// The call's variables.
    pub vars: &'a BTreeMap<String, Value>,
}

impl ParamSources<'_> {
    /// The value of `name`, if either source has it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.params.get(name).or_else(|| self.vars.get(name))
    }
}

/// Binds every placeholder of `query` from `sources`.
///
/// A name that neither source has is an [`ErrorKind::InvalidInput`] error naming it and the
/// names each source offers; values are never written into the SQL text.
pub fn bind(
    query: &NamedQuery,
    dialect: &Dialect,
    sources: ParamSources<'_>,
) -> Result<BoundQuery> {
    let names = query.names();
    let mut values = Vec::with_capacity(names.len());
    for name in &names {
        let Some(value) = sources.get(name) else {
            return Err(unbound(name, sources));
        };
        let value = SqlValue::from_json(value).map_err(|e| {
            Error::new(e.kind(), format!("placeholder `:{name}`: {}", e.message()))
                .with_context("placeholder", name)
        })?;
        values.push(value);
    }
    let (sql, slots) = query.render(dialect);
    let values = slots.iter().map(|&i| values[i].clone()).collect();
    Ok(BoundQuery { sql, values })
}

fn unbound(name: &str, sources: ParamSources<'_>) -> Error {
    let list = |keys: Vec<&String>| {
        if keys.is_empty() {
            "none".to_string()
        } else {
            keys.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    Error::new(
        ErrorKind::InvalidInput,
        format!(
            "placeholder `:{name}` has no value: give it in the config's `params` (given: {}) or as a run variable (given: {})",
            list(sources.params.keys().collect()),
            list(sources.vars.keys().collect()),
        ),
    )
    .with_context("placeholder", name)
}

#[cfg(test)]
#[cfg(feature = "sqlite")]
mod tests {
    use super::*;
    use crate::sql::sqlite::DIALECT;
    use serde_json::json;

    fn parse(sql: &str) -> NamedQuery {
        NamedQuery::parse(sql, &DIALECT.lexical).unwrap()
    }

    #[test]
    fn params_win_over_vars() {
        let params = json!({"since": "from-params"});
        let vars = BTreeMap::from([
            ("since".to_string(), json!("from-vars")),
            ("run_id".to_string(), json!("r1")),
        ]);
        let bound = bind(
            &parse("SELECT :since, :run_id, :since"),
            &DIALECT,
            ParamSources {
                params: params.as_object().unwrap(),
                vars: &vars,
            },
        )
        .unwrap();
        assert_eq!(bound.sql, "SELECT ?1, ?2, ?1");
        assert_eq!(
            bound.values,
            vec![
                SqlValue::Text("from-params".into()),
                SqlValue::Text("r1".into())
            ]
        );
    }

    #[test]
    fn an_unbound_name_is_named_with_what_was_given() {
        let params = json!({"a": 1});
        let vars = BTreeMap::from([("last_sync".to_string(), json!("2026-01-01T00:00:00Z"))]);
        let err = bind(
            &parse("SELECT :a, :missing"),
            &DIALECT,
            ParamSources {
                params: params.as_object().unwrap(),
                vars: &vars,
            },
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let text = err.to_string();
        assert!(text.contains("`:missing` has no value"), "{text}");
        assert!(text.contains("given: a)"), "{text}");
        assert!(text.contains("given: last_sync)"), "{text}");
        assert_eq!(err.context_value("placeholder"), Some("missing"));
    }
}
