//! What an ingest job did to each record, and its three result files as
//! CSV in the job's delimiter and line ending: `sf__Id`, `sf__Created` or
//! `sf__Error`, then the uploaded columns, each cell echoed as uploaded.
//! Rows come in the order the internal batches completed (see
//! `process::completion_order`), upload order within a batch.

use super::csv_in::Upload;
use crate::bulk::results::{CsvFormat, CsvWriter, LineEnding};
use crate::ids::Rid;

/// Rows with every field quoted, as csv-core writes them with
/// `QuoteStyle::Always` (quotes doubled, a row of no fields written `""`),
/// straight into one buffer: results hold millions of cells.
struct QuotedRows {
    out: Vec<u8>,
    delimiter: u8,
    terminator: &'static [u8],
}

impl QuotedRows {
    fn field(&mut self, after_another: bool, text: &[u8]) {
        if after_another {
            self.out.push(self.delimiter);
        }
        self.out.push(b'"');
        let mut rest = text;
        while let Some(quote) = rest.iter().position(|b| *b == b'"') {
            self.out.extend_from_slice(&rest[..=quote]);
            self.out.push(b'"');
            rest = &rest[quote + 1..];
        }
        self.out.extend_from_slice(rest);
        self.out.push(b'"');
    }

    fn end_row(&mut self, any: bool) {
        if !any {
            self.out.extend_from_slice(b"\"\"");
        }
        self.out.extend_from_slice(self.terminator);
    }
}

/// A record written: its id and whether it was created.
pub struct Success {
    pub record: u32,
    id: Rid,
    created: bool,
}

impl Success {
    pub fn new(record: usize, id: Rid, created: bool) -> Success {
        Success {
            record: record as u32,
            id,
            created,
        }
    }

    pub fn id(&self) -> &str {
        self.id.as_str()
    }
}

/// A record refused: the id it named or matched, if any, and why.
pub struct Failure {
    pub record: u32,
    pub id: Option<Box<str>>,
    pub error: Box<str>,
}

pub struct Outcomes {
    pub header: Vec<String>,
    pub uploads: Vec<Upload>,
    /// Records in the job.
    pub total: usize,
    /// In the order they were written.
    pub succeeded: Vec<Success>,
    pub failed: Vec<Failure>,
    pub unprocessed: Vec<u32>,
    /// Records processed and failed in each batch, in completion order.
    pub batches: Vec<(usize, usize)>,
    /// The job's error when it Failed.
    pub error: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Successful,
    Failed,
    Unprocessed,
}

impl Outcomes {
    /// Outcomes to be filled; the uploads are added when the job is done.
    pub fn new(header: Vec<String>, total: usize) -> Outcomes {
        Outcomes {
            header,
            uploads: vec![],
            total,
            succeeded: Vec::with_capacity(total),
            failed: vec![],
            unprocessed: vec![],
            batches: vec![],
            error: None,
        }
    }

    /// A job that failed before writing anything: every record unprocessed.
    pub fn failed_job(error: String, uploads: Vec<Upload>) -> Outcomes {
        let total = uploads.iter().map(|u| u.rows).sum();
        let header = uploads
            .iter()
            .find(|u| u.error.is_none())
            .map(|u| u.header.clone())
            .unwrap_or_default();
        let usable = uploads
            .iter()
            .all(|u| u.error.is_none() && u.header == header);
        Outcomes {
            unprocessed: if usable {
                (0..total as u32).collect()
            } else {
                vec![]
            },
            header,
            uploads: if usable { uploads } else { vec![] },
            total,
            succeeded: vec![],
            failed: vec![],
            batches: vec![],
            error: Some(error),
        }
    }

    /// Records processed and failed once `share` (0 to 1) of the batches are done.
    pub fn counts_after(&self, share: f64) -> (usize, usize) {
        let n = self.batches.len();
        let done = if share >= 1.0 {
            n
        } else {
            ((share * n as f64).floor() as usize).min(n)
        };
        self.batches[..done]
            .iter()
            .fold((0, 0), |(p, f), (bp, bf)| (p + bp, f + bf))
    }

