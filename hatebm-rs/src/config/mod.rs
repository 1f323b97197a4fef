//! The run configuration: one TOML document describes backend, seed, models,
//! sampler, training, optimisers, data, outputs and the divergence guard.
//!
//! * `backend = "cpu" | "tch:cpu" | "tch:cuda:0" | "auto"` is the one line that
//!   swaps backends.
//! * `preset = "digits"` starts from a built-in preset ([`presets`]); every
//!   other key overrides it.
//! * Unknown keys are errors that name the key and suggest the closest valid
//!   one; out-of-range values are errors that state the allowed range.
//! * [`ConfigBuilder::set`] sets one dotted key at a time (`"langevin.steps"`,
//!   `"50"`), as the C ABI's `hatebm_config_set` does.

pub mod limits;
pub mod presets;
mod suggest;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::DataSpec;
use crate::nets::{EnergyArch, GeneratorArch};
use crate::optim::AdamConfig;
use crate::sampler::LangevinConfig;
use crate::spec::BackendSpec;
use crate::train::{AutoencoderConfig, Mode, SampleOptions, TrainConfig};
use crate::{Error, Result, ResultExt};

/// The networks of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The energy (hat) network.
    pub energy: EnergyArch,
    /// The generator (absent for the short-run and persistent baselines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorArch>,
    /// Weights (safetensors, PyTorch names) of a pretrained generator: required
    /// by `retrofit`, `refine` and `no_residual`, optional otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained_generator: Option<PathBuf>,
    /// Weights of a pretrained energy network (optional warm start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained_energy: Option<PathBuf>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            energy: EnergyArch::Sngan {
                res: 32,
                nch: 1,
                ngf: 64,
            },
            generator: Some(GeneratorArch::Sngan {
                res: 32,
                nz: 64,
                ngf: 64,
                nch: 1,
                out_factor: 2.0,
            }),
            pretrained_generator: None,
            pretrained_energy: None,
        }
    }
}

/// When the `hatebm` CLI shows its progress bar on stderr. The library itself
/// never draws one (it reports to a [`crate::run::Observer`]); this key is
/// read by applications such as the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProgressMode {
    /// Only when stderr is a terminal.
    #[default]
    Auto,
    /// Always (e.g. in CI logs).
    Always,
    /// Never.
    Never,
}

/// Where and how often a run writes its outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Output folder (created if missing).
    pub dir: PathBuf,
    /// Write a metrics line every this many iterations (≥ 1).
    pub log_every: u64,
    /// Write a checkpoint every this many iterations (0 = only at the end).
    pub checkpoint_every: u64,
    /// Write a sample grid every this many iterations (0 = only at the end).
    pub sample_every: u64,
    /// Images per sample grid.
    pub grid_samples: usize,
    /// The CLI's progress bar (the library draws none).
    pub progress: ProgressMode,
    /// Plot the training curves (SVG) at the end.
    pub plot: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            dir: PathBuf::from("out/run"),
            log_every: 10,
            checkpoint_every: 0,
            sample_every: 0,
            grid_samples: 64,
            progress: ProgressMode::Auto,
            plot: true,
        }
    }
}

/// What to do when training diverges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GuardPolicy {
    /// Stop with [`Error::Diverged`]; the last checkpoint on disk stays the last
    /// good one.
    #[default]
    Stop,
    /// Restore the last good in-memory state, reseed the chains, multiply the
    /// learning rates by `lr_factor`, and continue (at most `max_rollbacks` times).
    Rollback,
}

/// The divergence guard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Treat `|loss_ebm|` (the energy difference) above this as divergence
    /// (`None` = only NaN/Inf count).
    pub max_energy_diff: Option<f64>,
    /// Stop or roll back.
    pub policy: GuardPolicy,
    /// Learning-rate factor applied at each rollback, in (0, 1].
    pub lr_factor: f32,
    /// Maximum number of rollbacks before stopping.
    pub max_rollbacks: u32,
    /// Keep an in-memory snapshot of the last good state every this many
    /// iterations (rollback policy; ≥ 1).
    pub snapshot_every: u64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_energy_diff: None,
            policy: GuardPolicy::Stop,
            lr_factor: 0.5,
            max_rollbacks: 3,
            snapshot_every: 50,
        }
    }
}

