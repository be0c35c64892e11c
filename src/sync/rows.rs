//! Salesforce records as rows of a local copy: each value converted by the
//! shared values module into its column's input text, gathered column by
//! column for one INSERT per page.

use crate::error::Result;
use crate::values::{input_text, Source};
use chrono::{DateTime, Utc};
use salesforce_core::client::session::parse_datetime;
use salesforce_core::sync::definition::SyncedField;
use serde_json::{Map, Value as Json};

/// Rows for a copy, column by column: `columns[i]` holds the input texts of
/// `fields[i]`; `deleted_at` is kept only for soft-delete copies.
pub struct Rows<'a> {
    pub fields: &'a [SyncedField],
    pub columns: Vec<Vec<Option<String>>>,
    pub deleted_at: Option<Vec<Option<String>>>,
}

impl<'a> Rows<'a> {
    pub fn new(fields: &'a [SyncedField], soft_delete: bool) -> Rows<'a> {
        Rows {
            fields,
            columns: vec![Vec::new(); fields.len()],
            deleted_at: soft_delete.then(Vec::new),
        }
    }

    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    /// Adds a record; `deleted` marks it deleted in a soft-delete copy.
    pub fn push(
        &mut self,
        record: &Map<String, Json>,
        deleted: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let id = record.get("Id").and_then(Json::as_str);
        let texts = self
            .fields
            .iter()
            .map(|f| {
                let value = record.get(&f.field).unwrap_or(&Json::Null);
                let from = Source {
                    column: &f.column,
                    field: &f.field,
                    record: id,
                };
                input_text(value, f.pg.kind(), &from)
            })
            .collect::<Result<Vec<_>>>()?;
        for (column, text) in self.columns.iter_mut().zip(texts) {
            column.push(text);
        }
        if let Some(at) = &mut self.deleted_at {
            at.push(deleted.map(|t| t.to_rfc3339()));
        }
        Ok(())
    }
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
            rows.columns,
            vec![
                vec![Some("003A".to_string())],
                vec![Some(r#"{"en","fr"}"#.to_string())],
                vec![Some("12.5".to_string())],
                vec![None],
            ]
        );
        assert_eq!(rows.deleted_at, Some(vec![None]));
        let bad = json!({"Id": "003B", "Amount": {"value": 1}});
        let e = rows
            .push(bad.as_object().unwrap(), None)
            .unwrap_err()
            .message();
        assert!(e.contains("Amount of record 003B"), "{e}");
        assert_eq!(rows.len(), 1, "a record that fails adds nothing");
    }
}
