//! Credentials never reach logs or errors: every log line of every target, at TRACE level
//! (the stack's own, reqwest's, hyper's), is captured while each kind of credential is used,
//! refused and retried, and none of them may appear in it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scripted_server;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kernelize_connectors::http::{
    ApiKeyAuth, ApiKeyPlace, BasicAuth, BearerAuth, ClientAuthMethod, ClientCredentials,
    HeaderAuth, HttpClient, JwtAuth, JwtClaims, JwtSigner, Method, OAuth2ClientCredentials,
    RetryLayer, RetryPolicy,
};
use kernelize_core::{Call, Payload, Permission, PluginConfig, PluginManager};
use scripted_server::{ScriptedServer, Step};
use secrecy::SecretString;
use serde_json::json;

/// Every secret used below; none may appear in the captured log or in an error.
const SECRETS: [&str; 7] = [
    "bearer-S1",
    "basic-pass-S2",
    "query-key-S3",
    "header-key-S4",
    "client-secret-S5",
    "access-token-S6",
    "plugin-token-S7",
];

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

fn quick_retry() -> RetryLayer {
    RetryLayer::new(RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(5),
        ..RetryPolicy::default()
    })
}

// A current-thread runtime: every task (hyper's connection tasks included) runs on the
// thread whose default subscriber captures the log.
#[tokio::test(flavor = "current_thread")]
async fn no_credential_appears_in_trace_logs_or_errors() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut errors = Vec::new();

    // Each static credential: a 401, retried, then a 500; the errors are kept.
    let server = ScriptedServer::start(
        (0..5)
            .flat_map(|_| {
                [
                    Step::status(503).body("later"),
                    Step::status(401).body("who are you"),
                ]
            })
            .collect(),
    )
    .await;
    let layers: Vec<
        Box<
            dyn Fn(
                kernelize_connectors::http::HttpClientBuilder,
            ) -> kernelize_connectors::http::HttpClientBuilder,
        >,
    > = vec![
        Box::new(|b| b.layer(BearerAuth::new(secret("bearer-S1")))),
        Box::new(|b| b.layer(BasicAuth::new("user", secret("basic-pass-S2")))),
        Box::new(|b| {
            b.layer(
                ApiKeyAuth::new(ApiKeyPlace::Query("key".into()), secret("query-key-S3")).unwrap(),
            )
        }),
        Box::new(|b| {
            b.layer(HeaderAuth::new(vec![("X-Key".into(), secret("header-key-S4"))]).unwrap())
        }),
    ];
    for add in layers {
        let client = add(HttpClient::builder(&server.url())
            .unwrap()
            .layer(quick_retry()))
        .build()
        .unwrap();
        tracing::debug!(client = ?client, "client built");
        let request = client.request(Method::GET, "me").unwrap();
        tracing::debug!(request = ?request, "request built");
        errors.push(client.send_ok(request).await.unwrap_err());
    }

    // OAuth2: the token endpoint refuses once (its error quoted), then grants a token
    // that the API refuses.
    let idp = ScriptedServer::start(vec![
        Step::json(401, json!({"error": "invalid_client"})),
        Step::json(
            200,
            json!({"access_token": "access-token-S6", "expires_in": 3600}),
        ),
        Step::json(
            200,
            json!({"access_token": "access-token-S6", "expires_in": 3600}),
        ),
    ])
    .await;
    let api = ScriptedServer::start(vec![Step::status(401); 4]).await;
    let oauth = OAuth2ClientCredentials::new(
        ClientCredentials {
            token_url: url::Url::parse(&format!("{}token", idp.url())).unwrap(),
            client_id: "app".into(),
            client_secret: secret("client-secret-S5"),
            scopes: vec![],
            extra: vec![],
            client_auth: ClientAuthMethod::Body,
            refresh_margin: Duration::from_secs(1),
        },
        reqwest::Client::new(),
    );
    tracing::debug!(layer = ?oauth, "oauth layer");
    let client = HttpClient::builder(&api.url())
        .unwrap()
        .layer(oauth)
        .build()
        .unwrap();
    errors.push(
        client
            .get::<serde_json::Value, _>("x", &())
            .await
            .unwrap_err(),
    );
    errors.push(
        client
            .get::<serde_json::Value, _>("x", &())
            .await
            .unwrap_err(),
    );

    // A self-signed JWT.
    let signer = JwtSigner::rs256_pem(&secret(include_str!("fixtures/jwt-test-key.pem"))).unwrap();
    tracing::debug!(signer = ?signer, "signer");
    let client = HttpClient::builder(&api.url())
        .unwrap()
        .layer(JwtAuth::new(
            signer,
            JwtClaims::new("me"),
            Duration::from_secs(60),
        ))
        .build()
        .unwrap();
    errors.push(
        client
            .get::<serde_json::Value, _>("x", &())
            .await
            .unwrap_err(),
    );

    // A connection that fails, with the key in the query.
    let refused = HttpClient::builder("http://127.0.0.1:9/")
        .unwrap()
        .layer(ApiKeyAuth::new(ApiKeyPlace::Query("key".into()), secret("query-key-S3")).unwrap())
        .build()
        .unwrap();
    errors.push(
        refused
            .get::<serde_json::Value, _>("x", &())
            .await
            .unwrap_err(),
    );

    // The http plugin with its token in settings, answering 401.
    let plugin_api = ScriptedServer::start(vec![Step::status(401).body("nope")]).await;
    let manager = PluginManager::new();
    manager
        .install(kernelize_connectors::http::plugin::factory())
        .unwrap();
    manager.configure(
        "http",
        PluginConfig::with_settings(json!({
            "base_url": plugin_api.url(),
            "auth": {"type": "bearer", "token": "plugin-token-S7"},
            "retry": {"max_attempts": 1}
        }))
        .grant(Permission::Network { host: "*".into() }),
    );
    manager.activate("http").await.unwrap();
    let call = Call::new("request", Payload::Empty).with_config(json!({"url": "me"}));
    errors.push(manager.call("http", call).await.unwrap_err());

    // The credentials did go over the wire (the test would prove nothing otherwise).
    assert_eq!(
        server.arrivals()[0].headers["authorization"],
        "Bearer bearer-S1"
    );
    assert!(
        server.arrivals()[4]
            .uri
            .to_string()
            .contains("query-key-S3")
    );
    assert_eq!(
        api.arrivals()[0].headers["authorization"],
        "Bearer access-token-S6"
    );
    assert_eq!(
        plugin_api.arrivals()[0].headers["authorization"],
        "Bearer plugin-token-S7"
    );

    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(log.len() > 1000, "the capture saw the stack's logs:\n{log}");
    // The request span carries the attempt in flight and, once done, the status.
    assert!(log.contains("attempt=2"), "{log}");
    assert!(log.contains("path=/me"), "{log}");
    assert!(log.contains("status=401"), "{log}");
    let errors: Vec<String> = errors.iter().map(|e| format!("{e} | {e:?}")).collect();
    for secret in SECRETS {
        assert!(!log.contains(secret), "`{secret}` is in the log:\n{log}");
        for error in &errors {
            assert!(
                !error.contains(secret),
                "`{secret}` is in an error: {error}"
            );
        }
    }
}
