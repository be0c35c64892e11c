//! Access tokens and describes shared by every backend of the cluster, in
//! shared memory, when the extension is in shared_preload_libraries, and
//! where each database's sync worker is (`worker_slot`). Without
//! preloading there is no such memory and every backend keeps its own.
//!
//! Entries are keyed by database, server, user and the fingerprint of the
//! server's and the mapping's options, as `connection` keys its own caches,
//! so an ALTER SERVER or ALTER USER MAPPING stops their use. Tokens live
//! only here and in backends' memory, never in a table or a log.

use pgrx::pg_sys;
use salesforce_core::client::auth::Token;
use salesforce_core::client::describe::ObjectDescribe;
use salesforce_core::client::token_shelf::{Shelved, TokenShelf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TOKEN_SLOTS: usize = 64;
const WORKER_SLOTS: usize = 64;
const DESCRIBE_SLOTS: usize = 256;
const TOKEN_BYTES: usize = 512;
const URL_BYTES: usize = 256;
const ORG_BYTES: usize = 32;
const OBJECT_BYTES: usize = 128;
/// Room for describes, as JSON of the fields the extension reads: about
/// 150 bytes a field, so some 25,000 fields.
const ARENA_BYTES: usize = 4 << 20;
const TRANCHE: &std::ffi::CStr = c"pg_salesforce";

#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Key {
    pub database: u32,
    pub server: u32,
    pub user: u32,
    pub fingerprint: u64,
}

#[repr(C)]
struct TokenSlot {
    key: Key,
    in_use: bool,
    /// Until when a backend logging in holds the slot (ms since the epoch).
    claimed_until: i64,
    touched: i64,
    token_len: usize,
    token: [u8; TOKEN_BYTES],
    url_len: usize,
    url: [u8; URL_BYTES],
    org_len: usize,
    org: [u8; ORG_BYTES],
}

#[repr(C)]
struct DescribeSlot {
    key: Key,
    object_len: usize,
    object: [u8; OBJECT_BYTES],
    made: i64,
    offset: usize,
    len: usize,
}

/// Laid out in shared memory, zeroed at start-up (all zeroes is empty), and
/// followed by the describe arena.
#[repr(C)]
struct Area {
    lock: *mut pg_sys::LWLock,
    tokens: [TokenSlot; TOKEN_SLOTS],
    describes: [DescribeSlot; DESCRIBE_SLOTS],
    describe_count: usize,
    arena_used: usize,
    workers: [WorkerSlot; WORKER_SLOTS],
    /// Counts `salesforce.refresh_describe()` calls: a backend's own
    /// describes made under an older count are made again.
    describes_refreshed: AtomicU64,
}

/// A database's sync worker, read and written without the lock.
#[repr(C)]
pub struct WorkerSlot {
    database: AtomicU32,
    pub pid: AtomicI32,
    /// A transaction that queued writes committed since the worker looked.
    pub queued: AtomicBool,
}

/// The slot of `database`'s worker; `claim` takes a free one if it has none.
pub fn worker_slot(database: u32, claim: bool) -> Option<&'static WorkerSlot> {
    let area = unsafe { AREA.load(Ordering::Acquire).as_ref()? };
    let found = area
        .workers
        .iter()
        .find(|w| w.database.load(Ordering::Acquire) == database);
    found.or_else(|| {
        claim.then(|| {
            area.workers.iter().find(|w| {
                w.database
                    .compare_exchange(0, database, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            })
        })?
    })
}

static AREA: AtomicPtr<Area> = AtomicPtr::new(std::ptr::null_mut());
static mut PREV_REQUEST_HOOK: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP_HOOK: pg_sys::shmem_startup_hook_type = None;

fn size() -> usize {
    std::mem::size_of::<Area>() + ARENA_BYTES
}

