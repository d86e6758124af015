//! Image quality figures: PSNR over RGB8 and mean SSIM on luma.
//!
//! SSIM follows Wang, Bovik, Sheikh and Simoncelli (2004): an 11×11 Gaussian window with
//! σ = 1.5, constants `C1 = (0.01·255)²` and `C2 = (0.03·255)²`, computed over every
//! position where the window fits inside the image (no padding) and averaged. Luma is
//! BT.601 (`0.299 R + 0.587 G + 0.114 B`) on 8-bit RGB. Images smaller than 11 pixels on a
//! side use a window as large as the smaller side. Implemented here (about sixty lines)
//! rather than through a crate, to keep the dependency set to `image` alone.

use image::RgbImage;
use kernelize_core::{Error, ErrorKind, Result};

/// Side of the SSIM window.
const WINDOW: usize = 11;
/// Standard deviation of the SSIM window's Gaussian.
const SIGMA: f64 = 1.5;

fn same_size(a: &RgbImage, b: &RgbImage) -> Result<()> {
    if a.dimensions() != b.dimensions() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "images differ in size: {}x{} and {}x{}",
                a.width(),
                a.height(),
                b.width(),
                b.height()
            ),
        ));
    }
    Ok(())
}

/// Peak signal-to-noise ratio in dB between two RGB8 images of the same size, over all
/// three channels; `None` when they are identical (infinite PSNR) or empty.
pub fn psnr(a: &RgbImage, b: &RgbImage) -> Result<Option<f64>> {
    same_size(a, b)?;
    let n = a.as_raw().len();
    if n == 0 {
        return Ok(None);
    }
    let sum: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum();
    if sum == 0.0 {
        return Ok(None);
    }
    let mse = sum / n as f64;
    Ok(Some(10.0 * (255.0 * 255.0 / mse).log10()))
}

fn luma(img: &RgbImage) -> Vec<f64> {
    img.pixels()
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect()
}

/// Normalized 1-D Gaussian of `size` taps.
fn kernel(size: usize) -> Vec<f64> {
    let centre = (size as f64 - 1.0) / 2.0;
    let raw: Vec<f64> = (0..size)
        .map(|i| (-((i as f64 - centre).powi(2)) / (2.0 * SIGMA * SIGMA)).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|v| v / total).collect()
}

/// Separable "valid" convolution of a `w`×`h` plane with `k` in both directions.
fn blur(plane: &[f64], w: usize, h: usize, k: &[f64]) -> Vec<f64> {
    let n = k.len();
    let (ow, oh) = (w + 1 - n, h + 1 - n);
    let mut rows = vec![0.0; ow * h];
    for y in 0..h {
        let line = &plane[y * w..(y + 1) * w];
        for x in 0..ow {
            rows[y * ow + x] = k.iter().zip(&line[x..x + n]).map(|(a, b)| a * b).sum();
        }
    }
    let mut out = vec![0.0; ow * oh];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = k
                .iter()
                .enumerate()
                .map(|(i, kv)| kv * rows[(y + i) * ow + x])
                .sum();
        }
    }
    out
}

/// Mean SSIM on luma between two RGB8 images of the same size: 1.0 for identical images,
/// lower as they differ. An empty image gives 1.0.
pub fn ssim(a: &RgbImage, b: &RgbImage) -> Result<f64> {
    same_size(a, b)?;
    let (w, h) = (a.width() as usize, a.height() as usize);
    let size = WINDOW.min(w).min(h);
    if size == 0 {
        return Ok(1.0);
    }
    let (x, y) = (luma(a), luma(b));
    let xx: Vec<f64> = x.iter().map(|v| v * v).collect();
    let yy: Vec<f64> = y.iter().map(|v| v * v).collect();
    let xy: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p * q).collect();
    let k = kernel(size);
    let (mx, my) = (blur(&x, w, h, &k), blur(&y, w, h, &k));
    let (sxx, syy, sxy) = (
        blur(&xx, w, h, &k),
        blur(&yy, w, h, &k),
        blur(&xy, w, h, &k),
    );
    let c1 = (0.01f64 * 255.0).powi(2);
    let c2 = (0.03f64 * 255.0).powi(2);
    let mut total = 0.0;
    for i in 0..mx.len() {
        let (ux, uy) = (mx[i], my[i]);
        let vx = sxx[i] - ux * ux;
        let vy = syy[i] - uy * uy;
        let cov = sxy[i] - ux * uy;
        total +=
            ((2.0 * ux * uy + c1) * (2.0 * cov + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
    }
    Ok(total / mx.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x ^ y) & 0xff) as u8,
            ])
        })
    }

    #[test]
    fn ssim_of_image_with_itself_is_one() -> Result<()> {
        let img = pattern(64, 48);
        let s = ssim(&img, &img)?;
        assert!((s - 1.0).abs() < 1e-9, "ssim {s}");
        assert_eq!(psnr(&img, &img)?, None);
        Ok(())
    }

    #[test]
    fn noise_lowers_ssim_and_psnr() -> Result<()> {
        let img = pattern(64, 64);
        let mut noisy = img.clone();
        let mut state = 0x2545_f491_u32;
        for p in noisy.pixels_mut() {
            for c in p.0.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let delta = (state % 41) as i32 - 20;
                *c = (i32::from(*c) + delta).clamp(0, 255) as u8;
            }
        }
        let s = ssim(&img, &noisy)?;
        assert!(s < 0.95 && s > 0.0, "ssim {s}");
        let p = psnr(&img, &noisy)?.unwrap_or(f64::INFINITY);
        assert!(p < 30.0 && p > 15.0, "psnr {p}");
        Ok(())
    }

    #[test]
    fn tiny_images_and_size_mismatch() -> Result<()> {
        let one = pattern(1, 1);
        assert!((ssim(&one, &one)? - 1.0).abs() < 1e-9);
        let err = ssim(&one, &pattern(2, 2)).err();
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidInput));
        Ok(())
    }
}
