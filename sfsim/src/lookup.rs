//! The indexes an object keeps of its live records by the lower-cased value
//! of each unique, external-id or duplicate-rule field: written once a
//! record, so they hold ids inline and hash keys cheaply.

use crate::ids::Rid;
use crate::value::Value;
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

/// An index key: up to 22 bytes held inline, longer ones boxed.
#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; 22] },
    Boxed(Box<str>),
}

impl Key {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Boxed(s) => s.as_bytes(),
        }
    }

    fn owned(s: String) -> Key {
        Key::Boxed(s.into_boxed_str())
    }
}

// Compared and hashed as bytes: keys are looked up several times a write.
impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes())
    }
}

/// The key a value is indexed under: text lower-cased, other values in
/// their debug form; null is not indexed.
pub fn key(v: &Value) -> Option<Key> {
    match v {
        Value::Null => None,
        Value::Text(s) if s.len() <= 22 && s.is_ascii() => {
            let mut bytes = [0u8; 22];
            for (to, from) in bytes.iter_mut().zip(s.bytes()) {
                *to = from.to_ascii_lowercase();
            }
            Some(Key::Inline {
                len: s.len() as u8,
                bytes,
            })
        }
        Value::Text(s) => Some(Key::owned(s.to_lowercase())),
        other => Some(Key::owned(format!("{other:?}"))),
    }
}

/// One field's index.
#[derive(Default)]
pub struct FieldIndex {
    map: FastMap<Key, Ids>,
}

impl FieldIndex {
    pub fn get(&self, key: &Key) -> &[Rid] {
        self.map.get(key).map_or(&[], Ids::as_slice)
    }

    pub fn add(&mut self, key: Key, id: Rid) {
        match self.map.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut ids) => ids.get_mut().push(id),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Ids::One(id));
            }
        }
    }

    pub fn remove(&mut self, key: &Key, id: Rid) {
        if let Some(ids) = self.map.get_mut(key) {
            if ids.remove(id) {
                self.map.remove(key);
            }
        }
    }

    /// Whether `id` is the only record holding `key`.
    pub fn is_only(&self, key: &Key, id: Rid) -> bool {
        matches!(self.map.get(key), Some(Ids::One(only)) if *only == id)
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
            index.add(k.clone(), id);
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
        let long = "A".repeat(30);
        assert_eq!(text(&long), Some("a".repeat(30)));
        assert_eq!(key(&Value::Int(3)).unwrap().as_str(), "Int(3)");
        assert!(key(&Value::Null).is_none());
    }
}
