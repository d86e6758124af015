//! [`SubscriptionStore`]: REST Hook subscriptions in a JSON file that outlives calls and
//! processes.
//!
//! The file is `{"subscriptions": [{id, target_url, event, created_at}]}`. Every change is
//! read-modify-write under a lock file (`<file>.lock`, created exclusively; one older than
//! 30 s is taken as left by a crashed process and removed), and written to a temporary file
//! in the same directory, flushed to disk and renamed over the old one, so that a reader
//! (another process, a crash half-way) always finds either the old list or the new one,
//! never part of one. Reads take no lock for the same reason.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most subscriptions one file holds.
pub const MAX_SUBSCRIPTIONS: usize = 10_000;

/// The largest subscriptions file read (16 MiB).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A lock file older than this was left by a process that died holding it.
const STALE_LOCK: Duration = Duration::from_secs(30);

/// How long a change waits for another process's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// One REST Hook subscription: Zapier wants `event`s POSTed to `target_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Subscription {
    /// Its id (`sub_` and 16 hex digits): what `unsubscribe` takes.
    pub id: String,
    /// Where Zapier wants events (`bundle.targetUrl`, unique per Zap).
    pub target_url: String,
    /// The event it is for (`order.created`).
    pub event: String,
    /// When it was made (RFC 3339, UTC).
    pub created_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    #[serde(default)]
    subscriptions: Vec<Subscription>,
}

/// REST Hook subscriptions kept in a JSON file (see the module docs).
#[derive(Debug, Clone)]
pub struct SubscriptionStore {
    path: PathBuf,
}

impl SubscriptionStore {
    /// A store in the file at `path` (created on the first subscription, with its
    /// directory if missing).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every subscription, oldest first (none when the file does not exist yet).
    pub async fn list(&self) -> Result<Vec<Subscription>> {
        let path = self.path.clone();
        blocking(move || read(&path).map(|f| f.subscriptions)).await
    }

    /// Records that `target_url` wants `event`, and returns the subscription with `true`;
    /// when the same URL already has the same event, returns that one with `false` (Zapier
    /// may subscribe again after a failure, and must not get events twice).
    pub async fn subscribe(&self, target_url: &str, event: &str) -> Result<(Subscription, bool)> {
        let target_url = target_url.to_string();
        let event = event.to_string();
        self.change(move |subs| {
            if let Some(found) = subs
                .iter()
                .find(|s| s.target_url == target_url && s.event == event)
            {
                return Ok((found.clone(), false));
            }
            if subs.len() >= MAX_SUBSCRIPTIONS {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the subscriptions file already holds {MAX_SUBSCRIPTIONS} subscriptions"
                    ),
                ));
            }
            let subscription = Subscription {
                id: format!("sub_{:016x}", rand::random::<u64>()),
                target_url,
                event,
                created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            subs.push(subscription.clone());
            Ok((subscription, true))
        })
        .await
    }

    /// Removes the subscriptions with these ids and returns the ones that existed.
    pub async fn remove(&self, ids: &[String]) -> Result<Vec<Subscription>> {
        let ids = ids.to_vec();
        self.change(move |subs| {
            let (gone, kept): (Vec<Subscription>, Vec<Subscription>) = std::mem::take(subs)
                .into_iter()
                .partition(|s| ids.contains(&s.id));
            *subs = kept;
            Ok(gone)
        })
        .await
    }

    /// Runs `f` on the list under the lock and writes the result back.
    async fn change<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Vec<Subscription>) -> Result<T> + Send + 'static,
    {
        let path = self.path.clone();
        blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)
                    .map_err(|e| io_error(&path, "create the directory of", e))?;
            }
            let _lock = FileLock::acquire(&path)?;
            let mut file = read(&path)?;
            let out = f(&mut file.subscriptions)?;
            write(&path, &file)?;
            Ok(out)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("the subscriptions file task failed: {e}"),
        )
    })?
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    let kind = if e.kind() == IoKind::PermissionDenied {
        ErrorKind::PermissionDenied
    } else {
        ErrorKind::Unexpected
    };
    Error::new(
        kind,
        format!(
            "cannot {what} the subscriptions file {}: {e}",
            path.display()
        ),
    )
}

