//! The `sqlite-connector` plugin against real SQLite files in temporary directories.
//!
//! Run with `cargo nextest run -p kernelize-connectors --features sqlite --test sqlite`.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use kernelize_connectors::sql::actions::ExtractConfig;
use kernelize_connectors::sql::load::LoadMethod;
use kernelize_connectors::sql::result_set::{WATERMARK_COLUMN_KEY, WATERMARK_MAX_KEY};
use kernelize_connectors::sql::sink::SqlSinkOptions;
use kernelize_connectors::sql::sqlite::{self, SqliteConnector, SqliteSettings};
use kernelize_core::arrow_array::cast::AsArray;
use kernelize_core::arrow_array::types::{Float64Type, Int64Type};
use kernelize_core::arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use kernelize_core::arrow_schema::{DataType, TimeUnit};
use kernelize_core::builtins::transformer::DataTransformer;
use kernelize_core::{
    Call, ErrorKind, Event, EventSink, Payload, Permission, PermissionGuard, Plugin, PluginConfig,
    PluginManager, Records,
};
use serde_json::{Value, json};
use sql_client::{SqlClient, batch, records, vars};

mod sql_client;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// helpers

/// A temporary directory with every file grant on it.
struct Workspace {
    dir: TempDir,
    guard: PermissionGuard,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let guard = PermissionGuard::new(
            sqlite::ID,
            vec![
                Permission::FileRead {
                    path: dir.path().to_path_buf(),
                },
                Permission::FileWrite {
                    path: dir.path().to_path_buf(),
                },
            ],
            None,
        );
        Workspace { dir, guard }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn settings(&self, name: &str) -> SqliteSettings {
        let mut s = SqliteSettings::new(self.path(name).to_string_lossy());
        s.create_if_missing = true;
        s
    }

    async fn open(&self, name: &str) -> Db {
        self.open_with(self.settings(name)).await
    }

    async fn open_with(&self, settings: SqliteSettings) -> Db {
        Db::new(
            SqliteConnector::open(settings, &self.guard).await.unwrap(),
            self.guard.clone(),
            '"',
        )
    }
}

/// An open connector and the grants its calls carry.
type Db = SqlClient<SqliteConnector>;

fn ints(records: &Records, column: usize) -> Vec<i64> {
    records
        .batches()
        .iter()
        .flat_map(|b| {
            b.column(column)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// query

#[tokio::test]
async fn query_returns_typed_records_for_a_select() {
    let ws = Workspace::new();
    let db = ws.open("types.db").await;
    db.sql("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, flag BOOLEAN)")
        .await;
    db.sql("INSERT INTO t VALUES (1, 1.5, 'a', x'00ff', 1), (2, NULL, 'b', NULL, 0)")
        .await;

    let out = db.sql("SELECT i, r, s, b, flag FROM t ORDER BY i").await;

    let records = out.into_records().unwrap();
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
            DataType::Boolean
        ]
    );
    let batch = &records.batches()[0];
    assert_eq!(batch.column(1).as_primitive::<Float64Type>().value(0), 1.5);
    assert!(batch.column(1).is_null(1));
    assert_eq!(batch.column(3).as_binary::<i32>().value(0), &[0x00, 0xff]);
    assert!(!batch.column(4).as_boolean().value(1));
}

#[tokio::test]
async fn query_of_an_empty_result_keeps_declared_column_types() {
    let ws = Workspace::new();
    let db = ws.open("empty.db").await;
    db.sql("CREATE TABLE t (i INTEGER, r REAL, s TEXT, x)")
        .await;

    let records = db
        .sql("SELECT i, r, s, x FROM t")
        .await
        .into_records()
        .unwrap();

    assert_eq!(records.num_rows(), 0);
    let types: Vec<&DataType> = records
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type())
        .collect();
    assert_eq!(
        types,
        vec![
            &DataType::Int64,
            &DataType::Float64,
            &DataType::Utf8,
            &DataType::Utf8
        ]
    );
}

#[tokio::test]
async fn query_without_result_columns_returns_rows_affected() {
    let ws = Workspace::new();
    let db = ws.open("affected.db").await;
    db.sql("CREATE TABLE t (v INTEGER)").await;

    let out = db.sql("INSERT INTO t VALUES (1), (2), (3)").await;
    assert_eq!(out.into_json().unwrap(), json!({ "rows_affected": 3 }));

    let out = db.sql("UPDATE t SET v = v + 1 WHERE v > 1").await;
    assert_eq!(out.into_json().unwrap(), json!({ "rows_affected": 2 }));
}

#[tokio::test]
async fn insert_returning_gives_records() {
    let ws = Workspace::new();
    let db = ws.open("returning.db").await;
    db.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .await;

    let rows = db
        .rows("INSERT INTO t (v) VALUES ('a') RETURNING id, v")
        .await;

    assert_eq!(rows, vec![json!({"id": 1, "v": "a"})]);
}

#[tokio::test]
async fn mixed_types_in_one_column_is_an_error_naming_it() {
    let ws = Workspace::new();
    let db = ws.open("mixed.db").await;
    db.sql("CREATE TABLE t (v)").await;
    db.sql("INSERT INTO t VALUES (1), ('one')").await;

    let err = db
        .call("query", json!({"sql": "SELECT v FROM t"}), Payload::Empty)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("column `v` mixes INTEGER and TEXT"),
        "{err}"
    );
    // The suggested fix works.
    let rows = db.rows("SELECT CAST(v AS TEXT) AS v FROM t").await;
    assert_eq!(rows, vec![json!({"v": "1"}), json!({"v": "one"})]);
}

