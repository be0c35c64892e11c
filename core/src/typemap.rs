//! The one mapping from Salesforce field types to PostgreSQL types, used by
//! IMPORT FOREIGN SCHEMA and by the sync engine's local tables alike.

use crate::values::PgKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgType {
    Text,
    Boolean,
    Integer,
    Bigint,
    DoublePrecision,
    Numeric,
    Date,
    Timestamptz,
    Time,
    TextArray,
    Jsonb,
}

impl PgType {
    /// How values of this type convert (see `values`).
    pub fn kind(self) -> PgKind {
        match self {
            PgType::Text => PgKind::Text,
            PgType::Boolean => PgKind::Bool,
            PgType::Integer | PgType::Bigint => PgKind::Integer,
            PgType::DoublePrecision => PgKind::Float,
            PgType::Numeric => PgKind::Numeric,
            PgType::Date => PgKind::Date,
            PgType::Timestamptz => PgKind::Timestamp,
            PgType::Time => PgKind::Time,
            PgType::TextArray => PgKind::TextArray,
            PgType::Jsonb => PgKind::Json,
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            PgType::Text => "text",
            PgType::Boolean => "boolean",
            PgType::Integer => "integer",
            PgType::Bigint => "bigint",
            PgType::DoublePrecision => "double precision",
            PgType::Numeric => "numeric",
            PgType::Date => "date",
            PgType::Timestamptz => "timestamp with time zone",
            PgType::Time => "time without time zone",
            PgType::TextArray => "text[]",
            PgType::Jsonb => "jsonb",
        }
    }
}

impl PgType {
    /// The type as DDL and casts the extension runs name it: qualified
    /// with pg_catalog, so no type of the same name on the search path is
    /// taken instead.
    pub fn ddl(self) -> &'static str {
        match self {
            PgType::Text => "pg_catalog.text",
            PgType::Boolean => "pg_catalog.bool",
            PgType::Integer => "pg_catalog.int4",
            PgType::Bigint => "pg_catalog.int8",
            PgType::DoublePrecision => "pg_catalog.float8",
            PgType::Numeric => "pg_catalog.numeric",
            PgType::Date => "pg_catalog.date",
            PgType::Timestamptz => "pg_catalog.timestamptz",
            PgType::Time => "pg_catalog.time",
            PgType::TextArray => "pg_catalog.text[]",
            PgType::Jsonb => "pg_catalog.jsonb",
        }
    }
}

/// The PostgreSQL type for a Salesforce field type (describe's `type`).
/// Types not in the table, such as `datacategorygroupreference`, read as text.
pub fn pg_type(salesforce_type: &str) -> PgType {
    match salesforce_type {
        "boolean" => PgType::Boolean,
        "int" => PgType::Integer,
        "long" => PgType::Bigint,
        "double" => PgType::DoublePrecision,
        "currency" | "percent" => PgType::Numeric,
        "date" => PgType::Date,
        "datetime" => PgType::Timestamptz,
        "time" => PgType::Time,
        "multipicklist" => PgType::TextArray,
        "address" | "location" | "anyType" | "complexvalue" => PgType::Jsonb,
        _ => PgType::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_table() {
        let table = [
            ("id", PgType::Text),
            ("reference", PgType::Text),
            ("string", PgType::Text),
            ("picklist", PgType::Text),
            ("combobox", PgType::Text),
            ("email", PgType::Text),
            ("phone", PgType::Text),
            ("url", PgType::Text),
            ("textarea", PgType::Text),
            ("encryptedstring", PgType::Text),
            ("boolean", PgType::Boolean),
            ("int", PgType::Integer),
            ("long", PgType::Bigint),
            ("double", PgType::DoublePrecision),
            ("currency", PgType::Numeric),
            ("percent", PgType::Numeric),
            ("date", PgType::Date),
            ("datetime", PgType::Timestamptz),
            ("time", PgType::Time),
            ("multipicklist", PgType::TextArray),
            ("address", PgType::Jsonb),
            ("location", PgType::Jsonb),
            ("anyType", PgType::Jsonb),
            ("complexvalue", PgType::Jsonb),
            ("base64", PgType::Text),
            ("datacategorygroupreference", PgType::Text),
        ];
        for (sf, pg) in table {
            assert_eq!(pg_type(sf), pg, "{sf}");
        }
    }
}
