//! The generic `http` plugin: any REST API from YAML workflows, the command line and the
//! gateway, through the same layers as the built-in connectors.
//!
//! - Plugin settings ([`HttpSettings`]): base URL, default headers, retry, timeouts, rate
//!   limit, concurrency limit, circuit breaker and authentication. Credentials may be
//!   `${secret:NAME}` or `${env:NAME}` references, resolved by the host.
//! - Action `request`: one request, `{"method", "url", "headers", "query", "body"}`, from
//!   the call's config (a workflow step's `config`). The input, if any, is the body of a
//!   POST, PUT or PATCH whose config has none. Returns `{"status", "headers", "body"}`, the
//!   body as JSON when the answer is JSON, else text.
//! - Action `paginate`: the same plus `pagination`, `items_path` and `max_pages`; returns
//!   `{"items", "pages", "complete"}`.
//!
//! A call's idempotency key (a workflow gives one per step attempt) is sent as the
//! `Idempotency-Key` header unless the config sets its own, which makes a workflow's POST
//! safe to retry.
//!
//! A call's config may also override `retry`, `timeout`, `rate_limit`, `circuit_breaker`
//! and `auth`: the plugin then uses a client stacked with those settings, kept and shared by
//! every call that asks for the same ones (so a per-call rate limit is still one budget). A
//! non-2xx answer, after retries, is an error carrying the status and the start of the body.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::plugin::{
    Action, ActionContext, ActionRouter, Call, Category, Handler, InitContext, Plugin,
    PluginMetadata,
};
use kernelize_core::{Error, ErrorKind, Payload, Permission, PluginFactory, Result};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::{
    ApiKeyAuth, ApiKeyPlace, BasicAuth, BearerAuth, ClientAuthMethod, ClientCredentials,
    HeaderAuth, JwtAuth, JwtBearer, JwtClaims, JwtSigner, OAuth2ClientCredentials, OAuth2JwtBearer,
    ScopePlacement,
};
use super::breaker::{BreakerSettings, CircuitBreaker};
use super::client::HttpClient;
use super::limits::{ConcurrencyLimit, RateLimit};
use super::paginate::{Collected, Pagination, Paginator};
use super::request::{Request, Response};
use super::retry::{RetryLayer, RetryPolicy};
use super::timeout::TimeoutLayer;
use super::{Method, excerpt};

/// The plugin's id.
pub const ID: &str = "http";

/// How many differently-configured clients one plugin instance keeps for per-call
/// overrides before it starts again from none.
const MAX_OVERRIDE_CLIENTS: usize = 64;

/// Timeouts of the `http` plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutSettings {
    /// The whole call, retries and their waits included.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub call: Duration,
    /// One attempt.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub attempt: Duration,
}

impl Default for TimeoutSettings {
    fn default() -> Self {
        Self {
            call: Duration::from_secs(60),
            attempt: Duration::from_secs(30),
        }
    }
}

/// A client-side rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests a second.
    pub per_second: u32,
    /// Requests allowed at once after a quiet spell; defaults to `per_second`.
    #[serde(default)]
    pub burst: Option<u32>,
}

