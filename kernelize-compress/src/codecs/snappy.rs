//! `snappy`: the Snappy framing format (`sNaPpY` stream identifier, chunks of at most 64 KiB
//! with a masked CRC-32C each), through the pure-Rust [`snap`] crate.
//!
//! Output is the stream format of Google's `framing_format.txt`, the one python-snappy's
//! stream API and Go's `snappy.NewBufferedWriter` read and write. It is not the raw (block)
//! Snappy format used inside Parquet or Kafka messages.
//!
//! # Library choice
//!
//! [`snap`] is the maintained Rust implementation of Snappy, framing format included; Google's
//! C++ library (and its bindings) implement raw blocks only, so framing would have to be
//! written by hand on top of them. `snap` has no C dependency, and its decoder never
//! trusts a length from the input beyond the format's 64 KiB block limit.
//!
//! # Options
//!
//! Snappy has no levels ([`LevelRange::NONE`]: only level 0) and no window to choose. Every
//! chunk always carries its CRC-32C (the format requires it), so `checksum` changes nothing.
//! `long_distance`, `window_log`, `threads` and `size_hint` do not apply and are ignored. A
//! dictionary is refused with an invalid-input error: the format has none, and ignoring it
//! would let a caller believe it was used.
//!
//! Empty input compresses to the stream identifier followed by one empty compressed chunk
//! (19 bytes, which `snap` and snappy-java read). A bare identifier, which snappy-java and
//! others write for empty input, is read as the empty stream it is.
//!
//! # Decoding and its limits
//!
//! Every chunk's CRC-32C is checked, so a flipped bit in a payload is an error, never wrong
//! bytes. Concatenated streams (a second stream identifier in the middle) decode as one, as
//! the format allows. A stream cut inside a chunk is an error. The framing format has no end
//! marker, though: a stream cut exactly between two chunks (every 64 KiB of input) is
//! indistinguishable from a complete one and decodes to the data before the cut; that
//! includes a cut right after the stream identifier, which reads as an empty stream. Writers
//! that produce nothing at all for empty input produce what the engine refuses as empty
//! input.
//!
//! Memory is bounded by the format: the decoder keeps one compressed chunk (at most 76,490
//! bytes) and one decoded block (64 KiB), whatever lengths the input claims.

use std::io::{self, BufRead, Read, Write};

use kernelize_core::{Error, ErrorKind, Result};

use crate::codec::{Codec, CompressOptions, DecompressOptions, Encoder, LevelRange};

/// The stream identifier chunk every Snappy framed stream starts with (its magic bytes).
pub const STREAM_IDENTIFIER: [u8; 10] =
    [0xFF, 0x06, 0x00, 0x00, b's', b'N', b'a', b'P', b'p', b'Y'];

/// A compressed data chunk holding no bytes: type 0x00, length 5, the masked CRC-32C of
/// nothing (`0xA282EAD8`, little-endian), and a Snappy block of length 0 (one varint byte).
/// snappy-java refuses an uncompressed chunk with no data, so it is not used.
const EMPTY_DATA_CHUNK: [u8; 9] = [0x00, 0x05, 0x00, 0x00, 0xD8, 0xEA, 0x82, 0xA2, 0x00];

/// Most uncompressed bytes in one chunk.
const MAX_BLOCK: usize = 64 * 1024;

/// Chunk header (type and 24-bit length) plus the CRC.
const CHUNK_HEADER_AND_CRC: usize = 8;

/// `snap`'s output buffer: the worst-case compressed size of one 64 KiB block.
const MAX_COMPRESSED_BLOCK: u64 = 76_490;

/// `snap`'s encoder hash tables: up to 2^14 `u16` entries, plus a 2^10-entry table for small
/// blocks.
const HASH_TABLES: u64 = (1 << 14) * 2 + (1 << 10) * 2;

/// The Snappy framing codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnappyCodec;

/// The one instance.
pub static SNAPPY: SnappyCodec = SnappyCodec;

fn refuse_dictionary(dictionary: bool) -> Result<()> {
    if dictionary {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "snappy has no dictionaries; only zstd compresses with one",
        ));
    }
    Ok(())
}

/// The streaming encoder: `snap`'s, plus the empty-input rule.
struct SnappyEncoder<W: Write> {
    inner: Option<snap::write::FrameEncoder<W>>,
    written: u64,
}

impl<W: Write> SnappyEncoder<W> {
    fn inner(&mut self) -> io::Result<&mut snap::write::FrameEncoder<W>> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("the encoder was already finished"))
    }
}

