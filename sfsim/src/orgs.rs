//! Several orgs in one server: a registry of `Sim`s, one per org, and which
//! org a request is for. Each `Sim` is a whole org as sfsim has always
//! served one (data, tokens, limits, clock, faults, log, cursors, Bulk jobs,
//! change events); only this module knows there are several.
//!
//! A request goes to the org of its access token (tokens start with the org
//! id's first 15 characters and `!`). Token requests go to the org of the
//! username (password grant), of the refresh token or of the authorization
//! code; the client credentials and JWT bearer grants to the org their Host
//! names (`org{k}.…`), a JWT else to its subject's org. Anything else to the
//! org the Host names, else to the first org.
//!
//! The authorize page belongs to no org until the customer approves: the
//! pending authorization requests live here, by their `state`.

use crate::auth::Approval;
use crate::seed::USERNAME_DOMAIN;
use crate::sim::{Config, Sim};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// At most this many orgs: their number takes five digits of the org id.
pub const MAX_ORGS: usize = 99_999;
/// The prefix of every refresh token and of authorization codes, before the
/// org id's first 15 characters.
const REFRESH_PREFIX: &str = "5Aep861";
const CODE_PREFIX: &str = "aPrx";
/// Authorize requests waiting for the customer, at most; the oldest go first.
const MAX_PENDING: usize = 10_000;

/// An authorize request waiting for the customer's answer.
#[derive(Clone, Debug)]
pub struct Pending {
    pub redirect_uri: String,
    pub scope: String,
    pub code_challenge: Option<String>,
    pub state: String,
    /// Its place in arrival order, to forget the oldest first.
    seq: u64,
}

#[derive(Default)]
struct PendingRequests {
    by_state: HashMap<String, Pending>,
    next_seq: u64,
}

pub struct Orgs {
    sims: Vec<Arc<Sim>>,
    /// Org number by the first 15 characters of its id.
    by_id15: HashMap<String, usize>,
    pending: Mutex<PendingRequests>,
    /// Until when the whole server is down: its port refuses connections
    /// and the connections open are cut (`POST /__sim/outage`).
    pub outage: tokio::sync::watch::Sender<Option<std::time::Instant>>,
}

/// What approving a pending authorize request gave.
pub struct Approved {
    pub org: usize,
    pub code: String,
    pub pending: Pending,
}

impl Orgs {
    /// Builds `count` orgs from one configuration: the same seed, counts,
    /// limits and delay, each with its own number.
    pub fn new(config: &Config, count: usize) -> Result<Orgs, String> {
        if count == 0 || count > MAX_ORGS {
            return Err(format!("--orgs takes 1 to {MAX_ORGS}, not {count}"));
        }
        let mut sims = Vec::with_capacity(count);
        let mut by_id15 = HashMap::with_capacity(count);
        for number in 1..=count {
            let sim = Sim::new(Config {
                number,
                ..config.clone()
            })?;
            by_id15.insert(sim.org.read().org_id[..15].to_string(), number);
            sims.push(Arc::new(sim));
        }
        Ok(Orgs {
            sims,
            by_id15,
            pending: Mutex::default(),
            outage: tokio::sync::watch::Sender::new(None),
        })
    }

    pub fn len(&self) -> usize {
        self.sims.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sims.is_empty()
    }

    /// Org `number`, from 1.
    pub fn get(&self, number: usize) -> Option<&Arc<Sim>> {
        number.checked_sub(1).and_then(|i| self.sims.get(i))
    }

    /// The first org, the one sfsim served before it served several.
    pub fn first(&self) -> &Arc<Sim> {
        &self.sims[0]
    }

    pub fn all(&self) -> &[Arc<Sim>] {
        &self.sims
    }

    /// Org `number`, or the first when there is no such org.
    pub fn or_first(&self, number: Option<usize>) -> &Arc<Sim> {
        number
            .and_then(|n| self.get(n))
            .unwrap_or_else(|| self.first())
    }

