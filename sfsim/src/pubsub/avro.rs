//! The Avro schema of an object's change event, generated from the org's
//! schema, and the binary encoding of its events.
//!
//! The event is a record `<Object>ChangeEvent` in namespace
//! `com.sforce.eventbus`: `ChangeEventHeader` first, then one field per
//! field of the object, each a union with null, default null. Change
//! events leave out Id (the header's `recordIds` has it), IsDeleted,
//! SystemModstamp and formula fields, as Salesforce documents. Compound
//! fields are nested records: an address (`BillingAddress` with `Street`,
//! `City`, …), a geolocation (`Latitude`, `Longitude`) and a person's
//! `Name` (`FirstName`, `LastName`, …) in place of their component fields.

use super::bitmap::FieldBits;
use super::header::{self, Header};
use super::topics::entity_name;
use crate::schema::{FieldType, Formula, ObjectDef};
use crate::value::Value;
use apache_avro::types::Value as Avro;
use base64::Engine;
use chrono::{NaiveDate, Timelike};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// An event field's Avro type.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    String,
    Boolean,
    Int,
    Long,
    Double,
    /// Days since the epoch.
    Date,
    /// Epoch milliseconds.
    DateTime,
    /// Milliseconds since midnight.
    Time,
}

impl Kind {
    fn of(ftype: FieldType) -> Kind {
        match ftype {
            FieldType::Boolean => Kind::Boolean,
            FieldType::Int => Kind::Int,
            FieldType::Long => Kind::Long,
            FieldType::Double | FieldType::Currency | FieldType::Percent => Kind::Double,
            FieldType::Date => Kind::Date,
            FieldType::Datetime => Kind::DateTime,
            FieldType::Time => Kind::Time,
            _ => Kind::String,
        }
    }

    fn schema(self) -> Json {
        match self {
            Kind::String => json!("string"),
            Kind::Boolean => json!("boolean"),
            Kind::Int => json!("int"),
            Kind::Long => json!("long"),
            Kind::Double => json!("double"),
            Kind::Date => json!({"type": "int", "logicalType": "date"}),
            Kind::DateTime => json!({"type": "long", "logicalType": "timestamp-millis"}),
            Kind::Time => json!({"type": "int", "logicalType": "time-millis"}),
        }
    }

    /// A stored value as this type; None for a value it cannot hold.
    fn avro(self, v: &Value) -> Option<Avro> {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
        Some(match (self, v) {
            (Kind::String, Value::Text(s)) => Avro::String(s.to_string()),
            (Kind::Boolean, Value::Bool(b)) => Avro::Boolean(*b),
            (Kind::Int, Value::Int(i)) => Avro::Int(i32::try_from(*i).ok()?),
            (Kind::Int, Value::Number(n)) => Avro::Int(*n as i32),
            (Kind::Long, Value::Int(i)) => Avro::Long(*i),
            (Kind::Long, Value::Number(n)) => Avro::Long(*n as i64),
            (Kind::Double, v) => Avro::Double(v.as_f64()?),
            (Kind::Date, Value::Date(d)) => Avro::Date((*d - epoch).num_days() as i32),
            (Kind::DateTime, Value::DateTime(t)) => Avro::TimestampMillis(t.timestamp_millis()),
            (Kind::Time, Value::Time(t)) => Avro::TimeMillis(
                (t.num_seconds_from_midnight() * 1000 + t.nanosecond() / 1_000_000) as i32,
            ),
            _ => return None,
        })
    }
}

/// One component of a compound field: its name in the nested record and
/// the object field holding it, if sfsim stores it.
#[derive(Debug)]
struct Part {
    name: &'static str,
    source: Option<usize>,
    kind: Kind,
}

#[derive(Debug)]
enum Shape {
    Plain {
        source: usize,
        kind: Kind,
    },
    Compound {
        record: &'static str,
        parts: Vec<Part>,
    },
}

#[derive(Debug)]
struct EventField {
    name: String,
    shape: Shape,
}

const ADDRESS: [(&str, Kind); 10] = [
    ("Street", Kind::String),
    ("City", Kind::String),
    ("State", Kind::String),
    ("PostalCode", Kind::String),
    ("Country", Kind::String),
    ("StateCode", Kind::String),
    ("CountryCode", Kind::String),
    ("Latitude", Kind::Double),
    ("Longitude", Kind::Double),
    ("GeocodeAccuracy", Kind::String),
];
const LOCATION: [(&str, Kind); 2] = [("Latitude", Kind::Double), ("Longitude", Kind::Double)];
const PERSON_NAME: [(&str, Kind); 6] = [
    ("Salutation", Kind::String),
    ("FirstName", Kind::String),
    ("LastName", Kind::String),
    ("MiddleName", Kind::String),
    ("InformalName", Kind::String),
    ("Suffix", Kind::String),
];

