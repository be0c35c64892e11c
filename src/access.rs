//! Who may do what, answered in one place, and work run as another role.
//!
//! The model is pg_cron's and postgres_fdw's (docs/security.md):
//! - a role uses a server when it has USAGE on it and a user mapping, its
//!   own or PUBLIC's, the one postgres_fdw would use;
//! - a sync belongs to the role that created it; its owner, a role with
//!   the owner's privileges, or a superuser may run, resync or disable it;
//! - a sync's copy is an ordinary table held by OID, owned by the sync's
//!   owner, and written only as that owner;
//! - the extension's own tables are written only by the extension, as
//!   their owner, never by users' DML.
//!
//! Work for a role runs as that role in a security-restricted operation
//! with the search path pinned, as autovacuum and REFRESH MATERIALIZED VIEW
//! run a table owner's code.

use crate::error::{Error, Result};
use crate::pg::text_of;
use pgrx::pg_sys::{self, Oid};
use pgrx::PgSqlErrorCode;

/// The search path every statement of the extension runs with.
const PINNED_PATH: &std::ffi::CStr = c"pg_catalog, pg_temp";

/// The role a routine runs for: the current user.
pub fn current_role() -> Oid {
    unsafe { pg_sys::GetUserId() }
}

pub fn role_name(role: Oid) -> String {
    let name = unsafe { pg_sys::GetUserNameFromId(role, true) };
    if name.is_null() {
        format!("(dropped role {})", role.to_u32())
    } else {
        unsafe { text_of(name) }
    }
}

pub fn role_exists(role: Oid) -> bool {
    unsafe {
        pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::AUTHOID as i32,
            role.into(),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    }
}

/// Whether `role` has the privileges of `owner`: the owner itself, a
/// member that inherits from it, or a superuser.
pub fn acts_for(role: Oid, owner: Oid) -> bool {
    unsafe { pg_sys::has_privs_of_role(role, owner) }
}

fn denied(message: String, hint: &str) -> Error {
    Error::sql(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, message).with_hint(hint)
}

/// May `role` manage a sync that `owner` owns?
pub fn check_manages(role: Oid, owner: Oid, what: &str) -> Result<()> {
    if acts_for(role, owner) {
        return Ok(());
    }
    Err(denied(
        format!("permission denied for {what}"),
        "Only the sync's owner, a member of the owner's role, or a superuser may run, resync or disable it.",
    ))
}

/// Whether `role` has a user mapping on `server`, its own or PUBLIC's.
fn has_user_mapping(server: Oid, role: Oid) -> bool {
    mapping_user(server, role).is_some()
}

/// The user of the mapping `role` uses on `server`: `role` for its own,
/// InvalidOid for PUBLIC's; None without either.
pub fn mapping_user(server: Oid, role: Oid) -> Option<Oid> {
    let exists = |user: Oid| unsafe {
        pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::USERMAPPINGUSERSERVER as i32,
            user.into(),
            server.into(),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    };
    if exists(role) {
        Some(role)
    } else if exists(Oid::INVALID) {
        Some(Oid::INVALID)
    } else {
        None
    }
}

/// May `role` use `server`: USAGE on it, and a user mapping to log in with.
pub fn check_server_use(server: Oid, role: Oid) -> Result<()> {
    let usage = unsafe {
        pg_sys::pg_foreign_server_aclcheck(server, role, pg_sys::ACL_USAGE as pg_sys::AclMode)
    };
    if usage != pg_sys::AclResult::ACLCHECK_OK {
        let name = crate::catalog::server_name(server);
        return Err(denied(
            format!(
                "permission denied for foreign server {name}: role {} has no USAGE on it",
                role_name(role)
            ),
            &format!("GRANT USAGE ON FOREIGN SERVER {name} TO the role."),
        ));
    }
    if !has_user_mapping(server, role) {
        let name = crate::catalog::server_name(server);
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "user mapping not found for user \"{}\", server \"{name}\"",
                role_name(role)
            ),
        )
        .with_hint("CREATE USER MAPPING FOR the role (or for PUBLIC) SERVER ... with its Salesforce credentials."));
    }
    Ok(())
}

/// An ordinary table, by OID, as the catalog names it now.
#[derive(Clone, Debug)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn qualified(&self) -> String {
        salesforce_core::sync::definition::qualified(&self.schema, &self.table)
    }
}

/// The table's schema and name, if it exists.
pub fn table_name(relid: Oid) -> Option<TableName> {
    unsafe {
        let name = pg_sys::get_rel_name(relid);
        if name.is_null() {
            return None;
        }
        let schema = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        Some(TableName {
            schema: text_of(schema),
            table: text_of(name),
        })
    }
}

/// The role that owns table `relid`, if it exists.
fn table_owner(relid: Oid) -> Option<Oid> {
    unsafe {
        let tuple =
            pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as i32, relid.into());
        if tuple.is_null() {
            return None;
        }
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        Some(owner)
    }
}

