//! The `drupal-connector`'s typed actions: their names, per-call configs and outputs.

use std::collections::BTreeMap;

use kernelize_core::{Action, Error, ErrorKind, Payload, Permission, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::document::Mapping;

/// The most resources one write call writes (one request each).
pub const MAX_WRITES: usize = 1000;

fn network() -> Vec<Permission> {
    vec![Permission::Network { host: "*".into() }]
}

/// Config of `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    /// The entity type (`node`, `taxonomy_term`, `user`, `media`).
    pub entity_type: String,
    /// The bundle (`article`, `tags`).
    pub bundle: String,
    /// Resources per page, 1 to 50; the plugin's `page_limit` when absent.
    #[serde(default)]
    #[schemars(range(min = 1, max = 50))]
    pub page_limit: Option<u32>,
    /// Most pages read; the plugin's `max_pages` when absent.
    #[serde(default)]
    pub max_pages: Option<usize>,
    /// Query parameters passed through: `filter[status]: 1`, `sort: -created`,
    /// `include: field_tags`, `fields[node--article]: title,created`.
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
}

/// Config of `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConfig {
    /// The entity type (`node`).
    pub entity_type: String,
    /// The bundle (`article`).
    pub bundle: String,
    /// The resource's attributes; when absent (and with no `relationships`), the input
    /// gives the resources: objects, or records through `mapping`.
    #[serde(default)]
    pub attributes: Option<Map<String, Value>>,
    /// The resource's relationships (`{field_tags: {data: [{type, id}]}}`).
    #[serde(default)]
    pub relationships: Option<Map<String, Value>>,
    /// Record column → attribute path or relationship (see the docs).
    #[serde(default)]
    pub mapping: Option<Mapping>,
}

/// Config of `update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// The entity type (`node`).
    pub entity_type: String,
    /// The bundle (`article`).
    pub bundle: String,
    /// The resource's uuid; else each input row's (its `id`, or the column mapped to `id`).
    #[serde(default)]
    pub id: Option<String>,
    /// The attributes to set; when absent (and with no `relationships`), the input gives
    /// the resources.
    #[serde(default)]
    pub attributes: Option<Map<String, Value>>,
    /// The relationships to set.
    #[serde(default)]
    pub relationships: Option<Map<String, Value>>,
    /// Record column → attribute path or relationship.
    #[serde(default)]
    pub mapping: Option<Mapping>,
}

/// Config of `save`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveConfig {
    /// The entity type (`node`).
    pub entity_type: String,
    /// The bundle (`article`).
    pub bundle: String,
    /// Record column → attribute path or relationship; a column mapped to `id` (the
    /// uuid) makes its rows updates, the others are created.
    pub mapping: Mapping,
}

/// Config of `delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteConfig {
    /// The entity type (`node`).
    pub entity_type: String,
    /// The bundle (`article`).
    pub bundle: String,
    /// The uuid; else the input's uuids (text, a list, or objects with `id`).
    #[serde(default)]
    pub id: Option<String>,
}

/// Config of `sync_taxonomy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncTaxonomyConfig {
    /// The vocabulary's machine name (`tags`).
    pub vocabulary: String,
    /// The term names; else the input's (a list of text, or records/objects with
    /// `column`).
    #[serde(default)]
    pub names: Option<Vec<String>>,
    /// The input column holding the names (`name`).
    #[serde(default = "default_column")]
    pub column: String,
    /// The uuid of the parent term new terms are created under.
    #[serde(default)]
    pub parent: Option<String>,
}

fn default_column() -> String {
    "name".into()
}

/// What a write action wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Written {
    /// Drupal's resource for each item, in input order (for `delete`: `{id, deleted}`).
    pub items: Vec<Value>,
}

/// What `sync_taxonomy` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaxonomySynced {
    /// Every name → its term's uuid.
    pub terms: BTreeMap<String, String>,
    /// The names that were created.
    pub created: Vec<String>,
}

