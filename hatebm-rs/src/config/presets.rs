//! Built-in presets: every row of the paper's hyper-parameter table (Appendix J,
//! reproduced in `docs/configuration.md`) and small presets that run on 2 CPU
//! cores. The TOML files live in the repository's `configs/` folder and are
//! embedded here, so `preset = "digits"` works without the files.

use crate::{Error, Result};

/// `(name, TOML text)` of every preset.
pub const PRESETS: &[(&str, &str)] = &[
    ("digits", include_str!("../../../configs/digits.toml")),
    ("toy2d", include_str!("../../../configs/toy2d.toml")),
    ("mnist", include_str!("../../../configs/mnist.toml")),
    ("mnist_mlp", include_str!("../../../configs/mnist_mlp.toml")),
    (
        "cifar10_synth",
        include_str!("../../../configs/cifar10_synth.toml"),
    ),
    (
        "celeba64_synth",
        include_str!("../../../configs/celeba64_synth.toml"),
    ),
    (
        "imagenet128_synth",
        include_str!("../../../configs/imagenet128_synth.toml"),
    ),
    (
        "cifar10_retrofit",
        include_str!("../../../configs/cifar10_retrofit.toml"),
    ),
    (
        "celeba64_refine",
        include_str!("../../../configs/celeba64_refine.toml"),
    ),
    (
        "cifar10_refine",
        include_str!("../../../configs/cifar10_refine.toml"),
    ),
];

/// The names of all presets.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

/// The TOML text of a preset.
///
/// # Errors
/// [`Error::Config`] for an unknown name (with the closest valid one).
pub fn text(name: &str) -> Result<&'static str> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let hint = super::suggest::closest(name, &names())
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            Error::Config(format!(
                "unknown preset `{name}`{hint}; presets: {}",
                names().join(", ")
            ))
        })
}
