//! Direct ("implicit GEMM") `f32` convolution for x86-64 CPUs with AVX-512F.
//!
//! The im2col + GEMM path of [`conv`](super::conv) copies every input pixel `k²` times
//! into a `col` matrix and then `matrixmultiply` copies that matrix once more into its
//! packed panels (together about a third of a convolution's time on the SN-GAN EBMs).
//! This kernel reads the input image directly instead: in a flattened `[h·w]` channel,
//! the tap `(ky, kx)` of the 16 consecutive output pixels `p … p+15` is the 16 consecutive
//! input elements starting at `p + (ky − k/2)·w + (kx − k/2)`, except for the lanes whose
//! source pixel lies in the zero padding (left/right edges and rows above/below the
//! image). One **masked** load (`vmovups` with a 16-bit mask that zeroes those lanes and
//! suppresses their memory access) therefore yields exactly the im2col panel row.
//!
//! Register tile: [`MR`] = 8 output channels × up to [`NV`] = 3 vectors of 16 pixels
//! (24 `zmm` accumulators). For every input channel and tap, the tile loads its 1–3
//! masked input vectors once and does `8 × NV` FMAs with broadcast weights from a
//! per-call packed copy `wp[row block][ci·k² + tap][8]` (rows past `cout` padded with
//! zeros). Each output element is therefore the sum over `(ci, tap)` in that fixed order,
//! then `+ bias` — independent of the tiling, the batch split and the thread count.
//!
//! Requirements (checked by [`suits`] and [`available`]; otherwise the caller uses the
//! GEMM path): AVX-512F at run time and `h·w` a multiple of 16, so that every 16-lane
//! vector lies inside one image (all SN-GAN resolutions: 4×4 … 128×128).

use std::cell::RefCell;
use std::sync::Arc;

use rayon::prelude::*;

use super::conv::Conv2dGeom;
use super::util::Scratch;

/// Output channels per register tile.
const MR: usize = 8;
/// 16-pixel vectors per register tile.
const NV: usize = 3;
/// Lanes of one `zmm` register of `f32`.
const LANES: usize = 16;
/// Vectors a rayon task should have at least (several tiles per task).
const MIN_TASK_VECS: usize = 96;
/// Tasks to keep at least, when the batch allows.
const MIN_TASKS: usize = 4;

/// `true` if the kernels may run: the active ISA path ([`crate::cpu::isa::active`],
/// which `HATEBM_CPU_ISA` can lower) is AVX-512 — which it only is on a CPU with
/// AVX-512F.
pub(crate) fn available() -> bool {
    crate::cpu::isa::active() >= crate::cpu::isa::Isa::Avx512
}

/// `true` if the shapes suit the kernel: whole 16-pixel vectors per image and an odd `k`.
pub(super) fn suits(h: usize, w: usize, k: usize) -> bool {
    let hw = h * w;
    hw > 0 && hw.is_multiple_of(LANES) && k % 2 == 1
}

/// Tap geometry shared by all tiles of a call: the flat offset of each tap and, for each
/// vector position `q` in an image (`q < h·w/16`) and tap `t`, the mask of lanes whose
/// source pixel is inside the image.
struct Taps {
    kk: usize,
    /// `offs[t] = (ky − k/2)·w + (kx − k/2)`, `t = ky·k + kx`.
    offs: Vec<isize>,
    /// `masks[q·kk + t]`: bit `l` set iff pixel `16q + l` shifted by tap `t` is inside.
    masks: Vec<u16>,
}

/// Tap tables kept per thread (most recently used first), so steady-state calls do not
/// allocate.
const TAPS_CACHED: usize = 8;

/// A thread's cache of tap tables, keyed by `(h, w, k)`.
type TapsCache = RefCell<Vec<((usize, usize, usize), Arc<Taps>)>>;

thread_local! {
    static TAPS: TapsCache = const { RefCell::new(Vec::new()) };
}

