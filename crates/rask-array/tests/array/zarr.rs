//! Zarr v3: arrays written and read back chunk by chunk, the exact metadata, missing chunks
//! as fill values, bad metadata and chunk files reported by path, and zarr-python agreeing
//! when it is installed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{ArrayD, IxDyn};
use rask::Plan;
use rask::array::{self, Array, Element, ZarrOptions};
use rask::prelude::*;
use serde_json::{Value as Json, json};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rask-zarr-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Test values that exercise every byte of an element.
trait Sample: Element {
    fn sample(i: usize) -> Self;
}

macro_rules! sample_int {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            fn sample(i: usize) -> Self {
                (i as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) as $t
            }
        }
    )*};
}
sample_int!(u8, u16, u32, u64, i8, i16, i32, i64);

impl Sample for f32 {
    fn sample(i: usize) -> Self {
        i as f32 * 1.5 - 7.25
    }
}

impl Sample for f64 {
    fn sample(i: usize) -> Self {
        (i as f64 * 1.1 - 7.3).powi(3)
    }
}

impl Sample for bool {
    fn sample(i: usize) -> Self {
        i % 3 == 0
    }
}

fn data<T: Sample>(shape: &[usize]) -> ArrayD<T> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(T::sample).collect()).unwrap()
}

/// Regular block lengths of `c` adding up to `len` (a smaller last one).
fn regular(len: usize, c: usize) -> Vec<usize> {
    if len == 0 {
        return vec![0];
    }
    let mut v = vec![c; len / c];
    if len % c != 0 {
        v.push(len % c);
    }
    v
}

/// Shapes and chunk lengths: 0-d to 3-d, uneven last chunks, a chunk longer than the axis,
/// and an axis of length 0.
const CASES: &[(&[usize], &[usize])] = &[
    (&[], &[]),
    (&[7], &[3]),
    (&[8], &[4]),
    (&[3], &[5]),
    (&[6, 5], &[4, 2]),
    (&[4, 3, 5], &[3, 2, 2]),
    (&[5, 0], &[2, 3]),
];

fn round_trips<T: Sample>(options: &ZarrOptions) {
    let dir = TempDir::new(T::DTYPE.name());
    for (n, (shape, chunk)) in CASES.iter().enumerate() {
        let want = data::<T>(shape);
        let sizes: Vec<Vec<usize>> = shape
            .iter()
            .zip(*chunk)
            .map(|(&l, &c)| regular(l, c))
            .collect();
        let x = array::from_ndarray(want.clone(), sizes.clone()).unwrap();
        let path = dir.path(&format!("{n}.zarr"));
        array::to_zarr_with(&x, &path, options)
            .unwrap()
            .compute()
            .unwrap();
        let y = array::read_zarr::<T>(&path).unwrap();
        assert_eq!(y.shape(), *shape);
        assert_eq!(y.chunks().sizes(), sizes.as_slice(), "{shape:?}");
        assert_eq!(y.compute().unwrap(), want, "{} {shape:?}", T::DTYPE);

        // Every chunk file holds the full chunk shape, padded at the edges.
        if options.gzip.is_none() && !want.is_empty() {
            // The chunk shape is the array's first block (a chunk longer than the axis was
            // one block of the axis' length).
            let chunk_bytes =
                sizes.iter().map(|s| s[0] as u64).product::<u64>() * T::DTYPE.itemsize() as u64;
            for idx in x.chunks().block_indices() {
                let mut file = path.join("c");
                for i in &idx {
                    file.push(i.to_string());
                }
                let len = std::fs::metadata(&file).unwrap().len();
                assert_eq!(len, chunk_bytes, "{}", file.display());
            }
        }
    }
}

#[test]
fn every_dtype_round_trips() {
    let plain = ZarrOptions::default();
    round_trips::<bool>(&plain);
    round_trips::<u8>(&plain);
    round_trips::<u16>(&plain);
    round_trips::<u32>(&plain);
    round_trips::<u64>(&plain);
    round_trips::<i8>(&plain);
    round_trips::<i16>(&plain);
    round_trips::<i32>(&plain);
    round_trips::<i64>(&plain);
    round_trips::<f32>(&plain);
    round_trips::<f64>(&plain);
}

