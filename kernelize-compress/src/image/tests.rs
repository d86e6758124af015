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
