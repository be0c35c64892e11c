//! The transaction's journal: writes queued for COMMIT (commit mode) and
//! writes already done in Salesforce (to compensate if the transaction, or a
//! savepoint, rolls back). Plain Rust; the callbacks live in `transaction`.

use super::bulk::BulkApplied;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// Which org, as which user, and which object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    pub server: u32,
    pub user: u32,
    pub object: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Create {
        record: Map<String, Json>,
    },
    Upsert {
        key_field: String,
        record: Map<String, Json>,
    },
    Update {
        id: String,
        fields: Map<String, Json>,
    },
    Delete {
        id: String,
    },
    /// A platform event on the target's object (`Signup__e`): queued, and
    /// published by the worker after COMMIT.
    Publish {
        record: Map<String, Json>,
    },
}

impl Op {
    /// The record Id an update or delete names.
    pub fn id(&self) -> Option<&str> {
        match self {
            Op::Update { id, .. } | Op::Delete { id } => Some(id),
            Op::Create { .. } | Op::Upsert { .. } | Op::Publish { .. } => None,
        }
    }

    /// The field values a create, upsert or update sends.
    pub fn fields(&self) -> Option<&Map<String, Json>> {
        match self {
            Op::Create { record } | Op::Upsert { record, .. } | Op::Publish { record } => {
                Some(record)
            }
            Op::Update { fields, .. } => Some(fields),
            Op::Delete { .. } => None,
        }
    }
}

/// A write waiting to be sent, with where it came from for error messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Queued {
    pub target: Target,
    pub op: Op,
    /// 1-based position of the row in its statement.
    pub row: usize,
    /// "INSERT into contact", for messages.
    pub statement: String,
    /// From how many rows its statement's writes go through Bulk at
    /// COMMIT (commit mode), or a backlog of like queued writes goes
    /// through Bulk when the worker delivers it (queued mode); None: never.
    pub bulk_from: Option<usize>,
}

/// A write Salesforce has applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Done {
    Created {
        target: Target,
        id: String,
    },
    /// `prior` holds the changed fields' values before the update.
    Updated {
        target: Target,
        id: String,
        prior: Map<String, Json>,
    },
    Deleted {
        target: Target,
        id: String,
    },
    /// What a Bulk ingest job applied, kept compact; known by its job id.
    Bulk {
        target: Target,
        applied: BulkApplied,
    },
}

impl Done {
    /// The record the write applied to (for a Bulk job, the job).
    pub fn record(&self) -> (&Target, &str) {
        match self {
            Done::Created { target, id }
            | Done::Updated { target, id, .. }
            | Done::Deleted { target, id } => (target, id),
            Done::Bulk { target, applied } => (target, &applied.job),
        }
    }
}

#[derive(Default)]
pub struct Journal {
    queued: Vec<(u32, Queued)>,
    done: Vec<(u32, Done)>,
}

/// How to take back a set of applied writes.
#[derive(Debug, Default, PartialEq)]
pub struct Compensation {
    /// Records created: delete them.
    pub deletes: Vec<(Target, Vec<String>)>,
    /// Records updated: put the changed fields back (each map has its `id`).
    pub restores: Vec<(Target, Vec<Map<String, Json>>)>,
    /// Records deleted: REST cannot bring them back.
    pub lost: Vec<(Target, String)>,
    /// Records a Bulk job updated: their earlier values were not read.
    pub unrestorable: Vec<(Target, String)>,
}

fn push_grouped<T>(groups: &mut Vec<(Target, Vec<T>)>, target: &Target, item: T) {
    match groups.iter_mut().find(|(t, _)| t == target) {
        Some((_, items)) => items.push(item),
        None => groups.push((target.clone(), vec![item])),
    }
}

/// What undoes `done`: created records go, updated ones get their earliest
/// prior values back, deleted ones are reported.
pub fn compensation(done: Vec<Done>) -> Compensation {
    let mut created: std::collections::HashSet<(Target, String)> = std::collections::HashSet::new();
    for d in &done {
        match d {
            Done::Created { target, id } => {
                created.insert((target.clone(), id.clone()));
            }
            Done::Bulk { target, applied } => {
                created.extend(
                    applied
                        .created
                        .iter()
                        .map(|id| (target.clone(), id.to_string())),
                );
            }
            _ => {}
        }
    }
    let was_created = |t: &Target, id: &str| created.contains(&(t.clone(), id.to_string()));
    let mut out = Compensation::default();
    let mut restored: Vec<(Target, String)> = Vec::new();
    for d in done {
        match d {
            Done::Created { target, id } => push_grouped(&mut out.deletes, &target, id),
            // Only the earliest prior values matter: they are what was there before.
            Done::Updated {
                target,
                id,
                mut prior,
            } if !was_created(&target, &id)
                && !restored.contains(&(target.clone(), id.clone())) =>
            {
                restored.push((target.clone(), id.clone()));
                prior.insert("id".into(), Json::String(id));
                push_grouped(&mut out.restores, &target, prior);
            }
            Done::Deleted { target, id } if !was_created(&target, &id) => {
                out.lost.push((target, id))
            }
            Done::Bulk { target, applied } => {
                for id in applied.created.iter() {
                    push_grouped(&mut out.deletes, &target, id.to_string());
                }
                out.lost.extend(
                    applied
                        .deleted
                        .iter()
                        .filter(|id| !was_created(&target, id))
                        .map(|id| (target.clone(), id.to_string())),
                );
                out.unrestorable.extend(
                    applied
                        .updated
                        .iter()
                        .filter(|id| !was_created(&target, id))
                        .map(|id| (target.clone(), id.to_string())),
                );
            }
            _ => {}
        }
    }
    for (_, ids) in out.deletes.iter_mut() {
        ids.dedup();
    }
    out
}

