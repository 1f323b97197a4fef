//! A Rust program that embeds libhatebm through the facade crate alone: it
//! picks the backend from a string at run time, trains a few iterations of the
//! `digits` preset with its own observer, and prints what it chose to print —
//! the library itself writes nothing to stdout or stderr.
//!
//! ```text
//! cargo run --release -p hatebm-rs --example embed -- cpu /tmp/hatebm-embed
//! ```

use std::path::PathBuf;

use hatebm_rs::config::ConfigBuilder;
use hatebm_rs::run::{Event, Flow, Observer};
use hatebm_rs::runtime::AnyRun;

/// Collects the EBM loss of every iteration and the checkpoints written.
#[derive(Debug, Default)]
struct Recorder {
    losses: Vec<f64>,
    checkpoints: Vec<PathBuf>,
}

impl Observer for Recorder {
    fn on_event(&mut self, event: &Event<'_>) -> hatebm_rs::Result<Flow> {
        match event {
            Event::Step(p) => self.losses.push(p.stats.loss_ebm),
            Event::CheckpointSaved { path, .. } => self.checkpoints.push(path.to_path_buf()),
            _ => {}
        }
        Ok(Flow::Continue)
    }
}

fn main() -> hatebm_rs::Result<()> {
    let mut args = std::env::args().skip(1);
    let backend = args.next().unwrap_or_else(|| "auto".into());
    let dir = args.next().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("hatebm-embed")
            .display()
            .to_string()
    });
    let mut b = ConfigBuilder::new();
    b.set("preset", "\"digits\"")?;
    b.set("backend", &format!("\"{backend}\""))?;
    b.set("train.steps", "5")?;
    b.set("output.dir", &format!("\"{dir}\""))?;
    let mut run = AnyRun::new(b.build()?)?;
    let mut rec = Recorder::default();
    run.train(None, &mut rec)?;
    println!(
        "{} iterations on {}; EBM losses {:?}; checkpoints {:?}",
        rec.losses.len(),
        run.backend_name(),
        rec.losses,
        rec.checkpoints
    );
    Ok(())
}
