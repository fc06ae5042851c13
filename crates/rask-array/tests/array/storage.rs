//! Storage: `.npy` files and stacks written and read back block by block, byte-exact against
//! NumPy's format, and bad files reported by path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{ArrayD, IxDyn};
use rask::Plan;
use rask::array::{self, Array, ChunkSpec, Element};
use rask::prelude::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rask-storage-{tag}-{}-{}",
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
    fn to_le(self) -> Vec<u8>;
}

macro_rules! sample_int {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            fn sample(i: usize) -> Self {
                (i as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) as $t
            }
            fn to_le(self) -> Vec<u8> {
                self.to_le_bytes().to_vec()
            }
        }
    )*};
}
sample_int!(u8, u16, u32, u64, i8, i16, i32, i64);

impl Sample for f32 {
    fn sample(i: usize) -> Self {
        i as f32 * 1.5 - 7.25
    }
    fn to_le(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
}

impl Sample for f64 {
    fn sample(i: usize) -> Self {
        (i as f64 * 1.1 - 7.3).powi(3)
    }
    fn to_le(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
}

impl Sample for bool {
    fn sample(i: usize) -> Self {
        i % 3 == 0
    }
    fn to_le(self) -> Vec<u8> {
        vec![self as u8]
    }
}

fn data<T: Sample>(shape: &[usize]) -> ArrayD<T> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(T::sample).collect()).unwrap()
}

/// Uneven block lengths adding up to `len`, starting at `first`.
fn uneven(len: usize, first: usize) -> Vec<usize> {
    if len == 0 {
        return vec![0];
    }
    let mut out = Vec::new();
    let (mut left, mut c) = (len, first);
    while left > 0 {
        let n = c.min(left);
        out.push(n);
        left -= n;
        c = c % 3 + 1;
    }
    out
}

const SHAPES: &[&[usize]] = &[&[], &[0], &[7], &[5, 0], &[6, 5], &[4, 3, 5], &[1, 9, 2]];

fn round_trips<T: Sample>() {
    let dir = TempDir::new(T::DTYPE.name());
    for (n, shape) in SHAPES.iter().enumerate() {
        let want = data::<T>(shape);
        let write: Vec<Vec<usize>> = shape.iter().map(|&l| uneven(l, 2)).collect();
        let read: Vec<Vec<usize>> = shape.iter().map(|&l| uneven(l, 3)).collect();
        let x = array::from_ndarray(want.clone(), write.clone()).unwrap();

        let file = dir.path(&format!("{n}.npy"));
        array::to_npy(&x, &file).unwrap().compute().unwrap();
        let y = array::read_npy::<T>(&file, read.clone()).unwrap();
        assert_eq!(y.shape(), *shape);
        assert_eq!(y.chunks().sizes(), read.as_slice());
        assert_eq!(y.compute().unwrap(), want, "{} {shape:?}", T::DTYPE);
        // Also read as one block and with "auto" chunks.
        let whole = array::read_npy::<T>(&file, ChunkSpec::auto()).unwrap();
        assert_eq!(whole.compute().unwrap(), want);

        let stack = dir.path(&format!("stack{n}"));
        array::to_npy_stack(&x, &stack).unwrap().compute().unwrap();
        let z = array::read_npy_stack::<T>(&stack).unwrap();
        assert_eq!(
            z.chunks().sizes(),
            write.as_slice(),
            "the stack keeps its chunks"
        );
        assert_eq!(z.compute().unwrap(), want, "stack {} {shape:?}", T::DTYPE);
    }
}

#[test]
fn every_dtype_round_trips_with_other_chunks() {
    round_trips::<bool>();
    round_trips::<u8>();
    round_trips::<u16>();
    round_trips::<u32>();
    round_trips::<u64>();
    round_trips::<i8>();
    round_trips::<i16>();
    round_trips::<i32>();
    round_trips::<i64>();
    round_trips::<f32>();
    round_trips::<f64>();
}

#[test]
fn blocks_in_any_memory_layout_are_written_in_c_order() {
    let dir = TempDir::new("layout");
    let base = data::<i32>(&[5, 7, 3]);
    let x = array::from_ndarray(base.clone(), [2, 3, 2])
        .unwrap()
        .transpose(None)
        .unwrap();
    let file = dir.path("t.npy");
    array::to_npy(&x, &file).unwrap().compute().unwrap();
    let y = array::read_npy::<i32>(&file, [1, 4, 5]).unwrap();
    assert_eq!(y.shape(), &[3, 7, 5]);
    assert_eq!(y.compute().unwrap(), base.t().to_owned());
}

