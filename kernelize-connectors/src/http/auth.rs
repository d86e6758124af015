//! Authentication layers: bearer token, basic, API key (header or query), a fixed header
//! set, a signing hook, OAuth2 client credentials and JWT-bearer grants with a shared,
//! refreshed token, and self-signed JWTs (key-pair authentication).
//!
//! Credentials are [`SecretString`]s: they reach the wire and nothing else. Header values
//! are marked sensitive (so HTTP libraries leave them out of their logs), and errors never
//! quote them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kernelize_core::{Error, ErrorKind, Result};
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::layer::{Layer, Next};
use super::request::{Request, Response, excerpt};

/// A header value holding a credential, marked sensitive.
fn secret_header(value: &str, what: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("the {what} holds characters a header cannot carry"),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// `Authorization: Bearer TOKEN` on every request.
#[derive(Debug, Clone)]
pub struct BearerAuth {
    token: SecretString,
}

impl BearerAuth {
    /// A bearer token.
    pub fn new(token: SecretString) -> Self {
        Self { token }
    }
}

#[async_trait]
impl Layer for BearerAuth {
    fn name(&self) -> &'static str {
        "bearer-auth"
    }

    async fn handle(&self, mut request: Request, next: Next<'_>) -> Result<Response> {
        let value = secret_header(
            &format!("Bearer {}", self.token.expose_secret()),
            "bearer token",
        )?;
        request.headers.insert(AUTHORIZATION, value);
        next.run(request).await
    }
}

/// `Authorization: Basic base64(user:password)` on every request.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    user: String,
    password: SecretString,
}

impl BasicAuth {
    /// A user and password.
    pub fn new(user: &str, password: SecretString) -> Self {
        Self {
            user: user.to_string(),
            password,
        }
    }
}

#[async_trait]
impl Layer for BasicAuth {
    fn name(&self) -> &'static str {
        "basic-auth"
    }

    async fn handle(&self, mut request: Request, next: Next<'_>) -> Result<Response> {
        request
            .headers
            .insert(AUTHORIZATION, basic_header(&self.user, &self.password)?);
        next.run(request).await
    }
}

fn basic_header(user: &str, password: &SecretString) -> Result<HeaderValue> {
    use base64::Engine;
    let raw = format!("{user}:{}", password.expose_secret());
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    secret_header(&format!("Basic {encoded}"), "basic credentials")
}

/// Where an API key goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyPlace {
    /// In this header (`X-API-Key`).
    Header(String),
    /// In this query parameter (`api_key`).
    Query(String),
}

/// An API key in a header or the query string of every request.
#[derive(Debug, Clone)]
pub struct ApiKeyAuth {
    place: ApiKeyPlace,
    key: SecretString,
}

impl ApiKeyAuth {
    /// A key at `place`; a header name HTTP does not allow is a config error.
    pub fn new(place: ApiKeyPlace, key: SecretString) -> Result<Self> {
        if let ApiKeyPlace::Header(name) = &place {
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("bad API key header name `{name}`: {e}"),
                )
            })?;
        }
        Ok(Self { place, key })
    }
}

#[async_trait]
impl Layer for ApiKeyAuth {
    fn name(&self) -> &'static str {
        "api-key-auth"
    }

    async fn handle(&self, mut request: Request, next: Next<'_>) -> Result<Response> {
        match &self.place {
            ApiKeyPlace::Header(name) => {
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                    Error::new(ErrorKind::ConfigInvalid, format!("bad header name: {e}"))
                })?;
                let value = secret_header(self.key.expose_secret(), "API key")?;
                request.headers.insert(name, value);
            }
            ApiKeyPlace::Query(param) => {
                request
                    .url
                    .query_pairs_mut()
                    .append_pair(param, self.key.expose_secret());
            }
        }
        next.run(request).await
    }
}

/// A fixed set of headers, each a credential (for APIs with two or three key headers).
#[derive(Debug, Clone)]
pub struct HeaderAuth {
    headers: Vec<(HeaderName, SecretString)>,
}

