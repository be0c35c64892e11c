//! Change Data Capture over the Pub/Sub API, through the generated tonic
//! client against a running sfsim: authentication, topics and schemas,
//! events from every write path, flow control, replay, retention, faults.

mod common;

use apache_avro::Schema as AvroSchema;
use common::{Org, V};
use eventbus::pub_sub_client::PubSubClient;
use eventbus::tonic::metadata::MetadataValue;
use eventbus::tonic::transport::{Certificate, Channel, ClientTlsConfig};
use eventbus::tonic::{Code, Request, Status, Streaming};
use eventbus::{FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, TopicRequest};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sfsim::server::Options;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const WAIT: Duration = Duration::from_secs(10);

struct Cdc {
    org: Org,
    rt: Runtime,
    client: PubSubClient<Channel>,
}

/// An open Subscribe stream and the sender of its FetchRequests.
struct Sub {
    requests: mpsc::Sender<FetchRequest>,
    responses: Streaming<FetchResponse>,
}

/// A decoded change event and its replay id.
#[derive(Debug)]
struct Event {
    header: Value,
    fields: Value,
    replay_id: Vec<u8>,
    schema_id: String,
}

impl Event {
    fn change_type(&self) -> &str {
        self.header["changeType"].as_str().unwrap()
    }

    fn record_ids(&self) -> Vec<String> {
        serde_json::from_value(self.header["recordIds"].clone()).unwrap()
    }
}

fn options(keepalive: Duration) -> Options {
    Options {
        token_lifetime_secs: 60 * 24 * 3600,
        pubsub_keepalive: keepalive,
        ..Options::demo_with_pubsub()
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

impl Cdc {
    /// The demo org with these objects selected for Change Data Capture.
    fn start(objects: &[&str]) -> Cdc {
        Cdc::with(options(Duration::from_secs(60)), objects)
    }

    fn with(options: Options, objects: &[&str]) -> Cdc {
        let org = Org::start(options);
        let url = org
            .server
            .pubsub_url
            .clone()
            .expect("the Pub/Sub API is served");
        let rt = runtime();
        let client = rt.block_on(PubSubClient::connect(url.clone())).unwrap();
        let cdc = Cdc { org, rt, client };
        cdc.select(objects);
        cdc
    }

    fn select(&self, objects: &[&str]) -> Value {
        self.org
            .control(Method::POST, "cdc", json!({"objects": objects}))
    }

    fn tenant(&self) -> String {
        self.org.server.sim.org.read().org_id.clone()
    }

    fn request<T>(&self, message: T) -> Request<T> {
        self.request_as(&self.org.token, message)
    }

    fn request_as<T>(&self, token: &str, message: T) -> Request<T> {
        let mut r = Request::new(message);
        let m = r.metadata_mut();
        m.insert(
            eventbus::ACCESS_TOKEN,
            MetadataValue::try_from(token).unwrap(),
        );
        m.insert(
            eventbus::INSTANCE_URL,
            MetadataValue::try_from(self.org.server.base_url.as_str()).unwrap(),
        );
        m.insert(
            eventbus::TENANT_ID,
            MetadataValue::try_from(self.tenant()).unwrap(),
        );
        r
    }

    fn get_topic(&self, name: &str) -> Result<eventbus::TopicInfo, Status> {
        let mut client = self.client.clone();
        let request = self.request(TopicRequest {
            topic_name: name.into(),
        });
        self.rt
            .block_on(client.get_topic(request))
            .map(|r| r.into_inner())
    }

    fn schema(&self, id: &str) -> Result<String, Status> {
        let mut client = self.client.clone();
        let request = self.request(SchemaRequest {
            schema_id: id.into(),
        });
        self.rt
            .block_on(client.get_schema(request))
            .map(|r| r.into_inner().schema_json)
    }

    fn subscribe(
        &self,
        topic: &str,
        preset: ReplayPreset,
        replay_id: &[u8],
        n: i32,
    ) -> Result<Sub, Status> {
        self.subscribe_as(&self.org.token, topic, preset, replay_id, n)
    }

    fn subscribe_as(
        &self,
        token: &str,
        topic: &str,
        preset: ReplayPreset,
        replay_id: &[u8],
        n: i32,
    ) -> Result<Sub, Status> {
        let (requests, rx) = mpsc::channel(16);
        requests
            .try_send(FetchRequest {
                topic_name: topic.into(),
                replay_preset: preset as i32,
                replay_id: replay_id.to_vec(),
                num_requested: n,
                auth_refresh: String::new(),
            })
            .unwrap();
        let mut client = self.client.clone();
        let request = self.request_as(token, ReceiverStream::new(rx));
        let responses = self.rt.block_on(client.subscribe(request))?.into_inner();
        Ok(Sub {
            requests,
            responses,
        })
    }

    /// The stream's next response, or its ending status.
    fn next(&self, sub: &mut Sub) -> Result<FetchResponse, Status> {
        self.rt.block_on(async {
            match tokio::time::timeout(WAIT, sub.responses.message()).await {
                Err(_) => panic!("no response within {WAIT:?}"),
                Ok(Ok(Some(r))) => Ok(r),
                Ok(Ok(None)) => Err(Status::ok("stream ended")),
                Ok(Err(status)) => Err(status),
            }
        })
    }

    /// How the stream fails, reading past any responses before it.
    fn failure(&self, sub: &mut Sub) -> Status {
        loop {
            if let Err(status) = self.next(sub) {
                return status;
            }
        }
    }

    /// The next `n` events, skipping keepalives.
    fn events(&self, sub: &mut Sub, n: usize) -> Vec<Event> {
        let mut out = Vec::new();
        while out.len() < n {
            let r = self.next(sub).unwrap();
            out.extend(r.events.into_iter().map(|e| self.decode(e)));
        }
        assert_eq!(out.len(), n, "more events than expected");
        out
    }

    /// Asserts that no event arrives for a while.
    fn quiet(&self, sub: &mut Sub) {
        let got = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(300), sub.responses.message()).await
        });
        if let Ok(r) = got {
            let r = r.unwrap().unwrap();
            assert!(
                r.events.is_empty(),
                "unexpected events: {:?}",
                r.events.len()
            );
        }
    }

    fn more(&self, sub: &Sub, n: i32) {
        sub.requests
            .try_send(FetchRequest {
                num_requested: n,
                ..FetchRequest::default()
            })
            .unwrap();
    }

    fn decode(&self, e: eventbus::ConsumerEvent) -> Event {
        let event = e.event.unwrap();
        let schema = AvroSchema::parse_str(&self.schema(&event.schema_id).unwrap()).unwrap();
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .and_then(|reader| reader.read_value(&mut event.payload.as_slice()))
            .unwrap();
        let Value::Object(mut record) = Value::try_from(value).unwrap() else {
            panic!("events are records")
        };
        let header = record.remove("ChangeEventHeader").unwrap();
        Event {
            header,
            fields: Value::Object(record),
            replay_id: e.replay_id,
            schema_id: event.schema_id,
        }
    }

    fn create(&self, object: &str, body: Value) -> String {
        let r = self
            .org
            .send(Method::POST, &format!("{V}/sobjects/{object}"), body);
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn patch(&self, object: &str, id: &str, body: Value) {
        let r = self
            .org
            .send(Method::PATCH, &format!("{V}/sobjects/{object}/{id}"), body);
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }

    /// The names of the fields a header bitmap marks, as Salesforce's
    /// sample decoder reads them.
    fn bitmap_fields(&self, event: &Event, bitmap: &str) -> Vec<String> {
        let schema: Value = serde_json::from_str(&self.schema(&event.schema_id).unwrap()).unwrap();
        let fields = schema["fields"].as_array().unwrap();
        let bits = |hex: &str| -> Vec<usize> {
            let digits = hex.strip_prefix("0x").unwrap();
            let n = u128::from_str_radix(digits, 16).unwrap();
            (0..128).filter(|b| n >> b & 1 == 1).collect()
        };
        let mut names = Vec::new();
        for entry in event.header[bitmap].as_array().unwrap() {
            let entry = entry.as_str().unwrap();
            match entry.split_once('-') {
                None => names.extend(
                    bits(entry)
                        .into_iter()
                        .map(|b| fields[b]["name"].as_str().unwrap().to_string()),
                ),
                Some((parent, nested)) => {
                    let parent = &fields[parent.parse::<usize>().unwrap()];
                    let record = &parent["type"][1]["fields"];
                    names.extend(bits(nested).into_iter().map(|b| {
                        format!(
                            "{}.{}",
                            parent["name"].as_str().unwrap(),
                            record[b]["name"].as_str().unwrap()
                        )
                    }));
                }
            }
        }
        names.sort();
        names
    }
}

