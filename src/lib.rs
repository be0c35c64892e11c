//! pg_salesforce: Salesforce inside PostgreSQL.

use pgrx::prelude::*;

mod fdw;
mod gucs;
mod naming;
mod options;
mod salesforce;
mod soql;
mod sync;
mod typemap;
mod write;

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
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
#[path = "pg_test/support.rs"]
mod test_support;

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::test_support::*;
    use pgrx::prelude::*;

    include!("pg_test/extension.rs");
    include!("pg_test/read.rs");
    include!("pg_test/write.rs");
    include!("pg_test/sync.rs");
    include!("pg_test/write_through.rs");
}

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
