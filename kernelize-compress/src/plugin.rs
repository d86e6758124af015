//! Codecs as plugins: [`CompressionPlugin`] and the [`CodecPlugin`] that serves every codec.

use std::io::{Read, Write};
use std::sync::{LazyLock, Mutex};

use async_trait::async_trait;
use kernelize_core::payload::MEDIA_OCTET_STREAM;
use kernelize_core::plugin::{ActionContext, ActionRouter, Handler};
use kernelize_core::{
    Action, Blob, Call, Category, Error, ErrorKind, InitContext, Payload, Plugin, PluginMetadata,
    Result,
};
use semver::Version;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::SyncIoBridge;

use crate::codec::{Codec, CompressOptions, DecompressOptions, LevelRange};
use crate::engine::{self, CompressionStats};

/// A plugin that compresses and decompresses with one codec.
///
/// Beyond [`Plugin`], it offers the codec directly to Rust callers: byte slices, `std::io`
/// streams and tokio streams, each recording [`CompressionPlugin::stats`].
#[async_trait]
pub trait CompressionPlugin: Plugin {
    /// The codec.
    fn codec(&self) -> &'static dyn Codec;

    /// The algorithm's name (`zstd`).
    fn algorithm(&self) -> &'static str {
        self.codec().name()
    }

    /// The levels accepted.
    fn levels(&self) -> LevelRange {
        self.codec().levels()
    }

    /// Statistics of the most recent operation.
    fn stats(&self) -> Option<CompressionStats>;

    /// Keeps the statistics of an operation (for [`CompressionPlugin::stats`]).
    fn record(&self, stats: &CompressionStats);

    /// Compresses a buffer.
    fn compress(&self, data: &[u8], options: &CompressOptions) -> Result<Vec<u8>> {
        let (out, stats) = engine::compress(self.codec(), data, options)?;
        self.record(&stats);
        Ok(out)
    }

    /// Decompresses a buffer, within `options.max_output`.
    fn decompress(&self, data: &[u8], options: &DecompressOptions) -> Result<Vec<u8>> {
        let (out, stats) = engine::decompress(self.codec(), data, options)?;
        self.record(&stats);
        Ok(out)
    }

    /// Compresses a stream in bounded memory.
    fn compress_stream(
        &self,
        input: &mut dyn Read,
        output: &mut dyn Write,
        options: &CompressOptions,
    ) -> Result<CompressionStats> {
        let stats = engine::compress_stream(self.codec(), input, output, options)?;
        self.record(&stats);
        Ok(stats)
    }

    /// Decompresses a stream in bounded memory, within `options.max_output`.
    fn decompress_stream(
        &self,
        input: &mut dyn Read,
        output: &mut dyn Write,
        options: &DecompressOptions,
    ) -> Result<CompressionStats> {
        let stats = engine::decompress_stream(self.codec(), input, output, options)?;
        self.record(&stats);
        Ok(stats)
    }

    /// Compresses a tokio stream. The codec runs on the blocking pool; the output is shut
    /// down at the end.
    async fn compress_async(
        &self,
        input: Box<dyn AsyncRead + Unpin + Send>,
        output: Box<dyn AsyncWrite + Unpin + Send>,
        options: CompressOptions,
    ) -> Result<CompressionStats> {
        let stats = compress_async(self.codec(), input, output, options).await?;
        self.record(&stats);
        Ok(stats)
    }

    /// Decompresses a tokio stream. The codec runs on the blocking pool; the output is shut
    /// down at the end.
    async fn decompress_async(
        &self,
        input: Box<dyn AsyncRead + Unpin + Send>,
        output: Box<dyn AsyncWrite + Unpin + Send>,
        options: DecompressOptions,
    ) -> Result<CompressionStats> {
        let stats = decompress_async(self.codec(), input, output, options).await?;
        self.record(&stats);
        Ok(stats)
    }
}

/// Compresses a tokio stream with `codec` on the blocking pool.
pub async fn compress_async(
    codec: &'static dyn Codec,
    input: Box<dyn AsyncRead + Unpin + Send>,
    output: Box<dyn AsyncWrite + Unpin + Send>,
    options: CompressOptions,
) -> Result<CompressionStats> {
    let mut reader = SyncIoBridge::new(input);
    let mut writer = SyncIoBridge::new(output);
    blocking(move || {
        let stats = engine::compress_stream(codec, &mut reader, &mut writer, &options)?;
        writer.shutdown()?;
        Ok(stats)
    })
    .await
}