/// Authentication of the `http` plugin. Every credential is a secret: write it as a
/// `${secret:NAME}` or `${env:NAME}` reference in plugin settings.
///
/// Serialized, it is only its type and `"redacted": true`: credentials are never written
/// back out.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSettings {
    /// `Authorization: Bearer TOKEN`.
    Bearer {
        /// The token.
        #[schemars(with = "String")]
        token: SecretString,
    },
    /// HTTP Basic.
    Basic {
        /// The user.
        user: String,
        /// The password.
        #[schemars(with = "String")]
        password: SecretString,
    },
    /// An API key in a header or a query parameter.
    ApiKey {
        /// The key.
        #[schemars(with = "String")]
        key: SecretString,
        /// The header it goes in (`X-API-Key`).
        #[serde(default)]
        header: Option<String>,
        /// The query parameter it goes in, instead of a header.
        #[serde(default)]
        query: Option<String>,
    },
    /// A set of headers, each a credential.
    Headers {
        /// Header name to value.
        #[schemars(with = "BTreeMap<String, String>")]
        headers: BTreeMap<String, SecretString>,
    },
    /// OAuth2 client credentials.
    Oauth2ClientCredentials {
        /// The token endpoint.
        token_url: String,
        /// The client id.
        client_id: String,
        /// The client secret.
        #[schemars(with = "String")]
        client_secret: SecretString,
        /// Scopes.
        #[serde(default)]
        scopes: Vec<String>,
        /// Send the id and secret in the form body instead of HTTP Basic.
        #[serde(default)]
        credentials_in_body: bool,
    },
    /// OAuth2 JWT-bearer grant with an RS256 assertion (service accounts).
    Oauth2JwtBearer {
        /// The token endpoint.
        token_url: String,
        /// The RSA private key in PEM.
        #[schemars(with = "String")]
        private_key: SecretString,
        /// Its key id (`kid`).
        #[serde(default)]
        key_id: Option<String>,
        /// `iss`.
        issuer: String,
        /// `sub`.
        #[serde(default)]
        subject: Option<String>,
        /// `aud`; the token endpoint when absent.
        #[serde(default)]
        audience: Option<String>,
        /// Scopes.
        #[serde(default)]
        scopes: Vec<String>,
        /// Send scopes as a form field instead of a `scope` claim.
        #[serde(default)]
        scopes_in_form: bool,
    },
    /// A self-signed RS256 JWT as the bearer token (key-pair authentication).
    Jwt {
        /// The RSA private key in PEM.
        #[schemars(with = "String")]
        private_key: SecretString,
        /// Its key id (`kid`).
        #[serde(default)]
        key_id: Option<String>,
        /// `iss`.
        issuer: String,
        /// `sub`.
        #[serde(default)]
        subject: Option<String>,
        /// `aud`.
        #[serde(default)]
        audience: Option<String>,
    },
}

impl AuthSettings {
    /// The type's name, as in config.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthSettings::Bearer { .. } => "bearer",
            AuthSettings::Basic { .. } => "basic",
            AuthSettings::ApiKey { .. } => "api_key",
            AuthSettings::Headers { .. } => "headers",
            AuthSettings::Oauth2ClientCredentials { .. } => "oauth2_client_credentials",
            AuthSettings::Oauth2JwtBearer { .. } => "oauth2_jwt_bearer",
            AuthSettings::Jwt { .. } => "jwt",
        }
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The kind only: every variant holds a credential.
        f.debug_struct("AuthSettings")
            .field("type", &self.kind())
            .finish_non_exhaustive()
    }
}

impl Serialize for AuthSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("type", self.kind())?;
        map.serialize_entry("redacted", &true)?;
        map.end()
    }
}

/// The layers a client is stacked with: the plugin's settings, or a call's overrides.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LayerSettings {
    /// Retry policy; the default policy when absent.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// Timeouts; 60 s a call and 30 s an attempt when absent.
    #[serde(default)]
    pub timeout: Option<TimeoutSettings>,
    /// A client-side rate limit; none when absent.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSettings>,
    /// Most requests in flight; no limit when absent.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// A circuit breaker; none when absent.
    #[serde(default)]
    pub circuit_breaker: Option<BreakerSettings>,
    /// Authentication; none when absent.
    #[serde(default)]
    pub auth: Option<AuthSettings>,
}

impl LayerSettings {
    fn is_empty(&self) -> bool {
        self.retry.is_none()
            && self.timeout.is_none()
            && self.rate_limit.is_none()
            && self.concurrency.is_none()
            && self.circuit_breaker.is_none()
            && self.auth.is_none()
    }
}

/// `layers()` for the two config types that carry the layer fields.
macro_rules! layers_of {
    ($t:ty) => {
        impl $t {
            /// The layer settings among these fields.
            pub fn layers(&self) -> LayerSettings {
                LayerSettings {
                    retry: self.retry.clone(),
                    timeout: self.timeout.clone(),
                    rate_limit: self.rate_limit.clone(),
                    concurrency: self.concurrency,
                    circuit_breaker: self.circuit_breaker.clone(),
                    auth: self.auth.clone(),
                }
            }
        }
    };
}
layers_of!(HttpSettings);
layers_of!(RequestSpec);

/// Settings of the `http` plugin.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// The URL that relative request URLs are resolved against.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Retry policy; the default policy when absent.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// Timeouts; 60 s a call and 30 s an attempt when absent.
    #[serde(default)]
    pub timeout: Option<TimeoutSettings>,
    /// A client-side rate limit; none when absent.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSettings>,
    /// Most requests in flight; no limit when absent.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// A circuit breaker; none when absent.
    #[serde(default)]
    pub circuit_breaker: Option<BreakerSettings>,
    /// Authentication; none when absent.
    #[serde(default)]
    pub auth: Option<AuthSettings>,
}

