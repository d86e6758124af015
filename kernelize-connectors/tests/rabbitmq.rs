//! The `rabbitmq-connector` plugin against the real RabbitMQ broker on 127.0.0.1:5672
//! (user `guest`, vhost `/`).
//!
//! Run `scripts/services` first (it starts RabbitMQ when it is not running), then
//! `cargo nextest run -p kernelize-connectors --features rabbitmq --test rabbitmq`.
//!
//! Every test works on exchanges and queues of its own (names with a random suffix) and
//! deletes them at the end. The connection-loss tests never restart the shared broker:
//! they force-close only their own connections (`rabbitmqctl close_connection`), found by
//! their unique client-provided connection name.
#![cfg(feature = "rabbitmq")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kernelize_connectors::rabbitmq::{
    self, RabbitConnector, RabbitSettings, SinkOptions, SourceOptions,
};
use kernelize_core::config::MapSecretStore;
use kernelize_core::event::{Delivery, Event, EventSink, EventSource};
use kernelize_core::{
    Call, ErrorKind, Payload, Permission, PermissionGuard, Plugin, PluginConfig, PluginManager,
    Records,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SERVER: &str = "127.0.0.1:5672";
const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

// ---------------------------------------------------------------------------------------
// helpers

/// Fails the test with a message saying how to start RabbitMQ when it is not answering.
fn require_server() {
    if std::net::TcpStream::connect_timeout(&SERVER.parse().unwrap(), Duration::from_secs(2))
        .is_err()
    {
        panic!(
            "RabbitMQ is not answering on {SERVER}; these tests need the real broker: run `scripts/services` (it starts RabbitMQ) and try again"
        );
    }
}

fn suffix() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

fn grant() -> PermissionGuard {
    PermissionGuard::new(
        rabbitmq::ID,
        vec![Permission::Network {
            host: "127.0.0.1".into(),
        }],
        None,
    )
}

/// A connected plugin with a connection name and resource names of its own.
struct Fixture {
    plugin: RabbitConnector,
    guard: PermissionGuard,
    id: String,
    connection_name: String,
    queues: Vec<String>,
    exchanges: Vec<String>,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(adjust: impl FnOnce(&mut RabbitSettings)) -> Self {
        require_server();
        let id = suffix();
        let connection_name = format!("kz-test-{id}");
        let mut settings = RabbitSettings::new(URL).unwrap();
        settings.connection_name = Some(connection_name.clone());
        adjust(&mut settings);
        let guard = grant();
        let plugin = RabbitConnector::connect(settings, &guard).await.unwrap();
        Fixture {
            plugin,
            guard,
            id,
            connection_name,
            queues: Vec::new(),
            exchanges: Vec::new(),
        }
    }

    /// A queue name unique to this test, deleted at cleanup.
    fn queue(&mut self, name: &str) -> String {
        let full = format!("kz-test.{name}.{}", self.id);
        self.queues.push(full.clone());
        full
    }

    /// An exchange name unique to this test, deleted at cleanup.
    fn exchange(&mut self, name: &str) -> String {
        let full = format!("kz-test.{name}.{}", self.id);
        self.exchanges.push(full.clone());
        full
    }

    async fn call(
        &self,
        action: &str,
        config: Value,
        input: Payload,
    ) -> kernelize_core::Result<Value> {
        let mut call = Call::new(action, input).with_config(config);
        call.permissions = self.guard.clone();
        self.plugin.execute(call).await?.into_json()
    }

    async fn ok(&self, action: &str, config: Value) -> Value {
        self.call(action, config, Payload::Empty).await.unwrap()
    }

    async fn publish(&self, config: Value, input: Value) -> Value {
        self.call("publish", config, Payload::Json(input))
            .await
            .unwrap()
    }

    async fn ready(&self, queue: &str) -> u64 {
        self.ok("queue_info", json!({ "queue": queue })).await["messages"]
            .as_u64()
            .unwrap()
    }

    async fn source(&self, options: SourceOptions) -> rabbitmq::RabbitSource {
        self.plugin.source(options).await.unwrap()
    }

    /// Deletes the test's queues and exchanges.
    async fn cleanup(self) {
        for queue in &self.queues {
            self.ok("delete_queue", json!({ "queue": queue })).await;
        }
        for exchange in &self.exchanges {
            self.ok("delete_exchange", json!({ "exchange": exchange }))
                .await;
        }
        self.plugin.shutdown().await.unwrap();
    }
}

/// The next delivery, failing after 10 s (a bound, not a timing).
async fn next(source: &mut dyn EventSource) -> Delivery {
    let cancel = CancellationToken::new();
    tokio::time::timeout(Duration::from_secs(10), source.receive(&cancel))
        .await
        .expect("no delivery within 10s")
        .unwrap()
        .expect("the source ended")
}

/// Whether a delivery arrives within `wait`.
async fn arrives_within(source: &mut dyn EventSource, wait: Duration) -> Option<Delivery> {
    let cancel = CancellationToken::new();
    match tokio::time::timeout(wait, source.receive(&cancel)).await {
        Ok(result) => result.unwrap(),
        Err(_) => None,
    }
}

/// Polls `check` every 50 ms until it holds, failing after 10 s (a bound, not a timing).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn body_json(delivery: &Delivery) -> Value {
    match &delivery.event.payload {
        Payload::Bytes(blob) => serde_json::from_slice(&blob.data).unwrap(),
        other => panic!("expected bytes, got {}", other.kind_name()),
    }
}