    fn by_id_prefix(&self, text: &str) -> Option<usize> {
        text.get(..15)
            .and_then(|id15| self.by_id15.get(id15).copied())
    }

    /// The org of an access token.
    pub fn by_access_token(&self, token: &str) -> Option<usize> {
        (token.as_bytes().get(15) == Some(&b'!'))
            .then(|| self.by_id_prefix(token))
            .flatten()
    }

    /// The org of a refresh token: a fixed admin token, or one issued.
    pub fn by_refresh_token(&self, token: &str) -> Option<usize> {
        if token == crate::auth::DEMO_REFRESH_TOKEN {
            return Some(1);
        }
        if let Some(number) = token
            .strip_prefix("5Aep861sfsim.org")
            .and_then(|t| t.strip_suffix(".refresh.token"))
        {
            return number.parse().ok().filter(|n| self.get(*n).is_some());
        }
        token
            .strip_prefix(REFRESH_PREFIX)
            .and_then(|t| self.by_id_prefix(t))
    }

    /// The org of an authorization code.
    pub fn by_code(&self, code: &str) -> Option<usize> {
        code.strip_prefix(CODE_PREFIX)
            .and_then(|t| self.by_id_prefix(t))
    }

    /// The org of a username: `…@sfsim.example` the first,
    /// `…@org{k}.sfsim.example` org k.
    pub fn by_username(&self, username: &str) -> Option<usize> {
        let (_, domain) = username.rsplit_once('@')?;
        let domain = domain.to_ascii_lowercase();
        if domain == USERNAME_DOMAIN {
            return Some(1);
        }
        let label = domain.strip_suffix(USERNAME_DOMAIN)?.strip_suffix('.')?;
        self.by_label(label)
    }

    /// The org a Host header names: its first label `org{k}`
    /// (`org2.localhost:7777`).
    pub fn by_host(&self, host: &str) -> Option<usize> {
        let label = host.split(['.', ':']).next()?;
        self.by_label(&label.to_ascii_lowercase())
    }

