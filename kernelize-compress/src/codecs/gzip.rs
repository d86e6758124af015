//! `gzip` and `deflate`: gzip files (RFC 1952) and raw deflate streams (RFC 1951), through
//! [`flate2`] on its `zlib-rs` backend (a memory-safe Rust port of zlib).
//!
//! - [`GZIP`] writes one gzip member with the header `gzip -n` writes (no file name, time 0,
//!   operating system 3 = Unix), so the header carries nothing about the machine or the
//!   moment. It reads multi-member files as the `gzip` command does (the members' contents,
//!   concatenated), and checks each member's CRC-32 and length: a flipped bit (outside the
//!   header's time, extra-flags and system bytes, which nothing checks), a cut file, or bytes
//!   after the last member that are not another member are corrupt-data errors.
//!   Detected by its magic bytes `1f 8b`.
//! - [`DEFLATE`] is the bare deflate stream, with no header, trailer or checksum: the
//!   payload of gzip, zip and PNG. It has no magic bytes, so name it explicitly; decoding
//!   stops at the final block, and the engine reports any byte after it. With no checksum,
//!   some bit flips decode to different bytes without an error; a cut stream is an error.
//!
//! Levels 0 (stored) to 9, default 6 like the `gzip` command and zlib. `window_log` and the
//! other zstd-specific [`CompressOptions`] do not apply and are ignored: the window is
//! always zlib's largest, 32 KiB.
//!
//! The bytes written can depend on how the data was fed. zlib-rs's stored (level 0), quick
//! (1) and medium (3 to 6, as in zlib-ng) strategies end some blocks where the input or
//! output buffer does, so a buffer compressed in one call ([`Codec::compress`], straight
//! into the result) and the same bytes streamed can differ by a few bytes (seen at levels
//! 0, 1, 5 and 6 on corpus files), while both decode to the same content. Levels 2 and 7 to
//! 9 give the same bytes however the data is fed, the same as flate2's own writers. The same
//! call on the same input always gives the same bytes.
//!
//! # Library and backend
//!
//! The alternatives were calling a deflate implementation directly: `zlib-rs`'s own API, or
//! `libdeflater` (libdeflate, C; fast, but whole buffers only, no streaming). `flate2` was
//! chosen for its streaming readers and writers, gzip header and multi-member handling, and
//! because it sits on the fastest backend we measured.
//!
//! Backend measured with a throwaway crate outside the repository (`flate2` 1.1.11 with
//! default features off, `write::GzEncoder` then `bufread::GzDecoder` in memory, level 6,
//! Silesia `dickens`, 10,192,446 bytes; release build; best of 5 runs, the whole repeated 3
//! times; 2-core AMD EPYC VM, 2026-11-26). Command: `cargo run --release --features B --
//! dickens 6 5`, where feature `B` turns on flate2's `rust_backend` or its `zlib-rs`:
//!
//! | backend | compress | decompress | output |
//! |---|---|---|---|
//! | `miniz_oxide` 0.9.1 (flate2's default) | 13.4–15.3 MB/s | 258–327 MB/s | 3,872,892 B |
//! | `zlib-rs` 0.6.8 (chosen) | 39.5–45.5 MB/s | 358–522 MB/s | 3,895,469 B |
//!
//! `zlib-rs` compresses about 3 times as fast and decompresses about 1.4 times as fast, for
//! output 0.6 % larger. (GNU `gzip -6` on the same file: 3,868,770 bytes at 13 MB/s.)

