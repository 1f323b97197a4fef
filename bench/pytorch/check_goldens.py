"""Check the reference modules of hatebm_ref.py against the golden files.

Loads ``tests/golden/*.safetensors``, rebuilds each case with the modules of ``hatebm_ref``
(loading the golden weights with ``load_state_dict(strict=True)``, which proves the parameter
names), runs it in float64 and in float32 and prints the normwise error

    err = max|got - expected| / max|expected|

of every compared tensor, grouped by category (outputs, input gradients, parameter gradients,
...). Expected values are float64 results rounded to float32, so float64 runs should show
~1e-8 (the rounding of the expected values) and float32 runs ~1e-7.

Exit status 1 if any float32 error exceeds the golden README's recommended tolerance.

    .venv-torch/bin/python bench/pytorch/check_goldens.py [--golden-dir DIR] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from collections.abc import Callable

import torch
from safetensors import safe_open
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hatebm_ref as ref  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]

# Recommended float32 tolerances of tests/golden/README.md, per category.
TOLERANCE: dict[str, float] = {
    "output": 1e-5,
    "input grad": 1e-4,
    "param grad": 1e-4,
    "trajectory": 1e-5,
    "diagnostic": 1e-5,
    "adam state": 1e-4,
    "weights after step": 1e-5,  # golden: 1e-6*max|w| + 0.05*lr, checked separately below
}


class Golden:
    """Tensors and metadata of one golden file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.stem
        with safe_open(str(path), framework="pt") as f:
            self.meta = f.metadata() or {}
            self.tensors = {k: f.get_tensor(k) for k in f.keys()}
        self.kind = self.meta.get("kind", "")
        self.config = json.loads(self.meta.get("config", "{}"))

    def group(self, prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def normwise_error(got: Tensor, expected: Tensor) -> float:
    got = got.detach().to(torch.float64).reshape(expected.shape)
    expected = expected.to(torch.float64)
    scale = expected.abs().max().item()
    diff = (got - expected).abs().max().item()
    return diff / scale if scale > 0 else diff


class Report:
    """Collects errors per (case, dtype, category)."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.worst: dict[tuple[str, str, str], tuple[float, str]] = {}
        self.extra_failures: list[str] = []

    def add(self, case: str, dtype: torch.dtype, category: str, name: str,
            got: Tensor, expected: Tensor) -> None:
        err = normwise_error(got, expected)
        key = (case, str(dtype).replace("torch.", ""), category)
        if key not in self.worst or err > self.worst[key][0]:
            self.worst[key] = (err, name)
        if self.verbose:
            print(f"  {case:24s} {key[1]:8s} {category:18s} {name:40s} {err:.2e}")


def build_model(config: dict, prefix: str = "") -> nn.Module:
    """Module for a golden config; ``prefix`` selects e.g. ebm_/gen_ keys of two-model cases."""
    model = config[f"{prefix}model"]
    get = lambda key: config.get(f"{prefix}{key}", config.get(key))  # noqa: E731
    if model == "MLPEnergy":
        return ref.MLPEnergy(get("dims"))
    if model == "MLPGenerator":
        return ref.MLPGenerator(get("dims"))
    if model.startswith("EBMSNGAN"):
        return ref.EBMSNGAN(int(model[len("EBMSNGAN"):]), get("nch"), get("ngf"))
    if model.startswith("GenSNGAN"):
        factor = get("out_factor") if get("out_factor") is not None else get("factor")
        return ref.GenSNGAN(int(model[len("GenSNGAN"):]), get("nz"), get("ngf"), get("nch"),
                            factor)
    if model == "GenDecoder32":
        return ref.GenDecoder32(get("ngf"), get("nch"), get("out_factor"))
    raise ValueError(f"unknown model {model}")


def load_weights(model: nn.Module, state: dict[str, Tensor], dtype: torch.dtype) -> nn.Module:
    model.load_state_dict(state, strict=True)  # names and shapes must match exactly
    return model.to(dtype).eval()


def check_energy(g: Golden, dtype: torch.dtype, rep: Report) -> None:
    model = load_weights(build_model(g.config), g.group("param."), dtype)
    x = g.tensors["input.x"].to(dtype).requires_grad_(True)
    names = [n for n, _ in ref.trainable_parameters(model)]
    params = [p for _, p in ref.trainable_parameters(model)]
    u = model(x)
    grads = torch.autograd.grad(u.sum(), [x, *params])
    rep.add(g.name, dtype, "output", "energy", u, g.tensors["output.energy"])
    rep.add(g.name, dtype, "input grad", "grad_x", grads[0], g.tensors["output.grad_x"])
    for n, gp in zip(names, grads[1:], strict=True):
        rep.add(g.name, dtype, "param grad", n, gp, g.tensors[f"grad.{n}"])


def check_generator(g: Golden, dtype: torch.dtype, rep: Report) -> None:
    model = load_weights(build_model(g.config), g.group("param."), dtype)
    z = g.tensors["input.z"].to(dtype).requires_grad_(True)
    cot = g.tensors["input.cotangent"].to(dtype)
    names = [n for n, _ in ref.trainable_parameters(model)]
    params = [p for _, p in ref.trainable_parameters(model)]
    out = model(z)
    grads = torch.autograd.grad((out * cot).sum(), [z, *params])
    rep.add(g.name, dtype, "output", "G(z)", out, g.tensors["output.g"])
    rep.add(g.name, dtype, "input grad", "vjp.z", grads[0], g.tensors["vjp.z"])
    for n, gp in zip(names, grads[1:], strict=True):
        rep.add(g.name, dtype, "param grad", f"vjp.{n}", gp, g.tensors[f"vjp.{n}"])


def train_config(c: dict) -> ref.TrainConfig:
    fields = ref.TrainConfig.__dataclass_fields__
    return ref.TrainConfig(**{k: v for k, v in c.items() if k in fields})


def check_langevin_res(g: Golden, dtype: torch.dtype, rep: Report) -> None:
    model = load_weights(build_model(g.config), g.group("param."), dtype)
    ref.set_requires_grad(model, False)
    t = {k: v.to(dtype) for k, v in g.tensors.items()}
    trace: list[tuple[Tensor, Tensor]] = []
    res, diag = ref.langevin_residual(model, t["input.base"], t["input.res0"],
                                      t["input.noise_res"], train_config(g.config), trace)
    rep.add(g.name, dtype, "trajectory", "res", torch.stack([r for r, _ in trace]),
            g.tensors["output.res"])
    rep.add(g.name, dtype, "trajectory", "images", t["input.base"] + res,
            g.tensors["output.images"])
    rep.add(g.name, dtype, "input grad", "grad_res", torch.stack([gr for _, gr in trace]),
            g.tensors["output.grad_res"])
    rep.add(g.name, dtype, "diagnostic", "grad_norm_res", diag, g.tensors["output.grad_norm_res"])


def check_langevin_joint(g: Golden, dtype: torch.dtype, rep: Report) -> None:
    c = g.config
    ebm = load_weights(build_model(c, "ebm_"), g.group("ebm."), dtype)
    gen = load_weights(
        ref.GenSNGAN(int(c["gen_model"][len("GenSNGAN"):]), c["gen_nz"], c["gen_ngf"], c["nch"],
                     c["gen_factor"]),
        g.group("gen."), dtype)
    ref.set_requires_grad(ebm, False)
    ref.set_requires_grad(gen, False)
    t = {k: v.to(dtype) for k, v in g.tensors.items()}
    trace: list[tuple[Tensor, Tensor, Tensor]] = []
    z, res, diag_res, diag_lat = ref.langevin_joint(
        ebm, gen, t["input.z0"], t["input.res0"], t["input.noise_latent"], t["input.noise_res"],
        train_config(c), c["epsilon_latent"], trace)
    with torch.no_grad():
        images = gen(z) + res
    rep.add(g.name, dtype, "trajectory", "z", torch.stack([a for a, _, _ in trace]),
            g.tensors["output.z"])
    rep.add(g.name, dtype, "trajectory", "res", torch.stack([b for _, b, _ in trace]),
            g.tensors["output.res"])
    rep.add(g.name, dtype, "trajectory", "images", images, g.tensors["output.images"])
    rep.add(g.name, dtype, "input grad", "grad_res", torch.stack([r for _, _, r in trace]),
            g.tensors["output.grad_res"])
    rep.add(g.name, dtype, "diagnostic", "grad_norm_res", diag_res,
            g.tensors["output.grad_norm_res"])
    rep.add(g.name, dtype, "diagnostic", "grad_norm_latent", diag_lat,
            g.tensors["output.grad_norm_latent"])


def check_adam(g: Golden, dtype: torch.dtype, rep: Report) -> None:
    c = g.config
    names = sorted(g.group("input.param.").keys())
    params = [g.tensors[f"input.param.{n}"].to(dtype).clone() for n in names]
    opt = ref.KerasAdam(params, c["lr"], c["beta1"], c["beta2"], c["eps"], c["ema_decay"])
    for step in (1, 2):
        opt.apply([g.tensors[f"input.grad{step}.{n}"].to(dtype) for n in names])
        for i, n in enumerate(names):
            for what, got in (("param", opt.params[i]), ("m", opt.m[i]), ("v", opt.v[i]),
                              ("ema", opt.ema[i])):
                rep.add(g.name, dtype, "adam state", f"step{step}.{what}.{n}", got,
                        g.tensors[f"output.step{step}.{what}.{n}"])


def check_train_step(g: Golden, dtype: torch.dtype, rep: Report) -> None:
    c = g.config
    cfg = train_config(c)
    if c["ebm_model"] == "MLPEnergy":
        ebm = ref.MLPEnergy(c["ebm_dims"])
        gen: nn.Module = ref.MLPGenerator(c["gen_dims"])
    else:
        ebm = ref.EBMSNGAN(int(c["ebm_model"][len("EBMSNGAN"):]), c["nch"], c["ebm_ngf"])
        gen = ref.GenSNGAN(int(c["gen_model"][len("GenSNGAN"):]), c["gen_nz"], c["gen_ngf"],
                           c["nch"], c["gen_factor"])
    ebm = load_weights(ebm, g.group("ebm."), dtype)
    gen = load_weights(gen, g.group("gen."), dtype)
    if c["ebm_opt_decay"] != c["gen_opt_decay"]:
        raise ValueError("different EMA decays are not supported by this check")
    t = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in g.tensors.items()}
    state = ref.make_train_state(ebm, gen, t["input.bank_z"].clone(), t["input.bank_x"].clone(),
                                 cfg, ema_decay=c["ebm_opt_decay"])
    noise = ref.StepNoise(t["input.noise_init_latent"], t["input.noise_init_res"],
                          t["input.noise_res"], t["input.noise_data"], t["input.indices"])
    out = ref.train_step(state, t["input.data"], noise, cfg)

    n = g.name
    rep.add(n, dtype, "output", "loss_ebm", out.loss_ebm, g.tensors["output.loss_ebm"])
    rep.add(n, dtype, "output", "loss_gen", out.loss_gen, g.tensors["output.loss_gen"])
    rep.add(n, dtype, "diagnostic", "grad_norm_res", out.grad_norm_res,
            g.tensors["output.grad_norm_res"])
    for what, got in (("z", out.z), ("res", out.res), ("x_pos", out.x_pos), ("x_neg", out.x_neg),
                      ("bank_z", state.bank_z), ("bank_x", state.bank_x)):
        rep.add(n, dtype, "trajectory", what, got, g.tensors[f"output.{what}"])
    for net, opt, grads in (("ebm", state.ebm_opt, out.ebm_grads),
                            ("gen", state.gen_opt, out.gen_grads)):
        module = state.ebm if net == "ebm" else state.gen
        names = [name for name, _ in ref.trainable_parameters(module)]
        lr = c[f"{net}_lr"]
        for i, name in enumerate(names):
            rep.add(n, dtype, "param grad", f"{net}_grad.{name}", grads[i],
                    g.tensors[f"output.{net}_grad.{name}"])
            rep.add(n, dtype, "adam state", f"{net}_adam_m.{name}", opt.m[i],
                    g.tensors[f"output.{net}_adam_m.{name}"])
            rep.add(n, dtype, "adam state", f"{net}_adam_v.{name}", opt.v[i],
                    g.tensors[f"output.{net}_adam_v.{name}"])
            for what, got in (("", opt.params[i]), ("_ema", opt.ema[i])):
                exp = g.tensors[f"output.{net}{what}.{name}"]
                rep.add(n, dtype, "weights after step", f"{net}{what}.{name}", got, exp)
                # Golden tolerance for weights after an Adam step: 1e-6 * max|w| + 0.05 * lr.
                diff = (got.detach().double() - exp.double()).abs().max().item()
                bound = 1e-6 * exp.abs().max().item() + 0.05 * lr
                if dtype == torch.float32 and diff > bound:
                    rep.extra_failures.append(
                        f"{n} {net}{what}.{name}: |diff| {diff:.3e} > {bound:.3e}")
        # Buffers (BN running statistics) must be unchanged and equal to the golden state.
        for name, buf in module.named_buffers():
            rep.add(n, dtype, "trajectory", f"{net}.{name}", buf, g.tensors[f"output.{net}.{name}"])


CHECKS: dict[str, Callable[[Golden, torch.dtype, Report], None]] = {
    "energy": check_energy,
    "generator": check_generator,
    "langevin_res": check_langevin_res,
    "langevin_joint": check_langevin_joint,
    "adam": check_adam,
    "train_step": check_train_step,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--golden-dir", type=Path, default=REPO_ROOT / "tests" / "golden")
    ap.add_argument("--verbose", action="store_true", help="print every compared tensor")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    files = sorted(args.golden_dir.glob("*.safetensors"))
    if not files:
        print(f"no golden files in {args.golden_dir}", file=sys.stderr)
        return 1
    rep = Report(args.verbose)
    for path in files:
        g = Golden(path)
        check = CHECKS.get(g.kind)
        if check is None:
            print(f"skip {g.name}: unknown kind {g.kind!r}", file=sys.stderr)
            continue
        for dtype in (torch.float64, torch.float32):
            check(g, dtype, rep)

    print(f"torch {torch.__version__}, golden dir {args.golden_dir}")
    print("normwise error max|got-exp|/max|exp|, worst tensor per case and category\n")
    print(f"{'case':24s} {'category':18s} {'float64':>9s} {'float32':>9s}  worst float32 tensor")
    failures: list[str] = []
    by_case: dict[tuple[str, str], dict[str, tuple[float, str]]] = defaultdict(dict)
    for (case, dt, cat), val in rep.worst.items():
        by_case[(case, cat)][dt] = val
    worst_cat: dict[str, float] = defaultdict(float)
    for (case, cat), vals in sorted(by_case.items()):
        e64 = vals.get("float64", (float("nan"), ""))[0]
        e32, name32 = vals.get("float32", (float("nan"), ""))
        flag = ""
        if cat != "weights after step" and e32 > TOLERANCE[cat]:
            flag = "  FAIL"
            failures.append(f"{case} {cat} {name32}: {e32:.2e} > {TOLERANCE[cat]:.0e}")
        worst_cat[cat] = max(worst_cat[cat], e32)
        print(f"{case:24s} {cat:18s} {e64:9.2e} {e32:9.2e}  {name32}{flag}")
    print("\nworst float32 error per category:")
    for cat, e in sorted(worst_cat.items()):
        print(f"  {cat:18s} {e:.2e}")
    failures += rep.extra_failures
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("\nall float32 errors within the golden README tolerances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
