//! A platform event as JSON (custom field name → value) to Avro binary, with
//! the schema GetSchema gave for its topic: Salesforce's platform event
//! schemas are a record of `CreatedDate` (long, epoch milliseconds) and
//! `CreatedById` (string), both required, then each custom field as
//! `["null", T]`. The publisher fills `CreatedDate` with the time of
//! publishing and `CreatedById` with the publishing user's id, as
//! Salesforce's own clients do, unless the JSON gives them.

use apache_avro::types::Value as Avro;
use serde_json::{Map, Value as Json};

/// Why an event could not be encoded, naming the field at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeError {
    pub field: Option<String>,
    pub message: String,
}

fn fail(field: &str, message: impl Into<String>) -> EncodeError {
    EncodeError {
        field: Some(field.to_string()),
        message: format!("{field}: {}", message.into()),
    }
}

/// A parsed event schema: the Avro schema and its fields' names and types.
pub struct EventSchema {
    avro: apache_avro::Schema,
    /// Each field's name and Avro type (a union's non-null branch), and
    /// whether it may be null.
    fields: Vec<(String, String, bool)>,
}

impl EventSchema {
    pub fn parse(json: &str) -> Result<EventSchema, String> {
        let avro =
            apache_avro::Schema::parse_str(json).map_err(|e| format!("event schema: {e}"))?;
        let parsed: Json = serde_json::from_str(json).map_err(|e| format!("event schema: {e}"))?;
        let fields = parsed["fields"]
            .as_array()
            .ok_or("event schema: not a record")?
            .iter()
            .map(|f| {
                let name = f["name"].as_str().unwrap_or_default().to_string();
                let (kind, nullable) = match &f["type"] {
                    Json::Array(branches) => {
                        let kind = branches
                            .iter()
                            .find(|b| *b != "null")
                            .map(type_name)
                            .unwrap_or_default();
                        (kind, branches.iter().any(|b| b == "null"))
                    }
                    t => (type_name(t), false),
                };
                (name, kind, nullable)
            })
            .collect();
        Ok(EventSchema { avro, fields })
    }

    /// The event in Avro binary. `created_ms` and `user_id` fill
    /// `CreatedDate` and `CreatedById` unless `event` gives them.
    pub fn encode(
        &self,
        event: &Map<String, Json>,
        created_ms: i64,
        user_id: &str,
    ) -> Result<Vec<u8>, EncodeError> {
        for key in event.keys() {
            if !self
                .fields
                .iter()
                .any(|(n, ..)| n.eq_ignore_ascii_case(key))
            {
                return Err(fail(key, "the event has no such field"));
            }
        }
        let mut record = Vec::with_capacity(self.fields.len());
        for (name, kind, nullable) in &self.fields {
            let given = event
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
                .filter(|v| !v.is_null());
            let value = match (name.as_str(), given) {
                ("CreatedDate", None) => Some(Avro::Long(created_ms)),
                ("CreatedById", None) => Some(Avro::String(user_id.to_string())),
                (_, None) => None,
                (_, Some(v)) => Some(value(name, kind, v)?),
            };
            record.push((
                name.clone(),
                match (value, nullable) {
                    (Some(v), true) => Avro::Union(1, Box::new(v)),
                    (Some(v), false) => v,
                    (None, true) => Avro::Union(0, Box::new(Avro::Null)),
                    (None, false) => return Err(fail(name, "a value is required")),
                },
            ));
        }
        apache_avro::writer::datum::GenericDatumWriter::builder(&self.avro)
            .build()
            .and_then(|w| w.write_value_to_vec(Avro::Record(record)))
            .map_err(|e| EncodeError {
                field: None,
                message: format!("the event does not fit its schema: {e}"),
            })
    }

    /// A payload as JSON: custom fields by name, CreatedDate as an ISO
    /// datetime, nulls for fields not set.
    pub fn decode(&self, payload: &[u8]) -> Result<Map<String, Json>, String> {
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&self.avro)
            .build()
            .and_then(|r| r.read_value(&mut &payload[..]))
            .map_err(|e| format!("event payload: {e}"))?;
        let Avro::Record(fields) = value else {
            return Err("event payload: not a record".into());
        };
        let mut out = Map::new();
        for (name, v) in fields {
            let v = match v {
                Avro::Union(_, inner) => *inner,
                v => v,
            };
            let json = match (name.as_str(), v) {
                ("CreatedDate", Avro::Long(ms)) => chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| Json::String(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()))
                    .unwrap_or(Json::Null),
                (_, Avro::Null) => Json::Null,
                (_, Avro::String(s)) => Json::String(s),
                (_, Avro::Boolean(b)) => Json::Bool(b),
                (_, Avro::Int(i)) => i.into(),
                (_, Avro::Long(l)) => l.into(),
                (_, Avro::Double(d)) => {
                    serde_json::Number::from_f64(d).map_or(Json::Null, Json::Number)
                }
                (_, Avro::Float(f)) => {
                    serde_json::Number::from_f64(f.into()).map_or(Json::Null, Json::Number)
                }
                (_, other) => Json::String(format!("{other:?}")),
            };
            out.insert(name, json);
        }
        Ok(out)
    }
}

