//! Speaking to Salesforce: login, the HTTP client, and the REST calls the
//! extension makes. Plain Rust: tested against sfsim without PostgreSQL.

pub mod auth;
pub mod bulk;
pub mod bulk_ingest;
pub mod composite;
pub mod describe;
pub mod error;
pub mod http;
pub mod oauth;
pub mod session;
pub mod token_shelf;

pub use error::SalesforceError;
