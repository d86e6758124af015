//! `migrate`: versioned migrations recorded in a history table, in the manner of Flyway.
//!
//! The history table holds one row per migration run: `INSTALLED_RANK`, `VERSION`,
//! `DESCRIPTION`, `CHECKSUM` (SHA-256 of the SQL, hex), `APPLIED_ON`, `SUCCESS`. Before
//! applying anything, the recorded history is checked against the migrations given: a
//! recorded migration whose SQL changed, one that is no longer given, one recorded as
//! failed, or a pending migration older than the newest applied one stops the call with an
//! error that says what to do. Snowflake commits DDL as it runs, so a migration that fails
//! half-way is recorded with `SUCCESS = FALSE` and must be repaired by hand.

use std::path::Path;

use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Permission, Result};
use serde_json::Value;

use super::actions::{AppliedMigration, MigrateConfig, MigrateSummary, Migration};
use super::bind::{Binding, rewrite, sql_name};
use super::client::{QueryResult, SnowflakeClient, Statement};

/// The most migration files read from a directory.
pub const MAX_FILES: usize = 10_000;

/// The largest migration file read.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// A migration's version as numbers (`1.10` → `[1, 10]`), for ordering.
pub fn version_key(version: &str) -> Result<Vec<u64>> {
    let parts: Option<Vec<u64>> = version
        .trim()
        .split(['.', '_'])
        .map(|p| p.parse::<u64>().ok())
        .collect();
    match parts {
        Some(p) if !p.is_empty() => {
            let mut p = p;
            while p.len() > 1 && p.last() == Some(&0) {
                p.pop();
            }
            Ok(p)
        }
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "migration version `{version}` must be numbers separated by `.` or `_` (`1`, `1.1`, `2024_05_01`)"
            ),
        )),
    }
}

/// The checksum of a migration's SQL: SHA-256 (hex) of the text with `\r\n` read as `\n`
/// and trailing whitespace dropped, so that line endings do not count as a change.
pub fn checksum(sql: &str) -> String {
    let normalized = sql.replace("\r\n", "\n");
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, normalized.trim_end().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `V<version>__<description>.sql` files from `dir` (other files are ignored); the
/// description is the name's part after `__`, with `_` as spaces.
pub async fn read_directory(ctx: &ActionContext, dir: &Path) -> Result<Vec<Migration>> {
    ctx.permissions.check(&Permission::FileRead {
        path: dir.to_path_buf(),
    })?;
    let mut entries = tokio::fs::read_dir(dir).await.map_err(|e| {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "cannot read the migrations directory `{}`: {e}",
                dir.display()
            ),
        )
    })?;
    let mut out = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("cannot list `{}`: {e}", dir.display()),
        )
    })? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".sql") else {
            continue;
        };
        let Some((version, description)) = stem
            .strip_prefix('V')
            .and_then(|rest| rest.split_once("__"))
        else {
            continue;
        };
        if out.len() >= MAX_FILES {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`{}` holds more than {MAX_FILES} migrations", dir.display()),
            ));
        }
        let path = entry.path();
        let size = entry.metadata().await.map(|m| m.len()).unwrap_or(0);
        if size > MAX_FILE_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "migration `{}` is {size} bytes, more than {MAX_FILE_BYTES}",
                    path.display()
                ),
            ));
        }
        let sql = tokio::fs::read_to_string(&path).await.map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot read migration `{}`: {e}", path.display()),
            )
        })?;
        out.push(Migration {
            version: version.replace('_', "."),
            description: description.replace('_', " "),
            sql,
        });
    }
    Ok(out)
}

/// A row of the history table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    rank: u64,
    version: String,
    checksum: String,
    success: bool,
}

fn history_rows(result: &QueryResult, table: &str) -> Result<Vec<Recorded>> {
    let index = |name: &str| {
        result
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("the history table {table} has no column {name}; is it another tool's table?"),
                )
            })
    };
    let (rank, version, check, success) = (
        index("INSTALLED_RANK")?,
        index("VERSION")?,
        index("CHECKSUM")?,
        index("SUCCESS")?,
    );
    let text = |row: &[Value], i: usize| -> String {
        match row.get(i) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    };
    Ok(result
        .rows
        .iter()
        .map(|row| Recorded {
            rank: text(row, rank).parse().unwrap_or(0),
            version: text(row, version),
            checksum: text(row, check),
            success: matches!(
                text(row, success).to_ascii_lowercase().as_str(),
                "true" | "1"
            ),
        })
        .collect())
}

fn statement_in(config: &MigrateConfig, sql: String) -> Statement {
    Statement {
        sql,
        warehouse: config.warehouse.clone(),
        database: config.database.clone(),
        schema: config.schema.clone(),
        role: config.role.clone(),
        ..Statement::default()
    }
}

