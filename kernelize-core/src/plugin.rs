//! The plugin model: what a plugin says about itself, its lifecycle, and how it is called.
//!
//! A plugin implements [`Plugin`]. Its actions are written once, as [`Handler`]
//! implementations of typed [`Action`]s, and listed in an [`ActionRouter`]; the router serves
//! the dynamic call (`plugin id, action name, payload`) used by YAML workflows, the CLI and the
//! gateway, and [`crate::PluginManager::call_typed`] serves Rust callers with the same code.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use semver::{Version, VersionReq};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditSink;
use crate::config::ResolvedConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{EventSink, EventSource};
use crate::payload::{Blob, Payload, Records};
use crate::permissions::{Permission, PermissionGuard};

/// What kind of work a plugin does; shown in listings and used for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Transforms, validates or enriches data.
    DataProcessor,
    /// Compresses and decompresses bytes.
    Compressor,
    /// Talks to an outside system: a SaaS API, a database, a broker.
    Connector,
    /// Renders data for people: charts, dashboards, reports.
    Visualizer,
    /// Computes statistics and models over data.
    Analytics,
    /// Orchestrates other plugins.
    Workflow,
    /// Signs, encrypts, scans or authorizes.
    Security,
    /// Observes systems and notifies people.
    Monitoring,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 8] = [
        Category::DataProcessor,
        Category::Compressor,
        Category::Connector,
        Category::Visualizer,
        Category::Analytics,
        Category::Workflow,
        Category::Security,
        Category::Monitoring,
    ];

    /// The snake_case name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::DataProcessor => "data_processor",
            Category::Compressor => "compressor",
            Category::Connector => "connector",
            Category::Visualizer => "visualizer",
            Category::Analytics => "analytics",
            Category::Workflow => "workflow",
            Category::Security => "security",
            Category::Monitoring => "monitoring",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dependency of one plugin on another, with a semver requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// Id of the plugin depended on.
    pub id: String,
    /// Versions that satisfy the dependency, such as `^1.2`.
    pub req: VersionReq,
}

impl Dependency {
    /// A dependency on `id` at versions matching `req` (for example `"^1.2"`).
    pub fn new(id: impl Into<String>, req: &str) -> Result<Self> {
        let id = id.into();
        let req = VersionReq::parse(req).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("invalid version requirement `{req}` for dependency `{id}`: {e}"),
            )
        })?;
        Ok(Dependency { id, req })
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.req)
    }
}

/// The shape of an action's input or output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadDescriptor {
    /// Which payload variant: `json`, `records`, `bytes`, `empty` or `any`.
    pub kind: String,
    /// JSON Schema of a JSON payload, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

impl PayloadDescriptor {
    /// A descriptor of a given kind with no schema.
    pub fn of_kind(kind: &str) -> Self {
        PayloadDescriptor {
            kind: kind.to_string(),
            schema: None,
        }
    }
}

/// One action a plugin offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDescriptor {
    /// The action's name, as used in calls.
    pub name: String,
    /// What the action does, in a sentence.
    pub description: String,
    /// JSON Schema of the action's per-call configuration.
    pub config: Value,
    /// What the action takes.
    pub input: PayloadDescriptor,
    /// What the action returns.
    pub output: PayloadDescriptor,
    /// Permissions a call of this action needs (checked by the plugin as it works).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<Permission>,
}

/// Everything a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginMetadata {
    /// Stable identifier, such as `data-transformer` or `snowflake-connector`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Semantic version of this implementation.
    pub version: Version,
    /// What the plugin is for.
    pub description: String,
    /// Who wrote it.
    pub author: String,
    /// What kind of plugin it is.
    pub category: Category,
    /// Other plugins it needs, with version requirements.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// Permissions it may need; the host grants a subset.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// JSON Schema of the plugin-level settings.
    pub config_schema: Value,
    /// The actions it offers.
    pub actions: Vec<ActionDescriptor>,
    /// Whether it is an event source or sink for event pipelines
    /// ([`Plugin::open_source`], [`Plugin::open_sink`]).
    #[serde(default, skip_serializing_if = "EventRoles::is_none")]
    pub events: EventRoles,
}

