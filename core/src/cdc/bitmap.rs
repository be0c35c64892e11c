//! The header's field bitmaps, `changedFields` and `nulledFields`: an array
//! of hex strings. `0x…` has bit N set for the field at position N of the
//! event schema (bit 0 the lowest); `P-0x…` marks components of the
//! compound field at position P by their positions in its nested record.

use std::collections::{BTreeMap, BTreeSet};

/// The fields a bitmap marks: whole fields, and components of others.
#[derive(Debug, Default, PartialEq)]
pub struct Marked {
    pub fields: BTreeSet<usize>,
    pub components: BTreeMap<usize, BTreeSet<usize>>,
}

impl Marked {
    pub fn decode(entries: &[String]) -> Result<Marked, String> {
        let mut marked = Marked::default();
        marked.add(entries)?;
        Ok(marked)
    }

    /// Adds what another bitmap marks.
    pub fn add(&mut self, entries: &[String]) -> Result<(), String> {
        for entry in entries {
            match entry.split_once('-') {
                None => self.fields.extend(bits(entry)?),
                Some((position, nested)) => {
                    let position = position
                        .parse()
                        .map_err(|_| format!("bad field bitmap {entry:?}"))?;
                    self.components
                        .entry(position)
                        .or_default()
                        .extend(bits(nested)?);
                }
            }
        }
        Ok(())
    }
}

/// The bits set in `0x…`, most significant digit first.
fn bits(hex: &str) -> Result<BTreeSet<usize>, String> {
    let bad = || format!("bad field bitmap {hex:?}");
    let digits = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .ok_or_else(bad)?;
    let mut set = BTreeSet::new();
    for (i, c) in digits.chars().rev().enumerate() {
        let nibble = c.to_digit(16).ok_or_else(bad)?;
        set.extend((0..4).filter(|b| nibble >> b & 1 == 1).map(|b| i * 4 + b));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hex_bitmaps_mark_schema_positions() {
        let marked = Marked::decode(&strings(&["0x640004E0", "4-0x10", "7-0x06"])).unwrap();
        assert_eq!(
            marked.fields,
            BTreeSet::from([5, 6, 7, 10, 26, 29, 30]),
            "bit 0 is the last digit's lowest"
        );
        assert_eq!(
            marked.components,
            BTreeMap::from([(4, BTreeSet::from([4])), (7, BTreeSet::from([1, 2]))])
        );
        assert_eq!(Marked::decode(&[]).unwrap(), Marked::default());
        let mut both = Marked::decode(&strings(&["0x02"])).unwrap();
        both.add(&strings(&["0x0a", "3-0x1"])).unwrap();
        assert_eq!(both.fields, BTreeSet::from([1, 3]));
        assert_eq!(both.components[&3], BTreeSet::from([0]));
        let wide = Marked::decode(&strings(&["0x8000000000000000000000000001"])).unwrap();
        assert_eq!(wide.fields, BTreeSet::from([0, 111]));
    }

    #[test]
    fn malformed_bitmaps_are_refused() {
        for bad in ["640004E0", "0xZZ", "x-0x01", "3-10"] {
            assert!(Marked::decode(&strings(&[bad])).is_err(), "{bad}");
        }
    }
}
