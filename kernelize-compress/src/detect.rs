//! Recognizing a compressed stream by its first bytes.

use kernelize_core::{Error, ErrorKind, Result};

use crate::codec::Codec;

/// The most bytes [`detect`] looks at.
pub const MAGIC_PREFIX: usize = 10;

/// The enabled codec whose magic bytes start `prefix`, if any.
///
/// zstd, LZ4 frame, Snappy framing and gzip have such marks; Brotli, raw deflate and stored
/// data do not and are never detected.
pub fn detect(prefix: &[u8]) -> Option<&'static dyn Codec> {
    crate::codecs()
        .into_iter()
        .find(|c| c.magic().is_some_and(|m| prefix.starts_with(m)))
}

/// Like [`detect`], but an error explaining what to do when nothing matches.
pub fn detect_or_explain(prefix: &[u8]) -> Result<&'static dyn Codec> {
    detect(prefix).ok_or_else(|| {
        let detectable: Vec<&str> = crate::codecs()
            .into_iter()
            .filter(|c| c.magic().is_some())
            .map(|c| c.name())
            .collect();
        let shown: Vec<String> = prefix.iter().take(4).map(|b| format!("{b:02x}")).collect();
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "cannot tell the codec from the first bytes ({}); detected by their magic bytes: {}; \
                 brotli and raw deflate streams have no magic bytes, so name the codec explicitly",
                if shown.is_empty() { "no data".to_string() } else { shown.join(" ") },
                detectable.join(", ")
            ),
        )
    })
}
