//! What a sync copies and into what: its options, the local table's columns
//! (through the shared type map) and how they follow the object's schema.

use crate::client::describe::ObjectDescribe;
use crate::naming::{quote_ident, ColumnNamer};
use crate::options::OptionError;
use crate::typemap::{pg_type, PgType};
use serde_json::Value as Json;

pub const DEFAULT_LOOKBACK_SECONDS: i64 = 300;
/// Columns the sync adds to every local table.
pub const SYNCED_AT: &str = "_synced_at";
pub const DELETED_AT: &str = "_deleted_at";

/// Which API a backfill (or resync) reads through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackfillApi {
    /// Bulk API 2.0 for objects of at least `BULK_THRESHOLD` records whose
    /// fields Bulk can return, else REST.
    Auto,
    Bulk,
    Rest,
}

/// From this many records `auto` backfills through Bulk: below it a few
/// REST pages cost as little, without waiting for a job.
pub const BULK_THRESHOLD: u64 = 10_000;

/// Field types Bulk 2.0 cannot return: compound fields are rebuilt from
/// their components, base64 ones need REST.
pub fn bulk_can_return(field_type: &str) -> bool {
    !matches!(field_type, "address" | "location" | "base64")
}

/// A sync runs at most once a second and at least once a year
/// (`every` from `'1 second'` to `'1 year'`): shorter spends the org's
/// requests for nothing, longer is a disabled sync.
pub const EVERY_BOUNDS: (&str, &str) = ("1 second", "1 year");

