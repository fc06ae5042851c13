//! The futures tutorial's lab: where should a city put its emergency stations?
//!
//! The city is a 16x16 grid of intersections; each intersection has a traffic multiplier
//! (1.0 = free-flowing, 4.0 = jammed), stored as a `.npy` file ([`write_traffic_grid`]).
//! Driving one block takes one minute times the average multiplier of its two ends. The city
//! is cut into `k` zones (k = 1: the whole city, 4: quadrants of 8x8, 16: blocks of 4x4), each
//! with one station at its centre intersection, and each station answers the incidents of its
//! own zone only. For every zone we compute the travel times between all its intersections
//! (a petgraph grid graph, Dijkstra from every node), then simulate 100 incidents at uniform
//! intersections of the zone: the response time is the drive from the station plus a random
//! dispatch delay. More stations mean shorter drives, so the mean response time falls from 1
//! to 4 to 16 zones: the lab's conclusion, and what [`run_lab`] checks it computes.
//!
//! On a cluster ([`run_lab`]) the work is a chain of futures per zone: one future loads the
//! grid and every zone task reads it (the grid is sent to the workers once, not with every
//! task), a `zone_times` future per zone feeds a `simulate` future per zone, and only the
//! response times come back. [`run_lab_eager`] computes the same with plain function calls:
//! the `#[rask::delayed]` wrappers and the oracle call the same inner functions
//! ([`read_grid`], [`zone_travel_times`], [`simulate_incidents`]) with the same seeds, so the
//! two agree bit for bit.
//!
//! Both write `dir/response_times.png`: one histogram row per scheme (red: 1 zone, amber: 4,
//! green: 16) on a shared time axis, with the mean marked.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use ndarray::Array2;
use petgraph::algo::dijkstra;
use petgraph::graph::{NodeIndex, UnGraph};
use rask::distributed::Client;
use rask::prelude::*;

use crate::npy::{self, NpyError};
use crate::rng::SplitMix64;

/// Intersections per side of the city.
pub const SIDE: usize = 16;
/// The zoning schemes compared: 1, 4 and 16 zones (and as many stations).
pub const SCHEMES: [u32; 3] = [1, 4, 16];
/// The traffic grid's file name in the lab's directory.
pub const GRID_FILE: &str = "traffic.npy";
/// The histogram's file name in the lab's directory.
pub const PNG_FILE: &str = "response_times.png";
/// The seed of the example's traffic grid.
pub const GRID_SEED: u64 = 2024;
/// The seed every zone's incident seed is derived from.
pub const SIM_SEED: u64 = 7;
/// Incidents simulated per zone.
pub const INCIDENTS_PER_ZONE: u32 = 100;
/// Dispatch delay, uniform in `[DISPATCH_MIN, DISPATCH_MIN + DISPATCH_SPREAD)` minutes.
pub const DISPATCH_MIN: f64 = 0.5;
pub const DISPATCH_SPREAD: f64 = 2.0;

/// Histogram bins (shared by all rows, over `[0, slowest response]`).
pub const HIST_BINS: usize = 48;
const BAR_W: usize = 6;
const ROW_H: usize = 80;
const MARGIN: usize = 16;
/// The PNG's width in pixels.
pub const PNG_WIDTH: u32 = (HIST_BINS * BAR_W + 2 * MARGIN) as u32;
/// The PNG's height in pixels: one row per scheme.
pub const PNG_HEIGHT: u32 = (SCHEMES.len() * (ROW_H + MARGIN) + MARGIN) as u32;

/// One zoning scheme's simulated responses and their statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemeStats {
    /// Zones (and stations) in the scheme.
    pub zones: u32,
    /// Every incident's response time in minutes, zone by zone in zone order.
    pub responses: Vec<f64>,
    /// Mean response time in minutes.
    pub mean: f64,
    /// 90th percentile (nearest rank) in minutes.
    pub p90: f64,
}

/// The lab's outcome: one entry per scheme, in [`SCHEMES`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct LabResult {
    pub schemes: Vec<SchemeStats>,
}

/// Writes a deterministic `SIDE x SIDE` grid of traffic multipliers in `[1, 4)` to `path` as
/// a `.npy` file (`np.load` opens it).
pub fn write_traffic_grid(path: &Path, seed: u64) -> Result<(), NpyError> {
    let mut rng = SplitMix64::new(seed);
    let grid = Array2::from_shape_fn((SIDE, SIDE), |_| 1.0 + 3.0 * rng.next_f64());
    npy::write_f64_2d(path, &grid)
}

/// Reads the traffic grid, flat in row-major order: the form that crosses the wire (a flat
/// `Vec<f64>` spills as one block of numbers). Every error names the file.
pub fn read_grid(path: &Path) -> Result<Vec<f64>, NpyError> {
    Ok(npy::read_f64_2d(path, (SIDE, SIDE))?
        .iter()
        .copied()
        .collect())
}

