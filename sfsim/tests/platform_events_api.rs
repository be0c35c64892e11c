//! Platform events over the Pub/Sub API, through the generated tonic client
//! against a running sfsim: topics and schemas, Publish and PublishStream
//! with per-event results, limits, the hourly allocation, REST publishing,
//! replay, and orgs kept apart.

mod common;

use apache_avro::types::Value as Avro;
use apache_avro::Schema as AvroSchema;
use base64::Engine;
use common::{Org, V};
use eventbus::pub_sub_client::PubSubClient;
use eventbus::tonic::metadata::MetadataValue;
use eventbus::tonic::transport::Channel;
use eventbus::tonic::{Code, Request, Status, Streaming};
use eventbus::{
    ErrorCode, FetchRequest, FetchResponse, ProducerEvent, PublishRequest, PublishResponse,
    ReplayPreset, SchemaRequest, TopicRequest,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sfsim::server::Options;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const WAIT: Duration = Duration::from_secs(10);
const SIGNUP: &str = "/event/Signup__e";

struct Events {
    org: Org,
    rt: Runtime,
    client: PubSubClient<Channel>,
}

struct Sub {
    _requests: mpsc::Sender<FetchRequest>,
    responses: Streaming<FetchResponse>,
}

/// A delivered event: its payload as JSON, id and replay id.
#[derive(Debug)]
struct Got {
    fields: Value,
    id: String,
    replay_id: Vec<u8>,
}

fn options() -> Options {
    Options {
        token_lifetime_secs: 60 * 24 * 3600,
        pubsub_keepalive: Duration::from_secs(60),
        ..Options::demo_with_pubsub()
    }
}

impl Events {
    fn start() -> Events {
        Events::with(options())
    }

    fn with(options: Options) -> Events {
        let org = Org::start(options);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let url = org.server.pubsub_url.clone().unwrap();
        let client = rt.block_on(PubSubClient::connect(url)).unwrap();
        Events { org, rt, client }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let tenant = self.org.server.sim.org.read().org_id.clone();
        request_for(&self.org.token, &self.org.server.base_url, &tenant, message)
    }

    fn get_topic(&self, name: &str) -> Result<eventbus::TopicInfo, Status> {
        let mut client = self.client.clone();
        let r = self.request(TopicRequest {
            topic_name: name.into(),
        });
        self.rt
            .block_on(client.get_topic(r))
            .map(|r| r.into_inner())
    }

    fn schema(&self, id: &str) -> AvroSchema {
        let mut client = self.client.clone();
        let r = self.request(SchemaRequest {
            schema_id: id.into(),
        });
        let json = self
            .rt
            .block_on(client.get_schema(r))
            .unwrap()
            .into_inner()
            .schema_json;
        AvroSchema::parse_str(&json).unwrap()
    }

    fn signup_schema_id(&self) -> String {
        self.get_topic(SIGNUP).unwrap().schema_id
    }

    /// A Signup__e payload written with the topic's schema.
    fn signup(&self, email: &str, seats: f64) -> Vec<u8> {
        let schema = self.schema(&self.signup_schema_id());
        let record = Avro::Record(vec![
            ("CreatedDate".into(), Avro::Long(1)),
            (
                "CreatedById".into(),
                Avro::String("005000000000000AAA".into()),
            ),
            (
                "Email__c".into(),
                Avro::Union(1, Box::new(Avro::String(email.into()))),
            ),
            ("User_Id__c".into(), Avro::Union(0, Box::new(Avro::Null))),
            (
                "Seats__c".into(),
                Avro::Union(1, Box::new(Avro::Double(seats))),
            ),
        ]);
        apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(record)
            .unwrap()
    }

    fn event(&self, id: &str, payload: Vec<u8>) -> ProducerEvent {
        ProducerEvent {
            id: id.into(),
            schema_id: self.signup_schema_id(),
            payload,
            headers: vec![],
        }
    }

    fn publish(&self, topic: &str, events: Vec<ProducerEvent>) -> Result<PublishResponse, Status> {
        let mut client = self.client.clone();
        let r = self.request(PublishRequest {
            topic_name: topic.into(),
            events,
            auth_refresh: String::new(),
        });
        self.rt.block_on(client.publish(r)).map(|r| r.into_inner())
    }

    fn subscribe(&self, topic: &str, preset: ReplayPreset, replay_id: &[u8]) -> Sub {
        let (requests, rx) = mpsc::channel(4);
        requests
            .try_send(FetchRequest {
                topic_name: topic.into(),
                replay_preset: preset as i32,
                replay_id: replay_id.to_vec(),
                num_requested: 100,
                auth_refresh: String::new(),
            })
            .unwrap();
        let mut client = self.client.clone();
        let responses = self
            .rt
            .block_on(client.subscribe(self.request(ReceiverStream::new(rx))))
            .unwrap()
            .into_inner();
        Sub {
            _requests: requests,
            responses,
        }
    }

    fn events(&self, sub: &mut Sub, n: usize) -> Vec<Got> {
        let mut out = Vec::new();
        while out.len() < n {
            let r = self.rt.block_on(async {
                tokio::time::timeout(WAIT, sub.responses.message())
                    .await
                    .expect("a response in time")
                    .unwrap()
                    .unwrap()
            });
            for e in r.events {
                let event = e.event.unwrap();
                let schema = self.schema(&event.schema_id);
                let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
                    .build()
                    .and_then(|reader| reader.read_value(&mut event.payload.as_slice()))
                    .unwrap();
                out.push(Got {
                    fields: Value::try_from(value).unwrap(),
                    id: event.id,
                    replay_id: e.replay_id,
                });
            }
        }
        assert_eq!(out.len(), n, "more events than expected");
        out
    }

    fn quiet(&self, sub: &mut Sub) {
        let got = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(300), sub.responses.message()).await
        });
        if let Ok(r) = got {
            assert!(r.unwrap().unwrap().events.is_empty(), "unexpected events");
        }
    }

    /// What the control API says was published on Signup__e.
    fn published(&self) -> Vec<Value> {
        self.org
            .control(Method::GET, "events/Signup__e", Value::Null)["events"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn admin_id(&self) -> String {
        self.org.server.sim.org.read().admin_user_id.clone()
    }
}

fn request_for<T>(token: &str, base_url: &str, tenant: &str, message: T) -> Request<T> {
    let mut r = Request::new(message);
    let m = r.metadata_mut();
    m.insert(
        eventbus::ACCESS_TOKEN,
        MetadataValue::try_from(token).unwrap(),
    );
    m.insert(
        eventbus::INSTANCE_URL,
        MetadataValue::try_from(base_url).unwrap(),
    );
    m.insert(
        eventbus::TENANT_ID,
        MetadataValue::try_from(tenant).unwrap(),
    );
    r
}

fn error_code(status: &Status) -> &str {
    status
        .metadata()
        .get(eventbus::ERROR_CODE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn topics_publish_and_subscribe_only_where_salesforce_allows() {
    let ev = Events::start();
    let topic = ev.get_topic(SIGNUP).unwrap();
    assert!(topic.can_publish && topic.can_subscribe);
    assert_eq!(topic.topic_name, SIGNUP);
    assert_eq!(topic.schema_id.len(), 22);
    let schema: Value =
        serde_json::from_str(&ev.schema(&topic.schema_id).canonical_form()).unwrap();
    let names: Vec<&str> = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CreatedDate",
            "CreatedById",
            "Email__c",
            "User_Id__c",
            "Seats__c"
        ]
    );
    assert_eq!(schema["fields"][0]["type"], "long");
    assert_eq!(schema["fields"][4]["type"], json!(["null", "double"]));
    assert_ne!(
        ev.get_topic("/event/Payment__e").unwrap().schema_id,
        topic.schema_id
    );

    assert!(
        !ev.get_topic("/data/AccountChangeEvent")
            .unwrap()
            .can_publish
    );
    let refused = ev
        .publish(
            "/data/AccountChangeEvent",
            vec![ev.event("a", ev.signup("x@y.example", 1.0))],
        )
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(
        error_code(&refused),
        "sfdc.platform.eventbus.grpc.topic.permission.denied"
    );
    let refused = ev.publish("/data/ChangeEvents", vec![]).unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(
        ev.publish("/event/Nope__e", vec![]).unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        ev.get_topic("/event/Nope__e").unwrap_err().code(),
        Code::NotFound
    );
}

#[test]
fn a_published_event_reaches_each_subscriber_once_with_its_payload() {
    let ev = Events::start();
    ev.org
        .control(Method::POST, "cdc", json!({"objects": ["Account"]}));
    let mut sub = ev.subscribe(SIGNUP, ReplayPreset::Latest, &[]);
    let mut changes = ev.subscribe("/data/ChangeEvents", ReplayPreset::Latest, &[]);
    let mut payments = ev.subscribe("/event/Payment__e", ReplayPreset::Latest, &[]);
    let answer = ev
        .publish(
            SIGNUP,
            vec![
                ev.event("first", ev.signup("ada@example.com", 3.0)),
                ev.event("second", ev.signup("bob@example.com", 5.0)),
            ],
        )
        .unwrap();
    assert_eq!(answer.schema_id, ev.signup_schema_id());
    let keys: Vec<&str> = answer
        .results
        .iter()
        .map(|r| r.correlation_key.as_str())
        .collect();
    assert_eq!(keys, ["first", "second"]);
    assert!(answer
        .results
        .iter()
        .all(|r| r.error.is_none() && r.replay_id.len() == 8));
    assert!(answer.results[0].replay_id < answer.results[1].replay_id);

    let got = ev.events(&mut sub, 2);
    assert_eq!(got[0].fields["Email__c"], "ada@example.com");
    assert_eq!(got[0].fields["Seats__c"], 3.0);
    assert_eq!(got[1].fields["Email__c"], "bob@example.com");
    assert_eq!(got[0].fields["User_Id__c"], Value::Null);
    assert_eq!(got[0].replay_id, answer.results[0].replay_id);
    // Salesforce sets the system fields: the publishing user and the publish time.
    assert_eq!(got[0].fields["CreatedById"], ev.admin_id());
    assert!(got[0].fields["CreatedDate"].as_i64().unwrap() > 1_000_000_000_000);
    ev.quiet(&mut sub);
    ev.quiet(&mut changes);
    ev.quiet(&mut payments);

    let published = ev.published();
    assert_eq!(published.len(), 2);
    assert_eq!(published[0]["deliveries"], 1, "one subscriber, once");
    assert_eq!(published[0]["replay_id"], b64(&answer.results[0].replay_id));
    assert_eq!(published[0]["event_uuid"], got[0].id);
    assert_eq!(published[1]["payload"]["Email__c"], "bob@example.com");
    assert_eq!(published[1]["payload"]["Seats__c"], 5.0);
}

#[test]
fn each_event_succeeds_or_fails_on_its_own() {
    let ev = Events::start();
    let mut wrong_schema = ev.event("wrong-schema", ev.signup("c@example.com", 1.0));
    wrong_schema.schema_id = ev.get_topic("/event/Payment__e").unwrap().schema_id;
    let mut unknown_schema = ev.event("unknown-schema", ev.signup("d@example.com", 1.0));
    unknown_schema.schema_id = "AAAAAAAAAAAAAAAAAAAAAA".into();
    let mut padded = ev.signup("e@example.com", 1.0);
    padded.push(7);
    let answer = ev
        .publish(
            SIGNUP,
            vec![
                ev.event("good", ev.signup("a@example.com", 1.0)),
                ev.event("garbage", vec![0xff, 0xff, 0xff]),
                wrong_schema,
                unknown_schema,
                ev.event("trailing", padded),
                ev.event("huge", vec![0; 1024 * 1024 + 1]),
                ev.event("good-too", ev.signup("b@example.com", 2.0)),
            ],
        )
        .unwrap();
    let outcome: Vec<(&str, bool)> = answer
        .results
        .iter()
        .map(|r| (r.correlation_key.as_str(), r.error.is_none()))
        .collect();
    assert_eq!(
        outcome,
        [
            ("good", true),
            ("garbage", false),
            ("wrong-schema", false),
            ("unknown-schema", false),
            ("trailing", false),
            ("huge", false),
            ("good-too", true)
        ]
    );
    for r in answer.results.iter().filter(|r| r.error.is_some()) {
        let e = r.error.as_ref().unwrap();
        assert_eq!(e.code, ErrorCode::Publish as i32);
        assert!(!e.msg.is_empty());
        assert!(r.replay_id.is_empty());
    }
    let published: Vec<Value> = ev
        .published()
        .iter()
        .map(|e| e["payload"]["Email__c"].clone())
        .collect();
    assert_eq!(published, [json!("a@example.com"), json!("b@example.com")]);
}

#[test]
fn a_request_over_three_megabytes_is_refused_whole() {
    let ev = Events::start();
    let big: Vec<ProducerEvent> = (0..4)
        .map(|i| ev.event(&format!("e{i}"), vec![0; 900 * 1024]))
        .collect();
    let refused = ev.publish(SIGNUP, big).unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        error_code(&refused),
        "sfdc.platform.eventbus.grpc.publish.request.too.large"
    );
    assert!(ev.published().is_empty());
}

