//! PostgreSQL's `COPY ... FROM STDIN` for loads (`method: copy`): rows in COPY's text
//! format, streamed in chunks over the load's transaction.
//!
//! - append and replace: `COPY table (columns) FROM STDIN`;
//! - upsert: `COPY` into a temporary table shaped like the target's columns
//!   (`CREATE TEMPORARY TABLE .. ON COMMIT DROP AS SELECT columns FROM table WITH NO DATA`),
//!   then one `INSERT INTO table (columns) SELECT columns FROM temp ON CONFLICT (key) DO
//!   UPDATE ...`. As with any single `INSERT ... ON CONFLICT`, two rows of one load with the
//!   same key are an error (`ON CONFLICT DO UPDATE command cannot affect row a second time`).
//!
//! ## Text format ([`encode_value`])
//!
//! Columns are separated by a tab and rows end with a newline; NULL is `\N`. In text, a
//! backslash, tab, newline and carriage return are escaped (`\\`, `\t`, `\n`, `\r`), and
//! every other character, quotes and any Unicode included, goes as its UTF-8 bytes. Bytes are
//! `bytea` hex (`\\x00ff`, its backslash escaped), booleans `t`/`f`, floats in Rust's
//! shortest round-trip form (`Infinity`, `-Infinity` and `NaN` by name), timestamps in
//! RFC 3339 UTC, dates as `YYYY-MM-DD`. PostgreSQL parses each field as the column's type,
//! so text goes into `jsonb`, `uuid`, `numeric` or timestamp columns as with `INSERT`.
//!
//! A value PostgreSQL refuses fails the whole `COPY`, and the load's transaction with it:
//! nothing is written. Its message is PostgreSQL's, without the value it quotes (as with
//! `INSERT`, values never appear in errors); the `rows` context names the rows copied.
//!
//! ## Small loads over TCP
//!
//! With sqlx 0.9.0 each `COPY` over TCP waits about 40 ms before it ends, whatever its
//! size: sqlx no longer sets `TCP_NODELAY` (sqlx issue #4335, fixed upstream, not released
//! yet), and the small `CopyDone` message written after the data waits for the server's
//! delayed ACK. Multi-row `INSERT`s do not pay it. So `COPY` pays off for loads of
//! thousands of rows, or over PostgreSQL's Unix socket; measured in
//! `kernelize-workflow/BENCHMARKS.md`.

use kernelize_core::arrow_array::RecordBatch;
use kernelize_core::{ActionContext, Error, Result};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Executor, SqlSafeStr};

use super::error::database_error;
use super::load::{LoadMode, LoadPlan};
use super::postgres::DIALECT;
use super::value::{SqlValue, local_timestamp_text, rfc3339};

/// Bytes of COPY data sent at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// Appends `value` to `out` as one field of COPY's text format.
pub fn encode_value(value: &SqlValue, out: &mut Vec<u8>) {
    match value {
        SqlValue::Null => out.extend_from_slice(b"\\N"),
        SqlValue::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        SqlValue::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        SqlValue::Float(f) => {
            let text = if f.is_nan() {
                "NaN".to_string()
            } else if f.is_infinite() {
                if *f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
            } else {
                f.to_string()
            };
            out.extend_from_slice(text.as_bytes());
        }
        SqlValue::Text(s) => escape_text(s, out),
        SqlValue::Bytes(bytes) => {
            out.extend_from_slice(b"\\\\x");
            for b in bytes {
                out.extend_from_slice(format!("{b:02x}").as_bytes());
            }
        }
        SqlValue::Timestamp(t) => out.extend_from_slice(rfc3339(t).as_bytes()),
        SqlValue::Date(d) => out.extend_from_slice(d.format("%Y-%m-%d").to_string().as_bytes()),
        SqlValue::LocalTimestamp(t) => out.extend_from_slice(local_timestamp_text(t).as_bytes()),
    }
}

