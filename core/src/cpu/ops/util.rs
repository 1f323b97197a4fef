//! Private helpers shared by the kernels: per-thread scratch buffers, fixed-order
//! (vectorisable, deterministic) reductions and shape-only work partitions.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::thread::LocalKey;

use rayon::prelude::*;

use super::scalar::Scalar;

/// Per-thread pool of reusable buffers of one element type.
///
/// Sealed: lives in a private module and is implemented for `f32` and `f64` only.
pub trait ScratchPool: Sized + Copy + Default + 'static {
    /// This thread's pool of spare buffers for the type.
    fn pool() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>>;
}

macro_rules! impl_pool {
    ($t:ty) => {
        impl ScratchPool for $t {
            fn pool() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>> {
                thread_local! {
                    static POOL: RefCell<Vec<Vec<$t>>> = const { RefCell::new(Vec::new()) };
                }
                &POOL
            }
        }
    };
}
impl_pool!(f32);
impl_pool!(f64);

/// At most this many spare buffers are kept per thread and element type.
const MAX_POOLED: usize = 8;

/// A scratch buffer borrowed from the calling thread's pool and returned on drop.
///
/// The pool's `RefCell` is borrowed only inside [`Scratch::new`] and `drop`, never while
/// the buffer is in use, so kernels may be nested or re-entered (e.g. by rayon work
/// stealing) without a `BorrowMutError`: a re-entrant call just gets another buffer.
/// Buffers only grow, so steady-state calls with the same shapes do not allocate.
pub(crate) struct Scratch<T: ScratchPool> {
    buf: Vec<T>,
    len: usize,
}

impl<T: ScratchPool> Scratch<T> {
    /// A buffer of `len` elements with unspecified (stale but initialised) contents.
    pub(crate) fn new(len: usize) -> Self {
        let mut buf = T::pool()
            .try_with(|p| {
                let mut p = p.try_borrow_mut().ok()?;
                // Smallest buffer that is large enough, else the largest one (to grow).
                let fit = (0..p.len())
                    .filter(|&i| p[i].len() >= len)
                    .min_by_key(|&i| p[i].len());
                let pick = fit.or_else(|| (0..p.len()).max_by_key(|&i| p[i].len()))?;
                Some(p.swap_remove(pick))
            })
            .ok()
            .flatten()
            .unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, T::default());
        }
        Scratch { buf, len }
    }

    /// A buffer of `len` zeros.
    pub(crate) fn zeroed(len: usize) -> Self {
        let mut s = Self::new(len);
        s.fill(T::default());
        s
    }
}

impl<T: ScratchPool> Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[..self.len]
    }
}

impl<T: ScratchPool> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[..self.len]
    }
}

impl<T: ScratchPool> Drop for Scratch<T> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.capacity() == 0 {
            return;
        }
        let _ = T::pool().try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                if p.len() < MAX_POOLED {
                    p.push(buf);
                } else if let Some(i) = (0..p.len()).min_by_key(|&i| p[i].len()) {
                    // Keep the larger buffers.
                    if p[i].len() < buf.len() {
                        p[i] = buf;
                    }
                }
            }
        });
    }
}

/// Number of independent accumulators of the fixed-order reductions below (wide enough
/// for the compiler to keep them in SIMD registers).
const LANES: usize = 8;

#[inline]
fn combine<T: Scalar>(acc: [T; LANES]) -> T {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// `Σ f(i)` over `0..n` in a fixed order: 8 interleaved partial sums, combined pairwise,
/// then the tail. Deterministic and vectorisable.
#[inline(always)]
fn lane_sum<T: Scalar>(n: usize, f: impl Fn(usize) -> T) -> T {
    let mut acc = [T::ZERO; LANES];
    let full = n / LANES * LANES;
    let mut i = 0;
    while i < full {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
        i += LANES;
    }
    let mut s = combine(acc);
    for j in full..n {
        s += f(j);
    }
    s
}

/// `Σ x[i]` in the fixed order of `lane_sum`.
#[inline]
pub(crate) fn sum<T: Scalar>(x: &[T]) -> T {
    lane_sum(x.len(), |i| x[i])
}

/// `Σ (x[i] − c)²` in the fixed order of `lane_sum`.
#[inline]
pub(crate) fn sum_sq_dev<T: Scalar>(x: &[T], c: T) -> T {
    lane_sum(x.len(), |i| {
        let d = x[i] - c;
        d * d
    })
}

/// `Σ a[i]·(x[i] − c)` in the fixed order of `lane_sum`.
///
/// # Panics
///
/// If the lengths differ.
#[inline]
pub(crate) fn dot_dev<T: Scalar>(a: &[T], x: &[T], c: T) -> T {
    assert_eq!(a.len(), x.len());
    lane_sum(a.len(), |i| a[i] * (x[i] - c))
}

/// Element count below which element-wise kernels stay on the calling thread.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 15;
/// Elements per rayon task of element-wise kernels.
pub(crate) const PAR_CHUNK: usize = 1 << 14;

/// Applies `f(x_chunk, y_chunk)` over matching chunks of `x` and `y` (same length),
/// in parallel for long slices. `f` must be element-wise, so the result does not depend
/// on the chunking.
pub(crate) fn par_zip<T: Scalar>(x: &[T], y: &mut [T], f: impl Fn(&[T], &mut [T]) + Sync + Send) {
    debug_assert_eq!(x.len(), y.len());
    if y.len() < PAR_MIN_ELEMS {
        f(x, y);
    } else {
        y.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK))
            .for_each(|(y, x)| f(x, y));
    }
}

