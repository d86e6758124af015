//! NATS JetStream → PostgreSQL rows per second, at several sink batch sizes, on one core.
//!
//! ```text
//! nats_postgres [MESSAGES] [BATCH...]
//! ```
//!
//! For each batch size (default 100, 1000 and 5000) it publishes MESSAGES (default 100,000)
//! JSON orders of about 150 bytes to a fresh JetStream stream, then times six loaders
//! that each read all of them through their own durable pull consumer and write them to
//! their own fresh table, acknowledging each message only after its row is committed:
//!
//! - `pipeline insert`: a Kernelize pipeline from YAML (`nats-connector` source, a batch
//!   stage, a `postgres-connector` sink with multi-row `INSERT`s), each acknowledgement
//!   confirmed by the server (a double ack, the source's default);
//! - `pipeline copy`: the same with the sink's `method: copy`;
//! - `pipeline insert, unconfirmed acks` and `pipeline copy, unconfirmed acks`: the same
//!   with the source's `confirm_acks: false` (acknowledgements sent without waiting, as
//!   most NATS clients send them);
//! - `raw, double ack` and `raw, ack`: the libraries alone, async-nats pulling BATCH
//!   messages and sqlx inserting them in one multi-row `INSERT` with bound parameters in a
//!   transaction, then acknowledging each message, confirmed or not.
//!
//! The process runs on a current-thread tokio runtime (one core); the NATS and PostgreSQL
//! servers run on the machine's other cores. Timing starts when the loader starts and ends
//! when every message is acknowledged; the table's row count is checked afterwards. Needs
//! NATS with JetStream on 127.0.0.1:4222 and PostgreSQL on 127.0.0.1:5432 (user postgres,
//! database test).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use kernelize::workflow::definition;
use kernelize::workflow::pipeline::Pipeline;
use kernelize::{Error, ErrorKind, Result};
use serde_json::json;
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};
use tokio_util::sync::CancellationToken;

const NATS: &str = "nats://127.0.0.1:4222";
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn usage(what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{what}; usage: nats_postgres [MESSAGES] [BATCH...]"),
    )
}

fn count(text: &str) -> Result<usize> {
    match text.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(usage(format!("`{text}` is not a count above zero"))),
    }
}

fn failed(doing: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::new(ErrorKind::Unexpected, format!("could not {doing}: {e}"))
}

fn order(i: usize) -> Vec<u8> {
    let region = ["eu", "us", "apac"][i % 3];
    json!({
        "order_id": i,
        "customer": format!("customer-{:06}", i % 5000),
        "region": region,
        "amount": (i * 37) % 5000,
        "status": "paid",
        "created_at": "2026-11-27T08:00:00Z",
    })
    .to_string()
    .into_bytes()
}

const COLUMNS: &str = "order_id BIGINT NOT NULL, customer TEXT, region TEXT, amount BIGINT, \
                       status TEXT, created_at TEXT";

struct Setup {
    js: jetstream::Context,
    pg: PgConnection,
    tag: String,
}

impl Setup {
    async fn publish(&self, stream_name: &str, subject: &str, messages: usize) -> Result<()> {
        let _ = self.js.delete_stream(stream_name).await;
        self.js
            .create_stream(stream::Config {
                name: stream_name.to_string(),
                subjects: vec![subject.to_string()],
                ..Default::default()
            })
            .await
            .map_err(|e| failed("create the stream")(e.to_string()))?;
        let mut acks = Vec::with_capacity(1000);
        for i in 0..messages {
            acks.push(
                self.js
                    .publish(subject.to_string(), order(i).into())
                    .await
                    .map_err(|e| failed("publish")(e.to_string()))?,
            );
            if acks.len() == 1000 {
                for ack in acks.drain(..) {
                    ack.await.map_err(|e| failed("publish")(e.to_string()))?;
                }
            }
        }
        for ack in acks {
            ack.await.map_err(|e| failed("publish")(e.to_string()))?;
        }
        Ok(())
    }

