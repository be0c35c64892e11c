//! Bulk API 2.0 ingest jobs over HTTP, as clients see them: every
//! operation, per-record results (not atomic), `#N/A`, several uploads,
//! result order, the job's states, refusals, limits, the hard delete
//! permission, faults and change events.

use common::{error_code, Org, V};
use reqwest::blocking::Response;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::Read;

mod common;

fn create(org: &Org, body: Value) -> Response {
    org.send(Method::POST, &format!("{V}/jobs/ingest"), body)
}

fn job_id(org: &Org, body: Value) -> String {
    let r = create(org, body.clone());
    assert_eq!(r.status(), StatusCode::OK, "{body}");
    let info: Value = r.json().unwrap();
    assert_eq!(info["state"], "Open");
    info["id"].as_str().unwrap().to_string()
}

fn put(org: &Org, id: &str, csv: impl Into<String>) -> Response {
    org.http
        .put(org.url(&format!("{V}/jobs/ingest/{id}/batches")))
        .bearer_auth(&org.token)
        .header("Content-Type", "text/csv")
        .body(csv.into())
        .send()
        .unwrap()
}

fn set_state(org: &Org, id: &str, state: &str) -> Response {
    org.send(
        Method::PATCH,
        &format!("{V}/jobs/ingest/{id}"),
        json!({ "state": state }),
    )
}

fn info(org: &Org, id: &str) -> Value {
    let r = org.get(&format!("{V}/jobs/ingest/{id}"));
    assert_eq!(r.status(), StatusCode::OK);
    r.json().unwrap()
}

fn result(org: &Org, id: &str, kind: &str) -> String {
    let r = org.get(&format!("{V}/jobs/ingest/{id}/{kind}"));
    assert_eq!(r.status(), StatusCode::OK, "{kind}");
    assert_eq!(r.headers()["content-type"], "text/csv; charset=UTF-8");
    r.text().unwrap()
}

/// Creates a job, uploads `csv`, closes it and answers its id and final info
/// (the demo org's jobs complete at the next request).
fn run(org: &Org, job: Value, csv: &str) -> (String, Value) {
    let id = job_id(org, job);
    assert_eq!(put(org, &id, csv).status(), StatusCode::CREATED);
    let closed = set_state(org, &id, "UploadComplete");
    assert_eq!(closed.status(), StatusCode::OK);
    assert_eq!(closed.json::<Value>().unwrap()["state"], "UploadComplete");
    let done = info(org, &id);
    (id, done)
}

fn lines(csv: &str) -> Vec<&str> {
    csv.lines().collect()
}

#[test]
fn insert_writes_each_record_on_its_own() {
    let org = Org::demo();
    let csv = "LastName,FirstName,Email,Birthdate,HasOptedOutOfEmail\n\
               Ingest,Ada,ada.ingest@example.net,2000-01-02,true\n\
               ,NoLast,,,\n\
               Ingest,\"Quote \"\"q\"\"\",q.ingest@example.net,02/01/2000,\n";
    let (id, done) = run(
        &org,
        json!({"object": "Contact", "operation": "insert"}),
        csv,
    );
    assert_eq!(done["state"], "JobComplete");
    assert_eq!(done["jobType"], "V2Ingest");
    assert_eq!(done["numberRecordsProcessed"], 3);
    assert_eq!(done["numberRecordsFailed"], 2);
    let ok = result(&org, &id, "successfulResults");
    let ok = lines(&ok);
    assert_eq!(
        ok[0],
        "\"sf__Id\",\"sf__Created\",LastName,FirstName,Email,Birthdate,HasOptedOutOfEmail"
    );
    assert_eq!(ok.len(), 2);
    let new_id = ok[1][1..19].to_string();
    assert!(new_id.starts_with("003"), "{}", ok[1]);
    assert_eq!(
        &ok[1][21..],
        "\"true\",\"Ingest\",\"Ada\",\"ada.ingest@example.net\",\"2000-01-02\",\"true\""
    );
    let failed = result(&org, &id, "failedResults");
    let failed = lines(&failed);
    assert_eq!(
        failed[0],
        "\"sf__Id\",\"sf__Error\",LastName,FirstName,Email,Birthdate,HasOptedOutOfEmail"
    );
    assert_eq!(
        failed[1],
        "\"\",\"REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --\",\"\",\"NoLast\",\"\",\"\",\"\""
    );
    assert_eq!(
        failed[2],
        "\"\",\"INVALID_FIELD:Failed to deserialize field at col 4. Due to, '02/01/2000' is not a valid value for the type xsd:date:Birthdate --\",\"Ingest\",\"Quote \"\"q\"\"\",\"q.ingest@example.net\",\"02/01/2000\",\"\""
    );
    assert_eq!(
        result(&org, &id, "unprocessedrecords").trim_end(),
        "LastName,FirstName,Email,Birthdate,HasOptedOutOfEmail"
    );
    let rows = org.records(&format!(
        "SELECT FirstName, Birthdate, HasOptedOutOfEmail FROM Contact WHERE Id = '{new_id}'"
    ));
    assert_eq!(rows[0]["FirstName"], "Ada");
    assert_eq!(rows[0]["Birthdate"], "2000-01-02");
    assert_eq!(rows[0]["HasOptedOutOfEmail"], true);
    assert_eq!(
        org.records("SELECT Id FROM Contact WHERE LastName = 'Ingest'")
            .len(),
        1,
        "the failed records are not written, the good one stays"
    );
}