fn rabbitmqctl(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs `rabbitmqctl` (the RabbitMQ server's CLI) on PATH: {e}")
        });
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Force-closes the broker's connections whose client-provided name starts with `prefix`
/// (only this test's connections); returns how many were closed.
async fn force_close_connections(prefix: &str) -> usize {
    let prefix = prefix.to_string();
    tokio::task::spawn_blocking(move || {
        // The table format prints pids as `close_connection` takes them
        // (`<rabbit@host.1.2.3>`); the JSON format does not.
        let listing = rabbitmqctl(&[
            "list_connections",
            "pid",
            "client_properties",
            "--quiet",
            "--no-table-headers",
        ]);
        let mut closed = 0;
        for line in listing.lines() {
            let Some((pid, properties)) = line.split_once('\t') else {
                continue;
            };
            // `{"connection_name","kz-test-... source q"}`
            let marker = "{\"connection_name\",\"";
            let name = properties
                .split_once(marker)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(name, _)| name);
            if name.is_some_and(|n| n.starts_with(&prefix)) {
                rabbitmqctl(&[
                    "close_connection",
                    pid.trim(),
                    "kernelize test: forced close",
                ]);
                closed += 1;
            }
        }
        assert!(
            closed > 0,
            "no connection named `{prefix}...` in rabbitmqctl's listing:\n{listing}"
        );
        closed
    })
    .await
    .unwrap()
}

/// The `connection_name` of a connection's client properties as rabbitmqctl prints them
/// (a list of `[key, type, value]` triples).
fn connection_name_of(properties: &Value) -> Option<String> {
    properties.as_array()?.iter().find_map(|entry| {
        let entry = entry.as_array()?;
        (entry.first()?.as_str()? == "connection_name")
            .then(|| entry.last()?.as_str().map(str::to_string))
            .flatten()
    })
}

// ---------------------------------------------------------------------------------------
// declare, publish, get

#[tokio::test]
async fn declare_publish_with_confirms_and_get_back_through_a_topic_exchange() {
    let mut f = Fixture::new().await;
    let exchange = f.exchange("orders");
    let queue = f.queue("eu-orders");

    let declared = f
        .ok(
            "declare",
            json!({
                "exchanges": [{"name": exchange, "kind": "topic", "durable": false}],
                "queues": [{"name": queue, "durable": false, "max_length": 100}],
                "bindings": [{"queue": queue, "exchange": exchange, "routing_key": "orders.eu.*"}]
            }),
        )
        .await;
    let published = f
        .publish(
            json!({"exchange": exchange, "routing_key": "orders.eu.created",
                   "headers": {"tenant": "acme", "version": 2}, "message_id": "batch-1"}),
            json!([{"n": 1}, {"n": 2}, {"n": 3}]),
        )
        .await;
    let got = f.ok("get", json!({"queue": queue, "count": 10})).await;

    assert_eq!(declared["exchanges"], json!([exchange]));
    assert_eq!(
        declared["queues"],
        json!([{"queue": queue, "messages": 0, "consumers": 0}])
    );
    assert_eq!(declared["bindings"], json!(1));
    assert_eq!(published["published"], json!(3));
    let messages = got["messages"].as_array().unwrap();
    let bodies: Vec<&Value> = messages.iter().map(|m| &m["body"]).collect();
    assert_eq!(
        bodies,
        [&json!({"n": 1}), &json!({"n": 2}), &json!({"n": 3})]
    );
    let first = &messages[0];
    assert_eq!(first["routing_key"], json!("orders.eu.created"));
    assert_eq!(first["exchange"], json!(exchange));
    assert_eq!(first["message_id"], json!("batch-1"));
    assert_eq!(first["content_type"], json!("application/json"));
    assert_eq!(first["persistent"], json!(true));
    assert_eq!(first["headers"], json!({"tenant": "acme", "version": 2}));
    assert_eq!(got["remaining"], json!(0));
    assert_eq!(
        f.ready(&queue).await,
        0,
        "acknowledged messages left the queue"
    );
    f.cleanup().await;
}