/// Whether an interval (PostgreSQL's months, days and microseconds) is
/// within `EVERY_BOUNDS`, compared as PostgreSQL compares intervals: a month
/// is 30 days and a day 24 hours.
pub fn check_every(months: i32, days: i32, micros: i64) -> Result<(), OptionError> {
    const DAY: i128 = 86_400_000_000;
    let span = micros as i128 + days as i128 * DAY + months as i128 * 30 * DAY;
    let (least, most) = (1_000_000, 12 * 30 * DAY);
    if (least..=most).contains(&span) {
        Ok(())
    } else {
        Err(invalid(
            format!(
                "every must be from {} to {}",
                EVERY_BOUNDS.0, EVERY_BOUNDS.1
            ),
            "Say how often the sync runs, such as '5 minutes' or '1 hour'; salesforce.sync_disable() stops a sync.",
        ))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SyncOptions {
    /// API names to copy; None copies every field, and fields added later.
    pub fields: Option<Vec<String>>,
    /// Keep deleted records with `_deleted_at` set instead of removing them.
    pub soft_delete: bool,
    /// How far back each incremental run re-reads, for changes that become
    /// visible with an older SystemModstamp than ones already read.
    pub lookback_seconds: i64,
    pub api: BackfillApi,
    /// How often formula fields are read again, since their values change
    /// without SystemModstamp moving; None never.
    pub formula_refresh_seconds: Option<i64>,
    /// Keep the copy current from Change Data Capture events, polling
    /// only as the safety net.
    pub cdc: bool,
    /// The copy is one org's partition of a table shared by several
    /// servers' syncs of the object, keyed by (`_org`, id).
    pub shared: bool,
    /// Read-write: INSERT, UPDATE and DELETE on the copy are queued for
    /// Salesforce in the same transaction.
    pub write: bool,
}

/// Formula fields are read again every 6 hours unless a sync says otherwise:
/// a refresh reads every record's Id and formulas, a request per 2,000.
pub const DEFAULT_FORMULA_REFRESH_SECONDS: i64 = 6 * 3600;

/// An interval given as seconds or as text such as `"15 minutes"` or `"1 hour"`.
fn interval_seconds(value: &Json) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return (n > 0).then_some(n);
    }
    let text = value.as_str()?.trim().to_ascii_lowercase();
    let (number, unit) = text.split_once(' ').unwrap_or((&text, "seconds"));
    let n: i64 = number.parse().ok().filter(|n| *n > 0)?;
    let unit_seconds = match unit.trim().trim_end_matches('s') {
        "" | "second" | "sec" => 1,
        "minute" | "min" => 60,
        "hour" | "h" => 3600,
        "day" | "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit_seconds)
}

fn invalid(message: String, hint: &str) -> OptionError {
    OptionError {
        message,
        hint: Some(hint.into()),
    }
}

const OPTIONS_HINT: &str = "Options are fields (an array of API names), soft_delete (boolean), lookback_seconds (a number), api ('auto', 'bulk' or 'rest'), formula_refresh (an interval such as \"1 hour\", or \"off\"), cdc (boolean), shared (boolean) and write (boolean).";

impl SyncOptions {
    pub fn parse(options: &Json) -> Result<SyncOptions, OptionError> {
        let map = options
            .as_object()
            .ok_or_else(|| invalid("sync options must be a JSON object".into(), OPTIONS_HINT))?;
        let mut parsed = SyncOptions {
            fields: None,
            soft_delete: false,
            lookback_seconds: DEFAULT_LOOKBACK_SECONDS,
            api: BackfillApi::Auto,
            formula_refresh_seconds: Some(DEFAULT_FORMULA_REFRESH_SECONDS),
            cdc: false,
            shared: false,
            write: false,
        };
        for (key, value) in map {
            match key.as_str() {
                "fields" => {
                    let names = value.as_array().and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>());
                    parsed.fields = Some(names.filter(|n| !n.is_empty()).ok_or_else(|| invalid("sync option \"fields\" must be a non-empty array of field names".into(), OPTIONS_HINT))?);
                }
                "cdc" => parsed.cdc = value.as_bool().ok_or_else(|| invalid("sync option \"cdc\" must be true or false".into(), OPTIONS_HINT))?,
                "write" => parsed.write = value.as_bool().ok_or_else(|| invalid("sync option \"write\" must be true or false".into(), OPTIONS_HINT))?,
                "shared" => parsed.shared = value.as_bool().ok_or_else(|| invalid("sync option \"shared\" must be true or false".into(), OPTIONS_HINT))?,
                "soft_delete" => parsed.soft_delete = value.as_bool().ok_or_else(|| invalid("sync option \"soft_delete\" must be true or false".into(), OPTIONS_HINT))?,
                "lookback_seconds" => {
                    parsed.lookback_seconds = value.as_i64().filter(|s| (0..=86_400).contains(s)).ok_or_else(|| invalid("sync option \"lookback_seconds\" must be a number of seconds from 0 to 86400".into(), OPTIONS_HINT))?
                }
                "api" => {
                    parsed.api = match value.as_str() {
                        Some("auto") => BackfillApi::Auto,
                        Some("bulk") => BackfillApi::Bulk,
                        Some("rest") => BackfillApi::Rest,
                        _ => return Err(invalid("sync option \"api\" must be 'auto', 'bulk' or 'rest'".into(), OPTIONS_HINT)),
                    }
                }
                "formula_refresh" => {
                    parsed.formula_refresh_seconds = match value {
                        Json::Bool(false) | Json::Null => None,
                        Json::String(s) if s == "off" => None,
                        other => Some(interval_seconds(other).ok_or_else(|| invalid("sync option \"formula_refresh\" must be an interval such as \"1 hour\" or \"15 minutes\", a number of seconds, or \"off\"".into(), OPTIONS_HINT))?),
                    }
                }
                other => return Err(invalid(format!("invalid sync option \"{other}\""), OPTIONS_HINT)),
            }
        }
        if parsed.write && parsed.shared {
            return Err(invalid(
                "sync options \"write\" and \"shared\" cannot go together".into(),
                "A shared copy holds several orgs' records: write to each org through its own copy or foreign table.",
            ));
        }
        Ok(parsed)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SyncedField {
    pub field: String,
    pub column: String,
    pub pg: PgType,
}

/// Fields every sync needs, whatever subset is asked for.
const REQUIRED_FIELDS: [&str; 2] = ["Id", "SystemModstamp"];

/// The fields to copy, in describe order, with their local columns.
pub fn synced_fields(
    object: &ObjectDescribe,
    wanted: Option<&[String]>,
) -> Result<Vec<SyncedField>, String> {
    for required in REQUIRED_FIELDS {
        if object.field(required).is_none() {
            return Err(format!(
                "{} has no {required} field, so it cannot be synced incrementally",
                object.name
            ));
        }
    }
    if let Some(wanted) = wanted {
        let unknown: Vec<&str> = wanted
            .iter()
            .filter(|w| object.field(w).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "{} has no field {}",
                object.name,
                unknown.join(", ")
            ));
        }
    }
    let included = |name: &str| {
        REQUIRED_FIELDS.iter().any(|r| r.eq_ignore_ascii_case(name))
            || wanted.is_none_or(|w| w.iter().any(|x| x.eq_ignore_ascii_case(name)))
    };
    let mut namer = ColumnNamer::with_taken([SYNCED_AT.to_string(), DELETED_AT.to_string()]);
    Ok(object
        .fields
        .iter()
        .filter(|f| included(&f.name))
        .map(|f| SyncedField {
            field: f.name.clone(),
            column: namer.name(&f.name, true),
            pg: pg_type(&f.field_type),
        })
        .collect())
}

