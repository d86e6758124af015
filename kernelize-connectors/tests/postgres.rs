//! The `postgres-connector` plugin against the real PostgreSQL server on 127.0.0.1:5432
//! (database `test`, user `postgres`, trust authentication); `scripts/services` starts it.
//!
//! Each test works in a schema of its own (first on the connection's `search_path`) and
//! drops it at the end.
//!
//! Run with `cargo nextest run -p kernelize-connectors --features postgres --test postgres`.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use kernelize_connectors::sql::actions::ExtractConfig;
use kernelize_connectors::sql::load::LoadMethod;
use kernelize_connectors::sql::postgres::{self, PostgresConnector, PostgresSettings};
use kernelize_connectors::sql::result_set::{WATERMARK_COLUMN_KEY, WATERMARK_MAX_KEY};
use kernelize_connectors::sql::sink::{SinkMode, SqlSinkOptions};
use kernelize_core::arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use kernelize_core::arrow_schema::{DataType, TimeUnit};
use kernelize_core::{
    Call, ErrorKind, Event, EventSink, Payload, Permission, PermissionGuard, Plugin, PluginConfig,
    PluginManager, Records,
};
use serde_json::{Value, json};
use sql_client::{SqlClient, batch, rand_suffix, records, types_of, vars};

mod sql_client;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";

// ---------------------------------------------------------------------------------------
// helpers

fn grant_local() -> PermissionGuard {
    PermissionGuard::new(
        postgres::ID,
        vec![Permission::Network {
            host: "127.0.0.1".into(),
        }],
        None,
    )
}

/// A schema of the test's own on the real server, and a connector whose `search_path`
/// starts with it.
struct Pg {
    schema: String,
    client: SqlClient<PostgresConnector>,
}

impl std::ops::Deref for Pg {
    type Target = SqlClient<PostgresConnector>;

    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl Pg {
    async fn new(test: &str) -> Pg {
        Self::with(test, |_| {}).await
    }

    async fn with(test: &str, adjust: impl FnOnce(&mut PostgresSettings)) -> Pg {
        let schema = format!("k_{test}_{}_{:x}", std::process::id(), rand_suffix());
        let admin = PostgresConnector::open(PostgresSettings::new(SERVER), &grant_local())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not answering at {SERVER} ({e}); start it with scripts/services"
                )
            });
        let mut call = Call::new("execute", Payload::Empty).with_config(json!({
            "sql": format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")
        }));
        call.permissions = grant_local();
        admin.execute(call).await.unwrap();
        let mut call = Call::new("execute", Payload::Empty)
            .with_config(json!({ "sql": format!("CREATE SCHEMA \"{schema}\"") }));
        call.permissions = grant_local();
        admin.execute(call).await.unwrap();
        admin.shutdown().await.unwrap();

        let mut settings =
            PostgresSettings::new(format!("{SERVER}?options=-c%20search_path%3D{schema}"));
        settings.max_connections = 2;
        adjust(&mut settings);
        let plugin = PostgresConnector::open(settings, &grant_local())
            .await
            .unwrap();
        Pg {
            schema,
            client: SqlClient::new(plugin, grant_local(), '"'),
        }
    }

    /// Drops the schema and everything in it.
    async fn finish(self) {
        self.sql(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
            .await;
        self.plugin.shutdown().await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// query: types

const ALL_TYPES: &str = "CREATE TABLE all_types (
    i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric, b bool, t text,
    v varchar(10), c char(3), raw bytea, d date, ts timestamp, tz timestamptz, j json,
    jb jsonb, u uuid)";

const ALL_VALUES: &str = "INSERT INTO all_types VALUES
    (-2, 40000, 9000000000, 1.5, 2.25, 12345678901234567890.000123, true, 'text', 'var',
     'ab', '\\x00ff', '2026-11-27', '2026-11-27 03:25:00.5', '2026-11-27 03:25:00+02',
     '{\"b\": 1, \"a\": [true]}', '{\"b\": 1, \"a\": null}',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
    (NULL, NULL, NULL, NULL, NULL, -0.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL)";

#[tokio::test]
async fn every_supported_type_reads_as_its_arrow_type() {
    let db = Pg::new("types").await;
    db.sql(ALL_TYPES).await;
    db.sql(ALL_VALUES).await;

    let records = db
        .sql("SELECT * FROM all_types ORDER BY i2 NULLS LAST")
        .await
        .into_records()
        .unwrap();

    let utc = Some(Arc::from("UTC"));
    assert_eq!(
        types_of(&records),
        vec![
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Float64,
            DataType::Float64,
            DataType::Utf8,
            DataType::Boolean,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Binary,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, utc),
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
        ]
    );
    let rows = records.to_json_rows().unwrap();
    assert_eq!(rows[0]["i2"], json!(-2));
    assert_eq!(rows[0]["i8"], json!(9_000_000_000i64));
    assert_eq!(rows[0]["f4"], json!(1.5));
    assert_eq!(rows[0]["n"], json!("12345678901234567890.000123"));
    assert_eq!(rows[1]["n"], json!("-0.5"));
    assert_eq!(rows[0]["b"], json!(true));
    assert_eq!(rows[0]["c"], json!("ab "));
    assert_eq!(rows[0]["j"], json!("{\"b\": 1, \"a\": [true]}"));
    assert_eq!(rows[0]["jb"], json!("{\"a\": null, \"b\": 1}"));
    assert_eq!(rows[0]["u"], json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(rows[0]["d"], json!("2026-11-27"));
    let batch = &records.batches()[0];
    let tz = batch
        .column(13)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        tz.value(0),
        chrono::DateTime::parse_from_rfc3339("2026-11-27T01:25:00Z")
            .unwrap()
            .timestamp_micros()
    );
    let ts = batch
        .column(12)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        ts.value(0),
        chrono::DateTime::parse_from_rfc3339("2026-11-27T03:25:00.5Z")
            .unwrap()
            .timestamp_micros()
    );
    let raw = batch
        .column(10)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .unwrap();
    assert_eq!(raw.value(0), &[0x00, 0xff]);
    assert!(rows[1].get("i2").is_none_or(Value::is_null));
    db.finish().await;
}