#[tokio::test]
async fn a_conflicting_redeclare_is_the_brokers_precondition_failed() {
    let mut f = Fixture::new().await;
    let queue = f.queue("conflict");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": true}]}),
    )
    .await;

    let same = f
        .call(
            "declare",
            json!({"queues": [{"name": queue, "durable": true}]}),
            Payload::Empty,
        )
        .await;
    let err = f
        .call(
            "declare",
            json!({"queues": [{"name": queue, "durable": false}]}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert!(same.is_ok(), "the same settings again are fine: {same:?}");
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{err}");
    assert_eq!(err.context_value(rabbitmq::AMQP_CODE), Some("406"), "{err}");
    assert!(err.message().contains("PRECONDITION_FAILED"), "{err}");
    assert!(err.message().contains("durable"), "{err}");
    assert_eq!(err.context_value("queue"), Some(queue.as_str()));
    assert!(!err.is_temporary());
    // The failed declare closed only its own channel: the plugin goes on working.
    assert_eq!(f.ready(&queue).await, 0);
    f.cleanup().await;
}

#[tokio::test]
async fn get_without_ack_puts_the_messages_back_marked_redelivered() {
    let mut f = Fixture::new().await;
    let queue = f.queue("peek");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": false}]}),
    )
    .await;
    f.publish(json!({"routing_key": queue}), json!([{"a": 1}, {"a": 2}]))
        .await;

    let peeked = f
        .ok("get", json!({"queue": queue, "count": 5, "ack": false}))
        .await;
    let left = f.ready(&queue).await;
    let taken = f.ok("get", json!({"queue": queue, "count": 5})).await;

    assert_eq!(peeked["messages"].as_array().unwrap().len(), 2);
    assert_eq!(peeked["remaining"], json!(2));
    assert_eq!(left, 2);
    let again = taken["messages"].as_array().unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|m| m["redelivered"] == json!(true)));
    assert_eq!(f.ready(&queue).await, 0);
    f.cleanup().await;
}

#[tokio::test]
async fn get_returns_text_and_base64_bodies_by_content() {
    let mut f = Fixture::new().await;
    let queue = f.queue("bodies");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": false}]}),
    )
    .await;
    let config = json!({"routing_key": queue});
    f.call(
        "publish",
        config.clone(),
        Payload::bytes(&b"plain words"[..], "text/plain"),
    )
    .await
    .unwrap();
    f.call(
        "publish",
        config,
        Payload::bytes(vec![0xff, 0x00, 0xfe], "application/octet-stream"),
    )
    .await
    .unwrap();

    let got = f.ok("get", json!({"queue": queue, "count": 2})).await;

    let messages = got["messages"].as_array().unwrap();
    assert_eq!(messages[0]["body"], json!("plain words"));
    assert_eq!(messages[0]["content_type"], json!("text/plain"));
    assert_eq!(messages[1]["body"], Value::Null);
    assert_eq!(messages[1]["body_base64"], json!("/wD+"));
    f.cleanup().await;
}

#[tokio::test]
async fn get_stops_at_max_get_bytes_and_leaves_the_rest() {
    let mut f = Fixture::with(|s| s.max_get_bytes = 1000).await;
    let queue = f.queue("bounded-get");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": false}]}),
    )
    .await;
    let big = "x".repeat(400);
    f.publish(json!({"routing_key": queue}), json!([big, big, big, big]))
        .await;

    let got = f.ok("get", json!({"queue": queue, "count": 10})).await;

    assert_eq!(
        got["messages"].as_array().unwrap().len(),
        2,
        "400+400 fit, the third does not"
    );
    assert_eq!(got["remaining"], json!(2));
    assert_eq!(f.ready(&queue).await, 2);
    f.cleanup().await;
}

#[tokio::test]
async fn records_are_published_one_message_per_row() {
    let mut f = Fixture::new().await;
    let queue = f.queue("rows");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": false}]}),
    )
    .await;
    let records =
        Records::from_json_rows(&[json!({"id": 1, "name": "a"}), json!({"id": 2, "name": "b"})])
            .unwrap();

    let out = f
        .call(
            "publish",
            json!({"routing_key": queue, "persistent": false}),
            Payload::Records(records),
        )
        .await
        .unwrap();
    let got = f.ok("get", json!({"queue": queue, "count": 5})).await;

    assert_eq!(out["published"], json!(2));
    let messages = got["messages"].as_array().unwrap();
    assert_eq!(messages[1]["body"], json!({"id": 2, "name": "b"}));
    assert_eq!(messages[1]["persistent"], json!(false));
    f.cleanup().await;
}

#[tokio::test]
async fn purge_delete_and_queue_info_report_counts() {
    let mut f = Fixture::new().await;
    let queue = f.queue("purge");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": false}]}),
    )
    .await;
    f.publish(json!({"routing_key": queue}), json!([1, 2, 3]))
        .await;

    let info = f.ok("queue_info", json!({"queue": queue})).await;
    let purged = f.ok("purge", json!({"queue": queue})).await;
    f.publish(json!({"routing_key": queue}), json!([4])).await;
    let deleted = f.ok("delete_queue", json!({"queue": queue})).await;
    let missing = f
        .call("queue_info", json!({"queue": queue}), Payload::Empty)
        .await
        .unwrap_err();

    assert_eq!(info, json!({"queue": queue, "messages": 3, "consumers": 0}));
    assert_eq!(purged, json!({"purged": 3}));
    assert_eq!(deleted, json!({"messages": 1}));
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    assert_eq!(missing.context_value(rabbitmq::AMQP_CODE), Some("404"));
    f.cleanup().await;
}

