//! The REST backfill, a small state machine: it asks for the newest
//! SystemModstamp, where changes are read from once the copy is full, then
//! reads the records in Id order, a batch of query pages at a time, read
//! ahead. The run stores each batch; the last Id stored goes into the
//! sync's checkpoint, so that a later run goes on after it.

use super::backfill;
use super::fetch::{Answer, Fetched, Request};
use super::rest;
use super::rows::stamp_of;
use super::store::SyncRow;
use super::tally::Tally;
use crate::connection;
use crate::error::{Error, Result};
use crate::read_ahead::{Counted, ReadAhead};
use chrono::{DateTime, Utc};
use pgrx::PgSqlErrorCode;
use salesforce_core::client::session::{QueryPage, Session};
use salesforce_core::sync::definition::SyncedField;
use salesforce_core::sync::queries;

/// Where a REST backfill stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The newest SystemModstamp is asked for.
    NewestStamp,
    /// The records are read.
    Pages,
}

/// A REST backfill: where it stands, and its query, read ahead.
pub struct RestBackfill {
    step: Step,
    pages: Option<ReadAhead<Counted<rest::Batch>>>,
}

impl RestBackfill {
    pub fn new() -> RestBackfill {
        RestBackfill {
            step: Step::NewestStamp,
            pages: None,
        }
    }

    /// Takes the backfill up where the checkpoint left it: reading the
    /// records after the last one stored, or from the start.
    pub fn go_on(&mut self, sync: &SyncRow) {
        self.step = if backfill::rest_began(sync) {
            Step::Pages
        } else {
            Step::NewestStamp
        };
    }

    /// What to ask Salesforce next.
    pub fn request(&self, sync: &SyncRow, object: &str, fields: &[SyncedField]) -> Request {
        match self.step {
            Step::NewestStamp => Request::Query {
                soql: queries::newest_stamp(object),
                include_deleted: false,
            },
            Step::Pages => {
                let names: Vec<String> = fields.iter().map(|f| f.field.clone()).collect();
                Request::ReadPages(queries::backfill(
                    object,
                    &names,
                    sync.backfill_after.as_deref(),
                ))
            }
        }
    }

    /// Whether the backfill waits for a query page: the newest SystemModstamp.
    pub fn asks_newest_stamp(&self) -> bool {
        self.step == Step::NewestStamp
    }

    /// Starts the copy at the newest SystemModstamp, and reads the records next.
    pub fn apply_newest_stamp(
        &mut self,
        page: &QueryPage,
        sync: &mut SyncRow,
        server_now: impl Fn() -> DateTime<Utc>,
    ) {
        sync.cursor = page.records.first().and_then(stamp_of);
        sync.deleted_cursor = Some(server_now());
        sync.backfill_after = None;
        sync.backfill_rows = 0;
        self.step = Step::Pages;
    }

    /// Starts reading `soql` ahead with a fork of `s`, unless it is read
    /// already. Asks Salesforce only: no catalog, no SQL.
    pub fn open(&mut self, s: &Session, soql: String, fields: &[SyncedField], soft_delete: bool) {
        if self.pages.is_none() {
            self.pages = Some(rest::read_ahead(s.fork(), soql, fields, soft_delete));
        }
    }

    /// Whether the query is being read ahead.
    pub fn reading(&self) -> bool {
        self.pages.is_some()
    }

    /// The next batch of the query being read ahead, with what it cost.
    pub fn next_batch(&mut self) -> Fetched {
        let item = self
            .pages
            .as_ref()
            .expect("the query is being read")
            .next(connection::interrupted)
            .unwrap_or_else(|| {
                Err(Error::sql(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    "the query's pages ended without their last batch",
                ))
            });
        let fetched = match item {
            Ok(counted) => Fetched {
                requests: counted.requests,
                limit_info: counted.limit_info.clone(),
                server_time: counted.server_time,
                answer: counted.into_answer().map(Answer::Pages),
            },
            Err(e) => Fetched {
                answer: Err(e),
                requests: 0,
                limit_info: None,
                server_time: None,
            },
        };
        if fetched
            .answer
            .as_ref()
            .map_or(true, |a| matches!(a, Answer::Pages(b) if b.done))
        {
            self.pages = None;
        }
        fetched
    }

    /// Stores a batch of the query's records, and moves the checkpoint
    /// past it. True when it was the last: the backfill is done.
    pub fn apply_batch(
        &self,
        mut batch: rest::Batch,
        sync: &mut SyncRow,
        tally: &mut Tally,
    ) -> Result<bool> {
        backfill::store_rows(&mut batch.rows, sync, tally)?;
        if let Some(last) = batch.last_id {
            sync.backfill_after = Some(last);
        }
        Ok(batch.done)
    }
}
