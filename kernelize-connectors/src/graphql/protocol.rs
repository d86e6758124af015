//! The graphql-transport-ws protocol (the `graphql-ws` library's protocol, not the older
//! Apollo `subscriptions-transport-ws`): its messages and what its close codes mean.

use kernelize_core::{Error, ErrorKind};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::response::{GraphQLError, GraphQLResponse};

/// The WebSocket subprotocol that names the protocol.
pub const SUBPROTOCOL: &str = "graphql-transport-ws";

/// The close code a client sends when the server did not acknowledge the connection in
/// time (the `graphql-ws` library's choice).
pub(crate) const CLOSE_ACK_TIMEOUT: u16 = 4504;
/// The close code for a message that breaks the protocol.
pub(crate) const CLOSE_BAD_MESSAGE: u16 = 4400;

/// A message from the server.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerMessage {
    ConnectionAck {},
    Ping {},
    Pong {},
    Next {
        id: String,
        payload: GraphQLResponse,
    },
    Error {
        id: String,
        payload: Vec<GraphQLError>,
    },
    Complete {
        id: String,
    },
}

impl ServerMessage {
    /// The message's type, for errors about messages that came at the wrong time.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ServerMessage::ConnectionAck {} => "connection_ack",
            ServerMessage::Ping {} => "ping",
            ServerMessage::Pong {} => "pong",
            ServerMessage::Next { .. } => "next",
            ServerMessage::Error { .. } => "error",
            ServerMessage::Complete { .. } => "complete",
        }
    }
}

