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
    let bytes = id.as_bytes();
    if !(bytes.len() == 15 || bytes.len() == 18) || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let mut head: Vec<u8> = bytes[..15].to_vec();
    if bytes.len() == 18 {
        for (chunk_no, s) in bytes[15..].iter().enumerate() {
            let bits = SUFFIX_ALPHABET
                .iter()
                .position(|a| a == &s.to_ascii_uppercase())?;
            for i in 0..5 {
                let c = &mut head[chunk_no * 5 + i];
                *c = if bits & (1 << i) != 0 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
            }
        }
    }
    let tail = suffix(&head);
    head.extend_from_slice(&tail);
    Some(String::from_utf8(head).expect("ascii"))
}

/// The `seq`-th id of an object with key prefix `prefix`. Ids sort in creation
/// order because the counter is fixed-width base62 in ASCII order.
pub fn generate(prefix: &str, seq: u64) -> String {
    let mut digits = [b'0'; 8];
    let mut n = seq;
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    let mut head = Vec::with_capacity(18);
    head.extend_from_slice(prefix.as_bytes());
    head.extend_from_slice(b"5g00");
    head.extend_from_slice(&digits);
    let tail = suffix(&head);
    head.extend_from_slice(&tail);
    String::from_utf8(head).expect("ascii")
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
    fn non_ids_are_rejected() {
        assert!(canonical("abc").is_none());
        assert!(canonical("003000000000000000x").is_none());
        assert!(canonical("003'00000000000").is_none());
    }
}