/// The synced fields Salesforce still has, with their columns and types.
pub fn present_fields(
    fields: &[String],
    columns: &[String],
    object: &ObjectDescribe,
) -> Vec<SyncedField> {
    fields
        .iter()
        .zip(columns)
        .filter_map(|(field, column)| {
            object.field(field).map(|d| SyncedField {
                field: field.clone(),
                column: column.clone(),
                pg: pg_type(&d.field_type),
            })
        })
        .collect()
}

pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

pub fn create_table_sql(table: &str, fields: &[SyncedField], soft_delete: bool) -> String {
    let mut columns: Vec<String> = fields
        .iter()
        .map(|f| {
            let key = if f.field == "Id" { " PRIMARY KEY" } else { "" };
            format!("  {} {}{key}", quote_ident(&f.column), f.pg.ddl())
        })
        .collect();
    columns.push(format!("  {SYNCED_AT} pg_catalog.timestamptz NOT NULL"));
    if soft_delete {
        columns.push(format!("  {DELETED_AT} pg_catalog.timestamptz"));
    }
    format!("CREATE TABLE {table} (\n{}\n)", columns.join(",\n"))
}

/// The column of a shared copy that says which org (server) a row is from.
pub const ORG: &str = "_org";

/// A table that several servers' syncs of one object share: partitioned
/// by org, one partition each, keyed by (org, id), since Ids repeat
/// across orgs (a sandbox keeps production's).
pub fn create_shared_table_sql(table: &str, fields: &[SyncedField], soft_delete: bool) -> String {
    let id = fields
        .iter()
        .find(|f| f.field == "Id")
        .map(|f| quote_ident(&f.column))
        .unwrap_or_else(|| "id".into());
    let mut columns = vec![format!("  {ORG} pg_catalog.text NOT NULL")];
    columns.extend(
        fields
            .iter()
            .map(|f| format!("  {} {}", quote_ident(&f.column), f.pg.ddl())),
    );
    columns.push(format!("  {SYNCED_AT} pg_catalog.timestamptz NOT NULL"));
    if soft_delete {
        columns.push(format!("  {DELETED_AT} pg_catalog.timestamptz"));
    }
    columns.push(format!("  PRIMARY KEY ({ORG}, {id})"));
    format!(
        "CREATE TABLE {table} (\n{}\n) PARTITION BY LIST ({ORG})",
        columns.join(",\n")
    )
}

/// One org's partition of a shared copy: its rows say the org by default,
/// and its own unique index on the id lets a sync upsert by id alone.
pub fn create_partition_sql(
    partition: &str,
    parent: &str,
    org: &str,
    id_column: &str,
) -> [String; 2] {
    let org = crate::naming::quote_literal(org);
    [
        format!("CREATE TABLE {partition} PARTITION OF {parent} ({ORG} WITH OPTIONS DEFAULT {org}) FOR VALUES IN ({org})"),
        format!("CREATE UNIQUE INDEX ON {partition} ({})", quote_ident(id_column)),
    ]
}

