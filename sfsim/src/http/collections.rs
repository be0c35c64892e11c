//! sObject Collections: `/composite/sobjects`. One call, up to 200 records,
//! counts as one API request; results come back one per record, in order.

use super::data::{planted_value, ApiRequest};
use super::errors::{json, ApiError};
use crate::org::{Org, RecordError, Undo};
use crate::render::RecordView;
use crate::soql::plan::Node;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value as Json};

pub const MAX_RECORDS: usize = 200;

fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "EXCEEDED_ID_LIMIT",
        format!(
            "record limit reached. cannot submit more than {MAX_RECORDS} records into this call"
        ),
    )
}

struct Outcome {
    id: Option<String>,
    created: Option<bool>,
    error: Option<RecordError>,
}

impl Outcome {
    fn done(id: String, created: Option<bool>) -> Outcome {
        Outcome {
            id: Some(id),
            created,
            error: None,
        }
    }

    /// `id` is the record an update or delete named; a failed create has none.
    fn failed(id: Option<String>, error: RecordError) -> Outcome {
        Outcome {
            id,
            created: None,
            error: Some(error),
        }
    }
}

fn rolled_back() -> RecordError {
    RecordError::new(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
        vec![],
    )
}

fn results(
    outcomes: Vec<Outcome>,
    all_or_none: bool,
    undo: &mut Undo,
    org: &mut Org,
    creating: bool,
) -> Vec<Json> {
    let failed = outcomes.iter().any(|o| o.error.is_some());
    let roll_back = all_or_none && failed;
    if roll_back {
        org.rollback(std::mem::take(undo));
    }
    outcomes
        .into_iter()
        .map(|o| {
            let error = o.error.or_else(|| roll_back.then(rolled_back));
            let mut r = Map::new();
            // A record that was never created has no id to report.
            let id = if creating && error.is_some() { None } else { o.id };
            if let Some(id) = id {
                r.insert("id".into(), Json::String(id));
            }
            r.insert("success".into(), Json::Bool(error.is_none()));
            let errors: Vec<Json> = error
                .into_iter()
                .map(|e| serde_json::json!({"statusCode": e.code, "message": e.message, "fields": e.fields}))
                .collect();
            r.insert("errors".into(), Json::Array(errors));
            if let (Some(created), true) = (o.created, r["success"] == Json::Bool(true)) {
                r.insert("created".into(), Json::Bool(created));
            }
            Json::Object(r)
        })
        .collect()
}

