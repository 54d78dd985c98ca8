#![allow(dead_code)] // each test uses part of it
//! Scratch directories for tests: removed when the test that made one passes, kept for a look
//! when it fails (a panicking test skips the removal).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// A directory under the temp directory (`root`), and the path the test works with inside it.
pub struct Scratch {
    root: PathBuf,
    path: PathBuf,
}

impl Scratch {
    /// A fresh, empty `siphon-{prefix}-{pid}-{name}` directory.
    pub fn new(prefix: &str, name: &str) -> Scratch {
        let root =
            std::env::temp_dir().join(format!("siphon-{prefix}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Scratch {
            path: root.clone(),
            root,
        }
    }

    /// The same directory, with `sub` inside it as the path to work with.
    pub fn at(mut self, sub: &str) -> Scratch {
        self.path = self.root.join(sub);
        self
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<OsStr> for Scratch {
    fn as_ref(&self) -> &OsStr {
        self.path.as_os_str()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
