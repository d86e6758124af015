#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

#[cfg(feature = "airflow")]
pub mod airflow;
#[cfg(feature = "bigquery")]
pub mod bigquery;
#[cfg(feature = "databricks")]
pub mod databricks;
#[cfg(feature = "drupal")]
pub mod drupal;
#[cfg(feature = "looker")]
pub mod looker;
#[cfg(feature = "power-automate")]
pub mod power_automate;
#[cfg(feature = "powerbi")]
pub mod powerbi;
#[cfg(feature = "shopify")]
pub mod shopify;
#[cfg(feature = "slack")]
pub mod slack;
#[cfg(feature = "snowflake")]
pub mod snowflake;
#[cfg(feature = "tableau")]
pub mod tableau;
#[cfg(feature = "wordpress")]
pub mod wordpress;
#[cfg(feature = "zapier")]
pub mod zapier;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The largest request body a fake accepts (a Tableau chunk, a Databricks file).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method (`POST`).
    pub method: String,
    /// The path, without the query (`/api/v2/statements`).
    pub path: String,
    /// The query string, undecoded (`requestId=..&async=true`), empty when none.
    pub query: String,
    /// Headers by lower-case name; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

impl Seen {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The query parameters, decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// One query parameter, decoded (the first when repeated).
    pub fn param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The body as form fields (`application/x-www-form-urlencoded`), decoded.
    pub fn form(&self) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

/// Every request a fake received, in arrival order. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<Seen>>>);

impl Journal {
    /// A new, empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The requests with `method` whose path is `path`, or starts with it when `path`
    /// ends with `*`.
    pub fn matching(&self, method: &str, path: &str) -> Vec<Seen> {
        let prefix = path.strip_suffix('*');
        self.all()
            .into_iter()
            .filter(|s| {
                s.method == method
                    && match prefix {
                        Some(p) => s.path.starts_with(p),
                        None => s.path == path,
                    }
            })
            .collect()
    }

    fn push(&self, seen: Seen) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
    }
}

/// A fake running on loopback; it stops when dropped.
#[derive(Debug)]
pub struct Fake {
    url: String,
    journal: Journal,
    stop: Option<oneshot::Sender<()>>,
}

impl Fake {
    /// Its base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The requests it received.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Every request so far (shorthand for `journal().all()`).
    pub fn requests(&self) -> Vec<Seen> {
        self.journal.all()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `router` on a free loopback port, recording every request in `journal`.
pub async fn serve(router: Router, journal: Journal) -> std::io::Result<Fake> {
    serve_on(SocketAddr::from(([127, 0, 0, 1], 0)), router, journal).await
}

/// Serves `router` on `addr`, recording every request in `journal`.
pub async fn serve_on(addr: SocketAddr, router: Router, journal: Journal) -> std::io::Result<Fake> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let recorder = journal.clone();
    let app = router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let journal = recorder.clone();
            async move { record(journal, request, next).await }
        },
    ));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Fake {
        url: format!("http://{local}"),
        journal,
        stop: Some(stop),
    })
}

async fn record(journal: Journal, request: Request, next: Next) -> Response {
    // The fake's own routes (`/_fake/journal`) are not part of the vendor's API.
    if request.uri().path().starts_with("/_fake/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response(),
    };
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    journal.push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers,
        body: body.clone(),
        at: Instant::now(),
    });
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// A JSON answer with `status`.
pub fn json(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// A plain-text answer with `status`.
pub fn text(status: u16, body: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        body.to_string(),
    )
        .into_response()
}

/// A countdown shared by a fake's handlers: `take()` is true the first `n` times, for
/// answering "rate limited" once (or `n` times) before the real answer.
#[derive(Debug, Clone, Default)]
pub struct Times(Arc<Mutex<u32>>);

impl Times {
    /// True for the next `n` calls of [`Times::take`].
    pub fn new(n: u32) -> Self {
        Self(Arc::new(Mutex::new(n)))
    }

    /// Whether one is left; uses it up.
    pub fn take(&self) -> bool {
        let mut left = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if *left > 0 {
            *left -= 1;
            true
        } else {
            false
        }
    }
}
