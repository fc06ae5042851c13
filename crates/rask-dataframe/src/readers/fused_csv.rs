//! The fused groupby kernel of CSV partitions (see [`crate::fused`]): the byte range is read
//! in blocks into one reused buffer, separators and newlines are found eight bytes at a time,
//! and only the key and value fields are parsed.

use std::sync::Arc;

use polars::prelude::{
    Column, DataFrame as PlFrame, DataType, Float64Chunked, Int64Chunked, IntoColumn, PlSmallStr,
    Schema,
};
use rask_error::{RaskError, Result};

use super::{CsvOptions, CsvSource};
use crate::fused::{Accumulator, FusedAgg, Prepared, Values};

/// Bytes read per block.
const BLOCK: usize = 8 << 20;
/// Lines per batch handed to the accumulator.
const BATCH: usize = 1 << 16;

impl CsvSource {
    /// The fused read-and-aggregate of partition `i`. `Ok(None)` when the bytes hold anything
    /// the general reader treats specially (quotes, an empty line, a ragged row, a value that
    /// does not parse, invalid UTF-8 in a key): that reader then gives the result or the
    /// error naming the line.
    pub(super) fn aggregate_partition(
        &self,
        i: usize,
        agg: &Arc<FusedAgg>,
    ) -> Result<Option<PlFrame>> {
        let part = &self.parts[i];
        let file = &self.files[part.file];
        let (begin, stop) = self.line_range(part)?;
        let Some(mut kernel) = CsvKernel::new(&self.schema, &self.options, agg) else {
            return Ok(None);
        };
        let local = match file.local_path() {
            Some(path) => {
                Some(std::fs::File::open(&path).map_err(|e| RaskError::io(path.display(), e))?)
            }
            None => None,
        };
        let mut skip_header = self.options.has_header && begin == 0;
        let mut buf: Vec<u8> = Vec::new();
        let mut pos = begin;
        while pos < stop {
            let want = ((stop - pos) as usize).min(BLOCK);
            let kept = buf.len();
            match &local {
                Some(f) => {
                    use std::os::unix::fs::FileExt;
                    buf.resize(kept + want, 0);
                    f.read_exact_at(&mut buf[kept..], pos)
                        .map_err(|e| RaskError::io(&file.url, e))?;
                }
                None => buf.extend_from_slice(&file.get_range(pos..pos + want as u64)?),
            }
            pos += want as u64;
            // Whole lines only; the rest waits for the next block (the range ends on a line).
            let upto = if pos >= stop {
                buf.len()
            } else {
                match memchr::memrchr(b'\n', &buf) {
                    Some(p) => p + 1,
                    None => continue,
                }
            };
            let mut lines = &buf[..upto];
            if skip_header {
                skip_header = false;
                lines = match memchr::memchr(b'\n', lines) {
                    Some(p) => &lines[p + 1..],
                    None => &[],
                };
            }
            if kernel.feed(lines).is_none() {
                return Ok(None);
            }
            buf.drain(..upto);
        }
        kernel.finish().map(Some)
    }
}

/// The field `bytes[start..end]` as the kernel reads it: a field starting with a quote (when
/// the block has any) is unquoted (see [`unquote`]) and counted in `quoted_fields`.
#[inline]
fn field_range(
    bytes: &[u8],
    start: usize,
    end: usize,
    role: FieldRole,
    quotes: usize,
    quoted_fields: &mut usize,
) -> Option<(usize, usize)> {
    if quotes > 0 && end > start && bytes[start] == b'"' {
        *quoted_fields += 1;
        unquote(bytes, start, end, role)
    } else {
        Some((start, end))
    }
}

/// Records a field's range where its role says.
#[inline]
fn place(
    role: FieldRole,
    range: (usize, usize),
    key_field: &mut (usize, usize),
    value_fields: &mut [(usize, usize)],
) {
    match role {
        FieldRole::Key => *key_field = range,
        FieldRole::Value(v) => value_fields[v] = range,
        FieldRole::Skip => {}
    }
}

/// The inside of the quoted field `bytes[start..end]` (which starts with a quote), when the
/// kernel reads it as the general reader would: closed by a quote at its end, no quote
/// inside, and, for the key, not empty (a quoted empty string is a value, an empty field a
/// null). A quoted value field declines (the general reader decides how to parse it).
#[inline]
fn unquote(bytes: &[u8], start: usize, end: usize, role: FieldRole) -> Option<(usize, usize)> {
    if end - start < 2 || bytes[end - 1] != b'"' {
        return None;
    }
    let inner = &bytes[start + 1..end - 1];
    if memchr::memchr(b'"', inner).is_some() {
        return None;
    }
    match role {
        FieldRole::Value(_) => None,
        FieldRole::Key if inner.is_empty() => None,
        _ => Some((start + 1, end - 1)),
    }
}

/// What a CSV field is to the kernel.
#[derive(Clone, Copy, PartialEq)]
enum FieldRole {
    Skip,
    Key,
    /// Index into the parsed value columns.
    Value(usize),
}