#[tokio::test]
async fn unroutable_mandatory_publish_is_an_error_for_that_message() {
    let mut f = Fixture::new().await;
    let exchange = f.exchange("nowhere");
    f.ok(
        "declare",
        json!({"exchanges": [{"name": exchange, "kind": "direct", "durable": false}]}),
    )
    .await;

    let err = f
        .call(
            "publish",
            json!({"exchange": exchange, "routing_key": "nobody.listens", "mandatory": true}),
            Payload::Json(json!({"lost": true})),
        )
        .await
        .unwrap_err();
    let dropped = f
        .call(
            "publish",
            json!({"exchange": exchange, "routing_key": "nobody.listens"}),
            Payload::Json(json!({"lost": true})),
        )
        .await
        .unwrap();

    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert_eq!(err.context_value(rabbitmq::AMQP_CODE), Some("312"), "{err}");
    assert!(err.message().contains("unroutable"), "{err}");
    assert!(err.message().contains("published 0 of 1"), "{err}");
    assert!(!err.is_temporary(), "repeating it cannot help");
    assert_eq!(
        dropped["published"],
        json!(1),
        "without mandatory the broker drops it"
    );
    f.cleanup().await;
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_is_not_found() {
    let f = Fixture::new().await;
    let err = f
        .call(
            "publish",
            json!({"exchange": format!("kz-test.missing.{}", f.id), "routing_key": "x"}),
            Payload::Json(json!(1)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.context_value(rabbitmq::AMQP_CODE), Some("404"), "{err}");
    f.cleanup().await;
}

#[tokio::test]
async fn a_name_longer_than_255_bytes_is_refused_before_sending() {
    let f = Fixture::new().await;
    let err = f
        .call(
            "queue_info",
            json!({"queue": "q".repeat(300)}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("255"), "{err}");
    f.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// event source

#[tokio::test]
async fn prefetch_bounds_the_unacknowledged_deliveries() {
    let mut f = Fixture::new().await;
    let queue = f.queue("prefetch");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": false}]}),
    )
    .await;
    let items: Vec<Value> = (0..50).map(|n| json!({"n": n})).collect();
    f.publish(json!({"routing_key": queue}), Value::Array(items))
        .await;
    let mut options = SourceOptions::new(queue.clone());
    options.prefetch = 10;
    let mut source = f.source(options).await;

    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(next(&mut source).await);
    }
    let eleventh = arrives_within(&mut source, Duration::from_millis(500)).await;
    eventually(
        "40 messages stay ready while 10 are unacknowledged",
        || async { f.ready(&queue).await == 40 },
    )
    .await;
    held.pop().unwrap().ack.ack().await.unwrap();
    let after_ack = next(&mut source).await;

    assert!(
        eleventh.is_none(),
        "an 11th delivery came with 10 unacknowledged"
    );
    assert_eq!(body_json(&after_ack), json!({"n": 10}));
    for d in held {
        d.ack.ack().await.unwrap();
    }
    after_ack.ack.ack().await.unwrap();
    drop(source);
    f.cleanup().await;
}

#[tokio::test]
async fn deliveries_become_events_with_key_subject_headers_and_content_type() {
    let mut f = Fixture::new().await;
    let queue = f.queue("mapping");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": false}]}),
    )
    .await;
    f.publish(
        json!({"routing_key": queue, "message_id": "order-7", "headers": {"tenant": "acme"}}),
        json!({"total": 12}),
    )
    .await;
    f.call(
        "publish",
        json!({"routing_key": queue}),
        Payload::bytes(&b"raw"[..], "application/x-raw"),
    )
    .await
    .unwrap();
    let mut options = SourceOptions::new(queue.clone());
    options.content_type = "text/plain".into();
    let mut source = f.source(options).await;

    let first = next(&mut source).await;
    let second = next(&mut source).await;

    let e = &first.event;
    assert_eq!(e.key.as_deref(), Some("order-7"));
    assert_eq!(e.subject.as_deref(), Some(queue.as_str()));
    assert_eq!(e.attempt, 1);
    assert_eq!(e.headers["tenant"], "acme");
    assert_eq!(e.headers["rabbitmq.routing_key"], queue);
    assert_eq!(e.headers["rabbitmq.redelivered"], "false");
    assert_eq!(e.headers["rabbitmq.delivery_mode"], "2");
    assert!(e.id.starts_with("1-"), "{}", e.id);
    match &e.payload {
        Payload::Bytes(blob) => {
            assert_eq!(blob.media_type, "application/json");
            assert_eq!(&blob.data[..], br#"{"total":12}"#);
        }
        other => panic!("{}", other.kind_name()),
    }
    match &second.event.payload {
        Payload::Bytes(blob) => assert_eq!(blob.media_type, "application/x-raw"),
        other => panic!("{}", other.kind_name()),
    }
    first.ack.ack().await.unwrap();
    second.ack.ack().await.unwrap();
    drop(source);
    f.cleanup().await;
}

#[tokio::test]
async fn reject_dead_letters_to_the_dlx_with_an_x_death_header() {
    let mut f = Fixture::new().await;
    let dlx = f.exchange("dlx");
    let dead = f.queue("dead");
    let work = f.queue("work");
    f.ok(
        "declare",
        json!({
            "exchanges": [{"name": dlx, "kind": "fanout", "durable": false}],
            "queues": [
                {"name": dead, "durable": false},
                {"name": work, "durable": false, "dead_letter_exchange": dlx}
            ],
            "bindings": [{"queue": dead, "exchange": dlx}]
        }),
    )
    .await;
    f.publish(
        json!({"routing_key": work, "message_id": "poison-1"}),
        json!({"bad": true}),
    )
    .await;
    let mut source = f.source(SourceOptions::new(work.clone())).await;

    let delivery = next(&mut source).await;
    delivery.ack.reject().await.unwrap();
    let mut dead_source = f.source(SourceOptions::new(dead.clone())).await;
    let dead_letter = next(&mut dead_source).await;

    assert_eq!(dead_letter.event.key.as_deref(), Some("poison-1"));
    let x_death: Value = serde_json::from_str(&dead_letter.event.headers["x-death"]).unwrap();
    assert_eq!(x_death[0]["reason"], json!("rejected"));
    assert_eq!(x_death[0]["queue"], json!(work));
    assert_eq!(body_json(&dead_letter), json!({"bad": true}));
    dead_letter.ack.ack().await.unwrap();
    assert_eq!(
        f.ready(&work).await,
        0,
        "a rejected message is not requeued"
    );
    drop((source, dead_source));
    f.cleanup().await;
}

#[tokio::test]
async fn retry_redelivers_with_attempt_two() {
    let mut f = Fixture::new().await;
    let queue = f.queue("retry");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": false}]}),
    )
    .await;
    f.publish(json!({"routing_key": queue, "message_id": "m-1"}), json!(1))
        .await;
    let mut source = f.source(SourceOptions::new(queue.clone())).await;

    let first = next(&mut source).await;
    let first_attempt = first.event.attempt;
    first.ack.retry(None).await.unwrap();
    let again = next(&mut source).await;

    assert_eq!(first_attempt, 1);
    assert_eq!(again.event.key.as_deref(), Some("m-1"));
    assert_eq!(again.event.attempt, 2);
    assert_eq!(again.event.headers["rabbitmq.redelivered"], "true");
    again.ack.ack().await.unwrap();
    eventually("the queue is empty", || async {
        f.ready(&queue).await == 0
    })
    .await;
    drop(source);
    f.cleanup().await;
}

#[tokio::test]
async fn retry_with_a_delay_requeues_only_after_it() {
    let mut f = Fixture::new().await;
    let queue = f.queue("retry-later");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": false}]}),
    )
    .await;
    f.publish(json!({"routing_key": queue}), json!(1)).await;
    let mut source = f.source(SourceOptions::new(queue.clone())).await;

    let first = next(&mut source).await;
    let asked = Instant::now();
    first
        .ack
        .retry(Some(Duration::from_millis(600)))
        .await
        .unwrap();
    let again = next(&mut source).await;

    assert!(
        asked.elapsed() >= Duration::from_millis(600),
        "redelivered before the delay: {:?}",
        asked.elapsed()
    );
    assert_eq!(again.event.attempt, 2);
    again.ack.ack().await.unwrap();
    drop(source);
    f.cleanup().await;
}

