//! Readers: CSV (split into byte ranges on line boundaries), Parquet (by file or by groups of
//! row groups, footers read once, column/row-limit pushdown, row groups skipped by
//! statistics), and JSON lines. Bytes come through `rask-io`, so a folder and a bucket read
//! the same way.

use std::io::Cursor;
use std::sync::Arc;

use polars::prelude::{
    CsvParseOptions, CsvReadOptions, DataFrame as PlFrame, DataType, Expr, JsonFormat, JsonReader,
    NullValues, ParquetReader, PlSmallStr, Schema, SchemaExt, SchemaRef, SerReader,
};
use rask_error::{RaskError, Result};
use rask_graph::Tokenizer;
use rask_io::{IoStore, StoreOptions};

use crate::DataFrame;
use crate::fused::FusedAgg;
use crate::source::{Pushdown, Source};
use crate::stats::{self, RowGroupStats};
use crate::wire::WireStore;

mod coded;
mod fused_csv;
mod fused_parquet;
mod parquet_pages;
mod snappy;
#[cfg(test)]
pub(crate) use fused_parquet::PAGE_PATH_ROW_GROUPS;

/// One input file: its URL, store handle and size.
#[derive(Clone)]
pub(crate) struct FileRef {
    pub(crate) url: String,
    pub(crate) store: IoStore,
    pub(crate) size: u64,
    modified_ns: i64,
    e_tag: Option<String>,
}

impl FileRef {
    fn open(url: &str, options: &StoreOptions) -> Result<FileRef> {
        let store = IoStore::open(url, options)?;
        let info = store.stat("")?;
        Ok(FileRef {
            url: url.to_string(),
            size: info.size,
            modified_ns: info.modified_ns,
            e_tag: info.e_tag,
            store,
        })
    }

    fn tokenize(&self, t: &mut Tokenizer) {
        t.write_str(&self.url);
        t.write_u64(self.size);
        t.write_i64(self.modified_ns);
        t.write_str(self.e_tag.as_deref().unwrap_or(""));
    }

    fn get_range(&self, range: std::ops::Range<u64>) -> Result<bytes::Bytes> {
        self.store.get_range("", range)
    }

    fn local_path(&self) -> Option<std::path::PathBuf> {
        self.store.root().local_path()
    }
}

/// Expands a path, URL or glob into files, erroring when nothing matches.
fn list_files(pattern: &str, options: &StoreOptions) -> Result<Vec<FileRef>> {
    let urls = rask_io::glob(pattern, options)?;
    if urls.is_empty() {
        return Err(RaskError::invalid_argument(
            "path",
            format!("no files match `{pattern}`"),
        ));
    }
    urls.iter().map(|u| FileRef::open(u, options)).collect()
}

fn polars_at(url: &str) -> impl FnOnce(polars::prelude::PolarsError) -> RaskError + '_ {
    move |e| RaskError::external(e).context(format!("reading {url}"))
}

// ---------------------------------------------------------------- CSV

/// Options of [`read_csv`].
#[derive(Clone, Debug)]
pub struct CsvOptions {
    pub has_header: bool,
    pub separator: u8,
    /// Strings read as null (besides empty fields).
    pub null_values: Vec<String>,
    /// Dtypes that override inference, by column name.
    pub dtypes: Vec<(String, DataType)>,
    /// A full schema: no inference at all.
    pub schema: Option<Schema>,
    /// Rows used to infer dtypes (from the start of the first file).
    pub infer_schema_rows: usize,
    /// Target bytes per partition: larger files are split on line boundaries.
    pub blocksize: u64,
    pub storage: StoreOptions,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            has_header: true,
            separator: b',',
            null_values: Vec::new(),
            dtypes: Vec::new(),
            schema: None,
            infer_schema_rows: 1000,
            blocksize: 64 << 20,
            storage: StoreOptions::default(),
        }
    }
}

impl CsvOptions {
    pub fn with_dtypes<S: AsRef<str>>(mut self, dtypes: &[(S, DataType)]) -> Self {
        self.dtypes = dtypes
            .iter()
            .map(|(n, d)| (n.as_ref().to_string(), d.clone()))
            .collect();
        self
    }
    pub fn with_blocksize(mut self, bytes: u64) -> Self {
        self.blocksize = bytes;
        self
    }
    pub fn with_separator(mut self, sep: u8) -> Self {
        self.separator = sep;
        self
    }
    pub fn with_header(mut self, has_header: bool) -> Self {
        self.has_header = has_header;
        self
    }
    pub fn with_null_values<S: AsRef<str>>(mut self, values: &[S]) -> Self {
        self.null_values = values.iter().map(|s| s.as_ref().to_string()).collect();
        self
    }
    pub fn with_storage(mut self, storage: StoreOptions) -> Self {
        self.storage = storage;
        self
    }

    fn parse_options(&self) -> CsvParseOptions {
        let nulls = if self.null_values.is_empty() {
            None
        } else {
            Some(NullValues::AllColumns(
                self.null_values.iter().map(|s| s.as_str().into()).collect(),
            ))
        };
        CsvParseOptions::default()
            .with_separator(self.separator)
            .with_null_values(nulls)
    }
}

struct CsvPart {
    file: usize,
    start: u64,
    end: u64,
}

struct CsvSource {
    files: Vec<FileRef>,
    parts: Vec<CsvPart>,
    schema: SchemaRef,
    options: CsvOptions,
}

