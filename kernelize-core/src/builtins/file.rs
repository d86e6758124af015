//! `file`: reads and writes local files as records — CSV, JSON, NDJSON, and Parquet with the
//! `parquet` feature — within the paths the host granted.
//!
//! Each call checks its path against the plugin's granted permissions before touching the
//! file (`FileRead` to read, `FileWrite` to write; a write grant also allows reading). The
//! check is lexical: `..` cannot climb out of a granted directory, but symbolic links inside
//! one are followed.
//!
//! Writes never leave a half-written file at the target path: the records are written to a
//! hidden temporary file in the same directory (`.NAME.PID-N.tmp`), which is renamed over the
//! target only once complete, and removed on any error, cancellation or timeout. An existing
//! file is replaced only with `overwrite: true`.
//!
//! File IO and parsing run on tokio's blocking pool.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use schemars::JsonSchema;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::builtins::off_runtime;
use crate::error::{Error, ErrorKind, Result};
use crate::payload::{CsvOptions, Payload, Records};
use crate::permissions::Permission;
use crate::plugin::{
    Action, ActionContext, ActionRouter, Call, Category, Handler, Plugin, PluginMetadata,
};

/// Plugin id of the file plugin.
pub const ID: &str = "file";

/// How a file's records are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Comma-separated values (`.csv`).
    Csv,
    /// One JSON array of row objects (`.json`).
    Json,
    /// One JSON row object per line (`.ndjson`, `.jsonl`).
    Ndjson,
    /// Apache Parquet (`.parquet`); needs the `parquet` feature.
    Parquet,
}

const KNOWN_EXTENSIONS: &str = ".csv, .json, .ndjson, .jsonl, .parquet";

impl FileFormat {
    /// The format a path's extension names (case-insensitive), if it names one.
    pub fn from_extension(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Some(FileFormat::Csv),
            "json" => Some(FileFormat::Json),
            "ndjson" | "jsonl" => Some(FileFormat::Ndjson),
            "parquet" => Some(FileFormat::Parquet),
            _ => None,
        }
    }

    /// The format to use: the one given, else the one the extension names; an error when
    /// neither says, or when this build cannot handle the format.
    fn resolve(given: Option<Self>, path: &Path) -> Result<Self> {
        let format = match given.or_else(|| FileFormat::from_extension(path)) {
            Some(format) => format,
            None => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "cannot tell the format of {} from its extension; known extensions: \
                         {KNOWN_EXTENSIONS} (or set `format`)",
                        path.display()
                    ),
                )
                .with_context("path", path.display()));
            }
        };
        if format == FileFormat::Parquet && !cfg!(feature = "parquet") {
            return Err(parquet_not_built().with_context("path", path.display()));
        }
        Ok(format)
    }
}

fn parquet_not_built() -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "Parquet files need kernelize-core's `parquet` feature; enable the `parquet` feature",
    )
}

/// Per-call config of `read`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadConfig {
    /// The file to read.
    pub path: PathBuf,
    /// `csv`, `json`, `ndjson` or `parquet`; by default taken from the extension (`.csv`,
    /// `.json`, `.ndjson`, `.jsonl`, `.parquet`).
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// CSV field delimiter, one ASCII character (default `,`); only for CSV.
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Whether a CSV file's first line names the columns (default true); ignored for other
    /// formats.
    #[serde(default = "default_true")]
    pub has_header: bool,
}

fn default_true() -> bool {
    true
}

/// Per-call config of `write`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteConfig {
    /// The file to write; its directory must exist.
    pub path: PathBuf,
    /// `csv`, `json`, `ndjson` or `parquet`; by default taken from the extension (`.csv`,
    /// `.json`, `.ndjson`, `.jsonl`, `.parquet`).
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// Replace the file if it exists (default false: an existing file is an error).
    #[serde(default)]
    pub overwrite: bool,
}

/// What `write` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WrittenFile {
    /// The path written, as given in the config.
    pub path: String,
    /// Number of records written.
    pub rows: u64,
    /// Size of the file, in bytes.
    pub bytes: u64,
}

