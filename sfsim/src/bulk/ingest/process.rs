//! Processing an ingest job: its header checked against the object once,
//! then every record written on its own through the org's write path (the
//! same checks as REST: field access, createable/updateable, types, required
//! fields, validation and duplicate rules), in internal batches of 10,000
//! records, 200 records a transaction. Nothing is atomic: a failed record
//! leaves the others written.

use super::ahead::{Prepared, RowInputs};
use super::csv_in::Upload;
use super::results::{Failure, Outcomes, Success};
use super::{Operation, BATCH_RECORDS};
use crate::convert::{self, Converted};
use crate::ids::Rid;
use crate::org::{Author, Input, Org, RecordError, Undo};
use crate::schema::ObjectDef;
use crate::value::{self, Value};
use std::sync::Arc;

/// Records written in one transaction, as Salesforce chunks a batch.
const TRANSACTION_RECORDS: usize = 200;
/// A null in update and upsert CSV; an empty cell leaves the field as it is.
const NULL_CELL: &str = "#N/A";

/// A job whose header has been checked, ready to write its batches. It
/// does not change while they are written, so batches can be converted
/// ahead of their writes on another thread (see `ahead`).
pub struct Processor {
    pub operation: Operation,
    object: usize,
    /// The object's definition when the job started: values converted with
    /// it are written only while it is still the object's.
    def: Arc<ObjectDef>,
    /// The field each column writes.
    fields: Vec<usize>,
    /// The column holding the Id (update, delete) or upsert key.
    key_column: Option<usize>,
    key_is_id: bool,
    /// Whether a row without `#N/A` converts the same for a create as for
    /// an update (so an upsert converts it once).
    same_for_both: bool,
    header: Vec<String>,
    uploads: Vec<Upload>,
    /// Where each upload's records start in the job's numbering.
    starts: Vec<usize>,
    total: usize,
}

fn field_not_found(name: &str) -> String {
    format!("InvalidBatch : Field name not found : {name}")
}

/// The order internal batches complete in: the last (usually the smallest)
/// first, then the others in upload order.
pub fn completion_order(batches: usize) -> Vec<usize> {
    match batches {
        0 => vec![],
        n => std::iter::once(n - 1).chain(0..n - 1).collect(),
    }
}

/// A record error in Bulk's results form: `CODE:message:Field1,Field2 --`,
/// or `CODE:message:--` when no field is named.
pub fn error_text(e: &RecordError) -> String {
    if e.fields.is_empty() {
        format!("{}:{}:--", e.code, e.message)
    } else {
        format!("{}:{}:{} --", e.code, e.message, e.fields.join(","))
    }
}

fn bad_id(id: &str) -> RecordError {
    if crate::ids::canonical(id).is_none() {
        RecordError::new("MALFORMED_ID", format!("malformed id {id}"), vec![])
    } else {
        RecordError::new(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            vec![],
        )
    }
}

/// Bulk names a record it cannot find by its id as a bad cross reference.
fn by_id(e: RecordError, id: &str) -> RecordError {
    if e.code == "NOT_FOUND" {
        bad_id(id)
    } else {
        e
    }
}

