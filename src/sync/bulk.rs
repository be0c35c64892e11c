//! Backfills through Bulk API 2.0: what a job selects, and reading its
//! results page by page, a batch at a time, each CSV field converted
//! straight into its column's input text.

use super::rows::Rows;
use crate::connection::interrupted;
use crate::error::{Error, Result};
use crate::read_ahead::{Making, ReadAhead};
use crate::values::{conversion_error, Source};
use chrono::{DateTime, Utc};
use pgrx::PgSqlErrorCode;
use salesforce_core::client::bulk::{ResultsPage, StringRecord};
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::client::session::{parse_datetime, Session};
use salesforce_core::sync::definition::{bulk_can_return, SyncedField};
use salesforce_core::values::{compound, csv_to_pg_text, from_csv, to_pg_text};
use salesforce_core::SalesforceError;
use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

/// Records a step reads from a results page: one transaction's worth.
pub const BATCH: usize = 5_000;
/// The first look at a new job, and the longest pause between looks.
pub const FIRST_POLL: Duration = Duration::from_secs(1);
pub const LONGEST_POLL: Duration = Duration::from_secs(10);
/// Jobs one run may start for a backfill before it gives up.
pub const MAX_JOBS_PER_RUN: u32 = 3;

/// What a Bulk job selects for a sync's fields: compound fields are read
/// as their components and rebuilt, as Bulk cannot return them.
pub struct BulkSelect {
    pub fields: Vec<String>,
    types: HashMap<String, String>,
    compounds: Vec<(String, String, Vec<String>)>,
}

impl BulkSelect {
    /// Err names a synced field Bulk cannot return at all (base64).
    pub fn new(
        object: &ObjectDescribe,
        synced: &[SyncedField],
        soft_delete: bool,
    ) -> std::result::Result<BulkSelect, String> {
        let mut select = BulkSelect {
            fields: Vec::new(),
            types: object
                .fields
                .iter()
                .map(|f| (f.name.clone(), f.field_type.clone()))
                .collect(),
            compounds: Vec::new(),
        };
        let add = |fields: &mut Vec<String>, name: &str| {
            if !fields.iter().any(|f| f.eq_ignore_ascii_case(name)) {
                fields.push(name.to_string());
            }
        };
        for s in synced {
            let Some(field) = object.field(&s.field) else {
                continue;
            };
            if bulk_can_return(&field.field_type) {
                add(&mut select.fields, &field.name);
            } else if matches!(field.field_type.as_str(), "address" | "location") {
                let components: Vec<String> = object
                    .fields
                    .iter()
                    .filter(|c| c.compound_field_name.as_deref() == Some(field.name.as_str()))
                    .map(|c| c.name.clone())
                    .collect();
                for c in &components {
                    add(&mut select.fields, c);
                }
                select
                    .compounds
                    .push((field.name.clone(), field.field_type.clone(), components));
            } else {
                return Err(field.name.clone());
            }
        }
        if soft_delete {
            add(&mut select.fields, "IsDeleted");
        }
        Ok(select)
    }

    fn type_of(&self, column: &str) -> &str {
        self.types.get(column).map_or("string", String::as_str)
    }

    /// Where each synced field is in the rows of a page with this header.
    fn plan(&self, header: &[String], fields: &[SyncedField]) -> PagePlan {
        let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let csv_field = |i: usize| CsvField {
            index: i,
            field_type: self.type_of(&header[i]).to_string(),
        };
        let sources = fields
            .iter()
            .map(|f| {
                if let Some(k) = self.compounds.iter().position(|(n, ..)| *n == f.field) {
                    let (name, field_type, components) = &self.compounds[k];
                    let parts = components
                        .iter()
                        .filter_map(|c| Some((c.clone(), csv_field(column(c)?))))
                        .collect();
                    return Origin::Compound(name.clone(), field_type.clone(), parts);
                }
                column(&f.field).map_or(Origin::Missing, |i| Origin::Field(csv_field(i)))
            })
            .collect();
        PagePlan {
            sources,
            id: column("Id"),
            stamp: column("SystemModstamp"),
            is_deleted: column("IsDeleted"),
        }
    }
}

struct CsvField {
    index: usize,
    field_type: String,
}

/// Where a synced field's value is in a results row: a column, the
/// components of a compound field, or nowhere (null).
enum Origin {
    Field(CsvField),
    Compound(String, String, Vec<(String, CsvField)>),
    Missing,
}

struct PagePlan {
    sources: Vec<Origin>,
    id: Option<usize>,
    stamp: Option<usize>,
    is_deleted: Option<usize>,
}

impl PagePlan {
    /// Adds a results row to `rows`, and returns its SystemModstamp.
    fn add<'r>(&self, rows: &mut Rows, row: &'r StringRecord) -> Result<Option<&'r str>> {
        let at = |i: Option<usize>| i.and_then(|i| row.get(i)).filter(|t| !t.is_empty());
        let id = at(self.id);
        let stamp = at(self.stamp);
        let deleted = (rows.soft_delete() && at(self.is_deleted) == Some("true"))
            .then(|| stamp.and_then(parse_datetime).unwrap_or_else(Utc::now));
        rows.push_with(
            |i, f| {
                let from = Source {
                    column: &f.column,
                    field: &f.field,
                    record: id,
                };
                let converted = match self.sources.get(i) {
                    Some(Origin::Field(c)) => {
                        csv_to_pg_text(&row[c.index], &c.field_type, f.pg.kind())
                    }
                    Some(Origin::Compound(name, field_type, parts)) => {
                        let values: Vec<Json> = parts
                            .iter()
                            .map(|(_, c)| from_csv(&row[c.index], &c.field_type))
                            .collect();
                        let named: Vec<(&str, &Json)> = parts
                            .iter()
                            .zip(&values)
                            .map(|((n, _), v)| (n.as_str(), v))
                            .collect();
                        to_pg_text(&compound(name, field_type, &named), f.pg.kind())
                            .map(|t| t.map(Cow::Owned))
                    }
                    Some(Origin::Missing) | None => Ok(None),
                };
                converted.map_err(|message| conversion_error(&from, message))
            },
            deleted,
        )?;
        Ok(stamp)
    }
}

