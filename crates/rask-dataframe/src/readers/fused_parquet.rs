//! The fused groupby kernel of Parquet partitions (see [`crate::fused`]).

use std::io::Cursor;
use std::sync::Arc;

use polars::prelude::{Column, DataFrame as PlFrame, DataType};
use rask_error::{RaskError, Result};

use super::ParquetSource;
use super::parquet_pages::{self, Chunk, KeyEntry, PageScratch};
use crate::fused::{self, Accumulator, CodePartials, FusedAgg, FusedKind, Prepared, Values};

impl ParquetSource {
    /// The fused read-and-aggregate of partition `i` (see [`crate::fused`]): row group by
    /// row group, only the key and value column chunks are fetched and decoded; a
    /// dictionary-encoded key (string or integer) is grouped by its dictionary codes, by
    /// the page path when the layout allows (see [`parquet_pages`]).
    pub(super) fn aggregate_partition(
        &self,
        i: usize,
        agg: &Arc<FusedAgg>,
    ) -> Result<Option<PlFrame>> {
        let part = &self.parts[i];
        let f = &self.files[part.file];
        let Some(key_dtype) = self.schema.get(agg.key.as_str()) else {
            return Ok(None);
        };
        let columns = agg.columns();
        // Local column chunks are read with positioned reads (a memory map measured no
        // faster, and its resident pages would count against the process).
        let local = match f.file.local_path() {
            Some(path) => {
                Some(std::fs::File::open(&path).map_err(|e| RaskError::io(path.display(), e))?)
            }
            None => None,
        };
        let mut acc = Accumulator::new(agg.clone());
        let (mut gids, mut codes) = (Vec::new(), Vec::new());
        let mut scratch = PageScratch::default();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        for rg in &f.metadata.row_groups[part.row_groups.clone()] {
            let mut metas = Vec::with_capacity(columns.len());
            for name in &columns {
                let mut it = match rg.columns_under_root_iter(name) {
                    Some(it) => it,
                    None => return Ok(None),
                };
                let (Some(meta), None) = (it.next(), it.next()) else {
                    return Ok(None);
                };
                metas.push(meta);
            }
            let ranges: Vec<std::ops::Range<u64>> = metas.iter().map(|m| m.byte_range()).collect();
            let chunks: Vec<polars_buffer::Buffer<u8>> = match &local {
                Some(file) => {
                    use std::os::unix::fs::FileExt;
                    let mut out = Vec::with_capacity(ranges.len());
                    for r in &ranges {
                        // The previous row group's buffers, when no page still holds them:
                        // no fresh pages to fault in and zero per column chunk.
                        let mut buf = spare.pop().unwrap_or_default();
                        buf.resize((r.end - r.start) as usize, 0);
                        file.read_exact_at(&mut buf, r.start)
                            .map_err(|e| RaskError::io(&f.file.url, e))?;
                        out.push(buf.into());
                    }
                    out
                }
                None => f
                    .file
                    .store
                    .get_ranges("", &ranges)?
                    .into_iter()
                    .map(|b| b.to_vec().into())
                    .collect(),
            };
            let arrow_field = |name: &str| f.arrow_schema.get(name).cloned();
            let rows = rg.num_rows();
            // First the page path (a dictionary-encoded key; PLAIN or dictionary-encoded
            // values); anything else about the row group makes it decline, and the decoders
            // below take over.
            if metas[0].dictionary_page_offset().is_some()
                && add_by_pages(
                    &mut acc,
                    &columns,
                    &metas,
                    &chunks,
                    &arrow_field,
                    rows,
                    &mut codes,
                    &mut scratch,
                )
                .is_some()
            {
                // Reversed, so that pop() hands each column its own (same-sized) buffer.
                spare.extend(
                    chunks
                        .into_iter()
                        .rev()
                        .filter_map(|c| c.into_mut().right()),
                );
                continue;
            }
            // The values, one decoded column per input column.
            let mut decoded: Vec<Option<Column>> = vec![None; columns.len()];
            let mut prepared = Vec::with_capacity(agg.cols.len());
            for c in &agg.cols {
                let Some(name) = &c.column else {
                    prepared.push(Prepared::None);
                    continue;
                };
                let j = columns.iter().position(|n| n == name).expect("listed");
                if decoded[j].is_none() {
                    let field = arrow_field(name).ok_or_else(|| fused::internal("value field"))?;
                    decoded[j] = Some(decode_column(metas[j], chunks[j].clone(), field)?);
                }
                prepared.push(Prepared::from_column(
                    decoded[j].as_ref().expect("set"),
                    c.kind,
                )?);
            }
            if prepared.iter().any(|p| p.len().is_some_and(|n| n != rows)) {
                return Ok(None);
            }
            let values: Vec<Values<'_>> = prepared.iter().map(Prepared::values).collect();
            // The key: by dictionary codes when it is a dictionary-encoded string.
            let key_field = arrow_field(&agg.key).ok_or_else(|| fused::internal("key field"))?;
            let dictionary =
                if key_dtype == &DataType::String && metas[0].dictionary_page_offset().is_some() {
                    decode_dictionary(metas[0], chunks[0].clone(), key_field.clone())
                } else {
                    None
                };
            match dictionary {
                Some(array) if array.len() == rows => {
                    add_by_codes(&mut acc, &array, &values, &mut codes);
                }
                _ => {
                    gids.clear();
                    let key = decode_column(metas[0], chunks[0].clone(), key_field)?;
                    group_by_values(&key, &mut acc, &mut gids)?;
                    if gids.len() != rows {
                        return Ok(None);
                    }
                    acc.add(&gids, &values);
                }
            }
        }
        acc.finish(key_dtype).map(Some)
    }
}

