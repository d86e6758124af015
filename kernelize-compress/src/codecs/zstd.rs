//! `zstd`: Zstandard frames (RFC 8878), through the [`zstd`] crate, a binding to the C
//! library libzstd (1.5.7, built from source by `zstd-sys`).
//!
//! Output is standard zstd frames, so the `zstd` command line reads it and this codec reads
//! the command's output: several frames one after another (`cat a.zst b.zst`), skippable
//! frames, frames written with dictionaries, and long-distance frames (`zstd --long=N`) whose
//! window fits the output limit (see *Decoding*).
//!
//! # Library choice
//!
//! The alternative was the pure-Rust `ruzstd`. Its decoder is complete but, by its own
//! account, 1.4 to 3.5 times slower than libzstd's, and its encoder offers four levels
//! (roughly zstd's 1, 3, 7 and 11) with no long-distance mode, multithreading or
//! dictionary training. The options this codec exposes (levels to 22, `--long`, threads,
//! dictionaries) exist only in libzstd, so the binding was chosen, at the cost of a C
//! compiler at build time.
//!
//! # Options
//!
//! - **Level** 1 to 22, default [`DEFAULT_LEVEL`] (3), as in the `zstd` command. Levels 20 to
//!   22 (the command's `--ultra` levels) use windows of 32 to 128 MiB and hundreds of MiB of
//!   memory (see [`Codec::memory_estimate`]); negative ("fast") levels are not offered.
//! - **`checksum`** (default on, like the command): the low 32 bits of an xxHash64 of the
//!   content end each frame, so corruption is an error rather than wrong bytes. libzstd's own
//!   default is off.
//! - **`long_distance`**: long-distance matching, like `zstd --long`: finds repeats far apart.
//!   Without `window_log` libzstd then uses a 128 MiB window (`2^27`), as `--long` does.
//! - **`window_log`** 10 to 31 (1 KiB to 2 GiB): the largest back-reference distance. Outside
//!   that range it is an invalid-input error. Frames with a window above 2^27 need the same
//!   allowance to decode: `zstd -d --long=31` (or `--memory=2GB`) on the command line, a large
//!   enough `max_output` here.
//! - **`threads`**: worker threads ([`CompressOptions::worker_threads`], at most 256); with
//!   one or more, libzstd compresses jobs of 4 times the window (1 MiB at least) in parallel.
//!   libzstd itself stays single-threaded for inputs known to be 512 KiB or smaller. The
//!   output is still a standard frame, though not the same bytes as single-threaded output.
//! - **`size_hint`**: the streaming encoder pledges it, so the frame header records the
//!   content size (as the command does for files) and libzstd sizes its window and tables to
//!   the input. Writing a different number of bytes is then an invalid-input error.
//! - **`dictionary`**: compress with a dictionary (trained with [`train_dictionary`] or
//!   `zstd --train`, or any bytes as a raw-content dictionary); the same one is needed to
//!   decompress. See [`load_dictionary`] and [`check_dictionary`].
//!
//! # Whole buffers
//!
//! [`Codec::compress`] is libzstd's one-shot `ZSTD_compress2`, through
//! [`zstd::bulk::Compressor`]: the output is byte for byte what a caller gets from
//! `zstd::bulk::Compressor::new(level)` with the same parameters set (with the default
//! options: `include_checksum(true)`; with `checksum: false` as well, exactly
//! `zstd::bulk::compress(data, level)`). It needs no input buffer or copy, writes into one
//! allocation of `compress_bound(len)` bytes, and records the content size. Measured against
//! the streaming encoder on the same buffer (2-core AMD EPYC VM, 2026-11-26, release, one
//! thread, best of 5): Silesia dickens 320 against 280 MB/s at level 1, 160 against 142 at
//! level 3, 35 against 33 at level 9; xml 727 against 630, 537 against 481, 109 against 107.
//!
//! # Decoding
//!
//! [`zstd::stream::read::Decoder`] reads the engine's buffered input directly, frame after
//! frame until the input ends; input that ends inside a frame is an error ("incomplete
//! frame"), and so is anything after the last frame that is not another frame.
//!
//! A frame declares its window size, and the decoder keeps that much of the output as
//! history, so the window is where a hostile frame could ask for memory. The decoder accepts
//! windows up to `2^w` bytes, where `w` is the smallest power of two holding `max_output`,
//! but at least 27 (libzstd's and the command's default limit, 128 MiB) and at most 31
//! (zstd's maximum): with the default 1 GiB output limit, `w` = 30. A window larger than the
//! whole permitted output can never be needed by a frame whose content fits that output, so
//! this refuses nothing that could have decoded within the limit, except frames that declare
//! more window than content: `zstd --long=31` on a stream of unknown size writes a 2 GiB
//! window whatever the content, and reading it needs a `max_output` above 1 GiB (the command
//! equally needs `--long=31` to read it). Within the limit, libzstd allocates the window
//! buffer when a frame starts (capped by the frame's content size when the header gives
//! one). Where the operating system commits memory lazily (Linux by default), its pages
//! become resident only as decoded output fills them, so resident memory grows with the
//! output produced, which `max_output` bounds; where it does not, the allocation can fail,
//! which is an error, not a crash.

use std::io::{self, BufRead, Read, Write};
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;

use kernelize_core::{Error, ErrorKind, Result};
use zstd::zstd_safe::CParameter;
use zstd::zstd_safe::zstd_sys::ZSTD_ErrorCode;

use crate::codec::{
    Codec, CompressOptions, DecompressOptions, Encoder, LevelRange, plausible_size,
};

/// The magic bytes every zstd frame starts with (`0xFD2FB528`, little-endian).
pub const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The level used when none is given: 3, as in the `zstd` command and libzstd.
pub const DEFAULT_LEVEL: i32 = 3;

/// The levels accepted: 1 (fastest) to 22 (smallest, with the most memory).
pub const LEVELS: LevelRange = LevelRange {
    min: 1,
    max: 22,
    default: DEFAULT_LEVEL,
};

/// The window sizes accepted, as powers of two: 1 KiB to 2 GiB.
pub const WINDOW_LOGS: RangeInclusive<u32> = 10..=31;

/// The fewest samples [`train_dictionary`] accepts. zstd's trainer wants many samples
/// (the `zstd` command suggests a total of about 100 times the dictionary size); below this,
/// the result would not be worth using.
pub const MIN_TRAINING_SAMPLES: usize = 10;

