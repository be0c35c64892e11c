//! Checks a parsed statement against the org's schema and turns it into a
//! plan: resolved field paths, typed operands and the shape of the output.

use super::ast::*;
use super::children::ChildQuery;
use super::error::SoqlError;
use super::lexer::decode_string;
use crate::access::{FieldAccess, EVERYTHING};
use crate::ids;
use crate::org::Org;
use crate::schema::{FieldDef, FieldType, ObjectDef};
use crate::value::{parse_date, parse_datetime, parse_time};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use std::sync::Arc;

pub const MAX_STATEMENT_CHARS: usize = 100_000;
pub const MAX_LITERAL_CHARS: usize = 4_000;
pub const MAX_OFFSET: u64 = 2_000;

/// A field reached from the queried object through zero or more lookups.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    /// Reference fields followed, each on the object the previous one reached.
    pub hops: Vec<usize>,
    /// The object the final field is typed against.
    pub object: usize,
    pub field: usize,
    /// Whether a polymorphic lookup is on the way, so the final field must be
    /// found by name on whatever object the record turns out to be.
    pub by_name: bool,
}

#[derive(Debug, Clone)]
pub enum Node {
    Field {
        name: String,
        index: usize,
    },
    Parent {
        relationship: String,
        reference: usize,
        object: usize,
        children: Vec<Node>,
    },
    /// A parent-to-child subquery, answered per record.
    Children(Arc<ChildQuery>),
}

/// One selected field in SELECT order, named as the Bulk API names its
/// CSV column: relationship names, then the field (`Account.Owner.Name`).
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub path: FieldPath,
}

#[derive(Debug, Clone)]
pub enum Projection {
    Count,
    Fields(Vec<Node>),
    /// GROUP BY or aggregate functions: rows of `AggregateResult`.
    Aggregate(Box<super::aggregate::AggregatePlan>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Null,
    Bool(bool),
    Number(f64),
    /// Lower-cased: Salesforce compares text case-insensitively.
    Text(String),
    Id(String),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Time(NaiveTime),
}

#[derive(Debug, Clone, PartialEq)]
pub enum LikeTok {
    AnyRun,
    AnyChar,
    Char(char),
}

#[derive(Debug, Clone)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Cmp {
        path: FieldPath,
        op: CmpOp,
        operand: Operand,
        multi: bool,
    },
    In {
        path: FieldPath,
        negated: bool,
        operands: Vec<Operand>,
        multi: bool,
    },
    Like {
        path: FieldPath,
        pattern: Vec<LikeTok>,
    },
    Includes {
        path: FieldPath,
        excludes: bool,
        sets: Vec<Vec<String>>,
    },
}

#[derive(Debug, Clone)]
pub struct SortKey {
    pub path: FieldPath,
    pub descending: bool,
    pub nulls_last: bool,
    /// Ids sort by their exact value; other text ignores case.
    pub exact: bool,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub object: usize,
    pub def: Arc<ObjectDef>,
    pub projection: Projection,
    /// The selected fields in SELECT order; empty for `COUNT()`.
    pub columns: Vec<Column>,
    pub filter: Option<Filter>,
    pub order: Vec<SortKey>,
    pub limit: Option<u64>,
    pub offset: u64,
    /// Long text areas selected; two or more cap a page at 200 records.
    pub long_text_fields: usize,
}

pub(super) struct Planner<'a> {
    pub(super) org: &'a Org,
    pub(super) soql: &'a str,
    pub(super) object: usize,
    pub(super) access: &'a FieldAccess,
}

fn invalid_field(soql: &str, at: usize, name: &str, entity: &str) -> SoqlError {
    SoqlError::at(
        "INVALID_FIELD",
        soql,
        at,
        format!("No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."),
    )
}

