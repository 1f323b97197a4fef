//! The MLP energy's input gradient, fused per block of rows.
//!
//! `Energy::energy_grad_x` — the Langevin hot path — needs no parameter
//! gradients, so every sample is independent. Instead of running each layer
//! over the whole batch (one parallel region per layer and activation), the
//! batch is cut into fixed blocks of [`ROWS`] rows that run the whole forward and
//! backward pass on one thread each, with single-threaded GEMMs and all
//! activations of a block in cache. The block size depends only on the batch,
//! and a row's arithmetic does not depend on the other rows of its block (the
//! GEMM kernel computes every output element with the same `k` order), so the
//! result is bit-identical for any number of threads and any batch split.
//!
//! On CPUs with AVX-512F a block runs feature-major (`[features, rows]`, rows
//! padded to a multiple of 16): every wide layer is one call of the direct
//! kernel `ops::matmul_fm` (weights read in place, transposed for the backward
//! pass, no GEMM packing of the activations), the thin layers are row-vector
//! loops. Elsewhere it runs row-major with `matrixmultiply` GEMMs. Each path is
//! deterministic in the same sense; the two round differently.

use rayon::prelude::*;

use crate::cpu::ops::{self, Scratch};

/// Rows per block.
pub const ROWS: usize = 128;

/// A layer: weight `[dout, din]` row-major and bias `[dout]`.
#[derive(Clone, Copy)]
pub struct Layer<'a> {
    pub w: &'a [f32],
    pub b: &'a [f32],
    pub din: usize,
    pub dout: usize,
}

impl Layer<'_> {
    /// A placeholder (no weights), to fill unused slots of [`with_array`].
    pub const EMPTY: Layer<'static> = Layer {
        w: &[],
        b: &[],
        din: 0,
        dout: 0,
    };
}

/// Per-layer lists up to this depth are held on the stack.
const STACK_LAYERS: usize = 16;

/// Calls `f` with `[make(0), …, make(n − 1)]`, held on the stack (slots past `n`
/// filled by `filler`) when `n ≤ 16` and in a `Vec` beyond, so that the
/// Langevin hot path does not allocate for per-layer lists.
pub fn with_array<T, R>(
    n: usize,
    mut make: impl FnMut(usize) -> T,
    filler: impl Fn() -> T,
    f: impl FnOnce(&[T]) -> R,
) -> R {
    if n <= STACK_LAYERS {
        let buf: [T; STACK_LAYERS] =
            std::array::from_fn(|i| if i < n { make(i) } else { filler() });
        f(&buf[..n])
    } else {
        let v: Vec<T> = (0..n).map(make).collect();
        f(&v)
    }
}

/// Energies `e [B]` and input gradients `dx [B, d_in]` of an MLP with
/// LeakyReLU(`slope`) between layers and a scalar output.
///
/// # Panics
/// If the slices do not match the layer sizes.
pub fn energy_grad_x(layers: &[Layer<'_>], slope: f32, x: &[f32], e: &mut [f32], dx: &mut [f32]) {
    run(Path::best(), layers, slope, x, e, Some(dx));
}

/// Which implementation of a block runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// Row-major, `matrixmultiply` GEMMs (any CPU).
    RowMajor,
    /// Feature-major, the direct AVX-512 kernel (only where it is available).
    FeatureMajor,
}

impl Path {
    fn best() -> Path {
        if ops::direct_available() {
            Path::FeatureMajor
        } else {
            Path::RowMajor
        }
    }
}

