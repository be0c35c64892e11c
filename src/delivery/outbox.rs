//! The outbox's table access: queued writes added by the transaction that
//! makes them, claimed and settled by the worker's delivery, retried or
//! discarded by their owners. Every statement runs as the extension's
//! owner (users cannot write the table) with the search path pinned; a
//! write is added without SQL (`row_insert`), as its transaction pays for it.

use crate::access;
use crate::error::{Error, Result};
use crate::pg::run_kept;
use crate::row_insert;
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::{JsonB, PgSqlErrorCode, Spi};
use salesforce_core::write::delivery::{backoff, LookBack, Outcome, Seen};
use salesforce_core::write::journal::Op;
use serde_json::{Map, Value as Json};
use std::time::Duration;

/// How a write is kept.
struct Stored<'a> {
    operation: &'static str,
    /// The fields sent; None for none.
    record: Option<&'a Map<String, Json>>,
    /// An upsert's external id field.
    key: Option<&'a str>,
    /// The record updated or deleted.
    record_id: Option<&'a str>,
}

fn stored(op: &Op) -> Stored<'_> {
    let (operation, record, key, record_id) = match op {
        Op::Create { record } => ("insert", Some(record), None, None),
        Op::Upsert { key_field, record } => {
            ("upsert", Some(record), Some(key_field.as_str()), None)
        }
        Op::Update { id, fields } => ("update", Some(fields), None, Some(id.as_str())),
        Op::Delete { id } => ("delete", None, None, Some(id.as_str())),
        Op::Publish { record } => ("publish", Some(record), None, None),
    };
    Stored {
        operation,
        record,
        key,
        record_id,
    }
}

/// The write a stored row holds.
pub fn op_of(
    operation: &str,
    record: Json,
    key: Option<String>,
    record_id: Option<String>,
) -> Result<Op> {
    let record = match record {
        Json::Object(m) => m,
        _ => Map::new(),
    };
    let id = || {
        record_id.clone().ok_or_else(|| {
            Error::sql(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                format!("a queued {operation} has no record Id"),
            )
        })
    };
    Ok(match (operation, key) {
        ("insert", _) => Op::Create { record },
        ("publish", _) => Op::Publish { record },
        ("upsert", Some(key_field)) => Op::Upsert { key_field, record },
        ("update", _) => Op::Update {
            id: id()?,
            fields: record,
        },
        ("delete", _) => Op::Delete { id: id()? },
        (other, _) => {
            return Err(Error::sql(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                format!("a queued write has the unknown operation {other:?}"),
            ))
        }
    })
}

/// Stores `op` for `owner` to deliver after commit; returns its id. An
/// update or delete `id_of` another queued write names the record that
/// write creates, and waits for it.
pub fn add(owner: Oid, server: &str, object: &str, op: &Op, id_of: Option<i64>) -> Result<i64> {
    let how = How {
        id_of,
        ..How::default()
    };
    insert(owner, server, object, op, how)
}

/// The same, an insert or upsert whose fields are `given`, a jsonb datum
/// holding exactly `op`'s record.
pub fn add_given(owner: Oid, server: &str, object: &str, op: &Op, given: Datum) -> Result<i64> {
    let how = How {
        given: Some(given),
        ..How::default()
    };
    insert(owner, server, object, op, how)
}

/// How a write captured from a read-write copy came.
#[derive(Default)]
pub struct Captured {
    /// Its id, reserved when the row was given `queued:<id>`.
    pub reserved: Option<i64>,
    /// The queued insert whose Id it waits for.
    pub id_of: Option<i64>,
    /// The copy's SystemModstamp (timestamptz) an update was made against.
    pub seen_stamp: Option<Datum>,
    /// The copy's values then of the fields the update changes.
    pub seen_values: Option<Json>,
}

/// An id for a queued write added later (`Captured::reserved`).
pub fn reserve_id() -> Result<i64> {
    row_insert::next_identity("salesforce", "outbox", "id")
}