/// Reads CSV files (a path, URL or glob) into a frame: one partition per `blocksize` bytes
/// of each file, cut on line boundaries. Dtypes are inferred from the first rows of the first
/// file, unless given; every file's header must name the same columns.
///
/// Fields with embedded newlines inside quotes are not supported in files split into several
/// partitions (as in Dask); use a `blocksize` above the file size for such files.
pub fn read_csv(pattern: &str, options: CsvOptions) -> Result<DataFrame> {
    if options.blocksize == 0 {
        return Err(RaskError::invalid_argument("blocksize", "must be positive"));
    }
    let files = list_files(pattern, &options.storage)?;
    let schema = match &options.schema {
        Some(s) => Arc::new(s.clone()),
        None => infer_csv_schema(&files[0], &options)?,
    };
    if options.has_header {
        for f in &files {
            check_csv_header(f, &schema, &options)?;
        }
    }
    let mut parts = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let mut start = 0;
        loop {
            let end = (start + options.blocksize).min(f.size);
            parts.push(CsvPart {
                file: i,
                start,
                end,
            });
            if end >= f.size {
                break;
            }
            start = end;
        }
    }
    Ok(DataFrame::from_source(Arc::new(CsvSource {
        files,
        parts,
        schema,
        options,
    })))
}

fn infer_csv_schema(file: &FileRef, options: &CsvOptions) -> Result<SchemaRef> {
    // Enough bytes for the inference rows; cut at the last full line.
    let mut len = (256 << 10).min(file.size);
    let bytes = loop {
        let b = file.get_range(0..len)?;
        let lines = b.iter().filter(|&&c| c == b'\n').count();
        if lines > options.infer_schema_rows || len == file.size {
            break b;
        }
        len = (len * 4).min(file.size);
    };
    let cut = if (bytes.len() as u64) < file.size {
        bytes
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(bytes.len(), |p| p + 1)
    } else {
        bytes.len()
    };
    let overrides: Schema = options
        .dtypes
        .iter()
        .map(|(n, d)| (PlSmallStr::from(n.as_str()), d.clone()))
        .collect();
    let df = CsvReadOptions::default()
        .with_has_header(options.has_header)
        .with_infer_schema_length(Some(options.infer_schema_rows))
        .with_n_rows(Some(options.infer_schema_rows))
        .with_parse_options(options.parse_options())
        .with_schema_overwrite(Some(Arc::new(overrides)))
        .into_reader_with_file_handle(Cursor::new(bytes.slice(..cut)))
        .finish()
        .map_err(|e| csv_error(file, 1, &bytes[..cut], e))?;
    for (n, _) in &options.dtypes {
        if df.schema().get(n.as_str()).is_none() {
            return Err(crate::groupby::unknown_column("dtypes", n, df.schema())
                .context(format!("reading {}", file.url)));
        }
    }
    Ok(df.schema().clone())
}

fn check_csv_header(file: &FileRef, schema: &SchemaRef, options: &CsvOptions) -> Result<()> {
    let bytes = file.get_range(0..(64 << 10).min(file.size))?;
    let end = bytes
        .iter()
        .position(|&c| c == b'\n')
        .unwrap_or(bytes.len());
    let line = String::from_utf8_lossy(&bytes[..end]);
    let names: Vec<&str> = line
        .trim_end_matches('\r')
        .split(options.separator as char)
        .map(|s| s.trim_matches('"'))
        .collect();
    let want: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
    if names != want {
        return Err(RaskError::msg(format!(
            "{}: header has columns {names:?}, but the first file has {want:?} (files' schemas disagree)",
            file.url
        )));
    }
    Ok(())
}

/// Finds the first '\n' at or after `from`, reading forward in steps; `None` at end of file.
fn next_newline(file: &FileRef, from: u64) -> Result<Option<u64>> {
    let mut pos = from;
    let step = 64 << 10;
    while pos < file.size {
        let end = (pos + step).min(file.size);
        let b = file.get_range(pos..end)?;
        if let Some(i) = b.iter().position(|&c| c == b'\n') {
            return Ok(Some(pos + i as u64));
        }
        pos = end;
    }
    Ok(None)
}

impl CsvSource {
    /// The byte range `[begin, stop)` of the lines starting in `[start, end)`.
    fn line_range(&self, part: &CsvPart) -> Result<(u64, u64)> {
        let file = &self.files[part.file];
        let begin = if part.start == 0 {
            0
        } else {
            match next_newline(file, part.start - 1)? {
                Some(p) => p + 1,
                None => file.size,
            }
        };
        let stop = if part.end >= file.size {
            file.size
        } else {
            match next_newline(file, part.end - 1)? {
                Some(p) => p + 1,
                None => file.size,
            }
        };
        Ok((begin, stop))
    }

    /// The bytes of the lines starting in `[start, end)`.
    fn part_bytes(&self, part: &CsvPart) -> Result<(u64, bytes::Bytes)> {
        let (begin, stop) = self.line_range(part)?;
        if begin >= stop {
            return Ok((begin, bytes::Bytes::new()));
        }
        Ok((begin, self.files[part.file].get_range(begin..stop)?))
    }
}

