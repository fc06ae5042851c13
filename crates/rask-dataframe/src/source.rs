//! Sources: where a frame's partitions come from before any step runs.
//!
//! A [`Source`] knows its schema and partitions when the frame is built (files are listed and
//! Parquet footers read then, once), and reads one partition given a [`Pushdown`]: the columns
//! the query needs, the filters it may test against statistics, and a row limit.

use std::fmt;
use std::sync::Arc;

use polars::prelude::{DataFrame as PlFrame, Expr, SchemaRef};
use rask_error::Result;
use rask_graph::Tokenizer;

use crate::fused::FusedAgg;

/// What a query asks of a reader.
#[derive(Clone, Debug, Default)]
pub struct Pushdown {
    /// The columns to read, in schema order; `None` for all.
    pub columns: Option<Vec<String>>,
    /// Filters every returned row must pass (the reader may skip data that cannot match;
    /// the filters still run afterwards, so a reader may also ignore them).
    pub filters: Vec<Expr>,
    /// At most this many rows are needed from this partition.
    pub limit: Option<usize>,
}

impl Pushdown {
    pub(crate) fn tokenize(&self, t: &mut Tokenizer) {
        t.write_str(&format!("{:?}", self.columns));
        for f in &self.filters {
            t.write_str(&f.to_string());
        }
        t.write_str(&format!("{:?}", self.limit));
    }
}

/// `schema` restricted to the columns `pushdown` reads.
pub(crate) fn projected_schema(schema: &SchemaRef, pushdown: &Pushdown) -> SchemaRef {
    match &pushdown.columns {
        Some(c) => Arc::new(
            schema
                .iter()
                .filter(|(n, _)| c.iter().any(|x| x == n.as_str()))
                .map(|(n, d)| (n.clone(), d.clone()))
                .collect(),
        ),
        None => schema.clone(),
    }
}

/// A partitioned input.
pub trait Source: Send + Sync + 'static {
    /// Op name of the reading tasks (`rask.dataframe.read_csv`).
    fn name(&self) -> &str;
    /// Hashes what identifies the data: files, their sizes and mtimes, options.
    fn tokenize(&self, t: &mut Tokenizer);
    fn schema(&self) -> &SchemaRef;
    fn npartitions(&self) -> usize;
    /// The partitions that may hold rows passing `filters` (all, unless statistics say
    /// otherwise).
    fn prune(&self, _filters: &[Expr]) -> Vec<usize> {
        (0..self.npartitions()).collect()
    }
    /// Reads partition `i`.
    fn read(&self, i: usize, pushdown: &Pushdown) -> Result<PlFrame>;
    /// Reads partition `i` in batches of bounded size (Parquet row groups, blocks of CSV
    /// lines), in order, calling `f` on each; the batches together are what [`Source::read`]
    /// returns. `false`: this source has no unit finer than the partition, and `f` was not
    /// called (see [`crate::stream`]).
    fn read_batches(
        &self,
        _i: usize,
        _pushdown: &Pushdown,
        _f: &mut dyn FnMut(PlFrame) -> Result<()>,
    ) -> Result<bool> {
        Ok(false)
    }
    /// Like [`Source::read_batches`], with each string column of `coded` replaced by
    /// `UInt32` codes into a dictionary of the partition, returned at the end (per coded
    /// column, code -> value, `None` for the null key). `None`: not supported (`f` was not
    /// called). See [`crate::stream`].
    #[doc(hidden)]
    fn reads_coded_keys(&self) -> bool {
        false
    }
    /// See [`Source::reads_coded_keys`]: whether [`Source::read_batches_coded`] is supported.
    #[doc(hidden)]
    fn read_batches_coded(
        &self,
        _i: usize,
        _pushdown: &Pushdown,
        _coded: &[String],
        _f: &mut dyn FnMut(PlFrame) -> Result<()>,
    ) -> Result<Option<Vec<Vec<Option<String>>>>> {
        Ok(None)
    }
    /// Projected in-memory bytes of partition `i` with these columns, when known.
    fn projected_nbytes(&self, _i: usize, _columns: Option<&[String]>) -> Option<u64> {
        None
    }
    /// Rows in partition `i`, when known without reading it (Parquet footers).
    fn num_rows(&self, _i: usize) -> Option<u64> {
        None
    }
    /// Reads partition `i` and computes a groupby's partial over it in one pass, when the
    /// source has a faster way than reading then grouping (see [`crate::fused`]). `None`:
    /// take the general path (which also reports any error in the data).
    #[doc(hidden)]
    fn read_aggregated(&self, _i: usize, _agg: &Arc<FusedAgg>) -> Result<Option<PlFrame>> {
        Ok(None)
    }
    /// One line per partition group for `explain()`.
    fn describe(&self) -> String;
    /// Partition `i` as a source of its own, serialized for another process (decoded by
    /// `decode_source` under [`Source::name`]). The default: this source stays local.
    #[doc(hidden)]
    fn part_params(&self, _i: usize) -> Result<Vec<u8>> {
        Err(rask_error::RaskError::Serialization {
            what: format!("op `{}`", self.name()),
            message: "this source cannot be sent to another process".into(),
        })
    }
}

