//! The SQL event sink: each event of a pipeline becomes one row of a table, for every SQL
//! connector ([`SqlSink`], opened by `PluginManager::open_sink` or
//! [`super::connector::SqlConnector::sink`]).
//!
//! ## Options ([`SqlSinkOptions`])
//!
//! | option        | default    | meaning |
//! |---------------|------------|---------|
//! | `table`       | —          | the table, `name` or `schema.name` |
//! | `mode`        | `append`   | `append`, or `upsert` by `key` |
//! | `key`         | `[]`       | the columns that identify a row (needed by `upsert`) |
//! | `create`      | `true`     | create the table from the first batch's fields when it is missing |
//! | `add_columns` | `false`    | add fields the table lacks as nullable columns |
//! | `method`      | `insert`   | `copy` for PostgreSQL's `COPY` (other databases refuse it when the sink opens) |
//!
//! ## Events to rows
//!
//! An event's payload must be one JSON object: [`Payload::Json`] holding an object, or
//! [`Payload::Bytes`] whose bytes parse as a JSON object (whatever the media type says;
//! a JSON media type that does not parse is reported with the parser's words). Its fields
//! are the row's columns: objects and arrays are stored as their JSON text; a field whose
//! values are of different JSON kinds across the batch (a number here, a string there) is
//! sent as text, and the database converts it to the column's type or refuses the row. The
//! event's id, key, subject and headers are not written. An event that is not one object
//! is reported failed (`invalid input`, `event N (id ..): ...`), and the others go on.
//!
//! ## One transaction, and finding the rows that fail
//!
//! The good events of a batch are loaded as records in one transaction (the `load`
//! action's: [`super::actions::load`]). When it fails with a permanent data error (a
//! constraint violation, a value the column refuses, a field the table lacks), the batch is
//! split in halves, each loaded in its own transaction, recursively, until the rows that
//! fail stand alone: every good row is written, and only the bad ones are reported in the
//! [`WriteReport`], each with its own database error. A batch with `k` bad rows of `n`
//! costs about `2k log2(n)` extra transactions.
//!
//! A temporary error (the database unreachable, a deadlock, a lock timeout) or a permanent
//! one that is not about the data (a missing table without `create`, a permission) is an
//! `Err` for the whole batch while nothing of it has been committed; once a part was
//! committed, the rest is reported failed with that error instead, so the pipeline retries
//! exactly those events.
//!
//! MySQL commits DDL at once: a table the sink created stays even when the batch that
//! created it then fails.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kernelize_core::payload::json_type_name;
use kernelize_core::{
    ActionContext, Error, ErrorKind, Event, EventSink, Payload, Records, Result, WriteReport,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::actions::{LoadConfig, load};
use super::backend::SqlBackend;
use super::connector::{Opened, SqlDatabase};
use super::load::{LoadMethod, LoadMode, TableName, check_identifier};

fn default_true() -> bool {
    true
}

/// How the sink treats rows already in the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkMode {
    /// Add each event as a row.
    #[default]
    Append,
    /// Insert each event, or update the row with the same `key`.
    Upsert,
}

/// Options of the SQL event sink (a pipeline sink's settings).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlSinkOptions {
    /// The table, `name` or `schema.name`.
    pub table: String,
    /// `append` (default) or `upsert`.
    #[serde(default)]
    pub mode: SinkMode,
    /// The columns that identify a row: needed by `upsert`; `NOT NULL` and `UNIQUE` when
    /// the sink creates the table.
    #[serde(default)]
    pub key: Vec<String>,
    /// Create the table from the first batch's fields when it does not exist (default
    /// true).
    #[serde(default = "default_true")]
    pub create: bool,
    /// Add fields the table lacks as nullable columns (default false: such an event is
    /// reported failed).
    #[serde(default)]
    pub add_columns: bool,
    /// `insert` (default) or `copy` (PostgreSQL only).
    #[serde(default)]
    pub method: LoadMethod,
}

impl SqlSinkOptions {
    /// Options appending to `table` with every default.
    pub fn append(table: impl Into<String>) -> Self {
        SqlSinkOptions {
            table: table.into(),
            mode: SinkMode::Append,
            key: Vec::new(),
            create: true,
            add_columns: false,
            method: LoadMethod::Insert,
        }
    }

    /// The `load` config each batch (and each part of a split one) is written with.
    fn load_config(&self) -> LoadConfig {
        LoadConfig {
            table: self.table.clone(),
            mode: match self.mode {
                SinkMode::Append => LoadMode::Append,
                SinkMode::Upsert => LoadMode::Upsert,
            },
            key: self.key.clone(),
            create: self.create,
            add_columns: self.add_columns,
            method: self.method,
        }
    }

