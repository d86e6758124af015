//! What validation knows about plugins: their metadata, looked up by id.

use std::collections::BTreeMap;

use kernelize_core::semver::Version;
use kernelize_core::{PluginManager, PluginMetadata};

/// The plugins a workflow file is checked against.
///
/// Implemented for [`PluginManager`] (its installed plugins), and for a list or a map of
/// [`PluginMetadata`] (for tests, and for tools that know plugins without running them).
pub trait Catalog {
    /// The metadata of plugin `id` (its active version, or else its highest installed one).
    fn plugin(&self, id: &str) -> Option<PluginMetadata>;

    /// Every plugin id it knows, for "known plugins: ..." hints; none when it cannot list.
    fn plugin_ids(&self) -> Vec<String> {
        Vec::new()
    }

    /// Every version of `id` it has, for checking an instance's `version` requirement;
    /// the version of [`Catalog::plugin`] unless the catalog knows more.
    fn versions(&self, id: &str) -> Vec<Version> {
        self.plugin(id).map(|m| vec![m.version]).unwrap_or_default()
    }
}

impl Catalog for PluginManager {
    fn plugin(&self, id: &str) -> Option<PluginMetadata> {
        self.metadata(id).ok()
    }

    fn plugin_ids(&self) -> Vec<String> {
        self.installed()
            .into_iter()
            .map(|p| p.metadata.id)
            .collect()
    }

    fn versions(&self, id: &str) -> Vec<Version> {
        self.installed()
            .into_iter()
            .find(|p| p.metadata.id == id)
            .map(|p| p.versions)
            .unwrap_or_default()
    }
}

impl Catalog for [PluginMetadata] {
    fn plugin(&self, id: &str) -> Option<PluginMetadata> {
        self.iter()
            .filter(|m| m.id == id)
            .max_by(|a, b| a.version.cmp(&b.version))
            .cloned()
    }

    fn plugin_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.iter().map(|m| m.id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn versions(&self, id: &str) -> Vec<Version> {
        let mut versions: Vec<Version> = self
            .iter()
            .filter(|m| m.id == id)
            .map(|m| m.version.clone())
            .collect();
        versions.sort();
        versions
    }
}

impl Catalog for Vec<PluginMetadata> {
    fn plugin(&self, id: &str) -> Option<PluginMetadata> {
        self.as_slice().plugin(id)
    }

    fn plugin_ids(&self) -> Vec<String> {
        self.as_slice().plugin_ids()
    }

    fn versions(&self, id: &str) -> Vec<Version> {
        self.as_slice().versions(id)
    }
}

/// Keyed by plugin id.
impl Catalog for BTreeMap<String, PluginMetadata> {
    fn plugin(&self, id: &str) -> Option<PluginMetadata> {
        self.get(id).cloned()
    }

    fn plugin_ids(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

impl<C: Catalog + ?Sized> Catalog for &C {
    fn plugin(&self, id: &str) -> Option<PluginMetadata> {
        (**self).plugin(id)
    }

    fn plugin_ids(&self) -> Vec<String> {
        (**self).plugin_ids()
    }

    fn versions(&self, id: &str) -> Vec<Version> {
        (**self).versions(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelize_core::Category;

    fn meta(id: &str, version: &str) -> PluginMetadata {
        let version = Version::parse(version).unwrap_or_else(|e| panic!("{e}"));
        PluginMetadata::new(id, id, version, Category::Connector)
    }

    #[test]
    fn lists_find_the_highest_version_and_list_ids_once() {
        let list = vec![meta("b", "1.0.0"), meta("a", "0.1.0"), meta("b", "1.2.0")];
        assert_eq!(
            list.plugin("b").map(|m| m.version.to_string()).as_deref(),
            Some("1.2.0")
        );
        assert_eq!(list.plugin_ids(), vec!["a", "b"]);
        assert_eq!(list.versions("b").len(), 2);
        assert!(list.plugin("c").is_none());
    }

    #[test]
    fn an_empty_manager_knows_nothing() {
        let manager = PluginManager::new();
        assert!(manager.plugin("x").is_none());
        assert!(manager.plugin_ids().is_empty());
    }
}
