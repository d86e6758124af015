//! JSON:API documents from rows ([`Mapping`], [`resource_from_row`]) and rows from
//! resources ([`flatten`], [`records_of`]).

use std::collections::BTreeMap;

use kernelize_core::{Error, ErrorKind, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::saas::{OtherFields, records_of_objects};

/// Where a record column goes in a JSON:API resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Target {
    /// An attribute path: `title`, `body.value`, `path.alias` (`attributes.` in front is
    /// allowed); `id` is the resource's uuid (a row with one is updated).
    Attribute(String),
    /// A relationship by uuid: `{relationship: field_tags, type: taxonomy_term--tags}`. The
    /// cell is a uuid, a list of uuids or comma-separated uuids; `many` (true when the cell
    /// is a list) makes it a to-many relationship.
    Relationship {
        /// The relationship field (`field_tags`, `uid`).
        relationship: String,
        /// The target resource type (`taxonomy_term--tags`).
        #[serde(rename = "type")]
        target_type: String,
        /// To-many (a list of identifiers) rather than to-one.
        #[serde(default)]
        many: Option<bool>,
    },
}

/// Record column → where it goes in the resource.
pub type Mapping = BTreeMap<String, Target>;

/// A resource to write: its uuid when known, and the `data` object (`type`, `id`?,
/// `attributes`, `relationships`).
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The uuid, when the row names one (then it is an update).
    pub id: Option<String>,
    /// The resource object.
    pub data: Map<String, Value>,
}

fn set_path(target: &mut Map<String, Value>, path: &str, value: Value) -> Result<()> {
    let mut parts = path.split('.').peekable();
    let mut current = target;
    while let Some(part) = parts.next() {
        if part.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("the mapping path `{path}` has an empty segment"),
            ));
        }
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        let next = current
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        current = match next {
            Value::Object(map) => map,
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the mapping path `{path}` goes through `{part}`, which another column set to a value"
                    ),
                ));
            }
        };
    }
    Ok(())
}