    /// Checks what can be checked before the first event: the names, the key, the method.
    fn check(&self, backend: &dyn SqlBackend) -> Result<()> {
        let dialect = backend.dialect();
        let invalid = |e: Error| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("sink option: {}", e.message()),
            )
            .with_context("table", &self.table)
        };
        TableName::parse(&self.table, dialect).map_err(invalid)?;
        for k in &self.key {
            check_identifier("key column", k, dialect).map_err(invalid)?;
        }
        if self.mode == SinkMode::Upsert && self.key.is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "sink mode `upsert` needs `key`: the columns that identify a row",
            )
            .with_context("table", &self.table));
        }
        if self.method == LoadMethod::Copy && !backend.supports_copy() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("{} has no bulk COPY; use `method: insert`", dialect.name),
            )
            .with_context("table", &self.table));
        }
        Ok(())
    }
}

/// Writes events into a table of a SQL database; see the [module](self) docs.
pub struct SqlSink<D: SqlDatabase> {
    database: Opened<D>,
    options: SqlSinkOptions,
    config: LoadConfig,
}

impl<D: SqlDatabase> std::fmt::Debug for SqlSink<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSink")
            .field("plugin", &D::ID)
            .field("options", &self.options)
            .finish()
    }
}

impl<D: SqlDatabase> SqlSink<D> {
    /// A sink into the open database, after checking `options`.
    pub(crate) fn new(database: Opened<D>, options: SqlSinkOptions) -> Result<Self> {
        options.check(&database.backend)?;
        Ok(SqlSink {
            config: options.load_config(),
            database,
            options,
        })
    }

    /// The options it writes with.
    pub fn options(&self) -> &SqlSinkOptions {
        &self.options
    }
}

#[async_trait]
impl<D: SqlDatabase> EventSink for SqlSink<D> {
    async fn write(&self, events: &[Event]) -> Result<WriteReport> {
        self.database.check(&self.database.grants)?;
        let ctx = ActionContext {
            action: "write".into(),
            deadline: None,
            cancel: CancellationToken::new(),
            permissions: self.database.grants.clone(),
            idempotency_key: None,
            vars: BTreeMap::new(),
        };
        write_events(&self.database.backend, &ctx, &self.config, events).await
    }
}

/// Writes `events` as rows with `config` (see the [module](self) docs): the report names
/// the events that are not rows and the rows the database refused; `Err` only while
/// nothing was committed.
pub async fn write_events(
    backend: &dyn SqlBackend,
    ctx: &ActionContext,
    config: &LoadConfig,
    events: &[Event],
) -> Result<WriteReport> {
    let mut progress = Progress {
        committed_any: false,
        failed: Vec::new(),
    };
    let mut rows = Vec::with_capacity(events.len());
    for (position, event) in events.iter().enumerate() {
        match event_row(&event.payload) {
            Ok(row) => rows.push(Row {
                position,
                id: event.id.clone(),
                fields: row,
            }),
            Err(why) => progress.failed.push((
                position,
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("event {position} (id {}): {why}", event.id),
                )
                .with_context("event", &event.id)
                .set_permanent(),
            )),
        }
    }
    write_part(backend, ctx, config, rows, &mut progress).await?;
    progress.failed.sort_by_key(|(position, _)| *position);
    if !progress.failed.is_empty() {
        tracing::debug!(
            events = events.len(),
            failed = progress.failed.len(),
            "the SQL sink wrote a batch with failures"
        );
    }
    Ok(WriteReport {
        failed: progress.failed,
    })
}

/// One event as a row.
struct Row {
    position: usize,
    id: String,
    fields: Map<String, Value>,
}

/// What a write has done so far.
struct Progress {
    committed_any: bool,
    failed: Vec<(usize, Error)>,
}

impl Progress {
    fn fail(&mut self, row: &Row, err: &Error) {
        self.failed.push((row.position, event_error(row, err)));
    }
}

/// `err` as the error of one event: its message prefixed with the event, its kind,
/// temporary flag and context kept (but the row numbers of the part it was loaded in).
fn event_error(row: &Row, err: &Error) -> Error {
    let mut out = Error::new(
        err.kind(),
        format!("event {} (id {}): {}", row.position, row.id, err.message()),
    )
    .with_context("event", &row.id);
    for (key, value) in err.context() {
        if !matches!(*key, "row" | "rows" | "event") {
            out = out.with_context(key, value);
        }
    }
    if err.is_temporary() {
        out.set_temporary()
    } else {
        out.set_permanent()
    }
}

