//! 2-D convolution, stride 1, zero "SAME" padding `k/2`, odd square kernels (the
//! networks use `k ∈ {1, 3}`), NCHW, weights `[cout, cin, k, k]` (PyTorch layout).
//!
//! Implementation: for `f32` on CPUs with AVX-512F and images of a multiple of 16
//! pixels, forward and backward-input run the direct kernel of
//! `conv_direct` (no im2col, no packing). Otherwise, per-sample
//! (or per-group-of-samples) `im2col` into a thread-local scratch matrix
//! `col[cin·k·k, columns]` and one single-threaded `sgemm`/`dgemm` (`y = W·col`);
//! parallel over the batch with rayon.
//!
//! * Large images are cut into chunks of whole rows so that the `col` chunk stays in
//!   L2; small images are batched (several samples side by side in `col`) so that
//!   every GEMM has a few hundred columns.
//! * Backward-input is the same convolution of `dy` with the flipped, transposed
//!   kernel `W'[ci, co, ky, kx] = W[co, ci, k−1−ky, k−1−kx]` (exact for stride 1 and
//!   symmetric padding), so there is no scatter (`col2im`).
//! * Backward-params reduces over the batch in a fixed number of contiguous sample
//!   parts (a constant, not the thread count) whose partial sums are added in part
//!   order: bit-identical results for any number of rayon threads.
//!
//! For `k = 1` no `im2col` is needed: the sample itself is the `[cin, h·w]` matrix.
//! With at most 8 output channels (the image-producing last conv of a generator, and
//! the backward-input of the image stem, i.e. `dU/dx` in Langevin) a GEMM with `cout`
//! rows would waste most of a 16-row micro-kernel; these use the shift-add form
//! `Z = W_tap · x` (`cout·k²` rows) followed by shifted row additions.

use rayon::prelude::*;

use super::conv_direct::{self, conv_direct};
use super::gemm::{MatMut, MatRef, gemm};
use super::scalar::Scalar;
use super::util::{Scratch, add_partials, reduce_partition, sum};

/// Shape of a stride-1, "SAME"-padded 2-D convolution.
///
/// Input `x` is `[batch, cin, h, w]`, output `y` is `[batch, cout, h, w]` (same spatial
/// size), weights are `[cout, cin, k, k]` and the bias is `[cout]`; all contiguous,
/// row-major. The padding is `k/2` zeros on every side, so `k` must be odd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    /// Number of samples.
    pub batch: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Image height (input and output).
    pub h: usize,
    /// Image width (input and output).
    pub w: usize,
    /// Kernel size (odd; 1 or 3 in the Hat EBM networks).
    pub k: usize,
}

impl Conv2dGeom {
    /// Pixels per channel, `h·w`.
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Length of `x` / `dx`: `batch·cin·h·w`.
    pub fn x_len(&self) -> usize {
        self.batch * self.cin * self.hw()
    }
    /// Length of `y` / `dy`: `batch·cout·h·w`.
    pub fn y_len(&self) -> usize {
        self.batch * self.cout * self.hw()
    }
    /// Length of `w` / `dw`: `cout·cin·k·k`.
    pub fn w_len(&self) -> usize {
        self.cout * self.cin * self.k * self.k
    }
    /// Multiply-accumulates of one forward pass, `batch·cout·cin·k²·h·w` (FLOPs = 2×).
    pub fn macs(&self) -> usize {
        self.y_len() * self.cin * self.k * self.k
    }
    /// The geometry with `cin` and `cout` swapped: the backward-input pass is the
    /// forward convolution of `dy` with the flipped, transposed kernel.
    pub(super) fn transposed(&self) -> Self {
        Conv2dGeom {
            cin: self.cout,
            cout: self.cin,
            ..*self
        }
    }
    /// Rows of the `im2col` matrix, `cin·k·k`.
    fn kdim(&self) -> usize {
        self.cin * self.k * self.k
    }
    fn check_k(&self, f: &str) {
        assert!(
            self.k % 2 == 1,
            "{f}: kernel size k = {} must be odd (SAME padding k/2)",
            self.k
        );
    }
}

/// Target size (elements) of one `im2col` chunk: 128 Ki elements = 512 KiB of `f32`,
/// about half of a Zen/Skylake L2.
const COL_ELEMS: usize = 1 << 17;
/// Columns a GEMM should have at least, whatever `col_elems` says: each GEMM
/// re-packs its whole weight matrix, so with many input channels (a large
/// `k = cin·9`) short chunks spend as long packing weights as multiplying.
/// Measured on a 2-core Zen 5 (T2: k = 576, T3: k = 1152): ~900 columns was
/// best for both, although the chunk then exceeds L2 for k = 1152.
const TARGET_COLS: usize = 896;
/// Bounds on the columns of one GEMM.
const MIN_COLS: usize = 128;
const MAX_COLS: usize = 2048;
/// Images with at least this many pixels are never batched (saves the output copy).
const MIN_COLS_NO_GROUP: usize = 256;
/// Forward / backward-input: keep at least this many tasks when batching small images.
const MIN_TASKS: usize = 4;

/// Output channels up to which a k > 1 convolution uses the shift-add form (see
/// [`conv_shift_add`]): a GEMM with `cout·k²` rows instead of `cout`.
const SHIFT_ADD_MAX_CO: usize = 8;

