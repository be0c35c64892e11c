//! The log a transaction keeps, outside itself, of what it sent to
//! Salesforce (statement and commit mode). It outlives a crash of the
//! backend between sending and committing, so that whoever reads it later
//! can tell what Salesforce may hold for a transaction that never
//! committed: what to undo, and what only a person can settle.
//!
//! The log is a sequence of entries, one JSON line each, appended as the
//! transaction goes: `Sending` before each call (written to disk before the
//! request leaves), then `Applied` or `NotApplied` when its answer came, and
//! `Undone` when a rollback took writes back. A `Sending` with no answer
//! after it is a call whose outcome is unknown.

use super::journal::{compensation, Done, Op, Target};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// The log's first line: the WAL timeline the transaction ran on. A log
    /// read on another timeline (after a promotion, or a point-in-time
    /// recovery) cannot be trusted to say whether its transaction committed.
    Began { timeline: u32 },
    /// A call is about to go: its writes, in case no answer comes.
    Sending { target: Target, ops: Vec<Op> },
    /// A Bulk ingest job is about to be closed, after which Salesforce
    /// applies its records; answered by `Applied` with what it did.
    BulkSending { target: Target, job: String },
    /// The call's answer: Salesforce applied these.
    Applied(Vec<Done>),
    /// The call's answer: Salesforce applied nothing of it.
    NotApplied,
    /// Taken back by a rollback: these writes need nothing more.
    Undone(Vec<Done>),
}

impl Entry {
    /// Writes the entry as its line, without building it in memory first:
    /// a large Bulk job's entry holds a million Ids.
    pub fn write_line(&self, out: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
        serde_json::to_writer(&mut out, self).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("entries serialize");
        line.push('\n');
        line
    }
}

/// What a log says Salesforce may still hold.
#[derive(Debug, Default, PartialEq)]
pub struct Outstanding {
    /// The timeline of `Began`, if the log has one.
    pub timeline: Option<u32>,
    /// Applied and not taken back.
    pub applied: Vec<Done>,
    /// Sent, and no answer came: applied or not, nobody knows.
    pub unknown: Vec<(Target, Op)>,
}

impl Outstanding {
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.unknown.is_empty()
    }
}

/// Reads a log. A line that does not parse, such as a last one cut short
/// by a crash, is left out: it was written before its call went, or it is
/// an answer, and then the call counts as unanswered, the safe side.
pub fn outstanding(log: &[u8]) -> Outstanding {
    let mut out = Outstanding::default();
    let mut open: Option<(Target, Vec<Op>)> = None;
    let close_unanswered = |open: &mut Option<(Target, Vec<Op>)>, out: &mut Outstanding| {
        if let Some((target, ops)) = open.take() {
            out.unknown
                .extend(ops.into_iter().map(|op| (target.clone(), op)));
        }
    };
    for entry in log
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Entry>(l).ok())
    {
        match entry {
            Entry::Began { timeline } => out.timeline = Some(timeline),
            Entry::Sending { target, ops } => {
                close_unanswered(&mut open, &mut out);
                open = Some((target, ops));
            }
            // Listed as a write whose answer never came: the job's results
            // (kept 7 days) say what it did.
            Entry::BulkSending { target, job } => {
                close_unanswered(&mut open, &mut out);
                open = Some((target, vec![bulk_job_marker(&job)]));
            }
            Entry::Applied(done) => {
                open = None;
                out.applied.extend(done);
            }
            Entry::NotApplied => open = None,
            // Each undone write takes out the latest entry equal to it: an
            // earlier one, made outside the savepoint that rolled back,
            // still stands.
            Entry::Undone(undone) => {
                for d in undone {
                    if let Some(i) = out.applied.iter().rposition(|a| *a == d) {
                        out.applied.remove(i);
                    }
                }
            }
        }
    }
    close_unanswered(&mut open, &mut out);
    out
}

/// What to do about what a transaction that did not commit left behind.
#[derive(Clone, Debug, PartialEq)]
pub enum Remedy {
    /// A write that takes one back: delete a record it created, or put
    /// back the fields it changed.
    Undo(Target, Op),
    /// Beyond the API: a deleted record (only the Recycle Bin restores
    /// it), or a call whose outcome is unknown. Listed for a person.
    Unresolved { target: Target, op: Op, why: String },
}

