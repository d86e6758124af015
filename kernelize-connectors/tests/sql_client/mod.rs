//! What the SQL connectors' test files (`sqlite.rs`, `postgres.rs`, `mysql.rs`) share: an
//! open connector with the grants its calls carry, calls of its actions, and records to
//! load. Each file keeps its own fixture (a file, a schema, a database) around it.

#![allow(dead_code)]

use std::collections::BTreeMap;

use kernelize_core::arrow_array::{ArrayRef, RecordBatch};
use kernelize_core::arrow_schema::DataType;
use kernelize_core::{Call, Payload, PermissionGuard, Plugin, Records};
use serde_json::{Value, json};

/// A connector and the grants its calls carry.
pub(crate) struct SqlClient<P> {
    pub(crate) plugin: P,
    pub(crate) guard: PermissionGuard,
    /// The character the database quotes names with.
    quote: char,
}

impl<P: Plugin> SqlClient<P> {
    /// `plugin` called with `guard`; `quote` is `"` or (MySQL) `` ` ``.
    pub(crate) fn new(plugin: P, guard: PermissionGuard, quote: char) -> Self {
        SqlClient {
            plugin,
            guard,
            quote,
        }
    }

    pub(crate) async fn call(
        &self,
        action: &str,
        config: Value,
        input: Payload,
    ) -> kernelize_core::Result<Payload> {
        self.call_with_vars(action, config, input, BTreeMap::new())
            .await
    }

    pub(crate) async fn call_with_vars(
        &self,
        action: &str,
        config: Value,
        input: Payload,
        vars: BTreeMap<String, Value>,
    ) -> kernelize_core::Result<Payload> {
        let mut call = Call::new(action, input).with_config(config);
        call.permissions = self.guard.clone();
        call.vars = vars;
        self.plugin.execute(call).await
    }

    /// Runs `query`; panics with the statement and the error when it fails.
    pub(crate) async fn sql(&self, sql: &str) -> Payload {
        self.call("query", json!({ "sql": sql }), Payload::Empty)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub(crate) async fn rows(&self, sql: &str) -> Vec<Value> {
        self.sql(sql)
            .await
            .into_records()
            .unwrap()
            .to_json_rows()
            .unwrap()
    }

    pub(crate) async fn count(&self, table: &str) -> i64 {
        let q = self.quote;
        self.rows(&format!("SELECT count(*) AS n FROM {q}{table}{q}"))
            .await[0]["n"]
            .as_i64()
            .unwrap()
    }

    pub(crate) async fn load(
        &self,
        config: Value,
        records: Records,
    ) -> kernelize_core::Result<Value> {
        self.call("load", config, Payload::Records(records))
            .await
            .map(|p| p.into_json().unwrap())
    }
}

/// A random 32-bit suffix for names of the test's own.
pub(crate) fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() & 0xffff_ffff
}

pub(crate) fn vars(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub(crate) fn records(rows: Value) -> Records {
    Payload::Json(rows).into_records().unwrap()
}

pub(crate) fn batch(columns: Vec<(&str, ArrayRef)>) -> Records {
    Records::from_batch(RecordBatch::try_from_iter(columns).unwrap())
}

pub(crate) fn types_of(records: &Records) -> Vec<DataType> {
    records
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect()
}