/// Internal knobs (tests force every code path through them).
#[derive(Clone, Copy, Debug)]
struct Tuning {
    /// Target elements of one im2col chunk.
    col_elems: usize,
    /// Minimum columns per GEMM (raises `col_elems` to `kdim · min_cols`; 0 = off).
    min_cols: usize,
    /// Force (`Some(true)`) or forbid (`Some(false)`) the shift-add form; `None`: by
    /// [`SHIFT_ADD_MAX_CO`].
    shift_add: Option<bool>,
    /// Allow the direct AVX-512 kernel ([`conv_direct()`]) for `f32` where the CPU and
    /// shapes allow it (`true`), or always use the GEMM paths (`false`).
    direct: bool,
}

impl Tuning {
    const DEFAULT: Tuning = Tuning {
        col_elems: COL_ELEMS,
        min_cols: TARGET_COLS,
        shift_add: None,
        direct: true,
    };

    /// The chunk size for a reduction dimension `kdim`.
    fn col_elems_for(&self, kdim: usize) -> usize {
        self.col_elems.max(kdim * self.min_cols)
    }
}

/// How the columns (pixels) of a convolution are cut into GEMMs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    /// Samples side by side in one `col` matrix (≥ 1).
    group: usize,
    /// When `group == 1`: image rows per `col` chunk.
    rows: usize,
}

/// A plan that depends on the shapes (and `col_elems`) only. `max_group` caps the
/// samples per GEMM.
fn plan(kdim: usize, h: usize, w: usize, max_group: usize, col_elems: usize) -> Plan {
    let hw = h * w;
    let cols = (col_elems / kdim.max(1)).clamp(MIN_COLS, MAX_COLS);
    if hw >= cols || hw >= MIN_COLS_NO_GROUP || hw == 0 {
        Plan {
            group: 1,
            rows: (cols / w.max(1)).clamp(1, h.max(1)),
        }
    } else {
        Plan {
            group: (cols / hw).clamp(1, max_group.max(1)),
            rows: h,
        }
    }
}

/// Writes rows `r0..r1` of the `im2col` matrix of one sample `x` `[cin, h, w]`:
/// `col[(ci·k + ky)·k + kx, c0 + (i − r0)·w + j] = x[ci, i + ky − k/2, j + kx − k/2]`
/// (0 outside the image), with row stride `ld`.
fn im2col<T: Scalar>(
    x: &[T],
    cin: usize,
    h: usize,
    w: usize,
    k: usize,
    r0: usize,
    r1: usize,
    col: &mut [T],
    ld: usize,
    c0: usize,
) {
    let p = (k / 2) as isize;
    let hw = h * w;
    let nc = (r1 - r0) * w;
    for ci in 0..cin {
        let xc = &x[ci * hw..(ci + 1) * hw];
        for ky in 0..k {
            for kx in 0..k {
                let row = (ci * k + ky) * k + kx;
                let dst = &mut col[row * ld + c0..row * ld + c0 + nc];
                let shift = kx as isize - p;
                let s = shift.unsigned_abs().min(w);
                for (oi, d) in (r0..r1).zip(dst.chunks_exact_mut(w)) {
                    let ii = oi as isize + ky as isize - p;
                    if ii < 0 || ii >= h as isize {
                        d.fill(T::ZERO);
                        continue;
                    }
                    let src = &xc[ii as usize * w..(ii as usize + 1) * w];
                    if shift >= 0 {
                        d[..w - s].copy_from_slice(&src[s..]);
                        d[w - s..].fill(T::ZERO);
                    } else {
                        d[..s].fill(T::ZERO);
                        d[s..].copy_from_slice(&src[..w - s]);
                    }
                }
            }
        }
    }
}

/// Prepares the output block `y[co, ·]` (row stride `ld`, `n` columns) for a GEMM with
/// the returned `beta`: overwrite (`acc = false`) or accumulate, plus the bias.
fn prepare_out<T: Scalar>(
    y: &mut [T],
    co: usize,
    ld: usize,
    n: usize,
    bias: Option<&[T]>,
    acc: bool,
) -> T {
    match (bias, acc) {
        (None, false) => T::ZERO,
        (None, true) => T::ONE,
        (Some(b), false) => {
            for (o, &bo) in b.iter().enumerate().take(co) {
                y[o * ld..o * ld + n].fill(bo);
            }
            T::ONE
        }
        (Some(b), true) => {
            for (o, &bo) in b.iter().enumerate().take(co) {
                y[o * ld..o * ld + n].iter_mut().for_each(|v| *v += bo);
            }
            T::ONE
        }
    }
}

