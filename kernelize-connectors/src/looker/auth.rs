//! [`LookerAuth`]: Looker's API login as a layer — `POST /login` with the API key,
//! `Authorization: token …` on every call, a new login before the token expires and once
//! after a 401.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use kernelize_core::{Error, ErrorKind, Result};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::http::{Layer, Method, Next, Request, Response, excerpt};

/// The session in use.
#[derive(Clone)]
struct Session {
    header: HeaderValue,
    refresh_at: Instant,
    generation: u64,
}

#[derive(Deserialize)]
struct LoginAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// What a login gave: a session, or an answer to hand up unchanged (a 429 or a 5xx, which
/// the retry layer above deals with).
enum Login {
    Session(Session),
    Answer(Response),
}

/// Looker's login as a layer (put it inside the retry layer).
///
/// - The first call logs in (`POST {api}/login`, form-encoded `client_id` and
///   `client_secret`); concurrent calls wait for that one login.
/// - Every call carries `Authorization: token <access_token>` (the literal word `token`).
/// - The token is replaced `refresh_margin` (at most half its lifetime) before
///   `expires_in` runs out, and once after a 401 (the session was ended on the server);
///   the refused request is then sent again once.
/// - A `POST {api}/login` sent through the client (the `login` action) gets the
///   credentials filled in here and its token kept: the credentials never leave this layer.
/// - A successful `DELETE {api}/logout` forgets the session.
///
/// A login answered 429 or 5xx is handed up as the call's answer, so the retry layer waits
/// and tries again; any other refusal is a `permission denied` error.
pub struct LookerAuth {
    login_url: Url,
    logout_url: Url,
    client_id: String,
    client_secret: SecretString,
    refresh_margin: Duration,
    session: Mutex<Option<Session>>,
}

impl std::fmt::Debug for LookerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookerAuth")
            .field("login_url", &self.login_url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl LookerAuth {
    /// A layer logging in at `api_root` (`…/api/4.0/`) with the API key.
    pub fn new(
        api_root: &Url,
        client_id: &str,
        client_secret: SecretString,
        refresh_margin: Duration,
    ) -> Result<Self> {
        let join = |path: &str| {
            api_root.join(path).map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("bad Looker API root: {e}"),
                )
            })
        };
        Ok(Self {
            login_url: join("login")?,
            logout_url: join("logout")?,
            client_id: client_id.into(),
            client_secret,
            refresh_margin,
            session: Mutex::new(None),
        })
    }

    fn is_login(&self, request: &Request) -> bool {
        request.method == Method::POST && same_endpoint(&request.url, &self.login_url)
    }

    fn is_logout(&self, request: &Request) -> bool {
        request.method == Method::DELETE && same_endpoint(&request.url, &self.logout_url)
    }

    /// `request` (a POST to the login URL) with the credentials as its form body.
    fn login_request(&self, request: Request) -> Request {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose_secret())
            .finish();
        let mut request = request.bytes(form, "application/x-www-form-urlencoded");
        request.headers.remove(AUTHORIZATION);
        request
    }

    /// Sends the login; a 2xx becomes a session of `generation`.
    async fn login(
        &self,
        request: Request,
        next: Next<'_>,
        generation: u64,
    ) -> Result<(Login, Response)> {
        let started = Instant::now();
        let response = next.run(self.login_request(request)).await?;
        let status = response.status.as_u16();
        if status == 429 || response.status.is_server_error() {
            return Ok((Login::Answer(response.clone()), response));
        }
        if !response.is_success() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "Looker refused the API login ({}): {}; check `client_id` and `client_secret` (Admin → Users → Edit keys)",
                    response.status,
                    looker_message(&response)
                ),
            )
            .with_status(status)
            .set_permanent());
        }
        let answer: LoginAnswer = serde_json::from_slice(&response.body).map_err(|_| {
            Error::new(
                ErrorKind::Remote,
                "Looker's login answer has no access_token",
            )
            .with_status(status)
        })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let margin = self.refresh_margin.min(lifetime / 2);
        let mut header =
            HeaderValue::from_str(&format!("token {}", answer.access_token)).map_err(|_| {
                Error::new(
                    ErrorKind::Remote,
                    "Looker's access token holds characters a header cannot carry",
                )
            })?;
        header.set_sensitive(true);
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            generation,
            "logged in to Looker"
        );
        let session = Session {
            header,
            refresh_at: started + lifetime - margin,
            generation,
        };
        Ok((Login::Session(session), response))
    }

    /// The session to use: the current one, unless it is due for refresh or is the one of
    /// generation `stale` that got a 401; otherwise a new login (one at a time).
    async fn session(&self, stale: Option<u64>, next: Next<'_>) -> Result<Login> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref()
            && stale != Some(session.generation)
            && Instant::now() < session.refresh_at
        {
            return Ok(Login::Session(session.clone()));
        }
        let generation = current.as_ref().map_or(1, |s| s.generation + 1);
        let request = Request::new(Method::POST, self.login_url.clone());
        let (login, _) = self.login(request, next, generation).await?;
        if let Login::Session(session) = &login {
            *current = Some(session.clone());
        }
        Ok(login)
    }

    /// Whether a session is held (for tests and health).
    pub async fn has_session(&self) -> bool {
        self.session.lock().await.is_some()
    }
}

fn same_endpoint(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
}

/// Looker's error text: the `message` of its `{message, documentation_url}` body, else the
/// start of the body.
pub(crate) fn looker_message(response: &Response) -> String {
    serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| excerpt(&response.body))
}

#[async_trait]
impl Layer for LookerAuth {
    fn name(&self) -> &'static str {
        "looker-auth"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        if self.is_login(&request) {
            let mut current = self.session.lock().await;
            let generation = current.as_ref().map_or(1, |s| s.generation + 1);
            let (login, response) = self.login(request, next, generation).await?;
            if let Login::Session(session) = login {
                *current = Some(session);
            }
            return Ok(response);
        }
        let logout = self.is_logout(&request);
        let session = match self.session(None, next).await? {
            Login::Session(s) => s,
            Login::Answer(response) => return Ok(response),
        };
        let mut first = request.clone();
        first.headers.insert(AUTHORIZATION, session.header.clone());
        let response = next.run(first).await?;
        let response = if response.status.as_u16() == 401 {
            let fresh = match self.session(Some(session.generation), next).await? {
                Login::Session(s) => s,
                Login::Answer(response) => return Ok(response),
            };
            let mut replay = request;
            replay.headers.insert(AUTHORIZATION, fresh.header);
            next.run(replay).await?
        } else {
            response
        };
        if logout && response.is_success() {
            *self.session.lock().await = None;
        }
        Ok(response)
    }
}
