//! Pub/Sub API calls in the request log, never counted against the daily
//! API limit.

use crate::request_log::{LoggedRequest, RpcCall};
use crate::sim::Sim;

pub fn log(sim: &Sim, call: RpcCall) {
    sim.log.lock().push(LoggedRequest {
        seq: 0,
        at: crate::value::format_datetime(&sim.clock.now()),
        method: "POST".into(),
        path: format!("/eventbus.v1.PubSub/{}", call.rpc),
        query: None,
        soql: None,
        status: 200,
        counted: false,
        records: None,
        body: None,
        via: None,
        parent_seq: None,
        reference_id: None,
        rpc: Some(call),
    });
}
