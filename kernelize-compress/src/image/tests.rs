use super::*;

fn err(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unexpected, e.to_string())
}

/// A 256×256 RGB test picture: gradients, a filled disc, a square and fine stripes.
fn picture() -> image::RgbImage {
    image::RgbImage::from_fn(256, 256, |x, y| {
        let (dx, dy) = (x as i32 - 96, y as i32 - 96);
        if dx * dx + dy * dy < 40 * 40 {
            image::Rgb([220, 40, 40])
        } else if (150..220).contains(&x) && (140..210).contains(&y) {
            image::Rgb([30, 60, 200])
        } else if y > 230 {
            let v = if x % 4 < 2 { 250 } else { 10 };
            image::Rgb([v, v, v])
        } else {
            image::Rgb([x as u8, y as u8, ((x + y) / 2) as u8])
        }
    })
}

fn png_bytes(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .map_err(err)?;
    Ok(out)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn png_round_trip_is_lossless() -> Result<()> {
    let input = png_bytes(&picture())?;
    let (out, stats) = encode(&input, ImageFormat::Png, &ImageOptions::default())?;
    assert_eq!(stats.psnr_db, None);
    assert_eq!(stats.ssim, 1.0);
    assert_eq!((stats.width, stats.height), (256, 256));
    assert_eq!(stats.input_bytes, input.len() as u64);
    assert_eq!(stats.output_bytes, out.len() as u64);
    let back = decode(&out, &ImageOptions::default())?;
    assert_eq!(back.to_rgb8(), picture());
    Ok(())
}

#[test]
fn jpeg_quality_figures() -> Result<()> {
    let input = png_bytes(&picture())?;
    let (hi, s90) = encode(&input, ImageFormat::Jpeg, &ImageOptions::quality(90))?;
    let (lo, s30) = encode(&input, ImageFormat::Jpeg, &ImageOptions::quality(30))?;
    let p90 = s90.psnr_db.unwrap_or(f64::INFINITY);
    let p30 = s30.psnr_db.unwrap_or(f64::INFINITY);
    println!(
        "q90: {} bytes, {:.3} bpp, PSNR {p90:.2} dB, SSIM {:.4}; q30: {} bytes, {:.3} bpp, PSNR {p30:.2} dB, SSIM {:.4}",
        s90.output_bytes,
        s90.bits_per_pixel,
        s90.ssim,
        s30.output_bytes,
        s30.bits_per_pixel,
        s30.ssim
    );
    assert!(p90 > 30.0 && p90.is_finite(), "psnr q90 {p90}");
    assert!(s90.ssim > 0.9, "ssim q90 {}", s90.ssim);
    assert!(lo.len() < hi.len());
    assert!(p30 < p90);
    assert!(s30.ssim < s90.ssim);
    for (bytes, s) in [(&hi, &s90), (&lo, &s30)] {
        let expected = bytes.len() as f64 * 8.0 / (256.0 * 256.0);
        assert!((s.bits_per_pixel - expected).abs() < 1e-12);
    }
    // Output starts with the JPEG SOI marker and decodes back.
    assert_eq!(&hi[..2], &[0xFF, 0xD8]);
    assert_eq!(decode(&hi, &ImageOptions::default())?.width(), 256);
    Ok(())
}

#[test]
fn jpeg_quality_out_of_range_is_refused() -> Result<()> {
    let input = png_bytes(&picture())?;
    for q in [0, 101] {
        let e = encode(&input, ImageFormat::Jpeg, &ImageOptions::quality(q)).err();
        assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::InvalidInput));
    }
    // Ignored for lossless formats.
    let (_, s) = encode(&input, ImageFormat::Png, &ImageOptions::quality(0))?;
    assert_eq!(s.psnr_db, None);
    Ok(())
}

#[cfg(feature = "webp")]
#[test]
fn webp_lossless_round_trip() -> Result<()> {
    let input = png_bytes(&picture())?;
    let (out, stats) = encode(&input, ImageFormat::WebpLossless, &ImageOptions::default())?;
    assert_eq!(&out[..4], b"RIFF");
    assert_eq!(&out[8..12], b"WEBP");
    assert_eq!(stats.psnr_db, None);
    assert_eq!(stats.ssim, 1.0);
    Ok(())
}

