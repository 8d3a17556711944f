//! Text for people at a terminal: tables with aligned columns that fit a width (the widest
//! shortenable cells cut with `…`), `Label  value` field lists, and indented blocks. Every
//! text from the daemon is made printable first: a control character (an escape sequence, a
//! line break inside a cell, a bidirectional override) would be run by the terminal or hide
//! what is shown. Widths count characters (`R$`, `€` are one column each).

use crate::ids::is_unsafe_in_logs;

/// The width output is made to fit.
pub const WIDTH: usize = 100;

/// Between two columns.
const GAP: &str = "  ";
/// A shortened column keeps at least this many characters (its header's, if longer).
const MIN_SHORTENED: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Left-aligned, cut with `…` when the table is too wide (names, messages).
    Shorten,
    /// Left-aligned, never cut: a cut time or state would mislead.
    Exact,
    /// Right-aligned, never cut (amounts, counts).
    Number,
}

/// A column: its header and how its cells fit.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    header: &'static str,
    fit: Fit,
}

impl Column {
    /// Left-aligned text, cut with `…` when the table is too wide.
    pub const fn text(header: &'static str) -> Self {
        Self {
            header,
            fit: Fit::Shorten,
        }
    }

    /// Left-aligned, never cut (times, states).
    pub const fn exact(header: &'static str) -> Self {
        Self {
            header,
            fit: Fit::Exact,
        }
    }

    /// Right-aligned, never cut (amounts, counts).
    pub const fn number(header: &'static str) -> Self {
        Self {
            header,
            fit: Fit::Number,
        }
    }
}

/// Rows under a header line, columns aligned; a row may carry a note, a line of its own under
/// it (an alarm's text is too long for a column and must not be cut).
///
/// ```
/// use posbridge::cli::table::{Column, Table};
/// let mut table = Table::new(&[Column::text("PAYMENT"), Column::number("AMOUNT")]);
/// table.row(["pay-1", "R$ 12,50"]);
/// assert_eq!(table.render(100), "PAYMENT    AMOUNT\npay-1    R$ 12,50\n");
/// ```
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
    /// By row index.
    notes: Vec<Option<String>>,
}

impl Table {
    pub fn new(columns: &[Column]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// One row, a cell per column in order (missing cells are empty, extra ones ignored).
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut row: Vec<String> = cells
            .into_iter()
            .take(self.columns.len())
            .map(|cell| printable(cell.as_ref()))
            .collect();
        row.resize(self.columns.len(), String::new());
        self.rows.push(row);
        self.notes.push(None);
    }

    /// A note under the last row, indented to its second column and wrapped, never cut.
    pub fn note(&mut self, text: impl AsRef<str>) {
        if let Some(last) = self.notes.last_mut() {
            *last = Some(printable(text.as_ref()));
        }
    }