impl<W: Write> Write for SnappyEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner()?.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner()?.flush()
    }
}

impl<W: Write> Encoder for SnappyEncoder<W> {
    fn finish(mut self: Box<Self>) -> Result<()> {
        let encoder = self.inner.take().ok_or_else(|| {
            Error::new(ErrorKind::InvalidState, "the encoder was already finished")
        })?;
        // `into_inner` writes the last (partial) block.
        let mut output = encoder
            .into_inner()
            .map_err(|e| Error::from(e.into_error()))?;
        if self.written == 0 {
            // `snap` writes the identifier with the first data; with none, write both here.
            output.write_all(&STREAM_IDENTIFIER)?;
            output.write_all(&EMPTY_DATA_CHUNK)?;
        }
        Ok(output.flush()?)
    }
}

/// Passes a framed stream through unchanged while following its chunk boundaries, so that
/// the end of the input can be judged: inside a chunk, or before any data chunk, it is an
/// error; between chunks it is the end of the stream.
struct ChunkBoundaries<R> {
    inner: R,
    header: [u8; 4],
    header_len: usize,
    body_left: usize,
    consumed: u64,
}

impl<R: BufRead> ChunkBoundaries<R> {
    fn new(inner: R) -> Self {
        ChunkBoundaries {
            inner,
            header: [0; 4],
            header_len: 0,
            body_left: 0,
            consumed: 0,
        }
    }

    fn end_of_input(&self) -> io::Result<usize> {
        if self.header_len > 0 || self.body_left > 0 {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ends inside a chunk",
            ))
        } else {
            Ok(0)
        }
    }
}

impl<R: BufRead> Read for ChunkBoundaries<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = self.inner.fill_buf()?;
        if available.is_empty() {
            return self.end_of_input();
        }
        let n = if self.body_left > 0 {
            let n = buf.len().min(self.body_left).min(available.len());
            self.body_left -= n;
            n
        } else {
            let n = buf.len().min(4 - self.header_len).min(available.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&available[..n]);
            self.header_len += n;
            if self.header_len == 4 {
                self.header_len = 0;
                let [_kind, l0, l1, l2] = self.header;
                self.body_left = usize::from(l0) | usize::from(l1) << 8 | usize::from(l2) << 16;
            }
            n
        };
        buf[..n].copy_from_slice(&available[..n]);
        self.inner.consume(n);
        self.consumed += n as u64;
        Ok(n)
    }
}

