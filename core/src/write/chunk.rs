//! Sending writes in sObject Collections calls of up to 200 records, all or
//! none, and turning a rejection into a message that names the row.

use super::journal::{Done, Op, Queued, Target};
use crate::client::session::{RecordError, RecordResult, Session};
use crate::client::SalesforceError;
use crate::soql::Literal;
use serde_json::{Map, Value as Json};

/// Records per sObject Collections call.
pub const CHUNK: usize = 200;

/// Salesforce refused a record, so the whole chunk was rolled back.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub statement: String,
    pub row: usize,
    /// `Id 003...`, `User_Id__c 'u-1'` or a few of the values sent.
    pub which: String,
    pub error: RecordError,
}

#[derive(Debug)]
pub enum ChunkError {
    Rejected(Box<Rejection>),
    Salesforce(SalesforceError),
}

impl From<SalesforceError> for ChunkError {
    fn from(e: SalesforceError) -> Self {
        ChunkError::Salesforce(e)
    }
}

impl Op {
    /// The kind of write, as one Collections call takes it.
    pub fn kind(&self) -> String {
        match self {
            Op::Create { .. } => "create".to_string(),
            Op::Upsert { key_field, .. } => format!("upsert {key_field}"),
            Op::Update { .. } => "update".to_string(),
            Op::Delete { .. } => "delete".to_string(),
            Op::Publish { .. } => "publish".to_string(),
        }
    }
}

/// Splits writes into runs Salesforce takes in one call: same target and
/// kind of write, at most 200 each, order kept.
pub fn runs(queued: Vec<Queued>) -> Vec<Vec<Queued>> {
    runs_of(queued, |q| q)
}

/// `runs` of things that each hold a write.
pub fn runs_of<T>(items: Vec<T>, write: impl Fn(&T) -> &Queued) -> Vec<Vec<T>> {
    runs_up_to(items, CHUNK, write)
}

/// Runs of like writes (same target and kind of write) of at most `max`,
/// order kept.
pub fn runs_up_to<T>(items: Vec<T>, max: usize, write: impl Fn(&T) -> &Queued) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    for item in items {
        match out.last_mut() {
            Some(run)
                if run.len() < max && {
                    let (first, q) = (write(&run[0]), write(&item));
                    first.target == q.target && first.op.kind() == q.op.kind()
                } =>
            {
                run.push(item)
            }
            _ => out.push(vec![item]),
        }
    }
    out
}

