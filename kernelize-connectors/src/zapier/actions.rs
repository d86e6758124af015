//! The `zapier-connector`'s typed actions: their names, per-call configs, outputs and
//! handlers.

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use kernelize_core::plugin::ActionContext;
use kernelize_core::{Action, Error, ErrorKind, Handler, Payload, Permission, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ZapierConnector;
use super::client::{Delivery, HookAnswer, HookBody, HookMethod};
use super::config::HookUrl;
use super::subscriptions::{Subscription, SubscriptionStore};
use crate::saas::{
    Column, ColumnType, check_host, origin, parse_url, records_from_rows, saas_action, without_path,
};

/// The most rows `trigger` sends one by one in a call.
pub const MAX_ROWS: usize = 10_000;

/// How many REST Hook deliveries `notify` has in flight at once.
pub const DELIVERY_CONCURRENCY: usize = 8;

fn yes() -> bool {
    true
}

/// How `trigger` sends records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RowsMode {
    /// One request per row, each a JSON object: one Zap run per row.
    #[default]
    Each,
    /// One request whose body is the JSON array of rows.
    Array,
}

/// Config of `trigger`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// The catch hook (`https://hooks.zapier.com/hooks/catch/{account}/{hook}/`, a secret:
    /// `${secret:NAME}`); the plugin's `hook_url` when absent.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub hook_url: Option<HookUrl>,
    /// `post` (default), `put` or `get` (the data as query parameters).
    #[serde(default)]
    pub method: HookMethod,
    /// Let Zapier parse nested JSON and form fields into fields of their own (its
    /// default); `false` sends `X-Recurse-Parse: false`.
    #[serde(default = "yes")]
    pub raw_parse: bool,
    /// The body to send; the input when absent.
    #[serde(default)]
    pub body: Option<Value>,
    /// Records input: `each` row its own request (default) or one `array`.
    #[serde(default)]
    pub rows: RowsMode,
}

/// What `trigger` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerOutput {
    /// Requests Zapier accepted.
    pub sent: usize,
    /// Zapier's answers, one per request.
    pub answers: Vec<HookAnswer>,
}

saas_action!(
    /// `trigger`: sends data to a Zapier catch hook, starting its Zap.
    Trigger,
    "trigger",
    "Sends the input (JSON, records or bytes) to a Zapier catch hook, starting its Zap.",
    TriggerConfig,
    Payload,
    TriggerOutput
);

/// Config of `subscribe`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SubscribeConfig {
    /// Where events go (Zapier's `bundle.targetUrl`); else the input's `target_url` (or
    /// `url`, as Zapier's sample subscribe sends it).
    pub target_url: Option<String>,
    /// The event; else the input's `event`.
    pub event: Option<String>,
}

/// `subscribe`: records a REST Hook subscription (Zapier's `performSubscribe`).
#[derive(Debug)]
pub struct Subscribe;

impl Action for Subscribe {
    const NAME: &'static str = "subscribe";
    const DESCRIPTION: &'static str = "Records a REST Hook subscription {target_url, event} in the subscriptions file and returns it with its id.";
    type Config = SubscribeConfig;
    type Input = Payload;
    type Output = Subscription;

    fn permissions() -> Vec<Permission> {
        Vec::new()
    }
}

/// Config of `unsubscribe`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UnsubscribeConfig {
    /// The subscription's id; else the input's `id` (Zapier's `bundle.subscribeData.id`).
    pub id: Option<String>,
}

/// What `unsubscribe` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Unsubscribed {
    /// The id asked for.
    pub id: String,
    /// Whether it existed (unsubscribing twice is not an error).
    pub removed: bool,
}

/// `unsubscribe`: drops a REST Hook subscription (Zapier's `performUnsubscribe`).
#[derive(Debug)]
pub struct Unsubscribe;

impl Action for Unsubscribe {
    const NAME: &'static str = "unsubscribe";
    const DESCRIPTION: &'static str = "Removes a REST Hook subscription by id.";
    type Config = UnsubscribeConfig;
    type Input = Payload;
    type Output = Unsubscribed;

    fn permissions() -> Vec<Permission> {
        Vec::new()
    }
}

/// Config of `list_subscriptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ListSubscriptionsConfig {
    /// Only the subscriptions to this event.
    pub event: Option<String>,
}

/// `list_subscriptions`: the REST Hook subscriptions, as records.
#[derive(Debug)]
pub struct ListSubscriptions;

impl Action for ListSubscriptions {
    const NAME: &'static str = "list_subscriptions";
    const DESCRIPTION: &'static str =
        "Lists the REST Hook subscriptions (id, event, target_url, created_at) as records.";
    type Config = ListSubscriptionsConfig;
    type Input = Payload;
    type Output = Records;

    fn permissions() -> Vec<Permission> {
        Vec::new()
    }
}

