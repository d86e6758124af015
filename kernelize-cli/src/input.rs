//! Reading `--input`, `--config` and `--plugin-config` values: a file, inline JSON, or `-`.

use std::io::Read;
use std::path::Path;

use kernelize::payload::{CsvOptions, MEDIA_PARQUET};
use kernelize::{Error, ErrorKind, Payload, Records, Result};
use serde_json::Value;

/// Formats `--input` files are recognized by.
pub(crate) const KNOWN_FORMATS: &str = "csv, json, ndjson (.jsonl), parquet";

/// Reads an `--input` value: `-` for standard input, a file (format by extension or
/// `format`), or inline JSON.
pub(crate) fn read_input(value: &str, format: Option<&str>) -> Result<Payload> {
    if value == "-" {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| Error::from(e).with_context("input", "stdin"))?;
        return parse_bytes(data, format.unwrap_or("json"), "stdin");
    }
    let path = Path::new(value);
    if path.is_file() {
        let format = match format {
            Some(f) => f.to_string(),
            None => format_of(path)?,
        };
        let data = std::fs::read(path).map_err(|e| Error::from(e).with_context("input", value))?;
        return parse_bytes(data, &format, value);
    }
    if looks_like_json(value) {
        return serde_json::from_str::<Value>(value)
            .map(Payload::Json)
            .map_err(|e| Error::from(e).with_context("input", "inline JSON"));
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("--input `{value}` is neither a file nor inline JSON"),
    ))
}

/// The format named by a file's extension.
pub(crate) fn format_of(path: &Path) -> Result<String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "csv" => Ok("csv".into()),
        "json" => Ok("json".into()),
        "ndjson" | "jsonl" => Ok("ndjson".into()),
        "parquet" => Ok("parquet".into()),
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "cannot tell the format of `{}` from its extension; known formats: {KNOWN_FORMATS}",
                path.display()
            ),
        )),
    }
}

fn parse_bytes(data: Vec<u8>, format: &str, origin: &str) -> Result<Payload> {
    let payload = match format {
        "json" => serde_json::from_slice::<Value>(&data)
            .map(Payload::Json)
            .map_err(Error::from),
        "csv" => Records::from_csv(&data[..], &CsvOptions::default()).map(Payload::Records),
        "ndjson" => Records::from_ndjson(&data[..]).map(Payload::Records),
        "parquet" => Payload::bytes(data, MEDIA_PARQUET)
            .into_records()
            .map(Payload::Records),
        other => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("unknown input format `{other}`; known formats: {KNOWN_FORMATS}"),
        )),
    };
    payload.map_err(|e| e.with_context("input", origin))
}

/// Reads a JSON value given inline or as a file (for `--config` and `--plugin-config`).
pub(crate) fn read_json_arg(flag: &str, value: &str) -> Result<Value> {
    if looks_like_json(value) {
        return serde_json::from_str(value)
            .map_err(|e| Error::from(e).with_context("option", flag));
    }
    let path = Path::new(value);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::from(e).with_context("option", flag))?;
        return serde_json::from_str(&text).map_err(|e| {
            Error::from(e)
                .with_context("option", flag)
                .with_context("file", value)
        });
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("{flag} `{value}` is neither inline JSON nor a file"),
    ))
}

fn looks_like_json(value: &str) -> bool {
    let t = value.trim_start();
    t.starts_with('{')
        || t.starts_with('[')
        || t.starts_with('"')
        || t == "null"
        || t == "true"
        || t == "false"
        || t.parse::<f64>().is_ok()
}
