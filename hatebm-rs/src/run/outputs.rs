//! What a run writes to its output folder: the metrics log (one JSON object per
//! line), evaluation lines, sample pictures and the training-curve plot — all
//! through one [`Observer`], [`FileOutputs`].

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::observer::{Event, Flow, Observer};
use crate::config::OutputConfig;
use crate::report::{GridOptions, ScatterOptions, save_image_grid, save_scatter_png};
use crate::train::StepStats;
use crate::{Error, Result};

/// Appends one JSON object per logged iteration to `metrics.jsonl`.
#[derive(Debug)]
pub struct MetricsLog {
    path: std::path::PathBuf,
    out: BufWriter<File>,
}

impl MetricsLog {
    /// Opens the log for appending. A resumed run's log must have each
    /// iteration once, so lines of iterations after `from_iteration` — left by
    /// a run that crashed after its last checkpoint, or by a later part of the
    /// run when an older checkpoint is resumed into the same folder — leave
    /// `path`; nothing is lost: the whole previous log is first kept beside it
    /// as `<stem>.superseded-<n>.jsonl` (the first free `n`), and a warning
    /// says so.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn open(path: &Path, from_iteration: u64) -> Result<Self> {
        trim_log_after(path, from_iteration)?;
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            out: BufWriter::new(f),
        })
    }

    /// Writes one line for iteration `step` (1-based count of completed iterations).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn write(
        &mut self,
        s: &StepStats,
        step: u64,
        sec_per_step: f64,
        lr_scale: f32,
        rollbacks: u32,
    ) -> Result<()> {
        let l = &s.langevin;
        let mh = l.mh.as_ref();
        let mut v = serde_json::json!({
            "step": step,
            "loss_ebm": s.loss_ebm,
            "energy_pos": s.energy_pos,
            "energy_neg": s.energy_neg,
            "loss_gen": s.loss_gen,
            "chain_energy": l.mean_energy,
            "drift_norm_res": l.drift_norm_res,
            "drift_norm_latent": l.drift_norm_latent,
            "clip_frac_res": l.clip_frac_res,
            "clip_frac_latent": l.clip_frac_latent,
            "latent_norm": l.mean_latent_norm,
            "sec_per_step": sec_per_step,
            "lr_scale": lr_scale,
            "rollbacks": rollbacks,
        });
        if let (Some(mh), Some(obj)) = (mh, v.as_object_mut()) {
            // Only with an MH method or the shadow monitor on (docs/samplers.md).
            obj.insert("mh_alpha_res".into(), serde_json::json!(mh.alpha_res));
            obj.insert("mh_alpha_latent".into(), serde_json::json!(mh.alpha_latent));
            obj.insert("mh_accept_res".into(), serde_json::json!(mh.accept_res));
            obj.insert(
                "mh_accept_latent".into(),
                serde_json::json!(mh.accept_latent),
            );
            obj.insert(
                "mh_suggested_eps_res".into(),
                serde_json::json!(mh.suggested_eps_res),
            );
            obj.insert(
                "mh_suggested_eps_latent".into(),
                serde_json::json!(mh.suggested_eps_latent),
            );
            obj.insert("mh_divergences".into(), serde_json::json!(mh.divergences));
        }
        writeln!(self.out, "{v}")
            .and_then(|()| self.out.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Removes the lines of iterations after `from_iteration` from a JSON-lines
/// log with a `step` field, keeping the previous log beside it first (see
/// [`MetricsLog::open`]). Nothing happens when no line is after it.
///
/// # Errors
/// [`Error::Io`].
pub fn trim_log_after(path: &Path, from_iteration: u64) -> Result<()> {
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let step_of = |l: &str| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64))
        };
        let (kept, dropped): (Vec<&str>, Vec<&str>) = text
            .lines()
            .partition(|l| step_of(l).is_some_and(|s| s <= from_iteration));
        if !dropped.is_empty() {
            let keep = superseded_path(path);
            crate::fsutil::write_atomic(&keep, text.as_bytes())?;
            log::warn!(
                "{} had {} lines after iteration {from_iteration} (from a later point of this run, or a crashed one); resuming at iteration {from_iteration} drops them from the log: the previous log is kept as {}",
                path.display(),
                dropped.len(),
                keep.display()
            );
            let mut body = kept.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            crate::fsutil::write_atomic(path, body.as_bytes())?;
        }
    }
    Ok(())
}

/// `dir/<stem>.superseded-<n>.jsonl` for the first `n ≥ 1` not taken.
fn superseded_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(|| "log".into(), |s| s.to_string_lossy().into_owned());
    (1u32..)
        .map(|n| path.with_file_name(format!("{stem}.superseded-{n}.jsonl")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| path.with_extension("superseded.jsonl"))
}

