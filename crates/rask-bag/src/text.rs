//! Text and JSON-lines files in, text files out: local paths, `file://` and bucket URLs
//! through `rask-io`, gzip and zstd by extension.

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use rask_error::{RaskError, Result};
use rask_graph::{Key, KeyName, Layer, TaskSpec, Token, Tokenizer, Value};
use rask_io::{IoStore, StoreOptions};
use serde::de::DeserializeOwned;

use crate::BagData;
use crate::bag::{Bag, Items, StreamFn, TaskFn, data_value, fn_op};
use crate::reduce::Item;

/// How a file is compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// From the file name: `.gz` is gzip, `.zst` / `.zstd` is zstd, anything else is plain.
    #[default]
    Infer,
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn resolve(self, url: &str) -> Compression {
        match self {
            Compression::Infer => {
                let lower = url.to_ascii_lowercase();
                if lower.ends_with(".gz") {
                    Compression::Gzip
                } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
                    Compression::Zstd
                } else {
                    Compression::None
                }
            }
            other => other,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::Infer | Compression::None => "",
        }
    }
}

/// Options of [`read_text`] and [`read_json_lines`].
#[derive(Clone, Debug, Default)]
pub struct TextOptions {
    /// Split plain files into partitions of about this many bytes, on line boundaries
    /// (`None`: one partition per file). Compressed files are always one partition each:
    /// their blocks cannot be found without decompressing from the start.
    pub blocksize: Option<u64>,
    pub compression: Compression,
    /// Endpoint and credentials for bucket URLs.
    pub storage: StoreOptions,
}

impl TextOptions {
    pub fn with_blocksize(mut self, bytes: u64) -> Self {
        self.blocksize = Some(bytes);
        self
    }
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }
    pub fn with_storage(mut self, storage: StoreOptions) -> Self {
        self.storage = storage;
        self
    }
}

/// One partition of a text source: a whole file, or the lines starting in `start..end`.
struct Block {
    url: String,
    store: IoStore,
    size: u64,
    start: u64,
    end: u64,
    whole: bool,
    compression: Compression,
}

/// The bytes a block owns, and the byte offset of its first line in the file.
struct Owned {
    bytes: Bytes,
    offset: u64,
}

const TAIL_CHUNK: u64 = 64 << 10;

impl Block {
    fn read(&self) -> Result<Owned> {
        if self.whole {
            let raw = self.store.get("")?;
            let bytes = match self.compression {
                Compression::Gzip => {
                    let mut out = Vec::new();
                    flate2::read::MultiGzDecoder::new(&raw[..])
                        .read_to_end(&mut out)
                        .map_err(|e| RaskError::io(format!("{} (gzip)", self.url), e))?;
                    Bytes::from(out)
                }
                Compression::Zstd => {
                    let out = zstd::stream::decode_all(&raw[..])
                        .map_err(|e| RaskError::io(format!("{} (zstd)", self.url), e))?;
                    Bytes::from(out)
                }
                Compression::None | Compression::Infer => raw,
            };
            return Ok(Owned { bytes, offset: 0 });
        }
        // A line belongs to the block holding its first byte. Reading from `start - 1` tells
        // whether a line starts exactly at `start` (the byte before it is a newline).
        let lo = self.start.saturating_sub(1);
        let head = self.store.get_range("", lo..self.end)?;
        let first = if self.start == 0 {
            0
        } else {
            match memchr::memchr(b'\n', &head) {
                Some(q) => q + 1,
                None => head.len(),
            }
        };
        if first >= head.len() {
            return Ok(Owned {
                bytes: Bytes::new(),
                offset: self.end,
            });
        }
        let offset = lo + first as u64;
        if head.last() == Some(&b'\n') || self.end >= self.size {
            return Ok(Owned {
                bytes: head.slice(first..),
                offset,
            });
        }
        // The last line runs past `end`: read on to its newline.
        let mut buf = head[first..].to_vec();
        let mut at = self.end;
        while at < self.size {
            let chunk = self
                .store
                .get_range("", at..(at + TAIL_CHUNK).min(self.size))?;
            if let Some(q) = memchr::memchr(b'\n', &chunk) {
                buf.extend_from_slice(&chunk[..=q]);
                break;
            }
            buf.extend_from_slice(&chunk);
            at += chunk.len() as u64;
        }
        Ok(Owned {
            bytes: Bytes::from(buf),
            offset,
        })
    }

    /// The 1-based line number of the `k`-th line of this block (0-based) in its file:
    /// counted from the start of the file, which is read again only on this error path.
    fn line_number(&self, offset: u64, k: usize) -> String {
        if offset == 0 {
            return (k + 1).to_string();
        }
        match self.store.get_range("", 0..offset) {
            Ok(prefix) => (memchr::memchr_iter(b'\n', &prefix).count() + k + 1).to_string(),
            Err(_) => format!("{} of the block at byte {offset}", k + 1),
        }
    }
}