/// Like [`par_zip`] with two inputs.
pub(crate) fn par_zip3<T: Scalar>(
    x1: &[T],
    x2: &[T],
    y: &mut [T],
    f: impl Fn(&[T], &[T], &mut [T]) + Sync + Send,
) {
    debug_assert_eq!(x1.len(), y.len());
    debug_assert_eq!(x2.len(), y.len());
    if y.len() < PAR_MIN_ELEMS {
        f(x1, x2, y);
    } else {
        y.par_chunks_mut(PAR_CHUNK)
            .zip(x1.par_chunks(PAR_CHUNK))
            .zip(x2.par_chunks(PAR_CHUNK))
            .for_each(|((y, x1), x2)| f(x1, x2, y));
    }
}

/// Applies `f(x_rows, y_rows)` to matching groups of whole rows of `x` (rows of `xr`
/// elements) and `y` (rows of `yr` elements, same row count), in parallel for large
/// inputs. `f` must treat rows independently, so the result does not depend on the
/// grouping.
pub(crate) fn par_rows<T: Scalar>(
    x: &[T],
    xr: usize,
    y: &mut [T],
    yr: usize,
    f: impl Fn(&[T], &mut [T]) + Sync + Send,
) {
    if xr == 0 || yr == 0 || x.len().max(y.len()) < PAR_MIN_ELEMS {
        f(x, y);
        return;
    }
    debug_assert_eq!(x.len() / xr, y.len() / yr);
    let rows = (PAR_CHUNK / xr.max(yr)).max(1);
    y.par_chunks_mut(rows * yr)
        .zip(x.par_chunks(rows * xr))
        .for_each(|(y, x)| f(x, y));
}

/// Like [`par_rows`] with two inputs of the same row length `xr`.
pub(crate) fn par_rows3<T: Scalar>(
    x1: &[T],
    x2: &[T],
    xr: usize,
    y: &mut [T],
    yr: usize,
    f: impl Fn(&[T], &[T], &mut [T]) + Sync + Send,
) {
    if xr == 0 || yr == 0 || x1.len().max(y.len()) < PAR_MIN_ELEMS {
        f(x1, x2, y);
        return;
    }
    let rows = (PAR_CHUNK / xr.max(yr)).max(1);
    y.par_chunks_mut(rows * yr)
        .zip(x1.par_chunks(rows * xr))
        .zip(x2.par_chunks(rows * xr))
        .for_each(|((y, x1), x2)| f(x1, x2, y));
}

/// Maximum number of partial sums of a parameter-gradient reduction over the batch.
///
/// A constant (not the thread count), so the grouping — and hence every rounding — of
/// the reduction depends on the shapes only.
pub(crate) const REDUCE_PARTS: usize = 8;

/// Splits `batch` samples into at most [`REDUCE_PARTS`] contiguous parts of equal size
/// (the last may be shorter), with at least `min_per_part` samples per part where the
/// batch allows. Returns `(samples_per_part, parts)`. Depends on its arguments only.
pub(crate) fn reduce_partition(batch: usize, min_per_part: usize) -> (usize, usize) {
    if batch == 0 {
        return (1, 0);
    }
    let per = batch
        .div_ceil(REDUCE_PARTS)
        .max(min_per_part.max(1))
        .min(batch);
    (per, batch.div_ceil(per))
}

/// `dst[i] += Σ_p parts[p·len + i]`, the partials added in part order (deterministic).
pub(crate) fn add_partials<T: Scalar>(parts: &[T], dst: &mut [T]) {
    let len = dst.len();
    if len == 0 {
        return;
    }
    debug_assert_eq!(parts.len() % len, 0);
    let n = parts.len() / len;
    if n == 0 {
        return;
    }
    let (first, rest) = parts.split_at(len);
    let mut tmp: Scratch<T> = Scratch::new(len);
    tmp.copy_from_slice(first);
    for p in rest.chunks_exact(len) {
        for (t, &v) in tmp.iter_mut().zip(p) {
            *t += v;
        }
    }
    for (d, &t) in dst.iter_mut().zip(tmp.iter()) {
        *d += t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sums_are_exact_on_integers() {
        let x: Vec<f64> = (0..37).map(|i| i as f64).collect();
        assert_eq!(sum(&x), (0..37).sum::<i32>() as f64);
        assert_eq!(
            sum_sq_dev(&x, 1.0),
            (0..37).map(|i| (i - 1) * (i - 1)).sum::<i32>() as f64
        );
        assert_eq!(
            dot_dev(&x, &x, 2.0),
            (0..37).map(|i| i * (i - 2)).sum::<i32>() as f64
        );
        assert_eq!(sum::<f32>(&[]), 0.0);
    }

    #[test]
    fn scratch_reuses_buffers() {
        let p = {
            let mut s: Scratch<f32> = Scratch::new(1000);
            s[999] = 1.0;
            s.as_ptr()
        };
        let s: Scratch<f32> = Scratch::new(500);
        assert_eq!(s.as_ptr(), p, "the pooled buffer is reused");
        let t: Scratch<f32> = Scratch::zeroed(10);
        assert_ne!(t.as_ptr(), p, "nested scratch gets another buffer");
        assert!(t.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn partition_is_shape_only() {
        assert_eq!(reduce_partition(64, 1), (8, 8));
        assert_eq!(reduce_partition(3, 1), (1, 3));
        assert_eq!(reduce_partition(10, 1), (2, 5));
        assert_eq!(reduce_partition(10, 4), (4, 3));
        assert_eq!(reduce_partition(2, 4), (2, 1));
        assert_eq!(reduce_partition(0, 1).1, 0);
    }

    #[test]
    fn partials_add_in_order() {
        let parts = [1.0f64, 2.0, 10.0, 20.0, 100.0, 200.0];
        let mut d = [0.5, 0.25];
        add_partials(&parts, &mut d);
        assert_eq!(d, [111.5, 222.25]);
    }
}