/// `y ← [y +] conv(x; wmat) [+ bias]` for the stride-1 SAME convolution `g` given as
/// the matrix `wmat [co, ci·k·k]` (`ci = g.cin`, `co = g.cout`); x `[batch, ci, h, w]`,
/// y `[batch, co, h, w]`.
fn conv_apply<T: Scalar>(
    g: &Conv2dGeom,
    x: &[T],
    wmat: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    acc: bool,
    tune: Tuning,
) {
    let Conv2dGeom {
        batch,
        cin: ci,
        cout: co,
        h,
        w,
        k,
    } = *g;
    let hw = h * w;
    let kdim = ci * k * k;
    if batch == 0 || co == 0 || hw == 0 {
        return;
    }
    let (xs, ys) = (ci * hw, co * hw);
    if kdim == 0 {
        // No input channels: the output is the bias (or zero / unchanged).
        for yb in y.chunks_exact_mut(ys) {
            if prepare_out(yb, co, hw, hw, bias, acc) == T::ZERO {
                yb.fill(T::ZERO);
            }
        }
        return;
    }
    let shift_add = k > 1 && tune.shift_add.unwrap_or(co <= SHIFT_ADD_MAX_CO);
    if tune.direct
        && !shift_add
        && conv_direct::suits(h, w, k)
        && conv_direct::available()
        && let (Some(x), Some(wm), Some(y)) = (T::as_f32(x), T::as_f32(wmat), T::as_f32_mut(y))
    {
        let b = bias.map(|b| T::as_f32(b).expect("bias has the element type of x"));
        conv_direct(g, x, wm, b, y, acc);
        return;
    }
    if k == 1 {
        // The sample is its own im2col matrix [ci, hw].
        y.par_chunks_mut(ys)
            .zip(x.par_chunks(xs))
            .for_each(|(yb, xb)| {
                let beta = prepare_out(yb, co, hw, hw, bias, acc);
                gemm(
                    T::ONE,
                    MatRef::new(wmat, co, kdim, (kdim as isize, 1)),
                    MatRef::new(xb, kdim, hw, (hw as isize, 1)),
                    beta,
                    MatMut::new(yb, co, hw, (hw as isize, 1)),
                );
            });
        return;
    }
    if shift_add {
        conv_shift_add(g, x, wmat, bias, y, acc);
        return;
    }
    let pl = plan(
        kdim,
        h,
        w,
        batch.div_ceil(MIN_TASKS),
        tune.col_elems_for(kdim),
    );
    y.par_chunks_mut(pl.group * ys)
        .zip(x.par_chunks(pl.group * xs))
        .for_each(|(yg, xg)| {
            let gs = yg.len() / ys;
            if gs == 1 {
                let mut r0 = 0;
                while r0 < h {
                    let r1 = (r0 + pl.rows).min(h);
                    let nc = (r1 - r0) * w;
                    let mut col = Scratch::<T>::new(kdim * nc);
                    im2col(xg, ci, h, w, k, r0, r1, &mut col, nc, 0);
                    let out = &mut yg[r0 * w..];
                    let beta = prepare_out(out, co, hw, nc, bias, acc);
                    gemm(
                        T::ONE,
                        MatRef::new(wmat, co, kdim, (kdim as isize, 1)),
                        MatRef::new(&col, kdim, nc, (nc as isize, 1)),
                        beta,
                        MatMut::new(out, co, nc, (hw as isize, 1)),
                    );
                    r0 = r1;
                }
            } else {
                let nc = gs * hw;
                let mut col = Scratch::<T>::new(kdim * nc);
                for (j, xb) in xg.chunks_exact(xs).enumerate() {
                    im2col(xb, ci, h, w, k, 0, h, &mut col, nc, j * hw);
                }
                let mut out = Scratch::<T>::new(co * nc);
                gemm(
                    T::ONE,
                    MatRef::new(wmat, co, kdim, (kdim as isize, 1)),
                    MatRef::new(&col, kdim, nc, (nc as isize, 1)),
                    T::ZERO,
                    MatMut::new(&mut out, co, nc, (nc as isize, 1)),
                );
                for (j, yb) in yg.chunks_exact_mut(ys).enumerate() {
                    for (o, yr) in yb.chunks_exact_mut(hw).enumerate() {
                        let src = &out[o * nc + j * hw..o * nc + (j + 1) * hw];
                        let b = bias.map_or(T::ZERO, |b| b[o]);
                        match (acc, bias.is_some()) {
                            (false, false) => yr.copy_from_slice(src),
                            (false, true) => yr.iter_mut().zip(src).for_each(|(d, &s)| *d = s + b),
                            (true, false) => yr.iter_mut().zip(src).for_each(|(d, &s)| *d += s),
                            (true, true) => yr.iter_mut().zip(src).for_each(|(d, &s)| *d += s + b),
                        }
                    }
                }
            }
        });
}

/// The convolution for few output channels, without im2col: per sample
/// `Z[(o, ky, kx), ·] = W[o, :, ky, kx] · x_b` (one GEMM with `co·k²` rows, `x_b` used in
/// place as the `[ci, hw]` matrix), then `y[o, i, j] (+)= bias[o] + Σ_{ky, kx}
/// Z[(o, ky, kx), (i + ky − k/2, j + kx − k/2)]` (taps outside the image are the zero
/// padding and are skipped), added in tap order.
fn conv_shift_add<T: Scalar>(
    g: &Conv2dGeom,
    x: &[T],
    wmat: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    acc: bool,
) {
    let Conv2dGeom {
        cin: ci,
        cout: co,
        h,
        w,
        k,
        ..
    } = *g;
    let (hw, kk) = (h * w, k * k);
    let kdim = ci * kk;
    let p = (k / 2) as isize;
    // wr[(o·kk + t)·ci + c] = wmat[o·kdim + c·kk + t]
    let mut wr = Scratch::<T>::new(co * kk * ci);
    for o in 0..co {
        for c in 0..ci {
            for t in 0..kk {
                wr[(o * kk + t) * ci + c] = wmat[o * kdim + c * kk + t];
            }
        }
    }
    let wr: &[T] = &wr;
    y.par_chunks_mut(co * hw)
        .zip(x.par_chunks(ci * hw))
        .for_each(|(yb, xb)| {
            let mut z = Scratch::<T>::new(co * kk * hw);
            let ld = hw as isize;
            gemm(
                T::ONE,
                MatRef::new(wr, co * kk, ci, (ci as isize, 1)),
                MatRef::new(xb, ci, hw, (ld, 1)),
                T::ZERO,
                MatMut::new(&mut z, co * kk, hw, (ld, 1)),
            );
            for (o, yo) in yb.chunks_exact_mut(hw).enumerate() {
                match (acc, bias) {
                    (false, None) => yo.fill(T::ZERO),
                    (false, Some(b)) => yo.fill(b[o]),
                    (true, None) => {}
                    (true, Some(b)) => yo.iter_mut().for_each(|v| *v += b[o]),
                }
                for t in 0..kk {
                    let (ky, kx) = ((t / k) as isize, (t % k) as isize);
                    let zt = &z[(o * kk + t) * hw..(o * kk + t + 1) * hw];
                    let shift = kx - p;
                    let s = shift.unsigned_abs().min(w);
                    for i in 0..h {
                        let a = i as isize + ky - p;
                        if a < 0 || a >= h as isize {
                            continue;
                        }
                        let src = &zt[a as usize * w..(a as usize + 1) * w];
                        let dst = &mut yo[i * w..(i + 1) * w];
                        // dst[j] += src[j + shift] where 0 <= j + shift < w
                        if shift >= 0 {
                            dst[..w - s]
                                .iter_mut()
                                .zip(&src[s..])
                                .for_each(|(d, &v)| *d += v);
                        } else {
                            dst[s..]
                                .iter_mut()
                                .zip(&src[..w - s])
                                .for_each(|(d, &v)| *d += v);
                        }
                    }
                }
            }
        });
}

