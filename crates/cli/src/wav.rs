//! `siphon wav`: a stored call to a WAV file.

use std::path::Path;

use anyhow::Result;
use siphon_media::{render_call, CallPacket, RenderOptions, RenderReport};
use siphon_store::{CallRow, Store};

/// Renders the call into `path` (written to a temporary name, then renamed).
pub fn write(
    store: &Store,
    row: &CallRow,
    opts: RenderOptions,
    path: &Path,
) -> Result<RenderReport> {
    let mut recs = store.records(row)?;
    recs.sort_by_key(|r| r.ts_us);
    let packets: Vec<CallPacket<'_>> = recs
        .iter()
        .map(|r| CallPacket {
            ts_us: r.ts_us,
            is_sip: r.kind == siphon_ingest::Kind::Sip as u8,
            link: r.link,
            frame: &r.data,
        })
        .collect();
    let tmp = path.with_extension("wav.part");
    let f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let rep = render_call(&packets, row.start_us, &row.from_tag, opts, f)?;
    std::fs::rename(&tmp, path)?;
    Ok(rep)
}