impl<'a> Planner<'a> {
    pub(super) fn def(&self, object: usize) -> &'a Arc<ObjectDef> {
        self.org.def(object)
    }

    pub(super) fn resolve(&self, path: &Path) -> Result<FieldPath, SoqlError> {
        let root = self.def(self.object);
        let mut parts: &[String] = &path.parts;
        if parts.len() > 1
            && parts[0].eq_ignore_ascii_case(&root.name)
            && root.relationship_field(&parts[0]).is_none()
        {
            parts = &parts[1..];
        }
        let mut object = self.object;
        let mut hops = Vec::new();
        let mut by_name = false;
        for rel in &parts[..parts.len() - 1] {
            let def = self.def(object);
            let visible = def
                .relationship_field(rel)
                .filter(|i| self.access.can_see(object, *i));
            let reference = visible.ok_or_else(|| {
                SoqlError::at(
                    "INVALID_FIELD",
                    self.soql,
                    path.at,
                    format!("Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."),
                )
            })?;
            let targets = &def.fields[reference].reference_to;
            by_name |= targets.len() > 1;
            object = targets
                .first()
                .and_then(|t| self.org.object(t))
                .ok_or_else(|| invalid_field(self.soql, path.at, rel, &def.name))?;
            hops.push(reference);
        }
        let last = parts.last().expect("a path has a part");
        let def = self.def(object);
        let field = def
            .field_index(last)
            .filter(|i| self.access.can_see(object, *i))
            .ok_or_else(|| invalid_field(self.soql, path.at, last, &def.name))?;
        // Below a polymorphic lookup the field is read by name from whatever
        // object the record turns out to be, so no object may hide a field
        // of that name from the user.
        if by_name && !self.visible_on_every_object(last) {
            return Err(invalid_field(self.soql, path.at, last, &def.name));
        }
        Ok(FieldPath {
            hops,
            object,
            field,
            by_name,
        })
    }

    fn visible_on_every_object(&self, field: &str) -> bool {
        self.org.objects.iter().enumerate().all(|(object, data)| {
            data.def
                .field_index(field)
                .is_none_or(|i| self.access.can_see(object, i))
        })
    }

    pub(super) fn field_def(&self, path: &FieldPath) -> &'a FieldDef {
        &self.def(path.object).fields[path.field]
    }

    pub(super) fn column(&self, path: FieldPath) -> Column {
        let mut parts = Vec::with_capacity(path.hops.len() + 1);
        let mut object = self.object;
        for hop in &path.hops {
            let reference = &self.def(object).fields[*hop];
            parts.push(reference.relationship_name.clone().unwrap_or_default());
            let target = &reference.reference_to[0];
            object = self.org.object(target).expect("resolved before");
        }
        parts.push(self.field_def(&path).name.clone());
        Column {
            name: parts.join("."),
            path,
        }
    }

    pub(super) fn add_node(
        &self,
        nodes: &mut Vec<Node>,
        path: &FieldPath,
        depth: usize,
        display: &Path,
    ) -> Result<(), SoqlError> {
        if depth == path.hops.len() {
            let f = self.field_def(path);
            if nodes.iter().any(
                |n| matches!(n, Node::Field { name, .. } if name.eq_ignore_ascii_case(&f.name)),
            ) {
                return Err(SoqlError::malformed(
                    self.soql,
                    display.at,
                    format!("duplicate field selected: {}", display.dotted()),
                ));
            }
            nodes.push(Node::Field {
                name: f.name.clone(),
                index: path.field,
            });
            return Ok(());
        }
        let owner = if depth == 0 {
            self.object
        } else {
            self.parent_object(path, depth - 1)
        };
        let reference = path.hops[depth];
        let ref_field = &self.def(owner).fields[reference];
        let relationship = ref_field.relationship_name.clone().unwrap_or_default();
        let position = nodes
            .iter()
            .position(|n| matches!(n, Node::Parent { reference: r, .. } if *r == reference));
        let index = match position {
            Some(i) => i,
            None => {
                let object = self.parent_object(path, depth);
                nodes.push(Node::Parent {
                    relationship,
                    reference,
                    object,
                    children: vec![],
                });
                nodes.len() - 1
            }
        };
        let Node::Parent { children, .. } = &mut nodes[index] else {
            unreachable!("a parent node was just found or made")
        };
        self.add_node(children, path, depth + 1, display)
    }

    /// The object reached after following hops `0..=depth`.
    fn parent_object(&self, path: &FieldPath, depth: usize) -> usize {
        let mut object = self.object;
        for hop in &path.hops[..=depth] {
            let target = &self.def(object).fields[*hop].reference_to[0];
            object = self.org.object(target).expect("resolved before");
        }
        object
    }

    pub(super) fn type_error(&self, f: &FieldDef, at: usize) -> SoqlError {
        let (kind, quoted) = match f.ftype {
            FieldType::Boolean => ("boolean", false),
            FieldType::Int | FieldType::Long => ("integer", false),
            FieldType::Double | FieldType::Currency | FieldType::Percent => ("double", false),
            FieldType::Date => ("date", false),
            FieldType::Datetime => ("dateTime", false),
            FieldType::Time => ("time", false),
            _ => ("string", true),
        };
        let quoting = if quoted {
            "should be enclosed in quotes"
        } else {
            "should not be enclosed in quotes"
        };
        SoqlError::at(
            "INVALID_FIELD",
            self.soql,
            at,
            format!(
                "value of filter criterion for field '{}' must be of type {kind} and {quoting}",
                f.name
            ),
        )
    }

    pub(super) fn string_literal(
        &self,
        raw: &str,
        at: usize,
        like: bool,
    ) -> Result<String, SoqlError> {
        let s = decode_string(raw, like).map_err(|m| SoqlError::malformed(self.soql, at, m))?;
        if s.chars().count() > MAX_LITERAL_CHARS {
            return Err(SoqlError::malformed(
                self.soql,
                at,
                format!(
                    "String literal exceeds the maximum length of {MAX_LITERAL_CHARS} characters"
                ),
            ));
        }
        Ok(s)
    }

    pub(super) fn operand(
        &self,
        f: &FieldDef,
        lit: &Literal,
        at: usize,
    ) -> Result<Operand, SoqlError> {
        let wrong = || self.type_error(f, at);
        Ok(match (lit, f.ftype) {
            (Literal::Null, FieldType::Boolean) => Operand::Bool(false),
            (Literal::Null, _) => Operand::Null,
            (Literal::Str(raw), FieldType::Id | FieldType::Reference) => {
                let s = self.string_literal(raw, at, false)?;
                match ids::canonical(&s) {
                    Some(id) => Operand::Id(id),
                    None => {
                        return Err(SoqlError::at(
                            "INVALID_QUERY_FILTER_OPERATOR",
                            self.soql,
                            at,
                            format!("invalid ID field: {s}"),
                        ))
                    }
                }
            }
            (Literal::Str(raw), t) if t.is_textual() => {
                Operand::Text(self.string_literal(raw, at, false)?.to_lowercase())
            }
            (Literal::Bool(b), FieldType::Boolean) => Operand::Bool(*b),
            (Literal::Number(n), t) if t.is_numeric() => {
                Operand::Number(n.parse().map_err(|_| wrong())?)
            }
            (Literal::Date(d), FieldType::Date) => Operand::Date(parse_date(d).ok_or_else(wrong)?),
            (Literal::DateTime(d), FieldType::Datetime) => {
                Operand::DateTime(parse_datetime(d).ok_or_else(wrong)?)
            }
            (Literal::Time(t), FieldType::Time) => Operand::Time(parse_time(t).ok_or_else(wrong)?),
            _ => return Err(wrong()),
        })
    }

    pub(super) fn bad_operator(&self, f: &FieldDef, at: usize) -> SoqlError {
        let kind = match f.ftype {
            FieldType::Id | FieldType::Reference => "id",
            t => t.name(),
        };
        SoqlError::at(
            "INVALID_QUERY_FILTER_OPERATOR",
            self.soql,
            at,
            format!("invalid operator on {kind} field"),
        )
    }

    pub(super) fn filterable(&self, path: &Path) -> Result<(FieldPath, &'a FieldDef), SoqlError> {
        let resolved = self.resolve(path)?;
        let f = self.field_def(&resolved);
        if !f.filterable {
            return Err(SoqlError::at(
                "INVALID_FIELD",
                self.soql,
                path.at,
                format!("field '{}' can not be filtered in a query call", f.name),
            ));
        }
        Ok((resolved, f))
    }

    pub(super) fn filter(&self, cond: &Cond) -> Result<Filter, SoqlError> {
        Ok(match cond {
            Cond::And(parts) => Filter::And(
                parts
                    .iter()
                    .map(|c| self.filter(c))
                    .collect::<Result<_, _>>()?,
            ),
            Cond::Or(parts) => Filter::Or(
                parts
                    .iter()
                    .map(|c| self.filter(c))
                    .collect::<Result<_, _>>()?,
            ),
            Cond::Not(inner) => Filter::Not(Box::new(self.filter(inner)?)),
            Cond::Cmp {
                lhs,
                op: CmpOp::Like,
                value,
                value_at,
            } => {
                let path = where_field(self.soql, lhs)?;
                let (resolved, f) = self.filterable(path)?;
                let text_like = f.ftype.is_textual()
                    && !matches!(
                        f.ftype,
                        FieldType::Id | FieldType::Reference | FieldType::Multipicklist
                    );
                if !text_like {
                    return Err(self.bad_operator(f, path.at));
                }
                let Literal::Str(raw) = value else {
                    return Err(self.type_error(f, *value_at));
                };
                let pattern = self.string_literal(raw, *value_at, true)?;
                Filter::Like {
                    path: resolved,
                    pattern: like_pattern(&pattern),
                }
            }
            Cond::Cmp {
                lhs,
                op,
                value,
                value_at,
            } => {
                let path = where_field(self.soql, lhs)?;
                let (resolved, f) = self.filterable(path)?;
                let ordering = !matches!(op, CmpOp::Eq | CmpOp::Ne);
                if ordering && matches!(f.ftype, FieldType::Boolean | FieldType::Multipicklist) {
                    return Err(self.bad_operator(f, path.at));
                }
                let operand = self.operand(f, value, *value_at)?;
                Filter::Cmp {
                    path: resolved,
                    op: *op,
                    operand,
                    multi: f.ftype == FieldType::Multipicklist,
                }
            }
            Cond::In {
                lhs,
                negated,
                values,
            } => {
                let path = where_field(self.soql, lhs)?;
                let (resolved, f) = self.filterable(path)?;
                if f.ftype == FieldType::Multipicklist {
                    return Err(self.bad_operator(f, path.at));
                }
                let operands = values
                    .iter()
                    .map(|(l, at)| self.operand(f, l, *at))
                    .collect::<Result<_, _>>()?;
                Filter::In {
                    path: resolved,
                    negated: *negated,
                    operands,
                    multi: false,
                }
            }
            Cond::Includes {
                lhs,
                excludes,
                values,
            } => {
                let path = where_field(self.soql, lhs)?;
                let (resolved, f) = self.filterable(path)?;
                if f.ftype != FieldType::Multipicklist {
                    return Err(SoqlError::at(
                        "INVALID_QUERY_FILTER_OPERATOR",
                        self.soql,
                        path.at,
                        "includes or excludes operator only valid on multipicklist field",
                    ));
                }
                let mut sets = Vec::new();
                for (lit, at) in values {
                    let Literal::Str(raw) = lit else {
                        return Err(self.type_error(f, *at));
                    };
                    sets.push(split_multipicklist(&self.string_literal(raw, *at, false)?));
                }
                Filter::Includes {
                    path: resolved,
                    excludes: *excludes,
                    sets,
                }
            }
        })
    }

    pub(super) fn fields_expansion(&self, kind: FieldsKind) -> Vec<Path> {
        self.def(self.object)
            .fields
            .iter()
            .enumerate()
            .filter(|(i, _)| self.access.can_see(self.object, *i))
            .map(|(_, f)| f)
            .filter(|f| match kind {
                FieldsKind::All => true,
                FieldsKind::Standard => !f.custom,
                FieldsKind::Custom => f.custom,
            })
            .map(|f| Path {
                parts: vec![f.name.clone()],
                at: 0,
            })
            .collect()
    }
}

