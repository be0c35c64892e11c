//! What Bulk API 2.0 does with SOQL it will not run. Selecting what CSV
//! cannot carry (compound and blob fields, child subqueries) is refused when
//! the job is created, with the errors Salesforce gives. Clauses and functions
//! Bulk does not support (aggregates, GROUP BY, OFFSET, TYPEOF, FIELDS()) are
//! accepted, and the job then fails when it is processed.
//!
//! Some of those constructs are beyond sfsim's planner, so they are found on
//! the statement's tokens: what matters is only whether they are there.

use crate::access::FieldAccess;
use crate::org::Org;
use crate::schema::FieldType;
use crate::soql::lexer::{tokenize, Tok, Token};
use crate::soql::plan::{plan_as, unknown_object, Plan};
use crate::soql::SoqlError;

/// What a job does when it is processed.
pub enum Work {
    Query(Plan),
    /// Fail with this errorMessage.
    Fail(String),
}

/// A statement Bulk accepts: the object it reads, and what the job will do.
pub struct Accepted {
    pub object: usize,
    pub work: Work,
}

const AGGREGATE_FUNCTIONS: &[&str] = &["count", "count_distinct", "sum", "avg", "min", "max"];

fn refused(message: &str) -> SoqlError {
    SoqlError::plain("API_ERROR", message)
}

fn failure(construct: &str) -> String {
    format!("InvalidBatch : Failed to process query: FUNCTIONALITY_NOT_ENABLED: {construct} not supported in Bulk Query")
}

/// The constructs Bulk does not run, as found on the tokens of one statement.
#[derive(Default)]
struct Constructs {
    child_subquery: bool,
    /// The first unsupported construct, by the name its failure gives it.
    first_unsupported: Option<&'static str>,
    /// Whether one is beyond sfsim's planner, so only the object is checked.
    beyond_planner: bool,
    from: Option<(String, usize)>,
}

impl Constructs {
    fn note(&mut self, construct: &'static str, plannable: bool) {
        self.first_unsupported.get_or_insert(construct);
        self.beyond_planner |= !plannable;
    }
}

fn is(tok: Option<&Token>, want: &Tok) -> bool {
    tok.is_some_and(|t| &t.tok == want)
}

fn keyword(tok: Option<&Token>, kw: &str) -> bool {
    tok.is_some_and(|t| t.tok.is_keyword(kw))
}

/// Walks the statement at its top level: the SELECT list, the FROM object,
/// then the clauses after it.
fn constructs(tokens: &[Token]) -> Constructs {
    let mut found = Constructs::default();
    if !keyword(tokens.first(), "select") {
        return found;
    }
    let mut depth = 0usize;
    let mut in_select = true;
    for (i, token) in tokens.iter().enumerate().skip(1) {
        let next = tokens.get(i + 1);
        match &token.tok {
            Tok::LParen => {
                found.child_subquery |= in_select && keyword(next, "select");
                depth += 1;
            }
            Tok::RParen => depth = depth.saturating_sub(1),
            Tok::Ident(word) if in_select => {
                let word = word.to_ascii_lowercase();
                if is(next, &Tok::LParen) && AGGREGATE_FUNCTIONS.contains(&word.as_str()) {
                    let bare_count = word == "count" && is(tokens.get(i + 2), &Tok::RParen);
                    found.note("Aggregate functions", bare_count);
                } else if is(next, &Tok::LParen) && word == "fields" {
                    found.note("FIELDS()", true);
                } else if depth == 0 && word == "typeof" {
                    found.note("TYPEOF", false);
                } else if depth == 0 && word == "from" {
                    in_select = false;
                    if let Some(Token {
                        tok: Tok::Ident(object),
                        at,
                    }) = next
                    {
                        found.from = Some((object.clone(), *at));
                    }
                }
            }
            Tok::Ident(word) if depth == 0 => {
                if word.eq_ignore_ascii_case("group") && keyword(next, "by") {
                    found.note("GROUP BY", false);
                } else if word.eq_ignore_ascii_case("offset") {
                    found.note("OFFSET", true);
                }
            }
            _ => {}
        }
    }
    found
}