impl CsvSource {
    /// Parses `bytes`, lines of `part` starting with its header (`header`) or `lines_in` lines
    /// after the partition's first line (for error messages).
    fn parse(
        &self,
        part: &CsvPart,
        header: bool,
        bytes: bytes::Bytes,
        lines_in: usize,
        pushdown: &Pushdown,
    ) -> Result<PlFrame> {
        let file = &self.files[part.file];
        if bytes.is_empty() {
            return Ok(empty_projected(&self.schema, pushdown));
        }
        let columns: Option<Arc<[PlSmallStr]>> = pushdown
            .columns
            .as_ref()
            .map(|c| c.iter().map(|s| PlSmallStr::from(s.as_str())).collect());
        let result = CsvReadOptions::default()
            .with_has_header(header)
            .with_schema(Some(self.schema.clone()))
            .with_columns(columns)
            .with_n_rows(pushdown.limit)
            .with_parse_options(self.options.parse_options())
            .with_raise_if_empty(false)
            .into_reader_with_file_handle(Cursor::new(bytes.clone()))
            .finish();
        match result {
            Ok(df) => Ok(df),
            Err(e) => {
                // Name the line: count the lines before this partition (only on error).
                let part_begin = self.line_range(part)?.0;
                let lines_before = if part_begin == 0 {
                    0
                } else {
                    let prefix = file.get_range(0..part_begin)?;
                    prefix.iter().filter(|&&c| c == b'\n').count()
                };
                Err(csv_error(file, lines_before + lines_in + 1, &bytes, e))
            }
        }
    }

    /// The first `lines` lines of a partition (all of it if shorter), fetched in growing
    /// steps: `head(n)` reads kilobytes, not the whole byte range.
    fn part_prefix(&self, part: &CsvPart, lines: usize) -> Result<(u64, bytes::Bytes)> {
        let file = &self.files[part.file];
        let begin = if part.start == 0 {
            0
        } else {
            match next_newline(file, part.start - 1)? {
                Some(p) => p + 1,
                None => return Ok((file.size, bytes::Bytes::new())),
            }
        };
        let mut len = 64 << 10;
        loop {
            let stop = (begin + len).min(file.size);
            let b = file.get_range(begin..stop)?;
            let mut seen = 0;
            for (i, &c) in b.iter().enumerate() {
                if c == b'\n' {
                    seen += 1;
                    // Stop at n lines, or at the first line that starts in the next
                    // partition.
                    if seen == lines || begin + i as u64 + 1 >= part.end {
                        return Ok((begin, b.slice(..i + 1)));
                    }
                }
            }
            if stop == file.size || stop >= part.end {
                // Not enough lines in the window: the whole partition is small.
                return self.part_bytes(part);
            }
            len *= 4;
        }
    }
}

impl Source for CsvSource {
    fn name(&self) -> &str {
        READ_CSV
    }
    fn part_params(&self, i: usize) -> Result<Vec<u8>> {
        let part = &self.parts[i];
        let o = &self.options;
        crate::wire::encode(
            READ_CSV,
            &CsvWire {
                file: WireFile::of(&self.files[part.file]),
                start: part.start,
                end: part.end,
                schema: self.schema.clone(),
                has_header: o.has_header,
                separator: o.separator,
                null_values: o.null_values.clone(),
                dtypes: o.dtypes.clone(),
                given_schema: o.schema.clone(),
                infer_schema_rows: o.infer_schema_rows as u64,
                blocksize: o.blocksize,
                storage: WireStore::of(&o.storage),
            },
        )
    }
    fn tokenize(&self, t: &mut Tokenizer) {
        for f in &self.files {
            f.tokenize(t);
        }
        t.write_str(&format!("{:?}", self.options));
        t.write_str(&format!("{:?}", self.schema));
    }
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }
    fn npartitions(&self) -> usize {
        self.parts.len()
    }
    fn read(&self, i: usize, pushdown: &Pushdown) -> Result<PlFrame> {
        let part = &self.parts[i];
        let (begin, bytes) = match pushdown.limit {
            Some(n) => self.part_prefix(part, n + 1)?,
            None => self.part_bytes(part)?,
        };
        let header = self.options.has_header && begin == 0;
        self.parse(part, header, bytes, 0, pushdown)
    }
    fn read_batches(
        &self,
        i: usize,
        pushdown: &Pushdown,
        f: &mut dyn FnMut(PlFrame) -> Result<()>,
    ) -> Result<bool> {
        let part = &self.parts[i];
        let file = &self.files[part.file];
        let (begin, stop) = self.line_range(part)?;
        // At most CSV_BATCH_BYTES, and at least four batches a partition (so small
        // blocksizes, as in tests, still stream).
        let target =
            crate::stream::CSV_BATCH_BYTES.min((self.options.blocksize / 4).max(1) as usize);
        // The text is fetched a window at a time, so memory is a batch, not the partition:
        // each window starts on a line boundary (what was left after the last whole block),
        // and its whole blocks are parsed.
        let mut lines_before = 0;
        let mut first = true;
        let mut carry = bytes::Bytes::new();
        let mut pos = begin;
        while pos < stop || !carry.is_empty() {
            let want = (stop - pos).min(target as u64);
            let window = if want == 0 {
                std::mem::take(&mut carry)
            } else {
                let fresh = file.get_range(pos..pos + want)?;
                pos += want;
                if carry.is_empty() {
                    fresh
                } else {
                    let mut joined = Vec::with_capacity(carry.len() + fresh.len());
                    joined.extend_from_slice(&carry);
                    joined.extend_from_slice(&fresh);
                    bytes::Bytes::from(joined)
                }
            };
            let at_end = pos >= stop;
            let blocks = line_blocks(&window, target);
            let whole = if at_end {
                blocks.len()
            } else {
                blocks.len().saturating_sub(1)
            };
            let kept = blocks.get(whole).map_or(window.len(), |r| r.start);
            for range in blocks.into_iter().take(whole) {
                let block = window.slice(range);
                // Only the partition's first block can hold the header.
                let header = first && self.options.has_header && begin == 0;
                first = false;
                let lines = lines_before;
                lines_before += memchr::memchr_iter(b'\n', &block).count();
                f(self.parse(part, header, block, lines, pushdown)?)?;
            }
            carry = window.slice(kept..);
            if at_end {
                break;
            }
        }
        Ok(true)
    }
    fn read_aggregated(&self, i: usize, agg: &Arc<FusedAgg>) -> Result<Option<PlFrame>> {
        // Declined or failed: the general path gives the answer or the error with context.
        Ok(self.aggregate_partition(i, agg).ok().flatten())
    }
    fn projected_nbytes(&self, i: usize, columns: Option<&[String]>) -> Option<u64> {
        let part = &self.parts[i];
        let bytes = part.end - part.start;
        let frac = columns.map_or(1.0, |c| c.len() as f64 / self.schema.len().max(1) as f64);
        // Parsed columns take about as much as their text; strings a little more.
        Some((bytes as f64 * frac * 1.2) as u64)
    }
    fn describe(&self) -> String {
        format!(
            "READ_CSV {} files ({}{}), {} partitions of <= {} bytes",
            self.files.len(),
            self.files[0].url,
            if self.files.len() > 1 { ", ..." } else { "" },
            self.parts.len(),
            self.options.blocksize
        )
    }
}

