//! SQL functions beside the foreign tables, as the current user's mapping
//! sees the org: any SOQL (what the wrapper cannot express), the org's
//! limits, and an object's fields. Each call asks Salesforce afresh, and
//! needs USAGE on the server and a user mapping (the role's or PUBLIC's),
//! as a foreign table needs for the server behind it.

use crate::access;
use crate::catalog;
use crate::connection;
use crate::error::{Error, OrRaise, Result};
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};
use salesforce_core::client::session::{PageHead, QueryPage};
use salesforce_core::typemap::pg_type;
use serde_json::{Map, Value as Json};

fn mapping(server: &str) -> (Oid, Oid) {
    let server = catalog::server_oid(server).or_raise();
    let user = access::current_role();
    access::check_server_use(server, user).or_raise();
    (server, user)
}

/// The records of a SOQL statement, every page of it, each as jsonb with
/// its parent fields and subqueries nested and `attributes` removed.
#[pg_extern(name = "query")]
#[search_path(pg_catalog, pg_temp)]
fn run_query(server: &str, soql: &str) -> SetOfIterator<'static, JsonB> {
    let (server, user) = mapping(server);
    let first = connection::with_session(server, user, |s| s.query(soql, false)).or_raise();
    SetOfIterator::new(Records {
        server,
        user,
        next: first.next_records_url.clone().filter(|_| !first.done),
        page: first.records.into_iter(),
    })
}

/// Reads a query's pages as the rows are asked for.
struct Records {
    server: Oid,
    user: Oid,
    page: std::vec::IntoIter<Map<String, Json>>,
    next: Option<String>,
}

impl Records {
    fn next_page(&self, url: &str) -> Result<QueryPage> {
        connection::with_session(self.server, self.user, |s| s.next_page(url))
    }

    /// A value without `attributes`, with each subquery's records, all of
    /// their pages, as an array.
    fn clean(&self, value: Json) -> Result<Json> {
        match value {
            Json::Object(mut o) => {
                o.remove("attributes");
                if let (Some(Json::Array(_)), Some(Json::Bool(_))) =
                    (o.get("records"), o.get("done"))
                {
                    return self.children(o);
                }
                o.into_iter()
                    .map(|(k, v)| Ok((k, self.clean(v)?)))
                    .collect::<Result<Map<_, _>>>()
                    .map(Json::Object)
            }
            other => Ok(other),
        }
    }

    /// A subquery's records, with the pages after the first it came with.
    fn children(&self, mut result: Map<String, Json>) -> Result<Json> {
        let mut page = match result.remove("records") {
            Some(Json::Array(records)) => records,
            _ => Vec::new(),
        };
        let head: PageHead = serde_json::from_value(Json::Object(result)).map_err(|e| {
            Error::sql(
                PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE,
                format!("a subquery's result: {e}"),
            )
        })?;
        let mut next = head.next();
        let mut records = Vec::new();
        loop {
            for r in page {
                records.push(self.clean(r)?);
            }
            let Some(url) = next.take() else { break };
            let more = self.next_page(&url)?;
            next = more.next_records_url.filter(|_| !more.done);
            page = more.records.into_iter().map(Json::Object).collect();
        }
        Ok(Json::Array(records))
    }
}

impl Iterator for Records {
    type Item = JsonB;

    fn next(&mut self) -> Option<JsonB> {
        loop {
            if let Some(record) = self.page.next() {
                return Some(JsonB(self.clean(Json::Object(record)).or_raise()));
            }
            let url = self.next.take()?;
            let page = self.next_page(&url).or_raise();
            self.next = page.next_records_url.filter(|_| !page.done);
            self.page = page.records.into_iter();
        }
    }
}

/// The org's limits (`/limits`): one API request.
#[pg_extern(name = "limits")]
#[search_path(pg_catalog, pg_temp)]
fn org_limits(
    server: &str,
) -> TableIterator<'static, (name!(name, String), name!(max, i64), name!(remaining, i64))> {
    let (server, user) = mapping(server);
    let limits = connection::with_session(server, user, |s| s.limits()).or_raise();
    TableIterator::new(
        limits
            .into_iter()
            .map(|(name, l)| (name, l.max, l.remaining)),
    )
}

/// An object's fields as the current user sees them, and the column type
/// each maps to: one API request.
#[pg_extern(name = "describe")]
#[search_path(pg_catalog, pg_temp)]
fn describe_object(
    server: &str,
    object: &str,
) -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(type, String),
        name!(column_type, String),
        name!(createable, bool),
        name!(updateable, bool),
        name!(nillable, bool),
        name!(filterable, bool),
    ),
> {
    let (server, user) = mapping(server);
    let described = connection::with_session(server, user, |s| s.describe(object))
        .map_err(|e| connection::unknown_object(e, object))
        .or_raise();
    TableIterator::new(described.fields.into_iter().map(|f| {
        let column_type = pg_type(&f.field_type).sql().to_string();
        (
            f.name,
            f.field_type,
            column_type,
            f.createable,
            f.updateable,
            f.nillable,
            f.filterable,
        )
    }))
}

/// Drops what is cached of a server's describes, of one object or all, for
/// every user, in every backend: the next use asks Salesforce. For a field
/// added in Salesforce that a foreign table or a sync should see now.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn refresh_describe(server: &str, object: default!(Option<&str>, "NULL")) {
    let (server, _) = mapping(server);
    connection::refresh_describes(server, object);
}
