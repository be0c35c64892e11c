//! Packing the syncs' due polls into composite calls. Every poll holds one
//! query (its change query, or the next page of one) and perhaps a getDeleted
//! call; the two always share a call, and a call holds at most five queries
//! and 25 subrequests, so one API request polls up to five syncs.

use crate::client::composite::{SubResponse, Subrequest, MAX_QUERY_SUBREQUESTS, MAX_SUBREQUESTS};
use crate::client::session::{DeletedRecords, Session};
use crate::client::SalesforceError;
use chrono::{DateTime, Utc};

/// What a poll queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollQuery {
    /// A sync's change query, `queries::changes`, sent to queryAll.
    Changes(String),
    /// The `nextRecordsUrl` of a change query being paged.
    NextPage(String),
}

/// getDeleted's window, [start, end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeletedWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One sync's poll that is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuePoll {
    /// The sync's id: it names the poll's subrequests.
    pub key: i64,
    pub object: String,
    pub query: PollQuery,
    pub deleted: Option<DeletedWindow>,
}

impl DuePoll {
    fn subrequest_count(&self) -> usize {
        1 + usize::from(self.deleted.is_some())
    }

    pub fn query_reference(&self) -> String {
        format!("{}_query", reference_stem(self.key))
    }

    pub fn deleted_reference(&self) -> String {
        format!("{}_deleted", reference_stem(self.key))
    }
}

/// referenceIds hold only letters, digits and `_`, so a minus sign is `m`.
fn reference_stem(key: i64) -> String {
    if key < 0 {
        format!("syncm{}", key.unsigned_abs())
    } else {
        format!("sync{key}")
    }
}

/// The polls one composite call carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollCall {
    pub polls: Vec<DuePoll>,
}

/// What a call answered for one poll.
#[derive(Debug)]
pub struct PollOutcome {
    pub key: i64,
    /// The query's page as JSON text, as `Session::query_text` gives it.
    pub page: Result<Vec<u8>, SalesforceError>,
    /// getDeleted's answer, when the poll asked for it.
    pub deleted: Option<Result<DeletedRecords, SalesforceError>>,
}

impl PollCall {
    pub fn subrequest_count(&self) -> usize {
        self.polls.iter().map(DuePoll::subrequest_count).sum()
    }

    /// Every poll holds exactly one query.
    pub fn query_count(&self) -> usize {
        self.polls.len()
    }

    /// Whether `poll` can join the call. A second poll of the same key
    /// would repeat its referenceIds.
    fn has_room_for(&self, poll: &DuePoll) -> bool {
        self.query_count() < MAX_QUERY_SUBREQUESTS
            && self.subrequest_count() + poll.subrequest_count() <= MAX_SUBREQUESTS
            && self.polls.iter().all(|p| p.key != poll.key)
    }

    /// The call's subrequests: each poll's query, then its getDeleted.
    pub fn subrequests(&self, session: &Session, batch_size: u32) -> Vec<Subrequest> {
        let mut subrequests = Vec::with_capacity(self.subrequest_count());
        for poll in &self.polls {
            let reference = poll.query_reference();
            subrequests.push(match &poll.query {
                PollQuery::Changes(soql) => {
                    session.query_subrequest(&reference, soql, true, batch_size)
                }
                PollQuery::NextPage(url) => session.next_page_subrequest(&reference, url),
            });
            if let Some(window) = poll.deleted {
                subrequests.push(session.deleted_subrequest(
                    &poll.deleted_reference(),
                    &poll.object,
                    window.start,
                    window.end,
                ));
            }
        }
        subrequests
    }

    /// Each poll's answers, in the call's order, from what the call answered.
    pub fn outcomes(&self, responses: &[SubResponse]) -> Vec<PollOutcome> {
        let find = |reference: &str| {
            responses
                .iter()
                .find(|r| r.reference_id == reference)
                .ok_or_else(|| {
                    SalesforceError::BadResponse(format!(
                        "composite: no answer to subrequest {reference}"
                    ))
                })
        };
        self.polls
            .iter()
            .map(|poll| PollOutcome {
                key: poll.key,
                page: find(&poll.query_reference()).and_then(SubResponse::page_text),
                deleted: poll.deleted.map(|_| {
                    find(&poll.deleted_reference()).and_then(SubResponse::deleted_records)
                }),
            })
            .collect()
    }
}

