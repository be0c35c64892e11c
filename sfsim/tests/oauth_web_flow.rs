//! The OAuth 2.0 web-server flow with PKCE: the authorize page, the
//! customer's approval through the control API, the code exchange, refresh
//! token rotation and revocation, across orgs.

mod common;

use common::V;
use reqwest::blocking::{Client, Response};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sfsim::server::{spawn, Options, Running};
use std::collections::HashMap;

/// RFC 7636 appendix B: a verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CALLBACK: &str = "https://app.example.com/oauth/callback";

struct Sim {
    server: Running,
    http: Client,
}

fn start(orgs: usize) -> Sim {
    Sim {
        server: spawn(Options {
            orgs,
            ..Options::demo()
        })
        .expect("sfsim starts"),
        http: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

/// The query of a callback URL.
fn callback_params(url: &str) -> HashMap<String, String> {
    let url = reqwest::Url::parse(url).unwrap();
    assert_eq!(
        format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap(),
            url.path()
        ),
        CALLBACK
    );
    url.query_pairs().into_owned().collect()
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url)
    }

    fn authorize(&self, params: &[(&str, &str)]) -> Response {
        self.http
            .get(self.url("/services/oauth2/authorize"))
            .query(params)
            .send()
            .unwrap()
    }

    /// An authorize request with PKCE that sfsim keeps waiting under `state`.
    fn pending(&self, state: &str, scope: Option<&str>) {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", "sfsim-client-id"),
            ("redirect_uri", CALLBACK),
            ("state", state),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        if let Some(scope) = scope {
            params.push(("scope", scope));
        }
        let r = self.authorize(&params);
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(r.text().unwrap().contains(state));
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

    /// The customer approves as `username`: the code sent to the callback.
    fn approve(&self, state: &str, username: &str) -> String {
        let answer = self.control(
            Method::POST,
            "oauth/approve",
            json!({"state": state, "username": username}),
        );
        let params = callback_params(answer["redirect"].as_str().unwrap());
        assert_eq!(params["state"], state);
        params["code"].clone()
    }

    fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url("/services/oauth2/token"))
            .form(form)
            .send()
            .unwrap();
        (r.status(), r.json().unwrap())
    }

    fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", "sfsim-client-id"),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
        ])
    }

    fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", "sfsim-client-id"),
            ("client_secret", "sfsim-client-secret"),
            ("refresh_token", refresh_token),
        ])
    }

    fn revoke(&self, token: &str) -> StatusCode {
        self.http
            .post(self.url("/services/oauth2/revoke"))
            .form(&[("token", token)])
            .send()
            .unwrap()
            .status()
    }

    fn limits(&self, access_token: &str) -> StatusCode {
        self.http
            .get(self.url(&format!("{V}/limits")))
            .bearer_auth(access_token)
            .send()
            .unwrap()
            .status()
    }

    /// A fresh grant of org 2's admin: the token response.
    fn connect(&self, state: &str) -> Value {
        self.pending(state, None);
        let code = self.approve(state, "admin@org2.sfsim.example");
        let (status, body) = self.exchange(&code, VERIFIER);
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn error(answer: &(StatusCode, Value)) -> (&str, &str) {
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
    (
        answer.1["error"].as_str().unwrap(),
        answer.1["error_description"].as_str().unwrap(),
    )
}

#[test]
fn the_web_server_flow_connects_the_customers_org() {
    let sim = start(2);
    assert_eq!(sfsim::auth::s256_challenge(VERIFIER), CHALLENGE);
    sim.pending("xyz 1/2", Some("api refresh_token"));
    let code = sim.approve("xyz 1/2", "admin@org2.sfsim.example");
    assert!(code.starts_with("aPrx"), "{code}");

    // The verifier must answer the challenge; a failed attempt leaves the code usable.
    let wrong = sim.exchange(&code, "not-the-verifier-not-the-verifier-not-the-verifier");
    assert_eq!(error(&wrong), ("invalid_grant", "invalid code verifier"));
    let missing = sim.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", "sfsim-client-id"),
        ("redirect_uri", CALLBACK),
    ]);
    assert_eq!(error(&missing), ("invalid_grant", "invalid code verifier"));
    let elsewhere = sim.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", "sfsim-client-id"),
        ("redirect_uri", "https://app.example.com/other"),
        ("code_verifier", VERIFIER),
    ]);
    assert_eq!(error(&elsewhere).0, "invalid_grant");
    let bad_secret = sim.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", "sfsim-client-id"),
        ("client_secret", "wrong"),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
    ]);
    assert_eq!(error(&bad_secret).0, "invalid_client");
    let bad_client = sim.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", "someone-else"),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
    ]);
    assert_eq!(error(&bad_client).0, "invalid_client_id");

    let (status, body) = sim.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", "sfsim-client-id"),
        ("client_secret", "sfsim-client-secret"),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
    ]);
    assert_eq!(status, StatusCode::OK, "{body}");
    for key in [
        "access_token",
        "refresh_token",
        "instance_url",
        "id",
        "issued_at",
        "signature",
    ] {
        assert!(body[key].is_string(), "{key} in {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api refresh_token");
    assert_eq!(body["instance_url"], sim.server.base_url);
    let org2 = sim.server.orgs.get(2).unwrap().org.read().org_id.clone();
    assert!(body["id"]
        .as_str()
        .unwrap()
        .contains(&format!("/id/{org2}/")));
    let access = body["access_token"].as_str().unwrap();
    assert!(access.starts_with(&format!("{}!", &org2[..15])));
    assert_eq!(sim.limits(access), StatusCode::OK);
    let signature = sfsim::auth::response_signature(
        body["id"].as_str().unwrap(),
        body["issued_at"].as_str().unwrap(),
    );
    assert_eq!(body["signature"], signature);

    // Codes are single use.
    let again = sim.exchange(&code, VERIFIER);
    assert_eq!(
        error(&again),
        ("invalid_grant", "expired authorization code")
    );
    let unknown = sim.exchange("aPrxnothing", VERIFIER);
    assert_eq!(
        error(&unknown),
        ("invalid_grant", "invalid authorization code")
    );

    // The refresh token works in org 2.
    let (status, refreshed) = sim.refresh(body["refresh_token"].as_str().unwrap());
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert!(refreshed["access_token"]
        .as_str()
        .unwrap()
        .starts_with(&org2[..15]));
    assert!(
        refreshed.get("refresh_token").is_none(),
        "no rotation by default"
    );
    assert_eq!(refreshed["scope"], "api refresh_token");
}

