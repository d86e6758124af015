//! What the store-backed tests share: opening each kind of store for a test.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use kernelize_workflow::store::{self, MemoryStore, SqlStore, Store};

/// The PostgreSQL server the tests use (trust auth, database `test`).
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A store of one kind, with what removes it afterwards.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub url: String,
    sql: Option<Arc<SqlStore>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// Removes a PostgreSQL test schema (SQLite files go with their folder).
    pub async fn cleanup(self) {
        if let Some(sql) = self.sql {
            sql.drop_schema().await.unwrap();
        }
    }
}

/// A fresh store: `memory`, `sqlite` (a temporary file) or `postgres` (a schema of its own
/// in the `test` database).
pub async fn open(kind: &str) -> TestStore {
    match kind {
        "memory" => TestStore {
            store: Arc::new(MemoryStore::new()),
            url: "memory:".into(),
            sql: None,
            _dir: None,
        },
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite:{}", dir.path().join("runs.db").display());
            let sql = Arc::new(SqlStore::sqlite(&url).await.unwrap());
            TestStore {
                store: sql.clone(),
                url,
                sql: None,
                _dir: Some(dir),
            }
        }
        "postgres" => {
            let schema = format!("kz_test_{:08x}", rand_u32());
            let url = format!("{POSTGRES}?schema={schema}");
            let sql = Arc::new(SqlStore::postgres(&url).await.unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL must run on 127.0.0.1:5432 with trust auth and a `test` database \
                     (scripts/services starts it): {e}"
                )
            }));
            TestStore {
                store: sql.clone(),
                url,
                sql: Some(sql),
                _dir: None,
            }
        }
        other => panic!("no store kind {other}"),
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish() as u32
}

/// Opens a store by URL, as the command line does.
pub async fn open_url(url: &str) -> Arc<dyn Store> {
    store::open(url).await.unwrap()
}
