//! Interoperability with the reference implementations, in both directions, on real files of
//! the benchmark corpus: what we write, the `zstd`, `lz4`, `gzip` and `brotli` commands read
//! back to the same bytes; what they write, we read back to the same bytes, and [`detect`]
//! names the right codec for it.
//!
//! Two formats have no command line of their own:
//!
//! - raw deflate goes through Python's `zlib` module (zlib, the reference implementation);
//! - the Snappy framing format goes through snappy-java (Debian's `libsnappy-java`: Google's
//!   C++ snappy through JNI, with its own implementation of the framing format), run as a
//!   one-file Java program. Debian 12's `python3-snappy` (0.5.3) cannot serve: every call
//!   into its C extension fails on Python 3.11 with "SystemError: PY_SSIZE_T_CLEAN macro must
//!   be defined for '#' formats"; and PyPI's `python-snappy` 0.7 sits on `cramjam`, which uses
//!   the same `snap` crate as our codec, so it would check us against ourselves.
//!
//! The tools come from Debian packages that `scripts/test` installs
//! (`scripts/debian-packages.txt`); a missing tool fails the test with the package to
//! install, never skips it. The corpus is read from the directory in `KERNELIZE_CORPUS`
//! (default `/var/tmp/kernelize-corpus`), which `scripts/test` fills with
//! `../shared/corpus/unpack`.

#![cfg(all(
    feature = "zstd",
    feature = "lz4",
    feature = "snappy",
    feature = "brotli",
    feature = "gzip"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reference_tools;

use std::path::{Path, PathBuf};

use reference_tools::{assert_success, corpus_file, path_str, run_tool};

use kernelize_compress::{CompressOptions, DecompressOptions, codec, compress, decompress, detect};
use tempfile::TempDir;

/// snappy-java's jar, from Debian's `libsnappy-java` (its JNI library comes from
/// `libsnappy-jni`, a dependency).
const SNAPPY_JAVA_JAR: &str = "/usr/share/java/snappy-java.jar";

/// A one-file Java program over snappy-java's framing-format streams: `-c IN OUT`
/// compresses, `-d IN OUT` decompresses, checking every chunk's CRC.
const SNAPPY_FRAMED_JAVA: &str = r#"
import java.io.*;
import java.nio.file.*;
import org.xerial.snappy.SnappyFramedInputStream;
import org.xerial.snappy.SnappyFramedOutputStream;

public class SnappyFramed {
    public static void main(String[] args) throws IOException {
        try (InputStream in = Files.newInputStream(Path.of(args[1]));
             OutputStream out = Files.newOutputStream(Path.of(args[2]))) {
            if (args[0].equals("-c")) {
                try (SnappyFramedOutputStream sz = new SnappyFramedOutputStream(out)) {
                    in.transferTo(sz);
                }
            } else {
                try (SnappyFramedInputStream sz = new SnappyFramedInputStream(in, true)) {
                    sz.transferTo(out);
                }
            }
        }
    }
}
"#;

/// One input of the tests, also written to a file for the tools.
struct Sample {
    name: &'static str,
    data: Vec<u8>,
    path: PathBuf,
}

/// Text, a binary spreadsheet, and 2 MB of a large text: small enough to keep the tests
/// quick in a debug build, large enough for several blocks in every format.
fn samples(dir: &TempDir) -> Vec<Sample> {
    [
        ("alice29.txt", "canterbury/alice29.txt", usize::MAX),
        ("kennedy.xls", "canterbury/kennedy.xls", usize::MAX),
        ("dickens-2MB", "silesia/dickens", 2_000_000),
    ]
    .into_iter()
    .map(|(name, relative, limit)| {
        let data = corpus_file(relative, limit);
        let path = dir.path().join(name);
        std::fs::write(&path, &data).unwrap();
        Sample { name, data, path }
    })
    .collect()
}

