//! Authentication layers against real servers on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scripted_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use kernelize_connectors::http::{
    ApiKeyAuth, ApiKeyPlace, BasicAuth, BearerAuth, ClientAuthMethod, ClientCredentials,
    HeaderAuth, HttpClient, OAuth2ClientCredentials,
};
use scripted_server::ScriptedServer;
use secrecy::SecretString;
use serde_json::{Value, json};

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

#[tokio::test]
async fn static_credentials_reach_the_server_where_configured() {
    let server = ScriptedServer::start(vec![]).await;
    let bearer = HttpClient::builder(&server.url())
        .unwrap()
        .layer(BearerAuth::new(secret("tok-1")))
        .build()
        .unwrap();
    let basic = HttpClient::builder(&server.url())
        .unwrap()
        .layer(BasicAuth::new("alice", secret("wonder land")))
        .build()
        .unwrap();
    let key_header = HttpClient::builder(&server.url())
        .unwrap()
        .layer(ApiKeyAuth::new(ApiKeyPlace::Header("X-API-Key".into()), secret("k-9")).unwrap())
        .build()
        .unwrap();
    let key_query = HttpClient::builder(&server.url())
        .unwrap()
        .layer(ApiKeyAuth::new(ApiKeyPlace::Query("api_key".into()), secret("k-10")).unwrap())
        .build()
        .unwrap();
    let headers = HttpClient::builder(&server.url())
        .unwrap()
        .layer(
            HeaderAuth::new(vec![
                ("X-Client-Id".into(), secret("c-1")),
                ("X-Client-Secret".into(), secret("s-1")),
            ])
            .unwrap(),
        )
        .build()
        .unwrap();
    for client in [&bearer, &basic, &key_header, &key_query, &headers] {
        let _: Value = client.get("me", &json!({"page": 1})).await.unwrap();
    }
    let seen = server.arrivals();
    assert_eq!(seen[0].headers["authorization"], "Bearer tok-1");
    // base64("alice:wonder land")
    assert_eq!(
        seen[1].headers["authorization"],
        "Basic YWxpY2U6d29uZGVyIGxhbmQ="
    );
    assert_eq!(seen[2].headers["x-api-key"], "k-9");
    assert_eq!(seen[3].uri.to_string(), "/me?page=1&api_key=k-10");
    assert_eq!(seen[4].headers["x-client-id"], "c-1");
    assert_eq!(seen[4].headers["x-client-secret"], "s-1");
    // Debug output of a layer never shows the credential.
    let debug = format!("{:?}", BearerAuth::new(secret("tok-1")));
    assert!(!debug.contains("tok-1"), "{debug}");
}

/// An OAuth2 server: `/token` issues `token-N` (the first with a short lifetime), `/api`
/// accepts only the newest token; `/revoke` makes the newest token invalid.
#[derive(Default)]
struct AuthServer {
    issued: AtomicU64,
    valid: AtomicU64,
    api_calls: AtomicU64,
    first_lifetime: AtomicU64,
}

async fn token(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    // Client authentication: Basic base64("app:app-secret").
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some("Basic YXBwOmFwcC1zZWNyZXQ=")
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        );
    }
    assert!(body.contains("grant_type=client_credentials"), "{body}");
    assert!(body.contains("scope=read+write"), "{body}");
    // Slow enough that concurrent callers pile up behind the first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
    s.valid.store(n, Ordering::SeqCst);
    let lifetime = if n == 1 {
        s.first_lifetime.load(Ordering::SeqCst)
    } else {
        3600
    };
    (
        StatusCode::OK,
        axum::Json(
            json!({"access_token": format!("token-{n}"), "token_type": "Bearer", "expires_in": lifetime}),
        ),
    )
}

async fn api(State(s): State<Arc<AuthServer>>, headers: HeaderMap) -> impl IntoResponse {
    s.api_calls.fetch_add(1, Ordering::SeqCst);
    let want = format!("Bearer token-{}", s.valid.load(Ordering::SeqCst));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str()) {
        (StatusCode::OK, axum::Json(json!({"ok": true})))
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_token"})),
        )
    }
}