#[test]
fn codes_expire_after_fifteen_minutes_of_the_orgs_clock() {
    let sim = start(2);
    sim.pending("late", None);
    let code = sim.approve("late", "admin@org2.sfsim.example");
    sim.control(
        Method::POST,
        "orgs/2/time/advance",
        json!({"seconds": 14 * 60}),
    );
    sim.pending("later", None);
    let fresh = sim.approve("later", "admin@org2.sfsim.example");
    sim.control(Method::POST, "orgs/2/time/advance", json!({"seconds": 61}));
    assert_eq!(
        error(&sim.exchange(&code, VERIFIER)),
        ("invalid_grant", "expired authorization code")
    );
    assert_eq!(sim.exchange(&fresh, VERIFIER).0, StatusCode::OK);
    // The first org's clock is its own: a code of org 1 is still fresh.
    sim.pending("first", None);
    let first = sim.approve("first", "limited@sfsim.example");
    sim.control(
        Method::POST,
        "orgs/2/time/advance",
        json!({"seconds": 3600}),
    );
    let (status, body) = sim.exchange(&first, VERIFIER);
    assert_eq!(status, StatusCode::OK);
    assert!(body["access_token"]
        .as_str()
        .unwrap()
        .starts_with("00D5g000004SIMx!"));
}

