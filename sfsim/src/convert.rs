//! Converting the values a write gives fields into stored values, with
//! every check that reads only the field's definition. What is left, the
//! references to other records, `Org::finish_inputs` checks: this part can
//! run ahead of the writes, away from the org's records.

use crate::org::{Input, RecordError};
use crate::schema::{FieldDef, FieldType, ObjectDef};
use crate::value::{self, Value};

/// A write's converted values, in the order given, up to the first error.
#[derive(Default)]
pub struct Converted {
    pub values: Vec<(usize, Value)>,
    /// The fields the author may not write, named if nothing else fails.
    read_only: Vec<String>,
    /// The error conversion stopped at; values after it are not converted.
    stopped: Option<RecordError>,
}

impl Converted {
    /// The values, or the write's error once references are checked.
    pub fn result(self) -> Result<Vec<(usize, Value)>, RecordError> {
        if let Some(e) = self.stopped {
            return Err(e);
        }
        if !self.read_only.is_empty() {
            return Err(RecordError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    self.read_only.join(", ")
                ),
                self.read_only,
            ));
        }
        Ok(self.values)
    }
}

/// Converts the values given fields found with `Org::writable_field`, in
/// their order: the Id (refused on create, skipped on update), fields the
/// author cannot write, values of the wrong type or out of the field's
/// range. References are converted but not looked up.
pub fn convert<'a>(
    def: &ObjectDef,
    fields: impl IntoIterator<Item = (usize, Input<'a>)>,
    creating: bool,
) -> Converted {
    let fields = fields.into_iter();
    let (least, most) = fields.size_hint();
    let mut out = Converted {
        values: Vec::with_capacity(most.unwrap_or(least)),
        ..Converted::default()
    };
    for (index, input) in fields {
        let field = &def.fields[index];
        if index == def.system.id {
            if creating {
                out.stopped = Some(RecordError::new(
                    "INVALID_FIELD",
                    "cannot specify Id in an insert call",
                    vec![],
                ));
                break;
            }
            continue;
        }
        if !(if creating {
            field.createable
        } else {
            field.updateable
        }) {
            out.read_only.push(field.name.clone());
            continue;
        }
        match convert_one(field, input) {
            Ok(value) => out.values.push((index, value)),
            Err(e) => {
                out.stopped = Some(e);
                break;
            }
        }
    }
    out
}

fn convert_one(field: &FieldDef, input: Input) -> Result<Value, RecordError> {
    let value = match input {
        Input::Json(json) => value::from_json(field, json)
            .map_err(|e| RecordError::new("JSON_PARSER_ERROR", e.0, vec![]))?,
        Input::Text { text, column } => value::from_text(field, text).map_err(|_| {
            RecordError::new(
                "INVALID_FIELD",
                format!(
                    "Failed to deserialize field at col {column}. Due to, '{text}' is not a valid value for the type {}",
                    value::xsd_type(field)
                ),
                vec![field.name.clone()],
            )
        })?,
        Input::Null => Value::Null,
    };
    check_text(field, &value)?;
    Ok(value)
}

/// A text value's length, email form and restricted picklist values.
fn check_text(field: &FieldDef, value: &Value) -> Result<(), RecordError> {
    let Value::Text(text) = value else {
        return Ok(());
    };
    if field.ftype == FieldType::Reference {
        return Ok(());
    }
    let fields = || vec![field.name.clone()];
    // No more bytes than the length allows means no more characters.
    if field.ftype != FieldType::Base64
        && text.len() > field.length as usize
        && text.chars().count() > field.length as usize
    {
        return Err(RecordError::new(
            "STRING_TOO_LONG",
            format!(
                "{}: data value too large: {text} (max length={})",
                field.label, field.length
            ),
            fields(),
        ));
    }
    if field.ftype == FieldType::Email && !looks_like_email(text) {
        return Err(RecordError::new(
            "INVALID_EMAIL_ADDRESS",
            format!("{}: invalid email address: {text}", field.label),
            fields(),
        ));
    }
    if field.restricted_picklist {
        let values: Vec<&str> = if field.ftype == FieldType::Multipicklist {
            text.split(';').collect()
        } else {
            vec![&**text]
        };
        if let Some(bad) = values
            .iter()
            .find(|v| !field.picklist_values.iter().any(|p| p == *v))
        {
            return Err(RecordError::new(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                format!(
                    "{}: bad value for restricted picklist field: {bad}",
                    field.label
                ),
                fields(),
            ));
        }
    }
    Ok(())
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(' ')
        }
        None => false,
    }
}