/// Splits owned bytes into lines without their `\n` (or `\r\n`); a last line without a
/// newline counts, an empty tail after the last newline does not.
struct Lines {
    bytes: Bytes,
    pos: usize,
    /// Lines yielded so far.
    k: usize,
}

impl Lines {
    fn next_line(&mut self) -> Option<(usize, &[u8])> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let rest = &self.bytes[self.pos..];
        let (line, used) = match memchr::memchr(b'\n', rest) {
            Some(q) => (&rest[..q], q + 1),
            None => (rest, rest.len()),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.pos += used;
        self.k += 1;
        Some((self.k - 1, line))
    }
}

struct Source {
    blocks: Vec<Block>,
}

fn list_blocks(pattern: &str, opts: &TextOptions) -> Result<Source> {
    let urls = rask_io::glob(pattern, &opts.storage)?;
    if urls.is_empty() {
        return Err(RaskError::invalid_argument(
            "path",
            format!("no files match `{pattern}`"),
        ));
    }
    if opts.blocksize == Some(0) {
        return Err(RaskError::invalid_argument(
            "blocksize",
            "must be positive, got 0",
        ));
    }
    let mut blocks = Vec::new();
    for url in urls {
        let store = IoStore::open(&url, &opts.storage)?;
        let size = store.stat("")?.size;
        let compression = opts.compression.resolve(&url);
        match opts.blocksize {
            Some(bs) if compression == Compression::None && size > bs => {
                let mut start = 0;
                while start < size {
                    let end = (start + bs).min(size);
                    blocks.push(Block {
                        url: url.clone(),
                        store: store.clone(),
                        size,
                        start,
                        end,
                        whole: false,
                        compression,
                    });
                    start = end;
                }
            }
            _ => blocks.push(Block {
                url: url.clone(),
                store: store.clone(),
                size,
                start: 0,
                end: size,
                whole: true,
                compression,
            }),
        }
    }
    Ok(Source { blocks })
}

fn source_token(op: &str, src: &Source, opts: &TextOptions) -> Token {
    let mut t = Tokenizer::new(op);
    for b in &src.blocks {
        t.write_str(&b.url);
        t.write_u64(b.size);
        t.write_u64(b.start);
        t.write_u64(b.end);
    }
    t.write_str(&format!("{:?}", opts.compression));
    t.finish()
}

/// The lines of text files (Dask's `db.read_text`), without their line endings: one
/// partition per file, or per `blocksize` bytes of plain files. `pattern` is a path, a
/// glob (`logs/*.txt`, `s3://bucket/2024/**/*.log.gz`) or a URL; no match, a missing file
/// or a missing bucket is an error naming it. Invalid UTF-8 fails the partition's task,
/// naming the file and line.
pub fn read_text(pattern: &str, opts: TextOptions) -> Result<Bag<String>> {
    let src = Arc::new(list_blocks(pattern, &opts)?);
    let token = source_token("rask.bag.read_text", &src, &opts);
    let n = src.blocks.len();
    let stream: StreamFn<String> = Arc::new(move |i, _vals: &[Value]| {
        let src = src.clone();
        let owned = src.blocks[i].read()?;
        let mut lines = Lines {
            bytes: owned.bytes,
            pos: 0,
            k: 0,
        };
        Ok(Box::new(std::iter::from_fn(move || {
            let (k, line) = lines.next_line()?;
            Some(match std::str::from_utf8(line) {
                Ok(s) => Ok(s.to_string()),
                Err(e) => {
                    let b = &src.blocks[i];
                    Err(RaskError::msg(format!(
                        "{} line {}: not UTF-8: {e}",
                        b.url,
                        b.line_number(owned.offset, k)
                    )))
                }
            })
        })) as Items<String>)
    });
    Ok(Bag::from_stream(
        "read-text",
        token,
        vec![Vec::new(); n],
        Vec::new(),
        stream,
    ))
}

/// What [`read_json_lines`] does with a line that is not valid JSON (or not the type asked).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnMalformed {
    /// Fail the partition's task with an error naming the file and line (the default).
    #[default]
    Error,
    /// Skip the line and count it in [`JsonLines::malformed`].
    Skip,
}

/// Options of [`read_json_lines`].
#[derive(Clone, Debug, Default)]
pub struct JsonOptions {
    pub text: TextOptions,
    pub on_malformed: OnMalformed,
}