#[test]
fn bmp_and_tiff_inputs_are_read() -> Result<()> {
    for f in [image::ImageFormat::Bmp, image::ImageFormat::Tiff] {
        let mut input = Vec::new();
        picture()
            .write_to(&mut Cursor::new(&mut input), f)
            .map_err(err)?;
        let (_, s) = encode(&input, ImageFormat::Png, &ImageOptions::default())?;
        assert_eq!((s.width, s.height, s.psnr_db), (256, 256, None));
    }
    Ok(())
}

#[test]
fn image_over_pixel_limit_is_refused() -> Result<()> {
    let input = png_bytes(&picture())?;
    let options = ImageOptions {
        max_pixels: 100,
        ..ImageOptions::default()
    };
    let e = encode(&input, ImageFormat::Jpeg, &options).err();
    let e = e.ok_or_else(|| err("accepted an image over the limit"))?;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("256x256"), "{}", e.message());
    assert!(e.message().contains("100 pixels"), "{}", e.message());
    assert_eq!(
        decode(&input, &options).err().map(|e| e.kind()),
        Some(ErrorKind::InvalidInput)
    );
    Ok(())
}

#[test]
fn huge_header_is_refused_before_decoding() -> Result<()> {
    // A valid 1x1 PNG whose IHDR now claims 100000x100000 (10^10 pixels), CRC fixed: the
    // pixel data cannot be there, so only a header-based refusal gives InvalidInput.
    let mut png = png_bytes(&image::RgbImage::new(1, 1))?;
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let e = decode(&png, &ImageOptions::default())
        .err()
        .ok_or_else(|| err("decoded a huge image"))?;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("100000x100000"), "{}", e.message());
    let e = encode(&png, ImageFormat::Png, &ImageOptions::default()).err();
    assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::InvalidInput));
    Ok(())
}

#[test]
fn garbage_is_corrupt_data() -> Result<()> {
    let garbage = b"this is not an image at all, just some words".repeat(10);
    let e = encode(&garbage, ImageFormat::Png, &ImageOptions::default()).err();
    assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::CorruptData));
    // A PNG signature followed by garbage names the guessed format.
    let mut fake = png_bytes(&picture())?;
    fake.truncate(60);
    let e = decode(&fake, &ImageOptions::default())
        .err()
        .ok_or_else(|| err("decoded a truncated PNG"))?;
    assert_eq!(e.kind(), ErrorKind::CorruptData);
    assert!(e.message().contains("png"), "{}", e.message());
    assert_eq!(
        decode(&[], &ImageOptions::default())
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::CorruptData)
    );
    Ok(())
}

#[test]
fn stats_serialize() -> Result<()> {
    let input = png_bytes(&picture())?;
    let (_, stats) = encode(&input, ImageFormat::Jpeg, &ImageOptions::default())?;
    let json = serde_json::to_value(&stats).map_err(err)?;
    assert_eq!(json["format"], "jpeg");
    assert!(json["wall_time"].is_f64());
    let back: ImageStats = serde_json::from_value(json).map_err(err)?;
    assert_eq!(back.output_bytes, stats.output_bytes);
    Ok(())
}

#[test]
fn format_names_round_trip() {
    for f in ImageFormat::ALL {
        assert_eq!(ImageFormat::from_name(f.name()), Some(f));
        assert!(f.media_type().starts_with("image/"));
        assert_eq!(f.is_lossless(), f.default_quality().is_none());
    }
    assert_eq!(ImageFormat::from_name("jpg"), Some(ImageFormat::Jpeg));
    assert_eq!(
        ImageFormat::from_name("webp-lossless"),
        Some(ImageFormat::WebpLossless)
    );
    assert_eq!(ImageFormat::from_name("gif"), None);
}

/// The same picture with an alpha channel: opaque left half, a transparent band, a
/// half-transparent rest.
fn picture_rgba() -> image::RgbaImage {
    let rgb = picture();
    image::RgbaImage::from_fn(256, 256, |x, y| {
        let p = rgb.get_pixel(x, y);
        let a = if x < 128 {
            255
        } else if y < 64 {
            0
        } else {
            128
        };
        image::Rgba([p[0], p[1], p[2], a])
    })
}

