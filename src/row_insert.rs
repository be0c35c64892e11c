//! Adding a row to one of the extension's own tables without SQL: no
//! parse, plan or executor start per row, the way PostgreSQL's logical
//! replication applies one (`ExecSimpleRelationInsert`). For hot paths
//! where an application's transaction adds one row (a queued write): the
//! table's indexes are kept and its NOT NULL constraints checked, and no
//! policy, privilege or default applies, so it serves only tables no user
//! writes, and the caller gives every value.

use crate::error::{Error, Result};
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::{IntoDatum, PgSqlErrorCode};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;

extern "C-unwind" {
    // commands/sequence.h, not in pgrx's bindings: nextval without the
    // caller's privilege on the sequence (the extension owns it).
    fn nextval_internal(relid: Oid, check_permissions: bool) -> i64;
}

/// A column's value: its datum (None is NULL) and its type, checked
/// against the table's.
pub struct Value {
    column: &'static str,
    datum: Option<Datum>,
    type_oid: Oid,
}

pub fn value<T: IntoDatum>(column: &'static str, v: T) -> Value {
    Value {
        column,
        datum: v.into_datum(),
        type_oid: T::type_oid(),
    }
}

/// A value already a datum of type `type_oid`.
pub fn datum_value(column: &'static str, datum: Datum, type_oid: Oid) -> Value {
    Value {
        column,
        datum: Some(datum),
        type_oid,
    }
}

fn internal(message: String) -> Error {
    Error::sql(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, message)
}

/// The relation `schema.table`.
fn relation_oid(schema: &str, table: &str) -> Result<Oid> {
    let (schema_c, table_c) = (CString::new(schema), CString::new(table));
    let (Ok(schema_c), Ok(table_c)) = (schema_c, table_c) else {
        return Err(internal(format!("{schema}.{table} is not a table name")));
    };
    let oid = unsafe {
        let namespace = pg_sys::get_namespace_oid(schema_c.as_ptr(), true);
        if namespace == Oid::INVALID {
            Oid::INVALID
        } else {
            pg_sys::get_relname_relid(table_c.as_ptr(), namespace)
        }
    };
    if oid == Oid::INVALID {
        return Err(internal(format!(
            "the table {schema}.{table} does not exist"
        )));
    }
    Ok(oid)
}

thread_local! {
    /// Identity sequences found (a scan of pg_depend), by relation.
    static SEQUENCES: RefCell<HashMap<Oid, Oid>> = RefCell::new(HashMap::new());
}

/// The next value of `schema.table`'s identity column `column`.
pub fn next_identity(schema: &str, table: &str, column: &str) -> Result<i64> {
    let relid = relation_oid(schema, table)?;
    let known = SEQUENCES.with(|s| s.borrow().get(&relid).copied());
    // A sequence found before is used while it is still a sequence.
    let sequence = match known {
        Some(seq)
            if unsafe { pg_sys::get_rel_relkind(seq) }
                == pg_sys::RELKIND_SEQUENCE as std::ffi::c_char =>
        {
            seq
        }
        _ => {
            let attnum = unsafe {
                let c = CString::new(column)
                    .map_err(|_| internal(format!("{column} is not a column name")))?;
                pg_sys::get_attnum(relid, c.as_ptr())
            };
            if attnum <= 0 {
                return Err(internal(format!("{schema}.{table} has no column {column}")));
            }
            let seq = unsafe { pg_sys::getIdentitySequence(relid, attnum, false) };
            SEQUENCES.with(|s| s.borrow_mut().insert(relid, seq));
            seq
        }
    };
    Ok(unsafe { nextval_internal(sequence, false) })
}

/// Adds a row of `values` (the columns not named are NULL) to
/// `schema.table`, visible to the transaction's next command.
pub fn insert(schema: &str, table: &str, values: &[Value]) -> Result<()> {
    let relid = relation_oid(schema, table)?;
    unsafe {
        let rel = pg_sys::table_open(relid, pg_sys::RowExclusiveLock as _);
        let filled = fill_checked(rel, values);
        let done = filled.map(|(datums, nulls)| {
            let estate = pg_sys::CreateExecutorState();
            // What follows is allocated with the executor state, and freed
            // with it: a caller inserting many rows in one context keeps
            // nothing per row.
            let caller = pg_sys::MemoryContextSwitchTo((*estate).es_query_cxt);
            let rri = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>())
                as *mut pg_sys::ResultRelInfo;
            (*rri).type_ = pg_sys::NodeTag::T_ResultRelInfo;
            // Range table index 0: the row is not part of a query.
            pg_sys::InitResultRelInfo(rri, rel, 0, std::ptr::null_mut(), 0);
            pg_sys::ExecOpenIndices(rri, false);
            let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
            pg_sys::ExecClearTuple(slot);
            let n = datums.len();
            std::ptr::copy_nonoverlapping(datums.as_ptr(), (*slot).tts_values, n);
            std::ptr::copy_nonoverlapping(nulls.as_ptr(), (*slot).tts_isnull, n);
            pg_sys::ExecStoreVirtualTuple(slot);
            pg_sys::ExecSimpleRelationInsert(rri, estate, slot);
            pg_sys::ExecCloseIndices(rri);
            pg_sys::ExecDropSingleTupleTableSlot(slot);
            pg_sys::MemoryContextSwitchTo(caller);
            pg_sys::FreeExecutorState(estate);
        });
        pg_sys::table_close(rel, pg_sys::NoLock as _);
        done?;
        pg_sys::CommandCounterIncrement();
    }
    Ok(())
}

/// The row's datums and nulls in the table's column order, each value's
/// type checked, and no NOT NULL column left empty.
///
/// # Safety
/// `rel` is an open relation.
unsafe fn fill_checked(rel: pg_sys::Relation, values: &[Value]) -> Result<(Vec<Datum>, Vec<bool>)> {
    let desc = (*rel).rd_att;
    let n = (*desc).natts as usize;
    let attrs = (*desc).attrs.as_slice(n);
    let mut datums = vec![Datum::from(0usize); n];
    let mut nulls = vec![true; n];
    for v in values {
        let Some(i) = attrs
            .iter()
            .position(|a| !a.attisdropped && pgrx::name_data_to_str(&a.attname) == v.column)
        else {
            return Err(internal(format!("the table has no column {}", v.column)));
        };
        if attrs[i].atttypid != v.type_oid {
            return Err(internal(format!(
                "column {} is of type {}, not {}",
                v.column,
                attrs[i].atttypid.to_u32(),
                v.type_oid.to_u32()
            )));
        }
        if let Some(d) = v.datum {
            datums[i] = d;
            nulls[i] = false;
        }
    }
    if let Some(a) = attrs
        .iter()
        .zip(&nulls)
        .find(|(a, null)| **null && a.attnotnull && !a.attisdropped)
        .map(|(a, _)| a)
    {
        return Err(internal(format!(
            "no value for column {}",
            pgrx::name_data_to_str(&a.attname)
        )));
    }
    Ok((datums, nulls))
}
