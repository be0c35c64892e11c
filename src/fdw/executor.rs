//! Running a foreign scan: while the backend reads one page into the
//! columns' input texts and pulls its rows, a thread fetches the next, so
//! Salesforce prepares a page while we read one, and at most two pages are
//! in memory. Each row runs the column types' input functions in a per-row
//! memory context.

use super::plan::{param_literals, scan_plan, ScanPlan};
use crate::connection;
use crate::error::{Error, OrRaise, Result};
use crate::pg::{list_items, pg_string};
use crate::read_ahead::{query_pages, Counted, Making, Page, PageSource, ReadAhead};
use crate::records::{FieldText, PageReader, ReadField, RecordSink};
use crate::values::ColumnReader;
use pgrx::pg_sys::{self, Oid};
use pgrx::{pg_guard, PgMemoryContexts};
use salesforce_core::client::session::{PageHead, Session};
use salesforce_core::soql::Soql;
use salesforce_core::SalesforceError;

/// Where one column of the scan comes from.
struct ScanColumn {
    /// The attribute it fills; None for a part of a quotient.
    index: Option<usize>,
    name: String,
    field: String,
    reader: ColumnReader,
}

/// An attribute that is one read value divided by another (an average).
struct QuotientColumn {
    index: usize,
    dividend: usize,
    divisor: usize,
    /// The division function of the attribute's type.
    divide: Oid,
}

/// A stream's pages after its first, read on a thread of their own.
type PagesAhead = ReadAhead<Counted<Page<Vec<u8>>>>;

/// Rows of the first page used before the second is fetched.
const ASK_AFTER: usize = 64;

/// A column's value in a record of a page.
#[derive(Clone, Copy)]
enum Cell {
    /// The stream does not select this field (a wide object read in parts).
    Absent,
    Null,
    /// The input text starts here in the page's buffer, NUL-terminated.
    Text(usize),
}

/// A page's records as the scan's columns' input texts, read in one pass
/// over the answer.
#[derive(Default)]
struct ScanPage {
    text: Vec<u8>,
    /// A cell per scan column per record.
    cells: Vec<Cell>,
    ids: Vec<Option<String>>,
}