/// `'a;b'` means a and b, in any order, ignoring case.
pub fn split_multipicklist(s: &str) -> Vec<String> {
    let mut parts: Vec<String> = s
        .split(';')
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    parts.sort();
    parts.dedup();
    parts
}

pub(super) fn like_pattern(p: &str) -> Vec<LikeTok> {
    let mut out = Vec::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '%' => LikeTok::AnyRun,
            '_' => LikeTok::AnyChar,
            '\\' => LikeTok::Char(chars.next().unwrap_or('\\')),
            c => LikeTok::Char(c),
        });
    }
    for t in out.iter_mut() {
        if let LikeTok::Char(c) = t {
            *c = c.to_lowercase().next().unwrap_or(*c);
        }
    }
    out
}

/// The error for a FROM object the org does not have.
pub fn unknown_object(soql: &str, at: usize, name: &str) -> SoqlError {
    SoqlError::at(
        "INVALID_TYPE",
        soql,
        at,
        format!("sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."),
    )
}

/// Plans a statement as a user who sees every field.
pub fn plan(org: &Org, soql: &str) -> Result<Plan, SoqlError> {
    plan_as(org, soql, &EVERYTHING)
}

/// The field a WHERE condition is about: aggregates belong in HAVING.
fn where_field<'q>(soql: &str, lhs: &'q Expr) -> Result<&'q Path, SoqlError> {
    match lhs {
        Expr::Field(path) => Ok(path),
        Expr::Aggregate { at, .. } => Err(SoqlError::malformed(
            soql,
            *at,
            "Aggregate functions are not allowed in the WHERE clause; use HAVING",
        )),
    }
}

