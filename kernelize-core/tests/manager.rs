//! The plugin manager: activation order, deactivation and cascade, updates with rollback,
//! limits, health, secrets redaction, permissions and audit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kernelize_core::audit::MemoryAuditSink;
use kernelize_core::config::MapSecretStore;
use kernelize_core::{
    Call, ErrorKind, HealthReport, HealthStatus, Limits, Outcome, Payload, Permission,
    PluginConfig, PluginManager, WhenBusy,
};
use serde_json::json;
use support::{Probe, entries, journal};

fn manager() -> (PluginManager, Arc<MemoryAuditSink>) {
    let audit = Arc::new(MemoryAuditSink::new());
    let secrets = MapSecretStore::new().with("api_token", "tok-9f8e7d6c5b4a");
    let m = PluginManager::builder()
        .audit(audit.clone())
        .secrets(Arc::new(secrets))
        .env(|name| (name == "REGION").then(|| "eu-west-1".to_string()))
        .build();
    (m, audit)
}

fn echo(text: &str) -> Call {
    Call::new("echo", Payload::Json(json!(text)))
}

/// A manager with one active `svc` plugin under `limits`.
async fn active_svc(limits: Limits) -> PluginManager {
    let (m, _) = manager();
    m.install(Probe::new("svc", "1.0.0", &[], &journal()).factory())
        .unwrap();
    m.configure("svc", PluginConfig::default().limits(limits));
    m.activate("svc").await.unwrap();
    m
}

/// Starts `n` calls of `svc`'s `sleep` action, each sleeping `ms` milliseconds.
fn spawn_sleepers(
    m: &PluginManager,
    n: usize,
    ms: u64,
) -> Vec<tokio::task::JoinHandle<kernelize_core::Result<Payload>>> {
    (0..n)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move {
                m.call(
                    "svc",
                    Call::new("sleep", Payload::Empty).with_config(json!({ "ms": ms })),
                )
                .await
            })
        })
        .collect()
}

#[tokio::test]
async fn activation_starts_dependencies_first_and_deactivation_stops_dependents_first() {
    let (m, audit) = manager();
    let j = journal();
    m.install(Probe::new("app", "1.0.0", &[("db", "^1"), ("cache", "^1")], &j).factory())
        .unwrap();
    m.install(Probe::new("db", "1.0.0", &[("net", "^1")], &j).factory())
        .unwrap();
    m.install(Probe::new("cache", "1.0.0", &[("net", "^1")], &j).factory())
        .unwrap();
    m.install(Probe::new("net", "1.0.0", &[], &j).factory())
        .unwrap();

    let started = m.activate("app").await.unwrap();
    assert_eq!(started, vec!["net", "cache", "db", "app"]);

    let stopped = m.deactivate_all().await;
    assert_eq!(stopped, vec!["app", "db", "cache", "net"]);
    assert_eq!(
        entries(&j),
        vec![
            "init net 1.0.0",
            "init cache 1.0.0",
            "init db 1.0.0",
            "init app 1.0.0",
            "shutdown app 1.0.0",
            "shutdown db 1.0.0",
            "shutdown cache 1.0.0",
            "shutdown net 1.0.0",
        ]
    );
    assert_eq!(audit.events_of("plugin.activate").len(), 4);
    assert_eq!(audit.events_of("plugin.deactivate").len(), 4);
    assert_eq!(audit.events_of("plugin.install").len(), 4);
}

#[tokio::test]
async fn deactivating_a_dependency_is_refused_unless_cascading() {
    let (m, _) = manager();
    let j = journal();
    m.install(Probe::new("app", "1.0.0", &[("db", "^1")], &j).factory())
        .unwrap();
    m.install(Probe::new("db", "1.0.0", &[], &j).factory())
        .unwrap();
    m.activate("app").await.unwrap();

    let err = m.deactivate("db", false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Dependency);
    assert!(err.to_string().contains("app"), "{err}");
    assert_eq!(m.active_ids(), vec!["app", "db"]);

    let stopped = m.deactivate("db", true).await.unwrap();
    assert_eq!(stopped, vec!["app", "db"]);
    assert!(m.active_ids().is_empty());
}

