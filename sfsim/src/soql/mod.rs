//! SOQL: a real lexer, parser, planner and evaluator for what the REST query
//! resource serves.

pub mod ast;
pub mod error;
pub mod exec;
pub mod lexer;
pub mod parser;
pub mod plan;

pub use error::SoqlError;
