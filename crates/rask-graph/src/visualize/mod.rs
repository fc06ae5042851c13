//! Dependency-free drawing of task graphs, as DOT text and as standalone SVG.
//!
//! This is what `visualize()` uses, so that looking at a graph never needs a
//! system graphviz install.
//!
//! # Types
//!
//! - [`VisGraph`] is the whole picture: a list of [`VisNode`]s (label, tooltip,
//!   fill colour, [`NodeShape`]), a list of [`VisEdge`]s given as indices into
//!   the node list (`from` is the dependency, `to` the dependent), a
//!   [`Direction`] and an optional title.
//! - [`VisGraph::render_dot`] writes graphviz DOT for people who do have
//!   graphviz; it never fails, and skips (with a DOT comment) edges whose
//!   indices are out of range.
//! - [`VisGraph::render_svg`] lays the graph out itself and writes an SVG
//!   document. It fails with a [`VisError`] for an out-of-range edge or a
//!   cycle, so bad input can never panic.
//! - [`VisGraph::layout`] exposes the computed geometry ([`Layout`]) for
//!   callers that want to draw in some other way.
//! - [`order_colour`] maps an execution position to a viridis colour, and
//!   [`text_colour`] picks black or white text that stays readable on a fill.
//!
//! # Layout
//!
//! A compact Sugiyama-style layered layout, linear or `n log n` in every pass
//! so that graphs of tens of thousands of tasks still draw in milliseconds:
//!
//! 1. **Layers.** A topological sort (Kahn's algorithm) puts every node on the
//!    layer one past its deepest dependency (longest path from the sources),
//!    so every edge points from a lower layer to a strictly higher one. Nodes
//!    left over by the sort lie on or behind a cycle; one concrete cycle is
//!    recovered and reported.
//! 2. **Order within layers.** Alternating down and up sweeps sort each layer
//!    by the barycenter (mean relative position) of its neighbours. The
//!    crossings between adjacent layers are counted after every sweep with a
//!    Fenwick tree, and the best ordering seen is kept, because barycenter
//!    sweeps are not monotone. No dummy nodes are inserted: an edge spanning
//!    several layers is drawn as one curve and only pulls on its endpoints.
//! 3. **Coordinates.** Each node wants to sit at the mean position of its
//!    neighbours in the previous layer (down sweeps) or the next (up sweeps).
//!    Keeping the order fixed and nodes at least a gap apart, the placement
//!    closest to those wishes (least squares) is an isotonic regression, which
//!    the pool-adjacent-violators algorithm solves exactly in linear time per
//!    layer. Node widths follow label length, so nodes never overlap.
//! 4. **Drawing.** Layers are stacked along the rank axis (bottom to top by
//!    default, as Dask draws inputs at the bottom), edges are cubic Béziers
//!    that leave and enter nodes along the rank axis and end in an arrowhead
//!    at the dependent, and nodes are drawn over edges.

mod layout;
mod svg;

use std::error::Error;
use std::fmt;

pub use layout::{Layout, NodeBox};
pub use svg::text_colour;

/// Font size (px) of node labels, shared by the size estimate and the writer.
pub(crate) const FONT_SIZE: f64 = 12.0;

/// How a node is drawn.
#[derive(Clone, Debug, Copy, PartialEq, Eq)]
pub enum NodeShape {
    /// An ellipse, as Dask draws tasks (functions).
    Task,
    /// A rectangle, as Dask draws data (results, literals).
    Data,
}

/// One node of a [`VisGraph`].
#[derive(Clone, Debug)]
pub struct VisNode {
    /// Short text shown inside the node (e.g. `"inc"`, `"add"`).
    pub label: String,
    /// Full key, shown on hover (SVG `<title>`, DOT `tooltip`).
    pub tooltip: String,
    /// CSS colour, e.g. `"#66c2a5"`.
    pub fill: String,
    /// Ellipse for tasks, rectangle for data.
    pub shape: NodeShape,
}

/// A directed edge, as indices into [`VisGraph::nodes`].
#[derive(Clone, Debug, Copy)]
pub struct VisEdge {
    /// The dependency.
    pub from: usize,
    /// The dependent; the arrowhead is drawn at this end.
    pub to: usize,
}

