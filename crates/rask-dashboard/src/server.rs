//! The web server: pages, static files, the JSON API and the event stream, all read from a
//! [`Publisher`]. It runs on its own thread with its own single-threaded runtime, so it shares
//! nothing with the scheduler's loop but the publisher.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rask_error::{RaskError, Result};
use serde::Serialize;

use crate::snapshot::{PrefixRow, Snapshot, WorkerRow};
use crate::stream::MAX_PAGE;
use crate::{Publisher, snapshot};

/// The pages, compiled in.
const PAGES: &[(&str, &str)] = &[
    ("status", include_str!("../web/status.html")),
    ("graph", include_str!("../web/graph.html")),
    ("memory", include_str!("../web/memory.html")),
    ("workers", include_str!("../web/workers.html")),
    ("info", include_str!("../web/info.html")),
];
const LOGIN_PAGE: &str = include_str!("../web/login.html");
const STATIC: &[(&str, &str, &str)] = &[
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("../web/dashboard.css"),
    ),
];

const TOKEN_COOKIE: &str = "rask_token";

#[derive(Clone)]
struct App {
    publisher: Arc<Publisher>,
    token: Option<Arc<str>>,
}

/// A running dashboard server; dropping it stops it.
pub struct Dashboard {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dashboard {
    /// Where it listens (the port chosen when asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://address`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the dashboard on `address` (`host:port`; port 0 picks one) from `publisher`, on a
/// thread of its own. With a `token`, every request must carry it (see `docs/dashboard.md`).
pub fn serve(address: &str, token: Option<String>, publisher: Arc<Publisher>) -> Result<Dashboard> {
    let listener = std::net::TcpListener::bind(address).map_err(|e| {
        RaskError::invalid_argument(
            "dashboard address",
            format!("cannot listen on {address}: {e}"),
        )
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| RaskError::io(address, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| RaskError::io(address, e))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RaskError::io("the dashboard's runtime", e))?;
    let app = App {
        publisher,
        token: token.map(Arc::from),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("rask-dashboard".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("dashboard: {e}");
                        return;
                    }
                };
                let router = router(app);
                // Not a graceful shutdown: an open page's event stream never ends, so waiting
                // for connections to finish would wait forever. Dropping the runtime below
                // closes them.
                tokio::select! {
                    served = axum::serve(listener, router) => {
                        if let Err(e) = served {
                            tracing::error!("dashboard: {e}");
                        }
                    }
                    _ = stop_rx => {}
                }
            });
            rt.shutdown_timeout(Duration::from_millis(50));
        })
        .map_err(|e| RaskError::io("the dashboard's thread", e))?;
    tracing::info!("dashboard at http://{bound}/status");
    Ok(Dashboard {
        address: bound,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/status") }))
        .route("/static/{file}", get(static_file))
        .route("/api/info", get(api_info))
        .route("/api/status", get(api_status))
        .route("/api/workers", get(api_workers))
        .route("/api/memory", get(api_memory))
        .route("/api/graph", get(api_graph))
        .route("/api/tasks", get(api_tasks))
        .route("/api/events", get(api_events))
        .route("/{page}", get(page))
        .fallback(|| async { not_found() })
        .layer(axum::middleware::from_fn_with_state(app.clone(), authorize))
        .with_state(app)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404: no such page (try /status, /graph, /memory, /workers, /info)\n",
    )
        .into_response()
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

fn json<T: Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn page(Path(name): Path<String>) -> Response {
    match PAGES.iter().find(|(n, _)| *n == name) {
        Some((_, html)) => html_response(StatusCode::OK, html),
        None => not_found(),
    }
}

fn html_response(status: StatusCode, html: &'static str) -> Response {
    (
        status,
        // `no-store` also keeps pages out of the back/forward cache, where their event
        // streams would hold connections the shown page needs.
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

async fn static_file(Path(file): Path<String>) -> Response {
    match STATIC.iter().find(|(n, _, _)| *n == file) {
        Some((_, mime, body)) => ([(header::CONTENT_TYPE, *mime)], *body).into_response(),
        None => not_found(),
    }
}

// ----- the query string ----------------------------------------------------------------

/// `a=1&b=2` into pairs, `%XX` and `+` decoded. A malformed escape is an error naming it.
fn parse_query(raw: Option<&str>) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((decode(k)?, decode(v)?));
    }
    Ok(out)
}

fn decode(s: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("malformed escape in `{s}`"))?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8"))
}