/// Checks that queued write `id`, whose Id a copy's row waits for, is an
/// insert captured from the same sync.
pub fn check_captured_insert(id: i64, sync_id: i64) -> Result<()> {
    let fits = access::as_extension(|| {
        access::pinned(|| {
            Ok(Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT FROM salesforce.outbox WHERE id = $1 AND sync_id = $2
                                  AND operation IN ('insert', 'upsert'))",
                &[id.into(), sync_id.into()],
            )?)
        })
    })?;
    if fits == Some(true) {
        return Ok(());
    }
    Err(Error::sql(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("queued:{id} is not a row this copy added"),
    )
    .with_hint(
        "Ids starting with queued: stand for rows of this copy waiting for their Salesforce Id.",
    ))
}

/// The same, for a write captured from sync `sync_id`'s read-write copy.
pub fn add_captured(
    owner: Oid,
    server: &str,
    object: &str,
    op: &Op,
    sync_id: i64,
    captured: Captured,
) -> Result<i64> {
    let how = How {
        id: captured.reserved,
        id_of: captured.id_of,
        sync_id: Some(sync_id),
        seen_stamp: captured.seen_stamp,
        seen_values: captured.seen_values,
        ..How::default()
    };
    let id = insert(owner, server, object, op, how)?;
    super::wake::at_commit();
    Ok(id)
}

/// Whether writes from `origin` are in the outbox already.
pub fn has_origin(origin: &str) -> Result<bool> {
    access::as_extension(|| {
        Ok(Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT FROM salesforce.outbox WHERE origin = $1)",
            &[origin.into()],
        )?
        .unwrap_or(false))
    })
}

/// Stores what a transaction that did not commit left in Salesforce, for
/// `owner`: a write that undoes it (`unresolved` None), delivered as any
/// queued write, or, with the reason, one only a person can settle.
pub fn add_left_behind(
    owner: Oid,
    server: &str,
    object: &str,
    op: &Op,
    origin: &str,
    unresolved: Option<&str>,
) -> Result<()> {
    let how = How {
        origin: Some(origin),
        unresolved,
        ..How::default()
    };
    insert(owner, server, object, op, how).map(|_| ())
}

/// Where a queued write comes from, besides its owner and target.
#[derive(Default)]
struct How<'a> {
    /// Its id, when reserved already.
    id: Option<i64>,
    /// The earlier queued insert whose Id it waits for.
    id_of: Option<i64>,
    /// The transaction that did not commit, for what it left behind.
    origin: Option<&'a str>,
    /// Why only a person can settle it.
    unresolved: Option<&'a str>,
    /// The sync whose read-write copy it was captured from.
    sync_id: Option<i64>,
    /// The copy's SystemModstamp (timestamptz) an update was made against.
    seen_stamp: Option<Datum>,
    seen_values: Option<Json>,
    /// The record's fields as a jsonb datum already.
    given: Option<Datum>,
}

fn insert(owner: Oid, server: &str, object: &str, op: &Op, how: How) -> Result<i64> {
    let How {
        id: reserved,
        id_of,
        origin,
        unresolved,
        sync_id,
        seen_stamp,
        seen_values,
        given,
    } = how;
    let Stored {
        operation,
        record,
        key,
        record_id,
    } = stored(op);
    let record_id = record_id.filter(|id| !id.is_empty());
    // Without SQL: an application's transaction pays for this per write.
    let id = match reserved {
        Some(id) => id,
        None => reserve_id()?,
    };
    let now = Datum::from(unsafe { pg_sys::GetCurrentTransactionStartTimestamp() });
    let never = Datum::from(i64::MIN); // -infinity
    let (state, done_at) = match unresolved {
        None => ("pending", None),
        Some(_) => ("unresolved", Some(now)),
    };
    let mut values = vec![
        row_insert::value("id", id),
        row_insert::value("owner", owner),
        row_insert::value("server", server),
        row_insert::value("object", object),
        row_insert::value("operation", operation),
        match given {
            Some(jsonb) => row_insert::datum_value("record", jsonb, pg_sys::JSONBOID),
            None => row_insert::value(
                "record",
                JsonB(Json::Object(record.cloned().unwrap_or_default())),
            ),
        },
        row_insert::value("key", key),
        row_insert::value("record_id", record_id),
        row_insert::value("depends_on", id_of),
        row_insert::value("origin", origin),
        row_insert::value("sync_id", sync_id),
        row_insert::value("state", state),
        row_insert::value("error", unresolved),
        row_insert::value("attempts", 0i32),
        row_insert::datum_value("queued_at", now, pg_sys::TIMESTAMPTZOID),
        row_insert::datum_value("next_attempt_at", never, pg_sys::TIMESTAMPTZOID),
    ];
    if let Some(old) = seen_values {
        values.push(row_insert::value("seen_values", JsonB(old)));
    }
    if let Some(seen) = seen_stamp {
        values.push(row_insert::datum_value(
            "seen_stamp",
            seen,
            pg_sys::TIMESTAMPTZOID,
        ));
    }
    if let Some(at) = done_at {
        values.push(row_insert::datum_value(
            "done_at",
            at,
            pg_sys::TIMESTAMPTZOID,
        ));
    }
    row_insert::insert("salesforce", "outbox", &values)?;
    Ok(id)
}

