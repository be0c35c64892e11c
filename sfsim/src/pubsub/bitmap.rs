//! The ChangeEventHeader bitmaps (`changedFields`, `nulledFields`,
//! `diffFields`) as the Pub/Sub API sends them: an array of hex strings. The
//! first, `0x…`, has bit N set for the field at position N of the event
//! schema (position 0 is the header itself, bit 0 the lowest); each
//! compound field with components in the set adds `P-0x…`, P its position
//! and the bits its components' positions in its nested record.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Default, Debug, PartialEq, Eq)]
pub struct FieldBits {
    top: BTreeSet<usize>,
    nested: BTreeMap<usize, BTreeSet<usize>>,
}

impl FieldBits {
    pub fn set(&mut self, position: usize) {
        self.top.insert(position);
    }

    pub fn set_component(&mut self, position: usize, component: usize) {
        self.nested.entry(position).or_default().insert(component);
    }

    pub fn to_strings(&self) -> Vec<String> {
        let top = (!self.top.is_empty()).then(|| hex(&self.top));
        let nested = self
            .nested
            .iter()
            .map(|(position, bits)| format!("{position}-{}", hex(bits)));
        top.into_iter().chain(nested).collect()
    }
}

/// `0x` and the bits as uppercase hex, whole bytes, most significant first.
fn hex(bits: &BTreeSet<usize>) -> String {
    let highest = bits.last().copied().unwrap_or(0);
    let mut bytes = vec![0u8; highest / 8 + 1];
    for bit in bits {
        let from_end = bytes.len() - 1 - bit / 8;
        bytes[from_end] |= 1 << (bit % 8);
    }
    let digits: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("0x{digits}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_become_salesforce_hex_bitmaps() {
        let mut bits = FieldBits::default();
        assert!(bits.to_strings().is_empty());
        for p in [5, 6, 7, 10, 26, 29, 30] {
            bits.set(p);
        }
        bits.set_component(4, 4);
        bits.set_component(7, 1);
        bits.set_component(7, 2);
        assert_eq!(bits.to_strings(), ["0x640004E0", "4-0x10", "7-0x06"]);
        let mut one = FieldBits::default();
        one.set(1);
        assert_eq!(one.to_strings(), ["0x02"]);
    }
}
