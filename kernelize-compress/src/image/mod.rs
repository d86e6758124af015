//! Image codecs: encode PNG, JPEG, BMP, TIFF, WebP or AVIF input to PNG, JPEG, WebP
//! (lossy or lossless) or AVIF, decode the result back and measure it against the original
//! (size, bits per pixel, PSNR, SSIM).
//!
//! | output | feature | encoder | decoded back by |
//! |---|---|---|---|
//! | PNG | `png` | [`image`] (pure Rust) | [`image`] |
//! | JPEG | `jpeg` | [`image`] (pure Rust) | [`image`] |
//! | lossless WebP | `webp` | [`image`] (pure Rust) | [`image`] |
//! | lossy WebP | `webp` | libwebp (C, built from source by `libwebp-sys`) | [`image`] |
//! | AVIF | `avif` | `ravif` (rav1e, pure Rust) | `avif-decode` (libaom's AV1 decoder, C) |
//!
//! Every image feature turns on the four common input readers (PNG, JPEG, BMP, TIFF), and
//! the PNG and JPEG encoders: any of them may be the input, and the output is decoded back
//! for the quality figures. Hostile input meets the pure-Rust decoders of the [`image`]
//! crate for every format but AVIF, which only the C decoder reads.
//!
//! Choices, and what was rejected:
//! - Lossy WebP through the `webp` crate over libwebp: the pure-Rust WebP encoder writes
//!   lossless WebP only. Its output is decoded back by the pure-Rust decoder, so libwebp
//!   only ever sees pixels we produced.
//! - AVIF encoding through `ravif`, the AVIF layer over rav1e, without rav1e's assembly
//!   (no assembler needed to build; encoding is slower). Decoding through `avif-decode`
//!   over libaom's decoder: the `dav1d` binding needs libdav1d 1.3, newer than Debian 12
//!   ships, and the pure-Rust `rav1d` port has no safe API at a Rust version we build with.
//!   Building libaom takes `cmake` and `nasm`.
//!
//! Images whose width × height passes [`ImageOptions::max_pixels`] are refused from their
//! header, before any pixel is decoded (for AVIF, from the AV1 sequence header's maximum
//! frame size); the [`image`] decoders also run under [`image::Limits`].
//!
//! ```
//! # #[cfg(feature = "jpeg")] {
//! use kernelize_compress::image::{ImageFormat, ImageOptions, encode};
//!
//! // Any PNG, JPEG, BMP or TIFF file; here a generated gradient.
//! let img = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 128]));
//! let mut png = Vec::new();
//! img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
//!     .map_err(|e| kernelize_core::Error::new(kernelize_core::ErrorKind::Unexpected, e.to_string()))?;
//!
//! let (jpeg, stats) = encode(&png, ImageFormat::Jpeg, &ImageOptions::quality(90))?;
//! assert_eq!(stats.output_bytes, jpeg.len() as u64);
//! assert!(stats.psnr_db.is_some_and(|db| db > 30.0));
//! assert!(stats.ssim > 0.9);
//! # }
//! # Ok::<(), kernelize_core::Error>(())
//! ```

pub mod metrics;
mod plugin;

pub use plugin::{DecodeAction, EncodeAction, ImagePlugin, factories};

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageError, ImageReader, Limits};
use kernelize_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// Default JPEG quality.
pub const DEFAULT_QUALITY: u8 = 85;
/// Default pixel limit: 64 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 64 * 1024 * 1024;
/// Default AVIF encoder speed (1 slowest and smallest, 10 fastest).
pub const DEFAULT_AVIF_SPEED: u8 = 6;

/// An output image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// PNG, lossless.
    Png,
    /// Baseline JPEG, lossy, at [`ImageOptions::quality`].
    Jpeg,
    /// Lossless WebP (pure-Rust encoder). Needs the `webp` feature.
    WebpLossless,
    /// Lossy WebP (libwebp) at [`ImageOptions::quality`]. Needs the `webp` feature.
    Webp,
    /// AVIF (AV1 still image, 4:4:4) at [`ImageOptions::quality`] and
    /// [`ImageOptions::speed`]. Needs the `avif` feature.
    Avif,
}