/// Reads the named whole-number parameters of an endpoint; anything else (but the token) is
/// an error naming it.
fn number_params(
    raw: Option<&str>,
    known: &[&str],
) -> std::result::Result<Vec<(String, u64)>, String> {
    let mut out = Vec::new();
    for (k, v) in parse_query(raw)? {
        if k == "token" {
            continue;
        }
        if !known.contains(&k.as_str()) {
            return Err(format!(
                "unknown parameter `{k}` (this endpoint takes: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        let n = v
            .parse::<u64>()
            .map_err(|_| format!("parameter `{k}`: `{v}` is not a whole number"))?;
        out.push((k, n));
    }
    Ok(out)
}

// ----- authorization ---------------------------------------------------------------------

fn same(a: &[u8], b: &[u8]) -> bool {
    // Compares in time independent of where they differ.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented_token(headers: &HeaderMap, query: Option<&str>) -> (Option<String>, bool) {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return (Some(t.trim().to_string()), false);
        }
    }
    if let Ok(pairs) = parse_query(query) {
        if let Some((_, t)) = pairs.into_iter().find(|(k, _)| k == "token") {
            return (Some(t), true);
        }
    }
    for cookies in headers.get_all(header::COOKIE) {
        let Ok(cookies) = cookies.to_str() else {
            continue;
        };
        for c in cookies.split(';') {
            if let Some((k, v)) = c.trim().split_once('=') {
                if k == TOKEN_COOKIE {
                    return (Some(v.to_string()), false);
                }
            }
        }
    }
    (None, false)
}

async fn authorize(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(expected) = app.token.clone() else {
        return next.run(req).await;
    };
    let (token, from_query) = presented_token(req.headers(), req.uri().query());
    let ok = token
        .as_deref()
        .is_some_and(|t| same(t.as_bytes(), expected.as_bytes()));
    if !ok {
        if token.is_some() {
            tracing::warn!(
                "dashboard: a request for {} with a wrong token",
                req.uri().path()
            );
        }
        let api = req.uri().path().starts_with("/api/");
        return if api {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "this dashboard needs its token"})),
            )
                .into_response()
        } else {
            html_response(StatusCode::UNAUTHORIZED, LOGIN_PAGE)
        };
    }
    let mut resp = next.run(req).await;
    if from_query {
        // The URL's token becomes a cookie, so the page's own requests carry it.
        let cookie = format!("{TOKEN_COOKIE}={expected}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

// ----- the JSON API ------------------------------------------------------------------------

fn no_params(q: &Option<String>) -> Option<Response> {
    number_params(q.as_deref(), &[]).err().map(bad_request)
}

#[derive(Serialize)]
struct InfoBody<'a> {
    seq: u64,
    now_ms: f64,
    #[serde(flatten)]
    info: &'a snapshot::Info,
}

async fn api_info(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    if let Some(r) = no_params(&q) {
        return r;
    }
    let s = app.publisher.latest();
    json(&InfoBody {
        seq: s.seq,
        now_ms: s.now_ms,
        info: &s.info,
    })
}

#[derive(Serialize)]
struct StatusBody<'a> {
    seq: u64,
    now_ms: f64,
    prefixes: &'a [PrefixRow],
    workers: &'a [WorkerRow],
}

fn status_body(s: &Snapshot) -> StatusBody<'_> {
    StatusBody {
        seq: s.seq,
        now_ms: s.now_ms,
        prefixes: &s.prefixes,
        workers: &s.workers,
    }
}

async fn api_status(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    if let Some(r) = no_params(&q) {
        return r;
    }
    let s = app.publisher.latest();
    json(&status_body(&s))
}

