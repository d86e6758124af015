//! The `mysql-connector` plugin against the real MariaDB server on 127.0.0.1:3306 (user
//! `root`, no password, database `test`); `scripts/services` starts it.
//!
//! Each test works in a database of its own (`k_<test>_<pid>_<random>`) and drops it at the
//! end, so tests never share a table.
//!
//! Run with `cargo nextest run -p kernelize-connectors --features mysql --test mysql`.
#![cfg(feature = "mysql")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures::TryStreamExt;
use kernelize_connectors::sql::actions::ExtractConfig;
use kernelize_connectors::sql::mysql::{self, MySqlConnector, MySqlSettings};
use kernelize_connectors::sql::result_set::{WATERMARK_COLUMN_KEY, WATERMARK_MAX_KEY};
use kernelize_connectors::sql::sink::{SinkMode, SqlSinkOptions};
use kernelize_core::arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch,
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

const SERVER: &str = "mysql://root@127.0.0.1:3306/test";

// ---------------------------------------------------------------------------------------
// helpers

fn grant_local() -> PermissionGuard {
    PermissionGuard::new(
        mysql::ID,
        vec![Permission::Network {
            host: "127.0.0.1".into(),
        }],
        None,
    )
}

/// A database of the test's own on the real server, and a connector to it.
struct My {
    database: String,
    client: SqlClient<MySqlConnector>,
}

