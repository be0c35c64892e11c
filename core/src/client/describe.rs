//! Describe results: what objects the org has and what their fields allow.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize)]
pub struct GlobalDescribe {
    pub sobjects: Vec<ObjectSummary>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ObjectSummary {
    pub name: String,
    #[serde(default)]
    pub queryable: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ObjectDescribe {
    pub name: String,
    pub fields: Vec<FieldDescribe>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    #[serde(default)]
    pub filterable: bool,
    #[serde(default)]
    pub sortable: bool,
    /// A formula: its value is computed when read, and can change without
    /// the record's SystemModstamp moving.
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub groupable: bool,
    #[serde(default)]
    pub aggregatable: bool,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub nillable: bool,
    #[serde(default)]
    pub external_id: bool,
    /// For a component of an address or location field, that field's name.
    #[serde(default)]
    pub compound_field_name: Option<String>,
    /// For a reference, the objects it may point to.
    #[serde(default)]
    pub reference_to: Vec<String>,
    /// For a reference, the name that reaches its parent in SOQL (`Account`).
    #[serde(default)]
    pub relationship_name: Option<String>,
}

impl ObjectDescribe {
    /// A field by API name, ignoring case as Salesforce does.
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

impl FieldDescribe {
    /// A filterable, sortable, writable field of a type, as tests need.
    pub fn of_type(name: &str, field_type: &str) -> FieldDescribe {
        FieldDescribe {
            name: name.into(),
            field_type: field_type.into(),
            filterable: true,
            sortable: true,
            calculated: false,
            groupable: true,
            aggregatable: true,
            createable: true,
            updateable: true,
            nillable: true,
            external_id: false,
            compound_field_name: None,
            reference_to: vec![],
            relationship_name: None,
        }
    }
}
