//! A platform event's Avro schema, as Salesforce generates it: a record
//! named after the event in namespace `com.sforce.eventbus`, with
//! `CreatedDate` (long, epoch milliseconds) and `CreatedById` (string), both
//! required, then each custom field as `["null", T]` with default null, a
//! `doc` naming its Salesforce type. ReplayId and EventUuid are not in the
//! payload: they travel beside it (the consumer event's replay id and id).
//!
//! Payloads are checked against the schema, and `CreatedDate` and
//! `CreatedById` are set by the publishing side (publish time and user).

use super::avro::fingerprint;
use crate::event_defs::EventDef;
use crate::schema::{FieldDef, FieldType};
use apache_avro::types::Value as Avro;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value as Json};
use std::sync::Arc;

/// A custom field's Avro type.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    String,
    Double,
    Boolean,
    /// Epoch milliseconds: datetimes, and dates at midnight UTC.
    Long,
}

impl Kind {
    fn of(f: &FieldDef) -> Kind {
        match f.ftype {
            FieldType::Boolean => Kind::Boolean,
            FieldType::Datetime | FieldType::Date => Kind::Long,
            t if t.is_numeric() => Kind::Double,
            _ => Kind::String,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Double => "double",
            Kind::Boolean => "boolean",
            Kind::Long => "long",
        }
    }

    /// Salesforce's `doc` for a custom field of this type.
    fn doc(f: &FieldDef) -> String {
        match f.ftype {
            FieldType::Boolean => "Data:Boolean".into(),
            FieldType::Datetime => "Data:DateTime".into(),
            FieldType::Date => "Data:DateOnly".into(),
            t if t.is_numeric() => "Data:Double".into(),
            FieldType::Textarea if f.length > 255 => {
                format!("Data:LongTextArea:MaxLength:{}", f.length)
            }
            _ => format!("Data:Text:MaxLength:{}", f.length),
        }
    }
}

pub struct PlatformSchema {
    pub id: Arc<str>,
    pub json: Arc<str>,
    avro: apache_avro::Schema,
    pub event: Arc<EventDef>,
    /// The custom fields, in schema order after CreatedDate and CreatedById.
    fields: Vec<(String, Kind, u32)>,
}

const CREATED_DATE: &str = "CreatedDate";
const CREATED_BY_ID: &str = "CreatedById";

/// Why a payload or a JSON body is refused, naming the field at fault.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    /// The REST error code a create of the event would answer.
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

fn refusal(message: impl Into<String>, field: Option<&str>) -> Refusal {
    coded("INVALID_FIELD", message, field)
}

fn coded(code: &'static str, message: impl Into<String>, field: Option<&str>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        field: field.map(str::to_string),
    }
}

impl PlatformSchema {
    pub fn of(event: Arc<EventDef>) -> PlatformSchema {
        let mut schema_fields = vec![
            json!({"name": CREATED_DATE, "type": "long", "doc": "CreatedDate:DateTime"}),
            json!({"name": CREATED_BY_ID, "type": "string", "doc": "CreatedBy:EntityId"}),
        ];
        let mut fields = Vec::new();
        for f in event.custom_fields() {
            let kind = Kind::of(f);
            schema_fields.push(json!({
                "name": f.name,
                "type": ["null", kind.name()],
                "doc": Kind::doc(f),
                "default": null,
            }));
            let limit = if kind == Kind::String { f.length } else { 0 };
            fields.push((f.name.clone(), kind, limit));
        }
        let json = json!({
            "type": "record",
            "name": event.name,
            "namespace": "com.sforce.eventbus",
            "fields": schema_fields,
        })
        .to_string();
        let avro = apache_avro::Schema::parse_str(&json).expect("generated schemas are valid Avro");
        PlatformSchema {
            id: fingerprint(&json).into(),
            json: json.into(),
            avro,
            event,
            fields,
        }
    }

    fn write(&self, record: Vec<(String, Avro)>) -> Vec<u8> {
        apache_avro::writer::datum::GenericDatumWriter::builder(&self.avro)
            .build()
            .and_then(|writer| writer.write_value_to_vec(Avro::Record(record)))
            .expect("payloads are written from their own schema")
    }

