//! Query pages read straight into column input texts: no JSON record is
//! built, and a field's text is borrowed from the answer where it can be.
//! The sync's backfills and the foreign scan both read pages this way, on
//! the threads that fetch them.

use crate::error::{Error, Result};
use crate::values::{conversion_error, Source};
use rustc_hash::FxHasher;
use salesforce_core::values::{str_to_pg_text, to_pg_text, PgKind};
use salesforce_core::SalesforceError;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;

/// A field to read, into a column of some kind.
#[derive(Clone)]
pub struct ReadField {
    pub field: String,
    pub column: String,
    pub kind: PgKind,
}

/// A field of a record, as its column's input text.
pub enum FieldText<'a> {
    /// The record does not carry the field (it was not selected).
    Absent,
    Null,
    Text(Cow<'a, str>),
}

/// Takes the records of a page, one at a time.
pub trait RecordSink {
    /// `texts[i]` is the text of `fields[i]` of the reader; `id` the record's Id.
    fn record(&mut self, texts: &[FieldText], id: Option<&str>) -> Result<()>;
}

pub struct PageReader {
    fields: Vec<ReadField>,
    /// The fields by API name.
    positions: Positions,
    id: Option<usize>,
}

/// Where a key of a record goes: into a field read, or into a parent record
/// (`Account` for `Account.Name`) holding some.
enum Slot {
    Field(usize),
    Parent(Positions),
}

/// Looked up for every key of every record: a fast hash, as keys are our own field names.
type Positions = HashMap<String, Slot, BuildHasherDefault<FxHasher>>;

impl PageReader {
    pub fn new(fields: Vec<ReadField>) -> PageReader {
        let mut positions = Positions::default();
        for (i, f) in fields.iter().enumerate() {
            let mut level = &mut positions;
            let mut names = f.field.split('.').peekable();
            while let Some(name) = names.next() {
                if names.peek().is_none() {
                    level.insert(name.to_string(), Slot::Field(i));
                    break;
                }
                let slot = level
                    .entry(name.to_string())
                    .or_insert_with(|| Slot::Parent(Positions::default()));
                let Slot::Parent(next) = slot else { break };
                level = next;
            }
        }
        PageReader {
            positions,
            id: fields.iter().position(|f| f.field == "Id"),
            fields,
        }
    }

