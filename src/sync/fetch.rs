//! What a run asks Salesforce, and what it brings back. The requests here
//! read no catalog and run no SQL: the worker makes them on threads of its
//! own (`flight`) with a fork of the mapping's session.

use super::bulk;
use super::rest;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use salesforce_core::client::bulk::QueryJob;
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::client::session::{DeletedRecords, QueryPage, Session};
use salesforce_core::sync::poll_batch::{self, DuePoll};
use salesforce_core::SalesforceError;

pub enum Request {
    Describe(String),
    Query {
        soql: String,
        include_deleted: bool,
    },
    NextPage(String),
    /// The next batch of a REST backfill's query, read ahead.
    ReadPages(String),
    /// Changes and deletions, asked for in a composite call that other
    /// syncs' polls may share.
    Poll(DuePoll),
    CreateJob {
        soql: String,
        include_deleted: bool,
    },
    PollJob(String),
    /// The next batch of a job's results page at `locator`, past `skip` rows.
    ReadResults {
        job: String,
        locator: Option<String>,
        skip: u64,
    },
}

impl Request {
    /// Whether the request needs nothing of its run's, so that a thread may
    /// make it: all but the reads whose stream the run keeps open.
    pub fn is_detached(&self) -> bool {
        !matches!(self, Request::ReadPages(_) | Request::ReadResults { .. })
    }
}

pub enum Answer {
    Describe(ObjectDescribe),
    Page(QueryPage),
    /// A page of changes, and with the first the deletions since the last poll.
    Poll(QueryPage, Option<DeletedRecords>),
    Job(QueryJob),
    /// What `fetch` reads from is open: a Bulk results page, or a REST
    /// query read ahead.
    Opened,
    Batch(bulk::Batch),
    Pages(rest::Batch),
}

/// What a fetch did, for the log and pacing, whatever its outcome.
pub struct Fetched {
    pub answer: Result<Answer>,
    pub requests: i64,
    pub limit_info: Option<String>,
    pub server_time: Option<DateTime<Utc>>,
}

impl Fetched {
    pub fn failed(e: Error) -> Fetched {
        Fetched {
            answer: Err(e),
            requests: 0,
            limit_info: None,
            server_time: None,
        }
    }

    /// What `session` answered since it had sent `before` requests.
    fn of(
        s: &Session,
        before: u64,
        answer: std::result::Result<Answer, SalesforceError>,
    ) -> Fetched {
        Fetched {
            answer: answer.map_err(Error::from),
            requests: (s.requests - before) as i64,
            limit_info: s.last_limit_info.clone(),
            server_time: s.last_server_time,
        }
    }
}

/// Makes a detached request (`Request::is_detached`) other than a poll.
pub fn perform(s: &mut Session, request: Request) -> Fetched {
    let before = s.requests;
    let answer = match request {
        Request::Describe(object) => s.describe(&object).map(Answer::Describe),
        Request::Query {
            soql,
            include_deleted,
        } => s.query(&soql, include_deleted).map(Answer::Page),
        Request::NextPage(url) => s.next_page(&url).map(Answer::Page),
        Request::CreateJob {
            soql,
            include_deleted,
        } => s.create_query_job(&soql, include_deleted).map(Answer::Job),
        Request::PollJob(id) => s.query_job(&id).map(Answer::Job),
        Request::Poll(poll) => {
            return poll_together(s, vec![poll])
                .pop()
                .map(|(_, fetched)| fetched)
                .expect("a poll is answered")
        }
        Request::ReadPages(_) | Request::ReadResults { .. } => {
            unreachable!("the run reads what it opened")
        }
    };
    Fetched::of(s, before, answer)
}

/// Polls of syncs on one user mapping, in as few composite calls as they
/// fit: each call counts once, and is debited to its first poll's run.
pub fn poll_together(s: &mut Session, polls: Vec<DuePoll>) -> Vec<(i64, Fetched)> {
    let mut answered = Vec::with_capacity(polls.len());
    for call in poll_batch::plan(polls) {
        let before = s.requests;
        let answers = s.composite(&call.subrequests(s, s.batch_size()));
        let cost = Fetched::of(s, before, Ok(Answer::Opened));
        let mut outcomes = match &answers {
            Ok(responses) => call.outcomes(responses).into_iter(),
            Err(_) => Vec::new().into_iter(),
        };
        for (i, poll) in call.polls.iter().enumerate() {
            let answer = match (&answers, outcomes.next()) {
                (Err(e), _) => Err(e.clone()),
                (Ok(_), Some(o)) => o.page.and_then(|body| {
                    Ok(Answer::Poll(QueryPage::of(&body)?, o.deleted.transpose()?))
                }),
                (Ok(_), None) => Err(SalesforceError::BadResponse(
                    "composite: a poll went unanswered".into(),
                )),
            };
            answered.push((
                poll.key,
                Fetched {
                    answer: answer.map_err(Error::from),
                    requests: if i == 0 { cost.requests } else { 0 },
                    limit_info: cost.limit_info.clone(),
                    server_time: cost.server_time,
                },
            ));
        }
    }
    answered
}
