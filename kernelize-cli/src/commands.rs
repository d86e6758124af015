//! The subcommands.

use std::path::PathBuf;

use clap::Args;
use kernelize::{
    Call, Dependency, Error, ErrorKind, Permission, PluginConfig, PluginFactory, PluginManager,
    PluginMetadata, Registry, Result, async_trait, plugin::InitContext,
};
use serde_json::{Value, json};

use crate::input::{read_input, read_json_arg};
use std::fmt::Write as _;

use crate::output::{emit, print_payload, print_table, write_payload};

/// Arguments of `kernelize exec`.
#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// The plugin's id.
    plugin: String,
    /// The action to run.
    action: String,
    /// The action's config, as inline JSON or a JSON file (a workflow step's `config`).
    #[arg(long, value_name = "FILE|JSON")]
    config: Option<String>,
    /// Plugin-level settings, permissions and limits, as inline JSON or a JSON file:
    /// `{"settings": {..}, "permissions": [..], "limits": {..}}`. Without it, plugins that
    /// declare file permissions are granted the current directory.
    #[arg(long, value_name = "FILE|JSON")]
    plugin_config: Option<String>,
    /// The input: a file (.csv, .json, .ndjson, .parquet), inline JSON, or `-` for stdin.
    #[arg(long, value_name = "FILE|JSON|-")]
    input: Option<String>,
    /// The input's format, when its file name does not tell (or for stdin).
    #[arg(long, value_name = "FORMAT")]
    input_format: Option<String>,
    /// Write the output to a file (format by extension) instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print machine-readable JSON (records as an array of row objects).
    #[arg(long)]
    json: bool,
    /// Give up after this long (for example `30s`).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
}

/// Arguments of `kernelize plugins resolve`.
#[derive(Debug, Args)]
pub(crate) struct ResolveArgs {
    /// Plugins to resolve, as `ID` or `ID@REQ` (for example `file@^0.1`).
    #[arg(required = true)]
    requests: Vec<String>,
    /// A JSON file listing more plugin metadata to resolve against (id, version,
    /// dependencies, ...), for checking a plugin set before installing it.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn manager() -> Result<PluginManager> {
    kernelize::manager()
}

pub(crate) fn plugins_list(json: bool) -> Result<()> {
    let installed = manager()?.installed();
    if json {
        let items: Vec<Value> = installed
            .iter()
            .map(|p| {
                let m = &p.metadata;
                json!({
                    "id": m.id,
                    "name": m.name,
                    "version": m.version.to_string(),
                    "versions": p.versions.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
                    "category": m.category,
                    "description": m.description,
                    "actions": m.actions.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
                })
            })
            .collect();
        return emit(format!("{}\n", serde_json::to_string_pretty(&items)?).as_bytes());
    }
    let rows: Vec<Vec<String>> = installed
        .iter()
        .map(|p| {
            let m = &p.metadata;
            vec![
                m.id.clone(),
                m.version.to_string(),
                m.category.to_string(),
                m.actions
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    print_table(&["ID", "VERSION", "CATEGORY", "ACTIONS"], &rows)
}

pub(crate) fn plugins_info(id: &str, json: bool) -> Result<()> {
    let m = manager()?.metadata(id)?;
    if json {
        return emit(format!("{}\n", serde_json::to_string_pretty(&m)?).as_bytes());
    }
    let mut out = String::new();
    let _ = writeln!(out, "{} ({}) {}", m.id, m.name, m.version);
    let _ = writeln!(out, "category: {}", m.category);
    if !m.description.is_empty() {
        let _ = writeln!(out, "description: {}", m.description);
    }
    if !m.author.is_empty() {
        let _ = writeln!(out, "author: {}", m.author);
    }
    if !m.dependencies.is_empty() {
        let deps: Vec<String> = m.dependencies.iter().map(|d| d.to_string()).collect();
        let _ = writeln!(out, "dependencies: {}", deps.join(", "));
    }
    if !m.permissions.is_empty() {
        let perms: Vec<String> = m.permissions.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(out, "permissions: {}", perms.join(", "));
    }
    let _ = writeln!(
        out,
        "settings schema: {}",
        serde_json::to_string(&m.config_schema)?
    );
    let _ = writeln!(out, "actions:");
    for a in &m.actions {
        let _ = writeln!(out, "  {} — {}", a.name, a.description);
        let _ = writeln!(
            out,
            "    input: {}, output: {}",
            a.input.kind, a.output.kind
        );
        let _ = writeln!(out, "    config: {}", serde_json::to_string(&a.config)?);
    }
    emit(out.as_bytes())
}

pub(crate) async fn exec(args: ExecArgs) -> Result<()> {
    let manager = manager()?;
    let metadata = manager.metadata(&args.plugin)?;
    if metadata.action(&args.action).is_none() {
        let known: Vec<&str> = metadata.actions.iter().map(|a| a.name.as_str()).collect();
        return Err(kernelize::plugin::unknown_action(&args.action, &known)
            .with_context("plugin", &args.plugin));
    }
    let config = match &args.config {
        Some(c) => read_json_arg("--config", c)?,
        None => Value::Null,
    };
    let plugin_config = match &args.plugin_config {
        Some(c) => serde_json::from_value::<PluginConfig>(read_json_arg("--plugin-config", c)?)
            .map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("invalid --plugin-config: {e}"),
                )
            })?,
        None => default_plugin_config(&metadata)?,
    };
    let input = match &args.input {
        Some(i) => read_input(i, args.input_format.as_deref())?,
        None => kernelize::Payload::Empty,
    };
    let mut call = Call::new(&args.action, input).with_config(config);
    if let Some(t) = &args.timeout {
        let timeout = humantime_duration(t)?;
        call = call.with_timeout(timeout);
    }
    manager.configure(&args.plugin, plugin_config);
    manager.activate(&args.plugin).await?;
    let result = manager.call(&args.plugin, call).await;
    manager.deactivate_all().await;
    let output = result?;
    match &args.output {
        Some(path) => write_payload(output, path),
        None => print_payload(output, args.json),
    }
}

