//! What Salesforce can take of a relation's conditions and requested order.
//! Each restriction clause is classified once, when the relation is sized,
//! and kept in the relation's `RelState` for its paths and its plan.

use super::table::Table;
use crate::pg::{list_items, text_of};
use crate::values;
use pgrx::pg_sys;
use salesforce_core::pushdown::{self, FieldFacts, PgOp, Pushed, ValueFamily};
use salesforce_core::soql::{Operand, OrderKey};
use std::cell::RefCell;

/// What planning keeps of one relation, from GetForeignRelSize to GetForeignPlan.
pub(super) struct RelState {
    pub(super) table: Table,
    /// Every clause of `baserestrictinfo` with what it pushes, if anything.
    pub(super) restrictions: Vec<(*mut pg_sys::RestrictInfo, Option<Classified>)>,
    /// Why a grouped query over the relation is computed locally, for EXPLAIN VERBOSE.
    pub(super) aggregates_local_because: RefCell<Option<String>>,
}

impl RelState {
    /// The state of `baserel`, its restriction clauses classified.
    pub(super) unsafe fn new(
        root: *mut pg_sys::PlannerInfo,
        baserel: *mut pg_sys::RelOptInfo,
        table: Table,
    ) -> RelState {
        let relid = (*baserel).relid;
        let restrictions = list_items::<pg_sys::RestrictInfo>((*baserel).baserestrictinfo)
            .into_iter()
            .map(|rinfo| {
                let clause = (*rinfo).clause as *mut pg_sys::Node;
                (rinfo, classify(root, relid, &table, clause))
            })
            .collect();
        RelState {
            table,
            restrictions,
            aggregates_local_because: RefCell::new(None),
        }
    }

    /// What a clause of the scan pushes: as classified with the relation for
    /// a restriction clause, classified now for a join clause.
    pub(super) unsafe fn classified(
        &self,
        root: *mut pg_sys::PlannerInfo,
        relid: u32,
        rinfo: *mut pg_sys::RestrictInfo,
    ) -> Option<Classified> {
        match self.restrictions.iter().find(|(r, _)| *r == rinfo) {
            Some((_, classified)) => classified.clone(),
            None => classify(
                root,
                relid,
                &self.table,
                (*rinfo).clause as *mut pg_sys::Node,
            ),
        }
    }
}

pub(super) unsafe fn rel_state<'a>(baserel: *mut pg_sys::RelOptInfo) -> &'a RelState {
    &*((*baserel).fdw_private as *const RelState)
}

pub(super) fn facts(table: &Table, attno: i16) -> Option<FieldFacts<'_>> {
    let f = table.column(attno)?.field.as_ref()?;
    Some(FieldFacts {
        api_name: &f.name,
        salesforce_type: &f.field_type,
        filterable: f.filterable,
        sortable: f.sortable,
        groupable: f.groupable,
        aggregatable: f.aggregatable,
    })
}

