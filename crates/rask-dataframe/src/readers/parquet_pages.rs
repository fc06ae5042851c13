//! Page-level decoding of flat Parquet column chunks for the fused groupby kernel.
//!
//! The general decoders build an arrow array per column chunk: every page is decompressed
//! into a fresh buffer, the definition levels are expanded into a validity bitmap and the
//! values into a dense array with a slot per null, and only then does the kernel read them.
//! For the kernel's columns (a dictionary-encoded string key; numbers, PLAIN or
//! dictionary-encoded) this module walks the pages itself: decompression reuses one buffer
//! per column (snappy pages by [`snappy`]), the key becomes its dictionary codes, and the
//! values are read where they lie in the page, run by run of the definition levels,
//! straight into the per-code accumulators of [`crate::fused::CodePartials`].
//!
//! Anything unexpected (another encoding, a nested column, lengths that do not add up)
//! makes these functions return `None`: the caller then decodes the row group the general
//! way, which also reports a corrupt file as an error.

use polars_arrow::datatypes::ArrowDataType;
use polars_buffer::Buffer;
use polars_parquet::parquet::CowBuffer;
use polars_parquet::parquet::compression::{Compression, DecompressionContext};
use polars_parquet::parquet::encoding::Encoding;
use polars_parquet::parquet::encoding::hybrid_rle::{HybridRleChunk, HybridRleDecoder};
use polars_parquet::parquet::metadata::Descriptor;
use polars_parquet::parquet::page::{
    CompressedDataPage, CompressedPage, DataPage, DataPageHeader, Page, split_buffer,
};
use polars_parquet::parquet::read::{PageReader, decompress};
use polars_parquet::parquet::schema::types::PhysicalType;
use polars_parquet::read::ColumnChunkMetadata;
use std::io::Cursor;

use super::snappy;
use crate::fused::{
    CodeLanes, CountOp, FusedKind, LaneOp, MaxF64Op, MaxI64Op, MinF64Op, MinI64Op, PlainValue,
    SumF64Op, SumI64Op, add_mixed_run, add_present_dict_run, add_present_run,
};

/// One column chunk's bytes and metadata.
pub(crate) struct Chunk<'a> {
    pub(crate) bytes: Buffer<u8>,
    pub(crate) meta: &'a ColumnChunkMetadata,
}

/// Scratch kept across row groups: one decompression buffer per column read.
#[derive(Default)]
pub(crate) struct PageScratch {
    buffers: Vec<Vec<u8>>,
    /// Non-null key codes of a page with nulls.
    pending: Vec<u32>,
    /// A dictionary-encoded value page's codes.
    value_codes: Vec<u32>,
}

/// The data pages of one flat column chunk, decompressed one at a time into a reused buffer.
struct PageStream<'s> {
    reader: PageReader,
    compression: Compression,
    descriptor: Descriptor,
    buffer: &'s mut Vec<u8>,
    context: DecompressionContext,
}

