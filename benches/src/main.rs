//! `hatebm-bench`: the benchmark configurations of the project, on any
//! compiled-in backend, printing one JSON object per configuration (the same
//! keys as `bench/pytorch/bench.py`, so `scripts/bench.sh` can put them side by
//! side).
//!
//! * `T1` MLP energy 2-128-128-128-1, batch 1000;
//! * `T2` SN-GAN EBM 32, 1 channel, ngf 64, batch 64;
//! * `T3` SN-GAN EBM 32, 3 channels, ngf 128, batch 32;
//! * `T4` one conditional Hat EBM iteration (Algorithm 1): K = 20 residual
//!   steps, EBM SN-GAN 32 (1 ch, ngf 64), generator SN-GAN 32 (nz 64, ngf 64),
//!   batch 64, bank 1000, Adam, generator loss on bank samples, bank overwrite.
//!
//! T1–T3 time one *Langevin-equivalent step*: the energy's forward pass plus
//! the gradient w.r.t. the input (`Energy::energy_grad_x_into`, as the sampler
//! calls it, writing into reused buffers). FLOPs are counted
//! as `2 · 2 · forward MACs` per sample (forward + input backward; convolutions
//! and linear layers only), exactly as `bench/pytorch/bench.py` does. T4's
//! GFLOP/s counts only its Langevin part, as the PyTorch script does. Our T4
//! includes drawing the chain noise (ChaCha8, row-addressed); the PyTorch
//! script pre-draws it outside the timer.
//!
//! ```text
//! hatebm-bench [--backend cpu|tch:cpu|tch:cuda:N] [--configs T1,T2,T3,T4] [--repeats N]
//!              [--threads N] [--shards S] [--json-out FILE]
//! ```
//!
//! Data-parallel T4: `--shards S` runs T4 with `dist.shards = S` (the batch
//! as S micro-batches); built with `--features mpi` and started by `mpirun
//! -np R`, the R processes share the S shards, and the row reports the time
//! spent in collectives and the bytes exchanged per iteration (rank 0 prints).

use std::io::Write;
use std::time::Instant;

use std::sync::atomic::{AtomicU64, Ordering};

use hatebm_rs::backend::{Backend, shape};
use hatebm_rs::dist::Communicator;
use hatebm_rs::nets::{BuildNets, EnergyArch, GeneratorArch};
use hatebm_rs::noise::{NoiseKey, SeededNoise, Stream};
use hatebm_rs::optim::AdamConfig;
use hatebm_rs::sampler::LangevinConfig;
use hatebm_rs::train::{TrainConfig, Trainer, TrainerSettings};
use hatebm_rs::{Error, Result};
use serde_json::{Value, json};

/// One energy benchmark configuration.
struct EnergyCase {
    name: &'static str,
    arch: EnergyArch,
    batch: usize,
}

fn energy_cases() -> Vec<EnergyCase> {
    vec![
        EnergyCase {
            name: "T1",
            arch: EnergyArch::Mlp {
                dims: vec![2, 128, 128, 128, 1],
            },
            batch: 1000,
        },
        EnergyCase {
            name: "T2",
            arch: EnergyArch::Sngan {
                res: 32,
                nch: 1,
                ngf: 64,
            },
            batch: 64,
        },
        EnergyCase {
            name: "T3",
            arch: EnergyArch::Sngan {
                res: 32,
                nch: 3,
                ngf: 128,
            },
            batch: 32,
        },
    ]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Times `f` (one unit of work): warm-up, then `repeats` timed repeats of
/// enough units to last ~`target` seconds each; returns the median seconds per unit.
fn time_units<B: Backend>(
    be: &B,
    repeats: usize,
    target: f64,
    mut f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    f()?;
    be.sync()?;
    let t = Instant::now();
    f()?;
    be.sync()?;
    let one = t.elapsed().as_secs_f64().max(1e-6);
    let units = ((target / one).ceil() as usize).clamp(1, 10_000);
    let mut per = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        for _ in 0..units {
            f()?;
        }
        be.sync()?;
        per.push(t.elapsed().as_secs_f64() / units as f64);
    }
    Ok(median(&mut per))
}

fn bench_energy<B: BuildNets>(be: &B, c: &EnergyCase, repeats: usize) -> Result<Value> {
    let energy = be.build_energy(&c.arch, 0)?;
    let sample = c.arch.sample_shape();
    let mut x = be.zeros(&shape::batched(c.batch, &sample))?;
    be.fill_normal(&mut x, NoiseKey::new(1, Stream::User, [0, 0]))?;
    // The sampler's hot path: results written into reused buffers.
    let (mut e, mut g) = (be.zeros(&[c.batch])?, be.zeros(&be.shape(&x))?);
    let sec = time_units(be, repeats, 1.0, || {
        energy.energy_grad_x_into(&x, &mut e, &mut g)
    })?;
    let macs = c.arch.forward_macs_per_sample()?;
    let flops = 4.0 * macs as f64 * c.batch as f64;
    Ok(json!({
        "config": c.name,
        "description": c.arch.describe(),
        "batch": c.batch,
        "sec_per_step": sec,
        "samples_steps_per_s": c.batch as f64 / sec,
        "gflops": flops / sec / 1e9,
        "macs_per_sample": macs,
    }))
}