/// The event pipeline roles a plugin takes, with the JSON Schema of each role's options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventRoles {
    /// The options [`Plugin::open_source`] takes, when the plugin is a source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
    /// The options [`Plugin::open_sink`] takes, when the plugin is a sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<Value>,
}

impl EventRoles {
    /// Neither a source nor a sink.
    pub fn is_none(&self) -> bool {
        self.source.is_none() && self.sink.is_none()
    }
}

impl PluginMetadata {
    /// Metadata with the required fields; the rest start empty.
    ///
    /// `version` must be a valid semantic version; metadata is written by plugin authors, so
    /// an invalid one is reported when the plugin is installed.
    pub fn new(id: &str, name: &str, version: Version, category: Category) -> Self {
        PluginMetadata {
            id: id.to_string(),
            name: name.to_string(),
            version,
            description: String::new(),
            author: String::new(),
            category,
            dependencies: Vec::new(),
            permissions: Vec::new(),
            config_schema: serde_json::json!({"type": "object"}),
            actions: Vec::new(),
            events: EventRoles::default(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_string();
        self
    }

    /// Sets the author.
    pub fn author(mut self, text: &str) -> Self {
        self.author = text.to_string();
        self
    }

    /// Adds a dependency.
    pub fn depends_on(mut self, dependency: Dependency) -> Self {
        self.dependencies.push(dependency);
        self
    }

    /// Declares a permission the plugin may need.
    pub fn needs(mut self, permission: Permission) -> Self {
        self.permissions.push(permission);
        self
    }

    /// Sets the settings schema from a Rust type.
    pub fn config_type<T: JsonSchema>(mut self) -> Self {
        self.config_schema = schema_value::<T>();
        self
    }

    /// Sets the actions.
    pub fn actions(mut self, actions: Vec<ActionDescriptor>) -> Self {
        self.actions = actions;
        self
    }

    /// Declares the plugin an event source whose options are described by `T`.
    pub fn event_source<T: JsonSchema>(mut self) -> Self {
        self.events.source = Some(schema_value::<T>());
        self
    }

    /// Declares the plugin an event sink whose options are described by `T`.
    pub fn event_sink<T: JsonSchema>(mut self) -> Self {
        self.events.sink = Some(schema_value::<T>());
        self
    }

    /// The descriptor of one action.
    pub fn action(&self, name: &str) -> Option<&ActionDescriptor> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// `id version`, as used in messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.id, self.version)
    }
}

/// The JSON Schema of a Rust type, as a JSON value.
pub fn schema_value<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Bool(true))
}

/// How healthy a plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working normally.
    Healthy,
    /// Working, but impaired (slow, failing some calls, a dependency is flaky).
    Degraded,
    /// Not able to serve calls.
    Unhealthy,
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        })
    }
}

/// What a plugin reports about its own health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Overall status.
    pub status: HealthStatus,
    /// Why, when not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl HealthReport {
    /// A healthy report.
    pub fn healthy() -> Self {
        HealthReport {
            status: HealthStatus::Healthy,
            detail: None,
        }
    }

    /// A degraded report with a reason.
    pub fn degraded(detail: impl Into<String>) -> Self {
        HealthReport {
            status: HealthStatus::Degraded,
            detail: Some(detail.into()),
        }
    }

    /// An unhealthy report with a reason.
    pub fn unhealthy(detail: impl Into<String>) -> Self {
        HealthReport {
            status: HealthStatus::Unhealthy,
            detail: Some(detail.into()),
        }
    }
}

/// What a plugin gets when it is initialized.
#[derive(Clone)]
pub struct InitContext {
    /// Its configuration, with `${env:..}` and `${secret:..}` references resolved.
    pub config: ResolvedConfig,
    /// The permissions the host granted it.
    pub permissions: PermissionGuard,
    /// The host's audit sink, for plugins whose work is itself worth auditing.
    pub audit: Option<Arc<dyn AuditSink>>,
}

impl fmt::Debug for InitContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitContext")
            .field("config", &self.config)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

impl InitContext {
    /// A context with plain settings, no permissions and no audit sink (for tests and for
    /// using a plugin without a manager).
    pub fn plain(settings: Value) -> Self {
        InitContext {
            config: ResolvedConfig::plain(settings),
            permissions: PermissionGuard::none(),
            audit: None,
        }
    }
}

