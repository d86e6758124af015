//! `kernelize compress` and `kernelize decompress`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use kernelize::compress::auto::SAMPLE_BYTES;
use kernelize::compress::{
    self, Codec, CompressOptions, CompressionStats, DEFAULT_MAX_OUTPUT, DecompressOptions, Goal,
};
use kernelize::{Error, ErrorKind, Result};

/// Arguments of `kernelize compress`.
#[derive(Debug, Args)]
pub(crate) struct CompressArgs {
    /// Codec: zstd (default), lz4, snappy, brotli, gzip, deflate, none, or auto (sample the
    /// input and choose by --goal); for images (PNG, JPEG, BMP, TIFF, WebP or AVIF input):
    /// png, jpeg, webp (lossy), webp-lossless, avif.
    #[arg(long, default_value = "zstd")]
    codec: String,
    /// What `--codec auto` optimizes: speed, balanced or ratio.
    #[arg(long, default_value = "balanced")]
    goal: String,
    /// Train a zstd dictionary from the files in this directory instead of compressing;
    /// write it to `-o`.
    #[arg(long, value_name = "DIR", requires = "out")]
    train_dict: Option<PathBuf>,
    /// Most bytes of the trained dictionary.
    #[arg(long, value_name = "BYTES", default_value_t = 112_640)]
    dict_size: usize,
    /// Where `--train-dict` writes the dictionary.
    #[arg(short = 'o', value_name = "DICT")]
    out: Option<PathBuf>,
    /// Image quality, 1 to 100 (jpeg: default 85, webp: 75, avif: 80).
    #[arg(long)]
    quality: Option<u8>,
    /// AVIF encoder speed, 1 (slowest, smallest) to 10 (fastest); default 6.
    #[arg(long)]
    speed: Option<u8>,
    /// Largest image accepted, in pixels (width x height); larger ones are refused before
    /// decoding.
    #[arg(long, value_name = "PIXELS")]
    max_pixels: Option<u64>,
    /// Compression level (brotli: quality); default: the codec's default.
    #[arg(long, allow_negative_numbers = true)]
    level: Option<i32>,
    /// zstd long-distance matching.
    #[arg(long)]
    long: bool,
    /// Window size as a power of two (zstd windowLog, brotli lgwin).
    #[arg(long, value_name = "LOG")]
    window_log: Option<u32>,
    /// Worker threads (zstd); default: all cores above 4 MiB of input, else one.
    #[arg(long)]
    threads: Option<u32>,
    /// Leave out the content checksum (zstd, lz4).
    #[arg(long)]
    no_checksum: bool,
    /// A zstd dictionary to compress with.
    #[arg(long, value_name = "FILE")]
    dict: Option<PathBuf>,
    #[command(flatten)]
    report: ReportFlags,
    /// Input file, or `-` for stdin.
    #[arg(required_unless_present = "train_dict")]
    input: Option<String>,
    /// Output file, or `-` for stdout.
    #[arg(required_unless_present = "train_dict")]
    output: Option<String>,
}