use std::io::{BufRead, Read, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use kernelize_core::{Error, ErrorKind, Result};

use crate::codec::{Codec, CompressOptions, DecompressOptions, Encoder, LevelRange};

/// Deflate-based codecs: gzip (RFC 1952: a header, deflate, CRC-32 and length) or raw
/// deflate (RFC 1951). One type, since they differ only in the wrapper.
#[derive(Debug, Clone, Copy)]
pub struct FlateCodec {
    /// Whether streams carry the gzip header and trailer.
    gzip: bool,
}

/// The gzip codec (RFC 1952).
pub static GZIP: FlateCodec = FlateCodec { gzip: true };

/// The raw deflate codec (RFC 1951).
pub static DEFLATE: FlateCodec = FlateCodec { gzip: false };

/// Level used when none is given: 6, as the `gzip` command and zlib.
pub const DEFAULT_LEVEL: i32 = 6;

/// The levels of both codecs.
const LEVELS: LevelRange = LevelRange {
    min: 0,
    max: 9,
    default: DEFAULT_LEVEL,
};

/// Size of the buffer compressed bytes are staged in before they go to the output.
const OUTPUT_BUFFER: usize = 64 * 1024;

/// The gzip header for `level`, as `gzip -n` writes it: deflate, no flags, no time, the
/// extra-flags byte saying "best" (2) at level 9 and "fastest" (4) below 2, Unix.
fn gzip_header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9 => 2,
        0 | 1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]
}

/// The gzip trailer: CRC-32 and length modulo 2^32, little-endian.
fn gzip_trailer(crc: &Crc) -> [u8; 8] {
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&crc.sum().to_le_bytes());
    trailer[4..].copy_from_slice(&crc.amount().to_le_bytes());
    trailer
}

fn compress_error(e: flate2::CompressError) -> std::io::Error {
    std::io::Error::other(format!("deflate failed: {e}"))
}

/// A deflate stream written to `output`, wrapped in a gzip member when `crc` is kept.
///
/// Unlike flate2's writers, dropping it without [`Encoder::finish`] writes nothing more, so
/// an interrupted stream stays truncated and decoders reject it.
struct DeflateWriter<W: Write> {
    output: W,
    compress: Compress,
    /// The running CRC-32 of the input, for the gzip trailer; `None` for raw deflate.
    crc: Option<Crc>,
    buffer: Vec<u8>,
}

impl<W: Write> DeflateWriter<W> {
    fn new(mut output: W, level: u32, gzip: bool) -> std::io::Result<Self> {
        if gzip {
            output.write_all(&gzip_header(level))?;
        }
        Ok(DeflateWriter {
            output,
            compress: Compress::new(Compression::new(level), false),
            crc: gzip.then(Crc::new),
            buffer: Vec::with_capacity(OUTPUT_BUFFER),
        })
    }

    /// Runs deflate over `input` with `flush` until the input is used and, for a flush or
    /// the finish, until deflate has no more output; every compressed byte goes out.
    fn run(&mut self, mut input: &[u8], flush: FlushCompress) -> std::io::Result<()> {
        loop {
            self.buffer.clear();
            let before = self.compress.total_in();
            let status = self
                .compress
                .compress_vec(input, &mut self.buffer, flush)
                .map_err(compress_error)?;
            let used = (self.compress.total_in() - before) as usize;
            input = &input[used.min(input.len())..];
            self.output.write_all(&self.buffer)?;
            let room_left = self.buffer.len() < self.buffer.capacity();
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                FlushCompress::None => input.is_empty(),
                _ => input.is_empty() && room_left,
            };
            if done {
                return Ok(());
            }
            if used == 0 && self.buffer.is_empty() {
                // zlib reports no progress as a buffer error; with room to write, that means
                // there is nothing left to do.
                return if status == Status::BufError && input.is_empty() {
                    Ok(())
                } else {
                    Err(std::io::Error::other("deflate stopped making progress"))
                };
            }
        }
    }
}

impl<W: Write> Write for DeflateWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.run(buf, FlushCompress::None)?;
        if let Some(crc) = &mut self.crc {
            crc.update(buf);
        }
        Ok(buf.len())
    }

    /// Ends the current block with a sync flush so that everything written so far can be
    /// decoded, then flushes the output.
    fn flush(&mut self) -> std::io::Result<()> {
        self.run(&[], FlushCompress::Sync)?;
        self.output.flush()
    }
}