/// The JSON object of a payload, or why it is not one.
fn event_row(payload: &Payload) -> std::result::Result<Map<String, Value>, String> {
    match payload {
        Payload::Json(Value::Object(map)) => Ok(map.clone()),
        Payload::Json(other) => Err(format!(
            "the payload is {}, not one JSON object",
            json_type_name(other)
        )),
        Payload::Bytes(blob) => {
            let essence = blob.essence().to_ascii_lowercase();
            let json_media = essence == "application/json"
                || essence == "text/json"
                || essence.ends_with("+json");
            match serde_json::from_slice::<Value>(&blob.data) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(other) => Err(format!(
                    "the payload is {}, not one JSON object",
                    json_type_name(&other)
                )),
                Err(e) if json_media => Err(format!(
                    "the payload ({}) is not valid JSON: {e}",
                    blob.media_type
                )),
                Err(_) => Err(format!(
                    "the payload ({}, {} bytes) is not a JSON object",
                    blob.media_type,
                    blob.data.len()
                )),
            }
        }
        Payload::Records(_) => Err(
            "the payload is records; the SQL sink takes one JSON object per event (load records with the `load` action)"
                .to_string(),
        ),
        Payload::Empty => Err("the payload is empty, not one JSON object".to_string()),
    }
}

/// The JSON kind of a value, for finding fields whose kind changes from row to row.
fn kind(value: &Value) -> Option<u8> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some(0),
        Value::Number(_) => Some(1),
        Value::String(_) | Value::Array(_) | Value::Object(_) => Some(2),
    }
}

/// The rows as JSON values ready for Arrow: objects and arrays as JSON text, and every
/// value of a field whose kind changes from row to row as text.
fn normalized(rows: &[Row]) -> Vec<Value> {
    let mut kinds: BTreeMap<&str, Option<u8>> = BTreeMap::new();
    let mut mixed: Vec<&str> = Vec::new();
    for row in rows {
        for (name, value) in &row.fields {
            let Some(k) = kind(value) else { continue };
            match kinds.get(name.as_str()) {
                Some(Some(seen)) if *seen != k => {
                    if !mixed.contains(&name.as_str()) {
                        mixed.push(name);
                    }
                }
                Some(Some(_)) => {}
                _ => {
                    kinds.insert(name, Some(k));
                }
            }
        }
    }
    rows.iter()
        .map(|row| {
            let object: Map<String, Value> = row
                .fields
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        Value::Array(_) | Value::Object(_) => Value::String(value.to_string()),
                        Value::Bool(_) | Value::Number(_) if mixed.contains(&name.as_str()) => {
                            Value::String(value.to_string())
                        }
                        other => other.clone(),
                    };
                    (name.clone(), value)
                })
                .collect();
            Value::Object(object)
        })
        .collect()
}

/// The rows as records; a row Arrow cannot read is reported failed and left out.
fn to_records(mut rows: Vec<Row>, progress: &mut Progress) -> Option<(Vec<Row>, Records)> {
    // Each round either succeeds or removes one row, so this ends.
    while !rows.is_empty() {
        match Records::from_json_rows(&normalized(&rows)) {
            Ok(records) => return Some((rows, records)),
            Err(err) => {
                let index = err
                    .context_value("row")
                    .and_then(|r| r.parse::<usize>().ok())
                    .and_then(|r| r.checked_sub(1))
                    .filter(|i| *i < rows.len())
                    .unwrap_or(0);
                let row = rows.remove(index);
                progress.fail(&row, &err);
            }
        }
    }
    None
}

/// Whether splitting a part may isolate the rows behind `err`: a permanent error about the
/// data, not about the database or the setup.
fn about_the_data(err: &Error) -> bool {
    !err.is_temporary() && matches!(err.kind(), ErrorKind::InvalidInput | ErrorKind::CorruptData)
}