/// The error for an aggregate where only plain fields may stand.
pub(super) fn only_root_aggregates(soql: &str, at: usize) -> SoqlError {
    SoqlError::malformed(soql, at, "Only root queries support aggregate expressions")
}

/// A SELECT list's fields, as render nodes and CSV columns.
pub(super) struct Selection {
    pub nodes: Vec<Node>,
    pub columns: Vec<Column>,
    pub long_text_fields: usize,
}

impl<'a> Planner<'a> {
    /// Plans a SELECT list of fields, `FIELDS()` and (at the root) subqueries.
    pub(super) fn selection(
        &self,
        items: &[SelectItem],
        limit: Option<u64>,
        root: bool,
    ) -> Result<Selection, SoqlError> {
        let mut sel = Selection {
            nodes: Vec::new(),
            columns: Vec::new(),
            long_text_fields: 0,
        };
        for item in items {
            let paths = match item {
                SelectItem::Field { path, alias } => {
                    if let Some(alias) = alias {
                        return Err(SoqlError::malformed(
                            self.soql,
                            alias.at,
                            format!("unexpected token: '{}'", alias.name),
                        ));
                    }
                    vec![path.clone()]
                }
                SelectItem::Fields { kind, at } => {
                    if *kind != FieldsKind::Standard && limit.is_none_or(|l| l > 200) {
                        return Err(SoqlError::malformed(
                            self.soql,
                            *at,
                            "The SOQL FIELDS function must have a LIMIT of at most 200",
                        ));
                    }
                    self.fields_expansion(*kind)
                        .into_iter()
                        .map(|mut p| {
                            p.at = *at;
                            p
                        })
                        .collect()
                }
                SelectItem::Subquery { query, at } => {
                    if !root {
                        return Err(SoqlError::malformed(
                            self.soql,
                            *at,
                            "unexpected token: '('",
                        ));
                    }
                    let child = self.child_query(query)?;
                    if sel.nodes.iter().any(
                        |n| matches!(n, Node::Children(c) if c.relationship == child.relationship),
                    ) {
                        return Err(SoqlError::malformed(
                            self.soql,
                            query.from_at,
                            format!("duplicate field selected: {}", child.relationship),
                        ));
                    }
                    sel.nodes.push(Node::Children(Arc::new(child)));
                    continue;
                }
                SelectItem::Aggregate { at, .. } | SelectItem::Count { at } => {
                    return Err(only_root_aggregates(self.soql, *at))
                }
            };
            for p in paths {
                let resolved = self.resolve(&p)?;
                if self.field_def(&resolved).is_long_text() {
                    sel.long_text_fields += 1;
                }
                self.add_node(&mut sel.nodes, &resolved, 0, &p)?;
                sel.columns.push(self.column(resolved));
            }
        }
        Ok(sel)
    }

