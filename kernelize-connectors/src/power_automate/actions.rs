//! The `power-automate-connector`'s typed actions: their names, per-call configs, outputs
//! and handlers.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Handler, Payload, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::PowerAutomateConnector;
use super::client::{ApprovalState, FlowResponse};
use super::config::FlowUrl;
use crate::saas::{Poll, PollSettings, check_host, origin, poll_until, saas_action};

fn yes() -> bool {
    true
}

/// Config of `trigger_flow`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerFlowConfig {
    /// The flow's HTTP trigger URL (a secret: `${secret:NAME}`); the plugin's `flow_url`
    /// when absent.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub flow_url: Option<FlowUrl>,
    /// The JSON body; the input when absent (records as an array of rows, none as `{}`).
    #[serde(default)]
    pub body: Option<Value>,
    /// Extra request headers (the trigger exposes them to the flow as
    /// `triggerOutputs()['headers']`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A flow's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FlowAnswer {
    /// 202 (the flow has no Response action: it runs on) or the Response action's status.
    pub status: u16,
    /// The Response action's body (`null` when empty).
    pub body: Value,
    /// The run's id (`x-ms-workflow-run-id`), when given.
    pub run_id: Option<String>,
    /// The `Location` header without its query (which may hold a signature), when given.
    pub location: Option<String>,
}

impl From<FlowResponse> for FlowAnswer {
    fn from(r: FlowResponse) -> Self {
        Self {
            status: r.status,
            body: r.body,
            run_id: r.run_id,
            location: r.location.map(|l| l.redacted()),
        }
    }
}

saas_action!(
    /// `trigger_flow`: starts a flow through its "When an HTTP request is received" trigger.
    TriggerFlow,
    "trigger_flow",
    "POSTs JSON to a Power Automate flow's HTTP trigger and returns its answer {status, body} (202 or the Response action's).",
    TriggerFlowConfig,
    Payload,
    FlowAnswer
);

/// Config of `request_approval`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestApprovalConfig {
    /// The approval flow's HTTP trigger URL (a secret); the plugin's `flow_url` when absent.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub flow_url: Option<FlowUrl>,
    /// The approval's title.
    pub title: String,
    /// Who approves: e-mail addresses separated by `;`.
    pub assigned_to: String,
    /// The details shown to the approvers (Markdown); the input when absent (text as it
    /// is, JSON as indented JSON text).
    #[serde(default)]
    pub details: Option<String>,
    /// Who asks (an e-mail address).
    #[serde(default)]
    pub requestor: Option<String>,
    /// A link to what is to be approved.
    #[serde(default)]
    pub item_link: Option<String>,
    /// The link's text.
    #[serde(default)]
    pub item_link_description: Option<String>,
    /// More fields for the flow, added to the request body as they are.
    #[serde(default)]
    pub extra: Map<String, Value>,
    /// Wait for the decision (the default); `false` returns once the flow accepted the
    /// request, with `status: "Pending"`.
    #[serde(default = "yes")]
    pub wait: bool,
    /// The longest wait for the decision (`"3d"`); the plugin's `poll.max_wait` when
    /// absent. The call's own deadline, if earlier, wins.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub max_wait: Option<Duration>,
    /// A rejection is an error (by default it is an answer with `approved: false`).
    #[serde(default)]
    pub fail_on_reject: bool,
}

/// An approval's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalOutcome {
    /// `Approved`, `Rejected`, or `Pending` (without `wait`).
    pub status: String,
    /// `status == "Approved"`.
    pub approved: bool,
    /// The approval's id, when the flow gave one (`approval_id`).
    pub approval_id: Option<String>,
    /// The approvers' comments, when the status answer has `comments`.
    pub comments: Option<String>,
    /// Status polls made.
    pub polls: u32,
    /// The last answer (the status URL's, or the flow's when it decided at once).
    pub body: Value,
}

saas_action!(
    /// `request_approval`: asks for an approval through a flow and waits for the decision.
    RequestApproval,
    "request_approval",
    "Triggers an approval flow {title, details, assigned_to, ...} and polls the status URL it answers with until Approved or Rejected.",
    RequestApprovalConfig,
    Payload,
    ApprovalOutcome
);

// ---- handlers -----------------------------------------------------------------------------

impl PowerAutomateConnector {
    /// The flow of a call: the config's, else the plugin's; its host must be granted.
    fn flow(&self, ctx: &ActionContext, given: Option<FlowUrl>) -> Result<FlowUrl> {
        let flow = given.or_else(|| self.flow_url.clone()).ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "no flow: give `flow_url` in the action config or the plugin settings",
            )
        })?;
        check_host(&origin(&flow.url()?), &ctx.permissions, "Power Automate")?;
        Ok(flow)
    }
}