/// One request, as a call's config and input give it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// The method; GET when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// An absolute URL, or a path under the plugin's base URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters.
    #[serde(default)]
    pub query: Map<String, Value>,
    /// The body: JSON, or a string sent as it is (`text/plain` unless a `Content-Type`
    /// header says otherwise).
    #[serde(default)]
    pub body: Option<Value>,
    /// An idempotency key, which lets retry resend a POST.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Pagination (action `paginate` only).
    #[serde(default)]
    pub pagination: Option<Pagination>,
    /// Where each page's items are (action `paginate` only).
    #[serde(default)]
    pub items_path: Option<String>,
    /// Most pages (action `paginate` only); 1000 when absent.
    #[serde(default)]
    pub max_pages: Option<usize>,
    /// Retry policy; the default policy when absent.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// Timeouts; 60 s a call and 30 s an attempt when absent.
    #[serde(default)]
    pub timeout: Option<TimeoutSettings>,
    /// A client-side rate limit; none when absent.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSettings>,
    /// Most requests in flight; no limit when absent.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// A circuit breaker; none when absent.
    #[serde(default)]
    pub circuit_breaker: Option<BreakerSettings>,
    /// Authentication; none when absent.
    #[serde(default)]
    pub auth: Option<AuthSettings>,
}

/// What `request` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// Response headers (repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// The body: JSON when the answer says it is JSON, else text (invalid UTF-8
    /// replaced); null when empty.
    pub body: Value,
}

/// What `paginate` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaginatedItems {
    /// Every page's items, in order.
    pub items: Vec<Value>,
    /// Pages fetched.
    pub pages: usize,
    /// `false` when `max_pages` stopped the walk before the last page.
    pub complete: bool,
}

/// Action `request`.
#[derive(Debug)]
pub struct RequestAction;

impl Action for RequestAction {
    const NAME: &'static str = "request";
    const DESCRIPTION: &'static str =
        "Send one HTTP request through the plugin's layers; non-2xx answers are errors.";
    type Config = RequestSpec;
    type Input = Payload;
    type Output = HttpAnswer;

    fn permissions() -> Vec<Permission> {
        vec![Permission::Network { host: "*".into() }]
    }
}

/// Action `paginate`.
#[derive(Debug)]
pub struct PaginateAction;

impl Action for PaginateAction {
    const NAME: &'static str = "paginate";
    const DESCRIPTION: &'static str =
        "Walk the pages of a request (link, cursor, offset, page, next_url) and collect the items.";
    type Config = RequestSpec;
    type Input = Payload;
    type Output = PaginatedItems;

    fn permissions() -> Vec<Permission> {
        vec![Permission::Network { host: "*".into() }]
    }
}

static ROUTER: LazyLock<ActionRouter<HttpPlugin>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<RequestAction>()
        .action::<PaginateAction>()
});

/// The `http` plugin.
#[derive(Default)]
pub struct HttpPlugin {
    settings: HttpSettings,
    client: Option<HttpClient>,
    overrides: Mutex<HashMap<String, HttpClient>>,
}

impl std::fmt::Debug for HttpPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPlugin")
            .field("base_url", &self.settings.base_url)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The `http` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    PluginFactory::new(|| Box::new(HttpPlugin::default()))
}

impl HttpPlugin {
    /// A plugin with `settings`, ready to call without a manager.
    pub fn with_settings(settings: HttpSettings) -> Result<Self> {
        let client = build_client(&settings, &settings.layers())?;
        Ok(Self {
            settings,
            client: Some(client),
            overrides: Mutex::default(),
        })
    }