impl Taps {
    /// The tables for `(h, w, k)`, from this thread's cache or built and cached.
    fn cached(h: usize, w: usize, k: usize) -> Arc<Taps> {
        let key = (h, w, k);
        TAPS.with(|c| {
            let Ok(mut c) = c.try_borrow_mut() else {
                return Arc::new(Taps::new(h, w, k));
            };
            let t = match c.iter().position(|(k2, _)| *k2 == key) {
                Some(i) => c.remove(i).1,
                None => Arc::new(Taps::new(h, w, k)),
            };
            c.insert(0, (key, Arc::clone(&t)));
            c.truncate(TAPS_CACHED);
            t
        })
    }

    fn new(h: usize, w: usize, k: usize) -> Taps {
        let (kk, p) = (k * k, (k / 2) as isize);
        let (hi, wi) = (h as isize, w as isize);
        let offs = (0..kk)
            .map(|t| ((t / k) as isize - p) * wi + ((t % k) as isize - p))
            .collect();
        let mut masks = vec![0u16; h * w / LANES * kk];
        for (q, mq) in masks.chunks_exact_mut(kk).enumerate() {
            for (t, m) in mq.iter_mut().enumerate() {
                let (dy, dx) = ((t / k) as isize - p, (t % k) as isize - p);
                for l in 0..LANES {
                    let pix = (q * LANES + l) as isize;
                    let (i, j) = (pix / wi + dy, pix % wi + dx);
                    if (0..hi).contains(&i) && (0..wi).contains(&j) {
                        *m |= 1 << l;
                    }
                }
            }
        }
        Taps { kk, offs, masks }
    }
}

/// `y ← [y +] conv(x; wmat) [+ bias]`, the contract of `conv::conv_apply` for `f32`:
/// x `[batch, ci, h, w]`, `wmat [co, ci·k²]` (row-major, `ci`-major columns), y
/// `[batch, co, h, w]`, with `ci = g.cin`, `co = g.cout`.
///
/// # Panics
///
/// If the kernel is not [`available`], the shapes do not [`suit`](suits) it, or a slice
/// length does not match the shapes.
pub(super) fn conv_direct(
    g: &Conv2dGeom,
    x: &[f32],
    wmat: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    acc: bool,
) {
    let (co, kdim) = (g.cout, g.cin * g.k * g.k);
    assert_eq!(wmat.len(), co * kdim, "conv_direct: wmat length");
    let wp = PackedWeights::new(co, kdim, |o, r| wmat[o * kdim + r]);
    conv_direct_packed(g, x, &wp, bias, y, acc);
}

/// Weights packed for the register tile: `[row block][kdim][MR]`, i.e.
/// `data[(cb·kdim + r)·MR + m] = W[cb·MR + m, r]`, zero for rows `≥ co`. Packing once
/// and reusing the result is what lets callers with many small products (the MLP row
/// blocks) avoid re-packing per product.
pub(crate) struct PackedWeights {
    co: usize,
    kdim: usize,
    data: Scratch<f32>,
}

impl PackedWeights {
    /// Packs `W [co, kdim]` given element-wise by `wt(o, r)` (so a transposed matrix
    /// needs no copy first).
    pub(crate) fn new(co: usize, kdim: usize, wt: impl Fn(usize, usize) -> f32) -> Self {
        let mut data = Scratch::<f32>::new(co.div_ceil(MR) * kdim * MR);
        for (cb, wb) in data.chunks_exact_mut((kdim * MR).max(1)).enumerate() {
            for (r, wr) in wb.chunks_exact_mut(MR).enumerate() {
                for (m, v) in wr.iter_mut().enumerate() {
                    let o = cb * MR + m;
                    *v = if o < co { wt(o, r) } else { 0.0 };
                }
            }
        }
        PackedWeights { co, kdim, data }
    }
}

