//! Bulk API 2.0 query jobs over HTTP, as clients see them: states on the
//! clock, results pages, CSV forms, refusals, limits, faults and the log.

use base64::Engine;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sfsim::server::{spawn, Options, Running};
use std::io::Read;

mod common;

const V: &str = "/services/data/v62.0";

struct Org {
    server: Running,
    http: Client,
    token: String,
}

impl Org {
    fn start(options: Options) -> Org {
        let server = spawn(options).expect("sfsim starts");
        let http = Client::new();
        let token = common::token(&http, &server.base_url, "admin@sfsim.example");
        Org {
            server,
            http,
            token,
        }
    }

    /// The demo org, with jobs that complete as soon as they are created
    /// and a token that outlives moves of the clock.
    fn instant() -> Org {
        let org = Org::start(Options {
            token_lifetime_secs: 30 * 24 * 3600,
            ..Options::demo()
        });
        org.settings(json!({"bulk_job_processing_ms": 0}));
        org
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url)
    }

    fn call(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    fn create(&self, body: Value) -> Response {
        self.call(Method::POST, &format!("{V}/jobs/query"))
            .json(&body)
            .send()
            .unwrap()
    }

    /// Creates a query job and answers its id.
    fn job_for(&self, soql: &str) -> String {
        let r = self.create(json!({"operation": "query", "query": soql}));
        assert_eq!(r.status(), StatusCode::OK, "{soql}");
        let info: Value = r.json().unwrap();
        info["id"].as_str().unwrap().to_string()
    }

    fn job(&self, id: &str) -> Value {
        let r = self
            .call(Method::GET, &format!("{V}/jobs/query/{id}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().unwrap()
    }

    fn results(&self, id: &str, query: &str) -> Response {
        self.call(Method::GET, &format!("{V}/jobs/query/{id}/results{query}"))
            .send()
            .unwrap()
    }

    /// The whole first page of a completed job's results.
    fn csv(&self, soql: &str) -> String {
        let id = self.job_for(soql);
        assert_eq!(self.job(&id)["state"], "JobComplete");
        let r = self.results(&id, "");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["sforce-locator"], "null");
        r.text().unwrap()
    }

    fn rest_query(&self, soql: &str) -> Value {
        let r = self
            .call(Method::GET, &format!("{V}/query"))
            .query(&[("q", soql)])
            .send()
            .unwrap();
        r.json().unwrap()
    }

    fn create_record(&self, object: &str, fields: Value) -> String {
        let r = self
            .call(Method::POST, &format!("{V}/sobjects/{object}"))
            .json(&fields)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn control(&self, method: Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, self.url(&format!("/__sim/{path}")))
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        r.json().unwrap_or(Value::Null)
    }

    fn settings(&self, changes: Value) -> Value {
        self.control(Method::PATCH, "settings", changes)
    }

    fn advance(&self, seconds: i64) {
        self.control(Method::POST, "time/advance", json!({"seconds": seconds}));
    }

    fn used_requests(&self) -> u64 {
        self.control(Method::GET, "usage", Value::Null)["api_requests_used"]
            .as_u64()
            .unwrap()
    }
}

fn error(r: Response) -> (StatusCode, String, String) {
    let status = r.status();
    let body: Value = r.json().unwrap();
    (
        status,
        body[0]["errorCode"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body[0]["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn records(csv: &str, delimiter: u8) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .from_reader(csv.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn a_job_moves_through_its_states_on_the_clock() {
    let org = Org::start(Options::demo());
    let settings = org.settings(json!({"bulk_job_processing_ms": 60_000}));
    assert_eq!(settings["bulk_job_processing_ms"], 60_000);
    let admin = org.rest_query("SELECT Id FROM User WHERE Username = 'admin@sfsim.example'")
        ["records"][0]["Id"]
        .clone();
    let r = org.create(json!({"operation": "query", "query": "SELECT Id, LastName FROM Contact"}));
    assert_eq!(r.status(), StatusCode::OK);
    let created: Value = r.json().unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("7505g") && id.len() == 18, "{id}");
    let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "operation",
            "object",
            "createdById",
            "createdDate",
            "systemModstamp",
            "state",
            "concurrencyMode",
            "contentType",
            "apiVersion",
            "lineEnding",
            "columnDelimiter"
        ]
    );
    assert_eq!(
        (
            &created["operation"],
            &created["object"],
            &created["createdById"]
        ),
        (&json!("query"), &json!("Contact"), &admin)
    );
    assert_eq!(
        (
            &created["state"],
            &created["concurrencyMode"],
            &created["contentType"]
        ),
        (&json!("UploadComplete"), &json!("Parallel"), &json!("CSV"))
    );
    assert_eq!(
        (
            &created["apiVersion"],
            &created["lineEnding"],
            &created["columnDelimiter"]
        ),
        (&json!(62.0), &json!("LF"), &json!("COMMA"))
    );
    assert!(created["createdDate"].as_str().unwrap().ends_with("+0000"));

    let queued = org.job(&id);
    assert_eq!(
        (
            &queued["state"],
            &queued["jobType"],
            &queued["numberRecordsProcessed"]
        ),
        (&json!("UploadComplete"), &json!("V2Query"), &json!(0))
    );
    assert_eq!(
        error(org.results(&id, "")),
        (
            StatusCode::PRECONDITION_FAILED,
            "JOB_NOT_COMPLETE".into(),
            format!("Job {id} is not complete: its state is UploadComplete")
        )
    );
    org.advance(30);
    let running = org.job(&id);
    assert_eq!(running["state"], "InProgress");
    assert_ne!(running["systemModstamp"], queued["systemModstamp"]);
    assert_eq!(
        org.results(&id, "").status(),
        StatusCode::PRECONDITION_FAILED
    );
    org.advance(30);
    let done = org.job(&id);
    assert_eq!(
        (&done["state"], &done["numberRecordsProcessed"]),
        (&json!("JobComplete"), &json!(400))
    );
    assert_eq!(
        (&done["retries"], &done["totalProcessingTime"]),
        (&json!(0), &json!(30_000))
    );
    assert!(done.get("errorMessage").is_none());
    assert_eq!(org.results(&id, "").status(), StatusCode::OK);
}

#[test]
fn results_are_the_records_as_they_were_when_processing_started() {
    let org = Org::start(Options::demo());
    org.settings(json!({"bulk_job_processing_ms": 60_000}));
    let before = org.create_record("Contact", json!({"LastName": "Snapshot", "Title": "Old"}));
    let id = org
        .job_for("SELECT LastName, Title FROM Contact WHERE LastName LIKE 'Snap%' ORDER BY Title");
    org.advance(30);
    // This write is the first request once processing is due, so the
    // snapshot is taken before it is applied.
    let r = org
        .call(Method::PATCH, &format!("{V}/sobjects/Contact/{before}"))
        .json(&json!({"Title": "New"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    org.create_record("Contact", json!({"LastName": "Snapped", "Title": "Later"}));
    org.advance(30);
    let csv = org.results(&id, "").text().unwrap();
    assert_eq!(csv, "\"LastName\",\"Title\"\n\"Snapshot\",\"Old\"\n");
}

#[test]
fn aborting_and_deleting_follow_the_job_state() {
    let org = Org::start(Options::demo());
    org.settings(json!({"bulk_job_processing_ms": 60_000}));
    let abort = |id: &str, state: &str| {
        org.call(Method::PATCH, &format!("{V}/jobs/query/{id}"))
            .json(&json!({"state": state}))
            .send()
            .unwrap()
    };
    let delete = |id: &str| {
        org.call(Method::DELETE, &format!("{V}/jobs/query/{id}"))
            .send()
            .unwrap()
    };
    let queued = org.job_for("SELECT Id FROM Account");
    let r = delete(&queued);
    assert_eq!(
        error(r),
        (
            StatusCode::BAD_REQUEST,
            "INVALIDJOBSTATE".into(),
            "Deleting a job in state UploadComplete is not allowed: only JobComplete, Failed and Aborted jobs can be deleted".into()
        )
    );
    assert_eq!(error(abort(&queued, "UploadComplete")).1, "INVALIDJOBSTATE");
    let r = abort(&queued, "Aborted");
    assert_eq!(r.status(), StatusCode::OK);
    let aborted: Value = r.json().unwrap();
    assert_eq!(
        (&aborted["id"], &aborted["state"]),
        (&json!(queued), &json!("Aborted"))
    );
    assert_eq!(
        error(abort(&queued, "Aborted")),
        (
            StatusCode::BAD_REQUEST,
            "INVALIDJOBSTATE".into(),
            "Aborting already Aborted Job not allowed".into()
        )
    );
    assert_eq!(
        org.results(&queued, "").status(),
        StatusCode::PRECONDITION_FAILED
    );
    org.advance(60);
    assert_eq!(
        org.job(&queued)["state"],
        "Aborted",
        "an aborted job never runs"
    );

    let running = org.job_for("SELECT Id FROM Account");
    org.advance(30);
    assert_eq!(org.job(&running)["state"], "InProgress");
    assert_eq!(abort(&running, "Aborted").status(), StatusCode::OK);
    assert_eq!(org.job(&running)["numberRecordsProcessed"], 0);

    let complete = org.job_for("SELECT Id FROM Account");
    org.advance(60);
    assert_eq!(
        error(abort(&complete, "Aborted")).2,
        "Aborting already Completed Job not allowed"
    );
    for id in [&queued, &running, &complete] {
        assert_eq!(delete(id).status(), StatusCode::NO_CONTENT);
        let gone = org
            .call(Method::GET, &format!("{V}/jobs/query/{id}"))
            .send()
            .unwrap();
        assert_eq!(error(gone).0, StatusCode::NOT_FOUND);
        assert_eq!(error(org.results(id, "")).0, StatusCode::NOT_FOUND);
    }
    assert_eq!(error(delete(&complete)).1, "NOT_FOUND");
    assert_eq!(error(abort("7505g00000000zzAAA", "Aborted")).1, "NOT_FOUND");
}

#[test]
fn the_job_list_pages_by_a_thousand_and_filters() {
    let org = Org::instant();
    let ids: Vec<String> = (0..1001)
        .map(|_| org.job_for("SELECT Id FROM Account"))
        .collect();
    let list = |query: &str| -> Value {
        let r = org
            .call(Method::GET, &format!("{V}/jobs/query{query}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{query}");
        r.json().unwrap()
    };
    let first = list("");
    assert_eq!(first["done"], false);
    let records = first["records"].as_array().unwrap();
    assert_eq!(records.len(), 1000);
    assert_eq!(records[0]["id"], ids[0].as_str());
    assert_eq!(
        (&records[0]["jobType"], &records[0]["state"]),
        (&json!("V2Query"), &json!("JobComplete"))
    );
    let next = first["nextRecordsUrl"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{V}/jobs/query?queryLocator=01g")),
        "{next}"
    );
    let second: Value = org.call(Method::GET, next).send().unwrap().json().unwrap();
    assert_eq!(second["done"], true);
    assert_eq!(second["nextRecordsUrl"], Value::Null);
    assert_eq!(second["records"][0]["id"], ids[1000].as_str());

    for query in [
        "?jobType=V2Query",
        "?concurrencyMode=parallel",
        "?isPkChunkingEnabled=false",
    ] {
        assert_eq!(
            list(query)["records"].as_array().unwrap().len(),
            1000,
            "{query}"
        );
    }
    for query in [
        "?jobType=V2Ingest",
        "?jobType=Classic",
        "?concurrencyMode=serial",
        "?isPkChunkingEnabled=true",
    ] {
        let none = list(query);
        assert_eq!(
            (&none["done"], &none["records"]),
            (&json!(true), &json!([])),
            "{query}"
        );
    }
    let r = org
        .call(Method::GET, &format!("{V}/jobs/query?jobType=Nope"))
        .send()
        .unwrap();
    assert_eq!(error(r).1, "API_ERROR");
    let r = org
        .call(Method::GET, &format!("{V}/jobs/query?queryLocator=nope"))
        .send()
        .unwrap();
    assert_eq!(error(r).1, "INVALID_QUERY_LOCATOR");
}

#[test]
fn create_checks_its_body_as_salesforce_does() {
    let org = Org::instant();
    let refused = |body: Value| error(org.create(body));
    let q = "SELECT Id FROM Account";
    for (body, message) in [
        (json!({"query": q}), "The operation is required"),
        (json!({"operation": "insert", "query": q}), "Invalid operation: insert. A query job's operation is query or queryAll"),
        (json!({"operation": "query"}), "A query job needs a query"),
        (json!({"operation": "query", "query": "  "}), "A query job needs a query"),
        (json!({"operation": "query", "query": q, "contentType": "JSON"}), "Invalid contentType: JSON. The only content type is CSV"),
        (json!({"operation": "query", "query": q, "columnDelimiter": "COLON"}), "Invalid columnDelimiter: COLON. It is one of BACKQUOTE, CARET, COMMA, PIPE, SEMICOLON and TAB"),
        (json!({"operation": "query", "query": q, "columnDelimiter": "comma"}), "Invalid columnDelimiter: comma. It is one of BACKQUOTE, CARET, COMMA, PIPE, SEMICOLON and TAB"),
        (json!({"operation": "query", "query": q, "lineEnding": "CR"}), "Invalid lineEnding: CR. It is LF or CRLF"),
        (json!({"operation": "query", "query": ["SELECT"]}), "Value does not match expected type at [line:1, column:29]"),
    ] {
        assert_eq!(
            refused(body.clone()),
            (StatusCode::BAD_REQUEST, "API_ERROR".into(), message.into()),
            "{body}"
        );
    }
    let r = org
        .call(Method::POST, &format!("{V}/jobs/query"))
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(error(r).1, "JSON_PARSER_ERROR");
    let r = org
        .call(Method::POST, "/services/data/v46.0/jobs/query")
        .json(&json!({"operation": "query", "query": q}))
        .send()
        .unwrap();
    assert_eq!(error(r).1, "NOT_FOUND", "query jobs start at v47.0");
    let r = org
        .call(Method::PUT, &format!("{V}/jobs/query"))
        .send()
        .unwrap();
    assert_eq!(error(r).0, StatusCode::METHOD_NOT_ALLOWED);
    let all = org.create(json!({"operation": "queryAll", "query": q, "contentType": "CSV", "columnDelimiter": "TAB", "lineEnding": "CRLF"}));
    let info: Value = all.json().unwrap();
    assert_eq!(
        (
            &info["operation"],
            &info["columnDelimiter"],
            &info["lineEnding"]
        ),
        (&json!("queryAll"), &json!("TAB"), &json!("CRLF"))
    );
}

#[test]
fn refused_queries_fail_at_creation_or_when_processed() {
    let org = Org::instant();
    // SOQL errors are answered exactly as the REST query resource answers them.
    for soql in [
        "SELECT Nope FROM Contact",
        "SELECT Id FROM Nope__c",
        "SELECT * FROM Contact",
        "SELECT Id FROM Contact WHERE Name <> 'x'",
    ] {
        let bulk: Value = org
            .create(json!({"operation": "query", "query": soql}))
            .json()
            .unwrap();
        let rest = org.rest_query(soql);
        assert_eq!(bulk, rest, "{soql}");
    }
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
            "SELECT Name, Body FROM Document",
            "Blob field not supported in Bulk V2 Query with CSV content type",
        ),
        (
            "SELECT Name, (SELECT LastName FROM Contacts) FROM Account",
            "Aggregate Relationships not supported in Bulk V2 Query with CSV content type",
        ),
    ] {
        assert_eq!(
            error(org.create(json!({"operation": "query", "query": soql}))),
            (StatusCode::BAD_REQUEST, "API_ERROR".into(), message.into()),
            "{soql}"
        );
    }
    for (soql, construct) in [
        ("SELECT COUNT() FROM Contact", "Aggregate functions"),
        (
            "SELECT LeadSource, COUNT(Id) FROM Contact GROUP BY LeadSource",
            "Aggregate functions",
        ),
        (
            "SELECT LeadSource FROM Contact GROUP BY LeadSource",
            "GROUP BY",
        ),
        ("SELECT Id FROM Contact ORDER BY Id OFFSET 10", "OFFSET"),
        (
            "SELECT TYPEOF Who WHEN Contact THEN LastName END FROM Task",
            "TYPEOF",
        ),
        ("SELECT FIELDS(STANDARD) FROM Contact", "FIELDS()"),
    ] {
        let id = org.job_for(soql);
        let job = org.job(&id);
        assert_eq!(
            (&job["state"], &job["errorMessage"]),
            (
                &json!("Failed"),
                &json!(format!("InvalidBatch : Failed to process query: FUNCTIONALITY_NOT_ENABLED: {construct} not supported in Bulk Query"))
            ),
            "{soql}"
        );
        assert_eq!(error(org.results(&id, "")).1, "JOB_NOT_COMPLETE");
    }
    // Relationship fields, ORDER BY and LIMIT run.
    let csv = org.csv("SELECT LastName, Account.Name FROM Contact WHERE Account.Name != null ORDER BY LastName DESC LIMIT 2");
    let rows = records(&csv, b',');
    assert_eq!(rows[0], ["LastName", "Account.Name"]);
    assert_eq!(rows.len(), 3);
    assert!(rows[1][0] >= rows[2][0]);
}

#[test]
fn results_show_what_the_user_may_see_and_query_all_shows_deleted_records() {
    let org = Org::instant();
    let limited = common::token(&org.http, &org.server.base_url, "limited@sfsim.example");
    let r = org
        .http
        .post(org.url(&format!("{V}/jobs/query")))
        .bearer_auth(&limited)
        .json(&json!({"operation": "query", "query": "SELECT Id, Email FROM Contact"}))
        .send()
        .unwrap();
    let (status, code, message) = error(r);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_FIELD")
    );
    assert!(
        message.contains("No such column 'Email' on entity 'Contact'"),
        "{message}"
    );

    let id = org.create_record("Contact", json!({"LastName": "Gone"}));
    let r = org
        .call(Method::DELETE, &format!("{V}/sobjects/Contact/{id}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let soql = format!("SELECT Id, IsDeleted FROM Contact WHERE Id = '{id}'");
    assert_eq!(org.csv(&soql), "\"Id\",\"IsDeleted\"\n");
    let all = org.create(json!({"operation": "queryAll", "query": soql}));
    let job = all.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(org.job(&job)["operation"], "queryAll");
    assert_eq!(
        org.results(&job, "").text().unwrap(),
        format!("\"Id\",\"IsDeleted\"\n\"{id}\",\"true\"\n")
    );
}

/// A REST query value in Bulk's CSV text form; `None` for null.
fn bulk_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(
            s.strip_suffix("+0000")
                .map_or(s.clone(), |t| format!("{t}Z")),
        ),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f}"),
            _ => n.to_string(),
        }),
        other => Some(other.to_string()),
    }
}

