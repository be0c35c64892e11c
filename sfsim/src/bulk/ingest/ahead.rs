//! Converting a job's batches ahead of their writes: while one batch is
//! written (holding the org's lock), a second thread converts the rows of
//! the next, which needs only the job and the object's definition. The
//! client waits for the whole job, so that thread would otherwise be idle.

use super::process::Processor;
use crate::convert::Converted;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::Scope;

/// The converted values of one batch's rows, in row order.
pub struct Prepared {
    pub rows: Vec<RowInputs>,
}

/// One row's converted values, for the writes it may make.
#[derive(Default)]
pub enum RowInputs {
    /// Not converted: the write converts the row itself.
    #[default]
    Missing,
    /// The same for a create and an update.
    Same(Converted),
    /// An upsert's row that converts differently for each.
    Split {
        creating: Converted,
        updating: Converted,
    },
}

impl RowInputs {
    pub fn take(self, creating: bool) -> Option<Converted> {
        match self {
            RowInputs::Missing => None,
            RowInputs::Same(values) => Some(values),
            RowInputs::Split { creating: c, .. } if creating => Some(c),
            RowInputs::Split { updating: u, .. } => Some(u),
        }
    }
}

/// Starts converting `batches`, in that order, one or two ahead of the
/// writes; the answer gives them in the same order. Nothing is converted
/// for jobs whose writes convert nothing.
pub fn convert_ahead<'scope>(
    scope: &'scope Scope<'scope, '_>,
    processor: &'scope Processor,
    batches: &'scope [usize],
) -> Option<Receiver<Prepared>> {
    if !processor.converts() || batches.is_empty() {
        return None;
    }
    let (send, receive) = sync_channel(1);
    std::thread::Builder::new()
        .name("sfsim-ingest-ahead".into())
        .spawn_scoped(scope, move || {
            for batch in batches {
                if send.send(processor.prepare(*batch)).is_err() {
                    return;
                }
            }
        })
        .ok()?;
    Some(receive)
}
