//! A configurable plugin for tests of the registry and the manager.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kernelize_core::plugin::{ActionDescriptor, PayloadDescriptor};
use kernelize_core::{
    Call, Category, Dependency, Error, ErrorKind, HealthReport, InitContext, Payload, Permission,
    Plugin, PluginFactory, PluginMetadata, ResolvedConfig, Result, async_trait,
};
use semver::Version;
use serde_json::json;

/// Shared record of lifecycle events, in order: `init a 1.0.0`, `shutdown a 1.0.0`.
pub type Journal = Arc<Mutex<Vec<String>>>;

pub fn journal() -> Journal {
    Arc::new(Mutex::new(Vec::new()))
}

pub fn entries(j: &Journal) -> Vec<String> {
    j.lock().unwrap().clone()
}

#[derive(Clone)]
pub struct Probe {
    pub meta: PluginMetadata,
    pub journal: Journal,
    pub fail_validate: bool,
    pub fail_initialize: bool,
    pub health: Arc<Mutex<HealthReport>>,
    pub seen_settings: Arc<Mutex<Option<ResolvedConfig>>>,
}

fn action(name: &str) -> ActionDescriptor {
    ActionDescriptor {
        name: name.into(),
        description: format!("test action {name}"),
        config: json!({}),
        input: PayloadDescriptor::of_kind("any"),
        output: PayloadDescriptor::of_kind("any"),
        permissions: vec![],
    }
}

impl Probe {
    pub fn new(id: &str, version: &str, deps: &[(&str, &str)], journal: &Journal) -> Self {
        let mut meta = PluginMetadata::new(
            id,
            id,
            Version::parse(version).unwrap(),
            Category::DataProcessor,
        )
        .actions(
            ["echo", "sleep", "fail", "whoami", "read_file"]
                .map(action)
                .to_vec(),
        )
        .needs(Permission::FileRead { path: "/".into() });
        for (dep, req) in deps {
            meta = meta.depends_on(Dependency::new(*dep, req).unwrap());
        }
        Probe {
            meta,
            journal: journal.clone(),
            fail_validate: false,
            fail_initialize: false,
            health: Arc::new(Mutex::new(HealthReport::healthy())),
            seen_settings: Arc::new(Mutex::new(None)),
        }
    }

    pub fn factory(self) -> PluginFactory {
        PluginFactory::new(move || Box::new(self.clone()))
    }

    fn note(&self, what: &str) {
        self.journal
            .lock()
            .unwrap()
            .push(format!("{what} {}", self.meta.label()));
    }
}

#[async_trait]
impl Plugin for Probe {
    fn metadata(&self) -> PluginMetadata {
        self.meta.clone()
    }

    fn validate(&self, config: &ResolvedConfig) -> Result<()> {
        if self.fail_validate {
            return Err(Error::new(ErrorKind::ConfigInvalid, "validation refused"));
        }
        config.validate_against(&self.meta.config_schema)
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        *self.seen_settings.lock().unwrap() = Some(ctx.config.clone());
        if self.fail_initialize {
            return Err(Error::new(ErrorKind::Unexpected, "initialize refused"));
        }
        // Uses the settings the way a connector would, and fails with them in the message
        // if asked to, so redaction can be tested.
        if let Some(token) = ctx.config.settings().get("token").and_then(|t| t.as_str()) {
            tracing::debug!("initializing with settings {:?}", ctx.config);
            if ctx.config.settings().get("echo_secret_in_error") == Some(&json!(true)) {
                return Err(Error::new(
                    ErrorKind::Remote,
                    format!("server rejected token {token}"),
                ));
            }
        }
        self.note("init");
        Ok(())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        match call.action.as_str() {
            "echo" => Ok(call.input),
            "sleep" => {
                let ms = call.config.get("ms").and_then(|m| m.as_u64()).unwrap_or(50);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Payload::Json(json!({"slept_ms": ms})))
            }
            "fail" => Err(Error::new(ErrorKind::Remote, "asked to fail")),
            "whoami" => Ok(Payload::Json(json!(self.meta.version.to_string()))),
            "read_file" => {
                let path = call.config["path"].as_str().unwrap_or("/");
                call.permissions.check_read(std::path::Path::new(path))?;
                Ok(Payload::Json(json!({"read": path})))
            }
            other => Err(Error::new(
                ErrorKind::NotFound,
                format!("no action {other}"),
            )),
        }
    }

    async fn shutdown(&self) -> Result<()> {
        self.note("shutdown");
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        self.health.lock().unwrap().clone()
    }
}