    /// The client for a call: the plugin's own, or one stacked with the call's overrides.
    fn client_for(&self, spec: &RequestSpec) -> Result<HttpClient> {
        let base = self.client.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                "the http plugin is not initialized",
            )
        })?;
        let o = spec.layers();
        if o.is_empty() {
            return Ok(base.clone());
        }
        let d = self.settings.layers();
        let merged = LayerSettings {
            retry: o.retry.or(d.retry),
            timeout: o.timeout.or(d.timeout),
            rate_limit: o.rate_limit.or(d.rate_limit),
            concurrency: o.concurrency.or(d.concurrency),
            circuit_breaker: o.circuit_breaker.or(d.circuit_breaker),
            auth: o.auth.or(d.auth),
        };
        // The key holds credentials, so it stays inside this map and is never logged.
        let key = override_key(&merged)?;
        let mut cache = self.overrides.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = cache.get(&key) {
            return Ok(client.clone());
        }
        let client = build_client(&self.settings, &merged)?;
        if cache.len() >= MAX_OVERRIDE_CLIENTS {
            cache.clear();
        }
        cache.insert(key, client.clone());
        Ok(client)
    }

    fn request_from(
        &self,
        client: &HttpClient,
        spec: &RequestSpec,
        body: Option<Payload>,
    ) -> Result<Request> {
        let method = spec.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("`{method}` is not an HTTP method"),
            )
        })?;
        let url = spec.url.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "the request has no `url` (in the step's config or the input)",
            )
        })?;
        if self.settings.base_url.is_none()
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`{url}` is not an absolute http(s) URL and the plugin has no base_url"),
            ));
        }
        let mut request = client
            .request(method, url)?
            .query(&Value::Object(spec.query.clone()))?;
        for (name, value) in self.settings.headers.iter().chain(&spec.headers) {
            request = request.header(name, value)?;
        }
        if let Some(key) = &spec.idempotency_key {
            request = request.idempotency_key(key)?;
        }
        match &spec.body {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => {
                let content_type = request
                    .headers
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("text/plain; charset=utf-8")
                    .to_string();
                request = request.bytes(text.clone().into_bytes(), &content_type);
            }
            Some(json) => request = request.json(json)?,
        }
        match body {
            None => {}
            Some(Payload::Json(value)) => request = request.json(&value)?,
            Some(Payload::Bytes(blob)) => {
                request = request.bytes(blob.data.clone(), &blob.media_type);
            }
            Some(records @ Payload::Records(_)) => request = request.json(&records.into_json()?)?,
            Some(other) => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("a {} input cannot be a request body", other.kind_name()),
                ));
            }
        }
        Ok(request)
    }
}

/// The client for `settings`' base URL and headers, stacked with `layers` in the documented
/// order.
fn build_client(settings: &HttpSettings, layers: &LayerSettings) -> Result<HttpClient> {
    // Without a base URL every request URL is absolute; the placeholder never serves one.
    let base = settings.base_url.as_deref().unwrap_or("http://localhost/");
    let mut builder = HttpClient::builder(base)?;
    if let Some(max) = layers.concurrency {
        if max == 0 {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "concurrency must be at least 1",
            ));
        }
        builder = builder.layer(ConcurrencyLimit::new(max));
    }
    let timeout = layers.timeout.clone().unwrap_or_default();
    builder = builder.layer(TimeoutLayer::per_call(timeout.call));
    if let Some(breaker) = &layers.circuit_breaker {
        builder = builder.layer(CircuitBreaker::new(breaker.clone()));
    }
    builder = builder.layer(RetryLayer::new(layers.retry.clone().unwrap_or_default()));
    if let Some(limit) = &layers.rate_limit {
        builder = builder.layer(RateLimit::new(
            limit.per_second,
            limit.burst.unwrap_or(limit.per_second),
        )?);
    }
    if let Some(auth) = &layers.auth {
        builder = add_auth(builder, auth)?;
    }
    builder
        .layer(TimeoutLayer::per_attempt(timeout.attempt))
        .build()
}