impl JsonOptions {
    pub fn with_blocksize(mut self, bytes: u64) -> Self {
        self.text.blocksize = Some(bytes);
        self
    }
    pub fn with_storage(mut self, storage: StoreOptions) -> Self {
        self.text.storage = storage;
        self
    }
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.text.compression = c;
        self
    }
    /// Skip malformed lines, counting them, instead of failing.
    pub fn skip_malformed(mut self) -> Self {
        self.on_malformed = OnMalformed::Skip;
        self
    }
}

/// The records of JSON-lines files and how many lines were skipped as malformed (always 0
/// with [`OnMalformed::Error`], where a malformed line fails the computation instead).
pub struct JsonLines<T> {
    pub records: Bag<T>,
    pub malformed: Item<u64>,
}

/// Records of JSON-lines files (Dask's `db.read_text(...).map(json.loads)`) as
/// `serde_json::Value`s; see [`read_json_lines_as`] for a typed record. Blank lines are
/// skipped.
pub fn read_json_lines(pattern: &str, opts: JsonOptions) -> Result<JsonLines<serde_json::Value>> {
    read_json_lines_as(pattern, opts)
}

/// Records of JSON-lines files deserialized into `T` through serde. A line that is not
/// valid JSON, or not a `T`, is an error naming the file and its line number, or is skipped
/// and counted with [`JsonOptions::skip_malformed`].
pub fn read_json_lines_as<T: DeserializeOwned + BagData>(
    pattern: &str,
    opts: JsonOptions,
) -> Result<JsonLines<T>> {
    let src = Arc::new(list_blocks(pattern, &opts.text)?);
    let mut t = Tokenizer::new("rask.bag.read_json_lines");
    t.write_token(source_token("rask.bag.read_text", &src, &opts.text));
    t.write_str(std::any::type_name::<T>());
    t.write_u8(opts.on_malformed as u8);
    let token = t.finish();
    let n = src.blocks.len();
    let skip = opts.on_malformed == OnMalformed::Skip;
    // Each partition's parse yields records and malformed-line marks; the bag keeps the
    // records, the count reads the same tasks when skipping (so both share one parse).
    let parse = move |i: usize| -> Result<Box<dyn Iterator<Item = Result<Option<T>>>>> {
        let src = src.clone();
        let owned = src.blocks[i].read()?;
        let mut lines = Lines {
            bytes: owned.bytes,
            pos: 0,
            k: 0,
        };
        Ok(Box::new(std::iter::from_fn(move || {
            loop {
                let (k, line) = lines.next_line()?;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(match serde_json::from_slice::<T>(line) {
                    Ok(v) => Ok(Some(v)),
                    Err(_) if skip => Ok(None),
                    Err(e) => {
                        let b = &src.blocks[i];
                        Err(RaskError::msg(format!(
                            "malformed JSON in {} line {}: {e}",
                            b.url,
                            b.line_number(owned.offset, k)
                        )))
                    }
                });
            }
        })))
    };
    if !skip {
        let stream: StreamFn<T> = Arc::new(move |i, _vals: &[Value]| {
            Ok(Box::new(
                parse(i)?.map(|r| r.map(|o| o.expect("only skipping yields None"))),
            ))
        });
        let records = Bag::from_stream("read-json", token, vec![Vec::new(); n], Vec::new(), stream);
        let zero = Key::single(KeyName::from_token("malformed", token));
        let op: Arc<dyn rask_graph::Op> = Arc::new(rask_graph::Literal::new(data_value(0u64)));
        let malformed = Item::new(
            zero.clone(),
            Layer::single(TaskSpec::new(zero, op, vec![]), []),
        );
        return Ok(JsonLines { records, malformed });
    }
    // Skipping: one task per partition parses into (records, skipped).
    let name = KeyName::from_token("read-json", token);
    let parse = Arc::new(parse);
    let run: TaskFn = Arc::new(move |i, _vals: &[Value]| {
        let mut items = Vec::new();
        let mut bad = 0u64;
        for r in parse(i)? {
            match r? {
                Some(v) => items.push(v),
                None => bad += 1,
            }
        }
        Ok(data_value((items, bad)))
    });
    let tasks: Vec<TaskSpec> = (0..n)
        .map(|i| {
            TaskSpec::new(
                Key::new(name.clone(), [i as u32]),
                fn_op("read-json", i, run.clone()),
                vec![],
            )
        })
        .collect();
    let keys: Vec<Key> = tasks.iter().map(|t| t.key.clone()).collect();
    let layer = Layer::new(tasks, vec![]);
    // Its own token: materializing it must not reuse the parse tasks' keys.
    let records = Bag::from_stream(
        "json-records",
        crate::bag::derived_token("rask.bag.json_records", token, |_| {}),
        keys.iter().map(|k| vec![k.clone()]).collect(),
        vec![layer.clone()],
        Arc::new(|i, vals: &[Value]| {
            let v = vals[0].clone();
            let len = v
                .get::<(Vec<T>, u64)>(&format_args!("read-json partition {i}"))?
                .0
                .len();
            Ok(Box::new((0..len).map(move |x| {
                Ok(v.downcast_ref::<(Vec<T>, u64)>().expect("checked above").0[x].clone())
            })))
        }),
    );
    let total = Key::single(KeyName::from_token("malformed", token));
    let op = fn_op(
        "malformed",
        0,
        Arc::new(|_, vals: &[Value]| {
            let mut n = 0u64;
            for (i, v) in vals.iter().enumerate() {
                n += v
                    .get::<(Vec<T>, u64)>(&format_args!("read-json partition {i}"))?
                    .1;
            }
            Ok(data_value(n))
        }),
    );
    let malformed = Item::new(
        total.clone(),
        Layer::single(TaskSpec::new(total, op, keys), [layer]),
    );
    Ok(JsonLines { records, malformed })
}

