//! Random arrays: `uniform`, `normal`, `integers`, and [`RandomState`] for a sequence of them.
//!
//! # Lowering and reproducibility
//!
//! One task per block, with no inputs. Each block draws from its own generator seeded from
//! `(seed, block index)` only, so an array is identical for a given seed and chunking whatever
//! the executor, the thread count or the order blocks run in (and whichever blocks a slice
//! culls). Changing the chunking changes the values, as in Dask.
//!
//! # The generator
//!
//! Speed matters (the brief's target draws 400M normal samples in about a second per core),
//! so the generator is built in rather than taken from a crate:
//!
//! - **wyrand** (Wang Yi's generator: a 64-bit Weyl counter mixed by one 64x64->128 multiply)
//!   gives 64 random bits in about a nanosecond and passes BigCrush and PractRand. Each block's
//!   state is its seed run through SplitMix64 twice, which spreads nearby seeds and indices
//!   over the whole 2^64 cycle (overlap between blocks of a million draws is negligible).
//! - **Normal** samples use the 256-layer Ziggurat of Marsaglia and Tsang (with Doornik's
//!   variant of taking the layer and the uniform from one 64-bit draw): about 99% of samples
//!   take one draw, one multiply and one compare. The tables are computed once, in a
//!   `OnceLock`.
//! - **Integers** use Lemire's multiply-and-reject method: unbiased, one draw nearly always.
//!
//! # Memory
//!
//! A task holds only the block it produces.
//!
//! # Example
//!
//! ```
//! use rask::prelude::*;
//! use rask::array::random;
//!
//! let x = random::normal(10.0, 0.1, &[400, 300], (100, 100), 42)?;
//! let a = x.compute()?;
//! let b = rask::compute_with(&x, &Config::builtin().with_executor(Executor::Sync))?;
//! assert_eq!(a, b); // the same values whatever the executor
//! assert!((a.mean().unwrap() - 10.0).abs() < 0.01);
//! # Ok::<(), rask::RaskError>(())
//! ```

use std::sync::{Arc, OnceLock};

use ndarray::{ArrayD, IxDyn};
use rask_error::{RaskError, Result};
use rask_graph::{Op, OpRegistry, Tokenizer, Value, decode_params, encode_params};
use serde::{Deserialize, Serialize};

use crate::array::{ArrayBuilder, block_nbytes, block_value};
use crate::{Array, ChunkSpec, Chunks};

/// SplitMix64's finalizer: a bijective mix of 64 bits.
#[inline]
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The wyrand generator.
#[derive(Clone, Debug)]
pub(crate) struct WyRand {
    state: u64,
}

impl WyRand {
    /// The generator of one block: depends on the seed and the block's index only.
    pub(crate) fn for_block(seed: u64, index: &[usize]) -> WyRand {
        let mut s = splitmix64(seed);
        for &i in index {
            s = splitmix64(s ^ i as u64);
        }
        WyRand { state: s }
    }

