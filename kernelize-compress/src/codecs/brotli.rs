//! `brotli`: Brotli streams (RFC 7932), through the pure-Rust [`brotli`] crate (Dropbox's
//! port of Google's encoder and decoder).
//!
//! Output is a plain Brotli stream, with no header of our own, so the `brotli` command line
//! reads it and we read its output. The format has no magic bytes: [`crate::detect()`] never
//! picks it, so name the codec explicitly.
//!
//! # Library choice
//!
//! The alternative was the C library through a binding (`brotli-sys`, `brotlic`). The
//! pure-Rust crate was chosen: no C toolchain or system library to build against, a decoder
//! written in safe Rust (it parses untrusted input), and speed comparable to C. Measured on
//! the first 3 MB of Silesia `dickens` (2-core AMD EPYC VM, 2026-11-26), this crate against
//! Debian's `brotli` 1.0.9 command: quality 5: 17.5 against 20 MB/s; quality 9: 5.7 against
//! 7.3 MB/s; quality 11: 0.55 against 0.6 MB/s; output sizes within 4 % of each other (the
//! two encoders are not byte-identical).
//!
//! # Options
//!
//! - **Quality** (`level`) 0 to 11, default [`DEFAULT_QUALITY`] = 11, the `brotli` command's
//!   and the C library's default, so output sizes compare with the reference tool. It is
//!   slow (about 0.5 MB/s on text); quality 5 (about 17 MB/s) or 9 (about 6 MB/s) suit
//!   data compressed on the fly.
//! - **Window** (`window_log`, `lgwin`) 10 to 24; anything else is an invalid-input error.
//!   When not given, it follows the `brotli` command: the smallest window holding the whole
//!   input when its size is known (`size_hint`, which [`crate::compress`] always sets), and 24
//!   (16 MiB) otherwise. (The C library's own default is 22; the command line's is 24.)
//! - The size hint, when known, is passed to the encoder as the command line does (it picks
//!   the hash tables from it), so from quality 2 up, a whole buffer gives the same bytes
//!   however it was fed. Qualities 0 and 1 compress each write on its own, as the C library
//!   does, so their output depends on the writes.
//!
//! Other [`CompressOptions`] fields (checksum, long distance, threads, dictionary) do not
//! apply to Brotli and are ignored; Brotli has no checksum, so some corruptions decode to
//! different bytes without an error.
//!
//! # Decoding
//!
//! The decoder is driven through the crate's state machine
//! ([`brotli::BrotliDecompressStream`]) straight from the engine's buffered input, rather than
//! through [`brotli::Decompressor`], for three reasons: it consumes exactly the bytes of the
//! stream (so the engine sees data after it and reports accurate offsets); a stream cut short
//! is an [`std::io::ErrorKind::UnexpectedEof`] error, however it is read; and it decodes only
//! standard streams (RFC 7932, window at most 16 MiB), refusing the large-window extension
//! that would let a stream claim a 1 GiB window.

use std::io::{BufRead, Read, Write};

use brotli::enc::encode::{
    BrotliEncoderDestroyInstance, BrotliEncoderOperation, BrotliEncoderStateStruct,
};
use brotli::enc::{BrotliEncoderParams, StandardAlloc};
use brotli::{BrotliDecompressStream, BrotliResult, BrotliState};
use kernelize_core::{Error, ErrorKind, Result};

use crate::codec::{Codec, CompressOptions, DecompressOptions, Encoder, LevelRange};

/// The Brotli codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrotliCodec;

/// The one instance.
pub static BROTLI: BrotliCodec = BrotliCodec;

/// Quality used when none is given: 11, as the `brotli` command line.
pub const DEFAULT_QUALITY: i32 = 11;

/// Smallest window accepted, as a power of two (1 KiB).
pub const MIN_WINDOW_LOG: u32 = 10;

/// Largest window of standard Brotli, as a power of two (16 MiB).
pub const MAX_WINDOW_LOG: u32 = 24;

