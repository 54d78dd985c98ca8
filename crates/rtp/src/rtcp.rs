//! RTCP reports (RFC 3550 §6.4 SR/RR, RFC 3611 XR VoIP metrics) and round-trip time from
//! LSR/DLSR.

use crate::header::rtcp_packets;

/// One reception report block: what a receiver says about a source it hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source reported on (the media sender).
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub ext_high_seq: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from the source (0: none).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

/// XR VoIP metrics (RFC 3611 §4.7), the figures an endpoint computes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoipMetrics {
    /// The source reported on.
    pub ssrc: u32,
    /// Loss rate in 1/256.
    pub loss_rate: u8,
    /// Discard rate in 1/256.
    pub discard_rate: u8,
    /// Round-trip delay in ms.
    pub round_trip_ms: u16,
    /// End-system delay in ms.
    pub end_system_ms: u16,
    /// R factor (127: unavailable).
    pub r_factor: u8,
    /// MOS-LQ ×10 (127: unavailable).
    pub mos_lq: u8,
    /// MOS-CQ ×10 (127: unavailable).
    pub mos_cq: u8,
}

/// What one RTCP packet of a compound says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpReport {
    /// Sender report: sender SSRC, middle 32 bits of its NTP time, packet and octet counts,
    /// reception blocks.
    Sender {
        /// Sender.
        ssrc: u32,
        /// Middle 32 bits of the NTP timestamp (what receivers echo as LSR).
        ntp_mid: u32,
        /// Packets sent.
        packets: u32,
        /// Octets sent.
        octets: u32,
        /// Reception report blocks.
        blocks: Vec<ReportBlock>,
    },
    /// Receiver report.
    Receiver {
        /// Reporter.
        ssrc: u32,
        /// Reception report blocks.
        blocks: Vec<ReportBlock>,
    },
    /// Source description (names not kept).
    Sdes,
    /// Goodbye.
    Bye,
    /// Extended report with VoIP metrics blocks.
    Xr {
        /// Reporter.
        ssrc: u32,
        /// VoIP metrics blocks.
        voip: Vec<VoipMetrics>,
    },
    /// Anything else (APP, feedback...).
    Other(u8),
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn block(b: &[u8]) -> Option<ReportBlock> {
    let lost = be32(b, 4)?;
    let cum = (lost & 0x00ff_ffff) as i32;
    let cum = if cum & 0x0080_0000 != 0 {
        cum - 0x0100_0000
    } else {
        cum
    };
    Some(ReportBlock {
        ssrc: be32(b, 0)?,
        fraction_lost: (lost >> 24) as u8,
        cumulative_lost: cum,
        ext_high_seq: be32(b, 8)?,
        jitter: be32(b, 12)?,
        lsr: be32(b, 16)?,
        dlsr: be32(b, 20)?,
    })
}

fn blocks(b: &[u8], from: usize, count: u8) -> Vec<ReportBlock> {
    (0..usize::from(count))
        .map_while(|i| b.get(from + i * 24..from + i * 24 + 24).and_then(block))
        .collect()
}

/// Parses every packet of a compound RTCP packet; stops at the first malformed one.
pub fn parse_rtcp(buf: &[u8]) -> Vec<RtcpReport> {
    let mut out = Vec::new();
    let mut off = 0usize;
    for h in rtcp_packets(buf) {
        let Some(p) = buf.get(off..off + h.len) else {
            break;
        };
        off += h.len;
        let r = match h.packet_type {
            200 => match (
                be32(p, 4),
                be32(p, 8),
                be32(p, 12),
                be32(p, 20),
                be32(p, 24),
            ) {
                (Some(ssrc), Some(hi), Some(lo), Some(packets), Some(octets)) => {
                    RtcpReport::Sender {
                        ssrc,
                        ntp_mid: (hi << 16) | (lo >> 16),
                        packets,
                        octets,
                        blocks: blocks(p, 28, h.count),
                    }
                }
                _ => break,
            },
            201 => match be32(p, 4) {
                Some(ssrc) => RtcpReport::Receiver {
                    ssrc,
                    blocks: blocks(p, 8, h.count),
                },
                None => break,
            },
            202 => RtcpReport::Sdes,
            203 => RtcpReport::Bye,
            207 => {
                let Some(ssrc) = be32(p, 4) else { break };
                let mut voip = Vec::new();
                let mut at = 8;
                while let (Some(bt), Some(words)) = (p.get(at), be16(p, at + 2)) {
                    let len = 4 + usize::from(words) * 4;
                    if *bt == 7 && len >= 36 {
                        if let (Some(s), Some(b)) = (be32(p, at + 4), p.get(at + 8..at + 36)) {
                            voip.push(VoipMetrics {
                                ssrc: s,
                                loss_rate: b.first().copied().unwrap_or(0),
                                discard_rate: b.get(1).copied().unwrap_or(0),
                                round_trip_ms: be16(b, 8).unwrap_or(0),
                                end_system_ms: be16(b, 10).unwrap_or(0),
                                r_factor: b.get(16).copied().unwrap_or(127),
                                mos_lq: b.get(18).copied().unwrap_or(127),
                                mos_cq: b.get(19).copied().unwrap_or(127),
                            });
                        }
                    }
                    at += len;
                }
                RtcpReport::Xr { ssrc, voip }
            }
            t => RtcpReport::Other(t),
        };
        out.push(r);
    }
    out
}

