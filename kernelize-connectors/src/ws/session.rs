//! One live connection: the reader (frames to the receive stream), the writer (the
//! outbound queue to the socket, pings, our Close) and the heartbeat that watches for a
//! dead peer. The session ends at the first of: the peer closes, an error, a dead peer,
//! or our own close handshake completing.

use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use kernelize_core::{Error, ErrorKind};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, error::ProtocolError};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::driver::{Control, Settings, ws_error};
use super::message::Message;
use super::queue::OutboundQueue;
use super::state::{DisconnectReason, Telemetry};

/// The socket under a connection: TCP (and TLS over it) that records when bytes move.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<Tracked<TcpStream>>>;

const NONE: u64 = u64::MAX;

/// When bytes last moved on a connection, and the oldest ping still unanswered. The reader,
/// the writer and the socket itself update it; the heartbeat judges from it.
#[derive(Debug)]
pub(crate) struct Liveness {
    origin: Instant,
    /// Last bytes read from the socket (any bytes: a frame half received is proof of life).
    received: AtomicU64,
    /// Last bytes the socket accepted for writing.
    written: AtomicU64,
    /// When the write in progress began; `NONE` when the writer is idle.
    writing_since: AtomicU64,
    /// When the oldest unanswered ping was flushed; `NONE` when none is out.
    ping: AtomicU64,
    /// The reader has stopped reading because the receive buffer is full.
    paused: AtomicBool,
}

impl Liveness {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            received: AtomicU64::new(0),
            written: AtomicU64::new(0),
            writing_since: AtomicU64::new(NONE),
            ping: AtomicU64::new(NONE),
            paused: AtomicBool::new(false),
        }
    }

    fn at(&self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.origin).as_nanos()).unwrap_or(NONE - 1)
    }

    fn now(&self) -> u64 {
        self.at(Instant::now())
    }

    fn received(&self) {
        self.received.store(self.now(), Ordering::Relaxed);
    }

    fn written(&self) {
        self.written.store(self.now(), Ordering::Relaxed);
    }

    fn write_started(&self) {
        self.writing_since.store(self.now(), Ordering::Relaxed);
    }

    fn write_ended(&self) {
        self.writing_since.store(NONE, Ordering::Relaxed);
    }

    /// A ping went out; the clock starts unless an older ping is still unanswered (a newer
    /// ping must not move the deadline of an older one).
    fn ping_flushed(&self) {
        let now = self.now();
        let ping = self.ping.load(Ordering::Relaxed);
        if ping == NONE || self.received.load(Ordering::Relaxed) >= ping {
            self.ping.store(now, Ordering::Relaxed);
        }
    }

    fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
        if !paused {
            // Nothing was read while paused, through no fault of the peer.
            self.received();
        }
    }

    /// How long the connection has been silent, if the peer is to be taken for dead: a ping
    /// unanswered for `timeout`, or a write that has not moved a byte for `timeout` while
    /// nothing came in either.
    pub(crate) fn dead(&self, now: Instant, timeout: Duration) -> Option<Duration> {
        if self.paused.load(Ordering::Relaxed) {
            return None;
        }
        let now = self.at(now);
        let timeout = u64::try_from(timeout.as_nanos()).unwrap_or(NONE);
        let received = self.received.load(Ordering::Relaxed);
        let silent = Duration::from_nanos(now.saturating_sub(received));
        let ping = self.ping.load(Ordering::Relaxed);
        if ping != NONE && received < ping && now.saturating_sub(ping) >= timeout {
            return Some(silent);
        }
        let since = self.writing_since.load(Ordering::Relaxed);
        if since != NONE {
            let progress = since.max(self.written.load(Ordering::Relaxed));
            if now.saturating_sub(progress) >= timeout && now.saturating_sub(received) >= timeout {
                return Some(silent);
            }
        }
        None
    }
}

/// A byte stream that records in [`Liveness`] when bytes move.
#[derive(Debug)]
pub(crate) struct Tracked<S> {
    inner: S,
    liveness: std::sync::Arc<Liveness>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, liveness: std::sync::Arc<Liveness>) -> Self {
        Self { inner, liveness }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.liveness.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.liveness.written();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How a session ended.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// Our Close went out (answered or not): the connector is done with this connection.
    Closed,
    /// The connection dropped; the driver reconnects.
    Dropped(DisconnectReason),
}

/// What the writer stopped for, when it stopped without an error.
enum WriterEnd {
    /// It sent our Close frame.
    CloseSent,
    /// The peer started the close handshake: nothing more may be sent.
    PeerClosing,
}

/// Everything a session borrows from the driver.
pub(crate) struct SessionContext<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) queue: &'a OutboundQueue,
    pub(crate) telemetry: &'a Telemetry,
    pub(crate) inbound: &'a mpsc::Sender<Message>,
    pub(crate) control: watch::Receiver<Control>,
}