    /// A publisher's payload, checked against the schema, with CreatedDate
    /// and CreatedById set to the publish time and the publishing user.
    pub fn stamp(
        &self,
        payload: &[u8],
        created: DateTime<Utc>,
        user: &str,
    ) -> Result<Vec<u8>, Refusal> {
        let mut rest = payload;
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&self.avro)
            .build()
            .and_then(|reader| reader.read_value(&mut rest))
            .map_err(|e| {
                refusal(
                    format!(
                        "The event payload can't be read with schema {}: {e}",
                        self.id
                    ),
                    None,
                )
            })?;
        if !rest.is_empty() {
            return Err(refusal(
                format!(
                    "The event payload can't be read with schema {}: {} bytes are left over",
                    self.id,
                    rest.len()
                ),
                None,
            ));
        }
        let Avro::Record(mut record) = value else {
            return Err(refusal("The event payload is not a record", None));
        };
        for (name, value) in record.iter_mut() {
            if let Some((_, Kind::String, limit)) = self.fields.iter().find(|(n, ..)| n == name) {
                if let Avro::Union(_, inner) = value {
                    if let Avro::String(s) = inner.as_ref() {
                        check_length(name, s, *limit)?;
                    }
                }
            }
        }
        self.set_system(&mut record, created, user);
        Ok(self.write(record))
    }

    fn set_system(&self, record: &mut [(String, Avro)], created: DateTime<Utc>, user: &str) {
        for (name, value) in record.iter_mut() {
            match name.as_str() {
                CREATED_DATE => *value = Avro::Long(created.timestamp_millis()),
                CREATED_BY_ID => *value = Avro::String(user.to_string()),
                _ => {}
            }
        }
    }

    /// A payload from a JSON body, as a REST create or a Flow builds the
    /// event: custom fields by name (ignoring case), values of their type.
    pub fn from_json(
        &self,
        body: &Map<String, Json>,
        created: DateTime<Utc>,
        user: &str,
    ) -> Result<Vec<u8>, Refusal> {
        for key in body.keys() {
            if key == "attributes" {
                continue;
            }
            let known = self
                .fields
                .iter()
                .any(|(n, ..)| n.eq_ignore_ascii_case(key));
            if !known {
                let standard = crate::event_defs::STANDARD_FIELDS
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(key));
                return Err(if standard {
                    coded(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        format!("Unable to create/update fields: {key}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."),
                        Some(key),
                    )
                } else {
                    refusal(
                        format!(
                            "No such column '{key}' on sobject of type {}",
                            self.event.name
                        ),
                        Some(key),
                    )
                });
            }
        }
        let mut record = vec![
            (CREATED_DATE.to_string(), Avro::Long(0)),
            (CREATED_BY_ID.to_string(), Avro::String(String::new())),
        ];
        for (name, kind, limit) in &self.fields {
            let value = body
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
                .unwrap_or(&Json::Null);
            let avro = json_value(name, *kind, *limit, value)?;
            record.push((
                name.clone(),
                match avro {
                    None => Avro::Union(0, Box::new(Avro::Null)),
                    Some(v) => Avro::Union(1, Box::new(v)),
                },
            ));
        }
        self.set_system(&mut record, created, user);
        Ok(self.write(record))
    }

    /// A stored payload as JSON, for the control API: CreatedDate as an
    /// ISO datetime, every custom field (null when unset).
    pub fn to_json(&self, payload: &[u8]) -> Json {
        let Ok(Avro::Record(record)) =
            apache_avro::reader::datum::GenericDatumReader::builder(&self.avro)
                .build()
                .and_then(|reader| reader.read_value(&mut &payload[..]))
        else {
            return Json::Null;
        };
        let mut out = Map::new();
        for (name, value) in record {
            let value = match value {
                Avro::Union(_, inner) => *inner,
                v => v,
            };
            let json = match (name.as_str(), value) {
                (CREATED_DATE, Avro::Long(ms)) => DateTime::from_timestamp_millis(ms)
                    .map_or(Json::Null, |t| json!(crate::value::format_datetime(&t))),
                (_, Avro::String(s)) => json!(s),
                (_, Avro::Double(d)) => json!(d),
                (_, Avro::Boolean(b)) => json!(b),
                (_, Avro::Long(l)) => json!(l),
                _ => Json::Null,
            };
            out.insert(name, json);
        }
        Json::Object(out)
    }
}

