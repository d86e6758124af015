//! [`PowerAutomateClient`]: calls of flows' HTTP triggers and of approval status URLs,
//! usable from Rust without the plugin.

use std::sync::Arc;
use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Result};
use serde_json::Value;

use super::config::{FlowUrl, PowerAutomateSettings};
use crate::http::{
    ClientAuthMethod, ClientCredentials, HttpClient, Layer, Method, OAuth2ClientCredentials,
    Request, Response, excerpt,
};
use crate::saas::{answer_error, build_client};

/// The base URL of the clients; every request names its whole URL.
const BASE: &str = "https://api.powerplatform.com/";

/// A flow's answer to its trigger.
#[derive(Debug, Clone)]
pub struct FlowResponse {
    /// 202 (no Response action) or the Response action's status.
    pub status: u16,
    /// The Response action's body: JSON, text when it is not JSON, `null` when empty.
    pub body: Value,
    /// The `Location` header (a status URL, in the async pattern).
    pub location: Option<FlowUrl>,
    /// The run's id (`x-ms-workflow-run-id`), when the service gives it.
    pub run_id: Option<String>,
}

/// What an approval status URL said.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalState {
    /// Not decided yet.
    Pending,
    /// Decided: `Approved` or `Rejected`, with the status body.
    Decided {
        /// `Approved` or `Rejected`.
        status: String,
        /// The whole answer (`outcome`, `comments`, `responder`, ... as the flow gives them).
        body: Value,
    },
}

/// Calls of Power Automate flows: with the SAS signature their URL carries, or with a
/// Microsoft Entra bearer token (client credentials) for tenant-only flows — never both,
/// which the service refuses.
#[derive(Debug, Clone)]
pub struct PowerAutomateClient {
    /// With the Entra layer, when configured.
    authed: HttpClient,
    /// Without authentication, for SAS-signed URLs.
    plain: HttpClient,
    bearer: bool,
}