impl HeaderAuth {
    /// Headers by name; a name HTTP does not allow is a config error.
    pub fn new(headers: Vec<(String, SecretString)>) -> Result<Self> {
        let headers = headers
            .into_iter()
            .map(|(name, value)| {
                HeaderName::from_bytes(name.as_bytes())
                    .map(|n| (n, value))
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::ConfigInvalid,
                            format!("bad header name `{name}`: {e}"),
                        )
                    })
            })
            .collect::<Result<_>>()?;
        Ok(Self { headers })
    }
}

#[async_trait]
impl Layer for HeaderAuth {
    fn name(&self) -> &'static str {
        "header-auth"
    }

    async fn handle(&self, mut request: Request, next: Next<'_>) -> Result<Response> {
        for (name, value) in &self.headers {
            let value = secret_header(value.expose_secret(), &format!("`{name}` header"))?;
            request.headers.insert(name.clone(), value);
        }
        next.run(request).await
    }
}

/// Signs a request just before it leaves (schemes built outside this crate: AWS SigV4,
/// HMAC-signed webhooks). Runs on every attempt, so time-bound signatures stay fresh.
#[async_trait]
pub trait RequestSigner: Send + Sync + 'static {
    /// Adds the signature (headers or query) to `request`.
    async fn sign(&self, request: &mut Request) -> Result<()>;
}

/// The layer around a [`RequestSigner`]; put it inside the retry layer.
pub struct SigningLayer {
    signer: Arc<dyn RequestSigner>,
}

impl SigningLayer {
    /// A layer signing with `signer`.
    pub fn new(signer: impl RequestSigner) -> Self {
        Self {
            signer: Arc::new(signer),
        }
    }
}

#[async_trait]
impl Layer for SigningLayer {
    fn name(&self) -> &'static str {
        "signing"
    }

    async fn handle(&self, mut request: Request, next: Next<'_>) -> Result<Response> {
        self.signer.sign(&mut request).await?;
        next.run(request).await
    }
}

/// How the client authenticates itself to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the client id and secret (what the RFC asks servers to support).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

/// OAuth2 client credentials settings.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The token endpoint.
    pub token_url: Url,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
    /// Scopes to ask for; none leaves the server's default.
    pub scopes: Vec<String>,
    /// Extra form fields (`audience`, `resource`).
    pub extra: Vec<(String, String)>,
    /// How the client id and secret are sent.
    pub client_auth: ClientAuthMethod,
    /// Refresh this long before the token expires (at most half its lifetime).
    pub refresh_margin: Duration,
}

/// A token in use: the header it goes in, when to replace it, and which fetch it came from.
#[derive(Clone)]
struct CachedToken {
    header: HeaderValue,
    refresh_at: Instant,
    generation: u64,
}

/// One shared token and the rule that only one caller at a time fetches a new one.
struct TokenKeeper {
    cache: Mutex<Option<CachedToken>>,
}

impl TokenKeeper {
    fn new() -> Self {
        Self {
            cache: Mutex::new(None),
        }
    }

    /// The current token, fetching one (through `fetch`, with the lock held, so that
    /// concurrent callers wait for one fetch) when there is none or it is due for refresh.
    /// With `stale`, a token of that generation is treated as refused and replaced.
    async fn token<F, Fut>(&self, stale: Option<u64>, fetch: F) -> Result<CachedToken>
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = Result<CachedToken>>,
    {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.as_ref() {
            let refused = stale == Some(token.generation);
            if !refused && Instant::now() < token.refresh_at {
                return Ok(token.clone());
            }
        }
        let generation = cache.as_ref().map_or(1, |t| t.generation + 1);
        let token = fetch(generation).await?;
        *cache = Some(token.clone());
        Ok(token)
    }
}

