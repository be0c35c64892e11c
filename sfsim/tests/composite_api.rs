//! The Composite resource over HTTP: subrequests in one call, references
//! between them, allOrNone, limits, usage, faults and the request log.

mod common;

use common::{error_code, soql_datetime, Org, V};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sfsim::server::Options;

/// A query subrequest's url: `/services/data/v62.0/query?q=...`.
fn query_url(resource: &str, soql: &str) -> String {
    let q: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
    format!("{V}/{resource}?q={q}")
}

fn get(reference_id: &str, url: &str) -> Value {
    json!({"method": "GET", "url": url, "referenceId": reference_id})
}

fn statuses(answers: &[Value]) -> Vec<u64> {
    answers
        .iter()
        .map(|a| a["httpStatusCode"].as_u64().unwrap())
        .collect()
}

fn subrequest_log(org: &Org) -> Vec<Value> {
    org.requests()
        .into_iter()
        .filter(|e| e["via"] == "composite")
        .collect()
}

#[test]
fn change_queries_of_several_objects_and_get_deleted_share_one_call() {
    let org = Org::demo();
    let start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let lead = org.records("SELECT Id FROM Lead ORDER BY Id LIMIT 1")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    org.control(Method::DELETE, &format!("records/Lead/{lead}"), Value::Null);
    let contact = org.records("SELECT Id FROM Contact ORDER BY Id LIMIT 1")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    org.control(
        Method::PATCH,
        &format!("records/Contact/{contact}"),
        json!({"Title": "CFO"}),
    );
    // getDeleted covers whole minutes that are over.
    org.advance_clock(120);
    org.clear_log();
    let used = org.api_requests_used();
    let since = soql_datetime(start);
    let end = soql_datetime(chrono::Utc::now() + chrono::Duration::hours(1));
    let contacts = format!("SELECT Id, Title, SystemModstamp FROM Contact WHERE SystemModstamp > {since} ORDER BY SystemModstamp, Id");
    let accounts = format!("SELECT Id FROM Account WHERE SystemModstamp > {since}");
    let deleted_leads = format!(
        "SELECT Id, IsDeleted FROM Lead WHERE IsDeleted = true AND SystemModstamp > {since}"
    );
    let r = org.composite(json!({"compositeRequest": [
        get("contacts", &query_url("query", &contacts)),
        get("accounts", &query_url("query", &accounts)),
        get("leads", &query_url("queryAll", &deleted_leads)),
        get("leadsDeleted", &format!("{V}/sobjects/Lead/deleted/?start={since}&end={end}")),
    ]}));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["sforce-limit-info"],
        format!("api-usage={}/15000", used + 1).as_str()
    );
    let answer: Value = r.json().unwrap();
    let answers = answer["compositeResponse"].as_array().unwrap();
    assert_eq!(statuses(answers), [200, 200, 200, 200]);
    let refs: Vec<&str> = answers
        .iter()
        .map(|a| a["referenceId"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["contacts", "accounts", "leads", "leadsDeleted"]);
    assert_eq!(answers[0]["body"]["records"][0]["Id"], contact.as_str());
    assert_eq!(answers[0]["body"]["records"][0]["Title"], "CFO");
    assert_eq!(answers[0]["httpHeaders"], json!({}));
    assert_eq!(answers[1]["body"]["totalSize"], 0);
    assert_eq!(answers[2]["body"]["records"][0]["Id"], lead.as_str());
    assert_eq!(answers[3]["body"]["deletedRecords"][0]["id"], lead.as_str());
    assert!(answers[3]["body"]["earliestDateAvailable"].is_string());
    assert_eq!(
        org.api_requests_used(),
        used + 1,
        "one request for the call"
    );

    let log = org.requests();
    assert_eq!(log.len(), 5, "the call and its four subrequests");
    let call = &log[0];
    assert_eq!(
        (
            call["path"].as_str(),
            call["counted"].as_bool(),
            call.get("via")
        ),
        (Some("/services/data/v62.0/composite"), Some(true), None)
    );
    let subs = &log[1..];
    assert!(subs.iter().all(|s| s["via"] == "composite"
        && s["counted"] == false
        && s["parent_seq"] == call["seq"]));
    let soql: Vec<&Value> = subs.iter().map(|s| &s["soql"]).collect();
    assert_eq!(
        soql,
        [
            &json!(contacts),
            &json!(accounts),
            &json!(deleted_leads),
            &Value::Null
        ]
    );
    assert_eq!(subs[0]["path"], "/services/data/v62.0/query");
    assert_eq!(subs[0]["records"], 1);
    assert_eq!(
        subs[3]["path"],
        "/services/data/v62.0/sobjects/Lead/deleted/"
    );
    assert_eq!(subs[3]["reference_id"], "leadsDeleted");
}

