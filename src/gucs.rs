//! The extension's settings.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};

/// When writes to Salesforce happen.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum WriteMode {
    /// Each statement's writes are sent when it runs; an abort compensates.
    #[name = c"statement"]
    Statement,
    /// Writes are queued and sent just before COMMIT.
    #[name = c"commit"]
    Commit,
}

pub static WRITE_MODE: GucSetting<WriteMode> = GucSetting::<WriteMode>::new(WriteMode::Statement);

pub fn init() {
    GucRegistry::define_enum_guc(
        c"salesforce.write_mode",
        c"When INSERT, UPDATE and DELETE on Salesforce tables reach Salesforce.",
        c"statement: when each statement runs, undone as far as possible if the transaction aborts; commit: queued and sent just before COMMIT.",
        &WRITE_MODE,
        GucContext::Userset,
        GucFlags::default(),
    );
}
