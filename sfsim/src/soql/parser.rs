//! Recursive-descent parser for the SOQL subset Salesforce's REST query serves.

use super::ast::*;
use super::error::SoqlError;
use super::lexer::{tokenize, Tok, Token};

struct Parser<'a> {
    soql: &'a str,
    toks: Vec<Token>,
    pos: usize,
}

const RESERVED: &[&str] = &[
    "select", "from", "where", "and", "or", "not", "in", "like", "includes", "excludes", "order",
    "by", "limit", "offset", "asc", "desc", "nulls", "first", "last", "null", "true", "false",
    "group", "having", "with", "for",
];

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn at(&self) -> usize {
        self.toks[self.pos].at
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self) -> SoqlError {
        let tok = self.peek();
        let text = if *tok == Tok::Eof {
            "unexpected token: <EOF>".to_string()
        } else {
            format!("unexpected token: '{}'", tok.shown())
        };
        SoqlError::malformed(self.soql, self.at(), text)
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if self.peek().is_keyword(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect(&mut self, tok: Tok) -> Result<(), SoqlError> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn identifier(&mut self) -> Result<(String, usize), SoqlError> {
        match self.peek().clone() {
            Tok::Ident(s) if !RESERVED.contains(&s.to_ascii_lowercase().as_str()) => {
                let at = self.at();
                self.bump();
                Ok((s, at))
            }
            _ => Err(self.unexpected()),
        }
    }

    fn path(&mut self) -> Result<Path, SoqlError> {
        let (first, at) = self.identifier()?;
        let mut parts = vec![first];
        while *self.peek() == Tok::Dot {
            self.bump();
            parts.push(self.identifier()?.0);
        }
        Ok(Path { parts, at })
    }

    fn next_is(&self, tok: &Tok) -> bool {
        self.toks.get(self.pos + 1).is_some_and(|t| &t.tok == tok)
    }

    /// A field, or an aggregate function of one: `SUM(Amount)`.
    fn expr(&mut self) -> Result<Expr, SoqlError> {
        let at = self.at();
        let func = match self.peek() {
            Tok::Ident(name) if self.next_is(&Tok::LParen) => AggFunc::from_name(name),
            _ => None,
        };
        let Some(func) = func else {
            return Ok(Expr::Field(self.path()?));
        };
        self.bump();
        self.bump();
        let path = self.path()?;
        self.expect(Tok::RParen)?;
        Ok(Expr::Aggregate { func, path, at })
    }

    fn alias(&mut self) -> Option<Alias> {
        match self.peek().clone() {
            Tok::Ident(name) if !RESERVED.contains(&name.to_ascii_lowercase().as_str()) => {
                let at = self.at();
                self.bump();
                Some(Alias { name, at })
            }
            _ => None,
        }
    }

    fn select_item(&mut self) -> Result<SelectItem, SoqlError> {
        let at = self.at();
        let next_is_paren = self.next_is(&Tok::LParen);
        if *self.peek() == Tok::LParen {
            if !matches!(self.toks.get(self.pos + 1), Some(t) if t.tok.is_keyword("select")) {
                return Err(self.unexpected());
            }
            self.bump();
            let query = self.query_body()?;
            self.expect(Tok::RParen)?;
            return Ok(SelectItem::Subquery {
                query: Box::new(query),
                at,
            });
        }
        if self.peek().is_keyword("count")
            && next_is_paren
            && matches!(self.toks.get(self.pos + 2), Some(t) if t.tok == Tok::RParen)
        {
            self.bump();
            self.bump();
            self.bump();
            return Ok(SelectItem::Count { at });
        }
        if self.peek().is_keyword("fields") && next_is_paren {
            self.bump();
            self.bump();
            let kind = if self.keyword("all") {
                FieldsKind::All
            } else if self.keyword("standard") {
                FieldsKind::Standard
            } else if self.keyword("custom") {
                FieldsKind::Custom
            } else {
                return Err(self.unexpected());
            };
            self.expect(Tok::RParen)?;
            return Ok(SelectItem::Fields { kind, at });
        }
        Ok(match self.expr()? {
            Expr::Field(path) => SelectItem::Field {
                path,
                alias: self.alias(),
            },
            Expr::Aggregate { func, path, at } => SelectItem::Aggregate {
                func,
                path,
                at,
                alias: self.alias(),
            },
        })
    }

    fn literal(&mut self) -> Result<(Literal, usize), SoqlError> {
        let at = self.at();
        let lit = match self.peek().clone() {
            Tok::Str(s) => Literal::Str(s),
            Tok::Number(n) => Literal::Number(n),
            Tok::Date(d) => Literal::Date(d),
            Tok::DateTime(d) => Literal::DateTime(d),
            Tok::Time(t) => Literal::Time(t),
            Tok::Ident(s) if s.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Ident(s) if s.eq_ignore_ascii_case("false") => Literal::Bool(false),
            _ => return Err(self.unexpected()),
        };
        self.bump();
        Ok((lit, at))
    }

    fn literal_list(&mut self) -> Result<Vec<(Literal, usize)>, SoqlError> {
        self.expect(Tok::LParen)?;
        let mut values = vec![self.literal()?];
        while *self.peek() == Tok::Comma {
            self.bump();
            values.push(self.literal()?);
        }
        self.expect(Tok::RParen)?;
        Ok(values)
    }

    fn predicate(&mut self) -> Result<Cond, SoqlError> {
        let path = self.expr()?;
        if self.keyword("in") {
            return Ok(Cond::In {
                lhs: path,
                negated: false,
                values: self.literal_list()?,
            });
        }
        if self.peek().is_keyword("not") {
            self.bump();
            self.expect_keyword("in")?;
            return Ok(Cond::In {
                lhs: path,
                negated: true,
                values: self.literal_list()?,
            });
        }
        if self.keyword("includes") {
            return Ok(Cond::Includes {
                lhs: path,
                excludes: false,
                values: self.literal_list()?,
            });
        }
        if self.keyword("excludes") {
            return Ok(Cond::Includes {
                lhs: path,
                excludes: true,
                values: self.literal_list()?,
            });
        }
        let op = if self.keyword("like") {
            CmpOp::Like
        } else {
            match self.peek() {
                Tok::Op("=") => CmpOp::Eq,
                Tok::Op("!=") => CmpOp::Ne,
                Tok::Op("<") => CmpOp::Lt,
                Tok::Op("<=") => CmpOp::Le,
                Tok::Op(">") => CmpOp::Gt,
                Tok::Op(">=") => CmpOp::Ge,
                _ => return Err(self.unexpected()),
            }
        };
        if op != CmpOp::Like {
            self.bump();
        }
        let (value, value_at) = self.literal()?;
        Ok(Cond::Cmp {
            lhs: path,
            op,
            value,
            value_at,
        })
    }

    fn unary(&mut self) -> Result<Cond, SoqlError> {
        if self.keyword("not") {
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if *self.peek() == Tok::LParen {
            self.bump();
            let inner = self.condition()?;
            self.expect(Tok::RParen)?;
            return Ok(inner);
        }
        self.predicate()
    }

    /// A chain joined by one kind of connective: Salesforce rejects a chain
    /// mixing AND and OR without parentheses.
    fn condition(&mut self) -> Result<Cond, SoqlError> {
        let first = self.unary()?;
        let connective = if self.peek().is_keyword("and") {
            "and"
        } else if self.peek().is_keyword("or") {
            "or"
        } else {
            return Ok(first);
        };
        let mut parts = vec![first];
        loop {
            if self.keyword(connective) {
                parts.push(self.unary()?);
            } else if self.peek().is_keyword("and") || self.peek().is_keyword("or") {
                return Err(self.unexpected());
            } else {
                break;
            }
        }
        Ok(if connective == "and" {
            Cond::And(parts)
        } else {
            Cond::Or(parts)
        })
    }

    fn integer(&mut self) -> Result<u64, SoqlError> {
        match self.peek().clone() {
            Tok::Number(n) => match n.parse::<u64>() {
                Ok(v) => {
                    self.bump();
                    Ok(v)
                }
                Err(_) => Err(self.unexpected()),
            },
            _ => Err(self.unexpected()),
        }
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        let q = self.query_body()?;
        if *self.peek() != Tok::Eof {
            return Err(self.unexpected());
        }
        Ok(q)
    }

    fn path_list(&mut self) -> Result<Vec<Path>, SoqlError> {
        let mut paths = vec![self.path()?];
        while *self.peek() == Tok::Comma {
            self.bump();
            paths.push(self.path()?);
        }
        Ok(paths)
    }

    /// A statement up to where it ends: the end of input, or the `)` closing a subquery.
    fn query_body(&mut self) -> Result<Query, SoqlError> {
        self.expect_keyword("select")?;
        let mut select = vec![self.select_item()?];
        while *self.peek() == Tok::Comma {
            self.bump();
            select.push(self.select_item()?);
        }
        self.expect_keyword("from")?;
        let (from, from_at) = self.identifier()?;
        let filter = if self.keyword("where") {
            Some(self.condition()?)
        } else {
            None
        };
        let group_by = if self.peek().is_keyword("group") {
            self.bump();
            self.expect_keyword("by")?;
            self.path_list()?
        } else {
            Vec::new()
        };
        let having = if self.keyword("having") {
            Some(self.condition()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.keyword("order") {
            self.expect_keyword("by")?;
            loop {
                let expr = self.expr()?;
                let descending = self.keyword("desc");
                if !descending {
                    self.keyword("asc");
                }
                let nulls_last = if self.keyword("nulls") {
                    if self.keyword("last") {
                        true
                    } else {
                        self.expect_keyword("first")?;
                        false
                    }
                } else {
                    false
                };
                order_by.push(OrderItem {
                    expr,
                    descending,
                    nulls_last,
                });
                if *self.peek() != Tok::Comma {
                    break;
                }
                self.bump();
            }
        }
        let limit = if self.keyword("limit") {
            Some(self.integer()?)
        } else {
            None
        };
        let offset = if self.keyword("offset") {
            let at = self.at();
            Some((self.integer()?, at))
        } else {
            None
        };
        Ok(Query {
            select,
            from,
            from_at,
            filter,
            group_by,
            having,
            order_by,
            limit,
            offset,
        })
    }
}

pub fn parse(soql: &str) -> Result<Query, SoqlError> {
    let toks = tokenize(soql)?;
    Parser { soql, toks, pos: 0 }.query()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(soql: &str) -> String {
        parse(soql).unwrap_err().message
    }

    #[test]
    fn star_is_rejected_with_salesforce_layout() {
        assert_eq!(
            err("SELECT * FROM Account"),
            "\nSELECT * FROM Account\n       ^\nERROR at Row:1:Column:8\nunexpected token: '*'"
        );
    }

    #[test]
    fn mixing_and_or_needs_parentheses() {
        assert!(err("SELECT Id FROM A WHERE x = 1 AND y = 2 OR z = 3")
            .contains("unexpected token: 'OR'"));
        assert!(parse("SELECT Id FROM A WHERE x = 1 AND (y = 2 OR z = 3)").is_ok());
        assert!(parse("SELECT Id FROM A WHERE NOT x = 1 AND NOT (y = 2)").is_ok());
    }

    #[test]
    fn angle_bracket_not_equal_is_not_soql() {
        assert!(err("SELECT Id FROM A WHERE x <> 1").contains("unexpected token: '<>'"));
    }

    #[test]
    fn full_statement_parses() {
        let q = parse("select Id, Account.Name, COUNT() from Contact where Name like 'a%' and Id in ('a','b') and L__c includes ('x;y','z') order by Name desc nulls last, Id limit 10 offset 5").unwrap();
        assert_eq!(q.select.len(), 3);
        assert_eq!(q.order_by.len(), 2);
        assert!(q.order_by[0].descending && q.order_by[0].nulls_last);
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.offset.map(|o| o.0), Some(5));
    }

    #[test]
    fn aggregates_group_by_having_and_subqueries_parse() {
        let q = parse("SELECT Account.Name, COUNT(Id), SUM(Amount) total, (SELECT Id FROM Contacts WHERE Name = 'x' LIMIT 2) FROM Opportunity WHERE Amount > 0 GROUP BY Account.Name HAVING COUNT(Id) > 1 AND MAX(Amount) < 5 ORDER BY SUM(Amount) DESC LIMIT 3").unwrap();
        assert_eq!(q.group_by.len(), 1);
        assert!(q.having.is_some());
        assert!(matches!(
            &q.select[2],
            SelectItem::Aggregate { func: AggFunc::Sum, alias: Some(a), .. } if a.name == "total"
        ));
        assert!(matches!(
            &q.select[3],
            SelectItem::Subquery { query, .. } if query.from == "Contacts" && query.limit == Some(2)
        ));
        assert!(matches!(
            q.order_by[0].expr,
            Expr::Aggregate {
                func: AggFunc::Sum,
                ..
            }
        ));
        assert!(matches!(
            parse("SELECT COUNT() FROM A").unwrap().select[0],
            SelectItem::Count { .. }
        ));
        assert!(err("SELECT Id, (SELECT Id FROM B FROM A").contains("unexpected token: 'FROM'"));
    }

    #[test]
    fn errors_report_row_and_column_on_later_lines() {
        let e = err("SELECT Id\nFROM Contact\nWHERE Name = = 'x'");
        assert!(e.contains("ERROR at Row:3:Column:14"), "{e}");
    }
}
