//! [`Message`]: a text or binary WebSocket message, the unit sent and received.

use bytes::Bytes;
use tokio_tungstenite::tungstenite;

/// A WebSocket data message. Control frames (Ping, Pong, Close) are the connector's
/// business and never show up here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (UTF-8).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Binary(data.into())
    }

    /// The text, for a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Binary(_) => None,
        }
    }

    /// The payload as bytes, whatever the kind.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(data) => data,
        }
    }

    /// The payload size in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn into_frame(self) -> tungstenite::Message {
        match self {
            Self::Text(text) => tungstenite::Message::Text(text.into()),
            Self::Binary(data) => tungstenite::Message::Binary(data),
        }
    }

    /// The data message in a received frame; `None` for control frames.
    pub(crate) fn from_frame(frame: tungstenite::Message) -> Option<Self> {
        match frame {
            tungstenite::Message::Text(text) => Some(Self::Text(text.as_str().to_owned())),
            tungstenite::Message::Binary(data) => Some(Self::Binary(data)),
            _ => None,
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Self::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Self::Binary(data.into())
    }
}
