#![allow(dead_code)] // each test or bench uses part of it
//! Builds large captures from the corpus's `many_calls_24.pcap`: copy k of the 24 calls gets its
//! own Call-IDs and tags, SSRCs and RTP ports, and starts `spacing_us` after copy k−1, so copies
//! overlap in time like a busy trunk. Frames are re-built (Ethernet/IPv4/UDP) with new lengths.

use std::io::Write;
use std::path::Path;

/// One frame of the template: time and the UDP payload with its addresses.
struct Tpl {
    ts_us: i64,
    ip: [u8; 8],
    sport: u16,
    dport: u16,
    payload: Vec<u8>,
}

fn read_template(corpus: &Path) -> Vec<Tpl> {
    let b = std::fs::read(corpus.join("many_calls_24.pcap")).expect("many_calls_24.pcap");
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let u32le = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let (sec, usec, incl) = (u32le(off), u32le(off + 4), u32le(off + 8) as usize);
        let f = &b[off + 16..off + 16 + incl];
        off += 16 + incl;
        if f.len() < 42 || f[12..14] != [8, 0] || f[23] != 17 {
            continue;
        }
        let ihl = usize::from(f[14] & 0x0f) * 4;
        let u = 14 + ihl;
        let mut ip = [0u8; 8];
        ip.copy_from_slice(&f[26..34]);
        out.push(Tpl {
            ts_us: i64::from(sec) * 1_000_000 + i64::from(usec),
            ip,
            sport: u16::from_be_bytes([f[u], f[u + 1]]),
            dport: u16::from_be_bytes([f[u + 2], f[u + 3]]),
            payload: f[u + 8..].to_vec(),
        });
    }
    out
}

/// RTP ports of copy k: the template uses 20000..20099 (callers) and 40000..40099 (callees);
/// copies within 270 of each other (far more than overlap in time) never share a port.
fn map_port(p: u16, k: u32) -> u16 {
    if p < 10000 {
        return p; // SIP
    }
    let side = u32::from(p >= 40000);
    (10000 + (k % 270) * 200 + side * 100 + u32::from(p) % 100) as u16
}

/// Rewrites the port of every `m=audio PORT` line.
fn rewrite_sdp_ports(p: &[u8], k: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i..].starts_with(b"m=audio ") {
            out.extend_from_slice(b"m=audio ");
            i += 8;
            let start = i;
            while i < p.len() && p[i].is_ascii_digit() {
                i += 1;
            }
            let port: u16 = std::str::from_utf8(&p[start..i]).unwrap().parse().unwrap();
            out.extend_from_slice(map_port(port, k).to_string().as_bytes());
        } else {
            out.push(p[i]);
            i += 1;
        }
    }
    out
}

pub fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len() + 16);
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fn frame(ip: &[u8; 8], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42 + payload.len());
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut iph = [
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    iph[2..4].copy_from_slice(&total.to_be_bytes());
    iph[12..20].copy_from_slice(ip);
    let mut sum: u32 = iph
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    iph[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&iph);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// What was written.
pub struct Generated {
    pub packets: u64,
    pub calls: u64,
    pub bytes: u64,
}

/// Writes `copies` copies of the template to `out` (pcap, µs), time-ordered.
pub fn generate(corpus: &Path, out: &Path, copies: u32, spacing_us: i64) -> Generated {
    let tpl = read_template(corpus);
    let t0 = tpl.first().map(|t| t.ts_us).unwrap_or(0);
    // Pre-compute every copy's frames lazily in time order: a k-way merge over copies, which
    // are the same template shifted in time, is a merge of (tpl index, copy) by time.
    let mut events: Vec<(i64, u32, u32)> = Vec::with_capacity(tpl.len() * copies as usize);
    for k in 0..copies {
        for (i, t) in tpl.iter().enumerate() {
            events.push((t.ts_us - t0 + i64::from(k) * spacing_us, k, i as u32));
        }
    }
    events.sort_unstable();
    let f = std::fs::File::create(out).unwrap();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    w.write_all(&hdr).unwrap();
    let mut bytes = hdr.len() as u64;
    let base = 1_800_000_000_000_000i64;
    for (ts, k, i) in &events {
        let t = &tpl[*i as usize];
        let payload = if t.sport < 10000 || t.dport < 10000 {
            let tag = format!("-5918x{k}@");
            let p = replace_all(&t.payload, b"-5918@", tag.as_bytes());
            // SDP ports stay 5 digits, so Content-Length holds.
            rewrite_sdp_ports(&p, *k)
        } else {
            let mut p = t.payload.clone();
            if p.len() >= 12 && p[0] >> 6 == 2 {
                for (j, b) in k.to_be_bytes().iter().enumerate() {
                    p[8 + j] ^= b;
                }
            }
            p
        };
        let fr = frame(
            &t.ip,
            map_port(t.sport, *k),
            map_port(t.dport, *k),
            &payload,
        );
        let abs = base + ts;
        let mut rec = Vec::with_capacity(16);
        rec.extend_from_slice(&((abs / 1_000_000) as u32).to_le_bytes());
        rec.extend_from_slice(&((abs % 1_000_000) as u32).to_le_bytes());
        rec.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        w.write_all(&rec).unwrap();
        w.write_all(&fr).unwrap();
        bytes += (16 + fr.len()) as u64;
    }
    w.flush().unwrap();
    Generated {
        packets: events.len() as u64,
        calls: u64::from(copies) * 24,
        bytes,
    }
}