/// Config of `notify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The event that happened; every subscription to it gets the payload.
    pub event: String,
    /// The JSON to deliver; the input when absent (records as an array of rows).
    #[serde(default)]
    pub payload: Option<Value>,
    /// Fail the call when any delivery failed (the subscriptions answered 410 are still
    /// removed first); by default failures are reported in the output.
    #[serde(default)]
    pub require_all: bool,
}

/// One delivery that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailedDelivery {
    /// The subscription.
    pub id: String,
    /// The status Zapier answered, when it answered.
    pub status: Option<u16>,
    /// What went wrong.
    pub error: String,
}

/// What `notify` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotifyOutput {
    /// The event.
    pub event: String,
    /// Subscriptions to it.
    pub subscriptions: usize,
    /// Deliveries Zapier accepted.
    pub delivered: usize,
    /// Subscriptions removed because Zapier answered 410 Gone (their Zap is off).
    pub removed: Vec<String>,
    /// Deliveries that failed otherwise (after the retry layer's retries).
    pub failed: Vec<FailedDelivery>,
}

saas_action!(
    /// `notify`: POSTs an event's payload to every subscription to it.
    Notify,
    "notify",
    "Delivers an event's payload to every REST Hook subscription to it; subscriptions answered 410 are removed.",
    NotifyConfig,
    Payload,
    NotifyOutput
);

// ---- handlers -----------------------------------------------------------------------------

impl ZapierConnector {
    /// The store, after checking the file grant (`write` for changes, `read` for lists).
    fn store(&self, ctx: &ActionContext, write: bool) -> Result<&SubscriptionStore> {
        let store = self.store.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "the REST Hook actions need the `subscriptions_file` setting",
            )
        })?;
        if write {
            ctx.permissions.check_write(store.path())?;
        } else {
            ctx.permissions.check_read(store.path())?;
        }
        Ok(store)
    }
}

/// The bodies `trigger` sends for `input`.
fn hook_bodies(config: &TriggerConfig, input: Payload) -> Result<Vec<HookBody>> {
    if let Some(body) = &config.body {
        return json_bodies(config.method, body.clone());
    }
    match input {
        Payload::Records(records) => {
            let rows = records.to_json_rows()?;
            match config.rows {
                RowsMode::Array => json_bodies(config.method, Value::Array(rows)),
                RowsMode::Each => {
                    if rows.len() > MAX_ROWS {
                        return Err(Error::new(
                            ErrorKind::InvalidInput,
                            format!(
                                "{} rows is more than the {MAX_ROWS} `trigger` sends one by one; split the input or use `rows: array`",
                                rows.len()
                            ),
                        ));
                    }
                    rows.into_iter()
                        .map(|row| json_bodies(config.method, row).map(|mut b| b.remove(0)))
                        .collect()
                }
            }
        }
        Payload::Bytes(blob) if config.method != HookMethod::Get => Ok(vec![HookBody::Bytes {
            data: blob.data,
            content_type: blob.media_type,
        }]),
        Payload::Bytes(_) => Err(Error::new(
            ErrorKind::InvalidInput,
            "a `get` trigger sends query parameters: give a JSON object, not bytes",
        )),
        Payload::Empty => json_bodies(config.method, Value::Object(Map::new())),
        Payload::Json(Value::Null) => json_bodies(config.method, Value::Object(Map::new())),
        Payload::Json(value) => json_bodies(config.method, value),
    }
}

/// One body of `value`: JSON, or query parameters for `get` (top-level fields; text as it
/// is, other values as JSON text).
fn json_bodies(method: HookMethod, value: Value) -> Result<Vec<HookBody>> {
    if method != HookMethod::Get {
        return Ok(vec![HookBody::Json(value)]);
    }
    let Value::Object(map) = value else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "a `get` trigger sends query parameters: give a JSON object",
        ));
    };
    let pairs = map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k, v)
        })
        .collect();
    Ok(vec![HookBody::Query(pairs)])
}

#[async_trait]
impl Handler<Trigger> for ZapierConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: TriggerConfig,
        input: Payload,
    ) -> Result<TriggerOutput> {
        let hook = match (&config.hook_url, &self.hook_url) {
            (Some(h), _) | (None, Some(h)) => h.clone(),
            (None, None) => {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "no catch hook: give `hook_url` in the action config or the plugin settings",
                ));
            }
        };
        check_host(&origin(&hook.url()?), &ctx.permissions, "Zapier")?;
        let bodies = hook_bodies(&config, input)?;
        let mut answers = Vec::with_capacity(bodies.len());
        for (i, body) in bodies.into_iter().enumerate() {
            ctx.check_alive()?;
            let answer = self
                .client
                .send_to_hook(&hook, config.method, body, config.raw_parse)
                .await
                .map_err(|e| {
                    if answers.is_empty() {
                        e
                    } else {
                        e.with_context("sent_before_failure", i)
                    }
                })?;
            answers.push(answer);
        }
        Ok(TriggerOutput {
            sent: answers.len(),
            answers,
        })
    }
}

