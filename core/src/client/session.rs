//! A logged-in connection to one org for one user mapping: it reuses its
//! token, logs in again once when Salesforce says the session expired, and
//! makes the REST calls the extension needs.

use super::auth::{self, Grant, Token};
use super::describe::{GlobalDescribe, ObjectDescribe};
use super::error::SalesforceError;
use super::http::{self, Answer, Interrupted, Read, Repeat};
use super::token_shelf::{Shelved, TokenShelf};
use crate::options::ServerOptions;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::Duration;

/// Where and how to connect: server options plus the user mapping's grant.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    pub login_url: String,
    pub instance_url: Option<String>,
    pub api_version: String,
    pub batch_size: u32,
    pub timeout: Duration,
    pub grant: Grant,
    /// The Pub/Sub API, for platform events published by the worker.
    pub pubsub_url: String,
}

impl ConnectionConfig {
    pub fn new(server: &ServerOptions, grant: Grant) -> ConnectionConfig {
        ConnectionConfig {
            login_url: server.login_url.clone(),
            instance_url: server.instance_url.clone(),
            api_version: server.api_version.clone(),
            batch_size: server.batch_size,
            timeout: server.request_timeout,
            grant,
            pubsub_url: server.pubsub_url.clone(),
        }
    }
}

/// Query URLs are kept this short, leaving room for the headers.
pub const MAX_QUERY_URL_BYTES: usize = 15_000;

/// One page of a query's answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage {
    pub total_size: u64,
    pub done: bool,
    pub next_records_url: Option<String>,
    pub records: Vec<serde_json::Map<String, serde_json::Value>>,
}

impl QueryPage {
    pub fn of(body: &[u8]) -> Result<QueryPage, SalesforceError> {
        parse_answer(body, "query")
    }
}

/// One of the org's limits, as `/limits` gives it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Limit {
    pub max: i64,
    pub remaining: i64,
}

/// Where a query page's answer says the query goes on, read without
/// building its records.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageHead {
    pub done: bool,
    pub next_records_url: Option<String>,
}

impl PageHead {
    pub fn of(body: &[u8]) -> Result<PageHead, SalesforceError> {
        parse_answer(body, "query")
    }

    /// The next page's URL, if the query has one.
    pub fn next(self) -> Option<String> {
        self.next_records_url.filter(|_| !self.done)
    }
}

fn parse_answer<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, SalesforceError> {
    serde_json::from_slice(body).map_err(|e| SalesforceError::BadResponse(format!("{what}: {e}")))
}

