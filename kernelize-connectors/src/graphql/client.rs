//! [`GraphQLClient`]: operations over an [`HttpClient`]'s stack, subscriptions over
//! WebSocket.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kernelize_core::{Error, ErrorKind, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use url::Url;

use crate::http::{HttpClient, Method, RetryLayer, RetryPolicy, TimeoutLayer, excerpt};

use super::document::OperationType;
use super::options::{SubscriptionOptions, describe_url};
use super::request::{CacheChoice, GraphQLRequest};
use super::response::{GraphQLResponse, decode_http};
use super::retry::retry_verdict;
use super::subscription::{Subscription, open};

/// What the client accepts, most preferred first (GraphQL over HTTP, section 5.2).
const ACCEPT: &str = "application/graphql-response+json, application/json;q=0.9";

/// A GraphQL client: operations are POSTed to one endpoint through an [`HttpClient`], so
/// they go through its layers (authentication, rate limit, circuit breaker, retry,
/// timeouts); subscriptions run over WebSocket with graphql-transport-ws.
///
/// Cloning is cheap and shares the HTTP client.
///
/// # What is an error
///
/// Only a failure to get a GraphQL answer is an `Err`: the connection failed, the call
/// timed out, or the server answered something that is not a GraphQL response (a 502 page
/// from a proxy, a 401 without `errors`). GraphQL `errors` come back inside the
/// [`GraphQLResponse`], beside whatever `data` the server could still produce, whatever the
/// HTTP status (servers following GraphQL over HTTP answer 400 with `errors` for a document
/// that does not validate).
///
/// # Retries
///
/// A query is marked safe to send again with an `Idempotency-Key` header (the same on
/// each attempt of a call), which is what lets the stack's [`RetryLayer`] retry a POST; a
/// mutation, a subscription and any document whose operation cannot be read get no key and
/// are sent once. The key is random per call, so that a server honouring idempotency keys
/// never replays an old answer to a new call; for a query marked cacheable it is derived
/// from the body instead, since a response cache keys requests by their headers too. The
/// layer retries temporary transport failures and the answers its classifier says to
/// retry; with [`retry_verdict`](super::retry_verdict) as that classifier (as in
/// [`GraphQLClient::with_defaults`]), an answer that carries a GraphQL response is never
/// retried, so GraphQL errors never cause a retry.
///
/// # Caching
///
/// [`GraphQLClient::cache`] (or [`GraphQLRequest::cache`] per call) lets a response cache in
/// the stack answer queries, for the given time; mutations and subscriptions are never
/// marked cacheable. The client keeps no cache of its own.
#[derive(Clone, Debug)]
pub struct GraphQLClient {
    http: HttpClient,
    path: String,
    endpoint: Url,
    cache_ttl: Option<Duration>,
    subscriptions: Arc<SubscriptionOptions>,
}

impl GraphQLClient {
    /// A client for the endpoint at `path` under the HTTP client's base URL (`graphql`),
    /// or at an absolute `http(s)://` URL.
    pub fn new(http: HttpClient, path: &str) -> Result<Self> {
        let endpoint = http.url(path)?;
        Ok(Self {
            http,
            path: path.to_string(),
            endpoint,
            cache_ttl: None,
            subscriptions: Arc::new(SubscriptionOptions::default()),
        })
    }

    /// A client for `base_url` + `path` over an HTTP client with the default layers and
    /// GraphQL-aware retries, outermost first: a 60 s whole-call timeout, retry with the
    /// default [`RetryPolicy`] classified by [`retry_verdict`](super::retry_verdict), and
    /// a 30 s per-attempt timeout.
    pub fn with_defaults(base_url: &str, path: &str) -> Result<Self> {
        let http = HttpClient::builder(base_url)?
            .layer(TimeoutLayer::per_call(Duration::from_secs(60)))
            .layer(RetryLayer::new(RetryPolicy::default()).classify(retry_verdict))
            .layer(TimeoutLayer::per_attempt(Duration::from_secs(30)))
            .build()?;
        Self::new(http, path)
    }

