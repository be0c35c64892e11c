//! The `#[pg_test]`s: the extension inside PostgreSQL against a running
//! sfsim, one module per feature. Each keeps its tests in schema `tests`,
//! where `cargo pgrx test` looks for them.

mod access;
mod bulk;
mod delivery;
mod events;
mod extension;
mod functions;
mod read;
mod shared;
mod support;
mod sync;
mod write;
mod write_through;