/// Which way dependencies flow on the page.
#[derive(Clone, Debug, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Inputs at the bottom, final results at the top (Dask's default).
    #[default]
    BottomToTop,
    /// Inputs at the top (graphviz's default).
    TopToBottom,
    /// Inputs on the left; suits long chains.
    LeftToRight,
}

impl Direction {
    fn rankdir(self) -> &'static str {
        match self {
            Direction::BottomToTop => "BT",
            Direction::TopToBottom => "TB",
            Direction::LeftToRight => "LR",
        }
    }
}

/// A task graph ready to be drawn.
#[derive(Clone, Debug, Default)]
pub struct VisGraph {
    /// The tasks; edges refer to them by index.
    pub nodes: Vec<VisNode>,
    /// Dependency edges; must form a DAG for [`VisGraph::render_svg`].
    pub edges: Vec<VisEdge>,
    /// Which way dependencies flow on the page.
    pub direction: Direction,
    /// Heading drawn above the graph (and the document's `<title>`).
    pub title: Option<String>,
}

/// Why a graph could not be laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VisError {
    /// Edge number `edge` names node `index`, but only `node_count` exist.
    EdgeOutOfRange {
        /// Position of the edge in [`VisGraph::edges`].
        edge: usize,
        /// The edge's `from`.
        from: usize,
        /// The edge's `to`.
        to: usize,
        /// The offending index (`from` or `to`).
        index: usize,
        /// How many nodes the graph has.
        node_count: usize,
    },
    /// The edges form a cycle; `cycle` lists its nodes in edge order and
    /// repeats the first node at the end (a self-loop is `[v, v]`).
    Cycle {
        /// Node indices around the cycle.
        cycle: Vec<usize>,
    },
}

impl fmt::Display for VisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VisError::EdgeOutOfRange {
                edge,
                from,
                to,
                index,
                node_count,
            } => write!(
                f,
                "edge {edge} ({from} -> {to}) names node index {index}, \
                 but the graph has only {node_count} nodes"
            ),
            VisError::Cycle { cycle } => {
                // Cycles in real task graphs are short, but cap the message
                // so a pathological one cannot produce megabytes of text.
                const SHOWN: usize = 16;
                f.write_str("task graph has a cycle: ")?;
                for (i, node) in cycle.iter().take(SHOWN).enumerate() {
                    if i > 0 {
                        f.write_str(" -> ")?;
                    }
                    write!(f, "{node}")?;
                }
                if cycle.len() > SHOWN {
                    write!(f, " -> ... ({} nodes)", cycle.len() - 1)?;
                }
                Ok(())
            }
        }
    }
}

impl Error for VisError {}

impl VisGraph {
    /// Checks that every edge names an existing node.
    pub fn validate_edges(&self) -> Result<(), VisError> {
        check_edges(&self.edges, self.nodes.len())
    }

    /// Computes node positions (without drawing anything).
    pub fn layout(&self) -> Result<Layout, VisError> {
        let sizes: Vec<(f64, f64)> = self.nodes.iter().map(node_size).collect();
        layout::compute(&sizes, &self.edges, self.direction)
    }

    /// Renders the graph as a standalone SVG document.
    pub fn render_svg(&self) -> Result<String, VisError> {
        let layout = self.layout()?;
        Ok(svg::write_document(self, &layout))
    }