/// One call of a plugin action.
#[derive(Debug, Clone)]
pub struct Call {
    /// The action's name.
    pub action: String,
    /// Per-call configuration of the action (a workflow step's `config`), `null` when none.
    pub config: Value,
    /// The data the action works on.
    pub input: Payload,
    /// When the call must have finished, if it has a deadline.
    pub deadline: Option<Instant>,
    /// Cancelled when the caller gives up; long actions check it.
    pub cancel: CancellationToken,
    /// The permissions the host granted the plugin; actions check them before acting.
    pub permissions: PermissionGuard,
    /// A key naming this unit of work, the same each time the caller repeats it (a
    /// workflow gives one per step attempt, kept across a resumed run). Plugins that call
    /// remote systems pass it on (the `http` plugin as the `Idempotency-Key` header) so
    /// that a repeated call takes effect once.
    pub idempotency_key: Option<String>,
    /// Named values the caller offers for placeholders (`:name` in a SQL query): a workflow
    /// run gives `last_sync` (the start of the workflow's last successful run, RFC 3339),
    /// `run_id`, `workflow`, and its parameters. A plugin binds them as values, never
    /// splices them into text; its own per-call values win over these.
    pub vars: BTreeMap<String, Value>,
}

impl Call {
    /// A call of `action` with an input payload, no config, no deadline and no permissions.
    pub fn new(action: impl Into<String>, input: Payload) -> Self {
        Call {
            action: action.into(),
            config: Value::Null,
            input,
            deadline: None,
            cancel: CancellationToken::new(),
            permissions: PermissionGuard::none(),
            idempotency_key: None,
            vars: BTreeMap::new(),
        }
    }

    /// Offers a named value for placeholders (see [`Call::vars`]).
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the per-call configuration.
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// Sets a deadline `timeout` from now.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Some(Instant::now() + timeout);
        self
    }

    /// Uses the given cancellation token.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Time left before the deadline; `None` when there is no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Fails with `Cancelled` or `Timeout` when the call should stop; long actions call this
    /// between units of work.
    pub fn check_alive(&self) -> Result<()> {
        check_alive(&self.cancel, self.deadline)
    }
}

/// `Cancelled` when `cancel` fired, `Timeout` when `deadline` passed, `Ok` otherwise.
fn check_alive(cancel: &CancellationToken, deadline: Option<Instant>) -> Result<()> {
    if cancel.is_cancelled() {
        return Err(Error::new(ErrorKind::Cancelled, "the call was cancelled"));
    }
    if let Some(deadline) = deadline
        && Instant::now() >= deadline
    {
        return Err(Error::new(
            ErrorKind::Timeout,
            "the call passed its deadline",
        ));
    }
    Ok(())
}

/// A plugin: something with metadata, a lifecycle and actions.
///
/// The manager calls, in order: [`Plugin::validate`], [`Plugin::initialize`],
/// [`Plugin::health`] (the first check decides whether an update is kept), then
/// [`Plugin::execute`] any number of times, concurrently, and finally [`Plugin::shutdown`]
/// once no call is running.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// What the plugin says about itself. Must not change over the plugin's life.
    fn metadata(&self) -> PluginMetadata;

    /// Checks a configuration before initialization; an error stops activation.
    ///
    /// The default checks the settings against the metadata's `config_schema`.
    fn validate(&self, config: &ResolvedConfig) -> Result<()> {
        config.validate_against(&self.metadata().config_schema)
    }

    /// Prepares the plugin: parse settings, open clients, check reachability. The default
    /// does nothing, for plugins without settings or state.
    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Runs one action.
    async fn execute(&self, call: Call) -> Result<Payload>;

    /// Releases what `initialize` acquired. Called once, after the last call finished.
    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    /// Reports the plugin's own view of its health.
    async fn health(&self) -> HealthReport {
        HealthReport::healthy()
    }

    /// Opens a consumer of the events the plugin's system holds (a JetStream pull consumer,
    /// a queue, a stream's consumer group), configured by `options`: the `source:` settings
    /// of a pipeline. A plugin that is a source says so with
    /// [`PluginMetadata::event_source`]; the default refuses.
    async fn open_source(&self, options: Value) -> Result<Box<dyn EventSource>> {
        let _ = options;
        Err(Error::new(
            ErrorKind::Unsupported,
            format!("{} is not an event source", self.metadata().id),
        ))
    }

    /// Opens a writer of events into the plugin's system (a table, a stream, a subject),
    /// configured by `options`: a pipeline sink's settings. A plugin that is a sink says so
    /// with [`PluginMetadata::event_sink`]; the default refuses.
    async fn open_sink(&self, options: Value) -> Result<Arc<dyn EventSink>> {
        let _ = options;
        Err(Error::new(
            ErrorKind::Unsupported,
            format!("{} is not an event sink", self.metadata().id),
        ))
    }
}

