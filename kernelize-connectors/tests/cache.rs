//! The response cache against a real server on loopback that honours conditional requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kernelize_connectors::http::{CacheSettings, HttpClient, Method, ResponseCache};

#[derive(Default)]
struct Server {
    /// (path, If-None-Match, If-Modified-Since) per request.
    seen: Vec<(String, Option<String>, Option<String>)>,
    version: u32,
}

type Shared = Arc<Mutex<Server>>;

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or_default().to_string())
}

async fn etag(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    let inm = header(&headers, "if-none-match");
    s.seen.push(("/etag".into(), inm.clone(), None));
    let tag = format!("\"v{}\"", s.version);
    if inm.as_deref() == Some(tag.as_str()) {
        return (StatusCode::NOT_MODIFIED, [("etag", tag)]).into_response();
    }
    (
        [("etag", tag), ("content-type", "application/json".into())],
        format!(r#"{{"version":{}}}"#, s.version),
    )
        .into_response()
}

const MODIFIED: &str = "Wed, 21 Oct 2026 07:28:00 GMT";

async fn dated(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    let ims = header(&headers, "if-modified-since");
    s.seen.push(("/dated".into(), None, ims.clone()));
    if ims.as_deref() == Some(MODIFIED) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ([("last-modified", MODIFIED)], "dated body").into_response()
}

async fn private(State(s): State<Shared>) -> Response {
    s.lock().unwrap().seen.push(("/private".into(), None, None));
    ([("cache-control", "no-store")], "secret-ish").into_response()
}

async fn search(State(s): State<Shared>, body: String) -> Response {
    s.lock().unwrap().seen.push(("/search".into(), None, None));
    format!("results for {body}").into_response()
}

async fn start() -> (HttpClient, Arc<ResponseCache>, Shared) {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route("/etag", get(etag))
        .route("/dated", get(dated))
        .route("/private", get(private))
        .route("/search", post(search))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cache = Arc::new(ResponseCache::new(CacheSettings::default()).unwrap());
    let client = HttpClient::builder(&format!("http://{addr}"))
        .unwrap()
        .shared_layer(cache.clone())
        .build()
        .unwrap();
    (client, cache, shared)
}

fn seen(shared: &Shared) -> Vec<(String, Option<String>, Option<String>)> {
    shared.lock().unwrap().seen.clone()
}

#[tokio::test]
async fn a_fresh_entry_answers_without_a_request() {
    let (client, cache, shared) = start().await;
    let get = || {
        client
            .request(Method::GET, "etag")
            .unwrap()
            .cached(Duration::from_secs(60))
    };
    let first = client.send_ok(get()).await.unwrap();
    let second = client.send_ok(get()).await.unwrap();
    assert_eq!(first.body, second.body);
    assert_eq!(
        seen(&shared).len(),
        1,
        "the second answer came from the cache"
    );
    assert_eq!((cache.stats().hits, cache.stats().misses), (1, 1));
    // Without `cached`, the request goes out.
    client
        .send_ok(client.request(Method::GET, "etag").unwrap())
        .await
        .unwrap();
    assert_eq!(seen(&shared).len(), 2);
}

#[tokio::test]
async fn a_stale_entry_is_revalidated_by_etag_and_a_304_serves_the_cached_body() {
    let (client, cache, shared) = start().await;
    let get = || {
        client
            .request(Method::GET, "etag")
            .unwrap()
            .cached(Duration::ZERO)
    };
    let first = client.send_ok(get()).await.unwrap();
    assert_eq!(first.text(), r#"{"version":0}"#);
    let second = client.send_ok(get()).await.unwrap();
    assert_eq!(
        second.status.as_u16(),
        200,
        "a 304 is answered as the stored 200"
    );
    assert_eq!(second.text(), r#"{"version":0}"#);
    assert!(second.is_json(), "the stored headers come with the body");
    let s = seen(&shared);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].1, None);
    assert_eq!(s[1].1.as_deref(), Some("\"v0\""), "If-None-Match sent");
    assert_eq!(cache.stats().revalidated, 1);

    // The resource changes: the server answers 200 with the new body, which replaces
    // the entry.
    shared.lock().unwrap().version = 1;
    assert_eq!(
        client.send_ok(get()).await.unwrap().text(),
        r#"{"version":1}"#
    );
    assert_eq!(
        client.send_ok(get()).await.unwrap().text(),
        r#"{"version":1}"#
    );
    let s = seen(&shared);
    assert_eq!(s[3].1.as_deref(), Some("\"v1\""));
    assert_eq!(cache.stats().revalidated, 2);
}

#[tokio::test]
async fn last_modified_revalidates_too() {
    let (client, cache, shared) = start().await;
    let get = || {
        client
            .request(Method::GET, "dated")
            .unwrap()
            .cached(Duration::ZERO)
    };
    client.send_ok(get()).await.unwrap();
    let again = client.send_ok(get()).await.unwrap();
    assert_eq!(again.text(), "dated body");
    assert_eq!(seen(&shared)[1].2.as_deref(), Some(MODIFIED));
    assert_eq!(cache.stats().revalidated, 1);
}

#[tokio::test]
async fn no_store_is_obeyed_and_post_bodies_are_part_of_the_key() {
    let (client, cache, shared) = start().await;
    for _ in 0..2 {
        let request = client
            .request(Method::GET, "private")
            .unwrap()
            .cached(Duration::from_secs(60));
        client.send_ok(request).await.unwrap();
    }
    assert_eq!(seen(&shared).len(), 2, "no-store answers are never reused");
    assert_eq!(cache.stats().entries, 0);

    let search = |q: &str| {
        client
            .request(Method::POST, "search")
            .unwrap()
            .bytes(q.to_string(), "text/plain")
            .cached(Duration::from_secs(60))
    };
    assert_eq!(
        client.send_ok(search("a")).await.unwrap().text(),
        "results for a"
    );
    assert_eq!(
        client.send_ok(search("b")).await.unwrap().text(),
        "results for b"
    );
    assert_eq!(
        client.send_ok(search("a")).await.unwrap().text(),
        "results for a"
    );
    assert_eq!(
        seen(&shared).len(),
        4,
        "two different bodies went out, the repeated one was a hit"
    );
}
