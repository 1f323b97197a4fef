"""Golden trajectories of MALA and HMC on a small SN-GAN energy, from an implementation
independent of the Rust one (autograd gradients, float64 throughout), written from the
equations of docs/samplers.md.

Energy: the EBMSNGAN32 (nch 3, ngf 16) weights of tests/golden/langevin_res.safetensors
(`param.*`); chains start at its `input.base` images; residual block only (no generator),
U_b(y) = H(y_b)/T + tau*|y_b|^2 (T = 1e-3, tau = 0.5), no clipping;
step sizes (MALA 0.12, HMC 0.08 with L = 3, m = 1.5) give a mix of acceptances and rejections.

* mala.safetensors: K MALA steps. Step k: xi = input.noise_res[k],
  y' = y - (eps^2/2) g(y) + eps xi, g = dU/dy;
  ln a = U(y) - U(y') + |xi|^2/2 - |y - y' + (eps^2/2) g(y')|^2 / (2 eps^2);
  accept iff ln(u) < ln a, u = input.uniform_res[k].
* hmc.safetensors: K HMC transitions, L leapfrog steps of size eps, mass m:
  p = sqrt(m) xi; half kick, L drifts (y += eps p / m) with full kicks between, half kick;
  dH = U(y_L) + |p_L|^2/(2m) - U(y) - |p|^2/(2m); accept iff ln(u) < -dH.

Stored (all F32): param.* (weights), input.y0 [B,3,32,32], input.noise_res [K,B,3,32,32],
input.uniform_res [K,B], output.y [K,B,3,32,32] (state after every step),
output.log_alpha [K,B] (MALA: ln a; HMC: -dH), output.accept [K,B] (0/1).
Metadata `config`: model, nch, ngf, method, steps, mcmc_temp, epsilon, tau_res,
leapfrog_steps, mass, plus `_min_decision_margin` (smallest |ln u - ln a| over all
decisions; the draw is repeated until it exceeds MARGIN, so float32 rounding cannot flip a
decision) and `_accept_fraction`.

    .venv-torch/bin/python bench/pytorch/make_sampler_goldens.py [--out tests/golden]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import hatebm_ref as ref

REPO = Path(__file__).resolve().parents[2]
MARGIN = 0.05  # in ln a; float32 evaluation errors are ~1e-2 at most here (see the test)


def load_energy() -> tuple[torch.nn.Module, torch.Tensor, dict[str, torch.Tensor]]:
    path = REPO / "tests/golden/langevin_res.safetensors"
    with safe_open(str(path), framework="pt") as f:
        cfg = json.loads(f.metadata()["config"])
        params = {k[len("param."):]: f.get_tensor(k) for k in f.keys() if k.startswith("param.")}
        base = f.get_tensor("input.base")
    ebm = ref.EBMSNGAN32(nch=cfg["nch"], ngf=cfg["ngf"])
    ebm.load_state_dict(params, strict=True)
    ebm = ebm.double().eval()
    for p in ebm.parameters():
        p.requires_grad_(False)
    return ebm, base, {"param." + k: v for k, v in params.items()}, cfg


def potential_and_grad(ebm, y: torch.Tensor, temp: float, tau: float):
    y = y.detach().requires_grad_(True)
    h = ebm(y)
    u = h / temp + tau * (y * y).flatten(1).sum(1)
    (g,) = torch.autograd.grad(u.sum(), y)
    return u.detach(), g.detach()


def mala(ebm, y0, noise, uniform, temp, eps, tau):
    s = eps * eps / 2.0
    y = y0.double()
    u, g = potential_and_grad(ebm, y, temp, tau)
    ys, las, accs = [], [], []
    for k in range(noise.shape[0]):
        xi = noise[k].double()
        yp = y - s * g + eps * xi
        up, gp = potential_and_grad(ebm, yp, temp, tau)
        r = (y - yp + s * gp).flatten(1)
        la = u - up + 0.5 * (xi.flatten(1) ** 2).sum(1) - (r**2).sum(1) / (2 * eps * eps)
        acc = torch.log(uniform[k].double()) < la
        m = acc.view(-1, 1, 1, 1)
        y = torch.where(m, yp, y)
        g = torch.where(m, gp, g)
        u = torch.where(acc, up, u)
        ys.append(y.clone())
        las.append(la)
        accs.append(acc)
    return torch.stack(ys), torch.stack(las), torch.stack(accs)


def hmc(ebm, y0, noise, uniform, temp, eps, tau, steps_l, mass):
    y = y0.double()
    u, g = potential_and_grad(ebm, y, temp, tau)
    ys, las, accs = [], [], []
    for k in range(noise.shape[0]):
        p = math.sqrt(mass) * noise[k].double()
        h0 = u + (p.flatten(1) ** 2).sum(1) / (2 * mass)
        yl, gl = y, g
        p = p - 0.5 * eps * gl
        for l in range(steps_l):
            yl = yl + eps * p / mass
            ul, gl = potential_and_grad(ebm, yl, temp, tau)
            p = p - (eps if l + 1 < steps_l else 0.5 * eps) * gl
        dh = ul + (p.flatten(1) ** 2).sum(1) / (2 * mass) - h0
        la = -dh
        acc = torch.log(uniform[k].double()) < la
        m = acc.view(-1, 1, 1, 1)
        y = torch.where(m, yl, y)
        g = torch.where(m, gl, g)
        u = torch.where(acc, ul, u)
        ys.append(y.clone())
        las.append(la)
        accs.append(acc)
    return torch.stack(ys), torch.stack(las), torch.stack(accs)


def generate(method: str, out: Path) -> None:
    ebm, base, params, src = load_energy()
    temp, tau = 1e-3, 0.5
    steps, steps_l, mass = (4, 1, 1.0) if method == "mala" else (3, 3, 1.5)
    eps = 0.12 if method == "mala" else 0.08
    y0 = base.float()
    b = y0.shape[0]
    for attempt in range(1, 200):
        gen = torch.Generator().manual_seed(1000 * attempt + (0 if method == "mala" else 1))
        noise = torch.randn(steps, *y0.shape, generator=gen, dtype=torch.float32)
        uniform = torch.rand(steps, b, generator=gen, dtype=torch.float32)
        if method == "mala":
            ys, las, accs = mala(ebm, y0, noise, uniform, temp, eps, tau)
        else:
            ys, las, accs = hmc(ebm, y0, noise, uniform, temp, eps, tau, steps_l, mass)
        margin = (torch.log(uniform.double()) - las).abs().min().item()
        frac = accs.double().mean().item()
        if margin > MARGIN and 0.0 < frac < 1.0:
            break
    else:
        raise SystemExit(f"{method}: no draw with a decision margin > {MARGIN}")
    cfg = {
        "model": src["model"], "nch": src["nch"], "ngf": src["ngf"], "method": method,
        "steps": steps, "mcmc_temp": temp, "epsilon": eps, "tau_res": tau,
        "leapfrog_steps": steps_l, "mass": mass, "_min_decision_margin": margin,
        "_accept_fraction": frac, "_draw_attempts": attempt,
    }
    tensors = dict(params)
    tensors.update({
        "input.y0": y0.contiguous(),
        "input.noise_res": noise.contiguous(),
        "input.uniform_res": uniform.contiguous(),
        "output.y": ys.float().contiguous(),
        "output.log_alpha": las.float().contiguous(),
        "output.accept": accs.float().contiguous(),
    })
    meta = {
        "description": f"{method.upper()} trajectory on EBMSNGAN32 (float64 reference)",
        "kind": method, "layout": "NCHW", "config": json.dumps(cfg, sort_keys=True),
    }
    save_file(tensors, str(out / f"{method}.safetensors"), metadata=meta)
    print(f"{method}: accept {frac:.2f}, margin {margin:.3f}, attempts {attempt}, "
          f"log_alpha {las.min().item():.3f}..{las.max().item():.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "tests/golden")
    args = ap.parse_args()
    torch.set_num_threads(2)
    for method in ("mala", "hmc"):
        generate(method, args.out)


if __name__ == "__main__":
    main()
