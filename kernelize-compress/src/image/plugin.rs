//! Image formats as registry plugins: `image-png`, `image-jpeg`, `image-webp`,
//! `image-webp-lossless` and `image-avif`, each with `compress` and `decompress` actions.

use std::sync::{LazyLock, Mutex};

use async_trait::async_trait;
use kernelize_core::plugin::{ActionContext, ActionRouter, Handler};
use kernelize_core::{
    Action, Blob, Call, Category, InitContext, Payload, Plugin, PluginFactory, PluginMetadata,
    Result,
};
use semver::Version;
use serde_json::Value;

use super::{ImageFormat, ImageOptions, ImageStats};
use crate::plugin::{blocking, merge};

/// `compress`: an image file (PNG, JPEG, BMP, TIFF, WebP or AVIF) in, the plugin's format
/// out, at the configured quality; the quality figures are kept as
/// [`ImagePlugin::stats`] and logged at debug level.
#[derive(Debug)]
pub struct EncodeAction;

impl Action for EncodeAction {
    const NAME: &'static str = "compress";
    const DESCRIPTION: &'static str = "Encode an image file (PNG, JPEG, BMP, TIFF, WebP or AVIF) to this format; \
         the config (quality, speed, max_pixels) overrides the plugin's defaults.";
    type Config = ImageOptions;
    type Input = Blob;
    type Output = Blob;
}

/// `decompress`: an image of any readable format in, PNG out (lossless, so the decoded
/// pixels are kept exactly), refusing images over `max_pixels` before decoding.
#[derive(Debug)]
pub struct DecodeAction;

impl Action for DecodeAction {
    const NAME: &'static str = "decompress";
    const DESCRIPTION: &'static str =
        "Decode an image back to PNG, refusing images over max_pixels before decoding.";
    type Config = ImageOptions;
    type Input = Blob;
    type Output = Blob;
}

static ROUTER: LazyLock<ActionRouter<ImagePlugin>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<EncodeAction>()
        .action::<DecodeAction>()
});

/// The plugin of one image format; its id is `image-` and the format's name with `-` for
/// `_` (`image-webp-lossless`), category compressor.
///
/// Its settings are default [`ImageOptions`] (for example `{"quality": 60}`); a call's
/// config overrides them field by field.
#[derive(Debug)]
pub struct ImagePlugin {
    format: ImageFormat,
    defaults: Value,
    last: Mutex<Option<ImageStats>>,
}

impl ImagePlugin {
    /// The plugin of `format`.
    pub fn new(format: ImageFormat) -> Self {
        Self {
            format,
            defaults: Value::Object(Default::default()),
            last: Mutex::new(None),
        }
    }

    /// The plugin id of `format`: `image-jpeg`, `image-webp-lossless`.
    pub fn id(format: ImageFormat) -> String {
        format!("image-{}", format.name().replace('_', "-"))
    }

    /// The format.
    pub fn format(&self) -> ImageFormat {
        self.format
    }

    /// Statistics of the most recent `compress`.
    pub fn stats(&self) -> Option<ImageStats> {
        self.last.lock().ok().and_then(|s| s.clone())
    }
}

/// A plugin factory for every image format this build can encode.
pub fn factories() -> Vec<PluginFactory> {
    ImageFormat::ALL
        .into_iter()
        .filter(|f| f.is_available())
        .map(|f| PluginFactory::new(move || Box::new(ImagePlugin::new(f))))
        .collect()
}

#[async_trait]
impl Plugin for ImagePlugin {
    fn metadata(&self) -> PluginMetadata {
        let format = self.format;
        let description = match (format.default_quality(), format) {
            (_, ImageFormat::Avif) => format!(
                "AVIF images, quality 1 to 100 (default {}), speed 1 to 10 (default {}).",
                format.default_quality().unwrap_or_default(),
                super::DEFAULT_AVIF_SPEED
            ),
            (Some(q), _) => format!("{format} images, quality 1 to 100 (default {q})."),
            (None, _) => format!("{format} images, lossless."),
        };
        PluginMetadata::new(
            &Self::id(format),
            &format!("{format} image codec"),
            Version::new(0, 1, 0),
            Category::Compressor,
        )
        .description(&description)
        .author("Kernelize")
        .config_type::<ImageOptions>()
        .actions(ROUTER.descriptors())
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        let defaults: ImageOptions = ctx.config.parse()?;
        defaults.checked(self.format)?;
        self.defaults = ctx.config.settings().clone();
        Ok(())
    }

    async fn execute(&self, mut call: Call) -> Result<Payload> {
        call.config = merge(&self.defaults, call.config);
        ROUTER.dispatch(self, call).await
    }
}

#[async_trait]
impl Handler<EncodeAction> for ImagePlugin {
    async fn handle(&self, ctx: ActionContext, config: ImageOptions, input: Blob) -> Result<Blob> {
        ctx.check_alive()?;
        let format = self.format;
        let (out, stats) = blocking(move || super::encode(&input.data, format, &config)).await?;
        tracing::debug!(
            format = %format,
            input = stats.input_bytes,
            output = stats.output_bytes,
            bpp = stats.bits_per_pixel,
            psnr_db = stats.psnr_db,
            ssim = stats.ssim,
            "image stats"
        );
        if let Ok(mut last) = self.last.lock() {
            *last = Some(stats);
        }
        Ok(Blob::new(out, format.media_type()))
    }
}

#[async_trait]
impl Handler<DecodeAction> for ImagePlugin {
    async fn handle(&self, ctx: ActionContext, config: ImageOptions, input: Blob) -> Result<Blob> {
        ctx.check_alive()?;
        let png = blocking(move || {
            let img = super::decode(&input.data, &config)?;
            super::encode_pixels(&img, ImageFormat::Png, &config)
        })
        .await?;
        Ok(Blob::new(png, ImageFormat::Png.media_type()))
    }
}
