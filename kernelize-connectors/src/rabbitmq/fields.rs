//! AMQP field tables and message properties, to and from JSON and text: queue and exchange
//! arguments, message headers, and the headers of a received event.

use std::collections::BTreeMap;

use base64::Engine as _;
use kernelize_core::{Error, ErrorKind, Result};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use serde_json::Value;

use super::client::short;

/// The prefix of the event headers that carry a delivery's AMQP properties
/// (`rabbitmq.message_id`, `rabbitmq.routing_key`, ...), as opposed to its application
/// headers, which keep their own names. A sink does not publish headers with this prefix.
pub const PROPERTY_PREFIX: &str = "rabbitmq.";

/// A JSON value as an AMQP field value: strings as long strings, booleans, integers as
/// signed 64-bit, other numbers as doubles, `null` as void, arrays and objects as field
/// arrays and tables.
pub(crate) fn amqp_value(value: &Value) -> Result<AMQPValue> {
    Ok(match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => match n.as_f64() {
                Some(f) if n.is_f64() => AMQPValue::Double(f),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "the number {n} does not fit an AMQP field (a signed 64-bit integer or a double)"
                        ),
                    ));
                }
            },
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(amqp_value).collect::<Result<Vec<_>>>()?,
        )),
        Value::Object(map) => {
            let mut table = FieldTable::default();
            for (k, v) in map {
                table.insert(short("a field name", k)?, amqp_value(v)?);
            }
            AMQPValue::FieldTable(table)
        }
    })
}

/// A JSON map as an AMQP field table (queue arguments, headers).
pub(crate) fn field_table<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a Value)>,
) -> Result<FieldTable> {
    let mut table = FieldTable::default();
    for (k, v) in entries {
        let value = amqp_value(v).map_err(|e| e.with_context("field", k))?;
        table.insert(short("a field name", k)?, value);
    }
    Ok(table)
}

/// An AMQP field value as JSON: byte arrays as base64 text, decimals and timestamps as
/// numbers, text that is not UTF-8 with its bad bytes replaced.
pub(crate) fn json_value(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::from(*i),
        AMQPValue::ShortShortUInt(i) => Value::from(*i),
        AMQPValue::ShortInt(i) => Value::from(*i),
        AMQPValue::ShortUInt(i) => Value::from(*i),
        AMQPValue::LongInt(i) => Value::from(*i),
        AMQPValue::LongUInt(i) => Value::from(*i),
        AMQPValue::LongLongInt(i) => Value::from(*i),
        AMQPValue::Float(f) => serde_json::Number::from_f64(f64::from(*f))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        AMQPValue::Double(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        AMQPValue::DecimalValue(d) => {
            let value = f64::from(d.value) / 10f64.powi(i32::from(d.scale));
            serde_json::Number::from_f64(value)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_string()),
        AMQPValue::LongString(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into()),
        AMQPValue::FieldArray(items) => {
            Value::Array(items.as_slice().iter().map(json_value).collect())
        }
        AMQPValue::Timestamp(t) => Value::from(*t),
        AMQPValue::FieldTable(table) => Value::Object(json_object(table)),
        AMQPValue::ByteArray(bytes) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes.as_slice()))
        }
        AMQPValue::Void => Value::Null,
    }
}

/// A field table as a JSON object.
pub(crate) fn json_object(table: &FieldTable) -> serde_json::Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json_value(v)))
        .collect()
}

