//! The rows a statement returned, bounded in number, and their conversion to Arrow records.
//!
//! ## Column types
//!
//! A column's Arrow type comes from its values; its declared type decides only what the values
//! cannot:
//!
//! | values (NULLs aside)           | Arrow type                                            |
//! |--------------------------------|-------------------------------------------------------|
//! | integers only                  | `Int64` (`Boolean` when declared `BOOLEAN` and all 0/1) |
//! | integers and floats            | `Float64` (integers beyond 2^53 lose precision)       |
//! | floats only                    | `Float64`                                             |
//! | text only                      | `Utf8`                                                |
//! | bytes only                     | `Binary`                                              |
//! | booleans / timestamps / dates  | `Boolean` / `Timestamp(µs, UTC)` / `Date32`           |
//! | timestamps without a time zone | `Timestamp(µs)` (no time zone)                        |
//! | none (no rows, or all NULL)    | from the declared type: `INTEGER`→`Int64`, `REAL`→`Float64`, `TEXT`→`Utf8`, `BLOB`→`Binary`, `BOOLEAN`→`Boolean`, `DATE`→`Date32`, timestamps as above, else `Utf8` |
//! | any other mix (text and integers, ...) | an error naming the column and two rows that disagree; `CAST` the column in the query |
//!
//! Every field is nullable. A mix is an error rather than a silent conversion to text so that
//! a column's type never depends on which rows a run happened to read.
//!
//! ## Bounds
//!
//! [`ResultSet::push`] refuses the row after `max_rows`, so a query can never hold more than
//! that many rows in memory; the error says how to narrow the query.
//!
//! ## Watermarks
//!
//! [`ResultSet::into_records`] with a watermark column sorts the rows by it (stable, in the
//! order of [`SqlValue::sql_cmp`]: NULLs first) and records in the schema's metadata the
//! column ([`WATERMARK_COLUMN_KEY`]) and its greatest value as text ([`WATERMARK_MAX_KEY`],
//! absent when no row has a non-NULL value).

use std::collections::HashMap;
use std::sync::Arc;

use kernelize_core::arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use kernelize_core::arrow_array::{ArrayRef, RecordBatch};
use kernelize_core::arrow_schema::{DataType, Field, Schema, TimeUnit};
use kernelize_core::{Error, ErrorKind, Records, Result};

use super::value::SqlValue;

/// Schema metadata key naming the watermark column of an `extract`'s records.
pub const WATERMARK_COLUMN_KEY: &str = "kernelize.watermark.column";
/// Schema metadata key holding the greatest watermark value of an `extract`'s records, as
/// text (see [`SqlValue::to_text`]).
pub const WATERMARK_MAX_KEY: &str = "kernelize.watermark.max";

/// Rows per record batch of a result.
const BATCH_ROWS: usize = 8192;

/// What a database says a result column is declared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeclaredType {
    /// An integer type.
    Integer,
    /// A floating-point type.
    Real,
    /// A text type.
    Text,
    /// A bytes type.
    Blob,
    /// A boolean type.
    Boolean,
    /// A calendar date type.
    Date,
    /// An instant (PostgreSQL's `timestamptz`).
    Timestamp,
    /// A date and time without a time zone (PostgreSQL's `timestamp`).
    LocalTimestamp,
    /// No declared type (an expression), or one without a fixed storage (SQLite's
    /// `NUMERIC`, `DATETIME`).
    Unknown,
}

/// One column of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Its name.
    pub name: String,
    /// Its declared type.
    pub declared: DeclaredType,
}

/// The rows a statement returned, at most `max_rows` of them.
#[derive(Debug, Clone)]
pub struct ResultSet {
    columns: Vec<ColumnInfo>,
    rows: Vec<Vec<SqlValue>>,
    max_rows: usize,
}

impl ResultSet {
    /// An empty result with these columns, refusing more than `max_rows` rows.
    pub fn new(columns: Vec<ColumnInfo>, max_rows: usize) -> Self {
        ResultSet {
            columns,
            rows: Vec::new(),
            max_rows,
        }
    }

    /// The columns.
    pub fn columns(&self) -> &[ColumnInfo] {
        &self.columns
    }

    /// The rows read so far.
    pub fn rows(&self) -> &[Vec<SqlValue>] {
        &self.rows
    }

