//! [`GraphQLRequest`]: one operation to run, with its variables and per-call options.

use std::fmt;
use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Result};
use serde::Serialize;
use serde_json::{Map, Value};

use super::document::{Operation, OperationType, find_operation};

/// Whether a request may be answered from a response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum CacheChoice {
    /// The client's setting.
    #[default]
    Client,
    /// Cacheable for this long (queries only).
    Ttl(Duration),
    /// Never from a cache.
    Never,
}

/// One GraphQL operation: the document, its variables, which operation of the document to
/// run, and per-call options.
///
/// Its `Debug` output leaves the variables out: they may hold secrets.
#[derive(Clone, Default)]
pub struct GraphQLRequest {
    query: String,
    variables: Option<Map<String, Value>>,
    operation_name: Option<String>,
    extensions: Option<Map<String, Value>>,
    pub(crate) cache: CacheChoice,
    pub(crate) timeout: Option<Duration>,
}

impl fmt::Debug for GraphQLRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operation = self.operation();
        f.debug_struct("GraphQLRequest")
            .field("operation_type", &operation.map(|op| op.kind))
            .field("operation_name", &self.display_name())
            .field("variables", &self.variables.as_ref().map(|_| "[redacted]"))
            .field("cache", &self.cache)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl GraphQLRequest {
    /// A request running `query` (a whole GraphQL document) without variables.
    pub fn new(query: impl Into<String>) -> Self {
        Self {
            query: query.into(),
            ..Self::default()
        }
    }

    /// Sets the variables from anything that serializes to a JSON object; `()` or `None`
    /// (anything that serializes to `null`) means none. Anything else is invalid input.
    pub fn variables<V: Serialize + ?Sized>(mut self, variables: &V) -> Result<Self> {
        self.variables = match serde_json::to_value(variables)? {
            Value::Null => None,
            Value::Object(map) => Some(map),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "GraphQL variables must be a JSON object, not {}",
                        kernelize_core::payload::json_type_name(&other)
                    ),
                ));
            }
        };
        Ok(self)
    }

    /// Chooses which operation of a document with several to run.
    pub fn operation_name(mut self, name: impl Into<String>) -> Self {
        self.operation_name = Some(name.into());
        self
    }

    /// Protocol extensions sent with the request (`persistedQuery`, for example).
    pub fn extensions(mut self, extensions: Map<String, Value>) -> Self {
        self.extensions = Some(extensions);
        self
    }

    /// Lets a response cache in the client's stack answer this request for `ttl`, whatever
    /// the client's own setting. Only queries are ever cached: on a mutation or a
    /// subscription this does nothing.
    pub fn cache(mut self, ttl: Duration) -> Self {
        self.cache = CacheChoice::Ttl(ttl);
        self
    }

    /// Keeps this request away from any response cache, whatever the client's setting.
    pub fn uncached(mut self) -> Self {
        self.cache = CacheChoice::Never;
        self
    }

    /// A whole-call timeout for this request, overriding the HTTP client's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The document.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The variables, if any.
    pub fn variables_map(&self) -> Option<&Map<String, Value>> {
        self.variables.as_ref()
    }

    /// The operation name given with [`GraphQLRequest::operation_name`], else the name of
    /// the operation the document runs (if it has one).
    pub(crate) fn display_name(&self) -> Option<&str> {
        self.operation_name
            .as_deref()
            .or_else(|| self.operation().and_then(|op| op.name))
    }

    /// What kind of operation this request runs, read from the document (see
    /// [`OperationType::of`]).
    pub fn operation_type(&self) -> Option<OperationType> {
        self.operation().map(|op| op.kind)
    }

    pub(crate) fn operation(&self) -> Option<Operation<'_>> {
        find_operation(&self.query, self.operation_name.as_deref())
    }

    /// The standard JSON body: `query`, and `variables`, `operationName` and `extensions`
    /// when set. Used as the HTTP body and as a WebSocket `subscribe` payload.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("query".to_string(), Value::String(self.query.clone()));
        if let Some(variables) = &self.variables {
            body.insert("variables".to_string(), Value::Object(variables.clone()));
        }
        if let Some(name) = &self.operation_name {
            body.insert("operationName".to_string(), Value::String(name.clone()));
        }
        if let Some(extensions) = &self.extensions {
            body.insert("extensions".to_string(), Value::Object(extensions.clone()));
        }
        Value::Object(body)
    }

    /// What spans and metrics say about this request, from one reading of the document:
    /// the operation's kind and name (never the variables).
    pub(crate) fn labels(&self) -> Labels {
        let operation = self.operation();
        let name = self
            .operation_name
            .as_deref()
            .or_else(|| operation.and_then(|op| op.name))
            .unwrap_or("")
            .to_string();
        Labels {
            kind: operation.map(|op| op.kind),
            name,
        }
    }
}

/// A request's operation kind and name, for spans, metrics and the retry decision.
#[derive(Debug, Clone)]
pub(crate) struct Labels {
    pub(crate) kind: Option<OperationType>,
    pub(crate) name: String,
}

impl Labels {
    /// The kind as a label value.
    pub(crate) fn kind_label(&self) -> &'static str {
        self.kind.map_or("unknown", OperationType::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_body_has_only_what_was_set() {
        let plain = GraphQLRequest::new("{ a }");
        assert_eq!(plain.body(), json!({"query": "{ a }"}));
        let full = GraphQLRequest::new("query Q($x: Int) { a(x: $x) }")
            .variables(&json!({"x": 1}))
            .unwrap()
            .operation_name("Q");
        assert_eq!(
            full.body(),
            json!({"query": "query Q($x: Int) { a(x: $x) }", "variables": {"x": 1}, "operationName": "Q"})
        );
    }

    #[test]
    fn variables_must_be_an_object_or_nothing() {
        assert!(GraphQLRequest::new("{ a }").variables(&()).is_ok());
        let err = GraphQLRequest::new("{ a }").variables(&[1, 2]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn debug_leaves_the_variables_out() {
        let request = GraphQLRequest::new("mutation Login($p: String) { login(p: $p) }")
            .variables(&json!({"p": "hunter2"}))
            .unwrap();
        let debug = format!("{request:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("Mutation"), "{debug}");
    }
}
