//! The WebSocket connector against a real tokio-tungstenite server on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ws_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kernelize_connectors::ws::{
    ConnectionState, Message, OverflowPolicy, ReconnectPolicy, WsConfig, WsConnector,
};
use kernelize_core::ErrorKind;
use secrecy::SecretString;
use tokio::time::{Instant, timeout};
use ws_server::{Behaviour, Expect, ServerLog, WsServer, free_addr};

/// Every test is bounded: a bug fails it instead of hanging it.
const BOUND: Duration = Duration::from_secs(30);

/// Settings for loopback tests: quick reconnects, no heartbeat unless a test wants one.
fn config(url: &str) -> WsConfig {
    let mut config = WsConfig::new(url);
    config.heartbeat_interval = None;
    config.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..ReconnectPolicy::default()
    };
    config.connect_timeout = Duration::from_secs(5);
    config
}

fn texts(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.as_text().unwrap_or("<binary>").to_string())
        .collect()
}

#[tokio::test]
async fn negotiates_a_subprotocol_and_sends_the_auth_header_without_showing_it() {
    timeout(BOUND, async {
        // Given a server that wants a bearer token and speaks kz.v2 only
        let log = ServerLog::new();
        let server = WsServer::start(
            Expect {
                authorization: Some("Bearer s3cr3t-t0ken".into()),
                protocols: vec!["kz.v2".into()],
            },
            vec![Behaviour::Echo],
            log.clone(),
        )
        .await;
        let mut settings = config(&server.url());
        settings.subprotocols = vec!["kz.v3".into(), "kz.v2".into()];

        // When the connector offers kz.v3 then kz.v2 with the token as a secret
        let builder = WsConnector::builder(settings.clone())
            .bearer_auth(SecretString::from("s3cr3t-t0ken"))
            .header("x-client", "kernelize-tests");
        let builder_shown = format!("{builder:?}");
        let ws = builder.connect().await.unwrap();

        // Then the server got the token and the offer, and chose kz.v2
        assert_eq!(ws.protocol().as_deref(), Some("kz.v2"));
        assert!(matches!(
            ws.state(),
            ConnectionState::Connected { protocol: Some(ref p) } if p == "kz.v2"
        ));
        let handshakes = log.handshakes.lock().unwrap().clone();
        assert_eq!(handshakes.len(), 1);
        assert_eq!(
            handshakes[0].authorization.as_deref(),
            Some("Bearer s3cr3t-t0ken")
        );
        assert_eq!(handshakes[0].offered.as_deref(), Some("kz.v3, kz.v2"));

        // And neither the secret nor the query string shows in Debug output
        for shown in [builder_shown, format!("{settings:?}"), format!("{ws:?}")] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(!shown.contains("query-secret"), "{shown}");
        }
        assert!(!ws.endpoint().contains("query-secret"));
        ws.close().await.unwrap();
        server.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_refused_token_fails_connect_without_quoting_it() {
    timeout(BOUND, async {
        let log = ServerLog::new();
        let server = WsServer::start(
            Expect {
                authorization: Some("Bearer right".into()),
                ..Expect::default()
            },
            vec![Behaviour::Echo],
            log.clone(),
        )
        .await;

        let refused = WsConnector::builder(config(&server.url()))
            .bearer_auth(SecretString::from("wr0ng-t0ken"))
            .connect()
            .await
            .unwrap_err();

        assert_eq!(refused.kind(), ErrorKind::PermissionDenied);
        assert_eq!(refused.status(), Some(401));
        let shown = format!("{refused} {refused:?} {}", refused.chain().join(" "));
        assert!(!shown.contains("wr0ng"), "{shown}");
        assert!(!shown.contains("query-secret"), "{shown}");
        assert_eq!(*log.refused.lock().unwrap(), 1);
        server.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn echoes_text_and_binary_through_the_receive_stream() {
    timeout(BOUND, async {
        let log = ServerLog::new();
        let server = WsServer::start(Expect::default(), vec![Behaviour::Echo], log.clone()).await;
        let mut ws = WsConnector::connect(config(&server.url())).await.unwrap();

        ws.send("hello").await.unwrap();
        ws.send(vec![0u8, 1, 2, 255]).await.unwrap();

        assert_eq!(ws.next().await, Some(Message::text("hello")));
        assert_eq!(ws.next().await, Some(Message::binary(vec![0u8, 1, 2, 255])));
        let stats = ws.stats();
        assert_eq!((stats.sent, stats.received, stats.queued), (2, 2, 0));
        ws.close().await.unwrap();
        server.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_server_restart_mid_stream_loses_and_repeats_nothing() {
    const N: usize = 400;
    timeout(BOUND, async {
        // Given a recording server and a client sending 0..N from another task
        let log = ServerLog::new();
        let server = WsServer::start(Expect::default(), vec![Behaviour::Record], log.clone()).await;
        let addr = server.addr;
        let mut settings = config(&server.url());
        settings.queue_capacity = N;
        let ws = WsConnector::connect(settings).await.unwrap();
        let sender = ws.sender();
        let progress = Arc::new(AtomicUsize::new(0));
        let producer = tokio::spawn({
            let progress = progress.clone();
            async move {
                for i in 0..N {
                    sender.send(i.to_string()).await.unwrap();
                    progress.store(i + 1, Ordering::SeqCst);
                    if i % 4 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        });

        // When the server goes away after a quarter has arrived, while the client sends
        log.until(|l| l.received.lock().unwrap().len() >= N / 4)
            .await;
        server.stop().await;
        let mut state = ws.watch_state();
        state.wait_for(|s| !s.is_connected()).await.unwrap();
        // ... messages keep being queued while it is down ...
        let down_at = progress.load(Ordering::SeqCst);
        while progress.load(Ordering::SeqCst) < (down_at + 50).min(N) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(ws.stats().queued > 0, "{:?}", ws.stats());
        assert!(!ws.state().is_connected());
        // ... and it comes back on the same port
        let server = WsServer::start_on(
            addr,
            Expect::default(),
            vec![Behaviour::Record],
            log.clone(),
        )
        .await;
        producer.await.unwrap();

        // Then the server (both lives of it) got every message once, in order
        let _ = timeout(
            Duration::from_secs(10),
            log.until(|l| l.received.lock().unwrap().len() >= N),
        )
        .await;
        let expected: Vec<String> = (0..N).map(|i| i.to_string()).collect();
        assert_eq!(
            log.texts(),
            expected,
            "connection changed at arrivals {:?}; client {:?}",
            log.switches(),
            ws.stats()
        );
        ws.close().await.unwrap();
        assert_eq!(log.connections(), 2);
        let stats = ws.stats();
        assert_eq!(stats.reconnects, 1);
        assert_eq!((stats.sent, stats.dropped), (N as u64, 0));
        server.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped_and_reconnected() {
    timeout(BOUND, async {
        // Given a server whose first connection hangs (never reads, never answers pings)
        let log = ServerLog::new();
        let server = WsServer::start(
            Expect::default(),
            vec![Behaviour::Silent, Behaviour::Echo],
            log.clone(),
        )
        .await;
        let interval = Duration::from_millis(300);
        let pong_timeout = Duration::from_secs(1);
        let mut settings = config(&server.url());
        settings.heartbeat_interval = Some(interval);
        settings.pong_timeout = pong_timeout;

        // When the client connects to it
        let mut ws = WsConnector::connect(settings).await.unwrap();
        let connected_at = Instant::now();

        // Then it gives up on the hung connection within interval + timeout (loosely)
        // and connects again
        log.until(|l| l.connections() >= 2).await;
        let detected_after = connected_at.elapsed();
        assert!(
            detected_after >= pong_timeout,
            "dropped after {detected_after:?}, before any ping could time out"
        );
        assert!(
            detected_after < interval + pong_timeout + Duration::from_secs(4),
            "took {detected_after:?}"
        );
        let mut state = ws.watch_state();
        state.wait_for(ConnectionState::is_connected).await.unwrap();
        assert_eq!(ws.stats().dead_peers, 1);
        assert_eq!(ws.stats().reconnects, 1);

        // And the healthy connection answers pings, so it is kept over several heartbeats
        ws.send("still there?").await.unwrap();
        assert_eq!(ws.next().await, Some(Message::text("still there?")));
        tokio::time::sleep(interval * 6).await;
        assert_eq!(ws.stats().dead_peers, 1, "{:?}", ws.stats());
        assert_eq!(log.connections(), 2);
        ws.close().await.unwrap();
        server.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_message_cut_off_by_a_dead_connection_goes_first_on_the_next_one() {
    timeout(BOUND, async {
        // Given a first connection that hangs, so a message far larger than the socket
        // buffers can never finish its write
        let log = ServerLog::new();
        let server = WsServer::start(
            Expect::default(),
            vec![Behaviour::Silent, Behaviour::Record],
            log.clone(),
        )
        .await;
        let mut settings = config(&server.url());
        settings.heartbeat_interval = Some(Duration::from_millis(300));
        settings.pong_timeout = Duration::from_secs(1);
        let big = vec![7u8; 12 << 20];
        let ws = WsConnector::connect(settings).await.unwrap();

        // When it is sent, followed by a small one
        ws.send(big.clone()).await.unwrap();
        ws.send("after").await.unwrap();

        // Then the stalled write is taken for a dead peer, and on the next connection the
        // big message goes first, whole, then the small one
        log.until(|l| l.received.lock().unwrap().len() >= 2).await;
        assert_eq!(
            log.texts(),
            [format!("<{} bytes>", big.len()), "after".into()]
        );
        let stats = ws.stats();
        assert_eq!((stats.dead_peers, stats.reconnects, stats.sent), (1, 1, 2));
        ws.close().await.unwrap();
        server.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn reject_fails_a_send_to_a_full_queue_while_disconnected() {
    timeout(BOUND, async {
        // Given a client with room for 3 and nobody listening
        let addr = free_addr().await;
        let mut settings = config(&format!("ws://{addr}/"));
        settings.queue_capacity = 3;
        settings.overflow = OverflowPolicy::Reject;
        let ws = WsConnector::builder(settings).start().unwrap();

        // When a fourth message is sent
        for i in 0..3 {
            ws.send(i.to_string()).await.unwrap();
        }
        let refused = ws.send("3").await.unwrap_err();

        // Then it is refused, naming the capacity, and the queue is as it was
        assert_eq!(refused.kind(), ErrorKind::RateLimited);
        assert!(refused.to_string().contains("capacity 3"), "{refused}");
        assert!(ws.try_send("3").is_err());
        let stats = ws.stats();
        assert_eq!((stats.queued, stats.dropped, stats.sent), (3, 0, 0));
        assert!(!stats.connected);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_messages_and_delivers_them_after_connecting() {
    timeout(BOUND, async {
        // Given a client with room for 3 and nobody listening yet
        let addr = free_addr().await;
        let mut settings = config(&format!("ws://{addr}/"));
        settings.queue_capacity = 3;
        settings.overflow = OverflowPolicy::DropOldest;
        let ws = WsConnector::builder(settings).start().unwrap();

        // When ten messages are sent before the server starts
        for i in 0..10 {
            ws.send(i.to_string()).await.unwrap();
        }
        let stats = ws.stats();
        assert_eq!((stats.queued, stats.dropped), (3, 7));
        let log = ServerLog::new();
        let server = WsServer::start_on(
            addr,
            Expect::default(),
            vec![Behaviour::Record],
            log.clone(),
        )
        .await;

        // Then the newest three arrive, in order, and nothing else
        log.until(|l| l.received.lock().unwrap().len() >= 3).await;
        ws.close().await.unwrap();
        assert_eq!(log.texts(), ["7", "8", "9"]);
        assert_eq!(ws.stats().sent, 3);
        server.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn wait_holds_a_sender_until_there_is_room() {
    timeout(BOUND, async {
        // Given a full queue of 2 and nobody listening
        let addr = free_addr().await;
        let mut settings = config(&format!("ws://{addr}/"));
        settings.queue_capacity = 2;
        settings.overflow = OverflowPolicy::Wait;
        let ws = WsConnector::builder(settings).start().unwrap();
        ws.send("0").await.unwrap();
        ws.send("1").await.unwrap();

        // When a third message is sent, it waits ...
        let sender = ws.sender();
        let third = tokio::spawn(async move { sender.send("2").await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!third.is_finished(), "a send to a full queue did not wait");
        assert!(ws.try_send("x").is_err());

        // ... until the server is up and the queue drains
        let log = ServerLog::new();
        let server = WsServer::start_on(
            addr,
            Expect::default(),
            vec![Behaviour::Record],
            log.clone(),
        )
        .await;
        third.await.unwrap().unwrap();
        log.until(|l| l.received.lock().unwrap().len() >= 3).await;
        ws.close().await.unwrap();
        assert_eq!(log.texts(), ["0", "1", "2"]);
        server.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn close_flushes_sends_a_close_frame_and_ends_the_stream() {
    timeout(BOUND, async {
        let log = ServerLog::new();
        let server = WsServer::start(Expect::default(), vec![Behaviour::Echo], log.clone()).await;
        let mut ws = WsConnector::connect(config(&server.url())).await.unwrap();
        for text in ["a", "b", "c"] {
            ws.send(text).await.unwrap();
        }

        ws.close().await.unwrap();

        // The server got everything, then a Close with 1000
        assert_eq!(log.texts(), ["a", "b", "c"]);
        assert_eq!(*log.closes.lock().unwrap(), vec![Some(1000)]);
        // The stream gives what was echoed before the close, then ends
        let rest: Vec<Message> = ws.by_ref().collect().await;
        assert_eq!(texts(&rest), ["a", "b", "c"]);
        assert!(matches!(
            ws.state(),
            ConnectionState::Closed { error: None }
        ));
        let refused = ws.send("late").await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidState);
        server.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn close_flushes_messages_queued_while_disconnected() {
    timeout(BOUND, async {
        let addr = free_addr().await;
        let ws = WsConnector::builder(config(&format!("ws://{addr}/")))
            .start()
            .unwrap();
        for i in 0..5 {
            ws.send(i.to_string()).await.unwrap();
        }
        let log = ServerLog::new();
        let server = WsServer::start_on(
            addr,
            Expect::default(),
            vec![Behaviour::Record],
            log.clone(),
        )
        .await;

        ws.close().await.unwrap();

        assert_eq!(log.texts(), ["0", "1", "2", "3", "4"]);
        assert_eq!(*log.closes.lock().unwrap(), vec![Some(1000)]);
        server.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn close_reports_messages_it_could_not_flush() {
    timeout(BOUND, async {
        let addr = free_addr().await;
        let mut settings = config(&format!("ws://{addr}/"));
        settings.close_timeout = Duration::from_millis(300);
        let ws = WsConnector::builder(settings).start().unwrap();
        ws.send("never delivered").await.unwrap();

        let outcome = ws.close().await.unwrap_err();

        assert_eq!(outcome.kind(), ErrorKind::Timeout);
        assert!(
            outcome.to_string().contains("1 queued messages unsent"),
            "{outcome}"
        );
        assert_eq!(ws.stats().dropped, 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn dropping_the_connector_sends_going_away_and_stops_reconnecting() {
    timeout(BOUND, async {
        let log = ServerLog::new();
        let server = WsServer::start(Expect::default(), vec![Behaviour::Echo], log.clone()).await;
        let ws = WsConnector::connect(config(&server.url())).await.unwrap();

        drop(ws);

        log.until(|l| !l.closes.lock().unwrap().is_empty()).await;
        assert_eq!(*log.closes.lock().unwrap(), vec![Some(1001)]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(log.connections(), 1, "the dropped connector reconnected");
        server.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn gives_up_after_max_attempts_and_ends_the_stream() {
    timeout(BOUND, async {
        let addr = free_addr().await;
        let mut settings = config(&format!("ws://{addr}/"));
        settings.reconnect.max_attempts = Some(3);
        let mut ws = WsConnector::builder(settings).start().unwrap();

        assert_eq!(ws.next().await, None);

        let ConnectionState::Closed { error: Some(error) } = ws.state() else {
            panic!("not closed with an error: {:?}", ws.state());
        };
        assert!(error.to_string().contains("gave up after 3"), "{error}");
        let refused = ws.send("too late").await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidState);
        assert!(ws.close().await.is_err());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn wss_to_a_server_without_tls_is_an_error_not_a_panic() {
    timeout(BOUND, async {
        // A plain TCP server that answers the TLS hello with HTTP and hangs up.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });

        let error = WsConnector::connect(config(&format!("wss://{addr}/")))
            .await
            .unwrap_err();

        assert_eq!(error.kind(), ErrorKind::Remote, "{error}");
        assert!(
            error.to_string().contains(&format!("wss://{addr}")),
            "{error}"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn invalid_settings_fail_before_connecting() {
    let mut settings = config("ws://127.0.0.1:1/");
    settings.queue_capacity = 0;
    let error = WsConnector::builder(settings).start().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);

    let error = WsConnector::builder(config("ws://127.0.0.1:1/"))
        .secret_header("x-api-key", SecretString::from("line\nbreak-secret"))
        .start()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
    assert!(!error.to_string().contains("break-secret"), "{error}");

    let error = WsConnector::builder(config("ws://127.0.0.1:1/"))
        .header("Sec-WebSocket-Protocol", "chat")
        .start()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
}
