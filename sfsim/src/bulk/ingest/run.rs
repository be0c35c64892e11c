//! Starting the ingest jobs that are due: each is processed whole, its
//! internal batches in completion order, each batch under one hold of the
//! org's lock and its change events published when it ends, against the
//! daily record and batch allocations.

use super::ahead::convert_ahead;
use super::process::{completion_order, Processor};
use super::results::Outcomes;
use super::{Jobs, Operation};
use crate::org::Author;
use crate::sim::Sim;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Salesforce's message when the day's batch allocation is used up.
pub const QUOTA_EXCEEDED: &str = "ExceededQuota : ApiBatchItems Limit exceeded.";

/// The API writes through Bulk are made with, as Change Data Capture's
/// `changeOrigin` names it.
pub fn origin(api_version: &str) -> String {
    format!("com/salesforce/api/bulk/{api_version}")
}

/// Processes every job due by `now`. The caller holds the transaction gate
/// (shared), so no composite call is half done while batches are written.
pub fn run_due(sim: &Sim, jobs: &mut Jobs, now: DateTime<Utc>) {
    let due: Vec<u64> = jobs.due(now).iter().map(|job| job.seq).collect();
    for seq in due {
        let Some(job) = jobs.jobs.get_mut(&seq) else {
            continue;
        };
        let uploads = std::mem::take(&mut job.uploads);
        let author = Author {
            user_id: job.created_by.clone(),
            now,
        };
        let origin = origin(&job.api_version);
        let prepared = Processor::new(
            &sim.org.read(),
            job.operation,
            &job.object,
            job.external_id.as_deref(),
            uploads,
            &author,
        );
        let outcomes = match prepared {
            Err((message, uploads)) => Outcomes::failed_job(message, uploads),
            Ok(processor) => {
                if matches!(job.operation, Operation::Insert | Operation::Upsert) {
                    let object = processor.object();
                    sim.org.write().objects[object].reserve_for(processor.records());
                }
                let outcomes = write_batches(sim, jobs, &processor, &author, &origin, now);
                processor.finish(outcomes)
            }
        };
        if let Some(job) = jobs.jobs.get_mut(&seq) {
            job.outcomes = Some(Arc::new(outcomes));
        }
    }
}

/// Writes a job's batches in completion order, each under one hold of the
/// org's lock with its change events published when it ends, as the daily
/// allocations allow; the rows of each are converted ahead of it.
fn write_batches(
    sim: &Sim,
    jobs: &mut Jobs,
    processor: &Processor,
    author: &Author,
    origin: &str,
    now: DateTime<Utc>,
) -> Outcomes {
    let mut outcomes = processor.outcomes();
    let order = completion_order(processor.batches());
    std::thread::scope(|scope| {
        let ahead = convert_ahead(scope, processor, &order);
        for &batch in &order {
            let prepared = ahead.as_ref().and_then(|a| a.recv().ok());
            let size = processor.batch_range(batch).len() as u64;
            let batches_left = jobs
                .batches
                .daily_limit
                .saturating_sub(jobs.batches.used(now));
            let records_left = jobs
                .records
                .daily_limit
                .saturating_sub(jobs.records.used(now));
            if batches_left == 0 || records_left < size {
                outcomes
                    .error
                    .get_or_insert_with(|| QUOTA_EXCEEDED.to_string());
                processor.skip_batch(&mut outcomes, batch);
                continue;
            }
            jobs.batches.take_many(1, now);
            jobs.records.take_many(size, now);
            let mut org = sim.org.write();
            processor.run_batch(&mut outcomes, &mut org, batch, prepared, author, origin);
            let changes = org.journal.take();
            if !changes.is_empty() {
                sim.pubsub.publish(&org, changes, now);
            }
        }
    });
    outcomes
}
