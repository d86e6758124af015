//! The `nats-connector` plugin against the real NATS server (with JetStream) on
//! 127.0.0.1:4222, and against private servers this file starts for the restart tests.
//!
//! Run `scripts/services` first (it starts nats-server when it is not running), then
//! `cargo nextest run -p kernelize-connectors --features nats --test nats`.
//!
//! Every test works on a stream and subjects of its own (a random suffix) and deletes its
//! stream at the end. The shared server is never stopped or reconfigured: the restart tests
//! run `nats-server -p <free port> -js -sd <temp dir>` of their own.
#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kernelize_connectors::nats::{self, NatsConnector, NatsSettings};
use kernelize_core::config::MapSecretStore;
use kernelize_core::{
    Call, ErrorKind, Event, Payload, Permission, PermissionGuard, Plugin, PluginConfig,
    PluginManager, Records,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SERVER: &str = "127.0.0.1:4222";
const NATS_SERVER_BIN: &str = "/usr/sbin/nats-server";

// ---------------------------------------------------------------------------------------
// helpers

/// Fails the test with a message saying how to start NATS when it is not answering.
fn require_server() {
    if std::net::TcpStream::connect_timeout(&SERVER.parse().unwrap(), Duration::from_secs(2))
        .is_err()
    {
        panic!(
            "NATS is not answering on {SERVER}; these tests need the real server with JetStream: run `scripts/services` (it starts nats-server -js) and try again"
        );
    }
}

fn suffix() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

fn grant() -> PermissionGuard {
    PermissionGuard::new(
        nats::ID,
        vec![Permission::Network {
            host: "127.0.0.1".into(),
        }],
        None,
    )
}

/// A connected plugin, a stream name and a subject prefix of its own.
struct Fixture {
    plugin: NatsConnector,
    guard: PermissionGuard,
    stream: String,
    /// `kz.<suffix>`: the stream takes `kz.<suffix>.>`.
    prefix: String,
}

impl Fixture {
    async fn new() -> Self {
        require_server();
        Self::on(&format!("nats://{SERVER}")).await
    }

    async fn on(url: &str) -> Self {
        let s = suffix();
        let settings = NatsSettings::new(url).unwrap();
        let guard = grant();
        let plugin = NatsConnector::connect(settings, &guard).await.unwrap();
        Fixture {
            plugin,
            guard,
            stream: format!("KZ_{s}"),
            prefix: format!("kz.{s}"),
        }
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

    fn subject(&self, leaf: &str) -> String {
        format!("{}.{leaf}", self.prefix)
    }

    /// Creates the fixture's stream (`<prefix>.>`) and a durable consumer with `consumer`
    /// settings on top of its name.
    async fn stream_and_consumer(&self, durable: &str, consumer: Value) {
        self.ok(
            "create_stream",
            json!({"name": self.stream, "subjects": [format!("{}.>", self.prefix)]}),
        )
        .await;
        let mut config = json!({"stream": self.stream, "durable": durable});
        for (k, v) in consumer.as_object().unwrap() {
            config[k] = v.clone();
        }
        self.ok("create_consumer", config).await;
    }

    async fn publish(&self, leaf: &str, body: Value, msg_id: Option<&str>) -> Value {
        let mut config = json!({"subject": self.subject(leaf)});
        if let Some(id) = msg_id {
            config["msg_id"] = json!(id);
        }
        self.call("publish", config, Payload::Json(body))
            .await
            .unwrap()
    }

    async fn fetch(&self, durable: &str, batch: usize, expires: Option<&str>) -> Value {
        let mut config = json!({"stream": self.stream, "durable": durable, "batch": batch});
        if let Some(e) = expires {
            config["expires"] = json!(e);
        }
        self.ok("fetch", config).await
    }

    async fn consumer_info(&self, durable: &str) -> Value {
        self.ok(
            "consumer_info",
            json!({"stream": self.stream, "durable": durable}),
        )
        .await
    }

    async fn cleanup(self) {
        self.ok("delete_stream", json!({"name": self.stream})).await;
    }
}

/// The error of a result whose success value has no `Debug` (a source or a sink).
fn refused<T>(result: kernelize_core::Result<T>) -> kernelize_core::Error {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn messages(fetched: &Value) -> &Vec<Value> {
    fetched["messages"].as_array().unwrap()
}

/// A nats-server of a test's own, on a free port with a store directory of its own.
struct PrivateServer {
    port: u16,
    store: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl PrivateServer {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra command-line options (`--user`, `--pass`).
    fn start_with(extra: &[&str]) -> Self {
        assert!(
            std::path::Path::new(NATS_SERVER_BIN).exists(),
            "{NATS_SERVER_BIN} is missing; the restart tests start a private nats-server (apt-get install nats-server)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = PrivateServer {
            port,
            store: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        server.run();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server process and waits until it takes connections.
    fn run(&mut self) {
        let child = Command::new(NATS_SERVER_BIN)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the private nats-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`: no goodbye to clients, no flush.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------
// publish, fetch, settle

#[tokio::test]
async fn publish_fetch_ack_leaves_nothing_pending() {
    let f = Fixture::new().await;
    f.stream_and_consumer("reader", json!({})).await;

    let published = f.publish("orders", json!({"order": 1}), None).await;
    f.call(
        "publish",
        json!({"subject": f.subject("notes"), "headers": {"X-Origin": "test"}}),
        Payload::bytes("hello", "text/plain"),
    )
    .await
    .unwrap();
    let fetched = f.fetch("reader", 10, Some("2s")).await;
    let acked = f
        .call(
            "ack",
            json!({"stream": f.stream, "durable": "reader"}),
            Payload::Json(fetched.clone()),
        )
        .await
        .unwrap();
    let info = f.consumer_info("reader").await;

    assert_eq!(published["messages"][0]["stream"], json!(f.stream));
    assert_eq!(published["messages"][0]["sequence"], json!(1));
    assert_eq!(published["messages"][0]["duplicate"], json!(false));
    let got = messages(&fetched);
    assert_eq!(got.len(), 2, "{fetched}");
    assert_eq!(got[0]["data"], json!({"order": 1}));
    assert_eq!(got[0]["base64"], json!(false));
    assert_eq!(got[0]["subject"], json!(f.subject("orders")));
    assert_eq!(got[0]["headers"]["Content-Type"], json!("application/json"));
    assert_eq!(got[0]["delivered"], json!(1));
    assert_eq!(got[1]["data"], json!("aGVsbG8="), "not JSON: base64");
    assert_eq!(got[1]["base64"], json!(true));
    assert_eq!(got[1]["headers"]["X-Origin"], json!("test"));
    assert_eq!(got[1]["headers"]["Content-Type"], json!("text/plain"));
    assert_eq!(acked, json!({"settled": 2, "sequences": [1, 2]}));
    assert_eq!(info["num_ack_pending"], json!(0), "{info}");
    assert_eq!(info["num_pending"], json!(0), "{info}");
    assert!(messages(&f.fetch("reader", 10, None).await).is_empty());
    f.cleanup().await;
}

#[tokio::test]
async fn ack_by_sequence_settles_only_those_messages() {
    let f = Fixture::new().await;
    f.stream_and_consumer("reader", json!({})).await;
    for n in 1..=3 {
        f.publish("orders", json!({"n": n}), None).await;
    }
    let fetched = f.fetch("reader", 10, Some("2s")).await;

    let acked = f
        .call(
            "ack",
            json!({"stream": f.stream, "durable": "reader", "sequences": [2]}),
            Payload::Json(fetched),
        )
        .await
        .unwrap();
    let info = f.consumer_info("reader").await;

    assert_eq!(acked, json!({"settled": 1, "sequences": [2]}));
    assert_eq!(info["num_ack_pending"], json!(2), "{info}");
    f.cleanup().await;
}

#[tokio::test]
async fn msg_id_deduplicates_within_the_window() {
    let f = Fixture::new().await;
    f.stream_and_consumer("reader", json!({})).await;

    let first = f.publish("orders", json!({"v": 1}), Some("order-7")).await;
    let second = f.publish("orders", json!({"v": 2}), Some("order-7")).await;
    let info = f.ok("stream_info", json!({"name": f.stream})).await;

    assert_eq!(first["messages"][0]["duplicate"], json!(false));
    assert_eq!(second["messages"][0]["duplicate"], json!(true));
    assert_eq!(
        second["messages"][0]["sequence"], first["messages"][0]["sequence"],
        "a duplicate answers with the stored message's sequence"
    );
    assert_eq!(info["messages"], json!(1), "{info}");
    let fetched = f.fetch("reader", 10, Some("1s")).await;
    assert_eq!(messages(&fetched).len(), 1);
    assert_eq!(messages(&fetched)[0]["msg_id"], json!("order-7"));
    assert_eq!(messages(&fetched)[0]["data"], json!({"v": 1}));
    f.cleanup().await;
}

#[tokio::test]
async fn publish_of_records_sends_one_message_per_row_with_row_ids() {
    let f = Fixture::new().await;
    f.stream_and_consumer("reader", json!({})).await;
    let rows =
        Records::from_json_rows(&[json!({"id": 1}), json!({"id": 2}), json!({"id": 3})]).unwrap();

    let published = f
        .call(
            "publish",
            json!({"subject": f.subject("rows"), "msg_id": "batch-1"}),
            Payload::Records(rows.clone()),
        )
        .await
        .unwrap();
    let again = f
        .call(
            "publish",
            json!({"subject": f.subject("rows"), "msg_id": "batch-1"}),
            Payload::Records(rows),
        )
        .await
        .unwrap();
    let fetched = f.fetch("reader", 10, Some("1s")).await;

    assert_eq!(published["messages"].as_array().unwrap().len(), 3);
    assert!(
        again["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["duplicate"] == json!(true)),
        "{again}"
    );
    let ids: Vec<&Value> = messages(&fetched).iter().map(|m| &m["msg_id"]).collect();
    assert_eq!(
        ids,
        [
            &json!("batch-1-0"),
            &json!("batch-1-1"),
            &json!("batch-1-2")
        ]
    );
    assert_eq!(messages(&fetched)[2]["data"], json!({"id": 3}));
    f.cleanup().await;
}

#[tokio::test]
async fn nak_with_delay_redelivers_after_the_delay_as_attempt_two() {
    let f = Fixture::new().await;
    f.stream_and_consumer("reader", json!({"ack_wait": "30s"}))
        .await;
    f.publish("orders", json!({"n": 1}), None).await;
    let first = f.fetch("reader", 1, Some("2s")).await;

    let naked_at = Instant::now();
    f.call(
        "nak",
        json!({"stream": f.stream, "durable": "reader", "delay": "2s"}),
        Payload::Json(first.clone()),
    )
    .await
    .unwrap();
    let meanwhile = f.fetch("reader", 1, None).await;
    let again = f.fetch("reader", 1, Some("10s")).await;

    assert_eq!(messages(&first)[0]["delivered"], json!(1));
    assert!(
        messages(&meanwhile).is_empty(),
        "not before the delay: {meanwhile}"
    );
    let again = messages(&again);
    assert_eq!(again.len(), 1, "redelivered after the delay");
    assert_eq!(again[0]["sequence"], messages(&first)[0]["sequence"]);
    assert_eq!(again[0]["delivered"], json!(2));
    assert!(
        naked_at.elapsed() >= Duration::from_millis(1900),
        "the delay was honoured"
    );
    f.cleanup().await;
}

#[tokio::test]
async fn term_is_never_delivered_again() {
    let f = Fixture::new().await;
    f.stream_and_consumer("reader", json!({"ack_wait": "1s"}))
        .await;
    f.publish("orders", json!({"n": 1}), None).await;
    let first = f.fetch("reader", 1, Some("2s")).await;

    let termed = f
        .call(
            "term",
            json!({"stream": f.stream, "durable": "reader"}),
            Payload::Json(first),
        )
        .await
        .unwrap();
    // Well past ack_wait: a message merely left unacknowledged would be back by now.
    let later = f.fetch("reader", 1, Some("2500ms")).await;
    let info = f.consumer_info("reader").await;

    assert_eq!(termed["settled"], json!(1));
    assert!(messages(&later).is_empty(), "{later}");
    assert_eq!(info["num_ack_pending"], json!(0), "{info}");
    f.cleanup().await;
}

#[tokio::test]
async fn max_deliver_stops_redelivery_after_that_many_deliveries() {
    let f = Fixture::new().await;
    f.stream_and_consumer("reader", json!({"max_deliver": 2, "ack_wait": "30s"}))
        .await;
    f.publish("orders", json!({"n": 1}), None).await;
    let settle = |fetched: Value| {
        let f = &f;
        async move {
            f.call(
                "nak",
                json!({"stream": f.stream, "durable": "reader"}),
                Payload::Json(fetched),
            )
            .await
            .unwrap()
        }
    };

    let first = f.fetch("reader", 1, Some("2s")).await;
    settle(first.clone()).await;
    let second = f.fetch("reader", 1, Some("2s")).await;
    settle(second.clone()).await;
    let third = f.fetch("reader", 1, Some("1500ms")).await;

    assert_eq!(messages(&first)[0]["delivered"], json!(1));
    assert_eq!(messages(&second)[0]["delivered"], json!(2));
    assert!(
        messages(&third).is_empty(),
        "max_deliver 2: no third delivery: {third}"
    );
    f.cleanup().await;
}

#[tokio::test]
async fn unacknowledged_message_comes_back_after_ack_wait() {
    let f = Fixture::new().await;
    f.stream_and_consumer("reader", json!({"ack_wait": "2s"}))
        .await;
    f.publish("orders", json!({"n": 1}), None).await;

    let first = f.fetch("reader", 1, Some("2s")).await;
    let at_once = f.fetch("reader", 1, None).await;
    let later = f.fetch("reader", 1, Some("10s")).await;

    assert!(
        messages(&at_once).is_empty(),
        "pending, not yet expired: {at_once}"
    );
    assert_eq!(messages(&later).len(), 1, "redelivered after ack_wait");
    assert_eq!(
        messages(&later)[0]["sequence"],
        messages(&first)[0]["sequence"]
    );
    assert_eq!(messages(&later)[0]["delivered"], json!(2));
    f.cleanup().await;
}

#[tokio::test]
async fn create_stream_is_idempotent_and_refuses_another_configuration() {
    let f = Fixture::new().await;
    let config = json!({"name": f.stream, "subjects": [format!("{}.>", f.prefix)], "max_age": "1h", "duplicate_window": "30s"});

    let created = f.ok("create_stream", config.clone()).await;
    let again = f.ok("create_stream", config).await;
    let other = f
        .call(
            "create_stream",
            json!({"name": f.stream, "subjects": [format!("{}.other", f.prefix)]}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert_eq!(created["max_age"], json!("1h"));
    assert_eq!(created["duplicate_window"], json!("30s"));
    assert_eq!(created["storage"], json!("file"));
    assert_eq!(again["name"], json!(f.stream));
    assert_eq!(other.kind(), ErrorKind::InvalidInput, "{other}");
    f.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// event source and sink

#[tokio::test]
async fn source_and_sink_through_the_manager_move_500_events_and_leave_nothing_pending() {
    require_server();
    let manager = PluginManager::builder()
        .secrets(Arc::new(
            MapSecretStore::new().with("NATS_URL", format!("nats://{SERVER}")),
        ))
        .build();
    manager.install(nats::factory()).unwrap();
    manager.configure(
        nats::ID,
        PluginConfig::with_settings(json!({"url": "${secret:NATS_URL}"})).grant(
            Permission::Network {
                host: "127.0.0.1".into(),
            },
        ),
    );
    manager.activate(nats::ID).await.unwrap();
    let s = suffix();
    let stream = format!("KZ_{s}");
    let sink = manager
        .open_sink(nats::ID, json!({"subject": format!("kz.{s}.{{key}}")}))
        .await
        .unwrap();
    let mut source = manager
        .open_source(
            nats::ID,
            json!({
                "stream": stream, "durable": "pipeline", "create": true,
                "subjects": [format!("kz.{s}.>")], "batch": 64, "expires": "1s",
                "content_type": "text/plain"
            }),
        )
        .await
        .unwrap();
    let events: Vec<Event> = (0..500)
        .map(|n| {
            Event::new(format!("in-{n}"), Payload::Json(json!({"n": n})))
                .with_key(format!("k{n}"))
                .with_header("X-Trace", format!("t{n}"))
        })
        .collect();

    let report = sink.write(&events).await.unwrap();
    let rewritten = sink.write(&events[..10]).await.unwrap();
    let cancel = CancellationToken::new();
    let mut seen = BTreeMap::new();
    let start = Instant::now();
    while seen.len() < 500 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {} of 500 came",
            seen.len()
        );
        let delivery = tokio::time::timeout(Duration::from_secs(10), source.receive(&cancel))
            .await
            .expect("receive hung")
            .unwrap()
            .expect("the source ended");
        let event = delivery.event;
        let body: Value = event.payload.clone().into_json().unwrap();
        seen.insert(event.key.clone().unwrap(), (event.clone(), body));
        delivery.ack.ack().await.unwrap();
    }
    let info = manager
        .call(
            nats::ID,
            Call::new("consumer_info", Payload::Empty)
                .with_config(json!({"stream": stream, "durable": "pipeline"})),
        )
        .await
        .unwrap()
        .into_json()
        .unwrap();
    let stream_info = manager
        .call(
            nats::ID,
            Call::new("stream_info", Payload::Empty).with_config(json!({"name": stream})),
        )
        .await
        .unwrap()
        .into_json()
        .unwrap();

    assert!(report.is_complete(), "{:?}", report.failed);
    assert!(rewritten.is_complete());
    assert_eq!(
        stream_info["messages"],
        json!(500),
        "keys de-duplicate the rewrite"
    );
    let (event, body) = &seen["k7"];
    assert_eq!(body, &json!({"n": 7}));
    assert_eq!(
        event.subject.as_deref(),
        Some(format!("kz.{s}.k7").as_str())
    );
    assert_eq!(event.headers["X-Trace"], "t7");
    assert_eq!(event.attempt, 1);
    match &event.payload {
        Payload::Bytes(blob) => assert_eq!(blob.media_type, "application/json"),
        other => panic!("bytes expected, got {other:?}"),
    }
    let ids: BTreeSet<&String> = seen.values().map(|(e, _)| &e.id).collect();
    assert_eq!(ids.len(), 500, "ids are stream sequences, one per message");
    assert_eq!(info["num_ack_pending"], json!(0), "{info}");
    assert_eq!(info["num_pending"], json!(0), "{info}");
    manager
        .call(
            nats::ID,
            Call::new("delete_stream", Payload::Empty).with_config(json!({"name": stream})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn source_retry_and_reject_map_to_nak_and_term() {
    let f = Fixture::new().await;
    f.stream_and_consumer("pipeline", json!({"ack_wait": "30s"}))
        .await;
    f.publish("a", json!({"n": 1}), None).await;
    f.publish("b", json!({"n": 2}), None).await;
    let mut source = f
        .plugin
        .open_source(json!({"stream": f.stream, "durable": "pipeline", "expires": "1s"}))
        .await
        .unwrap();
    let cancel = CancellationToken::new();

    let one = source.receive(&cancel).await.unwrap().unwrap();
    let two = source.receive(&cancel).await.unwrap().unwrap();
    let (retried_id, rejected_id) = (one.event.id.clone(), two.event.id.clone());
    one.ack
        .retry(Some(Duration::from_millis(200)))
        .await
        .unwrap();
    two.ack.reject().await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), source.receive(&cancel))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    again.ack.ack().await.unwrap();
    let info = f.consumer_info("pipeline").await;

    assert_eq!(again.event.id, retried_id);
    assert_eq!(again.event.attempt, 2);
    assert_ne!(again.event.id, rejected_id);
    assert_eq!(info["num_ack_pending"], json!(0), "{info}");
    assert_eq!(info["num_pending"], json!(0), "{info}");
    f.cleanup().await;
}

#[tokio::test]
async fn sink_reports_the_events_it_could_not_write_and_writes_the_rest() {
    let f = Fixture::new().await;
    f.stream_and_consumer("reader", json!({})).await;
    let sink = f
        .plugin
        .open_sink(json!({"subject": format!("{}.{{key}}", f.prefix)}))
        .await
        .unwrap();
    let events = vec![
        Event::new("a", Payload::Json(json!(1))).with_key("a"),
        Event::new("no-key", Payload::Json(json!(2))),
        Event::new("c", Payload::bytes("raw", "text/plain")).with_key("c"),
    ];

    let report = sink.write(&events).await.unwrap();
    let info = f.ok("stream_info", json!({"name": f.stream})).await;

    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, 1);
    assert_eq!(report.failed[0].1.kind(), ErrorKind::InvalidInput);
    assert_eq!(info["messages"], json!(2));
    f.cleanup().await;
}

#[tokio::test]
async fn source_keeps_going_across_a_server_restart_and_loses_nothing_acknowledged() {
    let mut server = PrivateServer::start();
    let mut settings = NatsSettings::new(&server.url()).unwrap();
    settings.request_timeout = Duration::from_secs(2);
    let guard = grant();
    let plugin = NatsConnector::connect(settings, &guard).await.unwrap();
    let call = |action: &str, config: Value, input: Payload| {
        let mut call = Call::new(action, input).with_config(config);
        call.permissions = guard.clone();
        plugin.execute(call)
    };
    call(
        "create_stream",
        json!({"name": "RESTART", "subjects": ["restart.>"]}),
        Payload::Empty,
    )
    .await
    .unwrap();
    call(
        "create_consumer",
        json!({"stream": "RESTART", "durable": "pipeline", "ack_wait": "2s"}),
        Payload::Empty,
    )
    .await
    .unwrap();
    let rows: Vec<Value> = (0..1000).map(|n| json!({"n": n})).collect();
    let published = call(
        "publish",
        json!({"subject": "restart.orders", "msg_id": "restart"}),
        Payload::Records(Records::from_json_rows(&rows).unwrap()),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(published["messages"].as_array().unwrap().len(), 1000);
    let mut source = plugin
        .open_source(
            json!({"stream": "RESTART", "durable": "pipeline", "batch": 50, "expires": "1s"}),
        )
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let mut received = BTreeSet::new();
    let mut acknowledged = BTreeSet::new();

    // Half, acknowledged, before the crash.
    while acknowledged.len() < 500 {
        let d = source.receive(&cancel).await.unwrap().unwrap();
        let n = d.event.payload.clone().into_json().unwrap()["n"]
            .as_u64()
            .unwrap();
        received.insert(n);
        d.ack.ack().await.unwrap();
        acknowledged.insert(n);
    }
    // One more, settled only once its connection is gone.
    let held = source.receive(&cancel).await.unwrap().unwrap();
    received.insert(
        held.event.payload.clone().into_json().unwrap()["n"]
            .as_u64()
            .unwrap(),
    );
    // Let the server write what it acknowledged to its files, then kill it without warning.
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.kill();
    // The client notices the closed socket at once; give it a moment all the same.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lost = held.ack.ack().await.unwrap_err();
    assert!(lost.is_temporary(), "settling on a lost connection: {lost}");
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::spawn_blocking(move || {
            server.run();
            server
        })
        .await
        .unwrap()
    });
    let mut settle_failures = 0;
    let start = Instant::now();
    let info = loop {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "after the restart only {} received and {} acknowledged of 1000",
            received.len(),
            acknowledged.len()
        );
        if received.len() == 1000 {
            let info = call(
                "consumer_info",
                json!({"stream": "RESTART", "durable": "pipeline"}),
                Payload::Empty,
            )
            .await
            .unwrap()
            .into_json()
            .unwrap();
            if info["num_pending"] == json!(0) && info["num_ack_pending"] == json!(0) {
                break info;
            }
        }
        let next = tokio::time::timeout(Duration::from_secs(10), source.receive(&cancel)).await;
        let Ok(next) = next else {
            // Nothing for a while: fine only once everything came (the loop checks that
            // nothing is left pending).
            assert_eq!(received.len(), 1000, "the source hung across the restart");
            continue;
        };
        let d = next
            .expect("the source gave up across the restart")
            .expect("the source ended");
        let n = d.event.payload.clone().into_json().unwrap()["n"]
            .as_u64()
            .unwrap();
        received.insert(n);
        match d.ack.ack().await {
            Ok(()) => {
                acknowledged.insert(n);
            }
            Err(e) => {
                assert!(e.is_temporary(), "a failed settlement is temporary: {e}");
                eprintln!("settlement failed: {e}");
                settle_failures += 1;
            }
        }
    };
    let server = restart.await.unwrap();
    let stream = call("stream_info", json!({"name": "RESTART"}), Payload::Empty)
        .await
        .unwrap()
        .into_json()
        .unwrap();

    assert_eq!(
        received,
        (0..1000).collect::<BTreeSet<u64>>(),
        "every message came"
    );
    assert_eq!(stream["messages"], json!(1000), "nothing stored was lost");
    assert!(acknowledged.is_subset(&received));
    assert_eq!(
        info["ack_floor_sequence"],
        json!(1000),
        "all acknowledged: {info}"
    );
    assert_eq!(info["num_pending"], json!(0), "{info}");
    assert_eq!(
        info["num_ack_pending"],
        json!(0),
        "every delivery settled: {info}"
    );
    eprintln!("settlements that failed during the outage: {settle_failures}");
    drop(server);
}

#[tokio::test]
async fn sink_write_while_the_server_is_down_is_a_temporary_error() {
    let mut server = PrivateServer::start();
    let mut settings = NatsSettings::new(&server.url()).unwrap();
    settings.request_timeout = Duration::from_secs(1);
    let plugin = NatsConnector::connect(settings, &grant()).await.unwrap();
    let mut call = Call::new("create_stream", Payload::Empty)
        .with_config(json!({"name": "DOWN", "subjects": ["down.>"]}));
    call.permissions = grant();
    plugin.execute(call).await.unwrap();
    let sink = plugin
        .open_sink(json!({"subject": "down.x"}))
        .await
        .unwrap();
    server.kill();

    let err = sink
        .write(&[Event::new("1", Payload::Json(json!(1)))])
        .await
        .unwrap_err();

    assert!(err.is_temporary(), "{err}");
}

// ---------------------------------------------------------------------------------------
// bad input and failures

#[tokio::test]
async fn unknown_stream_is_not_found_naming_it() {
    let f = Fixture::new().await;

    let err = f
        .call("stream_info", json!({"name": f.stream}), Payload::Empty)
        .await
        .unwrap_err();
    let fetch = f
        .call(
            "fetch",
            json!({"stream": f.stream, "durable": "nobody"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    let source = refused(
        f.plugin
            .open_source(json!({"stream": f.stream, "durable": "nobody"}))
            .await,
    );

    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(&f.stream), "{err}");
    assert_eq!(fetch.kind(), ErrorKind::NotFound, "{fetch}");
    assert_eq!(source.kind(), ErrorKind::NotFound, "{source}");
    assert!(source.to_string().contains(&f.stream), "{source}");
}

#[tokio::test]
async fn publish_to_a_subject_no_stream_takes_is_not_found() {
    let f = Fixture::new().await;

    let err = f
        .call(
            "publish",
            json!({"subject": f.subject("nowhere")}),
            Payload::Json(json!(1)),
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(&f.subject("nowhere")), "{err}");
}

#[tokio::test]
async fn invalid_subjects_names_and_tokens_are_refused() {
    let f = Fixture::new().await;
    f.stream_and_consumer("reader", json!({})).await;

    let wildcard = f
        .call(
            "publish",
            json!({"subject": "kz.*"}),
            Payload::Json(json!(1)),
        )
        .await
        .unwrap_err();
    let name = f
        .call("stream_info", json!({"name": "a.b"}), Payload::Empty)
        .await
        .unwrap_err();
    let header = f
        .call(
            "publish",
            json!({"subject": f.subject("x"), "headers": {"Bad: name": "v"}}),
            Payload::Json(json!(1)),
        )
        .await
        .unwrap_err();
    let token = f
        .call(
            "ack",
            json!({"stream": f.stream, "durable": "reader", "ack_tokens": ["orders.created"]}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    let foreign = f
        .call(
            "ack",
            json!({"stream": f.stream, "durable": "reader",
                   "ack_tokens": ["$JS.ACK.OTHER.reader.1.1.1.1700000000000000000.0"]}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    let empty = f
        .call(
            "publish",
            json!({"subject": f.subject("x")}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    for err in [&wildcard, &name, &header, &token, &foreign, &empty] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    assert!(foreign.to_string().contains("OTHER"), "{foreign}");
    f.cleanup().await;
}

#[tokio::test]
async fn bad_url_is_config_invalid() {
    for url in [
        "not a url",
        "http://127.0.0.1:4222",
        "nats://",
        "nats://host/path",
    ] {
        let err = NatsSettings::new(url).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{url}: {err}");
    }
    let tls = NatsSettings::new("tls://127.0.0.1:4222").unwrap_err();
    assert_eq!(tls.kind(), ErrorKind::Unsupported);
    // Through the manager: the plugin does not activate.
    let manager = PluginManager::new();
    manager.install(nats::factory()).unwrap();
    manager.configure(
        nats::ID,
        PluginConfig::with_settings(json!({"url": "redis://127.0.0.1:4222"})),
    );
    let err = manager.activate(nats::ID).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{err}");
}

#[tokio::test]
async fn server_down_is_a_temporary_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = NatsSettings::new(&format!("nats://127.0.0.1:{port}")).unwrap();

    let err = NatsConnector::connect(settings, &grant())
        .await
        .unwrap_err();

    assert!(err.is_temporary(), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[tokio::test]
async fn credentials_are_never_shown() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = NatsSettings::new(&format!("nats://alice:hunter2@127.0.0.1:{port}")).unwrap();
    let shown = format!(
        "{settings:?} {} {}",
        serde_json::to_string(&settings).unwrap(),
        settings.url
    );

    let err = NatsConnector::connect(settings, &grant())
        .await
        .unwrap_err();
    let text = format!("{err} {err:?} {shown}");

    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("alice:***@"), "{text}");
    let token: NatsSettings = serde_json::from_value(
        json!({"url": format!("nats://127.0.0.1:{port}"), "token": "s3cr3t-token"}),
    )
    .unwrap();
    let err = NatsConnector::connect(token.clone(), &grant())
        .await
        .unwrap_err();
    let text = format!(
        "{err} {err:?} {token:?} {}",
        serde_json::to_string(&token).unwrap()
    );
    assert!(!text.contains("s3cr3t-token"), "{text}");
}

#[tokio::test]
async fn wrong_credentials_are_refused_by_the_server_without_being_shown() {
    let server = PrivateServer::start_with(&["--user", "alice", "--pass", "right-pass"]);
    let wrong: NatsSettings = serde_json::from_value(
        json!({"url": server.url(), "user": "alice", "password": "wrong-pass"}),
    )
    .unwrap();
    let right =
        NatsSettings::new(&server.url().replace("nats://", "nats://alice:right-pass@")).unwrap();

    let err = NatsConnector::connect(wrong, &grant()).await.unwrap_err();
    let connected = NatsConnector::connect(right, &grant()).await;

    let text = format!("{err} {err:?}");
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{text}");
    assert!(!text.contains("wrong-pass"), "{text}");
    assert!(connected.is_ok(), "the right password in the URL logs in");
}

#[tokio::test]
async fn consumer_backoff_is_kept_and_one_the_server_refuses_is_invalid_input() {
    let f = Fixture::new().await;
    f.ok(
        "create_stream",
        json!({"name": f.stream, "subjects": [format!("{}.>", f.prefix)]}),
    )
    .await;

    let created = f
        .ok(
            "create_consumer",
            json!({"stream": f.stream, "durable": "slow", "max_deliver": 5,
                   "backoff": ["1s", "2s"], "deliver_policy": "new"}),
        )
        .await;
    let refused = f
        .call(
            "create_consumer",
            json!({"stream": f.stream, "durable": "bad", "max_deliver": 2,
                   "backoff": ["1s", "2s", "3s"]}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert_eq!(created["backoff"], json!(["1s", "2s"]));
    assert_eq!(created["max_deliver"], json!(5));
    assert_eq!(created["deliver_policy"], json!("new"));
    assert_eq!(refused.kind(), ErrorKind::InvalidInput, "{refused}");
    f.cleanup().await;
}

#[tokio::test]
async fn credentials_twice_or_half_are_refused() {
    let twice: NatsSettings = serde_json::from_value(
        json!({"url": "nats://a:b@127.0.0.1", "user": "c", "password": "d"}),
    )
    .unwrap();
    let half: NatsSettings =
        serde_json::from_value(json!({"url": "nats://127.0.0.1", "user": "c"})).unwrap();

    assert_eq!(twice.check().unwrap_err().kind(), ErrorKind::ConfigInvalid);
    assert_eq!(half.check().unwrap_err().kind(), ErrorKind::ConfigInvalid);
}

#[tokio::test]
async fn connecting_without_a_network_grant_is_denied() {
    let settings = NatsSettings::new(&format!("nats://{SERVER}")).unwrap();
    let other = PermissionGuard::new(
        nats::ID,
        vec![Permission::Network {
            host: "nats.example.com".into(),
        }],
        None,
    );

    let err = NatsConnector::connect(settings, &other).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.message().contains("127.0.0.1"), "{err}");
}

#[tokio::test]
async fn a_call_without_the_network_grant_is_denied() {
    let f = Fixture::new().await;
    let call = Call::new("stream_info", Payload::Empty).with_config(json!({"name": "X"}));

    let err = f.plugin.execute(call).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
}

#[tokio::test]
async fn invalid_source_options_are_refused_by_the_manager() {
    require_server();
    let manager = PluginManager::new();
    manager.install(nats::factory()).unwrap();
    manager.configure(
        nats::ID,
        PluginConfig::with_settings(json!({"url": format!("nats://{SERVER}")})).grant(
            Permission::Network {
                host: "127.0.0.1".into(),
            },
        ),
    );
    manager.activate(nats::ID).await.unwrap();

    let unknown = refused(
        manager
            .open_source(
                nats::ID,
                json!({"stream": "S", "durable": "d", "colour": "red"}),
            )
            .await,
    );
    let batch = refused(
        manager
            .open_source(
                nats::ID,
                json!({"stream": "S", "durable": "d", "batch": 20000}),
            )
            .await,
    );
    let sink = refused(
        manager
            .open_sink(nats::ID, json!({"subject": "a..b"}))
            .await,
    );

    assert_eq!(unknown.kind(), ErrorKind::ConfigInvalid, "{unknown}");
    assert_eq!(batch.kind(), ErrorKind::ConfigInvalid, "{batch}");
    assert_eq!(sink.kind(), ErrorKind::ConfigInvalid, "{sink}");
}

#[tokio::test]
async fn metadata_lists_every_action_and_both_event_roles() {
    let meta = NatsConnector::new().metadata();
    let names: Vec<&str> = meta.actions.iter().map(|a| a.name.as_str()).collect();

    assert_eq!(
        names,
        [
            "ack",
            "consumer_info",
            "create_consumer",
            "create_stream",
            "delete_stream",
            "fetch",
            "nak",
            "publish",
            "stream_info",
            "term"
        ]
    );
    assert_eq!(meta.id, "nats-connector");
    let source = meta.events.source.as_ref().unwrap();
    assert!(source["properties"]["batch"].is_object());
    assert!(meta.events.sink.as_ref().unwrap()["properties"]["subject"].is_object());
}

#[tokio::test]
async fn a_created_consumer_holds_deliveries_at_max_ack_pending() {
    let f = Fixture::new().await;
    f.ok(
        "create_stream",
        json!({"name": f.stream, "subjects": [format!("{}.>", f.prefix)]}),
    )
    .await;
    for n in 0..8 {
        f.publish("a", json!({"n": n}), None).await;
    }
    let mut source = f
        .plugin
        .open_source(json!({
            "stream": f.stream, "durable": "bounded", "create": true,
            "subjects": [format!("{}.>", f.prefix)],
            "max_ack_pending": 3, "batch": 100, "expires": "1s"
        }))
        .await
        .unwrap();
    let Err(refused) = f
        .plugin
        .open_source(json!({"stream": f.stream, "durable": "x", "max_ack_pending": 0}))
        .await
    else {
        panic!("`max_ack_pending: 0` was taken");
    };
    let cancel = CancellationToken::new();

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(source.receive(&cancel).await.unwrap().unwrap());
    }
    let fourth_early =
        tokio::time::timeout(Duration::from_millis(2500), source.receive(&cancel)).await;
    let info = f.consumer_info("bounded").await;
    held.remove(0).ack.ack().await.unwrap();
    let fourth = tokio::time::timeout(Duration::from_secs(10), source.receive(&cancel))
        .await
        .expect("a settlement lets the next delivery through")
        .unwrap()
        .unwrap();

    assert!(
        fourth_early.is_err(),
        "the server delivered a fourth message while three were unacknowledged"
    );
    assert_eq!(info["max_ack_pending"], json!(3), "{info}");
    assert_eq!(info["num_ack_pending"], json!(3), "{info}");
    assert_eq!(fourth.event.payload.into_json().unwrap()["n"], json!(3));
    assert_eq!(refused.kind(), ErrorKind::ConfigInvalid, "{refused}");
    f.cleanup().await;
}

#[tokio::test]
async fn unconfirmed_settlements_still_ack_nak_and_term() {
    let f = Fixture::new().await;
    f.stream_and_consumer("fast", json!({"ack_wait": "30s"}))
        .await;
    for n in 0..5 {
        f.publish("a", json!({"n": n}), None).await;
    }
    let mut source = f
        .plugin
        .open_source(json!({
            "stream": f.stream, "durable": "fast", "expires": "1s", "confirm_acks": false
        }))
        .await
        .unwrap();
    let cancel = CancellationToken::new();

    let mut first = Vec::new();
    for _ in 0..5 {
        first.push(source.receive(&cancel).await.unwrap().unwrap());
    }
    let mut ids = Vec::new();
    for (i, d) in first.into_iter().enumerate() {
        ids.push(d.event.id.clone());
        match i {
            0 => d.ack.retry(Some(Duration::from_millis(100))).await.unwrap(),
            1 => d.ack.reject().await.unwrap(),
            _ => d.ack.ack().await.unwrap(),
        }
    }
    let again = tokio::time::timeout(Duration::from_secs(10), source.receive(&cancel))
        .await
        .expect("the nak'ed message comes again")
        .unwrap()
        .unwrap();
    let again_id = again.event.id.clone();
    let again_attempt = again.event.attempt;
    again.ack.ack().await.unwrap();
    let start = Instant::now();
    let info = loop {
        let info = f.consumer_info("fast").await;
        if info["num_ack_pending"] == json!(0) || start.elapsed() > Duration::from_secs(10) {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert_eq!(again_id, ids[0]);
    assert_eq!(again_attempt, 2);
    assert_eq!(info["num_ack_pending"], json!(0), "{info}");
    assert_eq!(info["num_pending"], json!(0), "{info}");
    assert_eq!(info["num_redelivered"], json!(0), "{info}");
    f.cleanup().await;
}
