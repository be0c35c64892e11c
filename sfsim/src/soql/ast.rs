//! The parsed form of a SOQL statement, before its names are checked against the schema.

#[derive(Debug, Clone)]
pub struct Path {
    pub parts: Vec<String>,
    pub at: usize,
}

impl Path {
    pub fn dotted(&self) -> String {
        self.parts.join(".")
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldsKind {
    All,
    Standard,
    Custom,
}

#[derive(Debug, Clone)]
pub enum SelectItem {
    Field(Path),
    Count { at: usize },
    Fields { kind: FieldsKind, at: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(String),
    /// Raw text between the quotes; decoded once its context is known.
    Str(String),
    Date(String),
    DateTime(String),
    Time(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

#[derive(Debug, Clone)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp {
        path: Path,
        op: CmpOp,
        value: Literal,
        value_at: usize,
    },
    In {
        path: Path,
        negated: bool,
        values: Vec<(Literal, usize)>,
    },
    Includes {
        path: Path,
        excludes: bool,
        values: Vec<(Literal, usize)>,
    },
}

#[derive(Debug, Clone)]
pub struct OrderItem {
    pub path: Path,
    pub descending: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: String,
    pub from_at: usize,
    pub filter: Option<Cond>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<(u64, usize)>,
}
