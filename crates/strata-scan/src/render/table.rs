//! Box-drawn tables as Trivy draws them (aquasecurity/table without colour):
//! borders, a line between rows, centred headers, multi-line cells, and
//! optionally auto-merge (a cell equal to the one above it in its column is
//! left blank, and the line between them in that column is not drawn).

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Center,
}

pub(crate) struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
    auto_merge: bool,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Greedy word wrap at `max` characters (a longer word stands alone).
pub(crate) fn wrap(text: &str, max: usize) -> String {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split(' ').filter(|w| !w.is_empty()) {
            if !line.is_empty() && width(&line) + 1 + width(word) > max {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push(line);
    }
    out.join("\n")
}

impl Table {
    pub(crate) fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            align: vec![Align::Left; headers.len()],
            rows: Vec::new(),
            auto_merge: false,
        }
    }

    pub(crate) fn align(mut self, align: &[Align]) -> Table {
        self.align = align.to_vec();
        self
    }

    pub(crate) fn auto_merge(mut self) -> Table {
        self.auto_merge = true;
        self
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let n = self.headers.len();
        // merged[r][c]: the cell repeats the one above and is blanked.
        let merged: Vec<Vec<bool>> = self
            .rows
            .iter()
            .enumerate()
            .map(|(r, row)| {
                (0..n)
                    .map(|c| self.auto_merge && r > 0 && !row[c].is_empty() && self.rows[r - 1][c] == row[c])
                    .collect()
            })
            .collect();
        // A cell blanked because the one above was blanked for the same text
        // must stay merged with the first of the run.
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (c, cell) in row.iter().enumerate() {
                for line in cell.split('\n') {
                    widths[c] = widths[c].max(width(line));
                }
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, l: char, m: char, r: char| {
            out.push(l);
            for (c, w) in widths.iter().enumerate() {
                out.push_str(&"─".repeat(w + 2));
                out.push(if c + 1 == n { r } else { m });
            }
            out.push('\n');
        };
        let cells = |out: &mut String, row: &[String], align: &[Align], blank: &[bool]| {
            let lines: Vec<Vec<&str>> = row
                .iter()
                .zip(blank)
                .map(|(c, b)| if *b { vec![""] } else { c.split('\n').collect() })
                .collect();
            // A merged cell keeps its height, as aquasecurity/table does.
            let height = row.iter().map(|c| c.split('\n').count()).max().unwrap_or(1);
            for i in 0..height {
                out.push('│');
                for c in 0..n {
                    let text = lines[c].get(i).copied().unwrap_or("");
                    let pad = widths[c] - width(text);
                    let (l, r) = match align[c] {
                        Align::Left => (0, pad),
                        Align::Center => (pad / 2, pad - pad / 2),
                    };
                    out.push(' ');
                    out.push_str(&" ".repeat(l));
                    out.push_str(text);
                    out.push_str(&" ".repeat(r));
                    out.push_str(" │");
                }
                out.push('\n');
            }
        };
        line(&mut out, '┌', '┬', '┐');
        cells(&mut out, &self.headers, &vec![Align::Center; n], &vec![false; n]);
        line(&mut out, '├', '┼', '┤');
        for (r, row) in self.rows.iter().enumerate() {
            if r > 0 {
                // The line above this row: drawn in a column unless merged.
                let drawn: Vec<bool> = merged[r].iter().map(|m| !m).collect();
                out.push(if drawn[0] { '├' } else { '│' });
                for c in 0..n {
                    out.push_str(&if drawn[c] { "─" } else { " " }.repeat(widths[c] + 2));
                    let right = if c + 1 == n { None } else { Some(drawn[c + 1]) };
                    out.push(match (drawn[c], right) {
                        (true, None) => '┤',
                        (false, None) => '│',
                        (true, Some(true)) => '┼',
                        (true, Some(false)) => '┤',
                        (false, Some(true)) => '├',
                        (false, Some(false)) => '│',
                    });
                }
                out.push('\n');
            }
            cells(&mut out, row, &self.align, &merged[r]);
        }
        line(&mut out, '└', '┴', '┘');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_junctions() {
        let mut t = Table::new(&["A", "B"]).auto_merge();
        t.row(vec!["x".into(), "1".into()]);
        t.row(vec!["x".into(), "2".into()]);
        let s = t.render();
        assert_eq!(
            s,
            "┌───┬───┐\n│ A │ B │\n├───┼───┤\n│ x │ 1 │\n│   ├───┤\n│   │ 2 │\n└───┴───┘\n"
        );
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("aa bb cc", 5), "aa bb\ncc");
        assert_eq!(wrap("a\nb", 5), "a\nb");
    }
}