impl ScanPage {
    fn read(body: &[u8], reader: &PageReader) -> Result<ScanPage> {
        let mut page = ScanPage::default();
        reader.read(body, &mut page)?;
        Ok(page)
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

impl RecordSink for ScanPage {
    fn record(&mut self, texts: &[FieldText], id: Option<&str>) -> Result<()> {
        for t in texts {
            let cell = match t {
                FieldText::Absent => Cell::Absent,
                FieldText::Null => Cell::Null,
                FieldText::Text(t) => {
                    let at = self.text.len();
                    self.text.extend(t.bytes().filter(|b| *b != 0));
                    self.text.push(0);
                    Cell::Text(at)
                }
            };
            self.cells.push(cell);
        }
        self.ids.push(id.map(str::to_string));
        Ok(())
    }
}

/// One statement's pages. A wide object's fields are read by several
/// statements in lockstep; otherwise there is one stream.
struct Stream {
    page: ScanPage,
    position: usize,
    /// The pages after this one, fetched ahead: the second once `ASK_AFTER`
    /// rows (or a quarter of a shorter page) of the first are used, each
    /// later one as soon as the page before it arrives. A scan stopped early
    /// (a LIMIT run locally) costs at most one page it does not use, and
    /// none when it stops within the first rows.
    ahead: Option<PagesAhead>,
    asked: bool,
    /// The first page held the whole result, so a rescan can replay it.
    single_page: bool,
}

struct Scan {
    plan: ScanPlan,
    params: Vec<*mut pg_sys::ExprState>,
    readers: Vec<ScanColumn>,
    quotients: Vec<QuotientColumn>,
    /// Reads pages into the readers' input texts.
    reader: PageReader,
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
    let mut quotients = Vec::new();
    let mut params = Vec::new();
    let mut row_context = std::ptr::null_mut();
    if !explain_only {
        // The relation's attributes, or for a pushed grouping those of its pieces.
        let desc = (*(*node).ss.ss_ScanTupleSlot).tts_tupleDescriptor;
        let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
        let mut read = |field: &str, attno: i16, store: bool| {
            let attr = &attrs[attno as usize - 1];
            readers.push(ScanColumn {
                index: store.then_some(attno as usize - 1),
                name: pgrx::name_data_to_str(&attr.attname).to_string(),
                field: field.to_string(),
                reader: ColumnReader::new(attr.atttypid, attr.atttypmod, (*estate).es_query_cxt),
            });
            readers.len() - 1
        };
        for column in &plan.columns {
            read(&column.field, column.attno, true);
        }
        for q in &plan.quotients {
            let dividend = read(&q.dividend, q.attno, false);
            let divisor = read(&q.divisor, q.attno, false);
            let divide = match attrs[q.attno as usize - 1].atttypid {
                pg_sys::FLOAT8OID => pg_sys::F_FLOAT8DIV,
                _ => pg_sys::F_NUMERIC_DIV,
            };
            quotients.push(QuotientColumn {
                index: q.attno as usize - 1,
                dividend,
                divisor,
                divide: Oid::from(divide),
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
    let reader = PageReader::new(
        readers
            .iter()
            .map(|r| ReadField {
                field: r.field.clone(),
                column: r.name.clone(),
                kind: r.reader.kind(),
            })
            .collect(),
    );
    let scan = Scan {
        plan,
        params,
        readers,
        quotients,
        reader,
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

/// A stream's first page, and the thread that reads the pages after it.
fn first_page(
    session: &mut Session,
    soql: &str,
) -> std::result::Result<(Vec<u8>, Option<PagesAhead>), SalesforceError> {
    let body = session.query_text(soql, false)?;
    let ahead = PageHead::of(&body)?
        .next()
        .map(|url| query_pages(session.fork(), PageSource::Next(url), Making::WhenAsked, Ok));
    Ok((body, ahead))
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
    for (body, ahead) in streams.1 {
        scan.streams.push(Stream {
            single_page: ahead.is_none(),
            page: ScanPage::read(&body, &scan.reader)?,
            position: 0,
            ahead,
            asked: false,
        });
    }
    Ok(())
}

/// Stores the current record of every stream as one row.
unsafe fn store_row(scan: &Scan, slot: *mut pg_sys::TupleTableSlot) -> Result<()> {
    fn id(s: &Stream) -> &Option<String> {
        &s.page.ids[s.position]
    }
    if scan.streams.iter().any(|s| id(s) != id(&scan.streams[0])) {
        return Err(changed_while_reading());
    }
    pg_sys::MemoryContextReset(scan.row_context);
    let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
    let values = std::slice::from_raw_parts_mut((*slot).tts_values, natts);
    let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, natts);
    nulls.fill(true);
    let width = scan.readers.len();
    PgMemoryContexts::For(scan.row_context).switch_to(|_| {
        let mut parts = vec![None; width];
        for (i, c) in scan.readers.iter().enumerate() {
            let text =
                scan.streams
                    .iter()
                    .find_map(|s| match s.page.cells[s.position * width + i] {
                        Cell::Absent => None,
                        Cell::Null => Some(None),
                        Cell::Text(at) => Some(Some(s.page.text[at..].as_ptr())),
                    });
            if let Some(Some(text)) = text {
                let value = c.reader.read_text(text as *const std::ffi::c_char);
                match c.index {
                    Some(index) => {
                        values[index] = value;
                        nulls[index] = false;
                    }
                    None => parts[i] = Some(value),
                }
            }
        }
        for q in &scan.quotients {
            // A sum over no values is null, and so is the average.
            if let (Some(dividend), Some(divisor)) = (parts[q.dividend], parts[q.divisor]) {
                values[q.index] =
                    pg_sys::OidFunctionCall2Coll(q.divide, pg_sys::InvalidOid, dividend, divisor);
                nulls[q.index] = false;
            }
        }
    });
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
    for stream in &mut scan.streams {
        let Some(ahead) = &stream.ahead else { continue };
        if !stream.asked && stream.position >= (stream.page.len() / 4).min(ASK_AFTER) {
            ahead.ask();
            stream.asked = true;
        }
        if stream.position < stream.page.len() {
            continue;
        }
        let next = ahead
            .next(connection::interrupted)
            .unwrap_or_else(|| {
                Err(Error::Salesforce(SalesforceError::BadResponse(
                    "the query's pages ended before its last".into(),
                )))
            })
            .and_then(Counted::into_answer);
        let next = match next {
            Ok(next) => next,
            Err(e) => {
                stream.ahead = None;
                return Err(e);
            }
        };
        // A scan past its first page reads on: the page after this one is
        // fetched while this one is read here and used.
        match &stream.ahead {
            Some(ahead) if !next.last => ahead.ask(),
            _ => stream.ahead = None,
        }
        stream.asked = true;
        stream.page = ScanPage::read(&next.page, &scan.reader)?;
        stream.position = 0;
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
    if let (true, Some(reason)) = ((*es).verbose, &scan.plan.aggregates_local_because) {
        pg_sys::ExplainPropertyText(
            c"Aggregates Computed Locally".as_ptr(),
            pg_string(reason),
            es,
        );
    }
}