/// Zone `zone` of the `zones`-zone scheme: its top-left intersection and its side. `zones`
/// must be a square whose root divides [`SIDE`] (1, 4, 16, 64, 256).
pub fn zone_bounds(zones: u32, zone: u32) -> Result<(usize, usize, usize), String> {
    let per_side = (zones as f64).sqrt().round() as usize;
    if per_side == 0
        || per_side * per_side != zones as usize
        || (SIDE / per_side) * per_side != SIDE
    {
        return Err(format!(
            "{zones} zones cannot tile a {SIDE}x{SIDE} grid (need a square whose root divides {SIDE})"
        ));
    }
    if zone >= zones {
        return Err(format!("zone {zone} out of range for {zones} zones"));
    }
    let side = SIDE / per_side;
    let (zr, zc) = (zone as usize / per_side, zone as usize % per_side);
    Ok((zr * side, zc * side, side))
}

/// The travel time in minutes between every pair of intersections of one zone, flat: entry
/// `a * n + b` is the time from local intersection `a` to `b` (row-major within the zone, `n`
/// intersections). Roads leaving the zone are not used: a station serves its own zone.
pub fn zone_travel_times(grid: &[f64], zones: u32, zone: u32) -> Result<Vec<f64>, String> {
    if grid.len() != SIDE * SIDE {
        return Err(format!(
            "traffic grid has {} values, expected {}",
            grid.len(),
            SIDE * SIDE
        ));
    }
    let (r0, c0, side) = zone_bounds(zones, zone)?;
    let n = side * side;
    let traffic = |r: usize, c: usize| grid[(r0 + r) * SIDE + (c0 + c)];
    // Nodes are added in local row-major order, so node index i is local intersection i.
    let mut g = UnGraph::<(), f64>::with_capacity(n, 2 * side * (side - 1));
    let nodes: Vec<NodeIndex> = (0..n).map(|_| g.add_node(())).collect();
    for r in 0..side {
        for c in 0..side {
            let here = nodes[r * side + c];
            // One block's drive: one minute at the average congestion of its two ends.
            if c + 1 < side {
                let w = (traffic(r, c) + traffic(r, c + 1)) / 2.0;
                g.add_edge(here, nodes[r * side + c + 1], w);
            }
            if r + 1 < side {
                let w = (traffic(r, c) + traffic(r + 1, c)) / 2.0;
                g.add_edge(here, nodes[(r + 1) * side + c], w);
            }
        }
    }
    let mut times = Vec::with_capacity(n * n);
    for &from in &nodes {
        let dist = dijkstra(&g, from, None, |e| *e.weight());
        // A grid zone is connected: every node has a distance.
        times.extend(
            nodes
                .iter()
                .map(|to| dist.get(to).copied().unwrap_or(f64::INFINITY)),
        );
    }
    Ok(times)
}

/// The seed of one zone's incidents: a hash of (base, scheme, zone), so each zone's stream is
/// independent (consecutive raw seeds would give SplitMix64 streams shifted by one draw).
pub fn zone_seed(base: u64, zones: u32, zone: u32) -> u64 {
    SplitMix64::new(base ^ ((u64::from(zones) << 32) | u64::from(zone))).next_u64()
}

/// Simulates `incidents` incidents at uniform intersections of a zone whose all-pairs travel
/// times are `times` (from [`zone_travel_times`]); the station is the zone's centre
/// intersection. Returns each incident's response time: drive plus dispatch delay, minutes.
pub fn simulate_incidents(times: &[f64], incidents: u32, seed: u64) -> Result<Vec<f64>, String> {
    // The zone's size is implied by the matrix: n*n entries for n = side*side intersections.
    let n = (times.len() as f64).sqrt().round() as usize;
    let side = (n as f64).sqrt().round() as usize;
    if n == 0 || n * n != times.len() || side * side != n {
        return Err(format!(
            "{} travel times are not the all-pairs matrix of a square zone",
            times.len()
        ));
    }
    let station = (side / 2) * side + side / 2;
    let from_station = &times[station * n..(station + 1) * n];
    let mut rng = SplitMix64::new(seed);
    Ok((0..incidents)
        .map(|_| {
            let at = (rng.next_f64() * n as f64) as usize;
            let delay = DISPATCH_MIN + DISPATCH_SPREAD * rng.next_f64();
            from_station[at] + delay
        })
        .collect())
}

/// Loads the traffic grid. Not pure: the value depends on the file's contents, not only on
/// the path, so each call gets a fresh key.
#[rask::delayed]
pub fn load_grid(path: String) -> Result<Vec<f64>, NpyError> {
    read_grid(Path::new(&path))
}