/// Runs one connection until it ends.
pub(crate) async fn run(
    socket: Socket,
    liveness: &Liveness,
    context: SessionContext<'_>,
) -> SessionEnd {
    let (mut sink, mut stream) = socket.split();
    let ping_wanted = AtomicBool::new(false);
    let ping_notify = Notify::new();
    let settings = context.settings;
    let mut reader = pin!(read(
        &mut stream,
        context.inbound,
        liveness,
        context.telemetry,
        settings.pong_timeout
    ));
    let mut writer = pin!(write(
        &mut sink,
        context.queue,
        liveness,
        &ping_wanted,
        &ping_notify,
        context.control,
        settings.pong_timeout
    ));
    let mut heartbeat = pin!(heartbeat(
        settings.heartbeat_interval,
        settings.pong_timeout,
        liveness,
        &ping_wanted,
        &ping_notify
    ));
    // Set once the writer has stopped: how long the reader may still take to see the
    // close handshake through, and whether the Close was ours.
    let mut winding_down: Option<(Instant, bool)> = None;
    loop {
        tokio::select! {
            biased;
            reason = &mut reader => {
                return match winding_down {
                    Some((_, true)) => SessionEnd::Closed,
                    _ => SessionEnd::Dropped(reason),
                };
            }
            ended = &mut writer, if winding_down.is_none() => match ended {
                Ok(WriterEnd::CloseSent) => {
                    winding_down = Some((Instant::now() + settings.pong_timeout, true));
                }
                Ok(WriterEnd::PeerClosing) => {
                    winding_down = Some((Instant::now() + settings.pong_timeout, false));
                }
                Err(e) => return SessionEnd::Dropped(DisconnectReason::Failed(e)),
            },
            silent_for = &mut heartbeat => {
                return SessionEnd::Dropped(DisconnectReason::DeadPeer { silent_for });
            }
            () = sleep_until(winding_down.map_or_else(Instant::now, |(at, _)| at)),
                if winding_down.is_some() =>
            {
                return match winding_down {
                    Some((_, true)) => {
                        tracing::debug!("the peer did not answer our Close in time");
                        SessionEnd::Closed
                    }
                    _ => SessionEnd::Dropped(DisconnectReason::PeerClosed {
                        code: None,
                        reason: "the peer began closing but did not finish".to_string(),
                    }),
                };
            }
        }
    }
}

/// Reads frames until the connection ends; data messages go to the receive stream.
async fn read(
    stream: &mut SplitStream<Socket>,
    inbound: &mpsc::Sender<Message>,
    liveness: &Liveness,
    telemetry: &Telemetry,
    close_wait: Duration,
) -> DisconnectReason {
    loop {
        let frame = match stream.next().await {
            None => {
                return DisconnectReason::PeerClosed {
                    code: None,
                    reason: "the connection ended".to_string(),
                };
            }
            Some(Err(e)) => return DisconnectReason::Failed(ws_error(e, "reading from")),
            Some(Ok(frame)) => frame,
        };
        if let tungstenite::Message::Close(close) = frame {
            // Keep reading so tungstenite sends its answer to the Close and sees the end
            // of the stream; a peer that never ends it is not waited for long.
            let _ = timeout(close_wait, async {
                while let Some(Ok(_)) = stream.next().await {}
            })
            .await;
            return DisconnectReason::PeerClosed {
                code: close.as_ref().map(|c| u16::from(c.code)),
                reason: close.map(|c| c.reason.to_string()).unwrap_or_default(),
            };
        }
        let Some(message) = Message::from_frame(frame) else {
            continue; // ping (answered by tungstenite) or pong: liveness only
        };
        let permit = match inbound.try_reserve() {
            Ok(permit) => Some(permit),
            Err(mpsc::error::TrySendError::Full(())) => {
                liveness.pause(true);
                let permit = inbound.reserve().await.ok();
                liveness.pause(false);
                permit
            }
            Err(mpsc::error::TrySendError::Closed(())) => None,
        };
        telemetry.received();
        if let Some(permit) = permit {
            permit.send(message);
        }
    }
}

