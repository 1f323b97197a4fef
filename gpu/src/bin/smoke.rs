//! `hatebm-tch-smoke`: the first thing to run on a new (GPU) machine.
//!
//! Prints the libtorch version, where the binary looks for libtorch, CUDA
//! availability and the device count; then builds an SN-GAN-32 energy on each
//! requested backend, runs K Langevin steps (after one warm-up call) and
//! reports the median milliseconds per step over R calls.
//!
//! ```text
//! hatebm-tch-smoke [--backends tch:cpu,tch:cuda:0,cpu] [--nch 3] [--ngf 64]
//!                  [--batch 16] [--steps 10] [--repeat 3] [--noise portable|device]
//!                  [--tf32] [--cudnn-benchmark] [--json out.json]
//! ```
//! `--noise device` draws the Langevin noise with libtorch's generator on the
//! device instead of the portable host stream; `--tf32` allows TF32 in cuDNN /
//! cuBLAS; `--cudnn-benchmark` turns cuDNN's autotuner on (and deterministic
//! algorithms off) — see `docs/tch-backend.md`.
//! The default backends are `tch:cpu` and every visible CUDA device. `cpu` is
//! the CPU reference backend (for comparison). Exit status 1 on any failure.

use std::process::ExitCode;
use std::time::Instant;

use hatebm_core::BackendSpec;
use hatebm_core::nets::{BuildNets, EnergyArch};
use hatebm_core::noise::{NoiseKey, SeededNoise, Stream};
use hatebm_core::sampler::{ChainKey, Chains, LangevinConfig, LangevinSampler};
use hatebm_tch::{NoiseMode, TchBackend, TchDevice, TchOptions, cuda_available, cuda_device_count};

