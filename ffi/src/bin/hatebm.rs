//! `hatebm`: the command-line front end of libhatebm (train, resume, sample).
//!
//! ```text
//! hatebm train  [--preset NAME | --config FILE] [--set KEY=VALUE]... [--steps N] [--resume CKPT]
//! hatebm sample --checkpoint CKPT [--n N] [--steps K] [--no-ema] [--seed S] [--out DIR]
//! hatebm config [--preset NAME | --config FILE] [--set KEY=VALUE]...   (print the resolved config)
//! hatebm presets
//! ```
//! Everything goes through the library's public API ([`hatebm::runtime::AnyRun`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use hatebm::runtime::AnyRun;
use hatebm_core::config::{Config, ConfigBuilder, presets};
use hatebm_core::train::SampleOptions;
use hatebm_core::{Error, Result};

const USAGE: &str = "usage:
  hatebm train  [--preset NAME | --config FILE] [--set KEY=VALUE]... [--steps N] [--resume CHECKPOINT]
  hatebm sample --checkpoint FILE [--n N] [--steps K] [--no-ema] [--seed S] [--out DIR]
  hatebm config [--preset NAME | --config FILE] [--set KEY=VALUE]...
  hatebm pretrain-ae [--preset NAME | --config FILE] [--set KEY=VALUE]...
  hatebm compare --out FIG.svg [--file metrics.jsonl|eval.jsonl] [--keys K1,K2,...] [--log KEY,...] NAME=RUN_DIR...
  hatebm presets

  --preset NAME     start from a built-in preset (see `hatebm presets`); default: digits
  --config FILE     a TOML configuration (may itself name a preset)
  --set KEY=VALUE   override one key, e.g. --set backend=tch:cuda:0 --set langevin.steps=50
  --steps N         train at most N more iterations (default: up to train.steps)
  --resume FILE     continue exactly from a checkpoint
  --checkpoint FILE checkpoint to sample from
  --n N             number of samples (default 64)
  --steps K         Langevin steps when sampling (default: the training chain's K; 0 = generator only)
  --no-ema          sample with the raw weights even if EMA weights exist
  --out DIR         output folder (default: the checkpoint's folder)

  pretrain-ae trains the retrofit autoencoder ([autoencoder] keys; decoder = model.generator,
  which must be kind = \"decoder32\") on the configured data with the CPU backend and writes
  ae_decoder.safetensors (use it as model.pretrained_generator), ae_encoder.safetensors and
  ae_reconstructions.png to output.dir.";

/// Minimal stderr logger for the `log` facade (libraries never install one).
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("[{}] {}", r.level().as_str().to_lowercase(), r.args());
        }
    }
    fn flush(&self) {}
}

struct Args {
    rest: Vec<String>,
}

impl Args {
    fn flag(&mut self, name: &str) -> bool {
        match self.rest.iter().position(|a| a == name) {
            Some(i) => {
                self.rest.remove(i);
                true
            }
            None => false,
        }
    }

    fn value(&mut self, name: &str) -> Result<Option<String>> {
        match self.rest.iter().position(|a| a == name) {
            Some(i) if i + 1 < self.rest.len() => {
                let v = self.rest.remove(i + 1);
                self.rest.remove(i);
                Ok(Some(v))
            }
            Some(_) => Err(Error::InvalidArgument(format!("{name} needs a value"))),
            None => Ok(None),
        }
    }

    fn values(&mut self, name: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        while let Some(v) = self.value(name)? {
            out.push(v);
        }
        Ok(out)
    }

    fn parsed<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>> {
        self.value(name)?
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::InvalidArgument(format!("{name}: cannot parse `{v}`")))
            })
            .transpose()
    }

    fn finish(self) -> Result<()> {
        if let Some(a) = self.rest.first() {
            return Err(Error::InvalidArgument(format!(
                "unexpected argument `{a}`\n{USAGE}"
            )));
        }
        Ok(())
    }
}

fn build_config(args: &mut Args) -> Result<Config> {
    let mut b = ConfigBuilder::new();
    let preset = args.value("--preset")?;
    let file = args.value("--config")?;
    match (&preset, &file) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidArgument(
                "give --preset or --config, not both".into(),
            ));
        }
        (Some(p), None) => b.set("preset", &format!("\"{p}\""))?,
        (None, Some(f)) => {
            let path = PathBuf::from(f);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            b.merge_toml_str(&text)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        }
        (None, None) => b.set("preset", "\"digits\"")?,
    }
    for kv in args.values("--set")? {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Error::InvalidArgument(format!("--set `{kv}`: expected KEY=VALUE")))?;
        b.set(k.trim(), v.trim())?;
    }
    let mut cfg = b.build()?;
    if let Some(f) = file
        && let Some(base) = Path::new(&f).parent()
    {
        cfg.resolve_paths(base);
    }
    Ok(cfg)
}