fn error_code(status: &Status) -> &str {
    status
        .metadata()
        .get(eventbus::ERROR_CODE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Fields of an event that are not null.
fn set_fields(event: &Event) -> Vec<String> {
    let mut names: Vec<String> = event
        .fields
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    names.sort();
    names
}

#[test]
fn calls_need_a_live_token_of_the_org() {
    let cdc = Cdc::start(&["Account"]);
    assert!(cdc.get_topic("/data/AccountChangeEvent").is_ok());
    let mut client = cdc.client.clone();
    let bad = cdc.request_as(
        "00D!nope",
        TopicRequest {
            topic_name: "/data/AccountChangeEvent".into(),
        },
    );
    let status = cdc.rt.block_on(client.get_topic(bad)).unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        error_code(&status),
        "sfdc.platform.eventbus.grpc.service.auth.error"
    );
    assert!(status.message().contains("rpcId: "), "{}", status.message());
    let mut wrong_tenant = cdc.request(TopicRequest {
        topic_name: "/data/AccountChangeEvent".into(),
    });
    wrong_tenant.metadata_mut().insert(
        eventbus::TENANT_ID,
        MetadataValue::from_static("00D000000000000AAA"),
    );
    let status = cdc.rt.block_on(client.get_topic(wrong_tenant)).unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut no_metadata = Request::new(TopicRequest {
        topic_name: "/data/AccountChangeEvent".into(),
    });
    no_metadata.metadata_mut().remove(eventbus::ACCESS_TOKEN);
    assert_eq!(
        cdc.rt
            .block_on(client.get_topic(no_metadata))
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let mut sub = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Latest, &[], 10)
        .unwrap();
    assert!(cdc
        .subscribe_as(
            "nope",
            "/data/AccountChangeEvent",
            ReplayPreset::Latest,
            &[],
            1
        )
        .is_err());
    cdc.org.control(Method::POST, "tokens/expire", Value::Null);
    assert_eq!(
        cdc.get_topic("/data/AccountChangeEvent")
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // The open stream notices at its next event.
    cdc.org.control(
        Method::POST,
        "records/Account",
        json!({"Name": "After expiry"}),
    );
    let status = cdc.failure(&mut sub);
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        error_code(&status),
        "sfdc.platform.eventbus.grpc.service.auth.error"
    );
}

#[test]
fn topics_and_schemas_describe_change_events() {
    let cdc = Cdc::start(&["Account", "Invoice__c"]);
    let account = cdc.get_topic("/data/AccountChangeEvent").unwrap();
    assert!(account.can_subscribe && !account.can_publish);
    assert_eq!(account.topic_name, "/data/AccountChangeEvent");
    assert_eq!(account.tenant_guid, cdc.tenant());
    let json = cdc.schema(&account.schema_id).unwrap();
    let schema: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(schema["name"], "AccountChangeEvent");
    assert_eq!(schema["namespace"], "com.sforce.eventbus");
    assert_eq!(schema["fields"][0]["name"], "ChangeEventHeader");
    let header: Vec<&str> = schema["fields"][0]["type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        header,
        [
            "entityName",
            "recordIds",
            "changeType",
            "changeOrigin",
            "transactionKey",
            "sequenceNumber",
            "commitTimestamp",
            "commitNumber",
            "commitUser",
            "nulledFields",
            "diffFields",
            "changedFields"
        ]
    );
    let fields: HashMap<&str, &Value> = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f))
        .collect();
    assert_eq!(fields["Name"]["type"], json!(["null", "string"]));
    assert_eq!(fields["Name"]["default"], Value::Null);
    assert_eq!(fields["BillingAddress"]["type"][1]["name"], "Address");
    assert!(fields.contains_key("LastModifiedDate") && fields.contains_key("OwnerId"));
    for absent in ["Id", "IsDeleted", "SystemModstamp", "BillingCity"] {
        assert!(!fields.contains_key(absent), "{absent}");
    }
    AvroSchema::parse_str(&json).expect("the schema is valid Avro");

    let invoice = cdc.get_topic("/data/Invoice__ChangeEvent").unwrap();
    assert!(invoice.can_subscribe);
    assert_ne!(invoice.schema_id, account.schema_id);
    let all = cdc.get_topic("/data/ChangeEvents").unwrap();
    assert!(all.can_subscribe && all.schema_id.is_empty());
    let contact = cdc.get_topic("/data/ContactChangeEvent").unwrap();
    assert!(!contact.can_subscribe, "Contact is not selected");
    let status = cdc.failure(
        &mut cdc
            .subscribe("/data/ContactChangeEvent", ReplayPreset::Latest, &[], 1)
            .unwrap(),
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    for unknown in ["/data/NopeChangeEvent", "/event/Order__e", "Account"] {
        assert_eq!(
            cdc.get_topic(unknown).unwrap_err().code(),
            Code::NotFound,
            "{unknown}"
        );
    }
    assert_eq!(cdc.schema("nope").unwrap_err().code(), Code::NotFound);

    // Adding a field makes a new schema; events written before still decode.
    let mut sub = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Latest, &[], 10)
        .unwrap();
    cdc.create("Account", json!({"Name": "Before"}));
    cdc.org.control(
        Method::POST,
        "objects/Account/fields",
        json!([{"name": "Tier__c", "type": "string", "length": 10}]),
    );
    cdc.create("Account", json!({"Name": "After", "Tier__c": "Gold"}));
    let events = cdc.events(&mut sub, 2);
    assert_ne!(events[0].schema_id, events[1].schema_id);
    assert_eq!(events[1].fields["Tier__c"], "Gold");
    assert_eq!(
        cdc.get_topic("/data/AccountChangeEvent").unwrap().schema_id,
        events[1].schema_id
    );
}