    /// The header line and the rows, each line ending in `\n`, at most `width` characters
    /// wide when the shortenable columns can give up enough.
    pub fn render(&self, width: usize) -> String {
        let widths = self.widths(width);
        let mut out = String::new();
        let headers: Vec<String> = self.columns.iter().map(|c| c.header.to_string()).collect();
        let indent = widths.first().map_or(0, |w| w + GAP.len());
        let notes = std::iter::once(&None).chain(&self.notes);
        for (cells, note) in std::iter::once(&headers).chain(&self.rows).zip(notes) {
            let mut line = String::new();
            for ((column, cell), &width) in self.columns.iter().zip(cells).zip(&widths) {
                if !line.is_empty() {
                    line.push_str(GAP);
                }
                let cell = shorten(cell, width);
                let pad = " ".repeat(width.saturating_sub(chars(&cell)));
                if column.fit == Fit::Number {
                    line.push_str(&pad);
                    line.push_str(&cell);
                } else {
                    line.push_str(&cell);
                    line.push_str(&pad);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
            for line in note
                .iter()
                .flat_map(|n| wrap(n, width.saturating_sub(indent)))
            {
                out.push_str(&" ".repeat(indent));
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }

    /// Each column as wide as its widest cell, then the widest shortenable column narrowed
    /// one character at a time until the line fits or none can give more.
    fn widths(&self, width: usize) -> Vec<usize> {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                self.rows
                    .iter()
                    .map(|row| row.get(i).map_or(0, |cell| chars(cell)))
                    .fold(chars(column.header), usize::max)
            })
            .collect();
        let floor = |column: &Column| chars(column.header).max(MIN_SHORTENED);
        let gaps = GAP.len() * self.columns.len().saturating_sub(1);
        while widths.iter().sum::<usize>() + gaps > width {
            let widest = self
                .columns
                .iter()
                .zip(&widths)
                .enumerate()
                .filter(|(_, (column, w))| column.fit == Fit::Shorten && **w > floor(column))
                .max_by_key(|(i, (_, w))| (**w, std::cmp::Reverse(*i)))
                .map(|(i, _)| i);
            match widest.and_then(|i| widths.get_mut(i)) {
                Some(w) => *w -= 1,
                None => break,
            }
        }
        widths
    }
}

/// `Label    value` lines, the values aligned; a long value wraps at spaces under itself.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    fields: Vec<(&'static str, String)>,
}

impl Fields {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn field(&mut self, label: &'static str, value: impl AsRef<str>) -> &mut Self {
        self.fields.push((label, printable(value.as_ref())));
        self
    }

    /// A field only when there is a value.
    pub fn field_if(&mut self, label: &'static str, value: Option<impl AsRef<str>>) -> &mut Self {
        if let Some(value) = value {
            self.field(label, value);
        }
        self
    }

