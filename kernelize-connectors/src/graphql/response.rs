//! What a GraphQL server answers: [`GraphQLResponse`] (data and errors side by side, since a
//! partial result is still a result) and [`GraphQLError`].

use std::fmt;

use kernelize_core::{Error, ErrorKind, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::http::Response;

/// How many error messages an [`Error`] built from GraphQL errors quotes.
const QUOTED_ERRORS: usize = 3;
/// How many characters of each quoted error message.
const QUOTED_MESSAGE_CHARS: usize = 200;

/// One GraphQL answer: `data` and `errors` side by side.
///
/// A field that failed is `null` in `data` and described in `errors` (with its `path`),
/// while the other fields keep their values; both are kept, so a caller decides whether a
/// partial result is good enough. [`GraphQLResponse::into_data`] turns any error into an
/// [`Error`] for callers that want all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Serialize",
    deserialize = "T: serde::de::DeserializeOwned"
))]
pub struct GraphQLResponse<T = Value> {
    /// The result; `None` when the server answered `null` or sent no `data` (a request
    /// error: the operation did not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    /// The errors, empty when there were none.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub errors: Vec<GraphQLError>,
    /// The server's extensions (tracing, cost, ...), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
    /// The HTTP status the answer came with (`None` for answers over WebSocket). A server
    /// following the GraphQL-over-HTTP specification answers a request error (a document
    /// that does not parse or validate) with 400 and `errors`; such an answer is a
    /// response, not an `Err`.
    #[serde(skip)]
    pub http_status: Option<u16>,
}

impl<T> Default for GraphQLResponse<T> {
    fn default() -> Self {
        Self {
            data: None,
            errors: Vec::new(),
            extensions: None,
            http_status: None,
        }
    }
}

impl<T> GraphQLResponse<T> {
    /// Whether the server reported no error.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The data when there is no error; otherwise an error of kind remote (permanent)
    /// quoting the first messages, whose source is the [`GraphQLErrors`]. A response with
    /// neither data nor errors is an error too.
    pub fn into_data(self) -> Result<T> {
        if !self.errors.is_empty() {
            return Err(errors_error(
                "the GraphQL server answered with errors",
                self.errors,
            ));
        }
        self.data.ok_or_else(|| {
            Error::new(
                ErrorKind::Remote,
                "the GraphQL server answered with neither data nor errors",
            )
            .set_permanent()
        })
    }
}

impl GraphQLResponse<Value> {
    /// The same response with `data` deserialized into `T` (a `null` is `None`). Data that
    /// does not fit `T` is a permanent remote error that quotes the GraphQL errors, if any,
    /// since they usually explain the missing fields.
    pub fn deserialize_data<T: DeserializeOwned>(self) -> Result<GraphQLResponse<T>> {
        let data = match self.data {
            None | Some(Value::Null) => None,
            Some(value) => match serde_json::from_value(value) {
                Ok(data) => Some(data),
                Err(e) => {
                    let mut message =
                        format!("the GraphQL data does not fit the expected type: {e}");
                    if !self.errors.is_empty() {
                        message.push_str("; the server reported: ");
                        message.push_str(&summary(&self.errors));
                    }
                    return Err(Error::new(ErrorKind::Remote, message).set_permanent());
                }
            },
        };
        Ok(GraphQLResponse {
            data,
            errors: self.errors,
            extensions: self.extensions,
            http_status: self.http_status,
        })
    }
}

/// One error a GraphQL server reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphQLError {
    /// What went wrong, for people.
    pub message: String,
    /// Where in the document, when the error is tied to a place in it.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub locations: Vec<Location>,
    /// Which field of the result failed (`["user", "friends", 1, "name"]`), when the error
    /// arose while executing a field; that field is `null` in the data.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub path: Vec<PathSegment>,
    /// Server-specific details (an error `code`, a retry hint), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

impl GraphQLError {
    /// An error with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            locations: Vec::new(),
            path: Vec::new(),
            extensions: None,
        }
    }

    /// The `code` extension, which many servers (Apollo, Hasura, Shopify) set.
    pub fn code(&self) -> Option<&str> {
        self.extensions.as_ref()?.get("code")?.as_str()
    }
}

impl fmt::Display for GraphQLError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.path.is_empty() {
            f.write_str(" (at ")?;
            for (i, segment) in self.path.iter().enumerate() {
                if i > 0 {
                    f.write_str(".")?;
                }
                write!(f, "{segment}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A place in a GraphQL document, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The line.
    pub line: u64,
    /// The column.
    pub column: u64,
}

/// One step of an error's path: a field name or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathSegment {
    /// An index into a list.
    Index(u64),
    /// A field's name (or alias).
    Field(String),
}

impl fmt::Display for PathSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSegment::Index(i) => write!(f, "{i}"),
            PathSegment::Field(name) => f.write_str(name),
        }
    }
}

/// The errors a GraphQL server reported, as the source of an [`Error`]: a subscription's
/// `error` message and [`GraphQLResponse::into_data`] attach them so that callers can get
/// them back whole with [`GraphQLErrors::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphQLErrors(pub Vec<GraphQLError>);