/// The event's fields after the header, in the object's field order.
fn event_fields(def: &ObjectDef) -> Vec<EventField> {
    let s = def.system;
    let mut out = Vec::new();
    for (i, f) in def.fields.iter().enumerate() {
        if [s.id, s.is_deleted, s.system_modstamp].contains(&i) || f.compound_field_name.is_some() {
            continue;
        }
        let compound = |record, parts: &[(&'static str, Kind)], source: &dyn Fn(&str) -> String| {
            Shape::Compound {
                record,
                parts: parts
                    .iter()
                    .map(|(name, kind)| Part {
                        name,
                        source: def.field_index(&source(name)),
                        kind: *kind,
                    })
                    .collect(),
            }
        };
        let shape = match (f.ftype, f.formula) {
            (FieldType::Address, _) => {
                let prefix = f.name.trim_end_matches("Address");
                compound("Address", &ADDRESS, &|part| format!("{prefix}{part}"))
            }
            (FieldType::Location, _) => {
                let prefix = f.name.trim_end_matches("__c");
                compound("Location", &LOCATION, &|part| {
                    format!("{prefix}__{part}__s")
                })
            }
            (_, Some(Formula::FullName)) => {
                compound("Name", &PERSON_NAME, &|part| part.to_string())
            }
            _ if f.calculated => continue,
            _ => Shape::Plain {
                source: i,
                kind: Kind::of(f.ftype),
            },
        };
        out.push(EventField {
            name: f.name.clone(),
            shape,
        });
    }
    // A person's name components appear only inside Name.
    let in_name: HashSet<usize> = out
        .iter()
        .filter_map(|f| match &f.shape {
            Shape::Compound {
                record: "Name",
                parts,
            } => Some(parts),
            _ => None,
        })
        .flatten()
        .filter_map(|p| p.source)
        .collect();
    out.retain(|f| !matches!(f.shape, Shape::Plain { source, .. } if in_name.contains(&source)));
    out
}

fn nullable(t: Json) -> Json {
    json!(["null", t])
}

/// One object's change event schema.
pub struct EventSchema {
    pub id: Arc<str>,
    pub json: Arc<str>,
    avro: apache_avro::Schema,
    fields: Vec<EventField>,
}

impl EventSchema {
    pub fn of(def: &ObjectDef) -> EventSchema {
        let fields = event_fields(def);
        let mut defined = HashSet::new();
        let mut schema_fields =
            vec![json!({"name": "ChangeEventHeader", "type": header::schema()})];
        for f in &fields {
            let t = match &f.shape {
                Shape::Plain { kind, .. } => kind.schema(),
                // A record type is defined once; later fields name it.
                Shape::Compound { record, .. } if !defined.insert(*record) => json!(record),
                Shape::Compound { record, parts } => json!({
                    "type": "record",
                    "name": record,
                    "fields": parts.iter().map(|p| json!({"name": p.name, "type": nullable(p.kind.schema()), "default": null})).collect::<Vec<_>>(),
                }),
            };
            schema_fields.push(json!({"name": f.name, "type": nullable(t), "default": null}));
        }
        let json = json!({
            "type": "record",
            "name": entity_name(&def.name),
            "namespace": "com.sforce.eventbus",
            "fields": schema_fields,
        })
        .to_string();
        let avro = apache_avro::Schema::parse_str(&json).expect("generated schemas are valid Avro");
        EventSchema {
            id: fingerprint(&json).into(),
            json: json.into(),
            avro,
            fields,
        }
    }

    /// Positions in the schema (the header is 0) of fields whose stored
    /// sources are in `set`. A compound field shows as its components,
    /// or as itself when `whole` says all of them count.
    fn bits(&self, set: &BTreeSet<usize>, whole: impl Fn(&[Part]) -> bool) -> FieldBits {
        let mut bits = FieldBits::default();
        for (i, f) in self.fields.iter().enumerate() {
            let position = i + 1;
            match &f.shape {
                Shape::Plain { source, .. } if set.contains(source) => bits.set(position),
                Shape::Plain { .. } => {}
                Shape::Compound { parts, .. } => {
                    let touched: Vec<usize> = (0..parts.len())
                        .filter(|p| parts[*p].source.is_some_and(|s| set.contains(&s)))
                        .collect();
                    if touched.is_empty() {
                        continue;
                    }
                    if whole(parts) {
                        bits.set(position);
                    } else {
                        for p in touched {
                            bits.set_component(position, p);
                        }
                    }
                }
            }
        }
        bits
    }

    pub fn changed_bits(&self, changed: &BTreeSet<usize>) -> FieldBits {
        self.bits(changed, |_| false)
    }

    /// A compound field all of whose stored components are now null shows
    /// as the field itself.
    pub fn nulled_bits(
        &self,
        nulled: &BTreeSet<usize>,
        is_null: impl Fn(usize) -> bool,
    ) -> FieldBits {
        self.bits(nulled, |parts| {
            parts.iter().filter_map(|p| p.source).all(&is_null)
        })
    }

    /// The event in Avro binary: the header, then `carried`'s values (by
    /// object field) where the event has them, null everywhere else.
    pub fn encode(&self, header: &Header, carried: &BTreeMap<usize, Value>) -> Vec<u8> {
        let slot = |kind: Kind, source: usize| carried.get(&source).and_then(|v| kind.avro(v));
        let union = |v: Option<Avro>| match v {
            Some(v) => Avro::Union(1, Box::new(v)),
            None => Avro::Union(0, Box::new(Avro::Null)),
        };
        let mut record = vec![("ChangeEventHeader".to_string(), header.to_avro())];
        for f in &self.fields {
            let value = match &f.shape {
                Shape::Plain { source, kind } => slot(*kind, *source),
                Shape::Compound { parts, .. } => {
                    let any = parts
                        .iter()
                        .any(|p| p.source.is_some_and(|s| carried.contains_key(&s)));
                    any.then(|| {
                        Avro::Record(
                            parts
                                .iter()
                                .map(|p| {
                                    (
                                        p.name.to_string(),
                                        union(p.source.and_then(|s| slot(p.kind, s))),
                                    )
                                })
                                .collect(),
                        )
                    })
                }
            };
            record.push((f.name.clone(), union(value)));
        }
        apache_avro::writer::datum::GenericDatumWriter::builder(&self.avro)
            .build()
            .and_then(|writer| writer.write_value_to_vec(Avro::Record(record)))
            .expect("events are written from their own schema")
    }
}

/// Each object's current event schema, and every schema ever given out by
/// id, so events written before a field was added still decode.
#[derive(Default)]
pub struct Schemas {
    current: HashMap<String, (Arc<ObjectDef>, Arc<EventSchema>)>,
    by_id: HashMap<Arc<str>, Arc<str>>,
}

impl Schemas {
    pub fn current(&mut self, def: &Arc<ObjectDef>) -> Arc<EventSchema> {
        if let Some((seen, schema)) = self.current.get(&def.name) {
            if Arc::ptr_eq(seen, def) {
                return schema.clone();
            }
        }
        let schema = Arc::new(EventSchema::of(def));
        self.by_id.insert(schema.id.clone(), schema.json.clone());
        self.current
            .insert(def.name.clone(), (def.clone(), schema.clone()));
        schema
    }

    pub fn json(&self, id: &str) -> Option<Arc<str>> {
        self.by_id.get(id).cloned()
    }
}

/// A schema id as Salesforce's look: 22 characters of URL-safe base64, here
/// of the first 16 bytes of the schema's SHA-256.
pub(super) fn fingerprint(json: &str) -> String {
    let digest = Sha256::digest(json.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    fn def(name: &str) -> Arc<ObjectDef> {
        Schema::builtin()
            .objects
            .into_iter()
            .find(|o| o.name == name)
            .unwrap()
    }

    fn names(schema: &EventSchema) -> Vec<String> {
        let json: Json = serde_json::from_str(&schema.json).unwrap();
        json["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn fields_follow_salesforce_change_events() {
        let account = EventSchema::of(&def("Account"));
        let fields = names(&account);
        assert_eq!(fields[0], "ChangeEventHeader");
        assert!(fields.contains(&"BillingAddress".into()));
        assert!(fields.contains(&"LastModifiedDate".into()));
        for absent in ["Id", "IsDeleted", "SystemModstamp", "BillingCity"] {
            assert!(!fields.contains(&absent.to_string()), "{absent}");
        }
        let contact = names(&EventSchema::of(&def("Contact")));
        assert!(contact.contains(&"Name".into()));
        assert!(!contact.contains(&"FirstName".into()));
        assert!(!contact.contains(&"Account_Name__c".into()), "formula");
        let invoice = names(&EventSchema::of(&def("Invoice__c")));
        assert!(invoice.contains(&"Delivery_Location__c".into()));
        assert!(!invoice.contains(&"Total__c".into()));
        assert_eq!(account.id.len(), 22);
        assert_eq!(EventSchema::of(&def("Account")).id, account.id, "stable");
    }

    #[test]
    fn compound_components_have_their_own_bits() {
        let d = def("Account");
        let schema = EventSchema::of(&d);
        let city = d.field_index("BillingCity").unwrap();
        let name = d.field_index("Name").unwrap();
        let changed = schema.changed_bits(&BTreeSet::from([city, name]));
        let fields = names(&schema);
        let name_bit = fields.iter().position(|f| f == "Name").unwrap();
        let address_bit = fields.iter().position(|f| f == "BillingAddress").unwrap();
        let mut expected = FieldBits::default();
        expected.set(name_bit);
        expected.set_component(address_bit, 1);
        assert_eq!(changed, expected);
        let nulled = schema.nulled_bits(&BTreeSet::from([city]), |_| true);
        let mut whole = FieldBits::default();
        whole.set(address_bit);
        assert_eq!(nulled, whole);
    }
}