    pub(super) fn sortable(&self, path: &Path) -> Result<(FieldPath, &'a FieldDef), SoqlError> {
        let resolved = self.resolve(path)?;
        let f = self.field_def(&resolved);
        if !f.sortable {
            return Err(SoqlError::at(
                "INVALID_FIELD",
                self.soql,
                path.at,
                format!("field '{}' can not be sorted in a query call", f.name),
            ));
        }
        Ok((resolved, f))
    }

    /// ORDER BY keys of a query without aggregates.
    pub(super) fn sort_keys(&self, order_by: &[OrderItem]) -> Result<Vec<SortKey>, SoqlError> {
        let mut order = Vec::new();
        for item in order_by {
            let path = match &item.expr {
                Expr::Field(path) => path,
                Expr::Aggregate { at, .. } => return Err(only_root_aggregates(self.soql, *at)),
            };
            let (path, f) = self.sortable(path)?;
            let exact = matches!(f.ftype, FieldType::Id | FieldType::Reference);
            order.push(SortKey {
                path,
                descending: item.descending,
                nulls_last: item.nulls_last,
                exact,
            });
        }
        Ok(order)
    }
}

fn offset(soql: &str, offset: Option<(u64, usize)>) -> Result<u64, SoqlError> {
    match offset {
        Some((n, at)) if n > MAX_OFFSET => Err(SoqlError::at(
            "NUMBER_OUTSIDE_VALID_RANGE",
            soql,
            at,
            format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
        )),
        Some((n, _)) => Ok(n),
        None => Ok(0),
    }
}

