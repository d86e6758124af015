//! What flows into and out of plugin calls: JSON, bytes with a media type, or records.
//!
//! Records are Apache Arrow [`RecordBatch`](arrow_array::RecordBatch)es, the format data platforms (Databricks,
//! BigQuery, Snowflake, DataFusion, Polars, delta-rs) already speak, so tabular data moves
//! between plugins without being re-encoded. Conversions to and from JSON rows, CSV and NDJSON
//! live in [`Records`]; Parquet with the `parquet` feature.
//!
//! Arrow is pulled in as its parts (`arrow-array`, `arrow-schema`, `arrow-cast`, `arrow-csv`,
//! `arrow-json`, `arrow-select`, and `arrow-ipc` for storing records) rather than the `arrow`
//! umbrella crate, which would also build the string and arithmetic kernels we do not use.
//!
//! [`Payload::encode`] and [`Payload::decode`] turn any payload into bytes and back without
//! loss (records as an Arrow IPC stream), for stores that keep outputs: the workflow
//! engine's run history, queues, caches.

mod codec;
mod records;

pub use records::{CsvOptions, Records};

use bytes::Bytes;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};

/// Media type of JSON bytes.
pub const MEDIA_JSON: &str = "application/json";
/// Media type of newline-delimited JSON bytes.
pub const MEDIA_NDJSON: &str = "application/x-ndjson";
/// Media type of CSV bytes.
pub const MEDIA_CSV: &str = "text/csv";
/// Media type of Parquet bytes.
pub const MEDIA_PARQUET: &str = "application/vnd.apache.parquet";
/// Media type of plain text.
pub const MEDIA_TEXT: &str = "text/plain";
/// Media type of bytes with no more specific type.
pub const MEDIA_OCTET_STREAM: &str = "application/octet-stream";

/// Bytes together with the media type that says how to read them.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob {
    /// The bytes themselves.
    pub data: Bytes,
    /// Their media type, such as `text/csv` or `application/zstd`.
    pub media_type: String,
}

impl Blob {
    /// Wraps bytes with their media type.
    pub fn new(data: impl Into<Bytes>, media_type: impl Into<String>) -> Self {
        Blob {
            data: data.into(),
            media_type: media_type.into(),
        }
    }

    /// The media type without parameters (`text/csv; charset=utf-8` gives `text/csv`).
    pub fn essence(&self) -> &str {
        self.media_type.split(';').next().unwrap_or("").trim()
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bytes may be large or sensitive; their size and type say enough.
        f.debug_struct("Blob")
            .field("len", &self.data.len())
            .field("media_type", &self.media_type)
            .finish()
    }
}

/// The input or output of a plugin call.
#[derive(Debug, Clone, Default)]
pub enum Payload {
    /// Nothing: an action that takes no input or returns no output.
    #[default]
    Empty,
    /// A JSON value.
    Json(Value),
    /// Bytes with a media type.
    Bytes(Blob),
    /// Tabular data as Arrow record batches.
    Records(Records),
}

impl Payload {
    /// A JSON payload.
    pub fn json(value: impl Into<Value>) -> Self {
        Payload::Json(value.into())
    }

    /// A bytes payload with its media type.
    pub fn bytes(data: impl Into<Bytes>, media_type: impl Into<String>) -> Self {
        Payload::Bytes(Blob::new(data, media_type))
    }

    /// The payload's variant name: `empty`, `json`, `bytes` or `records`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Payload::Empty => "empty",
            Payload::Json(_) => "json",
            Payload::Bytes(_) => "bytes",
            Payload::Records(_) => "records",
        }
    }

    /// Converts the payload to JSON.
    ///
    /// Records become an array of row objects; bytes are parsed when their media type is JSON
    /// (an NDJSON or CSV body becomes rows); `Empty` becomes `null`.
    pub fn into_json(self) -> Result<Value> {
        match self {
            Payload::Empty => Ok(Value::Null),
            Payload::Json(v) => Ok(v),
            Payload::Records(r) => Ok(Value::Array(r.to_json_rows()?)),
            Payload::Bytes(blob) => match blob.essence() {
                MEDIA_JSON => Ok(serde_json::from_slice(&blob.data)?),
                MEDIA_NDJSON | MEDIA_CSV => Payload::Bytes(blob)
                    .into_records()?
                    .to_json_rows()
                    .map(Value::Array),
                MEDIA_TEXT => Ok(Value::String(
                    String::from_utf8_lossy(&blob.data).into_owned(),
                )),
                other => Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("cannot read bytes of media type `{other}` as JSON"),
                )),
            },
        }
    }

    /// Converts the payload to records.
    ///
    /// JSON must be an array of objects (or one object, a single row); bytes are parsed by
    /// media type (CSV, NDJSON, JSON, and Parquet with the `parquet` feature).
    pub fn into_records(self) -> Result<Records> {
        match self {
            Payload::Records(r) => Ok(r),
            Payload::Json(Value::Array(rows)) => Records::from_json_rows(&rows),
            Payload::Json(obj @ Value::Object(_)) => Records::from_json_rows(&[obj]),
            Payload::Json(other) => Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "expected records (an array of row objects), got JSON {}",
                    json_type_name(&other)
                ),
            )),
            Payload::Empty => Err(Error::new(
                ErrorKind::InvalidInput,
                "expected records, got an empty payload",
            )),
            Payload::Bytes(blob) => match blob.essence() {
                MEDIA_CSV => Records::from_csv(&blob.data[..], &CsvOptions::default()),
                MEDIA_NDJSON => Records::from_ndjson(&blob.data[..]),
                MEDIA_JSON => Payload::Json(serde_json::from_slice(&blob.data)?).into_records(),
                #[cfg(feature = "parquet")]
                MEDIA_PARQUET => Records::from_parquet(blob.data.clone()),
                other => Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("cannot read bytes of media type `{other}` as records"),
                )),
            },
        }
    }

    /// Returns the bytes of a bytes payload; JSON is serialized as `application/json`.
    pub fn into_blob(self) -> Result<Blob> {
        match self {
            Payload::Bytes(blob) => Ok(blob),
            Payload::Json(v) => Ok(Blob::new(serde_json::to_vec(&v)?, MEDIA_JSON)),
            Payload::Records(r) => {
                let mut out = Vec::new();
                r.to_ndjson(&mut out)?;
                Ok(Blob::new(out, MEDIA_NDJSON))
            }
            Payload::Empty => Err(Error::new(
                ErrorKind::InvalidInput,
                "expected bytes, got an empty payload",
            )),
        }
    }
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload::Json(v)
    }
}

impl From<Records> for Payload {
    fn from(r: Records) -> Self {
        Payload::Records(r)
    }
}

impl From<Blob> for Payload {
    fn from(b: Blob) -> Self {
        Payload::Bytes(b)
    }
}

/// The JSON type name of a value, for error messages (`a string`, `an object`).
pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
