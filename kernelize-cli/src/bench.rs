//! `kernelize bench compress`: ratio, throughput and peak memory of codecs on a corpus.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kernelize::compress::{self, Codec, CompressOptions, DecompressOptions};
use kernelize::{Error, ErrorKind, Result};
use serde::Serialize;

use crate::output::{emit, print_table};

/// Arguments of `kernelize bench compress`.
#[derive(Debug, Args)]
pub(crate) struct BenchCompressArgs {
    /// Corpus directory (every file below it) or one file; default `$KERNELIZE_CORPUS` or
    /// `/var/tmp/kernelize-corpus`.
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// Codecs to measure, comma-separated (default: zstd,lz4,snappy,brotli,gzip).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "zstd,lz4,snappy,brotli,gzip"
    )]
    codecs: Vec<String>,
    /// Levels, comma-separated; each codec runs those it accepts (default: its default).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    levels: Vec<i32>,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// One file, codec and level, measured.
#[derive(Debug, Serialize)]
struct Measurement {
    file: String,
    codec: String,
    level: i32,
    input_bytes: u64,
    output_bytes: u64,
    ratio: f64,
    compress_mb_s: f64,
    decompress_mb_s: f64,
    /// Peak resident memory during the measurement, above what the process held before it
    /// (Linux: VmHWM after resetting it); `None` where the platform does not tell.
    peak_memory_bytes: Option<u64>,
    memory_estimate_bytes: u64,
}

pub(crate) fn bench_compress(args: BenchCompressArgs) -> Result<()> {
    let corpus = args
        .corpus
        .clone()
        .or_else(|| std::env::var_os("KERNELIZE_CORPUS").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/tmp/kernelize-corpus"));
    let mut files = Vec::new();
    if corpus.is_file() {
        files.push(corpus.clone());
    } else {
        collect_files(&corpus, &mut files)?;
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "no files under {}; unpack the corpus with ../shared/corpus/unpack {}",
                corpus.display(),
                corpus.display()
            ),
        ));
    }
    let codecs: Vec<&'static dyn Codec> = args
        .codecs
        .iter()
        .map(|c| compress::codec(c))
        .collect::<Result<_>>()?;
    let runs = args.runs.max(1);
    let mut plan: Vec<(&'static dyn Codec, i32)> = Vec::new();
    for codec in &codecs {
        let range = codec.levels();
        let levels: Vec<i32> = if args.levels.is_empty() {
            vec![range.default]
        } else {
            args.levels
                .iter()
                .copied()
                .filter(|l| range.contains(*l))
                .collect()
        };
        plan.extend(levels.into_iter().map(|l| (*codec, l)));
    }

    let progress = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::new((files.len() * plan.len()) as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut results = Vec::new();
    for file in &files {
        let data =
            std::fs::read(file).map_err(|e| Error::from(e).with_context("file", file.display()))?;
        let name = match file.strip_prefix(&corpus) {
            Ok(rest) if !rest.as_os_str().is_empty() => rest.display().to_string(),
            _ => file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        for (codec, level) in &plan {
            progress.set_message(format!("{name} {} {level}", codec.name()));
            results.push(measure(&name, &data, *codec, *level, runs)?);
            progress.inc(1);
        }
    }
    progress.finish_and_clear();

    if args.json {
        return emit(format!("{}\n", serde_json::to_string_pretty(&results)?).as_bytes());
    }
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|m| {
            vec![
                m.file.clone(),
                m.codec.clone(),
                m.level.to_string(),
                m.input_bytes.to_string(),
                m.output_bytes.to_string(),
                format!("{:.3}", m.ratio),
                format!("{:.1}", m.compress_mb_s),
                format!("{:.1}", m.decompress_mb_s),
                m.peak_memory_bytes
                    .map(|b| format!("{:.1}", b as f64 / (1 << 20) as f64))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_table(
        &[
            "FILE",
            "CODEC",
            "LEVEL",
            "BYTES",
            "COMPRESSED",
            "RATIO",
            "COMP MB/s",
            "DECOMP MB/s",
            "PEAK MiB",
        ],
        &rows,
    )
}

fn measure(
    name: &str,
    data: &[u8],
    codec: &'static dyn Codec,
    level: i32,
    runs: usize,
) -> Result<Measurement> {
    // Single-threaded, as the reference tools' benchmark modes run by default.
    let options = CompressOptions {
        level: Some(level),
        threads: Some(0),
        ..Default::default()
    };
    let baseline = reset_peak_memory();
    let mut compress_secs = Vec::with_capacity(runs);
    let mut packed = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        packed = compress::compress(codec, data, &options)?.0;
        compress_secs.push(started.elapsed().as_secs_f64());
    }
    let mut decompress_secs = Vec::with_capacity(runs);
    let limit = DecompressOptions::max_output(data.len() as u64);
    for _ in 0..runs {
        let started = Instant::now();
        let (out, _) = compress::decompress(codec, &packed, &limit)?;
        decompress_secs.push(started.elapsed().as_secs_f64());
        if out.len() != data.len() {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("{} round trip of {name} changed its size", codec.name()),
            ));
        }
    }
    let peak = match (baseline, peak_memory()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let mb = data.len() as f64 / 1e6;
    Ok(Measurement {
        file: name.to_string(),
        codec: codec.name().to_string(),
        level,
        input_bytes: data.len() as u64,
        output_bytes: packed.len() as u64,
        ratio: data.len() as f64 / packed.len().max(1) as f64,
        compress_mb_s: mb / median(&mut compress_secs).max(1e-9),
        decompress_mb_s: mb / median(&mut decompress_secs).max(1e-9),
        peak_memory_bytes: peak,
        memory_estimate_bytes: codec.memory_estimate(&options),
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::from(e).with_context("corpus", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// Resets the kernel's peak-RSS mark for this process (Linux `clear_refs` 5) and returns
/// the current RSS, the baseline for the next peak.
fn reset_peak_memory() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// The peak RSS since the last reset, in bytes.
fn peak_memory() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