#[tokio::test]
async fn a_failed_activation_stops_what_it_started() {
    let (m, _) = manager();
    let j = journal();
    let mut broken = Probe::new("app", "1.0.0", &[("db", "^1")], &j);
    broken.fail_initialize = true;
    m.install(broken.factory()).unwrap();
    m.install(Probe::new("db", "1.0.0", &[], &j).factory())
        .unwrap();
    let err = m.activate("app").await.unwrap_err();
    assert!(err.to_string().contains("failed to initialize"), "{err}");
    assert!(m.active_ids().is_empty());
    assert_eq!(entries(&j), vec!["init db 1.0.0", "shutdown db 1.0.0"]);
}

#[tokio::test]
async fn activation_conflicting_with_active_plugins_names_the_chains() {
    let (m, _) = manager();
    let j = journal();
    m.install(Probe::new("a", "1.0.0", &[("c", "^1")], &j).factory())
        .unwrap();
    m.install(Probe::new("d", "1.0.0", &[("c", "^2")], &j).factory())
        .unwrap();
    m.install(Probe::new("c", "1.0.0", &[], &j).factory())
        .unwrap();
    m.install(Probe::new("c", "2.0.0", &[], &j).factory())
        .unwrap();
    m.activate("a").await.unwrap();
    let err = m.activate("d").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Dependency);
    let msg = err.to_string();
    assert!(
        msg.contains("a 1.0.0 -> c ^1") && msg.contains("d 1.0.0 -> c ^2"),
        "{msg}"
    );
}

#[tokio::test]
async fn update_replaces_a_healthy_new_version() {
    let (m, audit) = manager();
    let j = journal();
    m.install(Probe::new("svc", "1.0.0", &[], &j).factory())
        .unwrap();
    m.activate("svc").await.unwrap();
    m.update(Probe::new("svc", "1.1.0", &[], &j).factory())
        .await
        .unwrap();
    let out = m
        .call("svc", Call::new("whoami", Payload::Empty))
        .await
        .unwrap();
    assert_eq!(out.into_json().unwrap(), json!("1.1.0"));
    assert_eq!(
        entries(&j),
        vec!["init svc 1.0.0", "init svc 1.1.0", "shutdown svc 1.0.0"]
    );
    assert_eq!(
        audit.events_of("plugin.update")[0].outcome,
        Outcome::Success
    );
}

async fn assert_rolled_back(new: Probe, stage: &str) {
    let (m, audit) = manager();
    let j = journal();
    m.install(Probe::new("svc", "1.0.0", &[], &j).factory())
        .unwrap();
    m.activate("svc").await.unwrap();

    let err = m.update(new.factory()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("rolled back") && msg.contains("svc 1.0.0 is still serving"),
        "{msg}"
    );
    assert!(msg.contains(stage), "{msg}");

    // The old version kept serving, and the rejected version is no longer installed.
    let out = m
        .call("svc", Call::new("whoami", Payload::Empty))
        .await
        .unwrap();
    assert_eq!(out.into_json().unwrap(), json!("1.0.0"));
    assert_eq!(m.metadata("svc").unwrap().version.to_string(), "1.0.0");
    assert_eq!(m.installed()[0].versions.len(), 1);
    let rollbacks = audit.events_of("plugin.rollback");
    assert_eq!(rollbacks.len(), 1);
    assert_eq!(rollbacks[0].target, "svc 1.0.0");
    assert_eq!(
        audit.events_of("plugin.update")[0].outcome,
        Outcome::Failure
    );
}

