//! The SQL functions that make, find, resync and remove syncs. Each runs
//! as its caller, checks what the caller may do (`access`), and writes the
//! extension's tables as the extension's owner, as pg_cron's API does; the
//! runs themselves are driven by `steps`.

use super::copy_table::CopyTable;
use super::lock::lock_for_transaction;
use super::store::{self, NewSync, SyncRow};
use crate::access::{self, TableName};
use crate::catalog;
use crate::connection;
use crate::error::{Error, OrRaise, Result};
use crate::gucs;
use crate::pg::text_of;
use pgrx::datum::Interval;
use pgrx::pg_sys::{self, Oid};
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode, Spi};
use salesforce_core::cdc::selection;
use salesforce_core::naming::{quote_ident, snake_case, with_suffix};
use salesforce_core::sync::definition::{
    check_every, create_partition_sql, create_shared_table_sql, create_table_sql, synced_fields,
    SyncOptions, SyncedField, DELETED_AT, ORG, SYNCED_AT,
};
use std::ffi::CString;

#[track_caller]
pub(super) fn raise(code: PgSqlErrorCode, message: String, hint: Option<&str>) -> ! {
    let e = Error::sql(code, message);
    match hint {
        Some(h) => e.with_hint(h).raise(),
        None => e.raise(),
    }
}

/// Syncs write their copies and log, so they run on the primary; copies
/// reach a standby by replication.
pub(super) fn refuse_on_standby() {
    if unsafe { pg_sys::RecoveryInProgress() } {
        raise(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "syncs cannot run on a standby, which is a read-only transaction".into(),
            Some("Run syncs on the primary: its copies reach this standby by replication, and its sync worker runs them."),
        )
    }
}

/// The sync of `object` on `server` that the calling role means: its own,
/// else the one sync of a role whose privileges it has.
pub(super) fn find_sync(server: &str, object: &str) -> SyncRow {
    let caller = access::current_role();
    let all = access::as_extension(|| store::syncs_of_object(server, object)).or_raise();
    let what = format!("the sync of {object} on server {server}");
    if all.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("{object} on server {server} is not synced"),
            Some("salesforce.sync_status lists the syncs. A copy left by sync_disable is an ordinary table now: DROP TABLE removes it, and sync_enable takes it up again."),
        );
    }
    let id = match all.iter().find(|(_, owner)| *owner == caller) {
        Some((id, _)) => *id,
        None => {
            let managed: Vec<&(i64, Oid)> = all
                .iter()
                .filter(|(_, owner)| access::acts_for(caller, *owner))
                .collect();
            match managed.as_slice() {
                [] => access::check_manages(caller, all[0].1, &what)
                    .expect_err("the caller acts for none of the owners")
                    .raise(),
                [(id, _)] => *id,
                several => raise(
                    PgSqlErrorCode::ERRCODE_AMBIGUOUS_PARAMETER,
                    format!(
                        "{what} is ambiguous: roles {} each sync it",
                        several
                            .iter()
                            .map(|(_, o)| access::role_name(*o))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Some("SET ROLE to the owner of the sync you mean; a superuser may also disable a sync by its id, salesforce.sync_disable(id)."),
                ),
            }
        }
    };
    access::as_extension(|| store::load_sync(id)).or_raise()
}

/// Where a new sync's copy goes: a schema and a table name, and the table
/// if it exists already.
struct Placement {
    namespace: Oid,
    table: String,
    existing: Option<Oid>,
}

/// Resolves a target as the caller names it: unqualified names go in the
/// current schema (the first of the caller's search path that exists); a
/// schema named but missing is made if the caller may create schemas.
fn place_named(target: &str, caller: Oid) -> Placement {
    let text = CString::new(target).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_NAME,
            format!("invalid target \"{target}\""),
            None,
        )
    });
    unsafe {
        let names = pg_sys::stringToQualifiedNameList(text.as_ptr());
        let range = pg_sys::makeRangeVarFromNameList(names);
        if !(*range).catalogname.is_null() {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_NAME,
                format!("invalid target \"{target}\""),
                Some("Name a table, optionally schema-qualified."),
            );
        }
        if !(*range).schemaname.is_null()
            && pg_sys::get_namespace_oid((*range).schemaname, true) == Oid::INVALID
            && access::creates_schemas(caller)
        {
            let schema = quote_ident(&text_of((*range).schemaname));
            access::pinned(|| Spi::run(&format!("CREATE SCHEMA {schema}"))).or_raise();
        }
        let namespace = pg_sys::RangeVarGetCreationNamespace(range);
        if pg_sys::isAnyTempNamespace(namespace) {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
                format!("a copy cannot be a temporary table: \"{target}\""),
                Some("The sync worker runs in a session of its own, which cannot see this session's temporary tables."),
            );
        }
        let table = text_of((*range).relname);
        let existing = pg_sys::get_relname_relid((*range).relname, namespace);
        Placement {
            namespace,
            existing: (existing != Oid::INVALID).then_some(existing),
            table,
        }
    }
}