/// A text field of the input object.
fn input_text(input: &Value, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| input.get(*n).and_then(Value::as_str).map(str::to_string))
}

#[async_trait]
impl Handler<Subscribe> for ZapierConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: SubscribeConfig,
        input: Payload,
    ) -> Result<Subscription> {
        let store = self.store(&ctx, true)?;
        let input = input.into_json().unwrap_or(Value::Null);
        let target = config
            .target_url
            .or_else(|| input_text(&input, &["target_url", "targetUrl", "url"]))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "give `target_url` (Zapier's bundle.targetUrl) in the config or the input",
                )
            })?;
        let event = config
            .event
            .or_else(|| input_text(&input, &["event"]))
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "give the `event` to subscribe to in the config or the input",
                )
            })?;
        let url = parse_url("target_url", &target).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                "`target_url` must be an http(s) URL with a host",
            )
        })?;
        let (subscription, created) = store.subscribe(url.as_str(), &event).await?;
        tracing::info!(id = %subscription.id, event = %event, target = %without_path(&url), created, "REST Hook subscription");
        Ok(subscription)
    }
}

#[async_trait]
impl Handler<Unsubscribe> for ZapierConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: UnsubscribeConfig,
        input: Payload,
    ) -> Result<Unsubscribed> {
        let store = self.store(&ctx, true)?;
        let input = input.into_json().unwrap_or(Value::Null);
        let id = config
            .id
            .or_else(|| input_text(&input, &["id"]))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "give the subscription `id` (Zapier's bundle.subscribeData.id) in the config or the input",
                )
            })?;
        let removed = store.remove(std::slice::from_ref(&id)).await?;
        Ok(Unsubscribed {
            removed: !removed.is_empty(),
            id,
        })
    }
}

#[async_trait]
impl Handler<ListSubscriptions> for ZapierConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ListSubscriptionsConfig,
        _input: Payload,
    ) -> Result<Records> {
        let store = self.store(&ctx, false)?;
        let subs = store.list().await?;
        let columns = [
            Column::new("id", ColumnType::Text),
            Column::new("event", ColumnType::Text),
            Column::new("target_url", ColumnType::Text),
            Column::new("created_at", ColumnType::Timestamp),
        ];
        let rows: Vec<Vec<Value>> = subs
            .into_iter()
            .filter(|s| config.event.as_ref().is_none_or(|e| *e == s.event))
            .map(|s| {
                vec![
                    Value::String(s.id),
                    Value::String(s.event),
                    Value::String(s.target_url),
                    Value::String(s.created_at),
                ]
            })
            .collect();
        records_from_rows(&columns, &rows)
    }
}

#[async_trait]
impl Handler<Notify> for ZapierConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: NotifyConfig,
        input: Payload,
    ) -> Result<NotifyOutput> {
        let store = self.store(&ctx, true)?;
        let payload = match config.payload {
            Some(p) => p,
            None => input.into_json()?,
        };
        let targets: Vec<Subscription> = store
            .list()
            .await?
            .into_iter()
            .filter(|s| s.event == config.event)
            .collect();
        let outcomes: Vec<(Subscription, Result<Delivery>)> = stream::iter(targets.clone())
            .map(|sub| {
                let payload = &payload;
                let ctx = &ctx;
                async move {
                    let outcome = async {
                        let url = parse_url("target_url", &sub.target_url)?;
                        check_host(&origin(&url), &ctx.permissions, "Zapier")?;
                        ctx.check_alive()?;
                        self.client.deliver(&url, payload).await
                    }
                    .await;
                    (sub, outcome)
                }
            })
            .buffer_unordered(DELIVERY_CONCURRENCY)
            .collect()
            .await;
        let mut delivered = 0;
        let mut gone = Vec::new();
        let mut failed = Vec::new();
        for (sub, outcome) in outcomes {
            match outcome {
                Ok(Delivery::Delivered(_)) => delivered += 1,
                Ok(Delivery::Gone) => gone.push(sub.id),
                Err(e) => failed.push(FailedDelivery {
                    id: sub.id,
                    status: e.status(),
                    error: e.to_string(),
                }),
            }
        }
        let removed: Vec<String> = if gone.is_empty() {
            Vec::new()
        } else {
            store
                .remove(&gone)
                .await?
                .into_iter()
                .map(|s| s.id)
                .collect()
        };
        if config.require_all && !failed.is_empty() {
            let first = &failed[0];
            return Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "{} of {} deliveries of `{}` failed (first: subscription {}: {})",
                    failed.len(),
                    targets.len(),
                    config.event,
                    first.id,
                    first.error
                ),
            )
            .with_context("event", &config.event));
        }
        Ok(NotifyOutput {
            event: config.event,
            subscriptions: targets.len(),
            delivered,
            removed,
            failed,
        })
    }
}