/// Evaluation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Fraction of the data held out for evaluation (never trained on).
    pub holdout_fraction: f32,
    /// Samples drawn for the final Fréchet distance (0 = skip evaluation).
    pub num_samples: usize,
    /// Also evaluate every this many iterations, appending to `eval.jsonl`
    /// (0 = only at the end).
    pub every: u64,
    /// The fixed classifier of the classifier-feature metrics
    /// ([`crate::metrics::Classifier`]): `"auto"` (the built-in one of the
    /// data set — `digits_mlp` for `digits`, `mnist5k_mlp` for `mnist5k` with
    /// `pad_to_32` — none otherwise), `"none"`, a built-in name, or a
    /// classifier file.
    pub classifier: String,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            holdout_fraction: 0.1,
            num_samples: 500,
            every: 0,
            classifier: "auto".into(),
        }
    }
}

/// A complete run configuration. `Default` is a small SN-GAN-32 synthesis run
/// on the CPU; real runs start from a preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The preset this configuration started from (informational once resolved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// The backend (`cpu`, `tch:cpu`, `tch:cuda[:N]`, `auto`).
    pub backend: BackendSpec,
    /// Run seed: every random draw derives from it.
    pub seed: u64,
    /// CPU threads for the CPU backend (0 = all cores; at most
    /// [`limits::MAX_THREADS`]). Results do not depend on it.
    pub threads: usize,
    /// Memory budget in GiB for the up-front estimate of a run (0 = the
    /// machine's physical memory); see [`limits`].
    pub memory_limit_gib: f64,
    /// Networks.
    pub model: ModelConfig,
    /// Training.
    pub train: TrainConfig,
    /// Sampler of the training chains.
    pub langevin: LangevinConfig,
    /// EBM optimiser.
    pub ebm_optim: AdamConfig,
    /// Generator optimiser.
    pub gen_optim: AdamConfig,
    /// Data.
    pub data: DataSpec,
    /// Outputs.
    pub output: OutputConfig,
    /// Divergence guard.
    pub guard: GuardConfig,
    /// Evaluation.
    pub eval: EvalConfig,
    /// Sampling from the trained model (the `sample` command and final grids).
    pub sample: SampleOptions,
    /// Autoencoder pretraining (`hatebm pretrain-ae`) for the retrofit generator.
    pub autoencoder: AutoencoderConfig,
    /// Data-parallel training: shards of the batch and bank (see `docs/distributed.md`).
    pub dist: crate::dist::DistConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preset: None,
            backend: BackendSpec::Cpu,
            seed: 0,
            threads: 0,
            memory_limit_gib: 0.0,
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            langevin: LangevinConfig::default(),
            ebm_optim: AdamConfig::default(),
            gen_optim: AdamConfig::default(),
            data: DataSpec::Digits {},
            output: OutputConfig::default(),
            guard: GuardConfig::default(),
            eval: EvalConfig::default(),
            sample: SampleOptions::default(),
            autoencoder: AutoencoderConfig::default(),
            dist: crate::dist::DistConfig::default(),
        }
    }
}