    fn by_label(&self, label: &str) -> Option<usize> {
        let digits = label.strip_prefix("org")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|n| self.get(*n).is_some())
    }

    /// The org whose users log in as `username`, if it has that user.
    pub fn login(&self, username: &str) -> Option<(usize, String)> {
        let number = self.by_username(username)?;
        let org = self.get(number)?.org.read();
        org.logins
            .iter()
            .find(|l| l.username == username)
            .map(|l| (number, l.user_id.clone()))
    }

    /// Remembers an authorize request until the customer answers it; a
    /// later request with the same state replaces it.
    pub fn remember(
        &self,
        redirect_uri: String,
        scope: String,
        code_challenge: Option<String>,
        state: String,
    ) {
        let mut pending = self.pending.lock();
        pending.next_seq += 1;
        let seq = pending.next_seq;
        if pending.by_state.len() >= MAX_PENDING && !pending.by_state.contains_key(&state) {
            let oldest = pending
                .by_state
                .values()
                .min_by_key(|p| p.seq)
                .map(|p| p.state.clone());
            if let Some(oldest) = oldest {
                pending.by_state.remove(&oldest);
            }
        }
        pending.by_state.insert(
            state.clone(),
            Pending {
                redirect_uri,
                scope,
                code_challenge,
                state,
                seq,
            },
        );
    }

    /// Takes a pending request away: the customer declined.
    pub fn deny(&self, state: &str) -> Option<Pending> {
        self.pending.lock().by_state.remove(state)
    }

    /// Whether a request waits under this state.
    pub fn is_pending(&self, state: &str) -> bool {
        self.pending.lock().by_state.contains_key(state)
    }

    /// The customer logs in as `username` and approves: an authorization
    /// code from the user's org, valid for 15 minutes of that org's clock.
    /// `Err(None)` when no request waits under `state`, `Err(Some(..))`
    /// when no org has the user (the request keeps waiting).
    pub fn approve(&self, state: &str, username: &str) -> Result<Approved, Option<String>> {
        let mut pending = self.pending.lock();
        if !pending.by_state.contains_key(state) {
            return Err(None);
        }
        let (number, user_id) = self
            .login(username)
            .ok_or_else(|| Some(format!("no org has a user {username}")))?;
        let request = pending.by_state.remove(state).expect("checked above");
        drop(pending);
        let sim = self.get(number).expect("a routed org exists");
        let org_id = sim.org.read().org_id.clone();
        let now = sim.clock.now();
        let code = sim.auth.lock().issue_code(
            Approval {
                user_id,
                redirect_uri: request.redirect_uri.clone(),
                code_challenge: request.code_challenge.clone(),
                scope: request.scope.clone(),
            },
            &org_id,
            now,
        );
        Ok(Approved {
            org: number,
            code,
            pending: request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            seed: "empty".into(),
            records: Default::default(),
            daily_limit: 100,
            token_lifetime_secs: 60,
            base_url: "http://127.0.0.1:1".into(),
            number: 1,
            delay_ms: 0,
        }
    }

    #[test]
    fn orgs_have_their_own_ids_and_usernames() {
        let orgs = Orgs::new(&config(), 3).unwrap();
        let ids: Vec<String> = orgs
            .all()
            .iter()
            .map(|s| s.org.read().org_id.clone())
            .collect();
        assert_eq!(ids[0], "00D5g000004SIMxEAG", "the first org is sfsim's org");
        assert_eq!(&ids[1][..15], "00D5g000002SIMk");
        assert_eq!(ids[1].len(), 18);
        assert_ne!(ids[1], ids[2]);
        assert_eq!(orgs.login("admin@sfsim.example").unwrap().0, 1);
        assert_eq!(orgs.login("limited@org3.sfsim.example").unwrap().0, 3);
        assert!(orgs.login("admin@org4.sfsim.example").is_none());
        assert!(orgs.login("admin@org1.sfsim.example").is_none());
        assert_eq!(orgs.by_host("org2.localhost:7777"), Some(2));
        assert_eq!(orgs.by_host("127.0.0.1:7777"), None);
        assert_eq!(orgs.by_host("org9.localhost"), None);
        assert_eq!(
            orgs.by_refresh_token("5Aep861sfsim.org3.refresh.token"),
            Some(3)
        );
        assert_eq!(
            orgs.by_refresh_token(crate::auth::DEMO_REFRESH_TOKEN),
            Some(1)
        );
        let token = format!("{}!abc", &ids[2][..15]);
        assert_eq!(orgs.by_access_token(&token), Some(3));
        assert_eq!(orgs.by_access_token("nonsense"), None);
        // Every org is seeded alike: record ids repeat across orgs.
        let first_account = |i: usize| {
            let org = orgs.get(i).unwrap().org.read();
            org.logins[0].user_id.clone()
        };
        assert_eq!(first_account(1), first_account(2));
    }

    #[test]
    fn approvals_hand_out_codes_of_the_users_org() {
        let orgs = Orgs::new(&config(), 2).unwrap();
        orgs.remember(
            "http://localhost/cb".into(),
            "api".into(),
            None,
            "s1".into(),
        );
        assert!(matches!(
            orgs.approve("nope", "admin@org2.sfsim.example"),
            Err(None)
        ));
        assert!(matches!(
            orgs.approve("s1", "admin@org7.sfsim.example"),
            Err(Some(_))
        ));
        assert!(orgs.is_pending("s1"), "a failed approval keeps the request");
        let approved = orgs.approve("s1", "admin@org2.sfsim.example").ok().unwrap();
        assert_eq!(approved.org, 2);
        assert_eq!(orgs.by_code(&approved.code), Some(2));
        assert!(!orgs.is_pending("s1"));
    }
}
