//! A round of syncs' requests on one user mapping, as a job for the
//! worker's request threads (`crate::flight`): made one after another with
//! one session, the polls in shared composite calls.

use super::fetch::{perform, poll_together, Fetched, Request};
use crate::error::Error;
use crate::flight::Work;
use salesforce_core::client::session::Session;
use salesforce_core::sync::poll_batch::DuePoll;

#[derive(Default)]
pub struct Job {
    singles: Vec<(i64, Request)>,
    polls: Vec<DuePoll>,
}

impl Job {
    /// Adds sync `sync_id`'s request.
    pub fn add(&mut self, sync_id: i64, request: Request) {
        match request {
            Request::Poll(poll) => self.polls.push(poll),
            other => self.singles.push((sync_id, other)),
        }
    }

    fn sync_ids(&self) -> Vec<i64> {
        let singles = self.singles.iter().map(|(id, _)| *id);
        singles.chain(self.polls.iter().map(|p| p.key)).collect()
    }
}

/// Every sync of the job failing with `e`.
fn all_failed(sync_ids: Vec<i64>, e: &Error) -> Vec<(i64, Fetched)> {
    // Rendered once: every job has these made ready before it starts.
    let (code, message) = (e.code(), e.message());
    sync_ids
        .into_iter()
        .map(|id| (id, Fetched::failed(Error::sql(code, message.clone()))))
        .collect()
}

impl Work for Job {
    /// Each sync's answer.
    type Out = Vec<(i64, Fetched)>;

    fn unmade(&self, e: &Error) -> Self::Out {
        all_failed(self.sync_ids(), e)
    }

    fn make(self, session: &mut Session) -> Vec<(i64, Fetched)> {
        let mut fetched: Vec<(i64, Fetched)> = self
            .singles
            .into_iter()
            .map(|(id, request)| (id, perform(session, request)))
            .collect();
        if !self.polls.is_empty() {
            fetched.extend(poll_together(session, self.polls));
        }
        fetched
    }
}