impl Processor {
    /// Checks the uploads' headers against the object as `author` sees it;
    /// Err is the job's error message.
    pub fn new(
        org: &Org,
        operation: Operation,
        object_name: &str,
        external_id: Option<&str>,
        uploads: Vec<Upload>,
        author: &Author,
    ) -> Result<Processor, (String, Vec<Upload>)> {
        let fail = |message: String, uploads| Err((message, uploads));
        if let Some(error) = uploads.iter().find_map(|u| u.error.clone()) {
            return fail(error, uploads);
        }
        let Some(first) = uploads.first() else {
            return fail(
                "InvalidBatch : Records not processed: no data was uploaded".into(),
                uploads,
            );
        };
        let header = first.header.clone();
        if let Some(other) = uploads.iter().find(|u| u.header != header) {
            let message = format!(
                "InvalidBatch : Every upload must have the same header row: {} differs from {}",
                other.header.join(","),
                header.join(",")
            );
            return fail(message, uploads);
        }
        let Some(object) = org.object(object_name) else {
            return fail(
                format!("InvalidBatch : Unable to find object: {object_name}"),
                uploads,
            );
        };
        let def = org.def(object);
        let mut fields = Vec::with_capacity(header.len());
        for name in &header {
            match org.writable_field(object, name, author) {
                Ok(index) => fields.push(index),
                Err(_) => return fail(field_not_found(name), uploads),
            }
        }
        let key_field = match operation {
            Operation::Insert => None,
            Operation::Upsert => external_id.and_then(|f| def.field_index(f)),
            _ => Some(def.system.id),
        };
        let key_column = match key_field {
            None => None,
            Some(key) => match fields.iter().position(|f| *f == key) {
                Some(column) => Some(column),
                None => {
                    let name = if operation == Operation::Upsert {
                        external_id.unwrap_or("Id").to_string()
                    } else {
                        "Id".to_string()
                    };
                    return fail(field_not_found(&name), uploads);
                }
            },
        };
        let mut starts = Vec::with_capacity(uploads.len());
        let mut total = 0;
        for u in &uploads {
            starts.push(total);
            total += u.rows;
        }
        let key_is_id = key_field == Some(def.system.id);
        // A create leaves out the Id as key and refuses any other Id
        // column; an update skips every Id column.
        let same_for_both = fields.iter().enumerate().all(|(column, f)| {
            let field = &def.fields[*f];
            let id_as_key = key_is_id && Some(column) == key_column;
            (*f != def.system.id || id_as_key) && field.createable == field.updateable
        });
        Ok(Processor {
            operation,
            object,
            def: def.clone(),
            fields,
            key_column,
            key_is_id,
            same_for_both,
            header,
            uploads,
            starts,
            total,
        })
    }

    /// What the job's writes did, to be filled batch by batch.
    pub fn outcomes(&self) -> Outcomes {
        Outcomes::new(self.header.clone(), self.total)
    }

    /// The outcomes, with the uploads their results echo.
    pub fn finish(self, mut outcomes: Outcomes) -> Outcomes {
        outcomes.uploads = self.uploads;
        outcomes
    }

    pub fn object(&self) -> usize {
        self.object
    }

    pub fn records(&self) -> usize {
        self.total
    }

    pub fn batches(&self) -> usize {
        self.records().div_ceil(BATCH_RECORDS)
    }

    /// The records of batch `batch`, in upload order.
    pub fn batch_range(&self, batch: usize) -> std::ops::Range<usize> {
        let start = batch * BATCH_RECORDS;
        start..(start + BATCH_RECORDS).min(self.records())
    }

    fn locate(&self, record: usize) -> (usize, usize) {
        let upload = self.starts.partition_point(|s| *s <= record) - 1;
        (upload, record - self.starts[upload])
    }

    /// Writes one internal batch, each record on its own, with its rows'
    /// values as `prepared` converted them if the object's definition is
    /// still the one they were converted with.
    pub fn run_batch(
        &self,
        outcomes: &mut Outcomes,
        org: &mut Org,
        batch: usize,
        prepared: Option<Prepared>,
        author: &Author,
        origin: &str,
    ) {
        let range = self.batch_range(batch);
        let mut prepared = prepared
            .filter(|p| Arc::ptr_eq(org.def(self.object), &self.def) && p.rows.len() == range.len())
            .map(|p| p.rows.into_iter());
        let (mut processed, mut failed) = (0, 0);
        let mut undo = Undo::new(origin);
        for (n, record) in range.enumerate() {
            if n > 0 && n % TRANSACTION_RECORDS == 0 {
                undo = Undo::new(origin);
            }
            let (upload, row) = self.locate(record);
            let row = Row {
                upload: &self.uploads[upload],
                row,
                inputs: prepared
                    .as_mut()
                    .and_then(Iterator::next)
                    .unwrap_or_default(),
            };
            let result = self.write(org, row, author, &mut undo);
            processed += 1;
            match result {
                Ok((id, created)) => outcomes.succeeded.push(Success::new(record, id, created)),
                Err((id, e)) => {
                    failed += 1;
                    outcomes.failed.push(Failure {
                        record: record as u32,
                        id: id.map(String::into_boxed_str),
                        error: error_text(&e).into_boxed_str(),
                    });
                }
            }
        }
        outcomes.batches.push((processed, failed));
    }