/// The one-partition source [`Source::part_params`] encoded, by source name.
pub(crate) fn decode_source(name: &str, bytes: &[u8]) -> Result<Arc<dyn Source>> {
    match name {
        MEMORY_SOURCE => {
            let p: MemoryPart = crate::wire::decode(name, bytes)?;
            let schema = Arc::new(p.frame.schema().as_ref().clone());
            Ok(Arc::new(MemorySource {
                partitions: vec![p.frame],
                schema,
                token: rask_graph::Token::fresh(),
            }))
        }
        _ => crate::readers::decode_source(name, bytes),
    }
}

pub(crate) const MEMORY_SOURCE: &str = "rask.dataframe.from_polars";

#[derive(serde::Serialize, serde::Deserialize)]
struct MemoryPart {
    #[serde(with = "crate::wire::frame")]
    frame: PlFrame,
}

impl fmt::Debug for dyn Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.describe())
    }
}

/// In-memory partitions (from a polars frame or a list of them).
pub(crate) struct MemorySource {
    pub(crate) partitions: Vec<PlFrame>,
    pub(crate) schema: SchemaRef,
    pub(crate) token: rask_graph::Token,
}

impl Source for MemorySource {
    fn name(&self) -> &str {
        MEMORY_SOURCE
    }
    fn part_params(&self, i: usize) -> Result<Vec<u8>> {
        // The data itself travels: an in-memory frame has no other home.
        crate::wire::encode(
            MEMORY_SOURCE,
            &MemoryPart {
                frame: self.partitions[i].clone(),
            },
        )
    }
    fn tokenize(&self, t: &mut Tokenizer) {
        t.write_token(self.token);
    }
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }
    fn npartitions(&self) -> usize {
        self.partitions.len()
    }
    fn read(&self, i: usize, pushdown: &Pushdown) -> Result<PlFrame> {
        let mut df = self.partitions[i].clone();
        if let Some(cols) = &pushdown.columns {
            df = df
                .select(cols.iter().map(|c| c.as_str()))
                .map_err(crate::polars_err("from_polars"))?;
        }
        if let Some(n) = pushdown.limit {
            df = df.head(Some(n));
        }
        Ok(df)
    }
    fn projected_nbytes(&self, i: usize, _columns: Option<&[String]>) -> Option<u64> {
        Some(self.partitions[i].estimated_size() as u64)
    }
    fn num_rows(&self, i: usize) -> Option<u64> {
        Some(self.partitions[i].height() as u64)
    }
    fn describe(&self) -> String {
        let rows: usize = self.partitions.iter().map(|p| p.height()).sum();
        format!(
            "FROM_POLARS {} partitions, {rows} rows",
            self.partitions.len()
        )
    }
}
