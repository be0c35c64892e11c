//! Change Data Capture with several orgs: each org's Pub/Sub calls go to
//! its own bus by the access token, and a hung org's open streams send
//! nothing until the hang is cleared.

mod common;

use apache_avro::Schema as AvroSchema;
use common::V;
use eventbus::pub_sub_client::PubSubClient;
use eventbus::tonic::metadata::MetadataValue;
use eventbus::tonic::transport::Channel;
use eventbus::tonic::{Code, Request, Streaming};
use eventbus::{FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, TopicRequest};
use reqwest::blocking::Client;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sfsim::server::{spawn, Options, Running};
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

struct Cdc {
    server: Running,
    http: Client,
    rt: Runtime,
    client: PubSubClient<Channel>,
}

impl Cdc {
    fn start() -> Cdc {
        let server = spawn(Options {
            orgs: 2,
            token_lifetime_secs: 60 * 24 * 3600,
            ..Options::demo_with_pubsub()
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(PubSubClient::connect(server.pubsub_url.clone().unwrap()))
            .unwrap();
        Cdc {
            server,
            http: Client::new(),
            rt,
            client,
        }
    }

    fn control(&self, method: Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}/__sim/{path}", self.server.base_url))
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        r.json().unwrap_or(Value::Null)
    }

    fn token(&self, username: &str) -> String {
        common::token(&self.http, &self.server.base_url, username)
    }

    fn tenant(&self, org: usize) -> String {
        self.server.orgs.get(org).unwrap().org.read().org_id.clone()
    }

    fn request<T>(&self, token: &str, tenant: &str, message: T) -> Request<T> {
        let mut r = Request::new(message);
        let m = r.metadata_mut();
        m.insert(
            eventbus::ACCESS_TOKEN,
            MetadataValue::try_from(token).unwrap(),
        );
        m.insert(
            eventbus::INSTANCE_URL,
            MetadataValue::try_from(self.server.base_url.as_str()).unwrap(),
        );
        m.insert(
            eventbus::TENANT_ID,
            MetadataValue::try_from(tenant).unwrap(),
        );
        r
    }

    fn subscribe(
        &self,
        token: &str,
        tenant: &str,
    ) -> (mpsc::Sender<FetchRequest>, Streaming<FetchResponse>) {
        let (requests, rx) = mpsc::channel(4);
        requests
            .try_send(FetchRequest {
                topic_name: "/data/AccountChangeEvent".into(),
                replay_preset: ReplayPreset::Latest as i32,
                num_requested: 10,
                ..FetchRequest::default()
            })
            .unwrap();
        let mut client = self.client.clone();
        let stream = self
            .rt
            .block_on(client.subscribe(self.request(token, tenant, ReceiverStream::new(rx))))
            .unwrap()
            .into_inner();
        (requests, stream)
    }

    /// The next response with events within `wait`, skipping keepalives.
    fn next_events(
        &self,
        stream: &mut Streaming<FetchResponse>,
        wait: Duration,
    ) -> Option<FetchResponse> {
        self.rt.block_on(async {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                match tokio::time::timeout_at(deadline, stream.message()).await {
                    Err(_) => return None,
                    Ok(r) => {
                        let r = r.unwrap().unwrap();
                        if !r.events.is_empty() {
                            return Some(r);
                        }
                    }
                }
            }
        })
    }

    /// An event's Name field, decoded with its schema from `token`'s org.
    fn name_of(&self, token: &str, tenant: &str, response: &FetchResponse) -> String {
        let event = response.events[0].event.clone().unwrap();
        let mut client = self.client.clone();
        let schema = self
            .rt
            .block_on(client.get_schema(self.request(
                token,
                tenant,
                SchemaRequest {
                    schema_id: event.schema_id.clone(),
                },
            )))
            .unwrap()
            .into_inner()
            .schema_json;
        let schema = AvroSchema::parse_str(&schema).unwrap();
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .and_then(|reader| reader.read_value(&mut event.payload.as_slice()))
            .unwrap();
        let record = Value::try_from(value).unwrap();
        record["Name"].as_str().unwrap().to_string()
    }

