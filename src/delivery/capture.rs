//! Read-write copies (sync option `"write": true`): a trigger on the copy
//! turns each INSERT, UPDATE and DELETE a user makes into a queued write,
//! in the same transaction, for the role that made it. A new row holds
//! `queued:<id>` as its Id until delivery writes Salesforce's Id back;
//! what the sync itself writes into the copy is never captured, so
//! nothing read from Salesforce goes back to it.

use super::outbox::{self, Captured};
use crate::access;
use crate::catalog;
use crate::error::{Error, OrRaise};
use crate::values::to_json;
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, PgTrigger};
use salesforce_core::sync::definition::SYNCED_AT;
use salesforce_core::write::journal::Op;
use serde_json::Map;
use std::cell::Cell;

// Not `Result`: the trigger macro names that type as it finds it in scope.
type Res<T> = std::result::Result<T, Error>;

extern "C-unwind" {
    // utils/datum.h, not in pgrx's bindings.
    fn datumIsEqual(
        value1: Datum,
        value2: Datum,
        typ_by_val: bool,
        typ_len: std::ffi::c_int,
    ) -> bool;
}

/// The Id a row added to the copy holds until its insert is delivered.
pub const QUEUED_PREFIX: &str = "queued:";

/// Fields Salesforce sets itself: never sent from a copy's row.
const SET_BY_SALESFORCE: [&str; 10] = [
    "Id",
    "SystemModstamp",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "IsDeleted",
    "LastActivityDate",
    "LastViewedDate",
    "LastReferencedDate",
];

thread_local! {
    static APPLYING: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, the sync writing its copy: nothing it changes is captured.
pub fn applying<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            APPLYING.set(APPLYING.get() - 1);
        }
    }
    APPLYING.set(APPLYING.get() + 1);
    let _reset = Reset;
    f()
}

/// The triggers' names on a read-write copy: one gives a new row its
/// `queued:<n>` id, the other queues each row stored, changed or deleted.
pub const TRIGGER: &str = "salesforce_write";
const ID_TRIGGER: &str = "salesforce_write_id";
const TRUNCATE_TRIGGER: &str = "salesforce_write_truncate";

fn refused(message: String, hint: &str) -> Error {
    Error::sql(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, message).with_hint(hint)
}

/// What the trigger needs of its sync.
struct Copied {
    relid: Oid,
    server: String,
    object: String,
    fields: Vec<String>,
    columns: Vec<String>,
}

fn sync_of(sync_id: i64) -> Res<Copied> {
    let (server, object, pairs) = access::as_extension(|| {
        access::pinned(|| {
            Ok(Spi::get_three_with_args::<String, String, pgrx::JsonB>(
                "SELECT s.server::text, s.object, jsonb_build_array(s.fields, s.columns, s.target_relid::bigint)
                   FROM (SELECT) one LEFT JOIN salesforce.syncs s ON s.id = $1",
                &[sync_id.into()],
            )?)
        })
    })?;
    let (Some(server), Some(object), Some(pairs)) = (server, object, pairs) else {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("this table was the read-write copy of sync {sync_id}, which no longer exists"),
        )
        .with_hint(format!(
            "DROP TRIGGER {TRIGGER} ON the table, to write it locally only."
        )));
    };
    let list = |i: usize| -> Vec<String> {
        pairs.0[i]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Copied {
        relid: Oid::from(pairs.0[2].as_u64().unwrap_or_default() as u32),
        server,
        object,
        fields: list(0),
        columns: list(1),
    })
}

/// A row's values by column name.
struct Row {
    desc: pg_sys::TupleDesc,
    values: Vec<Datum>,
    nulls: Vec<bool>,
}

