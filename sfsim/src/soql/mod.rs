//! SOQL: a real lexer, parser, planner and evaluator for what the REST query
//! resource serves.

pub mod aggregate;
pub mod ast;
pub mod children;
pub mod error;
pub mod exec;
pub mod group;
pub mod lexer;
pub mod parser;
pub mod plan;

pub use error::SoqlError;
