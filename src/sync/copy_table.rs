//! A sync's copy: a table held by OID, written only as the sync's owner.
//!
//! Each write locks the table, finds it again by OID, checks that it is
//! still an ordinary table its owner owns, and runs as that owner in a
//! security-restricted operation with the search path pinned: the copy's
//! triggers, defaults and constraints run as the role that made them, and
//! a renamed copy is still the copy.

use super::rows::Rows;
use crate::access;
use crate::copy;
use crate::error::{Error, Result};
use crate::pg::{catching, in_subtransaction};
use chrono::{DateTime, Utc};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, Oid};
use pgrx::{PgSqlErrorCode, Spi};
use salesforce_core::naming::quote_ident;
use salesforce_core::sync::definition::{self, SyncedField, DELETED_AT, SYNCED_AT};

/// A copy, or a resync's staging table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyTable {
    pub relid: Oid,
    pub owner: Oid,
}

fn run(sql: &str) -> Result<()> {
    Spi::run(sql).map_err(Error::from)
}

impl CopyTable {
    pub fn new(relid: u32, owner: u32) -> CopyTable {
        CopyTable {
            relid: Oid::from(relid),
            owner: Oid::from(owner),
        }
    }

    /// Runs `f` with the table's qualified name, as its owner, the table
    /// locked for writing. A PostgreSQL error inside (a constraint of the
    /// copy, say) comes back as an `Err` with its SQLSTATE; the caller's
    /// (sub)transaction must then abort.
    fn write<T>(&self, f: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        // What the sync writes is never captured for Salesforce (a
        // read-write copy's trigger), so nothing it reads goes back.
        crate::delivery::capture::applying(|| self.write_unchecked(f))
    }

    fn write_unchecked<T>(&self, f: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        access::as_role(self.owner, || {
            catching(|| {
                // Checked before the lock too: never queue for a table
                // that is not the owner's.
                access::check_table(self.relid, self.owner, "the copy")?;
                unsafe {
                    pg_sys::LockRelationOid(
                        self.relid,
                        pg_sys::RowExclusiveLock as pg_sys::LOCKMODE,
                    )
                };
                let name = access::check_table(self.relid, self.owner, "the copy")?;
                f(&name.qualified())
            })
        })
    }

    /// The table's qualified name now, for messages.
    pub fn name(&self) -> String {
        access::table_name(self.relid)
            .map(|n| n.qualified())
            .unwrap_or_else(|| format!("(dropped table {})", self.relid.to_u32()))
    }

    pub fn upsert_rows(&self, rows: &Rows) -> Result<i64> {
        if rows.is_empty() {
            return Ok(0);
        }
        self.write(|table| upsert_rows(table, rows))
    }

    pub fn update_changed_rows(&self, rows: &Rows) -> Result<i64> {
        if rows.is_empty() {
            return Ok(0);
        }
        self.write(|table| update_changed_rows(table, rows))
    }

    pub fn insert_new_rows(&self, rows: &mut Rows) -> Result<i64> {
        self.write(|table| insert_new_rows(self.relid, table, rows))
    }

    pub fn delete_rows(
        &self,
        id_column: &str,
        soft_delete: bool,
        ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<i64> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.write(|table| delete_rows(table, id_column, soft_delete, ids, at))
    }

    pub fn keep_only(
        &self,
        id_column: &str,
        soft_delete: bool,
        live: &[String],
        at: DateTime<Utc>,
    ) -> Result<i64> {
        self.write(|table| keep_only(table, id_column, soft_delete, live, at))
    }

    /// Adds columns for fields new in Salesforce: to the shared table, for
    /// one org's partition of it (every partition gets them).
    pub fn add_columns(&self, added: &[SyncedField]) -> Result<()> {
        match self.shared_parent()? {
            Some(parent) => access::as_role(self.owner, || {
                catching(|| {
                    let name = access::check_shared_table(parent, self.owner)?;
                    run(&definition::add_columns_sql(&name.qualified(), added))
                })
            }),
            None => self.write(|table| run(&definition::add_columns_sql(table, added))),
        }
    }

