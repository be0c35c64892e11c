//! The extension's one error type. Every failure, whatever layer it comes
//! from, becomes an `Error`, and every way out of the extension (an ERROR,
//! a NOTICE or WARNING, a log line, `sync_runs.error`) renders it here, where
//! credentials are scrubbed: the user mappings' and the live tokens alike.

use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::{PgLogLevel, PgSqlErrorCode};
use salesforce_core::options::OptionError;
use salesforce_core::write::chunk::Rejection;
use salesforce_core::SalesforceError;
use std::cell::RefCell;
use std::collections::BTreeSet;

#[derive(Debug)]
pub enum Error {
    /// A bad option given to CREATE or ALTER.
    InvalidOption(OptionError),
    /// A bad option already stored in the catalog, found at run time.
    StoredOption {
        object: String,
        error: OptionError,
    },
    Salesforce(SalesforceError),
    /// A foreign table that does not match its Salesforce object.
    Mapping {
        message: String,
        hint: String,
    },
    /// Salesforce refused a record of a write.
    Rejected(Box<Rejection>),
    /// A write reached Salesforce, but the local copy of its object could
    /// not follow; the transaction must roll back.
    LocalCopy {
        object: String,
        /// None when the sync itself could not be read.
        table: Option<String>,
        cause: Box<Error>,
    },
    /// A value Salesforce sent that the column cannot hold.
    Conversion {
        column: String,
        field: String,
        record: Option<String>,
        message: String,
    },
    /// Anything else, with its SQLSTATE: PostgreSQL's own errors caught on
    /// the way, SPI failures, and the sync's refusals.
    Sql {
        code: PgSqlErrorCode,
        message: String,
        detail: Option<String>,
        hint: Option<String>,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

const SCRUBBED: &str = "********";

/// Every credential this backend has held, ever, and a matcher for them
/// all, made again after one is added: scrubbing costs one pass over the
/// text however many orgs the backend (the worker, say) has logged in to.
#[derive(Default)]
struct Secrets {
    known: BTreeSet<String>,
    matcher: Option<aho_corasick::AhoCorasick>,
}

thread_local! {
    /// Scrubbed from every message, even after the session that held one
    /// is gone.
    static SECRETS: RefCell<Secrets> = RefCell::new(Secrets::default());
}

/// Adds credentials to scrub. Short values are left out: they would
/// mangle ordinary words and are not worth hiding.
pub fn remember_secrets(secrets: impl IntoIterator<Item = String>) {
    SECRETS.with(|s| {
        let mut s = s.borrow_mut();
        for secret in secrets {
            if secret.len() >= 4 && !s.known.contains(&secret) {
                s.known.insert(secret);
                s.matcher = None;
            }
        }
    });
}

/// The text with every known credential replaced.
pub fn scrub(text: &str) -> String {
    SECRETS.with(|s| {
        let mut s = s.borrow_mut();
        if text.is_empty() || s.known.is_empty() {
            return text.to_string();
        }
        if s.matcher.is_none() {
            // Leftmost-longest: a secret that contains another goes whole.
            // A contiguous NFA: thousands of secrets in little memory.
            s.matcher = aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
                .build(&s.known)
                .ok();
        }
        match &s.matcher {
            Some(matcher) => {
                let mut out = String::with_capacity(text.len());
                matcher.replace_all_with(text, &mut out, |_, _, out| {
                    out.push_str(SCRUBBED);
                    true
                });
                out
            }
            // Too many to build a matcher for (it has a size limit): one
            // at a time, longest first.
            None => {
                let mut secrets: Vec<&String> = s.known.iter().collect();
                secrets.sort_by_key(|x| std::cmp::Reverse(x.len()));
                secrets
                    .into_iter()
                    .fold(text.to_string(), |t, s| t.replace(s.as_str(), SCRUBBED))
            }
        }
    })
}

impl Error {
    pub fn mapping(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Mapping {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn sql(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        Error::Sql {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// A bad argument of a routine users call (22023), with what to do.
    pub fn invalid(message: impl Into<String>, hint: &str) -> Self {
        Error::sql(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message).with_hint(hint)
    }

    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            Error::Sql {
                code,
                message,
                detail,
                ..
            } => Error::Sql {
                code,
                message,
                detail,
                hint: Some(hint.into()),
            },
            other => other,
        }
    }

    /// A PostgreSQL error caught while running SQL on the extension's behalf.
    pub fn caught(e: CaughtError) -> Self {
        match e {
            CaughtError::PostgresError(r)
            | CaughtError::ErrorReport(r)
            | CaughtError::RustPanic { ereport: r, .. } => Error::Sql {
                code: r.sql_error_code(),
                message: r.message().to_string(),
                detail: r.detail().map(str::to_string),
                hint: r.hint().map(str::to_string),
            },
        }
    }

    pub fn salesforce_code(&self) -> Option<&str> {
        match self {
            Error::Salesforce(e) => e.api_code(),
            _ => None,
        }
    }

    /// The scrubbed message alone, for logs and `sync_runs.error`.
    pub fn message(&self) -> String {
        self.report_parts().1
    }

    /// The SQLSTATE the error is raised with.
    pub fn code(&self) -> PgSqlErrorCode {
        self.report_parts().0
    }

    /// The SQLSTATE as its five characters, such as `42501`.
    pub fn sqlstate(&self) -> String {
        let mut code = self.code() as i32;
        (0..5)
            .map(|_| {
                let c = ((code & 0x3F) as u8 + b'0') as char;
                code >>= 6;
                c
            })
            .collect()
    }

    /// The scrubbed hint, if any.
    pub fn hint(&self) -> Option<String> {
        self.report_parts().3
    }

    /// Raises the error as a PostgreSQL ERROR, located where it is raised.
    #[track_caller]
    pub fn raise(self) -> ! {
        self.into_report().report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }

    /// The report PostgreSQL raises: its LOCATION is the caller's file and
    /// line, and the Rust function there.
    #[track_caller]
    fn into_report(self) -> ErrorReport {
        if matches!(self, Error::Salesforce(SalesforceError::Cancelled)) {
            // Raises PostgreSQL's own cancel or timeout error when one is pending.
            pgrx::check_for_interrupts!();
        }
        let (code, message, detail, hint) = self.report_parts();
        let mut report =
            ErrorReport::new(code, message, function_at(std::panic::Location::caller()));
        if let Some(d) = detail {
            report = report.set_detail(d);
        }
        if let Some(h) = hint {
            report = report.set_hint(h);
        }
        report
    }

    fn report_parts(&self) -> (PgSqlErrorCode, String, Option<String>, Option<String>) {
        let (code, message, detail, hint) = match self {
            Error::InvalidOption(e) => (
                PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                e.message.clone(),
                None,
                e.hint.clone(),
            ),
            Error::StoredOption { object, error } => (
                PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                format!("{object} has a bad option: {}", error.message),
                None,
                Some(error.hint.clone().unwrap_or_else(|| {
                    "Correct it with ALTER ... OPTIONS (SET ...).".to_string()
                })),
            ),
            Error::Salesforce(e) => (
                salesforce_code(e),
                e.to_string(),
                None,
                hint_for(e).map(str::to_string),
            ),
            Error::Mapping { message, hint } => (
                PgSqlErrorCode::ERRCODE_FDW_COLUMN_NAME_NOT_FOUND,
                message.clone(),
                None,
                Some(hint.clone()),
            ),
            Error::Rejected(r) => {
                let which = if r.which.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.which)
                };
                (
                    rejection_code(&r.error.status_code),
                    format!(
                        "Salesforce rejected row {} of the {}{which}: {}: {}",
                        r.row, r.statement, r.error.status_code, r.error.message
                    ),
                    (!r.error.fields.is_empty())
                        .then(|| format!("Fields: {}", r.error.fields.join(", "))),
                    None,
                )
            }
            Error::LocalCopy { object, table, cause } => (
                PgSqlErrorCode::ERRCODE_FDW_ERROR,
                format!(
                    "a write to {object} reached Salesforce, but its local copy{} could not take it: {}",
                    table.as_ref().map(|t| format!(" {t}")).unwrap_or_default(),
                    cause.report_parts().1
                ),
                None,
                Some("The transaction rolls back, and its Salesforce writes are undone. salesforce.sync_disable() stops keeping the copy.".into()),
            ),
            Error::Conversion {
                column,
                field,
                record,
                message,
            } => (
                PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE_DESCRIPTORS,
                format!(
                    "cannot convert the value of column \"{column}\" (Salesforce field {field}{}): {message}",
                    record.as_ref().map(|r| format!(" of record {r}")).unwrap_or_default()
                ),
                None,
                None,
            ),
            Error::Sql {
                code,
                message,
                detail,
                hint,
            } => (*code, message.clone(), detail.clone(), hint.clone()),
        };
        (
            code,
            scrub(&message),
            detail.map(|d| scrub(&d)),
            hint.map(|h| scrub(&h)),
        )
    }
}

fn salesforce_code(e: &SalesforceError) -> PgSqlErrorCode {
    match e {
        SalesforceError::Login { .. }
        | SalesforceError::Network(_)
        | SalesforceError::TimedOut(_)
        | SalesforceError::ConnectFailed(_) => {
            PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION
        }
        SalesforceError::Config(_) => PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
        SalesforceError::Cancelled => PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
        _ => PgSqlErrorCode::ERRCODE_FDW_ERROR,
    }
}

fn rejection_code(status_code: &str) -> PgSqlErrorCode {
    match status_code {
        "DUPLICATE_VALUE" | "DUPLICATES_DETECTED" => PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
        "REQUIRED_FIELD_MISSING" => PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION" => PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
        "INVALID_CROSS_REFERENCE_KEY" | "FIELD_INTEGRITY_EXCEPTION" | "ENTITY_IS_DELETED" => {
            PgSqlErrorCode::ERRCODE_FOREIGN_KEY_VIOLATION
        }
        "STRING_TOO_LONG" => PgSqlErrorCode::ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
        _ => PgSqlErrorCode::ERRCODE_FDW_ERROR,
    }
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

/// The scrubbed message, as `message()` renders it.
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl From<OptionError> for Error {
    fn from(e: OptionError) -> Self {
        Error::InvalidOption(e)
    }
}

impl From<SalesforceError> for Error {
    fn from(e: SalesforceError) -> Self {
        Error::Salesforce(e)
    }
}

impl From<Box<Rejection>> for Error {
    fn from(r: Box<Rejection>) -> Self {
        Error::Rejected(r)
    }
}

impl From<pgrx::spi::Error> for Error {
    fn from(e: pgrx::spi::Error) -> Self {
        Error::sql(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("SPI: {e}"))
    }
}

/// supabase-wrappers raises the wrapper's errors through this.
impl From<Error> for ErrorReport {
    #[track_caller]
    fn from(e: Error) -> ErrorReport {
        e.into_report()
    }
}

/// Where each function of the extension starts: (file, line, name), in
/// file and line order (`build.rs` makes it).
static FUNCTIONS: &[(&str, u32, &str)] = include!(concat!(env!("OUT_DIR"), "/functions.rs"));

/// The function of the extension that holds `location`: the last one that
/// starts above it in its file (a closure's is the function around it).
pub fn function_at(location: &std::panic::Location<'_>) -> &'static str {
    let (file, line) = (location.file(), location.line());
    let after = FUNCTIONS.partition_point(|(f, l, _)| (*f, *l) <= (file, line));
    match after.checked_sub(1).map(|i| FUNCTIONS[i]) {
        Some((f, _, name)) if f == file => name,
        _ => "",
    }
}

/// Raises an `Err` as a PostgreSQL ERROR.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T, E: Into<Error>> OrRaise<T> for std::result::Result<T, E> {
    #[track_caller]
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.into().raise(),
        }
    }
}

/// A NOTICE, WARNING or LOG line, scrubbed like every error.
#[track_caller]
pub fn notice(level: PgLogLevel, message: &str) {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        scrub(message),
        function_at(std::panic::Location::caller()),
    )
    .report(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_the_message() {
        remember_secrets(["sfsim-passwordSFSIMTOKEN".to_string(), "ab".to_string()]);
        let e = Error::Salesforce(SalesforceError::Api {
            status: 400,
            code: "X".into(),
            message: "echo sfsim-passwordSFSIMTOKEN back, ab".into(),
        });
        assert_eq!(e.message(), "Salesforce X: echo ******** back, ab");
    }
}
