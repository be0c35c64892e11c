//! `ChangeEventHeader`, the first field of every change event: what
//! changed, in which transaction, and the field bitmaps.

use apache_avro::types::Value as Avro;
use serde_json::{json, Value as Json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    Undelete,
    GapCreate,
    GapUpdate,
    GapDelete,
    GapUndelete,
    GapOverflow,
}

/// The enum's symbols, in the schema's order.
const SYMBOLS: [&str; 9] = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
];

impl ChangeType {
    fn index(self) -> usize {
        self as usize
    }

    pub fn symbol(self) -> &'static str {
        SYMBOLS[self.index()]
    }

    /// The gap event standing for a change of this type.
    pub fn gap(self) -> ChangeType {
        match self {
            ChangeType::Create => ChangeType::GapCreate,
            ChangeType::Update => ChangeType::GapUpdate,
            ChangeType::Delete => ChangeType::GapDelete,
            ChangeType::Undelete => ChangeType::GapUndelete,
            gap => gap,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Header {
    pub entity_name: String,
    pub record_ids: Vec<String>,
    pub change_type: ChangeType,
    pub change_origin: String,
    pub transaction_key: String,
    /// Position of the event in its transaction, from 1.
    pub sequence_number: i32,
    /// Epoch milliseconds.
    pub commit_timestamp: i64,
    pub commit_number: i64,
    pub commit_user: String,
    pub nulled_fields: Vec<String>,
    pub diff_fields: Vec<String>,
    pub changed_fields: Vec<String>,
}

/// The header's Avro schema, as the event schema's first field's type.
pub fn schema() -> Json {
    let strings = json!({"type": "array", "items": "string"});
    json!({
        "type": "record",
        "name": "ChangeEventHeader",
        "namespace": "com.salesforce.eventbus",
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": strings},
            {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "symbols": SYMBOLS}},
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": strings},
            {"name": "diffFields", "type": strings},
            {"name": "changedFields", "type": strings},
        ],
    })
}

fn strings(list: &[String]) -> Avro {
    Avro::Array(list.iter().cloned().map(Avro::String).collect())
}

impl Header {
    pub fn to_avro(&self) -> Avro {
        let t = self.change_type;
        Avro::Record(vec![
            ("entityName".into(), Avro::String(self.entity_name.clone())),
            ("recordIds".into(), strings(&self.record_ids)),
            (
                "changeType".into(),
                Avro::Enum(t.index() as u32, t.symbol().into()),
            ),
            (
                "changeOrigin".into(),
                Avro::String(self.change_origin.clone()),
            ),
            (
                "transactionKey".into(),
                Avro::String(self.transaction_key.clone()),
            ),
            ("sequenceNumber".into(), Avro::Int(self.sequence_number)),
            ("commitTimestamp".into(), Avro::Long(self.commit_timestamp)),
            ("commitNumber".into(), Avro::Long(self.commit_number)),
            ("commitUser".into(), Avro::String(self.commit_user.clone())),
            ("nulledFields".into(), strings(&self.nulled_fields)),
            ("diffFields".into(), strings(&self.diff_fields)),
            ("changedFields".into(), strings(&self.changed_fields)),
        ])
    }
}
