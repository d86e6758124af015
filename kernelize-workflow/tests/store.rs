//! One behavioural suite, run on every store: memory, SQLite and PostgreSQL.

#![cfg(all(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use kernelize_core::{ErrorKind, Payload, Records};
use kernelize_workflow::store::{
    Claim, INLINE_OUTPUT_LIMIT, LeaseState, NewRun, RunFilter, StepRecord, Store,
};
use kernelize_workflow::{RunStatus, StepStatus};
use serde_json::json;

const OWNER: &str = "owner-a";
const LEASE: Duration = Duration::from_secs(30);

fn new_run(id: &str, owner: Option<&str>) -> NewRun {
    NewRun {
        id: id.to_string(),
        workflow: "sync".to_string(),
        definition: json!({"workflows": {"sync": {"steps": []}}}),
        params: BTreeMap::from([("since".to_string(), json!("2026-01-01"))]),
        trigger: "manual".to_string(),
        owner: owner.map(|o| (o.to_string(), LEASE)),
    }
}

fn step(name: &str, position: u32, status: StepStatus, attempts: u32) -> StepRecord {
    StepRecord {
        name: name.to_string(),
        position,
        status,
        attempts,
        started_at: Some(1_000),
        finished_at: None,
        error: None,
        rows: None,
        bytes: None,
        has_output: false,
    }
}

async fn runs_are_created_claimed_and_finished(store: &dyn Store) {
    store.create_run(new_run("r1", None)).await.unwrap();
    store.create_run(new_run("r2", None)).await.unwrap();
    let r = store.run("r1").await.unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Queued);
    assert_eq!(r.params["since"], json!("2026-01-01"));
    assert_eq!(r.definition["workflows"]["sync"]["steps"], json!([]));
    assert!(r.lease_owner.is_none());
    // The same id twice is refused.
    assert!(store.create_run(new_run("r1", None)).await.is_err());

    // Oldest first; each claim takes a different run; then nothing is left.
    let a = store
        .claim(OWNER, LEASE, Claim::Next)
        .await
        .unwrap()
        .unwrap();
    let b = store
        .claim("owner-b", LEASE, Claim::Next)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.id.as_str(), b.id.as_str()), ("r1", "r2"));
    assert_eq!(a.status, RunStatus::Running);
    assert_eq!(a.lease_owner.as_deref(), Some(OWNER));
    assert_eq!(a.claims, 1);
    assert!(
        store
            .claim(OWNER, LEASE, Claim::Next)
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        store.renew("r1", OWNER, LEASE).await.unwrap(),
        LeaseState::Held
    );
    assert_eq!(
        store.renew("r1", "owner-b", LEASE).await.unwrap(),
        LeaseState::Lost
    );

    // Only the owner finishes it.
    let e = store
        .finish_run("r1", "owner-b", RunStatus::Failed, Some("x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidState);
    store
        .finish_run("r1", OWNER, RunStatus::Succeeded, None)
        .await
        .unwrap();
    let r = store.run("r1").await.unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert!(r.finished_at.is_some() && r.lease_owner.is_none());
    assert_eq!(
        store.renew("r1", OWNER, LEASE).await.unwrap(),
        LeaseState::Lost
    );
    let last = store.last_success("sync").await.unwrap().unwrap();
    assert_eq!(Some(last), r.started_at);
    assert!(store.last_success("other").await.unwrap().is_none());

    let listed = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 2);
    let only = store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Succeeded),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].id, "r1");
    assert_eq!(
        store
            .list_runs(&RunFilter {
                workflow: Some("nope".into()),
                ..RunFilter::default()
            })
            .await
            .unwrap()
            .len(),
        0
    );
}