/// How the object's fields moved away from what the sync copies.
#[derive(Debug, Default, PartialEq)]
pub struct Drift {
    pub added: Vec<SyncedField>,
    pub removed: Vec<String>,
}

/// Fields added since (copied only when the sync takes every field) and
/// fields gone from Salesforce.
pub fn drift(
    object: &ObjectDescribe,
    synced: &[String],
    columns: &[String],
    every_field: bool,
) -> Drift {
    let removed = synced
        .iter()
        .filter(|f| object.field(f).is_none())
        .cloned()
        .collect();
    let mut added = Vec::new();
    if every_field {
        let mut namer = ColumnNamer::with_taken(
            columns
                .iter()
                .cloned()
                .chain([SYNCED_AT.to_string(), DELETED_AT.to_string()]),
        );
        for f in &object.fields {
            if !synced.iter().any(|s| s.eq_ignore_ascii_case(&f.name)) {
                added.push(SyncedField {
                    field: f.name.clone(),
                    column: namer.name(&f.name, true),
                    pg: pg_type(&f.field_type),
                });
            }
        }
    }
    Drift { added, removed }
}

pub fn add_columns_sql(table: &str, added: &[SyncedField]) -> String {
    let adds: Vec<String> = added
        .iter()
        .map(|f| {
            format!(
                "ADD COLUMN IF NOT EXISTS {} {}",
                quote_ident(&f.column),
                f.pg.ddl()
            )
        })
        .collect();
    format!("ALTER TABLE {table} {}", adds.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::describe::FieldDescribe;

    fn field(name: &str, t: &str) -> FieldDescribe {
        FieldDescribe::of_type(name, t)
    }
    use serde_json::json;

    #[test]
    fn every_is_bounded_as_postgres_compares_intervals() {
        let second = 1_000_000;
        assert!(check_every(0, 0, second).is_ok());
        assert!(
            check_every(0, 0, second - 1).is_err(),
            "a millisecond short"
        );
        assert!(check_every(0, 0, 1_000).is_err(), "1 millisecond");
        assert!(check_every(0, 0, 0).is_err());
        assert!(check_every(0, 0, -second).is_err());
        assert!(check_every(12, 0, 0).is_ok(), "1 year");
        assert!(check_every(0, 360, 0).is_ok(), "360 days equal a year");
        assert!(check_every(0, 361, 0).is_err());
        assert!(check_every(12, 0, 1).is_err());
        assert!(check_every(3_600_000, 0, 0).is_err(), "300000 years");
        assert!(
            check_every(i32::MAX, i32::MAX, i64::MAX).is_err(),
            "no overflow"
        );
        assert!(
            check_every(-1, 300, 0).is_ok(),
            "mixed signs compare as their sum"
        );
    }

    fn contact() -> ObjectDescribe {
        ObjectDescribe {
            name: "Contact".into(),
            fields: vec![
                field("Id", "id"),
                field("LastName", "string"),
                field("Languages__c", "multipicklist"),
                field("SystemModstamp", "datetime"),
                field("Amount", "currency"),
            ],
        }
    }

    #[test]
    fn options_are_checked() {
        assert_eq!(
            SyncOptions::parse(&json!({})).unwrap(),
            SyncOptions {
                fields: None,
                soft_delete: false,
                lookback_seconds: 300,
                api: BackfillApi::Auto,
                formula_refresh_seconds: Some(6 * 3600),
                cdc: false,
                shared: false,
                write: false,
            }
        );
        assert!(SyncOptions::parse(&json!({"write": true})).unwrap().write);
        assert!(SyncOptions::parse(&json!({"write": "yes"})).is_err());
        assert_eq!(
            SyncOptions::parse(&json!({"write": true, "shared": true}))
                .unwrap_err()
                .message,
            "sync options \"write\" and \"shared\" cannot go together"
        );
        let refresh = |v: serde_json::Value| {
            SyncOptions::parse(&json!({ "formula_refresh": v })).map(|o| o.formula_refresh_seconds)
        };
        assert_eq!(refresh(json!("15 minutes")).unwrap(), Some(900));
        assert_eq!(refresh(json!("1 hour")).unwrap(), Some(3600));
        assert_eq!(refresh(json!(30)).unwrap(), Some(30));
        assert_eq!(refresh(json!("off")).unwrap(), None);
        assert!(refresh(json!("soon")).is_err() && refresh(json!(0)).is_err());
        let o = SyncOptions::parse(
            &json!({"fields": ["LastName"], "soft_delete": true, "lookback_seconds": 60}),
        )
        .unwrap();
        assert_eq!(
            (o.fields.unwrap(), o.soft_delete, o.lookback_seconds),
            (vec!["LastName".to_string()], true, 60)
        );
        for bad in [
            json!([]),
            json!({"fields": []}),
            json!({"fields": "Email"}),
            json!({"soft_delete": "yes"}),
            json!({"lookback_seconds": -1}),
            json!({"lookbak": 5}),
            json!({"api": "soap"}),
        ] {
            assert!(SyncOptions::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_subset_keeps_id_and_system_modstamp() {
        let fields = synced_fields(&contact(), Some(&["lastname".to_string()])).unwrap();
        let names: Vec<(&str, &str, PgType)> = fields
            .iter()
            .map(|f| (f.field.as_str(), f.column.as_str(), f.pg))
            .collect();
        assert_eq!(
            names,
            vec![
                ("Id", "id", PgType::Text),
                ("LastName", "last_name", PgType::Text),
                ("SystemModstamp", "system_modstamp", PgType::Timestamptz)
            ]
        );
        assert_eq!(
            synced_fields(&contact(), Some(&["Nope__c".to_string()])).unwrap_err(),
            "Contact has no field Nope__c"
        );
        let no_stamp = ObjectDescribe {
            name: "X".into(),
            fields: vec![field("Id", "id")],
        };
        assert!(synced_fields(&no_stamp, None)
            .unwrap_err()
            .contains("SystemModstamp"));
    }

    #[test]
    fn the_table_uses_the_shared_type_map() {
        let fields = synced_fields(&contact(), None).unwrap();
        assert_eq!(
            create_table_sql(&qualified("crm", "contact"), &fields, true),
            "CREATE TABLE crm.contact (\n  id pg_catalog.text PRIMARY KEY,\n  last_name pg_catalog.text,\n  languages__c pg_catalog.text[],\n  system_modstamp pg_catalog.timestamptz,\n  amount pg_catalog.numeric,\n  _synced_at pg_catalog.timestamptz NOT NULL,\n  _deleted_at pg_catalog.timestamptz\n)"
        );
    }

    #[test]
    fn drift_finds_added_and_removed_fields() {
        let mut object = contact();
        object.fields.retain(|f| f.name != "Amount");
        object.fields.push(field("Tier__c", "picklist"));
        let synced: Vec<String> = ["Id", "LastName", "Languages__c", "SystemModstamp", "Amount"]
            .map(String::from)
            .to_vec();
        let columns: Vec<String> = [
            "id",
            "last_name",
            "languages__c",
            "system_modstamp",
            "amount",
        ]
        .map(String::from)
        .to_vec();
        let d = drift(&object, &synced, &columns, true);
        assert_eq!(d.removed, vec!["Amount".to_string()]);
        assert_eq!(
            d.added,
            vec![SyncedField {
                field: "Tier__c".into(),
                column: "tier__c".into(),
                pg: PgType::Text
            }]
        );
        assert_eq!(
            add_columns_sql("crm.contact", &d.added),
            "ALTER TABLE crm.contact ADD COLUMN IF NOT EXISTS tier__c pg_catalog.text"
        );
        assert!(
            drift(&object, &synced, &columns, false).added.is_empty(),
            "a field subset never grows"
        );
    }
}