#[tokio::test]
async fn quorum_queue_attempts_follow_the_delivery_count() {
    let mut f = Fixture::new().await;
    let queue = f.queue("quorum");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": true, "queue_type": "quorum"}]}),
    )
    .await;
    f.publish(json!({"routing_key": queue}), json!("again and again"))
        .await;
    let mut source = f.source(SourceOptions::new(queue.clone())).await;

    let mut attempts = Vec::new();
    for _ in 0..3 {
        let d = next(&mut source).await;
        attempts.push(d.event.attempt);
        d.ack.retry(None).await.unwrap();
    }
    let last = next(&mut source).await;
    attempts.push(last.event.attempt);
    last.ack.ack().await.unwrap();

    assert_eq!(attempts, [1, 2, 3, 4]);
    drop(source);
    f.cleanup().await;
}

#[tokio::test]
async fn a_dropped_delivery_is_requeued() {
    let mut f = Fixture::new().await;
    let queue = f.queue("dropped");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": false}]}),
    )
    .await;
    f.publish(json!({"routing_key": queue, "message_id": "d-1"}), json!(1))
        .await;
    let mut source = f.source(SourceOptions::new(queue.clone())).await;

    drop(next(&mut source).await);
    let again = next(&mut source).await;

    assert_eq!(again.event.key.as_deref(), Some("d-1"));
    assert_eq!(again.event.attempt, 2);
    again.ack.ack().await.unwrap();
    drop(source);
    f.cleanup().await;
}

#[tokio::test]
async fn a_source_declares_its_queue_and_ends_when_cancelled() {
    let mut f = Fixture::new().await;
    let queue = f.queue("declared-by-source");
    let options: SourceOptions = serde_json::from_value(json!({
        "queue": queue, "prefetch": 5, "declare": {"durable": false, "max_length": 10}
    }))
    .unwrap();
    let mut source = f.source(options).await;

    let info = f.ok("queue_info", json!({"queue": queue})).await;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let ended = source.receive(&cancel).await.unwrap();

    assert_eq!(info["consumers"], json!(1));
    assert!(ended.is_none());
    drop(source);
    f.cleanup().await;
}

