//! Records as Salesforce returns them in JSON, serialized straight from the
//! store: `attributes` first, then the selected fields in order, parent
//! lookups as nested objects.

use crate::org::{Org, Record};
use crate::schema::{FieldType, ObjectDef};
use crate::soql::children::child_records;
use crate::soql::plan::Node;
use crate::value::{format_datetime, format_time, Value};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

pub fn record_url(version: &str, object: &str, id: &str) -> String {
    format!("/services/data/v{version}/sobjects/{object}/{id}")
}

struct Wire<'a>(&'a Value);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Number(n) => s.serialize_f64(*n),
            Value::Text(t) => s.serialize_str(t),
            Value::Date(d) => s.collect_str(&d.format("%Y-%m-%d")),
            Value::DateTime(dt) => s.serialize_str(&format_datetime(dt)),
            Value::Time(t) => s.serialize_str(&format_time(t)),
            Value::Compound(j) => j.serialize(s),
        }
    }
}

#[derive(Serialize)]
struct Attributes<'a> {
    #[serde(rename = "type")]
    object: &'a str,
    url: String,
}

/// All fields of an object `visible` lets through, for record reads that name no fields.
pub fn all_fields(def: &ObjectDef, visible: impl Fn(usize) -> bool) -> Vec<Node> {
    def.fields
        .iter()
        .enumerate()
        .filter(|(index, _)| visible(*index))
        .map(|(index, f)| Node::Field {
            name: f.name.clone(),
            index,
        })
        .collect()
}

pub struct RecordView<'a> {
    pub org: &'a Org,
    pub def: &'a ObjectDef,
    pub rec: &'a Record,
    pub nodes: &'a [Node],
    pub version: &'a str,
    /// Set below a polymorphic lookup, where fields are found by name.
    pub by_name: bool,
    /// A field whose value is replaced by this raw JSON (the bad_value fault).
    pub planted: Option<(usize, &'a serde_json::Value)>,
}

impl Serialize for RecordView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        let id = self.rec.id();
        map.serialize_entry(
            "attributes",
            &Attributes {
                object: &self.def.name,
                url: record_url(self.version, &self.def.name, id),
            },
        )?;
        for node in self.nodes {
            match node {
                Node::Field { name, index } => {
                    let index = if self.by_name {
                        self.def.field_index(name)
                    } else {
                        Some(*index)
                    };
                    let Some(index) = index else {
                        map.serialize_entry(name, &())?;
                        continue;
                    };
                    let field = &self.def.fields[index];
                    if let Some((_, raw)) = self.planted.filter(|(i, _)| *i == index) {
                        map.serialize_entry(&field.name, raw)?;
                        continue;
                    }
                    let value = self.org.read(self.def, self.rec, index);
                    if field.ftype == FieldType::Base64 && !value.is_null() {
                        map.serialize_entry(
                            &field.name,
                            &format!(
                                "{}/{}",
                                record_url(self.version, &self.def.name, id),
                                field.name
                            ),
                        )?;
                    } else {
                        map.serialize_entry(&field.name, &Wire(&value))?;
                    }
                }
                Node::Parent {
                    relationship,
                    reference,
                    object,
                    children,
                } => {
                    let parent = self
                        .rec
                        .get(*reference)
                        .as_str()
                        .and_then(|pid| self.org.record_by_id(pid));
                    match parent {
                        Some((parent_object, parent)) => {
                            let def = self.org.def(parent_object);
                            let view = RecordView {
                                org: self.org,
                                def,
                                rec: parent,
                                nodes: children,
                                version: self.version,
                                by_name: self.by_name || parent_object != *object,
                                planted: None,
                            };
                            map.serialize_entry(relationship, &view)?;
                        }
                        None => map.serialize_entry(relationship, &())?,
                    }
                }
                Node::Children(child) => {
                    let rows = child_records(self.org, child, id);
                    if rows.is_empty() {
                        map.serialize_entry(&child.relationship, &())?;
                        continue;
                    }
                    let result = ChildResult {
                        total_size: rows.len(),
                        done: true,
                        records: RecordList {
                            org: self.org,
                            def: self.org.def(child.object),
                            records: &rows,
                            nodes: &child.nodes,
                            version: self.version,
                            planted: None,
                        },
                    };
                    map.serialize_entry(&child.relationship, &result)?;
                }
            }
        }
        map.end()
    }
}

/// A subquery's answer inside its parent record: all children in one batch.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChildResult<'a> {
    total_size: usize,
    done: bool,
    records: RecordList<'a>,
}

/// A slice of records serialized as a JSON array, without building JSON values.
pub struct RecordList<'a> {
    pub org: &'a Org,
    pub def: &'a ObjectDef,
    pub records: &'a [std::sync::Arc<Record>],
    pub nodes: &'a [Node],
    pub version: &'a str,
    pub planted: Option<(usize, &'a serde_json::Value)>,
}

impl Serialize for RecordList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.records.len()))?;
        for rec in self.records {
            seq.serialize_element(&RecordView {
                org: self.org,
                def: self.def,
                rec,
                nodes: self.nodes,
                version: self.version,
                by_name: false,
                planted: self.planted,
            })?;
        }
        seq.end()
    }
}
