//! The Composite resource, `POST /composite`: up to 25 GETs in one call that
//! counts as one API request, each answering on its own (allOrNone false).
//! Polls use it to send several syncs' change queries and getDeleted calls
//! at once.

use super::error::{from_response, SalesforceError};
use super::http::{Read, Repeat};
use super::session::{DeletedRecords, Session};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashSet};

pub const MAX_SUBREQUESTS: usize = 25;
/// Of a call's subrequests, at most this many may be queries (query,
/// queryAll, a `nextRecordsUrl` page) or sObject Collections calls.
pub const MAX_QUERY_SUBREQUESTS: usize = 5;

const DATA_PREFIX: &str = "/services/data/";

/// One GET of a composite call. Polls only read, so GET is the only method,
/// which also makes the whole call safe to send again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subrequest {
    /// Names the subrequest's answer: letters, digits and `_`, unique in a call.
    pub reference_id: String,
    /// `/services/data/vNN.N/...`, its query string percent-encoded.
    pub url: String,
    pub http_headers: BTreeMap<String, String>,
}

impl Subrequest {
    /// Whether Salesforce counts it among a call's five queries.
    pub fn counts_as_query(&self) -> bool {
        let path = self.url.split(['?', '#']).next().unwrap_or_default();
        let after_version: Vec<&str> = path
            .trim_start_matches(DATA_PREFIX)
            .split('/')
            .filter(|s| !s.is_empty())
            .skip(1)
            .collect();
        matches!(
            after_version.as_slice(),
            ["query" | "queryAll", ..] | ["composite", "sobjects", ..]
        )
    }

    fn to_json(&self) -> Json {
        let mut sub = serde_json::json!({
            "method": "GET",
            "url": self.url,
            "referenceId": self.reference_id,
        });
        if !self.http_headers.is_empty() {
            sub["httpHeaders"] = serde_json::json!(self.http_headers);
        }
        sub
    }
}

/// One subrequest's answer.
#[derive(Debug)]
pub struct SubResponse {
    pub reference_id: String,
    pub status: u16,
    /// The body of a 2xx answer, or the error its error array says.
    pub outcome: Result<Json, SalesforceError>,
}

impl SubResponse {
    /// A query subrequest's page as JSON text, as `Session::query_text` and
    /// `next_page_text` give it: `PageHead`, `QueryPage` and the extension's
    /// page reader read it the same way.
    pub fn page_text(&self) -> Result<Vec<u8>, SalesforceError> {
        let body = self.outcome.as_ref().map_err(Clone::clone)?;
        if !body.is_object() {
            return Err(SalesforceError::BadResponse(format!(
                "query: subrequest {} answered no page",
                self.reference_id
            )));
        }
        serde_json::to_vec(body).map_err(|e| SalesforceError::BadResponse(format!("query: {e}")))
    }

    /// A getDeleted subrequest's answer, as `Session::deleted` gives it.
    pub fn deleted_records(&self) -> Result<DeletedRecords, SalesforceError> {
        let body = self.outcome.as_ref().map_err(Clone::clone)?;
        DeletedRecords::deserialize(body)
            .map_err(|e| SalesforceError::BadResponse(format!("deleted: {e}")))
    }
}

fn refused(message: String) -> SalesforceError {
    SalesforceError::Config(format!("cannot send this composite call: {message}"))
}