fn check_lens<T>(f: &str, g: &Conv2dGeom, what: &str, s: &[T], want: usize, formula: &str) {
    assert!(
        s.len() == want,
        "{f}: `{what}` has length {} but {g:?} needs {formula} = {want}",
        s.len()
    );
}

/// Forward pass: `y[b, co, i, j] = bias[co] + Σ_{ci, ky, kx} w[co, ci, ky, kx] ·
/// x[b, ci, i + ky − k/2, j + kx − k/2]` (zero outside the image). `y` is overwritten.
///
/// Shapes: `x [batch, cin, h, w]`, `w [cout, cin, k, k]`, `b [cout]`,
/// `y [batch, cout, h, w]`. Parallel over the batch; per-sample results do not depend on
/// the number of threads.
///
/// Implementation: for `f32`, `cout > 8` (or `k = 1`), `h·w` a multiple of 16 and a CPU
/// with AVX-512F, the direct kernel (`conv_direct`: masked loads of the shifted image
/// rows, an 8-channel × 48-pixel register tile). Otherwise, for `k > 1` and `cout > 8`,
/// `im2col` of the sample (in row chunks of
/// about 128 Ki elements, or several images of < 256 pixels side by side) into a per-thread
/// scratch matrix and one GEMM `W[cout, cin·k²]·col`; for `cout ≤ 8`, one GEMM
/// `W_taps[cout·k², cin]·x_b` (per-thread scratch of `cout·k²·h·w`) followed by shifted row
/// additions; for `k = 1`, one GEMM on `x_b` in place.
///
/// # Panics
///
/// If `g.k` is even or a slice length does not match `g`.
pub fn conv2d_forward<T: Scalar>(g: &Conv2dGeom, x: &[T], w: &[T], b: Option<&[T]>, y: &mut [T]) {
    conv2d_forward_with(g, x, w, b, y, Tuning::DEFAULT);
}

fn conv2d_forward_with<T: Scalar>(
    g: &Conv2dGeom,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    y: &mut [T],
    tune: Tuning,
) {
    const F: &str = "conv2d_forward";
    g.check_k(F);
    check_lens(F, g, "x", x, g.x_len(), "batch·cin·h·w");
    check_lens(F, g, "w", w, g.w_len(), "cout·cin·k·k");
    check_lens(F, g, "y", y, g.y_len(), "batch·cout·h·w");
    if let Some(b) = b {
        check_lens(F, g, "b", b, g.cout, "cout");
    }
    conv_apply(g, x, w, b, y, false, tune);
}

/// Backward pass to the input: `dx = ∂⟨dy, y⟩/∂x`, i.e. `dx[b, ci, a, c] =
/// Σ_{co, ky, kx} w[co, ci, ky, kx] · dy[b, co, a − ky + k/2, c − kx + k/2]`.
///
/// Shapes: `dy [batch, cout, h, w]`, `w [cout, cin, k, k]`, `dx [batch, cin, h, w]`.
/// If `acc`, the gradient is added to `dx`; otherwise `dx` is overwritten. Computed as
/// the SAME convolution of `dy` with the flipped, transposed kernel (a small per-call
/// scratch copy of `w`), so the implementation notes of [`conv2d_forward`] apply with
/// `cin` and `cout` swapped. Parallel over the batch.
///
/// # Panics
///
/// If `g.k` is even or a slice length does not match `g`.
pub fn conv2d_backward_input<T: Scalar>(
    g: &Conv2dGeom,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    acc: bool,
) {
    conv2d_backward_input_with(g, dy, w, dx, acc, Tuning::DEFAULT);
}

fn conv2d_backward_input_with<T: Scalar>(
    g: &Conv2dGeom,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    acc: bool,
    tune: Tuning,
) {
    const F: &str = "conv2d_backward_input";
    g.check_k(F);
    check_lens(F, g, "dy", dy, g.y_len(), "batch·cout·h·w");
    check_lens(F, g, "w", w, g.w_len(), "cout·cin·k·k");
    check_lens(F, g, "dx", dx, g.x_len(), "batch·cin·h·w");
    let (k, kk) = (g.k, g.k * g.k);
    // wflip[ci, (co, ky, kx)] = w[co, ci, k-1-ky, k-1-kx]
    let mut wflip = Scratch::<T>::new(g.w_len());
    for co in 0..g.cout {
        for ci in 0..g.cin {
            let src = &w[(co * g.cin + ci) * kk..(co * g.cin + ci + 1) * kk];
            let dst = &mut wflip[(ci * g.cout + co) * kk..(ci * g.cout + co + 1) * kk];
            for (t, d) in dst.iter_mut().enumerate() {
                let (ky, kx) = (t / k, t % k);
                *d = src[(k - 1 - ky) * k + (k - 1 - kx)];
            }
        }
    }
    conv_apply(&g.transposed(), dy, &wflip, None, dx, acc, tune);
}

