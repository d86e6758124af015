//! Planning a load: the statements that create, clear and fill a table from Arrow records,
//! and the values of each row.
//!
//! [`LoadPlan`] is pure: it writes SQL in a [`Dialect`] and reads values out of record
//! batches; [`super::actions::load`] runs it in one transaction through a backend.
//!
//! ## Tables created from records
//!
//! Each column gets the dialect's type for how its Arrow type is stored ([`stored_as`]):
//! booleans, integers of any width (an unsigned value beyond `i64` is an error), floats,
//! text (strings, decimals and times of day as text), bytes, timestamps (written as UTC) and
//! dates. Nested types (lists, structs, maps) are refused: flatten them first. When a key is
//! given, its columns are `NOT NULL` and the table has `UNIQUE (key)`, which the database
//! backs with a unique index and which `upsert`'s `ON CONFLICT (key)` needs.
//!
//! ## Statements
//!
//! Rows go in multi-row `INSERT`s of as many rows as the dialect's bound-value limit allows
//! (at most [`MAX_ROWS_PER_INSERT`], and fewer once their values pass the dialect's
//! `max_statement_bytes`). An upsert adds `ON CONFLICT (key) DO UPDATE SET` every other
//! column `= excluded.column` (`DO NOTHING` when every column is in the key), or MySQL's
//! `ON DUPLICATE KEY UPDATE column = VALUES(column)`. PostgreSQL may instead `COPY` the rows
//! ([`LoadMethod::Copy`]).
//!
//! ## Identifiers
//!
//! The table is `name` or `schema.name`; every name, the columns' included, is quoted (the
//! quote character doubled inside), so any character but control characters is allowed. An
//! empty name, a name with a control character, one longer than the dialect allows, and a
//! table with more than one `.` are refused before anything runs.

use kernelize_core::arrow_array::cast::AsArray;
use kernelize_core::arrow_array::types::{Date32Type, Float64Type, Int64Type};
use kernelize_core::arrow_array::{Array, ArrayRef, RecordBatch};
use kernelize_core::arrow_schema::{DataType, Schema, TimeUnit};
use kernelize_core::{Error, ErrorKind, Result};

use super::dialect::{Dialect, StoredAs, UpsertSyntax};
use super::value::SqlValue;

/// Most rows one `INSERT` carries, whatever the bound-value limit allows.
pub const MAX_ROWS_PER_INSERT: usize = 1000;

/// How a load treats the rows already in the table.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// Add the rows (a row that breaks a unique key fails the whole load).
    #[default]
    Append,
    /// Insert new rows and update the rows whose `key` already exists.
    Upsert,
    /// Delete every row of the table, then insert (the table's definition and indexes stay).
    Replace,
}

/// How a load sends its rows.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LoadMethod {
    /// Multi-row `INSERT`s with bound values (every database).
    #[default]
    Insert,
    /// PostgreSQL's `COPY table (columns) FROM STDIN` in text format, in the load's
    /// transaction; an upsert copies into a temporary table, then runs one `INSERT ...
    /// SELECT ... ON CONFLICT`. Other databases refuse it.
    Copy,
}

/// A table name, `name` or `schema.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// The schema (SQLite: `main`, `temp` or an attached database), if given.
    pub schema: Option<String>,
    /// The table's own name.
    pub name: String,
}

