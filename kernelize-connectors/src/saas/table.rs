//! Tabular answers as records: [`Column`]s of a [`ColumnType`] and rows of JSON cells.
//!
//! Vendors send result cells as text (Snowflake, BigQuery, Databricks) or JSON values
//! (Looker, Power BI); each connector maps its type names to a [`ColumnType`] and
//! [`records_from_rows`] builds typed Arrow columns, so `42` is an integer and `"2024-05-01"`
//! a date whatever the vendor's encoding. A cell that does not fit its column is an error
//! naming the row and column, never a silent null.

use std::sync::Arc;

use kernelize_core::arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use kernelize_core::arrow_array::{ArrayRef, RecordBatch};
use kernelize_core::arrow_schema::{DataType, Field, Schema, TimeUnit};
use kernelize_core::{Error, ErrorKind, Records, Result};
use serde_json::Value;

/// A column's type, as records carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (also anything a connector does not map).
    Text,
    /// A 64-bit integer.
    Integer,
    /// A 64-bit float.
    Float,
    /// A decimal with this precision (at most 38) and scale.
    Decimal {
        /// Digits in all.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// A boolean.
    Boolean,
    /// A calendar date: cells are `YYYY-MM-DD` text or days since 1970-01-01.
    Date,
    /// A UTC timestamp in microseconds: cells are RFC 3339 text, or microseconds since the
    /// epoch as an integer.
    Timestamp,
}

impl ColumnType {
    fn data_type(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            ColumnType::Integer => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

/// One column of a tabular answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: ColumnType,
}

impl Column {
    /// A column named `name` of type `kind`.
    pub fn new(name: impl Into<String>, kind: ColumnType) -> Self {
        Self {
            name: name.into(),
            kind,
        }
    }
}

/// Builds records from `rows` of cells in `columns`' order (every column nullable).
/// A row of the wrong length, or a cell that does not parse as its column's type, is a
/// `corrupt data` error naming the row and the column.
pub fn records_from_rows(columns: &[Column], rows: &[Vec<Value>]) -> Result<Records> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (c, column) in columns.iter().enumerate() {
        let cells = rows.iter().enumerate().map(|(r, row)| {
            row.get(c).ok_or_else(|| {
                Error::new(
                    ErrorKind::CorruptData,
                    format!(
                        "row {r} has {} cells, the answer has {} columns",
                        row.len(),
                        columns.len()
                    ),
                )
            })
        });
        arrays.push(build_column(column, cells)?);
    }
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, c.kind.data_type(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    if columns.is_empty() {
        return Ok(Records::empty(schema));
    }
    let batch = RecordBatch::try_new(schema, arrays).map_err(|e| {
        Error::new(
            ErrorKind::CorruptData,
            format!("cannot build records from the answer: {e}"),
        )
    })?;
    Ok(Records::from_batch(batch))
}

/// A column of [`records_from_items`]: its name, its type, and the JSON pointer of its
/// value in an item (`/project/name`).
pub type ItemColumn<'a> = (&'a str, ColumnType, &'a str);

/// Builds records from JSON `items` (the objects a list answer holds), each column's cell
/// taken at its pointer: a missing value is a null, and so is an empty string in a column
/// that is not text (vendors send `""` for "no date", "no size").
pub fn records_from_items(columns: &[ItemColumn<'_>], items: &[Value]) -> Result<Records> {
    let schema: Vec<Column> = columns
        .iter()
        .map(|(name, kind, _)| Column::new(*name, *kind))
        .collect();
    let rows: Vec<Vec<Value>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(_, kind, pointer)| match item.pointer(pointer) {
                    None => Value::Null,
                    Some(Value::String(s)) if s.is_empty() && *kind != ColumnType::Text => {
                        Value::Null
                    }
                    Some(v) => v.clone(),
                })
                .collect()
        })
        .collect();
    records_from_rows(&schema, &rows)
}

fn bad(column: &Column, row: usize, cell: &Value, wanted: &str) -> Error {
    let mut text = cell.to_string();
    if text.len() > 64 {
        let cut = (0..=64)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    Error::new(
        ErrorKind::CorruptData,
        format!(
            "row {row}, column `{}`: {text} is not {wanted}",
            column.name
        ),
    )
}

fn build_column<'a>(
    column: &Column,
    cells: impl Iterator<Item = Result<&'a Value>>,
) -> Result<ArrayRef> {
    macro_rules! fill {
        ($builder:expr, $wanted:expr, $parse:expr) => {{
            let mut b = $builder;
            for (row, cell) in cells.enumerate() {
                let cell = cell?;
                if cell.is_null() {
                    b.append_null();
                    continue;
                }
                let parse: fn(&Value) -> Option<_> = $parse;
                match parse(cell) {
                    Some(v) => b.append_value(v),
                    None => return Err(bad(column, row, cell, $wanted)),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match column.kind {
        ColumnType::Text => fill!(StringBuilder::new(), "text", |v| Some(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })),
        ColumnType::Integer => fill!(Int64Builder::new(), "an integer", |v| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }),
        ColumnType::Float => fill!(Float64Builder::new(), "a number", |v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }),
        ColumnType::Boolean => fill!(BooleanBuilder::new(), "a boolean", |v| match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            Value::Number(n) => n.as_i64().map(|i| i != 0),
            _ => None,
        }),
        ColumnType::Date => fill!(Date32Builder::new(), "a date", |v| match v {
            Value::Number(n) => n.as_i64().and_then(|d| i32::try_from(d).ok()),
            Value::String(s) => parse_date(s.trim()),
            _ => None,
        }),
        ColumnType::Timestamp => fill!(
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            "a timestamp",
            |v| match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => parse_timestamp(s.trim()),
                _ => None,
            }
        ),
        ColumnType::Decimal { precision, scale } => {
            let mut b = Decimal128Builder::new();
            for (row, cell) in cells.enumerate() {
                let cell = cell?;
                let text = match cell {
                    Value::Null => {
                        b.append_null();
                        continue;
                    }
                    Value::String(s) => s.trim().to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => return Err(bad(column, row, cell, "a decimal")),
                };
                match parse_decimal(&text, scale) {
                    Some(v) => b.append_value(v),
                    None => return Err(bad(column, row, cell, "a decimal")),
                }
            }
            let array = b
                .finish()
                .with_precision_and_scale(precision.clamp(1, 38), scale)
                .map_err(|e| {
                    Error::new(
                        ErrorKind::CorruptData,
                        format!("column `{}`: {e}", column.name),
                    )
                })?;
            Arc::new(array) as ArrayRef
        }
    })
}

