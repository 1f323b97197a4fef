//! Writes a preset's training and held-out splits (exactly as a run with that
//! preset and seed splits them) as `.npy` files, for the classifier training
//! script `bench/pytorch/train_classifier.py` (`scripts/train-classifiers.sh`).
//!
//! ```text
//! cargo run --release -p hatebm-rs --example export_split -- digits /tmp/split
//! ```
//! writes `train_x.npy` (`[n, ...sample]`, the loader's values), `train_y.npy`
//! (labels as f32), `heldout_x.npy` and `heldout_y.npy`.

use std::path::PathBuf;

use hatebm_rs::config::ConfigBuilder;
use hatebm_rs::data::npy::write_npy_f32;

fn main() -> hatebm_rs::Result<()> {
    let mut args = std::env::args().skip(1);
    let preset = args.next().unwrap_or_else(|| "digits".into());
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "split".into()));
    let mut b = ConfigBuilder::new();
    b.set("preset", &format!("\"{preset}\""))?;
    let config = b.build()?;
    let (train, held) = hatebm_rs::run::split_data(&config)?;
    let held =
        held.ok_or_else(|| hatebm_rs::Error::Config(format!("preset {preset} holds no data out")))?;
    std::fs::create_dir_all(&dir).map_err(|e| hatebm_rs::Error::io(&dir, e))?;
    for (name, set) in [("train", &train), ("heldout", &held)] {
        let mut shape = vec![set.len()];
        shape.extend_from_slice(set.sample_shape());
        write_npy_f32(dir.join(format!("{name}_x.npy")), &shape, set.data())?;
        let labels = set
            .labels()
            .ok_or_else(|| hatebm_rs::Error::Config(format!("{} has no labels", set.name())))?;
        let y: Vec<f32> = labels.iter().map(|&l| f32::from(l)).collect();
        write_npy_f32(dir.join(format!("{name}_y.npy")), &[y.len()], &y)?;
        println!(
            "{name}: {} samples of shape {:?}",
            set.len(),
            set.sample_shape()
        );
    }
    Ok(())
}