impl TableName {
    /// Parses and checks `text` (see the module docs for what is refused).
    pub fn parse(text: &str, dialect: &Dialect) -> Result<Self> {
        let parts: Vec<&str> = text.split('.').collect();
        let (schema, name) = match parts.as_slice() {
            [name] => (None, *name),
            [schema, name] => (Some(*schema), *name),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "table `{text}` has more than one `.`; write `table` or `schema.table`"
                    ),
                )
                .with_context("table", text));
            }
        };
        if let Some(schema) = schema {
            check_identifier("schema name", schema, dialect)
                .map_err(|e| e.with_context("table", text))?;
        }
        check_identifier("table name", name, dialect).map_err(|e| e.with_context("table", text))?;
        Ok(TableName {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        })
    }

    /// The name quoted for SQL: `"schema"."name"` or `"name"`.
    pub fn quoted(&self, dialect: &Dialect) -> String {
        match &self.schema {
            Some(schema) => format!(
                "{}.{}",
                dialect.quote_identifier(schema),
                dialect.quote_identifier(&self.name)
            ),
            None => dialect.quote_identifier(&self.name),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Checks that `name` can be an identifier: not empty, no control characters, not longer
/// than the dialect allows. `what` names it in the error (`column name`).
pub fn check_identifier(what: &str, name: &str, dialect: &Dialect) -> Result<()> {
    let problem = if name.is_empty() {
        Some("is empty".to_string())
    } else if let Some(c) = name.chars().find(|c| c.is_control()) {
        Some(format!("contains the control character {c:?}"))
    } else if name.chars().count() > dialect.max_identifier_len {
        Some(format!(
            "is longer than {} characters",
            dialect.max_identifier_len
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{what} {name:?} {problem}"),
        )),
    }
}

/// How values of an Arrow type are stored, and the Arrow type they are read as first;
/// `None` for types a load cannot store (nested types, intervals, durations).
pub fn stored_as(data_type: &DataType) -> Option<(StoredAs, DataType)> {
    use DataType as T;
    Some(match data_type {
        T::Null => (StoredAs::Text, T::Null),
        T::Boolean => (StoredAs::Boolean, T::Boolean),
        T::Int8 | T::Int16 | T::Int32 | T::Int64 | T::UInt8 | T::UInt16 | T::UInt32 | T::UInt64 => {
            (StoredAs::Integer, T::Int64)
        }
        T::Float16 | T::Float32 | T::Float64 => (StoredAs::Real, T::Float64),
        T::Utf8
        | T::LargeUtf8
        | T::Utf8View
        | T::Decimal32(..)
        | T::Decimal64(..)
        | T::Decimal128(..)
        | T::Decimal256(..)
        | T::Time32(_)
        | T::Time64(_) => (StoredAs::Text, T::Utf8),
        T::Binary | T::LargeBinary | T::BinaryView | T::FixedSizeBinary(_) => {
            (StoredAs::Blob, T::Binary)
        }
        T::Timestamp(..) => (StoredAs::Timestamp, T::Int64),
        T::Date32 | T::Date64 => (StoredAs::Date, T::Date32),
        T::Dictionary(_, values) => stored_as(values)?,
        _ => return None,
    })
}

/// One column of a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadColumn {
    /// Its name, as in the records.
    pub name: String,
    /// How its values are stored.
    pub stored_as: StoredAs,
}

/// The statements of one load, and how to read its rows.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    dialect: &'static Dialect,
    table: TableName,
    columns: Vec<LoadColumn>,
    mode: LoadMode,
    key: Vec<String>,
    rows_per_insert: usize,
}

