//! INSERT, UPDATE and DELETE on Salesforce tables. Planning checks every
//! assigned column is one Salesforce lets this statement set; execution
//! batches rows 200 to a call (see `write`).

use super::table::Table;
use crate::catalog;
use crate::error::{Error, OrRaise, Result};
use crate::gucs::{WriteMode, WRITE_MODE};
use crate::pg::{list_append, list_items, pg_string, relation_name, text_of};
use crate::values::to_json;
use crate::write::bulk::BulkWrite;
use crate::write::transaction;
use pgrx::pg_sys::{self, Oid};
use pgrx::{pg_guard, IntoDatum, PgMemoryContexts, PgRelation};
use salesforce_core::write::chunk::CHUNK;
use salesforce_core::write::journal::{Done, Op, Queued, Target};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::ptr::null_mut;

/// The junk column carrying each updated or deleted row's record Id.
const ROW_ID: &std::ffi::CStr = c"salesforce_id";

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Insert,
    Update,
    Delete,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct WriteColumn {
    attno: i16,
    name: String,
    field: String,
    type_oid: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct ModifyPlan {
    server: u32,
    user: u32,
    object: String,
    table: String,
    kind: Kind,
    columns: Vec<WriteColumn>,
    upsert_key: Option<String>,
    id_attno: Option<i16>,
    /// The statement has RETURNING: each inserted row is sent on its own so
    /// its new Id can be returned.
    returning: bool,
    /// The table's `bulk_threshold`, if it sets one.
    bulk_threshold: Option<u64>,
}

struct ModifyState {
    plan: ModifyPlan,
    mode: WriteMode,
    /// The `salesforce_id` junk attribute in the subplan's output.
    row_id: i16,
    rows: usize,
    pending: Vec<Queued>,
    /// Rows from which the statement's writes go through Bulk; None: never.
    bulk_threshold: Option<usize>,
    /// The Bulk job the statement's writes go to, once they reached the threshold.
    bulk: Option<BulkWrite>,
}

impl ModifyPlan {
    fn statement(&self) -> String {
        match self.kind {
            Kind::Insert => format!("INSERT into {}", self.table),
            Kind::Update => format!("UPDATE of {}", self.table),
            Kind::Delete => format!("DELETE from {}", self.table),
        }
    }

    fn target(&self) -> Target {
        Target {
            server: self.server,
            user: self.user,
            object: self.object.clone(),
        }
    }
}

/// The attribute holding the record Id: the `rowid_column` option, else the
/// column whose field (or name) is Id.
fn id_attno(relid: Oid) -> Result<Option<i16>> {
    let rel = unsafe { PgRelation::open(relid) };
    let table_options = catalog::foreign_table(relid)?.options;
    let attrs: Vec<_> = rel
        .tuple_desc()
        .iter()
        .filter(|a| !a.is_dropped())
        .map(|a| (a.attnum, a.name().to_string()))
        .collect();
    if let Some(name) = &table_options.rowid_column {
        return Ok(attrs.iter().find(|(_, n)| n == name).map(|(a, _)| *a));
    }
    Ok(attrs.iter().find_map(|(attno, name)| {
        let field = catalog::column_field(relid, *attno);
        field
            .as_deref()
            .unwrap_or(name)
            .eq_ignore_ascii_case("id")
            .then_some(*attno)
    }))
}

#[pg_guard]
pub unsafe extern "C-unwind" fn add_foreign_update_targets(
    root: *mut pg_sys::PlannerInfo,
    rtindex: pg_sys::Index,
    _target_rte: *mut pg_sys::RangeTblEntry,
    target_relation: pg_sys::Relation,
) {
    let relid = (*target_relation).rd_id;
    let attno = id_attno(relid)
        .or_raise()
        .ok_or_else(|| {
            Error::mapping(
                format!("foreign table \"{}\" has no column for the record Id", relation_name(relid)),
                "Add one, such as: id text OPTIONS (field 'Id'), or set the table's rowid_column option.",
            )
        })
        .or_raise();
    let var = pg_sys::makeVar(
        rtindex as i32,
        attno,
        pg_sys::TEXTOID,
        -1,
        pg_sys::DEFAULT_COLLATION_OID,
        0,
    );
    pg_sys::add_row_identity_var(root, var, rtindex, ROW_ID.as_ptr());
}

unsafe fn attnos(set: *mut pg_sys::Bitmapset) -> Vec<i16> {
    let mut out = Vec::new();
    let mut m = -1;
    loop {
        m = pg_sys::bms_next_member(set, m);
        if m < 0 {
            return out;
        }
        let attno = m + pg_sys::FirstLowInvalidHeapAttributeNumber;
        if attno > 0 {
            out.push(attno as i16);
        }
    }
}

fn plan_modify(rte: *mut pg_sys::RangeTblEntry, kind: Kind, returning: bool) -> Result<ModifyPlan> {
    let relid = unsafe { (*rte).relid };
    let user = catalog::effective_user(unsafe { (*rte).checkAsUser });
    let table = Table::load(relid, user)?;
    let table_name = relation_name(relid);
    let rel = unsafe { PgRelation::open(relid) };
    let type_of = |attno: i16| {
        rel.tuple_desc()
            .iter()
            .find(|a| a.attnum == attno)
            .map(|a| a.atttypid.to_u32())
            .unwrap_or(0)
    };
    let assigned = unsafe {
        match kind {
            Kind::Insert => attnos((*rte).insertedCols),
            Kind::Update => attnos((*rte).updatedCols),
            Kind::Delete => vec![],
        }
    };
    let mut columns = Vec::new();
    for attno in assigned {
        let field = table.field_of(attno)?;
        let name = table
            .column(attno)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let allowed = if kind == Kind::Insert {
            field.createable
        } else {
            field.updateable
        };
        if !allowed {
            let verb = if kind == Kind::Insert {
                "INSERT"
            } else {
                "UPDATE"
            };
            return Err(Error::mapping(
                format!("cannot {verb} column \"{name}\" of foreign table \"{table_name}\": Salesforce field {} is read-only here", field.name),
                format!("Leave \"{name}\" out of the {verb}; Salesforce sets it."),
            ));
        }
        columns.push(WriteColumn {
            attno,
            name,
            field: field.name.clone(),
            type_oid: type_of(attno),
        });
    }
    let upsert_key = match (kind, &table.options.upsert_key) {
        (Kind::Insert, Some(key)) => {
            let column = columns.iter().find(|c| c.name == *key || c.field.eq_ignore_ascii_case(key)).ok_or_else(|| {
                Error::mapping(format!("an INSERT into \"{table_name}\" must set its upsert_key column \"{key}\""), "Give the key a value in every row.")
            })?;
            let external = table
                .describe_field(&column.field)
                .is_some_and(|f| f.external_id);
            if !external {
                return Err(Error::mapping(
                    format!("upsert_key \"{key}\" of \"{table_name}\" is not an external id field in Salesforce"),
                    "Choose a field whose describe says externalId, such as a unique integration key.",
                ));
            }
            Some(column.field.clone())
        }
        _ => None,
    };
    Ok(ModifyPlan {
        server: table.server.to_u32(),
        user: user.to_u32(),
        object: table.object.clone(),
        table: table_name,
        kind,
        columns,
        upsert_key,
        id_attno: id_attno(relid)?,
        returning,
        bulk_threshold: table.options.bulk_threshold,
    })
}

#[pg_guard]
pub unsafe extern "C-unwind" fn plan_foreign_modify(
    root: *mut pg_sys::PlannerInfo,
    plan: *mut pg_sys::ModifyTable,
    result_relation: pg_sys::Index,
    _subplan_index: i32,
) -> *mut pg_sys::List {
    let rte = *(*root).simple_rte_array.add(result_relation as usize);
    let kind = match (*plan).operation {
        pg_sys::CmdType::CMD_INSERT => Kind::Insert,
        pg_sys::CmdType::CMD_UPDATE => Kind::Update,
        _ => Kind::Delete,
    };
    let modify = plan_modify(rte, kind, !(*plan).returningLists.is_null()).or_raise();
    let json = serde_json::to_string(&modify).expect("a plan serializes");
    list_append(null_mut(), pg_sys::makeString(pg_string(&json)))
}

unsafe fn state_of<'a>(rinfo: *mut pg_sys::ResultRelInfo) -> Option<&'a mut ModifyState> {
    ((*rinfo).ri_FdwState as *mut ModifyState).as_mut()
}

#[pg_guard]
pub unsafe extern "C-unwind" fn begin_foreign_modify(
    mtstate: *mut pg_sys::ModifyTableState,
    rinfo: *mut pg_sys::ResultRelInfo,
    fdw_private: *mut pg_sys::List,
    _subplan_index: i32,
    eflags: i32,
) {
    if eflags as u32 & pg_sys::EXEC_FLAG_EXPLAIN_ONLY != 0 {
        return;
    }
    let item = list_items::<pg_sys::String>(fdw_private)[0];
    let plan: ModifyPlan =
        serde_json::from_str(&text_of((*item).sval)).expect("a plan made by plan_foreign_modify");
    let mode = WRITE_MODE.get();
    if mode != WriteMode::Statement && plan.returning && plan.kind == Kind::Insert {
        Err(Error::mapping(
            "INSERT ... RETURNING needs salesforce.write_mode = statement",
            match mode {
                WriteMode::Queued => "Queued writes get their Ids when the sync worker delivers them: see salesforce.queued_writes.",
                _ => "In commit mode Salesforce assigns the new Ids only at COMMIT.",
            },
        ))
        .or_raise()
    }
    let row_id = if plan.kind == Kind::Insert {
        0
    } else {
        let subplan = (*(*mtstate).ps.lefttree).plan;
        pg_sys::ExecFindJunkAttributeInTlist((*subplan).targetlist, ROW_ID.as_ptr())
    };
    let server_threshold = catalog::server_options(Oid::from(plan.server))
        .or_raise()
        .0
        .bulk_threshold;
    let bulk_threshold =
        salesforce_core::write::bulk::threshold(plan.bulk_threshold, server_threshold);
    let state = ModifyState {
        plan,
        mode,
        row_id,
        rows: 0,
        pending: Vec::new(),
        bulk_threshold,
        bulk: None,
    };
    let estate = (*mtstate).ps.state;
    (*rinfo).ri_FdwState = PgMemoryContexts::For((*estate).es_query_cxt)
        .leak_and_drop_on_delete(state) as *mut std::ffi::c_void;
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_modify_batch_size(
    rinfo: *mut pg_sys::ResultRelInfo,
) -> i32 {
    // RETURNING and AFTER ROW triggers need each row back as it is inserted.
    let after_row_triggers =
        !(*rinfo).ri_TrigDesc.is_null() && (*(*rinfo).ri_TrigDesc).trig_insert_after_row;
    if (*rinfo).ri_projectReturning.is_null() && !after_row_triggers {
        CHUNK as i32
    } else {
        1
    }
}

/// Makes the first `n` attributes of a slot readable (PostgreSQL's inline slot_getsomeattrs).
unsafe fn deform(slot: *mut pg_sys::TupleTableSlot, n: i32) {
    if ((*slot).tts_nvalid as i32) < n {
        pg_sys::slot_getsomeattrs_int(slot, n);
    }
}

/// The values of the statement's columns in a slot, as a record to send.
/// A column's value in a slot (deformed already), as JSON.
unsafe fn value_of(c: &WriteColumn, slot: *mut pg_sys::TupleTableSlot) -> Result<Json> {
    let i = c.attno as usize - 1;
    to_json(
        *(*slot).tts_values.add(i),
        *(*slot).tts_isnull.add(i),
        Oid::from(c.type_oid),
    )
    .map_err(|message| Error::Conversion {
        column: c.name.clone(),
        field: c.field.clone(),
        record: None,
        message,
    })
}

unsafe fn record_of(
    plan: &ModifyPlan,
    slot: *mut pg_sys::TupleTableSlot,
) -> Result<Map<String, Json>> {
    deform(slot, (*(*slot).tts_tupleDescriptor).natts);
    let mut record = Map::new();
    for c in &plan.columns {
        record.insert(c.field.clone(), value_of(c, slot)?);
    }
    Ok(record)
}

/// The values of the statement's columns in a slot as Bulk CSV cells, in
/// column order, into `values` (kept between rows) and `cells`.
unsafe fn cells_of(
    plan: &ModifyPlan,
    slot: *mut pg_sys::TupleTableSlot,
    null: &'static str,
    values: &mut Vec<Json>,
    cells: &mut Vec<String>,
) -> Result<()> {
    deform(slot, (*(*slot).tts_tupleDescriptor).natts);
    values.clear();
    for c in &plan.columns {
        values.push(value_of(c, slot)?);
    }
    cells.resize(values.len(), String::new());
    for (cell, v) in cells.iter_mut().zip(values.iter()) {
        cell.clear();
        cell.push_str(&salesforce_core::values::csv_cell(v, null));
    }
    Ok(())
}

unsafe fn row_id(state: &ModifyState, plan_slot: *mut pg_sys::TupleTableSlot) -> Result<String> {
    deform(plan_slot, state.row_id as i32);
    let i = state.row_id as usize - 1;
    if state.row_id <= 0 || *(*plan_slot).tts_isnull.add(i) {
        return Err(Error::mapping(
            format!("a row of the {} has no record Id", state.plan.statement()),
            "Make sure the Id column is read from Salesforce.",
        ));
    }
    let datum = *(*plan_slot).tts_values.add(i);
    Ok(<String as pgrx::FromDatum>::from_datum(datum, false).unwrap_or_default())
}

/// Sends or queues one row's write, per the write mode.
fn submit(state: &mut ModifyState, op: Op) -> Result<Vec<Done>> {
    state.rows += 1;
    let q = Queued {
        target: state.plan.target(),
        op,
        row: state.rows,
        statement: state.plan.statement(),
        bulk_from: state.bulk_threshold,
    };
    match state.mode {
        WriteMode::Commit => {
            transaction::queue(q);
            Ok(vec![])
        }
        WriteMode::Queued => {
            queue_for_delivery(&state.plan, &q.op)?;
            Ok(vec![])
        }
        WriteMode::Statement => {
            state.pending.push(q);
            if state.plan.kind == Kind::Insert && state.plan.returning {
                flush(state)
            } else {
                send_when_due(state).map(|()| vec![])
            }
        }
    }
}

/// Statement mode: writes wait until the statement ends or reaches the
/// Bulk threshold. At the end they go 200 to a call; at the threshold a
/// Bulk job takes them, and every later row goes straight into its upload.
/// Without a threshold they go 200 to a call as they come.
fn send_when_due(state: &mut ModifyState) -> Result<()> {
    if let Some(job) = &mut state.bulk {
        for q in std::mem::take(&mut state.pending) {
            job.push(&q)?;
        }
        return Ok(());
    }
    match state.bulk_threshold {
        Some(t) if state.pending.len() >= t => {
            let fields: Vec<String> = state.plan.columns.iter().map(|c| c.field.clone()).collect();
            let mut job = BulkWrite::open(&state.pending[0], &fields)?;
            for q in std::mem::take(&mut state.pending) {
                job.push(&q)?;
            }
            state.bulk = Some(job);
            Ok(())
        }
        Some(_) => Ok(()),
        None if state.pending.len() >= CHUNK => flush(state).map(drop),
        None => Ok(()),
    }
}

/// Stores the write in the outbox, delivered after commit as the role the
/// statement runs as.
fn queue_for_delivery(plan: &ModifyPlan, op: &Op) -> Result<()> {
    let server = catalog::server_name(Oid::from(plan.server));
    crate::delivery::queue(Oid::from(plan.user), &server, &plan.object, op, None)?;
    Ok(())
}

fn flush(state: &mut ModifyState) -> Result<Vec<Done>> {
    if state.pending.is_empty() {
        return Ok(vec![]);
    }
    transaction::apply(std::mem::take(&mut state.pending))
}

fn insert_op(plan: &ModifyPlan, record: Map<String, Json>) -> Op {
    match &plan.upsert_key {
        Some(key_field) => Op::Upsert {
            key_field: key_field.clone(),
            record,
        },
        None => Op::Create { record },
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn exec_foreign_insert(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    _plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    let state = state_of(rinfo).expect("begun");
    let record = record_of(&state.plan, slot).or_raise();
    let done = submit(state, insert_op(&state.plan, record)).or_raise();
    if let (Some(Done::Created { id, .. } | Done::Updated { id, .. }), Some(attno)) =
        (done.last(), state.plan.id_attno)
    {
        // RETURNING sees the Id Salesforce assigned.
        let i = attno as usize - 1;
        *(*slot).tts_values.add(i) = id.clone().into_datum().expect("text");
        *(*slot).tts_isnull.add(i) = false;
    }
    slot
}

#[pg_guard]
pub unsafe extern "C-unwind" fn exec_foreign_batch_insert(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slots: *mut *mut pg_sys::TupleTableSlot,
    _plan_slots: *mut *mut pg_sys::TupleTableSlot,
    num_slots: *mut i32,
) -> *mut *mut pg_sys::TupleTableSlot {
    let state = state_of(rinfo).expect("begun");
    if let Some(job) = &mut state.bulk {
        // A Bulk job is open: rows go straight into its upload.
        let (mut values, mut cells) = (Vec::new(), Vec::new());
        let null = job.null_cell();
        for i in 0..*num_slots as usize {
            cells_of(&state.plan, *slots.add(i), null, &mut values, &mut cells).or_raise();
            state.rows += 1;
            job.push_cells(state.rows, &cells).or_raise();
        }
        return slots;
    }
    for i in 0..*num_slots as usize {
        let record = record_of(&state.plan, *slots.add(i)).or_raise();
        let op = insert_op(&state.plan, record);
        state.rows += 1;
        state.pending.push(Queued {
            target: state.plan.target(),
            op,
            row: state.rows,
            statement: state.plan.statement(),
            bulk_from: state.bulk_threshold,
        });
    }
    match state.mode {
        WriteMode::Commit => std::mem::take(&mut state.pending)
            .into_iter()
            .for_each(transaction::queue),
        WriteMode::Queued => {
            for q in std::mem::take(&mut state.pending) {
                queue_for_delivery(&state.plan, &q.op).or_raise();
            }
        }
        WriteMode::Statement => {
            send_when_due(state).or_raise();
        }
    }
    slots
}

#[pg_guard]
pub unsafe extern "C-unwind" fn exec_foreign_update(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    let state = state_of(rinfo).expect("begun");
    let id = row_id(state, plan_slot).or_raise();
    let fields = record_of(&state.plan, slot).or_raise();
    submit(state, Op::Update { id, fields }).or_raise();
    slot
}

#[pg_guard]
pub unsafe extern "C-unwind" fn exec_foreign_delete(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    let state = state_of(rinfo).expect("begun");
    let id = row_id(state, plan_slot).or_raise();
    submit(state, Op::Delete { id }).or_raise();
    slot
}

#[pg_guard]
pub unsafe extern "C-unwind" fn end_foreign_modify(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
) {
    if let Some(state) = state_of(rinfo) {
        match state.bulk.take() {
            Some(job) => job.finish().map(drop).or_raise(),
            None => flush(state).map(drop).or_raise(),
        }
    }
}
