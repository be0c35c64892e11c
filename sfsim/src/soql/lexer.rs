//! SOQL tokens. String literals keep their raw text: which escapes are legal
//! depends on where the literal stands (LIKE patterns allow `\%` and `\_`).

use super::error::SoqlError;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Ident(String),
    Str(String),
    Number(String),
    Date(String),
    DateTime(String),
    Time(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Dot,
    Colon,
    Star,
    Eof,
}

impl Tok {
    /// How Salesforce quotes the token in `unexpected token` messages.
    pub fn shown(&self) -> String {
        match self {
            Tok::Ident(s) | Tok::Number(s) | Tok::Date(s) | Tok::DateTime(s) | Tok::Time(s) => {
                s.clone()
            }
            Tok::Str(s) => format!("'{s}'"),
            Tok::Op(o) => o.to_string(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Comma => ",".into(),
            Tok::Dot => ".".into(),
            Tok::Colon => ":".into(),
            Tok::Star => "*".into(),
            Tok::Eof => "<EOF>".into(),
        }
    }

    pub fn is_keyword(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    /// Byte offset in the statement.
    pub at: usize,
}

fn digits(b: &[u8], from: usize, n: usize) -> bool {
    b.len() >= from + n && b[from..from + n].iter().all(u8::is_ascii_digit)
}

/// Makes the token of a literal's text.
type MakeTok = fn(String) -> Tok;

/// Length of a date, datetime or time literal starting at `i`, with its kind.
fn temporal_literal(b: &[u8], i: usize) -> Option<(usize, MakeTok)> {
    let time_len = |j: usize| -> Option<usize> {
        if !(digits(b, j, 2)
            && b.get(j + 2) == Some(&b':')
            && digits(b, j + 3, 2)
            && b.get(j + 5) == Some(&b':')
            && digits(b, j + 6, 2))
        {
            return None;
        }
        let mut k = j + 8;
        if b.get(k) == Some(&b'.') && digits(b, k + 1, 1) {
            k += 1;
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
        }
        Some(k - j)
    };
    if digits(b, i, 4)
        && b.get(i + 4) == Some(&b'-')
        && digits(b, i + 5, 2)
        && b.get(i + 7) == Some(&b'-')
        && digits(b, i + 8, 2)
    {
        let date_end = i + 10;
        if b.get(date_end) != Some(&b'T') {
            return Some((10, Tok::Date));
        }
        let t = time_len(date_end + 1)?;
        let mut k = date_end + 1 + t;
        match b.get(k) {
            Some(b'Z') => k += 1,
            Some(b'+') | Some(b'-')
                if digits(b, k + 1, 2) && b.get(k + 3) == Some(&b':') && digits(b, k + 4, 2) =>
            {
                k += 6
            }
            _ => return None,
        }
        return Some((k - i, Tok::DateTime));
    }
    let t = time_len(i)?;
    let k = i + t + usize::from(b.get(i + t) == Some(&b'Z'));
    Some((k - i, Tok::Time))
}

pub fn tokenize(soql: &str) -> Result<Vec<Token>, SoqlError> {
    let b = soql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let at = i;
        let tok = match c {
            b'\'' => {
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => {
                            return Err(SoqlError::malformed(
                                soql,
                                at,
                                "unterminated string literal",
                            ))
                        }
                        Some(b'\\') => j += 2,
                        Some(b'\'') => break,
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
                Tok::Str(soql[at + 1..j].to_string())
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'.' => {
                i += 1;
                Tok::Dot
            }
            b':' => {
                i += 1;
                Tok::Colon
            }
            b'*' => {
                i += 1;
                Tok::Star
            }
            b'=' => {
                i += 1;
                Tok::Op("=")
            }
            b'!' if b.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Op("!=")
            }
            b'<' if b.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Op("<=")
            }
            b'<' if b.get(i + 1) == Some(&b'>') => {
                i += 2;
                Tok::Op("<>")
            }
            b'<' => {
                i += 1;
                Tok::Op("<")
            }
            b'>' if b.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Op(">=")
            }
            b'>' => {
                i += 1;
                Tok::Op(">")
            }
            b'0'..=b'9' | b'-' | b'+' => {
                if let Some((len, make)) = temporal_literal(b, i) {
                    i += len;
                    make(soql[at..i].to_string())
                } else {
                    let mut j = i + usize::from(c == b'-' || c == b'+');
                    let start_digits = j;
                    while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
                        j += 1;
                    }
                    if j == start_digits {
                        return Err(SoqlError::malformed(
                            soql,
                            at,
                            format!("unexpected token: '{}'", c as char),
                        ));
                    }
                    i = j;
                    Tok::Number(soql[at..i].to_string())
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                i = j;
                Tok::Ident(soql[at..i].to_string())
            }
            _ => {
                let ch = soql[at..].chars().next().unwrap_or('?');
                return Err(SoqlError::malformed(
                    soql,
                    at,
                    format!("unexpected token: '{ch}'"),
                ));
            }
        };
        out.push(Token { tok, at });
    }
    out.push(Token {
        tok: Tok::Eof,
        at: soql.len(),
    });
    Ok(out)
}