macro_rules! action {
    ($ty:ident, $name:literal, $desc:literal, $config:ty, $output:ty) => {
        #[doc = concat!("Action `", $name, "`.")]
        #[derive(Debug)]
        pub struct $ty;

        impl Action for $ty {
            const NAME: &'static str = $name;
            const DESCRIPTION: &'static str = $desc;
            type Config = $config;
            type Input = Payload;
            type Output = $output;

            fn permissions() -> Vec<Permission> {
                network()
            }
        }
    };
}

action!(
    List,
    "list",
    "List resources of a bundle, following links.next, as records flattened from attributes and relationship ids.",
    ListConfig,
    Records
);
action!(
    Create,
    "create",
    "Create resources (one request each), from config or input objects or mapped records.",
    CreateConfig,
    Written
);
action!(
    Update,
    "update",
    "Update resources by uuid (PATCH, one request each).",
    UpdateConfig,
    Written
);
action!(
    Save,
    "save",
    "Create or update mapped records one by one: rows with a uuid are updated, the others created.",
    SaveConfig,
    Written
);
action!(
    Delete,
    "delete",
    "Delete resources by uuid.",
    DeleteConfig,
    Written
);
action!(
    SyncTaxonomy,
    "sync_taxonomy",
    "Make sure terms exist in a vocabulary (create the missing ones) and return name to uuid.",
    SyncTaxonomyConfig,
    TaxonomySynced
);

/// Query parameter values as text (lists joined by commas).
pub(crate) fn param_pairs(params: &BTreeMap<String, Value>) -> Result<Vec<(String, String)>> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    params
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::Object(_) => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("parameter `{k}` must be text, a number, a boolean or a list (write nested filters as `filter[a][condition][path]`)"),
            )),
            Value::Array(items) => Ok((k.clone(), items.iter().map(text).collect::<Vec<_>>().join(","))),
            other => Ok((k.clone(), text(other))),
        })
        .collect()
}

/// The rows of a write action's input (objects, a list of them, or records).
pub(crate) fn rows_of(input: Payload) -> Result<Vec<Map<String, Value>>> {
    let items = match input.into_json()? {
        Value::Object(map) => vec![Value::Object(map)],
        Value::Array(items) => items,
        Value::Null => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "nothing to write: give `attributes` in the config or pass rows as the input",
            ));
        }
        other => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the input must be an object, a list of them or records, not {}",
                    kernelize_core::payload::json_type_name(&other)
                ),
            ));
        }
    };
    if items.len() > MAX_WRITES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} rows given; one call writes at most {MAX_WRITES}",
                items.len()
            ),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(map) => Ok(map),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "input row {i} is {}, not an object",
                    kernelize_core::payload::json_type_name(&other)
                ),
            )),
        })
        .collect()
}

/// The uuids of a `delete`'s input.
pub(crate) fn uuids_of(input: Payload) -> Result<Vec<String>> {
    let items = match input.into_json()? {
        Value::Array(items) => items,
        Value::Null => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "no uuid given: set `id` or pass uuids (or objects with `id`) as the input",
            ));
        }
        one => vec![one],
    };
    if items.len() > MAX_WRITES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} uuids given; one call deletes at most {MAX_WRITES}",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .or_else(|| v.get("id").and_then(Value::as_str))
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("input item {i} has no uuid"),
                    )
                })
        })
        .collect()
}

/// The term names of a `sync_taxonomy`'s input.
pub(crate) fn names_of(input: Payload, column: &str) -> Result<Vec<String>> {
    let items = match input.into_json()? {
        Value::Array(items) => items,
        Value::Null => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "no term names given: set `names` or pass a list of names (or rows with the `column`) as the input",
            ));
        }
        one => vec![one],
    };
    if items.len() > MAX_WRITES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} names given; one call syncs at most {MAX_WRITES}",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .or_else(|| v.get(column).and_then(Value::as_str))
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("input item {i} has no text `{column}`"),
                    )
                })
        })
        .collect()
}
