//! Salesforce records as rows of a local copy, in the form
//! `json_populate_recordset` reads.

use super::definition::{SyncedField, DELETED_AT};
use crate::fdw::convert::{to_pg_text, PgKind};
use crate::salesforce::session::parse_datetime;
use crate::typemap::PgType;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

fn kind_of(p: PgType) -> PgKind {
    match p {
        PgType::Text => PgKind::Text,
        PgType::Boolean => PgKind::Bool,
        PgType::Integer | PgType::Bigint => PgKind::Integer,
        PgType::DoublePrecision => PgKind::Float,
        PgType::Numeric => PgKind::Numeric,
        PgType::Date => PgKind::Date,
        PgType::Timestamptz => PgKind::Timestamp,
        PgType::Time => PgKind::Time,
        PgType::TextArray => PgKind::TextArray,
        PgType::Jsonb => PgKind::Json,
    }
}

/// Input text per column, except JSON for jsonb columns and an array for
/// text[] ones. `deleted_at` is given only for soft-delete copies.
pub fn local_row(
    fields: &[SyncedField],
    record: &Map<String, Json>,
    deleted_at: Option<Option<String>>,
) -> Result<Map<String, Json>, String> {
    let mut row = Map::with_capacity(fields.len() + 1);
    for f in fields {
        let v = record.get(&f.field).unwrap_or(&Json::Null);
        let local = match (f.pg, v) {
            (_, Json::Null) => Json::Null,
            (PgType::Jsonb, v) => v.clone(),
            (PgType::TextArray, Json::String(s)) => Json::Array(
                s.split(';')
                    .filter(|p| !p.is_empty())
                    .map(|p| Json::String(p.into()))
                    .collect(),
            ),
            (pg, v) => to_pg_text(v, kind_of(pg))
                .map_err(|e| {
                    format!(
                        "cannot store field {} of {}: {e}",
                        f.field,
                        record.get("Id").and_then(Json::as_str).unwrap_or("?")
                    )
                })?
                .map_or(Json::Null, Json::String),
        };
        row.insert(f.column.clone(), local);
    }
    if let Some(at) = deleted_at {
        row.insert(DELETED_AT.into(), at.map_or(Json::Null, Json::String));
    }
    Ok(row)
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
        let record = json!({"Id": "003A", "Languages__c": "en;fr", "Amount": 12.5, "Title": null});
        let row = local_row(&fields, record.as_object().unwrap(), Some(None)).unwrap();
        assert_eq!(
            Json::Object(row),
            json!({"id": "003A", "languages__c": ["en", "fr"], "amount": "12.5", "title": null, "_deleted_at": null})
        );
        let bad = json!({"Id": "003B", "Amount": {"value": 1}});
        assert!(local_row(&fields, bad.as_object().unwrap(), None)
            .unwrap_err()
            .contains("Amount of 003B"));
    }
}