async fn steps_keep_every_change_and_their_outputs(store: &dyn Store) {
    store.create_run(new_run("s1", Some(OWNER))).await.unwrap();
    let r = store.run("s1").await.unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Running);
    assert_eq!(r.lease_owner.as_deref(), Some(OWNER));

    store
        .record_step(
            "s1",
            OWNER,
            &step("extract", 0, StepStatus::Running, 1),
            None,
        )
        .await
        .unwrap();
    let mut retry = step("extract", 0, StepStatus::Retrying, 1);
    retry.error = Some("timeout".into());
    store.record_step("s1", OWNER, &retry, None).await.unwrap();
    store
        .record_step(
            "s1",
            OWNER,
            &step("extract", 0, StepStatus::Running, 2),
            None,
        )
        .await
        .unwrap();
    let records = Records::from_json_rows(&[json!({"id": 1, "name": "a"})]).unwrap();
    let mut done = step("extract", 0, StepStatus::Succeeded, 2);
    done.finished_at = Some(2_000);
    done.rows = Some(1);
    store
        .record_step("s1", OWNER, &done, Some(&Payload::Records(records)))
        .await
        .unwrap();
    // A big output is stored by reference and still reads back whole.
    let big = Payload::bytes(
        vec![7u8; INLINE_OUTPUT_LIMIT * 2],
        "application/octet-stream",
    );
    let mut load = step("load", 1, StepStatus::Succeeded, 1);
    load.bytes = Some((INLINE_OUTPUT_LIMIT * 2) as u64);
    store
        .record_step("s1", OWNER, &load, Some(&big))
        .await
        .unwrap();
    // A later change without an output keeps the stored one.
    let mut compensated = load.clone();
    compensated.status = StepStatus::Compensated;
    store
        .record_step("s1", OWNER, &compensated, None)
        .await
        .unwrap();

    let steps = store.steps("s1").await.unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].name, "extract");
    assert_eq!(steps[0].status, StepStatus::Succeeded);
    assert_eq!(steps[0].attempts, 2);
    assert_eq!(steps[0].rows, Some(1));
    assert!(steps[0].has_output);
    assert_eq!(steps[1].status, StepStatus::Compensated);
    assert!(steps[1].has_output);

    match store.output("s1", "extract").await.unwrap().unwrap() {
        Payload::Records(r) => {
            assert_eq!(
                r.to_json_rows().unwrap(),
                vec![json!({"id": 1, "name": "a"})]
            );
        }
        other => panic!("{other:?}"),
    }
    match store.output("s1", "load").await.unwrap().unwrap() {
        Payload::Bytes(b) => assert_eq!(b.data.len(), INLINE_OUTPUT_LIMIT * 2),
        other => panic!("{other:?}"),
    }
    assert!(store.output("s1", "nope").await.unwrap().is_none());

    let history: Vec<(Option<String>, String, Option<u32>)> = store
        .events("s1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.step, e.status, e.attempt))
        .collect();
    let x = |s: &str, st: &str, a: u32| (Some(s.to_string()), st.to_string(), Some(a));
    assert_eq!(
        history,
        vec![
            (None, "running".to_string(), None),
            x("extract", "running", 1),
            x("extract", "retrying", 1),
            x("extract", "running", 2),
            x("extract", "succeeded", 2),
            x("load", "succeeded", 1),
            x("load", "compensated", 1),
        ]
    );

    // Another owner cannot write this run's steps.
    let e = store
        .record_step(
            "s1",
            "intruder",
            &step("load", 1, StepStatus::Failed, 1),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidState);
    assert_eq!(
        store.steps("s1").await.unwrap()[1].status,
        StepStatus::Compensated
    );
}