#[test]
fn creates_updates_deletes_and_undeletes_carry_what_changed() {
    let cdc = Cdc::start(&["Account", "Contact"]);
    let mut sub = cdc
        .subscribe("/data/ChangeEvents", ReplayPreset::Latest, &[], 100)
        .unwrap();
    let id = cdc.create(
        "Account",
        json!({"Name": "Acme", "Phone": "555-0100", "BillingCity": "Paris"}),
    );
    let created = &cdc.events(&mut sub, 1)[0];
    let h = &created.header;
    assert_eq!(created.change_type(), "CREATE");
    assert_eq!(h["entityName"], "Account");
    assert_eq!(created.record_ids(), [id.as_str()]);
    assert_eq!(h["changeOrigin"], "com/salesforce/api/rest/62.0");
    assert_eq!(h["sequenceNumber"], 1);
    assert_eq!(h["commitUser"], cdc.org.server.sim.org.read().admin_user_id);
    assert!(h["transactionKey"].as_str().unwrap().len() == 36);
    assert!(h["commitTimestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(h["changedFields"], json!([]));
    assert_eq!(created.fields["Name"], "Acme");
    assert_eq!(created.fields["BillingAddress"]["City"], "Paris");
    assert_eq!(created.fields["BillingAddress"]["Street"], Value::Null);
    assert!(created.fields["CreatedDate"].is_i64());
    assert_eq!(created.fields["Industry"], Value::Null);

    cdc.patch(
        "Account",
        &id,
        json!({"Name": "Acme Corp", "BillingCity": "Lyon", "Phone": null}),
    );
    let updated = &cdc.events(&mut sub, 1)[0];
    assert_eq!(updated.change_type(), "UPDATE");
    assert_eq!(
        set_fields(updated),
        ["BillingAddress", "LastModifiedDate", "Name"]
    );
    assert_eq!(updated.fields["BillingAddress"]["City"], "Lyon");
    assert_eq!(updated.fields["BillingAddress"]["Country"], Value::Null);
    assert_eq!(
        cdc.bitmap_fields(updated, "changedFields"),
        ["BillingAddress.City", "LastModifiedDate", "Name", "Phone"]
    );
    assert_eq!(cdc.bitmap_fields(updated, "nulledFields"), ["Phone"]);
    assert_eq!(updated.header["diffFields"], json!([]));
    assert!(updated.header["commitNumber"].as_i64() > created.header["commitNumber"].as_i64());
    assert_ne!(
        updated.header["transactionKey"],
        created.header["transactionKey"]
    );

    cdc.patch("Account", &id, json!({"BillingCity": null}));
    let nulled = &cdc.events(&mut sub, 1)[0];
    assert_eq!(
        cdc.bitmap_fields(nulled, "nulledFields"),
        ["BillingAddress"],
        "every component is now null"
    );

    let contact = cdc.create("Contact", json!({"FirstName": "Ada", "LastName": "Ng"}));
    let person = &cdc.events(&mut sub, 1)[0];
    assert_eq!(person.fields["Name"]["FirstName"], "Ada");
    assert_eq!(person.fields["Name"]["LastName"], "Ng");
    assert!(person.fields.get("FirstName").is_none());
    cdc.patch("Contact", &contact, json!({"FirstName": "Grace"}));
    let renamed = &cdc.events(&mut sub, 1)[0];
    assert_eq!(
        cdc.bitmap_fields(renamed, "changedFields"),
        ["LastModifiedDate", "Name.FirstName"]
    );
    assert_eq!(renamed.fields["Name"]["LastName"], Value::Null);

    let r = cdc.org.send(
        Method::DELETE,
        &format!("{V}/sobjects/Account/{id}"),
        Value::Null,
    );
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let deleted = &cdc.events(&mut sub, 1)[0];
    assert_eq!(deleted.change_type(), "DELETE");
    assert_eq!(deleted.record_ids(), [id.as_str()]);
    assert!(
        set_fields(deleted).is_empty(),
        "a delete carries only the header"
    );

    cdc.org.control(
        Method::POST,
        &format!("records/Account/{id}/undelete"),
        Value::Null,
    );
    let undeleted = &cdc.events(&mut sub, 1)[0];
    assert_eq!(undeleted.change_type(), "UNDELETE");
    assert_eq!(undeleted.fields["Name"], "Acme Corp");
    assert_eq!(undeleted.header["changeOrigin"], "", "made as in the UI");

    // Unselected objects publish nothing; emptying the recycle bin neither.
    cdc.create("Lead", json!({"LastName": "Quiet", "Company": "Nobody"}));
    cdc.org.control(
        Method::DELETE,
        &format!("records/Account/{id}"),
        Value::Null,
    );
    assert_eq!(cdc.events(&mut sub, 1)[0].change_type(), "DELETE");
    cdc.org.control(
        Method::DELETE,
        &format!("records/Account/{id}?hard=true"),
        Value::Null,
    );
    cdc.quiet(&mut sub);
}

/// The next events, which must be of these change types.
fn expect(cdc: &Cdc, sub: &mut Sub, what: &str, types: &[&str]) -> Vec<Event> {
    let events = cdc.events(sub, types.len());
    let got: Vec<&str> = events.iter().map(Event::change_type).collect();
    assert_eq!(got, types, "{what}");
    events
}

#[test]
fn every_write_path_publishes() {
    let cdc = Cdc::start(&["Account", "Contact"]);
    let mut sub = cdc
        .subscribe("/data/ChangeEvents", ReplayPreset::Latest, &[], 100)
        .unwrap();
    let base = format!("{V}/sobjects");
    // Upsert by external id: create, then update.
    let r = cdc.org.send(
        Method::PATCH,
        &format!("{base}/Contact/User_Id__c/u-1"),
        json!({"LastName": "Upsert"}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    expect(&cdc, &mut sub, "upsert create", &["CREATE"]);
    cdc.org.send(
        Method::PATCH,
        &format!("{base}/Contact/User_Id__c/u-1"),
        json!({"Title": "Boss"}),
    );
    expect(&cdc, &mut sub, "upsert update", &["UPDATE"]);
    cdc.org.send(
        Method::DELETE,
        &format!("{base}/Contact/User_Id__c/u-1"),
        Value::Null,
    );
    expect(&cdc, &mut sub, "delete by external id", &["DELETE"]);

    // sObject Collections.
    let r = cdc.org.send(
        Method::POST,
        &format!("{V}/composite/sobjects"),
        json!({"records": [
            {"attributes": {"type": "Account"}, "Name": "C1"},
            {"attributes": {"type": "Contact"}, "LastName": "C2"},
        ]}),
    );
    let results: Value = r.json().unwrap();
    let events = expect(&cdc, &mut sub, "collections create", &["CREATE", "CREATE"]);
    assert_eq!(
        events[0].header["transactionKey"], events[1].header["transactionKey"],
        "one transaction"
    );
    assert_eq!(events[1].header["sequenceNumber"], 2);
    let ids: Vec<String> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    cdc.org.send(
        Method::PATCH,
        &format!("{V}/composite/sobjects"),
        json!({"records": [{"attributes": {"type": "Account"}, "id": ids[0], "Name": "C1b"}]}),
    );
    expect(&cdc, &mut sub, "collections update", &["UPDATE"]);
    cdc.org.send(
        Method::PATCH,
        &format!("{V}/composite/sobjects/Contact/User_Id__c"),
        json!({"records": [{"attributes": {"type": "Contact"}, "User_Id__c": "u-2", "LastName": "Up"}]}),
    );
    expect(&cdc, &mut sub, "collections upsert", &["CREATE"]);
    cdc.org.send(
        Method::DELETE,
        &format!("{V}/composite/sobjects?ids={},{}", ids[0], ids[1]),
        Value::Null,
    );
    let events = expect(&cdc, &mut sub, "collections delete", &["DELETE", "DELETE"]);
    assert_eq!(events[0].header["entityName"], "Account");
    assert_eq!(events[1].header["entityName"], "Contact");

    // A failed allOrNone collection publishes nothing.
    cdc.org.send(
        Method::POST,
        &format!("{V}/composite/sobjects"),
        json!({"allOrNone": true, "records": [
            {"attributes": {"type": "Account"}, "Name": "Rolled back"},
            {"attributes": {"type": "Account"}},
        ]}),
    );
    cdc.quiet(&mut sub);

    // Composite: one transaction, sequence numbers in order.
    let answers = cdc.org.composite_ok(json!({"compositeRequest": [
        {"method": "POST", "url": format!("{base}/Account"), "referenceId": "a", "body": {"Name": "Comp"}},
        {"method": "PATCH", "url": format!("{base}/Account/@{{a.id}}"), "referenceId": "b", "body": {"Name": "Comp 2"}},
    ]}));
    assert_eq!(answers[1]["httpStatusCode"], 204);
    let events = expect(&cdc, &mut sub, "composite", &["CREATE", "UPDATE"]);
    assert_eq!(
        events[0].header["transactionKey"],
        events[1].header["transactionKey"]
    );
    assert_eq!(events[1].header["sequenceNumber"], 2);
    assert_eq!(events[1].fields["Name"], "Comp 2");
    // A composite rolled back by allOrNone publishes nothing.
    cdc.org.composite_ok(json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": format!("{base}/Account"), "referenceId": "a", "body": {"Name": "Undone"}},
        {"method": "POST", "url": format!("{base}/Account"), "referenceId": "b", "body": {}},
    ]}));
    cdc.quiet(&mut sub);

    // The control API's edits, as an admin makes them in the UI.
    let id = cdc
        .org
        .control(Method::POST, "records/Account", json!({"Name": "Ctl"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    cdc.org.control(
        Method::PATCH,
        &format!("records/Account/{id}"),
        json!({"Name": "Ctl 2"}),
    );
    cdc.org.control(
        Method::DELETE,
        &format!("records/Account/{id}"),
        Value::Null,
    );
    cdc.org.control(
        Method::POST,
        &format!("records/Account/{id}/undelete"),
        Value::Null,
    );
    cdc.org.control(
        Method::DELETE,
        &format!("records/Account/{id}?hard=true"),
        Value::Null,
    );
    expect(
        &cdc,
        &mut sub,
        "control edits",
        &["CREATE", "UPDATE", "DELETE", "UNDELETE", "DELETE"],
    );
    cdc.org.control(
        Method::POST,
        "faults/late_commit",
        json!({"object": "Account", "fields": {"Name": "Late"}, "age_seconds": 60}),
    );
    expect(&cdc, &mut sub, "late commit", &["CREATE"]);
    // Bulk query jobs write nothing.
    cdc.org.bulk_csv("SELECT Id FROM Account");
    cdc.quiet(&mut sub);
}

#[test]
fn identical_changes_in_one_call_are_merged() {
    let cdc = Cdc::start(&["Account"]);
    let ids: Vec<String> = (0..3)
        .map(|i| cdc.create("Account", json!({"Name": format!("M{i}")})))
        .collect();
    let mut sub = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Latest, &[], 100)
        .unwrap();
    let update = |records: Vec<Value>| {
        let r = cdc.org.send(
            Method::PATCH,
            &format!("{V}/composite/sobjects"),
            json!({"records": records}),
        );
        assert_eq!(r.status(), StatusCode::OK);
    };
    update(
        ids.iter()
            .map(|id| json!({"attributes": {"type": "Account"}, "id": id, "Rating": "Hot"}))
            .collect(),
    );
    let merged = &cdc.events(&mut sub, 1)[0];
    assert_eq!(merged.record_ids(), ids);
    assert_eq!(merged.fields["Rating"], "Hot");
    update(ids.iter().enumerate().map(|(i, id)| json!({"attributes": {"type": "Account"}, "id": id, "Rating": if i == 1 { "Cold" } else { "Warm" }})).collect());
    let events = cdc.events(&mut sub, 2);
    assert_eq!(events[0].record_ids(), [ids[0].clone(), ids[2].clone()]);
    assert_eq!(events[1].record_ids(), [ids[1].clone()]);
    assert_eq!(events[1].header["sequenceNumber"], 2);
    cdc.org.send(
        Method::DELETE,
        &format!("{V}/composite/sobjects?ids={}", ids.join(",")),
        Value::Null,
    );
    assert_eq!(
        cdc.events(&mut sub, 1)[0].record_ids(),
        ids,
        "one delete event"
    );
}

#[test]
fn events_flow_only_against_requests() {
    let cdc = Cdc::start(&["Account"]);
    let mut sub = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Latest, &[], 2)
        .unwrap();
    for i in 0..5 {
        cdc.create("Account", json!({"Name": format!("F{i}")}));
    }
    let mut first = Vec::new();
    while first.len() < 2 {
        let r = cdc.next(&mut sub).unwrap();
        assert_eq!(
            r.pending_num_requested,
            2 - (first.len() + r.events.len()) as i32
        );
        first.extend(r.events);
    }
    cdc.quiet(&mut sub);
    cdc.more(&sub, 250);
    let rest = cdc.events(&mut sub, 3);
    let names: Vec<&str> = rest
        .iter()
        .map(|e| e.fields["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["F2", "F3", "F4"]);
    // Requests add up to at most 100 outstanding.
    for i in 0..100 {
        cdc.org.control(
            Method::POST,
            "records/Account",
            json!({"Name": format!("G{i}")}),
        );
    }
    let mut delivered = 0;
    let mut last = None;
    while delivered < 97 {
        let r = cdc.next(&mut sub).unwrap();
        delivered += r.events.len();
        last = Some(r);
    }
    assert_eq!(delivered, 97);
    assert_eq!(last.unwrap().pending_num_requested, 0);
    cdc.quiet(&mut sub);
    // Replay ids increase, and every response reports the latest one.
    let ids: Vec<Vec<u8>> = rest.iter().map(|e| e.replay_id.clone()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(ids[0].len(), 8);
}

#[test]
fn subscriptions_replay_from_earliest_latest_or_a_replay_id() {
    let cdc = Cdc::start(&["Account"]);
    let names: Vec<String> = (0..3).map(|i| format!("R{i}")).collect();
    for name in &names {
        cdc.create("Account", json!({"Name": name}));
    }
    let mut earliest = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Earliest, &[], 10)
        .unwrap();
    let events = cdc.events(&mut earliest, 3);
    let got: Vec<&str> = events
        .iter()
        .map(|e| e.fields["Name"].as_str().unwrap())
        .collect();
    assert_eq!(got, names);
    let mut after_first = cdc
        .subscribe(
            "/data/AccountChangeEvent",
            ReplayPreset::Custom,
            &events[0].replay_id,
            10,
        )
        .unwrap();
    let replayed = cdc.events(&mut after_first, 2);
    assert_eq!(replayed[0].replay_id, events[1].replay_id);
    assert_eq!(replayed[1].replay_id, events[2].replay_id);
    let mut latest = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Latest, &[], 10)
        .unwrap();
    cdc.quiet(&mut latest);
    cdc.create("Account", json!({"Name": "New"}));
    assert_eq!(cdc.events(&mut latest, 1)[0].fields["Name"], "New");
    // Never computed ids, garbage, and ids past the tip are refused.
    let mut bumped = events[2].replay_id.clone();
    *bumped.last_mut().unwrap() = bumped.last().unwrap().wrapping_add(200);
    for bad in [vec![1, 2, 3], bumped, vec![]] {
        let status = cdc.failure(
            &mut cdc
                .subscribe("/data/AccountChangeEvent", ReplayPreset::Custom, &bad, 1)
                .unwrap(),
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            error_code(&status),
            "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
        );
    }
}

#[test]
fn events_are_kept_for_72_hours() {
    let cdc = Cdc::start(&["Account"]);
    cdc.create("Account", json!({"Name": "Old"}));
    let mut sub = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Earliest, &[], 10)
        .unwrap();
    let old = cdc.events(&mut sub, 1).remove(0);
    cdc.org.advance_clock(71 * 3600);
    cdc.create("Account", json!({"Name": "Newer"}));
    let newer = cdc.events(&mut sub, 1).remove(0);
    let mut after_old = cdc
        .subscribe(
            "/data/AccountChangeEvent",
            ReplayPreset::Custom,
            &old.replay_id,
            1,
        )
        .unwrap();
    assert_eq!(cdc.events(&mut after_old, 1)[0].replay_id, newer.replay_id);
    cdc.org.advance_clock(2 * 3600);
    let status = cdc.failure(
        &mut cdc
            .subscribe(
                "/data/AccountChangeEvent",
                ReplayPreset::Custom,
                &old.replay_id,
                1,
            )
            .unwrap(),
    );
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        error_code(&status),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    );
    let mut earliest = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Earliest, &[], 10)
        .unwrap();
    assert_eq!(
        cdc.events(&mut earliest, 1)[0].replay_id,
        newer.replay_id,
        "the old event is gone"
    );
    let mut after_newer = cdc
        .subscribe(
            "/data/AccountChangeEvent",
            ReplayPreset::Custom,
            &newer.replay_id,
            10,
        )
        .unwrap();
    cdc.quiet(&mut after_newer);
}

