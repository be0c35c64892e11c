//! The one HTTP client factory: rustls, timeouts, bounded retries with
//! backoff, and waits that give way when the statement is cancelled.

use super::error::{from_response, SalesforceError};
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

/// How many times a retryable failure is tried again.
pub const MAX_RETRIES: u32 = 4;
const FIRST_BACKOFF_MS: u64 = 250;
/// How often a wait looks for a cancellation.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

static RUNTIME: Lazy<tokio::runtime::Runtime> = Lazy::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

/// Whether the caller wants to stop waiting (PostgreSQL's interrupt flag in a backend).
pub type Interrupted = fn() -> bool;

/// Runs a future to completion on this thread, giving up when `interrupted` says so.
pub fn wait<F: Future>(future: F, interrupted: Interrupted) -> Result<F::Output, SalesforceError> {
    RUNTIME.block_on(async {
        tokio::pin!(future);
        let mut ticks = tokio::time::interval(INTERRUPT_POLL);
        loop {
            tokio::select! {
                out = &mut future => return Ok(out),
                _ = ticks.tick() => if interrupted() { return Err(SalesforceError::Cancelled) },
            }
        }
    })
}

/// The client for requests with `timeout`, shared by every session that
/// uses it: one connection pool and one TLS configuration, however many
/// orgs a process talks to.
pub fn client(timeout: Duration) -> Result<reqwest::Client, SalesforceError> {
    static CLIENTS: Lazy<std::sync::Mutex<HashMap<Duration, reqwest::Client>>> =
        Lazy::new(Default::default);
    let mut clients = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = clients.get(&timeout) {
        return Ok(c.clone());
    }
    let c = new_client(timeout)?;
    clients.insert(timeout, c.clone());
    Ok(c)
}

fn new_client(timeout: Duration) -> Result<reqwest::Client, SalesforceError> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("pg_salesforce/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SalesforceError::Config(format!("cannot build the HTTP client: {e}")))
}

/// A successful answer: the headers we use, and the body, read whole or
/// left to stream.
pub struct Answer {
    pub limit_info: Option<String>,
    /// Salesforce's clock, from the `Date` header.
    pub server_time: Option<chrono::DateTime<chrono::Utc>>,
    pub headers: reqwest::header::HeaderMap,
    /// Empty when the body streams.
    pub body: Vec<u8>,
    pub stream: Option<reqwest::Response>,
}

/// How a successful answer's body is taken.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Whole,
    /// Left in the response, for `BodyReader`: large results are never held whole.
    Streamed,
}

/// A response body read as it arrives, as `std::io::Read`, giving way when
/// the caller is interrupted.
pub struct BodyReader {
    response: reqwest::Response,
    chunk: bytes::Bytes,
    position: usize,
    interrupted: Interrupted,
}

impl BodyReader {
    pub fn new(response: reqwest::Response, interrupted: Interrupted) -> BodyReader {
        BodyReader {
            response,
            chunk: bytes::Bytes::new(),
            position: 0,
            interrupted,
        }
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.position == self.chunk.len() {
            let next = wait(self.response.chunk(), self.interrupted)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::Interrupted, e.to_string()))?
                .map_err(|e| std::io::Error::other(describe_transport_error(&e)))?;
            match next {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.position = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.position);
        buf[..n].copy_from_slice(&self.chunk[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

fn describe_transport_error(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL, whose query string is SOQL; the
    // kind of failure is enough.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut cause = String::new();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}

fn transport_error(e: &reqwest::Error) -> SalesforceError {
    if e.is_connect() {
        SalesforceError::ConnectFailed(describe_transport_error(e))
    } else if e.is_timeout() {
        SalesforceError::TimedOut(describe_transport_error(e))
    } else {
        SalesforceError::Network(describe_transport_error(e))
    }
}

async fn send_once(
    request: reqwest::RequestBuilder,
    read: Read,
) -> Result<Answer, SalesforceError> {
    let response = request.send().await.map_err(|e| transport_error(&e))?;
    let status = response.status().as_u16();
    let limit_info = response
        .headers()
        .get("Sforce-Limit-Info")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let server_time = response
        .headers()
        .get("Date")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let success = (200..300).contains(&status) || status == 300 || status == 304;
    let headers = response.headers().clone();
    if success && read == Read::Streamed {
        return Ok(Answer {
            limit_info,
            server_time,
            headers,
            body: Vec::new(),
            stream: Some(response),
        });
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| transport_error(&e))?
        .to_vec();
    if success {
        Ok(Answer {
            limit_info,
            server_time,
            headers,
            body,
            stream: None,
        })
    } else {
        Err(from_response(status, &body))
    }
}

/// Whether a request may be sent twice without harm.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Reads, updates, upserts, deletes.
    Safe,
    /// Creates: retried only when Salesforce surely did not act (no
    /// connection, or a 5xx answer), never after a connection broke mid-way.
    OnlyIfUnsent,
}

/// Sends the request `make` builds, retrying network failures, 5xx answers and
/// UNABLE_TO_LOCK_ROW with exponential backoff and jitter.
pub fn send(
    make: impl Fn() -> reqwest::RequestBuilder,
    interrupted: Interrupted,
) -> Result<Answer, SalesforceError> {
    send_repeating(make, Repeat::Safe, Read::Whole, interrupted)
}

pub fn send_repeating(
    make: impl Fn() -> reqwest::RequestBuilder,
    repeat: Repeat,
    read: Read,
    interrupted: Interrupted,
) -> Result<Answer, SalesforceError> {
    let mut attempt = 0;
    loop {
        match wait(send_once(make(), read), interrupted)? {
            Err(SalesforceError::Network(m)) if repeat == Repeat::OnlyIfUnsent => {
                return Err(SalesforceError::Network(m))
            }
            Err(e @ SalesforceError::TimedOut(_)) => return Err(e),
            Err(e) if e.is_retryable() && attempt < MAX_RETRIES => {
                let backoff = FIRST_BACKOFF_MS << attempt;
                let jitter = rand::random::<u64>() % (backoff / 2 + 1);
                wait(
                    async { tokio::time::sleep(Duration::from_millis(backoff + jitter)).await },
                    interrupted,
                )?;
                attempt += 1;
            }
            result => return result,
        }
    }
}
