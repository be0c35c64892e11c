//! Runs aggregate plans: groups the matching records, computes the
//! aggregate functions, then applies HAVING, ORDER BY, OFFSET and LIMIT.

use super::aggregate::{AggregatePlan, Having, Measure};
use super::ast::AggFunc;
use super::exec::{equals, holds, key_order, like, matching, path_value, sort_value, SortValue};
use super::plan::Plan;
use crate::org::Org;
use crate::schema::FieldType;
use crate::value::{to_json, Value};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// One result row: the grouped values, then the measures, by slot index.
pub type Row = Vec<Value>;

/// The most rows an aggregate query can answer: it cannot be paged.
pub const MAX_AGGREGATE_ROWS: usize = 2_000;

/// What makes two values one group or one distinct value: text ignores case
/// (ids excepted), nulls are one value.
fn identity(v: &Value, exact: bool) -> String {
    match v {
        Value::Null => "\u{0}".into(),
        Value::Text(s) if exact => format!("t{s}"),
        Value::Text(s) => format!("t{}", s.to_lowercase()),
        other => to_json(other).to_string(),
    }
}

enum Acc {
    Count(i64),
    Distinct(HashSet<String>),
    /// Decimals are added as whole multiples of the field's scale, exactly,
    /// as Salesforce's database adds them.
    Sum {
        scaled: i128,
        ints: i64,
        seen: bool,
    },
    Avg {
        total: f64,
        n: u64,
    },
    Extreme(Option<(SortValue, Value)>),
}

impl Acc {
    fn new(func: AggFunc) -> Acc {
        match func {
            AggFunc::Count => Acc::Count(0),
            AggFunc::CountDistinct => Acc::Distinct(HashSet::new()),
            AggFunc::Sum => Acc::Sum {
                scaled: 0,
                ints: 0,
                seen: false,
            },
            AggFunc::Avg => Acc::Avg { total: 0.0, n: 0 },
            AggFunc::Min | AggFunc::Max => Acc::Extreme(None),
        }
    }

    /// How MIN and MAX order values: picklists by their values' order (values
    /// outside it after them), text ignoring case, ids exactly.
    fn rank(m: &Measure, v: &Value) -> SortValue {
        if let (false, Value::Text(s)) = (m.picklist.is_empty(), v) {
            let position = m
                .picklist
                .iter()
                .position(|p| p.eq_ignore_ascii_case(s))
                .unwrap_or(m.picklist.len());
            return SortValue::Number(position as f64);
        }
        sort_value(v.clone(), m.exact())
    }

    fn add(&mut self, m: &Measure, v: Value) {
        if v.is_null() {
            return;
        }
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Distinct(seen) => {
                seen.insert(identity(&v, m.exact()));
            }
            Acc::Sum { scaled, ints, seen } => {
                *seen = true;
                match v {
                    Value::Int(i) => *ints += i,
                    other => {
                        let unit = 10f64.powi(m.scale as i32);
                        *scaled += (other.as_f64().unwrap_or(0.0) * unit).round() as i128;
                    }
                }
            }
            Acc::Avg { total, n } => {
                *total += v.as_f64().unwrap_or(0.0);
                *n += 1;
            }
            Acc::Extreme(best) => {
                let rank = Acc::rank(m, &v);
                let wanted = if m.func == AggFunc::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                let better = best
                    .as_ref()
                    .is_none_or(|(r, _)| rank.partial_cmp(r) == Some(wanted));
                if better {
                    *best = Some((rank, v));
                }
            }
        }
    }

    fn finish(self, m: &Measure) -> Value {
        match self {
            Acc::Count(n) => Value::Int(n),
            Acc::Distinct(seen) => Value::Int(seen.len() as i64),
            Acc::Sum { seen: false, .. } => Value::Null,
            Acc::Sum { ints, .. } if matches!(m.ftype, FieldType::Int | FieldType::Long) => {
                Value::Int(ints)
            }
            Acc::Sum { scaled, ints, .. } => {
                let unit = 10i128.pow(m.scale);
                Value::Number((scaled + ints as i128 * unit) as f64 / unit as f64)
            }
            Acc::Avg { n: 0, .. } => Value::Null,
            Acc::Avg { total, n } => Value::Number(total / n as f64),
            Acc::Extreme(best) => best.map_or(Value::Null, |(_, v)| v),
        }
    }
}

