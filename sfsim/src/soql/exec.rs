//! Runs a plan over the org's records with Salesforce's semantics:
//! case-insensitive text, `!=` true for nulls, nulls first by default.

use super::ast::CmpOp;
use super::plan::{split_multipicklist, FieldPath, Filter, LikeTok, Operand, Plan, SortKey};
use crate::org::{Org, Record};
use crate::schema::ObjectDef;
use crate::value::Value;
use std::cmp::Ordering;
use std::sync::Arc;

/// The value at the end of a path, or null when a lookup on the way is empty.
pub fn path_value(org: &Org, def: &ObjectDef, rec: &Record, path: &FieldPath) -> Value {
    let Some((first, rest)) = path.hops.split_first() else {
        return org.read(def, rec, path.field);
    };
    let parent_of = |rec: &Record, hop: usize| -> Option<(Arc<ObjectDef>, Arc<Record>)> {
        let (object, parent) = org.record_by_id(rec.get(hop).as_str()?)?;
        Some((org.def(object).clone(), parent.clone()))
    };
    let Some(mut current) = parent_of(rec, *first) else {
        return Value::Null;
    };
    for hop in rest {
        match parent_of(&current.1, *hop) {
            Some(next) => current = next,
            None => return Value::Null,
        }
    }
    let (def, rec) = current;
    let field = if path.by_name {
        match def.field_index(&org.def(path.object).fields[path.field].name) {
            Some(i) => i,
            None => return Value::Null,
        }
    } else {
        path.field
    };
    org.read(&def, &rec, field)
}

fn text_eq(s: &str, lowered: &str) -> bool {
    if s.is_ascii() {
        s.eq_ignore_ascii_case(lowered)
    } else {
        s.to_lowercase() == lowered
    }
}

pub(super) fn compare(v: &Value, op: &Operand) -> Option<Ordering> {
    match (v, op) {
        (Value::Text(s), Operand::Text(t)) => Some(s.to_lowercase().as_str().cmp(t.as_str())),
        (Value::Text(s), Operand::Id(t)) => Some((**s).cmp(t.as_str())),
        (Value::Bool(a), Operand::Bool(b)) => Some(a.cmp(b)),
        (Value::Date(a), Operand::Date(b)) => Some(a.cmp(b)),
        (Value::DateTime(a), Operand::DateTime(b)) => Some(a.cmp(b)),
        (Value::Time(a), Operand::Time(b)) => Some(a.cmp(b)),
        (v, Operand::Number(n)) => v.as_f64().and_then(|a| a.partial_cmp(n)),
        _ => None,
    }
}

pub(super) fn equals(v: &Value, op: &Operand, multi: bool) -> bool {
    match (v, op) {
        (Value::Null, Operand::Null) => true,
        (_, Operand::Null) | (Value::Null, _) => false,
        (Value::Text(s), Operand::Text(t)) if multi => {
            split_multipicklist(s) == split_multipicklist(t)
        }
        (Value::Text(s), Operand::Text(t)) => text_eq(s, t),
        _ => compare(v, op) == Some(Ordering::Equal),
    }
}

