//! `kernelize compress` and `kernelize decompress` through the built binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn kernelize(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.map(<[u8]>::to_vec).unwrap_or_default();
    let feeder = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sample() -> Vec<u8> {
    b"{\"event\": \"order.shipped\", \"order\": 4711, \"carrier\": \"DHL\"}\n".repeat(5_000)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn compress_then_decompress_files_with_each_codec_and_detection_where_possible() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("events.ndjson");
    std::fs::write(&original, sample()).unwrap();
    for codec in ["zstd", "lz4", "snappy", "brotli", "gzip", "deflate", "none"] {
        let packed = dir.path().join(format!("events.{codec}"));
        let o = kernelize(
            &["compress", "--codec", codec, path(&original), path(&packed)],
            None,
        );
        assert!(o.status.success(), "{codec}: {}", stderr(&o));
        let restored = dir.path().join(format!("restored.{codec}"));
        let detectable = matches!(codec, "zstd" | "lz4" | "snappy" | "gzip");
        let mut args = vec!["decompress"];
        if !detectable {
            args.extend(["--codec", codec]);
        }
        args.extend([path(&packed), path(&restored)]);
        let o = kernelize(&args, None);
        assert!(o.status.success(), "{codec}: {}", stderr(&o));
        assert_eq!(std::fs::read(&restored).unwrap(), sample(), "{codec}");
    }
}

#[test]
fn streams_through_stdin_and_stdout() {
    let o = kernelize(
        &["compress", "--codec", "zstd", "--level", "9", "-", "-"],
        Some(&sample()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]));
    let o = kernelize(&["decompress", "-", "-"], Some(&o.stdout));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, sample());
}

#[test]
fn stats_json_is_one_object_on_stderr() {
    let o = kernelize(
        &["compress", "--codec", "gzip", "--json", "-", "-"],
        Some(&sample()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stats: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(stats["codec"], "gzip");
    assert_eq!(stats["level"], 6);
    assert_eq!(stats["input_bytes"], sample().len());
    assert_eq!(stats["output_bytes"], o.stdout.len());
    assert!(stats["ratio"].as_f64().unwrap() > 5.0);
    for field in ["throughput_mb_s", "wall_time", "memory_estimate"] {
        assert!(stats[field].is_number(), "{field}");
    }
}

#[test]
fn undetectable_input_exits_2_and_says_to_name_the_codec() {
    let o = kernelize(
        &["compress", "--codec", "brotli", "-", "-"],
        Some(&sample()),
    );
    let o = kernelize(&["decompress", "-", "-"], Some(&o.stdout));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("name the codec explicitly"), "{err}");
}

#[test]
fn corrupt_input_exits_2_naming_codec_and_offset_and_leaves_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = kernelize(&["compress", "--codec", "zstd", "-", "-"], Some(&sample()));
    let mut packed = o.stdout;
    let cut = packed.len() / 2;
    packed.truncate(cut);
    let input = dir.path().join("cut.zst");
    std::fs::write(&input, &packed).unwrap();
    let target = dir.path().join("out.ndjson");
    let o = kernelize(&["decompress", path(&input), path(&target)], None);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("zstd data is corrupt or truncated"), "{err}");
    assert!(err.contains("offset: "), "{err}");
    assert!(!target.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "a partial file was left"
    );
}