#[test]
fn gap_and_overflow_faults_replace_events_with_headers() {
    let cdc = Cdc::start(&["Account", "Contact"]);
    let mut sub = cdc
        .subscribe("/data/ChangeEvents", ReplayPreset::Latest, &[], 100)
        .unwrap();
    let faults = cdc.org.control(
        Method::POST,
        "faults/cdc_gap",
        json!({"object": "Account", "count": 2}),
    );
    assert_eq!(faults["cdc"]["gaps"]["Account"], 2);
    let id = cdc.create("Account", json!({"Name": "Gap"}));
    cdc.patch("Account", &id, json!({"Name": "Gap 2"}));
    cdc.patch("Account", &id, json!({"Name": "Gap 3"}));
    let events = cdc.events(&mut sub, 3);
    let types: Vec<&str> = events.iter().map(Event::change_type).collect();
    assert_eq!(types, ["GAP_CREATE", "GAP_UPDATE", "UPDATE"]);
    assert_eq!(events[0].record_ids(), [id.as_str()]);
    assert!(set_fields(&events[0]).is_empty() && set_fields(&events[1]).is_empty());
    assert_eq!(events[1].header["changedFields"], json!([]));
    assert_eq!(events[2].fields["Name"], "Gap 3");

    cdc.org
        .control(Method::POST, "faults/cdc_overflow", json!({"count": 1}));
    cdc.org.send(
        Method::POST,
        &format!("{V}/composite/sobjects"),
        json!({"records": [
            {"attributes": {"type": "Account"}, "Name": "O1"},
            {"attributes": {"type": "Account"}, "Name": "O2"},
            {"attributes": {"type": "Contact"}, "LastName": "O3"},
        ]}),
    );
    let events = cdc.events(&mut sub, 2);
    for (event, entity) in events.iter().zip(["Account", "Contact"]) {
        assert_eq!(event.change_type(), "GAP_OVERFLOW");
        assert_eq!(event.header["entityName"], entity);
        assert!(event.record_ids().is_empty());
    }
    cdc.create("Account", json!({"Name": "Normal again"}));
    assert_eq!(cdc.events(&mut sub, 1)[0].change_type(), "CREATE");
    assert_eq!(
        cdc.org.control(Method::GET, "faults", Value::Null)["cdc"]["overflow"],
        0
    );
}

