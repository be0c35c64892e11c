//! The `salesforce` foreign data wrapper.

mod error;

pub use error::SalesforceFdwError;

use crate::options::{validate, OptionScope};
use pgrx::pg_sys::{BuiltinOid, Oid};
use std::collections::HashMap;
use supabase_wrappers::prelude::*;

#[wrappers_fdw(
    version = "0.1.0",
    author = "pg_salesforce developers",
    error_type = "SalesforceFdwError"
)]
pub struct SalesforceFdw;

fn scope_of(catalog: Oid) -> Option<OptionScope> {
    [
        (BuiltinOid::ForeignDataWrapperRelationId, OptionScope::Wrapper),
        (BuiltinOid::ForeignServerRelationId, OptionScope::Server),
        (BuiltinOid::UserMappingRelationId, OptionScope::UserMapping),
        (BuiltinOid::ForeignTableRelationId, OptionScope::Table),
        (BuiltinOid::AttributeRelationId, OptionScope::Column),
    ]
    .into_iter()
    .find(|(oid, _)| oid.value() == catalog)
    .map(|(_, scope)| scope)
}

impl ForeignDataWrapper<SalesforceFdwError> for SalesforceFdw {
    fn new(_server: ForeignServer) -> Result<Self, SalesforceFdwError> {
        Ok(SalesforceFdw)
    }

    fn begin_scan(
        &mut self,
        _quals: &[Qual],
        _columns: &[Column],
        _sorts: &[Sort],
        _limit: &Option<Limit>,
        _options: &HashMap<String, String>,
    ) -> Result<(), SalesforceFdwError> {
        Err(SalesforceFdwError::NotYetSupported("reading a foreign table"))
    }

    fn iter_scan(&mut self, _row: &mut Row) -> Result<Option<()>, SalesforceFdwError> {
        Ok(None)
    }

    fn end_scan(&mut self) -> Result<(), SalesforceFdwError> {
        Ok(())
    }

    fn validator(options: Vec<Option<String>>, catalog: Option<Oid>) -> Result<(), SalesforceFdwError> {
        let Some(scope) = catalog.and_then(scope_of) else { return Ok(()) };
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