fn check_length(name: &str, s: &str, limit: u32) -> Result<(), Refusal> {
    if limit > 0 && s.chars().count() > limit as usize {
        return Err(coded(
            "STRING_TOO_LONG",
            format!("{name}: data value too large: max length={limit}"),
            Some(name),
        ));
    }
    Ok(())
}

/// A JSON value as a custom field's Avro value; None for null.
fn json_value(name: &str, kind: Kind, limit: u32, v: &Json) -> Result<Option<Avro>, Refusal> {
    let wrong = || {
        coded(
            "JSON_PARSER_ERROR",
            format!("{name}: value not of required type: {v}"),
            Some(name),
        )
    };
    Ok(Some(match (kind, v) {
        (_, Json::Null) => return Ok(None),
        (Kind::String, Json::String(s)) => {
            check_length(name, s, limit)?;
            Avro::String(s.clone())
        }
        (Kind::Double, Json::Number(n)) => Avro::Double(n.as_f64().ok_or_else(wrong)?),
        (Kind::Double, Json::String(s)) => Avro::Double(s.trim().parse().map_err(|_| wrong())?),
        (Kind::Boolean, Json::Bool(b)) => Avro::Boolean(*b),
        (Kind::Long, Json::String(s)) => {
            let ms = crate::value::parse_datetime(s)
                .map(|t| t.timestamp_millis())
                .or_else(|| {
                    NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc().timestamp_millis())
                })
                .ok_or_else(wrong)?;
            Avro::Long(ms)
        }
        _ => return Err(wrong()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    fn signup() -> PlatformSchema {
        PlatformSchema::of(Schema::builtin().events[0].clone())
    }

    #[test]
    fn the_schema_is_salesforces_shape() {
        let schema = signup();
        let json: Json = serde_json::from_str(&schema.json).unwrap();
        assert_eq!(json["name"], "Signup__e");
        assert_eq!(json["namespace"], "com.sforce.eventbus");
        let fields = json["fields"].as_array().unwrap();
        assert_eq!(fields[0]["name"], "CreatedDate");
        assert_eq!(fields[0]["type"], "long");
        assert_eq!(fields[1]["name"], "CreatedById");
        assert_eq!(fields[1]["type"], "string");
        assert_eq!(fields[2]["name"], "Email__c");
        assert_eq!(fields[2]["type"], json!(["null", "string"]));
        assert_eq!(fields[4]["name"], "Seats__c");
        assert_eq!(fields[4]["type"], json!(["null", "double"]));
        assert_eq!(schema.id.len(), 22);
    }

    #[test]
    fn json_bodies_become_stamped_payloads() {
        let schema = signup();
        let now = Utc::now();
        let body = json!({"email__c": "a@b.example", "Seats__c": 3})
            .as_object()
            .unwrap()
            .clone();
        let payload = schema.from_json(&body, now, "005000000000001AAA").unwrap();
        let back = schema.to_json(&payload);
        assert_eq!(back["Email__c"], "a@b.example");
        assert_eq!(back["Seats__c"], 3.0);
        assert_eq!(back["User_Id__c"], Json::Null);
        assert_eq!(back["CreatedById"], "005000000000001AAA");
        let restamped = schema.stamp(&payload, now, "005OTHER").unwrap();
        assert_eq!(schema.to_json(&restamped)["CreatedById"], "005OTHER");
        let bad = json!({"Nope__c": 1}).as_object().unwrap().clone();
        assert_eq!(
            schema
                .from_json(&bad, now, "u")
                .unwrap_err()
                .field
                .as_deref(),
            Some("Nope__c")
        );
        let wrong = json!({"Seats__c": true}).as_object().unwrap().clone();
        assert!(schema.from_json(&wrong, now, "u").is_err());
        let long = json!({"User_Id__c": "x".repeat(65)})
            .as_object()
            .unwrap()
            .clone();
        assert!(schema.from_json(&long, now, "u").is_err());
        assert!(schema.stamp(b"\x01\x02garbage", now, "u").is_err());
        let mut trailing = payload.clone();
        trailing.push(0);
        assert!(schema.stamp(&trailing, now, "u").is_err());
    }
}