impl<W: Write> Encoder for DeflateWriter<W> {
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.run(&[], FlushCompress::Finish)?;
        if let Some(crc) = &self.crc {
            self.output.write_all(&gzip_trailer(crc))?;
        }
        Ok(self.output.flush()?)
    }
}

/// Starts a flate2 decoder once the input has a byte: an input with none reads as nothing
/// (flate2 would call it truncated), so that the engine reports it as empty input.
struct StartOnData<'a> {
    input: Option<Box<dyn BufRead + 'a>>,
    start: fn(Box<dyn BufRead + 'a>) -> Box<dyn Read + 'a>,
    decoder: Option<Box<dyn Read + 'a>>,
}

impl<'a> StartOnData<'a> {
    fn new(
        input: Box<dyn BufRead + 'a>,
        start: fn(Box<dyn BufRead + 'a>) -> Box<dyn Read + 'a>,
    ) -> Self {
        StartOnData {
            input: Some(input),
            start,
            decoder: None,
        }
    }
}

impl Read for StartOnData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.decoder.is_none() {
            let Some(mut input) = self.input.take() else {
                return Ok(0);
            };
            if input.fill_buf()?.is_empty() {
                self.input = Some(input);
                return Ok(0);
            }
            self.decoder = Some((self.start)(input));
        }
        match &mut self.decoder {
            Some(decoder) => decoder.read(buf),
            None => Ok(0),
        }
    }
}

/// Compresses a whole buffer straight into the output vector (no staging buffer).
fn compress_buffer(data: &[u8], level: u32, gzip: bool) -> Result<Vec<u8>> {
    // Room for text at an ordinary ratio; grown when the data compresses worse.
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    if gzip {
        out.extend_from_slice(&gzip_header(level));
    }
    let mut compress = Compress::new(Compression::new(level), false);
    loop {
        let used = compress.total_in() as usize;
        let status = compress
            .compress_vec(
                &data[used.min(data.len())..],
                &mut out,
                FlushCompress::Finish,
            )
            .map_err(compress_error)?;
        if status == Status::StreamEnd {
            break;
        }
        out.reserve(out.capacity().max(64 * 1024));
    }
    if gzip {
        let mut crc = Crc::new();
        crc.update(data);
        out.extend_from_slice(&gzip_trailer(&crc));
    }
    Ok(out)
}

/// The level for `options`, checked against the range.
fn level(codec: &dyn Codec, options: &CompressOptions) -> Result<u32> {
    let level = LEVELS.resolve(codec.name(), options.level)?;
    u32::try_from(level).map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("{} accepts levels 0 to 9; got {level}", codec.name()),
        )
    })
}

/// Deflate's working memory from zlib's documented formula,
/// `(1 << (windowBits + 2)) + (1 << (memLevel + 9))`: 256 KiB for windowBits 15 and
/// memLevel 8 (what flate2 uses at every level), plus about 6 KiB of state: about 268 KB.
/// `zlib-rs` allocates the same tables.
const DEFLATE_MEMORY: u64 = (1 << (15 + 2)) + (1 << (8 + 9)) + 6 * 1024;

