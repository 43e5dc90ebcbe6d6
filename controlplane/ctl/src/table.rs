//! Plain-text tables with aligned columns, and the number formats weftctl prints in them.

use std::fmt::Write as _;

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// A table: a header row and data rows, columns two spaces apart, no trailing spaces.
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles and alignments.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            columns: columns.iter().map(|(t, a)| ((*t).to_owned(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    /// Whether the table has no data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, each line ending in a newline.
    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.columns[i].0.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let header: Vec<String> = self.columns.iter().map(|(t, _)| t.clone()).collect();
        let mut out = String::new();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                match self.columns[i].1 {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

/// Microseconds as `850us`, `12.34ms` or `1.250s`.
pub fn duration_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.3}s", us as f64 / 1e6)
    }
}

/// Milliseconds as an age: `850ms`, `12.3s`, `5m07s`, `3h02m`, `4d03h`.
pub fn age_ms(ms: u64) -> String {
    let s = ms / 1000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.1}s", ms as f64 / 1e3)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else {
        format!("{}d{:02}h", s / 86_400, s / 3600 % 24)
    }
}

/// Parts per million as a percentage: `0%`, `0.0010%`, `12.50%`.
pub fn ppm_percent(ppm: u32) -> String {
    if ppm == 0 {
        "0%".to_owned()
    } else if ppm < 100 {
        format!("{:.4}%", f64::from(ppm) / 1e4)
    } else {
        format!("{:.2}%", f64::from(ppm) / 1e4)
    }
}

/// Bytes with a binary unit: `512B`, `1.5KiB`, `12.0MiB`, `3.2GiB`, `1.0TiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// `Some(x)` as its text, `None` as `-`.
pub fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut t = Table::new(&[
            ("NAME", Align::Left),
            ("N", Align::Right),
            ("NOTE", Align::Left),
        ]);
        t.row(vec!["a".into(), "1".into(), "x".into()]);
        t.row(vec!["long-name".into(), "12345".into()]);
        t.row(vec!["ü".into(), "7".into(), "".into()]);
        assert_eq!(
            t.render(),
            "NAME           N  NOTE\n\
             a              1  x\n\
             long-name  12345\n\
             ü              7\n"
        );
        assert!(!t.is_empty());
        assert!(Table::new(&[("A", Align::Left)]).render() == "A\n");
    }

    #[test]
    fn number_formats() {
        assert_eq!(duration_us(850), "850us");
        assert_eq!(duration_us(12_345), "12.35ms");
        assert_eq!(duration_us(1_250_000), "1.250s");
        assert_eq!(age_ms(850), "850ms");
        assert_eq!(age_ms(12_340), "12.3s");
        assert_eq!(age_ms(307_000), "5m07s");
        assert_eq!(age_ms(3 * 3_600_000 + 120_000), "3h02m");
        assert_eq!(age_ms(4 * 86_400_000 + 3 * 3_600_000), "4d03h");
        assert_eq!(ppm_percent(0), "0%");
        assert_eq!(ppm_percent(10), "0.0010%");
        assert_eq!(ppm_percent(125_000), "12.50%");
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(bytes(12 << 20), "12.0MiB");
        assert_eq!(bytes(u64::MAX), "16777216.0TiB");
        assert_eq!(opt(Some(3)), "3");
        assert_eq!(opt::<u8>(None), "-");
    }
}
