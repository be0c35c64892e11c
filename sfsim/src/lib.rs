//! sfsim: a local Salesforce for tests, benchmarks and demos. It speaks
//! OAuth 2.0, the REST data API (query, describe, sObjects, sObject
//! Collections, Composite) with a real SOQL engine and Bulk API 2.0 query
//! jobs, counts API usage, publishes Change Data Capture events over the
//! Pub/Sub API (gRPC), and has a control API under `/__sim/`.

pub mod access;
pub mod auth;
pub mod bulk;
pub mod clock;
pub mod convert;
pub mod cursors;
pub mod event_defs;
pub mod faults;
pub mod http;
pub mod ids;
pub mod journal;
pub mod lookup;
pub mod org;
pub mod orgs;
pub mod pubsub;
pub mod render;
pub mod replication;
pub mod request_log;
pub mod schema;
pub mod seed;
pub mod server;
pub mod sim;
pub mod soql;
pub mod tls;
pub mod usage;
pub mod value;
