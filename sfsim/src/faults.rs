//! Faults tests switch on through the control API: answers Salesforce gives
//! under load or failure, drawn from a seeded generator so runs repeat.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

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

pub struct Faults {
    pub rates: FaultRates,
    rng: StdRng,
    pub injected: u64,
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
        }
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
}
