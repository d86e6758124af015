//! The rows a statement returns, turned into Arrow record batches as they arrive, bounded in
//! rows and bytes.
//!
//! ## Column types
//!
//! A column's Arrow type comes from its values in the first batch of rows; its declared
//! type decides only what those values cannot:
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
//! a column's type never depends on which rows a run happened to read. Later batches must fit
//! the types the first one fixed (integers fit a `Float64` column); a value that does not
//! (only possible where a column's values may differ in type from row to row, as in SQLite)
//! is the same error, naming both rows. PostgreSQL and MySQL columns have one type each, so
//! their results never hit it.
//!
//! ## Bounds
//!
//! [`RowBatcher`] holds at most one batch of rows as [`SqlValue`]s: `batch_rows` rows
//! ([`DEFAULT_BATCH_ROWS`] unless a call says otherwise), closed early at
//! [`MAX_BATCH_BYTES`] of values. [`ReadLimits`] bound the whole result: the row after
//! `max_rows`, or the row whose values pass `max_bytes`, is an error saying how to narrow
//! the query, never an unbounded allocation.
//!
//! ## Watermarks
//!
//! With a watermark column the statement is sorted by the database
//! ([`super::dialect::Dialect::order_by`]: `ORDER BY` the column, NULLs first), so a table
//! larger than memory can be read in order. The schema's metadata names the column
//! ([`WATERMARK_COLUMN_KEY`]) and holds its greatest value as text ([`WATERMARK_MAX_KEY`],
//! absent when no row has a non-NULL value): the last non-NULL value in the database's
//! order, which is what the next run's `WHERE column > :last_sync` compares with. Each batch
//! of a stream carries the greatest value up to and including itself, so a consumer can
//! record its progress batch by batch.

use std::collections::HashMap;
use std::sync::Arc;

use kernelize_core::arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use kernelize_core::arrow_array::{ArrayRef, RecordBatch};
use kernelize_core::arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use kernelize_core::{Error, ErrorKind, Result};

use super::value::SqlValue;

/// Schema metadata key naming the watermark column of an `extract`'s records.
pub const WATERMARK_COLUMN_KEY: &str = "kernelize.watermark.column";
/// Schema metadata key holding the greatest watermark value of an `extract`'s records, as
/// text (see [`SqlValue::to_text`]).
pub const WATERMARK_MAX_KEY: &str = "kernelize.watermark.max";

/// Rows per record batch when the call does not say (`batch_rows`).
pub const DEFAULT_BATCH_ROWS: usize = 10_000;

/// Most bytes of values one record batch holds, whatever `batch_rows` says: a batch is
/// closed early once its values pass this, so wide rows never make a batch unbounded.
pub const MAX_BATCH_BYTES: usize = 64 << 20;

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
    /// An instant (PostgreSQL's `timestamptz`, MySQL's `TIMESTAMP`).
    Timestamp,
    /// A date and time without a time zone (PostgreSQL's `timestamp`, MySQL's `DATETIME`).
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

/// How much of a result one call may read; one row or byte more is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Most rows.
    pub max_rows: usize,
    /// Most bytes of values (text and bytes by their length, other values by their width:
    /// 8 for numbers and instants, 4 for dates, 1 for booleans and NULLs).
    pub max_bytes: usize,
}

impl ReadLimits {
    /// No limit but the one each batch has ([`MAX_BATCH_BYTES`]).
    pub const UNLIMITED: ReadLimits = ReadLimits {
        max_rows: usize::MAX,
        max_bytes: usize::MAX,
    };
}

/// The size of `value` as [`ReadLimits::max_bytes`] counts it.
pub fn value_bytes(value: &SqlValue) -> usize {
    match value {
        SqlValue::Null | SqlValue::Bool(_) => 1,
        SqlValue::Int(_)
        | SqlValue::Float(_)
        | SqlValue::Timestamp(_)
        | SqlValue::LocalTimestamp(_) => 8,
        SqlValue::Date(_) => 4,
        SqlValue::Text(s) => s.len(),
        SqlValue::Bytes(b) => b.len(),
    }
}

