//! Salesforce JSON values as the text PostgreSQL's input functions read, for
//! whatever type a column has.

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

fn number_text(v: &Json, integer: bool) -> Option<String> {
    match v {
        Json::Number(n) if integer => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(i.to_string()),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some((f as i64).to_string()),
            _ => None,
        },
        Json::Number(n) => Some(n.to_string()),
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// `2024-02-06T20:48:32.000+0000` → `2024-02-06 20:48:32.000+00:00`.
fn timestamp_text(s: &str) -> String {
    let t = s.replacen('T', " ", 1);
    match t.len().checked_sub(5).map(|i| t.split_at(i)) {
        Some((head, zone))
            if (zone.starts_with('+') || zone.starts_with('-'))
                && zone[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{head}{}:{}", &zone[..3], &zone[3..])
        }
        _ => t,
    }
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
    let mismatch = || format!("cannot read {v} as {kind:?}");
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
        PgKind::Date => v.as_str().ok_or_else(mismatch)?.to_string(),
        PgKind::Timestamp => timestamp_text(v.as_str().ok_or_else(mismatch)?),
        PgKind::Time => v
            .as_str()
            .ok_or_else(mismatch)?
            .trim_end_matches('Z')
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
    }
}
