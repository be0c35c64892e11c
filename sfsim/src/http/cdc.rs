//! The control API's Change Data Capture part: which objects publish change
//! events (what Setup's selection does in Salesforce) and the CDC faults.

use super::errors::{json, ApiError};
use crate::sim::Sim;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value as Json;

fn status(sim: &Sim) -> Json {
    let state = sim.pubsub.state();
    serde_json::json!({
        "objects": state.selected,
        "events": state.log.retained(),
        "streams": sim.pubsub.streams(),
    })
}

pub fn show(sim: &Sim) -> Response {
    json(StatusCode::OK, &status(sim))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Selection {
    objects: Vec<String>,
}

/// The object's name as the schema spells it; unknown objects are 404.
fn object_name(sim: &Sim, name: &str) -> Result<String, ApiError> {
    let org = sim.org.read();
    let object = org.object(name).ok_or_else(ApiError::not_found)?;
    Ok(org.def(object).name.clone())
}

/// Selects exactly these objects for change events, replacing the selection.
pub fn select(sim: &Sim, body: &Bytes) -> Result<Response, ApiError> {
    let selection: Selection = serde_json::from_slice(body).map_err(ApiError::bad_json)?;
    let names = selection
        .objects
        .iter()
        .map(|o| object_name(sim, o))
        .collect::<Result<_, _>>()?;
    sim.pubsub.state().selected = names;
    Ok(show(sim))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Gap {
    object: String,
    count: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    count: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delay {
    ms: u64,
}

/// Arms a Pub/Sub fault; a count (or delay) of 0 disarms it.
pub fn arm(sim: &Sim, fault: &str, body: &Bytes) -> Result<(), ApiError> {
    let bad_json = ApiError::bad_json;
    match fault {
        "cdc_gap" => {
            let gap: Gap = serde_json::from_slice(body).map_err(bad_json)?;
            let object = object_name(sim, &gap.object)?;
            let mut state = sim.pubsub.state();
            let gaps = &mut state.faults.gaps;
            match gap.count {
                0 => gaps.remove(&object),
                n => gaps.insert(object, n),
            };
        }
        "cdc_overflow" => {
            let count: Count = serde_json::from_slice(body).map_err(bad_json)?;
            sim.pubsub.state().faults.overflow = count.count;
        }
        "cdc_delay" => {
            let delay: Delay = serde_json::from_slice(body).map_err(bad_json)?;
            sim.pubsub.state().faults.delay_ms = delay.ms;
        }
        "cdc_drop_streams" => sim.pubsub.drop_streams(),
        "publish_unanswered" => {
            let count: Count = serde_json::from_slice(body).map_err(bad_json)?;
            sim.pubsub.state().faults.unanswered_publishes = count.count;
        }
        _ => return Err(ApiError::not_found()),
    }
    Ok(())
}
