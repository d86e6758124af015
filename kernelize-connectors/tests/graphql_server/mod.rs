//! A real graphql-transport-ws server on loopback: it accepts one WebSocket connection
//! (answering the subprotocol) and runs the test's script on it; the script's result comes
//! back through `finish`, so the test can assert on what the server saw.

// The handshake callback's error type is tungstenite's, large by design.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::result_large_err
)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderMap;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// How long a server step may wait for the client before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// One accepted connection.
pub(crate) struct Conn {
    pub(crate) ws: WebSocketStream<TcpStream>,
    /// The upgrade request's headers.
    pub(crate) headers: HeaderMap,
}

impl Conn {
    /// The next protocol message (a text frame parsed as JSON); `None` when the client
    /// closed. WebSocket-level pings and pongs are skipped.
    pub(crate) async fn recv(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the client sent nothing in time");
            match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("a JSON message"));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next protocol message, which must be there.
    pub(crate) async fn expect(&mut self, kind: &str) -> Value {
        let message = self
            .recv()
            .await
            .unwrap_or_else(|| panic!("the client closed instead of sending `{kind}`"));
        assert_eq!(message["type"], kind, "expected `{kind}`, got {message}");
        message
    }

    /// Sends a protocol message.
    pub(crate) async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// Sends raw text.
    pub(crate) async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Waits for `connection_init`, answers `connection_ack`, returns the init message.
    pub(crate) async fn accept_init(&mut self) -> Value {
        let init = self.expect("connection_init").await;
        self.send(serde_json::json!({"type": "connection_ack"}))
            .await;
        init
    }

    /// Reads messages until the client's close frame, returning the protocol messages that
    /// came before it and the close code.
    pub(crate) async fn until_closed(&mut self) -> (Vec<Value>, Option<u16>) {
        let mut seen = Vec::new();
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the client did not close in time");
            match message {
                None | Some(Err(_)) => return (seen, None),
                Some(Ok(Message::Close(frame))) => {
                    return (seen, frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(Message::Text(text))) => seen.push(serde_json::from_str(&text).unwrap()),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Closes with a protocol close code.
    pub(crate) async fn close(&mut self, code: u16, reason: &str) {
        let _ = self
            .ws
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }))
            .await;
        // Read until the client's answer, so that it gets the frame before the socket ends.
        let _ = tokio::time::timeout(PATIENCE, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// The server; its script runs on the first connection.
pub(crate) struct WsServer<T> {
    pub(crate) addr: SocketAddr,
    task: tokio::task::JoinHandle<T>,
}

impl<T: Send + 'static> WsServer<T> {
    /// Listens on loopback and runs `script` on the first connection.
    pub(crate) async fn start<F, Fut>(script: F) -> Self
    where
        F: FnOnce(Conn) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut headers = HeaderMap::new();
            let ws = tokio_tungstenite::accept_hdr_async(
                stream,
                |request: &Request, mut response: Response| {
                    headers = request.headers().clone();
                    let offered = request
                        .headers()
                        .get("sec-websocket-protocol")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if offered
                        .split(',')
                        .any(|p| p.trim() == "graphql-transport-ws")
                    {
                        response.headers_mut().insert(
                            "sec-websocket-protocol",
                            "graphql-transport-ws".parse().unwrap(),
                        );
                    }
                    Ok(response)
                },
            )
            .await
            .unwrap();
            script(Conn { ws, headers }).await
        });
        Self { addr, task }
    }

    /// The HTTP base URL of the same address (the client derives `ws://` from it).
    pub(crate) fn http_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Waits for the script to end and returns what it returned; a script that panicked
    /// (a failed assertion on what the client sent) fails the test here.
    pub(crate) async fn finish(self) -> T {
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the server script did not finish in time")
            .expect("the server script failed")
    }
}
