//! The plugin manager: install, activate, call, watch, update and deactivate plugins.
//!
//! - **Install** registers a [`PluginFactory`] (one version of one plugin).
//! - **Activate** resolves the plugin and its dependencies against what is installed and
//!   already active (one active version per plugin), then starts each in dependency order:
//!   configuration references are resolved, permissions granted, then `validate`,
//!   `initialize` and a first health check. If any step of any plugin fails, the plugins
//!   started by that activation are stopped again.
//! - **Call** runs an action under the plugin's limits: at most `max_concurrent` calls at
//!   once (a further call waits or is refused, as configured) and a `call_timeout`; the
//!   caller's deadline and cancellation token are honoured too. Each call is a tracing span
//!   and feeds counters, error counts and latency quantiles.
//! - **Update** starts the new version beside the old one; only when it validated,
//!   initialized and reported healthy does it replace the old one, which then drains and
//!   shuts down. Otherwise the old version goes on serving and the update is rolled back.
//! - **Deactivate** stops plugins in reverse dependency order and refuses to stop a plugin
//!   that an active plugin depends on, unless asked to cascade.
//!
//! Every install, activation, deactivation, update, rollback and permission grant is an
//! audit event.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use semver::{Version, VersionReq};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::audit::{AuditEvent, AuditSink, Outcome, TracingAuditSink};
use crate::config::{
    EnvSecretStore, Limits, PluginConfig, Redactor, ResolvedConfig, SecretStore, WhenBusy,
};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{EventSink, EventSource};
use crate::payload::Payload;
use crate::permissions::PermissionGuard;
use crate::plugin::{
    Action, Call, Dependency, HealthReport, HealthStatus, InitContext, PayloadType, Plugin,
    PluginMetadata, unknown_action,
};
use crate::registry::{PluginFactory, Registry, Resolution, dependents_of};

/// How long a health check may take before the plugin counts as unhealthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a stopping plugin waits for running calls when it has no call timeout.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How many recent latencies feed the p50/p99 figures.
const LATENCY_WINDOW: usize = 1024;
/// How many recent outcomes feed the error-rate part of health.
const OUTCOME_WINDOW: usize = 20;
/// Fewest recent calls before the error rate can mark a plugin degraded.
const MIN_CALLS_FOR_RATE: usize = 5;

type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Options of a manager; see [`PluginManager::builder`].
pub struct PluginManagerBuilder {
    audit: Arc<dyn AuditSink>,
    secrets: Arc<dyn SecretStore>,
    env: EnvLookup,
    actor: String,
}

impl fmt::Debug for PluginManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginManagerBuilder")
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl PluginManagerBuilder {
    /// Sends audit events to `sink` (default: the tracing log).
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = sink;
        self
    }

    /// Looks `${secret:NAME}` references up in `store` (default: `KERNELIZE_SECRET_*`
    /// environment variables).
    pub fn secrets(mut self, store: Arc<dyn SecretStore>) -> Self {
        self.secrets = store;
        self
    }

    /// Looks `${env:NAME}` references up with `lookup` (default: the process environment).
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Arc::new(lookup);
        self
    }

    /// Names the actor of the manager's audit events (default: `host`).
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Builds the manager.
    pub fn build(self) -> PluginManager {
        PluginManager {
            inner: Arc::new(Inner {
                registry: RwLock::new(Registry::new()),
                configs: RwLock::new(BTreeMap::new()),
                active: RwLock::new(BTreeMap::new()),
                lifecycle: tokio::sync::Mutex::new(()),
                audit: self.audit,
                secrets: self.secrets,
                env: self.env,
                actor: self.actor,
            }),
        }
    }
}

/// Installs, activates, calls, watches, updates and deactivates plugins.
///
/// Cheap to clone: clones share the same plugins.
#[derive(Clone)]
pub struct PluginManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for PluginManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginManager")
            .field("active", &self.active_ids())
            .finish_non_exhaustive()
    }
}

impl Default for PluginManager {
    fn default() -> Self {
        PluginManager::builder().build()
    }
}

