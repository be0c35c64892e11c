//! Queued writes delivered after their transaction committed: how the
//! outbox's rows go out in Collections calls (or, a backlog of like writes
//! that reached the Bulk threshold, in one ingest job: `bulk_delivery`),
//! each record succeeding or failing on its own, and what every answer
//! means for every row.
//!
//! A write that may be sent again without harm (an upsert by an external
//! id, an update, a delete) is tried again after an unknown outcome. A
//! create is sent at most once: after an outcome that leaves open whether
//! Salesforce applied it, it is `Unknown`, for a person to decide. A
//! platform event in that case is looked for on the bus before it is
//! published again (`LookFirst`), so it goes out once.

use super::chunk::{ids, records, runs_up_to, CHUNK};
use super::journal::{Op, Queued};
use crate::client::session::{Collection, RecordResult, Session};
use crate::client::SalesforceError;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use std::time::Duration;

/// A row of the outbox on its way.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub outbox_id: i64,
    pub write: Queued,
    /// For an update made against a copy of the record: the copy's
    /// version then. A record changed in Salesforce since is a conflict,
    /// and the values the update replaces are its losing version.
    pub seen: Option<Seen>,
    /// For a platform event whose earlier publish never answered: it is
    /// looked for on the bus first, and published only if it is not there.
    pub look_back: Option<LookBack>,
}

/// Where to look for events that may be published already.
#[derive(Clone, Debug, PartialEq)]
pub struct LookBack {
    /// The replay id of an event of the topic published before them; from
    /// the earliest event retained when none is known.
    pub after: Option<Vec<u8>>,
}

/// The copy's version of a record an update was made against.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub stamp: DateTime<Utc>,
    /// The values of the fields the update changes, as the copy had them.
    pub values: serde_json::Map<String, Json>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Salesforce applied it; the record's Id, when it names one.
    Delivered { id: Option<String> },
    /// Salesforce refused it for a reason that trying again will not change.
    Rejected { code: String, message: String },
    /// It was not applied (or applying it again is harmless): try again later.
    Retry { why: String },
    /// A create that Salesforce may or may not have applied: never resent.
    Unknown { why: String },
    /// A platform event that may or may not be on the bus: looked for
    /// there before it is published again.
    LookFirst { why: String },
    /// Not sent: an earlier call of the batch failed, and order is kept.
    Unsent,
}

impl Outcome {
    /// Whether the row is done with (it leaves the queue of pending writes).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Outcome::Delivered { .. } | Outcome::Rejected { .. } | Outcome::Unknown { .. }
        )
    }
}

/// Whether sending `op` twice does what sending it once does.
pub fn resendable(op: &Op) -> bool {
    !matches!(op, Op::Create { .. } | Op::Publish { .. })
}

/// The pause before attempt `attempts + 1`: 1 s, doubling, at most 30 s.
pub fn backoff(attempts: i32) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(1, 6).saturating_sub(1)).min(Duration::from_secs(30))
}

/// What a whole call's failure means for a write in it.
pub fn after_call_error(op: &Op, e: &SalesforceError) -> Outcome {
    let why = e.to_string();
    match e {
        SalesforceError::Api {
            status,
            code,
            message,
        } if *status < 500
            && !e.is_retryable()
            && code != "REQUEST_LIMIT_EXCEEDED"
            && *status != 401 =>
        {
            Outcome::Rejected {
                code: code.clone(),
                message: message.clone(),
            }
        }
        _ if !e.may_have_applied() || resendable(op) => Outcome::Retry { why },
        _ if matches!(op, Op::Publish { .. }) => Outcome::LookFirst { why },
        _ => Outcome::Unknown { why },
    }
}