/// Records a platform event published at COMMIT: operation `publish`,
/// already delivered, its replay id (hex) as `record_id`.
pub fn add_published(
    id: i64,
    owner: Oid,
    server: &str,
    topic: &str,
    payload: &Json,
    replay_id: &str,
) -> Result<()> {
    let now = Datum::from(unsafe { pg_sys::GetCurrentTimestamp() });
    let values = vec![
        row_insert::value("id", id),
        row_insert::value("owner", owner),
        row_insert::value("server", server),
        row_insert::value("object", topic),
        row_insert::value("operation", "publish"),
        row_insert::value("record", JsonB(payload.clone())),
        row_insert::value("record_id", replay_id),
        row_insert::value("state", "delivered"),
        row_insert::value("attempts", 1i32),
        row_insert::datum_value("queued_at", now, pg_sys::TIMESTAMPTZOID),
        row_insert::datum_value(
            "next_attempt_at",
            Datum::from(i64::MIN),
            pg_sys::TIMESTAMPTZOID,
        ),
        row_insert::datum_value("sent_at", now, pg_sys::TIMESTAMPTZOID),
        row_insert::datum_value("done_at", now, pg_sys::TIMESTAMPTZOID),
    ];
    row_insert::insert("salesforce", "outbox", &values)
}

/// Commits of the worker's delivery reach the disk before anything is
/// sent, or is taken as done: the worker commits asynchronously otherwise.
pub fn durably() -> Result<()> {
    Spi::run("SET LOCAL synchronous_commit TO on")?;
    Ok(())
}

/// After the worker stopped with writes on their way: those that may be
/// sent again go back to pending; creates are left `unknown`; platform
/// events go back to pending to be looked for on the bus first, once
/// `grace` (the longest a request may take) has passed since they went.
pub fn recover(grace: Duration) -> Result<i64> {
    durably()?;
    let n = Spi::get_one_with_args::<i64>(
        "WITH back AS (
           UPDATE salesforce.outbox
              SET state = CASE WHEN operation = 'insert' THEN 'unknown' ELSE 'pending' END,
                  attempts = CASE WHEN operation IN ('insert', 'publish') THEN attempts ELSE attempts - 1 END,
                  error = CASE WHEN operation = 'insert'
                               THEN 'the sync worker stopped while this create was on its way: it may or may not be in Salesforce'
                               WHEN operation = 'publish'
                               THEN 'the sync worker stopped while this event was on its way: it is looked for on the bus before it is published again'
                               ELSE error END,
                  look_back_from = CASE WHEN operation = 'publish' THEN coalesce(look_back_from, sent_at) END,
                  next_attempt_at = CASE WHEN operation = 'publish' THEN sent_at + $1 * interval '1 second'
                                         ELSE next_attempt_at END,
                  done_at = CASE WHEN operation = 'insert' THEN now() END
            WHERE state = 'sending' RETURNING 1)
         SELECT count(*) FROM back",
        &[grace.as_secs_f64().into()],
    )?;
    Ok(n.unwrap_or(0))
}