/// Is `relid` an ordinary table that `owner` itself owns? `what` names it
/// in the error. Ownership is exact, not through membership or superuser:
/// the copy is written as `owner`, and its triggers run as `owner`, so a
/// table of anyone else's would run their code with `owner`'s rights.
pub fn check_table(relid: Oid, owner: Oid, what: &str) -> Result<TableName> {
    let Some(name) = table_name(relid) else {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("{what} no longer exists"),
        )
        .with_hint("salesforce.sync_disable() and sync_enable() make a new copy."));
    };
    let kind = unsafe { pg_sys::get_rel_relkind(relid) } as u8;
    if kind != pg_sys::RELKIND_RELATION {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("{what} {} is not an ordinary table", name.qualified()),
        )
        .with_hint("A copy must be a table, not a view or another kind of relation."));
    }
    if table_owner(relid) != Some(owner) {
        return Err(denied(
            format!(
                "{what} {} is not owned by role {}",
                name.qualified(),
                role_name(owner)
            ),
            "A sync writes only tables its owner owns.",
        ));
    }
    Ok(name)
}

/// Is `relid` a partitioned table, shared by several orgs' copies, that
/// `owner` itself owns?
pub fn check_shared_table(relid: Oid, owner: Oid) -> Result<TableName> {
    let Some(name) = table_name(relid) else {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            "the shared table no longer exists",
        ));
    };
    let kind = unsafe { pg_sys::get_rel_relkind(relid) } as u8;
    if kind != pg_sys::RELKIND_PARTITIONED_TABLE {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("{} is not a partitioned table", name.qualified()),
        ));
    }
    if table_owner(relid) != Some(owner) {
        return Err(denied(
            format!(
                "the shared table {} is not owned by role {}",
                name.qualified(),
                role_name(owner)
            ),
            "Each org's partition is made and written as the shared table's owner.",
        ));
    }
    Ok(name)
}

/// May `role` create tables in schema `namespace`?
pub fn check_creates_in(namespace: Oid, role: Oid) -> Result<()> {
    let ok = unsafe {
        pg_sys::pg_namespace_aclcheck(namespace, role, pg_sys::ACL_CREATE as pg_sys::AclMode)
    };
    if ok == pg_sys::AclResult::ACLCHECK_OK {
        return Ok(());
    }
    let schema = unsafe { text_of(pg_sys::get_namespace_name(namespace)) };
    Err(denied(
        format!(
            "permission denied for schema {schema}: role {} may not create tables in it",
            role_name(role)
        ),
        "Name a target in a schema the role may create tables in, or an existing table it owns.",
    ))
}

/// May `role` create schemas in this database?
pub fn creates_schemas(role: Oid) -> bool {
    unsafe {
        pg_sys::pg_database_aclcheck(
            pg_sys::MyDatabaseId,
            role,
            pg_sys::ACL_CREATE as pg_sys::AclMode,
        ) == pg_sys::AclResult::ACLCHECK_OK
    }
}

/// Runs `f` as `role`, in a security-restricted operation, with only
/// pg_catalog (and then pg_temp) on the search path: `f` needs no rights of
/// the caller's and cannot meet functions the caller's path would find.
pub fn as_role<T>(role: Oid, f: impl FnOnce() -> T) -> T {
    let (mut saved_user, mut saved_context) = (Oid::INVALID, 0);
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            role,
            saved_context
                | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION)
                    as i32,
        );
    }
    // An error inside `f` aborts the (sub)transaction, which restores both.
    let out = pinned(f);
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    out
}

/// Runs `f` with the search path pinned to pg_catalog and pg_temp. Any
/// setting changed inside (a copy's trigger running `SET search_path`, say)
/// is rolled back at the end, as PostgreSQL does after running a table
/// owner's code for maintenance, so nothing `f` runs can steer what runs
/// after it.
pub fn pinned<T>(f: impl FnOnce() -> T) -> T {
    unsafe {
        let nest_level = pg_sys::NewGUCNestLevel();
        // Already pinned (a routine's own SET search_path): setting it again
        // would only make PostgreSQL work out the path anew, twice.
        let current = pg_sys::namespace_search_path;
        if !current.is_null() && std::ffi::CStr::from_ptr(current) == PINNED_PATH {
            let out = f();
            pg_sys::AtEOXact_GUC(false, nest_level);
            return out;
        }
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            PINNED_PATH.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        let out = f();
        pg_sys::AtEOXact_GUC(false, nest_level);
        out
    }
}

/// Pins the search path for the rest of this process: the sync worker's
/// statements never depend on postgresql.conf's path.
pub fn pin_for_process() {
    unsafe {
        pg_sys::SetConfigOption(
            c"search_path".as_ptr(),
            PINNED_PATH.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        );
    }
}

/// The role that owns the extension's tables (the extension's owner, who
/// made them), read through the catalog caches: routines that write them
/// ask on every call.
pub fn extension_owner() -> Result<Oid> {
    let relid = unsafe {
        let schema = pg_sys::get_namespace_oid(c"salesforce".as_ptr(), true);
        if schema == Oid::INVALID {
            Oid::INVALID
        } else {
            pg_sys::get_relname_relid(c"syncs".as_ptr(), schema)
        }
    };
    table_owner(relid).ok_or_else(|| {
        Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            "the extension's tables are missing: is pg_salesforce installed in schema salesforce?",
        )
    })
}

/// Runs `f` as the extension's owner: how routines that users call read
/// and write the extension's tables, which users cannot write themselves.
pub fn as_extension<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let owner = extension_owner()?;
    as_role(owner, f)
}