#[test]
fn update_takes_na_as_null_and_leaves_empty_cells_alone() {
    let org = Org::demo();
    let r = org.send(
        Method::POST,
        &format!("{V}/sobjects/Contact"),
        json!({"LastName": "Upd", "FirstName": "Before", "Phone": "555-0100", "Title": "Boss"}),
    );
    let contact = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let unknown = "0035g0000zzzzzzAAA";
    let csv = format!(
        "Id,FirstName,Phone,Title\n{contact},#N/A,,Chief\n{unknown},X,,\n003bad,X,,\n{contact},,,#N/A\n"
    );
    let (id, done) = run(
        &org,
        json!({"object": "Contact", "operation": "update"}),
        &csv,
    );
    assert_eq!(done["numberRecordsProcessed"], 4);
    assert_eq!(done["numberRecordsFailed"], 2);
    let rows = org.records(&format!(
        "SELECT FirstName, Phone, Title FROM Contact WHERE Id = '{contact}'"
    ));
    assert_eq!(rows[0]["FirstName"], Value::Null);
    assert_eq!(
        rows[0]["Phone"], "555-0100",
        "an empty cell leaves the field"
    );
    assert_eq!(rows[0]["Title"], Value::Null, "the later row nulled it");
    let failed = result(&org, &id, "failedResults");
    let failed = lines(&failed);
    assert_eq!(
        failed[1],
        format!("\"{unknown}\",\"INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--\",\"{unknown}\",\"X\",\"\",\"\"")
    );
    assert!(
        failed[2].starts_with("\"003bad\",\"MALFORMED_ID:malformed id 003bad:--\""),
        "{}",
        failed[2]
    );
    let ok = result(&org, &id, "successfulResults");
    assert!(lines(&ok)[1].starts_with(&format!("\"{contact}\",\"false\",\"{contact}\",\"#N/A\"")));
}

