//! Errors of the salesforce FDW, reported to PostgreSQL with an FDW SQLSTATE.

use crate::options::OptionError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

#[derive(Debug)]
pub enum SalesforceFdwError {
    InvalidOption(OptionError),
    NotYetSupported(&'static str),
}

impl From<OptionError> for SalesforceFdwError {
    fn from(e: OptionError) -> Self {
        SalesforceFdwError::InvalidOption(e)
    }
}

impl From<SalesforceFdwError> for ErrorReport {
    fn from(e: SalesforceFdwError) -> ErrorReport {
        match e {
            SalesforceFdwError::InvalidOption(e) => {
                let report = ErrorReport::new(PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME, e.message, "");
                match e.hint {
                    Some(hint) => report.set_hint(hint),
                    None => report,
                }
            }
            SalesforceFdwError::NotYetSupported(what) => {
                ErrorReport::new(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, format!("salesforce: {what} is not supported yet"), "")
            }
        }
    }
}
