//! What a run writes: the metrics log (one JSON object per line), the stderr
//! progress line, sample pictures and the training-curve plot.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use crate::config::ProgressMode;
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
    /// Opens the log for appending; lines of iterations after `from_iteration`
    /// (left by a run that crashed after its last checkpoint) are dropped, so a
    /// resumed run's log has no duplicates.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn open(path: &Path, from_iteration: u64) -> Result<Self> {
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64))
                        .is_some_and(|s| s <= from_iteration)
                })
                .collect();
            let mut body = kept.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            crate::fsutil::write_atomic(path, body.as_bytes())?;
        }
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
        let v = serde_json::json!({
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
        writeln!(self.out, "{v}")
            .and_then(|()| self.out.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// The `step / total, it/s, ETA` line on stderr.
#[derive(Debug)]
pub struct ProgressLine {
    on: bool,
    start: Instant,
    start_it: u64,
    total: u64,
    last_draw: Option<Instant>,
}

impl ProgressLine {
    /// A progress line for iterations `start_it .. total`.
    pub fn new(mode: ProgressMode, start_it: u64, total: u64) -> Self {
        let on = match mode {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
        };
        ProgressLine {
            on,
            start: Instant::now(),
            start_it,
            total,
            last_draw: None,
        }
    }

    /// Redraws (at most 5 times a second).
    pub fn update(&mut self, it: u64, s: &StepStats) {
        if !self.on
            || self
                .last_draw
                .is_some_and(|t| t.elapsed().as_millis() < 200 && it < self.total)
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        let done = it.saturating_sub(self.start_it).max(1) as f64;
        let el = self.start.elapsed().as_secs_f64();
        let rate = done / el.max(1e-9);
        let eta = (self.total.saturating_sub(it)) as f64 / rate.max(1e-12);
        let gen_txt = s
            .loss_gen
            .map(|g| format!(" loss_gen {g:.3e}"))
            .unwrap_or_default();
        eprint!(
            "\r[{it}/{}] {rate:.2} it/s, ETA {}  loss_ebm {:+.3e}{gen_txt}   ",
            self.total,
            fmt_secs(eta),
            s.loss_ebm
        );
    }

    /// Ends the line.
    pub fn finish(&mut self) {
        if self.on && self.last_draw.is_some() {
            eprintln!();
        }
    }
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
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