    #[inline(always)]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    #[inline(always)]
    pub(crate) fn next_f64(&mut self) -> f64 {
        // Through `i64`: one hardware conversion, where `u64 as f64` takes several
        // instructions without AVX-512 (the value has 53 bits, so both are exact).
        (self.next_u64() >> 11) as i64 as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The 256-layer Ziggurat for the standard normal: layer `i` spans `x[i+1]..x[i]` under the
/// unnormalized density `f(x) = exp(-x^2/2)`, all layers (and the base with its tail) of
/// equal area `V`.
struct Ziggurat {
    x: [f64; 257],
    f: [f64; 257],
}

/// The rightmost layer's edge and the common area for 256 layers (Marsaglia and Tsang 2000).
const ZIG_R: f64 = 3.654_152_885_361_009;
const ZIG_V: f64 = 0.004_928_673_233_99;

fn ziggurat() -> &'static Ziggurat {
    static TABLES: OnceLock<Ziggurat> = OnceLock::new();
    TABLES.get_or_init(|| {
        let f = |x: f64| (-0.5 * x * x).exp();
        let mut x = [0.0; 257];
        // The base layer is a rectangle of height f(R) plus the tail; its "width" makes the
        // rectangle's area V, so a uniform point beyond R falls in the tail.
        x[0] = ZIG_V / f(ZIG_R);
        x[1] = ZIG_R;
        for i in 1..255 {
            x[i + 1] = (-2.0 * (ZIG_V / x[i] + f(x[i])).ln()).sqrt();
        }
        x[256] = 0.0;
        Ziggurat { x, f: x.map(f) }
    })
}

/// One standard normal sample.
#[inline(always)]
fn std_normal(rng: &mut WyRand, z: &Ziggurat) -> f64 {
    loop {
        let bits = rng.next_u64();
        // The layer from the low 8 bits, a uniform in [-1, 1) from the high 53: disjoint bits
        // of one draw.
        let i = (bits & 0xff) as usize;
        let u = (bits >> 11) as i64 as f64 * (2.0 / (1u64 << 53) as f64) - 1.0;
        let x = u * z.x[i];
        if x.abs() < z.x[i + 1] {
            return x;
        }
        if i == 0 {
            return normal_tail(rng, u < 0.0);
        }
        // In the wedge between the layer's rectangle and the curve: accept under the curve.
        let y = z.f[i] + (z.f[i + 1] - z.f[i]) * rng.next_f64();
        if y < (-0.5 * x * x).exp() {
            return x;
        }
    }
}

/// A sample from the tail beyond `ZIG_R` (Marsaglia's method).
#[cold]
fn normal_tail(rng: &mut WyRand, negative: bool) -> f64 {
    loop {
        // 1 - u is in (0, 1], so the logarithms are finite.
        let x = -(1.0 - rng.next_f64()).ln() / ZIG_R;
        let y = -(1.0 - rng.next_f64()).ln();
        if 2.0 * y >= x * x {
            let v = ZIG_R + x;
            return if negative { -v } else { v };
        }
    }
}

/// What a block draws from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum Dist {
    Uniform { low: f64, high: f64 },
    Normal { mean: f64, std: f64 },
    Integers { low: i64, high: i64 },
}

impl Dist {
    fn name(&self) -> &'static str {
        match self {
            Dist::Uniform { .. } => "uniform",
            Dist::Normal { .. } => "normal",
            Dist::Integers { .. } => "integers",
        }
    }
}

/// One block of random numbers.
struct RandomBlock {
    dist: Dist,
    seed: u64,
    index: Vec<usize>,
    shape: Vec<usize>,
}

#[derive(Serialize, Deserialize)]
struct RandomParams {
    dist: Dist,
    seed: u64,
    index: Vec<usize>,
    shape: Vec<usize>,
}

const RANDOM: &str = "rask.array.random";

fn decode_random(params: &[u8], _: &OpRegistry) -> Result<Arc<dyn Op>> {
    let p: RandomParams = decode_params(RANDOM, params)?;
    if let Dist::Integers { low, high } = p.dist
        && high <= low
    {
        // `draw` divides by the span: an empty one is refused (the public function does too).
        return Err(RaskError::Serialization {
            what: format!("parameters of op `{RANDOM}`"),
            message: format!("integers in [{low}, {high}) is empty"),
        });
    }
    Ok(Arc::new(RandomBlock {
        dist: p.dist,
        seed: p.seed,
        index: p.index,
        shape: p.shape,
    }))
}
rask_graph::register_op!(RANDOM, decode_random);

