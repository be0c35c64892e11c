//! Logged-in sessions and describe results, cached per backend.
//!
//! A session is kept per (server, user) and a describe per (server, object).
//! Each is tagged with a fingerprint of the options it was made from, read
//! afresh on every use, so ALTER SERVER or ALTER USER MAPPING gives a new
//! login and fresh describes.

use super::error::SalesforceFdwError;
use super::pg::options_of;
use crate::salesforce::auth::Grant;
use crate::salesforce::describe::ObjectDescribe;
use crate::salesforce::session::{
    ConnectionConfig, Session, DEFAULT_API_VERSION, DEFAULT_BATCH_SIZE, DEFAULT_LOGIN_URL,
    DEFAULT_TIMEOUT,
};
use crate::salesforce::SalesforceError;
use pgrx::pg_sys::{self, Oid};
use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::Duration;

struct Cached {
    session: Session,
    fingerprint: u64,
    secrets: Vec<String>,
}

thread_local! {
    static SESSIONS: RefCell<HashMap<(u32, u32), Cached>> = RefCell::new(HashMap::new());
    static DESCRIBES: RefCell<HashMap<(u32, String), (u64, Rc<ObjectDescribe>)>> = RefCell::new(HashMap::new());
}

/// PostgreSQL's pending-interrupt flags, so waits end on cancel or timeout,
/// and in the sync worker on SIGTERM.
fn interrupted() -> bool {
    unsafe { pg_sys::InterruptPending != 0 || pg_sys::ShutdownRequestPending != 0 }
}

fn fingerprint(options: &BTreeMap<String, String>) -> u64 {
    let mut h = DefaultHasher::new();
    options.hash(&mut h);
    h.finish()
}

pub fn server_options(server: Oid) -> BTreeMap<String, String> {
    unsafe {
        options_of((*pg_sys::GetForeignServer(server)).options)
            .into_iter()
            .collect()
    }
}

/// The user whose mapping a scan uses: the view owner's for a view, else the current user.
pub fn effective_user(check_as_user: Oid) -> Oid {
    if check_as_user == pg_sys::InvalidOid {
        unsafe { pg_sys::GetUserId() }
    } else {
        check_as_user
    }
}

fn config(
    server: Oid,
    user: Oid,
) -> Result<(ConnectionConfig, u64, Vec<String>), SalesforceFdwError> {
    let server_opts = server_options(server);
    // GetUserMapping reports a missing mapping itself, naming user and server.
    let mapping: HashMap<String, String> =
        unsafe { options_of((*pg_sys::GetUserMapping(user, server)).options) };
    let grant =
        Grant::from_options(&mapping).map_err(|e| SalesforceFdwError::salesforce(e, vec![]))?;
    let secrets = grant.secrets();
    let number = |key: &str, default: u64| {
        server_opts
            .get(key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let config = ConnectionConfig {
        login_url: server_opts
            .get("login_url")
            .cloned()
            .unwrap_or_else(|| DEFAULT_LOGIN_URL.into()),
        instance_url: server_opts.get("instance_url").cloned(),
        api_version: server_opts
            .get("api_version")
            .cloned()
            .unwrap_or_else(|| DEFAULT_API_VERSION.into()),
        batch_size: number("batch_size", DEFAULT_BATCH_SIZE as u64) as u32,
        timeout: server_opts
            .get("request_timeout_ms")
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_TIMEOUT),
        grant,
    };
    let mut all = server_opts;
    all.extend(
        mapping
            .into_iter()
            .map(|(k, v)| (format!("mapping.{k}"), v)),
    );
    Ok((config, fingerprint(&all), secrets))
}

/// Makes or remakes the (server, user) session if its options changed.
/// Reads the catalog, so it needs a transaction.
pub fn prepare_session(server: Oid, user: Oid) -> Result<(), SalesforceFdwError> {
    let (config, fingerprint, secrets) = config(server, user)?;
    SESSIONS.with(|cell| {
        let mut sessions = cell.borrow_mut();
        let key = (server.to_u32(), user.to_u32());
        if sessions
            .get(&key)
            .is_none_or(|c| c.fingerprint != fingerprint)
        {
            let session = Session::new(config, interrupted)
                .map_err(|e| SalesforceFdwError::salesforce(e, secrets.clone()))?;
            sessions.insert(
                key,
                Cached {
                    session,
                    fingerprint,
                    secrets,
                },
            );
        }
        Ok(())
    })
}

/// Runs `f` with a session `prepare_session` made, reading no catalog: the
/// sync worker talks to Salesforce outside any transaction.
pub fn with_prepared_session<T>(
    server: Oid,
    user: Oid,
    f: impl FnOnce(&mut Session) -> Result<T, SalesforceError>,
) -> Result<T, SalesforceFdwError> {
    SESSIONS.with(|cell| {
        let mut sessions = cell.borrow_mut();
        let cached = sessions
            .get_mut(&(server.to_u32(), user.to_u32()))
            .ok_or_else(|| {
                SalesforceFdwError::salesforce(
                    SalesforceError::Config("no session was prepared".into()),
                    vec![],
                )
            })?;
        f(&mut cached.session)
            .map_err(|e| SalesforceFdwError::salesforce(e, cached.secrets.clone()))
    })
}

/// Runs `f` with the (server, user) session, making or remaking it as needed.
pub fn with_session<T>(
    server: Oid,
    user: Oid,
    f: impl FnOnce(&mut Session) -> Result<T, SalesforceError>,
) -> Result<T, SalesforceFdwError> {
    prepare_session(server, user)?;
    with_prepared_session(server, user, f)
}

/// Runs `f` with an existing session, reading no catalog: for use while a
/// transaction aborts. None when there is no such session.
pub fn with_cached_session<T>(
    server: u32,
    user: u32,
    f: impl FnOnce(&mut Session) -> Result<T, SalesforceError>,
) -> Option<Result<T, SalesforceError>> {
    SESSIONS.with(|cell| {
        let mut sessions = cell.try_borrow_mut().ok()?;
        let cached = sessions.get_mut(&(server, user))?;
        Some(f(&mut cached.session))
    })
}

/// The describe of an object, from the cache while the server is unchanged.
pub fn describe(
    server: Oid,
    user: Oid,
    object: &str,
) -> Result<Rc<ObjectDescribe>, SalesforceFdwError> {
    let server_print = fingerprint(&server_options(server));
    let key = (server.to_u32(), object.to_ascii_lowercase());
    if let Some((print, d)) = DESCRIBES.with(|c| c.borrow().get(&key).cloned()) {
        if print == server_print {
            return Ok(d);
        }
    }
    let d = Rc::new(with_session(server, user, |s| s.describe(object))?);
    DESCRIBES.with(|c| c.borrow_mut().insert(key, (server_print, d.clone())));
    Ok(d)
}
