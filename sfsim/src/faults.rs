//! Faults tests switch on through the control API: answers Salesforce gives
//! under load or failure, drawn from a seeded generator so runs repeat, and
//! faults armed for a number of matching requests.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRates {
    /// Share of data API requests refused with 503 SERVER_UNAVAILABLE.
    #[serde(default)]
    pub server_unavailable: f64,
    /// Share of writes refused with UNABLE_TO_LOCK_ROW.
    #[serde(default)]
    pub unable_to_lock_row: f64,
    /// Share of data API requests processed, whose answer is then cut off.
    #[serde(default)]
    pub drop_connection: f64,
    #[serde(default)]
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    ServerUnavailable,
    UnableToLockRow,
    DropConnection,
}

/// Answers matching data API requests with an error quoting the caller's
/// access token, so tests can prove clients never log or show it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoToken {
    /// Requests still to answer so (`count` when arming).
    #[serde(rename(deserialize = "count", serialize = "remaining"))]
    pub remaining: u64,
    /// Only requests whose path contains this.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Only requests with this HTTP method.
    #[serde(default)]
    pub method: Option<String>,
}

/// Serves `value`, raw, in place of a field's real value in query pages,
/// collection retrieves and Bulk query results of its object; the stored
/// records stay as they are.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadValue {
    pub object: String,
    pub field: String,
    pub value: Json,
    /// Answers still to plant it in (`count` when arming).
    #[serde(rename(deserialize = "count", serialize = "remaining"))]
    pub remaining: u64,
}

pub struct Faults {
    pub rates: FaultRates,
    rng: StdRng,
    pub injected: u64,
    pub echo_token: Option<EchoToken>,
    pub bad_value: Option<BadValue>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(FaultRates::default())
    }
}

impl Faults {
    pub fn new(rates: FaultRates) -> Faults {
        Faults {
            rng: StdRng::seed_from_u64(rates.seed),
            rates,
            injected: 0,
            echo_token: None,
            bad_value: None,
        }
    }

    /// New rates with a fresh generator; the armed faults stay armed.
    pub fn set_rates(&mut self, rates: FaultRates) {
        *self = Faults {
            echo_token: self.echo_token.take(),
            bad_value: self.bad_value.take(),
            ..Faults::new(rates)
        };
    }

    pub fn disarm(&mut self) {
        self.echo_token = None;
        self.bad_value = None;
    }

    /// Whether the echo_token fault answers this request, using up one echo if so.
    pub fn take_echo(&mut self, method: &str, path: &str) -> bool {
        let Some(echo) = self.echo_token.as_mut() else {
            return false;
        };
        let matches = echo
            .path_contains
            .as_deref()
            .is_none_or(|p| path.contains(p))
            && echo
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method));
        if !matches {
            return false;
        }
        echo.remaining -= 1;
        if echo.remaining == 0 {
            self.echo_token = None;
        }
        true
    }

    /// The raw value to serve for the bad_value field in one more answer of
    /// `object` records. `carries` says where the answer holds that field,
    /// if it does; answers without it leave the count alone.
    pub fn plant<T>(
        &mut self,
        object: &str,
        carries: impl FnOnce(&str) -> Option<T>,
    ) -> Option<(T, Json)> {
        let bad = self.bad_value.as_mut().filter(|b| b.object == object)?;
        let found = carries(&bad.field)?;
        bad.remaining -= 1;
        let value = bad.value.clone();
        if bad.remaining == 0 {
            self.bad_value = None;
        }
        Some((found, value))
    }

    /// The fault for the next data API request, if any.
    pub fn draw(&mut self, is_write: bool) -> Option<Fault> {
        let r = &self.rates;
        if r.server_unavailable + r.unable_to_lock_row + r.drop_connection <= 0.0 {
            return None;
        }
        let x: f64 = self.rng.random();
        let fault = if x < r.server_unavailable {
            Some(Fault::ServerUnavailable)
        } else if is_write && x < r.server_unavailable + r.unable_to_lock_row {
            Some(Fault::UnableToLockRow)
        } else if x >= 1.0 - r.drop_connection {
            Some(Fault::DropConnection)
        } else {
            None
        };
        self.injected += u64::from(fault.is_some());
        fault
    }
}

/// Faults of the org's network rather than of its answers: `hang` keeps
/// every request to the org waiting, unanswered, until it is cleared, and
/// `delay_ms` holds back every answer of the org that long, as a round trip
/// to a distant server would.
pub struct Stall {
    hang: watch::Sender<bool>,
    delay_ms: AtomicU64,
}