#[test]
fn gzip_round_trips() {
    let gz = ZarrOptions {
        gzip: Some(5),
        ..Default::default()
    };
    round_trips::<bool>(&gz);
    round_trips::<i16>(&gz);
    round_trips::<f64>(&gz);
}

#[test]
fn edge_chunks_are_padded_with_zeros_in_c_order() {
    let dir = TempDir::new("pad");
    let path = dir.path("a");
    let a = data::<i32>(&[3, 5]);
    let x = array::from_ndarray(a.clone(), (2, 4)).unwrap();
    array::to_zarr(&x, &path).unwrap().compute().unwrap();
    // Chunk (1, 1) holds row 2, columns 4..5, as the top-left of a 2x4 chunk.
    let bytes = std::fs::read(path.join("c/1/1")).unwrap();
    let mut want = vec![0u8; 2 * 4 * 4];
    want[..4].copy_from_slice(&a[[2, 4]].to_le_bytes());
    assert_eq!(bytes, want);
    // Chunk (0, 0) is the plain C-order block.
    let bytes = std::fs::read(path.join("c/0/0")).unwrap();
    let block: Vec<u8> = a
        .slice(ndarray::s![0..2, 0..4])
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(bytes, block);
}

#[test]
fn zarr_json_is_exactly_the_v3_metadata() {
    let dir = TempDir::new("meta");
    let x = array::from_ndarray(data::<f32>(&[10, 4]), (4, 3)).unwrap();
    array::to_zarr(&x, dir.path("a"))
        .unwrap()
        .compute()
        .unwrap();
    let text = std::fs::read_to_string(dir.path("a/zarr.json")).unwrap();
    let meta: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(
        meta,
        json!({
            "zarr_format": 3,
            "node_type": "array",
            "shape": [10, 4],
            "data_type": "float32",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 3]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0.0,
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "attributes": {},
            "storage_transformers": [],
        })
    );
    assert!(meta["fill_value"].is_f64());

    let b = array::from_ndarray(data::<bool>(&[3]), 2).unwrap();
    let opts = ZarrOptions {
        gzip: Some(1),
        dimension_names: Some(vec!["x".into()]),
    };
    array::to_zarr_with(&b, dir.path("b"), &opts)
        .unwrap()
        .compute()
        .unwrap();
    let meta: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.path("b/zarr.json")).unwrap()).unwrap();
    assert_eq!(meta["data_type"], "bool");
    assert_eq!(meta["fill_value"], false);
    assert_eq!(meta["dimension_names"], json!(["x"]));
    assert_eq!(
        meta["codecs"],
        json!([
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "gzip", "configuration": {"level": 1}}
        ])
    );
    let i = array::from_ndarray(data::<u64>(&[]), Vec::<usize>::new()).unwrap();
    array::to_zarr(&i, dir.path("c"))
        .unwrap()
        .compute()
        .unwrap();
    let meta: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.path("c/zarr.json")).unwrap()).unwrap();
    assert_eq!(meta["shape"], json!([]));
    assert_eq!(
        meta["chunk_grid"]["configuration"]["chunk_shape"],
        json!([])
    );
    assert_eq!(meta["fill_value"], json!(0));
    assert!(dir.path("c/c").is_file(), "a 0-d array's chunk is `c`");
}

#[test]
fn nothing_is_written_until_the_store_is_computed() {
    let dir = TempDir::new("lazy");
    let path = dir.path("x");
    let x = array::arange::<i64>(0.0, 10.0, 1.0, 3).unwrap();
    let store = array::to_zarr(&x, &path).unwrap();
    assert_eq!(store.keys().len(), 4);
    assert!(!path.exists());
    store.compute().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(path.join("c"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["0", "1", "2", "3"]);
}

/// Writes `zarr.json` into `dir` (created) from a JSON value.
fn write_meta(dir: &Path, meta: &Json) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("zarr.json"), serde_json::to_string(meta).unwrap()).unwrap();
}

fn meta(shape: &[usize], chunk: &[usize], dtype: &str, fill: Json, codecs: Json) -> Json {
    json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunk}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill,
        "codecs": codecs,
    })
}

fn bytes_le() -> Json {
    json!([{"name": "bytes", "configuration": {"endian": "little"}}])
}

