//! What the integration tests share: the corpus and the reference tools.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The corpus directory: `KERNELIZE_CORPUS`, or `/var/tmp/kernelize-corpus`.
pub(crate) fn corpus_dir() -> PathBuf {
    std::env::var_os("KERNELIZE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/kernelize-corpus"))
}

/// A corpus file, at most `limit` bytes of it; fails the test, saying how to unpack the
/// corpus, when it is missing.
pub(crate) fn corpus_file(relative: &str, limit: usize) -> Vec<u8> {
    let dir = corpus_dir();
    let path = dir.join(relative);
    match std::fs::read(&path) {
        Ok(mut data) => {
            data.truncate(limit);
            data
        }
        Err(e) => panic!(
            "cannot read the corpus file {} ({e}); unpack the corpus with \
             `../shared/corpus/unpack {}` from the repository root, or run scripts/test, \
             or point KERNELIZE_CORPUS at an unpacked corpus",
            path.display(),
            dir.display()
        ),
    }
}

/// Runs a reference tool; fails the test, with the Debian package to install, when the
/// tool is missing. The caller checks the exit status.
pub(crate) fn run_tool(program: &str, package: &str, args: &[&str]) -> Output {
    match Command::new(program).args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == IoKind::NotFound => panic!(
            "the `{program}` command is missing; scripts/test installs it (Debian package \
             {package})"
        ),
        Err(e) => panic!("cannot run `{program}`: {e}"),
    }
}

/// Fails the test with the tool's message unless it succeeded.
pub(crate) fn assert_success(program: &str, args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A path as `&str` (temporary paths are UTF-8).
pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