/// The header NumPy 2.4 writes for `dict`: padded with spaces to 64 bytes, then '\n'.
fn numpy_file(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    let hlen = dict.len() + 1;
    let pad = 64 - (10 + hlen) % 64;
    out.extend_from_slice(&((hlen + pad) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out.extend_from_slice(data);
    out
}

fn le_bytes<T: Sample>(a: &ArrayD<T>) -> Vec<u8> {
    a.iter().flat_map(|&v| v.to_le()).collect()
}

fn check_bytes<T: Sample>(shape: &[usize], dict: &str, chunks: impl Into<ChunkSpec>) {
    let dir = TempDir::new("bytes");
    let a = data::<T>(shape);
    let file = dir.path("a.npy");
    let x = array::from_ndarray(a.clone(), chunks).unwrap();
    array::to_npy(&x, &file).unwrap().compute().unwrap();
    let got = std::fs::read(&file).unwrap();
    let want = numpy_file(dict, &le_bytes(&a));
    assert_eq!(got.len(), want.len(), "{dict}");
    assert_eq!(got, want, "{dict}");
}

#[test]
fn to_npy_writes_exactly_what_numpy_writes() {
    // The dicts as `numpy.save` writes them, including the 21 - len(str(shape[0])) spare
    // spaces it leaves for the first axis to grow (checked against NumPy 2.4.6).
    let grow = |first: usize| " ".repeat(21 - first.to_string().len());
    check_bytes::<f64>(
        &[3, 4],
        &format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }}{}",
            grow(3)
        ),
        (2, 3),
    );
    check_bytes::<i8>(
        &[5],
        &format!(
            "{{'descr': '|i1', 'fortran_order': False, 'shape': (5,), }}{}",
            grow(5)
        ),
        2,
    );
    check_bytes::<bool>(
        &[],
        "{'descr': '|b1', 'fortran_order': False, 'shape': (), }",
        ChunkSpec::PerAxis(vec![]),
    );
    check_bytes::<u16>(
        &[0, 2],
        &format!(
            "{{'descr': '<u2', 'fortran_order': False, 'shape': (0, 2), }}{}",
            grow(0)
        ),
        1,
    );
    check_bytes::<i64>(
        &[12, 3, 2],
        &format!(
            "{{'descr': '<i8', 'fortran_order': False, 'shape': (12, 3, 2), }}{}",
            grow(12)
        ),
        (5, 2, 1),
    );
    check_bytes::<f32>(
        &[1000, 2],
        &format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 2), }}{}",
            grow(1000)
        ),
        (300, 1),
    );
    // A header that is already 64-byte aligned still gets 64 bytes of padding, as NumPy's.
    assert_eq!(numpy_file(&"x".repeat(53), &[]).len(), 128);
}