/// Backward pass to the parameters, **accumulating**: `dw += ∂⟨dy, y⟩/∂w`,
/// `db += ∂⟨dy, y⟩/∂b`, i.e. `dw[co, ci, ky, kx] += Σ_{b, i, j} dy[b, co, i, j] ·
/// x[b, ci, i + ky − k/2, j + kx − k/2]` and `db[co] += Σ_{b, i, j} dy[b, co, i, j]`.
///
/// Shapes: `x [batch, cin, h, w]`, `dy [batch, cout, h, w]`, `dw [cout, cin, k, k]`,
/// `db [cout]`. The batch is reduced in at most 8 contiguous parts (fixed by the shapes)
/// computed in parallel and added in order, so the result is bit-identical for any
/// number of rayon threads. Each part re-does the `im2col` of its samples (for
/// `cout ≤ 8`: `im2col` of `dy`, a GEMM with `cout·k²` rows); the caller's thread holds
/// the `parts · |dw|` partial sums in scratch.
///
/// # Panics
///
/// If `g.k` is even or a slice length does not match `g`.
pub fn conv2d_backward_params<T: Scalar>(
    g: &Conv2dGeom,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    db: Option<&mut [T]>,
) {
    conv2d_backward_params_with(g, x, dy, dw, db, Tuning::DEFAULT);
}

fn conv2d_backward_params_with<T: Scalar>(
    g: &Conv2dGeom,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    db: Option<&mut [T]>,
    tune: Tuning,
) {
    const F: &str = "conv2d_backward_params";
    g.check_k(F);
    check_lens(F, g, "x", x, g.x_len(), "batch·cin·h·w");
    check_lens(F, g, "dy", dy, g.y_len(), "batch·cout·h·w");
    check_lens(F, g, "dw", dw, g.w_len(), "cout·cin·k·k");
    if let Some(db) = db.as_deref() {
        check_lens(F, g, "db", db, g.cout, "cout");
    }
    let (hw, co, k) = (g.hw(), g.cout, g.k);
    if g.batch == 0 || co == 0 || hw == 0 {
        return;
    }
    let (xs, ys) = (g.cin * hw, co * hw);
    let want_b = db.is_some();
    // Fixed partition of the batch: `parts` contiguous runs of `per` samples.
    let (per, parts) = reduce_partition(g.batch, 1);
    let wl = g.w_len().max(1);
    let pb_len = if want_b { co } else { 1 };
    let mut pw = Scratch::<T>::zeroed(parts * wl);
    let mut pb = Scratch::<T>::zeroed(parts * pb_len);
    // With few output channels the partials are kept as [(o, flipped tap), ci].
    let transposed = k > 1 && tune.shift_add.unwrap_or(co <= SHIFT_ADD_MAX_CO);
    let pl = plan(g.kdim(), g.h, g.w, per, tune.col_elems_for(g.kdim()));
    pw.par_chunks_mut(wl)
        .zip(pb.par_chunks_mut(pb_len))
        .enumerate()
        .for_each(|(p, (pw, pb))| {
            let (s0, s1) = (p * per, ((p + 1) * per).min(g.batch));
            let (xp, dyp) = (&x[s0 * xs..s1 * xs], &dy[s0 * ys..s1 * ys]);
            if want_b {
                for dyb in dyp.chunks_exact(ys) {
                    for (o, b) in pb.iter_mut().enumerate() {
                        *b += sum(&dyb[o * hw..(o + 1) * hw]);
                    }
                }
            }
            if g.kdim() == 0 {
            } else if k == 1 {
                params_part_k1(g, xp, dyp, pw);
            } else if transposed {
                params_part_transposed(g, xp, dyp, pw);
            } else {
                params_part_im2col(g, pl, xp, dyp, pw);
            }
        });
    if transposed && g.kdim() > 0 {
        // dw[o, c, t] += Σ_parts pw[(o·kk + kk−1−t)·ci + c]
        let (ci, kk) = (g.cin, k * k);
        let mut tot = Scratch::<T>::zeroed(wl);
        add_partials(&pw, &mut tot);
        for o in 0..co {
            for c in 0..ci {
                for t in 0..kk {
                    dw[(o * ci + c) * kk + t] += tot[(o * kk + kk - 1 - t) * ci + c];
                }
            }
        }
    } else if g.kdim() > 0 {
        add_partials(&pw, dw);
    }
    if let Some(db) = db {
        add_partials(&pb, db);
    }
}

/// `pw[co, ci] += Σ_b dy_b[co, hw] · x_b[ci, hw]ᵀ` (1×1 kernel) over the samples of a part.
fn params_part_k1<T: Scalar>(g: &Conv2dGeom, xp: &[T], dyp: &[T], pw: &mut [T]) {
    let (hw, ci, co) = (g.hw(), g.cin, g.cout);
    let ld = hw as isize;
    for (xb, dyb) in xp.chunks_exact(ci * hw).zip(dyp.chunks_exact(co * hw)) {
        gemm(
            T::ONE,
            MatRef::new(dyb, co, hw, (ld, 1)),
            MatRef::new(xb, hw, ci, (1, ld)),
            T::ONE,
            MatMut::new(pw, co, ci, (ci as isize, 1)),
        );
    }
}