/// The smallest dictionary zstd's trainer writes.
const MIN_DICTIONARY_SIZE: usize = 256;

/// libzstd's default decoder window limit, `ZSTD_WINDOWLOG_LIMIT_DEFAULT`: 128 MiB.
const DEFAULT_WINDOW_LOG_LIMIT: u32 = 27;

/// libzstd's most worker threads on 64-bit systems (`ZSTDMT_NBWORKERS_MAX`).
const MAX_WORKERS: u32 = 256;

/// The zstd codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZstdCodec;

/// The one instance.
pub static ZSTD: ZstdCodec = ZstdCodec;

/// Trains a dictionary of at most `max_size` bytes on `samples` (typical small inputs of the
/// kind it will compress), with zstd's default trainer (fast cover), like `zstd --train`.
///
/// Fewer than [`MIN_TRAINING_SAMPLES`] samples, a `max_size` under 256 bytes, or samples the
/// trainer refuses (too few or too small for the size asked: zstd wants a total of many
/// times the dictionary size) are an invalid-input error carrying zstd's own message.
pub fn train_dictionary(samples: &[Vec<u8>], max_size: usize) -> Result<Vec<u8>> {
    if samples.len() < MIN_TRAINING_SAMPLES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "training a zstd dictionary needs at least {MIN_TRAINING_SAMPLES} samples \
                 (ideally hundreds, about 100 times the dictionary size in total); got {}",
                samples.len()
            ),
        ));
    }
    if max_size < MIN_DICTIONARY_SIZE {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "a zstd dictionary needs at least {MIN_DICTIONARY_SIZE} bytes; asked for {max_size}"
            ),
        ));
    }
    let total: usize = samples.iter().map(Vec::len).sum();
    zstd::dict::from_samples(samples, max_size).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "zstd could not train a {max_size}-byte dictionary on {} samples of {total} \
                 bytes in total: {e}; give more or larger samples, or a smaller size",
                samples.len()
            ),
        )
        .with_context("samples", samples.len())
    })
}

/// Checks that `bytes` are a dictionary zstd accepts, ready for
/// [`CompressOptions::dictionary`] and [`DecompressOptions::dictionary`].
///
/// A trained dictionary (from [`train_dictionary`] or `zstd --train`, starting with the
/// dictionary magic `37 a4 30 ec`) must parse; any other bytes are used as raw content, which
/// zstd allows. Empty bytes are an invalid-input error (they would mean no dictionary).
pub fn check_dictionary(bytes: Vec<u8>) -> Result<Arc<Vec<u8>>> {
    if bytes.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "a zstd dictionary cannot be empty",
        ));
    }
    zstd::dict::DecoderDictionary::try_copy(&bytes).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("not a usable zstd dictionary: {e}"),
        )
    })?;
    Ok(Arc::new(bytes))
}

/// Reads a dictionary file and checks it with [`check_dictionary`].
pub fn load_dictionary(path: impl AsRef<Path>) -> Result<Arc<Vec<u8>>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path)
        .map_err(|e| Error::from(e).with_context("dictionary", path.display()))?;
    check_dictionary(bytes).map_err(|e| e.with_context("dictionary", path.display()))
}

/// The options, checked and resolved into what libzstd is given.
struct Settings<'o> {
    level: i32,
    dictionary: &'o [u8],
    parameters: Vec<CParameter>,
}

fn settings(options: &CompressOptions) -> Result<Settings<'_>> {
    let level = LEVELS.resolve("zstd", options.level)?;
    let mut parameters = vec![CParameter::ChecksumFlag(options.checksum)];
    if options.long_distance {
        parameters.push(CParameter::EnableLongDistanceMatching(true));
    }
    if let Some(window_log) = options.window_log {
        if !WINDOW_LOGS.contains(&window_log) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "zstd window_log must be {} to {} (a window of 1 KiB to 2 GiB); \
                     got {window_log}",
                    WINDOW_LOGS.start(),
                    WINDOW_LOGS.end()
                ),
            ));
        }
        parameters.push(CParameter::WindowLog(window_log));
    }
    let workers = options.worker_threads().min(MAX_WORKERS);
    if workers > 0 {
        parameters.push(CParameter::NbWorkers(workers));
    }
    Ok(Settings {
        level,
        dictionary: options.dictionary.as_deref().map_or(&[], Vec::as_slice),
        parameters,
    })
}

fn parameter_error(e: io::Error) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("zstd refused a compression parameter: {e}"),
    )
}

fn dictionary_error(e: io::Error) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("zstd refused the dictionary: {e}"),
    )
}

/// The streaming encoder: libzstd's, holding the caller to the size it pledged.
struct ZstdEncoder<'a> {
    inner: Option<zstd::stream::write::Encoder<'static, Box<dyn Write + 'a>>>,
    pledged: Option<u64>,
    written: u64,
}

impl<'a> ZstdEncoder<'a> {
    fn inner(
        &mut self,
    ) -> io::Result<&mut zstd::stream::write::Encoder<'static, Box<dyn Write + 'a>>> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("the encoder was already finished"))
    }
}

impl Write for ZstdEncoder<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(pledged) = self.pledged
            && self.written + buf.len() as u64 > pledged
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("size_hint promised {pledged} bytes of input, but more were written"),
            ));
        }
        let n = self.inner()?.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner()?.flush()
    }
}

impl Encoder for ZstdEncoder<'_> {
    fn finish(mut self: Box<Self>) -> Result<()> {
        let encoder = self.inner.take().ok_or_else(|| {
            Error::new(ErrorKind::InvalidState, "the encoder was already finished")
        })?;
        if let Some(pledged) = self.pledged
            && self.written != pledged
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "size_hint promised {pledged} bytes of input, but {} were written",
                    self.written
                ),
            ));
        }
        let mut output = encoder.finish()?;
        Ok(output.flush()?)
    }
}

/// The smallest window limit (as a power of two) that lets a frame use a window as large as
/// the permitted output, within libzstd's default (27) and maximum (31).
fn window_log_limit(max_output: u64) -> u32 {
    let needed = 64 - max_output.saturating_sub(1).leading_zeros();
    needed.clamp(DEFAULT_WINDOW_LOG_LIMIT, *WINDOW_LOGS.end())
}

