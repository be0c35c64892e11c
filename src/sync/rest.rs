//! Backfills through REST, as a pipeline of three threads: one fetches the
//! query's pages, one reads their records straight into rows, and the
//! backend stores the batch before. Each stage is at most a page or a batch
//! ahead of the next, so memory stays bounded.

use super::rows::Rows;
use crate::connection::interrupted;
use crate::error::{Error, Result};
use crate::read_ahead::ReadAhead;
use crate::values::{conversion_error, Source};
use chrono::{DateTime, Utc};
use pgrx::PgSqlErrorCode;
use salesforce_core::client::session::{PageHead, Session};
use salesforce_core::sync::definition::SyncedField;
use salesforce_core::values::{str_to_pg_text, to_pg_text};
use salesforce_core::SalesforceError;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// Records a REST backfill gathers, from pages of 200 to 2,000, before it
/// stores them in one transaction.
pub const BATCH: usize = 2_000;

/// The rows of one or more pages, and where the query goes on.
pub struct Batch {
    pub rows: Rows,
    /// The Id of the last record: the backfill resumes after it.
    pub last_id: Option<String>,
    /// The query has no more pages.
    pub done: bool,
}

/// What a stage produced and what it cost, whatever its outcome, for the
/// log and pacing.
pub struct Counted<T> {
    pub answer: Result<T>,
    pub requests: i64,
    pub limit_info: Option<String>,
    pub server_time: Option<DateTime<Utc>>,
    /// The fetching thread's credentials, which it may have renewed: the
    /// backend must know them to keep them out of what it reports.
    pub secrets: Vec<String>,
}

struct RawPage {
    body: Vec<u8>,
    done: bool,
}

enum Page {
    First(String),
    Next(String),
}

/// Reads `soql`'s pages with `session`, a fork of the backend's, into
/// batches of about `BATCH` rows of `fields`.
pub fn read_ahead(
    session: Session,
    soql: String,
    fields: &[SyncedField],
    soft_delete: bool,
) -> ReadAhead<Counted<Batch>> {
    let pages = fetch_ahead(session, soql);
    let reader = PageReader::new(fields);
    let fields = fields.to_vec();
    let mut ended = false;
    ReadAhead::start(move || {
        if ended {
            return None;
        }
        let mut batch = Batch {
            rows: Rows::new(&fields, soft_delete),
            last_id: None,
            done: false,
        };
        let mut counted = Counted {
            answer: Ok(()),
            requests: 0,
            limit_info: None,
            server_time: None,
            secrets: Vec::new(),
        };
        while counted.answer.is_ok() && !batch.done && batch.rows.len() < BATCH {
            let page = match pages.next(interrupted) {
                Some(Ok(page)) => page,
                Some(Err(e)) => Counted::failed(e),
                None => Counted::failed(Error::sql(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    "the query's pages ended before its last",
                )),
            };
            counted.requests += page.requests;
            counted.limit_info = page.limit_info.or(counted.limit_info);
            counted.server_time = page.server_time.or(counted.server_time);
            counted.secrets = page.secrets;
            counted.answer = page.answer.and_then(|raw| {
                batch.done = raw.done;
                reader.read(&raw.body, &mut batch)
            });
        }
        ended = batch.done || counted.answer.is_err();
        batch.rows.prepare_copy_text();
        Some(Ok(Counted {
            answer: counted.answer.map(|()| batch),
            requests: counted.requests,
            limit_info: counted.limit_info,
            server_time: counted.server_time,
            secrets: counted.secrets,
        }))
    })
}

impl<T> Counted<T> {
    fn failed(e: Error) -> Counted<T> {
        Counted {
            answer: Err(e),
            requests: 0,
            limit_info: None,
            server_time: None,
            secrets: Vec::new(),
        }
    }
}