#[tokio::test]
async fn an_empty_result_keeps_the_column_types() {
    let db = Pg::new("empty").await;
    db.sql(ALL_TYPES).await;

    let records = db
        .sql("SELECT i8, f8, b, raw, d, ts, tz, n FROM all_types")
        .await
        .into_records()
        .unwrap();

    assert_eq!(records.num_rows(), 0);
    assert_eq!(
        types_of(&records),
        vec![
            DataType::Int64,
            DataType::Float64,
            DataType::Boolean,
            DataType::Binary,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Utf8,
        ]
    );
    db.finish().await;
}

#[tokio::test]
async fn types_round_trip_through_load_into_an_existing_table() {
    let db = Pg::new("roundtrip").await;
    db.sql(ALL_TYPES).await;
    db.sql(ALL_VALUES).await;
    db.call(
        "execute",
        json!({"sql": "CREATE TABLE copy_of (LIKE all_types)"}),
        Payload::Empty,
    )
    .await
    .unwrap();
    let original = db
        .sql("SELECT * FROM all_types ORDER BY i2 NULLS LAST")
        .await
        .into_records()
        .unwrap();

    let out = db
        .load(
            json!({"table": "copy_of", "create": false}),
            original.clone(),
        )
        .await
        .unwrap();

    assert_eq!(out["rows_written"], 2);
    let copied = db
        .sql("SELECT * FROM copy_of ORDER BY i2 NULLS LAST")
        .await
        .into_records()
        .unwrap();
    assert_eq!(
        copied.to_json_rows().unwrap(),
        original.to_json_rows().unwrap()
    );
    assert_eq!(
        db.rows("SELECT count(*) AS n FROM all_types a JOIN copy_of c ON a.n = c.n AND a.u IS NOT DISTINCT FROM c.u AND a.jb IS NOT DISTINCT FROM c.jb AND a.tz IS NOT DISTINCT FROM c.tz")
            .await,
        vec![json!({"n": 2})],
        "numeric, uuid, jsonb and timestamptz values are equal in PostgreSQL's own terms"
    );
    db.finish().await;
}