/// One record's outcome in an sObject Collections answer.
#[derive(Debug, Deserialize)]
pub struct RecordResult {
    pub id: Option<String>,
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<RecordError>,
    pub created: Option<bool>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct RecordError {
    pub status_code: String,
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// An sObject Collections call: the records carry their
/// `attributes.type`, and updates their `id`.
pub enum Collection<'a> {
    Create(Vec<serde_json::Value>),
    Update(Vec<serde_json::Value>),
    Upsert {
        object: &'a str,
        key_field: &'a str,
        records: Vec<serde_json::Value>,
    },
    Delete(&'a [String]),
}

/// A request's body.
pub(super) enum Payload {
    Json(String),
    /// Shared, so that a retry sends the same bytes without a copy.
    Csv(bytes::Bytes),
}

pub struct Session {
    config: ConnectionConfig,
    client: reqwest::Client,
    token: Option<Token>,
    /// Where other processes' sessions of this mapping share the token.
    shelf: Option<Box<dyn TokenShelf>>,
    /// The access token Salesforce last refused, not to be taken again.
    rejected: Option<String>,
    /// A refresh_token grant's state, shared with this session's forks.
    refresh: Arc<Refresh>,
    interrupted: Interrupted,
    /// The last `Sforce-Limit-Info` seen: `api-usage=USED/MAX`.
    pub last_limit_info: Option<String>,
    /// Salesforce's clock at the last answer.
    pub last_server_time: Option<DateTime<Utc>>,
    /// When, on our monotonic clock, that answer came.
    last_answer_at: Option<std::time::Instant>,
    /// API requests sent, for callers that pace or log them.
    pub requests: u64,
}

/// What a session with a refresh_token grant and its forks share.
#[derive(Default)]
struct Refresh {
    /// Held while one of them refreshes: a rotating org kills the refresh
    /// token sent, so each must send the newest.
    login: Mutex<()>,
    state: Mutex<RefreshState>,
}

/// What they know of the refresh token beyond the user mapping's.
#[derive(Default)]
struct RefreshState {
    /// The refresh token to send: the newest Salesforce issued in place of
    /// the mapping's, when the org rotates them.
    current: Option<String>,
    /// Every refresh token Salesforce issued to this session, for `secrets`.
    issued: Vec<String>,
    /// A rotated refresh token the caller has not taken yet.
    untaken: Option<String>,
    /// Salesforce refused the refresh token (invalid_grant: revoked or
    /// expired): no more logins, every call fails with this.
    refused: Option<SalesforceError>,
}

/// Whether a failed refresh means the refresh token is dead for good.
fn refresh_token_refused(e: &SalesforceError) -> bool {
    matches!(e, SalesforceError::Login { error, .. } if error == "invalid_grant")
}

/// getDeleted's answer: which records were deleted in a window, and from
/// when on the list is complete.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecords {
    pub deleted_records: Vec<DeletedRecord>,
    #[serde(deserialize_with = "salesforce_datetime")]
    pub earliest_date_available: DateTime<Utc>,
    #[serde(deserialize_with = "salesforce_datetime")]
    pub latest_date_covered: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecord {
    pub id: String,
    #[serde(deserialize_with = "salesforce_datetime")]
    pub deleted_date: DateTime<Utc>,
}

/// Salesforce writes datetimes as `2024-02-06T20:48:32.000+0000`.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn salesforce_datetime<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    parse_datetime(&s)
        .ok_or_else(|| serde::de::Error::custom(format!("not a Salesforce datetime: {s}")))
}

impl Session {
    pub fn new(
        config: ConnectionConfig,
        interrupted: Interrupted,
    ) -> Result<Session, SalesforceError> {
        let client = http::client(config.timeout)?;
        Ok(Session {
            config,
            client,
            token: None,
            shelf: None,
            rejected: None,
            refresh: Arc::default(),
            interrupted,
            last_limit_info: None,
            last_server_time: None,
            last_answer_at: None,
            requests: 0,
        })
    }

    /// Every credential this session holds: the grant's and the live tokens
    /// Salesforce issued, none of which may ever appear in a message.
    /// A second session sharing this one's connections and token, for a
    /// thread of its own; it counts its own requests. A token it has to
    /// renew is its own: `secrets` tells the caller.
    /// Records per query page, as the server's `batch_size` asks.
    pub fn batch_size(&self) -> u32 {
        self.config.batch_size
    }

    pub fn fork(&self) -> Session {
        Session {
            config: self.config.clone(),
            client: self.client.clone(),
            token: self.token.clone(),
            shelf: None,
            rejected: None,
            refresh: Arc::clone(&self.refresh),
            interrupted: self.interrupted,
            last_limit_info: None,
            last_server_time: None,
            last_answer_at: None,
            requests: 0,
        }
    }

    /// Takes back what a fork learned on its thread: a token it obtained
    /// (shared through the shelf, as this session's own login would be) or
    /// saw refused, the org's usage and clock, and the requests it sent.
    pub fn rejoin(&mut self, fork: Session) {
        let mine = self.token.as_ref().map(|t| t.access_token.clone());
        match fork.token {
            Some(t) if mine.as_deref() != Some(t.access_token.as_str()) => {
                if let Some(shelf) = &self.shelf {
                    shelf.put(&t);
                }
                self.token = Some(t);
            }
            Some(_) => {}
            None if mine.is_some() && fork.rejected == mine => self.token_refused(),
            None => {}
        }
        if fork.last_limit_info.is_some() {
            self.last_limit_info = fork.last_limit_info;
        }
        if fork.last_server_time.is_some() {
            self.last_server_time = fork.last_server_time;
            self.last_answer_at = fork.last_answer_at;
        }
        self.requests += fork.requests;
    }