/// `y[o, j] = Σ_c W[o, c]·x[c, j] (+ bias[o])` for feature-major matrices `x [ci, n]`
/// and `y [co, n]` (row-major, `n` columns), `W [co, ci]` packed in `wp`: the kernel as
/// a 1×1 convolution of one `1 × n` image, on the calling thread. Each element is
/// summed in increasing `c`, then the bias is added; columns never interact.
///
/// # Panics
///
/// If the kernel is not [`available`], `n` is not a multiple of 16, or a length does
/// not match.
pub(crate) fn matmul_fm(
    ci: usize,
    n: usize,
    x: &[f32],
    wp: &PackedWeights,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let g = Conv2dGeom {
        batch: 1,
        cin: ci,
        cout: wp.co,
        h: 1,
        w: n,
        k: 1,
    };
    conv_direct_packed(&g, x, wp, bias, y, false);
}

/// [`conv_direct`] with weights packed by [`PackedWeights::new`] (`g.cout` = `wp.co`,
/// im2col row `r = c·k² + tap`).
fn conv_direct_packed(
    g: &Conv2dGeom,
    x: &[f32],
    wp: &PackedWeights,
    bias: Option<&[f32]>,
    y: &mut [f32],
    acc: bool,
) {
    let Conv2dGeom {
        batch,
        cin: ci,
        h,
        w,
        k,
        ..
    } = *g;
    assert_eq!(
        g.cout, wp.co,
        "conv_direct: packed weights for another cout"
    );
    assert!(available(), "conv_direct: needs AVX-512F");
    assert!(
        suits(h, w, k),
        "conv_direct: h·w = {h}·{w} must be a multiple of 16"
    );
    let (hw, kk, co) = (h * w, k * k, wp.co);
    let kdim = ci * kk;
    assert_eq!(
        wp.kdim, kdim,
        "conv_direct: packed weights for another ci·k²"
    );
    assert_eq!(x.len(), batch * ci * hw, "conv_direct: x length");
    assert_eq!(y.len(), batch * co * hw, "conv_direct: y length");
    if let Some(b) = bias {
        assert_eq!(b.len(), co, "conv_direct: bias length");
    }
    assert!(ci > 0, "conv_direct: no input channels");
    if batch == 0 || co == 0 {
        return;
    }
    let blocks = co.div_ceil(MR);
    let wp: &[f32] = &wp.data;
    let taps = Taps::cached(h, w, k);
    let taps: &Taps = &taps;
    let vecs_per_img = hw / LANES;
    let group = MIN_TASK_VECS
        .div_ceil(vecs_per_img)
        .min(batch.div_ceil(MIN_TASKS))
        .max(1);
    y.par_chunks_mut(group * co * hw)
        .zip(x.par_chunks(group * ci * hw))
        .for_each(|(yg, xg)| {
            let nvec = xg.len() / (ci * hw) * vecs_per_img;
            let mut v0 = 0;
            while v0 < nvec {
                let nv = (nvec - v0).min(NV);
                // (sample in group, first pixel) of each vector of the tile.
                let pos: [(usize, usize); NV] = std::array::from_fn(|v| {
                    let g = v0 + v.min(nv - 1);
                    (g / vecs_per_img, g % vecs_per_img * LANES)
                });
                for cb in 0..blocks {
                    let rows = MR.min(co - cb * MR);
                    let out = Out {
                        rows,
                        // Rows past `co` (padding) point at the last valid row; unused.
                        offs: std::array::from_fn(|m| {
                            std::array::from_fn(|v| {
                                let (n, p) = pos[v];
                                (n * co + cb * MR + m.min(rows - 1)) * hw + p
                            })
                        }),
                        bias: std::array::from_fn(|m| match bias {
                            Some(b) if m < rows => b[cb * MR + m],
                            _ => 0.0,
                        }),
                        acc,
                    };
                    let wblk = &wp[cb * kdim * MR..(cb + 1) * kdim * MR];
                    match nv {
                        1 => run_tile::<1>(xg, ci, hw, taps, &pos, wblk, yg, &out),
                        2 => run_tile::<2>(xg, ci, hw, taps, &pos, wblk, yg, &out),
                        _ => run_tile::<NV>(xg, ci, hw, taps, &pos, wblk, yg, &out),
                    }
                }
                v0 += nv;
            }
        });
}

