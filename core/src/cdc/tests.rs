//! Subscriptions against sfsim's Pub/Sub API: REST writes arrive as change
//! events shaped as REST reads them; replay, flow control, keepalives,
//! faults and failures.

use super::*;
use crate::client::auth::{self, Token};
use crate::client::composite::tests::{admin_grant, session_at};
use crate::client::http;
use crate::client::session::Session;
use crate::client::SalesforceError;
use serde_json::{json, Value};
use sfsim::server::{spawn, Options, Running};
use std::collections::BTreeSet;
use std::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

fn never() -> bool {
    false
}

struct Org {
    sim: Running,
    token: Token,
    session: Session,
}

impl Org {
    /// The demo org with these objects selected for Change Data Capture.
    fn start(objects: &[&str]) -> Org {
        Org::with_keepalive(Duration::from_secs(60), objects)
    }

    fn with_keepalive(keepalive: Duration, objects: &[&str]) -> Org {
        let sim = spawn(Options {
            // Outlives moving the clock past the events' retention.
            token_lifetime_secs: 30 * 24 * 3600,
            pubsub_keepalive: keepalive,
            ..Options::demo_with_pubsub()
        })
        .unwrap();
        sim.sim
            .pubsub
            .state()
            .selected
            .extend(objects.iter().map(|o| o.to_string()));
        let token = auth::login(
            &reqwest::Client::new(),
            &sim.base_url,
            None,
            &admin_grant(),
            never,
        )
        .unwrap();
        let session = session_at(&sim.base_url);
        Org {
            sim,
            token,
            session,
        }
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

    fn subscribe(&self, topic: &str, replay: Replay) -> Subscription {
        Subscription::open(self.config(topic, replay)).unwrap()
    }

    fn create(&mut self, object: &str, fields: Value) -> String {
        let mut record = json!({"attributes": {"type": object}});
        record
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let results = self.session.create(vec![record]).unwrap();
        results[0].id.clone().unwrap()
    }

    fn update(&mut self, object: &str, ids: &[&str], fields: Value) {
        let records = ids
            .iter()
            .map(|id| {
                let mut record = json!({"attributes": {"type": object}, "id": id});
                record
                    .as_object_mut()
                    .unwrap()
                    .extend(fields.as_object().unwrap().clone());
                record
            })
            .collect();
        assert!(self.session.update(records).unwrap()[0].success);
    }

    /// A control API call, as an admin acting in the UI.
    fn control(&self, path: &str) {
        let url = format!("{}/__sim/{path}", self.sim.base_url);
        let answer = http::wait(reqwest::Client::new().post(url).send(), never)
            .unwrap()
            .unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
    }

    /// What REST reads for the record's fields.
    fn read(
        &mut self,
        object: &str,
        id: &str,
        fields: &[String],
    ) -> serde_json::Map<String, Value> {
        let fields: Vec<String> = fields.to_vec();
        self.session
            .retrieve(object, &[id.to_string()], &fields)
            .unwrap()
            .remove(0)
            .unwrap()
    }
}

/// The next `n` events, past keepalives.
fn events(sub: &mut Subscription, n: usize) -> Vec<ChangeEvent> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{} of {n} events in {WAIT:?}", out.len());
        if let Some(StreamItem::Events { events, .. }) = sub.next(left).unwrap() {
            out.extend(events);
        }
    }
    assert_eq!(out.len(), n, "more events than expected");
    out
}

fn one(sub: &mut Subscription) -> ChangeEvent {
    events(sub, 1).remove(0)
}

/// Asserts that no event arrives for a while.
fn quiet(sub: &mut Subscription) {
    let until = Instant::now() + Duration::from_millis(400);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Some(StreamItem::Events { events, .. }) = sub.next(left).unwrap() {
            panic!("unexpected events: {events:?}");
        }
    }
}

/// How the stream fails, past anything it delivers first.
fn failure(sub: &mut Subscription) -> SalesforceError {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the stream did not fail in {WAIT:?}");
        if let Err(e) = sub.next(left) {
            return e;
        }
    }
}