    /// Salesforce's clock now, carried on from its last answer's `Date`:
    /// the local clock may differ from it by any amount.
    pub fn server_now(&self) -> Option<DateTime<Utc>> {
        let at = self.last_answer_at?;
        let elapsed = chrono::Duration::from_std(at.elapsed()).ok()?;
        Some(self.last_server_time? + elapsed)
    }

    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = self.config.grant.secrets();
        secrets.extend(self.refresh_state().issued.iter().cloned());
        if let Some(t) = &self.token {
            secrets.push(t.access_token.clone());
            secrets.extend(t.refresh_token.clone());
        }
        secrets
    }

    /// Runs `f` with cancellation ignored, for work that must finish (undoing
    /// writes while a transaction aborts, perhaps because of a cancel).
    pub fn uninterruptible<T>(&mut self, f: impl FnOnce(&mut Session) -> T) -> T {
        fn never() -> bool {
            false
        }
        let saved = std::mem::replace(&mut self.interrupted, never);
        let out = f(self);
        self.interrupted = saved;
        out
    }

    /// Shares this session's token through `shelf`, for grants that log in.
    pub fn share_tokens(&mut self, shelf: Box<dyn TokenShelf>) {
        if !matches!(self.config.grant, Grant::AccessToken { .. }) {
            self.shelf = Some(shelf);
        }
    }

    /// The live token, logging in if there is none, for APIs this session
    /// does not speak itself (the Pub/Sub API).
    pub fn live_token(&mut self) -> Result<Token, SalesforceError> {
        self.token()
    }

    /// A refresh token Salesforce issued in place of the one this session
    /// (or a fork of it) sent, once: the org rotates refresh tokens and the
    /// old one no longer works, so the caller stores this one where the
    /// next session will find it. The session itself uses it from now on.
    pub fn take_rotated_refresh_token(&mut self) -> Option<String> {
        self.refresh_state().untaken.take()
    }

    /// Why Salesforce refused this session's refresh token (revoked or
    /// expired: `invalid_grant`), if it did. The session then logs in no
    /// more: every call fails at once with that error, until a new session
    /// is made with another refresh token.
    pub fn disconnected(&self) -> Option<String> {
        self.refresh_state()
            .refused
            .as_ref()
            .map(ToString::to_string)
    }

    fn refresh_state(&self) -> std::sync::MutexGuard<'_, RefreshState> {
        self.refresh
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Salesforce refused the live token elsewhere: the next use logs in
    /// again (or takes a newer token from the shelf).
    pub fn token_refused(&mut self) {
        self.rejected = self.token.take().map(|t| t.access_token);
    }