/// [`zone_travel_times`] as a task.
#[rask::delayed(pure)]
pub fn zone_times(grid: &[f64], zones: u32, zone: u32) -> Result<Vec<f64>, String> {
    zone_travel_times(grid, zones, zone)
}

/// [`simulate_incidents`] as a task.
#[rask::delayed(pure)]
pub fn simulate(times: &[f64], incidents: u32, seed: u64) -> Result<Vec<f64>, String> {
    simulate_incidents(times, incidents, seed)
}

/// Mean and 90th percentile (nearest rank) of a scheme's responses, zones in zone order.
fn scheme_stats(zones: u32, per_zone: Vec<Vec<f64>>) -> SchemeStats {
    let responses: Vec<f64> = per_zone.into_iter().flatten().collect();
    let mean = responses.iter().sum::<f64>() / responses.len() as f64;
    let mut sorted = responses.clone();
    sorted.sort_by(f64::total_cmp);
    let rank = (0.9 * sorted.len() as f64).ceil() as usize;
    let p90 = sorted[rank.saturating_sub(1)];
    SchemeStats {
        zones,
        responses,
        mean,
        p90,
    }
}

/// The lab on a cluster: reads `dir/traffic.npy` (see [`write_traffic_grid`]), runs every
/// scheme's zones as futures, writes `dir/response_times.png` and returns the statistics.
pub fn run_lab(client: &Client, dir: &Path) -> rask::Result<LabResult> {
    let path = dir.join(GRID_FILE).to_string_lossy().into_owned();
    // One future for the grid: every zone task takes it as an argument, so the grid stays on
    // the cluster and is read from the file once.
    let grid = client.submit(&load_grid(path))?;
    // Submit every scheme before gathering any, so all 21 zones run side by side.
    let mut submitted = Vec::with_capacity(SCHEMES.len());
    for zones in SCHEMES {
        let times = client.map(|zone| zone_times(&grid, zones, zone), 0..zones)?;
        let sims = client.map(
            |(zone, t)| simulate(t, INCIDENTS_PER_ZONE, zone_seed(SIM_SEED, zones, zone)),
            (0..zones).zip(&times),
        )?;
        // The travel-time matrices are intermediates: dropping their futures lets the
        // cluster release each one once its `simulate` has read it.
        drop(times);
        submitted.push((zones, sims));
    }
    let mut schemes = Vec::with_capacity(SCHEMES.len());
    for (zones, sims) in submitted {
        schemes.push(scheme_stats(zones, client.gather(&sims)?));
    }
    let result = LabResult { schemes };
    write_histogram(&dir.join(PNG_FILE), &result)?;
    Ok(result)
}