impl std::ops::Deref for My {
    type Target = SqlClient<MySqlConnector>;

    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl My {
    async fn new(test: &str) -> My {
        Self::with(test, |_| {}).await
    }

    async fn with(test: &str, adjust: impl FnOnce(&mut MySqlSettings)) -> My {
        let database = format!("k_{test}_{}_{:x}", std::process::id(), rand_suffix());
        let admin = MySqlConnector::open(MySqlSettings::new(SERVER), &grant_local())
            .await
            .unwrap_or_else(|e| {
                panic!("MariaDB is not answering at {SERVER} ({e}); start it with scripts/services")
            });
        let mut call = Call::new("execute", Payload::Empty)
            .with_config(json!({ "sql": format!("CREATE DATABASE `{database}`") }));
        call.permissions = grant_local();
        admin.execute(call).await.unwrap();
        admin.shutdown().await.unwrap();

        let mut settings = MySqlSettings::new(format!("mysql://root@127.0.0.1:3306/{database}"));
        settings.max_connections = 2;
        adjust(&mut settings);
        let plugin = MySqlConnector::open(settings, &grant_local())
            .await
            .unwrap();
        My {
            database,
            client: SqlClient::new(plugin, grant_local(), '`'),
        }
    }

    /// Drops the database and everything in it.
    async fn finish(self) {
        self.call(
            "execute",
            json!({"sql": format!("DROP DATABASE `{}`", self.database)}),
            Payload::Empty,
        )
        .await
        .unwrap();
        self.plugin.shutdown().await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// query: types

const ALL_TYPES: &str = "CREATE TABLE all_types (
    ti TINYINT, si SMALLINT, i INT, bi BIGINT, ubi BIGINT UNSIGNED, yr YEAR,
    flag BOOL, f FLOAT, d DOUBLE, dec_ DECIMAL(30, 6), vc VARCHAR(20), c CHAR(3),
    t TEXT, vb VARBINARY(10), b BLOB, dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL,
    tm TIME, j JSON, e ENUM('a', 'b'), binvc VARCHAR(10) COLLATE utf8mb4_bin)";

const ALL_VALUES: &str = "INSERT INTO all_types VALUES
    (-2, 300, 40000, 9000000000, 18000000000, 2026, TRUE, 1.5, 2.25,
     12345678901234567890.000123, 'var', 'ab', 'text é ☃', x'00ff', x'0102', '2026-11-27',
     '2026-11-27 03:25:00.5', '2026-11-27 03:25:00', '-01:02:03', '{\"a\": [true]}', 'b',
     'Bin'),
    (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -0.5, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";

#[tokio::test]
async fn every_supported_type_reads_as_its_arrow_type() {
    let db = My::new("types").await;
    db.sql(ALL_TYPES).await;
    db.sql(ALL_VALUES).await;

    let records = db
        .sql("SELECT * FROM all_types ORDER BY ti IS NULL")
        .await
        .into_records()
        .unwrap();

    assert_eq!(
        types_of(&records),
        vec![
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Boolean,
            DataType::Float64,
            DataType::Float64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Binary,
            DataType::Binary,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
        ]
    );
    let rows = records.to_json_rows().unwrap();
    assert_eq!(rows[0]["ti"], json!(-2));
    assert_eq!(rows[0]["bi"], json!(9_000_000_000i64));
    assert_eq!(rows[0]["ubi"], json!(18_000_000_000i64));
    assert_eq!(rows[0]["yr"], json!(2026));
    assert_eq!(rows[0]["flag"], json!(true));
    assert_eq!(rows[0]["f"], json!(1.5));
    assert_eq!(rows[0]["dec_"], json!("12345678901234567890.000123"));
    assert_eq!(rows[1]["dec_"], json!("-0.500000"));
    assert_eq!(rows[0]["c"], json!("ab"));
    assert_eq!(rows[0]["t"], json!("text é ☃"));
    assert_eq!(rows[0]["tm"], json!("-01:02:03"));
    assert_eq!(rows[0]["e"], json!("b"));
    assert_eq!(
        rows[0]["binvc"],
        json!("Bin"),
        "a _bin collation is still text"
    );
    assert_eq!(rows[0]["dt"], json!("2026-11-27"));
    let j: Value = serde_json::from_str(rows[0]["j"].as_str().unwrap()).unwrap();
    assert_eq!(j, json!({"a": [true]}));
    let batch = &records.batches()[0];
    let dtm = batch
        .column(16)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        dtm.value(0),
        chrono::DateTime::parse_from_rfc3339("2026-11-27T03:25:00.5Z")
            .unwrap()
            .timestamp_micros()
    );
    let ts = batch
        .column(17)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        ts.value(0),
        chrono::DateTime::parse_from_rfc3339("2026-11-27T03:25:00Z")
            .unwrap()
            .timestamp_micros(),
        "the connection's time zone is UTC"
    );
    let vb = batch
        .column(13)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .unwrap();
    assert_eq!(vb.value(0), &[0x00, 0xff]);
    assert!(rows[1].get("ti").is_none_or(Value::is_null));
    db.finish().await;
}

#[tokio::test]
async fn an_empty_result_keeps_the_declared_column_types() {
    let db = My::new("empty").await;
    db.sql(ALL_TYPES).await;

    let records = db
        .sql("SELECT bi, d, flag, b, dt, dtm, ts, dec_ FROM all_types")
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
    let db = My::new("roundtrip").await;
    db.sql(ALL_TYPES).await;
    db.sql(ALL_VALUES).await;
    db.sql("CREATE TABLE copy_of LIKE all_types").await;
    let original = db
        .sql("SELECT * FROM all_types ORDER BY ti IS NULL")
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
        .sql("SELECT * FROM copy_of ORDER BY ti IS NULL")
        .await
        .into_records()
        .unwrap();
    assert_eq!(
        copied.to_json_rows().unwrap(),
        original.to_json_rows().unwrap()
    );
    assert_eq!(
        db.rows(
            "SELECT count(*) AS n FROM all_types a JOIN copy_of c ON a.dec_ = c.dec_ \
             AND a.ts <=> c.ts AND a.dtm <=> c.dtm AND a.b <=> c.b AND a.j <=> c.j"
        )
        .await,
        vec![json!({"n": 2})],
        "decimal, timestamp, datetime, blob and json values are equal in MySQL's own terms"
    );
    db.finish().await;
}

#[tokio::test]
async fn an_unsupported_column_type_is_refused_naming_column_and_type() {
    let db = My::new("unsupported").await;

    let err = db
        .call(
            "query",
            json!({"sql": "SELECT POINT(1, 2) AS spot"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let text = err.to_string();
    assert!(text.contains("column `spot`"), "{text}");
    assert!(text.contains("GEOMETRY"), "{text}");
    db.finish().await;
}

#[tokio::test]
async fn an_unsigned_value_beyond_i64_is_an_error_naming_the_column() {
    let db = My::new("unsigned").await;
    db.sql("CREATE TABLE t (u BIGINT UNSIGNED)").await;
    db.sql("INSERT INTO t VALUES (18446744073709551615)").await;

    let err = db
        .call("query", json!({"sql": "SELECT u FROM t"}), Payload::Empty)
        .await
        .unwrap_err();

    assert!(err.to_string().contains("column `u`"), "{err}");
    assert!(err.to_string().contains("CAST(u AS CHAR)"), "{err}");
    assert_eq!(
        db.rows("SELECT CAST(u AS CHAR) AS u FROM t").await,
        vec![json!({"u": "18446744073709551615"})]
    );
    db.finish().await;
}

// ---------------------------------------------------------------------------------------
// query, execute, binding

#[tokio::test]
async fn execute_runs_ddl_and_dml_and_returns_rows_affected() {
    let db = My::new("execute").await;

    let ddl = db
        .call(
            "execute",
            json!({"sql": "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)"}),
            Payload::Empty,
        )
        .await
        .unwrap();
    let dml = db
        .call(
            "execute",
            json!({"sql": "INSERT INTO t SELECT seq, :v FROM seq_1_to_5", "params": {"v": "x"}}),
            Payload::Empty,
        )
        .await
        .unwrap();
    let update = db
        .call(
            "execute",
            json!({"sql": "UPDATE t SET v = 'y' WHERE id > :min", "params": {"min": 3}}),
            Payload::Empty,
        )
        .await
        .unwrap();
    let as_query = db.sql("DELETE FROM t WHERE id = 1").await;

    assert_eq!(ddl.into_json().unwrap(), json!({"rows_affected": 0}));
    assert_eq!(dml.into_json().unwrap(), json!({"rows_affected": 5}));
    assert_eq!(update.into_json().unwrap(), json!({"rows_affected": 2}));
    assert_eq!(as_query.into_json().unwrap(), json!({"rows_affected": 1}));
    assert_eq!(db.count("t").await, 4);
    db.finish().await;
}

#[tokio::test]
async fn a_syntax_error_is_invalid_input_with_mysql_words_and_code() {
    let db = My::new("syntax").await;

    let err = db
        .call("query", json!({"sql": "SELEC 1"}), Payload::Empty)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(!err.is_temporary());
    assert!(err.to_string().contains("SQL syntax"), "{err}");
    assert_eq!(err.context_value("code"), Some("42000"));
    assert_eq!(err.context_value("number"), Some("1064"));
    db.finish().await;
}

#[tokio::test]
async fn query_binds_params_and_run_variables_positionally() {
    let db = My::new("params").await;
    db.sql("CREATE TABLE t (id INT, name VARCHAR(20), at DATETIME(6))")
        .await;
    db.sql("INSERT INTO t VALUES (1, 'a', '2026-01-01 00:00:00'), (2, 'b', '2026-02-01 00:00:00')")
        .await;

    let rows = db
        .call_with_vars(
            "query",
            json!({
                "sql": "SELECT id, :a AS a, :a AS again FROM t WHERE id >= :min AND at > :since",
                "params": {"a": "params", "min": "1"}
            }),
            Payload::Empty,
            vars(&[
                ("a", json!("vars")),
                ("since", json!("2026-01-15T01:00:00+01:00")),
            ]),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap()
        .to_json_rows()
        .unwrap();

    assert_eq!(
        rows,
        vec![json!({"id": 2, "a": "params", "again": "params"})]
    );
    db.finish().await;
}

#[tokio::test]
async fn an_injection_attempt_stays_a_literal() {
    let db = My::new("injection").await;
    db.sql("CREATE TABLE users (name VARCHAR(40))").await;
    db.sql("INSERT INTO users VALUES ('alice'), ('bob')").await;

    for attack in [
        "x' OR '1'='1",
        "'; DROP TABLE users; --",
        "bob' -- ",
        "bob' #",
        "\\' OR 1=1 -- ",
        "?",
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
async fn mysql_own_markers_and_second_statements_are_refused() {
    let db = My::new("markers").await;
    db.sql("CREATE TABLE t (v INT)").await;

    let err = db
        .call("query", json!({"sql": "SELECT ?"}), Payload::Empty)
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
    // Backslash-escaped quotes, backticks and # comments hide no placeholder.
    let rows = db
        .rows("SELECT 'it\\'s :no' AS `:col`, 1 AS i # :neither")
        .await;
    assert_eq!(rows, vec![json!({":col": "it's :no", "i": 1})]);
    db.finish().await;
}

// ---------------------------------------------------------------------------------------
// extract

async fn sales(db: &My) {
    db.sql("CREATE TABLE sales (id INT PRIMARY KEY, amount DECIMAL(10,2), updated_at DATETIME(6))")
        .await;
    db.sql(
        "INSERT INTO sales VALUES \
         (1, 10.00, '2026-11-27 05:00:00'), \
         (2, 20.00, '2026-11-27 03:25:00'), \
         (3, 30.00, '2026-11-27 03:25:00.5'), \
         (4, 40.00, '2026-11-26 00:00:00')",
    )
    .await;
}

#[tokio::test]
async fn extract_incrementally_twice_from_the_reported_watermark() {
    let db = My::new("extract").await;
    sales(&db).await;
    let query = json!({
        "query": "SELECT id, amount, updated_at FROM sales WHERE updated_at > :last_sync",
        "watermark": "updated_at"
    });

    let first = db
        .call_with_vars(
            "extract",
            query.clone(),
            Payload::Empty,
            vars(&[("last_sync", json!("2026-11-27T00:00:00Z"))]),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap();

    let rows = first.to_json_rows().unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![2, 3, 1], "sorted by updated_at");
    assert_eq!(rows[0]["amount"], json!("20.00"));
    let meta = first.schema().metadata().clone();
    assert_eq!(
        meta.get(WATERMARK_COLUMN_KEY).map(String::as_str),
        Some("updated_at")
    );
    let max = meta.get(WATERMARK_MAX_KEY).cloned().unwrap();
    assert_eq!(max, "2026-11-27T05:00:00");

    // The second run starts from the reported maximum: nothing new, then only the change.
    let second = db
        .call_with_vars(
            "extract",
            query.clone(),
            Payload::Empty,
            vars(&[("last_sync", json!(max.clone()))]),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(second.num_rows(), 0);
    assert!(!second.schema().metadata().contains_key(WATERMARK_MAX_KEY));
    db.sql("UPDATE sales SET updated_at = '2026-11-28 00:00:00' WHERE id = 4")
        .await;
    let third = db
        .call_with_vars(
            "extract",
            query,
            Payload::Empty,
            vars(&[("last_sync", json!(max))]),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap();
    let rows = third.to_json_rows().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], json!(4));
    assert_eq!(
        third.schema().metadata().get(WATERMARK_MAX_KEY).unwrap(),
        "2026-11-28T00:00:00"
    );
    db.finish().await;
}

#[tokio::test]
async fn extract_refuses_a_statement_without_rows_before_running_it() {
    let db = My::new("extractdml").await;
    sales(&db).await;

    let err = db
        .call(
            "extract",
            json!({"query": "DELETE FROM sales", "watermark": "id"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("returns no rows"), "{err}");
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
async fn max_rows_and_max_bytes_bound_what_a_query_holds() {
    let db = My::with("bounds", |s| s.max_rows = 4).await;

    let err = db
        .call(
            "query",
            json!({"sql": "SELECT seq FROM seq_1_to_10"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 4 rows"), "{err}");
    let err = db
        .call(
            "query",
            json!({"sql": "SELECT REPEAT('x', 1000) AS s FROM seq_1_to_3", "max_bytes": 2500}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 2500 bytes"), "{err}");
    assert_eq!(
        db.rows("SELECT seq FROM seq_1_to_4").await.len(),
        4,
        "exactly max_rows rows are fine"
    );
    db.finish().await;
}

#[tokio::test]
async fn extract_batches_streams_a_large_table_in_batches_of_batch_rows() {
    let db = My::new("stream").await;
    db.sql("CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(20))")
        .await;
    db.sql("INSERT INTO big SELECT seq, CONCAT('row ', seq) FROM seq_1_to_500000")
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
    let mut expected_next = 1i64;
    let mut last_max = String::new();
    while let Some(batch) = stream.try_next().await.unwrap() {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for id in ids.values() {
            assert_eq!(*id, expected_next);
            expected_next += 1;
        }
        last_max = batch.schema().metadata()[WATERMARK_MAX_KEY].clone();
        assert_eq!(last_max, (expected_next - 1).to_string());
        sizes.push(batch.num_rows());
    }
    assert_eq!(sizes, vec![50_000; 10]);
    assert_eq!(last_max, "500000");
    db.finish().await;
}

// ---------------------------------------------------------------------------------------
// load

fn typed_records() -> Records {
    batch(vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        (
            "amount",
            Arc::new(Float64Array::from(vec![Some(1.5), None])),
        ),
        (
            "name",
            Arc::new(StringArray::from(vec!["Acme", "O'Brien \"Ltd\" \\ é"])),
        ),
        ("paid", Arc::new(BooleanArray::from(vec![true, false]))),
        (
            "updated_at",
            Arc::new(
                TimestampMicrosecondArray::from(vec![1_793_610_900_000_000, 1_793_612_400_250_000])
                    .with_timezone("UTC"),
            ),
        ),
        ("day", Arc::new(Date32Array::from(vec![20_000, 20_001]))),
        (
            "raw",
            Arc::new(BinaryArray::from(vec![&[1u8][..], &[][..]])),
        ),
    ])
}

#[tokio::test]
async fn load_creates_the_table_with_mysql_types() {
    let db = My::new("create").await;

    let out = db
        .load(
            json!({"table": "sales", "mode": "upsert", "key": ["id", "name"]}),
            typed_records(),
        )
        .await
        .unwrap();

    assert_eq!(
        out,
        json!({"rows_written": 2, "table": "sales", "created": true})
    );
    let declared = db
        .rows(&format!(
            "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 'sales' \
             ORDER BY ORDINAL_POSITION",
            db.database
        ))
        .await;
    assert_eq!(
        declared,
        vec![
            json!({"name": "id", "type": "bigint(20)", "nullable": "NO"}),
            json!({"name": "amount", "type": "double", "nullable": "YES"}),
            json!({"name": "name", "type": "varchar(255)", "nullable": "NO"}),
            json!({"name": "paid", "type": "tinyint(1)", "nullable": "YES"}),
            json!({"name": "updated_at", "type": "datetime(6)", "nullable": "YES"}),
            json!({"name": "day", "type": "date", "nullable": "YES"}),
            json!({"name": "raw", "type": "longblob", "nullable": "YES"}),
        ]
    );
    let rows = db
        .rows("SELECT id, amount, name, paid, CAST(updated_at AS CHAR) AS at, day, HEX(raw) AS raw FROM sales ORDER BY id")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "amount": 1.5, "name": "Acme", "paid": true,
                   "at": "2026-11-02 09:15:00.000000", "day": "2024-10-04", "raw": "01"}),
            json!({"id": 2, "amount": null, "name": "O'Brien \"Ltd\" \\ é", "paid": false,
                   "at": "2026-11-02 09:40:00.250000", "day": "2024-10-05", "raw": ""}),
        ]
    );
    db.finish().await;
}

#[tokio::test]
async fn load_append_upsert_and_replace() {
    let db = My::new("modes").await;
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
async fn load_with_add_columns_evolves_the_table() {
    let db = My::new("evolve").await;
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
async fn a_failed_load_writes_no_row_of_its_batch() {
    let db = My::new("rollback").await;
    db.sql("CREATE TABLE t (id BIGINT NOT NULL UNIQUE)").await;
    db.sql("INSERT INTO t VALUES (1), (2), (3)").await;
    // 1001 new rows fill the first INSERT (1000 rows) and start a second, whose duplicate
    // of id 2 fails after the first INSERT went in.
    let mut ids: Vec<i64> = (100..1101).collect();
    ids.push(2);
    let rows = batch(vec![("id", Arc::new(Int64Array::from(ids)) as ArrayRef)]);

    let err = db.load(json!({"table": "t"}), rows).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("Duplicate entry"), "{err}");
    assert_eq!(err.context_value("code"), Some("23000"));
    assert_eq!(err.context_value("rows"), Some("1001-1002"));
    assert_eq!(
        db.count("t").await,
        3,
        "the first INSERT was rolled back too"
    );
    db.finish().await;
}

#[tokio::test]
async fn a_failed_load_keeps_the_table_it_created_but_none_of_its_rows() {
    let db = My::new("rollbackcreate").await;
    // 1000 good rows go in the first INSERT; the NULL key of row 1001 fails the second.
    let mut rows: Vec<Value> = (1..=1000).map(|i| json!({"id": i, "v": "a"})).collect();
    rows.push(json!({"id": null, "v": "b"}));

    let err = db
        .load(
            json!({"table": "t", "mode": "upsert", "key": ["id"]}),
            records(Value::Array(rows)),
        )
        .await
        .unwrap_err();

    assert!(err.to_string().contains("cannot be null"), "{err}");
    // MySQL committed the CREATE TABLE on its own (documented); no row is there.
    assert_eq!(db.count("t").await, 0);
    db.finish().await;
}

#[tokio::test]
async fn a_wide_load_splits_inserts_at_65535_values() {
    let db = My::new("wide").await;
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
        db.rows("SELECT CAST(SUM(c99) AS SIGNED) AS s FROM wide")
            .await,
        vec![json!({"s": (0..1000).map(|r| r * 100 + 99).sum::<i64>()})]
    );
    db.finish().await;
}

#[tokio::test]
async fn large_values_split_inserts_under_the_packet_limit() {
    let db = My::new("bigvalues").await;
    // 40 rows of 1 MiB each: 40 MiB would be past max_allowed_packet in one INSERT.
    let big = "x".repeat(1 << 20);
    let rows = batch(vec![
        (
            "id",
            Arc::new(Int64Array::from((0..40).collect::<Vec<i64>>())) as ArrayRef,
        ),
        ("body", Arc::new(StringArray::from(vec![big.as_str(); 40]))),
    ]);

    let out = db.load(json!({"table": "docs"}), rows).await.unwrap();

    assert_eq!(out["rows_written"], 40);
    assert_eq!(
        db.rows("SELECT CAST(SUM(LENGTH(body)) AS SIGNED) AS n FROM docs")
            .await,
        vec![json!({"n": 40 << 20})]
    );
    db.finish().await;
}

#[tokio::test]
async fn copy_is_refused_with_a_clear_error() {
    let db = My::new("nocopy").await;

    let err = db
        .load(
            json!({"table": "t", "method": "copy"}),
            records(json!([{"id": 1}])),
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("no bulk COPY"), "{err}");
    db.finish().await;
}

// ---------------------------------------------------------------------------------------
// event sink

fn event(n: usize, payload: Payload) -> Event {
    Event::new(format!("e{n}"), payload)
}

#[tokio::test]
async fn the_sink_writes_good_events_and_reports_each_bad_one() {
    let db = My::new("sink").await;
    db.sql(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, qty INT NOT NULL CHECK (qty > 0), note TEXT)",
    )
    .await;
    let bad = [17usize, 500, 998];
    let events: Vec<Event> = (0..1000)
        .map(|n| {
            let qty = if bad.contains(&n) {
                json!(null)
            } else {
                json!(n + 1)
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
        assert!(err.to_string().contains("cannot be null"), "{err}");
        assert_eq!(
            err.context_value("event"),
            Some(format!("e{position}").as_str())
        );
    }
    assert_eq!(db.count("orders").await, 997);
    db.finish().await;
}

#[tokio::test]
async fn the_sink_reports_payloads_that_are_not_one_object_and_upserts_the_rest() {
    let db = My::new("sinkshape").await;
    let mut options = SqlSinkOptions::append("people");
    options.mode = SinkMode::Upsert;
    options.key = vec!["id".into()];
    let sink = db.plugin.sink(options).unwrap();
    let events = [
        event(
            0,
            Payload::json(json!({"id": 1, "name": "Ann", "tags": ["a", "b"]})),
        ),
        event(1, Payload::json(json!([1, 2]))),
        event(
            2,
            Payload::bytes(&br#"{"id": 2, "name": "Bo"}"#[..], "application/json"),
        ),
        event(3, Payload::bytes(&b"not json"[..], "text/plain")),
        event(4, Payload::json(json!({"id": 1, "name": "Ann B."}))),
    ];

    let report = sink.write(&events[..4]).await.unwrap();
    let again = sink.write(&events[4..]).await.unwrap();

    let failed: Vec<usize> = report.failed.iter().map(|(p, _)| *p).collect();
    assert_eq!(failed, vec![1, 3]);
    assert!(
        report.failed[0]
            .1
            .to_string()
            .contains("is an array, not one JSON object"),
        "{}",
        report.failed[0].1
    );
    assert!(again.is_complete());
    assert_eq!(
        db.rows("SELECT id, name, tags FROM people ORDER BY id")
            .await,
        vec![
            json!({"id": 1, "name": "Ann B.", "tags": "[\"a\",\"b\"]"}),
            json!({"id": 2, "name": "Bo", "tags": null}),
        ]
    );
    db.finish().await;
}

#[tokio::test]
async fn the_manager_opens_the_sink_with_checked_options() {
    let db = My::new("sinkmanager").await;
    let manager = manager_with(
        json!({"url": format!("mysql://root@127.0.0.1:3306/{}", db.database)}),
        vec![Permission::Network {
            host: "127.0.0.1".into(),
        }],
    );
    manager.activate(mysql::ID).await.unwrap();

    let Err(err) = manager
        .open_sink(mysql::ID, json!({"table": "t", "mode": "upsert"}))
        .await
    else {
        panic!("an upsert sink without a key opened");
    };
    assert!(err.to_string().contains("needs `key`"), "{err}");
    let sink = manager
        .open_sink(mysql::ID, json!({"table": "t", "add_columns": true}))
        .await
        .unwrap();
    let report = sink
        .write(&[
            event(0, Payload::json(json!({"a": 1}))),
            event(1, Payload::json(json!({"a": 2, "b": "new"}))),
        ])
        .await
        .unwrap();
    assert!(report.is_complete());
    assert_eq!(db.count("t").await, 2);
    db.finish().await;
}

// ---------------------------------------------------------------------------------------
// settings, permissions, errors

fn manager_with(settings: Value, grants: Vec<Permission>) -> PluginManager {
    let manager = PluginManager::new();
    manager.install(mysql::factory()).unwrap();
    let mut config = PluginConfig::with_settings(settings);
    config.permissions = grants;
    manager.configure(mysql::ID, config);
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

    let err = manager.activate(mysql::ID).await.unwrap_err();

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
        json!({"url": SERVER, "max_connections": 1, "acquire_timeout": "5s"}),
        vec![Permission::Network {
            host: "127.0.0.1".into(),
        }],
    );
    manager.activate(mysql::ID).await.unwrap();

    let out = manager
        .call(
            mysql::ID,
            Call::new("query", Payload::Empty)
                .with_config(json!({"sql": "SELECT @@time_zone AS tz, DATABASE() AS db"})),
        )
        .await
        .unwrap();

    assert_eq!(
        out.into_json().unwrap(),
        json!([{"tz": "+00:00", "db": "test"}])
    );
}

#[tokio::test]
async fn every_call_is_checked_against_its_grants() {
    let db = My::new("percall").await;

    let mut call = Call::new("query", Payload::Empty).with_config(json!({"sql": "SELECT 1"}));
    call.permissions = PermissionGuard::new(mysql::ID, vec![], None);
    let err = db.plugin.execute(call).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("network:127.0.0.1"), "{err}");
    db.finish().await;
}

#[tokio::test]
async fn a_bad_url_is_config_invalid_without_the_password() {
    for url in [
        "mysql://app:s3cr3t-pw@127.0.0.1:notaport/test",
        "postgres://app:s3cr3t-pw@127.0.0.1/test",
        "mysql://app:s3cr3t-pw@127.0.0.1",
        "app:s3cr3t-pw@127.0.0.1/test",
    ] {
        let err = MySqlConnector::open(MySqlSettings::new(url), &grant_local())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{url}");
        let text = format!("{err} {err:?}");
        assert!(text.contains("`url` is not a MySQL URL"), "{text}");
        assert!(!text.contains("s3cr3t-pw"), "{text}");
    }
}

#[tokio::test]
async fn a_wrong_password_is_permission_denied_without_the_password() {
    let err = MySqlConnector::open(
        MySqlSettings::new("mysql://root:s3cr3t-pw@127.0.0.1:3306/test"),
        &grant_local(),
    )
    .await
    .unwrap_err();

    let text = format!("{err} {err:?}");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{text}");
    assert!(text.contains("127.0.0.1:3306/test"), "{text}");
    assert!(!text.contains("s3cr3t-pw"), "{text}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_temporary_error_naming_it() {
    let mut settings = MySqlSettings::new("mysql://root@127.0.0.1:1/test");
    settings.acquire_timeout = std::time::Duration::from_secs(5);

    let err = MySqlConnector::open(settings, &grant_local())
        .await
        .unwrap_err();

    assert!(err.to_string().contains("127.0.0.1:1/test"), "{err}");
    assert!(err.is_temporary(), "{err}");
}

#[tokio::test]
async fn a_missing_database_is_not_found() {
    let err = MySqlConnector::open(
        MySqlSettings::new("mysql://root@127.0.0.1:3306/no_such_db_kernelize"),
        &grant_local(),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("no_such_db_kernelize"), "{err}");
}

#[tokio::test]
async fn unknown_settings_are_refused() {
    let manager = manager_with(
        json!({"url": SERVER, "max_conections": 2}),
        vec![Permission::Network {
            host: "127.0.0.1".into(),
        }],
    );

    let err = manager.activate(mysql::ID).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    assert!(err.to_string().contains("max_conections"), "{err}");
}

#[tokio::test]
async fn metadata_describes_the_plugin_and_its_sink() {
    let meta = MySqlConnector::new().metadata();

    assert_eq!(meta.id, "mysql-connector");
    assert_eq!(meta.category, kernelize_core::Category::Connector);
    let actions: Vec<&str> = meta.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(actions, vec!["execute", "extract", "load", "query"]);
    for setting in [
        "url",
        "max_connections",
        "acquire_timeout",
        "max_rows",
        "max_bytes",
    ] {
        assert!(
            meta.config_schema["properties"].get(setting).is_some(),
            "{setting}"
        );
    }
    assert_eq!(meta.config_schema["additionalProperties"], json!(false));
    let sink = meta.events.sink.expect("an event sink");
    for option in ["table", "mode", "key", "create", "add_columns", "method"] {
        assert!(sink["properties"].get(option).is_some(), "{option}");
    }
    assert!(meta.events.source.is_none());
}
