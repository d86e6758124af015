//! `kernelize exec` against the real local servers: each database and broker connector is
//! reachable from the command line with its plugin settings given inline, as a script
//! would call it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::{Value, json};

fn plugin_config(url: &str) -> String {
    json!({
        "settings": {"url": url},
        "permissions": [{"kind": "network", "host": "127.0.0.1"}],
    })
    .to_string()
}

/// Runs `kernelize exec PLUGIN ACTION` with `config` and an optional inline input; the
/// JSON it prints. `server` names the service for the failure message.
fn exec(
    server: &str,
    plugin: &str,
    url: &str,
    action: &str,
    config: Value,
    input: Option<Value>,
) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kernelize"));
    command
        .args(["exec", plugin, action, "--json"])
        .arg("--plugin-config")
        .arg(plugin_config(url))
        .arg("--config")
        .arg(config.to_string())
        .env("KERNELIZE_STORE", "memory:");
    if let Some(input) = input {
        command.arg("--input").arg(input.to_string());
    }
    let out = command.output().expect("kernelize runs");
    assert!(
        out.status.success(),
        "`kernelize exec {plugin} {action}` failed (is {server} running on 127.0.0.1?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`kernelize exec {plugin} {action}` printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn suffix() -> String {
    format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

#[test]
fn sql_connectors_bind_parameters_from_the_command_line() {
    let pg = exec(
        "PostgreSQL",
        "postgres-connector",
        "postgres://postgres@127.0.0.1:5432/test",
        "query",
        json!({"sql": "SELECT CAST(:n AS BIGINT) + 1 AS next, :name AS name", "params": {"n": 41, "name": "O'Brien"}}),
        None,
    );
    let my = exec(
        "MariaDB",
        "mysql-connector",
        "mysql://root@127.0.0.1:3306/test",
        "query",
        json!({"sql": "SELECT CAST(:n AS SIGNED) + 1 AS next, :name AS name", "params": {"n": 41, "name": "O'Brien"}}),
        None,
    );

    assert_eq!(pg, json!([{"next": 42, "name": "O'Brien"}]));
    assert_eq!(my, json!([{"next": 42, "name": "O'Brien"}]));
}

#[test]
fn brokers_publish_and_read_back_from_the_command_line() {
    let s = suffix();
    // NATS JetStream: a stream, a message with an id, and the stream's count.
    let nats = "nats://127.0.0.1:4222";
    let stream = format!("EXEC_{s}");
    exec(
        "NATS",
        "nats-connector",
        nats,
        "create_stream",
        json!({"name": stream, "subjects": [format!("exec.{s}")]}),
        None,
    );
    let published = exec(
        "NATS",
        "nats-connector",
        nats,
        "publish",
        json!({"subject": format!("exec.{s}"), "msg_id": "one"}),
        Some(json!({"n": 1})),
    );
    let again = exec(
        "NATS",
        "nats-connector",
        nats,
        "publish",
        json!({"subject": format!("exec.{s}"), "msg_id": "one"}),
        Some(json!({"n": 1})),
    );
    let info = exec(
        "NATS",
        "nats-connector",
        nats,
        "stream_info",
        json!({"name": stream}),
        None,
    );
    exec(
        "NATS",
        "nats-connector",
        nats,
        "delete_stream",
        json!({"name": stream}),
        None,
    );

    // Redis: a cached value with a TTL, read back.
    let redis = "redis://127.0.0.1:6379";
    let key = format!("exec:{s}");
    exec(
        "Redis",
        "redis-connector",
        redis,
        "set",
        json!({"key": key, "ttl": "60s"}),
        Some(json!({"cached": true})),
    );
    let cached = exec(
        "Redis",
        "redis-connector",
        redis,
        "get",
        json!({"key": key}),
        None,
    );
    exec(
        "Redis",
        "redis-connector",
        redis,
        "delete",
        json!({"keys": [key]}),
        None,
    );

    // MQTT: a QoS 1 publish, confirmed by the broker.
    let mqtt = exec(
        "Mosquitto",
        "mqtt-connector",
        "mqtt://127.0.0.1:1883",
        "publish",
        json!({"topic": format!("exec/{s}"), "qos": 1}),
        Some(json!({"t": 21.5})),
    );

    assert_eq!(
        info["messages"],
        json!(1),
        "the second publish with the same id is dropped: {info}"
    );
    assert_eq!(
        published["messages"][0]["duplicate"],
        json!(false),
        "{published}"
    );
    assert_eq!(again["messages"][0]["duplicate"], json!(true), "{again}");
    assert_eq!(cached, json!({"cached": true}));
    assert_eq!(mqtt["published"], json!(1), "{mqtt}");
}
