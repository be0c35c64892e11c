//! One test at least per SOQL rule in shared/salesforce-api.md §3, run
//! against the planner and evaluator over a small org made for the purpose.

use chrono::Utc;
use serde_json::json;
use sfsim::org::{Author, Org, Undo};
use sfsim::schema::Schema;
use sfsim::seed;
use sfsim::soql::{exec, plan, SoqlError};

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
        let acme = f.add("Account", json!({"Name": "Acme", "Rating": "Hot"}));
        f.add("Contact", json!({"LastName": "O'Brien", "FirstName": "Pat", "AccountId": acme, "Email": "pat@acme.io", "Birthdate": "1980-05-01", "Languages__c": "English;French", "Level__c": "Primary", "Lifetime_Value__c": 100.5}));
        f.add("Contact", json!({"LastName": "smith", "FirstName": "Ann", "Email": "ann@x.io", "Birthdate": "1990-01-31", "Languages__c": "German", "HasOptedOutOfEmail": true, "Lifetime_Value__c": 20}));
        f.add("Contact", json!({"LastName": "Smith", "Title": "line1\nline2", "Languages__c": "English;German;Spanish"}));
        f.add(
            "Contact",
            json!({"LastName": "50% off_sale", "Title": "tab\there"}),
        );
        f.add(
            "Contact",
            json!({"LastName": "back\\slash \"quoted\" é 😀"}),
        );
        f
    }

    fn add(&mut self, object: &str, body: serde_json::Value) -> String {
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

    fn run(&self, soql: &str, all: bool) -> Result<Vec<String>, SoqlError> {
        let plan = plan::plan(&self.org, soql)?;
        let rows = exec::run(&self.org, &plan, all);
        let name = plan
            .def
            .field_index("Name")
            .or(plan.def.field_index("LastName"))
            .unwrap();
        let last = plan.def.field_index("LastName").unwrap_or(name);
        Ok(rows
            .iter()
            .map(|r| r.get(last).as_str().unwrap_or("").to_string())
            .collect())
    }

    fn names(&self, soql: &str) -> Vec<String> {
        self.run(soql, false)
            .unwrap_or_else(|e| panic!("{soql}: {e:?}"))
    }

    fn error(&self, soql: &str) -> SoqlError {
        self.run(soql, false).expect_err(soql)
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn select_star_is_malformed() {
    let e = Fixture::new().error("SELECT * FROM Contact");
    assert_eq!(e.code, "MALFORMED_QUERY");
    assert!(e
        .message
        .ends_with("ERROR at Row:1:Column:8\nunexpected token: '*'"));
}

#[test]
fn fields_all_needs_limit_of_at_most_200() {
    let f = Fixture::new();
    assert_eq!(
        f.error("SELECT FIELDS(ALL) FROM Contact").code,
        "MALFORMED_QUERY"
    );
    assert_eq!(
        f.error("SELECT FIELDS(ALL) FROM Contact LIMIT 201").code,
        "MALFORMED_QUERY"
    );
    assert_eq!(
        f.names("SELECT FIELDS(ALL) FROM Contact LIMIT 200").len(),
        5
    );
    assert_eq!(f.names("SELECT FIELDS(STANDARD) FROM Contact").len(), 5);
}

#[test]
fn comparison_operators() {
    let f = Fixture::new();
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Lifetime_Value__c = 20"),
        vec!["smith"]
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Lifetime_Value__c > 20"),
        vec!["O'Brien"]
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Lifetime_Value__c >= 20")
            .len(),
        2
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Lifetime_Value__c < 100.5"),
        vec!["smith"]
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Lifetime_Value__c <= 100.5")
            .len(),
        2
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Birthdate < 1985-01-01"),
        vec!["O'Brien"]
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE LastName IN ('smith', 'o\\'brien')")
            .len(),
        3
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Level__c NOT IN ('Primary')")
            .len(),
        4,
        "NOT IN keeps nulls"
    );
}

#[test]
fn not_equal_is_bang_equal_and_keeps_nulls() {
    let f = Fixture::new();
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Title != 'x'").len(),
        5,
        "null != 'x' is true in SOQL"
    );
    assert_eq!(
        f.error("SELECT Id FROM Contact WHERE Title <> 'x'").code,
        "MALFORMED_QUERY"
    );
}

#[test]
fn includes_and_excludes_on_multipicklists() {
    let f = Fixture::new();
    assert_eq!(
        sorted(f.names("SELECT Id FROM Contact WHERE Languages__c INCLUDES ('english;german')")),
        vec!["Smith"]
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Languages__c INCLUDES ('French', 'Spanish')")
            .len(),
        2
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Languages__c EXCLUDES ('English')")
            .len(),
        3,
        "nulls are excluded from nothing"
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Languages__c = 'French;English'"),
        vec!["O'Brien"],
        "= compares the set"
    );
    assert_eq!(
        f.error("SELECT Id FROM Contact WHERE LastName INCLUDES ('a')")
            .code,
        "INVALID_QUERY_FILTER_OPERATOR"
    );
    assert_eq!(
        f.error("SELECT Id FROM Contact WHERE Languages__c LIKE 'E%'")
            .code,
        "INVALID_QUERY_FILTER_OPERATOR"
    );
}

#[test]
fn logic_and_parentheses() {
    let f = Fixture::new();
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE LastName = 'smith' AND FirstName = 'Ann'"),
        vec!["smith"]
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE FirstName = 'Ann' OR FirstName = 'Pat'")
            .len(),
        2
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE NOT LastName = 'smith'")
            .len(),
        3
    );
    assert_eq!(f.names("SELECT Id FROM Contact WHERE LastName = 'smith' AND (FirstName = 'Ann' OR FirstName = null)").len(), 2);
    let e = f.error(
        "SELECT Id FROM Contact WHERE LastName = 'smith' AND FirstName = 'Ann' OR FirstName = null",
    );
    assert_eq!(e.code, "MALFORMED_QUERY");
    assert!(e.message.ends_with("unexpected token: 'OR'"));
}