/// The JSON body of a trigger from its input.
fn body_of(input: Payload) -> Result<Value> {
    match input {
        Payload::Empty => Ok(json!({})),
        other => match other.into_json()? {
            Value::Null => Ok(json!({})),
            v => Ok(v),
        },
    }
}

#[async_trait]
impl Handler<TriggerFlow> for PowerAutomateConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: TriggerFlowConfig,
        input: Payload,
    ) -> Result<FlowAnswer> {
        let flow = self.flow(&ctx, config.flow_url)?;
        let body = match config.body {
            Some(b) => b,
            None => body_of(input)?,
        };
        let headers: Vec<(String, String)> = config.headers.into_iter().collect();
        Ok(self.client.trigger(&flow, &body, &headers).await?.into())
    }
}

/// A decided status's fields.
fn text_of(body: &Value, name: &str) -> Option<String> {
    body.get(name).and_then(Value::as_str).map(str::to_string)
}

#[async_trait]
impl Handler<RequestApproval> for PowerAutomateConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: RequestApprovalConfig,
        input: Payload,
    ) -> Result<ApprovalOutcome> {
        let flow = self.flow(&ctx, config.flow_url.clone())?;
        let details = match config.details.clone() {
            Some(d) => Some(d),
            None => match input.into_json()? {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(serde_json::to_string_pretty(&other)?),
            },
        };
        let mut body = Map::new();
        body.insert("title".into(), json!(config.title));
        body.insert("assigned_to".into(), json!(config.assigned_to));
        for (name, value) in [
            ("details", &details),
            ("requestor", &config.requestor),
            ("item_link", &config.item_link),
            ("item_link_description", &config.item_link_description),
        ] {
            if let Some(v) = value {
                body.insert(name.into(), json!(v));
            }
        }
        for (k, v) in &config.extra {
            body.insert(k.clone(), v.clone());
        }
        let started = self
            .client
            .trigger(&flow, &Value::Object(body), &[])
            .await?;
        let approval_id = text_of(&started.body, "approval_id");
        let finish = |status: String, body: Value, polls: u32| -> Result<ApprovalOutcome> {
            let approved = status == "Approved";
            if config.fail_on_reject && status == "Rejected" {
                return Err(Error::new(
                    ErrorKind::Remote,
                    format!(
                        "the approval `{}` was rejected{}",
                        config.title,
                        text_of(&body, "comments")
                            .map(|c| format!(": {c}"))
                            .unwrap_or_default()
                    ),
                )
                .with_context("approval_id", approval_id.clone().unwrap_or_default())
                .set_permanent());
            }
            Ok(ApprovalOutcome {
                approved,
                approval_id: approval_id
                    .clone()
                    .or_else(|| text_of(&body, "approval_id")),
                comments: text_of(&body, "comments"),
                status,
                polls,
                body,
            })
        };
        // A flow that waited for the decision before answering.
        if let Some(status) = text_of(&started.body, "status")
            && matches!(
                status.to_ascii_lowercase().as_str(),
                "approved" | "rejected"
            )
        {
            let status = if status.eq_ignore_ascii_case("approved") {
                "Approved"
            } else {
                "Rejected"
            };
            return finish(status.into(), started.body, 0);
        }
        if !config.wait {
            return finish("Pending".into(), started.body, 0);
        }
        let status_url = match (text_of(&started.body, "status_url"), &started.location) {
            (Some(text), _) => FlowUrl::parse("status_url", &text).map_err(|_| {
                Error::new(
                    ErrorKind::Remote,
                    "the approval flow answered a `status_url` that is not an http(s) URL",
                )
            })?,
            (None, Some(location)) => location.clone(),
            (None, None) => {
                return Err(Error::new(
                    ErrorKind::Remote,
                    format!(
                        "the approval flow answered {} without a status URL: its Response action must give `status_url` in the body or a `Location` header (see the connector docs)",
                        started.status
                    ),
                ));
            }
        };
        check_host(
            &origin(&status_url.url()?),
            &ctx.permissions,
            "Power Automate",
        )?;
        let settings = PollSettings {
            max_wait: config.max_wait.or(self.poll.max_wait),
            ..self.poll.clone()
        };
        let polls = std::sync::atomic::AtomicU32::new(0);
        let what = format!("the approval `{}`", config.title);
        let (status, body) = poll_until(&ctx, &settings, &what, || async {
            polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(match self.client.approval_status(&status_url).await? {
                ApprovalState::Pending => Poll::Pending("Pending".into()),
                ApprovalState::Decided { status, body } => Poll::Ready((status, body)),
            })
        })
        .await?;
        finish(status, body, polls.into_inner())
    }
}
