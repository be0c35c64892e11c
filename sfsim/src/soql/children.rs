//! Parent-to-child subqueries: `SELECT Name, (SELECT LastName FROM Contacts)
//! FROM Account`. The FROM of a subquery names a child relationship of the
//! queried object, as its describe lists them.

use super::ast::{Query, SelectItem};
use super::error::SoqlError;
use super::exec::{matches, sort_records};
use super::plan::{only_root_aggregates, Filter, Node, Planner, SortKey};
use crate::org::{Org, Record};
use std::sync::Arc;

/// A planned subquery: the child records of each parent record.
#[derive(Debug, Clone)]
pub struct ChildQuery {
    /// The relationship name as the schema spells it (`Contacts`).
    pub relationship: String,
    /// The child object and its lookup pointing at the parent.
    pub object: usize,
    pub reference: usize,
    pub nodes: Vec<Node>,
    pub filter: Option<Filter>,
    pub order: Vec<SortKey>,
    pub limit: Option<u64>,
    pub offset: u64,
    /// queryAll: soft-deleted children are included too.
    pub include_deleted: bool,
}

fn unknown_relationship(soql: &str, at: usize, name: &str) -> SoqlError {
    SoqlError::at(
        "INVALID_TYPE",
        soql,
        at,
        format!("Didn't understand relationship '{name}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."),
    )
}

impl Planner<'_> {
    /// The child relationship of the queried object named `name`, as (child
    /// object, lookup field), among those the user can see.
    fn child_relationship(&self, name: &str) -> Option<(usize, usize)> {
        self.org
            .child_relationships(self.object)
            .into_iter()
            .filter(|(child, field)| self.access.can_see(*child, *field))
            .find(|(child, field)| {
                self.def(*child).fields[*field]
                    .child_relationship_name
                    .as_deref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(name))
            })
    }

    pub(super) fn child_query(&self, q: &Query) -> Result<ChildQuery, SoqlError> {
        let (object, reference) = self
            .child_relationship(&q.from)
            .ok_or_else(|| unknown_relationship(self.soql, q.from_at, &q.from))?;
        let child = Planner {
            org: self.org,
            soql: self.soql,
            object,
            access: self.access,
        };
        let aggregate_at = q.select.iter().find_map(|s| match s {
            SelectItem::Aggregate { at, .. } | SelectItem::Count { at } => Some(*at),
            _ => None,
        });
        if let Some(at) = aggregate_at.or(q.group_by.first().map(|p| p.at)) {
            return Err(only_root_aggregates(self.soql, at));
        }
        if q.having.is_some() {
            return Err(only_root_aggregates(self.soql, q.from_at));
        }
        let selection = child.selection(&q.select, q.limit, false)?;
        let filter = q.filter.as_ref().map(|c| child.filter(c)).transpose()?;
        let order = child.sort_keys(&q.order_by)?;
        let relationship = self.def(object).fields[reference]
            .child_relationship_name
            .clone()
            .unwrap_or_default();
        Ok(ChildQuery {
            relationship,
            object,
            reference,
            nodes: selection.nodes,
            filter,
            order,
            limit: q.limit,
            offset: q.offset.map(|(n, _)| n).unwrap_or(0),
            include_deleted: false,
        })
    }
}

/// The children of the parent record `parent_id`, filtered, ordered and
/// limited as the subquery says.
pub fn child_records(org: &Org, child: &ChildQuery, parent_id: &str) -> Vec<Arc<Record>> {
    let def = org.def(child.object);
    let rows: Vec<Arc<Record>> = org.objects[child.object]
        .records
        .values()
        .filter(|r| r.get(child.reference).as_str() == Some(parent_id))
        .filter(|r| child.include_deleted || !r.is_deleted(def))
        .filter(|r| {
            child
                .filter
                .as_ref()
                .is_none_or(|f| matches(org, def, r, f))
        })
        .cloned()
        .collect();
    let mut rows = sort_records(org, def, rows, &child.order);
    let start = (child.offset as usize).min(rows.len());
    rows.drain(..start);
    if let Some(limit) = child.limit {
        rows.truncate(limit as usize);
    }
    rows
}

/// Makes every subquery of a queryAll call include soft-deleted children.
pub fn include_deleted_children(nodes: &mut [Node]) {
    for node in nodes {
        if let Node::Children(child) = node {
            Arc::make_mut(child).include_deleted = true;
        }
    }
}