struct Inner {
    registry: RwLock<Registry>,
    configs: RwLock<BTreeMap<String, PluginConfig>>,
    active: RwLock<BTreeMap<String, Arc<ActivePlugin>>>,
    /// Serializes activation, deactivation and updates.
    lifecycle: tokio::sync::Mutex<()>,
    audit: Arc<dyn AuditSink>,
    secrets: Arc<dyn SecretStore>,
    env: EnvLookup,
    actor: String,
}

struct ActivePlugin {
    plugin: Arc<dyn Plugin>,
    metadata: PluginMetadata,
    permissions: PermissionGuard,
    limits: Limits,
    redactor: Redactor,
    slots: Option<Arc<Semaphore>>,
    /// Calls hold it shared; stopping takes it exclusively, so it waits for running calls.
    gate: tokio::sync::RwLock<()>,
    /// Set when stopping begins; a call that gets the gate afterwards is refused.
    closed: AtomicBool,
    stats: Mutex<Stats>,
    started: Instant,
}

#[derive(Default)]
struct Stats {
    calls: u64,
    errors: u64,
    latencies: VecDeque<Duration>,
    outcomes: VecDeque<bool>,
    last_error: Option<String>,
}

impl Stats {
    fn record(&mut self, elapsed: Duration, error: Option<&Error>) {
        self.calls += 1;
        if self.latencies.len() == LATENCY_WINDOW {
            self.latencies.pop_front();
        }
        self.latencies.push_back(elapsed);
        if self.outcomes.len() == OUTCOME_WINDOW {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(error.is_none());
        if let Some(e) = error {
            self.errors += 1;
            self.last_error = Some(e.to_string());
        }
    }

    fn quantile(&self, q: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut sorted: Vec<Duration> = self.latencies.iter().copied().collect();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    }
}

/// What the manager knows about an active plugin's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginHealth {
    /// Plugin id.
    pub id: String,
    /// Active version.
    pub version: Version,
    /// The worse of the plugin's own report and its recent error rate.
    pub status: HealthStatus,
    /// Why, when not healthy.
    pub detail: Option<String>,
    /// Time since activation.
    pub uptime: Duration,
    /// Calls since activation.
    pub calls: u64,
    /// Failed calls since activation.
    pub errors: u64,
    /// Median latency over the recent calls.
    pub p50: Option<Duration>,
    /// 99th-percentile latency over the recent calls.
    pub p99: Option<Duration>,
    /// The most recent error, if any.
    pub last_error: Option<String>,
}

/// What is known about one installed plugin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstalledPlugin {
    /// Metadata of the highest installed version (or of the active one).
    pub metadata: PluginMetadata,
    /// Every installed version, lowest first.
    pub versions: Vec<Version>,
    /// The active version, if the plugin is active.
    pub active: Option<Version>,
}

/// Per-call options for [`PluginManager::call_typed`].
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Deadline for the call, counted from when it is made.
    pub timeout: Option<Duration>,
    /// Cancels the call.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
}

impl PluginManager {
    /// A manager with default options: audit to the tracing log, secrets from
    /// `KERNELIZE_SECRET_*` variables, `${env:..}` from the process environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder to set the audit sink, secret store and environment lookup.
    pub fn builder() -> PluginManagerBuilder {
        PluginManagerBuilder {
            audit: Arc::new(TracingAuditSink),
            secrets: Arc::new(EnvSecretStore::default()),
            env: Arc::new(|name: &str| std::env::var(name).ok()),
            actor: "host".to_string(),
        }
    }

    fn audit(
        &self,
        action: &str,
        target: impl Into<String>,
        outcome: Outcome,
        detail: Option<String>,
    ) {
        let mut event = AuditEvent::new(&self.inner.actor, action, target, outcome);
        event.detail = detail;
        self.inner.audit.record(&event);
    }

    // --- installed plugins -------------------------------------------------------------

    /// Installs one version of a plugin.
    pub fn install(&self, factory: PluginFactory) -> Result<()> {
        let label = factory.metadata().label();
        let result = self.registry_write().register(factory);
        match &result {
            Ok(()) => self.audit("plugin.install", label, Outcome::Success, None),
            Err(e) => self.audit(
                "plugin.install",
                label,
                Outcome::Failure,
                Some(e.to_string()),
            ),
        }
        result
    }

