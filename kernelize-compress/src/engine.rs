//! Compression and decompression over any [`Codec`]: byte slices and streams, the output
//! limit, error offsets, trailing-data checks and statistics.

use std::cell::Cell;
use std::io::{BufRead, BufReader, ErrorKind as IoKind, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use kernelize_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::codec::{Codec, CompressOptions, DecompressOptions};

/// Size of the buffers streams are copied through.
const CHUNK: usize = 128 * 1024;

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Uncompressed in, compressed out.
    Compress,
    /// Compressed in, uncompressed out.
    Decompress,
}

/// What one compression or decompression did, measured.
///
/// `ratio` is uncompressed size over compressed size (higher is better); throughput is
/// uncompressed megabytes (10^6 bytes) per second of wall time, in both directions, so
/// figures for the two directions compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompressionStats {
    /// The codec.
    pub codec: String,
    /// The level used (compression only).
    pub level: Option<i32>,
    /// Which way.
    pub direction: Direction,
    /// Bytes read.
    pub input_bytes: u64,
    /// Bytes written.
    pub output_bytes: u64,
    /// Uncompressed size over compressed size; 0 when there was no compressed byte.
    pub ratio: f64,
    /// Uncompressed megabytes per second.
    pub throughput_mb_s: f64,
    /// Wall time.
    #[serde(with = "duration_secs")]
    pub wall_time: Duration,
    /// The codec's estimate of its working memory for these options, in bytes.
    pub memory_estimate: u64,
    /// Why this codec was chosen, when it was chosen automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<String>,
}

/// Serde for a `Duration` as seconds (`f64`), as statistics are written.
pub(crate) mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

impl CompressionStats {
    fn new(
        codec: &dyn Codec,
        level: Option<i32>,
        direction: Direction,
        input_bytes: u64,
        output_bytes: u64,
        wall_time: Duration,
        memory_estimate: u64,
    ) -> Self {
        let (uncompressed, compressed) = match direction {
            Direction::Compress => (input_bytes, output_bytes),
            Direction::Decompress => (output_bytes, input_bytes),
        };
        let ratio = if compressed == 0 {
            0.0
        } else {
            uncompressed as f64 / compressed as f64
        };
        let secs = wall_time.as_secs_f64();
        let throughput_mb_s = if secs > 0.0 {
            uncompressed as f64 / 1e6 / secs
        } else {
            0.0
        };
        CompressionStats {
            codec: codec.name().to_string(),
            level,
            direction,
            input_bytes,
            output_bytes,
            ratio,
            throughput_mb_s,
            wall_time,
            memory_estimate,
            choice: None,
        }
    }
}

/// Compresses a buffer.
pub fn compress(
    codec: &dyn Codec,
    data: &[u8],
    options: &CompressOptions,
) -> Result<(Vec<u8>, CompressionStats)> {
    let level = codec.levels().resolve(codec.name(), options.level)?;
    let mut options = options.clone();
    options.level = Some(level);
    options.size_hint.get_or_insert(data.len() as u64);
    let started = Instant::now();
    let out = codec
        .compress(data, &options)
        .map_err(|e| e.with_context("codec", codec.name()))?;
    let stats = CompressionStats::new(
        codec,
        Some(level),
        Direction::Compress,
        data.len() as u64,
        out.len() as u64,
        started.elapsed(),
        codec.memory_estimate(&options),
    );
    Ok((out, stats))
}

/// Decompresses a buffer, stopping at `options.max_output` bytes of output.
pub fn decompress(
    codec: &dyn Codec,
    data: &[u8],
    options: &DecompressOptions,
) -> Result<(Vec<u8>, CompressionStats)> {
    let started = Instant::now();
    if !data.is_empty()
        && let Some(Ok(out)) = codec.decompress_whole(data, options)
        && out.len() as u64 <= options.max_output
    {
        let stats = CompressionStats::new(
            codec,
            None,
            Direction::Decompress,
            data.len() as u64,
            out.len() as u64,
            started.elapsed(),
            0,
        );
        return Ok((out, stats));
    }
    // The streaming path: also the one that explains a failure of the fast path precisely.
    // Grow with the output rather than trusting any size the input claims.
    let mut out = Vec::with_capacity(
        data.len()
            .saturating_mul(3)
            .min(options.max_output as usize)
            .min(64 << 20),
    );
    let stats = decompress_stream(codec, &mut &data[..], &mut out, options)?;
    Ok((out, stats))
}

/// Compresses everything `input` yields into `output`, in bounded memory.
pub fn compress_stream(
    codec: &dyn Codec,
    input: &mut dyn Read,
    output: &mut dyn Write,
    options: &CompressOptions,
) -> Result<CompressionStats> {
    let level = codec.levels().resolve(codec.name(), options.level)?;
    let mut options = options.clone();
    options.level = Some(level);
    // Estimated for the options the encoder runs with (the size hint as given).
    let memory = codec.memory_estimate(&options);
    let started = Instant::now();
    let written = Rc::new(Cell::new(0u64));
    let counter = CountingWriter {
        inner: output,
        count: written.clone(),
    };
    let mut encoder = codec
        .encoder(Box::new(counter), &options)
        .map_err(|e| e.with_context("codec", codec.name()))?;
    let mut buf = vec![0u8; CHUNK];
    let mut read_total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == IoKind::Interrupted => continue,
            Err(e) => return Err(Error::from(e).with_context("input", read_total)),
        };
        read_total += n as u64;
        encoder
            .write_all(&buf[..n])
            .map_err(|e| Error::from(e).with_context("codec", codec.name()))?;
    }
    encoder
        .finish()
        .map_err(|e| e.with_context("codec", codec.name()))?;
    Ok(CompressionStats::new(
        codec,
        Some(level),
        Direction::Compress,
        read_total,
        written.get(),
        started.elapsed(),
        memory,
    ))
}

