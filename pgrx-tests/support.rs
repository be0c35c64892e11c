//! `#[pg_test]`s: the extension inside PostgreSQL against a running sfsim
//! (`SFSIM_URL`, started by scripts/test.sh). Pushdown claims are checked
//! against the SOQL sfsim logged, never against our own code.

use pgrx::prelude::*;
use salesforce_core::client::http;
use serde_json::Value;

fn never() -> bool {
    false
}

/// The running sfsim's URL (scripts/test.sh starts one and passes it in).
pub fn sim() -> String {
    Spi::get_one::<String>("SELECT current_setting('sfsim.url', true)")
        .ok()
        .flatten()
        .filter(|u| !u.is_empty())
        .expect(
            "no sfsim: run the tests through scripts/test.sh, or set SFSIM_URL for cargo pgrx test",
        )
}

pub fn control(method: &str, path: &str, body: Option<Value>) -> Value {
    let client = http::client(std::time::Duration::from_secs(10)).unwrap();
    let url = format!("{}/__sim/{path}", sim());
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let answer = http::send(
        || {
            let r = client.request(method.clone(), &url);
            match &body {
                Some(b) => r
                    .header("Content-Type", "application/json")
                    .body(b.to_string()),
                None => r,
            }
        },
        never,
    )
    .unwrap();
    serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
}

/// The newest request log sequence number, to read only what follows.
pub fn mark() -> u64 {
    control("GET", "requests", None)["requests"]
        .as_array()
        .unwrap()
        .last()
        .map_or(0, |r| r["seq"].as_u64().unwrap())
}

/// Requests logged after `since`.
pub fn requests_since(since: u64) -> Vec<Value> {
    control("GET", &format!("requests?since={since}"), None)["requests"]
        .as_array()
        .unwrap()
        .clone()
}

/// The SOQL of the queries (first pages) logged after `since`.
pub fn soql_since(since: u64) -> Vec<String> {
    requests_since(since)
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/query"))
        .map(|r| r["soql"].as_str().unwrap().to_string())
        .collect()
}

/// A server and a password-grant user mapping for the current user.
pub fn create_server(name: &str, options: &str) {
    let extra = if options.is_empty() {
        String::new()
    } else {
        format!(", {options}")
    };
    Spi::run(&format!(
        "CREATE SERVER {name} FOREIGN DATA WRAPPER salesforce OPTIONS (login_url '{}'{extra})",
        sim()
    ))
    .unwrap();
    Spi::run(&format!(
        "CREATE USER MAPPING FOR CURRENT_USER SERVER {name} OPTIONS (grant_type 'password', client_id 'sfsim-client-id', \
         client_secret 'sfsim-client-secret', username 'admin@sfsim.example', password 'sfsim-password', security_token 'SFSIMTOKEN')"
    ))
    .unwrap();
}

/// A server with the demo org's Contact, Account and Invoice__c imported into schema `name`.
pub fn import_demo(name: &str, options: &str) {
    create_server(name, options);
    Spi::run(&format!("CREATE SCHEMA {name}")).unwrap();
    Spi::run(&format!("IMPORT FOREIGN SCHEMA salesforce LIMIT TO (contact, account, invoice__c) FROM SERVER {name} INTO {name}")).unwrap();
}

/// How many rows a query returns, fetched row by row: OFFSET 0 keeps the
/// count from being pushed down as `SELECT COUNT()`.
pub fn count(sql: &str) -> i64 {
    Spi::get_one::<i64>(&format!(
        "SELECT count(*) FROM (SELECT 1 FROM ({sql}) q OFFSET 0) fenced"
    ))
    .unwrap()
    .unwrap()
}

/// What a failing statement reported.
pub struct Caught {
    pub message: String,
    pub code: String,
    pub detail: String,
    pub hint: String,
    /// LOCATION as psql's verbose mode shows it: function, file:line.
    pub location: String,
}

