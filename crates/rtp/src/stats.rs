//! Per-stream statistics: RFC 3550 A.1 sequence accounting and A.8 interarrival jitter.

/// RTP clock rate of a static payload type (RFC 3551 table 4/5), `None` for dynamic ones.
pub fn clock_rate_for_static(pt: u8) -> Option<u32> {
    match pt {
        0 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 13 | 15 | 18 => Some(8000),
        6 => Some(16000),
        10 | 11 => Some(44100),
        14 | 25 | 26 | 28 | 31 | 32 | 33 | 34 => Some(90000),
        16 => Some(11025),
        17 => Some(22050),
        _ => None,
    }
}

/// How many sequence numbers behind the highest one a packet may arrive and still be
/// recognised as a duplicate or a late (reordered) packet.
const WINDOW: u64 = 1024;

/// Running statistics of one RTP stream (one SSRC between two transport addresses).
///
/// Feed packets in capture order with [`StreamStats::push`]. Memory is constant.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStats {
    /// Packets received, duplicates included.
    pub packets: u64,
    /// Copies of a sequence number already received.
    pub duplicates: u64,
    /// Packets that arrived after a packet with a higher sequence number.
    pub reordered: u64,
    /// Times the 16-bit sequence number wrapped.
    pub seq_wraps: u32,
    /// Packets with the marker bit set.
    pub markers: u64,
    /// SSRC changes are counted by the caller (the key includes the SSRC); payload type changes here.
    pub payload_type_changes: u32,
    /// Last payload type seen.
    pub payload_type: u8,
    /// Every payload type seen (bit n: payload type n).
    pub payload_types_seen: u128,
    /// Capture time of the first and last packet (µs).
    pub first_us: i64,
    /// See `first_us`.
    pub last_us: i64,
    /// Smallest and largest gap between consecutive regular packets (µs; see [`StreamStats::push`]).
    pub min_delta_us: i64,
    /// See `min_delta_us`.
    pub max_delta_us: i64,
    /// Running mean of the gaps (ms) and of the jitter (ms), over regular packets.
    mean_delta_ms: f64,
    /// Interarrival jitter in ms (RFC 3550 A.8), its maximum and running mean.
    jitter: f64,
    max_jitter: f64,
    mean_jitter: f64,
    analysed: u64,
    /// Capture time (ms after the first packet) and extended RTP timestamp of the last packet
    /// that was in timestamp order.
    last_time_ms: f64,
    last_ts_ext: i64,
    ts_ext_prev: i64,
    base_ext: u64,
    max_ext: u64,
    seen: [u64; (WINDOW / 64) as usize],
}

impl Default for StreamStats {
    fn default() -> Self {
        StreamStats {
            packets: 0,
            duplicates: 0,
            reordered: 0,
            seq_wraps: 0,
            markers: 0,
            payload_type_changes: 0,
            payload_types_seen: 0,
            payload_type: 0,
            first_us: 0,
            last_us: 0,
            min_delta_us: i64::MAX,
            max_delta_us: 0,
            mean_delta_ms: 0.0,
            jitter: 0.0,
            max_jitter: 0.0,
            mean_jitter: 0.0,
            analysed: 0,
            last_time_ms: 0.0,
            last_ts_ext: 0,
            ts_ext_prev: 0,
            base_ext: 0,
            max_ext: 0,
            seen: [0; (WINDOW / 64) as usize],
        }
    }
}