    /// Marks batch `batch` unprocessed.
    pub fn skip_batch(&self, outcomes: &mut Outcomes, batch: usize) {
        let range = self.batch_range(batch);
        outcomes.unprocessed.extend(range.map(|r| r as u32));
    }

    /// Converts the values of batch `batch`'s rows, as its writes will
    /// give them (a create's, an update's, or an upsert's both), with the
    /// object's definition when the job started.
    pub fn prepare(&self, batch: usize) -> Prepared {
        let converting = |upload: &Upload, row, creating| {
            convert::convert(&self.def, self.inputs(upload, row, creating), creating)
        };
        let rows = self
            .batch_range(batch)
            .map(|record| {
                let (upload, row) = self.locate(record);
                let upload = &self.uploads[upload];
                match self.operation {
                    Operation::Insert => RowInputs::Same(converting(upload, row, true)),
                    Operation::Update => RowInputs::Same(converting(upload, row, false)),
                    Operation::Upsert
                        if self.same_for_both && !upload.row(row).any(|c| c == NULL_CELL) =>
                    {
                        RowInputs::Same(converting(upload, row, false))
                    }
                    Operation::Upsert => RowInputs::Split {
                        creating: converting(upload, row, true),
                        updating: converting(upload, row, false),
                    },
                    Operation::Delete | Operation::HardDelete => RowInputs::Missing,
                }
            })
            .collect();
        Prepared { rows }
    }

    /// Whether converting ahead saves the writes any work.
    pub fn converts(&self) -> bool {
        !matches!(self.operation, Operation::Delete | Operation::HardDelete)
    }

