//! Image codecs on a real photograph, and interoperability with the reference tools in both
//! directions: `dwebp` and `avifdec` read what we write, we read what `cwebp` and `avifenc`
//! write. The photograph is `snappy/fireworks.jpeg` from the benchmark corpus; the tools
//! come from Debian's `webp` and `libavif-bin` packages, which `scripts/test` installs.

#![cfg(all(feature = "png", feature = "jpeg", feature = "webp", feature = "avif"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reference_tools;

use kernelize_compress::image::{ImageFormat, ImageOptions, decode, encode, metrics};
use reference_tools::{assert_success, corpus_file, path_str, run_tool};
use tempfile::TempDir;

fn photo() -> Vec<u8> {
    corpus_file("snappy/fireworks.jpeg", usize::MAX)
}

/// The photograph as PNG (the tools' common input).
fn photo_png(dir: &TempDir) -> (std::path::PathBuf, image::RgbImage) {
    let img = decode(&photo(), &ImageOptions::default())
        .unwrap()
        .to_rgb8();
    let path = dir.path().join("photo.png");
    img.save(&path).unwrap();
    (path, img)
}

fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    metrics::psnr(a, b).unwrap().unwrap_or(f64::INFINITY)
}

fn fast() -> ImageOptions {
    ImageOptions {
        speed: Some(10),
        ..ImageOptions::default()
    }
}

#[test]
fn real_photo_reencodes_in_every_format() {
    let photo = photo();
    for format in ImageFormat::ALL {
        let (out, s) = encode(&photo, format, &fast()).unwrap();
        println!(
            "fireworks.jpeg {}x{} -> {format}: {} bytes, {:.3} bpp, PSNR {:?}, SSIM {:.4}, \
             encode {:?}, decode {:?}",
            s.width,
            s.height,
            s.output_bytes,
            s.bits_per_pixel,
            s.psnr_db,
            s.ssim,
            s.encode_time,
            s.decode_time
        );
        assert_eq!(s.output_bytes, out.len() as u64);
        assert_eq!(s.input_bytes, photo.len() as u64);
        if format.is_lossless() {
            assert_eq!(s.psnr_db, None, "{format}");
            assert_eq!(s.ssim, 1.0, "{format}");
        } else {
            assert!(s.psnr_db.is_some_and(|p| p > 30.0), "{format}: {s:?}");
            assert!(s.ssim > 0.9, "{format}: {s:?}");
        }
    }
}

#[test]
fn dwebp_reads_our_lossy_webp() {
    let dir = TempDir::new().unwrap();
    let (png, original) = photo_png(&dir);
    let (webp, _) = encode(
        &std::fs::read(&png).unwrap(),
        ImageFormat::Webp,
        &ImageOptions::quality(80),
    )
    .unwrap();
    let ours = dir.path().join("ours.webp");
    std::fs::write(&ours, &webp).unwrap();
    let back = dir.path().join("dwebp.png");
    let args = [path_str(&ours), "-o", path_str(&back)];
    assert_success("dwebp", &args, &run_tool("dwebp", "webp", &args));
    let theirs = image::open(&back).unwrap().to_rgb8();
    let mine = decode(&webp, &ImageOptions::default()).unwrap().to_rgb8();
    assert_eq!(theirs.dimensions(), original.dimensions());
    // libwebp and the pure-Rust decoder agree closely on the same bitstream.
    let agree = psnr(&theirs, &mine);
    assert!(agree > 40.0, "dwebp and our decoder differ: {agree:.2} dB");
    assert!(psnr(&original, &theirs) > 30.0);
}

#[test]
fn we_read_cwebps_lossy_and_lossless_webp() {
    let dir = TempDir::new().unwrap();
    let (png, original) = photo_png(&dir);
    for (name, extra) in [("lossy", vec!["-q", "75"]), ("lossless", vec!["-lossless"])] {
        let out = dir.path().join(format!("cwebp-{name}.webp"));
        let mut args = extra.clone();
        args.extend([path_str(&png), "-o", path_str(&out)]);
        assert_success("cwebp", &args, &run_tool("cwebp", "webp", &args));
        let img = decode(&std::fs::read(&out).unwrap(), &ImageOptions::default())
            .unwrap()
            .to_rgb8();
        let p = psnr(&original, &img);
        if name == "lossless" {
            assert!(p.is_infinite(), "cwebp -lossless read back at {p:.2} dB");
        } else {
            assert!(p > 30.0, "cwebp -q 75 read back at {p:.2} dB");
        }
    }
}

#[test]
fn avifdec_reads_our_avif() {
    let dir = TempDir::new().unwrap();
    let (png, original) = photo_png(&dir);
    let (avif, _) = encode(&std::fs::read(&png).unwrap(), ImageFormat::Avif, &fast()).unwrap();
    let ours = dir.path().join("ours.avif");
    std::fs::write(&ours, &avif).unwrap();
    let back = dir.path().join("avifdec.png");
    let args = [path_str(&ours), path_str(&back)];
    assert_success("avifdec", &args, &run_tool("avifdec", "libavif-bin", &args));
    let theirs = image::open(&back).unwrap().to_rgb8();
    let mine = decode(&avif, &ImageOptions::default()).unwrap().to_rgb8();
    assert_eq!(theirs.dimensions(), original.dimensions());
    let agree = psnr(&theirs, &mine);
    assert!(
        agree > 40.0,
        "avifdec and our decoder differ: {agree:.2} dB"
    );
    assert!(psnr(&original, &theirs) > 30.0);
}

#[test]
fn we_read_avifencs_avif_in_444_and_420() {
    let dir = TempDir::new().unwrap();
    let (png, original) = photo_png(&dir);
    for yuv in ["444", "420"] {
        let out = dir.path().join(format!("avifenc-{yuv}.avif"));
        let args = [
            "-s",
            "10",
            "-y",
            yuv,
            "--min",
            "10",
            "--max",
            "20",
            path_str(&png),
            path_str(&out),
        ];
        assert_success("avifenc", &args, &run_tool("avifenc", "libavif-bin", &args));
        let img = decode(&std::fs::read(&out).unwrap(), &ImageOptions::default())
            .unwrap()
            .to_rgb8();
        assert_eq!(img.dimensions(), original.dimensions());
        let p = psnr(&original, &img);
        assert!(p > 30.0, "avifenc -y {yuv} read back at {p:.2} dB");
    }
}
