//! Entry points of schema versions before 0.6.0 that later versions
//! dropped or changed. Their install scripts name these symbols, so a new
//! library must still have them for those scripts (and the upgrade path
//! through them) to load; called, each asks for ALTER EXTENSION ... UPDATE.

use super::store::check_installed_version;
use crate::access;
use crate::error::{Error, OrRaise};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

fn outdated() -> ! {
    access::pinned(check_installed_version).or_raise();
    Error::sql(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "this function belongs to an older pg_salesforce schema",
    )
    .with_hint("Run ALTER EXTENSION pg_salesforce UPDATE.")
    .raise()
}

#[pg_extern(sql = false)]
fn _sync_id(_server: &str, _object: &str) -> i64 {
    outdated()
}

#[pg_extern(sql = false)]
fn _sync_start(_sync_id: i64, _started_by: &str) -> i64 {
    outdated()
}

#[pg_extern(sql = false)]
fn _sync_finish(_run_id: i64, _failure: Option<&str>) {
    outdated()
}

#[pg_extern(sql = false)]
fn _sync_request_resync(_sync_id: i64) {
    outdated()
}
