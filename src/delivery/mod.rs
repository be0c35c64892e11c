//! Queued writes: stored in the outbox by the transaction that makes them
//! (`salesforce.write_mode = 'queued'`, `salesforce.enqueue`), so they
//! commit or roll back with it, and delivered after commit by the sync
//! worker (`deliver`), each mapping's writes in the order they were
//! queued, as its owner's user mapping. What needs no database, the
//! batching and what each answer means, is `salesforce_core::write::delivery`.

mod api;
pub mod capture;
pub mod deliver;
mod outbox;
mod sending;
pub mod wake;

use crate::catalog;
use crate::error::Result;
use pgrx::pg_sys::Oid;
use salesforce_core::write::journal::Op;
use salesforce_core::write::sent_log::Remedy;

/// Queues `op` for `owner` on `server`: stored now, sent after commit.
pub fn queue(owner: Oid, server: &str, object: &str, op: &Op, id_of: Option<i64>) -> Result<i64> {
    let id = outbox::add(owner, server, object, op, id_of)?;
    wake::at_commit();
    Ok(id)
}

/// Records in the outbox a platform event this transaction published at
/// its COMMIT, so that `queued_writes` lists every publish with its result.
pub fn record_published(
    id: i64,
    owner: Oid,
    server: &str,
    topic: &str,
    payload: &serde_json::Value,
    replay_id: &str,
) -> Result<()> {
    outbox::add_published(id, owner, server, topic, payload, replay_id)
}

/// An outbox id, taken before what it will record happens.
pub fn reserve_id() -> Result<i64> {
    outbox::reserve_id()
}

/// Puts in the outbox what a transaction that did not commit left in
/// Salesforce (`origin` names it): undos to deliver, and what only a
/// person can settle, each for the role whose mapping sent it. Returns how
/// many; none if `origin` was handled already.
pub fn queue_left_behind(remedies: &[Remedy], origin: &str) -> Result<usize> {
    if outbox::has_origin(origin)? {
        return Ok(0);
    }
    // The log of what was sent goes once this commits: this must be on disk.
    outbox::durably()?;
    for remedy in remedies {
        let (target, op, unresolved) = match remedy {
            Remedy::Undo(target, op) => (target, op, None),
            Remedy::Unresolved { target, op, why } => (target, op, Some(why.as_str())),
        };
        let server = catalog::server_name_if_exists(Oid::from(target.server))
            .unwrap_or_else(|| format!("(dropped server {})", target.server));
        outbox::add_left_behind(
            Oid::from(target.user),
            &server,
            &target.object,
            op,
            origin,
            unresolved,
        )?;
    }
    if !remedies.is_empty() {
        wake::at_commit();
    }
    Ok(remedies.len())
}

pgrx::extension_sql_file!(
    "schema.sql",
    name = "delivery_schema",
    requires = ["sync_schema"]
);
