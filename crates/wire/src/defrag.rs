//! Bounded IPv4/IPv6 fragment reassembly.
//!
//! etherparse's defragmentation pool has no bound on reassemblies in flight and lets later
//! fragments overwrite earlier bytes; here the pool is bounded (in-flight count, datagram
//! size, capture-time timeout), exact duplicates are ignored and any other overlap rejects
//! the whole datagram (as RFC 5722 asks for IPv6).

use std::collections::HashMap;

use crate::decode::{DecodeError, DecodeStats};

/// Identifies one datagram under reassembly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FragKey {
    pub(crate) v6: bool,
    /// Source address (IPv4 in the first 4 bytes).
    pub(crate) src: [u8; 16],
    /// Destination address (IPv4 in the first 4 bytes).
    pub(crate) dst: [u8; 16],
    pub(crate) id: u32,
    pub(crate) proto: u8,
}

#[derive(Debug, Default)]
struct Entry {
    first_ts: i64,
    data: Vec<u8>,
    /// Received byte ranges: sorted, disjoint, never touching.
    ranges: Vec<(u32, u32)>,
    /// Datagram length, known once the last fragment arrived.
    total: Option<u32>,
}

enum Insert {
    Stored,
    Duplicate,
    Rejected(DecodeError),
}

impl Entry {
    fn reset(&mut self, ts: i64) {
        self.first_ts = ts;
        self.data.clear();
        self.ranges.clear();
        self.total = None;
    }

    fn insert(&mut self, offset: u32, end: u32, more: bool, bytes: &[u8]) -> Insert {
        if let Some(total) = self.total {
            if end > total || (!more && end != total) {
                return Insert::Rejected(DecodeError::BadFragment);
            }
            if !more && offset == end {
                // A repeated empty last fragment.
                return Insert::Duplicate;
            }
        } else if !more && self.ranges.last().is_some_and(|r| r.1 > end) {
            return Insert::Rejected(DecodeError::BadFragment);
        }
        for &(s, e) in &self.ranges {
            if s < end && offset < e {
                let same = s <= offset
                    && end <= e
                    && self.data.get(offset as usize..end as usize) == Some(bytes);
                return if same {
                    Insert::Duplicate
                } else {
                    Insert::Rejected(DecodeError::FragmentOverlap)
                };
            }
        }
        let (o, e) = (offset as usize, end as usize);
        if self.data.len() < e {
            self.data.resize(e, 0);
        }
        if let Some(dst) = self.data.get_mut(o..e) {
            dst.copy_from_slice(bytes);
        }
        if !more {
            self.total = Some(end);
        }
        if offset < end {
            let at = self.ranges.partition_point(|r| r.0 < offset);
            self.ranges.insert(at, (offset, end));
            // Merge with touching neighbours (overlaps were rejected above).
            if let (Some(&next), Some(cur)) = (self.ranges.get(at + 1), self.ranges.get(at)) {
                if cur.1 == next.0 {
                    let merged = (cur.0, next.1);
                    self.ranges.remove(at + 1);
                    if let Some(c) = self.ranges.get_mut(at) {
                        *c = merged;
                    }
                }
            }
            if at > 0 {
                if let (Some(&prev), Some(&cur)) = (self.ranges.get(at - 1), self.ranges.get(at)) {
                    if prev.1 == cur.0 {
                        self.ranges.remove(at);
                        if let Some(p) = self.ranges.get_mut(at - 1) {
                            p.1 = cur.1;
                        }
                    }
                }
            }
        }
        Insert::Stored
    }

    fn complete(&self) -> Option<u32> {
        let total = self.total?;
        (self.ranges.as_slice() == [(0, total)]).then_some(total)
    }
}

/// Reassembly buffers with their bounds.
#[derive(Debug)]
pub(crate) struct DefragPool {
    entries: HashMap<FragKey, Entry>,
    spare: Vec<Entry>,
    out: Vec<u8>,
    scratch: Vec<FragKey>,
    max_entries: usize,
    max_len: u32,
    timeout_us: i64,
    /// No entry expires before this capture time.
    next_expiry: i64,
}

