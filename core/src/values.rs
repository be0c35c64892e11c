//! Salesforce values in PostgreSQL's text forms, both ways: a value from an
//! answer as the text a column type's input function reads, and a value
//! bound for a write as the JSON Salesforce takes. Values from Bulk CSV and
//! from change events' Avro are first shaped as REST gives them, so one
//! conversion serves every API. Pure: the datum side is the extension's
//! `values` module, the only caller.

use crate::client::session::parse_datetime;
use crate::soql::Literal;
use crate::typemap::{pg_type, PgType};
use apache_avro::types::Value as Avro;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::Value as Json;
use std::borrow::Cow;

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
        // REST writes a whole double as 43000000.0 and Bulk as 43000000:
        // the same number has one text, whichever API read it.
        Json::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                Some((f as i64).to_string())
            }
            _ => Some(n.to_string()),
        },
        Json::String(s) if crate::soql::literal::is_decimal(s) => Some(s.clone()),
        _ => None,
    }
}

/// `2024-02-06T20:48:32.000+0000`, or `...Z` as Bulk writes it, to
/// `2024-02-06 20:48:32.000+00:00`. The shape is checked byte by byte and
/// the value parsed only when it is unusual: this runs for every datetime.
/// Whether `s` is a valid `YYYY-MM-DD` date, checked without a format parser.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let number = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    match (number(0..4), number(5..7), number(8..10)) {
        (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(y as i32, m, d).is_some(),
        _ => false,
    }
}

fn timestamp_text(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let usual = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let two = |i: usize| (b[i] - b'0') * 10 + (b[i + 1] - b'0');
    if usual
        && (1..=12).contains(&two(5))
        && (1..=31).contains(&two(8))
        && two(11) < 24
        && two(14) < 60
        && two(17) <= 60
    {
        let (head, zone) = match s.strip_suffix('Z') {
            Some(head) => (head, "+00:00".to_string()),
            None if b.len() >= 24
                && matches!(b[b.len() - 5], b'+' | b'-')
                && digits(b.len() - 4..b.len()) =>
            {
                let (head, z) = s.split_at(s.len() - 5);
                (head, format!("{}:{}", &z[..3], &z[3..]))
            }
            None => return parsed_timestamp_text(s),
        };
        let fraction = &head[19..];
        if fraction.is_empty()
            || (fraction.starts_with('.') && fraction[1..].bytes().all(|d| d.is_ascii_digit()))
        {
            return Some(format!("{} {}{zone}", &head[..10], &head[11..]));
        }
    }
    parsed_timestamp_text(s)
}

fn parsed_timestamp_text(s: &str) -> Option<String> {
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

/// A field of a Bulk CSV row as the value REST would have given: empty is
/// null, booleans and numbers are typed, everything else is text.
pub fn from_csv(text: &str, field_type: &str) -> Json {
    if text.is_empty() {
        return Json::Null;
    }
    match field_type {
        "boolean" => Json::Bool(text == "true"),
        "int" | "long" | "double" | "currency" | "percent" => text
            .parse::<serde_json::Number>()
            .map(Json::Number)
            .unwrap_or_else(|_| Json::String(text.to_string())),
        _ => Json::String(text.to_string()),
    }
}

/// A value bound for a write as a Bulk ingest CSV cell: `null` (the text
/// that clears the field, `#N/A` where an empty cell would leave it as it
/// is) for null and empty text, a multipicklist joined with `;`.
pub fn csv_cell<'a>(v: &'a Json, null: &'static str) -> Cow<'a, str> {
    match v {
        Json::Null => Cow::Borrowed(null),
        Json::String(s) if s.is_empty() => Cow::Borrowed(null),
        Json::String(s) => Cow::Borrowed(s),
        Json::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Json::Number(n) => Cow::Owned(n.to_string()),
        Json::Array(items) => Cow::Owned(
            items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(Cow::Borrowed)
                        .unwrap_or_else(|| Cow::Owned(i.to_string()))
                })
                .collect::<Vec<_>>()
                .join(";"),
        ),
        Json::Object(_) => Cow::Owned(v.to_string()),
    }
}

/// A datetime as REST writes it: `2024-02-06T20:48:32.000+0000`.
pub fn datetime_to_rest(t: DateTime<Utc>) -> Json {
    Json::String(t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string())
}