/// A column reference, seen through a binary-compatible relabeling.
pub(super) unsafe fn var_of(node: *mut pg_sys::Node) -> Option<*mut pg_sys::Var> {
    let mut node = node;
    if pgrx::is_a(node, pg_sys::NodeTag::T_RelabelType) {
        node = (*(node as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
    }
    pgrx::is_a(node, pg_sys::NodeTag::T_Var).then_some(node as *mut pg_sys::Var)
}

/// The attribute number of a plain column of the scanned relation.
pub(super) unsafe fn column_of(node: *mut pg_sys::Node, relid: u32) -> Option<i16> {
    let var = var_of(node)?;
    ((*var).varno as u32 == relid && (*var).varlevelsup == 0 && (*var).varattno > 0)
        .then(|| (*var).varattno)
}

/// Whether an expression can be evaluated before the scan: it reads nothing
/// of the scanned relation and is not volatile.
unsafe fn is_outside_value(
    root: *mut pg_sys::PlannerInfo,
    node: *mut pg_sys::Node,
    relid: u32,
) -> bool {
    !pg_sys::bms_is_member(relid as i32, pg_sys::pull_varnos(root, node))
        && !pg_sys::contain_volatile_functions(node)
}

/// A comparison value: a constant becomes a literal now; anything else a
/// parameter evaluated at execution.
pub(super) unsafe fn operand(
    node: *mut pg_sys::Node,
    element: bool,
) -> Option<(Operand, ValueFamily, Option<*mut pg_sys::Node>)> {
    let type_oid = pg_sys::exprType(node);
    let value_type = if element {
        pg_sys::get_element_type(type_oid)
    } else {
        type_oid
    };
    let fam = values::family(value_type);
    if pgrx::is_a(node, pg_sys::NodeTag::T_Const) {
        let c = node as *mut pg_sys::Const;
        if (*c).constisnull {
            // A comparison with NULL is never true; PostgreSQL sees to that locally.
            return None;
        }
        let lit = values::literal((*c).constvalue, false, type_oid)?;
        return Some((Operand::Literal(lit), fam, None));
    }
    Some((Operand::Param(usize::MAX), fam, Some(node)))
}

#[derive(Clone)]
pub(super) struct Classified {
    pub(super) pushed: Pushed,
    pub(super) param: Option<*mut pg_sys::Node>,
}

pub(super) unsafe fn classify(
    root: *mut pg_sys::PlannerInfo,
    relid: u32,
    table: &Table,
    clause: *mut pg_sys::Node,
) -> Option<Classified> {
    let with = |pushed: Pushed, param: Option<*mut pg_sys::Node>| {
        // A parameter's value is unknown when planning; keep it checked locally.
        let exact = pushed.exact && param.is_none();
        Classified {
            pushed: Pushed { exact, ..pushed },
            param,
        }
    };
    if pgrx::is_a(clause, pg_sys::NodeTag::T_OpExpr) {
        let op = clause as *mut pg_sys::OpExpr;
        let args = list_items::<pg_sys::Node>((*op).args);
        if args.len() != 2 || (*op).opno.to_u32() >= pg_sys::FirstNormalObjectId {
            return None;
        }
        let mut pg_op = PgOp::from_name(&text_of(pg_sys::get_opname((*op).opno)))?;
        let (attno, other) = match (column_of(args[0], relid), column_of(args[1], relid)) {
            (Some(a), _) => (a, args[1]),
            (None, Some(a)) => {
                pg_op = pg_op.commuted()?;
                (a, args[0])
            }
            _ => return None,
        };
        if !is_outside_value(root, other, relid) {
            return None;
        }
        let (value, fam, param) = operand(other, false)?;
        return pushdown::comparison(&facts(table, attno)?, pg_op, value, fam)
            .map(|p| with(p, param));
    }
    if pgrx::is_a(clause, pg_sys::NodeTag::T_ScalarArrayOpExpr) {
        let op = clause as *mut pg_sys::ScalarArrayOpExpr;
        let args = list_items::<pg_sys::Node>((*op).args);
        if args.len() != 2 || (*op).opno.to_u32() >= pg_sys::FirstNormalObjectId {
            return None;
        }
        let negated = match (
            text_of(pg_sys::get_opname((*op).opno)).as_str(),
            (*op).useOr,
        ) {
            ("=", true) => false,
            ("<>", false) => true,
            _ => return None,
        };
        let attno = column_of(args[0], relid)?;
        if !is_outside_value(root, args[1], relid) {
            return None;
        }
        let (values, fam, param) = operand(args[1], true)?;
        return pushdown::in_list(&facts(table, attno)?, negated, values, fam)
            .map(|p| with(p, param));
    }
    if pgrx::is_a(clause, pg_sys::NodeTag::T_NullTest) {
        let test = clause as *mut pg_sys::NullTest;
        let attno = column_of((*test).arg as *mut pg_sys::Node, relid)?;
        let negated = (*test).nulltesttype == pg_sys::NullTestType::IS_NOT_NULL;
        return pushdown::null_test(&facts(table, attno)?, negated).map(|p| with(p, None));
    }
    if let Some(attno) = column_of(clause, relid) {
        return pushdown::boolean_test(&facts(table, attno)?, true).map(|p| with(p, None));
    }
    if pgrx::is_a(clause, pg_sys::NodeTag::T_BoolExpr) {
        return compound(root, relid, table, clause as *mut pg_sys::BoolExpr);
    }
    None
}

/// OR, AND (as a side of an OR) and NOT, each side classified in turn.
/// Only sides without parameters go: a compound condition is sent as planned.
unsafe fn compound(
    root: *mut pg_sys::PlannerInfo,
    relid: u32,
    table: &Table,
    b: *mut pg_sys::BoolExpr,
) -> Option<Classified> {
    let args = list_items::<pg_sys::Node>((*b).args);
    let side = |arg: *mut pg_sys::Node| {
        classify(root, relid, table, arg)
            .filter(|c| c.param.is_none())
            .map(|c| c.pushed)
    };
    let pushed = match (*b).boolop {
        pg_sys::BoolExprType::NOT_EXPR if args.len() == 1 => match column_of(args[0], relid) {
            Some(attno) => pushdown::boolean_test(&facts(table, attno)?, false)?,
            None => pushdown::not(side(args[0])?)?,
        },
        pg_sys::BoolExprType::OR_EXPR => {
            pushdown::any(args.into_iter().map(side).collect::<Option<Vec<_>>>()?)
        }
        pg_sys::BoolExprType::AND_EXPR => pushdown::all(args.into_iter().map(side).collect())?,
        _ => return None,
    };
    Some(Classified {
        pushed,
        param: None,
    })
}

/// ORDER BY keys for the query's requested order, if Salesforce can produce it exactly.
pub(super) unsafe fn remote_order(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    table: &Table,
) -> Option<Vec<OrderKey>> {
    let pathkeys = list_items::<pg_sys::PathKey>((*root).query_pathkeys);
    if pathkeys.is_empty() {
        return None;
    }
    let relid = (*baserel).relid;
    let mut keys = Vec::with_capacity(pathkeys.len());
    for pk in pathkeys {
        let ec = (*pk).pk_eclass;
        if (*ec).ec_has_volatile {
            return None;
        }
        let member = list_items::<pg_sys::EquivalenceMember>((*ec).ec_members)
            .into_iter()
            .find(|em| pg_sys::bms_equal((**em).em_relids, (*baserel).relids))?;
        let attno = column_of((*member).em_expr as *mut pg_sys::Node, relid)?;
        let descending = (*pk).pk_strategy as u32 == pg_sys::BTGreaterStrategyNumber;
        keys.push(pushdown::sort_key(
            &facts(table, attno)?,
            descending,
            (*pk).pk_nulls_first,
        )?);
    }
    Some(keys)
}
