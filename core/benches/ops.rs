//! Benchmarks of the CPU layer kernels (plain `harness = false` binary).
//!
//! `cargo bench -p hatebm-core --bench ops [-- FILTER]` prints, for each case, the median
//! wall time over several repetitions and the throughput in GFLOP/s (2 × multiply-adds),
//! the best run's GFLOP/s, and GFLOP/s per busy core from the process's CPU time (for
//! runs over 20 ms; robust to a shared machine; idle rayon workers spinning count as
//! busy, so it is a lower bound).
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

/// CPU time (ns) consumed so far by all threads of this process (Linux `schedstat`), so
/// that throughput per busy core can be reported even when other jobs share the machine.
fn cpu_ns() -> Option<u64> {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Timing summary of one case: median and minimum wall time, median CPU time (seconds).
struct Timing {
    median: f64,
    min: f64,
    cpu: Option<f64>,
}

/// Times `reps` runs after one warm-up run.
fn median_secs(reps: usize, mut f: impl FnMut()) -> Timing {
    f(); // warm-up: grows the scratch buffers, faults in pages
    let mut wall = Vec::with_capacity(reps);
    let mut cpu = Vec::with_capacity(reps);
    for _ in 0..reps {
        let c0 = cpu_ns();
        let s = Instant::now();
        f();
        wall.push(s.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (c0, cpu_ns()) {
            cpu.push((b - a) as f64 * 1e-9);
        }
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let median = wall[reps / 2];
    // schedstat advances in scheduler ticks: only meaningful for runs of tens of ms.
    let cpu = (cpu.len() == reps && median > 0.02).then(|| cpu[reps / 2]);
    Timing {
        median,
        min: wall[0],
        cpu,
    }
}

fn report(name: &str, flops: f64, t: Timing) {
    let g = |secs: f64| flops / secs / 1e9;
    let core = t
        .cpu
        .map_or("     -".to_string(), |c| format!("{:>6.1}", g(c)));
    println!(
        "{name:<46} {:>9.3} ms {:>7.1} GFLOP/s  (best {:>6.1}, per busy core {core})",
        t.median * 1e3,
        g(t.median),
        g(t.min)
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
