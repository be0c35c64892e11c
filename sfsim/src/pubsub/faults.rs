//! Pub/Sub faults armed through the control API: gap events in place of
//! the next changes of an object, GAP_OVERFLOW in place of whole
//! transactions, a delivery delay, and Publish calls that publish but never
//! answer. (Dropping streams is immediate; the bus does it.)

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Serialize)]
pub struct CdcFaults {
    /// Changes still to publish as gap events, by object.
    pub gaps: BTreeMap<String, u64>,
    /// Transactions still to publish as GAP_OVERFLOW events.
    pub overflow: u64,
    /// Events become deliverable this long after they are published.
    pub delay_ms: u64,
    /// Publish calls still to publish their events and then never answer.
    pub unanswered_publishes: u64,
}

impl CdcFaults {
    /// Whether this change of `object` goes out as a gap event, using up one if so.
    pub fn take_gap(&mut self, object: &str) -> bool {
        let Some(left) = self.gaps.get_mut(object) else {
            return false;
        };
        *left -= 1;
        if *left == 0 {
            self.gaps.remove(object);
        }
        true
    }

    /// Whether this Publish call goes unanswered, using up one if so.
    pub fn take_unanswered_publish(&mut self) -> bool {
        let take = self.unanswered_publishes > 0;
        self.unanswered_publishes -= u64::from(take);
        take
    }

    /// Whether a transaction that published events goes out as overflow
    /// events instead, using up one if so.
    pub fn take_overflow_if(&mut self, published: bool) -> bool {
        let overflows = published && self.overflow > 0;
        self.overflow -= u64::from(overflows);
        overflows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_faults_run_out() {
        let mut f = CdcFaults {
            gaps: BTreeMap::from([("Account".to_string(), 2)]),
            overflow: 1,
            ..CdcFaults::default()
        };
        assert!(!f.take_gap("Contact"));
        assert!(f.take_gap("Account") && f.take_gap("Account"));
        assert!(!f.take_gap("Account"));
        assert!(
            !f.take_overflow_if(false),
            "transactions without events do not count"
        );
        assert!(f.take_overflow_if(true));
        assert!(!f.take_overflow_if(true));
    }
}