/// Fetches the query's pages one after another, each as soon as the one
/// before names it.
fn fetch_ahead(mut session: Session, soql: String) -> ReadAhead<Counted<RawPage>> {
    let mut next = Some(Page::First(soql));
    ReadAhead::start(move || {
        let from = next.take()?;
        let before = session.requests;
        let body = match from {
            Page::First(soql) => session.query_text(&soql, false),
            Page::Next(url) => session.next_page_text(&url),
        };
        let answer = body.and_then(|body| {
            next = PageHead::of(&body)?.next().map(Page::Next);
            Ok(RawPage {
                body,
                done: next.is_none(),
            })
        });
        Some(Ok(Counted {
            answer: answer.map_err(Error::from),
            requests: (session.requests - before) as i64,
            limit_info: session.last_limit_info.clone(),
            server_time: session.last_server_time,
            secrets: session.secrets(),
        }))
    })
}

/// Reads a query page's records straight into rows: no record is built,
/// and a field's text is borrowed from the answer where it can be.
struct PageReader {
    /// Synced fields by API name.
    positions: HashMap<String, usize>,
    id: Option<usize>,
}

impl PageReader {
    fn new(fields: &[SyncedField]) -> PageReader {
        PageReader {
            positions: fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.field.clone(), i))
                .collect(),
            id: fields.iter().position(|f| f.field == "Id"),
        }
    }

    fn read(&self, body: &[u8], batch: &mut Batch) -> Result<()> {
        let mut failure = None;
        let mut de = serde_json::Deserializer::from_slice(body);
        let outcome = PageSeed {
            reader: self,
            batch,
            failure: &mut failure,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        match (failure, outcome) {
            (Some(e), _) => Err(e),
            (None, Err(e)) => Err(SalesforceError::BadResponse(format!("query: {e}")).into()),
            (None, Ok(())) => Ok(()),
        }
    }
}

/// A field's value: text, borrowed where the answer has no escapes, or any
/// other JSON.
enum FieldValue<'de> {
    Text(Cow<'de, str>),
    Other(Json),
}

