//! Writes to Salesforce tied to the PostgreSQL transaction: what was sent or
//! queued, and how to take it back.

pub mod chunk;
pub mod convert;
pub mod journal;
pub mod transaction;
