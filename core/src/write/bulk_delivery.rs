//! A backlog of like queued writes delivered through one Bulk API 2.0
//! ingest job instead of Collections calls. The job is not atomic: each
//! outbox row gets its own outcome from the job's results, found by the
//! cells it was uploaded with, since result rows come back in any order.

use super::bulk::{self, column, header_for, operation_of, parse_sf_error, RowsByCells, Upload};
use super::delivery::{after_call_error, after_result, resendable, Outcome, Outgoing};
use crate::client::bulk::JobState;
use crate::client::bulk_ingest::{IngestJob, IngestResults};
use crate::client::session::{RecordResult, Session};
use crate::client::SalesforceError;
use std::collections::HashSet;

/// Sends `rows`, like writes (one object, one kind of write, one upsert
/// key) none of which names a record another names, through one job.
/// Returns each row's outcome, in order, and why the job failed as a
/// whole if it did.
pub fn send(session: &mut Session, rows: &[Outgoing]) -> (Vec<Outcome>, Option<SalesforceError>) {
    let first = &rows[0].write;
    let (operation, key) = operation_of(&first.op);
    let header = header_for(operation, &fields_of(rows));
    let mut upload = Upload::new(operation, header, first.statement.clone());
    let job = match session.create_ingest_job(&first.target.object, operation, key) {
        Ok(job) => job.id,
        Err(e) => return not_applied(rows, e),
    };
    if let Err(e) = upload_all(session, &job, &mut upload, rows) {
        let _ = session.abort_ingest_job(&job);
        return not_applied(rows, e);
    }
    let mut by_cells = upload.rows_by_cells();
    drop(upload);
    let mut outcomes = vec![None; rows.len()];
    if let Err(e) = session.close_ingest_job(&job) {
        if e.may_have_applied() {
            return undetermined(session, &job, rows, outcomes, e);
        }
        // Salesforce answered: the job is still open and applies nothing.
        let _ = session.abort_ingest_job(&job);
        return not_applied(rows, e);
    }
    match collect(session, &job, rows, &mut by_cells, &mut outcomes) {
        Ok(()) => {
            // The results were read; a job left behind only costs storage.
            let _ = session.delete_ingest_job(&job);
            let why = SalesforceError::BadResponse(format!(
                "Bulk ingest job {job} gave no result for this record"
            ));
            (settled(rows, outcomes, &job, &why), None)
        }
        Err(e) => undetermined(session, &job, rows, outcomes, e),
    }
}

/// The fields the writes set, in the order first met.
fn fields_of(rows: &[Outgoing]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut fields = vec![];
    for name in rows
        .iter()
        .filter_map(|o| o.write.op.fields())
        .flat_map(|f| f.keys())
    {
        // A REST record's type marker is no field: a CSV column of that
        // name would fail the job.
        if name != "attributes" && seen.insert(name.as_str()) {
            fields.push(name.clone());
        }
    }
    fields
}

fn upload_all(
    session: &mut Session,
    job: &str,
    upload: &mut Upload,
    rows: &[Outgoing],
) -> Result<(), SalesforceError> {
    for (i, o) in rows.iter().enumerate() {
        if let Some(part) = upload.push_op(i, &o.write.op) {
            session.upload_ingest_part(job, part)?;
        }
    }
    bulk::upload_rest(session, job, upload)
}

/// Each row's outcome when the job was never closed, so applied nothing:
/// sent again later, unless Salesforce refused the job for good.
fn not_applied(rows: &[Outgoing], e: SalesforceError) -> (Vec<Outcome>, Option<SalesforceError>) {
    let outcomes = rows
        .iter()
        .map(|o| match after_call_error(&o.write.op, &e) {
            rejected @ Outcome::Rejected { .. } => rejected,
            _ => Outcome::Retry { why: e.to_string() },
        })
        .collect();
    (outcomes, Some(e))
}

/// Each row's outcome when the job may have applied records whose
/// results are not known: what the results said so far stands; the
/// others are tried again if that is harmless, and creates are `Unknown`.
/// The job is aborted, so that it applies nothing after the writes sent
/// again (which would undo their order); it is kept for a person to read
/// its results.
fn undetermined(
    session: &mut Session,
    job: &str,
    rows: &[Outgoing],
    outcomes: Vec<Option<Outcome>>,
    e: SalesforceError,
) -> (Vec<Outcome>, Option<SalesforceError>) {
    let _ = session.abort_ingest_job(job);
    (settled(rows, outcomes, job, &e), Some(e))
}

