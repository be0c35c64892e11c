//! What may be pushed to Salesforce, decided apart from how SOQL is printed.
//!
//! A pushed condition must never drop a row PostgreSQL would keep. It is
//! *exact* when Salesforce keeps precisely the rows PostgreSQL would; other
//! pushed conditions stay as local filters too. Text is never exact:
//! Salesforce compares it ignoring case, and `!=` keeps nulls in SOQL.

use crate::soql::{CompareOp, Condition, Literal, Operand, OrderKey};
use chrono::Timelike;

/// A built-in PostgreSQL operator Salesforce has an equivalent for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgOp {
    Compare(CompareOp),
    /// `~~` (LIKE) and `~~*` (ILIKE): SOQL's LIKE ignores case anyway.
    Like,
}

impl PgOp {
    pub fn from_name(name: &str) -> Option<PgOp> {
        Some(match name {
            "=" => PgOp::Compare(CompareOp::Eq),
            "<>" => PgOp::Compare(CompareOp::Ne),
            "<" => PgOp::Compare(CompareOp::Lt),
            "<=" => PgOp::Compare(CompareOp::Le),
            ">" => PgOp::Compare(CompareOp::Gt),
            ">=" => PgOp::Compare(CompareOp::Ge),
            "~~" | "~~*" => PgOp::Like,
            _ => return None,
        })
    }

    /// The operator with its operands swapped; LIKE cannot be.
    pub fn commuted(self) -> Option<PgOp> {
        match self {
            PgOp::Compare(op) => Some(PgOp::Compare(op.commuted())),
            PgOp::Like => None,
        }
    }
}

/// What the plan knows of the field behind a column.
pub struct FieldFacts<'a> {
    pub api_name: &'a str,
    pub salesforce_type: &'a str,
    pub filterable: bool,
    pub sortable: bool,
    pub groupable: bool,
    pub aggregatable: bool,
}

/// The kind of value a constant or parameter holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueFamily {
    Text,
    Number,
    Bool,
    Date,
    DateTime,
    Other,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pushed {
    pub condition: Condition,
    pub exact: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Text,
    Id,
    Number,
    Bool,
    Date,
    DateTime,
    Unpushable,
}

fn family(salesforce_type: &str) -> Family {
    match salesforce_type {
        "id" | "reference" => Family::Id,
        "string" | "picklist" | "combobox" | "email" | "phone" | "url" | "textarea" => Family::Text,
        "int" | "long" | "double" | "currency" | "percent" => Family::Number,
        "boolean" => Family::Bool,
        "date" => Family::Date,
        "datetime" => Family::DateTime,
        _ => Family::Unpushable,
    }
}

fn accepts(field: Family, value: ValueFamily) -> bool {
    matches!(
        (field, value),
        (Family::Text | Family::Id, ValueFamily::Text)
            | (Family::Number, ValueFamily::Number)
            | (Family::Bool, ValueFamily::Bool)
            | (Family::Date, ValueFamily::Date)
            | (Family::DateTime, ValueFamily::DateTime)
    )
}

fn has_fraction(value: &Operand) -> Option<bool> {
    match value {
        Operand::Literal(Literal::DateTime(t)) => Some(t.nanosecond() != 0),
        Operand::Literal(_) => Some(false),
        Operand::Param(_) => None,
    }
}

/// `column op value`, with the column on the left.
pub fn comparison(
    f: &FieldFacts,
    op: PgOp,
    value: Operand,
    value_family: ValueFamily,
) -> Option<Pushed> {
    let fam = family(f.salesforce_type);
    if !f.filterable || !accepts(fam, value_family) {
        return None;
    }
    let field = f.api_name.to_string();
    let op = match op {
        PgOp::Compare(op) => op,
        PgOp::Like => {
            if fam != Family::Text {
                return None;
            }
            if let Operand::Literal(Literal::Text(p)) = &value {
                crate::soql::like_pattern(p)?;
            }
            return Some(Pushed {
                condition: Condition::Like {
                    field,
                    pattern: value,
                },
                exact: false,
            });
        }
    };
    let equality = matches!(op, CompareOp::Eq | CompareOp::Ne);
    let exact = match fam {
        // Salesforce's text `!=` ignores case, so it would drop 'Smith' for
        // `<> 'smith'`, a row PostgreSQL keeps.
        Family::Text if op == CompareOp::Ne => return None,
        Family::Text | Family::Id if equality => false,
        Family::Text | Family::Id => return None,
        Family::Bool if equality => true,
        Family::Bool => return None,
        Family::DateTime if equality => match has_fraction(&value) {
            // Salesforce datetime literals have whole seconds.
            Some(false) => op == CompareOp::Eq,
            _ => return None,
        },
        Family::DateTime => has_fraction(&value) == Some(false),
        _ => op != CompareOp::Ne,
    };
    Some(Pushed {
        condition: Condition::Compare { field, op, value },
        exact,
    })
}

