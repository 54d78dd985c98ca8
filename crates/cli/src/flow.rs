//! SIP message lists, ladder diagrams and pcap export of one call.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Result;
use siphon_store::{format_rfc3339_us, CallRow, Store};

pub use siphon_server::export::{message_json, FlowMessage};

/// The call's SIP messages in capture order.
pub fn messages(store: &Store, row: &CallRow) -> Result<Vec<FlowMessage>> {
    Ok(siphon_server::export::messages(store, row, None, None)?)
}

const COL: usize = 26;

/// A text ladder: one column per endpoint, an arrow per message with time and delta.
pub fn ladder(row: &CallRow, msgs: &[FlowMessage]) -> String {
    let mut cols: Vec<SocketAddr> = Vec::new();
    for m in msgs {
        for a in [m.src, m.dst] {
            if !cols.contains(&a) {
                cols.push(a);
            }
        }
    }
    let mut out = String::new();
    out.push_str(&format!(
        "Call-ID {}  {} → {}  state {}  {} messages\n\n",
        row.call_id_str(),
        row.caller,
        row.callee,
        row.state,
        msgs.len()
    ));
    let lead = 32;
    let mut head = " ".repeat(lead);
    for c in &cols {
        let s = c.to_string();
        let s: String = s.chars().take(COL - 1).collect();
        head.push_str(&format!("{s:^COL$}"));
    }
    out.push_str(head.trim_end());
    out.push('\n');
    let width = COL * cols.len();
    let center = |i: usize| i * COL + COL / 2;
    let mut prev: Option<i64> = None;
    for m in msgs {
        let mut line: Vec<char> = vec![' '; width];
        for i in 0..cols.len() {
            if let Some(c) = line.get_mut(center(i)) {
                *c = '│';
            }
        }
        let a = cols.iter().position(|c| *c == m.src).unwrap_or(0);
        let b = cols.iter().position(|c| *c == m.dst).unwrap_or(0);
        let (l, r) = (center(a.min(b)), center(a.max(b)));
        for c in line.iter_mut().take(r).skip(l + 1) {
            *c = '─';
        }
        if a < b {
            if let Some(c) = line.get_mut(r.saturating_sub(1)) {
                *c = '►';
            }
        } else if a > b {
            if let Some(c) = line.get_mut(l + 1) {
                *c = '◄';
            }
        }
        let mut label = match (&m.method, m.status) {
            (Some(meth), _) => meth.clone(),
            (None, Some(s)) => format!("{s} {}", m.reason.clone().unwrap_or_default()),
            _ => "?".into(),
        };
        if m.has_sdp {
            label.push_str(" (SDP)");
        }
        let span = r.saturating_sub(l).saturating_sub(3);
        let label: Vec<char> = label.chars().take(span).collect();
        let start = l + 2 + (span.saturating_sub(label.len())) / 2;
        for (i, ch) in label.iter().enumerate() {
            if let Some(c) = line.get_mut(start + i) {
                *c = *ch;
            }
        }
        let t = format_rfc3339_us(m.ts_us);
        let time = t.get(11..26).unwrap_or(&t);
        let delta = match prev {
            Some(p) => format!("+{:.6}", (m.ts_us - p) as f64 / 1e6),
            None => String::new(),
        };
        prev = Some(m.ts_us);
        let body: String = line.into_iter().collect();
        out.push_str(&format!("{time:<16}{delta:>14}  {}\n", body.trim_end()));
    }
    out
}

/// Writes the call's packets to a pcap file (via a temporary name); returns how many.
pub fn write_pcap(store: &Store, row: &CallRow, path: &Path) -> Result<usize> {
    let tmp = path.with_extension("pcap.part");
    let f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let n = siphon_server::export::write_pcap(store, row, f)?;
    std::fs::rename(&tmp, path)?;
    Ok(n)
}
