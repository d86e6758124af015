//! Authentication layers: bearer token, basic, API key (header or query), a fixed header
//! set, a signing hook, and OAuth2 client credentials with a shared, refreshed token.
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

#[derive(Clone)]
struct CachedToken {
    header: HeaderValue,
    refresh_at: Instant,
    generation: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
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
    cache: Mutex<Option<CachedToken>>,
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
            cache: Mutex::new(None),
        }
    }

    /// The current token, fetching one when there is none or it is due for refresh. With
    /// `stale`, a token of that generation is treated as refused and replaced.
    async fn token(&self, stale: Option<u64>) -> Result<CachedToken> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.as_ref() {
            let refused = stale == Some(token.generation);
            if !refused && Instant::now() < token.refresh_at {
                return Ok(token.clone());
            }
        }
        let generation = cache.as_ref().map_or(1, |t| t.generation + 1);
        let token = self.fetch(generation).await?;
        *cache = Some(token.clone());
        Ok(token)
    }

    async fn fetch(&self, generation: u64) -> Result<CachedToken> {
        let s = &self.settings;
        let mut form: Vec<(String, String)> =
            vec![("grant_type".into(), "client_credentials".into())];
        if !s.scopes.is_empty() {
            form.push(("scope".into(), s.scopes.join(" ")));
        }
        form.extend(s.extra.iter().cloned());
        let mut request = self.http.post(s.token_url.clone());
        match s.client_auth {
            ClientAuthMethod::Basic => {
                request =
                    request.header(AUTHORIZATION, basic_header(&s.client_id, &s.client_secret)?);
            }
            ClientAuthMethod::Body => {
                form.push(("client_id".into(), s.client_id.clone()));
                form.push((
                    "client_secret".into(),
                    s.client_secret.expose_secret().to_string(),
                ));
            }
        }
        let started = Instant::now();
        let where_ = format!(
            "the token endpoint {}://{}{}",
            s.token_url.scheme(),
            s.token_url.host_str().unwrap_or(""),
            s.token_url.path()
        );
        let fail = |e: reqwest::Error| {
            Error::new(ErrorKind::Remote, format!("{where_} did not answer: {e}"))
                .set_source(e.without_url())
                .set_temporary()
        };
        let response = request.form(&form).send().await.map_err(fail)?;
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
        let margin = s.refresh_margin.min(lifetime / 2);
        tracing::debug!(
            token_url = %s.token_url,
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
}

#[async_trait]
impl Layer for OAuth2ClientCredentials {
    fn name(&self) -> &'static str {
        "oauth2-client-credentials"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        let token = self.token(None).await?;
        let mut first = request.clone();
        first.headers.insert(AUTHORIZATION, token.header.clone());
        let response = next.run(first).await?;
        if response.status.as_u16() != 401 {
            return Ok(response);
        }
        let fresh = self.token(Some(token.generation)).await?;
        let mut replay = request;
        replay.headers.insert(AUTHORIZATION, fresh.header);
        next.run(replay).await
    }
}
