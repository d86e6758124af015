//! What the content connectors (Shopify, WordPress, Drupal) share: JSON objects as records,
//! filters as query text, page caps, and the items a write action takes from its config or
//! input.

use std::collections::BTreeMap;

use kernelize_core::payload::json_type_name;
use kernelize_core::{Error, ErrorKind, Payload, Records, Result};
use serde_json::{Map, Value};

use super::table::{Column, ColumnType, records_from_rows};

/// The most pages a list call reads: the call's `asked` (at least 1), else the plugin's
/// `default`.
pub fn max_pages(asked: Option<usize>, default: usize) -> Result<usize> {
    match asked {
        Some(0) => Err(Error::new(
            ErrorKind::InvalidInput,
            "`max_pages` must be at least 1",
        )),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// The type of the fields [`records_of_objects`] has no known column for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherFields {
    /// Text (objects and arrays as JSON).
    Text,
    /// The type that fits every non-null cell: boolean, integer, float, a timestamp (RFC
    /// 3339 text with a time), else text.
    Inferred,
}

/// Records of JSON objects: the `known` columns typed, in that order (null where an object
/// lacks one), then every other field, in first-seen order, typed as `others` says.
pub fn records_of_objects(
    items: &[Value],
    known: &[(&str, ColumnType)],
    others: OtherFields,
) -> Result<Records> {
    let mut names: Vec<String> = known.iter().map(|(n, _)| (*n).to_string()).collect();
    for item in items {
        if let Value::Object(map) = item {
            for key in map.keys() {
                if !names.contains(key) {
                    names.push(key.clone());
                }
            }
        }
    }
    let rows: Vec<Vec<Value>> = items
        .iter()
        .map(|item| {
            names
                .iter()
                .map(|n| item.get(n).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect();
    let columns: Vec<Column> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let kind = match known.get(i) {
                Some((_, kind)) => *kind,
                None if others == OtherFields::Inferred => {
                    infer(rows.iter().map(|row| &row[i]).filter(|v| !v.is_null()))
                }
                None => ColumnType::Text,
            };
            Column::new(name.clone(), kind)
        })
        .collect();
    records_from_rows(&columns, &rows)
}

/// The column type that fits every one of `present` (non-null) cells: boolean, integer,
/// float, a timestamp (RFC 3339 text), else text (also when there are none).
fn infer<'a>(present: impl Iterator<Item = &'a Value> + Clone) -> ColumnType {
    let mut cells = present.clone().peekable();
    if cells.peek().is_none() {
        return ColumnType::Text;
    }
    let all = |test: fn(&Value) -> bool| present.clone().all(test);
    if all(Value::is_boolean) {
        ColumnType::Boolean
    } else if all(Value::is_i64) {
        ColumnType::Integer
    } else if all(Value::is_number) {
        ColumnType::Float
    } else if all(|v| {
        v.as_str()
            .is_some_and(|s| s.contains('T') && chrono::DateTime::parse_from_rfc3339(s).is_ok())
    }) {
        ColumnType::Timestamp
    } else {
        ColumnType::Text
    }
}

/// Query values as text (lists joined by commas; nulls left out). An object is an error:
/// "{what} `{key}` must be text, a number, a boolean or a list{hint}".
pub fn query_pairs(
    values: &BTreeMap<String, Value>,
    what: &str,
    hint: &str,
) -> Result<Vec<(String, String)>> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    values
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::Object(_) => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{what} `{k}` must be text, a number, a boolean or a list{hint}"),
            )),
            Value::Array(items) => Ok((
                k.clone(),
                items.iter().map(text).collect::<Vec<_>>().join(","),
            )),
            other => Ok((k.clone(), text(other))),
        })
        .collect()
}

/// The items a write action takes from its input, and how its errors name them.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The error when the input is empty (what to give instead).
    pub none: &'a str,
    /// One item, as an error names it by its position (`item`, `row`).
    pub item: &'a str,
    /// The items, counted (`products`, `rows`, `uuids`).
    pub items: &'a str,
    /// What one call does with them (`writes`, `deletes`).
    pub verb: &'a str,
    /// The most items one call takes.
    pub max: usize,
}