/// The per-partition state: roles of the fields, the batch being parsed, the accumulator.
struct CsvKernel<'a> {
    sep: u8,
    ncols: usize,
    roles: Vec<FieldRole>,
    /// The input columns (key first), as `FusedAgg::columns`.
    columns: Vec<String>,
    key_dtype: DataType,
    value_dtypes: Vec<DataType>,
    null_values: &'a [String],
    acc: Accumulator,
    gids: Vec<u32>,
    floats: Vec<Vec<f64>>,
    ints: Vec<Vec<i64>>,
    valid: Vec<Vec<bool>>,
}

/// High bit of each byte of `x` that is zero.
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

impl<'a> CsvKernel<'a> {
    fn new(schema: &Schema, options: &'a CsvOptions, agg: &Arc<FusedAgg>) -> Option<Self> {
        let sep = options.separator;
        if matches!(sep, b'\n' | b'\r' | b'"') {
            return None;
        }
        let key_dtype = schema.get(agg.key.as_str())?.clone();
        let columns = agg.columns();
        let mut roles = vec![FieldRole::Skip; schema.len()];
        let mut value_dtypes = Vec::new();
        for (j, name) in columns.iter().enumerate() {
            let idx = schema.index_of(name.as_str())?;
            roles[idx] = if j == 0 {
                FieldRole::Key
            } else {
                value_dtypes.push(schema.get(name.as_str())?.clone());
                FieldRole::Value(j - 1)
            };
        }
        let n = value_dtypes.len();
        Some(CsvKernel {
            sep,
            ncols: schema.len(),
            roles,
            columns,
            key_dtype,
            value_dtypes,
            null_values: &options.null_values,
            acc: Accumulator::new(agg.clone()),
            gids: Vec::with_capacity(BATCH),
            floats: vec![Vec::with_capacity(BATCH); n],
            ints: vec![Vec::with_capacity(BATCH); n],
            valid: vec![Vec::with_capacity(BATCH); n],
        })
    }

    #[inline]
    fn is_null(&self, field: &[u8]) -> bool {
        field.is_empty() || self.null_values.iter().any(|n| n.as_bytes() == field)
    }

    /// Parses whole lines. `None`: decline the partition.
    fn feed(&mut self, bytes: &[u8]) -> Option<()> {
        // Quotes are allowed only the way most writers use them (pyarrow quotes every
        // string): around a whole key field, with no quote, separator or newline inside. Every
        // field starting with a quote is checked, and the block's quotes must all be accounted
        // for by such fields; anything else declines (the general reader parses it).
        let quotes = if memchr::memchr(b'"', bytes).is_some() {
            memchr::memchr_iter(b'"', bytes).count()
        } else {
            0
        };
        let mut quoted_fields = 0usize;
        let len = bytes.len();
        let sep = u64::from_ne_bytes([self.sep; 8]);
        let newline = u64::from_ne_bytes([b'\n'; 8]);
        let mut key_field = (0usize, 0usize);
        let mut value_fields = vec![(0usize, 0usize); self.value_dtypes.len()];
        let mut field = 0usize;
        let mut start = 0usize;
        let mut line_start = 0usize;
        let mut base = 0usize;
        while base < len {
            // A bit per separator or newline among the next eight bytes.
            let mut mask = if base + 8 <= len {
                let w = u64::from_le_bytes(bytes[base..base + 8].try_into().expect("8 bytes"));
                zero_bytes(w ^ sep) | zero_bytes(w ^ newline)
            } else {
                let mut m = 0u64;
                for (k, &b) in bytes[base..].iter().enumerate() {
                    if b == self.sep || b == b'\n' {
                        m |= 0x80 << (8 * k);
                    }
                }
                m
            };
            while mask != 0 {
                let pos = base + (mask.trailing_zeros() / 8) as usize;
                mask &= mask - 1;
                let is_newline = bytes[pos] == b'\n';
                let mut end = pos;
                if is_newline && end > start && bytes[end - 1] == b'\r' {
                    end -= 1;
                }
                let role = *self.roles.get(field)?;
                let range = field_range(bytes, start, end, role, quotes, &mut quoted_fields)?;
                place(role, range, &mut key_field, &mut value_fields);
                field += 1;
                start = pos + 1;
                if is_newline {
                    if field != self.ncols || end == line_start {
                        // A ragged row or an empty line.
                        return None;
                    }
                    self.row(bytes, key_field, &value_fields)?;
                    field = 0;
                    line_start = start;
                }
            }
            base += 8;
        }
        if start < len {
            // The last line has no newline (the end of the file).
            let mut end = len;
            if bytes[end - 1] == b'\r' {
                end -= 1;
            }
            let role = *self.roles.get(field)?;
            let range = field_range(bytes, start, end, role, quotes, &mut quoted_fields)?;
            place(role, range, &mut key_field, &mut value_fields);
            if field + 1 != self.ncols {
                return None;
            }
            self.row(bytes, key_field, &value_fields)?;
        } else if field != 0 {
            return None;
        }
        // A quote that is not one of a quoted field's two (inside an unquoted field): decline.
        (quoted_fields * 2 == quotes).then_some(())
    }