impl<'s> PageStream<'s> {
    /// `None` unless the column is flat (no repetition, at most one definition level).
    fn new(
        chunk: Buffer<u8>,
        meta: &ColumnChunkMetadata,
        buffer: &'s mut Vec<u8>,
    ) -> Option<PageStream<'s>> {
        let d = &meta.descriptor().descriptor;
        if d.max_rep_level != 0 || d.max_def_level > 1 {
            return None;
        }
        Some(PageStream {
            reader: PageReader::new(Cursor::new(chunk), meta, vec![], usize::MAX),
            compression: meta.compression(),
            descriptor: d.clone(),
            buffer,
            context: DecompressionContext::Unset,
        })
    }

    /// The dictionary page's buffer and entry count, when the chunk starts with one.
    fn dictionary(&mut self) -> Option<Option<(Vec<u8>, usize)>> {
        let page = match self.reader.read_dict() {
            Ok(Some(page)) => page,
            Ok(None) => return Some(None),
            Err(_) => return None,
        };
        match decompress(
            CompressedPage::Dict(page),
            &mut Vec::new(),
            &mut self.context,
        ) {
            Ok(Page::Dict(d)) => Some(Some((d.buffer.to_vec(), d.num_values))),
            _ => None,
        }
    }

    /// The next data page (`Some(None)` at the end; `None` on anything unexpected).
    fn next_page(&mut self) -> Option<Option<DataPage>> {
        let page = match self.reader.next() {
            None => return Some(None),
            Some(Ok(CompressedPage::Data(page))) => page,
            Some(_) => return None,
        };
        if self.compression == Compression::Snappy {
            return self.decompress_snappy(page).map(Some);
        }
        decompress(CompressedPage::Data(page), self.buffer, &mut self.context)
            .ok()
            .and_then(|p| match p {
                Page::Data(d) => Some(Some(d)),
                Page::Dict(_) => None,
            })
    }

    /// A snappy data page, decompressed by [`snappy`] into the reused buffer (which is
    /// resized, not cleared: decompression writes every byte).
    fn decompress_snappy(&mut self, mut page: CompressedDataPage) -> Option<DataPage> {
        let size = page.uncompressed_size();
        let header = page.header().clone();
        let rows = page.num_values();
        let src: &[u8] = page.slice_mut();
        let buffer = &mut *self.buffer;
        buffer.resize(size, 0);
        match &header {
            DataPageHeader::V1(_) => snappy::decompress(src, buffer)?,
            DataPageHeader::V2(h) => {
                // Levels are stored uncompressed ahead of the values.
                let levels = usize::try_from(h.definition_levels_byte_length).ok()?
                    + usize::try_from(h.repetition_levels_byte_length).ok()?;
                if !h.is_compressed.unwrap_or(true) {
                    if src.len() != size {
                        return None;
                    }
                    buffer.copy_from_slice(src);
                } else {
                    buffer
                        .get_mut(..levels)?
                        .copy_from_slice(src.get(..levels)?);
                    if src.len() > levels {
                        snappy::decompress(&src[levels..], &mut buffer[levels..])?;
                    } else if size != levels {
                        return None;
                    }
                }
            }
        }
        let buffer = CowBuffer::Owned(std::mem::take(buffer));
        Some(DataPage::new(header, buffer, self.descriptor.clone(), rows))
    }

    /// Takes back the decompression buffer of a decoded page for the next one.
    fn recycle(&mut self, mut page: DataPage) {
        if self.compression != Compression::Uncompressed {
            *self.buffer = std::mem::take(page.buffer_mut());
        }
    }
}

/// A run of rows by their definition levels.
enum Run<'a> {
    /// `len` rows, all with a value.
    Present(usize),
    /// `len` rows, all null.
    Null(usize),
    /// Bit-packed levels: bit `i` (least significant first) says whether row `i` has a value.
    Mixed(&'a [u8], usize),
}

/// Calls `f` for each run of the definition levels `def` of `rows` rows (`None` when the
/// column is required: one present run). Returns `None` if the levels are malformed.
fn for_each_run(
    def: Option<&[u8]>,
    rows: usize,
    mut f: impl FnMut(Run<'_>) -> Option<()>,
) -> Option<()> {
    let Some(def) = def else {
        return f(Run::Present(rows));
    };
    let mut seen = 0;
    for chunk in HybridRleDecoder::new(def, 1, rows).into_chunk_iter() {
        let run = match chunk.ok()? {
            HybridRleChunk::Rle(1, len) => Run::Present(len),
            HybridRleChunk::Rle(0, len) => Run::Null(len),
            HybridRleChunk::Rle(..) => return None,
            HybridRleChunk::Bitpacked(bits) => {
                seen += bits.len();
                f(Run::Mixed(bits.as_slice(), bits.len()))?;
                continue;
            }
        };
        seen += match run {
            Run::Present(n) | Run::Null(n) | Run::Mixed(_, n) => n,
        };
        f(run)?;
    }
    (seen == rows).then_some(())
}

/// The definition levels and values of a decompressed data page.
fn page_parts(page: &DataPage, optional: bool) -> Option<(Option<&[u8]>, &[u8])> {
    let parts = split_buffer(page).ok()?;
    if !parts.rep.is_empty() {
        return None;
    }
    Some((optional.then_some(parts.def), parts.values))
}

/// A key column chunk decoded to dictionary codes: the dictionary's entries.
pub(crate) struct KeyCodes {
    entries: KeyEntries,
    /// Whether some row's key is null (code `len()`).
    pub(crate) has_null: bool,
}

enum KeyEntries {
    /// The dictionary page (PLAIN byte arrays) and each entry's byte range in it.
    Strings(Vec<u8>, Vec<(u32, u32)>),
    Ints(Vec<i64>),
}

/// One dictionary entry of a key.
pub(crate) enum KeyEntry<'a> {
    Str(&'a str),
    Int(i64),
}

impl KeyCodes {
    /// Codes: `0..len()` for the entries, `len()` for a null key.
    pub(crate) fn len(&self) -> usize {
        match &self.entries {
            KeyEntries::Strings(_, ranges) => ranges.len(),
            KeyEntries::Ints(values) => values.len(),
        }
    }

    /// Whether the entries are strings (else integers).
    pub(crate) fn is_string(&self) -> bool {
        matches!(self.entries, KeyEntries::Strings(..))
    }

    /// Entry `code`, when it is one (and, for a string, valid UTF-8).
    pub(crate) fn entry(&self, code: usize) -> Option<KeyEntry<'_>> {
        match &self.entries {
            KeyEntries::Strings(dictionary, ranges) => {
                let (start, end) = *ranges.get(code)?;
                let bytes = &dictionary[start as usize..end as usize];
                std::str::from_utf8(bytes).ok().map(KeyEntry::Str)
            }
            KeyEntries::Ints(values) => values.get(code).copied().map(KeyEntry::Int),
        }
    }
}