/// Whether `v op operand` holds, as a comparison in WHERE or HAVING does.
pub(super) fn holds(v: &Value, op: CmpOp, operand: &Operand, multi: bool) -> bool {
    match op {
        CmpOp::Eq => equals(v, operand, multi),
        CmpOp::Ne => !equals(v, operand, multi),
        _ if v.is_null() || *operand == Operand::Null => false,
        CmpOp::Lt => compare(v, operand) == Some(Ordering::Less),
        CmpOp::Le => matches!(compare(v, operand), Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => compare(v, operand) == Some(Ordering::Greater),
        CmpOp::Ge => matches!(
            compare(v, operand),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        CmpOp::Like => unreachable!("LIKE is planned on its own"),
    }
}

pub(super) fn like(value: &[char], pattern: &[LikeTok]) -> bool {
    // Iterative wildcard match with backtracking to the last `%`.
    let (mut v, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(LikeTok::AnyRun) => {
                star = Some((p, v));
                p += 1;
            }
            Some(LikeTok::AnyChar) => {
                v += 1;
                p += 1;
            }
            Some(LikeTok::Char(c)) if *c == value[v] => {
                v += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    p = sp + 1;
                    v = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|t| *t == LikeTok::AnyRun)
}

pub fn matches(org: &Org, def: &ObjectDef, rec: &Record, filter: &Filter) -> bool {
    match filter {
        Filter::And(parts) => parts.iter().all(|f| matches(org, def, rec, f)),
        Filter::Or(parts) => parts.iter().any(|f| matches(org, def, rec, f)),
        Filter::Not(inner) => !matches(org, def, rec, inner),
        Filter::Cmp {
            path,
            op,
            operand,
            multi,
        } => {
            let v = path_value(org, def, rec, path);
            holds(&v, *op, operand, *multi)
        }
        Filter::In {
            path,
            negated,
            operands,
            multi,
        } => {
            let v = path_value(org, def, rec, path);
            operands.iter().any(|o| equals(&v, o, *multi)) != *negated
        }
        Filter::Like { path, pattern } => match path_value(org, def, rec, path) {
            Value::Text(s) => {
                let chars: Vec<char> = s.to_lowercase().chars().collect();
                like(&chars, pattern)
            }
            _ => false,
        },
        Filter::Includes {
            path,
            excludes,
            sets,
        } => {
            let included = match path_value(org, def, rec, path) {
                Value::Text(s) => {
                    let have = split_multipicklist(&s);
                    sets.iter()
                        .any(|want| want.iter().all(|w| have.contains(w)))
                }
                _ => false,
            };
            included != *excludes
        }
    }
}

#[derive(PartialEq, PartialOrd)]
pub(super) enum SortValue {
    Null,
    Text(String),
    Number(f64),
    Other(String),
}

pub(super) fn sort_value(v: Value, exact: bool) -> SortValue {
    match v {
        Value::Null => SortValue::Null,
        Value::Text(s) if exact => SortValue::Text(s.into()),
        Value::Text(s) => SortValue::Text(s.to_lowercase()),
        Value::Int(_) | Value::Number(_) => SortValue::Number(v.as_f64().unwrap_or(0.0)),
        Value::Bool(b) => SortValue::Number(if b { 1.0 } else { 0.0 }),
        Value::Date(d) => SortValue::Other(d.to_string()),
        Value::DateTime(d) => SortValue::Other(d.to_rfc3339()),
        Value::Time(t) => SortValue::Other(t.to_string()),
        Value::Compound(_) => SortValue::Null,
    }
}

/// How two sort values order under one key's direction and nulls placement.
pub(super) fn key_order(
    a: &SortValue,
    b: &SortValue,
    descending: bool,
    nulls_last: bool,
) -> Ordering {
    match (a, b) {
        (SortValue::Null, SortValue::Null) => Ordering::Equal,
        (SortValue::Null, _) => {
            if nulls_last {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (_, SortValue::Null) => {
            if nulls_last {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (x, y) => {
            let o = x.partial_cmp(y).unwrap_or(Ordering::Equal);
            if descending {
                o.reverse()
            } else {
                o
            }
        }
    }
}

/// Records in ORDER BY order (a stable sort: ties keep their order).
pub fn sort_records(
    org: &Org,
    def: &ObjectDef,
    rows: Vec<Arc<Record>>,
    order: &[SortKey],
) -> Vec<Arc<Record>> {
    if order.is_empty() {
        return rows;
    }
    let mut keyed: Vec<(Vec<SortValue>, Arc<Record>)> = rows
        .into_iter()
        .map(|r| {
            (
                order
                    .iter()
                    .map(|k| sort_value(path_value(org, def, &r, &k.path), k.exact))
                    .collect(),
                r,
            )
        })
        .collect();
    keyed.sort_by(|(a, _), (b, _)| {
        order
            .iter()
            .enumerate()
            .map(|(i, key)| key_order(&a[i], &b[i], key.descending, key.nulls_last))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// The records a plan's WHERE selects, in Id order.
pub fn matching(org: &Org, plan: &Plan, include_deleted: bool) -> Vec<Arc<Record>> {
    let def = &plan.def;
    org.objects[plan.object]
        .records
        .values()
        .filter(|r| include_deleted || !r.is_deleted(def))
        .filter(|r| plan.filter.as_ref().is_none_or(|f| matches(org, def, r, f)))
        .cloned()
        .collect()
}

/// The records a plan selects, in order, after OFFSET and LIMIT.
pub fn run(org: &Org, plan: &Plan, include_deleted: bool) -> Vec<Arc<Record>> {
    let rows = matching(org, plan, include_deleted);
    let mut rows = sort_records(org, &plan.def, rows, &plan.order);
    let start = (plan.offset as usize).min(rows.len());
    let end = plan
        .limit
        .map(|l| (start + l as usize).min(rows.len()))
        .unwrap_or(rows.len());
    rows.truncate(end);
    rows.drain(..start);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> Vec<LikeTok> {
        s.chars()
            .map(|c| match c {
                '%' => LikeTok::AnyRun,
                '_' => LikeTok::AnyChar,
                c => LikeTok::Char(c),
            })
            .collect()
    }

    fn m(v: &str, p: &str) -> bool {
        like(&v.chars().collect::<Vec<_>>(), &pat(p))
    }

    #[test]
    fn like_wildcards() {
        assert!(m("acme corp", "acme%"));
        assert!(m("acme corp", "%corp"));
        assert!(m("acme corp", "%me c%"));
        assert!(m("abc", "a_c"));
        assert!(!m("abbc", "a_c"));
        assert!(m("", "%"));
        assert!(!m("abc", "abcd%"));
        assert!(m("aXbXc", "a%b%c"));
    }
}