impl ImageFormat {
    /// Every format, in a fixed order.
    pub const ALL: [ImageFormat; 5] = [
        Self::Png,
        Self::Jpeg,
        Self::WebpLossless,
        Self::Webp,
        Self::Avif,
    ];

    /// A short lower-case name: `png`, `jpeg`, `webp_lossless`, `webp`, `avif`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::WebpLossless => "webp_lossless",
            Self::Webp => "webp",
            Self::Avif => "avif",
        }
    }

    /// The format named `name` (as [`ImageFormat::name`] gives it; `jpg` and
    /// `webp-lossless` are accepted too).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "jpg" => Some(Self::Jpeg),
            "webp-lossless" => Some(Self::WebpLossless),
            _ => Self::ALL.into_iter().find(|f| f.name() == name),
        }
    }

    /// The media type of the encoded output.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::WebpLossless | Self::Webp => "image/webp",
            Self::Avif => "image/avif",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::WebpLossless | Self::Webp => "webp",
            Self::Avif => "avif",
        }
    }

    /// Whether the format keeps every pixel exactly.
    pub fn is_lossless(self) -> bool {
        matches!(self, Self::Png | Self::WebpLossless)
    }

    /// The quality used when [`ImageOptions::quality`] is `None` (lossy formats): JPEG 85,
    /// WebP 75 (as `cwebp`), AVIF 80 (as `cavif`); `None` for the lossless formats.
    pub fn default_quality(self) -> Option<u8> {
        match self {
            Self::Jpeg => Some(DEFAULT_QUALITY),
            Self::Webp => Some(75),
            Self::Avif => Some(80),
            Self::Png | Self::WebpLossless => None,
        }
    }

    /// Whether this build can encode the format (its cargo feature is on).
    pub fn is_available(self) -> bool {
        match self {
            Self::Png | Self::Jpeg => true,
            Self::WebpLossless | Self::Webp => cfg!(feature = "webp"),
            Self::Avif => cfg!(feature = "avif"),
        }
    }

    fn feature(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::WebpLossless | Self::Webp => "webp",
            Self::Avif => "avif",
        }
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Options for [`encode`] and [`decode`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ImageOptions {
    /// Quality of the lossy formats, 1..=100; `None` means the format's
    /// [`ImageFormat::default_quality`]. Ignored by the lossless formats.
    pub quality: Option<u8>,
    /// AVIF encoder speed, 1 (slowest, smallest) to 10 (fastest); `None` means
    /// [`DEFAULT_AVIF_SPEED`]. Ignored by the other formats.
    pub speed: Option<u8>,
    /// Largest width × height accepted; larger images are refused before decoding.
    pub max_pixels: u64,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self {
            quality: None,
            speed: None,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

impl ImageOptions {
    /// Default options with the given quality.
    pub fn quality(quality: u8) -> Self {
        Self {
            quality: Some(quality),
            ..Self::default()
        }
    }

    /// Checks quality and speed for `format`: quality 1..=100 (lossy formats), speed
    /// 1..=10 (AVIF). Returns the quality to use (0 for lossless formats).
    fn checked(&self, format: ImageFormat) -> Result<(u8, u8)> {
        let quality = match format.default_quality() {
            Some(default) => {
                let q = self.quality.unwrap_or(default);
                if !(1..=100).contains(&q) {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("{format} quality must be 1 to 100, not {q}"),
                    ));
                }
                q
            }
            None => 0,
        };
        let speed = self.speed.unwrap_or(DEFAULT_AVIF_SPEED);
        if format == ImageFormat::Avif && !(1..=10).contains(&speed) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("avif speed must be 1 to 10, not {speed}"),
            ));
        }
        Ok((quality, speed))
    }
}

