//! The [`Codec`] trait every compression format implements, and its options.
//!
//! A codec is a stateless description of one format (zstd, LZ4 frame, ...) that makes
//! streaming encoders and decoders. Everything else — byte-slice helpers, output limits,
//! statistics, detection, plugins, async streaming — is built once on top of it, in
//! [`crate::engine`] and [`crate::plugin`].

use std::io::{BufRead, Read, Write};
use std::sync::Arc;

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default most bytes a decompression may produce: 1 GiB.
pub const DEFAULT_MAX_OUTPUT: u64 = 1 << 30;

/// The levels a codec accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LevelRange {
    /// Lowest level (fastest).
    pub min: i32,
    /// Highest level (smallest output).
    pub max: i32,
    /// Level used when none is given.
    pub default: i32,
}

impl LevelRange {
    /// A codec with no levels (`none`, snappy): only level 0.
    pub const NONE: LevelRange = LevelRange {
        min: 0,
        max: 0,
        default: 0,
    };

    /// Whether `level` is accepted.
    pub fn contains(&self, level: i32) -> bool {
        (self.min..=self.max).contains(&level)
    }

    /// `level`, or the default when `None`; an error naming the range when out of it.
    pub fn resolve(&self, codec: &str, level: Option<i32>) -> Result<i32> {
        let level = level.unwrap_or(self.default);
        if self.contains(level) {
            Ok(level)
        } else if self.min == self.max {
            Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{codec} has no compression levels; got level {level}"),
            ))
        } else {
            Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{codec} accepts levels {} to {}; got {level}",
                    self.min, self.max
                ),
            ))
        }
    }
}

/// How to compress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CompressOptions {
    /// Compression level; `None` for the codec's default. Brotli calls it quality.
    pub level: Option<i32>,
    /// Write a content checksum where the format has one (zstd, LZ4 frame); default on.
    pub checksum: bool,
    /// zstd long-distance matching (finds repeats far apart; more memory).
    pub long_distance: bool,
    /// Window size as a power of two (zstd `windowLog`, brotli `lgwin`); `None` for the
    /// codec's default for the level.
    pub window_log: Option<u32>,
    /// Worker threads for codecs that can use several (zstd). `None`: one thread below
    /// `threads_above` bytes of input, all cores above it. `Some(0)`: always one.
    pub threads: Option<u32>,
    /// Input size above which `threads: None` uses every core (default 4 MiB).
    pub threads_above: u64,
    /// The input's size, when known ahead: lets codecs size buffers and record it in the
    /// frame header.
    pub size_hint: Option<u64>,
    /// A dictionary (zstd); the same one is needed to decompress.
    #[serde(skip)]
    #[schemars(skip)]
    pub dictionary: Option<Arc<Vec<u8>>>,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            level: None,
            checksum: true,
            long_distance: false,
            window_log: None,
            threads: None,
            threads_above: 4 << 20,
            size_hint: None,
            dictionary: None,
        }
    }
}

impl CompressOptions {
    /// Options at `level`, otherwise default.
    pub fn level(level: i32) -> Self {
        CompressOptions {
            level: Some(level),
            ..Default::default()
        }
    }

    /// Worker threads to use given the input size (when known).
    pub fn worker_threads(&self) -> u32 {
        match self.threads {
            Some(n) => n,
            None => match self.size_hint {
                Some(size) if size > self.threads_above => std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(1),
                _ => 0,
            },
        }
    }
}

/// How to decompress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DecompressOptions {
    /// Most bytes the decompressed output may have; decompression stops with an error as soon
    /// as it would pass this, without producing (or allocating) the rest. Default 1 GiB.
    pub max_output: u64,
    /// A dictionary (zstd); must be the one the data was compressed with.
    #[serde(skip)]
    #[schemars(skip)]
    pub dictionary: Option<Arc<Vec<u8>>>,
}

impl Default for DecompressOptions {
    fn default() -> Self {
        DecompressOptions {
            max_output: DEFAULT_MAX_OUTPUT,
            dictionary: None,
        }
    }
}

impl DecompressOptions {
    /// Default options with another output limit.
    pub fn max_output(max_output: u64) -> Self {
        DecompressOptions {
            max_output,
            ..Default::default()
        }
    }
}