impl Config {
    /// Parses a TOML document (with an optional `preset = "..."` base).
    ///
    /// # Errors
    /// [`Error::Config`] for syntax errors, unknown keys (with a suggestion),
    /// wrong types and out-of-range values.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let mut b = ConfigBuilder::new();
        b.merge_toml_str(text)?;
        b.build()
    }

    /// Reads a TOML file; relative data / weight paths are resolved against the
    /// file's folder.
    ///
    /// # Errors
    /// [`Error::Io`] if unreadable; as [`Config::from_toml_str`] otherwise (the
    /// message names the file).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut cfg = Config::from_toml_str(&text)
            .with_context(|| format!("reading config {}", path.display()))?;
        if let Some(base) = path.parent() {
            cfg.resolve_paths(base);
        }
        Ok(cfg)
    }

    /// Makes relative file paths absolute against `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.model.pretrained_generator,
            &mut self.model.pretrained_energy,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        self.data.resolve_paths(base);
    }

    /// The canonical TOML text of this configuration (stored in checkpoints).
    ///
    /// # Errors
    /// [`Error::Config`] if serialisation fails (it should not).
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Config(format!("cannot serialise config: {e}")))
    }

    /// Checks every range and cross-field constraint.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key and the allowed range.
    pub fn validate(&self) -> Result<()> {
        limits::check_bounds(self)?;
        self.model.energy.validate()?;
        if let Some(g) = &self.model.generator {
            g.validate()?;
        }
        self.train.validate()?;
        self.langevin.validate()?;
        crate::train::check_blocks(self.train.mode, &self.langevin)?;
        self.ebm_optim.validate("ebm_optim")?;
        self.gen_optim.validate("gen_optim")?;
        let mode = self.train.mode;
        match (&self.model.generator, mode.has_generator()) {
            (None, true) => {
                return Err(Error::Config(format!(
                    "train.mode = \"{}\" needs a [model.generator] section",
                    mode.name()
                )));
            }
            (Some(_), false) => {
                return Err(Error::Config(format!(
                    "train.mode = \"{}\" has no generator: remove the [model.generator] section",
                    mode.name()
                )));
            }
            _ => {}
        }
        // Retrofit's generator comes from `hatebm pretrain-ae`, which reads the
        // same configuration before the decoder exists: the requirement is
        // checked when a run is built ([`Config::check_trainable`]).
        if mode.needs_pretrained_generator()
            && self.model.pretrained_generator.is_none()
            && mode != Mode::Retrofit
        {
            return Err(Error::Config(format!(
                "train.mode = \"{}\" needs model.pretrained_generator",
                mode.name()
            )));
        }
        if let Some(g) = &self.model.generator
            && g.output_shape() != self.model.energy.sample_shape()
        {
            return Err(Error::Config(format!(
                "model.generator output {:?} does not match model.energy input {:?}",
                g.output_shape(),
                self.model.energy.sample_shape()
            )));
        }
        if self.output.log_every == 0 {
            return Err(Error::Config("output.log_every must be >= 1".into()));
        }
        if self.guard.snapshot_every == 0 {
            return Err(Error::Config("guard.snapshot_every must be >= 1".into()));
        }
        if !(self.guard.lr_factor > 0.0 && self.guard.lr_factor <= 1.0) {
            return Err(Error::Config(format!(
                "guard.lr_factor must be in (0, 1], got {}",
                self.guard.lr_factor
            )));
        }
        if let Some(m) = self.guard.max_energy_diff
            && !(m.is_finite() && m > 0.0)
        {
            return Err(Error::Config(format!(
                "guard.max_energy_diff must be finite and > 0, got {m}"
            )));
        }
        if !(0.0..1.0).contains(&self.eval.holdout_fraction) {
            return Err(Error::Config(format!(
                "eval.holdout_fraction must be in [0, 1), got {}",
                self.eval.holdout_fraction
            )));
        }
        self.autoencoder.validate()?;
        self.dist.validate()?;
        crate::train::check_shards(&self.train, self.dist.shards)?;
        if self.sample.batch_size == 0 {
            return Err(Error::Config("sample.batch_size must be >= 1".into()));
        }
        // TOML integers are signed 64-bit: a larger u64 would be written into a
        // checkpoint's config and then fail to load back.
        for (key, v) in [
            ("seed", self.seed),
            ("train.steps", self.train.steps),
            ("sample.seed", self.sample.seed),
            ("output.log_every", self.output.log_every),
            ("output.checkpoint_every", self.output.checkpoint_every),
            ("output.sample_every", self.output.sample_every),
            ("guard.snapshot_every", self.guard.snapshot_every),
            ("eval.every", self.eval.every),
            ("autoencoder.steps", self.autoencoder.steps),
        ] {
            if v > i64::MAX as u64 {
                return Err(Error::Config(format!(
                    "{key} must be at most {} (TOML integers are signed 64-bit), got {v}",
                    i64::MAX
                )));
            }
        }
        Ok(())
    }
}

