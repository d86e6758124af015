//! JWT-bearer grants and self-signed JWTs, checked by servers that verify the RS256
//! signature with the public key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use kernelize_connectors::http::{
    HttpClient, JWT_BEARER_GRANT, JwtAuth, JwtBearer, JwtClaims, JwtSigner, OAuth2JwtBearer,
    ScopePlacement,
};
use kernelize_core::ErrorKind;
use secrecy::SecretString;
use serde_json::{Value, json};

const PRIVATE_KEY: &str = include_str!("fixtures/jwt-test-key.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/jwt-test-key.pub.pem");

#[derive(Default)]
struct Seen {
    /// Verified assertion claims, one per token request.
    assertions: Vec<Value>,
    /// Form fields of token requests (without the assertion).
    forms: Vec<Vec<(String, String)>>,
    /// Verified claims of JWTs presented directly to the API.
    bearer_claims: Vec<Value>,
    /// Authorization headers the API saw.
    authorizations: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

/// Verifies an RS256 JWT with the test public key; `aud` is checked by the caller.
fn verify(token: &str) -> Result<Value, String> {
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

async fn token_endpoint(State(seen): State<Shared>, body: String) -> impl IntoResponse {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if field("grant_type").as_deref() != Some(JWT_BEARER_GRANT) {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"error":"unsupported_grant_type"}"#,
        )
            .into_response();
    }
    let claims = match verify(&field("assertion").unwrap_or_default()) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(r#"{{"error":"invalid_grant","error_description":"{e}"}}"#),
            )
                .into_response();
        }
    };
    let mut seen = seen.lock().unwrap();
    seen.assertions.push(claims);
    seen.forms
        .push(form.into_iter().filter(|(k, _)| k != "assertion").collect());
    let n = seen.assertions.len();
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"access_token": format!("access-{n}"), "token_type": "Bearer", "expires_in": 3600})
            .to_string(),
    )
        .into_response()
}

async fn api(State(seen): State<Shared>, headers: HeaderMap) -> impl IntoResponse {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut seen = seen.lock().unwrap();
    seen.authorizations.push(auth.clone());
    let Some(token) = auth.strip_prefix("Bearer ") else {
        return (StatusCode::UNAUTHORIZED, "no bearer token").into_response();
    };
    if !token.starts_with("access-") {
        match verify(token) {
            Ok(claims) => seen.bearer_claims.push(claims),
            Err(e) => return (StatusCode::UNAUTHORIZED, e).into_response(),
        }
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        r#"{"ok":true}"#,
    )
        .into_response()
}

async fn start() -> (String, Shared) {
    let seen: Shared = Arc::default();
    let app = Router::new()
        .route("/token", post(token_endpoint))
        .route("/api/me", get(api))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn signer() -> JwtSigner {
    JwtSigner::rs256_pem(&SecretString::from(PRIVATE_KEY.to_string()))
        .unwrap()
        .with_key_id("key-1")
}

#[tokio::test]
async fn a_jwt_bearer_grant_exchanges_a_signed_assertion_for_a_shared_token() {
    let (base, seen) = start().await;
    let token_url = url::Url::parse(&format!("{base}/token")).unwrap();
    let mut claims = JwtClaims::new("robot@project.iam.example.com");
    claims.subject = Some("alice@example.com".into());
    let layer = OAuth2JwtBearer::new(
        JwtBearer {
            token_url: token_url.clone(),
            signer: signer(),
            claims,
            scopes: vec!["read".into(), "write".into()],
            scope_placement: ScopePlacement::Claim,
            refresh_margin: Duration::from_secs(60),
        },
        reqwest::Client::new(),
    );
    let debug = format!("{layer:?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    let client = HttpClient::builder(&format!("{base}/api"))
        .unwrap()
        .layer(layer)
        .build()
        .unwrap();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get::<Value, _>("me", &()).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), json!({"ok": true}));
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.assertions.len(), 1, "ten calls, one token request");
    let claims = &seen.assertions[0];
    assert_eq!(claims["iss"], "robot@project.iam.example.com");
    assert_eq!(claims["sub"], "alice@example.com");
    assert_eq!(claims["aud"], token_url.as_str());
    assert_eq!(claims["scope"], "read write");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    assert!(
        !seen.forms[0].iter().any(|(k, _)| k == "scope"),
        "scopes go in the claim, not the form: {:?}",
        seen.forms[0]
    );
    assert!(seen.authorizations.iter().all(|a| a == "Bearer access-1"));
}

