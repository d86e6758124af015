//! Plugin instances (`plugins:`) and the plugin and action each step calls.

use kernelize_core::PluginMetadata;
use kernelize_core::semver::VersionReq;
use serde_json::Value;

use super::references::strings_with_references;
use super::{Checker, list};
use crate::definition::diagnostics::escape_token;
use crate::definition::reference::Reference;

impl Checker<'_> {
    /// Checks every entry of `plugins:`: the plugin it names, its version requirement, its
    /// settings and the references in them.
    pub(super) fn plugin_instances(&mut self) {
        let file = &self.loaded.file;
        for (key, instance) in &file.plugins {
            let base = format!("/plugins/{}", escape_token(key));
            let id = instance.plugin.as_deref().unwrap_or(key);
            self.settings_references(&base, &instance.settings);
            let Some(metadata) = self.plugin(id) else {
                let message = format!(
                    "instance `{key}` is for plugin `{id}`, which is not installed; installed \
                     plugins: {}",
                    list(self.catalog.plugin_ids().iter().map(String::as_str))
                );
                if instance.plugin.is_some() {
                    self.error(&format!("{base}/plugin"), message);
                } else {
                    self.key_error(&base, message);
                }
                continue;
            };
            if let Some(written) = &instance.version {
                let at = format!("{base}/version");
                match VersionReq::parse(written) {
                    Err(e) => self.error(
                        &at,
                        format!("`{written}` is not a semver version requirement: {e}"),
                    ),
                    Ok(req) => {
                        let versions = self.catalog.versions(id);
                        if !versions.is_empty() && !versions.iter().any(|v| req.matches(v)) {
                            let installed: Vec<String> =
                                versions.iter().map(ToString::to_string).collect();
                            self.error(
                                &at,
                                format!(
                                    "no installed version of `{id}` satisfies `{written}`; \
                                     installed: {}",
                                    installed.join(", ")
                                ),
                            );
                        }
                    }
                }
            }
            self.check_optional_schema(
                &format!("{base}/settings"),
                &format!("{id}\u{0}settings"),
                &metadata.config_schema,
                &instance.settings,
                true,
                &format!("settings of `{id}`"),
            );
        }
    }

    /// Settings are resolved when a plugin starts, outside any run: only `${env:..}` and
    /// `${secret:..}` mean something there.
    fn settings_references(&mut self, base: &str, settings: &Value) {
        let pointer = format!("{base}/settings");
        for found in strings_with_references(settings, &pointer) {
            match found.references {
                Err(message) => self.error(&found.pointer, message),
                Ok(references) => {
                    for reference in references {
                        if matches!(
                            reference,
                            Reference::Param(_)
                                | Reference::StepOutput { .. }
                                | Reference::StepStatus(_)
                        ) {
                            self.error(
                                &found.pointer,
                                format!(
                                    "{reference} cannot be used in plugin settings, which are \
                                     read before any run; use it in a step's `config`, or use \
                                     ${{env:NAME}} or ${{secret:NAME}}"
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    /// The plugin a step (or a compensation) names: an instance of `plugins:` or an
    /// installed plugin id. Reports an unknown name at `{pointer}/plugin`; `None` then, and
    /// also when the instance names an unknown plugin (reported with the instance).
    pub(super) fn resolve_plugin(&mut self, pointer: &str, name: &str) -> Option<PluginMetadata> {
        let file = &self.loaded.file;
        if let Some(instance) = file.plugins.get(name) {
            let id = instance.plugin.as_deref().unwrap_or(name);
            return self.plugin(id);
        }
        if let Some(metadata) = self.plugin(name) {
            return Some(metadata);
        }
        let instances: Vec<&str> = file.plugins.keys().map(String::as_str).collect();
        let installed = self.catalog.plugin_ids();
        let mut message = format!(
            "unknown plugin `{name}`; installed plugins: {}",
            list(installed.iter().map(String::as_str))
        );
        if !instances.is_empty() {
            message.push_str(&format!(
                "; instances in `plugins:`: {}",
                instances.join(", ")
            ));
        }
        self.error(&format!("{pointer}/plugin"), message);
        None
    }

    /// Checks a call a step or compensation makes: its plugin, its action, and its config
    /// against the action's schema.
    pub(super) fn step_call(
        &mut self,
        pointer: &str,
        plugin: &str,
        action: &str,
        config: &Value,
        config_pointer: &str,
    ) {
        let Some(metadata) = self.resolve_plugin(pointer, plugin) else {
            return;
        };
        let Some(descriptor) = metadata.action(action) else {
            self.error(
                &format!("{pointer}/action"),
                format!(
                    "plugin `{}` has no action `{action}`; its actions: {}",
                    metadata.id,
                    list(metadata.actions.iter().map(|a| a.name.as_str()))
                ),
            );
            return;
        };
        self.check_optional_schema(
            config_pointer,
            &format!("{}\u{0}action\u{0}{action}", metadata.id),
            &descriptor.config,
            config,
            false,
            &format!("config of `{}` action `{action}`", metadata.id),
        );
    }
}
