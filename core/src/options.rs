//! The options each catalog object accepts, parsed into typed structures
//! once, for the validator and the run time alike.

use crate::client::auth::Grant;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionScope {
    Wrapper,
    Server,
    UserMapping,
    Table,
    Column,
}

impl OptionScope {
    fn allowed(self) -> &'static [&'static str] {
        match self {
            OptionScope::Wrapper => &[],
            OptionScope::Server => &[
                "login_url",
                "instance_url",
                "api_version",
                "batch_size",
                "request_timeout_ms",
                "max_requests_per_day",
                "budget_reserve_percent",
                "pubsub_url",
                "bulk_threshold",
            ],
            OptionScope::UserMapping => &[
                "grant_type",
                "client_id",
                "client_secret",
                "username",
                "password",
                "security_token",
                "refresh_token",
                "private_key",
                "access_token",
            ],
            OptionScope::Table => &[
                "object",
                "rowid_column",
                "upsert_key",
                "estimated_rows",
                "bulk_threshold",
            ],
            OptionScope::Column => &["field"],
        }
    }

    fn noun(self) -> &'static str {
        match self {
            OptionScope::Wrapper => "foreign-data wrapper",
            OptionScope::Server => "server",
            OptionScope::UserMapping => "user mapping",
            OptionScope::Table => "foreign table",
            OptionScope::Column => "foreign table column",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct OptionError {
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn error(message: String, hint: Option<String>) -> OptionError {
    OptionError { message, hint }
}

pub const GRANT_TYPES: &[&str] = &[
    "password",
    "refresh_token",
    "client_credentials",
    "jwt_bearer",
    "access_token",
];

/// The user-mapping fields each grant type needs.
fn grant_requires(grant: &str) -> &'static [&'static str] {
    match grant {
        "password" => &["client_id", "client_secret", "username", "password"],
        // refresh_token may come later, from salesforce.complete_authorization.
        "refresh_token" => &["client_id"],
        "client_credentials" => &["client_id", "client_secret"],
        "jwt_bearer" => &["client_id", "username", "private_key"],
        _ => &["access_token"],
    }
}

/// Whether a URL may be used: https anywhere, plain http only to loopback,
/// so credentials never cross a network in clear text.
pub fn check_url(option: &str, value: &str) -> Result<(), OptionError> {
    let bad = |why: &str| {
        error(
            format!("invalid value for option \"{option}\": {why}"),
            None,
        )
    };
    let (scheme, rest) = value
        .split_once("://")
        .ok_or_else(|| bad("expected an http(s) URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority)
    {
        h if h.starts_with('[') => h.split(']').next().unwrap_or("").trim_start_matches('['),
        h => h.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Err(bad("the URL has no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => Err(error(
            format!("invalid value for option \"{option}\": plain http is only allowed to loopback addresses"),
            Some("Use https:// so credentials and data are encrypted in transit.".into()),
        )),
        _ => Err(bad("expected an http(s) URL")),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks one catalog object's options as a whole: names, values, and the
/// fields a user mapping's grant needs. The validator and the run time
/// parse them alike, so a value stored past the validator is reported, not
/// replaced by a default.
pub fn validate(scope: OptionScope, options: &[(String, String)]) -> Result<(), OptionError> {
    match scope {
        OptionScope::Server => ServerOptions::parse(options).map(drop),
        OptionScope::UserMapping => UserMappingOptions::parse(options).map(drop),
        OptionScope::Table => TableOptions::parse(options).map(drop),
        OptionScope::Wrapper | OptionScope::Column => check_names(scope, options),
    }
}

fn check_names(scope: OptionScope, options: &[(String, String)]) -> Result<(), OptionError> {
    let allowed = scope.allowed();
    for (name, _) in options {
        if !allowed.contains(&name.as_str()) {
            let hint = if allowed.is_empty() {
                format!("The {} takes no options.", scope.noun())
            } else {
                format!(
                    "Valid options for a {} are: {}.",
                    scope.noun(),
                    allowed.join(", ")
                )
            };
            return Err(error(
                format!(
                    "invalid option \"{name}\" for a salesforce {}",
                    scope.noun()
                ),
                Some(hint),
            ));
        }
    }
    Ok(())
}

fn integer(option: &str, value: &str, min: u64, max: u64) -> Result<u64, OptionError> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(error(format!("invalid value for option \"{option}\": expected a whole number from {min} to {max}"), None)),
    }
}

pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
pub const DEFAULT_API_VERSION: &str = "62.0";
pub const DEFAULT_BATCH_SIZE: u32 = 2000;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_MAX_REQUESTS_PER_DAY: u64 = 28_800;
pub const DEFAULT_RESERVE_PERCENT: u64 = 20;
pub const DEFAULT_PUBSUB_URL: &str = "https://api.pubsub.salesforce.com:7443";

/// A server's options, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerOptions {
    pub login_url: String,
    pub instance_url: Option<String>,
    pub api_version: String,
    /// Records per query page asked for (`Sforce-Query-Options: batchSize`).
    pub batch_size: u32,
    pub request_timeout: Duration,
    /// The syncs' share of the org's daily API requests.
    pub max_requests_per_day: u64,
    /// The share of the org's limit syncs leave to other clients.
    pub budget_reserve_percent: u64,
    /// Where Change Data Capture events are streamed from (gRPC).
    pub pubsub_url: String,
    /// Rows from which a write goes through a Bulk ingest job; 0: never.
    pub bulk_threshold: u64,
}

impl ServerOptions {
    pub fn parse(options: &[(String, String)]) -> Result<ServerOptions, OptionError> {
        check_names(OptionScope::Server, options)?;
        let mut parsed = ServerOptions {
            login_url: DEFAULT_LOGIN_URL.into(),
            instance_url: None,
            api_version: DEFAULT_API_VERSION.into(),
            batch_size: DEFAULT_BATCH_SIZE,
            request_timeout: DEFAULT_TIMEOUT,
            max_requests_per_day: DEFAULT_MAX_REQUESTS_PER_DAY,
            budget_reserve_percent: DEFAULT_RESERVE_PERCENT,
            pubsub_url: DEFAULT_PUBSUB_URL.into(),
            bulk_threshold: crate::write::bulk::DEFAULT_THRESHOLD as u64,
        };
        for (name, value) in options {
            match name.as_str() {
                "login_url" => {
                    check_url(name, value)?;
                    parsed.login_url = value.clone();
                }
                "instance_url" => {
                    check_url(name, value)?;
                    parsed.instance_url = Some(value.clone());
                }
                "pubsub_url" => {
                    check_url(name, value)?;
                    parsed.pubsub_url = value.clone();
                }
                "api_version" if !is_api_version(value) => {
                    return Err(error(format!("invalid value for option \"api_version\": expected a version such as 62.0, got \"{value}\""), None))
                }
                "api_version" => parsed.api_version = value.clone(),
                "batch_size" => parsed.batch_size = integer(name, value, 200, 2000)? as u32,
                "request_timeout_ms" => {
                    parsed.request_timeout =
                        Duration::from_millis(integer(name, value, 1, 3_600_000)?)
                }
                "max_requests_per_day" => {
                    parsed.max_requests_per_day = integer(name, value, 1, 1_000_000_000)?
                }
                "budget_reserve_percent" => {
                    parsed.budget_reserve_percent = integer(name, value, 0, 99)?
                }
                "bulk_threshold" => parsed.bulk_threshold = bulk_threshold(value)?,
                _ => {}
            }
        }
        Ok(parsed)
    }
}

/// Option names whose values are credentials: the only option values that
/// are scrubbed from messages. The others (grant_type, client_id, username,
/// login_url) are not secret, and Salesforce's messages mention them.
pub const SECRET_OPTIONS: &[&str] = &[
    "client_secret",
    "password",
    "security_token",
    "refresh_token",
    "private_key",
    "access_token",
];

pub fn is_secret_option(name: &str) -> bool {
    SECRET_OPTIONS.contains(&name)
}

/// A user mapping's options, parsed: how to log in.
#[derive(Clone, Debug, PartialEq)]
pub struct UserMappingOptions {
    pub grant: Grant,
    /// Every credential the mapping holds, as given and as sent.
    pub secrets: Vec<String>,
}

impl UserMappingOptions {
    pub fn parse(options: &[(String, String)]) -> Result<UserMappingOptions, OptionError> {
        check_names(OptionScope::UserMapping, options)?;
        let get = |k: &str| {
            options
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        let grant_types_hint = || {
            Some(format!(
                "Valid grant types are: {}.",
                GRANT_TYPES.join(", ")
            ))
        };
        let grant = get("grant_type").ok_or_else(|| {
            error(
                "a salesforce user mapping needs option \"grant_type\"".into(),
                grant_types_hint(),
            )
        })?;
        if !GRANT_TYPES.contains(&grant) {
            return Err(error(
                format!("invalid value for option \"grant_type\": \"{grant}\""),
                grant_types_hint(),
            ));
        }
        let missing: Vec<&str> = grant_requires(grant)
            .iter()
            .copied()
            .filter(|k| get(k).is_none_or(str::is_empty))
            .collect();
        if !missing.is_empty() {
            return Err(error(
                format!(
                    "grant_type \"{grant}\" needs user mapping option(s): {}",
                    missing.join(", ")
                ),
                None,
            ));
        }
        let map: HashMap<String, String> = options.iter().cloned().collect();
        let grant = Grant::from_options(&map).map_err(|e| error(e.to_string(), None))?;
        let mut secrets: Vec<String> = options
            .iter()
            .filter(|(k, v)| SECRET_OPTIONS.contains(&k.as_str()) && !v.is_empty())
            .map(|(_, v)| v.clone())
            .chain(grant.secrets())
            .collect();
        secrets.sort();
        secrets.dedup();
        Ok(UserMappingOptions { grant, secrets })
    }
}

/// A foreign table's options, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableOptions {
    /// The Salesforce object; None means the table's own name.
    pub object: Option<String>,
    pub rowid_column: Option<String>,
    pub upsert_key: Option<String>,
    /// How many records the object holds, for the planner.
    pub estimated_rows: Option<u64>,
    /// Overrides the server's `bulk_threshold`.
    pub bulk_threshold: Option<u64>,
}

impl TableOptions {
    pub fn parse(options: &[(String, String)]) -> Result<TableOptions, OptionError> {
        check_names(OptionScope::Table, options)?;
        let mut parsed = TableOptions::default();
        for (name, value) in options {
            match name.as_str() {
                "object" => parsed.object = Some(value.clone()),
                "rowid_column" => parsed.rowid_column = Some(value.clone()),
                "upsert_key" => parsed.upsert_key = Some(value.clone()),
                "estimated_rows" => {
                    parsed.estimated_rows = Some(integer(name, value, 0, u64::MAX)?)
                }
                "bulk_threshold" => parsed.bulk_threshold = Some(bulk_threshold(value)?),
                _ => {}
            }
        }
        Ok(parsed)
    }
}

/// 0 turns Bulk off. At most 100,000: rows below the threshold wait in
/// the backend's memory until their statement ends.
fn bulk_threshold(value: &str) -> Result<u64, OptionError> {
    integer("bulk_threshold", value, 0, 100_000)
}

fn is_api_version(v: &str) -> bool {
    match v.split_once('.') {
        Some((major, minor)) => {
            !major.is_empty() && major.chars().all(|c| c.is_ascii_digit()) && minor == "0"
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_options_are_named() {
        let e = validate(
            OptionScope::Server,
            &opts(&[
                ("login_url", "https://login.salesforce.com"),
                ("logon_url", "x"),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "invalid option \"logon_url\" for a salesforce server"
        );
        assert!(e.hint.unwrap().contains("login_url"));
        assert!(validate(OptionScope::Column, &opts(&[("field", "Email")])).is_ok());
        assert!(validate(OptionScope::Wrapper, &opts(&[("x", "y")])).is_err());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://login.salesforce.com",
            "http://127.0.0.1:7777",
            "http://localhost/x",
            "http://[::1]:80",
            "http://127.1.2.3",
        ] {
            assert!(check_url("login_url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.salesforce.com",
            "http://10.0.0.1",
            "http://127.0.0.1.evil.example",
            "ftp://x",
            "login.salesforce.com",
            "http://user@evil.example",
        ] {
            assert!(check_url("login_url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_checked() {
        assert!(validate(OptionScope::Server, &opts(&[("batch_size", "100")])).is_err());
        assert!(validate(
            OptionScope::Server,
            &opts(&[("batch_size", "2000"), ("api_version", "62.0")])
        )
        .is_ok());
        assert!(validate(OptionScope::Server, &opts(&[("api_version", "v62")])).is_err());
        assert!(validate(
            OptionScope::Server,
            &opts(&[
                ("max_requests_per_day", "28800"),
                ("budget_reserve_percent", "20")
            ])
        )
        .is_ok());
        assert!(validate(OptionScope::Server, &opts(&[("max_requests_per_day", "0")])).is_err());
        assert!(validate(
            OptionScope::Server,
            &opts(&[("budget_reserve_percent", "100")])
        )
        .is_err());
        assert!(validate(OptionScope::Table, &opts(&[("estimated_rows", "1000000")])).is_ok());
        assert!(validate(OptionScope::Table, &opts(&[("estimated_rows", "many")])).is_err());
    }

    #[test]
    fn grants_need_their_fields() {
        let e = validate(
            OptionScope::UserMapping,
            &opts(&[("grant_type", "password"), ("client_id", "c")]),
        )
        .unwrap_err();
        assert_eq!(e.message, "grant_type \"password\" needs user mapping option(s): client_secret, username, password");
        assert!(validate(
            OptionScope::UserMapping,
            &opts(&[("grant_type", "access_token"), ("access_token", "t")])
        )
        .is_ok());
        assert!(validate(OptionScope::UserMapping, &opts(&[("client_id", "c")])).is_err());
        assert!(validate(OptionScope::UserMapping, &opts(&[("grant_type", "magic")])).is_err());
    }
}
