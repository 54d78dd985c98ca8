//! A map keyed by [`CallRef`], laid out for the order in which a collector visits calls.

use std::collections::VecDeque;

use crate::CallRef;

type SpillMap<V> = std::collections::HashMap<CallRef, V, foldhash::fast::RandomState>;

/// Empty slots the window may hold beyond as many as it has entries before the oldest
/// entries move to the spill map. A ref past the window's end by more than this restarts the
/// window there (the entries in it move to the spill map) instead of filling the gap.
const SLACK: usize = 1 << 12;

/// Values by [`CallRef`], for the open calls of a correlator or store writer.
///
/// Refs are handed out in sequence and a collector visits calls mostly in that order: the
/// messages of the calls just opened, the completions of calls opened seconds earlier, a
/// flush's rows. A hash map scatters neighbouring refs over its whole table, so with hundreds
/// of thousands of open calls every visit is a cache miss (and with refs as keys, sequential
/// inserts and removals leave a hash table full of tombstones). Here the recent refs live in a
/// window, a ring of slots indexed by `ref - base`: neighbouring refs are neighbours in
/// memory, and a visit is an index. Refs older than the window (a call that stays open long
/// while later ones come and go, or a call reopened from the index) live in a hash map.
///
/// Invariant: every key `>= base` is in the window, every key `< base` in the spill map; the
/// window's first slot, when there is one, is filled.
#[derive(Debug)]
pub struct RefMap<V> {
    base: CallRef,
    window: VecDeque<Option<V>>,
    in_window: usize,
    spill: SpillMap<V>,
}

impl<V> Default for RefMap<V> {
    fn default() -> Self {
        RefMap {
            base: 0,
            window: VecDeque::new(),
            in_window: 0,
            spill: SpillMap::default(),
        }
    }
}