/// Adds a row group by walking its pages (see [`parquet_pages`]): the key's dictionary codes,
/// then each value column's runs straight into per-code partials. `None` when the row group
/// is not of that shape; nothing has been added then.
#[allow(clippy::too_many_arguments)]
fn add_by_pages(
    acc: &mut Accumulator,
    columns: &[String],
    metas: &[&polars_parquet::read::ColumnChunkMetadata],
    chunks: &[polars_buffer::Buffer<u8>],
    arrow_field: &dyn Fn(&str) -> Option<polars_arrow::datatypes::Field>,
    rows: usize,
    codes: &mut Vec<u32>,
    scratch: &mut PageScratch,
) -> Option<()> {
    let key_chunk = Chunk {
        bytes: chunks[0].clone(),
        meta: metas[0],
    };
    let key_field = arrow_field(&columns[0])?;
    let key = parquet_pages::decode_key_codes(key_chunk, &key_field.dtype, rows, codes, scratch)?;
    let null_code = key.len();
    let mut coded = CodePartials::new(acc.agg(), codes, null_code + 1);
    let agg = acc.agg().clone();
    let (buffers, value_codes) = parquet_pages::value_scratch(scratch, columns.len());
    for (c, col) in agg.cols.iter().enumerate() {
        if col.counts_of.is_some() || col.kind == FusedKind::Size {
            continue;
        }
        let name = col.column.as_ref()?;
        let j = columns.iter().position(|n| n == name)?;
        let field = arrow_field(name)?;
        let chunk = Chunk {
            bytes: chunks[j].clone(),
            meta: metas[j],
        };
        parquet_pages::add_value_chunk(
            chunk,
            &field.dtype,
            col.kind,
            codes,
            coded.lanes(c),
            &mut buffers[j],
            value_codes,
        )?;
    }
    coded.settle(codes, |code| (code == null_code).then_some(key.has_null));
    // Every key that occurs must be an entry (a valid string) before anything is folded in.
    if (0..null_code).any(|code| coded.present(code) && key.entry(code).is_none()) {
        return None;
    }
    let string_key = key.is_string();
    acc.add_code_partials(&coded, |groups, code| match key.entry(code) {
        Some(KeyEntry::Str(s)) => groups.of_str(s.as_bytes()),
        Some(KeyEntry::Int(v)) => groups.of_int(v),
        None => groups.of_null(string_key),
    });
    #[cfg(test)]
    PAGE_PATH_ROW_GROUPS.with(|n| n.set(n.get() + 1));
    Some(())
}