/// How `compress` and `decompress` report what they did.
#[derive(Debug, Args)]
pub(crate) struct ReportFlags {
    /// Print statistics on stderr when done.
    #[arg(long)]
    stats: bool,
    /// Print the statistics on stderr as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `kernelize decompress`.
#[derive(Debug, Args)]
pub(crate) struct DecompressArgs {
    /// Codec; default: recognized from the input's first bytes (zstd, lz4, snappy, gzip).
    /// `image` (or an image codec's name) decodes an image of any readable format to PNG.
    #[arg(long)]
    codec: Option<String>,
    /// Largest image accepted, in pixels (width x height), with `--codec image`.
    #[arg(long, value_name = "PIXELS")]
    max_pixels: Option<u64>,
    /// Most bytes the output may have (default 1 GiB).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_OUTPUT)]
    max_output: u64,
    /// The zstd dictionary the data was compressed with.
    #[arg(long, value_name = "FILE")]
    dict: Option<PathBuf>,
    #[command(flatten)]
    report: ReportFlags,
    /// Input file, or `-` for stdin.
    input: String,
    /// Output file, or `-` for stdout.
    output: String,
}

pub(crate) fn compress(args: CompressArgs) -> Result<()> {
    if let Some(dir) = &args.train_dict {
        return train(dir, args.dict_size, args.out.as_deref());
    }
    let (Some(input), Some(output)) = (args.input.as_deref(), args.output.as_deref()) else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "compress needs an input and an output",
        ));
    };
    #[cfg(feature = "images")]
    if let Some(format) = image_format(&args.codec) {
        return compress_image(&args, format, input, output);
    }
    if args.quality.is_some() || args.speed.is_some() || args.max_pixels.is_some() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--quality, --speed and --max-pixels are for image codecs (png, jpeg, webp, \
             webp-lossless, avif); use --level for the others",
        ));
    }
    let mut options = CompressOptions {
        level: args.level,
        checksum: !args.no_checksum,
        long_distance: args.long,
        window_log: args.window_log,
        threads: args.threads,
        size_hint: input_size(input),
        dictionary: read_dictionary(args.dict.as_deref())?,
        ..Default::default()
    };
    let (mut reader, codec, choice): (Box<dyn Read>, &'static dyn Codec, _) =
        if args.codec == "auto" {
            let goal: Goal = args.goal.parse()?;
            let (sample, reader) = sample_input(input)?;
            let chosen = compress::auto::choose(&sample, goal)?;
            if args.level.is_none() {
                options.level = Some(chosen.level);
            }
            (reader, chosen.codec, Some(chosen.reason))
        } else {
            (open_input(input)?, compress::codec(&args.codec)?, None)
        };
    let mut stats = with_output(input, output, |output| {
        compress::compress_stream(codec, &mut reader, output, &options)
    })?;
    stats.choice = choice;
    report(&stats, &args.report)
}

#[cfg(feature = "images")]
fn image_format(codec: &str) -> Option<compress::image::ImageFormat> {
    compress::image::ImageFormat::from_name(codec)
}

/// Reads a whole image input, up to [`MAX_IMAGE_INPUT`] bytes.
#[cfg(feature = "images")]
fn read_image_input(input: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    open_input(input)?
        .take(MAX_IMAGE_INPUT + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::from(e).with_context("input", input))?;
    if data.len() as u64 > MAX_IMAGE_INPUT {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("the image input is larger than {MAX_IMAGE_INPUT} bytes"),
        ));
    }
    Ok(data)
}

/// Images are decoded whole, so their input is read into memory, up to this many bytes.
#[cfg(feature = "images")]
const MAX_IMAGE_INPUT: u64 = 1 << 30;

/// `compress --codec png|jpeg|webp|webp-lossless|avif`: re-encodes an image and reports its quality figures.
#[cfg(feature = "images")]
fn compress_image(
    args: &CompressArgs,
    format: compress::image::ImageFormat,
    input: &str,
    output: &str,
) -> Result<()> {
    let data = read_image_input(input)?;
    let mut options = compress::image::ImageOptions {
        quality: args.quality,
        speed: args.speed,
        ..Default::default()
    };
    if let Some(max) = args.max_pixels {
        options.max_pixels = max;
    }
    let (encoded, stats) = compress::image::encode(&data, format, &options)?;
    with_output(input, output, |out| {
        out.write_all(&encoded)
            .map_err(|e| Error::from(e).with_context("output", output))?;
        Ok(())
    })?;
    if args.report.json {
        eprintln!("{}", serde_json::to_string(&stats)?);
    } else if args.report.stats {
        eprintln!(
            "{}{} {}x{}: {} -> {} bytes, {:.3} bits per pixel, PSNR {}, SSIM {:.4}, \
             encode {:.3} s, decode {:.3} s, {:.3} s in all",
            format.name(),
            stats.quality.map(|q| format!(" q{q}")).unwrap_or_default(),
            stats.width,
            stats.height,
            stats.input_bytes,
            stats.output_bytes,
            stats.bits_per_pixel,
            stats
                .psnr_db
                .map(|p| format!("{p:.2} dB"))
                .unwrap_or_else(|| "infinite (identical)".into()),
            stats.ssim,
            stats.encode_time.as_secs_f64(),
            stats.decode_time.as_secs_f64(),
            stats.wall_time.as_secs_f64(),
        );
    }
    Ok(())
}