impl Batch<'_> {
    /// The input's values: a list's items, or any other value as one.
    pub fn values(&self, input: Payload) -> Result<Vec<Value>> {
        let items = match input.into_json()? {
            Value::Array(items) => items,
            Value::Null => return Err(Error::new(ErrorKind::InvalidInput, self.none)),
            one => vec![one],
        };
        self.capped(items)
    }

    /// The input's objects: an object, a list of objects, or records (a row each).
    /// `object` names one, with its article, in errors (`a product object`, `an object`).
    pub fn objects(&self, input: Payload, object: &str) -> Result<Vec<Map<String, Value>>> {
        let items = match input.into_json()? {
            Value::Object(map) => vec![Value::Object(map)],
            Value::Array(items) => items,
            Value::Null => return Err(Error::new(ErrorKind::InvalidInput, self.none)),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the input must be {object}, a list of them or records, not {}",
                        json_type_name(&other)
                    ),
                ));
            }
        };
        self.capped(items)?
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(map) => Ok(map),
                other => Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "input {} {i} is {}, not {object}",
                        self.item,
                        json_type_name(&other)
                    ),
                )),
            })
            .collect()
    }

    fn capped(&self, items: Vec<Value>) -> Result<Vec<Value>> {
        if items.len() > self.max {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} {} given; one call {} at most {}",
                    items.len(),
                    self.items,
                    self.verb,
                    self.max
                ),
            ));
        }
        Ok(items)
    }
}

/// The objects a write action works on: its config's `one`, else the input's (an object,
/// a list of them or records; at most `max`), a `what` each (`product`, `post`).
pub fn objects_of(
    one: Option<Map<String, Value>>,
    input: Payload,
    what: &str,
    max: usize,
) -> Result<Vec<Map<String, Value>>> {
    if let Some(one) = one {
        return Ok(vec![one]);
    }
    let none = format!("no {what} given: set it in the config or pass it as the input");
    let items = format!("{what}s");
    let batch = Batch {
        none: &none,
        item: "item",
        items: &items,
        verb: "writes",
        max,
    };
    batch.objects(input, &format!("a {what} object"))
}

#[cfg(test)]
mod tests {
    use kernelize_core::arrow_schema::DataType;
    use serde_json::json;

    use super::*;

    #[test]
    fn known_columns_come_first_typed_and_the_others_as_text() {
        let items = vec![
            json!({"extra": 1, "id": 7, "tags": ["a"]}),
            json!({"id": 8, "late": true}),
        ];
        let records =
            records_of_objects(&items, &[("id", ColumnType::Integer)], OtherFields::Text).unwrap();
        let schema = records.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "extra", "tags", "late"]);
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert!(
            schema.fields()[1..]
                .iter()
                .all(|f| f.data_type() == &DataType::Utf8)
        );
    }

    #[test]
    fn other_columns_can_be_inferred() {
        let items = vec![
            json!({"n": 1, "ok": true, "x": 1.5, "none": null}),
            json!({"n": null, "ok": false, "x": 2}),
        ];
        let records = records_of_objects(&items, &[], OtherFields::Inferred).unwrap();
        let schema = records.schema();
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(1).data_type(), &DataType::Boolean);
        assert_eq!(schema.field(2).data_type(), &DataType::Float64);
        assert_eq!(schema.field(3).data_type(), &DataType::Utf8);
    }

    #[test]
    fn query_values_are_text_and_lists_are_joined() {
        let values: BTreeMap<String, Value> =
            serde_json::from_value(json!({"ids": [1, "2"], "on": true, "q": "x y", "skip": null}))
                .unwrap();
        assert_eq!(
            query_pairs(&values, "filter", "").unwrap(),
            [
                ("ids".to_string(), "1,2".to_string()),
                ("on".to_string(), "true".to_string()),
                ("q".to_string(), "x y".to_string()),
            ]
        );
        let bad: BTreeMap<String, Value> = serde_json::from_value(json!({"f": {"a": 1}})).unwrap();
        assert_eq!(
            query_pairs(&bad, "parameter", " (hint)")
                .unwrap_err()
                .message(),
            "parameter `f` must be text, a number, a boolean or a list (hint)"
        );
    }

    #[test]
    fn objects_come_from_the_config_or_the_input_capped() {
        let one: Map<String, Value> = serde_json::from_value(json!({"a": 1})).unwrap();
        let given = objects_of(Some(one.clone()), Payload::Json(Value::Null), "post", 1).unwrap();
        assert_eq!(given, vec![one]);
        let err = objects_of(None, Payload::Json(Value::Null), "post", 1).unwrap_err();
        assert_eq!(
            err.message(),
            "no post given: set it in the config or pass it as the input"
        );
        let err = objects_of(None, Payload::Json(json!([{}, {}])), "post", 1).unwrap_err();
        assert_eq!(err.message(), "2 posts given; one call writes at most 1");
        let err = objects_of(None, Payload::Json(json!([{}, 3])), "post", 5).unwrap_err();
        assert_eq!(err.message(), "input item 1 is a number, not a post object");
    }
}