    /// Renders the graph as graphviz DOT.
    ///
    /// Infallible on purpose, so that a broken graph can still be inspected
    /// with graphviz: out-of-range edges are left out with a comment saying
    /// why, and cycles are simply drawn.
    pub fn render_dot(&self) -> String {
        let mut out = String::with_capacity(64 + 96 * self.nodes.len() + 16 * self.edges.len());
        out.push_str("digraph ");
        dot_quoted(&mut out, self.title.as_deref().unwrap_or("rask"));
        out.push_str(" {\n  graph [rankdir=");
        out.push_str(self.direction.rankdir());
        if let Some(title) = &self.title {
            out.push_str(", labelloc=t, label=");
            dot_quoted(&mut out, title);
        }
        out.push_str("];\n");
        out.push_str("  node [fontname=\"Helvetica,Arial,sans-serif\", fontsize=12];\n");
        out.push_str("  edge [color=\"#555555\"];\n");
        for (i, node) in self.nodes.iter().enumerate() {
            out.push_str("  n");
            out.push_str(&i.to_string());
            out.push_str(" [label=");
            dot_quoted(&mut out, &node.label);
            out.push_str(", tooltip=");
            dot_quoted(&mut out, &node.tooltip);
            out.push_str(", style=filled, fillcolor=");
            dot_quoted(&mut out, &node.fill);
            out.push_str(", fontcolor=\"");
            out.push_str(text_colour(&node.fill));
            out.push_str("\", shape=");
            out.push_str(match node.shape {
                NodeShape::Task => "ellipse",
                NodeShape::Data => "box",
            });
            out.push_str("];\n");
        }
        for (i, edge) in self.edges.iter().enumerate() {
            match check_edge(i, *edge, self.nodes.len()) {
                Ok(()) => {
                    out.push_str(&format!("  n{} -> n{};\n", edge.from, edge.to));
                }
                Err(err) => {
                    // The message holds only digits and ASCII words, so it
                    // cannot break out of the comment.
                    out.push_str(&format!("  // skipped: {err}\n"));
                }
            }
        }
        out.push_str("}\n");
        out
    }
}

/// A sequential colour for the task that runs at `position` out of `total`
/// (0 = first to run). Uses viridis, which stays distinguishable for colour-
/// blind readers and in greyscale; returns `"#rrggbb"`. Out-of-range positions
/// are clamped to the last colour.
pub fn order_colour(position: usize, total: usize) -> String {
    // matplotlib's viridis sampled at ten evenly spaced points; linear
    // interpolation between them is visually indistinguishable from the
    // full 256-entry table.
    const VIRIDIS: [[u8; 3]; 10] = [
        [0x44, 0x01, 0x54],
        [0x48, 0x28, 0x78],
        [0x3e, 0x49, 0x89],
        [0x31, 0x68, 0x8e],
        [0x26, 0x82, 0x8e],
        [0x1f, 0x9e, 0x89],
        [0x35, 0xb7, 0x79],
        [0x6e, 0xce, 0x58],
        [0xb5, 0xde, 0x2b],
        [0xfd, 0xe7, 0x25],
    ];
    let t = if total <= 1 {
        0.0
    } else {
        position.min(total - 1) as f64 / (total - 1) as f64
    };
    let scaled = t * (VIRIDIS.len() - 1) as f64;
    // `scaled` is in [0, 9], so the cast cannot wrap; `min` keeps `lo + 1`
    // inside the table when t == 1.
    let lo = (scaled.floor() as usize).min(VIRIDIS.len() - 2);
    let frac = scaled - lo as f64;
    let mut out = String::from("#");
    for (&a, &b) in VIRIDIS[lo].iter().zip(&VIRIDIS[lo + 1]) {
        let (a, b) = (f64::from(a), f64::from(b));
        let v = (a + (b - a) * frac).round().clamp(0.0, 255.0) as u8;
        out.push_str(&format!("{v:02x}"));
    }
    out
}

/// Estimated (width, height) of a node in px. There is no font metrics
/// source without dependencies, so this assumes an average sans-serif glyph
/// of 0.6 em, which errs on the wide side for typical identifiers.
pub(crate) fn node_size(node: &VisNode) -> (f64, f64) {
    let text = node.label.chars().count() as f64 * FONT_SIZE * 0.6;
    match node.shape {
        // An ellipse is narrower than its bounding box at the text's top
        // and bottom, so it needs proportionally more room than a box.
        NodeShape::Task => ((text * 1.15 + 26.0).max(54.0), 36.0),
        NodeShape::Data => ((text + 20.0).max(48.0), 32.0),
    }
}

pub(crate) fn check_edges(edges: &[VisEdge], node_count: usize) -> Result<(), VisError> {
    edges
        .iter()
        .enumerate()
        .try_for_each(|(i, e)| check_edge(i, *e, node_count))
}

fn check_edge(i: usize, edge: VisEdge, node_count: usize) -> Result<(), VisError> {
    for index in [edge.from, edge.to] {
        if index >= node_count {
            return Err(VisError::EdgeOutOfRange {
                edge: i,
                from: edge.from,
                to: edge.to,
                index,
                node_count,
            });
        }
    }
    Ok(())
}