    fn token(&mut self) -> Result<Token, SalesforceError> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        if let Some(refused) = &self.refresh_state().refused {
            return Err(refused.clone());
        }
        if let Some(t) = self.shelved_token()? {
            self.token = Some(t.clone());
            return Ok(t);
        }
        let login = self.log_in();
        if let Some(shelf) = &self.shelf {
            match &login {
                Ok(t) => shelf.put(t),
                Err(_) => shelf.release(),
            }
        }
        let t = login?;
        self.token = Some(t.clone());
        Ok(t)
    }

    /// Logs in with the grant. A refresh_token grant sends the newest
    /// refresh token, keeps the one a rotating org answers with, and
    /// remembers a refusal.
    fn log_in(&self) -> Result<Token, SalesforceError> {
        let Grant::RefreshToken {
            client_id,
            client_secret,
            refresh_token,
        } = &self.config.grant
        else {
            return auth::login(
                &self.client,
                &self.config.login_url,
                self.config.instance_url.as_deref(),
                &self.config.grant,
                self.interrupted,
            );
        };
        // One refresh at a time among a session and its forks, waiting
        // as the shelf does: interruptibly.
        let _refreshing = loop {
            match self.refresh.login.try_lock() {
                Ok(held) => break held,
                Err(TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(TryLockError::WouldBlock) if (self.interrupted)() => {
                    return Err(SalesforceError::Cancelled)
                }
                Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let sent = {
            let state = self.refresh_state();
            if let Some(refused) = &state.refused {
                return Err(refused.clone());
            }
            state.current.as_ref().unwrap_or(refresh_token).clone()
        };
        let login = auth::login(
            &self.client,
            &self.config.login_url,
            self.config.instance_url.as_deref(),
            &Grant::RefreshToken {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                refresh_token: sent.clone(),
            },
            self.interrupted,
        );
        let mut state = self.refresh_state();
        match &login {
            Ok(t) => {
                if let Some(new) = t.refresh_token.as_ref().filter(|new| **new != sent) {
                    state.current = Some(new.clone());
                    state.issued.push(new.clone());
                    state.untaken = Some(new.clone());
                }
            }
            Err(e) if refresh_token_refused(e) => state.refused = Some(e.clone()),
            Err(_) => {}
        }
        login
    }

    /// A token from the shelf, waiting while another process logs in; None
    /// when this session is to log in itself.
    fn shelved_token(&self) -> Result<Option<Token>, SalesforceError> {
        let Some(shelf) = &self.shelf else {
            return Ok(None);
        };
        let claim_for = self.config.timeout + Duration::from_secs(5);
        loop {
            match shelf.look(self.rejected.as_deref(), claim_for) {
                Shelved::Token(t) => return Ok(Some(t)),
                Shelved::LogIn => return Ok(None),
                Shelved::Wait if (self.interrupted)() => return Err(SalesforceError::Cancelled),
                Shelved::Wait => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Sends a request to a path under the instance (`/services/data/...`),
    /// logging in again once if the session has expired.
    pub(super) fn request(
        &mut self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
        header: Option<(&str, &str)>,
        repeat: Repeat,
        read: Read,
    ) -> Result<Answer, SalesforceError> {
        let payload = body.map(|b| Payload::Json(b.to_string()));
        self.request_with(method, path_and_query, payload, header, repeat, read)
    }

    /// `request` with any body: JSON, or CSV for Bulk ingest uploads.
    pub(super) fn request_with(
        &mut self,
        method: reqwest::Method,
        path_and_query: &str,
        payload: Option<Payload>,
        header: Option<(&str, &str)>,
        repeat: Repeat,
        read: Read,
    ) -> Result<Answer, SalesforceError> {
        let mut relogged = false;
        loop {
            let token = self.token()?;
            let url = format!("{}{}", token.instance_url, path_and_query);
            let client = &self.client;
            let make = || {
                let mut r = client
                    .request(method.clone(), &url)
                    .bearer_auth(&token.access_token)
                    .header("Accept", "application/json");
                if let Some((name, value)) = header {
                    r = r.header(name, value);
                }
                match &payload {
                    Some(Payload::Json(b)) => {
                        r.header("Content-Type", "application/json").body(b.clone())
                    }
                    Some(Payload::Csv(b)) => r.header("Content-Type", "text/csv").body(b.clone()),
                    None => r,
                }
            };
            self.requests += 1;
            match http::send_repeating(make, repeat, read, self.interrupted) {
                Err(e)
                    if e.is_invalid_session()
                        && !relogged
                        && !matches!(self.config.grant, Grant::AccessToken { .. }) =>
                {
                    self.token_refused();
                    relogged = true;
                }
                Err(e) => return Err(e),
                Ok(answer) => {
                    if answer.limit_info.is_some() {
                        self.last_limit_info = answer.limit_info.clone();
                    }
                    if answer.server_time.is_some() {
                        self.last_server_time = answer.server_time;
                        self.last_answer_at = Some(std::time::Instant::now());
                    }
                    return Ok(answer);
                }
            }
        }
    }

    pub(super) fn json<T: serde::de::DeserializeOwned>(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        header: Option<(&str, &str)>,
        repeat: Repeat,
    ) -> Result<T, SalesforceError> {
        let answer = self.request(method, path, body, header, repeat, Read::Whole)?;
        serde_json::from_slice(&answer.body).map_err(|e| {
            SalesforceError::BadResponse(format!("{}: {e}", path.split('?').next().unwrap_or(path)))
        })
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &mut self,
        path: &str,
        header: Option<(&str, &str)>,
    ) -> Result<T, SalesforceError> {
        self.json(reqwest::Method::GET, path, None, header, Repeat::Safe)
    }

    pub(super) fn interrupted(&self) -> Interrupted {
        self.interrupted
    }

    /// Where and how to reach the Pub/Sub API as this session's user.
    pub fn pubsub_url(&self) -> &str {
        &self.config.pubsub_url
    }

    pub fn request_timeout(&self) -> Duration {
        self.config.timeout
    }

    pub(super) fn data_path(&self, rest: &str) -> String {
        format!("/services/data/v{}/{rest}", self.config.api_version)
    }

    pub fn describe_global(&mut self) -> Result<GlobalDescribe, SalesforceError> {
        let path = self.data_path("sobjects");
        self.get_json(&path, None)
    }

    /// The org's limits (`/limits`), by name.
    pub fn limits(&mut self) -> Result<BTreeMap<String, Limit>, SalesforceError> {
        let path = self.data_path("limits");
        self.get_json(&path, None)
    }

    /// The change events the org selected for Change Data Capture on the
    /// standard channel (Tooling API), every page of them.
    pub fn cdc_selection(&mut self) -> Result<Vec<String>, SalesforceError> {
        let encoded: String =
            url::form_urlencoded::byte_serialize(crate::cdc::selection::MEMBERS_SOQL.as_bytes())
                .collect();
        let mut page: QueryPage =
            self.get_json(&self.data_path(&format!("tooling/query?q={encoded}")), None)?;
        let mut records = std::mem::take(&mut page.records);
        while let Some(next) = page.next_records_url.take().filter(|_| !page.done) {
            page = self.get_json(&next, None)?;
            records.append(&mut page.records);
        }
        Ok(crate::cdc::selection::standard_channel_selection(&records))
    }

    pub fn describe(&mut self, object: &str) -> Result<ObjectDescribe, SalesforceError> {
        let path = self.data_path(&format!("sobjects/{object}/describe"));
        self.get_json(&path, None)
    }

    /// Bytes a query's path may take: Salesforce accepts a URI plus headers
    /// of at most 16,384 bytes, and the instance's address comes first.
    pub fn query_path_room(&mut self) -> Result<usize, SalesforceError> {
        Ok(MAX_QUERY_URL_BYTES.saturating_sub(self.token()?.instance_url.len()))
    }

    pub fn query_path_len(&self, soql: &str) -> usize {
        self.query_path(soql, false).len()
    }

    /// The query resource's URL for a statement, as sent.
    fn query_path(&self, soql: &str, include_deleted: bool) -> String {
        let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        self.data_path(&format!(
            "{}?q={encoded}",
            if include_deleted { "queryAll" } else { "query" }
        ))
    }

    /// The first page of a query.
    pub fn query(
        &mut self,
        soql: &str,
        include_deleted: bool,
    ) -> Result<QueryPage, SalesforceError> {
        QueryPage::of(&self.query_text(soql, include_deleted)?)
    }

    /// The page a `nextRecordsUrl` names.
    pub fn next_page(&mut self, next_records_url: &str) -> Result<QueryPage, SalesforceError> {
        QueryPage::of(&self.next_page_text(next_records_url)?)
    }

    /// The first page of a query as sent, for a caller that reads the
    /// records its own way; `PageHead::of` says where the query goes on.
    pub fn query_text(
        &mut self,
        soql: &str,
        include_deleted: bool,
    ) -> Result<Vec<u8>, SalesforceError> {
        let path = self.query_path(soql, include_deleted);
        let options = format!("batchSize={}", self.config.batch_size);
        let header = Some(("Sforce-Query-Options", options.as_str()));
        self.request(
            reqwest::Method::GET,
            &path,
            None,
            header,
            Repeat::Safe,
            Read::Whole,
        )
        .map(|a| a.body)
    }

    /// The page a `nextRecordsUrl` names, as sent.
    pub fn next_page_text(&mut self, next_records_url: &str) -> Result<Vec<u8>, SalesforceError> {
        self.request(
            reqwest::Method::GET,
            next_records_url,
            None,
            None,
            Repeat::Safe,
            Read::Whole,
        )
        .map(|a| a.body)
    }

    /// Records of an object deleted in [start, end) (getDeleted; whole minutes).
    pub fn deleted(
        &mut self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<DeletedRecords, SalesforceError> {
        let format = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let path = self.data_path(&format!(
            "sobjects/{object}/deleted/?start={}&end={}",
            format(start),
            format(end)
        ));
        self.get_json(&path, None)
    }

    /// One sObject Collections call of up to 200 records: all or none, or
    /// each record succeeding or failing on its own.
    pub fn collection(
        &mut self,
        call: Collection,
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let (method, path, records, repeat) = match call {
            Collection::Delete(ids) => {
                let path = self.data_path(&format!(
                    "composite/sobjects?ids={}&allOrNone={all_or_none}",
                    ids.join(",")
                ));
                return self.json(reqwest::Method::DELETE, &path, None, None, Repeat::Safe);
            }
            Collection::Create(records) => (
                reqwest::Method::POST,
                "composite/sobjects".to_string(),
                records,
                Repeat::OnlyIfUnsent,
            ),
            Collection::Update(records) => (
                reqwest::Method::PATCH,
                "composite/sobjects".to_string(),
                records,
                Repeat::Safe,
            ),
            Collection::Upsert {
                object,
                key_field,
                records,
            } => (
                reqwest::Method::PATCH,
                format!("composite/sobjects/{object}/{key_field}"),
                records,
                Repeat::Safe,
            ),
        };
        let body = serde_json::json!({"allOrNone": all_or_none, "records": records});
        let path = self.data_path(&path);
        self.json(method, &path, Some(&body), None, repeat)
    }

    /// Creates up to 200 records in one sObject Collections call, all or none.
    pub fn create(
        &mut self,
        records: Vec<serde_json::Value>,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        self.collection(Collection::Create(records), true)
    }

    /// Updates up to 200 records (each with its `id`), all or none.
    pub fn update(
        &mut self,
        records: Vec<serde_json::Value>,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        self.collection(Collection::Update(records), true)
    }

    /// Creates or updates up to 200 records by an external id field, all or none.
    pub fn upsert(
        &mut self,
        object: &str,
        key_field: &str,
        records: Vec<serde_json::Value>,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        self.collection(
            Collection::Upsert {
                object,
                key_field,
                records,
            },
            true,
        )
    }

    /// Deletes up to 200 records, all or none.
    pub fn delete(&mut self, ids: &[String]) -> Result<Vec<RecordResult>, SalesforceError> {
        self.collection(Collection::Delete(ids), true)
    }

    /// Up to 200 records' fields by id; None for an id that is not there.
    pub fn retrieve(
        &mut self,
        object: &str,
        ids: &[String],
        fields: &[String],
    ) -> Result<Vec<Option<serde_json::Map<String, serde_json::Value>>>, SalesforceError> {
        let path = self.data_path(&format!("composite/sobjects/{object}"));
        let body = serde_json::json!({"ids": ids, "fields": fields});
        self.json(
            reqwest::Method::POST,
            &path,
            Some(&body),
            None,
            Repeat::Safe,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::DEFAULT_API_VERSION;
    use sfsim::server::{spawn, Options};

    fn never_interrupted() -> bool {
        false
    }

    fn config(base: &str, grant: Grant) -> ConnectionConfig {
        ConnectionConfig {
            pubsub_url: String::new(),
            login_url: base.to_string(),
            instance_url: None,
            api_version: DEFAULT_API_VERSION.into(),
            batch_size: 200,
            timeout: Duration::from_secs(10),
            grant,
        }
    }

    fn password() -> Grant {
        Grant::Password {
            client_id: "sfsim-client-id".into(),
            client_secret: "sfsim-client-secret".into(),
            username: "admin@sfsim.example".into(),
            password: "sfsim-passwordSFSIMTOKEN".into(),
        }
    }

    #[test]
    fn every_grant_logs_in() {
        let sim = spawn(Options::demo()).unwrap();
        let key = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../sfsim/fixtures/jwt/private.pem"
        ))
        .unwrap();
        let grants = [
            password(),
            Grant::RefreshToken {
                client_id: "sfsim-client-id".into(),
                client_secret: None,
                refresh_token: sfsim::auth::DEMO_REFRESH_TOKEN.into(),
            },
            Grant::ClientCredentials {
                client_id: "sfsim-client-id".into(),
                client_secret: "sfsim-client-secret".into(),
            },
            Grant::JwtBearer {
                client_id: "sfsim-client-id".into(),
                username: "admin@sfsim.example".into(),
                private_key: key,
            },
        ];
        for grant in grants {
            let mut s =
                Session::new(config(&sim.base_url, grant.clone()), never_interrupted).unwrap();
            let page = s
                .query("SELECT COUNT() FROM Account", false)
                .unwrap_or_else(|e| panic!("{grant:?}: {e}"));
            assert_eq!(page.total_size, 40);
        }
    }

    #[test]
    fn wrong_password_is_a_login_error() {
        let sim = spawn(Options::demo()).unwrap();
        let mut grant = password();
        if let Grant::Password { password, .. } = &mut grant {
            *password = "nope".into();
        }
        let mut s = Session::new(config(&sim.base_url, grant), never_interrupted).unwrap();
        let e = s.describe_global().unwrap_err();
        assert_eq!(
            e,
            SalesforceError::Login {
                error: "invalid_grant".into(),
                description: "authentication failure".into()
            }
        );
    }

    #[test]
    fn an_expired_session_logs_in_again_once() {
        let sim = spawn(Options::demo()).unwrap();
        let mut s = Session::new(config(&sim.base_url, password()), never_interrupted).unwrap();
        s.describe("Contact").unwrap();
        sim.sim.auth.lock().expire_all();
        assert_eq!(s.describe("Contact").unwrap().name, "Contact");
        let logins = sim
            .sim
            .log
            .lock()
            .since(0)
            .iter()
            .filter(|r| r.path == "/services/oauth2/token")
            .count();
        assert_eq!(logins, 2);
        assert!(s
            .last_limit_info
            .as_deref()
            .is_some_and(|l| l.starts_with("api-usage=")));
    }

    #[test]
    fn pages_follow_next_records_url() {
        let sim = spawn(Options::demo()).unwrap();
        let mut s = Session::new(config(&sim.base_url, password()), never_interrupted).unwrap();
        let first = s.query("SELECT Id FROM Contact", false).unwrap();
        assert_eq!(
            (first.total_size, first.records.len(), first.done),
            (400, 200, false)
        );
        let second = s
            .next_page(first.next_records_url.as_deref().unwrap())
            .unwrap();
        assert!(second.done);
    }

    #[test]
    fn deleted_records_come_with_the_orgs_clock() {
        let sim = spawn(Options::demo()).unwrap();
        let mut s = Session::new(config(&sim.base_url, password()), never_interrupted).unwrap();
        let id = s
            .query("SELECT Id FROM Account LIMIT 1", false)
            .unwrap()
            .records[0]["Id"]
            .as_str()
            .unwrap()
            .to_string();
        s.delete(std::slice::from_ref(&id)).unwrap();
        sim.sim.clock.advance(chrono::Duration::days(2));
        let start = s.last_server_time.unwrap() - chrono::Duration::hours(1);
        s.describe("Account").unwrap();
        let now = s.last_server_time.unwrap();
        assert!(
            now - start > chrono::Duration::days(2),
            "the Date header follows the simulated clock"
        );
        let carried = s.server_now().unwrap();
        assert!(
            carried >= now && carried - now < chrono::Duration::seconds(5),
            "between answers the session carries Salesforce's clock on: {carried} after {now}"
        );
        assert!(carried - Utc::now() > chrono::Duration::days(1));
        let deleted = s.deleted("Account", start, now).unwrap();
        assert_eq!(
            deleted
                .deleted_records
                .iter()
                .map(|d| d.id.as_str())
                .collect::<Vec<_>>(),
            vec![id.as_str()]
        );
        assert!(deleted.earliest_date_available < start);
        // The describe after two days met an expired token and was sent again.
        assert_eq!(s.requests, 5);
    }

    /// A shelf in this process, as shared memory is across processes.
    #[derive(Clone, Default)]
    struct MemoryShelf(std::sync::Arc<std::sync::Mutex<(Option<Token>, bool)>>);

    impl TokenShelf for MemoryShelf {
        fn look(&self, rejected: Option<&str>, _claim_for: Duration) -> Shelved {
            let mut shelf = self.0.lock().unwrap();
            match &shelf.0 {
                Some(t) if Some(t.access_token.as_str()) != rejected => Shelved::Token(t.clone()),
                _ if shelf.1 => Shelved::Wait,
                _ => {
                    shelf.1 = true;
                    Shelved::LogIn
                }
            }
        }
        fn put(&self, token: &Token) {
            *self.0.lock().unwrap() = (Some(token.clone()), false);
        }
        fn release(&self) {
            self.0.lock().unwrap().1 = false;
        }
    }

    #[test]
    fn a_fork_on_a_thread_gives_back_its_login_and_what_it_saw() {
        let sim = spawn(Options::demo()).unwrap();
        let shelf = MemoryShelf::default();
        let mut s = Session::new(config(&sim.base_url, password()), never_interrupted).unwrap();
        s.share_tokens(Box::new(shelf.clone()));
        let mut fork = s.fork();
        let fork = std::thread::spawn(move || {
            fork.limits().unwrap();
            fork
        })
        .join()
        .unwrap();
        assert!(s.token.is_none() && s.requests == 0);
        s.rejoin(fork);
        let token = s.token.clone().expect("the fork's login came back");
        assert_eq!(s.requests, 1);
        assert!(s.last_limit_info.is_some() && s.server_now().is_some());
        assert!(
            matches!(shelf.look(None, Duration::from_secs(1)), Shelved::Token(t) if t.access_token == token.access_token),
            "other processes see the fork's token"
        );
        // A fork that found the token refused and could not log in again
        // takes it from the session too.
        let mut fork = s.fork();
        fork.token_refused();
        s.rejoin(fork);
        assert!(s.token.is_none(), "a refused token is not used again");
    }

    #[test]
    fn sessions_sharing_a_shelf_log_in_once_and_renew_once() {
        let sim = spawn(Options::demo()).unwrap();
        let shelf = MemoryShelf::default();
        let mut sessions: Vec<Session> = (0..3)
            .map(|_| {
                let mut s =
                    Session::new(config(&sim.base_url, password()), never_interrupted).unwrap();
                s.share_tokens(Box::new(shelf.clone()));
                s
            })
            .collect();
        let logins = || {
            sim.sim
                .log
                .lock()
                .since(0)
                .iter()
                .filter(|r| r.path == "/services/oauth2/token")
                .count()
        };
        for s in &mut sessions {
            s.limits().unwrap();
        }
        assert_eq!(
            logins(),
            1,
            "the first session logged in, the others took its token"
        );
        sim.sim.auth.lock().expire_all();
        for s in &mut sessions {
            s.limits().unwrap();
        }
        assert_eq!(
            logins(),
            2,
            "the first to meet the expiry renewed it for all"
        );
        let tokens: std::collections::HashSet<_> = sessions
            .iter()
            .map(|s| s.token.as_ref().unwrap().access_token.clone())
            .collect();
        assert_eq!(tokens.len(), 1);
    }

    /// A server that answers each connection with the next canned response.
    fn scripted_server(answers: Vec<String>) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for answer in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        url
    }

    fn answer(status: &str, body: &str) -> String {
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    }

    fn with_token(base: &str) -> ConnectionConfig {
        let mut c = config(
            base,
            Grant::AccessToken {
                access_token: "t".into(),
            },
        );
        c.instance_url = Some(base.to_string());
        c
    }

    #[test]
    fn server_unavailable_is_retried_until_it_answers() {
        let unavailable = answer("503 Service Unavailable", "");
        let base = scripted_server(vec![
            unavailable.clone(),
            unavailable,
            answer("200 OK", r#"{"totalSize":7,"done":true,"records":[]}"#),
        ]);
        let mut s = Session::new(with_token(&base), never_interrupted).unwrap();
        assert_eq!(
            s.query("SELECT COUNT() FROM Account", false)
                .unwrap()
                .total_size,
            7
        );
    }

    #[test]
    fn a_request_that_times_out_is_not_sent_again() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        let mut c = with_token(&base);
        c.timeout = Duration::from_millis(300);
        let mut s = Session::new(c, never_interrupted).unwrap();
        let e = s.query("SELECT Id FROM Account", false).unwrap_err();
        assert!(matches!(e, SalesforceError::TimedOut(_)), "{e:?}");
        assert!(e.is_retryable(), "a caller may try later");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one attempt, not five");
    }

    #[test]
    fn a_malformed_answer_is_an_error_not_a_crash() {
        let base = scripted_server(vec![answer("200 OK", r#"{"records"#)]);
        let mut s = Session::new(with_token(&base), never_interrupted).unwrap();
        assert!(matches!(
            s.query("SELECT Id FROM Account", false),
            Err(SalesforceError::BadResponse(_))
        ));
    }

    #[test]
    fn unreachable_org_is_a_network_error_after_retries() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Session::new(
            config(&format!("http://127.0.0.1:{port}"), password()),
            never_interrupted,
        )
        .unwrap();
        assert!(matches!(
            s.describe_global(),
            Err(SalesforceError::ConnectFailed(_))
        ));
    }
}