#[test]
fn a_query_pages_through_its_next_records_url_in_a_later_call() {
    let org = Org::demo();
    let soql = "SELECT Id, LastName FROM Contact ORDER BY Id";
    let first = org.composite_ok(json!({"compositeRequest": [{
        "method": "GET",
        "url": query_url("query", soql),
        "referenceId": "page1",
        "httpHeaders": {"Sforce-Query-Options": "batchSize=300"},
    }]}));
    let page1 = &first[0]["body"];
    assert_eq!(
        (page1["totalSize"].as_u64(), page1["done"].as_bool()),
        (Some(400), Some(false))
    );
    assert_eq!(page1["records"].as_array().unwrap().len(), 300);
    let next = page1["nextRecordsUrl"].as_str().unwrap();
    assert!(next.starts_with("/services/data/v62.0/query/"));
    let second = org.composite_ok(json!({"compositeRequest": [get("page2", next)]}));
    let page2 = &second[0]["body"];
    assert_eq!(page2["done"], true);
    assert_eq!(page2["records"].as_array().unwrap().len(), 100);
    let all = org.records(&format!("{soql} LIMIT 400"));
    assert_eq!(page2["records"][0]["Id"], all[300]["Id"]);
    let logged = subrequest_log(&org);
    assert_eq!(logged.last().unwrap()["soql"], soql, "the cursor's SOQL");
    assert_eq!(logged.last().unwrap()["records"], 100);
}

#[test]
fn a_failing_subrequest_leaves_the_others_standing_without_all_or_none() {
    let org = Org::demo();
    let answers = org.composite_ok(json!({"compositeRequest": [
        {"method": "POST", "url": format!("{V}/sobjects/Lead"), "referenceId": "lead",
         "body": {"LastName": "Kept", "Company": "Standing Co"}},
        get("bad", &query_url("query", "SELECT Id FROM Lead WHERE")),
        get("good", &query_url("query", "SELECT COUNT() FROM Account")),
        get("missing", &format!("{V}/sobjects/Lead/00Q000000000000AAA")),
    ]}));
    assert_eq!(statuses(&answers), [201, 400, 200, 404]);
    assert_eq!(answers[0]["body"]["success"], true);
    let id = answers[0]["body"]["id"].as_str().unwrap();
    assert_eq!(
        answers[0]["httpHeaders"]["Location"],
        format!("{V}/sobjects/Lead/{id}").as_str()
    );
    assert_eq!(error_code(&answers[1]["body"]), "MALFORMED_QUERY");
    assert!(answers[1]["body"][0]["message"]
        .as_str()
        .unwrap()
        .contains("ERROR at Row:1"));
    assert_eq!(answers[2]["body"]["totalSize"], 40);
    assert_eq!(error_code(&answers[3]["body"]), "NOT_FOUND");
    let kept = org.records(&format!("SELECT LastName FROM Lead WHERE Id = '{id}'"));
    assert_eq!(kept[0]["LastName"], "Kept");
}

