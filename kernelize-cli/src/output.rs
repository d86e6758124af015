//! Printing payloads and tables.

use std::io::Write;
use std::path::Path;

use kernelize::{Error, ErrorKind, Payload, Result};

use crate::input::format_of;

/// Prints a payload on stdout: JSON as JSON; records as a JSON array of rows with `--json`,
/// as CSV otherwise; bytes as they are.
pub(crate) fn print_payload(payload: Payload, json: bool) -> Result<()> {
    let mut out = Vec::new();
    match payload {
        Payload::Empty => {
            if json {
                out.extend_from_slice(b"null\n");
            }
        }
        Payload::Json(v) => render_json(&mut out, &v)?,
        Payload::Records(r) => {
            if json {
                render_json(&mut out, &serde_json::Value::Array(r.to_json_rows()?))?;
            } else {
                r.to_csv(&mut out)?;
            }
        }
        Payload::Bytes(blob) => {
            if json {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the output is {} bytes of `{}`, which --json cannot show; use --output FILE",
                        blob.data.len(),
                        blob.media_type
                    ),
                ));
            }
            out.extend_from_slice(&blob.data);
        }
    }
    emit(&out)
}

fn render_json(out: &mut Vec<u8>, value: &serde_json::Value) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.push(b'\n');
    Ok(())
}

/// Writes to stdout. A reader that went away (`| head`) is not an error: the output was
/// wanted only that far.
pub(crate) fn emit(bytes: &[u8]) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::from(e).with_context("output", "stdout")),
    }
}

/// Writes a payload to a file, in the format its extension names.
pub(crate) fn write_payload(payload: Payload, path: &Path) -> Result<()> {
    let format = format_of(path)?;
    let mut data = Vec::new();
    match (format.as_str(), payload) {
        ("json", p) => serde_json::to_writer_pretty(&mut data, &p.into_json()?)?,
        ("csv", p) => p.into_records()?.to_csv(&mut data)?,
        ("ndjson", p) => p.into_records()?.to_ndjson(&mut data)?,
        #[cfg(feature = "parquet")]
        ("parquet", p) => p.into_records()?.to_parquet(&mut data)?,
        (other, _) => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("cannot write `{other}` output with this build"),
            ));
        }
    }
    std::fs::write(path, data).map_err(|e| Error::from(e).with_context("output", path.display()))
}

/// Prints rows as an aligned text table.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = Vec::new();
    let line = |cells: Vec<&str>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(headers.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    emit(&out)
}
