//! Salesforce record ids: 15-character case-sensitive and 18-character
//! case-insensitive forms. The last three characters of the 18-character form
//! encode which of the first fifteen are upper-case letters.

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn suffix(id15: &[u8]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (chunk_no, chunk) in id15.chunks(5).enumerate() {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out[chunk_no] = SUFFIX_ALPHABET[bits];
    }
    out
}

/// Canonical 18-character id for a 15- or 18-character id, or None when the
/// text is not an id. An 18-character id is case-insensitive: the case of the
/// first fifteen characters is restored from its suffix.
pub fn canonical(id: &str) -> Option<String> {
    Rid::canonical(id).map(|rid| rid.as_str().to_string())
}

fn canonical_bytes(id: &str) -> Option<[u8; 18]> {
    let bytes = id.as_bytes();
    if !(bytes.len() == 15 || bytes.len() == 18) || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let mut out = [0u8; 18];
    out[..15].copy_from_slice(&bytes[..15]);
    if bytes.len() == 18 {
        for (chunk_no, s) in bytes[15..].iter().enumerate() {
            let bits = SUFFIX_ALPHABET
                .iter()
                .position(|a| a == &s.to_ascii_uppercase())?;
            for i in 0..5 {
                let c = &mut out[chunk_no * 5 + i];
                *c = if bits & (1 << i) != 0 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
            }
        }
    }
    let tail = suffix(&out[..15]);
    out[15..].copy_from_slice(&tail);
    Some(out)
}

/// The `seq`-th id of an object with key prefix `prefix`. Ids sort in creation
/// order because the counter is fixed-width base62 in ASCII order.
pub fn generate(prefix: &str, seq: u64) -> String {
    Rid::generate(prefix, seq).as_str().to_string()
}

/// The counter `generate` put into an id with this key prefix, if the id
/// (in either form) is one it made.
pub fn sequence(id: &str, prefix: &str) -> Option<u64> {
    let id = canonical(id)?;
    let digits = id.strip_prefix(prefix)?.strip_prefix("5g00")?;
    digits[..8].bytes().try_fold(0u64, |n, d| {
        let digit = BASE62.iter().position(|b| *b == d)? as u64;
        Some(n * 62 + digit)
    })
}

/// A record id, always 18 characters, held without an allocation. Ids
/// order as their text does.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rid([u8; 18]);

impl Ord for Rid {
    fn cmp(&self, other: &Rid) -> std::cmp::Ordering {
        // The bytes' order, compared in two wide steps rather than a call
        // to compare memory: the record map compares ids at every step.
        let wide = |r: &Rid| {
            let (head, tail) = r.0.split_at(16);
            (
                u128::from_be_bytes(head.try_into().expect("16 bytes")),
                u16::from_be_bytes(tail.try_into().expect("2 bytes")),
            )
        };
        wide(self).cmp(&wide(other))
    }
}

impl PartialOrd for Rid {
    fn partial_cmp(&self, other: &Rid) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Rid {
    /// An id already in its canonical form (as records hold it).
    pub fn new(id: &str) -> Rid {
        let mut bytes = [0u8; 18];
        let n = id.len().min(18);
        bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
        Rid(bytes)
    }

    /// The canonical id of a 15- or 18-character id, as `canonical`.
    pub fn canonical(id: &str) -> Option<Rid> {
        canonical_bytes(id).map(Rid)
    }

    /// As `generate`.
    pub fn generate(prefix: &str, seq: u64) -> Rid {
        let mut digits = [b'0'; 8];
        let mut n = seq;
        for d in digits.iter_mut().rev() {
            *d = BASE62[(n % 62) as usize];
            n /= 62;
        }
        let mut bytes = [0u8; 18];
        let head = prefix.len().min(3);
        bytes[..head].copy_from_slice(&prefix.as_bytes()[..head]);
        bytes[3..7].copy_from_slice(b"5g00");
        bytes[7..15].copy_from_slice(&digits);
        let tail = suffix(&bytes[..15]);
        bytes[15..].copy_from_slice(&tail);
        Rid(bytes)
    }

    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|b| *b == 0).unwrap_or(18);
        std::str::from_utf8(&self.0[..len]).unwrap_or_default()
    }
}

impl std::fmt::Display for Rid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Rid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

pub fn key_prefix(id: &str) -> &str {
    &id[..3.min(id.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_salesforce_id_gets_its_documented_suffix() {
        // 001A0000006Vm9r is Salesforce's documentation example; its 18-character form is 001A0000006Vm9rIAC.
        assert_eq!(canonical("001A0000006Vm9r").unwrap(), "001A0000006Vm9rIAC");
    }

    #[test]
    fn eighteen_character_ids_are_case_insensitive() {
        let id = generate("003", 123_456_789);
        assert_eq!(canonical(&id.to_lowercase()).unwrap(), id);
        assert_eq!(canonical(&id.to_uppercase()).unwrap(), id);
        assert_eq!(canonical(&id[..15]).unwrap(), id);
    }

    #[test]
    fn generated_ids_sort_in_creation_order() {
        let ids: Vec<String> = [1u64, 61, 62, 3843, 1_000_000]
            .iter()
            .map(|n| generate("001", *n))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids
            .iter()
            .all(|i| i.len() == 18 && i.starts_with("0015g00")));
    }

    #[test]
    fn sequences_come_back_from_generated_ids() {
        let id = generate("750", 123_456);
        assert_eq!(sequence(&id, "750"), Some(123_456));
        assert_eq!(sequence(&id[..15], "750"), Some(123_456));
        assert_eq!(sequence(&id, "003"), None);
        assert_eq!(sequence("001A0000006Vm9r", "001"), None);
    }

    #[test]
    fn rids_order_as_their_text() {
        let mut texts = vec![
            "003000000000001AAA",
            "003000000000001AAB",
            "0035g00000000zzAAA",
            "001zzzzzzzzzzzzAAA",
            "a01000000000000AAA",
        ];
        let mut rids: Vec<Rid> = texts.iter().map(|t| Rid::new(t)).collect();
        texts.sort();
        rids.sort();
        let sorted: Vec<&str> = rids.iter().map(Rid::as_str).collect();
        assert_eq!(sorted, texts);
        assert_eq!(Rid::generate("003", 42).as_str(), generate("003", 42));
        assert_eq!(
            Rid::canonical("001A0000006Vm9r").unwrap().as_str(),
            "001A0000006Vm9rIAC"
        );
    }

    #[test]
    fn non_ids_are_rejected() {
        assert!(canonical("abc").is_none());
        assert!(canonical("003000000000000000x").is_none());
        assert!(canonical("003'00000000000").is_none());
    }
}
