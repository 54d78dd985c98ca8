//! The endpoint table: which calls' SDP announced each media address.
//!
//! At high call rates it holds over a million endpoints (every open call's RTP and RTCP, both
//! sides), far more than the caches, so every call that opens costs a cache miss per entry it
//! touches. It is kept dense for that reason:
//! - one entry per pair of ports (an even port and the odd one after it), so RTP and its RTCP
//!   on RTP + 1, the usual layout, share one entry and one miss;
//! - an IPv4 entry's key is one integer (address and port pair), not a 32-byte `SocketAddr`;
//! - a binding is one integer: the call ref, the side, RTP or RTCP, and which port of the
//!   pair (two inline per entry, no allocation).
//!
//! Per port it behaves as a list of bindings, oldest first, one per call. Binds are logged and
//! applied when the table is read: see [`Endpoints`].

use std::net::{IpAddr, SocketAddr};

use smallvec::SmallVec;

use crate::CallRef;

/// Randomly seeded (no collision attacks from crafted addresses) and fast.
type Map<K> = std::collections::HashMap<K, Recs, foldhash::fast::RandomState>;

/// The bindings of one pair of ports, oldest first.
type Recs = SmallVec<[Rec; 2]>;

/// Which side of the call announced an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Caller,
    Callee,
}

/// A call bound to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Binding {
    pub call_ref: CallRef,
    pub side: Side,
    pub rtcp: bool,
}

/// A binding packed into one integer: the call ref above 8 bits of flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec(u64);

const ODD: u64 = 1;
const CALLEE: u64 = 2;
const RTCP: u64 = 4;
/// In a log entry: an unbind, not a bind.
const UNBIND: u64 = 8;

impl Rec {
    fn new(b: Binding, odd: bool) -> Rec {
        // Refs count calls from one; 2^56 of them is beyond any store's life.
        let mut v = b.call_ref << 8;
        if odd {
            v |= ODD;
        }
        if b.side == Side::Callee {
            v |= CALLEE;
        }
        if b.rtcp {
            v |= RTCP;
        }
        Rec(v)
    }

    fn call_ref(self) -> CallRef {
        self.0 >> 8
    }

    fn odd(self) -> bool {
        self.0 & ODD != 0
    }

    fn binding(self) -> Binding {
        Binding {
            call_ref: self.call_ref(),
            side: if self.0 & CALLEE != 0 {
                Side::Callee
            } else {
                Side::Caller
            },
            rtcp: self.0 & RTCP != 0,
        }
    }
}

/// Room a log keeps once applied (entries).
const KEPT_LOG_ROOM: usize = 4096;

/// Where an address lives: its table's key (the pair of ports) and which port of the pair.
enum Key {
    V4(u64),
    V6((u128, u16)),
}

fn key(a: &SocketAddr) -> (Key, bool) {
    let port = a.port();
    let odd = port & 1 == 1;
    let k = match a.ip() {
        IpAddr::V4(ip) => Key::V4((u64::from(u32::from(ip)) << 15) | u64::from(port >> 1)),
        IpAddr::V6(ip) => Key::V6((u128::from(ip), port >> 1)),
    };
    (k, odd)
}

/// The table. See the module documentation.
///
/// Binds and unbinds are logged, and applied to the table only when it is read
/// ([`Endpoints::settle`]): a log entry is one sequential write, a table entry a cache miss or
/// two. A feed that carries no media (HEP from a SIP proxy) never reads it, and the log
/// entries of calls that complete meanwhile are dropped unread ([`Endpoints::sweep`]). Binds
/// and unbinds of different addresses commute, so the two logs (IPv4, IPv6) need no common
/// order.
#[derive(Default)]
pub(crate) struct Endpoints {
    v4: Map<u64>,
    v6: Map<(u128, u16)>,
    /// Bindings held in the tables, all ports.
    recs: usize,
    log4: Vec<(u64, Rec)>,
    log6: Vec<((u128, u16), Rec)>,
}