/// `bytes` (whole lines) cut into blocks of about `target` bytes, each ending after a newline
/// that is outside quotes (a quote toggles, so `""` inside a quoted field keeps it open).
fn line_blocks(bytes: &[u8], target: usize) -> Vec<std::ops::Range<usize>> {
    let mut blocks = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut pos = 0;
    while bytes.len() - start > target + target / 2 {
        let want = start + target;
        // Quote parity up to `want`.
        quoted ^= memchr::memchr_iter(b'"', &bytes[pos..want]).count() % 2 == 1;
        pos = want;
        let mut cut = None;
        for i in memchr::memchr2_iter(b'"', b'\n', &bytes[pos..]) {
            let at = pos + i;
            if bytes[at] == b'"' {
                quoted = !quoted;
            } else if !quoted {
                cut = Some(at + 1);
                break;
            }
        }
        let Some(cut) = cut else { break };
        // Parity of the bytes scanned past `want` is already in `quoted`.
        pos = cut;
        blocks.push(start..cut);
        start = cut;
    }
    if start < bytes.len() || blocks.is_empty() {
        blocks.push(start..bytes.len());
    }
    blocks
}

/// A CSV error naming the file and the first line that does not parse.
fn csv_error(
    file: &FileRef,
    first_line: usize,
    bytes: &[u8],
    err: polars::prelude::PolarsError,
) -> RaskError {
    let line = find_bad_line(bytes, &err);
    match line {
        Some((offset, text)) => RaskError::msg(format!(
            "{}: line {}: {err} (line: {:?})",
            file.url,
            first_line + offset,
            text
        )),
        None => RaskError::msg(format!("{}: {err}", file.url)),
    }
}

/// The 0-based line (within `bytes`) a polars CSV error is about, found by looking for a
/// line whose field count differs from the first line's or that holds the value the error
/// quotes.
fn find_bad_line(bytes: &[u8], err: &polars::prelude::PolarsError) -> Option<(usize, String)> {
    let msg = err.to_string();
    let quoted = msg.split('`').nth(1).map(str::to_string);
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split('\n');
    let first = lines.next()?;
    let nfields = first.split(',').count();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let odd_count = fields.len() != nfields && !line.contains('"');
        let holds_value = quoted
            .as_deref()
            .is_some_and(|q| !q.is_empty() && fields.iter().any(|f| f.trim_matches('"') == q));
        if odd_count || holds_value {
            let mut shown = line.to_string();
            shown.truncate(200);
            return Some((i, shown));
        }
    }
    None
}

fn empty_projected(schema: &SchemaRef, pushdown: &Pushdown) -> PlFrame {
    let df = PlFrame::empty_with_schema(schema);
    match &pushdown.columns {
        Some(c) => df
            .select(c.iter().map(|s| s.as_str()))
            .unwrap_or_else(|_| PlFrame::empty_with_schema(schema)),
        None => df,
    }
}

// ---------------------------------------------------------------- Parquet

/// Options of [`read_parquet`].
#[derive(Clone, Debug, Default)]
pub struct ParquetOptions {
    /// Partitions hold this many row groups (of one file) each; `None`: one per file.
    pub row_groups_per_partition: Option<usize>,
    pub storage: StoreOptions,
}

impl ParquetOptions {
    pub fn with_row_groups_per_partition(mut self, n: usize) -> Self {
        self.row_groups_per_partition = Some(n);
        self
    }
    pub fn with_storage(mut self, storage: StoreOptions) -> Self {
        self.storage = storage;
        self
    }
}

struct ParquetFile {
    file: FileRef,
    metadata: Arc<polars::io::parquet::metadata::FileMetadata>,
    /// The file's Arrow schema, as the column decoders want it.
    arrow_schema: polars_arrow::datatypes::ArrowSchema,
    /// Min/max per row group of the columns with usable statistics.
    stats: Vec<RowGroupStats>,
}

