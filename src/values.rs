//! The one converter between Salesforce values and PostgreSQL datums, for
//! scans, writes, the sync and write-through alike. A PostgreSQL type is
//! classified here once (`kind_of`); the text forms on either side are
//! `salesforce_core::values`.

use crate::error::{Error, Result};
use crate::pg::text_of;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::{AnyNumeric, FromDatum, JsonB};
use salesforce_core::client::describe::FieldDescribe;
use salesforce_core::pushdown::ValueFamily;
use salesforce_core::soql::literal::is_decimal;
use salesforce_core::soql::Literal;
use salesforce_core::typemap::pg_type;
use salesforce_core::values::{time_to_salesforce, to_pg_text, to_salesforce, PgKind};
use serde_json::Value as Json;

/// How a column type's values convert. Types not named read through their
/// input function as text, and cannot be written.
pub fn kind_of(type_oid: Oid) -> Option<PgKind> {
    Some(match type_oid {
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::NAMEOID | pg_sys::BPCHAROID => PgKind::Text,
        pg_sys::BOOLOID => PgKind::Bool,
        pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => PgKind::Integer,
        pg_sys::FLOAT4OID | pg_sys::FLOAT8OID => PgKind::Float,
        pg_sys::NUMERICOID => PgKind::Numeric,
        pg_sys::DATEOID => PgKind::Date,
        pg_sys::TIMESTAMPTZOID | pg_sys::TIMESTAMPOID => PgKind::Timestamp,
        pg_sys::TIMEOID => PgKind::Time,
        pg_sys::JSONOID | pg_sys::JSONBOID => PgKind::Json,
        t if unsafe { pg_sys::get_element_type(t) } != pg_sys::InvalidOid => PgKind::TextArray,
        _ => return None,
    })
}

fn reads_as(type_oid: Oid) -> PgKind {
    kind_of(type_oid).unwrap_or(PgKind::Text)
}

pub fn type_name(type_oid: Oid) -> String {
    unsafe { text_of(pg_sys::format_type_be(type_oid)) }
}

/// The kind of value a constant or parameter holds, for pushdown.
pub fn family(type_oid: Oid) -> ValueFamily {
    match (kind_of(type_oid), type_oid) {
        (Some(PgKind::Text), _) => ValueFamily::Text,
        (Some(PgKind::Integer | PgKind::Float | PgKind::Numeric), _) => ValueFamily::Number,
        (Some(PgKind::Bool), _) => ValueFamily::Bool,
        (Some(PgKind::Date), _) => ValueFamily::Date,
        (Some(PgKind::Timestamp), pg_sys::TIMESTAMPTZOID) => ValueFamily::DateTime,
        _ => ValueFamily::Other,
    }
}

/// Refuses a column whose declared type can never hold its field's values,
/// naming the type that would.
pub fn check_column(table: &str, column: &str, type_oid: Oid, field: &FieldDescribe) -> Result<()> {
    if reads_as(type_oid).can_hold(&field.field_type) {
        return Ok(());
    }
    let fitting = pg_type(&field.field_type).sql();
    Err(Error::mapping(
        format!(
            "column \"{column}\" of foreign table \"{table}\" is {}, which cannot hold Salesforce field {} of type {}",
            type_name(type_oid),
            field.name,
            field.field_type
        ),
        format!("Declare the column as {fitting} (or text)."),
    ))
}

/// Where a value comes from, for a conversion error.
pub struct Source<'a> {
    pub column: &'a str,
    pub field: &'a str,
    pub record: Option<&'a str>,
}

/// A Salesforce value as the input text of a column of `kind`; None for NULL.
pub fn input_text(value: &Json, kind: PgKind, from: &Source) -> Result<Option<String>> {
    to_pg_text(value, kind).map_err(|message| conversion_error(from, message))
}

/// Why a value from `from` cannot be read.
pub fn conversion_error(from: &Source, message: String) -> Error {
    Error::Conversion {
        column: from.column.to_string(),
        field: from.field.to_string(),
        record: from.record.map(str::to_string),
        message,
    }
}

/// Reads Salesforce values into datums of one column's type.
pub struct ColumnReader {
    kind: PgKind,
    input: pg_sys::FmgrInfo,
    io_param: Oid,
    typmod: i32,
}

impl ColumnReader {
    /// # Safety
    /// `context` outlives the reader.
    pub unsafe fn new(type_oid: Oid, typmod: i32, context: pg_sys::MemoryContext) -> ColumnReader {
        let (mut input_fn, mut io_param) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
        pg_sys::getTypeInputInfo(type_oid, &mut input_fn, &mut io_param);
        let mut input = pg_sys::FmgrInfo::default();
        pg_sys::fmgr_info_cxt(input_fn, &mut input, context);
        ColumnReader {
            kind: reads_as(type_oid),
            input,
            io_param,
            typmod,
        }
    }

    pub fn kind(&self) -> PgKind {
        self.kind
    }