fn run(
    path: Path,
    layers: &[Layer<'_>],
    slope: f32,
    x: &[f32],
    e: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let din = check(layers, x, e);
    // Feature-major: the wide layers' weights, packed once per call for the forward
    // (W) and, when gradients are wanted, the backward (Wᵀ) products.
    let grads = dx.is_some();
    let pack = |i: usize| {
        let l = &layers[i];
        (path == Path::FeatureMajor && l.din > THIN && l.dout > THIN).then(|| Packed {
            fwd: ops::PackedWeights::new(l.dout, l.din, |o, c| l.w[o * l.din + c]),
            bwd: grads.then(|| ops::PackedWeights::new(l.din, l.dout, |o, c| l.w[c * l.din + o])),
        })
    };
    with_array(
        layers.len(),
        pack,
        || None,
        |packed| run_blocks(path, layers, packed, slope, din, x, e, dx),
    );
}

/// The parallel loop over row blocks of [`run`].
fn run_blocks(
    path: Path,
    layers: &[Layer<'_>],
    packed: &[Option<Packed>],
    slope: f32,
    din: usize,
    x: &[f32],
    e: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let blk = |xb: &[f32], eb: &mut [f32], dxb: Option<&mut [f32]>| match path {
        Path::RowMajor => block(layers, slope, xb, eb, dxb),
        Path::FeatureMajor => block_fm(layers, packed, slope, xb, eb, dxb),
    };
    match dx {
        Some(dx) => {
            assert_eq!(dx.len(), x.len());
            x.par_chunks(ROWS * din)
                .zip(e.par_chunks_mut(ROWS))
                .zip(dx.par_chunks_mut(ROWS * din))
                .for_each(|((xb, eb), dxb)| blk(xb, eb, Some(dxb)));
        }
        None => x
            .par_chunks(ROWS * din)
            .zip(e.par_chunks_mut(ROWS))
            .for_each(|(xb, eb)| blk(xb, eb, None)),
    }
}

/// Energies `e [B]` alone, by the same forward arithmetic as [`energy_grad_x`]
/// (so `energy` and `energy_grad_x` return bit-identical energies).
///
/// # Panics
/// If the slices do not match the layer sizes.
pub fn energy(layers: &[Layer<'_>], slope: f32, x: &[f32], e: &mut [f32]) {
    run(Path::best(), layers, slope, x, e, None);
}

/// Checks `x [B, d_in]`, `e [B]` and the scalar output; returns `d_in`.
fn check(layers: &[Layer<'_>], x: &[f32], e: &[f32]) -> usize {
    let din = layers[0].din;
    assert_eq!(x.len(), e.len() * din);
    assert_eq!(
        layers[layers.len() - 1].dout,
        1,
        "the energy has one output"
    );
    din
}

fn block(layers: &[Layer<'_>], slope: f32, x: &[f32], e: &mut [f32], dx: Option<&mut [f32]>) {
    let r = e.len();
    // Scratch layout: pre-activations a_i [r, dout_i] for every layer, then two
    // gradient buffers of the widest layer.
    let widest = layers.iter().map(|l| l.din.max(l.dout)).max().unwrap_or(1);
    let pre_len: usize = layers.iter().map(|l| r * l.dout).sum();
    let mut scratch = Scratch::<f32>::new(pre_len + 3 * r * widest);
    let (pre, rest) = scratch.split_at_mut(pre_len);
    let (hbuf, rest) = rest.split_at_mut(r * widest);
    let (g0, g1) = rest.split_at_mut(r * widest);
    // Forward: a_i = h_i W_iᵀ + b_i, h_{i+1} = leaky(a_i).
    let mut off = 0;
    let mut prev = 0..0;
    for (i, l) in layers.iter().enumerate() {
        let (done, cur) = pre.split_at_mut(off);
        let a = &mut cur[..r * l.dout];
        for row in a.chunks_exact_mut(l.dout) {
            row.copy_from_slice(l.b);
        }
        let h: &[f32] = if i == 0 {
            x
        } else {
            let hb = &mut hbuf[..r * l.din];
            for (o, &v) in hb.iter_mut().zip(&done[prev.clone()]) {
                *o = if v > 0.0 { v } else { slope * v };
            }
            hb
        };
        matmul_nt_acc(r, l.din, l.dout, h, l.w, a);
        prev = off..off + r * l.dout;
        off += r * l.dout;
    }
    e.copy_from_slice(&pre[prev][..r]);
    let Some(dx) = dx else { return };
    // Backward from dU/da_L = 1: dh_i = da_i W_i, da_{i-1} = dh_i ⊙ leaky'(a_{i-1}).
    let mut da: &mut [f32] = g0;
    da[..r].fill(1.0);
    let mut other: &mut [f32] = g1;
    for i in (0..layers.len()).rev() {
        let l = &layers[i];
        off -= r * l.dout;
        let dh = if i == 0 {
            &mut dx[..]
        } else {
            &mut other[..r * l.din]
        };
        matmul_nn(r, l.dout, l.din, &da[..r * l.dout], l.w, dh);
        if i > 0 {
            let a_prev = &pre[off - r * l.din..off];
            leaky_grad(dh, a_prev, slope);
            std::mem::swap(&mut da, &mut other);
        }
    }
}

/// A wide layer's weights packed for the direct kernel: `W` and (for gradients) `Wᵀ`.
struct Packed {
    fwd: ops::PackedWeights,
    bwd: Option<ops::PackedWeights>,
}

/// [`block`] in feature-major layout with the direct kernel (see the module docs).
fn block_fm(
    layers: &[Layer<'_>],
    packed: &[Option<Packed>],
    slope: f32,
    x: &[f32],
    e: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let (r, din) = (e.len(), layers[0].din);
    let rp = r.next_multiple_of(16);
    // Scratch: xᵀ [din, rp] (later dxᵀ), pre-activations a_iᵀ [dout_i, rp], then a
    // buffer of the widest layer for activations and two for gradients.
    let widest = layers.iter().map(|l| l.din.max(l.dout)).max().unwrap_or(1);
    let pre_len: usize = layers.iter().map(|l| rp * l.dout).sum();
    let mut scratch = Scratch::<f32>::new(rp * din + pre_len + 3 * rp * widest);
    let (xt, rest) = scratch.split_at_mut(rp * din);
    let (pre, rest) = rest.split_at_mut(pre_len);
    let (hbuf, rest) = rest.split_at_mut(rp * widest);
    let (g0, g1) = rest.split_at_mut(rp * widest);
    for (j, row) in xt.chunks_exact_mut(rp).enumerate() {
        for (p, v) in row.iter_mut().enumerate() {
            *v = if p < r { x[p * din + j] } else { 0.0 };
        }
    }
    // Forward: a_iᵀ = W_i h_iᵀ + b_i, h_{i+1} = leaky(a_i).
    let mut off = 0;
    let mut prev = 0..0;
    for (i, l) in layers.iter().enumerate() {
        let (done, cur) = pre.split_at_mut(off);
        let a = &mut cur[..rp * l.dout];
        let h: &[f32] = if i == 0 {
            xt
        } else {
            let hb = &mut hbuf[..rp * l.din];
            for (o, &v) in hb.iter_mut().zip(&done[prev.clone()]) {
                *o = if v > 0.0 { v } else { slope * v };
            }
            hb
        };
        fm_layer(
            l.din,
            l.dout,
            rp,
            h,
            packed[i].as_ref().map(|p| &p.fwd),
            |o, c| l.w[o * l.din + c],
            Some(l.b),
            a,
        );
        prev = off..off + rp * l.dout;
        off += rp * l.dout;
    }
    e.copy_from_slice(&pre[prev][..r]);
    let Some(dx) = dx else { return };
    // Backward from dU/da_L = 1: dh_iᵀ = W_iᵀ da_iᵀ, da_{i-1} = dh_i ⊙ leaky'(a_{i-1}).
    let mut da: &mut [f32] = g0;
    da[..rp].fill(1.0);
    let mut other: &mut [f32] = g1;
    for i in (0..layers.len()).rev() {
        let l = &layers[i];
        off -= rp * l.dout;
        let dh = if i == 0 {
            &mut xt[..]
        } else {
            &mut other[..rp * l.din]
        };
        fm_layer(
            l.dout,
            l.din,
            rp,
            &da[..rp * l.dout],
            packed[i].as_ref().and_then(|p| p.bwd.as_ref()),
            |o, c| l.w[c * l.din + o],
            None,
            dh,
        );
        if i > 0 {
            let a_prev = &pre[off - rp * l.din..off];
            leaky_grad(dh, a_prev, slope);
            std::mem::swap(&mut da, &mut other);
        }
    }
    for (p, row) in dx.chunks_exact_mut(din).enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = xt[j * rp + p];
        }
    }
}

/// Feature-major `y [co, n] = W x [ci, n] (+ b)` with `W[o, c] = wt(o, c)`: the direct
/// kernel with `W` packed in `wp` (the wide layers), or row-vector loops (thin layers,
/// `wp = None`).
fn fm_layer(
    ci: usize,
    co: usize,
    n: usize,
    x: &[f32],
    wp: Option<&ops::PackedWeights>,
    wt: impl Fn(usize, usize) -> f32,
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    assert_eq!((x.len(), y.len()), (ci * n, co * n), "fm_layer: lengths");
    if let Some(wp) = wp {
        ops::matmul_fm(ci, n, x, wp, b, y);
        return;
    }
    for (o, yo) in y.chunks_exact_mut(n).enumerate() {
        yo.fill(b.map_or(0.0, |b| b[o]));
        for (c, xc) in x.chunks_exact(n).enumerate() {
            let w = wt(o, c);
            yo.iter_mut().zip(xc).for_each(|(d, &v)| *d += w * v);
        }
    }
}

/// `d ⊙= leaky'(a)`: `d *= slope` where `a ≤ 0`. Written as a multiplication by a
/// selected factor (by 1, which is exact, elsewhere) so that it vectorises: the branchy
/// form ran one element at a time with a mispredicted branch per sign change and
/// took half of the MLP's time.
fn leaky_grad(d: &mut [f32], a: &[f32], slope: f32) {
    for (d, &a) in d.iter_mut().zip(a) {
        *d *= if a <= 0.0 { slope } else { 1.0 };
    }
}

/// Below this inner or outer width a GEMM call is dominated by packing; the
/// thin layers of an MLP energy (the 2-D input layer, the scalar output layer)
/// use plain loops instead. Both paths compute each output as a sum in
/// increasing `k`, so the result does not depend on the other rows.
const THIN: usize = 8;

/// `a[r, n] += h[r, k] · w[n, k]ᵀ`.
fn matmul_nt_acc(r: usize, k: usize, n: usize, h: &[f32], w: &[f32], a: &mut [f32]) {
    if k <= THIN || n <= THIN {
        for (hr, ar) in h.chunks_exact(k).zip(a.chunks_exact_mut(n)) {
            for (o, wr) in ar.iter_mut().zip(w.chunks_exact(k)) {
                let mut acc = 0.0f32;
                for (&x, &y) in hr.iter().zip(wr) {
                    acc += x * y;
                }
                *o += acc;
            }
        }
    } else {
        ops::gemm_nt(r, k, n, 1.0, h, w, 1.0, a);
    }
}

/// `dh[r, n] = d[r, k] · w[k, n]` (w is the layer's `[dout, din]` weight, `k = dout`).
fn matmul_nn(r: usize, k: usize, n: usize, d: &[f32], w: &[f32], dh: &mut [f32]) {
    if k <= THIN || n <= THIN {
        for (dr, hr) in d.chunks_exact(k).zip(dh.chunks_exact_mut(n)) {
            hr.fill(0.0);
            for (&dv, wr) in dr.iter().zip(w.chunks_exact(n)) {
                for (o, &wv) in hr.iter_mut().zip(wr) {
                    *o += dv * wv;
                }
            }
        }
    } else {
        ops::gemm_nn(r, k, n, 1.0, d, w, 0.0, dh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MLP energy and input gradient in f64 (row by row).
    fn naive(layers: &[Layer<'_>], slope: f64, x: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let din = layers[0].din;
        let (mut e, mut dx) = (Vec::new(), Vec::new());
        for row in x.chunks_exact(din) {
            let mut h: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            let mut pres = Vec::new();
            for (i, l) in layers.iter().enumerate() {
                let a: Vec<f64> = (0..l.dout)
                    .map(|o| {
                        l.b[o] as f64
                            + (0..l.din)
                                .map(|c| l.w[o * l.din + c] as f64 * h[c])
                                .sum::<f64>()
                    })
                    .collect();
                h = if i + 1 < layers.len() {
                    a.iter()
                        .map(|&v| if v > 0.0 { v } else { slope * v })
                        .collect()
                } else {
                    a.clone()
                };
                pres.push(a);
            }
            e.push(h[0]);
            let mut g = vec![1.0f64];
            for i in (0..layers.len()).rev() {
                let l = &layers[i];
                let mut dh: Vec<f64> = (0..l.din)
                    .map(|c| (0..l.dout).map(|o| l.w[o * l.din + c] as f64 * g[o]).sum())
                    .collect();
                if i > 0 {
                    for (d, &a) in dh.iter_mut().zip(&pres[i - 1]) {
                        if a <= 0.0 {
                            *d *= slope;
                        }
                    }
                }
                g = dh;
            }
            dx.extend(g);
        }
        (e, dx)
    }

    fn normwise(got: &[f32], want: &[f64]) -> f64 {
        let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        got.iter()
            .zip(want)
            .fold(0.0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()))
            / scale
    }

    #[test]
    fn with_array_gives_exactly_the_made_items_on_stack_and_heap() {
        for n in [0usize, 1, STACK_LAYERS, STACK_LAYERS + 1, 40] {
            let got = with_array(n, |i| i * 3, || usize::MAX, |a| a.to_vec());
            assert_eq!(got, (0..n).map(|i| i * 3).collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn both_paths_match_f64_and_energy_matches_energy_grad_x() {
        let dims = [2usize, 24, 40, 9, 1];
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let params: Vec<(Vec<f32>, Vec<f32>)> = dims
            .windows(2)
            .map(|d| {
                (
                    (0..d[0] * d[1]).map(|_| next()).collect(),
                    (0..d[1]).map(|_| next()).collect(),
                )
            })
            .collect();
        let layers: Vec<Layer<'_>> = params
            .iter()
            .zip(dims.windows(2))
            .map(|((w, b), d)| Layer {
                w,
                b,
                din: d[0],
                dout: d[1],
            })
            .collect();
        let mut paths = vec![Path::RowMajor];
        if ops::direct_available() {
            paths.push(Path::FeatureMajor);
        }
        for batch in [1usize, 5, 16, 127, 128, 300] {
            let x: Vec<f32> = (0..batch * 2).map(|_| next()).collect();
            let (e_ref, dx_ref) = naive(&layers, 0.2, &x);
            for &path in &paths {
                let (mut e, mut dx) = (vec![f32::NAN; batch], vec![f32::NAN; batch * 2]);
                run(path, &layers, 0.2, &x, &mut e, Some(&mut dx));
                assert!(
                    normwise(&e, &e_ref) < 1e-5,
                    "{path:?} batch {batch}: energies"
                );
                assert!(
                    normwise(&dx, &dx_ref) < 1e-5,
                    "{path:?} batch {batch}: gradients"
                );
                let mut e2 = vec![f32::NAN; batch];
                run(path, &layers, 0.2, &x, &mut e2, None);
                assert!(
                    e.iter().zip(&e2).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{path:?} batch {batch}: energy alone differs"
                );
            }
        }
    }
}