#[tokio::test]
async fn scopes_can_go_in_the_form_and_a_refused_assertion_is_a_permission_error() {
    let (base, seen) = start().await;
    let layer = OAuth2JwtBearer::new(
        JwtBearer {
            token_url: url::Url::parse(&format!("{base}/token")).unwrap(),
            signer: signer(),
            claims: JwtClaims::new("svc"),
            scopes: vec!["a".into()],
            scope_placement: ScopePlacement::Form,
            refresh_margin: Duration::from_secs(60),
        },
        reqwest::Client::new(),
    );
    let client = HttpClient::builder(&format!("{base}/api"))
        .unwrap()
        .layer(layer)
        .build()
        .unwrap();
    let _: Value = client.get("me", &()).await.unwrap();
    {
        let seen = seen.lock().unwrap();
        assert!(seen.forms[0].contains(&("scope".into(), "a".into())));
        assert!(seen.assertions[0].get("scope").is_none());
    }

    // A key the server does not know: its signature fails and the grant is refused.
    let other = std::process::Command::new("openssl")
        .args(["genrsa", "2048"])
        .output()
        .expect("openssl makes a second key");
    let other_key = String::from_utf8(other.stdout).unwrap();
    let stranger = OAuth2JwtBearer::new(
        JwtBearer {
            token_url: url::Url::parse(&format!("{base}/token")).unwrap(),
            signer: JwtSigner::rs256_pem(&SecretString::from(other_key.clone())).unwrap(),
            claims: JwtClaims::new("svc"),
            scopes: vec![],
            scope_placement: ScopePlacement::Claim,
            refresh_margin: Duration::from_secs(60),
        },
        reqwest::Client::new(),
    );
    let client = HttpClient::builder(&format!("{base}/api"))
        .unwrap()
        .layer(stranger)
        .build()
        .unwrap();
    let error = client.get::<Value, _>("me", &()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert!(error.to_string().contains("invalid_grant"), "{error}");
    let key_body = other_key.lines().nth(1).unwrap();
    assert!(!format!("{error} {error:?}").contains(key_body));
}

#[tokio::test]
async fn a_self_signed_jwt_is_the_bearer_token_and_is_reused_until_refresh() {
    let (base, seen) = start().await;
    let mut claims = JwtClaims::new("ACCOUNT.USER.SHA256:fingerprint");
    claims.subject = Some("ACCOUNT.USER".into());
    claims.lifetime = Duration::from_secs(600);
    let client = HttpClient::builder(&format!("{base}/api"))
        .unwrap()
        .layer(JwtAuth::new(signer(), claims, Duration::from_secs(60)))
        .build()
        .unwrap();
    for _ in 0..3 {
        let _: Value = client.get("me", &()).await.unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.bearer_claims.len(), 3);
    assert_eq!(
        seen.bearer_claims[0]["iss"],
        "ACCOUNT.USER.SHA256:fingerprint"
    );
    assert_eq!(seen.bearer_claims[0]["sub"], "ACCOUNT.USER");
    assert_eq!(
        seen.authorizations[0], seen.authorizations[2],
        "one JWT, signed once, reused"
    );
}

#[test]
fn a_key_that_is_not_rsa_pem_is_a_config_error_that_does_not_quote_it() {
    let not_a_key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n";
    let error = JwtSigner::rs256_pem(&SecretString::from(not_a_key.to_string())).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
    assert!(
        !format!("{error} {error:?}").contains("c2VjcmV0LWJ5dGVz"),
        "{error:?}"
    );
    let error = JwtSigner::rs256_pem(&SecretString::from("plain text".to_string())).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
}
