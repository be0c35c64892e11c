//! Field values as the simulator stores them, and their JSON wire forms.

use crate::schema::{FieldDef, FieldType};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::Value as Json;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Number(f64),
    Text(Text),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Time(NaiveTime),
    /// Compound fields (address, location), computed when read.
    Compound(Box<Json>),
}

impl Value {
    pub fn text(s: impl Into<Text>) -> Value {
        Value::Text(s.into())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
}

/// Text as a record holds it: up to 22 bytes (ids, names, codes: most of
/// what records hold) inline, without an allocation of their own; longer
/// text boxed.
#[derive(Clone)]
pub enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Boxed(Box<str>),
}

const INLINE: usize = 22;

// Text inline keeps a value as small as a boxed string would.
const _: () = assert!(std::mem::size_of::<Value>() == 24);

impl Text {
    pub fn as_str(&self) -> &str {
        match self {
            // Only whole strings are copied in, so the bytes are UTF-8.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            Text::Boxed(s) => s,
        }
    }

    fn inline(s: &str) -> Option<Text> {
        (s.len() <= INLINE).then(|| {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Text::Inline {
                len: s.len() as u8,
                bytes,
            }
        })
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::inline(s).unwrap_or_else(|| Text::Boxed(s.into()))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Text {
        Text::from(s.as_str())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text::inline(&s).unwrap_or_else(|| Text::Boxed(s.into_boxed_str()))
    }
}

impl From<Box<str>> for Text {
    fn from(s: Box<str>) -> Text {
        Text::inline(&s).unwrap_or(Text::Boxed(s))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        match t {
            Text::Boxed(s) => s.into(),
            inline => inline.as_str().to_string(),
        }
    }
}

pub fn format_datetime(dt: &DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

pub fn format_time(t: &NaiveTime) -> String {
    t.format("%H:%M:%S%.3fZ").to_string()
}

/// The JSON form Salesforce uses in query results and record reads.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Number(n) => serde_json::Number::from_f64(*n)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Text(s) => Json::String(s.to_string()),
        Value::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
        Value::DateTime(dt) => Json::String(format_datetime(dt)),
        Value::Time(t) => Json::String(format_time(t)),
        Value::Compound(j) => (**j).clone(),
    }
}

/// Datetimes as Salesforce accepts them on writes: `yyyy-MM-ddTHH:mm:ss[.SSS]` followed by
/// `Z`, `+HH:MM` or `+HHMM`.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    None
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 10 {
        return None;
    }
    // Plain `yyyy-MM-dd`, as nearly every date is written, read directly;
    // chrono's parser (which also takes signs and spaces) does the rest.
    match s.as_bytes() {
        [y @ .., b'-', m1, m2, b'-', d1, d2]
            if y.iter().chain([m1, m2, d1, d2]).all(u8::is_ascii_digit) =>
        {
            let number = |digits: &[u8]| {
                digits
                    .iter()
                    .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
            };
            NaiveDate::from_ymd_opt(number(y) as i32, number(&[*m1, *m2]), number(&[*d1, *d2]))
        }
        _ => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
    }
}

pub fn parse_time(s: &str) -> Option<NaiveTime> {
    let t = s.strip_suffix('Z').unwrap_or(s);
    NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
        .ok()
        .or_else(|| NaiveTime::parse_from_str(t, "%H:%M").ok())
}

/// Why a JSON value cannot be stored in a field; becomes a `JSON_PARSER_ERROR`.
pub struct ConversionError(pub String);

fn type_error(field: &FieldDef, json: &Json) -> ConversionError {
    let (token, shown) = match json {
        Json::String(s) => ("VALUE_STRING", s.clone()),
        Json::Number(n) => (
            if n.is_f64() {
                "VALUE_NUMBER_FLOAT"
            } else {
                "VALUE_NUMBER_INT"
            },
            n.to_string(),
        ),
        Json::Bool(b) => (if *b { "VALUE_TRUE" } else { "VALUE_FALSE" }, b.to_string()),
        Json::Array(_) => ("START_ARRAY", "[".into()),
        Json::Object(_) => ("START_OBJECT", "{".into()),
        Json::Null => ("VALUE_NULL", "null".into()),
    };
    let target = match field.ftype {
        FieldType::Boolean => "boolean",
        FieldType::Int => "int",
        FieldType::Long => "long",
        FieldType::Double | FieldType::Currency | FieldType::Percent => "double",
        FieldType::Date => "date",
        FieldType::Datetime => "datetime",
        FieldType::Time => "time",
        _ => "string",
    };
    ConversionError(format!(
        "Cannot deserialize instance of {target} from {token} value {shown} or request may be missing a required field"
    ))
}