/// A results page being read, and where its fields are.
pub struct OpenPage {
    results: ResultsPage,
    plan: PagePlan,
}

/// Opens the results page at `locator` (None: the first) and passes over
/// its first `skip` rows, which an earlier run stored.
pub fn open_page(
    session: &mut Session,
    select: &BulkSelect,
    fields: &[SyncedField],
    job: &str,
    locator: Option<&str>,
    skip: u64,
) -> std::result::Result<OpenPage, SalesforceError> {
    let mut results = session.query_job_results(job, locator)?;
    for _ in 0..skip {
        if results.next_record()?.is_none() {
            break;
        }
    }
    let plan = select.plan(&results.header, fields);
    Ok(OpenPage { results, plan })
}

/// One batch of a results page.
pub struct Batch {
    pub rows: Rows,
    /// The newest SystemModstamp among them.
    pub newest: Option<DateTime<Utc>>,
    /// The page is read to its end; `next_locator` is the next page's, if any.
    pub page_done: bool,
    pub next_locator: Option<String>,
}

/// Reads an open page on a thread of its own, a batch ahead of the
/// backend, which stores the batch before.
pub fn read_ahead(page: OpenPage, fields: &[SyncedField], soft_delete: bool) -> ReadAhead<Batch> {
    let mut page = Some(page);
    let fields = fields.to_vec();
    ReadAhead::start(Making::Ahead, move || {
        let p = page.as_mut()?;
        let batch = read_batch(p, &fields, soft_delete);
        if batch.as_ref().map_or(true, |b| b.page_done) {
            page = None;
        }
        Some(batch)
    })
}

/// The next batch of the page being read. On any failure, or at the page's
/// end, the page is closed, so the next attempt opens it again where the
/// stored rows end.
pub fn next_batch(page: &mut Option<ReadAhead<Batch>>) -> Result<Batch> {
    let outcome = page
        .as_ref()
        .expect("the page is open")
        .next(interrupted)
        .unwrap_or_else(|| {
            Err(Error::sql(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "the results page ended without its last batch",
            ))
        });
    if outcome.as_ref().map_or(true, |b| b.page_done) {
        *page = None;
    }
    outcome
}

fn read_batch(p: &mut OpenPage, fields: &[SyncedField], soft_delete: bool) -> Result<Batch> {
    let mut rows = Rows::new(fields, soft_delete);
    let mut newest: Option<String> = None;
    let mut page_done = false;
    while rows.len() < BATCH {
        match p.results.next_record()? {
            Some(row) => {
                let stamp = p.plan.add(&mut rows, row)?;
                if let Some(s) = stamp.filter(|s| newest.as_deref().is_none_or(|n| *s > n)) {
                    newest = Some(s.to_string());
                }
            }
            None => {
                page_done = true;
                break;
            }
        }
    }
    rows.prepare_copy_text();
    Ok(Batch {
        rows,
        // Bulk writes every datetime alike, so the greatest text is the newest.
        newest: newest.as_deref().and_then(parse_datetime),
        page_done,
        next_locator: p.results.next_locator.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesforce_core::client::describe::FieldDescribe;
    use salesforce_core::typemap::PgType;
    use serde_json::json;

    fn synced(field: &str) -> SyncedField {
        SyncedField {
            field: field.into(),
            column: field.to_ascii_lowercase(),
            pg: PgType::Text,
        }
    }

    fn contact() -> ObjectDescribe {
        let mut street = FieldDescribe::of_type("MailingStreet", "textarea");
        street.compound_field_name = Some("MailingAddress".into());
        let mut city = FieldDescribe::of_type("MailingCity", "string");
        city.compound_field_name = Some("MailingAddress".into());
        ObjectDescribe {
            name: "Contact".into(),
            fields: vec![
                FieldDescribe::of_type("Id", "id"),
                FieldDescribe::of_type("Phone", "phone"),
                street,
                city,
                FieldDescribe::of_type("MailingAddress", "address"),
                FieldDescribe::of_type("Photo__c", "base64"),
            ],
        }
    }

    #[test]
    fn compound_fields_are_read_as_components_and_rebuilt() {
        let fields = [
            synced("Id"),
            synced("MailingAddress"),
            synced("MailingCity"),
        ];
        let select = BulkSelect::new(&contact(), &fields, true).unwrap();
        assert_eq!(
            select.fields,
            vec!["Id", "MailingStreet", "MailingCity", "IsDeleted"]
        );
        let plan = select.plan(&select.fields, &fields);
        let mut rows = Rows::new(&fields, true);
        let row = StringRecord::from(vec!["003A", "", "Paris", "false"]);
        assert_eq!(plan.add(&mut rows, &row).unwrap(), None);
        let values: Vec<Option<&str>> = rows.row(0).collect();
        assert_eq!(values[0], Some("003A"));
        let address: Json = serde_json::from_str(values[1].unwrap()).unwrap();
        assert_eq!(address["city"], json!("Paris"));
        assert_eq!(address["street"], Json::Null);
        assert_eq!(values[2], Some("Paris"));
        assert_eq!(values[3], None, "not deleted");
        assert_eq!(
            BulkSelect::new(&contact(), &[synced("Photo__c")], false).err(),
            Some("Photo__c".to_string())
        );
    }
}