fn add_auth(
    builder: super::HttpClientBuilder,
    auth: &AuthSettings,
) -> Result<super::HttpClientBuilder> {
    let parse_url = |url: &str| {
        url::Url::parse(url).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("bad token_url `{url}`: {e}"),
            )
        })
    };
    Ok(match auth.clone() {
        AuthSettings::Bearer { token } => builder.layer(BearerAuth::new(token)),
        AuthSettings::Basic { user, password } => builder.layer(BasicAuth::new(&user, password)),
        AuthSettings::ApiKey { key, header, query } => {
            let place = match (header, query) {
                (Some(h), None) => ApiKeyPlace::Header(h),
                (None, Some(q)) => ApiKeyPlace::Query(q),
                (None, None) => ApiKeyPlace::Header("X-API-Key".into()),
                (Some(_), Some(_)) => {
                    return Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        "an api_key goes in a header or the query, not both",
                    ));
                }
            };
            builder.layer(ApiKeyAuth::new(place, key)?)
        }
        AuthSettings::Headers { headers } => {
            builder.layer(HeaderAuth::new(headers.into_iter().collect())?)
        }
        AuthSettings::Oauth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            credentials_in_body,
        } => builder.layer(OAuth2ClientCredentials::new(
            ClientCredentials {
                token_url: parse_url(&token_url)?,
                client_id,
                client_secret,
                scopes,
                extra: Vec::new(),
                client_auth: if credentials_in_body {
                    ClientAuthMethod::Body
                } else {
                    ClientAuthMethod::Basic
                },
                refresh_margin: Duration::from_secs(60),
            },
            reqwest::Client::new(),
        )),
        AuthSettings::Oauth2JwtBearer {
            token_url,
            private_key,
            key_id,
            issuer,
            subject,
            audience,
            scopes,
            scopes_in_form,
        } => {
            let (signer, claims) = jwt_parts(&private_key, key_id, &issuer, subject, audience)?;
            builder.layer(OAuth2JwtBearer::new(
                JwtBearer {
                    token_url: parse_url(&token_url)?,
                    signer,
                    claims,
                    scopes,
                    scope_placement: if scopes_in_form {
                        ScopePlacement::Form
                    } else {
                        ScopePlacement::Claim
                    },
                    refresh_margin: Duration::from_secs(60),
                },
                reqwest::Client::new(),
            ))
        }
        AuthSettings::Jwt {
            private_key,
            key_id,
            issuer,
            subject,
            audience,
        } => {
            let (signer, claims) = jwt_parts(&private_key, key_id, &issuer, subject, audience)?;
            builder.layer(JwtAuth::new(signer, claims, Duration::from_secs(60)))
        }
    })
}

/// The signer and claims of the two JWT auth types.
fn jwt_parts(
    private_key: &SecretString,
    key_id: Option<String>,
    issuer: &str,
    subject: Option<String>,
    audience: Option<String>,
) -> Result<(JwtSigner, JwtClaims)> {
    let mut signer = JwtSigner::rs256_pem(private_key)?;
    if let Some(kid) = key_id {
        signer = signer.with_key_id(&kid);
    }
    let mut claims = JwtClaims::new(issuer);
    claims.subject = subject;
    claims.audience = audience;
    Ok((signer, claims))
}

/// A map key for a set of layer settings, credentials included (serialized in full).
fn override_key(layers: &LayerSettings) -> Result<String> {
    let mut value = serde_json::to_value(layers)?;
    if let (Some(auth), Value::Object(map)) = (&layers.auth, &mut value) {
        map.insert("auth".into(), auth_key(auth));
    }
    Ok(value.to_string())
}

/// `SecretString` serializes to nothing useful, so the key carries a hash of each
/// credential: equal settings map to one client, and the key never holds a secret.
fn auth_key(auth: &AuthSettings) -> Value {
    use secrecy::ExposeSecret;
    use std::hash::{Hash, Hasher};
    let digest = |s: &SecretString| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        s.expose_secret().hash(&mut h);
        h.finish()
    };
    match auth {
        AuthSettings::Bearer { token } => serde_json::json!(["bearer", digest(token)]),
        AuthSettings::Basic { user, password } => {
            serde_json::json!(["basic", user, digest(password)])
        }
        AuthSettings::ApiKey { key, header, query } => {
            serde_json::json!(["api_key", digest(key), header, query])
        }
        AuthSettings::Headers { headers } => serde_json::json!([
            "headers",
            headers
                .iter()
                .map(|(k, v)| (k.clone(), digest(v)))
                .collect::<BTreeMap<_, _>>()
        ]),
        AuthSettings::Oauth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            credentials_in_body,
        } => serde_json::json!([
            "oauth2_client_credentials",
            token_url,
            client_id,
            digest(client_secret),
            scopes,
            credentials_in_body
        ]),
        AuthSettings::Oauth2JwtBearer {
            token_url,
            private_key,
            key_id,
            issuer,
            subject,
            audience,
            scopes,
            scopes_in_form,
        } => serde_json::json!([
            "oauth2_jwt_bearer",
            token_url,
            digest(private_key),
            key_id,
            issuer,
            subject,
            audience,
            scopes,
            scopes_in_form
        ]),
        AuthSettings::Jwt {
            private_key,
            key_id,
            issuer,
            subject,
            audience,
        } => serde_json::json!([
            "jwt",
            digest(private_key),
            key_id,
            issuer,
            subject,
            audience
        ]),
    }
}