/// Applies one logged bind or unbind to its table. Returns the change in bindings held.
fn apply<K: std::hash::Hash + Eq>(
    m: &mut Map<K>,
    k: K,
    op: Rec,
    open: &impl Fn(CallRef) -> bool,
    max: usize,
) -> isize {
    use std::collections::hash_map::Entry;
    // A completed call's binding would only wait there for a sweep.
    if !open(op.call_ref()) {
        return 0;
    }
    let odd = op.odd();
    let same = |r: &Rec| r.odd() == odd && r.call_ref() == op.call_ref();
    let mut e = match m.entry(k) {
        Entry::Occupied(e) => e,
        Entry::Vacant(_) if op.0 & UNBIND != 0 => return 0,
        Entry::Vacant(e) => e.insert_entry(Recs::new()),
    };
    let l = e.get_mut();
    let before = l.len();
    l.retain(|r| !same(r));
    if op.0 & UNBIND == 0 {
        let others = l.iter().filter(|r| r.odd() == odd).count();
        l.push(Rec(op.0 & !UNBIND));
        if others >= max {
            // A full list: completed calls' bindings go first, then the oldest.
            l.retain(|r| r.odd() != odd || open(r.call_ref()));
            let mut n = l.iter().filter(|r| r.odd() == odd).count();
            while n > max {
                if let Some(i) = l.iter().position(|r| r.odd() == odd) {
                    l.remove(i);
                }
                n -= 1;
            }
        }
    }
    let after = l.len();
    if after == 0 {
        e.remove();
    }
    after as isize - before as isize
}

impl Endpoints {
    fn log(&mut self, a: &SocketAddr, rec: Rec) {
        match key(a).0 {
            Key::V4(k) => self.log4.push((k, rec)),
            Key::V6(k) => self.log6.push((k, rec)),
        }
    }

    /// Binds a call to `a` as its latest binding there (a binding of the same call at `a` is
    /// replaced). Where `a` then holds more than `max` calls, completed calls' bindings are
    /// dropped first, then the oldest. Logged: see [`Endpoints::settle`].
    pub fn bind(&mut self, a: &SocketAddr, b: Binding) {
        self.log(a, Rec::new(b, key(a).1));
    }

    /// Drops a call's binding to `a`. Logged: see [`Endpoints::settle`].
    pub fn unbind(&mut self, a: &SocketAddr, call_ref: CallRef) {
        let b = Binding {
            call_ref,
            side: Side::Caller,
            rtcp: false,
        };
        let r = Rec::new(b, key(a).1);
        self.log(a, Rec(r.0 | UNBIND));
    }

    /// Binds and unbinds logged and not yet applied.
    pub fn logged(&self) -> usize {
        self.log4.len() + self.log6.len()
    }

    /// Applies the logged binds and unbinds, in order, keeping at most `max` calls per
    /// endpoint (`open` tells which calls are still open; those of calls no longer open are
    /// dropped). Look-ups read the table only.
    pub fn settle(&mut self, open: impl Fn(CallRef) -> bool, max: usize) {
        let mut d = 0isize;
        // Drained, not taken: a feed with media applies a few binds at a time, into a log
        // that keeps its room.
        for (k, op) in self.log4.drain(..) {
            d += apply(&mut self.v4, k, op, &open, max);
        }
        for (k, op) in self.log6.drain(..) {
            d += apply(&mut self.v6, k, op, &open, max);
        }
        // A log that grew while no media was looked up gives its memory back.
        self.log4.shrink_to(KEPT_LOG_ROOM);
        self.log6.shrink_to(KEPT_LOG_ROOM);
        self.recs = self.recs.saturating_add_signed(d);
    }

