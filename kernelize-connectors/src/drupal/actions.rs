//! The `drupal-connector`'s typed actions: their names, per-call configs and outputs.

use std::collections::BTreeMap;

use kernelize_core::{Error, ErrorKind, Payload, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::document::Mapping;
use crate::saas::{Batch, query_pairs, saas_action};

/// The most resources one write call writes (one request each).
pub const MAX_WRITES: usize = 1000;

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

saas_action!(
    List,
    "list",
    "List resources of a bundle, following links.next, as records flattened from attributes and relationship ids.",
    ListConfig,
    Payload,
    Records
);
saas_action!(
    Create,
    "create",
    "Create resources (one request each), from config or input objects or mapped records.",
    CreateConfig,
    Payload,
    Written
);
saas_action!(
    Update,
    "update",
    "Update resources by uuid (PATCH, one request each).",
    UpdateConfig,
    Payload,
    Written
);
saas_action!(
    Save,
    "save",
    "Create or update mapped records one by one: rows with a uuid are updated, the others created.",
    SaveConfig,
    Payload,
    Written
);
saas_action!(
    Delete,
    "delete",
    "Delete resources by uuid.",
    DeleteConfig,
    Payload,
    Written
);
saas_action!(
    SyncTaxonomy,
    "sync_taxonomy",
    "Make sure terms exist in a vocabulary (create the missing ones) and return name to uuid.",
    SyncTaxonomyConfig,
    Payload,
    TaxonomySynced
);

/// Query parameter values as text (lists joined by commas).
pub(crate) fn param_pairs(params: &BTreeMap<String, Value>) -> Result<Vec<(String, String)>> {
    query_pairs(
        params,
        "parameter",
        " (write nested filters as `filter[a][condition][path]`)",
    )
}

/// The rows of a write action's input (objects, a list of them, or records).
pub(crate) fn rows_of(input: Payload) -> Result<Vec<Map<String, Value>>> {
    let batch = Batch {
        none: "nothing to write: give `attributes` in the config or pass rows as the input",
        item: "row",
        items: "rows",
        verb: "writes",
        max: MAX_WRITES,
    };
    batch.objects(input, "an object")
}

/// The uuids of a `delete`'s input.
pub(crate) fn uuids_of(input: Payload) -> Result<Vec<String>> {
    let batch = Batch {
        none: "no uuid given: set `id` or pass uuids (or objects with `id`) as the input",
        item: "item",
        items: "uuids",
        verb: "deletes",
        max: MAX_WRITES,
    };
    texts_of(&batch, input, "id", "uuid")
}

/// The term names of a `sync_taxonomy`'s input.
pub(crate) fn names_of(input: Payload, column: &str) -> Result<Vec<String>> {
    let batch = Batch {
        none: "no term names given: set `names` or pass a list of names (or rows with the `column`) as the input",
        item: "item",
        items: "names",
        verb: "syncs",
        max: MAX_WRITES,
    };
    texts_of(&batch, input, column, &format!("text `{column}`"))
}

/// The texts of `batch`'s input: each value a string, or an object's text `key`; an item
/// with neither is an error saying it has no `missing`.
fn texts_of(batch: &Batch<'_>, input: Payload, key: &str, missing: &str) -> Result<Vec<String>> {
    batch
        .values(input)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .or_else(|| v.get(key).and_then(Value::as_str))
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("input {} {i} has no {missing}", batch.item),
                    )
                })
        })
        .collect()
}