#[test]
fn publish_stream_answers_every_request() {
    let ev = Events::start();
    let mut sub = ev.subscribe(SIGNUP, ReplayPreset::Latest, &[]);
    let (tx, rx) = mpsc::channel(4);
    let mut client = ev.client.clone();
    let mut responses = ev
        .rt
        .block_on(client.publish_stream(ev.request(ReceiverStream::new(rx))))
        .unwrap()
        .into_inner();
    let next = |responses: &mut Streaming<PublishResponse>| {
        ev.rt.block_on(async {
            tokio::time::timeout(WAIT, responses.message())
                .await
                .expect("a response in time")
        })
    };
    for (i, email) in ["one@example.com", "two@example.com"].iter().enumerate() {
        let topic_name = if i == 0 {
            SIGNUP.to_string()
        } else {
            String::new()
        };
        tx.try_send(PublishRequest {
            topic_name,
            events: vec![ev.event(&format!("k{i}"), ev.signup(email, 1.0))],
            auth_refresh: String::new(),
        })
        .unwrap();
        let r = next(&mut responses).unwrap().unwrap();
        assert_eq!(r.results.len(), 1);
        assert_eq!(r.results[0].correlation_key, format!("k{i}"));
        assert!(r.results[0].error.is_none());
    }
    let got = ev.events(&mut sub, 2);
    assert_eq!(got[1].fields["Email__c"], "two@example.com");
    tx.try_send(PublishRequest {
        topic_name: "/event/Payment__e".into(),
        events: vec![],
        auth_refresh: String::new(),
    })
    .unwrap();
    let ended = next(&mut responses).unwrap_err();
    assert_eq!(ended.code(), Code::InvalidArgument);
    assert_eq!(ev.published().len(), 2);
}

