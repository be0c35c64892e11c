//! Planning a foreign scan: which conditions, sort and limit Salesforce
//! receives, which stay local, and the plan the executor will run.
//!
//! The plan is stored as JSON text in `fdw_private`, so cached plans (PL/pgSQL,
//! prepared statements) copy and reuse it safely; parameter expressions go in
//! `fdw_exprs` and are evaluated at every (re)scan.

use super::connection;
use super::error::SalesforceFdwError;
use super::pg::{list_append, list_items, pg_string, text_of};
use super::pushdown::{self, FieldFacts, PgOp, Pushed, ValueFamily};
use super::table::Table;
use super::values;
use crate::soql::{Condition, Literal, Operand, OrderKey, Soql};
use pgrx::pg_sys::{self, panic::ErrorReport, panic::ErrorReportable, Oid};
use pgrx::{pg_guard, PgMemoryContexts};
use serde::{Deserialize, Serialize};
use std::ptr::null_mut;

/// Rows assumed for a table without an `estimated_rows` option.
const DEFAULT_ROWS: f64 = 1000.0;
/// A round trip to Salesforce, in planner cost units.
const REQUEST_COST: f64 = 100.0;
const PAGE_ROWS: f64 = 2000.0;
const ROW_COST: f64 = 0.02;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ScanColumn {
    pub attno: i16,
    pub field: String,
}

/// What the executor runs.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ScanPlan {
    pub server: u32,
    pub user: u32,
    pub soql: Soql,
    /// The type of each `fdw_exprs` entry, to turn its value into a literal.
    pub param_types: Vec<u32>,
    pub columns: Vec<ScanColumn>,
}

pub(super) trait OrReport<T> {
    fn or_report(self) -> T;
}

impl<T> OrReport<T> for Result<T, SalesforceFdwError> {
    fn or_report(self) -> T {
        self.map_err(ErrorReport::from).unwrap_or_report()
    }
}

struct RelState {
    table: Table,
}

unsafe fn rel_state<'a>(baserel: *mut pg_sys::RelOptInfo) -> &'a RelState {
    &*((*baserel).fdw_private as *const RelState)
}

fn facts(table: &Table, attno: i16) -> Option<FieldFacts<'_>> {
    let f = table.column(attno)?.field.as_ref()?;
    Some(FieldFacts {
        api_name: &f.name,
        salesforce_type: &f.field_type,
        filterable: f.filterable,
        sortable: f.sortable,
    })
}

/// The attribute number of a plain column of the scanned relation.
unsafe fn column_of(node: *mut pg_sys::Node, relid: u32) -> Option<i16> {
    let mut node = node;
    if pgrx::is_a(node, pg_sys::NodeTag::T_RelabelType) {
        node = (*(node as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
    }
    if !pgrx::is_a(node, pg_sys::NodeTag::T_Var) {
        return None;
    }
    let var = node as *mut pg_sys::Var;
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
unsafe fn operand(
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

struct Classified {
    pushed: Pushed,
    param: Option<*mut pg_sys::Node>,
}

unsafe fn classify(
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
        let b = clause as *mut pg_sys::BoolExpr;
        let args = list_items::<pg_sys::Node>((*b).args);
        if (*b).boolop == pg_sys::BoolExprType::NOT_EXPR && args.len() == 1 {
            let attno = column_of(args[0], relid)?;
            return pushdown::boolean_test(&facts(table, attno)?, false).map(|p| with(p, None));
        }
    }
    None
}

/// ORDER BY keys for the query's requested order, if Salesforce can produce it exactly.
unsafe fn remote_order(
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

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_rel_size(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    relid: Oid,
) {
    let rte = *(*root).simple_rte_array.add((*baserel).relid as usize);
    let user = connection::effective_user((*rte).checkAsUser);
    let table = Table::load(relid, user).or_report();
    let selectivity = pg_sys::clauselist_selectivity(
        root,
        (*baserel).baserestrictinfo,
        0,
        pg_sys::JoinType::JOIN_INNER,
        null_mut(),
    );
    let tuples = table.estimated_rows.unwrap_or(DEFAULT_ROWS);
    (*baserel).rows = (tuples * selectivity).round().max(1.0);
    let state = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(RelState { table });
    (*baserel).fdw_private = state as *mut std::ffi::c_void;
}

/// The relation's conditions when every one is pushed exactly and needs no
/// parameter: then Salesforce alone decides which rows qualify.
unsafe fn exact_conditions(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    table: &Table,
) -> Option<Vec<Condition>> {
    list_items::<pg_sys::RestrictInfo>((*rel).baserestrictinfo)
        .into_iter()
        .map(|rinfo| {
            match classify(
                root,
                (*rel).relid,
                table,
                (*rinfo).clause as *mut pg_sys::Node,
            ) {
                Some(Classified {
                    pushed,
                    param: None,
                }) if pushed.exact && !(*rinfo).pseudoconstant => Some(pushed.condition),
                _ => None,
            }
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
    if exact_conditions(root, input_rel, &rel_state(input_rel).table).is_none() {
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

unsafe fn count_plan(
    root: *mut pg_sys::PlannerInfo,
    upper: *mut pg_sys::RelOptInfo,
    tlist: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    let input = (*upper).fdw_private as *mut pg_sys::RelOptInfo;
    let table = &rel_state(input).table;
    let conditions = exact_conditions(root, input, table).expect("checked when the path was made");
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

fn plan_to_private(plan: &ScanPlan) -> *mut pg_sys::List {
    let json = serde_json::to_string(plan).expect("a plan serializes");
    unsafe { list_append(null_mut(), pg_sys::makeString(pg_string(&json))) }
}

fn scan_cost(rows: f64) -> (f64, f64) {
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

fn set_param(condition: &mut Condition, index: usize) {
    match condition {
        Condition::Compare { value, .. }
        | Condition::Like { pattern: value, .. }
        | Condition::In { values: value, .. } => *value = Operand::Param(index),
        Condition::IsNull { .. } => {}
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
    if (*baserel).reloptkind == pg_sys::RelOptKind::RELOPT_UPPER_REL {
        return count_plan(root, baserel, tlist, outer_plan);
    }
    let table = &rel_state(baserel).table;
    let relid = (*baserel).relid;
    let mut soql = Soql {
        object: table.object.clone(),
        fields: vec![],
        count: false,
        conditions: vec![],
        order_by: vec![],
        limit: None,
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
        match classify(root, relid, table, clause) {
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
        let field = table.field_of(attno).or_report().name.clone();
        if !soql.fields.iter().any(|f| f.eq_ignore_ascii_case(&field)) {
            soql.fields.push(field.clone());
        }
        columns.push(ScanColumn { attno, field });
    }
    let plan = ScanPlan {
        server: table.server.to_u32(),
        user: table.user.to_u32(),
        soql,
        param_types,
        columns,
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
