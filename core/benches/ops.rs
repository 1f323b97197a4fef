//! Benchmarks of the CPU layer kernels (plain `harness = false` binary).
//!
//! `cargo bench -p hatebm-core --bench ops [-- FILTER]` prints, for each case, the median
//! wall time over several repetitions and the throughput in GFLOP/s (2 × multiply-adds).
//! Runs in rayon's global pool (all cores); set `RAYON_NUM_THREADS=1` for per-core
//! numbers. Set `HATEBM_BENCH_REPS` to change the repetition count (default 9).

use std::hint::black_box;
use std::time::Instant;

use hatebm_core::cpu::ops::{
    Conv2dGeom, conv2d_backward_input, conv2d_backward_params, conv2d_forward, gemm_nn,
    linear_backward_input, linear_backward_params, linear_forward,
};

/// Deterministic pseudo-random values in [-1, 1) (xorshift; the bench needs no quality).
fn fill(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: grows the scratch buffers, faults in pages
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

fn report(name: &str, flops: f64, secs: f64) {
    println!(
        "{name:<58} {:>9.3} ms {:>8.1} GFLOP/s",
        secs * 1e3,
        flops / secs / 1e9
    );
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let reps: usize = std::env::var("HATEBM_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    println!(
        "hatebm-core ops bench: {} rayon thread(s), median of {reps} runs",
        rayon::current_num_threads()
    );

    // Baseline: one single-threaded GEMM of the im2col shape (the roofline for the convs).
    for &(m, k, n) in &[(64, 576, 1024), (128, 1152, 256)] {
        let name = format!("gemm (1 thread) {m}x{k}x{n}");
        if wanted(&name) {
            let (a, b, mut c) = (fill(m * k, 9), fill(k * n, 10), vec![0.0f32; m * n]);
            let t = median_secs(reps * 4, || {
                gemm_nn(m, k, n, 1.0, black_box(&a), &b, 0.0, &mut c)
            });
            report(&name, 2.0 * (m * k * n) as f64, t);
        }
    }

    let convs = [
        (64, 64, 64, 32, 32),
        (64, 64, 64, 16, 16),
        (32, 3, 128, 32, 32),
        (32, 128, 128, 16, 16),
        (64, 128, 128, 8, 8),
        (32, 128, 3, 32, 32),
    ];
    for &(batch, cin, cout, h, w) in &convs {
        let g = Conv2dGeom {
            batch,
            cin,
            cout,
            h,
            w,
            k: 3,
        };
        let tag = format!("conv3x3 b{batch} {cin}->{cout} {h}x{w}");
        let flops = 2.0 * g.macs() as f64;
        let x = fill(g.x_len(), 1);
        let wt = fill(g.w_len(), 2);
        let b = fill(cout, 3);
        let dy = fill(g.y_len(), 4);
        let mut y = vec![0.0f32; g.y_len()];
        let mut dx = vec![0.0f32; g.x_len()];
        let mut dw = vec![0.0f32; g.w_len()];
        let mut db = vec![0.0f32; cout];
        let name = format!("{tag} forward");
        if wanted(&name) {
            let t = median_secs(reps, || {
                conv2d_forward(&g, black_box(&x), &wt, Some(&b), &mut y)
            });
            report(&name, flops, t);
        }
        let name = format!("{tag} backward_input");
        if wanted(&name) {
            let t = median_secs(reps, || {
                conv2d_backward_input(&g, black_box(&dy), &wt, &mut dx, false)
            });
            report(&name, flops, t);
        }
        let name = format!("{tag} backward_params");
        if wanted(&name) {
            let t = median_secs(reps, || {
                conv2d_backward_params(&g, black_box(&x), &dy, &mut dw, Some(&mut db))
            });
            report(&name, flops, t);
        }
        black_box((&y, &dx, &dw, &db));
    }

    for &(batch, din, dout) in &[(64, 1024, 1024), (256, 2, 32)] {
        let tag = format!("linear b{batch} {din}->{dout}");
        let flops = 2.0 * (batch * din * dout) as f64;
        let x = fill(batch * din, 5);
        let wt = fill(dout * din, 6);
        let b = fill(dout, 7);
        let dy = fill(batch * dout, 8);
        let (mut y, mut dx, mut dw, mut db) = (
            vec![0.0f32; batch * dout],
            vec![0.0f32; batch * din],
            vec![0.0f32; dout * din],
            vec![0.0f32; dout],
        );
        let name = format!("{tag} forward");
        if wanted(&name) {
            report(
                &name,
                flops,
                median_secs(reps, || {
                    linear_forward(batch, din, dout, black_box(&x), &wt, Some(&b), &mut y)
                }),
            );
        }
        let name = format!("{tag} backward_input");
        if wanted(&name) {
            report(
                &name,
                flops,
                median_secs(reps, || {
                    linear_backward_input(batch, din, dout, black_box(&dy), &wt, &mut dx, false)
                }),
            );
        }
        let name = format!("{tag} backward_params");
        if wanted(&name) {
            report(
                &name,
                flops,
                median_secs(reps, || {
                    linear_backward_params(
                        batch,
                        din,
                        dout,
                        black_box(&x),
                        &dy,
                        &mut dw,
                        Some(&mut db),
                    )
                }),
            );
        }
        black_box((&y, &dx, &dw, &db));
    }
}