/// Sends `request` with the keeper's token; on a 401 answer, replaces that token once
/// (one fetch however many calls got the 401) and replays the request once.
async fn send_with_token<F, Fut>(
    keeper: &TokenKeeper,
    fetch: F,
    request: Request,
    next: Next<'_>,
) -> Result<Response>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<CachedToken>>,
{
    let token = keeper.token(None, &fetch).await?;
    let mut first = request.clone();
    first.headers.insert(AUTHORIZATION, token.header.clone());
    let response = next.run(first).await?;
    if response.status.as_u16() != 401 {
        return Ok(response);
    }
    let fresh = keeper.token(Some(token.generation), &fetch).await?;
    let mut replay = request;
    replay.headers.insert(AUTHORIZATION, fresh.header);
    next.run(replay).await
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Posts `form` to a token endpoint and reads the access token (RFC 6749 §5.1). The
/// form may hold a secret or an assertion: neither is ever quoted in an error or a log.
async fn request_token(
    http: &reqwest::Client,
    token_url: &Url,
    form: &[(String, String)],
    authorization: Option<HeaderValue>,
    refresh_margin: Duration,
    generation: u64,
) -> Result<CachedToken> {
    let mut request = http.post(token_url.clone());
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    let started = Instant::now();
    let where_ = format!(
        "the token endpoint {}://{}{}",
        token_url.scheme(),
        token_url.host_str().unwrap_or(""),
        token_url.path()
    );
    let fail = |e: reqwest::Error| {
        let e = e.without_url();
        Error::new(ErrorKind::Remote, format!("{where_} did not answer: {e}"))
            .set_source(e)
            .set_temporary()
    };
    let response = request.form(form).send().await.map_err(fail)?;
    let status = response.status();
    let body = response.bytes().await.map_err(fail)?;
    if !status.is_success() {
        let kind = if status.as_u16() == 400 || status.as_u16() == 401 {
            ErrorKind::PermissionDenied
        } else {
            ErrorKind::Remote
        };
        let error = Error::new(
            kind,
            format!("{where_} refused a token ({status}): {}", excerpt(&body)),
        )
        .with_status(status.as_u16());
        return Err(if status.is_server_error() {
            error.set_temporary()
        } else {
            error.set_permanent()
        });
    }
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
        Error::new(
            ErrorKind::Remote,
            format!("{where_} answered without a usable access_token ({e})"),
        )
    })?;
    if let Some(kind) = &answer.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("{where_} issued a `{kind}` token; only bearer tokens are supported"),
        ));
    }
    let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
    let margin = refresh_margin.min(lifetime / 2);
    tracing::debug!(
        token_endpoint = %where_,
        lifetime_s = lifetime.as_secs(),
        generation,
        "fetched an OAuth2 token"
    );
    Ok(CachedToken {
        header: secret_header(&format!("Bearer {}", answer.access_token), "access token")?,
        refresh_at: started + lifetime - margin,
        generation,
    })
}

/// OAuth2 client credentials (RFC 6749 §4.4) as a layer.
///
/// The token is fetched on first use and cached until shortly before it expires. However
/// many calls need a token at once, one request goes to the token endpoint and the others
/// wait for its answer. A 401 answer to a request made with the current token drops that
/// token, fetches one new token (once, however many calls got the 401) and replays the
/// request once.
pub struct OAuth2ClientCredentials {
    settings: ClientCredentials,
    http: reqwest::Client,
    keeper: TokenKeeper,
}

impl std::fmt::Debug for OAuth2ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2ClientCredentials")
            .field("token_url", &self.settings.token_url.as_str())
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

impl OAuth2ClientCredentials {
    /// A layer fetching tokens with `http` (a plain client: the token endpoint is not
    /// behind the API's own layers).
    pub fn new(settings: ClientCredentials, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            keeper: TokenKeeper::new(),
        }
    }

    async fn fetch(&self, generation: u64) -> Result<CachedToken> {
        let s = &self.settings;
        let mut form: Vec<(String, String)> =
            vec![("grant_type".into(), "client_credentials".into())];
        if !s.scopes.is_empty() {
            form.push(("scope".into(), s.scopes.join(" ")));
        }
        form.extend(s.extra.iter().cloned());
        let authorization = match s.client_auth {
            ClientAuthMethod::Basic => Some(basic_header(&s.client_id, &s.client_secret)?),
            ClientAuthMethod::Body => {
                form.push(("client_id".into(), s.client_id.clone()));
                form.push((
                    "client_secret".into(),
                    s.client_secret.expose_secret().to_string(),
                ));
                None
            }
        };
        request_token(
            &self.http,
            &s.token_url,
            &form,
            authorization,
            s.refresh_margin,
            generation,
        )
        .await
    }
}