/// What one [`encode`] did, measured against the original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageStats {
    /// Output format.
    pub format: ImageFormat,
    /// Quality used (lossy formats); `None` for the lossless ones.
    pub quality: Option<u8>,
    /// Encoder speed used (AVIF); `None` for the other formats.
    pub speed: Option<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes of the input file.
    pub input_bytes: u64,
    /// Bytes of the encoded output.
    pub output_bytes: u64,
    /// `output_bytes * 8 / (width * height)`.
    pub bits_per_pixel: f64,
    /// PSNR in dB over RGB8 between the original and the decoded output; `None` when they
    /// are identical (infinite PSNR). Alpha is not compared.
    pub psnr_db: Option<f64>,
    /// Mean SSIM on luma between the original and the decoded output (1.0 = identical);
    /// see [`metrics`].
    pub ssim: f64,
    /// Wall time of the encoder alone.
    #[serde(with = "crate::engine::duration_secs")]
    pub encode_time: Duration,
    /// Wall time of decoding the output back alone.
    #[serde(with = "crate::engine::duration_secs")]
    pub decode_time: Duration,
    /// Wall time of decode, encode, decode back and measurement together.
    #[serde(with = "crate::engine::duration_secs")]
    pub wall_time: Duration,
}

fn format_name(format: Option<image::ImageFormat>) -> String {
    format.map_or_else(
        || "unrecognized".to_string(),
        |f| {
            f.extensions_str()
                .first()
                .copied()
                .unwrap_or("unknown")
                .to_string()
        },
    )
}

fn reader(data: &[u8], format: Option<image::ImageFormat>) -> Result<ImageReader<Cursor<&[u8]>>> {
    match format {
        Some(f) => Ok(ImageReader::with_format(Cursor::new(data), f)),
        None => ImageReader::new(Cursor::new(data))
            .with_guessed_format()
            .map_err(|e| {
                Error::new(
                    ErrorKind::CorruptData,
                    format!("cannot read image header: {e}"),
                )
            }),
    }
}

fn decode_error(e: ImageError, format: Option<image::ImageFormat>) -> Error {
    let kind = match e {
        ImageError::Limits(_) => ErrorKind::InvalidInput,
        ImageError::Unsupported(_) => ErrorKind::Unsupported,
        _ => ErrorKind::CorruptData,
    };
    Error::new(
        kind,
        format!("cannot decode {} image: {e}", format_name(format)),
    )
}

fn check_pixels(width: u32, height: u32, options: &ImageOptions) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > options.max_pixels {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "image of {width}x{height} = {pixels} pixels passes the limit of {} pixels",
                options.max_pixels
            ),
        ));
    }
    Ok(())
}

/// Whether `data` starts with an ISO-BMFF `ftyp` box naming the AVIF brand (major or
/// compatible).
pub fn is_avif(data: &[u8]) -> bool {
    if data.len() < 16 || &data[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let end = size.clamp(16, data.len().min(256));
    let mut brands = std::iter::once(&data[8..12]).chain(data[16..end].chunks_exact(4));
    brands.any(|brand| brand == b"avif" || brand == b"avis")
}

/// Decodes `data` (format read from its signature, or `format` when given), refusing it
/// from its header when width × height passes the limit.
fn decode_as(
    data: &[u8],
    format: Option<image::ImageFormat>,
    options: &ImageOptions,
) -> Result<DynamicImage> {
    if format.is_none() && is_avif(data) {
        return avif::decode(data, options);
    }
    let first = reader(data, format)?;
    let guessed = first.format();
    if guessed.is_none() {
        return Err(Error::new(
            ErrorKind::CorruptData,
            "unrecognized image format (expected PNG, JPEG, BMP, TIFF, WebP or AVIF)",
        ));
    }
    let (width, height) = first
        .into_dimensions()
        .map_err(|e| decode_error(e, guessed))?;
    check_pixels(width, height, options)?;
    let mut second = reader(data, guessed)?;
    let side = u32::try_from(options.max_pixels).unwrap_or(u32::MAX);
    let mut limits = Limits::default();
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    // 16 bytes per pixel covers the widest layout (RGBA f32); the floor leaves the decoders
    // room for their working buffers on small images.
    limits.max_alloc = Some(options.max_pixels.saturating_mul(16).max(16 << 20));
    second.limits(limits);
    second.decode().map_err(|e| decode_error(e, guessed))
}

/// Decodes a PNG, JPEG, BMP, TIFF, WebP (with `webp`) or AVIF (with `avif`) image,
/// refusing it before decoding pixels when width × height passes
/// [`ImageOptions::max_pixels`] ([`ErrorKind::InvalidInput`]); undecodable data is
/// [`ErrorKind::CorruptData`].
pub fn decode(data: &[u8], options: &ImageOptions) -> Result<DynamicImage> {
    decode_as(data, None, options)
}

/// Encodes an already decoded image (no quality figures); see [`encode`] for the errors.
pub fn encode_pixels(
    img: &DynamicImage,
    format: ImageFormat,
    options: &ImageOptions,
) -> Result<Vec<u8>> {
    let (quality, speed) = options.checked(format)?;
    encode_image(img, format, quality, speed)
}

fn unavailable(format: ImageFormat) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "{format} output needs the `{}` feature of kernelize-compress",
            format.feature()
        ),
    )
}

