//! Loading a CSV into a numeric, classification-ready [`Dataset`].
//!
//! Guarantees: every problem with the file is a typed [`LoadError`] naming the line (1-based,
//! the header is line 1) and the column; nothing panics on bad input. Numeric columns keep
//! missing cells as `NaN` plus a `<col>__missing` indicator; categorical columns (few distinct
//! values) are one-hot encoded; free-text columns (many distinct, mostly non-numeric values,
//! e.g. passenger names) are not model features but their frequent tokens are kept as an
//! optional engineered block ([`Dataset::text_tokens`]) that a feature-engineering strategy may
//! switch on. Rows whose target is missing are dropped and counted.
//!
//! Not guaranteed: the one-hot and token vocabularies are built from all rows (they are
//! label-free); anything fitted on labels happens later, inside cross-validation folds.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Fewest rows a data set may have after dropping rows with a missing target.
pub const MIN_ROWS: usize = 30;
/// Fewest rows each class needs (stratified folds and a held-out test need a few per class).
pub const MIN_PER_CLASS: usize = 5;
/// A string column with at most this many distinct values is categorical (one-hot encoded).
pub const MAX_CATEGORIES: usize = 12;

/// Why a data file could not be turned into a data set.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A line is not valid CSV or has the wrong number of fields.
    #[error("line {line}: malformed CSV: {message}")]
    Csv {
        /// 1-based line number (header is line 1).
        line: u64,
        /// What was wrong.
        message: String,
    },
    /// The file has no header or no data rows.
    #[error("{path}: no header or no data rows")]
    Empty {
        /// File path.
        path: String,
    },
    /// A column named on the command line is not in the header.
    #[error("column `{column}` not found; the header has: {available}")]
    MissingColumn {
        /// The requested column.
        column: String,
        /// Comma-separated header names.
        available: String,
    },
    /// A cell in a numeric column does not parse as a number.
    #[error("line {line}, column `{column}`: `{value}` is not a number (the rest of the column is numeric)")]
    NonNumeric {
        /// 1-based line number.
        line: u64,
        /// Column name.
        column: String,
        /// The offending cell.
        value: String,
    },
    /// Every row has the same target value: nothing to learn.
    #[error("target column `{column}` is constant (every row is `{value}`); nothing to predict")]
    ConstantTarget {
        /// Target column.
        column: String,
        /// The single value.
        value: String,
    },
    /// Too few usable rows.
    #[error("only {rows} usable rows (need at least {min}); {dropped} rows had no target")]
    TooFewRows {
        /// Usable rows.
        rows: usize,
        /// Minimum.
        min: usize,
        /// Rows dropped for a missing target.
        dropped: usize,
    },
    /// A class is too rare for stratified folds.
    #[error("target column `{column}`: class `{class}` has {count} rows (need at least {min} per class)")]
    TooFewPerClass {
        /// Target column.
        column: String,
        /// Class label.
        class: String,
        /// Its row count.
        count: usize,
        /// Minimum.
        min: usize,
    },
    /// No usable feature column is left.
    #[error("no usable feature columns (all were the target, the context or free text)")]
    NoFeatures,
}

/// Whether a cell is a missing value.
pub fn is_missing(cell: &str) -> bool {
    matches!(cell.trim(), "" | "NA" | "NaN" | "nan" | "null" | "?")
}

/// A raw CSV: header plus rows of string cells (all rows the header's width).
#[derive(Debug, Clone)]
pub struct Table {
    /// Column names.
    pub headers: Vec<String>,
    /// Cells, row-major.
    pub rows: Vec<Vec<String>>,
    /// SHA-256 of the file bytes, hex.
    pub file_hash: String,
}

