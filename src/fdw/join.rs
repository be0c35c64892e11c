//! Joins from a child's reference column to its parent's `id`, pushed to
//! Salesforce as relationship fields of one query on the child
//! (`SELECT LastName, Account.Name FROM Contact`). An inner join adds
//! `AccountId != null`; a left join keeps children without a parent. Joins
//! of joins follow relationships as deep as SOQL allows.

use super::classify::{column_of, rel_state, var_of, Classified, RelState};
use super::paths::scan_cost;
use super::plan::{plan_to_private, ScanColumn, ScanPlan};
use crate::error::OrRaise;
use crate::pg::{list_append, list_items};
use pgrx::pg_sys;
use pgrx::{pg_guard, PgMemoryContexts};
use salesforce_core::pushdown::{parent_relationship, MAX_RELATIONSHIP_DEPTH};
use salesforce_core::soql::{Condition, Soql};
use std::ptr::null_mut;

/// A relation of the join and how the child's query reaches it.
#[derive(Clone)]
struct Member {
    relid: u32,
    state: *const RelState,
    /// The relationship path from the child (`Account.Owner`), empty for the child.
    path: String,
}

impl Member {
    fn field(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }
}

/// What planning decided for a pushed join, kept in the join relation's `fdw_private`.
#[derive(Clone)]
struct Join {
    members: Vec<Member>,
    conditions: Vec<Condition>,
    /// Clauses checked on the joined rows.
    local: Vec<*mut pg_sys::RestrictInfo>,
}

impl Join {
    /// The member a column of the join belongs to.
    unsafe fn member_of(&self, var: *mut pg_sys::Var) -> Option<&Member> {
        self.members.iter().find(|m| m.relid == (*var).varno as u32)
    }
}

/// The members of one side: a base relation is a child alone; a join is as decided before.
unsafe fn side(rel: *mut pg_sys::RelOptInfo) -> Option<Join> {
    if (*rel).fdw_private.is_null() {
        return None;
    }
    match (*rel).reloptkind {
        pg_sys::RelOptKind::RELOPT_BASEREL => {
            let state = rel_state(rel);
            let mut join = Join {
                members: vec![Member {
                    relid: (*rel).relid,
                    state,
                    path: String::new(),
                }],
                conditions: vec![],
                local: vec![],
            };
            add_restrictions(&mut join, 0);
            Some(join)
        }
        pg_sys::RelOptKind::RELOPT_JOINREL => Some((*((*rel).fdw_private as *const Join)).clone()),
        _ => None,
    }
}

/// Sends a member's own conditions through its path, keeping what is
/// inexact or unsendable (or holds a parameter) for the joined rows.
unsafe fn add_restrictions(join: &mut Join, member: usize) {
    let m = join.members[member].clone();
    for (rinfo, classified) in &(*m.state).restrictions {
        match classified {
            Some(Classified {
                pushed,
                param: None,
            }) if !(**rinfo).pseudoconstant => {
                let condition = pushed.condition.clone();
                join.conditions.push(if m.path.is_empty() {
                    condition
                } else {
                    condition.through(&m.path)
                });
                if !pushed.exact {
                    join.local.push(*rinfo);
                }
            }
            _ => join.local.push(*rinfo),
        }
    }
}

/// For `member.reference = parent.id`: the field path of the reference, and
/// the relationship that reaches the parent.
unsafe fn key_clause(
    join: &Join,
    parent: *mut pg_sys::RelOptInfo,
    rinfo: *mut pg_sys::RestrictInfo,
) -> Option<(String, String)> {
    let clause = (*rinfo).clause as *mut pg_sys::Node;
    if !pgrx::is_a(clause, pg_sys::NodeTag::T_OpExpr) {
        return None;
    }
    let op = clause as *mut pg_sys::OpExpr;
    let args = list_items::<pg_sys::Node>((*op).args);
    if (*op).opno.to_u32() != pg_sys::TextEqualOperator || args.len() != 2 {
        return None;
    }
    let parent_state = rel_state(parent);
    let parent_relid = (*parent).relid;
    let is_parent_id = |node| {
        column_of(node, parent_relid)
            .and_then(|attno| parent_state.table.column(attno)?.field.as_ref())
            .is_some_and(|f| f.field_type == "id")
    };
    let (reference, _) = match (is_parent_id(args[1]), is_parent_id(args[0])) {
        (true, _) => (args[0], args[1]),
        (_, true) => (args[1], args[0]),
        _ => return None,
    };
    let m = join.member_of(var_of(reference)?)?;
    let field = (*m.state)
        .table
        .column(column_of(reference, m.relid)?)?
        .field
        .as_ref()?;
    let relationship = parent_relationship(
        &field.field_type,
        &field.reference_to,
        field.relationship_name.as_deref(),
        &parent_state.table.object,
    )?;
    Some((m.field(&field.name), m.field(&relationship)))
}

