//! rask-bag: partitioned sequences of arbitrary items (Dask's `dask.bag`), lowered to rask
//! task graphs and run by the same scheduler as delayed values, arrays and DataFrames.
//!
//! # The main types and how they relate
//!
//! - [`Bag<T>`] is the handle: `npartitions` lazy streams of items of any [`BagData`] type
//!   (log lines, `serde_json::Value` records, tuples, your structs). It is made by
//!   [`Bag::from_sequence`], [`Bag::from_parts`] (`rask::bag::from_delayed`), [`read_text`]
//!   and [`read_json_lines`] / [`read_json_lines_as`] over local paths, globs and bucket
//!   URLs (through `rask-io`; gzip and zstd by extension).
//! - Element-wise operations ([`Bag::map`], [`Bag::filter`], [`Bag::flat_map`],
//!   [`Bag::pluck`], [`Bag::starmap`], [`Bag::map_partitions`], [`Bag::join`] with a small
//!   sequence, [`Bag::zip`]) add no tasks: they wrap each partition's stream, so a chain
//!   runs item by item inside the one task that consumes the partition, with no list in
//!   between (Dask's bags fuse the same way).
//! - Reductions are trees (as for arrays and frames): a per-partition step fused into the
//!   read, combines of [`SPLIT_EVERY`] partials, a finalize. Those giving one value
//!   ([`Bag::count`], [`Bag::sum`], [`Bag::min`], [`Bag::mean`], [`Bag::std`], [`Bag::fold`],
//!   [`Bag::reduction`], [`Bag::any`], [`Bag::take`], ...) return an [`Item<R>`]; those giving
//!   many ([`Bag::frequencies`], [`Bag::topk`], [`Bag::distinct`], [`Bag::foldby`]) return a
//!   one-partition `Bag`.
//! - [`Bag::groupby`] is a hash shuffle (costly, as in Dask: prefer `foldby`);
//!   [`Bag::repartition`] chains or splits partitions.
//! - Out: computing a `Bag` gives a `Vec<T>` in partition order; [`Bag::to_text_files`]
//!   writes (optionally compressed) text files; [`Bag::to_dataframe`] makes a rask
//!   `DataFrame` from records through serde.
//!
//! Both `Bag` and `Item` are [`rask_graph::Collection`]s: `rask::compute`, `.compute()` from
//! `rask::prelude::ComputeExt`, and tuples of collections computed together all work.
//! Bags carry user closures, so their tasks stay in this process: on a cluster they are
//! refused at submit with an error naming the op (as `delayed` closures are).
//!
//! # Example: word count
//!
//! ```
//! use rask::prelude::*;
//! use rask::bag::{Bag, TextOptions, read_text};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("a.txt"), "the cat\nthe dog\n")?;
//! std::fs::write(dir.path().join("b.txt"), "a dog and the bird\n")?;
//!
//! let lines = read_text(&format!("{}/*.txt", dir.path().display()), TextOptions::default())?;
//! let top = lines
//!     .flat_map(|line: String| {
//!         line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>()
//!     })
//!     .frequencies()
//!     .topk(2, |(word, n)| (*n, std::cmp::Reverse(word.clone())));
//! assert_eq!(top.compute()?, [("the".to_string(), 3), ("dog".to_string(), 2)]);
//!
//! let numbers = Bag::from_sequence(1..=10i64, 3)?;
//! let (n, total) = (numbers.count(), numbers.filter(|x| x % 2 == 0).sum()).compute()?;
//! assert_eq!((n, total), (10, 30));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bag;
mod data;
mod frame;
mod reduce;
mod shuffle;
mod text;

pub use bag::{Bag, Items};
pub use data::BagData;
/// Endpoint and credentials for bucket URLs (`rask-io`'s), as the options take them.
pub use rask_io::StoreOptions;
pub use reduce::{Item, SPLIT_EVERY};
pub use text::{
    Compression, JsonLines, JsonOptions, OnMalformed, TextOptions, WriteOptions, read_json_lines,
    read_json_lines_as, read_text,
};