/// The oracle: [`run_lab`] with plain calls of the same inner functions and seeds, no rask.
pub fn run_lab_eager(dir: &Path) -> rask::Result<LabResult> {
    let grid = read_grid(&dir.join(GRID_FILE)).map_err(RaskError::external)?;
    let mut schemes = Vec::with_capacity(SCHEMES.len());
    for zones in SCHEMES {
        let per_zone = (0..zones)
            .map(|zone| {
                let times = zone_travel_times(&grid, zones, zone)?;
                simulate_incidents(&times, INCIDENTS_PER_ZONE, zone_seed(SIM_SEED, zones, zone))
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(RaskError::msg)?;
        schemes.push(scheme_stats(zones, per_zone));
    }
    let result = LabResult { schemes };
    write_histogram(&dir.join(PNG_FILE), &result)?;
    Ok(result)
}

/// One colour per scheme row (red, amber, green: fewer stations look worse).
const COLORS: [[u8; 3]; 3] = [[214, 39, 40], [255, 160, 0], [44, 160, 44]];

/// Draws one histogram row per scheme into an RGB buffer and writes it as a PNG of
/// [`PNG_WIDTH`] x [`PNG_HEIGHT`]. All rows share the time axis (`[0, slowest response]`), so
/// the rows compare at a glance; each row's bars are scaled to its own tallest bin, since the
/// schemes have 100, 400 and 1600 incidents and a shared count scale would flatten the first.
/// A black tick marks each row's mean.
pub fn write_histogram(path: &Path, result: &LabResult) -> rask::Result<()> {
    if result.schemes.len() != SCHEMES.len() {
        return Err(RaskError::msg(format!(
            "{}: expected {} schemes to draw, got {}",
            path.display(),
            SCHEMES.len(),
            result.schemes.len()
        )));
    }
    let (w, h) = (PNG_WIDTH as usize, PNG_HEIGHT as usize);
    let mut rgb = vec![255u8; w * h * 3];
    let mut fill = |x0: usize, y0: usize, x1: usize, y1: usize, color: [u8; 3]| {
        for y in y0..y1.min(h) {
            for x in x0..x1.min(w) {
                rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&color);
            }
        }
    };
    let slowest = result
        .schemes
        .iter()
        .flat_map(|s| s.responses.iter().copied())
        .fold(0.0f64, f64::max);
    let bin_of = |v: f64| ((v / slowest * HIST_BINS as f64) as usize).min(HIST_BINS - 1);
    let counts: Vec<Vec<usize>> = result
        .schemes
        .iter()
        .map(|s| {
            let mut c = vec![0usize; HIST_BINS];
            for &v in &s.responses {
                c[bin_of(v)] += 1;
            }
            c
        })
        .collect();
    for (row, (s, c)) in result.schemes.iter().zip(&counts).enumerate() {
        let tallest = c.iter().copied().max().unwrap_or(0).max(1);
        let top = MARGIN + row * (ROW_H + MARGIN);
        let base = top + ROW_H;
        for (b, &count) in c.iter().enumerate() {
            let bar = (count * ROW_H).div_ceil(tallest);
            let x = MARGIN + b * BAR_W;
            // One pixel of gap between bars.
            fill(x, base - bar, x + BAR_W - 1, base, COLORS[row]);
        }
        fill(MARGIN, base, w - MARGIN, base + 1, [128, 128, 128]);
        let mean_x = MARGIN + ((s.mean / slowest) * (HIST_BINS * BAR_W) as f64) as usize;
        fill(mean_x, top, mean_x + 2, base + 4, [0, 0, 0]);
    }
    let io = |e: &dyn std::fmt::Display| RaskError::msg(format!("{}: {e}", path.display()));
    let file = File::create(path).map_err(|e| io(&e))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), PNG_WIDTH, PNG_HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| io(&e))?;
    writer.write_image_data(&rgb).map_err(|e| io(&e))?;
    writer.finish().map_err(|e| io(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        (0..SIDE * SIDE)
            .map(|_| 1.0 + 3.0 * rng.next_f64())
            .collect()
    }

    #[test]
    fn zones_tile_the_city() {
        for zones in SCHEMES {
            let mut seen = vec![0u8; SIDE * SIDE];
            for zone in 0..zones {
                let (r0, c0, side) = zone_bounds(zones, zone).unwrap();
                for r in r0..r0 + side {
                    for c in c0..c0 + side {
                        seen[r * SIDE + c] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{zones} zones");
        }
        assert!(zone_bounds(3, 0).unwrap_err().contains("3 zones"));
        assert!(zone_bounds(4, 4).unwrap_err().contains("out of range"));
    }

    #[test]
    fn uniform_traffic_gives_manhattan_times() {
        let flat = vec![1.0; SIDE * SIDE];
        let t = zone_travel_times(&flat, 4, 3).unwrap();
        let n = 64;
        assert_eq!(t.len(), n * n);
        // Corner to corner of an 8x8 zone: 14 blocks at one minute each.
        assert_eq!(t[n - 1], 14.0);
        assert_eq!(t[9 * n + 9], 0.0);
        // Symmetric, as the roads are two-way: to rounding only, since a -> b and b -> a add
        // the same edge weights in opposite orders.
        let g = zone_travel_times(&grid(1), 16, 5).unwrap();
        for a in 0..16 {
            for b in 0..16 {
                let (ab, ba) = (g[a * 16 + b], g[b * 16 + a]);
                assert!(
                    (ab - ba).abs() <= 1e-12 * ab.max(1.0),
                    "{a} -> {b}: {ab} vs {ba}"
                );
            }
        }
    }

    #[test]
    fn simulation_is_seeded_and_checks_its_input() {
        let t = zone_travel_times(&grid(3), 1, 0).unwrap();
        let a = simulate_incidents(&t, 100, 9).unwrap();
        assert_eq!(a, simulate_incidents(&t, 100, 9).unwrap());
        assert_ne!(a, simulate_incidents(&t, 100, 10).unwrap());
        assert!(a.iter().all(|&r| r >= DISPATCH_MIN));
        assert!(simulate_incidents(&t[1..], 10, 0).is_err());
    }

    #[test]
    fn eager_lab_shows_more_stations_respond_faster() {
        let dir = crate::array_tutorial::scratch_dir("emergency-lab").unwrap();
        write_traffic_grid(&dir.join(GRID_FILE), GRID_SEED).unwrap();
        let r = run_lab_eager(&dir).unwrap();
        let means: Vec<f64> = r.schemes.iter().map(|s| s.mean).collect();
        assert!(means[0] > means[1] && means[1] > means[2], "{means:?}");
        for s in &r.schemes {
            assert_eq!(
                s.responses.len(),
                s.zones as usize * INCIDENTS_PER_ZONE as usize
            );
            assert!(s.p90 >= s.mean);
        }
        assert!(dir.join(PNG_FILE).is_file());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