    /// Adds a row; an error once `max_rows` rows are held, or when the row's width is wrong.
    pub fn push(&mut self, row: Vec<SqlValue>) -> Result<()> {
        if self.rows.len() >= self.max_rows {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the query returned more than {} rows (`max_rows`); narrow it (a WHERE on a watermark, a LIMIT) or raise `max_rows`",
                    self.max_rows
                ),
            )
            .with_context("max_rows", self.max_rows)
            .set_permanent());
        }
        if row.len() != self.columns.len() {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "a row has {} values for {} columns",
                    row.len(),
                    self.columns.len()
                ),
            ));
        }
        self.rows.push(row);
        Ok(())
    }

    /// Converts the rows to records, sorted by `watermark` when one is named (see the module
    /// docs for the types and the metadata).
    pub fn into_records(mut self, watermark: Option<&str>) -> Result<Records> {
        let mut metadata = HashMap::new();
        if let Some(column) = watermark {
            let index = self
                .columns
                .iter()
                .position(|c| c.name == column)
                .ok_or_else(|| {
                    let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "the watermark column `{column}` is not among the query's columns: {}",
                            names.join(", ")
                        ),
                    )
                    .with_context("watermark", column)
                })?;
            self.rows.sort_by(|a, b| a[index].sql_cmp(&b[index]));
            metadata.insert(WATERMARK_COLUMN_KEY.to_string(), column.to_string());
            if let Some(max) = self.rows.last().and_then(|r| r[index].to_text()) {
                metadata.insert(WATERMARK_MAX_KEY.to_string(), max);
            }
        }
        let types = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| column_type(c, &self.rows, i))
            .collect::<Result<Vec<_>>>()?;
        let fields: Vec<Field> = self
            .columns
            .iter()
            .zip(&types)
            .map(|(c, t)| Field::new(&c.name, t.clone(), true))
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        let mut batches = Vec::with_capacity(self.rows.len().div_ceil(BATCH_ROWS));
        let mut rows = self.rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<SqlValue>> = rows.by_ref().take(BATCH_ROWS).collect();
            let columns = types
                .iter()
                .enumerate()
                .map(|(i, t)| build_column(t, &chunk, i))
                .collect::<Vec<_>>();
            let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("cannot assemble a record batch: {e}"),
                )
            })?;
            batches.push(batch);
        }
        Records::new(schema, batches)
    }
}