fn names(event: &ChangeEvent) -> BTreeSet<&str> {
    event.fields.iter().map(String::as_str).collect()
}

/// JSON values equal as REST would compare them: numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The event's values are what REST reads for the same fields.
fn assert_as_rest(org: &mut Org, event: &ChangeEvent) {
    let rest = org.read(&event.entity, &event.record_ids[0], &event.fields);
    for field in &event.fields {
        assert!(
            same(&event.values[field], &rest[field]),
            "{field}: event {} REST {}",
            event.values[field],
            rest[field]
        );
    }
    assert_eq!(event.values.len(), event.fields.len());
}

#[test]
fn creates_carry_every_value_as_rest_reads_it() {
    let mut org = Org::start(&["Account", "Contact", "Invoice__c"]);
    let mut sub = org.subscribe("/data/ChangeEvents", Replay::Latest);
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let account = org.create(
        "Account",
        json!({"Name": "Acme", "BillingCity": "Paris", "NumberOfEmployees": 12, "AnnualRevenue": 1500000.5}),
    );
    let created = one(&mut sub);
    assert_eq!(created.entity, "Account");
    assert_eq!(created.change_type, ChangeType::Create);
    assert_eq!(created.record_ids, [account.as_str()]);
    assert_eq!(created.sequence_number, 1);
    assert_eq!(created.transaction_key.len(), 36);
    assert_eq!(created.commit_user, org.sim.sim.org.read().admin_user_id);
    assert!(created.commit_timestamp > before);
    let fields = names(&created);
    for expected in [
        "Name",
        "BillingCity",
        "NumberOfEmployees",
        "AnnualRevenue",
        "CreatedDate",
        "OwnerId",
    ] {
        assert!(fields.contains(expected), "{expected} in {fields:?}");
    }
    for absent in ["BillingAddress", "BillingStreet", "Id", "SystemModstamp"] {
        assert!(!fields.contains(absent), "{absent}");
    }
    assert_eq!(created.values["BillingCity"], "Paris");
    assert_eq!(created.values["NumberOfEmployees"], 12);
    assert_as_rest(&mut org, &created);

    let invoice = org.create(
        "Invoice__c",
        json!({"Account__c": account, "Amount__c": 100.25, "Tax_Rate__c": 20, "Issued_On__c": "2024-02-06",
               "Paid__c": true, "Paid_At__c": "2024-02-06T20:48:32.250Z", "Status__c": "Paid",
               "Delivery_Location__Latitude__s": 48.85, "Delivery_Location__Longitude__s": 2.35}),
    );
    let created = one(&mut sub);
    assert_eq!(created.record_ids, [invoice.as_str()]);
    assert_eq!(created.values["Issued_On__c"], "2024-02-06");
    assert_eq!(created.values["Paid_At__c"], "2024-02-06T20:48:32.250+0000");
    assert_eq!(created.values["Paid__c"], true);
    assert_eq!(created.values["Delivery_Location__Latitude__s"], 48.85);
    assert!(!names(&created).contains("Delivery_Location__c"));
    assert_as_rest(&mut org, &created);

    org.create(
        "Contact",
        json!({"FirstName": "Ada", "LastName": "Ng", "Birthdate": "1990-05-17", "Preferred_Call_Time__c": "09:30:00.000Z"}),
    );
    let person = one(&mut sub);
    assert_eq!(person.values["FirstName"], "Ada");
    assert_eq!(person.values["LastName"], "Ng");
    assert_eq!(person.values["Preferred_Call_Time__c"], "09:30:00.000Z");
    assert!(
        !names(&person).contains("Name"),
        "the compound Name is its parts"
    );
    assert_as_rest(&mut org, &person);
}