#[test]
fn past_the_hourly_allocation_each_event_fails_with_limit_exceeded() {
    let ev = Events::start();
    let limits: Value = ev.org.get(&format!("{V}/limits")).json().unwrap();
    assert_eq!(limits["HourlyPublishedPlatformEvents"]["Max"], 50_000);
    ev.org.control(
        Method::PATCH,
        "settings",
        json!({"platform_event_hourly_publish_limit": 2}),
    );
    let events = (0..3)
        .map(|i| ev.event(&format!("e{i}"), ev.signup("a@example.com", 1.0)))
        .collect();
    let answer = ev.publish(SIGNUP, events).unwrap();
    assert!(answer.results[0].error.is_none() && answer.results[1].error.is_none());
    let third = answer.results[2]
        .error
        .as_ref()
        .expect("over the allocation");
    assert!(third.msg.starts_with("LIMIT_EXCEEDED"), "{}", third.msg);
    let limits: Value = ev.org.get(&format!("{V}/limits")).json().unwrap();
    assert_eq!(
        limits["HourlyPublishedPlatformEvents"],
        json!({"Max": 2, "Remaining": 0})
    );
    let r = ev.org.send(
        Method::POST,
        &format!("{V}/sobjects/Signup__e"),
        json!({"Email__c": "x@example.com"}),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().unwrap()[0]["errorCode"], "LIMIT_EXCEEDED");
    ev.org.advance_clock(3601);
    let answer = ev
        .publish(
            SIGNUP,
            vec![ev.event("later", ev.signup("a@example.com", 1.0))],
        )
        .unwrap();
    assert!(
        answer.results[0].error.is_none(),
        "an hour later it is back"
    );
}