impl Codec for SnappyCodec {
    fn name(&self) -> &'static str {
        "snappy"
    }

    fn media_type(&self) -> &'static str {
        "application/x-snappy-framed"
    }

    fn extension(&self) -> &'static str {
        "sz"
    }

    fn levels(&self) -> LevelRange {
        LevelRange::NONE
    }

    fn magic(&self) -> Option<&'static [u8]> {
        Some(&STREAM_IDENTIFIER)
    }

    /// The encoder's fixed buffers: one 64 KiB input block, one worst-case compressed block
    /// (76,490 bytes) and the hash tables (34 KiB); about 173 KiB whatever the input.
    fn memory_estimate(&self, _options: &CompressOptions) -> u64 {
        MAX_BLOCK as u64 + MAX_COMPRESSED_BLOCK + HASH_TABLES
    }

    fn encoder<'a>(
        &self,
        output: Box<dyn Write + 'a>,
        options: &CompressOptions,
    ) -> Result<Box<dyn Encoder + 'a>> {
        refuse_dictionary(options.dictionary.is_some())?;
        Ok(Box::new(SnappyEncoder {
            inner: Some(snap::write::FrameEncoder::new(output)),
            written: 0,
        }))
    }

    fn decoder<'a>(
        &self,
        input: Box<dyn BufRead + 'a>,
        options: &DecompressOptions,
    ) -> Result<Box<dyn Read + 'a>> {
        refuse_dictionary(options.dictionary.is_some())?;
        Ok(Box::new(snap::read::FrameDecoder::new(
            ChunkBoundaries::new(input),
        )))
    }

    /// The same bytes as the streaming encoder, written straight into a buffer sized for the
    /// worst case (a chunk is stored uncompressed when compression does not save an eighth),
    /// so it never reallocates; `snap` compresses large writes from the caller's buffer
    /// without copying them first.
    fn compress(&self, data: &[u8], options: &CompressOptions) -> Result<Vec<u8>> {
        refuse_dictionary(options.dictionary.is_some())?;
        if data.is_empty() {
            return Ok([&STREAM_IDENTIFIER[..], &EMPTY_DATA_CHUNK[..]].concat());
        }
        let chunks = data.len().div_ceil(MAX_BLOCK);
        let mut out = Vec::with_capacity(
            STREAM_IDENTIFIER.len() + chunks * CHUNK_HEADER_AND_CRC + data.len(),
        );
        let mut encoder = snap::write::FrameEncoder::new(&mut out);
        encoder.write_all(data)?;
        encoder
            .into_inner()
            .map_err(|e| Error::from(e.into_error()))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::test_data;
    use crate::engine;

    fn text(len: usize) -> Vec<u8> {
        test_data::text(len, 7)
    }

    fn noise(len: usize) -> Vec<u8> {
        test_data::noise(len, 0x9e3779b97f4a7c15)
    }

    fn packed(data: &[u8]) -> Vec<u8> {
        engine::compress(&SNAPPY, data, &CompressOptions::default())
            .unwrap()
            .0
    }

    fn unpacked(data: &[u8]) -> Result<Vec<u8>> {
        test_data::unpacked_with(&SNAPPY, data)
    }

    fn streamed(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        engine::compress_stream(
            &SNAPPY,
            &mut &data[..],
            &mut out,
            &CompressOptions::default(),
        )
        .unwrap();
        out
    }

    fn assert_corrupt(result: Result<Vec<u8>>) -> Error {
        test_data::assert_corrupt_for("snappy", result)
    }

    #[test]
    fn round_trips_empty_small_and_one_mebibyte_of_text_and_noise() {
        for data in [
            Vec::new(),
            b"hello, snappy".to_vec(),
            text(1 << 20),
            noise(1 << 20),
        ] {
            assert_eq!(unpacked(&packed(&data)).unwrap(), data);
            assert_eq!(unpacked(&streamed(&data)).unwrap(), data);
        }
    }

    #[test]
    fn output_starts_with_the_stream_identifier() {
        assert!(packed(b"x").starts_with(&STREAM_IDENTIFIER));
        assert!(packed(b"").starts_with(&STREAM_IDENTIFIER));
        assert_eq!(SNAPPY.magic(), Some(&STREAM_IDENTIFIER[..]));
    }

    #[test]
    fn empty_input_is_the_identifier_and_one_empty_compressed_chunk_that_snap_reads() {
        let c = packed(b"");
        assert_eq!(c.len(), 19);
        assert_eq!(streamed(b""), c);
        let mut out = Vec::new();
        snap::read::FrameDecoder::new(&c[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn whole_buffer_and_streaming_output_equal_the_raw_snap_encoder() {
        let data = text(300_000);
        let mut raw = snap::write::FrameEncoder::new(Vec::new());
        raw.write_all(&data).unwrap();
        let raw = raw.into_inner().unwrap();
        assert_eq!(
            SNAPPY.compress(&data, &CompressOptions::default()).unwrap(),
            raw
        );
        assert_eq!(streamed(&data), raw);
    }

    #[test]
    fn output_is_read_by_snaps_own_decoder() {
        let data = text(200_000);
        let mut out = Vec::new();
        snap::read::FrameDecoder::new(&packed(&data)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn concatenated_streams_decode_as_one() {
        let (a, b) = (text(100_000), noise(70_000));
        let both = [packed(&a), packed(&b)].concat();
        assert_eq!(unpacked(&both).unwrap(), [a, b].concat());
    }

    #[test]
    fn a_stream_cut_inside_a_chunk_is_corrupt_data() {
        let c = packed(&text(200_000));
        for cut in [5, 12, 20, c.len() / 2, c.len() - 1] {
            assert_corrupt(unpacked(&c[..cut]));
        }
    }

    #[test]
    fn a_stream_of_only_the_identifier_is_the_empty_stream() {
        // What snappy-java writes for empty input.
        assert_eq!(unpacked(&STREAM_IDENTIFIER).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn a_flipped_bit_in_a_payload_fails_the_crc() {
        let data = text(50_000);
        let mut c = packed(&data);
        let at = c.len() - 100;
        c[at] ^= 0x10;
        assert_corrupt(unpacked(&c));
    }

    #[test]
    fn a_dictionary_is_refused() {
        let options = CompressOptions {
            dictionary: Some(std::sync::Arc::new(b"dict".to_vec())),
            ..Default::default()
        };
        let err = engine::compress(&SNAPPY, b"data", &options).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn memory_estimate_is_the_fixed_buffers() {
        assert_eq!(
            SNAPPY.memory_estimate(&CompressOptions::default()),
            65_536 + 76_490 + 34_816
        );
    }
}
