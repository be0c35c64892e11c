//! SOQL literals. Strings take exactly the escapes SOQL defines; dates,
//! datetimes (UTC), numbers and booleans are unquoted.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    Null,
    Bool(bool),
    /// A decimal number as text: `-12`, `3.25`.
    Number(String),
    Text(String),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    /// The values of an IN list.
    List(Vec<Literal>),
}

/// Whether text is a plain decimal SOQL accepts: optional minus, digits, optional fraction.
pub fn is_decimal(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn escape_char(c: char, out: &mut String) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\'' => out.push_str("\\'"),
        '"' => out.push_str("\\\""),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push(c),
    }
}

/// A quoted SOQL string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        escape_char(c, &mut out);
    }
    out.push('\'');
    out
}

/// Translates a PostgreSQL LIKE pattern (backslash escapes) into a quoted
/// SOQL LIKE pattern, or None when PostgreSQL would reject the pattern.
pub fn like_pattern(pg_pattern: &str) -> Option<String> {
    let mut out = String::from("'");
    let mut chars = pg_pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' | '_' => out.push(c),
            '\\' => match chars.next()? {
                e @ ('%' | '_') => {
                    out.push('\\');
                    out.push(e);
                }
                e => escape_char(e, &mut out),
            },
            c => escape_char(c, &mut out),
        }
    }
    out.push('\'');
    Some(out)
}

impl Literal {
    /// The SOQL text of a literal. Numbers are checked when the literal is
    /// made, so a `Number` here is always a plain decimal.
    pub fn render(&self) -> String {
        match self {
            Literal::Null => "null".into(),
            Literal::Bool(b) => b.to_string(),
            Literal::Number(n) => n.clone(),
            Literal::Text(s) => quote(s),
            Literal::Date(d) => d.format("%Y-%m-%d").to_string(),
            Literal::DateTime(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            Literal::List(items) => format!(
                "({})",
                items
                    .iter()
                    .map(Literal::render)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn strings_escape_every_special_character() {
        assert_eq!(quote("O'Brien"), r"'O\'Brien'");
        assert_eq!(
            quote("a\\b\"c\nd\re\tf\u{8}g\u{c}h\u{1}"),
            r#"'a\\b\"c\nd\re\tf\bg\fh\u0001'"#
        );
        assert_eq!(
            quote("50% _off é 😀"),
            "'50% _off é 😀'",
            "wildcards are plain outside LIKE"
        );
    }

    #[test]
    fn like_patterns_keep_wildcards_and_escape_literals() {
        assert_eq!(like_pattern("Acme%").unwrap(), "'Acme%'");
        assert_eq!(like_pattern(r"100\%_x").unwrap(), r"'100\%_x'");
        assert_eq!(like_pattern(r"a\_b").unwrap(), r"'a\_b'");
        assert_eq!(like_pattern(r"back\\slash").unwrap(), r"'back\\slash'");
        assert_eq!(like_pattern("it's").unwrap(), r"'it\'s'");
        assert_eq!(
            like_pattern(r"\q").unwrap(),
            "'q'",
            "an escaped ordinary character is itself"
        );
        assert_eq!(like_pattern(r"ends with \"), None);
    }

    #[test]
    fn other_literals() {
        assert_eq!(
            Literal::Date(NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()).render(),
            "2024-01-31"
        );
        let t = Utc.with_ymd_and_hms(2024, 1, 31, 10, 0, 5).unwrap();
        assert_eq!(Literal::DateTime(t).render(), "2024-01-31T10:00:05Z");
        assert_eq!(Literal::Bool(false).render(), "false");
        assert_eq!(
            Literal::List(vec![Literal::Text("a".into()), Literal::Number("2".into())]).render(),
            "('a', 2)"
        );
        assert!(
            is_decimal("-12.50")
                && is_decimal("7")
                && !is_decimal("1e5")
                && !is_decimal("NaN")
                && !is_decimal("1.")
                && !is_decimal("")
        );
    }

    mod against_sfsim {
        use super::super::*;
        use proptest::prelude::*;
        use serde_json::json;
        use sfsim::org::{Author, Org, Undo};
        use sfsim::soql::lexer::{decode_string, tokenize, Tok};

        fn string_token(soql: &str) -> String {
            let toks = tokenize(soql).expect("sfsim tokenizes our SOQL");
            toks.into_iter()
                .find_map(|t| {
                    if let Tok::Str(raw) = t.tok {
                        Some(raw)
                    } else {
                        None
                    }
                })
                .expect("a string literal")
        }

        /// A PostgreSQL LIKE pattern matching exactly `s`.
        fn pg_like_escape(s: &str) -> String {
            s.chars()
                .flat_map(|c| {
                    if matches!(c, '%' | '_' | '\\') {
                        vec!['\\', c]
                    } else {
                        vec![c]
                    }
                })
                .collect()
        }

        proptest! {
            #[test]
            fn any_string_round_trips_through_sfsims_parser(s in any::<String>()) {
                let raw = string_token(&format!("SELECT Id FROM Contact WHERE LastName = {}", quote(&s)));
                prop_assert_eq!(decode_string(&raw, false).unwrap(), s);
            }

            #[test]
            fn escaped_like_patterns_match_exactly_their_string(s in "[a-zA-Z0-9%_\\\\' \"\n\té😀]{1,12}") {
                let mut org = Org::new(sfsim::schema::Schema::builtin(), chrono::Utc::now());
                sfsim::seed::populate(&mut org, &sfsim::seed::plan("empty").unwrap()).unwrap();
                let author = Author { user_id: org.admin_user_id.clone(), now: chrono::Utc::now() };
                let contact = org.object("Contact").unwrap();
                for name in [s.clone(), format!("{s}x"), format!("x{s}")] {
                    org.create(contact, json!({"LastName": name}).as_object().unwrap(), &author, &mut Undo::default()).unwrap();
                }
                let soql = format!("SELECT Id FROM Contact WHERE LastName LIKE {}", like_pattern(&pg_like_escape(&s)).unwrap());
                let plan = sfsim::soql::plan::plan(&org, &soql).unwrap();
                prop_assert_eq!(sfsim::soql::exec::run(&org, &plan, false).len(), 1, "{}", soql);
            }
        }
    }
}