/// Runs `migrate` (see the module docs).
pub async fn migrate(
    client: &SnowflakeClient,
    ctx: &ActionContext,
    config: &MigrateConfig,
) -> Result<MigrateSummary> {
    let table = sql_name(&config.history_table)?;
    let mut migrations = config.migrations.clone();
    if let Some(dir) = &config.directory {
        migrations.extend(read_directory(ctx, dir).await?);
    }
    let mut keyed = Vec::with_capacity(migrations.len());
    for m in migrations {
        let key = version_key(&m.version)?;
        if m.sql.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("migration {} has no SQL", m.version),
            ));
        }
        keyed.push((key, m));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = keyed.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "migrations {} and {} have the same version",
                w[0].1.version, w[1].1.version
            ),
        ));
    }

    client
        .execute(
            ctx,
            &statement_in(
                config,
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} (INSTALLED_RANK NUMBER(38,0) NOT NULL, VERSION VARCHAR NOT NULL, DESCRIPTION VARCHAR, CHECKSUM VARCHAR NOT NULL, APPLIED_ON TIMESTAMP_LTZ NOT NULL, SUCCESS BOOLEAN NOT NULL)"
                ),
            ),
            None,
        )
        .await?;
    let history = client
        .execute(
            ctx,
            &statement_in(
                config,
                format!(
                    "SELECT INSTALLED_RANK, VERSION, DESCRIPTION, CHECKSUM, SUCCESS FROM {table} ORDER BY INSTALLED_RANK"
                ),
            ),
            None,
        )
        .await?;
    let recorded = history_rows(&history, &table)?;

    let mut already = Vec::new();
    let mut newest: Option<(Vec<u64>, String)> = None;
    for r in &recorded {
        let key = version_key(&r.version)?;
        if !r.success {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "migration {} failed on an earlier run (recorded in {table} with SUCCESS = FALSE); repair the schema by hand, delete that row from {table}, and run migrate again",
                    r.version
                ),
            )
            .with_context("version", &r.version));
        }
        let Some((_, local)) = keyed.iter().find(|(k, _)| *k == key) else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "migration {} is recorded in {table} as applied but is not among the migrations given; keep applied migrations in the list",
                    r.version
                ),
            )
            .with_context("version", &r.version));
        };
        let now = checksum(&local.sql);
        if now != r.checksum {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "migration {} changed after it was applied (checksum {} recorded, {now} now); applied migrations must not change — add a new migration instead",
                    r.version, r.checksum
                ),
            )
            .with_context("version", &r.version));
        }
        already.push(local.version.clone());
        if newest.as_ref().is_none_or(|(k, _)| key > *k) {
            newest = Some((key, r.version.clone()));
        }
    }

    let applied_keys: Vec<Vec<u64>> = recorded
        .iter()
        .filter_map(|r| version_key(&r.version).ok())
        .collect();
    let pending: Vec<&(Vec<u64>, Migration)> = keyed
        .iter()
        .filter(|(k, _)| !applied_keys.contains(k))
        .collect();
    let out_of_order = newest.as_ref().and_then(|(newest_key, newest_version)| {
        pending
            .iter()
            .find(|(k, _)| k < newest_key)
            .map(|(_, m)| (m, newest_version))
    });
    if let Some((first, newest_version)) = out_of_order {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "migration {} is older than {newest_version}, which is already applied; out-of-order migrations are refused — give it a version above {newest_version}",
                first.version
            ),
        )
        .with_context("version", &first.version));
    }

    let mut rank = recorded.iter().map(|r| r.rank).max().unwrap_or(0);
    let mut applied = Vec::new();
    for (_, m) in pending {
        ctx.check_alive()?;
        let sum = checksum(&m.sql);
        let count = rewrite(&m.sql)?.statements;
        let mut statement = statement_in(config, m.sql.clone());
        if count > 1 {
            statement.multi_statement_count = Some(count as u32);
        }
        let outcome = client.execute(ctx, &statement, None).await;
        rank += 1;
        let record = statement_in(
            config,
            format!(
                "INSERT INTO {table} (INSTALLED_RANK, VERSION, DESCRIPTION, CHECKSUM, APPLIED_ON, SUCCESS) VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP(), ?)"
            ),
        )
        .bindings(vec![
            Binding::new("FIXED", Some(rank.to_string())),
            Binding::new("TEXT", Some(m.version.clone())),
            Binding::new("TEXT", Some(m.description.clone())),
            Binding::new("TEXT", Some(sum.clone())),
            Binding::new("BOOLEAN", Some(outcome.is_ok().to_string())),
        ]);
        match outcome {
            Ok(_) => {
                client.execute(ctx, &record, None).await.map_err(|e| {
                    Error::new(
                        e.kind(),
                        format!(
                            "migration {} was applied but recording it in {table} failed: {}; record it by hand before running migrate again",
                            m.version,
                            e.message()
                        ),
                    )
                    .with_context("version", &m.version)
                })?;
                applied.push(AppliedMigration {
                    version: m.version.clone(),
                    description: m.description.clone(),
                    checksum: sum,
                });
            }
            Err(e) => {
                if let Err(record_error) = client.execute(ctx, &record, None).await {
                    tracing::warn!(version = %m.version, error = %record_error, "recording a failed migration failed");
                }
                let applied_list: Vec<&str> = applied.iter().map(|a| a.version.as_str()).collect();
                return Err(Error::new(
                    e.kind(),
                    format!(
                        "migration {} failed: {} (applied before it in this call: {})",
                        m.version,
                        e.message(),
                        if applied_list.is_empty() {
                            "none".to_string()
                        } else {
                            applied_list.join(", ")
                        }
                    ),
                )
                .with_context("version", &m.version));
            }
        }
    }
    Ok(MigrateSummary {
        history_table: config.history_table.clone(),
        applied,
        already_applied: already,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn versions_order_numerically() {
        assert!(version_key("1.10").unwrap() > version_key("1.9").unwrap());
        assert_eq!(version_key("2").unwrap(), version_key("2.0").unwrap());
        assert_eq!(version_key("2024_05_01").unwrap(), vec![2024, 5, 1]);
        assert!(version_key("v1").is_err());
        assert!(version_key("").is_err());
    }

    #[test]
    fn checksums_ignore_line_endings_and_trailing_space() {
        assert_eq!(checksum("a\r\nb\n"), checksum("a\nb"));
        assert_ne!(checksum("a"), checksum("b"));
        assert_eq!(checksum("").len(), 64);
    }
}
