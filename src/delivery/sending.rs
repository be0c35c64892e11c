//! The outbox as the worker's delivery uses it: writes on their way when
//! it stopped taken back, the mappings with writes ready found, a batch
//! claimed (more for a backlog that goes through Bulk), what became of
//! each recorded, Salesforce's Ids written back into read-write copies,
//! and old rows pruned. Every statement is schema-qualified.

use super::outbox::{durably, op_of};
use crate::error::{Error, Result};
use crate::pg::run_kept;
use pgrx::pg_sys::Oid;
use pgrx::{JsonB, PgSqlErrorCode, Spi};
use salesforce_core::write::delivery::{backoff, LookBack, Outcome, Seen};
use salesforce_core::write::journal::Op;
use serde_json::Value as Json;
use std::time::Duration;

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