#[tokio::test]
async fn update_that_fails_to_initialize_rolls_back_and_old_version_keeps_serving() {
    let mut new = Probe::new("svc", "2.0.0", &[], &journal());
    new.fail_initialize = true;
    assert_rolled_back(new, "failed to initialize").await;
}

#[tokio::test]
async fn update_that_fails_validation_rolls_back() {
    let mut new = Probe::new("svc", "2.0.0", &[], &journal());
    new.fail_validate = true;
    assert_rolled_back(new, "failed to validate").await;
}

#[tokio::test]
async fn update_that_is_unhealthy_at_first_check_rolls_back() {
    let new = Probe::new("svc", "2.0.0", &[], &journal());
    *new.health.lock().unwrap() = HealthReport::unhealthy("cannot reach the warehouse");
    assert_rolled_back(new, "cannot reach the warehouse").await;
}

#[tokio::test]
async fn update_keeps_serving_calls_that_were_running() {
    let (m, _) = manager();
    let j = journal();
    m.install(Probe::new("svc", "1.0.0", &[], &j).factory())
        .unwrap();
    m.activate("svc").await.unwrap();
    let m2 = m.clone();
    let slow = tokio::spawn(async move {
        m2.call(
            "svc",
            Call::new("sleep", Payload::Empty).with_config(json!({"ms": 200})),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    m.update(Probe::new("svc", "1.1.0", &[], &j).factory())
        .await
        .unwrap();
    // The call that started on 1.0.0 finished on it: shutdown waited for it.
    assert!(slow.await.unwrap().is_ok());
    assert_eq!(entries(&j).last().unwrap(), "shutdown svc 1.0.0");
}

#[tokio::test]
async fn eleventh_concurrent_call_is_refused_when_the_limit_says_reject() {
    let m = active_svc(Limits {
        max_concurrent: Some(10),
        when_busy: WhenBusy::Reject,
        ..Limits::default()
    })
    .await;
    let running = spawn_sleepers(&m, 10, 300);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = m.call("svc", echo("one too many")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.is_temporary());
    assert!(
        err.to_string().contains("limit of 10 concurrent calls"),
        "{err}"
    );
    for r in running {
        assert!(r.await.unwrap().is_ok());
    }
    // With the ten finished, a slot is free again.
    assert!(m.call("svc", echo("now")).await.is_ok());
}

#[tokio::test]
async fn eleventh_concurrent_call_waits_for_a_slot_when_the_limit_says_wait() {
    let m = active_svc(Limits {
        max_concurrent: Some(10),
        when_busy: WhenBusy::Wait,
        ..Limits::default()
    })
    .await;
    let running = spawn_sleepers(&m, 10, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let eleventh = m.call("svc", echo("patient")).await;
    assert!(eleventh.is_ok());
    // It could only have run once one of the ten had finished.
    assert!(running.iter().any(|h| h.is_finished()));
    for r in running {
        assert!(r.await.unwrap().is_ok());
    }
}

#[tokio::test]
async fn waiting_for_a_slot_gives_up_after_max_wait() {
    let m = active_svc(Limits {
        max_concurrent: Some(1),
        max_wait: Some(Duration::from_millis(50)),
        ..Limits::default()
    })
    .await;
    let m2 = m.clone();
    let first = tokio::spawn(async move {
        m2.call(
            "svc",
            Call::new("sleep", Payload::Empty).with_config(json!({"ms": 400})),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = m.call("svc", echo("late")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.to_string().contains("no free slot"), "{err}");
    assert!(first.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_slow_call_times_out_at_the_plugins_call_timeout() {
    let m = active_svc(Limits {
        call_timeout: Some(Duration::from_millis(50)),
        ..Limits::default()
    })
    .await;
    let err = m
        .call(
            "svc",
            Call::new("sleep", Payload::Empty).with_config(json!({"ms": 5000})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.context_value("plugin"), Some("svc"));
    assert_eq!(err.context_value("action"), Some("sleep"));
}

#[tokio::test]
async fn a_cancelled_call_stops_with_cancelled() {
    let (m, _) = manager();
    m.install(Probe::new("svc", "1.0.0", &[], &journal()).factory())
        .unwrap();
    m.activate("svc").await.unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let call = Call::new("sleep", Payload::Empty)
        .with_config(json!({"ms": 5000}))
        .with_cancel(token.clone());
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        token.cancel();
    });
    let err = m.call("svc", call).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    canceller.await.unwrap();
}

#[tokio::test]
async fn health_reports_counts_latency_and_the_worse_of_report_and_error_rate() {
    let (m, _) = manager();
    let probe = Probe::new("svc", "1.0.0", &[], &journal());
    let health = probe.health.clone();
    m.install(probe.factory()).unwrap();
    m.activate("svc").await.unwrap();

    for _ in 0..4 {
        m.call("svc", echo("ok")).await.unwrap();
    }
    let h = m.health("svc").await.unwrap();
    assert_eq!(h.status, HealthStatus::Healthy);
    assert_eq!((h.calls, h.errors), (4, 0));
    assert!(h.p50.is_some() && h.p99 >= h.p50);

    *health.lock().unwrap() = HealthReport::degraded("replica lag");
    let h = m.health("svc").await.unwrap();
    assert_eq!(h.status, HealthStatus::Degraded);
    assert_eq!(h.detail.as_deref(), Some("replica lag"));

    *health.lock().unwrap() = HealthReport::healthy();
    for _ in 0..6 {
        let _ = m.call("svc", Call::new("fail", Payload::Empty)).await;
    }
    let h = m.health("svc").await.unwrap();
    assert_eq!(h.status, HealthStatus::Degraded);
    assert_eq!((h.calls, h.errors), (10, 6));
    assert!(h.detail.unwrap().contains("6 of the last 10 calls failed"));
    assert!(h.last_error.unwrap().contains("asked to fail"));

    *health.lock().unwrap() = HealthReport::unhealthy("disk full");
    assert_eq!(
        m.health("svc").await.unwrap().status,
        HealthStatus::Unhealthy
    );
}

#[tokio::test]
async fn permission_outside_the_grant_is_denied_and_audited() {
    let (m, audit) = manager();
    m.install(Probe::new("svc", "1.0.0", &[], &journal()).factory())
        .unwrap();
    m.configure(
        "svc",
        PluginConfig::default().grant(Permission::FileRead {
            path: "/srv/data".into(),
        }),
    );
    m.activate("svc").await.unwrap();

    let ok = m
        .call(
            "svc",
            Call::new("read_file", Payload::Empty).with_config(json!({"path": "/srv/data/a.csv"})),
        )
        .await;
    assert!(ok.is_ok());
    let err = m
        .call(
            "svc",
            Call::new("read_file", Payload::Empty).with_config(json!({"path": "/etc/shadow"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("file-read:/etc/shadow"), "{err}");

    let grants = audit.events_of("permission.grant");
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].target, "svc: file-read:/srv/data");
    let denials = audit.events_of("permission.deny");
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0].outcome, Outcome::Denied);
    assert_eq!(denials[0].actor, "svc");
}

#[tokio::test]
async fn granting_a_permission_the_plugin_does_not_declare_is_a_config_error() {
    let (m, _) = manager();
    m.install(Probe::new("svc", "1.0.0", &[], &journal()).factory())
        .unwrap();
    m.configure(
        "svc",
        PluginConfig::default().grant(Permission::Network { host: "*".into() }),
    );
    let err = m.activate("svc").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    assert!(err.to_string().contains("network:*"), "{err}");
}

#[tokio::test]
async fn unknown_plugin_and_action_name_the_known_ones() {
    let (m, _) = manager();
    m.install(Probe::new("svc", "1.0.0", &[], &journal()).factory())
        .unwrap();
    let err = m.activate("nope").await.unwrap_err();
    assert!(err.to_string().contains("installed plugins: svc"), "{err}");
    m.activate("svc").await.unwrap();
    let err = m
        .call("svc", Call::new("dance", Payload::Empty))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().contains("known actions: echo, sleep"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_secret_reference_fails_activation_naming_it() {
    let (m, _) = manager();
    m.install(Probe::new("svc", "1.0.0", &[], &journal()).factory())
        .unwrap();
    m.configure(
        "svc",
        PluginConfig::with_settings(json!({"token": "${secret:nope}"})),
    );
    let err = m.activate("svc").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    assert!(err.to_string().contains("secret `nope`"), "{err}");
}

/// A tracing writer that keeps everything written to it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_logs_errors_or_debug_output() {
    const SECRET: &str = "tok-9f8e7d6c5b4a";
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (m, audit) = manager();
    let probe = Probe::new("svc", "1.0.0", &[], &journal());
    let seen = probe.seen_settings.clone();
    m.install(probe.factory()).unwrap();
    m.configure(
        "svc",
        PluginConfig::with_settings(
            json!({"token": "${secret:api_token}", "region": "${env:REGION}"}),
        ),
    );
    m.activate("svc").await.unwrap();
    let resolved = seen.lock().unwrap().clone().unwrap();
    // The plugin did get the real value...
    assert_eq!(resolved.settings()["token"], SECRET);
    assert_eq!(resolved.settings()["region"], "eu-west-1");
    // ...but its Debug output does not show it.
    let debug = format!("{resolved:?} {m:?}");
    assert!(!debug.contains(SECRET), "{debug}");

    // A plugin that puts the secret in an error message gets it redacted.
    let leaky = Probe::new("svc", "2.0.0", &[], &journal());
    m.configure(
        "svc",
        PluginConfig::with_settings(
            json!({"token": "${secret:api_token}", "echo_secret_in_error": true}),
        ),
    );
    let err = m.update(leaky.factory()).await.unwrap_err();
    let text = format!("{err} {err:?} {}", err.to_json());
    assert!(text.contains("server rejected token [REDACTED]"), "{text}");
    assert!(!text.contains(SECRET), "{text}");

    for _ in 0..3 {
        m.call("svc", echo("hi")).await.unwrap();
    }
    m.deactivate_all().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("initializing with settings"),
        "the test must see the plugin's log line"
    );
    assert!(!logs.contains(SECRET), "secret found in logs:\n{logs}");
    let events = serde_json::to_string(&audit.events()).unwrap();
    assert!(!events.contains(SECRET), "secret found in audit events");
}

#[tokio::test]
async fn typed_and_dynamic_calls_share_one_implementation() {
    use kernelize_core::builtins::log_notifier::{LogNotifier, SendMessage, SendMessageConfig};
    use kernelize_core::{CallOptions, PluginFactory};

    let (m, audit) = manager();
    m.install(PluginFactory::new(|| Box::new(LogNotifier::new())))
        .unwrap();
    m.activate("log-notifier").await.unwrap();

    let typed = m
        .call_typed::<SendMessage>(
            "log-notifier",
            SendMessageConfig {
                channel: Some("#ops".into()),
                ..Default::default()
            },
            Payload::Json(json!({"text": "load finished"})),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(typed.text, "load finished");
    assert_eq!(typed.channel.as_deref(), Some("#ops"));

    let dynamic = m
        .call(
            "log-notifier",
            Call::new("send_message", Payload::Empty)
                .with_config(json!({"channel": "#ops", "text": "second"})),
        )
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(dynamic["text"], "second");
    let sent = audit.events_of("notify.send");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].detail.as_deref(), Some("second"));

    let err = m
        .call(
            "log-notifier",
            Call::new("send_message", Payload::Empty).with_config(json!({"colour": "red"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("unknown field `colour`"), "{err}");
}