/// Turns rows, as a statement returns them, into Arrow record batches of at most
/// `batch_rows` rows (and [`MAX_BATCH_BYTES`]), never holding more than one batch of rows
/// as [`SqlValue`]s; refuses the row past `max_rows` or `max_bytes`.
///
/// The first batch fixes each column's Arrow type (see the module docs); every later batch
/// must fit it. With a watermark column, each batch's schema metadata carries the column
/// and its greatest value so far; the rows are expected in the watermark's order (the
/// statement sorts them: [`super::dialect::Dialect::order_by`]), so the last non-NULL
/// value is the greatest, in the database's own ordering.
#[derive(Debug)]
pub struct RowBatcher {
    columns: Vec<ColumnInfo>,
    batch_rows: usize,
    limits: ReadLimits,
    watermark: Option<usize>,
    /// The Arrow types, fixed by the first batch.
    types: Option<Vec<DataType>>,
    /// Per column, the row (1-based) and SQL type name of its first non-NULL value, for
    /// messages.
    first_values: Vec<Option<(usize, &'static str)>>,
    pending: Vec<Vec<SqlValue>>,
    pending_bytes: usize,
    rows: usize,
    bytes: usize,
    watermark_max: Option<SqlValue>,
}

impl RowBatcher {
    /// A batcher for a result with `columns`; `watermark` must be one of them.
    pub fn new(
        columns: Vec<ColumnInfo>,
        watermark: Option<&str>,
        batch_rows: usize,
        limits: ReadLimits,
    ) -> Result<Self> {
        if batch_rows == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "`batch_rows` must be at least 1",
            ));
        }
        let watermark = match watermark {
            None => None,
            Some(column) => Some(watermark_index(&columns, column)?),
        };
        Ok(RowBatcher {
            first_values: vec![None; columns.len()],
            columns,
            batch_rows,
            limits,
            watermark,
            types: None,
            pending: Vec::new(),
            pending_bytes: 0,
            rows: 0,
            bytes: 0,
            watermark_max: None,
        })
    }

    /// The columns.
    pub fn columns(&self) -> &[ColumnInfo] {
        &self.columns
    }

    /// Rows taken so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Takes one row; a finished batch when this row completes one.
    pub fn push(&mut self, row: Vec<SqlValue>) -> Result<Option<RecordBatch>> {
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
        if self.rows >= self.limits.max_rows {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the query returned more than {} rows (`max_rows`); narrow it (a WHERE on a watermark, a LIMIT), raise `max_rows`, or read it batch by batch",
                    self.limits.max_rows
                ),
            )
            .with_context("max_rows", self.limits.max_rows)
            .set_permanent());
        }
        let size: usize = row.iter().map(value_bytes).sum();
        if self.bytes.saturating_add(size) > self.limits.max_bytes {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the query's values are more than {} bytes (`max_bytes`) by row {}; narrow it (fewer columns, a WHERE, a LIMIT), raise `max_bytes`, or read it batch by batch",
                    self.limits.max_bytes,
                    self.rows + 1
                ),
            )
            .with_context("max_bytes", self.limits.max_bytes)
            .set_permanent());
        }
        if let Some(index) = self.watermark
            && !matches!(row[index], SqlValue::Null)
        {
            self.watermark_max = Some(row[index].clone());
        }
        self.rows += 1;
        self.bytes += size;
        self.pending_bytes += size;
        self.pending.push(row);
        if self.pending.len() >= self.batch_rows || self.pending_bytes >= MAX_BATCH_BYTES {
            return self.flush().map(Some);
        }
        Ok(None)
    }

    /// The last batch (`None` when every row went out in full batches) and the result's
    /// schema, with the watermark's greatest value in its metadata.
    pub fn finish(mut self) -> Result<(Option<RecordBatch>, SchemaRef)> {
        let last = if self.pending.is_empty() {
            if self.types.is_none() {
                self.fix_types()?;
            }
            None
        } else {
            Some(self.flush()?)
        };
        let schema = self.schema()?;
        Ok((last, schema))
    }

    /// The greatest watermark value so far, as text.
    pub fn watermark_max(&self) -> Option<String> {
        self.watermark_max.as_ref().and_then(SqlValue::to_text)
    }

    /// The schema of the rows so far: fixed types, watermark metadata.
    fn schema(&self) -> Result<SchemaRef> {
        let types = self.types.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                "the result's types are not fixed yet",
            )
        })?;
        let mut metadata = HashMap::new();
        if let Some(index) = self.watermark {
            metadata.insert(
                WATERMARK_COLUMN_KEY.to_string(),
                self.columns[index].name.clone(),
            );
            if let Some(max) = self.watermark_max() {
                metadata.insert(WATERMARK_MAX_KEY.to_string(), max);
            }
        }
        let fields: Vec<Field> = self
            .columns
            .iter()
            .zip(types)
            .map(|(c, t)| Field::new(&c.name, t.clone(), true))
            .collect();
        Ok(Arc::new(Schema::new_with_metadata(fields, metadata)))
    }

    /// Fixes the column types from the pending rows (the first batch) and the declarations.
    fn fix_types(&mut self) -> Result<()> {
        let first_row = self.rows - self.pending.len() + 1;
        let mut types = Vec::with_capacity(self.columns.len());
        for (i, column) in self.columns.iter().enumerate() {
            types.push(column_type(column, &self.pending, i, first_row)?);
            self.first_values[i] = self
                .pending
                .iter()
                .enumerate()
                .find(|(_, r)| !matches!(r[i], SqlValue::Null))
                .map(|(n, r)| (first_row + n, r[i].type_name()));
        }
        self.types = Some(types);
        Ok(())
    }

    /// Turns the pending rows into a batch.
    fn flush(&mut self) -> Result<RecordBatch> {
        if self.types.is_none() {
            self.fix_types()?;
        } else {
            self.check_fits()?;
        }
        let schema = self.schema()?;
        let types = self.types.as_deref().unwrap_or_default();
        let columns = types
            .iter()
            .enumerate()
            .map(|(i, t)| build_column(t, &self.pending, i))
            .collect::<Vec<_>>();
        self.pending.clear();
        self.pending_bytes = 0;
        RecordBatch::try_new(schema, columns).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("cannot assemble a record batch: {e}"),
            )
        })
    }

    /// Checks that every pending value fits the type its column got from the first batch.
    fn check_fits(&self) -> Result<()> {
        let Some(types) = &self.types else {
            return Ok(());
        };
        let first_row = self.rows - self.pending.len() + 1;
        for (n, row) in self.pending.iter().enumerate() {
            for (i, (value, data_type)) in row.iter().zip(types).enumerate() {
                if fits(data_type, value) {
                    continue;
                }
                let column = &self.columns[i].name;
                let row_number = first_row + n;
                let message = match (data_type, self.first_values[i]) {
                    (DataType::Boolean, _) => format!(
                        "column `{column}` is read as BOOLEAN (declared so, and 0 or 1 in the first batch of rows), but row {row_number} holds a {} value other than 0 or 1; CAST it in the query, such as CAST({column} AS INTEGER)",
                        value.type_name()
                    ),
                    (_, Some((first, first_type))) => format!(
                        "column `{column}` mixes {first_type} and {} values (rows {first} and {row_number}; the first batch of rows fixes a column's type); CAST it to one type in the query, such as CAST({column} AS {})",
                        value.type_name(),
                        if first_type == "INTEGER" && value.type_name() == "REAL" {
                            "REAL"
                        } else {
                            "TEXT"
                        }
                    ),
                    (_, None) => format!(
                        "column `{column}` held only NULLs in the first batch of rows, so its declaration typed it {data_type}, but row {row_number} holds a {} value; CAST it in the query, such as CAST({column} AS TEXT)",
                        value.type_name()
                    ),
                };
                return Err(Error::new(ErrorKind::InvalidInput, message)
                    .with_context("column", column)
                    .with_context("row", row_number));
            }
        }
        Ok(())
    }
}