/// Window used when neither `window_log` nor the input size is known, as the `brotli`
/// command line.
pub const DEFAULT_WINDOW_LOG: u32 = 24;

/// Size of the buffer compressed bytes are staged in before they go to the output.
const OUTPUT_BUFFER: usize = 64 * 1024;

/// The window for `options`: `window_log` when given (checked against the standard range),
/// otherwise the smallest window that holds the whole input when its size is known, else
/// [`DEFAULT_WINDOW_LOG`].
pub fn window_log(options: &CompressOptions) -> Result<u32> {
    if let Some(window) = options.window_log {
        if !(MIN_WINDOW_LOG..=MAX_WINDOW_LOG).contains(&window) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "brotli accepts window_log {MIN_WINDOW_LOG} to {MAX_WINDOW_LOG}; got {window}"
                ),
            )
            .with_context("codec", "brotli"));
        }
        return Ok(window);
    }
    Ok(match options.size_hint {
        // As the `brotli` command line: the window holds (1 << lgwin) - 16 bytes.
        Some(size) => (MIN_WINDOW_LOG..MAX_WINDOW_LOG)
            .find(|&w| (1u64 << w) - 16 >= size)
            .unwrap_or(MAX_WINDOW_LOG),
        None => DEFAULT_WINDOW_LOG,
    })
}

/// The encoder parameters for `options`: quality, window and size hint; everything else is
/// the library's default (generic mode, standard stream).
fn encoder_params(options: &CompressOptions) -> Result<BrotliEncoderParams> {
    let quality = BROTLI.levels().resolve(BROTLI.name(), options.level)?;
    let lgwin = window_log(options)?;
    Ok(BrotliEncoderParams {
        quality,
        lgwin: lgwin as i32,
        // The command line clamps the hint to 1 GiB the same way.
        size_hint: options.size_hint.map_or(0, |s| s.min(1 << 30) as usize),
        ..BrotliEncoderParams::default()
    })
}

/// Brotli's encoder state machine, writing to `output`.
struct BrotliWriter<W: Write> {
    output: W,
    state: BrotliEncoderStateStruct<StandardAlloc>,
    buffer: Vec<u8>,
    total_out: Option<usize>,
    finished: bool,
}

impl<W: Write> BrotliWriter<W> {
    fn new(output: W, params: BrotliEncoderParams) -> Self {
        let mut state = BrotliEncoderStateStruct::new(StandardAlloc::default());
        state.params = params;
        BrotliWriter {
            output,
            state,
            buffer: vec![0; OUTPUT_BUFFER],
            total_out: Some(0),
            finished: false,
        }
    }

    /// Runs `op` over `input` until the input is used and, for flush and finish, until the
    /// encoder has nothing more to give; every compressed byte goes to the output.
    fn run(&mut self, op: BrotliEncoderOperation, input: &[u8]) -> std::io::Result<()> {
        if self.finished {
            return Err(std::io::Error::other(
                "the brotli encoder was already finished",
            ));
        }
        let mut available_in = input.len();
        let mut in_offset = 0;
        loop {
            let mut available_out = self.buffer.len();
            let mut out_offset = 0;
            let before_in = available_in;
            let ok = self.state.compress_stream(
                op,
                &mut available_in,
                input,
                &mut in_offset,
                &mut available_out,
                &mut self.buffer,
                &mut out_offset,
                &mut self.total_out,
                &mut |_, _, _, _| (),
            );
            if out_offset > 0 {
                self.output.write_all(&self.buffer[..out_offset])?;
            }
            if !ok {
                return Err(std::io::Error::other(
                    "the brotli encoder refused its parameters or input",
                ));
            }
            let done = match op {
                BrotliEncoderOperation::BROTLI_OPERATION_FINISH => self.state.is_finished(),
                _ => available_in == 0 && !self.state.has_more_output(),
            };
            if done {
                return Ok(());
            }
            if out_offset == 0 && available_in == before_in {
                // Cannot happen with a sound encoder; better an error than a busy loop.
                return Err(std::io::Error::other(
                    "the brotli encoder stopped making progress",
                ));
            }
        }
    }
}