#[test]
fn all_or_none_rolls_back_every_write_and_halts_the_rest() {
    let org = Org::demo();
    let contact =
        org.records("SELECT Id, Title, SystemModstamp FROM Contact ORDER BY Id LIMIT 1")[0].clone();
    let contact_id = contact["Id"].as_str().unwrap();
    let deleted = org.records("SELECT Id FROM Lead ORDER BY Id LIMIT 1")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let answers = org.composite_ok(json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "newAccount",
         "body": {"Name": "Rolled Back Inc"}},
        {"method": "PATCH", "url": format!("{V}/sobjects/Contact/{contact_id}"), "referenceId": "edit",
         "body": {"Title": "Never", "AccountId": "@{newAccount.id}"}},
        {"method": "DELETE", "url": format!("{V}/sobjects/Lead/{deleted}"), "referenceId": "gone"},
        get("read", &query_url("query", "SELECT Id FROM Account LIMIT 1")),
        {"method": "POST", "url": format!("{V}/sobjects/Contact"), "referenceId": "bad",
         "body": {"FirstName": "No Last Name"}},
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "after",
         "body": {"Name": "Never Run"}},
    ]}));
    assert_eq!(statuses(&answers), [400, 400, 400, 400, 400, 400]);
    assert_eq!(error_code(&answers[4]["body"]), "REQUIRED_FIELD_MISSING");
    for i in [0, 1, 2, 3, 5] {
        assert_eq!(
            answers[i]["body"],
            json!([{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed."}]),
            "{}",
            answers[i]["referenceId"]
        );
    }
    assert_eq!(
        org.query(
            "SELECT COUNT() FROM Account WHERE Name LIKE 'Rolled Back%' OR Name = 'Never Run'"
        )["totalSize"],
        0
    );
    let after = org.records(&format!(
        "SELECT Id, Title, SystemModstamp FROM Contact WHERE Id = '{contact_id}'"
    ));
    assert_eq!(after[0], contact, "the update is undone");
    assert_eq!(
        org.query(&format!("SELECT COUNT() FROM Lead WHERE Id = '{deleted}'"))["totalSize"],
        1,
        "the delete is undone"
    );
    let ran: Vec<String> = subrequest_log(&org)
        .iter()
        .map(|e| e["reference_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ran,
        ["newAccount", "edit", "gone", "read", "bad"],
        "what ran is logged"
    );
}

#[test]
fn all_or_none_overrides_the_all_or_none_of_collections() {
    let org = Org::demo();
    let records = json!([
        {"attributes": {"type": "Lead"}, "LastName": "Collected", "Company": "C"},
        {"attributes": {"type": "Lead"}, "Company": "No last name"},
    ]);
    let collection = |outer: bool| {
        org.composite_ok(json!({"allOrNone": outer, "compositeRequest": [
            {"method": "POST", "url": format!("{V}/composite/sobjects"), "referenceId": "leads",
             "body": {"allOrNone": false, "records": records}},
            {"method": "POST", "url": format!("{V}/sobjects/Task"), "referenceId": "task",
             "body": {"Subject": "Call", "WhoId": "@{leads[0].id}"}},
        ]}))
    };
    let lenient = collection(false);
    assert_eq!(statuses(&lenient), [200, 201]);
    assert_eq!(lenient[0]["body"][0]["success"], true);
    assert_eq!(lenient[0]["body"][1]["success"], false);
    assert_eq!(
        org.query("SELECT COUNT() FROM Lead WHERE LastName = 'Collected'")["totalSize"],
        1
    );
    let strict = collection(true);
    assert_eq!(strict[0]["httpStatusCode"], 200);
    assert_eq!(
        strict[0]["body"][0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(error_code(&strict[1]["body"]), "PROCESSING_HALTED");
    assert_eq!(
        org.query("SELECT COUNT() FROM Lead WHERE LastName = 'Collected'")["totalSize"],
        1,
        "nothing more was created"
    );
}

#[test]
fn references_carry_results_into_later_urls_and_bodies() {
    let org = Org::demo();
    let answers = org.composite_ok(json!({"compositeRequest": [
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "newAccount",
         "body": {"Name": "Referenced Ltd", "NumberOfEmployees": 12}},
        {"method": "POST", "url": format!("{V}/sobjects/Contact"), "referenceId": "newContact",
         "body": {"LastName": "Linked", "AccountId": "@{newAccount.id}"}},
        get("account", &format!("{V}/sobjects/Account/@{{newAccount.id}}?fields=Name,NumberOfEmployees")),
        get("q", &query_url("query", "SELECT Id, AccountId FROM Contact WHERE AccountId = '@{newAccount.id}'")),
        {"method": "PATCH", "url": format!("{V}/sobjects/Contact/@{{q.records[0].Id}}"), "referenceId": "edit",
         "body": {"Title": "Staff of @{account.Name}", "Lifetime_Value__c": "@{account.NumberOfEmployees}"}},
        get("nowhere", &format!("{V}/sobjects/Account/@{{newAccount.nope}}")),
        get("failedFirst", &query_url("query", "SELECT Nope FROM Account")),
        get("dependent", &format!("{V}/sobjects/Account/@{{failedFirst.records[0].Id}}")),
    ]}));
    assert_eq!(statuses(&answers), [201, 201, 200, 200, 204, 400, 400, 400]);
    let account = answers[0]["body"]["id"].as_str().unwrap();
    let contact = answers[1]["body"]["id"].as_str().unwrap();
    assert_eq!(answers[2]["body"]["Name"], "Referenced Ltd");
    assert_eq!(answers[3]["body"]["records"][0]["Id"], contact);
    assert_eq!(answers[4]["body"], Value::Null);
    let row = org.records(&format!(
        "SELECT AccountId, Title, Lifetime_Value__c FROM Contact WHERE Id = '{contact}'"
    ));
    assert_eq!(row[0]["AccountId"], account);
    assert_eq!(row[0]["Title"], "Staff of Referenced Ltd");
    assert_eq!(
        row[0]["Lifetime_Value__c"], 12.0,
        "a whole-string reference keeps its type"
    );
    assert_eq!(
        answers[5]["body"],
        json!([{"errorCode": "PROCESSING_HALTED", "message": "Invalid reference specified. No value for newAccount.nope found in newAccount."}])
    );
    assert_eq!(error_code(&answers[6]["body"]), "INVALID_FIELD");
    assert_eq!(error_code(&answers[7]["body"]), "PROCESSING_HALTED");
    let logged: Vec<String> = subrequest_log(&org)
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        logged.contains(&format!("{V}/sobjects/Contact/{contact}")),
        "the log shows the url as run: {logged:?}"
    );
}

#[test]
fn over_twenty_five_subrequests_or_five_queries_are_refused_whole() {
    let org = Org::demo();
    let describe = format!("{V}/sobjects/Lead/describe");
    let many: Vec<Value> = (0..26).map(|i| get(&format!("d{i}"), &describe)).collect();
    let r = org.composite(json!({"compositeRequest": many}));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!([{"message": "The request can’t contain more than 25 operations.", "errorCode": "LIMIT_EXCEEDED"}])
    );
    let mut queries: Vec<Value> = (0..5)
        .map(|i| {
            get(
                &format!("q{i}"),
                &query_url("query", "SELECT Id FROM Lead LIMIT 1"),
            )
        })
        .collect();
    queries.push(get("more", &format!("{V}/query/01gNOPE-2000")));
    let r = org.composite(json!({"compositeRequest": queries.clone()}));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&r.json().unwrap()), "LIMIT_EXCEEDED");
    queries[5] = get("describe", &describe);
    let fine = org.composite_ok(json!({"compositeRequest": queries}));
    assert_eq!(statuses(&fine), [200; 6]);
    assert_eq!(
        subrequest_log(&org).len(),
        6,
        "refused calls run no subrequest"
    );
}

