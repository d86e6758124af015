//! The text of a message built from a call's input, for steps that configure no `text`
//! or `blocks` (a workflow's "tell the channel what the last step did").

use kernelize_core::{Error, ErrorKind, Payload, Result};
use serde_json::{Map, Value};

/// The longest summary, in characters (Slack shows up to 3,000 in a section; longer text
/// is cut with `…`).
pub const MAX_SUMMARY: usize = 3000;

/// The most fields of an object, and columns of rows, a summary names.
const MAX_FIELDS: usize = 20;

/// A short, readable text for `input`:
///
/// - text (a JSON string, or `text/*` bytes): the text itself;
/// - a JSON object with a `text` string: that text;
/// - a load's outcome (an object with `rows_loaded` and `table`, as `databricks-connector`'s
///   and other loaders' `load` return): `Loaded 42 rows into ` + "`sales_analytics`.";
/// - another JSON object: one `*key*: value` line per field (at most 20);
/// - rows (records, or a JSON array of objects): `3 records (columns: id, region, revenue)`;
/// - another JSON array: `N items`; a number or a boolean: its text.
///
/// An empty input (or `null`) is an error: there is nothing to say.
pub fn summarize(input: Payload) -> Result<String> {
    let text = match input {
        Payload::Empty | Payload::Json(Value::Null) => return Err(nothing()),
        Payload::Records(records) => {
            let names: Vec<String> = records
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            rows_summary(records.num_rows(), &names)
        }
        Payload::Bytes(blob) if blob.essence().starts_with("text/") => {
            String::from_utf8_lossy(&blob.data).into_owned()
        }
        other => match other.into_json() {
            Ok(value) => json_summary(&value)?,
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("cannot make a message of the input: {}", e.message()),
                ));
            }
        },
    };
    if text.trim().is_empty() {
        return Err(nothing());
    }
    Ok(cut(text, MAX_SUMMARY))
}

fn nothing() -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "nothing to send: configure `text` or `blocks`, or give an input to summarize",
    )
}

fn json_summary(value: &Value) -> Result<String> {
    Ok(match value {
        Value::Null => return Err(nothing()),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Object(map) => object_summary(map),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut names: Vec<String> = Vec::new();
            for item in items.iter().take(100) {
                if let Value::Object(map) = item {
                    for key in map.keys() {
                        if !names.contains(key) {
                            names.push(key.clone());
                        }
                    }
                }
            }
            rows_summary(items.len(), &names)
        }
        Value::Array(items) => plural(items.len(), "item"),
    })
}

fn object_summary(map: &Map<String, Value>) -> String {
    if let Some(Value::String(text)) = map.get("text") {
        return text.clone();
    }
    if let (Some(rows), Some(Value::String(table))) = (map.get("rows_loaded"), map.get("table"))
        && let Some(n) = rows.as_u64()
    {
        return format!("Loaded {} into `{table}`.", plural(n as usize, "row"));
    }
    let mut lines: Vec<String> = map
        .iter()
        .take(MAX_FIELDS)
        .map(|(k, v)| format!("*{k}*: {}", scalar(v)))
        .collect();
    if map.len() > MAX_FIELDS {
        lines.push(format!("… and {} more", map.len() - MAX_FIELDS));
    }
    lines.join("\n")
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "—".into(),
        Value::String(s) => cut(s.clone(), 200),
        Value::Array(items) => plural(items.len(), "item"),
        Value::Object(map) => plural(map.len(), "field"),
        other => other.to_string(),
    }
}

fn rows_summary(count: usize, columns: &[String]) -> String {
    let mut text = plural(count, "record");
    if !columns.is_empty() {
        let shown: Vec<&str> = columns
            .iter()
            .take(MAX_FIELDS)
            .map(String::as_str)
            .collect();
        text.push_str(&format!(" (columns: {}", shown.join(", ")));
        if columns.len() > MAX_FIELDS {
            text.push_str(&format!(", … {} more", columns.len() - MAX_FIELDS));
        }
        text.push(')');
    }
    text
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn cut(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelize_core::Records;
    use serde_json::json;

    fn of(value: Value) -> String {
        summarize(Payload::Json(value)).unwrap()
    }

    #[test]
    fn a_load_outcome_says_how_many_rows_went_where() {
        assert_eq!(
            of(json!({"table": "sales_analytics", "rows_loaded": 42, "staged_file_deleted": true})),
            "Loaded 42 rows into `sales_analytics`."
        );
        assert_eq!(
            of(json!({"table": "t", "rows_loaded": 1})),
            "Loaded 1 row into `t`."
        );
    }

    #[test]
    fn rows_are_counted_and_their_columns_named() {
        let records = Records::from_json_rows(&[
            json!({"id": 1, "region": "n"}),
            json!({"id": 2, "region": "s"}),
        ])
        .unwrap();
        assert_eq!(
            summarize(Payload::Records(records)).unwrap(),
            "2 records (columns: id, region)"
        );
        assert_eq!(of(json!([{"a": 1}, {"b": 2}])), "2 records (columns: a, b)");
        assert_eq!(of(json!([1, 2, 3])), "3 items");
    }

    #[test]
    fn objects_become_field_lines_and_text_wins() {
        assert_eq!(
            of(json!({"status": "ok", "n": 3, "list": [1, 2]})),
            "*status*: ok\n*n*: 3\n*list*: 2 items"
        );
        assert_eq!(of(json!({"text": "hello", "n": 3})), "hello");
        assert_eq!(of(json!("plain")), "plain");
    }

    #[test]
    fn nothing_is_an_error_and_long_text_is_cut() {
        assert_eq!(
            summarize(Payload::Empty).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(summarize(Payload::Json(json!("  "))).is_err());
        let long = of(json!("x".repeat(5000)));
        assert_eq!(long.chars().count(), MAX_SUMMARY + 1);
        assert!(long.ends_with('…'));
    }
}
