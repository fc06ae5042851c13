//! Chunk sizes along each axis: how an array is cut into blocks.

use std::ops::Range;

use rask_error::{RaskError, Result};

/// Dask's default target for `"auto"` chunks: 128 MiB per block.
pub const AUTO_CHUNK_BYTES: usize = 128 * 1024 * 1024;

/// How the caller asks for chunks; normalized by [`Chunks::normalize`].
#[derive(Clone, Debug, PartialEq)]
pub enum ChunkSpec {
    /// The same block length on every axis (the last block of an axis may be shorter).
    Uniform(usize),
    /// One block length per axis; `None` means the whole axis.
    PerAxis(Vec<Option<usize>>),
    /// Every block length of every axis, which must add up to the shape.
    Explicit(Vec<Vec<usize>>),
    /// Blocks of about this many bytes, as square as the shape allows.
    Auto { target_bytes: usize },
}

impl ChunkSpec {
    pub fn auto() -> Self {
        ChunkSpec::Auto {
            target_bytes: AUTO_CHUNK_BYTES,
        }
    }
}

impl From<usize> for ChunkSpec {
    fn from(n: usize) -> Self {
        ChunkSpec::Uniform(n)
    }
}

impl<const N: usize> From<[usize; N]> for ChunkSpec {
    fn from(v: [usize; N]) -> Self {
        ChunkSpec::PerAxis(v.iter().map(|&x| Some(x)).collect())
    }
}

impl From<(usize, usize)> for ChunkSpec {
    fn from(v: (usize, usize)) -> Self {
        ChunkSpec::PerAxis(vec![Some(v.0), Some(v.1)])
    }
}

impl From<(usize, usize, usize)> for ChunkSpec {
    fn from(v: (usize, usize, usize)) -> Self {
        ChunkSpec::PerAxis(vec![Some(v.0), Some(v.1), Some(v.2)])
    }
}

impl From<Vec<usize>> for ChunkSpec {
    fn from(v: Vec<usize>) -> Self {
        ChunkSpec::PerAxis(v.into_iter().map(Some).collect())
    }
}

impl From<Vec<Vec<usize>>> for ChunkSpec {
    fn from(v: Vec<Vec<usize>>) -> Self {
        ChunkSpec::Explicit(v)
    }
}

impl From<&str> for ChunkSpec {
    /// `"auto"`; anything else becomes an error at normalization.
    fn from(s: &str) -> Self {
        if s == "auto" {
            ChunkSpec::auto()
        } else {
            ChunkSpec::Explicit(vec![vec![usize::MAX]])
        }
    }
}

/// Normalized chunks: for each axis, the length of each block along it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Chunks {
    sizes: Vec<Vec<usize>>,
}