/// Writes pings and queued messages, and our Close when the connector closes.
async fn write(
    sink: &mut SplitSink<Socket, tungstenite::Message>,
    queue: &OutboundQueue,
    liveness: &Liveness,
    ping_wanted: &AtomicBool,
    ping_notify: &Notify,
    mut control: watch::Receiver<Control>,
    close_wait: Duration,
) -> Result<WriterEnd, Error> {
    loop {
        let closing = control.borrow_and_update().closing();
        if ping_wanted.swap(false, Ordering::Relaxed) {
            liveness.write_started();
            let sent = sink
                .send(tungstenite::Message::Ping(Default::default()))
                .await;
            liveness.write_ended();
            match sent {
                Ok(()) => liveness.ping_flushed(),
                Err(e) => return peer_closing_or(e),
            }
            continue;
        }
        if let Some((deadline, code)) = closing
            && Instant::now() >= deadline
        {
            return send_close(sink, code, close_wait).await;
        }
        let mut batch = queue.begin_batch();
        if !batch.is_empty() {
            let frames = batch.take_frames();
            let count = frames.len();
            liveness.write_started();
            // One flush per message: a sink may buffer what it is fed, so only a flush
            // that returned tells which messages went out. Each leaves the queue right
            // after its flush, with no await in between; the first that fails, and all
            // after it, stay at the front for the next connection.
            //
            // (tokio-tungstenite reports a flush as done when the socket is reset after
            // the peer's Close; such a peer is gone like one that died after a flush, and
            // what it had not read is lost the same way: see "Flushed is not received".)
            let written = async {
                for frame in frames {
                    sink.send(frame).await?;
                    batch.commit();
                }
                Ok::<(), tungstenite::Error>(())
            };
            let outcome = match closing {
                Some((deadline, _)) => timeout_at(deadline, written).await.ok(),
                None => Some(written.await),
            };
            liveness.write_ended();
            drop(batch);
            match outcome {
                Some(Ok(())) => tracing::trace!(count, "messages flushed"),
                Some(Err(e)) => return peer_closing_or(e),
                None => {} // the close deadline passed; the loop sends the Close
            }
            continue;
        }
        drop(batch);
        if let Some((_, code)) = closing {
            return send_close(sink, code, close_wait).await;
        }
        let ping = ping_notify.notified();
        let work = queue.work();
        tokio::select! {
            () = ping => {}
            () = work => {}
            changed = control.changed() => {
                if changed.is_err() {
                    // The connector is gone without a word: close at once.
                    return send_close(sink, CloseCode::Away, close_wait).await;
                }
            }
        }
    }
}

/// Sends our Close frame; the reader then waits for the peer's.
async fn send_close(
    sink: &mut SplitSink<Socket, tungstenite::Message>,
    code: CloseCode,
    wait: Duration,
) -> Result<WriterEnd, Error> {
    let frame = tungstenite::Message::Close(Some(CloseFrame {
        code,
        reason: Default::default(),
    }));
    match timeout(wait, sink.send(frame)).await {
        Ok(Ok(())) => Ok(WriterEnd::CloseSent),
        Ok(Err(e)) => peer_closing_or(e).map(|_| WriterEnd::CloseSent),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            "the Close frame could not be written in time",
        )),
    }
}

/// A write refused because the peer is closing is not a failure: the reader will see the
/// close handshake through.
fn peer_closing_or(e: tungstenite::Error) -> Result<WriterEnd, Error> {
    match e {
        tungstenite::Error::Protocol(ProtocolError::SendAfterClosing)
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::ConnectionClosed => Ok(WriterEnd::PeerClosing),
        e => Err(ws_error(e, "writing to")),
    }
}

/// Asks for a ping every `interval` and returns how long the peer had been silent once
/// [`Liveness::dead`] says it is dead. Never returns when heartbeats are off.
async fn heartbeat(
    interval: Option<Duration>,
    pong_timeout: Duration,
    liveness: &Liveness,
    ping_wanted: &AtomicBool,
    ping_notify: &Notify,
) -> Duration {
    let Some(interval) = interval else {
        return std::future::pending().await;
    };
    // Judged a few times per timeout, so a dead peer is found at most a quarter of the
    // timeout late.
    let check_every = (pong_timeout / 4).max(Duration::from_millis(10));
    let mut next_ping = Instant::now() + interval;
    let mut next_check = Instant::now() + check_every;
    loop {
        sleep_until(next_ping.min(next_check)).await;
        let now = Instant::now();
        if now >= next_check {
            if let Some(silent_for) = liveness.dead(now, pong_timeout) {
                return silent_for;
            }
            next_check = now + check_every;
        }
        if now >= next_ping {
            ping_wanted.store(true, Ordering::Relaxed);
            ping_notify.notify_one();
            next_ping = now + interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_ping_is_dead_after_the_timeout_and_a_newer_ping_does_not_delay_it() {
        let live = Liveness::new();
        let timeout = Duration::from_secs(1);
        tokio::time::advance(Duration::from_millis(10)).await;
        live.ping_flushed();
        tokio::time::advance(Duration::from_millis(600)).await;
        live.ping_flushed();
        assert!(live.dead(Instant::now(), timeout).is_none());
        tokio::time::advance(Duration::from_millis(400)).await;
        assert!(live.dead(Instant::now(), timeout).is_some());
        live.received();
        assert!(live.dead(Instant::now(), timeout).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_keeps_moving_is_alive_and_a_stalled_one_is_dead() {
        let live = Liveness::new();
        let timeout = Duration::from_secs(1);
        live.write_started();
        for _ in 0..5 {
            tokio::time::advance(Duration::from_millis(500)).await;
            live.written();
            assert!(live.dead(Instant::now(), timeout).is_none());
        }
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert!(live.dead(Instant::now(), timeout).is_some());
        live.pause(true);
        assert!(live.dead(Instant::now(), timeout).is_none());
    }
}