/// libzstd's decoder, with its terse errors turned into advice where there is some to give.
struct ZstdReader<R: BufRead> {
    inner: zstd::stream::read::Decoder<'static, R>,
    window_log_limit: u32,
    started: bool,
}

impl<R: BufRead> ZstdReader<R> {
    fn explain(&self, e: io::Error) -> io::Error {
        let Some(code) = e
            .get_ref()
            .and_then(|e| e.downcast_ref::<zstd::Error>())
            .copied()
        else {
            return e;
        };
        let limit = self.window_log_limit;
        let advice = if code.is(ZSTD_ErrorCode::ZSTD_error_frameParameter_windowTooLarge) {
            if limit < *WINDOW_LOGS.end() {
                format!(
                    "the frame needs a window larger than 2^{limit} bytes, more than the output \
                     limit allows; raise max_output above {} bytes if the input is trusted",
                    1u64 << limit
                )
            } else {
                "the frame needs a window larger than 2 GiB, more than zstd allows".to_string()
            }
        } else if code.is(ZSTD_ErrorCode::ZSTD_error_dictionary_wrong) {
            "the data was compressed with a dictionary, and not the one given (or none was)"
                .to_string()
        } else if code.is(ZSTD_ErrorCode::ZSTD_error_prefix_unknown) {
            "bytes that do not start a zstd frame (not zstd data, or data after the last frame)"
                .to_string()
        } else {
            return e;
        };
        io::Error::new(io::ErrorKind::InvalidData, format!("{advice} ({code})"))
    }
}

impl<R: BufRead> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.started = true;
            // No input at all is not an "incomplete frame": end here, and the engine reports
            // the empty input as such.
            if self.inner.get_mut().fill_buf()?.is_empty() {
                return Ok(0);
            }
        }
        self.inner.read(buf).map_err(|e| self.explain(e))
    }
}

impl Codec for ZstdCodec {
    fn name(&self) -> &'static str {
        "zstd"
    }

    fn media_type(&self) -> &'static str {
        "application/zstd"
    }

    fn extension(&self) -> &'static str {
        "zst"
    }

    fn levels(&self) -> LevelRange {
        LEVELS
    }

    fn magic(&self) -> Option<&'static [u8]> {
        Some(&MAGIC)
    }

    /// libzstd's working memory for these options, computed from its parameter tables the way
    /// `ZSTD_estimateCStreamSize` does (that function is in libzstd's experimental API, which
    /// this build does not enable): hash, chain and match-finder tables for the level, sized
    /// down to the input when `size_hint` is known; the window-sized input buffer of the
    /// streaming encoder; the long-distance table (with `long_distance`, and at level 22,
    /// where libzstd turns it on itself); and with worker threads, each worker's context and
    /// buffers plus the shared job buffer. A dictionary adds its size and its own (small)
    /// tables, and makes libzstd use those small tables for large inputs too. The one-shot
    /// path ([`Codec::compress`]) needs no window buffer, so this bounds both. Tests hold the
    /// estimate to within 10 % of what libzstd reports using (it comes within 1 %).
    fn memory_estimate(&self, options: &CompressOptions) -> u64 {
        memory::streaming(&memory::Plan::from_options(options))
    }

    fn encoder<'a>(
        &self,
        output: Box<dyn Write + 'a>,
        options: &CompressOptions,
    ) -> Result<Box<dyn Encoder + 'a>> {
        let settings = settings(options)?;
        let mut encoder = zstd::stream::write::Encoder::with_dictionary(
            output,
            settings.level,
            settings.dictionary,
        )
        .map_err(dictionary_error)?;
        for parameter in settings.parameters {
            encoder.set_parameter(parameter).map_err(parameter_error)?;
        }
        if let Some(size) = options.size_hint {
            encoder
                .set_pledged_src_size(Some(size))
                .map_err(parameter_error)?;
        }
        Ok(Box::new(ZstdEncoder {
            inner: Some(encoder),
            pledged: options.size_hint,
            written: 0,
        }))
    }

    fn decoder<'a>(
        &self,
        input: Box<dyn BufRead + 'a>,
        options: &DecompressOptions,
    ) -> Result<Box<dyn Read + 'a>> {
        let dictionary = options.dictionary.as_deref().map_or(&[][..], Vec::as_slice);
        let mut decoder = zstd::stream::read::Decoder::with_dictionary(input, dictionary)
            .map_err(dictionary_error)?;
        let window_log_limit = window_log_limit(options.max_output);
        decoder
            .window_log_max(window_log_limit)
            .map_err(parameter_error)?;
        Ok(Box::new(ZstdReader {
            inner: decoder,
            window_log_limit,
            started: false,
        }))
    }

    /// One `ZSTD_decompressDCtx` call into a buffer of the size the frame header records
    /// (the zstd command and our compressor record it), when that size is within
    /// `max_output` and plausible for the input's length; the checksum is verified as in
    /// streaming. Frames without a recorded size, and concatenated frames, take the
    /// streaming path.
    fn decompress_whole(
        &self,
        data: &[u8],
        options: &DecompressOptions,
    ) -> Option<Result<Vec<u8>>> {
        let size = zstd::zstd_safe::get_frame_content_size(data).ok()??;
        // The size is the input's claim: allocate it up front only when it is plausible for
        // this much input (at most 64 times as large, or 1 MiB). Higher ratios (long runs
        // of zeros) stream, growing with what actually decodes.
        if !plausible_size(size, data.len(), 64, 1 << 20, options.max_output) {
            return None;
        }
        let size = usize::try_from(size).ok()?;
        let dictionary = options.dictionary.as_deref().map_or(&[][..], Vec::as_slice);
        let run = || -> Result<Vec<u8>> {
            let mut decompressor =
                zstd::bulk::Decompressor::with_dictionary(dictionary).map_err(dictionary_error)?;
            decompressor
                .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(window_log_limit(
                    options.max_output,
                )))
                .map_err(parameter_error)?;
            let mut out = Vec::with_capacity(size);
            decompressor.decompress_to_buffer(data, &mut out)?;
            if out.len() != size {
                return Err(Error::new(
                    ErrorKind::CorruptData,
                    "zstd frame content size does not match its data",
                ));
            }
            Ok(out)
        };
        Some(run())
    }

    /// One `ZSTD_compress2` call through [`zstd::bulk::Compressor`] (see the module docs):
    /// the same bytes as the raw crate at the same settings. `size_hint` is taken to be the
    /// buffer's length (for the thread count; libzstd records the true size itself).
    fn compress(&self, data: &[u8], options: &CompressOptions) -> Result<Vec<u8>> {
        let mut options = options.clone();
        options.size_hint = Some(data.len() as u64);
        let settings = settings(&options)?;
        let mut compressor =
            zstd::bulk::Compressor::with_dictionary(settings.level, settings.dictionary)
                .map_err(dictionary_error)?;
        for parameter in settings.parameters {
            compressor
                .set_parameter(parameter)
                .map_err(parameter_error)?;
        }
        Ok(compressor.compress(data)?)
    }
}