#[tokio::test]
async fn a_syntax_error_is_invalid_input_with_sqlites_words() {
    let ws = Workspace::new();
    let db = ws.open("syntax.db").await;

    let err = db
        .call("query", json!({"sql": "SELEC 1"}), Payload::Empty)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(!err.is_temporary());
    assert!(err.to_string().contains("syntax error"), "{err}");
}

// ---------------------------------------------------------------------------------------
// binding

#[tokio::test]
async fn placeholders_bind_from_params_then_vars() {
    let ws = Workspace::new();
    let db = ws.open("bind.db").await;

    let out = db
        .call_with_vars(
            "query",
            json!({
                "sql": "SELECT :region AS region, :run_id AS run, :last_sync AS since",
                "params": {"region": "north", "last_sync": "from-params"}
            }),
            Payload::Empty,
            vars(&[
                ("run_id", json!("run-7")),
                ("last_sync", json!("2026-11-27T03:25:00.123456Z")),
            ]),
        )
        .await
        .unwrap();

    let rows = out.into_records().unwrap().to_json_rows().unwrap();
    assert_eq!(
        rows,
        vec![json!({"region": "north", "run": "run-7", "since": "from-params"})]
    );
}

#[tokio::test]
async fn json_values_bind_natively_and_containers_as_json_text() {
    let ws = Workspace::new();
    let db = ws.open("json.db").await;

    let out = db
        .call(
            "query",
            json!({
                "sql": "SELECT typeof(:n) AS n, typeof(:f) AS f, typeof(:s) AS s, typeof(:b) AS b, \
                        typeof(:z) AS z, :arr AS arr, json_extract(:obj, '$.k') AS k",
                "params": {"n": 42, "f": 0.5, "s": "x", "b": true, "z": null,
                           "arr": [1, 2], "obj": {"k": "v"}}
            }),
            Payload::Empty,
        )
        .await
        .unwrap();

    let rows = out.into_records().unwrap().to_json_rows().unwrap();
    assert_eq!(
        rows,
        vec![
            json!({"n": "integer", "f": "real", "s": "text", "b": "integer",
                    "z": "null", "arr": "[1,2]", "k": "v"})
        ]
    );
}

#[tokio::test]
async fn an_injection_attempt_stays_a_value() {
    let ws = Workspace::new();
    let db = ws.open("injection.db").await;
    db.sql("CREATE TABLE users (name TEXT)").await;
    db.sql("INSERT INTO users VALUES ('alice'), ('bob')").await;

    for attack in [
        "x' OR '1'='1",
        "'; DROP TABLE users; --",
        "bob' --",
        ":name",
    ] {
        let rows = db
            .call(
                "query",
                json!({
                    "sql": "SELECT count(*) AS n FROM users WHERE name = :name",
                    "params": {"name": attack}
                }),
                Payload::Empty,
            )
            .await
            .unwrap()
            .into_records()
            .unwrap()
            .to_json_rows()
            .unwrap();
        assert_eq!(rows, vec![json!({"n": 0})], "{attack}");
    }
    assert_eq!(db.count("users").await, 2);
}

#[tokio::test]
async fn an_unbound_placeholder_is_an_error_naming_it() {
    let ws = Workspace::new();
    let db = ws.open("unbound.db").await;

    let err = db
        .call_with_vars(
            "query",
            json!({"sql": "SELECT :since", "params": {"other": 1}}),
            Payload::Empty,
            vars(&[("run_id", json!("r"))]),
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let text = err.to_string();
    assert!(text.contains("`:since` has no value"), "{text}");
    assert!(text.contains("given: other"), "{text}");
    assert!(text.contains("given: run_id"), "{text}");
}

#[tokio::test]
async fn sqlite_own_markers_are_refused_instead_of_binding_null() {
    let ws = Workspace::new();
    let db = ws.open("markers.db").await;

    for sql in ["SELECT ?", "SELECT @since", "SELECT $since"] {
        let err = db
            .call("query", json!({"sql": sql}), Payload::Empty)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("parameter marker"), "{sql}: {err}");
    }
}