#[test]
fn dropped_streams_end_unavailable_and_can_resume() {
    let cdc = Cdc::start(&["Account"]);
    let mut sub = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Latest, &[], 10)
        .unwrap();
    cdc.create("Account", json!({"Name": "Before drop"}));
    let seen = cdc.events(&mut sub, 1).remove(0);
    assert_eq!(
        cdc.org.control(Method::GET, "cdc", Value::Null)["streams"],
        1
    );
    cdc.org
        .control(Method::POST, "faults/cdc_drop_streams", Value::Null);
    let status = cdc.failure(&mut sub);
    assert_eq!(status.code(), Code::Unavailable);
    cdc.create("Account", json!({"Name": "While away"}));
    let mut resumed = cdc
        .subscribe(
            "/data/AccountChangeEvent",
            ReplayPreset::Custom,
            &seen.replay_id,
            10,
        )
        .unwrap();
    assert_eq!(cdc.events(&mut resumed, 1)[0].fields["Name"], "While away");
}

#[test]
fn delay_fault_holds_events_back() {
    let cdc = Cdc::start(&["Account"]);
    let mut sub = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Latest, &[], 10)
        .unwrap();
    cdc.org
        .control(Method::POST, "faults/cdc_delay", json!({"ms": 700}));
    let started = Instant::now();
    cdc.create("Account", json!({"Name": "Slow"}));
    cdc.events(&mut sub, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    cdc.org
        .control(Method::POST, "faults/cdc_delay", json!({"ms": 0}));
    let started = Instant::now();
    cdc.create("Account", json!({"Name": "Fast"}));
    cdc.events(&mut sub, 1);
    assert!(started.elapsed() < Duration::from_millis(700));
}

