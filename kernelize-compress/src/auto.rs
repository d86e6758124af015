//! Choosing a codec automatically: sample the input, try each candidate on the sample, pick
//! by a stated goal, and say why.
//!
//! The estimate runs on a bounded sample (at most [`SAMPLE_BYTES`], taken from the start,
//! middle and end of a buffer, or the start of a stream), never the whole input. Each
//! candidate `(codec, level)` compresses the sample once; its ratio and throughput there
//! stand for the whole input. The goals:
//!
//! - `speed`: the least time to compress and move the data over a 1 GB/s link;
//! - `balanced`: the same over a 100 MB/s link (about 1 Gbit/s), where size starts to count;
//! - `ratio`: the smallest output among candidates that compress at 2 MB/s or more.
//!
//! Data that does not compress — already-compressed media, encrypted or random bytes — is
//! recognized when even the fastest candidate saves less than 3% on the sample, and is
//! stored with `none` instead of spending effort on it.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use kernelize_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::codec::{Codec, CompressOptions};

/// Most bytes sampled for the estimate.
pub const SAMPLE_BYTES: usize = 256 * 1024;

/// Below this saving on the sample, data counts as incompressible.
const INCOMPRESSIBLE_SAVING: f64 = 0.03;

/// What the automatic choice optimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// Least time to compress and move over a fast (1 GB/s) link.
    Speed,
    /// Least time to compress and move over a 100 MB/s link.
    #[default]
    Balanced,
    /// Smallest output at a throughput of at least 2 MB/s.
    Ratio,
}

impl FromStr for Goal {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "speed" => Ok(Goal::Speed),
            "balanced" => Ok(Goal::Balanced),
            "ratio" => Ok(Goal::Ratio),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("unknown goal `{other}`; goals: speed, balanced, ratio"),
            )),
        }
    }
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Goal::Speed => "speed",
            Goal::Balanced => "balanced",
            Goal::Ratio => "ratio",
        })
    }
}

/// How one candidate did on the sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Codec name.
    pub codec: String,
    /// Level tried.
    pub level: i32,
    /// Sample size over compressed sample size.
    pub ratio: f64,
    /// Uncompressed MB/s on the sample.
    pub throughput_mb_s: f64,
}

/// The outcome of an automatic choice.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The codec chosen.
    pub codec: &'static dyn Codec,
    /// The level chosen.
    pub level: i32,
    /// One sentence on why, for statistics and logs.
    pub reason: String,
    /// Every candidate's estimate.
    pub estimates: Vec<Estimate>,
}

/// The candidates tried: each enabled codec at the levels that represent it.
fn candidates() -> Vec<(&'static dyn Codec, i32)> {
    let mut out = Vec::new();
    for codec in crate::codecs() {
        let levels: &[i32] = match codec.name() {
            "zstd" => &[1, 3, 9, 19],
            "brotli" => &[5, 9],
            "gzip" => &[6],
            "lz4" | "snappy" => &[0],
            // `none` is the fallback, and deflate is gzip without the header.
            _ => &[],
        };
        out.extend(levels.iter().map(|l| (codec, *l)));
    }
    out
}

/// At most [`SAMPLE_BYTES`] of `data`: all of it when small, else three slices from the
/// start, the middle and the end.
pub fn sample(data: &[u8]) -> Vec<u8> {
    if data.len() <= SAMPLE_BYTES {
        return data.to_vec();
    }
    let part = SAMPLE_BYTES / 3;
    let mid = data.len() / 2 - part / 2;
    let mut out = Vec::with_capacity(part * 3);
    out.extend_from_slice(&data[..part]);
    out.extend_from_slice(&data[mid..mid + part]);
    out.extend_from_slice(&data[data.len() - part..]);
    out
}

/// Chooses a codec and level for data like `sample` (see [`sample`]) under `goal`.
pub fn choose(sample: &[u8], goal: Goal) -> Result<Choice> {
    let none = crate::codec("none")?;
    if sample.is_empty() {
        return Ok(Choice {
            codec: none,
            level: 0,
            reason: "no data to sample; stored".into(),
            estimates: Vec::new(),
        });
    }
    let mut estimates = Vec::new();
    let mut tried: Vec<(&'static dyn Codec, i32, Estimate)> = Vec::new();
    for (codec, level) in candidates() {
        let options = CompressOptions {
            level: Some(level),
            size_hint: Some(sample.len() as u64),
            threads: Some(0),
            ..Default::default()
        };
        let started = Instant::now();
        let packed = codec.compress(sample, &options)?;
        let secs = started
            .elapsed()
            .max(Duration::from_micros(1))
            .as_secs_f64();
        let estimate = Estimate {
            codec: codec.name().to_string(),
            level,
            ratio: sample.len() as f64 / packed.len().max(1) as f64,
            throughput_mb_s: sample.len() as f64 / 1e6 / secs,
        };
        estimates.push(estimate.clone());
        tried.push((codec, level, estimate));
    }
    let best_saving = tried
        .iter()
        .map(|(_, _, e)| 1.0 - 1.0 / e.ratio)
        .fold(f64::MIN, f64::max);
    if tried.is_empty() || best_saving < INCOMPRESSIBLE_SAVING {
        return Ok(Choice {
            codec: none,
            level: 0,
            reason: format!(
                "incompressible: the best candidate saved {:.1}% on a {}-byte sample; stored",
                best_saving.max(0.0) * 100.0,
                sample.len()
            ),
            estimates,
        });
    }
    let pick = match goal {
        Goal::Speed => by_transfer_time(&tried, 1000.0),
        Goal::Balanced => by_transfer_time(&tried, 100.0),
        Goal::Ratio => tried
            .iter()
            .filter(|(_, _, e)| e.throughput_mb_s >= 2.0)
            .max_by(|a, b| a.2.ratio.total_cmp(&b.2.ratio))
            .or_else(|| tried.iter().max_by(|a, b| a.2.ratio.total_cmp(&b.2.ratio))),
    };
    let Some((codec, level, e)) = pick else {
        return Err(Error::new(
            ErrorKind::Unexpected,
            "no codec could be estimated",
        ));
    };
    let reason = format!(
        "{goal}: {} level {} compressed a {}-byte sample {:.2}x at {:.0} MB/s (best of {} candidates)",
        codec.name(),
        level,
        sample.len(),
        e.ratio,
        e.throughput_mb_s,
        tried.len()
    );
    Ok(Choice {
        codec: *codec,
        level: *level,
        reason,
        estimates,
    })
}

/// The candidate with the least time to compress a megabyte and send the result over a link
/// of `link_mb_s`.
fn by_transfer_time<'a>(
    tried: &'a [(&'static dyn Codec, i32, Estimate)],
    link_mb_s: f64,
) -> Option<&'a (&'static dyn Codec, i32, Estimate)> {
    let cost = |e: &Estimate| 1.0 / e.throughput_mb_s + 1.0 / (e.ratio * link_mb_s);
    tried
        .iter()
        .min_by(|a, b| cost(&a.2).total_cmp(&cost(&b.2)))
}
