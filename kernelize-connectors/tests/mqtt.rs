//! The `mqtt-connector` plugin against the real Mosquitto broker on 127.0.0.1:1883, and
//! against private Mosquitto brokers this file starts (and restarts) on free ports.
//!
//! Run `scripts/services` first (it starts Mosquitto when it is not running), then
//! `cargo nextest run -p kernelize-connectors --features mqtt --test mqtt`.
//!
//! Every test works under topics and client ids of its own (a random suffix), and wipes
//! the persistent sessions it made.
#![cfg(feature = "mqtt")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kernelize_connectors::mqtt::{
    self, MqttConnector, MqttSettings, MqttSinkOptions, MqttSource, MqttSourceOptions, Qos,
    TopicFilter,
};
use kernelize_core::{
    Call, ErrorKind, Event, EventSource, Payload, Permission, PermissionGuard, Plugin,
    PluginConfig, PluginManager,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SERVER: &str = "127.0.0.1:1883";
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

// ---------------------------------------------------------------------------------------
// helpers

/// Shows the connector's logs (`RUST_LOG=kernelize_connectors=debug`) in a failing test's
/// output.
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kernelize_connectors=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Fails the test with a message saying how to start Mosquitto when it is not answering.
fn require_server() {
    init_logs();
    if std::net::TcpStream::connect_timeout(&SERVER.parse().unwrap(), Duration::from_secs(2))
        .is_err()
    {
        panic!(
            "Mosquitto is not answering on {SERVER}; these tests need the real broker: run `scripts/services` (it starts Mosquitto) and try again"
        );
    }
}

fn suffix() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

fn grant() -> PermissionGuard {
    PermissionGuard::new(
        mqtt::ID,
        vec![Permission::Network {
            host: "127.0.0.1".into(),
        }],
        None,
    )
}

fn settings(address: &str) -> MqttSettings {
    let mut settings = MqttSettings::new(&format!("mqtt://{address}")).unwrap();
    settings.connect_timeout = Duration::from_secs(2);
    settings.ack_timeout = Duration::from_secs(10);
    settings
}

async fn plugin(address: &str) -> MqttConnector {
    MqttConnector::connect(settings(address), &grant())
        .await
        .unwrap()
}

fn source_options(filter: &str, qos: Qos, client_id: Option<&str>) -> MqttSourceOptions {
    let mut options = MqttSourceOptions::new(vec![TopicFilter::new(filter, qos)]);
    options.client_id = client_id.map(str::to_string);
    options.clean_session = client_id.is_none();
    options
}

/// Runs an action with the test's network grant.
async fn exec(
    plugin: &MqttConnector,
    action: &str,
    config: Value,
    input: Payload,
) -> kernelize_core::Result<Value> {
    let mut call = Call::new(action, input).with_config(config);
    call.permissions = grant();
    plugin.execute(call).await?.into_json()
}

async fn publish(plugin: &MqttConnector, topic: &str, qos: u8, input: Payload) -> Value {
    exec(
        plugin,
        "publish",
        json!({"topic": topic, "qos": qos}),
        input,
    )
    .await
    .unwrap()
}

/// Receives one delivery within 10 s.
async fn next(source: &mut MqttSource) -> kernelize_core::Delivery {
    tokio::time::timeout(
        Duration::from_secs(10),
        source.receive(&CancellationToken::new()),
    )
    .await
    .expect("no message within 10s")
    .unwrap()
    .expect("the source ended")
}

fn body(event: &Event) -> String {
    match &event.payload {
        Payload::Bytes(blob) => String::from_utf8(blob.data.to_vec()).unwrap(),
        other => panic!("expected bytes, got {}", other.kind_name()),
    }
}

/// Ends the broker's session of `client_id` (a clean-session connect with that id).
async fn wipe_session(address: &str, client_id: &str, filter: &str) {
    let mut options = source_options(filter, Qos::AtMostOnce, Some(client_id));
    options.clean_session = true;
    MqttSource::open(&settings(address), options)
        .await
        .unwrap()
        .close()
        .await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Mosquitto of this test's own on a free port, persisting to a temporary directory.
struct PrivateBroker {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateBroker {
    fn start() -> Self {
        init_logs();
        assert!(
            Path::new(MOSQUITTO).exists(),
            "{MOSQUITTO} is missing; install the mosquitto package (scripts/services expects it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nuser root\nlog_dest none\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), config).unwrap();
        let mut broker = PrivateBroker {
            port,
            dir,
            child: None,
        };
        broker.run();
        broker
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
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
        panic!("the private mosquitto did not start on port {}", self.port);
    }

    /// SIGTERM (so that it saves its sessions), and waits for it to end.
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

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// publish and subscribe

#[tokio::test]
async fn published_messages_arrive_intact_at_qos_0_1_and_2() {
    require_server();
    let plugin = plugin(SERVER).await;
    for qos in [Qos::AtMostOnce, Qos::AtLeastOnce, Qos::ExactlyOnce] {
        let topic = format!("kz-test/{}/qos{qos}", suffix());
        let mut source = MqttSource::open(&settings(SERVER), source_options(&topic, qos, None))
            .await
            .unwrap();

        let out = publish(&plugin, &topic, qos.level(), Payload::Json(json!({"n": 1}))).await;
        publish(
            &plugin,
            &topic,
            qos.level(),
            Payload::bytes(vec![0u8, 159, 146, 150], "application/octet-stream"),
        )
        .await;

        assert_eq!(out, json!({"published": 1, "topic": topic}));
        let first = next(&mut source).await;
        assert_eq!(body(&first.event), r#"{"n":1}"#);
        assert_eq!(first.event.subject.as_deref(), Some(topic.as_str()));
        assert_eq!(first.event.headers["mqtt.qos"], qos.level().to_string());
        assert_eq!(first.event.attempt, 1);
        first.ack.ack().await.unwrap();
        let second = next(&mut source).await;
        let Payload::Bytes(blob) = &second.event.payload else {
            panic!("expected bytes")
        };
        assert_eq!(blob.data.as_ref(), &[0u8, 159, 146, 150]);
        assert_eq!(blob.media_type, "application/octet-stream");
        second.ack.ack().await.unwrap();
        source.close().await;
    }
}

#[tokio::test]
async fn the_subscribe_action_collects_json_and_binary_messages() {
    require_server();
    let plugin = plugin(SERVER).await;
    let topic = format!("kz-test/{}/retained", suffix());
    // A retained message is there before the subscription.
    exec(
        &plugin,
        "publish",
        json!({"topic": topic, "qos": 1, "retain": true}),
        Payload::Json(json!({"state": "on"})),
    )
    .await
    .unwrap();

    let subscribing = exec(
        &plugin,
        "subscribe",
        json!({"topics": [{"filter": topic, "qos": 1}], "max_messages": 2, "wait": "10s"}),
        Payload::Empty,
    );
    let publishing = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        publish(
            &plugin,
            &topic,
            1,
            Payload::bytes(vec![0xffu8, 0xfe], "application/octet-stream"),
        )
        .await;
    };
    let (collected, ()) = tokio::join!(subscribing, publishing);
    // Clear the retained message again.
    exec(
        &plugin,
        "publish",
        json!({"topic": topic, "qos": 1, "retain": true}),
        Payload::Empty,
    )
    .await
    .unwrap();

    let messages = collected.unwrap()["messages"].clone();
    assert_eq!(messages.as_array().unwrap().len(), 2, "{messages}");
    assert_eq!(messages[0]["payload"], json!({"state": "on"}));
    assert_eq!(messages[0]["retain"], json!(true));
    assert_eq!(messages[0]["base64"], json!(false));
    assert_eq!(messages[1]["payload"], json!("//4="));
    assert_eq!(messages[1]["base64"], json!(true));
    assert_eq!(messages[1]["qos"], json!(1));
}

#[tokio::test]
async fn records_are_published_one_message_per_row() {
    require_server();
    let plugin = plugin(SERVER).await;
    let topic = format!("kz-test/{}/rows", suffix());
    let mut source = MqttSource::open(
        &settings(SERVER),
        source_options(&topic, Qos::AtLeastOnce, None),
    )
    .await
    .unwrap();
    let records =
        kernelize_core::Records::from_json_rows(&[json!({"id": 1}), json!({"id": 2})]).unwrap();

    let out = publish(&plugin, &topic, 1, Payload::Records(records)).await;

    assert_eq!(out["published"], json!(2));
    assert_eq!(body(&next(&mut source).await.event), r#"{"id":1}"#);
    assert_eq!(body(&next(&mut source).await.event), r#"{"id":2}"#);
}

// ---------------------------------------------------------------------------------------
// persistent sessions and acknowledgements

#[tokio::test]
async fn a_persistent_session_delivers_what_was_published_while_the_source_was_away() {
    require_server();
    let plugin = plugin(SERVER).await;
    let id = suffix();
    let topic = format!("kz-test/{id}/away");
    let client_id = format!("kz-src-{id}");
    let options = source_options(&topic, Qos::AtLeastOnce, Some(&client_id));
    MqttSource::open(&settings(SERVER), options.clone())
        .await
        .unwrap()
        .close()
        .await;

    for n in 0..30 {
        publish(&plugin, &topic, 1, Payload::Json(json!({"n": n}))).await;
    }
    let mut source = MqttSource::open(&settings(SERVER), options).await.unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < 30 {
        let delivery = next(&mut source).await;
        let value: Value = serde_json::from_str(&body(&delivery.event)).unwrap();
        seen.insert(value["n"].as_u64().unwrap());
        delivery.ack.ack().await.unwrap();
    }
    source.close().await;
    wipe_session(SERVER, &client_id, &topic).await;

    assert_eq!(seen, (0..30).collect());
}

#[tokio::test]
async fn a_delivery_not_acknowledged_comes_again_after_a_reconnect() {
    require_server();
    let plugin = plugin(SERVER).await;
    let id = suffix();
    let topic = format!("kz-test/{id}/unacked");
    let client_id = format!("kz-src-{id}");
    let options = source_options(&topic, Qos::AtLeastOnce, Some(&client_id));
    let mut first = MqttSource::open(&settings(SERVER), options.clone())
        .await
        .unwrap();
    publish(&plugin, &topic, 1, Payload::Json(json!({"once": true}))).await;
    let unacked = next(&mut first).await;
    assert_eq!(unacked.event.attempt, 1);

    first.close().await;
    drop(unacked);
    let mut second = MqttSource::open(&settings(SERVER), options).await.unwrap();
    let again = next(&mut second).await;
    again.ack.ack().await.unwrap();
    second.close().await;
    wipe_session(SERVER, &client_id, &topic).await;

    assert_eq!(body(&again.event), r#"{"once":true}"#);
    assert!(again.event.attempt > 1, "attempt {}", again.event.attempt);
    assert_eq!(again.event.headers["mqtt.dup"], "true");
}

#[tokio::test]
async fn a_retried_delivery_is_handed_out_again_and_a_rejected_one_is_not() {
    require_server();
    let plugin = plugin(SERVER).await;
    let topic = format!("kz-test/{}/retry", suffix());
    let mut source = MqttSource::open(
        &settings(SERVER),
        source_options(&topic, Qos::AtLeastOnce, None),
    )
    .await
    .unwrap();
    publish(&plugin, &topic, 1, Payload::Json(json!(1))).await;
    publish(&plugin, &topic, 1, Payload::Json(json!(2))).await;

    let one = next(&mut source).await;
    one.ack
        .retry(Some(Duration::from_millis(200)))
        .await
        .unwrap();
    let two = next(&mut source).await;
    two.ack.reject().await.unwrap();
    let one_again = next(&mut source).await;
    one_again.ack.ack().await.unwrap();
    let nothing = tokio::time::timeout(
        Duration::from_millis(500),
        source.receive(&CancellationToken::new()),
    )
    .await;

    assert_eq!(body(&two.event), "2");
    assert_eq!(body(&one_again.event), "1");
    assert_eq!(one_again.event.attempt, 2);
    assert!(nothing.is_err(), "nothing else should come");
}

#[tokio::test]
async fn a_full_buffer_holds_messages_at_the_broker_and_keeps_the_connection() {
    require_server();
    let plugin = plugin(SERVER).await;
    let id = suffix();
    let topic = format!("kz-test/{id}/backpressure");
    let client_id = format!("kz-src-{id}");
    let mut options = source_options(&topic, Qos::AtLeastOnce, Some(&client_id));
    options.capacity = 5;
    let mut quick = settings(SERVER);
    quick.keep_alive = Duration::from_secs(1);
    let mut source = MqttSource::open(&quick, options).await.unwrap();
    for n in 0..200 {
        publish(&plugin, &topic, 1, Payload::Json(json!(n))).await;
    }

    // Four keep-alive periods without taking anything: a silent client would be dropped
    // after one and a half.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = source.buffered();
    let connected = source.is_connected();
    let mut seen = BTreeSet::new();
    let mut redelivered = 0;
    while seen.len() < 200 {
        let delivery = next(&mut source).await;
        if delivery.event.attempt > 1 {
            redelivered += 1;
        }
        seen.insert(body(&delivery.event).parse::<u32>().unwrap());
        delivery.ack.ack().await.unwrap();
    }
    source.close().await;
    wipe_session(SERVER, &client_id, &topic).await;

    assert!(held <= 5 + 64, "{held} messages buffered");
    assert!(connected);
    assert_eq!(redelivered, 0, "the connection was lost meanwhile");
    assert_eq!(seen, (0..200).collect());
}

// ---------------------------------------------------------------------------------------
// through the manager

#[tokio::test]
async fn three_hundred_events_round_trip_at_qos_1_through_the_manager() {
    require_server();
    let manager = PluginManager::builder().build();
    manager.install(mqtt::factory()).unwrap();
    manager.configure(
        mqtt::ID,
        PluginConfig::with_settings(json!({"url": format!("mqtt://{SERVER}")})).grant(
            Permission::Network {
                host: "127.0.0.1".into(),
            },
        ),
    );
    manager.activate(mqtt::ID).await.unwrap();
    let id = suffix();
    let topic = format!("kz-test/{id}/pipeline");
    let client_id = format!("kz-src-{id}");
    let mut source = manager
        .open_source(
            mqtt::ID,
            json!({"topics": [{"filter": topic, "qos": 1}], "client_id": client_id,
                   "content_type": "application/json"}),
        )
        .await
        .unwrap();
    let sink = manager
        .open_sink(mqtt::ID, json!({"topic": topic, "qos": 1}))
        .await
        .unwrap();

    for batch in 0..6 {
        let events: Vec<Event> = (0..50)
            .map(|i| {
                let n = batch * 50 + i;
                Event::new(n.to_string(), Payload::Json(json!({"n": n})))
            })
            .collect();
        let report = sink.write(&events).await.unwrap();
        assert!(report.is_complete(), "{:?}", report.failed);
    }
    let cancel = CancellationToken::new();
    let mut seen = BTreeSet::new();
    while seen.len() < 300 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), source.receive(&cancel))
            .await
            .expect("events stopped coming")
            .unwrap()
            .unwrap();
        let value = delivery.event.payload.clone().into_json().unwrap();
        seen.insert(value["n"].as_u64().unwrap());
        delivery.ack.ack().await.unwrap();
    }
    drop(source);
    let mut options = source_options(&topic, Qos::AtMostOnce, Some(&client_id));
    options.clean_session = true;
    manager
        .open_source(mqtt::ID, serde_json::to_value(options).unwrap())
        .await
        .unwrap();

    assert_eq!(seen, (0..300).collect());
}

#[tokio::test]
async fn a_sink_names_the_events_it_could_not_write() {
    require_server();
    let plugin = plugin(SERVER).await;
    let topic = format!("kz-test/{}/subjects", suffix());
    let mut source = MqttSource::open(
        &settings(SERVER),
        source_options(&topic, Qos::AtLeastOnce, None),
    )
    .await
    .unwrap();
    let sink = plugin
        .sink(MqttSinkOptions {
            topic: None,
            qos: Qos::AtLeastOnce,
            retain: false,
        })
        .unwrap();
    let events = vec![
        Event::new("a", Payload::Json(json!("a"))).with_subject(&topic),
        Event::new("b", Payload::Json(json!("b"))),
        Event::new("c", Payload::Json(json!("c"))).with_subject("kz-test/bad/+"),
    ];

    let report = kernelize_core::EventSink::write(&sink, &events)
        .await
        .unwrap();
    let only_bad = kernelize_core::EventSink::write(&sink, &events[1..2]).await;

    let failed: Vec<(usize, ErrorKind)> =
        report.failed.iter().map(|(i, e)| (*i, e.kind())).collect();
    assert_eq!(
        failed,
        vec![(1, ErrorKind::InvalidInput), (2, ErrorKind::InvalidInput)]
    );
    assert_eq!(body(&next(&mut source).await.event), r#""a""#);
    assert_eq!(only_bad.unwrap_err().kind(), ErrorKind::InvalidInput);
}

// ---------------------------------------------------------------------------------------
// broker restarts

#[tokio::test]
async fn the_source_and_publisher_reconnect_on_their_own_after_the_broker_restarts() {
    let mut broker = PrivateBroker::start();
    let address = broker.address();
    let plugin = plugin(&address).await;
    let publisher = plugin.publisher().unwrap().clone();
    let topic = format!("kz-test/{}/restart", suffix());
    let client_id = format!("kz-src-{}", suffix());
    let mut source = MqttSource::open(
        &settings(&address),
        source_options(&topic, Qos::AtLeastOnce, Some(&client_id)),
    )
    .await
    .unwrap();
    let cancel = CancellationToken::new();
    let mut seen = BTreeSet::new();

    for n in 0..10u32 {
        publisher
            .publish(&topic, Qos::AtLeastOnce, false, n.to_string().into())
            .await
            .unwrap();
    }
    // Take five, acknowledge them, then restart the broker under the source's feet.
    for _ in 0..5 {
        let delivery = next(&mut source).await;
        seen.insert(body(&delivery.event).parse::<u32>().unwrap());
        delivery.ack.ack().await.unwrap();
    }
    broker.stop();
    broker.run();
    // Publishes fail (temporarily) until the publisher has reconnected on its own.
    for n in 10..20u32 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match publisher
                .publish(&topic, Qos::AtLeastOnce, false, n.to_string().into())
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    assert!(e.is_temporary(), "{e}");
                    assert!(tokio::time::Instant::now() < deadline, "no reconnect: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    while seen.len() < 20 {
        let delivery = tokio::time::timeout(Duration::from_secs(30), source.receive(&cancel))
            .await
            .expect("messages stopped coming after the restart")
            .unwrap()
            .unwrap();
        seen.insert(body(&delivery.event).parse::<u32>().unwrap());
        // Acknowledgements of deliveries from before the restart may fail (temporarily):
        // the broker sends those again.
        if let Err(e) = delivery.ack.ack().await {
            assert!(e.is_temporary(), "{e}");
        }
    }

    assert_eq!(seen, (0..20).collect());
    assert!(source.is_connected());
}

// ---------------------------------------------------------------------------------------
// bad input

#[tokio::test]
async fn a_bad_url_is_a_config_error() {
    for bad in [
        "http://127.0.0.1:1883",
        "mqtt://",
        "mqtt://127.0.0.1:1883/path",
    ] {
        let err = MqttSettings::new(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{bad}");
    }
    let manager = PluginManager::builder().build();
    manager.install(mqtt::factory()).unwrap();
    manager.configure(
        mqtt::ID,
        PluginConfig::with_settings(json!({"url": "mqtt://user:hunter2-secret@:1883"})).grant(
            Permission::Network {
                host: "127.0.0.1".into(),
            },
        ),
    );

    let err = manager.activate(mqtt::ID).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}

#[tokio::test]
async fn an_unreachable_broker_is_a_temporary_error() {
    let address = format!("127.0.0.1:{}", free_port());

    let publisher = MqttConnector::connect(settings(&address), &grant())
        .await
        .unwrap_err();
    let source = MqttSource::open(
        &settings(&address),
        source_options("kz-test/unreachable", Qos::AtLeastOnce, None),
    )
    .await
    .unwrap_err();

    for err in [publisher, source] {
        assert!(err.is_temporary(), "{err}");
        assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
        assert!(err.message().contains(&address), "{err}");
    }
}

#[tokio::test]
async fn an_invalid_topic_filter_is_invalid_input() {
    require_server();
    let plugin = plugin(SERVER).await;

    let action = exec(
        &plugin,
        "subscribe",
        json!({"topics": [{"filter": "kz-test/#/x", "qos": 1}], "wait": "1s"}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    let Err(source) = plugin
        .open_source(json!({"topics": [{"filter": "kz-test/a+", "qos": 1}], "clean_session": true}))
        .await
    else {
        panic!("a bad filter was taken")
    };
    let topic = exec(
        &plugin,
        "publish",
        json!({"topic": "kz-test/+/x"}),
        Payload::Json(json!(1)),
    )
    .await
    .unwrap_err();

    for err in [&action, &source, &topic] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    assert!(action.message().contains("kz-test/#/x"), "{action}");
}

#[tokio::test]
async fn a_persistent_source_without_a_client_id_is_refused() {
    require_server();
    let plugin = plugin(SERVER).await;

    let Err(err) = plugin
        .open_source(json!({"topics": [{"filter": "kz-test/x", "qos": 1}]}))
        .await
    else {
        panic!("a persistent source without a client id was opened")
    };

    assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{err}");
    assert!(err.message().contains("client_id"), "{err}");
}

#[tokio::test]
async fn opening_without_a_network_grant_is_denied() {
    let other = PermissionGuard::new(
        mqtt::ID,
        vec![Permission::Network {
            host: "broker.example.com".into(),
        }],
        None,
    );

    let err = MqttConnector::connect(settings(SERVER), &other)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.message().contains("127.0.0.1"), "{err}");
}
