//! getUpdated and getDeleted: which records changed or went away in a
//! window, with Salesforce's limits (30 and 15 days back, whole minutes,
//! 600,000 ids).

use crate::org::{Org, RecordError};
use chrono::{DateTime, Duration, DurationRound, Utc};

pub const UPDATED_DAYS: i64 = 30;
pub const DELETED_DAYS: i64 = 15;
pub const MAX_IDS: usize = 600_000;

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::minutes(1)).unwrap_or(t)
}

/// [start, end) in whole minutes, ending no later than now.
fn window(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), RecordError> {
    let (start, end) = (minute(start), minute(end.min(now)));
    if end < start {
        return Err(RecordError::new(
            "INVALID_REPLICATION_DATE",
            "end date must be after start date",
            vec![],
        ));
    }
    Ok((start, end))
}

/// Ids of live records whose SystemModstamp falls in [start, end), and the latest date covered.
pub fn updated(
    org: &Org,
    object: usize,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(Vec<String>, DateTime<Utc>), RecordError> {
    let (start, end) = window(start, end, now)?;
    if start < now - Duration::days(UPDATED_DAYS) {
        return Err(RecordError::new(
            "INVALID_REPLICATION_DATE",
            format!("start date cannot be more than {UPDATED_DAYS} days ago"),
            vec![],
        ));
    }
    let def = org.def(object);
    let stamp = def.system.system_modstamp;
    let ids: Vec<String> = org.objects[object]
        .records
        .values()
        .filter(|r| !r.is_deleted(def))
        .filter(
            |r| matches!(r.get(stamp), crate::value::Value::DateTime(t) if *t >= start && *t < end),
        )
        .map(|r| r.id().to_string())
        .collect();
    if ids.len() > MAX_IDS {
        return Err(RecordError::new(
            "EXCEEDED_ID_LIMIT",
            format!("more than {MAX_IDS} ids; use a smaller window"),
            vec![],
        ));
    }
    Ok((ids, end))
}

pub struct Deleted {
    pub records: Vec<(String, DateTime<Utc>)>,
    pub earliest_date_available: DateTime<Utc>,
    pub latest_date_covered: DateTime<Utc>,
}

/// Records deleted in [start, end). Deletions older than 15 days are gone
/// for good; `earliest_date_available` says from when the list is complete.
pub fn deleted(
    org: &Org,
    object: usize,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Deleted, RecordError> {
    let earliest = minute(now - Duration::days(DELETED_DAYS));
    let (start, end) = window(start, end, now)?;
    let name = &org.def(object).name;
    let records = org
        .deleted_log
        .iter()
        .filter(|d| {
            &d.object == name && d.deleted_date >= start.max(earliest) && d.deleted_date < end
        })
        .map(|d| (d.id.clone(), d.deleted_date))
        .collect();
    Ok(Deleted {
        records,
        earliest_date_available: earliest,
        latest_date_covered: end,
    })
}