/// `read`: reads a file as records.
#[derive(Debug)]
pub struct ReadFile;

impl Action for ReadFile {
    const NAME: &'static str = "read";
    const DESCRIPTION: &'static str =
        "Read a CSV, JSON, NDJSON or Parquet file as records (needs a file-read grant).";
    type Config = ReadConfig;
    type Input = Payload;
    type Output = Records;

    fn permissions() -> Vec<Permission> {
        vec![Permission::FileRead { path: "/".into() }]
    }
}

/// `write`: writes records to a file, atomically.
#[derive(Debug)]
pub struct WriteFile;

impl Action for WriteFile {
    const NAME: &'static str = "write";
    const DESCRIPTION: &'static str =
        "Write records to a CSV, JSON, NDJSON or Parquet file (needs a file-write grant).";
    type Config = WriteConfig;
    type Input = Records;
    type Output = WrittenFile;

    fn permissions() -> Vec<Permission> {
        vec![Permission::FileWrite { path: "/".into() }]
    }
}

static ROUTER: LazyLock<ActionRouter<FilePlugin>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<ReadFile>()
        .action::<WriteFile>()
});

/// The `file` plugin. It has no settings; what it may touch is what the host grants.
#[derive(Debug, Clone, Default)]
pub struct FilePlugin;

impl FilePlugin {
    /// A file plugin, ready once initialized.
    pub fn new() -> Self {
        FilePlugin
    }
}

#[async_trait]
impl Plugin for FilePlugin {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(ID, "Files", Version::new(0, 1, 0), Category::Connector)
            .description(
                "Reads and writes local CSV, JSON, NDJSON and Parquet files as records, \
                 within granted paths.",
            )
            .author("Kernelize")
            .needs(Permission::FileRead { path: "/".into() })
            .needs(Permission::FileWrite { path: "/".into() })
            .actions(ROUTER.descriptors())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        ROUTER.dispatch(self, call).await
    }
}

#[async_trait]
impl Handler<ReadFile> for FilePlugin {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ReadConfig,
        _input: Payload,
    ) -> Result<Records> {
        let path = config.path;
        let format = FileFormat::resolve(config.format, &path)?;
        let csv = CsvOptions {
            has_header: config.has_header,
            delimiter: csv_delimiter(config.delimiter, format)?,
            ..CsvOptions::default()
        };
        ctx.permissions
            .check_read(&path)
            .map_err(|e| e.with_context("path", path.display()))?;
        off_runtime(move || {
            read_records(&path, format, &csv).map_err(|e| e.with_context("path", path.display()))
        })
        .await
    }
}

#[async_trait]
impl Handler<WriteFile> for FilePlugin {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: WriteConfig,
        input: Records,
    ) -> Result<WrittenFile> {
        let path = config.path;
        let format = FileFormat::resolve(config.format, &path)?;
        ctx.permissions
            .check_write(&path)
            .map_err(|e| e.with_context("path", path.display()))?;
        let rows = input.num_rows() as u64;
        let shown = path.display().to_string();
        let bytes = off_runtime(move || {
            write_atomically(&path, config.overwrite, |out| {
                encode(&ctx, format, &input, out)?;
                // Do not publish the file for a call whose caller gave up.
                ctx.check_alive()
            })
            .map_err(|e| e.with_context("path", path.display()))
        })
        .await?;
        Ok(WrittenFile {
            path: shown,
            rows,
            bytes,
        })
    }
}

fn csv_delimiter(delimiter: Option<char>, format: FileFormat) -> Result<u8> {
    let default = CsvOptions::default().delimiter;
    let Some(delimiter) = delimiter else {
        return Ok(default);
    };
    if format != FileFormat::Csv {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "`delimiter` applies only to CSV files",
        ));
    }
    u8::try_from(delimiter)
        .ok()
        .filter(u8::is_ascii)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("the delimiter must be one ASCII character, not {delimiter:?}"),
            )
        })
}

// ---------------------------------------------------------------------------------------
// reading

