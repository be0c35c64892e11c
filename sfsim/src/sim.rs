//! One simulated org and everything it serves: data, tokens, usage, cursors
//! and the request log.

use crate::auth::Auth;
use crate::bulk::Jobs;
use crate::clock::Clock;
use crate::cursors::Cursors;
use crate::faults::{Faults, Stall};
use crate::org::{Author, Org};
use crate::pubsub::Bus;
use crate::request_log::RequestLog;
use crate::schema::Schema;
use crate::seed;
use crate::usage::Usage;
use chrono::Duration;
use parking_lot::{Mutex, RwLock, RwLockWriteGuard};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub const DEFAULT_DAILY_LIMIT: u64 = 15_000;
pub const DEFAULT_TOKEN_LIFETIME_SECS: i64 = 7_200;
pub const OLDEST_API_VERSION: u32 = 20;
pub const NEWEST_API_VERSION: u32 = 64;

#[derive(Clone)]
pub struct Config {
    pub seed: String,
    /// Record counts per object, overriding the seed's.
    pub records: BTreeMap<String, usize>,
    pub daily_limit: u64,
    pub token_lifetime_secs: i64,
    pub base_url: String,
    /// Which org of the server this is, from 1. The first is the org sfsim
    /// has always served; org k (k >= 2) has its own org id and its users'
    /// usernames end `@org{k}.sfsim.example`, over the same seeded data.
    pub number: usize,
    /// The delay before every answer, in milliseconds, at start.
    pub delay_ms: u64,
}

impl Config {
    /// The org id of org `number`: the data file's for the first, else
    /// `00D5g0` then the number in five digits then `SIMk`, as 18 characters.
    pub fn org_id(&self, file_org_id: &str) -> String {
        if self.number <= 1 {
            file_org_id.to_string()
        } else {
            crate::ids::canonical(&format!("00D5g0{:05}SIMk", self.number))
                .expect("a well-formed org id")
        }
    }

    /// The domain of the org's usernames.
    pub fn username_domain(&self) -> String {
        if self.number <= 1 {
            seed::USERNAME_DOMAIN.to_string()
        } else {
            format!("org{}.{}", self.number, seed::USERNAME_DOMAIN)
        }
    }

    /// The admin's fixed refresh token.
    pub fn demo_refresh_token(&self) -> String {
        if self.number <= 1 {
            crate::auth::DEMO_REFRESH_TOKEN.to_string()
        } else {
            format!("5Aep861sfsim.org{}.refresh.token", self.number)
        }
    }
}

pub struct Sim {
    pub config: Config,
    pub org: RwLock<Org>,
    pub clock: Arc<Clock>,
    pub auth: Mutex<Auth>,
    pub usage: Mutex<Usage>,
    pub cursors: Mutex<Cursors>,
    pub log: Mutex<RequestLog>,
    pub faults: Mutex<Faults>,
    pub bulk: Mutex<Jobs>,
    /// Data API requests hold it shared while they run; a composite call
    /// holds it alone, so its subrequests are one transaction that no other
    /// request sees half done or writes into.
    pub transaction_gate: RwLock<()>,
    /// Change Data Capture: the change events of committed writes.
    pub pubsub: Bus,
    /// The hang and delay faults, which hold requests and answers back.
    pub stall: Stall,
    token_lifetime_secs: AtomicI64,
}

fn build_org(config: &Config, clock: &Arc<Clock>) -> Result<Org, String> {
    let mut counts = seed::plan(&config.seed)?;
    counts.extend(config.records.iter().map(|(k, v)| (k.clone(), *v)));
    let mut schema = Schema::builtin();
    schema.org_id = config.org_id(&schema.org_id);
    let mut org = Org::new(schema, clock.now());
    org.clock = clock.clone();
    seed::populate_in_domain(&mut org, &counts, &config.username_domain())?;
    Ok(org)
}

