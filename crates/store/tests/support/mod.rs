//! Helpers shared by the store's integration tests.

use std::path::{Path, PathBuf};

/// A reference capture of `../shared/corpus` (read there, never copied).
pub fn corpus(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(name);
    assert!(p.is_file(), "corpus file {} is missing", p.display());
    p
}

/// An empty directory of this test run.
pub fn scratch(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}