impl Row {
    /// # Safety
    /// `tuple` is a valid tuple of `desc`.
    unsafe fn read(desc: pg_sys::TupleDesc, tuple: pg_sys::HeapTuple) -> Row {
        let n = (*desc).natts as usize;
        let mut values = vec![Datum::from(0usize); n];
        let mut nulls = vec![true; n];
        pg_sys::heap_deform_tuple(tuple, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        Row {
            desc,
            values,
            nulls,
        }
    }

    fn index(&self, column: &str) -> Option<usize> {
        let n = unsafe { (*self.desc).natts as usize };
        let attrs = unsafe { (*self.desc).attrs.as_slice(n) };
        attrs
            .iter()
            .position(|a| !a.attisdropped && pgrx::name_data_to_str(&a.attname) == column)
    }

    fn attr(&self, i: usize) -> &pg_sys::FormData_pg_attribute {
        unsafe { &(*self.desc).attrs.as_slice((*self.desc).natts as usize)[i] }
    }

    fn json(&self, i: usize, field: &str, column: &str) -> Res<serde_json::Value> {
        unsafe { to_json(self.values[i], self.nulls[i], self.attr(i).atttypid) }.map_err(
            |message| Error::Conversion {
                column: column.to_string(),
                field: field.to_string(),
                record: None,
                message,
            },
        )
    }

    fn text(&self, column: &str) -> Option<String> {
        let i = self.index(column)?;
        if self.nulls[i] {
            return None;
        }
        unsafe { String::from_datum(self.values[i], false) }
    }

    /// The row's SystemModstamp, when the copy has it as timestamptz.
    fn stamp(&self, copied: &Copied) -> Option<Datum> {
        let column = copied
            .fields
            .iter()
            .position(|f| f == "SystemModstamp")
            .map(|i| copied.columns[i].as_str())?;
        let i = self.index(column)?;
        (!self.nulls[i] && self.attr(i).atttypid == pg_sys::TIMESTAMPTZOID).then(|| self.values[i])
    }

    /// Whether column `i` holds the same value in both rows.
    fn same(&self, other: &Row, i: usize) -> bool {
        match (self.nulls[i], other.nulls[i]) {
            (true, true) => true,
            (false, false) => {
                let a = self.attr(i);
                unsafe {
                    datumIsEqual(self.values[i], other.values[i], a.attbyval, a.attlen as i32)
                }
            }
            _ => false,
        }
    }
}

/// The record a row's synced fields make, each sent field passing `keep`.
fn record(
    copied: &Copied,
    row: &Row,
    mut keep: impl FnMut(usize) -> bool,
) -> Res<Map<String, serde_json::Value>> {
    let mut record = Map::new();
    for (field, column) in copied.fields.iter().zip(&copied.columns) {
        if SET_BY_SALESFORCE.contains(&field.as_str()) {
            continue;
        }
        let Some(i) = row.index(column) else { continue };
        if keep(i) {
            record.insert(field.clone(), row.json(i, field, column)?);
        }
    }
    Ok(record)
}

/// The record Id a row names: its own, or the queued insert it waits for.
fn target_of(id: Option<String>) -> Res<(String, Option<i64>)> {
    let id = id.ok_or_else(|| {
        refused(
            "a row of a read-write copy has no id".into(),
            "Rows of a read-write copy are Salesforce records, named by id.",
        )
    })?;
    match id.strip_prefix(QUEUED_PREFIX).map(str::parse::<i64>) {
        Some(Ok(queued)) => Ok((String::new(), Some(queued))),
        Some(Err(_)) => Err(refused(
            format!("{id:?} is not an id this copy gave"),
            "Ids starting with queued: stand for rows waiting for their Salesforce Id.",
        )),
        None => Ok((id, None)),
    }
}

fn capture(trigger: &PgTrigger<'_>) -> Res<Option<Datum>> {
    let data = trigger.trigger_data();
    let event = data.tg_event;
    let op = event & pg_sys::TRIGGER_EVENT_OPMASK;
    let before = event & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_BEFORE;
    let after = event & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_AFTER;
    let row_level = event & pg_sys::TRIGGER_EVENT_ROW != 0;
    let known_op = [
        pg_sys::TRIGGER_EVENT_INSERT,
        pg_sys::TRIGGER_EVENT_UPDATE,
        pg_sys::TRIGGER_EVENT_DELETE,
    ]
    .contains(&op);
    let truncate = op == pg_sys::TRIGGER_EVENT_TRUNCATE && before && !row_level;
    if !truncate
        && (!row_level || !known_op || !(after || (before && op == pg_sys::TRIGGER_EVENT_INSERT)))
    {
        return Err(refused(
            "capture_copy_write runs only as a read-write copy's row triggers".into(),
            "sync_enable with the option \"write\": true makes them.",
        ));
    }
    let (old_tuple, new_tuple) = (data.tg_trigtuple, data.tg_newtuple);
    let returned = if op == pg_sys::TRIGGER_EVENT_UPDATE {
        new_tuple
    } else {
        old_tuple
    };
    if APPLYING.get() > 0 {
        return Ok(Some(Datum::from(returned)));
    }
    let sync_id = trigger
        .extra_args()
        .ok()
        .and_then(|a| a.first().and_then(|s| s.parse::<i64>().ok()))
        .ok_or_else(|| refused("the trigger names no sync".into(), "sync_enable makes it."))?;
    let copied = sync_of(sync_id)?;
    let relation = data.tg_relation;
    if unsafe { (*relation).rd_id } != copied.relid {
        return Err(refused(
            format!("this table is not the copy of sync {sync_id}"),
            "Only sync_enable puts capture_copy_write on a table.",
        ));
    }
    if truncate {
        return Err(refused(
            "TRUNCATE of a read-write copy would not reach Salesforce".into(),
            "DELETE the rows (each delete is queued for Salesforce), or salesforce.sync_disable() first.",
        ));
    }
    let desc = unsafe { (*relation).rd_att };
    let probe = unsafe { Row::read(desc, old_tuple) };
    let id_column = "id";
    match probe.index(id_column).map(|i| probe.attr(i).atttypid) {
        Some(pg_sys::TEXTOID | pg_sys::VARCHAROID) => {}
        _ => {
            return Err(refused(
                "a read-write copy keeps its records' Ids in a text column id".into(),
                "Make id text, or sync into a new table.",
            ))
        }
    }
    if before {
        return given_queued_id(&probe, desc).map(Some);
    }
    let role = access::current_role();
    access::check_server_use(catalog::server_oid(&copied.server)?, role)?;
    let queue = |op: Op, how: Captured| {
        outbox::add_captured(role, &copied.server, &copied.object, &op, sync_id, how)
    };
    if op == pg_sys::TRIGGER_EVENT_INSERT {
        let reserved = probe.text(id_column).and_then(|id| {
            id.strip_prefix(QUEUED_PREFIX)
                .and_then(|n| n.parse::<i64>().ok())
        });
        let Some(reserved) = reserved else {
            return Err(new_row_with_id());
        };
        let fields = record(&copied, &probe, |i| !probe.nulls[i])?;
        queue(
            Op::Create { record: fields },
            Captured {
                reserved: Some(reserved),
                ..Captured::default()
            },
        )?;
        return Ok(Some(Datum::from(returned)));
    }
    let old = probe;
    let (id, id_of) = target_of(old.text(id_column))?;
    if let Some(first) = id_of {
        outbox::check_captured_insert(first, sync_id)?;
    }
    if op == pg_sys::TRIGGER_EVENT_UPDATE {
        let new = unsafe { Row::read(desc, new_tuple) };
        if new.text(id_column) != old.text(id_column) {
            return Err(refused(
                "the id of a row in a read-write copy cannot change".into(),
                "Delete the row and insert another.",
            ));
        }
        let fields = record(&copied, &new, |i| !new.same(&old, i))?;
        if !fields.is_empty() {
            let how = Captured {
                id_of,
                seen_stamp: old.stamp(&copied),
                seen_values: Some(serde_json::Value::Object(record(&copied, &old, |i| {
                    !new.same(&old, i)
                })?)),
                ..Captured::default()
            };
            queue(Op::Update { id, fields }, how)?;
        }
    } else {
        let how = Captured {
            id_of,
            ..Captured::default()
        };
        queue(Op::Delete { id }, how)?;
    }
    Ok(Some(Datum::from(returned)))
}

fn new_row_with_id() -> Error {
    refused(
        "a row added to a read-write copy gets its id from Salesforce".into(),
        "Leave id out of the INSERT: the row holds queued:<n> until Salesforce's Id is written back.",
    )
}

/// A new row, before it is stored: its id becomes `queued:<n>`, `n` the
/// id its queued write will have once the row is stored.
fn given_queued_id(row: &Row, desc: pg_sys::TupleDesc) -> Res<Datum> {
    if row.text("id").is_some_and(|id| !id.is_empty()) {
        return Err(new_row_with_id());
    }
    let reserved = outbox::reserve_id()?;
    let i = row.index("id").expect("checked");
    let mut values = row.values.clone();
    let mut nulls = row.nulls.clone();
    values[i] = format!("{QUEUED_PREFIX}{reserved}")
        .into_datum()
        .expect("text");
    nulls[i] = false;
    // When the row was written: now, by its user, until the sync reads it
    // back.
    if let Some(at) = row.index(SYNCED_AT) {
        if nulls[at] && row.attr(at).atttypid == pg_sys::TIMESTAMPTZOID {
            values[at] = Datum::from(unsafe { pg_sys::GetCurrentTransactionStartTimestamp() });
            nulls[at] = false;
        }
    }
    let tuple = unsafe { pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr()) };
    Ok(Datum::from(tuple))
}