/// The outcomes, those not known yet made from `why`.
fn settled(
    rows: &[Outgoing],
    outcomes: Vec<Option<Outcome>>,
    job: &str,
    why: &SalesforceError,
) -> Vec<Outcome> {
    rows.iter()
        .zip(outcomes)
        .map(|(o, outcome)| {
            outcome.unwrap_or_else(|| {
                let why = format!("Bulk ingest job {job}: {why}");
                if resendable(&o.write.op) {
                    Outcome::Retry { why }
                } else {
                    Outcome::Unknown { why }
                }
            })
        })
        .collect()
}

/// Waits for the closed job and reads each row's outcome from its
/// results into `outcomes`.
fn collect(
    session: &mut Session,
    job: &str,
    rows: &[Outgoing],
    by_cells: &mut RowsByCells,
    outcomes: &mut [Option<Outcome>],
) -> Result<(), SalesforceError> {
    let ended = session.wait_for_ingest_job(job, bulk::PATIENCE)?;
    let mut page = session.ingest_results(job, IngestResults::Successful)?;
    let id_at = column(&page, "sf__Id")?;
    let created_at = column(&page, "sf__Created")?;
    let first_cell = by_cells.first_cell(&page)?;
    while let Some(r) = page.next_record()? {
        let Some(i) = by_cells.take(r, first_cell) else {
            continue;
        };
        let result = RecordResult {
            id: Some(r[id_at].to_string()).filter(|id| !id.is_empty()),
            success: true,
            errors: vec![],
            created: Some(r[created_at].eq_ignore_ascii_case("true")),
        };
        outcomes[i] = Some(after_result(&rows[i].write.op, &result));
    }
    if ended.number_records_failed != Some(0) {
        let mut page = session.ingest_results(job, IngestResults::Failed)?;
        let error_at = column(&page, "sf__Error")?;
        let first_cell = by_cells.first_cell(&page)?;
        while let Some(r) = page.next_record()? {
            let Some(i) = by_cells.take(r, first_cell) else {
                continue;
            };
            let result = RecordResult {
                id: None,
                success: false,
                errors: vec![parse_sf_error(&r[error_at])],
                created: None,
            };
            outcomes[i] = Some(after_result(&rows[i].write.op, &result));
        }
    }
    let not_processed = unprocessed(job, &ended);
    if matches!(ended.state, JobState::Failed | JobState::Aborted) {
        // Neither applied nor refused: not processed.
        for outcome in outcomes.iter_mut().filter(|o| o.is_none()) {
            *outcome = Some(not_processed.clone());
        }
    } else if outcomes.iter().any(Option::is_none) {
        let mut page = session.ingest_results(job, IngestResults::Unprocessed)?;
        let first_cell = by_cells.first_cell(&page)?;
        while let Some(r) = page.next_record()? {
            if let Some(i) = by_cells.take(r, first_cell) {
                outcomes[i] = Some(not_processed.clone());
            }
        }
    }
    Ok(())
}

