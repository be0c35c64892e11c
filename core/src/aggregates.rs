//! Which aggregates and groupings Salesforce answers exactly as PostgreSQL
//! would, decided apart from how SOQL is printed. A refusal says why, for
//! EXPLAIN VERBOSE.

use crate::pushdown::{FieldFacts, ValueFamily};
use crate::soql::{CompareOp, Condition, Operand};

/// A built-in PostgreSQL aggregate over at most one column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateFunction {
    /// `count(*)`
    CountRows,
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggregateFunction {
    /// The aggregate a call names, if it is one of ours.
    pub fn from_call(name: &str, star: bool, distinct: bool) -> Option<AggregateFunction> {
        Some(match (name, star, distinct) {
            ("count", true, false) => AggregateFunction::CountRows,
            ("count", false, false) => AggregateFunction::Count,
            ("count", false, true) => AggregateFunction::CountDistinct,
            ("sum", false, false) => AggregateFunction::Sum,
            ("avg", false, false) => AggregateFunction::Avg,
            ("min", false, false) => AggregateFunction::Min,
            ("max", false, false) => AggregateFunction::Max,
            _ => return None,
        })
    }
}

/// What Salesforce is asked for, to give one aggregate's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Asked {
    /// One SOQL aggregate, such as `SUM(Amount)`.
    Expression(String),
    /// An average. PostgreSQL divides in the result's own type (numeric
    /// for integers and currency), while Salesforce's AVG is a double, so
    /// the sum and the count are asked for and divided locally.
    Quotient { sum: String, count: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedAggregate {
    pub asked: Asked,
    /// How the value compares, for HAVING.
    pub compares_as: ValueFamily,
}

/// Types whose equality in SOQL is PostgreSQL's: text ignores case there.
fn groups_exactly(salesforce_type: &str) -> bool {
    matches!(
        salesforce_type,
        "id" | "reference"
            | "picklist"
            | "boolean"
            | "int"
            | "long"
            | "double"
            | "currency"
            | "percent"
            | "date"
    )
}

fn is_number(salesforce_type: &str) -> bool {
    matches!(
        salesforce_type,
        "int" | "long" | "double" | "currency" | "percent"
    )
}

/// Types SOQL orders as PostgreSQL does: not text (case), picklists (their
/// values' order) or ids.
fn orders_exactly(salesforce_type: &str) -> Option<ValueFamily> {
    match salesforce_type {
        t if is_number(t) => Some(ValueFamily::Number),
        "date" => Some(ValueFamily::Date),
        "datetime" => Some(ValueFamily::DateTime),
        _ => None,
    }
}

/// The SOQL field of a GROUP BY key.
pub fn group_key(f: &FieldFacts) -> Result<String, String> {
    if !f.groupable {
        return Err(format!("Salesforce cannot group by {}", f.api_name));
    }
    if !groups_exactly(f.salesforce_type) {
        return Err(format!(
            "Salesforce groups {} ({}) ignoring case",
            f.api_name, f.salesforce_type
        ));
    }
    Ok(f.api_name.to_string())
}

/// How Salesforce computes `function` over the column of `field` (None for count(*)).
pub fn aggregate(
    function: AggregateFunction,
    field: Option<&FieldFacts>,
) -> Result<PushedAggregate, String> {
    let number = |asked| {
        Ok(PushedAggregate {
            asked,
            compares_as: ValueFamily::Number,
        })
    };
    let f = match (function, field) {
        (AggregateFunction::CountRows, _) => return number(Asked::Expression("COUNT(Id)".into())),
        (_, Some(f)) => f,
        (_, None) => return Err("the aggregate's argument is not a Salesforce field".into()),
    };
    let name = f.api_name;
    let t = f.salesforce_type;
    if !f.aggregatable {
        return Err(format!("Salesforce cannot aggregate {name}"));
    }
    match function {
        AggregateFunction::CountRows | AggregateFunction::Count => {
            number(Asked::Expression(format!("COUNT({name})")))
        }
        AggregateFunction::CountDistinct if groups_exactly(t) => {
            number(Asked::Expression(format!("COUNT_DISTINCT({name})")))
        }
        AggregateFunction::CountDistinct => Err(format!(
            "Salesforce counts distinct values of {name} ({t}) ignoring case"
        )),
        AggregateFunction::Sum if is_number(t) => number(Asked::Expression(format!("SUM({name})"))),
        AggregateFunction::Avg if is_number(t) => number(Asked::Quotient {
            sum: format!("SUM({name})"),
            count: format!("COUNT({name})"),
        }),
        AggregateFunction::Sum | AggregateFunction::Avg => {
            Err(format!("{name} ({t}) is not a number"))
        }
        AggregateFunction::Min | AggregateFunction::Max => match orders_exactly(t) {
            Some(family) => Ok(PushedAggregate {
                asked: Asked::Expression(format!(
                    "{}({name})",
                    if function == AggregateFunction::Min {
                        "MIN"
                    } else {
                        "MAX"
                    }
                )),
                compares_as: family,
            }),
            None => Err(format!(
                "Salesforce orders {name} ({t}) otherwise than PostgreSQL"
            )),
        },
    }
}

/// A HAVING clause `aggregate op value`, when Salesforce decides it exactly.
pub fn having(
    aggregate: &PushedAggregate,
    op: CompareOp,
    value: Operand,
    value_family: ValueFamily,
) -> Result<Condition, String> {
    let Asked::Expression(expression) = &aggregate.asked else {
        return Err("an average is divided locally, so HAVING on it cannot be sent".into());
    };
    // Datetimes carry fractions of a second SOQL cannot say.
    let comparable = matches!(value_family, ValueFamily::Number | ValueFamily::Date)
        && value_family == aggregate.compares_as;
    if !comparable || matches!(value, Operand::Param(_)) {
        return Err(format!(
            "HAVING on {expression} compares with a value SOQL cannot say exactly"
        ));
    }
    Ok(Condition::Compare {
        field: expression.clone(),
        op,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soql::Literal;

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

    fn expression(function: AggregateFunction, f: &FieldFacts) -> Result<Asked, String> {
        aggregate(function, Some(f)).map(|a| a.asked)
    }

    #[test]
    fn text_is_never_grouped_nor_counted_distinct_but_picklists_and_ids_are() {
        assert!(group_key(&field("LastName", "string")).is_err());
        assert!(group_key(&field("Title", "textarea")).is_err());
        assert_eq!(
            group_key(&field("StageName", "picklist")).unwrap(),
            "StageName"
        );
        assert_eq!(
            group_key(&field("AccountId", "reference")).unwrap(),
            "AccountId"
        );
        let mut not_groupable = field("Amount", "currency");
        not_groupable.groupable = false;
        assert!(group_key(&not_groupable).is_err());
        assert!(expression(AggregateFunction::CountDistinct, &field("Email", "email")).is_err());
        assert_eq!(
            expression(
                AggregateFunction::CountDistinct,
                &field("AccountId", "reference")
            ),
            Ok(Asked::Expression("COUNT_DISTINCT(AccountId)".into()))
        );
    }

    #[test]
    fn averages_are_divided_locally_and_sums_need_numbers() {
        assert_eq!(
            expression(AggregateFunction::Avg, &field("Amount", "currency")),
            Ok(Asked::Quotient {
                sum: "SUM(Amount)".into(),
                count: "COUNT(Amount)".into()
            })
        );
        assert_eq!(
            expression(AggregateFunction::Sum, &field("NumberOfEmployees", "int")),
            Ok(Asked::Expression("SUM(NumberOfEmployees)".into()))
        );
        assert!(expression(AggregateFunction::Sum, &field("Name", "string")).is_err());
        assert_eq!(
            aggregate(AggregateFunction::CountRows, None).unwrap().asked,
            Asked::Expression("COUNT(Id)".into())
        );
        let mut long_text = field("Description", "textarea");
        long_text.aggregatable = false;
        assert!(expression(AggregateFunction::Count, &long_text).is_err());
    }

    #[test]
    fn min_and_max_only_where_salesforce_orders_as_postgresql() {
        for t in ["string", "picklist", "id", "boolean"] {
            assert!(
                expression(AggregateFunction::Max, &field("F", t)).is_err(),
                "{t}"
            );
        }
        let max = aggregate(AggregateFunction::Max, Some(&field("CloseDate", "date"))).unwrap();
        assert_eq!(max.asked, Asked::Expression("MAX(CloseDate)".into()));
        assert_eq!(max.compares_as, ValueFamily::Date);
    }

    #[test]
    fn having_compares_exact_aggregates_with_constants_of_their_kind() {
        let count = aggregate(AggregateFunction::CountRows, None).unwrap();
        let five = Operand::Literal(Literal::Number("5".into()));
        assert_eq!(
            having(&count, CompareOp::Gt, five.clone(), ValueFamily::Number),
            Ok(Condition::Compare {
                field: "COUNT(Id)".into(),
                op: CompareOp::Gt,
                value: five.clone()
            })
        );
        assert!(having(
            &count,
            CompareOp::Gt,
            Operand::Param(0),
            ValueFamily::Number
        )
        .is_err());
        assert!(having(&count, CompareOp::Gt, five.clone(), ValueFamily::Date).is_err());
        let avg = aggregate(AggregateFunction::Avg, Some(&field("Amount", "currency"))).unwrap();
        assert!(having(&avg, CompareOp::Gt, five, ValueFamily::Number).is_err());
    }
}
