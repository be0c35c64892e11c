//! The publisher and reader against sfsim's Pub/Sub API.

use super::*;
use crate::cdc::{Replay, StreamConfig};
use crate::client::auth::{self, Token};
use crate::client::composite::tests::admin_grant;
use crate::client::SalesforceError;
use serde_json::{json, Map, Value};
use sfsim::server::{spawn, Options, Running};
use std::time::Duration;

struct Org {
    sim: Running,
    token: Token,
}

fn never() -> bool {
    false
}

impl Org {
    fn start() -> Org {
        let sim = spawn(Options {
            token_lifetime_secs: 30 * 24 * 3600,
            ..Options::demo_with_pubsub()
        })
        .unwrap();
        let token = auth::login(
            &reqwest::Client::new(),
            &sim.base_url,
            None,
            &admin_grant(),
            never,
        )
        .unwrap();
        Org { sim, token }
    }

    fn config(&self, topic: &str, replay: Replay) -> StreamConfig {
        StreamConfig {
            pubsub_url: self.sim.pubsub_url.clone().unwrap(),
            topic: topic.into(),
            access_token: self.token.access_token.clone(),
            instance_url: self.token.instance_url.clone(),
            tenant_id: self.sim.sim.org.read().org_id.clone(),
            replay,
            batch: 100,
            timeout: Duration::from_secs(5),
        }
    }

    fn admin(&self) -> String {
        self.sim.sim.org.read().admin_user_id.clone()
    }

    fn publisher(&self) -> Publisher {
        Publisher::connect(&self.config("", Replay::Latest), &self.admin()).unwrap()
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn published_events_come_back_in_order_with_their_payloads() {
    let org = Org::start();
    let mut publisher = org.publisher();
    let results = publisher
        .publish(
            "/event/Signup__e",
            &[
                obj(json!({"Email__c": "ada@example.com", "Seats__c": 3})),
                obj(json!({"Email__c": "x", "Nope__c": 1})),
                obj(json!({"Seats__c": "lots"})),
                obj(json!({"Email__c": "bob@example.com", "User_Id__c": "u-2"})),
                obj(json!({"User_Id__c": "x".repeat(65)})),
            ],
        )
        .unwrap();
    assert_eq!(results.len(), 5);
    assert!(results[0].as_ref().unwrap().len() == 8);
    let unknown = results[1].as_ref().unwrap_err();
    assert_eq!(
        (unknown.code.as_str(), unknown.field.as_deref()),
        ("ENCODE", Some("Nope__c"))
    );
    assert_eq!(
        results[2].as_ref().unwrap_err().field.as_deref(),
        Some("Seats__c")
    );
    assert!(results[3].is_ok());
    // Too long for the field: the server refuses that event alone.
    assert_eq!(results[4].as_ref().unwrap_err().code, "PUBLISH");

    let (events, latest) = read(
        &org.config("/event/Signup__e", Replay::Earliest),
        10,
        Duration::from_millis(800),
    )
    .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].fields["Email__c"], "ada@example.com");
    assert_eq!(events[0].fields["Seats__c"], 3.0);
    assert_eq!(events[0].fields["CreatedById"], org.admin());
    assert_eq!(events[1].fields["User_Id__c"], "u-2");
    assert_eq!(&events[0].replay_id, results[0].as_ref().unwrap());
    assert_eq!(latest, events[1].replay_id);
    let (after, _) = read(
        &org.config(
            "/event/Signup__e",
            Replay::After(events[0].replay_id.clone()),
        ),
        10,
        Duration::from_millis(500),
    )
    .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].event_uuid, events[1].event_uuid);
}

#[test]
fn many_events_go_in_several_calls_within_the_limits() {
    let org = Org::start();
    let mut publisher = org.publisher();
    let events: Vec<Map<String, Value>> = (0..450)
        .map(|i| obj(json!({"Email__c": format!("{i}@example.com")})))
        .collect();
    let results = publisher.publish("/event/Signup__e", &events).unwrap();
    assert!(results.iter().all(Result::is_ok));
    let replay_ids: Vec<&Vec<u8>> = results.iter().map(|r| r.as_ref().unwrap()).collect();
    assert!(
        replay_ids.windows(2).all(|w| w[0] < w[1]),
        "results in input order"
    );
    let calls = org
        .sim
        .sim
        .log
        .lock()
        .since(0)
        .iter()
        .filter(|e| e.path.ends_with("/Publish"))
        .count();
    assert_eq!(calls, 3, "200 + 200 + 50");
}

#[test]
fn change_event_topics_cannot_be_published_on() {
    let org = Org::start();
    let mut publisher = org.publisher();
    let e = publisher
        .publish("/data/AccountChangeEvent", &[obj(json!({}))])
        .unwrap_err();
    match e {
        SalesforceError::Api {
            status, message, ..
        } => {
            assert_eq!(status, 403);
            assert!(message.contains("not publishable"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let e = publisher.publish("/event/Nope__e", &[]).unwrap_err();
    assert!(
        matches!(e, SalesforceError::Api { status: 404, .. }),
        "{e:?}"
    );
}

#[test]
fn over_the_hourly_allocation_events_fail_one_by_one() {
    let org = Org::start();
    org.sim.sim.pubsub.state().published.limit = 1;
    let mut publisher = org.publisher();
    let results = publisher
        .publish(
            "/event/Payment__e",
            &[
                obj(json!({"Amount__c": 9.5, "Currency__c": "EUR"})),
                obj(json!({"Amount__c": 1, "Currency__c": "USD"})),
            ],
        )
        .unwrap();
    assert!(results[0].is_ok());
    let refused = results[1].as_ref().unwrap_err();
    assert!(
        refused.message.starts_with("LIMIT_EXCEEDED"),
        "{}",
        refused.message
    );
}

#[test]
fn events_whose_publish_never_answered_are_found_on_the_bus_by_their_fields() {
    let org = Org::start();
    let mut publisher = org.publisher();
    let topic = "/event/Signup__e";
    let email = |e: &str| obj(json!({ "Email__c": e }));
    let before = publisher
        .publish(topic, &[email("before@example.com")])
        .unwrap();
    let anchor = before[0].clone().unwrap();
    let sent = [
        obj(json!({"Email__c": "seats@example.com", "Seats__c": 3})),
        email("twice@example.com"),
        email("twice@example.com"),
    ];
    assert!(publisher
        .publish(topic, &sent)
        .unwrap()
        .iter()
        .all(Result::is_ok));
    publisher
        .publish(topic, &[email("later@example.com")])
        .unwrap();
    let wanted = [
        obj(json!({"Email__c": "seats@example.com", "Seats__c": 3.0})),
        email("twice@example.com"),
        email("twice@example.com"),
        email("twice@example.com"),
        email("never@example.com"),
        email("before@example.com"),
        obj(json!({"Nope__c": 1})),
    ];
    let config = org.config(topic, Replay::Latest);
    let found = look_back(&config, &mut publisher, Some(anchor), &wanted).unwrap();
    assert!(found[..3].iter().all(Option::is_some), "{found:?}");
    assert_ne!(found[1], found[2], "each event matches one");
    assert_eq!(found[3], None, "two on the bus match two");
    assert_eq!(found[4], None, "never published");
    assert_eq!(found[5], None, "before the replay id: not looked at");
    assert_eq!(found[6], None, "cannot be encoded: never published");
    let from_start = look_back(&config, &mut publisher, None, &wanted[5..6]).unwrap();
    assert!(from_start[0].is_some(), "from the earliest event");
}
