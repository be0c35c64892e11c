//! The indexes an object keeps of its live records by the lower-cased value
//! of each unique, external-id or duplicate-rule field: written once a
//! record, so they hold ids inline and hash keys cheaply.

use crate::ids::Rid;
use crate::value::Value;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A multiply-rotate hash over eight bytes at a time: index keys are the
/// simulator's own data, so there is no flooding to resist.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Spread the high bits into the low ones the table picks buckets by.
        let h = self.0;
        (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32)
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// The ids of the live records holding one key, in the order they took it.
pub enum Ids {
    One(Rid),
    Many(Vec<Rid>),
}

impl Ids {
    pub fn as_slice(&self) -> &[Rid] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }

    fn push(&mut self, id: Rid) {
        match self {
            Ids::One(first) => *self = Ids::Many(vec![*first, id]),
            Ids::Many(ids) => ids.push(id),
        }
    }

    /// Drops `id`; answers whether none are left.
    fn remove(&mut self, id: Rid) -> bool {
        match self {
            Ids::One(only) => *only == id,
            Ids::Many(ids) => {
                ids.retain(|i| *i != id);
                match ids.as_slice() {
                    [] => true,
                    [one] => {
                        *self = Ids::One(*one);
                        false
                    }
                    _ => false,
                }
            }
        }
    }
}

/// A stored index key: up to 22 bytes held inline, longer ones boxed.
pub enum Key {
    Inline { len: u8, bytes: [u8; 22] },
    Boxed(Box<[u8]>),
}

impl Key {
    fn new(probe: &[u8]) -> Key {
        if probe.len() <= 22 {
            let mut bytes = [0u8; 22];
            bytes[..probe.len()].copy_from_slice(probe);
            Key::Inline {
                len: probe.len() as u8,
                bytes,
            }
        } else {
            Key::Boxed(probe.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Boxed(bytes) => bytes,
        }
    }
}

// Compared and hashed as bytes, so a map of keys is looked up by a probe's bytes.
impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// The key a value is looked up under, made without an allocation for
/// ASCII text of up to 64 bytes (ids, names, codes, email addresses).
pub enum Probe {
    Short { len: u8, bytes: [u8; 64] },
    Long(String),
}

impl Probe {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Probe::Short { len, bytes } => &bytes[..*len as usize],
            Probe::Long(s) => s.as_bytes(),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

// Text that is not ASCII can lower-case to ASCII (the Kelvin sign to `k`).
impl PartialEq for Probe {
    fn eq(&self, other: &Probe) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Probe {}

/// The key a value is indexed under: text lower-cased, other values in
/// their debug form; null is not indexed.
pub fn key(v: &Value) -> Option<Probe> {
    match v {
        Value::Null => None,
        Value::Text(s) if s.len() <= 64 && s.is_ascii() => {
            let mut bytes = [0u8; 64];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            bytes[..s.len()].make_ascii_lowercase();
            Some(Probe::Short {
                len: s.len() as u8,
                bytes,
            })
        }
        Value::Text(s) => Some(Probe::Long(s.to_lowercase())),
        other => Some(Probe::Long(format!("{other:?}"))),
    }
}

/// One field's index.
#[derive(Default)]
pub struct FieldIndex {
    map: FastMap<Key, Ids>,
}

impl FieldIndex {
    /// Makes room for at least `keys` keys, so an index that one large job
    /// fills is sized once instead of doubling its way there.
    pub fn reserve_at_least(&mut self, keys: usize) {
        self.map.reserve(keys.saturating_sub(self.map.len()));
    }

    pub fn get(&self, key: &Probe) -> &[Rid] {
        self.map.get(key.as_bytes()).map_or(&[], Ids::as_slice)
    }

    pub fn add(&mut self, key: &Probe, id: Rid) {
        match self.map.entry(Key::new(key.as_bytes())) {
            Entry::Occupied(mut ids) => ids.get_mut().push(id),
            Entry::Vacant(slot) => {
                slot.insert(Ids::One(id));
            }
        }
    }

    pub fn remove(&mut self, key: &Probe, id: Rid) {
        if let Some(ids) = self.map.get_mut(key.as_bytes()) {
            if ids.remove(id) {
                self.map.remove(key.as_bytes());
            }
        }
    }

    /// Whether `id` is the only record holding `key`.
    pub fn is_only(&self, key: &Probe, id: Rid) -> bool {
        matches!(self.map.get(key.as_bytes()), Some(Ids::One(only)) if *only == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_order() {
        let (a, b, c) = (
            Rid::new("003000000000001AAA"),
            Rid::new("003000000000002AAA"),
            Rid::new("003000000000003AAA"),
        );
        let mut index = FieldIndex::default();
        let k = key(&Value::text("K")).unwrap();
        for id in [a, b, c] {
            index.add(&k, id);
        }
        assert!(index.get(&k) == [a, b, c]);
        index.remove(&k, b);
        assert!(index.get(&k) == [a, c]);
        index.remove(&k, a);
        assert!(index.is_only(&k, c));
        index.remove(&k, c);
        assert!(index.get(&k).is_empty());
        assert_eq!(a.as_str(), "003000000000001AAA");
        let text = |s: &str| key(&Value::text(s)).map(|k| k.as_str().to_string());
        assert_eq!(text("MiXed").as_deref(), Some("mixed"));
        assert_eq!(text("ÀB").as_deref(), Some("àb"));
        let long = "A".repeat(70);
        assert_eq!(text(&long), Some("a".repeat(70)));
        for len in [22, 23, 64, 65] {
            let k = key(&Value::text("K".repeat(len))).unwrap();
            index.add(&k, a);
            assert!(index.is_only(&k, a), "{len}");
        }
        assert_eq!(key(&Value::Int(3)).unwrap().as_str(), "Int(3)");
        assert!(key(&Value::text("\u{212A}")) == key(&Value::text("K")));
        assert!(key(&Value::Null).is_none());
    }
}
