//! Salesforce records as rows of a local copy: each value converted by the
//! shared values module into its column's input text. The texts of a batch
//! sit back to back in one buffer, so a row costs no allocation of its own
//! however many fields it has.

use crate::copy;
use crate::error::Result;
use crate::values::{input_text, Source};
use chrono::{DateTime, Utc};
use salesforce_core::client::session::parse_datetime;
use salesforce_core::sync::definition::SyncedField;
use serde_json::{Map, Value as Json};
use std::borrow::Cow;
use std::ops::Range;

/// Rows for a copy: a value per synced field, then, in a soft-delete copy,
/// when the record was deleted.
pub struct Rows {
    pub fields: Vec<SyncedField>,
    soft_delete: bool,
    text: String,
    /// Row after row, `width()` values each; None for SQL NULL.
    values: Vec<Option<Range<usize>>>,
    copy_text: Option<Vec<u8>>,
}

impl Rows {
    pub fn new(fields: &[SyncedField], soft_delete: bool) -> Rows {
        Rows {
            fields: fields.to_vec(),
            soft_delete,
            text: String::new(),
            values: Vec::new(),
            copy_text: None,
        }
    }

    pub fn soft_delete(&self) -> bool {
        self.soft_delete
    }

    fn width(&self) -> usize {
        self.fields.len() + usize::from(self.soft_delete)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.width()
    }

    /// Adds a row from `value(i, field)`, the input text of each synced field;
    /// `deleted` marks it deleted in a soft-delete copy. A row that fails
    /// adds nothing.
    pub fn push_with<'v>(
        &mut self,
        mut value: impl FnMut(usize, &SyncedField) -> Result<Option<Cow<'v, str>>>,
        deleted: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let (text_start, values_start) = (self.text.len(), self.values.len());
        for (i, f) in self.fields.iter().enumerate() {
            match value(i, f) {
                Ok(v) => self.values.push(v.map(|v| add_text(&mut self.text, &v))),
                Err(e) => {
                    self.text.truncate(text_start);
                    self.values.truncate(values_start);
                    return Err(e);
                }
            }
        }
        if self.soft_delete {
            let span = deleted.map(|t| add_text(&mut self.text, &t.to_rfc3339()));
            self.values.push(span);
        }
        Ok(())
    }

    /// Adds a record as REST returns it.
    pub fn push(
        &mut self,
        record: &Map<String, Json>,
        deleted: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let id = record.get("Id").and_then(Json::as_str);
        self.push_with(
            |_, f| {
                let value = record.get(&f.field).unwrap_or(&Json::Null);
                let from = Source {
                    column: &f.column,
                    field: &f.field,
                    record: id,
                };
                Ok(input_text(value, f.pg.kind(), &from)?.map(Cow::Owned))
            },
            deleted,
        )
    }

    /// The values of row `i`: its fields', then its deletion time if kept.
    pub fn row(&self, i: usize) -> impl Iterator<Item = Option<&str>> {
        let w = self.width();
        self.values[i * w..(i + 1) * w]
            .iter()
            .map(|span| span.clone().map(|s| &self.text[s]))
    }

    /// The rows in COPY's text format, for the columns of the synced fields,
    /// the time they were synced (now) and, in a soft-delete copy, when
    /// they were deleted. Built ahead by `prepare_copy_text` if it ran.
    pub fn take_copy_text(&mut self) -> Vec<u8> {
        self.copy_text.take().unwrap_or_else(|| self.copy_text_of())
    }

    /// Builds the COPY text now, on whichever thread has the rows.
    pub fn prepare_copy_text(&mut self) {
        self.copy_text = Some(self.copy_text_of());
    }

    fn copy_text_of(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(self.text.len() + self.values.len() * 2);
        for i in 0..self.len() {
            let mut values = self.row(i);
            for value in values.by_ref().take(self.fields.len()) {
                copy::push_field(&mut data, value);
                data.push(b'\t');
            }
            // timestamptz reads 'now' as the transaction's start, as now() is.
            data.extend_from_slice(b"now");
            for deleted_at in values {
                data.push(b'\t');
                copy::push_field(&mut data, deleted_at);
            }
            data.push(b'\n');
        }
        data
    }

    /// Column `c` (as `row` numbers them) of every row.
    pub fn column(&self, c: usize) -> Vec<Option<String>> {
        (0..self.len())
            .map(|i| {
                self.values[i * self.width() + c]
                    .clone()
                    .map(|s| self.text[s].to_string())
            })
            .collect()
    }
}

fn add_text(text: &mut String, v: &str) -> Range<usize> {
    let start = text.len();
    text.push_str(v);
    start..text.len()
}

pub fn stamp_of(record: &Map<String, Json>) -> Option<DateTime<Utc>> {
    record
        .get("SystemModstamp")
        .and_then(Json::as_str)
        .and_then(parse_datetime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesforce_core::typemap::PgType;
    use serde_json::json;

    fn field(field: &str, column: &str, pg: PgType) -> SyncedField {
        SyncedField {
            field: field.into(),
            column: column.into(),
            pg,
        }
    }

    #[test]
    fn records_become_column_input() {
        let fields = [
            field("Id", "id", PgType::Text),
            field("Languages__c", "languages__c", PgType::TextArray),
            field("Amount", "amount", PgType::Numeric),
            field("Title", "title", PgType::Text),
        ];
        let mut rows = Rows::new(&fields, true);
        let record = json!({"Id": "003A", "Languages__c": "en;fr", "Amount": 12.5, "Title": null});
        rows.push(record.as_object().unwrap(), None).unwrap();
        assert_eq!(
            rows.row(0).collect::<Vec<_>>(),
            vec![
                Some("003A"),
                Some(r#"{"en","fr"}"#),
                Some("12.5"),
                None,
                None
            ]
        );
        assert_eq!(rows.column(2), vec![Some("12.5".to_string())]);
        let bad = json!({"Id": "003B", "Amount": {"value": 1}});
        let e = rows
            .push(bad.as_object().unwrap(), None)
            .unwrap_err()
            .message();
        assert!(e.contains("Amount of record 003B"), "{e}");
        assert_eq!(rows.len(), 1, "a record that fails adds nothing");
        assert_eq!(rows.row(0).count(), 5);
    }
}
