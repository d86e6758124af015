#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod auto;
pub mod codec;
pub mod codecs;
pub mod detect;
pub mod engine;
#[cfg(any(feature = "png", feature = "jpeg", feature = "webp", feature = "avif"))]
pub mod image;
pub mod plugin;

pub use auto::{Choice, Goal};
pub use codec::{
    Codec, CompressOptions, DEFAULT_MAX_OUTPUT, DecompressOptions, Encoder, LevelRange,
};
pub use detect::{detect, detect_or_explain};
pub use engine::{
    CompressionStats, Direction, compress, compress_stream, decompress, decompress_stream,
};
pub use plugin::{CodecPlugin, CompressionPlugin};

use kernelize_core::{Error, ErrorKind, PluginFactory, Result};

/// Every codec this build includes, `none` first.
pub fn codecs() -> Vec<&'static dyn Codec> {
    #[allow(unused_mut)]
    let mut all: Vec<&'static dyn Codec> = vec![&codecs::none::NONE];
    #[cfg(feature = "zstd")]
    all.push(&codecs::zstd::ZSTD);
    #[cfg(feature = "lz4")]
    all.push(&codecs::lz4::LZ4);
    #[cfg(feature = "snappy")]
    all.push(&codecs::snappy::SNAPPY);
    #[cfg(feature = "brotli")]
    all.push(&codecs::brotli::BROTLI);
    #[cfg(feature = "gzip")]
    {
        all.push(&codecs::gzip::GZIP);
        all.push(&codecs::gzip::DEFLATE);
    }
    all
}

/// The codec called `name`; an error listing the available ones otherwise.
pub fn codec(name: &str) -> Result<&'static dyn Codec> {
    let all = codecs();
    all.iter()
        .find(|c| c.name() == name)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|c| c.name()).collect();
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "unknown codec `{name}`; available codecs: {}",
                    names.join(", ")
                ),
            )
        })
}

/// A plugin factory for every codec in this build.
///
/// With an image feature on, that includes an `image-*` plugin per available image
/// format (module `image`).
pub fn factories() -> Vec<PluginFactory> {
    #[allow(unused_mut)]
    let mut all: Vec<PluginFactory> = codecs()
        .into_iter()
        .map(|c| PluginFactory::new(move || Box::new(CodecPlugin::new(c))))
        .collect();
    #[cfg(any(feature = "png", feature = "jpeg", feature = "webp", feature = "avif"))]
    all.extend(image::factories());
    all
}

/// Decompresses a buffer whose codec is recognized by its magic bytes.
pub fn decompress_detected(
    data: &[u8],
    options: &DecompressOptions,
) -> Result<(Vec<u8>, CompressionStats)> {
    let codec = detect_or_explain(&data[..data.len().min(detect::MAGIC_PREFIX)])?;
    decompress(codec, data, options)
}