/// The default target: a table named after the object in a schema named
/// after the server, made if the caller may create schemas.
fn place_default(server: &str, object: &str, caller: Oid) -> Placement {
    let schema = CString::new(server).expect("a server name has no NUL");
    let mut namespace = unsafe { pg_sys::get_namespace_oid(schema.as_ptr(), true) };
    if namespace == Oid::INVALID {
        if !access::creates_schemas(caller) {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
                format!("schema \"{server}\" does not exist, and role {} may not create it", access::role_name(caller)),
                Some("Name a target in a schema the role may create tables in: salesforce.sync_enable(server, object, 'schema.table')."),
            );
        }
        access::pinned(|| Spi::run(&format!("CREATE SCHEMA {}", quote_ident(server)))).or_raise();
        namespace = unsafe { pg_sys::get_namespace_oid(schema.as_ptr(), false) };
    }
    let table = snake_case(object);
    let name = CString::new(table.as_str()).expect("an object name has no NUL");
    let existing = unsafe { pg_sys::get_relname_relid(name.as_ptr(), namespace) };
    Placement {
        namespace,
        table,
        existing: (existing != Oid::INVALID).then_some(existing),
    }
}

/// Whether an existing table can hold the copy: it has every column, and
/// the id column has a unique index of its own to upsert on.
fn check_existing_columns(relid: Oid, fields: &[SyncedField], soft_delete: bool) -> Result<()> {
    check_columns(relid, fields, soft_delete)?;
    check_id_index(relid, fields)
}

/// Whether a table has a column for each field, and the sync's own columns.
fn check_columns(relid: Oid, fields: &[SyncedField], soft_delete: bool) -> Result<()> {
    let mut wanted: Vec<String> = fields.iter().map(|f| f.column.clone()).collect();
    wanted.push(SYNCED_AT.into());
    if soft_delete {
        wanted.push(DELETED_AT.into());
    }
    let missing: Vec<String> = wanted
        .into_iter()
        .filter(|c| !catalog::has_column(relid, c))
        .collect();
    let table = access::table_name(relid)
        .map(|n| n.qualified())
        .unwrap_or_default();
    if !missing.is_empty() {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "table {table} cannot hold the copy: it has no column {}",
                missing.join(", ")
            ),
        )
        .with_hint("Name a new table, and sync_enable makes it with every column."));
    }
    Ok(())
}

/// Whether the id column has a unique index of its own to upsert on.
fn check_id_index(relid: Oid, fields: &[SyncedField]) -> Result<()> {
    let table = access::table_name(relid)
        .map(|n| n.qualified())
        .unwrap_or_default();
    let id_column = fields
        .iter()
        .find(|f| f.field == "Id")
        .map(|f| f.column.clone())
        .unwrap_or_else(|| "id".into());
    let unique = access::pinned(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
              WHERE i.indrelid = $1 AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2)",
            &[relid.into(), id_column.as_str().into()],
        )
    })?;
    if unique != Some(true) {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
            format!("table {table} cannot hold the copy: its column {id_column} has no unique index of its own"),
        )
        .with_hint(format!("ALTER TABLE {table} ADD PRIMARY KEY ({id_column}).")));
    }
    Ok(())
}