    /// The shared table this copy is a partition of, if it is one.
    fn shared_parent(&self) -> Result<Option<Oid>> {
        let root = access::pinned(|| {
            Spi::get_one_with_args::<Oid>(
                "SELECT pg_catalog.pg_partition_root($1::pg_catalog.regclass)::pg_catalog.oid",
                &[self.relid.into()],
            )
        })?;
        Ok(root.filter(|r| *r != self.relid))
    }

    /// Makes this table hold exactly the rows of `staging`, then drops it.
    pub fn replace_contents(
        &self,
        staging: &CopyTable,
        id_column: &str,
        columns: &[String],
        soft_delete: bool,
    ) -> Result<()> {
        let staged = staging.write(|name| Ok(name.to_string()))?;
        self.write(|table| replace_contents(table, &staged, id_column, columns, soft_delete))
    }

    /// How many rows the table holds: counted as its owner, from the table
    /// itself, for `sync_status` to show without reading the table.
    pub fn count_rows(&self) -> Result<i64> {
        self.write(|table| {
            Ok(Spi::get_one::<i64>(&format!("SELECT count(*) FROM ONLY {table}"))?.unwrap_or(0))
        })
    }

    /// Drops the table, if it is still one the owner owns.
    pub fn drop_table(&self) -> Result<()> {
        if access::table_name(self.relid).is_none() {
            return Ok(());
        }
        self.write(|table| run(&format!("DROP TABLE {table}")))
    }

    /// A new empty table like `self`, named `name` in the same schema, made
    /// as the owner; refuses to take over a table of that name.
    pub fn create_like(&self, name: &str) -> Result<CopyTable> {
        let relid = self.write(|table| {
            let schema = access::table_name(self.relid)
                .expect("checked by write")
                .schema;
            let staging = definition::qualified(&schema, name);
            if Spi::get_one_with_args::<bool>("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[staging.clone().into()])? == Some(true) {
                return Err(Error::sql(
                    PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
                    format!("cannot stage the resync in {staging}: a table of that name exists"),
                )
                .with_hint("Rename or drop that table; the extension never takes over a table it did not make."));
            }
            run(&format!("CREATE TABLE {staging} (LIKE {table} INCLUDING ALL)"))?;
            Spi::get_one_with_args::<Oid>("SELECT pg_catalog.to_regclass($1)::pg_catalog.oid", &[staging.into()])?
                .ok_or_else(|| Error::sql(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "the staging table was not made"))
        })?;
        Ok(CopyTable {
            relid,
            owner: self.owner,
        })
    }
}

