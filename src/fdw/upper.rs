//! Grouping and aggregates pushed to Salesforce. A grouped query over one
//! foreign table whose conditions are all exact becomes one aggregate SOQL
//! query when Salesforce's answer is exactly PostgreSQL's; `count(*)` alone
//! is `SELECT COUNT()`. Otherwise the reason is kept for EXPLAIN VERBOSE.

use super::classify::{column_of, facts, operand, rel_state, Classified, RelState};
use super::paths::REQUEST_COST;
use super::plan::{plan_to_private, Quotient, ScanColumn, ScanPlan};
use crate::gucs;
use crate::pg::{list_append, list_items, text_of};
use pgrx::pg_sys;
use pgrx::{pg_guard, PgMemoryContexts};
use salesforce_core::aggregates::{self, AggregateFunction, Asked, PushedAggregate};
use salesforce_core::pushdown::PgOp;
use salesforce_core::soql::{Condition, Soql};
use std::ptr::null_mut;

/// The most rows an aggregate query answers: it cannot be paged.
const MAX_GROUPS: f64 = 2000.0;
const GROUP_COST: f64 = 0.02;

/// What planning decided for a grouped relation, kept in its `fdw_private`.
struct Grouping {
    plan: ScanPlan,
    /// What the scan returns, in order: grouping columns and aggregates.
    pieces: Vec<*mut pg_sys::Node>,
    rows: f64,
}

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

/// The SOQL aggregate an Aggref of the relation becomes.
unsafe fn pushed_aggregate(
    agg: *mut pg_sys::Aggref,
    relid: u32,
    state: &RelState,
) -> Result<PushedAggregate, String> {
    let plain = (*agg).aggfnoid.to_u32() < pg_sys::FirstNormalObjectId
        && (*agg).aggkind as u8 == b'n'
        && (*agg).aggfilter.is_null()
        && (*agg).aggorder.is_null()
        && (*agg).agglevelsup == 0
        && (*agg).aggsplit == pg_sys::AggSplit::AGGSPLIT_SIMPLE;
    let name = text_of(pg_sys::get_func_name((*agg).aggfnoid));
    let function =
        AggregateFunction::from_call(&name, (*agg).aggstar, !(*agg).aggdistinct.is_null())
            .filter(|_| plain)
            .ok_or_else(|| format!("Salesforce has no equivalent of this call of {name}"))?;
    let args = list_items::<pg_sys::TargetEntry>((*agg).args);
    let field = match args.as_slice() {
        [] => None,
        [arg] => column_of((*(*arg)).expr as *mut pg_sys::Node, relid)
            .and_then(|attno| facts(&state.table, attno)),
        _ => return Err(format!("{name} has several arguments")),
    };
    aggregates::aggregate(function, field.as_ref())
}

/// A HAVING clause: an aggregate compared with a constant.
unsafe fn having_condition(
    clause: *mut pg_sys::Node,
    relid: u32,
    state: &RelState,
) -> Result<Condition, String> {
    let unsent = || "a HAVING clause is not an aggregate compared with a constant".to_string();
    if !pgrx::is_a(clause, pg_sys::NodeTag::T_OpExpr) {
        return Err(unsent());
    }
    let op = clause as *mut pg_sys::OpExpr;
    let args = list_items::<pg_sys::Node>((*op).args);
    if args.len() != 2 || (*op).opno.to_u32() >= pg_sys::FirstNormalObjectId {
        return Err(unsent());
    }
    let mut pg_op = PgOp::from_name(&text_of(pg_sys::get_opname((*op).opno))).ok_or_else(unsent)?;
    let (agg, other) = if pgrx::is_a(args[0], pg_sys::NodeTag::T_Aggref) {
        (args[0], args[1])
    } else {
        pg_op = pg_op.commuted().ok_or_else(unsent)?;
        (args[1], args[0])
    };
    let PgOp::Compare(compare) = pg_op else {
        return Err(unsent());
    };
    if !pgrx::is_a(agg, pg_sys::NodeTag::T_Aggref) || !pgrx::is_a(other, pg_sys::NodeTag::T_Const) {
        return Err(unsent());
    }
    let pushed = pushed_aggregate(agg as *mut pg_sys::Aggref, relid, state)?;
    let (value, family, _) = operand(other, false).ok_or_else(unsent)?;
    aggregates::having(&pushed, compare, value, family)
}

