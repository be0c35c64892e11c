//! The OAuth flows against sfsim, run in this process: the web-server flow
//! with PKCE, refresh-token rotation and a revoked refresh token. sfsim is
//! driven and watched only through its HTTP control API (`/__sim/...`).

use super::*;
use crate::client::auth::Grant;
use crate::client::session::{ConnectionConfig, Session};
use crate::options::DEFAULT_API_VERSION;
use sfsim::server::{spawn, Options};

const CLIENT_ID: &str = "sfsim-client-id";
const REDIRECT_URI: &str = "http://localhost:8080/oauth/callback";
const TIMEOUT: Duration = Duration::from_secs(10);

fn never_interrupted() -> bool {
    false
}

/// A call to sfsim (its control API or the authorize page), answered with
/// its JSON body (Null when empty).
fn sim(
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let client = http::client(TIMEOUT).unwrap();
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{base}{path}")
    };
    let answer = http::send(
        || {
            let r = client.request(method.clone(), &url);
            match &body {
                Some(b) => r
                    .header("Content-Type", "application/json")
                    .body(b.to_string()),
                None => r,
            }
        },
        never_interrupted,
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    serde_json::from_slice(&answer.body).unwrap_or(serde_json::Value::Null)
}

/// Revokes a token as the user does from Salesforce's setup pages, through
/// `/services/oauth2/revoke`. (The `oauth2` crate revokes only over HTTPS:
/// sfsim speaks HTTP here, and the client has no use for revocation yet.)
fn revoke(base: &str, token: &str) -> Result<(), SalesforceError> {
    let client = http::client(TIMEOUT).unwrap();
    let url = format!("{base}/services/oauth2/revoke");
    http::send(
        || client.post(&url).form(&[("token", token)]),
        never_interrupted,
    )
    .map(|_| ())
}

/// Requests to the token endpoint so far, from sfsim's request log.
fn token_requests(base: &str) -> usize {
    sim(base, reqwest::Method::GET, "/__sim/requests", None)["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/services/oauth2/token")
        .count()
}

fn refresh_grant(refresh_token: &str) -> Grant {
    Grant::RefreshToken {
        client_id: CLIENT_ID.into(),
        client_secret: None,
        refresh_token: refresh_token.into(),
    }
}

fn session(base: &str, grant: Grant) -> Session {
    let config = ConnectionConfig {
        pubsub_url: String::new(),
        login_url: base.to_string(),
        instance_url: None,
        api_version: DEFAULT_API_VERSION.into(),
        batch_size: 200,
        timeout: TIMEOUT,
        grant,
    };
    Session::new(config, never_interrupted).unwrap()
}

fn accounts(s: &mut Session) -> Result<u64, SalesforceError> {
    s.query("SELECT COUNT() FROM Account", false)
        .map(|p| p.total_size)
}

/// Has sfsim's authorize page approve a pending authorization as the admin,
/// as the user would in the browser, and reads the code and state off the
/// redirect.
fn approve(base: &str, pending: &PendingAuthorization) -> (String, String) {
    // The browser opens the authorize URL first.
    sim(base, reqwest::Method::GET, &pending.url, None);
    let answer = sim(
        base,
        reqwest::Method::POST,
        "/__sim/oauth/approve",
        Some(serde_json::json!({"state": pending.state, "username": "admin@sfsim.example"})),
    );
    let redirect = answer["redirect"].as_str().expect("a redirect");
    assert!(redirect.starts_with(REDIRECT_URI), "{redirect}");
    let query: std::collections::HashMap<String, String> = url::Url::parse(redirect)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    (query["code"].clone(), query["state"].clone())
}

#[test]
fn the_web_server_flow_with_pkce_yields_tokens_that_work() {
    let sim = spawn(Options::demo()).unwrap();
    let base = &sim.base_url;
    let pending = authorize_url(base, CLIENT_ID, REDIRECT_URI, &["api", "refresh_token"]).unwrap();
    let (code, state) = approve(base, &pending);
    assert_eq!(state, pending.state, "the redirect carries the state back");
    let token = exchange_code(
        base,
        CLIENT_ID,
        None,
        REDIRECT_URI,
        &code,
        &pending.verifier,
        TIMEOUT,
        never_interrupted,
    )
    .unwrap();
    assert_eq!(token.instance_url, base.trim_end_matches('/'));
    assert!(token
        .org_id
        .as_deref()
        .is_some_and(|o| o.starts_with("00D")));
    let refresh_token = token.refresh_token.clone().expect("a refresh token");

    // The access token makes REST calls ...
    let mut s = session(
        base,
        Grant::AccessToken {
            access_token: token.access_token.clone(),
        },
    );
    assert_eq!(accounts(&mut s).unwrap(), 40);
    // ... and the refresh token logs in.
    let mut s = session(base, refresh_grant(&refresh_token));
    assert_eq!(accounts(&mut s).unwrap(), 40);

    // A code is good once.
    let again = exchange_code(
        base,
        CLIENT_ID,
        None,
        REDIRECT_URI,
        &code,
        &pending.verifier,
        TIMEOUT,
        never_interrupted,
    )
    .unwrap_err();
    assert!(
        matches!(&again, SalesforceError::Login { error, .. } if error == "invalid_grant"),
        "{again}"
    );
}

