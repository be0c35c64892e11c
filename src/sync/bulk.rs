//! Backfills through Bulk API 2.0: what a job selects, and reading its
//! results page by page, a batch at a time, as records shaped as REST
//! answers them so the rest of the sync treats both alike.

use salesforce_core::client::bulk::{ResultsPage, StringRecord};
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::client::session::Session;
use salesforce_core::sync::definition::{bulk_can_return, SyncedField};
use salesforce_core::values::{compound, from_csv};
use salesforce_core::SalesforceError;
use serde_json::{Map, Value as Json};
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
    ) -> Result<BulkSelect, String> {
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

    /// A results row as the record REST would have returned.
    fn record(&self, header: &[String], types: &[&str], row: &StringRecord) -> Map<String, Json> {
        let mut record = Map::with_capacity(header.len() + self.compounds.len());
        for ((name, field_type), text) in header.iter().zip(types).zip(row.iter()) {
            record.insert(name.clone(), from_csv(text, field_type));
        }
        for (name, field_type, components) in &self.compounds {
            let parts: Vec<(&str, &Json)> = components
                .iter()
                .map(|c| (c.as_str(), record.get(c).unwrap_or(&Json::Null)))
                .collect();
            let value = compound(name, field_type, &parts);
            record.insert(name.clone(), value);
        }
        record
    }
}

/// One batch of a results page.
pub struct Batch {
    pub records: Vec<Map<String, Json>>,
    /// The page is read to its end; `next_locator` is the next page's, if any.
    pub page_done: bool,
    pub next_locator: Option<String>,
}

/// Reads the next batch of a job's results. `page` is the page being read;
/// None opens the one at `locator` and passes over its first `skip` rows,
/// which an earlier run stored. On any failure the page is closed, so the
/// next attempt opens it again at the same place.
pub fn read_batch(
    session: &mut Session,
    page: &mut Option<ResultsPage>,
    select: &BulkSelect,
    job: &str,
    locator: Option<&str>,
    skip: u64,
) -> Result<Batch, SalesforceError> {
    let mut read = || {
        if page.is_none() {
            let mut opened = session.query_job_results(job, locator)?;
            for _ in 0..skip {
                if opened.next_record()?.is_none() {
                    break;
                }
            }
            *page = Some(opened);
        }
        let p = page.as_mut().expect("opened above");
        let header = p.header.clone();
        let types: Vec<&str> = header.iter().map(|h| select.type_of(h)).collect();
        let mut records = Vec::with_capacity(BATCH);
        let mut page_done = false;
        while records.len() < BATCH {
            match p.next_record()? {
                Some(row) => records.push(select.record(&header, &types, row)),
                None => {
                    page_done = true;
                    break;
                }
            }
        }
        Ok(Batch {
            records,
            page_done,
            next_locator: p.next_locator.clone(),
        })
    };
    let outcome = read();
    if outcome.as_ref().map_or(true, |b| b.page_done) {
        *page = None;
    }
    outcome
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
        let header: Vec<String> = select.fields.clone();
        let types: Vec<&str> = header.iter().map(|h| select.type_of(h)).collect();
        let row = StringRecord::from(vec!["003A", "", "Paris", "false"]);
        let record = select.record(&header, &types, &row);
        assert_eq!(record["MailingAddress"]["city"], json!("Paris"));
        assert_eq!(record["MailingAddress"]["street"], Json::Null);
        assert_eq!(record["IsDeleted"], json!("false"));
        assert_eq!(
            BulkSelect::new(&contact(), &[synced("Photo__c")], false).err(),
            Some("Photo__c".to_string())
        );
    }
}