fn read_records(path: &Path, format: FileFormat, csv: &CsvOptions) -> Result<Records> {
    let file = open_for_reading(path)?;
    match format {
        FileFormat::Csv => Records::from_csv(BufReader::new(file), csv),
        FileFormat::Ndjson => Records::from_ndjson(BufReader::new(file)),
        FileFormat::Json => {
            let value: serde_json::Value = serde_json::from_reader(BufReader::new(file))?;
            Payload::Json(value).into_records()
        }
        FileFormat::Parquet => read_parquet(file),
    }
}

fn open_for_reading(path: &Path) -> Result<File> {
    let metadata = std::fs::metadata(path).map_err(|e| io_error(e, "cannot read", path))?;
    if metadata.is_dir() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{} is a directory, not a file", path.display()),
        ));
    }
    File::open(path).map_err(|e| io_error(e, "cannot read", path))
}

#[cfg(feature = "parquet")]
fn read_parquet(mut file: File) -> Result<Records> {
    use std::io::Read as _;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Records::from_parquet(bytes::Bytes::from(data))
}

#[cfg(not(feature = "parquet"))]
fn read_parquet(_file: File) -> Result<Records> {
    Err(parquet_not_built())
}

// ---------------------------------------------------------------------------------------
// writing

fn encode(
    ctx: &ActionContext,
    format: FileFormat,
    records: &Records,
    out: &mut BufWriter<&File>,
) -> Result<()> {
    match format {
        FileFormat::Csv => records.to_csv(out),
        FileFormat::Ndjson => records.to_ndjson(out),
        FileFormat::Json => {
            let rows = records.to_json_rows()?;
            serde_json::to_writer(out, &rows).map_err(|e| {
                Error::new(ErrorKind::Unexpected, format!("cannot write JSON: {e}")).set_source(e)
            })
        }
        FileFormat::Parquet => write_parquet(ctx, records, out),
    }
}

#[cfg(feature = "parquet")]
fn write_parquet(ctx: &ActionContext, records: &Records, out: &mut BufWriter<&File>) -> Result<()> {
    let parquet_error = |e: parquet::errors::ParquetError| {
        Error::new(ErrorKind::Unexpected, format!("cannot write Parquet: {e}")).set_source(e)
    };
    let mut writer = parquet::arrow::ArrowWriter::try_new(out, records.schema().clone(), None)
        .map_err(parquet_error)?;
    for batch in records.batches() {
        ctx.check_alive()?;
        writer.write(batch).map_err(parquet_error)?;
    }
    writer.close().map_err(parquet_error)?;
    Ok(())
}

#[cfg(not(feature = "parquet"))]
fn write_parquet(
    _ctx: &ActionContext,
    _records: &Records,
    _out: &mut BufWriter<&File>,
) -> Result<()> {
    Err(parquet_not_built())
}

/// Writes `target` through a temporary file in the same directory, renamed into place only
/// when `fill` succeeded; returns the file's size.
fn write_atomically(
    target: &Path,
    overwrite: bool,
    fill: impl FnOnce(&mut BufWriter<&File>) -> Result<()>,
) -> Result<u64> {
    if !overwrite
        && target
            .try_exists()
            .map_err(|e| io_error(e, "cannot check", target))?
    {
        return Err(already_exists(target));
    }
    let staged = StagedFile::create(target)?;
    let mut out = BufWriter::new(&staged.file);
    fill(&mut out)?;
    out.flush()
        .map_err(|e| io_error(e, "cannot write", &staged.path))?;
    drop(out);
    staged
        .file
        .sync_all()
        .map_err(|e| io_error(e, "cannot write", &staged.path))?;
    let bytes = staged
        .file
        .metadata()
        .map_err(|e| io_error(e, "cannot write", &staged.path))?
        .len();
    staged.commit(target, overwrite)?;
    Ok(bytes)
}

/// A temporary file next to a write's target; removed when dropped uncommitted.
struct StagedFile {
    path: PathBuf,
    file: File,
    committed: bool,
}