/// The pushed join of `outer` and its parent `inner`, if Salesforce can answer it exactly.
unsafe fn joined(
    root: *mut pg_sys::PlannerInfo,
    joinrel: *mut pg_sys::RelOptInfo,
    outer: *mut pg_sys::RelOptInfo,
    inner: *mut pg_sys::RelOptInfo,
    jointype: pg_sys::JoinType::Type,
    extra: *mut pg_sys::JoinPathExtraData,
) -> Option<Join> {
    let parse = (*root).parse;
    // Row locks and UPDATE or DELETE need a local plan to recheck rows: not pushed.
    if (*parse).commandType != pg_sys::CmdType::CMD_SELECT || !(*parse).rowMarks.is_null() {
        return None;
    }
    if (*inner).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL || (*inner).fdw_private.is_null() {
        return None;
    }
    let left = match jointype {
        pg_sys::JoinType::JOIN_INNER => false,
        pg_sys::JoinType::JOIN_LEFT => true,
        _ => return None,
    };
    let mut join = side(outer)?;
    let parent_state = rel_state(inner);
    let child_table = &(*join.members[0].state).table;
    if parent_state.table.server != child_table.server
        || parent_state.table.user != child_table.user
    {
        return None;
    }
    let mut key = None;
    let mut others = Vec::new();
    for rinfo in list_items::<pg_sys::RestrictInfo>((*extra).restrictlist) {
        match key_clause(&join, inner, rinfo) {
            // A left join's key is its ON clause; an inner join's clauses all filter.
            Some(found) if key.is_none() && !(left && (*rinfo).is_pushed_down) => key = Some(found),
            _ => others.push(rinfo),
        }
    }
    let (reference, path) = key?;
    if path.split('.').count() > MAX_RELATIONSHIP_DEPTH {
        return None;
    }
    if left {
        // Conditions on a left join's parent decide which parent matches, not which
        // child is kept; ON conditions beside the key likewise.
        if !parent_state.restrictions.is_empty() || others.iter().any(|r| !(**r).is_pushed_down) {
            return None;
        }
    } else {
        join.conditions.push(Condition::IsNull {
            field: reference,
            negated: true,
        });
    }
    join.members.push(Member {
        relid: (*inner).relid,
        state: parent_state,
        path,
    });
    let parent = join.members.len() - 1;
    add_restrictions(&mut join, parent);
    join.local.extend(others);
    // Every output must be a plain column of a member.
    for expr in list_items::<pg_sys::Node>((*(*joinrel).reltarget).exprs) {
        let var = var_of(expr)?;
        if (*var).varattno <= 0 || join.member_of(var).is_none() {
            return None;
        }
    }
    Some(join)
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_join_paths(
    root: *mut pg_sys::PlannerInfo,
    joinrel: *mut pg_sys::RelOptInfo,
    outerrel: *mut pg_sys::RelOptInfo,
    innerrel: *mut pg_sys::RelOptInfo,
    jointype: pg_sys::JoinType::Type,
    extra: *mut pg_sys::JoinPathExtraData,
) {
    if !(*joinrel).fdw_private.is_null() || !(*joinrel).lateral_relids.is_null() {
        return;
    }
    let Some(join) = joined(root, joinrel, outerrel, innerrel, jointype, extra) else {
        return;
    };
    let rows = (*joinrel).rows;
    let (startup, total) = scan_cost(rows);
    (*joinrel).fdw_private = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(join)
        as *mut std::ffi::c_void;
    let path = pg_sys::create_foreign_join_path(
        root,
        joinrel,
        null_mut(),
        rows,
        startup,
        total,
        null_mut(),
        null_mut(),
        null_mut(),
        null_mut(),
    );
    pg_sys::add_path(joinrel, path as *mut pg_sys::Path);
}

/// The plan for a path made by `get_foreign_join_paths`.
pub(super) unsafe fn join_plan(
    joinrel: *mut pg_sys::RelOptInfo,
    tlist: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    let join = &*((*joinrel).fdw_private as *const Join);
    let local = join
        .local
        .iter()
        .fold(null_mut(), |list, r| list_append(list, *r));
    let local_exprs = pg_sys::extract_actual_clauses(local, false);
    // The scan returns the columns the join's output (by now, perhaps the
    // query's final expressions) and the local checks read.
    let output = (*(*joinrel).reltarget).exprs as *mut pg_sys::Node;
    let scan_tlist = [output, local_exprs as *mut pg_sys::Node]
        .into_iter()
        .fold(null_mut(), |tlist, exprs| {
            pg_sys::add_to_flat_tlist(tlist, pg_sys::pull_var_clause(exprs, 0))
        });
    let child = &join.members[0];
    let mut soql = Soql {
        object: (*child.state).table.object.clone(),
        fields: vec!["Id".into()],
        conditions: join.conditions.clone(),
        ..Soql::default()
    };
    let mut columns = Vec::new();
    for (i, entry) in list_items::<pg_sys::TargetEntry>(scan_tlist)
        .into_iter()
        .enumerate()
    {
        let var = (*entry).expr as *mut pg_sys::Var;
        let member = join
            .member_of(var)
            .expect("the join's columns are its members'");
        let table = &(*member.state).table;
        let field = member.field(&table.field_of((*var).varattno).or_raise().name);
        if !soql.fields.iter().any(|f| f.eq_ignore_ascii_case(&field)) {
            soql.fields.push(field.clone());
        }
        columns.push(ScanColumn {
            attno: (i + 1) as i16,
            field,
        });
    }
    let plan = ScanPlan::of(&(*child.state).table, soql, columns, vec![]);
    pg_sys::make_foreignscan(
        tlist,
        local_exprs,
        0,
        null_mut(),
        plan_to_private(&plan),
        scan_tlist,
        null_mut(),
        outer_plan,
    )
}