fn satisfies(h: &Having, agg: &AggregatePlan, row: &Row) -> bool {
    match h {
        Having::And(parts) => parts.iter().all(|p| satisfies(p, agg, row)),
        Having::Or(parts) => parts.iter().any(|p| satisfies(p, agg, row)),
        Having::Not(inner) => !satisfies(inner, agg, row),
        Having::Cmp { slot, op, operand } => holds(&row[agg.index(*slot)], *op, operand, false),
        Having::In {
            slot,
            negated,
            operands,
        } => {
            let v = &row[agg.index(*slot)];
            operands.iter().any(|o| equals(v, o, false)) != *negated
        }
        Having::Like { slot, pattern } => match &row[agg.index(*slot)] {
            Value::Text(s) => like(&s.to_lowercase().chars().collect::<Vec<_>>(), pattern),
            _ => false,
        },
    }
}

/// Rows in ORDER BY order; without one, by the grouped values ascending
/// (nulls first), as Salesforce's grouping tends to return them.
fn sort_rows(agg: &AggregatePlan, rows: Vec<Row>) -> Vec<Row> {
    let keys: Vec<(usize, bool, bool, bool)> = if agg.order.is_empty() {
        (0..agg.groups.len())
            .map(|i| (i, false, false, agg.groups[i].exact))
            .collect()
    } else {
        agg.order
            .iter()
            .map(|k| (agg.index(k.slot), k.descending, k.nulls_last, k.exact))
            .collect()
    };
    if keys.is_empty() {
        return rows;
    }
    let mut keyed: Vec<(Vec<SortValue>, Row)> = rows
        .into_iter()
        .map(|row| {
            let values = keys
                .iter()
                .map(|(i, _, _, exact)| sort_value(row[*i].clone(), *exact))
                .collect();
            (values, row)
        })
        .collect();
    keyed.sort_by(|(a, _), (b, _)| {
        keys.iter()
            .enumerate()
            .map(|(k, (_, desc, nulls_last, _))| key_order(&a[k], &b[k], *desc, *nulls_last))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    keyed.into_iter().map(|(_, row)| row).collect()
}

/// The rows of an aggregate query, after HAVING, ORDER BY, OFFSET and LIMIT.
/// A grouped text value is spelled as in the group's first record in Id order.
pub fn run(org: &Org, plan: &Plan, agg: &AggregatePlan, include_deleted: bool) -> Vec<Row> {
    let def = &plan.def;
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut groups: Vec<(Row, Vec<Acc>)> = Vec::new();
    let fresh = || agg.measures.iter().map(|m| Acc::new(m.func)).collect();
    if agg.groups.is_empty() {
        // Without GROUP BY there is exactly one row, even over no records.
        groups.push((Vec::new(), fresh()));
        index.insert(Vec::new(), 0);
    }
    for rec in matching(org, plan, include_deleted) {
        let values: Row = agg
            .groups
            .iter()
            .map(|g| path_value(org, def, &rec, &g.path))
            .collect();
        let key: Vec<String> = values
            .iter()
            .zip(&agg.groups)
            .map(|(v, g)| identity(v, g.exact))
            .collect();
        let at = *index.entry(key).or_insert_with(|| {
            groups.push((values, fresh()));
            groups.len() - 1
        });
        for (acc, m) in groups[at].1.iter_mut().zip(&agg.measures) {
            acc.add(m, path_value(org, def, &rec, &m.path));
        }
    }
    let rows: Vec<Row> = groups
        .into_iter()
        .map(|(mut row, accs)| {
            row.extend(
                accs.into_iter()
                    .zip(&agg.measures)
                    .map(|(a, m)| a.finish(m)),
            );
            row
        })
        .filter(|row| agg.having.as_ref().is_none_or(|h| satisfies(h, agg, row)))
        .collect();
    let mut rows = sort_rows(agg, rows);
    let start = (plan.offset as usize).min(rows.len());
    rows.drain(..start);
    if let Some(limit) = plan.limit {
        rows.truncate(limit as usize);
    }
    rows
}

/// Rows as Salesforce returns them: `AggregateResult` records, without a url.
pub fn to_records(agg: &AggregatePlan, rows: &[Row]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|row| {
            let mut rec = serde_json::Map::new();
            rec.insert(
                "attributes".into(),
                serde_json::json!({"type": "AggregateResult"}),
            );
            for c in &agg.columns {
                rec.insert(c.name.clone(), to_json(&row[agg.index(c.slot)]));
            }
            serde_json::Value::Object(rec)
        })
        .collect()
}
