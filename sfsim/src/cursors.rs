//! Open query cursors: the rows of a query, served page by page through
//! `nextRecordsUrl` locators such as `01g5g00000000001AAA-2000`.

use crate::ids;
use crate::org::Record;
use crate::soql::plan::Node;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Since API v56.0 a cursor lives two days.
const LIFETIME_DAYS: i64 = 2;
/// Oldest cursors are dropped beyond this many, to bound memory.
const MAX_OPEN: usize = 10_000;

/// A query's result, shared between its pages.
#[derive(Clone)]
pub struct Cursor {
    pub object: usize,
    pub nodes: Arc<Vec<Node>>,
    pub rows: Arc<Vec<Arc<Record>>>,
    pub page_size: usize,
    pub soql: String,
}

impl Cursor {
    pub fn new(
        object: usize,
        nodes: Arc<Vec<Node>>,
        rows: Arc<Vec<Arc<Record>>>,
        page_size: usize,
        soql: String,
    ) -> Cursor {
        Cursor {
            object,
            nodes,
            rows,
            page_size,
            soql,
        }
    }
}

struct OpenCursor {
    cursor: Cursor,
    opened: DateTime<Utc>,
    seq: u64,
}

#[derive(Default)]
pub struct Cursors {
    open: HashMap<String, OpenCursor>,
    next_seq: u64,
}

impl Cursors {
    /// Keeps a cursor for later pages and returns its locator id.
    pub fn open(&mut self, cursor: &Cursor, now: DateTime<Utc>) -> String {
        self.open
            .retain(|_, c| now - c.opened < Duration::days(LIFETIME_DAYS));
        if self.open.len() >= MAX_OPEN {
            if let Some(oldest) = self
                .open
                .iter()
                .min_by_key(|(_, c)| c.seq)
                .map(|(k, _)| k.clone())
            {
                self.open.remove(&oldest);
            }
        }
        self.next_seq += 1;
        let id = ids::generate("01g", self.next_seq);
        self.open.insert(
            id.clone(),
            OpenCursor {
                cursor: cursor.clone(),
                opened: now,
                seq: self.next_seq,
            },
        );
        id
    }

    /// The cursor and start row a locator such as `01g...-2000` names, if it
    /// is live and in range.
    pub fn resolve(&self, locator: &str, now: DateTime<Utc>) -> Option<(Cursor, usize)> {
        let (id, start) = locator.rsplit_once('-')?;
        let start: usize = start.parse().ok()?;
        let open = self.open.get(id)?;
        (now - open.opened < Duration::days(LIFETIME_DAYS) && start < open.cursor.rows.len())
            .then(|| (open.cursor.clone(), start))
    }
}
