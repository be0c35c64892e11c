//! The one HTTP client factory: rustls, timeouts, bounded retries with
//! backoff, and waits that give way when the statement is cancelled.

use super::error::{from_response, SalesforceError};
use once_cell::sync::Lazy;
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

pub fn client(timeout: Duration) -> Result<reqwest::Client, SalesforceError> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("pg_salesforce/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SalesforceError::Config(format!("cannot build the HTTP client: {e}")))
}

/// A successful answer: status, headers we use, and the body.
pub struct Answer {
    pub limit_info: Option<String>,
    /// Salesforce's clock, from the `Date` header.
    pub server_time: Option<chrono::DateTime<chrono::Utc>>,
    pub body: Vec<u8>,
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

async fn send_once(request: reqwest::RequestBuilder) -> Result<Answer, SalesforceError> {
    let response = request.send().await.map_err(|e| {
        if e.is_connect() {
            SalesforceError::ConnectFailed(describe_transport_error(&e))
        } else {
            SalesforceError::Network(describe_transport_error(&e))
        }
    })?;
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
    let body = response
        .bytes()
        .await
        .map_err(|e| SalesforceError::Network(describe_transport_error(&e)))?
        .to_vec();
    if (200..300).contains(&status) || status == 300 || status == 304 {
        Ok(Answer {
            limit_info,
            server_time,
            body,
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
    send_repeating(make, Repeat::Safe, interrupted)
}

pub fn send_repeating(
    make: impl Fn() -> reqwest::RequestBuilder,
    repeat: Repeat,
    interrupted: Interrupted,
) -> Result<Answer, SalesforceError> {
    let mut attempt = 0;
    loop {
        match wait(send_once(make()), interrupted)? {
            Err(SalesforceError::Network(m)) if repeat == Repeat::OnlyIfUnsent => {
                return Err(SalesforceError::Network(m))
            }
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
