//! The simulator over HTTP, as clients see it: status codes, bodies, headers.

use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sfsim::server::{spawn, Options, Running};

const V: &str = "/services/data/v62.0";

struct Org {
    server: Running,
    http: Client,
    token: String,
}

fn password_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", "sfsim-client-id"),
        ("client_secret", "sfsim-client-secret"),
        ("username", "admin@sfsim.example"),
        ("password", "sfsim-passwordSFSIMTOKEN"),
    ]
}

impl Org {
    fn start(options: Options) -> Org {
        let server = spawn(options).expect("sfsim starts");
        let http = Client::new();
        let token = Org::login(&http, &server.base_url, &password_form())["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        Org {
            server,
            http,
            token,
        }
    }

    fn demo() -> Org {
        Org::start(Options::demo())
    }

    fn login(http: &Client, base: &str, form: &[(&str, &str)]) -> Value {
        http.post(format!("{base}/services/oauth2/token"))
            .form(form)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url)
    }

    fn get(&self, path: &str) -> Response {
        self.get_as(&self.token, path)
    }

    fn get_as(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Response {
        self.send_as(&self.token, method, path, body)
    }

    fn send_as(&self, token: &str, method: reqwest::Method, path: &str, body: Value) -> Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap()
    }

    /// A password-grant access token for one of the org's logins.
    fn token_for(&self, username: &str) -> String {
        let mut form: Vec<(&str, &str)> = password_form();
        form[3] = ("username", username);
        Org::login(&self.http, &self.server.base_url, &form)["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{username} logs in"))
            .to_string()
    }

    fn query_as(&self, token: &str, soql: &str) -> Response {
        self.http
            .get(self.url(&format!("{V}/query")))
            .query(&[("q", soql)])
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    fn query(&self, soql: &str) -> Value {
        let r = self
            .http
            .get(self.url(&format!("{V}/query")))
            .query(&[("q", soql)])
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{soql}");
        r.json().unwrap()
    }

    fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, self.url(&format!("/__sim/{path}")))
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        r.json().unwrap_or(Value::Null)
    }

    fn requests(&self) -> Vec<Value> {
        self.control(reqwest::Method::GET, "requests", Value::Null)["requests"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn error_code(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().unwrap();
    (
        status,
        body[0]["errorCode"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn versions_need_no_token_and_data_needs_one() {
    let org = Org::demo();
    let versions: Value = org
        .http
        .get(org.url("/services/data/"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(versions
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["version"] == "62.0" && v["url"] == "/services/data/v62.0"));
    let r = org
        .http
        .get(org.url(&format!("{V}/limits")))
        .send()
        .unwrap();
    assert_eq!(
        error_code(r),
        (StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID".into())
    );
    let r = org
        .http
        .get(org.url(&format!("{V}/limits")))
        .bearer_auth("00D!forged")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_code(org.get("/services/data/v99.0/limits")),
        (StatusCode::NOT_FOUND, "NOT_FOUND".into())
    );
}

#[test]
fn token_response_has_salesforce_fields() {
    let org = Org::demo();
    let t = Org::login(&org.http, &org.server.base_url, &password_form());
    assert_eq!(t["instance_url"], org.server.base_url.as_str());
    assert_eq!(t["token_type"], "Bearer");
    assert!(t["id"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/id/00D", org.server.base_url)));
    assert!(t["issued_at"].as_str().unwrap().parse::<i64>().is_ok());
    assert!(
        t.get("refresh_token").is_none(),
        "the password grant returns no refresh token"
    );
    assert!(!t["signature"].as_str().unwrap().is_empty());
    let identity: Value = org
        .http
        .get(t["id"].as_str().unwrap())
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(identity["username"], "admin@sfsim.example");
}

#[test]
fn wrong_credentials_give_invalid_grant() {
    let org = Org::demo();
    let mut form = password_form();
    form[4] = ("password", "sfsim-password");
    let r = org
        .http
        .post(org.url("/services/oauth2/token"))
        .form(&form)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!({"error": "invalid_grant", "error_description": "authentication failure"})
    );
}

#[test]
fn every_grant_type_issues_a_working_token() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let org = Org::demo();
    let base = org.server.base_url.clone();
    let refresh = Org::login(
        &org.http,
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "sfsim-client-id"),
            ("refresh_token", sfsim::auth::DEMO_REFRESH_TOKEN),
        ],
    );
    let basic = org
        .http
        .post(org.url("/services/oauth2/token"))
        .basic_auth("sfsim-client-id", Some("sfsim-client-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    let key = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt/private.pem")).unwrap();
    let claims = json!({"iss": "sfsim-client-id", "sub": "admin@sfsim.example", "aud": base, "exp": chrono::Utc::now().timestamp() + 120});
    let jwt = encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    let bearer = Org::login(
        &org.http,
        &base,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &jwt),
        ],
    );
    for t in [refresh, basic, bearer] {
        let token = t["access_token"].as_str().unwrap_or_else(|| panic!("{t}"));
        let r = org
            .http
            .get(org.url(&format!("{V}/limits")))
            .bearer_auth(token)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}

#[test]
fn tokens_expire_and_revoke() {
    let org = Org::demo();
    assert_eq!(org.get(&format!("{V}/limits")).status(), StatusCode::OK);
    org.control(
        reqwest::Method::POST,
        "time/advance",
        json!({"seconds": 7201}),
    );
    assert_eq!(
        error_code(org.get(&format!("{V}/limits"))),
        (StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID".into())
    );
    let fresh = Org::login(&org.http, &org.server.base_url, &password_form())["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = org
        .http
        .post(org.url("/services/oauth2/revoke"))
        .form(&[("token", fresh.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = org
        .http
        .get(org.url(&format!("{V}/limits")))
        .bearer_auth(&fresh)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn usage_is_counted_reported_and_enforced() {
    let org = Org::start(Options {
        daily_limit: 5,
        ..Options::demo()
    });
    for n in 1..=4 {
        let r = org.get(&format!("{V}/sobjects"));
        assert_eq!(
            r.headers()["sforce-limit-info"],
            format!("api-usage={n}/5").as_str()
        );
    }
    let limits: Value = org.get(&format!("{V}/limits")).json().unwrap();
    assert_eq!(
        limits["DailyApiRequests"],
        json!({"Max": 5, "Remaining": 0})
    );
    let r = org.get(&format!("{V}/sobjects"));
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=5/5");
    assert_eq!(
        error_code(r),
        (StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED".into())
    );
    let log = org.requests();
    assert_eq!(log.iter().filter(|e| e["counted"] == true).count(), 5);
    assert_eq!(log.last().unwrap()["counted"], false);
    org.control(
        reqwest::Method::PATCH,
        "settings",
        json!({"daily_limit": 10}),
    );
    assert_eq!(org.get(&format!("{V}/sobjects")).status(), StatusCode::OK);
    let usage = org.control(reqwest::Method::GET, "usage", Value::Null);
    assert_eq!(
        (
            usage["api_requests_used"].as_u64(),
            usage["remaining"].as_u64()
        ),
        (Some(6), Some(4))
    );
}

#[test]
fn describe_reports_field_flags_and_supports_if_modified_since() {
    let org = Org::demo();
    let global: Value = org.get(&format!("{V}/sobjects")).json().unwrap();
    assert_eq!(global["maxBatchSize"], 200);
    let invoice = global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Invoice__c")
        .unwrap()
        .clone();
    assert_eq!(
        (invoice["custom"].as_bool(), invoice["keyPrefix"].as_str()),
        (Some(true), Some("a01"))
    );
    let r = org.get(&format!("{V}/sobjects/Contact/describe"));
    let last_modified = r.headers()["last-modified"].to_str().unwrap().to_string();
    let d: Value = r.json().unwrap();
    let field = |n: &str| {
        d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(field("User_Id__c")["externalId"], true);
    assert_eq!(field("Description")["filterable"], false);
    assert_eq!(field("SystemModstamp")["createable"], false);
    assert_eq!(field("AccountId")["referenceTo"], json!(["Account"]));
    assert_eq!(field("MailingCity")["compoundFieldName"], "MailingAddress");
    let r = org
        .http
        .get(org.url(&format!("{V}/sobjects/Contact/describe")))
        .bearer_auth(&org.token)
        .header("If-Modified-Since", last_modified)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        error_code(org.get(&format!("{V}/sobjects/Nope/describe"))).0,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn sobject_create_read_update_delete() {
    let org = Org::demo();
    let r = org.send(
        reqwest::Method::POST,
        &format!("{V}/sobjects/Contact/"),
        json!({"LastName": "Tester", "Email": "t@example.net", "Birthdate": "1999-12-31"}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().unwrap();
    assert_eq!(
        (created["success"].as_bool(), created["errors"].clone()),
        (Some(true), json!([]))
    );
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("003") && id.len() == 18);
    let rec: Value = org
        .get(&format!(
            "{V}/sobjects/Contact/{id}?fields=LastName,Birthdate,SystemModstamp"
        ))
        .json()
        .unwrap();
    assert_eq!(rec["Birthdate"], "1999-12-31");
    assert!(rec["SystemModstamp"].as_str().unwrap().ends_with("+0000"));
    assert_eq!(
        rec["attributes"]["url"],
        format!("{V}/sobjects/Contact/{id}")
    );
    assert_eq!(
        org.send(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Contact/{id}"),
            json!({"Email": null})
        )
        .status(),
        StatusCode::NO_CONTENT
    );
    let rec: Value = org
        .get(&format!("{V}/sobjects/Contact/{}", &id[..15]))
        .json()
        .unwrap();
    assert_eq!(rec["Email"], Value::Null);
    let r = org.send(
        reqwest::Method::POST,
        &format!("{V}/sobjects/Contact"),
        json!({"FirstName": "NoLast"}),
    );
    let body: Value = r.json().unwrap();
    assert_eq!(
        body,
        json!([{"message": "Required fields are missing: [LastName]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName"]}])
    );
    assert_eq!(
        error_code(org.send(
            reqwest::Method::POST,
            &format!("{V}/sobjects/Contact"),
            json!({"Id": id, "LastName": "x"})
        ))
        .1,
        "INVALID_FIELD"
    );
    assert_eq!(
        org.send(
            reqwest::Method::DELETE,
            &format!("{V}/sobjects/Contact/{id}"),
            Value::Null
        )
        .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        error_code(org.send(
            reqwest::Method::DELETE,
            &format!("{V}/sobjects/Contact/{id}"),
            Value::Null
        )),
        (StatusCode::NOT_FOUND, "ENTITY_IS_DELETED".into())
    );
    assert_eq!(
        org.get(&format!("{V}/sobjects/Contact/{id}")).status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn upsert_by_external_id_answers_201_200_and_300() {
    let org = Org::demo();
    let r = org.send(
        reqwest::Method::PATCH,
        &format!("{V}/sobjects/Contact/User_Id__c/new-user-1"),
        json!({"LastName": "Upserted"}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().unwrap();
    assert_eq!(created["created"], true);
    let r = org.send(
        reqwest::Method::PATCH,
        &format!("{V}/sobjects/Contact/User_Id__c/new-user-1"),
        json!({"Title": "Again"}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let updated: Value = r.json().unwrap();
    assert_eq!(
        (updated["created"].as_bool(), updated["id"].clone()),
        (Some(false), created["id"].clone())
    );
    let r = org.send(
        reqwest::Method::PATCH,
        "/services/data/v45.0/sobjects/Contact/User_Id__c/new-user-1",
        json!({"Title": "Old"}),
    );
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "before v46 an update answers 204"
    );
    let r = org.send(
        reqwest::Method::PATCH,
        &format!("{V}/sobjects/Account/Legacy_Number__c/L-00000"),
        json!({"Rating": "Hot"}),
    );
    assert_eq!(r.status(), StatusCode::MULTIPLE_CHOICES);
    assert_eq!(r.json::<Value>().unwrap().as_array().unwrap().len(), 2);
    let byext: Value = org
        .get(&format!("{V}/sobjects/Contact/User_Id__c/new-user-1"))
        .json()
        .unwrap();
    assert_eq!(byext["Title"], "Old");
}

#[test]
fn collections_report_per_record_results_in_order() {
    let org = Org::demo();
    let records = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("Bulk {i}")}))
            .collect()
    };
    let mut batch = records(3);
    batch[1] = json!({"attributes": {"type": "Contact"}, "FirstName": "Missing last name"});
    let results: Value = org
        .send(
            reqwest::Method::POST,
            &format!("{V}/composite/sobjects"),
            json!({"allOrNone": false, "records": batch}),
        )
        .json()
        .unwrap();
    assert_eq!(results[0]["success"], true);
    assert_eq!(
        results[1],
        json!({"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]})
    );
    assert_eq!(results[2]["success"], true);

    let before = org.query("SELECT COUNT() FROM Contact")["totalSize"]
        .as_u64()
        .unwrap();
    let results: Value = org
        .send(
            reqwest::Method::POST,
            &format!("{V}/composite/sobjects"),
            json!({"allOrNone": true, "records": batch}),
        )
        .json()
        .unwrap();
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(
        org.query("SELECT COUNT() FROM Contact")["totalSize"]
            .as_u64()
            .unwrap(),
        before,
        "allOrNone wrote nothing"
    );

    let made: Value = org
        .send(
            reqwest::Method::POST,
            &format!("{V}/composite/sobjects"),
            json!({"allOrNone": true, "records": records(200)}),
        )
        .json()
        .unwrap();
    let ids: Vec<String> = made
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let log = org.requests();
    assert_eq!(log.last().unwrap()["records"], 200);
    let counted_before = log.iter().filter(|e| e["counted"] == true).count();
    let updates: Vec<Value> = ids[..2]
        .iter()
        .map(|id| json!({"attributes": {"type": "Contact"}, "id": id, "Title": "Updated"}))
        .collect();
    let updated: Value = org
        .send(
            reqwest::Method::PATCH,
            &format!("{V}/composite/sobjects"),
            json!({"records": updates}),
        )
        .json()
        .unwrap();
    assert_eq!(
        updated
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["success"] == true)
            .count(),
        2
    );
    let got: Value = org
        .get(&format!(
            "{V}/composite/sobjects/Contact?ids={},{}&fields=Id,Title",
            ids[0], ids[1]
        ))
        .json()
        .unwrap();
    assert_eq!(
        (got[0]["Title"].as_str(), got[1]["Title"].as_str()),
        (Some("Updated"), Some("Updated"))
    );
    let got: Value = org
        .send(
            reqwest::Method::POST,
            &format!("{V}/composite/sobjects/Contact"),
            json!({"ids": [ids[2]], "fields": ["LastName"]}),
        )
        .json()
        .unwrap();
    assert_eq!(got[0]["LastName"], "Bulk 2");
    let deleted: Value = org
        .send(
            reqwest::Method::DELETE,
            &format!(
                "{V}/composite/sobjects?ids={},{}&allOrNone=true",
                ids[0], ids[1]
            ),
            Value::Null,
        )
        .json()
        .unwrap();
    assert_eq!(deleted.as_array().unwrap().len(), 2);
    let upserts = json!({"records": [{"attributes": {"type": "Contact"}, "User_Id__c": "bulk-u1", "LastName": "U1"}, {"attributes": {"type": "Contact"}, "User_Id__c": "u-0000000", "LastName": "Seeded"}]});
    let upserted: Value = org
        .send(
            reqwest::Method::PATCH,
            &format!("{V}/composite/sobjects/Contact/User_Id__c"),
            upserts,
        )
        .json()
        .unwrap();
    assert_eq!(
        (
            upserted[0]["created"].as_bool(),
            upserted[1]["created"].as_bool()
        ),
        (Some(true), Some(false))
    );
    let counted_after = org
        .requests()
        .iter()
        .filter(|e| e["counted"] == true)
        .count();
    assert_eq!(
        counted_after - counted_before,
        5,
        "each collections call is one API request"
    );
    let r = org.send(
        reqwest::Method::POST,
        &format!("{V}/composite/sobjects"),
        json!({"records": records(201)}),
    );
    assert_eq!(
        error_code(r),
        (StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT".into())
    );
}

#[test]
fn query_pages_through_next_records_url() {
    let org = Org::demo();
    let first: Value = org
        .http
        .get(org.url(&format!("{V}/query/")))
        .query(&[("q", "SELECT Id, Name FROM Contact ORDER BY Id")])
        .header("Sforce-Query-Options", "batchSize=150")
        .bearer_auth(&org.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (first["totalSize"].as_u64(), first["done"].as_bool()),
        (Some(400), Some(false))
    );
    assert_eq!(
        first["records"].as_array().unwrap().len(),
        200,
        "batchSize below 200 is raised to 200"
    );
    let next = first["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(next.starts_with(&format!("{V}/query/01g")) && next.ends_with("-200"));
    let second: Value = org.get(&next).json().unwrap();
    assert_eq!(
        (second["done"].as_bool(), second.get("nextRecordsUrl")),
        (Some(true), None)
    );
    assert_eq!(second["records"].as_array().unwrap().len(), 200);
    assert_ne!(first["records"][0]["Id"], second["records"][0]["Id"]);
    let log = org.requests();
    assert_eq!(
        log[log.len() - 1]["soql"],
        "SELECT Id, Name FROM Contact ORDER BY Id",
        "a page logs its cursor's SOQL"
    );
    let (status, code) = error_code(org.get(&format!("{V}/query/01g5g0000000zzzAAA-2000")));
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR")
    );
    let one_long = org.query("SELECT Id, Description FROM Contact");
    assert_eq!(one_long["records"].as_array().unwrap().len(), 400);
    let two_long = org.query("SELECT Id, Description, Bio__c FROM Contact");
    assert_eq!(
        two_long["records"].as_array().unwrap().len(),
        200,
        "two long text areas cap a page at 200"
    );
}

#[test]
fn query_all_sees_deleted_records() {
    let org = Org::demo();
    let id = org.query("SELECT Id FROM Lead LIMIT 1")["records"][0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    org.control(
        reqwest::Method::DELETE,
        &format!("records/Lead/{id}"),
        Value::Null,
    );
    let soql = format!("SELECT Id, IsDeleted FROM Lead WHERE Id = '{id}'");
    assert_eq!(org.query(&soql)["totalSize"], 0);
    let all: Value = org
        .http
        .get(org.url(&format!("{V}/queryAll")))
        .query(&[("q", soql.as_str())])
        .bearer_auth(&org.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(all["records"][0]["IsDeleted"], true);
    org.control(
        reqwest::Method::POST,
        &format!("records/Lead/{id}/undelete"),
        Value::Null,
    );
    assert_eq!(org.query(&soql)["totalSize"], 1);
    org.control(
        reqwest::Method::DELETE,
        &format!("records/Lead/{id}?hard=true"),
        Value::Null,
    );
    let all: Value = org
        .http
        .get(org.url(&format!("{V}/queryAll")))
        .query(&[("q", soql.as_str())])
        .bearer_auth(&org.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        all["totalSize"], 0,
        "a hard delete leaves nothing for queryAll"
    );
}

#[test]
fn over_long_uris_and_headers_are_refused() {
    let org = Org::demo();
    let soql = format!(
        "SELECT Id FROM Contact WHERE LastName IN ({})",
        vec!["'abcdefgh'"; 2000].join(",")
    );
    let r = org
        .http
        .get(org.url(&format!("{V}/query")))
        .query(&[("q", soql)])
        .bearer_auth(&org.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::URI_TOO_LONG);
    let r = org
        .http
        .get(org.url(&format!("{V}/limits")))
        .bearer_auth(&org.token)
        .header("X-Padding", "p".repeat(16_400))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[test]
fn soql_errors_keep_salesforce_shape() {
    let org = Org::demo();
    let r = org
        .http
        .get(org.url(&format!("{V}/query")))
        .query(&[("q", "SELECT Id FROM Contact WHERE Nope = 1")])
        .bearer_auth(&org.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().unwrap();
    assert_eq!(body[0]["errorCode"], "INVALID_FIELD");
    assert!(body[0]["message"]
        .as_str()
        .unwrap()
        .contains("ERROR at Row:1:Column:30"));
    assert!(body[0].get("fields").is_none());
}

#[test]
fn base64_fields_are_read_through_their_url() {
    let org = Org::demo();
    let doc = &org.query("SELECT Id, Body FROM Document LIMIT 1")["records"][0];
    let url = doc["Body"].as_str().unwrap();
    assert!(url.ends_with("/Body"));
    let content = org.get(url).text().unwrap();
    assert!(content.starts_with("Price list 1"));
}

#[test]
fn request_log_records_decoded_soql_and_clears() {
    let org = Org::demo();
    org.query("SELECT Id FROM Account WHERE Name = 'Acme Corp'");
    let log = org.requests();
    let last = log.last().unwrap();
    assert_eq!(
        last["soql"],
        "SELECT Id FROM Account WHERE Name = 'Acme Corp'"
    );
    assert_eq!(
        (
            last["status"].as_u64(),
            last["counted"].as_bool(),
            last["method"].as_str()
        ),
        (Some(200), Some(true), Some("GET"))
    );
    let r = org.http.delete(org.url("/__sim/requests")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(org.requests().is_empty());
}

#[test]
fn control_edits_bump_system_modstamp_and_reset_restores() {
    let org = Org::demo();
    let rec = org.query("SELECT Id, SystemModstamp FROM Account ORDER BY Id LIMIT 1")["records"][0]
        .clone();
    let id = rec["Id"].as_str().unwrap();
    org.control(
        reqwest::Method::PATCH,
        &format!("records/Account/{id}"),
        json!({"Name": "Renamed"}),
    );
    let after = org.query(&format!(
        "SELECT Name, SystemModstamp FROM Account WHERE Id = '{id}'"
    ))["records"][0]
        .clone();
    assert_eq!(after["Name"], "Renamed");
    assert!(after["SystemModstamp"].as_str().unwrap() > rec["SystemModstamp"].as_str().unwrap());
    org.control(reqwest::Method::POST, "reset", Value::Null);
    let restored =
        org.query(&format!("SELECT Name FROM Account WHERE Id = '{id}'"))["records"][0].clone();
    assert_ne!(restored["Name"], "Renamed");
}

#[test]
fn fields_added_at_run_time_appear_in_describe_and_queries() {
    let org = Org::demo();
    let added = org.control(
        reqwest::Method::POST,
        "objects/Lead/fields",
        json!([{"name": "Score__c", "type": "double", "precision": 5, "scale": 1}]),
    );
    assert!(added["fields"].as_u64().unwrap() > 10);
    let d: Value = org
        .get(&format!("{V}/sobjects/Lead/describe"))
        .json()
        .unwrap();
    assert!(d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "Score__c" && f["custom"] == true));
    let rows = org.query("SELECT Id, Score__c FROM Lead LIMIT 1");
    assert_eq!(rows["records"][0]["Score__c"], Value::Null);
    let r = org
        .http
        .post(org.url("/__sim/objects/Lead/fields"))
        .json(&json!([{"name": "score__c", "type": "string"}]))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

#[test]
fn get_updated_and_get_deleted_cover_their_windows() {
    let org = Org::demo();
    let now: chrono::DateTime<chrono::Utc> = chrono::Utc::now();
    let start = now - chrono::Duration::hours(1);
    let made = org.control(
        reqwest::Method::POST,
        "records/Lead",
        json!({"LastName": "Fresh", "Company": "Co"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The current minute is not covered until it is over.
    org.control(
        reqwest::Method::POST,
        "time/advance",
        json!({"seconds": 120}),
    );
    let updated: Value = org
        .http
        .get(org.url(&format!("{V}/sobjects/Lead/updated/")))
        .query(&[
            ("start", iso(start)),
            ("end", iso(now + chrono::Duration::hours(1))),
        ])
        .bearer_auth(&org.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        updated["ids"],
        json!([made]),
        "only the record changed in the window"
    );
    assert!(
        updated["latestDateCovered"]
            .as_str()
            .unwrap()
            .ends_with(":00.000+0000"),
        "whole minutes"
    );
    org.control(
        reqwest::Method::DELETE,
        &format!("records/Lead/{made}?hard=true"),
        Value::Null,
    );
    org.control(
        reqwest::Method::POST,
        "time/advance",
        json!({"seconds": 120}),
    );
    let get_deleted = |start: chrono::DateTime<chrono::Utc>, token: &str| -> Value {
        org.http
            .get(org.url(&format!("{V}/sobjects/Lead/deleted/")))
            .query(&[
                ("start", iso(start)),
                ("end", iso(chrono::Utc::now() + chrono::Duration::days(30))),
            ])
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let deleted = get_deleted(start, &org.token);
    assert_eq!(deleted["deletedRecords"][0]["id"], made.as_str());
    assert!(deleted["earliestDateAvailable"].as_str().unwrap() < iso(start).as_str());
    org.control(
        reqwest::Method::POST,
        "time/advance",
        json!({"seconds": 16 * 86_400}),
    );
    let token = Org::login(&org.http, &org.server.base_url, &password_form())["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let later = get_deleted(start, &token);
    assert_eq!(
        later["deletedRecords"],
        json!([]),
        "deletions older than 15 days are gone"
    );
    assert!(
        later["earliestDateAvailable"].as_str().unwrap() > iso(start).as_str(),
        "so the window no longer covers the start"
    );
    let r = org
        .http
        .get(org.url(&format!("{V}/sobjects/Lead/updated/")))
        .query(&[
            ("start", iso(now - chrono::Duration::days(20))),
            ("end", iso(now)),
        ])
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(
        error_code(r),
        (StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE".into()),
        "getUpdated reaches back 30 days at most"
    );
}

#[test]
fn faults_refuse_lock_and_cut_off_requests_as_configured() {
    let org = Org::demo();
    org.control(
        reqwest::Method::PATCH,
        "faults",
        json!({"server_unavailable": 1.0}),
    );
    assert_eq!(
        error_code(org.get(&format!("{V}/limits"))),
        (StatusCode::SERVICE_UNAVAILABLE, "SERVER_UNAVAILABLE".into())
    );
    org.control(
        reqwest::Method::PATCH,
        "faults",
        json!({"unable_to_lock_row": 1.0}),
    );
    assert_eq!(
        org.get(&format!("{V}/limits")).status(),
        StatusCode::OK,
        "reads are never locked out"
    );
    let r = org.send(
        reqwest::Method::POST,
        &format!("{V}/sobjects/Lead"),
        json!({"LastName": "L", "Company": "C"}),
    );
    assert_eq!(
        error_code(r),
        (StatusCode::BAD_REQUEST, "UNABLE_TO_LOCK_ROW".into())
    );
    org.control(
        reqwest::Method::PATCH,
        "faults",
        json!({"drop_connection": 1.0}),
    );
    let cut = org
        .http
        .get(org.url(&format!("{V}/query")))
        .query(&[("q", "SELECT Id FROM Contact")])
        .bearer_auth(&org.token)
        .send()
        .and_then(|r| r.bytes());
    assert!(cut.is_err(), "the answer is cut off");
    let status = org.control(reqwest::Method::PATCH, "faults", json!({}));
    assert_eq!(status["rates"]["drop_connection"], 0.0);
    assert_eq!(org.get(&format!("{V}/limits")).status(), StatusCode::OK);
    let late = org.control(reqwest::Method::POST, "faults/late_commit", json!({"object": "Lead", "age_seconds": 600, "fields": {"LastName": "Late", "Company": "C"}}));
    let row = org.query(&format!(
        "SELECT SystemModstamp FROM Lead WHERE Id = '{}'",
        late["id"].as_str().unwrap()
    ));
    assert_eq!(row["records"][0]["SystemModstamp"], late["systemModstamp"]);
    let newest = org.query("SELECT SystemModstamp FROM Lead ORDER BY SystemModstamp DESC LIMIT 1");
    assert!(newest["records"][0]["SystemModstamp"].as_str() >= late["systemModstamp"].as_str());
}

#[test]
fn tls_serves_https_with_the_printed_certificate() {
    let dir = std::env::temp_dir().join(format!("sfsim-tls-test-{}", std::process::id()));
    let server = spawn(Options {
        tls_dir: Some(dir),
        ..Options::demo()
    })
    .unwrap();
    assert!(server.base_url.starts_with("https://127.0.0.1:"));
    let pem = std::fs::read(server.cert_path.as_ref().unwrap()).unwrap();
    let http = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let token = Org::login(&http, &server.base_url, &password_form());
    assert!(token["access_token"].is_string());
}

const LIMITED: &str = "limited@sfsim.example";

fn field_names(describe: &Value) -> Vec<String> {
    describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_limited_user_logs_in_with_password_and_jwt_in_both_seeds() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    for seed in ["demo", "empty"] {
        let org = Org::start(Options {
            seed: seed.into(),
            ..Options::demo()
        });
        let mut form: Vec<(&str, &str)> = password_form();
        form[3] = ("username", LIMITED);
        let by_password = Org::login(&org.http, &org.server.base_url, &form);
        let key = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt/private.pem")).unwrap();
        let claims = json!({"iss": "sfsim-client-id", "sub": LIMITED, "aud": "https://login.salesforce.com", "exp": chrono::Utc::now().timestamp() + 60});
        let jwt = encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
        let by_jwt = Org::login(
            &org.http,
            &org.server.base_url,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &jwt),
            ],
        );
        let admin = Org::login(&org.http, &org.server.base_url, &password_form());
        for t in [&by_password, &by_jwt] {
            assert_eq!(t["id"], by_password["id"], "{seed}: the same user");
            assert_ne!(t["id"], admin["id"], "{seed}: not the admin");
            let token = t["access_token"].as_str().unwrap();
            let identity: Value = org
                .http
                .get(t["id"].as_str().unwrap())
                .bearer_auth(token)
                .send()
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(identity["username"], LIMITED, "{seed}");
            let describe: Value = org
                .get_as(token, &format!("{V}/sobjects/Contact/describe"))
                .json()
                .unwrap();
            assert!(
                !field_names(&describe).contains(&"Email".to_string()),
                "{seed}: the token carries the limited profile"
            );
        }
        form[4] = ("password", "sfsim-password");
        assert_eq!(
            Org::login(&org.http, &org.server.base_url, &form)["error"],
            "invalid_grant",
            "{seed}: the security token is needed"
        );
    }
}

#[test]
fn hidden_fields_are_absent_from_describe_and_unknown_to_soql() {
    let org = Org::demo();
    let limited = org.token_for(LIMITED);
    let global =
        |token: &str| -> Value { org.get_as(token, &format!("{V}/sobjects")).json().unwrap() };
    assert_eq!(
        global(&limited),
        global(&org.token),
        "describe global is the same"
    );
    let describe = |token: &str, object: &str| -> Value {
        org.get_as(token, &format!("{V}/sobjects/{object}/describe"))
            .json()
            .unwrap()
    };
    let contact = field_names(&describe(&limited, "Contact"));
    assert!(contact.contains(&"LastName".to_string()));
    assert!(!contact.contains(&"Email".to_string()) && !contact.contains(&"Birthdate".to_string()));
    assert!(!field_names(&describe(&limited, "Account")).contains(&"AnnualRevenue".to_string()));
    let admin_contact = field_names(&describe(&org.token, "Contact"));
    assert!(
        admin_contact.contains(&"Email".to_string())
            && admin_contact.contains(&"Birthdate".to_string())
    );
    assert_eq!(admin_contact.len(), contact.len() + 2);

    for (soql, column, entity) in [
        ("SELECT Id, Email FROM Contact", 12, "Contact"),
        (
            "SELECT Id FROM Contact WHERE Birthdate > 1990-01-01",
            30,
            "Contact",
        ),
        ("SELECT Id FROM Contact ORDER BY Birthdate", 33, "Contact"),
        (
            "SELECT Id, Account.AnnualRevenue FROM Contact",
            12,
            "Account",
        ),
        (
            "SELECT Id FROM Account ORDER BY Name, AnnualRevenue DESC",
            39,
            "Account",
        ),
    ] {
        let r = org.query_as(&limited, soql);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{soql}");
        let body: Value = r.json().unwrap();
        assert_eq!(body[0]["errorCode"], "INVALID_FIELD", "{soql}");
        let message = body[0]["message"].as_str().unwrap();
        let hidden = soql
            .split([' ', ',', '.'])
            .find(|w| ["Email", "Birthdate", "AnnualRevenue"].contains(w))
            .unwrap();
        assert!(
            message.contains(&format!(
                "ERROR at Row:1:Column:{column}\nNo such column '{hidden}' on entity '{entity}'."
            )),
            "{soql}: {message}"
        );
        assert_eq!(
            org.query_as(&org.token, soql).status(),
            StatusCode::OK,
            "the admin sees it: {soql}"
        );
    }
    let all: Value = org
        .query_as(&limited, "SELECT FIELDS(ALL) FROM Contact LIMIT 5")
        .json()
        .unwrap();
    let first = all["records"][0].as_object().unwrap();
    assert!(
        first.contains_key("LastName")
            && !first.contains_key("Email")
            && !first.contains_key("Birthdate")
    );
}

#[test]
fn describe_if_modified_since_works_for_each_user() {
    let org = Org::demo();
    let limited = org.token_for(LIMITED);
    let describe = |token: &str, since: Option<&str>| {
        let mut r = org
            .http
            .get(org.url(&format!("{V}/sobjects/Contact/describe")))
            .bearer_auth(token);
        if let Some(since) = since {
            r = r.header("If-Modified-Since", since);
        }
        r.send().unwrap()
    };
    let first = describe(&limited, None);
    assert_eq!(first.status(), StatusCode::OK);
    let last_modified = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        describe(&limited, Some(&last_modified)).status(),
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(
        describe(&org.token, Some(&last_modified)).status(),
        StatusCode::NOT_MODIFIED
    );
    org.control(reqwest::Method::POST, "time/advance", json!({"seconds": 5}));
    org.control(
        reqwest::Method::POST,
        "objects/Contact/fields",
        json!([{"name": "Nickname__c", "type": "string", "length": 40}]),
    );
    for token in [&limited, &org.token] {
        let changed = describe(token, Some(&last_modified));
        assert_eq!(
            changed.status(),
            StatusCode::OK,
            "a new field changes every user's describe"
        );
        let names = field_names(&changed.json().unwrap());
        assert!(names.contains(&"Nickname__c".to_string()));
        assert_eq!(names.contains(&"Email".to_string()), *token == org.token);
    }
}

#[test]
fn hidden_fields_are_never_returned_nor_written() {
    let org = Org::demo();
    let limited = org.token_for(LIMITED);
    let seeded = org.query(
        "SELECT Id, Email, Birthdate FROM Contact WHERE Birthdate != null ORDER BY Id LIMIT 1",
    )["records"][0]
        .clone();
    let id = seeded["Id"].as_str().unwrap().to_string();
    let rec: Value = org
        .get_as(&limited, &format!("{V}/sobjects/Contact/{id}"))
        .json()
        .unwrap();
    assert!(
        rec.get("LastName").is_some()
            && rec.get("Email").is_none()
            && rec.get("Birthdate").is_none(),
        "{rec}"
    );
    let admin_rec: Value = org
        .get(&format!("{V}/sobjects/Contact/{id}"))
        .json()
        .unwrap();
    assert_eq!(admin_rec["Email"], seeded["Email"]);
    assert_eq!(
        error_code(org.get_as(
            &limited,
            &format!("{V}/sobjects/Contact/{id}?fields=LastName,Email")
        )),
        (StatusCode::BAD_REQUEST, "INVALID_FIELD".into())
    );
    assert_eq!(
        error_code(org.get_as(
            &limited,
            &format!("{V}/composite/sobjects/Contact?ids={id}&fields=Id,Birthdate")
        )),
        (StatusCode::BAD_REQUEST, "INVALID_FIELD".into())
    );

    let r = org.send_as(
        &limited,
        reqwest::Method::POST,
        &format!("{V}/sobjects/Contact"),
        json!({"LastName": "Limited", "Email": "l@example.net"}),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!([{"message": "No such column 'Email' on sobject of type Contact", "errorCode": "INVALID_FIELD", "fields": []}])
    );
    let r = org.send_as(
        &limited,
        reqwest::Method::PATCH,
        &format!("{V}/sobjects/Contact/{id}"),
        json!({"Title": "Changed", "Birthdate": "2000-01-01"}),
    );
    assert_eq!(
        error_code(r),
        (StatusCode::BAD_REQUEST, "INVALID_FIELD".into())
    );
    let r = org.send_as(
        &limited,
        reqwest::Method::PATCH,
        &format!(
            "{V}/sobjects/Account/{}",
            admin_rec["AccountId"].as_str().unwrap()
        ),
        json!({"AnnualRevenue": 1}),
    );
    assert_eq!(
        error_code(r),
        (StatusCode::BAD_REQUEST, "INVALID_FIELD".into())
    );
    let after = org.query(&format!(
        "SELECT Title, Birthdate FROM Contact WHERE Id = '{id}'"
    ))["records"][0]
        .clone();
    assert_eq!(
        (after["Birthdate"].clone(), after["Title"].clone()),
        (seeded["Birthdate"].clone(), admin_rec["Title"].clone()),
        "nothing written"
    );
    let results: Value = org
        .send_as(&limited, reqwest::Method::POST, &format!("{V}/composite/sobjects"), json!({"records": [{"attributes": {"type": "Contact"}, "LastName": "A", "Birthdate": "2000-01-01"}, {"attributes": {"type": "Contact"}, "LastName": "B"}]}))
        .json()
        .unwrap();
    assert_eq!(results[0]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(results[1]["success"], true, "visible fields are written");

    let made = org.send_as(
        &limited,
        reqwest::Method::POST,
        &format!("{V}/sobjects/Contact"),
        json!({"LastName": "Visible only"}),
    );
    assert_eq!(made.status(), StatusCode::CREATED);
    let made_id = made.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let made_rec: Value = org
        .get_as(&limited, &format!("{V}/sobjects/Contact/{made_id}"))
        .json()
        .unwrap();
    let user_id = org.query(&format!("SELECT Id FROM User WHERE Username = '{LIMITED}'"))
        ["records"][0]["Id"]
        .clone();
    assert_eq!(
        made_rec["CreatedById"], user_id,
        "written as the limited user"
    );
}

#[test]
fn echo_token_fault_quotes_the_callers_token_and_writes_nothing() {
    let org = Org::demo();
    let armed = org.control(
        reqwest::Method::POST,
        "faults/echo_token",
        json!({"count": 2, "path_contains": "/sobjects/Lead", "method": "post"}),
    );
    assert_eq!(
        armed["echo_token"],
        json!({"remaining": 2, "path_contains": "/sobjects/Lead", "method": "post"})
    );
    let leads = || {
        org.query("SELECT COUNT() FROM Lead")["totalSize"]
            .as_u64()
            .unwrap()
    };
    let before = leads();
    assert_eq!(
        org.get(&format!("{V}/sobjects/Lead/describe")).status(),
        StatusCode::OK,
        "GET does not match"
    );
    assert_eq!(
        org.send(
            reqwest::Method::POST,
            &format!("{V}/sobjects/Account"),
            json!({"Name": "Not matched"})
        )
        .status(),
        StatusCode::CREATED
    );
    let lead = json!({"LastName": "Echo", "Company": "Co"});
    let r = org.send(
        reqwest::Method::POST,
        &format!("{V}/sobjects/Lead"),
        lead.clone(),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!([{"message": format!("An unexpected error occurred. Please include this ErrorId if you contact support: {}", org.token), "errorCode": "UNKNOWN_EXCEPTION"}])
    );
    assert_eq!(leads(), before, "nothing was written");
    let entry = org
        .requests()
        .into_iter()
        .rev()
        .find(|e| e["method"] == "POST")
        .unwrap();
    assert_eq!(
        (
            entry["path"].as_str(),
            entry["status"].as_u64(),
            entry["counted"].as_bool(),
            entry["body"].clone()
        ),
        (
            Some(&*format!("{V}/sobjects/Lead")),
            Some(400),
            Some(true),
            lead.clone()
        )
    );
    let status = org.control(reqwest::Method::PATCH, "faults", json!({}));
    assert_eq!(
        status["echo_token"]["remaining"], 1,
        "new rates keep it armed"
    );
    let limited = org.token_for(LIMITED);
    let r = org.send_as(
        &limited,
        reqwest::Method::POST,
        &format!("{V}/sobjects/Lead"),
        lead.clone(),
    );
    assert!(
        r.text().unwrap().contains(&limited),
        "each caller sees its own token"
    );
    assert_eq!(
        org.control(reqwest::Method::GET, "faults", Value::Null)["echo_token"],
        Value::Null
    );
    assert_eq!(
        org.send(
            reqwest::Method::POST,
            &format!("{V}/sobjects/Lead"),
            lead.clone()
        )
        .status(),
        StatusCode::CREATED
    );

    org.control(
        reqwest::Method::POST,
        "faults/echo_token",
        json!({"count": 5}),
    );
    assert_eq!(
        error_code(org.get(&format!("{V}/limits"))).1,
        "UNKNOWN_EXCEPTION",
        "no filter matches everything"
    );
    org.control(reqwest::Method::POST, "reset", Value::Null);
    assert_eq!(
        org.control(reqwest::Method::GET, "faults", Value::Null)["echo_token"],
        Value::Null
    );
    assert_eq!(org.get(&format!("{V}/limits")).status(), StatusCode::OK);
}

#[test]
fn bad_value_fault_plants_raw_values_in_pages_and_retrieves() {
    let org = Org::demo();
    let soql = "SELECT Id, Birthdate FROM Contact ORDER BY Id";
    let real = org.query(soql)["records"].clone();
    let planted = json!({"not": "a date"});
    let armed = org.control(
        reqwest::Method::POST,
        "faults/bad_value",
        json!({"object": "contact", "field": "birthdate", "value": planted, "count": 4}),
    );
    assert_eq!(
        armed["bad_value"],
        json!({"object": "Contact", "field": "Birthdate", "value": planted, "remaining": 4})
    );
    let remaining = || {
        org.control(reqwest::Method::GET, "faults", Value::Null)["bad_value"]["remaining"].clone()
    };
    org.query("SELECT Id, LastName FROM Contact LIMIT 3");
    org.query("SELECT Id, Birthdate FROM Contact LIMIT 0");
    assert_eq!(
        remaining(),
        4,
        "answers without the field leave the count alone"
    );

    let all_planted = |page: &Value| {
        let records = page["records"].as_array().unwrap();
        !records.is_empty() && records.iter().all(|r| r["Birthdate"] == planted)
    };
    let first: Value = org
        .http
        .get(org.url(&format!("{V}/query")))
        .query(&[("q", soql)])
        .header("Sforce-Query-Options", "batchSize=200")
        .bearer_auth(&org.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(all_planted(&first), "first page");
    assert_eq!(first["records"][0]["Id"], real[0]["Id"]);
    let second: Value = org
        .get(first["nextRecordsUrl"].as_str().unwrap())
        .json()
        .unwrap();
    assert!(all_planted(&second), "nextRecordsUrl page");
    let deleted: Value = org
        .http
        .get(org.url(&format!("{V}/queryAll")))
        .query(&[("q", "SELECT Id, Birthdate FROM Contact LIMIT 2")])
        .bearer_auth(&org.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(all_planted(&deleted), "queryAll page");
    let ids = format!(
        "{},{}",
        real[0]["Id"].as_str().unwrap(),
        real[1]["Id"].as_str().unwrap()
    );
    let got: Value = org
        .get(&format!(
            "{V}/composite/sobjects/Contact?ids={ids}&fields=Id,Birthdate"
        ))
        .json()
        .unwrap();
    assert_eq!(
        (got[0]["Birthdate"].clone(), got[1]["Birthdate"].clone()),
        (planted.clone(), planted.clone())
    );
    assert_eq!(
        org.control(reqwest::Method::GET, "faults", Value::Null)["bad_value"],
        Value::Null,
        "used up"
    );
    assert_eq!(
        org.query(soql)["records"],
        real,
        "the stored records never changed"
    );

    org.control(
        reqwest::Method::POST,
        "faults/bad_value",
        json!({"object": "Contact", "field": "Birthdate", "value": null, "count": 1}),
    );
    org.control(reqwest::Method::POST, "reset", Value::Null);
    assert_eq!(
        org.control(reqwest::Method::GET, "faults", Value::Null)["bad_value"],
        Value::Null,
        "reset disarms it"
    );
    assert_eq!(org.query(soql)["records"], real);
    for (body, status) in [
        (
            json!({"object": "Nope", "field": "Birthdate", "value": 1, "count": 1}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"object": "Contact", "field": "Nope", "value": 1, "count": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"object": "Contact", "field": "Birthdate", "count": 1}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = org
            .http
            .post(org.url("/__sim/faults/bad_value"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
    }
}

#[test]
fn describe_reports_groupable_aggregatable_and_child_relationships() {
    let org = Org::demo();
    let d: Value = org
        .get(&format!("{V}/sobjects/Account/describe"))
        .json()
        .unwrap();
    let field = |n: &str| {
        let f = d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .unwrap();
        (f["groupable"].as_bool(), f["aggregatable"].as_bool())
    };
    assert_eq!(field("Name"), (Some(true), Some(true)));
    assert_eq!(field("NumberOfEmployees"), (Some(true), Some(true)));
    assert_eq!(field("AnnualRevenue"), (Some(false), Some(true)));
    assert_eq!(field("Description"), (Some(false), Some(false)));
    assert_eq!(field("BillingAddress"), (Some(false), Some(false)));
    assert_eq!(field("CreatedDate"), (Some(false), Some(true)));
    let children = d["childRelationships"].as_array().unwrap();
    let child = |object: &str, f: &str| {
        children
            .iter()
            .find(|c| c["childSObject"] == object && c["field"] == f)
            .unwrap_or_else(|| panic!("{object}.{f}"))
            .clone()
    };
    assert_eq!(
        child("Contact", "AccountId"),
        json!({"cascadeDelete": false, "childSObject": "Contact", "deprecatedAndHidden": false,
               "field": "AccountId", "junctionIdListNames": [], "junctionReferenceTo": [],
               "relationshipName": "Contacts", "restrictedDelete": false})
    );
    assert_eq!(
        child("Invoice__c", "Account__c")["relationshipName"],
        "Invoices__r"
    );
    assert_eq!(child("Task", "WhatId")["relationshipName"], "Tasks");
}

#[test]
fn aggregate_queries_answer_aggregate_results_in_one_batch() {
    let org = Org::demo();
    let body = org.query(
        "SELECT LeadSource, COUNT(Id) n, MAX(AnnualRevenue) FROM Lead GROUP BY LeadSource ORDER BY COUNT(Id) DESC",
    );
    let records = body["records"].as_array().unwrap();
    assert!(!records.is_empty());
    assert_eq!(body["totalSize"], records.len());
    assert_eq!(
        (body["done"].as_bool(), body.get("nextRecordsUrl")),
        (Some(true), None)
    );
    assert_eq!(records[0]["attributes"], json!({"type": "AggregateResult"}));
    let keys: Vec<&String> = records[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["attributes", "LeadSource", "n", "expr0"]);
    let total: u64 = records.iter().map(|r| r["n"].as_u64().unwrap()).sum();
    assert_eq!(total, 300);
    let one = org.query("SELECT COUNT(Id), SUM(Amount) FROM Opportunity WHERE Name = 'none'");
    assert_eq!(
        one["records"],
        json!([{"attributes": {"type": "AggregateResult"}, "expr0": 0, "expr1": null}])
    );
}

#[test]
fn aggregate_queries_over_two_thousand_rows_are_refused() {
    let org = Org::start(Options {
        records: vec![("Lead".into(), 2001)],
        ..Options::demo()
    });
    let r = org.query_as(&org.token, "SELECT Id FROM Lead GROUP BY Id");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().unwrap();
    assert_eq!(
        body,
        json!([{"message": "Aggregate query does not support queryMore(), use LIMIT to restrict the results to a single batch", "errorCode": "EXCEEDED_ID_LIMIT"}])
    );
    let limited = org.query("SELECT Id FROM Lead GROUP BY Id LIMIT 2000");
    assert_eq!(limited["records"].as_array().unwrap().len(), 2000);
    assert_eq!(limited["done"], true);
    let counted = org.query("SELECT COUNT() FROM Lead GROUP BY Id");
    assert_eq!(counted["totalSize"], 2001, "COUNT() counts the groups");
}

#[test]
fn subqueries_nest_children_filtered_ordered_and_limited() {
    let org = Org::demo();
    let create = |object: &str, body: Value| -> String {
        let r = org.send(
            reqwest::Method::POST,
            &format!("{V}/sobjects/{object}"),
            body,
        );
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let parent = create("Account", json!({"Name": "Subquery Parent"}));
    create("Account", json!({"Name": "Subquery Lonely"}));
    let mut kids = Vec::new();
    for last in ["C1", "c2", "C3"] {
        kids.push(create(
            "Contact",
            json!({"LastName": last, "AccountId": parent}),
        ));
    }
    let soql = "SELECT Name, (SELECT LastName, Account.Name FROM Contacts WHERE LastName != 'C3' ORDER BY LastName DESC LIMIT 5) FROM Account WHERE Name LIKE 'Subquery%' ORDER BY Name";
    let body = org.query(soql);
    let records = body["records"].as_array().unwrap();
    assert_eq!(records[0]["Name"], "Subquery Lonely");
    assert_eq!(records[0]["Contacts"], Value::Null, "no children is null");
    let contacts = &records[1]["Contacts"];
    assert_eq!(
        (contacts["totalSize"].as_u64(), contacts["done"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(
        contacts["records"][0],
        json!({"attributes": {"type": "Contact", "url": format!("{V}/sobjects/Contact/{}", kids[1])},
               "LastName": "c2",
               "Account": {"attributes": {"type": "Account", "url": format!("{V}/sobjects/Account/{parent}")}, "Name": "Subquery Parent"}})
    );
    assert_eq!(contacts["records"][1]["LastName"], "C1");
    let limited = org.query(
        "SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName LIMIT 1) FROM Account WHERE Id = '{parent}'"
            .replace("{parent}", &parent)
            .as_str(),
    );
    assert_eq!(limited["records"][0]["Contacts"]["totalSize"], 1);
    assert_eq!(
        limited["records"][0]["Contacts"]["records"][0]["LastName"],
        "C1"
    );

    let r = org.send(
        reqwest::Method::DELETE,
        &format!("{V}/sobjects/Contact/{}", kids[0]),
        Value::Null,
    );
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let soql =
        format!("SELECT Name, (SELECT LastName FROM Contacts) FROM Account WHERE Id = '{parent}'");
    assert_eq!(org.query(&soql)["records"][0]["Contacts"]["totalSize"], 2);
    let all: Value = org
        .http
        .get(org.url(&format!("{V}/queryAll")))
        .query(&[("q", soql.as_str())])
        .bearer_auth(&org.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        all["records"][0]["Contacts"]["totalSize"], 3,
        "queryAll keeps deleted children"
    );
    let (status, code) = error_code(org.query_as(
        &org.token,
        "SELECT Name, (SELECT LastName FROM Contactz) FROM Account",
    ));
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_TYPE")
    );
}
