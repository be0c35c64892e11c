//! Materialized sync: local copies of Salesforce objects, backfilled in Id
//! order and then kept current by SystemModstamp, getDeleted and, when that
//! window has passed, a comparison of ids. Runs are driven by
//! `CALL salesforce.sync_now(...)` (pg_cron or by hand) or by the worker;
//! writes through foreign tables reach the copies at once (`write_through`,
//! which lib.rs registers with `write`). Every sync belongs to the role
//! that made it, and its copy is written only as that role (`access`,
//! `copy_table`). What needs no database, the definitions, SOQL and
//! pacing, is `salesforce_core::sync`.

mod alter;
mod api;
mod backfill;
mod backfill_bulk;
mod backfill_rest;
mod budget;
mod bulk;
mod checks;
mod copy_table;
mod drift;
pub(crate) mod fetch;
mod flight;
mod incremental;
mod lock;
mod outdated;
mod rest;
mod rows;
pub(crate) mod run;
mod run_log;
mod seen;
mod steps;
mod store;
mod stream;
mod tally;
mod together;
pub mod worker;
pub mod write_through;

pgrx::extension_sql_file!("schema.sql", name = "sync_schema");
