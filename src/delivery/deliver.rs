//! The worker's delivery: each (server, owner) whose oldest pending write
//! may go gets its next writes claimed, durably marked as on their way,
//! and sent on a request thread of their own (`crate::flight`), one batch
//! per mapping at a time, so a server that hangs delays only its own
//! writes. What lands is settled in a transaction, and announced.

use super::sending::{self, Claimed};
use crate::access;
use crate::catalog;
use crate::error::{Error, Result};
use crate::flight::{Flight, Work};
use crate::gucs;
use crate::pg::in_transaction;
use pgrx::pg_sys::Oid;
use pgrx::{PgLogLevel, PgSqlErrorCode, Spi};
use salesforce_core::client::session::Session;
use salesforce_core::write::bulk;
use salesforce_core::write::delivery::{after_call_error, deliver, Outcome, Outgoing};
use salesforce_core::write::journal::{Queued, Target};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Writes claimed at once for one mapping: ten Collections calls (more
/// for a backlog of like writes that goes through Bulk: `sending::claim`).
const BATCH: usize = 2000;

/// How often the worker looks for writes whose back-off ended, besides
/// when a commit that queued some wakes it, or a batch lands.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The shortest time between two looks.
const LOOK_SOONEST: Duration = Duration::from_millis(50);

const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What the worker lends delivery of what it keeps per server.
pub trait Servers {
    /// Whether the server's breaker and API budget let a request go now.
    fn may_send(&self, server: &str) -> bool;
    /// Whether the server was down and may be asked again: one write tries.
    fn on_trial(&self, server: &str) -> bool;
    /// How a batch's requests went: why the server could not be reached.
    fn observe(&self, server: &str, unreachable: Option<String>);
    /// Counts the batch's requests against the server's budget.
    fn debit(&self, server: &str, requests: i64, limit_info: Option<&str>) -> Result<()>;
}

/// One mapping's claimed writes, in the order they were queued.
struct Batch {
    server: String,
    rows: Vec<Outgoing>,
}

/// What a batch came to.
struct Delivered {
    server: String,
    outcomes: Vec<(i64, Outcome)>,
    /// Why the server could not be reached, for its breaker.
    unreachable: Option<String>,
    requests: i64,
    limit_info: Option<String>,
    conflicts: Vec<(i64, serde_json::Value)>,
}

impl Work for Batch {
    type Out = Delivered;

    fn make(self, session: &mut Session) -> Delivered {
        let before = session.requests;
        let delivery = deliver(session, self.rows);
        Delivered {
            server: self.server,
            outcomes: delivery.outcomes,
            unreachable: delivery
                .failure
                .filter(|e| e.is_retryable())
                .map(|e| e.to_string()),
            requests: (session.requests - before) as i64,
            limit_info: session.last_limit_info.clone(),
            conflicts: delivery.conflicts,
        }
    }

    fn unmade(&self, e: &Error) -> Delivered {
        let e = salesforce_core::SalesforceError::Config(e.message());
        Delivered {
            server: self.server.clone(),
            outcomes: self
                .rows
                .iter()
                .map(|o| (o.outbox_id, after_call_error(&o.write.op, &e)))
                .collect(),
            unreachable: None,
            requests: 0,
            limit_info: None,
            conflicts: vec![],
        }
    }
}

#[derive(Default)]
pub struct Deliveries {
    flight: Flight<Batch>,
    /// Tries so far of each write on its way.
    attempts: HashMap<i64, i32>,
    recovered: bool,
    /// Outcomes not recorded yet (their transaction failed): tried again.
    unsettled: Vec<(i64, i32, Outcome)>,
    last_look: Option<Instant>,
    last_prune: Option<Instant>,
    /// Delivered inserts from read-write copies whose row has not taken
    /// its Id yet: tried again each look.
    unwritten: Vec<i64>,
}

fn warn(message: &str) {
    crate::error::notice(PgLogLevel::WARNING, message);
}

/// How long a publish whose answer never came waits before it is looked
/// for on the bus: the longest a request may take, after which it can no
/// longer land.
fn grace() -> Duration {
    Duration::from_secs(gucs::WORKER_REQUEST_TIMEOUT.get().max(1) as u64)
}

fn installed() -> Result<bool> {
    Ok(Spi::get_one::<bool>("SELECT to_regclass('salesforce.outbox') IS NOT NULL")? == Some(true))
}

impl Deliveries {
    /// How long the worker may nap before delivery wants to look again.
    pub fn nap(&self) -> Duration {
        let since = self.last_look.map_or(LOOK_EVERY, |at| at.elapsed());
        let next = if super::wake::writes_waiting() {
            LOOK_SOONEST
        } else {
            LOOK_EVERY
        };
        next.saturating_sub(since)
    }

    /// Settles what landed and sends what may go. Returns whether anything
    /// happened, so the worker looks again at once.
    pub fn step(&mut self, servers: &impl Servers) -> bool {
        let landed = self.flight.landed();
        let progressed = !landed.is_empty();
        for l in landed {
            self.settle(servers, l.out);
        }
        if !self.unsettled.is_empty() {
            self.settle_outcomes(vec![]);
        }
        // Commits wake the worker, but it looks at most every LOOK_SOONEST:
        // writes queued meanwhile go together, and a burst of commits
        // while a server is down costs one look, not one each.
        let since = self.last_look.map(|at| at.elapsed());
        if since.is_some_and(|d| d < LOOK_SOONEST) {
            return progressed;
        }
        let woken = super::wake::writes_queued();
        if !progressed && !woken && since.is_some_and(|d| d < LOOK_EVERY) {
            return false;
        }
        self.last_look = Some(Instant::now());
        self.write_back_again();
        if !self.recovered {
            match in_transaction(|| {
                if installed()? {
                    sending::recover(grace()).map(Some)
                } else {
                    Ok(None)
                }
            }) {
                Ok(Some(n)) => {
                    self.recovered = true;
                    if n > 0 {
                        pgrx::log!("pg_salesforce: {n} queued write(s) were on their way when the worker stopped");
                    }
                }
                Ok(None) => return progressed,
                Err(e) => {
                    warn(&format!(
                        "pg_salesforce: cannot take back queued writes: {e}"
                    ));
                    return progressed;
                }
            }
        }
        self.prune();
        let ready = match in_transaction(sending::ready) {
            Ok(ready) => ready,
            Err(e) => {
                warn(&format!("pg_salesforce: cannot list queued writes: {e}"));
                return progressed;
            }
        };
        let mut sent = false;
        for (server, owner) in ready {
            sent |= self.send(servers, &server, owner);
        }
        progressed || sent
    }

    /// Claims and sends the mapping's next writes, unless it has a batch
    /// on its way or its server may not be asked now.
    fn send(&mut self, servers: &impl Servers, server: &str, owner: Oid) -> bool {
        let prepared = in_transaction(|| {
            // The server or the role may be gone, or the role may have lost
            // the server since: the writes fail, saying why.
            let (server_oid, refused) = match catalog::server_oid(server) {
                Ok(oid) if !access::role_exists(owner) => (
                    oid,
                    Some(Error::sql(
                        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                        format!(
                            "the role (OID {}) that queued the write no longer exists",
                            owner.to_u32()
                        ),
                    )),
                ),
                Ok(oid) => (oid, access::check_server_use(oid, owner).err()),
                Err(e) => (Oid::INVALID, Some(e)),
            };
            let mut bulk_from = None;
            if refused.is_none() {
                if self.flight.busy((server_oid, owner)) || !servers.may_send(server) {
                    return Ok(None);
                }
                crate::connection::prepare_session(server_oid, owner)?;
                let (options, _) = catalog::server_options(server_oid)?;
                bulk_from = bulk::threshold(None, options.bulk_threshold);
            }
            // While a server is on trial, one write goes: a batch would be
            // claimed and settled again, thousands of rows written twice,
            // for each try while it stays down.
            let (limit, bulk_from) = if servers.on_trial(server) {
                (1, None)
            } else {
                (BATCH, bulk_from)
            };
            let claimed = sending::claim(server, owner, limit, bulk_from)?;
            Ok(Some((server_oid, refused, claimed, bulk_from)))
        });
        let (server_oid, refused, claimed, bulk_from) = match prepared {
            Ok(Some(p)) => p,
            Ok(None) => return false,
            Err(e) => {
                warn(&format!(
                    "pg_salesforce: cannot send the writes queued for server {server}: {e}"
                ));
                return false;
            }
        };
        let mut rows = Vec::with_capacity(claimed.len());
        let mut unusable = Vec::new();
        for Claimed {
            id,
            object,
            op,
            attempts,
            seen,
            look_back,
        } in claimed
        {
            self.attempts.insert(id, attempts);
            match (&refused, &op) {
                (Some(e), _) | (None, Err(e)) => unusable.push((
                    id,
                    Outcome::Rejected {
                        code: e.sqlstate(),
                        message: e.message(),
                    },
                )),
                (None, Ok(_)) => rows.push(Outgoing {
                    outbox_id: id,
                    write: Queued {
                        target: Target {
                            server: server_oid.to_u32(),
                            user: owner.to_u32(),
                            object,
                        },
                        op: op.expect("checked"),
                        row: 0,
                        statement: "queued write".into(),
                        bulk_from,
                    },
                    seen,
                    look_back,
                }),
            }
        }
        if !unusable.is_empty() {
            self.settle_outcomes(unusable);
        }
        if rows.is_empty() {
            return false;
        }
        self.flight.launch(
            (server_oid, owner),
            Batch {
                server: server.to_string(),
                rows,
            },
        );
        true
    }

    fn settle(&mut self, servers: &impl Servers, d: Delivered) {
        servers.observe(&d.server, d.unreachable.clone());
        if d.requests > 0 {
            let debited =
                in_transaction(|| servers.debit(&d.server, d.requests, d.limit_info.as_deref()));
            if let Err(e) = debited {
                warn(&format!(
                    "pg_salesforce: cannot count requests to server {}: {e}",
                    d.server
                ));
            }
        }
        if !d.conflicts.is_empty() {
            if let Err(e) = in_transaction(|| sending::record_conflicts(&d.conflicts)) {
                warn(&format!(
                    "pg_salesforce: cannot record the versions queued writes replaced: {e}"
                ));
            }
        }
        self.settle_outcomes(d.outcomes);
    }

    fn settle_outcomes(&mut self, outcomes: Vec<(i64, Outcome)>) {
        let mut with_attempts = std::mem::take(&mut self.unsettled);
        with_attempts.extend(
            outcomes
                .into_iter()
                .map(|(id, o)| (id, self.attempts.remove(&id).unwrap_or(1), o)),
        );
        match in_transaction(|| sending::settle(&with_attempts, grace())) {
            Ok(unwritten) => self.unwritten.extend(unwritten),
            Err(e) => {
                // Still `sending`: tried again at the next step, and if the
                // worker stops first, its next start takes them back.
                warn(&format!(
                    "pg_salesforce: cannot record what became of {} queued write(s): {e}",
                    with_attempts.len()
                ));
                self.unsettled = with_attempts;
            }
        }
    }

    fn write_back_again(&mut self) {
        if self.unwritten.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.unwritten);
        match in_transaction(|| sending::write_back(&ids, false)) {
            Ok(again) => self.unwritten = again,
            Err(e) => {
                warn(&format!(
                    "pg_salesforce: cannot write Salesforce's Ids back into read-write copies: {e}"
                ));
                self.unwritten = ids;
            }
        }
    }

    fn prune(&mut self) {
        if self.last_prune.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.last_prune = Some(Instant::now());
        let retention = gucs::OUTBOX_RETENTION.get() as i64;
        if let Err(e) = in_transaction(|| sending::prune(retention)) {
            warn(&format!(
                "pg_salesforce: cannot prune delivered writes: {e}"
            ));
        }
    }
}
