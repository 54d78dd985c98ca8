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
//! Per port it behaves as a list of bindings, oldest first, one per call.

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

/// Where an address lives: its table's key and which port of the pair it is.
enum Key {
    V4(u64),
    V6(u128, u16),
}

fn key(a: &SocketAddr) -> (Key, bool) {
    let port = a.port();
    let odd = port & 1 == 1;
    let k = match a.ip() {
        IpAddr::V4(ip) => Key::V4((u64::from(u32::from(ip)) << 15) | u64::from(port >> 1)),
        IpAddr::V6(ip) => Key::V6(u128::from(ip), port >> 1),
    };
    (k, odd)
}

/// The table. See the module documentation.
#[derive(Default)]
pub(crate) struct Endpoints {
    v4: Map<u64>,
    v6: Map<(u128, u16)>,
    /// Bindings held, all ports.
    recs: usize,
}

impl Endpoints {
    fn list(&self, a: &SocketAddr) -> (Option<&Recs>, bool) {
        let (k, odd) = key(a);
        let l = match k {
            Key::V4(k) => self.v4.get(&k),
            Key::V6(ip, p) => self.v6.get(&(ip, p)),
        };
        (l, odd)
    }

    /// Runs `f` on the list of `a`'s pair of ports (created empty if missing; removed if `f`
    /// leaves it empty), keeping the count of bindings.
    fn with_list<T>(
        &mut self,
        a: &SocketAddr,
        create: bool,
        f: impl FnOnce(&mut Recs, bool) -> T,
    ) -> Option<T> {
        fn run<K: std::hash::Hash + Eq, T>(
            m: &mut Map<K>,
            k: K,
            create: bool,
            recs: &mut usize,
            f: impl FnOnce(&mut Recs) -> T,
        ) -> Option<T> {
            use std::collections::hash_map::Entry;
            let mut e = match m.entry(k) {
                Entry::Occupied(e) => e,
                Entry::Vacant(e) if create => e.insert_entry(Recs::new()),
                Entry::Vacant(_) => return None,
            };
            let before = e.get().len();
            let out = f(e.get_mut());
            let after = e.get().len();
            *recs = *recs + after - before;
            if after == 0 {
                e.remove();
            }
            Some(out)
        }
        let (k, odd) = key(a);
        match k {
            Key::V4(k) => run(&mut self.v4, k, create, &mut self.recs, |l| f(l, odd)),
            Key::V6(ip, p) => run(&mut self.v6, (ip, p), create, &mut self.recs, |l| f(l, odd)),
        }
    }

    /// The calls bound to `a`, oldest first (bindings of completed calls included, until a
    /// sweep).
    pub fn get(&self, a: &SocketAddr) -> impl DoubleEndedIterator<Item = Binding> + Clone + '_ {
        let (l, odd) = self.list(a);
        l.map_or(&[][..], |l| l.as_slice())
            .iter()
            .filter(move |r| r.odd() == odd)
            .map(|r| r.binding())
    }

    /// Binds a call to `a` as its latest binding there (a binding of the same call at `a` is
    /// replaced). Returns how many other calls' bindings `a` holds.
    pub fn bind(&mut self, a: &SocketAddr, b: Binding) -> usize {
        self.with_list(a, true, |l, odd| {
            l.retain(|r| !(r.odd() == odd && r.call_ref() == b.call_ref));
            let others = l.iter().filter(|r| r.odd() == odd).count();
            l.push(Rec::new(b, odd));
            others
        })
        .unwrap_or(0)
    }

    /// Drops a call's binding to `a`.
    pub fn unbind(&mut self, a: &SocketAddr, call_ref: CallRef) {
        self.with_list(a, false, |l, odd| {
            l.retain(|r| !(r.odd() == odd && r.call_ref() == call_ref));
        });
    }

    /// Drops the bindings to `a` of calls that are not `open`, then the oldest until at most
    /// `max` are left.
    pub fn trim(&mut self, a: &SocketAddr, open: impl Fn(CallRef) -> bool, max: usize) {
        self.with_list(a, false, |l, odd| {
            l.retain(|r| r.odd() != odd || open(r.call_ref()));
            let mut n = l.iter().filter(|r| r.odd() == odd).count();
            while n > max {
                if let Some(i) = l.iter().position(|r| r.odd() == odd) {
                    l.remove(i);
                }
                n -= 1;
            }
        });
    }

    /// Drops every binding of calls that are not `open`: one pass over the table.
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
    }

    /// Bindings held (a call bound to an endpoint counts once per endpoint).
    pub fn bindings(&self) -> usize {
        self.recs
    }

    /// Endpoints with a binding of an `open` call.
    pub fn bound_endpoints(&self, open: impl Fn(CallRef) -> bool) -> usize {
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

    #[test]
    fn ports_of_a_pair_keep_their_own_bindings() {
        let mut t = Endpoints::default();
        let rtp = addr("10.0.0.1:4000");
        let rtcp = addr("10.0.0.1:4001");
        assert_eq!(t.bind(&rtp, b(1, Side::Caller, false)), 0);
        assert_eq!(t.bind(&rtcp, b(1, Side::Caller, true)), 0);
        // Another call on the RTCP port only (RTCP on an odd port of its own).
        assert_eq!(t.bind(&rtcp, b(2, Side::Callee, true)), 1);
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
        assert_eq!(t.bind(&a, b(1, Side::Callee, false)), 1);
        let refs: Vec<_> = t.get(&a).map(|x| x.call_ref).collect();
        assert_eq!(refs, [2, 1]);
        assert_eq!(t.get(&a).last().unwrap().side, Side::Callee);
        t.unbind(&a, 2);
        t.unbind(&a, 1);
        assert_eq!(t.bindings(), 0);
        assert!(t.v6.is_empty(), "an empty entry is removed");
    }

    #[test]
    fn trim_drops_closed_calls_first_then_the_oldest() {
        let mut t = Endpoints::default();
        let a = addr("10.0.0.1:4000");
        let other = addr("10.0.0.1:4001");
        t.bind(&other, b(9, Side::Caller, true));
        for r in 1..=6 {
            t.bind(&a, b(r, Side::Caller, false));
        }
        // Calls 2 and 9 are closed; keep at most 3 at `a`.
        t.trim(&a, |r| r != 2 && r != 9, 3);
        let refs: Vec<_> = t.get(&a).map(|x| x.call_ref).collect();
        assert_eq!(refs, [4, 5, 6]);
        // The other port of the pair is untouched by a trim of `a`.
        assert_eq!(t.get(&other).count(), 1);
        assert_eq!(t.bindings(), 4);
        t.sweep(|r| r != 9 && r != 5);
        assert_eq!(t.bindings(), 2);
        assert_eq!(t.get(&other).count(), 0);
    }

    #[test]
    fn large_call_refs_survive_packing() {
        let mut t = Endpoints::default();
        let a = addr("10.0.0.1:65535");
        let r = (1 << 56) - 1;
        t.bind(&a, b(r, Side::Callee, true));
        assert_eq!(t.get(&a).next(), Some(b(r, Side::Callee, true)));
    }
}
