//! The SOQL a sync sends. Backfill pages go in Id order so a checkpoint (the
//! last Id copied) says exactly what is done; changes go in SystemModstamp
//! order so the cursor only moves forward.

use crate::soql::literal::Literal;
use crate::soql::{CompareOp, Condition, Operand, OrderKey, Soql};
use chrono::{DateTime, Utc};

fn select(object: &str, fields: Vec<String>) -> Soql {
    Soql {
        object: object.to_string(),
        fields,
        ..Soql::default()
    }
}

fn ascending(field: &str) -> OrderKey {
    OrderKey {
        field: field.into(),
        descending: false,
        nulls_first: false,
    }
}

pub fn count(object: &str) -> String {
    Soql {
        count: true,
        ..select(object, vec![])
    }
    .render()
}

/// The newest SystemModstamp: where changes start once the backfill is done.
pub fn newest_stamp(object: &str) -> String {
    let mut q = select(object, vec!["SystemModstamp".into()]);
    q.order_by = vec![OrderKey {
        field: "SystemModstamp".into(),
        descending: true,
        nulls_first: false,
    }];
    q.limit = Some(1);
    q.render()
}

pub fn backfill(object: &str, fields: &[String], after: Option<&str>) -> String {
    let mut q = select(object, fields.to_vec());
    if let Some(id) = after {
        q.conditions.push(Condition::Compare {
            field: "Id".into(),
            op: CompareOp::Gt,
            value: Operand::Literal(Literal::Text(id.into())),
        });
    }
    q.order_by = vec![ascending("Id")];
    q.render()
}

/// A Bulk backfill's query: every record, in no order, so Salesforce can
/// split the job by Id itself.
pub fn bulk_backfill(object: &str, fields: &[String]) -> String {
    select(object, fields.to_vec()).render()
}

/// Records changed at or after `since`, deleted ones included (for queryAll).
pub fn changes(object: &str, fields: &[String], since: Option<DateTime<Utc>>) -> String {
    let mut all = fields.to_vec();
    if !all.iter().any(|f| f.eq_ignore_ascii_case("IsDeleted")) {
        all.push("IsDeleted".into());
    }
    let mut q = select(object, all);
    if let Some(t) = since {
        q.conditions.push(Condition::Compare {
            field: "SystemModstamp".into(),
            op: CompareOp::Ge,
            value: Operand::Literal(Literal::DateTime(t)),
        });
    }
    q.order_by = vec![ascending("SystemModstamp"), ascending("Id")];
    q.render()
}

/// Every record's Id and formula fields, for a formula refresh.
pub fn formulas(object: &str, formula_fields: &[String]) -> String {
    let mut fields = vec!["Id".to_string()];
    fields.extend(formula_fields.iter().cloned());
    select(object, fields).render()
}

pub fn all_ids(object: &str) -> String {
    select(object, vec!["Id".into()]).render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn statements() {
        let fields = vec!["Id".to_string(), "LastName".to_string()];
        assert_eq!(count("Contact"), "SELECT COUNT() FROM Contact");
        assert_eq!(
            newest_stamp("Contact"),
            "SELECT SystemModstamp FROM Contact ORDER BY SystemModstamp DESC NULLS LAST LIMIT 1"
        );
        assert_eq!(
            backfill("Contact", &fields, None),
            "SELECT Id, LastName FROM Contact ORDER BY Id ASC NULLS LAST"
        );
        assert_eq!(
            backfill("Contact", &fields, Some("003'x")),
            "SELECT Id, LastName FROM Contact WHERE Id > '003\\'x' ORDER BY Id ASC NULLS LAST"
        );
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap();
        assert_eq!(
            changes("Contact", &fields, Some(t)),
            "SELECT Id, LastName, IsDeleted FROM Contact WHERE SystemModstamp >= 2026-11-22T09:30:00Z ORDER BY SystemModstamp ASC NULLS LAST, Id ASC NULLS LAST"
        );
        assert_eq!(all_ids("Contact"), "SELECT Id FROM Contact");
    }
}
