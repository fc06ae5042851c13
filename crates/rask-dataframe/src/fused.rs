//! Read and aggregate in one pass: the partial stage of a groupby computed by the reader
//! itself, without materializing the partition as a polars frame.
//!
//! `read_parquet(..).groupby(["Origin"]).col("DepDelay").mean()` is the seed workload. The
//! general path reads each partition into a polars frame (the key as a string per row) and
//! runs polars' `group_by` over it: a hash of every row's string. But a Parquet key column of
//! few distinct values is dictionary-encoded, so a row's key is already a small integer: map
//! the dictionary (a few hundred strings per row group) to group ids once and aggregate by
//! indexing arrays. A CSV partition is scanned once for the key and value fields only, with
//! no frame built. Both produce exactly the columns the polars partial would ([`FusedAgg`]
//! records their names and dtypes), so combine and finalize are shared with the general
//! path, and any input the kernel does not handle (a quoted CSV field, a non-dictionary page,
//! a value that does not parse) makes the reader fall back to it: the fallback, not the
//! kernel, then reports errors, naming file and line as usual.
//!
//! Supported: one key column (string or integer), and `sum` (Float64, Int64), `mean` (any
//! numeric but UInt64), `count`, `size`, and `min`/`max` of integer and float columns.
//! Anything else takes the general path.

use std::sync::Arc;

use polars::prelude::{
    ChunkedArray, Column, DataFrame as PlFrame, DataType, Float64Chunked, Float64Type,
    Int64Chunked, Int64Type, IntoColumn, IntoLazy, NewChunkedArray, PlHashMap, PlSmallStr, Schema,
    SchemaRef, StringChunked, col,
};
use polars_arrow::bitmap::Bitmap;
use rask_error::Result;

use crate::groupby::{Agg, AggKind};

/// What a partial column accumulates.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum FusedKind {
    /// Sum of the values as Float64 (a float sum, or the sum half of a mean).
    SumF64,
    /// Sum of Int64 values (wrapping, as polars).
    SumI64,
    /// Non-null values.
    Count,
    /// Rows, nulls included.
    Size,
    MinI64,
    MaxI64,
    /// Float minimum and maximum, NaN ignored unless every value is NaN (as polars'
    /// `min`/`max`).
    MinF64,
    MaxF64,
}

/// One partial column: `name` is the column polars' partial expression would produce.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct FusedCol {
    /// The input column (`None` for `Size`).
    pub(crate) column: Option<String>,
    pub(crate) kind: FusedKind,
    pub(crate) name: String,
    /// A `Count` equal to the counts partial column `j` keeps anyway (a mean's sum counts
    /// its values): not counted twice.
    pub(crate) counts_of: Option<usize>,
}

/// The partial stage of a groupby in a form readers can compute themselves.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FusedAgg {
    pub(crate) key: String,
    pub(crate) cols: Vec<FusedCol>,
    /// The partial's output schema as polars computes it: the kernel's columns are cast to it.
    #[serde(with = "crate::wire::schema_ref")]
    pub(crate) schema: SchemaRef,
}

fn is_int(d: &DataType) -> bool {
    matches!(
        d,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    )
}

impl FusedAgg {
    /// The fused form of `groupby(keys).agg(aggs)` over `input`, when it has one. The names
    /// follow `Agg::plan` (`__rask{i}_sum`, `__rask{i}_n`, ...).
    pub(crate) fn plan(
        input: &Schema,
        keys: &[String],
        aggs: &[Agg],
        partial_schema: SchemaRef,
    ) -> Option<FusedAgg> {
        let [key] = keys else { return None };
        let key_dtype = input.get(key.as_str())?;
        if !(key_dtype == &DataType::String || is_int(key_dtype)) {
            return None;
        }
        let mut cols = Vec::new();
        for (i, a) in aggs.iter().enumerate() {
            if a.kind != AggKind::Size && &a.column == key {
                // An aggregation of the key itself: the general path.
                return None;
            }
            let p = |part: &str| format!("__rask{i}_{part}");
            let dtype = input.get(a.column.as_str());
            let column = Some(a.column.clone());
            let one = |kind, name: String| FusedCol {
                column: column.clone(),
                kind,
                name,
                counts_of: None,
            };
            match (a.kind, dtype) {
                (AggKind::Size, _) => cols.push(FusedCol {
                    column: None,
                    kind: FusedKind::Size,
                    name: p("n"),
                    counts_of: None,
                }),
                (AggKind::Count, Some(d)) if d == &DataType::Float64 || is_int(d) => {
                    cols.push(one(FusedKind::Count, p("n")))
                }
                (AggKind::Sum, Some(DataType::Float64)) => {
                    cols.push(one(FusedKind::SumF64, p("sum")))
                }
                (AggKind::Sum, Some(DataType::Int64)) => {
                    cols.push(one(FusedKind::SumI64, p("sum")))
                }
                (AggKind::Mean, Some(d)) if d == &DataType::Float64 || is_int(d) => {
                    cols.push(one(FusedKind::SumF64, p("sum")));
                    cols.push(one(FusedKind::Count, p("n")));
                }
                (AggKind::Min, Some(d)) if is_int(d) => cols.push(one(FusedKind::MinI64, p("min"))),
                (AggKind::Max, Some(d)) if is_int(d) => cols.push(one(FusedKind::MaxI64, p("max"))),
                (AggKind::Min, Some(d)) if d.is_float() => {
                    cols.push(one(FusedKind::MinF64, p("min")))
                }
                (AggKind::Max, Some(d)) if d.is_float() => {
                    cols.push(one(FusedKind::MaxF64, p("max")))
                }
                _ => return None,
            }
        }
        // A count of a column some earlier SumF64 (which counts non-null values) also reads.
        for j in 0..cols.len() {
            if cols[j].kind == FusedKind::Count {
                cols[j].counts_of = (0..j).find(|&i| {
                    cols[i].kind == FusedKind::SumF64 && cols[i].column == cols[j].column
                });
            }
        }
        // The kernel's names must be exactly the partial's: a mismatch means Agg::plan
        // changed, and the general path is the safe answer.
        let expected: Vec<&str> = partial_schema.iter_names().map(|n| n.as_str()).collect();
        let mut got = vec![key.as_str()];
        got.extend(cols.iter().map(|c| c.name.as_str()));
        if expected != got {
            return None;
        }
        Some(FusedAgg {
            key: key.clone(),
            cols,
            schema: partial_schema,
        })
    }