#[async_trait]
impl Layer for OAuth2ClientCredentials {
    fn name(&self) -> &'static str {
        "oauth2-client-credentials"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        send_with_token(&self.keeper, |g| self.fetch(g), request, next).await
    }
}

/// The grant type of RFC 7523 §2.1.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What goes into a signed JWT: who signs (`iss`), for whom (`sub`), to whom (`aud`), for
/// how long, and any further claims (`scope` for Google service accounts).
#[derive(Debug, Clone)]
pub struct JwtClaims {
    /// `iss`: the service account or key owner.
    pub issuer: String,
    /// `sub`: the user acted for; `None` leaves the claim out.
    pub subject: Option<String>,
    /// `aud`: the token endpoint or the API; `None` leaves the claim out.
    pub audience: Option<String>,
    /// `exp - iat`. Most servers refuse more than an hour.
    pub lifetime: Duration,
    /// Further claims, added as they are.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl JwtClaims {
    /// Claims issued by `issuer`, valid for an hour, with nothing else.
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_string(),
            subject: None,
            audience: None,
            lifetime: Duration::from_secs(3600),
            extra: serde_json::Map::new(),
        }
    }
}

/// Signs JWTs with RS256 (RSASSA-PKCS1-v1_5 with SHA-256) from an RSA private key in PEM
/// (PKCS#1 `BEGIN RSA PRIVATE KEY` or PKCS#8 `BEGIN PRIVATE KEY`). Signing goes through
/// `jsonwebtoken` on aws-lc-rs, the crypto library the HTTP client's TLS already uses; the
/// `rsa` crate (a second, pure-Rust RSA) was the rejected alternative.
#[derive(Clone)]
pub struct JwtSigner {
    key: Arc<jsonwebtoken::EncodingKey>,
    key_id: Option<String>,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("algorithm", &"RS256")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl JwtSigner {
    /// A signer for `pem`; a key that is not an RSA private key in PEM is a config error
    /// that never quotes the key.
    pub fn rs256_pem(pem: &SecretString) -> Result<Self> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()).map_err(
            |e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "the private key is not an RSA private key in PEM (PKCS#1 or PKCS#8): {}",
                        jwt_error_kind(&e)
                    ),
                )
            },
        )?;
        Ok(Self {
            key: Arc::new(key),
            key_id: None,
        })
    }

    /// Puts `kid` in the JWT header (Google service accounts name their key this way).
    pub fn with_key_id(mut self, key_id: &str) -> Self {
        self.key_id = Some(key_id.to_string());
        self
    }

    /// A signed JWT with `claims`, issued now.
    pub fn sign(&self, claims: &JwtClaims) -> Result<SecretString> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Error::new(ErrorKind::Unexpected, "the system clock is before 1970"))?
            .as_secs();
        let mut body = serde_json::Map::new();
        body.insert("iss".into(), claims.issuer.clone().into());
        if let Some(sub) = &claims.subject {
            body.insert("sub".into(), sub.clone().into());
        }
        if let Some(aud) = &claims.audience {
            body.insert("aud".into(), aud.clone().into());
        }
        body.insert("iat".into(), now.into());
        body.insert("exp".into(), (now + claims.lifetime.as_secs()).into());
        for (k, v) in &claims.extra {
            body.insert(k.clone(), v.clone());
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = self.key_id.clone();
        let token = jsonwebtoken::encode(&header, &body, &self.key).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("cannot sign the JWT: {}", jwt_error_kind(&e)),
            )
        })?;
        Ok(SecretString::from(token))
    }
}

/// The kind of a `jsonwebtoken` failure, without anything of the key.
fn jwt_error_kind(e: &jsonwebtoken::errors::Error) -> String {
    format!("{:?}", e.kind())
        .split('(')
        .next()
        .unwrap_or("error")
        .to_string()
}

/// Where the scopes of a JWT-bearer grant go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScopePlacement {
    /// A `scope` claim in the assertion (Google service accounts).
    #[default]
    Claim,
    /// A `scope` form field beside the assertion (RFC 7523 §2.1).
    Form,
}

