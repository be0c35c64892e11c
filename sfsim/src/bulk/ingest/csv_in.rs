//! One upload of an ingest job, read once when it arrives: its header row
//! and every cell of every row, unescaped, back to back in one string, so a
//! 20 MB upload costs about 20 MB plus four bytes a cell. The cells are
//! kept exactly as uploaded (after CSV unquoting), so results can echo them.

use crate::bulk::results::{CsvFormat, LineEnding};

pub struct Upload {
    pub header: Vec<String>,
    /// Every data cell, row after row.
    text: String,
    /// Where each data cell ends in `text`.
    ends: Vec<u32>,
    /// Data rows.
    pub rows: usize,
    /// Why the upload cannot be processed (the job then fails with it).
    pub error: Option<String>,
}

fn line_ending_error(format: CsvFormat) -> String {
    format!(
        "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is {}",
        format.line_ending.name()
    )
}

/// Whether the header line ends as the job says lines end.
fn line_ending_matches(bytes: &[u8], format: CsvFormat) -> bool {
    let Some(newline) = bytes.iter().position(|b| *b == b'\n') else {
        return true;
    };
    let crlf = newline > 0 && bytes[newline - 1] == b'\r';
    crlf == (format.line_ending == LineEnding::Crlf)
}

impl Upload {
    pub fn parse(bytes: &[u8], format: CsvFormat) -> Upload {
        let mut upload = Upload {
            header: vec![],
            text: String::new(),
            ends: vec![],
            rows: 0,
            error: None,
        };
        if std::str::from_utf8(bytes).is_err() {
            upload.error = Some("ClientInputError : The data is not valid UTF-8".into());
            return upload;
        }
        if !line_ending_matches(bytes, format) {
            upload.error = Some(line_ending_error(format));
            return upload;
        }
        let mut reader = csv_core::ReaderBuilder::new()
            .delimiter(format.delimiter.byte())
            .build();
        // Unquoting only shortens, so the cells fit in the upload's size.
        let mut out = vec![0u8; bytes.len() + 1];
        let mut written = 0;
        let mut ends: Vec<u32> = Vec::with_capacity(bytes.len() / 8);
        let mut input = bytes;
        let mut row_start_cell = 0;
        let mut header_cells: Option<usize> = None;
        let mut data_start = 0;
        loop {
            let (result, read, wrote) = reader.read_field(input, &mut out[written..]);
            input = &input[read..];
            written += wrote;
            match result {
                csv_core::ReadFieldResult::InputEmpty => continue,
                csv_core::ReadFieldResult::OutputFull => {
                    out.resize(out.len() * 2, 0);
                }
                csv_core::ReadFieldResult::Field { record_end } => {
                    ends.push(written as u32);
                    if !record_end {
                        continue;
                    }
                    let cells = ends.len() - row_start_cell;
                    match header_cells {
                        None => {
                            header_cells = Some(cells);
                            let mut start = 0;
                            for end in &ends {
                                let end = *end as usize;
                                upload
                                    .header
                                    .push(String::from_utf8_lossy(&out[start..end]).into_owned());
                                start = end;
                            }
                            ends.clear();
                            data_start = written;
                        }
                        Some(expected) if cells != expected => {
                            upload.error = Some(format!(
                                "ClientInputError : Row {} has {cells} columns where the header has {expected}",
                                upload.rows + 1
                            ));
                            return upload;
                        }
                        Some(_) => upload.rows += 1,
                    }
                    row_start_cell = ends.len();
                }
                csv_core::ReadFieldResult::End => break,
            }
        }
        if header_cells.is_none() {
            upload.error = Some("ClientInputError : The upload holds no header row".into());
            return upload;
        }
        out.truncate(written);
        out.drain(..data_start);
        for end in ends.iter_mut() {
            *end -= data_start as u32;
        }
        upload.text = String::from_utf8(out).unwrap_or_default();
        upload.ends = ends;
        upload
    }

    /// The bytes of every data cell together.
    pub fn cell_bytes(&self) -> usize {
        self.text.len()
    }

    pub fn columns(&self) -> usize {
        self.header.len()
    }

    /// The cells of data row `row`, as uploaded.
    pub fn row(&self, row: usize) -> impl Iterator<Item = &str> + '_ {
        let columns = self.columns();
        let first = row * columns;
        let mut start = if first == 0 {
            0
        } else {
            self.ends[first - 1] as usize
        };
        self.ends[first..first + columns].iter().map(move |end| {
            let end = *end as usize;
            let cell = &self.text[start..end];
            start = end;
            cell
        })
    }

    pub fn cell(&self, row: usize, column: usize) -> &str {
        let i = row * self.columns() + column;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::results::ColumnDelimiter;

    const COMMA_LF: CsvFormat = CsvFormat {
        delimiter: ColumnDelimiter::Comma,
        line_ending: LineEnding::Lf,
    };

    #[test]
    fn cells_are_unquoted_and_kept_in_order() {
        let u = Upload::parse(
            b"LastName,Description\nNg,\"a, \"\"b\"\"\nc\"\n\nLi,\n",
            COMMA_LF,
        );
        assert_eq!(u.error, None);
        assert_eq!(u.header, ["LastName", "Description"]);
        assert_eq!(u.rows, 2);
        assert_eq!(u.row(0).collect::<Vec<_>>(), ["Ng", "a, \"b\"\nc"]);
        assert_eq!(u.row(1).collect::<Vec<_>>(), ["Li", ""]);
        assert_eq!(u.cell(1, 0), "Li");
    }

    #[test]
    fn other_delimiters_line_endings_and_bad_rows() {
        let pipe = CsvFormat {
            delimiter: ColumnDelimiter::Pipe,
            line_ending: LineEnding::Crlf,
        };
        let u = Upload::parse(b"A|B\r\n1|2\r\n", pipe);
        assert_eq!(u.row(0).collect::<Vec<_>>(), ["1", "2"]);
        let wrong = Upload::parse(b"A,B\r\n1,2\r\n", COMMA_LF);
        assert!(wrong.error.unwrap().contains("LineEnding is invalid"));
        let short = Upload::parse(b"A,B\n1\n", COMMA_LF);
        assert!(short.error.unwrap().contains("Row 1 has 1 columns"));
        assert!(Upload::parse(b"", COMMA_LF).error.is_some());
    }
}