/// A value that can travel as a [`Payload`]: the input or output type of a typed action.
///
/// Implemented for every serde type with a JSON Schema (carried as JSON), for [`Records`],
/// for [`Blob`] and for [`Payload`] itself (any payload).
pub trait PayloadType: Sized + Send + 'static {
    /// Reads the value from a payload.
    fn from_payload(payload: Payload) -> Result<Self>;
    /// Writes the value as a payload.
    fn into_payload(self) -> Result<Payload>;
    /// Describes the payload's shape for metadata.
    fn descriptor() -> PayloadDescriptor;
}

impl<T> PayloadType for T
where
    T: Serialize + DeserializeOwned + JsonSchema + Send + 'static,
{
    fn from_payload(payload: Payload) -> Result<Self> {
        let value = payload.into_json()?;
        serde_json::from_value(value).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("input does not match: {e}"),
            )
        })
    }

    fn into_payload(self) -> Result<Payload> {
        Ok(Payload::Json(serde_json::to_value(self).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("output does not serialize: {e}"),
            )
        })?))
    }

    fn descriptor() -> PayloadDescriptor {
        PayloadDescriptor {
            kind: "json".to_string(),
            schema: Some(schema_value::<T>()),
        }
    }
}

impl PayloadType for Records {
    fn from_payload(payload: Payload) -> Result<Self> {
        payload.into_records()
    }

    fn into_payload(self) -> Result<Payload> {
        Ok(Payload::Records(self))
    }

    fn descriptor() -> PayloadDescriptor {
        PayloadDescriptor::of_kind("records")
    }
}

impl PayloadType for Blob {
    fn from_payload(payload: Payload) -> Result<Self> {
        payload.into_blob()
    }

    fn into_payload(self) -> Result<Payload> {
        Ok(Payload::Bytes(self))
    }

    fn descriptor() -> PayloadDescriptor {
        PayloadDescriptor::of_kind("bytes")
    }
}

impl PayloadType for Payload {
    fn from_payload(payload: Payload) -> Result<Self> {
        Ok(payload)
    }

    fn into_payload(self) -> Result<Payload> {
        Ok(self)
    }

    fn descriptor() -> PayloadDescriptor {
        PayloadDescriptor::of_kind("any")
    }
}

/// A typed action: a name, its per-call configuration, its input and its output.
///
/// ```
/// use kernelize_core::{Action, Records};
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, JsonSchema)]
/// struct SelectConfig { columns: Vec<String> }
///
/// struct Select;
/// impl Action for Select {
///     const NAME: &'static str = "select";
///     const DESCRIPTION: &'static str = "Keep the named columns, in that order.";
///     type Config = SelectConfig;
///     type Input = Records;
///     type Output = Records;
/// }
/// ```
pub trait Action: Send + Sync + 'static {
    /// The action's name in dynamic calls.
    const NAME: &'static str;
    /// What the action does, in a sentence.
    const DESCRIPTION: &'static str;
    /// Per-call configuration (a workflow step's `config`); use `()` for none.
    type Config: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
    /// What the action takes.
    type Input: PayloadType;
    /// What the action returns.
    type Output: PayloadType;

    /// Permissions a call of this action needs.
    fn permissions() -> Vec<Permission> {
        Vec::new()
    }

    /// The action's descriptor for metadata.
    fn descriptor() -> ActionDescriptor {
        ActionDescriptor {
            name: Self::NAME.to_string(),
            description: Self::DESCRIPTION.to_string(),
            config: schema_value::<Self::Config>(),
            input: Self::Input::descriptor(),
            output: Self::Output::descriptor(),
            permissions: Self::permissions(),
        }
    }
}

