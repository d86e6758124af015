//! Feeds arbitrary bytes to the image decoders (PNG, JPEG, BMP, TIFF, WebP, AVIF) under a small
//! pixel limit: they must decode or return an error, never panic, never allocate past the
//! limit.
#![no_main]

use kernelize_compress::image::{ImageOptions, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = ImageOptions {
        max_pixels: 1 << 20,
        ..Default::default()
    };
    if let Ok(image) = decode(data, &options) {
        assert!(u64::from(image.width()) * u64::from(image.height()) <= 1 << 20);
    }
});