fn encode_image(
    img: &DynamicImage,
    format: ImageFormat,
    quality: u8,
    speed: u8,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let result = match format {
        ImageFormat::Png => {
            let encoder = PngEncoder::new(&mut out);
            match img {
                DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_) => {
                    DynamicImage::ImageRgba16(img.to_rgba16()).write_with_encoder(encoder)
                }
                _ => img.write_with_encoder(encoder),
            }
        }
        ImageFormat::Jpeg => {
            let encoder = JpegEncoder::new_with_quality(&mut out, quality);
            DynamicImage::ImageRgb8(img.to_rgb8()).write_with_encoder(encoder)
        }
        #[cfg(feature = "webp")]
        ImageFormat::WebpLossless => {
            let encoder = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
            if img.color().has_alpha() {
                DynamicImage::ImageRgba8(img.to_rgba8()).write_with_encoder(encoder)
            } else {
                DynamicImage::ImageRgb8(img.to_rgb8()).write_with_encoder(encoder)
            }
        }
        #[cfg(feature = "webp")]
        ImageFormat::Webp => return webp_lossy::encode(img, quality),
        #[cfg(feature = "avif")]
        ImageFormat::Avif => return avif::encode(img, quality, speed),
        #[allow(unreachable_patterns)]
        other => return Err(unavailable(other)),
    };
    let _ = speed;
    result.map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("cannot encode {}: {e}", format.name()),
        )
    })?;
    Ok(out)
}

/// Decodes `input` (PNG, JPEG, BMP, TIFF, WebP or AVIF), encodes it to `format`, decodes
/// the result back and measures it against the original.
///
/// Errors: [`ErrorKind::InvalidInput`] for a quality outside 1..=100 (lossy formats), an
/// AVIF speed outside 1..=10, or an image over the pixel limit (refused from its header,
/// before decoding pixels); [`ErrorKind::CorruptData`] for undecodable input;
/// [`ErrorKind::Unsupported`] for a format whose feature is off.
pub fn encode(
    input: &[u8],
    format: ImageFormat,
    options: &ImageOptions,
) -> Result<(Vec<u8>, ImageStats)> {
    let start = Instant::now();
    let (quality, speed) = options.checked(format)?;
    if !format.is_available() {
        return Err(unavailable(format));
    }
    let original = decode(input, options)?;
    let encode_start = Instant::now();
    let encoded = encode_image(&original, format, quality, speed)?;
    let encode_time = encode_start.elapsed();
    let decode_start = Instant::now();
    let back = match format {
        ImageFormat::Avif => avif::decode(&encoded, options)?,
        _ => decode_as(&encoded, Some(to_image_format(format)), options)?,
    };
    let decode_time = decode_start.elapsed();
    let (a, b) = (original.to_rgb8(), back.to_rgb8());
    let psnr_db = metrics::psnr(&a, &b)?;
    let ssim = metrics::ssim(&a, &b)?;
    let (width, height) = (original.width(), original.height());
    let pixels = u64::from(width) * u64::from(height);
    let output_bytes = encoded.len() as u64;
    let stats = ImageStats {
        format,
        quality: format.default_quality().map(|_| quality),
        speed: (format == ImageFormat::Avif).then_some(speed),
        width,
        height,
        input_bytes: input.len() as u64,
        output_bytes,
        bits_per_pixel: if pixels == 0 {
            0.0
        } else {
            output_bytes as f64 * 8.0 / pixels as f64
        },
        psnr_db,
        ssim,
        encode_time,
        decode_time,
        wall_time: start.elapsed(),
    };
    Ok((encoded, stats))
}