#[test]
fn values_take_bulk_text_forms_and_match_rest() {
    let org = Org::instant();
    let tricky = org.create_record(
        "Contact",
        json!({
            "LastName": "Say \"hi\", then leave",
            "FirstName": "Zoë",
            "Title": "東京 🚀 naïve",
            "Description": "line one\nline two\r\nline three",
            "Birthdate": "1990-01-31",
            "HasOptedOutOfEmail": true,
            "Languages__c": "English;French",
            "Lifetime_Value__c": 1234.5,
            "Preferred_Call_Time__c": "09:30:00.000Z",
        }),
    );
    let fields = "Id, LastName, FirstName, Title, Description, Email, Birthdate, HasOptedOutOfEmail, Languages__c, Lifetime_Value__c, Preferred_Call_Time__c, SystemModstamp, Name, Account.Name";
    let soql = format!(
        "SELECT {fields} FROM Contact WHERE Id = '{tricky}' OR LastName LIKE 'T%' ORDER BY Id"
    );
    let csv = org.csv(&soql);
    assert!(csv.contains("\"Say \"\"hi\"\", then leave\""), "{csv}");
    // The null Email is a bare empty field.
    assert!(
        csv.contains("\"line one\nline two\r\nline three\",,\"1990-01-31\",\"true\",\"English;French\",\"1234.5\",\"09:30:00.000Z\",\""),
        "{csv}"
    );
    let rows = records(&csv, b',');
    let header: Vec<&str> = fields.split(", ").collect();
    assert_eq!(rows[0], header);
    let rest = org.rest_query(&soql)["records"].as_array().unwrap().clone();
    assert!(rest.len() > 2);
    assert_eq!(rows.len(), rest.len() + 1);
    for (row, rec) in rows[1..].iter().zip(&rest) {
        for (column, cell) in header.iter().zip(row) {
            let value = column
                .split('.')
                .fold(rec, |v, part| if v.is_null() { v } else { &v[part] });
            assert_eq!(
                Some(cell.as_str()),
                Some(bulk_text(value).unwrap_or_default().as_str()),
                "{column}"
            );
        }
    }
}

