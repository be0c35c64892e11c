//! The outbox's table access: queued writes added by the transaction that
//! makes them (claimed and settled by the worker's delivery: `sending`),
//! retried or discarded by their owners. Every statement runs as the extension's
//! owner (users cannot write the table) with the search path pinned; a
//! write is added without SQL (`row_insert`), as its transaction pays for it.

use crate::access;
use crate::error::{Error, Result};
use crate::row_insert;
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::{JsonB, PgSqlErrorCode, Spi};
use salesforce_core::write::journal::Op;
use serde_json::{Map, Value as Json};

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
