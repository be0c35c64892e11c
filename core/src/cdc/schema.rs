//! A change event's Avro schema, as GetSchema gives it: the parsed schema
//! to read payloads with, and each field's REST name. Compound fields are
//! nested records (an address, a geolocation, a person's `Name`); their
//! components take the names describe gives them, the ones whose
//! `compoundFieldName` is the compound field.

use apache_avro::types::Value as Avro;
use serde_json::Value as Json;
use std::collections::HashMap;

pub struct EventSchema {
    avro: apache_avro::Schema,
    /// By position in the schema; position 0 is the ChangeEventHeader.
    fields: Vec<Field>,
}

pub struct Field {
    pub name: String,
    /// A compound field's components' REST names, in its record's order.
    pub components: Option<Vec<String>>,
}

/// A compound field's component as describe names it: `BillingAddress`'s
/// `City` is `BillingCity` (a plain `Address` gives `City`), a custom
/// geolocation `Place__c`'s `Latitude` is `Place__Latitude__s`, and a
/// person's `Name`'s `FirstName` is `FirstName`.
pub fn component_name(field: &str, part: &str) -> String {
    match field.strip_suffix("__c") {
        Some(stem) => format!("{stem}__{part}__s"),
        None if field == "Name" => part.to_string(),
        None => format!("{}{part}", field.strip_suffix("Address").unwrap_or(field)),
    }
}

/// A record type's name without its namespace, as references may omit it.
fn short(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn field_names(record: &Json) -> Vec<String> {
    record["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .collect()
}

impl EventSchema {
    pub fn parse(json: &str) -> Result<EventSchema, String> {
        let avro =
            apache_avro::Schema::parse_str(json).map_err(|e| format!("event schema: {e}"))?;
        let tree: Json = serde_json::from_str(json).map_err(|e| format!("event schema: {e}"))?;
        // Record types by name: a compound type is defined at its first use
        // and named by later ones.
        let mut records: HashMap<String, Vec<String>> = HashMap::new();
        let mut fields = Vec::new();
        for f in tree["fields"].as_array().into_iter().flatten() {
            let name = f["name"]
                .as_str()
                .ok_or("event schema: a field without a name")?;
            let branches = match &f["type"] {
                Json::Array(branches) => branches.iter().collect(),
                single => vec![single],
            };
            let mut components = None;
            for t in branches {
                let parts = match t {
                    Json::Object(_) if t["type"] == "record" => {
                        let parts = field_names(t);
                        let record = t["name"].as_str().unwrap_or_default();
                        records.insert(short(record).to_string(), parts.clone());
                        Some(parts)
                    }
                    Json::String(named) => records.get(short(named)).cloned(),
                    _ => None,
                };
                if let Some(parts) = parts {
                    components = Some(parts.iter().map(|p| component_name(name, p)).collect());
                }
            }
            fields.push(Field {
                name: name.to_string(),
                components,
            });
        }
        Ok(EventSchema { avro, fields })
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// A payload's fields, in schema order.
    pub fn read(&self, payload: &[u8]) -> Result<Vec<(String, Avro)>, String> {
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&self.avro)
            .build()
            .and_then(|reader| reader.read_value(&mut &payload[..]))
            .map_err(|e| format!("event payload: {e}"))?;
        match value {
            Avro::Record(fields) if fields.len() == self.fields.len() => Ok(fields),
            _ => Err("event payload: not a record of its schema".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_take_their_describe_names() {
        assert_eq!(component_name("BillingAddress", "City"), "BillingCity");
        assert_eq!(component_name("Address", "PostalCode"), "PostalCode");
        assert_eq!(
            component_name("Delivery_Location__c", "Latitude"),
            "Delivery_Location__Latitude__s"
        );
        assert_eq!(component_name("Name", "FirstName"), "FirstName");
    }

    #[test]
    fn compound_fields_are_found_where_defined_and_where_named() {
        let json = serde_json::json!({
            "type": "record", "name": "ContactChangeEvent", "namespace": "com.sforce.eventbus",
            "fields": [
                {"name": "ChangeEventHeader", "type": {"type": "record", "name": "ChangeEventHeader", "fields": []}},
                {"name": "Name", "type": ["null", {"type": "record", "name": "Name", "fields": [
                    {"name": "FirstName", "type": ["null", "string"], "default": null},
                    {"name": "LastName", "type": ["null", "string"], "default": null}]}], "default": null},
                {"name": "MailingAddress", "type": ["null", {"type": "record", "name": "Address", "fields": [
                    {"name": "Street", "type": ["null", "string"], "default": null}]}], "default": null},
                {"name": "OtherAddress", "type": ["null", "com.sforce.eventbus.Address"], "default": null},
                {"name": "Email", "type": ["null", "string"], "default": null},
            ],
        });
        let schema = EventSchema::parse(&json.to_string()).unwrap();
        let shown: Vec<(&str, Option<Vec<String>>)> = schema
            .fields()
            .iter()
            .skip(1)
            .map(|f| (f.name.as_str(), f.components.clone()))
            .collect();
        let names = |n: &[&str]| Some(n.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            shown,
            [
                ("Name", names(&["FirstName", "LastName"])),
                ("MailingAddress", names(&["MailingStreet"])),
                ("OtherAddress", names(&["OtherStreet"])),
                ("Email", None),
            ]
        );
        assert!(EventSchema::parse("{").is_err());
        assert!(schema.read(&[0x08]).is_err(), "union branch 4 of 2");
    }
}
