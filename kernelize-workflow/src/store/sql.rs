//! The SQL stores: SQLite (a file) and PostgreSQL (shared), through sqlx.
//!
//! Both backends share this one implementation over sqlx's `Any` driver; what differs
//! (the clock, `FOR UPDATE SKIP LOCKED`, `LISTEN`/`NOTIFY`, schemas, column types in the
//! migrations) is chosen by [`Dialect`]. sqlx was chosen for one async API over SQLite,
//! PostgreSQL and MySQL, with embedded migrations and a bundled SQLite; rusqlite (SQLite
//! only, blocking) with tokio-postgres would have meant two implementations.
//!
//! Times come from the database's clock, not the caller's, so that workers on machines
//! whose clocks differ agree on when a lease expires.

use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::{Error, ErrorKind, Payload, Result};
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::{
    Claim, Event, KeyClaim, LeaseState, Millis, NewRun, RunFilter, RunRecord, RunStatus,
    RunSummary, StepRecord, Store, lost, parse_step_status,
};

/// Outputs larger than this (encoded) are kept in `kernelize_blobs` and referenced from the
/// step, so that reading a run's steps stays cheap.
pub const INLINE_OUTPUT_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// A store in SQLite or PostgreSQL. See the [module](super) docs.
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    #[cfg(feature = "postgres")]
    listener: tokio::sync::Mutex<Option<sqlx::postgres::PgListener>>,
    #[cfg(feature = "postgres")]
    url: String,
    #[cfg(feature = "postgres")]
    schema: String,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

fn db_error(what: &str) -> impl Fn(sqlx::Error) -> Error + '_ {
    move |e| {
        let temporary = matches!(
            e,
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
        );
        let err = Error::new(ErrorKind::Dependency, format!("store: {what}: {e}"));
        if temporary { err.set_temporary() } else { err }
    }
}

/// Marks a query built here as safe: its variable parts are fixed fragments of this file
/// and checked schema names, never input; values are always bound.
fn trusted(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn bad_row(what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::CorruptData,
        format!("store holds a damaged record: {what}"),
    )
}

const RUN_COLUMNS: &str = "id, workflow, status, trigger_name, definition, params, created_at, \
    started_at, finished_at, lease_owner, lease_expires_at, claims, cancel_requested, error";

const STEP_COLUMNS: &str = "name, position, status, attempts, started_at, finished_at, error, \
    rows_out, bytes_out, (output IS NOT NULL OR output_ref IS NOT NULL) AS has_output";

fn run_from_row(row: &AnyRow) -> Result<RunRecord> {
    let get = |e: sqlx::Error| bad_row(e);
    let status: String = row.try_get("status").map_err(get)?;
    let definition: String = row.try_get("definition").map_err(get)?;
    let params: String = row.try_get("params").map_err(get)?;
    let claims: i64 = row.try_get("claims").map_err(get)?;
    let cancel: i64 = row.try_get("cancel_requested").map_err(get)?;
    Ok(RunRecord {
        id: row.try_get("id").map_err(get)?,
        workflow: row.try_get("workflow").map_err(get)?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| bad_row(format!("run status `{status}`")))?,
        trigger: row.try_get("trigger_name").map_err(get)?,
        definition: serde_json::from_str(&definition)
            .map_err(|e| bad_row(format!("run definition: {e}")))?,
        params: serde_json::from_str(&params).map_err(|e| bad_row(format!("run params: {e}")))?,
        created_at: row.try_get("created_at").map_err(get)?,
        started_at: row.try_get("started_at").map_err(get)?,
        finished_at: row.try_get("finished_at").map_err(get)?,
        lease_owner: row.try_get("lease_owner").map_err(get)?,
        lease_expires_at: row.try_get("lease_expires_at").map_err(get)?,
        claims: u32::try_from(claims).unwrap_or(u32::MAX),
        cancel_requested: cancel != 0,
        error: row.try_get("error").map_err(get)?,
    })
}

fn summary_from_row(row: &AnyRow) -> Result<RunSummary> {
    let get = |e: sqlx::Error| bad_row(e);
    let status: String = row.try_get("status").map_err(get)?;
    Ok(RunSummary {
        id: row.try_get("id").map_err(get)?,
        workflow: row.try_get("workflow").map_err(get)?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| bad_row(format!("run status `{status}`")))?,
        trigger: row.try_get("trigger_name").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
        started_at: row.try_get("started_at").map_err(get)?,
        finished_at: row.try_get("finished_at").map_err(get)?,
    })
}