fn cmd_train(mut args: Args) -> Result<()> {
    let resume = args.value("--resume")?;
    let steps: Option<u64> = args.parsed("--steps")?;
    let has_cfg = args
        .rest
        .iter()
        .any(|a| a == "--preset" || a == "--config" || a == "--set");
    let cfg = if resume.is_none() || has_cfg {
        Some(build_config(&mut args)?)
    } else {
        None
    };
    args.finish()?;
    let t0 = Instant::now();
    let mut session = match &resume {
        Some(path) => AnyRun::resume(Path::new(path), cfg)?,
        None => AnyRun::new(cfg.expect("built above"))?,
    };
    let c = session.config().clone();
    eprintln!(
        "hatebm: training `{}` ({} mode) on {}: {} -> {} iterations, outputs in {}",
        c.preset.as_deref().unwrap_or("custom config"),
        c.train.mode.name(),
        session.backend_name(),
        session.iteration(),
        steps.map_or(c.train.steps, |n| (session.iteration() + n)
            .min(c.train.steps)),
        c.output.dir.display()
    );
    session.train(steps, &mut |_| true)?;
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

fn cmd_sample(mut args: Args) -> Result<()> {
    let ckpt = args.value("--checkpoint")?.ok_or_else(|| {
        Error::InvalidArgument(format!("sample needs --checkpoint FILE\n{USAGE}"))
    })?;
    let n: usize = args.parsed("--n")?.unwrap_or(64);
    let steps: Option<usize> = args.parsed("--steps")?;
    let seed: u64 = args.parsed("--seed")?.unwrap_or(0);
    let no_ema = args.flag("--no-ema");
    let out = args.value("--out")?;
    args.finish()?;
    let ckpt = PathBuf::from(ckpt);
    let mut session = AnyRun::resume(&ckpt, None)?;
    let dir = out
        .map(PathBuf::from)
        .unwrap_or_else(|| ckpt.parent().map(Path::to_path_buf).unwrap_or_default());
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let opts = SampleOptions {
        n,
        steps,
        use_ema: !no_ema,
        seed,
        batch_size: session.config().sample.batch_size,
    };
    let (data, shape) = session.sample(&opts)?;
    let npy = dir.join("samples.npy");
    hatebm_core::data::npy::write_npy_f32(&npy, &shape, &data)?;
    let png = dir.join("samples.png");
    let dims = session.image_dims();
    match dims {
        Some([c, h, w]) => {
            hatebm_core::report::save_image_grid(&png, &data, &[n, c, h, w], &Default::default())?
        }
        None if shape.iter().skip(1).product::<usize>() == 2 => {
            hatebm_core::report::save_scatter_png(&png, &data, None, &Default::default())?;
        }
        None => {}
    }
    eprintln!(
        "hatebm: {n} samples from {} written to {} and {}",
        ckpt.display(),
        npy.display(),
        png.display()
    );
    Ok(())
}

fn cmd_pretrain_ae(mut args: Args) -> Result<()> {
    use hatebm_core::Backend;
    use hatebm_core::cpu::CpuBackend;
    use hatebm_core::data::Batcher;
    use hatebm_core::noise::SeededNoise;
    use hatebm_core::train::Autoencoder;

    let cfg = build_config(&mut args)?;
    args.finish()?;
    hatebm::runtime::apply_threads(cfg.threads);
    let dec_arch = cfg.model.generator.clone().ok_or_else(|| {
        Error::Config("pretrain-ae needs [model.generator] (kind = \"decoder32\")".into())
    })?;
    let be = CpuBackend::new();
    let data = cfg.data.load()?;
    let (train, held) = data.split(f64::from(cfg.eval.holdout_fraction), cfg.seed)?;
    let ae_cfg = cfg.autoencoder.clone();
    let mut ae = Autoencoder::new(be, ae_cfg.clone(), &dec_arch, cfg.seed)?;
    let mut batcher = Batcher::new(train.len(), ae_cfg.batch_size, cfg.seed)?;
    let shape = hatebm_core::backend::shape::batched(ae_cfg.batch_size, train.sample_shape());
    let mut buf = vec![0.0f32; ae_cfg.batch_size * train.sample_len()];
    let dir = cfg.output.dir.clone();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let t0 = Instant::now();
    let mut log = String::new();
    for it in 1..=ae_cfg.steps {
        batcher.next_batch(&train, &mut buf)?;
        let x = be.from_host(&buf, &shape)?;
        let loss = ae.step(&x, &mut SeededNoise)?;
        if it % 50 == 0 || it == ae_cfg.steps {
            log.push_str(&format!("{{\"step\":{it},\"loss\":{loss}}}\n"));
            eprint!("\rpretrain-ae: {it}/{} loss {loss:.4}   ", ae_cfg.steps);
        }
    }
    eprintln!();
    hatebm_core::fsutil::write_atomic(&dir.join("ae_metrics.jsonl"), log.as_bytes())?;
    let meta = std::collections::HashMap::new();
    hatebm_core::weights::save_params(
        ae.decoder.params(),
        &be,
        &dir.join("ae_decoder.safetensors"),
        &meta,
    )?;
    hatebm_core::weights::save_params(
        ae.encoder.params(),
        &be,
        &dir.join("ae_encoder.safetensors"),
        &meta,
    )?;
    let n = 32.min(held.len());
    let xs = hatebm_core::backend::shape::batched(n, held.sample_shape());
    let x = be.from_host(&held.data()[..n * held.sample_len()], &xs)?;
    let recon = be.to_host(&ae.reconstruct(&x)?)?;
    let mut both = held.data()[..n * held.sample_len()].to_vec();
    both.extend_from_slice(&recon);
    let mut s2 = xs.clone();
    s2[0] = 2 * n;
    hatebm_core::report::save_image_grid(
        dir.join("ae_reconstructions.png"),
        &both,
        &s2,
        &Default::default(),
    )?;
    eprintln!(
        "pretrain-ae: {} iterations in {:.1} s; held-out loss {:.4}; wrote {}/ae_decoder.safetensors (top half of ae_reconstructions.png: data, bottom: reconstructions)",
        ae_cfg.steps,
        t0.elapsed().as_secs_f64(),
        ae.eval_loss(&x)?,
        dir.display()
    );
    Ok(())
}

/// Overlays the curves of several runs: one panel per key, one series per run.
fn cmd_compare(mut args: Args) -> Result<()> {
    use hatebm_core::report::{Panel, PlotOptions, metrics_series, read_metrics_jsonl, save_svg};
    let out = args
        .value("--out")?
        .ok_or_else(|| Error::InvalidArgument(format!("compare needs --out FIG.svg\n{USAGE}")))?;
    let file = args
        .value("--file")?
        .unwrap_or_else(|| "metrics.jsonl".into());
    let keys: Vec<String> = args
        .value("--keys")?
        .unwrap_or_else(|| "loss_ebm,loss_gen".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let log: Vec<String> = args
        .value("--log")?
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let title = args.value("--title")?;
    let runs: Vec<(String, PathBuf)> = std::mem::take(&mut args.rest)
        .into_iter()
        .map(|r| {
            r.split_once('=')
                .map(|(n, d)| (n.to_string(), PathBuf::from(d)))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("compare: `{r}` is not NAME=RUN_DIR"))
                })
        })
        .collect::<Result<_>>()?;
    if runs.is_empty() {
        return Err(Error::InvalidArgument(
            "compare: give at least one NAME=RUN_DIR".into(),
        ));
    }
    let records: Vec<(String, Vec<serde_json::Value>)> = runs
        .iter()
        .map(|(n, d)| Ok((n.clone(), read_metrics_jsonl(d.join(&file))?)))
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
    let opts = PlotOptions {
        columns: panels.len().min(2),
        title,
        ..PlotOptions::default()
    };
    save_svg(&out, &panels, &opts)?;
    eprintln!("hatebm: wrote {out}");
    Ok(())
}

fn run() -> Result<()> {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() || argv[0] == "-h" || argv[0] == "--help" {
        println!("{USAGE}");
        return Ok(());
    }
    let cmd = argv.remove(0);
    let args = Args { rest: argv };
    match cmd.as_str() {
        "train" => cmd_train(args),
        "sample" => cmd_sample(args),
        "pretrain-ae" => cmd_pretrain_ae(args),
        "compare" => cmd_compare(args),
        "config" => {
            let mut args = args;
            let cfg = build_config(&mut args)?;
            args.finish()?;
            print!("{}", cfg.to_toml_string()?);
            Ok(())
        }
        "presets" => {
            for n in presets::names() {
                println!("{n}");
            }
            Ok(())
        }
        other => Err(Error::InvalidArgument(format!(
            "unknown command `{other}`\n{USAGE}"
        ))),
    }
}

fn main() -> ExitCode {
    static LOGGER: StderrLogger = StderrLogger;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if std::env::var_os("HATEBM_DEBUG").is_some() {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hatebm: error: {e}");
            ExitCode::FAILURE
        }
    }
}