/// The (server, owner) pairs whose oldest write not done is pending and
/// may go now (one on its way means a batch is out).
pub fn ready() -> Result<Vec<(String, Oid)>> {
    Spi::connect(|client| {
        let rows = client.select(
            // Each (server, owner) with writes to send, found through the
            // index a step at a time, and its oldest write.
            "WITH RECURSIVE mapping AS (
               (SELECT server, owner FROM salesforce.outbox WHERE state IN ('pending', 'sending')
                 ORDER BY server, owner LIMIT 1)
               UNION ALL
               SELECT next.server, next.owner FROM mapping,
                 LATERAL (SELECT o.server, o.owner FROM salesforce.outbox o
                           WHERE o.state IN ('pending', 'sending') AND (o.server, o.owner) > (mapping.server, mapping.owner)
                           ORDER BY o.server, o.owner LIMIT 1) next)
             SELECT mapping.server::text, mapping.owner::bigint FROM mapping,
               LATERAL (SELECT o.state, o.next_attempt_at FROM salesforce.outbox o
                         WHERE o.server = mapping.server AND o.owner = mapping.owner AND o.state IN ('pending', 'sending')
                         ORDER BY o.id LIMIT 1) oldest
              WHERE oldest.state = 'pending' AND oldest.next_attempt_at <= now()",
            None,
            &[],
        )?;
        rows.map(|r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                Oid::from(r.get::<i64>(2)?.unwrap_or_default() as u32),
            ))
        })
        .collect::<std::result::Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .map_err(Error::from)
}

/// A row the worker took to send.
pub struct Claimed {
    pub id: i64,
    pub object: String,
    pub op: Result<Op>,
    /// Counting this one.
    pub attempts: i32,
    /// The copy's version an update from a read-write copy was made against.
    pub seen: Option<Seen>,
    /// For an event whose publish never answered: where to look for it.
    pub look_back: Option<LookBack>,
}

/// Writes claimed at once at most, however long a backlog of like writes
/// is: with `MOST_CLAIMED_BYTES`, what bounds the worker's memory for one
/// mapping's writes on their way.
pub const MOST_CLAIMED: usize = 100_000;

/// The most of their records' stored size claimed at once (at least one
/// write is, whatever its size).
const MOST_CLAIMED_BYTES: i64 = 32 << 20;

/// The most pending writes read at a time past the first `limit`. Pages
/// past it start at `limit` and double: rows read past the run's end are
/// read (and locked) for nothing.
const PAGE: i64 = 16_000;

/// The kind of write a row holds, as runs of like writes are told apart:
/// object, operation and upsert key.
type Kind = (String, String, Option<String>);

/// The next `limit` pending writes of (server, owner), in order, up to
/// the first that waits for the Id of a write not done yet. With a Bulk
/// threshold (`bulk_from`), a run of like writes the batch ends in goes
/// on past `limit` (up to `MOST_CLAIMED`) if it reaches the threshold, so
/// that it goes through one ingest job.
fn claimable(server: &str, owner: Oid, limit: usize, bulk_from: Option<usize>) -> Result<Vec<i64>> {
    Spi::connect_mut(|client| {
        let mut ids: Vec<i64> = Vec::new();
        let mut bytes = 0i64;
        let mut run: Option<Kind> = None;
        let mut run_start = 0;
        let mut after = 0i64;
        let (mut page, mut next_page) = (limit as i64, limit as i64);
        'pages: loop {
            let rows = client.update(
                "SELECT o.id, o.depends_on IS NOT NULL AND d.state IN ('pending', 'sending'),
                        o.object, o.operation, o.key, pg_catalog.pg_column_size(o.record)
                   FROM salesforce.outbox o LEFT JOIN salesforce.outbox d ON d.id = o.depends_on
                  WHERE o.server = $1 AND o.owner = $2 AND o.state = 'pending' AND o.id > $4
                  ORDER BY o.id LIMIT $3 FOR UPDATE OF o",
                None,
                &[server.into(), owner.into(), page.into(), after.into()],
            )?;
            let read = rows.len() as i64;
            for r in rows {
                after = r.get::<i64>(1)?.unwrap_or_default();
                let kind: Kind = (
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<String>(4)?.unwrap_or_default(),
                    r.get::<String>(5)?,
                );
                let size = r.get::<i32>(6)?.unwrap_or_default() as i64;
                let waits = r.get::<bool>(2)?.unwrap_or(false);
                let too_big = !ids.is_empty() && bytes + size > MOST_CLAIMED_BYTES;
                // Past the batch only the run it ends in goes on, and only
                // a run that may go through Bulk (events never do).
                let past_batch = ids.len() >= limit
                    && (bulk_from.is_none()
                        || ids.len() >= MOST_CLAIMED
                        || run.as_ref() != Some(&kind)
                        || kind.1 == "publish");
                if waits || too_big || past_batch {
                    break 'pages;
                }
                if run.as_ref() != Some(&kind) {
                    run = Some(kind);
                    run_start = ids.len();
                }
                ids.push(after);
                bytes += size;
            }
            if read < page || bulk_from.is_none() {
                break;
            }
            page = next_page;
            next_page = (next_page * 2).min(PAGE);
        }
        // Claimed past the batch for nothing: the run is too short for Bulk.
        if ids.len() > limit && bulk_from.is_some_and(|t| ids.len() - run_start < t) {
            ids.truncate(limit);
        }
        Ok::<_, pgrx::spi::SpiError>(ids)
    })
    .map_err(Error::from)
}

