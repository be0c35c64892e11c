//! What every run checks before it asks Salesforce anything, and why a
//! sync that fails them is paused.

use super::store::SyncRow;
use crate::access;
use crate::catalog;
use crate::connection;
use crate::error::{Error, Result};
use pgrx::PgSqlErrorCode;

/// What every run checks before it asks Salesforce anything: the owner
/// still exists, may still use the server, and still owns its copy.
pub fn check_access(sync: &SyncRow) -> Result<()> {
    let owner = sync.owner();
    if !access::role_exists(owner) {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "the owner of {} (role {}) no longer exists",
                sync.describe(),
                sync.owner
            ),
        )
        .with_hint(format!(
            "A superuser may disable it with salesforce.sync_disable({}).",
            sync.id
        )));
    }
    let server = catalog::server_oid(&sync.server)?;
    access::check_server_use(server, owner)?;
    access::check_table(sync.target().relid, owner, "the copy")?;
    // Salesforce refused the mapping's refresh token (revoked, expired):
    // no login is tried again until the user mapping changes.
    connection::prepare_session(server, owner)?;
    match connection::disconnected(server, owner) {
        Some(why) => Err(disconnected(&why)),
        None => Ok(()),
    }
}

/// Why a sync whose org refused its refresh token is paused.
pub fn disconnected(why: &str) -> Error {
    Error::sql(
        PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION,
        format!("disconnected: {why}"),
    )
    .with_hint("Connect the org again (salesforce.authorize_url and complete_authorization), or change the user mapping's refresh_token.")
}

/// Whether a resync's staging table is there to load into.
pub fn staging_is_usable(sync: &SyncRow) -> bool {
    sync.staging()
        .is_some_and(|s| access::check_table(s.relid, sync.owner(), "the staging table").is_ok())
}
