//! Data and round-trip helpers shared by the codecs' unit tests.

use kernelize_core::{Error, ErrorKind, Result};

use crate::codec::{Codec, CompressOptions, DecompressOptions};
use crate::engine;

/// `len` bytes of word-like text, different for each `seed`.
pub(crate) fn text(len: usize, seed: u32) -> Vec<u8> {
    let words = [
        "frame ", "window ", "block ", "chunk ", "literal ", "2026 ", "order ", "\n",
    ];
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed;
    while out.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
    }
    out.truncate(len);
    out
}

/// `len` bytes that do not compress (xorshift), different for each non-zero `seed`.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `data` compressed by `codec` through the engine.
pub(crate) fn packed_with(codec: &dyn Codec, data: &[u8], options: &CompressOptions) -> Vec<u8> {
    engine::compress(codec, data, options).unwrap().0
}

/// `data` decompressed by `codec` through the engine, with default options.
pub(crate) fn unpacked_with(codec: &dyn Codec, data: &[u8]) -> Result<Vec<u8>> {
    engine::decompress(codec, data, &DecompressOptions::default()).map(|(d, _)| d)
}

/// `data` compressed by `codec` through the streaming path.
pub(crate) fn streamed_with(
    codec: &dyn Codec,
    data: &[u8],
    options: &CompressOptions,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    engine::compress_stream(codec, &mut &data[..], &mut out, options)?;
    Ok(out)
}

/// The error of `result`, which must be corrupt data naming `codec`.
pub(crate) fn assert_corrupt_for(codec: &str, result: Result<Vec<u8>>) -> Error {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptData, "{err}");
    assert!(err.to_string().contains(codec), "{err}");
    err
}