/// `a = EXCLUDED.a, ...` for every quoted column but the key.
fn set_from_excluded(quoted: &[String], id: &str) -> String {
    quoted
        .iter()
        .filter(|c| *c != id)
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `WHERE` for an upsert's update: only a row whose values differ, and
/// never with an older version (by SystemModstamp) than the row holds. So a
/// re-read writes nothing: no new row version, no trigger, no WAL.
fn changed_and_newer(quoted: &[String], id: &str, stamp: Option<&str>) -> String {
    let compared: Vec<&String> = quoted
        .iter()
        .filter(|c| *c != id && c.as_str() != SYNCED_AT)
        .collect();
    let list = |prefix: &str| {
        compared
            .iter()
            .map(|c| format!("{prefix}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let changed = format!(
        "ROW({}) IS DISTINCT FROM ROW({})",
        list("t"),
        list("EXCLUDED")
    );
    match stamp {
        Some(s) => format!(
            "{changed} AND (t.{s} IS NULL OR EXCLUDED.{s} IS NULL OR EXCLUDED.{s} >= t.{s})"
        ),
        None => changed,
    }
}

/// Writes rows into `table`, replacing rows with the same id when they
/// changed, and returns how many it wrote. Each column arrives as an array
/// of input texts and is cast to its type, which runs the type's input
/// function as a scan does.
fn upsert_rows(table: &str, rows: &Rows) -> Result<i64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut columns: Vec<String> = rows.fields.iter().map(|f| quote_ident(&f.column)).collect();
    let id = quote_ident(
        &rows
            .fields
            .iter()
            .find(|f| f.field == "Id")
            .map(|f| f.column.clone())
            .unwrap_or_else(|| "id".into()),
    );
    let mut selected: Vec<String> = rows
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| format!("r.c{i}::{}", f.pg.ddl()))
        .collect();
    let mut arrays: Vec<DatumWithOid> = (0..rows.fields.len())
        .map(|c| rows.column(c).into())
        .collect();
    columns.push(SYNCED_AT.into());
    selected.push("now()".into());
    if rows.soft_delete() {
        columns.push(DELETED_AT.into());
        selected.push(format!("r.c{}::pg_catalog.timestamptz", arrays.len()));
        arrays.push(rows.column(rows.fields.len()).into());
    }
    let parameters: Vec<String> = (1..=arrays.len())
        .map(|i| format!("${i}::text[]"))
        .collect();
    let names: Vec<String> = (0..arrays.len()).map(|i| format!("c{i}")).collect();
    let stamp = rows
        .fields
        .iter()
        .find(|f| f.field == "SystemModstamp")
        .map(|f| quote_ident(&f.column));
    let sql = format!(
        "WITH w AS (INSERT INTO {table} AS t ({}) SELECT {} FROM unnest({}) AS r({}) ON CONFLICT ({id}) DO UPDATE SET {} WHERE {} RETURNING 1) SELECT count(*) FROM w",
        columns.join(", "),
        selected.join(", "),
        parameters.join(", "),
        names.join(", "),
        set_from_excluded(&columns, &id),
        changed_and_newer(&columns, &id, stamp.as_deref())
    );
    Ok(Spi::get_one_with_args::<i64>(&sql, &arrays)?.unwrap_or(0))
}

/// Updates the given columns of rows already in the copy, where a value
/// differs and, if SystemModstamp is among them, never to an older version;
/// returns how many rows changed. Rows not in the copy are left to the
/// change polls.
fn update_changed_rows(table: &str, rows: &Rows) -> Result<i64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let id = rows
        .fields
        .iter()
        .position(|f| f.field == "Id")
        .expect("the rows carry their Id");
    let value = |i: usize| format!("r.c{i}::{}", rows.fields[i].pg.ddl());
    let others: Vec<usize> = (0..rows.fields.len()).filter(|i| *i != id).collect();
    let column = |i: usize| quote_ident(&rows.fields[i].column);
    let set: Vec<String> = others
        .iter()
        .map(|&i| format!("{} = {}", column(i), value(i)))
        .collect();
    let old: Vec<String> = others.iter().map(|&i| format!("t.{}", column(i))).collect();
    let new: Vec<String> = others.iter().map(|&i| value(i)).collect();
    let arrays: Vec<DatumWithOid> = (0..rows.fields.len())
        .map(|c| rows.column(c).into())
        .collect();
    let parameters: Vec<String> = (1..=arrays.len())
        .map(|i| format!("${i}::text[]"))
        .collect();
    let names: Vec<String> = (0..arrays.len()).map(|i| format!("c{i}")).collect();
    let newer = rows
        .fields
        .iter()
        .position(|f| f.field == "SystemModstamp")
        .map(|i| format!(" AND (t.{0} IS NULL OR {1} >= t.{0})", column(i), value(i)))
        .unwrap_or_default();
    let sql = format!(
        "WITH w AS (UPDATE {table} AS t SET {}, {SYNCED_AT} = now() FROM unnest({}) AS r({}) WHERE t.{} = r.c{id} AND ROW({}) IS DISTINCT FROM ROW({}){newer} RETURNING 1) SELECT count(*) FROM w",
        set.join(", "),
        parameters.join(", "),
        names.join(", "),
        column(id),
        old.join(", "),
        new.join(", ")
    );
    Ok(Spi::get_one_with_args::<i64>(&sql, &arrays)?.unwrap_or(0))
}