impl LoadPlan {
    /// Plans loading records of `schema` into `table`.
    ///
    /// Errors: a bad table or column name, two columns whose names differ only in case
    /// (where the dialect ignores case), a column type that cannot be stored, `upsert`
    /// without a key, a key column the records do not have, a key named twice.
    pub fn new(
        dialect: &'static Dialect,
        table: &str,
        mode: LoadMode,
        key: &[String],
        schema: &Schema,
    ) -> Result<Self> {
        let table = TableName::parse(table, dialect)?;
        if schema.fields().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the input records have no columns to load",
            )
            .with_context("table", &table));
        }
        let mut columns: Vec<LoadColumn> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let name = field.name();
            check_identifier("column name", name, dialect)
                .map_err(|e| e.with_context("table", &table))?;
            if let Some(twin) = columns
                .iter()
                .find(|c| same_identifier(dialect, &c.name, name))
            {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the input has columns `{}` and `{name}`, which {} takes for one",
                        twin.name, dialect.name
                    ),
                )
                .with_context("table", &table));
            }
            let (stored, _) = stored_as(field.data_type()).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "column `{name}` has Arrow type {}, which a load cannot store; flatten or cast it first",
                        field.data_type()
                    ),
                )
                .with_context("table", &table)
                .with_context("column", name)
            })?;
            columns.push(LoadColumn {
                name: name.clone(),
                stored_as: stored,
            });
        }
        if mode == LoadMode::Upsert && key.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "mode `upsert` needs `key`: the columns that identify a row",
            )
            .with_context("table", &table));
        }
        for (i, k) in key.iter().enumerate() {
            if !columns.iter().any(|c| &c.name == k) {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "key column `{k}` is not among the input's columns: {}",
                        names.join(", ")
                    ),
                )
                .with_context("table", &table)
                .with_context("column", k));
            }
            if key[..i].contains(k) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("key column `{k}` is named twice"),
                )
                .with_context("table", &table));
            }
        }
        let rows_per_insert = (dialect.max_bind_values / columns.len()).min(MAX_ROWS_PER_INSERT);
        if rows_per_insert == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} columns are more than one {} statement can bind ({})",
                    columns.len(),
                    dialect.name,
                    dialect.max_bind_values
                ),
            )
            .with_context("table", &table));
        }
        Ok(LoadPlan {
            dialect,
            table,
            columns,
            mode,
            key: key.to_vec(),
            rows_per_insert,
        })
    }

    /// The target table.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The dialect the statements are written in.
    pub fn dialect(&self) -> &'static Dialect {
        self.dialect
    }

    /// The key columns (empty without a key).
    pub fn key(&self) -> &[String] {
        &self.key
    }

    /// The columns loaded, in the records' order.
    pub fn columns(&self) -> &[LoadColumn] {
        &self.columns
    }

    /// The mode.
    pub fn mode(&self) -> LoadMode {
        self.mode
    }

    /// Rows per `INSERT` statement.
    pub fn rows_per_insert(&self) -> usize {
        self.rows_per_insert
    }

    /// `CREATE TABLE` for the records' columns, with `UNIQUE (key)` when there is a key.
    pub fn create_table_sql(&self) -> String {
        let d = self.dialect;
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let not_null = if self.key.contains(&c.name) {
                    " NOT NULL"
                } else {
                    ""
                };
                let column_type = if self.key.contains(&c.name) {
                    d.key_column_type
                } else {
                    d.column_type
                };
                format!(
                    "{} {}{not_null}",
                    d.quote_identifier(&c.name),
                    column_type(c.stored_as)
                )
            })
            .collect();
        if !self.key.is_empty() {
            parts.push(format!("UNIQUE ({})", self.quoted_list(&self.key)));
        }
        format!(
            "CREATE TABLE {} ({}){}",
            self.table.quoted(d),
            parts.join(", "),
            d.create_table_options
        )
    }

    /// `DELETE FROM` the table, for `replace`.
    pub fn clear_sql(&self) -> String {
        format!("DELETE FROM {}", self.table.quoted(self.dialect))
    }

    /// The `INSERT` of `rows` rows (with the upsert clause in `upsert` mode).
    pub fn insert_sql(&self, rows: usize) -> String {
        let d = self.dialect;
        let width = self.columns.len();
        let names: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            self.table.quoted(d),
            self.quoted_list(&names)
        );
        for row in 0..rows {
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for col in 0..width {
                if col > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&d.bulk_slot(row * width + col));
            }
            sql.push(')');
        }
        if self.mode == LoadMode::Upsert {
            sql.push_str(&self.upsert_clause());
        }
        sql
    }

    /// What follows the `VALUES` (or `SELECT`) of an upsert's `INSERT`, with a leading
    /// space: `ON CONFLICT (key) DO UPDATE SET ...` or `ON DUPLICATE KEY UPDATE ...`.
    pub fn upsert_clause(&self) -> String {
        let d = self.dialect;
        let others: Vec<&LoadColumn> = self
            .columns
            .iter()
            .filter(|c| !self.key.contains(&c.name))
            .collect();
        match d.upsert {
            UpsertSyntax::OnConflict => {
                let mut sql = format!(" ON CONFLICT ({}) ", self.quoted_list(&self.key));
                if others.is_empty() {
                    sql.push_str("DO NOTHING");
                } else {
                    let updates: Vec<String> = others
                        .iter()
                        .map(|c| {
                            let q = d.quote_identifier(&c.name);
                            format!("{q} = excluded.{q}")
                        })
                        .collect();
                    sql.push_str("DO UPDATE SET ");
                    sql.push_str(&updates.join(", "));
                }
                sql
            }
            UpsertSyntax::OnDuplicateKeyUpdate => {
                // Every column in the key: a no-op update keeps the row (INSERT IGNORE would
                // ignore other errors too).
                let updated: Vec<&str> = if others.is_empty() {
                    self.key.iter().take(1).map(String::as_str).collect()
                } else {
                    others.iter().map(|c| c.name.as_str()).collect()
                };
                let updates: Vec<String> = updated
                    .iter()
                    .map(|name| {
                        let q = d.quote_identifier(name);
                        if others.is_empty() {
                            format!("{q} = {q}")
                        } else {
                            format!("{q} = VALUES({q})")
                        }
                    })
                    .collect();
                format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", "))
            }
        }
    }

    /// The rows a statement that sent `rows_sent` rows wrote, from the database's count of
    /// `affected` rows: the count as it is, except for MySQL's upserts, which count an
    /// updated row twice and an unchanged one once or not at all; every row sent there was
    /// inserted or matched, so that is what is reported.
    pub fn rows_written(&self, rows_sent: usize, affected: u64) -> u64 {
        if self.mode == LoadMode::Upsert
            && self.dialect.upsert == UpsertSyntax::OnDuplicateKeyUpdate
        {
            rows_sent as u64
        } else {
            affected
        }
    }

    /// Checks that the existing table has every column of the records; `existing` are its
    /// column names.
    pub fn check_existing_columns(&self, existing: &[String]) -> Result<()> {
        for c in &self.columns {
            if !existing
                .iter()
                .any(|e| same_identifier(self.dialect, e, &c.name))
            {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "table `{}` has no column `{}` (its columns: {}); add it, or select the columns to load first",
                        self.table,
                        c.name,
                        existing.join(", ")
                    ),
                )
                .with_context("table", &self.table)
                .with_context("column", &c.name));
            }
        }
        Ok(())
    }

    /// The records' columns that `existing` (the table's column names) lacks.
    pub fn missing_columns(&self, existing: &[String]) -> Vec<&LoadColumn> {
        self.columns
            .iter()
            .filter(|c| {
                !existing
                    .iter()
                    .any(|e| same_identifier(self.dialect, e, &c.name))
            })
            .collect()
    }

    /// `ALTER TABLE .. ADD COLUMN` for `column`, nullable, with the type a created table
    /// would give it.
    pub fn add_column_sql(&self, column: &LoadColumn) -> String {
        let d = self.dialect;
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            self.table.quoted(d),
            d.quote_identifier(&column.name),
            (d.column_type)(column.stored_as)
        )
    }

    /// Readers of a batch's columns, in load order.
    pub fn cells(&self, batch: &RecordBatch) -> Result<Vec<Cells>> {
        batch
            .columns()
            .iter()
            .zip(&self.columns)
            .map(|(array, column)| {
                Cells::new(array).map_err(|e| {
                    e.with_context("table", &self.table)
                        .with_context("column", &column.name)
                })
            })
            .collect()
    }

    /// `names` quoted and joined with `, `.
    pub fn quoted_list(&self, names: &[String]) -> String {
        names
            .iter()
            .map(|n| self.dialect.quote_identifier(n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn same_identifier(dialect: &Dialect, a: &str, b: &str) -> bool {
    if dialect.case_insensitive_identifiers {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// The values of one column of one batch, read as [`SqlValue`]s.
#[derive(Debug)]
pub struct Cells {
    array: ArrayRef,
    timestamp_unit: Option<TimeUnit>,
}

impl Cells {
    /// A reader of `array`, cast to the type [`stored_as`] reads it as. An unsigned value
    /// beyond `i64` is an error.
    pub fn new(array: &ArrayRef) -> Result<Self> {
        let (_, read_as) = stored_as(array.data_type()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("Arrow type {} cannot be stored", array.data_type()),
            )
        })?;
        let timestamp_unit = match array.data_type() {
            DataType::Timestamp(unit, _) => Some(*unit),
            DataType::Dictionary(_, values) => match values.as_ref() {
                DataType::Timestamp(unit, _) => Some(*unit),
                _ => None,
            },
            _ => None,
        };
        let options = arrow_cast::CastOptions {
            safe: false,
            ..Default::default()
        };
        let array = arrow_cast::cast_with_options(array, &read_as, &options).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot read {} as {read_as}: {e}", array.data_type()),
            )
        })?;
        Ok(Cells {
            array,
            timestamp_unit,
        })
    }

    /// The value at `row`.
    pub fn get(&self, row: usize) -> Result<SqlValue> {
        let a = &self.array;
        if a.is_null(row) {
            return Ok(SqlValue::Null);
        }
        Ok(match a.data_type() {
            DataType::Boolean => SqlValue::Bool(a.as_boolean().value(row)),
            DataType::Int64 => {
                let v = a.as_primitive::<Int64Type>().value(row);
                match self.timestamp_unit {
                    None => SqlValue::Int(v),
                    Some(unit) => SqlValue::Timestamp(timestamp(v, unit).ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidInput,
                            format!("timestamp {v} ({unit:?}) is out of range"),
                        )
                        .with_context("row", row + 1)
                    })?),
                }
            }
            DataType::Float64 => {
                let f = a.as_primitive::<Float64Type>().value(row);
                if f.is_nan() {
                    SqlValue::Null
                } else {
                    SqlValue::Float(f)
                }
            }
            DataType::Utf8 => SqlValue::Text(a.as_string::<i32>().value(row).to_string()),
            DataType::Binary => SqlValue::Bytes(a.as_binary::<i32>().value(row).to_vec()),
            DataType::Date32 => {
                let days = a.as_primitive::<Date32Type>().value(row);
                let date = chrono::NaiveDate::default()
                    .checked_add_signed(chrono::TimeDelta::days(i64::from(days)))
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidInput,
                            format!("date {days} days from 1970-01-01 is out of range"),
                        )
                        .with_context("row", row + 1)
                    })?;
                SqlValue::Date(date)
            }
            _ => SqlValue::Null,
        })
    }
}