/// Decompresses a tokio stream with `codec` on the blocking pool.
pub async fn decompress_async(
    codec: &'static dyn Codec,
    input: Box<dyn AsyncRead + Unpin + Send>,
    output: Box<dyn AsyncWrite + Unpin + Send>,
    options: DecompressOptions,
) -> Result<CompressionStats> {
    let mut reader = SyncIoBridge::new(input);
    let mut writer = SyncIoBridge::new(output);
    blocking(move || {
        let stats = engine::decompress_stream(codec, &mut reader, &mut writer, &options)?;
        writer.shutdown()?;
        Ok(stats)
    })
    .await
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("a compression task failed: {e}"),
        )
    })?
}

/// `compress`: bytes in, compressed bytes out.
#[derive(Debug)]
pub struct CompressAction;

impl Action for CompressAction {
    const NAME: &'static str = "compress";
    const DESCRIPTION: &'static str =
        "Compress bytes; the config overrides the plugin's default options.";
    type Config = CompressOptions;
    type Input = Blob;
    type Output = Blob;
}

/// `decompress`: compressed bytes in, bytes out, within an output limit.
#[derive(Debug)]
pub struct DecompressAction;

impl Action for DecompressAction {
    const NAME: &'static str = "decompress";
    const DESCRIPTION: &'static str =
        "Decompress bytes, stopping with an error past `max_output` bytes (default 1 GiB).";
    type Config = DecompressOptions;
    type Input = Blob;
    type Output = Blob;
}

static ROUTER: LazyLock<ActionRouter<CodecPlugin>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<CompressAction>()
        .action::<DecompressAction>()
});

/// The plugin of one codec: id is the codec's name, category compressor.
///
/// Its settings are default [`CompressOptions`] (for example `{"level": 19}`); a call's
/// config overrides them field by field.
pub struct CodecPlugin {
    codec: &'static dyn Codec,
    defaults: Value,
    last: Mutex<Option<CompressionStats>>,
}

impl std::fmt::Debug for CodecPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodecPlugin")
            .field("codec", &self.codec.name())
            .finish_non_exhaustive()
    }
}

impl CodecPlugin {
    /// The plugin of `codec`.
    pub fn new(codec: &'static dyn Codec) -> Self {
        CodecPlugin {
            codec,
            defaults: Value::Object(Default::default()),
            last: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Plugin for CodecPlugin {
    fn metadata(&self) -> PluginMetadata {
        let levels = self.codec.levels();
        let description = if levels.min == levels.max {
            format!("{} compression.", self.codec.name())
        } else {
            format!(
                "{} compression, levels {} to {} (default {}).",
                self.codec.name(),
                levels.min,
                levels.max,
                levels.default
            )
        };
        PluginMetadata::new(
            self.codec.name(),
            &format!("{} codec", self.codec.name()),
            Version::new(0, 1, 0),
            Category::Compressor,
        )
        .description(&description)
        .author("Kernelize")
        .config_type::<CompressOptions>()
        .actions(ROUTER.descriptors())
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        let defaults: CompressOptions = ctx.config.parse()?;
        self.codec
            .levels()
            .resolve(self.codec.name(), defaults.level)?;
        self.defaults = ctx.config.settings().clone();
        Ok(())
    }

    async fn execute(&self, mut call: Call) -> Result<Payload> {
        if call.action == CompressAction::NAME {
            call.config = merge(&self.defaults, call.config);
        }
        ROUTER.dispatch(self, call).await
    }
}

/// `base` with the fields of `over` laid on top (objects only; `null` keeps `base`).
pub(crate) fn merge(base: &Value, over: Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            out.extend(o);
            Value::Object(out)
        }
        (b, Value::Null) => b.clone(),
        (_, o) => o,
    }
}

impl CompressionPlugin for CodecPlugin {
    fn codec(&self) -> &'static dyn Codec {
        self.codec
    }

    fn stats(&self) -> Option<CompressionStats> {
        self.last.lock().ok().and_then(|s| s.clone())
    }

    fn record(&self, stats: &CompressionStats) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(stats.clone());
        }
        tracing::debug!(
            codec = %stats.codec,
            input = stats.input_bytes,
            output = stats.output_bytes,
            mb_s = stats.throughput_mb_s,
            "compression stats"
        );
    }
}

#[async_trait]
impl Handler<CompressAction> for CodecPlugin {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: CompressOptions,
        input: Blob,
    ) -> Result<Blob> {
        ctx.check_alive()?;
        let codec = self.codec;
        let (out, stats) = blocking(move || engine::compress(codec, &input.data, &config)).await?;
        self.record(&stats);
        Ok(Blob::new(out, codec.media_type()))
    }
}

#[async_trait]
impl Handler<DecompressAction> for CodecPlugin {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: DecompressOptions,
        input: Blob,
    ) -> Result<Blob> {
        ctx.check_alive()?;
        let codec = self.codec;
        let (out, stats) =
            blocking(move || engine::decompress(codec, &input.data, &config)).await?;
        self.record(&stats);
        Ok(Blob::new(out, MEDIA_OCTET_STREAM))
    }
}
