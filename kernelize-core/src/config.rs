//! Plugin configuration: settings, secrets, granted permissions and limits.
//!
//! A host writes a [`PluginConfig`] per plugin: plain serde data, so it comes equally from
//! Rust, JSON or YAML. Settings may reference `${env:NAME}` and `${secret:NAME}` anywhere in a
//! string (`"Bearer ${secret:slack_token}"`); the manager resolves them when the plugin is
//! initialized, from the process environment and a [`SecretStore`], into a [`ResolvedConfig`].
//! A missing reference is a [`ErrorKind::ConfigInvalid`] error naming the setting and the
//! reference.
//!
//! Secret values never reach Debug output, logs or error text: [`ResolvedConfig`]'s Debug
//! shows `[REDACTED]` in their place, and every error produced while parsing or validating
//! settings passes through a [`Redactor`] that knows the resolved values. Plugins keep secrets
//! in [`secrecy::SecretString`] fields of their typed settings.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::permissions::Permission;

/// What the host configures for one plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Plugin-specific settings, checked against the plugin's config schema. May contain
    /// `${env:NAME}` and `${secret:NAME}` references.
    #[serde(default)]
    pub settings: Value,
    /// Permissions granted to the plugin (a subset of those it declares).
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// Limits the manager enforces on the plugin's calls.
    #[serde(default)]
    pub limits: Limits,
}

impl PluginConfig {
    /// A configuration with these settings, no permissions and no limits.
    pub fn with_settings(settings: Value) -> Self {
        PluginConfig {
            settings,
            ..Default::default()
        }
    }

    /// Grants a permission.
    pub fn grant(mut self, permission: Permission) -> Self {
        self.permissions.push(permission);
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// What happens to a call that arrives while a plugin is at its concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenBusy {
    /// Wait for a slot (bounded by `max_wait`, then by the call's timeout).
    #[default]
    Wait,
    /// Fail at once with a temporary [`ErrorKind::RateLimited`] error.
    Reject,
}

/// Limits the manager enforces on one plugin's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most calls running at once; `None` for no limit.
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// What a call beyond `max_concurrent` does.
    #[serde(default)]
    pub when_busy: WhenBusy,
    /// Longest a waiting call waits for a slot (for example `"2s"`).
    #[serde(default, with = "opt_duration")]
    pub max_wait: Option<Duration>,
    /// Longest one call may run, waiting included (for example `"30s"`).
    #[serde(default, with = "opt_duration")]
    pub call_timeout: Option<Duration>,
}

/// Serde for optional durations written as `"250ms"`, `"30s"`, `"5m"` or a number of seconds.
pub mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Seconds(f64),
    }

    /// Writes a duration as humantime text (`"1s 500ms"`).
    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    /// Reads `"250ms"`, `"30s"`, `"1h 5m"` or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<Written>::deserialize(d)? {
            None => Ok(None),
            Some(Written::Text(text)) => humantime::parse_duration(&text)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("invalid duration `{text}`: {e}"))),
            Some(Written::Seconds(secs)) => Duration::try_from_secs_f64(secs)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("invalid duration {secs}: {e}"))),
        }
    }
}

/// Serde for required durations, written as [`opt_duration`] writes them.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Writes a duration as humantime text (`"1s 500ms"`).
    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        super::opt_duration::serialize(&Some(*value), s)
    }

    /// Reads `"250ms"`, `"30s"`, `"1h 5m"` or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::opt_duration::deserialize(d)?
            .ok_or_else(|| serde::de::Error::custom("a duration is required here, not null"))
    }
}

/// Where `${secret:NAME}` references are looked up.
pub trait SecretStore: Send + Sync + 'static {
    /// The secret called `name`, if there is one.
    fn get(&self, name: &str) -> Option<SecretString>;
}

/// Secrets held in memory, given by the embedding application.
#[derive(Default)]
pub struct MapSecretStore {
    secrets: BTreeMap<String, SecretString>,
}

impl fmt::Debug for MapSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapSecretStore")
            .field("names", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl MapSecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.secrets
            .insert(name.into(), SecretString::from(value.into()));
    }

    /// Adds a secret, builder style.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }
}

impl SecretStore for MapSecretStore {
    fn get(&self, name: &str) -> Option<SecretString> {
        self.secrets.get(name).cloned()
    }
}

/// Secrets read from environment variables named `PREFIX` + `NAME` (upper-cased, `-` and `.`
/// as `_`): with prefix `KERNELIZE_SECRET_`, `${secret:slack-token}` reads
/// `KERNELIZE_SECRET_SLACK_TOKEN`.
#[derive(Debug, Clone)]
pub struct EnvSecretStore {
    prefix: String,
}

