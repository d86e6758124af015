//! Rows an action sends to the vendor (an insert, a push): the call's input as JSON objects.

use kernelize_core::payload::json_type_name;
use kernelize_core::{Error, ErrorKind, Payload, Result};
use serde_json::{Map, Value};

/// The rows of `action`'s input, one JSON object each: records give an object a row, a
/// JSON array must hold objects, a JSON object is one row. Anything else (no input, text,
/// an array holding a number) is an `invalid input` error naming the action, or the row
/// (counted from 1) that is not an object.
pub fn input_objects(action: &str, input: Payload) -> Result<Vec<Map<String, Value>>> {
    if matches!(input, Payload::Empty) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("`{action}` takes records or JSON objects as its input; got nothing"),
        ));
    }
    let kind = input.kind_name();
    let items = match input.into_json()? {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        other => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`{action}` takes records or JSON objects, not {} (a {kind} input)",
                    json_type_name(&other)
                ),
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(n, item)| match item {
            Value::Object(map) => Ok(map),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "row {} of the input is {}, not a JSON object",
                    n + 1,
                    json_type_name(&other)
                ),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_input_must_be_row_objects() {
        let rows = input_objects("push", Payload::json(json!([{"a": 1}, {"a": 2}]))).unwrap();
        assert_eq!(rows.len(), 2);
        let one = input_objects("push", Payload::json(json!({"a": 1}))).unwrap();
        assert_eq!(one[0]["a"], 1);
        let err = input_objects("push", Payload::json(json!([{"a": 1}, 3]))).unwrap_err();
        assert!(err.message().contains("row 2"), "{err}");
        let err = input_objects("push", Payload::json(json!("text"))).unwrap_err();
        assert!(err.message().contains("`push`"), "{err}");
        let err = input_objects("push", Payload::Empty).unwrap_err();
        assert!(err.message().contains("got nothing"), "{err}");
    }
}
