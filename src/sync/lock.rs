//! The lock that lets one run of a sync go at a time: the worker's, a
//! `sync_now`'s, and what `sync_disable` and `resync` wait for. It is a
//! lock on the pseudo-object (salesforce.syncs, sync id) in this database,
//! which no SQL a user can run takes, unlike an advisory lock any role
//! could hold to stall other roles' syncs. pg_locks shows it as an
//! `object` lock with `classid` the syncs table and `objid` the sync.
//!
//! It belongs to the user lock method, as advisory locks do: PostgreSQL
//! drops the default method's session locks when a transaction aborts,
//! and the worker aborts a failed step's transaction with other runs'
//! locks held.

use pgrx::pg_sys;

fn tag(sync_id: i64) -> pg_sys::LOCKTAG {
    let syncs = unsafe {
        let schema = pg_sys::get_namespace_oid(c"salesforce".as_ptr(), false);
        pg_sys::get_relname_relid(c"syncs".as_ptr(), schema)
    };
    pg_sys::LOCKTAG {
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: syncs.to_u32(),
        locktag_field3: sync_id as u32,
        locktag_field4: 0,
        locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

const MODE: pg_sys::LOCKMODE = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;

/// Waits for the sync's lock, held until `unlock`, across commits.
pub fn lock_for_session(sync_id: i64) {
    unsafe { pg_sys::LockAcquire(&tag(sync_id), MODE, true, false) };
}

/// Takes the sync's lock, held until `unlock`, if no one holds it.
pub fn try_lock_for_session(sync_id: i64) -> bool {
    let got = unsafe { pg_sys::LockAcquire(&tag(sync_id), MODE, true, true) };
    got != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
}

pub fn unlock(sync_id: i64) {
    unsafe { pg_sys::LockRelease(&tag(sync_id), MODE, true) };
}

/// Waits for the sync's lock until this transaction ends.
pub fn lock_for_transaction(sync_id: i64) {
    unsafe { pg_sys::LockAcquire(&tag(sync_id), MODE, false, false) };
}
