//! Tabular data as Arrow record batches, and its conversions.

use std::io::{BufRead, Read, Write};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};

/// Options for reading CSV.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Whether the first line names the columns (default: true).
    pub has_header: bool,
    /// Field delimiter (default: `,`).
    pub delimiter: u8,
    /// A schema to read with instead of inferring one.
    pub schema: Option<SchemaRef>,
    /// How many rows to read to infer a schema (default: 1000).
    pub infer_rows: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            has_header: true,
            delimiter: b',',
            schema: None,
            infer_rows: 1000,
        }
    }
}

/// Tabular data: one schema and any number of Arrow record batches that share it.
#[derive(Debug, Clone)]
pub struct Records {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl Records {
    /// Records from batches that all have `schema`.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self> {
        for (i, b) in batches.iter().enumerate() {
            if b.schema() != schema {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("record batch {i} does not have the records' schema"),
                ));
            }
        }
        Ok(Records { schema, batches })
    }

    /// The records of one batch.
    pub fn from_batch(batch: RecordBatch) -> Self {
        Records {
            schema: batch.schema(),
            batches: vec![batch],
        }
    }

    /// The schema every batch shares.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The batches.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Total number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// Reads JSON row objects, inferring the schema.
    pub fn from_json_rows(_rows: &[Value]) -> Result<Self> {
        Err(Error::new(ErrorKind::Unsupported, "not yet built"))
    }

    /// Writes the records as JSON row objects.
    pub fn to_json_rows(&self) -> Result<Vec<Value>> {
        Err(Error::new(ErrorKind::Unsupported, "not yet built"))
    }

    /// Reads CSV.
    pub fn from_csv<R: Read>(_reader: R, _options: &CsvOptions) -> Result<Self> {
        Err(Error::new(ErrorKind::Unsupported, "not yet built"))
    }

    /// Writes CSV with a header line.
    pub fn to_csv<W: Write>(&self, _writer: W) -> Result<()> {
        Err(Error::new(ErrorKind::Unsupported, "not yet built"))
    }

    /// Reads newline-delimited JSON.
    pub fn from_ndjson<R: BufRead>(_reader: R) -> Result<Self> {
        Err(Error::new(ErrorKind::Unsupported, "not yet built"))
    }

    /// Writes newline-delimited JSON.
    pub fn to_ndjson<W: Write>(&self, _writer: W) -> Result<()> {
        Err(Error::new(ErrorKind::Unsupported, "not yet built"))
    }

    /// Reads a Parquet file held in memory.
    #[cfg(feature = "parquet")]
    pub fn from_parquet(_data: bytes::Bytes) -> Result<Self> {
        Err(Error::new(ErrorKind::Unsupported, "not yet built"))
    }
}
