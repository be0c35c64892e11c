//! The per-org network faults: `hang` (no answer at all until cleared) and
//! `delay_ms` (every answer late), and `--delay-ms` for every org at start.

mod common;

use common::V;
use eventbus::pub_sub_client::PubSubClient;
use eventbus::tonic::metadata::MetadataValue;
use eventbus::tonic::Request;
use eventbus::TopicRequest;
use reqwest::blocking::Client;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sfsim::server::{spawn, Options, Running};
use std::time::{Duration, Instant};

fn start(options: Options) -> (Running, Client) {
    let server = spawn(Options {
        token_lifetime_secs: 60 * 24 * 3600,
        ..options
    })
    .expect("sfsim starts");
    (server, Client::new())
}

fn control(http: &Client, base: &str, method: Method, path: &str, body: Value) -> Value {
    let r = http
        .request(method, format!("{base}/__sim/{path}"))
        .json(&body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "control {path}: {}", r.status());
    r.json().unwrap_or(Value::Null)
}

fn password_grant(
    http: &Client,
    base: &str,
    username: &str,
) -> reqwest::Result<reqwest::blocking::Response> {
    http.post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "sfsim-client-id"),
            ("client_secret", "sfsim-client-secret"),
            ("username", username),
            ("password", "sfsim-passwordSFSIMTOKEN"),
        ])
        .send()
}

#[test]
fn a_hung_org_answers_nothing_until_cleared() {
    let (server, http) = start(Options {
        orgs: 2,
        ..Options::demo()
    });
    let base = server.base_url.clone();
    let t1 = common::token(&http, &base, "admin@sfsim.example");
    let t2 = common::token(&http, &base, "admin@org2.sfsim.example");
    let faults = control(
        &http,
        &base,
        Method::POST,
        "orgs/2/faults/hang",
        json!({"on": true}),
    );
    assert_eq!(faults["hang"], true);
    assert_eq!(
        control(&http, &base, Method::GET, "faults", Value::Null)["hang"],
        false
    );

    let impatient = Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let limits = |client: &Client, token: &str| {
        client
            .get(format!("{base}{V}/limits"))
            .bearer_auth(token)
            .send()
    };
    let err = limits(&impatient, &t2).expect_err("no answer from a hung org");
    assert!(err.is_timeout(), "{err}");
    let err = password_grant(&impatient, &base, "limited@org2.sfsim.example")
        .expect_err("its logins hang too");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        limits(&impatient, &t1).unwrap().status(),
        StatusCode::OK,
        "other orgs answer"
    );
    assert_eq!(
        password_grant(&impatient, &base, "admin@sfsim.example")
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // A request waiting when the hang is cleared is then answered.
    let waiting = {
        let base = base.clone();
        let t2 = t2.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let r = Client::new()
                .get(format!("{base}{V}/limits"))
                .bearer_auth(&t2)
                .send()
                .unwrap();
            (r.status(), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiting.is_finished());
    let faults = control(
        &http,
        &base,
        Method::DELETE,
        "orgs/2/faults/hang",
        Value::Null,
    );
    assert_eq!(faults["hang"], false);
    let (status, waited) = waiting.join().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert_eq!(limits(&impatient, &t2).unwrap().status(), StatusCode::OK);

    // A reset clears the hang.
    control(
        &http,
        &base,
        Method::POST,
        "orgs/2/faults/hang",
        Value::Null,
    );
    assert!(limits(&impatient, &t2).is_err());
    control(&http, &base, Method::POST, "orgs/2/reset", Value::Null);
    assert_eq!(limits(&impatient, &t2).unwrap().status(), StatusCode::OK);
}

#[test]
fn a_hung_org_holds_pub_sub_calls_too() {
    let (server, http) = start(Options {
        orgs: 2,
        ..Options::demo_with_pubsub()
    });
    let base = server.base_url.clone();
    let t2 = common::token(&http, &base, "admin@org2.sfsim.example");
    let tenant = server.orgs.get(2).unwrap().org.read().org_id.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt
        .block_on(PubSubClient::connect(server.pubsub_url.clone().unwrap()))
        .unwrap();
    let request = || {
        let mut r = Request::new(TopicRequest {
            topic_name: "/data/ChangeEvents".into(),
        });
        let m = r.metadata_mut();
        m.insert(
            eventbus::ACCESS_TOKEN,
            MetadataValue::try_from(t2.as_str()).unwrap(),
        );
        m.insert(
            eventbus::INSTANCE_URL,
            MetadataValue::try_from(base.as_str()).unwrap(),
        );
        m.insert(
            eventbus::TENANT_ID,
            MetadataValue::try_from(tenant.as_str()).unwrap(),
        );
        r
    };
    let topic = rt
        .block_on(client.get_topic(request()))
        .unwrap()
        .into_inner();
    assert_eq!(topic.tenant_guid, tenant, "org 2's own bus");
    control(
        &http,
        &base,
        Method::POST,
        "orgs/2/faults/hang",
        json!({"on": true}),
    );
    let held = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(400), client.get_topic(request())).await
    });
    assert!(held.is_err(), "no answer while hung");
    control(
        &http,
        &base,
        Method::POST,
        "orgs/2/faults/hang",
        json!({"on": false}),
    );
    assert!(rt.block_on(client.get_topic(request())).is_ok());
}

