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

use std::cell::RefCell;

use rayon::prelude::*;

use crate::cpu::ops;

/// Rows per block.
pub const ROWS: usize = 128;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A layer: weight `[dout, din]` row-major and bias `[dout]`.
pub struct Layer<'a> {
    pub w: &'a [f32],
    pub b: &'a [f32],
    pub din: usize,
    pub dout: usize,
}

/// Energies `e [B]` and input gradients `dx [B, d_in]` of an MLP with
/// LeakyReLU(`slope`) between layers and a scalar output.
///
/// # Panics
/// If the slices do not match the layer sizes.
pub fn energy_grad_x(layers: &[Layer<'_>], slope: f32, x: &[f32], e: &mut [f32], dx: &mut [f32]) {
    let din = check(layers, x, e);
    assert_eq!(dx.len(), x.len());
    x.par_chunks(ROWS * din)
        .zip(e.par_chunks_mut(ROWS))
        .zip(dx.par_chunks_mut(ROWS * din))
        .for_each(|((xb, eb), dxb)| {
            SCRATCH.with(|s| block(layers, slope, xb, eb, Some(dxb), &mut s.borrow_mut()))
        });
}

/// Energies `e [B]` alone, by the same forward arithmetic as [`energy_grad_x`]
/// (so `energy` and `energy_grad_x` return bit-identical energies).
///
/// # Panics
/// If the slices do not match the layer sizes.
pub fn energy(layers: &[Layer<'_>], slope: f32, x: &[f32], e: &mut [f32]) {
    let din = check(layers, x, e);
    x.par_chunks(ROWS * din)
        .zip(e.par_chunks_mut(ROWS))
        .for_each(|(xb, eb)| {
            SCRATCH.with(|s| block(layers, slope, xb, eb, None, &mut s.borrow_mut()))
        });
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

fn block(
    layers: &[Layer<'_>],
    slope: f32,
    x: &[f32],
    e: &mut [f32],
    dx: Option<&mut [f32]>,
    scratch: &mut Vec<f32>,
) {
    let r = e.len();
    // Scratch layout: pre-activations a_i [r, dout_i] for every layer, then two
    // gradient buffers of the widest layer.
    let widest = layers.iter().map(|l| l.din.max(l.dout)).max().unwrap_or(1);
    let pre_len: usize = layers.iter().map(|l| r * l.dout).sum();
    scratch.resize(pre_len + 3 * r * widest, 0.0);
    let (pre, rest) = scratch.split_at_mut(pre_len);
    let (hbuf, rest) = rest.split_at_mut(r * widest);
    let (g0, g1) = rest.split_at_mut(r * widest);
    // Forward: a_i = h_i W_iᵀ + b_i, h_{i+1} = leaky(a_i).
    let mut offs = Vec::with_capacity(layers.len());
    let mut off = 0;
    for (i, l) in layers.iter().enumerate() {
        offs.push(off);
        let (done, cur) = pre.split_at_mut(off);
        let a = &mut cur[..r * l.dout];
        for row in a.chunks_exact_mut(l.dout) {
            row.copy_from_slice(l.b);
        }
        let h: &[f32] = if i == 0 {
            x
        } else {
            let prev = &done[offs[i - 1]..offs[i - 1] + r * l.din];
            let hb = &mut hbuf[..r * l.din];
            for (o, &v) in hb.iter_mut().zip(prev) {
                *o = if v > 0.0 { v } else { slope * v };
            }
            hb
        };
        matmul_nt_acc(r, l.din, l.dout, h, l.w, a);
        off += r * l.dout;
    }
    let last = layers.len() - 1;
    e.copy_from_slice(&pre[offs[last]..offs[last] + r]);
    let Some(dx) = dx else { return };
    // Backward from dU/da_L = 1: dh_i = da_i W_i, da_{i-1} = dh_i ⊙ leaky'(a_{i-1}).
    let mut da: &mut [f32] = g0;
    da[..r].fill(1.0);
    let mut other: &mut [f32] = g1;
    for i in (0..layers.len()).rev() {
        let l = &layers[i];
        let dh = if i == 0 {
            &mut dx[..]
        } else {
            &mut other[..r * l.din]
        };
        matmul_nn(r, l.dout, l.din, &da[..r * l.dout], l.w, dh);
        if i > 0 {
            let a_prev = &pre[offs[i - 1]..offs[i - 1] + r * l.din];
            for (d, &a) in dh.iter_mut().zip(a_prev) {
                if a <= 0.0 {
                    *d *= slope;
                }
            }
            std::mem::swap(&mut da, &mut other);
        }
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