/// `pw[co, kdim] += Σ dy · colᵀ` over the samples of a part, with im2col chunks (one
/// sample in row chunks, or groups of small samples side by side) as in the forward pass.
fn params_part_im2col<T: Scalar>(g: &Conv2dGeom, pl: Plan, xp: &[T], dyp: &[T], pw: &mut [T]) {
    let (hw, kdim, co, ci, k, h, w) = (g.hw(), g.kdim(), g.cout, g.cin, g.k, g.h, g.w);
    let (xs, ys) = (ci * hw, co * hw);
    let ldw = (kdim as isize, 1);
    if pl.group == 1 {
        for (xb, dyb) in xp.chunks_exact(xs).zip(dyp.chunks_exact(ys)) {
            let mut r0 = 0;
            while r0 < h {
                let r1 = (r0 + pl.rows).min(h);
                let nc = (r1 - r0) * w;
                let mut col = Scratch::<T>::new(kdim * nc);
                im2col(xb, ci, h, w, k, r0, r1, &mut col, nc, 0);
                let dyc = &dyb[r0 * w..];
                gemm(
                    T::ONE,
                    MatRef::new(dyc, co, nc, (hw as isize, 1)),
                    MatRef::new(&col, nc, kdim, (1, nc as isize)),
                    T::ONE,
                    MatMut::new(pw, co, kdim, ldw),
                );
                r0 = r1;
            }
        }
        return;
    }
    let ns = dyp.len() / ys;
    let mut s0 = 0;
    while s0 < ns {
        let gs = pl.group.min(ns - s0);
        let nc = gs * hw;
        let mut col = Scratch::<T>::new(kdim * nc);
        let mut dyg = Scratch::<T>::new(co * nc);
        for j in 0..gs {
            let (s, c0) = (s0 + j, j * hw);
            im2col(
                &xp[s * xs..(s + 1) * xs],
                ci,
                h,
                w,
                k,
                0,
                h,
                &mut col,
                nc,
                c0,
            );
            for (o, src) in dyp[s * ys..(s + 1) * ys].chunks_exact(hw).enumerate() {
                dyg[o * nc + c0..o * nc + c0 + hw].copy_from_slice(src);
            }
        }
        let ld = (nc as isize, 1);
        gemm(
            T::ONE,
            MatRef::new(&dyg, co, nc, ld),
            MatRef::new(&col, nc, kdim, (1, nc as isize)),
            T::ONE,
            MatMut::new(pw, co, kdim, ldw),
        );
        s0 += gs;
    }
}