    pub fn render(&self, width: usize) -> String {
        let label_width = self.fields.iter().map(|(l, _)| chars(l)).max().unwrap_or(0);
        let indent = label_width + GAP.len();
        let mut out = String::new();
        for (label, value) in &self.fields {
            let mut lines = wrap(value, width.saturating_sub(indent)).into_iter();
            let first = lines.next().unwrap_or_default();
            out.push_str(format!("{label:<label_width$}{GAP}{first}").trim_end());
            out.push('\n');
            for line in lines {
                out.push_str(&" ".repeat(indent));
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}

/// A multi-line text (a receipt) indented by `indent` spaces, its line breaks kept and any
/// other control character made printable.
pub fn block(text: &str, indent: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = printable(line);
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            out.push_str(&" ".repeat(indent));
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

/// `text` with whitespace controls (line breaks, tabs) as spaces and every other character a
/// terminal would act on or that hides text as `�`.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' | '\u{2028}' | '\u{2029}' => ' ',
            c if is_unsafe_in_logs(c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// At most `width` characters: a longer text keeps its start and ends in `…`.
pub fn shorten(text: &str, width: usize) -> String {
    if chars(text) <= width {
        return text.to_string();
    }
    let mut short: String = text.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        short.push('…');
    }
    short
}

/// Lines of at most `width` characters, broken at spaces; a word longer than a line is cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(MIN_SHORTENED);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !line.is_empty() && chars(&line) + 1 + chars(word) > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while chars(&line) > width {
            let rest: String = line.chars().skip(width).collect();
            lines.push(line.chars().take(width).collect());
            line = rest;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn columns_align_and_amounts_align_right_in_characters_not_bytes() {
        let mut table = Table::new(&[
            Column::exact("TIME"),
            Column::text("PAYMENT"),
            Column::number("AMOUNT"),
        ]);
        table.row(["14:03", "pay-1", "R$ 12,50"]);
        table.row(["09:15", "pay-longer-2", "1.234,56 €"]);
        table.row(["23:59", "p3", "₲ 15.000"]);
        assert_eq!(
            lines(&table.render(WIDTH)),
            [
                "TIME   PAYMENT           AMOUNT",
                "14:03  pay-1           R$ 12,50",
                "09:15  pay-longer-2  1.234,56 €",
                "23:59  p3              ₲ 15.000",
            ]
        );
    }

    #[test]
    fn a_wide_table_cuts_the_widest_text_column_first_never_exact_or_numbers() {
        let mut table = Table::new(&[
            Column::exact("TIME"),
            Column::text("PAYMENT"),
            Column::number("AMOUNT"),
            Column::text("NOTE"),
        ]);
        let note = "Check the terminal's last receipt for R$ 42,00 at 14:03; if it shows approved, resolve as approved";
        table.row(["2026-11-30 14:03", "pay-1", "R$ 42,00", note]);
        let rendered = table.render(60);
        for line in rendered.lines() {
            assert!(line.chars().count() <= 60, "{line:?}");
        }
        let row = lines(&rendered)[1];
        assert!(
            row.starts_with("2026-11-30 14:03  pay-1    R$ 42,00  Check the"),
            "{row}"
        );
        assert!(row.ends_with('…'), "{row}");
        assert_eq!(row.chars().count(), 60);
    }

    #[test]
    fn columns_are_cut_no_further_than_their_floor_then_the_line_may_be_longer() {
        let mut table = Table::new(&[Column::text("A"), Column::exact("B")]);
        table.row(["abcdefghijkl", "0123456789"]);
        // `A` gives up to 6 characters; `B` never: 6 + 2 + 10.
        assert_eq!(
            lines(&table.render(10)),
            ["A       B", "abcde…  0123456789"]
        );
    }

    #[test]
    fn control_characters_from_the_daemon_never_reach_the_terminal() {
        let mut table = Table::new(&[Column::text("ERROR"), Column::text("NEXT")]);
        table.row(["line\nbreak\x1b[31mred", "\u{202E}evil"]);
        let rendered = table.render(WIDTH);
        assert!(!rendered.contains('\x1b') && !rendered.contains('\u{202E}'));
        assert_eq!(lines(&rendered)[1], "line break�[31mred  �evil");
    }

    #[test]
    fn a_note_goes_under_its_row_wrapped_not_cut() {
        let mut table = Table::new(&[Column::exact("TIME"), Column::exact("PAYMENT")]);
        table.row(["09:15", "pay-1"]);
        table.note("Check the terminal's last receipt for R$ 42,00 at 09:15");
        table.row(["09:16", "pay-2"]);
        assert_eq!(
            lines(&table.render(40)),
            [
                "TIME   PAYMENT",
                "09:15  pay-1",
                "       Check the terminal's last receipt",
                "       for R$ 42,00 at 09:15",
                "09:16  pay-2",
            ]
        );
    }

    #[test]
    fn rows_with_missing_or_extra_cells_do_not_break_the_table() {
        let mut table = Table::new(&[Column::text("A"), Column::text("B")]);
        table.row(["1"]);
        table.row(["1", "2", "3"]);
        assert_eq!(lines(&table.render(WIDTH)), ["A  B", "1", "1  2"]);
    }

    #[test]
    fn shorten_counts_characters() {
        assert_eq!(shorten("R$ 1.234,56", 20), "R$ 1.234,56");
        assert_eq!(shorten("€€€€€€", 4), "€€€…");
        assert_eq!(shorten("abc", 0), "");
    }

    #[test]
    fn fields_align_and_wrap_long_values_under_themselves() {
        let mut fields = Fields::new();
        fields
            .field("Payment", "pay-1")
            .field("Amount", "R$ 12,50")
            .field_if("Alarm", Some("one two three four five six"))
            .field_if("NSU", None::<&str>);
        assert_eq!(
            lines(&fields.render(20)),
            [
                "Payment  pay-1",
                "Amount   R$ 12,50",
                "Alarm    one two",
                "         three four",
                "         five six",
            ]
        );
    }

    #[test]
    fn blocks_keep_their_lines_and_lose_controls() {
        assert_eq!(
            block("VISA\r\n\x1b]0;x\x07  1111\n\nTOTAL", 2),
            "  VISA\n  �]0;x�  1111\n\n  TOTAL\n"
        );
    }
}
