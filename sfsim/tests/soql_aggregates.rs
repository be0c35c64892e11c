//! Aggregate queries and parent-to-child subqueries, against the planner
//! and evaluator over a small org made for the purpose.

use chrono::Utc;
use serde_json::{json, Value};
use sfsim::org::{Author, Org, Undo};
use sfsim::schema::Schema;
use sfsim::seed;
use sfsim::soql::plan::{self, Projection};
use sfsim::soql::{group, SoqlError};

struct Fixture {
    org: Org,
    author: Author,
}

impl Fixture {
    fn new() -> Fixture {
        let mut org = Org::new(Schema::builtin(), Utc::now());
        seed::populate(&mut org, &seed::plan("empty").unwrap()).unwrap();
        let author = Author {
            user_id: org.admin_user_id.clone(),
            now: Utc::now(),
        };
        let mut f = Fixture { org, author };
        let acme = f.add(
            "Account",
            json!({"Name": "Acme", "NumberOfEmployees": 10, "Rating": "Hot"}),
        );
        let globex = f.add(
            "Account",
            json!({"Name": "Globex", "NumberOfEmployees": 15}),
        );
        f.add("Account", json!({"Name": "Initech"}));
        f.add("Contact", json!({"LastName": "Zed", "Title": "Engineer", "AccountId": acme, "Lifetime_Value__c": 100.5, "Birthdate": "1980-05-01", "Level__c": "Tertiary"}));
        f.add("Contact", json!({"LastName": "alpha", "Title": "ENGINEER", "AccountId": acme, "Lifetime_Value__c": 20, "Birthdate": "1990-01-31", "Level__c": "Secondary"}));
        f.add("Contact", json!({"LastName": "Beta", "AccountId": globex}));
        f.add("Contact", json!({"LastName": "Gamma", "Title": "Manager"}));
        f
    }

    fn add(&mut self, object: &str, body: Value) -> String {
        let o = self.org.object(object).unwrap();
        self.org
            .create(
                o,
                body.as_object().unwrap(),
                &self.author,
                &mut Undo::default(),
            )
            .unwrap()
    }

    fn run(&self, soql: &str) -> Result<Vec<Value>, SoqlError> {
        let plan = plan::plan(&self.org, soql)?;
        let Projection::Aggregate(agg) = &plan.projection else {
            panic!("{soql} is not an aggregate query");
        };
        let rows = group::run(&self.org, &plan, agg, false);
        Ok(group::to_records(agg, &rows))
    }

    fn rows(&self, soql: &str) -> Vec<Value> {
        self.run(soql).unwrap_or_else(|e| panic!("{soql}: {e:?}"))
    }

    fn error(&self, soql: &str) -> SoqlError {
        match plan::plan(&self.org, soql) {
            Err(e) => e,
            Ok(_) => panic!("{soql} is accepted"),
        }
    }
}

