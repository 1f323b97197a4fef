#!/usr/bin/env bash
# Retrains the fixed classifiers of the image metrics (data/classifiers/*.safetensors,
# hatebm_rs::metrics::Classifier) from the training splits a run with each preset uses
# (seed 0): exports the split with the Rust loader, then trains with PyTorch in the
# project venv (scripts/setup-torch.sh). The committed files were made by this script;
# rerunning it reproduces them for the same torch version (deterministic, 1 thread).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-torch.sh >/dev/null
py="$root/.venv-torch/bin/python"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cargo run --release -q -p hatebm-rs --example export_split -- digits "$tmp/digits"
"$py" bench/pytorch/train_classifier.py --split "$tmp/digits" --name digits_mlp --hidden 128 64 --epochs 60
cargo run --release -q -p hatebm-rs --example export_split -- mnist "$tmp/mnist"
"$py" bench/pytorch/train_classifier.py --split "$tmp/mnist" --name mnist5k_mlp --hidden 256 128 --epochs 30
