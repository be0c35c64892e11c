//! The bottom layer of pg_salesforce: everything that needs no database.
//! The Salesforce client (login, HTTP, sessions, every API call, Change
//! Data Capture over the Pub/Sub API), SOQL printing, the type map, naming,
//! typed options, the pushdown rules, the write journal, and the sync's
//! planning and pacing. It does not depend on pgrx, so the compiler keeps
//! the layers apart and `cargo test -p salesforce_core` tests it without
//! PostgreSQL.

pub mod aggregates;
pub mod cdc;
pub mod client;
pub mod events;
pub mod naming;
pub mod options;
pub mod pushdown;
pub mod soql;
pub mod sync;
pub mod typemap;
pub mod values;
pub mod write;

pub use client::SalesforceError;