impl Table {
    /// Reads a CSV file with a header line.
    pub fn read(path: &Path) -> Result<Table, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Table::parse(&bytes, &path.display().to_string())
    }

    /// Parses CSV bytes (`name` is used in errors).
    pub fn parse(bytes: &[u8], name: &str) -> Result<Table, LoadError> {
        let file_hash = hex::encode(Sha256::digest(bytes));
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(bytes);
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| LoadError::Csv {
                line: 1,
                message: e.to_string(),
            })?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
            return Err(LoadError::Empty {
                path: name.to_string(),
            });
        }
        let mut rows = Vec::new();
        for (i, rec) in rdr.records().enumerate() {
            let line = i as u64 + 2;
            let rec = rec.map_err(|e| LoadError::Csv {
                line: e.position().map(|p| p.line()).unwrap_or(line),
                message: e.to_string(),
            })?;
            if rec.len() != headers.len() {
                return Err(LoadError::Csv {
                    line,
                    message: format!("{} fields, the header has {}", rec.len(), headers.len()),
                });
            }
            rows.push(rec.iter().map(|c| c.to_string()).collect());
        }
        if rows.is_empty() {
            return Err(LoadError::Empty {
                path: name.to_string(),
            });
        }
        Ok(Table {
            headers,
            rows,
            file_hash,
        })
    }

    /// Index of a column, or a typed error listing the header.
    pub fn column(&self, name: &str) -> Result<usize, LoadError> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| LoadError::MissingColumn {
                column: name.to_string(),
                available: self.headers.join(", "),
            })
    }

    /// Parses column `c` as numbers (missing → NaN), with a typed error on the first bad cell.
    pub fn numeric_column(&self, c: usize) -> Result<Vec<f64>, LoadError> {
        let mut out = Vec::with_capacity(self.rows.len());
        for (i, row) in self.rows.iter().enumerate() {
            let cell = row[c].trim();
            if is_missing(cell) {
                out.push(f64::NAN);
                continue;
            }
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => out.push(v),
                _ => {
                    return Err(LoadError::NonNumeric {
                        line: i as u64 + 2,
                        column: self.headers[c].clone(),
                        value: cell.to_string(),
                    })
                }
            }
        }
        Ok(out)
    }
}

/// Row-major dense matrix of `f64` (NaN = missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    /// Values, row-major.
    pub data: Vec<f64>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl Mat {
    /// An empty matrix with `cols` columns.
    pub fn with_cols(cols: usize) -> Mat {
        Mat {
            data: Vec::new(),
            rows: 0,
            cols,
        }
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
    /// Value at (i, j).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }
    /// Appends a row (must have `cols` values).
    pub fn push_row(&mut self, r: &[f64]) {
        debug_assert_eq!(r.len(), self.cols);
        self.data.extend_from_slice(r);
        self.rows += 1;
    }
    /// The rows at `idx`, in that order.
    pub fn select_rows(&self, idx: &[usize]) -> Mat {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Mat {
            data,
            rows: idx.len(),
            cols: self.cols,
        }
    }
    /// Column `j` as a vector.
    pub fn col(&self, j: usize) -> Vec<f64> {
        (0..self.rows).map(|i| self.get(i, j)).collect()
    }
    /// Horizontal concatenation (same row count).
    pub fn hcat(&self, other: &Mat) -> Mat {
        debug_assert_eq!(self.rows, other.rows);
        let cols = self.cols + other.cols;
        let mut data = Vec::with_capacity(self.rows * cols);
        for i in 0..self.rows {
            data.extend_from_slice(self.row(i));
            data.extend_from_slice(other.row(i));
        }
        Mat {
            data,
            rows: self.rows,
            cols,
        }
    }
    /// Keeps the columns `cols`, in that order.
    pub fn select_cols(&self, cols: &[usize]) -> Mat {
        let mut data = Vec::with_capacity(self.rows * cols.len());
        for i in 0..self.rows {
            for &j in cols {
                data.push(self.get(i, j));
            }
        }
        Mat {
            data,
            rows: self.rows,
            cols: cols.len(),
        }
    }
}

/// How a column was used.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum ColumnUse {
    /// Numeric feature.
    Numeric,
    /// One-hot encoded categorical with these levels.
    Categorical(Vec<String>),
    /// Free text: excluded from the base features; tokens available to feature engineering.
    FreeText,
    /// The target.
    Target,
    /// The context column (also one-hot encoded as features).
    Context,
}

/// A classification data set: numeric features, class labels, optional context.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Base features (NaN = missing).
    pub x: Mat,
    /// Names of the base feature columns.
    pub feature_names: Vec<String>,
    /// Which base features are "raw numeric" (eligible for interactions / residual bins).
    pub numeric_features: Vec<usize>,
    /// Optional engineered block: indicators of frequent tokens of free-text columns.
    pub text_tokens: Mat,
    /// Names of the token indicator columns.
    pub token_names: Vec<String>,
    /// Class index per row.
    pub y: Vec<usize>,
    /// Class labels.
    pub classes: Vec<String>,
    /// Context index per row, if a context column was given.
    pub context: Option<Vec<usize>>,
    /// Context labels.
    pub context_names: Vec<String>,
    /// Content hash (file bytes + load options), hex.
    pub hash: String,
    /// Short name for reports (file name).
    pub name: String,
    /// Rows dropped because the target was missing.
    pub dropped_rows: usize,
    /// How each source column was used.
    pub columns: Vec<(String, ColumnUse)>,
}