fn escape_text(text: &str, out: &mut Vec<u8>) {
    for &b in text.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// Writes `batches` into `plan`'s table with `COPY` on `conn` (inside the load's
/// transaction); returns the rows written.
pub(crate) async fn copy_rows(
    conn: &mut PgConnection,
    ctx: &ActionContext,
    plan: &LoadPlan,
    batches: &[RecordBatch],
    first_row: usize,
) -> Result<u64> {
    let names: Vec<String> = plan.columns().iter().map(|c| c.name.clone()).collect();
    let columns = plan.quoted_list(&names);
    let table = plan.table().quoted(&DIALECT);
    if plan.mode() != LoadMode::Upsert {
        return copy_into(conn, ctx, plan, &table, &columns, batches, first_row).await;
    }
    let temp = DIALECT.quote_identifier(&format!("kernelize_copy_{:016x}", rand::random::<u64>()));
    let create = format!(
        "CREATE TEMPORARY TABLE {temp} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA"
    );
    run(conn, &create, "create the COPY's temporary table").await?;
    copy_into(conn, ctx, plan, &temp, &columns, batches, first_row).await?;
    let insert = format!(
        "INSERT INTO {table} ({columns}) SELECT {columns} FROM {temp}{}",
        plan.upsert_clause()
    );
    run(conn, &insert, "upsert the copied rows").await
}

async fn run(conn: &mut PgConnection, sql: &str, doing: &str) -> Result<u64> {
    let done = conn
        .execute(AssertSqlSafe(sql.to_string()).into_sql_str())
        .await
        .map_err(|e| database_error(&DIALECT, doing, e))?;
    Ok(done.rows_affected())
}

/// `COPY target (columns) FROM STDIN` of every row of `batches`.
async fn copy_into(
    conn: &mut PgConnection,
    ctx: &ActionContext,
    plan: &LoadPlan,
    target: &str,
    columns: &str,
    batches: &[RecordBatch],
    first_row: usize,
) -> Result<u64> {
    let statement = format!("COPY {target} ({columns}) FROM STDIN");
    let mut copy = conn
        .copy_in_raw(&statement)
        .await
        .map_err(|e| database_error(&DIALECT, "start the COPY", e))?;
    let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + 4096);
    let mut sent = first_row;
    let mut row_number = first_row;
    let mut failure: Option<Error> = None;
    'batches: for batch in batches {
        let cells = match plan.cells(batch) {
            Ok(cells) => cells,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        for row in 0..batch.num_rows() {
            for (i, (cell, column)) in cells.iter().zip(plan.columns()).enumerate() {
                if i > 0 {
                    chunk.push(b'\t');
                }
                match cell.get(row) {
                    Ok(value) => encode_value(&value, &mut chunk),
                    Err(e) => {
                        failure = Some(
                            e.with_context("column", &column.name)
                                .with_context("row", row_number),
                        );
                        break 'batches;
                    }
                }
            }
            chunk.push(b'\n');
            row_number += 1;
            if chunk.len() >= CHUNK_BYTES {
                if let Err(e) = ctx.check_alive() {
                    failure = Some(e);
                    break 'batches;
                }
                if let Err(e) = copy.send(chunk.as_slice()).await {
                    failure = Some(
                        database_error(&DIALECT, "send the COPY data", e)
                            .with_context("rows", format!("{sent}-{}", row_number - 1)),
                    );
                    break 'batches;
                }
                sent = row_number;
                chunk.clear();
            }
        }
    }
    if failure.is_none()
        && !chunk.is_empty()
        && let Err(e) = copy.send(chunk.as_slice()).await
    {
        failure = Some(database_error(&DIALECT, "send the COPY data", e));
    }
    if let Some(failure) = failure {
        // Ends the COPY cleanly, so the connection can roll the transaction back.
        let _ = copy.abort("the load failed").await;
        return Err(failure);
    }
    copy.finish().await.map_err(|e| {
        withhold_value(database_error(&DIALECT, "copy the rows", e))
            .with_context("rows", format!("{first_row}-{}", row_number - 1))
    })
}

/// `err` without the value PostgreSQL quotes in a data error's message (`invalid input
/// syntax for type integer: "abc"`): with `INSERT` the connector converts values itself and
/// never quotes them, and `COPY` keeps to that.
fn withhold_value(err: Error) -> Error {
    let is_data_error = err
        .context_value("code")
        .is_some_and(|c| c.starts_with("22"));
    let Some(at) = err.message().find(": \"") else {
        return err;
    };
    if !is_data_error {
        return err;
    }
    let mut out = Error::new(
        err.kind(),
        format!("{} (the value is withheld)", &err.message()[..at]),
    );
    for (key, value) in err.context() {
        out = out.with_context(key, value);
    }
    if err.is_temporary() {
        out.set_temporary()
    } else {
        out.set_permanent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(value: SqlValue) -> String {
        let mut out = Vec::new();
        encode_value(&value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_escapes_what_copy_reads_specially() {
        assert_eq!(
            field(SqlValue::Text("a\tb\nc\rd\\e 'q' \"dq\" é ☃ \\N".into())),
            "a\\tb\\nc\\rd\\\\e 'q' \"dq\" é ☃ \\\\N"
        );
        assert_eq!(field(SqlValue::Null), "\\N");
        assert_eq!(field(SqlValue::Text(String::new())), "");
    }

    #[test]
    fn other_values_use_postgres_input_forms() {
        assert_eq!(field(SqlValue::Bytes(vec![0, 255])), "\\\\x00ff");
        assert_eq!(field(SqlValue::Bool(true)), "t");
        assert_eq!(field(SqlValue::Float(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(field(SqlValue::Float(0.1)), "0.1");
        assert_eq!(field(SqlValue::Int(-7)), "-7");
    }
}
