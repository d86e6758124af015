//! [`SqlValue`]: one value going into or coming out of a SQL database, whatever the database.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use kernelize_core::{Error, ErrorKind, Result};
use serde_json::Value;

/// One value bound into a statement or read from a row.
///
/// Each database binds and decodes these in its own way: SQLite, which has no timestamp or
/// date type, binds a [`SqlValue::Timestamp`] as RFC 3339 text and a [`SqlValue::Date`] as
/// `YYYY-MM-DD`; PostgreSQL binds every value as the type it inferred for the slot.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// An instant, UTC.
    Timestamp(DateTime<Utc>),
    /// A calendar date.
    Date(NaiveDate),
    /// A date and time of day without a time zone (PostgreSQL's `timestamp`).
    LocalTimestamp(NaiveDateTime),
}

impl SqlValue {
    /// The value of a JSON parameter: null, booleans, numbers and strings as themselves;
    /// arrays and objects as their JSON text. An integer beyond the signed 64-bit range is an
    /// error (no database column holds it without loss).
    pub fn from_json(value: &Value) -> Result<Self> {
        Ok(match value {
            Value::Null => SqlValue::Null,
            Value::Bool(b) => SqlValue::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    SqlValue::Int(i)
                } else if n.is_u64() {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("{n} is beyond the range of a signed 64-bit integer"),
                    ));
                } else {
                    SqlValue::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => SqlValue::Text(s.clone()),
            Value::Array(_) | Value::Object(_) => SqlValue::Text(value.to_string()),
        })
    }

    /// The SQL storage class name of the value (`INTEGER`, `TEXT`, ...), for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            SqlValue::Null => "NULL",
            SqlValue::Bool(_) => "BOOLEAN",
            SqlValue::Int(_) => "INTEGER",
            SqlValue::Float(_) => "REAL",
            SqlValue::Text(_) => "TEXT",
            SqlValue::Bytes(_) => "BLOB",
            SqlValue::Timestamp(_) => "TIMESTAMP",
            SqlValue::Date(_) => "DATE",
            SqlValue::LocalTimestamp(_) => "TIMESTAMP WITHOUT TIME ZONE",
        }
    }

    /// The value as text, as reported for a watermark: numbers in decimal, timestamps in
    /// RFC 3339 UTC, bytes in lower-case hex; `None` for NULL.
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            SqlValue::Null => return None,
            SqlValue::Bool(b) => b.to_string(),
            SqlValue::Int(i) => i.to_string(),
            SqlValue::Float(f) => f.to_string(),
            SqlValue::Text(s) => s.clone(),
            SqlValue::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
            SqlValue::Timestamp(t) => rfc3339(t),
            SqlValue::Date(d) => d.format("%Y-%m-%d").to_string(),
            SqlValue::LocalTimestamp(t) => local_timestamp_text(t),
        })
    }

    /// Orders values the way SQLite's `ORDER BY` does: NULL first, then numbers (integers
    /// and floats compared by value, booleans as 0 and 1), then dates and timestamps, then
    /// text (byte-wise), then bytes. Timestamps without a time zone sort among themselves
    /// (and, against the other kinds, as if they were UTC).
    pub fn sql_cmp(&self, other: &SqlValue) -> Ordering {
        fn rank(v: &SqlValue) -> u8 {
            match v {
                SqlValue::Null => 0,
                SqlValue::Bool(_) | SqlValue::Int(_) | SqlValue::Float(_) => 1,
                SqlValue::Date(_) | SqlValue::Timestamp(_) | SqlValue::LocalTimestamp(_) => 2,
                SqlValue::Text(_) => 3,
                SqlValue::Bytes(_) => 4,
            }
        }
        fn number(v: &SqlValue) -> Option<f64> {
            match v {
                SqlValue::Bool(b) => Some(f64::from(u8::from(*b))),
                SqlValue::Int(i) => Some(*i as f64),
                SqlValue::Float(f) => Some(*f),
                _ => None,
            }
        }
        match (self, other) {
            (SqlValue::Int(a), SqlValue::Int(b)) => a.cmp(b),
            (SqlValue::Text(a), SqlValue::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (SqlValue::Bytes(a), SqlValue::Bytes(b)) => a.cmp(b),
            (SqlValue::Timestamp(a), SqlValue::Timestamp(b)) => a.cmp(b),
            (SqlValue::Date(a), SqlValue::Date(b)) => a.cmp(b),
            (SqlValue::LocalTimestamp(a), SqlValue::LocalTimestamp(b)) => a.cmp(b),
            (SqlValue::Date(a), SqlValue::Timestamp(b)) => {
                date_start(a).cmp(b).then(Ordering::Less)
            }
            (SqlValue::Timestamp(a), SqlValue::Date(b)) => {
                a.cmp(&date_start(b)).then(Ordering::Greater)
            }
            _ => match (number(self), number(other)) {
                (Some(a), Some(b)) => a.total_cmp(&b),
                _ => rank(self).cmp(&rank(other)),
            },
        }
    }
}

fn date_start(d: &NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// A timestamp without a time zone as `YYYY-MM-DDTHH:MM:SS` with as many fraction digits
/// as it needs: `2026-11-27T03:25:00`, `2026-11-27T03:25:00.5`.
pub fn local_timestamp_text(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
}

/// An instant as RFC 3339 UTC with a `Z`, with as many fraction digits as it needs (none,
/// 3, 6 or 9): `2026-11-27T03:25:00Z`, `2026-11-27T03:25:00.123456Z`.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_scalars_bind_natively_and_containers_as_json_text() {
        assert_eq!(SqlValue::from_json(&json!(null)).unwrap(), SqlValue::Null);
        assert_eq!(
            SqlValue::from_json(&json!(true)).unwrap(),
            SqlValue::Bool(true)
        );
        assert_eq!(SqlValue::from_json(&json!(-7)).unwrap(), SqlValue::Int(-7));
        assert_eq!(
            SqlValue::from_json(&json!(2.5)).unwrap(),
            SqlValue::Float(2.5)
        );
        assert_eq!(
            SqlValue::from_json(&json!("x")).unwrap(),
            SqlValue::Text("x".into())
        );
        assert_eq!(
            SqlValue::from_json(&json!({"a": [1, 2]})).unwrap(),
            SqlValue::Text(r#"{"a":[1,2]}"#.into())
        );
    }

    #[test]
    fn integers_beyond_i64_are_refused() {
        let err = SqlValue::from_json(&json!(u64::MAX)).unwrap_err();
        assert!(err.to_string().contains("64-bit"), "{err}");
    }

    #[test]
    fn ordering_follows_sqlite() {
        let mut values = vec![
            SqlValue::Text("b".into()),
            SqlValue::Bytes(vec![0]),
            SqlValue::Float(1.5),
            SqlValue::Null,
            SqlValue::Int(2),
            SqlValue::Text("a".into()),
            SqlValue::Int(1),
        ];
        values.sort_by(SqlValue::sql_cmp);
        assert_eq!(
            values,
            vec![
                SqlValue::Null,
                SqlValue::Int(1),
                SqlValue::Float(1.5),
                SqlValue::Int(2),
                SqlValue::Text("a".into()),
                SqlValue::Text("b".into()),
                SqlValue::Bytes(vec![0]),
            ]
        );
    }
}