/// The trigger of a read-write copy (sync option "write": true).
#[pg_trigger]
fn capture_copy_write<'a>(
    trigger: &'a PgTrigger<'a>,
) -> std::result::Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, pgrx::PgTriggerError> {
    let tuple = capture(trigger).or_raise();
    Ok(tuple.and_then(|d| {
        let ptr = d.cast_mut_ptr::<pg_sys::HeapTupleData>();
        (!ptr.is_null()).then(|| unsafe {
            PgHeapTuple::from_heap_tuple(
                pgrx::PgTupleDesc::from_pg_unchecked((*trigger.trigger_data().tg_relation).rd_att),
                ptr,
            )
        })
    }))
}

/// Puts the trigger on a read-write copy; run as the copy's owner.
pub fn install(table: &str, sync_id: i64) -> Res<()> {
    // Queued after the row is stored (AFTER): a row an ON CONFLICT turns
    // into an update, or another trigger drops, is not sent.
    Spi::run(&format!(
        "CREATE TRIGGER {ID_TRIGGER} BEFORE INSERT ON {table} \
         FOR EACH ROW EXECUTE FUNCTION salesforce.capture_copy_write('{sync_id}')"
    ))?;
    Spi::run(&format!(
        "CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON {table} \
         FOR EACH ROW EXECUTE FUNCTION salesforce.capture_copy_write('{sync_id}')"
    ))?;
    // TRUNCATE fires no row triggers: refused rather than left local.
    Spi::run(&format!(
        "CREATE TRIGGER {TRUNCATE_TRIGGER} BEFORE TRUNCATE ON {table} \
         FOR EACH STATEMENT EXECUTE FUNCTION salesforce.capture_copy_write('{sync_id}')"
    ))
    .map_err(Error::from)
}

