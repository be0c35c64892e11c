//! Salesforce values in PostgreSQL's text forms, both ways: a value from an
//! answer as the text a column type's input function reads, and a value
//! bound for a write as the JSON Salesforce takes. Pure: the datum side is
//! the extension's `values` module, the only caller.

use crate::client::session::parse_datetime;
use crate::soql::Literal;
use crate::typemap::{pg_type, PgType};
use chrono::{NaiveDate, NaiveTime};
use serde_json::Value as Json;

/// The families of column types, as far as conversion cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgKind {
    Text,
    Bool,
    Integer,
    Float,
    Numeric,
    Date,
    Timestamp,
    Time,
    TextArray,
    Json,
}

impl PgKind {
    fn noun(self) -> &'static str {
        match self {
            PgKind::Text => "text",
            PgKind::Bool => "a boolean",
            PgKind::Integer => "an integer",
            PgKind::Float | PgKind::Numeric => "a number",
            PgKind::Date => "a date",
            PgKind::Timestamp => "a timestamp",
            PgKind::Time => "a time",
            PgKind::TextArray => "an array",
            PgKind::Json => "JSON",
        }
    }

    /// Whether a column of this kind can hold a field's values at all.
    /// Text and JSON hold anything; numbers convert among themselves.
    pub fn can_hold(self, salesforce_type: &str) -> bool {
        let field = pg_type(salesforce_type);
        match self {
            PgKind::Text | PgKind::Json => true,
            PgKind::Bool => field == PgType::Boolean,
            PgKind::Integer | PgKind::Float | PgKind::Numeric => matches!(
                field,
                PgType::Integer | PgType::Bigint | PgType::DoublePrecision | PgType::Numeric
            ),
            PgKind::Date => field == PgType::Date,
            PgKind::Timestamp => matches!(field, PgType::Timestamptz | PgType::Date),
            PgKind::Time => field == PgType::Time,
            PgKind::TextArray => field == PgType::TextArray,
        }
    }
}

/// What a JSON value is, for messages.
pub fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn number_text(v: &Json, integer: bool) -> Option<String> {
    match v {
        Json::Number(n) if integer => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(i.to_string()),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some((f as i64).to_string()),
            _ => None,
        },
        Json::Number(n) => Some(n.to_string()),
        Json::String(s) if crate::soql::literal::is_decimal(s) => Some(s.clone()),
        _ => None,
    }
}

/// `2024-02-06T20:48:32.000+0000` (or RFC 3339) → `2024-02-06 20:48:32.000+00:00`.
fn timestamp_text(s: &str) -> Option<String> {
    let t = parse_datetime(s).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    })?;
    Some(t.format("%Y-%m-%d %H:%M:%S%.3f+00:00").to_string())
}

/// `a;b` (a multipicklist) → `{"a","b"}`.
fn array_text<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = items
        .map(|i| format!("\"{}\"", i.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// The input text for a value, None for SQL NULL, or why it cannot be read.
pub fn to_pg_text(v: &Json, kind: PgKind) -> Result<Option<String>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let mismatch = || {
        let shown: String = v.to_string().chars().take(60).collect();
        format!("a {} value {shown} is not {}", json_type(v), kind.noun())
    };
    let text = match kind {
        PgKind::Text => match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        },
        PgKind::Json => v.to_string(),
        PgKind::Bool => match v {
            Json::Bool(b) => b.to_string(),
            Json::String(s) if s == "true" || s == "false" => s.clone(),
            _ => return Err(mismatch()),
        },
        PgKind::Integer => number_text(v, true).ok_or_else(mismatch)?,
        PgKind::Float | PgKind::Numeric => number_text(v, false).ok_or_else(mismatch)?,
        PgKind::Date => v
            .as_str()
            .filter(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok())
            .ok_or_else(mismatch)?
            .to_string(),
        PgKind::Timestamp => v.as_str().and_then(timestamp_text).ok_or_else(mismatch)?,
        PgKind::Time => v
            .as_str()
            .map(|s| s.trim_end_matches('Z'))
            .filter(|s| NaiveTime::parse_from_str(s, "%H:%M:%S%.f").is_ok())
            .ok_or_else(mismatch)?
            .to_string(),
        PgKind::TextArray => match v {
            Json::String(s) => array_text(s.split(';').filter(|p| !p.is_empty())),
            Json::Array(items) => array_text(
                items
                    .iter()
                    .map(|i| i.as_str().ok_or_else(mismatch))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter(),
            ),
            _ => return Err(mismatch()),
        },
    };
    Ok(Some(text))
}

