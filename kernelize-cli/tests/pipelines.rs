//! Event pipelines run by `kernelize run` against the real local services: NATS JetStream
//! into PostgreSQL (with malformed messages, duplicates, dead letters, and a process killed
//! mid-stream), and RabbitMQ → Redis Streams → MariaDB.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const NATS: &str = "nats://127.0.0.1:4222";
const MARIADB: &str = "mysql://root@127.0.0.1:3306/test";

fn suffix() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-tAc",
            sql,
        ])
        .output()
        .expect("psql runs (PostgreSQL's client must be installed)");
    assert!(
        out.status.success(),
        "psql `{sql}` failed (is PostgreSQL running on 127.0.0.1:5432?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn mariadb(sql: &str) -> String {
    let out = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-N",
            "-B",
            "test",
            "-e",
            sql,
        ])
        .output()
        .expect("the mariadb client runs");
    assert!(
        out.status.success(),
        "mariadb `{sql}` failed (is MariaDB running on 127.0.0.1:3306?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn count_pg(table: &str) -> u64 {
    if psql(&format!("SELECT to_regclass('{table}') IS NOT NULL")) != "t" {
        return 0;
    }
    psql(&format!("SELECT count(*) FROM {table}"))
        .parse()
        .unwrap_or(0)
}

/// A pipeline process, killed if the test ends without stopping it.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            if let Ok(out) = child.wait_with_output() {
                eprintln!("pipeline stderr:\n{}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}

fn spawn_pipeline(dir: &Path, file: &Path, args: &[&str]) -> Running {
    Running(Some(spawn_child(dir, file, args)))
}

fn spawn_child(dir: &Path, file: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .current_dir(dir)
        .arg("run")
        .arg(file)
        .args(args)
        .arg("--json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kernelize starts")
}

/// Stops a pipeline process the way an operator does (SIGTERM) and returns its counters.
fn stop(mut running: Running) -> Value {
    let child = running.0.take().expect("running");
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    let out = child.wait_with_output().expect("kernelize ends");
    assert!(
        out.status.success(),
        "kernelize run failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the counters are not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn kill_hard(mut running: Running) {
    if let Some(mut child) = running.0.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Running {
    /// Fails the test when the process has ended on its own.
    fn alive(&mut self) -> bool {
        if let Some(child) = self.0.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("the pipeline process ended early: {status}");
        }
        true
    }
}

/// Waits until `done` holds, or fails after `limit` with what `state` says.
fn wait_for(
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
    state: impl Fn() -> String,
) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}: {}",
            state()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

const MESSAGES: u64 = 10_000;

/// Message `i`: malformed when `i % 100 == 42` (100 of them), a test order when
/// `i % 50 == 7` (200, filtered), else a good order. Orders `i % 40 == 3` are sent twice.
fn message(i: u64) -> Vec<u8> {
    if i % 100 == 42 {
        return format!("{{\"order_id\": {i}, broken").into_bytes();
    }
    let status = if i % 50 == 7 { "test" } else { "paid" };
    json!({"order_id": i, "amount": (i * 37) % 5000, "status": status, "note": "x".repeat(40)})
        .to_string()
        .into_bytes()
}

fn good(i: u64) -> bool {
    i % 100 != 42 && i % 50 != 7
}

async fn publish_orders(stream: &str, subject: &str) -> u64 {
    let client = async_nats::connect(NATS)
        .await
        .expect("NATS must run on 127.0.0.1:4222 with JetStream");
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: stream.to_string(),
        subjects: vec![subject.to_string()],
        ..Default::default()
    })
    .await
    .expect("the stream is created");
    let mut acks = Vec::new();
    let mut sent = 0;
    for i in 0..MESSAGES {
        let copies = if i % 40 == 3 { 2 } else { 1 };
        for _ in 0..copies {
            acks.push(
                js.publish(subject.to_string(), message(i).into())
                    .await
                    .expect("published"),
            );
            sent += 1;
        }
        if acks.len() >= 500 {
            for ack in acks.drain(..) {
                ack.await.expect("acknowledged by JetStream");
            }
        }
    }
    for ack in acks {
        ack.await.expect("acknowledged by JetStream");
    }
    sent
}

async fn delete_stream(stream: &str) {
    if let Ok(client) = async_nats::connect(NATS).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(stream)
            .await;
    }
}

fn nats_to_postgres_yaml(s: &str) -> String {
    format!(
        r#"
plugins:
  events:
    plugin: nats-connector
    settings: {{ url: "{NATS}" }}
    permissions: [{{ kind: network, host: "127.0.0.1" }}]
  warehouse:
    plugin: postgres-connector
    settings: {{ url: "{POSTGRES}" }}
    permissions: [{{ kind: network, host: "127.0.0.1" }}]
pipelines:
  orders:
    source:
      plugin: events
      options: {{ stream: "PIPE_{s}", durable: "loader", batch: 500, ack_wait: 10s, create: true, subjects: ["pipe.{s}"] }}
    stages:
      - name: paid_only
        filter: "event.status != 'test'"
      - name: shape
        transform: {{ plugin: data-transformer, action: select, config: {{ columns: [order_id, amount, status] }} }}
      - name: once
        dedupe: {{ key: event.order_id, window: 1h, store: store, lease: 5s }}
      - batch: {{ count: 1000, linger: 100ms }}
    sinks:
      - name: orders
        plugin: warehouse
        options: {{ table: "orders_{s}", mode: upsert, key: [order_id], create: true }}
        retry: {{ max_attempts: 5, initial_interval: 200ms }}
    dead_letter:
      plugin: warehouse
      options: {{ table: "dead_{s}", mode: upsert, key: [event_id], create: true }}
"#
    )
}

