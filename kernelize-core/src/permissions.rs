//! Permissions: what a plugin declares it needs, what the host grants, and the check.
//!
//! A plugin lists the permissions it may need in its metadata. The host grants a subset in
//! the plugin's configuration. When an action is about to touch a host, a path, a secret or
//! another plugin, it asks its [`PermissionGuard`]; an ungranted permission fails the call with
//! [`ErrorKind::PermissionDenied`], and every grant and denial is an audit event.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditSink, Outcome};
use crate::error::{Error, ErrorKind, Result};

/// One thing a plugin may be allowed to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Permission {
    /// Connect to a host. `*.example.com` matches any subdomain; `*` matches any host.
    Network {
        /// Host name or pattern.
        host: String,
    },
    /// Read files at or below a path.
    FileRead {
        /// A file or directory.
        path: PathBuf,
    },
    /// Create or overwrite files at or below a path.
    FileWrite {
        /// A file or directory.
        path: PathBuf,
    },
    /// Read a named secret.
    Secret {
        /// The secret's name.
        name: String,
    },
    /// Call another plugin.
    Plugin {
        /// The other plugin's id.
        id: String,
    },
}

impl Permission {
    /// Whether this granted permission covers the `requested` one.
    ///
    /// Paths are compared after lexical normalization (`.` and `..` removed), so a grant of
    /// `/data` does not cover `/data/../etc/passwd`. Relative paths are compared as given;
    /// hosts compare case-insensitively.
    pub fn covers(&self, requested: &Permission) -> bool {
        match (self, requested) {
            (Permission::Network { host: g }, Permission::Network { host: r }) => {
                host_matches(g, r)
            }
            (Permission::FileRead { path: g }, Permission::FileRead { path: r })
            | (Permission::FileWrite { path: g }, Permission::FileWrite { path: r })
            | (Permission::FileWrite { path: g }, Permission::FileRead { path: r }) => {
                if g.is_absolute() == r.is_absolute() {
                    path_within(g, r)
                } else {
                    path_within(&absolute(g), &absolute(r))
                }
            }
            (Permission::Secret { name: g }, Permission::Secret { name: r }) => g == r,
            (Permission::Plugin { id: g }, Permission::Plugin { id: r }) => g == r,
            _ => false,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permission::Network { host } => write!(f, "network:{host}"),
            Permission::FileRead { path } => write!(f, "file-read:{}", path.display()),
            Permission::FileWrite { path } => write!(f, "file-write:{}", path.display()),
            Permission::Secret { name } => write!(f, "secret:{name}"),
            Permission::Plugin { id } => write!(f, "plugin:{id}"),
        }
    }
}

fn host_matches(grant: &str, host: &str) -> bool {
    let grant = grant.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    if grant == "*" || grant == host {
        return true;
    }
    match grant.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
        None => false,
    }
}

/// Removes `.` and resolves `..` lexically; `None` when `..` climbs above the start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    let mut depth = 0usize;
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if depth == 0 {
                    return None;
                }
                out.pop();
                depth -= 1;
            }
            Component::Normal(part) => {
                out.push(part);
                depth += 1;
            }
            Component::RootDir | Component::Prefix(_) => out.push(c.as_os_str()),
        }
    }
    Some(out)
}

fn path_within(grant: &Path, requested: &Path) -> bool {
    match (normalize(grant), normalize(requested)) {
        (Some(g), Some(r)) => r.starts_with(&g),
        _ => false,
    }
}

/// The permissions granted to one plugin, with the audit sink that records checks.
///
/// Cheap to clone; every call of the plugin carries one.
#[derive(Clone)]
pub struct PermissionGuard {
    plugin: Arc<str>,
    granted: Arc<[Permission]>,
    audit: Option<Arc<dyn AuditSink>>,
}

impl fmt::Debug for PermissionGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermissionGuard")
            .field("plugin", &self.plugin)
            .field("granted", &self.granted)
            .finish()
    }
}

impl PermissionGuard {
    /// A guard that grants nothing and audits nothing.
    pub fn none() -> Self {
        PermissionGuard {
            plugin: Arc::from(""),
            granted: Arc::from(Vec::new()),
            audit: None,
        }
    }

    /// A guard for `plugin` granting `granted`, auditing to `audit`.
    ///
    /// File grants are resolved through the file system (symlinks followed), as file checks
    /// are, so a grant of a symlinked directory covers the directory it points to.
    pub fn new(plugin: &str, granted: Vec<Permission>, audit: Option<Arc<dyn AuditSink>>) -> Self {
        let granted: Vec<Permission> = granted
            .into_iter()
            .map(|p| match p {
                Permission::FileRead { path } => Permission::FileRead {
                    path: resolve_on_disk(&path),
                },
                Permission::FileWrite { path } => Permission::FileWrite {
                    path: resolve_on_disk(&path),
                },
                other => other,
            })
            .collect();
        PermissionGuard {
            plugin: Arc::from(plugin),
            granted: Arc::from(granted),
            audit,
        }
    }

