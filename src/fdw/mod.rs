//! The `salesforce` foreign data wrapper. supabase-wrappers provides the
//! handler, validator and IMPORT plumbing; the scan routines are our own
//! (installed by `fdw_routine_hook`), so pushdown is decided at plan time
//! and plans survive caching.

mod authorize;
mod classify;
mod executor;
mod functions;
mod import;
mod join;
mod modify;
mod paths;
mod plan;
mod table;
mod upper;

pgrx::extension_sql_file!("schema.sql", name = "fdw_schema");

use crate::error::Error;
use pgrx::pg_sys::{BuiltinOid, Oid};
use salesforce_core::options::{validate, OptionScope};
use std::collections::HashMap;
use supabase_wrappers::prelude::*;

#[wrappers_fdw(
    version = "0.8.0",
    author = "pg_salesforce developers",
    error_type = "Error"
)]
pub struct SalesforceFdw {
    server: Oid,
}

fn scope_of(catalog: Oid) -> Option<OptionScope> {
    [
        (
            BuiltinOid::ForeignDataWrapperRelationId,
            OptionScope::Wrapper,
        ),
        (BuiltinOid::ForeignServerRelationId, OptionScope::Server),
        (BuiltinOid::UserMappingRelationId, OptionScope::UserMapping),
        (BuiltinOid::ForeignTableRelationId, OptionScope::Table),
        (BuiltinOid::AttributeRelationId, OptionScope::Column),
    ]
    .into_iter()
    .find(|(oid, _)| oid.value() == catalog)
    .map(|(_, scope)| scope)
}

const SCANS_USE_OWN_ROUTINES: &str =
    "salesforce scans run through the routines fdw_routine_hook installs";

impl ForeignDataWrapper<Error> for SalesforceFdw {
    fn new(server: ForeignServer) -> Result<Self, Error> {
        Ok(SalesforceFdw {
            server: server.server_oid,
        })
    }

    fn begin_scan(
        &mut self,
        _: &[Qual],
        _: &[Column],
        _: &[Sort],
        _: &Option<Limit>,
        _: &HashMap<String, String>,
    ) -> Result<(), Error> {
        unreachable!("{SCANS_USE_OWN_ROUTINES}")
    }

    fn iter_scan(&mut self, _row: &mut Row) -> Result<Option<()>, Error> {
        unreachable!("{SCANS_USE_OWN_ROUTINES}")
    }

    fn end_scan(&mut self) -> Result<(), Error> {
        unreachable!("{SCANS_USE_OWN_ROUTINES}")
    }

    fn import_foreign_schema(
        &mut self,
        stmt: ImportForeignSchemaStmt,
    ) -> Result<Vec<String>, Error> {
        import::statements(self.server, &stmt)
    }

    fn fdw_routine_hook(routine: &mut supabase_wrappers::FdwRoutine<pgrx::AllocatedByRust>) {
        routine.GetForeignRelSize = Some(paths::get_foreign_rel_size);
        routine.GetForeignPaths = Some(paths::get_foreign_paths);
        routine.GetForeignPlan = Some(plan::get_foreign_plan);
        routine.GetForeignJoinPaths = Some(join::get_foreign_join_paths);
        routine.GetForeignUpperPaths = Some(upper::get_foreign_upper_paths);
        routine.BeginForeignScan = Some(executor::begin_foreign_scan);
        routine.IterateForeignScan = Some(executor::iterate_foreign_scan);
        routine.ReScanForeignScan = Some(executor::re_scan_foreign_scan);
        routine.EndForeignScan = Some(executor::end_foreign_scan);
        routine.ExplainForeignScan = Some(executor::explain_foreign_scan);
        routine.AddForeignUpdateTargets = Some(modify::add_foreign_update_targets);
        routine.PlanForeignModify = Some(modify::plan_foreign_modify);
        routine.BeginForeignModify = Some(modify::begin_foreign_modify);
        routine.GetForeignModifyBatchSize = Some(modify::get_foreign_modify_batch_size);
        routine.ExecForeignInsert = Some(modify::exec_foreign_insert);
        routine.ExecForeignBatchInsert = Some(modify::exec_foreign_batch_insert);
        routine.ExecForeignUpdate = Some(modify::exec_foreign_update);
        routine.ExecForeignDelete = Some(modify::exec_foreign_delete);
        routine.EndForeignModify = Some(modify::end_foreign_modify);
    }

    fn validator(options: Vec<Option<String>>, catalog: Option<Oid>) -> Result<(), Error> {
        let Some(scope) = catalog.and_then(scope_of) else {
            return Ok(());
        };
        let pairs: Vec<(String, String)> = options
            .into_iter()
            .flatten()
            .map(|o| match o.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (o, String::new()),
            })
            .collect();
        validate(scope, &pairs)?;
        Ok(())
    }
}