    /// The datum for an input text `input_text` made; allocates in the
    /// current memory context.
    ///
    /// # Safety
    /// `text` is NUL-terminated.
    pub unsafe fn read_text(&self, text: *const std::ffi::c_char) -> Datum {
        let mut input = self.input;
        pg_sys::InputFunctionCall(&mut input, text as *mut _, self.io_param, self.typmod)
    }
}

/// Days and microseconds count from 2000-01-01 in PostgreSQL.
fn pg_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date")
}

fn finite_number(text: String) -> Option<Literal> {
    is_decimal(&text).then_some(Literal::Number(text))
}

/// Microseconds since PostgreSQL's epoch as a UTC time; None for infinities.
fn timestamp(micros: i64) -> Option<DateTime<Utc>> {
    (micros != i64::MIN && micros != i64::MAX).then_some(())?;
    let epoch: DateTime<Utc> = pg_epoch().and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    Some(epoch + Duration::microseconds(micros))
}

/// A non-null scalar datum as a literal, or None when SOQL cannot express it
/// (NaN, infinities, types SOQL lacks).
///
/// # Safety
/// `datum` is a valid datum of type `type_oid`.
unsafe fn scalar(datum: Datum, type_oid: Oid) -> Option<Literal> {
    Some(match type_oid {
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::NAMEOID | pg_sys::BPCHAROID => {
            Literal::Text(String::from_datum(datum, false)?)
        }
        pg_sys::INT2OID => Literal::Number(i16::from_datum(datum, false)?.to_string()),
        pg_sys::INT4OID => Literal::Number(i32::from_datum(datum, false)?.to_string()),
        pg_sys::INT8OID => Literal::Number(i64::from_datum(datum, false)?.to_string()),
        pg_sys::NUMERICOID => finite_number(AnyNumeric::from_datum(datum, false)?.to_string())?,
        pg_sys::FLOAT4OID => finite_number(f32::from_datum(datum, false)?.to_string())?,
        pg_sys::FLOAT8OID => finite_number(f64::from_datum(datum, false)?.to_string())?,
        pg_sys::BOOLOID => Literal::Bool(bool::from_datum(datum, false)?),
        pg_sys::DATEOID => {
            let days = datum.value() as i32;
            (days != i32::MIN && days != i32::MAX).then_some(())?;
            Literal::Date(pg_epoch() + Duration::days(days as i64))
        }
        pg_sys::TIMESTAMPTZOID => Literal::DateTime(timestamp(datum.value() as i64)?),
        _ => return None,
    })
}

/// A datum, scalar or one-dimensional array (as an IN list), as a literal.
/// Null array elements are left out: they can never equal anything.
///
/// # Safety
/// `datum` is a valid datum of type `type_oid` unless `is_null`.
pub unsafe fn literal(datum: Datum, is_null: bool, type_oid: Oid) -> Option<Literal> {
    if is_null {
        return Some(Literal::Null);
    }
    let element_type = pg_sys::get_element_type(type_oid);
    if element_type == pg_sys::InvalidOid {
        return scalar(datum, type_oid);
    }
    let array = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *mut pg_sys::ArrayType;
    let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
    pg_sys::get_typlenbyvalalign(element_type, &mut len, &mut byval, &mut align);
    let (mut elements, mut nulls, mut count) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
    pg_sys::deconstruct_array(
        array,
        element_type,
        len as i32,
        byval,
        align,
        &mut elements,
        &mut nulls,
        &mut count,
    );
    let mut items = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        if !*nulls.add(i) {
            items.push(scalar(*elements.add(i), element_type)?);
        }
    }
    Some(Literal::List(items))
}

/// A column value for a write, as Salesforce takes it. A `timestamp`
/// without time zone is read as UTC, as scans store UTC in it.
///
/// # Safety
/// `datum` is a valid datum of type `type_oid` unless `is_null`.
pub unsafe fn to_json(
    datum: Datum,
    is_null: bool,
    type_oid: Oid,
) -> std::result::Result<Json, String> {
    if is_null {
        return Ok(Json::Null);
    }
    match type_oid {
        pg_sys::JSONBOID => JsonB::from_datum(datum, false)
            .map(|j| j.0)
            .ok_or_else(|| "unreadable jsonb".into()),
        pg_sys::JSONOID => {
            let text = pgrx::Json::from_datum(datum, false).ok_or("unreadable json")?;
            Ok(text.0)
        }
        pg_sys::TIMEOID => {
            let micros = datum.value() as i64;
            let t = NaiveTime::from_num_seconds_from_midnight_opt(
                (micros / 1_000_000) as u32,
                (micros % 1_000_000 * 1000) as u32,
            )
            .ok_or("time out of range")?;
            Ok(time_to_salesforce(t))
        }
        pg_sys::TIMESTAMPOID => {
            let t = timestamp(datum.value() as i64)
                .ok_or("an infinite timestamp cannot be sent to Salesforce")?;
            to_salesforce(Literal::DateTime(t))
        }
        _ => {
            let lit = literal(datum, false, type_oid).ok_or_else(|| {
                format!(
                    "values of type {} cannot be sent to Salesforce",
                    type_name(type_oid)
                )
            })?;
            to_salesforce(lit)
        }
    }
}