#[test]
fn hand_written_npy_files_are_read() {
    let dir = TempDir::new("hand");
    // Keys in another order, double quotes, 16-byte alignment (NumPy before 1.? padded to
    // 16), no trailing comma.
    let values: Vec<i32> = (0..6).map(|i| i * 1000 - 2500).collect();
    let dict = "{\"shape\": (2, 3), \"fortran_order\": False, \"descr\": \"<i4\"}";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let hlen = dict.len() + 1;
    let pad = (16 - (10 + hlen) % 16) % 16;
    bytes.extend_from_slice(&((hlen + pad) as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend(std::iter::repeat_n(b' ', pad));
    bytes.push(b'\n');
    for v in &values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let file = dir.path("v1.npy");
    std::fs::write(&file, &bytes).unwrap();
    let x = array::read_npy::<i32>(&file, [1, 2]).unwrap();
    let want = ArrayD::from_shape_vec(IxDyn(&[2, 3]), values.clone()).unwrap();
    assert_eq!(x.compute().unwrap(), want);

    // Version 2.0: a u32 header length.
    let dict = "{'descr': '<u8', 'fortran_order': False, 'shape': (4,), }";
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    let hlen = dict.len() + 1;
    let pad = 64 - (12 + hlen) % 64;
    bytes.extend_from_slice(&((hlen + pad) as u32).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend(std::iter::repeat_n(b' ', pad));
    bytes.push(b'\n');
    for v in [1u64, u64::MAX, 3, 1 << 40] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let file = dir.path("v2.npy");
    std::fs::write(&file, &bytes).unwrap();
    let x = array::read_npy::<u64>(&file, 3).unwrap();
    assert_eq!(
        x.compute().unwrap().into_raw_vec_and_offset().0,
        vec![1u64, u64::MAX, 3, 1 << 40]
    );
}

/// How many block-reading tasks a plan of `x` runs, fused into other tasks or not.
fn read_tasks<T: Element>(x: &Array<T>) -> usize {
    let plan = Plan::new(x, Default::default()).unwrap();
    plan.graph
        .tasks()
        .iter()
        .filter(|t| match t.op.as_composite() {
            Some(c) => c
                .steps()
                .iter()
                .any(|s| s.op.name() == "rask.array.read_npy"),
            None => t.op.name() == "rask.array.read_npy",
        })
        .count()
}

#[test]
fn a_slice_reads_only_the_blocks_it_needs() {
    let dir = TempDir::new("slice");
    let file = dir.path("big.npy");
    let a = data::<f64>(&[100, 40]);
    array::to_npy(&array::from_ndarray(a.clone(), 100).unwrap(), &file)
        .unwrap()
        .compute()
        .unwrap();
    let x = array::read_npy::<f64>(&file, (10, 20)).unwrap();
    assert_eq!(read_tasks(&x), 20);
    let s = x.slice(&array::s![12..25, 30..]).unwrap();
    assert_eq!(
        read_tasks(&s),
        2,
        "rows 12..25 of the right column of blocks"
    );

    // The bytes of untouched blocks are never read: cut the file after row 30 and the
    // slice still computes, while the whole array names the truncated file.
    let keep = 128 + 30 * 40 * 8;
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(keep).unwrap();
    assert_eq!(
        s.compute().unwrap(),
        a.slice(ndarray::s![12..25, 30..]).to_owned().into_dyn()
    );
    let err = x.compute().unwrap_err().to_string();
    assert!(
        err.contains("big.npy") && err.contains("truncated") && err.contains(&keep.to_string()),
        "{err}"
    );
}

#[test]
fn nothing_is_written_until_the_store_is_computed() {
    let dir = TempDir::new("lazy");
    let file = dir.path("x.npy");
    let x = array::arange::<i64>(0.0, 10.0, 1.0, 3).unwrap();
    let store = array::to_npy(&x, &file).unwrap();
    assert_eq!(store.keys().len(), 4);
    assert!(!file.exists());
    store.compute().unwrap();
    assert!(file.exists());
    let stack = dir.path("s");
    let store = array::to_npy_stack(&x, &stack).unwrap();
    assert!(!stack.exists());
    store.compute().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&stack)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["0.npy", "1.npy", "2.npy", "3.npy", "info"]);
    let info = std::fs::read_to_string(stack.join("info")).unwrap();
    assert_eq!(
        info,
        "rask npy stack 1\ndtype <i8\nshape 10\nchunks 3,3,3,1\n"
    );
}

fn write_npy(path: &Path, dict: &str, data: &[u8]) {
    std::fs::write(path, numpy_file(dict, data)).unwrap();
}

fn err_of<T: Element>(path: &Path) -> String {
    array::read_npy::<T>(path, 2).unwrap_err().to_string()
}

#[test]
fn bad_npy_files_are_errors_naming_the_file() {
    let dir = TempDir::new("bad");
    let missing = dir.path("missing.npy");
    let e = err_of::<f64>(&missing);
    assert!(e.contains("missing.npy"), "{e}");

    // Truncated: names the path, the size needed and the size found.
    let short = dir.path("short.npy");
    write_npy(
        &short,
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }",
        &[0u8; 40],
    );
    let e = err_of::<f64>(&short);
    assert!(
        e.contains("short.npy")
            && e.contains("truncated")
            && e.contains("224")
            && e.contains("168"),
        "{e}"
    );
    let stub = dir.path("stub.npy");
    std::fs::write(&stub, b"\x93NUM").unwrap();
    let e = err_of::<f64>(&stub);
    assert!(e.contains("stub.npy") && e.contains("not a .npy"), "{e}");
    let text = dir.path("text.npy");
    std::fs::write(&text, b"hello, this is not numpy at all").unwrap();
    let e = err_of::<f64>(&text);
    assert!(e.contains("text.npy") && e.contains("not a .npy"), "{e}");

    // Unsupported and big-endian descrs name the descr.
    for (name, descr) in [("c16.npy", "<c16"), ("be.npy", ">f8"), ("str.npy", "<U3")] {
        let p = dir.path(name);
        write_npy(
            &p,
            &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2,), }}"),
            &[0u8; 32],
        );
        let e = err_of::<f64>(&p);
        assert!(e.contains(name) && e.contains(descr), "{e}");
        if descr.starts_with('>') {
            assert!(e.contains("big-endian"), "{e}");
        }
    }
    let p = dir.path("struct.npy");
    write_npy(
        &p,
        "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2,), }",
        &[0u8; 8],
    );
    let e = err_of::<i32>(&p);
    assert!(e.contains("struct.npy") && e.contains("structured"), "{e}");

    // Fortran order.
    let p = dir.path("fortran.npy");
    write_npy(
        &p,
        "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }",
        &[0u8; 32],
    );
    let e = err_of::<f64>(&p);
    assert!(
        e.contains("fortran.npy") && e.contains("fortran_order"),
        "{e}"
    );

    // A dtype other than the requested one: names both.
    let p = dir.path("ints.npy");
    write_npy(
        &p,
        "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
        &[0u8; 16],
    );
    let e = err_of::<f32>(&p);
    assert!(
        e.contains("ints.npy") && e.contains("int64") && e.contains("float32"),
        "{e}"
    );

    // Malformed headers.
    let p = dir.path("garbled.npy");
    write_npy(&p, "{'descr': '<i8', 'shape': (2,", &[0u8; 16]);
    let e = err_of::<i64>(&p);
    assert!(e.contains("garbled.npy") && e.contains("malformed"), "{e}");
    let p = dir.path("noshape.npy");
    write_npy(&p, "{'descr': '<i8', 'fortran_order': False}", &[0u8; 16]);
    let e = err_of::<i64>(&p);
    assert!(e.contains("noshape.npy") && e.contains("shape"), "{e}");
}

