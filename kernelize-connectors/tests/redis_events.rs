//! The `redis-connector` as an event source and sink, against the real Redis server on
//! 127.0.0.1:6379, and against a private `redis-server` this file starts (and restarts) on
//! a free port.
//!
//! Run `scripts/services` first (it starts Redis when it is not running), then
//! `cargo nextest run -p kernelize-connectors --features redis --test redis_events`.
//!
//! Every test works in a namespace of its own (`key_prefix` with a random suffix) and
//! deletes its keys at the end.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kernelize_connectors::redis::{
    self, RedisConnector, RedisEventSource, RedisSettings, RedisSinkOptions, RedisSourceOptions,
};
use kernelize_core::{
    Delivery, ErrorKind, Event, EventSink, EventSource, Payload, Permission, PermissionGuard,
    PluginConfig, PluginManager,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const SERVER: &str = "127.0.0.1:6379";
const REDIS_SERVER: &str = "/usr/bin/redis-server";

// ---------------------------------------------------------------------------------------
// helpers

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kernelize_connectors=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Fails the test with a message saying how to start Redis when it is not answering.
fn require_server() {
    init_logs();
    if std::net::TcpStream::connect_timeout(&SERVER.parse().unwrap(), Duration::from_secs(2))
        .is_err()
    {
        panic!(
            "Redis is not answering on {SERVER}; these tests need the real server: run `scripts/services` (it starts Redis) and try again"
        );
    }
}

fn suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn grant() -> PermissionGuard {
    PermissionGuard::new(
        redis::ID,
        vec![Permission::Network {
            host: "127.0.0.1".into(),
        }],
        None,
    )
}

/// A connected plugin in a namespace of its own.
async fn plugin(address: &str, prefix: &str) -> RedisConnector {
    let mut settings = RedisSettings::new(&format!("redis://{address}/0")).unwrap();
    settings.key_prefix = Some(prefix.to_string());
    settings.command_timeout = Duration::from_secs(2);
    RedisConnector::connect(settings, &grant()).await.unwrap()
}

async fn raw(address: &str) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(format!("redis://{address}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Deletes every key of the namespace.
async fn cleanup(address: &str, prefix: &str) {
    let mut conn = raw(address).await;
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = ::redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// How many entries of `group` are pending.
async fn pending(address: &str, stream: &str, group: &str) -> i64 {
    let mut conn = raw(address).await;
    let summary: ::redis::Value = ::redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(&mut conn)
        .await
        .unwrap();
    match summary {
        ::redis::Value::Array(parts) => match parts.first() {
            Some(::redis::Value::Int(n)) => *n,
            other => panic!("unexpected XPENDING count {other:?}"),
        },
        other => panic!("unexpected XPENDING answer {other:?}"),
    }
}

fn source_options(stream: &str, group: &str, consumer: &str) -> RedisSourceOptions {
    let mut options = RedisSourceOptions::new(stream, group, consumer);
    options.block_ms = 200;
    options
}

/// Receives one delivery within 10 s.
async fn next(source: &mut (impl EventSource + ?Sized)) -> Delivery {
    tokio::time::timeout(
        Duration::from_secs(10),
        source.receive(&CancellationToken::new()),
    )
    .await
    .expect("no entry within 10s")
    .unwrap()
    .expect("the source ended")
}

fn body(event: &Event) -> String {
    match &event.payload {
        Payload::Bytes(blob) => String::from_utf8(blob.data.to_vec()).unwrap(),
        other => panic!("expected bytes, got {}", other.kind_name()),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of this test's own on a free port, with an append-only file in a
/// temporary directory so that entries survive a restart.
struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        init_logs();
        assert!(
            Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing; install the redis-server package (scripts/services expects it)"
        );
        let mut server = PrivateRedis {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.run();
        server
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(self.address()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the private redis-server did not start on port {}",
            self.port
        );
    }

    /// SIGTERM (so that it syncs its append-only file), and waits for it to end.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            child.wait().unwrap();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// round trip

#[tokio::test]
async fn five_hundred_events_round_trip_through_the_manager() {
    require_server();
    let prefix = format!("kz-test:{}:", suffix());
    let manager = PluginManager::builder().build();
    manager.install(redis::factory()).unwrap();
    manager.configure(
        redis::ID,
        PluginConfig::with_settings(
            json!({"url": format!("redis://{SERVER}/0"), "key_prefix": prefix}),
        )
        .grant(Permission::Network {
            host: "127.0.0.1".into(),
        }),
    );
    manager.activate(redis::ID).await.unwrap();
    let sink = manager
        .open_sink(redis::ID, json!({"stream": "orders"}))
        .await
        .unwrap();
    let mut source = manager
        .open_source(
            redis::ID,
            json!({"stream": "orders", "group": "billing", "consumer": "worker-1", "block_ms": 200}),
        )
        .await
        .unwrap();

    for batch in 0..5 {
        let events: Vec<Event> = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                Event::new(n.to_string(), Payload::Json(json!({"n": n})))
                    .with_key(format!("order-{n}"))
                    .with_header("origin", "test")
            })
            .collect();
        let report = sink.write(&events).await.unwrap();
        assert!(report.is_complete(), "{:?}", report.failed);
    }
    let mut seen = BTreeMap::new();
    while seen.len() < 500 {
        let delivery = next(source.as_mut()).await;
        let value = delivery.event.payload.clone().into_json().unwrap();
        let n = value["n"].as_u64().unwrap();
        assert_eq!(delivery.event.key, Some(format!("order-{n}")));
        assert_eq!(
            delivery.event.headers.get("origin").map(String::as_str),
            Some("test")
        );
        assert_eq!(delivery.event.subject.as_deref(), Some("orders"));
        assert_eq!(delivery.event.attempt, 1);
        seen.insert(n, delivery.event.id.clone());
        delivery.ack.ack().await.unwrap();
    }
    let left = pending(SERVER, &format!("{prefix}orders"), "billing").await;
    cleanup(SERVER, &prefix).await;

    assert_eq!(
        seen.keys().copied().collect::<BTreeSet<_>>(),
        (0..500).collect()
    );
    assert_eq!(left, 0, "every entry was acknowledged");
}

#[tokio::test]
async fn entries_without_the_payload_field_become_json_objects_of_their_fields() {
    require_server();
    let prefix = format!("kz-test:{}:", suffix());
    let plugin = plugin(SERVER, &prefix).await;
    let mut conn = raw(SERVER).await;
    let _: String = ::redis::cmd("XADD")
        .arg(format!("{prefix}s"))
        .arg("*")
        .arg("sku")
        .arg("A-1")
        .arg("message_id")
        .arg("m-7")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut options = source_options("s", "g", "c");
    options.content_type = "text/plain".into();
    let mut source = plugin.source(options).await.unwrap();

    let delivery = next(&mut source).await;
    cleanup(SERVER, &prefix).await;

    assert_eq!(
        delivery.event.payload.clone().into_json().unwrap(),
        json!({"sku": "A-1", "message_id": "m-7"})
    );
    assert_eq!(delivery.event.key.as_deref(), Some("m-7"));
}

// ---------------------------------------------------------------------------------------
// settling and claiming

#[tokio::test]
async fn entries_a_consumer_never_acknowledges_are_claimed_by_another_after_claim_idle_ms() {
    require_server();
    let prefix = format!("kz-test:{}:", suffix());
    let plugin = plugin(SERVER, &prefix).await;
    let sink = plugin
        .sink(RedisSinkOptions {
            stream: "jobs".into(),
            maxlen: None,
            payload_field: "payload".into(),
        })
        .unwrap();
    let events: Vec<Event> = (0..5)
        .map(|n| Event::new(n.to_string(), Payload::bytes(n.to_string(), "text/plain")))
        .collect();
    sink.write(&events).await.unwrap();
    let mut crashed_options = source_options("jobs", "workers", "crashed");
    crashed_options.claim_idle_ms = 500;
    let mut crashed = plugin.source(crashed_options).await.unwrap();
    for _ in 0..5 {
        // Received and never settled: dropped as a crashed consumer would leave them.
        drop(next(&mut crashed).await);
    }
    drop(crashed);

    let mut rescuer_options = source_options("jobs", "workers", "rescuer");
    rescuer_options.claim_idle_ms = 500;
    let mut rescuer = plugin.source(rescuer_options).await.unwrap();
    let mut claimed = BTreeSet::new();
    while claimed.len() < 5 {
        let delivery = next(&mut rescuer).await;
        assert_eq!(delivery.event.attempt, 2, "delivered once to each consumer");
        assert_eq!(
            delivery.event.payload.clone().into_json().unwrap(),
            json!(body(&delivery.event))
        );
        claimed.insert(body(&delivery.event));
        delivery.ack.ack().await.unwrap();
    }
    let left = pending(SERVER, &format!("{prefix}jobs"), "workers").await;
    cleanup(SERVER, &prefix).await;

    assert_eq!(claimed, (0..5).map(|n| n.to_string()).collect());
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_retried_entry_comes_back_through_the_claim_and_a_rejected_one_does_not() {
    require_server();
    let prefix = format!("kz-test:{}:", suffix());
    let plugin = plugin(SERVER, &prefix).await;
    let sink = plugin
        .sink(RedisSinkOptions {
            stream: "s".into(),
            maxlen: None,
            payload_field: "payload".into(),
        })
        .unwrap();
    sink.write(&[
        Event::new("a", Payload::Json(json!("retry me"))),
        Event::new("b", Payload::Json(json!("reject me"))),
    ])
    .await
    .unwrap();
    let mut options = source_options("s", "g", "c");
    options.claim_idle_ms = 300;
    let mut source = plugin.source(options).await.unwrap();

    let first = next(&mut source).await;
    let second = next(&mut source).await;
    first
        .ack
        .retry(Some(Duration::from_millis(100)))
        .await
        .unwrap();
    second.ack.reject().await.unwrap();
    let again = next(&mut source).await;
    let again_body = again.event.payload.clone().into_json().unwrap();
    let again_attempt = again.event.attempt;
    again.ack.ack().await.unwrap();
    let nothing = tokio::time::timeout(
        Duration::from_millis(800),
        source.receive(&CancellationToken::new()),
    )
    .await;
    let left = pending(SERVER, &format!("{prefix}s"), "g").await;
    cleanup(SERVER, &prefix).await;

    assert_eq!(again_body, json!("retry me"));
    assert_eq!(again_attempt, 2);
    assert!(nothing.is_err(), "the rejected entry must not come back");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_sink_names_the_events_it_could_not_write() {
    require_server();
    let prefix = format!("kz-test:{}:", suffix());
    let plugin = plugin(SERVER, &prefix).await;
    let sink = plugin
        .sink(RedisSinkOptions {
            stream: "s".into(),
            maxlen: Some(1000),
            payload_field: "body".into(),
        })
        .unwrap();
    let events = vec![
        Event::new("ok", Payload::Json(json!({"fine": true}))),
        Event::new(
            "binary",
            Payload::bytes(vec![0xffu8, 0xfe], "application/octet-stream"),
        ),
    ];

    let report = sink.write(&events).await.unwrap();
    let all_bad = sink.write(&events[1..]).await;
    let mut conn = raw(SERVER).await;
    let len: i64 = ::redis::cmd("XLEN")
        .arg(format!("{prefix}s"))
        .query_async(&mut conn)
        .await
        .unwrap();
    cleanup(SERVER, &prefix).await;

    let failed: Vec<(usize, ErrorKind)> =
        report.failed.iter().map(|(i, e)| (*i, e.kind())).collect();
    assert_eq!(failed, vec![(1, ErrorKind::InvalidInput)]);
    assert_eq!(all_bad.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(len, 1);
}

#[tokio::test]
async fn bad_source_options_are_refused_before_reading() {
    require_server();
    let prefix = format!("kz-test:{}:", suffix());
    let plugin = plugin(SERVER, &prefix).await;

    let mut no_group = source_options("s", "missing", "c");
    no_group.create_group = false;
    let missing = plugin.source(no_group).await.unwrap_err();
    let mut huge = source_options("s", "g", "c");
    huge.batch = 20_000;
    let too_big = plugin.source(huge).await.unwrap_err();
    cleanup(SERVER, &prefix).await;

    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    assert_eq!(too_big.kind(), ErrorKind::ConfigInvalid, "{too_big}");
}

// ---------------------------------------------------------------------------------------
// restarts

#[tokio::test]
async fn the_source_resumes_on_its_own_after_redis_restarts() {
    let mut server = PrivateRedis::start();
    let address = server.address();
    let prefix = "kz-test:restart:";
    let plugin = plugin(&address, prefix).await;
    let sink = plugin
        .sink(RedisSinkOptions {
            stream: "s".into(),
            maxlen: None,
            payload_field: "payload".into(),
        })
        .unwrap();
    let mut options = source_options("s", "g", "c");
    options.claim_idle_ms = 1_000;
    options.batch = 5;
    let mut source: RedisEventSource = plugin.source(options).await.unwrap();
    let write = |range: std::ops::Range<u32>| {
        let events: Vec<Event> = range
            .map(|n| Event::new(n.to_string(), Payload::bytes(n.to_string(), "text/plain")))
            .collect();
        let sink = sink.clone();
        async move {
            // Writes fail (temporarily) while Redis is away.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                match sink.write(&events).await {
                    Ok(report) if report.is_complete() => return,
                    Ok(report) => panic!("{:?}", report.failed),
                    Err(e) => {
                        assert!(e.is_temporary(), "{e}");
                        assert!(tokio::time::Instant::now() < deadline, "no reconnect: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    };

    write(0..20).await;
    let mut acknowledged = BTreeSet::new();
    for _ in 0..10 {
        let delivery = next(&mut source).await;
        let n: u32 = body(&delivery.event).parse().unwrap();
        delivery.ack.ack().await.unwrap();
        acknowledged.insert(n);
    }
    // Two more are received, and their acknowledgement fails while Redis is away: they
    // stay pending and come back through the claim.
    let held = [next(&mut source).await, next(&mut source).await];
    server.stop();
    for delivery in held {
        let err = delivery.ack.ack().await.unwrap_err();
        assert!(err.is_temporary(), "{err}");
    }
    // The source keeps trying while Redis is away.
    let reading = async {
        let cancel = CancellationToken::new();
        let mut seen = BTreeSet::new();
        let mut seen_again_after_ack = 0;
        while seen.len() < 30 {
            let delivery = tokio::time::timeout(Duration::from_secs(30), source.receive(&cancel))
                .await
                .expect("entries stopped coming after the restart")
                .unwrap()
                .unwrap();
            let n: u32 = body(&delivery.event).parse().unwrap();
            if acknowledged.contains(&n) {
                seen_again_after_ack += 1;
            }
            seen.insert(n);
            if let Err(e) = delivery.ack.ack().await {
                assert!(e.is_temporary(), "{e}");
            }
        }
        (seen, seen_again_after_ack)
    };
    let restarting = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.run();
        write(20..40).await;
    };
    let ((seen, seen_again_after_ack), ()) = tokio::join!(reading, restarting);

    let expected: BTreeSet<u32> = (0..40).filter(|n| !acknowledged.contains(n)).collect();
    assert!(
        expected.is_subset(&seen),
        "missing {:?}",
        expected.difference(&seen).collect::<Vec<_>>()
    );
    assert_eq!(seen_again_after_ack, 0, "acknowledged entries came back");
}