/// What one record's result in a call means.
pub fn after_result(op: &Op, r: &RecordResult) -> Outcome {
    if r.success {
        return Outcome::Delivered {
            id: r.id.clone().or_else(|| op.id().map(str::to_string)),
        };
    }
    let first = r.errors.first();
    let code = first.map_or("UNKNOWN_EXCEPTION", |e| e.status_code.as_str());
    let message = first.map_or("rejected without a reason", |e| e.message.as_str());
    match code {
        // Gone already: what the delete was for.
        "ENTITY_IS_DELETED" if matches!(op, Op::Delete { .. }) => Outcome::Delivered {
            id: op.id().map(str::to_string),
        },
        "UNABLE_TO_LOCK_ROW" => Outcome::Retry {
            why: format!("{code}: {message}"),
        },
        _ => Outcome::Rejected {
            code: code.to_string(),
            message: message.to_string(),
        },
    }
}

/// What sending a mapping's writes came to.
pub struct Delivery {
    /// Each row's outcome, by outbox id.
    pub outcomes: Vec<(i64, Outcome)>,
    /// Why a call failed as a whole, if one did.
    pub failure: Option<SalesforceError>,
    /// Updates of records changed in Salesforce since the copy's version
    /// they were made against: Salesforce's values of the fields they
    /// replace, with its SystemModstamp.
    pub conflicts: Vec<(i64, Json)>,
}

/// Sends `rows` (one user mapping's, in the order they were queued) in
/// calls of up to 200 like writes, each record on its own; like writes
/// that reach their `bulk_from` go through one ingest job instead. After
/// a call that did not settle every row, the rest wait their turn: `Unsent`.
pub fn deliver(session: &mut Session, rows: Vec<Outgoing>) -> Delivery {
    let conflicts = super::conflict::replaced(session, &rows);
    let mut out = Vec::with_capacity(rows.len());
    let mut failure = None;
    let mut stopped = false;
    for call in calls(rows) {
        let rows = match &call {
            Call::Collection(rows) | Call::Bulk(rows) => rows,
        };
        if stopped {
            out.extend(rows.iter().map(|o| (o.outbox_id, Outcome::Unsent)));
            continue;
        }
        let (outcomes, failed) = match &call {
            Call::Collection(rows) => send(session, rows),
            Call::Bulk(rows) => super::bulk_delivery::send(session, rows),
        };
        stopped = outcomes.iter().any(|o| !o.is_final());
        failure = failure.or(failed);
        out.extend(rows.iter().map(|o| o.outbox_id).zip(outcomes));
    }
    Delivery {
        outcomes: out,
        failure,
        conflicts,
    }
}

/// Writes that go out together.
enum Call {
    /// Up to 200, in one Collections call.
    Collection(Vec<Outgoing>),
    /// A backlog that reached the Bulk threshold, in one ingest job.
    Bulk(Vec<Outgoing>),
}

/// Splits rows into calls: runs of like writes, cut where a record is
/// named again; a run that reaches its `bulk_from` is one Bulk call, the
/// others go 200 to a call.
fn calls(rows: Vec<Outgoing>) -> Vec<Call> {
    let mut calls = vec![];
    for piece in runs_up_to(rows, usize::MAX, |o| &o.write)
        .into_iter()
        .flat_map(without_repeats)
    {
        let first = &piece[0].write;
        // Events are published, never written through Bulk.
        let bulk = !matches!(first.op, Op::Publish { .. })
            && first.bulk_from.is_some_and(|t| piece.len() >= t);
        if bulk {
            calls.push(Call::Bulk(piece));
            continue;
        }
        let mut rest = piece.into_iter().peekable();
        while rest.peek().is_some() {
            calls.push(Call::Collection(rest.by_ref().take(CHUNK).collect()));
        }
    }
    calls
}

/// Which record a write names: its Id, or its external id's value.
fn names(op: &Op) -> Option<String> {
    match op {
        Op::Update { id, .. } | Op::Delete { id } => Some(id.clone()),
        Op::Upsert { key_field, record } => record.get(key_field).map(|v| v.to_string()),
        Op::Create { .. } | Op::Publish { .. } => None,
    }
}

