//! A small, strict reader for comma-separated values as RFC 4180 defines
//! them.
//!
//! Fields are separated by commas and records by CRLF or a bare LF. A field
//! either has no double quotes at all or is wholly enclosed in them; inside
//! a quoted field, `""` stands for one quote and commas and line breaks are
//! data. Anything else is refused with the line it was found on: a quote in
//! an unquoted field, text after a closing quote, a quoted field that never
//! closes, a carriage return not followed by a line feed. A final line
//! break before the end of input does not start a new record.
//!
//! The text is untrusted. Cell length and the number of cells in a record
//! are bounded by the caller's limits, so one record cannot grow without
//! end. The reader does not check that records have equal length: the
//! caller compares each with the header.

use thiserror::Error;

/// What was wrong with the CSV syntax.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CsvProblem {
    /// A quoted field runs to the end of the input.
    #[error("quoted field is never closed")]
    UnterminatedQuote,
    /// A double quote appears inside a field that did not start with one.
    #[error("double quote inside an unquoted field")]
    QuoteInUnquotedField,
    /// A closing quote is followed by something other than a comma or a
    /// line break.
    #[error("text after a closing quote")]
    TextAfterClosingQuote,
    /// A carriage return outside quotes is not followed by a line feed.
    #[error("carriage return without line feed")]
    BareCarriageReturn,
    /// A cell is longer than allowed.
    #[error("cell longer than {max} bytes")]
    CellTooLong {
        /// The bound, in bytes.
        max: usize,
    },
    /// A record has more cells than allowed.
    #[error("more than {max} cells in a record")]
    TooManyCells {
        /// The bound.
        max: usize,
    },
}

/// A CSV syntax error and the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CsvError {
    pub(crate) line: usize,
    pub(crate) problem: CsvProblem,
}

/// One record and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) line: usize,
    pub(crate) cells: Vec<String>,
}

/// Reads records one at a time from `text`.
pub(crate) struct Reader<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    max_cell_bytes: usize,
    max_cells: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `text` with the given bounds on cell length (bytes)
    /// and cells per record.
    pub(crate) fn new(text: &'a str, max_cell_bytes: usize, max_cells: usize) -> Self {
        Self {
            chars: text.chars().peekable(),
            line: 1,
            max_cell_bytes,
            max_cells,
        }
    }

    /// The next record, `None` at the end of the input.
    pub(crate) fn next_record(&mut self) -> Option<Result<Record, CsvError>> {
        self.chars.peek()?;
        Some(self.record())
    }

    fn record(&mut self) -> Result<Record, CsvError> {
        let start = self.line;
        let mut cells = Vec::new();
        loop {
            if cells.len() == self.max_cells {
                return Err(self.error(CsvProblem::TooManyCells {
                    max: self.max_cells,
                }));
            }
            let (cell, end) = self.cell()?;
            cells.push(cell);
            if end == End::Record {
                return Ok(Record { line: start, cells });
            }
        }
    }

    /// Reads one cell and what ended it.
    fn cell(&mut self) -> Result<(String, End), CsvError> {
        let mut cell = String::new();
        if self.chars.peek() == Some(&'"') {
            self.chars.next();
            self.quoted(&mut cell)?;
            return Ok((cell, self.after_quote()?));
        }
        loop {
            match self.chars.next() {
                None => return Ok((cell, End::Record)),
                Some(',') => return Ok((cell, End::Cell)),
                Some('\n') => {
                    self.line += 1;
                    return Ok((cell, End::Record));
                }
                Some('\r') => return self.crlf().map(|()| (cell, End::Record)),
                Some('"') => return Err(self.error(CsvProblem::QuoteInUnquotedField)),
                Some(c) => self.push(&mut cell, c)?,
            }
        }
    }

    /// Reads the inside of a quoted cell, up to and including its closing
    /// quote.
    fn quoted(&mut self, cell: &mut String) -> Result<(), CsvError> {
        let opened = self.line;
        loop {
            match self.chars.next() {
                None => {
                    return Err(CsvError {
                        line: opened,
                        problem: CsvProblem::UnterminatedQuote,
                    });
                }
                Some('"') if self.chars.peek() == Some(&'"') => {
                    self.chars.next();
                    self.push(cell, '"')?;
                }
                Some('"') => return Ok(()),
                Some(c) => {
                    if c == '\n' {
                        self.line += 1;
                    }
                    self.push(cell, c)?;
                }
            }
        }
    }

    /// What follows a closing quote: a comma, a line break or the end.
    fn after_quote(&mut self) -> Result<End, CsvError> {
        match self.chars.next() {
            None => Ok(End::Record),
            Some(',') => Ok(End::Cell),
            Some('\n') => {
                self.line += 1;
                Ok(End::Record)
            }
            Some('\r') => self.crlf().map(|()| End::Record),
            Some(_) => Err(self.error(CsvProblem::TextAfterClosingQuote)),
        }
    }

    /// Consumes the line feed after a carriage return.
    fn crlf(&mut self) -> Result<(), CsvError> {
        if self.chars.next() == Some('\n') {
            self.line += 1;
            Ok(())
        } else {
            Err(self.error(CsvProblem::BareCarriageReturn))
        }
    }

    fn push(&self, cell: &mut String, c: char) -> Result<(), CsvError> {
        if cell.len() + c.len_utf8() > self.max_cell_bytes {
            return Err(self.error(CsvProblem::CellTooLong {
                max: self.max_cell_bytes,
            }));
        }
        cell.push(c);
        Ok(())
    }

    fn error(&self, problem: CsvProblem) -> CsvError {
        CsvError {
            line: self.line,
            problem,
        }
    }
}