/// A streaming encoder: write uncompressed bytes, then `finish` to write the frame's end.
///
/// Dropping an encoder without `finish` leaves a truncated frame, which decoders reject.
pub trait Encoder: Write {
    /// Writes whatever the format needs at the end and flushes.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// One compression format.
///
/// Implementations are stateless unit structs; [`crate::codecs()`] lists the enabled ones.
/// Decoders must report corrupt or truncated input as an I/O error (the engine turns it into
/// a [`ErrorKind::CorruptData`] error naming the codec and the input offset), must never
/// panic, and must not allocate in proportion to sizes claimed by the input.
pub trait Codec: Send + Sync + 'static {
    /// The codec's name and plugin id: `zstd`, `lz4`, `snappy`, `brotli`, `gzip`, `deflate`,
    /// `none`.
    fn name(&self) -> &'static str;

    /// Media type of compressed output, such as `application/zstd`.
    fn media_type(&self) -> &'static str;

    /// Usual file extension, without the dot (`zst`).
    fn extension(&self) -> &'static str;

    /// Levels accepted.
    fn levels(&self) -> LevelRange;

    /// The bytes every stream of this format starts with, if it has such a mark.
    fn magic(&self) -> Option<&'static [u8]>;

    /// Whether zero bytes are a valid stream of this format. Only stored data (`none`)
    /// says yes; every framed format writes something even for empty input.
    fn empty_is_valid(&self) -> bool {
        false
    }

    /// Working memory of the compressor, in bytes, for these options (an estimate from the
    /// format's documented window and table sizes).
    fn memory_estimate(&self, options: &CompressOptions) -> u64;

    /// An encoder writing compressed bytes to `output`.
    fn encoder<'a>(
        &self,
        output: Box<dyn Write + 'a>,
        options: &CompressOptions,
    ) -> Result<Box<dyn Encoder + 'a>>;

    /// A decoder reading compressed bytes from `input`.
    fn decoder<'a>(
        &self,
        input: Box<dyn BufRead + 'a>,
        options: &DecompressOptions,
    ) -> Result<Box<dyn Read + 'a>>;

    /// Decompresses a whole buffer in one call, when the codec has a faster path than
    /// streaming for this input; `None` when it has not (the engine then streams).
    ///
    /// It must stay within `options.max_output` and refuse trailing data. Its errors need not
    /// be precise: on any error the engine decompresses again through [`Codec::decoder`],
    /// which reports the offset.
    fn decompress_whole(
        &self,
        data: &[u8],
        options: &DecompressOptions,
    ) -> Option<Result<Vec<u8>>> {
        let _ = (data, options);
        None
    }

    /// Compresses a whole buffer. The default streams through [`Codec::encoder`]; codecs
    /// override it with the library's own one-shot call where that is faster.
    fn compress(&self, data: &[u8], options: &CompressOptions) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut encoder = self.encoder(Box::new(&mut out), options)?;
        encoder.write_all(data)?;
        encoder.finish()?;
        Ok(out)
    }
}

/// Whether a decompressed size that an input of `input_len` bytes claims in its header is
/// worth allocating up front: within `max_output`, and at most `max_ratio` times the input
/// (or `floor` bytes, whichever is larger). Larger claims stream instead, growing with what
/// actually decodes.
pub fn plausible_size(
    claimed: u64,
    input_len: usize,
    max_ratio: u64,
    floor: u64,
    max_output: u64,
) -> bool {
    claimed <= max_output && claimed <= (input_len as u64).saturating_mul(max_ratio).max(floor)
}

impl std::fmt::Debug for dyn Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Codec({})", self.name())
    }
}

/// Wraps a `Write` whose end-of-stream is written by a closure (for libraries whose
/// `finish` consumes the writer and returns it).
pub struct FinishWith<W: Write, F: FnOnce(W) -> std::io::Result<()>> {
    inner: Option<W>,
    finish: Option<F>,
}

impl<W: Write, F: FnOnce(W) -> std::io::Result<()>> FinishWith<W, F> {
    /// Wraps `inner`, to be ended by `finish`.
    pub fn new(inner: W, finish: F) -> Self {
        FinishWith {
            inner: Some(inner),
            finish: Some(finish),
        }
    }

    fn inner(&mut self) -> std::io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the encoder was already finished"))
    }
}

impl<W: Write, F: FnOnce(W) -> std::io::Result<()>> Write for FinishWith<W, F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner()?.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner()?.flush()
    }
}

impl<W: Write, F: FnOnce(W) -> std::io::Result<()>> Encoder for FinishWith<W, F> {
    fn finish(mut self: Box<Self>) -> Result<()> {
        match (self.inner.take(), self.finish.take()) {
            (Some(inner), Some(finish)) => Ok(finish(inner)?),
            _ => Err(Error::new(
                ErrorKind::InvalidState,
                "the encoder was already finished",
            )),
        }
    }
}