struct ParquetPart {
    file: usize,
    row_groups: std::ops::Range<usize>,
    rows: u64,
    /// Uncompressed bytes per column (schema order) of these row groups.
    column_bytes: Vec<u64>,
}

struct ParquetSource {
    files: Vec<ParquetFile>,
    parts: Vec<ParquetPart>,
    schema: SchemaRef,
    options: ParquetOptions,
}

/// Reads Parquet files (a path, URL or glob). Footers are read here, once: they give the
/// schema (every file must have the same), the row counts, and the row-group statistics that
/// let a filter skip row groups. Only the columns a query needs are read.
pub fn read_parquet(pattern: &str, options: ParquetOptions) -> Result<DataFrame> {
    if options.row_groups_per_partition == Some(0) {
        return Err(RaskError::invalid_argument(
            "row_groups_per_partition",
            "must be positive",
        ));
    }
    let files = list_files(pattern, &options.storage)?;
    let mut pfiles = Vec::with_capacity(files.len());
    let mut schema: Option<SchemaRef> = None;
    for file in files {
        let metadata = read_footer(&file)?;
        let arrow_schema =
            polars::io::parquet::read::infer_schema(&metadata).map_err(polars_at(&file.url))?;
        let file_schema: SchemaRef = Arc::new(Schema::from_arrow_schema(&arrow_schema));
        match &schema {
            None => schema = Some(file_schema.clone()),
            Some(s) if s != &file_schema => {
                return Err(RaskError::msg(format!(
                    "{}: schema {:?} differs from the first file's {:?} (files' schemas disagree)",
                    file.url, file_schema, s
                )));
            }
            _ => {}
        }
        let stats = stats::row_group_stats(&metadata, &file_schema);
        pfiles.push(ParquetFile {
            file,
            metadata: Arc::new(metadata),
            arrow_schema,
            stats,
        });
    }
    let schema = schema.expect("at least one file");
    let mut parts = Vec::new();
    for (i, f) in pfiles.iter().enumerate() {
        let n = f.metadata.row_groups.len();
        let per = options.row_groups_per_partition.unwrap_or(n.max(1));
        let mut start = 0;
        loop {
            let end = (start + per).min(n);
            parts.push(parquet_part(i, f, &schema, start..end));
            if end >= n {
                break;
            }
            start = end;
        }
    }
    Ok(DataFrame::from_source(Arc::new(ParquetSource {
        files: pfiles,
        parts,
        schema,
        options,
    })))
}

/// The partition of row groups `row_groups` of file `i`.
fn parquet_part(
    i: usize,
    f: &ParquetFile,
    schema: &SchemaRef,
    row_groups: std::ops::Range<usize>,
) -> ParquetPart {
    let rgs = &f.metadata.row_groups[row_groups.clone()];
    let rows = rgs.iter().map(|rg| rg.num_rows() as u64).sum();
    let mut column_bytes = vec![0u64; schema.len()];
    for rg in rgs {
        for (c, name) in schema.iter_names().enumerate() {
            if let Some(cols) = rg.columns_under_root_iter(name) {
                for cc in cols {
                    column_bytes[c] += cc.uncompressed_size().max(0) as u64;
                }
            }
        }
    }
    ParquetPart {
        file: i,
        row_groups,
        rows,
        column_bytes,
    }
}

/// Reads the footer of `file` and checks its schema against the frame's.
fn open_parquet_file(file: FileRef, schema: &SchemaRef) -> Result<ParquetFile> {
    let metadata = read_footer(&file)?;
    let arrow_schema =
        polars::io::parquet::read::infer_schema(&metadata).map_err(polars_at(&file.url))?;
    let file_schema = Schema::from_arrow_schema(&arrow_schema);
    if &file_schema != schema.as_ref() {
        return Err(RaskError::msg(format!(
            "{}: schema {:?} differs from the planned {:?} (the file changed)",
            file.url, file_schema, schema
        )));
    }
    let stats = stats::row_group_stats(&metadata, schema);
    Ok(ParquetFile {
        file,
        metadata: Arc::new(metadata),
        arrow_schema,
        stats,
    })
}

/// Reads the footer with one ranged GET (two when it is larger than the guess).
fn read_footer(file: &FileRef) -> Result<polars::io::parquet::metadata::FileMetadata> {
    let corrupt = |why: &str| RaskError::msg(format!("{}: not a Parquet file ({why})", file.url));
    if file.size < 12 {
        return Err(corrupt("too short"));
    }
    let guess = (64 << 10).min(file.size);
    let tail = file.get_range(file.size - guess..file.size)?;
    if &tail[tail.len() - 4..] != b"PAR1" {
        return Err(corrupt("no PAR1 magic at the end"));
    }
    let len = u32::from_le_bytes(
        tail[tail.len() - 8..tail.len() - 4]
            .try_into()
            .expect("4 bytes"),
    ) as u64;
    if len + 8 > file.size {
        return Err(corrupt("footer length beyond the file"));
    }
    let footer: Vec<u8> = if len + 8 <= guess {
        tail[(guess - len - 8) as usize..].to_vec()
    } else {
        file.get_range(file.size - len - 8..file.size)?.to_vec()
    };
    // The footer alone is a valid input for the metadata reader: it seeks from the end.
    polars_parquet::parquet::read::read_metadata(&mut Cursor::new(footer))
        .map_err(|e| corrupt(&e.to_string()))
}