fn read(path: &Path) -> Result<StoreFile> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == IoKind::NotFound => return Ok(StoreFile::default()),
        Err(e) => return Err(io_error(path, "open", e)),
    };
    let mut text = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| io_error(path, "read", e))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::new(
            ErrorKind::CorruptData,
            format!(
                "the subscriptions file {} is larger than {MAX_FILE_BYTES} bytes",
                path.display()
            ),
        ));
    }
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(StoreFile::default());
    }
    serde_json::from_slice(&text).map_err(|e| {
        Error::new(
            ErrorKind::CorruptData,
            format!(
                "the subscriptions file {} is not a subscriptions list ({e}); fix or remove it",
                path.display()
            ),
        )
    })
}

/// Writes `file` to a temporary file beside `path`, flushes it and renames it over `path`.
fn write(path: &Path, file: &StoreFile) -> Result<()> {
    let text = serde_json::to_vec_pretty(file)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "subscriptions".into());
    let temp = path.with_file_name(format!(
        ".{name}.{}.{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| io_error(&temp, "create", e))?;
        out.write_all(&text)
            .map_err(|e| io_error(&temp, "write", e))?;
        out.sync_all().map_err(|e| io_error(&temp, "flush", e))?;
        fs::rename(&temp, path).map_err(|e| io_error(path, "replace", e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    // The rename is durable once the directory is flushed too (best effort: not every
    // platform can open a directory).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `<file>.lock`, held while a change is made; removed when dropped.
struct FileLock {
    path: PathBuf,
}

impl FileLock {
    fn acquire(file: &Path) -> Result<Self> {
        let mut name = file.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == IoKind::AlreadyExists => {
                    let stale = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|at| SystemTime::now().duration_since(at).ok())
                        .is_some_and(|age| age > STALE_LOCK);
                    if stale {
                        tracing::warn!(lock = %path.display(), "removing a stale subscriptions lock");
                        let _ = fs::remove_file(&path);
                    }
                    if Instant::now() >= deadline {
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "the subscriptions file is locked by another process ({} exists for {} s); remove that file if no Kernelize process is using the subscriptions",
                                path.display(),
                                LOCK_WAIT.as_secs()
                            ),
                        )
                        .set_temporary());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(io_error(&path, "create the lock of", e)),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kernelize-zapier-{:016x}", rand::random::<u64>()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn subscriptions_survive_a_new_store_and_leave_no_temporary_files() {
        let dir = temp_dir();
        let path = dir.join("subs.json");
        let store = SubscriptionStore::new(&path);
        let (a, created) = store
            .subscribe(
                "https://hooks.zapier.com/hooks/standard/1/a/",
                "order.created",
            )
            .await
            .unwrap();
        assert!(created);
        let (again, created) = store
            .subscribe(
                "https://hooks.zapier.com/hooks/standard/1/a/",
                "order.created",
            )
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(again, a);
        store
            .subscribe(
                "https://hooks.zapier.com/hooks/standard/1/b/",
                "order.created",
            )
            .await
            .unwrap();

        let reopened = SubscriptionStore::new(&path);
        assert_eq!(reopened.list().await.unwrap().len(), 2);
        let removed = reopened
            .remove(&[a.id.clone(), "sub_missing".into()])
            .await
            .unwrap();
        assert_eq!(removed, vec![a]);
        assert_eq!(store.list().await.unwrap().len(), 1);
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["subs.json"], "no lock or temporary file is left");
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn concurrent_changes_are_all_kept() {
        let dir = temp_dir();
        let path = dir.join("subs.json");
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = SubscriptionStore::new(&path);
            tasks.push(tokio::spawn(async move {
                store
                    .subscribe(&format!("https://t.example/{i}"), "e")
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            SubscriptionStore::new(&path).list().await.unwrap().len(),
            16
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_stale_lock_is_taken_over_and_a_corrupt_file_is_not_overwritten() {
        let dir = temp_dir();
        let path = dir.join("subs.json");
        let lock = dir.join("subs.json.lock");
        fs::write(&lock, "1").unwrap();
        let old = SystemTime::now() - Duration::from_secs(120);
        File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let store = SubscriptionStore::new(&path);
        store.subscribe("https://t.example/x", "e").await.unwrap();
        assert!(!lock.exists());

        fs::write(&path, "{not json").unwrap();
        let error = store
            .subscribe("https://t.example/y", "e")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::CorruptData);
        assert!(error.message().contains("subs.json"), "{error}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "{not json");
        fs::remove_dir_all(dir).unwrap();
    }
}
