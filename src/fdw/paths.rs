//! Sizing a foreign relation and the scan paths offered for it: plain,
//! sorted by Salesforce, and parameterized by another relation's key.

use super::classify::{classify, column_of, rel_state, remote_order, RelState};
use super::table::Table;
use crate::catalog;
use crate::error::OrRaise;
use crate::pg::list_items;
use pgrx::pg_sys::{self, Oid};
use pgrx::{pg_guard, PgMemoryContexts};
use std::ptr::null_mut;

/// Rows assumed for a table without an `estimated_rows` option.
const DEFAULT_ROWS: f64 = 1000.0;
/// A round trip to Salesforce, in planner cost units.
pub(super) const REQUEST_COST: f64 = 100.0;
const PAGE_ROWS: f64 = 2000.0;
const ROW_COST: f64 = 0.02;

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_rel_size(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    relid: Oid,
) {
    let rte = *(*root).simple_rte_array.add((*baserel).relid as usize);
    let user = catalog::effective_user((*rte).checkAsUser);
    let table = Table::load(relid, user).or_raise();
    let selectivity = pg_sys::clauselist_selectivity(
        root,
        (*baserel).baserestrictinfo,
        0,
        pg_sys::JoinType::JOIN_INNER,
        null_mut(),
    );
    let tuples = table
        .options
        .estimated_rows
        .map_or(DEFAULT_ROWS, |n| n as f64);
    (*baserel).rows = (tuples * selectivity).round().max(1.0);
    let state = RelState::new(root, baserel, table);
    let state = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state);
    (*baserel).fdw_private = state as *mut std::ffi::c_void;
}

pub(super) fn scan_cost(rows: f64) -> (f64, f64) {
    let pages = (rows / PAGE_ROWS).ceil().max(1.0);
    (REQUEST_COST, REQUEST_COST * pages + rows * ROW_COST)
}

/// Offers a scan of `rows` rows, its total cost scaled by `surcharge`, in
/// the order of `pathkeys` and needing the outer relations in `required`.
unsafe fn add_scan_path(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    rows: f64,
    surcharge: f64,
    pathkeys: *mut pg_sys::List,
    required: *mut pg_sys::Bitmapset,
) {
    let (startup, total) = scan_cost(rows);
    let path = pg_sys::create_foreignscan_path(
        root,
        baserel,
        null_mut(),
        rows,
        startup,
        total * surcharge,
        pathkeys,
        required,
        null_mut(),
        null_mut(),
    );
    pg_sys::add_path(baserel, path as *mut pg_sys::Path);
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_paths(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    _relid: Oid,
) {
    let state = rel_state(baserel);
    let rows = (*baserel).rows;
    add_scan_path(root, baserel, rows, 1.0, null_mut(), null_mut());
    if remote_order(root, baserel, &state.table).is_some() {
        // Sorting remotely costs Salesforce a little; sorting locally costs us more.
        add_scan_path(
            root,
            baserel,
            rows,
            1.05,
            (*root).query_pathkeys,
            null_mut(),
        );
    }
    add_parameterized_paths(root, baserel, &state.table);
}

#[pg_guard]
unsafe extern "C-unwind" fn member_is_column(
    _root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    _ec: *mut pg_sys::EquivalenceClass,
    em: *mut pg_sys::EquivalenceMember,
    attno: *mut std::ffi::c_void,
) -> bool {
    column_of((*em).em_expr as *mut pg_sys::Node, (*rel).relid) == Some(*(attno as *const i16))
}

/// Parameterized paths for the inner side of a nested loop: an id or
/// reference column equal to another relation's value is sent per outer row
/// (`WHERE AccountId = $1`), instead of reading the whole object.
unsafe fn add_parameterized_paths(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    table: &Table,
) {
    let relid = (*baserel).relid;
    let mut join_clauses = Vec::new();
    for column in &table.columns {
        let is_key = column
            .field
            .as_ref()
            .is_some_and(|f| f.filterable && matches!(f.field_type.as_str(), "id" | "reference"));
        if is_key {
            let mut attno = column.attno;
            let implied = pg_sys::generate_implied_equalities_for_column(
                root,
                baserel,
                Some(member_is_column),
                &mut attno as *mut i16 as *mut std::ffi::c_void,
                (*baserel).lateral_referencers,
            );
            join_clauses.extend(list_items::<pg_sys::RestrictInfo>(implied));
        }
    }
    let mut made: Vec<*mut pg_sys::Bitmapset> = Vec::new();
    for rinfo in join_clauses {
        if classify(root, relid, table, (*rinfo).clause as *mut pg_sys::Node).is_none() {
            continue;
        }
        let required = pg_sys::bms_del_member(
            pg_sys::bms_union((*rinfo).clause_relids, (*baserel).lateral_relids),
            relid as i32,
        );
        if pg_sys::bms_is_empty(required) || made.iter().any(|m| pg_sys::bms_equal(*m, required)) {
            continue;
        }
        made.push(required);
        let rows = (*pg_sys::get_baserel_parampathinfo(root, baserel, required)).ppi_rows;
        add_scan_path(root, baserel, rows, 1.0, null_mut(), required);
    }
}