impl EnvSecretStore {
    /// A store reading variables that start with `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        EnvSecretStore {
            prefix: prefix.into(),
        }
    }

    /// The variable a secret name maps to.
    pub fn variable(&self, name: &str) -> String {
        let tail: String = name
            .chars()
            .map(|c| match c {
                '-' | '.' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect();
        format!("{}{tail}", self.prefix)
    }
}

impl Default for EnvSecretStore {
    fn default() -> Self {
        EnvSecretStore::new("KERNELIZE_SECRET_")
    }
}

impl SecretStore for EnvSecretStore {
    fn get(&self, name: &str) -> Option<SecretString> {
        std::env::var(self.variable(name))
            .ok()
            .map(SecretString::from)
    }
}

/// Looks secrets up in several stores, first hit wins.
#[derive(Default, Clone)]
pub struct ChainSecretStore {
    stores: Vec<Arc<dyn SecretStore>>,
}

impl fmt::Debug for ChainSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainSecretStore")
            .field("stores", &self.stores.len())
            .finish()
    }
}

impl ChainSecretStore {
    /// Looks in `stores`, in order.
    pub fn new(stores: Vec<Arc<dyn SecretStore>>) -> Self {
        ChainSecretStore { stores }
    }
}

impl SecretStore for ChainSecretStore {
    fn get(&self, name: &str) -> Option<SecretString> {
        self.stores.iter().find_map(|s| s.get(name))
    }
}

/// Replaces known secret values in text with `[REDACTED]`.
#[derive(Clone, Default)]
pub struct Redactor {
    values: Arc<Vec<SecretString>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.values.len())
            .finish()
    }
}

/// What stands in for a secret value in text shown to people.
pub const REDACTED: &str = "[REDACTED]";

impl Redactor {
    /// A redactor for these secret values.
    pub fn new(values: Vec<SecretString>) -> Self {
        let mut values: Vec<SecretString> = values
            .into_iter()
            .filter(|v| !v.expose_secret().is_empty())
            .collect();
        // Longest first, so a secret that contains another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.expose_secret().len()));
        Redactor {
            values: Arc::new(values),
        }
    }

    /// `text` with every secret value replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values.iter() {
            let secret = v.expose_secret();
            if out.contains(secret) {
                out = out.replace(secret, REDACTED);
            }
        }
        out
    }

    /// A JSON value with every secret value inside strings replaced.
    pub fn redact_value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.redact_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// An error with its message and context redacted.
    pub fn redact_error(&self, err: Error) -> Error {
        if self.values.is_empty() {
            return err;
        }
        let mut out = Error::new(err.kind(), self.redact(err.message()));
        for (k, v) in err.context() {
            out = out.with_context(k, self.redact(v));
        }
        if err.is_temporary() {
            out = out.set_temporary();
        } else {
            out = out.set_permanent();
        }
        if let Some(s) = err.status() {
            out = out.with_status(s);
        }
        if let Some(r) = err.retry_after() {
            out = out.with_retry_after(r);
        }
        // The source chain is dropped: it was built from unredacted text.
        out
    }
}

/// Plugin settings with references resolved; secret values are redacted from Debug output
/// and from every error this type produces.
#[derive(Clone)]
pub struct ResolvedConfig {
    settings: Value,
    redactor: Redactor,
}

impl fmt::Debug for ResolvedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedConfig")
            .field("settings", &self.redactor.redact_value(&self.settings))
            .finish()
    }
}

impl Default for ResolvedConfig {
    fn default() -> Self {
        ResolvedConfig {
            settings: Value::Object(Default::default()),
            redactor: Redactor::default(),
        }
    }
}

impl ResolvedConfig {
    /// Resolves `${env:NAME}` and `${secret:NAME}` references in `settings`.
    ///
    /// `env` looks up environment variables (normally `std::env::var`); `secrets` looks up
    /// secrets. A missing one is an error naming the setting's path and the reference.
    pub fn resolve(
        settings: &Value,
        env: &dyn Fn(&str) -> Option<String>,
        secrets: &dyn SecretStore,
    ) -> Result<Self> {
        let mut found = Vec::new();
        let settings = match settings {
            Value::Null => Value::Object(Default::default()),
            other => resolve_value(other, "", env, secrets, &mut found)?,
        };
        Ok(ResolvedConfig {
            settings,
            redactor: Redactor::new(found),
        })
    }

    /// Settings that contain no secrets and need no resolution.
    pub fn plain(settings: Value) -> Self {
        ResolvedConfig {
            settings,
            redactor: Redactor::default(),
        }
    }

    /// The resolved settings. They may hold secret values: do not log them; parse them into
    /// a typed config with [`ResolvedConfig::parse`].
    pub fn settings(&self) -> &Value {
        &self.settings
    }