/// Where a tile's results go: for output row `m < rows` of the block and vector `v`,
/// the 16 elements at `offs[m][v]` of the output slice become `sum + bias[m]`, or
/// `old + (sum + bias[m])` if `acc`.
struct Out {
    rows: usize,
    offs: [[usize; NV]; MR],
    bias: [f32; MR],
    acc: bool,
}

/// Safe front of [`tile`]: checks what `tile`'s contract needs and calls it.
fn run_tile<const V: usize>(
    xg: &[f32],
    ci: usize,
    hw: usize,
    taps: &Taps,
    pos: &[(usize, usize); NV],
    wblk: &[f32],
    y: &mut [f32],
    out: &Out,
) {
    let kk = taps.kk;
    assert!(V <= NV && wblk.len() == ci * kk * MR && taps.offs.len() == kk);
    assert!(out.rows <= MR);
    for offs in &out.offs[..out.rows] {
        assert!(offs[..V].iter().all(|&o| o + LANES <= y.len()));
    }
    let src: [*const f32; V] = std::array::from_fn(|v| {
        let (n, p) = pos[v];
        assert!(p % LANES == 0 && p < hw && (n + 1) * ci * hw <= xg.len());
        xg[n * ci * hw + p..].as_ptr()
    });
    let masks: [&[u16]; V] = std::array::from_fn(|v| {
        let q = pos[v].1 / LANES;
        &taps.masks[q * kk..(q + 1) * kk]
    });
    #[cfg(target_arch = "x86_64")]
    {
        assert!(available());
        // SAFETY: AVX-512F is available (checked above). For every channel c < ci,
        // tap t and lane l whose bit is set in masks[v][t], the element
        // src[v] + c·hw + offs[t] + l is pixel 16q + l of channel c of sample n
        // shifted by tap t, which the mask construction (`Taps::new`) guarantees to be
        // inside that channel's `hw` elements, i.e. inside `xg` (asserted: the sample's
        // `ci·hw` elements lie in `xg`). `wblk` has `ci·kk·MR` elements and `offs`
        // `kk` (asserted). Every written range `out.offs[m][v] .. + 16`, `m < rows`,
        // `v < V`, lies in `y` (asserted), an exclusive borrow.
        unsafe {
            tile::<V>(
                src,
                masks,
                &taps.offs,
                ci,
                hw,
                wblk.as_ptr(),
                y.as_mut_ptr(),
                out,
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (src, masks, y, out);
        unreachable!("conv_direct: x86-64 only");
    }
}

/// The register tile: `s[m][v][l] = Σ_{c < ci} Σ_{t < kk} wblk[(c·kk + t)·MR + m] ·
/// (lane l of mask[v][t] set ? src[v][c·hw + offs[t] + l] : 0)`, summed in `(c, t)` order,
/// then for `m < out.rows`: `y[out.offs[m][v] + l] = s + out.bias[m]` (or `+=` if
/// `out.acc`).
///
/// # Safety
///
/// * The CPU supports AVX-512F.
/// * `offs.len() == masks[v].len()` (= `kk`) for every `v`, and `wblk` points to
///   `ci·kk·MR` readable `f32`.
/// * For every `v < V`, `c < ci`, `t < kk` and every lane `l < 16` whose bit is set in
///   `masks[v][t]`, the element at `src[v] + c·hw + offs[t] + l` is readable (in bounds
///   of one live allocation). Lanes whose bit is clear are never accessed (masked loads
///   suppress the access and its faults), so their addresses may lie anywhere; they are
///   formed with `wrapping_offset` and never dereferenced.
/// * For every `m < out.rows ≤ MR` and `v < V`, the 16 elements at
///   `y + out.offs[m][v]` are readable and writable, and nothing else accesses them
///   during the call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const V: usize>(
    src: [*const f32; V],
    masks: [&[u16]; V],
    offs: &[isize],
    ci: usize,
    hw: usize,
    wblk: *const f32,
    y: *mut f32,
    out: &Out,
) {
    use std::arch::x86_64::*;
    let kk = offs.len();
    let mut accs = [[_mm512_setzero_ps(); V]; MR];
    let mut wr = wblk;
    for c in 0..ci {
        let cofs = (c * hw) as isize;
        for t in 0..kk {
            let off = cofs + offs[t];
            let b: [__m512; V] = std::array::from_fn(|v| {
                // SAFETY: the lanes set in masks[v][t] are readable (contract above);
                // the others are not accessed.
                unsafe { _mm512_maskz_loadu_ps(masks[v][t], src[v].wrapping_offset(off)) }
            });
            for (m, am) in accs.iter_mut().enumerate() {
                // SAFETY: wr + m < wblk + ci·kk·MR (contract above).
                let a = _mm512_set1_ps(unsafe { *wr.add(m) });
                for v in 0..V {
                    am[v] = _mm512_fmadd_ps(a, b[v], am[v]);
                }
            }
            // SAFETY: at most ci·kk·MR past wblk (one past the end after the last tap).
            wr = unsafe { wr.add(MR) };
        }
    }
    for (m, am) in accs.iter().enumerate().take(out.rows) {
        let b = _mm512_set1_ps(out.bias[m]);
        for (v, &s) in am.iter().enumerate() {
            // SAFETY: y + offs[m][v] .. + 16 is readable and writable (contract above).
            unsafe {
                let p = y.add(out.offs[m][v]);
                let r = _mm512_add_ps(s, b);
                let r = if out.acc {
                    _mm512_add_ps(_mm512_loadu_ps(p), r)
                } else {
                    r
                };
                _mm512_storeu_ps(p, r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::ops::testutil::*;

    /// The f64 reference convolution of the f32 inputs.
    fn naive(g: &Conv2dGeom, x: &[f32], wm: &[f32], b: Option<&[f32]>) -> Vec<f64> {
        let b = b.map(to_f64);
        naive_conv_forward(g, &to_f64(x), &to_f64(wm), b.as_deref())
    }

    /// The geometry `(batch, cin, cout, h, w, k)`.
    fn geom((batch, cin, cout, h, w, k): (usize, usize, usize, usize, usize, usize)) -> Conv2dGeom {
        Conv2dGeom {
            batch,
            cin,
            cout,
            h,
            w,
            k,
        }
    }

    #[test]
    fn masks_and_offsets() {
        // 4×4 image, k = 3: the vector is the whole image.
        let t = Taps::new(4, 4, 3);
        assert_eq!(t.offs, vec![-5, -4, -3, -1, 0, 1, 3, 4, 5]);
        // Tap (−1, −1): rows 1..4, columns 1..4 valid.
        assert_eq!(t.masks[0], 0b1110_1110_1110_0000);
        // Centre tap: all lanes.
        assert_eq!(t.masks[4], 0xFFFF);
        // Tap (+1, +1): rows 0..3, columns 0..3.
        assert_eq!(t.masks[8], 0b0000_0111_0111_0111);
        // 8 × 2 image (16 pixels, two per row), tap (0, +1): only column 0 of each row.
        let t = Taps::new(8, 2, 3);
        assert_eq!(t.masks[5], 0b0101_0101_0101_0101);
    }

    #[test]
    fn matches_naive() {
        if !available() {
            eprintln!("conv_direct: no AVX-512F on this CPU, kernel not tested here");
            return;
        }
        // (batch, ci, co, h, w, k): vector tails of 1 and 2, co not a multiple of 8,
        // images of one vector (4×4), narrow (2 wide) and wide (32 wide) rows, k = 1, 5.
        for (i, &(b, ci, co, h, w, k)) in [
            (3, 5, 9, 4, 4, 3),
            (2, 3, 16, 8, 8, 3),
            (1, 2, 3, 8, 2, 3),
            (5, 7, 24, 4, 8, 3),
            (2, 4, 17, 32, 32, 3),
            (3, 6, 11, 16, 16, 1),
            (2, 3, 8, 8, 8, 5),
            (7, 1, 12, 4, 4, 3),
        ]
        .iter()
        .enumerate()
        {
            let mut r = rng(40 + i as u64);
            let x = to_f32(&rand_vec(&mut r, b * ci * h * w));
            let wm = to_f32(&rand_vec(&mut r, co * ci * k * k));
            let bias = to_f32(&rand_vec(&mut r, co));
            let g = geom((b, ci, co, h, w, k));
            let want = naive(&g, &x, &wm, Some(&bias));
            let what = format!("direct ({b}, {ci}, {co}, {h}, {w}, {k})");
            let mut y = vec![f32::NAN; want.len()];
            conv_direct(&g, &x, &wm, Some(&bias), &mut y, false);
            assert_close(&to_f64(&y), &want, 1e-6, &what);
            // acc = true adds to what is there; no bias.
            let base = to_f32(&rand_vec(&mut r, want.len()));
            let mut ya = base.clone();
            conv_direct(&g, &x, &wm, None, &mut ya, true);
            let nob = naive(&g, &x, &wm, None);
            let want_a: Vec<f64> = nob.iter().zip(&base).map(|(v, &s)| v + s as f64).collect();
            assert_close(&to_f64(&ya), &want_a, 1e-6, &format!("{what} acc"));
        }
    }

    #[test]
    fn matmul_fm_matches_naive_with_transposed_weights() {
        if !available() {
            return;
        }
        let (ci, co, n) = (13, 11, 48);
        let mut r = rng(9);
        let x = to_f32(&rand_vec(&mut r, ci * n));
        let wtr = to_f32(&rand_vec(&mut r, ci * co)); // stored [ci, co]: W = wtrᵀ
        let bias = to_f32(&rand_vec(&mut r, co));
        let mut y = vec![f32::NAN; co * n];
        let wp = PackedWeights::new(co, ci, |o, c| wtr[c * co + o]);
        matmul_fm(ci, n, &x, &wp, Some(&bias), &mut y);
        let mut want = vec![0.0f64; co * n];
        for o in 0..co {
            for j in 0..n {
                want[o * n + j] = bias[o] as f64
                    + (0..ci)
                        .map(|c| wtr[c * co + o] as f64 * x[c * n + j] as f64)
                        .sum::<f64>();
            }
        }
        assert_close(&to_f64(&y), &want, 1e-6, "matmul_fm");
    }

    #[test]
    fn taps_cache_returns_the_tables_of_the_key() {
        for &(h, w, k) in &[(4, 4, 3), (8, 2, 3), (16, 16, 1), (4, 4, 3), (32, 32, 5)] {
            let c = Taps::cached(h, w, k);
            let f = Taps::new(h, w, k);
            assert_eq!((c.kk, &c.offs, &c.masks), (f.kk, &f.offs, &f.masks));
        }
        for i in 0..2 * TAPS_CACHED {
            let _ = Taps::cached(1, 16 * (i + 1), 1);
        }
        TAPS.with(|c| assert_eq!(c.borrow().len(), TAPS_CACHED));
    }

    #[test]
    fn thread_and_split_invariant() {
        if !available() {
            return;
        }
        let (b, ci, co, h, w, k) = (9, 6, 10, 8, 8, 3);
        let mut r = rng(77);
        let x = to_f32(&rand_vec(&mut r, b * ci * h * w));
        let wm = to_f32(&rand_vec(&mut r, co * ci * k * k));
        let run = |x: &[f32], nb: usize| {
            let mut y = vec![0f32; nb * co * h * w];
            conv_direct(&geom((nb, ci, co, h, w, k)), x, &wm, None, &mut y, false);
            y
        };
        let whole = run(&x, b);
        assert_thread_invariant(
            "conv_direct",
            || vec![run(&x, b)],
            |a, bb, what| assert_bits_eq(a, bb, what),
        );
        // Any batch split gives the same bits (per-sample sums in a fixed order).
        let s = 4 * ci * h * w;
        let (first, second) = (run(&x[..s], 4), run(&x[s..], b - 4));
        let joined: Vec<f32> = first.into_iter().chain(second).collect();
        assert_bits_eq(&joined, &whole, "batch split");
    }
}
