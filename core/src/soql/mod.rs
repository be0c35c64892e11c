//! SOQL as the extension sends it: literals escaped per Salesforce's rules,
//! and queries printed from a plan decided elsewhere (see `fdw::pushdown`).

pub mod literal;
mod query;

pub use literal::{like_pattern, Literal};
pub use query::{CompareOp, Condition, Operand, OrderKey, Soql};