/// Encodes at a high and a low quality and checks the figures move the right way.
#[cfg(any(feature = "webp", feature = "avif"))]
fn lossy_quality_figures(format: ImageFormat, extra: ImageOptions) -> Result<Vec<u8>> {
    let input = png_bytes(&picture())?;
    let at = |quality| ImageOptions {
        quality: Some(quality),
        ..extra.clone()
    };
    let (hi, s90) = encode(&input, format, &at(90))?;
    let (lo, s30) = encode(&input, format, &at(30))?;
    let p90 = s90.psnr_db.unwrap_or(f64::INFINITY);
    let p30 = s30.psnr_db.unwrap_or(f64::INFINITY);
    println!(
        "{format} q90: {} bytes, {:.3} bpp, PSNR {p90:.2} dB, SSIM {:.4}, encode {:?}; \
         q30: {} bytes, {:.3} bpp, PSNR {p30:.2} dB, SSIM {:.4}",
        s90.output_bytes,
        s90.bits_per_pixel,
        s90.ssim,
        s90.encode_time,
        s30.output_bytes,
        s30.bits_per_pixel,
        s30.ssim
    );
    assert_eq!((s90.quality, s30.quality), (Some(90), Some(30)));
    assert!(p90 > 30.0 && p90.is_finite(), "{format} psnr q90 {p90}");
    assert!(s90.ssim > 0.9, "{format} ssim q90 {}", s90.ssim);
    assert!(lo.len() < hi.len(), "{format}: q30 not smaller than q90");
    assert!(p30 < p90);
    assert!(s30.ssim <= s90.ssim);
    // Far smaller than the raw pixels.
    assert!(hi.len() < 256 * 256 * 3 / 4);
    let back = decode(&hi, &ImageOptions::default())?;
    assert_eq!((back.width(), back.height()), (256, 256));
    Ok(hi)
}

#[cfg(feature = "webp")]
#[test]
fn webp_lossy_quality_figures() -> Result<()> {
    let out = lossy_quality_figures(ImageFormat::Webp, ImageOptions::default())?;
    assert_eq!(&out[..4], b"RIFF");
    assert_eq!(&out[8..12], b"WEBP");
    // A lossy (VP8) bitstream, not the lossless VP8L.
    assert_eq!(&out[12..16], b"VP8 ");
    Ok(())
}

#[cfg(feature = "webp")]
#[test]
fn webp_lossy_keeps_alpha() -> Result<()> {
    let mut input = Vec::new();
    picture_rgba()
        .write_to(&mut Cursor::new(&mut input), image::ImageFormat::Png)
        .map_err(err)?;
    let (out, _) = encode(&input, ImageFormat::Webp, &ImageOptions::quality(80))?;
    let back = decode(&out, &ImageOptions::default())?.to_rgba8();
    assert_eq!(back.get_pixel(10, 10)[3], 255);
    assert_eq!(back.get_pixel(200, 10)[3], 0);
    assert!(back.get_pixel(200, 200)[3].abs_diff(128) <= 4);
    Ok(())
}

#[cfg(feature = "avif")]
#[test]
fn avif_quality_figures() -> Result<()> {
    let fast = ImageOptions {
        speed: Some(10),
        ..ImageOptions::default()
    };
    let out = lossy_quality_figures(ImageFormat::Avif, fast)?;
    assert!(is_avif(&out));
    assert_eq!(&out[4..12], b"ftypavif");
    Ok(())
}

#[cfg(feature = "avif")]
#[test]
fn avif_keeps_alpha_and_reports_speed() -> Result<()> {
    let mut input = Vec::new();
    picture_rgba()
        .write_to(&mut Cursor::new(&mut input), image::ImageFormat::Png)
        .map_err(err)?;
    let options = ImageOptions {
        quality: Some(90),
        speed: Some(9),
        ..ImageOptions::default()
    };
    let (out, stats) = encode(&input, ImageFormat::Avif, &options)?;
    assert_eq!((stats.speed, stats.quality), (Some(9), Some(90)));
    let back = decode(&out, &ImageOptions::default())?;
    assert!(back.color().has_alpha());
    let back = back.to_rgba8();
    assert_eq!(back.get_pixel(10, 10)[3], 255);
    assert!(back.get_pixel(200, 10)[3] <= 4);
    assert!(back.get_pixel(200, 200)[3].abs_diff(128) <= 8);
    Ok(())
}