    /// Checks a partial decoded from another process against what [`FusedAgg::plan`] makes,
    /// so malformed parameters are an error, not a panic in a kernel.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        for (j, c) in self.cols.iter().enumerate() {
            if c.column.is_none() != (c.kind == FusedKind::Size) {
                return Err(format!("fused column {j}: input column and kind disagree"));
            }
            if let Some(i) = c.counts_of {
                let ok = c.kind == FusedKind::Count
                    && i < j
                    && self.cols[i].kind == FusedKind::SumF64
                    && self.cols[i].column == c.column;
                if !ok {
                    return Err(format!("fused column {j}: bad shared count {i}"));
                }
            }
        }
        let expected: Vec<&str> = self.schema.iter_names().map(|n| n.as_str()).collect();
        let mut got = vec![self.key.as_str()];
        got.extend(self.cols.iter().map(|c| c.name.as_str()));
        if expected != got {
            return Err("fused partial: names differ from its schema".into());
        }
        Ok(())
    }

    /// The input columns the kernel reads: the key, then each value column once.
    pub(crate) fn columns(&self) -> Vec<String> {
        let mut out = vec![self.key.clone()];
        for c in &self.cols {
            if let Some(name) = &c.column {
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
        }
        out
    }

    /// Whether `kind`'s values are read as Float64 (else Int64).
    pub(crate) fn wants_f64(kind: FusedKind) -> bool {
        matches!(
            kind,
            FusedKind::SumF64 | FusedKind::MinF64 | FusedKind::MaxF64
        )
    }
}

/// Key → group id, for string or integer keys; null keys form one group.
#[derive(Default)]
pub(crate) struct Groups {
    /// Keys of up to 7 bytes, packed with their length into a u64: a cheaper hash and
    /// compare for the short codes (airports, carriers) grouping usually sees.
    short: PlHashMap<u64, u32>,
    strings: PlHashMap<Box<[u8]>, u32>,
    string_keys: Vec<Option<Box<[u8]>>>,
    ints: PlHashMap<i64, u32>,
    int_keys: Vec<Option<i64>>,
    null: Option<u32>,
    n: u32,
}

impl Groups {
    pub(crate) fn len(&self) -> usize {
        self.n as usize
    }

    fn push_new(&mut self) -> u32 {
        let g = self.n;
        self.n += 1;
        g
    }

    #[inline]
    fn pack(key: &[u8]) -> Option<u64> {
        (key.len() < 8).then(|| {
            let mut b = [0u8; 8];
            b[..key.len()].copy_from_slice(key);
            b[7] = key.len() as u8;
            u64::from_le_bytes(b)
        })
    }

    pub(crate) fn has_str(&self, key: &[u8]) -> bool {
        match Self::pack(key) {
            Some(p) => self.short.contains_key(&p),
            None => self.strings.contains_key(key),
        }
    }

    /// The group of a string key (the bytes are valid UTF-8: the caller checked).
    #[inline]
    pub(crate) fn of_str(&mut self, key: &[u8]) -> u32 {
        let packed = Self::pack(key);
        let found = match packed {
            Some(p) => self.short.get(&p),
            None => self.strings.get(key),
        };
        if let Some(&g) = found {
            return g;
        }
        let g = self.push_new();
        match packed {
            Some(p) => self.short.insert(p, g),
            None => self.strings.insert(key.into(), g),
        };
        self.string_keys.push(Some(key.into()));
        g
    }

    #[inline]
    pub(crate) fn of_int(&mut self, key: i64) -> u32 {
        if let Some(&g) = self.ints.get(&key) {
            return g;
        }
        let g = self.push_new();
        self.ints.insert(key, g);
        self.int_keys.push(Some(key));
        g
    }

    #[inline]
    pub(crate) fn of_null(&mut self, string: bool) -> u32 {
        if let Some(g) = self.null {
            return g;
        }
        let g = self.push_new();
        self.null = Some(g);
        if string {
            self.string_keys.push(None);
        } else {
            self.int_keys.push(None);
        }
        g
    }

    fn key_column(&self, name: &str, dtype: &DataType) -> Result<Column> {
        let name = PlSmallStr::from(name);
        let column = if dtype == &DataType::String {
            let keys: Vec<Option<&str>> = self
                .string_keys
                .iter()
                .map(|k| {
                    k.as_deref()
                        .map(|b| std::str::from_utf8(b).expect("checked UTF-8"))
                })
                .collect();
            StringChunked::from_iter_options(name, keys.into_iter()).into_column()
        } else {
            Int64Chunked::from_iter_options(name, self.int_keys.iter().copied()).into_column()
        };
        column
            .strict_cast(dtype)
            .map_err(crate::polars_err("fused groupby key"))
    }
}