/// Decides what a job for `soql` does, or refuses it as Salesforce does when
/// the job is created: SOQL errors as the REST query resource gives them, and
/// Bulk's own refusals as `API_ERROR`.
pub fn check(org: &Org, soql: &str, access: &FieldAccess) -> Result<Accepted, SoqlError> {
    let found = constructs(&tokenize(soql)?);
    if found.child_subquery {
        return Err(refused(
            "Aggregate Relationships not supported in Bulk V2 Query with CSV content type",
        ));
    }
    if let Some(construct) = found.first_unsupported {
        let object = if found.beyond_planner {
            let Some((name, at)) = found.from else {
                return Err(plan_as(org, soql, access).err().unwrap_or_else(|| {
                    SoqlError::malformed(soql, soql.len(), "unexpected token: <EOF>")
                }));
            };
            org.object(&name)
                .ok_or_else(|| unknown_object(soql, at, &name))?
        } else {
            plan_as(org, soql, access)?.object
        };
        return Ok(Accepted {
            object,
            work: Work::Fail(failure(construct)),
        });
    }
    let plan = plan_as(org, soql, access)?;
    for column in &plan.columns {
        match org.def(column.path.object).fields[column.path.field].ftype {
            FieldType::Address | FieldType::Location => {
                return Err(refused(
                    "Selecting compound data not supported in Bulk Query",
                ))
            }
            FieldType::Base64 => {
                return Err(refused(
                    "Blob field not supported in Bulk V2 Query with CSV content type",
                ))
            }
            _ => {}
        }
    }
    Ok(Accepted {
        object: plan.object,
        work: Work::Query(plan),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::EVERYTHING;
    use crate::schema::Schema;
    use chrono::Utc;

    fn org() -> Org {
        Org::new(Schema::builtin(), Utc::now())
    }

    fn failure_of(soql: &str) -> String {
        match check(&org(), soql, &EVERYTHING) {
            Ok(Accepted {
                work: Work::Fail(message),
                ..
            }) => message,
            Ok(_) => panic!("{soql} runs"),
            Err(e) => panic!("{soql} is refused: {}", e.message),
        }
    }

    fn refusal_of(soql: &str) -> SoqlError {
        match check(&org(), soql, &EVERYTHING) {
            Err(e) => e,
            Ok(_) => panic!("{soql} is accepted"),
        }
    }

    #[test]
    fn unsupported_clauses_fail_when_processed() {
        for (soql, construct) in [
            ("SELECT COUNT() FROM Contact", "Aggregate functions"),
            ("SELECT COUNT(Id) FROM Contact", "Aggregate functions"),
            (
                "SELECT LeadSource, SUM(Lifetime_Value__c) FROM Contact GROUP BY LeadSource",
                "Aggregate functions",
            ),
            (
                "SELECT LeadSource FROM Contact GROUP BY LeadSource",
                "GROUP BY",
            ),
            (
                "SELECT Id FROM Contact ORDER BY Id LIMIT 5 OFFSET 10",
                "OFFSET",
            ),
            (
                "SELECT TYPEOF Who WHEN Contact THEN LastName END FROM Task",
                "TYPEOF",
            ),
            ("SELECT FIELDS(STANDARD) FROM Contact", "FIELDS()"),
        ] {
            assert_eq!(
                failure_of(soql),
                format!("InvalidBatch : Failed to process query: FUNCTIONALITY_NOT_ENABLED: {construct} not supported in Bulk Query"),
                "{soql}"
            );
        }
    }

    #[test]
    fn statements_sfsim_can_plan_are_still_checked() {
        let e = refusal_of("SELECT Nope__c FROM Contact OFFSET 5");
        assert_eq!(e.code, "INVALID_FIELD");
        let e = refusal_of("SELECT LeadSource FROM Nope__c GROUP BY LeadSource");
        assert_eq!(e.code, "INVALID_TYPE");
        assert_eq!(refusal_of("SELECT Id FROM").code, "MALFORMED_QUERY");
    }

    #[test]
    fn what_csv_cannot_carry_is_refused_at_once() {
        for (soql, message) in [
            (
                "SELECT Id, MailingAddress FROM Contact",
                "Selecting compound data not supported in Bulk Query",
            ),
            (
                "SELECT Id, Delivery_Location__c FROM Invoice__c",
                "Selecting compound data not supported in Bulk Query",
            ),
            (
                "SELECT Account.BillingAddress FROM Contact",
                "Selecting compound data not supported in Bulk Query",
            ),
            (
                "SELECT Name, Body FROM Document",
                "Blob field not supported in Bulk V2 Query with CSV content type",
            ),
            (
                "SELECT Name, (SELECT LastName FROM Contacts) FROM Account",
                "Aggregate Relationships not supported in Bulk V2 Query with CSV content type",
            ),
        ] {
            let e = refusal_of(soql);
            assert_eq!(
                (e.code, e.message.as_str()),
                ("API_ERROR", message),
                "{soql}"
            );
        }
    }

    #[test]
    fn components_relationships_order_and_limit_run() {
        for soql in [
            "SELECT Id, MailingCity, Account.Name FROM Contact ORDER BY LastName LIMIT 10",
            "SELECT Id FROM Contact WHERE LastName = 'count' AND Title != 'group by'",
            "SELECT Id, Delivery_Location__Latitude__s FROM Invoice__c",
        ] {
            assert!(
                matches!(
                    check(&org(), soql, &EVERYTHING),
                    Ok(Accepted {
                        work: Work::Query(_),
                        ..
                    })
                ),
                "{soql}"
            );
        }
    }
}