/// Runs a statement expected to fail and returns its error.
pub fn sql_error(sql: &str) -> Caught {
    let sql = sql.to_string();
    PgTryBuilder::new(move || {
        Spi::run(&sql).unwrap();
        Caught {
            message: "no error".into(),
            code: String::new(),
            detail: String::new(),
            hint: String::new(),
            location: String::new(),
        }
    })
    .catch_others(|e| match e {
        pg_sys::panic::CaughtError::PostgresError(r)
        | pg_sys::panic::CaughtError::ErrorReport(r)
        | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => Caught {
            message: r.message().to_string(),
            code: format!("{:?}", r.sql_error_code()),
            detail: r.detail().unwrap_or_default().to_string(),
            hint: r.hint().unwrap_or_default().to_string(),
            location: format!(
                "{}, {}:{}",
                r.function_name().unwrap_or_default(),
                r.file(),
                r.line_number()
            ),
        },
    })
    .execute()
}

pub fn explain(sql: &str) -> String {
    Spi::connect(|client| {
        client
            .select(&format!("EXPLAIN (VERBOSE) {sql}"), None, &[])
            .unwrap()
            .map(|row| row.get::<String>(1).unwrap().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

pub fn synced_columns(server: &str) -> String {
    Spi::get_one::<String>(&format!("SELECT string_agg(quote_ident(c), ', ') FROM salesforce.syncs, unnest(columns) c WHERE server = '{server}'")).unwrap().unwrap()
}

/// An md5 over every row and column, in id order.
pub fn checksum(table: &str, columns: &str, filter: &str) -> String {
    Spi::get_one::<String>(&format!("SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM (SELECT {columns} FROM {table} {filter}) x")).unwrap().unwrap()
}

/// Sets up server `name` with `object` imported into schema `{name}_remote`, for comparisons.
pub fn server_with_remote(name: &str, options: &str, table: &str) {
    create_server(name, options);
    Spi::run(&format!("CREATE SCHEMA {name}_remote")).unwrap();
    Spi::run(&format!("IMPORT FOREIGN SCHEMA salesforce LIMIT TO (\"{table}\") FROM SERVER {name} INTO {name}_remote")).unwrap();
}

pub fn assert_copy_matches(name: &str, table: &str, filter: &str) {
    let columns = synced_columns(name);
    assert_eq!(
        checksum(&format!("{name}.\"{table}\""), &columns, filter),
        checksum(&format!("{name}_remote.\"{table}\""), &columns, ""),
        "copy {name}.{table} differs from Salesforce"
    );
}

/// Runs the sync and returns its log row as (kind, status, rows_upserted, rows_deleted, error).
pub fn sync_now(server: &str, object: &str) -> (String, String, i64, i64, Option<String>) {
    Spi::run(&format!("CALL salesforce.sync_now('{server}', '{object}')")).unwrap();
    let row = Spi::get_one::<pgrx::JsonB>(&format!("SELECT to_jsonb(r) FROM salesforce.sync_runs r WHERE server = '{server}' ORDER BY id DESC LIMIT 1")).unwrap().unwrap().0;
    (
        row["kind"].as_str().unwrap().into(),
        row["status"].as_str().unwrap().into(),
        row["rows_upserted"].as_i64().unwrap(),
        row["rows_deleted"].as_i64().unwrap(),
        row["error"].as_str().map(String::from),
    )
}

pub fn first_id(server: &str, table: &str) -> String {
    Spi::get_one::<String>(&format!(
        "SELECT id FROM {server}_remote.\"{table}\" ORDER BY id LIMIT 1"
    ))
    .unwrap()
    .unwrap()
}

/// An access token (client credentials) for calls a test makes itself.
pub fn access_token() -> String {
    let client = http::client(std::time::Duration::from_secs(10)).unwrap();
    let url = format!("{}/services/oauth2/token", sim());
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "sfsim-client-id"),
        ("client_secret", "sfsim-client-secret"),
    ];
    let answer = http::send(|| client.post(&url).form(&form), never).unwrap();
    serde_json::from_slice::<Value>(&answer.body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}