    /// One line's key and values.
    #[inline]
    fn row(
        &mut self,
        bytes: &[u8],
        key_field: (usize, usize),
        value_fields: &[(usize, usize)],
    ) -> Option<()> {
        let k = &bytes[key_field.0..key_field.1];
        let string_key = self.key_dtype == DataType::String;
        let g = if self.is_null(k) {
            self.acc.groups.of_null(string_key)
        } else if string_key {
            if !self.acc.groups.has_str(k) {
                std::str::from_utf8(k).ok()?;
            }
            self.acc.groups.of_str(k)
        } else {
            self.acc.groups.of_int(parse_int(k, &self.key_dtype)?)
        };
        self.gids.push(g);
        for (v, &(s, e)) in value_fields.iter().enumerate() {
            let f = &bytes[s..e];
            if self.is_null(f) {
                self.valid[v].push(false);
                self.floats[v].push(0.0);
                self.ints[v].push(0);
                continue;
            }
            self.valid[v].push(true);
            if self.value_dtypes[v] == DataType::Float64 {
                self.floats[v].push(fast_float2::parse::<f64, _>(f).ok()?);
            } else {
                self.ints[v].push(parse_int(f, &self.value_dtypes[v])?);
            }
        }
        if self.gids.len() == BATCH {
            self.flush().ok()?;
        }
        Some(())
    }

    /// Hands the batch to the accumulator and clears it.
    fn flush(&mut self) -> Result<()> {
        if self.gids.is_empty() {
            return Ok(());
        }
        let mut parsed: Vec<Column> = Vec::with_capacity(self.value_dtypes.len());
        for (v, dtype) in self.value_dtypes.iter().enumerate() {
            let validity = polars_arrow::bitmap::Bitmap::from_iter(self.valid[v].iter().copied());
            let name = PlSmallStr::from(self.columns[v + 1].as_str());
            let column = if dtype == &DataType::Float64 {
                let values = std::mem::replace(&mut self.floats[v], Vec::with_capacity(BATCH));
                Float64Chunked::from_vec_validity(name, values, Some(validity)).into_column()
            } else {
                let values = std::mem::replace(&mut self.ints[v], Vec::with_capacity(BATCH));
                Int64Chunked::from_vec_validity(name, values, Some(validity)).into_column()
            };
            parsed.push(column);
            self.floats[v].clear();
            self.ints[v].clear();
            self.valid[v].clear();
        }
        let mut prepared = Vec::with_capacity(self.acc.agg().cols.len());
        for c in &self.acc.agg().cols {
            match &c.column {
                None => prepared.push(Prepared::None),
                Some(name) => {
                    let j = self.columns.iter().position(|n| n == name).expect("listed");
                    prepared.push(Prepared::from_column(&parsed[j - 1], c.kind)?);
                }
            }
        }
        let values: Vec<Values<'_>> = prepared.iter().map(Prepared::values).collect();
        self.acc.add(&self.gids, &values);
        self.gids.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<PlFrame> {
        self.flush()?;
        let key_dtype = self.key_dtype.clone();
        self.acc.finish(&key_dtype)
    }
}

/// An integer field as polars parses it for `dtype` (optional sign, digits, in range).
fn parse_int(field: &[u8], dtype: &DataType) -> Option<i64> {
    let (neg, digits) = match field.first()? {
        b'-' => (true, &field[1..]),
        b'+' => (false, &field[1..]),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut x: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        x = x * 10 + (d - b'0') as i64;
    }
    let x = if neg { -x } else { x };
    let (lo, hi) = match dtype {
        DataType::Int8 => (i8::MIN as i64, i8::MAX as i64),
        DataType::Int16 => (i16::MIN as i64, i16::MAX as i64),
        DataType::Int32 => (i32::MIN as i64, i32::MAX as i64),
        DataType::Int64 => (i64::MIN, i64::MAX),
        DataType::UInt8 => (0, u8::MAX as i64),
        DataType::UInt16 => (0, u16::MAX as i64),
        DataType::UInt32 => (0, u32::MAX as i64),
        _ => return None,
    };
    (lo..=hi).contains(&x).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bytes_marks_exactly_the_zero_bytes() {
        for word in [
            0u64,
            u64::MAX,
            0x0100_0000_0000_00ff,
            0x8000_0080_0001_0000,
            0x2c2c_0a2c_4141_2c0a,
        ] {
            let want: u64 = (0..8)
                .filter(|k| (word >> (8 * k)) & 0xff == 0)
                .map(|k| 0x80u64 << (8 * k))
                .sum();
            assert_eq!(zero_bytes(word), want, "{word:#x}");
        }
    }

    #[test]
    fn parse_int_follows_the_dtype_range() {
        assert_eq!(parse_int(b"-128", &DataType::Int8), Some(-128));
        assert_eq!(parse_int(b"128", &DataType::Int8), None);
        assert_eq!(parse_int(b"+7", &DataType::UInt8), Some(7));
        assert_eq!(parse_int(b"-1", &DataType::UInt32), None);
        assert_eq!(parse_int(b"12a", &DataType::Int64), None);
        assert_eq!(parse_int(b"", &DataType::Int64), None);
        assert_eq!(parse_int(b"-", &DataType::Int64), None);
    }
}