    fn create_account(&self, token: &str, name: &str) {
        let r = self
            .http
            .post(format!("{}{V}/sobjects/Account", self.server.base_url))
            .bearer_auth(token)
            .json(&json!({"Name": name}))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
}

#[test]
fn each_org_publishes_on_its_own_bus() {
    let cdc = Cdc::start();
    let (t1, t2) = (
        cdc.token("admin@sfsim.example"),
        cdc.token("admin@org2.sfsim.example"),
    );
    let (org1, org2) = (cdc.tenant(1), cdc.tenant(2));
    cdc.control(Method::POST, "cdc", json!({"objects": ["Account"]}));
    assert_eq!(
        cdc.control(Method::GET, "orgs/2/cdc", Value::Null)["objects"],
        json!([]),
        "selections are per org"
    );
    cdc.control(Method::POST, "orgs/2/cdc", json!({"objects": ["Account"]}));

    let mut client = cdc.client.clone();
    let topic = cdc
        .rt
        .block_on(client.get_topic(cdc.request(
            &t2,
            &org2,
            TopicRequest {
                topic_name: "/data/AccountChangeEvent".into(),
            },
        )))
        .unwrap()
        .into_inner();
    assert_eq!(topic.tenant_guid, org2);
    let refused = cdc
        .rt
        .block_on(client.get_topic(cdc.request(
            &t1,
            &org2,
            TopicRequest {
                topic_name: "/data/AccountChangeEvent".into(),
            },
        )))
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::Unauthenticated,
        "org 1's token for org 2"
    );

    let (_keep1, mut stream1) = cdc.subscribe(&t1, &org1);
    let (_keep2, mut stream2) = cdc.subscribe(&t2, &org2);
    cdc.create_account(&t1, "Written In Org One");
    let got = cdc
        .next_events(&mut stream1, Duration::from_secs(10))
        .expect("org 1's event");
    assert_eq!(cdc.name_of(&t1, &org1, &got), "Written In Org One");
    assert!(cdc
        .next_events(&mut stream2, Duration::from_millis(300))
        .is_none());
    cdc.create_account(&t2, "Written In Org Two");
    let got = cdc
        .next_events(&mut stream2, Duration::from_secs(10))
        .expect("org 2's event");
    assert_eq!(cdc.name_of(&t2, &org2, &got), "Written In Org Two");
    assert!(cdc
        .next_events(&mut stream1, Duration::from_millis(300))
        .is_none());

    // Subscribe calls are in org 2's log only.
    let log = cdc.control(Method::GET, "orgs/2/requests", Value::Null)["requests"].clone();
    assert!(log
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["rpc"] == "Subscribe"));
}

#[test]
fn a_hung_org_holds_its_open_streams() {
    let cdc = Cdc::start();
    let t2 = cdc.token("admin@org2.sfsim.example");
    let org2 = cdc.tenant(2);
    cdc.control(Method::POST, "orgs/2/cdc", json!({"objects": ["Account"]}));
    let (_keep, mut stream) = cdc.subscribe(&t2, &org2);
    cdc.control(Method::POST, "orgs/2/faults/hang", json!({"on": true}));
    // The control API still edits records while the org hangs.
    cdc.control(
        Method::POST,
        "orgs/2/records/Account",
        json!({"Name": "Held Back"}),
    );
    assert!(
        cdc.next_events(&mut stream, Duration::from_millis(500))
            .is_none(),
        "nothing while hung"
    );
    cdc.control(Method::POST, "orgs/2/faults/hang", json!({"on": false}));
    let got = cdc
        .next_events(&mut stream, Duration::from_secs(10))
        .expect("the event once the hang is cleared");
    assert_eq!(cdc.name_of(&t2, &org2, &got), "Held Back");
}
