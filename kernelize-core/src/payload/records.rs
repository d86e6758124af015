//! Tabular data as Arrow record batches, and its conversions.
//!
//! Every reader takes its whole input into memory, infers a schema from it with Arrow's own
//! inference (unless a schema is given), and decodes it in batches of 8192 rows with
//! Arrow's decoders. Arrow's decoding errors do not say where the bad value is (its CSV errors
//! count records from the header, not lines, and its JSON errors count nothing), so when a batch
//! fails, the error path goes back over that batch to name the row or line and the column, as in
//! `row 3, column "amount": expected a number, got "abc"`. The happy path pays nothing for this.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, Read, Write};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_csv::reader::Format;
use arrow_json::writer::LineDelimited;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use serde_json::Value;

use super::json_type_name;
use crate::error::{Error, ErrorKind, Result};

/// Rows per decoded record batch.
const BATCH_SIZE: usize = 8192;

/// The longest excerpt of an offending value an error message quotes, in characters.
const MAX_QUOTED_CHARS: usize = 60;

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
    ///
    /// A later value that does not parse as the inferred type is an error naming its line. A
    /// column that is empty in every row read becomes a string column.
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

    /// Records with `schema` and no rows.
    pub fn empty(schema: SchemaRef) -> Self {
        Records {
            schema,
            batches: Vec::new(),
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

    /// The batches, giving up the records.
    pub fn into_batches(self) -> Vec<RecordBatch> {
        self.batches
    }

    /// Total number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// All rows in one batch (a batch of no rows when there are none).
    pub fn concat(&self) -> Result<RecordBatch> {
        arrow_select::concat::concat_batches(&self.schema, &self.batches).map_err(|err| {
            arrow_error(ErrorKind::Unexpected, "cannot concatenate the batches", err)
        })
    }

    /// Reads JSON row objects, inferring the schema.
    ///
    /// Every row must be an object. A column whose values have different JSON types in
    /// different rows is an error naming the first row that breaks with the earlier ones:
    /// `row 3, column "amount": expected a number, got "abc"`, with the context pairs `row`
    /// (1-based) and `column`. No rows give records with an empty schema.
    pub fn from_json_rows(rows: &[Value]) -> Result<Self> {
        decode_json_values(rows, &|i| Position::Row(i + 1), None)
    }

    /// Reads JSON row objects with a known schema.
    ///
    /// Keys the schema does not name are ignored and missing keys are null. A value that does
    /// not decode as its column's type is an error naming the row (1-based) and the column.
    pub fn from_json_rows_with_schema(rows: &[Value], schema: SchemaRef) -> Result<Self> {
        decode_json_values(rows, &|i| Position::Row(i + 1), Some(schema))
    }

    /// Writes the records as JSON row objects, with nulls written as explicit `null`s.
    pub fn to_json_rows(&self) -> Result<Vec<Value>> {
        let mut ndjson = Vec::new();
        self.to_ndjson(&mut ndjson)?;
        serde_json::Deserializer::from_slice(&ndjson)
            .into_iter::<Value>()
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|err| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("the JSON written for the records does not parse: {err}"),
                )
            })
    }

    /// Reads CSV.
    ///
    /// Reads the whole input, infers a schema from the first [`CsvOptions::infer_rows`] rows
    /// unless [`CsvOptions::schema`] is given, then decodes. A record with the wrong number of
    /// fields, or a value that does not parse as its column's type, is an error naming the line
    /// of the file the record starts on (the header is line 1; lines inside quoted fields
    /// count) and, for a value, the column: `line 4, column "amount": expected an integer, got
    /// "abc"`, with context pairs `line` and `column`. Empty input gives no rows.
    pub fn from_csv<R: Read>(mut reader: R, options: &CsvOptions) -> Result<Self> {
        let mut data = Vec::new();
        reader.read_to_end(&mut data)?;
        let format = Format::default()
            .with_header(options.has_header)
            .with_delimiter(options.delimiter);
        let blank = data.iter().all(u8::is_ascii_whitespace);
        let schema = match &options.schema {
            Some(schema) => schema.clone(),
            None if blank => return Ok(Records::empty(Arc::new(Schema::empty()))),
            None => infer_csv_schema(&data, &format, options.infer_rows)?,
        };
        if blank || schema.fields().is_empty() {
            return Ok(Records::empty(schema));
        }

        let reader = arrow_csv::ReaderBuilder::new(schema.clone())
            .with_format(format.clone())
            .with_batch_size(BATCH_SIZE)
            .build_buffered(&data[..])
            .map_err(|err| arrow_error(ErrorKind::InvalidInput, "cannot read CSV", err))?;
        let mut batches = Vec::new();
        let mut rows_read = 0;
        for batch in reader {
            match batch {
                Ok(batch) => {
                    rows_read += batch.num_rows();
                    batches.push(batch);
                }
                Err(err) => {
                    let records_before = rows_read + usize::from(options.has_header);
                    return Err(locate_csv_error(
                        &data,
                        &schema,
                        &format,
                        records_before,
                        err,
                    ));
                }
            }
        }
        Ok(Records { schema, batches })
    }

    /// Writes CSV with a header line (just the header when there are no rows).
    pub fn to_csv<W: Write>(&self, writer: W) -> Result<()> {
        if self.schema.fields().is_empty() {
            return Ok(());
        }
        let mut writer = arrow_csv::WriterBuilder::new()
            .with_header(true)
            .build(writer);
        let written = if self.batches.is_empty() {
            writer.write(&RecordBatch::new_empty(self.schema.clone()))
        } else {
            self.batches.iter().try_for_each(|b| writer.write(b))
        };
        written.map_err(|err| write_error("CSV", err))
    }

    /// Reads newline-delimited JSON: one object per line, blank lines skipped.
    ///
    /// A line that is not JSON, or not an object, is an error naming the line (1-based); a
    /// value that does not fit its column is an error naming the line and the column, as for
    /// [`Records::from_json_rows`]. Empty input gives records with an empty schema.
    pub fn from_ndjson<R: BufRead>(mut reader: R) -> Result<Self> {
        let mut data = Vec::new();
        reader.read_to_end(&mut data)?;
        match decode_ndjson(&data) {
            Ok(records) => Ok(records),
            Err(_) => {
                // Arrow's errors say neither line nor column: parse the lines one by one to
                // find them. If they then decode, the values path is as good an answer.
                let (values, lines) = parse_ndjson_lines(&data)?;
                decode_json_values(&values, &|i| Position::Line(lines[i]), None)
            }
        }
    }

    /// Writes newline-delimited JSON, one object per row, with nulls written as `null`s.
    pub fn to_ndjson<W: Write>(&self, writer: W) -> Result<()> {
        let mut writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, LineDelimited>(writer);
        self.batches
            .iter()
            .try_for_each(|b| writer.write(b))
            .and_then(|()| writer.finish())
            .map_err(|err| write_error("NDJSON", err))
    }

    /// Reads a Parquet file held in memory.
    ///
    /// A file that is not Parquet, or is corrupt or truncated, is a
    /// [`ErrorKind::CorruptData`] error.
    #[cfg(feature = "parquet")]
    pub fn from_parquet(data: bytes::Bytes) -> Result<Self> {
        use arrow_array::RecordBatchReader;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

        let corrupt = |err: &dyn fmt::Display| {
            Error::new(
                ErrorKind::CorruptData,
                format!("cannot read Parquet: {err}"),
            )
        };
        let read = move || -> Result<Records> {
            let reader = ParquetRecordBatchReaderBuilder::try_new(data)
                .and_then(|builder| builder.with_batch_size(BATCH_SIZE).build())
                .map_err(|err| corrupt(&err))?;
            let schema = reader.schema();
            let batches = reader
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|err| corrupt(&err))?;
            Records::new(schema, batches)
        };
        // The parquet crate has panicked on some malformed files rather than returning an
        // error; a corrupt file from outside must not take the process down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
            .unwrap_or_else(|_| Err(corrupt(&"the file is malformed")))
    }

    /// Writes the records as a Snappy-compressed Parquet file.
    #[cfg(feature = "parquet")]
    pub fn to_parquet<W: Write + Send>(&self, writer: W) -> Result<()> {
        use parquet::arrow::ArrowWriter;
        use parquet::basic::Compression;
        use parquet::errors::ParquetError;
        use parquet::file::properties::WriterProperties;

        let failed = |err: ParquetError| {
            let kind = match err {
                ParquetError::NYI(_) => ErrorKind::Unsupported,
                _ => ErrorKind::Unexpected,
            };
            Error::new(kind, format!("cannot write Parquet: {err}")).set_source(err)
        };
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer =
            ArrowWriter::try_new(writer, self.schema.clone(), Some(properties)).map_err(failed)?;
        for batch in &self.batches {
            writer.write(batch).map_err(failed)?;
        }
        writer.close().map_err(failed)?;
        Ok(())
    }
}

