//! [`HttpClient`]: the shared `reqwest` client, a base URL and a stack of layers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kernelize_core::{Error, ErrorKind, Result};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use url::Url;

use super::layer::{Layer, Next, Transport};
use super::request::{Request, Response};
use super::retry::{RetryLayer, RetryPolicy};
use super::timeout::TimeoutLayer;

/// Settings of the underlying connection pool.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Time to establish a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            user_agent: format!("kernelize/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Builds an [`HttpClient`]: base URL, layers in order, connection settings.
pub struct HttpClientBuilder {
    base_url: Url,
    layers: Vec<Arc<dyn Layer>>,
    settings: ClientSettings,
    client: Option<reqwest::Client>,
}

impl HttpClientBuilder {
    /// Adds a layer below the ones added before: the first layer added is the outermost,
    /// the one every request meets first.
    pub fn layer(mut self, layer: impl Layer) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// Adds a shared layer (one whose state other clients share too).
    pub fn shared_layer(mut self, layer: Arc<dyn Layer>) -> Self {
        self.layers.push(layer);
        self
    }

    /// Connection settings.
    pub fn settings(mut self, settings: ClientSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Uses an existing `reqwest` client (and its pool) instead of building one.
    pub fn reqwest_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<HttpClient> {
        let client = match self.client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .connect_timeout(self.settings.connect_timeout)
                .pool_idle_timeout(self.settings.pool_idle_timeout)
                .pool_max_idle_per_host(self.settings.pool_max_idle_per_host)
                .user_agent(&self.settings.user_agent)
                .build()
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("cannot build the HTTP client: {e}"),
                    )
                })?,
        };
        Ok(HttpClient {
            base_url: self.base_url,
            layers: self.layers.into(),
            transport: Transport::new(client),
        })
    }
}

/// An HTTP client for one API: a base URL, a stack of layers and a pooled `reqwest`
/// client (rustls, keep-alive, HTTP/2 when the server offers it through ALPN, gzip,
/// brotli, zstd and deflate responses decoded). Cloning is cheap and shares everything,
/// layer state included.
#[derive(Clone)]
pub struct HttpClient {
    base_url: Url,
    layers: Arc<[Arc<dyn Layer>]>,
    transport: Transport,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.layers.iter().map(|l| l.name()).collect();
        f.debug_struct("HttpClient")
            .field("base_url", &self.base_url.as_str())
            .field("layers", &names)
            .finish()
    }
}

impl HttpClient {
    /// A builder for `base_url` with no layers.
    pub fn builder(base_url: &str) -> Result<HttpClientBuilder> {
        Ok(HttpClientBuilder {
            base_url: parse_base(base_url)?,
            layers: Vec::new(),
            settings: ClientSettings::default(),
            client: None,
        })
    }

    /// A client for `base_url` with the default layers, outermost first: a 60 s whole-call
    /// timeout, retry with the default [`RetryPolicy`], and a 30 s per-attempt timeout.
    pub fn with_defaults(base_url: &str) -> Result<Self> {
        Self::builder(base_url)?
            .layer(TimeoutLayer::per_call(Duration::from_secs(60)))
            .layer(RetryLayer::new(RetryPolicy::default()))
            .layer(TimeoutLayer::per_attempt(Duration::from_secs(30)))
            .build()
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The layer names, outermost first.
    pub fn layer_names(&self) -> Vec<&'static str> {
        self.layers.iter().map(|l| l.name()).collect()
    }

    /// A request for `path` under the base URL (`users/42` or `/users/42`; an absolute
    /// `http(s)://` URL is taken as is, for "next" links).
    pub fn request(&self, method: Method, path: &str) -> Result<Request> {
        Ok(Request::new(method, self.url(path)?))
    }

    /// `path` resolved against the base URL.
    pub fn url(&self, path: &str) -> Result<Url> {
        if path.starts_with("http://") || path.starts_with("https://") {
            return Url::parse(path).map_err(|e| {
                Error::new(ErrorKind::InvalidInput, format!("bad URL `{path}`: {e}"))
            });
        }
        self.base_url
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("bad path `{path}`: {e}")))
    }

    /// Sends a request through the layers and returns the response, whatever its status.
    pub async fn send(&self, request: Request) -> Result<Response> {
        let started = Instant::now();
        let method = request.method.clone();
        let host = request.url.host_str().unwrap_or("").to_string();
        let path = request.path_label().to_string();
        let span = tracing::debug_span!(
            "http",
            %method,
            %host,
            %path,
            attempt = 1u32,
            status = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        );
        let outcome = Next::new(&self.layers, &self.transport)
            .run(request)
            .instrument(span.clone())
            .await;
        let status = match &outcome {
            Ok(r) => r.status.as_u16().to_string(),
            Err(e) => e.kind().as_str().to_string(),
        };
        let elapsed = started.elapsed();
        span.record("status", status.as_str());
        span.record("elapsed_ms", elapsed.as_millis() as u64);
        tracing::debug!(parent: &span, status = %status, elapsed_ms = elapsed.as_millis() as u64, "http request");
        metrics::counter!("kernelize_http_requests_total", "method" => method.to_string(), "host" => host.clone(), "status" => status)
            .increment(1);
        metrics::histogram!("kernelize_http_request_seconds", "method" => method.to_string(), "host" => host)
            .record(elapsed.as_secs_f64());
        outcome
    }

    /// Sends a request and fails on a non-2xx answer with an error that carries the status,
    /// `Retry-After` and the start of the body.
    pub async fn send_ok(&self, request: Request) -> Result<Response> {
        let describe = request.describe();
        self.send(request).await?.error_for_status(&describe)
    }

    /// `GET path?query`, the answer parsed as JSON.
    pub async fn get<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T> {
        let request = self.request(Method::GET, path)?.query(query)?;
        self.send_ok(request).await?.json()
    }

    /// `POST path` with a JSON body, the answer parsed as JSON. Sent once: give the
    /// request an idempotency key ([`Request::idempotency_key`]) through
    /// [`HttpClient::send_ok`] to make it retryable.
    pub async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let request = self.request(Method::POST, path)?.json(body)?;
        self.send_ok(request).await?.json()
    }

    /// `PUT path` with a JSON body, the answer parsed as JSON.
    pub async fn put<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let request = self.request(Method::PUT, path)?.json(body)?;
        self.send_ok(request).await?.json()
    }

    /// `PATCH path` with a JSON body, the answer parsed as JSON. Sent once unless it has
    /// an idempotency key, as for POST.
    pub async fn patch<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let request = self.request(Method::PATCH, path)?.json(body)?;
        self.send_ok(request).await?.json()
    }

    /// `DELETE path`; the response is returned whole (many APIs answer 204 with no body).
    pub async fn delete(&self, path: &str) -> Result<Response> {
        let request = self.request(Method::DELETE, path)?;
        self.send_ok(request).await
    }
}

/// Parses a base URL and makes sure it ends with `/`, so that joining `users` keeps its
/// last segment (`https://api/v2` + `users` = `https://api/v2/users`).
fn parse_base(base: &str) -> Result<Url> {
    let mut url = Url::parse(base).map_err(|e| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("bad base URL `{base}`: {e}"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("base URL `{base}` must be http or https"),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}