/// The values of one block, in C order.
enum Drawn {
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// Draws `n` values of one block.
fn draw(dist: Dist, rng: &mut WyRand, n: usize) -> Drawn {
    match dist {
        Dist::Uniform { low, high } => {
            let span = high - low;
            // `low + span * u` can round up to `high`; the largest float below `high` keeps
            // the interval half-open.
            let below = next_down(high);
            Drawn::F64(
                (0..n)
                    .map(|_| {
                        let x = low + span * rng.next_f64();
                        if x < high { x } else { below }
                    })
                    .collect(),
            )
        }
        Dist::Normal { mean, std } => {
            let z = ziggurat();
            Drawn::F64((0..n).map(|_| mean + std * std_normal(rng, z)).collect())
        }
        Dist::Integers { low, high } => {
            let range = high.wrapping_sub(low) as u64;
            // Lemire: reject the few low products that would bias the result.
            let threshold = range.wrapping_neg() % range;
            Drawn::I64(
                (0..n)
                    .map(|_| {
                        loop {
                            let m = u128::from(rng.next_u64()) * u128::from(range);
                            if (m as u64) >= threshold {
                                break low.wrapping_add((m >> 64) as i64);
                            }
                        }
                    })
                    .collect(),
            )
        }
    }
}

/// The largest float below a finite `x` (`f64::next_down` needs a newer Rust than our MSRV).
fn next_down(x: f64) -> f64 {
    if x == 0.0 {
        -f64::from_bits(1)
    } else if x > 0.0 {
        f64::from_bits(x.to_bits() - 1)
    } else {
        f64::from_bits(x.to_bits() + 1)
    }
}

fn shaped<T: crate::Element>(shape: &[usize], v: Vec<T>) -> Result<Value> {
    Ok(block_value(
        ArrayD::from_shape_vec(IxDyn(shape), v)
            .map_err(|e| RaskError::ShapeMismatch(e.to_string()))?,
    ))
}

impl Op for RandomBlock {
    fn name(&self) -> &str {
        "rask.array.random"
    }
    fn label(&self) -> &str {
        self.dist.name()
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(
            self.name(),
            &RandomParams {
                dist: self.dist,
                seed: self.seed,
                index: self.index.clone(),
                shape: self.shape.clone(),
            },
        )
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        let n = self.shape.iter().product();
        let mut rng = WyRand::for_block(self.seed, &self.index);
        match draw(self.dist, &mut rng, n) {
            Drawn::F64(v) => shaped(&self.shape, v),
            Drawn::I64(v) => shaped(&self.shape, v),
        }
    }
    fn projected_nbytes(&self, _: &[u64]) -> Option<u64> {
        // Both output types take 8 bytes an element.
        Some(block_nbytes::<f64>(&self.shape))
    }
}

fn random_array<T: crate::Element>(
    dist: Dist,
    shape: &[usize],
    chunks: impl Into<ChunkSpec>,
    seed: u64,
) -> Result<Array<T>> {
    let chunks = Chunks::normalize(chunks, shape, 8)?;
    let mut t = Tokenizer::new("rask.array.random");
    t.write_bytes(&encode_params("rask.array.random", &dist).unwrap_or_default());
    t.write_u64(seed);
    crate::creation::tokenize_shape(&mut t, shape, &chunks);
    let mut b = ArrayBuilder::new(dist.name(), t.finish(), chunks, Vec::new());
    for idx in b.chunks().block_indices() {
        let op = Arc::new(RandomBlock {
            dist,
            seed,
            shape: b.chunks().block_shape(&idx),
            index: idx.clone(),
        });
        b.task(&idx, op, Vec::new());
    }
    Ok(b.finish())
}

fn finite(name: &str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(RaskError::invalid_argument(
            name,
            format!("must be finite, got {v}"),
        ))
    }
}

/// Samples uniform in `[low, high)`. Errors name `low`/`high` when not finite, or `high` when
/// `high <= low` or the span overflows.
pub fn uniform(
    low: f64,
    high: f64,
    shape: &[usize],
    chunks: impl Into<ChunkSpec>,
    seed: u64,
) -> Result<Array<f64>> {
    finite("low", low)?;
    finite("high", high)?;
    if high <= low || !(high - low).is_finite() {
        return Err(RaskError::invalid_argument(
            "high",
            format!("must be greater than low with a finite span, got low={low} high={high}"),
        ));
    }
    random_array(Dist::Uniform { low, high }, shape, chunks, seed)
}

/// Samples uniform in `[0, 1)`.
pub fn random(shape: &[usize], chunks: impl Into<ChunkSpec>, seed: u64) -> Result<Array<f64>> {
    uniform(0.0, 1.0, shape, chunks, seed)
}

/// Samples from the normal distribution with `mean` and standard deviation `std`. Errors name
/// `mean` or `std` when not finite, `std` when negative.
pub fn normal(
    mean: f64,
    std: f64,
    shape: &[usize],
    chunks: impl Into<ChunkSpec>,
    seed: u64,
) -> Result<Array<f64>> {
    finite("mean", mean)?;
    finite("std", std)?;
    if std < 0.0 {
        return Err(RaskError::invalid_argument(
            "std",
            format!("must be non-negative, got {std}"),
        ));
    }
    random_array(Dist::Normal { mean, std }, shape, chunks, seed)
}

