//! `none`: bytes stored as they are, for comparisons and for data that does not compress.

use std::io::{BufRead, Read, Write};

use kernelize_core::Result;

use crate::codec::{Codec, CompressOptions, DecompressOptions, Encoder, LevelRange};

/// The stored codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoneCodec;

/// The one instance.
pub static NONE: NoneCodec = NoneCodec;

struct Stored<W: Write>(W);

impl<W: Write> Write for Stored<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Encoder for Stored<W> {
    fn finish(mut self: Box<Self>) -> Result<()> {
        Ok(self.0.flush()?)
    }
}

impl Codec for NoneCodec {
    fn name(&self) -> &'static str {
        "none"
    }

    fn media_type(&self) -> &'static str {
        "application/octet-stream"
    }

    fn extension(&self) -> &'static str {
        "bin"
    }

    fn levels(&self) -> LevelRange {
        LevelRange::NONE
    }

    fn magic(&self) -> Option<&'static [u8]> {
        None
    }

    fn empty_is_valid(&self) -> bool {
        true
    }

    fn memory_estimate(&self, _options: &CompressOptions) -> u64 {
        0
    }

    fn encoder<'a>(
        &self,
        output: Box<dyn Write + 'a>,
        _options: &CompressOptions,
    ) -> Result<Box<dyn Encoder + 'a>> {
        Ok(Box::new(Stored(output)))
    }

    fn decoder<'a>(
        &self,
        input: Box<dyn BufRead + 'a>,
        _options: &DecompressOptions,
    ) -> Result<Box<dyn Read + 'a>> {
        Ok(input)
    }

    fn compress(&self, data: &[u8], _options: &CompressOptions) -> Result<Vec<u8>> {
        Ok(data.to_vec())
    }
}