impl ParquetFile {
    /// Whether row group `rg` may hold rows passing `filters`, by its statistics.
    fn may_match(&self, rg: usize, filters: &[Expr]) -> bool {
        self.stats
            .get(rg)
            .is_none_or(|s| filters.iter().all(|e| stats::may_match(e, s)))
    }
}

impl ParquetSource {
    /// Reads row groups `row_groups` of file `file` (contiguous).
    fn read_row_groups(
        &self,
        file: usize,
        row_groups: std::ops::Range<usize>,
        pushdown: &Pushdown,
    ) -> Result<PlFrame> {
        let f = &self.files[file];
        // Row groups are contiguous: a row slice selects them exactly.
        let offset: usize = f.metadata.row_groups[..row_groups.start]
            .iter()
            .map(|rg| rg.num_rows())
            .sum();
        let mut len: usize = f.metadata.row_groups[row_groups.clone()]
            .iter()
            .map(|rg| rg.num_rows())
            .sum();
        if let Some(limit) = pushdown.limit {
            len = len.min(limit);
        }
        let columns = pushdown.columns.clone();
        fn read<R: polars::io::mmap::MmapBytesReader>(
            reader: ParquetReader<R>,
            columns: Option<Vec<String>>,
            slice: (usize, usize),
            f: &ParquetFile,
        ) -> Result<PlFrame> {
            let mut reader = reader.with_columns(columns).with_slice(Some(slice));
            reader.set_metadata(f.metadata.clone());
            reader.finish().map_err(polars_at(&f.file.url))
        }
        if let Some(path) = f.file.local_path() {
            let file = std::fs::File::open(&path).map_err(|e| RaskError::io(path.display(), e))?;
            return read(ParquetReader::new(file), columns, (offset, len), f);
        }
        // Remote: fetch only the needed column chunks of the needed row groups into a
        // buffer of the file's size. Untouched pages of a zeroed allocation stay unmapped,
        // so only the fetched bytes take memory.
        let wanted = self.column_indices(pushdown.columns.as_deref());
        let mut ranges = Vec::new();
        for rg in &f.metadata.row_groups[row_groups] {
            for &c in &wanted {
                let name = self.schema.get_at_index(c).expect("index").0;
                if let Some(cols) = rg.columns_under_root_iter(name) {
                    for cc in cols {
                        let r = cc.byte_range();
                        ranges.push(r.start..r.end);
                    }
                }
            }
        }
        let chunks = f.file.store.get_ranges("", &ranges)?;
        let mut buf = vec![0u8; f.file.size as usize];
        for (r, bytes) in ranges.iter().zip(chunks) {
            buf[r.start as usize..r.end as usize].copy_from_slice(&bytes);
        }
        // Row-group strategy: it skips the row groups outside the slice, whose bytes were not
        // fetched (the column strategy decodes every row group from the first, and fails on
        // the zeroed bytes of the ones before the slice).
        read(
            ParquetReader::new(Cursor::new(buf))
                .read_parallel(polars::prelude::ParallelStrategy::RowGroups),
            columns,
            (offset, len),
            f,
        )
    }

    fn column_indices(&self, columns: Option<&[String]>) -> Vec<usize> {
        match columns {
            None => (0..self.schema.len()).collect(),
            Some(c) => c
                .iter()
                .filter_map(|n| self.schema.index_of(n.as_str()))
                .collect(),
        }
    }
}

impl Source for ParquetSource {
    fn name(&self) -> &str {
        READ_PARQUET
    }
    fn part_params(&self, i: usize) -> Result<Vec<u8>> {
        let part = &self.parts[i];
        let o = &self.options;
        crate::wire::encode(
            READ_PARQUET,
            &ParquetWire {
                file: WireFile::of(&self.files[part.file].file),
                row_groups: (part.row_groups.start as u64, part.row_groups.end as u64),
                schema: self.schema.clone(),
                row_groups_per_partition: o.row_groups_per_partition.map(|n| n as u64),
                storage: WireStore::of(&o.storage),
            },
        )
    }
    fn tokenize(&self, t: &mut Tokenizer) {
        for f in &self.files {
            f.file.tokenize(t);
        }
        t.write_str(&format!("{:?}", self.options.row_groups_per_partition));
    }
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }
    fn npartitions(&self) -> usize {
        self.parts.len()
    }
    fn prune(&self, filters: &[Expr]) -> Vec<usize> {
        (0..self.parts.len())
            .filter(|&i| {
                let p = &self.parts[i];
                let f = &self.files[p.file];
                p.row_groups.clone().any(|rg| f.may_match(rg, filters))
            })
            .collect()
    }
    fn read(&self, i: usize, pushdown: &Pushdown) -> Result<PlFrame> {
        let part = &self.parts[i];
        self.read_row_groups(part.file, part.row_groups.clone(), pushdown)
    }
    fn read_batches(
        &self,
        i: usize,
        pushdown: &Pushdown,
        f: &mut dyn FnMut(PlFrame) -> Result<()>,
    ) -> Result<bool> {
        let part = &self.parts[i];
        let file = &self.files[part.file];
        for rg in part.row_groups.clone() {
            // A row group whose statistics rule out the filters is not read at all.
            if file.may_match(rg, &pushdown.filters) {
                f(self.read_row_groups(part.file, rg..rg + 1, pushdown)?)?;
            }
        }
        Ok(true)
    }
    fn reads_coded_keys(&self) -> bool {
        true
    }
    fn read_batches_coded(
        &self,
        i: usize,
        pushdown: &Pushdown,
        coded: &[String],
        f: &mut dyn FnMut(PlFrame) -> Result<()>,
    ) -> Result<Option<Vec<Vec<Option<String>>>>> {
        let mut dictionaries: Vec<coded::KeyDictionary> =
            coded.iter().map(|_| Default::default()).collect();
        self.coded_batches(i, pushdown, coded, &mut dictionaries, f)?;
        Ok(Some(
            dictionaries
                .into_iter()
                .map(coded::KeyDictionary::into_values)
                .collect(),
        ))
    }
    fn read_aggregated(&self, i: usize, agg: &Arc<FusedAgg>) -> Result<Option<PlFrame>> {
        // Anything unexpected (a nested column, a page the decoders refuse) means the general
        // path, which reports real errors with their context.
        Ok(self.aggregate_partition(i, agg).ok().flatten())
    }
    fn projected_nbytes(&self, i: usize, columns: Option<&[String]>) -> Option<u64> {
        let p = &self.parts[i];
        Some(
            self.column_indices(columns)
                .iter()
                .map(|&c| p.column_bytes[c])
                .sum(),
        )
    }
    fn num_rows(&self, i: usize) -> Option<u64> {
        Some(self.parts[i].rows)
    }
    fn describe(&self) -> String {
        let rgs: usize = self.files.iter().map(|f| f.metadata.row_groups.len()).sum();
        format!(
            "READ_PARQUET {} files ({}{}), {} row groups in {} partitions",
            self.files.len(),
            self.files[0].file.url,
            if self.files.len() > 1 { ", ..." } else { "" },
            rgs,
            self.parts.len()
        )
    }
}