/// One batch of values for a partial column: Float64 or Int64, with nulls.
pub(crate) enum Values<'a> {
    F64(&'a Float64Chunked),
    I64(&'a Int64Chunked),
    /// `Size` reads no column.
    None,
}

/// Partial columns over a dense space of group ids `0..len`.
struct Partials {
    agg: Arc<FusedAgg>,
    sums_f: Vec<Vec<f64>>,
    ints: Vec<Vec<i64>>,
    counts: Vec<Vec<u64>>,
    /// Rows per group, kept only for a `size` column (`need_rows`).
    rows: Vec<u64>,
    need_rows: bool,
    /// Groups present: set when rows are not counted.
    seen: Vec<bool>,
}

impl Partials {
    fn new(agg: Arc<FusedAgg>) -> Partials {
        let n = agg.cols.len();
        Partials {
            sums_f: vec![Vec::new(); n],
            ints: vec![Vec::new(); n],
            counts: vec![Vec::new(); n],
            rows: Vec::new(),
            need_rows: agg.cols.iter().any(|c| c.kind == FusedKind::Size),
            seen: Vec::new(),
            agg,
        }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    /// Makes room for groups `0..n` (new groups start empty).
    fn grow(&mut self, n: usize) {
        if n <= self.rows.len() {
            return;
        }
        self.rows.resize(n, 0);
        self.seen.resize(n, false);
        for (c, col) in self.agg.cols.iter().enumerate() {
            match col.kind {
                FusedKind::SumF64 => self.sums_f[c].resize(n, 0.0),
                FusedKind::SumI64 => self.ints[c].resize(n, 0),
                FusedKind::MinI64 => self.ints[c].resize(n, i64::MAX),
                FusedKind::MaxI64 => self.ints[c].resize(n, i64::MIN),
                // NaN is the identity of f64::min and f64::max.
                FusedKind::MinF64 | FusedKind::MaxF64 => self.sums_f[c].resize(n, f64::NAN),
                FusedKind::Count | FusedKind::Size => {}
            }
            self.counts[c].resize(n, 0);
        }
    }

    /// Empties the partials and sizes them for `n` groups (scratch reuse).
    fn reset(&mut self, n: usize) {
        self.rows.clear();
        self.seen.clear();
        for c in 0..self.agg.cols.len() {
            self.sums_f[c].clear();
            self.ints[c].clear();
            self.counts[c].clear();
        }
        self.grow(n);
    }

    /// Adds one batch: `gids[r]` is row r's group, `values[c]` partial column c's input.
    fn add(&mut self, gids: &[u32], values: &[Values<'_>]) {
        // Every id is checked against the group count once, here, so the loops below index
        // without bounds checks (they are the inner loops of every fused groupby).
        let n = self.len();
        assert!(
            gids.iter().copied().max().is_none_or(|g| (g as usize) < n),
            "group id out of range"
        );
        // Rows are counted for a `size` only (by the first Float64 sum's loop when there is
        // one); otherwise marking the groups present is enough, and cheaper.
        let first_sum = self
            .agg
            .cols
            .iter()
            .position(|c| c.kind == FusedKind::SumF64 && c.counts_of.is_none());
        let first_sum =
            first_sum.filter(|&c| self.need_rows && matches!(values[c], Values::F64(_)));
        if self.need_rows && first_sum.is_none() {
            let rows = &mut self.rows;
            for &g in gids {
                // SAFETY: g < n = rows.len(), checked above.
                unsafe { *rows.get_unchecked_mut(g as usize) += 1 };
            }
        }
        if !self.need_rows {
            let seen = &mut self.seen;
            for &g in gids {
                // SAFETY: g < n = seen.len(), checked above.
                unsafe { *seen.get_unchecked_mut(g as usize) = true };
            }
        }
        for (c, col) in self.agg.cols.iter().enumerate() {
            if col.counts_of.is_some() {
                // The same counts as another partial column over the same input.
                continue;
            }
            let counts = &mut self.counts[c];
            debug_assert_eq!(counts.len(), n);
            match (&values[c], col.kind) {
                (_, FusedKind::Size) => {}
                (Values::F64(ca), FusedKind::SumF64) => {
                    let sums = &mut self.sums_f[c];
                    let mut rows = (first_sum == Some(c)).then_some(&mut self.rows);
                    for_each_chunk(gids, ca, |gids, vals, valid| {
                        sum_count_rows(gids, vals, valid, sums, counts, rows.as_deref_mut())
                    });
                }
                (Values::F64(ca), FusedKind::Count) => count_valid(gids, ca, counts),
                (Values::I64(ca), FusedKind::Count) => count_valid(gids, ca, counts),
                (Values::I64(ca), FusedKind::SumI64) => {
                    fold_valid(gids, ca, &mut self.ints[c], counts, i64::wrapping_add)
                }
                (Values::I64(ca), FusedKind::MinI64) => {
                    fold_valid(gids, ca, &mut self.ints[c], counts, i64::min)
                }
                (Values::I64(ca), FusedKind::MaxI64) => {
                    fold_valid(gids, ca, &mut self.ints[c], counts, i64::max)
                }
                (Values::F64(ca), FusedKind::MinF64) => {
                    fold_valid(gids, ca, &mut self.sums_f[c], counts, f64::min)
                }
                (Values::F64(ca), FusedKind::MaxF64) => {
                    fold_valid(gids, ca, &mut self.sums_f[c], counts, f64::max)
                }
                (_, kind) => unreachable!("values prepared for {kind:?} by the reader"),
            }
        }
    }

    /// Folds group `from` of `self` into group `to` of `dst`.
    fn present(&self, g: usize) -> bool {
        if self.need_rows {
            self.rows[g] > 0
        } else {
            self.seen[g]
        }
    }

    fn merge_group(&self, from: usize, dst: &mut Partials, to: usize) {
        dst.rows[to] += self.rows[from];
        for (c, col) in self.agg.cols.iter().enumerate() {
            dst.counts[c][to] += self.counts[c][from];
            match col.kind {
                FusedKind::SumF64 => dst.sums_f[c][to] += self.sums_f[c][from],
                FusedKind::SumI64 => {
                    dst.ints[c][to] = dst.ints[c][to].wrapping_add(self.ints[c][from])
                }
                FusedKind::MinI64 => dst.ints[c][to] = dst.ints[c][to].min(self.ints[c][from]),
                FusedKind::MaxI64 => dst.ints[c][to] = dst.ints[c][to].max(self.ints[c][from]),
                FusedKind::MinF64 => {
                    dst.sums_f[c][to] = dst.sums_f[c][to].min(self.sums_f[c][from])
                }
                FusedKind::MaxF64 => {
                    dst.sums_f[c][to] = dst.sums_f[c][to].max(self.sums_f[c][from])
                }
                FusedKind::Count | FusedKind::Size => {}
            }
        }
    }
}

/// The running partials of one partition: group ids from [`Groups`], partials by id.
pub(crate) struct Accumulator {
    agg: Arc<FusedAgg>,
    pub(crate) groups: Groups,
    total: Partials,
    /// Scratch for batches keyed by codes (dictionary entries) rather than group ids.
    local: Partials,
}

impl Accumulator {
    pub(crate) fn new(agg: Arc<FusedAgg>) -> Accumulator {
        Accumulator {
            total: Partials::new(agg.clone()),
            local: Partials::new(agg.clone()),
            agg,
            groups: Groups::default(),
        }
    }

    pub(crate) fn agg(&self) -> &FusedAgg {
        &self.agg
    }

    /// Adds one batch whose rows carry group ids from `self.groups`.
    pub(crate) fn add(&mut self, gids: &[u32], values: &[Values<'_>]) {
        self.total.grow(self.groups.len());
        self.total.add(gids, values);
    }

    /// Adds one batch whose rows carry codes `0..ncodes` (dictionary entries): aggregated by
    /// code first, then each code that occurs is resolved to its group once (`resolve`) and
    /// folded in. No per-row lookup, and an unused code makes no group.
    pub(crate) fn add_coded(
        &mut self,
        codes: &[u32],
        ncodes: usize,
        values: &[Values<'_>],
        mut resolve: impl FnMut(&mut Groups, usize) -> u32,
    ) {
        self.local.reset(ncodes);
        self.local.add(codes, values);
        for code in 0..ncodes {
            if !self.local.present(code) {
                continue;
            }
            let g = resolve(&mut self.groups, code) as usize;
            self.total.grow(self.groups.len());
            self.local.merge_group(code, &mut self.total, g);
        }
    }

    /// Folds a row group's per-code partials in: each code that occurs is resolved to its
    /// group once (`resolve`), as in [`Accumulator::add_coded`].
    pub(crate) fn add_code_partials(
        &mut self,
        coded: &CodePartials,
        mut resolve: impl FnMut(&mut Groups, usize) -> u32,
    ) {
        for code in 0..coded.ncodes {
            if !coded.present(code) {
                continue;
            }
            let g = resolve(&mut self.groups, code) as usize;
            self.total.grow(self.groups.len());
            let t = &mut self.total;
            t.rows[g] += coded.rows_of(code);
            t.seen[g] = true;
            for (c, col) in self.agg.cols.iter().enumerate() {
                let lanes = &coded.cols[c];
                let slots = code * LANES..(code + 1) * LANES;
                t.counts[c][g] += lanes.counts[slots.clone()].iter().sum::<u64>();
                match col.kind {
                    FusedKind::SumF64 => {
                        t.sums_f[c][g] += lanes.sums_f[slots].iter().sum::<f64>();
                    }
                    FusedKind::SumI64 => {
                        let s = lanes.ints[slots]
                            .iter()
                            .fold(0i64, |a, &b| a.wrapping_add(b));
                        t.ints[c][g] = t.ints[c][g].wrapping_add(s);
                    }
                    FusedKind::MinI64 => {
                        let m = lanes.ints[slots].iter().copied().min().unwrap_or(i64::MAX);
                        t.ints[c][g] = t.ints[c][g].min(m);
                    }
                    FusedKind::MaxI64 => {
                        let m = lanes.ints[slots].iter().copied().max().unwrap_or(i64::MIN);
                        t.ints[c][g] = t.ints[c][g].max(m);
                    }
                    FusedKind::MinF64 => {
                        let m = lanes.sums_f[slots].iter().fold(f64::NAN, |a, &b| a.min(b));
                        t.sums_f[c][g] = t.sums_f[c][g].min(m);
                    }
                    FusedKind::MaxF64 => {
                        let m = lanes.sums_f[slots].iter().fold(f64::NAN, |a, &b| a.max(b));
                        t.sums_f[c][g] = t.sums_f[c][g].max(m);
                    }
                    FusedKind::Count | FusedKind::Size => {}
                }
            }
        }
    }

    /// The partial frame, with polars' column names and dtypes.
    pub(crate) fn finish(mut self, key_dtype: &DataType) -> Result<PlFrame> {
        let n = self.groups.len();
        self.total.grow(n);
        let t = &self.total;
        let mut columns = vec![self.groups.key_column(&self.agg.key, key_dtype)?];
        for (c, col) in self.agg.cols.iter().enumerate() {
            let name = PlSmallStr::from(col.name.as_str());
            let counts = &t.counts[col.counts_of.unwrap_or(c)];
            let column = match col.kind {
                FusedKind::SumF64 => {
                    Float64Chunked::from_vec(name, t.sums_f[c].clone()).into_column()
                }
                FusedKind::SumI64 => Int64Chunked::from_vec(name, t.ints[c].clone()).into_column(),
                FusedKind::Count => {
                    Int64Chunked::from_vec(name, counts.iter().map(|&c| c as i64).collect())
                        .into_column()
                }
                FusedKind::Size => {
                    Int64Chunked::from_vec(name, t.rows.iter().map(|&c| c as i64).collect())
                        .into_column()
                }
                // A group with no value has no minimum or maximum: null.
                FusedKind::MinF64 | FusedKind::MaxF64 => {
                    with_values::<Float64Type>(name, t.sums_f[c].clone(), counts).into_column()
                }
                FusedKind::MinI64 | FusedKind::MaxI64 => {
                    with_values::<Int64Type>(name, t.ints[c].clone(), counts).into_column()
                }
            };
            columns.push(column);
        }
        debug_assert_eq!(t.len(), n);
        let frame = PlFrame::new_infer_height(columns)
            .map_err(crate::polars_err("fused groupby partial"))?;
        // Agree with polars' partial on dtypes (counts are IDX, min/max keep the input type).
        let casts: Vec<_> = self
            .agg
            .schema
            .iter()
            .map(|(name, dtype)| col(name.clone()).strict_cast(dtype.clone()))
            .collect();
        frame
            .lazy()
            .select(casts)
            .collect()
            .map_err(crate::polars_err("fused groupby partial"))
    }
}

/// Accumulator copies per code in [`CodePartials`] (see [`sum_count_rows`] for why).
const LANES: usize = 4;

/// One partial column's accumulators by code, `LANES` interleaved copies per code: slot
/// `code * LANES + row % LANES`.
#[derive(Default)]
pub(crate) struct CodeLanes {
    sums_f: Vec<f64>,
    ints: Vec<i64>,
    counts: Vec<u64>,
}

/// The partials of one row group by the key's dictionary codes `0..ncodes`, filled straight
/// from decoded pages (see [`PlainValue`] and [`LaneOp`]): one pass per value column, no
/// per-row validity or value arrays in between.
pub(crate) struct CodePartials {
    ncodes: usize,
    /// `LANES` row counters per code, for a `size` only (empty otherwise).
    rows: Vec<u64>,
    /// Which codes occur: set by [`CodePartials::settle`].
    present: Vec<bool>,
    cols: Vec<CodeLanes>,
}

impl CodePartials {
    /// Empty partials for `agg` over `codes` (every row's code, each `< ncodes`). Panics if
    /// a code is out of range: the decoder checks.
    pub(crate) fn new(agg: &FusedAgg, codes: &[u32], ncodes: usize) -> CodePartials {
        assert!(
            codes
                .iter()
                .copied()
                .max()
                .is_none_or(|c| (c as usize) < ncodes)
        );
        let n = ncodes * LANES;
        let mut rows = Vec::new();
        if agg.cols.iter().any(|c| c.kind == FusedKind::Size) {
            rows = vec![0u64; n];
            for (r, &code) in codes.iter().enumerate() {
                // SAFETY: code < ncodes (asserted above), so the slot is < n.
                unsafe { *rows.get_unchecked_mut(code as usize * LANES + (r % LANES)) += 1 };
            }
        }
        let cols = agg
            .cols
            .iter()
            .map(|c| CodeLanes {
                sums_f: match c.kind {
                    FusedKind::SumF64 => vec![0.0; n],
                    FusedKind::MinF64 | FusedKind::MaxF64 => vec![f64::NAN; n],
                    _ => Vec::new(),
                },
                ints: match c.kind {
                    FusedKind::SumI64 => vec![0; n],
                    FusedKind::MinI64 => vec![i64::MAX; n],
                    FusedKind::MaxI64 => vec![i64::MIN; n],
                    _ => Vec::new(),
                },
                counts: vec![0; n],
            })
            .collect();
        CodePartials {
            ncodes,
            rows,
            present: Vec::new(),
            cols,
        }
    }

    /// Records which codes occur, once the values are in; `known` says for some codes
    /// (a null key's, from the definition levels) whether they occur. A code with a value
    /// occurs; a writer builds a chunk's dictionary from its values, so usually every code
    /// has one, and only otherwise (a key whose values are all null) are the codes scanned.
    pub(crate) fn settle(&mut self, codes: &[u32], known: impl Fn(usize) -> Option<bool>) {
        if !self.rows.is_empty() {
            self.present = (0..self.ncodes).map(|c| self.rows_of(c) > 0).collect();
            return;
        }
        let counted = |code: usize| {
            let slots = code * LANES..(code + 1) * LANES;
            self.cols
                .iter()
                .any(|l| l.counts[slots.clone()].iter().any(|&c| c > 0))
        };
        let mut unsure = false;
        self.present = (0..self.ncodes)
            .map(|code| match known(code) {
                Some(p) => p,
                None => {
                    counted(code) || {
                        unsure = true;
                        false
                    }
                }
            })
            .collect();
        if unsure {
            for &code in codes {
                self.present[code as usize] = true;
            }
        }
    }

    /// Whether `code` occurs (after [`CodePartials::settle`]).
    pub(crate) fn present(&self, code: usize) -> bool {
        self.present.get(code).copied().unwrap_or(false)
    }

    /// Rows of `code`, when counted (for a `size`), else 0.
    fn rows_of(&self, code: usize) -> u64 {
        self.rows
            .get(code * LANES..(code + 1) * LANES)
            .map_or(0, |r| r.iter().sum())
    }

    /// The accumulators of partial column `c`.
    pub(crate) fn lanes(&mut self, c: usize) -> &mut CodeLanes {
        &mut self.cols[c]
    }
}

/// A fixed-width little-endian Parquet PLAIN value.
pub(crate) trait PlainValue: Copy {
    const WIDTH: usize;
    /// The value of the first `WIDTH` bytes of `b` (`b.len() >= WIDTH`).
    fn read(b: &[u8]) -> Self;
    fn to_f64(self) -> f64;
    fn to_i64(self) -> i64;
}

macro_rules! plain_value {
    ($t:ty, $w:expr) => {
        impl PlainValue for $t {
            const WIDTH: usize = $w;
            #[inline(always)]
            fn read(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b[..$w].try_into().expect("width"))
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
        }
    };
}
plain_value!(f64, 8);
plain_value!(f32, 4);
plain_value!(i64, 8);
plain_value!(i32, 4);

/// What one non-null value does to its slot.
pub(crate) trait LaneOp<P: PlainValue> {
    fn apply(lanes: &mut CodeLanes, slot: usize, v: P);
}

/// Float64 sum and count (a sum of floats, or a mean).
pub(crate) struct SumF64Op;
/// Non-null count only.
pub(crate) struct CountOp;
pub(crate) struct SumI64Op;
pub(crate) struct MinI64Op;
pub(crate) struct MaxI64Op;
pub(crate) struct MinF64Op;
pub(crate) struct MaxF64Op;

/// An op that folds each value into one accumulator vector and counts it: `fold(acc, v)`
/// with the value converted by `to_f64` or `to_i64`.
macro_rules! folding_op {
    ($op:ident, $field:ident, $convert:ident, |$acc:ident, $v:ident| $fold:expr) => {
        impl<P: PlainValue> LaneOp<P> for $op {
            #[inline(always)]
            fn apply(l: &mut CodeLanes, slot: usize, v: P) {
                // SAFETY: `slot < ncodes * LANES`, the length of every non-empty vector of a
                // `CodeLanes` for its kind: callers pass codes checked by `CodePartials::new`.
                unsafe {
                    let $acc = *l.$field.get_unchecked(slot);
                    let $v = v.$convert();
                    *l.$field.get_unchecked_mut(slot) = $fold;
                    *l.counts.get_unchecked_mut(slot) += 1;
                }
            }
        }
    };
}
folding_op!(SumF64Op, sums_f, to_f64, |s, v| s + v);
folding_op!(SumI64Op, ints, to_i64, |s, v| s.wrapping_add(v));
folding_op!(MinI64Op, ints, to_i64, |s, v| s.min(v));
folding_op!(MaxI64Op, ints, to_i64, |s, v| s.max(v));
folding_op!(MinF64Op, sums_f, to_f64, |s, v| s.min(v));
folding_op!(MaxF64Op, sums_f, to_f64, |s, v| s.max(v));

impl<P: PlainValue> LaneOp<P> for CountOp {
    #[inline(always)]
    fn apply(l: &mut CodeLanes, slot: usize, _v: P) {
        // SAFETY: as for the folding ops.
        unsafe { *l.counts.get_unchecked_mut(slot) += 1 };
    }
}

/// Adds a run of rows that all have a value: row `first_row + i` has code `codes[i]` and
/// its value in `values[i * WIDTH..]`. Returns `false` (nothing added) when `values` is
/// too short.
#[inline]
pub(crate) fn add_present_run<P: PlainValue, O: LaneOp<P>>(
    lanes: &mut CodeLanes,
    codes: &[u32],
    first_row: usize,
    values: &[u8],
) -> bool {
    if values.len() < codes.len() * P::WIDTH {
        return false;
    }
    for (i, (&code, b)) in codes.iter().zip(values.chunks_exact(P::WIDTH)).enumerate() {
        let slot = code as usize * LANES + ((first_row + i) % LANES);
        O::apply(lanes, slot, P::read(b));
    }
    true
}

/// Adds a run of dictionary-encoded rows that all have a value: row `first_row + i` has
/// code `codes[i]` and value `dictionary[value_codes[i]]`. Returns `false` (possibly with
/// some rows added: discard the partials) when a value code is out of range.
#[inline]
pub(crate) fn add_present_dict_run<P: PlainValue, O: LaneOp<P>>(
    lanes: &mut CodeLanes,
    codes: &[u32],
    first_row: usize,
    value_codes: &[u32],
    dictionary: &[P],
) -> bool {
    if value_codes.len() < codes.len() {
        return false;
    }
    for (i, (&code, &v)) in codes.iter().zip(value_codes).enumerate() {
        let Some(&v) = dictionary.get(v as usize) else {
            return false;
        };
        let slot = code as usize * LANES + ((first_row + i) % LANES);
        O::apply(lanes, slot, v);
    }
    true
}

/// Adds a run of rows some of which are null: bit `i` of `valid` (least significant first)
/// says whether row `first_row + i` has a value; `value(k)` is the k-th value of the run's
/// valid rows. Returns the number of values used, or `None` when `valid` is too short or
/// `value` fails (possibly with some rows added: discard the partials).
#[inline]
pub(crate) fn add_mixed_run<P: PlainValue, O: LaneOp<P>>(
    lanes: &mut CodeLanes,
    codes: &[u32],
    first_row: usize,
    valid: &[u8],
    mut value: impl FnMut(usize) -> Option<P>,
) -> Option<usize> {
    if valid.len() * 8 < codes.len() {
        return None;
    }
    let mut k = 0;
    for (i, &code) in codes.iter().enumerate() {
        if valid[i / 8] >> (i % 8) & 1 == 1 {
            let slot = code as usize * LANES + ((first_row + i) % LANES);
            O::apply(lanes, slot, value(k)?);
            k += 1;
        }
    }
    Some(k)
}

/// Calls `f(gids, values, validity)` per chunk of `ca` (validity `None` when no nulls).
#[inline]
fn for_each_chunk<T>(
    gids: &[u32],
    ca: &ChunkedArray<T>,
    mut f: impl FnMut(&[u32], &[T::Native], Option<&Bitmap>),
) where
    T: polars::prelude::PolarsNumericType,
{
    let mut offset = 0;
    for arr in ca.downcast_iter() {
        let values = arr.values().as_slice();
        let gids = &gids[offset..offset + values.len()];
        f(gids, values, arr.validity().filter(|v| v.unset_bits() > 0));
        offset += values.len();
    }
}

/// Adds `vals` (nulls where `valid` is unset) into `sums`, non-null counts into `counts`
/// and, when given, rows into `rows`, by group `gids[j] < sums.len()`.
///
/// For few groups the adds go to four interleaved copies of each group's accumulators (row
/// `j` to copy `j % 4`), summed at the end: consecutive rows of the same group then do not
/// wait on each other's store, which is what bounds a plain loop when a few keys (the big
/// airports) dominate.
fn sum_count_rows(
    gids: &[u32],
    vals: &[f64],
    valid: Option<&Bitmap>,
    sums: &mut [f64],
    counts: &mut [u64],
    rows: Option<&mut Vec<u64>>,
) {
    let n = sums.len();
    assert!(counts.len() == n && gids.len() == vals.len());
    assert!(gids.iter().copied().max().is_none_or(|g| (g as usize) < n));
    if n > 1024 {
        for (j, (&g, &v)) in gids.iter().zip(vals).enumerate() {
            let ok = valid.is_none_or(|b| b.get_bit(j));
            let g = g as usize;
            sums[g] += if ok { v } else { 0.0 };
            counts[g] += ok as u64;
        }
        if let Some(rows) = rows {
            for &g in gids {
                rows[g as usize] += 1;
            }
        }
        return;
    }
    let mut lane_sums = vec![0.0f64; n * LANES];
    let mut lane_counts = vec![0u64; n * LANES];
    let mut lane_rows = vec![0u64; n * LANES];
    match valid {
        None => {
            for (j, (&g, &v)) in gids.iter().zip(vals).enumerate() {
                let k = g as usize * LANES + (j % LANES);
                // SAFETY: g < n (checked above), so k < n * LANES.
                unsafe {
                    *lane_sums.get_unchecked_mut(k) += v;
                    *lane_counts.get_unchecked_mut(k) += 1;
                }
            }
            lane_rows.copy_from_slice(&lane_counts);
        }
        Some(valid) if rows.is_none() => for_each_word(valid, |base, word, nbits| {
            for t in 0..nbits {
                let j = base + t;
                let ok = (word >> t) & 1;
                let k = gids[j] as usize * LANES + (j % LANES);
                // A null's slot holds anything: masked to +0.0 without a branch.
                let v = f64::from_bits(vals[j].to_bits() & 0u64.wrapping_sub(ok));
                // SAFETY: gids[j] < n (checked above), so k < n * LANES.
                unsafe {
                    *lane_sums.get_unchecked_mut(k) += v;
                    *lane_counts.get_unchecked_mut(k) += ok;
                }
            }
        }),
        Some(valid) => for_each_word(valid, |base, word, nbits| {
            for t in 0..nbits {
                let j = base + t;
                let ok = (word >> t) & 1;
                let k = gids[j] as usize * LANES + (j % LANES);
                // A null's slot holds anything: masked to +0.0 without a branch.
                let v = f64::from_bits(vals[j].to_bits() & 0u64.wrapping_sub(ok));
                // SAFETY: gids[j] < n (checked above), so k < n * LANES.
                unsafe {
                    *lane_sums.get_unchecked_mut(k) += v;
                    *lane_counts.get_unchecked_mut(k) += ok;
                    *lane_rows.get_unchecked_mut(k) += 1;
                }
            }
        }),
    }
    for g in 0..n {
        let lanes = g * LANES..(g + 1) * LANES;
        sums[g] += lane_sums[lanes.clone()].iter().sum::<f64>();
        counts[g] += lane_counts[lanes.clone()].iter().sum::<u64>();
    }
    if let Some(rows) = rows {
        for g in 0..n {
            rows[g] += lane_rows[g * LANES..(g + 1) * LANES].iter().sum::<u64>();
        }
    }
}

/// Calls `f(first_row, bits, nbits)` for each word of up to 64 validity bits.
#[inline]
fn for_each_word(valid: &Bitmap, mut f: impl FnMut(usize, u64, usize)) {
    let mut words = valid.fast_iter_u64();
    let mut base = 0;
    for word in words.by_ref() {
        f(base, word, 64);
        base += 64;
    }
    let ([lo, hi], left) = words.remainder();
    if left > 0 {
        f(base, lo, left.min(64));
    }
    if left > 64 {
        f(base + 64, hi, left - 64);
    }
}

/// Calls `f(group, value)` for each non-null value.
#[inline]
fn for_each_valid<T>(gids: &[u32], ca: &ChunkedArray<T>, mut f: impl FnMut(usize, T::Native))
where
    T: polars::prelude::PolarsNumericType,
{
    for_each_chunk(gids, ca, |gids, values, valid| match valid {
        None => {
            for (&g, &v) in gids.iter().zip(values) {
                f(g as usize, v);
            }
        }
        Some(valid) => {
            for ((&g, &v), ok) in gids.iter().zip(values).zip(valid.iter()) {
                if ok {
                    f(g as usize, v);
                }
            }
        }
    });
}

/// `values` as a column, null where the group counted no value.
fn with_values<T>(name: PlSmallStr, values: Vec<T::Native>, counts: &[u64]) -> ChunkedArray<T>
where
    T: polars::prelude::PolarsNumericType,
{
    let validity = Bitmap::from_iter(counts.iter().map(|&c| c > 0));
    ChunkedArray::<T>::from_vec_validity(name, values, Some(validity))
}

/// Folds each valid value into its group's accumulator with `fold` and counts it.
fn fold_valid<T>(
    gids: &[u32],
    ca: &ChunkedArray<T>,
    acc: &mut [T::Native],
    counts: &mut [u64],
    fold: impl Fn(T::Native, T::Native) -> T::Native,
) where
    T: polars::prelude::PolarsNumericType,
{
    for_each_valid(gids, ca, |g, v| {
        acc[g] = fold(acc[g], v);
        counts[g] += 1;
    });
}

fn count_valid<T>(gids: &[u32], ca: &ChunkedArray<T>, counts: &mut [u64])
where
    T: polars::prelude::PolarsNumericType,
{
    for_each_chunk(gids, ca, |gids, _, valid| match valid {
        None => {
            for &g in gids {
                counts[g as usize] += 1;
            }
        }
        Some(valid) => {
            for (&g, ok) in gids.iter().zip(valid.iter()) {
                counts[g as usize] += ok as u64;
            }
        }
    });
}

/// A column's values as Float64 or Int64 for a partial column of `kind` (casting as the
/// polars partial would: a mean sums Float64 casts).
pub(crate) enum Prepared {
    F64(Float64Chunked),
    I64(Int64Chunked),
    None,
}

impl Prepared {
    pub(crate) fn from_column(column: &Column, kind: FusedKind) -> Result<Prepared> {
        if kind == FusedKind::Size {
            return Ok(Prepared::None);
        }
        let err = crate::polars_err(format!("fused groupby: column {}", column.name()));
        if FusedAgg::wants_f64(kind) || (kind == FusedKind::Count && column.dtype().is_float()) {
            let c = column.cast(&DataType::Float64).map_err(err)?;
            Ok(Prepared::F64(
                c.f64().map_err(crate::polars_err("f64"))?.clone(),
            ))
        } else {
            let c = column.cast(&DataType::Int64).map_err(err)?;
            Ok(Prepared::I64(
                c.i64().map_err(crate::polars_err("i64"))?.clone(),
            ))
        }
    }

    /// Rows, when there is a column.
    pub(crate) fn len(&self) -> Option<usize> {
        match self {
            Prepared::F64(c) => Some(c.len()),
            Prepared::I64(c) => Some(c.len()),
            Prepared::None => None,
        }
    }

    pub(crate) fn values(&self) -> Values<'_> {
        match self {
            Prepared::F64(c) => Values::F64(c),
            Prepared::I64(c) => Values::I64(c),
            Prepared::None => Values::None,
        }
    }
}

/// An error inside a kernel: the caller falls back to the general path.
pub(crate) fn internal(what: &str) -> rask_error::RaskError {
    rask_error::RaskError::msg(format!("fused groupby: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_tell_short_and_long_string_keys_apart() {
        let mut groups = Groups::default();
        let keys: [&[u8]; 7] = [
            b"",
            b"A",
            b"A\0",
            b"ABCDEFG",
            b"ABCDEFGH",
            b"ABCDEFGHI",
            b"\0",
        ];
        let ids: Vec<u32> = keys.iter().map(|k| groups.of_str(k)).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5, 6]);
        // The same bytes find the same group, through either table.
        for (k, id) in keys.iter().zip(&ids) {
            assert!(groups.has_str(k));
            assert_eq!(groups.of_str(k), *id);
        }
        assert!(!groups.has_str(b"B"));
        assert_eq!(groups.of_null(true), 7);
        assert_eq!(groups.of_null(true), 7);
        assert_eq!(groups.len(), 8);
    }
}