fn timestamp(v: i64, unit: TimeUnit) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::DateTime;
    match unit {
        TimeUnit::Second => DateTime::from_timestamp(v, 0),
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(v),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(v),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(v)),
    }
}

#[cfg(test)]
#[cfg(feature = "sqlite")]
mod tests {
    use super::*;
    use crate::sql::sqlite::DIALECT;
    use kernelize_core::arrow_schema::Field;

    fn schema(names: &[&str]) -> Schema {
        Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Int64, true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        let plan = LoadPlan::new(
            &DIALECT,
            "main.odd\"name",
            LoadMode::Append,
            &[],
            &schema(&["a b", "c\"d"]),
        )
        .unwrap();
        assert_eq!(
            plan.insert_sql(1),
            r#"INSERT INTO "main"."odd""name" ("a b", "c""d") VALUES (?, ?)"#
        );
    }

    #[test]
    fn bad_table_names_are_refused_clearly() {
        for (table, expected) in [
            ("", "table name \"\" is empty"),
            ("a.b.c", "more than one `.`"),
            ("main.", "table name \"\" is empty"),
            ("bad\nname", "control character"),
        ] {
            let err =
                LoadPlan::new(&DIALECT, table, LoadMode::Append, &[], &schema(&["a"])).unwrap_err();
            assert!(err.to_string().contains(expected), "{table:?}: {err}");
        }
    }