impl Config {
    /// The checks that apply to training but not to other uses of a
    /// configuration (printing it, pretraining the retrofit autoencoder): a
    /// retrofit run needs the pretrained decoder, since the joint Hat EBM on a
    /// random frozen generator is not the paper's method.
    ///
    /// # Errors
    /// [`Error::Config`] naming the missing key.
    pub fn check_trainable(&self) -> Result<()> {
        if self.train.mode == Mode::Retrofit && self.model.pretrained_generator.is_none() {
            return Err(Error::Config(
                "train.mode = \"retrofit\" needs model.pretrained_generator: train the autoencoder with `hatebm pretrain-ae` and set it to the ae_decoder.safetensors it writes".into(),
            ));
        }
        Ok(())
    }

    /// Checks that this configuration may continue a run stored with `stored`:
    /// the keys that shape the state a checkpoint holds, or the data and noise
    /// it was drawn from, cannot change across a resume (the networks, the
    /// mode, the seed, the data and its held-out split, the batch and bank
    /// sizes, and whether each optimiser keeps an EMA). Everything else — the
    /// step count, sampler, learning rates, outputs, guard, evaluation,
    /// backend, threads — may.
    ///
    /// # Errors
    /// [`Error::Config`] naming every key that differs, with both values.
    pub fn check_resumable_from(&self, stored: &Config) -> Result<()> {
        fn show<T: Serialize>(v: &T) -> String {
            toml::Value::try_from(v).map_or_else(|_| "?".into(), |v| clip(&v.to_string()))
        }
        let mut changed = Vec::new();
        let mut cmp = |key: &str, a: String, b: String| {
            if a != b {
                changed.push(format!("{key} ({b} in the checkpoint, {a} now)"));
            }
        };
        cmp("seed", show(&self.seed), show(&stored.seed));
        cmp(
            "model.energy",
            show(&self.model.energy),
            show(&stored.model.energy),
        );
        cmp(
            "model.generator",
            show(&self.model.generator),
            show(&stored.model.generator),
        );
        cmp("data", show(&self.data), show(&stored.data));
        cmp(
            "eval.holdout_fraction",
            show(&self.eval.holdout_fraction),
            show(&stored.eval.holdout_fraction),
        );
        cmp(
            "train.mode",
            show(&self.train.mode),
            show(&stored.train.mode),
        );
        cmp(
            "train.batch_size",
            show(&self.train.batch_size),
            show(&stored.train.batch_size),
        );
        cmp(
            "train.bank_size",
            show(&self.train.bank_size),
            show(&stored.train.bank_size),
        );
        cmp(
            "train.persistent_bank_size",
            show(&self.train.persistent_bank_size),
            show(&stored.train.persistent_bank_size),
        );
        cmp(
            "train.gen_update",
            show(&self.train.gen_update),
            show(&stored.train.gen_update),
        );
        // The shards fix the bank's layout and the micro-batches (re-sharding
        // would not continue the run exactly).
        cmp(
            "dist.shards",
            show(&self.dist.shards),
            show(&stored.dist.shards),
        );
        let ema = |o: &AdamConfig| if o.ema_decay.is_some() { "on" } else { "off" }.to_string();
        cmp(
            "ebm_optim.ema_decay (EMA on/off)",
            ema(&self.ebm_optim),
            ema(&stored.ebm_optim),
        );
        cmp(
            "gen_optim.ema_decay (EMA on/off)",
            ema(&self.gen_optim),
            ema(&stored.gen_optim),
        );
        if changed.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "cannot change across a resume: {}",
                changed.join("; ")
            )))
        }
    }
}

/// Builds a [`Config`] from TOML fragments and single `key = value` settings.
///
/// The builder keeps a TOML document; [`ConfigBuilder::build`] deserialises and
/// validates it. A failed [`ConfigBuilder::set`] leaves the document unchanged.
#[derive(Clone, Debug, Default)]
pub struct ConfigBuilder {
    doc: toml::Table,
}

impl ConfigBuilder {
    /// An empty builder (building it gives [`Config::default`]).
    pub fn new() -> Self {
        ConfigBuilder::default()
    }