impl Journal {
    pub fn queue(&mut self, subxact: u32, q: Queued) {
        self.queued.push((subxact, q));
    }

    pub fn record(&mut self, subxact: u32, d: Done) {
        self.done.push((subxact, d));
    }

    pub fn take_queued(&mut self) -> Vec<Queued> {
        std::mem::take(&mut self.queued)
            .into_iter()
            .map(|(_, q)| q)
            .collect()
    }

    pub fn take_done(&mut self) -> Vec<Done> {
        std::mem::take(&mut self.done)
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }

    /// A subtransaction committed: its entries now belong to its parent.
    pub fn subxact_committed(&mut self, sub: u32, parent: u32) {
        for (s, _) in self.queued.iter_mut() {
            if *s == sub {
                *s = parent;
            }
        }
        for (s, _) in self.done.iter_mut() {
            if *s == sub {
                *s = parent;
            }
        }
    }

    /// A subtransaction rolled back: its queued writes are dropped, and its
    /// applied writes returned for compensation. Subtransaction ids grow, so
    /// everything at or above `sub` began inside it.
    pub fn subxact_aborted(&mut self, sub: u32) -> Vec<Done> {
        self.queued.retain(|(s, _)| *s < sub);
        let (undone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.done)
            .into_iter()
            .partition(|(s, _)| *s >= sub);
        self.done = kept;
        undone.into_iter().map(|(_, d)| d).collect()
    }

    pub fn clear(&mut self) {
        self.queued.clear();
        self.done.clear();
    }

    /// Whether writes are queued for COMMIT or done in Salesforce.
    pub fn has_writes(&self) -> bool {
        !self.queued.is_empty() || !self.done.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(object: &str) -> Target {
        Target {
            server: 1,
            user: 10,
            object: object.into(),
        }
    }

    fn map(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn compensation_deletes_creations_and_restores_earliest_values() {
        let c = target("Contact");
        let done = vec![
            Done::Created {
                target: c.clone(),
                id: "003A".into(),
            },
            Done::Updated {
                target: c.clone(),
                id: "003B".into(),
                prior: map(json!({"Email": "first@x.io"})),
            },
            Done::Updated {
                target: c.clone(),
                id: "003B".into(),
                prior: map(json!({"Email": "second@x.io"})),
            },
            Done::Updated {
                target: c.clone(),
                id: "003A".into(),
                prior: map(json!({"Title": "x"})),
            },
            Done::Deleted {
                target: c.clone(),
                id: "003C".into(),
            },
            Done::Deleted {
                target: c.clone(),
                id: "003A".into(),
            },
        ];
        let plan = compensation(done);
        assert_eq!(plan.deletes, vec![(c.clone(), vec!["003A".to_string()])]);
        assert_eq!(
            plan.restores,
            vec![(
                c.clone(),
                vec![map(json!({"Email": "first@x.io", "id": "003B"}))]
            )]
        );
        assert_eq!(
            plan.lost,
            vec![(c, "003C".to_string())],
            "a record created here and deleted needs nothing"
        );
    }

    #[test]
    fn savepoints_drop_or_hand_back_their_writes() {
        let mut j = Journal::default();
        let q = |row| Queued {
            target: target("Lead"),
            op: Op::Delete {
                id: format!("00Q{row}"),
            },
            row,
            statement: "DELETE from lead".into(),
            bulk_from: None,
        };
        j.queue(1, q(1));
        j.queue(2, q(2));
        j.queue(3, q(3));
        j.record(
            2,
            Done::Created {
                target: target("Lead"),
                id: "00QX".into(),
            },
        );
        j.subxact_committed(3, 2);
        assert_eq!(
            j.subxact_aborted(2),
            vec![Done::Created {
                target: target("Lead"),
                id: "00QX".into()
            }]
        );
        assert_eq!(
            j.take_queued(),
            vec![q(1)],
            "writes queued inside the rolled-back savepoint are gone"
        );
        assert!(j.take_queued().is_empty());
    }
}
