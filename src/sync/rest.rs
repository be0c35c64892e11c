//! Backfills through REST, as a pipeline of three threads: one fetches the
//! query's pages, one reads their records straight into rows, and the
//! backend stores the batch before. Each stage is one page or batch ahead
//! of the next, so memory stays bounded.

use super::rows::Rows;
use crate::connection::interrupted;
use crate::error::{Error, Result};
use crate::read_ahead::{query_pages, Counted, Making, PageSource, ReadAhead};
use crate::records::{FieldText, PageReader, ReadField, RecordSink};
use pgrx::PgSqlErrorCode;
use salesforce_core::client::session::Session;
use salesforce_core::sync::definition::SyncedField;
use std::borrow::Cow;

/// Records a REST backfill gathers, from pages of 200 to 2,000, before it
/// stores them in one transaction.
pub const BATCH: usize = 2_000;

/// The rows of one or more pages, and where the query goes on.
pub struct Batch {
    pub rows: Rows,
    /// The Id of the last record: the backfill resumes after it.
    pub last_id: Option<String>,
    /// The query has no more pages.
    pub done: bool,
}

/// Reads `soql`'s pages with `session`, a fork of the backend's, into
/// batches of about `BATCH` rows of `fields`.
pub fn read_ahead(
    session: Session,
    soql: String,
    fields: &[SyncedField],
    soft_delete: bool,
) -> ReadAhead<Counted<Batch>> {
    let pages = query_pages(session, PageSource::Query(soql), Making::Ahead, Ok);
    let reader = PageReader::new(
        fields
            .iter()
            .map(|f| ReadField {
                field: f.field.clone(),
                column: f.column.clone(),
                kind: f.pg.kind(),
            })
            .collect(),
    );
    let fields = fields.to_vec();
    let mut ended = false;
    ReadAhead::start(Making::Ahead, move || {
        if ended {
            return None;
        }
        let mut batch = Batch {
            rows: Rows::new(&fields, soft_delete),
            last_id: None,
            done: false,
        };
        let mut counted = Counted {
            answer: Ok(()),
            requests: 0,
            limit_info: None,
            server_time: None,
            secrets: Vec::new(),
        };
        while counted.answer.is_ok() && !batch.done && batch.rows.len() < BATCH {
            let page = match pages.next(interrupted) {
                Some(Ok(page)) => page,
                Some(Err(e)) => Counted::failed(e),
                None => Counted::failed(Error::sql(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    "the query's pages ended before its last",
                )),
            };
            counted.requests += page.requests;
            counted.limit_info = page.limit_info.or(counted.limit_info);
            counted.server_time = page.server_time.or(counted.server_time);
            counted.secrets = page.secrets;
            counted.answer = page.answer.and_then(|raw| {
                batch.done = raw.last;
                reader.read(&raw.page, &mut batch)
            });
        }
        ended = batch.done || counted.answer.is_err();
        batch.rows.prepare_copy_text();
        Some(Ok(Counted {
            answer: counted.answer.map(|()| batch),
            requests: counted.requests,
            limit_info: counted.limit_info,
            server_time: counted.server_time,
            secrets: counted.secrets,
        }))
    })
}

impl RecordSink for Batch {
    fn record(&mut self, texts: &[FieldText], id: Option<&str>) -> Result<()> {
        self.rows.push_with(
            |i, _| match &texts[i] {
                FieldText::Absent | FieldText::Null => Ok(None),
                FieldText::Text(t) => Ok(Some(Cow::Borrowed(t.as_ref()))),
            },
            None,
        )?;
        if let Some(id) = id {
            self.last_id = Some(id.to_string());
        }
        Ok(())
    }
}
