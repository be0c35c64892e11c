//! The sync's planning: what a sync copies into which columns, the SOQL it
//! sends, and how it paces its requests.

pub mod breaker;
pub mod definition;
pub mod pacing;
pub mod poll_batch;
pub mod queries;
