//! A query job's results as Bulk API 2.0 writes them: CSV in the job's
//! column delimiter and line ending, a header row of the selected columns,
//! every value quoted and nulls left as bare empty fields (Salesforce's own
//! results look so), values in Bulk's text forms. They are rendered once,
//! when the job runs, so each page is a slice of them.

use crate::org::{Org, Record};
use crate::schema::ObjectDef;
use crate::soql::exec::path_value;
use crate::soql::plan::{Column, FieldPath};
use crate::value::{format_time, Value};
use bytes::Bytes;
use chrono::{Datelike, Timelike};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnDelimiter {
    Backquote,
    Caret,
    Comma,
    Pipe,
    Semicolon,
    Tab,
}

impl ColumnDelimiter {
    pub const NAMES: &'static str = "BACKQUOTE, CARET, COMMA, PIPE, SEMICOLON and TAB";

    pub fn parse(name: &str) -> Option<ColumnDelimiter> {
        Some(match name {
            "BACKQUOTE" => ColumnDelimiter::Backquote,
            "CARET" => ColumnDelimiter::Caret,
            "COMMA" => ColumnDelimiter::Comma,
            "PIPE" => ColumnDelimiter::Pipe,
            "SEMICOLON" => ColumnDelimiter::Semicolon,
            "TAB" => ColumnDelimiter::Tab,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ColumnDelimiter::Backquote => "BACKQUOTE",
            ColumnDelimiter::Caret => "CARET",
            ColumnDelimiter::Comma => "COMMA",
            ColumnDelimiter::Pipe => "PIPE",
            ColumnDelimiter::Semicolon => "SEMICOLON",
            ColumnDelimiter::Tab => "TAB",
        }
    }

    pub(crate) fn byte(self) -> u8 {
        match self {
            ColumnDelimiter::Backquote => b'`',
            ColumnDelimiter::Caret => b'^',
            ColumnDelimiter::Comma => b',',
            ColumnDelimiter::Pipe => b'|',
            ColumnDelimiter::Semicolon => b';',
            ColumnDelimiter::Tab => b'\t',
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnding {
    Lf,
    Crlf,
}

impl LineEnding {
    pub fn parse(name: &str) -> Option<LineEnding> {
        match name {
            "LF" => Some(LineEnding::Lf),
            "CRLF" => Some(LineEnding::Crlf),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LineEnding::Lf => "LF",
            LineEnding::Crlf => "CRLF",
        }
    }

    fn terminator(self) -> csv_core::Terminator {
        match self {
            LineEnding::Lf => csv_core::Terminator::Any(b'\n'),
            LineEnding::Crlf => csv_core::Terminator::CRLF,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsvFormat {
    pub delimiter: ColumnDelimiter,
    pub line_ending: LineEnding,
}

/// csv-core writes into caller-provided room; this keeps that room in a Vec.
/// (The csv crate's Writer cannot leave one field of a quoted record bare,
/// which Bulk's nulls need.)
pub(crate) struct CsvWriter {
    core: csv_core::Writer,
    pub(crate) out: Vec<u8>,
}

impl CsvWriter {
    pub(crate) fn new(format: CsvFormat, capacity: usize) -> CsvWriter {
        Self::quoting(format, capacity, csv_core::QuoteStyle::Always)
    }

    pub(crate) fn quoting(
        format: CsvFormat,
        capacity: usize,
        style: csv_core::QuoteStyle,
    ) -> CsvWriter {
        let core = csv_core::WriterBuilder::new()
            .delimiter(format.delimiter.byte())
            .terminator(format.line_ending.terminator())
            .quote_style(style)
            .build();
        CsvWriter {
            core,
            out: Vec::with_capacity(capacity),
        }
    }

    /// Lends `write` `room` more bytes and keeps as many as it wrote.
    fn write(
        &mut self,
        room: usize,
        write: impl FnOnce(&mut csv_core::Writer, &mut [u8]) -> usize,
    ) {
        let len = self.out.len();
        self.out.resize(len + room, 0);
        let written = write(&mut self.core, &mut self.out[len..]);
        self.out.truncate(len + written);
    }

    pub(crate) fn field(&mut self, text: &[u8]) {
        // Quoting at most doubles a field and adds its quotes, so one call writes it all.
        self.write(2 * text.len() + 2, |core, out| core.field(text, out).2);
    }

    pub(crate) fn delimiter(&mut self) {
        self.write(2, |core, out| core.delimiter(out).1);
    }

    pub(crate) fn end_row(&mut self) {
        self.write(5, |core, out| core.terminator(out).1);
    }
}

/// `n` in `width` digits, zero-padded, without the formatting machinery:
/// results hold millions of dates.
fn push_digits(out: &mut Vec<u8>, mut n: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for digit in out[start..].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn push_date(out: &mut Vec<u8>, date: &impl Datelike) {
    push_digits(out, date.year() as u32, 4);
    out.push(b'-');
    push_digits(out, date.month(), 2);
    out.push(b'-');
    push_digits(out, date.day(), 2);
}

/// Bulk's text form of a non-null value: datetimes `2024-02-06T20:48:32.000Z`,
/// dates `2024-02-06`, times `20:48:32.000Z`, `true`/`false`, numbers as plain
/// decimals, multipicklists as stored (joined with `;`).
fn text_form(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Text(s) => out.extend_from_slice(s.as_bytes()),
        Value::Date(d) => push_date(out, d),
        Value::DateTime(t) => {
            push_date(out, t);
            out.push(b'T');
            push_digits(out, t.hour(), 2);
            out.push(b':');
            push_digits(out, t.minute(), 2);
            out.push(b':');
            push_digits(out, t.second(), 2);
            out.push(b'.');
            push_digits(out, t.timestamp_subsec_millis(), 3);
            out.push(b'Z');
        }
        Value::Time(t) => out.extend_from_slice(format_time(t).as_bytes()),
        // Never reached: Bulk refuses compound fields when the job is created.
        Value::Compound(json) => out.extend_from_slice(json.to_string().as_bytes()),
    }
}

/// The value at a column's path; a plain field of the record is borrowed.
fn column_value<'r>(
    org: &Org,
    def: &ObjectDef,
    rec: &'r Record,
    path: &FieldPath,
) -> Cow<'r, Value> {
    let field = &def.fields[path.field];
    if path.hops.is_empty() && field.formula.is_none() && !field.ftype.is_compound() {
        Cow::Borrowed(rec.get(path.field))
    } else {
        Cow::Owned(path_value(org, def, rec, path))
    }
}

/// A job's rendered results: the header row, then every record's row.
pub struct Results {
    header: Bytes,
    rows: Bytes,
    /// Where each row ends in `rows`.
    row_ends: Vec<usize>,
}

impl Results {
    pub fn len(&self) -> usize {
        self.row_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.row_ends.is_empty()
    }

    fn offset(&self, row: usize) -> usize {
        if row == 0 {
            0
        } else {
            self.row_ends[row - 1]
        }
    }

    /// Where the page starting at row `start` ends: after at most
    /// `max_records` rows that fit in `max_bytes`, but never before one row.
    pub fn page_end(&self, start: usize, max_records: usize, max_bytes: usize) -> usize {
        let end = start.saturating_add(max_records).min(self.len());
        let base = self.offset(start);
        let fitting = self.row_ends[start..end].partition_point(|e| e - base <= max_bytes);
        (start + fitting.max(1)).min(end)
    }

    /// The header row and rows `start..end`.
    pub fn page(&self, start: usize, end: usize) -> [Bytes; 2] {
        [
            self.header.clone(),
            self.rows.slice(self.offset(start)..self.offset(end)),
        ]
    }
}

/// Renders `records` of `def` as the CSV of `columns`. `planted` replaces one
/// column's values with a raw JSON value (the bad_value fault).
pub fn render(
    org: &Org,
    def: &ObjectDef,
    columns: &[Column],
    records: &[Arc<Record>],
    format: CsvFormat,
    planted: Option<(usize, &Json)>,
) -> Results {
    let mut csv = CsvWriter::new(format, records.len() * (columns.len() * 24 + 2));
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            csv.delimiter();
        }
        csv.field(column.name.as_bytes());
    }
    csv.end_row();
    let header_len = csv.out.len();
    let mut row_ends = Vec::with_capacity(records.len());
    let mut text = Vec::new();
    for rec in records {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                csv.delimiter();
            }
            if let Some((_, raw)) = planted.filter(|(c, _)| *c == i) {
                match raw {
                    Json::Null => {}
                    Json::String(s) => csv.field(s.as_bytes()),
                    other => csv.field(other.to_string().as_bytes()),
                }
                continue;
            }
            match column_value(org, def, rec, &column.path).as_ref() {
                Value::Null => {}
                Value::Text(s) => csv.field(s.as_bytes()),
                value => {
                    text.clear();
                    text_form(value, &mut text);
                    csv.field(&text);
                }
            }
        }
        csv.end_row();
        row_ends.push(csv.out.len() - header_len);
    }
    let all = Bytes::from(csv.out);
    Results {
        header: all.slice(..header_len),
        rows: all.slice(header_len..),
        row_ends,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;
    use crate::soql::plan::plan;
    use chrono::Utc;

    fn contact(org: &mut Org, fields: serde_json::Value) {
        let object = org.object("Contact").unwrap();
        let author = crate::org::Author {
            user_id: org.admin_user_id.clone(),
            now: Utc::now(),
        };
        org.create(
            object,
            fields.as_object().unwrap(),
            &author,
            &mut crate::org::Undo::default(),
        )
        .unwrap();
    }

    fn csv_of(org: &Org, soql: &str, format: CsvFormat) -> String {
        let p = plan(org, soql).unwrap();
        let rows = crate::soql::exec::run(org, &p, false);
        let results = render(org, &p.def, &p.columns, &rows, format, None);
        let [header, body] = results.page(0, results.len());
        String::from_utf8([header, body].concat()).unwrap()
    }

    const COMMA_LF: CsvFormat = CsvFormat {
        delimiter: ColumnDelimiter::Comma,
        line_ending: LineEnding::Lf,
    };

    #[test]
    fn values_are_quoted_nulls_bare_and_quotes_doubled() {
        let mut org = Org::new(Schema::builtin(), Utc::now());
        contact(
            &mut org,
            serde_json::json!({"LastName": "Say \"hi\", then\nleave", "Title": "Zoë 東京", "Birthdate": "1990-01-31", "HasOptedOutOfEmail": true, "Lifetime_Value__c": 1234.5}),
        );
        let csv = csv_of(
            &org,
            "SELECT LastName, Title, Email, Birthdate, HasOptedOutOfEmail, Lifetime_Value__c FROM Contact",
            COMMA_LF,
        );
        assert_eq!(
            csv,
            "\"LastName\",\"Title\",\"Email\",\"Birthdate\",\"HasOptedOutOfEmail\",\"Lifetime_Value__c\"\n\"Say \"\"hi\"\", then\nleave\",\"Zoë 東京\",,\"1990-01-31\",\"true\",\"1234.5\"\n"
        );
    }

    #[test]
    fn delimiters_line_endings_and_a_lone_null() {
        let mut org = Org::new(Schema::builtin(), Utc::now());
        contact(&mut org, serde_json::json!({"LastName": "a|b"}));
        let pipe_crlf = CsvFormat {
            delimiter: ColumnDelimiter::Pipe,
            line_ending: LineEnding::Crlf,
        };
        assert_eq!(
            csv_of(&org, "SELECT LastName, Email FROM Contact", pipe_crlf),
            "\"LastName\"|\"Email\"\r\n\"a|b\"|\r\n"
        );
        // A row of one null field is written `""`, so it is not an empty line.
        assert_eq!(
            csv_of(&org, "SELECT Email FROM Contact", COMMA_LF),
            "\"Email\"\n\"\"\n"
        );
    }

    #[test]
    fn pages_respect_record_and_byte_budgets() {
        let mut org = Org::new(Schema::builtin(), Utc::now());
        for i in 0..5 {
            contact(&mut org, serde_json::json!({"LastName": format!("n{i}")}));
        }
        let p = plan(&org, "SELECT LastName FROM Contact").unwrap();
        let rows = crate::soql::exec::run(&org, &p, false);
        let results = render(&org, &p.def, &p.columns, &rows, COMMA_LF, None);
        // Every row is `"nI"\n`: 5 bytes.
        assert_eq!(results.page_end(0, 2, usize::MAX), 2);
        assert_eq!(results.page_end(4, 2, usize::MAX), 5);
        assert_eq!(results.page_end(0, 100, 12), 2);
        assert_eq!(
            results.page_end(1, 100, 1),
            2,
            "a page holds at least one row"
        );
        assert_eq!(&results.page(1, 3)[1][..], b"\"n1\"\n\"n2\"\n");
    }
}
