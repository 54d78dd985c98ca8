//! `siphon wav`: a stored call to a WAV file.

use std::path::Path;

use anyhow::Result;
use siphon_media::{RenderOptions, RenderReport};
use siphon_store::{CallRow, Store};

/// Renders the call into `path` (written to a temporary name, then renamed).
pub fn write(
    store: &Store,
    row: &CallRow,
    opts: RenderOptions,
    path: &Path,
) -> Result<RenderReport> {
    let tmp = path.with_extension("wav.part");
    let f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let rep = siphon_server::export::write_wav(store, row, opts, f)?;
    std::fs::rename(&tmp, path)?;
    Ok(rep)
}