fn humantime_duration(text: &str) -> Result<std::time::Duration> {
    let value = json!({ "call_timeout": text });
    serde_json::from_value::<kernelize::Limits>(value)
        .ok()
        .and_then(|l| l.call_timeout)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("--timeout `{text}` is not a duration (try `30s` or `500ms`)"),
            )
        })
}

/// The host running the CLI grants file access to the current directory and, to plugins
/// that declare it, the network (the user named the URL); nothing else.
fn default_plugin_config(metadata: &PluginMetadata) -> Result<PluginConfig> {
    let cwd = std::env::current_dir()?;
    let mut config = PluginConfig::default();
    for wanted in [
        Permission::FileRead { path: cwd.clone() },
        Permission::FileWrite { path: cwd.clone() },
        Permission::Network { host: "*".into() },
    ] {
        if metadata.permissions.iter().any(|d| d.covers(&wanted)) {
            config.permissions.push(wanted);
        }
    }
    Ok(config)
}

pub(crate) fn plugins_resolve(args: ResolveArgs) -> Result<()> {
    let mut registry = Registry::new();
    for factory in kernelize::builtin_factories() {
        registry.register(factory)?;
    }
    if let Some(path) = &args.manifest {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::from(e).with_context("manifest", path.display()))?;
        let declared: Vec<PluginMetadata> = serde_json::from_str(&text).map_err(|e| {
            Error::new(ErrorKind::InvalidInput, format!("invalid manifest: {e}"))
                .with_context("manifest", path.display())
        })?;
        for meta in declared {
            registry.register(PluginFactory::new(move || Box::new(Declared(meta.clone()))))?;
        }
    }
    let requests = args
        .requests
        .iter()
        .map(|r| match r.split_once('@') {
            Some((id, req)) => Dependency::new(id, req),
            None => Dependency::new(r.as_str(), "*"),
        })
        .collect::<Result<Vec<_>>>()?;
    let resolution = registry.resolve(&requests)?;
    if args.json {
        let versions: serde_json::Map<String, Value> = resolution
            .versions
            .iter()
            .map(|(id, v)| (id.clone(), Value::String(v.to_string())))
            .collect();
        let text = serde_json::to_string_pretty(
            &json!({"versions": versions, "order": resolution.order}),
        )?;
        emit(format!("{text}\n").as_bytes())?;
    } else {
        let rows: Vec<Vec<String>> = resolution
            .order
            .iter()
            .map(|id| {
                vec![
                    id.clone(),
                    resolution
                        .versions
                        .get(id)
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    resolution
                        .dependencies
                        .get(id)
                        .map(|d| d.join(", "))
                        .unwrap_or_default(),
                ]
            })
            .collect();
        print_table(&["ID", "VERSION", "DEPENDS ON"], &rows)?;
    }
    Ok(())
}

/// A plugin known only by the metadata a manifest declares: it can be resolved, and refuses
/// to run.
struct Declared(PluginMetadata);

#[async_trait]
impl kernelize::Plugin for Declared {
    fn metadata(&self) -> PluginMetadata {
        self.0.clone()
    }

    async fn initialize(&mut self, _ctx: InitContext) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} is only declared in a manifest; it has no implementation",
                self.0.label()
            ),
        ))
    }

    async fn execute(&self, _call: Call) -> Result<kernelize::Payload> {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} is only declared in a manifest; it has no implementation",
                self.0.label()
            ),
        ))
    }
}
