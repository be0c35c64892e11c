//! Queued writes: stored in the outbox by the transaction that makes them
//! (`salesforce.write_mode = 'queued'`, `salesforce.enqueue`), so they
//! commit or roll back with it, and delivered after commit by the sync
//! worker (`deliver`), each mapping's writes in the order they were
//! queued, as its owner's user mapping. What needs no database, the
//! batching and what each answer means, is `salesforce_core::write::delivery`.

mod api;
pub mod deliver;
mod outbox;
pub mod wake;

use crate::error::Result;
use pgrx::pg_sys::Oid;
use salesforce_core::write::journal::Op;

/// Queues `op` for `owner` on `server`: stored now, sent after commit.
pub fn queue(owner: Oid, server: &str, object: &str, op: &Op) -> Result<i64> {
    let id = outbox::add(owner, server, object, op)?;
    wake::at_commit();
    Ok(id)
}

pgrx::extension_sql_file!(
    "schema.sql",
    name = "delivery_schema",
    requires = ["sync_schema"]
);
