//! A payload as bytes and back, without loss: what stores keep.
//!
//! The layout is one tag byte, then the body:
//!
//! | tag | payload | body |
//! |---|---|---|
//! | `0` | empty | nothing |
//! | `1` | JSON | the JSON text |
//! | `2` | bytes | media type length (u16, big-endian), media type, the bytes |
//! | `3` | records | an Arrow IPC stream (schema, then the batches) |
//!
//! Decoding checks every length against the input, so damaged bytes are a
//! [`ErrorKind::CorruptData`] error, never a panic or an allocation the input did not pay for.

use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use bytes::Bytes;

use super::{Blob, Payload, Records};
use crate::error::{Error, ErrorKind, Result};

const TAG_EMPTY: u8 = 0;
const TAG_JSON: u8 = 1;
const TAG_BYTES: u8 = 2;
const TAG_RECORDS: u8 = 3;

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::CorruptData,
        format!("stored payload is damaged: {what}"),
    )
}

impl Payload {
    /// The payload as bytes that [`Payload::decode`] reads back into an equal payload.
    pub fn encode(&self) -> Result<Vec<u8>> {
        match self {
            Payload::Empty => Ok(vec![TAG_EMPTY]),
            Payload::Json(value) => {
                let mut out = vec![TAG_JSON];
                serde_json::to_writer(&mut out, value)?;
                Ok(out)
            }
            Payload::Bytes(blob) => {
                let media = blob.media_type.as_bytes();
                let len = u16::try_from(media.len()).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "media type of {} bytes is too long to store (at most 65535)",
                            media.len()
                        ),
                    )
                })?;
                let mut out = Vec::with_capacity(3 + media.len() + blob.data.len());
                out.push(TAG_BYTES);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(media);
                out.extend_from_slice(&blob.data);
                Ok(out)
            }
            Payload::Records(records) => {
                let mut out = vec![TAG_RECORDS];
                let mut writer = StreamWriter::try_new(&mut out, records.schema())
                    .map_err(|e| Error::new(ErrorKind::Unexpected, format!("arrow ipc: {e}")))?;
                for batch in records.batches() {
                    writer.write(batch).map_err(|e| {
                        Error::new(ErrorKind::Unexpected, format!("arrow ipc: {e}"))
                    })?;
                }
                writer
                    .finish()
                    .map_err(|e| Error::new(ErrorKind::Unexpected, format!("arrow ipc: {e}")))?;
                drop(writer);
                Ok(out)
            }
        }
    }

    /// Reads a payload written by [`Payload::encode`].
    pub fn decode(data: &[u8]) -> Result<Payload> {
        let (&tag, body) = data
            .split_first()
            .ok_or_else(|| corrupt("no bytes at all"))?;
        match tag {
            TAG_EMPTY if body.is_empty() => Ok(Payload::Empty),
            TAG_EMPTY => Err(corrupt("an empty payload followed by bytes")),
            TAG_JSON => serde_json::from_slice(body)
                .map(Payload::Json)
                .map_err(|e| corrupt(format!("JSON: {e}"))),
            TAG_BYTES => {
                let (len, rest) = body
                    .split_first_chunk::<2>()
                    .ok_or_else(|| corrupt("bytes payload without its media type length"))?;
                let len = usize::from(u16::from_be_bytes(*len));
                if rest.len() < len {
                    return Err(corrupt(format!(
                        "media type of {len} bytes but only {} bytes left",
                        rest.len()
                    )));
                }
                let (media, data) = rest.split_at(len);
                let media =
                    std::str::from_utf8(media).map_err(|_| corrupt("media type is not UTF-8"))?;
                Ok(Payload::Bytes(Blob::new(
                    Bytes::copy_from_slice(data),
                    media.to_string(),
                )))
            }
            TAG_RECORDS => {
                let reader = StreamReader::try_new(body, None)
                    .map_err(|e| corrupt(format!("arrow ipc: {e}")))?;
                let schema = reader.schema();
                let batches = reader
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| corrupt(format!("arrow ipc: {e}")))?;
                Ok(Payload::Records(Records::new(schema, batches)?))
            }
            other => Err(corrupt(format!("unknown payload tag {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(p: &Payload) -> Payload {
        Payload::decode(&p.encode().unwrap()).unwrap()
    }

    #[test]
    fn every_kind_comes_back_equal() {
        assert!(matches!(round_trip(&Payload::Empty), Payload::Empty));
        let v = json!({"a": [1, 2.5, "x", null], "b": {"c": true}});
        assert!(matches!(round_trip(&Payload::Json(v.clone())), Payload::Json(w) if w == v));
        let blob = Payload::bytes(vec![0u8, 1, 2, 255], "application/zstd");
        match round_trip(&blob) {
            Payload::Bytes(b) => {
                assert_eq!(&b.data[..], &[0, 1, 2, 255]);
                assert_eq!(b.media_type, "application/zstd");
            }
            other => panic!("{other:?}"),
        }
        let rows = vec![
            json!({"id": 1, "name": "a"}),
            json!({"id": 2, "name": null}),
        ];
        let records = Records::from_json_rows(&rows).unwrap();
        match round_trip(&Payload::Records(records.clone())) {
            Payload::Records(r) => {
                assert_eq!(r.schema(), records.schema());
                assert_eq!(r.to_json_rows().unwrap(), records.to_json_rows().unwrap());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        for bad in [
            &[][..],
            &[9],
            &[0, 1],
            &[1, b'{'],
            &[2, 0],
            &[2, 0xff, 0xff, b'a'],
            &[3, 1, 2, 3],
        ] {
            let e = Payload::decode(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::CorruptData, "{bad:?}: {e}");
        }
        let records = Records::from_json_rows(&[json!({"id": 1})]).unwrap();
        let mut good = Payload::Records(records).encode().unwrap();
        good.truncate(good.len() - 9);
        assert!(Payload::decode(&good).is_err());
    }
}