/// `YYYY-MM-DD` as days since 1970-01-01.
fn parse_date(text: &str) -> Option<i32> {
    if let Ok(days) = text.parse::<i32>() {
        return Some(days);
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

/// RFC 3339 (or `YYYY-MM-DD HH:MM:SS[.f]`, taken as UTC) as microseconds since the epoch.
fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    None
}

/// Decimal text (`-12.5`, `3`, `1.25e2` refused) as an integer of `scale` digits after the
/// point; more digits than the scale are refused rather than rounded.
fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let scale = u32::try_from(scale).ok()?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > scale as usize {
        return None;
    }
    let mut value: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    value = value.checked_mul(10i128.checked_pow(scale)?)?;
    if !fraction.is_empty() {
        let f: i128 = fraction.parse().ok()?;
        let pad = 10i128.checked_pow(scale - fraction.len() as u32)?;
        value = value.checked_add(f.checked_mul(pad)?)?;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_cells_become_typed_columns() {
        let columns = [
            Column::new("id", ColumnType::Integer),
            Column::new(
                "price",
                ColumnType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            Column::new("ok", ColumnType::Boolean),
            Column::new("day", ColumnType::Date),
            Column::new("at", ColumnType::Timestamp),
            Column::new("name", ColumnType::Text),
        ];
        let rows = vec![
            vec![
                json!("1"),
                json!("12.5"),
                json!("true"),
                json!("2024-05-01"),
                json!("2024-05-01T10:00:00Z"),
                json!("a"),
            ],
            vec![
                json!(2),
                json!(null),
                json!(false),
                json!(19844),
                json!(null),
                json!(null),
            ],
        ];
        let records = records_from_rows(&columns, &rows).unwrap();
        let out = records.to_json_rows().unwrap();
        assert_eq!(out[0]["id"], 1);
        assert_eq!(out[0]["price"], 12.5);
        assert_eq!(
            records.schema().field(1).data_type(),
            &DataType::Decimal128(10, 2)
        );
        assert_eq!(
            records.schema().field(4).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(out[0]["ok"], true);
        assert_eq!(out[0]["day"], "2024-05-01");
        assert_eq!(out[1]["day"], "2024-05-01");
        assert_eq!(out[1]["price"], Value::Null);
        assert_eq!(records.num_rows(), 2);
    }

    #[test]
    fn a_cell_that_does_not_fit_names_its_row_and_column() {
        let columns = [Column::new("id", ColumnType::Integer)];
        let err = records_from_rows(&columns, &[vec![json!("1")], vec![json!("x1")]]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptData);
        assert!(err.message().contains("row 1, column `id`"), "{err}");
        let err = records_from_rows(&columns, &[vec![]]).unwrap_err();
        assert!(err.message().contains("row 0 has 0 cells"), "{err}");
    }

    #[test]
    fn decimals_keep_their_digits_and_refuse_more_than_the_scale() {
        assert_eq!(parse_decimal("-12.5", 2), Some(-1250));
        assert_eq!(parse_decimal("3", 0), Some(3));
        assert_eq!(parse_decimal(".25", 2), Some(25));
        assert_eq!(parse_decimal("1.234", 2), None);
        assert_eq!(parse_decimal("1e2", 2), None);
        assert_eq!(parse_decimal("", 2), None);
        assert_eq!(
            parse_decimal("99999999999999999999999999999999999999999", 2),
            None
        );
    }

    #[test]
    fn items_are_read_at_their_pointers_and_empty_strings_are_nulls() {
        let columns = [
            ("id", ColumnType::Text, "/id"),
            ("size", ColumnType::Integer, "/size"),
            ("updated", ColumnType::Timestamp, "/updated"),
            ("owner", ColumnType::Text, "/owner/name"),
            ("note", ColumnType::Text, "/note"),
        ];
        let items =
            [json!({"id": "a", "size": "2", "updated": "", "owner": {"name": "ann"}, "note": ""})];
        let out = records_from_items(&columns, &items)
            .unwrap()
            .to_json_rows()
            .unwrap();
        assert_eq!(out[0]["size"], 2);
        assert_eq!(out[0]["updated"], Value::Null);
        assert_eq!(out[0]["owner"], "ann");
        assert_eq!(out[0]["note"], "", "an empty text stays text");
        let none = records_from_items(&columns, &[json!({})]).unwrap();
        assert_eq!(none.to_json_rows().unwrap()[0]["id"], Value::Null);
    }

    #[test]
    fn no_rows_still_have_a_schema() {
        let columns = [Column::new("id", ColumnType::Integer)];
        let records = records_from_rows(&columns, &[]).unwrap();
        assert_eq!(records.num_rows(), 0);
        assert_eq!(records.schema().field(0).name(), "id");
    }
}