/// Takes them off again, if they are there.
pub fn remove(table: &str) -> Res<()> {
    Spi::run(&format!("DROP TRIGGER IF EXISTS {ID_TRIGGER} ON {table}"))?;
    Spi::run(&format!(
        "DROP TRIGGER IF EXISTS {TRUNCATE_TRIGGER} ON {table}"
    ))?;
    Spi::run(&format!("DROP TRIGGER IF EXISTS {TRIGGER} ON {table}")).map_err(Error::from)
}

/// Writes Salesforce's Id into the row a delivered insert came from, as
/// the copy's owner, uncaptured. A row the sync read meanwhile with that
/// Id (the poll came first) stays, and the waiting one goes. A row locked
/// for more than 2 s fails it: the worker tries again later.
pub fn write_back(copy: Oid, owner: Oid, queued: i64, id: &str) -> Res<()> {
    access::as_role(owner, || {
        crate::pg::catching(|| {
            let Ok(name) = access::check_table(copy, owner, "the read-write copy") else {
                return Ok(());
            };
            let table = name.qualified();
            let waiting = format!("{QUEUED_PREFIX}{queued}");
            applying(|| {
                // A user holding the row must not hold up the worker: the
                // setting ends with `as_role`'s nest level.
                Spi::run("SET LOCAL lock_timeout = '2s'")?;
                Spi::run_with_args(
                    &format!("DELETE FROM {table} WHERE id = $1 AND EXISTS (SELECT FROM {table} WHERE id = $2)"),
                    &[waiting.as_str().into(), id.into()],
                )?;
                Spi::run_with_args(
                    &format!("UPDATE {table} SET id = $2 WHERE id = $1"),
                    &[waiting.as_str().into(), id.into()],
                )
            })
            .map_err(Error::from)
        })
    })
}