/// The copy's table, found or made as the caller; returns it and whether
/// it holds rows already. A shared copy is this server's partition of a
/// partitioned table, made with it if need be.
fn make_or_adopt(
    placement: Placement,
    caller: Oid,
    fields: &[SyncedField],
    options: &SyncOptions,
    server: &str,
) -> (Oid, TableName, bool) {
    let shared_parent = placement.existing.filter(|relid| {
        (unsafe { pg_sys::get_rel_relkind(*relid) }) as u8 == pg_sys::RELKIND_PARTITIONED_TABLE
    });
    if options.shared || shared_parent.is_some() {
        let parent = shared_parent.unwrap_or_else(|| {
            if placement.existing.is_some() {
                raise(
                    PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                    "a shared copy is a partitioned table, and the target is not one".into(),
                    Some("Name a new table, and sync_enable makes it partitioned by org; or a partitioned table made by an earlier shared sync."),
                )
            }
            make_table(&placement, caller, |t| {
                create_shared_table_sql(t, fields, options.soft_delete)
            })
        });
        let partition = make_partition(parent, caller, fields, options, server);
        let name = access::table_name(partition).expect("the partition was just made");
        return (partition, name, false);
    }
    let relid = match placement.existing {
        Some(relid) => {
            // Checked before the lock, so no one can queue behind a lock
            // on a table that is not theirs; and again once it is held.
            access::check_table(relid, caller, "the target").or_raise();
            unsafe {
                pg_sys::LockRelationOid(relid, pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE)
            };
            let name = access::check_table(relid, caller, "the target").or_raise();
            refuse_another_syncs(relid, &name);
            check_existing_columns(relid, fields, options.soft_delete).or_raise();
            relid
        }
        None => make_table(&placement, caller, |t| {
            create_table_sql(t, fields, options.soft_delete)
        }),
    };
    let name = access::table_name(relid).expect("the table was just found or made");
    let has_rows = placement.existing.is_some()
        && access::pinned(|| {
            Spi::get_one::<bool>(&format!(
                "SELECT EXISTS (SELECT FROM ONLY {})",
                name.qualified()
            ))
        })
        .or_raise()
            == Some(true);
    (relid, name, has_rows)
}

fn refuse_another_syncs(relid: Oid, name: &TableName) {
    if access::as_extension(|| store::sync_of_table(relid))
        .or_raise()
        .is_some()
    {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!(
                "table {} is the copy of another sync already",
                name.qualified()
            ),
            Some("Each sync has a table of its own; a shared copy has a partition for each."),
        );
    }
}

/// Makes the placed table, as the caller, with the DDL `sql` gives for its
/// qualified name.
fn make_table(placement: &Placement, caller: Oid, sql: impl FnOnce(&str) -> String) -> Oid {
    access::check_creates_in(placement.namespace, caller).or_raise();
    let schema = unsafe { text_of(pg_sys::get_namespace_name(placement.namespace)) };
    let qualified = salesforce_core::sync::definition::qualified(&schema, &placement.table);
    access::pinned(|| Spi::run(&sql(&qualified))).or_raise();
    let name = CString::new(placement.table.as_str()).expect("no NUL");
    unsafe { pg_sys::get_relname_relid(name.as_ptr(), placement.namespace) }
}

/// This server's partition of a shared copy, made as the caller beside it.
fn make_partition(
    parent: Oid,
    caller: Oid,
    fields: &[SyncedField],
    options: &SyncOptions,
    server: &str,
) -> Oid {
    access::check_shared_table(parent, caller).or_raise();
    unsafe { pg_sys::LockRelationOid(parent, pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE) };
    let parent_name = access::check_shared_table(parent, caller).or_raise();
    let mut needed: Vec<SyncedField> = fields.to_vec();
    needed.push(SyncedField {
        field: String::new(),
        column: ORG.into(),
        pg: salesforce_core::typemap::PgType::Text,
    });
    check_columns(parent, &needed, options.soft_delete).or_raise();
    let namespace = unsafe { pg_sys::get_rel_namespace(parent) };
    access::check_creates_in(namespace, caller).or_raise();
    let table = with_suffix(&parent_name.table, &format!("__{server}"));
    let partition = salesforce_core::sync::definition::qualified(&parent_name.schema, &table);
    let id_column = fields
        .iter()
        .find(|f| f.field == "Id")
        .map(|f| f.column.clone())
        .unwrap_or_else(|| "id".into());
    for sql in create_partition_sql(&partition, &parent_name.qualified(), server, &id_column) {
        access::pinned(|| Spi::run(&sql)).unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
                format!("cannot make {partition}, the partition of server {server}: {e}"),
                Some("A server has one partition of a shared copy; sync_disable() the other sync of this object on the server, or drop its partition."),
            )
        });
    }
    let name = CString::new(table.as_str()).expect("no NUL");
    unsafe { pg_sys::get_relname_relid(name.as_ptr(), namespace) }
}