/// Splits a run so that no call names a record twice: Salesforce refuses
/// a list that repeats an external id, processes a Bulk job's records in
/// no set order, and two writes of one record go in the order they were
/// queued.
fn without_repeats(run: Vec<Outgoing>) -> Vec<Vec<Outgoing>> {
    let mut calls: Vec<Vec<Outgoing>> = vec![];
    let mut named = std::collections::HashSet::new();
    for o in run {
        let name = names(&o.write.op);
        let repeated = name.as_ref().is_some_and(|n| named.contains(n));
        if repeated || calls.is_empty() {
            calls.push(vec![]);
            named.clear();
        }
        if let Some(n) = name {
            named.insert(n);
        }
        calls.last_mut().expect("a call").push(o);
    }
    calls
}

fn send(session: &mut Session, call: &[Outgoing]) -> (Vec<Outcome>, Option<SalesforceError>) {
    debug_assert!(call.len() <= CHUNK);
    let writes = call.iter().map(|o| &o.write);
    let first = &call[0].write;
    let object = first.target.object.as_str();
    let answer = match &first.op {
        Op::Create { .. } => {
            session.collection(Collection::Create(records(object, writes, false)), false)
        }
        Op::Update { .. } => {
            session.collection(Collection::Update(records(object, writes, true)), false)
        }
        Op::Upsert { key_field, .. } => session.collection(
            Collection::Upsert {
                object,
                key_field,
                records: records(object, writes, false),
            },
            false,
        ),
        Op::Delete { .. } => session.collection(Collection::Delete(&ids(writes)), false),
        Op::Publish { .. } => return publish(session, object, call),
    };
    let answer = answer.and_then(|results| {
        if results.len() == call.len() {
            Ok(results)
        } else {
            Err(SalesforceError::BadResponse(format!(
                "{} results for {} records",
                results.len(),
                call.len()
            )))
        }
    });
    match answer {
        Ok(results) => (
            call.iter()
                .zip(&results)
                .map(|(o, r)| after_result(&o.write.op, r))
                .collect(),
            None,
        ),
        Err(e) => (
            call.iter()
                .map(|o| after_call_error(&o.write.op, &e))
                .collect(),
            Some(e),
        ),
    }
}

/// Publishes a run of queued platform events: each event's result, or the
/// call's failure. Events whose earlier publish never answered are looked
/// for on the bus first; only those not found there are published.
fn publish(
    session: &mut Session,
    event: &str,
    call: &[Outgoing],
) -> (Vec<Outcome>, Option<SalesforceError>) {
    let topic = format!("/event/{event}");
    let events: Vec<Map<String, Json>> = call
        .iter()
        .map(|o| o.write.op.fields().cloned().unwrap_or_default())
        .collect();
    let mut publisher = match crate::events::Publisher::for_session(session) {
        Ok(p) => p,
        Err(e) => {
            let outcomes = call.iter().map(|o| after_call_error(&o.write.op, &e));
            return (outcomes.collect(), Some(e));
        }
    };
    let mut outcomes: Vec<Option<Outcome>> = vec![None; call.len()];
    let looking: Vec<usize> = (0..call.len())
        .filter(|&i| call[i].look_back.is_some())
        .collect();
    if let Some(&first) = looking.first() {
        // The oldest row's replay id comes before all of theirs.
        let after = call[first].look_back.as_ref().and_then(|l| l.after.clone());
        let wanted: Vec<_> = looking.iter().map(|&i| events[i].clone()).collect();
        let looked = crate::cdc::StreamConfig::for_session(
            session,
            &topic,
            crate::cdc::Replay::Earliest,
            100,
        )
        .and_then(|config| crate::events::look_back(&config, &mut publisher, after, &wanted));
        match looked {
            Ok(found) => {
                for (&i, replay) in looking.iter().zip(found) {
                    outcomes[i] = replay.map(|r| delivered_event(&r));
                }
            }
            Err(e) => {
                let why = format!("cannot tell whether it was published: {e}");
                for (i, outcome) in outcomes.iter_mut().enumerate() {
                    *outcome = Some(match (&e, call[i].look_back.is_some()) {
                        (_, false) => Outcome::Unsent,
                        (SalesforceError::Config(_), true) => Outcome::Unknown { why: why.clone() },
                        (_, true) => Outcome::LookFirst { why: why.clone() },
                    });
                }
                return (outcomes.into_iter().flatten().collect(), Some(e));
            }
        }
    }
    let to_send: Vec<usize> = (0..call.len()).filter(|&i| outcomes[i].is_none()).collect();
    let mut failure = None;
    if !to_send.is_empty() {
        let fields: Vec<_> = to_send.iter().map(|&i| events[i].clone()).collect();
        match publisher.publish(&topic, &fields) {
            Ok(results) => {
                for (&i, r) in to_send.iter().zip(results) {
                    outcomes[i] = Some(match r {
                        Ok(replay) => delivered_event(&replay),
                        Err(e) => Outcome::Rejected {
                            code: e.code,
                            message: match e.field {
                                Some(f) => format!("{} (field {f})", e.message),
                                None => e.message,
                            },
                        },
                    });
                }
            }
            Err(e) => {
                for &i in &to_send {
                    outcomes[i] = Some(after_call_error(&call[i].write.op, &e));
                }
                failure = Some(e);
            }
        }
    }
    (outcomes.into_iter().flatten().collect(), failure)
}

