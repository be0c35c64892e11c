//! `/services/data/vNN.N/tooling/query`: the Tooling API's query resource,
//! for the one Tooling object sfsim has, `PlatformEventChannelMember`. Its
//! rows are the objects selected for Change Data Capture on the standard
//! `ChangeEvents` channel (Setup's Change Data Capture page; in sfsim,
//! `POST /__sim/cdc`), one per selected object.
//!
//! The statement goes through sfsim's SOQL parser; what it may hold is
//! checked here, against the object's five fields: a field list, WHERE
//! (`=`, `!=`, `<`, `<=`, `>`, `>=`, `IN`, `NOT IN` with AND, OR, NOT),
//! ORDER BY, LIMIT and OFFSET. Anything else is refused.

use super::data::ApiRequest;
use super::errors::{json, ApiError};
use crate::ids;
use crate::pubsub::entity_name;
use crate::sim::Sim;
use crate::soql::ast::{CmpOp, Cond, Expr, Literal, Path, SelectItem};
use crate::soql::lexer::decode_string;
use crate::soql::plan::{unknown_object, MAX_LITERAL_CHARS, MAX_OFFSET, MAX_STATEMENT_CHARS};
use crate::soql::{parser, SoqlError};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value as Json};
use std::cmp::Ordering;

/// The Tooling object sfsim serves.
pub const OBJECT: &str = "PlatformEventChannelMember";
/// The standard channel's name, which is also what its members' EventChannel holds.
pub const STANDARD_CHANNEL: &str = "ChangeEvents";
/// The key prefix of PlatformEventChannelMember ids.
const KEY_PREFIX: &str = "0v8";
/// PlatformEventChannelMember exists from this API version on.
const SINCE_VERSION: f64 = 47.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Id,
    DeveloperName,
    EventChannel,
    SelectedEntity,
    FullName,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Id,
        Field::DeveloperName,
        Field::EventChannel,
        Field::SelectedEntity,
        Field::FullName,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Id => "Id",
            Field::DeveloperName => "DeveloperName",
            Field::EventChannel => "EventChannel",
            Field::SelectedEntity => "SelectedEntity",
            Field::FullName => "FullName",
        }
    }
}

/// One channel member: an object selected for change events.
#[derive(Clone, Debug, PartialEq)]
struct Member {
    id: String,
    /// The change event's name: `AccountChangeEvent`, `Invoice__ChangeEvent`.
    entity: String,
}

impl Member {
    fn value(&self, field: Field) -> String {
        match field {
            Field::Id => self.id.clone(),
            Field::DeveloperName | Field::FullName => {
                format!("{STANDARD_CHANNEL}_{}", self.entity)
            }
            Field::EventChannel => STANDARD_CHANNEL.to_string(),
            Field::SelectedEntity => self.entity.clone(),
        }
    }

    /// The value as filters and ORDER BY compare it: ids exactly, text ignoring case.
    fn key(&self, field: Field) -> String {
        match field {
            Field::Id => self.id.clone(),
            other => self.value(other).to_lowercase(),
        }
    }
}

/// The org's channel members in Id order. An object's member has the same
/// Id whenever it is selected: the Id is made from the object's position in
/// the schema.
fn members(sim: &Sim) -> Vec<Member> {
    let selected: Vec<String> = sim.pubsub.state().selected.iter().cloned().collect();
    let org = sim.org.read();
    let mut members: Vec<(usize, Member)> = selected
        .iter()
        .filter_map(|name| {
            let object = org.object(name)?;
            let member = Member {
                id: ids::generate(KEY_PREFIX, object as u64 + 1),
                entity: entity_name(&org.def(object).name),
            };
            Some((object, member))
        })
        .collect();
    members.sort_by_key(|(object, _)| *object);
    members.into_iter().map(|(_, m)| m).collect()
}

/// A WHERE condition; operands are keys (see `Member::key`), None for null.
#[derive(Debug)]
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Cmp {
        field: Field,
        op: CmpOp,
        value: Option<String>,
    },
    In {
        field: Field,
        negated: bool,
        values: Vec<Option<String>>,
    },
}