    /// Lets a response cache in the HTTP stack answer every query for `ttl` (a request may
    /// say otherwise with [`GraphQLRequest::cache`] or [`GraphQLRequest::uncached`]).
    /// Mutations are never cached.
    pub fn cache(mut self, ttl: Duration) -> Self {
        self.cache_ttl = Some(ttl);
        self
    }

    /// How subscriptions connect (URL, `connection_init` payload, timeouts, bounds).
    pub fn subscriptions(mut self, options: SubscriptionOptions) -> Self {
        self.subscriptions = Arc::new(options);
        self
    }

    /// The endpoint's URL.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// The HTTP client underneath.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Runs `query` with `variables` (anything that serializes to a JSON object, or `&()`
    /// for none).
    pub async fn execute<V: Serialize + ?Sized>(
        &self,
        query: &str,
        variables: &V,
    ) -> Result<GraphQLResponse> {
        self.send(GraphQLRequest::new(query).variables(variables)?)
            .await
    }

    /// Runs the operation named `operation_name` of a document that holds several.
    pub async fn execute_operation<V: Serialize + ?Sized>(
        &self,
        query: &str,
        operation_name: &str,
        variables: &V,
    ) -> Result<GraphQLResponse> {
        let request = GraphQLRequest::new(query)
            .variables(variables)?
            .operation_name(operation_name);
        self.send(request).await
    }

    /// Runs `query` and deserializes `data` into `T` (see
    /// [`GraphQLResponse::deserialize_data`]); `.into_data()` on the answer gives `T` or
    /// an error when the server reported any.
    pub async fn execute_as<T: DeserializeOwned, V: Serialize + ?Sized>(
        &self,
        query: &str,
        variables: &V,
    ) -> Result<GraphQLResponse<T>> {
        self.send_as(GraphQLRequest::new(query).variables(variables)?)
            .await
    }

    /// Runs a request, with its per-call options.
    pub async fn send(&self, request: GraphQLRequest) -> Result<GraphQLResponse> {
        let labels = request.labels();
        let kind = labels.kind_label();
        let span = tracing::debug_span!(
            "graphql",
            operation_type = kind,
            operation_name = %labels.name,
            endpoint = %describe_url(&self.endpoint)
        );
        async {
            let started = Instant::now();
            let outcome = self.post(&request, labels.kind).await;
            let result = match &outcome {
                Ok(answer) if answer.errors.is_empty() => "ok",
                Ok(_) => "graphql_errors",
                Err(_) => "error",
            };
            let elapsed = started.elapsed();
            match &outcome {
                Ok(answer) => tracing::debug!(
                    result,
                    errors = answer.errors.len(),
                    elapsed_ms = elapsed.as_millis() as u64,
                    "graphql operation"
                ),
                Err(e) => tracing::debug!(
                    result,
                    error = %e,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "graphql operation"
                ),
            }
            metrics::counter!("kernelize_graphql_requests_total", "operation_type" => kind, "result" => result)
                .increment(1);
            metrics::histogram!("kernelize_graphql_request_seconds", "operation_type" => kind)
                .record(elapsed.as_secs_f64());
            outcome
        }
        .instrument(span)
        .await
    }

    /// Runs a request and deserializes `data` into `T`.
    pub async fn send_as<T: DeserializeOwned>(
        &self,
        request: GraphQLRequest,
    ) -> Result<GraphQLResponse<T>> {
        self.send(request).await?.deserialize_data()
    }