/// Packs polls, in their order, into as few calls as the limits allow.
pub fn plan(polls: Vec<DuePoll>) -> Vec<PollCall> {
    let mut calls: Vec<PollCall> = Vec::new();
    for poll in polls {
        match calls.last_mut() {
            Some(call) if call.has_room_for(&poll) => call.polls.push(poll),
            _ => calls.push(PollCall { polls: vec![poll] }),
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::composite::check_call;
    use crate::client::composite::tests::{offline_session, session_at};
    use crate::client::session::{PageHead, QueryPage};
    use crate::sync::queries;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn window() -> DeletedWindow {
        DeletedWindow {
            start: Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap(),
        }
    }

    fn poll(key: i64, deleted: bool) -> DuePoll {
        DuePoll {
            key,
            object: "Contact".into(),
            query: PollQuery::Changes(format!("SELECT Id FROM Contact WHERE Key = {key}")),
            deleted: deleted.then(window),
        }
    }

    fn keys(call: &PollCall) -> Vec<i64> {
        call.polls.iter().map(|p| p.key).collect()
    }

    #[test]
    fn five_polls_share_a_call() {
        let calls = plan((1..=12).map(|k| poll(k, k % 2 == 0)).collect());
        let packed: Vec<Vec<i64>> = calls.iter().map(keys).collect();
        assert_eq!(
            packed,
            [vec![1, 2, 3, 4, 5], vec![6, 7, 8, 9, 10], vec![11, 12]]
        );
        assert_eq!(
            (calls[0].query_count(), calls[0].subrequest_count()),
            (5, 7)
        );
        assert!(plan(vec![]).is_empty());
    }

    #[test]
    fn a_key_polled_twice_goes_to_another_call() {
        let calls = plan(vec![poll(1, true), poll(2, false), poll(1, false)]);
        assert_eq!(
            calls.iter().map(keys).collect::<Vec<_>>(),
            [vec![1, 2], vec![1]]
        );
    }

    #[test]
    fn a_poll_s_query_and_get_deleted_are_named_by_its_key() {
        let s = offline_session();
        let call = PollCall {
            polls: vec![
                poll(7, true),
                DuePoll {
                    key: -3,
                    object: "Lead".into(),
                    query: PollQuery::NextPage("/services/data/v62.0/query/01gX-200".into()),
                    deleted: None,
                },
            ],
        };
        let subrequests = call.subrequests(&s, 200);
        let references: Vec<&str> = subrequests
            .iter()
            .map(|r| r.reference_id.as_str())
            .collect();
        assert_eq!(references, ["sync7_query", "sync7_deleted", "syncm3_query"]);
        assert!(subrequests[0]
            .url
            .contains("/queryAll?q=SELECT+Id+FROM+Contact"));
        assert!(subrequests[1]
            .url
            .contains("/sobjects/Contact/deleted/?start="));
        assert_eq!(subrequests[2].url, "/services/data/v62.0/query/01gX-200");
        assert_eq!(check_call(&subrequests), Ok(()));
    }

    #[test]
    fn missing_answers_are_the_poll_s_errors() {
        let call = PollCall {
            polls: vec![poll(1, true)],
        };
        let outcomes = call.outcomes(&[]);
        assert!(matches!(
            outcomes[0].page,
            Err(SalesforceError::BadResponse(_))
        ));
        assert!(matches!(
            outcomes[0].deleted,
            Some(Err(SalesforceError::BadResponse(_)))
        ));
    }

    fn due_poll() -> impl Strategy<Value = DuePoll> {
        (-3i64..30, any::<bool>(), any::<bool>()).prop_map(|(key, next_page, deleted)| DuePoll {
            key,
            object: "Account".into(),
            query: if next_page {
                PollQuery::NextPage(format!("/services/data/v62.0/query/01g{key}-2000"))
            } else {
                PollQuery::Changes(format!("SELECT Id FROM Account WHERE Key = {key}"))
            },
            deleted: deleted.then(window),
        })
    }

    #[test]
    fn no_call_breaks_a_limit_and_every_poll_goes_once() {
        let session = offline_session();
        proptest!(|(polls in proptest::collection::vec(due_poll(), 0..60))| {
            let calls = plan(polls.clone());
            for call in &calls {
                prop_assert!(!call.polls.is_empty());
                prop_assert!(call.query_count() <= MAX_QUERY_SUBREQUESTS);
                prop_assert!(call.subrequest_count() <= MAX_SUBREQUESTS);
                let subrequests = call.subrequests(&session, 200);
                prop_assert_eq!(subrequests.len(), call.subrequest_count());
                prop_assert_eq!(
                    subrequests.iter().filter(|s| s.counts_as_query()).count(),
                    call.query_count()
                );
                prop_assert!(subrequests.iter().all(|s| s
                    .reference_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')));
                prop_assert_eq!(check_call(&subrequests), Ok(()));
            }
            let flattened: Vec<DuePoll> = calls.into_iter().flat_map(|c| c.polls).collect();
            prop_assert_eq!(flattened, polls);
        });
    }

    #[test]
    fn seven_syncs_poll_in_two_requests() {
        let sim = sfsim::server::spawn(sfsim::server::Options::demo()).unwrap();
        let mut s = session_at(&sim.base_url);
        s.limits().unwrap();
        let now = s.last_server_time.unwrap();
        let since = now - chrono::Duration::days(400);
        let fields = vec!["Id".to_string()];
        let objects = [
            "Account",
            "Contact",
            "Lead",
            "Opportunity",
            "Case",
            "Task",
            "Invoice__c",
        ];
        let polls: Vec<DuePoll> = (0..)
            .zip(objects)
            .map(|(key, object)| DuePoll {
                key,
                object: object.into(),
                query: PollQuery::Changes(queries::changes(object, &fields, Some(since))),
                deleted: Some(DeletedWindow {
                    start: now - chrono::Duration::hours(1),
                    end: now,
                }),
            })
            .collect();
        let before = s.requests;
        let mut outcomes = Vec::new();
        for call in plan(polls) {
            let answers = s.composite(&call.subrequests(&s, 200)).unwrap();
            outcomes.extend(call.outcomes(&answers));
        }
        assert_eq!(s.requests - before, 2);
        assert_eq!(
            outcomes.iter().map(|o| o.key).collect::<Vec<_>>(),
            (0..7).collect::<Vec<_>>()
        );
        for outcome in &outcomes {
            let page = outcome.page.as_ref().unwrap();
            assert!(PageHead::of(page).is_ok());
            assert!(!QueryPage::of(page).unwrap().records.is_empty());
            assert!(outcome.deleted.as_ref().unwrap().is_ok());
        }
    }
}