#[test]
fn missing_chunk_files_read_as_the_fill_value() {
    let dir = TempDir::new("fill");
    // Written by rask, then a chunk deleted: zeros.
    let path = dir.path("a");
    let a = data::<i32>(&[4, 6]);
    let x = array::from_ndarray(a.clone(), (2, 3)).unwrap();
    array::to_zarr(&x, &path).unwrap().compute().unwrap();
    std::fs::remove_file(path.join("c/0/1")).unwrap();
    let mut want = a.clone();
    want.slice_mut(ndarray::s![0..2, 3..6]).fill(0);
    assert_eq!(
        array::read_zarr::<i32>(&path).unwrap().compute().unwrap(),
        want
    );

    // Hand-written metadata with other fill values and no chunk files at all.
    let cases: Vec<(&str, Json)> = vec![
        ("float64", json!("NaN")),
        ("float64", json!("Infinity")),
        ("float32", json!("-Infinity")),
        ("float32", json!(2.5)),
        ("float64", json!("0x3ff8000000000000")),
        ("int16", json!(-7)),
        ("uint64", json!(u64::MAX)),
        ("bool", json!(true)),
    ];
    for (n, (dtype, fill)) in cases.into_iter().enumerate() {
        let p = dir.path(&format!("f{n}"));
        write_meta(&p, &meta(&[5], &[2], dtype, fill.clone(), bytes_le()));
        let values: Vec<String> = match dtype {
            "float64" => to_strings(array::read_zarr::<f64>(&p).unwrap()),
            "float32" => to_strings(array::read_zarr::<f32>(&p).unwrap()),
            "int16" => to_strings(array::read_zarr::<i16>(&p).unwrap()),
            "uint64" => to_strings(array::read_zarr::<u64>(&p).unwrap()),
            "bool" => to_strings(array::read_zarr::<bool>(&p).unwrap()),
            _ => unreachable!(),
        };
        let want = match &fill {
            Json::String(s) if s == "NaN" => "NaN".to_string(),
            Json::String(s) if s == "Infinity" => "inf".to_string(),
            Json::String(s) if s == "-Infinity" => "-inf".to_string(),
            Json::String(_) => "1.5".to_string(),
            v => v.to_string(),
        };
        assert_eq!(values, vec![want; 5], "{dtype} {fill}");
    }
}

fn to_strings<T: Element>(x: Array<T>) -> Vec<String> {
    x.compute()
        .unwrap()
        .iter()
        .map(|v| format!("{v:?}"))
        .collect()
}

#[test]
fn big_endian_gzip_and_dot_separated_chunks_are_read() {
    let dir = TempDir::new("variants");
    // Big-endian, "." separator: chunks c.0 and c.1 (the second padded).
    let p = dir.path("be");
    let mut m = meta(
        &[3],
        &[2],
        "int32",
        json!(0),
        json!([{"name": "bytes", "configuration": {"endian": "big"}}]),
    );
    m["chunk_key_encoding"]["configuration"]["separator"] = json!(".");
    write_meta(&p, &m);
    let be = |v: &[i32]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
    std::fs::write(p.join("c.0"), be(&[1, -2])).unwrap();
    std::fs::write(p.join("c.1"), be(&[300_000, 9])).unwrap();
    let y = array::read_zarr::<i32>(&p).unwrap();
    assert_eq!(
        y.compute().unwrap().into_raw_vec_and_offset().0,
        vec![1, -2, 300_000]
    );

    // A bare-name bytes codec for a one-byte type, as zarr-python writes it.
    let p = dir.path("u8");
    write_meta(
        &p,
        &meta(&[2], &[2], "uint8", json!(0), json!([{"name": "bytes"}])),
    );
    std::fs::create_dir_all(p.join("c")).unwrap();
    std::fs::write(p.join("c/0"), [7u8, 250]).unwrap();
    let y = array::read_zarr::<u8>(&p).unwrap();
    assert_eq!(
        y.compute().unwrap().into_raw_vec_and_offset().0,
        vec![7, 250]
    );
}

fn read_err<T: Element>(path: &Path) -> String {
    array::read_zarr::<T>(path).unwrap_err().to_string()
}

