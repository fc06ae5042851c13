//! The web server over a real socket: every page and endpoint, what a malformed query or a
//! missing token gets, and the event stream. The snapshot is built by hand, so every
//! expected value is known.

use std::sync::Arc;
use std::time::Duration;

use rask_dashboard::{
    GraphNode, GraphView, Info, PrefixRow, Publisher, Snapshot, StateCounts, StreamKind, TaskPhase,
    TaskRecord, WorkerRow, serve,
};
use rask_graph::{Key, KeyName};
use rask_testkit::http;

fn snapshot() -> Snapshot {
    let prefix = |name: &str, memory: u64, nbytes: u64| PrefixRow {
        prefix: name.into(),
        counts: StateCounts {
            waiting: 1,
            processing: 2,
            memory,
            forgotten: 5,
            ..Default::default()
        },
        nbytes,
        keys: memory,
    };
    Snapshot {
        seq: 0,
        now_ms: 1000.0,
        info: Info {
            source: "cluster",
            version: "0.1.0",
            address: "127.0.0.1:8786".into(),
            started_ms: 10.0,
            n_workers: 1,
            n_threads: 2,
            n_clients: 1,
            n_tasks: 9,
        },
        prefixes: vec![
            prefix("inc", 3, 24),
            prefix("idle", 0, 0),
            prefix("big", 1, 800),
        ],
        workers: vec![WorkerRow {
            id: 7,
            name: "w-7".into(),
            nthreads: 2,
            managed: 824,
            ..Default::default()
        }],
        logs: vec![Arc::new(vec!["w-7 joined".into()])],
        graph: Arc::new(GraphView {
            grouped: false,
            n_tasks: 2,
            nodes: vec![
                GraphNode {
                    id: 0,
                    label: "a".into(),
                    prefix: "a".into(),
                    state: TaskPhase::Memory,
                    counts: None,
                },
                GraphNode {
                    id: 1,
                    label: "b".into(),
                    prefix: "b".into(),
                    state: TaskPhase::Processing,
                    counts: None,
                },
            ],
            edges: vec![[0, 1]],
        }),
    }
}

fn record(i: u32) -> TaskRecord {
    TaskRecord {
        id: 0,
        worker: "w-7".into(),
        lane: i % 2,
        key: Key::new(KeyName::new("inc-00"), [i]),
        kind: StreamKind::Compute,
        start_ms: i as f64,
        stop_ms: i as f64 + 0.5,
    }
}

fn started(token: Option<&str>) -> (rask_dashboard::Dashboard, Arc<Publisher>) {
    let publisher = Arc::new(Publisher::new());
    let d = serve("127.0.0.1:0", token.map(String::from), publisher.clone()).unwrap();
    publisher.publish(snapshot());
    publisher.record((0..5).map(record), 2);
    (d, publisher)
}

#[test]
fn pages_and_static_files_are_served_and_unknown_ones_are_404() {
    let (d, _p) = started(None);
    let url = d.url();
    for page in ["status", "graph", "memory", "workers", "info"] {
        let r = http::get(&format!("{url}/{page}")).unwrap();
        assert_eq!(r.status, 200, "/{page}");
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert!(
            r.text().contains("/static/dashboard.js"),
            "/{page} loads the script"
        );
    }
    let r = http::get(&format!("{url}/")).unwrap();
    assert!((300..400).contains(&r.status));
    assert_eq!(r.header("location"), Some("/status"));
    let js = http::get(&format!("{url}/static/dashboard.js")).unwrap();
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").unwrap().contains("javascript"));
    for missing in ["/nope", "/static/nope.js", "/api/nope", "/status/extra"] {
        assert_eq!(
            http::get(&format!("{url}{missing}")).unwrap().status,
            404,
            "{missing}"
        );
    }
}

