//! Many orgs in one sfsim (`--orgs N`): each its own users, id, data,
//! tokens, limits, clock, faults, log, Bulk jobs and change events, requests
//! routed by token, username, refresh token or Host, and a control API per org.

mod common;

use common::{error_code, token, V};
use reqwest::blocking::{Client, Response};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sfsim::server::{spawn, Options, Running};
use std::time::{Duration, Instant};

fn start(orgs: usize) -> Running {
    spawn(Options {
        orgs,
        token_lifetime_secs: 60 * 24 * 3600,
        ..Options::demo()
    })
    .expect("sfsim starts")
}

struct Sim {
    server: Running,
    http: Client,
}

impl Sim {
    fn new(orgs: usize) -> Sim {
        Sim {
            server: start(orgs),
            http: Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url)
    }

    fn token(&self, username: &str) -> String {
        token(&self.http, &self.server.base_url, username)
    }

    fn get(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    fn query(&self, token: &str, soql: &str) -> Value {
        let r = self
            .http
            .get(self.url(&format!("{V}/query")))
            .query(&[("q", soql)])
            .bearer_auth(token)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{soql}");
        r.json().unwrap()
    }

    fn control_raw(&self, method: Method, path: &str, body: Value) -> Response {
        self.http
            .request(method, self.url(&format!("/__sim/{path}")))
            .json(&body)
            .send()
            .unwrap()
    }

    fn control(&self, method: Method, path: &str, body: Value) -> Value {
        let r = self.control_raw(method, path, body);
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        r.json().unwrap_or(Value::Null)
    }

    fn grant(&self, form: &[(&str, &str)], host: Option<&str>) -> Response {
        let mut r = self
            .http
            .post(self.url("/services/oauth2/token"))
            .form(form);
        if let Some(host) = host {
            r = r.header(reqwest::header::HOST, host);
        }
        r.send().unwrap()
    }
}

#[test]
fn orgs_have_their_own_ids_users_and_data() {
    let sim = Sim::new(3);
    let orgs = sim.control(Method::GET, "orgs", Value::Null)["orgs"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(orgs.len(), 3);
    assert_eq!(orgs[0]["org"], 1);
    assert_eq!(orgs[0]["org_id"], "00D5g000004SIMxEAG");
    assert_eq!(orgs[0]["admin_username"], "admin@sfsim.example");
    assert_eq!(orgs[0]["refresh_token"], "5Aep861sfsim.demo.refresh.token");
    assert_eq!(orgs[1]["admin_username"], "admin@org2.sfsim.example");
    assert_eq!(orgs[1]["org_id"], "00D5g000002SIMkEAO");
    assert_eq!(orgs[1]["refresh_token"], "5Aep861sfsim.org2.refresh.token");
    assert_eq!(
        &orgs[2]["org_id"].as_str().unwrap()[..15],
        "00D5g000003SIMk"
    );
    let ids: Vec<&str> = orgs.iter().map(|o| o["org_id"].as_str().unwrap()).collect();
    for id in &ids {
        assert!(id.starts_with("00D") && id.len() == 18, "{id}");
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    assert!(
        ids[1].contains("00002") && ids[2].contains("00003"),
        "{ids:?}"
    );

    let t1 = sim.token("admin@sfsim.example");
    let t2 = sim.token("admin@org2.sfsim.example");
    let limited3 = sim.token("limited@org3.sfsim.example");
    assert!(t1.starts_with(&format!("{}!", &ids[0][..15])));
    assert!(t2.starts_with(&format!("{}!", &ids[1][..15])));
    assert!(limited3.starts_with(&format!("{}!", &ids[2][..15])));
    let refused = sim.grant(
        &[
            ("grant_type", "password"),
            ("client_id", "sfsim-client-id"),
            ("client_secret", "sfsim-client-secret"),
            ("username", "admin@org9.sfsim.example"),
            ("password", "sfsim-passwordSFSIMTOKEN"),
        ],
        None,
    );
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.json::<Value>().unwrap()["error"], "invalid_grant");

    // The same seed in every org: the same records and ids, as in a sandbox.
    let soql = "SELECT Id, Name FROM Account ORDER BY Id LIMIT 5";
    assert_eq!(
        sim.query(&t1, soql)["records"],
        sim.query(&t2, soql)["records"]
    );
    // Field-level security is per user of each org.
    let hidden = sim.get(&limited3, &format!("{V}/query?q=SELECT+Email+FROM+Contact"));
    assert_eq!(hidden.status(), StatusCode::BAD_REQUEST);

    // Writes stay in their org.
    let count = |t: &str| {
        sim.query(t, "SELECT COUNT() FROM Account")["totalSize"]
            .as_u64()
            .unwrap()
    };
    let before = count(&t1);
    let r = sim
        .http
        .post(sim.url(&format!("{V}/sobjects/Account")))
        .bearer_auth(&t2)
        .json(&json!({"Name": "Only In Org Two"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(count(&t2), before + 1);
    assert_eq!(count(&t1), before);

    // The identity URL names the token's org and user.
    let users = sim.query(
        &t2,
        "SELECT Id, Username FROM User WHERE Username = 'admin@org2.sfsim.example'",
    );
    let user_id = users["records"][0]["Id"].as_str().unwrap().to_string();
    let identity: Value = sim
        .get(&t2, &format!("/id/{}/{user_id}", ids[1]))
        .json()
        .unwrap();
    assert_eq!(identity["organization_id"], ids[1]);
    assert_eq!(identity["username"], "admin@org2.sfsim.example");
    assert_eq!(
        sim.get(&t1, &format!("/id/{}/{user_id}", ids[1])).status(),
        StatusCode::NOT_FOUND,
        "another org's identity"
    );

    // An unknown token is refused as ever.
    let r = sim.get("00D5g000002SIMk!nonsense", &format!("{V}/limits"));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&r.json().unwrap()), "INVALID_SESSION_ID");
    assert_eq!(
        sim.control_raw(Method::GET, "orgs/4/usage", Value::Null)
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn limits_clocks_faults_logs_and_tokens_are_per_org() {
    let sim = Sim::new(2);
    let t1 = sim.token("admin@sfsim.example");
    let t2 = sim.token("admin@org2.sfsim.example");
    sim.control(Method::DELETE, "requests", Value::Null);
    sim.control(Method::DELETE, "orgs/2/requests", Value::Null);

    // Daily limits and usage.
    sim.control(Method::PATCH, "orgs/2/settings", json!({"daily_limit": 2}));
    for _ in 0..2 {
        assert_eq!(
            sim.get(&t2, &format!("{V}/limits")).status(),
            StatusCode::OK
        );
    }
    let over = sim.get(&t2, &format!("{V}/limits"));
    assert_eq!(over.status(), StatusCode::FORBIDDEN);
    assert_eq!(over.headers()["Sforce-Limit-Info"], "api-usage=2/2");
    let ok = sim.get(&t1, &format!("{V}/limits"));
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["Sforce-Limit-Info"], "api-usage=1/15000");
    assert_eq!(
        sim.control(Method::GET, "orgs/2/usage", Value::Null)["api_requests_used"],
        2
    );
    assert_eq!(
        sim.control(Method::GET, "usage", Value::Null)["api_requests_used"],
        1
    );
    assert_eq!(
        sim.control(Method::GET, "orgs/1/usage", Value::Null)["api_requests_used"],
        1
    );

    // Request logs.
    let log = |path: &str| {
        sim.control(Method::GET, path, Value::Null)["requests"]
            .as_array()
            .unwrap()
            .clone()
    };
    let org2_log = log("orgs/2/requests");
    assert_eq!(org2_log.len(), 3);
    assert!(org2_log.iter().all(|e| e["path"] == format!("{V}/limits")));
    assert_eq!(log("requests").len(), 1);

    // Token requests are logged by the org they go to, uncounted.
    sim.token("limited@org2.sfsim.example");
    let last = log("orgs/2/requests").pop().unwrap();
    assert_eq!(last["path"], "/services/oauth2/token");
    assert_eq!(last["counted"], false);
    assert_eq!(log("requests").len(), 1);

    // Clocks.
    let before = sim.control(Method::GET, "time", Value::Null)["now"].clone();
    sim.control(
        Method::POST,
        "orgs/2/time/advance",
        json!({"seconds": 86_400 * 3}),
    );
    let org1_now = sim.control(Method::GET, "time", Value::Null)["now"]
        .as_str()
        .unwrap()
        .to_string();
    let org2_now = sim.control(Method::GET, "orgs/2/time", Value::Null)["now"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(org2_now > org1_now, "{org2_now} {org1_now}");
    assert_eq!(&org1_now[..10], &before.as_str().unwrap()[..10]);
    sim.control(
        Method::PATCH,
        "orgs/2/settings",
        json!({"daily_limit": 15000}),
    );

    // Faults: a 503 rate set for org 2 leaves org 1 alone.
    sim.control(
        Method::PATCH,
        "orgs/2/faults",
        json!({"server_unavailable": 1.0, "seed": 1}),
    );
    let r = sim.get(&t2, &format!("{V}/limits"));
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        sim.get(&t1, &format!("{V}/limits")).status(),
        StatusCode::OK
    );
    assert_eq!(
        sim.control(Method::GET, "faults", Value::Null)["injected"],
        0
    );
    assert_eq!(
        sim.control(Method::GET, "orgs/2/faults", Value::Null)["injected"],
        1
    );
    sim.control(Method::PATCH, "orgs/2/faults", json!({}));

    // Expiring org 2's tokens leaves org 1's.
    sim.control(Method::POST, "orgs/2/tokens/expire", Value::Null);
    assert_eq!(
        sim.get(&t2, &format!("{V}/limits")).status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sim.get(&t1, &format!("{V}/limits")).status(),
        StatusCode::OK
    );

    // Each org's fixed refresh token gives a token of that org.
    let refreshed: Value = sim
        .grant(
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "sfsim-client-id"),
                ("refresh_token", "5Aep861sfsim.org2.refresh.token"),
            ],
            None,
        )
        .json()
        .unwrap();
    let t2 = refreshed["access_token"].as_str().unwrap().to_string();
    assert!(t2.starts_with("00D5g000002SIMk!"), "{t2}");
    assert!(refreshed["id"]
        .as_str()
        .unwrap()
        .contains("/id/00D5g000002SIMk"));
    assert_eq!(
        sim.get(&t2, &format!("{V}/limits")).status(),
        StatusCode::OK
    );

    // Client credentials run in the org the Host names, else in the first.
    let cc = [
        ("grant_type", "client_credentials"),
        ("client_id", "sfsim-client-id"),
        ("client_secret", "sfsim-client-secret"),
    ];
    let by_host: Value = sim.grant(&cc, Some("org2.localhost")).json().unwrap();
    assert!(by_host["access_token"]
        .as_str()
        .unwrap()
        .starts_with("00D5g000002SIMk!"));
    let plain: Value = sim.grant(&cc, None).json().unwrap();
    assert!(plain["access_token"]
        .as_str()
        .unwrap()
        .starts_with("00D5g000004SIMx!"));

    // A reset of org 2 leaves org 1's data.
    let r = sim
        .http
        .post(sim.url(&format!("{V}/sobjects/Account")))
        .bearer_auth(&t1)
        .json(&json!({"Name": "Org One Keeps Me"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    sim.control(Method::POST, "orgs/2/reset", Value::Null);
    let kept = sim.query(
        &t1,
        "SELECT Id FROM Account WHERE Name = 'Org One Keeps Me'",
    );
    assert_eq!(kept["totalSize"], 1);
}

#[test]
fn jwt_bearer_goes_to_the_host_or_the_subject_org() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let sim = Sim::new(3);
    let key = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt/private.pem")).unwrap();
    let now: i64 = sim.control(Method::GET, "time", Value::Null)["now"]
        .as_str()
        .map(|t| {
            chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.3f%z")
                .unwrap()
                .timestamp()
        })
        .unwrap();
    let assertion = |sub: &str| {
        let claims = json!({"iss": "sfsim-client-id", "sub": sub, "aud": "https://login.salesforce.com", "exp": now + 60});
        encode(&Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap()
    };
    let grant = |sub: &str, host: Option<&str>| -> Value {
        let jwt = assertion(sub);
        sim.grant(
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &jwt),
            ],
            host,
        )
        .json()
        .unwrap()
    };
    let by_subject = grant("admin@org2.sfsim.example", None);
    assert!(
        by_subject["access_token"]
            .as_str()
            .unwrap()
            .starts_with("00D5g000002SIMk!"),
        "{by_subject}"
    );
    let by_host = grant("limited@org3.sfsim.example", Some("org3.localhost:1"));
    assert!(
        by_host["access_token"]
            .as_str()
            .unwrap()
            .starts_with("00D5g000003SIMk!"),
        "{by_host}"
    );
    let wrong_host = grant("admin@org2.sfsim.example", Some("org3.localhost"));
    assert_eq!(
        wrong_host["error_description"],
        "user hasn't approved this consumer"
    );
    let first = grant("admin@sfsim.example", None);
    assert!(first["access_token"]
        .as_str()
        .unwrap()
        .starts_with("00D5g000004SIMx!"));
}

#[test]
fn bulk_jobs_and_cursors_are_per_org() {
    let sim = Sim::new(2);
    let t1 = sim.token("admin@sfsim.example");
    let t2 = sim.token("admin@org2.sfsim.example");
    sim.control(
        Method::PATCH,
        "orgs/2/settings",
        json!({"bulk_job_processing_ms": 0}),
    );
    let r = sim
        .http
        .post(sim.url(&format!("{V}/jobs/query")))
        .bearer_auth(&t2)
        .json(&json!({"operation": "query", "query": "SELECT Id FROM Account"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let id = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        sim.get(&t2, &format!("{V}/jobs/query/{id}")).status(),
        StatusCode::OK
    );
    assert_eq!(
        sim.get(&t1, &format!("{V}/jobs/query/{id}")).status(),
        StatusCode::NOT_FOUND
    );
    let listed: Value = sim.get(&t1, &format!("{V}/jobs/query")).json().unwrap();
    assert_eq!(listed["records"].as_array().unwrap().len(), 0);

    // A query cursor of one org is no cursor of another.
    let page = sim
        .http
        .get(sim.url(&format!("{V}/query")))
        .query(&[("q", "SELECT Id FROM Contact")])
        .header("Sforce-Query-Options", "batchSize=200")
        .bearer_auth(&t2)
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    let next = page["nextRecordsUrl"].as_str().unwrap().to_string();
    assert_eq!(sim.get(&t2, &next).status(), StatusCode::OK);
    let other = sim.get(&t1, &next);
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&other.json().unwrap()), "INVALID_QUERY_LOCATOR");
}

/// The start-up lines: unchanged with one org, plus `orgs: N` with more.
#[test]
fn start_up_lines_stay_and_name_the_orgs() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let lines = |args: &[&str], count: usize| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sfsim"))
            .args(["--listen", "127.0.0.1:0", "--seed", "empty"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        for _ in 0..count {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            lines.push(line.trim_end().to_string());
        }
        child.kill().unwrap();
        child.wait().unwrap();
        lines
    };
    let one = lines(&[], 5);
    assert!(one[0].starts_with("http://127.0.0.1:"), "{one:?}");
    assert!(one[1].starts_with("org: 00D5g000004SIMxEAG ("), "{one:?}");
    assert_eq!(
        one[2],
        "client_id: sfsim-client-id  client_secret: sfsim-client-secret"
    );
    assert_eq!(
        one[3],
        "username: admin@sfsim.example  password: sfsim-password  security token: SFSIMTOKEN"
    );
    assert_eq!(one[4], "refresh_token: 5Aep861sfsim.demo.refresh.token");
    let three = lines(&["--orgs", "3"], 6);
    assert_eq!(three[1..5], one[1..5]);
    assert_eq!(three[5], "orgs: 3");
}

/// A thousand small orgs start quickly, in little memory, and serve
/// requests spread over them.
#[test]
fn a_thousand_orgs_start_small_and_serve() {
    let started = Instant::now();
    let server = spawn(Options {
        orgs: 1000,
        seed: "empty".into(),
        records: vec![
            ("Account".into(), 20),
            ("Contact".into(), 20),
            ("Lead".into(), 20),
        ],
        ..Options::demo()
    })
    .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "started in {took:?}");
    assert_eq!(server.orgs.len(), 1000);
    let http = Client::new();
    let tokens: Vec<String> = [1, 2, 500, 999, 1000]
        .iter()
        .map(|k| {
            let username = if *k == 1 {
                "admin@sfsim.example".to_string()
            } else {
                format!("admin@org{k}.sfsim.example")
            };
            token(&http, &server.base_url, &username)
        })
        .collect();
    for (i, t) in tokens.iter().cycle().take(100).enumerate() {
        let r = http
            .get(format!("{}{V}/query", server.base_url))
            .query(&[("q", "SELECT Id, Name FROM Account LIMIT 5")])
            .bearer_auth(t)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "request {i}");
    }
    let org1000 = server.orgs.get(1000).unwrap();
    assert_eq!(org1000.usage.lock().requests_seen, 20);
    assert_eq!(
        org1000.org.read().logins[0].username,
        "admin@org1000.sfsim.example"
    );
}