#[test]
fn the_authorize_page_checks_its_parameters() {
    let sim = start(1);
    let base = [
        ("response_type", "code"),
        ("client_id", "sfsim-client-id"),
        ("redirect_uri", CALLBACK),
        ("state", "s"),
    ];
    let with = |changes: &[(&'static str, &'static str)]| {
        let mut params: Vec<(&str, &str)> = base
            .iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
            .copied()
            .collect();
        params.extend(changes.iter().filter(|(_, v)| !v.is_empty()).copied());
        sim.authorize(&params)
    };
    let r = with(&[("client_id", "nobody")]);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().unwrap()["error"], "invalid_client_id");
    let r = with(&[("redirect_uri", "not a url")]);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().unwrap()["error"], "redirect_uri_mismatch");
    let redirected = |r: Response| {
        assert_eq!(r.status(), StatusCode::FOUND);
        callback_params(r.headers()["location"].to_str().unwrap())
    };
    let p = redirected(with(&[("response_type", "token")]));
    assert_eq!(p["error"], "unsupported_response_type");
    assert_eq!(p["state"], "s");
    let p = redirected(with(&[
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "plain"),
    ]));
    assert_eq!(p["error"], "invalid_request");
    let p = redirected(with(&[("code_challenge", "short")]));
    assert_eq!(p["error"], "invalid_request");
    let p = redirected(with(&[("scope", "api launch_missiles")]));
    assert_eq!(p["error"], "invalid_scope");
    assert_eq!(
        with(&[("code_challenge", CHALLENGE)]).status(),
        StatusCode::OK,
        "S256 is the default method"
    );

    // Declining sends the customer back with access_denied.
    sim.pending("no thanks", None);
    let answer = sim.control(
        Method::POST,
        "oauth/approve",
        json!({"state": "no thanks", "deny": true}),
    );
    let p = callback_params(answer["redirect"].as_str().unwrap());
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "no thanks");
    let r = sim.control_raw(
        Method::POST,
        "oauth/approve",
        json!({"state": "no thanks", "username": "admin@sfsim.example"}),
    );
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "answered requests are gone"
    );

    // An unknown user leaves the request waiting.
    sim.pending("who", None);
    let r = sim.control_raw(
        Method::POST,
        "oauth/approve",
        json!({"state": "who", "username": "admin@org2.sfsim.example"}),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let code = sim.approve("who", "admin@sfsim.example");
    assert_eq!(sim.exchange(&code, VERIFIER).0, StatusCode::OK);

    // A request without a state waits under the empty state; the callback then has none.
    let r = sim.authorize(&[
        ("response_type", "code"),
        ("client_id", "sfsim-client-id"),
        ("redirect_uri", CALLBACK),
        ("code_challenge", CHALLENGE),
    ]);
    assert_eq!(r.status(), StatusCode::OK);
    let answer = sim.control(
        Method::POST,
        "oauth/approve",
        json!({"username": "admin@sfsim.example"}),
    );
    let p = callback_params(answer["redirect"].as_str().unwrap());
    assert!(!p.contains_key("state"), "{p:?}");
    assert_eq!(sim.exchange(&p["code"], VERIFIER).0, StatusCode::OK);

    // Without PKCE the client secret is required; without refresh_token scope no refresh token.
    let r = sim.authorize(&[
        ("response_type", "code"),
        ("client_id", "sfsim-client-id"),
        ("redirect_uri", CALLBACK),
        ("state", "plain"),
        ("scope", "api"),
    ]);
    assert_eq!(r.status(), StatusCode::OK);
    let code = sim.approve("plain", "admin@sfsim.example");
    let no_secret = sim.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", "sfsim-client-id"),
        ("redirect_uri", CALLBACK),
    ]);
    assert_eq!(error(&no_secret).0, "invalid_client");
    let (status, body) = sim.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", "sfsim-client-id"),
        ("client_secret", "sfsim-client-secret"),
        ("redirect_uri", CALLBACK),
    ]);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "api");
    assert!(body.get("refresh_token").is_none());
}