impl Filter {
    fn matches(&self, m: &Member) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches(m)),
            Filter::Or(any) => any.iter().any(|f| f.matches(m)),
            Filter::Not(f) => !f.matches(m),
            Filter::Cmp { field, op, value } => {
                let Some(value) = value else {
                    // No field of a member is ever null.
                    return *op == CmpOp::Ne;
                };
                let order = m.key(*field).as_str().cmp(value.as_str());
                match op {
                    CmpOp::Eq => order.is_eq(),
                    CmpOp::Ne => order.is_ne(),
                    CmpOp::Lt => order.is_lt(),
                    CmpOp::Le => order.is_le(),
                    CmpOp::Gt => order.is_gt(),
                    CmpOp::Ge => order.is_ge(),
                    CmpOp::Like => false,
                }
            }
            Filter::In {
                field,
                negated,
                values,
            } => {
                let key = m.key(*field);
                values.iter().any(|v| v.as_deref() == Some(key.as_str())) != *negated
            }
        }
    }
}

/// A checked statement.
#[derive(Debug)]
struct Statement {
    fields: Vec<Field>,
    filter: Option<Filter>,
    /// Fields to sort by, each with whether it sorts descending.
    order: Vec<(Field, bool)>,
    limit: Option<u64>,
    offset: u64,
}

fn no_such_column(soql: &str, at: usize, name: &str) -> SoqlError {
    SoqlError::at(
        "INVALID_FIELD",
        soql,
        at,
        format!("No such column '{name}' on entity '{OBJECT}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."),
    )
}

/// What sfsim does not serve on this object; Salesforce would run it.
fn unsupported(soql: &str, at: usize, what: &str) -> SoqlError {
    SoqlError::malformed(
        soql,
        at,
        format!("sfsim does not serve {what} in queries of {OBJECT}"),
    )
}

fn field(soql: &str, path: &Path) -> Result<Field, SoqlError> {
    let parts = match path.parts.as_slice() {
        [object, name] if object.eq_ignore_ascii_case(OBJECT) => std::slice::from_ref(name),
        parts => parts,
    };
    match parts {
        [name] => Field::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| no_such_column(soql, path.at, name)),
        [relationship, ..] => Err(SoqlError::at(
            "INVALID_FIELD",
            soql,
            path.at,
            format!("Didn't understand relationship '{relationship}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."),
        )),
        [] => Err(SoqlError::malformed(soql, path.at, "unexpected token")),
    }
}

fn where_field(soql: &str, lhs: &Expr) -> Result<Field, SoqlError> {
    match lhs {
        Expr::Field(path) => field(soql, path),
        Expr::Aggregate { at, .. } => Err(unsupported(soql, *at, "aggregate functions")),
    }
}

/// A literal compared with `field`, as a key; None for null.
fn operand(
    soql: &str,
    field: Field,
    value: &Literal,
    at: usize,
) -> Result<Option<String>, SoqlError> {
    let raw = match value {
        Literal::Null => return Ok(None),
        Literal::Str(raw) => raw,
        _ => {
            return Err(SoqlError::at(
                "INVALID_FIELD",
                soql,
                at,
                format!(
                    "value of filter criterion for field '{}' must be of type string and should be enclosed in quotes",
                    field.name()
                ),
            ))
        }
    };
    let text = decode_string(raw, false).map_err(|m| SoqlError::malformed(soql, at, m))?;
    if text.chars().count() > MAX_LITERAL_CHARS {
        return Err(SoqlError::malformed(
            soql,
            at,
            format!("String literal exceeds the maximum length of {MAX_LITERAL_CHARS} characters"),
        ));
    }
    if field == Field::Id {
        return ids::canonical(&text).map(Some).ok_or_else(|| {
            SoqlError::at(
                "INVALID_QUERY_FILTER_OPERATOR",
                soql,
                at,
                format!("invalid ID field: {text}"),
            )
        });
    }
    Ok(Some(text.to_lowercase()))
}

fn filter(soql: &str, cond: &Cond) -> Result<Filter, SoqlError> {
    let all = |conds: &[Cond]| -> Result<Vec<Filter>, SoqlError> {
        conds.iter().map(|c| filter(soql, c)).collect()
    };
    Ok(match cond {
        Cond::And(conds) => Filter::And(all(conds)?),
        Cond::Or(conds) => Filter::Or(all(conds)?),
        Cond::Not(cond) => Filter::Not(Box::new(filter(soql, cond)?)),
        Cond::Cmp {
            lhs,
            op,
            value,
            value_at,
        } => {
            let field = where_field(soql, lhs)?;
            if *op == CmpOp::Like {
                return Err(unsupported(soql, lhs.at(), "LIKE"));
            }
            Filter::Cmp {
                field,
                op: *op,
                value: operand(soql, field, value, *value_at)?,
            }
        }
        Cond::In {
            lhs,
            negated,
            values,
        } => {
            let field = where_field(soql, lhs)?;
            Filter::In {
                field,
                negated: *negated,
                values: values
                    .iter()
                    .map(|(v, at)| operand(soql, field, v, *at))
                    .collect::<Result<_, _>>()?,
            }
        }
        Cond::Includes { lhs, .. } => {
            return Err(SoqlError::at(
                "INVALID_QUERY_FILTER_OPERATOR",
                soql,
                lhs.at(),
                "includes or excludes operator only valid on multipicklist field",
            ))
        }
    })
}

