//! PostgreSQL values (constants and parameters) as SOQL literals.

use super::pushdown::ValueFamily;
use crate::soql::literal::is_decimal;
use crate::soql::Literal;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::{AnyNumeric, FromDatum};

/// Days and microseconds count from 2000-01-01 in PostgreSQL.
fn pg_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date")
}

pub fn family(type_oid: Oid) -> ValueFamily {
    match type_oid {
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::NAMEOID => ValueFamily::Text,
        pg_sys::INT2OID
        | pg_sys::INT4OID
        | pg_sys::INT8OID
        | pg_sys::NUMERICOID
        | pg_sys::FLOAT4OID
        | pg_sys::FLOAT8OID => ValueFamily::Number,
        pg_sys::BOOLOID => ValueFamily::Bool,
        pg_sys::DATEOID => ValueFamily::Date,
        pg_sys::TIMESTAMPTZOID => ValueFamily::DateTime,
        _ => ValueFamily::Other,
    }
}

fn finite_number(text: String) -> Option<Literal> {
    is_decimal(&text).then_some(Literal::Number(text))
}

/// A non-null scalar datum as a literal, or None when SOQL cannot express it
/// (NaN, infinities, types SOQL lacks).
///
/// # Safety
/// `datum` is a valid datum of type `type_oid`.
pub unsafe fn scalar(datum: Datum, type_oid: Oid) -> Option<Literal> {
    Some(match type_oid {
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::NAMEOID => {
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
        pg_sys::TIMESTAMPTZOID => {
            let micros = datum.value() as i64;
            (micros != i64::MIN && micros != i64::MAX).then_some(())?;
            let epoch: DateTime<Utc> = pg_epoch().and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            Literal::DateTime(epoch + Duration::microseconds(micros))
        }
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
