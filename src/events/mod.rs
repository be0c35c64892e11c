//! Platform events: published through the Pub/Sub API only if the
//! transaction that publishes them commits (`salesforce.publish`).

mod publish;
