//! Whether events whose publish never answered (the worker killed during
//! the call, the connection lost) reached the bus. The topic is read from
//! a replay id known to come before them up to its newest event, and each
//! event is matched by its own fields as the topic's schema carries them
//! (Salesforce sets `CreatedDate`, `CreatedById` and the event's UUID, so
//! nothing else is the publisher's). Events with the same fields are
//! counted: two on the bus match two of them. An event someone else
//! published with the very same fields in that window is taken for one of
//! them; the replay id and the wait before looking keep the window short.

use super::publish::{own_fields, read, Publisher};
use crate::cdc::{Replay, StreamConfig};
use crate::client::SalesforceError;
use serde_json::{Map, Value as Json};
use std::time::Duration;

/// Events read from the bus at most, looking for one batch's.
pub const MAX_EVENTS_READ: usize = 200_000;
/// Events asked for at a time while reading back.
const READ_AT_ONCE: usize = 1000;
/// How long a read waits for more before it takes the bus as read to its end.
const QUIET: Duration = Duration::from_secs(1);

/// For each of `events` (JSON objects of their fields, as given to
/// `publish`), the replay id of the event on `config.topic`
/// (`/event/Name__e`) that is it, if it is on the bus after `after` (from
/// the earliest retained event when None).
pub fn look_back(
    config: &StreamConfig,
    publisher: &mut Publisher,
    after: Option<Vec<u8>>,
    events: &[Map<String, Json>],
) -> Result<Vec<Option<Vec<u8>>>, SalesforceError> {
    let topic = config.topic.as_str();
    let mut wanted = Vec::with_capacity(events.len());
    for e in events {
        wanted.push(publisher.canonical(topic, e)?);
    }
    let mut found: Vec<Option<Vec<u8>>> = vec![None; events.len()];
    let mut replay = after.map_or(Replay::Earliest, Replay::After);
    let mut read_so_far = 0;
    while found
        .iter()
        .zip(&wanted)
        .any(|(f, w)| f.is_none() && w.is_some())
    {
        let from = StreamConfig {
            replay,
            ..config.clone()
        };
        let (on_bus, last) = read(&from, READ_AT_ONCE, QUIET)?;
        read_so_far += on_bus.len();
        let at_end = on_bus.len() < READ_AT_ONCE;
        for event in on_bus {
            let fields = own_fields(event.fields);
            let unmatched = (0..events.len())
                .find(|&i| found[i].is_none() && wanted[i].as_ref() == Some(&fields));
            if let Some(i) = unmatched {
                found[i] = Some(event.replay_id);
            }
        }
        if at_end || last.is_empty() {
            break;
        }
        if read_so_far >= MAX_EVENTS_READ {
            return Err(SalesforceError::Config(format!(
                "{topic} had more than {MAX_EVENTS_READ} events since the last one known to come before these: cannot tell whether they were published"
            )));
        }
        replay = Replay::After(last);
    }
    Ok(found)
}