    fn cells(&self, record: u32) -> impl Iterator<Item = &str> + '_ {
        let record = record as usize;
        let mut upload = 0;
        let mut start = 0;
        while start + self.uploads[upload].rows <= record {
            start += self.uploads[upload].rows;
            upload += 1;
        }
        self.uploads[upload].row(record - start)
    }

    /// One result file, whole.
    pub fn render(&self, kind: Kind, format: CsvFormat) -> Vec<u8> {
        let rows = match kind {
            Kind::Successful => self.succeeded.len(),
            Kind::Failed => self.failed.len(),
            Kind::Unprocessed => self.unprocessed.len(),
        };
        // A row is its cells as uploaded, each quoted and delimited, and
        // the two result columns: the whole file fits at once.
        let cell_bytes: usize = self.uploads.iter().map(Upload::cell_bytes).sum();
        let row_bytes = cell_bytes / self.total.max(1) + 3 * self.header.len() + 32;
        let mut w = CsvWriter::quoting(format, rows * row_bytes, csv_core::QuoteStyle::Necessary);
        // Salesforce quotes its own column names and echoes the uploaded ones.
        let own: &[&str] = match kind {
            Kind::Successful => &["sf__Id", "sf__Created"],
            Kind::Failed => &["sf__Id", "sf__Error"],
            Kind::Unprocessed => &[],
        };
        for name in own {
            w.out.push(b'"');
            w.out.extend_from_slice(name.as_bytes());
            w.out.push(b'"');
            w.out.push(format.delimiter.byte());
        }
        if self.header.is_empty() && !own.is_empty() {
            w.out.pop();
        }
        for (i, name) in self.header.iter().enumerate() {
            if i > 0 {
                w.delimiter();
            }
            w.field(name.as_bytes());
        }
        w.end_row();
        let mut values = QuotedRows {
            out: std::mem::take(&mut w.out),
            delimiter: format.delimiter.byte(),
            terminator: match format.line_ending {
                LineEnding::Lf => b"\n",
                LineEnding::Crlf => b"\r\n",
            },
        };
        let mut row = |first: [&str; 2], own: bool, cells: &mut dyn Iterator<Item = &str>| {
            let mut any = false;
            if own {
                for cell in first {
                    values.field(any, cell.as_bytes());
                    any = true;
                }
            }
            for cell in cells {
                values.field(any, cell.as_bytes());
                any = true;
            }
            values.end_row(any);
        };
        match kind {
            Kind::Successful => {
                for s in &self.succeeded {
                    let created = if s.created { "true" } else { "false" };
                    row([s.id(), created], true, &mut self.cells(s.record));
                }
            }
            Kind::Failed => {
                for f in &self.failed {
                    let id = f.id.as_deref().unwrap_or("");
                    row([id, &f.error], true, &mut self.cells(f.record));
                }
            }
            Kind::Unprocessed => {
                for r in &self.unprocessed {
                    row(["", ""], false, &mut self.cells(*r));
                }
            }
        }
        values.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::results::ColumnDelimiter;

    #[test]
    fn quoted_rows_are_what_csv_core_writes_quoting_always() {
        let rows: &[&[&str]] = &[
            &[
                "a",
                "",
                "b\"c",
                "\"\"",
                "x,y",
                "line\r\nbreak",
                "tab\tpipe|",
            ],
            &[""],
            &[],
            &["ünï", "\"edge"],
        ];
        for delimiter in [
            ColumnDelimiter::Comma,
            ColumnDelimiter::Pipe,
            ColumnDelimiter::Tab,
        ] {
            for line_ending in [LineEnding::Lf, LineEnding::Crlf] {
                let format = CsvFormat {
                    delimiter,
                    line_ending,
                };
                let mut core = CsvWriter::new(format, 0);
                let mut ours = QuotedRows {
                    out: vec![],
                    delimiter: delimiter.byte(),
                    terminator: if line_ending == LineEnding::Lf {
                        b"\n"
                    } else {
                        b"\r\n"
                    },
                };
                for row in rows {
                    for (i, cell) in row.iter().enumerate() {
                        if i > 0 {
                            core.delimiter();
                        }
                        core.field(cell.as_bytes());
                        ours.field(i > 0, cell.as_bytes());
                    }
                    core.end_row();
                    ours.end_row(!row.is_empty());
                }
                assert_eq!(
                    String::from_utf8_lossy(&ours.out),
                    String::from_utf8_lossy(&core.out)
                );
            }
        }
    }
}