/// The call's request: its config (a workflow step's `config`). The input, when there is
/// one and the config has no `body`, is the body of a POST, PUT or PATCH (so a step can
/// send what the step before it produced: JSON as JSON, bytes with their media type, records
/// as an array of JSON rows); other methods ignore the input.
fn request_spec(config: &RequestSpec, input: Payload) -> Result<(RequestSpec, Option<Payload>)> {
    let method = config
        .method
        .as_deref()
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let takes_body = matches!(method.as_str(), "POST" | "PUT" | "PATCH");
    let body = match input {
        Payload::Empty | Payload::Json(Value::Null) => None,
        _ if !takes_body || config.body.is_some() => None,
        other => Some(other),
    };
    Ok((config.clone(), body))
}

fn answer_of(response: Response) -> HttpAnswer {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &response.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let body = if response.body.is_empty() {
        Value::Null
    } else if response.is_json() {
        serde_json::from_slice(&response.body).unwrap_or_else(|_| Value::String(response.text()))
    } else {
        Value::String(response.text())
    };
    HttpAnswer {
        status: response.status.as_u16(),
        headers,
        body,
    }
}

/// Checks that the host of `request` is granted.
fn check_host(ctx: &ActionContext, request: &Request) -> Result<()> {
    let host = request.url.host_str().unwrap_or("").to_string();
    ctx.permissions.check(&Permission::Network { host })
}

#[async_trait]
impl Plugin for HttpPlugin {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(
            ID,
            "HTTP",
            semver::Version::new(0, 1, 0),
            Category::Connector,
        )
        .description(
            "Calls any REST API through retry, timeout, rate-limit, breaker and auth layers.",
        )
        .author("Kernelize")
        .needs(Permission::Network { host: "*".into() })
        .config_type::<HttpSettings>()
        .actions(ROUTER.descriptors())
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        let settings: HttpSettings = serde_json::from_value(ctx.config.settings().clone())
            .map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("invalid http plugin settings: {e}"),
                )
            })?;
        self.client = Some(build_client(&settings, &settings.layers())?);
        self.settings = settings;
        Ok(())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        ROUTER.dispatch(self, call).await
    }
}

#[async_trait]
impl Handler<RequestAction> for HttpPlugin {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: RequestSpec,
        input: Payload,
    ) -> Result<HttpAnswer> {
        let (mut spec, body) = request_spec(&config, input)?;
        if spec.idempotency_key.is_none() {
            spec.idempotency_key = ctx.idempotency_key.clone();
        }
        let client = self.client_for(&spec)?;
        let request = self.request_from(&client, &spec, body)?;
        check_host(&ctx, &request)?;
        let describe = request.describe();
        let response = client.send(request).await?;
        if !response.is_success() {
            // Retries are spent: the answer is the call's error.
            return Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "{describe} answered {}: {}",
                    response.status,
                    excerpt(&response.body)
                ),
            )
            .with_status(response.status.as_u16()));
        }
        Ok(answer_of(response))
    }
}

#[async_trait]
impl Handler<PaginateAction> for HttpPlugin {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: RequestSpec,
        input: Payload,
    ) -> Result<PaginatedItems> {
        let (spec, body) = request_spec(&config, input)?;
        let pagination = spec.pagination.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "paginate needs `pagination` ({\"kind\": \"link\" | \"cursor\" | \"offset\" | \"page\" | \"next_url\", ...})",
            )
        })?;
        let client = self.client_for(&spec)?;
        let request = self.request_from(&client, &spec, body)?;
        check_host(&ctx, &request)?;
        let mut paginator = Paginator::new(pagination);
        paginator.items_path = spec.items_path.clone();
        if let Some(max) = spec.max_pages {
            paginator = paginator.max_pages(max);
        }
        let Collected {
            items,
            pages,
            complete,
        } = client.paginate_all(request, paginator).await?;
        Ok(PaginatedItems {
            items,
            pages,
            complete,
        })
    }
}