#[tokio::test]
async fn consuming_a_missing_queue_is_not_found() {
    let f = Fixture::new().await;
    let err = f
        .plugin
        .source(SourceOptions::new(format!("kz-test.missing.{}", f.id)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(!err.is_temporary());
    f.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// event sink

#[tokio::test]
async fn a_sink_reports_unroutable_and_unwritable_events_one_by_one() {
    let mut f = Fixture::new().await;
    let exchange = f.exchange("sink-routes");
    let queue = f.queue("sink-target");
    f.ok(
        "declare",
        json!({
            "exchanges": [{"name": exchange, "kind": "direct", "durable": false}],
            "queues": [{"name": queue, "durable": false}],
            "bindings": [{"queue": queue, "exchange": exchange, "routing_key": "known"}]
        }),
    )
    .await;
    let sink = f
        .plugin
        .sink(SinkOptions::new(exchange.clone()))
        .await
        .unwrap();
    let records = Records::from_json_rows(&[json!({"a": 1})]).unwrap();
    let events = vec![
        Event::new("0", Payload::json(json!({"ok": 0}))).with_subject("known"),
        Event::new("1", Payload::json(json!({"ok": 1}))).with_subject("unknown"),
        Event::new("2", Payload::Records(records)).with_subject("known"),
        Event::new("3", Payload::json(json!({"ok": 3}))),
        Event::new("4", Payload::bytes(&b"four"[..], "text/plain"))
            .with_subject("known")
            .with_key("k-4")
            .with_header("tenant", "acme")
            .with_header("rabbitmq.routing_key", "stale"),
    ];

    let report = sink.write(&events).await.unwrap();
    let got = f.ok("get", json!({"queue": queue, "count": 10})).await;

    let failed: BTreeMap<usize, ErrorKind> =
        report.failed.iter().map(|(i, e)| (*i, e.kind())).collect();
    assert_eq!(
        failed,
        BTreeMap::from([
            (1, ErrorKind::Remote),
            (2, ErrorKind::InvalidInput),
            (3, ErrorKind::InvalidInput)
        ])
    );
    let unroutable = &report.failed.iter().find(|(i, _)| *i == 1).unwrap().1;
    assert_eq!(unroutable.context_value(rabbitmq::AMQP_CODE), Some("312"));
    let messages = got["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["body"], json!({"ok": 0}));
    assert_eq!(messages[1]["body"], json!("four"));
    assert_eq!(messages[1]["message_id"], json!("k-4"));
    assert_eq!(messages[1]["headers"], json!({"tenant": "acme"}));
    f.cleanup().await;
}

#[tokio::test]
async fn opening_a_sink_on_a_missing_exchange_is_not_found() {
    let f = Fixture::new().await;
    let err = f
        .plugin
        .sink(SinkOptions::new(format!("kz-test.missing.{}", f.id)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    f.cleanup().await;
}

#[tokio::test]
async fn a_sink_whose_connection_was_closed_reconnects_for_the_next_write() {
    let mut f = Fixture::new().await;
    let queue = f.queue("sink-reconnect");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": false}]}),
    )
    .await;
    let mut options = SinkOptions::new("");
    options.routing_key = Some(queue.clone());
    let sink = f.plugin.sink(options).await.unwrap();
    sink.write(&[Event::new("a", Payload::json(json!("before")))])
        .await
        .unwrap();

    let closed = force_close_connections(&format!("{} sink", f.connection_name)).await;
    // The first write after the loss may find the old channel not yet marked closed; it
    // then fails as a whole, temporarily, and the one after it reconnects.
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let written = sink
            .write(&[Event::new("b", Payload::json(json!("after")))])
            .await;
        let done = matches!(&written, Ok(report) if report.is_complete());
        outcomes.push(written);
        if done {
            break;
        }
    }

    assert_eq!(closed, 1);
    let last = outcomes.last().unwrap();
    assert!(
        matches!(last, Ok(report) if report.is_complete()),
        "{outcomes:?}"
    );
    if let Err(e) = &outcomes[0] {
        assert!(e.is_temporary(), "{e}");
    }
    let got = f.ok("get", json!({"queue": queue, "count": 10})).await;
    let bodies: BTreeSet<String> = got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect();
    assert!(
        bodies.contains("before") && bodies.contains("after"),
        "{bodies:?}"
    );
    f.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// through the plugin manager

/// A manager with the plugin active, named `connection_name`.
async fn manager(connection_name: &str) -> PluginManager {
    require_server();
    let manager = PluginManager::builder()
        .secrets(Arc::new(MapSecretStore::new().with("AMQP_URL", URL)))
        .build();
    manager.install(rabbitmq::factory()).unwrap();
    manager.configure(
        rabbitmq::ID,
        PluginConfig::with_settings(
            json!({"url": "${secret:AMQP_URL}", "connection_name": connection_name}),
        )
        .grant(Permission::Network {
            host: "127.0.0.1".into(),
        }),
    );
    manager.activate(rabbitmq::ID).await.unwrap();
    manager
}

#[tokio::test]
async fn five_hundred_events_round_trip_through_the_managers_source_and_sink() {
    let mut f = Fixture::new().await;
    let queue = f.queue("round-trip");
    let manager = manager(&f.connection_name).await;
    let mut source = manager
        .open_source(
            rabbitmq::ID,
            json!({"queue": queue, "prefetch": 50, "declare": {"durable": true}}),
        )
        .await
        .unwrap();
    let sink = manager
        .open_sink(rabbitmq::ID, json!({"routing_key": queue}))
        .await
        .unwrap();

    for batch in 0..5 {
        let events: Vec<Event> = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                Event::new(n.to_string(), Payload::json(json!({"n": n})))
                    .with_key(format!("key-{n}"))
            })
            .collect();
        let report = sink.write(&events).await.unwrap();
        assert!(report.is_complete(), "{:?}", report.failed);
    }
    let mut keys = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    while keys.len() < 500 {
        let d = next(source.as_mut()).await;
        keys.insert(d.event.key.clone().unwrap());
        numbers.insert(body_json(&d)["n"].as_u64().unwrap());
        d.ack.ack().await.unwrap();
    }
    let extra = arrives_within(source.as_mut(), Duration::from_millis(300)).await;

    assert_eq!(numbers, (0..500).collect::<BTreeSet<u64>>());
    assert!(extra.is_none(), "nothing beyond the 500 events");
    eventually("the queue is empty", || async {
        f.ready(&queue).await == 0
    })
    .await;
    drop(source);
    eventually("the consumer is gone", || async {
        f.ok("queue_info", json!({"queue": queue})).await["consumers"] == json!(0)
    })
    .await;
    manager.deactivate(rabbitmq::ID, false).await.unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn invalid_source_and_sink_options_are_config_errors() {
    let f = Fixture::new().await;
    let manager = manager(&f.connection_name).await;

    let zero = manager
        .open_source(rabbitmq::ID, json!({"queue": "q", "prefetch": 0}))
        .await
        .err()
        .expect("prefetch 0 is refused");
    let unknown = manager
        .open_sink(rabbitmq::ID, json!({"exchange": "", "routing": "typo"}))
        .await
        .err()
        .expect("an unknown option is refused");

    assert_eq!(zero.kind(), ErrorKind::ConfigInvalid, "{zero}");
    assert_eq!(unknown.kind(), ErrorKind::ConfigInvalid, "{unknown}");
    manager.deactivate(rabbitmq::ID, false).await.unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn shutting_the_plugin_down_ends_its_sources_and_stops_its_sinks() {
    let mut f = Fixture::new().await;
    let queue = f.queue("shutdown");
    let manager = manager(&f.connection_name).await;
    let mut source = manager
        .open_source(
            rabbitmq::ID,
            json!({"queue": queue, "declare": {"durable": false}}),
        )
        .await
        .unwrap();
    let sink = manager
        .open_sink(rabbitmq::ID, json!({"routing_key": queue}))
        .await
        .unwrap();

    manager.deactivate(rabbitmq::ID, false).await.unwrap();
    let cancel = CancellationToken::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), source.receive(&cancel))
        .await
        .unwrap()
        .unwrap();
    let refused = sink
        .write(&[Event::new("x", Payload::json(json!(1)))])
        .await
        .unwrap_err();

    assert!(ended.is_none());
    assert_eq!(refused.kind(), ErrorKind::InvalidState, "{refused}");
    drop(source);
    f.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// connection loss

#[tokio::test]
async fn a_source_reconnects_after_its_connection_is_closed_and_loses_nothing_acknowledged() {
    let mut f = Fixture::new().await;
    let queue = f.queue("connection-loss");
    f.ok(
        "declare",
        json!({"queues": [{"name": queue, "durable": true}]}),
    )
    .await;
    let items: Vec<Value> = (0..1000).map(|n| json!({"n": n})).collect();
    f.publish(json!({"routing_key": queue}), Value::Array(items))
        .await;
    let mut options = SourceOptions::new(queue.clone());
    options.prefetch = 50;
    let mut source = f.source(options).await;

    let mut received: BTreeMap<u64, u32> = BTreeMap::new();
    let mut acked = BTreeSet::new();
    for _ in 0..300 {
        let d = next(&mut source).await;
        let n = body_json(&d)["n"].as_u64().unwrap();
        *received.entry(n).or_default() += 1;
        d.ack.ack().await.unwrap();
        acked.insert(n);
    }
    // Ten more, held unsettled across the loss.
    let mut held = Vec::new();
    for _ in 0..10 {
        let d = next(&mut source).await;
        *received
            .entry(body_json(&d)["n"].as_u64().unwrap())
            .or_default() += 1;
        held.push(d);
    }

    let closed = force_close_connections(&format!("{} source", f.connection_name)).await;
    // Receive until the source has noticed the loss and consumes on a new connection.
    let mut lost_settlements = Vec::new();
    let start = Instant::now();
    while acked.len() < 1000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {} of 1000 acknowledged",
            acked.len()
        );
        let d = next(&mut source).await;
        let n = body_json(&d)["n"].as_u64().unwrap();
        *received.entry(n).or_default() += 1;
        if source.connections_opened() >= 2 && !held.is_empty() {
            for old in held.drain(..) {
                lost_settlements.push(old.ack.ack().await);
            }
        }
        // A delivery handed out just before the source noticed the loss cannot be
        // acknowledged; it comes again.
        match d.ack.ack().await {
            Ok(()) => {
                acked.insert(n);
            }
            Err(e) => assert!(e.is_temporary(), "{e}"),
        }
    }

    assert_eq!(
        closed, 1,
        "exactly this test's source connection was closed"
    );
    assert!(source.connections_opened() >= 2, "the source reconnected");
    assert_eq!(
        received.len(),
        1000,
        "every message was received at least once"
    );
    assert_eq!(lost_settlements.len(), 10);
    for outcome in &lost_settlements {
        let e = outcome.as_ref().unwrap_err();
        assert!(e.is_temporary(), "{e}");
        assert!(e.message().contains("lost"), "{e}");
    }
    for n in 300..1000u64 {
        // Unsettled at the loss, or in flight: delivered again, never lost.
        assert!(received.contains_key(&n), "message {n} was never received");
    }
    drop(source);
    // Whatever the source left unacknowledged would be back in the queue once its
    // connection is gone.
    eventually("the source's consumer is gone", || async {
        f.ok("queue_info", json!({"queue": queue})).await["consumers"] == json!(0)
    })
    .await;
    assert_eq!(f.ready(&queue).await, 0, "every message was acknowledged");
    f.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// configuration and errors

#[tokio::test]
async fn a_wrong_password_is_refused_without_showing_the_password() {
    require_server();
    let mut settings =
        RabbitSettings::new("amqp://guest:hunter2-wrong@127.0.0.1:5672/%2f").unwrap();
    settings.connection_name = Some(format!("kz-test-{}", suffix()));

    let err = RabbitConnector::connect(settings, &grant())
        .await
        .unwrap_err();

    let text = format!("{err} {err:?} {}", err.to_json());
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{text}");
    assert!(err.message().contains("guest"), "{text}");
    assert!(!err.is_temporary());
}

#[tokio::test]
async fn a_missing_vhost_is_refused() {
    require_server();
    let settings = RabbitSettings::new(&format!(
        "amqp://guest:guest@127.0.0.1:5672/kz-test-no-such-vhost-{}",
        suffix()
    ))
    .unwrap();
    let err = RabbitConnector::connect(settings, &grant())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.message().contains("vhost"), "{err}");
}

#[tokio::test]
async fn a_bad_url_is_config_invalid_through_the_manager_without_the_password() {
    let manager = PluginManager::new();
    manager.install(rabbitmq::factory()).unwrap();
    manager.configure(
        rabbitmq::ID,
        PluginConfig::with_settings(json!({"url": "http://guest:topsecret-pw@127.0.0.1/"})).grant(
            Permission::Network {
                host: "127.0.0.1".into(),
            },
        ),
    );

    let err = manager.activate(rabbitmq::ID).await.unwrap_err();

    let text = format!("{err} {err:?}");
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{text}");
    assert!(!text.contains("topsecret"), "{text}");
}

#[tokio::test]
async fn nothing_listening_is_a_temporary_remote_error() {
    // Port 1 on loopback: nothing listens there.
    let mut settings = RabbitSettings::new("amqp://guest:guest@127.0.0.1:1/%2f").unwrap();
    settings.connect_timeout = Duration::from_secs(5);
    let err = RabbitConnector::connect(settings, &grant())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Remote | ErrorKind::Timeout),
        "{err}"
    );
    assert!(err.is_temporary(), "{err}");
}