/// Where a condition starts, for errors about it as a whole.
fn cond_at(cond: &Cond) -> usize {
    match cond {
        Cond::And(conds) | Cond::Or(conds) => conds.first().map_or(0, cond_at),
        Cond::Not(cond) => cond_at(cond),
        Cond::Cmp { lhs, .. } | Cond::In { lhs, .. } | Cond::Includes { lhs, .. } => lhs.at(),
    }
}

impl Statement {
    /// Parses and checks a statement for the API version `version`.
    fn parse(soql: &str, version: &str) -> Result<Statement, SoqlError> {
        if soql.chars().count() > MAX_STATEMENT_CHARS {
            return Err(SoqlError::plain(
                "MALFORMED_QUERY",
                format!("SOQL statements cannot be longer than {MAX_STATEMENT_CHARS} characters."),
            ));
        }
        let q = parser::parse(soql)?;
        let known = version.parse::<f64>().is_ok_and(|v| v >= SINCE_VERSION);
        if !known || !q.from.eq_ignore_ascii_case(OBJECT) {
            return Err(unknown_object(soql, q.from_at, &q.from));
        }
        let mut fields = Vec::new();
        for item in &q.select {
            let path = match item {
                SelectItem::Field { path, alias: None } => path,
                SelectItem::Field {
                    alias: Some(alias), ..
                } => {
                    return Err(SoqlError::malformed(
                        soql,
                        alias.at,
                        format!("unexpected token: '{}'", alias.name),
                    ))
                }
                SelectItem::Count { at } | SelectItem::Aggregate { at, .. } => {
                    return Err(unsupported(soql, *at, "aggregate functions"))
                }
                SelectItem::Fields { at, .. } => return Err(unsupported(soql, *at, "FIELDS()")),
                SelectItem::Subquery { at, .. } => {
                    return Err(unsupported(soql, *at, "subqueries"))
                }
            };
            let f = field(soql, path)?;
            if fields.contains(&f) {
                return Err(SoqlError::malformed(
                    soql,
                    path.at,
                    format!("duplicate field selected: {}", f.name()),
                ));
            }
            fields.push(f);
        }
        if let Some(first) = q.group_by.first() {
            return Err(unsupported(soql, first.at, "GROUP BY"));
        }
        if let Some(having) = &q.having {
            return Err(unsupported(soql, cond_at(having), "HAVING"));
        }
        let filter = q.filter.as_ref().map(|c| filter(soql, c)).transpose()?;
        let order = q
            .order_by
            .iter()
            .map(|item| Ok((where_field(soql, &item.expr)?, item.descending)))
            .collect::<Result<_, SoqlError>>()?;
        let offset = match q.offset {
            Some((n, at)) if n > MAX_OFFSET => {
                return Err(SoqlError::at(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    soql,
                    at,
                    format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
                ))
            }
            Some((n, _)) => n,
            None => 0,
        };
        Ok(Statement {
            fields,
            filter,
            order,
            limit: q.limit,
            offset,
        })
    }

