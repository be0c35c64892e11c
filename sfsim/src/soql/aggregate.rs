//! Plans aggregate queries: GROUP BY, the aggregate functions, HAVING and
//! ORDER BY over groups, and the names of the result's columns.

use super::ast::*;
use super::error::SoqlError;
use super::plan::{like_pattern, FieldPath, LikeTok, Operand, Planner};
use crate::schema::{FieldDef, FieldType};

/// A GROUP BY field.
#[derive(Debug, Clone)]
pub struct Group {
    pub path: FieldPath,
    /// Ids group exactly; other text ignores case.
    pub exact: bool,
}

/// One aggregate function over one field.
#[derive(Debug, Clone)]
pub struct Measure {
    pub func: AggFunc,
    pub path: FieldPath,
    pub ftype: FieldType,
    /// For MIN and MAX on a picklist: its values, whose order they follow.
    pub picklist: Vec<String>,
    /// Decimal places of the field, which SUM adds exactly.
    pub scale: u32,
}

impl Measure {
    pub fn exact(&self) -> bool {
        matches!(self.ftype, FieldType::Id | FieldType::Reference)
    }
}

/// Where a value of a result row comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    Group(usize),
    Measure(usize),
}

/// A column of the result, in SELECT order, with its JSON key.
#[derive(Debug, Clone)]
pub struct OutputColumn {
    pub name: String,
    pub slot: Slot,
}

#[derive(Debug, Clone)]
pub enum Having {
    And(Vec<Having>),
    Or(Vec<Having>),
    Not(Box<Having>),
    Cmp {
        slot: Slot,
        op: CmpOp,
        operand: Operand,
    },
    In {
        slot: Slot,
        negated: bool,
        operands: Vec<Operand>,
    },
    Like {
        slot: Slot,
        pattern: Vec<LikeTok>,
    },
}

#[derive(Debug, Clone)]
pub struct SlotSort {
    pub slot: Slot,
    pub descending: bool,
    pub nulls_last: bool,
    pub exact: bool,
}

#[derive(Debug, Clone)]
pub struct AggregatePlan {
    pub groups: Vec<Group>,
    pub measures: Vec<Measure>,
    pub columns: Vec<OutputColumn>,
    pub having: Option<Having>,
    pub order: Vec<SlotSort>,
    /// `SELECT COUNT() ... GROUP BY ...`: only the number of groups is answered.
    pub count_only: bool,
}

impl AggregatePlan {
    /// The position of a slot in a result row: the groups, then the measures.
    pub fn index(&self, slot: Slot) -> usize {
        match slot {
            Slot::Group(i) => i,
            Slot::Measure(i) => self.groups.len() + i,
        }
    }
}

/// Salesforce's table of aggregate functions per field type.
fn supports(func: AggFunc, f: &FieldDef) -> bool {
    f.aggregatable && (!matches!(func, AggFunc::Sum | AggFunc::Avg) || f.ftype.is_numeric())
}