fn describe_row(q: &Queued) -> String {
    let show = |v: &Json| match v {
        Json::String(s) => format!("'{s}'"),
        other => other.to_string(),
    };
    match &q.op {
        Op::Update { id, .. } | Op::Delete { id } => format!("Id {id}"),
        Op::Upsert { key_field, record } => format!(
            "{key_field} {}",
            record.get(key_field).map(show).unwrap_or_default()
        ),
        Op::Create { record } | Op::Publish { record } => record
            .iter()
            .filter(|(k, v)| *k != "attributes" && !v.is_null())
            .take(3)
            .map(|(k, v)| format!("{k} {}", show(v)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn check(results: &[RecordResult], run: &[Queued]) -> Result<(), ChunkError> {
    if results.len() != run.len() {
        return Err(SalesforceError::BadResponse(format!(
            "{} results for {} records",
            results.len(),
            run.len()
        ))
        .into());
    }
    let failed = results.iter().enumerate().filter(|(_, r)| !r.success);
    // The record at fault, not the innocent ones rolled back with it.
    let culprit = failed
        .clone()
        .find(|(_, r)| {
            r.errors
                .iter()
                .all(|e| e.status_code != "ALL_OR_NONE_OPERATION_ROLLED_BACK")
        })
        .or(failed.clone().next());
    match culprit {
        None => Ok(()),
        Some((i, r)) => Err(ChunkError::Rejected(Box::new(Rejection {
            statement: run[i].statement.clone(),
            row: run[i].row,
            which: describe_row(&run[i]),
            error: r.errors.first().cloned().unwrap_or(RecordError {
                status_code: "UNKNOWN_EXCEPTION".into(),
                message: "rejected without a reason".into(),
                fields: vec![],
            }),
        }))),
    }
}

fn with_type(object: &str, mut record: Map<String, Json>) -> Json {
    record.insert("attributes".into(), serde_json::json!({"type": object}));
    Json::Object(record)
}

/// The current values of `fields` for records found by `key_field`.
fn prior_by_key(
    session: &mut Session,
    object: &str,
    key_field: &str,
    keys: &[String],
    fields: &[String],
) -> Result<Vec<Map<String, Json>>, SalesforceError> {
    let list = Literal::List(keys.iter().map(|k| Literal::Text(k.clone())).collect()).render();
    let mut select = vec!["Id".to_string(), key_field.to_string()];
    select.extend(
        fields
            .iter()
            .filter(|f| !f.eq_ignore_ascii_case(key_field))
            .cloned(),
    );
    let page = session.query(
        &format!(
            "SELECT {} FROM {object} WHERE {key_field} IN {list}",
            select.join(", ")
        ),
        false,
    )?;
    Ok(page.records)
}

fn field_names(run: &[Queued]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for k in run
        .iter()
        .filter_map(|q| q.op.fields())
        .flat_map(|m| m.keys())
    {
        if k != "attributes" && !names.contains(k) {
            names.push(k.clone());
        }
    }
    names
}

pub(crate) fn ids<'a>(run: impl IntoIterator<Item = &'a Queued>) -> Vec<String> {
    run.into_iter()
        .filter_map(|q| q.op.id())
        .map(str::to_string)
        .collect()
}

pub(crate) fn records<'a>(
    object: &str,
    run: impl IntoIterator<Item = &'a Queued>,
    with_id: bool,
) -> Vec<Json> {
    run.into_iter()
        .map(|q| {
            let mut r = q.op.fields().cloned().unwrap_or_default();
            if let (true, Some(id)) = (with_id, q.op.id()) {
                r.insert("id".into(), Json::String(id.to_string()));
            }
            with_type(object, r)
        })
        .collect()
}

fn prior_of(record: &Map<String, Json>, fields: &[String]) -> Map<String, Json> {
    fields
        .iter()
        .map(|f| (f.clone(), record.get(f).cloned().unwrap_or(Json::Null)))
        .collect()
}

/// Sends one run (see `runs`) and returns what Salesforce applied. Values an
/// update is about to change are read first, so an abort can restore them.
pub fn send(session: &mut Session, run: &[Queued]) -> Result<Vec<Done>, ChunkError> {
    let target: &Target = &run[0].target;
    let object = &target.object;
    let done = |f: &dyn Fn(usize) -> Done| (0..run.len()).map(f).collect::<Vec<_>>();
    match &run[0].op {
        Op::Publish { .. } => Err(ChunkError::Salesforce(SalesforceError::Config(
            "platform events are published at COMMIT or by the worker, not written".into(),
        ))),
        Op::Create { .. } => {
            let results = session.create(records(object, run, false))?;
            check(&results, run)?;
            Ok(done(&|i| Done::Created {
                target: target.clone(),
                id: results[i].id.clone().unwrap_or_default(),
            }))
        }
        Op::Update { .. } => {
            let ids = ids(run);
            let fields = field_names(run);
            let before = session.retrieve(object, &ids, &fields)?;
            let results = session.update(records(object, run, true))?;
            check(&results, run)?;
            Ok(done(&|i| Done::Updated {
                target: target.clone(),
                id: ids[i].clone(),
                prior: before
                    .get(i)
                    .cloned()
                    .flatten()
                    .map(|r| prior_of(&r, &fields))
                    .unwrap_or_default(),
            }))
        }
        Op::Upsert { key_field, .. } => {
            let fields = field_names(run);
            let keys: Vec<String> = run
                .iter()
                .filter_map(|q| q.op.fields()?.get(key_field)?.as_str().map(str::to_string))
                .collect();
            let existing = prior_by_key(session, object, key_field, &keys, &fields)?;
            let results = session.upsert(object, key_field, records(object, run, false))?;
            check(&results, run)?;
            Ok(done(&|i| {
                let id = results[i].id.clone().unwrap_or_default();
                match (
                    results[i].created,
                    existing
                        .iter()
                        .find(|r| r.get("Id").and_then(Json::as_str) == Some(id.as_str())),
                ) {
                    (Some(false), Some(prior)) => Done::Updated {
                        target: target.clone(),
                        id,
                        prior: prior_of(prior, &fields),
                    },
                    _ => Done::Created {
                        target: target.clone(),
                        id,
                    },
                }
            }))
        }
        Op::Delete { .. } => {
            let ids = ids(run);
            let results = session.delete(&ids)?;
            check(&results, run)?;
            Ok(done(&|i| Done::Deleted {
                target: target.clone(),
                id: ids[i].clone(),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(object: &str, op: Op, row: usize) -> Queued {
        Queued {
            target: Target {
                server: 1,
                user: 1,
                object: object.into(),
            },
            op,
            row,
            statement: "INSERT into contact".into(),
            bulk_from: None,
        }
    }

    fn create(row: usize) -> Queued {
        q(
            "Contact",
            Op::Create {
                record: json!({"LastName": format!("L{row}")})
                    .as_object()
                    .unwrap()
                    .clone(),
            },
            row,
        )
    }

    #[test]
    fn runs_split_by_target_kind_and_size() {
        let mut queued: Vec<Queued> = (1..=450).map(create).collect();
        queued.push(q("Contact", Op::Delete { id: "003".into() }, 1));
        queued.push(q("Lead", Op::Delete { id: "00Q".into() }, 1));
        let sizes: Vec<usize> = runs(queued).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![200, 200, 50, 1, 1]);
    }

    #[test]
    fn the_rejected_row_is_the_culprit_not_the_rolled_back_ones() {
        let run = vec![create(1), create(2)];
        let results: Vec<RecordResult> = serde_json::from_value(json!([
            {"success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "rolled back"}]},
            {"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]}
        ]))
        .unwrap();
        match check(&results, &run) {
            Err(ChunkError::Rejected(r)) => {
                assert_eq!(
                    (r.row, r.error.status_code.as_str(), r.which.as_str()),
                    (2, "REQUIRED_FIELD_MISSING", "LastName 'L2'")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