/// `column = ANY(array)` (IN) or `column <> ALL(array)` (NOT IN).
pub fn in_list(
    f: &FieldFacts,
    negated: bool,
    values: Operand,
    element_family: ValueFamily,
) -> Option<Pushed> {
    let fam = family(f.salesforce_type);
    if !f.filterable || !accepts(fam, element_family) || fam == Family::DateTime {
        return None;
    }
    // As for `<>`: Salesforce's NOT IN ignores case and would drop rows.
    if negated && fam == Family::Text {
        return None;
    }
    let exact = !negated && matches!(fam, Family::Number | Family::Bool | Family::Date);
    Some(Pushed {
        condition: Condition::In {
            field: f.api_name.to_string(),
            negated,
            values,
        },
        exact,
    })
}

/// `a OR b OR ...`, every side pushed: Salesforce keeps at least the rows
/// of each side, so at least those of the OR; exact when every side is.
pub fn any(sides: Vec<Pushed>) -> Pushed {
    Pushed {
        exact: sides.iter().all(|s| s.exact),
        condition: Condition::Any(sides.into_iter().map(|s| s.condition).collect()),
    }
}

/// `a AND b ...` as a side of an OR: the sides that push, which keep at
/// least the rows of the whole; exact when every side pushed exactly.
pub fn all(sides: Vec<Option<Pushed>>) -> Option<Pushed> {
    let exact = sides.iter().all(|s| s.as_ref().is_some_and(|s| s.exact));
    let pushed: Vec<Condition> = sides.into_iter().flatten().map(|s| s.condition).collect();
    match pushed.len() {
        0 => None,
        1 => pushed
            .into_iter()
            .next()
            .map(|condition| Pushed { condition, exact }),
        _ => Some(Pushed {
            condition: Condition::All(pushed),
            exact,
        }),
    }
}

/// `NOT c`, only for an exact `c`: where PostgreSQL's `c` is false,
/// Salesforce's is too, so `NOT c` keeps those rows. Never exact: where `c`
/// is null PostgreSQL drops the row and Salesforce keeps it.
pub fn not(inner: Pushed) -> Option<Pushed> {
    inner.exact.then(|| Pushed {
        condition: Condition::Not(Box::new(inner.condition)),
        exact: false,
    })
}

/// `column IS [NOT] NULL`. Salesforce booleans are never null, and
/// `= null` on one means false, so those stay local.
pub fn null_test(f: &FieldFacts, negated: bool) -> Option<Pushed> {
    let fam = family(f.salesforce_type);
    if !f.filterable || matches!(fam, Family::Bool | Family::Unpushable) {
        return None;
    }
    Some(Pushed {
        condition: Condition::IsNull {
            field: f.api_name.to_string(),
            negated,
        },
        exact: true,
    })
}

/// A boolean column used as a condition: `WHERE active` or `WHERE NOT active`.
pub fn boolean_test(f: &FieldFacts, value: bool) -> Option<Pushed> {
    comparison(
        f,
        PgOp::Compare(CompareOp::Eq),
        Operand::Literal(Literal::Bool(value)),
        ValueFamily::Bool,
    )
}

/// How deep SOQL follows relationships from the queried object.
pub const MAX_RELATIONSHIP_DEPTH: usize = 5;

/// The relationship a reference field follows to `parent_object`, when
/// joining on the field equals following it: the field points to that one
/// object only (a polymorphic reference reaches a `Name` object instead).
pub fn parent_relationship(
    field_type: &str,
    reference_to: &[String],
    relationship_name: Option<&str>,
    parent_object: &str,
) -> Option<String> {
    let only_parent = matches!(reference_to, [one] if one.eq_ignore_ascii_case(parent_object));
    (field_type == "reference" && only_parent)
        .then(|| relationship_name.map(str::to_string))
        .flatten()
}