/// Registers a sync and finds or creates its local table; the first run
/// backfills it. Runs as the caller, who becomes the sync's owner.
#[pg_extern]
fn sync_enable(
    server: &str,
    object: &str,
    target: default!(Option<&str>, "NULL"),
    every: default!(Interval, "'5 minutes'"),
    options: default!(JsonB, "'{}'"),
) -> i64 {
    refuse_on_standby();
    access::pinned(store::check_installed_version).or_raise();
    let caller = access::current_role();
    check_every(every.months(), every.days(), every.micros()).or_raise();
    let parsed = SyncOptions::parse(&options.0).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            e.message,
            e.hint.as_deref(),
        )
    });
    let server_oid = catalog::server_oid(server).or_raise();
    access::check_server_use(server_oid, caller).or_raise();
    // A target given by name resolves on the caller's search path, as the
    // caller's own CREATE TABLE would; everything after runs pinned.
    let named = target.map(|t| place_named(t, caller));
    let owned = access::as_extension(|| store::syncs_owned(caller)).or_raise();
    let cap = gucs::MAX_SYNCS_PER_ROLE.get() as i64;
    if owned >= cap {
        raise(
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            format!(
                "role {} has {owned} syncs, as many as salesforce.max_syncs_per_role allows",
                access::role_name(caller)
            ),
            Some("Disable a sync, or ask a superuser to raise salesforce.max_syncs_per_role."),
        );
    }
    let already = access::as_extension(|| store::syncs_of_object(server, object)).or_raise();
    if already.iter().any(|(_, owner)| *owner == caller) {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!(
                "{object} on server {server} is already synced by role {}",
                access::role_name(caller)
            ),
            Some("salesforce.resync() reloads it; salesforce.sync_disable() removes it."),
        );
    }
    let describe = connection::with_session(server_oid, caller, |s| s.describe(object))
        .map_err(|e| connection::unknown_object(e, object))
        .or_raise();
    let fields = synced_fields(&describe, parsed.fields.as_deref())
        .unwrap_or_else(|m| raise(PgSqlErrorCode::ERRCODE_FDW_COLUMN_NAME_NOT_FOUND, m, None));
    let placement = named.unwrap_or_else(|| place_default(server, &describe.name, caller));
    let (relid, name, has_rows) = make_or_adopt(placement, caller, &fields, &parsed, server);
    let id = access::as_extension(|| {
        store::insert_sync(NewSync {
            server,
            object: &describe.name,
            target: &name,
            target_relid: relid,
            every,
            options,
            fields: fields.iter().map(|f| f.field.clone()).collect(),
            columns: fields.iter().map(|f| f.column.clone()).collect(),
            owner: caller,
        })
    })
    .or_raise();
    if parsed.cdc {
        check_cdc_selection(server_oid, caller, &describe.name, id);
    }
    if parsed.write {
        // The caller owns the copy: its trigger is the caller's.
        access::pinned(|| crate::delivery::capture::install(&name.qualified(), id)).or_raise();
    }
    if has_rows {
        // Rows already there may not be in Salesforce: the first run
        // loads every record beside them, then replaces them at once.
        start_resync(&access::as_extension(|| store::load_sync(id)).or_raise());
    }
    let who = if !crate::delivery::wake::worker_running() {
        "no sync worker runs for this database (pg_salesforce in shared_preload_libraries, the database in salesforce.sync_databases): run"
    } else if !crate::gucs::SYNC_ENABLED.get() {
        "the sync worker waits while salesforce.sync_enabled is off; or run"
    } else {
        "the sync worker picks it up, or run"
    };
    crate::error::notice(
        pgrx::PgLogLevel::NOTICE,
        &format!(
            "{} will be copied into {}: {who} CALL salesforce.sync_now('{server}', '{}')",
            describe.name,
            name.qualified(),
            describe.name
        ),
    );
    id
}

