//! Change Data Capture over Salesforce's Pub/Sub API, for a synchronous
//! caller: [`Subscription::open`] subscribes to a change event channel on a
//! thread of its own, and [`Subscription::next`] hands over the decoded
//! events, each with its fields named and valued as a REST query record
//! would have them, so the JSON conversions of [`crate::values`] apply.

mod bitmap;
pub(crate) mod connect;
mod decode;
mod schema;
pub mod selection;
pub(crate) mod status;
mod stream;
mod subscription;
#[cfg(test)]
mod tests;

pub use subscription::Subscription;

use chrono::{DateTime, Utc};
use std::time::Duration;

/// Where a subscription starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Replay {
    /// With the events published once it is open.
    Latest,
    /// With the oldest event retained (72 hours).
    Earliest,
    /// Right after the event (or keepalive) with this replay id.
    After(Vec<u8>),
}

/// What to subscribe to and as whom. Holds the access token, so it is
/// deliberately not `Debug`.
#[derive(Clone)]
pub struct StreamConfig {
    /// `https://api.pubsub.salesforce.com:7443`; plain `http://` only to a
    /// loopback address.
    pub pubsub_url: String,
    /// `/data/ChangeEvents` or one object's channel, `/data/AccountChangeEvent`.
    pub topic: String,
    pub access_token: String,
    pub instance_url: String,
    /// The org id.
    pub tenant_id: String,
    pub replay: Replay,
    /// Events asked for at a time (1 to 100); more are asked for once they
    /// have all arrived.
    pub batch: i32,
    /// How long connecting and each call may take.
    pub timeout: Duration,
}

impl StreamConfig {
    /// The Pub/Sub API as a REST session's user, on the address its server
    /// names: the session's token, instance and org id (which only a grant
    /// that logs in gives), and its request timeout.
    pub fn for_session(
        session: &mut crate::client::session::Session,
        topic: &str,
        replay: Replay,
        batch: i32,
    ) -> Result<StreamConfig, crate::SalesforceError> {
        let token = session.live_token()?;
        let tenant_id = token.org_id.clone().ok_or_else(|| {
            crate::SalesforceError::Config(
                "the Pub/Sub API needs a grant that logs in (the org id comes from the login), not access_token".into(),
            )
        })?;
        Ok(StreamConfig {
            pubsub_url: session.pubsub_url().to_string(),
            topic: topic.to_string(),
            access_token: token.access_token,
            instance_url: token.instance_url,
            tenant_id,
            replay,
            batch,
            timeout: session.request_timeout(),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    Undelete,
    /// The change happened but its values could not be sent: re-read the records.
    GapCreate,
    GapUpdate,
    GapDelete,
    GapUndelete,
    /// A transaction changed too much to send; no record ids: re-sync the object.
    GapOverflow,
}

impl ChangeType {
    /// The type a header's `changeType` symbol names.
    fn of(symbol: &str) -> Option<ChangeType> {
        Some(match symbol {
            "CREATE" => ChangeType::Create,
            "UPDATE" => ChangeType::Update,
            "DELETE" => ChangeType::Delete,
            "UNDELETE" => ChangeType::Undelete,
            "GAP_CREATE" => ChangeType::GapCreate,
            "GAP_UPDATE" => ChangeType::GapUpdate,
            "GAP_DELETE" => ChangeType::GapDelete,
            "GAP_UNDELETE" => ChangeType::GapUndelete,
            "GAP_OVERFLOW" => ChangeType::GapOverflow,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ChangeEvent {
    pub replay_id: Vec<u8>,
    /// The object's API name: `Account`, `Invoice__c`.
    pub entity: String,
    pub change_type: ChangeType,
    /// Several when one transaction changed several records the same way;
    /// none for GAP_OVERFLOW.
    pub record_ids: Vec<String>,
    pub commit_timestamp: DateTime<Utc>,
    pub transaction_key: String,
    /// The event's place in its transaction, from 1.
    pub sequence_number: i64,
    /// The id of the user who made the change.
    pub commit_user: String,
    /// The fields the event sets, by REST name, compound fields as their
    /// components (`BillingCity`, `FirstName`, `Place__Latitude__s`): for a
    /// create or undelete every field with a value, for an update the
    /// changed and the nulled fields, none for deletes and gaps.
    pub fields: Vec<String>,
    /// The values of `fields` as a REST query record has them; null for a
    /// nulled field.
    pub values: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
pub enum StreamItem {
    /// Events in replay order; `latest_replay_id` is where to resume after them.
    Events {
        events: Vec<ChangeEvent>,
        latest_replay_id: Vec<u8>,
    },
    /// Nothing to send for a while: resuming after `latest_replay_id` skips
    /// only events of other channels.
    Keepalive { latest_replay_id: Vec<u8> },
}