#[test]
fn bad_inputs_are_errors_naming_the_path() {
    let dir = TempDir::new("bad");
    // A missing directory.
    let e = read_err::<f64>(&dir.path("nope"));
    assert!(e.contains("nope/zarr.json"), "{e}");

    // Irregular chunks on write.
    let x = array::from_ndarray(data::<f64>(&[10]), vec![vec![3, 4, 3]]).unwrap();
    let e = array::to_zarr(&x, dir.path("w")).unwrap_err().to_string();
    assert!(
        e.contains("chunks") && e.contains("rechunk") && e.contains("[3, 4, 3]"),
        "{e}"
    );
    let x = array::from_ndarray(data::<f64>(&[2, 7]), vec![vec![2], vec![3, 4]]).unwrap();
    let e = array::to_zarr(&x, dir.path("w")).unwrap_err().to_string();
    assert!(e.contains("axis 1"), "{e}");
    assert!(!dir.path("w").exists());

    // Unsupported codecs.
    for codec in [
        json!([{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "blosc", "configuration": {"cname": "lz4"}}]),
        json!([{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 0}}]),
        json!([{"name": "sharding_indexed", "configuration": {}}]),
        json!([{"name": "transpose", "configuration": {"order": [0]}}, {"name": "bytes", "configuration": {"endian": "little"}}]),
    ] {
        let name = codec[codec.as_array().unwrap().len() - 1]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let name = if name == "bytes" {
            "transpose".to_string()
        } else {
            name
        };
        let p = dir.path(&format!("codec-{name}"));
        write_meta(&p, &meta(&[4], &[2], "float64", json!(0.0), codec));
        let e = read_err::<f64>(&p);
        assert!(
            e.contains(&format!("codec-{name}/zarr.json")) && e.contains(&format!("'{name}'")),
            "{e}"
        );
    }
    // Other unsupported or malformed metadata.
    let mut cases: Vec<(&str, Json, &str)> = Vec::new();
    let base = meta(&[4], &[2], "float64", json!(0.0), bytes_le());
    let mut m = base.clone();
    m["zarr_format"] = json!(2);
    cases.push(("v2", m, "zarr_format"));
    let mut m = base.clone();
    m["node_type"] = json!("group");
    cases.push(("group", m, "node_type"));
    let mut m = base.clone();
    m["data_type"] = json!("complex128");
    cases.push(("complex", m, "complex128"));
    let mut m = base.clone();
    m["chunk_grid"]["name"] = json!("rectilinear");
    cases.push(("grid", m, "chunk_grid"));
    let mut m = base.clone();
    m["chunk_grid"]["configuration"]["chunk_shape"] = json!([0]);
    cases.push(("chunk0", m, "chunk_shape"));
    let mut m = base.clone();
    m["chunk_key_encoding"]["name"] = json!("v2");
    cases.push(("v2keys", m, "chunk_key_encoding"));
    let mut m = base.clone();
    m["fill_value"] = json!("nope");
    cases.push(("fill", m, "fill_value"));
    let mut m = base.clone();
    m["codecs"] = json!([]);
    cases.push(("nocodec", m, "no `bytes` codec"));
    let mut m = base.clone();
    m["codecs"] = json!([{"name": "bytes"}]);
    cases.push(("noendian", m, "endian"));
    let mut m = base.clone();
    m["storage_transformers"] = json!([{"name": "x"}]);
    cases.push(("transformer", m, "storage_transformers"));
    let mut m = base.clone();
    m["mystery"] = json!(1);
    cases.push(("unknown", m, "mystery"));
    for (tag, m, what) in cases {
        let p = dir.path(tag);
        write_meta(&p, &m);
        let e = read_err::<f64>(&p);
        assert!(
            e.contains(&format!("{tag}/zarr.json")) && e.contains(what),
            "{tag}: {e}"
        );
    }
    // An unknown field marked as optional is fine.
    let mut m = base.clone();
    m["extra"] = json!({"must_understand": false, "x": 1});
    write_meta(&dir.path("optional"), &m);
    let _opened = array::read_zarr::<f64>(dir.path("optional")).unwrap();
    // Not JSON.
    std::fs::create_dir_all(dir.path("junk")).unwrap();
    std::fs::write(dir.path("junk/zarr.json"), "{not json").unwrap();
    let e = read_err::<f64>(&dir.path("junk"));
    assert!(e.contains("junk/zarr.json") && e.contains("JSON"), "{e}");

    // The wrong dtype names the path and both types.
    let p = dir.path("typed");
    array::to_zarr(&array::from_ndarray(data::<f32>(&[4]), 2).unwrap(), &p)
        .unwrap()
        .compute()
        .unwrap();
    let e = read_err::<f64>(&p);
    assert!(
        e.contains("typed/zarr.json") && e.contains("float32") && e.contains("float64"),
        "{e}"
    );

    // A truncated chunk file fails when computed, naming the chunk file.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(p.join("c/1"))
        .unwrap();
    f.set_len(5).unwrap();
    let e = array::read_zarr::<f32>(&p)
        .unwrap()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("typed/c/1") && e.contains("truncated") && e.contains('8'),
        "{e}"
    );
    // A corrupt gzip chunk too.
    let p = dir.path("gz");
    let gz = ZarrOptions {
        gzip: Some(6),
        ..Default::default()
    };
    array::to_zarr_with(&array::from_ndarray(data::<f32>(&[4]), 2).unwrap(), &p, &gz)
        .unwrap()
        .compute()
        .unwrap();
    std::fs::write(p.join("c/0"), b"not gzip").unwrap();
    let e = array::read_zarr::<f32>(&p)
        .unwrap()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(e.contains("gz/c/0") && e.contains("gzip"), "{e}");

    // Bad options.
    let x = array::from_ndarray(data::<f32>(&[4]), 2).unwrap();
    let bad_level = ZarrOptions {
        gzip: Some(10),
        ..Default::default()
    };
    assert!(array::to_zarr_with(&x, dir.path("o"), &bad_level).is_err());
    let bad_names = ZarrOptions {
        dimension_names: Some(vec!["a".into(), "b".into()]),
        ..Default::default()
    };
    assert!(array::to_zarr_with(&x, dir.path("o"), &bad_names).is_err());
}