impl Sim {
    pub fn new(config: Config) -> Result<Sim, String> {
        let clock = Arc::new(Clock::default());
        let org = build_org(&config, &clock)?;
        Ok(Sim {
            auth: Mutex::new(Auth::with_refresh_token(
                &org.admin_user_id,
                &config.demo_refresh_token(),
            )),
            usage: Mutex::new(Usage::new(config.daily_limit)),
            token_lifetime_secs: AtomicI64::new(config.token_lifetime_secs),
            org: RwLock::new(org),
            clock,
            cursors: Mutex::new(Cursors::default()),
            log: Mutex::new(RequestLog::default()),
            faults: Mutex::new(Faults::default()),
            bulk: Mutex::new(Jobs::default()),
            transaction_gate: RwLock::new(()),
            pubsub: Bus::default(),
            stall: Stall::new(config.delay_ms),
            config,
        })
    }

    /// Back to the seeded data with a fresh usage count, an empty log, no
    /// Bulk jobs and no armed faults, the hang cleared (rates, the delay and
    /// settings stay). Issued tokens stay valid, so connected clients carry on.
    pub fn reset(&self) -> Result<(), String> {
        let org = build_org(&self.config, &self.clock)?;
        let _shared = self.transaction_gate.read();
        *self.org.write() = org;
        *self.cursors.lock() = Cursors::default();
        let limit = self.usage.lock().daily_limit;
        *self.usage.lock() = Usage::new(limit);
        self.log.lock().clear();
        self.faults.lock().disarm();
        self.stall.set_hang(false);
        self.pubsub.reset();
        let mut bulk = self.bulk.lock();
        *bulk = bulk.cleared();
        Ok(())
    }

    /// Starts the Bulk jobs due by now. Every request calls this before
    /// anything else, so a job's snapshot comes before any later write.
    /// Ingest jobs due are processed then, their writes made and published,
    /// on the ingest worker (the request waits for it).
    pub fn run_due_bulk_jobs(self: &Arc<Self>) {
        let now = self.clock.now();
        {
            // Taken first, as every request that holds both takes them.
            let _shared = self.transaction_gate.read();
            let mut jobs = self.bulk.lock();
            jobs.forget_expired(now);
            jobs.ingest.forget_expired(now);
            if jobs.any_due(now) {
                jobs.run_due(&self.org.read(), &self.faults, now);
            }
            if !jobs.ingest.any_due(now) {
                return;
            }
        }
        let sim = self.clone();
        crate::bulk::ingest::worker::run(move || {
            let _shared = sim.transaction_gate.read();
            let mut jobs = sim.bulk.lock();
            crate::bulk::ingest::run::run_due(&sim, &mut jobs.ingest, now);
        });
    }

    pub fn token_lifetime(&self) -> Duration {
        Duration::seconds(self.token_lifetime_secs.load(Ordering::Relaxed))
    }

    pub fn set_token_lifetime(&self, secs: i64) {
        self.token_lifetime_secs.store(secs, Ordering::Relaxed);
    }

    pub fn author(&self, user_id: &str) -> Author {
        Author {
            user_id: user_id.to_string(),
            now: self.clock.now(),
        }
    }

    /// Publishes the change events of the writes committed so far. Callers
    /// hold the transaction gate, so no composite call is half done; any
    /// other request makes its writes, and their rollback, under one hold of
    /// the org's lock, so all the journal holds is committed.
    pub fn commit(&self) {
        if self.org.read().journal.is_empty() {
            return;
        }
        let mut org = self.org.write();
        let changes = org.journal.take();
        let org = RwLockWriteGuard::downgrade(org);
        self.pubsub.publish(&org, changes, self.clock.now());
    }

    pub fn supported_version(v: &str) -> bool {
        match v.split_once('.') {
            Some((major, "0")) => major
                .parse::<u32>()
                .is_ok_and(|m| (OLDEST_API_VERSION..=NEWEST_API_VERSION).contains(&m)),
            _ => false,
        }
    }
}