/// Whether the org selected the object for Change Data Capture: if not, a
/// WARNING now and `sync_status.stream_warning` until a stream start finds
/// it selected.
pub(super) fn check_cdc_selection(server: Oid, role: Oid, object: &str, sync_id: i64) {
    match connection::with_session(server, role, |s| s.cdc_selection()) {
        Ok(selected) => {
            let warning = selection::warning(&selected, object);
            if let Some(w) = &warning {
                crate::error::notice(pgrx::PgLogLevel::WARNING, &format!("{w}."));
            }
            access::as_extension(|| store::set_stream_warning(sync_id, warning.as_deref()))
                .or_raise();
        }
        Err(e) => crate::error::notice(
            pgrx::PgLogLevel::WARNING,
            &format!(
                "cannot check whether {object} is selected for Change Data Capture ({}): {e}",
                selection::UNREADABLE
            ),
        ),
    }
}

/// Drops a table the sync made or used, as its owner; one that is no
/// longer the owner's ordinary table is left alone.
fn drop_owned(table: CopyTable, what: &str) {
    match access::check_table(table.relid, table.owner, what) {
        Ok(_) => table.drop_table().or_raise(),
        Err(e) if access::table_name(table.relid).is_some() => crate::error::notice(
            pgrx::PgLogLevel::NOTICE,
            &format!("{what} is left as it is: {}", e.message()),
        ),
        Err(_) => {}
    }
}

/// Stops syncing an object; the local table stays unless `drop_table`.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn sync_disable(server: &str, object: &str, drop_table: default!(bool, "false")) {
    refuse_on_standby();
    disable(find_sync(server, object), drop_table);
}

/// The same, for a sync named by its id: how a superuser removes the sync
/// of a role that no longer exists.
#[pg_extern(name = "sync_disable")]
#[search_path(pg_catalog, pg_temp)]
fn sync_disable_by_id(sync_id: i64, drop_table: default!(bool, "false")) {
    refuse_on_standby();
    let Some(sync) = access::as_extension(|| {
        store::sync_exists(sync_id)?
            .then(|| store::load_sync(sync_id))
            .transpose()
    })
    .or_raise() else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("sync {sync_id} does not exist"),
            Some("salesforce.sync_status lists the syncs, with their ids."),
        )
    };
    access::check_manages(
        access::current_role(),
        sync.owner(),
        &format!("sync {sync_id} ({} on server {})", sync.object, sync.server),
    )
    .or_raise();
    disable(sync, drop_table);
}

fn disable(sync: SyncRow, drop_table: bool) {
    lock_for_transaction(sync.id);
    access::as_extension(|| store::delete_sync(sync.id)).or_raise();
    let copy = sync.target();
    if !drop_table && SyncOptions::parse(&sync.options).is_ok_and(|o| o.write) {
        // Writes to the table stay local from now on.
        if let Ok(name) = access::check_table(copy.relid, copy.owner, "the copy") {
            access::as_role(copy.owner, || {
                crate::delivery::capture::remove(&name.qualified())
            })
            .or_raise();
        }
    }
    if let Some(staging) = sync.staging() {
        drop_owned(staging, "the resync's staging table");
    }
    if drop_table {
        drop_owned(sync.target(), "the copy");
    }
}

/// Starts the next run over from the beginning, into a new staging table.
fn start_resync(sync: &SyncRow) {
    lock_for_transaction(sync.id);
    access::check_table(sync.target().relid, sync.owner(), "the copy").or_raise();
    if let Some(old) = sync.staging() {
        drop_owned(old, "the resync's staging table");
    }
    let staging = sync.target().create_like(&sync.staging_name()).or_raise();
    access::as_extension(|| store::request_resync(sync.id, staging.relid)).or_raise();
}

#[pg_extern(name = "_sync_request_resync")]
#[search_path(pg_catalog, pg_temp)]
fn request_resync(server: &str, object: &str) {
    refuse_on_standby();
    start_resync(&find_sync(server, object));
}

/// Whether the calling procedure may COMMIT: not inside BEGIN ... COMMIT.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn _sync_can_commit() -> bool {
    refuse_on_standby();
    unsafe { !pg_sys::IsTransactionBlock() }
}