pub fn remedies(out: Outstanding) -> Vec<Remedy> {
    let plan = compensation(out.applied);
    let mut remedies = Vec::new();
    for (target, ids) in plan.deletes {
        remedies.extend(
            ids.into_iter()
                .map(|id| Remedy::Undo(target.clone(), Op::Delete { id })),
        );
    }
    for (target, records) in plan.restores {
        for mut fields in records {
            let id = fields
                .remove("id")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            remedies.push(Remedy::Undo(target.clone(), Op::Update { id, fields }));
        }
    }
    for (target, id) in plan.unrestorable {
        remedies.push(Remedy::Unresolved {
            target,
            op: Op::Update { id, fields: Default::default() },
            why: "the transaction that updated this record through a Bulk ingest job did not commit, and a Bulk job's earlier values are not kept: check the record, then discard this".into(),
        });
    }
    for (target, id) in plan.lost {
        remedies.push(Remedy::Unresolved {
            target,
            op: Op::Delete { id },
            why: "the transaction that deleted this record did not commit, and Salesforce's API cannot bring a deleted record back: restore it from the Recycle Bin, then discard this".into(),
        });
    }
    for (target, op) in out.unknown {
        remedies.push(Remedy::Unresolved {
            target,
            op,
            why: "the transaction that sent this write did not commit, and Salesforce's answer never came: find out whether Salesforce applied it, undo it there if so, then discard this".into(),
        });
    }
    remedies
}

/// When nobody can tell whether the transaction committed (its log is from
/// another timeline, or it is too old for PostgreSQL to know): nothing is
/// undone, everything is listed for a person.
pub fn all_unresolved(out: Outstanding, why: &str) -> Vec<Remedy> {
    let applied = out.applied.into_iter().flat_map(|d| match d {
        Done::Created { target, id } => vec![(target, Op::Delete { id }, "created")],
        Done::Updated { target, id, prior } => {
            vec![(target, Op::Update { id, fields: prior }, "updated")]
        }
        Done::Deleted { target, id } => vec![(target, Op::Delete { id }, "deleted")],
        Done::Bulk { target, applied } => {
            let each = |ids: &super::bulk::Ids, op: fn(String) -> Op, what| {
                ids.iter()
                    .map(|id| (target.clone(), op(id.to_string()), what))
                    .collect::<Vec<_>>()
            };
            let mut all = each(&applied.created, |id| Op::Delete { id }, "created");
            all.extend(each(
                &applied.updated,
                |id| Op::Update {
                    id,
                    fields: Default::default(),
                },
                "updated, through Bulk (earlier values not kept),",
            ));
            all.extend(each(&applied.deleted, |id| Op::Delete { id }, "deleted"));
            all
        }
    });
    let mut remedies: Vec<Remedy> = applied
        .map(|(target, op, what)| Remedy::Unresolved {
            target,
            op,
            why: format!("{why}; the transaction {what} this record (for an update, `record` holds the fields' earlier values)"),
        })
        .collect();
    remedies.extend(
        out.unknown
            .into_iter()
            .map(|(target, op)| Remedy::Unresolved {
                target,
                op,
                why: format!("{why}; the transaction sent this write and its answer never came"),
            }),
    );
    remedies
}

/// The writes whose undo went through, from those a rollback took back
/// and the records it could not.
pub fn undone(taken_back: &[Done], failed: &[(Target, String)]) -> Vec<Done> {
    taken_back
        .iter()
        .filter(|d| {
            // A Bulk job is taken out whole; `left` states what remains of it.
            matches!(d, Done::Bulk { .. }) || {
                let (t, id) = d.record();
                !failed.iter().any(|(ft, fid)| ft == t && fid == id)
            }
        })
        .cloned()
        .collect()
}

/// What remains of each Bulk job a rollback took back: the records whose
/// undo failed (or cannot be done), as a smaller job of their own.
pub fn left_of_bulk(taken_back: &[Done], failed: &[(Target, String)]) -> Vec<Done> {
    let failed: std::collections::HashSet<(&Target, &str)> =
        failed.iter().map(|(t, id)| (t, id.as_str())).collect();
    taken_back
        .iter()
        .filter_map(|d| {
            let Done::Bulk { target, applied } = d else {
                return None;
            };
            let keep = |ids: &super::bulk::Ids| {
                let mut left = super::bulk::Ids::default();
                ids.iter()
                    .filter(|id| failed.contains(&(target, *id)))
                    .for_each(|id| left.push(id));
                left
            };
            let left = super::bulk::BulkApplied {
                job: applied.job.clone(),
                created: keep(&applied.created),
                updated: keep(&applied.updated),
                deleted: keep(&applied.deleted),
            };
            (!left.is_empty()).then(|| Done::Bulk {
                target: target.clone(),
                applied: left,
            })
        })
        .collect()
}

