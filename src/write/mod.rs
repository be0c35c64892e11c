//! Writes to Salesforce tied to the PostgreSQL transaction: sent or queued
//! per `salesforce.write_mode`, journaled, and taken back on abort. The
//! journal and the batching themselves are `salesforce_core::write`.

pub mod bulk;
pub mod left_behind;
pub mod sent_file;
pub mod transaction;
mod upload_behind;