#[test]
fn null_comparisons_and_boolean_null_means_false() {
    let f = Fixture::new();
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Email = null").len(),
        3
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Email != null").len(),
        2
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE HasOptedOutOfEmail = null")
            .len(),
        4
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE HasOptedOutOfEmail = true"),
        vec!["smith"]
    );
    assert_eq!(
        f.error("SELECT Id FROM Contact WHERE HasOptedOutOfEmail = 'true'")
            .code,
        "INVALID_FIELD"
    );
}

#[test]
fn string_comparison_is_case_insensitive() {
    let f = Fixture::new();
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE LastName = 'SMITH'")
            .len(),
        2
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE LastName LIKE 'SMI%'")
            .len(),
        2
    );
    let ordered =
        f.names("SELECT Id FROM Contact WHERE LastName LIKE '%mith' ORDER BY LastName, Id");
    assert_eq!(
        ordered,
        vec!["smith", "Smith"],
        "ties on case keep creation order"
    );
}

#[test]
fn like_wildcards_and_escapes() {
    let f = Fixture::new();
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE LastName LIKE 'sm_th'")
            .len(),
        2
    );
    assert_eq!(
        f.names(r"SELECT Id FROM Contact WHERE LastName LIKE '50\% off\_%'"),
        vec!["50% off_sale"]
    );
    assert!(
        f.names(r"SELECT Id FROM Contact WHERE LastName LIKE '50\%off%'")
            .is_empty(),
        "\\% matches only a percent sign"
    );
    assert!(
        f.names(r"SELECT Id FROM Contact WHERE LastName LIKE '50\% off\_x%'")
            .is_empty(),
        "\\_ matches only an underscore"
    );
    assert_eq!(
        f.error("SELECT Id FROM Contact WHERE Birthdate LIKE '19%'")
            .code,
        "INVALID_QUERY_FILTER_OPERATOR"
    );
    assert_eq!(
        f.error("SELECT Id FROM Contact WHERE Id LIKE '003%'").code,
        "INVALID_QUERY_FILTER_OPERATOR"
    );
}