#[test]
fn a_code_needs_its_own_verifier() {
    let sim = spawn(Options::demo()).unwrap();
    let base = &sim.base_url;
    let pending = authorize_url(base, CLIENT_ID, REDIRECT_URI, &["api"]).unwrap();
    let other = authorize_url(base, CLIENT_ID, REDIRECT_URI, &["api"]).unwrap();
    let (code, _) = approve(base, &pending);
    let e = exchange_code(
        base,
        CLIENT_ID,
        None,
        REDIRECT_URI,
        &code,
        &other.verifier,
        TIMEOUT,
        never_interrupted,
    )
    .unwrap_err();
    assert!(
        matches!(&e, SalesforceError::Login { error, .. } if error == "invalid_grant"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("Salesforce login failed: invalid_grant: "),
        "{e}"
    );
}

#[test]
fn a_rotated_refresh_token_is_kept_used_and_handed_out_once() {
    let sim = spawn(Options::demo()).unwrap();
    let base = &sim.base_url;
    sim_rotation(base);
    let first = sfsim::auth::DEMO_REFRESH_TOKEN;
    let mut s = session(base, refresh_grant(first));
    assert_eq!(accounts(&mut s).unwrap(), 40);
    let second = s
        .take_rotated_refresh_token()
        .expect("a rotated refresh token");
    assert_ne!(second, first);
    assert_eq!(s.take_rotated_refresh_token(), None, "handed out once");
    assert!(s.secrets().contains(&second));
    assert!(s.secrets().contains(&first.to_string()));

    // The old one is dead: a session made with it is refused.
    let mut stale = session(base, refresh_grant(first));
    assert!(matches!(
        accounts(&mut stale),
        Err(SalesforceError::Login { error, .. }) if error == "invalid_grant"
    ));

    // The next refresh sends the new one (the old would be refused) and
    // rotates again; a fork's rotation reaches the session it came from.
    s.token_refused();
    assert_eq!(accounts(&mut s).unwrap(), 40);
    let third = s.take_rotated_refresh_token().expect("rotated again");
    assert!(third != first && third != second);
    let mut fork = s.fork();
    fork.token_refused();
    assert_eq!(accounts(&mut fork).unwrap(), 40);
    let fourth = s.take_rotated_refresh_token().expect("the fork's rotation");
    assert!(![first.to_string(), second.clone(), third.clone()].contains(&fourth));
    assert!(s.secrets().contains(&fourth));
    assert_eq!(s.disconnected(), None);
    assert!(matches!(
        accounts(&mut session(base, refresh_grant(&third))),
        Err(SalesforceError::Login { .. })
    ));
    assert_eq!(
        accounts(&mut session(base, refresh_grant(&fourth))).unwrap(),
        40
    );
}

fn sim_rotation(base: &str) {
    sim(
        base,
        reqwest::Method::POST,
        "/__sim/oauth",
        Some(serde_json::json!({"rotate_refresh_tokens": true})),
    );
}

#[test]
fn a_revoked_refresh_token_disconnects_the_session_without_more_logins() {
    let sim = spawn(Options::demo()).unwrap();
    let base = &sim.base_url;
    let refresh_token = sfsim::auth::DEMO_REFRESH_TOKEN;
    let mut s = session(base, refresh_grant(refresh_token));
    assert_eq!(accounts(&mut s).unwrap(), 40);
    assert_eq!(s.disconnected(), None);

    // The user revokes the app's access: the access token, then the refresh token.
    let live = s.live_token().unwrap().access_token;
    revoke(base, &live).unwrap();
    revoke(base, refresh_token).unwrap();
    let logins = token_requests(base);

    let e = accounts(&mut s).unwrap_err();
    assert_eq!(
        e,
        SalesforceError::Login {
            error: "invalid_grant".into(),
            description: "expired access/refresh token".into()
        }
    );
    assert_eq!(token_requests(base), logins + 1, "one login was tried");
    assert_eq!(
        s.disconnected().as_deref(),
        Some("Salesforce login failed: invalid_grant: expired access/refresh token")
    );
    for _ in 0..3 {
        assert_eq!(accounts(&mut s).unwrap_err(), e);
        assert_eq!(s.live_token().unwrap_err(), e);
    }
    let mut fork = s.fork();
    assert_eq!(accounts(&mut fork).unwrap_err(), e);
    assert_eq!(
        token_requests(base),
        logins + 1,
        "no login after the refusal"
    );

    // A new session (the mapping's options changed) tries again.
    let mut fresh = session(base, refresh_grant(refresh_token));
    assert_eq!(accounts(&mut fresh).unwrap_err(), e);
    assert_eq!(token_requests(base), logins + 2);
}