impl StagedFile {
    fn create(target: &Path) -> Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = target.file_name().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{} does not name a file", target.display()),
            )
        })?;
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        for _ in 0..100 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let mut temp_name = std::ffi::OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(".{}-{n}.tmp", std::process::id()));
            let path = dir.join(temp_name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(StagedFile {
                        path,
                        file,
                        committed: false,
                    });
                }
                // Left behind by a process with our id that died mid-write; try the next.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("directory {} does not exist", dir.display()),
                    ));
                }
                Err(e) => return Err(io_error(e, "cannot create a file in", dir)),
            }
        }
        Err(Error::new(
            ErrorKind::Unexpected,
            format!(
                "could not pick a free temporary file name in {}",
                dir.display()
            ),
        ))
    }

    /// Moves the file to `target`; without `overwrite`, fails if `target` appeared meanwhile.
    fn commit(mut self, target: &Path, overwrite: bool) -> Result<()> {
        if overwrite {
            std::fs::rename(&self.path, target).map_err(|e| io_error(e, "cannot write", target))?;
        } else {
            // A hard link never replaces an existing file, unlike rename.
            match std::fs::hard_link(&self.path, target) {
                Ok(()) => {
                    if let Err(e) = std::fs::remove_file(&self.path) {
                        tracing::warn!(path = %self.path.display(), error = %e,
                            "could not remove a temporary file");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(already_exists(target));
                }
                // The file system has no hard links: check, then rename.
                Err(_) => {
                    if target
                        .try_exists()
                        .map_err(|e| io_error(e, "cannot check", target))?
                    {
                        return Err(already_exists(target));
                    }
                    std::fs::rename(&self.path, target)
                        .map_err(|e| io_error(e, "cannot write", target))?;
                }
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn already_exists(path: &Path) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!(
            "{} already exists; set `overwrite: true` to replace it",
            path.display()
        ),
    )
}

/// An IO error as ours, keeping its kind (a missing file is `NotFound`) and naming the path.
fn io_error(e: std::io::Error, doing: &str, path: &Path) -> Error {
    // Our mapping of IO error kinds lives in `From<io::Error>`; borrow it without losing `e`.
    let kind = Error::from(std::io::Error::from(e.kind())).kind();
    let message = if e.kind() == std::io::ErrorKind::NotFound {
        format!("{} does not exist", path.display())
    } else {
        format!("{doing} {}: {e}", path.display())
    };
    Error::new(kind, message).set_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::PermissionGuard;
    use crate::plugin::InitContext;
    use arrow_array::cast::AsArray;
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use serde_json::{Value, json};
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;

    fn sales() -> Records {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["Ada", "Bo", "Cy"])),
        ];
        Records::from_batch(RecordBatch::try_new(schema, columns).unwrap())
    }

    fn names(r: &Records) -> Vec<String> {
        r.batches()
            .iter()
            .flat_map(|b| {
                let i = b.schema().index_of("name").unwrap();
                b.column(i)
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn reads_in(dir: &Path) -> PermissionGuard {
        PermissionGuard::new(
            ID,
            vec![Permission::FileRead {
                path: dir.to_path_buf(),
            }],
            None,
        )
    }

    fn writes_in(dir: &Path) -> PermissionGuard {
        PermissionGuard::new(
            ID,
            vec![Permission::FileWrite {
                path: dir.to_path_buf(),
            }],
            None,
        )
    }

    async fn plugin() -> FilePlugin {
        let mut plugin = FilePlugin::new();
        plugin
            .initialize(InitContext::plain(json!({})))
            .await
            .unwrap();
        plugin
    }

    async fn read(guard: PermissionGuard, config: Value) -> Result<Records> {
        let mut call = Call::new("read", Payload::Empty).with_config(config);
        call.permissions = guard;
        plugin().await.execute(call).await?.into_records()
    }

    async fn write(guard: PermissionGuard, config: Value, records: Records) -> Result<WrittenFile> {
        let mut call = Call::new("write", Payload::Records(records)).with_config(config);
        call.permissions = guard;
        let out = plugin().await.execute(call).await?.into_json()?;
        Ok(serde_json::from_value(out)?)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    // --- metadata and config

    #[test]
    fn metadata_declares_file_permissions_and_both_actions() {
        let meta = FilePlugin::new().metadata();
        assert_eq!(meta.id, "file");
        assert_eq!(meta.category, Category::Connector);
        assert_eq!(meta.version, Version::new(0, 1, 0));
        assert!(
            meta.permissions
                .contains(&Permission::FileRead { path: "/".into() })
        );
        assert!(
            meta.permissions
                .contains(&Permission::FileWrite { path: "/".into() })
        );
        let actions: Vec<&str> = meta.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(actions, ["read", "write"]);
        assert_eq!(meta.action("read").unwrap().output.kind, "records");
        assert_eq!(meta.action("write").unwrap().input.kind, "records");
    }

    #[test]
    fn format_follows_the_extension_case_insensitively() {
        let of = |p: &str| FileFormat::from_extension(Path::new(p));
        assert_eq!(of("a.CSV"), Some(FileFormat::Csv));
        assert_eq!(of("a.json"), Some(FileFormat::Json));
        assert_eq!(of("a.jsonl"), Some(FileFormat::Ndjson));
        assert_eq!(of("a.ndjson"), Some(FileFormat::Ndjson));
        assert_eq!(of("a.parquet"), Some(FileFormat::Parquet));
        assert_eq!(of("a.xlsx"), None);
        assert_eq!(of("README"), None);
    }

    #[tokio::test]
    async fn unknown_extension_is_invalid_input_listing_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.xlsx");
        std::fs::write(&path, "id\n1\n").unwrap();
        let err = read(reads_in(dir.path()), json!({"path": path}))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains(KNOWN_EXTENSIONS), "{err}");
    }

    #[tokio::test]
    async fn explicit_format_overrides_the_extension() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.txt");
        std::fs::write(&path, "id,name\n1,Ada\n").unwrap();
        let out = read(reads_in(dir.path()), json!({"path": path, "format": "csv"}))
            .await
            .unwrap();
        assert_eq!(names(&out), ["Ada"]);
    }

    #[tokio::test]
    async fn delimiter_is_rejected_for_formats_other_than_csv() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.json");
        let err = read(
            reads_in(dir.path()),
            json!({"path": path, "delimiter": ";"}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    // --- permissions

    #[tokio::test]
    async fn read_outside_the_granted_directory_is_permission_denied() {
        let granted = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let path = other.path().join("secret.csv");
        std::fs::write(&path, "id\n1\n").unwrap();
        let err = read(reads_in(granted.path()), json!({"path": path}))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    }

    #[tokio::test]
    async fn read_climbing_out_of_the_granted_directory_is_permission_denied() {
        let dir = tempfile::tempdir().unwrap();
        let granted = dir.path().join("in");
        std::fs::create_dir(&granted).unwrap();
        std::fs::write(dir.path().join("secret.csv"), "id\n1\n").unwrap();
        let path = granted.join("..").join("secret.csv");
        let err = read(reads_in(&granted), json!({"path": path}))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    }

    #[tokio::test]
    async fn write_with_only_a_read_grant_is_permission_denied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let err = write(reads_in(dir.path()), json!({"path": path}), sales())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(!path.exists());
    }

    // --- reading

    #[tokio::test]
    async fn reading_a_missing_file_is_not_found_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.csv");
        let err = read(reads_in(dir.path()), json!({"path": path}))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("missing.csv"), "{err}");
    }

    #[tokio::test]
    async fn reads_csv_with_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.csv");
        std::fs::write(&path, "id,name\n1,Ada\n2,Bo\n").unwrap();
        let out = read(reads_in(dir.path()), json!({"path": path}))
            .await
            .unwrap();
        assert_eq!(out.num_rows(), 2);
        assert_eq!(names(&out), ["Ada", "Bo"]);
    }

    #[tokio::test]
    async fn reads_csv_with_another_delimiter_and_no_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.csv");
        std::fs::write(&path, "1;Ada\n2;Bo\n").unwrap();
        let config = json!({"path": path, "delimiter": ";", "has_header": false});
        let out = read(reads_in(dir.path()), config).await.unwrap();
        assert_eq!(out.num_rows(), 2);
        assert_eq!(out.schema().fields().len(), 2);
    }

    #[tokio::test]
    async fn reads_a_json_array_of_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.json");
        std::fs::write(
            &path,
            r#"[{"id": 1, "name": "Ada"}, {"id": 2, "name": "Bo"}]"#,
        )
        .unwrap();
        let out = read(reads_in(dir.path()), json!({"path": path}))
            .await
            .unwrap();
        assert_eq!(names(&out), ["Ada", "Bo"]);
    }

    #[tokio::test]
    async fn reads_ndjson_from_a_jsonl_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.jsonl");
        std::fs::write(
            &path,
            "{\"id\": 1, \"name\": \"Ada\"}\n{\"id\": 2, \"name\": \"Bo\"}\n",
        )
        .unwrap();
        let out = read(reads_in(dir.path()), json!({"path": path}))
            .await
            .unwrap();
        assert_eq!(names(&out), ["Ada", "Bo"]);
    }

    // --- writing

    async fn round_trip(file_name: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name);
        let written = write(writes_in(dir.path()), json!({"path": path}), sales())
            .await
            .unwrap();
        assert_eq!(written.path, path.display().to_string());
        assert_eq!(written.rows, 3);
        assert_eq!(written.bytes, std::fs::metadata(&path).unwrap().len());
        assert!(written.bytes > 0);
        let back = read(writes_in(dir.path()), json!({"path": path}))
            .await
            .unwrap();
        assert_eq!(names(&back), ["Ada", "Bo", "Cy"]);
        assert_eq!(
            entries(dir.path()),
            [file_name],
            "no temporary file is left"
        );
    }

    #[tokio::test]
    async fn csv_written_reads_back_the_same() {
        round_trip("sales.csv").await;
    }

    #[tokio::test]
    async fn json_written_reads_back_the_same() {
        round_trip("sales.json").await;
    }

    #[tokio::test]
    async fn ndjson_written_reads_back_the_same() {
        round_trip("sales.ndjson").await;
    }

    #[cfg(feature = "parquet")]
    #[tokio::test]
    async fn parquet_written_reads_back_the_same() {
        round_trip("sales.parquet").await;
    }

    #[cfg(not(feature = "parquet"))]
    #[tokio::test]
    async fn parquet_without_the_feature_is_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.parquet");
        let err = read(reads_in(dir.path()), json!({"path": path}))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.message().contains("`parquet` feature"), "{err}");
    }

    #[tokio::test]
    async fn write_refuses_to_replace_an_existing_file_without_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.csv");
        std::fs::write(&path, "keep me").unwrap();
        let err = write(writes_in(dir.path()), json!({"path": path}), sales())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("overwrite"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
        assert_eq!(entries(dir.path()), ["sales.csv"]);
    }

    #[tokio::test]
    async fn write_with_overwrite_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.ndjson");
        std::fs::write(&path, "old").unwrap();
        let config = json!({"path": path, "overwrite": true});
        write(writes_in(dir.path()), config, sales()).await.unwrap();
        assert_ne!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(entries(dir.path()), ["sales.ndjson"]);
    }

    #[tokio::test]
    async fn write_into_a_missing_directory_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("sales.csv");
        let err = write(writes_in(dir.path()), json!({"path": path}), sales())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn cancelled_write_leaves_no_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.csv");
        let cancel = CancellationToken::new();
        cancel.cancel();
        let mut call = Call::new("write", Payload::Records(sales()))
            .with_config(json!({"path": path}))
            .with_cancel(cancel);
        call.permissions = writes_in(dir.path());
        assert!(plugin().await.execute(call).await.is_err());
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn failed_write_leaves_neither_the_target_nor_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.csv");
        let err = write_atomically(&path, false, |out| {
            out.write_all(b"id,name\n1,A")?;
            out.flush()?;
            Err(Error::new(ErrorKind::CorruptData, "encoder gave up"))
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptData);
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn atomic_write_without_overwrite_does_not_replace_a_file_that_appeared_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sales.csv");
        let err = write_atomically(&path, false, |out| {
            std::fs::write(&path, "first").unwrap();
            out.write_all(b"second")?;
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        assert_eq!(entries(dir.path()), ["sales.csv"]);
    }
}