/// A communicator that times its collectives and counts the bytes it receives.
#[derive(Debug)]
struct TimedComm {
    inner: Box<dyn Communicator>,
    nanos: std::sync::Arc<AtomicU64>,
    bytes: std::sync::Arc<AtomicU64>,
}

impl Communicator for TimedComm {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn all_gather(&self, local: &[u8], out: &mut [u8]) -> Result<()> {
        let t = Instant::now();
        let r = self.inner.all_gather(local, out);
        self.nanos
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(out.len() as u64, Ordering::Relaxed);
        r
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        let t = Instant::now();
        let r = self.inner.all_reduce_sum_f32(buf);
        self.nanos
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.bytes
            .fetch_add(4 * buf.len() as u64, Ordering::Relaxed);
        r
    }
}

/// This process's communicator: MPI under an MPI launcher (feature `mpi`).
fn communicator() -> Result<Box<dyn Communicator>> {
    #[cfg(feature = "mpi")]
    if hatebm_rs::dist::launcher_rank_and_size().is_some_and(|(_, n)| n > 1) {
        return Ok(Box::new(hatebm_rs::dist::MpiComm::world()?));
    }
    Ok(Box::new(hatebm_rs::dist::SingleProcess))
}

fn bench_tandem<B: BuildNets>(
    be: &B,
    repeats: usize,
    shards: usize,
    comm: Box<dyn Communicator>,
) -> Result<Value> {
    let (batch, bank, k) = (64usize, 1000usize, 20usize);
    let e_arch = EnergyArch::Sngan {
        res: 32,
        nch: 1,
        ngf: 64,
    };
    let g_arch = GeneratorArch::Sngan {
        res: 32,
        nz: 64,
        ngf: 64,
        nch: 1,
        out_factor: 2.0,
    };
    let settings = TrainerSettings::new(
        TrainConfig {
            batch_size: batch,
            bank_size: bank,
            gen_loss_factor: 1000.0,
            data_epsilon: 1e-3,
            ..TrainConfig::default()
        },
        LangevinConfig {
            steps: k,
            temperature: 1e-3,
            eps_res: 5e-4,
            clip_res: Some(2.5),
            ..LangevinConfig::default()
        },
        AdamConfig {
            lr: 1e-4,
            ..AdamConfig::default()
        },
        AdamConfig {
            lr: 1e-4,
            ..AdamConfig::default()
        },
        0,
    );
    let mut settings = settings;
    settings.dist.shards = shards;
    let energy = be.build_energy(&e_arch, 0)?;
    let generator = be.build_generator(&g_arch, 1)?;
    let (nanos, bytes) = (
        std::sync::Arc::new(AtomicU64::new(0)),
        std::sync::Arc::new(AtomicU64::new(0)),
    );
    let comm = TimedComm {
        inner: comm,
        nanos: std::sync::Arc::clone(&nanos),
        bytes: std::sync::Arc::clone(&bytes),
    };
    let ranks = comm.size();
    let mut trainer = Trainer::new_distributed(
        be.clone(),
        settings,
        energy,
        Some(generator),
        &mut SeededNoise,
        Box::new(comm),
    )?;
    let grad_bytes = 4
        * (trainer.energy().params().num_trainable()
            + trainer
                .generator()
                .map_or(0, |g| g.params().num_trainable()));
    let mut data = be.zeros(&shape::batched(batch, &e_arch.sample_shape()))?;
    be.fill_normal(&mut data, NoiseKey::new(2, Stream::User, [0, 0]))?;
    let mut last_langevin = 0.0;
    let mut phases: Vec<[f64; 3]> = Vec::new();
    let mut steps = 0u64;
    // Ranks must take the same number of steps: one step per repeat.
    let target = if ranks > 1 { 0.0 } else { 0.1 };
    let sec = time_units(be, repeats, target, || {
        steps += 1;
        let s = trainer.step(&data, &mut SeededNoise)?;
        last_langevin = s.langevin.steps as f64;
        phases.push([
            s.seconds_langevin,
            s.seconds_ebm_update,
            s.seconds_gen_update,
        ]);
        Ok(())
    })?;
    let phase = |i: usize| median(&mut phases.iter().map(|p| p[i]).collect::<Vec<_>>());
    let (t_l, t_e, t_g) = (phase(0), phase(1), phase(2));
    let comm_sec = nanos.load(Ordering::Relaxed) as f64 * 1e-9 / steps.max(1) as f64;
    let comm_bytes = bytes.load(Ordering::Relaxed) as f64 / steps.max(1) as f64;
    eprintln!(
        "     T4 phases (median s): langevin {t_l:.3}, ebm update {t_e:.3}, gen update {t_g:.3}"
    );
    let langevin_flops = 4.0 * e_arch.forward_macs_per_sample()? as f64 * batch as f64 * k as f64;
    Ok(json!({
        "config": "T4",
        "description": format!("train iter K {k}, {}, {}", e_arch.describe(), g_arch.describe()),
        "batch": batch,
        "bank": bank,
        "mcmc_steps": last_langevin,
        "sec_per_step": sec,
        "samples_steps_per_s": (batch * k) as f64 / sec,
        "gflops": langevin_flops / sec / 1e9,
        "seconds_langevin": t_l,
        "shards": shards,
        "ranks": ranks,
        "comm_seconds_per_step": comm_sec,
        "comm_bytes_received_per_step": comm_bytes,
        "grad_bytes": grad_bytes,
        "seconds_ebm_update": t_e,
        "seconds_gen_update": t_g,
    }))
}