/// An AMQP field value as header text: strings as they are, the rest as JSON text.
pub(crate) fn header_text(value: &AMQPValue) -> String {
    match json_value(value) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The event headers of a delivery: its application headers by name, then its properties,
/// its exchange, routing key and redelivered flag under [`PROPERTY_PREFIX`].
pub(crate) fn event_headers(
    properties: &BasicProperties,
    exchange: &str,
    routing_key: &str,
    redelivered: bool,
) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    if let Some(table) = properties.headers() {
        for (k, v) in table.inner() {
            headers.insert(k.as_str().to_string(), header_text(v));
        }
    }
    let mut put = |name: &str, value: String| {
        headers.insert(format!("{PROPERTY_PREFIX}{name}"), value);
    };
    put("exchange", exchange.to_string());
    put("routing_key", routing_key.to_string());
    put("redelivered", redelivered.to_string());
    let texts = [
        ("content_type", properties.content_type()),
        ("content_encoding", properties.content_encoding()),
        ("correlation_id", properties.correlation_id()),
        ("reply_to", properties.reply_to()),
        ("expiration", properties.expiration()),
        ("message_id", properties.message_id()),
        ("type", properties.kind()),
        ("user_id", properties.user_id()),
        ("app_id", properties.app_id()),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            put(name, value.as_str().to_string());
        }
    }
    if let Some(mode) = properties.delivery_mode() {
        put("delivery_mode", mode.to_string());
    }
    if let Some(priority) = properties.priority() {
        put("priority", priority.to_string());
    }
    if let Some(timestamp) = properties.timestamp() {
        put("timestamp", timestamp.to_string());
    }
    headers
}

/// How many times a message was delivered before, from a quorum queue's
/// `x-delivery-count` header.
pub(crate) fn delivery_count(properties: &BasicProperties) -> Option<u64> {
    let value = properties
        .headers()
        .as_ref()?
        .inner()
        .get("x-delivery-count")?;
    match value {
        AMQPValue::ShortShortInt(i) => u64::try_from(*i).ok(),
        AMQPValue::ShortShortUInt(i) => Some(u64::from(*i)),
        AMQPValue::ShortInt(i) => u64::try_from(*i).ok(),
        AMQPValue::ShortUInt(i) => Some(u64::from(*i)),
        AMQPValue::LongInt(i) => u64::try_from(*i).ok(),
        AMQPValue::LongUInt(i) => Some(u64::from(*i)),
        AMQPValue::LongLongInt(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

/// The attempt number of a delivery: one more than the quorum queue's delivery count when
/// the message carries it, else 2 for a redelivery and 1 for a first delivery.
pub(crate) fn attempt_of(properties: &BasicProperties, redelivered: bool) -> u32 {
    match delivery_count(properties) {
        Some(count) => u32::try_from(count.saturating_add(1)).unwrap_or(u32::MAX),
        None if redelivered => 2,
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_amqp_fields() {
        let value = json!({"s": "text", "b": true, "i": -42, "f": 1.5, "n": null,
                           "a": [1, "two"], "o": {"deep": [{"x": 1}]}});
        let amqp = amqp_value(&value).unwrap();
        assert_eq!(json_value(&amqp), value);
    }

    #[test]
    fn a_number_beyond_i64_that_is_no_float_is_refused() {
        let e = amqp_value(&json!(u64::MAX)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn attempts_come_from_the_delivery_count_or_the_redelivered_flag() {
        let plain = BasicProperties::default();
        assert_eq!(attempt_of(&plain, false), 1);
        assert_eq!(attempt_of(&plain, true), 2);
        let mut headers = FieldTable::default();
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(3));
        let counted = BasicProperties::default().with_headers(headers);
        assert_eq!(attempt_of(&counted, true), 4);
    }

    #[test]
    fn headers_and_properties_become_text() {
        let mut table = FieldTable::default();
        table.insert("tenant".into(), AMQPValue::LongString("acme".into()));
        table.insert("n".into(), AMQPValue::LongInt(7));
        let properties = BasicProperties::default()
            .with_headers(table)
            .with_message_id("m-1".into())
            .with_delivery_mode(2);
        let headers = event_headers(&properties, "ex", "rk", false);
        assert_eq!(headers["tenant"], "acme");
        assert_eq!(headers["n"], "7");
        assert_eq!(headers["rabbitmq.message_id"], "m-1");
        assert_eq!(headers["rabbitmq.routing_key"], "rk");
        assert_eq!(headers["rabbitmq.delivery_mode"], "2");
    }
}
