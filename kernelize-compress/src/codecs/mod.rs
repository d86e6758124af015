//! The codecs, one module each, each behind its cargo feature (`none` is always there).

#[cfg(feature = "brotli")]
pub mod brotli;
#[cfg(feature = "gzip")]
pub mod gzip;
#[cfg(feature = "lz4")]
pub mod lz4;
pub mod none;
#[cfg(feature = "snappy")]
pub mod snappy;
#[cfg(feature = "zstd")]
pub mod zstd;

#[cfg(test)]
mod test_data;
