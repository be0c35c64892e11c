//! Errors of the salesforce FDW, reported to PostgreSQL with FDW SQLSTATEs,
//! a hint where one helps, and never a credential.

use crate::options::OptionError;
use crate::salesforce::SalesforceError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

#[derive(Debug)]
pub enum SalesforceFdwError {
    InvalidOption(OptionError),
    /// An error from Salesforce; `secrets` are scrubbed from what is reported.
    Salesforce {
        error: SalesforceError,
        secrets: Vec<String>,
    },
    /// A foreign table that does not match its Salesforce object.
    Mapping {
        message: String,
        hint: String,
    },
    /// Salesforce refused a record of a write.
    Rejected(crate::write::chunk::Rejection),
    /// A write reached Salesforce, but the local copy of its object could
    /// not follow; the transaction must roll back.
    LocalCopy {
        object: String,
        /// None when the sync itself could not be read.
        table: Option<String>,
        cause: String,
    },
    /// A value Salesforce sent that the column's type cannot hold.
    Conversion {
        column: String,
        message: String,
    },
}

const SCRUBBED: &str = "********";

impl SalesforceFdwError {
    pub fn salesforce(error: SalesforceError, secrets: Vec<String>) -> Self {
        SalesforceFdwError::Salesforce { error, secrets }
    }

    pub fn mapping(message: impl Into<String>, hint: impl Into<String>) -> Self {
        SalesforceFdwError::Mapping {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl From<OptionError> for SalesforceFdwError {
    fn from(e: OptionError) -> Self {
        SalesforceFdwError::InvalidOption(e)
    }
}

fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(text.to_string(), |t, s| t.replace(s.as_str(), SCRUBBED))
}

fn hint_for(error: &SalesforceError) -> Option<&'static str> {
    Some(match error {
        SalesforceError::Api { code, .. } => match code.as_str() {
            "INVALID_FIELD" => "The foreign table may no longer match the object: re-run IMPORT FOREIGN SCHEMA, or check the column's field option.",
            "INVALID_TYPE" | "NOT_FOUND" => "Check the foreign table's object option and the user's access to the object.",
            "REQUEST_LIMIT_EXCEEDED" => "The org's daily API request limit is used up; requests free up over a rolling 24 hours.",
            "INVALID_SESSION_ID" => "The access token was refused; replace it, or use a grant_type that can log in again.",
            "URI_TOO_LONG" | "REQUEST_HEADER_FIELDS_TOO_LARGE" => "Select fewer columns or shorten the IN lists.",
            _ => return None,
        },
        SalesforceError::Login { .. } => "Check the credentials in the user mapping and the server's login_url.",
        SalesforceError::Network(_) | SalesforceError::ConnectFailed(_) => "Check the server's login_url and instance_url, and that Salesforce can be reached.",
        _ => return None,
    })
}

impl From<SalesforceFdwError> for ErrorReport {
    fn from(e: SalesforceFdwError) -> ErrorReport {
        match e {
            SalesforceFdwError::InvalidOption(e) => {
                let report = ErrorReport::new(
                    PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                    e.message,
                    "",
                );
                match e.hint {
                    Some(hint) => report.set_hint(hint),
                    None => report,
                }
            }
            SalesforceFdwError::Salesforce { error, secrets } => {
                if error == SalesforceError::Cancelled {
                    // Raises PostgreSQL's own cancel or timeout error when one is pending.
                    pgrx::check_for_interrupts!();
                }
                let code = match &error {
                    SalesforceError::Login { .. }
                    | SalesforceError::Network(_)
                    | SalesforceError::ConnectFailed(_) => {
                        PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION
                    }
                    SalesforceError::Config(_) => PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                    SalesforceError::Cancelled => PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                    _ => PgSqlErrorCode::ERRCODE_FDW_ERROR,
                };
                let report = ErrorReport::new(code, scrub(&error.to_string(), &secrets), "");
                match hint_for(&error) {
                    Some(h) => report.set_hint(h),
                    None => report,
                }
            }
            SalesforceFdwError::Mapping { message, hint } => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_FDW_COLUMN_NAME_NOT_FOUND,
                message,
                "",
            )
            .set_hint(hint),
            SalesforceFdwError::Rejected(r) => {
                let code = match r.error.status_code.as_str() {
                    "DUPLICATE_VALUE" | "DUPLICATES_DETECTED" => {
                        PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION
                    }
                    "REQUIRED_FIELD_MISSING" => PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION" => PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
                    "INVALID_CROSS_REFERENCE_KEY"
                    | "FIELD_INTEGRITY_EXCEPTION"
                    | "ENTITY_IS_DELETED" => PgSqlErrorCode::ERRCODE_FOREIGN_KEY_VIOLATION,
                    "STRING_TOO_LONG" => PgSqlErrorCode::ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
                    _ => PgSqlErrorCode::ERRCODE_FDW_ERROR,
                };
                let which = if r.which.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.which)
                };
                let report = ErrorReport::new(
                    code,
                    format!(
                        "Salesforce rejected row {} of the {}{which}: {}: {}",
                        r.row, r.statement, r.error.status_code, r.error.message
                    ),
                    "",
                );
                if r.error.fields.is_empty() {
                    report
                } else {
                    report.set_detail(format!("Fields: {}", r.error.fields.join(", ")))
                }
            }
            SalesforceFdwError::LocalCopy { object, table, cause } => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_FDW_ERROR,
                format!(
                    "a write to {object} reached Salesforce, but its local copy{} could not take it: {cause}",
                    table.map(|t| format!(" {t}")).unwrap_or_default()
                ),
                "",
            )
            .set_hint("The transaction rolls back, and its Salesforce writes are undone. salesforce.sync_disable() stops keeping the copy."),
            SalesforceFdwError::Conversion { column, message } => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE_DESCRIPTORS,
                format!("cannot convert the value of column \"{column}\": {message}"),
                "",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_the_message() {
        let e = SalesforceError::Api {
            status: 400,
            code: "X".into(),
            message: "echo sfsim-passwordSFSIMTOKEN back".into(),
        };
        assert_eq!(
            scrub(
                &e.to_string(),
                &["sfsim-passwordSFSIMTOKEN".into(), "ab".into()]
            ),
            "Salesforce X: echo ******** back"
        );
    }
}
