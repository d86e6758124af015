//! The one mechanism every connector's cross-cutting behaviour goes through: a [`Layer`]
//! wraps the rest of the stack ([`Next`]) and may change the request, call the rest any
//! number of times, wait, or answer itself.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use kernelize_core::{Error, ErrorKind, Result};

use super::request::{Body, Request, Response};

/// One piece of behaviour around sending a request: retry, timeout, rate limit,
/// authentication, circuit breaker, concurrency limit, cache.
///
/// A layer is shared by every clone of the client it is part of, so state it keeps (a
/// token, a rate limiter's budget, a breaker's state) is shared too.
#[async_trait]
pub trait Layer: Send + Sync + 'static {
    /// A short name for logs (`retry`, `timeout`).
    fn name(&self) -> &'static str;

    /// Handles one request: do something, then (usually) `next.run(request)`.
    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response>;
}

/// The rest of the stack below a layer. It can be run more than once (it is `Copy`).
#[derive(Clone, Copy)]
pub struct Next<'a> {
    layers: &'a [Arc<dyn Layer>],
    transport: &'a Transport,
}

impl<'a> Next<'a> {
    pub(crate) fn new(layers: &'a [Arc<dyn Layer>], transport: &'a Transport) -> Self {
        Self { layers, transport }
    }

    /// Sends `request` through the remaining layers and then over the network.
    pub async fn run(self, request: Request) -> Result<Response> {
        match self.layers.split_first() {
            Some((layer, rest)) => layer.handle(request, Next::new(rest, self.transport)).await,
            None => self.transport.send(request).await,
        }
    }
}

/// The bottom of every stack: one attempt over the shared `reqwest` client.
#[derive(Debug, Clone)]
pub struct Transport {
    client: reqwest::Client,
}

impl Transport {
    /// A transport over `client`.
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends one attempt and reads the whole body. Any status is a response; only a
    /// failure to get one (connection, TLS, a body cut short) is an error, temporary when
    /// trying again may help.
    pub async fn send(&self, request: Request) -> Result<Response> {
        let started = Instant::now();
        let describe = request.describe();
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone())
            .headers(request.headers);
        builder = match request.body {
            Body::Empty => builder,
            Body::Json(value) => builder.json(&value),
            Body::Bytes { data, content_type } => builder
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(data),
            Body::Multipart(parts) => {
                let mut form = reqwest::multipart::Form::new();
                for part in parts {
                    let mut p = reqwest::multipart::Part::bytes(part.data.to_vec());
                    if let Some(file_name) = part.file_name {
                        p = p.file_name(file_name);
                    }
                    if let Some(ct) = part.content_type {
                        p = p.mime_str(&ct).map_err(|e| {
                            Error::new(
                                ErrorKind::InvalidInput,
                                format!("bad media type `{ct}` for part `{}`: {e}", part.name),
                            )
                        })?;
                    }
                    form = form.part(part.name, p);
                }
                builder.multipart(form)
            }
        };
        let response = builder
            .send()
            .await
            .map_err(|e| transport_error(&describe, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let url = response.url().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(&describe, e))?;
        tracing::trace!(
            request = %describe,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "http attempt"
        );
        Ok(Response {
            status,
            headers,
            body,
            url,
        })
    }
}

/// A `reqwest` failure as our error: timeouts and connection failures are temporary;
/// a request that could not be built is invalid input.
fn transport_error(describe: &str, e: reqwest::Error) -> Error {
    let (kind, temporary) = if e.is_timeout() {
        (ErrorKind::Timeout, true)
    } else if e.is_builder() {
        (ErrorKind::InvalidInput, false)
    } else if e.is_connect() || e.is_request() || e.is_body() {
        (ErrorKind::Remote, true)
    } else if e.is_decode() {
        (ErrorKind::CorruptData, false)
    } else {
        (ErrorKind::Remote, true)
    };
    // reqwest's message includes the URL, whose query may hold a credential: describe the
    // request ourselves and keep reqwest's error without its URL as the source.
    let error =
        Error::new(kind, format!("{describe} failed: {}", cause(&e))).set_source(e.without_url());
    if temporary {
        error.set_temporary()
    } else {
        error.set_permanent()
    }
}

/// The innermost cause's text, which names what actually went wrong (connection refused).
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}