/// A change event's Avro value as REST would give it in a query record. The
/// schema's logical types mark dates (days since the epoch), datetimes
/// (epoch milliseconds) and times (milliseconds since midnight); a value out
/// of their range stays a number, for the conversion to refuse by name.
pub fn from_avro(value: &Avro) -> Json {
    let text = |s: Option<String>, raw: Json| s.map_or(raw, Json::String);
    match value {
        Avro::Null => Json::Null,
        Avro::Union(_, inner) => from_avro(inner),
        Avro::Boolean(b) => Json::Bool(*b),
        Avro::Int(i) => Json::from(*i),
        Avro::Long(l) => Json::from(*l),
        Avro::Float(f) => Json::from(f64::from(*f)),
        Avro::Double(d) => Json::from(*d),
        Avro::String(s) | Avro::Enum(_, s) => Json::String(s.clone()),
        Avro::Date(days) => text(
            NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days((*days).into())))
                .map(|d| d.format("%Y-%m-%d").to_string()),
            Json::from(*days),
        ),
        Avro::TimestampMillis(ms) => {
            DateTime::from_timestamp_millis(*ms).map_or(Json::from(*ms), datetime_to_rest)
        }
        Avro::TimeMillis(ms) => text(
            u32::try_from(*ms)
                .ok()
                .and_then(|ms| {
                    NaiveTime::from_num_seconds_from_midnight_opt(ms / 1000, ms % 1000 * 1_000_000)
                })
                .map(|t| t.format("%H:%M:%S%.3fZ").to_string()),
            Json::from(*ms),
        ),
        other => Json::try_from(other.clone()).unwrap_or(Json::Null),
    }
}

/// A text value straight to a column's input text, as
/// `to_pg_text(&Json::String(text))` gives it. Text that is its own input
/// (strings into text, valid dates) is borrowed, not copied: this runs for
/// every field of every row of a backfill.
pub fn str_to_pg_text(text: &str, kind: PgKind) -> Result<Option<Cow<'_, str>>, String> {
    match kind {
        PgKind::Text => return Ok(Some(Cow::Borrowed(text))),
        PgKind::Date if is_date(text) => return Ok(Some(Cow::Borrowed(text))),
        PgKind::Timestamp => {
            if let Some(t) = timestamp_text(text) {
                return Ok(Some(Cow::Owned(t)));
            }
        }
        _ => {}
    }
    to_pg_text(&Json::String(text.to_string()), kind).map(|t| t.map(Cow::Owned))
}

/// A field of a Bulk CSV row straight to a column's input text, as
/// `to_pg_text(&from_csv(text, field_type), kind)` gives it.
pub fn csv_to_pg_text<'a>(
    text: &'a str,
    field_type: &str,
    kind: PgKind,
) -> Result<Option<Cow<'a, str>>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    match field_type {
        "boolean" | "int" | "long" | "double" | "currency" | "percent" => {
            to_pg_text(&from_csv(text, field_type), kind).map(|t| t.map(Cow::Owned))
        }
        _ => str_to_pg_text(text, kind),
    }
}