/// An ORDER BY key Salesforce sorts exactly as PostgreSQL does. Text is not:
/// Salesforce ignores case and PostgreSQL follows the column's collation.
pub fn sort_key(f: &FieldFacts, descending: bool, nulls_first: bool) -> Option<OrderKey> {
    let exact_order = matches!(
        family(f.salesforce_type),
        Family::Number | Family::Date | Family::DateTime
    );
    (f.sortable && exact_order).then(|| OrderKey {
        field: f.api_name.to_string(),
        descending,
        nulls_first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn field<'a>(name: &'a str, t: &'a str) -> FieldFacts<'a> {
        FieldFacts {
            api_name: name,
            salesforce_type: t,
            filterable: true,
            sortable: true,
            groupable: true,
            aggregatable: true,
        }
    }

    fn text(s: &str) -> Operand {
        Operand::Literal(Literal::Text(s.into()))
    }

    fn num(n: &str) -> Operand {
        Operand::Literal(Literal::Number(n.into()))
    }

    #[test]
    fn only_a_reference_to_the_parent_alone_is_followed() {
        let account = ["Account".to_string()];
        assert_eq!(
            parent_relationship("reference", &account, Some("Account"), "account"),
            Some("Account".into())
        );
        let polymorphic = ["Contact".to_string(), "Lead".to_string()];
        assert_eq!(
            parent_relationship("reference", &polymorphic, Some("Who"), "Contact"),
            None
        );
        assert_eq!(
            parent_relationship("reference", &account, Some("Account"), "User"),
            None
        );
        assert_eq!(parent_relationship("id", &[], None, "Account"), None);
    }

    #[test]
    fn text_is_pushed_but_never_exact() {
        let p = comparison(
            &field("Email", "email"),
            PgOp::Compare(CompareOp::Eq),
            text("a@b.c"),
            ValueFamily::Text,
        )
        .unwrap();
        assert!(!p.exact);
        assert!(
            comparison(
                &field("Email", "email"),
                PgOp::Compare(CompareOp::Lt),
                text("m"),
                ValueFamily::Text
            )
            .is_none(),
            "text order differs"
        );
        assert!(
            !comparison(
                &field("Name", "string"),
                PgOp::Like,
                text("A%"),
                ValueFamily::Text
            )
            .unwrap()
            .exact
        );
        assert!(comparison(
            &field("Id", "id"),
            PgOp::Like,
            text("003%"),
            ValueFamily::Text
        )
        .is_none());
        assert!(comparison(
            &field("Name", "string"),
            PgOp::Like,
            text(r"bad\"),
            ValueFamily::Text
        )
        .is_none());
    }

    #[test]
    fn text_not_equal_stays_local_as_salesforce_would_drop_other_cases() {
        let ne = |f: &FieldFacts| {
            comparison(
                f,
                PgOp::Compare(CompareOp::Ne),
                text("smith"),
                ValueFamily::Text,
            )
        };
        assert_eq!(ne(&field("LastName", "string")), None);
        let list = Operand::Literal(Literal::List(vec![Literal::Text("smith".into())]));
        assert_eq!(
            in_list(
                &field("LastName", "string"),
                true,
                list.clone(),
                ValueFamily::Text
            ),
            None
        );
        // Ids compare exactly in Salesforce: `!=` only keeps nulls more.
        assert!(!ne(&field("AccountId", "reference")).unwrap().exact);
        assert!(in_list(
            &field("AccountId", "reference"),
            true,
            list,
            ValueFamily::Text
        )
        .is_some());
    }

    #[test]
    fn or_sides_push_together_and_not_only_over_exact() {
        let gt = comparison(
            &field("Amount", "currency"),
            PgOp::Compare(CompareOp::Gt),
            num("1"),
            ValueFamily::Number,
        )
        .unwrap();
        let like = comparison(
            &field("Email", "email"),
            PgOp::Like,
            text("%x%"),
            ValueFamily::Text,
        )
        .unwrap();
        assert!(any(vec![gt.clone(), gt.clone()]).exact);
        assert!(!any(vec![gt.clone(), like.clone()]).exact);
        assert_eq!(all(vec![None, None]), None);
        let partial = all(vec![Some(gt.clone()), None]).unwrap();
        assert!(!partial.exact, "a side left out widens the AND");
        assert_eq!(partial.condition, gt.condition);
        assert!(not(like).is_none());
        assert!(!not(gt).unwrap().exact, "a null makes NOT differ");
    }

    #[test]
    fn numbers_and_dates_are_exact_except_not_equal() {
        assert!(
            comparison(
                &field("Amount", "currency"),
                PgOp::Compare(CompareOp::Ge),
                num("10.5"),
                ValueFamily::Number
            )
            .unwrap()
            .exact
        );
        assert!(
            !comparison(
                &field("Amount", "currency"),
                PgOp::Compare(CompareOp::Ne),
                num("1"),
                ValueFamily::Number
            )
            .unwrap()
            .exact,
            "SOQL != keeps nulls"
        );
        assert!(
            comparison(
                &field("Amount", "currency"),
                PgOp::Compare(CompareOp::Eq),
                text("1"),
                ValueFamily::Text
            )
            .is_none(),
            "types must agree"
        );
        assert!(
            comparison(
                &field("Birthdate", "date"),
                PgOp::Compare(CompareOp::Lt),
                Operand::Param(0),
                ValueFamily::Date
            )
            .unwrap()
            .exact
        );
    }

    #[test]
    fn datetimes_with_fractions_are_widened_or_kept_local() {
        let whole = Operand::Literal(Literal::DateTime(
            chrono::Utc.with_ymd_and_hms(2024, 1, 1, 10, 0, 0).unwrap(),
        ));
        let frac = Operand::Literal(Literal::DateTime(
            chrono::Utc.timestamp_millis_opt(1_704_103_200_500).unwrap(),
        ));
        let f = field("CreatedDate", "datetime");
        assert!(
            comparison(
                &f,
                PgOp::Compare(CompareOp::Eq),
                whole.clone(),
                ValueFamily::DateTime
            )
            .unwrap()
            .exact
        );
        assert!(comparison(
            &f,
            PgOp::Compare(CompareOp::Eq),
            frac.clone(),
            ValueFamily::DateTime
        )
        .is_none());
        assert!(
            !comparison(
                &f,
                PgOp::Compare(CompareOp::Gt),
                frac,
                ValueFamily::DateTime
            )
            .unwrap()
            .exact
        );
        assert!(
            !comparison(
                &f,
                PgOp::Compare(CompareOp::Gt),
                Operand::Param(0),
                ValueFamily::DateTime
            )
            .unwrap()
            .exact
        );
        assert!(comparison(
            &f,
            PgOp::Compare(CompareOp::Ne),
            Operand::Param(0),
            ValueFamily::DateTime
        )
        .is_none());
    }

    #[test]
    fn unfilterable_fields_are_never_pushed() {
        let mut f = field("Description", "textarea");
        f.filterable = false;
        assert!(comparison(
            &f,
            PgOp::Compare(CompareOp::Eq),
            text("x"),
            ValueFamily::Text
        )
        .is_none());
        assert!(null_test(&f, false).is_none());
        assert!(in_list(&f, false, Operand::Param(0), ValueFamily::Text).is_none());
    }

    #[test]
    fn in_lists_nulls_and_booleans() {
        assert!(
            in_list(
                &field("NumberOfEmployees", "int"),
                false,
                Operand::Param(0),
                ValueFamily::Number
            )
            .unwrap()
            .exact
        );
        assert!(
            !in_list(
                &field("NumberOfEmployees", "int"),
                true,
                Operand::Param(0),
                ValueFamily::Number
            )
            .unwrap()
            .exact
        );
        assert!(
            !in_list(
                &field("Level__c", "picklist"),
                false,
                Operand::Param(0),
                ValueFamily::Text
            )
            .unwrap()
            .exact
        );
        assert!(null_test(&field("Email", "email"), true).unwrap().exact);
        assert!(null_test(&field("HasOptedOutOfEmail", "boolean"), false).is_none());
        assert!(
            boolean_test(&field("HasOptedOutOfEmail", "boolean"), false)
                .unwrap()
                .exact
        );
        assert!(comparison(
            &field("Languages__c", "multipicklist"),
            PgOp::Compare(CompareOp::Eq),
            text("x"),
            ValueFamily::Text
        )
        .is_none());
    }

    #[test]
    fn only_exactly_ordered_types_sort_remotely() {
        assert!(sort_key(&field("Amount", "currency"), true, false).is_some());
        assert!(sort_key(&field("CreatedDate", "datetime"), false, true).is_some());
        assert!(sort_key(&field("LastName", "string"), false, true).is_none());
        let mut unsortable = field("Amount", "currency");
        unsortable.sortable = false;
        assert!(sort_key(&unsortable, false, true).is_none());
    }

    #[test]
    fn commuting() {
        assert_eq!(
            PgOp::from_name("<").unwrap().commuted(),
            Some(PgOp::Compare(CompareOp::Gt))
        );
        assert_eq!(PgOp::from_name("~~*").unwrap().commuted(), None);
        assert_eq!(PgOp::from_name("<@"), None);
    }
}