fn run<B: BuildNets>(
    be: &B,
    configs: &[String],
    repeats: usize,
    shards: usize,
    out: &mut Vec<Value>,
) -> Result<()> {
    let mut comm = Some(communicator()?);
    let root = comm.as_ref().is_none_or(|c| c.rank() == 0);
    for name in configs {
        let mut row = if name == "T4" {
            let c = comm
                .take()
                .ok_or_else(|| Error::InvalidArgument("T4 may be given once".into()))?;
            bench_tandem(be, repeats, shards, c)?
        } else {
            let c = energy_cases()
                .into_iter()
                .find(|c| c.name == name)
                .ok_or_else(|| Error::InvalidArgument(format!("unknown config {name}")))?;
            bench_energy(be, &c, repeats)?
        };
        row["backend"] = json!(be.name());
        row["threads"] = json!(rayon::current_num_threads());
        row["repeats"] = json!(repeats);
        if !root {
            continue;
        }
        eprintln!(
            "{:<3} {:<10} {:>10.3} ms/step {:>12.0} samples·steps/s {:>8.1} GFLOP/s   {}",
            row["config"].as_str().unwrap_or(""),
            be.name(),
            1e3 * row["sec_per_step"].as_f64().unwrap_or(0.0),
            row["samples_steps_per_s"].as_f64().unwrap_or(0.0),
            row["gflops"].as_f64().unwrap_or(0.0),
            row["description"].as_str().unwrap_or("")
        );
        println!("{row}");
        out.push(row);
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str| -> Option<String> {
        let i = args.iter().position(|a| a == flag)?;
        let v = args.get(i + 1).cloned();
        args.drain(i..(i + 2).min(args.len()));
        v
    };
    let backend = take("--backend").unwrap_or_else(|| "cpu".into());
    let configs: Vec<String> = take("--configs")
        .unwrap_or_else(|| "T1,T2,T3,T4".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let repeats: usize = take("--repeats").and_then(|v| v.parse().ok()).unwrap_or(5);
    let json_out = take("--json-out");
    let shards: usize = take("--shards").and_then(|v| v.parse().ok()).unwrap_or(1);
    if let Some(t) = take("--threads").and_then(|v| v.parse::<usize>().ok()) {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global();
    }
    let mut rows = Vec::new();
    let result = match backend.as_str() {
        "cpu" => run(
            &hatebm_rs::cpu::CpuBackend::new(),
            &configs,
            repeats,
            shards,
            &mut rows,
        ),
        #[cfg(feature = "tch")]
        "tch:cpu" => run(
            &hatebm_tch::TchBackend::cpu(),
            &configs,
            repeats,
            shards,
            &mut rows,
        ),
        #[cfg(feature = "tch")]
        s if s.starts_with("tch:cuda") => {
            let n = s
                .rsplit(':')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            hatebm_tch::TchBackend::cuda(n)
                .and_then(|be| run(&be, &configs, repeats, shards, &mut rows))
        }
        other => Err(Error::BackendUnavailable {
            name: other.into(),
            hint: "build hatebm-benches with --features tch".into(),
        }),
    };
    if let Some(path) = json_out {
        let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
        if let Err(e) = std::fs::File::create(&path).and_then(|mut f| f.write_all(body.as_bytes()))
        {
            eprintln!("hatebm-bench: cannot write {path}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hatebm-bench: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