/// Decodes a dictionary-encoded key chunk of `rows` rows (strings, or integers that polars
/// reads as `dtype`) into `codes` (one per row; the dictionary's length for a null). `None`
/// when the chunk is not of that shape.
pub(crate) fn decode_key_codes(
    Chunk { bytes, meta }: Chunk<'_>,
    dtype: &ArrowDataType,
    rows: usize,
    codes: &mut Vec<u32>,
    scratch: &mut PageScratch,
) -> Option<KeyCodes> {
    let int_width = match (meta.physical_type(), plain_of(meta, dtype)) {
        (PhysicalType::ByteArray, _) => None,
        (_, Some(Plain::I64)) => Some(8),
        (_, Some(Plain::I32)) => Some(4),
        _ => return None,
    };
    if scratch.buffers.is_empty() {
        scratch.buffers.push(Vec::new());
    }
    let buffer = &mut scratch.buffers[0];
    let pending = &mut scratch.pending;
    let optional = meta.descriptor().descriptor.max_def_level == 1;
    let mut pages = PageStream::new(bytes, meta, buffer)?;
    let (dictionary, n) = pages.dictionary()??;
    let entries = match int_width {
        Some(8) => KeyEntries::Ints(plain_entries::<i64>(&dictionary, n)?),
        Some(_) => KeyEntries::Ints(plain_entries::<i32>(&dictionary, n)?),
        None => {
            let mut ranges = Vec::with_capacity(n);
            let mut at = 0usize;
            for _ in 0..n {
                let len = u32::from_le_bytes(dictionary.get(at..at + 4)?.try_into().ok()?) as usize;
                let start = at + 4;
                let end = start.checked_add(len).filter(|&e| e <= dictionary.len())?;
                ranges.push((start as u32, end as u32));
                at = end;
            }
            KeyEntries::Strings(dictionary, ranges)
        }
    };
    let null_code = n as u32;
    let mut has_null = false;
    codes.clear();
    while let Some(page) = pages.next_page()? {
        if !matches!(
            page.encoding(),
            Encoding::RleDictionary | Encoding::PlainDictionary
        ) {
            return None;
        }
        let page_rows = page.num_values();
        let (def, values) = page_parts(&page, optional)?;
        let (&bit_width, packed) = values.split_first()?;
        // Without nulls the codes are the rows' codes; with nulls they are spread over the
        // rows by the definition levels.
        let present = present_rows(def, page_rows)?;
        let in_range = |c: &[u32]| c.iter().copied().max().is_none_or(|c| c < null_code);
        match def {
            None => {
                let before = codes.len();
                decode_codes(packed, bit_width, present, codes)?;
                if !in_range(&codes[before..]) {
                    return None;
                }
            }
            Some(def) => {
                pending.clear();
                decode_codes(packed, bit_width, present, pending)?;
                if !in_range(pending) {
                    return None;
                }
                has_null |= present < page_rows;
                let mut k = 0;
                for_each_run(Some(def), page_rows, |run| {
                    match run {
                        Run::Present(n) => {
                            codes.extend_from_slice(pending.get(k..k + n)?);
                            k += n;
                        }
                        Run::Null(n) => codes.resize(codes.len() + n, null_code),
                        Run::Mixed(bits, n) => {
                            for i in 0..n {
                                if bits[i / 8] >> (i % 8) & 1 == 1 {
                                    codes.push(*pending.get(k)?);
                                    k += 1;
                                } else {
                                    codes.push(null_code);
                                }
                            }
                        }
                    }
                    Some(())
                })?;
            }
        }
        pages.recycle(page);
    }
    if codes.len() != rows {
        return None;
    }
    Some(KeyCodes { entries, has_null })
}