impl Stall {
    pub fn new(delay_ms: u64) -> Stall {
        Stall {
            hang: watch::Sender::new(false),
            delay_ms: AtomicU64::new(delay_ms),
        }
    }

    pub fn hung(&self) -> bool {
        *self.hang.borrow()
    }

    /// Sets or clears the hang; clearing it lets every waiting request go on.
    pub fn set_hang(&self, on: bool) {
        self.hang.send_replace(on);
    }

    /// Returns once the org is not hung (at once when it is not).
    pub async fn wait_while_hung(&self) {
        if !self.hung() {
            return;
        }
        let mut hang = self.hang.subscribe();
        let _ = hang.wait_for(|on| !*on).await;
    }

    pub fn delay_ms(&self) -> u64 {
        self.delay_ms.load(Ordering::Relaxed)
    }

    pub fn set_delay_ms(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Waits out the org's answer delay, if it has one.
    pub async fn delay(&self) {
        let ms = self.delay_ms();
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_repeat_for_a_seed_and_follow_the_rates() {
        let rates = FaultRates {
            server_unavailable: 0.2,
            drop_connection: 0.1,
            seed: 7,
            ..Default::default()
        };
        let a: Vec<_> = {
            let mut f = Faults::new(rates.clone());
            (0..1000).map(|_| f.draw(false)).collect()
        };
        let b: Vec<_> = {
            let mut f = Faults::new(rates);
            (0..1000).map(|_| f.draw(false)).collect()
        };
        assert_eq!(a, b);
        let unavailable = a
            .iter()
            .filter(|f| **f == Some(Fault::ServerUnavailable))
            .count();
        let dropped = a
            .iter()
            .filter(|f| **f == Some(Fault::DropConnection))
            .count();
        assert!(
            (150..250).contains(&unavailable) && (60..140).contains(&dropped),
            "{unavailable} {dropped}"
        );
        assert!(
            a.iter().all(|f| *f != Some(Fault::UnableToLockRow)),
            "reads never get lock errors"
        );
        assert_eq!(Faults::default().draw(true), None);
    }

    #[test]
    fn echoes_match_path_and_method_and_run_out() {
        let echo =
            serde_json::json!({"count": 2, "path_contains": "/composite/", "method": "post"});
        let mut f = Faults {
            echo_token: Some(serde_json::from_value(echo).unwrap()),
            ..Faults::default()
        };
        assert!(!f.take_echo("POST", "/services/data/v62.0/sobjects/Contact"));
        assert!(!f.take_echo("GET", "/services/data/v62.0/composite/sobjects"));
        assert!(f.take_echo("POST", "/services/data/v62.0/composite/sobjects"));
        f.set_rates(FaultRates::default());
        assert_eq!(
            f.echo_token.as_ref().map(|e| e.remaining),
            Some(1),
            "new rates keep armed faults"
        );
        assert!(f.take_echo("POST", "/services/data/v62.0/composite/sobjects"));
        assert!(f.echo_token.is_none());
        assert!(!f.take_echo("POST", "/services/data/v62.0/composite/sobjects"));
    }

    #[test]
    fn bad_values_count_only_answers_that_carry_the_field() {
        let bad = serde_json::json!({"object": "Contact", "field": "Birthdate", "value": "31/12/1999", "count": 1});
        let mut f = Faults {
            bad_value: Some(serde_json::from_value(bad).unwrap()),
            ..Faults::default()
        };
        assert_eq!(f.plant("Account", |_| Some(1)), None);
        assert_eq!(f.plant("Contact", |_| None::<usize>), None);
        assert!(
            f.bad_value.is_some(),
            "answers without the field leave it armed"
        );
        assert_eq!(
            f.plant("Contact", |field| (field == "Birthdate").then_some(7)),
            Some((7, serde_json::json!("31/12/1999")))
        );
        assert!(f.bad_value.is_none());
    }

    #[tokio::test]
    async fn a_hang_holds_requests_until_it_is_cleared() {
        let stall = std::sync::Arc::new(Stall::new(0));
        stall.wait_while_hung().await;
        stall.set_hang(true);
        let waiting = tokio::spawn({
            let stall = stall.clone();
            async move { stall.wait_while_hung().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a hung org answers nothing");
        stall.set_hang(false);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("clearing the hang lets the request go on")
            .unwrap();
    }
}
