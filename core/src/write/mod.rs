//! Writes as Salesforce takes them: the transaction's journal and how to
//! undo it, and runs of up to 200 records sent in one Collections call.

pub mod bulk;
pub mod bulk_delivery;
pub mod chunk;
pub mod conflict;
pub mod delivery;
pub mod journal;
pub mod sent_log;