/// libzstd's working memory, estimated from the parameters it would pick.
///
/// This follows `ZSTD_estimateCCtxSize_usingCCtxParams_internal` and
/// `ZSTD_estimateCStreamSize` in libzstd 1.5.7 (`lib/compress/zstd_compress.c`) and the
/// job sizing of `zstdmt_compress.c`, with the parameter tables of `clevels.h`. The fixed
/// part (entropy workspaces, block states, the context itself) is one calibrated constant.
mod memory {
    use super::{CompressOptions, LEVELS, MAX_WORKERS, WINDOW_LOGS};

    const FAST: u32 = 1;
    const DFAST: u32 = 2;
    const GREEDY: u32 = 3;
    const LAZY2: u32 = 5;
    const BTLAZY2: u32 = 6;
    const BTOPT: u32 = 7;
    const BTULTRA: u32 = 8;

    const KIB: u64 = 1024;
    const BLOCK_MAX: u64 = 128 * KIB;

    /// Entropy workspaces, block states and the context structure, measured against
    /// `ZSTD_sizeof_CCtx` (see the tests).
    const FIXED: u64 = 25 * KIB;
    /// A digested dictionary's own structure and entropy workspace.
    const DICTIONARY_FIXED: u64 = 16 * KIB;
    /// The optimal parser's tables (levels using btopt and above).
    const OPT_SPACE: u64 = 150 * KIB;
    /// The `zstd` crate's output buffer in the streaming encoder.
    const WRITER_BUFFER: u64 = 32 * KIB;
    /// Below this pledged size, libzstd does not start worker threads.
    const MT_MIN_SIZE: u64 = 512 * KIB;

    /// `clevels.h`, levels 1 to 22: window log, chain log, hash log, minimum match,
    /// strategy (1 = fast to 9 = btultra2).
    const LARGE: [[u8; 5]; 22] = [
        [19, 13, 14, 7, 1],
        [20, 15, 16, 6, 1],
        [21, 16, 17, 5, 2],
        [21, 18, 18, 5, 2],
        [21, 18, 19, 5, 3],
        [21, 18, 19, 5, 4],
        [21, 19, 20, 5, 4],
        [21, 19, 20, 5, 5],
        [22, 20, 21, 5, 5],
        [22, 21, 22, 5, 5],
        [22, 21, 22, 5, 5],
        [22, 22, 23, 5, 5],
        [22, 22, 22, 5, 6],
        [22, 22, 23, 5, 6],
        [22, 23, 23, 5, 6],
        [22, 22, 22, 5, 7],
        [23, 23, 22, 4, 7],
        [23, 23, 22, 3, 8],
        [23, 24, 22, 3, 9],
        [25, 25, 23, 3, 9],
        [26, 26, 24, 3, 9],
        [27, 27, 25, 3, 9],
    ];
    const UP_TO_256K: [[u8; 5]; 22] = [
        [18, 13, 14, 6, 1],
        [18, 14, 14, 5, 2],
        [18, 16, 16, 4, 2],
        [18, 16, 17, 5, 3],
        [18, 17, 18, 5, 3],
        [18, 18, 19, 5, 4],
        [18, 18, 19, 4, 4],
        [18, 18, 19, 4, 5],
        [18, 18, 19, 4, 5],
        [18, 18, 19, 4, 5],
        [18, 18, 19, 4, 6],
        [18, 19, 19, 4, 6],
        [18, 18, 19, 4, 7],
        [18, 18, 19, 3, 7],
        [18, 18, 19, 3, 7],
        [18, 19, 19, 3, 8],
        [18, 19, 19, 3, 8],
        [18, 19, 19, 3, 9],
        [18, 19, 19, 3, 9],
        [18, 19, 19, 3, 9],
        [18, 19, 19, 3, 9],
        [18, 19, 19, 3, 9],
    ];
    const UP_TO_128K: [[u8; 5]; 22] = [
        [17, 12, 13, 6, 1],
        [17, 13, 15, 5, 1],
        [17, 15, 16, 5, 2],
        [17, 17, 17, 4, 2],
        [17, 16, 17, 4, 3],
        [17, 16, 17, 4, 4],
        [17, 16, 17, 4, 5],
        [17, 16, 17, 4, 5],
        [17, 16, 17, 4, 5],
        [17, 16, 17, 4, 5],
        [17, 17, 17, 4, 6],
        [17, 18, 17, 4, 6],
        [17, 18, 17, 4, 7],
        [17, 18, 17, 3, 7],
        [17, 18, 17, 3, 7],
        [17, 18, 17, 3, 8],
        [17, 18, 17, 3, 8],
        [17, 18, 17, 3, 8],
        [17, 18, 17, 3, 9],
        [17, 18, 17, 3, 9],
        [17, 18, 17, 3, 9],
        [17, 18, 17, 3, 9],
    ];
    const UP_TO_16K: [[u8; 5]; 22] = [
        [14, 14, 15, 5, 1],
        [14, 14, 15, 4, 1],
        [14, 14, 15, 4, 2],
        [14, 14, 14, 4, 3],
        [14, 14, 14, 4, 4],
        [14, 14, 14, 4, 5],
        [14, 14, 14, 4, 5],
        [14, 14, 14, 4, 5],
        [14, 15, 14, 4, 6],
        [14, 15, 14, 4, 6],
        [14, 15, 14, 4, 7],
        [14, 15, 14, 3, 7],
        [14, 15, 14, 3, 8],
        [14, 15, 15, 3, 8],
        [14, 15, 15, 3, 8],
        [14, 15, 15, 3, 9],
        [14, 15, 15, 3, 9],
        [14, 15, 15, 3, 9],
        [14, 15, 15, 3, 9],
        [14, 15, 15, 3, 9],
        [14, 15, 15, 3, 9],
        [14, 15, 15, 3, 9],
    ];