fn step_from_row(row: &AnyRow) -> Result<StepRecord> {
    let get = |e: sqlx::Error| bad_row(e);
    let status: String = row.try_get("status").map_err(get)?;
    let position: i64 = row.try_get("position").map_err(get)?;
    let attempts: i64 = row.try_get("attempts").map_err(get)?;
    let rows: Option<i64> = row.try_get("rows_out").map_err(get)?;
    let bytes: Option<i64> = row.try_get("bytes_out").map_err(get)?;
    let has_output: bool = match row.try_get::<bool, _>("has_output") {
        Ok(b) => b,
        Err(_) => row.try_get::<i64, _>("has_output").map_err(get)? != 0,
    };
    Ok(StepRecord {
        name: row.try_get("name").map_err(get)?,
        position: u32::try_from(position).map_err(|_| bad_row("step position"))?,
        status: parse_step_status(&status)
            .ok_or_else(|| bad_row(format!("step status `{status}`")))?,
        attempts: u32::try_from(attempts).map_err(|_| bad_row("step attempts"))?,
        started_at: row.try_get("started_at").map_err(get)?,
        finished_at: row.try_get("finished_at").map_err(get)?,
        error: row.try_get("error").map_err(get)?,
        rows: rows.and_then(|r| u64::try_from(r).ok()),
        bytes: bytes.and_then(|b| u64::try_from(b).ok()),
        has_output,
    })
}

fn to_i64(n: Option<u64>) -> Option<i64> {
    n.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl SqlStore {
    /// Opens (creating it when missing) the SQLite database at `url` (`sqlite:PATH`,
    /// `sqlite://PATH` or a plain path) and brings its tables up to date. The database runs
    /// in WAL mode with a 5 s busy timeout, so several processes may share the file.
    #[cfg(feature = "sqlite")]
    pub async fn sqlite(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("store URL `{url}` names no file"),
            ));
        }
        if let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("cannot create the store's folder {}: {e}", dir.display()),
                )
            })?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    for pragma in [
                        "PRAGMA busy_timeout = 5000",
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = NORMAL",
                        "PRAGMA foreign_keys = ON",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&format!("sqlite://{path}?mode=rwc"))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Dependency,
                    format!("cannot open the SQLite store {path}: {e}"),
                )
            })?;
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.dangerous_set_table_name("kernelize_migrations");
        migrator
            .run(&pool)
            .await
            .map_err(|e| Error::new(ErrorKind::Dependency, format!("store migrations: {e}")))?;
        Ok(Self {
            pool,
            dialect: Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            listener: tokio::sync::Mutex::new(None),
            #[cfg(feature = "postgres")]
            url: String::new(),
            #[cfg(feature = "postgres")]
            schema: String::new(),
        })
    }

    /// Connects to PostgreSQL at `url` and brings the store's tables up to date. They live
    /// in their own schema, `kernelize` unless the URL's `schema` parameter names another,
    /// so they sit beside an application's tables without touching them.
    #[cfg(feature = "postgres")]
    pub async fn postgres(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (url, schema) = split_schema(url)?;
        let set_path = format!("SET search_path TO \"{schema}\"");
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(move |conn, _| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    sqlx::query(trusted(set_path)).execute(&mut *conn).await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Dependency,
                    format!("cannot connect to the PostgreSQL store: {e}"),
                )
                .set_temporary()
            })?;
        let mut tx = pool.begin().await.map_err(db_error("begin"))?;
        // Several workers may start at once; one creates the schema.
        sqlx::query("SELECT pg_advisory_xact_lock(7261066417)")
            .execute(&mut *tx)
            .await
            .map_err(db_error("schema lock"))?;
        sqlx::query(trusted(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")))
            .execute(&mut *tx)
            .await
            .map_err(db_error("create schema"))?;
        tx.commit().await.map_err(db_error("create schema"))?;
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.dangerous_set_table_name("kernelize_migrations");
        migrator
            .run(&pool)
            .await
            .map_err(|e| Error::new(ErrorKind::Dependency, format!("store migrations: {e}")))?;
        Ok(Self {
            pool,
            dialect: Dialect::Postgres,
            listener: tokio::sync::Mutex::new(None),
            url,
            schema,
        })
    }

    /// Drops the PostgreSQL schema this store uses, with everything in it (tests use a
    /// schema each). Does nothing for SQLite.
    pub async fn drop_schema(&self) -> Result<()> {
        #[cfg(feature = "postgres")]
        if self.dialect == Dialect::Postgres {
            sqlx::query(trusted(format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            )))
            .execute(&self.pool)
            .await
            .map_err(db_error("drop schema"))?;
        }
        Ok(())
    }

    /// The current time as the database sees it, in milliseconds since the epoch.
    fn now(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    async fn notify(&self) {
        if self.dialect == Dialect::Postgres {
            // A lost notification only delays a worker until its next poll.
            let _ = sqlx::query("SELECT pg_notify('kernelize_runs', '')")
                .execute(&self.pool)
                .await;
        }
    }
}

