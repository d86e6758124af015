//! Feeds arbitrary bytes to the deflate decoder: it must return data or an error, never panic,
//! never exceed the output limit, never allocate without bound.
#![no_main]

use kernelize_compress::{DecompressOptions, codec, decompress};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(codec) = codec("deflate") else { return };
    let limit = 16 << 20;
    if let Ok((out, _)) = decompress(codec, data, &DecompressOptions::max_output(limit)) {
        assert!(out.len() as u64 <= limit);
    }
});