async fn revoke(State(s): State<Arc<AuthServer>>) -> StatusCode {
    s.valid.store(0, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

async fn start_auth_server(first_lifetime: u64) -> (String, Arc<AuthServer>) {
    let state = Arc::new(AuthServer::default());
    state.first_lifetime.store(first_lifetime, Ordering::SeqCst);
    let app = Router::new()
        .route("/token", post(token))
        .route("/api", get(api))
        .route("/revoke", post(revoke))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/"), state)
}

fn oauth_client(base: &str) -> HttpClient {
    let settings = ClientCredentials {
        token_url: format!("{base}token").parse().unwrap(),
        client_id: "app".into(),
        client_secret: secret("app-secret"),
        scopes: vec!["read".into(), "write".into()],
        extra: Vec::new(),
        client_auth: ClientAuthMethod::Basic,
        refresh_margin: Duration::from_secs(30),
    };
    HttpClient::builder(base)
        .unwrap()
        .layer(OAuth2ClientCredentials::new(
            settings,
            reqwest::Client::new(),
        ))
        .build()
        .unwrap()
}

async fn fifty_calls(client: &HttpClient) {
    let calls = (0..50).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.get::<Value, _>("api", &()).await })
    });
    for call in futures::future::join_all(calls).await {
        assert_eq!(call.unwrap().unwrap(), json!({"ok": true}));
    }
}

#[tokio::test]
async fn fifty_concurrent_calls_with_an_expired_token_fetch_one_new_token() {
    let (base, server) = start_auth_server(2).await;
    let client = oauth_client(&base);
    let _: Value = client.get("api", &()).await.unwrap();
    assert_eq!(server.issued.load(Ordering::SeqCst), 1);
    // The first token lives 2 s and is refreshed at half its life.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fifty_calls(&client).await;
    assert_eq!(server.issued.load(Ordering::SeqCst), 2);
    assert_eq!(server.api_calls.load(Ordering::SeqCst), 51);
}

#[tokio::test]
async fn fifty_concurrent_first_calls_fetch_one_token() {
    let (base, server) = start_auth_server(3600).await;
    fifty_calls(&oauth_client(&base)).await;
    assert_eq!(server.issued.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_replays_each_call_once() {
    let (base, server) = start_auth_server(3600).await;
    let client = oauth_client(&base);
    let _: Value = client.get("api", &()).await.unwrap();
    reqwest::Client::new()
        .post(format!("{base}revoke"))
        .send()
        .await
        .unwrap();
    fifty_calls(&client).await;
    assert_eq!(server.issued.load(Ordering::SeqCst), 2);
    // 1 first call, then 50 refused and 50 replayed.
    assert_eq!(server.api_calls.load(Ordering::SeqCst), 101);
}

#[tokio::test]
async fn a_refused_client_is_a_permission_error_without_the_secret() {
    let (base, _server) = start_auth_server(3600).await;
    let settings = ClientCredentials {
        token_url: format!("{base}token").parse().unwrap(),
        client_id: "app".into(),
        client_secret: secret("wrong-secret-value"),
        scopes: vec![],
        extra: Vec::new(),
        client_auth: ClientAuthMethod::Basic,
        refresh_margin: Duration::from_secs(30),
    };
    let client = HttpClient::builder(&base)
        .unwrap()
        .layer(OAuth2ClientCredentials::new(
            settings,
            reqwest::Client::new(),
        ))
        .build()
        .unwrap();
    let err = client.get::<Value, _>("api", &()).await.unwrap_err();
    assert_eq!(err.kind(), kernelize_core::ErrorKind::PermissionDenied);
    assert!(err.message().contains("invalid_client"), "{err}");
    let everything = format!("{err:?} {}", err.chain().join(" | "));
    assert!(!everything.contains("wrong-secret-value"), "{everything}");
}