/// Takes the `schema` parameter out of a PostgreSQL URL.
#[cfg(feature = "postgres")]
fn split_schema(url: &str) -> Result<(String, String)> {
    let mut parsed = url::Url::parse(url).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("store URL is not a URL: {e}"),
        )
    })?;
    let mut schema = "kernelize".to_string();
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "schema" {
                schema = v.into_owned();
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if schema.is_empty()
        || !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("store schema `{schema}` must be letters, digits and underscores"),
        ));
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.to_string(), schema))
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    async fn create_run(&self, run: NewRun) -> Result<()> {
        let now = self.now();
        let (status, owner, lease) = match &run.owner {
            Some((owner, lease)) => (RunStatus::Running, Some(owner.clone()), millis(*lease)),
            None => (RunStatus::Queued, None, 0),
        };
        let claimed = i64::from(owner.is_some());
        let definition = serde_json::to_string(&run.definition)?;
        let params = serde_json::to_string(&run.params)?;
        let mut tx = self.pool.begin().await.map_err(db_error("create run"))?;
        sqlx::query(trusted(format!(
            "INSERT INTO kernelize_runs (id, workflow, status, trigger_name, definition, params, \
             created_at, started_at, lease_owner, lease_expires_at, claims) \
             VALUES ($1, $2, $3, $4, $5, $6, {now}, CASE WHEN $7 = 1 THEN {now} END, $8, \
             CASE WHEN $7 = 1 THEN {now} + $9 END, $7)"
        )))
        .bind(&run.id)
        .bind(&run.workflow)
        .bind(status.as_str())
        .bind(&run.trigger)
        .bind(definition)
        .bind(params)
        .bind(claimed)
        .bind(owner)
        .bind(lease)
        .execute(&mut *tx)
        .await
        .map_err(db_error("create run"))?;
        sqlx::query(trusted(format!(
            "INSERT INTO kernelize_events (run_id, status, at) VALUES ($1, $2, {now})"
        )))
        .bind(&run.id)
        .bind(status.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error("create run"))?;
        tx.commit().await.map_err(db_error("create run"))?;
        if status == RunStatus::Queued {
            self.notify().await;
        }
        Ok(())
    }

    async fn claim(&self, owner: &str, lease: Duration, which: Claim) -> Result<Option<RunRecord>> {
        let now = self.now();
        let lock = match self.dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let (filter, id, force) = match &which {
            Claim::Next => ("", String::new(), 0),
            Claim::Run { id, force } => ("AND id = $3", id.clone(), i64::from(*force)),
        };
        let sql = format!(
            "UPDATE kernelize_runs SET status = 'running', lease_owner = $1, \
             lease_expires_at = {now} + $2, claims = claims + 1, \
             started_at = COALESCE(started_at, {now}) \
             WHERE id = (SELECT id FROM kernelize_runs \
                 WHERE (status = 'queued' OR (status = 'running' \
                     AND (lease_expires_at IS NULL OR lease_expires_at < {now} OR $4 = 1))) {filter} \
                 ORDER BY created_at, id LIMIT 1 {lock}) \
             RETURNING {RUN_COLUMNS}"
        );
        let mut tx = self.pool.begin().await.map_err(db_error("claim"))?;
        let row = sqlx::query(trusted(sql))
            .bind(owner)
            .bind(millis(lease))
            .bind(id)
            .bind(force)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error("claim"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let record = run_from_row(&row)?;
        sqlx::query(trusted(format!(
            "INSERT INTO kernelize_events (run_id, status, attempt, at) VALUES ($1, 'claimed', $2, {now})"
        )))
        .bind(&record.id)
        .bind(i64::from(record.claims))
        .execute(&mut *tx)
        .await
        .map_err(db_error("claim"))?;
        tx.commit().await.map_err(db_error("claim"))?;
        Ok(Some(record))
    }

    async fn renew(&self, run_id: &str, owner: &str, lease: Duration) -> Result<LeaseState> {
        let now = self.now();
        let row = sqlx::query(trusted(format!(
            "UPDATE kernelize_runs SET lease_expires_at = {now} + $3 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running' \
             RETURNING cancel_requested"
        )))
        .bind(run_id)
        .bind(owner)
        .bind(millis(lease))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("renew lease"))?;
        Ok(match row {
            None => LeaseState::Lost,
            Some(row) => {
                let cancel: i64 = row.try_get("cancel_requested").map_err(bad_row)?;
                if cancel != 0 {
                    LeaseState::CancelRequested
                } else {
                    LeaseState::Held
                }
            }
        })
    }

    async fn record_step(
        &self,
        run_id: &str,
        owner: &str,
        step: &StepRecord,
        output: Option<&Payload>,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(db_error("record step"))?;
        // Holds the run's row until commit: a takeover waits, and a lost lease is seen.
        let held = sqlx::query(
            "UPDATE kernelize_runs SET lease_owner = lease_owner \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(db_error("record step"))?;
        if held.rows_affected() != 1 {
            return Err(lost(run_id, owner));
        }
        let position = i64::from(step.position);
        let attempts = i64::from(step.attempts);
        let mut sql = String::from(
            "INSERT INTO kernelize_steps (run_id, name, position, status, attempts, \
             started_at, finished_at, error, rows_out, bytes_out",
        );
        let encoded = output.map(Payload::encode).transpose()?;
        let (inline, reference) = match encoded {
            Some(bytes) if bytes.len() > INLINE_OUTPUT_LIMIT => {
                (None, Some((format!("{run_id}/{}", step.name), bytes)))
            }
            Some(bytes) => (Some(bytes), None),
            None => (None, None),
        };
        if output.is_some() {
            sql.push_str(
                ", output, output_ref) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            );
        } else {
            sql.push_str(") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
        }
        sql.push_str(
            " ON CONFLICT (run_id, name) DO UPDATE SET status = excluded.status, \
             attempts = excluded.attempts, started_at = excluded.started_at, \
             finished_at = excluded.finished_at, error = excluded.error, \
             rows_out = excluded.rows_out, bytes_out = excluded.bytes_out",
        );
        if output.is_some() {
            // Without an output, a stored one stays in place.
            sql.push_str(", output = excluded.output, output_ref = excluded.output_ref");
        }
        let mut query = sqlx::query(trusted(sql))
            .bind(run_id)
            .bind(&step.name)
            .bind(position)
            .bind(step.status.as_str())
            .bind(attempts)
            .bind(step.started_at)
            .bind(step.finished_at)
            .bind(step.error.as_deref())
            .bind(to_i64(step.rows))
            .bind(to_i64(step.bytes));
        if output.is_some() {
            query = query
                .bind(inline)
                .bind(reference.as_ref().map(|(id, _)| id.clone()));
        }
        query
            .execute(&mut *tx)
            .await
            .map_err(db_error("record step"))?;
        if let Some((id, data)) = reference {
            sqlx::query(
                "INSERT INTO kernelize_blobs (id, run_id, data) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            )
            .bind(id)
            .bind(run_id)
            .bind(data)
            .execute(&mut *tx)
            .await
            .map_err(db_error("record step output"))?;
        }
        sqlx::query(trusted(format!(
            "INSERT INTO kernelize_events (run_id, step, status, attempt, at, error) \
             VALUES ($1, $2, $3, $4, {now}, $5)"
        )))
        .bind(run_id)
        .bind(&step.name)
        .bind(step.status.as_str())
        .bind(attempts)
        .bind(step.error.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_error("record step"))?;
        tx.commit().await.map_err(db_error("record step"))?;
        Ok(())
    }

    async fn finish_run(
        &self,
        run_id: &str,
        owner: &str,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(db_error("finish run"))?;
        let done = sqlx::query(trusted(format!(
            "UPDATE kernelize_runs SET status = $3, finished_at = {now}, lease_owner = NULL, \
             lease_expires_at = NULL, error = $4 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'"
        )))
        .bind(run_id)
        .bind(owner)
        .bind(status.as_str())
        .bind(error)
        .execute(&mut *tx)
        .await
        .map_err(db_error("finish run"))?;
        if done.rows_affected() != 1 {
            return Err(lost(run_id, owner));
        }
        sqlx::query(trusted(format!(
            "INSERT INTO kernelize_events (run_id, status, at, error) VALUES ($1, $2, {now}, $3)"
        )))
        .bind(run_id)
        .bind(status.as_str())
        .bind(error)
        .execute(&mut *tx)
        .await
        .map_err(db_error("finish run"))?;
        tx.commit().await.map_err(db_error("finish run"))?;
        Ok(())
    }

    async fn release(&self, run_id: &str, owner: &str) -> Result<()> {
        let released = sqlx::query(
            "UPDATE kernelize_runs SET status = 'queued', lease_owner = NULL, \
             lease_expires_at = NULL WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db_error("release run"))?;
        if released.rows_affected() == 1 {
            self.notify().await;
        }
        Ok(())
    }

    async fn request_cancel(&self, run_id: &str) -> Result<bool> {
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(db_error("cancel run"))?;
        let queued = sqlx::query(trusted(format!(
            "UPDATE kernelize_runs SET status = 'cancelled', finished_at = {now} \
             WHERE id = $1 AND status = 'queued'"
        )))
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error("cancel run"))?;
        let asked = if queued.rows_affected() == 1 {
            sqlx::query(trusted(format!(
                "INSERT INTO kernelize_events (run_id, status, at) VALUES ($1, 'cancelled', {now})"
            )))
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error("cancel run"))?;
            true
        } else {
            let running = sqlx::query(
                "UPDATE kernelize_runs SET cancel_requested = 1 WHERE id = $1 AND status = 'running'",
            )
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error("cancel run"))?;
            running.rows_affected() == 1
        };
        tx.commit().await.map_err(db_error("cancel run"))?;
        if !asked && self.run(run_id).await?.is_none() {
            return Err(Error::new(ErrorKind::NotFound, format!("no run {run_id}")));
        }
        Ok(asked)
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        sqlx::query(trusted(format!(
            "SELECT {RUN_COLUMNS} FROM kernelize_runs WHERE id = $1"
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("read run"))?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        sqlx::query(trusted(format!(
            "SELECT {STEP_COLUMNS} FROM kernelize_steps WHERE run_id = $1 ORDER BY position"
        )))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("read steps"))?
        .iter()
        .map(step_from_row)
        .collect()
    }

    async fn output(&self, run_id: &str, step: &str) -> Result<Option<Payload>> {
        let row = sqlx::query(
            "SELECT s.output AS output, b.data AS data FROM kernelize_steps s \
             LEFT JOIN kernelize_blobs b ON b.id = s.output_ref \
             WHERE s.run_id = $1 AND s.name = $2",
        )
        .bind(run_id)
        .bind(step)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("read output"))?;
        let Some(row) = row else { return Ok(None) };
        let inline: Option<Vec<u8>> = row.try_get("output").map_err(bad_row)?;
        let referenced: Option<Vec<u8>> = row.try_get("data").map_err(bad_row)?;
        match inline.or(referenced) {
            Some(bytes) => Payload::decode(&bytes)
                .map(Some)
                .map_err(|e| e.with_context("step", step).with_context("run", run_id)),
            None => Ok(None),
        }
    }

    async fn events(&self, run_id: &str) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT step, status, attempt, at, error FROM kernelize_events \
             WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("read history"))?;
        rows.iter()
            .map(|row| {
                let attempt: Option<i64> = row.try_get("attempt").map_err(bad_row)?;
                Ok(Event {
                    at: row.try_get("at").map_err(bad_row)?,
                    step: row.try_get("step").map_err(bad_row)?,
                    status: row.try_get("status").map_err(bad_row)?,
                    attempt: attempt.and_then(|a| u32::try_from(a).ok()),
                    error: row.try_get("error").map_err(bad_row)?,
                })
            })
            .collect()
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let rows = sqlx::query(
            "SELECT id, workflow, status, trigger_name, created_at, started_at, finished_at \
             FROM kernelize_runs WHERE ($1 = '' OR workflow = $1) AND ($2 = '' OR status = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(filter.workflow.clone().unwrap_or_default())
        .bind(filter.status.map(RunStatus::as_str).unwrap_or_default())
        .bind(i64::from(filter.limit.unwrap_or(100)))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("list runs"))?;
        rows.iter().map(summary_from_row).collect()
    }

    async fn last_success(&self, workflow: &str) -> Result<Option<Millis>> {
        let row = sqlx::query(
            "SELECT MAX(started_at) AS t FROM kernelize_runs WHERE workflow = $1 AND status = 'succeeded'",
        )
        .bind(workflow)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("last success"))?;
        row.try_get::<Option<i64>, _>("t").map_err(bad_row)
    }

    async fn active_runs(&self, workflow: &str, trigger: &str) -> Result<u64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM kernelize_runs WHERE workflow = $1 AND trigger_name = $2 \
             AND status IN ('queued', 'running')",
        )
        .bind(workflow)
        .bind(trigger)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("active runs"))?;
        let n: i64 = row.try_get("n").map_err(bad_row)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let now = self.now();
        let taken = sqlx::query(trusted(format!(
            "INSERT INTO kernelize_locks (name, owner, expires_at) VALUES ($1, $2, {now} + $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE kernelize_locks.owner = excluded.owner OR kernelize_locks.expires_at < {now} \
             RETURNING owner"
        )))
        .bind(name)
        .bind(owner)
        .bind(millis(ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("lock"))?;
        Ok(taken.is_some())
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM kernelize_locks WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(db_error("unlock"))?;
        Ok(())
    }

    async fn claim_key(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<KeyClaim> {
        let now = self.now();
        let taken = sqlx::query(trusted(format!(
            "INSERT INTO kernelize_dedupe (scope, key, owner, done, expires_at) \
             VALUES ($1, $2, $3, 0, {now} + $4) \
             ON CONFLICT (scope, key) DO UPDATE SET owner = excluded.owner, done = 0, \
             expires_at = excluded.expires_at WHERE kernelize_dedupe.expires_at < {now} \
             RETURNING owner"
        )))
        .bind(scope)
        .bind(key)
        .bind(owner)
        .bind(millis(lease))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("claim key"))?;
        if taken.is_some() {
            return Ok(KeyClaim::New);
        }
        let row = sqlx::query("SELECT done FROM kernelize_dedupe WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("claim key"))?;
        let done: i64 = match row {
            Some(row) => row.try_get("done").map_err(bad_row)?,
            None => 0,
        };
        Ok(if done != 0 {
            KeyClaim::Done
        } else {
            KeyClaim::Pending
        })
    }

    async fn settle_key(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        window: Option<Duration>,
    ) -> Result<()> {
        let now = self.now();
        let query = match window {
            Some(w) => sqlx::query(trusted(format!(
                "UPDATE kernelize_dedupe SET done = 1, expires_at = {now} + $4 \
                 WHERE scope = $1 AND key = $2 AND owner = $3"
            )))
            .bind(scope)
            .bind(key)
            .bind(owner)
            .bind(millis(w)),
            None => sqlx::query(
                "DELETE FROM kernelize_dedupe WHERE scope = $1 AND key = $2 AND owner = $3",
            )
            .bind(scope)
            .bind(key)
            .bind(owner),
        };
        query
            .execute(&self.pool)
            .await
            .map_err(db_error("settle key"))?;
        Ok(())
    }

    async fn purge_keys(&self, scope: &str) -> Result<u64> {
        let now = self.now();
        let done = sqlx::query(trusted(format!(
            "DELETE FROM kernelize_dedupe WHERE scope = $1 AND expires_at < {now}"
        )))
        .bind(scope)
        .execute(&self.pool)
        .await
        .map_err(db_error("purge keys"))?;
        Ok(done.rows_affected())
    }

    async fn mark(&self, key: &str) -> Result<Option<Value>> {
        let row = sqlx::query("SELECT value FROM kernelize_marks WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("read mark"))?;
        match row {
            None => Ok(None),
            Some(row) => {
                let text: String = row.try_get("value").map_err(bad_row)?;
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| bad_row(format!("mark `{key}`: {e}")))
            }
        }
    }

    async fn set_mark(&self, key: &str, value: &Value) -> Result<()> {
        sqlx::query(
            "INSERT INTO kernelize_marks (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(serde_json::to_string(value)?)
        .execute(&self.pool)
        .await
        .map_err(db_error("write mark"))?;
        Ok(())
    }

    async fn wait_for_work(&self, timeout: Duration) {
        #[cfg(feature = "postgres")]
        if self.dialect == Dialect::Postgres {
            let mut guard = self.listener.lock().await;
            if guard.is_none() {
                match sqlx::postgres::PgListener::connect(&self.url).await {
                    Ok(mut listener) => {
                        if listener.listen("kernelize_runs").await.is_ok() {
                            *guard = Some(listener);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "store: cannot listen for new runs"),
                }
            }
            if let Some(listener) = guard.as_mut() {
                match tokio::time::timeout(timeout, listener.recv()).await {
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "store: listening for new runs failed");
                        *guard = None;
                    }
                }
                return;
            }
        }
        tokio::time::sleep(timeout).await;
    }
}