/// Converts a JSON value from a write request into the field's stored form.
/// Reference ids come back in their canonical 18-character form.
pub fn from_json(field: &FieldDef, json: &Json) -> Result<Value, ConversionError> {
    let err = || type_error(field, json);
    match json {
        Json::Null => Ok(Value::Null),
        Json::String(s) => from_text(field, s).map_err(|()| err()),
        Json::Bool(b) => match field.ftype {
            FieldType::Boolean => Ok(Value::Bool(*b)),
            FieldType::Int
            | FieldType::Long
            | FieldType::Double
            | FieldType::Currency
            | FieldType::Percent
            | FieldType::Date
            | FieldType::Datetime
            | FieldType::Time
            | FieldType::Address
            | FieldType::Location => Err(err()),
            _ => Ok(Value::text(b.to_string())),
        },
        Json::Number(n) => match field.ftype {
            FieldType::Boolean
            | FieldType::Date
            | FieldType::Datetime
            | FieldType::Time
            | FieldType::Address
            | FieldType::Location => Err(err()),
            FieldType::Int
            | FieldType::Long
            | FieldType::Double
            | FieldType::Currency
            | FieldType::Percent => n
                .as_f64()
                .map_or_else(|| Err(err()), |f| number_value(field, f).ok_or_else(err)),
            _ => Ok(Value::text(n.to_string())),
        },
        Json::Array(_) | Json::Object(_) => Err(err()),
    }
}

/// A number in a numeric field: whole for int and long, rounded to the
/// field's scale for the others.
fn number_value(field: &FieldDef, n: f64) -> Option<Value> {
    Some(match field.ftype {
        FieldType::Int | FieldType::Long => {
            if n.fract() != 0.0 {
                return None;
            }
            Value::Int(n as i64)
        }
        _ => {
            let factor = 10f64.powi(field.scale as i32);
            Value::Number(if field.scale > 0 || field.precision > 0 {
                (n * factor).round() / factor
            } else {
                n
            })
        }
    })
}

/// Converts a value written as text (a JSON string, a Bulk CSV cell) into
/// the field's stored form: booleans `true`/`false` in any case, numbers,
/// dates `yyyy-MM-dd`, datetimes in ISO 8601, times, and text as it is
/// (multipicklists as `a;b`).
pub fn from_text(field: &FieldDef, s: &str) -> Result<Value, ()> {
    Ok(match field.ftype {
        FieldType::Boolean if s.eq_ignore_ascii_case("true") => Value::Bool(true),
        FieldType::Boolean if s.eq_ignore_ascii_case("false") => Value::Bool(false),
        FieldType::Boolean => return Err(()),
        FieldType::Int
        | FieldType::Long
        | FieldType::Double
        | FieldType::Currency
        | FieldType::Percent => {
            let n = s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or(())?;
            number_value(field, n).ok_or(())?
        }
        FieldType::Date => Value::Date(parse_date(s).ok_or(())?),
        FieldType::Datetime => Value::DateTime(parse_datetime(s).ok_or(())?),
        FieldType::Time => Value::Time(parse_time(s).ok_or(())?),
        FieldType::Address | FieldType::Location => return Err(()),
        _ => Value::text(s),
    })
}

/// The XML schema type Bulk's CSV errors name for a field.
pub fn xsd_type(field: &FieldDef) -> &'static str {
    match field.ftype {
        FieldType::Boolean => "xsd:boolean",
        FieldType::Int => "xsd:int",
        FieldType::Long => "xsd:long",
        FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
        FieldType::Date => "xsd:date",
        FieldType::Datetime => "xsd:dateTime",
        FieldType::Time => "xsd:time",
        _ => "xsd:string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_use_salesforce_wire_form() {
        let dt = parse_datetime("2024-02-06T20:48:32.5+01:00").unwrap();
        assert_eq!(format_datetime(&dt), "2024-02-06T19:48:32.500+0000");
        assert_eq!(
            parse_datetime("2024-02-06T20:48:32.000+0000"),
            Some(dt - chrono::Duration::milliseconds(500) + chrono::Duration::hours(1))
        );
        assert!(parse_datetime("2024-02-06").is_none());
    }

    #[test]
    fn times_and_dates_parse_strictly() {
        assert_eq!(
            format_time(&parse_time("09:30:00.000Z").unwrap()),
            "09:30:00.000Z"
        );
        assert!(parse_date("2024-2-6").is_none());
        assert!(parse_date("2024-02-30").is_none());
        assert_eq!(
            parse_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        // The plain form reads as chrono reads it.
        for s in [
            "0000-01-01",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "1999-12-31",
            "2024-1-011",
        ] {
            assert_eq!(
                parse_date(s),
                NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
                "{s}"
            );
        }
    }
}