#[test]
fn every_escape_sequence() {
    let f = Fixture::new();
    assert_eq!(
        f.names(r"SELECT Id FROM Contact WHERE LastName = 'O\'Brien'"),
        vec!["O'Brien"]
    );
    assert_eq!(
        f.names(r"SELECT Id FROM Contact WHERE Title = 'line1\nline2'"),
        vec!["Smith"]
    );
    assert_eq!(
        f.names(r"SELECT Id FROM Contact WHERE Title = 'tab\there'")
            .len(),
        1
    );
    assert_eq!(f.names(r#"SELECT Id FROM Contact WHERE LastName = 'back\\slash \"quoted\" \u00e9 \ud83d\ude00'"#).len(), 1);
    for absent in [r"'\r'", r"'\b'", r"'\f'"] {
        assert!(f
            .names(&format!("SELECT Id FROM Contact WHERE Title = {absent}"))
            .is_empty());
    }
    for illegal in [r"'\q'", r"'\%'", r"'\_'", r"'\u12'", r"'\'"] {
        let e = f
            .run(
                &format!("SELECT Id FROM Contact WHERE LastName = {illegal}"),
                false,
            )
            .expect_err(illegal);
        assert_eq!(e.code, "MALFORMED_QUERY", "{illegal}");
    }
}

#[test]
fn date_and_datetime_literals_only_against_their_types() {
    let f = Fixture::new();
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE CreatedDate > 2000-01-01T00:00:00Z")
            .len(),
        5
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE CreatedDate > 2000-01-01T00:00:00+05:00")
            .len(),
        5
    );
    let e = f.error("SELECT Id FROM Contact WHERE CreatedDate > 2000-01-01");
    assert_eq!(e.code, "INVALID_FIELD");
    assert!(e.message.contains("must be of type dateTime"));
    let e = f.error("SELECT Id FROM Contact WHERE Birthdate > 2000-01-01T00:00:00Z");
    assert!(e.message.contains("must be of type date and"));
    assert!(f
        .error("SELECT Id FROM Contact WHERE Birthdate = '1990-01-31'")
        .message
        .contains("should not be enclosed in quotes"));
    assert!(f
        .error("SELECT Id FROM Contact WHERE LastName = 5")
        .message
        .contains("should be enclosed in quotes"));
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Birthdate = 1990-01-31"),
        vec!["smith"]
    );
}

#[test]
fn ids_compare_in_either_form_and_must_be_ids() {
    let f = Fixture::new();
    let id = f.org.objects[f.org.object("Contact").unwrap()]
        .records
        .keys()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        f.names(&format!(
            "SELECT Id FROM Contact WHERE Id = '{}'",
            &id[..15]
        ))
        .len(),
        1
    );
    assert_eq!(
        f.names(&format!(
            "SELECT Id FROM Contact WHERE Id = '{}'",
            id.to_lowercase()
        ))
        .len(),
        1
    );
    let e = f.error("SELECT Id FROM Contact WHERE Id = 'abc'");
    assert_eq!(e.code, "INVALID_QUERY_FILTER_OPERATOR");
    assert!(e.message.ends_with("invalid ID field: abc"));
}

#[test]
fn order_by_directions_and_nulls() {
    let f = Fixture::new();
    let default = f.names("SELECT Id FROM Contact ORDER BY Email");
    assert_eq!(default.len(), 5);
    assert_eq!(
        f.names("SELECT Id FROM Contact ORDER BY Email ASC NULLS FIRST"),
        default,
        "default is ASC NULLS FIRST"
    );
    let last = f.names("SELECT Id FROM Contact ORDER BY Email ASC NULLS LAST");
    assert_eq!(&last[..2], ["smith", "O'Brien"]);
    let desc = f.names("SELECT Id FROM Contact ORDER BY Email DESC NULLS LAST");
    assert_eq!(&desc[..2], ["O'Brien", "smith"]);
    let multi = f.names("SELECT Id FROM Contact ORDER BY Level__c DESC NULLS LAST, LastName");
    assert_eq!(multi[0], "O'Brien");
    assert_eq!(
        &multi[1..],
        [
            "50% off_sale",
            "back\\slash \"quoted\" é 😀",
            "smith",
            "Smith"
        ]
    );
}

#[test]
fn ids_sort_by_exact_value_not_ignoring_case() {
    let mut org = Org::new(Schema::builtin(), Utc::now());
    let mut counts = seed::plan("empty").unwrap();
    counts.insert("Lead".into(), 3000);
    seed::populate(&mut org, &counts).unwrap();
    let plan = plan::plan(&org, "SELECT Id FROM Lead ORDER BY Id DESC").unwrap();
    let ids: Vec<String> = exec::run(&org, &plan, false)
        .iter()
        .map(|r| r.id().to_string())
        .collect();
    let mut expected = ids.clone();
    expected.sort();
    expected.reverse();
    assert_eq!(ids, expected);
    assert!(
        ids.iter()
            .any(|i| i.chars().any(|c| c.is_ascii_lowercase() && c != 'g')),
        "ids of mixed case are compared"
    );
}