/// Decompresses everything `input` yields into `output`, in bounded memory, stopping with an
/// error before writing more than `options.max_output` bytes.
///
/// Corrupt or truncated input is an [`ErrorKind::CorruptData`] error naming the codec and
/// how far into the input the decoder had read; bytes after the end of the compressed stream
/// are an error too.
pub fn decompress_stream(
    codec: &dyn Codec,
    input: &mut dyn Read,
    output: &mut dyn Write,
    options: &DecompressOptions,
) -> Result<CompressionStats> {
    let started = Instant::now();
    // Bytes pulled from `input`, and bytes the decoder actually used; the difference at the
    // end is data after the stream.
    let pulled = Rc::new(Cell::new(0u64));
    let used = Rc::new(Cell::new(0u64));
    let source_failed = Rc::new(Cell::new(false));
    let corrupt = |e: std::io::Error, at: u64| -> Error {
        Error::new(
            ErrorKind::CorruptData,
            format!(
                "{} data is corrupt or truncated (at or before input byte {at}): {e}",
                codec.name()
            ),
        )
        .with_context("codec", codec.name())
        .with_context("offset", at)
        .set_permanent()
    };

    let mut produced = 0u64;
    {
        let mut source = TrackedBufRead {
            inner: BufReader::with_capacity(
                CHUNK,
                CountingReader {
                    inner: &mut *input,
                    count: pulled.clone(),
                    failed: source_failed.clone(),
                },
            ),
            used: used.clone(),
        };
        let empty = source
            .fill_buf()
            .map_err(|e| Error::from(e).with_context("input", 0))?
            .is_empty();
        if empty && !codec.empty_is_valid() {
            return Err(empty_input(codec));
        }
        let mut decoder = codec
            .decoder(Box::new(source), options)
            .map_err(|e| e.with_context("codec", codec.name()))?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) if source_failed.get() => {
                    return Err(Error::from(e).with_context("input", pulled.get()));
                }
                Err(e) => return Err(corrupt(e, used.get())),
            };
            if produced + n as u64 > options.max_output {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "decompressed {} data exceeds the output limit of {} bytes; raise the limit (max_output) if this input is trusted",
                        codec.name(),
                        options.max_output
                    ),
                )
                .with_context("codec", codec.name())
                .with_context("max_output", options.max_output)
                .set_permanent());
            }
            output
                .write_all(&buf[..n])
                .map_err(|e| Error::from(e).with_context("output", produced))?;
            produced += n as u64;
        }
    }
    // The decoder has seen the end of its stream; anything left is not part of it: bytes it
    // buffered but did not use, or bytes still unread in `input`.
    let total_in = used.get();
    let mut probe = [0u8; 1];
    let unread = loop {
        match input.read(&mut probe) {
            Ok(n) => break n,
            Err(e) if e.kind() == IoKind::Interrupted => continue,
            Err(e) => return Err(Error::from(e).with_context("input", pulled.get())),
        }
    };
    if pulled.get() > total_in || unread > 0 {
        return Err(Error::new(
            ErrorKind::CorruptData,
            format!(
                "unexpected data after the end of the {} stream, at input byte {total_in}",
                codec.name()
            ),
        )
        .with_context("codec", codec.name())
        .with_context("offset", total_in));
    }
    output
        .flush()
        .map_err(|e| Error::from(e).with_context("output", produced))?;
    Ok(CompressionStats::new(
        codec,
        None,
        Direction::Decompress,
        total_in,
        produced,
        started.elapsed(),
        0,
    ))
}

fn empty_input(codec: &dyn Codec) -> Error {
    Error::new(
        ErrorKind::CorruptData,
        format!("empty input is not a {} stream", codec.name()),
    )
    .with_context("codec", codec.name())
    .with_context("offset", 0)
}

/// A buffered reader that counts the bytes its user actually consumed.
struct TrackedBufRead<R> {
    inner: BufReader<R>,
    used: Rc<Cell<u64>>,
}

impl<R: Read> Read for TrackedBufRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.used.set(self.used.get() + n as u64);
        Ok(n)
    }
}

impl<R: Read> BufRead for TrackedBufRead<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.used.set(self.used.get() + amt as u64);
        self.inner.consume(amt);
    }
}

struct CountingReader<'a> {
    inner: &'a mut dyn Read,
    count: Rc<Cell<u64>>,
    failed: Rc<Cell<bool>>,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count.set(self.count.get() + n as u64);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != IoKind::Interrupted {
                    self.failed.set(true);
                }
                Err(e)
            }
        }
    }
}

struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    count: Rc<Cell<u64>>,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
