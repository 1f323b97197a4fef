"""Trains the fixed classifier of the image metrics (issue 14; docs/metrics.md).

Input: a split exported by ``cargo run --release -p hatebm-rs --example export_split --
PRESET DIR`` (the preset's training and held-out splits, exactly as a run with its seed
splits them, in the loader's value range). Output: ``data/classifiers/<name>.safetensors``
with the MLP's weights ``fc{i}.weight`` ([out, in]) and ``fc{i}.bias``, and metadata:
the input shape, the layer widths, the held-out accuracy and this script's settings.

The network is an MLP with ReLU (features = the last hidden layer, the space of the
classifier-feature Frechet distance and of k-NN precision/recall). Training is full-batch-
free mini-batch Adam with a fixed seed on the CPU, in float32; the result is deterministic
for a given torch version (``torch.use_deterministic_algorithms``).

    .venv-torch/bin/python bench/pytorch/train_classifier.py --split /tmp/split-digits \
        --name digits_mlp --hidden 128 64 --epochs 60
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--hidden", type=int, nargs="+", required=True)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("data/classifiers"))
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    load = lambda n: np.load(args.split / n)
    xtr, ytr = load("train_x.npy"), load("train_y.npy").astype(np.int64)
    xho, yho = load("heldout_x.npy"), load("heldout_y.npy").astype(np.int64)
    shape = list(xtr.shape[1:])
    d = int(np.prod(shape))
    xtr = torch.from_numpy(xtr.reshape(len(xtr), d).astype(np.float32))
    xho = torch.from_numpy(xho.reshape(len(xho), d).astype(np.float32))
    ytr, yho = torch.from_numpy(ytr), torch.from_numpy(yho)
    classes = int(max(ytr.max(), yho.max())) + 1

    dims = [d, *args.hidden, classes]
    layers = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i + 2 < len(dims):
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        for s in range(0, len(xtr), args.batch):
            idx = perm[s : s + args.batch]
            loss = torch.nn.functional.cross_entropy(net(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc_tr = (net(xtr).argmax(1) == ytr).float().mean().item()
        pred = net(xho).argmax(1)
        correct = int((pred == yho).sum())
    acc = correct / len(yho)
    tensors = {}
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    for i, m in enumerate(linear):
        tensors[f"fc{i}.weight"] = m.weight.detach().contiguous()
        tensors[f"fc{i}.bias"] = m.bias.detach().contiguous()
    meta = {
        "kind": "mlp_relu_classifier",
        "input_shape": json.dumps(shape),
        "dims": json.dumps(dims),
        "classes": str(classes),
        "heldout_correct": str(correct),
        "heldout_n": str(len(yho)),
        "heldout_accuracy": f"{acc:.6f}",
        "train_accuracy": f"{acc_tr:.6f}",
        "trained_by": "bench/pytorch/train_classifier.py",
        "settings": json.dumps(
            {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        ),
        "torch": torch.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.safetensors"
    save_file(tensors, str(path), metadata=meta)
    print(f"{path}: dims {dims}, train accuracy {acc_tr:.4f}, held-out {correct}/{len(yho)} = {acc:.4f}")


if __name__ == "__main__":
    main()