/// What ended a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Cell,
    Record,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Record>, CsvError> {
        let mut reader = Reader::new(text, 64, 8);
        let mut out = Vec::new();
        while let Some(r) = reader.next_record() {
            out.push(r?);
        }
        Ok(out)
    }

    fn cells(text: &str) -> Vec<Vec<String>> {
        read(text).unwrap().into_iter().map(|r| r.cells).collect()
    }

    fn problem(text: &str) -> (usize, CsvProblem) {
        let e = read(text).unwrap_err();
        (e.line, e.problem)
    }

    #[test]
    fn reads_plain_and_quoted_cells() {
        let text = "a,b,c\r\n1,\"two, too\",\"say \"\"hi\"\"\"\r\n";
        assert_eq!(
            cells(text),
            [vec!["a", "b", "c"], vec!["1", "two, too", "say \"hi\""]]
        );
    }

    #[test]
    fn accepts_bare_line_feeds_and_no_final_break() {
        assert_eq!(cells("a,b\nc,d"), [["a", "b"], ["c", "d"]]);
        assert_eq!(cells("a,\n,"), [["a", ""], ["", ""]]);
    }

    #[test]
    fn quoted_line_breaks_are_data_and_lines_are_counted() {
        let records = read("h\n\"x\ny\"\nz\n").unwrap();
        assert_eq!(records[1].cells, ["x\ny"]);
        assert_eq!(records[1].line, 2);
        assert_eq!(records[2].line, 4);
    }

    #[test]
    fn refuses_unterminated_quote_at_its_opening_line() {
        assert_eq!(
            problem("a\nb\n\"open,\nmore\n"),
            (3, CsvProblem::UnterminatedQuote)
        );
    }

    #[test]
    fn refuses_quote_inside_unquoted_cell() {
        assert_eq!(
            problem("a,b\nx\"y,z\n"),
            (2, CsvProblem::QuoteInUnquotedField)
        );
    }

    #[test]
    fn refuses_text_after_closing_quote() {
        assert_eq!(
            problem("\"a\"b,c\n"),
            (1, CsvProblem::TextAfterClosingQuote)
        );
    }

    #[test]
    fn refuses_bare_carriage_return() {
        assert_eq!(problem("a\rb\n"), (1, CsvProblem::BareCarriageReturn));
    }

    #[test]
    fn bounds_cell_length_and_count() {
        let long = "x".repeat(65);
        assert_eq!(problem(&long), (1, CsvProblem::CellTooLong { max: 64 }));
        assert_eq!(
            problem("1,2,3,4,5,6,7,8,9\n"),
            (1, CsvProblem::TooManyCells { max: 8 })
        );
    }
}