/// Writes `s` as a DOT double-quoted string.
fn dot_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            // A lone backslash would start a DOT escape such as `\N` or `\l`.
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(label: &str) -> VisNode {
        VisNode {
            label: label.to_string(),
            tooltip: format!("('{label}', 0)"),
            fill: "#66c2a5".to_string(),
            shape: NodeShape::Task,
        }
    }

    fn graph(n: usize, edges: &[(usize, usize)]) -> VisGraph {
        VisGraph {
            nodes: (0..n).map(|i| node(&format!("t{i}"))).collect(),
            edges: edges
                .iter()
                .map(|&(from, to)| VisEdge { from, to })
                .collect(),
            direction: Direction::default(),
            title: None,
        }
    }

    /// Eight `inc` leaves reduced pairwise by `add`.
    pub(crate) fn tree_reduction() -> VisGraph {
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for i in 0..8 {
            nodes.push(VisNode {
                label: "inc".into(),
                tooltip: format!("('inc-3f2a', {i})"),
                fill: String::new(),
                shape: NodeShape::Task,
            });
        }
        let mut level: Vec<usize> = (0..8).collect();
        while level.len() > 1 {
            let mut next = Vec::new();
            for pair in level.chunks(2) {
                let id = nodes.len();
                nodes.push(VisNode {
                    label: "add".into(),
                    tooltip: format!("('add-91c0', {id})"),
                    fill: String::new(),
                    shape: NodeShape::Task,
                });
                for &p in pair {
                    edges.push(VisEdge { from: p, to: id });
                }
                next.push(id);
            }
            level = next;
        }
        let total = nodes.len();
        for (i, n) in nodes.iter_mut().enumerate() {
            n.fill = order_colour(i, total);
        }
        VisGraph {
            nodes,
            edges,
            direction: Direction::BottomToTop,
            title: Some("sum of inc".into()),
        }
    }

    #[test]
    fn dot_has_each_node_and_edge_once() {
        let g = tree_reduction();
        let dot = g.render_dot();
        assert!(dot.starts_with("digraph \"sum of inc\" {\n"));
        assert!(dot.trim_end().ends_with('}'));
        assert!(dot.contains("rankdir=BT"));
        let lines: Vec<&str> = dot.lines().map(str::trim).collect();
        for i in 0..g.nodes.len() {
            let prefix = format!("n{i} [");
            let hits = lines.iter().filter(|l| l.starts_with(&prefix)).count();
            assert_eq!(hits, 1, "node {i} in\n{dot}");
            let line = lines.iter().find(|l| l.starts_with(&prefix)).unwrap();
            assert!(line.contains("style=filled"));
            assert!(line.contains("shape=ellipse"));
            assert!(line.contains(&format!("fillcolor=\"{}\"", g.nodes[i].fill)));
        }
        for e in &g.edges {
            let text = format!("n{} -> n{};", e.from, e.to);
            assert_eq!(lines.iter().filter(|l| **l == text).count(), 1, "{text}");
        }
        assert_eq!(
            lines.iter().filter(|l| l.contains("->")).count(),
            g.edges.len()
        );
    }

    #[test]
    fn dot_escapes_and_maps_attributes() {
        let mut g = graph(2, &[(0, 1)]);
        g.nodes[0].label = "say \"hi\" \\ <&>".into();
        g.nodes[0].tooltip = "line1\nline2".into();
        g.nodes[1].shape = NodeShape::Data;
        g.direction = Direction::LeftToRight;
        let dot = g.render_dot();
        assert!(dot.contains(r#"label="say \"hi\" \\ <&>""#), "{dot}");
        assert!(dot.contains(r#"tooltip="line1\nline2""#), "{dot}");
        assert!(dot.contains("shape=box"));
        assert!(dot.contains("rankdir=LR"));
        assert!(graph(0, &[]).render_dot().contains("rankdir=BT"));
        g.direction = Direction::TopToBottom;
        assert!(g.render_dot().contains("rankdir=TB"));
    }

    #[test]
    fn dot_skips_bad_edges_without_panicking() {
        let g = graph(2, &[(0, 1), (1, 9)]);
        let dot = g.render_dot();
        assert!(dot.contains("n0 -> n1;"));
        assert!(!dot.contains("n9"));
        assert!(dot.contains("// skipped: edge 1 (1 -> 9) names node index 9"));
    }

    #[test]
    fn out_of_range_edge_names_edge_and_index() {
        let g = graph(3, &[(0, 1), (1, 2), (7, 2)]);
        let err = g.render_svg().unwrap_err();
        assert_eq!(
            err,
            VisError::EdgeOutOfRange {
                edge: 2,
                from: 7,
                to: 2,
                index: 7,
                node_count: 3
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("edge 2"), "{msg}");
        assert!(msg.contains("index 7"), "{msg}");
        assert_eq!(g.validate_edges(), Err(err));

        // Into an empty graph: every index is out of range.
        let err = graph(0, &[(0, 0)]).render_svg().unwrap_err();
        assert!(err.to_string().contains("edge 0"));
        // Works as a boxed std error.
        let boxed: Box<dyn Error> = Box::new(err);
        assert!(boxed.to_string().contains("only 0 nodes"));
    }

    #[test]
    fn cycle_is_reported_as_a_real_cycle() {
        // 0 -> 1 -> 2 -> 3 -> 1, plus 3 -> 4 hanging off the cycle.
        let edges = [(0, 1), (1, 2), (2, 3), (3, 1), (3, 4)];
        let g = graph(5, &edges);
        let Err(VisError::Cycle { cycle }) = g.render_svg() else {
            panic!("cycle not reported");
        };
        assert!(cycle.len() >= 2);
        assert_eq!(cycle.first(), cycle.last());
        for w in cycle.windows(2) {
            assert!(edges.contains(&(w[0], w[1])), "{cycle:?} is not a cycle");
        }
        let msg = VisError::Cycle { cycle }.to_string();
        assert!(msg.starts_with("task graph has a cycle: "), "{msg}");

        let Err(VisError::Cycle { cycle }) = graph(2, &[(0, 1), (1, 1)]).render_svg() else {
            panic!("self-loop not reported");
        };
        assert_eq!(cycle, vec![1, 1]);
    }

    #[test]
    fn long_cycle_message_is_capped() {
        let msg = VisError::Cycle {
            cycle: (0..100).chain([0]).collect(),
        }
        .to_string();
        assert!(msg.contains("... (100 nodes)"), "{msg}");
        assert!(msg.len() < 200);
    }

    #[test]
    fn order_colour_spans_viridis() {
        assert_eq!(order_colour(0, 10), "#440154");
        assert_eq!(order_colour(9, 10), "#fde725");
        assert_eq!(order_colour(99, 10), "#fde725");
        assert_eq!(order_colour(0, 0), "#440154");
        assert_eq!(order_colour(0, 1), "#440154");
        // Halfway between the two middle anchors #26828e and #1f9e89.
        let mid = order_colour(1, 3);
        assert_eq!(mid.len(), 7);
        assert!(mid.starts_with('#'));
        assert!(mid[1..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(mid, "#23908c");
        // Later positions are lighter: viridis is monotone in lightness.
        let lum = |s: &str| {
            let v = u32::from_str_radix(&s[1..], 16).unwrap();
            let (r, g, b) = ((v >> 16) & 255, (v >> 8) & 255, v & 255);
            299 * r + 587 * g + 114 * b
        };
        let colours: Vec<String> = (0..50).map(|i| order_colour(i, 50)).collect();
        for w in colours.windows(2) {
            assert!(lum(&w[0]) <= lum(&w[1]), "{} then {}", w[0], w[1]);
        }
    }

    #[test]
    fn node_width_grows_with_label() {
        let short = node_size(&node("a"));
        let long = node_size(&node("a-much-longer-label-than-usual"));
        assert!(long.0 > short.0);
        assert_eq!(long.1, short.1);
        let mut data = node("a-much-longer-label-than-usual");
        data.shape = NodeShape::Data;
        assert!(node_size(&data).0 >= 30.0 * FONT_SIZE * 0.6);
    }

    #[test]
    fn svg_of_tree_reduction_is_complete() {
        let g = tree_reduction();
        let svg = g.render_svg().unwrap();
        assert_eq!(svg.matches("<ellipse").count(), g.nodes.len());
        assert_eq!(svg.matches("marker-end=").count(), g.edges.len());
        assert!(svg.contains(">sum of inc</text>"));
        assert_eq!(svg.matches(">inc</text>").count(), 8);
        assert_eq!(svg.matches(">add</text>").count(), 7);
    }
}