impl PowerAutomateClient {
    /// A client for `settings`.
    pub fn new(settings: &PowerAutomateSettings) -> Result<Self> {
        let plain = build_client(BASE, &settings.http, None, Vec::new())?;
        let (authed, bearer) = match &settings.entra {
            None => (plain.clone(), false),
            Some(entra) => {
                let pool = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Unexpected,
                            format!("cannot build the token client: {e}"),
                        )
                    })?;
                let layer: Arc<dyn Layer> = Arc::new(OAuth2ClientCredentials::new(
                    ClientCredentials {
                        token_url: entra.token_url()?,
                        client_id: entra.client_id.clone(),
                        client_secret: entra.client_secret.clone(),
                        scopes: vec![entra.scope.clone()],
                        extra: Vec::new(),
                        client_auth: ClientAuthMethod::Body,
                        refresh_margin: Duration::from_secs(300),
                    },
                    pool,
                ));
                (build_client(BASE, &settings.http, None, vec![layer])?, true)
            }
        };
        Ok(Self {
            authed,
            plain,
            bearer,
        })
    }

    /// Whether calls carry an Entra bearer token.
    pub fn uses_bearer(&self) -> bool {
        self.bearer
    }

    /// The client for `url`: SAS-signed URLs go without the bearer token.
    fn client_for(&self, url: &FlowUrl) -> &HttpClient {
        if url.is_signed() {
            &self.plain
        } else {
            &self.authed
        }
    }

    /// POSTs `body` as JSON to a flow's trigger and returns its answer: 202 Accepted when
    /// the flow has no Response action, or the Response action's status and body. Any 2xx
    /// is success. Sent once (each request starts a run; Power Automate does not
    /// de-duplicate), except after a 429, which the retry layer waits out.
    pub async fn trigger(
        &self,
        flow: &FlowUrl,
        body: &Value,
        headers: &[(String, String)],
    ) -> Result<FlowResponse> {
        match (flow.is_signed(), self.bearer) {
            (true, true) => {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "the flow URL carries a `sig` and `entra` is configured: Power Automate refuses a request with both; drop `entra` for SAS-signed flows, or use the flow's tenant-only URL",
                ));
            }
            (false, false) => {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "the flow URL has no `sig` (a tenant-only trigger): configure `entra` so that a bearer token is sent",
                ));
            }
            _ => {}
        }
        let mut request = Request::new(Method::POST, flow.url()?)
            .json(body)?
            .path_template("/workflows/{id}/triggers/manual/paths/invoke");
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("authorization") {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "`headers` may not set Authorization: use the flow's `sig` or `entra`",
                ));
            }
            request = request.header(name, value)?;
        }
        let what = format!("POST {}", flow.redacted());
        let response = self.client_for(flow).send(request).await?;
        if !response.is_success() {
            return Err(flow_error(&response, &what));
        }
        let location = match response.header("location") {
            Some(text) => Some(FlowUrl::parse("Location", text).map_err(|_| {
                Error::new(
                    ErrorKind::Remote,
                    format!("{what} answered a `Location` that is not an http(s) URL"),
                )
            })?),
            None => None,
        };
        Ok(FlowResponse {
            status: response.status.as_u16(),
            body: read_body(&response),
            location,
            run_id: response.header("x-ms-workflow-run-id").map(str::to_string),
        })
    }

    /// GETs an approval status URL once. 202 is pending (the async pattern); 200 is read
    /// by its `status` (or `outcome`): `Pending`, `Approved` / `Approve` or `Rejected` /
    /// `Reject`, in any case. Anything else is an error naming what was found.
    pub async fn approval_status(&self, status_url: &FlowUrl) -> Result<ApprovalState> {
        let request = Request::new(Method::GET, status_url.url()?)
            .path_template("/workflows/{id}/triggers/manual/paths/invoke/{path}");
        let what = format!("GET {}", status_url.redacted());
        let response = self.client_for(status_url).send(request).await?;
        if !response.is_success() {
            return Err(flow_error(&response, &what));
        }
        if response.status.as_u16() == 202 {
            return Ok(ApprovalState::Pending);
        }
        let body = read_body(&response);
        let said = ["status", "outcome"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_str))
            .map(|s| s.trim().to_ascii_lowercase().replace([' ', '_'], ""));
        match said.as_deref() {
            Some("approved" | "approve") => Ok(ApprovalState::Decided {
                status: "Approved".into(),
                body,
            }),
            Some("rejected" | "reject") => Ok(ApprovalState::Decided {
                status: "Rejected".into(),
                body,
            }),
            Some("pending" | "waiting" | "inprogress" | "running" | "notstarted") => {
                Ok(ApprovalState::Pending)
            }
            _ => Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "{what} answered {} without a `status` of Pending, Approved or Rejected: {}",
                    response.status,
                    excerpt(&response.body)
                ),
            )
            .set_permanent()),
        }
    }
}

fn read_body(response: &Response) -> Value {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&response.body).unwrap_or_else(|_| Value::String(response.text()))
    }
}

/// A failed answer as an error: Power Automate's `{"error": {"code", "message"}}` (or the
/// body's start). 400/413/415/422 invalid input, 401/403 permission denied, 404 not found,
/// 429 rate limited, others remote; 408, 429 and 5xx are temporary.
fn flow_error(response: &Response, what: &str) -> Error {
    let status = response.status.as_u16();
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let said = body
        .as_ref()
        .and_then(|b| b.get("error"))
        .map(|e| {
            let code = e.get("code").and_then(Value::as_str).unwrap_or("");
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            match (code.is_empty(), message.is_empty()) {
                (false, false) => format!("{code}: {message}"),
                (false, true) => code.to_string(),
                _ => message.to_string(),
            }
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| excerpt(&response.body));
    let kind = match status {
        400 | 413 | 415 | 422 => ErrorKind::InvalidInput,
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::RateLimited,
        _ => ErrorKind::Remote,
    };
    answer_error(
        response,
        kind,
        format!(
            "Power Automate answered {} to {what}: {said}",
            response.status
        ),
    )
}