/// Where a record came from, for error messages: a row of a JSON array or a line of a file,
/// both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Row(usize),
    Line(usize),
}

impl Position {
    /// The context key the position is recorded under.
    fn key(self) -> &'static str {
        match self {
            Position::Row(_) => "row",
            Position::Line(_) => "line",
        }
    }

    fn number(self) -> usize {
        match self {
            Position::Row(n) | Position::Line(n) => n,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key(), self.number())
    }
}

/// An input error at `position` (and `column`), carrying both as context pairs.
fn error_at(position: Position, column: Option<&str>, problem: impl fmt::Display) -> Error {
    let message = match column {
        Some(column) => format!("{position}, column {column:?}: {problem}"),
        None => format!("{position}: {problem}"),
    };
    let err = Error::new(ErrorKind::InvalidInput, message)
        .with_context(position.key(), position.number());
    match column {
        Some(column) => err.with_context("column", column),
        None => err,
    }
}

/// An Arrow error that could not be placed at a row or line.
fn arrow_error(kind: ErrorKind, what: &str, err: ArrowError) -> Error {
    Error::new(kind, format!("{what}: {err}")).set_source(err)
}

/// An error from writing records in `format`: I/O failures keep their I/O kind.
fn write_error(format: &str, err: ArrowError) -> Error {
    let kind = match &err {
        ArrowError::IoError(_, io) => Error::from(std::io::Error::from(io.kind())).kind(),
        ArrowError::CsvError(_) | ArrowError::JsonError(_) | ArrowError::NotYetImplemented(_) => {
            ErrorKind::Unsupported
        }
        _ => ErrorKind::Unexpected,
    };
    arrow_error(kind, &format!("cannot write the records as {format}"), err)
}