#[test]
fn rotation_issues_a_new_refresh_token_and_retires_the_old() {
    let sim = start(2);
    assert_eq!(
        sim.control(Method::GET, "orgs/2/oauth", Value::Null)["rotate_refresh_tokens"],
        false
    );
    let answer = sim.control(
        Method::POST,
        "orgs/2/oauth",
        json!({"rotate_refresh_tokens": true}),
    );
    assert_eq!(answer["rotate_refresh_tokens"], true);
    assert_eq!(
        sim.control(Method::GET, "oauth", Value::Null)["rotate_refresh_tokens"],
        false
    );

    let first = sim.connect("rotate")["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = sim.refresh(&first);
    assert_eq!(status, StatusCode::OK);
    let second = body["refresh_token"]
        .as_str()
        .expect("a new refresh token")
        .to_string();
    assert_ne!(first, second);
    assert_eq!(
        error(&sim.refresh(&first)),
        ("invalid_grant", "expired access/refresh token")
    );
    let (status, body) = sim.refresh(&second);
    assert_eq!(status, StatusCode::OK);
    let third = body["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        sim.limits(body["access_token"].as_str().unwrap()),
        StatusCode::OK
    );
    assert_eq!(sim.refresh(&second).0, StatusCode::BAD_REQUEST);

    // The first org does not rotate: its fixed token refreshes again and again.
    for _ in 0..2 {
        let (status, body) = sim.refresh("5Aep861sfsim.demo.refresh.token");
        assert_eq!(status, StatusCode::OK);
        assert!(body.get("refresh_token").is_none());
    }
    // Switched off, the latest token keeps working.
    sim.control(
        Method::POST,
        "orgs/2/oauth",
        json!({"rotate_refresh_tokens": false}),
    );
    assert_eq!(sim.refresh(&third).0, StatusCode::OK);
    assert_eq!(sim.refresh(&third).0, StatusCode::OK);
    let bad = sim.control_raw(Method::POST, "orgs/2/oauth", json!({"rotate": true}));
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn revocation_ends_refresh_tokens_and_their_access_tokens() {
    let sim = start(2);
    let granted = sim.connect("revoke");
    let refresh = granted["refresh_token"].as_str().unwrap().to_string();
    let first_access = granted["access_token"].as_str().unwrap().to_string();
    let (_, refreshed) = sim.refresh(&refresh);
    let second_access = refreshed["access_token"].as_str().unwrap().to_string();
    let other = common::token(&sim.http, &sim.server.base_url, "admin@org2.sfsim.example");

    // An access token alone.
    let spare = sim.refresh(&refresh).1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sim.revoke(&spare), StatusCode::OK);
    assert_eq!(sim.limits(&spare), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.limits(&first_access), StatusCode::OK);
    assert_eq!(sim.refresh(&refresh).0, StatusCode::OK);

    // A refresh token, and with it every access token of its grant.
    assert_eq!(sim.revoke(&refresh), StatusCode::OK);
    assert_eq!(
        error(&sim.refresh(&refresh)),
        ("invalid_grant", "expired access/refresh token")
    );
    for token in [&first_access, &second_access] {
        let r = sim
            .http
            .get(sim.url(&format!("{V}/limits")))
            .bearer_auth(token)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.json::<Value>().unwrap()[0]["errorCode"],
            "INVALID_SESSION_ID"
        );
    }
    assert_eq!(sim.limits(&other), StatusCode::OK, "other grants stand");

    // Unknown tokens; the GET form.
    assert_eq!(sim.revoke(&refresh), StatusCode::BAD_REQUEST);
    let r = sim
        .http
        .get(sim.url("/services/oauth2/revoke"))
        .query(&[("token", other.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sim.limits(&other), StatusCode::UNAUTHORIZED);

    // Token and revoke requests are in org 2's log, uncounted; none in org 1's.
    let log = |path: &str| -> Vec<Value> {
        sim.control(Method::GET, path, Value::Null)["requests"]
            .as_array()
            .unwrap()
            .clone()
    };
    let org2: Vec<Value> = log("orgs/2/requests");
    let paths: Vec<&str> = org2.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"/services/oauth2/revoke"), "{paths:?}");
    assert!(paths.contains(&"/services/oauth2/token"));
    assert!(org2
        .iter()
        .filter(|e| e["path"].as_str().unwrap().starts_with("/services/oauth2/"))
        .all(|e| e["counted"] == false));
    let org1 = log("requests");
    assert!(
        org1.iter().all(|e| {
            let p = e["path"].as_str().unwrap();
            p == "/services/oauth2/authorize"
        }),
        "the authorize page is the first org's, the rest org 2's: {org1:?}"
    );
}