impl Codec for FlateCodec {
    fn name(&self) -> &'static str {
        if self.gzip { "gzip" } else { "deflate" }
    }

    /// gzip: `application/gzip`. Raw deflate: `application/octet-stream`, as it has no
    /// registered media type (HTTP's `deflate` content coding is the zlib format of
    /// RFC 1950, not this).
    fn media_type(&self) -> &'static str {
        if self.gzip {
            "application/gzip"
        } else {
            "application/octet-stream"
        }
    }

    fn extension(&self) -> &'static str {
        if self.gzip { "gz" } else { "deflate" }
    }

    fn levels(&self) -> LevelRange {
        LEVELS
    }

    /// gzip's `1f 8b`; raw deflate has none.
    fn magic(&self) -> Option<&'static [u8]> {
        self.gzip.then_some(&[0x1f, 0x8b][..])
    }

    /// About 268 KB at every level, from zlib's documented formula
    /// `(1 << (windowBits + 2)) + (1 << (memLevel + 9))` for windowBits 15 and memLevel 8,
    /// plus the state.
    fn memory_estimate(&self, _options: &CompressOptions) -> u64 {
        DEFLATE_MEMORY
    }

    fn encoder<'a>(
        &self,
        output: Box<dyn Write + 'a>,
        options: &CompressOptions,
    ) -> Result<Box<dyn Encoder + 'a>> {
        let level = level(self, options)?;
        Ok(Box::new(DeflateWriter::new(output, level, self.gzip)?))
    }

    /// gzip reads every member of the file, as `gzip -d` does, checking each one's CRC-32
    /// and length. Raw deflate reads up to the final block and no further. Either way the
    /// engine reports any byte after the end.
    fn decoder<'a>(
        &self,
        input: Box<dyn BufRead + 'a>,
        _options: &DecompressOptions,
    ) -> Result<Box<dyn Read + 'a>> {
        if self.gzip {
            Ok(Box::new(StartOnData::new(input, |input| {
                Box::new(flate2::bufread::MultiGzDecoder::new(input))
            })))
        } else {
            Ok(Box::new(StartOnData::new(input, |input| {
                Box::new(flate2::bufread::DeflateDecoder::new(input))
            })))
        }
    }

    fn compress(&self, data: &[u8], options: &CompressOptions) -> Result<Vec<u8>> {
        compress_buffer(data, level(self, options)?, self.gzip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine;

    /// Text with repeats near and far, and numbers that do not repeat.
    fn sample(len: usize) -> Vec<u8> {
        let words = [
            "the ", "quick ", "brown ", "fox ", "jumps ", "over ", "a ", "lazy ", "dog\n",
        ];
        let mut out = Vec::with_capacity(len);
        let mut x: u32 = 42;
        while out.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
            if x.is_multiple_of(5) {
                out.extend_from_slice(format!("{x}").as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn at(level: i32) -> CompressOptions {
        CompressOptions::level(level)
    }

    fn round_trip(codec: &dyn Codec, data: &[u8], options: &CompressOptions) -> Vec<u8> {
        let (packed, _) = engine::compress(codec, data, options).unwrap();
        let (unpacked, _) =
            engine::decompress(codec, &packed, &DecompressOptions::default()).unwrap();
        assert!(unpacked == data, "round trip changed the data");
        let mut streamed = Vec::new();
        engine::compress_stream(codec, &mut &data[..], &mut streamed, options).unwrap();
        if options.level.is_some_and(|l| matches!(l, 2 | 7..=9)) {
            // The other levels end some blocks where the buffers do.
            assert!(streamed == packed, "streaming and one-shot output differ");
        }
        let (unstreamed, _) =
            engine::decompress(codec, &streamed, &DecompressOptions::default()).unwrap();
        assert!(unstreamed == data);
        packed
    }

    /// flate2's own gzip writer with the header `gzip -n` writes.
    fn flate2_gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut encoder = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(3)
            .write(Vec::new(), Compression::new(level));
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn flate2_deflate(data: &[u8], level: u32) -> Vec<u8> {
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(level));
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_round_trips_empty_small_and_one_mebibyte_at_several_levels() {
        let mebibyte = sample(1 << 20);
        for level in [0, 1, 2, 6, 9] {
            round_trip(&GZIP, b"", &at(level));
            round_trip(&GZIP, b"hello, gzip", &at(level));
            round_trip(&GZIP, &mebibyte, &at(level));
        }
    }

    #[test]
    fn deflate_round_trips_empty_small_and_one_mebibyte_at_several_levels() {
        let mebibyte = sample(1 << 20);
        for level in [0, 1, 2, 6, 9] {
            round_trip(&DEFLATE, b"", &at(level));
            round_trip(&DEFLATE, b"hello, deflate", &at(level));
            round_trip(&DEFLATE, &mebibyte, &at(level));
        }
    }

    #[test]
    fn incompressible_data_round_trips() {
        let mut x: u64 = 7;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        round_trip(&GZIP, &noise, &at(6));
        round_trip(&DEFLATE, &noise, &at(9));
    }

    #[test]
    fn gzip_output_is_the_same_as_flate2s_writer_at_buffer_independent_levels() {
        let data = sample(300_000);
        for level in [2, 7, 9] {
            let ours = GZIP.compress(&data, &at(level)).unwrap();
            assert!(ours == flate2_gzip(&data, level as u32), "level {level}");
        }
    }

    #[test]
    fn deflate_output_is_the_same_as_flate2s_writer_at_buffer_independent_levels() {
        let data = sample(300_000);
        for level in [2, 7, 9] {
            let ours = DEFLATE.compress(&data, &at(level)).unwrap();
            assert!(ours == flate2_deflate(&data, level as u32), "level {level}");
        }
    }

    #[test]
    fn gzip_header_is_the_one_gzip_n_writes() {
        let packed = GZIP.compress(b"abc", &CompressOptions::default()).unwrap();
        assert_eq!(packed[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        let best = GZIP.compress(b"abc", &at(9)).unwrap();
        assert_eq!(best[8], 2);
        let fast = GZIP.compress(b"abc", &at(1)).unwrap();
        assert_eq!(fast[8], 4);
    }

    #[test]
    fn default_level_is_six_like_the_command_line() {
        assert_eq!(GZIP.levels().default, 6);
        assert_eq!(DEFLATE.levels().default, 6);
        let (_, stats) = engine::compress(&GZIP, b"x", &CompressOptions::default()).unwrap();
        assert_eq!(stats.level, Some(6));
    }

    #[test]
    fn level_out_of_range_is_invalid_input() {
        for codec in [&GZIP as &dyn Codec, &DEFLATE] {
            for level in [-1, 10] {
                let err = engine::compress(codec, b"data", &at(level)).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidInput);
                assert!(err.message().contains("0 to 9"), "{}", err.message());
            }
        }
    }

    #[test]
    fn truncated_gzip_is_corrupt_data_naming_the_codec() {
        let packed = GZIP.compress(&sample(100_000), &at(6)).unwrap();
        for cut in [
            1,
            5,
            10,
            packed.len() / 2,
            packed.len() - 8,
            packed.len() - 1,
        ] {
            let err = engine::decompress(&GZIP, &packed[..cut], &DecompressOptions::default())
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::CorruptData, "cut at {cut}");
            assert!(err.message().contains("gzip"), "{}", err.message());
            assert_eq!(err.context_value("codec"), Some("gzip"));
        }
    }

    #[test]
    fn truncated_deflate_is_corrupt_data_naming_the_codec() {
        let packed = DEFLATE.compress(&sample(100_000), &at(6)).unwrap();
        for cut in [1, packed.len() / 2, packed.len() - 1] {
            let err = engine::decompress(&DEFLATE, &packed[..cut], &DecompressOptions::default())
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::CorruptData, "cut at {cut}");
            assert!(err.message().contains("deflate"), "{}", err.message());
        }
    }

    #[test]
    fn gzip_flipped_bit_in_the_data_fails_the_crc() {
        let data = sample(10_000);
        let packed = GZIP.compress(&data, &at(0)).unwrap();
        // Level 0 stores the bytes: a flip in the middle changes the data, not the structure.
        let mut bad = packed.clone();
        let middle = packed.len() / 2;
        bad[middle] ^= 0x01;
        let err = engine::decompress(&GZIP, &bad, &DecompressOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptData);
        assert!(err.message().contains("checksum"), "{}", err.message());
    }

    #[test]
    fn gzip_every_flipped_bit_errors_without_panicking() {
        let packed = GZIP.compress(&sample(5_000), &at(6)).unwrap();
        for i in 0..packed.len() {
            let mut bad = packed.clone();
            bad[i] ^= 0x04;
            match engine::decompress(&GZIP, &bad, &DecompressOptions::default()) {
                Err(err) => assert_eq!(err.kind(), ErrorKind::CorruptData, "byte {i}"),
                // Bytes 4 to 9 (time, extra flags, system) are not checked by anyone.
                Ok(_) => assert!((4..10).contains(&i), "flip at byte {i} went unnoticed"),
            }
        }
    }

    #[test]
    fn multi_member_gzip_decodes_to_the_concatenation() {
        let mut packed = GZIP.compress(b"first member, ", &at(6)).unwrap();
        packed.extend(GZIP.compress(b"second member", &at(1)).unwrap());
        packed.extend(GZIP.compress(b"", &at(9)).unwrap());
        let (unpacked, _) =
            engine::decompress(&GZIP, &packed, &DecompressOptions::default()).unwrap();
        assert_eq!(unpacked, b"first member, second member");
    }

    #[test]
    fn gzip_with_trailing_garbage_is_corrupt_data() {
        let mut packed = GZIP.compress(b"some bytes", &at(6)).unwrap();
        packed.extend_from_slice(b"garbage!!!!!");
        let err = engine::decompress(&GZIP, &packed, &DecompressOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptData);
    }

    #[test]
    fn deflate_with_trailing_garbage_is_corrupt_data_at_the_stream_end() {
        let mut packed = DEFLATE.compress(&sample(50_000), &at(6)).unwrap();
        let end = packed.len();
        packed.extend_from_slice(b"garbage");
        let err = engine::decompress(&DEFLATE, &packed, &DecompressOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptData);
        assert!(err.message().contains("after the end"), "{}", err.message());
        assert_eq!(err.context_value("offset"), Some(end.to_string().as_str()));
    }

    #[test]
    fn empty_input_is_corrupt_data() {
        for codec in [&GZIP as &dyn Codec, &DEFLATE] {
            let err = engine::decompress(codec, b"", &DecompressOptions::default()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::CorruptData);
            assert!(err.message().contains("empty input"), "{}", err.message());
        }
    }

    #[test]
    fn garbage_is_corrupt_data() {
        for codec in [&GZIP as &dyn Codec, &DEFLATE] {
            let err =
                engine::decompress(codec, &[0xff; 64], &DecompressOptions::default()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::CorruptData);
        }
    }

    #[test]
    fn output_limit_stops_decompression() {
        let packed = GZIP.compress(&vec![0u8; 1 << 20], &at(6)).unwrap();
        let err =
            engine::decompress(&GZIP, &packed, &DecompressOptions::max_output(4096)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn dropping_an_encoder_without_finish_leaves_a_truncated_stream() {
        let mut out = Vec::new();
        {
            let mut encoder = GZIP.encoder(Box::new(&mut out), &at(6)).unwrap();
            encoder.write_all(&sample(10_000)).unwrap();
        }
        let err = engine::decompress(&GZIP, &out, &DecompressOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptData);
    }

    #[test]
    fn detection_recognizes_gzip_only() {
        let packed = GZIP.compress(b"abc", &at(6)).unwrap();
        assert_eq!(crate::detect(&packed).map(|c| c.name()), Some("gzip"));
        assert!(DEFLATE.magic().is_none());
    }

    #[test]
    fn memory_estimate_follows_zlibs_formula() {
        assert_eq!(GZIP.memory_estimate(&CompressOptions::default()), 268_288);
        assert_eq!(DEFLATE.memory_estimate(&at(1)), 268_288);
    }

    #[test]
    fn describes_itself() {
        assert_eq!(
            (GZIP.name(), GZIP.extension(), GZIP.media_type()),
            ("gzip", "gz", "application/gzip")
        );
        assert_eq!(
            (DEFLATE.name(), DEFLATE.extension(), DEFLATE.media_type()),
            ("deflate", "deflate", "application/octet-stream")
        );
    }
}
