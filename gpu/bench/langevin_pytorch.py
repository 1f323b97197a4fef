"""PyTorch eager reference for the GPU Langevin benchmark of scripts/gpu-check.sh.

Times K residual Langevin steps of EBMSNGAN32 (the modules of bench/pytorch/hatebm_ref.py,
Glorot-initialised, parameters not requiring grad) with the same per-step work as
libhatebm's sampler: energy and input gradient of sum(U)/T, per-sample gradient norms,
clipping of the drift at max_drift (tf.clip_by_norm form), x <- x - s*g + eps*xi with xi drawn
on the device (torch.randn), s = eps^2/2. Plain eager PyTorch: no torch.compile, no CUDA
graphs.

Prints one JSON object (and writes it to --json if given): median milliseconds per step over
--repeat timed calls of K steps, after one warm-up call.

    python3 gpu/bench/langevin_pytorch.py [--device cuda] [--nch 3] [--ngf 128] [--batch 128]
        [--steps 50] [--repeat 5] [--tf32] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "pytorch"))
import hatebm_ref as ref  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--nch", type=int, default=3)
    ap.add_argument("--ngf", type=int, default=128)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--temperature", type=float, default=1e-3)
    ap.add_argument("--eps", type=float, default=5e-4)
    ap.add_argument("--max-drift", type=float, default=2.5)
    ap.add_argument("--tf32", action="store_true",
                    help="allow TF32 in cuDNN convolutions (PyTorch's default; off = exact fp32)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    dev = torch.device(args.device)
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.manual_seed(0)
    ebm = ref.EBMSNGAN32(args.nch, args.ngf)
    ref.glorot_init_(ebm)
    ebm = ebm.to(dev).float().eval()
    for p in ebm.parameters():
        p.requires_grad_(False)

    s = args.eps * args.eps / 2.0
    clip = args.max_drift / s
    res0 = 0.5 * torch.randn(args.batch, args.nch, 32, 32, device=dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def call() -> float:
        res = res0.clone()
        for _ in range(args.steps):
            x = res.detach().requires_grad_(True)
            energy = ebm(x)
            (g,) = torch.autograd.grad(energy.sum() / args.temperature, x)
            with torch.no_grad():
                norms = torch.linalg.vector_norm(g.flatten(1), dim=1)
                g = g * (clip / torch.clamp(norms, min=clip)).view(-1, 1, 1, 1)
                res = res - s * g + args.eps * torch.randn_like(res)
        return float(energy.detach().mean())

    call()  # warm-up (cuDNN algorithm selection, allocator)
    sync()
    times = []
    for _ in range(max(args.repeat, 1)):
        sync()
        t0 = time.perf_counter()
        e = call()
        sync()
        times.append((time.perf_counter() - t0) * 1e3 / max(args.steps, 1))
    row = {
        "impl": "pytorch-eager",
        "torch": torch.__version__,
        "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
        "tf32": args.tf32,
        "nch": args.nch, "ngf": args.ngf, "batch": args.batch, "steps": args.steps,
        "ms_per_step_median": statistics.median(times),
        "ms_per_step": times,
        "mean_energy": e,
    }
    line = json.dumps(row)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