#[tokio::test]
async fn tls_to_a_plain_port_fails_cleanly() {
    require_server();
    let mut settings = RabbitSettings::new("amqps://guest:guest@127.0.0.1:5672/%2f").unwrap();
    settings.connect_timeout = Duration::from_secs(5);
    let err = RabbitConnector::connect(settings, &grant())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Remote | ErrorKind::Timeout),
        "{err}"
    );
}

#[tokio::test]
async fn connecting_without_a_network_grant_is_denied() {
    let settings = RabbitSettings::new(URL).unwrap();
    let other = PermissionGuard::new(
        rabbitmq::ID,
        vec![Permission::Network {
            host: "broker.example.com".into(),
        }],
        None,
    );

    let err = RabbitConnector::connect(settings, &other)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.message().contains("127.0.0.1"), "{err}");
}

#[tokio::test]
async fn a_call_without_the_network_grant_is_denied() {
    let f = Fixture::new().await;
    let call = Call::new("queue_info", Payload::Empty).with_config(json!({"queue": "q"}));

    let err = f.plugin.execute(call).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    f.cleanup().await;
}

#[tokio::test]
async fn the_connection_name_is_the_one_configured() {
    let f = Fixture::new().await;
    let name = f.connection_name.clone();
    let listing = tokio::task::spawn_blocking(|| {
        rabbitmqctl(&[
            "list_connections",
            "client_properties",
            "--formatter",
            "json",
            "--quiet",
        ])
    })
    .await
    .unwrap();
    let names: Vec<String> = serde_json::from_str::<Vec<Value>>(listing.trim())
        .unwrap()
        .iter()
        .filter_map(|c| connection_name_of(&c["client_properties"]))
        .collect();
    assert!(names.contains(&name), "{name} not in {names:?}");
    f.cleanup().await;
}

#[tokio::test]
async fn metadata_lists_every_action_and_both_event_roles() {
    let meta = RabbitConnector::new().metadata();
    let names: Vec<&str> = meta.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "declare",
            "delete_exchange",
            "delete_queue",
            "get",
            "publish",
            "purge",
            "queue_info"
        ]
    );
    assert_eq!(meta.id, "rabbitmq-connector");
    let source = meta.events.source.as_ref().unwrap();
    assert!(source["properties"]["prefetch"].is_object());
    let sink = meta.events.sink.as_ref().unwrap();
    assert!(sink["properties"]["mandatory"].is_object());
}