/// Options of [`Bag::to_text_files`].
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `None` (or `Infer`) writes plain `.txt`; gzip and zstd add `.gz` / `.zst`.
    pub compression: Compression,
    pub storage: StoreOptions,
}

impl WriteOptions {
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }
    pub fn with_storage(mut self, storage: StoreOptions) -> Self {
        self.storage = storage;
        self
    }
}

impl<T: BagData + std::fmt::Display> Bag<T> {
    /// Writes one text file per partition, an item per line, `part-00000.txt[.gz|.zst]`,
    /// ... into `dir` (a local folder or a bucket URL; Dask's `Bag.to_textfiles`). Computing
    /// the result writes the files and returns their URLs.
    pub fn to_text_files(&self, dir: &str, opts: WriteOptions) -> Result<Item<Vec<String>>> {
        let store = IoStore::open(dir, &opts.storage)?;
        let compression = match opts.compression {
            Compression::Infer => Compression::None,
            c => c,
        };
        let files: Vec<String> = (0..self.npartitions())
            .map(|i| format!("part-{i:05}.txt{}", compression.extension()))
            .collect();
        let urls: Vec<String> = files.iter().map(|f| store.url(f)).collect();
        let mut t = Tokenizer::new("rask.bag.to_text_files");
        t.write_token(self.token());
        t.write_str(dir);
        t.write_str(&format!("{compression:?}"));
        let token = t.finish();
        let files = Arc::new(files);
        let write_store = store.clone();
        let (mut tasks, keys) = self.per_partition_layer(
            "to-text",
            token,
            move |i, items| {
                let mut buf: Vec<u8> = Vec::new();
                {
                    let mut w: Box<dyn Write + '_> = match compression {
                        Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
                            &mut buf,
                            flate2::Compression::default(),
                        )),
                        Compression::Zstd => Box::new(
                            zstd::stream::write::Encoder::new(&mut buf, 3)
                                .map_err(|e| RaskError::io(&files[i], e))?
                                .auto_finish(),
                        ),
                        _ => Box::new(&mut buf),
                    };
                    for r in items {
                        writeln!(w, "{}", r?).map_err(|e| RaskError::io(&files[i], e))?;
                    }
                    w.flush().map_err(|e| RaskError::io(&files[i], e))?;
                }
                write_store.put(&files[i], buf)?;
                Ok(write_store.url(&files[i]))
            },
            data_value::<String>,
        );
        let done = Key::single(KeyName::from_token("written", token));
        let urls2 = urls.clone();
        tasks.push(TaskSpec::new(
            done.clone(),
            fn_op(
                "written",
                0,
                Arc::new(move |_, _vals: &[Value]| Ok(data_value(urls2.clone()))),
            ),
            keys,
        ));
        Ok(Item::new(
            done,
            Layer::new(tasks, self.inner.layers.clone()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(s: &str) -> Vec<String> {
        let mut l = Lines {
            bytes: Bytes::from(s.to_string()),
            pos: 0,
            k: 0,
        };
        let mut out = Vec::new();
        while let Some((_, x)) = l.next_line() {
            out.push(String::from_utf8(x.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn lines_drop_endings_and_keep_blank_lines() {
        assert_eq!(lines_of("a\nb\r\n\nc"), ["a", "b", "", "c"]);
        assert_eq!(lines_of("a\n"), ["a"]);
        assert!(lines_of("").is_empty());
    }

    #[test]
    fn compression_is_inferred_from_the_name() {
        assert_eq!(
            Compression::Infer.resolve("s3://b/x.log.gz"),
            Compression::Gzip
        );
        assert_eq!(Compression::Infer.resolve("a/B.ZST"), Compression::Zstd);
        assert_eq!(Compression::Infer.resolve("a/b.txt"), Compression::None);
        assert_eq!(Compression::None.resolve("a/b.gz"), Compression::None);
    }
}
