//! Layered layout: layers by longest path, barycenter ordering, and
//! least-squares coordinates (see the module docs of `visualize`).
//!
//! Internally everything is computed on two abstract axes: the *rank* axis,
//! along which layers are stacked, and the *order* axis, along which the
//! nodes of one layer sit side by side. Only the last step maps them to
//! x/y for the requested [`Direction`].

use super::{Direction, VisEdge, VisError, check_edges};

/// Space between neighbouring nodes of one layer.
const NODE_GAP: f64 = 18.0;
/// Space between layers; wider when layers run left to right because the
/// edges there must also clear the (wider) node labels.
const LAYER_GAP_VERTICAL: f64 = 48.0;
const LAYER_GAP_HORIZONTAL: f64 = 64.0;
/// Barycenter sweeps (alternating down and up). Improvements after a handful
/// are rare and each costs a full pass over the edges.
const ORDER_SWEEPS: usize = 8;
/// Coordinate sweep pairs (down then up).
const COORD_ROUNDS: usize = 4;
/// How strongly a node with no neighbours on the swept side holds its place,
/// relative to a node that has some: weakly, so it yields to nodes with a
/// real reason to be somewhere, but not zero, which would leave it undefined.
const FREE_WEIGHT: f64 = 0.05;

/// Where one node is drawn: centre and size, in px, in the layout's frame
/// (origin at the top left of the content, no margins).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeBox {
    /// Centre, x.
    pub x: f64,
    /// Centre, y (growing downwards, as in SVG).
    pub y: f64,
    /// Full width.
    pub width: f64,
    /// Full height.
    pub height: f64,
}

impl NodeBox {
    /// Smallest x covered.
    pub fn left(&self) -> f64 {
        self.x - self.width / 2.0
    }
    /// Largest x covered.
    pub fn right(&self) -> f64 {
        self.x + self.width / 2.0
    }
    /// Smallest y covered.
    pub fn top(&self) -> f64 {
        self.y - self.height / 2.0
    }
    /// Largest y covered.
    pub fn bottom(&self) -> f64 {
        self.y + self.height / 2.0
    }
}

/// The result of laying out a graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// One box per node, indexed like the input nodes.
    pub boxes: Vec<NodeBox>,
    /// The layer of each node; sources are on layer 0 and every edge goes
    /// to a strictly higher layer.
    pub layer_of: Vec<usize>,
    /// The nodes of each layer, in drawing order along the layer.
    pub layers: Vec<Vec<usize>>,
    /// Width of the content (the bounding box of all nodes).
    pub width: f64,
    /// Height of the content.
    pub height: f64,
    /// The direction the layout was computed for.
    pub direction: Direction,
}

/// Lays out nodes of the given (width, height) sizes.
pub(crate) fn compute(
    sizes: &[(f64, f64)],
    edges: &[VisEdge],
    direction: Direction,
) -> Result<Layout, VisError> {
    let n = sizes.len();
    check_edges(edges, n)?;
    let succ = Adjacency::build(n, edges.iter().map(|e| (e.from, e.to)));
    let pred = Adjacency::build(n, edges.iter().map(|e| (e.to, e.from)));

    let layer_of = assign_layers(&succ, &pred).map_err(|cycle| VisError::Cycle { cycle })?;
    let layer_count = layer_of.iter().map(|&l| l + 1).max().unwrap_or(0);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); layer_count];
    for (v, &l) in layer_of.iter().enumerate() {
        layers[l].push(v);
    }
    order_layers(&mut layers, &layer_of, &succ, &pred);

    let vertical = direction != Direction::LeftToRight;
    // breadth runs along the order axis, depth along the rank axis.
    let (breadth, depth): (Vec<f64>, Vec<f64>) = sizes
        .iter()
        .map(|&(w, h)| if vertical { (w, h) } else { (h, w) })
        .unzip();
    let mut order_pos = assign_order_coords(&layers, &breadth, &succ, &pred);

    // Shift so the leftmost box edge is at 0.
    let min_edge = (0..n)
        .map(|v| order_pos[v] - breadth[v] / 2.0)
        .fold(f64::INFINITY, f64::min);
    let mut order_extent: f64 = 0.0;
    if n > 0 {
        for v in 0..n {
            order_pos[v] -= min_edge;
            order_extent = order_extent.max(order_pos[v] + breadth[v] / 2.0);
        }
    }

    let layer_gap = if vertical {
        LAYER_GAP_VERTICAL
    } else {
        LAYER_GAP_HORIZONTAL
    };
    let mut layer_centre = Vec::with_capacity(layer_count);
    let mut rank_extent: f64 = 0.0;
    for layer in &layers {
        let thickness = layer.iter().map(|&v| depth[v]).fold(0.0, f64::max);
        if !layer_centre.is_empty() {
            rank_extent += layer_gap;
        }
        layer_centre.push(rank_extent + thickness / 2.0);
        rank_extent += thickness;
    }

    let boxes = (0..n)
        .map(|v| {
            let (o, r) = (order_pos[v], layer_centre[layer_of[v]]);
            let (width, height) = sizes[v];
            let (x, y) = match direction {
                Direction::TopToBottom => (o, r),
                Direction::BottomToTop => (o, rank_extent - r),
                Direction::LeftToRight => (r, o),
            };
            NodeBox {
                x,
                y,
                width,
                height,
            }
        })
        .collect();
    let (width, height) = if vertical {
        (order_extent, rank_extent)
    } else {
        (rank_extent, order_extent)
    };
    Ok(Layout {
        boxes,
        layer_of,
        layers,
        width,
        height,
        direction,
    })
}

