//! Logged-in sessions and describe results, cached per backend and per user
//! mapping, as postgres_fdw caches connections.
//!
//! Both are keyed by (server, user) and tagged with a fingerprint of the
//! server's and the mapping's options, read afresh on every use, so ALTER
//! SERVER or ALTER USER MAPPING gives a new login and fresh describes.
//! Describes are per mapping because Salesforce answers them per user:
//! field-level security hides fields.
//!
//! With the extension preloaded, both also go through `shared_cache`, so a
//! new backend takes a token and describes other backends made.

use crate::catalog;
use crate::error::{remember_secrets, Error, Result};
use crate::gucs;
use crate::shared_cache::{self, SharedToken};
use pgrx::pg_sys::{self, Oid};
use pgrx::PgSqlErrorCode;
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::client::session::{ConnectionConfig, Session};
use salesforce_core::SalesforceError;
use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

type Key = (u32, u32);
/// A describe, by user mapping and object, with the fingerprint it was made
/// under and when.
type Describes = HashMap<(Key, String), (u64, Instant, Rc<ObjectDescribe>)>;

struct Cached {
    session: Session,
    fingerprint: u64,
}

thread_local! {
    /// The longest a request may take in this process, if shorter than a
    /// server's `request_timeout_ms`: the sync worker's own setting.
    static TIMEOUT_CAP: std::cell::Cell<Option<Duration>> = const { std::cell::Cell::new(None) };
    static SESSIONS: RefCell<HashMap<Key, Cached>> = RefCell::new(HashMap::new());
    /// Refresh tokens Salesforce rotated while no transaction was open (the
    /// worker asks Salesforce outside any), stored at the next chance.
    static ROTATED: RefCell<Vec<(Key, String)>> = const { RefCell::new(Vec::new()) };
    static DESCRIBES: RefCell<Describes> = RefCell::new(HashMap::new());
    /// `shared_cache::describes_refreshed()` when DESCRIBES was last valid.
    static DESCRIBES_AS_OF: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Drops this backend's describes if `salesforce.refresh_describe()` was
/// called, here or in another backend, since they were made.
fn drop_refreshed_describes() {
    let refreshed = shared_cache::describes_refreshed();
    if DESCRIBES_AS_OF.replace(refreshed) != refreshed {
        DESCRIBES.with(|c| c.borrow_mut().clear());
    }
}

/// Drops the describes of a server, of one object or all, for every user:
/// this backend's, the shared ones, and (through the shared count of
/// refreshes) other backends' own.
pub fn refresh_describes(server: Oid, object: Option<&str>) {
    // Refreshes other backends made since this one looked count first.
    drop_refreshed_describes();
    let object_key = object.map(str::to_ascii_lowercase);
    DESCRIBES.with(|c| {
        c.borrow_mut().retain(|((s, _), o), _| {
            *s != server.to_u32() || object_key.as_ref().is_some_and(|k| k != o)
        })
    });
    shared_cache::refresh_describes(
        unsafe { pg_sys::MyDatabaseId }.to_u32(),
        server.to_u32(),
        object,
    );
    DESCRIBES_AS_OF.set(shared_cache::describes_refreshed());
}

/// Whether a wait for Salesforce must end: a cancel or statement timeout, a
/// backend told to die, or in the sync worker SIGTERM. Other interrupts
/// (barriers, catch-up, memory-context logging) also raise InterruptPending
/// but ask nothing of us: PostgreSQL handles them at its next check.
pub fn interrupted() -> bool {
    unsafe {
        pg_sys::QueryCancelPending != 0
            || pg_sys::ProcDiePending != 0
            || pg_sys::ShutdownRequestPending != 0
    }
}

fn key(server: Oid, user: Oid) -> Key {
    (server.to_u32(), user.to_u32())
}

fn shared_key(key: Key, fingerprint: u64) -> shared_cache::Key {
    shared_cache::Key {
        database: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        server: key.0,
        user: key.1,
        fingerprint,
    }
}

/// The (server, user) session's key in shared memory, if it has a session.
fn session_shared_key(key: Key) -> Option<shared_cache::Key> {
    SESSIONS.with(|c| c.borrow().get(&key).map(|s| shared_key(key, s.fingerprint)))
}

/// How long other backends' describes are reused.
fn shared_describe_age() -> Duration {
    Duration::from_secs(gucs::DESCRIBE_INTERVAL.get() as u64)
}

/// Caps every request this process makes at `cap`, whatever the servers
/// say: the sync worker keeps its requests shorter than interactive ones,
/// so a server that hangs holds a run for no longer than that.
pub fn cap_request_timeout(cap: Duration) {
    TIMEOUT_CAP.with(|c| c.set(Some(cap)));
}

/// The connection settings of (server, user), and their fingerprint.
fn config(server: Oid, user: Oid) -> Result<(ConnectionConfig, u64)> {
    let (mut server_options, mut server_raw) = catalog::server_options(server)?;
    if let Some(cap) = TIMEOUT_CAP.with(|c| c.get()) {
        if cap < server_options.request_timeout {
            server_options.request_timeout = cap;
            server_raw.push(("(request timeout cap)".into(), cap.as_millis().to_string()));
        }
    }
    let (mapping, mapping_raw) = catalog::user_mapping(server, user)?;
    remember_secrets(mapping.secrets.iter().cloned());
    let mut h = DefaultHasher::new();
    server_raw.hash(&mut h);
    mapping_raw.hash(&mut h);
    Ok((
        ConnectionConfig::new(&server_options, mapping.grant),
        h.finish(),
    ))
}

/// Runs `f` on a session, remembering any token it obtained as a secret,
/// and keeping a refresh token Salesforce rotated, to store it.
fn call<T>(
    key: Key,
    session: &mut Session,
    f: impl FnOnce(&mut Session) -> std::result::Result<T, SalesforceError>,
) -> Result<T> {
    let out = f(session);
    remember_secrets(session.secrets());
    if let Some(token) = session.take_rotated_refresh_token() {
        ROTATED.with(|r| r.borrow_mut().push((key, token)));
    }
    out.map_err(Error::from)
}

/// Stores the refresh tokens Salesforce rotated, each in the user mapping
/// it came from (the old one no longer works). Needs a transaction.
pub fn store_rotated_tokens() -> Result<()> {
    if unsafe { !pg_sys::IsTransactionState() } {
        return Ok(());
    }
    for ((server, user), token) in ROTATED.with(|r| std::mem::take(&mut *r.borrow_mut())) {
        let (server, user) = (Oid::from(server), Oid::from(user));
        store_refresh_token(server, user, &token)?;
        // The session already logs in with the new token: it stays, under
        // the mapping's new options, instead of a new login.
        let (_, fingerprint) = config(server, user)?;
        SESSIONS.with(|c| {
            if let Some(cached) = c.borrow_mut().get_mut(&key(server, user)) {
                cached.fingerprint = fingerprint;
            }
        });
    }
    Ok(())
}

/// Stores a refresh token in the user mapping `role` uses on `server` (its
/// own, else PUBLIC's), as the extension's owner. The token is remembered
/// as a secret first, so no message can show it; the mapping's new options
/// make the next use a new session that logs in with it.
pub fn store_refresh_token(server: Oid, role: Oid, token: &str) -> Result<()> {
    use salesforce_core::naming::{quote_ident, quote_literal};
    remember_secrets([token.to_string()]);
    let (_, raw) = catalog::user_mapping(server, role)?;
    let verb = if raw.iter().any(|(k, _)| k == "refresh_token") {
        "SET"
    } else {
        "ADD"
    };
    let user = match crate::access::mapping_user(server, role) {
        Some(u) if u != Oid::INVALID => quote_ident(&crate::access::role_name(u)),
        _ => "PUBLIC".into(),
    };
    let sql = format!(
        "ALTER USER MAPPING FOR {user} SERVER {} OPTIONS ({verb} refresh_token {})",
        quote_ident(&catalog::server_name(server)),
        quote_literal(token)
    );
    crate::access::as_extension(|| {
        crate::pg::catching(|| pgrx::Spi::run(&sql).map_err(Error::from))
    })
}

/// Why Salesforce refused the (server, user) session's refresh token, if
/// it did: the session then logs in no more until the mapping changes.
pub fn disconnected(server: Oid, user: Oid) -> Option<String> {
    SESSIONS.with(|c| c.borrow().get(&key(server, user))?.session.disconnected())
}

/// Makes or remakes the (server, user) session if its options changed, and
/// returns its fingerprint. Reads the catalog, so it needs a transaction.
pub fn prepare_session(server: Oid, user: Oid) -> Result<u64> {
    store_rotated_tokens()?;
    let (config, fingerprint) = config(server, user)?;
    SESSIONS.with(|cell| {
        let mut sessions = cell.borrow_mut();
        let key = key(server, user);
        if sessions
            .get(&key)
            .is_none_or(|c| c.fingerprint != fingerprint)
        {
            let mut session = Session::new(config, interrupted)?;
            if shared_cache::available() {
                session.share_tokens(Box::new(SharedToken(shared_key(key, fingerprint))));
            }
            sessions.insert(
                key,
                Cached {
                    session,
                    fingerprint,
                },
            );
        }
        Ok(fingerprint)
    })
}

/// Runs `f` with a session `prepare_session` made, reading no catalog: the
/// sync worker talks to Salesforce outside any transaction.
pub fn with_prepared_session<T>(
    server: Oid,
    user: Oid,
    f: impl FnOnce(&mut Session) -> std::result::Result<T, SalesforceError>,
) -> Result<T> {
    SESSIONS.with(|cell| {
        let mut sessions = cell.borrow_mut();
        let cached = sessions.get_mut(&key(server, user)).ok_or_else(|| {
            Error::sql(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "no session was prepared",
            )
        })?;
        call(key(server, user), &mut cached.session, f)
    })
}

/// A session that `prepare_session` made, lent to a thread for one job.
pub struct Lent {
    key: Key,
    fingerprint: u64,
    pub session: Session,
}

/// Lends a fork of the (server, user) session `prepare_session` made; the
/// fork must come back through `take_back`. Reads no catalog.
pub fn lend(server: Oid, user: Oid) -> Result<Lent> {
    SESSIONS.with(|cell| {
        let sessions = cell.borrow();
        let cached = sessions.get(&key(server, user)).ok_or_else(|| {
            Error::sql(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "no session was prepared",
            )
        })?;
        Ok(Lent {
            key: key(server, user),
            fingerprint: cached.fingerprint,
            session: cached.session.fork(),
        })
    })
}

/// Takes a lent session back: the session learns the token its fork
/// obtained, the backend the credentials to keep out of messages, and a
/// refresh token Salesforce rotated is kept to be stored. A fork of a
/// session remade since (the mapping changed) is only looked at.
pub fn take_back(mut lent: Lent) {
    remember_secrets(lent.session.secrets());
    if let Some(token) = lent.session.take_rotated_refresh_token() {
        ROTATED.with(|r| r.borrow_mut().push((lent.key, token)));
    }
    SESSIONS.with(|cell| {
        if let Some(cached) = cell.borrow_mut().get_mut(&lent.key) {
            if cached.fingerprint == lent.fingerprint {
                cached.session.rejoin(lent.session);
            }
        }
    });
}

/// Runs `f` with the (server, user) session, making or remaking it as needed.
pub fn with_session<T>(
    server: Oid,
    user: Oid,
    f: impl FnOnce(&mut Session) -> std::result::Result<T, SalesforceError>,
) -> Result<T> {
    prepare_session(server, user)?;
    let out = with_prepared_session(server, user, f);
    store_rotated_tokens()?;
    out
}

/// Runs `f` with an existing session, reading no catalog: for use while a
/// transaction aborts. None when there is no such session.
pub fn with_cached_session<T>(
    server: u32,
    user: u32,
    f: impl FnOnce(&mut Session) -> std::result::Result<T, SalesforceError>,
) -> Option<Result<T>> {
    SESSIONS.with(|cell| {
        let mut sessions = cell.try_borrow_mut().ok()?;
        let cached = sessions.get_mut(&(server, user))?;
        Some(call((server, user), &mut cached.session, f))
    })
}

/// Salesforce's clock as the (server, user) session last saw it, carried on
/// to now; None before its first answer.
pub fn server_now(server: Oid, user: Oid) -> Option<chrono::DateTime<chrono::Utc>> {
    SESSIONS.with(|c| c.borrow().get(&key(server, user))?.session.server_now())
}

/// A describe's failure, naming the object when Salesforce has none by
/// that name (or none the user may see).
pub fn unknown_object(e: Error, object: &str) -> Error {
    match e.salesforce_code() {
        Some("NOT_FOUND" | "INVALID_TYPE") => Error::sql(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("Salesforce has no object {object}"),
        )
        .with_hint("Object names are API names, such as Contact or Invoice__c."),
        _ => e,
    }
}

/// The describe of an object as `user` sees it, from the cache while the
/// server and the user mapping are unchanged.
pub fn describe(server: Oid, user: Oid, object: &str) -> Result<Rc<ObjectDescribe>> {
    let fingerprint = prepare_session(server, user)?;
    drop_refreshed_describes();
    let cache_key = (key(server, user), object.to_ascii_lowercase());
    if let Some((print, _, d)) = DESCRIBES.with(|c| c.borrow().get(&cache_key).cloned()) {
        if print == fingerprint {
            return Ok(d);
        }
    }
    let shared = shared_key(cache_key.0, fingerprint);
    if let Some(d) = shared_cache::describe(shared, object, shared_describe_age()) {
        return Ok(remember_locally(cache_key.0, fingerprint, d));
    }
    let d = with_prepared_session(server, user, |s| s.describe(object))?;
    Ok(remember_describe(server, user, d))
}

fn remember_locally(key: Key, fingerprint: u64, d: ObjectDescribe) -> Rc<ObjectDescribe> {
    let d = Rc::new(d);
    let cache_key = (key, d.name.to_ascii_lowercase());
    DESCRIBES.with(|c| {
        c.borrow_mut()
            .insert(cache_key, (fingerprint, Instant::now(), d.clone()))
    });
    d
}

/// Keeps a describe just made, for `describe` and `recent_describe`, and
/// shares it with other backends.
pub fn remember_describe(server: Oid, user: Oid, d: ObjectDescribe) -> Rc<ObjectDescribe> {
    let key = key(server, user);
    let Some(fingerprint) = SESSIONS.with(|c| c.borrow().get(&key).map(|s| s.fingerprint)) else {
        return Rc::new(d);
    };
    shared_cache::remember_describe(shared_key(key, fingerprint), &d);
    remember_locally(key, fingerprint, d)
}

/// An object's describe asked of Salesforce now, kept for later uses.
pub fn fresh_describe(server: Oid, user: Oid, object: &str) -> Result<Rc<ObjectDescribe>> {
    let d = with_session(server, user, |s| s.describe(object))?;
    Ok(remember_describe(server, user, d))
}

/// Drops an object's cached describe, here and shared, so the next use
/// asks Salesforce.
pub fn forget_describe(server: Oid, user: Oid, object: &str) {
    let key = key(server, user);
    if let Some(shared) = session_shared_key(key) {
        shared_cache::forget_describe(shared, object);
    }
    DESCRIBES.with(|c| c.borrow_mut().remove(&(key, object.to_ascii_lowercase())));
}

/// The cached describe of an object if it was made under the current
/// session's settings less than `max_age` ago.
pub fn recent_describe(
    server: Oid,
    user: Oid,
    object: &str,
    max_age: Duration,
) -> Option<Rc<ObjectDescribe>> {
    let fingerprint =
        SESSIONS.with(|c| c.borrow().get(&key(server, user)).map(|s| s.fingerprint))?;
    drop_refreshed_describes();
    let cache_key = (key(server, user), object.to_ascii_lowercase());
    let local = DESCRIBES.with(|c| {
        c.borrow()
            .get(&cache_key)
            .filter(|(print, made, _)| *print == fingerprint && made.elapsed() < max_age)
            .map(|(_, _, d)| d.clone())
    });
    local.or_else(|| {
        let d = shared_cache::describe(shared_key(cache_key.0, fingerprint), object, max_age)?;
        Some(remember_locally(cache_key.0, fingerprint, d))
    })
}
