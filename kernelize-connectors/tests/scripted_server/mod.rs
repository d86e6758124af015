//! A real HTTP server on loopback that answers each request with the next step of a script
//! and records when each request arrived, with its method and headers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One scripted answer.
#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
    /// Wait this long before answering.
    pub(crate) delay: Duration,
}

impl Step {
    pub(crate) fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub(crate) fn json(status: u16, body: serde_json::Value) -> Self {
        Self::status(status)
            .header("content-type", "application/json")
            .body(&body.to_string())
    }

    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub(crate) fn body(mut self, body: &str) -> Self {
        self.body = body.to_string();
        self
    }

    pub(crate) fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub(crate) struct Arrival {
    pub(crate) at: Instant,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

#[derive(Default)]
struct Script {
    steps: VecDeque<Step>,
    arrivals: Vec<Arrival>,
}

/// The server; dropped, it stops.
pub(crate) struct ScriptedServer {
    pub(crate) addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedServer {
    /// Starts a server that answers with `steps` in order, then 200 `{"done": true}`.
    pub(crate) async fn start(steps: Vec<Step>) -> Self {
        let script = Arc::new(Mutex::new(Script {
            steps: steps.into(),
            arrivals: Vec::new(),
        }));
        let app = Router::new().fallback(answer).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, script, task }
    }

    /// `http://127.0.0.1:PORT/`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Every request seen so far.
    pub(crate) fn arrivals(&self) -> Vec<Arrival> {
        self.script.lock().unwrap().arrivals.clone()
    }
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let step = {
        let mut script = script.lock().unwrap();
        script.arrivals.push(Arrival {
            at: Instant::now(),
            method,
            uri,
            headers,
            body,
        });
        script.steps.pop_front()
    };
    let step = step.unwrap_or_else(|| Step::json(200, serde_json::json!({"done": true})));
    if !step.delay.is_zero() {
        tokio::time::sleep(step.delay).await;
    }
    let mut response = (
        StatusCode::from_u16(step.status).unwrap(),
        step.body.clone(),
    )
        .into_response();
    for (name, value) in &step.headers {
        response.headers_mut().insert(*name, value.parse().unwrap());
    }
    response
}