impl Chunks {
    /// Normalizes a request against a shape. Errors name the argument `chunks`: a zero block
    /// length, a rank that differs from the shape's, or explicit lengths that do not add up.
    pub fn normalize(
        spec: impl Into<ChunkSpec>,
        shape: &[usize],
        itemsize: usize,
    ) -> Result<Chunks> {
        let spec = spec.into();
        let sizes = match spec {
            ChunkSpec::Uniform(n) => {
                if n == 0 {
                    return Err(RaskError::invalid_argument(
                        "chunks",
                        "block length must be positive, got 0",
                    ));
                }
                shape.iter().map(|&len| regular(len, n)).collect()
            }
            ChunkSpec::PerAxis(per) => {
                if per.len() != shape.len() {
                    return Err(RaskError::invalid_argument(
                        "chunks",
                        format!(
                            "{} block lengths given for an array of {} dimensions (shape {shape:?})",
                            per.len(),
                            shape.len()
                        ),
                    ));
                }
                let mut sizes = Vec::with_capacity(shape.len());
                for (axis, (&len, n)) in shape.iter().zip(per).enumerate() {
                    match n {
                        Some(0) => {
                            return Err(RaskError::invalid_argument(
                                "chunks",
                                format!("block length along axis {axis} must be positive, got 0"),
                            ));
                        }
                        Some(n) => sizes.push(regular(len, n)),
                        None => sizes.push(regular(len, len.max(1))),
                    }
                }
                sizes
            }
            ChunkSpec::Explicit(sizes) => {
                if sizes.len() != shape.len() {
                    return Err(RaskError::invalid_argument(
                        "chunks",
                        format!(
                            "{} axes of block lengths given for an array of {} dimensions (shape {shape:?})",
                            sizes.len(),
                            shape.len()
                        ),
                    ));
                }
                for (axis, (s, &len)) in sizes.iter().zip(shape).enumerate() {
                    let total: usize = s
                        .iter()
                        .try_fold(0usize, |a, &b| a.checked_add(b))
                        .unwrap_or(usize::MAX);
                    if total != len {
                        return Err(RaskError::invalid_argument(
                            "chunks",
                            format!(
                                "block lengths {s:?} along axis {axis} add up to {total}, but the shape has {len}"
                            ),
                        ));
                    }
                    if len > 0 && s.contains(&0) {
                        return Err(RaskError::invalid_argument(
                            "chunks",
                            format!("block lengths along axis {axis} contain 0: {s:?}"),
                        ));
                    }
                }
                sizes
            }
            ChunkSpec::Auto { target_bytes } => auto(shape, itemsize, target_bytes),
        };
        Ok(Chunks { sizes })
    }

    /// Chunks given directly (trusted: used by operations that derive them).
    pub(crate) fn from_sizes(sizes: Vec<Vec<usize>>) -> Chunks {
        Chunks { sizes }
    }

    /// Block lengths along every axis.
    pub fn sizes(&self) -> &[Vec<usize>] {
        &self.sizes
    }

    pub fn ndim(&self) -> usize {
        self.sizes.len()
    }

    pub fn shape(&self) -> Vec<usize> {
        self.sizes.iter().map(|s| s.iter().sum()).collect()
    }

    /// Number of blocks along each axis.
    pub fn numblocks(&self) -> Vec<usize> {
        self.sizes.iter().map(|s| s.len()).collect()
    }

    /// Total number of blocks.
    pub fn nblocks(&self) -> usize {
        self.sizes.iter().map(|s| s.len()).product()
    }

    /// Start offset of every block along `axis`, plus the axis length at the end.
    pub fn offsets(&self, axis: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.sizes[axis].len() + 1);
        let mut acc = 0;
        out.push(0);
        for &s in &self.sizes[axis] {
            acc += s;
            out.push(acc);
        }
        out
    }

    /// The shape of block `index`.
    pub fn block_shape(&self, index: &[usize]) -> Vec<usize> {
        index.iter().zip(&self.sizes).map(|(&i, s)| s[i]).collect()
    }

    /// The element ranges block `index` covers along each axis.
    pub fn block_ranges(&self, index: &[usize]) -> Vec<Range<usize>> {
        index
            .iter()
            .enumerate()
            .map(|(axis, &i)| {
                let start: usize = self.sizes[axis][..i].iter().sum();
                start..start + self.sizes[axis][i]
            })
            .collect()
    }

    /// Every block index in row-major order.
    pub fn block_indices(&self) -> BlockIndices {
        BlockIndices::new(self.numblocks())
    }

    /// The largest block's element count.
    pub fn max_block_len(&self) -> usize {
        self.sizes
            .iter()
            .map(|s| s.iter().copied().max().unwrap_or(0))
            .product()
    }
}

/// Row-major iteration over block indices.
pub struct BlockIndices {
    numblocks: Vec<usize>,
    next: Option<Vec<usize>>,
}

impl BlockIndices {
    pub fn new(numblocks: Vec<usize>) -> Self {
        let next = if numblocks.contains(&0) {
            None
        } else {
            Some(vec![0; numblocks.len()])
        };
        BlockIndices { numblocks, next }
    }
}

