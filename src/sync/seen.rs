//! The records each sync's polls copied lately, by Id and SystemModstamp.
//! A poll reads again what changed within the lookback of its cursor (a
//! change committed late may carry an older stamp), so the newest records
//! come back on every poll; one already copied at the same stamp is not
//! written again. Kept in the process that ran the polls, and forgotten
//! when a run fails (a write that did not commit is made again) or the
//! copy gains columns (the records are written whole again).

use chrono::{DateTime, Utc};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static SEEN: RefCell<HashMap<i64, HashMap<String, DateTime<Utc>>>> = RefCell::new(HashMap::new());
}

/// Whether sync `sync_id` copied record `id` at `stamp` already.
pub fn copied(sync_id: i64, id: &str, stamp: DateTime<Utc>) -> bool {
    SEEN.with(|s| {
        s.borrow()
            .get(&sync_id)
            .and_then(|records| records.get(id))
            .is_some_and(|seen| *seen == stamp)
    })
}

/// Remembers records the sync just copied, and forgets those older than
/// `keep_from`, which no poll reads again.
pub fn remember(
    sync_id: i64,
    copied: impl IntoIterator<Item = (String, DateTime<Utc>)>,
    keep_from: DateTime<Utc>,
) {
    SEEN.with(|s| {
        let mut s = s.borrow_mut();
        let records = s.entry(sync_id).or_default();
        records.extend(copied);
        records.retain(|_, stamp| *stamp >= keep_from);
    })
}

pub fn forget(sync_id: i64) {
    SEEN.with(|s| s.borrow_mut().remove(&sync_id));
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_record_is_skipped_at_the_stamp_it_was_copied_at_only() {
        let t = chrono::Utc::now();
        let later = t + chrono::Duration::seconds(1);
        super::remember(7, [("001A".to_string(), t)], t);
        assert!(super::copied(7, "001A", t));
        assert!(!super::copied(7, "001A", later), "changed since");
        assert!(!super::copied(8, "001A", t), "another sync");
        super::remember(7, [("001B".to_string(), later)], later);
        assert!(!super::copied(7, "001A", t), "older than the lookback");
        super::forget(7);
        assert!(!super::copied(7, "001B", later));
    }
}