fn expected_good() -> u64 {
    (0..MESSAGES).filter(|i| good(*i)).count() as u64
}

fn check_tables(s: &str) {
    let orders = format!("orders_{s}");
    assert_eq!(count_pg(&orders), expected_good());
    assert_eq!(
        psql(&format!("SELECT count(DISTINCT order_id) FROM {orders}")),
        expected_good().to_string()
    );
    let bad_loaded = psql(&format!(
        "SELECT count(*) FROM {orders} WHERE order_id % 100 = 42 OR order_id % 50 = 7"
    ));
    assert_eq!(bad_loaded, "0", "a malformed or test order was loaded");
    let dead = format!("dead_{s}");
    assert_eq!(
        count_pg(&dead),
        100,
        "every malformed message is dead-lettered, once"
    );
    let reasons = psql(&format!(
        "SELECT count(*) FROM {dead} WHERE stage = 'paid_only' AND error LIKE '%not JSON%' AND payload LIKE '%broken' AND attempts >= 1"
    ));
    assert_eq!(
        reasons, "100",
        "dead letters keep the stage, the reason and the body"
    );
}

fn drop_tables(s: &str) {
    psql(&format!(
        "DROP TABLE IF EXISTS orders_{s}; DROP TABLE IF EXISTS dead_{s}; DROP SCHEMA IF EXISTS kz_{s} CASCADE"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_to_postgres_loads_every_good_message_once_and_dead_letters_the_rest() {
    let s = suffix();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, nats_to_postgres_yaml(&s)).unwrap();
    let sent = publish_orders(&format!("PIPE_{s}"), &format!("pipe.{s}")).await;
    let store = format!("{POSTGRES}?schema=kz_{s}");
    let mut child = spawn_pipeline(dir.path(), &file, &["--store", &store]);
    let orders = format!("orders_{s}");
    let dead = format!("dead_{s}");
    wait_for(
        Duration::from_secs(240),
        "every message to be loaded or dead-lettered",
        || child.alive() && count_pg(&orders) == expected_good() && count_pg(&dead) == 100,
        || format!("{} loaded, {} dead", count_pg(&orders), count_pg(&dead)),
    );
    // Let the last acknowledgements go out, then stop.
    std::thread::sleep(Duration::from_secs(1));
    let metrics = stop(child);
    check_tables(&s);

    // The counters add up: in = loaded + dead-lettered + filtered + duplicates.
    let part = |name: &str| {
        metrics["stages"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no part `{name}` in {metrics}"))
    };
    let received = part("orders")["received"].as_u64().unwrap();
    let filtered = part("paid_only")["discarded"].as_u64().unwrap();
    let dead_lettered = part("paid_only")["dead_lettered"].as_u64().unwrap();
    let duplicates = part("once")["discarded"].as_u64().unwrap();
    let written = metrics["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "sink")
        .map(|p| p["sent"].as_u64().unwrap())
        .sum::<u64>();
    // A copy that came while its twin was still in flight was handed back to come again
    // (counted as an error of the dedupe stage), then found a duplicate.
    let deferred = part("once")["errors"].as_u64().unwrap();
    assert_eq!(dead_lettered, 100);
    assert_eq!(filtered, 200, "200 test orders");
    assert_eq!(written, expected_good());
    assert_eq!(duplicates, sent - MESSAGES, "the good orders sent twice");
    assert_eq!(
        received,
        written + dead_lettered + filtered + duplicates + deferred,
        "{metrics}"
    );
    assert_eq!(
        metrics["acked"].as_u64().unwrap() + metrics["rejected"].as_u64().unwrap(),
        sent
    );
    drop_tables(&s);
    delete_stream(&format!("PIPE_{s}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_killed_mid_stream_resumes_without_loss_or_duplicates() {
    let s = suffix();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, nats_to_postgres_yaml(&s)).unwrap();
    publish_orders(&format!("PIPE_{s}"), &format!("pipe.{s}")).await;
    let store = format!("{POSTGRES}?schema=kz_{s}");
    let orders = format!("orders_{s}");
    let dead = format!("dead_{s}");
    let mut first = spawn_pipeline(dir.path(), &file, &["--store", &store]);
    wait_for(
        Duration::from_secs(240),
        "a third of the orders to be loaded",
        || first.alive() && count_pg(&orders) >= 3000,
        || format!("{} loaded", count_pg(&orders)),
    );
    kill_hard(first);
    let at_kill = count_pg(&orders);
    assert!(
        at_kill < expected_good(),
        "killed too late to prove anything: {at_kill}"
    );
    let mut second = spawn_pipeline(dir.path(), &file, &["--store", &store]);
    wait_for(
        Duration::from_secs(300),
        "every message after the restart",
        || second.alive() && count_pg(&orders) == expected_good() && count_pg(&dead) == 100,
        || format!("{} loaded, {} dead", count_pg(&orders), count_pg(&dead)),
    );
    std::thread::sleep(Duration::from_secs(1));
    let metrics = stop(second);
    check_tables(&s);
    // The restarted process got the unacknowledged messages again (redeliveries) and the
    // dedupe stage dropped those already written.
    let redelivered_or_new = metrics["stages"][0]["received"].as_u64().unwrap();
    assert!(redelivered_or_new > 0, "{metrics}");
    drop_tables(&s);
    delete_stream(&format!("PIPE_{s}")).await;
}

#[test]
fn rabbitmq_to_redis_streams_to_mariadb() {
    let s = suffix();
    let dir = tempfile::tempdir().unwrap();
    let queue = format!("orders_{s}");
    let stream = format!("orders_{s}");
    let table = format!("orders_{s}");
    let yaml = format!(
        r#"
plugins:
  rabbit:
    plugin: rabbitmq-connector
    settings: {{ url: "amqp://guest:guest@127.0.0.1:5672/%2f" }}
    permissions: [{{ kind: network, host: "127.0.0.1" }}]
  streams:
    plugin: redis-connector
    settings: {{ url: "redis://127.0.0.1:6379" }}
    permissions: [{{ kind: network, host: "127.0.0.1" }}]
  shop:
    plugin: mysql-connector
    settings: {{ url: "{MARIADB}" }}
    permissions: [{{ kind: network, host: "127.0.0.1" }}]
pipelines:
  to_stream:
    source: {{ plugin: rabbit, options: {{ queue: "{queue}", prefetch: 200, declare: {{ name: "{queue}", durable: true }} }} }}
    sinks:
      - {{ name: stream, plugin: streams, options: {{ stream: "{stream}" }} }}
  to_table:
    source: {{ plugin: streams, options: {{ stream: "{stream}", group: loader, consumer: c1 }} }}
    stages:
      - filter: "event.qty > 0"
    sinks:
      - {{ name: table, plugin: shop, options: {{ table: "{table}", mode: upsert, key: [id], create: true }} }}
"#
    );
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut first = spawn_pipeline(
        dir.path(),
        &file,
        &["--pipeline", "to_stream", "--store", "memory:"],
    );
    let mut second = spawn_pipeline(
        dir.path(),
        &file,
        &["--pipeline", "to_table", "--store", "memory:"],
    );
    std::thread::sleep(Duration::from_secs(2));
    let rows: Vec<Value> = (0..1000)
        .map(|i| json!({"id": i, "sku": format!("S-{i}"), "qty": if i % 10 == 0 { 0 } else { i % 7 + 1 }}))
        .collect();
    let input = dir.path().join("rows.json");
    std::fs::write(&input, serde_json::to_vec(&rows).unwrap()).unwrap();
    let published = Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .current_dir(dir.path())
        .args(["exec", "rabbitmq-connector", "publish"])
        .arg("--plugin-config")
        .arg(json!({"settings": {"url": "amqp://guest:guest@127.0.0.1:5672/%2f"}, "permissions": [{"kind": "network", "host": "127.0.0.1"}]}).to_string())
        .arg("--config")
        .arg(json!({"exchange": "", "routing_key": queue}).to_string())
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "publish failed (is RabbitMQ running on 127.0.0.1:5672?): {}",
        String::from_utf8_lossy(&published.stderr)
    );
    let count = || {
        let exists = mariadb(&format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'test' AND table_name = '{table}'"
        ));
        if exists == "1" {
            mariadb(&format!("SELECT count(*) FROM {table}"))
                .parse::<u64>()
                .unwrap_or(0)
        } else {
            0
        }
    };
    wait_for(
        Duration::from_secs(120),
        "900 rows in MariaDB",
        || first.alive() && second.alive() && count() == 900,
        || format!("{} rows", count()),
    );
    std::thread::sleep(Duration::from_secs(1));
    let to_stream = stop(first);
    let to_table = stop(second);
    assert_eq!(to_stream["acked"], 1000, "{to_stream}");
    assert_eq!(to_table["acked"], 1000, "{to_table}");
    assert_eq!(
        mariadb(&format!("SELECT count(*) FROM {table} WHERE qty = 0")),
        "0"
    );
    assert_eq!(
        mariadb(&format!("SELECT sku FROM {table} WHERE id = 123")),
        "S-123"
    );
    mariadb(&format!("DROP TABLE IF EXISTS {table}"));
    let _ = Command::new("redis-cli").args(["DEL", &stream]).output();
    let _ = Command::new("rabbitmqctl")
        .args(["delete_queue", &queue])
        .output();
}