#[derive(Debug)]
struct Args {
    backends: Vec<BackendSpec>,
    nch: usize,
    ngf: usize,
    batch: usize,
    steps: usize,
    repeat: usize,
    json: Option<String>,
    options: TchOptions,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        backends: Vec::new(),
        nch: 3,
        ngf: 64,
        batch: 16,
        steps: 10,
        repeat: 3,
        json: None,
        options: TchOptions::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--backends" => {
                a.backends = val()?
                    .split(',')
                    .map(|s| s.parse::<BackendSpec>().map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?;
            }
            "--nch" => a.nch = num(val()?)?,
            "--ngf" => a.ngf = num(val()?)?,
            "--batch" => a.batch = num(val()?)?,
            "--steps" => a.steps = num(val()?)?,
            "--repeat" => a.repeat = num(val()?)?.max(1),
            "--json" => a.json = Some(val()?),
            "--noise" => {
                a.options.noise = match val()?.as_str() {
                    "portable" => NoiseMode::Portable,
                    "device" => NoiseMode::Device,
                    other => return Err(format!("--noise: unknown mode {other}")),
                }
            }
            "--tf32" => a.options.allow_tf32 = true,
            "--cudnn-benchmark" => a.options.deterministic = false,
            "-h" | "--help" => {
                println!(
                    "hatebm-tch-smoke [--backends tch:cpu,tch:cuda:0,cpu] [--nch 3] [--ngf 64] \
                     [--batch 16] [--steps 10] [--repeat 3] [--noise portable|device] [--tf32] \
                     [--cudnn-benchmark] [--json out.json]"
                );
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.backends.is_empty() {
        a.backends.push(BackendSpec::TchCpu);
        for n in 0..cuda_device_count() {
            a.backends.push(BackendSpec::TchCuda(n));
        }
    }
    Ok(a)
}

/// Median ms/step, energy mean of the last call, and the backend's name.
fn run<B: BuildNets>(be: &B, a: &Args) -> hatebm_core::Result<(f64, f64, Vec<f64>)> {
    let arch = EnergyArch::Sngan {
        res: 32,
        nch: a.nch,
        ngf: a.ngf,
    };
    let energy = be.build_energy(&arch, 0)?;
    let sampler = LangevinSampler::new(LangevinConfig {
        steps: a.steps,
        ..LangevinConfig::default()
    })?;
    let shape = [a.batch, a.nch, 32, 32];
    let mut y0 = be.zeros(&shape)?;
    be.fill_normal(&mut y0, NoiseKey::new(0, Stream::User, [0, 0]))?;
    be.scale(&mut y0, 0.5)?;
    let mut per_step = Vec::new();
    let mut last_energy = f64::NAN;
    for call in 0..=a.repeat {
        let mut chains = Chains {
            z: None,
            y: y0.clone(),
        };
        be.sync()?;
        let t0 = Instant::now();
        let stats = sampler.run(
            be,
            energy.as_ref(),
            None,
            &mut chains,
            &mut SeededNoise,
            ChainKey {
                seed: 0,
                iteration: call as u64,
                row_offset: 0,
            },
            None,
        )?;
        be.sync()?;
        let ms = t0.elapsed().as_secs_f64() * 1e3 / a.steps.max(1) as f64;
        if !be.all_finite(&chains.y)? {
            return Err(hatebm_core::Error::NonFinite("chain state".into()));
        }
        last_energy = stats.mean_energy;
        if call > 0 {
            per_step.push(ms); // call 0 is the warm-up
        }
    }
    let mut sorted = per_step.clone();
    sorted.sort_by(f64::total_cmp);
    Ok((sorted[sorted.len() / 2], last_energy, per_step))
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hatebm-tch-smoke: {e}");
            return ExitCode::from(2);
        }
    };
    println!("libtorch version : {}", hatebm_tch::libtorch_version());
    println!("libtorch lib dir : {}", hatebm_tch::libtorch_lib_dir());
    println!("torch threads    : {}", tch::get_num_threads());
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        println!(
            "hint             : on a shared or busy CPU, OMP_WAIT_POLICY=PASSIVE avoids libgomp's \
             spin-waiting (measured 3-8x faster tch:cpu steps on an oversubscribed machine)"
        );
    }
    println!("CUDA available   : {}", cuda_available());
    println!("CUDA devices     : {}", cuda_device_count());
    if cuda_available() {
        println!("cuDNN available  : {}", tch::Cuda::cudnn_is_available());
    }
    println!(
        "model            : EBMSNGAN32(nch={}, ngf={}), batch {}, K = {} Langevin steps, {} timed call(s)",
        a.nch, a.ngf, a.batch, a.steps, a.repeat
    );
    println!(
        "tch options      : noise {:?}, tf32 {}, deterministic cuDNN {}",
        a.options.noise, a.options.allow_tf32, a.options.deterministic
    );
    let mut ok = true;
    let mut rows = Vec::new();
    for spec in &a.backends {
        let res = match spec {
            BackendSpec::Cpu => run(&hatebm_core::cpu::CpuBackend::new(), &a),
            BackendSpec::TchCpu => {
                TchBackend::with_options(TchDevice::Cpu, a.options).and_then(|be| run(&be, &a))
            }
            BackendSpec::TchCuda(n) => TchBackend::with_options(TchDevice::Cuda(*n), a.options)
                .and_then(|be| {
                    if !a.options.deterministic {
                        tch::Cuda::cudnn_set_benchmark(true);
                    }
                    run(&be, &a)
                }),
            BackendSpec::Auto => Err(hatebm_core::Error::InvalidArgument(
                "name a concrete backend instead of auto".into(),
            )),
        };
        match res {
            Ok((ms, e, all)) => {
                println!(
                    "{:<12} {:>10.2} ms/step  (calls: {})  mean energy {e:.6e}",
                    spec.to_string(),
                    ms,
                    all.iter()
                        .map(|v| format!("{v:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                rows.push(format!(
                    "{{\"backend\": \"{spec}\", \"ms_per_step_median\": {ms}, \"ms_per_step\": [{}], \"mean_energy\": {}}}",
                    all.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    if e.is_finite() {
                        e.to_string()
                    } else {
                        "null".into()
                    }
                ));
            }
            Err(e) => {
                ok = false;
                println!("{:<12} FAILED: {e}", spec.to_string());
            }
        }
    }
    if let Some(path) = &a.json {
        let doc = format!(
            "{{\"impl\": \"hatebm-tch\", \"libtorch\": \"{}\", \"noise\": \"{:?}\", \"tf32\": {}, \"cuda_available\": {}, \"cuda_devices\": {}, \"nch\": {}, \"ngf\": {}, \"batch\": {}, \"steps\": {}, \"results\": [{}]}}\n",
            hatebm_tch::libtorch_version(),
            a.options.noise,
            a.options.allow_tf32,
            cuda_available(),
            cuda_device_count(),
            a.nch,
            a.ngf,
            a.batch,
            a.steps,
            rows.join(", ")
        );
        if let Err(e) = std::fs::write(path, doc) {
            eprintln!("hatebm-tch-smoke: cannot write {path}: {e}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