    /// The granted permissions.
    pub fn granted(&self) -> &[Permission] {
        &self.granted
    }

    /// Whether `requested` is granted, without auditing.
    pub fn allows(&self, requested: &Permission) -> bool {
        self.granted.iter().any(|g| g.covers(requested))
    }

    /// Checks `requested`: `Ok` when granted, a permission error otherwise. Denials are
    /// audited (grants are audited once, when the plugin is activated).
    pub fn check(&self, requested: &Permission) -> Result<()> {
        if self.allows(requested) {
            return Ok(());
        }
        if let Some(audit) = &self.audit {
            audit.record(&AuditEvent::new(
                &*self.plugin,
                "permission.deny",
                requested.to_string(),
                Outcome::Denied,
            ));
        }
        tracing::warn!(plugin = %self.plugin, permission = %requested, "permission denied");
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("plugin `{}` was not granted {requested}", self.plugin),
        )
        .with_context("plugin", &*self.plugin)
        .set_permanent())
    }

    /// Checks that the file at `path` may be read.
    ///
    /// The path is resolved as the file system would open it (symlinks followed), so a link
    /// inside a granted directory that points outside it is denied.
    pub fn check_read(&self, path: &Path) -> Result<()> {
        self.check(&Permission::FileRead {
            path: resolve_on_disk(path),
        })
    }

    /// Checks that the file at `path` may be written (resolved like [`Self::check_read`]).
    pub fn check_write(&self, path: &Path) -> Result<()> {
        self.check(&Permission::FileWrite {
            path: resolve_on_disk(path),
        })
    }
}

/// `path` made absolute against the current directory (lexically; the file need not exist).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `path` as the file system resolves it: the longest existing prefix canonicalized
/// (symlinks followed, `..` applied), the rest appended as written.
pub fn resolve_on_disk(path: &Path) -> PathBuf {
    let absolute = absolute(path);
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &str) -> Permission {
        Permission::FileRead { path: p.into() }
    }

    #[test]
    fn directory_grant_covers_files_below_but_not_escapes() {
        let grant = read("/data");
        assert!(grant.covers(&read("/data/in/sales.csv")));
        assert!(!grant.covers(&read("/data/../etc/passwd")));
        assert!(!grant.covers(&read("/database")));
    }

    #[test]
    fn relative_paths_meet_absolute_ones_through_the_current_directory() {
        let cwd = std::env::current_dir().unwrap();
        assert!(read("/").covers(&read("examples/data/sales.db")));
        assert!(read(cwd.to_str().unwrap()).covers(&read("examples/data")));
        assert!(read("examples").covers(&read(cwd.join("examples/x").to_str().unwrap())));
        assert!(!read("examples").covers(&read("/etc/passwd")));
        assert!(!read("/nowhere").covers(&read("examples/data")));
        assert!(read("data").covers(&read("data/a.csv")));
        assert!(!read("data").covers(&read("other/a.csv")));
    }

    #[test]
    fn write_grant_implies_read_but_not_the_reverse() {
        let write = Permission::FileWrite {
            path: "/out".into(),
        };
        assert!(write.covers(&read("/out/a.csv")));
        assert!(!read("/out").covers(&Permission::FileWrite {
            path: "/out/a.csv".into()
        }));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_out_of_a_granted_directory_is_denied() {
        let granted = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), granted.path().join("link")).unwrap();
        std::fs::write(granted.path().join("ok.txt"), "x").unwrap();
        let guard = PermissionGuard::new(
            "file",
            vec![Permission::FileRead {
                path: granted.path().to_path_buf(),
            }],
            None,
        );
        assert!(guard.check_read(&granted.path().join("ok.txt")).is_ok());
        assert!(
            guard
                .check_read(&granted.path().join("not-yet-there.txt"))
                .is_ok()
        );
        let err = guard
            .check_read(&granted.path().join("link").join("secret.txt"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn host_wildcards_match_subdomains_only() {
        let grant = Permission::Network {
            host: "*.snowflakecomputing.com".into(),
        };
        let host = |h: &str| Permission::Network { host: h.into() };
        assert!(grant.covers(&host("acme.snowflakecomputing.com")));
        assert!(grant.covers(&host("ACME.SnowflakeComputing.com")));
        assert!(!grant.covers(&host("snowflakecomputing.com")));
        assert!(!grant.covers(&host("evil-snowflakecomputing.com")));
    }
}