#[test]
fn bad_stacks_and_targets_are_errors_naming_the_path() {
    let dir = TempDir::new("badstack");
    let e = array::read_npy_stack::<f64>(dir.path("nope"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("info"), "{e}");

    let x = array::from_ndarray(data::<i16>(&[6, 4]), (4, 3)).unwrap();
    let stack = dir.path("s");
    array::to_npy_stack(&x, &stack).unwrap().compute().unwrap();
    let e = array::read_npy_stack::<u16>(&stack)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("info") && e.contains("int16") && e.contains("uint16"),
        "{e}"
    );

    // A block file replaced by one of another shape, or removed: named when computed.
    let other = array::from_ndarray(data::<i16>(&[3, 3]), 3).unwrap();
    array::to_npy(&other, stack.join("0_1.npy"))
        .unwrap()
        .compute()
        .unwrap();
    std::fs::remove_file(stack.join("1_0.npy")).unwrap();
    let y = array::read_npy_stack::<i16>(&stack).unwrap();
    let e = y.compute().unwrap_err().to_string();
    assert!(
        (e.contains("0_1.npy") && e.contains("[3, 3]")) || e.contains("1_0.npy"),
        "{e}"
    );
    let e = y
        .slice(&array::s![4.., ..3])
        .unwrap()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(e.contains("1_0.npy"), "{e}");

    std::fs::write(stack.join("info"), "something else\n").unwrap();
    let e = array::read_npy_stack::<i16>(&stack)
        .unwrap_err()
        .to_string();
    assert!(e.contains("info") && e.contains("malformed"), "{e}");

    // Writing into a directory that does not exist names the file when computed.
    let e = array::to_npy(&x, dir.path("no/such/dir/x.npy"))
        .unwrap()
        .compute()
        .unwrap_err()
        .to_string();
    assert!(e.contains("no/such/dir/x.npy"), "{e}");
}

/// NumPy reads what rask writes and rask reads what NumPy writes, when the benches' Python
/// is installed (skipped otherwise).
#[test]
fn numpy_agrees_when_available() {
    let python = Path::new("/work/main/benches/.venv/bin/python");
    let ok = python.exists()
        && std::process::Command::new(python)
            .args(["-c", "import numpy"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    if !ok {
        println!("skipped: no Python with numpy at {}", python.display());
        return;
    }
    let dir = TempDir::new("numpy");
    let a = data::<i32>(&[9, 4, 3]);
    let x = array::from_ndarray(a.clone(), (4, 3, 2)).unwrap();
    array::to_npy(&x, dir.path("rask.npy"))
        .unwrap()
        .compute()
        .unwrap();
    array::to_npy_stack(&x, dir.path("stack"))
        .unwrap()
        .compute()
        .unwrap();
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
a = np.load(d + "/rask.npy")
assert a.dtype == np.int32 and a.shape == (9, 4, 3), (a.dtype, a.shape)
b = np.load(d + "/stack/1_1_0.npy")
assert np.array_equal(b, a[4:8, 3:4, 0:2]), b
np.save(d + "/numpy.npy", (a.astype(np.float64) * 0.5)[:, ::2, :].copy())
np.save(d + "/bools.npy", np.arange(10) % 3 == 0)
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script, dir.0.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let y = array::read_npy::<f64>(dir.path("numpy.npy"), (4, 1, 2)).unwrap();
    let want = a
        .mapv(|v| v as f64 * 0.5)
        .slice(ndarray::s![.., ..;2, ..])
        .to_owned()
        .into_dyn();
    assert_eq!(y.compute().unwrap(), want);
    let b = array::read_npy::<bool>(dir.path("bools.npy"), 4).unwrap();
    assert_eq!(
        b.compute().unwrap().into_raw_vec_and_offset().0,
        (0..10).map(|i| i % 3 == 0).collect::<Vec<_>>()
    );
}