#[test]
fn max_output_stops_a_bomb_with_exit_2() {
    let zeros = vec![0u8; 16 << 20];
    let o = kernelize(&["compress", "--codec", "zstd", "-", "-"], Some(&zeros));
    let o = kernelize(
        &["decompress", "--max-output", "1000000", "-", "-"],
        Some(&o.stdout),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("output limit of 1000000 bytes"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.len() <= 1_000_000);
}

#[test]
fn unknown_codec_and_bad_level_exit_2() {
    let o = kernelize(&["compress", "--codec", "rar", "-", "-"], Some(b"x"));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("available codecs: none, zstd"),
        "{}",
        stderr(&o)
    );
    let o = kernelize(
        &["compress", "--codec", "gzip", "--level", "12", "-", "-"],
        Some(b"x"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("gzip accepts levels 0 to 9; got 12"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn codecs_are_listed_as_plugins() {
    let o = kernelize(&["plugins", "list", "--json"], None);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let zstd = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "zstd")
        .unwrap();
    assert_eq!(zstd["category"], "compressor");
    assert_eq!(
        zstd["actions"],
        serde_json::json!(["compress", "decompress"])
    );
}

fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn auto_stores_incompressible_data_and_says_why() {
    let data = noise(1 << 20);
    let o = kernelize(
        &["compress", "--codec", "auto", "--json", "-", "-"],
        Some(&data),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stats: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(stats["codec"], "none");
    assert!(
        stats["choice"].as_str().unwrap().contains("incompressible"),
        "{stats}"
    );
    assert_eq!(o.stdout, data);
}

#[test]
fn auto_picks_a_real_codec_for_text_by_goal_and_the_result_decompresses() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    std::fs::write(&input, sample()).unwrap();
    let mut chosen = Vec::new();
    for goal in ["speed", "balanced", "ratio"] {
        let out = dir.path().join(format!("out.{goal}"));
        let o = kernelize(
            &[
                "compress",
                "--codec",
                "auto",
                "--goal",
                goal,
                "--json",
                path(&input),
                path(&out),
            ],
            None,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let stats: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
        assert_ne!(stats["codec"], "none", "{stats}");
        assert!(
            stats["choice"].as_str().unwrap().starts_with(goal),
            "{stats}"
        );
        chosen.push((
            stats["codec"].as_str().unwrap().to_string(),
            stats["ratio"].as_f64().unwrap(),
        ));
        let codec = stats["codec"].as_str().unwrap().to_string();
        let back = dir.path().join(format!("back.{goal}"));
        let o = kernelize(
            &["decompress", "--codec", &codec, path(&out), path(&back)],
            None,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(std::fs::read(&back).unwrap(), sample());
    }
    // Asking for ratio never gives a worse ratio than asking for speed.
    assert!(chosen[2].1 >= chosen[0].1, "{chosen:?}");
}

#[test]
fn an_unknown_goal_exits_2() {
    let o = kernelize(
        &["compress", "--codec", "auto", "--goal", "cheap", "-", "-"],
        Some(b"x"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("goals: speed, balanced, ratio"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn trained_dictionaries_compress_small_records_and_are_needed_to_decompress() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples");
    std::fs::create_dir(&samples).unwrap();
    for i in 0..300 {
        let record = format!(
            "{{\"event\":\"order.shipped\",\"order_id\":{},\"customer\":{{\"id\":{},\"tier\":\"gold\"}},\"items\":[{{\"sku\":\"SKU-{}\",\"qty\":{}}}],\"carrier\":\"DHL\",\"ts\":\"2026-11-26T10:{:02}:00Z\"}}",
            1000 + i,
            77 + i % 13,
            i % 50,
            1 + i % 4,
            i % 60
        );
        std::fs::write(samples.join(format!("{i}.json")), record).unwrap();
    }
    let dict = dir.path().join("orders.dict");
    let o = kernelize(
        &[
            "compress",
            "--train-dict",
            path(&samples),
            "--dict-size",
            "4096",
            "-o",
            path(&dict),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::metadata(&dict).unwrap().len() <= 4096);

    let record = std::fs::read(samples.join("7.json")).unwrap();
    let plain = kernelize(&["compress", "-", "-"], Some(&record)).stdout;
    let with = kernelize(
        &["compress", "--dict", path(&dict), "-", "-"],
        Some(&record),
    );
    assert!(with.status.success(), "{}", stderr(&with));
    assert!(
        with.stdout.len() * 2 <= plain.len(),
        "{} vs {}",
        with.stdout.len(),
        plain.len()
    );

    let back = kernelize(
        &["decompress", "--dict", path(&dict), "-", "-"],
        Some(&with.stdout),
    );
    assert_eq!(back.stdout, record);
    let without = kernelize(&["decompress", "-", "-"], Some(&with.stdout));
    assert_eq!(without.status.code(), Some(2), "{}", stderr(&without));
}

#[test]
fn bench_compress_measures_every_file_codec_and_level() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("texts")).unwrap();
    std::fs::write(dir.path().join("texts/events.ndjson"), sample()).unwrap();
    std::fs::write(dir.path().join("noise.bin"), noise(100_000)).unwrap();
    let o = kernelize(
        &[
            "bench",
            "compress",
            "--corpus",
            path(dir.path()),
            "--codecs",
            "zstd,lz4",
            "--levels",
            "1,3",
            "--runs",
            "1",
            "--json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    // zstd at 1 and 3, lz4 at 0 only (it has no levels 1 or 3): no lz4 rows.
    assert_eq!(rows.len(), 4, "{rows:?}");
    let text = rows
        .iter()
        .find(|r| r["file"] == "texts/events.ndjson" && r["level"] == 3)
        .unwrap();
    assert!(text["ratio"].as_f64().unwrap() > 10.0);
    for field in ["compress_mb_s", "decompress_mb_s", "memory_estimate_bytes"] {
        assert!(text[field].as_f64().unwrap() > 0.0, "{field}");
    }
}

/// What [`run_streaming`] saw.
struct Streamed {
    ok: bool,
    /// Bytes written to stdout.
    len: u64,
    /// Peak resident bytes seen while it ran.
    peak: u64,
    /// Stdout itself, when asked to keep it.
    kept: Vec<u8>,
}

/// Runs `kernelize ARGS`, feeding `feed_bytes` of zeros (or `input`) to stdin in 1 MiB
/// writes, counting stdout (and keeping it when `keep`).
fn run_streaming(args: &[&str], feed_bytes: u64, input: Option<Vec<u8>>, keep: bool) -> Streamed {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || match input {
        Some(data) => {
            let _ = stdin.write_all(&data);
        }
        None => {
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..feed_bytes / chunk.len() as u64 {
                if stdin.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
    });
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|status| {
                        status
                            .lines()
                            .find(|l| l.starts_with("VmHWM:"))
                            .and_then(|l| l.split_whitespace().nth(1))
                            .and_then(|v| v.parse::<u64>().ok())
                    });
                if let Some(kib) = kib {
                    peak = peak.max(kib * 1024);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            peak
        })
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut total = 0u64;
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n as u64;
                if keep {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
        }
    }
    feeder.join().unwrap();
    let status = child.wait().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    Streamed {
        ok: status.success(),
        len: total,
        peak: watcher.join().unwrap(),
        kept,
    }
}

#[test]
fn two_gibibytes_stream_through_stdin_and_stdout_in_bounded_memory() {
    const TWO_GIB: u64 = 2 << 30;
    const BOUND: u64 = 64 << 20;
    let packed = run_streaming(
        &["compress", "--codec", "zstd", "--level", "1", "-", "-"],
        TWO_GIB,
        None,
        true,
    );
    assert!(packed.ok);
    assert!(packed.peak > 0, "the peak memory could not be read");
    assert!(
        packed.peak < BOUND,
        "compressing 2 GiB peaked at {} MiB",
        packed.peak >> 20
    );
    assert_eq!(packed.kept.len() as u64, packed.len);

    // Decompress what was just compressed (a small stream: 2 GiB of zeros).
    let unpacked = run_streaming(
        &["decompress", "--max-output", "3000000000", "-", "-"],
        0,
        Some(packed.kept),
        false,
    );
    assert!(unpacked.ok);
    assert_eq!(unpacked.len, TWO_GIB);
    assert!(
        unpacked.peak < BOUND,
        "decompressing 2 GiB peaked at {} MiB",
        unpacked.peak >> 20
    );
}

/// A 24-bit BMP of `w` x `h` with a gradient and a disc: a real image file, written by hand.
fn bmp(w: u32, h: u32) -> Vec<u8> {
    let row = (w * 3).div_ceil(4) * 4;
    let size = 54 + row * h;
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(w as i32).to_le_bytes());
    out.extend_from_slice(&(h as i32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&[0u8; 24]);
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as i64 - w as i64 / 2, y as i64 - h as i64 / 2);
            let inside = dx * dx + dy * dy < (w as i64 / 4).pow(2);
            let (r, g, b) = if inside {
                (220, 40, 40)
            } else {
                ((x * 255 / w) as u8, (y * 255 / h) as u8, 128)
            };
            out.extend_from_slice(&[b, g, r]);
        }
        out.resize(out.len() + (row - w * 3) as usize, 0);
    }
    out
}

#[test]
fn images_encode_with_quality_figures() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("picture.bmp");
    std::fs::write(&input, bmp(128, 96)).unwrap();

    let jpeg = dir.path().join("picture.jpg");
    let o = kernelize(
        &[
            "compress",
            "--codec",
            "jpeg",
            "--quality",
            "90",
            "--json",
            path(&input),
            path(&jpeg),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stats: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(
        (stats["width"].as_u64(), stats["height"].as_u64()),
        (Some(128), Some(96))
    );
    assert!(stats["psnr_db"].as_f64().unwrap() > 30.0, "{stats}");
    assert!(stats["ssim"].as_f64().unwrap() > 0.9, "{stats}");
    let bytes = std::fs::read(&jpeg).unwrap();
    assert!(bytes.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let bpp = bytes.len() as f64 * 8.0 / (128.0 * 96.0);
    assert!((stats["bits_per_pixel"].as_f64().unwrap() - bpp).abs() < 1e-9);

    let png = dir.path().join("picture.png");
    let o = kernelize(
        &[
            "compress",
            "--codec",
            "png",
            "--json",
            path(&input),
            path(&png),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stats: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert!(stats["psnr_db"].is_null(), "lossless: {stats}");
    assert_eq!(stats["ssim"].as_f64(), Some(1.0));
}

#[test]
fn images_over_the_pixel_limit_and_garbage_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("picture.bmp");
    std::fs::write(&input, bmp(64, 64)).unwrap();
    let out = dir.path().join("out.png");
    let o = kernelize(
        &[
            "compress",
            "--codec",
            "png",
            "--max-pixels",
            "1000",
            path(&input),
            path(&out),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("64x64"), "{}", stderr(&o));
    assert!(!out.exists());

    let o = kernelize(
        &["compress", "--codec", "jpeg", "-", "-"],
        Some(b"not an image at all"),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = kernelize(
        &["compress", "--codec", "zstd", "--quality", "80", "-", "-"],
        Some(b"x"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("are for image codecs"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn lossy_webp_and_avif_from_the_command_line_decode_back_to_png() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("picture.bmp");
    std::fs::write(&input, bmp(128, 96)).unwrap();
    for (codec, magic, extra) in [
        ("webp", &b"WEBPVP8 "[..], vec!["--quality", "80"]),
        ("webp-lossless", &b"WEBPVP8L"[..], vec![]),
        (
            "avif",
            &b"ftypavif"[..],
            vec!["--quality", "80", "--speed", "10"],
        ),
    ] {
        let out = dir.path().join(format!("picture.{codec}"));
        let mut args = vec!["compress", "--codec", codec, "--json"];
        args.extend(extra);
        args.extend([path(&input), path(&out)]);
        let o = kernelize(&args, None);
        assert!(o.status.success(), "{codec}: {}", stderr(&o));
        let stats: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let at = if codec == "avif" { 4 } else { 8 };
        assert_eq!(&bytes[at..at + magic.len()], magic, "{codec}");
        assert_eq!(stats["output_bytes"].as_u64(), Some(bytes.len() as u64));
        if codec == "webp-lossless" {
            assert!(stats["psnr_db"].is_null(), "{stats}");
        } else {
            assert!(
                stats["psnr_db"].as_f64().unwrap() > 30.0,
                "{codec}: {stats}"
            );
            assert_eq!(stats["quality"].as_u64(), Some(80), "{stats}");
        }

        // And back to PNG.
        let png = dir.path().join(format!("{codec}.png"));
        let o = kernelize(
            &[
                "decompress",
                "--codec",
                "image",
                "--json",
                path(&out),
                path(&png),
            ],
            None,
        );
        assert!(o.status.success(), "{codec}: {}", stderr(&o));
        let summary: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
        assert_eq!(summary["width"].as_u64(), Some(128));
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

        let o = kernelize(
            &[
                "decompress",
                "--codec",
                "image",
                "--max-pixels",
                "100",
                path(&out),
                "-",
            ],
            None,
        );
        assert_eq!(o.status.code(), Some(2), "{codec}: {}", stderr(&o));
    }

    // Speed out of range is bad usage.
    let o = kernelize(
        &[
            "compress",
            "--codec",
            "avif",
            "--speed",
            "11",
            path(&input),
            "-",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("speed"), "{}", stderr(&o));
}