/// Decodes a string literal's escapes. Inside a LIKE pattern `\%` and `\_`
/// stay escaped (as a backslash and the character) for the matcher.
pub fn decode_string(raw: &str, like: bool) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    let illegal =
        |seq: &str| format!("Invalid string literal '{raw}'. Illegal escape sequence: \\{seq}");
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or_else(|| illegal(""))?;
        match e {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            '\\' if like => out.push_str("\\\\"),
            '\\' => out.push('\\'),
            '%' | '_' if like => {
                out.push('\\');
                out.push(e);
            }
            'u' => {
                let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                let unit = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| illegal(&format!("u{hex}")))?;
                let ch = if (0xD800..0xDC00).contains(&unit) {
                    let mut low = String::new();
                    if chars.next() == Some('\\') && chars.next() == Some('u') {
                        low = (0..4).filter_map(|_| chars.next()).collect();
                    }
                    let lo = u32::from_str_radix(&low, 16)
                        .ok()
                        .filter(|l| (0xDC00..0xE000).contains(l))
                        .ok_or_else(|| illegal(&format!("u{hex}")))?;
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (lo - 0xDC00))
                } else {
                    char::from_u32(unit)
                };
                out.push(ch.ok_or_else(|| illegal(&format!("u{hex}")))?);
            }
            other => return Err(illegal(&other.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_escape_decodes() {
        assert_eq!(
            decode_string(r#"a\nb\rc\td\be\ff\"g\'h\\i\u00e9"#, false).unwrap(),
            "a\nb\rc\td\u{8}e\u{c}f\"g'h\\ié"
        );
        assert_eq!(decode_string(r"\ud83d\ude00", false).unwrap(), "😀");
    }

    #[test]
    fn like_escapes_only_inside_like() {
        assert_eq!(decode_string(r"50\%", true).unwrap(), r"50\%");
        assert!(decode_string(r"50\%", false)
            .unwrap_err()
            .contains(r"Illegal escape sequence: \%"));
        assert!(decode_string(r"\q", true).is_err());
        assert!(decode_string(r"\u12", false).is_err());
    }

    #[test]
    fn temporal_literals_are_single_tokens() {
        let toks: Vec<Tok> = tokenize("a >= 2024-01-31 AND b < 2024-01-31T10:00:00.5+01:00 AND c = 09:30:00.000Z AND d > -1.5")
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect();
        assert!(toks.contains(&Tok::Date("2024-01-31".into())));
        assert!(toks.contains(&Tok::DateTime("2024-01-31T10:00:00.5+01:00".into())));
        assert!(toks.contains(&Tok::Time("09:30:00.000Z".into())));
        assert!(toks.contains(&Tok::Number("-1.5".into())));
    }

    #[test]
    fn quotes_inside_strings_do_not_end_them() {
        let toks = tokenize(r"Name = 'O\'Brien' AND x = 1").unwrap();
        assert_eq!(toks[2].tok, Tok::Str(r"O\'Brien".into()));
    }
}
