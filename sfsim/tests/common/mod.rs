//! A demo org served over HTTP and a client for it, shared by the tests of
//! the composite resource and of formula fields.

#![allow(dead_code)]

use reqwest::blocking::{Client, Response};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sfsim::server::{spawn, Options, Running};

pub const V: &str = "/services/data/v62.0";

pub struct Org {
    pub server: Running,
    pub http: Client,
    pub token: String,
}

impl Org {
    /// The demo org, with a token that outlives moves of the clock and Bulk
    /// jobs that complete at once.
    pub fn demo() -> Org {
        Org::start(Options {
            token_lifetime_secs: 60 * 24 * 3600,
            ..Options::demo()
        })
    }

    pub fn start(options: Options) -> Org {
        let server = spawn(options).expect("sfsim starts");
        let http = Client::new();
        let token = token(&http, &server.base_url, "admin@sfsim.example");
        let org = Org {
            server,
            http,
            token,
        };
        org.control(
            Method::PATCH,
            "settings",
            json!({"bulk_job_processing_ms": 0}),
        );
        org
    }

    pub fn token_for(&self, username: &str) -> String {
        token(&self.http, &self.server.base_url, username)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url)
    }

    pub fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
    }

    pub fn send(&self, method: Method, path: &str, body: Value) -> Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .unwrap()
    }

    /// A successful REST query's answer.
    pub fn query(&self, soql: &str) -> Value {
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

    pub fn records(&self, soql: &str) -> Vec<Value> {
        self.query(soql)["records"].as_array().unwrap().clone()
    }

    /// `POST /composite` as the admin.
    pub fn composite(&self, body: Value) -> Response {
        self.send(Method::POST, &format!("{V}/composite"), body)
    }

    /// A composite call that answers 200, and its `compositeResponse`.
    pub fn composite_ok(&self, body: Value) -> Vec<Value> {
        let r = self.composite(body);
        assert_eq!(r.status(), StatusCode::OK);
        let answer: Value = r.json().unwrap();
        answer["compositeResponse"].as_array().unwrap().clone()
    }

    pub fn control(&self, method: Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, self.url(&format!("/__sim/{path}")))
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        r.json().unwrap_or(Value::Null)
    }

    pub fn requests(&self) -> Vec<Value> {
        self.control(Method::GET, "requests", Value::Null)["requests"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn clear_log(&self) {
        self.http
            .delete(self.url("/__sim/requests"))
            .send()
            .unwrap();
    }

    pub fn api_requests_used(&self) -> u64 {
        self.control(Method::GET, "usage", Value::Null)["api_requests_used"]
            .as_u64()
            .unwrap()
    }

    pub fn advance_clock(&self, seconds: i64) {
        self.control(Method::POST, "time/advance", json!({"seconds": seconds}));
    }

    /// The first page of results of a Bulk 2.0 query job.
    pub fn bulk_csv(&self, soql: &str) -> String {
        let r = self.send(
            Method::POST,
            &format!("{V}/jobs/query"),
            json!({"operation": "query", "query": soql}),
        );
        assert_eq!(r.status(), StatusCode::OK, "{soql}");
        let id = r.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let job: Value = self.get(&format!("{V}/jobs/query/{id}")).json().unwrap();
        assert_eq!(job["state"], "JobComplete");
        let r = self.get(&format!("{V}/jobs/query/{id}/results"));
        assert_eq!(r.status(), StatusCode::OK);
        r.text().unwrap()
    }
}

/// An access token for `username`, through the password grant.
pub fn token(http: &Client, base: &str, username: &str) -> String {
    let t: Value = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "sfsim-client-id"),
            ("client_secret", "sfsim-client-secret"),
            ("username", username),
            ("password", "sfsim-passwordSFSIMTOKEN"),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    t["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{username} logs in"))
        .to_string()
}

/// The errorCode of an error array body.
pub fn error_code(body: &Value) -> &str {
    body[0]["errorCode"].as_str().unwrap_or_default()
}

/// `/__sim/time/advance` format for query literals: `2026-01-01T00:00:00Z`.
pub fn soql_datetime(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
