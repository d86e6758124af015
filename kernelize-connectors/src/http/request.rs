//! What goes over the wire: [`Request`] (clonable, so a retry can send it again) and
//! [`Response`] (status, headers and the whole body).

use std::time::Duration;

use bytes::Bytes;
use kernelize_core::{Error, ErrorKind, Result};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

/// The header that carries an idempotency key (Stripe's and the IETF draft's name).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// How many bytes of a response body an error message quotes.
pub const BODY_EXCERPT: usize = 512;

/// A request body. Every variant can be sent again, so retries never need the caller.
#[derive(Debug, Clone, Default)]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// JSON, sent as `application/json`.
    Json(serde_json::Value),
    /// Raw bytes with a content type.
    Bytes {
        /// The bytes.
        data: Bytes,
        /// Their media type.
        content_type: String,
    },
    /// `multipart/form-data`.
    Multipart(Vec<Part>),
}

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    /// The form field name.
    pub name: String,
    /// A file name, for file parts.
    pub file_name: Option<String>,
    /// The part's media type; `None` lets the server assume text.
    pub content_type: Option<String>,
    /// The content.
    pub data: Bytes,
}

impl Part {
    /// A text field.
    pub fn text(name: &str, value: &str) -> Self {
        Self {
            name: name.to_string(),
            file_name: None,
            content_type: None,
            data: Bytes::copy_from_slice(value.as_bytes()),
        }
    }

    /// A file field.
    pub fn file(name: &str, file_name: &str, content_type: &str, data: impl Into<Bytes>) -> Self {
        Self {
            name: name.to_string(),
            file_name: Some(file_name.to_string()),
            content_type: Some(content_type.to_string()),
            data: data.into(),
        }
    }
}

/// One HTTP request, as the layers see it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The full URL, query included.
    pub url: Url,
    /// Headers (authentication layers add theirs).
    pub headers: HeaderMap,
    /// The body.
    pub body: Body,
    /// The path as a template (`/users/{id}`) for spans and metrics, so that ids do not
    /// multiply the label values; the URL's path when not set.
    pub path_template: Option<String>,
    /// A whole-call timeout for this request, overriding the client's.
    pub timeout: Option<Duration>,
    /// Whether a response cache in the stack may answer this request, and for how long a
    /// stored answer stays fresh; `None` (the default) bypasses the cache.
    pub cache_ttl: Option<Duration>,
    /// Which answers the cache may store, beyond its own rules (a 200 with GraphQL
    /// `errors` should not be reused); `None` stores every cacheable answer.
    pub cache_if: Option<fn(&Response) -> bool>,
    /// Whether sending it again has the effect of sending it once, when the method does
    /// not tell: `Some(true)` for a POST the server de-duplicates by an id it carries
    /// (Snowflake's `requestId`, BigQuery's `requestId`, Databricks' `idempotency_token`;
    /// see [`Request::replayable`]), `Some(false)` for a PUT that appends
    /// ([`Request::send_once`]); `None` goes by the method.
    pub replayable: Option<bool>,
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: Body::Empty,
            path_template: None,
            timeout: None,
            cache_ttl: None,
            cache_if: None,
            replayable: None,
        }
    }

    /// Adds query parameters from anything that serializes to a flat map or a list of
    /// pairs.
    pub fn query<Q: Serialize + ?Sized>(mut self, query: &Q) -> Result<Self> {
        let value = serde_json::to_value(query)?;
        let pairs: Vec<(String, String)> = match value {
            serde_json::Value::Object(map) => map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, scalar(v)))
                .collect(),
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::Array(mut kv) if kv.len() == 2 => {
                        let v = kv.pop().unwrap_or_default();
                        let k = kv.pop().unwrap_or_default();
                        Ok((scalar(k), scalar(v)))
                    }
                    other => Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("a query list holds [name, value] pairs, not {other}"),
                    )),
                })
                .collect::<Result<_>>()?,
            serde_json::Value::Null => Vec::new(),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("query parameters must be an object or a list of pairs, not {other}"),
                ));
            }
        };
        if !pairs.is_empty() {
            self.url.query_pairs_mut().extend_pairs(pairs);
        }
        Ok(self)
    }

    /// Sets a header; a name or value that HTTP does not allow is an invalid-input error.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self> {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("bad header name `{name}`: {e}"),
            )
        })?;
        let value = HeaderValue::from_str(value).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("bad value for header `{name}`: {e}"),
            )
        })?;
        self.headers.insert(name, value);
        Ok(self)
    }

    /// A JSON body from anything serializable.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self> {
        self.body = Body::Json(serde_json::to_value(body)?);
        Ok(self)
    }

    /// A raw body with its media type.
    pub fn bytes(mut self, data: impl Into<Bytes>, content_type: &str) -> Self {
        self.body = Body::Bytes {
            data: data.into(),
            content_type: content_type.to_string(),
        };
        self
    }

    /// A multipart body.
    pub fn multipart(mut self, parts: Vec<Part>) -> Self {
        self.body = Body::Multipart(parts);
        self
    }

    /// Marks the request safe to retry even when its method is not idempotent (POST,
    /// PATCH), by sending the key in the `Idempotency-Key` header: the server is expected to
    /// apply the request once however often it arrives.
    pub fn idempotency_key(self, key: &str) -> Result<Self> {
        self.header(IDEMPOTENCY_KEY, key)
    }

    /// Marks the request safe to retry although its method is not idempotent, without an
    /// `Idempotency-Key` header: for APIs that de-duplicate by an id of their own in the
    /// URL or the body.
    pub fn replayable(mut self) -> Self {
        self.replayable = Some(true);
        self
    }

    /// Marks the request unsafe to send twice although its method is idempotent (a PUT
    /// that appends a chunk): the retry layer sends it again only after a refusal (429).
    pub fn send_once(mut self) -> Self {
        self.replayable = Some(false);
        self
    }

    /// The path template, for spans and metrics.
    pub fn path_template(mut self, template: &str) -> Self {
        self.path_template = Some(template.to_string());
        self
    }

    /// A whole-call timeout for this request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Lets a [`ResponseCache`](super::ResponseCache) in the stack keep the answer fresh
    /// for `ttl` and revalidate it (ETag, Last-Modified) after that. Caching is opt-in per
    /// request: a connector marks the kinds of request whose answers may be reused.
    pub fn cached(mut self, ttl: Duration) -> Self {
        self.cache_ttl = Some(ttl);
        self
    }

    /// As [`Request::cached`], storing only the answers `keep` accepts.
    pub fn cached_if(mut self, ttl: Duration, keep: fn(&Response) -> bool) -> Self {
        self.cache_ttl = Some(ttl);
        self.cache_if = Some(keep);
        self
    }

    /// Whether sending this request twice has the effect of sending it once: any request
    /// with an idempotency key; else as marked ([`Request::replayable`],
    /// [`Request::send_once`]); else GET, HEAD, PUT, DELETE, OPTIONS and TRACE by RFC 9110.
    pub fn is_idempotent(&self) -> bool {
        if self.headers.contains_key(IDEMPOTENCY_KEY) {
            return true;
        }
        self.replayable.unwrap_or(matches!(
            self.method,
            Method::GET
                | Method::HEAD
                | Method::PUT
                | Method::DELETE
                | Method::OPTIONS
                | Method::TRACE
        ))
    }

    /// The path for spans and metrics: the template when set, else the URL's path.
    pub fn path_label(&self) -> &str {
        self.path_template.as_deref().unwrap_or(self.url.path())
    }

    /// A short description for errors and logs: `GET https://host/path` (no query, which
    /// may carry credentials). With an absolute [path template](Request::path_template)
    /// (`/services/{webhook}`) the template stands for the path, so a URL whose path is
    /// itself a credential (a Slack webhook, a Zapier catch hook) is never written out.
    pub fn describe(&self) -> String {
        // A relative template (`node/article`) names a route, not the path: the URL's path
        // is written then.
        let path = match self.path_template.as_deref() {
            Some(template) if template.starts_with('/') => template,
            _ => self.url.path(),
        };
        format!(
            "{} {}://{}{}",
            self.method,
            self.url.scheme(),
            self.url.host_str().unwrap_or(""),
            path
        )
    }
}

