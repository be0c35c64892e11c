//! The extension's settings.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use std::ffi::CString;

/// When writes to Salesforce happen.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum WriteMode {
    /// Each statement's writes are sent when it runs; an abort compensates.
    #[name = c"statement"]
    Statement,
    /// Writes are queued and sent just before COMMIT.
    #[name = c"commit"]
    Commit,
    /// Writes are stored with the transaction and delivered after COMMIT
    /// by the sync worker.
    #[name = c"queued"]
    Queued,
}

pub static WRITE_MODE: GucSetting<WriteMode> = GucSetting::<WriteMode>::new(WriteMode::Statement);
pub static SYNC_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
pub static SYNC_NAPTIME: GucSetting<i32> = GucSetting::<i32>::new(10);
pub static SYNC_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static PUSHDOWN_AGGREGATES: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static DESCRIBE_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(300);

pub static SYNC_DATABASES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static MAX_SYNCS_PER_ROLE: GucSetting<i32> = GucSetting::<i32>::new(100);
pub static WORKER_REQUEST_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static WORKER_REQUESTS_IN_FLIGHT: GucSetting<i32> = GucSetting::<i32>::new(200);
pub static WORKER_MAX_RUNS: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static OUTBOX_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(7 * 86400);
pub static SYNC_RUNS_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(7 * 86400);
pub static SYNC_RUNS_PER_SYNC: GucSetting<i32> = GucSetting::<i32>::new(1000);

/// The databases whose syncs the worker runs, a worker each:
/// `salesforce.sync_databases` if set, else `salesforce.sync_database`.
pub fn sync_databases() -> Vec<String> {
    let listed = SYNC_DATABASES
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut databases: Vec<String> = Vec::new();
    for name in listed.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !databases.iter().any(|d| d == name) {
            databases.push(name.to_string());
        }
    }
    if databases.is_empty() {
        databases.push(
            SYNC_DATABASE
                .get()
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_else(|| "postgres".into()),
        );
    }
    databases
}

pub fn init() {
    GucRegistry::define_enum_guc(
        c"salesforce.write_mode",
        c"When INSERT, UPDATE and DELETE on Salesforce tables reach Salesforce.",
        c"statement: when each statement runs, undone as far as possible if the transaction aborts; commit: queued and sent just before COMMIT; queued: stored with the transaction and delivered after COMMIT by the sync worker.",
        &WRITE_MODE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"salesforce.sync_database",
        c"The database whose syncs the sync worker runs, unless salesforce.sync_databases lists several.",
        c"Read at server start (a change needs a restart); the worker needs pg_salesforce in shared_preload_libraries.",
        &SYNC_DATABASE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"salesforce.sync_databases",
        c"The databases whose syncs sync workers run, comma-separated: one worker each.",
        c"Read at server start (a change needs a restart); empty means salesforce.sync_database alone.",
        &SYNC_DATABASES,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"salesforce.sync_naptime",
        c"The longest the sync worker sleeps between looks for due syncs.",
        c"It wakes sooner when a sync falls due.",
        &SYNC_NAPTIME,
        1,
        3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"salesforce.sync_enabled",
        c"Whether the sync worker runs due syncs.",
        c"Off pauses the worker; salesforce.sync_now() still works.",
        &SYNC_ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"salesforce.pushdown_aggregates",
        c"Whether GROUP BY and aggregates over a Salesforce table are sent to Salesforce.",
        c"Only where Salesforce's answer is exactly PostgreSQL's; off computes them locally from the rows.",
        &PUSHDOWN_AGGREGATES,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"salesforce.max_syncs_per_role",
        c"The most syncs one role may own.",
        c"sync_enable refuses a role's next sync beyond it. Only superusers may change it.",
        &MAX_SYNCS_PER_ROLE,
        1,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"salesforce.worker_request_timeout",
        c"The longest one request of the sync worker to Salesforce may take.",
        c"Shorter than interactive requests (a server's request_timeout_ms, 120 s by default), so an org that does not answer holds a run no longer; a server's request_timeout_ms applies when shorter.",
        &WORKER_REQUEST_TIMEOUT,
        1,
        3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"salesforce.worker_requests_in_flight",
        c"The most requests to Salesforce the sync worker waits on at once.",
        c"Requests to different user mappings go side by side, one at a time per mapping; a server that does not answer holds one of them until salesforce.worker_request_timeout. CALL salesforce.sync_now uses the same bound.",
        &WORKER_REQUESTS_IN_FLIGHT,
        1,
        10_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"salesforce.worker_max_runs",
        c"The most runs the sync worker keeps going at once.",
        c"Due syncs beyond it wait, the longest due first. Each run going holds a lock on its sync, so the lock table (max_locks_per_transaction times max_connections) must have room for them.",
        &WORKER_MAX_RUNS,
        1,
        100_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"salesforce.describe_interval",
        c"Seconds the sync worker reuses an object's describe before asking Salesforce again.",
        c"The worker checks for new or removed fields at most this often; 0 describes on every run. salesforce.sync_now always describes.",
        &DESCRIBE_INTERVAL,
        0,
        86400,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"salesforce.outbox_retention",
        c"How long delivered and discarded queued writes stay in salesforce.queued_writes.",
        c"The sync worker deletes them this long after they were done; failed and unknown writes stay until retried or discarded.",
        &OUTBOX_RETENTION,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"salesforce.sync_runs_retention",
        c"How long finished runs stay in salesforce.sync_runs.",
        c"The sync worker deletes older runs once a minute; each sync's last run and last successful run stay. 0 keeps runs forever.",
        &SYNC_RUNS_RETENTION,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"salesforce.sync_runs_per_sync",
        c"How many finished runs of each sync stay in salesforce.sync_runs.",
        c"The sync worker deletes a sync's older runs beyond this many once a minute, keeping their API requests in the day's count. 0 keeps every run.",
        &SYNC_RUNS_PER_SYNC,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::default(),
    );
}