    /// What the estimate depends on.
    pub(super) struct Plan {
        pub(super) level: i32,
        pub(super) size: Option<u64>,
        pub(super) dictionary: u64,
        pub(super) long_distance: bool,
        pub(super) window_log: Option<u32>,
        pub(super) workers: u32,
    }

    impl Plan {
        pub(super) fn from_options(options: &CompressOptions) -> Plan {
            Plan {
                level: options
                    .level
                    .unwrap_or(LEVELS.default)
                    .clamp(LEVELS.min, LEVELS.max),
                size: options.size_hint,
                dictionary: options.dictionary.as_ref().map_or(0, |d| d.len() as u64),
                long_distance: options.long_distance,
                window_log: options
                    .window_log
                    .map(|w| w.clamp(*WINDOW_LOGS.start(), *WINDOW_LOGS.end())),
                workers: options.worker_threads().min(MAX_WORKERS),
            }
        }
    }

    #[derive(Debug, Clone, Copy)]
    struct Params {
        window_log: u32,
        chain_log: u32,
        hash_log: u32,
        min_match: u32,
        strategy: u32,
    }

    /// 1 + the position of the highest set bit of `n - 1`: the bits needed to count `n` values.
    fn bits_for(n: u64) -> u32 {
        64 - n.saturating_sub(1).leading_zeros()
    }

    fn compress_bound(n: u64) -> u64 {
        n + (n >> 8)
            + if n < BLOCK_MAX {
                (BLOCK_MAX - n) >> 11
            } else {
                0
            }
    }

    /// The `clevels.h` row for `level` and inputs of `row_size` bytes (unknown: the large
    /// table).
    fn row(level: i32, row_size: Option<u64>) -> Params {
        let table = match row_size {
            Some(n) if n <= 16 * KIB => &UP_TO_16K,
            Some(n) if n <= 128 * KIB => &UP_TO_128K,
            Some(n) if n <= 256 * KIB => &UP_TO_256K,
            _ => &LARGE,
        };
        let row = table[(level.clamp(1, 22) - 1) as usize];
        Params {
            window_log: u32::from(row[0]),
            chain_log: u32::from(row[1]),
            hash_log: u32::from(row[2]),
            min_match: u32::from(row[3]),
            strategy: u32::from(row[4]),
        }
    }

    /// The caller's overrides: long-distance mode's 128 MiB window, then `window_log`.
    fn overridden(mut p: Params, plan: &Plan) -> Params {
        if plan.long_distance {
            p.window_log = 27;
        }
        if let Some(window_log) = plan.window_log {
            p.window_log = window_log;
        }
        p
    }

    /// `ZSTD_getCParamsFromCCtxParams`: the table row for the level and size, the caller's
    /// overrides, then the adjustment to the input size; and whether long-distance matching
    /// is on (asked for, or turned on by libzstd for btopt and up with a 128 MiB window).
    fn params(plan: &Plan, dictionary: u64) -> (Params, bool) {
        let row_size = match plan.size {
            Some(size) => Some(size.saturating_add(dictionary)),
            None if dictionary > 0 => Some(dictionary + 500),
            None => None,
        };
        let p = adjust(
            overridden(row(plan.level, row_size), plan),
            plan.size,
            dictionary,
        );
        let long_distance = plan.long_distance || (p.strategy >= BTOPT && p.window_log >= 27);
        (p, long_distance)
    }

    /// The parameters the compression context is built with, whether long-distance matching
    /// is on, and the memory a dictionary adds.
    ///
    /// A loaded dictionary is digested (`ZSTD_createCDict_advanced2`) with parameters for an
    /// unknown input treated as 513 bytes, so with small tables. libzstd then either attaches
    /// it to a context sized as without a dictionary (inputs of unknown size, or at most 8 to
    /// 32 KiB depending on the strategy) or copies its tables into the context, which then
    /// keeps the dictionary's small tables with the input's window.
    fn compressor(plan: &Plan) -> (Params, bool, u64) {
        if plan.dictionary == 0 {
            let (p, long_distance) = params(plan, 0);
            return (p, long_distance, 0);
        }
        let digested = adjust(
            overridden(row(plan.level, Some(plan.dictionary + 500)), plan),
            Some(513),
            plan.dictionary,
        );
        let attach_cutoff = match digested.strategy {
            FAST | BTULTRA.. => 8 * KIB,
            DFAST => 16 * KIB,
            _ => 32 * KIB,
        };
        let dictionary = plan.dictionary + DICTIONARY_FIXED + match_tables(digested);
        if plan.size.is_none_or(|size| size <= attach_cutoff) {
            let (p, long_distance) = params(plan, 0);
            (p, long_distance, dictionary)
        } else {
            let (p, long_distance) = params(plan, plan.dictionary);
            let copied = Params {
                window_log: p.window_log,
                ..digested
            };
            (copied, long_distance, dictionary)
        }
    }

    /// `ZSTD_adjustCParams_internal`: shrink the window and tables to a known input.
    fn adjust(mut p: Params, size: Option<u64>, dictionary: u64) -> Params {
        const MAX_RESIZE: u64 = 1 << 30;
        if let Some(size) = size {
            if size <= MAX_RESIZE && dictionary <= MAX_RESIZE {
                p.window_log = p.window_log.min(bits_for(size + dictionary).max(6));
            }
            let window = 1u64 << p.window_log;
            let dictionary_and_window_log =
                if dictionary == 0 || window >= dictionary.saturating_add(size) {
                    p.window_log
                } else {
                    bits_for(dictionary + window).min(31)
                };
            p.hash_log = p.hash_log.min(dictionary_and_window_log + 1);
            let cycle_log = p.chain_log - u32::from(p.strategy >= BTLAZY2);
            if cycle_log > dictionary_and_window_log {
                p.chain_log -= cycle_log - dictionary_and_window_log;
            }
        }
        p.window_log = p.window_log.max(10);
        p
    }