    /// Merges a TOML document over the current one (its keys win; a table whose
    /// `kind` changes is replaced, not merged).
    ///
    /// # Errors
    /// [`Error::Config`] for syntax errors; the document is unchanged then.
    pub fn merge_toml_str(&mut self, text: &str) -> Result<()> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Error::Config(format!("TOML syntax: {}", clip(&e.to_string())))
        })?;
        let mut doc = self.doc.clone();
        merge(&mut doc, table);
        check_by_building(&doc)?;
        self.doc = doc;
        Ok(())
    }

    /// Sets one dotted key, e.g. `set("langevin.steps", "50")`,
    /// `set("backend", "tch:cuda:0")`, `set("model.energy.kind", "mlp")`. The
    /// value is parsed as a TOML value (number, boolean, array, inline table or
    /// quoted string); anything that does not parse is taken as a bare string.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty key, an unknown key (with a suggestion), a
    /// wrong type or an out-of-range value, under a context naming the key and
    /// value ([`Error::root`] is the config error); the builder is unchanged then.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let parts: Vec<&str> = key.split('.').map(str::trim).collect();
        if key.trim().is_empty() || parts.iter().any(|p| p.is_empty()) {
            return Err(Error::Config(format!("invalid key `{key}`")));
        }
        let parsed = parse_value(value).with_context(|| format!("setting {key}"))?;
        let mut doc = self.doc.clone();
        let mut table = &mut doc;
        for p in &parts[..parts.len() - 1] {
            let entry = table
                .entry((*p).to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(Error::Config(format!(
                        "`{p}` in `{key}` is a value, not a section"
                    )));
                }
            };
        }
        let last = parts[parts.len() - 1];
        // Changing a tagged section's kind drops its now-unrelated keys.
        if last == "kind" && table.get("kind").and_then(toml::Value::as_str) != parsed.as_str() {
            table.clear();
        }
        table.insert(last.to_string(), parsed);
        check_by_building(&doc).with_context(|| format!("setting {key} = {}", clip(value)))?;
        self.doc = doc;
        Ok(())
    }

    /// Removes a dotted key (e.g. `model.generator`) so that its default applies.
    ///
    /// # Errors
    /// [`Error::Config`] if the key is not set, or removing it leaves an invalid
    /// document; the builder is unchanged then.
    pub fn unset(&mut self, key: &str) -> Result<()> {
        let parts: Vec<&str> = key.split('.').map(str::trim).collect();
        let mut doc = self.doc.clone();
        let mut table = &mut doc;
        for p in &parts[..parts.len() - 1] {
            table = match table.get_mut(*p) {
                Some(toml::Value::Table(t)) => t,
                _ => return Err(Error::Config(format!("`{key}` is not set"))),
            };
        }
        if table.remove(parts[parts.len() - 1]).is_none() {
            return Err(Error::Config(format!("`{key}` is not set")));
        }
        check_by_building(&doc)?;
        self.doc = doc;
        Ok(())
    }

    /// Resolves the preset (if any), deserialises and validates.
    ///
    /// # Errors
    /// [`Error::Config`] for unknown keys, wrong types, unknown presets and
    /// out-of-range values.
    pub fn build(&self) -> Result<Config> {
        let mut doc = self.doc.clone();
        // Only the caller's own document counts as asking for a generator: a
        // preset's generator is dropped when the chosen mode has none.
        let explicit_generator = doc.get("model").and_then(|m| m.get("generator")).is_some();
        let preset = doc
            .get("preset")
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::Config("preset must be a string".into()))
            })
            .transpose()?;
        if let Some(name) = &preset {
            let base_text = presets::text(name)?;
            let mut base: toml::Table = base_text
                .parse()
                .map_err(|e| Error::Config(format!("preset `{name}`: {e}")))?;
            merge(&mut base, doc);
            doc = base;
        }
        if let Some(path) = array_of_tables(&doc, "") {
            return Err(Error::Config(format!(
                "`{path}` is an array of tables (`[[{path}]]`); no key of the configuration is: write `[{path}]`"
            )));
        }
        // Which blocks move is the mode's decision: a value written in the
        // document must agree with it (checked below), and the built
        // configuration always holds the mode's values.
        let explicit_block = |key: &str| {
            doc.get("langevin")
                .and_then(|l| l.get(key))
                .and_then(toml::Value::as_bool)
        };
        let (lat, res) = (
            explicit_block("update_latents"),
            explicit_block("update_res"),
        );
        let mut cfg: Config = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(suggest::explain(&e.to_string())))?;
        let (mode_lat, mode_res) = crate::train::mode_blocks(cfg.train.mode);
        cfg.langevin.update_latents = lat.unwrap_or(mode_lat);
        cfg.langevin.update_res = res.unwrap_or(mode_res);
        crate::train::check_blocks(cfg.train.mode, &cfg.langevin)?;
        // The default model has a generator; generator-less modes drop it unless
        // the document asked for one explicitly (then validation reports it).
        if !cfg.train.mode.has_generator() && !explicit_generator {
            cfg.model.generator = None;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The current TOML document (without the preset expanded).
    pub fn document(&self) -> String {
        toml::to_string(&self.doc).unwrap_or_default()
    }
}