#[tokio::test]
async fn an_unsupported_column_type_is_refused_naming_column_and_type() {
    let db = Pg::new("unsupported").await;

    let err = db
        .call(
            "query",
            json!({"sql": "SELECT interval '1 day' AS span"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let text = err.to_string();
    assert!(text.contains("column `span`"), "{text}");
    assert!(text.contains("INTERVAL"), "{text}");
    assert!(text.contains("span::text"), "{text}");
    db.finish().await;
}

#[tokio::test]
async fn a_statement_without_result_columns_returns_rows_affected() {
    let db = Pg::new("affected").await;
    db.sql("CREATE TABLE t (v int)").await;

    let out = db.sql("INSERT INTO t VALUES (1), (2), (3)").await;
    assert_eq!(out.into_json().unwrap(), json!({"rows_affected": 3}));
    let returned = db.rows("DELETE FROM t WHERE v > 1 RETURNING v").await;
    assert_eq!(returned.len(), 2);
    db.finish().await;
}

#[tokio::test]
async fn execute_runs_ddl_and_dml_and_returns_rows_affected() {
    let db = Pg::new("execute").await;

    let ddl = db
        .call(
            "execute",
            json!({"sql": "CREATE TABLE t (id int PRIMARY KEY, v text)"}),
            Payload::Empty,
        )
        .await
        .unwrap();
    let dml = db
        .call(
            "execute",
            json!({"sql": "INSERT INTO t SELECT g, :v FROM generate_series(1, 5) g", "params": {"v": "x"}}),
            Payload::Empty,
        )
        .await
        .unwrap();
    let update = db
        .call(
            "execute",
            json!({"sql": "UPDATE t SET v = 'y' WHERE id > :min RETURNING id", "params": {"min": 3}}),
            Payload::Empty,
        )
        .await
        .unwrap();

    assert_eq!(ddl.into_json().unwrap(), json!({"rows_affected": 0}));
    assert_eq!(dml.into_json().unwrap(), json!({"rows_affected": 5}));
    assert_eq!(update.into_json().unwrap(), json!({"rows_affected": 2}));
    db.finish().await;
}

#[tokio::test]
async fn a_syntax_error_is_invalid_input_with_postgres_words_and_code() {
    let db = Pg::new("syntax").await;

    let err = db
        .call("query", json!({"sql": "SELEC 1"}), Payload::Empty)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("syntax error"), "{err}");
    assert_eq!(err.context_value("code"), Some("42601"));
    db.finish().await;
}

// ---------------------------------------------------------------------------------------
// binding

#[tokio::test]
async fn placeholders_bind_as_the_type_postgres_infers() {
    let db = Pg::new("infer").await;
    db.sql("CREATE TABLE t (id int4, at timestamptz, day date, amount numeric, u uuid, doc jsonb, ok bool)")
        .await;
    db.sql("INSERT INTO t VALUES (1, '2026-01-01T00:00:00Z', '2026-01-01', 10.5, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"k\": 1}', true), (2, '2026-02-01T00:00:00Z', '2026-02-01', 20.25, NULL, '{\"k\": 2}', false)")
        .await;

    let rows = db
        .call_with_vars(
            "query",
            json!({
                "sql": "SELECT id FROM t WHERE id = :id AND at > :since AND day >= :day \
                        AND amount > :amount AND doc @> :doc AND ok = :ok \
                        AND (u = :u OR :u IS NULL OR true)",
                "params": {"id": "2", "amount": "20.1", "doc": {"k": 2}, "ok": "false",
                           "day": "2026-01-15", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}
            }),
            Payload::Empty,
            vars(&[("since", json!("2026-01-15T00:00:00+01:00"))]),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap()
        .to_json_rows()
        .unwrap();

    assert_eq!(rows, vec![json!({"id": 2})]);
    db.finish().await;
}

#[tokio::test]
async fn params_win_over_run_variables() {
    let db = Pg::new("params").await;

    let rows = db
        .call_with_vars(
            "query",
            json!({"sql": "SELECT :a AS a, :b AS b, :a || '!' AS again", "params": {"a": "params"}}),
            Payload::Empty,
            vars(&[("a", json!("vars")), ("b", json!("run"))]),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap()
        .to_json_rows()
        .unwrap();

    assert_eq!(
        rows,
        vec![json!({"a": "params", "b": "run", "again": "params!"})]
    );
    db.finish().await;
}

#[tokio::test]
async fn an_injection_attempt_stays_a_value() {
    let db = Pg::new("injection").await;
    db.sql("CREATE TABLE users (name text)").await;
    db.sql("INSERT INTO users VALUES ('alice'), ('bob')").await;

    for attack in [
        "x' OR '1'='1",
        "'; DROP TABLE users; --",
        "bob' --",
        "$1",
        "$$ OR true $$",
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
    db.finish().await;
}

#[tokio::test]
async fn a_value_that_does_not_convert_names_the_slot_but_not_the_value() {
    let db = Pg::new("badvalue").await;
    db.sql("CREATE TABLE t (id int4)").await;

    let err = db
        .call(
            "query",
            json!({"sql": "SELECT id FROM t WHERE id = :id", "params": {"id": "secret-ish text"}}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let text = err.to_string();
    assert!(text.contains("$1"), "{text}");
    assert!(text.contains("INT4"), "{text}");
    assert!(!text.contains("secret-ish"), "{text}");
    db.finish().await;
}

#[tokio::test]
async fn postgres_own_markers_and_second_statements_are_refused() {
    let db = Pg::new("markers").await;
    db.sql("CREATE TABLE t (v int)").await;

    let err = db
        .call("query", json!({"sql": "SELECT $1"}), Payload::Empty)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("parameter marker"), "{err}");
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
    // Dollar-quoted strings, casts and comments are not placeholders.
    let rows = db
        .rows("SELECT $q$:not_a_name$q$ AS s, '1'::int AS i /* :nor /* :this */ */")
        .await;
    assert_eq!(rows, vec![json!({"s": ":not_a_name", "i": 1})]);
    db.finish().await;
}

// ---------------------------------------------------------------------------------------
// extract

async fn sales(db: &Pg) {
    db.sql("CREATE TABLE sales (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz)")
        .await;
    db.sql(
        "INSERT INTO sales VALUES \
         (1, 10.00, '2026-11-27T05:00:00Z'), \
         (2, 20.00, '2026-11-27T03:25:00Z'), \
         (3, 30.00, '2026-11-27T03:25:00.5Z'), \
         (4, 40.00, '2026-11-26T00:00:00Z')",
    )
    .await;
}

#[tokio::test]
async fn extract_reads_rows_after_last_sync_ordered_by_the_watermark() {
    let db = Pg::new("extract").await;
    sales(&db).await;

    let records = db
        .call_with_vars(
            "extract",
            json!({"query": "SELECT id, amount, updated_at FROM sales WHERE updated_at > :last_sync",
                   "watermark": "updated_at"}),
            Payload::Empty,
            vars(&[("last_sync", json!("2026-11-27T00:00:00Z"))]),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap();

    let rows = records.to_json_rows().unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![2, 3, 1]);
    assert_eq!(rows[0]["amount"], json!("20.00"));
    let meta = records.schema().metadata().clone();
    assert_eq!(
        meta.get(WATERMARK_COLUMN_KEY).map(String::as_str),
        Some("updated_at")
    );
    let max = meta.get(WATERMARK_MAX_KEY).cloned().unwrap();
    assert_eq!(max, "2026-11-27T05:00:00Z");

    // The next run starts from the reported maximum and finds nothing new, then only
    // what changed since.
    let again = db
        .call_with_vars(
            "extract",
            json!({"query": "SELECT id FROM sales WHERE updated_at > :last_sync",
                   "watermark": "id"}),
            Payload::Empty,
            vars(&[("last_sync", json!(max.clone()))]),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(again.num_rows(), 0);
    db.sql("UPDATE sales SET updated_at = '2026-11-28T00:00:00Z' WHERE id = 4")
        .await;
    let changed = db
        .call_with_vars(
            "extract",
            json!({"query": "SELECT id FROM sales WHERE updated_at > :last_sync"}),
            Payload::Empty,
            vars(&[("last_sync", json!(max))]),
        )
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(changed, json!([{"id": 4}]));
    db.finish().await;
}

#[tokio::test]
async fn extract_refuses_a_statement_without_rows_before_running_it() {
    let db = Pg::new("extractdml").await;
    sales(&db).await;

    let err = db
        .call(
            "extract",
            json!({"query": "DELETE FROM sales"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert!(err.to_string().contains("returns no rows"), "{err}");
    assert_eq!(db.count("sales").await, 4);
    db.finish().await;
}

#[tokio::test]
async fn max_rows_bounds_what_a_query_holds() {
    let db = Pg::with("maxrows", |s| s.max_rows = 4).await;

    let err = db
        .call(
            "query",
            json!({"sql": "SELECT g FROM generate_series(1, 10) g"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 4 rows"), "{err}");
    assert_eq!(
        db.rows("SELECT g FROM generate_series(1, 4) g").await.len(),
        4
    );
    db.finish().await;
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
async fn load_creates_the_table_with_postgres_types() {
    let db = Pg::new("create").await;

    let out = db
        .load(json!({"table": "sales"}), typed_records())
        .await
        .unwrap();

    assert_eq!(
        out,
        json!({"rows_written": 2, "table": "sales", "created": true})
    );
    let declared = db
        .rows(&format!(
            "SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns \
             WHERE table_schema = '{}' AND table_name = 'sales' ORDER BY ordinal_position",
            db.schema
        ))
        .await;
    assert_eq!(
        declared,
        vec![
            json!({"name": "id", "type": "bigint"}),
            json!({"name": "amount", "type": "double precision"}),
            json!({"name": "name", "type": "text"}),
            json!({"name": "paid", "type": "boolean"}),
            json!({"name": "updated_at", "type": "timestamp with time zone"}),
            json!({"name": "day", "type": "date"}),
            json!({"name": "raw", "type": "bytea"}),
        ]
    );
    let rows = db
        .rows("SELECT id, amount, name, paid, updated_at::text AS at, day, encode(raw, 'hex') AS raw FROM sales ORDER BY id")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "amount": 1.5, "name": "Acme", "paid": true,
                   "at": "2026-11-02 09:15:00+00", "day": "2024-10-04", "raw": "01"}),
            json!({"id": 2, "amount": null, "name": "O'Brien \"Ltd\"", "paid": false,
                   "at": "2026-11-02 09:40:00.25+00", "day": "2024-10-05", "raw": ""}),
        ]
    );
    db.finish().await;
}

#[tokio::test]
async fn load_append_upsert_and_replace() {
    let db = Pg::new("modes").await;
    let upsert = json!({"table": "customers", "mode": "upsert", "key": ["id"]});
    db.load(
        upsert.clone(),
        records(json!([{"id": 1, "name": "Acme"}, {"id": 2, "name": "Globex"}])),
    )
    .await
    .unwrap();

    let out = db
        .load(
            upsert,
            records(json!([{"id": 2, "name": "Globex Corp"}, {"id": 3, "name": "Initech"}])),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"rows_written": 2, "table": "customers", "created": false})
    );
    assert_eq!(
        db.rows("SELECT id, name FROM customers ORDER BY id").await,
        vec![
            json!({"id": 1, "name": "Acme"}),
            json!({"id": 2, "name": "Globex Corp"}),
            json!({"id": 3, "name": "Initech"}),
        ]
    );

    let out = db
        .load(
            json!({"table": "customers", "mode": "append"}),
            records(json!([{"id": 4, "name": "Umbrella"}])),
        )
        .await
        .unwrap();
    assert_eq!(out["rows_written"], 1);
    assert_eq!(db.count("customers").await, 4);

    let out = db
        .load(
            json!({"table": "customers", "mode": "replace"}),
            records(json!([{"id": 9, "name": "Only"}])),
        )
        .await
        .unwrap();
    assert_eq!(out["rows_written"], 1);
    assert_eq!(
        db.rows("SELECT id FROM customers").await,
        vec![json!({"id": 9})]
    );
    db.finish().await;
}

#[tokio::test]
async fn load_converts_text_into_existing_jsonb_uuid_and_numeric_columns() {
    let db = Pg::new("convert").await;
    db.sql("CREATE TABLE t (id int4 PRIMARY KEY, doc jsonb, u uuid, amount numeric(12,3), at timestamp)")
        .await;

    db.load(
        json!({"table": "t", "mode": "upsert", "key": ["id"]}),
        records(json!([
            {"id": 1, "doc": "{\"a\": 1}", "u": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
             "amount": "12.345", "at": "2026-11-27T03:25:00"},
            {"id": 2, "doc": null, "u": null, "amount": "7", "at": null}
        ])),
    )
    .await
    .unwrap();

    assert_eq!(
        db.rows("SELECT id, doc->>'a' AS a, u::text AS u, amount::text AS amount, at::text AS at FROM t ORDER BY id")
            .await,
        vec![
            json!({"id": 1, "a": "1", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                   "amount": "12.345", "at": "2026-11-27 03:25:00"}),
            json!({"id": 2, "a": null, "u": null, "amount": "7.000", "at": null}),
        ]
    );
    db.finish().await;
}

#[tokio::test]
async fn load_with_add_columns_evolves_the_table() {
    let db = Pg::new("evolve").await;
    db.load(json!({"table": "t"}), records(json!([{"id": 1}])))
        .await
        .unwrap();

    let err = db
        .load(
            json!({"table": "t"}),
            records(json!([{"id": 2, "note": "x"}])),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no column `note`"), "{err}");

    db.load(
        json!({"table": "t", "add_columns": true}),
        records(json!([{"id": 2, "note": "x", "score": 1.5}])),
    )
    .await
    .unwrap();
    assert_eq!(
        db.rows("SELECT id, note, score FROM t ORDER BY id").await,
        vec![
            json!({"id": 1, "note": null, "score": null}),
            json!({"id": 2, "note": "x", "score": 1.5}),
        ]
    );
    db.finish().await;
}

#[tokio::test]
async fn a_failed_load_leaves_the_table_as_before() {
    let db = Pg::new("rollback").await;
    db.sql("CREATE TABLE t (id bigint NOT NULL UNIQUE)").await;
    db.sql("INSERT INTO t VALUES (1), (2), (3)").await;
    // 1001 new rows fill the first INSERT (1000 rows) and start a second, whose duplicate
    // of id 2 fails after the first INSERT went in.
    let mut ids: Vec<i64> = (100..1101).collect();
    ids.push(2);
    let rows = batch(vec![("id", Arc::new(Int64Array::from(ids)) as ArrayRef)]);

    let err = db.load(json!({"table": "t"}), rows).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("duplicate key"), "{err}");
    assert_eq!(err.context_value("code"), Some("23505"));
    assert_eq!(err.context_value("rows"), Some("1001-1002"));
    assert_eq!(
        db.count("t").await,
        3,
        "the first INSERT was rolled back too"
    );
    db.finish().await;
}

#[tokio::test]
async fn a_failed_load_does_not_leave_the_table_it_created() {
    let db = Pg::new("rollbackcreate").await;

    let err = db
        .load(
            json!({"table": "t", "mode": "upsert", "key": ["id"]}),
            records(json!([{"id": 1, "v": "a"}, {"id": null, "v": "b"}])),
        )
        .await
        .unwrap_err();

    assert!(err.to_string().contains("null value"), "{err}");
    assert_eq!(
        db.rows("SELECT to_regclass('t')::text AS t").await,
        vec![json!({"t": null})]
    );
    db.finish().await;
}

#[tokio::test]
async fn load_batches_twenty_thousand_rows_under_the_bind_limit() {
    let db = Pg::new("bulk").await;
    let n = 20_000i64;
    let ids: Vec<i64> = (0..n).collect();
    let rows = batch(vec![
        ("id", Arc::new(Int64Array::from(ids.clone())) as ArrayRef),
        (
            "a",
            Arc::new(Float64Array::from(
                ids.iter().map(|i| *i as f64 / 2.0).collect::<Vec<_>>(),
            )),
        ),
        (
            "b",
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("row {i}")).collect::<Vec<_>>(),
            )),
        ),
        (
            "c",
            Arc::new(BooleanArray::from(
                ids.iter().map(|i| i % 2 == 0).collect::<Vec<_>>(),
            )),
        ),
        (
            "d",
            Arc::new(Int64Array::from(
                ids.iter().map(|i| i * 3).collect::<Vec<_>>(),
            )),
        ),
    ]);

    let out = db
        .load(
            json!({"table": "bulk", "mode": "upsert", "key": ["id"]}),
            rows,
        )
        .await
        .unwrap();

    assert_eq!(out["rows_written"], n);
    assert_eq!(
        db.rows("SELECT count(*) AS n, sum(d) AS d, count(*) FILTER (WHERE c) AS evens FROM bulk")
            .await,
        vec![json!({"n": n, "d": "599970000", "evens": n / 2})]
    );
    db.finish().await;
}

#[tokio::test]
async fn a_wide_load_splits_inserts_at_65535_values() {
    let db = Pg::new("wide").await;
    // 100 columns x 1000 rows = 100,000 values: more than one statement may bind.
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
    assert_eq!(
        db.rows("SELECT sum(c99)::int8 AS s FROM wide").await,
        vec![json!({"s": (0..1000).map(|r| r * 100 + 99).sum::<i64>()})]
    );
    db.finish().await;
}

#[tokio::test]
async fn load_keeps_case_sensitive_identifiers_and_schema_qualified_tables() {
    let db = Pg::new("idents").await;
    let table = format!("{}.Mixed Case", db.schema);

    db.load(
        json!({"table": table}),
        records(json!([{"Id": 1, "id": 2, "we\"ird": "x"}])),
    )
    .await
    .unwrap();

    assert_eq!(
        db.rows("SELECT \"Id\", id, \"we\"\"ird\" AS w FROM \"Mixed Case\"")
            .await,
        vec![json!({"Id": 1, "id": 2, "w": "x"})]
    );
    db.finish().await;
}

// ---------------------------------------------------------------------------------------
// settings, permissions, errors

fn manager_with(settings: Value, grants: Vec<Permission>) -> PluginManager {
    let manager = PluginManager::new();
    manager.install(postgres::factory()).unwrap();
    let mut config = PluginConfig::with_settings(settings);
    config.permissions = grants;
    manager.configure(postgres::ID, config);
    manager
}

#[tokio::test]
async fn activation_without_a_network_grant_is_denied() {
    let manager = manager_with(
        json!({"url": SERVER}),
        vec![Permission::Network {
            host: "db.example.com".into(),
        }],
    );

    let err = manager.activate(postgres::ID).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let text = err.to_string();
    assert!(text.contains("network:127.0.0.1"), "{text}");
    assert!(
        text.contains("grant network access to `127.0.0.1`"),
        "{text}"
    );
}

#[tokio::test]
async fn the_manager_activates_it_with_a_grant_and_calls_it() {
    let manager = manager_with(
        json!({"url": SERVER, "max_connections": 1, "acquire_timeout": "5s", "statement_timeout": "10s"}),
        vec![Permission::Network {
            host: "127.0.0.1".into(),
        }],
    );
    manager.activate(postgres::ID).await.unwrap();

    let out = manager
        .call(
            postgres::ID,
            Call::new("query", Payload::Empty)
                .with_config(json!({"sql": "SELECT current_setting('statement_timeout') AS t"})),
        )
        .await
        .unwrap();

    assert_eq!(out.into_json().unwrap(), json!([{"t": "10s"}]));
}

#[tokio::test]
async fn every_call_is_checked_against_its_grants() {
    let db = Pg::new("percall").await;

    let mut call = Call::new("query", Payload::Empty).with_config(json!({"sql": "SELECT 1"}));
    call.permissions = PermissionGuard::new(postgres::ID, vec![], None);
    let err = db.plugin.execute(call).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("network:127.0.0.1"), "{err}");
    db.finish().await;
}

#[tokio::test]
async fn a_bad_url_is_config_invalid_without_the_password() {
    for url in [
        "postgres://app:s3cr3t-pw@127.0.0.1:notaport/test",
        "mysql://app:s3cr3t-pw@127.0.0.1/test",
        "app:s3cr3t-pw@127.0.0.1/test",
    ] {
        let err = PostgresConnector::open(PostgresSettings::new(url), &grant_local())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{url}");
        let text = format!("{err} {err:?}");
        assert!(text.contains("`url` is not a PostgreSQL URL"), "{text}");
        assert!(!text.contains("s3cr3t-pw"), "{text}");
    }
}

#[tokio::test]
async fn an_unreachable_server_names_it_without_the_password() {
    let mut settings = PostgresSettings::new("postgres://app:s3cr3t-pw@127.0.0.1:1/test");
    settings.acquire_timeout = Duration::from_secs(5);

    let err = PostgresConnector::open(settings, &grant_local())
        .await
        .unwrap_err();

    let text = format!("{err} {err:?}");
    assert!(text.contains("127.0.0.1:1/test"), "{text}");
    assert!(!text.contains("s3cr3t-pw"), "{text}");
    assert!(err.is_temporary(), "{text}");
}

#[tokio::test]
async fn a_missing_database_is_not_found() {
    let err = PostgresConnector::open(
        PostgresSettings::new("postgres://postgres@127.0.0.1:5432/no_such_db_kernelize"),
        &grant_local(),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("no_such_db_kernelize"), "{err}");
}

#[tokio::test]
async fn statement_timeout_cancels_a_long_statement() {
    let db = Pg::with("timeout", |s| {
        s.statement_timeout = Some(Duration::from_millis(200))
    })
    .await;

    let err = db
        .call(
            "execute",
            json!({"sql": "SELECT pg_sleep(5)"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("statement_timeout"), "{err}");
    db.finish().await;
}

#[tokio::test]
async fn unknown_settings_are_refused() {
    let manager = manager_with(
        json!({"url": SERVER, "max_conections": 2}),
        vec![Permission::Network {
            host: "127.0.0.1".into(),
        }],
    );

    let err = manager.activate(postgres::ID).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    assert!(err.to_string().contains("max_conections"), "{err}");
}

#[tokio::test]
async fn metadata_describes_the_plugin() {
    let meta = PostgresConnector::new().metadata();

    assert_eq!(meta.id, "postgres-connector");
    assert_eq!(meta.category, kernelize_core::Category::Connector);
    let actions: Vec<&str> = meta.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(actions, vec!["execute", "extract", "load", "query"]);
    for setting in [
        "url",
        "max_connections",
        "acquire_timeout",
        "statement_timeout",
        "max_rows",
    ] {
        assert!(
            meta.config_schema["properties"].get(setting).is_some(),
            "{setting}"
        );
    }
    assert_eq!(meta.config_schema["additionalProperties"], json!(false));
}

// ---------------------------------------------------------------------------------------
// event sink

fn event(n: usize, payload: Payload) -> Event {
    Event::new(format!("e{n}"), payload)
}

#[tokio::test]
async fn the_sink_writes_good_events_and_reports_each_bad_one() {
    let db = Pg::new("sink").await;
    db.sql(
        "CREATE TABLE orders (id bigint PRIMARY KEY, qty int NOT NULL CHECK (qty > 0), note text)",
    )
    .await;
    let bad = [0usize, 333, 999];
    let events: Vec<Event> = (0..1000)
        .map(|n| {
            let qty = if bad.contains(&n) { -1 } else { n as i64 + 1 };
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
        assert!(!err.is_temporary());
        assert!(
            err.message()
                .starts_with(&format!("event {position} (id e{position})")),
            "{err}"
        );
        assert!(err.to_string().contains("orders_qty_check"), "{err}");
        assert_eq!(err.context_value("code"), Some("23514"));
    }
    assert_eq!(db.count("orders").await, 997);
    db.finish().await;
}

#[tokio::test]
async fn the_sink_reports_a_payload_that_is_not_one_object() {
    let db = Pg::new("sinkshape").await;
    let sink = db.plugin.sink(SqlSinkOptions::append("notes")).unwrap();

    let report = sink
        .write(&[
            event(0, Payload::json(json!({"id": 1, "text": "a"}))),
            event(1, Payload::json(json!("just a string"))),
            event(
                2,
                Payload::bytes(&br#"{"id": 2, "text": "b"}"#[..], "text/plain"),
            ),
            event(3, Payload::bytes(&b"{\"id\": "[..], "application/json")),
        ])
        .await
        .unwrap();

    let failed: Vec<usize> = report.failed.iter().map(|(p, _)| *p).collect();
    assert_eq!(failed, vec![1, 3]);
    assert!(
        report.failed[0]
            .1
            .to_string()
            .contains("is a string, not one JSON object"),
        "{}",
        report.failed[0].1
    );
    assert!(
        report.failed[1].1.to_string().contains("not valid JSON"),
        "{}",
        report.failed[1].1
    );
    assert_eq!(
        db.rows("SELECT id, text FROM notes ORDER BY id").await,
        vec![json!({"id": 1, "text": "a"}), json!({"id": 2, "text": "b"})]
    );
    db.finish().await;
}

#[tokio::test]
async fn the_sink_upserts_with_copy_and_finds_bad_rows_the_same_way() {
    let db = Pg::new("sinkcopy").await;
    db.sql("CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL CHECK (qty >= 0))")
        .await;
    let mut options = SqlSinkOptions::append("stock");
    options.mode = SinkMode::Upsert;
    options.key = vec!["sku".into()];
    options.method = LoadMethod::Copy;
    let sink = db.plugin.sink(options).unwrap();
    let events: Vec<Event> = (0..50)
        .map(|n| {
            let qty = if n == 7 { -5 } else { n as i64 };
            event(
                n,
                Payload::json(json!({"sku": format!("s{n}"), "qty": qty})),
            )
        })
        .collect();

    let report = sink.write(&events).await.unwrap();
    let again = sink
        .write(&[event(0, Payload::json(json!({"sku": "s1", "qty": 100})))])
        .await
        .unwrap();

    let failed: Vec<usize> = report.failed.iter().map(|(p, _)| *p).collect();
    assert_eq!(failed, vec![7]);
    assert!(again.is_complete());
    assert_eq!(db.count("stock").await, 49);
    assert_eq!(
        db.rows("SELECT qty FROM stock WHERE sku = 's1'").await,
        vec![json!({"qty": 100})]
    );
    db.finish().await;
}

#[tokio::test]
async fn a_sink_whose_plugin_shut_down_fails_the_whole_batch() {
    let db = Pg::new("sinkdown").await;
    let sink = db.plugin.sink(SqlSinkOptions::append("t")).unwrap();
    db.plugin.shutdown().await.unwrap();

    let err = sink
        .write(&[event(0, Payload::json(json!({"id": 1})))])
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    let admin = Pg::new("sinkdown2").await;
    admin
        .sql(&format!("DROP SCHEMA \"{}\" CASCADE", db.schema))
        .await;
    admin.finish().await;
}

// ---------------------------------------------------------------------------------------
// COPY

#[tokio::test]
async fn copy_loads_a_hundred_thousand_rows() {
    let db = Pg::new("copybulk").await;
    let n = 100_000i64;
    let ids: Vec<i64> = (0..n).collect();
    let rows = batch(vec![
        ("id", Arc::new(Int64Array::from(ids.clone())) as ArrayRef),
        (
            "half",
            Arc::new(Float64Array::from(
                ids.iter().map(|i| *i as f64 / 2.0).collect::<Vec<_>>(),
            )),
        ),
        (
            "label",
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("row\t{i}")).collect::<Vec<_>>(),
            )),
        ),
        (
            "even",
            Arc::new(BooleanArray::from(
                ids.iter().map(|i| i % 2 == 0).collect::<Vec<_>>(),
            )),
        ),
    ]);

    let out = db
        .load(json!({"table": "bulk", "method": "copy"}), rows)
        .await
        .unwrap();

    assert_eq!(
        out,
        json!({"rows_written": n, "table": "bulk", "created": true})
    );
    assert_eq!(
        db.rows(
            "SELECT count(*) AS n, sum(id) AS ids, sum(half) AS halves, \
             count(*) FILTER (WHERE even) AS evens, \
             count(*) FILTER (WHERE label = 'row' || chr(9) || id) AS labels FROM bulk"
        )
        .await,
        vec![
            json!({"n": n, "ids": "4999950000", "halves": 2_499_975_000.0, "evens": n / 2, "labels": n})
        ]
    );
    db.finish().await;
}

#[tokio::test]
async fn copy_round_trips_every_awkward_character_exactly() {
    let db = Pg::new("copychars").await;
    let nasty = vec![
        Some("tab\there"),
        Some("new\nline and cr\r\nend"),
        Some("back\\slash \\N \\x00 \\\\"),
        Some("quotes ' \" `"),
        Some("unicode é ☃ 𝄞 עברית"),
        Some(""),
        None,
        Some("\\N"),
        Some(",;|"),
    ];
    let count = nasty.len();
    let bytes: Vec<Option<&[u8]>> = vec![
        Some(&[0, 1, 2, 255]),
        Some(b"\\x41"),
        Some(b"\t\n\r\\"),
        Some(&[]),
        Some(b"plain"),
        None,
        None,
        Some(&[92, 78]),
        Some(b","),
    ];
    let rows = batch(vec![
        (
            "id",
            Arc::new(Int64Array::from((0..count as i64).collect::<Vec<_>>())) as ArrayRef,
        ),
        ("text", Arc::new(StringArray::from(nasty.clone()))),
        ("raw", Arc::new(BinaryArray::from(bytes.clone()))),
    ]);

    db.load(json!({"table": "chars", "method": "copy"}), rows.clone())
        .await
        .unwrap();
    db.load(json!({"table": "chars_insert"}), rows)
        .await
        .unwrap();

    let back = db
        .sql("SELECT text, raw FROM chars ORDER BY id")
        .await
        .into_records()
        .unwrap();
    let batch = &back.batches()[0];
    let text = batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let raw = batch
        .column(1)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .unwrap();
    for (i, expected) in nasty.iter().enumerate() {
        let got_text = (!text.is_null(i)).then(|| text.value(i));
        let got_raw = (!raw.is_null(i)).then(|| raw.value(i));
        assert_eq!(got_text, *expected, "row {i}");
        assert_eq!(got_raw, bytes[i], "row {i}");
    }
    assert_eq!(
        db.rows(
            "SELECT count(*) AS n FROM chars c JOIN chars_insert i ON c.id = i.id \
             AND c.text IS NOT DISTINCT FROM i.text AND c.raw IS NOT DISTINCT FROM i.raw"
        )
        .await,
        vec![json!({"n": count})],
        "COPY and INSERT store the same values"
    );
    db.finish().await;
}

#[tokio::test]
async fn copy_converts_text_into_existing_typed_columns_and_upserts() {
    let db = Pg::new("copytypes").await;
    db.sql("CREATE TABLE t (id int4 PRIMARY KEY, doc jsonb, u uuid, amount numeric(12,3), at timestamptz, day date)")
        .await;
    let config = json!({"table": "t", "mode": "upsert", "key": ["id"], "method": "copy"});
    db.load(
        config.clone(),
        records(json!([
            {"id": 1, "doc": "{\"a\": \"x\\ty\"}", "u": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
             "amount": "12.345", "at": "2026-11-27T03:25:00+01:00", "day": "2026-11-27"},
            {"id": 2, "doc": null, "u": null, "amount": "7", "at": null, "day": null}
        ])),
    )
    .await
    .unwrap();

    let out = db
        .load(
            config,
            records(
                json!([{"id": 2, "doc": "[1]", "u": null, "amount": "8", "at": null, "day": null}]),
            ),
        )
        .await
        .unwrap();

    assert_eq!(out["rows_written"], 1);
    assert_eq!(
        db.rows("SELECT id, doc->>'a' AS a, doc::text AS doc, u::text AS u, amount::text AS amount, at AT TIME ZONE 'UTC' AS at, day FROM t ORDER BY id")
            .await,
        vec![
            json!({"id": 1, "a": "x\ty", "doc": "{\"a\": \"x\\ty\"}", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                   "amount": "12.345", "at": "2026-11-27T02:25:00", "day": "2026-11-27"}),
            json!({"id": 2, "a": null, "doc": "[1]", "u": null, "amount": "8.000", "at": null, "day": null}),
        ]
    );
    assert_eq!(
        db.rows("SELECT count(*) AS n FROM pg_tables WHERE tablename LIKE 'kernelize_copy_%'")
            .await,
        vec![json!({"n": 0})],
        "the temporary table is gone"
    );
    db.finish().await;
}

#[tokio::test]
async fn a_copy_with_a_bad_value_writes_nothing() {
    let db = Pg::with("copybad", |s| s.max_connections = 1).await;
    db.sql("CREATE TABLE t (id int4 NOT NULL, n int4)").await;
    db.sql("INSERT INTO t VALUES (0, 0)").await;
    let mut ids: Vec<i64> = (1..=20_000).collect();
    ids.push(20_001);
    let mut values: Vec<String> = (1..=20_000).map(|i| i.to_string()).collect();
    values.push("not a number".into());
    let rows = batch(vec![
        ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("n", Arc::new(StringArray::from(values))),
    ]);

    let err = db
        .load(json!({"table": "t", "method": "copy"}), rows)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("invalid input syntax for type integer"),
        "{err}"
    );
    assert_eq!(err.context_value("code"), Some("22P02"));
    assert!(!err.to_string().contains("not a number"), "{err}");
    assert!(err.to_string().contains("the value is withheld"), "{err}");
    // The one connection is usable again, and nothing of the COPY is there.
    assert_eq!(db.count("t").await, 1);
    db.finish().await;
}

#[tokio::test]
async fn copy_is_refused_for_another_database_and_checked_at_sink_open() {
    let db = Pg::new("copyopts").await;

    let mut options = SqlSinkOptions::append("t");
    options.mode = SinkMode::Upsert;
    let err = db.plugin.sink(options).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    assert!(err.to_string().contains("needs `key`"), "{err}");
    db.finish().await;
}

// ---------------------------------------------------------------------------------------
// batch-by-batch extract

#[tokio::test]
async fn extract_batches_streams_a_large_table_in_batches_of_batch_rows() {
    let db = Pg::new("stream").await;
    db.sql("CREATE TABLE big AS SELECT g::int8 AS id, 'row ' || g AS v FROM generate_series(1, 500000) g")
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
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let labels = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for (i, id) in ids.values().iter().enumerate() {
            assert_eq!(*id, next);
            assert_eq!(labels.value(i), format!("row {next}"));
            next += 1;
        }
        assert_eq!(
            batch.schema().metadata()[WATERMARK_MAX_KEY],
            (next - 1).to_string()
        );
        sizes.push(batch.num_rows());
    }
    assert_eq!(sizes, vec![50_000; 10]);
    assert_eq!(next, 500_001);
    db.finish().await;
}

#[tokio::test]
async fn extract_returns_records_of_batch_rows_each_and_bounds_bytes() {
    let db = Pg::new("batches").await;

    let records = db
        .call(
            "extract",
            json!({"query": "SELECT g AS id FROM generate_series(1, 25) g", "batch_rows": 10,
                   "watermark": "id"}),
            Payload::Empty,
        )
        .await
        .unwrap()
        .into_records()
        .unwrap();
    let err = db
        .call(
            "query",
            json!({"sql": "SELECT repeat('x', 1000) AS s FROM generate_series(1, 5)", "max_bytes": 4000}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    let sizes: Vec<usize> = records.batches().iter().map(|b| b.num_rows()).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(records.schema().metadata()[WATERMARK_MAX_KEY], "25");
    assert!(err.to_string().contains("more than 4000 bytes"), "{err}");
    db.finish().await;
}