    /// Installs `name` as a named instance of the installed plugin `plugin` (its latest
    /// version), so that it can be configured and activated apart from the plugin itself.
    /// Installing the same instance again does nothing; a name taken by another plugin is an
    /// error.
    pub fn install_instance(&self, name: &str, plugin: &str) -> Result<()> {
        if name == plugin {
            return Ok(());
        }
        let factory = {
            let registry = self.registry_read();
            if let Some(existing) = registry.latest(name) {
                return match existing.instance_of() {
                    Some(of) if of == plugin => Ok(()),
                    _ => Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        format!(
                            "instance name `{name}` is taken: a plugin of that id is installed"
                        ),
                    )),
                };
            }
            registry
                .latest(plugin)
                .ok_or_else(|| self.not_installed(plugin))?
                .instance(name)
        };
        self.install(factory)
    }

    /// Installs several plugins, stopping at the first error.
    pub fn install_all(&self, factories: impl IntoIterator<Item = PluginFactory>) -> Result<()> {
        factories.into_iter().try_for_each(|f| self.install(f))
    }

    /// Sets the configuration used the next time `id` is activated or updated.
    pub fn configure(&self, id: &str, config: PluginConfig) {
        match self.inner.configs.write() {
            Ok(mut c) => c.insert(id.to_string(), config),
            Err(p) => p.into_inner().insert(id.to_string(), config),
        };
    }

    /// Every installed plugin, by id.
    pub fn installed(&self) -> Vec<InstalledPlugin> {
        let registry = self.registry_read();
        let active = self.active_map();
        registry
            .ids()
            .into_iter()
            .filter_map(|id| {
                let active_version = active.get(&id).map(|a| a.metadata.version.clone());
                let metadata = match active.get(&id) {
                    Some(a) => a.metadata.clone(),
                    None => registry.latest(&id)?.metadata().clone(),
                };
                Some(InstalledPlugin {
                    versions: registry.versions(&id),
                    metadata,
                    active: active_version,
                })
            })
            .collect()
    }

    /// Metadata of the active version of `id`, or else of its highest installed version.
    pub fn metadata(&self, id: &str) -> Result<PluginMetadata> {
        if let Some(a) = self.active_map().get(id) {
            return Ok(a.metadata.clone());
        }
        self.registry_read()
            .latest(id)
            .map(|f| f.metadata().clone())
            .ok_or_else(|| self.not_installed(id))
    }

    /// Resolves `requests` against the installed plugins (without activating anything).
    pub fn resolve(&self, requests: &[Dependency]) -> Result<Resolution> {
        self.registry_read().resolve(requests)
    }

    // --- lifecycle -----------------------------------------------------------------------

    /// Activates the highest suitable version of `id` and everything it depends on.
    ///
    /// Returns the ids started, in the order they were started; an already active plugin
    /// returns an empty list.
    pub async fn activate(&self, id: &str) -> Result<Vec<String>> {
        self.activate_matching(id, &VersionReq::STAR).await
    }

    /// Activates the highest version of `id` matching `req`, and its dependencies.
    pub async fn activate_matching(&self, id: &str, req: &VersionReq) -> Result<Vec<String>> {
        let _lifecycle = self.inner.lifecycle.lock().await;
        let mut requests = self.active_pins(None);
        requests.push(Dependency {
            id: id.to_string(),
            req: req.clone(),
        });
        let resolution = self.resolve(&requests).inspect_err(|e| {
            self.audit("plugin.activate", id, Outcome::Failure, Some(e.to_string()));
        })?;
        let mut started: Vec<String> = Vec::new();
        for pid in &resolution.order {
            if self.active_map().contains_key(pid) {
                continue;
            }
            let Some(version) = resolution.versions.get(pid) else {
                continue;
            };
            match self.start(pid, version).await {
                Ok(active) => {
                    self.active_write().insert(pid.clone(), active);
                    started.push(pid.clone());
                }
                Err(e) => {
                    // Undo this activation: stop what it started, newest first.
                    for done in started.iter().rev() {
                        let removed = self.active_write().remove(done);
                        if let Some(a) = removed {
                            self.stop(&a).await;
                        }
                    }
                    return Err(e.with_context("activating", id));
                }
            }
        }
        Ok(started)
    }

    /// Deactivates `id`. If active plugins depend on it, this fails unless `cascade` is set,
    /// in which case they are deactivated first (dependents before their dependencies).
    ///
    /// Returns the ids stopped, in the order they were stopped.
    pub async fn deactivate(&self, id: &str, cascade: bool) -> Result<Vec<String>> {
        let _lifecycle = self.inner.lifecycle.lock().await;
        if !self.active_map().contains_key(id) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("plugin `{id}` is not active"),
            ));
        }
        let graph = self.active_graph();
        let dependents = dependents_of(&graph, id);
        if !dependents.is_empty() && !cascade {
            let names: Vec<String> = dependents.into_iter().collect();
            let err = Error::new(
                ErrorKind::Dependency,
                format!(
                    "cannot deactivate `{id}`: active plugins depend on it: {}; deactivate with cascade to stop them too",
                    names.join(", ")
                ),
            );
            self.audit(
                "plugin.deactivate",
                id,
                Outcome::Failure,
                Some(err.to_string()),
            );
            return Err(err);
        }
        // Stop dependents in reverse dependency order, then the plugin itself.
        let order = self.activation_order();
        let mut stopped = Vec::new();
        for pid in order.iter().rev() {
            if pid == id || dependents.contains(pid) {
                let removed = self.active_write().remove(pid);
                if let Some(active) = removed {
                    self.stop(&active).await;
                    stopped.push(pid.clone());
                }
            }
        }
        Ok(stopped)
    }

    /// Deactivates every plugin, dependents first.
    pub async fn deactivate_all(&self) -> Vec<String> {
        let _lifecycle = self.inner.lifecycle.lock().await;
        let mut stopped = Vec::new();
        for pid in self.activation_order().iter().rev() {
            let removed = self.active_write().remove(pid);
            if let Some(active) = removed {
                self.stop(&active).await;
                stopped.push(pid.clone());
            }
        }
        stopped
    }

    /// Installs `factory` (if that version is not installed yet) and, when the plugin is
    /// active, replaces the active version with it.
    ///
    /// The new version is validated, initialized and health-checked while the old one keeps
    /// serving. If any of that fails, or the new version's dependencies are not met by the
    /// active plugins, or an active dependent's requirement rejects the new version, the
    /// update is rolled back: the old version stays active, a version installed by this call
    /// is uninstalled again, and the error says so.
    pub async fn update(&self, factory: PluginFactory) -> Result<Version> {
        let _lifecycle = self.inner.lifecycle.lock().await;
        let meta = factory.metadata().clone();
        let id = meta.id.clone();
        let installed_here = self.registry_read().get(&id, &meta.version).is_none();
        if installed_here {
            self.registry_write().register(factory)?;
            self.audit("plugin.install", meta.label(), Outcome::Success, None);
        }
        let Some(old) = self.active_map().get(&id).cloned() else {
            // Nothing running: installing is the whole update.
            self.audit(
                "plugin.update",
                meta.label(),
                Outcome::Success,
                Some("not active; installed only".into()),
            );
            return Ok(meta.version);
        };
        let old_label = old.metadata.label();
        let attempt = async {
            // The rest of the active set must accept the new version, and it them.
            let mut requests = self.active_pins(Some(&id));
            requests.push(Dependency {
                id: id.clone(),
                req: VersionReq::parse(&format!("={}", meta.version)).map_err(|e| {
                    Error::new(ErrorKind::Unexpected, format!("version requirement: {e}"))
                })?,
            });
            let resolution = self.resolve(&requests)?;
            if let Some(missing) = resolution
                .order
                .iter()
                .find(|p| *p != &id && !self.active_map().contains_key(*p))
            {
                return Err(Error::new(
                    ErrorKind::Dependency,
                    format!("{} needs `{missing}`, which is not active", meta.label()),
                ));
            }
            self.start(&id, &meta.version).await
        }
        .await;
        match attempt {
            Ok(new) => {
                self.active_write().insert(id.clone(), new);
                self.audit(
                    "plugin.update",
                    meta.label(),
                    Outcome::Success,
                    Some(format!("replaced {old_label}")),
                );
                self.stop(&old).await;
                Ok(meta.version)
            }
            Err(e) => {
                if installed_here {
                    self.registry_write().unregister(&id, &meta.version);
                }
                self.audit(
                    "plugin.update",
                    meta.label(),
                    Outcome::Failure,
                    Some(e.to_string()),
                );
                self.audit(
                    "plugin.rollback",
                    old_label.clone(),
                    Outcome::Success,
                    Some(format!("{} rejected", meta.label())),
                );
                Err(Error::new(
                    e.kind(),
                    format!(
                        "update of {id} to {} failed and was rolled back; {old_label} is still serving: {}",
                        meta.version,
                        e.message()
                    ),
                )
                .with_context("plugin", &id))
            }
        }
    }

    // --- calls -----------------------------------------------------------------------------

    /// Calls an action of an active plugin.
    ///
    /// The manager fills in the plugin's permissions, shortens the deadline to the plugin's
    /// `call_timeout`, and applies its concurrency limit. Errors carry the plugin and action as
    /// context.
    pub async fn call(&self, id: &str, mut call: Call) -> Result<Payload> {
        let active = self.active_plugin(id)?;
        let action = call.action.clone();
        if active.metadata.action(&action).is_none() {
            let known: Vec<&str> = active
                .metadata
                .actions
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            return Err(unknown_action(&action, &known).with_context("plugin", id));
        }
        let started = Instant::now();
        if let Some(limit) = active.limits.call_timeout {
            let limit_deadline = started + limit;
            call.deadline = Some(match call.deadline {
                Some(d) if d < limit_deadline => d,
                _ => limit_deadline,
            });
        }
        call.permissions = active.permissions.clone();
        let span = tracing::info_span!("plugin_call", plugin = %id, action = %action, version = %active.metadata.version);
        let result = self.run_call(&active, call).instrument(span).await;
        let elapsed = started.elapsed();
        let result = result.map_err(|e| {
            active
                .redactor
                .redact_error(e)
                .with_context("plugin", id)
                .with_context("action", &action)
        });
        if let Ok(mut stats) = active.stats.lock() {
            stats.record(elapsed, result.as_ref().err());
        }
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("kernelize_plugin_calls_total", "plugin" => id.to_string(), "action" => action.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!("kernelize_plugin_call_seconds", "plugin" => id.to_string(), "action" => action).record(elapsed.as_secs_f64());
        result
    }

    /// Opens an event source of an active plugin ([`Plugin::open_source`]), its `options`
    /// first checked against the schema the plugin declared for them.
    ///
    /// [`Plugin::open_source`]: crate::Plugin::open_source
    pub async fn open_source(&self, id: &str, options: Value) -> Result<Box<dyn EventSource>> {
        let active = self.active_plugin(id)?;
        let schema = event_role_schema(&active.metadata, "source", |e| e.source.as_ref())?;
        check_options(&schema, &options).map_err(|e| e.with_context("plugin", id))?;
        active
            .plugin
            .open_source(options)
            .await
            .map_err(|e| active.redactor.redact_error(e).with_context("plugin", id))
    }

    /// Opens an event sink of an active plugin ([`Plugin::open_sink`]), its `options` first
    /// checked against the schema the plugin declared for them.
    ///
    /// [`Plugin::open_sink`]: crate::Plugin::open_sink
    pub async fn open_sink(&self, id: &str, options: Value) -> Result<Arc<dyn EventSink>> {
        let active = self.active_plugin(id)?;
        let schema = event_role_schema(&active.metadata, "sink", |e| e.sink.as_ref())?;
        check_options(&schema, &options).map_err(|e| e.with_context("plugin", id))?;
        active
            .plugin
            .open_sink(options)
            .await
            .map_err(|e| active.redactor.redact_error(e).with_context("plugin", id))
    }

    /// Calls typed action `A` of an active plugin: the same path as [`PluginManager::call`],
    /// with the input and output converted to and from payloads.
    pub async fn call_typed<A: Action>(
        &self,
        id: &str,
        config: A::Config,
        input: A::Input,
        options: CallOptions,
    ) -> Result<A::Output> {
        let config = serde_json::to_value(config).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("config does not serialize: {e}"),
            )
        })?;
        let mut call = Call::new(A::NAME, input.into_payload()?).with_config(config);
        if let Some(t) = options.timeout {
            call = call.with_timeout(t);
        }
        if let Some(c) = options.cancel {
            call = call.with_cancel(c);
        }
        let output = self.call(id, call).await?;
        A::Output::from_payload(output)
            .map_err(|e| e.with_context("plugin", id).with_context("action", A::NAME))
    }

    async fn run_call(&self, active: &ActivePlugin, call: Call) -> Result<Payload> {
        // Gate first, then the flag: a stop that began before we got the gate is seen.
        let _gate = active.gate.read().await;
        if active.closed.load(Ordering::Acquire) {
            return Err(
                Error::new(ErrorKind::InvalidState, "the plugin is shutting down").set_temporary(),
            );
        }
        let cancel = call.cancel.clone();
        let deadline = call.deadline;
        let _permit = self.acquire_slot(active, &call).await?;
        let work = active.plugin.execute(call);
        let timed = async {
            match deadline {
                Some(d) => match tokio::time::timeout_at(d.into(), work).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::new(
                        ErrorKind::Timeout,
                        "the call did not finish before its deadline",
                    )),
                },
                None => work.await,
            }
        };
        tokio::select! {
            r = timed => r,
            () = cancel.cancelled() => Err(Error::new(ErrorKind::Cancelled, "the call was cancelled")),
        }
    }

    async fn acquire_slot(
        &self,
        active: &ActivePlugin,
        call: &Call,
    ) -> Result<Option<OwnedSemaphorePermit>> {
        let Some(slots) = &active.slots else {
            return Ok(None);
        };
        let limit = active.limits.max_concurrent.unwrap_or(0);
        let busy = || {
            Error::new(
                ErrorKind::RateLimited,
                format!("the plugin is at its limit of {limit} concurrent calls"),
            )
            .set_temporary()
        };
        match active.limits.when_busy {
            WhenBusy::Reject => slots
                .clone()
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| busy()),
            WhenBusy::Wait => {
                let mut wait_until = active.limits.max_wait.map(|w| Instant::now() + w);
                if let Some(d) = call.deadline {
                    wait_until = Some(wait_until.map_or(d, |w| w.min(d)));
                }
                let acquire = slots.clone().acquire_owned();
                let permit = match wait_until {
                    Some(until) => tokio::time::timeout_at(until.into(), acquire)
                        .await
                        .map_err(|_| {
                            Error::new(
                                ErrorKind::Timeout,
                                format!("no free slot among the plugin's {limit} concurrent calls in time"),
                            )
                            .set_temporary()
                        })?,
                    None => acquire.await,
                };
                permit.map(Some).map_err(|_| busy())
            }
        }
    }

    // --- health ----------------------------------------------------------------------------

    /// Health of an active plugin: the worse of its own report and its recent error rate
    /// (half or more of the last calls failing, over at least five calls, is degraded),
    /// with uptime, counts and latency quantiles.
    pub async fn health(&self, id: &str) -> Result<PluginHealth> {
        let active = self.active_plugin(id)?;
        let report = check_health(active.plugin.as_ref()).await;
        let stats = active
            .stats
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "health statistics are unavailable"))?;
        let mut status = report.status;
        let mut detail = report.detail;
        let recent = stats.outcomes.len();
        let failed = stats.outcomes.iter().filter(|ok| !**ok).count();
        if recent >= MIN_CALLS_FOR_RATE && failed * 2 >= recent && status < HealthStatus::Degraded {
            status = HealthStatus::Degraded;
            detail = Some(format!("{failed} of the last {recent} calls failed"));
        }
        Ok(PluginHealth {
            id: id.to_string(),
            version: active.metadata.version.clone(),
            status,
            detail,
            uptime: active.started.elapsed(),
            calls: stats.calls,
            errors: stats.errors,
            p50: stats.quantile(0.50),
            p99: stats.quantile(0.99),
            last_error: stats.last_error.clone(),
        })
    }

    /// Health of every active plugin.
    pub async fn health_all(&self) -> Vec<PluginHealth> {
        let mut out = Vec::new();
        for id in self.active_ids() {
            if let Ok(h) = self.health(&id).await {
                out.push(h);
            }
        }
        out
    }

    /// Ids of the active plugins, sorted.
    pub fn active_ids(&self) -> Vec<String> {
        self.active_map().keys().cloned().collect()
    }

    /// The active version of `id`, if it is active.
    pub fn active_version(&self, id: &str) -> Option<Version> {
        self.active_map()
            .get(id)
            .map(|a| a.metadata.version.clone())
    }

    // --- internals -------------------------------------------------------------------------

    async fn start(&self, id: &str, version: &Version) -> Result<Arc<ActivePlugin>> {
        let label = format!("{id} {version}");
        let result = self.start_inner(id, version).await;
        match &result {
            Ok(_) => self.audit("plugin.activate", &label, Outcome::Success, None),
            Err(e) => self.audit(
                "plugin.activate",
                &label,
                Outcome::Failure,
                Some(e.to_string()),
            ),
        }
        result
    }

    async fn start_inner(&self, id: &str, version: &Version) -> Result<Arc<ActivePlugin>> {
        let factory = self
            .registry_read()
            .get(id, version)
            .cloned()
            .ok_or_else(|| self.not_installed(id))?;
        let mut plugin = factory.create();
        let mut metadata = plugin.metadata();
        // A named instance runs under its own id, whatever the plugin calls itself.
        metadata.id = factory.metadata().id.clone();
        let config = self
            .inner
            .configs
            .read()
            .map(|c| c.get(id).cloned().unwrap_or_default())
            .unwrap_or_default();

        for granted in &config.permissions {
            if !metadata
                .permissions
                .iter()
                .any(|declared| declared.covers(granted))
            {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "{} does not declare the permission {granted} that the host grants",
                        metadata.label()
                    ),
                ));
            }
        }
        let env = self.inner.env.clone();
        let resolved =
            ResolvedConfig::resolve(&config.settings, &|n| env(n), self.inner.secrets.as_ref())
                .map_err(|e| e.with_context("plugin", id))?;
        let redactor = resolved.redactor().clone();
        let fail = |stage: &str, e: Error| {
            let e = redactor.redact_error(e);
            Error::new(
                e.kind(),
                format!("{} failed to {stage}: {}", metadata.label(), e.message()),
            )
            .with_context("plugin", id)
        };
        plugin
            .validate(&resolved)
            .map_err(|e| fail("validate", e))?;
        for granted in &config.permissions {
            self.audit(
                "permission.grant",
                format!("{id}: {granted}"),
                Outcome::Success,
                None,
            );
        }
        let permissions = PermissionGuard::new(
            id,
            config.permissions.clone(),
            Some(self.inner.audit.clone()),
        );
        plugin
            .initialize(InitContext {
                config: resolved,
                permissions: permissions.clone(),
                audit: Some(self.inner.audit.clone()),
            })
            .await
            .map_err(|e| fail("initialize", e))?;
        let plugin: Arc<dyn Plugin> = Arc::from(plugin);
        let report = check_health(plugin.as_ref()).await;
        if report.status == HealthStatus::Unhealthy {
            let _ = plugin.shutdown().await;
            return Err(fail(
                "become healthy",
                Error::new(
                    ErrorKind::InvalidState,
                    report
                        .detail
                        .unwrap_or_else(|| "it reported unhealthy".into()),
                ),
            ));
        }
        let slots = config
            .limits
            .max_concurrent
            .map(|n| Arc::new(Semaphore::new(n)));
        Ok(Arc::new(ActivePlugin {
            plugin,
            metadata,
            permissions,
            limits: config.limits,
            redactor,
            slots,
            gate: tokio::sync::RwLock::new(()),
            closed: AtomicBool::new(false),
            stats: Mutex::new(Stats::default()),
            started: Instant::now(),
        }))
    }

    /// Waits for running calls to finish, then shuts the plugin down.
    async fn stop(&self, active: &ActivePlugin) {
        let label = active.metadata.label();
        active.closed.store(true, Ordering::Release);
        // Let running calls finish, but not forever: a call with no timeout that hangs must
        // not keep the plugin from stopping.
        let drain = active.limits.call_timeout.unwrap_or(DRAIN_TIMEOUT);
        if tokio::time::timeout(drain, active.gate.write())
            .await
            .is_err()
        {
            tracing::warn!(
                plugin = %active.metadata.id,
                "calls still running after {}s; shutting down anyway",
                drain.as_secs_f64()
            );
        }
        match active.plugin.shutdown().await {
            Ok(()) => self.audit("plugin.deactivate", label, Outcome::Success, None),
            Err(e) => {
                let e = active.redactor.redact_error(e);
                tracing::warn!(plugin = %active.metadata.id, error = %e, "plugin shutdown failed");
                self.audit(
                    "plugin.deactivate",
                    label,
                    Outcome::Failure,
                    Some(e.to_string()),
                );
            }
        }
    }

    fn active_plugin(&self, id: &str) -> Result<Arc<ActivePlugin>> {
        if let Some(a) = self.active_map().get(id) {
            return Ok(a.clone());
        }
        if self.registry_read().contains(id) {
            Err(Error::new(
                ErrorKind::InvalidState,
                format!("plugin `{id}` is installed but not active"),
            ))
        } else {
            Err(self.not_installed(id))
        }
    }

    fn not_installed(&self, id: &str) -> Error {
        let ids = self.registry_read().ids();
        Error::new(
            ErrorKind::NotFound,
            format!(
                "unknown plugin `{id}`; known plugins: {}",
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            ),
        )
    }

    /// Exact-version requirements pinning every active plugin (but `except`).
    fn active_pins(&self, except: Option<&str>) -> Vec<Dependency> {
        self.active_map()
            .values()
            .filter(|a| Some(a.metadata.id.as_str()) != except)
            .filter_map(|a| {
                VersionReq::parse(&format!("={}", a.metadata.version))
                    .ok()
                    .map(|req| Dependency {
                        id: a.metadata.id.clone(),
                        req,
                    })
            })
            .collect()
    }

    fn active_graph(&self) -> BTreeMap<String, Vec<String>> {
        self.active_map()
            .iter()
            .map(|(id, a)| {
                (
                    id.clone(),
                    a.metadata
                        .dependencies
                        .iter()
                        .map(|d| d.id.clone())
                        .collect(),
                )
            })
            .collect()
    }

    /// Active ids, each after its dependencies.
    fn activation_order(&self) -> Vec<String> {
        let graph = self.active_graph();
        let mut order: Vec<String> = Vec::new();
        let mut remaining: Vec<String> = graph.keys().cloned().collect();
        while !remaining.is_empty() {
            let before = remaining.len();
            remaining.retain(|id| {
                let ready = graph
                    .get(id)
                    .map(|deps| {
                        deps.iter()
                            .all(|d| order.contains(d) || !graph.contains_key(d))
                    })
                    .unwrap_or(true);
                if ready {
                    order.push(id.clone());
                }
                !ready
            });
            if remaining.len() == before {
                // Cannot happen for a resolved set; keep going rather than loop forever.
                order.append(&mut remaining);
            }
        }
        order
    }

    fn registry_read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn registry_write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn active_map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<ActivePlugin>>> {
        self.inner.active.read().unwrap_or_else(|p| p.into_inner())
    }

    fn active_write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<ActivePlugin>>> {
        self.inner.active.write().unwrap_or_else(|p| p.into_inner())
    }
}

async fn check_health(plugin: &dyn Plugin) -> HealthReport {
    match tokio::time::timeout(HEALTH_TIMEOUT, plugin.health()).await {
        Ok(report) => report,
        Err(_) => HealthReport::unhealthy(format!(
            "the health check did not answer within {}s",
            HEALTH_TIMEOUT.as_secs()
        )),
    }
}

fn event_role_schema(
    metadata: &PluginMetadata,
    role: &str,
    pick: impl Fn(&crate::plugin::EventRoles) -> Option<&Value>,
) -> Result<Value> {
    pick(&metadata.events).cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            format!("plugin `{}` is not an event {role}", metadata.id),
        )
        .with_context("plugin", &metadata.id)
    })
}

fn check_options(schema: &Value, options: &Value) -> Result<()> {
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("the plugin's options schema is invalid: {e}"),
        )
    })?;
    let problems = crate::config::schema_violations(&validator, options);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("invalid options: {}", problems.join("; ")),
        ))
    }
}