    /// Starts a subscription to `query` with `variables` over WebSocket; returns once the
    /// server has acknowledged the connection and the `subscribe` message is sent.
    ///
    /// Each subscription has a socket of its own (see [`Subscription`]). Connecting, the
    /// handshake and `connection_ack` are bounded by the [`SubscriptionOptions`] timeouts;
    /// a close code during any of it is an error that says what the code means (4403
    /// forbidden, 4429 too many requests, ...).
    pub async fn subscribe<V: Serialize + ?Sized>(
        &self,
        query: &str,
        variables: &V,
    ) -> Result<Subscription> {
        self.subscribe_request(GraphQLRequest::new(query).variables(variables)?)
            .await
    }

    /// Starts a subscription from a request (to choose the operation name or send
    /// extensions).
    pub async fn subscribe_request(&self, request: GraphQLRequest) -> Result<Subscription> {
        let url = self.websocket_url()?;
        open(&self.subscriptions, &url, &request).await
    }

    /// The WebSocket URL: the configured one, else the endpoint with `ws`/`wss`.
    fn websocket_url(&self) -> Result<Url> {
        if let Some(url) = &self.subscriptions.url {
            return Ok(url.clone());
        }
        let mut url = self.endpoint.clone();
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).map_err(|()| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "cannot derive a WebSocket URL from {}; set SubscriptionOptions::url",
                    describe_url(&self.endpoint)
                ),
            )
        })?;
        Ok(url)
    }

    /// One POST through the stack, its answer read as a GraphQL response.
    async fn post(
        &self,
        request: &GraphQLRequest,
        kind: Option<OperationType>,
    ) -> Result<GraphQLResponse> {
        let body = request.body();
        let mut http_request = self
            .http
            .request(Method::POST, &self.path)?
            .json(&body)?
            .header("accept", ACCEPT)?
            .path_template(self.endpoint.path());
        if kind == Some(OperationType::Query) {
            let ttl = match request.cache {
                CacheChoice::Client => self.cache_ttl,
                CacheChoice::Ttl(ttl) => Some(ttl),
                CacheChoice::Never => None,
            };
            http_request = http_request.idempotency_key(&idempotency_key(&body, ttl.is_some()))?;
            if let Some(ttl) = ttl {
                http_request = http_request.cached_if(ttl, answer_without_errors);
            }
        }
        if let Some(timeout) = request.timeout {
            http_request = http_request.timeout(timeout);
        }
        let describe = http_request.describe();
        let response = self.http.send(http_request).await?;
        match decode_http(&response) {
            Ok(answer) => Ok(answer),
            Err(reason) => {
                let status = response.status;
                // A failure status without a GraphQL body: the status's own error.
                let response = response.error_for_status(&describe)?;
                Err(Error::new(
                    ErrorKind::Remote,
                    format!(
                        "{describe} answered {status} with something that is not a GraphQL response ({reason}): {}",
                        excerpt(&response.body)
                    ),
                )
                .with_status(status.as_u16())
                .set_permanent())
            }
        }
    }
}

/// The idempotency key that lets the retry layer send a query again; the same on every
/// attempt of a call, since the request is cloned for each.
///
/// A query marked cacheable gets a key derived from its body: a response cache keys
/// requests by their headers too, so identical queries must carry identical keys to share
/// an entry. Any other query gets a random key: a server that honours idempotency keys
/// replays its stored answer to a repeated key, which would serve a later identical query
/// a stale answer the caller did not opt into.
fn idempotency_key(body: &serde_json::Value, cacheable: bool) -> String {
    if cacheable {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.to_string().hash(&mut hasher);
        format!("graphql-query-{:016x}", hasher.finish())
    } else {
        format!("graphql-{:032x}", rand::random::<u128>())
    }
}

/// Whether a GraphQL answer may be reused from a cache: one with `errors` (partial or
/// failed) must be asked again.
fn answer_without_errors(response: &crate::http::Response) -> bool {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Option<Vec<serde::de::IgnoredAny>>,
    }
    serde_json::from_slice::<Errors>(&response.body)
        .map(|answer| answer.errors.is_none_or(|e| e.is_empty()))
        .unwrap_or(false)
}
