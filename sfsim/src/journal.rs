//! The record writes of transactions still running: every write the org
//! makes lands here, a rollback takes its own back out, and whoever commits
//! takes the rest, so Change Data Capture sees each committed change once
//! and never one that was undone.

use crate::org::Record;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::Arc;

/// One write to one record.
#[derive(Clone)]
pub struct Change {
    pub object: usize,
    /// The record before and after; None before a create, after a hard delete.
    pub before: Option<Arc<Record>>,
    pub after: Option<Arc<Record>>,
    pub user_id: Arc<str>,
    pub transaction: u64,
    /// The API that wrote it (`com/salesforce/api/rest/62.0`), empty for
    /// edits made as in Salesforce's UI.
    pub origin: Arc<str>,
    pub at: DateTime<Utc>,
    seq: u64,
}

#[derive(Default)]
pub struct Journal {
    pending: Vec<Change>,
    next_seq: u64,
    /// The last writer's id, shared by the changes it makes.
    last_user: Option<Arc<str>>,
}

/// What `record` needs besides the records themselves.
pub struct Written<'a> {
    pub object: usize,
    pub user_id: &'a str,
    pub transaction: u64,
    pub origin: &'a Arc<str>,
    pub at: DateTime<Utc>,
}

impl Journal {
    /// Keeps a write until it is committed or undone; answers its number.
    pub fn record(
        &mut self,
        written: Written,
        before: Option<Arc<Record>>,
        after: Option<Arc<Record>>,
    ) -> u64 {
        self.next_seq += 1;
        let user_id = match &self.last_user {
            Some(last) if **last == *written.user_id => last.clone(),
            _ => {
                let user: Arc<str> = written.user_id.into();
                self.last_user = Some(user.clone());
                user
            }
        };
        self.pending.push(Change {
            object: written.object,
            before,
            after,
            user_id,
            transaction: written.transaction,
            origin: written.origin.clone(),
            at: written.at,
            seq: self.next_seq,
        });
        self.next_seq
    }

    /// Drops the writes a rollback undid.
    pub fn forget(&mut self, undone: &HashSet<u64>) {
        if !undone.is_empty() {
            self.pending.retain(|c| !undone.contains(&c.seq));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The committed writes, oldest first.
    pub fn take(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.pending)
    }
}
