//! The `kernelize` command line.
//!
//! Exit codes: 0 success, 1 the work failed, 2 bad usage, bad config or invalid input.
//! Errors go to stderr, one line per cause.

#[cfg(feature = "compress")]
mod bench;
mod commands;
#[cfg(feature = "compress")]
mod compress;
mod input;
mod output;
mod pipeline;
mod run;
mod schedule;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kernelize::{Error, ErrorKind};

/// Kernelize: run integration plugins from the command line.
#[derive(Debug, Parser)]
#[command(name = "kernelize", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, inspect and resolve plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Execute one action of a plugin.
    Exec(commands::ExecArgs),
    /// Validate a workflow file and run one of its workflows (or queue it for workers).
    Run(run::RunArgs),
    /// List, show, resume and cancel recorded runs.
    #[command(subcommand)]
    Runs(run::RunsCommand),
    /// Execute queued runs, and interrupted ones whose lease expired, from a shared store
    /// (with `--schedule FILE`, also start the runs of the file's schedules).
    Worker(run::WorkerArgs),
    /// Compress a file or stdin.
    #[cfg(feature = "compress")]
    Compress(compress::CompressArgs),
    /// Decompress a file or stdin; the codec is recognized from its first bytes.
    #[cfg(feature = "compress")]
    Decompress(compress::DecompressArgs),
    /// Measure codecs.
    #[cfg(feature = "compress")]
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[cfg(feature = "compress")]
#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Ratio, compress and decompress MB/s (median of several runs) and peak memory per
    /// file, codec and level.
    Compress(bench::BenchCompressArgs),
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// List the plugins compiled in and installed.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one plugin: metadata, permissions, config schema and actions.
    Info {
        /// The plugin's id.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Resolve plugins and their dependencies to versions, without activating anything.
    Resolve(commands::ResolveArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are successes; everything else clap reports is bad usage.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Plugins(PluginsCommand::List { json }) => commands::plugins_list(json),
            Command::Plugins(PluginsCommand::Info { id, json }) => {
                commands::plugins_info(&id, json)
            }
            Command::Plugins(PluginsCommand::Resolve(args)) => commands::plugins_resolve(args),
            Command::Exec(args) => commands::exec(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Runs(command) => run::runs(command).await,
            Command::Worker(args) => run::worker(args).await,
            // Plain blocking work: run on this thread, outside the runtime's futures.
            #[cfg(feature = "compress")]
            Command::Compress(args) => tokio::task::block_in_place(|| compress::compress(args)),
            #[cfg(feature = "compress")]
            Command::Decompress(args) => tokio::task::block_in_place(|| compress::decompress(args)),
            #[cfg(feature = "compress")]
            Command::Bench(BenchCommand::Compress(args)) => {
                tokio::task::block_in_place(|| bench::bench_compress(args))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err);
            ExitCode::from(exit_code(&err))
        }
    }
}

/// Logs go to stderr; `KERNELIZE_LOG` sets the filter (default: errors only, and notifier
/// messages at info).
fn init_logging() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("KERNELIZE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,kernelize::notify=info"));
    // tungstenite logs each WebSocket handshake request whole, credentials included, at
    // trace level: never let that through, whatever KERNELIZE_LOG asks for.
    for cap in ["tungstenite=debug", "tokio_tungstenite=debug"] {
        if let Ok(directive) = cap.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn report(err: &Error) {
    let mut lines = err.chain().into_iter();
    if let Some(first) = lines.next() {
        eprintln!("error: {first}");
    }
    for cause in lines {
        eprintln!("caused by: {cause}");
    }
}

/// 2 for what the user can fix in the command, its config or its input; 1 otherwise.
fn exit_code(err: &Error) -> u8 {
    match err.kind() {
        ErrorKind::InvalidInput
        | ErrorKind::ConfigInvalid
        | ErrorKind::NotFound
        | ErrorKind::Unsupported
        | ErrorKind::PermissionDenied
        | ErrorKind::Dependency
        | ErrorKind::CorruptData => 2,
        _ => 1,
    }
}
