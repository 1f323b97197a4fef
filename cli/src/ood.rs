//! `hatebm ood`: out-of-distribution detection with a trained model. Scores
//! `n` held-out images of the run's data set — the split evaluation uses,
//! which the run never trained on ([`hatebm_rs::run::split_data`]) — and
//! every OOD set built from them ([`OodKind::ALL`]) with the energy and the
//! input-gradient norm, and writes the AUROCs and mean scores to `ood.json`.

use std::path::{Path, PathBuf};

use hatebm_rs::metrics::{ImageBatch, OodKind, OodReport, ood_report};
use hatebm_rs::noise::{NoiseKey, Stream, unique_indices};
use hatebm_rs::runtime::AnyModel;
use hatebm_rs::{Error, Result};
use serde::Serialize;

/// The options of `hatebm ood`.
#[derive(Debug)]
pub struct OodArgs {
    /// The checkpoint.
    pub checkpoint: PathBuf,
    /// Held-out images to score (at most the split's size).
    pub n: usize,
    /// Seed of the held-out subset and the noise sets.
    pub seed: u64,
    /// Score with the raw weights even if EMA weights exist.
    pub no_ema: bool,
    /// Output folder (default: the checkpoint's folder).
    pub out: Option<PathBuf>,
}

/// `ood.json`: where the numbers come from, then the report.
#[derive(Debug, Serialize)]
struct OodFile<'a> {
    checkpoint: String,
    iteration: u64,
    backend: String,
    data: &'a str,
    use_ema: bool,
    #[serde(flatten)]
    report: &'a OodReport,
}

/// Runs `hatebm ood`.
///
/// # Errors
/// Checkpoint and data loading errors; [`Error::InvalidArgument`] for a
/// model whose samples are not images, a run without a held-out split, or
/// `n = 0`; scoring and I/O errors.
pub fn cmd_ood(args: &OodArgs) -> Result<()> {
    let mut model = AnyModel::load(&args.checkpoint, None)?;
    let dims = model.image_dims().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "ood: the model's samples (shape {:?}) are not images",
            model.sample_shape()
        ))
    })?;
    let (_, held) = hatebm_rs::run::split_data(model.config())?;
    let held = held.ok_or_else(|| {
        Error::InvalidArgument(
            "ood: the run has no held-out split (eval.holdout_fraction = 0)".into(),
        )
    })?;
    let d: usize = dims.iter().product();
    if held.sample_len() != d {
        return Err(Error::shape("held-out images", &dims, held.sample_shape()));
    }
    let n = args.n.min(held.len());
    hatebm_rs::ensure!(
        n > 0,
        "ood: nothing to score (--n {}, {} held-out images)",
        args.n,
        held.len()
    );
    if n < args.n {
        log::warn!("ood: the held-out split has only {n} images; scoring all of them");
    }
    // A seeded random subset, not a prefix: the split keeps the data's order,
    // which may be sorted by label (MNIST-5k).
    let mut idx = unique_indices(
        NoiseKey::new(args.seed, Stream::Eval, [0x00d, 0]),
        n,
        held.len(),
    )?;
    idx.sort_unstable();
    let mut x = vec![0.0f32; n * d];
    held.gather(&idx, &mut x)?;
    let range = held.value_range().unwrap_or((-1.0, 1.0));
    let batch = ImageBatch {
        data: &x,
        n,
        dims,
        range,
    };
    let use_ema = !args.no_ema;
    let report = ood_report(&batch, &OodKind::ALL, args.seed, &mut |x, n| {
        model.scores(x, n, use_ema)
    })?;
    let dir = args.out.clone().unwrap_or_else(|| {
        args.checkpoint
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    });
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let file = OodFile {
        checkpoint: args.checkpoint.display().to_string(),
        iteration: model.iteration(),
        backend: model.backend_name(),
        data: held.name(),
        use_ema,
        report: &report,
    };
    let path = dir.join("ood.json");
    let text = serde_json::to_string_pretty(&file)
        .map_err(|e| Error::InvalidArgument(format!("ood.json: {e}")))?;
    std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;
    print_table(&report, held.name());
    eprintln!("hatebm: wrote {}", path.display());
    Ok(())
}

/// The report as a small table on stdout.
fn print_table(r: &OodReport, data: &str) {
    println!(
        "{n} images of {data} (mean energy {:.4}, mean |grad| {:.4}) vs OOD sets:",
        r.mean_energy_in,
        r.mean_grad_norm_in,
        n = r.num_samples
    );
    println!(
        "{:<10} {:>13} {:>15} {:>12} {:>12}",
        "set", "AUROC energy", "AUROC |grad|", "mean energy", "mean |grad|"
    );
    for s in &r.sets {
        println!(
            "{:<10} {:>13.4} {:>15.4} {:>12.4} {:>12.4}",
            s.name, s.auroc_energy, s.auroc_grad_norm, s.mean_energy, s.mean_grad_norm
        );
    }
}