/// Collects `node` as a piece of the scan's output, once.
unsafe fn add_piece(pieces: &mut Vec<*mut pg_sys::Node>, node: *mut pg_sys::Node) {
    if !pieces
        .iter()
        .any(|p| pg_sys::equal(*p as *const _, node as *const _))
    {
        pieces.push(node);
    }
}

/// The aggregate query for the grouped relation, or why there is none.
unsafe fn grouping(
    root: *mut pg_sys::PlannerInfo,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    extra: *mut pg_sys::GroupPathExtraData,
) -> Result<Grouping, String> {
    if !gucs::PUSHDOWN_AGGREGATES.get() {
        return Err("salesforce.pushdown_aggregates is off".into());
    }
    let state = rel_state(input_rel);
    let relid = (*input_rel).relid;
    let conditions = exact_conditions(state)
        .ok_or("a condition of the scan is checked locally, so Salesforce would count rows PostgreSQL drops")?;
    let parse = (*root).parse;
    if !(*parse).groupingSets.is_null() {
        return Err("Salesforce has no grouping sets".into());
    }
    let mut keys: Vec<(*mut pg_sys::Node, String, String)> = Vec::new();
    for sgc in list_items::<pg_sys::SortGroupClause>((*parse).groupClause) {
        let expr = pg_sys::get_sortgroupclause_expr(sgc, (*parse).targetList);
        let facts = column_of(expr, relid)
            .and_then(|attno| facts(&state.table, attno))
            .ok_or("a grouping key is not a Salesforce field")?;
        let field = aggregates::group_key(&facts)?;
        keys.push((expr, field, facts.salesforce_type.to_string()));
    }
    let mut pieces = Vec::new();
    for expr in list_items::<pg_sys::Node>((*(*output_rel).reltarget).exprs) {
        if pgrx::is_a(expr, pg_sys::NodeTag::T_Aggref) {
            add_piece(&mut pieces, expr);
            continue;
        }
        // Any other expression is computed locally from the keys and aggregates it holds.
        let flags = pg_sys::PVC_INCLUDE_AGGREGATES as i32;
        for part in list_items::<pg_sys::Node>(pg_sys::pull_var_clause(expr, flags)) {
            let is_key = keys
                .iter()
                .any(|(k, _, _)| pg_sys::equal(*k as *const _, part as *const _));
            if !is_key && !pgrx::is_a(part, pg_sys::NodeTag::T_Aggref) {
                return Err("the output uses a column that is not grouped".into());
            }
            add_piece(&mut pieces, part);
        }
    }
    let mut soql = Soql {
        object: state.table.object.clone(),
        conditions,
        group_by: keys.iter().map(|(_, f, _)| f.clone()).collect(),
        ..Soql::default()
    };
    if !(*root).hasHavingQual {
        let count_only = keys.is_empty()
            && pieces.iter().all(|p| {
                pgrx::is_a(*p, pg_sys::NodeTag::T_Aggref)
                    && (*(*p as *mut pg_sys::Aggref)).aggstar
                    && pushed_aggregate(*p as *mut pg_sys::Aggref, relid, state).is_ok()
            });
        if count_only {
            soql.count = true;
            return Ok(Grouping {
                plan: ScanPlan::of(&state.table, soql, vec![], vec![]),
                pieces,
                rows: 1.0,
            });
        }
    } else {
        for clause in list_items::<pg_sys::Node>((*extra).havingQual as *mut pg_sys::List) {
            soql.having.push(having_condition(clause, relid, state)?);
        }
    }
    let groups = expected_groups(root, input_rel, &keys);
    if groups > MAX_GROUPS {
        return Err(format!(
            "Salesforce answers at most 2,000 groups, and about {groups} are expected"
        ));
    }
    soql.fields = soql.group_by.clone();
    let mut asked: Vec<String> = Vec::new();
    let mut ask = |expression: String| -> String {
        let n = asked
            .iter()
            .position(|a| *a == expression)
            .unwrap_or_else(|| {
                asked.push(expression);
                asked.len() - 1
            });
        format!("a{n}")
    };
    let (mut columns, mut quotients) = (Vec::new(), Vec::new());
    for (i, piece) in pieces.iter().enumerate() {
        let attno = (i + 1) as i16;
        if let Some((_, field, _)) = keys
            .iter()
            .find(|(k, _, _)| pg_sys::equal(*k as *const _, *piece as *const _))
        {
            columns.push(ScanColumn {
                attno,
                field: field.clone(),
            });
            continue;
        }
        match pushed_aggregate(*piece as *mut pg_sys::Aggref, relid, state)?.asked {
            Asked::Expression(e) => columns.push(ScanColumn {
                attno,
                field: ask(e),
            }),
            Asked::Quotient { sum, count } => quotients.push(Quotient {
                attno,
                dividend: ask(sum),
                divisor: ask(count),
            }),
        }
    }
    for (n, expression) in asked.iter().enumerate() {
        soql.fields.push(format!("{expression} a{n}"));
    }
    Ok(Grouping {
        plan: ScanPlan::of(&state.table, soql, columns, quotients),
        pieces,
        rows: groups.max(1.0),
    })
}