/// The sample `--codec auto` estimates from, and the reader to compress from afterwards:
/// slices of a file (which is then read again from the start), or the head of stdin
/// (which is then replayed before the rest).
fn sample_input(input: &str) -> Result<(Vec<u8>, Box<dyn Read>)> {
    if input == "-" {
        let mut reader = open_input(input)?;
        let mut head = Vec::with_capacity(SAMPLE_BYTES);
        (&mut reader)
            .take(SAMPLE_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| Error::from(e).with_context("input", "stdin"))?;
        let replay: Box<dyn Read> = Box::new(std::io::Cursor::new(head.clone()).chain(reader));
        return Ok((head, replay));
    }
    let mut file = File::open(input).map_err(|e| Error::from(e).with_context("input", input))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let sample = if len as usize <= SAMPLE_BYTES {
        let mut all = Vec::new();
        file.read_to_end(&mut all)?;
        all
    } else {
        let part = (SAMPLE_BYTES / 3) as u64;
        let mut out = Vec::with_capacity(SAMPLE_BYTES);
        for start in [0, len / 2 - part / 2, len - part] {
            file.seek(SeekFrom::Start(start))?;
            (&mut file).take(part).read_to_end(&mut out)?;
        }
        out
    };
    file.seek(SeekFrom::Start(0))?;
    Ok((sample, Box::new(file)))
}

/// `--train-dict`: a zstd dictionary from every file in `dir`.
fn train(dir: &Path, size: usize, out: Option<&Path>) -> Result<()> {
    let Some(out) = out else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--train-dict needs -o DICT",
        ));
    };
    let mut samples = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::from(e).with_context("directory", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_file() {
            samples.push(
                std::fs::read(&path)
                    .map_err(|e| Error::from(e).with_context("sample", path.display()))?,
            );
        }
    }
    let dictionary = compress::codecs::zstd::train_dictionary(&samples, size)?;
    std::fs::write(out, &dictionary)
        .map_err(|e| Error::from(e).with_context("output", out.display()))?;
    eprintln!(
        "trained a {}-byte dictionary from {} samples into {}",
        dictionary.len(),
        samples.len(),
        out.display()
    );
    Ok(())
}

pub(crate) fn decompress(args: DecompressArgs) -> Result<()> {
    #[cfg(feature = "images")]
    if let Some(codec) = args.codec.as_deref()
        && (codec == "image" || image_format(codec).is_some())
    {
        return decompress_image(&args);
    }
    if args.max_pixels.is_some() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--max-pixels is for `--codec image`",
        ));
    }
    let options = DecompressOptions {
        max_output: args.max_output,
        dictionary: read_dictionary(args.dict.as_deref())?,
    };
    let named = args.codec.as_deref().map(compress::codec).transpose()?;
    let mut input = BufReader::with_capacity(128 * 1024, open_input(&args.input)?);
    let codec: &'static dyn Codec = match named {
        Some(c) => c,
        None => {
            let prefix = std::io::BufRead::fill_buf(&mut input)
                .map_err(|e| Error::from(e).with_context("input", &args.input))?;
            compress::detect_or_explain(prefix)?
        }
    };
    let stats = with_output(&args.input, &args.output, |output| {
        compress::decompress_stream(codec, &mut input, output, &options)
    })?;
    report(&stats, &args.report)
}

