//! Checkpoints: everything a run needs to continue exactly, in one safetensors
//! file, written atomically.
//!
//! Tensors (PyTorch-style names, so a checkpoint's weights load in PyTorch):
//! `ebm.<p>`, `ebm_adam_m.<p>`, `ebm_adam_v.<p>`, `ebm_ema.<p>`, the same with
//! `gen` for the generator, and `bank.z` / `bank.x`. Metadata: the format name
//! and version, the library version, the full configuration (TOML), the
//! iteration, the optimiser step counters and learning-rate scales, the chain
//! seed, the data order state and the guard state. libhatebm's randomness is
//! addressed by `(seed, stream, counters)`, so these counters *are* the RNG
//! state.

use std::collections::HashMap;
use std::path::Path;

use crate::backend::Backend;
use crate::bank::Bank;
use crate::optim::{Adam, AdamState};
use crate::params::ParamSet;
use crate::train::{NetworksState, Trainer, TrainerState};
use crate::weights::TensorFile;
use crate::{Error, Result};

/// The `format` metadata value of a checkpoint.
pub const FORMAT: &str = "hatebm-checkpoint";
/// The current checkpoint format version.
pub const FORMAT_VERSION: u32 = 1;

type HostTensors = Vec<crate::params::HostTensor>;

fn push_params<B: Backend>(
    out: &mut HostTensors,
    be: &B,
    prefix: &str,
    params: &ParamSet<B>,
) -> Result<()> {
    for (name, shape, data) in params.to_host(be)? {
        out.push((format!("{prefix}.{name}"), shape, data));
    }
    Ok(())
}

fn push_opt<B: Backend>(
    out: &mut HostTensors,
    be: &B,
    prefix: &str,
    params: &ParamSet<B>,
    opt: &Adam<B>,
) -> Result<()> {
    let (ms, vs) = opt.moments();
    for (i, p) in params.iter().enumerate() {
        let n = &p.spec.name;
        if let Some(m) = &ms[i] {
            out.push((
                format!("{prefix}_adam_m.{n}"),
                p.spec.shape.clone(),
                be.to_host(m)?,
            ));
        }
        if let Some(v) = &vs[i] {
            out.push((
                format!("{prefix}_adam_v.{n}"),
                p.spec.shape.clone(),
                be.to_host(v)?,
            ));
        }
        if let Some(Some(e)) = opt.ema().map(|e| &e[i]) {
            out.push((
                format!("{prefix}_ema.{n}"),
                p.spec.shape.clone(),
                be.to_host(e)?,
            ));
        }
    }
    Ok(())
}

/// The trainer's state as host tensors plus metadata entries.
///
/// # Errors
/// Backend errors.
pub fn trainer_state<B: Backend>(t: &Trainer<B>) -> Result<(HostTensors, HashMap<String, String>)> {
    trainer_state_with_bank(t, t.bank())
}

/// [`trainer_state`] with the bank given separately (a data-parallel run's
/// whole bank, gathered from its ranks by [`Trainer::global_bank`]).
///
/// # Errors
/// Backend errors.
pub fn trainer_state_with_bank<B: Backend>(
    t: &Trainer<B>,
    bank: Option<&Bank<B>>,
) -> Result<(HostTensors, HashMap<String, String>)> {
    let be = t.be();
    let mut tensors = Vec::new();
    let mut meta = HashMap::new();
    push_params(&mut tensors, be, "ebm", t.energy().params())?;
    let ebm_opt = t.ebm_optimiser();
    push_opt(&mut tensors, be, "ebm", t.energy().params(), ebm_opt)?;
    meta.insert("ebm_adam_step".into(), ebm_opt.steps_taken().to_string());
    meta.insert("ebm_lr_scale".into(), ebm_opt.lr_scale().to_string());
    if let Some(g) = t.generator() {
        push_params(&mut tensors, be, "gen", g.params())?;
        if let Some(opt) = t.gen_optimiser() {
            push_opt(&mut tensors, be, "gen", g.params(), opt)?;
            meta.insert("gen_adam_step".into(), opt.steps_taken().to_string());
            meta.insert("gen_lr_scale".into(), opt.lr_scale().to_string());
        }
    }
    if let Some(bank) = bank {
        let x = &bank.x;
        tensors.push(("bank.x".into(), be.shape(x), be.to_host(x)?));
        if let Some(z) = &bank.z {
            tensors.push(("bank.z".into(), be.shape(z), be.to_host(z)?));
        }
    }
    meta.insert("iteration".into(), t.iteration().to_string());
    meta.insert("chain_seed".into(), t.seed().to_string());
    Ok((tensors, meta))
}

