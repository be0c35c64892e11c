//! Running a foreign scan: pages are fetched as the executor pulls rows,
//! one page in memory at a time, and each value is read by its column's
//! type input function in a per-row memory context.

use super::plan::{param_literals, scan_plan, ScanPlan};
use crate::connection;
use crate::error::{Error, OrRaise, Result};
use crate::pg::{list_items, pg_string};
use crate::values::{ColumnReader, Source};
use pgrx::pg_sys::{self, Oid};
use pgrx::{pg_guard, PgMemoryContexts};
use salesforce_core::client::session::Session;
use salesforce_core::soql::Soql;
use salesforce_core::SalesforceError;
use serde_json::{Map, Value as Json};

/// Where one column of the scan comes from.
struct ScanColumn {
    index: usize,
    name: String,
    field: String,
    reader: ColumnReader,
}

/// One statement's pages. A wide object's fields are read by several
/// statements in lockstep; otherwise there is one stream.
struct Stream {
    page: Vec<Map<String, Json>>,
    position: usize,
    next_page: Option<String>,
    /// The first page held the whole result, so a rescan can replay it.
    single_page: bool,
}

struct Scan {
    plan: ScanPlan,
    params: Vec<*mut pg_sys::ExprState>,
    readers: Vec<ScanColumn>,
    row_context: pg_sys::MemoryContext,
    /// The statement for the current scan; None before the first row is
    /// asked for, Some(None) when the parameters prove nothing matches.
    sent: Option<Option<String>>,
    streams: Vec<Stream>,
    /// For `SELECT COUNT()`: the count, until the one row holding it is returned.
    count: Option<i64>,
}

unsafe fn scan_of<'a>(node: *mut pg_sys::ForeignScanState) -> &'a mut Scan {
    &mut *((*node).fdw_state as *mut Scan)
}