/// The observer that writes a run's output folder: `metrics.jsonl` (one line
/// every `output.log_every` iterations and at the end of each call, with the
/// mean seconds per iteration since the last line), `eval.jsonl` (periodic
/// evaluations), `eval.json` (the final one), `<name>.png` for every
/// [`Event::Samples`] and, when the run completes with `output.plot`,
/// `curves.svg`. [`Run::train`](super::Run::train) runs it before the caller's
/// observer; it prints nothing.
#[derive(Debug)]
pub struct FileOutputs {
    dir: PathBuf,
    log_every: u64,
    plot: bool,
    metrics: Option<MetricsLog>,
    target: u64,
    window: f64,
    window_n: u64,
}

impl FileOutputs {
    /// A writer for the folder and settings of `output`.
    pub fn new(output: &OutputConfig) -> Self {
        FileOutputs {
            dir: output.dir.clone(),
            log_every: output.log_every.max(1),
            plot: output.plot,
            metrics: None,
            target: 0,
            window: 0.0,
            window_n: 0,
        }
    }
}

impl Observer for FileOutputs {
    fn on_event(&mut self, event: &Event<'_>) -> Result<Flow> {
        match event {
            Event::Started {
                iteration, target, ..
            } => {
                std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
                if self.metrics.is_none() {
                    self.metrics = Some(MetricsLog::open(
                        &self.dir.join("metrics.jsonl"),
                        *iteration,
                    )?);
                    trim_log_after(&self.dir.join("eval.jsonl"), *iteration)?;
                }
                self.target = *target;
            }
            Event::Step(p) => {
                self.window += p.stats.seconds;
                self.window_n += 1;
                if p.iteration.is_multiple_of(self.log_every) || p.iteration == self.target {
                    let sec = self.window / self.window_n.max(1) as f64;
                    if let Some(m) = self.metrics.as_mut() {
                        m.write(p.stats, p.iteration, sec, p.lr_scale, p.rollbacks)?;
                    }
                    self.window = 0.0;
                    self.window_n = 0;
                }
            }
            Event::Samples(s) => save_picture(
                &self.dir.join(format!("{}.png", s.name)),
                s.data,
                s.n,
                s.image_dims,
                s.reference,
            )?,
            Event::Evaluated {
                report,
                is_final: false,
            } => append_eval_line(&self.dir.join("eval.jsonl"), report)?,
            Event::Evaluated {
                report,
                is_final: true,
            } => {
                let text = serde_json::to_string_pretty(report)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                crate::fsutil::write_atomic(&self.dir.join("eval.json"), text.as_bytes())?;
            }
            Event::Finished { complete: true, .. } if self.plot => plot_curves(&self.dir)?,
            _ => {}
        }
        Ok(Flow::Continue)
    }
}

/// Saves samples as a PNG: an image grid for image data (`dims = [C, H, W]`),
/// or a scatter plot for 2-D data (with `reference` points in another colour).
///
/// # Errors
/// I/O errors; [`Error::InvalidArgument`] for data that is neither.
pub fn save_picture(
    path: &Path,
    samples: &[f32],
    n: usize,
    dims: Option<[usize; 3]>,
    reference: Option<&[f32]>,
) -> Result<()> {
    match dims {
        Some([c, h, w]) => save_image_grid(path, samples, &[n, c, h, w], &GridOptions::default()),
        None if n > 0 && samples.len() == 2 * n => {
            // Data (reference) first in the first colour, samples in the second.
            match reference {
                Some(r) => save_scatter_png(path, r, Some(samples), &ScatterOptions::default()),
                None => save_scatter_png(path, samples, None, &ScatterOptions::default()),
            }
        }
        None => {
            log::info!(
                "not writing {}: samples are neither images nor 2-D points",
                path.display()
            );
            Ok(())
        }
    }
}

/// Plots the main curves of `metrics.jsonl` to `curves.svg`.
///
/// # Errors
/// I/O errors.
pub fn plot_curves(dir: &Path) -> Result<()> {
    let keys = [
        "loss_ebm",
        "energy_pos+energy_neg",
        "loss_gen",
        "drift_norm_res+drift_norm_latent",
        "clip_frac_res",
    ];
    crate::report::plot_metrics(dir.join("metrics.jsonl"), &keys, dir.join("curves.svg"))
}

/// Appends one evaluation as a JSON line (`step` plus the report's fields) to
/// `eval.jsonl`, the curve of the metrics over training.
///
/// # Errors
/// I/O errors.
pub fn append_eval_line(path: &Path, report: &super::EvalReport) -> Result<()> {
    let mut v = serde_json::to_value(report).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    v["step"] = serde_json::json!(report.iteration);
    for (k, fd) in &report.frechet {
        v[format!("fd_{k}")] = serde_json::json!(fd);
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(f, "{v}").map_err(|e| Error::io(path, e))
}