#[test]
fn upsert_creates_and_updates_by_external_id() {
    let org = Org::demo();
    let csv = "User_Id__c,LastName,Languages__c\nU-ING-1,First,English;French\nU-ING-2,Second,\n";
    let job =
        json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "User_Id__c"});
    let (id, done) = run(&org, job.clone(), csv);
    assert_eq!(done["externalIdFieldName"], "User_Id__c");
    assert_eq!(done["numberRecordsFailed"], 0);
    let ok = result(&org, &id, "successfulResults");
    assert!(lines(&ok)[1..]
        .iter()
        .all(|l| l.contains("\"true\",\"U-ING-")));
    let csv =
        "User_Id__c,LastName,Languages__c\nu-ing-1,Renamed,#N/A\nU-ING-3,Third,German\n,NoKey,\n";
    let (id, done) = run(&org, job, csv);
    assert_eq!(done["numberRecordsProcessed"], 3);
    assert_eq!(done["numberRecordsFailed"], 1);
    let ok = result(&org, &id, "successfulResults");
    let ok = lines(&ok);
    assert!(
        ok[1].ends_with("\"false\",\"u-ing-1\",\"Renamed\",\"#N/A\""),
        "{}",
        ok[1]
    );
    assert!(
        ok[2].ends_with("\"true\",\"U-ING-3\",\"Third\",\"German\""),
        "{}",
        ok[2]
    );
    let failed = result(&org, &id, "failedResults");
    assert!(
        failed.contains("MISSING_ARGUMENT:User_Id__c not specified:--"),
        "{failed}"
    );
    let rows =
        org.records("SELECT LastName, Languages__c FROM Contact WHERE User_Id__c = 'U-ING-1'");
    assert_eq!(rows[0]["LastName"], "Renamed");
    assert_eq!(rows[0]["Languages__c"], Value::Null);
    assert_eq!(
        org.records("SELECT Id FROM Contact WHERE User_Id__c LIKE 'U-ING-%'")
            .len(),
        3
    );
}