const MAX_SPARE: usize = 16;

impl DefragPool {
    pub(crate) fn new(max_entries: usize, max_len: u32, timeout_us: i64) -> DefragPool {
        DefragPool {
            entries: HashMap::new(),
            spare: Vec::new(),
            out: Vec::new(),
            scratch: Vec::new(),
            max_entries,
            max_len,
            timeout_us,
            next_expiry: i64::MAX,
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.entries.len()
    }

    /// The last completed datagram.
    pub(crate) fn output(&self) -> &[u8] {
        &self.out
    }

    /// Adds one fragment; `Ok(true)` when it completed its datagram, now in [`Self::output`].
    pub(crate) fn add(
        &mut self,
        ts: i64,
        key: FragKey,
        offset: u32,
        more: bool,
        bytes: &[u8],
        stats: &mut DecodeStats,
    ) -> Result<bool, DecodeError> {
        self.expire(ts, stats);
        let end = u32::try_from(bytes.len())
            .ok()
            .and_then(|len| offset.checked_add(len))
            .filter(|end| *end <= self.max_len);
        let Some(end) = end else {
            self.drop_entry(&key);
            return Err(DecodeError::FragmentTooLarge);
        };
        if more && (bytes.is_empty() || !bytes.len().is_multiple_of(8)) {
            self.drop_entry(&key);
            return Err(DecodeError::BadFragment);
        }
        if !self.entries.contains_key(&key) {
            if self.entries.len() >= self.max_entries {
                self.evict_oldest(stats);
            }
            let mut entry = self.spare.pop().unwrap_or_default();
            entry.reset(ts);
            self.entries.insert(key, entry);
            self.next_expiry = self.next_expiry.min(ts.saturating_add(self.timeout_us));
        }
        let Some(entry) = self.entries.get_mut(&key) else {
            return Ok(false);
        };
        match entry.insert(offset, end, more, bytes) {
            Insert::Stored => stats.fragments_held += 1,
            Insert::Duplicate => {
                stats.fragments_duplicate += 1;
                return Ok(false);
            }
            Insert::Rejected(e) => {
                self.drop_entry(&key);
                return Err(e);
            }
        }
        let Some(total) = entry.complete() else {
            return Ok(false);
        };
        if let Some(mut done) = self.entries.remove(&key) {
            std::mem::swap(&mut self.out, &mut done.data);
            self.out.truncate(total as usize);
            self.recycle(done);
        }
        Ok(true)
    }

    fn recycle(&mut self, entry: Entry) {
        if self.spare.len() < MAX_SPARE {
            self.spare.push(entry);
        }
    }

    fn drop_entry(&mut self, key: &FragKey) {
        if let Some(e) = self.entries.remove(key) {
            self.recycle(e);
        }
    }

    fn evict_oldest(&mut self, stats: &mut DecodeStats) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.first_ts)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.drop_entry(&k);
            stats.reassemblies_evicted += 1;
        }
    }

    fn expire(&mut self, now: i64, stats: &mut DecodeStats) {
        if now < self.next_expiry {
            return;
        }
        let timeout = self.timeout_us;
        self.scratch.clear();
        self.scratch.extend(
            self.entries
                .iter()
                .filter(|(_, e)| now.saturating_sub(e.first_ts) >= timeout)
                .map(|(k, _)| *k),
        );
        let mut expired = std::mem::take(&mut self.scratch);
        for k in expired.drain(..) {
            self.drop_entry(&k);
            stats.reassemblies_expired += 1;
        }
        self.scratch = expired;
        self.next_expiry = self
            .entries
            .values()
            .map(|e| e.first_ts.saturating_add(timeout))
            .min()
            .unwrap_or(i64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragKey {
        FragKey {
            v6: false,
            src: [1; 16],
            dst: [2; 16],
            id,
            proto: 17,
        }
    }

    #[test]
    fn ranges_merge_in_any_order() {
        let mut e = Entry::default();
        assert!(matches!(e.insert(16, 24, true, &[3; 8]), Insert::Stored));
        assert!(matches!(e.insert(0, 8, true, &[1; 8]), Insert::Stored));
        assert_eq!(e.complete(), None);
        assert!(matches!(e.insert(24, 30, false, &[4; 6]), Insert::Stored));
        assert!(matches!(e.insert(8, 16, true, &[2; 8]), Insert::Stored));
        assert_eq!(e.ranges, vec![(0, 30)]);
        assert_eq!(e.complete(), Some(30));
    }

    #[test]
    fn duplicate_is_ignored_and_differing_overlap_rejected() {
        let mut e = Entry::default();
        assert!(matches!(e.insert(0, 16, true, &[1; 16]), Insert::Stored));
        assert!(matches!(e.insert(8, 16, true, &[1; 8]), Insert::Duplicate));
        assert!(matches!(
            e.insert(8, 24, true, &[1; 16]),
            Insert::Rejected(DecodeError::FragmentOverlap)
        ));
        assert!(matches!(
            e.insert(0, 16, true, &[9; 16]),
            Insert::Rejected(DecodeError::FragmentOverlap)
        ));
    }

    #[test]
    fn conflicting_ends_are_bad_fragments() {
        let mut e = Entry::default();
        assert!(matches!(e.insert(16, 20, false, &[0; 4]), Insert::Stored));
        assert!(matches!(
            e.insert(24, 32, true, &[0; 8]),
            Insert::Rejected(DecodeError::BadFragment)
        ));
        assert!(matches!(
            e.insert(0, 8, false, &[0; 8]),
            Insert::Rejected(DecodeError::BadFragment)
        ));
    }

    #[test]
    fn pool_evicts_oldest_when_full_and_expires_by_capture_time() {
        let mut pool = DefragPool::new(2, 65_535, 1_000);
        let mut stats = DecodeStats::default();
        assert_eq!(pool.add(0, key(1), 0, true, &[0; 8], &mut stats), Ok(false));
        assert_eq!(
            pool.add(10, key(2), 0, true, &[0; 8], &mut stats),
            Ok(false)
        );
        assert_eq!(
            pool.add(20, key(3), 0, true, &[0; 8], &mut stats),
            Ok(false)
        );
        assert_eq!(stats.reassemblies_evicted, 1);
        assert_eq!(pool.in_flight(), 2);
        assert!(!pool.entries.contains_key(&key(1)));
        // key 2 started at 10, key 3 at 20: at 1015 only key 2 is over 1000 us old.
        assert_eq!(
            pool.add(1_015, key(4), 0, true, &[0; 8], &mut stats),
            Ok(false)
        );
        assert_eq!(stats.reassemblies_expired, 1);
        assert!(!pool.entries.contains_key(&key(2)));
        assert!(pool.entries.contains_key(&key(3)));
    }

    #[test]
    fn too_large_and_unaligned_fragments_are_rejected() {
        let mut pool = DefragPool::new(4, 65_535, 1_000);
        let mut stats = DecodeStats::default();
        assert_eq!(
            pool.add(0, key(1), 65_528, false, &[0; 16], &mut stats),
            Err(DecodeError::FragmentTooLarge)
        );
        assert_eq!(
            pool.add(0, key(1), 0, true, &[0; 7], &mut stats),
            Err(DecodeError::BadFragment)
        );
        assert_eq!(pool.in_flight(), 0);
    }

    #[test]
    fn completion_moves_datagram_to_output() {
        let mut pool = DefragPool::new(4, 65_535, 1_000);
        let mut stats = DecodeStats::default();
        assert_eq!(
            pool.add(0, key(1), 8, false, b"world", &mut stats),
            Ok(false)
        );
        assert_eq!(
            pool.add(0, key(1), 0, true, b"hello, w", &mut stats),
            Ok(true)
        );
        assert_eq!(pool.output(), b"hello, wworld");
        assert_eq!(pool.in_flight(), 0);
        assert_eq!(stats.fragments_held, 2);
    }
}