    /// The redactor that knows this configuration's secret values.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Parses the settings into a plugin's typed config. Errors are redacted.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&self.settings).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                self.redactor.redact(&format!("invalid settings: {e}")),
            )
        })
    }

    /// Checks the settings against a JSON Schema, reporting every violation with its path.
    pub fn validate_against(&self, schema: &Value) -> Result<()> {
        let validator = jsonschema::validator_for(schema).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("the plugin's config schema is invalid: {e}"),
            )
        })?;
        let problems: Vec<String> = schema_violations(&validator, &self.settings)
            .into_iter()
            .map(|p| self.redactor.redact(&p))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("invalid settings: {}", problems.join("; ")),
            ))
        }
    }
}

/// Every way `instance` violates the schema, as `at /path: reason` lines.
pub(crate) fn schema_violations(
    validator: &jsonschema::Validator,
    instance: &Value,
) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| {
            let path = e.instance_path().to_string();
            let at = if path.is_empty() { "/" } else { path.as_str() };
            format!("at {at}: {e}")
        })
        .collect()
}

fn resolve_value(
    value: &Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &dyn SecretStore,
    found: &mut Vec<SecretString>,
) -> Result<Value> {
    Ok(match value {
        Value::String(s) => Value::String(resolve_string(s, path, env, secrets, found)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| resolve_value(v, &format!("{path}/{i}"), env, secrets, found))
                .collect::<Result<_>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    resolve_value(v, &format!("{path}/{k}"), env, secrets, found)
                        .map(|v| (k.clone(), v))
                })
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

fn resolve_string(
    text: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &dyn SecretStore,
    found: &mut Vec<SecretString>,
) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let reference = &after[..end];
        let setting = if path.is_empty() { "/" } else { path };
        match reference.split_once(':') {
            Some(("env", name)) => match env(name) {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        format!(
                            "setting {setting} references environment variable `{name}`, which is not set"
                        ),
                    ));
                }
            },
            Some(("secret", name)) => match secrets.get(name) {
                Some(v) => {
                    out.push_str(v.expose_secret());
                    found.push(v);
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        format!("setting {setting} references secret `{name}`, which is not set"),
                    ));
                }
            },
            // Not ours (`${steps.x}` belongs to workflows): keep it as written.
            _ => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        (name == "REGION").then(|| "eu-west-1".to_string())
    }

    #[test]
    fn resolves_env_and_secret_references_inside_strings() {
        let secrets = MapSecretStore::new().with("token", "s3cr3t-value");
        let cfg = ResolvedConfig::resolve(
            &json!({"auth": "Bearer ${secret:token}", "region": "${env:REGION}", "n": 3}),
            &env,
            &secrets,
        )
        .unwrap();
        assert_eq!(cfg.settings()["auth"], "Bearer s3cr3t-value");
        assert_eq!(cfg.settings()["region"], "eu-west-1");
        assert_eq!(cfg.settings()["n"], 3);
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        assert!(debug.contains("Bearer [REDACTED]"), "{debug}");
    }

    #[test]
    fn missing_reference_names_setting_and_reference() {
        let err = ResolvedConfig::resolve(
            &json!({"auth": {"token": "${secret:missing}"}}),
            &env,
            &MapSecretStore::new(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
        assert!(err.to_string().contains("/auth/token"), "{err}");
        assert!(err.to_string().contains("secret `missing`"), "{err}");
    }

    #[test]
    fn unrelated_placeholders_are_kept() {
        let cfg = ResolvedConfig::resolve(
            &json!({"q": "${steps.extract.output} and ${params.x}"}),
            &env,
            &MapSecretStore::new(),
        )
        .unwrap();
        assert_eq!(
            cfg.settings()["q"],
            "${steps.extract.output} and ${params.x}"
        );
    }

    #[test]
    fn parse_and_validate_errors_never_show_secret_values() {
        let secrets = MapSecretStore::new().with("port", "hunter2-port");
        let cfg =
            ResolvedConfig::resolve(&json!({"port": "${secret:port}"}), &env, &secrets).unwrap();

        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Typed {
            port: u16,
        }
        let err = cfg.parse::<Typed>().unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");

        let schema = json!({"type": "object", "properties": {"port": {"type": "integer"}}});
        let err = cfg.validate_against(&schema).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("/port"), "{err}");
    }

    #[test]
    fn limits_read_human_durations() {
        let limits: Limits = serde_json::from_value(
            json!({"max_concurrent": 10, "call_timeout": "1s 500ms", "max_wait": 2}),
        )
        .unwrap();
        assert_eq!(limits.max_concurrent, Some(10));
        assert_eq!(limits.call_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(limits.max_wait, Some(Duration::from_secs(2)));
        assert!(serde_json::from_value::<Limits>(json!({"call_timeout": "soon"})).is_err());
    }

    #[test]
    fn env_secret_store_maps_names_to_variables() {
        assert_eq!(
            EnvSecretStore::default().variable("slack-token"),
            "KERNELIZE_SECRET_SLACK_TOKEN"
        );
    }
}
