//! `hatebm`: the command-line front end of libhatebm (train, resume, sample,
//! compare runs). Everything goes through the facade crate's public API
//! ([`hatebm_rs::runtime::AnyRun`]); this binary adds what a library must not
//! do on its own: argument parsing (`clap`), a progress bar (`indicatif`, an
//! [`Observer`] of the run) and a logger on stderr (`env_logger`: `RUST_LOG`,
//! default `info`; `HATEBM_DEBUG=1` is `debug`).

mod ood;
mod progress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use hatebm_rs::config::{Config, ConfigBuilder, presets};
use hatebm_rs::dist::Communicator;
use hatebm_rs::run::Observer;
use hatebm_rs::runtime::AnyRun;
use hatebm_rs::train::SampleOptions;
use hatebm_rs::{Error, Result, ResultExt};

/// Hat EBM training, sampling and evaluation (Hill et al., NeurIPS 2022).
#[derive(Debug, Parser)]
#[command(name = "hatebm", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where the configuration comes from: a preset or a TOML file, then overrides.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// Start from a built-in preset (see `hatebm presets`); default: digits.
    #[arg(long, value_name = "NAME", conflicts_with = "config")]
    preset: Option<String>,
    /// A TOML configuration (may itself name a preset).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one key, e.g. `--set backend=tch:cuda:0 --set langevin.steps=50`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl ConfigArgs {
    fn given(&self) -> bool {
        self.preset.is_some() || self.config.is_some() || !self.set.is_empty()
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Train (or resume) a run; writes grids, curves, metrics and a checkpoint to output.dir.
    Train {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Train at most N more iterations (default: up to train.steps).
        #[arg(long, value_name = "N")]
        steps: Option<u64>,
        /// Continue exactly from a checkpoint.
        #[arg(long, value_name = "CHECKPOINT")]
        resume: Option<PathBuf>,
    },
    /// Draw samples from a checkpoint (PNG grid + .npy).
    Sample {
        /// The checkpoint to sample from.
        #[arg(long, value_name = "FILE")]
        checkpoint: PathBuf,
        /// Number of samples.
        #[arg(long, default_value_t = 64)]
        n: usize,
        /// Langevin steps (default: the training chain's K; 0 = generator only).
        #[arg(long, value_name = "K")]
        steps: Option<usize>,
        /// The transition: ula (the run's default), mala, hmc or baoab
        /// (docs/samplers.md); T, step sizes and clipping stay the run's.
        #[arg(long, value_name = "METHOD")]
        sampler: Option<String>,
        /// Change one sampler setting of the run (repeatable; `langevin.*` keys only,
        /// after --sampler), e.g. `--set langevin.adapt_steps=50 --set langevin.adapt_mass=true`.
        #[arg(long = "set", value_name = "langevin.KEY=VALUE")]
        sets: Vec<String>,
        /// Sample with the raw weights even if EMA weights exist.
        #[arg(long)]
        no_ema: bool,
        /// Keep the chains' values as they are (default: clamp to the data's range,
        /// `sample.clamp`, and report the fraction clamped).
        #[arg(long)]
        no_clamp: bool,
        /// Seed of the chains' noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder (default: the checkpoint's folder).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Out-of-distribution detection: AUROC of the energy and of the gradient-norm
    /// score, held-out images vs noise, flipped, inverted and zoomed images; writes ood.json.
    Ood {
        #[command(flatten)]
        model: ModelArgs,
        /// Held-out images to score (at most the held-out split's size).
        #[arg(long, default_value_t = 500)]
        n: usize,
        /// Seed of the held-out subset and of the noise sets.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Estimate log Z of the checkpoint's energy at its sampler temperature by annealed
    /// importance sampling (docs/samplers.md); prints the estimate, its standard error and
    /// the effective sample size, and writes ais.json.
    Ais {
        #[command(flatten)]
        model: ModelArgs,
        /// Independent AIS chains.
        #[arg(long, default_value_t = 256)]
        chains: usize,
        /// Intermediate distributions.
        #[arg(long, default_value_t = 200)]
        temperatures: usize,
        /// Transition: mala or hmc.
        #[arg(long, default_value = "hmc")]
        method: String,
        /// Step size of the transitions.
        #[arg(long, default_value_t = 0.05)]
        eps: f32,
        /// MCMC steps per intermediate distribution.
        #[arg(long, default_value_t = 2)]
        transitions: usize,
        /// sigma of the Gaussian base distribution.
        #[arg(long, default_value_t = 1.0)]
        base_sigma: f32,
        /// Seed of the AIS chains.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Print the resolved configuration as TOML.
    Config {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Train the retrofit autoencoder (`[autoencoder]` keys; decoder = model.generator,
    /// kind = "decoder32") on the configured data and backend; writes
    /// ae_decoder.safetensors (use it as model.pretrained_generator),
    /// ae_encoder.safetensors and ae_reconstructions.png to output.dir.
    PretrainAe {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Overlay the curves of several runs: one panel per key, one series per run.
    Compare {
        /// The figure to write (SVG).
        #[arg(long, value_name = "FIG.svg")]
        out: PathBuf,
        /// The log file in each run folder.
        #[arg(long, default_value = "metrics.jsonl")]
        file: String,
        /// Keys to plot, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "loss_ebm,loss_gen")]
        keys: Vec<String>,
        /// Keys to plot on a log scale, comma-separated.
        #[arg(long, value_delimiter = ',')]
        log: Vec<String>,
        /// Figure title.
        #[arg(long)]
        title: Option<String>,
        /// Runs as NAME=RUN_DIR.
        #[arg(required = true, value_name = "NAME=RUN_DIR")]
        runs: Vec<String>,
    },
    /// List the built-in presets.
    Presets,
}

/// A trained model loaded from a checkpoint alone, and where its results go
/// (`hatebm ood`, `hatebm ais`).
#[derive(Args, Debug)]
struct ModelArgs {
    /// The checkpoint (its networks and the run's sampler settings; no training data needed).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Use the raw weights even if EMA weights exist.
    #[arg(long)]
    no_ema: bool,
    /// Output folder (default: the checkpoint's folder).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

fn build_config(args: &ConfigArgs) -> Result<Config> {
    build_config_over(ConfigBuilder::new(), args)
}

/// `--preset` / `--config` (either replaces `base`), then every `--set` on top.
fn build_config_over(base: ConfigBuilder, args: &ConfigArgs) -> Result<Config> {
    let mut b = base;
    match (&args.preset, &args.config) {
        (Some(p), _) => {
            b = ConfigBuilder::new();
            b.set("preset", &format!("\"{p}\""))?;
        }
        (None, Some(path)) => {
            b = ConfigBuilder::new();
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            b.merge_toml_str(&text)
                .with_context(|| format!("reading config {}", path.display()))?;
        }
        (None, None) if b.document().trim().is_empty() => b.set("preset", "\"digits\"")?,
        (None, None) => {}
    }
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Error::InvalidArgument(format!("--set `{kv}`: expected KEY=VALUE")))?;
        b.set(k.trim(), v.trim())?;
    }
    let mut cfg = b.build()?;
    if let Some(base) = args.config.as_deref().and_then(Path::parent) {
        cfg.resolve_paths(base);
    }
    Ok(cfg)
}

/// Trains, or resumes: `--resume CK` continues with the checkpoint's own
/// configuration; `--set` on top changes only the named keys; `--preset` or
/// `--config` replace it. Either way the keys that cannot change across a
/// resume are checked ([`Config::check_resumable_from`]).
fn cmd_train(cfg_args: &ConfigArgs, steps: Option<u64>, resume: Option<&Path>) -> Result<()> {
    let t0 = Instant::now();
    let mut session = match resume {
        Some(path) => {
            let cfg = if cfg_args.given() {
                let stored = hatebm_rs::run::Checkpoint::read(path)?.config_builder()?;
                Some(build_config_over(stored, cfg_args)?)
            } else {
                None
            };
            AnyRun::resume_distributed(path, cfg, communicator()?)?
        }
        None => AnyRun::new_distributed(build_config(cfg_args)?, communicator()?)?,
    };
    if session.rank() != 0 {
        // Rank 0 reports and writes; the others only train.
        return session.train(steps, &mut hatebm_rs::run::Silent);
    }
    let c = session.config().clone();
    let ranks = match session.ranks() {
        1 => String::new(),
        n => format!(" × {n} processes ({} shards)", c.dist.shards),
    };
    eprintln!(
        "hatebm: training `{}` ({} mode) on {}{ranks}: {} -> {} iterations, outputs in {}",
        c.preset.as_deref().unwrap_or("custom config"),
        c.train.mode.name(),
        session.backend_name(),
        session.iteration(),
        steps.map_or(c.train.steps, |n| (session.iteration() + n)
            .min(c.train.steps)),
        c.output.dir.display()
    );
    let mut bar = progress::Bar::new(c.output.progress);
    let result = session.train(steps, &mut bar as &mut dyn Observer);
    bar.finish();
    result?;
    let dir = &c.output.dir;
    eprintln!(
        "hatebm: done in {:.1} s. Outputs in {}:",
        t0.elapsed().as_secs_f64(),
        dir.display()
    );
    for f in [
        "data.png",
        "generator_init.png",
        "samples_final.png",
        "curves.svg",
        "metrics.jsonl",
        "checkpoint.safetensors",
        "eval.json",
    ] {
        if dir.join(f).exists() {
            eprintln!("  {}", dir.join(f).display());
        }
    }
    Ok(())
}

/// This process's communicator: MPI when an MPI launcher started several
/// processes (a build with the `mpi` feature), else a single process.
///
/// # Errors
/// [`Error::Distributed`] when launched as several processes by a build
/// without MPI (each would train alone and overwrite the others' files).
fn communicator() -> Result<Box<dyn Communicator>> {
    match hatebm_rs::dist::launcher_rank_and_size() {
        Some((_, n)) if n > 1 => {
            #[cfg(feature = "mpi")]
            {
                Ok(Box::new(hatebm_rs::dist::MpiComm::world()?))
            }
            #[cfg(not(feature = "mpi"))]
            {
                Err(Error::Distributed(format!(
                    "started as one of {n} processes by an MPI launcher, but this hatebm was built without MPI: rebuild with `cargo build --release -p hatebm-cli --features mpi` (see docs/distributed.md)"
                )))
            }
        }
        _ => Ok(Box::new(hatebm_rs::dist::SingleProcess)),
    }
}

/// What `hatebm sample` draws.
struct SampleArgs {
    n: usize,
    steps: Option<usize>,
    sampler: Option<String>,
    sets: Vec<String>,
    no_ema: bool,
    no_clamp: bool,
    seed: u64,
}

fn cmd_sample(ckpt: &Path, args: SampleArgs, out: Option<PathBuf>) -> Result<()> {
    let SampleArgs {
        n,
        steps,
        sampler,
        sets,
        no_ema,
        no_clamp,
        seed,
    } = args;
    // The networks alone: a shipped checkpoint samples without its training data.
    let mut model = hatebm_rs::runtime::AnyModel::load(ckpt, None)?;
    if let Some(name) = sampler {
        model.set_sampler_method(hatebm_rs::sampler::Method::parse(&name)?)?;
    }
    if !sets.is_empty() {
        let c = sampler_with_sets(&model, steps, &sets)?;
        model.set_sampler_config(c)?;
    }
    let dir = out.unwrap_or_else(|| ckpt.parent().map(Path::to_path_buf).unwrap_or_default());
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let opts = SampleOptions {
        n,
        steps,
        use_ema: !no_ema,
        seed,
        batch_size: model.config().sample.batch_size,
        clamp: model.config().sample.clamp && !no_clamp,
    };
    let bar = progress::plain_bar(n as u64, model.config().output.progress);
    bar.set_message("sampling");
    let result = model.sample(&opts, &mut |done, _| {
        bar.set_position(done as u64);
        true
    });
    bar.finish_and_clear();
    let (data, shape) = result?;
    if let Some(mh) = model.last_sample_stats().and_then(|s| s.mh.as_ref()) {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        eprintln!(
            "hatebm: {} acceptance (last batch): residual {} latent {}; mean min(1, alpha): residual {} latent {}; divergences {}",
            mh.method,
            f(mh.accept_res),
            f(mh.accept_latent),
            f(mh.alpha_res),
            f(mh.alpha_latent),
            mh.divergences
        );
    }
    if let Some((lo, hi)) = model.config().data.value_range().filter(|_| opts.clamp) {
        eprintln!(
            "hatebm: {:.2} % of the values were outside the data's range [{lo}, {hi}] and clamped to it (--no-clamp keeps them)",
            100.0 * model.last_clamped_fraction()
        );
    }
    let npy = dir.join("samples.npy");
    hatebm_rs::data::npy::write_npy_f32(&npy, &shape, &data)?;
    let png = dir.join("samples.png");
    hatebm_rs::run::save_picture(&png, &data, n, model.image_dims(), None)?;
    eprintln!(
        "hatebm: {n} samples from {} written to {} and {}",
        ckpt.display(),
        npy.display(),
        png.display()
    );
    Ok(())
}

/// The model's sampler settings with `langevin.KEY=VALUE` assignments applied
/// (through the configuration's schema, so types, ranges and misspellings are
/// checked as for `train --set`), and `--steps K > 0` as their K (so that a
/// warm-up is checked against the steps the call runs).
fn sampler_with_sets(
    model: &hatebm_rs::runtime::AnyModel,
    steps: Option<usize>,
    sets: &[String],
) -> Result<hatebm_rs::sampler::LangevinConfig> {
    let mut cfg = model.config().clone();
    cfg.langevin = model.sampler_config().clone();
    if let Some(k) = steps.filter(|&k| k > 0) {
        cfg.langevin.steps = k;
    }
    let mut b = hatebm_rs::config::ConfigBuilder::new();
    b.merge_toml_str(&cfg.to_toml_string()?)?;
    for kv in sets {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("--set {kv}: expected langevin.KEY=VALUE")))?;
        if !k.trim().starts_with("langevin.") {
            return Err(Error::Config(format!(
                "--set {kv}: `hatebm sample` changes sampler settings only (langevin.* keys)"
            )));
        }
        b.set(k, v)?;
    }
    Ok(b.build()?.langevin)
}

fn cmd_ais(
    ckpt: &Path,
    cfg: &hatebm_rs::sampler::AisConfig,
    use_ema: bool,
    out: Option<PathBuf>,
) -> Result<()> {
    let mut model = hatebm_rs::runtime::AnyModel::load(ckpt, None)?;
    let r = model.log_z(cfg, use_ema)?;
    let dir = out.unwrap_or_else(|| ckpt.parent().map(Path::to_path_buf).unwrap_or_default());
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join("ais.json");
    let json = serde_json::json!({
        "checkpoint": ckpt.display().to_string(),
        "log_z": r.log_z,
        "log_z_se": r.log_z_se,
        "ess": r.ess,
        "chains": cfg.chains,
        "temperatures": cfg.temperatures,
        "method": cfg.method.name(),
        "eps": cfg.eps,
        "transitions": cfg.transitions,
        "base_sigma": cfg.base_sigma,
        "mean_accept": r.mean_accept,
    });
    std::fs::write(&path, format!("{json:#}\n")).map_err(|e| Error::io(&path, e))?;
    println!(
        "log Z = {:.4} +- {:.4} (ESS {:.1} of {}, mean acceptance {:.3}); wrote {}",
        r.log_z,
        r.log_z_se,
        r.ess,
        cfg.chains,
        r.mean_accept,
        path.display()
    );
    Ok(())
}

fn cmd_pretrain_ae(cfg_args: &ConfigArgs) -> Result<()> {
    let cfg = build_config(cfg_args)?;
    let bar = progress::plain_bar(cfg.autoencoder.steps, cfg.output.progress);
    let done = hatebm_rs::runtime::pretrain_autoencoder(&cfg, &mut |it, _, loss| {
        if it % 50 == 0 {
            bar.set_message(format!("loss {loss:.4}"));
        }
        bar.set_position(it);
    });
    bar.finish_and_clear();
    let done = done?;
    eprintln!(
        "pretrain-ae: {} iterations in {:.1} s; held-out loss {:.4}; wrote {} (top half of ae_reconstructions.png: data, bottom: reconstructions)",
        done.losses.len(),
        done.seconds,
        done.heldout_loss,
        done.decoder.display()
    );
    Ok(())
}

fn cmd_compare(
    out: &Path,
    file: &str,
    keys: &[String],
    log: &[String],
    title: Option<String>,
    runs: &[String],
) -> Result<()> {
    use hatebm_rs::report::{Panel, PlotOptions, metrics_series, read_metrics_jsonl, save_svg};
    let runs: Vec<(String, PathBuf)> = runs
        .iter()
        .map(|r| {
            r.split_once('=')
                .map(|(n, d)| (n.to_string(), PathBuf::from(d)))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("compare: `{r}` is not NAME=RUN_DIR"))
                })
        })
        .collect::<Result<_>>()?;
    let records: Vec<(String, Vec<serde_json::Value>)> = runs
        .iter()
        .map(|(n, d)| Ok((n.clone(), read_metrics_jsonl(d.join(file))?)))
        .collect::<Result<_>>()?;
    let panels: Vec<Panel> = keys
        .iter()
        .map(|k| Panel {
            title: k.clone(),
            x_label: "iteration".into(),
            y_label: k.clone(),
            series: records
                .iter()
                .map(|(n, r)| {
                    let mut s = metrics_series(r, k, "step");
                    s.name = n.clone();
                    s
                })
                .collect(),
            log_y: log.contains(k),
        })
        .collect();
    // A key no run logged is a typo, not an empty panel: name what exists.
    if let Some(p) = panels
        .iter()
        .find(|p| p.series.iter().all(|s| s.points.is_empty()))
    {
        let mut present: Vec<String> = records
            .iter()
            .flat_map(|(_, r)| r.iter())
            .filter_map(serde_json::Value::as_object)
            .flat_map(|o| o.keys().cloned())
            .collect();
        present.sort();
        present.dedup();
        return Err(Error::InvalidArgument(format!(
            "compare: no run's {file} has values for `{}`; its keys are: {}",
            p.title,
            present.join(", ")
        )));
    }
    let opts = PlotOptions {
        columns: panels.len().min(2),
        title,
        ..PlotOptions::default()
    };
    save_svg(out, &panels, &opts)?;
    eprintln!("hatebm: wrote {}", out.display());
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Train { cfg, steps, resume } => cmd_train(&cfg, steps, resume.as_deref()),
        Cmd::Sample {
            checkpoint,
            n,
            steps,
            sampler,
            sets,
            no_ema,
            no_clamp,
            seed,
            out,
        } => cmd_sample(
            &checkpoint,
            SampleArgs {
                n,
                steps,
                sampler,
                sets,
                no_ema,
                no_clamp,
                seed,
            },
            out,
        ),
        Cmd::Ais {
            model,
            chains,
            temperatures,
            method,
            eps,
            transitions,
            base_sigma,
            seed,
        } => {
            let cfg = hatebm_rs::sampler::AisConfig {
                temperatures,
                chains,
                base_sigma,
                transitions,
                method: hatebm_rs::sampler::Method::parse(&method)?,
                eps,
                seed,
                ..Default::default()
            };
            cmd_ais(&model.checkpoint, &cfg, !model.no_ema, model.out)
        }
        Cmd::Ood { model, n, seed } => ood::cmd_ood(&ood::OodArgs {
            checkpoint: model.checkpoint,
            n,
            seed,
            no_ema: model.no_ema,
            out: model.out,
        }),
        Cmd::Config { cfg } => {
            print!("{}", build_config(&cfg)?.to_toml_string()?);
            Ok(())
        }
        Cmd::PretrainAe { cfg } => cmd_pretrain_ae(&cfg),
        Cmd::Compare {
            out,
            file,
            keys,
            log,
            title,
            runs,
        } => cmd_compare(&out, &file, &keys, &log, title, &runs),
        Cmd::Presets => {
            for n in presets::names() {
                println!("{n}");
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // Under an MPI launcher, ranks other than 0 log warnings and errors only,
    // each line prefixed with the rank.
    let rank = hatebm_rs::dist::launcher_rank_and_size()
        .filter(|&(_, n)| n > 1)
        .map(|(r, _)| r);
    let default = match (std::env::var_os("HATEBM_DEBUG").is_some(), rank) {
        (true, _) => "debug",
        (false, Some(r)) if r > 0 => "warn",
        _ => "info",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(move |f, r| {
            use std::io::Write;
            let level = r.level().as_str().to_lowercase();
            match rank {
                Some(k) => writeln!(f, "[{level}] [rank {k}] {}", r.args()),
                None => writeln!(f, "[{level}] {}", r.args()),
            }
        })
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match rank {
                Some(r) if r > 0 => eprintln!("hatebm: [rank {r}] error: {e}"),
                _ => eprintln!("hatebm: error: {e}"),
            }
            ExitCode::FAILURE
        }
    }
}
