//! The plan the executor runs: which conditions, sort and limit Salesforce
//! receives, and which conditions stay local.
//!
//! The plan is stored as JSON text in `fdw_private`, so cached plans (PL/pgSQL,
//! prepared statements) copy and reuse it safely; parameter expressions go in
//! `fdw_exprs` and are evaluated at every (re)scan.

use super::classify::{rel_state, remote_order, Classified};
use super::join::join_plan;
use super::table::Table;
use super::upper::grouping_plan;
use crate::error::OrRaise;
use crate::pg::{list_append, list_items, pg_string, text_of};
use crate::values;
use pgrx::pg_guard;
use pgrx::pg_sys::{self, Oid};
use salesforce_core::soql::{Condition, Literal, Operand, Soql};
use serde::{Deserialize, Serialize};
use std::ptr::null_mut;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ScanColumn {
    pub attno: i16,
    pub field: String,
}

/// An output column that is one field divided by another, both read as the
/// column's type: an average, divided as PostgreSQL divides.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Quotient {
    pub attno: i16,
    pub dividend: String,
    pub divisor: String,
}

/// What the executor runs.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ScanPlan {
    pub server: u32,
    pub user: u32,
    pub soql: Soql,
    /// The type of each `fdw_exprs` entry, to turn its value into a literal.
    pub param_types: Vec<u32>,
    /// Fields read into the scan's attributes.
    pub columns: Vec<ScanColumn>,
    pub quotients: Vec<Quotient>,
    /// Why the grouping above this scan was not sent, for EXPLAIN VERBOSE.
    pub aggregates_local_because: Option<String>,
}

impl ScanPlan {
    pub(super) fn of(
        table: &Table,
        soql: Soql,
        columns: Vec<ScanColumn>,
        quotients: Vec<Quotient>,
    ) -> ScanPlan {
        ScanPlan {
            server: table.server.to_u32(),
            user: table.user.to_u32(),
            soql,
            param_types: vec![],
            columns,
            quotients,
            aggregates_local_because: None,
        }
    }
}

pub(super) fn plan_to_private(plan: &ScanPlan) -> *mut pg_sys::List {
    let json = serde_json::to_string(plan).expect("a plan serializes");
    unsafe { list_append(null_mut(), pg_sys::makeString(pg_string(&json))) }
}

fn set_param(condition: &mut Condition, index: usize) {
    match condition {
        Condition::Compare { value, .. }
        | Condition::Like { pattern: value, .. }
        | Condition::In { values: value, .. } => *value = Operand::Param(index),
        // Compound conditions are pushed only without parameters.
        Condition::IsNull { .. } | Condition::Any(_) | Condition::All(_) | Condition::Not(_) => {}
    }
}

/// Attribute numbers the scan must return: those in the target list and in local conditions.
unsafe fn needed_columns(
    baserel: *mut pg_sys::RelOptInfo,
    local: *mut pg_sys::List,
    table: &Table,
) -> Vec<i16> {
    let relid = (*baserel).relid;
    let mut attrs: *mut pg_sys::Bitmapset = null_mut();
    pg_sys::pull_varattnos(
        (*(*baserel).reltarget).exprs as *mut pg_sys::Node,
        relid,
        &mut attrs,
    );
    pg_sys::pull_varattnos(local as *mut pg_sys::Node, relid, &mut attrs);
    let mut out = Vec::new();
    let mut member = -1;
    loop {
        member = pg_sys::bms_next_member(attrs, member);
        if member < 0 {
            break;
        }
        match member + pg_sys::FirstLowInvalidHeapAttributeNumber {
            0 => return table.columns.iter().map(|c| c.attno).collect(),
            attno if attno > 0 => out.push(attno as i16),
            _ => {}
        }
    }
    out
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_plan(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    _relid: Oid,
    best_path: *mut pg_sys::ForeignPath,
    tlist: *mut pg_sys::List,
    scan_clauses: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    match (*baserel).reloptkind {
        pg_sys::RelOptKind::RELOPT_UPPER_REL => return grouping_plan(baserel, tlist, outer_plan),
        pg_sys::RelOptKind::RELOPT_JOINREL => return join_plan(baserel, tlist, outer_plan),
        _ => {}
    }
    let state = rel_state(baserel);
    let table = &state.table;
    let relid = (*baserel).relid;
    let mut soql = Soql {
        object: table.object.clone(),
        ..Soql::default()
    };
    let (mut fdw_exprs, mut local): (*mut pg_sys::List, *mut pg_sys::List) =
        (null_mut(), null_mut());
    let mut param_types = Vec::new();
    let mut all_exact = true;
    for rinfo in list_items::<pg_sys::RestrictInfo>(scan_clauses) {
        if (*rinfo).pseudoconstant {
            continue;
        }
        let clause = (*rinfo).clause as *mut pg_sys::Node;
        match state.classified(root, relid, rinfo) {
            Some(Classified { mut pushed, param }) => {
                if let Some(expr) = param {
                    set_param(&mut pushed.condition, param_types.len());
                    param_types.push(pg_sys::exprType(expr).to_u32());
                    fdw_exprs = list_append(fdw_exprs, expr);
                }
                soql.conditions.push(pushed.condition);
                if !pushed.exact {
                    local = list_append(local, clause);
                    all_exact = false;
                }
            }
            None => {
                local = list_append(local, clause);
                all_exact = false;
            }
        }
    }
    let sorted = !(*best_path).path.pathkeys.is_null();
    if sorted {
        soql.order_by = remote_order(root, baserel, table).unwrap_or_default();
    }
    let in_requested_order = (*root).query_pathkeys.is_null() || sorted;
    let only_relation =
        pg_sys::bms_membership((*root).all_baserels) == pg_sys::BMS_Membership::BMS_SINGLETON;
    if all_exact && in_requested_order && only_relation && (*root).limit_tuples >= 1.0 {
        soql.limit = Some((*root).limit_tuples as u64);
    }
    let mut columns = Vec::new();
    soql.fields.push("Id".to_string());
    for attno in needed_columns(baserel, local, table) {
        let field = table.field_of(attno).or_raise().name.clone();
        if !soql.fields.iter().any(|f| f.eq_ignore_ascii_case(&field)) {
            soql.fields.push(field.clone());
        }
        columns.push(ScanColumn { attno, field });
    }
    let plan = ScanPlan {
        param_types,
        aggregates_local_because: state.aggregates_local_because.borrow().clone(),
        ..ScanPlan::of(table, soql, columns, vec![])
    };
    pg_sys::make_foreignscan(
        tlist,
        local,
        relid,
        fdw_exprs,
        plan_to_private(&plan),
        null_mut(),
        null_mut(),
        outer_plan,
    )
}

/// The plan a ForeignScan node carries.
///
/// # Safety
/// `plan` is a ForeignScan made by `get_foreign_plan`.
pub unsafe fn scan_plan(plan: *mut pg_sys::ForeignScan) -> ScanPlan {
    let item = list_items::<pg_sys::String>((*plan).fdw_private)[0];
    serde_json::from_str(&text_of((*item).sval)).expect("a plan made by get_foreign_plan")
}

/// Literal values for a plan's parameters; None where SOQL cannot express one.
///
/// # Safety
/// `values` are valid datums of the plan's parameter types.
pub unsafe fn param_literals(
    plan: &ScanPlan,
    values: &[(pg_sys::Datum, bool)],
) -> Vec<Option<Literal>> {
    plan.param_types
        .iter()
        .zip(values)
        .map(|(t, (d, null))| values::literal(*d, *null, Oid::from(*t)))
        .collect()
}
