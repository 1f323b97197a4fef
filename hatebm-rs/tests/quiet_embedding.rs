//! A Rust program that depends only on the facade crate picks the backend from
//! a string at run time, trains a few iterations with its own observer, and
//! gets nothing on stderr (or stdout) that it did not ask for.
//!
//! The training runs in a child process (this test binary re-executed with
//! `HATEBM_QUIET_CHILD` set), so that the parent can capture the child's real
//! stderr, not the test harness's captured copy.

use std::process::Command;

use hatebm_rs::config::ConfigBuilder;
use hatebm_rs::run::{Event, Flow, Observer};
use hatebm_rs::runtime::AnyRun;

const CHILD: &str = "HATEBM_QUIET_CHILD";

#[derive(Default)]
struct Count {
    steps: u64,
    started: bool,
    saved: bool,
    finished: bool,
}

impl Observer for Count {
    fn on_event(&mut self, e: &Event<'_>) -> hatebm_rs::Result<Flow> {
        match e {
            Event::Started { .. } => self.started = true,
            Event::Step(p) => {
                self.steps += 1;
                assert_eq!(p.iteration, self.steps, "iterations count from 1");
            }
            Event::CheckpointSaved { path, .. } => self.saved = path.exists(),
            Event::Finished { complete, .. } => self.finished = *complete,
            _ => {}
        }
        Ok(Flow::Continue)
    }
}

fn child(dir: &str) {
    let backend = std::env::var("HATEBM_QUIET_BACKEND").unwrap_or_else(|_| "cpu".into());
    let mut b = ConfigBuilder::new();
    b.set("preset", "\"digits\"").unwrap();
    b.set("backend", &format!("\"{backend}\"")).unwrap();
    b.set("train.steps", "4").unwrap();
    b.set("train.batch_size", "16").unwrap();
    b.set("train.bank_size", "64").unwrap();
    b.set("eval.num_samples", "40").unwrap();
    b.set("output.progress", "\"always\"").unwrap();
    b.set("output.dir", &format!("\"{dir}\"")).unwrap();
    let mut run = AnyRun::new(b.build().unwrap()).unwrap();
    let mut c = Count::default();
    run.train(None, &mut c).unwrap();
    assert!(c.started && c.saved && c.finished, "events seen");
    assert_eq!(c.steps, 4);
}

#[test]
fn training_through_the_facade_prints_nothing() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(&dir);
        return;
    }
    let dir = std::env::temp_dir().join(format!("hatebm-quiet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "training_through_the_facade_prints_nothing",
            "--nocapture",
            "--quiet",
        ])
        .env(CHILD, &dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stderr}");
    assert!(
        stderr.trim().is_empty(),
        "the library wrote to stderr:\n{stderr}"
    );
    // The harness's own summary lines are all the child's stdout holds.
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with("running ") || line.starts_with("test result") || line == ".",
            "unexpected stdout line: {line}"
        );
    }
    // The file observer still wrote the output folder.
    for f in [
        "metrics.jsonl",
        "checkpoint.safetensors",
        "samples_final.png",
        "eval.json",
    ] {
        assert!(dir.join(f).exists(), "{f} written");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