/// OAuth2 JWT-bearer settings (RFC 7523): the assertion's claims, the signer, the token
/// endpoint.
#[derive(Debug, Clone)]
pub struct JwtBearer {
    /// The token endpoint.
    pub token_url: Url,
    /// The signer (the service account's or the key pair's private key).
    pub signer: JwtSigner,
    /// The assertion's claims; `aud` defaults to the token endpoint.
    pub claims: JwtClaims,
    /// Scopes to ask for.
    pub scopes: Vec<String>,
    /// Where the scopes go.
    pub scope_placement: ScopePlacement,
    /// Refresh this long before the token expires (at most half its lifetime).
    pub refresh_margin: Duration,
}

/// OAuth2 JWT-bearer assertion grant (RFC 7523 §2.1, Google service accounts) as a layer:
/// a fresh RS256-signed assertion is exchanged for an access token, which is then shared,
/// refreshed and replayed on 401 exactly as [`OAuth2ClientCredentials`] does.
pub struct OAuth2JwtBearer {
    settings: JwtBearer,
    http: reqwest::Client,
    keeper: TokenKeeper,
}

impl std::fmt::Debug for OAuth2JwtBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2JwtBearer")
            .field("token_url", &self.settings.token_url.as_str())
            .field("issuer", &self.settings.claims.issuer)
            .finish_non_exhaustive()
    }
}

impl OAuth2JwtBearer {
    /// A layer fetching tokens with `http` (a plain client).
    pub fn new(settings: JwtBearer, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            keeper: TokenKeeper::new(),
        }
    }

    async fn fetch(&self, generation: u64) -> Result<CachedToken> {
        let s = &self.settings;
        let mut claims = s.claims.clone();
        if claims.audience.is_none() {
            claims.audience = Some(s.token_url.to_string());
        }
        let scope = s.scopes.join(" ");
        if !scope.is_empty() && s.scope_placement == ScopePlacement::Claim {
            claims.extra.insert("scope".into(), scope.clone().into());
        }
        let assertion = s.signer.sign(&claims)?;
        let mut form: Vec<(String, String)> = vec![
            ("grant_type".into(), JWT_BEARER_GRANT.into()),
            ("assertion".into(), assertion.expose_secret().to_string()),
        ];
        if !scope.is_empty() && s.scope_placement == ScopePlacement::Form {
            form.push(("scope".into(), scope));
        }
        request_token(
            &self.http,
            &s.token_url,
            &form,
            None,
            s.refresh_margin,
            generation,
        )
        .await
    }
}

#[async_trait]
impl Layer for OAuth2JwtBearer {
    fn name(&self) -> &'static str {
        "oauth2-jwt-bearer"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        send_with_token(&self.keeper, |g| self.fetch(g), request, next).await
    }
}

/// A self-signed JWT as the bearer token, with no token endpoint (key-pair authentication,
/// as Snowflake's SQL API does it). The JWT is re-signed before it expires and, once, after
/// a 401.
pub struct JwtAuth {
    signer: JwtSigner,
    claims: JwtClaims,
    refresh_margin: Duration,
    keeper: TokenKeeper,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("issuer", &self.claims.issuer)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// A layer signing `claims` with `signer`; a new JWT is signed `refresh_margin` (at most
    /// half the lifetime) before the current one expires.
    pub fn new(signer: JwtSigner, claims: JwtClaims, refresh_margin: Duration) -> Self {
        Self {
            signer,
            claims,
            refresh_margin,
            keeper: TokenKeeper::new(),
        }
    }

    async fn fetch(&self, generation: u64) -> Result<CachedToken> {
        let signed_at = Instant::now();
        let jwt = self.signer.sign(&self.claims)?;
        let margin = self.refresh_margin.min(self.claims.lifetime / 2);
        Ok(CachedToken {
            header: secret_header(&format!("Bearer {}", jwt.expose_secret()), "JWT")?,
            refresh_at: signed_at + self.claims.lifetime - margin,
            generation,
        })
    }
}

#[async_trait]
impl Layer for JwtAuth {
    fn name(&self) -> &'static str {
        "jwt-auth"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        send_with_token(&self.keeper, |g| self.fetch(g), request, next).await
    }
}