/// Runs a reference tool and returns what it wrote to standard output; fails the test, with
/// the Debian package to install, when the tool is missing, and with its message when it
/// fails.
fn run(program: &str, package: &str, args: &[&str]) -> Vec<u8> {
    let output = run_tool(program, package, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("org.xerial.snappy") && stderr.contains("does not exist") {
        panic!(
            "snappy-java is missing ({SNAPPY_JAVA_JAR}); scripts/test installs it (Debian \
             package libsnappy-java)"
        );
    }
    assert_success(program, args, &output);
    output.stdout
}

/// Writes `bytes` next to the samples and returns the file's path.
fn write_temp(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Compresses `sample` with our codec `name` and these options.
fn ours(name: &str, sample: &Sample, options: &CompressOptions) -> Vec<u8> {
    compress(codec(name).unwrap(), &sample.data, options)
        .unwrap_or_else(|e| panic!("{name} compressing {}: {e}", sample.name))
        .0
}

/// Decompresses the tool's output with our codec `name`, checks the bytes, and checks that
/// detection picks `name` (or nothing, for formats without magic bytes).
fn read_back(name: &str, packed: &[u8], sample: &Sample, what: &str) {
    let codec = codec(name).unwrap();
    let (unpacked, _) =
        decompress(codec, packed, &DecompressOptions::default()).unwrap_or_else(|e| {
            panic!(
                "{what} on {}: our {name} decoder refused it: {e}",
                sample.name
            )
        });
    assert!(
        unpacked == sample.data,
        "{what} on {}: our {name} decoder gave {} bytes, not the original {}",
        sample.name,
        unpacked.len(),
        sample.data.len()
    );
    let detected = detect(packed).map(|c| c.name());
    let expected = codec.magic().map(|_| name);
    assert_eq!(detected, expected, "{what} on {}: detection", sample.name);
}

/// Checks that the tool gave back the original bytes.
fn assert_tool_read(unpacked: &[u8], sample: &Sample, what: &str) {
    assert!(
        unpacked == sample.data,
        "{what} on {}: the tool gave {} bytes, not the original {}",
        sample.name,
        unpacked.len(),
        sample.data.len()
    );
}

fn level(level: i32) -> CompressOptions {
    CompressOptions::level(level)
}

#[test]
fn zstd_command_reads_our_frames() {
    let dir = tempfile::tempdir().unwrap();
    for sample in samples(&dir) {
        let long = CompressOptions {
            long_distance: true,
            window_log: Some(27),
            ..level(3)
        };
        for (what, options, extra) in [
            ("default level", CompressOptions::default(), None),
            ("level 19", level(19), None),
            ("long distance, window 2^27", long, Some("--long=27")),
        ] {
            let packed = write_temp(&dir, "ours.zst", &ours("zstd", &sample, &options));
            let mut args = vec!["-d", "-c", "-q"];
            args.extend(extra);
            args.push(path_str(&packed));
            assert_tool_read(&run("zstd", "zstd", &args), &sample, what);
        }
    }
}

#[test]
fn we_read_the_zstd_commands_frames() {
    let dir = tempfile::tempdir().unwrap();
    for sample in samples(&dir) {
        for flags in [&["-3"][..], &["-19"], &["-3", "--long=27"]] {
            let mut args = vec!["-c", "-q"];
            args.extend(flags);
            args.push(path_str(&sample.path));
            let packed = run("zstd", "zstd", &args);
            read_back(
                "zstd",
                &packed,
                &sample,
                &format!("zstd {}", flags.join(" ")),
            );
        }
    }
}

#[test]
fn lz4_command_reads_our_frames() {
    let dir = tempfile::tempdir().unwrap();
    for sample in samples(&dir) {
        let no_checksum = CompressOptions {
            checksum: false,
            ..Default::default()
        };
        for (what, options) in [
            ("default", CompressOptions::default()),
            ("no checksum", no_checksum),
        ] {
            let packed = write_temp(&dir, "ours.lz4", &ours("lz4", &sample, &options));
            let unpacked = run("lz4", "lz4", &["-d", "-c", "-q", path_str(&packed)]);
            assert_tool_read(&unpacked, &sample, what);
        }
    }
}

#[test]
fn we_read_the_lz4_commands_frames() {
    let dir = tempfile::tempdir().unwrap();
    for sample in samples(&dir) {
        for flags in [&[][..], &["-9"], &["--content-size", "-B4"], &["-BD"]] {
            let mut args = vec!["-c", "-q"];
            args.extend(flags);
            args.push(path_str(&sample.path));
            let packed = run("lz4", "lz4", &args);
            read_back("lz4", &packed, &sample, &format!("lz4 {}", flags.join(" ")));
        }
    }
}

#[test]
fn gzip_command_reads_our_files() {
    let dir = tempfile::tempdir().unwrap();
    for sample in samples(&dir) {
        for level_used in [1, 6, 9] {
            let packed = write_temp(&dir, "ours.gz", &ours("gzip", &sample, &level(level_used)));
            let unpacked = run("gzip", "gzip", &["-d", "-c", path_str(&packed)]);
            assert_tool_read(&unpacked, &sample, &format!("level {level_used}"));
        }
    }
}

#[test]
fn we_read_the_gzip_commands_files() {
    let dir = tempfile::tempdir().unwrap();
    for sample in samples(&dir) {
        // Without -n, the header carries the file name and time: fields we must skip.
        for flags in [&["-6"][..], &["-1", "-n"], &["-9"]] {
            let mut args = vec!["-c"];
            args.extend(flags);
            args.push(path_str(&sample.path));
            let packed = run("gzip", "gzip", &args);
            read_back(
                "gzip",
                &packed,
                &sample,
                &format!("gzip {}", flags.join(" ")),
            );
        }
    }
}

#[test]
fn we_read_a_multi_member_file_from_the_gzip_command() {
    let dir = tempfile::tempdir().unwrap();
    let samples = samples(&dir);
    // `gzip -c a b` writes one member per file, one after the other.
    let packed = run(
        "gzip",
        "gzip",
        &["-c", path_str(&samples[0].path), path_str(&samples[1].path)],
    );
    let (unpacked, _) = decompress(
        codec("gzip").unwrap(),
        &packed,
        &DecompressOptions::default(),
    )
    .unwrap();
    assert!(unpacked == [samples[0].data.as_slice(), &samples[1].data].concat());
}

/// Python's `zlib` (the reference implementation) reading or writing raw deflate.
fn python_zlib(script: &str, input: &Path, output: &Path) {
    run(
        "python3",
        "python3",
        &["-c", script, path_str(input), path_str(output)],
    );
}

#[test]
fn zlib_reads_our_raw_deflate() {
    let dir = tempfile::tempdir().unwrap();
    let inflate = "import sys, zlib\n\
        data = open(sys.argv[1], 'rb').read()\n\
        d = zlib.decompressobj(-15)\n\
        out = d.decompress(data)\n\
        assert d.eof and not d.unused_data, 'stream incomplete or followed by data'\n\
        open(sys.argv[2], 'wb').write(out)";
    for sample in samples(&dir) {
        for level_used in [1, 6, 9] {
            let packed = write_temp(
                &dir,
                "ours.deflate",
                &ours("deflate", &sample, &level(level_used)),
            );
            let out = dir.path().join("zlib.out");
            python_zlib(inflate, &packed, &out);
            assert_tool_read(
                &std::fs::read(&out).unwrap(),
                &sample,
                &format!("level {level_used}"),
            );
        }
    }
}

#[test]
fn we_read_zlibs_raw_deflate() {
    let dir = tempfile::tempdir().unwrap();
    let deflate = "import sys, zlib\n\
        c = zlib.compressobj(6, zlib.DEFLATED, -15)\n\
        out = c.compress(open(sys.argv[1], 'rb').read()) + c.flush()\n\
        open(sys.argv[2], 'wb').write(out)";
    for sample in samples(&dir) {
        let out = dir.path().join("zlib.deflate");
        python_zlib(deflate, &sample.path, &out);
        read_back(
            "deflate",
            &std::fs::read(&out).unwrap(),
            &sample,
            "zlib level 6",
        );
    }
}

#[test]
fn brotli_command_reads_our_streams() {
    let dir = tempfile::tempdir().unwrap();
    for sample in samples(&dir) {
        // Quality 11 (the default) is slow in a debug build: the smallest file only. Qualities
        // 1, 5 and 9 use the encoder's other three strategies (fast path, hash chains, H9).
        let mut qualities = vec![1, 5, 9];
        if sample.data.len() < 200_000 {
            qualities.push(11);
        }
        for quality in qualities {
            let packed = write_temp(&dir, "ours.br", &ours("brotli", &sample, &level(quality)));
            let unpacked = run("brotli", "brotli", &["-d", "-c", path_str(&packed)]);
            assert_tool_read(&unpacked, &sample, &format!("quality {quality}"));
        }
    }
}

#[test]
fn our_default_brotli_output_is_the_size_of_the_commands() {
    // Same default quality (11) and window rule as `brotli` 1.0.9: sizes agree within 1 %
    // (the two encoders are not byte-identical). The smallest file, for speed.
    let dir = tempfile::tempdir().unwrap();
    let sample = &samples(&dir)[0];
    let ours = ours("brotli", sample, &CompressOptions::default()).len() as f64;
    let theirs = run("brotli", "brotli", &["-c", path_str(&sample.path)]).len() as f64;
    assert!(
        (ours / theirs - 1.0).abs() < 0.01,
        "ours {ours} bytes, the command's {theirs}"
    );
}

#[test]
fn we_read_the_brotli_commands_streams() {
    let dir = tempfile::tempdir().unwrap();
    for sample in samples(&dir) {
        // The default (quality 11, window fitted to the file), a fast one, and a small window.
        for flags in [&[][..], &["-q", "1"], &["-q", "5", "-w", "16"]] {
            let mut args = vec!["-c"];
            args.extend(flags);
            args.push(path_str(&sample.path));
            let packed = run("brotli", "brotli", &args);
            read_back(
                "brotli",
                &packed,
                &sample,
                &format!("brotli {}", flags.join(" ")),
            );
        }
    }
}

/// Runs snappy-java's framing streams (`-c` or `-d`) from `input` to `output`.
fn snappy_java(dir: &TempDir, mode: &str, input: &Path, output: &Path) {
    let program = write_temp(dir, "SnappyFramed.java", SNAPPY_FRAMED_JAVA.as_bytes());
    run(
        "java",
        "default-jre-headless",
        &[
            "-cp",
            SNAPPY_JAVA_JAR,
            path_str(&program),
            mode,
            path_str(input),
            path_str(output),
        ],
    );
}

#[test]
fn snappy_java_reads_our_framed_streams() {
    let dir = tempfile::tempdir().unwrap();
    for sample in samples(&dir) {
        let packed = write_temp(
            &dir,
            "ours.sz",
            &ours("snappy", &sample, &CompressOptions::default()),
        );
        let out = dir.path().join("snappy.out");
        snappy_java(&dir, "-d", &packed, &out);
        assert_tool_read(&std::fs::read(&out).unwrap(), &sample, "snappy-java -d");
    }
}

#[test]
fn we_read_snappy_javas_framed_streams() {
    let dir = tempfile::tempdir().unwrap();
    for sample in samples(&dir) {
        let out = dir.path().join("theirs.sz");
        snappy_java(&dir, "-c", &sample.path, &out);
        read_back(
            "snappy",
            &std::fs::read(&out).unwrap(),
            &sample,
            "snappy-java -c",
        );
    }
}
