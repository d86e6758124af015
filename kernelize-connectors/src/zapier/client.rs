//! [`ZapierClient`]: requests to Zapier catch hooks and REST Hook target URLs, usable from
//! Rust without the plugin.

use std::time::Duration;

use bytes::Bytes;
use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::config::{HOOKS_HOST, HookUrl};
use crate::http::{HttpClient, Method, Request, Response, excerpt};
use crate::saas::{HttpOptions, answer_error, build_client_on, without_path};

/// The header that turns off Zapier's parsing of nested JSON and form fields.
pub const RECURSE_PARSE: &str = "x-recurse-parse";

/// How a catch hook is called. Zapier accepts all three; `GET` carries the data as query
/// parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HookMethod {
    /// `POST` (the usual).
    #[default]
    Post,
    /// `PUT`.
    Put,
    /// `GET`, the data in the query string.
    Get,
}

/// What one request to a catch hook carries.
#[derive(Debug, Clone, PartialEq)]
pub enum HookBody {
    /// A JSON body.
    Json(Value),
    /// Raw bytes of a media type (`application/x-www-form-urlencoded`, `application/xml`).
    Bytes {
        /// The bytes.
        data: Bytes,
        /// Their media type.
        content_type: String,
    },
    /// Query parameters (for `GET`).
    Query(Vec<(String, String)>),
}

/// Zapier's answer to one catch-hook request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HookAnswer {
    /// The HTTP status (200).
    pub status: u16,
    /// `request_id` of the debugging payload, when there is one.
    #[serde(default)]
    pub request_id: Option<String>,
    /// `id` of the debugging payload.
    #[serde(default)]
    pub id: Option<String>,
    /// `attempt` of the debugging payload.
    #[serde(default)]
    pub attempt: Option<String>,
    /// The whole body: the debugging payload as JSON, text if it is not JSON, `null` when
    /// empty (Silent Mode).
    pub body: Value,
}

/// What became of one REST Hook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted (2xx), with this status.
    Delivered(u16),
    /// 410 Gone: the Zap behind the URL is off or deleted; drop the subscription.
    Gone,
}

/// Requests to Zapier's inbound webhooks. Redirects are not followed: Zapier never
/// redirects, and a redirect would carry the data somewhere else.
#[derive(Debug, Clone)]
pub struct ZapierClient {
    http: HttpClient,
}

impl ZapierClient {
    /// A client with the layers of `options` (as [`build_client_on`] stacks them) over a
    /// connection pool that does not follow redirects.
    pub fn new(options: &HttpOptions) -> Result<Self> {
        let pool = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(format!("kernelize/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        let http = build_client_on(pool, HOOKS_HOST, options, None, Vec::new())?;
        Ok(Self { http })
    }

    /// Sends `body` to a catch hook. `recurse_parse: false` adds `X-Recurse-Parse: false`.
    ///
    /// Zapier answers 200 with a debugging payload, or an empty body in Silent Mode: both
    /// are success. A POST is sent once (Zapier starts a Zap run per request it accepts)
    /// except after a 429, which the retry layer waits out; PUT and GET are retried after
    /// 5xx and timeouts too, as HTTP allows.
    pub async fn send_to_hook(
        &self,
        hook: &HookUrl,
        method: HookMethod,
        body: HookBody,
        recurse_parse: bool,
    ) -> Result<HookAnswer> {
        let url = hook.url()?;
        let method = match method {
            HookMethod::Post => Method::POST,
            HookMethod::Put => Method::PUT,
            HookMethod::Get => Method::GET,
        };
        let what = format!("{method} to the catch hook {}", hook.redacted());
        let mut request =
            Request::new(method, url.clone()).path_template("/hooks/catch/{account}/{hook}/");
        request = match body {
            HookBody::Json(value) => request.json(&value)?,
            HookBody::Bytes { data, content_type } => request.bytes(data, &content_type),
            HookBody::Query(pairs) => {
                request.url.query_pairs_mut().extend_pairs(pairs);
                request
            }
        };
        if !recurse_parse {
            request = request.header(RECURSE_PARSE, "false")?;
        }
        let response = self.http.send(request).await.map_err(|e| scrub(e, &url))?;
        if !response.is_success() {
            return Err(hook_error(&response, &what));
        }
        Ok(read_answer(&response))
    }

    /// POSTs a REST Hook event to a subscription's target URL. A 410 is
    /// [`Delivery::Gone`]; any other non-2xx is an error. Sent once, except after a 429.
    pub async fn deliver(&self, target: &Url, payload: &Value) -> Result<Delivery> {
        let what = format!("POST to the REST Hook target {}", without_path(target));
        let request = Request::new(Method::POST, target.clone())
            .json(payload)?
            .path_template("/hooks/standard/{account}/{id}/");
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| scrub(e, target))?;
        match response.status.as_u16() {
            410 => Ok(Delivery::Gone),
            s if response.is_success() => Ok(Delivery::Delivered(s)),
            _ => Err(hook_error(&response, &what)),
        }
    }
}

/// The debugging payload's fields, when the body is one.
fn read_answer(response: &Response) -> HookAnswer {
    let body = if response.body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&response.body).unwrap_or_else(|_| Value::String(response.text()))
    };
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
    HookAnswer {
        status: response.status.as_u16(),
        request_id: text("request_id"),
        id: text("id"),
        attempt: text("attempt"),
        body,
    }
}

/// A failed answer as an error. A redirect says the URL is not a catch hook.
fn hook_error(response: &Response, what: &str) -> Error {
    let status = response.status.as_u16();
    if response.status.is_redirection() {
        return Error::new(
            ErrorKind::Remote,
            format!(
                "{what} answered {} (a redirect, not followed): Zapier's hooks never redirect, so this is not a catch hook URL",
                response.status
            ),
        )
        .with_status(status)
        .set_permanent();
    }
    let kind = match status {
        400 | 413 | 415 | 422 => ErrorKind::InvalidInput,
        401 | 403 => ErrorKind::PermissionDenied,
        404 | 410 => ErrorKind::NotFound,
        429 => ErrorKind::RateLimited,
        _ => ErrorKind::Remote,
    };
    answer_error(
        response,
        kind,
        format!(
            "{what} answered {}: {}",
            response.status,
            excerpt(&response.body)
        ),
    )
}

/// `error` with `url`'s path (the credential) taken out of its message and context.
pub(crate) fn scrub(error: Error, url: &Url) -> Error {
    let path = url.path();
    let clean = |text: &str| {
        if path.len() > 1 {
            text.replace(url.as_str(), &without_path(url))
                .replace(path, "/…")
        } else {
            text.to_string()
        }
    };
    let mut out = Error::new(error.kind(), clean(error.message()));
    for (k, v) in error.context() {
        out = out.with_context(k, clean(v));
    }
    out = if error.is_temporary() {
        out.set_temporary()
    } else {
        out.set_permanent()
    };
    if let Some(s) = error.status() {
        out = out.with_status(s);
    }
    if let Some(after) = error.retry_after() {
        out = out.with_retry_after(after);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_takes_the_hook_path_out_of_a_message() {
        let url = Url::parse("https://hooks.zapier.com/hooks/catch/123/abc/").unwrap();
        let error = Error::new(
            ErrorKind::Remote,
            "POST https://hooks.zapier.com/hooks/catch/123/abc/ failed: connection reset",
        )
        .set_temporary();
        let clean = scrub(error, &url);
        assert!(!clean.message().contains("123/abc"), "{clean}");
        assert!(
            clean.message().contains("https://hooks.zapier.com/…"),
            "{clean}"
        );
        assert!(clean.is_temporary());
    }
}
