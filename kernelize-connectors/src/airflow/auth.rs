//! [`AirflowTokenAuth`]: Airflow 3's sign-in (`POST /auth/token` with a JSON user name and
//! password, answered 201 with a JWT) as a layer of the client stack.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use kernelize_core::{Error, ErrorKind, Result};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::client::api_error;
use crate::http::{Layer, Method, Next, Request, Response};

/// How long before a token's `exp` it is replaced (at most half its lifetime).
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Token {
    header: HeaderValue,
    /// When to replace it; `None` when the JWT says nothing of its expiry (then only a 401
    /// replaces it).
    refresh_at: Option<Instant>,
    generation: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

/// Signs in to Airflow 3 and sends `Authorization: Bearer <JWT>` on every request.
///
/// The token is fetched on first use, through the rest of the stack (so the per-attempt
/// timeout bounds it and a temporary failure is retried like any request), and shared by
/// every request of the client. It is replaced shortly before the `exp` of the JWT and,
/// once, when a request made with it is answered 401: one new token however many calls
/// got the 401, then the request is sent again once. A second 401 is the answer.
pub struct AirflowTokenAuth {
    token_url: Url,
    username: String,
    password: SecretString,
    current: Mutex<Option<Token>>,
}

impl std::fmt::Debug for AirflowTokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AirflowTokenAuth")
            .field("token_url", &self.token_url.as_str())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl AirflowTokenAuth {
    /// A layer signing in at `token_url` as `username`.
    pub fn new(token_url: Url, username: &str, password: SecretString) -> Self {
        Self {
            token_url,
            username: username.to_string(),
            password,
            current: Mutex::new(None),
        }
    }

    /// The token in use, or a new one when there is none, it is due, or it is the one of
    /// generation `refused`.
    async fn token(&self, refused: Option<u64>, next: Next<'_>) -> Result<Token> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref() {
            let due = token.refresh_at.is_some_and(|at| Instant::now() >= at);
            if refused != Some(token.generation) && !due {
                return Ok(token.clone());
            }
        }
        let generation = current.as_ref().map_or(1, |t| t.generation + 1);
        let token = self.sign_in(generation, next).await?;
        *current = Some(token.clone());
        Ok(token)
    }

    async fn sign_in(&self, generation: u64, next: Next<'_>) -> Result<Token> {
        let body = serde_json::json!({
            "username": self.username,
            "password": self.password.expose_secret(),
        });
        let request = Request::new(Method::POST, self.token_url.clone())
            .json(&body)?
            .path_template("/auth/token");
        let describe = request.describe();
        let started = Instant::now();
        let response: Response = next.run(request).await?;
        if !response.is_success() {
            let error = api_error(&response, &describe);
            return Err(if response.status.as_u16() == 401 {
                Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "Airflow refused the user name or password of `{}`: {}",
                        self.username,
                        error.message()
                    ),
                )
                .with_status(401)
                .set_permanent()
            } else {
                error
            });
        }
        let answer: TokenAnswer = response.json().map_err(|_| {
            Error::new(
                ErrorKind::Remote,
                format!(
                    "{describe} answered {} without an access_token",
                    response.status
                ),
            )
        })?;
        let refresh_at = expires_in(&answer.access_token).map(|left| {
            let margin = REFRESH_MARGIN.min(left / 2);
            started + left.saturating_sub(margin)
        });
        let mut header = HeaderValue::from_str(&format!("Bearer {}", answer.access_token))
            .map_err(|_| {
                Error::new(
                    ErrorKind::Remote,
                    "Airflow issued a token that cannot go in a header",
                )
            })?;
        header.set_sensitive(true);
        tracing::debug!(generation, "signed in to Airflow");
        Ok(Token {
            header,
            refresh_at,
            generation,
        })
    }
}

/// How long the JWT `token` has left by its `exp` claim (read, not verified: the server
/// verifies it); `None` when it has none or is not a JWT.
fn expires_in(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now)))
}

#[async_trait]
impl Layer for AirflowTokenAuth {
    fn name(&self) -> &'static str {
        "airflow-token-auth"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        let token = self.token(None, next).await?;
        let mut first = request.clone();
        first.headers.insert(AUTHORIZATION, token.header.clone());
        let response = next.run(first).await?;
        if response.status.as_u16() != 401 {
            return Ok(response);
        }
        let fresh = self.token(Some(token.generation), next).await?;
        let mut replay = request;
        replay.headers.insert(AUTHORIZATION, fresh.header);
        next.run(replay).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &serde_json::Value) -> String {
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!(
            "{}.{}.{}",
            enc(br#"{"alg":"HS512"}"#),
            enc(claims.to_string().as_bytes()),
            enc(b"sig")
        )
    }

    #[test]
    fn the_exp_claim_says_how_long_a_token_has_left() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let left = expires_in(&jwt(&serde_json::json!({"exp": now + 600}))).unwrap();
        assert!(left <= Duration::from_secs(600) && left >= Duration::from_secs(598));
        assert_eq!(
            expires_in(&jwt(&serde_json::json!({"exp": now - 5}))),
            Some(Duration::ZERO)
        );
        assert_eq!(expires_in(&jwt(&serde_json::json!({"sub": "admin"}))), None);
        assert_eq!(expires_in("not-a-jwt"), None);
    }
}