#[test]
fn idle_streams_get_keepalives_with_the_latest_replay_id() {
    let cdc = Cdc::with(options(Duration::from_millis(300)), &["Account", "Contact"]);
    let mut sub = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Latest, &[], 5)
        .unwrap();
    let first = cdc.next(&mut sub).unwrap();
    assert!(first.events.is_empty());
    assert_eq!(first.pending_num_requested, 5);
    assert_eq!(first.latest_replay_id.len(), 8);
    // Events of other topics move the latest replay id on.
    cdc.create("Contact", json!({"LastName": "Elsewhere"}));
    let mut later = cdc.next(&mut sub).unwrap();
    while later.latest_replay_id == first.latest_replay_id {
        later = cdc.next(&mut sub).unwrap();
    }
    assert!(later.events.is_empty() && later.latest_replay_id > first.latest_replay_id);
    let mut resumed = cdc
        .subscribe(
            "/data/AccountChangeEvent",
            ReplayPreset::Custom,
            &later.latest_replay_id,
            5,
        )
        .unwrap();
    assert!(
        cdc.next(&mut resumed).unwrap().events.is_empty(),
        "a keepalive's replay id is a valid start"
    );
}

#[test]
fn subscriptions_cost_no_api_requests_and_are_logged() {
    let cdc = Cdc::start(&["Account"]);
    cdc.create("Account", json!({"Name": "Logged"}));
    cdc.org.clear_log();
    let used = cdc.org.api_requests_used();
    let topic = cdc.get_topic("/data/AccountChangeEvent").unwrap();
    cdc.schema(&topic.schema_id).unwrap();
    let mut sub = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Earliest, &[], 10)
        .unwrap();
    cdc.events(&mut sub, 1);
    cdc.org
        .control(Method::POST, "faults/cdc_drop_streams", Value::Null);
    cdc.failure(&mut sub);
    assert_eq!(
        cdc.org.api_requests_used(),
        used,
        "Pub/Sub calls are not API requests"
    );
    let usage = cdc.org.control(Method::GET, "usage", Value::Null);
    assert_eq!(usage["cdc_events_delivered"], 1);
    let log = cdc.org.requests();
    let calls: Vec<(&str, Value, Value)> = log
        .iter()
        .map(|e| {
            (
                e["rpc"].as_str().unwrap_or(""),
                e["events"].clone(),
                e["grpc_status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("GetTopic", Value::Null, json!("OK")),
            ("GetSchema", Value::Null, json!("OK")),
            ("Subscribe", json!(1), Value::Null),
            ("GetSchema", Value::Null, json!("OK")),
            ("Subscribe", Value::Null, json!("UNAVAILABLE")),
        ]
    );
    assert!(log.iter().all(|e| e["counted"] == false
        && e["path"]
            .as_str()
            .unwrap()
            .starts_with("/eventbus.v1.PubSub/")));
    assert_eq!(log[2]["topic"], "/data/AccountChangeEvent");
    // Past the 24-hour delivery allocation the stream ends.
    cdc.org.control(
        Method::PATCH,
        "settings",
        json!({"cdc_daily_delivery_limit": 1}),
    );
    let mut sub = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Earliest, &[], 10)
        .unwrap();
    let status = cdc.failure(&mut sub);
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        error_code(&status),
        "sfdc.platform.eventbus.grpc.subscription.limit.exceeded"
    );
}