#[tokio::test]
async fn a_second_statement_is_refused_and_not_run() {
    let ws = Workspace::new();
    let db = ws.open("two.db").await;
    db.sql("CREATE TABLE t (v INTEGER)").await;

    let err = db
        .call(
            "query",
            json!({"sql": "SELECT 1; DROP TABLE t"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert!(
        err.to_string().contains("one call runs one statement"),
        "{err}"
    );
    assert_eq!(db.count("t").await, 0, "the table is still there");
}

// ---------------------------------------------------------------------------------------
// extract

async fn sales_db(ws: &Workspace) -> Db {
    let db = ws.open("sales.db").await;
    db.sql("CREATE TABLE sales (id INTEGER PRIMARY KEY, amount REAL, updated_at TEXT)")
        .await;
    db.sql(
        "INSERT INTO sales VALUES \
         (1, 10.0, '2026-11-27T05:00:00Z'), \
         (2, 20.0, '2026-11-27T03:25:00Z'), \
         (3, 30.0, '2026-11-27T03:25:01Z'), \
         (4, 40.0, '2026-11-26T23:59:59Z'), \
         (5, 50.0, '2026-11-27T04:00:00Z')",
    )
    .await;
    db
}

const INCREMENTAL: &str =
    "SELECT id, amount, updated_at FROM sales WHERE julianday(updated_at) > julianday(:last_sync)";

#[tokio::test]
async fn extract_reads_rows_after_last_sync_ordered_by_the_watermark() {
    let ws = Workspace::new();
    let db = sales_db(&ws).await;

    let out = db
        .call_with_vars(
            "extract",
            json!({"query": INCREMENTAL, "watermark": "updated_at"}),
            Payload::Empty,
            vars(&[("last_sync", json!("2026-11-27T03:25:00.123456Z"))]),
        )
        .await
        .unwrap();

    let records = out.into_records().unwrap();
    // Row 2 (03:25:00Z) is before last_sync and row 4 a day before; the rest, by updated_at.
    assert_eq!(ints(&records, 0), vec![3, 5, 1]);
    let meta = records.schema().metadata();
    assert_eq!(meta.get(WATERMARK_COLUMN_KEY).unwrap(), "updated_at");
    assert_eq!(meta.get(WATERMARK_MAX_KEY).unwrap(), "2026-11-27T05:00:00Z");
}

#[tokio::test]
async fn extract_from_the_reported_maximum_finds_nothing_new() {
    let ws = Workspace::new();
    let db = sales_db(&ws).await;
    let first = db
        .call_with_vars(
            "extract",
            json!({"query": INCREMENTAL, "watermark": "updated_at"}),
            Payload::Empty,
            vars(&[("last_sync", json!("1970-01-01T00:00:00Z"))]),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(first.num_rows(), 5);
    let max = first.schema().metadata()[WATERMARK_MAX_KEY].clone();

    let second = db
        .call_with_vars(
            "extract",
            json!({"query": INCREMENTAL, "watermark": "updated_at"}),
            Payload::Empty,
            vars(&[("last_sync", json!(max))]),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap();

    assert_eq!(second.num_rows(), 0);
    assert!(!second.schema().metadata().contains_key(WATERMARK_MAX_KEY));
    assert_eq!(
        second.schema().fields().len(),
        3,
        "an empty extract keeps its columns"
    );
}

#[tokio::test]
async fn extract_refuses_a_statement_without_rows_before_running_it() {
    let ws = Workspace::new();
    let db = sales_db(&ws).await;

    let err = db
        .call(
            "extract",
            json!({"query": "DELETE FROM sales"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("returns no rows"), "{err}");
    assert_eq!(db.count("sales").await, 5);
}

#[tokio::test]
async fn extract_with_an_unknown_watermark_column_names_the_columns() {
    let ws = Workspace::new();
    let db = sales_db(&ws).await;

    let err = db
        .call(
            "extract",
            json!({"query": "SELECT id FROM sales", "watermark": "updated_at"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert!(
        err.to_string()
            .contains("watermark column `updated_at` is not among the query's columns: id"),
        "{err}"
    );
}

#[tokio::test]
async fn max_rows_bounds_what_a_query_holds() {
    let ws = Workspace::new();
    let mut settings = ws.settings("bounded.db");
    settings.max_rows = 4;
    let db = ws.open_with(settings).await;
    db.sql("CREATE TABLE t (v INTEGER)").await;
    db.sql("INSERT INTO t VALUES (1), (2), (3), (4), (5)").await;

    let err = db
        .call(
            "extract",
            json!({"query": "SELECT v FROM t"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 4 rows"), "{err}");

    // A call may lower the bound ...
    let err = db
        .call(
            "query",
            json!({"sql": "SELECT v FROM t WHERE v <= 3", "max_rows": 2}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 2 rows"), "{err}");
    // ... but never raise it above the plugin's.
    let err = db
        .call(
            "query",
            json!({"sql": "SELECT v FROM t", "max_rows": 100}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 4 rows"), "{err}");
    assert_eq!(
        db.rows("SELECT v FROM t WHERE v <= 4").await.len(),
        4,
        "exactly max_rows rows are fine"
    );
}

// ---------------------------------------------------------------------------------------
// load

fn typed_records() -> Records {
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_micros()
    };
    batch(vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        (
            "amount",
            Arc::new(Float64Array::from(vec![Some(1.5), None])),
        ),
        (
            "name",
            Arc::new(StringArray::from(vec!["Acme", "O'Brien \"Ltd\""])),
        ),
        ("paid", Arc::new(BooleanArray::from(vec![true, false]))),
        (
            "updated_at",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    at("2026-11-02T09:15:00Z"),
                    at("2026-11-02T10:40:00.250+01:00"),
                ])
                .with_timezone("UTC"),
            ),
        ),
        ("day", Arc::new(Date32Array::from(vec![20_000, 20_001]))),
        (
            "raw",
            Arc::new(BinaryArray::from(vec![&b"\x01"[..], &b""[..]])),
        ),
    ])
}

#[tokio::test]
async fn load_creates_the_table_from_the_arrow_schema() {
    let ws = Workspace::new();
    let db = ws.open("warehouse.db").await;

    let out = db
        .load(json!({"table": "sales"}), typed_records())
        .await
        .unwrap();

    assert_eq!(
        out,
        json!({"rows_written": 2, "table": "sales", "created": true})
    );
    let declared = db
        .rows("SELECT name, type, \"notnull\" AS nn FROM pragma_table_info('sales')")
        .await;
    assert_eq!(
        declared,
        vec![
            json!({"name": "id", "type": "INTEGER", "nn": 0}),
            json!({"name": "amount", "type": "REAL", "nn": 0}),
            json!({"name": "name", "type": "TEXT", "nn": 0}),
            json!({"name": "paid", "type": "BOOLEAN", "nn": 0}),
            json!({"name": "updated_at", "type": "TEXT", "nn": 0}),
            json!({"name": "day", "type": "TEXT", "nn": 0}),
            json!({"name": "raw", "type": "BLOB", "nn": 0}),
        ]
    );
    let rows = db
        .rows("SELECT id, amount, name, paid, updated_at, day, hex(raw) AS raw FROM sales ORDER BY id")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "amount": 1.5, "name": "Acme", "paid": true,
                   "updated_at": "2026-11-02T09:15:00Z", "day": "2024-10-04", "raw": "01"}),
            json!({"id": 2, "amount": null, "name": "O'Brien \"Ltd\"", "paid": false,
                   "updated_at": "2026-11-02T09:40:00.250Z", "day": "2024-10-05", "raw": ""}),
        ]
    );
}

#[tokio::test]
async fn load_append_adds_to_an_existing_table() {
    let ws = Workspace::new();
    let db = ws.open("append.db").await;
    let rows = records(json!([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]));
    db.load(json!({"table": "t"}), rows.clone()).await.unwrap();

    let out = db
        .load(json!({"table": "t", "mode": "append"}), rows)
        .await
        .unwrap();

    assert_eq!(
        out,
        json!({"rows_written": 2, "table": "t", "created": false})
    );
    assert_eq!(db.count("t").await, 4);
}

#[tokio::test]
async fn load_upsert_updates_existing_keys_and_inserts_new_ones() {
    let ws = Workspace::new();
    let db = ws.open("upsert.db").await;
    let config = json!({"table": "customers", "mode": "upsert", "key": ["id"]});
    db.load(
        config.clone(),
        records(json!([{"id": 1, "name": "Acme"}, {"id": 2, "name": "Globex"}])),
    )
    .await
    .unwrap();

    let out = db
        .load(
            config,
            records(json!([{"id": 2, "name": "Globex Corp"}, {"id": 3, "name": "Initech"}])),
        )
        .await
        .unwrap();

    assert_eq!(out["rows_written"], 2);
    assert_eq!(
        db.rows("SELECT id, name FROM customers ORDER BY id").await,
        vec![
            json!({"id": 1, "name": "Acme"}),
            json!({"id": 2, "name": "Globex Corp"}),
            json!({"id": 3, "name": "Initech"}),
        ]
    );
    let unique = db
        .rows("SELECT \"unique\" AS u FROM pragma_index_list('customers')")
        .await;
    assert_eq!(
        unique,
        vec![json!({"u": 1})],
        "the created table has a unique index on the key"
    );
}

#[tokio::test]
async fn load_replace_empties_the_table_first() {
    let ws = Workspace::new();
    let db = ws.open("replace.db").await;
    db.load(
        json!({"table": "t"}),
        records(json!([{"id": 1}, {"id": 2}, {"id": 3}])),
    )
    .await
    .unwrap();

    let out = db
        .load(
            json!({"table": "t", "mode": "replace"}),
            records(json!([{"id": 9}])),
        )
        .await
        .unwrap();

    assert_eq!(out["rows_written"], 1);
    assert_eq!(db.rows("SELECT id FROM t").await, vec![json!({"id": 9})]);
}

#[tokio::test]
async fn load_splits_inserts_under_the_bound_value_limit() {
    let ws = Workspace::new();
    let db = ws.open("wide.db").await;
    // 100 columns x 1000 rows = 100,000 values: three times what one statement may bind.
    let columns: Vec<(String, ArrayRef)> = (0..100)
        .map(|c| {
            let values: Vec<i64> = (0..1000).map(|r| r * 100 + c).collect();
            (
                format!("c{c}"),
                Arc::new(Int64Array::from(values)) as ArrayRef,
            )
        })
        .collect();
    let wide = Records::from_batch(
        RecordBatch::try_from_iter(columns.iter().map(|(n, a)| (n.as_str(), a.clone()))).unwrap(),
    );

    let out = db.load(json!({"table": "wide"}), wide).await.unwrap();

    assert_eq!(out["rows_written"], 1000);
    assert_eq!(db.count("wide").await, 1000);
    assert_eq!(
        db.rows("SELECT sum(c99) AS s FROM wide").await,
        vec![json!({"s": (0..1000).map(|r| r * 100 + 99).sum::<i64>()})]
    );
}

#[tokio::test]
async fn a_failed_load_leaves_the_table_as_before() {
    let ws = Workspace::new();
    let db = ws.open("rollback.db").await;
    db.sql("CREATE TABLE t (id INTEGER NOT NULL UNIQUE)").await;
    db.sql("INSERT INTO t VALUES (1), (2), (3)").await;
    // 1001 new rows fill the first INSERT (1000 rows) and start a second, whose
    // duplicate of id 2 fails after the first INSERT went in.
    let mut ids: Vec<i64> = (100..1101).collect();
    ids.push(2);
    let rows = batch(vec![("id", Arc::new(Int64Array::from(ids)) as ArrayRef)]);

    let err = db.load(json!({"table": "t"}), rows).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("UNIQUE constraint failed"),
        "{err}"
    );
    assert_eq!(err.context_value("rows"), Some("1001-1002"));
    assert_eq!(
        db.count("t").await,
        3,
        "the first INSERT was rolled back too"
    );
}

#[tokio::test]
async fn a_failed_load_does_not_leave_the_table_it_created() {
    let ws = Workspace::new();
    let db = ws.open("rollback-create.db").await;
    let rows = records(json!([{"id": 1, "v": "a"}, {"id": null, "v": "b"}]));

    let err = db
        .load(json!({"table": "t", "mode": "upsert", "key": ["id"]}), rows)
        .await
        .unwrap_err();

    assert!(
        err.to_string().contains("NOT NULL constraint failed"),
        "{err}"
    );
    assert_eq!(
        db.rows("SELECT count(*) AS n FROM sqlite_master WHERE name = 't'")
            .await,
        vec![json!({"n": 0})]
    );
}

#[tokio::test]
async fn load_into_a_missing_table_without_create_is_not_found() {
    let ws = Workspace::new();
    let db = ws.open("nocreate.db").await;

    let err = db
        .load(
            json!({"table": "t", "create": false}),
            records(json!([{"id": 1}])),
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().contains("table `t` does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn load_with_a_column_the_table_lacks_names_it() {
    let ws = Workspace::new();
    let db = ws.open("columns.db").await;
    db.sql("CREATE TABLE t (id INTEGER)").await;

    let err = db
        .load(
            json!({"table": "t"}),
            records(json!([{"ID": 1, "extra": "x"}])),
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("table `t` has no column `extra` (its columns: id)"),
        "{err}"
    );
}

#[tokio::test]
async fn load_quotes_identifiers_and_refuses_bad_ones() {
    let ws = Workspace::new();
    let db = ws.open("names.db").await;
    db.sql("CREATE TABLE users (name TEXT)").await;

    // A hostile name is only a (strange) table name: quoted, never run as SQL.
    let hostile = "t\"; DROP TABLE users; --";
    db.load(json!({"table": hostile}), records(json!([{"a b": 1}])))
        .await
        .unwrap();
    assert_eq!(db.count(&hostile.replace('"', "\"\"")).await, 1);
    assert_eq!(db.count("users").await, 0, "users is still there");

    for (table, expected) in [
        ("", "is empty"),
        ("a.b.c", "more than one `.`"),
        ("t\0", "control character"),
    ] {
        let err = db
            .load(json!({"table": table}), records(json!([{"a": 1}])))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains(expected), "{table:?}: {err}");
    }
}

#[tokio::test]
async fn load_into_a_schema_qualified_table() {
    let ws = Workspace::new();
    let db = ws.open("qualified.db").await;

    db.load(json!({"table": "main.t"}), records(json!([{"id": 1}])))
        .await
        .unwrap();
    let out = db
        .load(json!({"table": "main.t"}), records(json!([{"id": 2}])))
        .await
        .unwrap();

    assert_eq!(out["created"], false);
    assert_eq!(db.count("t").await, 2);
}

#[tokio::test]
async fn load_is_refused_on_a_read_only_database() {
    let ws = Workspace::new();
    ws.open("ro.db")
        .await
        .sql("CREATE TABLE t (id INTEGER)")
        .await;
    let mut settings = ws.settings("ro.db");
    settings.create_if_missing = false;
    settings.read_only = true;
    let db = ws.open_with(settings).await;

    let err = db
        .load(json!({"table": "t"}), records(json!([{"id": 1}])))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read_only: true"), "{err}");

    let err = db
        .call(
            "query",
            json!({"sql": "INSERT INTO t VALUES (1)"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("readonly"), "{err}");
}

// ---------------------------------------------------------------------------------------
// settings, files and permissions

#[tokio::test]
async fn a_missing_file_without_create_if_missing_is_not_found() {
    let ws = Workspace::new();
    let mut settings = ws.settings("absent.db");
    settings.create_if_missing = false;

    let err = SqliteConnector::open(settings, &ws.guard)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().contains("set `create_if_missing: true`"),
        "{err}"
    );
    assert!(!ws.path("absent.db").exists());
}

#[tokio::test]
async fn create_if_missing_creates_the_file_and_its_directories() {
    let ws = Workspace::new();
    let settings = ws.settings("nested/dir/new.db");

    let db = ws.open_with(settings).await;
    db.sql("CREATE TABLE t (v INTEGER)").await;

    assert!(ws.path("nested/dir/new.db").is_file());
}

#[tokio::test]
async fn memory_databases_keep_their_data_across_calls() {
    let db = Db::new(
        SqliteConnector::open(SqliteSettings::new(":memory:"), &PermissionGuard::none())
            .await
            .unwrap(),
        PermissionGuard::none(),
        '"',
    );

    db.sql("CREATE TABLE t (v INTEGER)").await;
    db.load(json!({"table": "t"}), records(json!([{"v": 1}, {"v": 2}])))
        .await
        .unwrap();

    assert_eq!(db.count("t").await, 2);
}

#[tokio::test]
async fn sqlite_uris_are_refused_as_paths() {
    let ws = Workspace::new();
    let settings = SqliteSettings::new(format!("file:{}?mode=rwc", ws.path("x.db").display()));

    let err = SqliteConnector::open(settings, &ws.guard)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    assert!(err.to_string().contains("SQLite URI"), "{err}");
}

fn manager_with(settings: Value, grants: Vec<Permission>) -> PluginManager {
    let manager = PluginManager::new();
    manager.install(sqlite::factory()).unwrap();
    let mut config = PluginConfig::with_settings(settings);
    config.permissions = grants;
    manager.configure(sqlite::ID, config);
    manager
}

fn read(path: &Path) -> Permission {
    Permission::FileRead {
        path: path.to_path_buf(),
    }
}

fn write(path: &Path) -> Permission {
    Permission::FileWrite {
        path: path.to_path_buf(),
    }
}

#[tokio::test]
async fn activation_without_a_read_grant_is_denied() {
    let ws = Workspace::new();
    let path = ws.path("denied.db");
    let manager = manager_with(json!({"path": path, "create_if_missing": true}), vec![]);

    let err = manager.activate(sqlite::ID).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("file-read"), "{err}");
    assert!(!path.exists(), "nothing was created without the grant");
}

#[tokio::test]
async fn a_writable_database_needs_a_write_grant_and_a_read_only_one_does_not() {
    let ws = Workspace::new();
    let path = ws.path("grants.db");
    ws.open("grants.db")
        .await
        .sql("CREATE TABLE t (v INTEGER)")
        .await;

    let writable = manager_with(json!({"path": path}), vec![read(&path)]);
    let err = writable.activate(sqlite::ID).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("file-write"), "{err}");

    let read_only = manager_with(json!({"path": path, "read_only": true}), vec![read(&path)]);
    read_only.activate(sqlite::ID).await.unwrap();
    let out = read_only
        .call(
            sqlite::ID,
            Call::new("query", Payload::Empty)
                .with_config(json!({"sql": "SELECT count(*) AS n FROM t"})),
        )
        .await
        .unwrap();
    assert_eq!(out.into_json().unwrap(), json!([{"n": 0}]));
}

#[tokio::test]
async fn a_grant_of_the_directory_covers_the_file() {
    let ws = Workspace::new();
    let manager = manager_with(
        json!({"path": ws.path("in-dir.db"), "create_if_missing": true}),
        vec![read(ws.dir.path()), write(ws.dir.path())],
    );

    manager.activate(sqlite::ID).await.unwrap();
}

#[tokio::test]
async fn every_call_is_checked_against_its_grants() {
    let ws = Workspace::new();
    let db = ws.open("per-call.db").await;

    let err = db
        .plugin
        .execute(Call::new("query", Payload::Empty).with_config(json!({"sql": "SELECT 1"})))
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
}

#[tokio::test]
async fn unknown_settings_are_refused() {
    let ws = Workspace::new();
    let manager = manager_with(
        json!({"path": ws.path("x.db"), "create_if_missing": true, "max_conections": 2}),
        vec![read(ws.dir.path()), write(ws.dir.path())],
    );

    let err = manager.activate(sqlite::ID).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    assert!(err.to_string().contains("max_conections"), "{err}");
}

#[tokio::test]
async fn settings_read_durations_and_defaults() {
    let settings: SqliteSettings =
        serde_json::from_value(json!({"path": "a.db", "busy_timeout": "250ms"})).unwrap();
    assert_eq!(settings.busy_timeout, std::time::Duration::from_millis(250));
    assert_eq!(settings.max_connections, 4);
    assert_eq!(settings.max_rows, 1_000_000);
    assert!(!settings.read_only && !settings.create_if_missing);
    assert!(
        serde_json::from_value::<SqliteSettings>(json!({"path": "a.db", "busy_timeout": "soon"}))
            .is_err()
    );
}

#[tokio::test]
async fn unknown_action_config_fields_are_refused() {
    let ws = Workspace::new();
    let db = ws.open("config.db").await;

    for (action, config) in [
        ("query", json!({"sql": "SELECT 1", "parms": {}})),
        ("extract", json!({"query": "SELECT 1", "watermrk": "x"})),
        (
            "load",
            json!({"table": "t", "mode": "append", "keys": ["id"]}),
        ),
    ] {
        let input = if action == "load" {
            Payload::Records(records(json!([{"id": 1}])))
        } else {
            Payload::Empty
        };
        let err = db.call(action, config, input).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{action}");
        assert!(err.to_string().contains("unknown field"), "{action}: {err}");
    }
    let err = db
        .load(
            json!({"table": "t", "mode": "merge"}),
            records(json!([{"id": 1}])),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown variant `merge`"), "{err}");
}

#[tokio::test]
async fn metadata_describes_the_plugin() {
    let meta = SqliteConnector::new().metadata();

    assert_eq!(meta.id, "sqlite-connector");
    assert_eq!(meta.category, kernelize_core::Category::Connector);
    let actions: Vec<&str> = meta.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(actions, vec!["execute", "extract", "load", "query"]);
    assert_eq!(meta.config_schema["additionalProperties"], json!(false));
    for setting in [
        "path",
        "create_if_missing",
        "read_only",
        "busy_timeout",
        "max_connections",
        "max_rows",
    ] {
        assert!(
            meta.config_schema["properties"].get(setting).is_some(),
            "{setting}"
        );
    }
    assert_eq!(meta.action("load").unwrap().input.kind, "records");
}

// ---------------------------------------------------------------------------------------
// the example workflow's data

fn example_db() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/sales.db")
}

/// The steps of `examples/workflows/data_sync_local.yaml`, called directly: extract from the
/// checked-in `sales.db`, normalize, upsert into a warehouse, and run again from the
/// reported watermark.
#[tokio::test]
async fn the_example_sales_db_syncs_into_a_warehouse() {
    let source_path = example_db();
    let guard = PermissionGuard::new(sqlite::ID, vec![read(source_path.parent().unwrap())], None);
    let mut settings = SqliteSettings::new(source_path.to_string_lossy());
    settings.read_only = true;
    let source = Db::new(
        SqliteConnector::open(settings, &guard).await.unwrap(),
        guard,
        '"',
    );
    let ws = Workspace::new();
    let warehouse = ws.open("warehouse.db").await;
    let extract = json!({
        "query": "SELECT id, order_date, region, customer, product, quantity, unit_price, amount, \
                  currency, updated_at FROM sales \
                  WHERE julianday(updated_at) > julianday(:last_sync)",
        "watermark": "updated_at"
    });
    let total = source.count("sales").await;
    assert!(
        total >= 200,
        "the sample has a few hundred rows, not {total}"
    );

    let extracted = source
        .call_with_vars(
            "extract",
            extract.clone(),
            Payload::Empty,
            vars(&[("last_sync", json!("1970-01-01T00:00:00Z"))]),
        )
        .await
        .unwrap();
    let extracted = extracted.into_records().unwrap();
    assert_eq!(extracted.num_rows() as i64, total);
    let max = extracted.schema().metadata()[WATERMARK_MAX_KEY].clone();

    let normalize = Call::new("normalize", Payload::Records(extracted)).with_config(json!({
        "lowercase": ["region", "currency"],
        "timestamps": {"updated_at": null},
        "target_schema": "analytics.sales_normalized"
    }));
    let normalized = DataTransformer::new().execute(normalize).await.unwrap();
    let normalized = normalized.into_records().unwrap();
    assert!(matches!(
        normalized
            .schema()
            .field_with_name("updated_at")
            .unwrap()
            .data_type(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_))
    ));

    let load = json!({"table": "sales_analytics", "mode": "upsert", "key": ["id"]});
    let loaded = warehouse
        .load(load.clone(), normalized.clone())
        .await
        .unwrap();
    assert_eq!(loaded["rows_written"].as_i64(), Some(total));
    // Running the load again updates the same rows instead of duplicating them.
    warehouse.load(load, normalized).await.unwrap();
    assert_eq!(warehouse.count("sales_analytics").await, total);
    let regions = warehouse
        .rows("SELECT DISTINCT region FROM sales_analytics ORDER BY region")
        .await;
    for r in &regions {
        let r = r["region"].as_str().unwrap();
        assert_eq!(r, r.trim().to_lowercase(), "normalized region");
    }

    let again = source
        .call_with_vars(
            "extract",
            extract,
            Payload::Empty,
            vars(&[("last_sync", json!(max))]),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(again.num_rows(), 0, "nothing is newer than the watermark");
}

#[tokio::test]
async fn execute_runs_ddl_and_dml_with_bound_values_and_counts_rows() {
    let ws = Workspace::new();
    let db = ws.open("exec.db").await;
    let created = db
        .call(
            "execute",
            json!({"sql": "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)"}),
            Payload::Empty,
        )
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(created["rows_affected"], 0);
    for (id, name) in [(1, "Ada"), (2, "Grace'); DROP TABLE people; --")] {
        db.call(
            "execute",
            json!({"sql": "INSERT INTO people (id, name) VALUES (:id, :name)", "params": {"id": id, "name": name}}),
            Payload::Empty,
        )
        .await
        .unwrap();
    }
    // The name that looks like SQL stayed a value.
    assert_eq!(db.count("people").await, 2);
    let updated = db
        .call_with_vars(
            "execute",
            json!({"sql": "UPDATE people SET name = upper(name) WHERE id >= :from"}),
            Payload::Empty,
            BTreeMap::from([("from".to_string(), json!(1))]),
        )
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(updated["rows_affected"], 2);
    let rows = db.rows("SELECT name FROM people WHERE id = 1").await;
    assert_eq!(rows[0]["name"], "ADA");
    // Bad SQL is a clear error, and nothing changed.
    let err = db
        .call(
            "execute",
            json!({"sql": "DELETE FROM nowhere"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    assert_eq!(db.count("people").await, 2);
}

// ---------------------------------------------------------------------------------------
// event sink

fn event(n: usize, payload: Payload) -> Event {
    Event::new(format!("e{n}"), payload)
}

#[tokio::test]
async fn the_sink_writes_good_events_and_reports_each_bad_one() {
    let ws = Workspace::new();
    let db = ws.open("sink.db").await;
    db.sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL, note TEXT)")
        .await;
    let bad = [1usize, 2, 640];
    let events: Vec<Event> = (0..1000)
        .map(|n| {
            let qty = if bad.contains(&n) {
                json!(null)
            } else {
                json!(n)
            };
            event(
                n,
                Payload::json(json!({"id": n, "qty": qty, "note": format!("order {n}")})),
            )
        })
        .collect();
    let sink = db.plugin.sink(SqlSinkOptions::append("orders")).unwrap();

    let report = sink.write(&events).await.unwrap();

    let failed: Vec<usize> = report.failed.iter().map(|(p, _)| *p).collect();
    assert_eq!(failed, bad.to_vec());
    for (position, err) in &report.failed {
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.message()
                .starts_with(&format!("event {position} (id e{position})")),
            "{err}"
        );
        assert!(
            err.to_string().contains("NOT NULL constraint failed"),
            "{err}"
        );
    }
    assert_eq!(db.count("orders").await, 997);
}

#[tokio::test]
async fn the_sink_reports_payloads_that_are_not_one_object_and_creates_the_table() {
    let ws = Workspace::new();
    let db = ws.open("sinkshape.db").await;
    let sink = db.plugin.sink(SqlSinkOptions::append("notes")).unwrap();

    let report = sink
        .write(&[
            event(
                0,
                Payload::json(json!({"id": 1, "text": "a", "meta": {"k": 1}})),
            ),
            event(1, Payload::json(json!(42))),
            event(2, Payload::Empty),
            event(3, Payload::json(json!({"id": 2, "text": 7}))),
        ])
        .await
        .unwrap();

    let failed: Vec<usize> = report.failed.iter().map(|(p, _)| *p).collect();
    assert_eq!(failed, vec![1, 2]);
    assert!(
        report.failed[0]
            .1
            .to_string()
            .contains("is a number, not one JSON object"),
        "{}",
        report.failed[0].1
    );
    // A field of two JSON kinds goes as text; an object as its JSON text.
    assert_eq!(
        db.rows("SELECT id, text, meta FROM notes ORDER BY id")
            .await,
        vec![
            json!({"id": 1, "text": "a", "meta": "{\"k\":1}"}),
            json!({"id": 2, "text": "7", "meta": null}),
        ]
    );
}

#[tokio::test]
async fn a_sink_on_a_read_only_database_is_refused_when_it_opens() {
    let ws = Workspace::new();
    ws.open("ro.db").await.sql("CREATE TABLE t (v)").await;
    let mut settings = ws.settings("ro.db");
    settings.read_only = true;
    settings.create_if_missing = false;
    let db = ws.open_with(settings).await;

    let err = db.plugin.sink(SqlSinkOptions::append("t")).unwrap_err();

    assert!(err.to_string().contains("read_only"), "{err}");
    let err = db
        .plugin
        .sink(SqlSinkOptions {
            method: LoadMethod::Copy,
            ..SqlSinkOptions::append("t")
        })
        .unwrap_err();
    assert!(err.to_string().contains("read_only"), "{err}");
}

#[tokio::test]
async fn copy_is_refused_for_sqlite() {
    let ws = Workspace::new();
    let db = ws.open("nocopy.db").await;

    let err = db
        .load(
            json!({"table": "t", "method": "copy"}),
            records(json!([{"id": 1}])),
        )
        .await
        .unwrap_err();
    let sink_err = db
        .plugin
        .sink(SqlSinkOptions {
            method: LoadMethod::Copy,
            ..SqlSinkOptions::append("t")
        })
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("SQLite has no bulk COPY"), "{err}");
    assert_eq!(sink_err.kind(), ErrorKind::ConfigInvalid);
}

// ---------------------------------------------------------------------------------------
// batch-by-batch extract

#[tokio::test]
async fn extract_batches_streams_a_large_table_in_batches_of_batch_rows() {
    let ws = Workspace::new();
    let db = ws.open("big.db").await;
    db.sql("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)")
        .await;
    db.sql(
        "INSERT INTO big WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 500000) \
         SELECT n, 'row ' || n FROM s",
    )
    .await;

    let config = ExtractConfig {
        query: "SELECT id, v FROM big WHERE id > :after".into(),
        params: json!({"after": 0}).as_object().cloned().unwrap(),
        watermark: Some("id".into()),
        batch_rows: Some(50_000),
        ..Default::default()
    };
    let mut stream = db
        .plugin
        .extract_batches(config, Default::default())
        .unwrap();
    let mut sizes = Vec::new();
    let mut next = 1i64;
    while let Some(batch) = stream.try_next().await.unwrap() {
        for id in batch.column(0).as_primitive::<Int64Type>().values() {
            assert_eq!(*id, next);
            next += 1;
        }
        sizes.push(batch.num_rows());
    }
    assert_eq!(sizes, vec![50_000; 10]);
    assert_eq!(next, 500_001);
}

#[tokio::test]
async fn dropping_a_batch_stream_stops_the_query_and_frees_its_connection() {
    let ws = Workspace::new();
    let mut settings = ws.settings("drop.db");
    settings.max_connections = 1;
    let db = ws.open_with(settings).await;
    db.sql("CREATE TABLE big (id INTEGER PRIMARY KEY)").await;
    db.sql(
        "INSERT INTO big WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100000) \
         SELECT n FROM s",
    )
    .await;
    let config = ExtractConfig {
        query: "SELECT id FROM big".into(),
        batch_rows: Some(1000),
        ..Default::default()
    };

    let mut stream = db
        .plugin
        .extract_batches(config, Default::default())
        .unwrap();
    let first = stream.try_next().await.unwrap().unwrap();
    drop(stream);

    assert_eq!(first.num_rows(), 1000);
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), db.count("big"))
        .await
        .expect("the stream's connection went back to the pool");
    assert_eq!(n, 100_000);
}

#[tokio::test]
async fn a_batch_stream_reports_errors_as_its_last_item() {
    let ws = Workspace::new();
    let db = ws.open("streamerr.db").await;
    db.sql("CREATE TABLE t (v INTEGER)").await;
    db.sql("INSERT INTO t VALUES (1), (2), (3)").await;

    let mut stream = db
        .plugin
        .extract_batches(
            ExtractConfig {
                query: "SELECT v FROM t".into(),
                max_rows: Some(2),
                ..Default::default()
            },
            Default::default(),
        )
        .unwrap();

    let err = stream.try_next().await.unwrap_err();
    assert!(err.to_string().contains("more than 2 rows"), "{err}");
    assert!(stream.try_next().await.unwrap().is_none());
}

#[tokio::test]
async fn a_later_batch_that_does_not_fit_the_first_is_an_error_naming_both_rows() {
    let ws = Workspace::new();
    let db = ws.open("drift.db").await;
    db.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v)").await;
    db.sql("INSERT INTO t VALUES (1, 10), (2, 20), (3, 'thirty')")
        .await;

    let err = db
        .call(
            "extract",
            json!({"query": "SELECT v FROM t ORDER BY id", "batch_rows": 2}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    let text = err.to_string();
    assert!(
        text.contains("column `v` mixes INTEGER and TEXT values (rows 1 and 3"),
        "{text}"
    );
    let rows = db
        .rows("SELECT CAST(v AS TEXT) AS v FROM t ORDER BY id")
        .await;
    assert_eq!(rows.len(), 3, "the suggested CAST reads them all");
}

#[tokio::test]
async fn a_locked_database_fails_the_whole_batch_with_a_temporary_error() {
    use sqlx::Connection;
    let ws = Workspace::new();
    let mut settings = ws.settings("busy.db");
    settings.busy_timeout = std::time::Duration::from_millis(200);
    let db = ws.open_with(settings).await;
    db.sql("CREATE TABLE t (id INTEGER)").await;
    let sink = db.plugin.sink(SqlSinkOptions::append("t")).unwrap();
    let events = [
        event(0, Payload::json(json!({"id": 1}))),
        event(1, Payload::json(json!({"id": 2}))),
    ];
    // Another writer holds the database's write lock.
    let url = format!("sqlite://{}", ws.path("busy.db").display());
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    let err = sink.write(&events).await.unwrap_err();

    assert!(err.is_temporary(), "{err}");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    assert!(sink.write(&events).await.unwrap().is_complete());
    assert_eq!(db.count("t").await, 2);
}
