//! `kernelize-fake VENDOR [--port N]`: runs one fake as a separate process (for end-to-end
//! tests of workflow files) and prints `listening on URL` once it accepts connections. It
//! serves the vendor's default config and stops on Ctrl-C or SIGTERM.
//!
//! Besides the vendor's API it answers `GET /_fake/journal` with every request it received,
//! as a JSON array of `{method, path, query, headers, body}` (body as text), so a test in
//! another process can check what a connector sent.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::routing::get;
use kernelize_fakes::Journal;
use serde_json::{Value, json};

/// The fakes this build has (its features), by name.
const VENDORS: &[&str] = &[
    #[cfg(feature = "snowflake")]
    "snowflake",
    #[cfg(feature = "databricks")]
    "databricks",
    #[cfg(feature = "bigquery")]
    "bigquery",
    #[cfg(feature = "tableau")]
    "tableau",
    #[cfg(feature = "powerbi")]
    "powerbi",
    #[cfg(feature = "looker")]
    "looker",
    #[cfg(feature = "zapier")]
    "zapier",
    #[cfg(feature = "power-automate")]
    "power-automate",
    #[cfg(feature = "airflow")]
    "airflow",
    #[cfg(feature = "wordpress")]
    "wordpress",
    #[cfg(feature = "drupal")]
    "drupal",
    #[cfg(feature = "shopify")]
    "shopify",
    #[cfg(feature = "slack")]
    "slack",
];

// Built without any fake, the match has only its last arm.
#[allow(unreachable_code)]
fn router_for(vendor: &str, journal: Journal) -> Option<Router> {
    let _ = &journal;
    Some(match vendor {
        #[cfg(feature = "snowflake")]
        "snowflake" => kernelize_fakes::snowflake::router(Default::default(), journal),
        #[cfg(feature = "databricks")]
        "databricks" => kernelize_fakes::databricks::router(Default::default(), journal),
        #[cfg(feature = "bigquery")]
        "bigquery" => kernelize_fakes::bigquery::router(Default::default(), journal),
        #[cfg(feature = "tableau")]
        "tableau" => kernelize_fakes::tableau::router(Default::default(), journal),
        #[cfg(feature = "powerbi")]
        "powerbi" => kernelize_fakes::powerbi::router(Default::default(), journal),
        #[cfg(feature = "looker")]
        "looker" => kernelize_fakes::looker::router(Default::default(), journal),
        #[cfg(feature = "zapier")]
        "zapier" => kernelize_fakes::zapier::router(Default::default(), journal),
        #[cfg(feature = "power-automate")]
        "power-automate" => kernelize_fakes::power_automate::router(Default::default(), journal),
        #[cfg(feature = "airflow")]
        "airflow" => kernelize_fakes::airflow::router(Default::default(), journal),
        #[cfg(feature = "wordpress")]
        "wordpress" => kernelize_fakes::wordpress::router(Default::default(), journal),
        #[cfg(feature = "drupal")]
        "drupal" => kernelize_fakes::drupal::router(Default::default(), journal),
        #[cfg(feature = "shopify")]
        "shopify" => kernelize_fakes::shopify::router(Default::default(), journal),
        #[cfg(feature = "slack")]
        "slack" => kernelize_fakes::slack::router(Default::default(), journal),
        _ => return None,
    })
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("kernelize-fake: {problem}");
    eprintln!(
        "usage: kernelize-fake VENDOR [--port N]; vendors in this build: {}",
        if VENDORS.is_empty() {
            "none (build with --features all)".to_string()
        } else {
            VENDORS.join(", ")
        }
    );
    ExitCode::from(2)
}

fn journal_json(journal: &Journal) -> Value {
    Value::Array(
        journal
            .all()
            .into_iter()
            .map(|s| {
                json!({
                    "method": s.method,
                    "path": s.path,
                    "query": s.query,
                    "headers": s.headers,
                    "body": String::from_utf8_lossy(&s.body),
                })
            })
            .collect(),
    )
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(vendor) = args.next() else {
        return usage("name a vendor");
    };
    let mut port = 0u16;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(p) => port = p,
                None => return usage("--port takes a port number"),
            },
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }
    let journal = Journal::new();
    let Some(router) = router_for(&vendor, journal.clone()) else {
        return usage(&format!("no fake named `{vendor}`"));
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kernelize-fake: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let seen = journal.clone();
        let router = router.route(
            "/_fake/journal",
            get(move || {
                let seen = seen.clone();
                async move { axum::Json(journal_json(&seen)) }
            }),
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let fake = match kernelize_fakes::serve_on(addr, router, journal).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("kernelize-fake: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("listening on {}", fake.url());
        wait_for_stop().await;
        drop(fake);
        ExitCode::SUCCESS
    })
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
