//! Reading the catalog: the options of servers, user mappings, foreign
//! tables and columns, parsed once into their typed forms. A value stored
//! past the validator is reported here, never replaced by a default.

use crate::error::{Error, Result};
use crate::pg::{options_of, relation_name, text_of};
use pgrx::pg_sys::{self, Oid};
use pgrx::PgSqlErrorCode;
use salesforce_core::options::{
    is_secret_option, OptionError, ServerOptions, TableOptions, UserMappingOptions,
};

fn stored(object: String) -> impl FnOnce(OptionError) -> Error {
    move |error| Error::StoredOption { object, error }
}

pub fn server_name(server: Oid) -> String {
    unsafe { text_of((*pg_sys::GetForeignServer(server)).servername) }
}

/// The server's name, None if it was dropped.
pub fn server_name_if_exists(server: Oid) -> Option<String> {
    let found = unsafe { pg_sys::GetForeignServerExtended(server, pg_sys::FSV_MISSING_OK as _) };
    (!found.is_null()).then(|| unsafe { text_of((*found).servername) })
}

/// The server's options and a fingerprint-ready list of what they were.
pub fn server_options(server: Oid) -> Result<(ServerOptions, Vec<(String, String)>)> {
    let raw = unsafe { options_of((*pg_sys::GetForeignServer(server)).options) };
    let parsed = ServerOptions::parse(&raw)
        .map_err(stored(format!("server \"{}\"", server_name(server))))?;
    Ok((parsed, raw))
}

/// The user mapping `user` has on `server`. A missing mapping is reported
/// by PostgreSQL itself, naming user and server.
pub fn user_mapping(server: Oid, user: Oid) -> Result<(UserMappingOptions, Vec<(String, String)>)> {
    let raw = unsafe { options_of((*pg_sys::GetUserMapping(user, server)).options) };
    // The secret options, remembered before anything can echo them; the
    // others (grant_type, client_id, username) are not secrets.
    crate::error::remember_secrets(
        raw.iter()
            .filter(|(k, _)| is_secret_option(k))
            .map(|(_, v)| v.clone()),
    );
    let parsed = UserMappingOptions::parse(&raw).map_err(stored(format!(
        "the user mapping on server \"{}\"",
        server_name(server)
    )))?;
    Ok((parsed, raw))
}

pub fn server_oid(name: &str) -> Result<Oid> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| Error::sql(PgSqlErrorCode::ERRCODE_INVALID_NAME, "bad server name"))?;
    let server = unsafe { pg_sys::get_foreign_server_oid(c.as_ptr(), true) };
    if server == pg_sys::InvalidOid {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("server \"{name}\" does not exist"),
        ));
    }
    Ok(server)
}

/// The user whose mapping a scan uses: the view owner's for a view, else the current user.
pub fn effective_user(check_as_user: Oid) -> Oid {
    if check_as_user == pg_sys::InvalidOid {
        unsafe { pg_sys::GetUserId() }
    } else {
        check_as_user
    }
}

pub struct ForeignTable {
    pub server: Oid,
    pub options: TableOptions,
}

pub fn foreign_table(relid: Oid) -> Result<ForeignTable> {
    let (server, raw) = unsafe {
        let ft = pg_sys::GetForeignTable(relid);
        ((*ft).serverid, options_of((*ft).options))
    };
    let options = TableOptions::parse(&raw).map_err(stored(format!(
        "foreign table \"{}\"",
        relation_name(relid)
    )))?;
    Ok(ForeignTable { server, options })
}

/// A column's `field` option.
pub fn column_field(relid: Oid, attno: i16) -> Option<String> {
    unsafe { options_of(pg_sys::GetForeignColumnOptions(relid, attno)) }
        .into_iter()
        .find(|(k, _)| k == "field")
        .map(|(_, v)| v)
}

/// Whether the relation has a column of that name, not dropped.
pub fn has_column(relid: Oid, column: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(column) else {
        return false;
    };
    unsafe { pg_sys::get_attnum(relid, name.as_ptr()) != pg_sys::InvalidAttrNumber as i16 }
}