#[test]
fn unsortable_and_unfilterable_fields_are_refused() {
    let f = Fixture::new();
    let e = f.error("SELECT Id FROM Contact ORDER BY Languages__c");
    assert_eq!(
        (
            e.code,
            e.message
                .ends_with("field 'Languages__c' can not be sorted in a query call")
        ),
        ("INVALID_FIELD", true)
    );
    let e = f.error("SELECT Id FROM Contact WHERE Description = 'x'");
    assert!(e
        .message
        .ends_with("field 'Description' can not be filtered in a query call"));
    assert_eq!(
        f.error("SELECT Id FROM Contact WHERE Tax_Id__c = 'x'").code,
        "INVALID_FIELD",
        "encrypted text"
    );
}

#[test]
fn limit_and_offset() {
    let f = Fixture::new();
    assert_eq!(
        f.names("SELECT Id FROM Contact ORDER BY LastName LIMIT 2")
            .len(),
        2
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact ORDER BY LastName LIMIT 2 OFFSET 4")
            .len(),
        1
    );
    assert_eq!(f.names("SELECT Id FROM Contact OFFSET 2000").len(), 0);
    let e = f.error("SELECT Id FROM Contact OFFSET 2001");
    assert_eq!(e.code, "NUMBER_OUTSIDE_VALID_RANGE");
    assert!(e.message.ends_with("Maximum SOQL offset allowed is 2000"));
}

#[test]
fn statement_and_literal_length_limits() {
    let f = Fixture::new();
    let long_literal = format!(
        "SELECT Id FROM Contact WHERE LastName = '{}'",
        "x".repeat(4001)
    );
    assert_eq!(f.error(&long_literal).code, "MALFORMED_QUERY");
    assert!(f
        .run(
            &format!(
                "SELECT Id FROM Contact WHERE LastName = '{}'",
                "x".repeat(4000)
            ),
            false
        )
        .is_ok());
    let long_statement = format!(
        "SELECT Id FROM Contact WHERE LastName IN ({})",
        vec!["'x'"; 25_000].join(",")
    );
    let e = f.error(&long_statement);
    assert_eq!(e.code, "MALFORMED_QUERY");
    assert!(e.message.contains("100000"));
}

#[test]
fn unknown_names_give_invalid_field_and_invalid_type() {
    let f = Fixture::new();
    let e = f.error("SELECT Id, Nickname FROM Contact");
    assert_eq!(e.code, "INVALID_FIELD");
    assert!(e
        .message
        .contains("ERROR at Row:1:Column:12\nNo such column 'Nickname' on entity 'Contact'"));
    let e = f.error("SELECT Id FROM Contactz");
    assert_eq!(e.code, "INVALID_TYPE");
    assert!(e
        .message
        .contains("sObject type 'Contactz' is not supported"));
    assert!(f
        .error("SELECT Boss.Name FROM Contact")
        .message
        .contains("Didn't understand relationship 'Boss'"));
    assert_eq!(
        f.error("SELECT Id, Id FROM Contact").code,
        "MALFORMED_QUERY",
        "duplicate field"
    );
}

#[test]
fn parent_fields_and_count() {
    let f = Fixture::new();
    assert_eq!(
        f.names("SELECT Id, Account.Name FROM Contact WHERE Account.Name = 'ACME'"),
        vec!["O'Brien"]
    );
    assert_eq!(
        f.names("SELECT Id FROM Contact WHERE Account.Rating = null")
            .len(),
        4
    );
    let plan = plan::plan(
        &f.org,
        "SELECT COUNT() FROM Contact WHERE LastName LIKE 's%'",
    )
    .unwrap();
    assert!(matches!(plan.projection, plan::Projection::Count));
    assert_eq!(exec::run(&f.org, &plan, false).len(), 2);
    assert_eq!(
        f.error("SELECT COUNT(), Id FROM Contact").code,
        "MALFORMED_QUERY"
    );
}

#[test]
fn query_all_includes_soft_deleted_rows() {
    let mut f = Fixture::new();
    let contact = f.org.object("Contact").unwrap();
    let id = f.org.objects[contact]
        .records
        .keys()
        .next()
        .unwrap()
        .to_string();
    f.org
        .delete(contact, &id, &f.author.clone(), &mut Undo::default())
        .unwrap();
    assert_eq!(f.run("SELECT Id FROM Contact", false).unwrap().len(), 4);
    assert_eq!(f.run("SELECT Id FROM Contact", true).unwrap().len(), 5);
    assert_eq!(
        f.run("SELECT Id FROM Contact WHERE IsDeleted = true", true)
            .unwrap()
            .len(),
        1
    );
}