    /// A single-threaded context compressing inputs of at most `size` bytes, without stream
    /// buffers: the match-finder tables, the sequence store and, with long-distance
    /// matching, its table.
    fn context(p: Params, long_distance: bool, size: Option<u64>) -> u64 {
        let window = size.map_or(1 << p.window_log, |s| (1u64 << p.window_log).min(s.max(1)));
        let block = window.min(BLOCK_MAX);
        let sequences = block / if p.min_match == 3 { 3 } else { 4 };
        let tokens = 32 + block + sequences * 8 + 3 * sequences;
        let hash3 = if p.min_match == 3 {
            4u64 << p.window_log.min(17)
        } else {
            0
        };
        let opt = if p.strategy >= BTOPT { OPT_SPACE } else { 0 };
        let ldm = if long_distance {
            ldm_table(p) + ldm_sequences(p, block)
        } else {
            0
        };
        FIXED + tokens + match_tables(p) + hash3 + opt + ldm
    }

    /// The hash and chain tables. greedy, lazy and lazy2 use the row match finder (no chain
    /// table, a tag byte per hash entry) for windows above 16 KiB.
    fn match_tables(p: Params) -> u64 {
        let rows = (GREEDY..=LAZY2).contains(&p.strategy) && p.window_log > 14;
        let chain = if p.strategy == FAST || rows {
            0
        } else {
            4u64 << p.chain_log
        };
        let hash = 4u64 << p.hash_log;
        let tags = if rows { 1u64 << p.hash_log } else { 0 };
        chain + hash + tags
    }

    /// `ZSTD_ldm_getTableSize` with `ZSTD_ldm_adjustParameters`' defaults.
    fn ldm_table(p: Params) -> u64 {
        let hash_rate_log = 7 - p.strategy / 3;
        let hash_log = p.window_log.saturating_sub(hash_rate_log).clamp(6, 30);
        let bucket_log = p.strategy.clamp(4, 8).min(hash_log);
        (1u64 << (hash_log - bucket_log)) + (8u64 << hash_log)
    }

    fn ldm_sequences(p: Params, block: u64) -> u64 {
        let min_match = if p.strategy >= BTULTRA { 32 } else { 64 };
        block / min_match * 12
    }

    /// The one-shot compressor (`ZSTD_compress2`): a context, no stream buffers.
    #[cfg(test)]
    pub(super) fn one_shot(plan: &Plan) -> u64 {
        let (p, long_distance, dictionary) = compressor(plan);
        dictionary
            + threaded(plan, p, long_distance)
                .unwrap_or_else(|| context(p, long_distance, plan.size))
    }

    /// The streaming compressor: a context plus its window-sized input buffer and one
    /// block's output buffer, and the crate's writer buffer.
    pub(super) fn streaming(plan: &Plan) -> u64 {
        let (p, long_distance, dictionary) = compressor(plan);
        let memory = threaded(plan, p, long_distance).unwrap_or_else(|| {
            let window = plan
                .size
                .map_or(1 << p.window_log, |s| (1u64 << p.window_log).min(s.max(1)));
            let block = window.min(BLOCK_MAX);
            context(p, long_distance, plan.size) + window + block + compress_bound(block) + 1
        });
        dictionary + memory + WRITER_BUFFER
    }

