//! Platform events both ways: published through the Pub/Sub API only if
//! the transaction that publishes them commits (`salesforce.publish`), and
//! a channel's events fed into a table by the sync worker (event feeds).

pub mod feed;
mod feed_api;
mod publish;

pgrx::extension_sql_file!(
    "schema.sql",
    name = "events_schema",
    requires = ["delivery_schema"]
);
