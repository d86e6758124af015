//! Image codecs: encode PNG, JPEG, BMP or TIFF input to PNG, JPEG or lossless WebP, decode
//! the result back and measure it against the original (size, bits per pixel, PSNR, SSIM).
//!
//! Built on the pure-Rust [`image`] crate, version 0.25: no C library to build, and memory
//! safe decoders for hostile input. Every image feature (`png`, `jpeg`, `webp`) turns on
//! the four input readers (PNG, JPEG, BMP, TIFF) and the PNG and JPEG encoders, since any
//! of them may be the input and the output is decoded back for the quality figures; `webp`
//! adds the WebP encoder and decoder.
//!
//! Not built yet:
//! - **Lossy WebP**: the `image` crate's WebP encoder writes lossless WebP only; lossy WebP
//!   needs libwebp (a C build), so [`ImageFormat::WebpLossless`] is what ships.
//! - **AVIF**: the `image` crate encodes AVIF through `rav1e`, too heavy to build here for
//!   now.
//!
//! Images whose width × height passes [`ImageOptions::max_pixels`] are refused from their
//! header, before any pixel is decoded; the decoder also runs under [`image::Limits`].
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

/// An output image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// PNG, lossless.
    Png,
    /// Baseline JPEG, lossy, at [`ImageOptions::quality`].
    Jpeg,
    /// Lossless WebP (the pure-Rust encoder has no lossy mode; lossy WebP needs libwebp,
    /// not built yet). Needs the `webp` feature.
    WebpLossless,
}

impl ImageFormat {
    /// A short lower-case name: `png`, `jpeg`, `webp_lossless`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::WebpLossless => "webp_lossless",
        }
    }

    /// Whether the format keeps every pixel exactly.
    pub fn is_lossless(self) -> bool {
        !matches!(self, Self::Jpeg)
    }

    fn to_image(self) -> image::ImageFormat {
        match self {
            Self::Png => image::ImageFormat::Png,
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::WebpLossless => image::ImageFormat::WebP,
        }
    }
}

/// Options for [`encode`] and [`decode`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageOptions {
    /// JPEG quality, 1..=100; `None` means [`DEFAULT_QUALITY`]. Ignored by the lossless
    /// formats (PNG, lossless WebP).
    pub quality: Option<u8>,
    /// Largest width × height accepted; larger images are refused before decoding.
    pub max_pixels: u64,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self {
            quality: None,
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
}

/// What one [`encode`] did, measured against the original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageStats {
    /// Output format.
    pub format: ImageFormat,
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

/// Decodes `data` (format read from its signature, or `format` when given), refusing it
/// from its header when width × height passes the limit.
fn decode_as(
    data: &[u8],
    format: Option<image::ImageFormat>,
    options: &ImageOptions,
) -> Result<DynamicImage> {
    let first = reader(data, format)?;
    let guessed = first.format();
    if guessed.is_none() {
        return Err(Error::new(
            ErrorKind::CorruptData,
            "unrecognized image format (expected PNG, JPEG, BMP, TIFF or WebP)",
        ));
    }
    let (width, height) = first
        .into_dimensions()
        .map_err(|e| decode_error(e, guessed))?;
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

/// Decodes a PNG, JPEG, BMP, TIFF (or, with `webp`, WebP) image, refusing it before
/// decoding pixels when width × height passes [`ImageOptions::max_pixels`]
/// ([`ErrorKind::InvalidInput`]); undecodable data is [`ErrorKind::CorruptData`].
pub fn decode(data: &[u8], options: &ImageOptions) -> Result<DynamicImage> {
    decode_as(data, None, options)
}

fn encode_image(img: &DynamicImage, format: ImageFormat, quality: u8) -> Result<Vec<u8>> {
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
        #[cfg(not(feature = "webp"))]
        ImageFormat::WebpLossless => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "WebP output needs the `webp` feature of kernelize-compress",
            ));
        }
    };
    result.map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("cannot encode {}: {e}", format.name()),
        )
    })?;
    Ok(out)
}

/// Decodes `input` (PNG, JPEG, BMP or TIFF), encodes it to `format`, decodes the result
/// back and measures it against the original.
///
/// Errors: [`ErrorKind::InvalidInput`] for a quality outside 1..=100 (JPEG only) or an
/// image over the pixel limit (refused from its header, before decoding pixels);
/// [`ErrorKind::CorruptData`] for undecodable input; [`ErrorKind::Unsupported`] for WebP
/// output without the `webp` feature.
pub fn encode(
    input: &[u8],
    format: ImageFormat,
    options: &ImageOptions,
) -> Result<(Vec<u8>, ImageStats)> {
    let start = Instant::now();
    let quality = options.quality.unwrap_or(DEFAULT_QUALITY);
    if format == ImageFormat::Jpeg && !(1..=100).contains(&quality) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("JPEG quality must be 1 to 100, not {quality}"),
        ));
    }
    let original = decode(input, options)?;
    let encoded = encode_image(&original, format, quality)?;
    let back = decode_as(&encoded, Some(format.to_image()), options)?;
    let (a, b) = (original.to_rgb8(), back.to_rgb8());
    let psnr_db = metrics::psnr(&a, &b)?;
    let ssim = metrics::ssim(&a, &b)?;
    let (width, height) = (original.width(), original.height());
    let pixels = u64::from(width) * u64::from(height);
    let output_bytes = encoded.len() as u64;
    let stats = ImageStats {
        format,
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
        wall_time: start.elapsed(),
    };
    Ok((encoded, stats))
}

#[cfg(test)]
mod tests;