/// A published event's outcome: its replay id, in hex, stands for its Id.
fn delivered_event(replay_id: &[u8]) -> Outcome {
    Outcome::Delivered {
        id: Some(crate::events::replay_hex(replay_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::session::RecordError;
    use serde_json::{json, Map};

    fn record() -> Map<String, serde_json::Value> {
        json!({"LastName": "Ng"}).as_object().unwrap().clone()
    }

    fn failed(code: &str) -> RecordResult {
        RecordResult {
            id: None,
            success: false,
            errors: vec![RecordError {
                status_code: code.into(),
                message: "no".into(),
                fields: vec![],
            }],
            created: None,
        }
    }

    #[test]
    fn a_create_is_never_sent_twice_after_an_unknown_outcome() {
        let create = Op::Create { record: record() };
        let upsert = Op::Upsert {
            key_field: "Ext__c".into(),
            record: record(),
        };
        let dropped = SalesforceError::Network("connection reset".into());
        let hung = SalesforceError::TimedOut("no answer in 30 s".into());
        for e in [&dropped, &hung] {
            assert!(matches!(
                after_call_error(&create, e),
                Outcome::Unknown { .. }
            ));
            assert!(matches!(
                after_call_error(&upsert, e),
                Outcome::Retry { .. }
            ));
        }
        // Refused connections and 503s applied nothing: a create may go again.
        let refused = SalesforceError::ConnectFailed("connection refused".into());
        let unavailable = SalesforceError::Api {
            status: 503,
            code: "SERVER_UNAVAILABLE".into(),
            message: "down".into(),
        };
        for e in [&refused, &unavailable] {
            assert!(matches!(
                after_call_error(&create, e),
                Outcome::Retry { .. }
            ));
        }
    }

    #[test]
    fn a_refused_record_is_rejected_a_locked_one_retried_a_deleted_one_done() {
        let delete = Op::Delete { id: "003A".into() };
        let create = Op::Create { record: record() };
        assert!(matches!(
            after_result(&create, &failed("REQUIRED_FIELD_MISSING")),
            Outcome::Rejected { ref code, .. } if code == "REQUIRED_FIELD_MISSING"
        ));
        assert!(matches!(
            after_result(&create, &failed("UNABLE_TO_LOCK_ROW")),
            Outcome::Retry { .. }
        ));
        assert_eq!(
            after_result(&delete, &failed("ENTITY_IS_DELETED")),
            Outcome::Delivered {
                id: Some("003A".into())
            }
        );
        // A call Salesforce refused as a whole, for good.
        let bad_object = SalesforceError::Api {
            status: 400,
            code: "INVALID_TYPE".into(),
            message: "no such object".into(),
        };
        assert!(matches!(
            after_call_error(&create, &bad_object),
            Outcome::Rejected { .. }
        ));
        let limit = SalesforceError::Api {
            status: 403,
            code: "REQUEST_LIMIT_EXCEEDED".into(),
            message: "limit".into(),
        };
        assert!(matches!(
            after_call_error(&create, &limit),
            Outcome::Retry { .. }
        ));
    }

    fn outgoing(outbox_id: i64, op: Op) -> Outgoing {
        Outgoing {
            seen: None,
            look_back: None,
            outbox_id,
            write: Queued {
                target: super::super::journal::Target {
                    server: 1,
                    user: 10,
                    object: "Contact".into(),
                },
                op,
                row: 1,
                statement: "queued write".into(),
                bulk_from: None,
            },
        }
    }

    #[test]
    fn each_record_of_a_call_succeeds_or_fails_on_its_own_and_an_upsert_twice_is_one_record() {
        let sim = sfsim::server::spawn(sfsim::server::Options::demo()).unwrap();
        let mut s = crate::client::composite::tests::session_at(&sim.base_url);
        let keyed = |n: i64| {
            let r = json!({"LastName": "Queued", "User_Id__c": "u-outbox-1"});
            outgoing(
                n,
                Op::Upsert {
                    key_field: "User_Id__c".into(),
                    record: r.as_object().unwrap().clone(),
                },
            )
        };
        let rows = vec![
            outgoing(1, Op::Create { record: record() }),
            outgoing(
                2,
                Op::Create {
                    record: json!({"FirstName": "No last name"})
                        .as_object()
                        .unwrap()
                        .clone(),
                },
            ),
            keyed(3),
            keyed(4),
        ];
        let before = s.requests;
        let delivery = deliver(&mut s, rows);
        assert!(delivery.failure.is_none());
        let outcomes = delivery.outcomes;
        assert_eq!(
            s.requests - before,
            3,
            "two creates in one call, then each upsert of the one key in a call of its own"
        );
        assert!(matches!(&outcomes[0].1, Outcome::Delivered { id: Some(_) }));
        assert!(
            matches!(&outcomes[1].1, Outcome::Rejected { code, .. } if code == "REQUIRED_FIELD_MISSING")
        );
        let (Outcome::Delivered { id: Some(a) }, Outcome::Delivered { id: Some(b) }) =
            (&outcomes[2].1, &outcomes[3].1)
        else {
            panic!("upserts delivered: {outcomes:?}");
        };
        assert_eq!(a, b);
        let page = s
            .query(
                "SELECT Id FROM Contact WHERE User_Id__c = 'u-outbox-1'",
                false,
            )
            .unwrap();
        assert_eq!(page.records.len(), 1);
    }

    #[test]
    fn a_run_of_like_writes_that_reaches_the_threshold_is_one_bulk_call() {
        let with_threshold = |mut o: Outgoing| {
            o.write.bulk_from = Some(3);
            o
        };
        let upsert = |n: i64, key: &str| {
            let record = json!({"LastName": "K", "Ext__c": key});
            let op = Op::Upsert {
                key_field: "Ext__c".into(),
                record: record.as_object().unwrap().clone(),
            };
            outgoing(n, op)
        };
        let create = |n: i64| outgoing(n, Op::Create { record: record() });
        let rows = vec![
            outgoing(1, Op::Delete { id: "003A".into() }),
            create(2),
            create(3),
            create(4),
            create(5),
            // Three upserts, but the third names the first's record again.
            upsert(6, "k1"),
            upsert(7, "k2"),
            upsert(8, "k1"),
            create(9),
        ];
        let shape: Vec<(&str, Vec<i64>)> = calls(rows.into_iter().map(with_threshold).collect())
            .into_iter()
            .map(|c| match c {
                Call::Collection(rows) => ("collection", rows),
                Call::Bulk(rows) => ("bulk", rows),
            })
            .map(|(kind, rows)| (kind, rows.iter().map(|o| o.outbox_id).collect()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("collection", vec![1]),
                ("bulk", vec![2, 3, 4, 5]),
                ("collection", vec![6, 7]),
                ("collection", vec![8]),
                ("collection", vec![9]),
            ]
        );
    }

    #[test]
    fn the_pause_doubles_up_to_half_a_minute() {
        let secs: Vec<u64> = (1..=8).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