#[test]
fn reset_forgets_events_and_keeps_the_selection() {
    let cdc = Cdc::start(&["Account"]);
    cdc.create("Account", json!({"Name": "Before reset"}));
    let mut sub = cdc
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Earliest, &[], 10)
        .unwrap();
    let before = cdc.events(&mut sub, 1).remove(0);
    cdc.org.control(Method::POST, "reset", Value::Null);
    let status = cdc.cdc_status();
    assert_eq!(status["objects"], json!(["Account"]));
    assert_eq!(status["events"], 0);
    let refused = cdc.failure(
        &mut cdc
            .subscribe(
                "/data/AccountChangeEvent",
                ReplayPreset::Custom,
                &before.replay_id,
                1,
            )
            .unwrap(),
    );
    assert_eq!(refused.code(), Code::InvalidArgument);
    let unknown = cdc
        .org
        .http
        .post(cdc.org.url("/__sim/cdc"))
        .json(&json!({"objects": ["Nope"]}))
        .send()
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

impl Cdc {
    fn cdc_status(&self) -> Value {
        self.org.control(Method::GET, "cdc", Value::Null)
    }
}

#[test]
fn tls_serves_grpc_with_the_printed_certificate() {
    let dir = std::env::temp_dir().join(format!("sfsim-pubsub-tls-{}", std::process::id()));
    let org = sfsim::server::spawn(Options {
        tls_dir: Some(dir),
        ..options(Duration::from_secs(60))
    })
    .unwrap();
    let url = org.pubsub_url.clone().unwrap();
    assert!(url.starts_with("https://127.0.0.1:"));
    let pem = std::fs::read(org.cert_path.as_ref().unwrap()).unwrap();
    let rt = runtime();
    let channel = rt.block_on(async {
        Channel::from_shared(url)
            .unwrap()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(pem))
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect()
            .await
            .unwrap()
    });
    let status = rt
        .block_on(PubSubClient::new(channel).get_topic(TopicRequest {
            topic_name: "/data/ChangeEvents".into(),
        }))
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "served, and no token was sent"
    );
}

#[test]
fn plaintext_grpc_is_served_only_on_loopback() {
    let refused = sfsim::server::spawn(Options {
        pubsub_listen: Some("0.0.0.0:0".parse().unwrap()),
        ..Options::demo()
    });
    assert!(refused.err().unwrap().contains("--tls"));
}

#[test]
fn the_binary_prints_the_pubsub_url_after_its_other_start_up_lines() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sfsim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "empty",
            "--pubsub-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .take(6)
        .map(Result::unwrap)
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(lines[0].starts_with("http://127.0.0.1:"), "{lines:?}");
    assert!(lines[4].starts_with("refresh_token: "), "{lines:?}");
    let pubsub = lines[5].strip_prefix("pubsub: http://127.0.0.1:").unwrap();
    assert!(pubsub.parse::<u16>().unwrap() > 0);
}
