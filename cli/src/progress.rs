//! The terminal progress bar of `hatebm train`: an [`Observer`] of the run,
//! drawn with `indicatif` on stderr. `output.progress = "auto"` draws it only
//! when stderr is a terminal; `"always"` prints a plain line every 10 % of the
//! run when it is not (CI logs); `"never"` draws nothing.

use std::io::IsTerminal;

use hatebm_rs::Result;
use hatebm_rs::config::ProgressMode;
use hatebm_rs::run::{Event, Flow, GuardAction, Observer};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `total` iterations for `mode` (hidden when it should not draw).
pub fn plain_bar(total: u64, mode: ProgressMode) -> ProgressBar {
    let draw = match mode {
        ProgressMode::Never => false,
        ProgressMode::Auto | ProgressMode::Always => std::io::stderr().is_terminal(),
    };
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if draw {
            ProgressDrawTarget::stderr_with_hz(5)
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "[{pos}/{len}] {per_sec:.1}, ETA {eta} {wide_bar:.cyan/blue} {msg}",
        )
        .expect("a valid template"),
    );
    bar
}

/// The training observer.
#[derive(Debug)]
pub struct Bar {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    plain_lines: bool,
    next_line: u64,
    total: u64,
}

impl Bar {
    pub fn new(mode: ProgressMode) -> Self {
        Bar {
            mode,
            bar: None,
            plain_lines: mode == ProgressMode::Always && !std::io::stderr().is_terminal(),
            next_line: 0,
            total: 0,
        }
    }

    /// Clears the bar (call when training ends, also on error).
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    fn println(&self, msg: String) {
        match &self.bar {
            Some(b) if !b.is_hidden() => b.suspend(|| eprintln!("{msg}")),
            _ => eprintln!("{msg}"),
        }
    }
}

impl Observer for Bar {
    fn on_event(&mut self, event: &Event<'_>) -> Result<Flow> {
        match event {
            Event::Started {
                iteration, total, ..
            } => {
                let b = plain_bar(*total, self.mode);
                b.set_position(*iteration);
                b.reset_eta();
                self.bar = Some(b);
                self.total = *total;
                self.next_line = *iteration + (*total / 10).max(1);
            }
            Event::Step(p) => {
                let gen_txt = p
                    .stats
                    .loss_gen
                    .map(|g| format!(" loss_gen {g:.3e}"))
                    .unwrap_or_default();
                let msg = format!("loss_ebm {:+.3e}{gen_txt}", p.stats.loss_ebm);
                if self.plain_lines && (p.iteration >= self.next_line || p.iteration == p.total) {
                    self.next_line = p.iteration + (self.total / 10).max(1);
                    eprintln!("[{}/{}] {msg}", p.iteration, p.total);
                }
                if let Some(b) = &self.bar {
                    b.set_position(p.iteration);
                    b.set_message(msg);
                }
            }
            Event::Guard {
                iteration,
                problem,
                action: GuardAction::RolledBack { to_iteration, .. },
            } => self.println(format!(
                "hatebm: guard: iteration {iteration}: {problem}; rolled back to {to_iteration}"
            )),
            _ => {}
        }
        Ok(Flow::Continue)
    }
}