impl<W: Write> Write for BrotliWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.run(BrotliEncoderOperation::BROTLI_OPERATION_PROCESS, buf)?;
        Ok(buf.len())
    }

    /// Ends the current meta-block so that everything written so far can be decoded (costs a
    /// little compression), then flushes the output.
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.finished {
            self.run(BrotliEncoderOperation::BROTLI_OPERATION_FLUSH, &[])?;
        }
        self.output.flush()
    }
}

impl<W: Write> Encoder for BrotliWriter<W> {
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.run(BrotliEncoderOperation::BROTLI_OPERATION_FINISH, &[])?;
        self.finished = true;
        Ok(self.output.flush()?)
    }
}

impl<W: Write> Drop for BrotliWriter<W> {
    fn drop(&mut self) {
        // Frees the encoder's tables; unlike the crate's `CompressorWriter`, dropping does not
        // write the end of the stream: without `finish`, the stream stays truncated.
        BrotliEncoderDestroyInstance(&mut self.state);
    }
}

/// Brotli's decoder state machine, reading from a buffered input it consumes exactly.
///
/// An input with no byte at all reads as nothing rather than as a truncated stream, so that
/// the engine reports it as empty input.
struct BrotliReader<R: BufRead> {
    input: R,
    state: BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>,
    total_out: usize,
    consumed_any: bool,
    done: bool,
}

impl<R: BufRead> Read for BrotliReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        loop {
            let input = self.input.fill_buf()?;
            let at_eof = input.is_empty();
            let mut available_in = input.len();
            let mut in_offset = 0;
            let mut available_out = buf.len();
            let mut out_offset = 0;
            let result = BrotliDecompressStream(
                &mut available_in,
                &mut in_offset,
                input,
                &mut available_out,
                &mut out_offset,
                buf,
                &mut self.total_out,
                &mut self.state,
            );
            self.input.consume(in_offset);
            self.consumed_any |= in_offset > 0;
            match result {
                BrotliResult::ResultSuccess => {
                    self.done = true;
                    return Ok(out_offset);
                }
                BrotliResult::NeedsMoreOutput if out_offset > 0 => return Ok(out_offset),
                BrotliResult::NeedsMoreOutput => {
                    return Err(std::io::Error::other(
                        "the brotli decoder asked for room but produced nothing",
                    ));
                }
                BrotliResult::NeedsMoreInput if out_offset > 0 => return Ok(out_offset),
                BrotliResult::NeedsMoreInput if at_eof && !self.consumed_any => {
                    self.done = true;
                    return Ok(0);
                }
                BrotliResult::NeedsMoreInput if at_eof => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the brotli stream ends before its last meta-block",
                    ));
                }
                BrotliResult::NeedsMoreInput if in_offset == 0 => {
                    // The decoder takes all the input it is given before asking for more;
                    // guard against a busy loop all the same.
                    return Err(std::io::Error::other(
                        "the brotli decoder stopped making progress",
                    ));
                }
                BrotliResult::NeedsMoreInput => continue,
                BrotliResult::ResultFailure => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("invalid brotli data ({:?})", self.state.error_code),
                    ));
                }
            }
        }
    }
}