impl Dataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }
    /// A copy restricted to the rows `idx` (vocabularies unchanged).
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select_rows(idx),
            text_tokens: self.text_tokens.select_rows(idx),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            context: self
                .context
                .as_ref()
                .map(|c| idx.iter().map(|&i| c[i]).collect()),
            feature_names: self.feature_names.clone(),
            numeric_features: self.numeric_features.clone(),
            token_names: self.token_names.clone(),
            classes: self.classes.clone(),
            context_names: self.context_names.clone(),
            hash: self.hash.clone(),
            name: self.name.clone(),
            dropped_rows: self.dropped_rows,
            columns: self.columns.clone(),
        }
    }
}

/// Builds class indices from a target column (sorted labels; numeric labels sort numerically).
pub fn encode_target(
    table: &Table,
    target_col: usize,
) -> Result<(Vec<Option<usize>>, Vec<String>), LoadError> {
    let name = &table.headers[target_col];
    let labels: BTreeSet<String> = table
        .rows
        .iter()
        .map(|r| r[target_col].trim().to_string())
        .filter(|c| !is_missing(c))
        .collect();
    let mut classes: Vec<String> = labels.into_iter().collect();
    if classes.iter().all(|c| c.parse::<f64>().is_ok()) {
        classes.sort_by(|a, b| {
            let (x, y) = (
                a.parse::<f64>().unwrap_or(0.0),
                b.parse::<f64>().unwrap_or(0.0),
            );
            x.total_cmp(&y)
        });
    }
    match classes.len() {
        0 => {
            return Err(LoadError::TooFewRows {
                rows: 0,
                min: MIN_ROWS,
                dropped: table.rows.len(),
            })
        }
        1 => {
            return Err(LoadError::ConstantTarget {
                column: name.clone(),
                value: classes[0].clone(),
            })
        }
        _ => {}
    }
    let index: BTreeMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let y = table
        .rows
        .iter()
        .map(|r| index.get(r[target_col].trim()).copied())
        .collect();
    Ok((y, classes))
}

/// Checks row and per-class minimums.
pub fn check_counts(
    y: &[usize],
    classes: &[String],
    target: &str,
    dropped: usize,
) -> Result<(), LoadError> {
    if y.len() < MIN_ROWS {
        return Err(LoadError::TooFewRows {
            rows: y.len(),
            min: MIN_ROWS,
            dropped,
        });
    }
    for (k, class) in classes.iter().enumerate() {
        let count = y.iter().filter(|&&c| c == k).count();
        if count < MIN_PER_CLASS {
            return Err(LoadError::TooFewPerClass {
                column: target.to_string(),
                class: class.clone(),
                count,
                min: MIN_PER_CLASS,
            });
        }
    }
    Ok(())
}

/// Splits free text into lowercase word tokens (letters only, length ≥ 2).
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphabetic())
        .filter(|t| t.len() >= 2)
        .map(|t| t.to_lowercase())
        .collect()
}

/// Loads a tabular classification data set from a CSV file.
pub fn load_tabular(
    path: &Path,
    target: &str,
    context: Option<&str>,
) -> Result<Dataset, LoadError> {
    let table = Table::read(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string());
    tabular_from_table(&table, &name, target, context)
}