/// What a column of `data_type` holds, for "expected ..." in error messages.
fn describe_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Null => "null".into(),
        DataType::Boolean => "a boolean".into(),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "an integer".into(),
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "a number".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "a string".into(),
        DataType::Date32 | DataType::Date64 => "a date (YYYY-MM-DD)".into(),
        DataType::Timestamp(..) => "a timestamp".into(),
        DataType::Time32(_) | DataType::Time64(_) => "a time of day".into(),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            "an array".into()
        }
        DataType::Struct(_) | DataType::Map(..) => "an object".into(),
        other => format!("a value of type {other}"),
    }
}

/// A JSON value as an error message quotes it: as JSON, cut short when long.
fn quote_value(value: &Value) -> String {
    match value {
        Value::String(text) => quote_text(text),
        other => shorten(&other.to_string()),
    }
}

/// Text as an error message quotes it: as a JSON string, cut short when long.
fn quote_text(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", Value::from(&text[..cut])),
        None => Value::from(text).to_string(),
    }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Decodes JSON objects into records; `position(i)` says where the `i`th value came from.
fn decode_json_values(
    values: &[Value],
    position: &dyn Fn(usize) -> Position,
    schema: Option<SchemaRef>,
) -> Result<Records> {
    if let Some(i) = values.iter().position(|v| !v.is_object()) {
        let problem = format!("expected a JSON object, got {}", json_type_name(&values[i]));
        return Err(error_at(position(i), None, problem));
    }
    let inferred = schema.is_none();
    let schema = match schema {
        Some(schema) => schema,
        None => {
            let rows = values.iter().map(Ok::<_, ArrowError>);
            match arrow_json::reader::infer_json_schema_from_iterator(rows) {
                Ok(schema) => Arc::new(schema),
                Err(err) => {
                    return Err(find_type_conflict(values, position).unwrap_or_else(|| {
                        arrow_error(ErrorKind::InvalidInput, "cannot infer a schema", err)
                    }));
                }
            }
        }
    };

    let mut batches = Vec::with_capacity(values.len().div_ceil(BATCH_SIZE));
    for (chunk_index, chunk) in values.chunks(BATCH_SIZE).enumerate() {
        match decode_json_chunk(&schema, chunk) {
            Ok(Some(batch)) => batches.push(batch),
            Ok(None) => {}
            Err(err) => {
                // Inference widens a column of mixed types to strings, and decoding then
                // fails at its first value that is not a string, which may be the one that
                // is right; the first value that breaks with the earlier rows is the culprit.
                let conflict = if inferred {
                    find_type_conflict(values, position)
                } else {
                    None
                };
                let first = chunk_index * BATCH_SIZE;
                let located =
                    conflict.or_else(|| find_misfit(&schema, chunk, &|i| position(first + i)));
                return Err(located.unwrap_or_else(|| {
                    arrow_error(ErrorKind::InvalidInput, "cannot decode the JSON rows", err)
                }));
            }
        }
    }
    Ok(Records { schema, batches })
}