    /// Hands every record of a query page's answer to `sink`.
    pub fn read(&self, body: &[u8], sink: &mut dyn RecordSink) -> Result<()> {
        let mut failure = None;
        let mut de = serde_json::Deserializer::from_slice(body);
        let outcome = PageSeed {
            reader: self,
            sink,
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
    sink: &'a mut dyn RecordSink,
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
                    sink: &mut *self.sink,
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
    sink: &'a mut dyn RecordSink,
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
            fields: self.reader.fields.len(),
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
        let texts = self
            .reader
            .fields
            .iter()
            .zip(values)
            .map(|(f, value)| {
                let converted = match value {
                    None => return Ok(FieldText::Absent),
                    Some(FieldValue::Other(Json::Null)) => Ok(None),
                    Some(FieldValue::Text(t)) => str_to_pg_text(t, f.kind),
                    Some(FieldValue::Other(v)) => to_pg_text(v, f.kind).map(|t| t.map(Cow::Owned)),
                };
                match converted {
                    Ok(Some(text)) => Ok(FieldText::Text(text)),
                    Ok(None) => Ok(FieldText::Null),
                    Err(message) => {
                        let from = Source {
                            column: &f.column,
                            field: &f.field,
                            record: id,
                        };
                        Err(conversion_error(&from, message))
                    }
                }
            })
            .collect::<Result<Vec<_>>>()?;
        self.sink.record(&texts, id)
    }
}

/// Reads one record's synced fields into `values`, passing over the rest.
struct RecordSeed<'a, 'de> {
    positions: &'a Positions,
    fields: usize,
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
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<(), A::Error> {
        self.values.clear();
        self.values.resize_with(self.fields, || None);
        fill(self.positions, self.values, map)
    }
}

fn fill<'de, A: MapAccess<'de>>(
    positions: &Positions,
    values: &mut [Option<FieldValue<'de>>],
    mut map: A,
) -> std::result::Result<(), A::Error> {
    while let Some(Key(key)) = map.next_key::<Key>()? {
        match positions.get(key.as_ref()) {
            Some(Slot::Field(i)) => values[*i] = Some(map.next_value()?),
            Some(Slot::Parent(positions)) => {
                map.next_value_seed(ParentSeed { positions, values })?
            }
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(())
}

/// A parent record inside a record; null when there is no parent, which
/// makes every field read through it null.
struct ParentSeed<'a, 'b, 'de> {
    positions: &'a Positions,
    values: &'b mut [Option<FieldValue<'de>>],
}

impl ParentSeed<'_, '_, '_> {
    fn nulls(positions: &Positions, values: &mut [Option<FieldValue>]) {
        for slot in positions.values() {
            match slot {
                Slot::Field(i) => values[*i] = Some(FieldValue::Other(Json::Null)),
                Slot::Parent(p) => ParentSeed::nulls(p, values),
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for ParentSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ParentSeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a parent record or null")
    }
    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        ParentSeed::nulls(self.positions, self.values);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<(), A::Error> {
        fill(self.positions, self.values, map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::input_text;
    use serde_json::json;

    /// Each record's texts, as owned strings; None for Absent.
    struct Collected(Vec<Vec<Option<Option<String>>>>);

    impl RecordSink for Collected {
        fn record(&mut self, texts: &[FieldText], _: Option<&str>) -> Result<()> {
            self.0.push(
                texts
                    .iter()
                    .map(|t| match t {
                        FieldText::Absent => None,
                        FieldText::Null => Some(None),
                        FieldText::Text(t) => Some(Some(t.to_string())),
                    })
                    .collect(),
            );
            Ok(())
        }
    }

    fn fields() -> Vec<ReadField> {
        [
            ("Id", PgKind::Text),
            ("LastName", PgKind::Text),
            ("Count__c", PgKind::Integer),
            ("Amount", PgKind::Numeric),
            ("Done__c", PgKind::Bool),
            ("SystemModstamp", PgKind::Timestamp),
            ("MailingAddress", PgKind::Json),
            ("Languages__c", PgKind::TextArray),
        ]
        .into_iter()
        .map(|(field, kind)| ReadField {
            field: field.into(),
            column: field.to_ascii_lowercase(),
            kind,
        })
        .collect()
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
        let mut read = Collected(Vec::new());
        PageReader::new(fields.clone())
            .read(page.to_string().as_bytes(), &mut read)
            .unwrap();
        let records = page["records"].as_array().unwrap();
        assert_eq!(read.0.len(), 2);
        for (record, texts) in records.iter().zip(&read.0) {
            for (f, text) in fields.iter().zip(texts) {
                let expected = record.get(&f.field).map(|v| {
                    let from = Source {
                        column: &f.column,
                        field: &f.field,
                        record: None,
                    };
                    input_text(v, f.kind, &from).unwrap()
                });
                assert_eq!(text, &expected, "{}", f.field);
            }
        }
        assert_eq!(read.0[0][1], Some(Some("Ana \"Bo\" \u{e9}\\".to_string())));
        assert_eq!(read.0[1][2], None, "absent, not null");
    }

    #[test]
    fn parent_fields_are_read_through_relationships_and_null_without_a_parent() {
        let fields: Vec<ReadField> = ["Id", "Account.Name", "Account.Owner.Alias", "Account.Id"]
            .into_iter()
            .map(|field| ReadField {
                field: field.into(),
                column: field.into(),
                kind: PgKind::Text,
            })
            .collect();
        let page = json!({"done": true, "records": [
            {"Id": "003A", "Account": {"attributes": {}, "Name": "Acme", "Id": "001A", "Owner": {"Alias": "ana"}}},
            {"Id": "003B", "Account": null},
            {"Id": "003C", "Account": {"Name": "Solo", "Id": "001C", "Owner": null}}
        ]});
        let mut read = Collected(Vec::new());
        PageReader::new(fields)
            .read(page.to_string().as_bytes(), &mut read)
            .unwrap();
        let text = |s: &str| Some(Some(s.to_string()));
        assert_eq!(
            read.0[0],
            vec![text("003A"), text("Acme"), text("ana"), text("001A")]
        );
        assert_eq!(
            read.0[1],
            vec![text("003B"), Some(None), Some(None), Some(None)]
        );
        assert_eq!(
            read.0[2],
            vec![text("003C"), text("Solo"), Some(None), text("001C")]
        );
    }

    #[test]
    fn a_value_that_does_not_fit_or_a_broken_page_is_an_error() {
        let reader = PageReader::new(fields());
        let page = json!({"done": true, "records": [{"Id": "003C", "Count__c": "many"}]});
        let e = reader
            .read(page.to_string().as_bytes(), &mut Collected(Vec::new()))
            .unwrap_err()
            .message();
        assert!(e.contains("Count__c of record 003C"), "{e}");
        let e = reader
            .read(
                br#"{"done": true, "records": [{"Id": "003D""#,
                &mut Collected(Vec::new()),
            )
            .unwrap_err()
            .message();
        assert!(e.contains("query: EOF"), "{e}");
    }
}
