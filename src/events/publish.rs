//! `salesforce.publish`: a platform event that goes out only if the
//! transaction commits. Events wait in this backend until COMMIT (a
//! rolled-back savepoint drops its own), are checked against their topics'
//! schemas all together, then published; any failure fails the COMMIT.
//! Each published event is recorded in the outbox with its replay id.

use crate::access;
use crate::catalog;
use crate::connection;
use crate::error::{self, Error, OrRaise, Result};
use crate::gucs::{WriteMode, WRITE_MODE};
use pgrx::pg_sys::{self, Oid};
use pgrx::prelude::*;
use pgrx::{
    register_subxact_callback, register_xact_callback, JsonB, PgLogLevel, PgSqlErrorCode,
    PgSubXactCallbackEvent, PgXactCallbackEvent,
};
use salesforce_core::events::Publisher;
use salesforce_core::naming::is_api_name;
use serde_json::{Map, Value as Json};
use std::cell::{Cell, RefCell};

struct Pending {
    subxact: u32,
    server: Oid,
    server_name: String,
    role: Oid,
    topic: String,
    payload: Map<String, Json>,
}

thread_local! {
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// `Signup__e` or `/event/Signup__e` → `Signup__e`.
pub(super) fn event_name(topic: &str) -> Result<String> {
    let name = topic.strip_prefix("/event/").unwrap_or(topic);
    if !is_api_name(name) || !name.ends_with("__e") {
        return Err(Error::invalid(
            format!("{topic:?} is not a platform event"),
            "Name the event's API name, such as Signup__e (its topic is /event/Signup__e).",
        ));
    }
    Ok(name.to_string())
}

/// Publishes a platform event on `server` if, and when, this transaction
/// commits, with the caller's user mapping.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn publish(server: &str, topic: &str, payload: JsonB) {
    let role = access::current_role();
    (|| {
        let server_oid = catalog::server_oid(server)?;
        access::check_server_use(server_oid, role)?;
        let topic = event_name(topic)?;
        let Json::Object(payload) = payload.0 else {
            return Err(Error::invalid(
                "payload must be a JSON object of the event's fields",
                "Pass jsonb_build_object('Email__c', 'ada@example.com', ...).",
            ));
        };
        if unsafe { pg_sys::XactReadOnly || pg_sys::RecoveryInProgress() } {
            return Err(Error::sql(
                PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
                "cannot publish a platform event in a read-only transaction",
            )
            .with_hint("Each published event is recorded in salesforce.outbox at COMMIT."));
        }
        if WRITE_MODE.get() == WriteMode::Queued {
            // Stored with the transaction; the worker publishes it after COMMIT.
            let op = salesforce_core::write::journal::Op::Publish { record: payload };
            crate::delivery::queue(role, server, &topic, &op, None)?;
            return Ok(());
        }
        ensure_callbacks();
        let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
        PENDING.with(|p| {
            p.borrow_mut().push(Pending {
                subxact,
                server: server_oid,
                server_name: server.to_string(),
                role,
                topic,
                payload,
            })
        });
        Ok(())
    })()
    .or_raise()
}

fn ensure_callbacks() {
    if REGISTERED.replace(true) {
        return;
    }
    // Writes sent at COMMIT go first (callbacks run in the order they were
    // registered): a write Salesforce refuses fails the COMMIT before any
    // event is out.
    crate::write::transaction::ensure_callbacks();
    register_xact_callback(PgXactCallbackEvent::PreCommit, publish_pending_or_fail);
    register_xact_callback(PgXactCallbackEvent::Commit, end);
    register_xact_callback(PgXactCallbackEvent::Abort, end);
    register_xact_callback(PgXactCallbackEvent::PrePrepare, || {
        if PENDING.with(|p| !p.borrow().is_empty()) {
            Error::sql(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "cannot PREPARE a transaction that publishes platform events",
            )
            .raise();
        }
    });
    register_subxact_callback(PgSubXactCallbackEvent::AbortSub, |sub, _parent| {
        PENDING.with(|p| p.borrow_mut().retain(|e| e.subxact < sub));
    });
    register_subxact_callback(PgSubXactCallbackEvent::CommitSub, |sub, parent| {
        PENDING.with(|p| {
            p.borrow_mut()
                .iter_mut()
                .filter(|e| e.subxact == sub)
                .for_each(|e| e.subxact = parent)
        });
    });
}

fn end() {
    PENDING.with(|p| p.borrow_mut().clear());
    REGISTERED.set(false);
}