/// Deserialises a document to catch unknown keys and type errors early (range
/// checks of cross-field constraints run in [`ConfigBuilder::build`]).
fn check_by_building(doc: &toml::Table) -> Result<()> {
    let b = ConfigBuilder { doc: doc.clone() };
    match b.build() {
        Ok(_) => Ok(()),
        // A partial document may legitimately miss cross-field requirements
        // (e.g. a mode set before its generator): only syntax-level errors are
        // fatal here, i.e. unknown keys, wrong types and single-knob ranges.
        Err(Error::Config(m)) if is_cross_field(&m) => Ok(()),
        Err(e) => Err(e),
    }
}

fn is_cross_field(msg: &str) -> bool {
    msg.contains("needs a [model.generator]")
        || msg.contains("has no generator")
        || msg.contains("needs model.pretrained_generator")
        || msg.contains("does not match model.energy")
        || msg.contains("must be >= train.batch_size")
}

/// Parses the value of one `key = value` setting: a single TOML value, or
/// else a bare string. Text that parses as more than one TOML entry (e.g.
/// `1\n[train]\nsteps = 5`) or a bare string with control characters is
/// refused rather than silently cut to its first value.
fn parse_value(value: &str) -> Result<toml::Value> {
    let v = value.trim();
    match format!("v = {v}").parse::<toml::Table>() {
        Ok(mut t) => match (t.remove("v"), t.is_empty()) {
            (Some(x), true) => Ok(x),
            _ => Err(Error::Config(format!(
                "value `{}` is more than one TOML value (set one key at a time)",
                clip(&v.escape_debug().to_string())
            ))),
        },
        Err(_) if v.chars().any(char::is_control) => Err(Error::Config(format!(
            "value `{}` holds a control character (a newline?) and is not a TOML value; quote it as a TOML string",
            clip(&v.escape_debug().to_string())
        ))),
        Err(_) => Ok(toml::Value::String(v.to_string())),
    }
}

/// The longest user text quoted back in an error message, in characters.
const QUOTE_MAX: usize = 200;

/// `text` shortened to [`QUOTE_MAX`] characters per line for an error message
/// (a 3 MB value must not become a 3 MB message).
pub(crate) fn clip(text: &str) -> String {
    text.lines()
        .map(|l| {
            let n = l.chars().count();
            if n > QUOTE_MAX {
                let head: String = l.chars().take(QUOTE_MAX).collect();
                format!("{head}… ({} more characters)", n - QUOTE_MAX)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The dotted path of the first array of tables in `t`, if any.
fn array_of_tables(t: &toml::Table, prefix: &str) -> Option<String> {
    t.iter().find_map(|(k, v)| {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(sub) => array_of_tables(sub, &path),
            toml::Value::Array(a) if a.iter().any(toml::Value::is_table) => Some(path),
            _ => None,
        }
    })
}

/// Recursive merge: `over`'s keys win; sub-tables merge unless their `kind` differs.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => {
                let kind_changes = o.get("kind").is_some_and(|ok| b.get("kind") != Some(ok));
                if kind_changes {
                    *b = o;
                } else {
                    merge(b, o);
                }
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests;
