//! A real WebSocket server on 127.0.0.1 (tokio-tungstenite) for the connector's tests: it
//! checks the handshake, records what arrives (shared across restarts on the same port)
//! and behaves as each test needs.

// The handshake callback's error type (an HTTP response) is tungstenite's choice.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::result_large_err
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// What the server does with a connection once the handshake is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Records data messages and sends each back.
    Echo,
    /// Records data messages.
    Record,
    /// Never reads the socket again: no pongs, no close handshake (a hung peer).
    Silent,
}

/// What the handshake must carry and offer.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// The `Authorization` value required; anything else gets a 401.
    pub authorization: Option<String>,
    /// Subprotocols the server supports; it picks the client's first supported offer.
    pub protocols: Vec<String>,
}

/// One handshake as the server saw it.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub authorization: Option<String>,
    pub offered: Option<String>,
    pub chosen: Option<String>,
}

/// Everything the server saw, shared by every incarnation of a test's server.
#[derive(Debug, Default)]
pub struct ServerLog {
    pub received: Mutex<Vec<Message>>,
    /// Which connection (by handshake order) each received message came on.
    pub arrived_on: Mutex<Vec<usize>>,
    pub handshakes: Mutex<Vec<Handshake>>,
    pub closes: Mutex<Vec<Option<u16>>>,
    pub refused: Mutex<u32>,
}

impl ServerLog {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Texts received so far (binary messages as `<n bytes>`).
    pub fn texts(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|m| match m {
                Message::Text(t) => t.to_string(),
                Message::Binary(b) => format!("<{} bytes>", b.len()),
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// Where (by arrival index) messages started coming on another connection.
    pub fn switches(&self) -> Vec<usize> {
        let on = self.arrived_on.lock().unwrap();
        (1..on.len()).filter(|&i| on[i] != on[i - 1]).collect()
    }

    pub fn connections(&self) -> usize {
        self.handshakes.lock().unwrap().len()
    }

    /// Polls `condition` every 10 ms until it holds; the caller bounds the wait.
    pub async fn until(&self, condition: impl Fn(&Self) -> bool) {
        while !condition(self) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A running server; [`WsServer::stop`] takes it down gracefully.
pub struct WsServer {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept: JoinHandle<Vec<JoinHandle<()>>>,
}

/// A free loopback port (bound, then released).
pub async fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

impl WsServer {
    /// A server on a new port; `behaviours[i]` for the i-th connection it accepts (the last
    /// one for every later connection).
    pub async fn start(expect: Expect, behaviours: Vec<Behaviour>, log: Arc<ServerLog>) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), expect, behaviours, log).await
    }

    /// A server on `addr` (SO_REUSEADDR, so a restarted server gets its port back).
    pub async fn start_on(
        addr: SocketAddr,
        expect: Expect,
        behaviours: Vec<Behaviour>,
        log: Arc<ServerLog>,
    ) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let listener = socket.listen(128).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, expect, behaviours, log, stop_rx));
        Self { addr, stop, accept }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/socket?token=query-secret", self.addr)
    }

    /// Stops accepting (the listener is dropped at once), then closes every connection
    /// with a Close frame (1001) and reads until the client's answer, so that whatever the
    /// client flushed before it saw the Close is recorded. Hung (`Silent`) connections are
    /// just dropped.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let connections = self.accept.await.unwrap();
        for connection in connections {
            let _ = tokio::time::timeout(Duration::from_secs(10), connection).await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    expect: Expect,
    behaviours: Vec<Behaviour>,
    log: Arc<ServerLog>,
    mut stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut connections = Vec::new();
    let mut accepted = 0usize;
    loop {
        tokio::select! {
            // Stop first: a client reconnecting at once must not be accepted by a server
            // on its way down.
            biased;
            _ = stop.changed() => return connections,
            incoming = listener.accept() => {
                let Ok((tcp, _)) = incoming else { continue };
                let behaviour = *behaviours
                    .get(accepted)
                    .or(behaviours.last())
                    .unwrap_or(&Behaviour::Echo);
                accepted += 1;
                connections.push(tokio::spawn(serve(
                    tcp,
                    expect.clone(),
                    behaviour,
                    log.clone(),
                    stop.clone(),
                )));
            }
        }
    }
}

async fn serve(
    tcp: TcpStream,
    expect: Expect,
    behaviour: Behaviour,
    log: Arc<ServerLog>,
    mut stop: watch::Receiver<bool>,
) {
    let handshake_log = log.clone();
    let connection_id = Arc::new(Mutex::new(usize::MAX));
    let id_slot = connection_id.clone();
    let check = move |request: &Request, mut response: Response| {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let authorization = header("authorization");
        let offered = header("sec-websocket-protocol");
        if expect.authorization.is_some() && authorization != expect.authorization {
            *handshake_log.refused.lock().unwrap() += 1;
            let mut refusal = ErrorResponse::new(Some("bad credentials".to_string()));
            *refusal.status_mut() = StatusCode::UNAUTHORIZED;
            return Err(refusal);
        }
        let chosen = offered.as_deref().and_then(|offered| {
            offered
                .split(',')
                .map(str::trim)
                .find(|p| expect.protocols.iter().any(|s| s == p))
                .map(str::to_string)
        });
        if let Some(chosen) = &chosen {
            response.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(chosen).unwrap(),
            );
        }
        let mut handshakes = handshake_log.handshakes.lock().unwrap();
        *connection_id.lock().unwrap() = handshakes.len();
        handshakes.push(Handshake {
            authorization,
            offered,
            chosen,
        });
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else {
        return;
    };
    let id = *id_slot.lock().unwrap();
    if behaviour == Behaviour::Silent {
        let _ = async { stop.wait_for(|stopped| *stopped).await.is_ok() }.await;
        return;
    }
    let mut closing = false;
    loop {
        let frame = tokio::select! {
            frame = ws.next() => frame,
            stopped = async { stop.wait_for(|stopped| *stopped).await.is_ok() }, if !closing => {
                let _ = stopped;
                closing = true;
                let _ = ws
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Away,
                        reason: "restarting".into(),
                    })))
                    .await;
                continue;
            }
        };
        match frame {
            Some(Ok(Message::Close(close))) => {
                log.closes
                    .lock()
                    .unwrap()
                    .push(close.map(|c| u16::from(c.code)));
                // tungstenite answers (or completes) the handshake on the next read.
                while let Some(Ok(_)) = ws.next().await {}
                return;
            }
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                log.received.lock().unwrap().push(message.clone());
                log.arrived_on.lock().unwrap().push(id);
                if behaviour == Behaviour::Echo && !closing {
                    // Refused once the client is closing; reading goes on to the end.
                    let _ = ws.send(message).await;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}