fn to_image_format(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::WebpLossless | ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Avif => image::ImageFormat::Avif,
    }
}

/// Lossy WebP through libwebp.
#[cfg(feature = "webp")]
mod webp_lossy {
    use super::*;

    pub(super) fn encode(img: &DynamicImage, quality: u8) -> Result<Vec<u8>> {
        let (width, height) = (img.width(), img.height());
        let fail = |e: &dyn std::fmt::Debug| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("libwebp cannot encode this {width}x{height} image: {e:?}"),
            )
        };
        // The buffers come from `to_rgb8`/`to_rgba8`, so their length always matches the
        // dimensions (which the `webp` crate would otherwise panic on).
        let memory = if img.color().has_alpha() {
            let rgba = img.to_rgba8();
            webp::Encoder::from_rgba(rgba.as_raw(), width, height)
                .encode_simple(false, f32::from(quality))
                .map_err(|e| fail(&e))?
        } else {
            let rgb = img.to_rgb8();
            webp::Encoder::from_rgb(rgb.as_raw(), width, height)
                .encode_simple(false, f32::from(quality))
                .map_err(|e| fail(&e))?
        };
        Ok(memory.to_vec())
    }
}

/// AVIF: ravif to encode, avif-decode (libaom) to decode.
mod avif {
    use super::*;