fn new_account(org: &Org, name: &str) -> String {
    let r = org.send(
        Method::POST,
        &format!("{V}/sobjects/Account"),
        json!({"Name": name}),
    );
    r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn query_all(org: &Org, soql: &str) -> Vec<Value> {
    let r = org
        .http
        .get(org.url(&format!("{V}/queryAll")))
        .query(&[("q", soql)])
        .bearer_auth(&org.token)
        .send()
        .unwrap();
    r.json::<Value>().unwrap()["records"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn delete_goes_to_the_recycle_bin_and_hard_delete_does_not() {
    let org = Org::demo();
    let soft = new_account(&org, "Bulk Soft");
    let hard = new_account(&org, "Bulk Hard");
    let (id, done) = run(
        &org,
        json!({"object": "Account", "operation": "delete"}),
        &format!("Id\n{soft}\n"),
    );
    assert_eq!(done["numberRecordsFailed"], 0);
    assert_eq!(
        lines(&result(&org, &id, "successfulResults"))[1],
        format!("\"{soft}\",\"false\",\"{soft}\"")
    );
    let (_, done) = run(
        &org,
        json!({"object": "Account", "operation": "hardDelete"}),
        &format!("Id\n{hard}\n{soft}\n"),
    );
    assert_eq!(done["numberRecordsProcessed"], 2);
    assert_eq!(
        done["numberRecordsFailed"], 1,
        "the deleted one is no longer live"
    );
    let seen = query_all(
        &org,
        "SELECT Id, IsDeleted FROM Account WHERE Name LIKE 'Bulk %'",
    );
    assert_eq!(
        seen.len(),
        1,
        "queryAll no longer sees the hard-deleted record"
    );
    assert_eq!(seen[0]["Id"], soft);
    assert_eq!(seen[0]["IsDeleted"], true);
}

#[test]
fn hard_delete_needs_the_permission() {
    let mut org = Org::demo();
    org.token = org.token_for("limited@sfsim.example");
    let r = create(
        &org,
        json!({"object": "Account", "operation": "hardDelete"}),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&r.json().unwrap()), "FEATURENOTENABLED");
    let r = create(&org, json!({"object": "Account", "operation": "delete"}));
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a soft delete needs nothing more"
    );
}

#[test]
fn several_uploads_and_batches_come_back_last_batch_first() {
    let org = Org::demo();
    let id = job_id(&org, json!({"object": "Contact", "operation": "insert"}));
    let upload = |from: usize, to: usize| {
        let mut csv = String::from("LastName,Title\n");
        for i in from..to {
            csv.push_str(&format!("N{i},Batchy\n"));
        }
        csv
    };
    assert_eq!(
        put(&org, &id, upload(0, 12_500)).status(),
        StatusCode::CREATED
    );
    assert_eq!(
        put(&org, &id, upload(12_500, 25_000)).status(),
        StatusCode::CREATED
    );
    assert_eq!(info(&org, &id)["state"], "Open");
    set_state(&org, &id, "UploadComplete");
    let done = info(&org, &id);
    assert_eq!(done["numberRecordsProcessed"], 25_000);
    let ok = result(&org, &id, "successfulResults");
    let names: Vec<&str> = lines(&ok)[1..]
        .iter()
        .map(|l| l.split(',').nth(2).unwrap().trim_matches('"'))
        .collect();
    assert_eq!(names.len(), 25_000);
    // Three internal batches: the last (records 20,000 to 24,999) first, then the first two.
    assert_eq!(names[0], "N20000");
    assert_eq!(names[4_999], "N24999");
    assert_eq!(names[5_000], "N0");
    assert_eq!(names[15_000], "N10000");
    assert_eq!(names[24_999], "N19999");
}

#[test]
fn unknown_header_fails_the_job_and_writes_nothing() {
    let org = Org::demo();
    let (id, done) = run(
        &org,
        json!({"object": "Contact", "operation": "insert"}),
        "LastName,Nope__c\nGhost,1\n",
    );
    assert_eq!(done["state"], "Failed");
    assert_eq!(
        done["errorMessage"],
        "InvalidBatch : Field name not found : Nope__c"
    );
    assert_eq!(done["numberRecordsProcessed"], 0);
    assert_eq!(
        result(&org, &id, "unprocessedrecords"),
        "LastName,Nope__c\n\"Ghost\",\"1\"\n"
    );
    assert!(org
        .records("SELECT Id FROM Contact WHERE LastName = 'Ghost'")
        .is_empty());
    let (_, done) = run(
        &org,
        json!({"object": "Contact", "operation": "update"}),
        "LastName\nX\n",
    );
    assert_eq!(
        done["errorMessage"],
        "InvalidBatch : Field name not found : Id"
    );
    let (_, done) = run(
        &org,
        json!({"object": "Contact", "operation": "insert", "lineEnding": "CRLF"}),
        "LastName\nX\n",
    );
    assert_eq!(
        done["errorMessage"],
        "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is CRLF"
    );
}

#[test]
fn nothing_is_processed_before_upload_complete_and_states_are_kept() {
    let org = Org::demo();
    let id = job_id(&org, json!({"object": "Contact", "operation": "insert"}));
    put(&org, &id, "LastName\nWaiting\n");
    org.advance_clock(3_600);
    assert_eq!(info(&org, &id)["state"], "Open");
    assert!(org
        .records("SELECT Id FROM Contact WHERE LastName = 'Waiting'")
        .is_empty());
    let r = org.get(&format!("{V}/jobs/ingest/{id}/successfulResults"));
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = org.send(
        Method::DELETE,
        &format!("{V}/jobs/ingest/{id}"),
        Value::Null,
    );
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "an Open job cannot be deleted"
    );
    let aborted = set_state(&org, &id, "Aborted");
    assert_eq!(aborted.json::<Value>().unwrap()["state"], "Aborted");
    assert!(org
        .records("SELECT Id FROM Contact WHERE LastName = 'Waiting'")
        .is_empty());
    assert_eq!(
        result(&org, &id, "unprocessedrecords"),
        "LastName\n\"Waiting\"\n"
    );
    let r = put(&org, &id, "LastName\nLate\n");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&r.json().unwrap()), "INVALIDJOBSTATE");
    let r = set_state(&org, &id, "UploadComplete");
    assert_eq!(error_code(&r.json().unwrap()), "INVALIDJOBSTATE");
    let r = org.send(
        Method::DELETE,
        &format!("{V}/jobs/ingest/{id}"),
        Value::Null,
    );
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        org.get(&format!("{V}/jobs/ingest/{id}")).status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn jobs_move_on_the_clock_and_aborting_does_not_undo() {
    let org = Org::demo();
    org.control(
        Method::PATCH,
        "settings",
        json!({"bulk_job_processing_ms": 10_000}),
    );
    let id = job_id(&org, json!({"object": "Account", "operation": "insert"}));
    put(&org, &id, "Name\nClocked\n");
    set_state(&org, &id, "UploadComplete");
    assert_eq!(info(&org, &id)["state"], "UploadComplete");
    org.advance_clock(6);
    assert_eq!(info(&org, &id)["state"], "InProgress");
    assert_eq!(
        org.records("SELECT Id FROM Account WHERE Name = 'Clocked'")
            .len(),
        1
    );
    let aborted = set_state(&org, &id, "Aborted");
    assert_eq!(aborted.status(), StatusCode::OK);
    assert_eq!(
        org.records("SELECT Id FROM Account WHERE Name = 'Clocked'")
            .len(),
        1,
        "not undone"
    );
    let listed: Value = org.get(&format!("{V}/jobs/ingest")).json().unwrap();
    assert!(listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["id"] == id.as_str() && j["state"] == "Aborted"));
}