/// The first `n` PLAIN values of a dictionary page, as i64.
fn plain_entries<P: PlainValue>(dictionary: &[u8], n: usize) -> Option<Vec<i64>> {
    let bytes = dictionary.get(..n.checked_mul(P::WIDTH)?)?;
    Some(
        bytes
            .chunks_exact(P::WIDTH)
            .map(|b| P::read(b).to_i64())
            .collect(),
    )
}

/// Set bits among the first `n` of `bits`, `None` if `bits` is shorter than `n` bits.
fn count_bits(bits: &[u8], n: usize) -> Option<usize> {
    let bits = bits.get(..n.div_ceil(8))?;
    let full: usize = bits[..n / 8].iter().map(|b| b.count_ones() as usize).sum();
    let tail = (n / 8 * 8..n)
        .filter(|&i| bits[i / 8] >> (i % 8) & 1 == 1)
        .count();
    Some(full + tail)
}

/// The PLAIN value types the page path reads, by physical type and the arrow type polars
/// gives the column (a logical type such as a date or an unsigned integer is not handled).
#[derive(Clone, Copy)]
enum Plain {
    F64,
    F32,
    I64,
    I32,
}

fn plain_of(meta: &ColumnChunkMetadata, dtype: &ArrowDataType) -> Option<Plain> {
    use ArrowDataType as A;
    match (meta.physical_type(), dtype) {
        (PhysicalType::Double, A::Float64) => Some(Plain::F64),
        (PhysicalType::Float, A::Float32) => Some(Plain::F32),
        (PhysicalType::Int64, A::Int64) => Some(Plain::I64),
        (PhysicalType::Int32, A::Int32 | A::Int16 | A::Int8 | A::UInt8 | A::UInt16) => {
            Some(Plain::I32)
        }
        _ => None,
    }
}

/// Adds one value column chunk of `codes.len()` rows into partial column `lanes` of `kind`.
/// `None` (with `lanes` partly filled: discard them) when the chunk is not PLAIN, flat and
/// of a handled type.
pub(crate) fn add_value_chunk(
    chunk: Chunk<'_>,
    dtype: &ArrowDataType,
    kind: FusedKind,
    codes: &[u32],
    lanes: &mut CodeLanes,
    buffer: &mut Vec<u8>,
    value_codes: &mut Vec<u32>,
) -> Option<()> {
    let plain = plain_of(chunk.meta, dtype)?;
    macro_rules! go {
        ($p:ty) => {
            match kind {
                FusedKind::SumF64 => {
                    add_chunk::<$p, SumF64Op>(chunk, codes, lanes, buffer, value_codes)
                }
                FusedKind::Count => {
                    add_chunk::<$p, CountOp>(chunk, codes, lanes, buffer, value_codes)
                }
                FusedKind::SumI64 => {
                    add_chunk::<$p, SumI64Op>(chunk, codes, lanes, buffer, value_codes)
                }
                FusedKind::MinI64 => {
                    add_chunk::<$p, MinI64Op>(chunk, codes, lanes, buffer, value_codes)
                }
                FusedKind::MaxI64 => {
                    add_chunk::<$p, MaxI64Op>(chunk, codes, lanes, buffer, value_codes)
                }
                FusedKind::MinF64 => {
                    add_chunk::<$p, MinF64Op>(chunk, codes, lanes, buffer, value_codes)
                }
                FusedKind::MaxF64 => {
                    add_chunk::<$p, MaxF64Op>(chunk, codes, lanes, buffer, value_codes)
                }
                FusedKind::Size => Some(()),
            }
        };
    }
    // Float values only feed float kinds and counts (integer kinds take integer columns).
    match (plain, kind) {
        (Plain::F64 | Plain::F32, FusedKind::SumI64 | FusedKind::MinI64 | FusedKind::MaxI64) => {
            None
        }
        (Plain::F64, _) => go!(f64),
        (Plain::F32, _) => go!(f32),
        (Plain::I64, _) => go!(i64),
        (Plain::I32, _) => go!(i32),
    }
}