#[cfg(test)]
thread_local! {
    /// Row groups the page path added on this thread: tests check it was taken.
    pub(crate) static PAGE_PATH_ROW_GROUPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Decodes one column chunk into a polars column.
fn decode_column(
    meta: &polars_parquet::read::ColumnChunkMetadata,
    chunk: polars_buffer::Buffer<u8>,
    field: polars_arrow::datatypes::Field,
) -> Result<Column> {
    use polars_parquet::read::{BasicDecompressor, PageReader, column_iter_to_arrays};
    let name = field.name.clone();
    let pages = PageReader::new(Cursor::new(chunk), meta, vec![], usize::MAX);
    let (arrays, _) = column_iter_to_arrays(
        vec![BasicDecompressor::new(pages, vec![])],
        vec![&meta.descriptor().descriptor.primitive_type],
        field,
        None,
    )
    .map_err(|e| fused::internal(&e.to_string()))?;
    polars::prelude::Series::from_arrow_chunks(name, arrays)
        .map(Column::from)
        .map_err(|e| fused::internal(&e.to_string()))
}

/// A string column chunk decoded to its dictionary codes, when every page is
/// dictionary-encoded (`None` otherwise: decode the strings instead).
fn decode_dictionary(
    meta: &polars_parquet::read::ColumnChunkMetadata,
    chunk: polars_buffer::Buffer<u8>,
    field: polars_arrow::datatypes::Field,
) -> Option<polars_arrow::array::DictionaryArray<u32>> {
    use polars_arrow::array::DictionaryArray;
    use polars_arrow::datatypes::{ArrowDataType, DTYPE_CATEGORICAL_NEW, IntegerType, Metadata};
    use polars_parquet::read::{BasicDecompressor, PageReader, column_iter_to_arrays};
    // The categorical decoder keeps the codes; it is chosen by this metadata marker and
    // refuses (with an error) any page that is not dictionary-encoded. It assumes a
    // dictionary page exists (the caller checked the chunk has one); a panic on a file that
    // breaks that assumption is caught and means "decode the strings".
    let mut md = Metadata::new();
    md.insert(DTYPE_CATEGORICAL_NEW.into(), "".into());
    let field = polars_arrow::datatypes::Field::new(
        field.name,
        ArrowDataType::Dictionary(
            IntegerType::UInt32,
            Box::new(ArrowDataType::Utf8View),
            false,
        ),
        true,
    )
    .with_metadata(md);
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pages = PageReader::new(Cursor::new(chunk), meta, vec![], usize::MAX);
        column_iter_to_arrays(
            vec![BasicDecompressor::new(pages, vec![])],
            vec![&meta.descriptor().descriptor.primitive_type],
            field,
            None,
        )
    }));
    let Ok(Ok((mut arrays, _))) = decoded else {
        return None;
    };
    if arrays.len() != 1 {
        return None;
    }
    arrays
        .pop()
        .and_then(|a| a.as_any().downcast_ref::<DictionaryArray<u32>>().cloned())
}

/// Aggregates a row group by its key's dictionary codes: no per-row string, no per-row hash;
/// each dictionary entry that occurs is looked up once. Null keys get the extra code
/// `dict.len()`.
fn add_by_codes(
    acc: &mut Accumulator,
    array: &polars_arrow::array::DictionaryArray<u32>,
    values: &[Values<'_>],
    scratch: &mut Vec<u32>,
) {
    use polars_arrow::array::Utf8ViewArray;
    let Some(dict) = array.values().as_any().downcast_ref::<Utf8ViewArray>() else {
        unreachable!("the categorical decoder yields Utf8View dictionaries");
    };
    let null_code = dict.len() as u32;
    let keys = array.keys();
    let codes: &[u32] = match keys.validity().filter(|v| v.unset_bits() > 0) {
        None => keys.values().as_slice(),
        Some(valid) => {
            scratch.clear();
            scratch.extend(
                keys.values()
                    .iter()
                    .zip(valid.iter())
                    .map(|(&c, ok)| if ok { c } else { null_code }),
            );
            scratch
        }
    };
    acc.add_coded(codes, dict.len() + 1, values, |groups, code| {
        if code == dict.len() {
            return groups.of_null(true);
        }
        match dict.get(code) {
            Some(s) => groups.of_str(s.as_bytes()),
            None => groups.of_null(true),
        }
    });
}

/// Group ids of a decoded key column (strings or integers).
fn group_by_values(key: &Column, acc: &mut Accumulator, gids: &mut Vec<u32>) -> Result<()> {
    let groups = &mut acc.groups;
    if key.dtype() == &DataType::String {
        let ca = key.str().map_err(crate::polars_err("fused key"))?;
        for v in ca.iter() {
            gids.push(match v {
                Some(s) => groups.of_str(s.as_bytes()),
                None => groups.of_null(true),
            });
        }
    } else {
        let c = key
            .cast(&DataType::Int64)
            .map_err(crate::polars_err("fused key"))?;
        for v in c.i64().map_err(crate::polars_err("fused key"))?.iter() {
            gids.push(match v {
                Some(x) => groups.of_int(x),
                None => groups.of_null(false),
            });
        }
    }
    Ok(())
}