/// How many chunk-reading tasks a plan of `x` runs, fused into other tasks or not.
fn read_tasks<T: Element>(x: &Array<T>) -> usize {
    let plan = Plan::new(x, Default::default()).unwrap();
    plan.graph
        .tasks()
        .iter()
        .filter(|t| match t.op.as_composite() {
            Some(c) => c
                .steps()
                .iter()
                .any(|s| s.op.name() == "rask.array.read_zarr"),
            None => t.op.name() == "rask.array.read_zarr",
        })
        .count()
}

#[test]
fn a_slice_reads_only_the_chunks_it_needs() {
    let dir = TempDir::new("slice");
    let path = dir.path("big");
    let a = data::<f64>(&[100, 40]);
    array::to_zarr(&array::from_ndarray(a.clone(), (10, 20)).unwrap(), &path)
        .unwrap()
        .compute()
        .unwrap();
    let x = array::read_zarr::<f64>(&path).unwrap();
    assert_eq!(read_tasks(&x), 20);
    let s = x.slice(&array::s![12..25, 30..]).unwrap();
    assert_eq!(
        read_tasks(&s),
        2,
        "rows 12..25 of the right column of chunks"
    );
    // Untouched chunks are never read: remove them all and the slice still computes.
    for i in 0..10 {
        for j in 0..2 {
            if !((i == 1 || i == 2) && j == 1) {
                std::fs::remove_file(path.join(format!("c/{i}/{j}"))).unwrap();
            }
        }
    }
    assert_eq!(
        s.compute().unwrap(),
        a.slice(ndarray::s![12..25, 30..]).to_owned().into_dyn()
    );
}