#[test]
fn create_refusals() {
    let org = Org::demo();
    let refused = |body: Value, code: &str| {
        let r = create(&org, body.clone());
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let answer: Value = r.json().unwrap();
        assert_eq!(error_code(&answer), code, "{body}");
        answer[0]["message"].as_str().unwrap().to_string()
    };
    assert_eq!(
        refused(
            json!({"object": "Nope", "operation": "insert"}),
            "INVALIDENTITY"
        ),
        "Entity 'Nope' is not supported by the Bulk API."
    );
    assert_eq!(
        refused(
            json!({"object": "Contact", "operation": "upsert"}),
            "INVALIDJOB"
        ),
        "External ID was blank for Contact. An External ID must be specified for upsert."
    );
    refused(
        json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "Email"}),
        "INVALIDJOB",
    );
    refused(
        json!({"object": "Contact", "operation": "merge"}),
        "API_ERROR",
    );
    refused(
        json!({"object": "Contact", "operation": "insert", "columnDelimiter": "COLON"}),
        "API_ERROR",
    );
    let r = create(
        &org,
        json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "Id", "columnDelimiter": "PIPE", "lineEnding": "CRLF"}),
    );
    let info: Value = r.json().unwrap();
    assert_eq!(info["externalIdFieldName"], "Id");
    assert_eq!(
        info["contentUrl"],
        format!(
            "services/data/v62.0/jobs/ingest/{}/batches",
            info["id"].as_str().unwrap()
        )
    );
    assert_eq!(info["columnDelimiter"], "PIPE");
    assert_eq!(info["lineEnding"], "CRLF");
}

#[test]
fn pipe_and_crlf_jobs_answer_in_their_format_and_gzip() {
    let org = Org::demo();
    let job = json!({"object": "Account", "operation": "insert", "columnDelimiter": "PIPE", "lineEnding": "CRLF"});
    let (id, _) = run(&org, job, "Name|Description\r\nPiped|a,b\r\n");
    let ok = result(&org, &id, "successfulResults");
    assert!(
        ok.starts_with("\"sf__Id\"|\"sf__Created\"|Name|Description\r\n"),
        "{ok}"
    );
    assert!(ok.ends_with("|\"true\"|\"Piped\"|\"a,b\"\r\n"), "{ok}");
    let r = org
        .http
        .get(org.url(&format!("{V}/jobs/ingest/{id}/successfulResults")))
        .bearer_auth(&org.token)
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let mut text = String::new();
    flate2::read::GzDecoder::new(r)
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, ok);
}

#[test]
fn multipart_create_uploads_and_closes() {
    let org = Org::demo();
    let body = "--BOUNDARY\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name=\"job\"\r\n\r\n{\"object\":\"Contact\",\"contentType\":\"CSV\",\"operation\":\"insert\",\"lineEnding\":\"LF\"}\r\n--BOUNDARY\r\nContent-Type: text/csv\r\nContent-Disposition: form-data; name=\"content\"; filename=\"content\"\r\n\r\nFirstName,LastName\nAstro,Multipart\nHootie,Multipart\n\r\n--BOUNDARY--\r\n";
    let r = org
        .http
        .post(org.url(&format!("{V}/jobs/ingest")))
        .bearer_auth(&org.token)
        .header("Content-Type", "multipart/form-data; boundary=BOUNDARY")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let created: Value = r.json().unwrap();
    assert_eq!(created["state"], "UploadComplete");
    let done = info(&org, created["id"].as_str().unwrap());
    assert_eq!(done["state"], "JobComplete");
    assert_eq!(
        org.records("SELECT Id FROM Contact WHERE LastName = 'Multipart'")
            .len(),
        2
    );
}