/// Round-trip time from a report block, given when (capture time, µs) the SR it echoes was
/// seen: RTT = (now − SR seen) − DLSR. Using the capture clock for both ends avoids trusting
/// the endpoints' NTP clocks. `None` when the result is negative or above 60 s.
pub fn rtt_us(sr_seen_us: i64, now_us: i64, dlsr: u32) -> Option<i64> {
    let dlsr_us = (i64::from(dlsr) * 1_000_000) >> 16;
    let rtt = now_us - sr_seen_us - dlsr_us;
    (0..=60_000_000).contains(&rtt).then_some(rtt)
}

/// NTP middle 32 bits from seconds (since 1900) and microseconds, as HEP RTCP JSON gives them.
pub fn ntp_mid(sec: u64, usec: u64) -> u32 {
    let frac = (usec.min(999_999) << 32) / 1_000_000;
    (((sec & 0xffff) << 16) | (frac >> 16)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sr(ssrc: u32, ntp_hi: u32, ntp_lo: u32, rb: Option<[u32; 6]>) -> Vec<u8> {
        let count = u8::from(rb.is_some());
        let words = 6 + 6 * u16::from(count);
        let mut v = vec![0x80 | count, 200];
        v.extend_from_slice(&words.to_be_bytes());
        for x in [ssrc, ntp_hi, ntp_lo, 160, 10, 1600] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        if let Some(b) = rb {
            for x in b {
                v.extend_from_slice(&x.to_be_bytes());
            }
        }
        v
    }

    #[test]
    fn sender_and_receiver_reports_decode() {
        let mut c = sr(0x1111, 0xAABB_CCDD, 0x1122_3344, None);
        // RR with one block about 0x1111: 10/256 lost, cumulative −2, jitter 80, LSR, DLSR 0.5 s.
        c.extend_from_slice(&[0x81, 201, 0, 7]);
        for x in [
            0x2222u32,
            0x1111,
            (10 << 24) | 0x00ff_fffe,
            5000,
            80,
            0xCCDD_1122,
            32768,
        ] {
            c.extend_from_slice(&x.to_be_bytes());
        }
        let r = parse_rtcp(&c);
        assert_eq!(r.len(), 2);
        match &r[0] {
            RtcpReport::Sender {
                ssrc,
                ntp_mid,
                packets,
                ..
            } => {
                assert_eq!((*ssrc, *ntp_mid, *packets), (0x1111, 0xCCDD_1122, 10));
            }
            o => panic!("{o:?}"),
        }
        match &r[1] {
            RtcpReport::Receiver { ssrc, blocks } => {
                assert_eq!(*ssrc, 0x2222);
                let b = blocks[0];
                assert_eq!(
                    (b.ssrc, b.fraction_lost, b.cumulative_lost),
                    (0x1111, 10, -2)
                );
                assert_eq!((b.jitter, b.lsr, b.dlsr), (80, 0xCCDD_1122, 32768));
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn rtt_subtracts_the_receivers_hold_time() {
        // SR seen at t=1.000 s, RR at t=1.620 s, DLSR 0.5 s → RTT 120 ms.
        assert_eq!(rtt_us(1_000_000, 1_620_000, 32768), Some(120_000));
        assert_eq!(rtt_us(1_000_000, 1_400_000, 32768), None);
    }

    #[test]
    fn xr_voip_metrics_decode() {
        let mut v = vec![0x80, 207, 0, 10];
        v.extend_from_slice(&0x3333u32.to_be_bytes());
        v.extend_from_slice(&[7, 0, 0, 8]);
        v.extend_from_slice(&0x1111u32.to_be_bytes());
        let mut body = [0u8; 28];
        body[0] = 12; // loss rate
        body[8..10].copy_from_slice(&150u16.to_be_bytes());
        body[16] = 88; // R
        body[18] = 41; // MOS-LQ 4.1
        v.extend_from_slice(&body);
        let r = parse_rtcp(&v);
        match &r[0] {
            RtcpReport::Xr { voip, .. } => {
                assert_eq!(voip[0].loss_rate, 12);
                assert_eq!(voip[0].round_trip_ms, 150);
                assert_eq!((voip[0].r_factor, voip[0].mos_lq), (88, 41));
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn garbage_never_panics() {
        for n in 0..80u8 {
            let v: Vec<u8> = (0..n).map(|i| i.wrapping_mul(97) ^ 0x80).collect();
            let _ = parse_rtcp(&v);
        }
    }
}