/// Writes a checkpoint atomically: the trainer's state plus `extra` metadata
/// (config, data order, guard state, ...).
///
/// # Errors
/// Backend errors or [`Error::Io`]; the previous file at `path` is intact on error.
pub fn save<B: Backend>(
    path: &Path,
    t: &Trainer<B>,
    extra: &HashMap<String, String>,
) -> Result<()> {
    save_with_bank(path, t, t.bank(), extra)
}

/// [`save`] with the bank given separately (see [`trainer_state_with_bank`]).
///
/// # Errors
/// As [`save`].
pub fn save_with_bank<B: Backend>(
    path: &Path,
    t: &Trainer<B>,
    bank: Option<&Bank<B>>,
    extra: &HashMap<String, String>,
) -> Result<()> {
    // A checkpoint reported as saved must load again: refuse a state the
    // loader would refuse (the file at `path` keeps its previous content).
    if let Some(problem) = t.check_state()? {
        return Err(Error::Diverged(format!(
            "refusing to write checkpoint {}: {problem} (the file keeps its previous content)",
            path.display()
        )));
    }
    if let Some(b) = bank {
        let be = t.be();
        if !be.all_finite(&b.x)? || !b.z.as_ref().map_or(Ok(true), |z| be.all_finite(z))? {
            return Err(Error::Diverged(format!(
                "refusing to write checkpoint {}: non-finite value in the bank (the file keeps its previous content)",
                path.display()
            )));
        }
    }
    let (tensors, mut meta) = trainer_state_with_bank(t, bank)?;
    meta.insert("format".into(), FORMAT.into());
    meta.insert("format_version".into(), FORMAT_VERSION.to_string());
    meta.insert("library_version".into(), env!("CARGO_PKG_VERSION").into());
    meta.insert("backend".into(), t.be().name());
    for (k, v) in extra {
        meta.insert(k.clone(), v.clone());
    }
    crate::weights::write(path, &tensors, &meta)
}

/// Refuses a stored tensor holding a NaN or an infinity (or, for a second
/// moment, a negative value), naming it and the first bad index.
fn check_host(context: &str, key: &str, data: &[f32], non_negative: bool) -> Result<()> {
    if let Some(i) = data
        .iter()
        .position(|v| !v.is_finite() || (non_negative && *v < 0.0))
    {
        return Err(Error::format(
            context,
            format!("tensor `{key}` holds {} at index {i}", data[i]),
        ));
    }
    Ok(())
}

/// A parsed checkpoint file.
#[derive(Debug)]
pub struct Checkpoint {
    /// The file's tensors and metadata.
    pub file: TensorFile,
    /// Where it came from (for messages).
    pub context: String,
    /// The folder it was read from (where a sharded run's bank files are).
    dir: Option<std::path::PathBuf>,
}