    /// With worker threads (`zstdmt_compress.c`): the shared round buffer holding a job per
    /// worker plus slack, each busy worker's context and output buffer, and the serial
    /// long-distance state. `None` when libzstd would stay single-threaded.
    fn threaded(plan: &Plan, p: Params, long_distance: bool) -> Option<u64> {
        if plan.workers == 0 || plan.size.is_some_and(|s| s <= MT_MIN_SIZE) {
            return None;
        }
        let workers = u64::from(plan.workers);
        let cycle_log = p.chain_log - u32::from(p.strategy >= BTLAZY2);
        let job_log = if long_distance {
            (cycle_log + 3).max(21)
        } else {
            (p.window_log + 2).max(20)
        }
        .min(30);
        let job = 1u64 << job_log;
        let overlap_log = match p.strategy {
            9 => 9,
            7 | 8 => 8,
            5 | 6 => 7,
            _ => 6,
        };
        let overlap_r_log = 9 - overlap_log;
        let overlap = if long_distance {
            p.window_log.min(job_log - 2) - overlap_r_log
        } else if overlap_r_log >= 8 {
            0
        } else {
            p.window_log - overlap_r_log
        };
        let slack = 2 + u64::from(overlap > 0);
        let window = if long_distance {
            1u64 << p.window_log
        } else {
            0
        };
        let round_buffer = window.max(job * workers) + job * slack;
        let busy = plan
            .size
            .map_or(workers, |s| s.div_ceil(job).max(1))
            .min(workers);
        let per_job = context(p, false, Some(job)) + compress_bound(job);
        let serial = if long_distance {
            ldm_table(p) + busy * ldm_sequences(p, job)
        } else {
            0
        };
        Some(round_buffer + busy * per_job + serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::test_data;
    use crate::engine;

    fn text(len: usize) -> Vec<u8> {
        test_data::text(len, 3)
    }

    fn noise(len: usize) -> Vec<u8> {
        test_data::noise(len, 0x123456789abcdef1)
    }

    fn packed(data: &[u8], options: &CompressOptions) -> Vec<u8> {
        test_data::packed_with(&ZSTD, data, options)
    }

    fn unpacked(data: &[u8]) -> Result<Vec<u8>> {
        test_data::unpacked_with(&ZSTD, data)
    }

    fn streamed(data: &[u8], options: &CompressOptions) -> Result<Vec<u8>> {
        test_data::streamed_with(&ZSTD, data, options)
    }

    fn assert_corrupt(result: Result<Vec<u8>>) -> Error {
        test_data::assert_corrupt_for("zstd", result)
    }

    fn with_dictionary(dictionary: &Arc<Vec<u8>>) -> (CompressOptions, DecompressOptions) {
        (
            CompressOptions {
                dictionary: Some(dictionary.clone()),
                ..Default::default()
            },
            DecompressOptions {
                dictionary: Some(dictionary.clone()),
                ..Default::default()
            },
        )
    }

    /// Small JSON-like records, the kind dictionaries are for.
    fn records(count: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| {
                format!(
                    "{{\"order\":{i},\"customer\":\"c-{}\",\"status\":\"{}\",\"currency\":\"EUR\",\
                     \"lines\":[{{\"sku\":\"SKU-{}\",\"qty\":{}}}]}}",
                    i * 7 % 1000,
                    ["pending", "shipped", "invoiced"][i % 3],
                    i * 13 % 500,
                    i % 9 + 1
                )
                .into_bytes()
            })
            .collect()
    }

    #[test]
    fn round_trips_empty_small_and_one_mebibyte_at_several_levels() {
        let inputs = [
            Vec::new(),
            b"hello, zstd".to_vec(),
            text(1 << 20),
            noise(1 << 20),
        ];
        for level in [1, 3, 9, 19] {
            for data in &inputs {
                let options = CompressOptions::level(level);
                assert_eq!(
                    &unpacked(&packed(data, &options)).unwrap(),
                    data,
                    "level {level}"
                );
                assert_eq!(
                    &unpacked(&streamed(data, &options).unwrap()).unwrap(),
                    data,
                    "level {level}"
                );
            }
        }
    }

    #[test]
    fn whole_buffer_output_equals_the_raw_bulk_compressor_at_the_same_settings() {
        let data = text(1 << 20);
        // Default options: level 3, checksum on.
        let mut raw = zstd::bulk::Compressor::new(3).unwrap();
        raw.include_checksum(true).unwrap();
        assert_eq!(
            packed(&data, &CompressOptions::default()),
            raw.compress(&data).unwrap()
        );
        // Without the checksum: exactly `zstd::bulk::compress`.
        let options = CompressOptions {
            checksum: false,
            ..CompressOptions::level(19)
        };
        assert_eq!(
            packed(&data, &options),
            zstd::bulk::compress(&data, 19).unwrap()
        );
    }

    #[test]
    fn output_is_read_by_the_crates_own_decoder_and_records_the_content_size() {
        let data = text(300_000);
        let c = packed(&data, &CompressOptions::default());
        assert!(c.starts_with(&MAGIC));
        assert_eq!(zstd::decode_all(&c[..]).unwrap(), data);
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&c).unwrap(),
            Some(data.len() as u64)
        );
        // The streaming encoder records it too when the size is pledged.
        let options = CompressOptions {
            size_hint: Some(data.len() as u64),
            ..Default::default()
        };
        let s = streamed(&data, &options).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&s).unwrap(),
            Some(data.len() as u64)
        );
        assert_eq!(zstd::decode_all(&s[..]).unwrap(), data);
    }

    #[test]
    fn concatenated_frames_decode_as_one_stream() {
        let (a, b) = (text(100_000), noise(50_000));
        let both = [
            packed(&a, &CompressOptions::default()),
            packed(b"", &CompressOptions::default()),
            streamed(&b, &CompressOptions::level(7)).unwrap(),
        ]
        .concat();
        assert_eq!(unpacked(&both).unwrap(), [a, b].concat());
    }

    #[test]
    fn a_truncated_frame_is_corrupt_data_at_every_kind_of_cut() {
        let c = packed(&text(500_000), &CompressOptions::default());
        for cut in [1, 4, 5, 10, c.len() / 2, c.len() - 4, c.len() - 1] {
            let err = assert_corrupt(unpacked(&c[..cut]));
            assert!(err.context_value("offset").is_some(), "{err}");
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let data = noise(100_000);
        let mut c = packed(&data, &CompressOptions::default());
        // Inside the stored payload: only the checksum can notice.
        let at = c.len() / 2;
        c[at] ^= 0x04;
        assert_corrupt(unpacked(&c));
    }

    #[test]
    fn dictionaries_round_trip_and_are_required_to_decode() {
        let samples = records(500);
        let dictionary = check_dictionary(train_dictionary(&samples, 4096).unwrap()).unwrap();
        let (compress_options, decompress_options) = with_dictionary(&dictionary);
        let record = records(501).pop().unwrap();
        let (with, _) = engine::compress(&ZSTD, &record, &compress_options).unwrap();
        let (without, _) = engine::compress(&ZSTD, &record, &CompressOptions::default()).unwrap();
        assert!(
            with.len() < without.len(),
            "{} >= {}",
            with.len(),
            without.len()
        );
        let (back, _) = engine::decompress(&ZSTD, &with, &decompress_options).unwrap();
        assert_eq!(back, record);
        let mut streamed_back = Vec::new();
        engine::decompress_stream(
            &ZSTD,
            &mut &with[..],
            &mut streamed_back,
            &decompress_options,
        )
        .unwrap();
        assert_eq!(streamed_back, record);

        let err = assert_corrupt(unpacked(&with));
        assert!(err.to_string().contains("dictionary"), "{err}");
    }

    #[test]
    fn training_refuses_too_few_samples_and_too_small_dictionaries() {
        let err = train_dictionary(&records(3), 4096).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("at least 10 samples"), "{err}");
        let err = train_dictionary(&records(100), 100).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        // Enough samples by count, but nothing in them: zstd's own refusal.
        let err = train_dictionary(&vec![Vec::new(); 10], 4096).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("zstd could not train"), "{err}");
    }

    #[test]
    fn a_corrupt_trained_dictionary_is_refused_and_raw_content_is_accepted() {
        let mut dictionary = train_dictionary(&records(500), 4096).unwrap();
        dictionary.truncate(40);
        assert_eq!(
            check_dictionary(dictionary).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(check_dictionary(b"any bytes can be raw content".to_vec()).is_ok());
        assert!(check_dictionary(Vec::new()).is_err());
    }

    #[test]
    fn multithreaded_output_decodes() {
        let data = text(6 << 20);
        let options = CompressOptions {
            threads: Some(2),
            ..Default::default()
        };
        let c = packed(&data, &options);
        assert_eq!(unpacked(&c).unwrap(), data);
        assert_eq!(zstd::decode_all(&c[..]).unwrap(), data);
        assert_eq!(unpacked(&streamed(&data, &options).unwrap()).unwrap(), data);
    }

    #[test]
    fn long_distance_mode_round_trips_and_finds_far_repeats() {
        // 4 MiB of noise, twice: only a window over 4 MiB sees the repeat.
        let half = noise(4 << 20);
        let data = [half.clone(), half].concat();
        let long = CompressOptions {
            long_distance: true,
            ..CompressOptions::level(1)
        };
        let c = packed(&data, &long);
        assert!(
            c.len() < data.len() * 6 / 10,
            "{} of {}",
            c.len(),
            data.len()
        );
        assert_eq!(unpacked(&c).unwrap(), data);
        let s = streamed(&data, &long).unwrap();
        assert_eq!(unpacked(&s).unwrap(), data);
    }

    #[test]
    fn a_frame_with_a_window_beyond_the_output_limit_is_refused_with_advice() {
        // Streamed with no size: the frame declares the full 2^28 window.
        let options = CompressOptions {
            window_log: Some(28),
            ..CompressOptions::level(1)
        };
        let c = streamed(b"small content, large window", &options).unwrap();
        let small_limit = DecompressOptions::max_output(1 << 20);
        let err = engine::decompress(&ZSTD, &c, &small_limit).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptData);
        assert!(err.to_string().contains("raise max_output"), "{err}");
        // The default 1 GiB limit allows windows up to 2^30.
        assert_eq!(unpacked(&c).unwrap(), b"small content, large window");
    }

    #[test]
    fn window_log_limits_follow_the_output_limit() {
        assert_eq!(window_log_limit(0), 27);
        assert_eq!(window_log_limit(1 << 20), 27);
        assert_eq!(window_log_limit(1 << 30), 30);
        assert_eq!(window_log_limit((1 << 30) + 1), 31);
        assert_eq!(window_log_limit(u64::MAX), 31);
    }

    #[test]
    fn out_of_range_window_logs_and_wrong_size_hints_are_invalid_input() {
        for window_log in [9, 32] {
            let options = CompressOptions {
                window_log: Some(window_log),
                ..Default::default()
            };
            let err = engine::compress(&ZSTD, b"x", &options).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        }
        for (hint, data) in [(3, &b"four"[..]), (10, &b"four"[..])] {
            let options = CompressOptions {
                size_hint: Some(hint),
                ..Default::default()
            };
            let err = streamed(data, &options).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("size_hint promised"), "{err}");
        }
    }

    #[test]
    fn memory_estimate_grows_with_level_and_long_distance() {
        let at = |level, long_distance| {
            ZSTD.memory_estimate(&CompressOptions {
                long_distance,
                threads: Some(0),
                ..CompressOptions::level(level)
            })
        };
        let levels: Vec<u64> = [1, 3, 9, 19, 22].iter().map(|&l| at(l, false)).collect();
        assert!(levels.windows(2).all(|w| w[0] < w[1]), "{levels:?}");
        assert!(at(3, true) > at(3, false) + (128 << 20));
        // Known small inputs shrink the window and tables.
        let small = ZSTD.memory_estimate(&CompressOptions {
            size_hint: Some(10_000),
            ..CompressOptions::level(19)
        });
        assert!(small < at(19, false) / 10, "{small}");
    }

    #[test]
    fn memory_estimate_takes_any_options_without_panicking() {
        for size_hint in [None, Some(0), Some(1), Some(u64::MAX)] {
            for window_log in [None, Some(0), Some(99)] {
                let options = CompressOptions {
                    level: Some(99),
                    size_hint,
                    window_log,
                    long_distance: true,
                    threads: Some(u32::MAX),
                    dictionary: Some(Arc::new(vec![7; 1000])),
                    ..Default::default()
                };
                assert!(ZSTD.memory_estimate(&options) > 0);
            }
        }
    }

    /// What libzstd reports using after compressing `data` with these options, one-shot and
    /// streamed (the context's size, without the `zstd` crate's writer buffer).
    fn measured(data: &[u8], options: &CompressOptions) -> (u64, u64) {
        let settings = settings(options).unwrap();
        let mut compressor =
            zstd::bulk::Compressor::with_dictionary(settings.level, settings.dictionary).unwrap();
        for parameter in &settings.parameters {
            compressor.set_parameter(*parameter).unwrap();
        }
        compressor.compress(data).unwrap();
        let one_shot = compressor.context_mut().sizeof() as u64;

        let mut context = zstd::zstd_safe::CCtx::create();
        context
            .set_parameter(CParameter::CompressionLevel(settings.level))
            .unwrap();
        context.load_dictionary(settings.dictionary).unwrap();
        let mut encoder = zstd::stream::write::Encoder::with_context(Vec::new(), &mut context);
        for parameter in settings.parameters {
            encoder.set_parameter(parameter).unwrap();
        }
        encoder.set_pledged_src_size(options.size_hint).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap();
        (one_shot, context.sizeof() as u64)
    }

    #[test]
    fn memory_estimate_is_within_a_tenth_of_what_libzstd_uses() {
        // Above 512 KiB, so that worker threads start.
        let large = text(600 << 10);
        let small = text(50_000);
        let dictionary = Arc::new(train_dictionary(&records(500), 8192).unwrap());
        let mut cases = Vec::new();
        for level in [1, 3, 5, 9, 12, 13, 16, 19] {
            cases.push((&large, CompressOptions::level(level)));
            cases.push((&small, CompressOptions::level(level)));
        }
        for level in [1, 3, 16] {
            let long = CompressOptions {
                long_distance: true,
                ..CompressOptions::level(level)
            };
            let threads = CompressOptions {
                threads: Some(2),
                ..CompressOptions::level(level)
            };
            let dictionary = CompressOptions {
                dictionary: Some(dictionary.clone()),
                ..CompressOptions::level(level)
            };
            cases.extend([(&large, long), (&large, threads)]);
            cases.extend([(&large, dictionary.clone()), (&small, dictionary)]);
        }
        for (input, options) in cases {
            let mut options = options.clone();
            options.size_hint = Some(input.len() as u64);
            options.threads.get_or_insert(0);
            let plan = memory::Plan::from_options(&options);
            let estimated = (
                memory::one_shot(&plan),
                memory::streaming(&plan) - 32 * 1024,
            );
            let actual = measured(input, &options);
            for (estimate, actual) in [(estimated.0, actual.0), (estimated.1, actual.1)] {
                let ratio = estimate as f64 / actual as f64;
                assert!(
                    (0.9..=1.1).contains(&ratio),
                    "level {:?}, {} bytes, long {}, threads {:?}, dictionary {}: estimated \
                     {estimate}, libzstd {actual}",
                    options.level,
                    input.len(),
                    options.long_distance,
                    options.threads,
                    options.dictionary.is_some()
                );
            }
        }
    }
}