/// Loads `rows` in one transaction; on a data error, each half in its own, recursively.
fn write_part<'a>(
    backend: &'a dyn SqlBackend,
    ctx: &'a ActionContext,
    config: &'a LoadConfig,
    rows: Vec<Row>,
    progress: &'a mut Progress,
) -> futures::future::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let Some((rows, records)) = to_records(rows, progress) else {
            return Ok(());
        };
        let err = match load(backend, ctx, config.clone(), records).await {
            Ok(_) => {
                progress.committed_any = true;
                return Ok(());
            }
            Err(err) => err,
        };
        if !about_the_data(&err) {
            if !progress.committed_any {
                return Err(err);
            }
            for row in &rows {
                progress.fail(row, &err);
            }
            return Ok(());
        }
        if rows.len() == 1 {
            progress.fail(&rows[0], &err);
            return Ok(());
        }
        tracing::debug!(rows = rows.len(), error = %err, "splitting a SQL sink batch to find its failing rows");
        let mut left = rows;
        let right = left.split_off(left.len() / 2);
        write_part(backend, ctx, config, left, progress).await?;
        write_part(backend, ctx, config, right, progress).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::backend::{LoadTransaction, RowConsumer, RunOptions, StatementOutcome};
    use crate::sql::bind::BoundQuery;
    use crate::sql::dialect::{
        Dialect, ErrorClass, LexicalRules, PlaceholderStyle, StoredAs, UpsertSyntax,
    };
    use crate::sql::result_set::ColumnInfo;
    use crate::sql::value::SqlValue;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    fn text_type(_: StoredAs) -> &'static str {
        "TEXT"
    }

    fn no_class(_: &str) -> Option<ErrorClass> {
        None
    }

    const FAKE: Dialect = Dialect {
        name: "Fake",
        lexical: LexicalRules {
            backtick_identifiers: false,
            bracket_identifiers: false,
            backslash_escapes: false,
            dollar_quoted_strings: false,
            nested_block_comments: false,
            hash_comments: false,
            foreign_markers: &[],
        },
        placeholder: PlaceholderStyle::Positional,
        bulk_placeholder: PlaceholderStyle::Positional,
        identifier_quote: '"',
        max_identifier_len: 64,
        case_insensitive_identifiers: false,
        max_bind_values: 1000,
        column_type: text_type,
        key_column_type: text_type,
        create_table_options: "",
        upsert: UpsertSyntax::OnConflict,
        transactional_ddl: true,
        max_statement_bytes: 1 << 20,
        nulls_first: "",
        classify_error: no_class,
    };

    /// A table in memory that refuses the row with id `bad`, and whose database goes away
    /// after `commits_before_outage` commits.
    #[derive(Default)]
    struct FakeTable {
        bad: i64,
        commits_before_outage: usize,
        commits: usize,
        rows: Vec<i64>,
    }

    struct FakeBackend(Arc<Mutex<FakeTable>>);

    struct FakeTx {
        table: Arc<Mutex<FakeTable>>,
        pending: Vec<i64>,
    }

    #[async_trait]
    impl LoadTransaction for FakeTx {
        async fn table_columns(&mut self, _: &TableName) -> Result<Option<Vec<String>>> {
            Ok(Some(vec!["id".into()]))
        }

        async fn execute(&mut self, _sql: &str, values: Vec<SqlValue>) -> Result<u64> {
            let table = self.table.lock().unwrap();
            if table.commits >= table.commits_before_outage {
                return Err(Error::new(ErrorKind::Unexpected, "connection lost").set_temporary());
            }
            let ids: Vec<i64> = values
                .iter()
                .map(|v| match v {
                    SqlValue::Int(i) => *i,
                    _ => -1,
                })
                .collect();
            if ids.contains(&table.bad) {
                return Err(Error::new(ErrorKind::InvalidInput, "CHECK failed"));
            }
            self.pending.extend(ids);
            Ok(values.len() as u64)
        }

        async fn commit(self: Box<Self>) -> Result<()> {
            let mut table = self.table.lock().unwrap();
            table.commits += 1;
            table.rows.extend(&self.pending);
            Ok(())
        }
    }

    #[async_trait]
    impl SqlBackend for FakeBackend {
        fn dialect(&self) -> &'static Dialect {
            &FAKE
        }

        async fn describe(&self, _: &ActionContext, _: &BoundQuery) -> Result<Vec<ColumnInfo>> {
            Err(Error::new(ErrorKind::Unsupported, "the fake only loads"))
        }

        async fn run(
            &self,
            _: &ActionContext,
            _: &BoundQuery,
            _: RunOptions,
            _: &mut dyn RowConsumer,
        ) -> Result<StatementOutcome> {
            Err(Error::new(ErrorKind::Unsupported, "the fake only loads"))
        }

        async fn execute(&self, _: &ActionContext, _: &BoundQuery) -> Result<u64> {
            Err(Error::new(ErrorKind::Unsupported, "the fake only loads"))
        }

        async fn begin_load(&self) -> Result<Box<dyn LoadTransaction>> {
            Ok(Box::new(FakeTx {
                table: self.0.clone(),
                pending: Vec::new(),
            }))
        }
    }

    fn ctx() -> ActionContext {
        ActionContext {
            action: "write".into(),
            deadline: None,
            cancel: CancellationToken::new(),
            permissions: kernelize_core::PermissionGuard::new("fake", vec![], None),
            idempotency_key: None,
            vars: BTreeMap::new(),
        }
    }

    fn events(n: i64) -> Vec<Event> {
        (0..n)
            .map(|i| Event::new(format!("e{i}"), Payload::json(json!({"id": i}))))
            .collect()
    }

    #[tokio::test]
    async fn an_outage_after_a_committed_part_reports_the_rest_as_temporary_failures() {
        let table = Arc::new(Mutex::new(FakeTable {
            bad: 3,
            commits_before_outage: 1,
            ..Default::default()
        }));
        let backend = FakeBackend(table.clone());
        let config = SqlSinkOptions::append("t").load_config();

        let report = write_events(&backend, &ctx(), &config, &events(8))
            .await
            .unwrap();

        // [0..8) fails on 3, [0..4) too; [0, 1] is committed, then the database is gone.
        assert_eq!(table.lock().unwrap().rows, vec![0, 1]);
        let failed: Vec<usize> = report.failed.iter().map(|(p, _)| *p).collect();
        assert_eq!(failed, vec![2, 3, 4, 5, 6, 7]);
        assert!(report.failed.iter().all(|(_, e)| e.is_temporary()));
    }

    #[tokio::test]
    async fn an_outage_before_anything_is_committed_fails_the_whole_batch() {
        let table = Arc::new(Mutex::new(FakeTable {
            bad: 3,
            commits_before_outage: 0,
            ..Default::default()
        }));
        let backend = FakeBackend(table.clone());
        let config = SqlSinkOptions::append("t").load_config();

        let err = write_events(&backend, &ctx(), &config, &events(8))
            .await
            .unwrap_err();

        assert!(err.is_temporary());
        assert!(table.lock().unwrap().rows.is_empty());
    }

    #[tokio::test]
    async fn bad_rows_are_isolated_and_every_good_row_is_written() {
        let table = Arc::new(Mutex::new(FakeTable {
            bad: 5,
            commits_before_outage: usize::MAX,
            ..Default::default()
        }));
        let backend = FakeBackend(table.clone());
        let config = SqlSinkOptions::append("t").load_config();

        let report = write_events(&backend, &ctx(), &config, &events(100))
            .await
            .unwrap();

        let failed: Vec<usize> = report.failed.iter().map(|(p, _)| *p).collect();
        assert_eq!(failed, vec![5]);
        assert!(
            report.failed[0]
                .1
                .message()
                .starts_with("event 5 (id e5): CHECK failed")
        );
        let mut rows = table.lock().unwrap().rows.clone();
        rows.sort_unstable();
        assert_eq!(rows, (0..100).filter(|i| *i != 5).collect::<Vec<_>>());
    }

    fn row(position: usize, fields: Value) -> Row {
        Row {
            position,
            id: position.to_string(),
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn payloads_that_are_not_one_object_say_why() {
        assert!(event_row(&Payload::json(json!({"a": 1}))).is_ok());
        assert!(event_row(&Payload::bytes(&b"{\"a\": 1}"[..], "text/plain")).is_ok());
        let why = event_row(&Payload::json(json!([1, 2]))).unwrap_err();
        assert!(why.contains("is an array, not one JSON object"), "{why}");
        let why = event_row(&Payload::bytes(&b"{oops"[..], "application/json")).unwrap_err();
        assert!(why.contains("not valid JSON"), "{why}");
        let why = event_row(&Payload::bytes(
            &b"\x00\x01"[..],
            "application/octet-stream",
        ))
        .unwrap_err();
        assert!(why.contains("2 bytes) is not a JSON object"), "{why}");
        assert!(event_row(&Payload::Empty).is_err());
    }

    #[test]
    fn nested_values_become_json_text_and_mixed_fields_text() {
        let rows = vec![
            row(0, json!({"id": 1, "tags": ["a"], "v": 1, "ok": true})),
            row(1, json!({"id": 2, "meta": {"k": 1}, "v": "x", "ok": null})),
        ];
        let values = normalized(&rows);
        assert_eq!(values[0]["tags"], json!("[\"a\"]"));
        assert_eq!(values[1]["meta"], json!("{\"k\":1}"));
        assert_eq!(values[0]["v"], json!("1"));
        assert_eq!(values[1]["v"], json!("x"));
        assert_eq!(values[0]["id"], json!(1));
        assert_eq!(values[0]["ok"], json!(true));
        let mut progress = Progress {
            committed_any: false,
            failed: Vec::new(),
        };
        let (_, records) = to_records(rows, &mut progress).unwrap();
        assert_eq!(records.num_rows(), 2);
        assert!(progress.failed.is_empty());
    }
}