/// The index of the watermark column, or an error naming the columns there are.
fn watermark_index(columns: &[ColumnInfo], column: &str) -> Result<usize> {
    columns
        .iter()
        .position(|c| c.name == column)
        .ok_or_else(|| {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the watermark column `{column}` is not among the query's columns: {}",
                    names.join(", ")
                ),
            )
            .with_context("watermark", column)
        })
}

/// Checks that the watermark column `column` is among `columns` (before the statement is
/// sorted by it).
pub fn check_watermark(columns: &[ColumnInfo], column: &str) -> Result<()> {
    watermark_index(columns, column).map(|_| ())
}

/// Whether `value` can go into a column of `data_type`.
fn fits(data_type: &DataType, value: &SqlValue) -> bool {
    match (data_type, value) {
        (_, SqlValue::Null) => true,
        (DataType::Int64, SqlValue::Int(_)) => true,
        (DataType::Float64, SqlValue::Int(_) | SqlValue::Float(_)) => true,
        (DataType::Boolean, SqlValue::Bool(_)) => true,
        (DataType::Boolean, SqlValue::Int(i)) => *i == 0 || *i == 1,
        (DataType::Utf8, SqlValue::Text(_)) => true,
        (DataType::Binary, SqlValue::Bytes(_)) => true,
        (DataType::Timestamp(_, Some(_)), SqlValue::Timestamp(_)) => true,
        (DataType::Timestamp(_, None), SqlValue::LocalTimestamp(_)) => true,
        (DataType::Date32, SqlValue::Date(_)) => true,
        _ => false,
    }
}

