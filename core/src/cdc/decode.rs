//! One change event's payload to a [`ChangeEvent`]: its header, and the
//! fields it sets under their REST names with REST-shaped values.

use super::bitmap::Marked;
use super::schema::{EventSchema, Field};
use super::{ChangeEvent, ChangeType};
use crate::values::from_avro;
use apache_avro::types::Value as Avro;
use serde_json::{Map, Value as Json};

const HEADER: &str = "ChangeEventHeader";

/// A record's fields by name, unions unwrapped.
struct Record<'a>(&'a [(String, Avro)]);

impl<'a> Record<'a> {
    fn get(&self, name: &str) -> Result<&'a Avro, String> {
        let value = self
            .0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("the event has no {name}"))?;
        Ok(unwrap(value))
    }

    fn string(&self, name: &str) -> Result<String, String> {
        match self.get(name)? {
            Avro::String(s) | Avro::Enum(_, s) => Ok(s.clone()),
            _ => Err(format!("the event's {name} is not text")),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, String> {
        match self.get(name)? {
            Avro::Array(items) => items
                .iter()
                .map(|i| match unwrap(i) {
                    Avro::String(s) => Ok(s.clone()),
                    _ => Err(format!("the event's {name} holds something not text")),
                })
                .collect(),
            _ => Err(format!("the event's {name} is not a list")),
        }
    }

    fn integer(&self, name: &str) -> Result<i64, String> {
        match self.get(name)? {
            Avro::Int(i) => Ok((*i).into()),
            Avro::Long(l) => Ok(*l),
            _ => Err(format!("the event's {name} is not a number")),
        }
    }
}

fn unwrap(value: &Avro) -> &Avro {
    match value {
        Avro::Union(_, inner) => unwrap(inner),
        v => v,
    }
}

/// A compound field's value's components, None when it is null.
fn parts(value: &Avro) -> Option<&[(String, Avro)]> {
    match unwrap(value) {
        Avro::Record(parts) => Some(parts),
        _ => None,
    }
}

/// The fields an event sets, with their values, in schema order.
#[derive(Default)]
struct Set {
    fields: Vec<String>,
    values: Map<String, Json>,
}

impl Set {
    fn put(&mut self, name: &str, value: Option<&Avro>) {
        if self.values.contains_key(name) {
            return;
        }
        self.fields.push(name.to_string());
        self.values
            .insert(name.to_string(), value.map_or(Json::Null, from_avro));
    }

    /// Every field and component with a value: what a create sets.
    fn non_null(schema: &[Field], payload: &[(String, Avro)]) -> Set {
        let mut set = Set::default();
        for (field, (_, value)) in schema.iter().zip(payload).skip(1) {
            match (&field.components, parts(value)) {
                (Some(names), Some(parts)) => {
                    for (name, (_, v)) in names.iter().zip(parts) {
                        if !matches!(unwrap(v), Avro::Null) {
                            set.put(name, Some(v));
                        }
                    }
                }
                (None, _) if !matches!(unwrap(value), Avro::Null) => {
                    set.put(&field.name, Some(value))
                }
                _ => {}
            }
        }
        set
    }

    /// The fields and components the bitmaps mark.
    fn marked(
        schema: &[Field],
        payload: &[(String, Avro)],
        marked: &Marked,
    ) -> Result<Set, String> {
        let beyond = marked
            .fields
            .iter()
            .chain(marked.components.keys())
            .find(|p| **p == 0 || **p >= schema.len());
        if let Some(p) = beyond {
            return Err(format!(
                "a field bitmap marks position {p}, which holds no field"
            ));
        }
        let mut set = Set::default();
        for (position, (field, (_, value))) in schema.iter().zip(payload).enumerate() {
            let whole = marked.fields.contains(&position);
            let some = marked.components.get(&position);
            let Some(names) = &field.components else {
                if whole || some.is_some() {
                    set.put(&field.name, Some(value));
                }
                continue;
            };
            let parts = parts(value);
            let component = |i: usize| parts.and_then(|p| p.get(i)).map(|(_, v)| v);
            for (i, name) in names.iter().enumerate() {
                if whole || some.is_some_and(|s| s.contains(&i)) {
                    set.put(name, component(i));
                }
            }
        }
        Ok(set)
    }
}

/// Decodes one event written with `schema`.
pub fn event(
    schema: &EventSchema,
    payload: &[u8],
    replay_id: Vec<u8>,
) -> Result<ChangeEvent, String> {
    let fields = schema.read(payload)?;
    let header = match Record(&fields).get(HEADER)? {
        Avro::Record(h) => Record(h),
        _ => return Err(format!("the event's {HEADER} is not a record")),
    };
    let symbol = header.string("changeType")?;
    let change_type =
        ChangeType::of(&symbol).ok_or_else(|| format!("unknown changeType {symbol}"))?;
    let set = match change_type {
        ChangeType::Create | ChangeType::Undelete => Set::non_null(schema.fields(), &fields),
        ChangeType::Update => {
            let mut marked = Marked::decode(&header.strings("changedFields")?)?;
            marked.add(&header.strings("nulledFields")?)?;
            Set::marked(schema.fields(), &fields, &marked)?
        }
        _ => Set::default(),
    };
    let millis = header.integer("commitTimestamp")?;
    Ok(ChangeEvent {
        replay_id,
        entity: header.string("entityName")?,
        change_type,
        record_ids: header.strings("recordIds")?,
        commit_timestamp: chrono::DateTime::from_timestamp_millis(millis)
            .ok_or_else(|| format!("commitTimestamp {millis} is out of range"))?,
        transaction_key: header.string("transactionKey")?,
        sequence_number: header.integer("sequenceNumber")?,
        commit_user: header.string("commitUser")?,
        fields: set.fields,
        values: set.values,
    })
}