impl GraphQLErrors {
    /// The GraphQL errors behind `error`, if it came from them.
    pub fn of(error: &Error) -> Option<&GraphQLErrors> {
        std::error::Error::source(error)?.downcast_ref::<GraphQLErrors>()
    }
}

impl fmt::Display for GraphQLErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&summary(&self.0))
    }
}

impl std::error::Error for GraphQLErrors {}

/// A permanent remote error quoting the first `errors`, which it carries as its source.
pub(crate) fn errors_error(what: &str, errors: Vec<GraphQLError>) -> Error {
    Error::new(ErrorKind::Remote, format!("{what}: {}", summary(&errors)))
        .set_permanent()
        .set_source(GraphQLErrors(errors))
}

/// The first few messages, each cut short: `a; b (at x.1); and 4 more`.
fn summary(errors: &[GraphQLError]) -> String {
    if errors.is_empty() {
        return "(no error message)".to_string();
    }
    let mut parts: Vec<String> = errors
        .iter()
        .take(QUOTED_ERRORS)
        .map(|e| {
            let text = e.to_string();
            if text.chars().count() > QUOTED_MESSAGE_CHARS {
                let cut: String = text.chars().take(QUOTED_MESSAGE_CHARS).collect();
                format!("{cut}…")
            } else {
                text
            }
        })
        .collect();
    if errors.len() > QUOTED_ERRORS {
        parts.push(format!("and {} more", errors.len() - QUOTED_ERRORS));
    }
    parts.join("; ")
}

/// Reads an HTTP answer as a GraphQL response, or says why it is not one.
///
/// A GraphQL response is a JSON object with `data` or a non-empty `errors` list; with a
/// non-2xx status it must carry `errors` (a failure status without them is the transport's
/// or a proxy's answer, not the GraphQL server's).
pub(crate) fn decode_http(response: &Response) -> std::result::Result<GraphQLResponse, String> {
    let value: Value =
        serde_json::from_slice(&response.body).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = &value else {
        return Err("not a JSON object".to_string());
    };
    let has_errors = map
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(|errors| !errors.is_empty());
    if !response.is_success() && !has_errors {
        return Err("a failure status without GraphQL `errors`".to_string());
    }
    if !has_errors && !map.contains_key("data") {
        return Err("neither `data` nor `errors`".to_string());
    }
    let mut decoded: GraphQLResponse =
        serde_json::from_value(value).map_err(|e| format!("a malformed GraphQL response: {e}"))?;
    decoded.http_status = Some(response.status.as_u16());
    Ok(decoded)
}

/// `null` read as the type's default, since servers send `"errors": null` as often as they
/// leave the member out.
fn null_as_default<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn http(status: u16, body: Value) -> Response {
        Response {
            status: reqwest::StatusCode::from_u16(status).unwrap_or_default(),
            headers: reqwest::header::HeaderMap::new(),
            body: body.to_string().into(),
            url: url::Url::parse("http://127.0.0.1/graphql").unwrap_or_else(|_| unreachable!()),
        }
    }

    #[test]
    fn partial_data_keeps_both_data_and_errors() {
        let answer = decode_http(&http(
            200,
            json!({
                "data": {"a": 1, "b": null},
                "errors": [{"message": "b failed", "path": ["b", 0, "c"], "locations": [{"line": 1, "column": 5}]}]
            }),
        ));
        let answer = answer.unwrap_or_default();
        assert_eq!(answer.data, Some(json!({"a": 1, "b": null})));
        assert_eq!(answer.errors.len(), 1);
        assert_eq!(answer.errors[0].to_string(), "b failed (at b.0.c)");
        assert_eq!(
            answer.errors[0].locations,
            vec![Location { line: 1, column: 5 }]
        );
        assert_eq!(answer.http_status, Some(200));
    }

    #[test]
    fn null_members_read_as_empty() {
        let answer = decode_http(&http(200, json!({"data": {"x": 1}, "errors": null})));
        assert!(answer.is_ok_and(|a| a.is_ok()));
    }

    #[test]
    fn what_is_not_a_graphql_answer_is_said_so() {
        assert!(decode_http(&http(200, json!([1, 2]))).is_err());
        assert!(decode_http(&http(200, json!({"done": true}))).is_err());
        assert!(decode_http(&http(503, json!({"data": null}))).is_err());
        assert!(decode_http(&http(400, json!({"errors": [{"nomessage": 1}]}))).is_err());
        assert!(decode_http(&http(400, json!({"errors": [{"message": "bad"}]}))).is_ok());
    }

    #[test]
    fn into_data_carries_the_errors_as_its_source() {
        let answer = GraphQLResponse::<Value> {
            data: Some(json!({})),
            errors: (0..5).map(|i| GraphQLError::new(format!("e{i}"))).collect(),
            ..GraphQLResponse::default()
        };
        let err = answer.into_data().err().unwrap_or_else(|| unreachable!());
        assert!(err.message().ends_with("e0; e1; e2; and 2 more"), "{err}");
        assert_eq!(GraphQLErrors::of(&err).map(|e| e.0.len()), Some(5));
        assert!(!err.is_temporary());
    }
}
