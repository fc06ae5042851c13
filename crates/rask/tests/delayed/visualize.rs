//! Pictures of graphs: DOT, SVG, saving, state colouring and the optimized view.

use std::path::PathBuf;

use rask::prelude::*;
use rask::{ColorBy, Visualization, value};

use crate::{assert_invalid_argument, assert_task_error, config, executors};

#[rask::delayed(pure)]
fn inc(x: i64) -> i64 {
    x + 1
}

#[rask::delayed(pure)]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[rask::delayed]
fn fail(x: i64) -> Result<i64, String> {
    Err(format!("refusing {x}"))
}

/// 4 `inc`s added pairwise: 7 tasks, 6 edges.
fn known_graph() -> Delayed<i64> {
    let i: Vec<Delayed<i64>> = (1..=4).map(inc).collect();
    add(add(&i[0], &i[1]), add(&i[2], &i[3]))
}

fn node_lines(dot: &str) -> Vec<&str> {
    dot.lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with('n') && t.contains("[label=")
        })
        .collect()
}

fn edge_lines(dot: &str) -> Vec<&str> {
    dot.lines().filter(|l| l.contains(" -> ")).collect()
}

/// The DOT line of the node whose tooltip starts with `key`.
fn node_of<'a>(dot: &'a str, key: &rask::Key) -> &'a str {
    let needle = format!("tooltip=\"{key}");
    let found: Vec<&str> = node_lines(dot)
        .into_iter()
        .filter(|l| l.contains(&needle))
        .collect();
    assert_eq!(found.len(), 1, "one node for {key} in\n{dot}");
    found[0]
}

#[test]
fn dot_has_one_node_per_task_and_one_edge_per_dependency() {
    let z = known_graph();
    assert_eq!(
        z.compute_with(&config(Executor::Sync)).unwrap(),
        2 + 3 + 4 + 5
    );
    let vis = z.visualize().unwrap();
    assert_eq!(vis.graph().len(), 7);
    let dot = vis.to_dot();
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    assert_eq!(node_lines(&dot).len(), 7, "{dot}");
    assert_eq!(edge_lines(&dot).len(), 6, "{dot}");
    assert_eq!(dot.matches("label=\"inc\"").count(), 4, "{dot}");
    assert_eq!(dot.matches("label=\"add\"").count(), 3, "{dot}");
    // Every edge joins two declared nodes, and each add has two incoming edges.
    let n = node_lines(&dot).len();
    let mut indegree = vec![0; n];
    for e in edge_lines(&dot) {
        let (from, to) = e.trim().trim_end_matches(';').split_once(" -> ").unwrap();
        let from: usize = from.trim_start_matches('n').parse().unwrap();
        let to: usize = to.trim_start_matches('n').parse().unwrap();
        assert!(from < n && to < n, "{e}");
        indegree[to] += 1;
    }
    for (i, line) in node_lines(&dot).iter().enumerate() {
        let expect = if line.contains("label=\"add\"") { 2 } else { 0 };
        assert_eq!(indegree[i], expect, "{line}");
    }
    // Every task's key is in a tooltip.
    let g = z.graph().unwrap();
    for t in g.tasks() {
        node_of(&dot, &t.key);
    }
}