impl Checkpoint {
    /// Reads and checks a checkpoint's header (format, version).
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Format`] for a corrupt/truncated file, a file that
    /// is not a libhatebm checkpoint, or a newer format version.
    pub fn read(path: &Path) -> Result<Self> {
        let mut ck = Self::from_file(TensorFile::read(path)?, path.display().to_string())?;
        ck.dir = Some(
            path.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| std::path::PathBuf::from("."), Path::to_path_buf),
        );
        Ok(ck)
    }

    /// A checkpoint held in memory (`context` names it in messages).
    ///
    /// # Errors
    /// As [`Checkpoint::read`], without the I/O.
    pub fn from_bytes(bytes: &[u8], context: &str) -> Result<Self> {
        Self::from_file(TensorFile::from_bytes(bytes, context)?, context.to_string())
    }

    fn from_file(file: TensorFile, context: String) -> Result<Self> {
        match file.metadata.get("format").map(String::as_str) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(Error::format(
                    &context,
                    format!("not a libhatebm checkpoint (format `{other}`)"),
                ));
            }
            None => {
                return Err(Error::format(
                    &context,
                    "not a libhatebm checkpoint (no `format` metadata); to load plain weights use the weights API",
                ));
            }
        }
        let v: u32 = Self::parse_meta(&file, &context, "format_version")?;
        if v > FORMAT_VERSION {
            return Err(Error::format(
                &context,
                format!(
                    "checkpoint format version {v} is newer than this library's {FORMAT_VERSION}"
                ),
            ));
        }
        Ok(Checkpoint {
            file,
            context,
            dir: None,
        })
    }

    fn parse_meta<T: std::str::FromStr>(file: &TensorFile, context: &str, key: &str) -> Result<T> {
        let raw = file
            .metadata
            .get(key)
            .ok_or_else(|| Error::format(context, format!("metadata `{key}` missing")))?;
        raw.parse()
            .map_err(|_| Error::format(context, format!("metadata `{key}` = `{raw}` is malformed")))
    }

    /// A metadata value.
    ///
    /// # Errors
    /// [`Error::Format`] if missing or malformed.
    pub fn meta<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        Self::parse_meta(&self.file, &self.context, key)
    }

    /// The configuration the run was saved with.
    ///
    /// # Errors
    /// [`Error::Format`] if it is missing or does not parse.
    pub fn config(&self) -> Result<crate::config::Config> {
        self.config_builder()?
            .build()
            .map_err(|e| Error::format(&self.context, format!("stored config: {e}")))
    }

    /// A builder holding the stored configuration, to change a few keys of
    /// it before [`Run::resume`](super::Run::resume) (what `hatebm train
    /// --resume CK --set K=V` does).
    ///
    /// # Errors
    /// [`Error::Format`] if the stored configuration is missing or does not parse.
    pub fn config_builder(&self) -> Result<crate::config::ConfigBuilder> {
        let text = self
            .meta_str("config")
            .ok_or_else(|| Error::format(&self.context, "metadata `config` missing"))?;
        // Which blocks move follows from the stored mode. Checkpoints written
        // by earlier builds stored the defaults (`update_res = true`,
        // `update_latents = false`) whatever the mode, since the trainer
        // overrode them; dropping the two keys before the document is merged
        // (merging checks it, and a disagreeing value is a config error) keeps
        // those checkpoints loading, and loses nothing, as the mode restores them.
        let stored_err = |e: String| Error::format(&self.context, format!("stored config: {e}"));
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| stored_err(e.to_string()))?;
        if let Some(toml::Value::Table(l)) = doc.get_mut("langevin") {
            l.remove("update_res");
            l.remove("update_latents");
        }
        let text = toml::to_string(&doc).map_err(|e| stored_err(e.to_string()))?;
        let mut b = crate::config::ConfigBuilder::new();
        b.merge_toml_str(&text)
            .map_err(|e| stored_err(e.to_string()))?;
        Ok(b)
    }

    /// A metadata string, if present.
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.file.metadata.get(key).map(String::as_str)
    }

    fn load_set<B: Backend>(&self, be: &B, params: &mut ParamSet<B>, prefix: &str) -> Result<()> {
        let tensors = self.file.with_prefix(prefix);
        for (name, _, data) in &tensors {
            check_host(&self.context, &format!("{prefix}{name}"), data, false)?;
        }
        params.load_host(be, &tensors).map_err(|e| match e {
            Error::Param(m) => Error::format(&self.context, m),
            other => other,
        })
    }

    /// An optimiser's saved state (`keeps_ema`: whether the run's optimiser
    /// keeps an EMA, so the file must hold one).
    fn load_opt<B: Backend>(
        &self,
        be: &B,
        params: &ParamSet<B>,
        keeps_ema: bool,
        prefix: &str,
    ) -> Result<AdamState<B>> {
        let mut m = Vec::with_capacity(params.len());
        let mut v = Vec::with_capacity(params.len());
        let mut ema = Vec::with_capacity(params.len());
        for p in params.iter() {
            if !p.spec.trainable {
                m.push(None);
                v.push(None);
                ema.push(None);
                continue;
            }
            let get = |kind: &str| -> Result<Option<B::Tensor>> {
                let key = format!("{prefix}_{kind}.{}", p.spec.name);
                match self.file.f32(&key) {
                    Ok((shape, data)) => {
                        if shape != p.spec.shape.as_slice() {
                            return Err(Error::format(
                                &self.context,
                                format!("`{key}` has shape {shape:?}, expected {:?}", p.spec.shape),
                            ));
                        }
                        check_host(&self.context, &key, data, kind == "adam_v")?;
                        Ok(Some(be.from_host(data, shape)?))
                    }
                    Err(_) => Ok(None),
                }
            };
            let need = |t: Option<B::Tensor>, kind: &str| {
                t.ok_or_else(|| {
                    Error::format(
                        &self.context,
                        format!("optimiser tensor `{prefix}_{kind}.{}` missing", p.spec.name),
                    )
                })
            };
            m.push(Some(need(get("adam_m")?, "adam_m")?));
            v.push(Some(need(get("adam_v")?, "adam_v")?));
            ema.push(if keeps_ema {
                Some(need(get("ema")?, "ema")?)
            } else {
                None
            });
        }
        let step_key = format!("{prefix}_adam_step");
        let step: u64 = self.meta(&step_key)?;
        if step > Adam::<B>::MAX_STEP {
            return Err(Error::format(
                &self.context,
                format!(
                    "metadata `{step_key}` = {step} exceeds {}",
                    Adam::<B>::MAX_STEP
                ),
            ));
        }
        let scale_key = format!("{prefix}_lr_scale");
        let lr_scale: f32 = self.meta(&scale_key)?;
        if !(lr_scale.is_finite() && lr_scale > 0.0 && lr_scale <= 1.0) {
            return Err(Error::format(
                &self.context,
                format!(
                    "metadata `{scale_key}` = {lr_scale} is outside (0, 1] (the guard only lowers it from 1)"
                ),
            ));
        }
        Ok(AdamState {
            step,
            m,
            v,
            ema: keeps_ema.then_some(ema),
            lr_scale,
        })
    }

    /// Restores only the networks of a trainer built from the checkpoint's
    /// configuration — the weights of the energy and the generator, and their
    /// EMA weights where the optimisers keep an EMA — for sampling and
    /// scoring ([`super::TrainedModel`]). The trainer is untouched on error.
    ///
    /// # Errors
    /// [`Error::Format`] naming a missing, mis-shaped or non-finite tensor.
    pub fn restore_networks<B: Backend>(&self, t: &mut Trainer<B>) -> Result<()> {
        let be = t.be().clone();
        let mut energy = t.energy().params().clone();
        self.load_set(&be, &mut energy, "ebm.")?;
        let energy_ema = self.load_ema(&be, &energy, t.ebm_optimiser().has_ema(), "ebm")?;
        let mut generator = None;
        if let Some(g) = t.generator() {
            let mut gp = g.params().clone();
            self.load_set(&be, &mut gp, "gen.")?;
            let keeps = t.gen_optimiser().is_some_and(Adam::has_ema);
            let ema = self.load_ema(&be, &gp, keeps, "gen")?;
            generator = Some((gp, ema));
        }
        let iteration: u64 = self.meta("iteration")?;
        t.restore_networks(NetworksState {
            energy,
            energy_ema,
            generator,
            iteration,
        })
        .map_err(|e| Error::format(&self.context, e.to_string()))
    }

    /// The EMA tensors `{prefix}_ema.<p>` of the trainable parameters, when `keeps`.
    #[allow(clippy::type_complexity)]
    fn load_ema<B: Backend>(
        &self,
        be: &B,
        params: &ParamSet<B>,
        keeps: bool,
        prefix: &str,
    ) -> Result<Option<Vec<Option<B::Tensor>>>> {
        if !keeps {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(params.len());
        for p in params.iter() {
            if !p.spec.trainable {
                out.push(None);
                continue;
            }
            let key = format!("{prefix}_ema.{}", p.spec.name);
            let (shape, data) = self
                .file
                .f32(&key)
                .map_err(|_| Error::format(&self.context, format!("tensor `{key}` missing")))?;
            if shape != p.spec.shape.as_slice() {
                return Err(Error::format(
                    &self.context,
                    format!("`{key}` has shape {shape:?}, expected {:?}", p.spec.shape),
                ));
            }
            check_host(&self.context, &key, data, false)?;
            out.push(Some(be.from_host(data, shape)?));
        }
        Ok(Some(out))
    }

    /// Restores a trainer built from the checkpoint's configuration: weights,
    /// optimiser states, EMA, bank, iteration and chain seed. The trainer is
    /// untouched on error.
    ///
    /// # Errors
    /// [`Error::Format`] naming the missing or mis-shaped tensor.
    pub fn restore<B: Backend>(&self, t: &mut Trainer<B>) -> Result<()> {
        let be = t.be().clone();
        // Build the whole state first: the trainer changes only in the
        // final `Trainer::restore`, which checks it and is all-or-nothing.
        let mut energy = t.energy().params().clone();
        self.load_set(&be, &mut energy, "ebm.")?;
        let ebm_opt = self.load_opt(&be, &energy, t.ebm_optimiser().has_ema(), "ebm")?;
        let mut generator = None;
        if let Some(g) = t.generator() {
            let mut gp = g.params().clone();
            self.load_set(&be, &mut gp, "gen.")?;
            let gopt = match t.gen_optimiser() {
                Some(o) => Some(self.load_opt(&be, &gp, o.has_ema(), "gen")?),
                None => None,
            };
            generator = Some((gp, gopt));
        }
        let manifest = self.file.metadata.get(super::bank_shards::MANIFEST_KEY);
        let local_bank = match manifest {
            Some(m) if t.bank_layout().is_some() => {
                let dir = self.dir.as_deref().ok_or_else(|| {
                    Error::format(
                        &self.context,
                        "a sharded run's checkpoint keeps its bank in files next to it: read it from its file",
                    )
                })?;
                let it: u64 = self.meta("iteration")?;
                super::bank_shards::read_local(dir, &self.context, m, it, t)?
            }
            _ => None,
        };
        let bank = match &t.bank_layout() {
            _ if manifest.is_some() => None,
            None => None,
            Some(has_z) => {
                let x = self
                    .file
                    .f32("bank.x")
                    .map_err(|_| Error::format(&self.context, "tensor `bank.x` missing"))?;
                check_host(&self.context, "bank.x", x.1, false)?;
                let z = if *has_z {
                    let (s, d) = self
                        .file
                        .f32("bank.z")
                        .map_err(|_| Error::format(&self.context, "tensor `bank.z` missing"))?;
                    check_host(&self.context, "bank.z", d, false)?;
                    Some(be.from_host(d, s)?)
                } else {
                    None
                };
                Some(Bank::from_tensors(&be, z, be.from_host(x.1, x.0)?, 0)?)
            }
        };
        let iteration: u64 = self.meta("iteration")?;
        if iteration > i64::MAX as u64 {
            return Err(Error::format(
                &self.context,
                format!("metadata `iteration` = {iteration} exceeds {}", i64::MAX),
            ));
        }
        let chain_seed: u64 = self.meta("chain_seed")?;
        // A data-parallel rank keeps its own shards of the whole bank.
        let bank = match (bank, local_bank) {
            (Some(global), _) => Some(t.local_part_of_bank(global)?),
            (None, local) => local,
        };
        t.restore(TrainerState {
            energy,
            ebm_opt,
            generator,
            bank,
            iteration,
            seed: chain_seed,
        })
        .map_err(|e| Error::format(&self.context, e.to_string()))
    }
}