fn scalar(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, already decompressed.
    pub body: Bytes,
    /// The URL that answered (after redirects).
    pub url: Url,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// A header as text, when present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the body is JSON by its content type.
    pub fn is_json(&self) -> bool {
        self.header(CONTENT_TYPE.as_str()).is_some_and(|ct| {
            let ct = ct.split(';').next().unwrap_or("").trim();
            ct == "application/json" || ct.ends_with("+json")
        })
    }

    /// The body parsed as JSON into `T`; a body that does not fit is an error quoting its
    /// start.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                ErrorKind::Remote,
                format!(
                    "the response from {} is not the expected JSON ({e}): {}",
                    self.url.host_str().unwrap_or(""),
                    excerpt(&self.body)
                ),
            )
            .with_status(self.status.as_u16())
        })
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `Retry-After` header as a wait: delay seconds, or an HTTP date (a date in the
    /// past is no wait).
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.header("retry-after")?.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        let when = httpdate::parse_http_date(value).ok()?;
        Some(
            when.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }

    /// `Ok(self)` for 2xx; otherwise an error carrying the status, `Retry-After` and the
    /// start of the body: rate-limited for 429, not-found for 404, permission-denied for
    /// 401/403, remote otherwise; temporary for 408, 429 and 5xx.
    pub fn error_for_status(self, request: &str) -> Result<Self> {
        if self.status.is_success() {
            return Ok(self);
        }
        let code = self.status.as_u16();
        let kind = match code {
            429 => ErrorKind::RateLimited,
            404 => ErrorKind::NotFound,
            401 | 403 => ErrorKind::PermissionDenied,
            _ => ErrorKind::Remote,
        };
        let mut error = Error::new(
            kind,
            format!(
                "{request} answered {}: {}",
                self.status,
                excerpt(&self.body)
            ),
        )
        .with_status(code);
        error = if code == 408 || code == 429 || self.status.is_server_error() {
            error.set_temporary()
        } else {
            error.set_permanent()
        };
        if let Some(after) = self.retry_after() {
            error = error.with_retry_after(after);
        }
        Err(error)
    }
}

/// The start of a body for an error message: at most [`BODY_EXCERPT`] bytes, as text.
pub fn excerpt(body: &[u8]) -> String {
    let cut = body.len().min(BODY_EXCERPT);
    let mut text = String::from_utf8_lossy(&body[..cut]).into_owned();
    if body.len() > cut {
        text.push('…');
    }
    if text.is_empty() {
        text.push_str("(empty body)");
    }
    text
}