    #[test]
    fn upsert_needs_a_key_among_the_columns() {
        let err = LoadPlan::new(&DIALECT, "t", LoadMode::Upsert, &[], &schema(&["a"])).unwrap_err();
        assert!(err.to_string().contains("needs `key`"), "{err}");
        let err = LoadPlan::new(
            &DIALECT,
            "t",
            LoadMode::Upsert,
            &["id".into()],
            &schema(&["a"]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("key column `id` is not among"),
            "{err}"
        );
    }

    #[test]
    fn columns_differing_only_in_case_are_refused_for_sqlite() {
        let err = LoadPlan::new(&DIALECT, "t", LoadMode::Append, &[], &schema(&["Id", "id"]))
            .unwrap_err();
        assert!(err.to_string().contains("takes for one"), "{err}");
    }

    #[test]
    fn upsert_updates_every_non_key_column_or_does_nothing() {
        let plan = LoadPlan::new(
            &DIALECT,
            "t",
            LoadMode::Upsert,
            &["id".into()],
            &schema(&["id", "v"]),
        )
        .unwrap();
        assert_eq!(
            plan.insert_sql(2),
            r#"INSERT INTO "t" ("id", "v") VALUES (?, ?), (?, ?) ON CONFLICT ("id") DO UPDATE SET "v" = excluded."v""#
        );
        assert_eq!(
            plan.create_table_sql(),
            r#"CREATE TABLE "t" ("id" INTEGER NOT NULL, "v" INTEGER, UNIQUE ("id"))"#
        );
        let plan = LoadPlan::new(
            &DIALECT,
            "t",
            LoadMode::Upsert,
            &["id".into()],
            &schema(&["id"]),
        )
        .unwrap();
        assert!(
            plan.insert_sql(1)
                .ends_with("ON CONFLICT (\"id\") DO NOTHING")
        );
    }

    #[test]
    fn rows_per_insert_respects_the_bound_value_limit() {
        let names: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let plan = LoadPlan::new(&DIALECT, "t", LoadMode::Append, &[], &schema(&refs)).unwrap();
        assert_eq!(plan.rows_per_insert(), DIALECT.max_bind_values / 100);
        let narrow = LoadPlan::new(&DIALECT, "t", LoadMode::Append, &[], &schema(&["a"])).unwrap();
        assert_eq!(narrow.rows_per_insert(), MAX_ROWS_PER_INSERT);
    }

    #[test]
    fn nested_types_are_refused_naming_the_column() {
        let schema = Schema::new(vec![Field::new(
            "tags",
            DataType::List(std::sync::Arc::new(Field::new(
                "item",
                DataType::Utf8,
                true,
            ))),
            true,
        )]);
        let err = LoadPlan::new(&DIALECT, "t", LoadMode::Append, &[], &schema).unwrap_err();
        assert!(
            err.to_string()
                .contains("column `tags` has Arrow type List"),
            "{err}"
        );
    }
}