#[test]
fn every_delimiter_and_line_ending_quotes_what_needs_it() {
    let org = Org::instant();
    for (name, delimiter) in [
        ("BACKQUOTE", '`'),
        ("CARET", '^'),
        ("COMMA", ','),
        ("PIPE", '|'),
        ("SEMICOLON", ';'),
        ("TAB", '\t'),
    ] {
        let id = org.create_record(
            "Contact",
            json!({"LastName": format!("a{delimiter}b\"c"), "Title": "x"}),
        );
        for (ending, eol) in [("LF", "\n"), ("CRLF", "\r\n")] {
            let r = org.create(json!({
                "operation": "query",
                "query": format!("SELECT LastName, Email, Title FROM Contact WHERE Id = '{id}'"),
                "columnDelimiter": name,
                "lineEnding": ending,
            }));
            let job = r.json::<Value>().unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
            let d = delimiter;
            assert_eq!(
                org.results(&job, "").text().unwrap(),
                format!("\"LastName\"{d}\"Email\"{d}\"Title\"{eol}\"a{d}b\"\"c\"{d}{d}\"x\"{eol}"),
                "{name} {ending}"
            );
        }
    }
}

#[test]
fn results_page_through_locators() {
    let org = Org::start(Options {
        records: vec![("Contact".into(), 2500)],
        ..Options::demo()
    });
    org.settings(json!({"bulk_job_processing_ms": 0}));
    let id = org.job_for("SELECT Id FROM Contact ORDER BY Id");
    assert_eq!(org.job(&id)["numberRecordsProcessed"], 2500);
    let mut ids = Vec::new();
    let mut locator = String::new();
    let mut pages = Vec::new();
    loop {
        let query = if locator.is_empty() {
            "?maxRecords=1000".to_string()
        } else {
            format!("?maxRecords=1000&locator={locator}")
        };
        let r = org.results(&id, &query);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/csv; charset=UTF-8");
        let count: usize = r.headers()["sforce-numberofrecords"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let next = r.headers()["sforce-locator"].to_str().unwrap().to_string();
        let rows = records(&r.text().unwrap(), b',');
        assert_eq!(rows[0], ["Id"], "every page has the header row");
        assert_eq!(rows.len() - 1, count);
        pages.push(count);
        ids.extend(rows[1..].iter().map(|r| r[0].clone()));
        if next == "null" {
            break;
        }
        locator = next;
    }
    assert_eq!(pages, [1000, 1000, 500]);
    let rest: Vec<String> = {
        let first = org.rest_query("SELECT Id FROM Contact ORDER BY Id");
        let second: Value = org
            .call(Method::GET, first["nextRecordsUrl"].as_str().unwrap())
            .send()
            .unwrap()
            .json()
            .unwrap();
        [first, second]
            .iter()
            .flat_map(|p| p["records"].as_array().unwrap().clone())
            .map(|r| r["Id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids, rest);

    // Salesforce's locators are the next record's position in base64.
    let locator = base64::engine::general_purpose::STANDARD_NO_PAD.encode("2000");
    let again = |q: &str| org.results(&id, q).text().unwrap();
    assert_eq!(
        again(&format!("?locator={locator}")),
        again(&format!("?locator={locator}"))
    );
    assert_eq!(
        records(&again(&format!("?locator={locator}")), b',').len(),
        501
    );
    for bad in ["nonsense!", "OTk5OTk5", "YWJj"] {
        assert_eq!(
            error(org.results(&id, &format!("?locator={bad}"))),
            (
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY_LOCATOR".into(),
                "invalid query locator".into()
            ),
            "{bad}"
        );
    }
    for bad in ["0", "-1", "many"] {
        assert_eq!(
            error(org.results(&id, &format!("?maxRecords={bad}"))).1,
            "API_ERROR",
            "{bad}"
        );
    }

    // Without maxRecords a page holds what fits in the page size budget.
    org.settings(json!({"bulk_results_page_bytes": 1000}));
    let r = org.results(&id, "");
    // Each row is `"0035g0000000001AAA"` and a line feed: 21 bytes.
    assert_eq!(r.headers()["sforce-numberofrecords"], "47");

    let r = org
        .call(
            Method::GET,
            &format!("/services/data/v61.0/jobs/query/{id}/results"),
        )
        .send()
        .unwrap();
    assert_eq!(
        error(r).0,
        StatusCode::CONFLICT,
        "results come with the version the job was created with"
    );

    let empty = org.job_for("SELECT Id FROM Contact WHERE LastName = 'nobody at all'");
    let r = org.results(&empty, "");
    assert_eq!(r.headers()["sforce-numberofrecords"], "0");
    assert_eq!(r.headers()["sforce-locator"], "null");
    assert_eq!(r.text().unwrap(), "\"Id\"\n");
}

#[test]
fn results_are_gzipped_for_clients_that_ask() {
    let org = Org::instant();
    let id = org.job_for("SELECT Id, Name, Email, Description FROM Contact");
    let plain = org.results(&id, "");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().unwrap();
    for accept in ["gzip", "deflate, gzip;q=0.5", "GZIP"] {
        let r = org
            .call(Method::GET, &format!("{V}/jobs/query/{id}/results"))
            .header("Accept-Encoding", accept)
            .send()
            .unwrap();
        assert_eq!(r.headers()["content-encoding"], "gzip", "{accept}");
        assert_eq!(r.headers()["sforce-numberofrecords"], "400");
        let compressed = r.bytes().unwrap();
        assert!(compressed.len() < plain.len() / 2);
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain);
    }
    for accept in ["deflate", "gzip;q=0", "identity"] {
        let r = org
            .call(Method::GET, &format!("{V}/jobs/query/{id}/results"))
            .header("Accept-Encoding", accept)
            .send()
            .unwrap();
        assert!(r.headers().get("content-encoding").is_none(), "{accept}");
    }
}

#[test]
fn finished_jobs_are_deleted_after_seven_days() {
    let org = Org::instant();
    let id = org.job_for("SELECT Id FROM Account");
    assert_eq!(org.job(&id)["state"], "JobComplete");
    org.advance(7 * 24 * 3600 - 60);
    assert_eq!(org.results(&id, "").status(), StatusCode::OK);
    org.advance(60);
    assert_eq!(error(org.results(&id, "")).1, "NOT_FOUND");
    let r = org
        .call(Method::GET, &format!("{V}/jobs/query/{id}"))
        .send()
        .unwrap();
    assert_eq!(error(r).0, StatusCode::NOT_FOUND);
    let list: Value = org
        .call(Method::GET, &format!("{V}/jobs/query"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["records"], json!([]));
}

#[test]
fn every_bulk_call_counts_and_jobs_have_their_own_daily_limit() {
    let org = Org::instant();
    let limits = |org: &Org| -> Value {
        org.call(Method::GET, &format!("{V}/limits"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(
        limits(&org)["DailyBulkV2QueryJobs"],
        json!({"Max": 10_000, "Remaining": 10_000})
    );
    let used = org.used_requests();
    let id = org.job_for("SELECT Id FROM Account");
    org.job(&id);
    org.results(&id, "?maxRecords=10");
    assert_eq!(
        org.used_requests(),
        used + 3,
        "create, info and a results page count"
    );
    assert_eq!(
        limits(&org)["DailyBulkV2QueryJobs"],
        json!({"Max": 10_000, "Remaining": 9_999})
    );
    assert_eq!(
        org.settings(json!({"bulk_daily_job_limit": 2}))["bulk_daily_job_limit"],
        2
    );
    org.job_for("SELECT Id FROM Account");
    let used = org.used_requests();
    assert_eq!(
        error(org.create(json!({"operation": "query", "query": "SELECT Id FROM Account"}))),
        (
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED".into(),
            "Max bulk v2 query jobs (2) per 24 hrs has been reached".into()
        )
    );
    assert_eq!(
        org.used_requests(),
        used + 1,
        "a refused create still counts"
    );
    assert_eq!(
        limits(&org)["DailyBulkV2QueryJobs"],
        json!({"Max": 2, "Remaining": 0})
    );
    org.advance(24 * 3600 + 60);
    org.job_for("SELECT Id FROM Account");

    org.settings(json!({"daily_limit": 0}));
    let (status, code, _) =
        error(org.create(json!({"operation": "query", "query": "SELECT Id FROM Account"})));
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED")
    );
    let r = org
        .http
        .patch(org.url("/__sim/settings"))
        .json(&json!({"bulk_results_page_bytes": 0}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn faults_reach_bulk_calls() {
    let org = Org::instant();
    let faults = |rates: Value| org.control(Method::PATCH, "faults", rates);
    faults(json!({"server_unavailable": 1.0}));
    assert_eq!(
        error(org.create(json!({"operation": "query", "query": "SELECT Id FROM Account"}))).1,
        "SERVER_UNAVAILABLE"
    );
    faults(json!({"unable_to_lock_row": 1.0}));
    let id = org.job_for("SELECT Id, Name FROM Account");
    assert_eq!(
        org.results(&id, "").status(),
        StatusCode::OK,
        "Bulk calls lock no records"
    );
    faults(json!({"drop_connection": 1.0}));
    let cut = org
        .call(Method::GET, &format!("{V}/jobs/query/{id}/results"))
        .send()
        .and_then(|r| r.bytes());
    assert!(cut.is_err(), "the results page is cut off");
    faults(json!({}));

    org.control(
        Method::POST,
        "faults/echo_token",
        json!({"count": 1, "path_contains": "/jobs/query", "method": "POST"}),
    );
    let (status, code, message) =
        error(org.create(json!({"operation": "query", "query": "SELECT Id FROM Account"})));
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "UNKNOWN_EXCEPTION")
    );
    assert!(message.ends_with(&org.token));

    org.control(
        Method::POST,
        "faults/bad_value",
        json!({"object": "Contact", "field": "Birthdate", "value": "31/12/1999", "count": 1}),
    );
    let planted = org.csv("SELECT Id, Birthdate FROM Contact");
    let rows = records(&planted, b',');
    assert!(rows[1..].iter().all(|r| r[1] == "31/12/1999"));
    let real = org.csv("SELECT Id, Birthdate FROM Contact");
    assert!(
        !real.contains("31/12/1999"),
        "the fault planted one job's results"
    );
}

#[test]
fn the_request_log_shows_each_jobs_soql() {
    let org = Org::instant();
    org.control(Method::DELETE, "requests", Value::Null);
    let soql = "SELECT Id, Name FROM Account WHERE Name LIKE 'A%'";
    let id = org.job_for(soql);
    org.results(&id, "?maxRecords=1");
    let log = org.control(Method::GET, "requests", Value::Null)["requests"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (&log[0]["method"], &log[0]["path"], &log[0]["soql"]),
        (
            &json!("POST"),
            &json!(format!("{V}/jobs/query")),
            &json!(soql)
        )
    );
    assert_eq!(log[0]["body"]["query"], soql);
    assert_eq!(log[0]["counted"], true);
    assert_eq!(
        (&log[1]["soql"], &log[1]["records"], &log[1]["query"]),
        (&json!(soql), &json!(1), &json!("maxRecords=1"))
    );
}

#[test]
fn reset_forgets_jobs_and_keeps_settings() {
    let org = Org::instant();
    let id = org.job_for("SELECT Id FROM Account");
    org.control(Method::POST, "reset", Value::Null);
    let r = org
        .call(Method::GET, &format!("{V}/jobs/query/{id}"))
        .send()
        .unwrap();
    assert_eq!(error(r).0, StatusCode::NOT_FOUND);
    assert_eq!(
        org.control(Method::GET, "settings", Value::Null)["bulk_job_processing_ms"],
        0
    );
}
