//! Go's `text/tabwriter` (elastic tabstops) as the docker CLI configures it.
//!
//! Cells are tab-terminated; the text after a line's last tab is not part of
//! any column. A column's width is fixed per *block*: consecutive lines that
//! all have a cell in that column.

use unicode_width::UnicodeWidthStr;

/// `docker images`, `docker ps`…: `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
pub const TABLE: TabWriter = TabWriter {
    min_width: 10,
    padding: 3,
};

/// `docker version`: `tabwriter.NewWriter(out, 20, 1, 1, ' ', 0)`.
pub const VERSION: TabWriter = TabWriter {
    min_width: 20,
    padding: 1,
};

#[derive(Clone, Copy, Debug)]
pub struct TabWriter {
    pub min_width: usize,
    pub padding: usize,
}

impl TabWriter {
    /// Aligns all of `text` (as one `Write` followed by `Flush`).
    pub fn render(&self, text: &str) -> String {
        let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
        let mut out = String::with_capacity(text.len() * 2);
        let mut widths = Vec::new();
        self.format(&lines, &mut widths, 0, lines.len(), &mut out);
        out
    }

    fn format(
        &self,
        lines: &[Vec<&str>],
        widths: &mut Vec<usize>,
        mut line0: usize,
        line1: usize,
        out: &mut String,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            // This line starts a block of lines that all have `column`.
            write_lines(lines, widths, line0, this, out);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < lines[this].len() {
                width = width.max(cell_width(lines[this][column]) + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format(lines, widths, line0, this, out);
            widths.pop();
            line0 = this;
        }
        write_lines(lines, widths, line0, line1, out);
    }
}

fn cell_width(cell: &str) -> usize {
    UnicodeWidthStr::width(cell)
}

fn write_lines(
    lines: &[Vec<&str>],
    widths: &[usize],
    line0: usize,
    line1: usize,
    out: &mut String,
) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j) {
                let pad = w.saturating_sub(cell_width(cell));
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_table_layout() {
        let text = "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n\
                    busybox\t1.36\ta3ebfb9f84a7\tLess than a second ago\t1.98MB\n\
                    127.0.0.1:5055/busybox\tlatest\t75073cc93a5b\t33 seconds ago\t1.98MB\n";
        let want = "REPOSITORY               TAG       IMAGE ID       CREATED                  SIZE\n\
                    busybox                  1.36      a3ebfb9f84a7   Less than a second ago   1.98MB\n\
                    127.0.0.1:5055/busybox   latest    75073cc93a5b   33 seconds ago           1.98MB\n";
        assert_eq!(TABLE.render(text), want);
    }

    #[test]
    fn empty_table_keeps_min_width() {
        let text = "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n";
        assert_eq!(
            TABLE.render(text),
            "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
        );
    }

    #[test]
    fn lines_without_tabs_split_blocks() {
        let text = "Client:\n Version:\t28.2.2\n API version:\t1.41\n\nServer:\n Engine:\n  Version:\t20.10\n";
        let want = "Client:\n Version:           28.2.2\n API version:       1.41\n\nServer:\n Engine:\n  Version:          20.10\n";
        assert_eq!(VERSION.render(text), want);
    }

    #[test]
    fn ragged_rows() {
        // The second column only spans the lines that have it.
        let text = "a\tb\tc\nlonger-cell\td\nx\n";
        let want = "a             b         c\nlonger-cell   d\nx\n";
        assert_eq!(TABLE.render(text), want);
    }
}