/// Asks for the memory; only while shared_preload_libraries loads.
pub fn request() {
    unsafe {
        PREV_REQUEST_HOOK = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(on_request);
        PREV_STARTUP_HOOK = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(on_startup);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_request() {
    unsafe {
        if let Some(prev) = PREV_REQUEST_HOOK {
            prev();
        }
        pg_sys::RequestAddinShmemSpace(size());
        pg_sys::RequestNamedLWLockTranche(TRANCHE.as_ptr(), 1);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_startup() {
    unsafe {
        if let Some(prev) = PREV_STARTUP_HOOK {
            prev();
        }
        // AddinShmemInitLock, a macro in C.
        let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let area = pg_sys::ShmemInitStruct(c"pg_salesforce cache".as_ptr(), size(), &mut found)
            .cast::<Area>();
        if !found {
            std::ptr::write_bytes(area.cast::<u8>(), 0, size());
            (*area).lock = &raw mut (*pg_sys::GetNamedLWLockTranche(TRANCHE.as_ptr())).lock;
        }
        AREA.store(area, Ordering::Release);
        pg_sys::LWLockRelease(init_lock);
    }
}

pub fn available() -> bool {
    !AREA.load(Ordering::Acquire).is_null()
}

impl Area {
    fn arena(&self) -> &[u8] {
        unsafe { std::slice::from_raw_parts((self as *const Area).add(1).cast(), ARENA_BYTES) }
    }

    fn arena_mut(&mut self) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut((self as *mut Area).add(1).cast(), ARENA_BYTES) }
    }
}

/// The area under its lock, for work that cannot fail or call PostgreSQL.
fn locked<T>(mode: pg_sys::LWLockMode::Type, f: impl FnOnce(&mut Area) -> T) -> Option<T> {
    let area = AREA.load(Ordering::Acquire);
    if area.is_null() {
        return None;
    }
    unsafe {
        pg_sys::LWLockAcquire((*area).lock, mode);
        let out = f(&mut *area);
        pg_sys::LWLockRelease((*area).lock);
        Some(out)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A user mapping's place on the shelf of shared tokens.
pub struct SharedToken(pub Key);

impl SharedToken {
    fn slot(area: &mut Area, key: Key) -> &mut TokenSlot {
        let i = area
            .tokens
            .iter()
            .position(|s| s.in_use && s.key == key)
            .or_else(|| area.tokens.iter().position(|s| !s.in_use))
            .unwrap_or_else(|| {
                (0..TOKEN_SLOTS)
                    .min_by_key(|&i| area.tokens[i].touched)
                    .unwrap_or(0)
            });
        let slot = &mut area.tokens[i];
        if !(slot.in_use && slot.key == key) {
            slot.key = key;
            slot.in_use = true;
            slot.claimed_until = 0;
            slot.token_len = 0;
            slot.url_len = 0;
            slot.org_len = 0;
        }
        slot.touched = now_ms();
        slot
    }
}

impl TokenShelf for SharedToken {
    fn look(&self, rejected: Option<&str>, claim_for: Duration) -> Shelved {
        let key = self.0;
        locked(pg_sys::LWLockMode::LW_EXCLUSIVE, |area| {
            let slot = Self::slot(area, key);
            let token = &slot.token[..slot.token_len];
            let now = now_ms();
            if !token.is_empty() && Some(token) != rejected.map(str::as_bytes) {
                let access_token = String::from_utf8_lossy(token).into_owned();
                let instance_url = String::from_utf8_lossy(&slot.url[..slot.url_len]).into_owned();
                let org = &slot.org[..slot.org_len];
                Shelved::Token(Token {
                    access_token,
                    instance_url,
                    refresh_token: None,
                    org_id: (!org.is_empty()).then(|| String::from_utf8_lossy(org).into_owned()),
                })
            } else if slot.claimed_until > now {
                Shelved::Wait
            } else {
                slot.claimed_until = now + claim_for.as_millis() as i64;
                Shelved::LogIn
            }
        })
        .unwrap_or(Shelved::LogIn)
    }

    fn put(&self, token: &Token) {
        let key = self.0;
        let (t, u) = (token.access_token.as_bytes(), token.instance_url.as_bytes());
        let o = token.org_id.as_deref().unwrap_or_default().as_bytes();
        locked(pg_sys::LWLockMode::LW_EXCLUSIVE, |area| {
            let slot = Self::slot(area, key);
            slot.claimed_until = 0;
            // A token too long to keep is not shared: each backend logs in.
            let fits = t.len() <= TOKEN_BYTES && u.len() <= URL_BYTES && o.len() <= ORG_BYTES;
            slot.token_len = if fits { t.len() } else { 0 };
            slot.url_len = if fits { u.len() } else { 0 };
            slot.org_len = if fits { o.len() } else { 0 };
            if fits {
                slot.token[..t.len()].copy_from_slice(t);
                slot.url[..u.len()].copy_from_slice(u);
                slot.org[..o.len()].copy_from_slice(o);
            }
        });
    }

    fn release(&self) {
        let key = self.0;
        locked(pg_sys::LWLockMode::LW_EXCLUSIVE, |area| {
            Self::slot(area, key).claimed_until = 0;
        });
    }
}

fn same_object(slot: &DescribeSlot, key: Key, object: &[u8]) -> bool {
    slot.key == key && &slot.object[..slot.object_len] == object
}

/// An object's describe that a backend made under `key` less than
/// `max_age` ago.
pub fn describe(key: Key, object: &str, max_age: Duration) -> Option<ObjectDescribe> {
    let object = object.to_ascii_lowercase();
    let oldest = now_ms() - max_age.as_millis() as i64;
    let json = locked(pg_sys::LWLockMode::LW_SHARED, |area| {
        area.describes[..area.describe_count]
            .iter()
            .find(|s| same_object(s, key, object.as_bytes()) && s.made > oldest)
            .map(|s| area.arena()[s.offset..s.offset + s.len].to_vec())
    })??;
    serde_json::from_slice(&json).ok()
}

/// Shares a describe just made. When the arena or the slots are full, the
/// describes shared so far are dropped: they are made again on demand.
pub fn remember_describe(key: Key, d: &ObjectDescribe) {
    let object = d.name.to_ascii_lowercase();
    let Ok(json) = serde_json::to_vec(d) else {
        return;
    };
    if json.len() > ARENA_BYTES || object.len() > OBJECT_BYTES {
        return;
    }
    locked(pg_sys::LWLockMode::LW_EXCLUSIVE, |area| {
        let count = area.describe_count;
        let existing = area.describes[..count]
            .iter()
            .position(|s| same_object(s, key, object.as_bytes()));
        if area.arena_used + json.len() > ARENA_BYTES
            || (existing.is_none() && count == DESCRIBE_SLOTS)
        {
            area.describe_count = 0;
            area.arena_used = 0;
        }
        let offset = area.arena_used;
        area.arena_mut()[offset..offset + json.len()].copy_from_slice(&json);
        area.arena_used += json.len();
        let i = existing
            .filter(|&i| i < area.describe_count)
            .unwrap_or_else(|| {
                area.describe_count += 1;
                area.describe_count - 1
            });
        let slot = &mut area.describes[i];
        slot.key = key;
        slot.object_len = object.len();
        slot.object[..object.len()].copy_from_slice(object.as_bytes());
        slot.made = now_ms();
        slot.offset = offset;
        slot.len = json.len();
    });
}

/// How many times describes were refreshed since the server started; 0
/// without shared memory.
pub fn describes_refreshed() -> u64 {
    unsafe { AREA.load(Ordering::Acquire).as_ref() }
        .map_or(0, |area| area.describes_refreshed.load(Ordering::Acquire))
}

/// Drops the shared describes of a server in `database`, for every user,
/// of one object or all, and tells every backend to drop its own.
pub fn refresh_describes(database: u32, server: u32, object: Option<&str>) {
    let object = object.map(str::to_ascii_lowercase);
    locked(pg_sys::LWLockMode::LW_EXCLUSIVE, |area| {
        for slot in &mut area.describes[..area.describe_count] {
            if slot.key.database == database
                && slot.key.server == server
                && object
                    .as_ref()
                    .is_none_or(|o| &slot.object[..slot.object_len] == o.as_bytes())
            {
                slot.made = i64::MIN;
            }
        }
        area.describes_refreshed.fetch_add(1, Ordering::AcqRel);
    });
}

/// Stops sharing an object's describe, so the next use asks Salesforce.
pub fn forget_describe(key: Key, object: &str) {
    let object = object.to_ascii_lowercase();
    locked(pg_sys::LWLockMode::LW_EXCLUSIVE, |area| {
        for slot in &mut area.describes[..area.describe_count] {
            if same_object(slot, key, object.as_bytes()) {
                slot.made = i64::MIN;
            }
        }
    });
}
