//! Small helpers over PostgreSQL's C structures, and running SQL on the
//! extension's behalf with errors caught (as another role: `access`).

use crate::error::{Error, Result};
use pgrx::pg_sys;
use pgrx::PgTryBuilder;
use std::ffi::{c_void, CStr, CString};
use std::panic::AssertUnwindSafe;

/// The pointers in a PostgreSQL List.
///
/// # Safety
/// `list` is null or a valid pointer List.
pub unsafe fn list_items<T>(list: *mut pg_sys::List) -> Vec<*mut T> {
    if list.is_null() {
        return Vec::new();
    }
    (0..(*list).length as usize)
        .map(|i| (*(*list).elements.add(i)).ptr_value as *mut T)
        .collect()
}

/// Appends to a PostgreSQL List (null is the empty list).
///
/// # Safety
/// `list` is null or a valid pointer List; allocates in the current memory context.
pub unsafe fn list_append<T>(list: *mut pg_sys::List, item: *mut T) -> *mut pg_sys::List {
    pg_sys::lappend(list, item as *mut c_void)
}

/// # Safety
/// `s` is null or a NUL-terminated string.
pub unsafe fn text_of(s: *const std::ffi::c_char) -> String {
    if s.is_null() {
        String::new()
    } else {
        CStr::from_ptr(s).to_string_lossy().into_owned()
    }
}

/// A palloc'd copy of a Rust string, for PostgreSQL to keep.
pub fn pg_string(s: &str) -> *mut std::ffi::c_char {
    let c = CString::new(s.replace('\0', "")).expect("NULs removed");
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
}

/// Options given as a List of DefElem, in order.
///
/// # Safety
/// `options` is null or a valid List of DefElem.
pub unsafe fn options_of(options: *mut pg_sys::List) -> Vec<(String, String)> {
    list_items::<pg_sys::DefElem>(options)
        .into_iter()
        .map(|d| (text_of((*d).defname), text_of(pg_sys::defGetString(d))))
        .collect()
}

pub fn relation_name(relid: pg_sys::Oid) -> String {
    unsafe { text_of(pg_sys::get_rel_name(relid)) }
}

/// Runs `f`, turning a PostgreSQL error raised inside it into an `Err` that
/// keeps its SQLSTATE, so it can be raised again with what it means here.
/// The caller must abort the (sub)transaction the error happened in.
pub fn catching<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
        .catch_others(|e| Err(Error::caught(e)))
        .execute()
}

/// Runs `f` in a subtransaction: committed into the transaction if it
/// succeeds, rolled back if it fails, with the error returned, as a
/// PL/pgSQL block with an EXCEPTION clause does.
pub fn in_subtransaction<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    unsafe {
        let (context, owner) = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let outcome = catching(f);
        if outcome.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        outcome
    }
}

thread_local! {
    /// Plans of the statements `run_kept` and `get_one_kept` ran, by text.
    static KEPT: std::cell::RefCell<std::collections::HashMap<&'static str, pgrx::spi::OwnedPreparedStatement>> =
        Default::default();
}

/// Runs `sql` with a plan made once per process and kept (PostgreSQL
/// makes it again when what it depends on changes): for the statements the
/// sync worker runs for every run of every sync; `read` takes what it returned.
fn kept<R>(
    sql: &'static str,
    limit: Option<i64>,
    args: &[pgrx::datum::DatumWithOid],
    read: impl FnOnce(pgrx::spi::SpiTupleTable) -> pgrx::spi::SpiResult<R>,
) -> pgrx::spi::SpiResult<R> {
    pgrx::Spi::connect_mut(|client| {
        let plan = KEPT.with(|k| k.borrow_mut().remove(sql));
        let plan = match plan {
            Some(plan) => plan,
            None => {
                let types: Vec<pgrx::PgOid> =
                    args.iter().map(|a| pgrx::PgOid::from(a.oid())).collect();
                client.prepare_mut(sql, &types)?.keep()
            }
        };
        let out = client
            .update(&plan, limit.map(|l| l as _), args)
            .and_then(read);
        KEPT.with(|k| k.borrow_mut().insert(sql, plan));
        out
    })
}

/// `Spi::run_with_args`, with the plan kept (`kept`).
pub fn run_kept(
    sql: &'static str,
    args: &[pgrx::datum::DatumWithOid],
) -> std::result::Result<(), pgrx::spi::SpiError> {
    kept(sql, None, args, |_| Ok(()))
}

/// `Spi::get_one_with_args`, with the plan kept (`kept`).
pub fn get_one_kept<T: pgrx::FromDatum + pgrx::IntoDatum>(
    sql: &'static str,
    args: &[pgrx::datum::DatumWithOid],
) -> std::result::Result<Option<T>, pgrx::spi::SpiError> {
    kept(sql, Some(1), args, |t| t.first().get_one())
}

/// Runs `f` in a transaction of its own; an error of any kind aborts that
/// transaction and comes back, typed: how the worker keeps one sync or
/// delivery from stopping others.
pub fn in_transaction<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let outcome = PgTryBuilder::new(AssertUnwindSafe(f))
        .catch_others(|e| Err(Error::caught(e)))
        .execute();
    unsafe {
        match outcome {
            Ok(v) => {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
                Ok(v)
            }
            Err(e) => {
                pg_sys::AbortCurrentTransaction();
                pg_sys::FlushErrorState();
                Err(e)
            }
        }
    }
}