#[test]
fn the_api_answers_from_the_published_snapshot() {
    let (d, p) = started(None);
    let url = d.url();
    let info = http::get(&format!("{url}/api/info")).unwrap().json();
    assert_eq!(info["seq"], 1);
    assert_eq!(info["source"], "cluster");
    assert_eq!(info["n_tasks"], 9);

    let status = http::get(&format!("{url}/api/status")).unwrap().json();
    assert_eq!(status["prefixes"].as_array().unwrap().len(), 3);
    let inc = &status["prefixes"][0];
    assert_eq!(inc["prefix"], "inc");
    assert_eq!(
        (
            &inc["waiting"],
            &inc["processing"],
            &inc["memory"],
            &inc["forgotten"],
            &inc["nbytes"]
        ),
        (&1.into(), &2.into(), &3.into(), &5.into(), &24.into())
    );
    assert_eq!(status["workers"][0]["name"], "w-7");
    assert!(status["workers"][0].get("logs").is_none());

    let workers = http::get(&format!("{url}/api/workers")).unwrap().json();
    assert_eq!(workers["workers"][0]["logs"][0], "w-7 joined");
    assert_eq!(workers["workers"][0]["managed"], 824);

    // Largest first, prefixes holding nothing left out.
    let memory = http::get(&format!("{url}/api/memory")).unwrap().json();
    let rows: Vec<(String, u64, u64)> = memory["prefixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["prefix"].as_str().unwrap().to_string(),
                r["nbytes"].as_u64().unwrap(),
                r["keys"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, vec![("big".into(), 800, 1), ("inc".into(), 24, 3)]);

    let graph = http::get(&format!("{url}/api/graph")).unwrap().json();
    assert_eq!(graph["grouped"], false);
    assert_eq!(graph["nodes"][1]["state"], "processing");
    assert_eq!(graph["edges"][0], serde_json::json!([0, 1]));

    let all = http::get(&format!("{url}/api/tasks")).unwrap().json();
    assert_eq!(all["last"], 5);
    assert_eq!(all["dropped"], 2);
    assert_eq!(all["records"].as_array().unwrap().len(), 5);
    let page = http::get(&format!("{url}/api/tasks?since=2&limit=2"))
        .unwrap()
        .json();
    let ids: Vec<u64> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![4, 5], "the newest two after id 2");
    assert_eq!(page["records"][1]["key"], "('inc-00', 4)");
    assert_eq!(page["records"][1]["kind"], "compute");

    // A new snapshot is what the next answer reads.
    let mut s = snapshot();
    s.info.n_tasks = 42;
    p.publish(s);
    let info = http::get(&format!("{url}/api/info")).unwrap().json();
    assert_eq!(
        (info["seq"].as_u64(), info["n_tasks"].as_u64()),
        (Some(2), Some(42))
    );
}

#[test]
fn malformed_queries_get_400_naming_the_parameter() {
    let (d, _p) = started(None);
    let url = d.url();
    for (query, names) in [
        ("since=abc", "`since`"),
        ("since=-1", "`since`"),
        ("limit=0", "`limit`"),
        ("limit=-1", "`limit`"),
        ("limit=99999999", "`limit`"),
        ("bogus=1", "`bogus`"),
        ("since=%zz", "%zz"),
    ] {
        let r = http::get(&format!("{url}/api/tasks?{query}")).unwrap();
        assert_eq!(r.status, 400, "{query}");
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(names), "{query}: {msg}");
    }
    let r = http::get(&format!("{url}/api/status?since=1")).unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn with_a_token_every_request_must_carry_it() {
    let (d, _p) = started(Some("s3cret"));
    let url = d.url();
    let r = http::get(&format!("{url}/api/status")).unwrap();
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].as_str().unwrap().contains("token"));
    let r = http::get(&format!("{url}/status")).unwrap();
    assert_eq!(r.status, 401);
    assert!(
        r.text().contains("name=\"token\""),
        "the login form: {}",
        r.text()
    );
    let wrong = http::request(
        "GET",
        &format!("{url}/api/status"),
        &[("Authorization", "Bearer s3creT")],
        None,
    )
    .unwrap();
    assert_eq!(wrong.status, 401);
    let ok = http::request(
        "GET",
        &format!("{url}/api/status"),
        &[("Authorization", "Bearer s3cret")],
        None,
    )
    .unwrap();
    assert_eq!(ok.status, 200);
    // Once in the URL, then as a cookie.
    let r = http::get(&format!("{url}/status?token=s3cret")).unwrap();
    assert_eq!(r.status, 200);
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(cookie.starts_with("rask_token=s3cret") && cookie.contains("HttpOnly"));
    let with_cookie = http::request(
        "GET",
        &format!("{url}/api/info"),
        &[("Cookie", "other=1; rask_token=s3cret")],
        None,
    )
    .unwrap();
    assert_eq!(with_cookie.status, 200);
    assert_eq!(
        http::get(&format!("{url}/api/tasks?token=nope"))
            .unwrap()
            .status,
        401
    );
}

#[test]
fn the_event_stream_starts_with_the_latest_snapshot() {
    let (d, _p) = started(None);
    let (event, data) =
        http::first_event(&format!("{}/api/events", d.url()), Duration::from_secs(10)).unwrap();
    assert_eq!(event, "snapshot");
    let v: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(v["seq"], 1);
    assert_eq!(v["prefixes"][0]["prefix"], "inc");
}

#[test]
fn a_taken_address_is_an_error_naming_it() {
    let (d, _p) = started(None);
    let taken = d.address().to_string();
    let e = serve(&taken, None, Arc::new(Publisher::new()))
        .err()
        .expect("the port is in use");
    assert!(e.to_string().contains(&taken), "{e}");
}

#[test]
fn stopping_does_not_wait_for_open_event_streams() {
    use std::io::{Read, Write};
    let (d, _p) = started(None);
    let mut s = std::net::TcpStream::connect(d.address()).unwrap();
    s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0 && buf.starts_with(b"HTTP/1.1 200"));
    let t = std::time::Instant::now();
    drop(d);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stopping took {:?} with a page open",
        t.elapsed()
    );
}
