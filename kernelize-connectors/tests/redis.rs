//! The `redis-connector` plugin against the real Redis server on 127.0.0.1:6379.
//!
//! Run `scripts/services` first (it starts Redis when it is not running), then
//! `cargo nextest run -p kernelize-connectors --features redis --test redis`.
//!
//! Every test works in a namespace of its own (`key_prefix` with a random suffix) and
//! deletes its keys at the end.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kernelize_connectors::redis::{
    self, Get, RedisCache, RedisConnector, RedisSettings, SetConfig, SetOptions,
};
use kernelize_core::config::MapSecretStore;
use kernelize_core::{
    Call, CallOptions, ErrorKind, Payload, Permission, PermissionGuard, Plugin, PluginConfig,
    PluginManager, Records,
};
use serde_json::{Value, json};

const SERVER: &str = "127.0.0.1:6379";

// ---------------------------------------------------------------------------------------
// helpers

/// Fails the test with a message saying how to start Redis when it is not answering.
fn require_server() {
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

/// A connected plugin in a namespace of its own, and a raw connection for checks.
struct Fixture {
    plugin: RedisConnector,
    prefix: String,
    raw: ::redis::aio::MultiplexedConnection,
    guard: PermissionGuard,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(adjust: impl FnOnce(&mut RedisSettings)) -> Self {
        require_server();
        let prefix = format!("kz-test:{}:", suffix());
        let mut settings = RedisSettings::new(&format!("redis://{SERVER}/0")).unwrap();
        settings.key_prefix = Some(prefix.clone());
        adjust(&mut settings);
        let guard = grant();
        let plugin = RedisConnector::connect(settings, &guard).await.unwrap();
        let raw = ::redis::Client::open(format!("redis://{SERVER}/0"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        Fixture {
            plugin,
            prefix,
            raw,
            guard,
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

    async fn raw_cmd(&self, cmd: &::redis::Cmd) -> ::redis::Value {
        let mut conn = self.raw.clone();
        cmd.query_async(&mut conn).await.unwrap()
    }

    /// Deletes every key of the namespace.
    async fn cleanup(self) {
        let mut conn = self.raw.clone();
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
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

fn ids(messages: &Value) -> Vec<String> {
    messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// cache

#[tokio::test]
async fn set_then_get_returns_the_stored_json() {
    let f = Fixture::new().await;
    let value = json!({"status": 200, "body": {"items": [1, 2, 3]}, "ok": true});

    let set = f.ok("set", json!({"key": "answer", "value": value})).await;
    let got = f.ok("get", json!({"key": "answer"})).await;

    assert_eq!(set, json!({"stored": true}));
    assert_eq!(got, value);
    f.cleanup().await;
}

#[tokio::test]
async fn get_of_a_missing_key_is_null() {
    let f = Fixture::new().await;
    assert_eq!(f.ok("get", json!({"key": "never-set"})).await, Value::Null);
    f.cleanup().await;
}

#[tokio::test]
async fn set_stores_the_input_when_value_is_absent() {
    let f = Fixture::new().await;
    let input = json!([{"id": 1}, {"id": 2}]);

    f.call(
        "set",
        json!({"key": "from-input"}),
        Payload::Json(input.clone()),
    )
    .await
    .unwrap();

    assert_eq!(f.ok("get", json!({"key": "from-input"})).await, input);
    f.cleanup().await;
}

#[tokio::test]
async fn set_without_value_or_input_is_refused() {
    let f = Fixture::new().await;
    let err = f
        .call("set", json!({"key": "nothing"}), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("nothing to cache"), "{err}");
    f.cleanup().await;
}

#[tokio::test]
async fn value_expires_after_its_ttl() {
    let f = Fixture::new().await;
    f.ok(
        "set",
        json!({"key": "short", "value": "soon gone", "ttl": "1s"}),
    )
    .await;
    let mut ttl = ::redis::cmd("PTTL");
    ttl.arg(format!("{}short", f.prefix));
    let ::redis::Value::Int(ms) = f.raw_cmd(&ttl).await else {
        panic!("PTTL answered no number")
    };
    assert!(ms > 0 && ms <= 1000, "PTTL {ms}");

    eventually("the value expired", || async {
        f.ok("get", json!({"key": "short"})).await.is_null()
    })
    .await;
    f.cleanup().await;
}

#[tokio::test]
async fn default_ttl_applies_when_set_names_none() {
    let f = Fixture::with(|s| s.default_ttl = Some(Duration::from_secs(100))).await;
    f.ok("set", json!({"key": "k", "value": 1})).await;
    f.ok("set", json!({"key": "own", "value": 1, "ttl": "1h"}))
        .await;

    let pttl = |key: &str| {
        let mut c = ::redis::cmd("PTTL");
        c.arg(format!("{}{key}", f.prefix));
        c
    };
    let ::redis::Value::Int(default) = f.raw_cmd(&pttl("k")).await else {
        panic!()
    };
    let ::redis::Value::Int(own) = f.raw_cmd(&pttl("own")).await else {
        panic!()
    };
    assert!(default > 0 && default <= 100_000, "PTTL {default}");
    assert!(own > 100_000, "PTTL {own}");
    f.cleanup().await;
}

#[tokio::test]
async fn only_if_absent_keeps_the_first_value() {
    let f = Fixture::new().await;
    let first = f
        .ok(
            "set",
            json!({"key": "once", "value": "first", "only_if_absent": true}),
        )
        .await;
    let second = f
        .ok(
            "set",
            json!({"key": "once", "value": "second", "only_if_absent": true}),
        )
        .await;

    assert_eq!(first, json!({"stored": true}));
    assert_eq!(second, json!({"stored": false}));
    assert_eq!(f.ok("get", json!({"key": "once"})).await, json!("first"));
    f.cleanup().await;
}

#[tokio::test]
async fn delete_counts_the_keys_that_existed() {
    let f = Fixture::new().await;
    f.ok("set", json!({"key": "a", "value": 1})).await;
    f.ok("set", json!({"key": "b", "value": 2})).await;

    let out = f.ok("delete", json!({"keys": ["a", "b", "missing"]})).await;

    assert_eq!(out, json!({"deleted": 2}));
    assert_eq!(f.ok("get", json!({"key": "a"})).await, Value::Null);
    f.cleanup().await;
}

#[tokio::test]
async fn key_prefix_puts_every_key_in_its_namespace() {
    let f = Fixture::new().await;
    f.ok("set", json!({"key": "user:7", "value": {"name": "Ada"}}))
        .await;

    let mut get = ::redis::cmd("GET");
    get.arg(format!("{}user:7", f.prefix));
    let raw = f.raw_cmd(&get).await;

    assert_eq!(
        raw,
        ::redis::Value::BulkString(br#"{"name":"Ada"}"#.to_vec()),
        "stored as JSON text under the prefixed key"
    );
    f.cleanup().await;
}

#[tokio::test]
async fn get_of_a_value_above_the_cap_is_a_clear_error() {
    let f = Fixture::with(|s| s.max_value_bytes = 64).await;
    let mut set = ::redis::cmd("SET");
    set.arg(format!("{}big", f.prefix)).arg("x".repeat(10_000));
    f.raw_cmd(&set).await;

    let err = f
        .call("get", json!({"key": "big"}), Payload::Empty)
        .await
        .unwrap_err();
    let too_big = f
        .call(
            "set",
            json!({"key": "big2", "value": "y".repeat(100)}),
            Payload::Empty,
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("10000 bytes"), "{err}");
    assert!(err.message().contains("max_value_bytes"), "{err}");
    assert_eq!(too_big.kind(), ErrorKind::InvalidInput, "{too_big}");
    f.cleanup().await;
}

#[tokio::test]
async fn get_of_text_that_is_not_json_is_corrupt_data() {
    let f = Fixture::new().await;
    let mut set = ::redis::cmd("SET");
    set.arg(format!("{}plain", f.prefix)).arg("not json");
    f.raw_cmd(&set).await;

    let err = f
        .call("get", json!({"key": "plain"}), Payload::Empty)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::CorruptData, "{err}");
    f.cleanup().await;
}

#[tokio::test]
async fn get_of_a_stream_key_names_the_wrong_type() {
    let f = Fixture::new().await;
    f.ok("publish", json!({"stream": "events", "fields": {"a": 1}}))
        .await;

    let err = f
        .call("get", json!({"key": "events"}), Payload::Empty)
        .await
        .unwrap_err();
    let ack_without_group = f
        .call(
            "ack",
            json!({"stream": "events", "group": "g", "ids": ["0-1"]}),
            Payload::Empty,
        )
        .await;

    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("holds a stream"), "{err}");
    // XACK of a group that does not exist acknowledges nothing.
    assert_eq!(ack_without_group.unwrap(), json!({"acknowledged": 0}));
    f.cleanup().await;
}

#[tokio::test]
async fn redis_cache_serves_rust_code_with_typed_values() {
    require_server();
    let prefix = format!("kz-test:{}:", suffix());
    let mut settings = RedisSettings::new(&format!("redis://{SERVER}/0")).unwrap();
    settings.key_prefix = Some(prefix.clone());
    let cache = RedisCache::connect(&settings).await.unwrap();

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Answer {
        status: u16,
        body: String,
    }
    let answer = Answer {
        status: 200,
        body: "hello".into(),
    };
    let stored = cache
        .set(
            "typed",
            &answer,
            SetOptions {
                ttl: Some(Duration::from_secs(60)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let back: Option<Answer> = cache.get("typed").await.unwrap();
    let missing: Option<Answer> = cache.get("absent").await.unwrap();
    let deleted = cache.delete(&["typed", "absent"]).await.unwrap();

    assert!(stored);
    assert_eq!(back, Some(answer));
    assert_eq!(missing, None);
    assert_eq!(deleted, 1);
}

// ---------------------------------------------------------------------------------------
// streams

#[tokio::test]
async fn publish_consume_ack_empties_the_pending_list() {
    let f = Fixture::new().await;
    let published = f
        .call(
            "publish",
            json!({"stream": "orders", "maxlen": 1000}),
            Payload::Json(json!([
                {"order": "o-1", "total": 12.5},
                {"order": "o-2", "total": 7},
                {"order": "o-3", "meta": {"vip": true}}
            ])),
        )
        .await
        .unwrap();
    assert_eq!(published["ids"].as_array().unwrap().len(), 3);

    let consumed = f
        .ok(
            "consume",
            json!({"stream": "orders", "group": "billing", "consumer": "c1", "count": 10, "create_group": true}),
        )
        .await;
    let messages = consumed["messages"].as_array().unwrap();
    assert_eq!(
        ids(&consumed),
        ids(
            &json!({"messages": published["ids"].as_array().unwrap().iter().map(|id| json!({"id": id})).collect::<Vec<_>>()})
        )
    );
    assert_eq!(
        messages[0]["fields"],
        json!({"order": "o-1", "total": "12.5"})
    );
    assert_eq!(messages[2]["fields"]["meta"], json!(r#"{"vip":true}"#));

    let pending = f
        .ok("pending", json!({"stream": "orders", "group": "billing"}))
        .await;
    assert_eq!(pending["count"], json!(3));

    // The output of `consume` is the input of `ack`.
    let acked = f
        .call(
            "ack",
            json!({"stream": "orders", "group": "billing"}),
            Payload::Json(consumed),
        )
        .await
        .unwrap();
    assert_eq!(acked, json!({"acknowledged": 3}));

    let pending = f
        .ok("pending", json!({"stream": "orders", "group": "billing"}))
        .await;
    let again = f
        .ok(
            "consume",
            json!({"stream": "orders", "group": "billing", "consumer": "c1"}),
        )
        .await;
    assert_eq!(pending["count"], json!(0));
    assert_eq!(again["messages"], json!([]));
    f.cleanup().await;
}

#[tokio::test]
async fn publish_takes_records_one_entry_per_row() {
    let f = Fixture::new().await;
    let records =
        Records::from_json_rows(&[json!({"sku": "a", "qty": 1}), json!({"sku": "b", "qty": 2})])
            .unwrap();

    let published = f
        .call(
            "publish",
            json!({"stream": "rows"}),
            Payload::Records(records),
        )
        .await
        .unwrap();
    let consumed = f
        .ok(
            "consume",
            json!({"stream": "rows", "group": "g", "consumer": "c", "create_group": true}),
        )
        .await;

    assert_eq!(published["ids"].as_array().unwrap().len(), 2);
    assert_eq!(
        consumed["messages"][1]["fields"],
        json!({"sku": "b", "qty": "2"})
    );
    f.cleanup().await;
}

#[tokio::test]
async fn unacknowledged_message_is_claimed_by_another_consumer() {
    let f = Fixture::new().await;
    f.ok(
        "publish",
        json!({"stream": "jobs", "fields": {"job": "resize"}}),
    )
    .await;
    let first = f
        .ok(
            "consume",
            json!({"stream": "jobs", "group": "workers", "consumer": "crashed", "create_group": true}),
        )
        .await;
    let id = ids(&first)[0].clone();
    // "crashed" never acknowledges; "rescuer" takes the message over once it is idle.

    let start = Instant::now();
    let claimed = loop {
        let claimed = f
            .ok(
                "claim_stuck",
                json!({"stream": "jobs", "group": "workers", "consumer": "rescuer", "min_idle_ms": 1, "count": 10}),
            )
            .await;
        if !claimed["messages"].as_array().unwrap().is_empty() {
            break claimed;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    assert_eq!(ids(&claimed), vec![id.clone()]);
    assert_eq!(claimed["messages"][0]["fields"], json!({"job": "resize"}));
    assert_eq!(claimed["next_cursor"], json!("0-0"));
    let detail = f
        .ok(
            "pending",
            json!({"stream": "jobs", "group": "workers", "count": 10}),
        )
        .await;
    assert_eq!(detail["messages"][0]["id"], json!(id));
    assert_eq!(detail["messages"][0]["consumer"], json!("rescuer"));
    assert_eq!(detail["messages"][0]["deliveries"], json!(2));

    let acked = f
        .call(
            "ack",
            json!({"stream": "jobs", "group": "workers"}),
            Payload::Json(claimed),
        )
        .await
        .unwrap();
    assert_eq!(acked, json!({"acknowledged": 1}));
    f.cleanup().await;
}

#[tokio::test]
async fn pending_counts_messages_per_consumer() {
    let f = Fixture::new().await;
    f.call(
        "publish",
        json!({"stream": "s"}),
        Payload::Json(json!([{"n": 1}, {"n": 2}, {"n": 3}])),
    )
    .await
    .unwrap();
    f.ok(
        "consume",
        json!({"stream": "s", "group": "g", "consumer": "a", "count": 2, "create_group": true}),
    )
    .await;
    f.ok(
        "consume",
        json!({"stream": "s", "group": "g", "consumer": "b", "count": 5}),
    )
    .await;

    let summary = f.ok("pending", json!({"stream": "s", "group": "g"})).await;
    let of_b = f
        .ok(
            "pending",
            json!({"stream": "s", "group": "g", "count": 10, "consumer": "b"}),
        )
        .await;

    assert_eq!(summary["count"], json!(3));
    assert_eq!(
        summary["consumers"],
        json!([{"name": "a", "pending": 2}, {"name": "b", "pending": 1}])
    );
    assert!(summary["smallest_id"].is_string());
    assert_eq!(of_b["messages"].as_array().unwrap().len(), 1);
    assert_eq!(of_b["messages"][0]["consumer"], json!("b"));
    f.cleanup().await;
}

#[tokio::test]
async fn consume_of_a_missing_group_says_to_create_it() {
    let f = Fixture::new().await;
    let err = f
        .call(
            "consume",
            json!({"stream": "none", "group": "g", "consumer": "c"}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("create_group"), "{err}");
    f.cleanup().await;
}

#[tokio::test]
async fn create_group_twice_keeps_the_group() {
    let f = Fixture::new().await;
    let cfg = json!({"stream": "twice", "group": "g", "consumer": "c", "create_group": true});
    f.ok("consume", cfg.clone()).await;
    f.ok("publish", json!({"stream": "twice", "fields": {"x": "1"}}))
        .await;

    let second = f.ok("consume", cfg).await;

    assert_eq!(second["messages"].as_array().unwrap().len(), 1);
    f.cleanup().await;
}

#[tokio::test]
async fn blocking_consume_returns_a_message_published_while_it_waits() {
    let f = Fixture::new().await;
    f.ok(
        "consume",
        json!({"stream": "wait", "group": "g", "consumer": "c", "create_group": true}),
    )
    .await;
    let waiting = f.call(
        "consume",
        json!({"stream": "wait", "group": "g", "consumer": "c", "block_ms": 10000}),
        Payload::Empty,
    );
    let publisher = async {
        // The blocking read runs on its own connection, so this publish is not held up.
        tokio::time::sleep(Duration::from_millis(100)).await;
        f.ok(
            "publish",
            json!({"stream": "wait", "fields": {"late": "yes"}}),
        )
        .await
    };

    let (consumed, _) = tokio::join!(waiting, publisher);

    assert_eq!(
        consumed.unwrap()["messages"][0]["fields"],
        json!({"late": "yes"})
    );
    f.cleanup().await;
}

#[tokio::test]
async fn counts_above_the_cap_are_refused() {
    let f = Fixture::new().await;
    let err = f
        .call(
            "consume",
            json!({"stream": "s", "group": "g", "consumer": "c", "count": 10001, "create_group": true}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
    let keys: Vec<String> = (0..10_001).map(|i| format!("k{i}")).collect();
    let del = f
        .call("delete", json!({"keys": keys}), Payload::Empty)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("10000"), "{err}");
    assert_eq!(del.kind(), ErrorKind::InvalidInput, "{del}");
    f.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// settings, secrets, permissions

#[tokio::test]
async fn password_of_an_unreachable_url_is_never_shown() {
    // Port 1 on loopback refuses connections.
    let settings = RedisSettings::new("redis://:hunter2-secret@127.0.0.1:1/0").unwrap();
    let debug = format!("{settings:?}");
    let err = RedisConnector::connect(settings, &grant())
        .await
        .unwrap_err();

    let text = format!("{err} {err:?} {}", err.to_json());
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(err.is_temporary(), "{err}");
}

#[tokio::test]
async fn password_of_a_malformed_url_is_never_shown() {
    for url in [
        "redis://:hunter2-secret@127.0.0.1:notaport/0",
        "redis://:hunter2-secret@127.0.0.1:6379/notadb",
        "http://:hunter2-secret@127.0.0.1:6379/0",
    ] {
        let err = RedisSettings::new(url).unwrap_err();
        let text = format!("{err} {err:?}");
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[tokio::test]
async fn a_wrong_password_is_a_config_error_without_the_password() {
    require_server();
    let settings = RedisSettings::new(&format!("redis://:hunter2-secret@{SERVER}/0")).unwrap();
    let err = RedisConnector::connect(settings, &grant())
        .await
        .unwrap_err();

    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{text}");
}

#[tokio::test]
async fn url_from_a_secret_reference_works_through_the_manager() {
    require_server();
    let manager = PluginManager::builder()
        .secrets(Arc::new(
            MapSecretStore::new().with("REDIS_URL", format!("redis://{SERVER}/0")),
        ))
        .build();
    manager.install(redis::factory()).unwrap();
    let prefix = format!("kz-test:{}:", suffix());
    manager.configure(
        redis::ID,
        PluginConfig::with_settings(json!({"url": "${secret:REDIS_URL}", "key_prefix": prefix}))
            .grant(Permission::Network {
                host: "127.0.0.1".into(),
            }),
    );
    manager.activate(redis::ID).await.unwrap();

    manager
        .call_typed::<redis::Set>(
            redis::ID,
            SetConfig {
                key: "via-manager".into(),
                value: Some(json!({"x": 1})),
                ttl: Some(Duration::from_secs(30)),
                only_if_absent: false,
            },
            Payload::Empty,
            CallOptions::default(),
        )
        .await
        .unwrap();
    let got = manager
        .call_typed::<Get>(
            redis::ID,
            redis::GetConfig {
                key: "via-manager".into(),
            },
            Payload::Empty,
            CallOptions::default(),
        )
        .await
        .unwrap();
    let deleted = manager
        .call(
            redis::ID,
            Call::new("delete", Payload::Empty).with_config(json!({"keys": ["via-manager"]})),
        )
        .await
        .unwrap()
        .into_json()
        .unwrap();

    assert_eq!(got, json!({"x": 1}));
    assert_eq!(deleted, json!({"deleted": 1}));
}

#[tokio::test]
async fn connecting_without_a_network_grant_is_denied() {
    let settings = RedisSettings::new(&format!("redis://{SERVER}/0")).unwrap();
    let other = PermissionGuard::new(
        redis::ID,
        vec![Permission::Network {
            host: "cache.example.com".into(),
        }],
        None,
    );

    let err = RedisConnector::connect(settings, &other).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.message().contains("127.0.0.1"), "{err}");
}

#[tokio::test]
async fn a_call_without_the_network_grant_is_denied() {
    let f = Fixture::new().await;
    // A call whose host grants do not cover the server (the plugin was connected with them).
    let call = Call::new("get", Payload::Empty).with_config(json!({"key": "k"}));

    let err = f.plugin.execute(call).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.message().contains("network"), "{err}");
    f.cleanup().await;
}

#[tokio::test]
async fn metadata_lists_every_action_with_its_config_schema() {
    let meta = RedisConnector::new().metadata();
    let names: Vec<&str> = meta.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ack",
            "claim_stuck",
            "consume",
            "delete",
            "get",
            "pending",
            "publish",
            "set"
        ]
    );
    assert_eq!(meta.id, "redis-connector");
    let consume = meta.action("consume").unwrap();
    assert!(consume.config["properties"]["block_ms"].is_object());
}