/// Marks the next `limit` pending writes of (server, owner) as on their
/// way, durably (more for a backlog of like writes that reaches
/// `bulk_from`: see `claimable`), and returns them in the order they were
/// queued. A write that waits for another's Id gets it now; if that one
/// was not delivered, it cannot be sent, and says why.
pub fn claim(
    server: &str,
    owner: Oid,
    limit: usize,
    bulk_from: Option<usize>,
) -> Result<Vec<Claimed>> {
    durably()?;
    let ids = claimable(server, owner, limit, bulk_from)?;
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut claimed = Spi::connect_mut(|client| {
        let rows = client.update(
            "UPDATE salesforce.outbox o SET state = 'sending', attempts = o.attempts + 1, sent_at = now(),
                    record_id = coalesce(o.record_id, d.record_id)
               FROM salesforce.outbox o2 LEFT JOIN salesforce.outbox d ON d.id = o2.depends_on AND d.state = 'delivered'
              WHERE o.id = o2.id AND o.id = ANY($1)
             RETURNING o.id, o.object, o.operation, o.record, o.key, o.record_id, o.attempts,
                       CASE WHEN o.depends_on IS NOT NULL AND d.id IS NULL THEN o.depends_on END,
                       extract(epoch FROM o.seen_stamp)::float8, o.seen_values,
                       -- The replay id of the topic's newest event known to
                       -- be published before this one went ('' for none).
                       CASE WHEN o.look_back_from IS NOT NULL THEN
                         coalesce((SELECT p.record_id FROM salesforce.outbox p
                                    WHERE p.server = o.server AND p.object = o.object AND p.operation = 'publish'
                                      AND p.state = 'delivered' AND p.done_at < o.look_back_from
                                    ORDER BY p.done_at DESC LIMIT 1), '') END",
            None,
            &[ids.into()],
        )?;
        rows.map(|r| {
            let operation = r.get::<String>(3)?.unwrap_or_default();
            let record = r.get::<JsonB>(4)?.map(|j| j.0).unwrap_or(Json::Null);
            let op = match r.get::<i64>(8)? {
                Some(first) => Err(Error::sql(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("queued write {first}, whose record this {operation} names, was not delivered"),
                )),
                None => op_of(&operation, record, r.get::<String>(5)?, r.get::<String>(6)?),
            };
            Ok(Claimed {
                id: r.get::<i64>(1)?.unwrap_or_default(),
                object: r.get::<String>(2)?.unwrap_or_default(),
                op,
                attempts: r.get::<i32>(7)?.unwrap_or(1),
                seen: match (r.get::<f64>(9)?, r.get::<JsonB>(10)?) {
                    (Some(at), Some(JsonB(Json::Object(values)))) => {
                        chrono::DateTime::from_timestamp_micros((at * 1e6).round() as i64)
                            .map(|stamp| Seen { stamp, values })
                    }
                    _ => None,
                },
                look_back: r.get::<String>(11)?.map(|after| LookBack {
                    after: salesforce_core::events::replay_of_hex(&after),
                }),
            })
        })
        .collect::<std::result::Result<Vec<_>, pgrx::spi::SpiError>>()
    })?;
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// Checks that `id_of`, a write an update or delete of `owner` waits for,
/// is `owner`'s, to the same server and object, and creates a record.
pub fn check_id_of(id_of: i64, owner: Oid, server: &str, object: &str) -> Result<()> {
    let fits = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM salesforce.outbox WHERE id = $1 AND owner = $2 AND server = $3
                          AND object = $4 AND operation IN ('insert', 'upsert'))",
        &[id_of.into(), owner.into(), server.into(), object.into()],
    )?;
    match fits {
        Some(true) => Ok(()),
        _ => Err(Error::sql(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("queued write {id_of} is not an insert or upsert of {object} on server {server} queued by this role"),
        )
        .with_hint("id_of names a write this role queued earlier that creates the record.")),
    }
}