/// How many groups the query makes. An id or reference key may make one
/// group per row, whatever the statistics say.
unsafe fn expected_groups(
    root: *mut pg_sys::PlannerInfo,
    input_rel: *mut pg_sys::RelOptInfo,
    keys: &[(*mut pg_sys::Node, String, String)],
) -> f64 {
    let rows = (*input_rel).rows;
    if keys.is_empty() {
        return 1.0;
    }
    if keys
        .iter()
        .any(|(_, _, t)| matches!(t.as_str(), "id" | "reference"))
    {
        return rows;
    }
    let exprs = keys
        .iter()
        .fold(null_mut(), |list, (k, _, _)| list_append(list, *k));
    pg_sys::estimate_num_groups(root, exprs, rows, null_mut(), null_mut())
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_upper_paths(
    root: *mut pg_sys::PlannerInfo,
    stage: pg_sys::UpperRelationKind::Type,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    extra: *mut std::ffi::c_void,
) {
    // A relation PostgreSQL proved empty (WHERE x = NULL) was never sized: no state.
    if stage != pg_sys::UpperRelationKind::UPPERREL_GROUP_AGG
        || (*input_rel).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL
        || (*input_rel).fdw_private.is_null()
        || !(*output_rel).fdw_private.is_null()
    {
        return;
    }
    let grouping = match grouping(root, input_rel, output_rel, extra as *mut _) {
        Ok(grouping) => grouping,
        Err(reason) => {
            *rel_state(input_rel).aggregates_local_because.borrow_mut() = Some(reason);
            return;
        }
    };
    let rows = grouping.rows;
    let total = REQUEST_COST + rows * GROUP_COST;
    (*output_rel).fdw_private = PgMemoryContexts::CurrentMemoryContext
        .leak_and_drop_on_delete(grouping) as *mut std::ffi::c_void;
    let path = pg_sys::create_foreign_upper_path(
        root,
        output_rel,
        (*output_rel).reltarget,
        rows,
        REQUEST_COST,
        total,
        null_mut(),
        null_mut(),
        null_mut(),
    );
    pg_sys::add_path(output_rel, path as *mut pg_sys::Path);
}

/// The plan for a path made by `get_foreign_upper_paths`.
pub(super) unsafe fn grouping_plan(
    upper: *mut pg_sys::RelOptInfo,
    tlist: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    let grouping = &*((*upper).fdw_private as *const Grouping);
    let mut scan_tlist = null_mut();
    for (i, piece) in grouping.pieces.iter().enumerate() {
        scan_tlist = list_append(
            scan_tlist,
            pg_sys::makeTargetEntry(
                *piece as *mut pg_sys::Expr,
                (i + 1) as i16,
                null_mut(),
                false,
            ),
        );
    }
    pg_sys::make_foreignscan(
        tlist,
        null_mut(),
        0,
        null_mut(),
        plan_to_private(&grouping.plan),
        scan_tlist,
        null_mut(),
        outer_plan,
    )
}