/// Samples from the standard normal distribution.
pub fn standard_normal(
    shape: &[usize],
    chunks: impl Into<ChunkSpec>,
    seed: u64,
) -> Result<Array<f64>> {
    normal(0.0, 1.0, shape, chunks, seed)
}

/// Integers uniform in `[low, high)` (NumPy's `Generator.integers`). Errors name `high` when
/// `high <= low`.
pub fn integers(
    low: i64,
    high: i64,
    shape: &[usize],
    chunks: impl Into<ChunkSpec>,
    seed: u64,
) -> Result<Array<i64>> {
    if high <= low {
        return Err(RaskError::invalid_argument(
            "high",
            format!("must be greater than low, got low={low} high={high}"),
        ));
    }
    random_array(Dist::Integers { low, high }, shape, chunks, seed)
}

/// A seeded source of random arrays, like NumPy's `RandomState`/`Generator`: each call gives
/// a new array (its seed derived from the state's seed and a call counter), and the sequence
/// of arrays is the same for the same seed.
#[derive(Clone, Debug)]
pub struct RandomState {
    seed: u64,
    calls: u64,
}

impl RandomState {
    pub fn new(seed: u64) -> Self {
        RandomState { seed, calls: 0 }
    }

    fn next_seed(&mut self) -> u64 {
        self.calls += 1;
        splitmix64(self.seed ^ splitmix64(self.calls))
    }

    pub fn uniform(
        &mut self,
        low: f64,
        high: f64,
        shape: &[usize],
        chunks: impl Into<ChunkSpec>,
    ) -> Result<Array<f64>> {
        let seed = self.next_seed();
        uniform(low, high, shape, chunks, seed)
    }

    pub fn random(&mut self, shape: &[usize], chunks: impl Into<ChunkSpec>) -> Result<Array<f64>> {
        let seed = self.next_seed();
        random(shape, chunks, seed)
    }

    pub fn normal(
        &mut self,
        mean: f64,
        std: f64,
        shape: &[usize],
        chunks: impl Into<ChunkSpec>,
    ) -> Result<Array<f64>> {
        let seed = self.next_seed();
        normal(mean, std, shape, chunks, seed)
    }

    pub fn integers(
        &mut self,
        low: i64,
        high: i64,
        shape: &[usize],
        chunks: impl Into<ChunkSpec>,
    ) -> Result<Array<i64>> {
        let seed = self.next_seed();
        integers(low, high, shape, chunks, seed)
    }
}

/// Fills a buffer with standard-normal samples from the generator of `(seed, index)`: the
/// kernel of `normal`, public for benchmarks.
pub fn fill_standard_normal(seed: u64, index: &[usize], out: &mut [f64]) {
    let z = ziggurat();
    let mut rng = WyRand::for_block(seed, index);
    for v in out {
        *v = std_normal(&mut rng, z);
    }
}

/// Fills a buffer with uniform samples in `[0, 1)` from the generator of `(seed, index)`.
pub fn fill_uniform(seed: u64, index: &[usize], out: &mut [f64]) {
    let mut rng = WyRand::for_block(seed, index);
    for v in out {
        *v = rng.next_f64();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ziggurat_tables_are_sane() {
        let z = ziggurat();
        // Known values of the 256-layer table.
        assert!((z.x[2] - 3.449_278_298_560_964).abs() < 1e-9, "{}", z.x[2]);
        for i in 1..256 {
            assert!(z.x[i + 1] < z.x[i], "layer {i}");
            assert!(z.x[i].is_finite());
        }
        assert!(z.x[255] > 0.0 && z.x[255] < 0.3, "{}", z.x[255]);
        assert_eq!(z.f[256], 1.0);
    }

    #[test]
    fn next_down_is_the_previous_float() {
        for x in [1.0f64, -1.0, 0.0, 3.5e-300, -7.25e10] {
            let d = next_down(x);
            assert!(d < x);
            assert!((d + x) / 2.0 == d || (d + x) / 2.0 == x, "{x}");
        }
    }

    #[test]
    fn block_generators_differ() {
        let a = WyRand::for_block(1, &[0, 0]).next_u64();
        let b = WyRand::for_block(1, &[0, 1]).next_u64();
        let c = WyRand::for_block(2, &[0, 0]).next_u64();
        assert!(a != b && a != c && b != c);
    }
}