/// A value for a write, as Salesforce takes it: datetimes in UTC with
/// milliseconds, dates, numbers, a list of texts joined with `;` into a
/// multipicklist.
pub fn to_salesforce(lit: Literal) -> Result<Json, String> {
    Ok(match lit {
        Literal::Null => Json::Null,
        Literal::Bool(b) => Json::Bool(b),
        Literal::Number(n) => n
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("{n} is not a finite number"))?,
        Literal::Text(s) => Json::String(s),
        Literal::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
        Literal::DateTime(t) => Json::String(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        Literal::List(items) => {
            let parts = items
                .into_iter()
                .map(|i| match i {
                    Literal::Text(s) => Ok(s),
                    other => Err(format!("a multipicklist takes text values, not {other:?}")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Json::String(parts.join(";"))
        }
    })
}

/// A time of day for a write: `HH:MM:SS.sssZ`.
pub fn time_to_salesforce(t: NaiveTime) -> Json {
    Json::String(t.format("%H:%M:%S%.3fZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(v: Json, k: PgKind) -> Option<String> {
        to_pg_text(&v, k).unwrap()
    }

    #[test]
    fn each_kind() {
        assert_eq!(t(json!(null), PgKind::Text), None);
        assert_eq!(t(json!("x"), PgKind::Text), Some("x".into()));
        assert_eq!(
            t(json!({"city": "Paris"}), PgKind::Json),
            Some(r#"{"city":"Paris"}"#.into())
        );
        assert_eq!(t(json!(true), PgKind::Bool), Some("true".into()));
        assert_eq!(t(json!(12.0), PgKind::Integer), Some("12".into()));
        assert_eq!(
            t(json!(1500000.5), PgKind::Numeric),
            Some("1500000.5".into())
        );
        assert_eq!(
            t(json!("2024-02-06"), PgKind::Date),
            Some("2024-02-06".into())
        );
        assert_eq!(
            t(json!("2024-02-06T20:48:32.000+0000"), PgKind::Timestamp),
            Some("2024-02-06 20:48:32.000+00:00".into())
        );
        assert_eq!(
            t(json!("09:30:00.000Z"), PgKind::Time),
            Some("09:30:00.000".into())
        );
        assert_eq!(
            t(json!("English;Fr\"ench"), PgKind::TextArray),
            Some(r#"{"English","Fr\"ench"}"#.into())
        );
    }

    #[test]
    fn mismatches_are_errors() {
        assert!(to_pg_text(&json!("yes"), PgKind::Bool).is_err());
        assert!(to_pg_text(&json!(1.5), PgKind::Integer).is_err());
        assert!(to_pg_text(&json!(5), PgKind::Date).is_err());
        assert!(to_pg_text(&json!("1973-04-15"), PgKind::Integer).is_err());
        assert_eq!(
            to_pg_text(&json!("not-a-date"), PgKind::Date).unwrap_err(),
            "a string value \"not-a-date\" is not a date"
        );
        assert!(to_pg_text(&json!("2024-02-06T25:00:00.000+0000"), PgKind::Timestamp).is_err());
    }

    #[test]
    fn literals_become_salesforce_json() {
        use chrono::TimeZone;
        assert_eq!(
            to_salesforce(Literal::Number("1234.5".into())).unwrap(),
            json!(1234.5)
        );
        let t = chrono::Utc.timestamp_millis_opt(1_707_252_512_250).unwrap();
        assert_eq!(
            to_salesforce(Literal::DateTime(t)).unwrap(),
            json!("2024-02-06T20:48:32.250Z")
        );
        let langs = Literal::List(vec![
            Literal::Text("English".into()),
            Literal::Text("French".into()),
        ]);
        assert_eq!(to_salesforce(langs).unwrap(), json!("English;French"));
        assert!(to_salesforce(Literal::List(vec![Literal::Number("1".into())])).is_err());
    }

    #[test]
    fn columns_hold_only_fitting_fields() {
        assert!(PgKind::Text.can_hold("date"));
        assert!(PgKind::Json.can_hold("address"));
        assert!(PgKind::Numeric.can_hold("int"));
        assert!(PgKind::Timestamp.can_hold("date"));
        assert!(!PgKind::Integer.can_hold("date"));
        assert!(!PgKind::Date.can_hold("datetime"));
        assert!(!PgKind::Bool.can_hold("string"));
    }
}