/// `decompress --codec image`: decodes an image of any readable format to PNG.
#[cfg(feature = "images")]
fn decompress_image(args: &DecompressArgs) -> Result<()> {
    use compress::image::{ImageFormat, ImageOptions};
    let data = read_image_input(&args.input)?;
    let mut options = ImageOptions::default();
    if let Some(max) = args.max_pixels {
        options.max_pixels = max;
    }
    let start = std::time::Instant::now();
    let img = compress::image::decode(&data, &options)?;
    let png = compress::image::encode_pixels(&img, ImageFormat::Png, &options)?;
    if png.len() as u64 > args.max_output {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "the decoded image ({} bytes as PNG) passes --max-output {}",
                png.len(),
                args.max_output
            ),
        ));
    }
    with_output(&args.input, &args.output, |out| {
        out.write_all(&png)
            .map_err(|e| Error::from(e).with_context("output", &args.output))?;
        Ok(())
    })?;
    let summary = serde_json::json!({
        "width": img.width(),
        "height": img.height(),
        "input_bytes": data.len(),
        "output_bytes": png.len(),
        "wall_time": start.elapsed().as_secs_f64(),
    });
    if args.report.json {
        eprintln!("{summary}");
    } else if args.report.stats {
        eprintln!(
            "image {}x{}: {} -> {} bytes of PNG, {:.3} s",
            img.width(),
            img.height(),
            data.len(),
            png.len(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn open_input(input: &str) -> Result<Box<dyn Read>> {
    if input == "-" {
        Ok(Box::new(std::io::stdin().lock()))
    } else {
        let file = File::open(input).map_err(|e| Error::from(e).with_context("input", input))?;
        Ok(Box::new(file))
    }
}

fn input_size(input: &str) -> Option<u64> {
    (input != "-")
        .then(|| std::fs::metadata(input).ok().map(|m| m.len()))
        .flatten()
}

fn read_dictionary(path: Option<&Path>) -> Result<Option<Arc<Vec<u8>>>> {
    path.map(|p| {
        std::fs::read(p)
            .map(Arc::new)
            .map_err(|e| Error::from(e).with_context("dictionary", p.display()))
    })
    .transpose()
}

/// Runs `work` writing to the output. A file output is written beside its final name and
/// renamed into place only on success, so a failure never leaves a half-written file.
fn with_output<T>(
    input: &str,
    output: &str,
    work: impl FnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    if output == "-" {
        let stdout = std::io::stdout();
        let mut writer = BufWriter::with_capacity(128 * 1024, stdout.lock());
        let stats = work(&mut writer)?;
        writer
            .flush()
            .map_err(|e| Error::from(e).with_context("output", "stdout"))?;
        return Ok(stats);
    }
    let target = Path::new(output);
    if input != "-" && same_file(Path::new(input), target) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("the input and the output are the same file: {output}"),
        ));
    }
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let temp = dir.join(format!(".{name}.kernelize-partial-{}", std::process::id()));
    let result = (|| {
        let file =
            File::create(&temp).map_err(|e| Error::from(e).with_context("output", output))?;
        let mut writer = BufWriter::with_capacity(128 * 1024, file);
        let stats = work(&mut writer)?;
        let file = writer
            .into_inner()
            .map_err(|e| Error::from(e.into_error()).with_context("output", output))?;
        file.sync_all()
            .map_err(|e| Error::from(e).with_context("output", output))?;
        std::fs::rename(&temp, target)
            .map_err(|e| Error::from(e).with_context("output", output))?;
        Ok(stats)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn report(stats: &CompressionStats, flags: &ReportFlags) -> Result<()> {
    if !flags.stats && !flags.json {
        return Ok(());
    }
    let line = if flags.json {
        serde_json::to_string(stats)?
    } else {
        format!(
            "{} {:?}{}: {} -> {} bytes, ratio {:.3}, {:.1} MB/s, {:.3} s, ~{} KiB working memory",
            stats.codec,
            stats.direction,
            stats
                .level
                .map(|l| format!(" level {l}"))
                .unwrap_or_default(),
            stats.input_bytes,
            stats.output_bytes,
            stats.ratio,
            stats.throughput_mb_s,
            stats.wall_time.as_secs_f64(),
            stats.memory_estimate / 1024,
        )
    };
    eprintln!("{line}");
    Ok(())
}