/// The Python with zarr: `RASK_ZARR_PYTHON`, else the benches' venv. zarr is not a benchmark
/// peer, so it is installed by hand; zarr >= 3.2 needs Python >= 3.12 and the benches' venv
/// is 3.11, so e.g. `python3 -m venv /tmp/rask-zarr-venv && /tmp/rask-zarr-venv/bin/pip
/// install zarr==3.1.6`, then `RASK_ZARR_PYTHON=/tmp/rask-zarr-venv/bin/python cargo test`.
fn zarr_python() -> Option<PathBuf> {
    let python = std::env::var_os("RASK_ZARR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/main/benches/.venv/bin/python"));
    let ok = python.exists()
        && std::process::Command::new(&python)
            .args([
                "-c",
                "import zarr, numpy; assert int(zarr.__version__.split('.')[0]) >= 3",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    if !ok {
        println!(
            "skipped: no Python with zarr>=3 at {} (set RASK_ZARR_PYTHON)",
            python.display()
        );
        return None;
    }
    Some(python)
}

/// zarr-python reads what rask writes, and rask reads what zarr-python writes (uncompressed
/// and gzip), when a Python with zarr 3 is installed (skipped otherwise).
#[test]
fn zarr_python_agrees_when_available() {
    let Some(python) = zarr_python() else {
        return;
    };
    let dir = TempDir::new("python");
    let a = data::<i32>(&[9, 4, 3]);
    let x = array::from_ndarray(a.clone(), (4, 3, 2)).unwrap();
    array::to_zarr(&x, dir.path("rask"))
        .unwrap()
        .compute()
        .unwrap();
    let f = array::from_ndarray(data::<f64>(&[7]), 3).unwrap();
    let gz = ZarrOptions {
        gzip: Some(3),
        dimension_names: Some(vec!["t".into()]),
    };
    array::to_zarr_with(&f, dir.path("rask_gz"), &gz)
        .unwrap()
        .compute()
        .unwrap();
    let b = array::from_ndarray(data::<bool>(&[5]), 2).unwrap();
    array::to_zarr(&b, dir.path("rask_bool"))
        .unwrap()
        .compute()
        .unwrap();
    let script = r#"
import sys, numpy as np, zarr
d = sys.argv[1]
want = ((np.arange(9 * 4 * 3, dtype=np.uint64) + 1) * np.uint64(0x9E3779B97F4A7C15)).astype(np.int32)
a = zarr.open_array(d + "/rask", mode="r")
assert a.dtype == np.int32 and a.shape == (9, 4, 3) and a.chunks == (4, 3, 2), (a.dtype, a.shape, a.chunks)
assert np.array_equal(a[:], want.reshape(9, 4, 3))
f = zarr.open_array(d + "/rask_gz", mode="r")
assert np.array_equal(f[:], (np.arange(7) * 1.1 - 7.3) ** 3), f[:]
assert f.metadata.dimension_names == ("t",)
b = zarr.open_array(d + "/rask_bool", mode="r")
assert np.array_equal(b[:], np.arange(5) % 3 == 0), b[:]

p = zarr.create_array(d + "/py", shape=(5, 7), chunks=(2, 3), dtype="float64",
                      serializer=zarr.codecs.BytesCodec(), compressors=None, fill_value=float("nan"))
p[:] = np.arange(35, dtype=np.float64).reshape(5, 7) / 4
p[0:2, 0:3] = np.nan  # an all-fill chunk: zarr-python leaves its file out
u = zarr.create_array(d + "/py_u16", shape=(10,), chunks=(4,), dtype="uint16",
                      serializer=zarr.codecs.BytesCodec(), compressors=None, fill_value=3)
u[:6] = np.arange(6) * 1000
g = zarr.create_array(d + "/py_gz", shape=(4, 4), chunks=(3, 3), dtype="int64",
                      compressors=zarr.codecs.GzipCodec(level=4))
g[:] = np.arange(16).reshape(4, 4) - 8
s = zarr.create_array(d + "/py_0d", shape=(), chunks=(), dtype="float32", compressors=None)
s[()] = 2.5
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script, dir.0.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(
        !dir.path("py/c/0/0").exists(),
        "zarr-python skipped the all-NaN chunk"
    );
    let p = array::read_zarr::<f64>(dir.path("py")).unwrap();
    assert_eq!(p.chunks().sizes(), &[vec![2, 2, 1], vec![3, 3, 1]]);
    let got = p.compute().unwrap();
    for ((i, j), v) in got
        .view()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap()
        .indexed_iter()
    {
        if i < 2 && j < 3 {
            assert!(v.is_nan(), "({i}, {j}) = {v}");
        } else {
            assert_eq!(*v, (i * 7 + j) as f64 / 4.0);
        }
    }
    let u = array::read_zarr::<u16>(dir.path("py_u16")).unwrap();
    assert_eq!(
        u.compute().unwrap().into_raw_vec_and_offset().0,
        vec![0, 1000, 2000, 3000, 4000, 5000, 3, 3, 3, 3]
    );
    let g = array::read_zarr::<i64>(dir.path("py_gz")).unwrap();
    assert_eq!(
        g.compute().unwrap().into_raw_vec_and_offset().0,
        (0..16).map(|v| v - 8).collect::<Vec<i64>>()
    );
    let s = array::read_zarr::<f32>(dir.path("py_0d")).unwrap();
    assert_eq!(s.compute().unwrap().into_raw_vec_and_offset().0, vec![2.5]);
}
