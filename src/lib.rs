//! pg_salesforce: Salesforce inside PostgreSQL.
//!
//! Layers, each depending only on those below it (docs/architecture.md):
//! - features: `fdw` (foreign tables), `write` (writes in the transaction),
//!   `delivery` (writes queued for after commit), `sync` (local copies);
//!   `fdw` queues writes through `delivery::queue`, the sync worker drives
//!   `delivery::deliver`, and this file wires write-through;
//! - PostgreSQL glue: `access`, `catalog`, `connection`, `copy`, `error`,
//!   `flight`, `gucs`, `pg`, `read_ahead`, `records`, `shared_cache`, `values`;
//! - `salesforce_core`, a crate without pgrx: the Salesforce client and the
//!   logic that needs no database.

use pgrx::prelude::*;

mod access;
mod catalog;
mod connection;
mod copy;
mod delivery;
mod error;
mod events;
mod fdw;
mod flight;
mod gucs;
mod pg;
mod read_ahead;
mod records;
mod row_insert;
mod shared_cache;
mod sync;
mod values;
mod write;

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    write::transaction::on_applied(sync::write_through::apply);
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        shared_cache::request();
        sync::worker::register();
    }
}

pgrx::pg_module_magic!();

extension_sql!(
    r#"
CREATE FOREIGN DATA WRAPPER salesforce
  HANDLER @extschema@.salesforce_fdw_handler
  VALIDATOR @extschema@.salesforce_fdw_validator;
COMMENT ON FOREIGN DATA WRAPPER salesforce IS 'Salesforce objects as foreign tables';
"#,
    name = "salesforce_wrapper",
    finalize
);

#[cfg(any(test, feature = "pg_test"))]
#[path = "../pgrx-tests/mod.rs"]
mod db_tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    /// The test cluster's backends run as `postgres` through sudo and do not
    /// inherit SFSIM_URL, so it reaches them as a placeholder setting.
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        match std::env::var("SFSIM_URL") {
            Ok(url) => vec![Box::leak(format!("sfsim.url = '{url}'").into_boxed_str())],
            Err(_) => vec![],
        }
    }
}
