//! The request log behind `GET /__sim/requests`: what clients asked for, so
//! tests can prove what was pushed down and how many calls were made.

use serde::Serialize;
use std::collections::VecDeque;

/// Oldest entries are dropped beyond this many.
const CAPACITY: usize = 200_000;

#[derive(Clone, Serialize)]
pub struct LoggedRequest {
    pub seq: u64,
    pub at: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The SOQL of a query, decoded; for a `nextRecordsUrl` page, its cursor's.
    pub soql: Option<String>,
    pub status: u16,
    /// Whether the request counted against the daily API limit.
    pub counted: bool,
    /// Records in a query page or a collection request.
    pub records: Option<usize>,
    /// JSON request body of a data API write.
    pub body: Option<serde_json::Value>,
}

#[derive(Default)]
pub struct RequestLog {
    entries: VecDeque<LoggedRequest>,
    next_seq: u64,
}

impl RequestLog {
    pub fn push(&mut self, mut entry: LoggedRequest) {
        self.next_seq += 1;
        entry.seq = self.next_seq;
        if self.entries.len() >= CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub fn since(&self, seq: u64) -> Vec<LoggedRequest> {
        self.entries
            .iter()
            .filter(|e| e.seq > seq)
            .cloned()
            .collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