#[test]
fn malformed_calls_are_refused_whole() {
    let org = Org::demo();
    let raw = org
        .http
        .post(org.url(&format!("{V}/composite")))
        .bearer_auth(&org.token)
        .header("Content-Type", "application/json")
        .body("{\"compositeRequest\": [")
        .send()
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&raw.json().unwrap()), "JSON_PARSER_ERROR");
    let q = query_url("query", "SELECT Id FROM Lead LIMIT 1");
    for (body, code) in [
        (
            json!({"compositeRequest": [get("a", &q), get("a", &q)]}),
            "INVALID_INPUT",
        ),
        (
            json!({"compositeRequest": [{"method": "GET", "url": q}]}),
            "INVALID_INPUT",
        ),
        (
            json!({"compositeRequest": [get("not-ok", &q)]}),
            "INVALID_INPUT",
        ),
        (
            json!({"compositeRequest": [get("a", &format!("{V}/limits"))]}),
            "INVALID_INPUT",
        ),
        (
            json!({"compositeRequest": [{"method": "GET", "referenceId": "a"}]}),
            "JSON_PARSER_ERROR",
        ),
        (
            json!({"allOrNone": "yes", "compositeRequest": []}),
            "JSON_PARSER_ERROR",
        ),
    ] {
        let r = org.composite(body.clone());
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(&r.json().unwrap()), code, "{body}");
    }
    assert!(subrequest_log(&org).is_empty());
    let listing: Value = org.get(&format!("{V}/composite")).json().unwrap();
    assert_eq!(
        listing["sobjects"],
        format!("{V}/composite/sobjects").as_str()
    );
}