/// Records what became of writes on their way (`attempts` is each one's
/// count of tries so far), and announces the final ones on the channel
/// `salesforce_delivery` with their id and state.
pub fn settle(outcomes: &[(i64, i32, Outcome)], grace: Duration) -> Result<Vec<i64>> {
    if outcomes.is_empty() {
        return Ok(vec![]);
    }
    durably()?;
    let mut ids = Vec::with_capacity(outcomes.len());
    let (mut states, mut record_ids, mut codes, mut errors, mut retry_in, mut uncount) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut look_first = Vec::with_capacity(outcomes.len());
    for (id, attempts, outcome) in outcomes {
        ids.push(*id);
        let (state, record_id, code, error, retry, unsent) = match outcome {
            Outcome::Delivered { id } => ("delivered", id.clone(), None, None, None, false),
            Outcome::Rejected { code, message } => (
                "failed",
                None,
                Some(code.clone()),
                Some(message.clone()),
                None,
                false,
            ),
            Outcome::Retry { why } => (
                "pending",
                None,
                None,
                Some(why.clone()),
                Some(backoff(*attempts).as_secs_f64()),
                false,
            ),
            Outcome::Unknown { why } => ("unknown", None, None, Some(why.clone()), None, false),
            Outcome::LookFirst { why } => (
                "pending",
                None,
                None,
                Some(why.clone()),
                Some(grace.as_secs_f64()),
                false,
            ),
            Outcome::Unsent => ("pending", None, None, None, None, true),
        };
        states.push(state);
        record_ids.push(record_id);
        codes.push(code);
        errors.push(error);
        retry_in.push(retry);
        uncount.push(unsent);
        look_first.push(matches!(outcome, Outcome::LookFirst { .. }));
    }
    run_kept(
        "WITH u AS (
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::bool[], $8::bool[])
                      AS u(id, state, record_id, code, error, retry_in, unsent, look_first)),
         settled AS (
           UPDATE salesforce.outbox o
              SET state = u.state,
                  record_id = coalesce(u.record_id, o.record_id),
                  error_code = CASE WHEN u.unsent THEN o.error_code ELSE u.code END,
                  error = CASE WHEN u.unsent THEN o.error ELSE u.error END,
                  attempts = o.attempts - u.unsent::int,
                  next_attempt_at = CASE WHEN u.retry_in IS NULL THEN o.next_attempt_at
                                         ELSE now() + u.retry_in * interval '1 second' END,
                  done_at = CASE WHEN u.state IN ('delivered', 'failed', 'unknown') THEN now() END,
                  look_back_from = CASE WHEN u.look_first THEN coalesce(o.look_back_from, o.sent_at)
                                        ELSE o.look_back_from END
             FROM u WHERE o.id = u.id AND o.state = 'sending'
           RETURNING o.id, o.state)
         SELECT pg_catalog.pg_notify('salesforce_delivery',
                  pg_catalog.json_build_object('id', id, 'state', state)::text)
           FROM settled WHERE state <> 'pending'",
        &[
            ids.clone().into(),
            states.into(),
            record_ids.into(),
            codes.into(),
            errors.into(),
            retry_in.into(),
            uncount.into(),
            look_first.into(),
        ],
    )?;
    write_back(&ids, true)
}

/// Records the losing versions of updates from read-write copies that
/// overwrote a change made in Salesforce meanwhile.
pub fn record_conflicts(conflicts: &[(i64, Json)]) -> Result<()> {
    for (id, losing) in conflicts {
        run_kept(
            "UPDATE salesforce.outbox SET conflict = $2 WHERE id = $1",
            &[(*id).into(), JsonB(losing.clone()).into()],
        )?;
    }
    Ok(())
}