#[test]
fn svg_is_well_formed_enough() {
    let z = known_graph();
    let svg = z.visualize().unwrap().to_svg().unwrap();
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    assert_eq!(svg.matches("<svg").count(), 1);
    assert_eq!(svg.matches("<title>").count(), 7, "{svg}");
    assert_eq!(svg.matches("</title>").count(), 7, "{svg}");
    assert_eq!(svg.matches("<g class=\"node\"").count(), 7, "{svg}");
    assert_eq!(svg.matches(">inc<").count(), 4, "{svg}");
    assert_eq!(svg.matches(">add<").count(), 3, "{svg}");
    // Group tags balance.
    assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
    // Colouring options still render.
    for color in [ColorBy::Order, ColorBy::State, ColorBy::None] {
        let s = z.visualize().unwrap().color_by(color).to_svg().unwrap();
        assert!(s.contains("</svg>"));
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rask-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn save_writes_svg_and_dot_and_rejects_other_formats() {
    let dir = TempDir::new("save");
    let vis = known_graph().visualize().unwrap();
    let svg_path = dir.0.join("x.svg");
    vis.save(&svg_path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&svg_path).unwrap(),
        vis.to_svg().unwrap()
    );
    for name in ["x.dot", "x.gv"] {
        let p = dir.0.join(name);
        vis.save(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), vis.to_dot());
    }
    for name in ["x.png", "no_extension"] {
        let p = dir.0.join(name);
        let err = vis.save(&p).unwrap_err();
        assert_invalid_argument(&err, "path");
        let msg = err.to_string();
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        for fmt in [".svg", ".dot", ".gv"] {
            assert!(msg.contains(fmt), "{msg}");
        }
        assert!(!p.exists(), "nothing written for {name}");
    }
    // An unwritable path is an I/O error naming it.
    let missing = dir.0.join("no").join("such").join("dir.svg");
    let err = vis.save(&missing).unwrap_err();
    assert!(matches!(err, RaskError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

#[test]
fn run_for_states_colours_the_failure_and_its_dependents() {
    for ex in executors() {
        let a = inc(1);
        let bad = fail(&a);
        let c = inc(&bad);
        let other = inc(50);
        let d = add(&c, &other);
        let (vis, err) = Visualization::run_for_states(&d, &config(ex));
        let err = err.expect("the graph fails");
        assert_task_error(&err, bad.key(), "refusing 2");
        let dot = vis.to_dot();
        assert_eq!(node_lines(&dot).len(), 5, "{dot}");
        assert_eq!(edge_lines(&dot).len(), 4, "{dot}");
        let red = "fillcolor=\"#e41a1c\"";
        let grey = "fillcolor=\"#d9d9d9\"";
        assert!(node_of(&dot, bad.key()).contains(red), "{dot}");
        assert!(node_of(&dot, bad.key()).contains("[Erred]"), "{dot}");
        assert!(node_of(&dot, c.key()).contains(grey), "{dot}");
        assert!(node_of(&dot, d.key()).contains(grey), "{dot}");
        assert_eq!(dot.matches(red).count(), 1, "only the failing task is red");
        // `a` ran before the failure (its value is kept: green or released blue).
        let a_line = node_of(&dot, a.key());
        assert!(
            a_line.contains("#66c2a5") || a_line.contains("#8da0cb"),
            "{a_line}"
        );
        assert!(vis.to_svg().unwrap().contains("#e41a1c"));
    }
}

#[test]
fn run_for_states_on_a_healthy_graph() {
    let z = known_graph();
    let (vis, err) = Visualization::run_for_states(&z, &config(Executor::Threaded));
    assert!(err.is_none(), "{err:?}");
    let dot = vis.to_dot();
    assert_eq!(node_lines(&dot).len(), 7);
    // The output is kept in memory (green); everything else was released (blue).
    assert!(node_of(&dot, z.key()).contains("#66c2a5"), "{dot}");
    assert_eq!(dot.matches("#8da0cb").count(), 6, "{dot}");
    assert!(
        !dot.contains("#e41a1c") && !dot.contains("#d9d9d9"),
        "{dot}"
    );
}

#[test]
fn optimized_view_fuses_chains() {
    let x = value(3i64).map(|v| v * 2).map(|v| v + 1);
    assert_eq!(x.compute_with(&config(Executor::Sync)).unwrap(), 7);
    let plain = x.visualize().unwrap();
    assert_eq!(node_lines(&plain.to_dot()).len(), 3);
    assert_eq!(edge_lines(&plain.to_dot()).len(), 2);
    let opt = x.visualize().unwrap().optimized();
    let dot = opt.to_dot();
    assert_eq!(node_lines(&dot).len(), 1, "{dot}");
    assert_eq!(edge_lines(&dot).len(), 0, "{dot}");
    // The fused task keeps the output key.
    node_of(&dot, x.key());
    assert!(opt.to_svg().unwrap().contains("</svg>"));

    // A diamond does not fuse: only the literal inlines.
    let base = value(1i64).map(|v| v + 1);
    let diamond = base.map(|v| v * 2) + base.map(|v| v * 3);
    let before = node_lines(&diamond.visualize().unwrap().to_dot()).len();
    let after = node_lines(&diamond.visualize().unwrap().optimized().to_dot()).len();
    assert_eq!(before, 5);
    assert!(after < before && after >= 3, "{before} -> {after}");
    assert_eq!(diamond.compute_with(&config(Executor::Sync)).unwrap(), 10);
}

#[test]
fn visualize_of_several_outputs() {
    let a = inc(10);
    let pair = (add(&a, 1), add(&a, 2));
    let dot = pair.visualize().unwrap().to_dot();
    assert_eq!(node_lines(&dot).len(), 3, "{dot}");
    assert_eq!(edge_lines(&dot).len(), 2, "{dot}");
}