    #[cfg(feature = "avif")]
    pub(super) fn encode(img: &DynamicImage, quality: u8, speed: u8) -> Result<Vec<u8>> {
        let (width, height) = (img.width() as usize, img.height() as usize);
        // Checked by `ImageOptions::checked`: ravif panics outside these ranges.
        let encoder = ravif::Encoder::new()
            .with_quality(f32::from(quality.clamp(1, 100)))
            .with_alpha_quality(f32::from(quality.clamp(1, 100)))
            .with_speed(speed.clamp(1, 10));
        let fail = |e: ravif::Error| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot encode this {width}x{height} image as AVIF: {e}"),
            )
        };
        let encoded = if img.color().has_alpha() {
            let pixels: Vec<ravif::RGBA8> = img
                .to_rgba8()
                .pixels()
                .map(|p| ravif::RGBA8::new(p[0], p[1], p[2], p[3]))
                .collect();
            encoder
                .encode_rgba(ravif::Img::new(&pixels[..], width, height))
                .map_err(fail)?
        } else {
            let pixels: Vec<ravif::RGB8> = img
                .to_rgb8()
                .pixels()
                .map(|p| ravif::RGB8::new(p[0], p[1], p[2]))
                .collect();
            encoder
                .encode_rgb(ravif::Img::new(&pixels[..], width, height))
                .map_err(fail)?
        };
        Ok(encoded.avif_file)
    }

    #[cfg(feature = "avif")]
    pub(super) fn decode(data: &[u8], options: &ImageOptions) -> Result<DynamicImage> {
        let corrupt = |e: &dyn std::fmt::Display| {
            Error::new(
                ErrorKind::CorruptData,
                format!("cannot decode avif image: {e}"),
            )
        };
        // avif-parse allocates a box's declared size before reading it; a box claiming more
        // than the file holds would make it allocate that much (found by fuzzing).
        if !boxes_fit(data, 0) {
            return Err(corrupt(&"a box claims more bytes than its container holds"));
        }
        // The AV1 sequence header bounds every frame the decoder may produce.
        let parsed = avif_parse::read_avif(&mut &data[..]).map_err(|e| corrupt(&e))?;
        let meta = parsed.primary_item_metadata().map_err(|e| corrupt(&e))?;
        check_pixels(
            meta.max_frame_width.get(),
            meta.max_frame_height.get(),
            options,
        )?;
        if let Some(alpha) = parsed.alpha_item_metadata().map_err(|e| corrupt(&e))? {
            check_pixels(
                alpha.max_frame_width.get(),
                alpha.max_frame_height.get(),
                options,
            )?;
        }
        let image = avif_decode::Decoder::from_avif(data)
            .and_then(|d| d.to_image())
            .map_err(|e| corrupt(&e))?;
        let shape = |w: usize, h: usize| -> Result<(u32, u32)> {
            let w = u32::try_from(w).map_err(|_| corrupt(&"width out of range"))?;
            let h = u32::try_from(h).map_err(|_| corrupt(&"height out of range"))?;
            check_pixels(w, h, options)?;
            Ok((w, h))
        };
        let short = || corrupt(&"decoded pixels do not fill the frame");
        use avif_decode::Image;
        Ok(match image {
            Image::Rgb8(img) => {
                let (w, h) = shape(img.width(), img.height())?;
                let raw = img.pixels().flat_map(|p| [p.r, p.g, p.b]).collect();
                DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, raw).ok_or_else(short)?)
            }
            Image::Rgba8(img) => {
                let (w, h) = shape(img.width(), img.height())?;
                let raw = img.pixels().flat_map(|p| [p.r, p.g, p.b, p.a]).collect();
                DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, raw).ok_or_else(short)?)
            }
            Image::Rgb16(img) => {
                let (w, h) = shape(img.width(), img.height())?;
                let raw = img.pixels().flat_map(|p| [p.r, p.g, p.b]).collect();
                DynamicImage::ImageRgb16(image::ImageBuffer::from_raw(w, h, raw).ok_or_else(short)?)
            }
            Image::Rgba16(img) => {
                let (w, h) = shape(img.width(), img.height())?;
                let raw = img.pixels().flat_map(|p| [p.r, p.g, p.b, p.a]).collect();
                DynamicImage::ImageRgba16(
                    image::ImageBuffer::from_raw(w, h, raw).ok_or_else(short)?,
                )
            }
            Image::Gray8(img) => {
                let (w, h) = shape(img.width(), img.height())?;
                let raw = img.pixels().map(|p| p.value()).collect();
                DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, raw).ok_or_else(short)?)
            }
            Image::Gray16(img) => {
                let (w, h) = shape(img.width(), img.height())?;
                let raw = img.pixels().map(|p| p.value()).collect();
                DynamicImage::ImageLuma16(
                    image::ImageBuffer::from_raw(w, h, raw).ok_or_else(short)?,
                )
            }
        })
    }

    /// Whether every ISO-BMFF box in `data` fits inside its container: the top-level boxes
    /// in the file, and the children of the container boxes avif-parse reads whole
    /// (`meta`, `iprp`, `ipco`, `dinf`).
    #[cfg(feature = "avif")]
    pub(super) fn boxes_fit(data: &[u8], depth: u32) -> bool {
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            let Some(head) = rest.get(..8) else {
                return false;
            };
            let (header, size) = match u32::from_be_bytes([head[0], head[1], head[2], head[3]]) {
                0 => (8, rest.len()),
                1 => match rest.get(8..16) {
                    Some(large) => {
                        let mut bytes = [0u8; 8];
                        bytes.copy_from_slice(large);
                        (
                            16,
                            usize::try_from(u64::from_be_bytes(bytes)).unwrap_or(usize::MAX),
                        )
                    }
                    None => return false,
                },
                n => (8, n as usize),
            };
            if size < header || size > rest.len() {
                return false;
            }
            let body = &rest[header..size];
            let children = match &head[4..8] {
                b"meta" => body.get(4..),
                b"iprp" | b"ipco" | b"dinf" => Some(body),
                _ => None,
            };
            if let Some(children) = children
                && (depth >= 8 || !boxes_fit(children, depth + 1))
            {
                return false;
            }
            pos += size;
        }
        true
    }

    #[cfg(not(feature = "avif"))]
    pub(super) fn decode(_data: &[u8], _options: &ImageOptions) -> Result<DynamicImage> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "AVIF input needs the `avif` feature of kernelize-compress",
        ))
    }
}

#[cfg(test)]
mod tests;
