//! Loading rows the way COPY does: PostgreSQL's own `CopyFrom`, fed COPY
//! text from memory, so new rows go in with its multi-insert path, index
//! maintenance and triggers, without SQL to parse per row.

use crate::error::Result;
use crate::pg::{list_append, pg_string};
use pgrx::pg_guard;
use pgrx::pg_sys::{self, Oid};
use std::cell::RefCell;
use std::ptr::null_mut;

thread_local! {
    /// The COPY text being loaded and how much of it `CopyFrom` has taken.
    static INPUT: RefCell<(Vec<u8>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

#[pg_guard]
unsafe extern "C-unwind" fn next_input(
    out: *mut std::ffi::c_void,
    _min: std::ffi::c_int,
    max: std::ffi::c_int,
) -> std::ffi::c_int {
    INPUT.with(|input| {
        let (data, taken) = &mut *input.borrow_mut();
        let n = (max as usize).min(data.len() - *taken);
        std::ptr::copy_nonoverlapping(data.as_ptr().add(*taken), out as *mut u8, n);
        *taken += n;
        n as std::ffi::c_int
    })
}

/// A value in COPY's text format: `\N` for NULL, backslash escapes otherwise.
pub fn push_field(line: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        line.extend_from_slice(b"\\N");
        return;
    };
    for b in value.bytes() {
        match b {
            b'\\' => line.extend_from_slice(b"\\\\"),
            b'\t' => line.extend_from_slice(b"\\t"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            other => line.push(other),
        }
    }
}

/// Loads COPY text (tab-separated `columns`, one row a line) into table
/// `relid`. Returns the rows loaded.
pub fn copy_in(relid: Oid, columns: &[String], data: Vec<u8>) -> Result<u64> {
    INPUT.with(|input| *input.borrow_mut() = (data, 0));
    let loaded = unsafe {
        let lock = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(relid, lock);
        let pstate = pg_sys::make_parsestate(null_mut());
        // As COPY FROM does: the table in the range table CopyFrom runs
        // against, and INSERT on its columns checked for the current user.
        let item =
            pg_sys::addRangeTableEntryForRelation(pstate, rel, lock, null_mut(), false, false);
        let rte = (*item).p_rte;
        (*rte).requiredPerms = pg_sys::ACL_INSERT as pg_sys::AclMode;
        let mut names = null_mut();
        for c in columns {
            let name = pg_string(c);
            let attno = pg_sys::attnameAttNum(rel, name, false);
            (*rte).insertedCols = pg_sys::bms_add_member(
                (*rte).insertedCols,
                attno - pg_sys::FirstLowInvalidHeapAttributeNumber,
            );
            names = list_append(names, pg_sys::makeString(name));
        }
        pg_sys::ExecCheckRTPerms((*pstate).p_rtable, true);
        let cstate = pg_sys::BeginCopyFrom(
            pstate,
            rel,
            null_mut(),
            std::ptr::null(),
            false,
            Some(next_input),
            names,
            null_mut(),
        );
        let loaded = pg_sys::CopyFrom(cstate);
        pg_sys::EndCopyFrom(cstate);
        pg_sys::free_parsestate(pstate);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        loaded
    };
    INPUT.with(|input| *input.borrow_mut() = (Vec::new(), 0));
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_escaped_for_copy_text() {
        let mut line = Vec::new();
        push_field(&mut line, Some("a\tb\\c\nd\re"));
        line.push(b'\t');
        push_field(&mut line, None);
        assert_eq!(line, b"a\\tb\\\\c\\nd\\re\t\\N");
    }
}
