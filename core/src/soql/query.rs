//! A SOQL query as a structure, printed only once parameters are bound.

use super::literal::{like_pattern, Literal};
use chrono::Timelike;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    /// The operator with its operands swapped: `5 < x` is `x > 5`.
    pub fn commuted(self) -> CompareOp {
        match self {
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Le => CompareOp::Ge,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::Ge => CompareOp::Le,
            same => same,
        }
    }

    fn soql(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

/// A value known when planning, or the n-th parameter, known when executing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Operand {
    Literal(Literal),
    Param(usize),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Condition {
    Compare {
        field: String,
        op: CompareOp,
        value: Operand,
    },
    /// `value` is a `Literal::List` once bound.
    In {
        field: String,
        negated: bool,
        values: Operand,
    },
    /// A PostgreSQL LIKE pattern, translated when printed.
    Like {
        field: String,
        pattern: Operand,
    },
    IsNull {
        field: String,
        negated: bool,
    },
    /// Any of the conditions (OR); they hold no parameters.
    Any(Vec<Condition>),
    /// Every one of the conditions (AND), as a side of an OR.
    All(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    /// The condition on a parent's fields, reached through `relationship`
    /// (`Rating` becomes `Account.Rating`).
    pub fn through(self, relationship: &str) -> Condition {
        let on = |field: String| format!("{relationship}.{field}");
        match self {
            Condition::Compare { field, op, value } => Condition::Compare {
                field: on(field),
                op,
                value,
            },
            Condition::In {
                field,
                negated,
                values,
            } => Condition::In {
                field: on(field),
                negated,
                values,
            },
            Condition::Like { field, pattern } => Condition::Like {
                field: on(field),
                pattern,
            },
            Condition::IsNull { field, negated } => Condition::IsNull {
                field: on(field),
                negated,
            },
            Condition::Any(sides) => {
                Condition::Any(sides.into_iter().map(|c| c.through(relationship)).collect())
            }
            Condition::All(sides) => {
                Condition::All(sides.into_iter().map(|c| c.through(relationship)).collect())
            }
            Condition::Not(inner) => Condition::Not(Box::new(inner.through(relationship))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderKey {
    pub field: String,
    pub descending: bool,
    pub nulls_first: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Soql {
    pub object: String,
    /// Ignored when `count` is set.
    pub fields: Vec<String>,
    pub count: bool,
    pub conditions: Vec<Condition>,
    pub group_by: Vec<String>,
    /// Conditions on groups, their `field` an aggregate such as `COUNT(Id)`.
    pub having: Vec<Condition>,
    pub order_by: Vec<OrderKey>,
    pub limit: Option<u64>,
}

/// Why a bound condition means no row can match, so no request is needed.
fn matches_nothing(value: &Literal) -> bool {
    matches!(value, Literal::Null) || matches!(value, Literal::List(items) if items.is_empty())
}

impl Soql {
    /// Replaces parameters with their values. A value of None (one SOQL
    /// cannot express) drops its condition, which only widens the result.
    /// Returns None when the values make the query match nothing (a null
    /// comparison, an empty IN list).
    pub fn bind(&self, params: &[Option<Literal>]) -> Option<Soql> {
        let mut bound = self.clone();
        bound.conditions.clear();
        for c in &self.conditions {
            let mut c = c.clone();
            let negated_in = matches!(c, Condition::In { negated: true, .. });
            let slot = match &mut c {
                Condition::Compare { value, .. }
                | Condition::Like { pattern: value, .. }
                | Condition::In { values: value, .. } => value,
                Condition::IsNull { .. }
                | Condition::Any(_)
                | Condition::All(_)
                | Condition::Not(_) => {
                    bound.conditions.push(c);
                    continue;
                }
            };
            let value = match slot {
                Operand::Literal(l) => l.clone(),
                Operand::Param(i) => match params.get(*i).cloned().flatten() {
                    Some(v) => v,
                    None => continue,
                },
            };
            if matches_nothing(&value) {
                if negated_in && value != Literal::Null {
                    // NOT IN an empty list holds for every row.
                    continue;
                }
                return None;
            }
            *slot = Operand::Literal(value);
            bound.conditions.push(c);
        }
        Some(bound)
    }

    fn condition_text(c: &Condition) -> String {
        let lit = |o: &Operand| match o {
            Operand::Literal(l) => l.render(),
            Operand::Param(i) => format!("${}", i + 1),
        };
        match c {
            Condition::Compare {
                field,
                op: op @ (CompareOp::Lt | CompareOp::Le),
                value: Operand::Literal(Literal::DateTime(t)),
            } if t.nanosecond() != 0 => {
                // SOQL datetimes have whole seconds: round up, so the range only widens.
                let up = Literal::DateTime(*t + chrono::Duration::seconds(1));
                format!("{field} {} {}", op.soql(), up.render())
            }
            Condition::Compare { field, op, value } => {
                format!("{field} {} {}", op.soql(), lit(value))
            }
            Condition::In {
                field,
                negated,
                values,
            } => format!(
                "{field} {}IN {}",
                if *negated { "NOT " } else { "" },
                lit(values)
            ),
            Condition::Like { field, pattern } => match pattern {
                Operand::Literal(Literal::Text(p)) => format!(
                    "{field} LIKE {}",
                    like_pattern(p).unwrap_or_else(|| "''".into())
                ),
                other => format!("{field} LIKE {}", lit(other)),
            },
            Condition::IsNull { field, negated } => {
                format!("{field} {} null", if *negated { "!=" } else { "=" })
            }
            // SOQL refuses AND and OR side by side without parentheses.
            Condition::Any(sides) => Soql::joined(sides, " OR "),
            Condition::All(sides) => Soql::joined(sides, " AND "),
            Condition::Not(inner) => format!("(NOT {})", Soql::condition_text(inner)),
        }
    }

    fn joined_conditions(conditions: &[Condition]) -> String {
        let texts: Vec<String> = conditions.iter().map(Soql::condition_text).collect();
        texts.join(" AND ")
    }

    fn joined(sides: &[Condition], with: &str) -> String {
        let texts: Vec<String> = sides.iter().map(Soql::condition_text).collect();
        format!("({})", texts.join(with))
    }

    /// Statements that each `fits`, together selecting every field: the
    /// fields split into groups, each group with Id and the same conditions,
    /// order (Id last, so every group returns rows in one order) and limit.
    /// None when even Id alone with the conditions does not fit.
    pub fn split_to_fit(&self, fits: impl Fn(&str) -> bool) -> Option<Vec<Soql>> {
        if fits(&self.render()) {
            return Some(vec![self.clone()]);
        }
        let mut base = self.clone();
        base.fields = vec!["Id".to_string()];
        if !base
            .order_by
            .iter()
            .any(|k| k.field.eq_ignore_ascii_case("Id"))
        {
            base.order_by.push(OrderKey {
                field: "Id".into(),
                descending: false,
                nulls_first: false,
            });
        }
        if !fits(&base.render()) {
            return None;
        }
        let mut parts = Vec::new();
        let mut current = base.clone();
        for field in self.fields.iter().filter(|f| !f.eq_ignore_ascii_case("Id")) {
            current.fields.push(field.clone());
            if !fits(&current.render()) {
                current.fields.pop();
                if current.fields.len() == 1 {
                    return None;
                }
                parts.push(std::mem::replace(&mut current, base.clone()));
                current.fields.push(field.clone());
            }
        }
        parts.push(current);
        Some(parts)
    }

    /// The statement text. Unbound parameters print as `$1`, `$2`, … (for EXPLAIN).
    pub fn render(&self) -> String {
        let mut s = String::from("SELECT ");
        if self.count {
            s.push_str("COUNT()");
        } else {
            s.push_str(&self.fields.join(", "));
        }
        s.push_str(" FROM ");
        s.push_str(&self.object);
        if !self.conditions.is_empty() {
            s.push_str(" WHERE ");
            s.push_str(&Soql::joined_conditions(&self.conditions));
        }
        if !self.group_by.is_empty() {
            s.push_str(" GROUP BY ");
            s.push_str(&self.group_by.join(", "));
        }
        if !self.having.is_empty() {
            s.push_str(" HAVING ");
            s.push_str(&Soql::joined_conditions(&self.having));
        }
        if !self.order_by.is_empty() {
            let keys: Vec<String> = self
                .order_by
                .iter()
                .map(|k| {
                    format!(
                        "{} {} NULLS {}",
                        k.field,
                        if k.descending { "DESC" } else { "ASC" },
                        if k.nulls_first { "FIRST" } else { "LAST" }
                    )
                })
                .collect();
            s.push_str(" ORDER BY ");
            s.push_str(&keys.join(", "));
        }
        if let Some(n) = self.limit {
            s.push_str(&format!(" LIMIT {n}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Operand {
        Operand::Literal(Literal::Text(s.into()))
    }

    fn contact() -> Soql {
        Soql {
            object: "Contact".into(),
            fields: vec!["Id".into(), "Email".into()],
            ..Soql::default()
        }
    }

    #[test]
    fn or_and_not_print_with_the_parentheses_soql_requires() {
        let mut q = contact();
        let cmp = |field: &str, n: &str| Condition::Compare {
            field: field.into(),
            op: CompareOp::Gt,
            value: Operand::Literal(Literal::Number(n.into())),
        };
        q.conditions = vec![
            Condition::Any(vec![
                cmp("A__c", "1"),
                Condition::All(vec![cmp("B__c", "2"), cmp("C__c", "3")]),
            ]),
            Condition::Not(Box::new(Condition::Any(vec![
                cmp("D__c", "4"),
                cmp("E__c", "5"),
            ]))),
        ];
        assert_eq!(
            q.render(),
            "SELECT Id, Email FROM Contact WHERE (A__c > 1 OR (B__c > 2 AND C__c > 3)) AND (NOT (D__c > 4 OR E__c > 5))"
        );
        assert_eq!(q.bind(&[]).unwrap(), q, "nothing to bind");
    }

    #[test]
    fn conditions_reach_parents_through_their_relationship() {
        let c = Condition::Any(vec![
            Condition::IsNull {
                field: "Rating".into(),
                negated: false,
            },
            Condition::Not(Box::new(Condition::Compare {
                field: "Name".into(),
                op: CompareOp::Eq,
                value: text("x"),
            })),
        ]);
        assert_eq!(
            Soql::condition_text(&c.through("Account.Owner")),
            "(Account.Owner.Rating = null OR (NOT Account.Owner.Name = 'x'))"
        );
    }

    #[test]
    fn group_by_and_having_follow_where() {
        let q = Soql {
            object: "Opportunity".into(),
            fields: vec!["StageName".into(), "COUNT(Id) a0".into()],
            conditions: vec![Condition::IsNull {
                field: "AccountId".into(),
                negated: true,
            }],
            group_by: vec!["StageName".into()],
            having: vec![Condition::Compare {
                field: "COUNT(Id)".into(),
                op: CompareOp::Gt,
                value: Operand::Literal(Literal::Number("2".into())),
            }],
            ..Soql::default()
        };
        assert_eq!(
            q.render(),
            "SELECT StageName, COUNT(Id) a0 FROM Opportunity WHERE AccountId != null GROUP BY StageName HAVING COUNT(Id) > 2"
        );
    }

    #[test]
    fn prints_every_clause() {
        let mut q = contact();
        q.conditions = vec![
            Condition::Compare {
                field: "LastName".into(),
                op: CompareOp::Ne,
                value: text("O'Brien"),
            },
            Condition::In {
                field: "Level__c".into(),
                negated: true,
                values: Operand::Literal(Literal::List(vec![Literal::Text("A".into())])),
            },
            Condition::Like {
                field: "Email".into(),
                pattern: text(r"%\_x@%"),
            },
            Condition::IsNull {
                field: "Phone".into(),
                negated: false,
            },
        ];
        q.order_by = vec![OrderKey {
            field: "CreatedDate".into(),
            descending: true,
            nulls_first: false,
        }];
        q.limit = Some(5);
        assert_eq!(
            q.render(),
            r"SELECT Id, Email FROM Contact WHERE LastName != 'O\'Brien' AND Level__c NOT IN ('A') AND Email LIKE '%\_x@%' AND Phone = null ORDER BY CreatedDate DESC NULLS LAST LIMIT 5"
        );
        q.count = true;
        assert!(q.render().starts_with("SELECT COUNT() FROM Contact WHERE"));
    }

    #[test]
    fn wide_field_lists_split_into_groups_ordered_alike() {
        let mut q = contact();
        q.fields = std::iter::once("Id".to_string())
            .chain((0..30).map(|i| format!("Field_{i:02}__c")))
            .collect();
        q.conditions = vec![Condition::IsNull {
            field: "Email".into(),
            negated: true,
        }];
        q.limit = Some(10);
        let parts = q.split_to_fit(|s| s.len() <= 200).unwrap();
        assert!(parts.len() > 1);
        assert!(parts
            .iter()
            .all(|p| p.render().len() <= 200 && p.fields[0] == "Id" && p.limit == Some(10)));
        assert!(parts.iter().all(|p| p
            .render()
            .ends_with("WHERE Email != null ORDER BY Id ASC NULLS LAST LIMIT 10")));
        let all: Vec<String> = parts.iter().flat_map(|p| p.fields[1..].to_vec()).collect();
        assert_eq!(all, q.fields[1..].to_vec(), "every field once, in order");
        assert_eq!(q.split_to_fit(|s| s.len() <= 10_000).unwrap().len(), 1);
        assert_eq!(
            q.split_to_fit(|s| s.len() <= 40),
            None,
            "the conditions alone do not fit"
        );
    }

    #[test]
    fn fractional_datetimes_widen_the_range() {
        use chrono::TimeZone;
        let t = chrono::Utc.timestamp_millis_opt(1_704_103_200_500).unwrap();
        let cond = |op| Condition::Compare {
            field: "CreatedDate".into(),
            op,
            value: Operand::Literal(Literal::DateTime(t)),
        };
        let mut q = contact();
        q.conditions = vec![cond(CompareOp::Lt), cond(CompareOp::Ge)];
        assert_eq!(
            q.render(),
            "SELECT Id, Email FROM Contact WHERE CreatedDate < 2024-01-01T10:00:01Z AND CreatedDate >= 2024-01-01T10:00:00Z"
        );
    }

    #[test]
    fn binding_fills_parameters_or_proves_nothing_matches() {
        let mut q = contact();
        q.conditions = vec![Condition::Compare {
            field: "AccountId".into(),
            op: CompareOp::Eq,
            value: Operand::Param(0),
        }];
        assert_eq!(
            q.render(),
            "SELECT Id, Email FROM Contact WHERE AccountId = $1"
        );
        let bound = q.bind(&[Some(Literal::Text("001".into()))]).unwrap();
        assert_eq!(
            bound.render(),
            "SELECT Id, Email FROM Contact WHERE AccountId = '001'"
        );
        assert_eq!(
            q.bind(&[Some(Literal::Null)]),
            None,
            "= NULL matches nothing"
        );
        assert_eq!(
            q.bind(&[None]).unwrap().render(),
            "SELECT Id, Email FROM Contact",
            "an inexpressible value drops its condition"
        );
        let mut q = contact();
        q.conditions = vec![Condition::In {
            field: "Id".into(),
            negated: false,
            values: Operand::Param(0),
        }];
        assert_eq!(
            q.bind(&[Some(Literal::List(vec![]))]),
            None,
            "IN () matches nothing"
        );
        q.conditions = vec![Condition::In {
            field: "Id".into(),
            negated: true,
            values: Operand::Param(0),
        }];
        assert_eq!(
            q.bind(&[Some(Literal::List(vec![]))]).unwrap().render(),
            "SELECT Id, Email FROM Contact"
        );
    }
}