#[cfg(feature = "avif")]
#[test]
fn avif_options_out_of_range_are_refused() -> Result<()> {
    let input = png_bytes(&picture())?;
    for options in [
        ImageOptions::quality(0),
        ImageOptions::quality(101),
        ImageOptions {
            speed: Some(0),
            ..ImageOptions::default()
        },
        ImageOptions {
            speed: Some(11),
            ..ImageOptions::default()
        },
    ] {
        let e = encode(&input, ImageFormat::Avif, &options)
            .err()
            .ok_or_else(|| err(format!("accepted {options:?}")))?;
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{}", e.message());
        assert!(e.message().contains("avif"), "{}", e.message());
    }
    Ok(())
}

#[cfg(feature = "avif")]
#[test]
fn avif_over_pixel_limit_is_refused_before_decoding() -> Result<()> {
    let input = png_bytes(&picture())?;
    let options = ImageOptions {
        speed: Some(10),
        ..ImageOptions::default()
    };
    let (avif, _) = encode(&input, ImageFormat::Avif, &options)?;
    let small = ImageOptions {
        max_pixels: 1000,
        ..ImageOptions::default()
    };
    let e = decode(&avif, &small)
        .err()
        .ok_or_else(|| err("decoded an AVIF over the limit"))?;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("256x256"), "{}", e.message());
    Ok(())
}

#[cfg(feature = "avif")]
#[test]
fn damaged_avif_is_an_error_not_a_panic() -> Result<()> {
    let input = png_bytes(&image::RgbImage::from_fn(48, 40, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 6) as u8, 90])
    }))?;
    let options = ImageOptions {
        speed: Some(10),
        ..ImageOptions::default()
    };
    let (avif, _) = encode(&input, ImageFormat::Avif, &options)?;
    let opts = ImageOptions::default();
    let mut errors = 0;
    for cut in (0..avif.len()).step_by(7) {
        errors += usize::from(decode(&avif[..cut], &opts).is_err());
    }
    assert!(errors > 0);
    // Flip bits all over; each decode either fails cleanly or yields an image of the
    // right size (AV1 has no checksum over the pixels).
    for i in (0..avif.len()).step_by(3) {
        let mut bad = avif.clone();
        bad[i] ^= 0x5A;
        if let Ok(img) = decode(&bad, &opts) {
            assert!(u64::from(img.width()) * u64::from(img.height()) <= opts.max_pixels);
        }
    }
    Ok(())
}

#[test]
fn unavailable_format_says_which_feature() {
    for f in ImageFormat::ALL.into_iter().filter(|f| !f.is_available()) {
        let e = encode(b"x", f, &ImageOptions::default()).err();
        assert_eq!(e.as_ref().map(|e| e.kind()), Some(ErrorKind::Unsupported));
    }
}

#[cfg(feature = "avif")]
#[test]
fn an_avif_box_claiming_more_than_the_file_is_refused_before_parsing() -> Result<()> {
    let input = png_bytes(&image::RgbImage::new(16, 16))?;
    let options = ImageOptions {
        speed: Some(10),
        ..ImageOptions::default()
    };
    let (avif, _) = encode(&input, ImageFormat::Avif, &options)?;
    assert!(avif::boxes_fit(&avif, 0));
    // Find the `iloc` box inside `meta` and make it claim 4 GB.
    let at = avif
        .windows(4)
        .position(|w| w == b"iloc")
        .ok_or_else(|| err("no iloc box"))?;
    let mut bad = avif.clone();
    bad[at - 4..at].copy_from_slice(&0xFFFF_FF00u32.to_be_bytes());
    assert!(!avif::boxes_fit(&bad, 0));
    let e = decode(&bad, &ImageOptions::default())
        .err()
        .ok_or_else(|| err("decoded a lying AVIF"))?;
    assert_eq!(e.kind(), ErrorKind::CorruptData);
    assert!(e.message().contains("claims more bytes"), "{}", e.message());
    Ok(())
}