// ---------------------------------------------------------------- JSON lines

struct NdjsonSource {
    files: Vec<FileRef>,
    schema: SchemaRef,
    storage: StoreOptions,
}

/// Reads JSON-lines files (a path, URL or glob): one partition per file, dtypes inferred from
/// the first rows of the first file.
pub fn read_ndjson(pattern: &str, storage: StoreOptions) -> Result<DataFrame> {
    let files = list_files(pattern, &storage)?;
    let head = files[0].get_range(0..(256 << 10).min(files[0].size))?;
    let cut = if (head.len() as u64) < files[0].size {
        head.iter()
            .rposition(|&c| c == b'\n')
            .map_or(head.len(), |p| p + 1)
    } else {
        head.len()
    };
    let df = JsonReader::new(Cursor::new(head.slice(..cut)))
        .with_json_format(JsonFormat::JsonLines)
        .infer_schema_len(std::num::NonZeroUsize::new(1000))
        .finish()
        .map_err(|e| RaskError::msg(format!("{}: {e}", files[0].url)))?;
    let schema = df.schema().clone();
    Ok(DataFrame::from_source(Arc::new(NdjsonSource {
        files,
        schema,
        storage,
    })))
}

impl Source for NdjsonSource {
    fn name(&self) -> &str {
        READ_NDJSON
    }
    fn part_params(&self, i: usize) -> Result<Vec<u8>> {
        crate::wire::encode(
            READ_NDJSON,
            &NdjsonWire {
                file: WireFile::of(&self.files[i]),
                schema: self.schema.clone(),
                storage: WireStore::of(&self.storage),
            },
        )
    }
    fn tokenize(&self, t: &mut Tokenizer) {
        for f in &self.files {
            f.tokenize(t);
        }
    }
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }
    fn npartitions(&self) -> usize {
        self.files.len()
    }
    fn read(&self, i: usize, pushdown: &Pushdown) -> Result<PlFrame> {
        let f = &self.files[i];
        let bytes = f.get_range(0..f.size)?;
        let mut df = JsonReader::new(Cursor::new(bytes))
            .with_json_format(JsonFormat::JsonLines)
            .with_schema(self.schema.clone())
            .finish()
            .map_err(|e| RaskError::msg(format!("{}: {e}", f.url)))?;
        if let Some(c) = &pushdown.columns {
            df = df
                .select(c.iter().map(|s| s.as_str()))
                .map_err(polars_at(&f.url))?;
        }
        if let Some(n) = pushdown.limit {
            df = df.head(Some(n));
        }
        Ok(df)
    }
    fn projected_nbytes(&self, i: usize, _columns: Option<&[String]>) -> Option<u64> {
        Some(self.files[i].size)
    }
    fn describe(&self) -> String {
        format!(
            "READ_NDJSON {} files ({}{})",
            self.files.len(),
            self.files[0].url,
            if self.files.len() > 1 { ", ..." } else { "" }
        )
    }
}

// ---------------------------------------------------------------- the wire

const READ_CSV: &str = "rask.dataframe.read_csv";
const READ_PARQUET: &str = "rask.dataframe.read_parquet";
const READ_NDJSON: &str = "rask.dataframe.read_ndjson";

/// A file as the planning process saw it: a worker reads the same bytes (size, modification
/// time and ETag travel so the token and any check agree) without listing or stating again.
#[derive(serde::Serialize, serde::Deserialize)]
struct WireFile {
    url: String,
    size: u64,
    modified_ns: i64,
    e_tag: Option<String>,
}