#[test]
fn each_call_counts_once_however_many_subrequests() {
    let org = Org::start(Options {
        daily_limit: 3,
        ..Options::demo()
    });
    // Starting the org changed a setting through the control API only.
    let describe = format!("{V}/sobjects/Lead/describe");
    let twenty: Vec<Value> = (0..20).map(|i| get(&format!("d{i}"), &describe)).collect();
    for used in 1..=3 {
        let r = org.composite(json!({"compositeRequest": twenty}));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["sforce-limit-info"],
            format!("api-usage={used}/3").as_str()
        );
    }
    let r = org.composite(json!({"compositeRequest": twenty}));
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(&r.json().unwrap()), "REQUEST_LIMIT_EXCEEDED");
    let log = org.requests();
    assert_eq!(log.iter().filter(|e| e["counted"] == true).count(), 3);
    assert_eq!(
        log.iter().filter(|e| e["via"] == "composite").count(),
        60,
        "subrequests are logged, never counted"
    );
}

#[test]
fn faults_apply_to_the_composite_call_as_a_whole() {
    let org = Org::demo();
    let create = json!({"compositeRequest": [
        {"method": "POST", "url": format!("{V}/sobjects/Lead"), "referenceId": "lead",
         "body": {"LastName": "Faulted", "Company": "C"}},
    ]});
    let count =
        || org.query("SELECT COUNT() FROM Lead WHERE LastName = 'Faulted'")["totalSize"].clone();
    org.control(Method::PATCH, "faults", json!({"server_unavailable": 1.0}));
    let used = org.api_requests_used();
    let r = org.composite(create.clone());
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&r.json().unwrap()), "SERVER_UNAVAILABLE");
    assert_eq!(org.api_requests_used(), used, "a 503 is not counted");
    org.control(Method::PATCH, "faults", json!({}));
    assert_eq!(count(), 0, "nothing ran");
    assert!(subrequest_log(&org).is_empty());

    org.control(Method::PATCH, "faults", json!({"unable_to_lock_row": 1.0}));
    let reads = org.composite(
        json!({"compositeRequest": [get("q", &query_url("query", "SELECT Id FROM Lead LIMIT 1"))]}),
    );
    assert_eq!(
        reads.status(),
        StatusCode::OK,
        "a call that only reads locks no row"
    );
    let r = org.composite(create.clone());
    assert_eq!(error_code(&r.json().unwrap()), "UNABLE_TO_LOCK_ROW");
    org.control(Method::PATCH, "faults", json!({}));
    assert_eq!(count(), 0);

    org.control(
        Method::POST,
        "faults/echo_token",
        json!({"count": 1, "path_contains": "/composite/"}),
    );
    assert_eq!(
        org.composite(create.clone()).status(),
        StatusCode::OK,
        "/composite/ names collections, not the composite call"
    );
    org.control(
        Method::POST,
        "faults/echo_token",
        json!({"count": 1, "path_contains": "/composite", "method": "POST"}),
    );
    let r = org.composite(create);
    assert_eq!(error_code(&r.json().unwrap()), "UNKNOWN_EXCEPTION");
    assert_eq!(count(), 1, "only the unfaulted call wrote");
}

#[test]
fn subrequests_run_as_the_calling_user() {
    let org = Org::demo();
    let limited = org.token_for("limited@sfsim.example");
    let call = |token: &str| -> Vec<Value> {
        let r = org
            .http
            .post(org.url(&format!("{V}/composite")))
            .bearer_auth(token)
            .json(&json!({"compositeRequest": [
                get("emails", &query_url("query", "SELECT Id, Email FROM Contact LIMIT 1")),
                get("names", &query_url("query", "SELECT Id, LastName FROM Contact LIMIT 1")),
            ]}))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().unwrap()["compositeResponse"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert_eq!(statuses(&call(&org.token)), [200, 200]);
    let as_limited = call(&limited);
    assert_eq!(statuses(&as_limited), [400, 200]);
    assert_eq!(error_code(&as_limited[0]["body"]), "INVALID_FIELD");
    let r = org
        .http
        .post(org.url(&format!("{V}/composite")))
        .bearer_auth("not-a-token")
        .json(&json!({"compositeRequest": []}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