#[derive(Serialize)]
struct WorkerWithLogs<'a> {
    #[serde(flatten)]
    row: &'a WorkerRow,
    logs: &'a [String],
}

async fn api_workers(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    if let Some(r) = no_params(&q) {
        return r;
    }
    let s = app.publisher.latest();
    let workers: Vec<WorkerWithLogs<'_>> = s
        .workers
        .iter()
        .enumerate()
        .map(|(i, row)| WorkerWithLogs {
            row,
            logs: s.logs.get(i).map_or(&[][..], |l| &l[..]),
        })
        .collect();
    json(&serde_json::json!({ "seq": s.seq, "workers": workers }))
}

#[derive(Serialize)]
struct MemoryRow<'a> {
    prefix: &'a str,
    nbytes: u64,
    keys: u64,
}

async fn api_memory(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    if let Some(r) = no_params(&q) {
        return r;
    }
    let s = app.publisher.latest();
    let mut rows: Vec<MemoryRow<'_>> = s
        .prefixes
        .iter()
        .filter(|p| p.keys > 0)
        .map(|p| MemoryRow {
            prefix: &p.prefix,
            nbytes: p.nbytes,
            keys: p.keys,
        })
        .collect();
    rows.sort_by(|a, b| b.nbytes.cmp(&a.nbytes).then(a.prefix.cmp(b.prefix)));
    json(&serde_json::json!({ "seq": s.seq, "prefixes": rows }))
}

#[derive(Serialize)]
struct GraphBody<'a> {
    seq: u64,
    #[serde(flatten)]
    graph: &'a snapshot::GraphView,
}

async fn api_graph(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    if let Some(r) = no_params(&q) {
        return r;
    }
    let s = app.publisher.latest();
    json(&GraphBody {
        seq: s.seq,
        graph: &s.graph,
    })
}

#[derive(Serialize)]
struct TasksBody {
    seq: u64,
    #[serde(flatten)]
    page: crate::stream::StreamPage,
}

async fn api_tasks(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let params = match number_params(q.as_deref(), &["since", "limit"]) {
        Ok(p) => p,
        Err(e) => return bad_request(e),
    };
    let mut since = None;
    let mut limit = MAX_PAGE;
    for (k, v) in params {
        match k.as_str() {
            "since" => since = Some(v),
            _ => {
                if v == 0 || v as usize > MAX_PAGE {
                    return bad_request(format!(
                        "parameter `limit`: {v} is not between 1 and {MAX_PAGE}"
                    ));
                }
                limit = v as usize;
            }
        }
    }
    let seq = app.publisher.latest().seq;
    json(&TasksBody {
        seq,
        page: app.publisher.stream_page(since, limit),
    })
}

async fn api_events(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    if let Some(r) = no_params(&q) {
        return r;
    }
    let mut rx = app.publisher.subscribe();
    // The current snapshot first, then one event per published one; a slow reader skips
    // the snapshots it missed (the channel keeps only the latest).
    rx.mark_changed();
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let snapshot = rx.borrow_and_update().clone();
        let data = serde_json::to_string(&status_body(&snapshot)).unwrap_or_default();
        Some((
            Ok::<_, Infallible>(Event::default().event("snapshot").data(data)),
            rx,
        ))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_name_what_is_wrong() {
        assert_eq!(
            parse_query(Some("since=3&limit=10")).unwrap(),
            vec![("since".into(), "3".into()), ("limit".into(), "10".into())]
        );
        assert_eq!(
            parse_query(Some("token=a%2Bb+c")).unwrap(),
            vec![("token".into(), "a+b c".into())]
        );
        assert!(parse_query(Some("x=%zz")).unwrap_err().contains("%zz"));
        let e = number_params(Some("since=abc"), &["since"]).unwrap_err();
        assert!(e.contains("`since`") && e.contains("abc"), "{e}");
        let e = number_params(Some("bogus=1"), &["since"]).unwrap_err();
        assert!(e.contains("`bogus`"), "{e}");
        assert!(number_params(Some("token=x"), &[]).unwrap().is_empty());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
