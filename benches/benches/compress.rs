//! Each codec through Kernelize beside the raw crate call at the same settings, on the
//! shared corpus, compress and decompress; plus the LZ4 C library beside lz4_flex, which is
//! how the LZ4 backend was chosen.
//!
//! `cargo bench -p kernelize-benches --bench compress` (corpus: `KERNELIZE_CORPUS`, default
//! `/var/tmp/kernelize-corpus`; `../shared/corpus/unpack DIR` fills it).

// Benchmarks run on fixed, known-good data: a failure there is a bug to see at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kernelize::compress::{self, CompressOptions, DecompressOptions};

fn corpus_file(relative: &str) -> Vec<u8> {
    let dir = std::env::var_os("KERNELIZE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/kernelize-corpus"));
    let path = dir.join(relative);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run ../shared/corpus/unpack {}",
            path.display(),
            dir.display()
        )
    })
}

/// (corpus file, label): English text, XML, an executable.
const FILES: [(&str, &str); 3] = [
    ("silesia/dickens", "dickens"),
    ("silesia/xml", "xml"),
    ("silesia/ooffice", "ooffice"),
];

/// The raw crate call each codec wraps, at the settings Kernelize uses by default (content
/// checksums on).
fn raw_compress(codec: &str, level: i32, data: &[u8]) -> Vec<u8> {
    match codec {
        "zstd" => {
            let mut c = zstd::bulk::Compressor::new(level).unwrap();
            c.include_checksum(true).unwrap();
            c.compress(data).unwrap()
        }
        "lz4" => {
            // The frame Kernelize writes: the `lz4` command's defaults (4 MiB independent
            // blocks, content checksum) plus the content size.
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max4MB)
                .block_mode(lz4_flex::frame::BlockMode::Independent)
                .content_checksum(true)
                .content_size(Some(data.len() as u64));
            let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "snappy" => {
            let mut e = snap::write::FrameEncoder::new(Vec::new());
            e.write_all(data).unwrap();
            e.into_inner().unwrap()
        }
        "brotli" => {
            let mut out = Vec::new();
            // The window Kernelize (and the `brotli` command) picks: the smallest holding
            // the input, at most 24; and the size hint.
            let lgwin = (10..24)
                .find(|w| (1u64 << w) - 16 >= data.len() as u64)
                .unwrap_or(24);
            let params = brotli::enc::BrotliEncoderParams {
                quality: level,
                lgwin,
                size_hint: data.len(),
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
            out
        }
        "gzip" => {
            let mut e =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level as u32));
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        other => panic!("no raw call for {other}"),
    }
}

fn raw_decompress(codec: &str, data: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    match codec {
        "zstd" => zstd::stream::read::Decoder::new(data)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap(),
        "lz4" => lz4_flex::frame::FrameDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap(),
        "snappy" => snap::read::FrameDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap(),
        "brotli" => brotli::Decompressor::new(data, 4096)
            .read_to_end(&mut out)
            .unwrap(),
        "gzip" => flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap(),
        other => panic!("no raw call for {other}"),
    };
    out
}

/// Representative levels per codec.
const CASES: [(&str, i32); 10] = [
    ("zstd", 1),
    ("zstd", 3),
    ("zstd", 9),
    ("zstd", 19),
    ("lz4", 0),
    ("snappy", 0),
    ("brotli", 5),
    ("brotli", 9),
    ("gzip", 1),
    ("gzip", 6),
];

fn codecs(c: &mut Criterion) {
    for (file, label) in FILES {
        let data = corpus_file(file);
        for (name, level) in CASES {
            let codec = compress::codec(name).unwrap();
            let options = CompressOptions {
                level: Some(level),
                threads: Some(0),
                ..Default::default()
            };
            let mut group = c.benchmark_group(format!("{name}-{level}/{label}"));
            group.throughput(Throughput::Bytes(data.len() as u64));
            group.sample_size(10);
            group.bench_function("compress/kernelize", |b| {
                b.iter(|| compress::compress(codec, black_box(&data), &options).unwrap())
            });
            group.bench_function("compress/raw", |b| {
                b.iter(|| raw_compress(name, level, black_box(&data)))
            });
            let packed = raw_compress(name, level, &data);
            group.bench_function("decompress/kernelize", |b| {
                b.iter(|| {
                    compress::decompress(codec, black_box(&packed), &DecompressOptions::default())
                        .unwrap()
                })
            });
            group.bench_function("decompress/raw", |b| {
                b.iter(|| raw_decompress(name, black_box(&packed), data.len()))
            });
            group.finish();
        }
    }
}

/// lz4_flex (pure Rust, used by Kernelize) beside the LZ4 C library (`lz4` crate), frame
/// format, default settings, on the same files.
fn lz4_backends(c: &mut Criterion) {
    for (file, label) in FILES {
        let data = corpus_file(file);
        let mut group = c.benchmark_group(format!("lz4-backend/{label}"));
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.sample_size(10);
        group.bench_function(BenchmarkId::new("compress", "lz4_flex"), |b| {
            b.iter(|| raw_compress("lz4", 0, black_box(&data)))
        });
        group.bench_function(BenchmarkId::new("compress", "lz4-c"), |b| {
            b.iter(|| {
                let mut e = lz4::EncoderBuilder::new()
                    .level(0)
                    .build(Vec::new())
                    .unwrap();
                e.write_all(black_box(&data)).unwrap();
                let (out, r) = e.finish();
                r.unwrap();
                out
            })
        });
        let packed = raw_compress("lz4", 0, &data);
        group.bench_function(BenchmarkId::new("decompress", "lz4_flex"), |b| {
            b.iter(|| raw_decompress("lz4", black_box(&packed), data.len()))
        });
        group.bench_function(BenchmarkId::new("decompress", "lz4-c"), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(data.len());
                lz4::Decoder::new(black_box(&packed[..]))
                    .unwrap()
                    .read_to_end(&mut out)
                    .unwrap();
                out
            })
        });
        group.finish();
    }
}

criterion_group!(benches, codecs, lz4_backends);
criterion_main!(benches);