fn keys(row: &Value) -> Vec<&str> {
    row.as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn unaliased_aggregates_are_expr_n_in_order_and_aliases_name_columns() {
    let f = Fixture::new();
    let rows = f.rows(
        "SELECT Title, COUNT(Id), SUM(Lifetime_Value__c) total, MAX(Birthdate) FROM Contact GROUP BY Title",
    );
    assert_eq!(
        keys(&rows[0]),
        ["attributes", "Title", "expr0", "total", "expr1"]
    );
    assert_eq!(rows[0]["attributes"], json!({"type": "AggregateResult"}));
    let aliased = f.rows("SELECT Title t, COUNT(Id) n FROM Contact GROUP BY Title");
    assert_eq!(keys(&aliased[0]), ["attributes", "t", "n"]);
}

#[test]
fn text_groups_ignore_case_and_nulls_form_one_group() {
    let f = Fixture::new();
    let rows = f.rows("SELECT Title, COUNT(Id) FROM Contact GROUP BY Title");
    assert_eq!(
        rows.iter()
            .map(|r| (r["Title"].clone(), r["expr0"].clone()))
            .collect::<Vec<_>>(),
        [
            (Value::Null, json!(1)),
            (json!("Engineer"), json!(2)),
            (json!("Manager"), json!(1)),
        ],
        "nulls first, the first record's spelling"
    );
}

#[test]
fn ids_group_exactly_and_parent_fields_keep_their_last_name() {
    let f = Fixture::new();
    let by_account = f.rows("SELECT AccountId, COUNT(Id) FROM Contact GROUP BY AccountId");
    assert_eq!(by_account.len(), 3);
    assert_eq!(by_account[0]["AccountId"], Value::Null);
    let by_name = f.rows(
        "SELECT Account.Name, COUNT(Id) n FROM Contact GROUP BY Account.Name ORDER BY Account.Name NULLS LAST",
    );
    assert_eq!(keys(&by_name[0]), ["attributes", "Name", "n"]);
    assert_eq!(
        by_name
            .iter()
            .map(|r| r["Name"].clone())
            .collect::<Vec<_>>(),
        [json!("Acme"), json!("Globex"), Value::Null]
    );
}

#[test]
fn counts_sums_and_averages_follow_salesforce() {
    let f = Fixture::new();
    let row = &f.rows(
        "SELECT COUNT(Id), COUNT(Title), COUNT_DISTINCT(Title), SUM(Lifetime_Value__c), AVG(Lifetime_Value__c) FROM Contact",
    )[0];
    assert_eq!(row["expr0"], 4);
    assert_eq!(row["expr1"], 3, "COUNT(field) counts non-nulls");
    assert_eq!(row["expr2"], 2, "distinct text ignores case");
    assert_eq!(row["expr3"], json!(120.5), "SUM of currency is a number");
    assert_eq!(row["expr4"], json!(60.25), "AVG ignores nulls");
    let accounts = &f.rows("SELECT SUM(NumberOfEmployees), AVG(NumberOfEmployees) FROM Account")[0];
    assert_eq!(accounts["expr0"], json!(25));
    assert!(accounts["expr0"].is_i64(), "SUM of an int is an integer");
    assert_eq!(accounts["expr1"], json!(12.5), "AVG of an int is a decimal");
}

#[test]
fn without_group_by_there_is_exactly_one_row() {
    let f = Fixture::new();
    let rows = f.rows(
        "SELECT COUNT(Id), SUM(Lifetime_Value__c), MIN(LastName) FROM Contact WHERE LastName = 'nobody'",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["expr0"], 0);
    assert_eq!(rows[0]["expr1"], Value::Null, "SUM over no values is null");
    assert_eq!(rows[0]["expr2"], Value::Null);
}

#[test]
fn min_and_max_cover_text_dates_and_picklists() {
    let f = Fixture::new();
    let row = &f.rows(
        "SELECT MIN(LastName), MAX(LastName), MIN(Birthdate), MAX(Birthdate), MIN(Level__c), MAX(Level__c), MAX(CreatedDate) FROM Contact",
    )[0];
    assert_eq!(row["expr0"], "alpha", "text compares ignoring case");
    assert_eq!(row["expr1"], "Zed");
    assert_eq!(row["expr2"], "1980-05-01");
    assert_eq!(row["expr3"], "1990-01-31");
    assert_eq!(
        (row["expr4"].as_str(), row["expr5"].as_str()),
        (Some("Secondary"), Some("Tertiary")),
        "picklists follow their values' order"
    );
    assert!(row["expr6"].as_str().unwrap().ends_with("+0000"));
}

#[test]
fn having_filters_groups_on_aggregates_and_grouped_fields() {
    let f = Fixture::new();
    let rows = f.rows("SELECT Title, COUNT(Id) c FROM Contact GROUP BY Title HAVING COUNT(Id) > 1");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Title"], "Engineer");
    let rows =
        f.rows("SELECT Title FROM Contact GROUP BY Title HAVING Title = 'manager' OR Title = null");
    assert_eq!(rows.len(), 2);
    let rows = f.rows(
        "SELECT AccountId FROM Contact GROUP BY AccountId HAVING SUM(Lifetime_Value__c) >= 100",
    );
    assert_eq!(rows.len(), 1);
    let e = f.error("SELECT Title FROM Contact GROUP BY Title HAVING LastName = 'x'");
    assert_eq!(e.code, "MALFORMED_QUERY");
    assert!(
        e.message
            .ends_with("Field must be grouped or aggregated: LastName"),
        "{}",
        e.message
    );
}

#[test]
fn order_by_aggregates_and_limit_apply_to_groups() {
    let f = Fixture::new();
    let rows = f.rows(
        "SELECT Title, COUNT(Id) FROM Contact GROUP BY Title ORDER BY COUNT(Id) DESC, Title LIMIT 2",
    );
    assert_eq!(
        rows.iter().map(|r| r["Title"].clone()).collect::<Vec<_>>(),
        [json!("Engineer"), Value::Null]
    );
    let e = f.error("SELECT Title FROM Contact GROUP BY Title ORDER BY LastName");
    assert!(
        e.message
            .ends_with("Ordered field must be grouped or aggregated: LastName"),
        "{}",
        e.message
    );
}

#[test]
fn group_by_without_aggregates_lists_distinct_values() {
    let f = Fixture::new();
    let rows = f.rows("SELECT Rating FROM Account GROUP BY Rating");
    assert_eq!(
        rows,
        [
            json!({"attributes": {"type": "AggregateResult"}, "Rating": null}),
            json!({"attributes": {"type": "AggregateResult"}, "Rating": "Hot"})
        ]
    );
}

#[test]
fn fields_neither_grouped_nor_aggregated_are_refused() {
    let f = Fixture::new();
    let e = f.error("SELECT Title, LastName FROM Contact GROUP BY Title");
    assert_eq!(e.code, "MALFORMED_QUERY");
    assert_eq!(
        e.message,
        "\nSELECT Title, LastName FROM Contact GROUP BY Title\n              ^\nERROR at Row:1:Column:15\nField must be grouped or aggregated: LastName"
    );
    let e = f.error("SELECT LastName, COUNT(Id) FROM Contact");
    assert!(e
        .message
        .ends_with("Field must be grouped or aggregated: LastName"));
    let e = f.error("SELECT Account.Name FROM Contact GROUP BY AccountId");
    assert!(e
        .message
        .ends_with("Field must be grouped or aggregated: Account.Name"));
}

#[test]
fn fields_that_cannot_be_grouped_or_aggregated_are_refused() {
    let f = Fixture::new();
    for (soql, field) in [
        (
            "SELECT Description FROM Contact GROUP BY Description",
            "Description",
        ),
        (
            "SELECT COUNT(Id) FROM Contact GROUP BY Languages__c",
            "Languages__c",
        ),
        (
            "SELECT COUNT(Id) FROM Contact GROUP BY Lifetime_Value__c",
            "Lifetime_Value__c",
        ),
        (
            "SELECT COUNT(Id) FROM Contact GROUP BY CreatedDate",
            "CreatedDate",
        ),
    ] {
        let e = f.error(soql);
        assert_eq!(e.code, "INVALID_FIELD", "{soql}");
        assert!(
            e.message.ends_with(&format!(
                "field '{field}' can not be grouped in a query call"
            )),
            "{soql}: {}",
            e.message
        );
    }
    for (soql, message) in [
        (
            "SELECT SUM(LastName) FROM Contact",
            "field LastName does not support aggregate operator SUM",
        ),
        (
            "SELECT AVG(Birthdate) FROM Contact",
            "field Birthdate does not support aggregate operator AVG",
        ),
        (
            "SELECT COUNT(Languages__c) FROM Contact",
            "field Languages__c does not support aggregate operator COUNT",
        ),
        (
            "SELECT MAX(HasOptedOutOfEmail) FROM Contact",
            "field HasOptedOutOfEmail does not support aggregate operator MAX",
        ),
        (
            "SELECT COUNT_DISTINCT(Description) FROM Contact",
            "field Description does not support aggregate operator COUNT_DISTINCT",
        ),
    ] {
        let e = f.error(soql);
        assert_eq!(e.code, "MALFORMED_QUERY", "{soql}");
        assert!(e.message.ends_with(message), "{soql}: {}", e.message);
    }
    let e = f.error("SELECT SUM(LastName) FROM Contact");
    assert!(
        e.message.contains("ERROR at Row:1:Column:12"),
        "{}",
        e.message
    );
}

#[test]
fn aggregates_are_refused_in_where_and_subqueries() {
    let f = Fixture::new();
    let e = f.error("SELECT Title FROM Contact WHERE COUNT(Id) > 1 GROUP BY Title");
    assert_eq!(e.code, "MALFORMED_QUERY");
    assert!(
        e.message.contains("ERROR at Row:1:Column:33"),
        "{}",
        e.message
    );
    let e = f.error("SELECT Name, (SELECT COUNT(Id) FROM Contacts) FROM Account");
    assert!(e
        .message
        .ends_with("Only root queries support aggregate expressions"));
    let e = f.error("SELECT Name n FROM Account");
    assert!(
        e.message.ends_with("unexpected token: 'n'"),
        "{}",
        e.message
    );
}

#[test]
fn subqueries_name_child_relationships_from_the_schema() {
    let f = Fixture::new();
    for soql in [
        "SELECT Name, (SELECT LastName FROM Contacts) FROM Account",
        "SELECT Name, (SELECT Name FROM Invoices__r), (SELECT Name FROM Opportunities) FROM Account",
        "SELECT Subject, (SELECT Subject FROM Tasks) FROM Case",
    ] {
        assert!(plan::plan(&f.org, soql).is_ok(), "{soql}");
    }
    let e = f.error("SELECT Name, (SELECT LastName FROM Contactz) FROM Account");
    assert_eq!(e.code, "INVALID_TYPE");
    assert_eq!(
        e.message,
        "\nSELECT Name, (SELECT LastName FROM Contactz) FROM Account\n                                   ^\nERROR at Row:1:Column:36\nDidn't understand relationship 'Contactz' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
    );
    let e = f.error("SELECT LastName, (SELECT LastName FROM Contacts) FROM Contact");
    assert_eq!(
        e.code, "INVALID_TYPE",
        "Contacts is Account's, not Contact's"
    );
    let e = f.error("SELECT Name, (SELECT Nope FROM Contacts) FROM Account");
    assert_eq!(e.code, "INVALID_FIELD");
}