fn records_of(body: &Json) -> Result<(bool, Vec<Map<String, Json>>), ApiError> {
    let all_or_none = body
        .get("allOrNone")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let records = body
        .get("records")
        .and_then(Json::as_array)
        .ok_or_else(|| ApiError::bad_json("records is required"))?;
    if records.len() > MAX_RECORDS {
        return Err(too_many());
    }
    let maps = records
        .iter()
        .map(|r| {
            r.as_object()
                .cloned()
                .ok_or_else(|| ApiError::bad_json("each record must be a JSON object"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((all_or_none, maps))
}

fn record_type(record: &Map<String, Json>) -> Option<&str> {
    record.get("attributes")?.get("type")?.as_str()
}

fn no_type() -> RecordError {
    RecordError::new("INVALID_TYPE", "No SObject Type defined in JSON", vec![])
}

pub fn route(req: &mut ApiRequest, rest: &[&str]) -> Result<Response, ApiError> {
    let method = req.method.as_str().to_string();
    match (rest, method.as_str()) {
        ([], "POST") => create(req),
        ([], "PATCH") => update(req),
        ([], "DELETE") => delete(req),
        ([], other) => Err(ApiError::method_not_allowed(other, "POST, PATCH, DELETE")),
        ([object], "GET" | "POST") => retrieve(req, object),
        ([_], other) => Err(ApiError::method_not_allowed(other, "GET, POST")),
        ([object, field], "PATCH") => upsert(req, object, field),
        ([_, _], other) => Err(ApiError::method_not_allowed(other, "PATCH")),
        _ => Err(ApiError::not_found()),
    }
}

fn create(req: &mut ApiRequest) -> Result<Response, ApiError> {
    let (all_or_none, records) = records_of(&req.json_body()?)?;
    req.info.records = Some(records.len());
    let author = req.sim.author(req.user);
    let (sim, user) = (req.sim, req.user);
    let mut org = req.sim.org.write();
    let outcomes = records
        .iter()
        .map(|record| {
            let kind = record_type(record).map(|t| (org.object(t), org.event(t).cloned()));
            let result = match kind {
                Some((Some(object), _)) => org.create(object, record, &author, &mut req.undo),
                // Platform events are published at once, whatever the others do.
                Some((None, Some(event))) => {
                    super::events::publish_record(sim, &event, record, user).map(|p| p.id)
                }
                _ => Err(no_type()),
            };
            match result {
                Ok(id) => Outcome::done(id, None),
                Err(e) => Outcome::failed(None, e),
            }
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &results(outcomes, all_or_none, &mut req.undo, &mut org, true),
    ))
}

fn update(req: &mut ApiRequest) -> Result<Response, ApiError> {
    let (all_or_none, records) = records_of(&req.json_body()?)?;
    req.info.records = Some(records.len());
    let author = req.sim.author(req.user);
    let mut org = req.sim.org.write();
    let outcomes = records
        .into_iter()
        .map(|mut record| {
            let id = record
                .remove("id")
                .or_else(|| record.remove("Id"))
                .and_then(|v| v.as_str().map(str::to_string));
            let Some(id) = id else {
                return Outcome::failed(
                    None,
                    RecordError::new(
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                        vec![],
                    ),
                );
            };
            let result = match record_type(&record).and_then(|t| org.object(t)) {
                Some(object) => org.update(object, &id, &record, &author, &mut req.undo),
                None => Err(no_type()),
            };
            match result {
                Ok(id) => Outcome::done(id, None),
                Err(e) => Outcome::failed(Some(id), e),
            }
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &results(outcomes, all_or_none, &mut req.undo, &mut org, false),
    ))
}

fn delete(req: &mut ApiRequest) -> Result<Response, ApiError> {
    let ids: Vec<String> = req
        .param("ids")
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.len() > MAX_RECORDS {
        return Err(too_many());
    }
    let all_or_none = req
        .param("allOrNone")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    req.info.records = Some(ids.len());
    let author = req.sim.author(req.user);
    let mut org = req.sim.org.write();
    let outcomes = ids
        .into_iter()
        .map(|id| {
            let result = match org.object_of_id(&id) {
                Some(object) => org.delete(object, &id, &author, &mut req.undo),
                None => Err(RecordError::new(
                    "MALFORMED_ID",
                    format!("malformed id {id}"),
                    vec![],
                )),
            };
            match result {
                Ok(id) => Outcome::done(id, None),
                Err(e) => Outcome::failed(Some(id), e),
            }
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &results(outcomes, all_or_none, &mut req.undo, &mut org, false),
    ))
}

fn upsert(req: &mut ApiRequest, object_name: &str, field: &str) -> Result<Response, ApiError> {
    let (all_or_none, records) = records_of(&req.json_body()?)?;
    req.info.records = Some(records.len());
    let author = req.sim.author(req.user);
    let mut org = req.sim.org.write();
    let object = org.object(object_name).ok_or_else(ApiError::not_found)?;
    let def = org.def(object).clone();
    let key = def
        .field_index(field)
        .filter(|i| def.fields[*i].external_id)
        .filter(|i| org.field_access(req.user).can_see(object, *i))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("Provided external ID field does not exist or is not accessible: {field}"),
            )
        })?;
    let key_name = def.fields[key].name.clone();
    let outcomes = records
        .iter()
        .map(|record| {
            let value = record
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&key_name))
                .map(|(_, v)| v.clone());
            let Some(Json::String(value)) = value else {
                return Outcome::failed(
                    None,
                    RecordError::new(
                        "MISSING_ARGUMENT",
                        format!("{key_name} not specified"),
                        vec![],
                    ),
                );
            };
            let matches = org.objects[object].find(key, &crate::value::Value::text(value.clone()));
            let result = match matches.as_slice() {
                [] => org
                    .create(object, record, &author, &mut req.undo)
                    .map(|id| (id, true)),
                [one] => org
                    .update(object, &one.clone(), record, &author, &mut req.undo)
                    .map(|id| (id, false)),
                _ => Err(RecordError::new(
                    "DUPLICATE_EXTERNAL_ID",
                    format!(
                        "{key_name}: more than one record found for external id field: {value}"
                    ),
                    vec![key_name.clone()],
                )),
            };
            match result {
                Ok((id, created)) => Outcome::done(id, Some(created)),
                Err(e) => Outcome::failed(None, e),
            }
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &results(outcomes, all_or_none, &mut req.undo, &mut org, false),
    ))
}

fn retrieve(req: &mut ApiRequest, object_name: &str) -> Result<Response, ApiError> {
    let (ids, fields): (Vec<String>, Vec<String>) = if req.method.as_str() == "POST" {
        let body = req.json_body()?;
        let list = |k: &str| -> Vec<String> {
            body.get(k)
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        (list("ids"), list("fields"))
    } else {
        let split = |k: &str| -> Vec<String> {
            req.param(k)
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        (split("ids"), split("fields"))
    };
    if ids.len() > MAX_RECORDS {
        return Err(too_many());
    }
    if fields.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "fields parameter is required",
        ));
    }
    req.info.records = Some(ids.len());
    let org = req.sim.org.read();
    let object = org.object(object_name).ok_or_else(ApiError::not_found)?;
    let def = org.def(object).clone();
    let access = org.field_access(req.user);
    let nodes: Vec<Node> = fields
        .iter()
        .map(|f| {
            def.field_index(f)
                .filter(|i| access.can_see(object, *i))
                .map(|index| Node::Field {
                    name: def.fields[index].name.clone(),
                    index,
                })
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "INVALID_FIELD",
                        format!("No such column '{f}' on entity '{}'", def.name),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let found: Vec<_> = ids
        .iter()
        .map(|id| org.record(object, id).filter(|r| !r.is_deleted(&def)))
        .collect();
    let planted = planted_value(req.sim, &def, &nodes, found.iter().any(Option::is_some));
    let records: Vec<Json> = found
        .into_iter()
        .map(|rec| match rec {
            Some(rec) => serde_json::to_value(RecordView {
                org: &org,
                def: &def,
                rec,
                nodes: &nodes,
                version: req.version,
                by_name: false,
                planted: planted.as_ref().map(|(field, raw)| (*field, raw)),
            })
            .unwrap_or(Json::Null),
            None => Json::Null,
        })
        .collect();
    Ok(json(StatusCode::OK, &records))
}