fn decode_json_chunk(
    schema: &SchemaRef,
    chunk: &[Value],
) -> std::result::Result<Option<RecordBatch>, ArrowError> {
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_SIZE)
        .build_decoder()?;
    decoder.serialize(chunk)?;
    decoder.flush()
}

/// The first value whose JSON type differs from the type its column (or nested field, named
/// like `address.zip` or `tags[]`) had in the rows before it.
fn find_type_conflict(values: &[Value], position: &dyn Fn(usize) -> Position) -> Option<Error> {
    let mut seen = HashMap::new();
    values.iter().enumerate().find_map(|(i, row)| {
        let Value::Object(row) = row else { return None };
        row.iter().find_map(|(name, value)| {
            first_conflict(&mut seen, name.clone(), value).map(|(path, expected, got)| {
                let problem = format!("expected {expected}, got {}", quote_value(got));
                error_at(position(i), Some(&path), problem)
            })
        })
    })
}

/// Walks `value` at `path`, recording the JSON type seen first at each path, and returns the
/// first path whose type differs from what was recorded, with the expected type and the value.
fn first_conflict<'v>(
    seen: &mut HashMap<String, &'static str>,
    path: String,
    value: &'v Value,
) -> Option<(String, &'static str, &'v Value)> {
    if value.is_null() {
        return None;
    }
    let kind = json_type_name(value);
    match seen.get(&path) {
        Some(&expected) if expected != kind => return Some((path, expected, value)),
        Some(_) => {}
        None => {
            seen.insert(path.clone(), kind);
        }
    }
    match value {
        Value::Object(fields) => fields
            .iter()
            .find_map(|(name, field)| first_conflict(seen, format!("{path}.{name}"), field)),
        Value::Array(items) => {
            let item_path = format!("{path}[]");
            items
                .iter()
                .find_map(|item| first_conflict(seen, item_path.clone(), item))
        }
        _ => None,
    }
}