#[test]
fn updates_carry_what_changed_and_deletes_nothing() {
    let mut org = Org::start(&["Account", "Contact"]);
    let id = org.create(
        "Account",
        json!({"Name": "Acme", "Phone": "555-0100", "BillingCity": "Paris", "BillingStreet": "1 Rue"}),
    );
    let mut sub = org.subscribe("/data/AccountChangeEvent", Replay::Latest);
    org.update(
        "Account",
        &[&id],
        json!({"Name": "Acme Corp", "BillingCity": "Lyon", "Phone": null}),
    );
    let updated = one(&mut sub);
    assert_eq!(updated.change_type, ChangeType::Update);
    assert_eq!(
        names(&updated),
        BTreeSet::from(["BillingCity", "LastModifiedDate", "Name", "Phone"])
    );
    assert_eq!(updated.values["Name"], "Acme Corp");
    assert_eq!(updated.values["BillingCity"], "Lyon");
    assert_eq!(updated.values["Phone"], Value::Null, "nulled");
    assert_as_rest(&mut org, &updated);

    // Nulling every component nulls the whole address.
    org.update(
        "Account",
        &[&id],
        json!({"BillingCity": null, "BillingStreet": null}),
    );
    let nulled = one(&mut sub);
    for component in [
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
    ] {
        assert_eq!(
            nulled.values.get(component),
            Some(&Value::Null),
            "{component}"
        );
    }
    assert!(names(&nulled).contains("LastModifiedDate"));

    org.session.delete(std::slice::from_ref(&id)).unwrap();
    let deleted = one(&mut sub);
    assert_eq!(deleted.change_type, ChangeType::Delete);
    assert_eq!(deleted.record_ids, [id.as_str()]);
    assert!(deleted.fields.is_empty() && deleted.values.is_empty());

    org.control(&format!("records/Account/{id}/undelete"));
    let undeleted = one(&mut sub);
    assert_eq!(undeleted.change_type, ChangeType::Undelete);
    assert_eq!(undeleted.values["Name"], "Acme Corp");
    assert!(!names(&undeleted).contains("Phone"));

    let mut contacts = org.subscribe("/data/ContactChangeEvent", Replay::Latest);
    let contact = org.create("Contact", json!({"FirstName": "Ada", "LastName": "Ng"}));
    one(&mut contacts);
    org.update("Contact", &[&contact], json!({"FirstName": "Grace"}));
    let renamed = one(&mut contacts);
    assert_eq!(
        names(&renamed),
        BTreeSet::from(["FirstName", "LastModifiedDate"])
    );
    assert_eq!(renamed.values["FirstName"], "Grace");
}

#[test]
fn identical_changes_merge_into_one_event() {
    let mut org = Org::start(&["Account"]);
    let ids: Vec<String> = (0..3)
        .map(|i| org.create("Account", json!({"Name": format!("M{i}")})))
        .collect();
    let mut sub = org.subscribe("/data/AccountChangeEvent", Replay::Latest);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    org.update("Account", &refs, json!({"Rating": "Hot"}));
    let merged = one(&mut sub);
    assert_eq!(merged.record_ids, ids);
    assert_eq!(merged.values["Rating"], "Hot");
    quiet(&mut sub);
}

#[test]
fn replay_resumes_after_an_id_and_refuses_expired_ones() {
    let mut org = Org::start(&["Account"]);
    for name in ["R0", "R1", "R2"] {
        org.create("Account", json!({"Name": name}));
    }
    let mut earliest = org.subscribe("/data/AccountChangeEvent", Replay::Earliest);
    let all = events(&mut earliest, 3);
    let mut after = org.subscribe(
        "/data/AccountChangeEvent",
        Replay::After(all[0].replay_id.clone()),
    );
    let resumed = events(&mut after, 2);
    assert_eq!(resumed[0].replay_id, all[1].replay_id);
    assert_eq!(resumed[1].values["Name"], "R2");
    quiet(&mut after);

    org.sim.sim.clock.advance(chrono::Duration::hours(73));
    let mut expired = org.subscribe(
        "/data/AccountChangeEvent",
        Replay::After(all[2].replay_id.clone()),
    );
    let refused = failure(&mut expired);
    assert_eq!(refused.api_code(), Some("REPLAY_ID_INVALID"), "{refused}");
    assert!(matches!(refused, SalesforceError::Api { status: 400, .. }));
    assert_eq!(failure(&mut expired), refused, "and again");
}