/// How a Bulk job whose outcome is unknown is listed: a create whose record
/// names the job, never sent again.
pub fn bulk_job_marker(job: &str) -> Op {
    let mut record = serde_json::Map::new();
    record.insert("bulk_ingest_job".into(), job.into());
    Op::Create { record }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contact() -> Target {
        Target {
            server: 1,
            user: 10,
            object: "Contact".into(),
        }
    }

    fn create(name: &str) -> Op {
        Op::Create {
            record: json!({"LastName": name}).as_object().unwrap().clone(),
        }
    }

    fn created(id: &str) -> Done {
        Done::Created {
            target: contact(),
            id: id.into(),
        }
    }

    fn log(entries: &[Entry]) -> Vec<u8> {
        entries
            .iter()
            .map(Entry::line)
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn an_answered_call_is_applied_or_not_and_an_unanswered_one_unknown() {
        let text = log(&[
            Entry::Sending {
                target: contact(),
                ops: vec![create("A"), create("B")],
            },
            Entry::Applied(vec![created("003A"), created("003B")]),
            Entry::Sending {
                target: contact(),
                ops: vec![create("C")],
            },
            Entry::NotApplied,
            Entry::Sending {
                target: contact(),
                ops: vec![create("D")],
            },
        ]);
        let out = outstanding(&text);
        assert_eq!(out.applied, vec![created("003A"), created("003B")]);
        assert_eq!(out.unknown, vec![(contact(), create("D"))]);
    }

    #[test]
    fn a_call_followed_by_another_without_its_answer_is_unknown() {
        let text = log(&[
            Entry::Sending {
                target: contact(),
                ops: vec![create("A")],
            },
            Entry::Sending {
                target: contact(),
                ops: vec![create("B")],
            },
            Entry::Applied(vec![created("003B")]),
        ]);
        let out = outstanding(&text);
        assert_eq!(out.unknown, vec![(contact(), create("A"))]);
        assert_eq!(out.applied, vec![created("003B")]);
    }

    #[test]
    fn undone_records_need_nothing_and_a_torn_last_line_counts_as_unanswered() {
        let mut text = log(&[
            Entry::Sending {
                target: contact(),
                ops: vec![create("A"), create("B")],
            },
            Entry::Applied(vec![created("003A"), created("003B")]),
            Entry::Undone(vec![created("003A")]),
            Entry::Sending {
                target: contact(),
                ops: vec![create("C")],
            },
        ]);
        text.extend_from_slice(&Entry::Applied(vec![created("003C")]).line().as_bytes()[..10]);
        let out = outstanding(&text);
        assert_eq!(out.applied, vec![created("003B")]);
        assert_eq!(out.unknown, vec![(contact(), create("C"))]);
    }

    #[test]
    fn remedies_delete_creations_restore_updates_and_list_the_rest() {
        let out = Outstanding {
            timeline: None,
            applied: vec![
                created("003A"),
                Done::Updated {
                    target: contact(),
                    id: "003B".into(),
                    prior: json!({"Email": "old@x.io"}).as_object().unwrap().clone(),
                },
                Done::Deleted {
                    target: contact(),
                    id: "003C".into(),
                },
            ],
            unknown: vec![(contact(), create("D"))],
        };
        let r = remedies(out);
        assert_eq!(
            r[0],
            Remedy::Undo(contact(), Op::Delete { id: "003A".into() })
        );
        assert_eq!(
            r[1],
            Remedy::Undo(
                contact(),
                Op::Update {
                    id: "003B".into(),
                    fields: json!({"Email": "old@x.io"}).as_object().unwrap().clone()
                }
            )
        );
        assert!(matches!(&r[2], Remedy::Unresolved { op: Op::Delete { id }, .. } if id == "003C"));
        assert!(matches!(&r[3], Remedy::Unresolved { op, .. } if *op == create("D")));
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn only_the_writes_whose_undo_went_through_are_undone() {
        let taken_back = vec![created("003A"), created("003B")];
        assert_eq!(
            undone(&taken_back, &[(contact(), "003B".into())]),
            vec![created("003A")]
        );
    }

    #[test]
    fn a_savepoint_undone_leaves_the_outer_writes_to_the_same_record() {
        let updated = |title: &str| Done::Updated {
            target: contact(),
            id: "003A".into(),
            prior: json!({"Title": title}).as_object().unwrap().clone(),
        };
        let text = log(&[
            Entry::Began { timeline: 1 },
            Entry::Applied(vec![created("003A")]),
            Entry::Applied(vec![updated("a")]),
            Entry::Applied(vec![updated("a")]),
            // A savepoint around the second update rolled back.
            Entry::Undone(vec![updated("a")]),
        ]);
        let out = outstanding(&text);
        assert_eq!(out.timeline, Some(1));
        assert_eq!(out.applied, vec![created("003A"), updated("a")]);
    }

    #[test]
    fn a_log_nobody_can_judge_is_listed_whole() {
        let out = Outstanding {
            timeline: Some(1),
            applied: vec![created("003A")],
            unknown: vec![(contact(), create("B"))],
        };
        let r = all_unresolved(out, "the log is from timeline 1");
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|r| matches!(r, Remedy::Unresolved { .. })));
    }
}