/// An address or location field as REST renders it, from its components
/// (`components` are (API name, value) pairs): null when every component is,
/// an address carrying all ten keys.
pub fn compound(name: &str, field_type: &str, components: &[(&str, &Json)]) -> Json {
    if components.iter().all(|(_, v)| v.is_null()) {
        return Json::Null;
    }
    let mut object = serde_json::Map::new();
    if field_type == "address" {
        for key in [
            "city",
            "country",
            "countryCode",
            "geocodeAccuracy",
            "latitude",
            "longitude",
            "postalCode",
            "state",
            "stateCode",
            "street",
        ] {
            object.insert(key.into(), Json::Null);
        }
    }
    let prefix = name.trim_end_matches("Address").trim_end_matches("__c");
    for (component, value) in components {
        let rest = component
            .trim_start_matches(prefix)
            .trim_start_matches("__")
            .trim_end_matches("__s");
        let mut key: Vec<char> = rest.chars().collect();
        if let Some(c) = key.first_mut() {
            *c = c.to_ascii_lowercase();
        }
        object.insert(key.into_iter().collect(), (*value).clone());
    }
    Json::Object(object)
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
            t(json!(43000000.0), PgKind::Numeric),
            t(json!(43000000), PgKind::Numeric)
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
    fn dates_pass_as_they_are_only_when_valid() {
        assert_eq!(
            str_to_pg_text("2024-02-29", PgKind::Date),
            Ok(Some(Cow::Borrowed("2024-02-29")))
        );
        for bad in ["2023-02-29", "2024-13-01", "24-01-01x", "2024-01-0a"] {
            assert!(str_to_pg_text(bad, PgKind::Date).is_err(), "{bad}");
        }
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
        assert!(to_pg_text(&json!("2024-02-06X20:00:00.000+0000"), PgKind::Timestamp).is_err());
        assert!(to_pg_text(&json!("2024-02-06T25:00:00.000+0000"), PgKind::Timestamp).is_err());
        assert!(to_pg_text(&json!("yesterday"), PgKind::Timestamp).is_err());
        assert_eq!(
            to_pg_text(&json!("2024-02-06T20:48:32.000Z"), PgKind::Timestamp).unwrap(),
            Some("2024-02-06 20:48:32.000+00:00".into())
        );
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
    fn csv_fields_read_as_rest_values() {
        assert_eq!(from_csv("", "string"), Json::Null);
        assert_eq!(from_csv("true", "boolean"), json!(true));
        assert_eq!(from_csv("1500000.5", "currency"), json!(1500000.5));
        assert_eq!(from_csv("a;b", "multipicklist"), json!("a;b"));
        let street = json!("1 Main St");
        let none = Json::Null;
        assert_eq!(
            compound(
                "MailingAddress",
                "address",
                &[("MailingStreet", &street), ("MailingCity", &none)]
            ),
            json!({"city": null, "country": null, "countryCode": null, "geocodeAccuracy": null, "latitude": null,
                   "longitude": null, "postalCode": null, "state": null, "stateCode": null, "street": "1 Main St"})
        );
        let lat = json!(48.85);
        assert_eq!(
            compound(
                "Delivery_Location__c",
                "location",
                &[
                    ("Delivery_Location__Latitude__s", &lat),
                    ("Delivery_Location__Longitude__s", &none)
                ]
            ),
            json!({"latitude": 48.85, "longitude": null})
        );
        assert_eq!(
            compound("MailingAddress", "address", &[("MailingCity", &none)]),
            Json::Null
        );
    }

    #[test]
    fn csv_fields_convert_as_their_rest_values_do() {
        let cases = [
            ("", "string", PgKind::Text),
            ("Ana \"Bo\"", "string", PgKind::Text),
            ("1.50", "currency", PgKind::Text),
            ("1.50", "currency", PgKind::Numeric),
            ("43000000", "double", PgKind::Float),
            ("12", "int", PgKind::Integer),
            ("true", "boolean", PgKind::Bool),
            ("false", "boolean", PgKind::Text),
            ("2024-02-06", "date", PgKind::Date),
            ("2024-02-06", "date", PgKind::Timestamp),
            ("2024-02-31", "date", PgKind::Date),
            ("2024-02-06T20:48:32.000Z", "datetime", PgKind::Timestamp),
            ("2024-02-06T20:48:32.000Z", "datetime", PgKind::Text),
            ("yesterday", "datetime", PgKind::Timestamp),
            ("09:30:00.000Z", "time", PgKind::Time),
            ("en;fr", "multipicklist", PgKind::TextArray),
            ("abc", "string", PgKind::Integer),
        ];
        for (text, field_type, kind) in cases {
            assert_eq!(
                csv_to_pg_text(text, field_type, kind).map(|t| t.map(Cow::into_owned)),
                to_pg_text(&from_csv(text, field_type), kind),
                "{text:?} of type {field_type} into {kind:?}"
            );
        }
        assert!(matches!(
            csv_to_pg_text("Ana", "string", PgKind::Text),
            Ok(Some(Cow::Borrowed("Ana")))
        ));
    }

    #[test]
    fn avro_values_read_as_rest_values() {
        let some = |v: Avro| Avro::Union(1, Box::new(v));
        assert_eq!(from_avro(&Avro::Union(0, Box::new(Avro::Null))), Json::Null);
        assert_eq!(from_avro(&some(Avro::String("Acme".into()))), json!("Acme"));
        assert_eq!(from_avro(&Avro::Boolean(true)), json!(true));
        assert_eq!(from_avro(&Avro::Int(12)), json!(12));
        assert_eq!(from_avro(&Avro::Long(1 << 40)), json!(1_i64 << 40));
        assert_eq!(from_avro(&some(Avro::Double(1500000.5))), json!(1500000.5));
        assert_eq!(from_avro(&Avro::Double(f64::NAN)), Json::Null);
        assert_eq!(from_avro(&Avro::Date(19_759)), json!("2024-02-06"));
        assert_eq!(from_avro(&Avro::Date(-1)), json!("1969-12-31"));
        assert_eq!(
            from_avro(&Avro::TimestampMillis(1_707_252_512_250)),
            json!("2024-02-06T20:48:32.250+0000")
        );
        assert_eq!(
            from_avro(&Avro::TimeMillis(74_912_005)),
            json!("20:48:32.005Z")
        );
        assert_eq!(from_avro(&Avro::TimeMillis(-5)), json!(-5), "out of range");
        assert_eq!(from_avro(&Avro::Date(i32::MAX)), json!(i32::MAX));
        // The shapes read as REST's convert to columns as REST's do.
        assert_eq!(
            to_pg_text(&from_avro(&Avro::TimestampMillis(0)), PgKind::Timestamp),
            Ok(Some("1970-01-01 00:00:00.000+00:00".into()))
        );
        assert_eq!(
            to_pg_text(&from_avro(&Avro::TimeMillis(1_000)), PgKind::Time),
            Ok(Some("00:00:01.000".into()))
        );
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
