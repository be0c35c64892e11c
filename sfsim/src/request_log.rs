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
    /// Set on the subrequests of a composite call: `"composite"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<&'static str>,
    /// A subrequest's composite call, by its `seq`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_seq: Option<u64>,
    /// A subrequest's `referenceId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// Set on Pub/Sub API calls.
    #[serde(flatten)]
    pub rpc: Option<RpcCall>,
}

/// What a Pub/Sub API call did. A Subscribe stream logs each response that
/// delivers events (with `events`) and its end (with `grpc_status`).
#[derive(Clone, Serialize)]
pub struct RpcCall {
    /// `GetTopic`, `GetSchema`, `Subscribe`, `Publish` or `PublishStream`.
    pub rpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Events delivered in one response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<usize>,
    /// How the call ended: `OK`, `UNAUTHENTICATED`, ….
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<&'static str>,
}

#[derive(Default)]
pub struct RequestLog {
    entries: VecDeque<LoggedRequest>,
    next_seq: u64,
}

impl RequestLog {
    /// Appends an entry and answers the `seq` it was given.
    pub fn push(&mut self, mut entry: LoggedRequest) -> u64 {
        self.next_seq += 1;
        entry.seq = self.next_seq;
        if self.entries.len() >= CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
        self.next_seq
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