    /// The rows the statement answers from `members` (in Id order).
    fn run(&self, members: Vec<Member>) -> Result<Vec<Member>, SoqlError> {
        let mut rows: Vec<Member> = members
            .into_iter()
            .filter(|m| self.filter.as_ref().is_none_or(|f| f.matches(m)))
            .collect();
        // A stable sort: rows equal on every key stay in Id order.
        rows.sort_by(|a, b| {
            self.order
                .iter()
                .map(|(f, descending)| {
                    let o = a.key(*f).cmp(&b.key(*f));
                    if *descending {
                        o.reverse()
                    } else {
                        o
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
        let rows: Vec<Member> = rows
            .into_iter()
            .skip(usize::try_from(self.offset).unwrap_or(usize::MAX))
            .take(
                self.limit
                    .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            )
            .collect();
        if self.fields.contains(&Field::FullName) && rows.len() > 1 {
            return Err(SoqlError::plain(
                "MALFORMED_QUERY",
                format!("When retrieving results with Metadata or FullName fields, the query qualifications must specify no more than one row for retrieval. Result size: {}", rows.len()),
            ));
        }
        Ok(rows)
    }
}

/// The Tooling API's query answer: the REST query's, with `size`,
/// `queryLocator` and `entityTypeName` as the Tooling API adds them.
fn answer(version: &str, fields: &[Field], rows: &[Member]) -> Json {
    let records: Vec<Json> = rows
        .iter()
        .map(|m| {
            let mut record = Map::new();
            record.insert(
                "attributes".into(),
                serde_json::json!({
                    "type": OBJECT,
                    "url": format!("/services/data/v{version}/tooling/sobjects/{OBJECT}/{}", m.id),
                }),
            );
            for f in fields {
                record.insert(f.name().into(), Json::String(m.value(*f)));
            }
            Json::Object(record)
        })
        .collect();
    let entity = (!rows.is_empty()).then_some(OBJECT);
    serde_json::json!({
        "size": rows.len(),
        "totalSize": rows.len(),
        "done": true,
        "queryLocator": null,
        "entityTypeName": entity,
        "records": records,
    })
}

/// `GET /tooling/query?q=`.
pub fn query(req: &mut ApiRequest) -> Result<Response, ApiError> {
    let soql = super::data::soql_param(req)?;
    let statement = Statement::parse(&soql, req.version)?;
    let rows = statement.run(members(req.sim))?;
    req.info.records = Some(rows.len());
    Ok(json(
        StatusCode::OK,
        &answer(req.version, &statement.fields, &rows),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u64, entity: &str) -> Member {
        Member {
            id: ids::generate(KEY_PREFIX, n),
            entity: entity.to_string(),
        }
    }

    fn selection() -> Vec<Member> {
        vec![
            member(2, "AccountChangeEvent"),
            member(3, "ContactChangeEvent"),
            member(11, "Invoice__ChangeEvent"),
        ]
    }

    fn entities(soql: &str) -> Vec<String> {
        Statement::parse(soql, "62.0")
            .and_then(|s| s.run(selection()))
            .unwrap_or_else(|e| panic!("{soql}: {}", e.message))
            .into_iter()
            .map(|m| m.entity)
            .collect()
    }

    fn error(soql: &str, version: &str) -> SoqlError {
        Statement::parse(soql, version)
            .and_then(|s| s.run(selection()))
            .expect_err(soql)
    }

    #[test]
    fn members_are_named_after_the_standard_channel() {
        let m = member(2, "Invoice__ChangeEvent");
        assert_eq!(
            m.value(Field::DeveloperName),
            "ChangeEvents_Invoice__ChangeEvent"
        );
        assert_eq!(
            m.value(Field::FullName),
            "ChangeEvents_Invoice__ChangeEvent"
        );
        assert_eq!(m.value(Field::EventChannel), "ChangeEvents");
        assert_eq!(m.value(Field::SelectedEntity), "Invoice__ChangeEvent");
        assert!(m.value(Field::Id).starts_with("0v8") && m.id.len() == 18);
    }

    #[test]
    fn where_order_by_limit_and_offset_select_rows() {
        let all = [
            "AccountChangeEvent",
            "ContactChangeEvent",
            "Invoice__ChangeEvent",
        ];
        let q = "SELECT Id FROM PlatformEventChannelMember";
        assert_eq!(entities(q), all);
        assert_eq!(
            entities(&format!("{q} WHERE EventChannel = 'ChangeEvents'")),
            all
        );
        assert_eq!(
            entities(&format!("{q} WHERE eventchannel = 'changeevents'")),
            all
        );
        assert!(entities(&format!("{q} WHERE EventChannel = 'Order_Channel__chn'")).is_empty());
        assert!(entities(&format!("{q} WHERE EventChannel = null")).is_empty());
        assert_eq!(
            entities(&format!(
                "{q} WHERE EventChannel = 'ChangeEvents' AND SelectedEntity IN ('ContactChangeEvent', 'Invoice__ChangeEvent')"
            )),
            ["ContactChangeEvent", "Invoice__ChangeEvent"]
        );
        assert_eq!(
            entities(&format!(
                "{q} WHERE NOT (DeveloperName = 'ChangeEvents_AccountChangeEvent' OR SelectedEntity = 'ContactChangeEvent')"
            )),
            ["Invoice__ChangeEvent"]
        );
        assert_eq!(
            entities(&format!("{q} ORDER BY SelectedEntity DESC LIMIT 2")),
            ["Invoice__ChangeEvent", "ContactChangeEvent"]
        );
        assert_eq!(
            entities(&format!("{q} ORDER BY Id LIMIT 1 OFFSET 1")),
            ["ContactChangeEvent"]
        );
        let id = ids::generate(KEY_PREFIX, 3);
        assert_eq!(
            entities(&format!("{q} WHERE Id = '{}'", &id[..15])),
            ["ContactChangeEvent"]
        );
        assert_eq!(
            entities(&format!("SELECT PlatformEventChannelMember.SelectedEntity FROM PlatformEventChannelMember WHERE Id != '{id}'")),
            ["AccountChangeEvent", "Invoice__ChangeEvent"]
        );
    }

    #[test]
    fn full_name_needs_a_single_row() {
        let e = error("SELECT FullName FROM PlatformEventChannelMember", "62.0");
        assert_eq!(e.code, "MALFORMED_QUERY");
        assert!(e.message.ends_with("Result size: 3"), "{}", e.message);
        assert_eq!(
            entities("SELECT Id, FullName FROM PlatformEventChannelMember WHERE SelectedEntity = 'AccountChangeEvent'"),
            ["AccountChangeEvent"]
        );
        assert_eq!(
            entities("SELECT FullName FROM PlatformEventChannelMember LIMIT 1"),
            ["AccountChangeEvent"]
        );
    }

    #[test]
    fn statements_sfsim_cannot_answer_are_refused() {
        let cases = [
            ("SELECT Id FROM ApexClass", "INVALID_TYPE"),
            ("SELECT Id FROM Account", "INVALID_TYPE"),
            ("SELECT Id FROM", "MALFORMED_QUERY"),
            (
                "SELECT Name FROM PlatformEventChannelMember",
                "INVALID_FIELD",
            ),
            (
                "SELECT EventChannel.Name FROM PlatformEventChannelMember",
                "INVALID_FIELD",
            ),
            (
                "SELECT Id, id FROM PlatformEventChannelMember",
                "MALFORMED_QUERY",
            ),
            (
                "SELECT COUNT() FROM PlatformEventChannelMember",
                "MALFORMED_QUERY",
            ),
            (
                "SELECT FIELDS(ALL) FROM PlatformEventChannelMember LIMIT 1",
                "MALFORMED_QUERY",
            ),
            (
                "SELECT Id FROM PlatformEventChannelMember WHERE SelectedEntity LIKE 'A%'",
                "MALFORMED_QUERY",
            ),
            (
                "SELECT Id FROM PlatformEventChannelMember WHERE SelectedEntity = 1",
                "INVALID_FIELD",
            ),
            (
                "SELECT Id FROM PlatformEventChannelMember WHERE Id = 'nope'",
                "INVALID_QUERY_FILTER_OPERATOR",
            ),
            (
                "SELECT Id FROM PlatformEventChannelMember WHERE Nope = 'x'",
                "INVALID_FIELD",
            ),
            (
                "SELECT Id FROM PlatformEventChannelMember ORDER BY Nope",
                "INVALID_FIELD",
            ),
            (
                "SELECT Id FROM PlatformEventChannelMember OFFSET 2001",
                "NUMBER_OUTSIDE_VALID_RANGE",
            ),
        ];
        for (soql, code) in cases {
            assert_eq!(error(soql, "62.0").code, code, "{soql}");
        }
        let e = error("SELECT Id FROM ApexClass", "62.0");
        assert!(
            e.message
                .contains("sObject type 'ApexClass' is not supported."),
            "{}",
            e.message
        );
        let e = error("SELECT Id FROM PlatformEventChannelMember", "46.0");
        assert_eq!(e.code, "INVALID_TYPE", "the object came in v47.0");
    }

    #[test]
    fn the_answer_has_the_tooling_shape() {
        let rows = selection();
        let body = answer("62.0", &[Field::SelectedEntity, Field::Id], &rows[..1]);
        assert_eq!(
            body,
            serde_json::json!({
                "size": 1, "totalSize": 1, "done": true, "queryLocator": null,
                "entityTypeName": "PlatformEventChannelMember",
                "records": [{
                    "attributes": {"type": "PlatformEventChannelMember", "url": format!("/services/data/v62.0/tooling/sobjects/PlatformEventChannelMember/{}", rows[0].id)},
                    "SelectedEntity": "AccountChangeEvent",
                    "Id": rows[0].id,
                }],
            })
        );
        let keys: Vec<&String> = body["records"][0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["attributes", "SelectedEntity", "Id"]);
        assert_eq!(
            answer("62.0", &[Field::Id], &[])["entityTypeName"],
            Json::Null
        );
    }
}
