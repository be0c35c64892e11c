//! PostgreSQL values as Salesforce expects them in writes: datetimes in UTC,
//! dates, numbers, text[] joined with `;` into a multipicklist, jsonb as JSON.

use crate::soql::Literal;
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::{FromDatum, JsonB};
use serde_json::Value as Json;

fn from_literal(lit: Literal) -> Result<Json, String> {
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

/// A column value for a write.
///
/// # Safety
/// `datum` is a valid datum of type `type_oid` unless `is_null`.
pub unsafe fn to_json(datum: Datum, is_null: bool, type_oid: Oid) -> Result<Json, String> {
    if is_null {
        return Ok(Json::Null);
    }
    match type_oid {
        pg_sys::JSONBOID => JsonB::from_datum(datum, false)
            .map(|j| j.0)
            .ok_or_else(|| "unreadable jsonb".into()),
        pg_sys::TIMEOID => {
            let micros = datum.value() as i64;
            let t = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                (micros / 1_000_000) as u32,
                (micros % 1_000_000 * 1000) as u32,
            )
            .ok_or("time out of range")?;
            Ok(Json::String(t.format("%H:%M:%S%.3fZ").to_string()))
        }
        _ => {
            let lit = crate::fdw::values::literal(datum, false, type_oid).ok_or_else(|| {
                format!(
                    "values of type {} cannot be sent to Salesforce",
                    type_name(type_oid)
                )
            })?;
            from_literal(lit)
        }
    }
}

fn type_name(type_oid: Oid) -> String {
    unsafe { crate::fdw::pg::text_of(pg_sys::format_type_be(type_oid)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn literals_become_salesforce_json() {
        assert_eq!(
            from_literal(Literal::Number("1234.5".into())).unwrap(),
            serde_json::json!(1234.5)
        );
        let t = chrono::Utc.timestamp_millis_opt(1_707_252_512_250).unwrap();
        assert_eq!(
            from_literal(Literal::DateTime(t)).unwrap(),
            serde_json::json!("2024-02-06T20:48:32.250Z")
        );
        let langs = Literal::List(vec![
            Literal::Text("English".into()),
            Literal::Text("French".into()),
        ]);
        assert_eq!(
            from_literal(langs).unwrap(),
            serde_json::json!("English;French")
        );
        assert!(from_literal(Literal::List(vec![Literal::Number("1".into())])).is_err());
    }
}
