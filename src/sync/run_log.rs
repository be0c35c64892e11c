//! Keeps `salesforce.sync_runs` bounded: the sync worker deletes finished
//! runs older than `salesforce.sync_runs_retention`, and each sync's runs
//! beyond `salesforce.sync_runs_per_sync`. Each sync's last run, last
//! successful run and last finished poll stay, for `sync_status` and the
//! back-off. The API requests of runs deleted within the day move into
//! `salesforce.api_usage`, by hour, so `sync_status.api_requests_24h`
//! still counts them.

use crate::error::Result;
use crate::gucs;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Deletes the runs past retention; returns how many. Nothing before the
/// extension is created, or updated to the version that keeps api_usage.
pub fn trim(max_age_secs: i64, per_sync: i64) -> Result<i64> {
    if Spi::get_one::<bool>("SELECT to_regclass('salesforce.api_usage') IS NOT NULL")? != Some(true)
    {
        return Ok(0);
    }
    let deleted = Spi::get_one_with_args::<i64>(
        "WITH kept AS (
             SELECT max(id) AS id FROM salesforce.sync_runs WHERE sync_id IS NOT NULL GROUP BY sync_id
             UNION ALL
             SELECT max(id) FROM salesforce.sync_runs WHERE sync_id IS NOT NULL AND status = 'succeeded' GROUP BY sync_id
             UNION ALL
             SELECT max(id) FROM salesforce.sync_runs
              WHERE sync_id IS NOT NULL AND status IN ('succeeded', 'failed') AND kind <> 'stream' GROUP BY sync_id
         ), ranked AS (
             SELECT id, row_number() OVER (PARTITION BY sync_id ORDER BY id DESC) AS nth
               FROM salesforce.sync_runs WHERE status <> 'running'
         ), gone AS (
             DELETE FROM salesforce.sync_runs r USING ranked
              WHERE r.id = ranked.id AND r.status <> 'running'
                AND r.id NOT IN (SELECT id FROM kept)
                AND (($1 > 0 AND r.finished_at < now() - $1 * interval '1 second')
                     OR ($2 > 0 AND ranked.nth > $2))
             RETURNING r.server, r.started_at, r.api_requests
         ), moved AS (
             INSERT INTO salesforce.api_usage (server, hour, requests)
             SELECT server, date_trunc('hour', started_at), sum(api_requests) FROM gone
              WHERE started_at > now() - interval '1 day' AND api_requests > 0
              GROUP BY 1, 2
             ON CONFLICT (server, hour) DO UPDATE SET requests = salesforce.api_usage.requests + excluded.requests
         )
         SELECT count(*) FROM gone",
        &[max_age_secs.into(), per_sync.into()],
    )?;
    Spi::run("DELETE FROM salesforce.api_usage WHERE hour < now() - interval '2 days'")?;
    Ok(deleted.unwrap_or(0))
}

/// The worker's trimming, at most once a minute.
#[derive(Default)]
pub struct RunLog {
    trimmed_at: Option<Instant>,
}

impl RunLog {
    pub fn step(&mut self) {
        if self.trimmed_at.is_some_and(|at| at.elapsed() < TRIM_EVERY) {
            return;
        }
        self.trimmed_at = Some(Instant::now());
        let (age, per_sync) = (
            gucs::SYNC_RUNS_RETENTION.get() as i64,
            gucs::SYNC_RUNS_PER_SYNC.get() as i64,
        );
        if age == 0 && per_sync == 0 {
            return;
        }
        if let Err(e) = crate::pg::in_transaction(|| trim(age, per_sync)) {
            crate::error::notice(
                pgrx::PgLogLevel::WARNING,
                &format!("pg_salesforce: cannot trim salesforce.sync_runs: {e}"),
            );
        }
    }
}