#[test]
fn uploads_beyond_axums_default_body_limit_are_taken() {
    let org = Org::demo();
    let id = job_id(&org, json!({"object": "Contact", "operation": "insert"}));
    let long = "x".repeat(30_000);
    let mut csv = String::from("LastName,Description\n");
    for i in 0..120 {
        csv.push_str(&format!("Big{i},{long}\n"));
    }
    assert!(csv.len() > 3_000_000);
    assert_eq!(put(&org, &id, csv).status(), StatusCode::CREATED);
    set_state(&org, &id, "UploadComplete");
    assert_eq!(info(&org, &id)["numberRecordsProcessed"], 120);
}

#[test]
fn batches_count_against_the_daily_allocation() {
    let org = Org::demo();
    let limits = |org: &Org| -> Value { org.get(&format!("{V}/limits")).json().unwrap() };
    assert_eq!(
        limits(&org)["DailyBulkApiBatches"],
        json!({"Max": 15000, "Remaining": 15000})
    );
    org.control(
        Method::PATCH,
        "settings",
        json!({"bulk_daily_batch_limit": 3}),
    );
    let used_before = org.api_requests_used();
    let mut csv = String::from("LastName\n");
    for i in 0..10_001 {
        csv.push_str(&format!("Q{i}\n"));
    }
    let (_, done) = run(
        &org,
        json!({"object": "Contact", "operation": "insert"}),
        &csv,
    );
    assert_eq!(done["state"], "JobComplete");
    assert_eq!(
        org.api_requests_used() - used_before,
        4,
        "every call counts"
    );
    assert_eq!(limits(&org)["DailyBulkApiBatches"]["Remaining"], 1);
    // Two batches, one allowed: the last (one record) completes first, the other is left.
    let (id, done) = run(
        &org,
        json!({"object": "Contact", "operation": "insert"}),
        &csv,
    );
    assert_eq!(done["state"], "Failed");
    assert_eq!(
        done["errorMessage"],
        "ExceededQuota : ApiBatchItems Limit exceeded."
    );
    assert_eq!(done["numberRecordsProcessed"], 1);
    let ok = result(&org, &id, "successfulResults");
    assert!(lines(&ok)[1].ends_with("\"Q10000\""));
    assert_eq!(
        lines(&result(&org, &id, "unprocessedrecords")).len(),
        10_001
    );
    assert_eq!(limits(&org)["DailyBulkApiBatches"]["Remaining"], 0);
    let r = create(&org, json!({"object": "Contact", "operation": "insert"}));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&r.json().unwrap()), "LIMIT_EXCEEDED");
    org.advance_clock(24 * 3600);
    assert_eq!(limits(&org)["DailyBulkApiBatches"]["Remaining"], 3);
}

#[test]
fn faults_reach_ingest_calls() {
    let org = Org::demo();
    org.control(Method::PATCH, "faults", json!({"server_unavailable": 1.0}));
    let r = create(&org, json!({"object": "Contact", "operation": "insert"}));
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    org.control(Method::PATCH, "faults", json!({}));
    org.control(
        Method::POST,
        "faults/echo_token",
        json!({"count": 1, "path_contains": "/jobs/ingest"}),
    );
    let r = create(&org, json!({"object": "Contact", "operation": "insert"}));
    assert_eq!(error_code(&r.json().unwrap()), "UNKNOWN_EXCEPTION");
    job_id(&org, json!({"object": "Contact", "operation": "insert"}));
}

#[test]
fn ingested_writes_publish_change_events() {
    let org = Org::demo();
    org.control(Method::POST, "cdc", json!({"objects": ["Contact"]}));
    let before = org.control(Method::GET, "cdc", Value::Null)["events"]
        .as_u64()
        .unwrap();
    run(
        &org,
        json!({"object": "Contact", "operation": "insert"}),
        "LastName\nEv1\nEv2\n",
    );
    let after = org.control(Method::GET, "cdc", Value::Null)["events"]
        .as_u64()
        .unwrap();
    assert_eq!(after - before, 2, "one create event per ingested record");
}