/// Builds a tabular data set from a parsed table.
pub fn tabular_from_table(
    table: &Table,
    name: &str,
    target: &str,
    context: Option<&str>,
) -> Result<Dataset, LoadError> {
    let t = table.column(target)?;
    let ctx_col = match context {
        Some(c) => Some(table.column(c)?),
        None => None,
    };
    if ctx_col == Some(t) {
        return Err(LoadError::MissingColumn {
            column: format!(
                "{} (context must differ from target)",
                context.unwrap_or("")
            ),
            available: table.headers.join(", "),
        });
    }
    let (y_opt, classes) = encode_target(table, t)?;
    let keep: Vec<usize> = (0..table.rows.len())
        .filter(|&i| y_opt[i].is_some())
        .collect();
    let dropped = table.rows.len() - keep.len();
    let y: Vec<usize> = keep.iter().filter_map(|&i| y_opt[i]).collect();
    check_counts(&y, &classes, target, dropped)?;

    let mut blocks: Vec<(String, Vec<f64>)> = Vec::new();
    let mut numeric_features = Vec::new();
    let mut columns = Vec::new();
    let mut text_cols = Vec::new();
    for (c, header) in table.headers.iter().enumerate() {
        if c == t {
            columns.push((header.clone(), ColumnUse::Target));
            continue;
        }
        let cells: Vec<&str> = keep.iter().map(|&i| table.rows[i][c].trim()).collect();
        let present: Vec<&str> = cells.iter().copied().filter(|c| !is_missing(c)).collect();
        let numeric = present.iter().filter(|v| v.parse::<f64>().is_ok()).count();
        let distinct: BTreeSet<&str> = present.iter().copied().collect();
        let is_ctx = ctx_col == Some(c);
        // Mostly numeric (≥ 90 %) and not the context: a numeric column; any non-number is an error.
        if !is_ctx && !present.is_empty() && numeric * 10 >= present.len() * 9 {
            let vals = table.numeric_column(c)?;
            let vals: Vec<f64> = keep.iter().map(|&i| vals[i]).collect();
            let missing = vals.iter().any(|v| v.is_nan());
            numeric_features.push(blocks.len());
            blocks.push((header.clone(), vals.clone()));
            if missing {
                blocks.push((
                    format!("{header}__missing"),
                    vals.iter()
                        .map(|v| f64::from(u8::from(v.is_nan())))
                        .collect(),
                ));
            }
            columns.push((header.clone(), ColumnUse::Numeric));
        } else if is_ctx || distinct.len() <= MAX_CATEGORIES {
            let levels: Vec<String> = distinct.iter().map(|s| s.to_string()).collect();
            for level in &levels {
                blocks.push((
                    format!("{header}={level}"),
                    cells
                        .iter()
                        .map(|v| f64::from(u8::from(v == level)))
                        .collect(),
                ));
            }
            if cells.iter().any(|v| is_missing(v)) {
                blocks.push((
                    format!("{header}__missing"),
                    cells
                        .iter()
                        .map(|v| f64::from(u8::from(is_missing(v))))
                        .collect(),
                ));
            }
            columns.push((
                header.clone(),
                if is_ctx {
                    ColumnUse::Context
                } else {
                    ColumnUse::Categorical(levels)
                },
            ));
        } else {
            text_cols.push(c);
            columns.push((header.clone(), ColumnUse::FreeText));
        }
    }
    if blocks.is_empty() {
        return Err(LoadError::NoFeatures);
    }
    let n = keep.len();
    let mut x = Mat::with_cols(blocks.len());
    let mut row = vec![0.0; blocks.len()];
    for i in 0..n {
        for (j, (_, v)) in blocks.iter().enumerate() {
            row[j] = v[i];
        }
        x.push_row(&row);
    }
    // Frequent tokens of free-text columns (present in ≥ 2 % of rows, at most 20 per column).
    let mut token_names = Vec::new();
    let mut token_cols: Vec<Vec<f64>> = Vec::new();
    for &c in &text_cols {
        let row_tokens: Vec<BTreeSet<String>> = keep
            .iter()
            .map(|&i| tokens(&table.rows[i][c]).into_iter().collect())
            .collect();
        let mut freq: BTreeMap<&str, usize> = BTreeMap::new();
        for toks in &row_tokens {
            for tok in toks {
                *freq.entry(tok.as_str()).or_default() += 1;
            }
        }
        let mut common: Vec<(&str, usize)> =
            freq.into_iter().filter(|(_, f)| f * 50 >= n).collect();
        common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        common.truncate(20);
        for (tok, _) in common {
            token_names.push(format!("{}~{}", table.headers[c], tok));
            token_cols.push(
                row_tokens
                    .iter()
                    .map(|t| f64::from(u8::from(t.contains(tok))))
                    .collect(),
            );
        }
    }
    let mut text_tokens = Mat::with_cols(token_cols.len());
    let mut trow = vec![0.0; token_cols.len()];
    for i in 0..n {
        for (j, col) in token_cols.iter().enumerate() {
            trow[j] = col[i];
        }
        text_tokens.push_row(&trow);
    }
    let (context_idx, context_names) = match ctx_col {
        Some(c) => {
            let levels: BTreeSet<&str> = keep.iter().map(|&i| table.rows[i][c].trim()).collect();
            let names: Vec<String> = levels.iter().map(|s| s.to_string()).collect();
            let idx: Vec<usize> = keep
                .iter()
                .map(|&i| {
                    let v = table.rows[i][c].trim();
                    names.iter().position(|n| n == v).unwrap_or(0)
                })
                .collect();
            (Some(idx), names)
        }
        None => (None, Vec::new()),
    };
    let mut h = Sha256::new();
    h.update(table.file_hash.as_bytes());
    h.update(format!("|tabular|{target}|{}", context.unwrap_or("")).as_bytes());
    Ok(Dataset {
        feature_names: blocks.into_iter().map(|(n, _)| n).collect(),
        x,
        numeric_features,
        text_tokens,
        token_names,
        y,
        classes,
        context: context_idx,
        context_names,
        hash: hex::encode(h.finalize()),
        name: name.to_string(),
        dropped_rows: dropped,
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, target: &str, ctx: Option<&str>) -> Result<Dataset, LoadError> {
        let t = Table::parse(text.as_bytes(), "mem.csv")?;
        tabular_from_table(&t, "mem.csv", target, ctx)
    }

    fn rows(n: usize, f: impl Fn(usize) -> String) -> String {
        (0..n).map(f).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn every_bad_file_gives_an_error_naming_the_line_or_column() {
        let good = |i: usize| {
            format!(
                "{},{},{}",
                i,
                if i.is_multiple_of(3) { "a" } else { "b" },
                i % 2
            )
        };
        let cases: Vec<(String, &str, &str)> = vec![
            (
                format!("x,c,y\n{}", rows(40, good)),
                "label",
                "column `label` not found",
            ),
            (
                format!("x,c,y\n{}\n7x,a,1", rows(40, good)),
                "y",
                "line 42, column `x`: `7x` is not a number",
            ),
            (
                format!("x,c,y\n{}", rows(40, |i| format!("{i},a,1"))),
                "y",
                "is constant",
            ),
            (
                format!("x,c,y\n{}", rows(10, good)),
                "y",
                "only 10 usable rows",
            ),
            (
                format!("x,c,y\n{}\n1,a,2", rows(40, good)),
                "y",
                "class `2` has 1 rows",
            ),
            (
                format!("x,c,y\n{}\n1,a", rows(40, good)),
                "y",
                "line 42: malformed CSV",
            ),
            ("x,c,y\n".to_string(), "y", "no header or no data rows"),
        ];
        for (text, target, want) in cases {
            let err = load(&text, target, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(want), "want `{want}`, got `{err}`");
        }
    }

    #[test]
    fn missing_context_column_is_named() {
        let text = format!("x,y\n{}", rows(40, |i| format!("{i},{}", i % 2)));
        let err = load(&text, "y", Some("grp"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("column `grp` not found; the header has: x, y"),
            "{err}"
        );
    }

    #[test]
    fn categoricals_are_one_hot_and_missing_numbers_get_indicators() {
        let text = format!(
            "name,age,sex,y\n{}",
            rows(60, |i| format!(
                "\"Person {i}, Mr {}\",{},{},{}",
                i * 7,
                if i.is_multiple_of(5) {
                    String::new()
                } else {
                    i.to_string()
                },
                if i.is_multiple_of(2) { "m" } else { "f" },
                i % 2
            ))
        );
        let d = load(&text, "y", None).unwrap();
        assert_eq!(
            d.feature_names,
            vec!["age", "age__missing", "sex=f", "sex=m"]
        );
        assert!(d.x.get(0, 0).is_nan());
        assert_eq!(d.x.get(0, 1), 1.0);
        assert!(d.token_names.contains(&"name~person".to_string()));
        assert!(d.token_names.contains(&"name~mr".to_string()));
        assert_eq!(d.classes, vec!["0", "1"]);
    }

    #[test]
    fn rows_with_a_missing_target_are_dropped_and_counted() {
        let d = load("x,y\n".to_string().as_str().to_owned().as_str(), "y", None);
        assert!(d.is_err());
        let text = format!("x,y\n{}\n5,NA\n6,", rows(40, |i| format!("{i},{}", i % 2)));
        let d = load(&text, "y", None).unwrap();
        assert_eq!(d.len(), 40);
        assert_eq!(d.dropped_rows, 2);
    }
}