impl Codec for BrotliCodec {
    fn name(&self) -> &'static str {
        "brotli"
    }

    /// `application/x-brotli`: Brotli has a registered HTTP content coding (`br`) but no
    /// registered media type; this is the unofficial one in common use.
    fn media_type(&self) -> &'static str {
        "application/x-brotli"
    }

    fn extension(&self) -> &'static str {
        "br"
    }

    fn levels(&self) -> LevelRange {
        LevelRange {
            min: 0,
            max: 11,
            default: DEFAULT_QUALITY,
        }
    }

    fn magic(&self) -> Option<&'static [u8]> {
        None
    }

    /// What the encoder allocates, from the library's table sizes:
    ///
    /// - qualities 0 and 1 (the fast path): a hash table of 128 KiB (0) or 512 KiB and
    ///   640 KiB of two-pass buffers (1), and up to twice each write's size (at most twice
    ///   the window) for its output; no ring buffer;
    /// - from quality 2, a ring buffer of `2^(max(lgwin, lgblock) + 1) + 2^lgblock` bytes
    ///   (`lgblock`, the input block, is 14 to 18 bits depending on quality);
    /// - hash tables by quality: 2–3: 256 KiB; 4: 512 KiB (4 MiB for
    ///   inputs of 1 MiB or more); 5–8: `4 * 2^(bucket_bits + quality - 1)` with 14 or 15
    ///   bucket bits (1 to 16 MiB); 9: 32 MiB; windows of 64 KiB or less use the smaller
    ///   chained tables (about 0.5–1.5 MiB) from quality 5 to 9;
    /// - qualities 10 and 11: a binary-tree matcher of 512 KiB plus 8 bytes per window byte,
    ///   and about 20 bytes per input byte of each meta-block (up to `2^min(lgwin + 1, 24)`
    ///   bytes) for the optimal parse;
    /// - command and literal buffers, about 8 bytes per byte of input block.
    ///
    /// Window-sized terms are capped at the input size when it is known. It is an upper
    /// estimate: pages that are allocated but never touched (much of the ring buffer for
    /// small inputs) do not count in resident memory. Measured peak resident memory of a
    /// whole process compressing a 3 MB text: 7 MiB at quality 1, 28 MiB at 5, 56 MiB at 9,
    /// 61 MiB at 11.
    fn memory_estimate(&self, options: &CompressOptions) -> u64 {
        let quality = self
            .levels()
            .resolve(self.name(), options.level)
            .unwrap_or(DEFAULT_QUALITY);
        let lgwin = window_log(options).unwrap_or(DEFAULT_WINDOW_LOG);
        let lgblock = match quality {
            2 | 3 => 14,
            q if q >= 9 && lgwin > 16 => lgwin.min(18),
            _ => 16,
        };
        let size = options.size_hint.unwrap_or(u64::MAX);
        // A window-sized term, no bigger than the input (rounded up to a power of two).
        let rounded = size.max(1).checked_next_power_of_two().unwrap_or(u64::MAX);
        let capped = |bits: u32| -> u64 { (1u64 << bits).min(rounded) };
        if quality <= 1 {
            // The fast path: no ring buffer; a hash table, two-pass buffers at quality 1,
            // and room for each write's output (twice its size, at most the window).
            let tables: u64 = if quality == 0 { 128 << 10 } else { 1152 << 10 };
            return tables + 2 * capped(lgwin);
        }
        let ring = 2 * capped(lgwin.max(lgblock)) + capped(lgblock);
        let large_input = options.size_hint.is_some_and(|s| s >= 1 << 20);
        let hasher: u64 = match quality {
            2 | 3 => 256 << 10,
            4 if large_input => 4 << 20,
            4 => 512 << 10,
            5..=9 if lgwin <= 16 => 1536 << 10,
            5..=8 => {
                let bucket_bits = if quality < 7 && !large_input { 14 } else { 15 };
                (4u64 << (bucket_bits + quality as u32 - 1)) + (2u64 << bucket_bits)
            }
            9 => (4u64 << (15 + 8)) + (2u64 << 15),
            _ => {
                let tree = (512u64 << 10) + 8 * capped(lgwin);
                let zopfli = 20 * capped((lgwin + 1).min(24));
                tree + zopfli
            }
        };
        let commands = 8 * capped(lgblock);
        ring + hasher + commands
    }

    fn encoder<'a>(
        &self,
        output: Box<dyn Write + 'a>,
        options: &CompressOptions,
    ) -> Result<Box<dyn Encoder + 'a>> {
        Ok(Box::new(BrotliWriter::new(
            output,
            encoder_params(options)?,
        )))
    }

    fn decoder<'a>(
        &self,
        input: Box<dyn BufRead + 'a>,
        _options: &DecompressOptions,
    ) -> Result<Box<dyn Read + 'a>> {
        Ok(Box::new(BrotliReader {
            input,
            // Standard streams only: no large-window extension.
            state: BrotliState::new_strict(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            ),
            total_out: 0,
            consumed_any: false,
            done: false,
        }))
    }

    /// Compresses the whole buffer in one pass of the encoder, with no copying through an
    /// input buffer. From quality 2 up, the bytes are the same as the crate's
    /// `BrotliCompress` at the same quality, window and size hint, 1 to 6 % faster (3 MB of
    /// text, qualities 2, 5 and 9); at qualities 0 and 1, which compress each piece of input
    /// on its own, one piece gives smaller output than `BrotliCompress`'s 4 KiB pieces.
    fn compress(&self, data: &[u8], options: &CompressOptions) -> Result<Vec<u8>> {
        let mut options = options.clone();
        options.size_hint.get_or_insert(data.len() as u64);
        let mut out = Vec::with_capacity(data.len() / 3 + 64);
        let mut writer = BrotliWriter::new(&mut out, encoder_params(&options)?);
        writer.run(BrotliEncoderOperation::BROTLI_OPERATION_FINISH, data)?;
        drop(writer);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine;

    /// Text with repeats near and far, so that levels and windows matter.
    fn sample(len: usize) -> Vec<u8> {
        let words = [
            "alice ",
            "was ",
            "beginning ",
            "to ",
            "get ",
            "very ",
            "tired ",
            "of ",
            "sitting ",
            "by ",
            "her ",
            "sister ",
            "on ",
            "the ",
            "bank\n",
        ];
        let mut out = Vec::with_capacity(len);
        let mut x: u32 = 12345;
        while out.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
            if x.is_multiple_of(7) {
                out.extend_from_slice(format!("{x}").as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn with(level: Option<i32>, window_log: Option<u32>) -> CompressOptions {
        CompressOptions {
            level,
            window_log,
            ..Default::default()
        }
    }

    fn round_trip(data: &[u8], options: &CompressOptions) -> Vec<u8> {
        let (packed, _) = engine::compress(&BROTLI, data, options).unwrap();
        let (unpacked, _) =
            engine::decompress(&BROTLI, &packed, &DecompressOptions::default()).unwrap();
        assert!(unpacked == data, "round trip changed the data");
        packed
    }

    /// The crate's standard one-shot call at the same settings.
    fn raw_compress(data: &[u8], quality: i32, lgwin: i32) -> Vec<u8> {
        let params = BrotliEncoderParams {
            quality,
            lgwin,
            size_hint: data.len(),
            ..BrotliEncoderParams::default()
        };
        let mut out = Vec::new();
        brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
        out
    }

    #[test]
    fn round_trips_empty_small_and_one_mebibyte_at_several_qualities() {
        let mebibyte = sample(1 << 20);
        for quality in [0, 1, 5, 9] {
            round_trip(b"", &with(Some(quality), None));
            round_trip(b"hello, brotli", &with(Some(quality), None));
            round_trip(&mebibyte, &with(Some(quality), None));
        }
        round_trip(&sample(100_000), &with(Some(11), None));
    }

    #[test]
    fn default_quality_is_eleven_like_the_command_line() {
        assert_eq!(BROTLI.levels().default, 11);
        assert_eq!(DEFAULT_QUALITY, 11);
        let data = sample(50_000);
        let (_, stats) = engine::compress(&BROTLI, &data, &CompressOptions::default()).unwrap();
        assert_eq!(stats.level, Some(11));
    }

    #[test]
    fn output_is_the_same_as_the_crates_one_shot_call() {
        let data = sample(200_000);
        for (quality, lgwin) in [(2, 18), (5, 22), (9, 18), (11, 18)] {
            let options = with(Some(quality), Some(lgwin as u32));
            let ours = BROTLI.compress(&data, &options).unwrap();
            let raw = raw_compress(&data, quality, lgwin);
            assert!(
                ours == raw,
                "quality {quality}: {} and {} bytes",
                ours.len(),
                raw.len()
            );
        }
    }

    #[test]
    fn fastest_qualities_compress_each_write_as_it_comes() {
        // Qualities 0 and 1 compress every write on its own (as the C library does), so the
        // output depends on how the input is fed: the one-shot call, in one piece, beats
        // the crate's `BrotliCompress`, which feeds 4 KiB at a time.
        let data = sample(200_000);
        for quality in [0, 1] {
            let ours = BROTLI
                .compress(&data, &with(Some(quality), Some(18)))
                .unwrap();
            let raw = raw_compress(&data, quality, 18);
            assert!(ours.len() < raw.len(), "quality {quality}");
            round_trip(&data, &with(Some(quality), Some(18)));
        }
    }

    #[test]
    fn streaming_output_is_the_same_as_one_shot_when_the_size_is_known() {
        let data = sample(200_000);
        let options = CompressOptions {
            size_hint: Some(data.len() as u64),
            ..with(Some(6), None)
        };
        let mut streamed = Vec::new();
        engine::compress_stream(&BROTLI, &mut &data[..], &mut streamed, &options).unwrap();
        assert_eq!(streamed, BROTLI.compress(&data, &options).unwrap());
    }

    #[test]
    fn window_follows_the_input_size_like_the_command_line() {
        let sized = |size| CompressOptions {
            size_hint: Some(size),
            ..Default::default()
        };
        assert_eq!(window_log(&sized(0)).unwrap(), 10);
        assert_eq!(window_log(&sized(1008)).unwrap(), 10);
        assert_eq!(window_log(&sized(1009)).unwrap(), 11);
        assert_eq!(window_log(&sized(152_089)).unwrap(), 18);
        assert_eq!(window_log(&sized(10 << 20)).unwrap(), 24);
        assert_eq!(window_log(&sized(1 << 40)).unwrap(), 24);
        assert_eq!(window_log(&CompressOptions::default()).unwrap(), 24);
    }

    #[test]
    fn window_option_is_honoured() {
        // A block of 4 KiB seen again 8 KiB later: only a window of more than 8 KiB finds
        // the repeats.
        let block = {
            let mut x: u32 = 99;
            (0..4096)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 24) as u8
                })
                .collect::<Vec<u8>>()
        };
        let mut data = Vec::new();
        for i in 0..64u8 {
            data.extend_from_slice(&block);
            data.extend(std::iter::repeat_n(i, 4096));
        }
        let small = round_trip(&data, &with(Some(5), Some(10)));
        let large = round_trip(&data, &with(Some(5), Some(16)));
        assert!(
            small.len() > 4 * large.len(),
            "{} and {}",
            small.len(),
            large.len()
        );
        // The stream header records the window: lgwin 10 is the 7-bit code 0100001.
        assert_eq!(small[0] & 0x7f, 0b010_0001);
    }

    #[test]
    fn window_out_of_range_is_invalid_input_naming_the_range() {
        for window in [0, 9, 25, 30] {
            let err = engine::compress(&BROTLI, b"data", &with(None, Some(window))).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.message().contains("10 to 24"), "{}", err.message());
            let err = BROTLI
                .encoder(Box::new(Vec::new()), &with(None, Some(window)))
                .err()
                .unwrap();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn quality_out_of_range_is_invalid_input() {
        let err = engine::compress(&BROTLI, b"data", &with(Some(12), None)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("0 to 11"), "{}", err.message());
    }

    #[test]
    fn truncated_input_is_corrupt_data_naming_the_codec() {
        let data = sample(100_000);
        let packed = BROTLI.compress(&data, &with(Some(5), None)).unwrap();
        for cut in [1, packed.len() / 2, packed.len() - 1] {
            let err = engine::decompress(&BROTLI, &packed[..cut], &DecompressOptions::default())
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::CorruptData, "cut at {cut}");
            assert!(err.message().contains("brotli"), "{}", err.message());
            assert_eq!(err.context_value("codec"), Some("brotli"));
        }
    }

    #[test]
    fn empty_input_is_corrupt_data() {
        let err = engine::decompress(&BROTLI, b"", &DecompressOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptData);
        assert!(err.message().contains("empty input"), "{}", err.message());
    }

    #[test]
    fn trailing_data_is_corrupt_data_at_the_stream_end() {
        let mut packed = BROTLI
            .compress(b"some bytes", &with(Some(5), None))
            .unwrap();
        let end = packed.len();
        packed.extend_from_slice(b"garbage");
        let err = engine::decompress(&BROTLI, &packed, &DecompressOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptData);
        assert_eq!(err.context_value("offset"), Some(end.to_string().as_str()));
    }

    #[test]
    fn garbage_and_flipped_bits_error_or_decode_without_panicking() {
        let data = sample(20_000);
        let packed = BROTLI.compress(&data, &with(Some(5), None)).unwrap();
        for i in (0..packed.len()).step_by(7) {
            let mut bad = packed.clone();
            bad[i] ^= 0x10;
            // Brotli has no checksum: some flips decode to other bytes; none may panic.
            let _ = engine::decompress(&BROTLI, &bad, &DecompressOptions::default());
        }
        let err =
            engine::decompress(&BROTLI, &[0xff; 64], &DecompressOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptData);
    }

    #[test]
    fn output_limit_stops_decompression() {
        let data = vec![b'a'; 1 << 20];
        let packed = BROTLI.compress(&data, &with(Some(5), None)).unwrap();
        let err =
            engine::decompress(&BROTLI, &packed, &DecompressOptions::max_output(1000)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn large_window_streams_are_refused() {
        // What `brotli --large_window=26` writes: a 64 MiB window, outside RFC 7932.
        let params = BrotliEncoderParams {
            quality: 5,
            lgwin: 26,
            large_window: true,
            ..BrotliEncoderParams::default()
        };
        let mut packed = Vec::new();
        brotli::BrotliCompress(&mut &b"large window"[..], &mut packed, &params).unwrap();
        let err = engine::decompress(&BROTLI, &packed, &DecompressOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptData);
    }

    #[test]
    fn memory_estimate_grows_with_quality_and_window() {
        let sized = |level, window_log| CompressOptions {
            level: Some(level),
            window_log,
            size_hint: Some(10 << 20),
            ..Default::default()
        };
        let q1 = BROTLI.memory_estimate(&sized(1, None));
        let q5 = BROTLI.memory_estimate(&sized(5, None));
        let q9 = BROTLI.memory_estimate(&sized(9, None));
        let q11 = BROTLI.memory_estimate(&sized(11, None));
        assert!(q1 < q5 && q5 < q9 && q9 < q11, "{q1} {q5} {q9} {q11}");
        assert!(
            BROTLI.memory_estimate(&sized(11, Some(18)))
                < BROTLI.memory_estimate(&sized(11, Some(24)))
        );
        // A small input needs no more than a small window's worth.
        let small = CompressOptions {
            size_hint: Some(1000),
            ..Default::default()
        };
        assert!(BROTLI.memory_estimate(&small) < 2 << 20);
    }

    #[test]
    fn describes_itself() {
        assert_eq!(BROTLI.name(), "brotli");
        assert_eq!(BROTLI.extension(), "br");
        assert_eq!(BROTLI.media_type(), "application/x-brotli");
        assert!(BROTLI.magic().is_none());
    }
}