#[test]
fn refused_tokens_ask_for_a_new_one_without_showing_it() {
    let mut org = Org::start(&["Account"]);
    let bogus = "00Dbogus!AQ4AQ.secret-token";
    let config = StreamConfig {
        access_token: bogus.into(),
        ..org.config("/data/AccountChangeEvent", Replay::Latest)
    };
    let refused = Subscription::open(config).err().unwrap();
    assert!(refused.is_invalid_session(), "{refused:?}");
    assert!(!refused.to_string().contains(bogus));
    assert!(!format!("{refused:?}").contains(bogus));

    // A token that expires while the stream is open ends it the same way,
    // at its next event (the session logs in again for the write).
    let mut sub = org.subscribe("/data/AccountChangeEvent", Replay::Latest);
    org.control("tokens/expire");
    org.create("Account", json!({"Name": "After expiry"}));
    assert!(failure(&mut sub).is_invalid_session());
}

#[test]
fn failures_of_the_stream_are_retryable_network_errors() {
    let mut org = Org::start(&["Account"]);
    let mut sub = org.subscribe("/data/AccountChangeEvent", Replay::Latest);
    org.create("Account", json!({"Name": "Before drop"}));
    let seen = one(&mut sub);
    org.sim.sim.pubsub.drop_streams();
    let dropped = failure(&mut sub);
    assert!(
        matches!(dropped, SalesforceError::Network(_)),
        "{dropped:?}"
    );
    assert!(dropped.is_retryable());
    assert_eq!(sub.next(Duration::ZERO).unwrap_err(), dropped);
    org.create("Account", json!({"Name": "While away"}));
    let mut resumed = org.subscribe("/data/AccountChangeEvent", Replay::After(seen.replay_id));
    assert_eq!(one(&mut resumed).values["Name"], "While away");

    let unreachable = StreamConfig {
        pubsub_url: "http://127.0.0.1:9".into(),
        ..org.config("/data/AccountChangeEvent", Replay::Latest)
    };
    let started = Instant::now();
    let refused = Subscription::open(unreachable).err().unwrap();
    assert!(refused.is_retryable(), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[test]
fn unknown_topics_fail_the_first_read() {
    let org = Org::start(&["Account"]);
    let mut sub = org.subscribe("/data/NopeChangeEvent", Replay::Latest);
    let refused = failure(&mut sub);
    assert!(
        matches!(refused, SalesforceError::Api { status: 404, .. }),
        "{refused:?}"
    );
    let mut unselected = org.subscribe("/data/ContactChangeEvent", Replay::Latest);
    assert!(matches!(
        failure(&mut unselected),
        SalesforceError::Api { status: 403, .. }
    ));
}

#[test]
fn gap_and_overflow_events_name_what_to_read_again() {
    let mut org = Org::start(&["Account"]);
    let mut sub = org.subscribe("/data/ChangeEvents", Replay::Latest);
    org.sim
        .sim
        .pubsub
        .state()
        .faults
        .gaps
        .insert("Account".into(), 1);
    let id = org.create("Account", json!({"Name": "Gap"}));
    org.update("Account", &[&id], json!({"Name": "Gap 2"}));
    let got = events(&mut sub, 2);
    assert_eq!(got[0].change_type, ChangeType::GapCreate);
    assert_eq!(got[0].record_ids, [id.as_str()]);
    assert!(got[0].fields.is_empty());
    assert_eq!(got[1].change_type, ChangeType::Update);

    org.sim.sim.pubsub.state().faults.overflow = 1;
    org.session
        .create(vec![
            json!({"attributes": {"type": "Account"}, "Name": "O1"}),
            json!({"attributes": {"type": "Account"}, "Name": "O2"}),
        ])
        .unwrap();
    let overflow = one(&mut sub);
    assert_eq!(overflow.change_type, ChangeType::GapOverflow);
    assert_eq!(overflow.entity, "Account");
    assert!(overflow.record_ids.is_empty() && overflow.fields.is_empty());
    quiet(&mut sub);
    org.sim
        .sim
        .pubsub
        .state()
        .faults
        .gaps
        .insert("Account".into(), 1);
    org.update("Account", &[&id], json!({"Name": "Gap 3"}));
    assert_eq!(one(&mut sub).change_type, ChangeType::GapUpdate);
}

#[test]
fn idle_streams_report_keepalives() {
    let mut org = Org::with_keepalive(Duration::from_millis(200), &["Account"]);
    let mut sub = org.subscribe("/data/AccountChangeEvent", Replay::Latest);
    assert!(sub.next(Duration::ZERO).unwrap().is_none(), "nothing yet");
    let Some(StreamItem::Keepalive { latest_replay_id }) = sub.next(WAIT).unwrap() else {
        panic!("a keepalive");
    };
    assert_eq!(latest_replay_id.len(), 8);
    drop(sub);
    let mut resumed = org.subscribe("/data/AccountChangeEvent", Replay::After(latest_replay_id));
    org.create("Account", json!({"Name": "After a keepalive"}));
    assert_eq!(one(&mut resumed).values["Name"], "After a keepalive");
}

#[test]
fn small_batches_ask_for_more_until_every_event_came() {
    let mut org = Org::start(&["Account"]);
    for i in 0..5 {
        org.create("Account", json!({"Name": format!("F{i}")}));
    }
    let mut sub = Subscription::open(StreamConfig {
        batch: 2,
        ..org.config("/data/AccountChangeEvent", Replay::Earliest)
    })
    .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < 5 && Instant::now() < deadline {
        if let Some(StreamItem::Events { events, .. }) =
            sub.next(Duration::from_millis(100)).unwrap()
        {
            assert!(events.len() <= 2, "{} events at once", events.len());
            got.extend(events);
        }
    }
    let names: Vec<&str> = got
        .iter()
        .map(|e| e.values["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["F0", "F1", "F2", "F3", "F4"]);
}

#[test]
fn a_caller_that_falls_behind_stops_the_requests() {
    let mut org = Org::start(&["Account"]);
    let records = (0..30)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("B{i}")}))
        .collect();
    org.session.create(records).unwrap();
    let mut sub = Subscription::open(StreamConfig {
        batch: 1,
        ..org.config("/data/AccountChangeEvent", Replay::Earliest)
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let delivered = || {
        let now = org.sim.sim.clock.now();
        org.sim.sim.pubsub.state().deliveries.used(now)
    };
    assert!(
        delivered() <= 6,
        "{} delivered to a caller taking none",
        delivered()
    );
    assert_eq!(events(&mut sub, 30).len(), 30);
}

#[test]
fn dropping_ends_the_stream_promptly() {
    let org = Org::start(&["Account"]);
    let sub = org.subscribe("/data/AccountChangeEvent", Replay::Latest);
    let started = Instant::now();
    drop(sub);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + WAIT;
    while org.sim.sim.pubsub.streams() > 0 {
        assert!(
            Instant::now() < deadline,
            "the server still serves the stream"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn plaintext_goes_only_to_loopback() {
    let config = |url: &str| StreamConfig {
        pubsub_url: url.into(),
        topic: "/data/ChangeEvents".into(),
        access_token: "t".into(),
        instance_url: "https://acme.my.salesforce.com".into(),
        tenant_id: "00D000000000001AAA".into(),
        replay: Replay::Latest,
        batch: 100,
        timeout: Duration::from_secs(1),
    };
    for url in [
        "http://api.pubsub.salesforce.com:7443",
        "http://10.0.0.1:7443",
        "api.pubsub.salesforce.com:7443",
    ] {
        let refused = Subscription::open(config(url)).err().unwrap();
        assert!(
            matches!(refused, SalesforceError::Config(_)),
            "{url}: {refused:?}"
        );
    }
    let refused = Subscription::open(config("http://api.pubsub.salesforce.com:7443"))
        .err()
        .unwrap();
    assert!(refused.to_string().contains("loopback"), "{refused}");
}
