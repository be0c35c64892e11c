//! `count(*)` pushed to Salesforce: the aggregate's path, offered when every
//! condition is pushed exactly, and its plan, one `SELECT COUNT()` request.

use super::classify::{rel_state, Classified, RelState};
use super::paths::REQUEST_COST;
use super::plan::{plan_to_private, ScanPlan};
use crate::pg::{list_append, list_items};
use pgrx::pg_guard;
use pgrx::pg_sys;
use salesforce_core::soql::{Condition, Soql};
use std::ptr::null_mut;

/// The relation's conditions when every one is pushed exactly and needs no
/// parameter: then Salesforce alone decides which rows qualify.
unsafe fn exact_conditions(state: &RelState) -> Option<Vec<Condition>> {
    state
        .restrictions
        .iter()
        .map(|(rinfo, classified)| match classified {
            Some(Classified {
                pushed,
                param: None,
            }) if pushed.exact && !(**rinfo).pseudoconstant => Some(pushed.condition.clone()),
            _ => None,
        })
        .collect()
}

unsafe fn is_count_star(node: *mut pg_sys::Node) -> bool {
    if !pgrx::is_a(node, pg_sys::NodeTag::T_Aggref) {
        return false;
    }
    let agg = node as *mut pg_sys::Aggref;
    (*agg).aggfnoid.to_u32() == pg_sys::F_COUNT_
        && (*agg).aggstar
        && (*agg).aggfilter.is_null()
        && (*agg).aggdistinct.is_null()
        && (*agg).aggorder.is_null()
        && (*agg).agglevelsup == 0
}

/// `SELECT count(*) FROM t WHERE <exact conditions>` becomes one
/// `SELECT COUNT()` request that transfers no rows.
#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_upper_paths(
    root: *mut pg_sys::PlannerInfo,
    stage: pg_sys::UpperRelationKind::Type,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    _extra: *mut std::ffi::c_void,
) {
    // A relation PostgreSQL proved empty (WHERE x = NULL) was never sized: no state.
    if stage != pg_sys::UpperRelationKind::UPPERREL_GROUP_AGG
        || (*input_rel).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL
        || (*input_rel).fdw_private.is_null()
        || !(*output_rel).fdw_private.is_null()
    {
        return;
    }
    let parse = (*root).parse;
    if !(*parse).groupClause.is_null() || !(*parse).groupingSets.is_null() || (*root).hasHavingQual
    {
        return;
    }
    let exprs = list_items::<pg_sys::Node>((*(*output_rel).reltarget).exprs);
    if exprs.is_empty() || !exprs.iter().all(|e| is_count_star(*e)) {
        return;
    }
    if exact_conditions(rel_state(input_rel)).is_none() {
        return;
    }
    (*output_rel).fdw_private = input_rel as *mut std::ffi::c_void;
    let path = pg_sys::create_foreign_upper_path(
        root,
        output_rel,
        (*output_rel).reltarget,
        1.0,
        REQUEST_COST,
        REQUEST_COST,
        null_mut(),
        null_mut(),
        null_mut(),
    );
    pg_sys::add_path(output_rel, path as *mut pg_sys::Path);
}

/// The plan for a path made by `get_foreign_upper_paths`.
pub(super) unsafe fn count_plan(
    upper: *mut pg_sys::RelOptInfo,
    tlist: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    let input = (*upper).fdw_private as *mut pg_sys::RelOptInfo;
    let state = rel_state(input);
    let table = &state.table;
    let conditions = exact_conditions(state).expect("checked when the path was made");
    let soql = Soql {
        object: table.object.clone(),
        fields: vec![],
        count: true,
        conditions,
        order_by: vec![],
        limit: None,
    };
    let plan = ScanPlan {
        server: table.server.to_u32(),
        user: table.user.to_u32(),
        soql,
        param_types: vec![],
        columns: vec![],
    };
    let mut scan_tlist = null_mut();
    for (i, expr) in list_items::<pg_sys::Expr>((*(*upper).reltarget).exprs)
        .into_iter()
        .enumerate()
    {
        scan_tlist = list_append(
            scan_tlist,
            pg_sys::makeTargetEntry(expr, (i + 1) as i16, null_mut(), false),
        );
    }
    pg_sys::make_foreignscan(
        tlist,
        null_mut(),
        0,
        null_mut(),
        plan_to_private(&plan),
        scan_tlist,
        null_mut(),
        outer_plan,
    )
}
