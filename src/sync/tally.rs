//! What a run did so far, for its row in `salesforce.sync_runs`. It is
//! saved with every checkpoint, and after a failure too: what it counts
//! up to the failure stays counted.

use super::store::RunProgress;
use chrono::{DateTime, Utc};

#[derive(Default)]
pub struct Tally {
    pub rows_upserted: i64,
    /// Records read from Salesforce, written or not.
    pub rows_read: i64,
    pub rows_deleted: i64,
    pub api_requests: i64,
    pub notes: Vec<String>,
}

impl Tally {
    /// The row of run `id`, whose cursor has come to `cursor_to`.
    pub fn progress(&self, id: i64, cursor_to: Option<DateTime<Utc>>) -> RunProgress<'_> {
        RunProgress {
            id,
            rows_upserted: self.rows_upserted,
            rows_read: self.rows_read,
            rows_deleted: self.rows_deleted,
            api_requests: self.api_requests,
            cursor_to,
            notes: &self.notes,
        }
    }
}