impl<'de> Deserialize<'de> for FieldValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(FieldValue::Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Self::Value, E> {
                Ok(FieldValue::Text(Cow::Owned(s.to_string())))
            }
            fn visit_bool<E>(self, b: bool) -> std::result::Result<Self::Value, E> {
                Ok(FieldValue::Other(Json::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> std::result::Result<Self::Value, E> {
                Ok(FieldValue::Other(Json::from(n)))
            }
            fn visit_u64<E>(self, n: u64) -> std::result::Result<Self::Value, E> {
                Ok(FieldValue::Other(Json::from(n)))
            }
            fn visit_f64<E>(self, n: f64) -> std::result::Result<Self::Value, E> {
                Ok(FieldValue::Other(Json::from(n)))
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(FieldValue::Other(Json::Null))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                Json::deserialize(de::value::MapAccessDeserializer::new(map)).map(FieldValue::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                Json::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(FieldValue::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A key, borrowed where it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match FieldValue::deserialize(d)? {
            FieldValue::Text(t) => Ok(Key(t)),
            FieldValue::Other(_) => Err(de::Error::custom("a key that is not text")),
        }
    }
}

struct PageSeed<'a> {
    reader: &'a PageReader,
    batch: &'a mut Batch,
    failure: &'a mut Option<Error>,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a query page")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key>()? {
            if key == "records" {
                map.next_value_seed(RecordsSeed {
                    reader: self.reader,
                    batch: &mut *self.batch,
                    failure: &mut *self.failure,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct RecordsSeed<'a> {
    reader: &'a PageReader,
    batch: &'a mut Batch,
    failure: &'a mut Option<Error>,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut values: Vec<Option<FieldValue<'de>>> = Vec::new();
        let positions = &self.reader.positions;
        while let Some(()) = seq.next_element_seed(RecordSeed {
            positions,
            values: &mut values,
        })? {
            if let Err(e) = self.add(&values) {
                *self.failure = Some(e);
                return Err(de::Error::custom("a value could not be converted"));
            }
        }
        Ok(())
    }
}

impl RecordsSeed<'_> {
    fn add(&mut self, values: &[Option<FieldValue>]) -> Result<()> {
        let id = self.reader.id.and_then(|i| match &values[i] {
            Some(FieldValue::Text(t)) => Some(t.as_ref()),
            _ => None,
        });
        self.batch.rows.push_with(
            |i, f| {
                let kind = f.pg.kind();
                let converted = match &values[i] {
                    None | Some(FieldValue::Other(Json::Null)) => Ok(None),
                    Some(FieldValue::Text(t)) => str_to_pg_text(t, kind),
                    Some(FieldValue::Other(v)) => to_pg_text(v, kind).map(|t| t.map(Cow::Owned)),
                };
                converted.map_err(|message| {
                    let from = Source {
                        column: &f.column,
                        field: &f.field,
                        record: id,
                    };
                    conversion_error(&from, message)
                })
            },
            None,
        )?;
        if let Some(id) = id {
            self.batch.last_id = Some(id.to_string());
        }
        Ok(())
    }
}

/// Reads one record's synced fields into `values`, passing over the rest.
struct RecordSeed<'a, 'de> {
    positions: &'a HashMap<String, usize>,
    values: &'a mut Vec<Option<FieldValue<'de>>>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        self.values.clear();
        self.values.resize_with(self.positions.len(), || None);
        while let Some(Key(key)) = map.next_key::<Key>()? {
            match self.positions.get(key.as_ref()) {
                Some(&i) => self.values[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesforce_core::typemap::PgType;
    use serde_json::json;

    fn fields() -> Vec<SyncedField> {
        [
            ("Id", PgType::Text),
            ("LastName", PgType::Text),
            ("Count__c", PgType::Integer),
            ("Amount", PgType::Numeric),
            ("Done__c", PgType::Boolean),
            ("SystemModstamp", PgType::Timestamptz),
            ("MailingAddress", PgType::Jsonb),
            ("Languages__c", PgType::TextArray),
        ]
        .into_iter()
        .map(|(field, pg)| SyncedField {
            field: field.into(),
            column: field.to_ascii_lowercase(),
            pg,
        })
        .collect()
    }

    fn batch(fields: &[SyncedField]) -> Batch {
        Batch {
            rows: Rows::new(fields, false),
            last_id: None,
            done: false,
        }
    }

    #[test]
    fn records_are_read_as_a_parsed_record_would_be() {
        let page = json!({
            "totalSize": 2, "done": true,
            "records": [
                {"attributes": {"type": "Contact", "url": "/x"}, "Id": "003A", "LastName": "Ana \"Bo\" \u{e9}\\",
                 "Count__c": 3, "Amount": 43000000.0, "Done__c": true, "SystemModstamp": "2024-02-06T20:48:32.000+0000",
                 "MailingAddress": {"city": "Paris", "street": null}, "Languages__c": "en;fr", "Owner": {"Name": "x"}},
                {"attributes": {"type": "Contact"}, "Id": "003B", "LastName": null, "Amount": 1.5}
            ]
        });
        let fields = fields();
        let mut read = batch(&fields);
        PageReader::new(&fields)
            .read(page.to_string().as_bytes(), &mut read)
            .unwrap();
        let mut parsed = Rows::new(&fields, false);
        for r in page["records"].as_array().unwrap() {
            parsed.push(r.as_object().unwrap(), None).unwrap();
        }
        assert_eq!(read.rows.len(), 2);
        for i in 0..2 {
            assert_eq!(
                read.rows.row(i).collect::<Vec<_>>(),
                parsed.row(i).collect::<Vec<_>>()
            );
        }
        assert_eq!(read.rows.row(0).nth(1), Some(Some("Ana \"Bo\" \u{e9}\\")));
        assert_eq!(read.last_id.as_deref(), Some("003B"));
    }

    #[test]
    fn a_value_that_does_not_fit_or_a_broken_page_is_an_error() {
        let fields = fields();
        let reader = PageReader::new(&fields);
        let page = json!({"done": true, "records": [{"Id": "003C", "Count__c": "many"}]});
        let e = reader
            .read(page.to_string().as_bytes(), &mut batch(&fields))
            .unwrap_err()
            .message();
        assert!(e.contains("Count__c of record 003C"), "{e}");
        let e = reader
            .read(
                br#"{"done": true, "records": [{"Id": "003D""#,
                &mut batch(&fields),
            )
            .unwrap_err()
            .message();
        assert!(e.contains("query: EOF"), "{e}");
    }
}