/// The Arrow type of column `index`, from its values, else its declared type.
fn column_type(column: &ColumnInfo, rows: &[Vec<SqlValue>], index: usize) -> Result<DataType> {
    let mut first: Option<(usize, &SqlValue)> = None;
    let mut saw_int = false;
    let mut saw_float = false;
    let mut all_bits = true;
    for (row, values) in rows.iter().enumerate() {
        let value = &values[index];
        let kind = match value {
            SqlValue::Null => continue,
            SqlValue::Int(i) => {
                saw_int = true;
                all_bits &= *i == 0 || *i == 1;
                "number"
            }
            SqlValue::Float(_) => {
                saw_float = true;
                "number"
            }
            other => other.type_name(),
        };
        match first {
            None => first = Some((row, value)),
            Some((first_row, first_value)) => {
                let first_kind = match first_value {
                    SqlValue::Int(_) | SqlValue::Float(_) => "number",
                    other => other.type_name(),
                };
                if first_kind != kind {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "column `{}` mixes {} and {} values (rows {} and {}); CAST it to one type in the query, such as CAST({} AS TEXT)",
                            column.name,
                            first_value.type_name(),
                            value.type_name(),
                            first_row + 1,
                            row + 1,
                            column.name,
                        ),
                    )
                    .with_context("column", &column.name)
                    .with_context("row", row + 1));
                }
            }
        }
    }
    Ok(match first.map(|(_, v)| v) {
        Some(SqlValue::Int(_) | SqlValue::Float(_)) => {
            if saw_float {
                DataType::Float64
            } else if saw_int && all_bits && column.declared == DeclaredType::Boolean {
                DataType::Boolean
            } else {
                DataType::Int64
            }
        }
        Some(SqlValue::Bool(_)) => DataType::Boolean,
        Some(SqlValue::Text(_)) => DataType::Utf8,
        Some(SqlValue::Bytes(_)) => DataType::Binary,
        Some(SqlValue::Timestamp(_)) => timestamp_type(),
        Some(SqlValue::Date(_)) => DataType::Date32,
        Some(SqlValue::LocalTimestamp(_)) => local_timestamp_type(),
        Some(SqlValue::Null) | None => match column.declared {
            DeclaredType::Integer => DataType::Int64,
            DeclaredType::Real => DataType::Float64,
            DeclaredType::Blob => DataType::Binary,
            DeclaredType::Boolean => DataType::Boolean,
            DeclaredType::Date => DataType::Date32,
            DeclaredType::Timestamp => timestamp_type(),
            DeclaredType::LocalTimestamp => local_timestamp_type(),
            DeclaredType::Text | DeclaredType::Unknown => DataType::Utf8,
        },
    })
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn local_timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// Column `index` of `rows` as an array of type `data_type` (which [`column_type`] chose, so
/// every value fits it).
fn build_column(data_type: &DataType, rows: &[Vec<SqlValue>], index: usize) -> ArrayRef {
    let values = rows.iter().map(|r| &r[index]);
    match data_type {
        DataType::Int64 => {
            let mut b = Int64Builder::with_capacity(rows.len());
            for v in values {
                b.append_option(match v {
                    SqlValue::Int(i) => Some(*i),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        DataType::Float64 => {
            let mut b = Float64Builder::with_capacity(rows.len());
            for v in values {
                b.append_option(match v {
                    SqlValue::Int(i) => Some(*i as f64),
                    SqlValue::Float(f) => Some(*f),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        DataType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(rows.len());
            for v in values {
                b.append_option(match v {
                    SqlValue::Bool(x) => Some(*x),
                    SqlValue::Int(i) => Some(*i != 0),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::new();
            for v in values {
                match v {
                    SqlValue::Bytes(x) => b.append_value(x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Timestamp(_, None) => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len());
            for v in values {
                b.append_option(match v {
                    SqlValue::LocalTimestamp(t) => Some(t.and_utc().timestamp_micros()),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        DataType::Timestamp(..) => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
            for v in values {
                b.append_option(match v {
                    SqlValue::Timestamp(t) => Some(t.timestamp_micros()),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        DataType::Date32 => {
            let mut b = Date32Builder::with_capacity(rows.len());
            let epoch = chrono::NaiveDate::default();
            for v in values {
                b.append_option(match v {
                    SqlValue::Date(d) => i32::try_from((*d - epoch).num_days()).ok(),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringBuilder::new();
            for v in values {
                match v {
                    SqlValue::Text(s) => b.append_value(s),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelize_core::arrow_array::cast::AsArray;
    use kernelize_core::arrow_array::types::Int64Type;

    fn column(name: &str, declared: DeclaredType) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            declared,
        }
    }

    fn set(columns: Vec<ColumnInfo>, rows: Vec<Vec<SqlValue>>) -> ResultSet {
        let mut set = ResultSet::new(columns, 100);
        for r in rows {
            set.push(r).unwrap();
        }
        set
    }

    #[test]
    fn types_come_from_values_then_declarations() {
        use SqlValue::*;
        let records = set(
            vec![
                column("i", DeclaredType::Unknown),
                column("f", DeclaredType::Integer),
                column("t", DeclaredType::Unknown),
                column("b", DeclaredType::Unknown),
                column("n", DeclaredType::Unknown),
                column("ni", DeclaredType::Integer),
                column("flag", DeclaredType::Boolean),
            ],
            vec![
                vec![
                    Int(1),
                    Int(1),
                    Text("a".into()),
                    Bytes(vec![1]),
                    Null,
                    Null,
                    Int(1),
                ],
                vec![Null, Float(2.5), Null, Null, Null, Null, Int(0)],
            ],
        )
        .into_records(None)
        .unwrap();
        let types: Vec<DataType> = records
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                DataType::Int64,
                DataType::Float64,
                DataType::Utf8,
                DataType::Binary,
                DataType::Utf8,
                DataType::Int64,
                DataType::Boolean
            ]
        );
    }

    #[test]
    fn mixed_text_and_numbers_is_an_error_naming_the_rows() {
        use SqlValue::*;
        let err = set(
            vec![column("v", DeclaredType::Unknown)],
            vec![vec![Int(1)], vec![Null], vec![Text("x".into())]],
        )
        .into_records(None)
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("column `v` mixes INTEGER and TEXT values (rows 1 and 3)"),
            "{text}"
        );
    }

    #[test]
    fn more_rows_than_max_rows_are_refused() {
        let mut set = ResultSet::new(vec![column("v", DeclaredType::Integer)], 2);
        set.push(vec![SqlValue::Int(1)]).unwrap();
        set.push(vec![SqlValue::Int(2)]).unwrap();
        let err = set.push(vec![SqlValue::Int(3)]).unwrap_err();
        assert!(err.to_string().contains("more than 2 rows"), "{err}");
    }

    #[test]
    fn watermark_sorts_and_reports_the_maximum() {
        use SqlValue::*;
        let records = set(
            vec![
                column("id", DeclaredType::Integer),
                column("at", DeclaredType::Text),
            ],
            vec![
                vec![Int(1), Text("2026-01-03T00:00:00Z".into())],
                vec![Int(2), Null],
                vec![Int(3), Text("2026-01-01T00:00:00Z".into())],
            ],
        )
        .into_records(Some("at"))
        .unwrap();
        let ids: Vec<i64> = records.batches()[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(ids, vec![2, 3, 1]);
        let meta = records.schema().metadata();
        assert_eq!(
            meta.get(WATERMARK_COLUMN_KEY).map(String::as_str),
            Some("at")
        );
        assert_eq!(
            meta.get(WATERMARK_MAX_KEY).map(String::as_str),
            Some("2026-01-03T00:00:00Z")
        );
    }

    #[test]
    fn rows_are_split_into_batches() {
        let mut set = ResultSet::new(vec![column("v", DeclaredType::Integer)], 20_000);
        for i in 0..(BATCH_ROWS as i64 + 5) {
            set.push(vec![SqlValue::Int(i)]).unwrap();
        }
        let records = set.into_records(None).unwrap();
        assert_eq!(records.batches().len(), 2);
        assert_eq!(records.num_rows(), BATCH_ROWS + 5);
    }
}