/// The first row of `chunk` that does not decode with `schema`, and in it the first column
/// whose value does not decode as the column's type. Decodes row by row, then column by
/// column, so it runs only after a whole batch has failed.
fn find_misfit(
    schema: &SchemaRef,
    chunk: &[Value],
    position: &dyn Fn(usize) -> Position,
) -> Option<Error> {
    chunk.iter().enumerate().find_map(|(i, row)| {
        let err = decode_json_chunk(schema, std::slice::from_ref(row)).err()?;
        let Value::Object(object) = row else {
            return None;
        };
        let misfit = schema.fields().iter().find_map(|field| {
            let value = object.get(field.name()).unwrap_or(&Value::Null);
            let single = Arc::new(Schema::new(vec![field.clone()]));
            let cell = serde_json::json!({ field.name(): value });
            decode_json_chunk(&single, std::slice::from_ref(&cell)).err()?;
            let expected = describe_type(field.data_type());
            let problem = format!("expected {expected}, got {}", quote_value(value));
            Some(error_at(position(i), Some(field.name()), problem))
        });
        Some(misfit.unwrap_or_else(|| error_at(position(i), None, err)))
    })
}

/// The fast path of [`Records::from_ndjson`]: Arrow infers and decodes straight from bytes.
fn decode_ndjson(data: &[u8]) -> std::result::Result<Records, ArrowError> {
    let (schema, _) = arrow_json::reader::infer_json_schema(data, None)?;
    let schema = Arc::new(schema);
    let batches = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_SIZE)
        .build(data)?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Records { schema, batches })
}

/// Parses each non-blank line as JSON, returning the values and their 1-based line numbers.
fn parse_ndjson_lines(data: &[u8]) -> Result<(Vec<Value>, Vec<usize>)> {
    let mut values = Vec::new();
    let mut lines = Vec::new();
    for (index, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value = serde_json::from_slice(line).map_err(|err| {
            // serde_json counts lines within the one line it was given; the column is right.
            let message = err.to_string();
            let reason = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(reason, _)| reason);
            let problem = format!("invalid JSON: {reason} at column {}", err.column());
            error_at(Position::Line(index + 1), None, problem)
        })?;
        values.push(value);
        lines.push(index + 1);
    }
    Ok((values, lines))
}

