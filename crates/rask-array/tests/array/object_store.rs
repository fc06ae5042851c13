//! Arrays in an object store: `.npy` (ranged reads of one object), npy stacks and Zarr in an
//! S3 bucket served by `s3s-fs` (an S3 server over a temp folder) on loopback, in-process.

use std::sync::OnceLock;

use ndarray::{ArrayD, IxDyn};
use rask::array;
use rask::prelude::*;
use rask_io::{IoStore, StoreOptions};
use rask_testkit::S3TestServer;

const AK: &str = "rask-array-key";
const SK: &str = "rask-array-secret";
const BUCKET: &str = "arrays";

/// One server for the whole test binary (the store options are process-wide).
fn server() -> &'static S3TestServer {
    static SERVER: OnceLock<S3TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = S3TestServer::start(AK, SK);
        server.create_bucket(BUCKET);
        rask_io::set_default_options(StoreOptions::s3_compatible(&server.endpoint(), AK, SK));
        server
    })
}

fn bucket() -> IoStore {
    let s = server();
    IoStore::open(
        &format!("s3://{BUCKET}"),
        &StoreOptions::s3_compatible(&s.endpoint(), AK, SK),
    )
    .unwrap()
}

fn matrix(rows: usize, cols: usize) -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |i| (i[0] * 100 + i[1]) as f64 + 0.5)
}

#[test]
fn zarr_round_trip_in_a_bucket() {
    let _ = server();
    let want = matrix(9, 7);
    let x = array::from_ndarray(want.clone(), [4, 3]).unwrap();
    let url = format!("s3://{BUCKET}/zarr/m.zarr");
    array::to_zarr(&x, &url).unwrap().compute().unwrap();
    assert!(bucket().exists("zarr/m.zarr/zarr.json").unwrap());
    assert!(bucket().exists("zarr/m.zarr/c/2/2").unwrap());
    let y = array::read_zarr::<f64>(&url).unwrap();
    assert_eq!(y.chunks().sizes(), &[vec![4, 4, 1], vec![3, 3, 1]]);
    assert_eq!(y.compute().unwrap(), want);

    // A missing chunk object reads as the fill value (0).
    bucket().delete("zarr/m.zarr/c/0/0").unwrap();
    let got = array::read_zarr::<f64>(&url).unwrap().compute().unwrap();
    assert_eq!(got[[0, 0]], 0.0);
    assert_eq!(got[[3, 2]], 0.0);
    assert_eq!(got[[4, 0]], want[[4, 0]]);
}

#[test]
fn npy_stack_round_trip_in_a_bucket() {
    let _ = server();
    let want = matrix(10, 6);
    let x = array::from_ndarray(want.clone(), [4, 6]).unwrap();
    let url = format!("s3://{BUCKET}/stack/m");
    array::to_npy_stack(&x, &url).unwrap().compute().unwrap();
    let names: Vec<String> = bucket()
        .list("stack/m")
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .collect();
    assert_eq!(
        names,
        [
            "stack/m/0_0.npy",
            "stack/m/1_0.npy",
            "stack/m/2_0.npy",
            "stack/m/info"
        ]
    );
    let y = array::read_npy_stack::<f64>(&url).unwrap();
    assert_eq!(y.compute().unwrap(), want);
}

#[test]
fn single_npy_object_is_read_with_ranged_gets() {
    let _ = server();
    // Write the file locally, upload it, read it back block by block from the bucket.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("m.npy");
    let want = matrix(6, 5);
    let x = array::from_ndarray(want.clone(), [6, 5]).unwrap();
    array::to_npy(&x, &local).unwrap().compute().unwrap();
    bucket()
        .put("npy/m.npy", std::fs::read(&local).unwrap())
        .unwrap();
    let url = format!("s3://{BUCKET}/npy/m.npy");
    // Blocks of part rows: several runs per block.
    let y = array::read_npy::<f64>(&url, [4, 2]).unwrap();
    assert_eq!(y.compute().unwrap(), want);
    // A slice reads only the blocks it touches.
    let row = array::read_npy::<f64>(&url, [1, 5]).unwrap();
    assert_eq!(row.npartitions(), 6);
    // The local file through a file:// URL too.
    let z = array::read_npy::<f64>(format!("file://{}", local.display()), [3, 3]).unwrap();
    assert_eq!(z.compute().unwrap(), want);
    // Wrong dtype: the error names the URL.
    let err = array::read_npy::<f32>(&url, 2).unwrap_err().to_string();
    assert!(err.contains(&url), "{err}");
}

#[test]
fn errors_name_the_url() {
    let _ = server();
    let url = format!("s3://{BUCKET}/nothing/here.zarr");
    let err = array::read_zarr::<f64>(&url).unwrap_err().to_string();
    assert!(err.contains(&format!("{url}/zarr.json")), "{err}");
    assert!(err.contains("no such object"), "{err}");

    let url = format!("s3://{BUCKET}/nothing/here.npy");
    let err = array::read_npy::<f64>(&url, 2).unwrap_err().to_string();
    assert!(
        err.contains(&url) && err.contains("no such object"),
        "{err}"
    );

    let err = array::read_npy_stack::<f64>("s3://no-such-bucket/stack")
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3://no-such-bucket/stack/info"), "{err}");
    // (s3s-fs answers a GET in a missing bucket with NoSuchKey; S3 says NoSuchBucket.)
    assert!(err.contains("bucket `no-such-bucket`"), "{err}");

    let x = array::from_ndarray(matrix(2, 2), [1, 2]).unwrap();
    let err = array::to_npy(&x, format!("s3://{BUCKET}/x.npy"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("s3://arrays/x.npy") && err.contains("to_npy_stack"),
        "{err}"
    );

    let err = array::read_zarr::<f64>("ftp://host/a.zarr")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ftp://host/a.zarr"), "{err}");
    // The bytes really live in the server's folder.
    assert!(server().root().join(BUCKET).exists());
}