fn type_name(t: &Json) -> String {
    match t {
        Json::String(s) => s.clone(),
        Json::Object(o) => o
            .get("type")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

/// One JSON value as the field's Avro type.
fn value(name: &str, kind: &str, v: &Json) -> Result<Avro, EncodeError> {
    let wrong = || fail(name, format!("expected {kind}, got {v}"));
    Ok(match (kind, v) {
        ("string", Json::String(s)) => Avro::String(s.clone()),
        ("string", Json::Number(n)) => Avro::String(n.to_string()),
        ("string", Json::Bool(b)) => Avro::String(b.to_string()),
        ("double", Json::Number(n)) => Avro::Double(n.as_f64().ok_or_else(wrong)?),
        ("double", Json::String(s)) => Avro::Double(s.trim().parse().map_err(|_| wrong())?),
        ("float", Json::Number(n)) => Avro::Float(n.as_f64().ok_or_else(wrong)? as f32),
        ("long", Json::Number(n)) => Avro::Long(n.as_i64().ok_or_else(wrong)?),
        ("long", Json::String(s)) => Avro::Long(
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .or_else(|_| s.trim().parse())
                .map_err(|_| wrong())?,
        ),
        ("int", Json::Number(n)) => Avro::Int(
            n.as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(wrong)?,
        ),
        ("boolean", Json::Bool(b)) => Avro::Boolean(*b),
        _ => return Err(wrong()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"{"type": "record", "name": "Signup__e", "namespace": "com.sforce.eventbus", "fields": [
        {"name": "CreatedDate", "type": "long"}, {"name": "CreatedById", "type": "string"},
        {"name": "Email__c", "type": ["null", "string"], "default": null},
        {"name": "Seats__c", "type": ["null", "double"], "default": null},
        {"name": "Paid__c", "type": ["null", "boolean"], "default": null}]}"#;

    fn event(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn events_round_trip_with_system_fields_filled() {
        let schema = EventSchema::parse(SCHEMA).unwrap();
        let payload = schema
            .encode(
                &event(json!({"email__c": "a@b.example", "Seats__c": 3})),
                1_700_000_000_000,
                "005X",
            )
            .unwrap();
        let back = schema.decode(&payload).unwrap();
        assert_eq!(back["Email__c"], "a@b.example");
        assert_eq!(back["Seats__c"], 3.0);
        assert_eq!(back["Paid__c"], Json::Null);
        assert_eq!(back["CreatedById"], "005X");
        assert_eq!(back["CreatedDate"], "2023-11-14T22:13:20.000Z");
        let given = schema
            .encode(
                &event(json!({"CreatedById": "005Y", "Seats__c": "2.5"})),
                0,
                "005X",
            )
            .unwrap();
        assert_eq!(schema.decode(&given).unwrap()["CreatedById"], "005Y");
        assert_eq!(schema.decode(&given).unwrap()["Seats__c"], 2.5);
    }

    #[test]
    fn errors_name_the_field() {
        let schema = EventSchema::parse(SCHEMA).unwrap();
        let unknown = schema
            .encode(&event(json!({"Nope__c": 1})), 0, "u")
            .unwrap_err();
        assert_eq!(unknown.field.as_deref(), Some("Nope__c"));
        let wrong = schema
            .encode(&event(json!({"Seats__c": true})), 0, "u")
            .unwrap_err();
        assert_eq!(wrong.field.as_deref(), Some("Seats__c"));
        assert!(
            wrong.message.contains("expected double"),
            "{}",
            wrong.message
        );
        let wrong = schema
            .encode(&event(json!({"Paid__c": "yes"})), 0, "u")
            .unwrap_err();
        assert_eq!(wrong.field.as_deref(), Some("Paid__c"));
    }
}