fn uuids_of(cell: &Value, column: &str) -> Result<Vec<String>> {
    let bad = || {
        Error::new(
            ErrorKind::InvalidInput,
            format!("column `{column}` must hold a uuid, a list of uuids or comma-separated uuids"),
        )
    };
    match cell {
        Value::String(s) => {
            let trimmed = s.trim();
            // A list written as JSON text (records carry lists as text).
            if trimmed.starts_with('[') {
                let parsed: Value = serde_json::from_str(trimmed).map_err(|_| bad())?;
                return uuids_of(&parsed, column);
            }
            Ok(trimmed
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect())
        }
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// Builds the resource of `kind` (`node--article`) for one row.
///
/// With a `mapping`, only mapped columns are used (a null cell is left out, so it does not
/// clear the field); without one, the row is the resource: either `{attributes,
/// relationships, id?}` or plain attributes (its `id` being the uuid).
pub fn resource_from_row(
    row: &Map<String, Value>,
    mapping: Option<&Mapping>,
    kind: &str,
) -> Result<Resource> {
    let mut attributes = Map::new();
    let mut relationships = Map::new();
    let mut id = None;
    match mapping {
        Some(mapping) => {
            for (column, target) in mapping {
                let Some(cell) = row.get(column).filter(|v| !v.is_null()) else {
                    continue;
                };
                match target {
                    Target::Attribute(path) => {
                        let path = path.strip_prefix("attributes.").unwrap_or(path);
                        if path == "id" {
                            id = Some(cell.as_str().map(str::to_string).ok_or_else(|| {
                                Error::new(
                                    ErrorKind::InvalidInput,
                                    format!("column `{column}` (the uuid) must be text"),
                                )
                            })?);
                        } else {
                            set_path(&mut attributes, path, cell.clone())?;
                        }
                    }
                    Target::Relationship {
                        relationship,
                        target_type,
                        many,
                    } => {
                        let ids = uuids_of(cell, column)?;
                        let is_list = matches!(cell, Value::Array(_))
                            || cell
                                .as_str()
                                .is_some_and(|s| s.trim_start().starts_with('['));
                        let to_many = many.unwrap_or(is_list || ids.len() > 1);
                        let identifiers: Vec<Value> = ids
                            .iter()
                            .map(|i| json!({"type": target_type, "id": i}))
                            .collect();
                        let data = if to_many {
                            Value::Array(identifiers)
                        } else {
                            match identifiers.into_iter().next() {
                                Some(one) => one,
                                None => Value::Null,
                            }
                        };
                        relationships.insert(relationship.clone(), json!({ "data": data }));
                    }
                }
            }
        }
        None => {
            id = row.get("id").and_then(Value::as_str).map(str::to_string);
            if row.contains_key("attributes") || row.contains_key("relationships") {
                if let Some(Value::Object(a)) = row.get("attributes") {
                    attributes = a.clone();
                }
                if let Some(Value::Object(r)) = row.get("relationships") {
                    relationships = r.clone();
                }
            } else {
                attributes = row
                    .iter()
                    .filter(|(k, _)| k.as_str() != "id" && k.as_str() != "type")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
            }
        }
    }
    let mut data = Map::new();
    data.insert("type".into(), Value::from(kind));
    if let Some(id) = &id {
        data.insert("id".into(), Value::from(id.clone()));
    }
    if !attributes.is_empty() {
        data.insert("attributes".into(), Value::Object(attributes));
    }
    if !relationships.is_empty() {
        data.insert("relationships".into(), Value::Object(relationships));
    }
    Ok(Resource { id, data })
}

/// A resource as one flat row: `id`, `type`, the attributes (nested objects as dotted
/// names: `body.value`), and each relationship as its target uuid (to-one) or a list of
/// uuids (to-many).
pub fn flatten(resource: &Value) -> Value {
    let mut row = Map::new();
    row.insert(
        "id".into(),
        resource.get("id").cloned().unwrap_or(Value::Null),
    );
    row.insert(
        "type".into(),
        resource.get("type").cloned().unwrap_or(Value::Null),
    );
    fn walk(prefix: &str, value: &Map<String, Value>, row: &mut Map<String, Value>) {
        for (k, v) in value {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Object(inner) if !inner.is_empty() => walk(&name, inner, row),
                other => {
                    row.insert(name, other.clone());
                }
            }
        }
    }
    if let Some(Value::Object(attributes)) = resource.get("attributes") {
        walk("", attributes, &mut row);
    }
    if let Some(Value::Object(rels)) = resource.get("relationships") {
        for (name, rel) in rels {
            let value = match rel.get("data") {
                Some(Value::Array(items)) => Value::Array(
                    items
                        .iter()
                        .map(|i| i.get("id").cloned().unwrap_or(Value::Null))
                        .collect(),
                ),
                Some(Value::Object(one)) => one.get("id").cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            };
            if !row.contains_key(name) {
                row.insert(name.clone(), value);
            }
        }
    }
    Value::Object(row)
}

/// Records of flat rows, columns in first-seen order, types inferred from the cells
/// (lists and objects as JSON text).
pub fn records_of(rows: &[Value]) -> Result<Records> {
    records_of_objects(rows, &[], OtherFields::Inferred)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_row_becomes_attributes_and_relationships() {
        let mapping: Mapping = serde_json::from_value(json!({
            "uuid": "id",
            "headline": "title",
            "text": "body.value",
            "format": "attributes.body.format",
            "tags": {"relationship": "field_tags", "type": "taxonomy_term--tags"},
            "author": {"relationship": "uid", "type": "user--user"},
        }))
        .unwrap();
        let row = json!({"uuid": "u-1", "headline": "Hi", "text": "<p>x</p>", "format": "basic_html",
                         "tags": "t-1, t-2", "author": "a-1", "ignored": 5});
        let r =
            resource_from_row(row.as_object().unwrap(), Some(&mapping), "node--article").unwrap();
        assert_eq!(r.id.as_deref(), Some("u-1"));
        assert_eq!(
            Value::Object(r.data),
            json!({"type": "node--article", "id": "u-1",
                   "attributes": {"title": "Hi", "body": {"value": "<p>x</p>", "format": "basic_html"}},
                   "relationships": {
                       "field_tags": {"data": [{"type": "taxonomy_term--tags", "id": "t-1"}, {"type": "taxonomy_term--tags", "id": "t-2"}]},
                       "uid": {"data": {"type": "user--user", "id": "a-1"}}}})
        );
    }

    #[test]
    fn a_resource_flattens_to_a_row() {
        let resource = json!({"type": "node--article", "id": "u-1",
            "attributes": {"title": "Hi", "status": true, "body": {"value": "v", "format": "f"}},
            "relationships": {"field_tags": {"data": [{"type": "t", "id": "t-1"}]}, "uid": {"data": {"type": "u", "id": "a-1"}}}});
        assert_eq!(
            flatten(&resource),
            json!({"id": "u-1", "type": "node--article", "title": "Hi", "status": true,
                   "body.value": "v", "body.format": "f", "field_tags": ["t-1"], "uid": "a-1"})
        );
    }

    #[test]
    fn column_types_are_inferred_from_the_cells() {
        let rows = vec![
            json!({"n": 1, "ok": true, "at": "2024-05-01T10:00:00+00:00", "x": 1.5, "t": "a"}),
            json!({"n": null, "ok": false, "at": null, "x": 2, "t": 3}),
        ];
        let records = records_of(&rows).unwrap();
        let schema = records.schema();
        use kernelize_core::arrow_schema::DataType;
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(1).data_type(), &DataType::Boolean);
        assert!(matches!(
            schema.field(2).data_type(),
            DataType::Timestamp(_, _)
        ));
        assert_eq!(schema.field(3).data_type(), &DataType::Float64);
        assert_eq!(schema.field(4).data_type(), &DataType::Utf8);
    }
}