/// What a typed action handler receives besides its input.
#[derive(Debug, Clone)]
pub struct ActionContext {
    /// The action's name.
    pub action: String,
    /// When the call must have finished.
    pub deadline: Option<Instant>,
    /// Cancelled when the caller gives up.
    pub cancel: CancellationToken,
    /// The permissions granted to the plugin.
    pub permissions: PermissionGuard,
    /// The call's idempotency key, if the caller gave one.
    pub idempotency_key: Option<String>,
    /// Named values for placeholders ([`Call::vars`]).
    pub vars: BTreeMap<String, Value>,
}

impl ActionContext {
    /// Fails with `Cancelled` or `Timeout` when the call should stop.
    pub fn check_alive(&self) -> Result<()> {
        check_alive(&self.cancel, self.deadline)
    }
}

/// The implementation of action `A` by a plugin. Written once; serves dynamic and typed calls.
#[async_trait]
pub trait Handler<A: Action>: Send + Sync + 'static {
    /// Runs the action.
    async fn handle(
        &self,
        ctx: ActionContext,
        config: A::Config,
        input: A::Input,
    ) -> Result<A::Output>;
}

type DynHandler<P> = for<'a> fn(&'a P, Call) -> BoxFuture<'a, Result<Payload>>;

fn run_handler<'a, P, A>(plugin: &'a P, call: Call) -> BoxFuture<'a, Result<Payload>>
where
    A: Action,
    P: Handler<A>,
{
    Box::pin(async move {
        let config = parse_action_config::<A>(call.config)?;
        let input =
            A::Input::from_payload(call.input).map_err(|e| e.with_context("action", A::NAME))?;
        let ctx = ActionContext {
            action: call.action,
            deadline: call.deadline,
            cancel: call.cancel,
            permissions: call.permissions,
            idempotency_key: call.idempotency_key,
            vars: call.vars,
        };
        let output = Handler::<A>::handle(plugin, ctx, config, input).await?;
        output.into_payload()
    })
}

/// Routes dynamic calls to a plugin's typed handlers, and lists their descriptors.
///
/// Build one per plugin type and keep it (in a `static` `LazyLock`, or a field); the plugin's
/// [`Plugin::execute`] forwards to [`ActionRouter::dispatch`], and its metadata lists
/// [`ActionRouter::descriptors`].
pub struct ActionRouter<P> {
    handlers: BTreeMap<&'static str, (ActionDescriptor, DynHandler<P>)>,
}

impl<P> fmt::Debug for ActionRouter<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionRouter")
            .field("actions", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<P: Send + Sync + 'static> Default for ActionRouter<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Send + Sync + 'static> ActionRouter<P> {
    /// An empty router.
    pub fn new() -> Self {
        ActionRouter {
            handlers: BTreeMap::new(),
        }
    }

    /// Adds action `A`, served by `P`'s [`Handler<A>`] implementation.
    pub fn action<A: Action>(mut self) -> Self
    where
        P: Handler<A>,
    {
        self.handlers
            .insert(A::NAME, (A::descriptor(), run_handler::<P, A>));
        self
    }

    /// The descriptors of every action, sorted by name.
    pub fn descriptors(&self) -> Vec<ActionDescriptor> {
        self.handlers.values().map(|(d, _)| d.clone()).collect()
    }

    /// The names of every action, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }

    /// Runs the action a call names, on `plugin`.
    pub async fn dispatch(&self, plugin: &P, call: Call) -> Result<Payload> {
        let Some((_, handler)) = self.handlers.get(call.action.as_str()) else {
            return Err(unknown_action(&call.action, &self.names()));
        };
        handler(plugin, call).await
    }
}

/// The error for an action a plugin does not offer, naming the ones it does.
pub fn unknown_action(action: &str, known: &[&str]) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!(
            "unknown action `{action}`; known actions: {}",
            known.join(", ")
        ),
    )
}

fn parse_action_config<A: Action>(config: Value) -> Result<A::Config> {
    // A step without `config` sends null; let config types with defaults accept that.
    let attempt = serde_json::from_value::<A::Config>(config.clone());
    match (attempt, &config) {
        (Ok(c), _) => Ok(c),
        (Err(_), Value::Null) => {
            serde_json::from_value(Value::Object(Default::default())).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("action `{}` needs a config: {e}", A::NAME),
                )
            })
        }
        (Err(e), _) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("invalid config for action `{}`: {e}", A::NAME),
        )),
    }
}