/// Events of one org, user mapping and topic, in the order published.
struct Batch {
    server: Oid,
    server_name: String,
    role: Oid,
    topic: String,
    /// Each event's place among the transaction's publishes (1-based), and its fields.
    events: Vec<(usize, Map<String, Json>)>,
}

fn batches(pending: Vec<Pending>) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    for (i, e) in pending.into_iter().enumerate() {
        match out
            .iter_mut()
            .find(|b| b.server == e.server && b.role == e.role && b.topic == e.topic)
        {
            Some(b) => b.events.push((i + 1, e.payload)),
            None => out.push(Batch {
                server: e.server,
                server_name: e.server_name,
                role: e.role,
                topic: e.topic,
                events: vec![(i + 1, e.payload)],
            }),
        }
    }
    out
}

fn publisher(server: Oid, role: Oid) -> Result<Publisher> {
    connection::with_session(server, role, Publisher::for_session)
}

fn refused(topic: &str, place: usize, code: &str, message: &str) -> Error {
    Error::sql(
        PgSqlErrorCode::ERRCODE_FDW_ERROR,
        format!("Salesforce refused platform event {place} of this transaction ({topic}): {code}: {message}"),
    )
}

/// At pre-commit: every event is checked against its topic's schema, then
/// all are published; the first failure fails the COMMIT.
fn publish_pending_or_fail() {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if pending.is_empty() {
        return;
    }
    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
    let result = publish_all(batches(pending));
    unsafe { pg_sys::PopActiveSnapshot() };
    if let Err(e) = result {
        e.raise();
    }
}

/// The publisher for a batch's org and user mapping, made once.
fn publisher_for<'a>(
    publishers: &'a mut Vec<((Oid, Oid), Publisher)>,
    b: &Batch,
) -> Result<&'a mut Publisher> {
    let key = (b.server, b.role);
    let at = match publishers.iter().position(|(k, _)| *k == key) {
        Some(at) => at,
        None => {
            publishers.push((key, publisher(b.server, b.role)?));
            publishers.len() - 1
        }
    };
    Ok(&mut publishers[at].1)
}

fn publish_all(batches: Vec<Batch>) -> Result<()> {
    let mut publishers: Vec<((Oid, Oid), Publisher)> = Vec::new();
    // First every check, so that a bad event fails the COMMIT before any goes.
    for b in &batches {
        let p = publisher_for(&mut publishers, b)?;
        let fields: Vec<Map<String, Json>> = b.events.iter().map(|(_, e)| e.clone()).collect();
        let channel = format!("/event/{}", b.topic);
        if let Some((i, e)) = p.check(&channel, &fields).map_err(Error::Salesforce)? {
            let message = match &e.field {
                Some(f) => format!("{} (field {f})", e.message),
                None => e.message.clone(),
            };
            return Err(refused(&b.topic, b.events[i].0, &e.code, &message));
        }
    }
    // The outbox ids too, so that recording an event cannot fail after it went.
    let mut ids: Vec<i64> = Vec::new();
    for _ in batches.iter().flat_map(|b| &b.events) {
        ids.push(crate::delivery::reserve_id()?);
    }
    let mut ids = ids.into_iter();
    let mut published: Vec<String> = Vec::new();
    for b in batches {
        let p = publisher_for(&mut publishers, &b)?;
        let fields: Vec<Map<String, Json>> = b.events.iter().map(|(_, e)| e.clone()).collect();
        let results = match p.publish(&format!("/event/{}", b.topic), &fields) {
            Ok(r) => r,
            Err(e) => {
                warn_published(&published);
                return Err(Error::Salesforce(e));
            }
        };
        for ((place, payload), result) in b.events.into_iter().zip(results) {
            match result {
                Ok(replay_id) => {
                    let replay = salesforce_core::events::replay_hex(&replay_id);
                    published.push(format!("{} {replay}", b.topic));
                    let recorded = crate::delivery::record_published(
                        ids.next().expect("one id per event"),
                        b.role,
                        &b.server_name,
                        &b.topic,
                        &Json::Object(payload),
                        &replay,
                    );
                    if let Err(e) = recorded {
                        warn_published(&published);
                        return Err(e);
                    }
                }
                Err(e) => {
                    warn_published(&published);
                    return Err(refused(&b.topic, place, &e.code, &e.message));
                }
            }
        }
    }
    Ok(())
}

/// Events published before a later one failed cannot be taken back.
fn warn_published(published: &[String]) {
    if published.is_empty() {
        return;
    }
    error::notice(
        PgLogLevel::WARNING,
        &format!(
            "pg_salesforce: the COMMIT fails, but {} platform event(s) were published already and cannot be taken back (topic and replay id): {}",
            published.len(),
            published.join(", ")
        ),
    );
}
