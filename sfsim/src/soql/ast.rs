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

/// The aggregate functions SOQL has besides `COUNT()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFunc {
    pub fn from_name(name: &str) -> Option<AggFunc> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => AggFunc::Count,
            "count_distinct" => AggFunc::CountDistinct,
            "sum" => AggFunc::Sum,
            "avg" => AggFunc::Avg,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            _ => return None,
        })
    }

    /// The name Salesforce's messages give the function.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "COUNT",
            AggFunc::CountDistinct => "COUNT_DISTINCT",
            AggFunc::Sum => "SUM",
            AggFunc::Avg => "AVG",
            AggFunc::Min => "MIN",
            AggFunc::Max => "MAX",
        }
    }
}

/// What a condition or an ORDER BY key is about: a field, or an aggregate of one.
#[derive(Debug, Clone)]
pub enum Expr {
    Field(Path),
    Aggregate {
        func: AggFunc,
        path: Path,
        at: usize,
    },
}

impl Expr {
    pub fn at(&self) -> usize {
        match self {
            Expr::Field(p) => p.at,
            Expr::Aggregate { at, .. } => *at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Alias {
    pub name: String,
    pub at: usize,
}

#[derive(Debug, Clone)]
pub enum SelectItem {
    Field {
        path: Path,
        alias: Option<Alias>,
    },
    Aggregate {
        func: AggFunc,
        path: Path,
        at: usize,
        alias: Option<Alias>,
    },
    Count {
        at: usize,
    },
    Fields {
        kind: FieldsKind,
        at: usize,
    },
    /// A parent-to-child subquery: `(SELECT ... FROM Contacts ...)`.
    Subquery {
        query: Box<Query>,
        at: usize,
    },
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
        lhs: Expr,
        op: CmpOp,
        value: Literal,
        value_at: usize,
    },
    In {
        lhs: Expr,
        negated: bool,
        values: Vec<(Literal, usize)>,
    },
    Includes {
        lhs: Expr,
        excludes: bool,
        values: Vec<(Literal, usize)>,
    },
}

#[derive(Debug, Clone)]
pub struct OrderItem {
    pub expr: Expr,
    pub descending: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: String,
    pub from_at: usize,
    pub filter: Option<Cond>,
    pub group_by: Vec<Path>,
    pub having: Option<Cond>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<(u64, usize)>,
}