impl<V> RefMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries in the map.
    pub fn len(&self) -> usize {
        self.in_window + self.spill.len()
    }

    /// True when the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The window slot of `r`, if `r` is in the window's range.
    fn slot(&self, r: CallRef) -> Option<usize> {
        let i = usize::try_from(r.checked_sub(self.base)?).ok()?;
        (i < self.window.len()).then_some(i)
    }

    /// The value of `r`.
    pub fn get(&self, r: &CallRef) -> Option<&V> {
        let r = *r;
        if r >= self.base {
            return self.slot(r).and_then(|i| self.window.get(i)?.as_ref());
        }
        self.spill.get(&r)
    }

    /// The value of `r`, to change.
    pub fn get_mut(&mut self, r: &CallRef) -> Option<&mut V> {
        let r = *r;
        if r >= self.base {
            return match self.slot(r) {
                Some(i) => self.window.get_mut(i)?.as_mut(),
                None => None,
            };
        }
        self.spill.get_mut(&r)
    }

    /// True when `r` has a value.
    pub fn contains_key(&self, r: &CallRef) -> bool {
        self.get(r).is_some()
    }

    /// Sets the value of `r`, giving back the one it replaces.
    pub fn insert(&mut self, r: CallRef, v: V) -> Option<V> {
        if r < self.base {
            return self.spill.insert(r, v);
        }
        if self.window.is_empty() {
            self.base = r;
        }
        let mut i = r - self.base;
        if i >= (self.window.len() + SLACK) as u64 {
            // Far ahead: the window restarts at `r`, what it held keys below it now.
            self.spill_window();
            self.base = r;
            i = 0;
        }
        let i = i as usize;
        if i >= self.window.len() {
            self.window.resize_with(i + 1, || None);
        }
        let old = self.window.get_mut(i).and_then(|s| s.replace(v));
        if old.is_none() {
            self.in_window += 1;
        }
        self.compact();
        old
    }

    /// The value of `r`, made with `make` when there is none.
    pub fn get_or_insert_with(&mut self, r: CallRef, make: impl FnOnce() -> V) -> &mut V {
        if !self.contains_key(&r) {
            self.insert(r, make());
        }
        match self.get_mut(&r) {
            Some(v) => v,
            // Just inserted; `insert` moves entries only below `r`'s slot or to the spill
            // map, where `get_mut` finds them.
            None => unreachable!("an inserted ref is found"),
        }
    }

    /// Takes the value of `r` out of the map.
    pub fn remove(&mut self, r: &CallRef) -> Option<V> {
        let r = *r;
        if r < self.base {
            return self.spill.remove(&r);
        }
        let i = self.slot(r)?;
        let v = self.window.get_mut(i)?.take()?;
        self.in_window -= 1;
        self.trim_front();
        // Removals behind a long-lived front entry leave empty slots: bounded here as on insert.
        self.compact();
        Some(v)
    }

    /// Drops the empty slots at the window's front.
    fn trim_front(&mut self) {
        while matches!(self.window.front(), Some(None)) {
            self.window.pop_front();
            self.base = self.base.saturating_add(1);
        }
    }

    /// Moves the oldest entries to the spill map while the window is mostly empty slots
    /// (long-lived entries at its front would otherwise keep every slot behind them).
    fn compact(&mut self) {
        while self.window.len() > 2 * self.in_window + SLACK {
            match self.window.pop_front() {
                Some(Some(v)) => {
                    self.spill.insert(self.base, v);
                    self.in_window -= 1;
                }
                Some(None) => {}
                None => break,
            }
            self.base = self.base.saturating_add(1);
            self.trim_front();
        }
    }

    /// Moves every window entry to the spill map.
    fn spill_window(&mut self) {
        let base = self.base;
        let window = std::mem::take(&mut self.window);
        self.base = self.base.saturating_add(window.len() as u64);
        for (i, v) in window.into_iter().enumerate() {
            if let Some(v) = v {
                self.spill.insert(base + i as u64, v);
            }
        }
        self.in_window = 0;
    }

    /// Every entry, spilled ones first, then the window's in ref order.
    pub fn iter(&self) -> impl Iterator<Item = (CallRef, &V)> {
        let base = self.base;
        self.spill.iter().map(|(r, v)| (*r, v)).chain(
            self.window
                .iter()
                .enumerate()
                .filter_map(move |(i, v)| Some((base + i as u64, v.as_ref()?))),
        )
    }

    /// Every key (see [`iter`](Self::iter)).
    pub fn keys(&self) -> impl Iterator<Item = CallRef> + '_ {
        self.iter().map(|(r, _)| r)
    }

    /// Every value (see [`iter`](Self::iter)).
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Takes every entry out.
    pub fn drain(&mut self) -> impl Iterator<Item = (CallRef, V)> {
        let base = self.base;
        let window = std::mem::take(&mut self.window);
        self.base = self.base.saturating_add(window.len() as u64);
        self.in_window = 0;
        let spill = std::mem::take(&mut self.spill);
        spill.into_iter().chain(
            window
                .into_iter()
                .enumerate()
                .filter_map(move |(i, v)| Some((base + i as u64, v?))),
        )
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(CallRef, &mut V) -> bool) {
        self.spill.retain(|r, v| keep(*r, v));
        let base = self.base;
        for (i, slot) in self.window.iter_mut().enumerate() {
            if let Some(v) = slot {
                if !keep(base + i as u64, v) {
                    *slot = None;
                    self.in_window -= 1;
                }
            }
        }
        self.trim_front();
        self.compact();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Remove(u64),
        Get(u64),
        GetOrInsert(u64),
        Retain(u64),
    }

    /// Refs as a collector makes them: mostly just ahead of the last, some old ones, some far
    /// ahead or far behind.
    fn op() -> impl Strategy<Value = Op> {
        let r = prop_oneof![
            8 => 0u64..64,
            2 => 0u64..4096,
            1 => Just((SLACK as u64) + 100),
            1 => (0u64..3).prop_map(|k| k * (SLACK as u64) * 3),
            1 => Just(u64::MAX - 1),
        ];
        prop_oneof![
            4 => r.clone().prop_map(Op::Insert),
            3 => r.clone().prop_map(Op::Remove),
            3 => r.clone().prop_map(Op::Get),
            2 => r.clone().prop_map(Op::GetOrInsert),
            1 => (2u64..5).prop_map(Op::Retain),
        ]
    }

    fn check(m: &RefMap<u64>, model: &BTreeMap<u64, u64>) {
        assert_eq!(m.len(), model.len());
        let mut all: Vec<(u64, u64)> = m.iter().map(|(r, v)| (r, *v)).collect();
        all.sort_unstable();
        let want: Vec<(u64, u64)> = model.iter().map(|(r, v)| (*r, *v)).collect();
        assert_eq!(all, want);
        assert!(m.window.front().is_none_or(|s| s.is_some()));
        assert!(m.spill.keys().all(|r| *r < m.base));
        assert!(m.window.len() <= 2 * m.in_window + SLACK + 1);
    }

    proptest! {
        #[test]
        fn behaves_as_an_ordered_map(ops in proptest::collection::vec(op(), 1..400)) {
            let mut m = RefMap::new();
            let mut model = BTreeMap::new();
            // A moving base, so that runs of refs go well past the slack.
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Insert(d) => {
                        let r = next.wrapping_add(d);
                        next = next.wrapping_add(d / 8);
                        prop_assert_eq!(m.insert(r, r ^ 1), model.insert(r, r ^ 1));
                    }
                    Op::Remove(d) => {
                        let r = next.wrapping_sub(d);
                        prop_assert_eq!(m.remove(&r), model.remove(&r));
                    }
                    Op::Get(d) => {
                        let r = next.wrapping_sub(d);
                        prop_assert_eq!(m.get(&r), model.get(&r));
                        if let Some(v) = m.get_mut(&r) {
                            *v += 2;
                            *model.get_mut(&r).unwrap() += 2;
                        }
                    }
                    Op::GetOrInsert(d) => {
                        let r = next.wrapping_add(d);
                        next = next.wrapping_add(d / 8);
                        let want = *model.entry(r).or_insert(r ^ 3);
                        prop_assert_eq!(*m.get_or_insert_with(r, || r ^ 3), want);
                    }
                    Op::Retain(k) => {
                        m.retain(|r, _| r % k != 0);
                        model.retain(|r, _| r % k != 0);
                    }
                }
                check(&m, &model);
            }
            let drained: BTreeMap<u64, u64> = m.drain().collect();
            prop_assert_eq!(drained, model);
            prop_assert!(m.is_empty());
        }
    }

    #[test]
    fn a_long_lived_entry_does_not_keep_the_slots_behind_it() {
        let mut m = RefMap::new();
        m.insert(0, 0u64);
        for r in 1..200_000u64 {
            m.insert(r, r);
            if r > 10 {
                m.remove(&(r - 10));
            }
        }
        assert_eq!(m.len(), 11);
        assert!(
            m.window.len() < 2 * 11 + SLACK + 2,
            "{} slots",
            m.window.len()
        );
        assert_eq!(m.get(&0), Some(&0), "the old entry is still there");
        assert_eq!(m.remove(&0), Some(0));
        assert_eq!(m.get(&199_999), Some(&199_999));
    }

    #[test]
    fn get_or_insert_with_makes_once() {
        let mut m = RefMap::new();
        *m.get_or_insert_with(7, || 1u32) += 1;
        *m.get_or_insert_with(7, || 100) += 1;
        *m.get_or_insert_with(3, || 5) += 0;
        *m.get_or_insert_with(7 + 2 * (SLACK as u64), || 9) += 0;
        assert_eq!(m.get(&7), Some(&3));
        assert_eq!(m.get(&3), Some(&5));
        assert_eq!(m.get(&(7 + 2 * (SLACK as u64))), Some(&9));
        assert_eq!(m.len(), 3);
    }
}