impl Iterator for BlockIndices {
    type Item = Vec<usize>;
    fn next(&mut self) -> Option<Vec<usize>> {
        let current = self.next.take()?;
        let mut n = current.clone();
        let mut axis = n.len();
        loop {
            if axis == 0 {
                break;
            }
            axis -= 1;
            n[axis] += 1;
            if n[axis] < self.numblocks[axis] {
                self.next = Some(n);
                break;
            }
            n[axis] = 0;
        }
        Some(current)
    }
}

fn regular(len: usize, n: usize) -> Vec<usize> {
    if len == 0 {
        return vec![0];
    }
    let mut v = vec![n; len / n];
    if len % n != 0 {
        v.push(len % n);
    }
    v
}

/// Blocks of about `target_bytes`: as cubic as possible, never longer than an axis.
fn auto(shape: &[usize], itemsize: usize, target_bytes: usize) -> Vec<Vec<usize>> {
    let target_elems = (target_bytes / itemsize.max(1)).max(1) as f64;
    let mut block: Vec<usize> = shape.iter().map(|&s| s.max(1)).collect();
    let total: f64 = block.iter().map(|&b| b as f64).product();
    if total > target_elems {
        // Shrink the largest axes first until the block fits.
        let mut remaining = target_elems;
        let mut axes: Vec<usize> = (0..shape.len()).collect();
        axes.sort_by_key(|&a| shape[a]);
        let mut left = axes.len();
        for &a in &axes {
            let side = remaining.powf(1.0 / left as f64).floor().max(1.0) as usize;
            block[a] = shape[a].clamp(1, side.max(1));
            remaining /= block[a] as f64;
            left -= 1;
        }
    }
    shape
        .iter()
        .zip(block)
        .map(|(&len, b)| regular(len, b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_has_short_last_block() {
        let c = Chunks::normalize(4, &[10, 3], 8).unwrap();
        assert_eq!(c.sizes(), &[vec![4, 4, 2], vec![3]]);
        assert_eq!(c.numblocks(), vec![3, 1]);
        assert_eq!(c.shape(), vec![10, 3]);
        assert_eq!(c.offsets(0), vec![0, 4, 8, 10]);
        assert_eq!(c.block_ranges(&[2, 0]), vec![8..10, 0..3]);
    }

    #[test]
    fn bad_chunks_name_the_argument() {
        let e = Chunks::normalize(vec![vec![3, 3]], &[7], 8)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`chunks`") && e.contains("add up to 6") && e.contains("7"),
            "{e}"
        );
        let e = Chunks::normalize(0, &[7], 8).unwrap_err().to_string();
        assert!(e.contains("`chunks`"), "{e}");
        let e = Chunks::normalize([2, 2], &[7], 8).unwrap_err().to_string();
        assert!(
            e.contains("2 block lengths") && e.contains("1 dimensions"),
            "{e}"
        );
        let e = Chunks::normalize("nonsense", &[7], 8)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`chunks`"), "{e}");
    }

    #[test]
    fn auto_respects_target() {
        let c = Chunks::normalize(
            ChunkSpec::Auto {
                target_bytes: 8 * 1000 * 1000,
            },
            &[20000, 20000],
            8,
        )
        .unwrap();
        let biggest = c.max_block_len() * 8;
        assert!(biggest <= 8_000_000, "{biggest}");
        assert!(biggest >= 2_000_000, "{biggest}");
        let small = Chunks::normalize("auto", &[10, 10], 8).unwrap();
        assert_eq!(small.numblocks(), vec![1, 1]);
    }

    #[test]
    fn block_indices_row_major() {
        let idx: Vec<Vec<usize>> = BlockIndices::new(vec![2, 3]).collect();
        assert_eq!(idx.len(), 6);
        assert_eq!(idx[0], vec![0, 0]);
        assert_eq!(idx[1], vec![0, 1]);
        assert_eq!(idx[3], vec![1, 0]);
        assert_eq!(
            BlockIndices::new(vec![]).count(),
            1,
            "a 0-d array has one block"
        );
    }
}