fn add_chunk<P: PlainValue, O: LaneOp<P>>(
    Chunk { bytes, meta }: Chunk<'_>,
    codes: &[u32],
    lanes: &mut CodeLanes,
    buffer: &mut Vec<u8>,
    value_codes: &mut Vec<u32>,
) -> Option<()> {
    let optional = meta.descriptor().descriptor.max_def_level == 1;
    let mut pages = PageStream::new(bytes, meta, buffer)?;
    // Writers dictionary-encode a column of few distinct values (pyarrow: until the
    // dictionary grows too large, then PLAIN pages follow).
    let dictionary: Option<Vec<P>> = match pages.dictionary()? {
        None => None,
        Some((bytes, n)) => Some(
            bytes
                .get(..n.checked_mul(P::WIDTH)?)?
                .chunks_exact(P::WIDTH)
                .map(P::read)
                .collect(),
        ),
    };
    let mut row = 0usize;
    while let Some(page) = pages.next_page()? {
        let page_rows = page.num_values();
        let (def, values) = page_parts(&page, optional)?;
        match page.encoding() {
            Encoding::Plain => {
                let mut at = 0usize;
                for_each_run(def, page_rows, |run| {
                    match run {
                        Run::Present(n) => {
                            let run_codes = codes.get(row..row + n)?;
                            let bytes = values.get(at..)?;
                            if !add_present_run::<P, O>(lanes, run_codes, row, bytes) {
                                return None;
                            }
                            at += n * P::WIDTH;
                            row += n;
                        }
                        Run::Null(n) => row += n,
                        Run::Mixed(bits, n) => {
                            let run_codes = codes.get(row..row + n)?;
                            let bytes = values.get(at..)?;
                            let used = add_mixed_run::<P, O>(lanes, run_codes, row, bits, |k| {
                                bytes.get(k * P::WIDTH..(k + 1) * P::WIDTH).map(P::read)
                            })?;
                            at += used * P::WIDTH;
                            row += n;
                        }
                    }
                    Some(())
                })?;
            }
            Encoding::RleDictionary | Encoding::PlainDictionary => {
                let dictionary = dictionary.as_deref()?;
                let present = present_rows(def, page_rows)?;
                let (&bit_width, packed) = values.split_first()?;
                value_codes.clear();
                decode_codes(packed, bit_width, present, value_codes)?;
                let mut at = 0usize;
                for_each_run(def, page_rows, |run| {
                    match run {
                        Run::Present(n) => {
                            let run_codes = codes.get(row..row + n)?;
                            let vcodes = value_codes.get(at..at + n)?;
                            if !add_present_dict_run::<P, O>(
                                lanes, run_codes, row, vcodes, dictionary,
                            ) {
                                return None;
                            }
                            at += n;
                            row += n;
                        }
                        Run::Null(n) => row += n,
                        Run::Mixed(bits, n) => {
                            let run_codes = codes.get(row..row + n)?;
                            let vcodes = value_codes.get(at..)?;
                            let used = add_mixed_run::<P, O>(lanes, run_codes, row, bits, |k| {
                                dictionary.get(*vcodes.get(k)? as usize).copied()
                            })?;
                            at += used;
                            row += n;
                        }
                    }
                    Some(())
                })?;
            }
            _ => return None,
        }
        pages.recycle(page);
    }
    (row == codes.len()).then_some(())
}

/// Rows with a value among `rows` by the definition levels `def` (`None`: all).
fn present_rows(def: Option<&[u8]>, rows: usize) -> Option<usize> {
    let mut present = 0;
    for_each_run(def, rows, |run| {
        present += match run {
            Run::Present(n) => n,
            Run::Null(_) => 0,
            Run::Mixed(bits, n) => count_bits(bits, n)?,
        };
        Some(())
    })?;
    Some(present)
}

/// Appends `n` RLE/bit-packed dictionary codes of `bit_width` bits to `out`.
fn decode_codes(packed: &[u8], bit_width: u8, n: usize, out: &mut Vec<u32>) -> Option<()> {
    if bit_width > 32 {
        return None;
    }
    let before = out.len();
    for chunk in HybridRleDecoder::new(packed, bit_width as u32, n).into_chunk_iter() {
        match chunk.ok()? {
            HybridRleChunk::Rle(code, len) => out.resize(out.len() + len, code),
            HybridRleChunk::Bitpacked(decoder) => decoder.collect_into(out),
        }
    }
    (out.len() - before == n).then_some(())
}

/// `n` decompression buffers (one per column read) and the value-code scratch.
pub(crate) fn value_scratch(
    scratch: &mut PageScratch,
    n: usize,
) -> (&mut [Vec<u8>], &mut Vec<u32>) {
    if scratch.buffers.len() < n {
        scratch.buffers.resize_with(n, Vec::new);
    }
    (&mut scratch.buffers[..n], &mut scratch.value_codes)
}