    /// The values of one row's cells: empty cells are left out, `#N/A` is
    /// null when updating (and left out when creating).
    fn inputs<'u>(
        &'u self,
        upload: &'u Upload,
        row: usize,
        creating: bool,
    ) -> impl Iterator<Item = (usize, Input<'u>)> + 'u {
        upload
            .row(row)
            .enumerate()
            .filter(move |(column, text)| {
                !text.is_empty()
                    && !(creating && *text == NULL_CELL)
                    && !(creating && self.key_is_id && Some(*column) == self.key_column)
            })
            .map(|(column, text)| {
                let input = if text == NULL_CELL {
                    Input::Null
                } else {
                    Input::Text {
                        text,
                        column: column + 1,
                    }
                };
                (self.fields[column], input)
            })
    }

    /// A row's values for a create or an update: as converted ahead, or
    /// converted now.
    fn parsed(
        &self,
        org: &Org,
        row: Row,
        creating: bool,
    ) -> Result<Vec<(usize, Value)>, RecordError> {
        let converted: Converted = row.inputs.take(creating).unwrap_or_else(|| {
            let inputs = self.inputs(row.upload, row.row, creating);
            convert::convert(org.def(self.object), inputs, creating)
        });
        org.finish_inputs(self.object, converted)
    }

    fn create(
        &self,
        org: &mut Org,
        row: Row,
        author: &Author,
        undo: &mut Undo,
    ) -> Result<Rid, RecordError> {
        let parsed = self.parsed(org, row, true)?;
        org.create_parsed(self.object, parsed, author, undo)
    }

    fn update(
        &self,
        org: &mut Org,
        id: &str,
        row: Row,
        author: &Author,
        undo: &mut Undo,
    ) -> Result<Rid, RecordError> {
        let current = org.live_record(self.object, id).map_err(|e| by_id(e, id))?;
        let parsed = self.parsed(org, row, false)?;
        org.update_parsed(self.object, current, parsed, author, undo)
    }

    /// Writes one record: its id and whether it was created, or the id it
    /// named (if any) and why it failed.
    #[allow(clippy::type_complexity)]
    fn write(
        &self,
        org: &mut Org,
        row: Row,
        author: &Author,
        undo: &mut Undo,
    ) -> Result<(Rid, bool), (Option<String>, RecordError)> {
        let key = self.key_column.map(|c| row.upload.cell(row.row, c));
        let object = self.object;
        match (self.operation, key) {
            (Operation::Insert, _) | (_, None) => self
                .create(org, row, author, undo)
                .map(|id| (id, true))
                .map_err(|e| (None, e)),
            (Operation::Update | Operation::Delete | Operation::HardDelete, Some("")) => Err((
                None,
                RecordError::new(
                    "MISSING_ARGUMENT",
                    "Id not specified in an update call",
                    vec![],
                ),
            )),
            (Operation::Update, Some(id)) => self
                .update(org, id, row, author, undo)
                .map(|id| (id, false))
                .map_err(|e| (Some(id.to_string()), e)),
            (Operation::Delete, Some(id)) => org
                .delete(object, id, author, undo)
                .map(|id| (Rid::new(&id), false))
                .map_err(|e| (Some(id.to_string()), by_id(e, id))),
            (Operation::HardDelete, Some(id)) => org
                .live_record(object, id)
                .and_then(|_| org.hard_delete(object, id, author, undo))
                .map(|id| (Rid::new(&id), false))
                .map_err(|e| (Some(id.to_string()), by_id(e, id))),
            (Operation::Upsert, Some("")) if self.key_is_id => self
                .create(org, row, author, undo)
                .map(|id| (id, true))
                .map_err(|e| (None, e)),
            (Operation::Upsert, Some(id)) if self.key_is_id => self
                .update(org, id, row, author, undo)
                .map(|id| (id, false))
                .map_err(|e| (Some(id.to_string()), e)),
            (Operation::Upsert, Some(key)) => {
                let column = self.key_column.unwrap_or_default();
                let field = &org.def(object).fields[self.fields[column]];
                if key.is_empty() {
                    return Err((
                        None,
                        RecordError::new(
                            "MISSING_ARGUMENT",
                            format!("{} not specified", field.name),
                            vec![],
                        ),
                    ));
                }
                let value = value::from_text(field, key).unwrap_or_else(|()| Value::text(key));
                match org.objects[object].find_one(self.fields[column], &value) {
                    Ok(None) => self
                        .create(org, row, author, undo)
                        .map(|id| (id, true))
                        .map_err(|e| (None, e)),
                    Ok(Some(one)) => self
                        .update(org, one.as_str(), row, author, undo)
                        .map(|id| (id, false))
                        .map_err(|e| (Some(one.as_str().to_string()), e)),
                    Err(()) => {
                        let name = field.name.clone();
                        Err((
                            None,
                            RecordError::new(
                                "DUPLICATE_EXTERNAL_ID",
                                format!(
                                    "{name}: more than one record found for external id field: {key}"
                                ),
                                vec![name],
                            ),
                        ))
                    }
                }
            }
        }
    }
}

/// One row to write: its cells, and its values if converted ahead.
struct Row<'u> {
    upload: &'u Upload,
    row: usize,
    inputs: RowInputs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_complete_last_first() {
        assert_eq!(completion_order(1), [0]);
        assert_eq!(completion_order(4), [3, 0, 1, 2]);
        assert!(completion_order(0).is_empty());
    }

    #[test]
    fn errors_take_bulks_form() {
        let e = RecordError::new(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [LastName]",
            vec!["LastName".into()],
        );
        assert_eq!(
            error_text(&e),
            "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"
        );
        assert_eq!(
            error_text(&bad_id("001000000000000AAA")),
            "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--"
        );
    }
}