#[pg_guard]
pub unsafe extern "C-unwind" fn begin_foreign_scan(
    node: *mut pg_sys::ForeignScanState,
    eflags: i32,
) {
    let plan_node = (*node).ss.ps.plan as *mut pg_sys::ForeignScan;
    let plan = scan_plan(plan_node);
    let estate = (*node).ss.ps.state;
    let mut query_context = PgMemoryContexts::For((*estate).es_query_cxt);
    let explain_only = eflags as u32 & pg_sys::EXEC_FLAG_EXPLAIN_ONLY != 0;
    let mut readers = Vec::new();
    let mut params = Vec::new();
    let mut row_context = std::ptr::null_mut();
    if !explain_only {
        // An aggregate scan (count) reads no relation and has no columns.
        let relation = (*node).ss.ss_currentRelation;
        let attrs = if relation.is_null() {
            &[][..]
        } else {
            (*(*relation).rd_att)
                .attrs
                .as_slice((*(*relation).rd_att).natts as usize)
        };
        for column in &plan.columns {
            let attr = &attrs[column.attno as usize - 1];
            readers.push(ScanColumn {
                index: column.attno as usize - 1,
                name: pgrx::name_data_to_str(&attr.attname).to_string(),
                field: column.field.clone(),
                reader: ColumnReader::new(attr.atttypid, attr.atttypmod, (*estate).es_query_cxt),
            });
        }
        let exprs =
            pg_sys::ExecInitExprList((*plan_node).fdw_exprs, node as *mut pg_sys::PlanState);
        params = list_items::<pg_sys::ExprState>(exprs);
        row_context = pg_sys::AllocSetContextCreateInternal(
            (*estate).es_query_cxt,
            c"salesforce scan row".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
    }
    let scan = Scan {
        plan,
        params,
        readers,
        row_context,
        sent: None,
        streams: Vec::new(),
        count: None,
    };
    // Dropped with the query's memory, so an error mid-scan frees it too.
    (*node).fdw_state = query_context.leak_and_drop_on_delete(scan) as *mut std::ffi::c_void;
}

/// The statement for the current parameter values, or None when they match nothing.
unsafe fn bound_statement(node: *mut pg_sys::ForeignScanState, scan: &Scan) -> Option<Soql> {
    let econtext = (*node).ss.ps.ps_ExprContext;
    let values: Vec<(pg_sys::Datum, bool)> = scan
        .params
        .iter()
        .map(|state| {
            let mut is_null = false;
            let eval = (**state).evalfunc.expect("an initialized expression");
            (eval(*state, econtext, &mut is_null), is_null)
        })
        .collect();
    scan.plan.soql.bind(&param_literals(&scan.plan, &values))
}

fn session<T>(
    scan: &Scan,
    f: impl FnOnce(&mut Session) -> std::result::Result<T, SalesforceError>,
) -> Result<T> {
    connection::with_session(Oid::from(scan.plan.server), Oid::from(scan.plan.user), f)
}

fn first_page(session: &mut Session, soql: &str) -> std::result::Result<Stream, SalesforceError> {
    let page = session.query(soql, false)?;
    Ok(Stream {
        single_page: page.done,
        next_page: if page.done {
            None
        } else {
            page.next_records_url
        },
        page: page.records,
        position: 0,
    })
}

unsafe fn start(node: *mut pg_sys::ForeignScanState, scan: &mut Scan) -> Result<()> {
    let bound = bound_statement(node, scan);
    scan.sent = Some(bound.as_ref().map(Soql::render));
    scan.streams.clear();
    let Some(bound) = bound else { return Ok(()) };
    let streams = session(scan, |s| {
        let room = s.query_path_room()?;
        let parts = bound
            .split_to_fit(|text| s.query_path_len(text) <= room)
            .ok_or_else(|| SalesforceError::Api {
                status: 414,
                code: "URI_TOO_LONG".into(),
                message: "the query is too long for Salesforce even with its fields read in parts"
                    .into(),
            })?;
        if bound.count {
            return Ok((
                Some(s.query(&parts[0].render(), false)?.total_size as i64),
                vec![],
            ));
        }
        let streams = parts
            .iter()
            .map(|p| first_page(s, &p.render()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((None, streams))
    })?;
    scan.count = streams.0;
    scan.streams = streams.1;
    Ok(())
}

/// Stores the current record of every stream as one row.
unsafe fn store_row(scan: &Scan, slot: *mut pg_sys::TupleTableSlot) -> Result<()> {
    let records: Vec<&Map<String, Json>> =
        scan.streams.iter().map(|s| &s.page[s.position]).collect();
    if records.iter().any(|r| r.get("Id") != records[0].get("Id")) {
        return Err(changed_while_reading());
    }
    pg_sys::MemoryContextReset(scan.row_context);
    let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
    let values = std::slice::from_raw_parts_mut((*slot).tts_values, natts);
    let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, natts);
    nulls.fill(true);
    let id = records[0].get("Id").and_then(Json::as_str);
    PgMemoryContexts::For(scan.row_context).switch_to(|_| {
        for c in &scan.readers {
            let value = records
                .iter()
                .find_map(|rec| rec.get(&c.field))
                .unwrap_or(&Json::Null);
            let from = Source {
                column: &c.name,
                field: &c.field,
                record: id,
            };
            if let Some(datum) = c.reader.read(value, &from)? {
                values[c.index] = datum;
                nulls[c.index] = false;
            }
        }
        Ok::<(), Error>(())
    })?;
    pg_sys::ExecStoreVirtualTuple(slot);
    Ok(())
}

/// Fills every column of the aggregate scan's one row with the count.
unsafe fn store_count(slot: *mut pg_sys::TupleTableSlot, count: i64) {
    let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
    std::slice::from_raw_parts_mut((*slot).tts_values, natts).fill(pg_sys::Datum::from(count));
    std::slice::from_raw_parts_mut((*slot).tts_isnull, natts).fill(false);
    pg_sys::ExecStoreVirtualTuple(slot);
}

fn changed_while_reading() -> Error {
    Error::Salesforce(SalesforceError::BadResponse(
        "records changed while a wide object's fields were read in parts; run the query again"
            .into(),
    ))
}

unsafe fn next_row(
    node: *mut pg_sys::ForeignScanState,
    scan: &mut Scan,
    slot: *mut pg_sys::TupleTableSlot,
) -> Result<()> {
    if scan.sent.is_none() {
        start(node, scan)?;
        if scan.plan.soql.count {
            store_count(slot, scan.count.take().unwrap_or(0));
            return Ok(());
        }
    }
    if scan.streams.is_empty() {
        return Ok(());
    }
    for i in 0..scan.streams.len() {
        let stream = &scan.streams[i];
        if stream.position >= stream.page.len() {
            if let Some(url) = stream.next_page.clone() {
                let page = session(scan, |s| s.next_page(&url))?;
                let stream = &mut scan.streams[i];
                stream.next_page = if page.done {
                    None
                } else {
                    page.next_records_url
                };
                stream.page = page.records;
                stream.position = 0;
            }
        }
    }
    // Any next page was fetched above, so a used-up page means a finished stream.
    let exhausted = scan
        .streams
        .iter()
        .filter(|s| s.position >= s.page.len())
        .count();
    if exhausted == scan.streams.len() {
        return Ok(());
    }
    if exhausted > 0 {
        return Err(changed_while_reading());
    }
    store_row(scan, slot)?;
    scan.streams.iter_mut().for_each(|s| s.position += 1);
    Ok(())
}

#[pg_guard]
pub unsafe extern "C-unwind" fn iterate_foreign_scan(
    node: *mut pg_sys::ForeignScanState,
) -> *mut pg_sys::TupleTableSlot {
    let scan = scan_of(node);
    let slot = (*node).ss.ss_ScanTupleSlot;
    if let Some(clear) = (*(*slot).tts_ops).clear {
        clear(slot);
    }
    next_row(node, scan, slot).or_raise();
    slot
}

#[pg_guard]
pub unsafe extern "C-unwind" fn re_scan_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    let scan = scan_of(node);
    let statement = bound_statement(node, scan).map(|s| s.render());
    let replayable = !scan.streams.is_empty() && scan.streams.iter().all(|s| s.single_page);
    if replayable && scan.sent.as_ref() == Some(&statement) {
        // Same statement, every row already here: rewind instead of asking again.
        scan.streams.iter_mut().for_each(|s| s.position = 0);
    } else {
        scan.sent = None;
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn end_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    // The state itself goes with the query's memory context; release the pages now.
    scan_of(node).streams = Vec::new();
}

#[pg_guard]
pub unsafe extern "C-unwind" fn explain_foreign_scan(
    node: *mut pg_sys::ForeignScanState,
    es: *mut pg_sys::ExplainState,
) {
    let scan = scan_of(node);
    pg_sys::ExplainPropertyText(
        c"Salesforce Query".as_ptr(),
        pg_string(&scan.plan.soql.render()),
        es,
    );
}