#[test]
fn events_published_over_rest_reach_subscribers() {
    let ev = Events::start();
    let mut sub = ev.subscribe(SIGNUP, ReplayPreset::Latest, &[]);
    let r = ev.org.send(
        Method::POST,
        &format!("{V}/sobjects/Signup__e"),
        json!({"Email__c": "rest@example.com", "User_Id__c": "u-1", "Seats__c": 4}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().unwrap();
    assert_eq!(body["success"], true);
    assert!(body["id"].as_str().unwrap().starts_with("e00"));
    assert_eq!(body["errors"][0]["statusCode"], "OPERATION_ENQUEUED");
    let got = ev.events(&mut sub, 1);
    assert_eq!(got[0].fields["Email__c"], "rest@example.com");
    assert_eq!(got[0].fields["User_Id__c"], "u-1");
    assert_eq!(got[0].fields["Seats__c"], 4.0);
    assert_eq!(got[0].id, body["errors"][0]["message"]);

    let r = ev.org.send(
        Method::POST,
        &format!("{V}/composite/sobjects"),
        json!({"records": [
            {"attributes": {"type": "Signup__e"}, "Email__c": "c1@example.com"},
            {"attributes": {"type": "Signup__e"}, "Nope__c": 1},
            {"attributes": {"type": "Payment__e"}, "Amount__c": 9.5, "Currency__c": "EUR"}
        ]}),
    );
    let results: Value = r.json().unwrap();
    assert_eq!(results[0]["success"], true);
    assert_eq!(results[1]["success"], false);
    assert_eq!(results[1]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(results[2]["success"], true);
    let got = ev.events(&mut sub, 1);
    assert_eq!(got[0].fields["Email__c"], "c1@example.com");
    ev.quiet(&mut sub);

    let published = ev.org.control(
        Method::POST,
        "events/Signup__e",
        json!({"Email__c": "flow@example.com"}),
    );
    let got = ev.events(&mut sub, 1);
    assert_eq!(got[0].fields["Email__c"], "flow@example.com");
    assert_eq!(published["event_uuid"], got[0].id);
    assert_eq!(published["replay_id"], b64(&got[0].replay_id));
    assert_eq!(ev.published().last().unwrap()["deliveries"], 1);

    let r = ev.org.send(
        Method::POST,
        &format!("{V}/sobjects/Signup__e"),
        json!({"Seats__c": "many"}),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = ev.org.send(
        Method::POST,
        &format!("{V}/sobjects/Signup__e"),
        json!({"ReplayId": "1"}),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(ev.published().len(), 3);
}

#[test]
fn describe_lists_events_as_salesforce_does() {
    let ev = Events::start();
    let global: Value = ev.org.get(&format!("{V}/sobjects")).json().unwrap();
    let signup = global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Signup__e")
        .expect("listed")
        .clone();
    assert_eq!(signup["queryable"], false);
    assert_eq!(signup["createable"], true);
    assert_eq!(signup["triggerable"], true);
    let d: Value = ev
        .org
        .get(&format!("{V}/sobjects/Signup__e/describe"))
        .json()
        .unwrap();
    let fields: Vec<&str> = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "ReplayId",
            "CreatedDate",
            "CreatedById",
            "EventUuid",
            "Email__c",
            "User_Id__c",
            "Seats__c"
        ]
    );
    let r = ev.org.get(&format!("{V}/query?q=SELECT+Id+FROM+Signup__e"));
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "events are not queryable"
    );
    let schema: Value = ev
        .org
        .get(&format!("{V}/sobjects/Signup__e/eventSchema"))
        .json()
        .unwrap();
    assert_eq!(schema["uuid"], ev.signup_schema_id());
}

#[test]
fn replay_presets_work_on_event_topics() {
    let ev = Events::start();
    let answer = ev
        .publish(
            SIGNUP,
            (0..3)
                .map(|i| {
                    ev.event(
                        &format!("e{i}"),
                        ev.signup(&format!("{i}@example.com"), 1.0),
                    )
                })
                .collect(),
        )
        .unwrap();
    let mut earliest = ev.subscribe(SIGNUP, ReplayPreset::Earliest, &[]);
    assert_eq!(
        ev.events(&mut earliest, 3)[2].fields["Email__c"],
        "2@example.com"
    );
    let mut custom = ev.subscribe(SIGNUP, ReplayPreset::Custom, &answer.results[0].replay_id);
    let after = ev.events(&mut custom, 2);
    assert_eq!(after[0].fields["Email__c"], "1@example.com");
    let mut latest = ev.subscribe(SIGNUP, ReplayPreset::Latest, &[]);
    ev.quiet(&mut latest);
    ev.publish(
        SIGNUP,
        vec![ev.event("new", ev.signup("new@example.com", 1.0))],
    )
    .unwrap();
    assert_eq!(
        ev.events(&mut latest, 1)[0].fields["Email__c"],
        "new@example.com"
    );
    assert_eq!(
        ev.published()[3]["deliveries"],
        3,
        "earliest, custom and latest"
    );
    // Kept 72 hours.
    ev.org.advance_clock(73 * 3600);
    let mut late = ev.subscribe(SIGNUP, ReplayPreset::Earliest, &[]);
    ev.quiet(&mut late);
    assert!(ev.published().is_empty());
}

#[test]
fn events_never_cross_orgs() {
    let ev = Events::with(Options {
        orgs: 2,
        ..options()
    });
    let org2 = ev.org.server.orgs.get(2).unwrap().clone();
    let token2 = common::token(
        &ev.org.http,
        &ev.org.server.base_url,
        "admin@org2.sfsim.example",
    );
    let tenant2 = org2.org.read().org_id.clone();
    let mut sub1 = ev.subscribe(SIGNUP, ReplayPreset::Latest, &[]);
    let mut client = ev.client.clone();
    let publish = request_for(
        &token2,
        &ev.org.server.base_url,
        &tenant2,
        PublishRequest {
            topic_name: SIGNUP.into(),
            events: vec![ev.event("org2", ev.signup("two@example.com", 1.0))],
            auth_refresh: String::new(),
        },
    );
    let answer = ev
        .rt
        .block_on(client.publish(publish))
        .unwrap()
        .into_inner();
    assert!(answer.results[0].error.is_none());
    ev.quiet(&mut sub1);
    assert!(ev.published().is_empty(), "org 1 has none");
    let org2_events = ev
        .org
        .control(Method::GET, "orgs/2/events/Signup__e", Value::Null);
    assert_eq!(org2_events["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        org2_events["events"][0]["payload"]["CreatedById"],
        *org2.org.read().admin_user_id
    );
    // Org 1's token cannot publish into org 2.
    let mut client = ev.client.clone();
    let crossing = request_for(
        &ev.org.token,
        &ev.org.server.base_url,
        &tenant2,
        PublishRequest {
            topic_name: SIGNUP.into(),
            events: vec![],
            auth_refresh: String::new(),
        },
    );
    assert_eq!(
        ev.rt.block_on(client.publish(crossing)).unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[test]
fn an_unanswered_publish_puts_its_events_on_the_bus_and_never_answers() {
    let e = Events::start();
    e.org.control(
        Method::POST,
        "faults/publish_unanswered",
        json!({"count": 1}),
    );
    let payload = e.signup("lost-answer@example.com", 1.0);
    let mut client = e.client.clone();
    let request = e.request(PublishRequest {
        topic_name: SIGNUP.into(),
        events: vec![e.event("k1", payload.clone())],
        auth_refresh: String::new(),
    });
    let answered = e.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), client.publish(request)).await
    });
    assert!(answered.is_err(), "the call was answered: {answered:?}");
    let published = e.published();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        published[0]["payload"]["Email__c"],
        "lost-answer@example.com"
    );
    // Used up: the next call answers.
    let again = e.publish(SIGNUP, vec![e.event("k2", payload)]).unwrap();
    assert!(again.results[0].error.is_none());
}