impl StreamStats {
    /// A stream with no packets yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn bit(&mut self, ext: u64) -> (usize, u64) {
        let slot = (ext % WINDOW) as usize;
        (slot / 64, 1u64 << (slot % 64))
    }

    fn seen_get(&mut self, ext: u64) -> bool {
        let (w, m) = self.bit(ext);
        self.seen.get(w).is_some_and(|v| v & m != 0)
    }

    fn seen_set(&mut self, ext: u64, on: bool) {
        let (w, m) = self.bit(ext);
        if let Some(v) = self.seen.get_mut(w) {
            if on {
                *v |= m
            } else {
                *v &= !m
            }
        }
    }

    /// Extends a 32-bit RTP timestamp relative to the previous packet's (wraps either way).
    fn extend_ts(&mut self, ts: u32) -> i64 {
        let prev = self.ts_ext_prev;
        let low = (prev as u32) as i64;
        let diff = i64::from(ts) - low;
        let step = if diff > i64::from(i32::MAX) {
            diff - (1i64 << 32)
        } else if diff < i64::from(i32::MIN) {
            diff + (1i64 << 32)
        } else {
            diff
        };
        let ext = prev + step;
        self.ts_ext_prev = ext;
        ext
    }

    /// Accounts one packet: capture time in µs, its RTP header fields and the clock rate
    /// (Hz) of its payload type. `clock` is `None` for payload types whose timestamps do not
    /// advance with time (RFC 4733 telephone-event) or are unknown: such packets get no jitter.
    ///
    /// Delta and jitter follow Wireshark's RTP stream analysis, the reference operators
    /// compare with: jitter is updated for every packet with a clock
    /// (J = (15·J + |arrival − expected|)/16, expected from the last packet in timestamp
    /// order); min/max/mean delta and max/mean jitter include only *regular* packets — not the
    /// first, not marker-bit packets, not comfort noise (PT 13/19) or the packet after it, and
    /// not packets whose timestamp goes back. Loss, duplicates and reordering follow RFC 3550
    /// A.1 with a window of recent sequence numbers.
    pub fn push(
        &mut self,
        ts_us: i64,
        seq: u16,
        rtp_ts: u32,
        pt: u8,
        marker: bool,
        clock: Option<u32>,
    ) {
        self.payload_types_seen |= 1u128 << (pt & 0x7f);
        if self.packets == 0 {
            self.first_us = ts_us;
            self.base_ext = u64::from(seq) + 65536;
            self.max_ext = self.base_ext;
            self.payload_type = pt;
            self.seen_set(self.max_ext, true);
            self.ts_ext_prev = i64::from(rtp_ts);
            self.last_ts_ext = i64::from(rtp_ts);
            self.last_time_ms = 0.0;
            self.analysed = 1;
            if marker {
                self.markers += 1;
            }
            self.packets = 1;
            self.last_us = ts_us;
            return;
        }
        if self.account_seq(seq) {
            // A copy of a packet already analysed: counted, not timed again.
            self.packets += 1;
            self.last_us = ts_us;
            if marker {
                self.markers += 1;
            }
            return;
        }
        let now_ms = ts_us.saturating_sub(self.first_us) as f64 / 1000.0;
        let ts_ext = self.extend_ts(rtp_ts);
        let in_order = ts_ext >= self.last_ts_ext;
        let is_cn = |p: u8| p == 13 || p == 19;
        let follows_cn = is_cn(self.payload_type);
        if pt != self.payload_type {
            self.payload_type_changes += 1;
        }
        self.payload_type = pt;
        let delta_ms = now_ms - self.last_time_ms;
        let clock = clock.filter(|r| *r > 0);
        if let Some(rate) = clock {
            let nominal_ms = (ts_ext - self.last_ts_ext) as f64 / (f64::from(rate) / 1000.0);
            let diff = (now_ms - (self.last_time_ms + nominal_ms)).abs();
            self.jitter = (15.0 * self.jitter + diff) / 16.0;
        }
        if marker {
            self.markers += 1;
        }
        let regular = !marker && !is_cn(pt) && in_order && !follows_cn;
        if regular {
            let d_us = (delta_ms * 1000.0).round() as i64;
            self.max_delta_us = self.max_delta_us.max(d_us);
            self.min_delta_us = self.min_delta_us.min(d_us);
            // Running means as the reference tool keeps them: weighted by the packets
            // analysed before this one, updated on regular packets only.
            let n = self.analysed as f64;
            self.mean_delta_ms = (self.mean_delta_ms * (n - 1.0) + delta_ms) / n;
            if clock.is_some() {
                self.max_jitter = self.max_jitter.max(self.jitter);
                self.mean_jitter = (self.mean_jitter * (n - 1.0) + self.jitter) / n;
            }
        }
        self.last_time_ms = now_ms;
        self.last_ts_ext = ts_ext;
        self.analysed += 1;
        self.packets += 1;
        self.last_us = ts_us;
    }

    /// RFC 3550 A.1 accounting; true when the packet is a duplicate.
    fn account_seq(&mut self, seq: u16) -> bool {
        // Extended sequence number closest to the highest one seen so far.
        let cycle = self.max_ext & !0xffff;
        let cands = [cycle.wrapping_sub(65536), cycle, cycle + 65536];
        let ext = cands
            .into_iter()
            .map(|c| c | u64::from(seq))
            .filter(|e| *e >= 65536 || cycle == 0)
            .min_by_key(|e| e.abs_diff(self.max_ext))
            .unwrap_or(cycle | u64::from(seq));
        if ext > self.max_ext {
            if ext >> 16 > self.max_ext >> 16 {
                self.seq_wraps += 1;
            }
            // Clear window bits of the numbers skipped over.
            let from = (self.max_ext + 1).max(ext.saturating_sub(WINDOW - 1));
            for e in from..ext {
                self.seen_set(e, false);
            }
            self.max_ext = ext;
            self.seen_set(ext, true);
        } else if self.max_ext - ext < WINDOW && ext >= self.base_ext {
            if self.seen_get(ext) {
                self.duplicates += 1;
                return true;
            } else {
                self.reordered += 1;
                self.seen_set(ext, true);
            }
        } else if ext < self.base_ext && self.base_ext - ext < WINDOW {
            // Late packet from before the first one seen: extends the range.
            self.reordered += 1;
            self.base_ext = ext;
        } else {
            self.reordered += 1;
        }
        false
    }

    /// The payload types seen, in increasing order.
    pub fn payload_types(&self) -> Vec<u8> {
        (0u8..128)
            .filter(|p| self.payload_types_seen & (1u128 << p) != 0)
            .collect()
    }

    /// Packets the sequence range calls for (highest − lowest + 1).
    pub fn expected(&self) -> u64 {
        if self.packets == 0 {
            0
        } else {
            self.max_ext - self.base_ext + 1
        }
    }

    /// Packets missing from the sequence range, duplicates not counted as received (never negative).
    pub fn lost(&self) -> u64 {
        self.expected()
            .saturating_sub(self.packets.saturating_sub(self.duplicates))
    }

    /// Current jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter
    }

    /// Largest jitter of a regular packet, in milliseconds.
    pub fn max_jitter_ms(&self) -> f64 {
        self.max_jitter
    }

    /// Mean jitter over regular packets, in milliseconds.
    pub fn mean_jitter_ms(&self) -> f64 {
        self.mean_jitter
    }

    /// Mean gap between regular packets in milliseconds.
    pub fn mean_delta_ms(&self) -> f64 {
        self.mean_delta_ms
    }

    /// Smallest gap between regular packets in milliseconds (0 with fewer than two packets).
    pub fn min_delta_ms(&self) -> f64 {
        if self.min_delta_us == i64::MAX {
            0.0
        } else {
            self.min_delta_us as f64 / 1000.0
        }
    }

    /// Largest gap between packets in milliseconds.
    pub fn max_delta_ms(&self) -> f64 {
        self.max_delta_us as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed(seqs: &[u16]) -> StreamStats {
        let mut s = StreamStats::new();
        for (i, q) in seqs.iter().enumerate() {
            let t = i as i64 * 20_000;
            s.push(t, *q, u32::from(*q) * 160, 8, false, Some(8000));
        }
        s
    }

    #[test]
    fn counts_loss_duplicates_and_reordering() {
        let s = feed(&[10, 11, 13, 12, 12, 15]);
        assert_eq!(s.packets, 6);
        assert_eq!(s.expected(), 6);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.reordered, 1);
        assert_eq!(s.lost(), 1); // 14
    }

    #[test]
    fn sequence_wrap_is_not_loss() {
        let s = feed(&[65534, 65535, 0, 1]);
        assert_eq!(s.seq_wraps, 1);
        assert_eq!(s.expected(), 4);
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn perfectly_paced_stream_has_zero_jitter() {
        let s = feed(&[1, 2, 3, 4, 5]);
        assert!(s.max_jitter_ms().abs() < 1e-9);
        assert!((s.mean_delta_ms() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn jitter_follows_rfc3550_recurrence() {
        let mut s = StreamStats::new();
        s.push(0, 1, 0, 0, false, Some(8000));
        // 5 ms late: D = 0.005 s, J = 0.005/16.
        s.push(25_000, 2, 160, 0, false, Some(8000));
        assert!((s.jitter_ms() - 5.0 / 16.0).abs() < 1e-9);
    }

    #[test]
    fn static_clock_rates() {
        assert_eq!(clock_rate_for_static(8), Some(8000));
        assert_eq!(clock_rate_for_static(9), Some(8000));
        assert_eq!(clock_rate_for_static(101), None);
    }

    proptest! {
        #[test]
        fn lost_never_exceeds_expected(seqs in proptest::collection::vec(any::<u16>(), 1..300)) {
            let s = feed(&seqs);
            prop_assert!(s.lost() <= s.expected());
            prop_assert_eq!(s.packets, seqs.len() as u64);
        }
    }
}