/// Compressed adjacency lists: one allocation for all neighbour lists, which
/// matters at tens of thousands of nodes.
struct Adjacency {
    start: Vec<usize>,
    targets: Vec<usize>,
}

impl Adjacency {
    /// `pairs` must only name nodes below `n` (checked by the caller).
    fn build(n: usize, pairs: impl Iterator<Item = (usize, usize)> + Clone) -> Self {
        let mut start = vec![0usize; n + 1];
        for (a, _) in pairs.clone() {
            start[a + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut targets = vec![0usize; start[n]];
        for (a, b) in pairs {
            targets[fill[a]] = b;
            fill[a] += 1;
        }
        Adjacency { start, targets }
    }

    fn of(&self, v: usize) -> &[usize] {
        &self.targets[self.start[v]..self.start[v + 1]]
    }
}

/// Longest-path layering via Kahn's algorithm; on failure returns one cycle
/// as `[a, b, ..., a]` following edge direction.
fn assign_layers(succ: &Adjacency, pred: &Adjacency) -> Result<Vec<usize>, Vec<usize>> {
    let n = succ.start.len() - 1;
    let mut indegree: Vec<usize> = (0..n).map(|v| pred.of(v).len()).collect();
    let mut layer = vec![0usize; n];
    let mut queue: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut head = 0;
    while let Some(&v) = queue.get(head) {
        head += 1;
        for &w in succ.of(v) {
            layer[w] = layer[w].max(layer[v] + 1);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                queue.push(w);
            }
        }
    }
    if queue.len() == n {
        return Ok(layer);
    }

    // Every node the sort could not reach still has an unprocessed
    // predecessor, so walking backwards through unprocessed predecessors
    // never gets stuck and must revisit a node within n steps: the stretch
    // from that node's first visit on is a cycle.
    let mut processed = vec![false; n];
    for &v in &queue {
        processed[v] = true;
    }
    let mut step_of = vec![usize::MAX; n];
    let mut walk = Vec::new();
    let mut v = (0..n).find(|&v| !processed[v]).unwrap_or(0);
    while step_of[v] == usize::MAX {
        step_of[v] = walk.len();
        walk.push(v);
        match pred.of(v).iter().find(|&&p| !processed[p]) {
            Some(&p) => v = p,
            // Unreachable by the argument above; bail out rather than loop.
            None => break,
        }
    }
    let first = if step_of[v] == usize::MAX {
        0
    } else {
        step_of[v]
    };
    let mut cycle: Vec<usize> = walk[first..].iter().rev().copied().collect();
    if let Some(&head) = cycle.first() {
        cycle.push(head);
    }
    Err(cycle)
}

/// Reorders each layer in place to reduce edge crossings.
fn order_layers(layers: &mut [Vec<usize>], layer_of: &[usize], succ: &Adjacency, pred: &Adjacency) {
    let n = layer_of.len();
    if layers.len() < 2 {
        return;
    }
    let mut pos = vec![0usize; n];
    let update_pos = |layer: &[usize], pos: &mut [usize]| {
        for (i, &v) in layer.iter().enumerate() {
            pos[v] = i;
        }
    };
    for layer in layers.iter() {
        update_pos(layer, &mut pos);
    }

    let mut best = layers.to_vec();
    let mut best_crossings = count_crossings(layers, &pos, succ, layer_of);
    let mut keys: Vec<(f64, usize, usize)> = Vec::new();
    for sweep in 0..ORDER_SWEEPS {
        if best_crossings == 0 {
            break;
        }
        let down = sweep % 2 == 0;
        let layer_ids: Vec<usize> = if down {
            (1..layers.len()).collect()
        } else {
            (0..layers.len() - 1).rev().collect()
        };
        for l in layer_ids {
            let neighbours = if down { pred } else { succ };
            keys.clear();
            for (i, &v) in layers[l].iter().enumerate() {
                // Positions relative to layer size make neighbours on layers
                // of different widths (edges may skip layers) comparable.
                let rel = |u: usize| (pos[u] as f64 + 0.5) / layers[layer_of[u]].len() as f64;
                let ns = neighbours.of(v);
                let key = if ns.is_empty() {
                    rel(v)
                } else {
                    ns.iter().map(|&u| rel(u)).sum::<f64>() / ns.len() as f64
                };
                keys.push((key, i, v));
            }
            // Ties keep their current order, which makes sweeps converge.
            keys.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (slot, &(_, _, v)) in layers[l].iter_mut().zip(&keys) {
                *slot = v;
            }
            update_pos(&layers[l], &mut pos);
        }
        let crossings = count_crossings(layers, &pos, succ, layer_of);
        if crossings < best_crossings {
            best_crossings = crossings;
            best.clone_from_slice(layers);
        }
    }
    layers.clone_from_slice(&best);
}

/// Crossings between edges joining adjacent layers (edges that skip layers
/// are not counted), in O(E log V) with a Fenwick tree: walking the edges
/// sorted by upper endpoint, an edge crosses every earlier edge whose lower
/// endpoint lies strictly further along.
fn count_crossings(
    layers: &[Vec<usize>],
    pos: &[usize],
    succ: &Adjacency,
    layer_of: &[usize],
) -> u64 {
    let mut total = 0u64;
    let mut tree: Vec<u64> = Vec::new();
    let mut targets: Vec<usize> = Vec::new();
    for l in 0..layers.len().saturating_sub(1) {
        let width = layers[l + 1].len();
        tree.clear();
        tree.resize(width + 1, 0);
        let mut inserted = 0u64;
        for &u in &layers[l] {
            targets.clear();
            targets.extend(
                succ.of(u)
                    .iter()
                    .filter(|&&w| layer_of[w] == l + 1)
                    .map(|&w| pos[w]),
            );
            targets.sort_unstable();
            for &p in &targets {
                // Earlier edges ending at or before p do not cross this one.
                let mut at_or_before = 0;
                let mut i = p + 1;
                while i > 0 {
                    at_or_before += tree[i];
                    i &= i - 1;
                }
                total += inserted - at_or_before;
                let mut i = p + 1;
                while i <= width {
                    tree[i] += 1;
                    i += i & i.wrapping_neg();
                }
                inserted += 1;
            }
        }
    }
    total
}

/// Order-axis centre of every node, respecting each layer's order and gaps.
fn assign_order_coords(
    layers: &[Vec<usize>],
    breadth: &[f64],
    succ: &Adjacency,
    pred: &Adjacency,
) -> Vec<f64> {
    let mut pos = vec![0.0; breadth.len()];
    // Start from each layer packed tightly and centred on 0.
    for layer in layers {
        let total: f64 = layer.iter().map(|&v| breadth[v] + NODE_GAP).sum::<f64>() - NODE_GAP;
        let mut at = -total / 2.0;
        for &v in layer {
            pos[v] = at + breadth[v] / 2.0;
            at += breadth[v] + NODE_GAP;
        }
    }
    if layers.len() < 2 {
        return pos;
    }
    let mut scratch = PlaceScratch::default();
    for _ in 0..COORD_ROUNDS {
        for layer in &layers[1..] {
            place_layer(layer, pred, breadth, &mut pos, &mut scratch);
        }
        for layer in layers[..layers.len() - 1].iter().rev() {
            place_layer(layer, succ, breadth, &mut pos, &mut scratch);
        }
    }
    // Finish with a downward pass: in a reduction the inputs are laid out
    // side by side and the results should sit centred over them.
    for layer in &layers[1..] {
        place_layer(layer, pred, breadth, &mut pos, &mut scratch);
    }
    pos
}

#[derive(Default)]
struct PlaceScratch {
    /// Per node of the layer: target (desired minus offset), weight.
    targets: Vec<(f64, f64)>,
    offsets: Vec<f64>,
    /// Pool-adjacent-violators blocks: weighted sum, weight, first index.
    blocks: Vec<(f64, f64, usize)>,
}

/// Moves the nodes of one layer as close as possible (weighted least squares)
/// to the mean position of their `neighbours`, keeping their order and at
/// least `NODE_GAP` between boxes.
///
/// With `o_i` the cumulative minimum distance from the first node's centre,
/// substituting `y_i = x_i - o_i` turns the spacing constraints into
/// `y_1 <= y_2 <= ...`, i.e. an isotonic regression of `desired_i - o_i`,
/// which pool-adjacent-violators solves exactly in linear time.
fn place_layer(
    layer: &[usize],
    neighbours: &Adjacency,
    breadth: &[f64],
    pos: &mut [f64],
    scratch: &mut PlaceScratch,
) {
    let PlaceScratch {
        targets,
        offsets,
        blocks,
    } = scratch;
    targets.clear();
    offsets.clear();
    blocks.clear();
    let mut offset = 0.0;
    for (i, &v) in layer.iter().enumerate() {
        if i > 0 {
            offset += (breadth[layer[i - 1]] + breadth[v]) / 2.0 + NODE_GAP;
        }
        let ns = neighbours.of(v);
        let (desired, weight) = if ns.is_empty() {
            (pos[v], FREE_WEIGHT)
        } else {
            (
                ns.iter().map(|&u| pos[u]).sum::<f64>() / ns.len() as f64,
                1.0,
            )
        };
        offsets.push(offset);
        targets.push((desired - offset, weight));
    }
    for (i, &(t, w)) in targets.iter().enumerate() {
        blocks.push((t * w, w, i));
        while blocks.len() >= 2 {
            let (s2, w2, _) = blocks[blocks.len() - 1];
            let (s1, w1, start) = blocks[blocks.len() - 2];
            if s1 / w1 <= s2 / w2 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = (s1 + s2, w1 + w2, start);
        }
    }
    for (b, &(sum, weight, start)) in blocks.iter().enumerate() {
        let end = blocks.get(b + 1).map_or(layer.len(), |next| next.2);
        let y = sum / weight;
        for i in start..end {
            pos[layer[i]] = y + offsets[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so failures are reproducible.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn edges(pairs: &[(usize, usize)]) -> Vec<VisEdge> {
        pairs
            .iter()
            .map(|&(from, to)| VisEdge { from, to })
            .collect()
    }

    /// A random DAG whose node ids are shuffled, so that the input order is
    /// no hint of the topological order.
    fn random_dag(rng: &mut Lcg, n: usize, m: usize) -> (Vec<(f64, f64)>, Vec<VisEdge>) {
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            perm.swap(i, rng.below(i + 1));
        }
        let mut es = Vec::new();
        for _ in 0..m {
            let a = rng.below(n);
            let b = rng.below(n);
            if a != b {
                let (lo, hi) = (a.min(b), a.max(b));
                es.push(VisEdge {
                    from: perm[lo],
                    to: perm[hi],
                });
            }
        }
        let sizes = (0..n)
            .map(|_| (40.0 + rng.below(120) as f64, 30.0 + rng.below(10) as f64))
            .collect();
        (sizes, es)
    }

    fn assert_no_overlaps(layout: &Layout) {
        let b = &layout.boxes;
        for i in 0..b.len() {
            for j in i + 1..b.len() {
                let apart = b[i].right() <= b[j].left() + 1e-9
                    || b[j].right() <= b[i].left() + 1e-9
                    || b[i].bottom() <= b[j].top() + 1e-9
                    || b[j].bottom() <= b[i].top() + 1e-9;
                assert!(apart, "nodes {i} {:?} and {j} {:?} overlap", b[i], b[j]);
            }
        }
    }

    fn assert_inside_canvas(layout: &Layout) {
        for (i, b) in layout.boxes.iter().enumerate() {
            assert!(b.x.is_finite() && b.y.is_finite(), "node {i}: {b:?}");
            assert!(b.left() >= -1e-6 && b.top() >= -1e-6, "node {i}: {b:?}");
            assert!(b.right() <= layout.width + 1e-6, "node {i}: {b:?}");
            assert!(b.bottom() <= layout.height + 1e-6, "node {i}: {b:?}");
        }
    }

    fn assert_layers_consistent(layout: &Layout, es: &[VisEdge]) {
        for (i, e) in es.iter().enumerate() {
            assert!(
                layout.layer_of[e.from] < layout.layer_of[e.to],
                "edge {i} {e:?} goes from layer {} to {}",
                layout.layer_of[e.from],
                layout.layer_of[e.to]
            );
        }
        let mut seen = vec![false; layout.boxes.len()];
        for (l, layer) in layout.layers.iter().enumerate() {
            for &v in layer {
                assert_eq!(layout.layer_of[v], l);
                assert!(!seen[v], "node {v} in two layers");
                seen[v] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "a node is in no layer");
    }

    #[test]
    fn layers_follow_longest_path() {
        // 0 -> 1 -> 2 and a shortcut 0 -> 2: node 2 must be on layer 2.
        let es = edges(&[(0, 1), (1, 2), (0, 2), (3, 2)]);
        let l = compute(&[(50.0, 30.0); 4], &es, Direction::TopToBottom).unwrap();
        assert_eq!(l.layer_of, vec![0, 1, 2, 0]);
        assert_layers_consistent(&l, &es);
    }

    #[test]
    fn random_dags_have_upward_edges_and_no_overlaps() {
        let mut rng = Lcg(7);
        for round in 0..30 {
            let n = 1 + rng.below(120);
            let m = rng.below(3 * n);
            let (sizes, es) = random_dag(&mut rng, n, m);
            let direction = [
                Direction::BottomToTop,
                Direction::TopToBottom,
                Direction::LeftToRight,
            ][round % 3];
            let l = compute(&sizes, &es, direction).unwrap();
            assert_layers_consistent(&l, &es);
            assert_no_overlaps(&l);
            assert_inside_canvas(&l);
            for (v, b) in l.boxes.iter().enumerate() {
                assert_eq!((b.width, b.height), sizes[v]);
            }
        }
    }

    #[test]
    fn direction_decides_where_dependencies_go() {
        let es = edges(&[(0, 1)]);
        let sizes = [(60.0, 30.0), (60.0, 30.0)];
        let bt = compute(&sizes, &es, Direction::BottomToTop).unwrap();
        assert!(bt.boxes[0].y > bt.boxes[1].y, "dependency should be below");
        let tb = compute(&sizes, &es, Direction::TopToBottom).unwrap();
        assert!(tb.boxes[0].y < tb.boxes[1].y);
        let lr = compute(&sizes, &es, Direction::LeftToRight).unwrap();
        assert!(lr.boxes[0].x < lr.boxes[1].x);
        assert_eq!(lr.boxes[0].y, lr.boxes[1].y);
        // A straight chain is drawn straight.
        assert_eq!(bt.boxes[0].x, bt.boxes[1].x);
    }

    #[test]
    fn barycenter_untangles_a_twist() {
        // Layer 1 in index order is [2, 3], but 0 feeds 3 and 1 feeds 2:
        // one crossing unless the layer is reordered.
        let es = edges(&[(0, 3), (1, 2), (3, 4), (2, 5)]);
        let l = compute(&[(50.0, 30.0); 6], &es, Direction::TopToBottom).unwrap();
        let succ = Adjacency::build(6, es.iter().map(|e| (e.from, e.to)));
        let mut pos = vec![0; 6];
        for layer in &l.layers {
            for (i, &v) in layer.iter().enumerate() {
                pos[v] = i;
            }
        }
        assert_eq!(count_crossings(&l.layers, &pos, &succ, &l.layer_of), 0);
        // Check the geometry, not only the order: no two edges cross.
        for (i, a) in es.iter().enumerate() {
            for b in &es[i + 1..] {
                if l.layer_of[a.from] == l.layer_of[b.from] {
                    let before = l.boxes[a.from].x < l.boxes[b.from].x;
                    let after = l.boxes[a.to].x < l.boxes[b.to].x;
                    assert_eq!(before, after, "{a:?} crosses {b:?}");
                }
            }
        }
    }

    #[test]
    fn crossing_count_matches_brute_force() {
        let mut rng = Lcg(42);
        for _ in 0..20 {
            let n = 2 + rng.below(40);
            let (sizes, es) = random_dag(&mut rng, n, 2 * n);
            let l = compute(&sizes, &es, Direction::TopToBottom).unwrap();
            let succ = Adjacency::build(n, es.iter().map(|e| (e.from, e.to)));
            let mut pos = vec![0; n];
            for layer in &l.layers {
                for (i, &v) in layer.iter().enumerate() {
                    pos[v] = i;
                }
            }
            let adjacent: Vec<&VisEdge> = es
                .iter()
                .filter(|e| l.layer_of[e.to] == l.layer_of[e.from] + 1)
                .collect();
            let mut brute = 0u64;
            for (i, a) in adjacent.iter().enumerate() {
                for b in &adjacent[i + 1..] {
                    if l.layer_of[a.from] != l.layer_of[b.from] {
                        continue;
                    }
                    let (a0, a1, b0, b1) = (pos[a.from], pos[a.to], pos[b.from], pos[b.to]);
                    if (a0 < b0 && a1 > b1) || (a0 > b0 && a1 < b1) {
                        brute += 1;
                    }
                }
            }
            assert_eq!(count_crossings(&l.layers, &pos, &succ, &l.layer_of), brute);
        }
    }

    #[test]
    fn reduction_parents_sit_between_their_inputs() {
        // 0..4 reduced pairwise: 4 = f(0,1), 5 = f(2,3), 6 = f(4,5).
        let es = edges(&[(0, 4), (1, 4), (2, 5), (3, 5), (4, 6), (5, 6)]);
        let l = compute(&[(50.0, 30.0); 7], &es, Direction::BottomToTop).unwrap();
        let b = &l.boxes;
        for (parent, (x, y)) in [(4, (0, 1)), (5, (2, 3)), (6, (4, 5))] {
            let mid = (b[x].x + b[y].x) / 2.0;
            assert!((b[parent].x - mid).abs() < 1e-6, "{parent}: {b:?}");
        }
    }

    #[test]
    fn cycles_and_bad_edges_are_errors() {
        let es = edges(&[(0, 1), (1, 2), (2, 0)]);
        match compute(&[(50.0, 30.0); 3], &es, Direction::BottomToTop) {
            Err(VisError::Cycle { cycle }) => {
                assert_eq!(cycle.len(), 4);
                assert_eq!(cycle[0], cycle[3]);
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
        let es = edges(&[(0, 5)]);
        assert!(matches!(
            compute(&[(50.0, 30.0); 3], &es, Direction::BottomToTop),
            Err(VisError::EdgeOutOfRange {
                edge: 0,
                index: 5,
                ..
            })
        ));
    }

    #[test]
    fn empty_and_edgeless_graphs() {
        let l = compute(&[], &[], Direction::BottomToTop).unwrap();
        assert!(l.boxes.is_empty() && l.layers.is_empty());
        assert_eq!((l.width, l.height), (0.0, 0.0));

        let l = compute(&[(50.0, 30.0); 5], &[], Direction::LeftToRight).unwrap();
        assert_eq!(l.layers.len(), 1);
        assert_no_overlaps(&l);
        assert_inside_canvas(&l);
    }

    #[test]
    fn ten_thousand_node_tree_lays_out() {
        // A binary reduction tree: node i's dependent is (i - 1) / 2.
        let n = 10_000;
        let es: Vec<VisEdge> = (1..n)
            .map(|i| VisEdge {
                from: i,
                to: (i - 1) / 2,
            })
            .collect();
        let sizes: Vec<(f64, f64)> = (0..n)
            .map(|i| (40.0 + (i % 7) as f64 * 10.0, 36.0))
            .collect();
        let l = compute(&sizes, &es, Direction::BottomToTop).unwrap();
        assert_layers_consistent(&l, &es);
        assert_inside_canvas(&l);
        // All-pairs overlap checking would be slow here; within a layer the
        // boxes must be in order and apart, and layers are apart by design.
        for layer in &l.layers {
            for w in layer.windows(2) {
                let (a, b) = (&l.boxes[w[0]], &l.boxes[w[1]]);
                assert!(a.right() + NODE_GAP - 1e-6 <= b.left(), "{a:?} {b:?}");
                assert_eq!(a.y, b.y);
            }
        }
        for w in l.layers.windows(2) {
            let lower = &l.boxes[w[0][0]];
            let upper = &l.boxes[w[1][0]];
            assert!(upper.bottom() + LAYER_GAP_VERTICAL - 1e-6 <= lower.top());
        }
        // A tree has a crossing-free ordering, and barycenter finds it.
        let succ = Adjacency::build(n, es.iter().map(|e| (e.from, e.to)));
        let mut pos = vec![0; n];
        for layer in &l.layers {
            for (i, &v) in layer.iter().enumerate() {
                pos[v] = i;
            }
        }
        assert_eq!(count_crossings(&l.layers, &pos, &succ, &l.layer_of), 0);
    }
}