/// Whether Salesforce treats the statement as an aggregate query.
fn is_aggregate(q: &Query) -> bool {
    let aggregate_order = q
        .order_by
        .iter()
        .any(|o| matches!(o.expr, Expr::Aggregate { .. }));
    !q.group_by.is_empty()
        || q.having.is_some()
        || aggregate_order
        || q.select
            .iter()
            .any(|s| matches!(s, SelectItem::Aggregate { .. }))
}

/// Plans a statement as a user who sees only the fields `access` lets it:
/// to it a hidden field is no column at all.
pub fn plan_as(org: &Org, soql: &str, access: &FieldAccess) -> Result<Plan, SoqlError> {
    if soql.chars().count() > MAX_STATEMENT_CHARS {
        return Err(SoqlError::plain(
            "MALFORMED_QUERY",
            format!("SOQL statements cannot be longer than {MAX_STATEMENT_CHARS} characters."),
        ));
    }
    let q = super::parser::parse(soql)?;
    let object = org
        .object(&q.from)
        .ok_or_else(|| unknown_object(soql, q.from_at, &q.from))?;
    let planner = Planner {
        org,
        soql,
        object,
        access,
    };
    let def = org.def(object).clone();

    let count_at = q.select.iter().find_map(|s| match s {
        SelectItem::Count { at } => Some(*at),
        _ => None,
    });
    if let Some(at) = count_at {
        if q.select.len() > 1 {
            return Err(SoqlError::malformed(
                soql,
                at,
                "COUNT() must be the only element in the SELECT list.",
            ));
        }
    }
    let mut plan = Plan {
        object,
        def,
        projection: Projection::Count,
        columns: Vec::new(),
        filter: None,
        order: Vec::new(),
        limit: q.limit,
        offset: 0,
        long_text_fields: 0,
    };
    let aggregate = is_aggregate(&q);
    if aggregate {
        let planned = planner.aggregate(&q, count_at.is_some())?;
        plan.projection = Projection::Aggregate(Box::new(planned));
    } else if count_at.is_none() {
        let sel = planner.selection(&q.select, q.limit, true)?;
        plan.projection = Projection::Fields(sel.nodes);
        plan.columns = sel.columns;
        plan.long_text_fields = sel.long_text_fields;
    }
    plan.filter = q.filter.as_ref().map(|c| planner.filter(c)).transpose()?;
    if !aggregate {
        plan.order = planner.sort_keys(&q.order_by)?;
    }
    plan.offset = offset(soql, q.offset)?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    fn hiding(org: &Org, object: &str, field: &str) -> FieldAccess {
        let o = org.object(object).unwrap();
        FieldAccess::hiding([(o, org.def(o).field_index(field).unwrap())])
    }

    #[test]
    fn a_field_hidden_on_any_object_of_a_polymorphic_lookup_is_refused() {
        let org = Org::new(Schema::builtin(), Utc::now());
        let soql = "SELECT Id, Who.Email FROM Task";
        assert!(plan_as(&org, soql, &EVERYTHING).is_ok());
        assert!(
            plan_as(&org, soql, &hiding(&org, "Lead", "Phone")).is_ok(),
            "other hidden fields do not matter"
        );
        // Who is typed as Contact, whose Email is visible, but a Lead's is not.
        let err = plan_as(&org, soql, &hiding(&org, "Lead", "Email")).unwrap_err();
        assert_eq!(err.code, "INVALID_FIELD");
        assert!(
            err.message.contains("No such column 'Email'"),
            "{}",
            err.message
        );
    }
}