impl WireFile {
    fn of(f: &FileRef) -> WireFile {
        WireFile {
            url: f.url.clone(),
            size: f.size,
            modified_ns: f.modified_ns,
            e_tag: f.e_tag.clone(),
        }
    }

    fn open(self, options: &StoreOptions) -> Result<FileRef> {
        let store = IoStore::open(&self.url, options)?;
        Ok(FileRef {
            url: self.url,
            store,
            size: self.size,
            modified_ns: self.modified_ns,
            e_tag: self.e_tag,
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CsvWire {
    file: WireFile,
    start: u64,
    end: u64,
    #[serde(with = "crate::wire::schema_ref")]
    schema: SchemaRef,
    has_header: bool,
    separator: u8,
    null_values: Vec<String>,
    #[serde(with = "crate::wire::pl")]
    dtypes: Vec<(String, DataType)>,
    #[serde(with = "crate::wire::pl")]
    given_schema: Option<Schema>,
    infer_schema_rows: u64,
    blocksize: u64,
    storage: WireStore,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ParquetWire {
    file: WireFile,
    row_groups: (u64, u64),
    #[serde(with = "crate::wire::schema_ref")]
    schema: SchemaRef,
    row_groups_per_partition: Option<u64>,
    storage: WireStore,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct NdjsonWire {
    file: WireFile,
    #[serde(with = "crate::wire::schema_ref")]
    schema: SchemaRef,
    storage: WireStore,
}

/// The one-partition source a reader's [`Source::part_params`] encoded.
pub(crate) fn decode_source(name: &str, bytes: &[u8]) -> Result<Arc<dyn Source>> {
    match name {
        READ_CSV => {
            let w: CsvWire = crate::wire::decode(name, bytes)?;
            if w.start > w.end || w.end > w.file.size {
                return Err(RaskError::Serialization {
                    what: format!("parameters of op `{name}`"),
                    message: format!(
                        "byte range {}..{} outside a file of {} bytes",
                        w.start, w.end, w.file.size
                    ),
                });
            }
            let options = CsvOptions {
                has_header: w.has_header,
                separator: w.separator,
                null_values: w.null_values,
                dtypes: w.dtypes,
                schema: w.given_schema,
                infer_schema_rows: w.infer_schema_rows as usize,
                blocksize: w.blocksize,
                storage: w.storage.options(),
            };
            let file = w.file.open(&options.storage)?;
            Ok(Arc::new(CsvSource {
                files: vec![file],
                parts: vec![CsvPart {
                    file: 0,
                    start: w.start,
                    end: w.end,
                }],
                schema: w.schema,
                options,
            }))
        }
        READ_PARQUET => {
            let w: ParquetWire = crate::wire::decode(name, bytes)?;
            let options = ParquetOptions {
                row_groups_per_partition: w.row_groups_per_partition.map(|n| n as usize),
                storage: w.storage.options(),
            };
            let file = w.file.open(&options.storage)?;
            let f = open_parquet_file(file, &w.schema)?;
            let (start, end) = (w.row_groups.0 as usize, w.row_groups.1 as usize);
            if start > end || end > f.metadata.row_groups.len() {
                return Err(RaskError::msg(format!(
                    "{}: row groups {start}..{end} of a file with {} (the file changed)",
                    f.file.url,
                    f.metadata.row_groups.len()
                )));
            }
            let part = parquet_part(0, &f, &w.schema, start..end);
            Ok(Arc::new(ParquetSource {
                files: vec![f],
                parts: vec![part],
                schema: w.schema,
                options,
            }))
        }
        READ_NDJSON => {
            let w: NdjsonWire = crate::wire::decode(name, bytes)?;
            let storage = w.storage.options();
            let file = w.file.open(&storage)?;
            Ok(Arc::new(NdjsonSource {
                files: vec![file],
                schema: w.schema,
                storage,
            }))
        }
        other => Err(RaskError::Serialization {
            what: format!("op `{other}`"),
            message: "not a DataFrame reader".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::line_blocks;
    use proptest::prelude::*;

    #[test]
    fn blocks_end_after_newlines_outside_quotes() {
        let text = b"a,b\n\"x\ny\",1\n\"p\"\"\nq\",2\nz,3\n";
        let blocks = line_blocks(text, 4);
        let mut joined = Vec::new();
        for r in &blocks {
            assert_eq!(text[r.end - 1], b'\n', "{blocks:?}");
            joined.extend_from_slice(&text[r.clone()]);
        }
        assert_eq!(joined, text);
        // The quoted newlines never end a block.
        let ends: Vec<usize> = blocks.iter().map(|r| r.end).collect();
        assert!(!ends.contains(&7) && !ends.contains(&17), "{ends:?}");
    }

    proptest! {
        #[test]
        fn blocks_cover_the_bytes_in_order(
            lines in proptest::collection::vec("[a-z\"]{0,12}", 1..60),
            target in 1usize..50,
        ) {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let blocks = line_blocks(text.as_bytes(), target);
            let mut at = 0;
            for r in &blocks {
                prop_assert_eq!(r.start, at);
                at = r.end;
                // Every block but the last ends after a newline with an even count of
                // quotes since the start.
                if r.end < text.len() {
                    prop_assert_eq!(text.as_bytes()[r.end - 1], b'\n');
                    prop_assert_eq!(text[..r.end].matches('"').count() % 2, 0);
                }
            }
            prop_assert_eq!(at, text.len());
        }
    }
}
