//! What users call to feed a platform event channel into a table:
//! `salesforce.event_feed` (the table is made if it does not exist) and
//! `salesforce.event_feed_drop`. The sync worker does the feeding (`feed`).

use super::publish::event_name;
use crate::access;
use crate::catalog;
use crate::error::{Error, OrRaise, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// The columns a feed's table needs, and their types.
pub const COLUMNS: &[(&str, &str)] = &[
    ("replay_id", "bytea"),
    ("event_uuid", "text"),
    ("created_date", "timestamptz"),
    ("payload", "jsonb"),
];

/// `schema.table` as (schema, table), through PostgreSQL's own parser.
fn qualified_parts(target: &str) -> Result<(String, String)> {
    let parts: Vec<String> = Spi::get_one_with_args::<Vec<String>>(
        "SELECT pg_catalog.parse_ident($1)",
        &[target.into()],
    )
    .map_err(|_| {
        Error::invalid(
            format!("{target:?} is not a table name"),
            "Name it as schema.table.",
        )
    })?
    .unwrap_or_default();
    match parts.as_slice() {
        [schema, table] => Ok((schema.clone(), table.clone())),
        _ => Err(Error::invalid(
            format!("{target:?} is not a schema-qualified table name"),
            "Name the feed's table as schema.table, such as app.signups.",
        )),
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The feed's table: an existing one `role` owns with the feed's columns,
/// or a new one made as `role`.
fn table_for(target: &str, role: pg_sys::Oid) -> Result<pg_sys::Oid> {
    let (schema, table) = qualified_parts(target)?;
    let namespace = unsafe {
        let c = std::ffi::CString::new(schema.clone()).unwrap_or_default();
        pg_sys::get_namespace_oid(c.as_ptr(), true)
    };
    if namespace == pg_sys::Oid::INVALID {
        return Err(Error::sql(
            PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
            format!("schema \"{schema}\" does not exist"),
        ));
    }
    let existing = unsafe {
        let c = std::ffi::CString::new(table.clone()).unwrap_or_default();
        pg_sys::get_relname_relid(c.as_ptr(), namespace)
    };
    if existing != pg_sys::Oid::INVALID {
        access::check_table(existing, role, "the feed's table")?;
        if let Some((column, kind)) = COLUMNS
            .iter()
            .find(|(c, _)| !catalog::has_column(existing, c))
        {
            return Err(Error::invalid(
                format!("table {target} has no column {column}"),
                &format!("A feed's table has the columns {}; column {column} is {kind}. Or name a new table and the feed makes it.", COLUMNS.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")),
            ));
        }
        return Ok(existing);
    }
    access::check_creates_in(namespace, role)?;
    let name = format!("{}.{}", quote(&schema), quote(&table));
    access::as_role(role, || {
        Spi::run(&format!(
            "CREATE TABLE {name} (replay_id bytea PRIMARY KEY, event_uuid text NOT NULL UNIQUE, \
             created_date timestamptz, payload jsonb NOT NULL, \
             received_at timestamptz NOT NULL DEFAULT pg_catalog.now())"
        ))
    })
    .map_err(|e| Error::sql(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e.to_string()))?;
    Ok(unsafe {
        let c = std::ffi::CString::new(table).unwrap_or_default();
        pg_sys::get_relname_relid(c.as_ptr(), namespace)
    })
}

/// Feeds the platform events of `topic` (`Signup__e`) on `server` into the
/// table `target` (`schema.table`, made if it does not exist), from the
/// oldest event Salesforce keeps (72 hours). Returns the feed's id.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn event_feed(server: &str, topic: &str, target: &str) -> i64 {
    let role = access::current_role();
    (|| {
        let server_oid = catalog::server_oid(server)?;
        access::check_server_use(server_oid, role)?;
        let topic = event_name(topic)?;
        let relid = table_for(target, role)?;
        let id =
            access::as_extension(|| {
                Spi::get_one_with_args::<i64>(
                "WITH made AS (INSERT INTO salesforce.event_feeds (owner, server, topic, target) \
                 VALUES ($1, $2, $3, $4::pg_catalog.oid::pg_catalog.regclass) \
                 ON CONFLICT (server, topic, target) DO NOTHING RETURNING id) \
                 SELECT (SELECT id FROM made)",
                &[role.into(), server.into(), topic.as_str().into(), relid.into()],
            )
            .map_err(|e| Error::sql(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e.to_string()))
            })?;
        let id = id.ok_or_else(|| {
            Error::sql(
                PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
                format!("{topic} on server {server} already feeds {target}"),
            )
        })?;
        crate::delivery::wake::at_commit();
        Ok::<i64, Error>(id)
    })()
    .or_raise()
}

/// Stops feeding `topic` on `server` into the caller's tables; the tables
/// and their rows stay. Returns how many feeds stopped.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn event_feed_drop(server: &str, topic: &str) -> i64 {
    let role = access::current_role();
    (|| {
        let topic = event_name(topic)?;
        access::as_extension(|| {
            Spi::get_one_with_args::<i64>(
                "WITH gone AS (DELETE FROM salesforce.event_feeds \
                  WHERE server = $1 AND topic = $2 AND pg_catalog.pg_has_role($3, owner, 'USAGE') RETURNING 1) \
                 SELECT pg_catalog.count(*) FROM gone",
                &[server.into(), topic.as_str().into(), role.into()],
            )
            .map(Option::unwrap_or_default)
            .map_err(|e| Error::sql(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e.to_string()))
        })
    })()
    .or_raise()
}
