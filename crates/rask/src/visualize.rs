//! Pictures of task graphs: DOT text and standalone SVG, no graphviz needed.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rask_graph::optimize::{OptimizeOptions, optimize};
use rask_graph::visualize::{Direction, NodeShape, VisEdge, VisGraph, VisNode, order_colour};
use rask_graph::{Collection, Graph, GraphBuilder, TaskId, order};
use rask_scheduler::{Callback, TaskState};

use crate::compute::{Config, compute_with};
use crate::{RaskError, Result};

/// How nodes are coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ColorBy {
    /// By position in the static order: dark first, light last.
    #[default]
    Order,
    /// By each task's state after running the graph: green in memory, blue released, red
    /// erred, grey cancelled.
    State,
    None,
}

/// A picture of a collection's graph.
///
/// ```
/// use rask::prelude::*;
/// let x = rask::value(1i64) + rask::value(2i64);
/// let svg = x.visualize()?.to_svg()?;
/// assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"));
/// # Ok::<(), rask::RaskError>(())
/// ```
pub struct Visualization {
    graph: Graph,
    outputs: Vec<TaskId>,
    color: ColorBy,
    states: Option<Vec<TaskState>>,
    direction: Direction,
}

impl Visualization {
    /// The graph as built (not optimized), coloured by order.
    pub fn of<C: Collection + ?Sized>(c: &C) -> Result<Self> {
        let mut builder = GraphBuilder::new();
        c.add_layers(&mut builder);
        let graph = builder.build()?;
        let outputs = graph.ids_of(&c.output_keys())?;
        Ok(Visualization {
            graph,
            outputs,
            color: ColorBy::Order,
            states: None,
            direction: Direction::BottomToTop,
        })
    }

    /// Shows the graph after optimization (fused and inlined tasks), as it will run.
    pub fn optimized(mut self) -> Self {
        let (g, o) = optimize(
            std::mem::take(&mut self.graph),
            &self.outputs,
            OptimizeOptions::default(),
        );
        self.graph = g;
        self.outputs = o;
        self
    }

    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    pub fn color_by(mut self, color: ColorBy) -> Self {
        self.color = color;
        self
    }

    /// Runs the graph (with optimizations off, so every drawn task is a real one) and
    /// colours each task by its final state (orange: spilled to disk). A failing task is
    /// coloured red; the picture is
    /// still returned, with the error.
    pub fn run_for_states<C: Collection + ?Sized>(
        c: &C,
        config: &Config,
    ) -> (Self, Option<RaskError>) {
        let recorder = Arc::new(StateRecorder::default());
        let mut cfg = config.clone();
        cfg.optimize = OptimizeOptions {
            cull: false,
            inline: false,
            fuse: false,
        };
        cfg.callbacks.push(recorder.clone());
        let error = compute_with(c, &cfg).err();
        let mut vis = match Visualization::of(c) {
            Ok(v) => v,
            Err(e) => return (Visualization::empty(), Some(e)),
        };
        vis.color = ColorBy::State;
        vis.states = recorder.states.lock().ok().and_then(|s| s.clone());
        (vis, error)
    }

    fn empty() -> Self {
        Visualization {
            graph: Graph::default(),
            outputs: Vec::new(),
            color: ColorBy::None,
            states: None,
            direction: Direction::BottomToTop,
        }
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    fn vis_graph(&self) -> VisGraph {
        let n = self.graph.len();
        let priorities = if self.color == ColorBy::Order {
            order(&self.graph)
        } else {
            Vec::new()
        };
        let mut nodes = Vec::with_capacity(n);
        let mut edges = Vec::new();
        for (id, task) in self.graph.tasks().iter().enumerate() {
            let fill = match self.color {
                ColorBy::Order => order_colour(priorities[id] as usize, n),
                ColorBy::State => state_colour(self.states.as_ref().map(|s| s[id])).to_string(),
                ColorBy::None => "#ffffff".to_string(),
            };
            let mut tooltip = task.key.to_string();
            if let Some(states) = &self.states {
                tooltip.push_str(&format!(" [{:?}]", states[id]));
            }
            nodes.push(VisNode {
                label: task.op.label().to_string(),
                tooltip,
                fill,
                shape: if task.deps.is_empty() {
                    NodeShape::Data
                } else {
                    NodeShape::Task
                },
            });
            for &d in &task.deps {
                edges.push(VisEdge {
                    from: d as usize,
                    to: id,
                });
            }
        }
        VisGraph {
            nodes,
            edges,
            direction: self.direction,
            title: None,
        }
    }

    pub fn to_dot(&self) -> String {
        self.vis_graph().render_dot()
    }

    pub fn to_svg(&self) -> Result<String> {
        self.vis_graph()
            .render_svg()
            .map_err(|e| RaskError::InvalidGraph(e.to_string()))
    }

    /// Writes DOT (`.dot`, `.gv`) or SVG (`.svg`) by the file's extension.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("dot") | Some("gv") => self.to_dot(),
            Some("svg") => self.to_svg()?,
            other => {
                return Err(RaskError::invalid_argument(
                    "path",
                    format!(
                        "{}: unknown picture format {:?}; use .svg, .dot or .gv",
                        path.display(),
                        other.unwrap_or("")
                    ),
                ));
            }
        };
        std::fs::write(path, text).map_err(|e| RaskError::io(path.display(), e))
    }
}

fn state_colour(state: Option<TaskState>) -> &'static str {
    match state {
        Some(TaskState::Memory) => "#66c2a5",
        Some(TaskState::Released) => "#8da0cb",
        Some(TaskState::Spilled) => "#fc8d62",
        Some(TaskState::Erred) => "#e41a1c",
        Some(TaskState::Cancelled) => "#d9d9d9",
        Some(TaskState::Running) | Some(TaskState::Ready) => "#ffd92f",
        Some(TaskState::Waiting) | None => "#ffffff",
    }
}

#[derive(Default)]
struct StateRecorder {
    states: Mutex<Option<Vec<TaskState>>>,
}

impl Callback for StateRecorder {
    fn on_compute_finish(&self, _graph: &Graph, states: &[TaskState], _error: Option<&RaskError>) {
        if let Ok(mut s) = self.states.lock() {
            *s = Some(states.to_vec());
        }
    }
}