/// How a HAVING literal is typed: like the field it compares with, or as a number.
enum Typing<'f> {
    Field(&'f FieldDef),
    Number(&'static str, String),
}

fn is_text_like(f: &FieldDef) -> bool {
    f.ftype.is_textual()
        && !matches!(
            f.ftype,
            FieldType::Id | FieldType::Reference | FieldType::Multipicklist
        )
}

impl<'a> Planner<'a> {
    fn grouped(&self, groups: &[Group], path: &FieldPath) -> Option<usize> {
        groups.iter().position(|g| g.path == *path)
    }

    fn measure(
        &self,
        measures: &mut Vec<Measure>,
        func: AggFunc,
        path: &Path,
    ) -> Result<(usize, &'a FieldDef), SoqlError> {
        let resolved = self.resolve(path)?;
        let f = self.field_def(&resolved);
        if !supports(func, f) {
            return Err(SoqlError::malformed(
                self.soql,
                path.at,
                format!(
                    "field {} does not support aggregate operator {}",
                    f.name,
                    func.name()
                ),
            ));
        }
        if let Some(i) = measures
            .iter()
            .position(|m| m.func == func && m.path == resolved)
        {
            return Ok((i, f));
        }
        let picklist = if f.ftype == FieldType::Picklist {
            f.picklist_values.clone()
        } else {
            Vec::new()
        };
        measures.push(Measure {
            func,
            path: resolved,
            ftype: f.ftype,
            picklist,
            scale: f.scale,
        });
        Ok((measures.len() - 1, f))
    }

    fn not_grouped(&self, path: &Path, resolved: FieldPath, what: &str) -> SoqlError {
        let name = self.column(resolved).name;
        SoqlError::malformed(
            self.soql,
            path.at,
            format!("{what} must be grouped or aggregated: {name}"),
        )
    }

    fn group_slot(
        &self,
        groups: &[Group],
        path: &Path,
        what: &str,
    ) -> Result<(usize, &'a FieldDef), SoqlError> {
        let resolved = self.resolve(path)?;
        let f = self.field_def(&resolved);
        match self.grouped(groups, &resolved) {
            Some(i) => Ok((i, f)),
            None => Err(self.not_grouped(path, resolved, what)),
        }
    }

    fn groups(&self, group_by: &[Path]) -> Result<Vec<Group>, SoqlError> {
        let mut groups: Vec<Group> = Vec::new();
        for path in group_by {
            let resolved = self.resolve(path)?;
            let f = self.field_def(&resolved);
            if !f.groupable {
                return Err(SoqlError::at(
                    "INVALID_FIELD",
                    self.soql,
                    path.at,
                    format!("field '{}' can not be grouped in a query call", f.name),
                ));
            }
            if self.grouped(&groups, &resolved).is_none() {
                groups.push(Group {
                    path: resolved,
                    exact: matches!(f.ftype, FieldType::Id | FieldType::Reference),
                });
            }
        }
        Ok(groups)
    }

    /// Plans an aggregate query's SELECT list, HAVING and ORDER BY.
    pub(super) fn aggregate(
        &self,
        q: &Query,
        count_only: bool,
    ) -> Result<AggregatePlan, SoqlError> {
        let groups = self.groups(&q.group_by)?;
        let mut measures = Vec::new();
        let mut columns: Vec<OutputColumn> = Vec::new();
        let mut unaliased = 0;
        for item in &q.select {
            let (name, slot, at) = match item {
                SelectItem::Count { .. } => continue,
                SelectItem::Subquery { at, .. } => {
                    return Err(SoqlError::malformed(
                        self.soql,
                        *at,
                        "Aggregate queries do not support parent-to-child subqueries",
                    ))
                }
                SelectItem::Fields { kind, at } => {
                    // Every expanded field is a plain field, so the first one
                    // that is not grouped is refused.
                    for mut p in self.fields_expansion(*kind) {
                        p.at = *at;
                        let (i, f) = self.group_slot(&groups, &p, "Field")?;
                        columns.push(OutputColumn {
                            name: f.name.clone(),
                            slot: Slot::Group(i),
                        });
                    }
                    continue;
                }
                SelectItem::Field { path, alias } => {
                    let (i, f) = self.group_slot(&groups, path, "Field")?;
                    let name = alias.as_ref().map_or(f.name.clone(), |a| a.name.clone());
                    let at = alias.as_ref().map_or(path.at, |a| a.at);
                    (name, Slot::Group(i), at)
                }
                SelectItem::Aggregate {
                    func,
                    path,
                    at,
                    alias,
                } => {
                    let (i, _) = self.measure(&mut measures, *func, path)?;
                    let name = match alias {
                        Some(a) => a.name.clone(),
                        None => {
                            unaliased += 1;
                            format!("expr{}", unaliased - 1)
                        }
                    };
                    let at = alias.as_ref().map_or(*at, |a| a.at);
                    (name, Slot::Measure(i), at)
                }
            };
            if columns.iter().any(|c| c.name.eq_ignore_ascii_case(&name)) {
                return Err(SoqlError::malformed(
                    self.soql,
                    at,
                    format!("duplicate alias: {name}"),
                ));
            }
            columns.push(OutputColumn { name, slot });
        }
        let having = q
            .having
            .as_ref()
            .map(|c| self.having(&groups, &mut measures, c))
            .transpose()?;
        let mut order = Vec::new();
        for item in &q.order_by {
            let (slot, exact) = match &item.expr {
                Expr::Field(path) => {
                    let (resolved, _) = self.sortable(path)?;
                    let i = self
                        .grouped(&groups, &resolved)
                        .ok_or_else(|| self.not_grouped(path, resolved, "Ordered field"))?;
                    (Slot::Group(i), groups[i].exact)
                }
                Expr::Aggregate { func, path, .. } => {
                    let (i, _) = self.measure(&mut measures, *func, path)?;
                    let exact = matches!(func, AggFunc::Min | AggFunc::Max) && measures[i].exact();
                    (Slot::Measure(i), exact)
                }
            };
            order.push(SlotSort {
                slot,
                descending: item.descending,
                nulls_last: item.nulls_last,
                exact,
            });
        }
        Ok(AggregatePlan {
            groups,
            measures,
            columns,
            having,
            order,
            count_only,
        })
    }

    fn having_slot(
        &self,
        groups: &[Group],
        measures: &mut Vec<Measure>,
        lhs: &Expr,
    ) -> Result<(Slot, Typing<'a>), SoqlError> {
        match lhs {
            Expr::Field(path) => {
                let (i, f) = self.group_slot(groups, path, "Field")?;
                Ok((Slot::Group(i), Typing::Field(f)))
            }
            Expr::Aggregate { func, path, .. } => {
                let (i, f) = self.measure(measures, *func, path)?;
                let shown = format!("{}({})", func.name(), f.name);
                let typing = match func {
                    AggFunc::Count | AggFunc::CountDistinct => Typing::Number("integer", shown),
                    AggFunc::Sum | AggFunc::Avg => Typing::Number("double", shown),
                    AggFunc::Min | AggFunc::Max => Typing::Field(f),
                };
                Ok((Slot::Measure(i), typing))
            }
        }
    }

    fn having_operand(
        &self,
        typing: &Typing,
        lit: &Literal,
        at: usize,
    ) -> Result<Operand, SoqlError> {
        match typing {
            Typing::Field(f) => self.operand(f, lit, at),
            Typing::Number(kind, shown) => match lit {
                Literal::Null => Ok(Operand::Null),
                Literal::Number(n) => n
                    .parse()
                    .map(Operand::Number)
                    .map_err(|_| self.number_error(kind, shown, at)),
                _ => Err(self.number_error(kind, shown, at)),
            },
        }
    }

    fn number_error(&self, kind: &str, shown: &str, at: usize) -> SoqlError {
        SoqlError::at(
            "INVALID_FIELD",
            self.soql,
            at,
            format!(
                "value of filter criterion for field '{shown}' must be of type {kind} and should not be enclosed in quotes"
            ),
        )
    }

    fn having(
        &self,
        groups: &[Group],
        measures: &mut Vec<Measure>,
        cond: &Cond,
    ) -> Result<Having, SoqlError> {
        let mut all = |parts: &[Cond]| -> Result<Vec<Having>, SoqlError> {
            parts
                .iter()
                .map(|c| self.having(groups, measures, c))
                .collect()
        };
        Ok(match cond {
            Cond::And(parts) => Having::And(all(parts)?),
            Cond::Or(parts) => Having::Or(all(parts)?),
            Cond::Not(inner) => Having::Not(Box::new(self.having(groups, measures, inner)?)),
            Cond::Cmp {
                lhs,
                op,
                value,
                value_at,
            } => {
                let (slot, typing) = self.having_slot(groups, measures, lhs)?;
                let field = match &typing {
                    Typing::Field(f) => Some(*f),
                    Typing::Number(..) => None,
                };
                if *op == CmpOp::Like {
                    let f = field.filter(|f| is_text_like(f)).ok_or_else(|| {
                        SoqlError::at(
                            "INVALID_QUERY_FILTER_OPERATOR",
                            self.soql,
                            lhs.at(),
                            "invalid operator on aggregate or non-text field",
                        )
                    })?;
                    let Literal::Str(raw) = value else {
                        return Err(self.type_error(f, *value_at));
                    };
                    let pattern = self.string_literal(raw, *value_at, true)?;
                    return Ok(Having::Like {
                        slot,
                        pattern: like_pattern(&pattern),
                    });
                }
                let ordering = !matches!(op, CmpOp::Eq | CmpOp::Ne);
                if let Some(f) = field.filter(|f| ordering && f.ftype == FieldType::Boolean) {
                    return Err(self.bad_operator(f, lhs.at()));
                }
                Having::Cmp {
                    slot,
                    op: *op,
                    operand: self.having_operand(&typing, value, *value_at)?,
                }
            }
            Cond::In {
                lhs,
                negated,
                values,
            } => {
                let (slot, typing) = self.having_slot(groups, measures, lhs)?;
                let operands = values
                    .iter()
                    .map(|(l, at)| self.having_operand(&typing, l, *at))
                    .collect::<Result<_, _>>()?;
                Having::In {
                    slot,
                    negated: *negated,
                    operands,
                }
            }
            Cond::Includes { lhs, .. } => {
                return Err(SoqlError::at(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    self.soql,
                    lhs.at(),
                    "includes or excludes operator only valid on multipicklist field",
                ))
            }
        })
    }
}