/// `connection_init`, with the payload's JSON text when there is one. The text is built
/// here, not logged anywhere: the payload usually holds credentials.
pub(crate) fn connection_init(payload: Option<&str>) -> String {
    match payload {
        Some(payload) => format!(r#"{{"type":"connection_init","payload":{payload}}}"#),
        None => r#"{"type":"connection_init"}"#.to_string(),
    }
}

/// `subscribe` for operation `id` with the request body as payload.
pub(crate) fn subscribe(id: &str, payload: Value) -> String {
    json!({"id": id, "type": "subscribe", "payload": payload}).to_string()
}

/// `complete` for operation `id`: the client no longer wants its results.
pub(crate) fn complete(id: &str) -> String {
    json!({"id": id, "type": "complete"}).to_string()
}

/// `ping`.
pub(crate) fn ping() -> String {
    r#"{"type":"ping"}"#.to_string()
}

/// `pong`, the answer to the server's `ping`.
pub(crate) fn pong() -> String {
    r#"{"type":"pong"}"#.to_string()
}

/// The error for a close frame received from `server` before the subscription completed.
pub(crate) fn close_error(server: &str, frame: Option<&CloseFrame>) -> Error {
    let Some(frame) = frame else {
        return Error::new(
            ErrorKind::Remote,
            format!("{server} closed the connection without a close code"),
        )
        .set_temporary();
    };
    let code = u16::from(frame.code);
    let reason: String = frame.reason.chars().take(123).collect();
    let said = if reason.is_empty() {
        format!("{code}")
    } else {
        format!("{code} {reason}")
    };
    let (kind, temporary, meaning) = match code {
        4400 => (
            ErrorKind::Remote,
            false,
            "rejected a message as invalid (protocol violation)",
        ),
        4401 => (
            ErrorKind::PermissionDenied,
            false,
            "refused the subscription as unauthorized (subscribe before connection_ack)",
        ),
        4403 => (
            ErrorKind::PermissionDenied,
            false,
            "refused the connection (forbidden: check the connection_init payload)",
        ),
        4406 => (
            ErrorKind::Unsupported,
            false,
            "does not accept the graphql-transport-ws subprotocol",
        ),
        4408 => (
            ErrorKind::Timeout,
            true,
            "timed out waiting for connection_init",
        ),
        4409 => (
            ErrorKind::InvalidState,
            false,
            "already has a subscriber with this id",
        ),
        4429 => (
            ErrorKind::RateLimited,
            true,
            "refused too many initialisation requests",
        ),
        4500 => (ErrorKind::Remote, true, "failed with an internal error"),
        1000 => (
            ErrorKind::Remote,
            true,
            "closed the connection before completing the subscription",
        ),
        1001 => (ErrorKind::Remote, true, "is going away"),
        1008 => (
            ErrorKind::PermissionDenied,
            false,
            "closed for a policy violation",
        ),
        1009 => (ErrorKind::Remote, false, "found a message of ours too big"),
        // Internal error, service restart, try again later.
        1011..=1013 => (
            ErrorKind::Remote,
            true,
            "closed the connection on an internal error or a restart",
        ),
        _ => (ErrorKind::Remote, true, "closed the connection"),
    };
    let error = Error::new(kind, format!("{server} {meaning} (close {said})"))
        .with_status(code)
        .with_context("close_code", code);
    if temporary {
        error.set_temporary()
    } else {
        error.set_permanent()
    }
}

/// A WebSocket failure talking to `server` as our error.
pub(crate) fn ws_error(server: &str, e: WsError, max_message_size: usize) -> Error {
    match e {
        WsError::Capacity(cause) => Error::new(
            ErrorKind::CorruptData,
            format!("{server} sent a message over the {max_message_size}-byte limit ({cause})"),
        )
        .set_permanent(),
        WsError::Http(response) => {
            let status = response.status().as_u16();
            let kind = match status {
                401 | 403 => ErrorKind::PermissionDenied,
                404 => ErrorKind::NotFound,
                429 => ErrorKind::RateLimited,
                _ => ErrorKind::Remote,
            };
            let error = Error::new(
                kind,
                format!(
                    "{server} refused the WebSocket upgrade with {}",
                    response.status()
                ),
            )
            .with_status(status);
            if status == 429 || status >= 500 {
                error.set_temporary()
            } else {
                error.set_permanent()
            }
        }
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Error::new(
            ErrorKind::Remote,
            format!("the connection to {server} was reset"),
        )
        .set_temporary(),
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(_)) => Error::new(
            ErrorKind::Unsupported,
            format!("{server} does not speak the {SUBPROTOCOL} subprotocol"),
        )
        .set_permanent(),
        WsError::Url(cause) => Error::new(
            ErrorKind::ConfigInvalid,
            format!("cannot connect to {server}: {cause}"),
        ),
        WsError::Utf8(_) | WsError::AttackAttempt | WsError::Protocol(_) => Error::new(
            ErrorKind::Remote,
            format!("{server} broke the WebSocket protocol: {e}"),
        )
        .set_permanent(),
        WsError::ConnectionClosed | WsError::AlreadyClosed => Error::new(
            ErrorKind::Remote,
            format!("the connection to {server} is closed"),
        )
        .set_temporary(),
        other => Error::new(
            ErrorKind::Remote,
            format!("the connection to {server} failed: {other}"),
        )
        .set_temporary(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    fn frame(code: u16, reason: &str) -> CloseFrame {
        CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        }
    }

    #[test]
    fn protocol_close_codes_become_clear_errors() {
        for (code, kind, temporary) in [
            (4400, ErrorKind::Remote, false),
            (4401, ErrorKind::PermissionDenied, false),
            (4403, ErrorKind::PermissionDenied, false),
            (4406, ErrorKind::Unsupported, false),
            (4408, ErrorKind::Timeout, true),
            (4409, ErrorKind::InvalidState, false),
            (4429, ErrorKind::RateLimited, true),
            (4500, ErrorKind::Remote, true),
            (4999, ErrorKind::Remote, true),
        ] {
            let err = close_error("ws://x/graphql", Some(&frame(code, "why")));
            assert_eq!(err.kind(), kind, "{code}");
            assert_eq!(err.is_temporary(), temporary, "{code}");
            assert_eq!(err.status(), Some(code));
            assert!(
                err.message().contains(&format!("close {code} why")),
                "{err}"
            );
        }
    }

    #[test]
    fn server_messages_parse_and_unknown_ones_do_not() {
        let next: ServerMessage = serde_json::from_str(
            r#"{"type":"next","id":"1","payload":{"data":{"a":1},"errors":null}}"#,
        )
        .unwrap();
        assert!(matches!(next, ServerMessage::Next { id, .. } if id == "1"));
        let ping: ServerMessage =
            serde_json::from_str(r#"{"type":"ping","payload":{"at":1}}"#).unwrap();
        assert_eq!(ping.kind(), "ping");
        assert!(serde_json::from_str::<ServerMessage>(r#"{"type":"data","id":"1"}"#).is_err());
        assert!(serde_json::from_str::<ServerMessage>(r#"{"type":"next"}"#).is_err());
    }

    #[test]
    fn connection_init_embeds_the_payload() {
        assert_eq!(
            connection_init(Some(r#"{"token":"t"}"#)),
            r#"{"type":"connection_init","payload":{"token":"t"}}"#
        );
        assert_eq!(connection_init(None), r#"{"type":"connection_init"}"#);
    }
}