async fn an_expired_lease_is_taken_over_and_fences_the_old_owner(store: &dyn Store) {
    store
        .create_run(NewRun {
            owner: Some((OWNER.to_string(), Duration::from_millis(200))),
            ..new_run("t1", None)
        })
        .await
        .unwrap();
    // While the lease holds, nobody else gets it, unless forced.
    assert!(
        store
            .claim("owner-b", LEASE, Claim::Next)
            .await
            .unwrap()
            .is_none()
    );
    let by_id = Claim::Run {
        id: "t1".into(),
        force: false,
    };
    assert!(
        store
            .claim("owner-b", LEASE, by_id.clone())
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = store
        .claim("owner-b", LEASE, Claim::Next)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, "t1");
    assert_eq!(taken.claims, 2);
    assert_eq!(taken.lease_owner.as_deref(), Some("owner-b"));
    // The old owner finds out at its next renewal, and its writes are refused.
    assert_eq!(
        store.renew("t1", OWNER, LEASE).await.unwrap(),
        LeaseState::Lost
    );
    assert!(
        store
            .record_step("t1", OWNER, &step("a", 0, StepStatus::Succeeded, 1), None)
            .await
            .is_err()
    );
    // Forcing takes a live lease.
    let forced = store
        .claim(
            OWNER,
            LEASE,
            Claim::Run {
                id: "t1".into(),
                force: true,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(forced.claims, 3);
    // Released runs go back to the queue.
    store.release("t1", OWNER).await.unwrap();
    assert_eq!(
        store.run("t1").await.unwrap().unwrap().status,
        RunStatus::Queued
    );
    assert!(
        store
            .claim("owner-c", LEASE, by_id)
            .await
            .unwrap()
            .is_some()
    );
}

async fn cancellation_and_active_runs(store: &dyn Store) {
    store.create_run(new_run("c1", None)).await.unwrap();
    store.create_run(new_run("c2", Some(OWNER))).await.unwrap();
    assert_eq!(store.active_runs("sync", "manual").await.unwrap(), 2);
    assert_eq!(store.active_runs("sync", "schedule:x").await.unwrap(), 0);
    assert!(store.request_cancel("c1").await.unwrap());
    assert_eq!(
        store.run("c1").await.unwrap().unwrap().status,
        RunStatus::Cancelled
    );
    assert!(
        store
            .claim("w", LEASE, Claim::Next)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.request_cancel("c2").await.unwrap());
    assert_eq!(
        store.renew("c2", OWNER, LEASE).await.unwrap(),
        LeaseState::CancelRequested
    );
    store
        .finish_run("c2", OWNER, RunStatus::Cancelled, Some("cancelled"))
        .await
        .unwrap();
    assert!(!store.request_cancel("c2").await.unwrap());
    assert_eq!(
        store.request_cancel("zz").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(store.active_runs("sync", "manual").await.unwrap(), 0);
}

async fn locks_and_marks(store: &dyn Store) {
    let ttl = Duration::from_millis(300);
    assert!(store.try_lock("scheduler", "a", ttl).await.unwrap());
    assert!(store.try_lock("scheduler", "a", ttl).await.unwrap());
    assert!(!store.try_lock("scheduler", "b", ttl).await.unwrap());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(store.try_lock("scheduler", "b", ttl).await.unwrap());
    assert!(!store.try_lock("scheduler", "a", ttl).await.unwrap());
    store.unlock("scheduler", "a").await.unwrap();
    assert!(!store.try_lock("scheduler", "a", ttl).await.unwrap());
    store.unlock("scheduler", "b").await.unwrap();
    assert!(store.try_lock("scheduler", "a", ttl).await.unwrap());

    assert!(store.mark("sync/0").await.unwrap().is_none());
    store.set_mark("sync/0", &json!({"last": 5})).await.unwrap();
    store.set_mark("sync/0", &json!({"last": 6})).await.unwrap();
    assert_eq!(
        store.mark("sync/0").await.unwrap(),
        Some(json!({"last": 6}))
    );
}

async fn dedupe_keys(store: &dyn Store) {
    use kernelize_workflow::store::KeyClaim;
    let lease = Duration::from_millis(300);
    let window = Duration::from_secs(60);
    assert_eq!(
        store.claim_key("p", "k1", "a", lease).await.unwrap(),
        KeyClaim::New
    );
    assert_eq!(
        store.claim_key("p", "k1", "b", lease).await.unwrap(),
        KeyClaim::Pending
    );
    // Only the holder settles its claim.
    store
        .settle_key("p", "k1", "b", Some(window))
        .await
        .unwrap();
    assert_eq!(
        store.claim_key("p", "k1", "b", lease).await.unwrap(),
        KeyClaim::Pending
    );
    store
        .settle_key("p", "k1", "a", Some(window))
        .await
        .unwrap();
    assert_eq!(
        store.claim_key("p", "k1", "b", lease).await.unwrap(),
        KeyClaim::Done
    );
    // Scopes are apart; a released claim is free again.
    assert_eq!(
        store.claim_key("q", "k1", "b", lease).await.unwrap(),
        KeyClaim::New
    );
    store.settle_key("q", "k1", "b", None).await.unwrap();
    assert_eq!(
        store.claim_key("q", "k1", "c", lease).await.unwrap(),
        KeyClaim::New
    );
    // A claim whose holder died lapses after its lease; a window ends.
    assert_eq!(
        store.claim_key("p", "k2", "dead", lease).await.unwrap(),
        KeyClaim::New
    );
    store.settle_key("p", "k3", "x", None).await.unwrap();
    assert_eq!(
        store.claim_key("p", "k3", "a", lease).await.unwrap(),
        KeyClaim::New
    );
    store
        .settle_key("p", "k3", "a", Some(Duration::from_millis(200)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        store.claim_key("p", "k2", "a", lease).await.unwrap(),
        KeyClaim::New
    );
    assert!(
        store.purge_keys("p").await.unwrap() >= 1,
        "k3's window ended"
    );
    assert_eq!(
        store.claim_key("p", "k3", "a", lease).await.unwrap(),
        KeyClaim::New
    );
    assert_eq!(
        store.claim_key("p", "k1", "z", lease).await.unwrap(),
        KeyClaim::Done
    );
}

macro_rules! suite {
    ($($kind:ident),*) => {$(
        mod $kind {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn runs() {
                let s = common::open(stringify!($kind)).await;
                runs_are_created_claimed_and_finished(&*s.store).await;
                s.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn steps() {
                let s = common::open(stringify!($kind)).await;
                steps_keep_every_change_and_their_outputs(&*s.store).await;
                s.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn leases() {
                let s = common::open(stringify!($kind)).await;
                an_expired_lease_is_taken_over_and_fences_the_old_owner(&*s.store).await;
                s.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cancellation() {
                let s = common::open(stringify!($kind)).await;
                cancellation_and_active_runs(&*s.store).await;
                s.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn locks() {
                let s = common::open(stringify!($kind)).await;
                locks_and_marks(&*s.store).await;
                s.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dedupe() {
                let s = common::open(stringify!($kind)).await;
                dedupe_keys(&*s.store).await;
                s.cleanup().await;
            }
        }
    )*};
}

suite!(memory, sqlite, postgres);

#[tokio::test]
async fn a_store_url_that_names_nothing_is_refused() {
    let e = kernelize_workflow::store::open("mysql://x")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a store URL"), "{e}");
    let e = kernelize_workflow::store::open(&format!("{}?schema=a;b", common::POSTGRES))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("schema"), "{e}");
}

#[tokio::test]
async fn migrations_run_once_when_a_store_is_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("nested/runs.db").display());
    let first = common::open_url(&url).await;
    first.create_run(new_run("m1", None)).await.unwrap();
    drop(first);
    let again = common::open_url(&url).await;
    assert_eq!(
        again.run("m1").await.unwrap().unwrap().status,
        RunStatus::Queued
    );
}