/// Few output channels: `pw[(o, t'), c] += Σ_q im2col(dy_b)[(o, t'), q] · x_b[c, q]` (a GEMM
/// with `co·k²` rows instead of `co`); `t' = k²−1−t` is the flipped tap, since
/// `dw[o, c, ky, kx] = Σ_{a, b} x[c, a, b] · dy[o, a − ky + k/2, b − kx + k/2]`.
fn params_part_transposed<T: Scalar>(g: &Conv2dGeom, xp: &[T], dyp: &[T], pw: &mut [T]) {
    let (hw, co, ci, k, h, w) = (g.hw(), g.cout, g.cin, g.k, g.h, g.w);
    let rows = co * k * k;
    let ld = hw as isize;
    for (xb, dyb) in xp.chunks_exact(ci * hw).zip(dyp.chunks_exact(co * hw)) {
        let mut col = Scratch::<T>::new(rows * hw);
        im2col(dyb, co, h, w, k, 0, h, &mut col, hw, 0);
        gemm(
            T::ONE,
            MatRef::new(&col, rows, hw, (ld, 1)),
            MatRef::new(xb, hw, ci, (1, ld)),
            T::ONE,
            MatMut::new(pw, rows, ci, (ci as isize, 1)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::ops::testutil::*;
    use proptest::prelude::*;

    /// Direct backward formulas (scatter form), f64.
    fn naive_backward(
        g: &Conv2dGeom,
        x: &[f64],
        w: &[f64],
        dy: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (h, wd, k) = (g.h as isize, g.w as isize, g.k);
        let p = (k / 2) as isize;
        let mut dx = vec![0.0; g.x_len()];
        let mut dw = vec![0.0; g.w_len()];
        let mut db = vec![0.0; g.cout];
        for n in 0..g.batch {
            for co in 0..g.cout {
                for i in 0..h {
                    for j in 0..wd {
                        let d = dy[((n * g.cout + co) * g.h + i as usize) * g.w + j as usize];
                        db[co] += d;
                        for ci in 0..g.cin {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let (ii, jj) = (i + ky as isize - p, j + kx as isize - p);
                                    if ii < 0 || jj < 0 || ii >= h || jj >= wd {
                                        continue;
                                    }
                                    let wi = ((co * g.cin + ci) * k + ky) * k + kx;
                                    let xi =
                                        ((n * g.cin + ci) * g.h + ii as usize) * g.w + jj as usize;
                                    dx[xi] += w[wi] * d;
                                    dw[wi] += x[xi] * d;
                                }
                            }
                        }
                    }
                }
            }
        }
        (dx, dw, db)
    }

    fn geom(batch: usize, cin: usize, cout: usize, h: usize, w: usize, k: usize) -> Conv2dGeom {
        Conv2dGeom {
            batch,
            cin,
            cout,
            h,
            w,
            k,
        }
    }

    /// Checks all three passes against the naive reference for one geometry and chunking.
    fn check_vs_naive(g: &Conv2dGeom, tune: Tuning, seed: u64) {
        let mut r = rng(seed);
        let x = rand_vec(&mut r, g.x_len());
        let w = rand_vec(&mut r, g.w_len());
        let b = rand_vec(&mut r, g.cout);
        let dy = rand_vec(&mut r, g.y_len());
        let mut y = vec![f64::NAN; g.y_len()];
        conv2d_forward_with(g, &x, &w, Some(&b), &mut y, tune);
        assert_close(
            &y,
            &naive_conv_forward(g, &x, &w, Some(&b)),
            1e-13,
            &format!("forward {g:?}"),
        );
        conv2d_forward_with(g, &x, &w, None, &mut y, tune);
        assert_close(
            &y,
            &naive_conv_forward(g, &x, &w, None),
            1e-13,
            &format!("forward no bias {g:?}"),
        );
        let (dx_ref, dw_ref, db_ref) = naive_backward(g, &x, &w, &dy);
        let mut dx = vec![f64::NAN; g.x_len()];
        conv2d_backward_input_with(g, &dy, &w, &mut dx, false, tune);
        assert_close(
            &dx,
            &dx_ref,
            1e-13,
            &format!("backward_input {g:?} {tune:?}"),
        );
        let mut dxa = vec![1.0; g.x_len()];
        conv2d_backward_input_with(g, &dy, &w, &mut dxa, true, tune);
        let want: Vec<f64> = dx_ref.iter().map(|v| v + 1.0).collect();
        assert_close(
            &dxa,
            &want,
            1e-13,
            &format!("backward_input acc {g:?} {tune:?}"),
        );
        let mut dw = vec![0.0; g.w_len()];
        let mut db = vec![0.0; g.cout];
        conv2d_backward_params_with(g, &x, &dy, &mut dw, Some(&mut db), tune);
        assert_close(&dw, &dw_ref, 1e-13, &format!("backward dw {g:?}"));
        assert_close(&db, &db_ref, 1e-13, &format!("backward db {g:?}"));
    }

    #[test]
    fn matches_naive_all_paths() {
        for (i, &(b, ci, co, h, w, k)) in [
            (2, 3, 4, 5, 7, 3),
            (1, 1, 1, 1, 1, 3),
            (3, 2, 5, 1, 6, 3),
            (2, 4, 3, 6, 1, 3),
            (5, 3, 2, 4, 4, 1),
            (2, 2, 3, 3, 3, 5),
            (9, 5, 6, 8, 8, 3),
            (3, 6, 7, 23, 17, 3),
        ]
        .iter()
        .enumerate()
        {
            let g = geom(b, ci, co, h, w, k);
            // default plan, tiny chunks (row chunks / small groups), huge chunks
            for &col_elems in &[COL_ELEMS, 1, 50, 700, 1 << 30] {
                for shift_add in [None, Some(false), Some(true)] {
                    check_vs_naive(
                        &g,
                        Tuning {
                            col_elems,
                            min_cols: 0,
                            shift_add,
                            direct: true,
                        },
                        100 + i as u64,
                    );
                }
            }
        }
    }

    #[test]
    fn plans() {
        // 64 ch, 32x32: row chunks of 7 rows (227 columns)
        assert_eq!(plan(576, 32, 32, 16, COL_ELEMS), Plan { group: 1, rows: 7 });
        // 8x8 images are batched
        assert_eq!(plan(576, 8, 8, 16, COL_ELEMS), Plan { group: 3, rows: 8 });
        assert_eq!(plan(27, 32, 32, 16, COL_ELEMS), Plan { group: 1, rows: 32 });
        assert_eq!(plan(576, 4, 4, 2, COL_ELEMS), Plan { group: 2, rows: 4 });
    }

    #[test]
    fn f32_matches_f64() {
        for &(b, ci, co, h, w, k) in &[
            (3, 16, 24, 20, 20, 3),
            (4, 3, 32, 16, 16, 3),
            (5, 32, 16, 8, 8, 3),
            (2, 16, 8, 9, 9, 1),
        ] {
            let g = geom(b, ci, co, h, w, k);
            let mut r = rng(7);
            let x = rand_vec(&mut r, g.x_len());
            let w = rand_vec(&mut r, g.w_len());
            let bias = rand_vec(&mut r, g.cout);
            let dy = rand_vec(&mut r, g.y_len());
            let (x32, w32, b32, dy32) = (to_f32(&x), to_f32(&w), to_f32(&bias), to_f32(&dy));
            // Reference from the f32-rounded inputs, in f64.
            let (x, w, bias, dy) = (to_f64(&x32), to_f64(&w32), to_f64(&b32), to_f64(&dy32));
            let mut y = vec![0.0; g.y_len()];
            conv2d_forward(&g, &x, &w, Some(&bias), &mut y);
            let mut y32 = vec![0.0f32; g.y_len()];
            conv2d_forward(&g, &x32, &w32, Some(&b32), &mut y32);
            assert_close(&to_f64(&y32), &y, 1e-6, "f32 forward");
            let mut dx = vec![0.0; g.x_len()];
            conv2d_backward_input(&g, &dy, &w, &mut dx, false);
            let mut dx32 = vec![0.0f32; g.x_len()];
            conv2d_backward_input(&g, &dy32, &w32, &mut dx32, false);
            assert_close(&to_f64(&dx32), &dx, 1e-6, "f32 backward_input");
            let (mut dw, mut db) = (vec![0.0; g.w_len()], vec![0.0; g.cout]);
            conv2d_backward_params(&g, &x, &dy, &mut dw, Some(&mut db));
            let (mut dw32, mut db32) = (vec![0.0f32; g.w_len()], vec![0.0f32; g.cout]);
            conv2d_backward_params(&g, &x32, &dy32, &mut dw32, Some(&mut db32));
            assert_close(&to_f64(&dw32), &dw, 1e-6, "f32 dw");
            assert_close(&to_f64(&db32), &db, 1e-6, "f32 db");
        }
    }

    #[test]
    fn thread_count_invariance() {
        for &(b, ci, co, h, w, k) in &[
            (11, 8, 12, 20, 20, 3),
            (7, 12, 10, 14, 14, 3),
            (13, 6, 5, 6, 6, 3),
            (10, 5, 7, 9, 9, 1),
            (1, 4, 4, 40, 40, 3),
            (2, 16, 4, 40, 40, 3),
        ] {
            let g = geom(b, ci, co, h, w, k);
            let mut r = rng(11);
            let x = to_f32(&rand_vec(&mut r, g.x_len()));
            let w = to_f32(&rand_vec(&mut r, g.w_len()));
            let bias = to_f32(&rand_vec(&mut r, g.cout));
            let dy = to_f32(&rand_vec(&mut r, g.y_len()));
            assert_thread_invariant(
                &format!("conv {g:?}"),
                || {
                    let mut y = vec![0.0f32; g.y_len()];
                    conv2d_forward(&g, &x, &w, Some(&bias), &mut y);
                    let mut dx = vec![0.5f32; g.x_len()];
                    conv2d_backward_input(&g, &dy, &w, &mut dx, true);
                    let (mut dw, mut db) = (vec![0.25f32; g.w_len()], vec![0.0f32; g.cout]);
                    conv2d_backward_params(&g, &x, &dy, &mut dw, Some(&mut db));
                    vec![y, dx, dw, db]
                },
                |a, b, what| assert_bits_eq(a, b, what),
            );
        }
    }

    #[test]
    fn acc_semantics() {
        let g = geom(3, 4, 5, 6, 7, 3);
        let mut r = rng(5);
        let x = rand_vec(&mut r, g.x_len());
        let w = rand_vec(&mut r, g.w_len());
        let dy = rand_vec(&mut r, g.y_len());
        let base = rand_vec(&mut r, g.x_len());
        let mut fresh = vec![f64::NAN; g.x_len()];
        conv2d_backward_input(&g, &dy, &w, &mut fresh, false);
        let mut accd = base.clone();
        conv2d_backward_input(&g, &dy, &w, &mut accd, true);
        let want: Vec<f64> = base.iter().zip(&fresh).map(|(a, b)| a + b).collect();
        assert_close(&accd, &want, 1e-14, "acc = true adds");
        // Parameter gradients accumulate.
        let (mut dw1, mut db1) = (vec![0.0; g.w_len()], vec![0.0; g.cout]);
        conv2d_backward_params(&g, &x, &dy, &mut dw1, Some(&mut db1));
        let (mut dw2, mut db2) = (dw1.clone(), db1.clone());
        conv2d_backward_params(&g, &x, &dy, &mut dw2, Some(&mut db2));
        let twice = |v: &[f64]| v.iter().map(|a| 2.0 * a).collect::<Vec<_>>();
        assert_close(&dw2, &twice(&dw1), 1e-14, "dw accumulates");
        assert_close(&db2, &twice(&db1), 1e-14, "db accumulates");
        conv2d_backward_params(&g, &x, &dy, &mut dw2, None);
        assert_close(
            &dw2,
            &dw1.iter().map(|a| 3.0 * a).collect::<Vec<_>>(),
            1e-14,
            "dw without db",
        );
    }

    #[test]
    #[should_panic(expected = "must be odd")]
    fn even_kernel_panics() {
        let g = geom(1, 1, 1, 4, 4, 2);
        conv2d_forward(&g, &[0.0f32; 16], &[0.0; 4], None, &mut [0.0; 16]);
    }

    #[test]
    #[should_panic(expected = "`w` has length")]
    fn wrong_length_panics() {
        let g = geom(1, 2, 1, 4, 4, 3);
        conv2d_forward(&g, &[0.0f32; 32], &[0.0; 9], None, &mut [0.0; 16]);
    }

    proptest! {
        #![proptest_config(pt_config())]
        /// Finite-difference check of every gradient of ⟨r, conv(x; w, b)⟩ in f64.
        #[test]
        fn finite_differences(batch in 1usize..=3, cin in 1usize..=4, cout in 1usize..=4,
                              h in 2usize..=6, w in 2usize..=6, k3 in any::<bool>(), bias in any::<bool>(),
                              shift_add in any::<bool>(), seed in any::<u64>()) {
            let g = geom(batch, cin, cout, h, w, if k3 { 3 } else { 1 });
            let mut r = rng(seed);
            let x = rand_vec(&mut r, g.x_len());
            let wt = rand_vec(&mut r, g.w_len());
            let b = rand_vec(&mut r, g.cout);
            let rr = rand_vec(&mut r, g.y_len());
            let bo = bias.then_some(&b[..]);
            let tune = Tuning { col_elems: COL_ELEMS, min_cols: TARGET_COLS, shift_add: Some(shift_add), direct: true };
            let loss = |x: &[f64], wt: &[f64], b: Option<&[f64]>| {
                let mut y = vec![0.0; g.y_len()];
                conv2d_forward_with(&g, x, wt, b, &mut y, tune);
                inner(&rr, &y)
            };
            let mut dx = vec![0.0; g.x_len()];
            conv2d_backward_input_with(&g, &rr, &wt, &mut dx, false, tune);
            let (mut dw, mut db) = (vec![0.0; g.w_len()], vec![0.0; g.cout]);
            conv2d_backward_params_with(&g, &x, &rr, &mut dw, Some(&mut db), tune);
            check_grad("conv dx", &x, &dx, 1e-6, &mut r, |p| loss(p, &wt, bo));
            check_grad("conv dw", &wt, &dw, 1e-6, &mut r, |p| loss(&x, p, bo));
            check_grad("conv db", &b, &db, 1e-6, &mut r, |p| loss(&x, &wt, Some(p)));
        }
    }
}