/// What a record the job left unprocessed comes to. A job Salesforce
/// failed for its input (an unknown field: `InvalidBatch`, a CSV it could
/// not read: `ClientInputError`) would fail the same way if sent again,
/// so its records fail with that error; others (a lock held too long, the
/// day's Bulk allocation used up) are tried again.
fn unprocessed(job: &str, ended: &IngestJob) -> Outcome {
    let error = ended.error_message.as_deref().unwrap_or_default();
    let (code, message) = error.split_once(':').unwrap_or((error, ""));
    let (code, message) = (code.trim(), message.trim());
    match (&ended.state, code) {
        (JobState::Failed, "InvalidBatch" | "ClientInputError") => Outcome::Rejected {
            code: code.to_string(),
            message: message.to_string(),
        },
        _ if error.is_empty() => Outcome::Retry {
            why: format!("not processed by Bulk ingest job {job}"),
        },
        _ => Outcome::Retry {
            why: format!("not processed by Bulk ingest job {job}: {error}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::delivery::deliver;
    use crate::write::journal::{Op, Queued, Target};
    use serde_json::{json, Value as Json};
    use std::collections::HashMap;

    fn outgoing(outbox_id: i64, op: Op, bulk_from: Option<usize>) -> Outgoing {
        Outgoing {
            outbox_id,
            write: Queued {
                target: Target {
                    server: 1,
                    user: 10,
                    object: "Contact".into(),
                },
                op,
                row: 0,
                statement: "queued write".into(),
                bulk_from,
            },
            seen: None,
            look_back: None,
        }
    }

    fn create(outbox_id: i64, record: Json, bulk_from: Option<usize>) -> Outgoing {
        let record = record.as_object().unwrap().clone();
        outgoing(outbox_id, Op::Create { record }, bulk_from)
    }

    /// (method, path) of the data API requests sfsim logged after `seq`.
    fn requests_after(sim: &sfsim::server::Running, seq: u64) -> Vec<(String, String)> {
        sim.sim
            .log
            .lock()
            .since(seq)
            .into_iter()
            .filter(|r| r.path.starts_with("/services/data/"))
            .map(|r| (r.method, r.path))
            .collect()
    }

    fn last_seq(sim: &sfsim::server::Running) -> u64 {
        sim.sim.log.lock().since(0).last().map_or(0, |r| r.seq)
    }

    #[test]
    fn a_backlog_of_creates_from_the_threshold_is_one_ingest_job_and_each_row_gets_its_own_outcome()
    {
        let sim = sfsim::server::spawn(sfsim::server::Options::demo()).unwrap();
        let mut s = crate::client::composite::tests::session_at(&sim.base_url);
        let rows: Vec<Outgoing> = (1..=2500)
            .map(|i| {
                let record = match i {
                    1234 => json!({"FirstName": "No last name"}),
                    10 | 11 => json!({"LastName": "Twin"}),
                    _ => json!({"LastName": format!("Bulk {i}")}),
                };
                create(i, record, Some(2000))
            })
            .collect();
        s.query("SELECT Id FROM Contact LIMIT 1", false).unwrap();
        let (seq, before) = (last_seq(&sim), s.requests);
        let delivery = deliver(&mut s, rows);
        let requests = s.requests - before;
        assert!(delivery.failure.is_none(), "{:?}", delivery.failure);
        let logged = requests_after(&sim, seq);
        let created_jobs = logged
            .iter()
            .filter(|(m, p)| m == "POST" && p.ends_with("/jobs/ingest"))
            .count();
        assert_eq!(created_jobs, 1, "{logged:?}");
        assert!(
            !logged.iter().any(|(_, p)| p.contains("/composite")),
            "no collections call: {logged:?}"
        );
        assert_eq!(
            requests as usize,
            logged.len(),
            "each of the job's requests is counted"
        );
        assert!(requests < 20, "{requests} requests: {logged:?}");

        let outcomes: HashMap<i64, Outcome> = delivery.outcomes.into_iter().collect();
        assert_eq!(outcomes.len(), 2500);
        assert!(
            matches!(&outcomes[&1234], Outcome::Rejected { code, message }
                if code == "REQUIRED_FIELD_MISSING" && message.contains("LastName")),
            "{:?}",
            outcomes[&1234]
        );
        let ids: HashMap<i64, &str> = outcomes
            .iter()
            .filter(|(row, _)| **row != 1234)
            .map(|(row, o)| match o {
                Outcome::Delivered { id: Some(id) } => (*row, id.as_str()),
                other => panic!("row {row}: {other:?}"),
            })
            .collect();
        let distinct: HashSet<&str> = ids.values().copied().collect();
        assert_eq!(distinct.len(), 2499, "each row its own record");

        // Each row got the Id of the record made from it.
        let page = s
            .query(
                "SELECT Id, LastName FROM Contact WHERE LastName LIKE 'Bulk 24%'",
                false,
            )
            .unwrap();
        assert_eq!(page.records.len(), 111);
        for r in &page.records {
            let row: i64 = r["LastName"].as_str().unwrap()[5..].parse().unwrap();
            assert_eq!(Some(ids[&row]), r["Id"].as_str(), "row {row}");
        }
        let page = s
            .query("SELECT Id FROM Contact WHERE LastName = 'Twin'", false)
            .unwrap();
        let twins: HashSet<&str> = page
            .records
            .iter()
            .map(|r| r["Id"].as_str().unwrap())
            .collect();
        assert_eq!(twins, HashSet::from([ids[&10], ids[&11]]));
    }

    #[test]
    fn below_the_threshold_the_backlog_goes_in_collections_calls() {
        let sim = sfsim::server::spawn(sfsim::server::Options::demo()).unwrap();
        let mut s = crate::client::composite::tests::session_at(&sim.base_url);
        let rows: Vec<Outgoing> = (1..=1999)
            .map(|i| create(i, json!({"LastName": format!("Small {i}")}), Some(2000)))
            .collect();
        s.query("SELECT Id FROM Contact LIMIT 1", false).unwrap();
        let seq = last_seq(&sim);
        let delivery = deliver(&mut s, rows);
        let logged = requests_after(&sim, seq);
        assert!(!logged.iter().any(|(_, p)| p.contains("/jobs/ingest")));
        assert_eq!(logged.len(), 10, "{logged:?}");
        assert!(delivery
            .outcomes
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Delivered { id: Some(_) })));
    }

    #[test]
    fn a_job_salesforce_fails_for_its_input_fails_its_writes_with_its_error() {
        let sim = sfsim::server::spawn(sfsim::server::Options::demo()).unwrap();
        let mut s = crate::client::composite::tests::session_at(&sim.base_url);
        let rows = vec![
            create(1, json!({"LastName": "A"}), Some(2)),
            create(
                2,
                json!({"LastName": "B", "No_Such_Field__c": "x"}),
                Some(2),
            ),
        ];
        let delivery = deliver(&mut s, rows);
        for (_, o) in &delivery.outcomes {
            assert!(
                matches!(o, Outcome::Rejected { code, message }
                    if code == "InvalidBatch" && message.contains("No_Such_Field__c")),
                "{o:?}"
            );
        }
    }

    #[test]
    fn a_job_never_closed_applied_nothing_and_after_an_unanswered_close_creates_are_unknown() {
        let upsert = |n: i64| {
            let record = json!({"LastName": "K", "Ext__c": "k"});
            let op = Op::Upsert {
                key_field: "Ext__c".into(),
                record: record.as_object().unwrap().clone(),
            };
            outgoing(n, op, Some(2))
        };
        let rows = [create(1, json!({"LastName": "C"}), Some(2)), upsert(2)];
        let dropped = SalesforceError::Network("connection reset".into());
        let (outcomes, _) = not_applied(&rows, dropped.clone());
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Retry { .. })));
        let refused = SalesforceError::Api {
            status: 400,
            code: "INVALID_TYPE".into(),
            message: "no such object".into(),
        };
        let (outcomes, _) = not_applied(&rows, refused);
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Rejected { .. })));

        let outcomes = settled(&rows, vec![None, None], "750x", &dropped);
        assert!(matches!(&outcomes[0], Outcome::Unknown { why } if why.contains("750x")));
        assert!(matches!(outcomes[1], Outcome::Retry { .. }));
        let delivered = Outcome::Delivered {
            id: Some("003A".into()),
        };
        let outcomes = settled(&rows, vec![Some(delivered.clone()), None], "750x", &dropped);
        assert_eq!(outcomes[0], delivered, "what the results said stands");
    }

    #[test]
    fn records_left_unprocessed_are_retried_unless_the_job_failed_for_its_input() {
        let ended = |state, error: Option<&str>| IngestJob {
            id: "750x".into(),
            state,
            number_records_processed: None,
            number_records_failed: None,
            error_message: error.map(str::to_string),
        };
        let bad_field = ended(
            JobState::Failed,
            Some("InvalidBatch : Field name not found : Foo__c"),
        );
        assert_eq!(
            unprocessed("750x", &bad_field),
            Outcome::Rejected {
                code: "InvalidBatch".into(),
                message: "Field name not found : Foo__c".into()
            }
        );
        let quota = ended(
            JobState::Failed,
            Some("ExceededQuota : ApiBatchItems Limit exceeded."),
        );
        assert!(matches!(unprocessed("750x", &quota), Outcome::Retry { .. }));
        let locked = ended(JobState::JobComplete, None);
        assert!(matches!(
            unprocessed("750x", &locked),
            Outcome::Retry { .. }
        ));
    }
}
