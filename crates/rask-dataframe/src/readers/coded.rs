//! Parquet batches with string keys as dictionary codes (see [`crate::stream`]).
//!
//! A string key column in Parquet is almost always dictionary-encoded (polars and pyarrow
//! both do it by default), so each row's key is already a small integer into the row group's
//! dictionary. Decoding it to a string per row and then hashing that string in polars'
//! `group_by` is most of the cost of a groupby by such a key. Instead, each row group's
//! dictionary entries (a few hundred) are mapped once to partition-wide codes, every row gets
//! its code as a `UInt32`, and polars groups by the integers. The partition's dictionary turns
//! the codes of the merged partial back into strings at the end.
//!
//! A row group whose key chunk is not dictionary-encoded throughout (a writer that fell back
//! to PLAIN) has its strings decoded by polars and looked up in the same dictionary, so the
//! codes stay consistent across row groups.

use polars::prelude::{Column, DataFrame as PlFrame, PlHashMap, UInt32Chunked};
use rask_error::{RaskError, Result};

use super::ParquetSource;
use super::parquet_pages::{self, Chunk, KeyEntry, PageScratch};
use crate::source::Pushdown;

/// A partition-wide dictionary of one coded key column.
#[derive(Default)]
pub(crate) struct KeyDictionary {
    codes: PlHashMap<String, u32>,
    /// Code -> value (`None`: the null key).
    values: Vec<Option<String>>,
    null: Option<u32>,
}

impl KeyDictionary {
    fn code_of(&mut self, v: Option<&str>) -> u32 {
        match v {
            None => *self.null.get_or_insert_with(|| {
                self.values.push(None);
                self.values.len() as u32 - 1
            }),
            Some(s) => {
                if let Some(&c) = self.codes.get(s) {
                    return c;
                }
                let c = self.values.len() as u32;
                self.values.push(Some(s.to_string()));
                self.codes.insert(s.to_string(), c);
                c
            }
        }
    }

    /// Code -> value (`None`: the null key).
    pub(crate) fn into_values(self) -> Vec<Option<String>> {
        self.values
    }
}

impl ParquetSource {
    /// Reads partition `i` row group by row group like `read_batches`, with each column of
    /// `coded` (string columns) replaced by `UInt32` codes into `dictionaries` (one per coded
    /// column, filled as the row groups come).
    pub(super) fn coded_batches(
        &self,
        i: usize,
        pushdown: &Pushdown,
        coded: &[String],
        dictionaries: &mut [KeyDictionary],
        f: &mut dyn FnMut(PlFrame) -> Result<()>,
    ) -> Result<()> {
        let part = &self.parts[i];
        let file = &self.files[part.file];
        // The other columns are read by polars.
        let rest = Pushdown {
            columns: Some(match &pushdown.columns {
                Some(c) => c.iter().filter(|c| !coded.contains(c)).cloned().collect(),
                None => self
                    .schema
                    .iter_names()
                    .filter(|n| !coded.iter().any(|c| c == n.as_str()))
                    .map(|n| n.to_string())
                    .collect(),
            }),
            filters: pushdown.filters.clone(),
            limit: None,
        };
        let local = match file.file.local_path() {
            Some(path) => {
                Some(std::fs::File::open(&path).map_err(|e| RaskError::io(path.display(), e))?)
            }
            None => None,
        };
        let mut scratch = PageScratch::default();
        let mut local_codes = Vec::new();
        for rg in part.row_groups.clone() {
            if !file.may_match(rg, &pushdown.filters) {
                continue;
            }
            let meta = &file.metadata.row_groups[rg];
            let rows = meta.num_rows();
            let mut batch = self.read_row_groups(part.file, rg..rg + 1, &rest)?;
            for (name, dict) in coded.iter().zip(dictionaries.iter_mut()) {
                let chunk_meta = meta
                    .columns_under_root_iter(name)
                    .and_then(|mut it| it.next())
                    .ok_or_else(|| {
                        RaskError::msg(format!("{}: no column {name}", file.file.url))
                    })?;
                let r = chunk_meta.byte_range();
                let bytes: Vec<u8> = match &local {
                    Some(fh) => {
                        use std::os::unix::fs::FileExt;
                        let mut buf = vec![0u8; (r.end - r.start) as usize];
                        fh.read_exact_at(&mut buf, r.start)
                            .map_err(|e| RaskError::io(&file.file.url, e))?;
                        buf
                    }
                    None => file.file.get_range(r.start..r.end)?.to_vec(),
                };
                let dtype = file
                    .arrow_schema
                    .get(name.as_str())
                    .map(|f| f.dtype.clone())
                    .ok_or_else(|| RaskError::msg(format!("{}: no field {name}", file.file.url)))?;
                let chunk = Chunk {
                    bytes: bytes.into(),
                    meta: chunk_meta,
                };
                let codes: Vec<u32> = match parquet_pages::decode_key_codes(
                    chunk,
                    &dtype,
                    rows,
                    &mut local_codes,
                    &mut scratch,
                )
                .filter(|k| k.is_string())
                {
                    Some(key) => {
                        // Each entry once; a code past the entries is the null key.
                        let mut lut = Vec::with_capacity(key.len() + 1);
                        for c in 0..key.len() {
                            match key.entry(c) {
                                Some(KeyEntry::Str(s)) => lut.push(dict.code_of(Some(s))),
                                _ => {
                                    return Err(RaskError::msg(format!(
                                        "{}: column {name}: a dictionary entry is not UTF-8",
                                        file.file.url
                                    )));
                                }
                            }
                        }
                        let null = dict.code_of(None);
                        lut.push(null);
                        local_codes.iter().map(|&c| lut[c as usize]).collect()
                    }
                    None => {
                        // Not dictionary-encoded throughout: polars decodes the strings.
                        let only = Pushdown {
                            columns: Some(vec![name.clone()]),
                            filters: vec![],
                            limit: None,
                        };
                        let strings = self.read_row_groups(part.file, rg..rg + 1, &only)?;
                        let s = strings
                            .column(name)
                            .and_then(|c| c.str().cloned())
                            .map_err(|e| RaskError::external(e).context(&file.file.url))?;
                        s.iter().map(|v| dict.code_of(v)).collect()
                    }
                };
                if codes.len() != batch.height() && batch.width() > 0 {
                    return Err(RaskError::msg(format!(
                        "{}: row group {rg}: column {name} has {} rows, the others {}",
                        file.file.url,
                        codes.len(),
                        batch.height()
                    )));
                }
                let column = Column::from(polars::prelude::IntoSeries::into_series(
                    UInt32Chunked::from_vec(name.as_str().into(), codes),
                ));
                batch = if batch.width() == 0 {
                    PlFrame::new_infer_height(vec![column]).map_err(RaskError::external)?
                } else {
                    batch.hstack(&[column]).map_err(RaskError::external)?
                };
            }
            f(batch)?;
        }
        Ok(())
    }
}