#[test]
fn delays_hold_back_every_answer_of_the_org() {
    let (server, http) = start(Options {
        orgs: 2,
        ..Options::demo()
    });
    let base = server.base_url.clone();
    let t2 = common::token(&http, &base, "admin@org2.sfsim.example");
    let faults = control(
        &http,
        &base,
        Method::POST,
        "orgs/2/faults/delay_ms",
        json!({"ms": 250}),
    );
    assert_eq!(faults["delay_ms"], 250);
    let timed = |f: &dyn Fn() -> StatusCode| {
        let started = Instant::now();
        let status = f();
        (status, started.elapsed())
    };
    let (status, took) = timed(&|| {
        http.get(format!("{base}{V}/limits"))
            .bearer_auth(&t2)
            .send()
            .unwrap()
            .status()
    });
    assert_eq!(status, StatusCode::OK);
    assert!(took >= Duration::from_millis(250), "{took:?}");
    let (status, took) = timed(&|| {
        password_grant(&http, &base, "admin@org2.sfsim.example")
            .unwrap()
            .status()
    });
    assert_eq!(status, StatusCode::OK);
    assert!(
        took >= Duration::from_millis(250),
        "token requests too: {took:?}"
    );
    // The control API is never delayed.
    let (_, took) = timed(&|| {
        http.get(format!("{base}/__sim/orgs/2/faults"))
            .send()
            .unwrap()
            .status()
    });
    assert!(took < Duration::from_millis(250), "{took:?}");
    control(&http, &base, Method::POST, "orgs/2/reset", Value::Null);
    assert_eq!(
        control(&http, &base, Method::GET, "orgs/2/faults", Value::Null)["delay_ms"],
        250,
        "a reset keeps the delay"
    );
    control(
        &http,
        &base,
        Method::POST,
        "orgs/2/faults/delay_ms",
        json!({"ms": 0}),
    );
    assert_eq!(
        control(&http, &base, Method::GET, "orgs/2/faults", Value::Null)["delay_ms"],
        0
    );
}

#[test]
fn delay_ms_at_start_delays_every_org() {
    let (server, http) = start(Options {
        orgs: 3,
        delay_ms: 120,
        ..Options::demo()
    });
    let base = server.base_url.clone();
    for (k, username) in [(1, "admin@sfsim.example"), (3, "admin@org3.sfsim.example")] {
        assert_eq!(
            control(
                &http,
                &base,
                Method::GET,
                &format!("orgs/{k}/faults"),
                Value::Null
            )["delay_ms"],
            120
        );
        let token = common::token(&http, &base, username);
        let started = Instant::now();
        let r = http
            .get(format!("{base}{V}/limits"))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(120));
    }
}

#[test]
fn an_outage_refuses_connections_cuts_open_ones_and_ends_on_time() {
    let (server, http) = start(Options::demo());
    let base = server.base_url.clone();
    let token = common::token(&http, &base, "admin@sfsim.example");
    let versions = |http: &Client| {
        http.get(format!("{base}{V}/limits"))
            .bearer_auth(&token)
            .send()
    };
    assert!(versions(&http).unwrap().status().is_success());
    let r = http
        .post(format!("{base}/__sim/outage"))
        .json(&json!({"seconds": 1.5}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    // The kept-alive connection was cut, and a new one is refused.
    let e = versions(&http).expect_err("down");
    assert!(e.is_connect() || e.is_request(), "{e}");
    let e = versions(&Client::new()).expect_err("down");
    assert!(e.is_connect(), "refused, not {e}");
    while started.elapsed() < Duration::from_millis(2500) {
        if versions(&Client::new()).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let back = started.elapsed();
    assert!(
        back >= Duration::from_millis(1400),
        "up again too soon: {back:?}"
    );
    assert!(
        versions(&http).unwrap().status().is_success(),
        "up again in {back:?}"
    );
}