/// Infers a CSV schema with Arrow; a column empty in every row read becomes a string column.
fn infer_csv_schema(data: &[u8], format: &Format, infer_rows: usize) -> Result<SchemaRef> {
    // Rows of the wrong length are left for decoding to report, with their line numbers.
    let (schema, _) = format
        .clone()
        .with_truncated_rows(true)
        .infer_schema(data, Some(infer_rows))
        .map_err(|err| arrow_error(ErrorKind::InvalidInput, "cannot infer a CSV schema", err))?;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| match field.data_type() {
            // Arrow reads a Null column as nulls whatever it holds, which would drop values
            // that first appear after the rows inference read.
            DataType::Null => Field::new(field.name(), DataType::Utf8, true),
            _ => field.as_ref().clone(),
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// Every column of `schema` as a nullable string column.
fn text_schema(schema: &Schema) -> SchemaRef {
    text_schema_except(schema, None)
}

/// Every column of `schema` but the one at `keep` as a nullable string column.
fn text_schema_except(schema: &Schema, keep: Option<usize>) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| match keep {
            Some(keep) if keep == i => field.as_ref().clone(),
            _ => Field::new(field.name(), DataType::Utf8, true),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Decodes the CSV records in `data`, which has no header.
fn decode_csv(
    data: &[u8],
    schema: SchemaRef,
    format: &Format,
) -> std::result::Result<Vec<RecordBatch>, ArrowError> {
    arrow_csv::ReaderBuilder::new(schema)
        .with_format(format.clone().with_header(false))
        .with_batch_size(BATCH_SIZE)
        .build_buffered(data)?
        .collect()
}

/// Counts lines up to byte offsets that only move forward.
struct LineCounter<'a> {
    data: &'a [u8],
    offset: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(data: &'a [u8]) -> Self {
        LineCounter {
            data,
            offset: 0,
            line: 1,
        }
    }

    /// The line a record starts on, when the bytes before it end at `offset`: blank lines and
    /// the rest of a line ending are skipped, as the CSV reader skips them.
    fn line_of_record_at(&mut self, offset: usize) -> usize {
        let skipped = self.data[offset..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        let start = offset + skipped;
        if start < self.offset {
            *self = LineCounter::new(self.data);
        }
        self.line += self.data[self.offset..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = start;
        self.line
    }
}

/// Turns the error Arrow's CSV reader gave into one naming the line the bad record starts on,
/// and for a value that does not parse, the column.
///
/// Arrow's messages count records from zero at the header rather than lines, and miss lines
/// inside quoted fields, so the records are split again with Arrow's own reader, one at a
/// time with every column read as text, tracking the byte offset each starts at. Records at
/// index `records_before` and after (those of the batch that failed) are then decoded alone
/// with the real schema, and a failing one column by column.
fn locate_csv_error(
    data: &[u8],
    schema: &SchemaRef,
    format: &Format,
    records_before: usize,
    original: ArrowError,
) -> Error {
    let mut splitter = arrow_csv::ReaderBuilder::new(text_schema(schema))
        .with_format(format.clone().with_header(false))
        .with_batch_size(1)
        .build_decoder();
    let mut lines = LineCounter::new(data);
    let mut offset = 0;
    let mut record_start = 0;
    let mut record_index = 0;
    while record_index < records_before + BATCH_SIZE {
        let consumed = match splitter.decode(&data[offset..]) {
            Ok(consumed) => consumed,
            Err(err) => {
                let line = lines.line_of_record_at(record_start);
                let expected = schema.fields().len();
                return field_count_error(line, &data[record_start..], format, expected, &err);
            }
        };
        offset += consumed;
        if splitter.capacity() > 0 {
            if consumed == 0 {
                break; // the end of the input
            }
            continue; // part of a record; its end is in the bytes still to come
        }
        let line = lines.line_of_record_at(record_start);
        let text = match splitter.flush() {
            Ok(Some(text)) => text,
            Ok(None) => break,
            Err(_) => return error_at(Position::Line(line), None, "the record is not valid UTF-8"),
        };
        if record_index >= records_before {
            let record = &data[record_start..offset];
            if let Some(err) = check_csv_record(record, &text, schema, format, Position::Line(line))
            {
                return err;
            }
        }
        record_index += 1;
        record_start = offset;
    }
    arrow_error(ErrorKind::InvalidInput, "cannot read CSV", original)
}

/// An error for a record, the first in `data`, that does not have the `expected` number of
/// fields. Arrow's message says "got more than 2" when there are too many, so the fields are
/// counted again by reading the record as a header.
fn field_count_error(
    line: usize,
    data: &[u8],
    format: &Format,
    expected: usize,
    err: &ArrowError,
) -> Error {
    let counted = format
        .clone()
        .with_header(false)
        .with_truncated_rows(true)
        .infer_schema(data, Some(0))
        .map(|(record, _)| record.fields().len());
    let problem = match counted {
        Ok(got) if got != expected => format!("expected {expected} fields, got {got}"),
        _ => format!("{err}"),
    };
    error_at(Position::Line(line), None, problem)
}

/// Decodes one CSV record alone with `schema`, and when that fails, each column alone, to
/// say which value is at fault. `text` is the record read with every column as text.
fn check_csv_record(
    record: &[u8],
    text: &RecordBatch,
    schema: &SchemaRef,
    format: &Format,
    position: Position,
) -> Option<Error> {
    let err = decode_csv(record, schema.clone(), format).err()?;
    let Some(column) = (0..schema.fields().len())
        .find(|&i| decode_csv(record, text_schema_except(schema, Some(i)), format).is_err())
    else {
        return Some(error_at(position, None, err));
    };
    let field = schema.field(column);
    let raw = text
        .column(column)
        .as_string_opt::<i32>()
        .filter(|values| values.is_valid(0))
        .map(|values| values.value(0));
    let got = raw.map_or_else(|| "an empty value".to_owned(), quote_text);
    let expected = describe_type(field.data_type());
    let problem = format!("expected {expected}, got {got}");
    Some(error_at(position, Some(field.name()), problem))
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
