//! Key-value store access for modules.
//!
//! A module sees the chain state as one ordered byte-keyed map ([`KvStore`]). Each module
//! owns the keys under its own prefix (`<module>/…`, declared in its `state.rs`). The app
//! provides the persistent, merkleised store; this module provides:
//!
//! * [`MemStore`] — an in-memory ordered map (genesis building, tests, simulation);
//! * [`Overlay`] — a write buffer over another store. Reads see buffered writes first;
//!   [`Overlay::commit`] applies them to the base in key order, [`Overlay::discard`] drops them.
//!   The app wraps every transaction in an overlay so a failed tx changes nothing.
//!
//! Helpers [`get_borsh`] / [`set_borsh`] give typed access with borsh (a canonical encoding,
//! so equal values always hash equal).

use std::collections::BTreeMap;

/// An ordered byte-keyed map. Iteration is always in ascending key order.
pub trait KvStore {
    /// Value at `key`, if any.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Write `value` at `key`.
    fn set(&mut self, key: &[u8], value: Vec<u8>);
    /// Remove `key` (no-op if absent).
    fn delete(&mut self, key: &[u8]);
    /// All pairs with `start <= key < end` (`end = None`: no upper bound), ascending.
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)>;
}

/// The smallest key greater than every key starting with `prefix` (`None` if none exists).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// All pairs whose key starts with `prefix`, ascending.
pub fn scan_prefix(store: &dyn KvStore, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let end = prefix_end(prefix);
    store.range(prefix, end.as_deref())
}

/// Read a borsh value; `Ok(None)` if absent, `Err` if the bytes do not decode (state corruption).
pub fn get_borsh<T: borsh::BorshDeserialize>(
    store: &dyn KvStore,
    key: &[u8],
) -> Result<Option<T>, std::io::Error> {
    match store.get(key) {
        None => Ok(None),
        Some(bytes) => T::try_from_slice(&bytes).map(Some),
    }
}

/// Write a borsh value.
pub fn set_borsh<T: borsh::BorshSerialize>(store: &mut dyn KvStore, key: &[u8], value: &T) {
    // Serialising into a Vec cannot fail for in-memory types.
    let bytes = borsh::to_vec(value).unwrap_or_default();
    store.set(key, bytes);
}

/// Concatenate key parts: `key(&[b"bank/balance/", addr, b"/", denom])`.
pub fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// In-memory ordered store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemStore {
    /// Empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Iterate all pairs ascending.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.map.iter()
    }
}

impl KvStore for MemStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }
    fn set(&mut self, key: &[u8], value: Vec<u8>) {
        self.map.insert(key.to_vec(), value);
    }
    fn delete(&mut self, key: &[u8]) {
        self.map.remove(key);
    }
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        use std::ops::Bound;
        let upper = match end {
            Some(e) => Bound::Excluded(e.to_vec()),
            None => Bound::Unbounded,
        };
        if let Some(e) = end {
            if e <= start {
                return Vec::new();
            }
        }
        self.map
            .range((Bound::Included(start.to_vec()), upper))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Buffered writes over a base store; see the module docs.
pub struct Overlay<'a> {
    base: &'a mut dyn KvStore,
    writes: WriteMap,
}

impl<'a> Overlay<'a> {
    /// Start buffering writes over `base`.
    pub fn new(base: &'a mut dyn KvStore) -> Overlay<'a> {
        Overlay {
            base,
            writes: BTreeMap::new(),
        }
    }
    /// Apply the buffered writes to the base, in key order.
    pub fn commit(self) {
        for (k, v) in self.writes {
            match v {
                Some(v) => self.base.set(&k, v),
                None => self.base.delete(&k),
            }
        }
    }
    /// Drop the buffered writes.
    pub fn discard(self) {}
    /// The buffered writes (`None` = delete), ascending.
    pub fn pending(&self) -> &WriteMap {
        &self.writes
    }
}

impl KvStore for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        read_through(&self.writes, &*self.base, key)
    }
    fn set(&mut self, key: &[u8], value: Vec<u8>) {
        self.writes.insert(key.to_vec(), Some(value));
    }
    fn delete(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), None);
    }
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        range_through(&self.writes, &*self.base, start, end)
    }
}

/// Buffered writes over a base store, ascending by key (`None` = delete).
pub type WriteMap = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The value at `key` as seen through buffered `writes` over `base`: a buffered write or
/// delete wins, otherwise the base answers. (Shared by [`Overlay`] and the app's block buffer.)
pub fn read_through(writes: &WriteMap, base: &dyn KvStore, key: &[u8]) -> Option<Vec<u8>> {
    match writes.get(key) {
        Some(v) => v.clone(),
        None => base.get(key),
    }
}

/// All pairs with `start <= key < end` as seen through buffered `writes` over `base`,
/// ascending: the base's pairs with buffered writes applied and buffered deletes removed.
pub fn range_through(
    writes: &WriteMap,
    base: &dyn KvStore,
    start: &[u8],
    end: Option<&[u8]>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    if end.is_some_and(|e| e <= start) {
        return Vec::new();
    }
    apply_writes(base.range(start, end), writes, start, end)
}

/// `base` (the pairs of `start <= key < end`, ascending) with the buffered `writes` of that
/// range applied: writes replace or add pairs, deletes remove them. Ascending.
pub fn apply_writes(
    base: Vec<(Vec<u8>, Vec<u8>)>,
    writes: &WriteMap,
    start: &[u8],
    end: Option<&[u8]>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    use std::ops::Bound;
    if end.is_some_and(|e| e <= start) {
        return Vec::new();
    }
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
    let upper = match end {
        Some(e) => Bound::Excluded(e.to_vec()),
        None => Bound::Unbounded,
    };
    for (k, v) in writes.range((Bound::Included(start.to_vec()), upper)) {
        match v {
            Some(v) => {
                merged.insert(k.clone(), v.clone());
            }
            None => {
                merged.remove(k);
            }
        }
    }
    merged.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefix_end_skips_ff_bytes() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    #[test]
    fn discarded_overlay_changes_nothing() {
        let mut base = MemStore::new();
        base.set(b"k", b"v".to_vec());
        let before = base.clone();
        {
            let mut o = Overlay::new(&mut base);
            o.set(b"k", b"w".to_vec());
            o.delete(b"k");
            o.set(b"z", b"1".to_vec());
            o.discard();
        }
        assert_eq!(base, before);
    }

    proptest! {
        /// An overlay behaves exactly like writing to a copy of the base.
        #[test]
        fn overlay_matches_direct_writes(
            init in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 1..3), any::<u8>(), 0..8),
            ops in proptest::collection::vec((proptest::collection::vec(0u8..4, 1..3), proptest::option::of(any::<u8>())), 0..16),
            lo in proptest::collection::vec(0u8..4, 0..2),
        ) {
            let mut base = MemStore::new();
            for (k, v) in &init { base.set(k, vec![*v]); }
            let mut direct = base.clone();
            for (k, v) in &ops {
                match v { Some(v) => direct.set(k, vec![*v]), None => direct.delete(k) }
            }
            let mut o = Overlay::new(&mut base);
            for (k, v) in &ops {
                match v { Some(v) => o.set(k, vec![*v]), None => o.delete(k) }
            }
            prop_assert_eq!(o.range(&lo, None), direct.range(&lo, None));
            prop_assert_eq!(scan_prefix(&o, &lo), scan_prefix(&direct, &lo));
            o.commit();
            prop_assert_eq!(base, direct);
        }
    }
}
