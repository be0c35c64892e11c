//! Platform events over Salesforce's Pub/Sub API, for a synchronous caller:
//! [`Publisher`] publishes JSON events on `/event/Name__e` (the topic's
//! schema fetched and cached, events encoded to Avro, sent 200 at a time
//! within 3 MB a request) and answers one result per event in input order;
//! [`read`] subscribes to an event topic for a while and decodes what
//! comes to JSON. Both take the connection inputs the CDC stream uses
//! ([`crate::cdc::StreamConfig`]; its `topic`, `replay` and `batch` only
//! matter to [`read`]). [`look_back`] finds on the bus events whose
//! publish never answered.

pub mod encode;
mod look_back;
mod publish;
#[cfg(test)]
mod tests;

pub use look_back::{look_back, MAX_EVENTS_READ};
pub use publish::{
    read, replay_hex, replay_of_hex, EventResult, PlatformEvent, PublishError, Publisher,
};