    /// The calls bound to `a`, oldest first (bindings of completed calls included, until a
    /// sweep). Reads the table: settle first.
    pub fn get(&self, a: &SocketAddr) -> impl DoubleEndedIterator<Item = Binding> + Clone + '_ {
        debug_assert_eq!(self.logged(), 0, "endpoint table read before it is settled");
        let (k, odd) = key(a);
        let l = match k {
            Key::V4(k) => self.v4.get(&k),
            Key::V6(k) => self.v6.get(&k),
        };
        l.map_or(&[][..], |l| l.as_slice())
            .iter()
            .filter(move |r| r.odd() == odd)
            .map(|r| r.binding())
    }

    /// Drops every binding, applied or logged, of calls that are not `open`: one pass over the
    /// table and the logs.
    pub fn sweep(&mut self, open: impl Fn(CallRef) -> bool) {
        let mut recs = 0;
        let mut keep = |l: &mut Recs| {
            l.retain(|r| open(r.call_ref()));
            recs += l.len();
            !l.is_empty()
        };
        self.v4.retain(|_, l| keep(l));
        self.v6.retain(|_, l| keep(l));
        self.recs = recs;
        self.log4.retain(|(_, r)| open(r.call_ref()));
        self.log6.retain(|(_, r)| open(r.call_ref()));
    }

    /// Bindings held in the table (a call bound to an endpoint counts once per endpoint).
    pub fn bindings(&self) -> usize {
        self.recs
    }

    /// Endpoints with a binding of an `open` call. Reads the table: settle first.
    pub fn bound_endpoints(&self, open: impl Fn(CallRef) -> bool) -> usize {
        debug_assert_eq!(self.logged(), 0, "endpoint table read before it is settled");
        self.v4
            .values()
            .chain(self.v6.values())
            .map(|l| {
                let even = l.iter().any(|r| !r.odd() && open(r.call_ref()));
                let odd = l.iter().any(|r| r.odd() && open(r.call_ref()));
                usize::from(even) + usize::from(odd)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn b(call_ref: CallRef, side: Side, rtcp: bool) -> Binding {
        Binding {
            call_ref,
            side,
            rtcp,
        }
    }

    const ALL: fn(CallRef) -> bool = |_| true;

    /// The calls bound to `a`, oldest first.
    fn refs(t: &Endpoints, a: &SocketAddr) -> Vec<CallRef> {
        t.get(a).map(|x| x.call_ref).collect()
    }

    #[test]
    fn ports_of_a_pair_keep_their_own_bindings() {
        let mut t = Endpoints::default();
        let rtp = addr("10.0.0.1:4000");
        let rtcp = addr("10.0.0.1:4001");
        t.bind(&rtp, b(1, Side::Caller, false));
        t.bind(&rtcp, b(1, Side::Caller, true));
        // Another call on the RTCP port only (RTCP on an odd port of its own).
        t.bind(&rtcp, b(2, Side::Callee, true));
        assert_eq!(t.logged(), 3);
        assert_eq!(t.bindings(), 0, "logged, not applied");
        t.settle(ALL, 8);
        assert_eq!(t.logged(), 0);
        assert_eq!(t.v4.len(), 1, "one entry for the pair");
        assert_eq!(t.bindings(), 3);
        assert_eq!(t.get(&rtp).collect::<Vec<_>>(), [b(1, Side::Caller, false)]);
        assert_eq!(
            t.get(&rtcp).collect::<Vec<_>>(),
            [b(1, Side::Caller, true), b(2, Side::Callee, true)]
        );
        // Neighbouring pairs and other addresses are apart.
        assert_eq!(t.get(&addr("10.0.0.1:4002")).count(), 0);
        assert_eq!(t.get(&addr("10.0.0.1:3999")).count(), 0);
        assert_eq!(t.get(&addr("10.0.0.2:4000")).count(), 0);
        assert_eq!(t.bound_endpoints(|_| true), 2);
        assert_eq!(t.bound_endpoints(|r| r == 2), 1);
    }

    #[test]
    fn binding_again_moves_a_call_last_and_unbind_empties() {
        let mut t = Endpoints::default();
        let a = addr("[2001:db8::1]:5000");
        t.bind(&a, b(1, Side::Caller, false));
        t.bind(&a, b(2, Side::Caller, false));
        t.bind(&a, b(1, Side::Callee, false));
        t.settle(ALL, 8);
        assert_eq!(refs(&t, &a), [2, 1]);
        assert_eq!(t.get(&a).last().unwrap().side, Side::Callee);
        t.unbind(&a, 2);
        t.unbind(&a, 1);
        // An unbind of an address never bound changes nothing.
        t.unbind(&addr("[2001:db8::1]:5002"), 1);
        t.settle(ALL, 8);
        assert_eq!(t.bindings(), 0);
        assert!(t.v6.is_empty(), "an empty entry is removed");
    }

    #[test]
    fn logged_binds_apply_in_order() {
        let mut t = Endpoints::default();
        let a = addr("10.0.0.1:4000");
        t.bind(&a, b(1, Side::Caller, false));
        t.unbind(&a, 1);
        t.bind(&a, b(2, Side::Caller, false));
        t.bind(&a, b(1, Side::Callee, false));
        t.settle(ALL, 8);
        assert_eq!(refs(&t, &a), [2, 1]);
        t.bind(&a, b(2, Side::Caller, false));
        t.unbind(&a, 1);
        t.settle(ALL, 8);
        assert_eq!(refs(&t, &a), [2]);
        assert_eq!(t.bindings(), 1);
    }

    #[test]
    fn a_full_endpoint_drops_closed_calls_first_then_the_oldest() {
        let mut t = Endpoints::default();
        let a = addr("10.0.0.1:4000");
        let other = addr("10.0.0.1:4001");
        t.bind(&other, b(9, Side::Caller, true));
        for r in 1..=6 {
            t.bind(&a, b(r, Side::Caller, false));
        }
        t.settle(ALL, 8);
        // Calls 5 and 9 have completed since; a seventh call binds where at most 3 are kept.
        t.bind(&a, b(7, Side::Caller, false));
        t.settle(|r| r != 5 && r != 9, 3);
        assert_eq!(refs(&t, &a), [4, 6, 7]);
        // The other port of the pair is not trimmed by `a`'s binds.
        assert_eq!(t.get(&other).count(), 1);
        assert_eq!(t.bindings(), 4);
    }

    #[test]
    fn binds_of_calls_completed_before_they_apply_are_dropped() {
        let mut t = Endpoints::default();
        let a = addr("10.0.0.1:4000");
        t.bind(&a, b(1, Side::Caller, false));
        t.bind(&a, b(2, Side::Caller, false));
        t.bind(&addr("[::1]:4000"), b(1, Side::Caller, false));
        t.settle(|r| r == 2, 8);
        assert_eq!(refs(&t, &a), [2]);
        assert_eq!(t.bindings(), 1);
        assert!(t.v6.is_empty());
    }

    #[test]
    fn a_sweep_drops_closed_calls_from_the_table_and_the_log() {
        let mut t = Endpoints::default();
        let a = addr("10.0.0.1:4000");
        t.bind(&a, b(1, Side::Caller, false));
        t.bind(&a, b(2, Side::Caller, false));
        t.settle(ALL, 8);
        t.bind(&addr("10.0.0.1:4001"), b(1, Side::Caller, true));
        t.bind(&addr("[::1]:4001"), b(3, Side::Caller, true));
        t.bind(&addr("[::1]:4002"), b(2, Side::Caller, true));
        t.sweep(|r| r == 2);
        assert_eq!(t.bindings(), 1);
        assert_eq!(
            t.logged(),
            1,
            "only the open call's bind is left in the log"
        );
        t.settle(ALL, 8);
        assert_eq!(refs(&t, &a), [2]);
        assert_eq!(t.get(&addr("[::1]:4002")).count(), 1);
        assert_eq!(t.get(&addr("[::1]:4001")).count(), 0);
    }

    #[test]
    fn an_applied_log_gives_its_memory_back() {
        let mut t = Endpoints::default();
        for i in 0..100_000u32 {
            let a = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 4000));
            t.bind(&a, b(CallRef::from(i) + 1, Side::Caller, false));
        }
        assert!(t.log4.capacity() >= 100_000);
        t.settle(ALL, 8);
        assert_eq!(t.bindings(), 100_000);
        assert!(t.log4.capacity() <= KEPT_LOG_ROOM, "{}", t.log4.capacity());
    }

    #[test]
    fn large_call_refs_survive_packing() {
        let mut t = Endpoints::default();
        let a = addr("10.0.0.1:65535");
        let r = (1 << 56) - 1;
        t.bind(&a, b(r, Side::Callee, true));
        t.settle(ALL, 8);
        assert_eq!(t.get(&a).next(), Some(b(r, Side::Callee, true)));
    }
}