/// Writes rows a backfill reads for the first time: through COPY, unless
/// some are in the copy already (written through, or read by an earlier
/// job), when they are upserted instead. COPY is tried first, in a
/// subtransaction: a batch that collides costs one rollback, and no batch
/// pays for a lookup of its ids.
fn insert_new_rows(relid: Oid, table: &str, rows: &mut Rows) -> Result<i64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut columns: Vec<String> = rows.fields.iter().map(|f| f.column.clone()).collect();
    columns.push(SYNCED_AT.into());
    if rows.soft_delete() {
        columns.push(DELETED_AT.into());
    }
    let data = rows.take_copy_text();
    match in_subtransaction(|| copy::copy_in(relid, &columns, data)) {
        Ok(n) => Ok(n as i64),
        Err(Error::Sql {
            code: PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
            ..
        }) => upsert_rows(table, rows),
        Err(e) => Err(e),
    }
}

/// Removes rows by id, or with soft deletes marks them deleted at `at`.
fn delete_rows(
    table: &str,
    id_column: &str,
    soft_delete: bool,
    ids: &[String],
    at: DateTime<Utc>,
) -> Result<i64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let id = quote_ident(id_column);
    let (sql, args): (String, Vec<DatumWithOid>) = if soft_delete {
        (
            format!("WITH d AS (UPDATE {table} SET {DELETED_AT} = $2::timestamptz, {SYNCED_AT} = now() WHERE {id} = ANY($1) AND {DELETED_AT} IS NULL RETURNING 1) SELECT count(*) FROM d"),
            vec![ids.to_vec().into(), at.to_rfc3339().into()],
        )
    } else {
        (format!("WITH d AS (DELETE FROM {table} WHERE {id} = ANY($1) RETURNING 1) SELECT count(*) FROM d"), vec![ids.to_vec().into()])
    };
    Ok(Spi::get_one_with_args::<i64>(&sql, &args)?.unwrap_or(0))
}

/// Removes (or marks deleted) every row whose id is not in `live`.
fn keep_only(
    table: &str,
    id_column: &str,
    soft_delete: bool,
    live: &[String],
    at: DateTime<Utc>,
) -> Result<i64> {
    let id = quote_ident(id_column);
    let sql = if soft_delete {
        format!("WITH d AS (UPDATE {table} SET {DELETED_AT} = $2::timestamptz, {SYNCED_AT} = now() WHERE NOT ({id} = ANY($1)) AND {id} NOT LIKE 'queued:%' AND {DELETED_AT} IS NULL RETURNING 1) SELECT count(*) FROM d")
    } else {
        format!("WITH d AS (DELETE FROM {table} WHERE NOT ({id} = ANY($1)) AND {id} NOT LIKE 'queued:%' AND $2::timestamptz IS NOT NULL RETURNING 1) SELECT count(*) FROM d")
    };
    Ok(
        Spi::get_one_with_args::<i64>(&sql, &[live.to_vec().into(), at.to_rfc3339().into()])?
            .unwrap_or(0),
    )
}

/// Makes `target` hold exactly the rows of `staging`, in this transaction,
/// so readers see the old copy or the new one and never a partial one.
fn replace_contents(
    target: &str,
    staging: &str,
    id_column: &str,
    columns: &[String],
    soft_delete: bool,
) -> Result<()> {
    let id = quote_ident(id_column);
    let mut quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    quoted.push(SYNCED_AT.into());
    if soft_delete {
        quoted.push(DELETED_AT.into());
    }
    let list = quoted.join(", ");
    run(&format!(
        "DELETE FROM {target} t WHERE NOT EXISTS (SELECT 1 FROM {staging} s WHERE s.{id} = t.{id}) AND t.{id} NOT LIKE 'queued:%'"
    ))?;
    run(&format!(
        "INSERT INTO {target} AS t ({list}) SELECT {list} FROM {staging} ON CONFLICT ({id}) DO UPDATE SET {} WHERE {}",
        set_from_excluded(&quoted, &id),
        changed_and_newer(&quoted, &id, None)
    ))?;
    run(&format!("DROP TABLE {staging}"))
}