    async fn table(&mut self, table: &str, create: bool) -> Result<()> {
        let sql = if create {
            format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({COLUMNS})")
        } else {
            format!("DROP TABLE IF EXISTS {table}")
        };
        // Table names are made here from the process id and the batch size.
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut self.pg)
            .await
            .map_err(|e| failed("prepare the table")(e.to_string()))?;
        Ok(())
    }

    async fn rows(&mut self, table: &str) -> Result<i64> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(DISTINCT order_id) FROM {table}"
        )))
        .fetch_one(&mut self.pg)
        .await
        .map_err(|e| failed("count rows")(e.to_string()))
    }
}

/// The Kernelize pipeline: seconds until every message is acknowledged.
async fn pipeline(
    stream_name: &str,
    subject: &str,
    table: &str,
    batch: usize,
    method: &str,
    confirm: bool,
    messages: usize,
) -> Result<f64> {
    let yaml = format!(
        r#"
plugins:
  events:
    plugin: nats-connector
    settings: {{ url: "{NATS}" }}
    permissions: [{{ kind: network, host: "127.0.0.1" }}]
  warehouse:
    plugin: postgres-connector
    settings: {{ url: "{POSTGRES}", max_connections: 4 }}
    permissions: [{{ kind: network, host: "127.0.0.1" }}]
pipelines:
  load:
    max_in_flight: {in_flight}
    source:
      plugin: events
      options: {{ stream: "{stream_name}", durable: "kernelize_{method}_{confirm}", batch: {pull}, ack_wait: 60s, max_ack_pending: {in_flight}, confirm_acks: {confirm}, create: true, filter_subject: "{subject}" }}
    stages:
      - batch: {{ count: {batch}, linger: 50ms }}
    sinks:
      - name: orders
        plugin: warehouse
        options: {{ table: "{table}", method: {method}, create: false }}
"#,
        in_flight = batch * 4,
        pull = batch.min(10_000),
    );
    let file = definition::parse("bench.yaml", &yaml)
        .map_err(Error::from)?
        .file;
    let manager = kernelize::manager()?;
    let started = Instant::now();
    let pipeline = Pipeline::from_definition(&file, "load", &manager, None).await?;
    let cancel = CancellationToken::new();
    let (handle, done) = pipeline.start(cancel.clone());
    let done = tokio::spawn(done);
    loop {
        let m = handle.metrics();
        if m.acked >= messages as u64 {
            break;
        }
        if done.is_finished() {
            return Err(failed("run the pipeline")(format!("it ended early: {m:?}")));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    cancel.cancel();
    done.await
        .map_err(|e| failed("run the pipeline")(e.to_string()))??;
    Ok(seconds)
}

/// The raw libraries: seconds until every message is acknowledged.
async fn raw(
    setup: &Setup,
    stream_name: &str,
    table: &str,
    batch: usize,
    confirm: bool,
    messages: usize,
) -> Result<f64> {
    let started = Instant::now();
    let stream = setup
        .js
        .get_stream(stream_name)
        .await
        .map_err(|e| failed("open the stream")(e.to_string()))?;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(format!("raw_{confirm}")),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            max_ack_pending: (batch * 4) as i64,
            ..Default::default()
        })
        .await
        .map_err(|e| failed("create the consumer")(e.to_string()))?;
    let mut pg = PgConnection::connect(POSTGRES)
        .await
        .map_err(|e| failed("connect to PostgreSQL")(e.to_string()))?;
    let mut done = 0;
    while done < messages {
        let mut pulled = consumer
            .fetch()
            .max_messages(batch)
            .expires(Duration::from_millis(50))
            .messages()
            .await
            .map_err(|e| failed("pull")(e.to_string()))?;
        let mut msgs = Vec::with_capacity(batch);
        let mut rows = Vec::with_capacity(batch);
        while let Some(m) = pulled.next().await {
            let m = m.map_err(|e| failed("pull")(e.to_string()))?;
            let row: serde_json::Value = serde_json::from_slice(&m.payload)
                .map_err(|e| failed("parse a message")(e.to_string()))?;
            rows.push(row);
            msgs.push(m);
        }
        if msgs.is_empty() {
            continue;
        }
        let mut insert = QueryBuilder::<Postgres>::new(format!(
            "INSERT INTO {table} (order_id, customer, region, amount, status, created_at) "
        ));
        insert.push_values(&rows, |mut b, row| {
            b.push_bind(row["order_id"].as_i64())
                .push_bind(row["customer"].as_str().map(str::to_owned))
                .push_bind(row["region"].as_str().map(str::to_owned))
                .push_bind(row["amount"].as_i64())
                .push_bind(row["status"].as_str().map(str::to_owned))
                .push_bind(row["created_at"].as_str().map(str::to_owned));
        });
        let mut tx = pg
            .begin()
            .await
            .map_err(|e| failed("begin")(e.to_string()))?;
        insert
            .build()
            .execute(&mut *tx)
            .await
            .map_err(|e| failed("insert")(e.to_string()))?;
        tx.commit()
            .await
            .map_err(|e| failed("commit")(e.to_string()))?;
        let acks = futures::future::join_all(msgs.iter().map(|m| async move {
            if confirm {
                m.double_ack().await
            } else {
                m.ack().await
            }
        }))
        .await;
        for ack in acks {
            ack.map_err(|e| failed("acknowledge")(e.to_string()))?;
        }
        done += msgs.len();
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let messages = args.next().as_deref().map_or(Ok(100_000), count)?;
    let mut batches = args.map(|n| count(&n)).collect::<Result<Vec<_>>>()?;
    if batches.is_empty() {
        batches = vec![100, 1000, 5000];
    }
    let client = async_nats::connect(NATS).await.map_err(|e| {
        failed("connect to NATS on 127.0.0.1:4222 (is nats-server running with JetStream?)")(
            e.to_string(),
        )
    })?;
    let pg = PgConnection::connect(POSTGRES)
        .await
        .map_err(|e| failed("connect to PostgreSQL on 127.0.0.1:5432")(e.to_string()))?;
    let mut setup = Setup {
        js: jetstream::new(client),
        pg,
        tag: std::process::id().to_string(),
    };
    println!("| batch | loader | messages | seconds | rows/s |");
    println!("|---|---|---|---|---|");
    for batch in batches {
        let stream_name = format!("KZ_BENCH_{}_{batch}", setup.tag);
        let subject = format!("kzbench.{}.{batch}", setup.tag);
        setup.publish(&stream_name, &subject, messages).await?;
        for (n, loader) in [
            "pipeline insert",
            "pipeline copy",
            "pipeline insert, unconfirmed acks",
            "pipeline copy, unconfirmed acks",
            "raw, double ack",
            "raw, ack",
        ]
        .into_iter()
        .enumerate()
        {
            let table = format!("kz_bench_{}_{batch}_{n}", setup.tag);
            setup.table(&table, true).await?;
            let confirm = !loader.ends_with("unconfirmed acks") && loader != "raw, ack";
            let seconds = if loader.starts_with("raw") {
                raw(&setup, &stream_name, &table, batch, confirm, messages).await?
            } else {
                let method = if loader.contains("copy") {
                    "copy"
                } else {
                    "insert"
                };
                pipeline(
                    &stream_name,
                    &subject,
                    &table,
                    batch,
                    method,
                    confirm,
                    messages,
                )
                .await?
            };
            let rows = setup.rows(&table).await?;
            if rows != messages as i64 {
                return Err(failed("load every message")(format!(
                    "{loader} at batch {batch} left {rows} distinct rows of {messages}"
                )));
            }
            println!(
                "| {batch} | {loader} | {messages} | {seconds:.2} | {:.0} |",
                messages as f64 / seconds
            );
            setup.table(&table, false).await?;
        }
        let _ = setup.js.delete_stream(&stream_name).await;
    }
    Ok(())
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("start the runtime")(e.to_string()))?;
    runtime.block_on(run())
}