/// The Arrow type of column `index`, from its values, else its declared type; `first_row`
/// is the number of `rows[0]` in the result, for messages.
fn column_type(
    column: &ColumnInfo,
    rows: &[Vec<SqlValue>],
    index: usize,
    first_row: usize,
) -> Result<DataType> {
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
            Some((row_a, first_value)) => {
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
                            first_row + row_a,
                            first_row + row,
                            column.name,
                        ),
                    )
                    .with_context("column", &column.name)
                    .with_context("row", first_row + row));
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

    /// All `rows` through a batcher of `batch_rows`: the batches and the final schema.
    fn read(
        columns: Vec<ColumnInfo>,
        rows: Vec<Vec<SqlValue>>,
        watermark: Option<&str>,
        batch_rows: usize,
    ) -> Result<(Vec<RecordBatch>, SchemaRef)> {
        let mut batcher = RowBatcher::new(
            columns,
            watermark,
            batch_rows,
            ReadLimits {
                max_rows: 100,
                max_bytes: 10_000,
            },
        )?;
        let mut batches = Vec::new();
        for r in rows {
            batches.extend(batcher.push(r)?);
        }
        let (last, schema) = batcher.finish()?;
        batches.extend(last);
        Ok((batches, schema))
    }

    #[test]
    fn types_come_from_values_then_declarations() {
        use SqlValue::*;
        let (_, schema) = read(
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
            None,
            10,
        )
        .unwrap();
        let types: Vec<DataType> = schema
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
        let err = read(
            vec![column("v", DeclaredType::Unknown)],
            vec![vec![Int(1)], vec![Null], vec![Text("x".into())]],
            None,
            10,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("column `v` mixes INTEGER and TEXT values (rows 1 and 3)"),
            "{text}"
        );
    }

    #[test]
    fn a_later_batch_that_does_not_fit_the_first_names_both_rows() {
        use SqlValue::*;
        let err = read(
            vec![column("v", DeclaredType::Unknown)],
            vec![vec![Int(1)], vec![Int(2)], vec![Float(2.5)]],
            None,
            2,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("column `v` mixes INTEGER and REAL values (rows 1 and 3"),
            "{text}"
        );
        assert!(text.contains("CAST(v AS REAL)"), "{text}");
        // Integers after floats fit a Float64 column.
        let (batches, _) = read(
            vec![column("v", DeclaredType::Unknown)],
            vec![vec![Float(0.5)], vec![Int(2)], vec![Int(3)]],
            None,
            2,
        )
        .unwrap();
        assert_eq!(batches.len(), 2);
    }

    #[test]
    fn more_rows_than_max_rows_are_refused() {
        let mut batcher = RowBatcher::new(
            vec![column("v", DeclaredType::Integer)],
            None,
            10,
            ReadLimits {
                max_rows: 2,
                max_bytes: usize::MAX,
            },
        )
        .unwrap();
        batcher.push(vec![SqlValue::Int(1)]).unwrap();
        batcher.push(vec![SqlValue::Int(2)]).unwrap();
        let err = batcher.push(vec![SqlValue::Int(3)]).unwrap_err();
        assert!(err.to_string().contains("more than 2 rows"), "{err}");
    }

    #[test]
    fn more_bytes_than_max_bytes_are_refused() {
        let mut batcher = RowBatcher::new(
            vec![column("v", DeclaredType::Text)],
            None,
            10,
            ReadLimits {
                max_rows: usize::MAX,
                max_bytes: 10,
            },
        )
        .unwrap();
        batcher.push(vec![SqlValue::Text("12345".into())]).unwrap();
        batcher.push(vec![SqlValue::Text("12345".into())]).unwrap();
        let err = batcher.push(vec![SqlValue::Text("1".into())]).unwrap_err();
        assert!(err.to_string().contains("more than 10 bytes"), "{err}");
        assert_eq!(err.context_value("max_bytes"), Some("10"));
    }

    #[test]
    fn watermark_reports_the_last_value_and_each_batch_its_progress() {
        use SqlValue::*;
        let (batches, schema) = read(
            vec![
                column("id", DeclaredType::Integer),
                column("at", DeclaredType::Text),
            ],
            vec![
                vec![Int(2), Null],
                vec![Int(3), Text("2026-01-01T00:00:00Z".into())],
                vec![Int(1), Text("2026-01-03T00:00:00Z".into())],
            ],
            Some("at"),
            2,
        )
        .unwrap();
        let meta = schema.metadata();
        assert_eq!(
            meta.get(WATERMARK_COLUMN_KEY).map(String::as_str),
            Some("at")
        );
        assert_eq!(
            meta.get(WATERMARK_MAX_KEY).map(String::as_str),
            Some("2026-01-03T00:00:00Z")
        );
        assert_eq!(
            batches[0].schema().metadata().get(WATERMARK_MAX_KEY),
            Some(&"2026-01-01T00:00:00Z".to_string())
        );
        let ids: Vec<i64> = batches[1]
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(ids, vec![1]);
    }

    #[test]
    fn an_unknown_watermark_column_names_the_columns() {
        let err = RowBatcher::new(
            vec![column("id", DeclaredType::Integer)],
            Some("at"),
            10,
            ReadLimits::UNLIMITED,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("watermark column `at` is not among the query's columns: id"),
            "{err}"
        );
    }

    #[test]
    fn rows_are_split_into_batches_of_batch_rows() {
        let rows = (0..25).map(|i| vec![SqlValue::Int(i)]).collect();
        let (batches, _) = read(vec![column("v", DeclaredType::Integer)], rows, None, 10).unwrap();
        let sizes: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
    }
}