fn valid_reference_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Refuses, before anything is sent, a call Salesforce would refuse whole
/// (too many subrequests or queries, bad or repeated referenceIds, URLs
/// outside the data API) or misread.
pub fn check_call(subrequests: &[Subrequest]) -> Result<(), SalesforceError> {
    if subrequests.len() > MAX_SUBREQUESTS {
        return Err(refused(format!(
            "it has {} subrequests, and a call holds at most {MAX_SUBREQUESTS}",
            subrequests.len()
        )));
    }
    let queries = subrequests.iter().filter(|s| s.counts_as_query()).count();
    if queries > MAX_QUERY_SUBREQUESTS {
        return Err(refused(format!(
            "it has {queries} queries, and a call holds at most {MAX_QUERY_SUBREQUESTS}"
        )));
    }
    let mut seen = HashSet::new();
    for sub in subrequests {
        let id = &sub.reference_id;
        if !valid_reference_id(id) {
            return Err(refused(format!(
                "referenceId '{id}' holds characters other than letters, digits and '_'"
            )));
        }
        if !seen.insert(id.as_str()) {
            return Err(refused(format!("referenceId '{id}' is used twice")));
        }
        if !sub.url.starts_with(DATA_PREFIX) {
            return Err(refused(format!(
                "subrequest {id} is not under {DATA_PREFIX}"
            )));
        }
        // Salesforce replaces `@{ref.field}` in a URL, encoded or not, by a
        // value from another subrequest; these subrequests refer to none.
        let lower = sub.url.to_ascii_lowercase();
        if lower.contains("@{") || lower.contains("%40%7b") {
            return Err(refused(format!(
                "subrequest {id}'s URL holds '@{{', which Salesforce would read as a reference"
            )));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompositeAnswer {
    composite_response: Vec<AnswerEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerEntry {
    #[serde(default)]
    body: Json,
    http_status_code: u16,
    reference_id: Option<String>,
}

fn error_of(status: u16, body: &Json) -> SalesforceError {
    from_response(status, &serde_json::to_vec(body).unwrap_or_default())
}

/// The answers to `sent`, in its order, from a 200 composite answer.
fn read_answer(sent: &[Subrequest], body: &[u8]) -> Result<Vec<SubResponse>, SalesforceError> {
    let answer: CompositeAnswer = serde_json::from_slice(body)
        .map_err(|e| SalesforceError::BadResponse(format!("composite: {e}")))?;
    let mut entries = answer.composite_response;
    // Salesforce is reported to refuse a whole call also as one entry
    // without a referenceId.
    if let [AnswerEntry {
        reference_id: None,
        http_status_code,
        body,
    }] = entries.as_slice()
    {
        return Err(error_of(*http_status_code, body));
    }
    sent.iter()
        .map(|sub| {
            let at = entries
                .iter()
                .position(|e| e.reference_id.as_deref() == Some(sub.reference_id.as_str()))
                .ok_or_else(|| {
                    SalesforceError::BadResponse(format!(
                        "composite: no answer to subrequest {}",
                        sub.reference_id
                    ))
                })?;
            let entry = entries.swap_remove(at);
            let status = entry.http_status_code;
            let outcome = if (200..300).contains(&status) {
                Ok(entry.body)
            } else {
                Err(error_of(status, &entry.body))
            };
            Ok(SubResponse {
                reference_id: sub.reference_id.clone(),
                status,
                outcome,
            })
        })
        .collect()
}

impl Session {
    /// Sends the subrequests in one composite call (one API request, with
    /// the session's retries and re-login) and answers each one's outcome
    /// in their order. An error is the whole call's.
    pub fn composite(
        &mut self,
        subrequests: &[Subrequest],
    ) -> Result<Vec<SubResponse>, SalesforceError> {
        check_call(subrequests)?;
        if subrequests.is_empty() {
            return Ok(Vec::new());
        }
        let body = serde_json::json!({
            "allOrNone": false,
            "collateSubrequests": false,
            "compositeRequest": subrequests.iter().map(Subrequest::to_json).collect::<Vec<_>>(),
        });
        let path = self.data_path("composite");
        let answer = self.request(
            reqwest::Method::POST,
            &path,
            Some(&body),
            None,
            Repeat::Safe,
            Read::Whole,
        )?;
        read_answer(subrequests, &answer.body)
    }

    /// The first page of a query, as `query_text` asks for it.
    pub fn query_subrequest(
        &self,
        reference_id: &str,
        soql: &str,
        include_deleted: bool,
        batch_size: u32,
    ) -> Subrequest {
        let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        let resource = if include_deleted { "queryAll" } else { "query" };
        Subrequest {
            reference_id: reference_id.to_string(),
            url: self.data_path(&format!("{resource}?q={encoded}")),
            http_headers: BTreeMap::from([(
                "Sforce-Query-Options".to_string(),
                format!("batchSize={batch_size}"),
            )]),
        }
    }

    /// The page a query's `nextRecordsUrl` names.
    pub fn next_page_subrequest(&self, reference_id: &str, next_records_url: &str) -> Subrequest {
        Subrequest {
            reference_id: reference_id.to_string(),
            url: next_records_url.to_string(),
            http_headers: BTreeMap::new(),
        }
    }

    /// getDeleted over [start, end), as `deleted` asks for it.
    pub fn deleted_subrequest(
        &self,
        reference_id: &str,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Subrequest {
        let format = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        Subrequest {
            reference_id: reference_id.to_string(),
            url: self.data_path(&format!(
                "sobjects/{object}/deleted/?start={}&end={}",
                format(start),
                format(end)
            )),
            http_headers: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::auth::Grant;
    use crate::client::session::{ConnectionConfig, PageHead, QueryPage};
    use crate::options::DEFAULT_API_VERSION;
    use crate::sync::queries;
    use sfsim::request_log::LoggedRequest;
    use sfsim::server::{spawn, Options, Running};
    use std::time::Duration;

    fn never_interrupted() -> bool {
        false
    }

    /// sfsim's admin's credentials.
    pub(crate) fn admin_grant() -> Grant {
        Grant::Password {
            client_id: "sfsim-client-id".into(),
            client_secret: "sfsim-client-secret".into(),
            username: "admin@sfsim.example".into(),
            password: "sfsim-passwordSFSIMTOKEN".into(),
        }
    }

    /// A session of sfsim's admin at `base`, with pages of 200.
    pub(crate) fn session_at(base: &str) -> Session {
        let config = ConnectionConfig {
            pubsub_url: String::new(),
            login_url: base.to_string(),
            instance_url: None,
            api_version: DEFAULT_API_VERSION.into(),
            batch_size: 200,
            timeout: Duration::from_secs(10),
            grant: admin_grant(),
        };
        Session::new(config, never_interrupted).unwrap()
    }

    /// A session that would reach nothing: for what must fail before sending.
    pub(crate) fn offline_session() -> Session {
        session_at("http://127.0.0.1:9")
    }

    /// Data API requests sfsim logged after `seq`, login excluded.
    fn logged_after(sim: &Running, seq: u64) -> Vec<LoggedRequest> {
        sim.sim
            .log
            .lock()
            .since(seq)
            .into_iter()
            .filter(|r| r.path.starts_with(DATA_PREFIX))
            .collect()
    }

    fn last_seq(sim: &Running) -> u64 {
        sim.sim
            .log
            .lock()
            .since(0)
            .last()
            .map(|r| r.seq)
            .unwrap_or(0)
    }

    fn first_id(s: &mut Session, object: &str) -> String {
        s.query(
            &format!("SELECT Id FROM {object} ORDER BY Id LIMIT 1"),
            false,
        )
        .unwrap()
        .records[0]["Id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn used(limit_info: &Option<String>) -> i64 {
        crate::sync::pacing::parse_limit_info(limit_info.as_deref().unwrap())
            .unwrap()
            .0
    }

    fn fields() -> Vec<String> {
        vec!["Id".into(), "SystemModstamp".into()]
    }

    #[test]
    fn subrequests_are_built_as_direct_calls_send_them() {
        let s = offline_session();
        let q = s.query_subrequest("q", "SELECT Id FROM Contact WHERE X = 'a+b'", true, 300);
        assert_eq!(
            q.url,
            "/services/data/v62.0/queryAll?q=SELECT+Id+FROM+Contact+WHERE+X+%3D+%27a%2Bb%27"
        );
        assert_eq!(q.http_headers["Sforce-Query-Options"], "batchSize=300");
        assert!(q.counts_as_query());
        let t = |h| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 1, h, 5, 0).unwrap();
        let d = s.deleted_subrequest("d", "Lead", t(9), t(10));
        assert_eq!(
            d.url,
            "/services/data/v62.0/sobjects/Lead/deleted/?start=2026-03-01T09:05:00Z&end=2026-03-01T10:05:00Z"
        );
        assert!(!d.counts_as_query());
        assert!(s
            .next_page_subrequest("n", "/services/data/v62.0/query/01gX-200")
            .counts_as_query());
        let collections = Subrequest {
            url: "/services/data/v62.0/composite/sobjects/Lead?ids=x&fields=Id".into(),
            ..d.clone()
        };
        assert!(collections.counts_as_query());
        assert_eq!(
            d.to_json(),
            serde_json::json!({"method": "GET", "url": d.url, "referenceId": "d"})
        );
    }

    #[test]
    fn calls_salesforce_would_refuse_are_refused_before_sending() {
        let mut s = offline_session();
        let describe = |i: usize| Subrequest {
            reference_id: format!("d{i}"),
            url: "/services/data/v62.0/sobjects/Lead/describe".into(),
            http_headers: BTreeMap::new(),
        };
        let query =
            |i: usize| s.query_subrequest(&format!("q{i}"), "SELECT Id FROM Lead", false, 200);
        let mut full: Vec<Subrequest> = (0..20).map(describe).collect();
        full.extend((0..5).map(query));
        assert_eq!(check_call(&full), Ok(()));
        let refusals = [
            [full.clone(), vec![describe(99)]].concat(),
            [full[1..].to_vec(), vec![query(99)]].concat(),
            vec![describe(1), describe(1)],
            vec![Subrequest {
                reference_id: "a-b".into(),
                ..describe(0)
            }],
            vec![Subrequest {
                url: "/limits".into(),
                ..describe(0)
            }],
            vec![s.query_subrequest("q", "SELECT Id FROM Lead WHERE Name = '@{x.y}'", false, 200)],
        ];
        for call in refusals {
            // Refused without a request: the offline session would fail to connect.
            assert!(
                matches!(s.composite(&call), Err(SalesforceError::Config(_))),
                "{call:?}"
            );
        }
        assert_eq!(s.composite(&[]).unwrap().len(), 0);
        assert_eq!(s.requests, 0);
    }

    #[test]
    fn answers_are_read_by_reference_and_failures_stay_apart() {
        let sent = [
            offline_session().query_subrequest("a", "SELECT Id FROM Lead", false, 200),
            offline_session().query_subrequest("b", "SELECT Nope FROM Lead", false, 200),
        ];
        let body = br#"{"compositeResponse":[
            {"body":[{"message":"No such column 'Nope'","errorCode":"INVALID_FIELD"}],"httpHeaders":{},"httpStatusCode":400,"referenceId":"b"},
            {"body":{"totalSize":1,"done":true,"records":[{"Id":"00Q1"}]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"a"}]}"#;
        let answers = read_answer(&sent, body).unwrap();
        assert_eq!(answers[0].reference_id, "a");
        let page = QueryPage::of(&answers[0].page_text().unwrap()).unwrap();
        assert_eq!(page.records[0]["Id"], "00Q1");
        assert_eq!(answers[1].status, 400);
        assert_eq!(
            answers[1].page_text().unwrap_err().api_code(),
            Some("INVALID_FIELD")
        );
        let wrapped = br#"{"compositeResponse":[{"body":[{"message":"The request can't contain more than 25 operations.","errorCode":"LIMIT_EXCEEDED"}],"httpHeaders":{},"httpStatusCode":400,"referenceId":null}]}"#;
        assert_eq!(
            read_answer(&sent, wrapped).unwrap_err().api_code(),
            Some("LIMIT_EXCEEDED")
        );
        let short = br#"{"compositeResponse":[{"body":null,"httpStatusCode":200,"referenceId":"a"},{"body":null,"httpStatusCode":200,"referenceId":"c"}]}"#;
        assert!(matches!(
            read_answer(&sent, short),
            Err(SalesforceError::BadResponse(_))
        ));
        assert!(matches!(
            read_answer(&sent, b"{\"compositeResponse\""),
            Err(SalesforceError::BadResponse(_))
        ));
    }

    #[test]
    fn several_objects_change_queries_and_deletes_are_one_request() {
        let sim = spawn(Options::demo()).unwrap();
        // Well past the seeded records' SystemModstamps.
        sim.sim.clock.advance(chrono::Duration::minutes(10));
        let mut s = session_at(&sim.base_url);
        let lead = first_id(&mut s, "Lead");
        s.delete(std::slice::from_ref(&lead)).unwrap();
        let contact = first_id(&mut s, "Contact");
        s.update(vec![
            serde_json::json!({"attributes": {"type": "Contact"}, "id": contact, "Title": "CFO"}),
        ])
        .unwrap();
        let since = s.last_server_time.unwrap() - chrono::Duration::seconds(5);
        // getDeleted covers whole minutes that are over.
        sim.sim.clock.advance(chrono::Duration::minutes(2));
        s.limits().unwrap();
        let now = s.last_server_time.unwrap();
        let used_before = used(&s.last_limit_info);
        let (requests_before, seq) = (s.requests, last_seq(&sim));

        let mut subrequests = Vec::new();
        for object in ["Contact", "Account", "Lead"] {
            let soql = queries::changes(object, &fields(), Some(since));
            subrequests.push(s.query_subrequest(&format!("{object}_q"), &soql, true, 200));
            subrequests.push(s.deleted_subrequest(&format!("{object}_d"), object, since, now));
        }
        let answers = s.composite(&subrequests).unwrap();

        assert_eq!(s.requests - requests_before, 1);
        assert_eq!(used(&s.last_limit_info), used_before + 1);
        let logged = logged_after(&sim, seq);
        assert_eq!(logged.len(), 7, "the call and its six subrequests");
        assert_eq!(logged.iter().filter(|r| r.counted).count(), 1);
        assert!(logged[0].counted && logged[0].path.ends_with("/composite"));
        let queried: Vec<&str> = logged[1..]
            .iter()
            .map(|r| r.reference_id.as_deref().unwrap())
            .collect();
        assert_eq!(
            queried,
            [
                "Contact_q",
                "Contact_d",
                "Account_q",
                "Account_d",
                "Lead_q",
                "Lead_d"
            ]
        );

        let ids = |page: &[u8]| -> Vec<String> {
            QueryPage::of(page)
                .unwrap()
                .records
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&answers[0].page_text().unwrap()), [contact]);
        assert!(ids(&answers[2].page_text().unwrap()).is_empty());
        let lead_page = answers[4].page_text().unwrap();
        assert_eq!(ids(&lead_page), std::slice::from_ref(&lead));
        let deleted_lead = &QueryPage::of(&lead_page).unwrap().records[0];
        assert_eq!(
            deleted_lead["IsDeleted"], true,
            "queryAll shows the deleted"
        );
        let deleted: Vec<String> = answers[5]
            .deleted_records()
            .unwrap()
            .deleted_records
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(deleted, [lead]);
        assert!(answers[1]
            .deleted_records()
            .unwrap()
            .deleted_records
            .is_empty());
        assert_eq!(
            answers[5].deleted_records().unwrap().latest_date_covered,
            s.deleted("Lead", since, now).unwrap().latest_date_covered,
            "the same answer as getDeleted on its own"
        );
    }

    #[test]
    fn a_change_query_pages_through_its_next_records_url_in_the_next_call() {
        let sim = spawn(Options::demo()).unwrap();
        let mut s = session_at(&sim.base_url);
        let soql = queries::changes("Contact", &fields(), None);
        let first = s.composite(&[s.query_subrequest("contacts", &soql, true, 200)]);
        let first = first.unwrap().remove(0).page_text().unwrap();
        let direct = s.query_text(&soql, true).unwrap();
        let head = PageHead::of(&first).unwrap();
        assert!(!head.done);
        let next = head.next().unwrap();
        assert_eq!(
            QueryPage::of(&first).unwrap().records,
            QueryPage::of(&direct).unwrap().records,
            "a page fetched in a composite call is the page fetched on its own"
        );

        let seq = last_seq(&sim);
        let second = s.composite(&[s.next_page_subrequest("contacts", &next)]);
        let second = QueryPage::of(&second.unwrap()[0].page_text().unwrap()).unwrap();
        assert_eq!((second.records.len(), second.done), (200, true));
        assert_eq!(
            second.records,
            s.next_page(&next).unwrap().records,
            "the same page as its nextRecordsUrl on its own"
        );
        let logged = logged_after(&sim, seq);
        assert_eq!(logged[1].via, Some("composite"));
        assert_eq!(logged[1].soql.as_deref(), Some(soql.as_str()));
        assert_eq!(logged[1].records, Some(200));
    }

    #[test]
    fn a_failing_subrequest_leaves_the_others_standing() {
        let sim = spawn(Options::demo()).unwrap();
        let mut s = session_at(&sim.base_url);
        let now = chrono::Utc::now();
        let subrequests = [
            s.query_subrequest("good", "SELECT Id FROM Account LIMIT 3", false, 200),
            s.query_subrequest("badField", "SELECT Nope FROM Account", false, 200),
            s.query_subrequest("malformed", "SELEC Id FROM Account", false, 200),
            s.deleted_subrequest(
                "badObject",
                "Nope__c",
                now - chrono::Duration::hours(1),
                now,
            ),
            s.deleted_subrequest("deletes", "Account", now - chrono::Duration::hours(1), now),
        ];
        let answers = s.composite(&subrequests).unwrap();
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [200, 400, 400, 404, 200]);
        assert_eq!(
            QueryPage::of(&answers[0].page_text().unwrap())
                .unwrap()
                .records
                .len(),
            3
        );
        let error = answers[1].page_text().unwrap_err();
        assert_eq!(error.api_code(), Some("INVALID_FIELD"));
        assert!(matches!(error, SalesforceError::Api { status: 400, .. }));
        assert_eq!(
            answers[2].outcome.as_ref().unwrap_err().api_code(),
            Some("MALFORMED_QUERY")
        );
        assert!(answers[3].deleted_records().is_err());
        assert!(answers[4].deleted_records().is_ok());
    }

    /// A fault seed whose first draw refuses a request with 503 and whose
    /// second lets it through.
    fn seed_refusing_once(rates: &sfsim::faults::FaultRates) -> u64 {
        use sfsim::faults::{Fault, Faults};
        (0..1000)
            .find(|&seed| {
                let mut f = Faults::new(sfsim::faults::FaultRates {
                    seed,
                    ..rates.clone()
                });
                f.draw(false) == Some(Fault::ServerUnavailable) && f.draw(false).is_none()
            })
            .expect("some seed refuses once")
    }

    #[test]
    fn a_server_unavailable_composite_call_is_retried() {
        let sim = spawn(Options::demo()).unwrap();
        let mut s = session_at(&sim.base_url);
        s.limits().unwrap();
        let mut rates = sfsim::faults::FaultRates {
            server_unavailable: 0.5,
            ..Default::default()
        };
        rates.seed = seed_refusing_once(&rates);
        sim.sim.faults.lock().set_rates(rates);
        let seq = last_seq(&sim);
        let answers = s
            .composite(&[s.query_subrequest("n", "SELECT COUNT() FROM Lead", false, 200)])
            .unwrap();
        assert_eq!(sim.sim.faults.lock().injected, 1, "the first try met a 503");
        let total = QueryPage::of(&answers[0].page_text().unwrap())
            .unwrap()
            .total_size;
        assert!(total > 0);
        let counted: Vec<bool> = logged_after(&sim, seq)
            .iter()
            .filter(|r| r.via.is_none())
            .map(|r| r.counted)
            .collect();
        assert!(counted.ends_with(&[true]), "{counted:?}");
        assert_eq!(counted.iter().filter(|c| **c).count(), 1);
    }

    #[test]
    fn a_refused_call_is_the_whole_calls_error_and_an_expired_session_logs_in_again() {
        let sim = spawn(Options::demo()).unwrap();
        let mut s = session_at(&sim.base_url);
        let call = [s.query_subrequest("n", "SELECT COUNT() FROM Lead", false, 200)];
        s.composite(&call).unwrap();
        sim.sim.faults.lock().echo_token = Some(
            serde_json::from_value(serde_json::json!({"count": 1, "path_contains": "/composite"}))
                .unwrap(),
        );
        let e = s.composite(&call).unwrap_err();
        assert_eq!(e.api_code(), Some("UNKNOWN_EXCEPTION"));
        assert!(
            s.secrets()
                .iter()
                .any(|secret| e.to_string().contains(secret)),
            "the echoed token is among the secrets callers scrub"
        );
        sim.sim.auth.lock().expire_all();
        assert!(s.composite(&call).unwrap()[0].outcome.is_ok());
        let logins = sim
            .sim
            .log
            .lock()
            .since(0)
            .iter()
            .filter(|r| r.path == "/services/oauth2/token")
            .count();
        assert_eq!(logins, 2);
    }
}
