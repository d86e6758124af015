//! Every enabled codec against hostile input: round trips over random and structured data,
//! truncation, bit flips, the wrong codec, empty input and decompression bombs. None of it
//! may panic; checksummed formats may never return wrong bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use kernelize_compress::{
    Codec, CompressOptions, DecompressOptions, codecs, compress, decompress, decompress_stream,
};
use kernelize_core::ErrorKind;
use proptest::prelude::*;

/// Codecs whose format carries a checksum over the content: a corrupted stream is either
/// refused or still decodes to the original bytes.
fn checksummed(codec: &dyn Codec) -> bool {
    matches!(codec.name(), "zstd" | "lz4" | "snappy" | "gzip")
}

fn text(len: usize) -> Vec<u8> {
    let words = [
        "order", "shipped", "invoice", "customer", "42", "EUR", "pending", "\n",
    ];
    let mut out = Vec::with_capacity(len);
    let mut i = 7usize;
    while out.len() < len {
        i = i.wrapping_mul(1103515245).wrapping_add(12345);
        out.extend_from_slice(words[(i >> 16) % words.len()].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

/// The lowest, default and highest level, capped so a test stays quick.
fn level_bands(codec: &dyn Codec) -> Vec<i32> {
    let l = codec.levels();
    let mut bands = vec![l.min, l.default, l.max.min(19)];
    bands.dedup();
    bands
}

fn packed(codec: &dyn Codec, data: &[u8]) -> Vec<u8> {
    compress(codec, data, &CompressOptions::default())
        .unwrap()
        .0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_bytes_round_trip_at_every_level_band(data in proptest::collection::vec(any::<u8>(), 0..20_000)) {
        for codec in codecs() {
            for level in level_bands(codec) {
                let (c, _) = compress(codec, &data, &CompressOptions::level(level)).unwrap();
                let (d, _) = decompress(codec, &c, &DecompressOptions::default()).unwrap();
                prop_assert_eq!(&d, &data, "{} level {}", codec.name(), level);
            }
        }
    }

    #[test]
    fn structured_data_round_trips(len in 0usize..100_000, repeat in 1usize..50) {
        let unit = text(len / repeat + 1);
        let data: Vec<u8> = unit.iter().copied().cycle().take(len).collect();
        for codec in codecs() {
            let (c, _) = compress(codec, &data, &CompressOptions::default()).unwrap();
            let (d, _) = decompress(codec, &c, &DecompressOptions::default()).unwrap();
            prop_assert_eq!(&d, &data, "{}", codec.name());
        }
    }

    #[test]
    fn bit_flips_never_panic_and_checksummed_formats_never_lie(seed in any::<u64>()) {
        let data = text(30_000);
        for codec in codecs() {
            let c = packed(codec, &data);
            let mut corrupted = c.clone();
            let bit = (seed as usize) % (corrupted.len() * 8);
            corrupted[bit / 8] ^= 1 << (bit % 8);
            match decompress(codec, &corrupted, &DecompressOptions::default()) {
                Ok((d, _)) if checksummed(codec) => prop_assert_eq!(
                    &d, &data, "{} returned different bytes for a flip of bit {}", codec.name(), bit
                ),
                Ok(_) => {}
                Err(e) => prop_assert!(
                    matches!(e.kind(), ErrorKind::CorruptData | ErrorKind::InvalidInput),
                    "{}: {e}", codec.name()
                ),
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        for codec in codecs() {
            let _ = decompress(codec, &data, &DecompressOptions::max_output(1 << 20));
        }
    }
}

#[test]
fn every_truncation_is_an_error_naming_the_codec() {
    let data = text(50_000);
    for codec in codecs().into_iter().filter(|c| c.name() != "none") {
        let c = packed(codec, &data);
        // Every cut in the first and last 64 bytes, and a spread in between.
        let cuts: Vec<usize> = (0..c.len().min(64))
            .chain((c.len().saturating_sub(64))..c.len())
            .chain((0..c.len()).step_by((c.len() / 50).max(1)))
            .collect();
        for cut in cuts {
            let result = decompress(codec, &c[..cut], &DecompressOptions::default());
            // The Snappy framing format has no end marker: a cut between chunks is a shorter,
            // valid stream, and must decode to a prefix of the data.
            if let (Ok((d, _)), "snappy") = (&result, codec.name()) {
                assert!(
                    data.starts_with(d),
                    "snappy: cut at {cut} decoded to other bytes"
                );
                continue;
            }
            let err = result
                .err()
                .unwrap_or_else(|| panic!("{}: cut at {cut} of {} decoded", codec.name(), c.len()));
            assert_eq!(
                err.kind(),
                ErrorKind::CorruptData,
                "{}: {err}",
                codec.name()
            );
            assert!(err.to_string().contains(codec.name()), "{err}");
            assert!(err.context_value("offset").is_some(), "{err}");
        }
    }
}

#[test]
fn empty_input_is_corrupt_for_every_framed_codec() {
    for codec in codecs() {
        let result = decompress(codec, &[], &DecompressOptions::default());
        if codec.name() == "none" {
            assert_eq!(result.unwrap().0, Vec::<u8>::new());
        } else {
            let err = result.unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::CorruptData,
                "{}: {err}",
                codec.name()
            );
            assert!(err.to_string().contains("empty input"), "{err}");
        }
    }
}

#[test]
fn the_wrong_codec_is_refused_where_the_format_has_magic_bytes() {
    let data = text(10_000);
    for writer in codecs().into_iter().filter(|c| c.name() != "none") {
        let c = packed(writer, &data);
        for reader in codecs().into_iter().filter(|r| r.name() != writer.name()) {
            let result = decompress(reader, &c, &DecompressOptions::default());
            if reader.magic().is_some() {
                assert!(
                    result.is_err(),
                    "{} read {} output",
                    reader.name(),
                    writer.name()
                );
            }
        }
    }
}

#[test]
fn data_after_the_end_of_the_stream_is_an_error() {
    let data = text(5_000);
    for codec in codecs().into_iter().filter(|c| c.name() != "none") {
        let mut c = packed(codec, &data);
        let end = c.len();
        c.extend_from_slice(b"garbage after the stream");
        let err = decompress(codec, &c, &DecompressOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{} accepted trailing garbage", codec.name()));
        assert_eq!(
            err.kind(),
            ErrorKind::CorruptData,
            "{}: {err}",
            codec.name()
        );
        if err.message().contains("after the end") {
            assert_eq!(err.context_value("offset"), Some(end.to_string().as_str()));
        }
    }
}

/// Counts what is written and keeps nothing.
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_decompression_bomb_stops_at_the_output_limit() {
    let zeros = vec![0u8; 64 << 20];
    let limit = 1u64 << 20;
    for codec in codecs() {
        // The fastest level: a bomb is cheap to make.
        let options = CompressOptions::level(codec.levels().min);
        let (bomb, _) = compress(codec, &zeros, &options).unwrap();
        let err = decompress(codec, &bomb, &DecompressOptions::max_output(limit)).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidInput,
            "{}: {err}",
            codec.name()
        );
        assert!(
            err.to_string().contains("output limit of 1048576 bytes"),
            "{err}"
        );

        let mut sink = Sink(0);
        let err = decompress_stream(
            codec,
            &mut &bomb[..],
            &mut sink,
            &DecompressOptions::max_output(limit),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            sink.0 <= limit,
            "{} wrote {} bytes past a {limit}-byte limit",
            codec.name(),
            sink.0
        );
    }
}

#[test]
fn output_exactly_at_the_limit_is_allowed() {
    let data = text(10_000);
    for codec in codecs() {
        let c = packed(codec, &data);
        let (d, _) =
            decompress(codec, &c, &DecompressOptions::max_output(data.len() as u64)).unwrap();
        assert_eq!(d, data);
    }
}

#[test]
fn flush_makes_everything_written_so_far_decodable() {
    use std::io::Read;
    for codec in codecs() {
        let mut out = Vec::new();
        {
            let mut encoder = codec
                .encoder(Box::new(&mut out), &CompressOptions::default())
                .unwrap();
            encoder.write_all(b"first part").unwrap();
            encoder.flush().unwrap();
        }
        let mut decoder = codec
            .decoder(Box::new(&out[..]), &DecompressOptions::default())
            .unwrap();
        let mut got = vec![0u8; 10];
        decoder
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("{}: {e}", codec.name()));
        assert_eq!(got, b"first part", "{}", codec.name());
    }
}
