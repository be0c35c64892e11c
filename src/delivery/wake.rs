//! Waking the sync worker when a transaction that queued writes commits,
//! so delivery does not wait for the worker's next look. Each worker puts
//! its process id in shared memory under its database
//! (`shared_cache::worker_slot`); a committing backend marks the slot and
//! sets that process's latch. Without shared_preload_libraries there is
//! neither the memory nor a worker.

use crate::shared_cache::worker_slot;
use pgrx::pg_sys;
use std::cell::Cell;
use std::sync::atomic::Ordering;

fn database() -> u32 {
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

/// For the worker: whether writes were queued since it last asked.
pub fn writes_queued() -> bool {
    worker_slot(database(), false).is_some_and(|s| s.queued.swap(false, Ordering::AcqRel))
}

/// For the worker: whether writes were queued since it last asked,
/// leaving the mark in place.
pub fn writes_waiting() -> bool {
    worker_slot(database(), false).is_some_and(|s| s.queued.load(Ordering::Acquire))
}

/// Whether a sync worker runs for this database now.
pub fn worker_running() -> bool {
    let Some(slot) = worker_slot(database(), false) else {
        return false;
    };
    let pid = slot.pid.load(Ordering::Acquire);
    pid != 0 && !unsafe { pg_sys::BackendPidGetProc(pid) }.is_null()
}

/// The worker of this database says where it is.
pub fn register_worker() {
    if let Some(slot) = worker_slot(database(), true) {
        slot.pid
            .store(unsafe { pg_sys::MyProcPid }, Ordering::Release);
    }
}

/// Marks that writes were queued and sets the latch of this database's
/// worker, if it runs.
fn wake_worker() {
    let Some(slot) = worker_slot(database(), false) else {
        return;
    };
    if slot.queued.swap(true, Ordering::AcqRel) {
        // Woken already, and not yet looked.
        return;
    }
    let pid = slot.pid.load(Ordering::Acquire);
    if pid == 0 {
        return;
    }
    unsafe {
        // Only a live PostgreSQL process: a stale pid finds none, or
        // another backend, whose latch a spurious wake-up does not harm.
        let proc_ = pg_sys::BackendPidGetProc(pid);
        if !proc_.is_null() {
            pg_sys::SetLatch(&raw mut (*proc_).procLatch);
        }
    }
}

thread_local! {
    static WAKE_AT_COMMIT: Cell<bool> = const { Cell::new(false) };
    static HOOKED: Cell<bool> = const { Cell::new(false) };
}

/// The worker is woken when this transaction commits: once its cache
/// invalidations are out (a GRANT or REVOKE in the same transaction
/// reaches the worker before the writes do), not at the commit callback,
/// which runs before them.
pub fn at_commit() {
    WAKE_AT_COMMIT.set(true);
    if !HOOKED.replace(true) {
        unsafe {
            pg_sys::RegisterResourceReleaseCallback(Some(after_release), std::ptr::null_mut())
        };
    }
}

/// The top transaction's last release phase, after its invalidations were
/// sent and its locks let go.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn after_release(
    phase: pg_sys::ResourceReleasePhase::Type,
    is_commit: bool,
    is_top_level: bool,
    _arg: *mut std::ffi::c_void,
) {
    if !is_top_level || phase != pg_sys::ResourceReleasePhase::RESOURCE_RELEASE_AFTER_LOCKS {
        return;
    }
    if WAKE_AT_COMMIT.replace(false) && is_commit {
        wake_worker();
    }
}