/// Salesforce's Ids of delivered inserts captured from read-write copies
/// go into the rows they came from. Returns the writes whose row could not
/// take its Id now (locked, say): it keeps `queued:<id>` until a later
/// try; the first failure is a WARNING (`first_try`).
pub fn write_back(ids: &[i64], first_try: bool) -> Result<Vec<i64>> {
    let rows = Spi::connect(|client| {
        client
            .select(
                "SELECT o.id, o.record_id, s.target_relid::bigint, s.owner::bigint
                   FROM salesforce.outbox o JOIN salesforce.syncs s ON s.id = o.sync_id
                  WHERE o.id = ANY($1) AND o.state = 'delivered' AND o.operation IN ('insert', 'upsert')
                    AND o.record_id IS NOT NULL",
                None,
                &[ids.to_vec().into()],
            )?
            .map(|r| {
                Ok((
                    r.get::<i64>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<i64>(3)?.unwrap_or_default() as u32,
                    r.get::<i64>(4)?.unwrap_or_default() as u32,
                ))
            })
            .collect::<std::result::Result<Vec<_>, pgrx::spi::SpiError>>()
    })?;
    let mut again = vec![];
    for (queued, id, copy, owner) in rows {
        let written = crate::pg::in_subtransaction(|| {
            super::capture::write_back(Oid::from(copy), Oid::from(owner), queued, &id)
        });
        if let Err(e) = written {
            again.push(queued);
            if first_try {
                crate::error::notice(
                    pgrx::PgLogLevel::WARNING,
                    &format!("pg_salesforce: the row queued:{queued} of a read-write copy cannot take its Id {id} now, tried again later: {e}"),
                );
            }
        }
    }
    Ok(again)
}

/// Forgets delivered and discarded writes done longer than `retention`
/// seconds ago; returns how many.
pub fn prune(retention: i64) -> Result<i64> {
    Ok(Spi::get_one_with_args::<i64>(
        "WITH gone AS (DELETE FROM salesforce.outbox o
                        WHERE o.state IN ('delivered', 'discarded')
                          AND o.done_at < now() - $1 * interval '1 second'
                          -- A write waiting for this one's Id still needs it.
                          AND NOT EXISTS (SELECT FROM salesforce.outbox w
                                           WHERE w.depends_on = o.id AND w.state IN ('pending', 'sending'))
                        RETURNING 1)
         SELECT count(*) FROM gone",
        &[retention.into()],
    )?
    .unwrap_or(0))
}

/// The owner and state of queued write `id`, as the caller may see it.
fn owner_and_state(id: i64) -> Result<(Oid, String)> {
    // Read for update: the row is locked against the worker's settling.
    let row = Spi::connect_mut(|client| {
        let rows = client.update(
            "SELECT owner::bigint, state FROM salesforce.outbox WHERE id = $1 FOR UPDATE",
            Some(1),
            &[id.into()],
        )?;
        rows.map(
            |r| -> std::result::Result<(Oid, String), pgrx::spi::SpiError> {
                Ok((
                    Oid::from(r.get::<i64>(1)?.unwrap_or_default() as u32),
                    r.get::<String>(2)?.unwrap_or_default(),
                ))
            },
        )
        .next()
        .transpose()
    })?;
    row.ok_or_else(|| {
        Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("queued write {id} does not exist"),
        )
    })
}

/// Changes queued write `id` from one of `from` to `to`, for a caller who
/// acts for its owner.
pub fn set_state(id: i64, from: &[&str], to: &str, what: &str) -> Result<()> {
    let caller = access::current_role();
    access::as_extension(|| {
        let (owner, state) = owner_and_state(id)?;
        if !access::acts_for(caller, owner) {
            return Err(Error::sql(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied for queued write {id}"),
            )
            .with_hint("Only the role that queued the write, a member of it, or a superuser may retry or discard it."));
        }
        if !from.contains(&state.as_str()) {
            return Err(Error::sql(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "queued write {id} is {state}: only a write that is {} can be {what}",
                    from.join(" or ")
                ),
            ));
        }
        Spi::run_with_args(
            "UPDATE salesforce.outbox
                SET state = $2, attempts = CASE WHEN $2 = 'pending' THEN 0 ELSE attempts END,
                    next_attempt_at = CASE WHEN $2 = 'pending' THEN '-infinity' ELSE next_attempt_at END,
                    done_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END
              WHERE id = $1",
            &[id.into(), to.into()],
        )?;
        Ok(())
    })
}
