"""PyTorch reference networks and the conditional Hat EBM training step.

The modules follow ``tests/golden/README.md`` exactly: architectures, parameter names (the
``state_dict`` keys equal the golden tensor names without their ``param.`` / ``ebm.`` /
``gen.`` prefix), batch norm in inference mode with eps 1e-3, bilinear x2 upsampling with
half-pixel centres, and the stem block that pools *before* its 1x1 shortcut conv.
``check_goldens.py`` verifies them against the golden files; ``bench.py`` times them.

Everything here is plain PyTorch (no torch.compile, no custom kernels), float32 unless the
caller casts a module with ``.double()``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BN_EPS = 1e-3
LEAKY_SLOPE = 0.2
BOTTOM_WIDTH = 4


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """3x3 conv, stride 1, zero padding 1 (Keras 'SAME'), with bias."""
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True)


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    """1x1 conv (Keras 'VALID'), with bias (Keras default)."""
    return nn.Conv2d(cin, cout, kernel_size=1, stride=1, padding=0, bias=True)


def upsample2x(x: Tensor) -> Tensor:
    """Bilinear x2 with half-pixel centres (= Keras UpSampling2D(interpolation='bilinear'))."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def avgpool2x(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=2)


class BatchNormInference(nn.Module):
    """Batch norm that is always in inference mode (the generator is only ever called with
    training=False): y = (x - running_mean) / sqrt(running_var + eps) * weight + bias.

    Unlike ``nn.BatchNorm2d`` it has no ``num_batches_tracked`` buffer, so the ``state_dict``
    keys are exactly ``weight``, ``bias``, ``running_mean``, ``running_var``.
    """

    def __init__(self, channels: int, eps: float = BN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            training=False, momentum=0.0, eps=self.eps,
        )


# --------------------------------------------------------------------------------------------
# Energy networks
# --------------------------------------------------------------------------------------------


class MLPEnergy(nn.Module):
    """fc1..fcL with LeakyReLU(0.2) after every layer but the last; output squeezed to [B]."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        if len(dims) < 2 or dims[-1] != 1:
            raise ValueError(f"MLPEnergy dims must end with 1, got {list(dims)}")
        self.dims = list(dims)
        for i in range(len(dims) - 1):
            self.add_module(f"fc{i + 1}", nn.Linear(dims[i], dims[i + 1]))

    def forward(self, x: Tensor) -> Tensor:
        n = len(self.dims) - 1
        for i in range(n):
            x = getattr(self, f"fc{i + 1}")(x)
            if i + 1 < n:
                x = F.leaky_relu(x, LEAKY_SLOPE)
        return x.squeeze(-1)


class EBMBlockStem(nn.Module):
    """Block 1: h = conv2(relu(conv1(x))) [-> pool]; shortcut = x [-> pool] -> 1x1 conv."""

    def __init__(self, cin: int, cout: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = conv3x3(cin, cout)
        self.conv2 = conv3x3(cout, cout)
        self.shortcut = conv1x1(cin, cout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.conv1(x)))
        s = x
        if self.downsample:
            h = avgpool2x(h)
            s = avgpool2x(s)  # pool *before* the 1x1 conv
        return h + self.shortcut(s)


class EBMBlock(nn.Module):
    """h = conv2(relu(conv1(relu(x)))) [-> pool]; shortcut = x [-> 1x1 conv] [-> pool]."""

    def __init__(self, cin: int, cout: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = conv3x3(cin, cout)
        self.conv2 = conv3x3(cout, cout)
        self.shortcut: nn.Module | None = (
            conv1x1(cin, cout) if (cin != cout or downsample) else None
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        s = x if self.shortcut is None else self.shortcut(x)
        if self.downsample:
            h = avgpool2x(h)
            s = avgpool2x(s)
        return h + s


@dataclass(frozen=True)
class EBMBlockSpec:
    """One residual block of an EBMSNGAN network (also used to count FLOPs)."""

    cin: int
    cout: int
    downsample: bool
    stem: bool


def ebm_sngan_specs(res: int, nch: int, ngf: int) -> list[EBMBlockSpec]:
    """Blocks of EBMSNGAN32/64/128 as in the golden README."""
    if res == 32:
        return [
            EBMBlockSpec(nch, ngf, True, True),
            EBMBlockSpec(ngf, ngf, True, False),
            EBMBlockSpec(ngf, ngf, False, False),
            EBMBlockSpec(ngf, ngf, False, False),
        ]
    if res in (64, 128):
        if ngf % 16:
            raise ValueError(f"EBMSNGAN{res} needs ngf divisible by 16, got {ngf}")
        chans = [ngf // 16, ngf // 8, ngf // 4, ngf // 2, ngf]
        specs = [EBMBlockSpec(nch, chans[0], True, True)]
        specs += [EBMBlockSpec(chans[i - 1], chans[i], True, False) for i in range(1, 5)]
        if res == 128:
            specs.append(EBMBlockSpec(ngf, ngf, False, False))
        return specs
    raise ValueError(f"EBMSNGAN resolution must be 32, 64 or 128, got {res}")


class EBMSNGAN(nn.Module):
    """SNGAN-style energy network (no spectral norm): blocks -> ReLU -> global average pool
    -> linear to 1 without bias. Input [B, nch, res, res], output U(x) of shape [B]."""

    def __init__(self, res: int, nch: int, ngf: int) -> None:
        super().__init__()
        self.res, self.nch, self.ngf = res, nch, ngf
        self.specs = ebm_sngan_specs(res, nch, ngf)
        for i, s in enumerate(self.specs):
            block_cls = EBMBlockStem if s.stem else EBMBlock
            self.add_module(f"block{i + 1}", block_cls(s.cin, s.cout, s.downsample))
        self.fc = nn.Linear(self.specs[-1].cout, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for i in range(len(self.specs)):
            h = getattr(self, f"block{i + 1}")(h)
        h = F.relu(h).mean(dim=(2, 3))
        return self.fc(h).squeeze(-1)


def EBMSNGAN32(nch: int, ngf: int) -> EBMSNGAN:  # noqa: N802 (golden class-like name)
    return EBMSNGAN(32, nch, ngf)


def EBMSNGAN64(nch: int, ngf: int) -> EBMSNGAN:  # noqa: N802
    return EBMSNGAN(64, nch, ngf)


def EBMSNGAN128(nch: int, ngf: int) -> EBMSNGAN:  # noqa: N802
    return EBMSNGAN(128, nch, ngf)


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------


class MLPGenerator(nn.Module):
    """fc1..fcL with LeakyReLU(0.2) after every layer but the last; linear output."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = list(dims)
        for i in range(len(dims) - 1):
            self.add_module(f"fc{i + 1}", nn.Linear(dims[i], dims[i + 1]))

    def forward(self, z: Tensor) -> Tensor:
        n = len(self.dims) - 1
        for i in range(n):
            z = getattr(self, f"fc{i + 1}")(z)
            if i + 1 < n:
                z = F.leaky_relu(z, LEAKY_SLOPE)
        return z


class GenBlock(nn.Module):
    """h = conv2(relu(bn2(conv1(up(relu(bn1(x))))))); shortcut = x [-> up] [-> 1x1 conv]."""

    def __init__(self, cin: int, cout: int, upsample: bool) -> None:
        super().__init__()
        self.upsample = upsample
        self.bn1 = BatchNormInference(cin)
        self.conv1 = conv3x3(cin, cout)
        self.bn2 = BatchNormInference(cout)
        self.conv2 = conv3x3(cout, cout)
        self.shortcut: nn.Module | None = (
            conv1x1(cin, cout) if (cin != cout or upsample) else None
        )

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(x))
        if self.upsample:
            h = upsample2x(h)
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        s = upsample2x(x) if self.upsample else x
        if self.shortcut is not None:
            s = self.shortcut(s)
        return h + s


class GenBlockStem(nn.Module):
    """Retrofit decoder block 1: h = conv2(relu(bn2(conv1(x)))); shortcut = 1x1 conv(x)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(cin, cout)
        self.bn2 = BatchNormInference(cout)
        self.conv2 = conv3x3(cout, cout)
        self.shortcut = conv1x1(cin, cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.relu(self.bn2(self.conv1(x)))) + self.shortcut(x)


def gen_sngan_channels(res: int, ngf: int) -> list[tuple[int, int]]:
    """(cin, cout) of the upsampling GenBlocks block2.. of GenSNGAN32/64/128."""
    if res == 32:
        return [(ngf, ngf)] * 3
    if res == 64:
        chans = [ngf, ngf // 2, ngf // 4, ngf // 8, ngf // 16]
    elif res == 128:
        chans = [ngf, ngf, ngf // 2, ngf // 4, ngf // 8, ngf // 16]
    else:
        raise ValueError(f"GenSNGAN resolution must be 32, 64 or 128, got {res}")
    return list(zip(chans[:-1], chans[1:], strict=True))


class GenSNGAN(nn.Module):
    """fc(z) viewed as [B, ngf, 4, 4] -> upsampling GenBlocks -> bn -> ReLU -> conv3x3 -> tanh
    -> times out_factor. Latent [B, nz], output [B, nch, res, res]."""

    def __init__(self, res: int, nz: int, ngf: int, nch: int, out_factor: float) -> None:
        super().__init__()
        self.res, self.nz, self.ngf, self.nch = res, nz, ngf, nch
        self.out_factor = float(out_factor)
        self.fc = nn.Linear(nz, BOTTOM_WIDTH * BOTTOM_WIDTH * ngf)
        self.blocks = gen_sngan_channels(res, ngf)
        for i, (cin, cout) in enumerate(self.blocks):
            self.add_module(f"block{i + 2}", GenBlock(cin, cout, upsample=True))
        c_last = self.blocks[-1][1]
        self.bn = BatchNormInference(c_last)
        self.conv = conv3x3(c_last, nch)

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(z.shape[0], self.ngf, BOTTOM_WIDTH, BOTTOM_WIDTH)
        for i in range(len(self.blocks)):
            h = getattr(self, f"block{i + 2}")(h)
        h = self.conv(F.relu(self.bn(h)))
        return torch.tanh(h) * self.out_factor


def GenSNGAN32(nz: int, ngf: int, nch: int, out_factor: float) -> GenSNGAN:  # noqa: N802
    return GenSNGAN(32, nz, ngf, nch, out_factor)


def GenSNGAN64(nz: int, ngf: int, nch: int, out_factor: float) -> GenSNGAN:  # noqa: N802
    return GenSNGAN(64, nz, ngf, nch, out_factor)


def GenSNGAN128(nz: int, ngf: int, nch: int, out_factor: float) -> GenSNGAN:  # noqa: N802
    return GenSNGAN(128, nz, ngf, nch, out_factor)


class GenDecoder32(nn.Module):
    """Retrofit generator: latent [B, 1, 16, 16] -> [B, nch, 32, 32]."""

    def __init__(self, ngf: int, nch: int, out_factor: float) -> None:
        super().__init__()
        self.out_factor = float(out_factor)
        self.block1 = GenBlockStem(1, ngf)
        self.block2 = GenBlock(ngf, ngf, upsample=True)
        self.block3 = GenBlock(ngf, ngf, upsample=False)
        self.block4 = GenBlock(ngf, ngf, upsample=False)
        self.bn = BatchNormInference(ngf)
        self.conv = conv3x3(ngf, nch)

    def forward(self, z: Tensor) -> Tensor:
        h = self.block4(self.block3(self.block2(self.block1(z))))
        return torch.tanh(self.conv(F.relu(self.bn(h)))) * self.out_factor


# --------------------------------------------------------------------------------------------
# Initialisation (DESIGN.md: Glorot-uniform weights, zero biases; BN identity)
# --------------------------------------------------------------------------------------------


def glorot_init_(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Keras glorot_uniform for conv/linear weights (fan = in/out channels x kernel area),
    zero biases; batch norm weight 1, bias 0, running mean 0, running var 1."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w = m.weight
                receptive = w[0, 0].numel() if w.dim() > 2 else 1
                fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
                limit = math.sqrt(6.0 / (fan_in + fan_out))
                w.uniform_(-limit, limit, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, BatchNormInference):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
    return module


def trainable_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Named parameters (not buffers) in a stable (sorted) order."""
    return sorted(module.named_parameters(), key=lambda kv: kv[0])


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


# --------------------------------------------------------------------------------------------
# Keras-style Adam and tfa MovingAverage
# --------------------------------------------------------------------------------------------


def f32_one_minus(beta: float) -> float:
    """1 - beta evaluated in float32, as Keras does with float32 hyper-parameters."""
    one = torch.tensor(1.0, dtype=torch.float32)
    return float(one - torch.tensor(beta, dtype=torch.float32))


class KerasAdam:
    """Adam as Keras/TF ``ApplyAdam`` (eps NOT bias-corrected, unlike ``torch.optim.Adam``):

        t = step + 1,  alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)
        m += (g - m) * (1 - b1);  v += (g^2 - v) * (1 - b2);  p -= alpha * m / (sqrt(v) + eps)

    ``torch.optim.Adam`` computes p -= lr/(1 - b1^t) * m / (sqrt(v)/sqrt(1 - b2^t) + eps), i.e.
    an effective eps of eps*sqrt(1 - b2^t) in this form; that differs from Keras while v is
    small, which is why it is implemented by hand here. Optional tfa ``MovingAverage`` (EMA)
    of the weights: the average starts at the weights before the first step and after every
    step ema <- ema - (1 - d) * (ema - p_new).
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        lr: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-7,
        ema_decay: float | None = None,
        step: int = 0,
    ) -> None:
        self.params = list(params)
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.one_minus_b1 = f32_one_minus(beta1)
        self.one_minus_b2 = f32_one_minus(beta2)
        self.step = step
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.ema_decay = ema_decay
        self.one_minus_d = f32_one_minus(ema_decay) if ema_decay is not None else 0.0
        self.ema = [p.detach().clone() for p in self.params] if ema_decay is not None else []

    def alpha(self) -> float:
        """Step size of the next update, evaluated in float32 like the TF kernel."""
        t = self.step + 1
        f32 = torch.float32
        b1_pow = torch.tensor(self.beta1, dtype=f32) ** t
        b2_pow = torch.tensor(self.beta2, dtype=f32) ** t
        one = torch.tensor(1.0, dtype=f32)
        return float(torch.tensor(self.lr, dtype=f32) * torch.sqrt(one - b2_pow) / (one - b1_pow))

    @torch.no_grad()
    def apply(self, grads: Sequence[Tensor]) -> None:
        alpha = self.alpha()
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m.add_((g - m) * self.one_minus_b1)
            v.add_((g * g - v) * self.one_minus_b2)
            p.sub_(alpha * m / (v.sqrt() + self.eps))
        if self.ema_decay is not None:
            for p, e in zip(self.params, self.ema, strict=True):
                e.sub_((e - p) * self.one_minus_d)
        self.step += 1


def clip_by_norm(g: Tensor, max_norm: float) -> Tensor:
    """tf.clip_by_norm over the whole tensor: g * c / max(||g||, c)."""
    norm = torch.linalg.vector_norm(g)
    return g * max_norm / torch.clamp(norm, min=max_norm)


# --------------------------------------------------------------------------------------------
# Langevin sampling of the residual and the conditional training step (Algorithm 1)
# --------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Hyper-parameters of one conditional training step (names as the golden config)."""

    mcmc_steps: int = 50
    epsilon: float = 5e-4
    mcmc_temp: float = 1e-3
    clip_langevin_grad_res: bool = True
    max_langevin_norm_res: float = 2.5
    tau_res: float = 0.0
    use_noise: bool = True
    init_scale_latent: float = 1.0
    init_scale_res: float = 0.0
    data_epsilon: float = 1e-3
    ebm_lr: float = 1e-4
    gen_lr: float = 1e-4
    adam_eps: float = 1e-7
    clip_ebm_grad: bool = False
    max_grad_norm: float = 0.0
    gen_loss_factor_coop: float = 1000.0


@dataclass
class StepNoise:
    """All the randomness of one training step (drawn by ``draw_step_noise`` or loaded)."""

    noise_init_latent: Tensor  # [B, nz]
    noise_init_res: Tensor  # [B, ...x]
    noise_res: Tensor  # [K, B, ...x]
    noise_data: Tensor  # [B, ...x]
    indices: Tensor  # [B] int64, unique bank slots


def draw_step_noise(
    batch: int, nz: int, x_shape: Sequence[int], steps: int, bank: int,
    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
) -> StepNoise:
    def normal(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype)

    return StepNoise(
        noise_init_latent=normal(batch, nz),
        noise_init_res=normal(batch, *x_shape),
        noise_res=normal(steps, batch, *x_shape),
        noise_data=normal(batch, *x_shape),
        indices=torch.randperm(bank, generator=generator)[:batch],
    )


def _clip_per_sample(g: Tensor, max_norm: float) -> tuple[Tensor, Tensor]:
    """g_b * c / max(||g_b||, c) per sample (tf.clip_by_norm over the non-batch axes).
    Returns the clipped gradient and the per-sample norms after clipping."""
    norms = torch.linalg.vector_norm(g.flatten(1), dim=1)
    scale = max_norm / torch.clamp(norms, min=max_norm)
    return g * scale.view(-1, *([1] * (g.dim() - 1))), norms * scale


def langevin_residual(
    ebm: nn.Module, base: Tensor, res0: Tensor, noise_res: Tensor, cfg: TrainConfig,
    trace: list[tuple[Tensor, Tensor]] | None = None,
) -> tuple[Tensor, Tensor]:
    """K Langevin steps on the residual only (images = base + res, base = G(z) fixed). The EBM
    parameters should not require grad (as in a real sampler). Returns (res_K, grad_norm_res
    diagnostic); ``trace`` collects (res_k, clipped gradient_k) after every step if given."""
    s = cfg.epsilon ** 2 / 2.0
    res = res0
    diag = torch.zeros((), dtype=base.dtype)
    for k in range(cfg.mcmc_steps):
        res = res.detach().requires_grad_(True)
        energy = ebm(base + res).sum() / cfg.mcmc_temp
        if cfg.tau_res:
            energy = energy + cfg.tau_res * (res * res).sum()
        (g,) = torch.autograd.grad(energy, res)
        with torch.no_grad():
            if cfg.clip_langevin_grad_res:
                g, norms = _clip_per_sample(g, cfg.max_langevin_norm_res / s)
            else:
                norms = torch.linalg.vector_norm(g.flatten(1), dim=1)
            diag = diag + s * norms.mean()
            res = res - s * g
            if cfg.use_noise:
                res = res + cfg.epsilon * noise_res[k]
        if trace is not None:
            trace.append((res, g))
    return res.detach(), diag / max(cfg.mcmc_steps, 1)


def langevin_joint(
    ebm: nn.Module, gen: nn.Module, z0: Tensor, res0: Tensor, noise_latent: Tensor,
    noise_res: Tensor, cfg: TrainConfig, epsilon_latent: float,
    trace: list[tuple[Tensor, Tensor, Tensor]] | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """K joint steps: z first (no prior, no clipping), then the residual with the updated z.
    Returns (z_K, res_K, grad_norm_res, grad_norm_latent); ``trace`` collects (z_k, res_k,
    clipped residual gradient_k)."""
    s = cfg.epsilon ** 2 / 2.0
    s_l = epsilon_latent ** 2 / 2.0
    z, res = z0, res0
    diag_res = torch.zeros((), dtype=z0.dtype)
    diag_lat = torch.zeros((), dtype=z0.dtype)
    for k in range(cfg.mcmc_steps):
        z = z.detach().requires_grad_(True)
        (g_z,) = torch.autograd.grad(ebm(gen(z) + res).sum() / cfg.mcmc_temp, z)
        with torch.no_grad():
            diag_lat = diag_lat + s_l * torch.linalg.vector_norm(g_z.flatten(1), dim=1).mean()
            z = z - s_l * g_z
            if cfg.use_noise:
                z = z + epsilon_latent * noise_latent[k]
            base = gen(z)
        res = res.detach().requires_grad_(True)
        energy = ebm(base + res).sum() / cfg.mcmc_temp
        if cfg.tau_res:
            energy = energy + cfg.tau_res * (res * res).sum()
        (g,) = torch.autograd.grad(energy, res)
        with torch.no_grad():
            if cfg.clip_langevin_grad_res:
                g, norms = _clip_per_sample(g, cfg.max_langevin_norm_res / s)
            else:
                norms = torch.linalg.vector_norm(g.flatten(1), dim=1)
            diag_res = diag_res + s * norms.mean()
            res = res - s * g
            if cfg.use_noise:
                res = res + cfg.epsilon * noise_res[k]
        if trace is not None:
            trace.append((z, res, g))
    k = max(cfg.mcmc_steps, 1)
    return z.detach(), res.detach(), diag_res / k, diag_lat / k


@dataclass
class TrainState:
    ebm: nn.Module
    gen: nn.Module
    ebm_opt: KerasAdam
    gen_opt: KerasAdam
    bank_z: Tensor
    bank_x: Tensor


def make_train_state(
    ebm: nn.Module, gen: nn.Module, bank_z: Tensor, bank_x: Tensor, cfg: TrainConfig,
    ema_decay: float | None = None,
) -> TrainState:
    ebm_opt = KerasAdam([p for _, p in trainable_parameters(ebm)], cfg.ebm_lr,
                        eps=cfg.adam_eps, ema_decay=ema_decay)
    gen_opt = KerasAdam([p for _, p in trainable_parameters(gen)], cfg.gen_lr,
                        eps=cfg.adam_eps, ema_decay=ema_decay)
    return TrainState(ebm, gen, ebm_opt, gen_opt, bank_z, bank_x)


@dataclass
class StepResult:
    z: Tensor
    res: Tensor
    x_pos: Tensor
    x_neg: Tensor
    loss_ebm: Tensor
    loss_gen: Tensor
    grad_norm_res: Tensor
    ebm_grads: list[Tensor]
    gen_grads: list[Tensor]


def train_step(
    state: TrainState, data: Tensor, noise: StepNoise, cfg: TrainConfig,
    phases: dict[str, float] | None = None,
) -> StepResult:
    """One conditional Hat EBM training iteration (golden README "Conditional training step"):
    z0, res0 -> K residual Langevin steps -> EBM Adam step on (x+, x-) -> generator Adam step
    on the bank pairs at ``noise.indices`` -> bank overwrite with this iteration's (z, x-).

    If ``phases`` is given, the wall time of each phase (seconds) is added to it under the keys
    "langevin", "ebm_update", "gen_update" (the bank overwrite counts with the last)."""
    clock = time.perf_counter
    t0 = clock()
    ebm, gen = state.ebm, state.gen
    z = cfg.init_scale_latent * noise.noise_init_latent
    res0 = cfg.init_scale_res * noise.noise_init_res

    # Sampling: no parameter requires grad; G(z) is fixed while only the residual moves.
    set_requires_grad(ebm, False)
    set_requires_grad(gen, False)
    with torch.no_grad():
        g_z = gen(z)
    res, grad_norm_res = langevin_residual(ebm, g_z, res0, noise.noise_res, cfg)
    x_neg = g_z + res
    x_pos = data + cfg.data_epsilon * noise.noise_data
    t1 = clock()

    # EBM update.
    set_requires_grad(ebm, True)
    loss_ebm = (ebm(x_pos).mean() - ebm(x_neg).mean()) / cfg.mcmc_temp
    ebm_grads = list(torch.autograd.grad(loss_ebm, state.ebm_opt.params))
    if cfg.clip_ebm_grad:
        ebm_grads = [clip_by_norm(g, cfg.max_grad_norm) for g in ebm_grads]
    state.ebm_opt.apply(ebm_grads)
    set_requires_grad(ebm, False)
    t2 = clock()

    # Generator update on the bank pairs.
    set_requires_grad(gen, True)
    idx = noise.indices
    diff = gen(state.bank_z[idx]) - state.bank_x[idx]
    loss_gen = cfg.gen_loss_factor_coop * (diff * diff).mean()
    gen_grads = list(torch.autograd.grad(loss_gen, state.gen_opt.params))
    state.gen_opt.apply(gen_grads)
    set_requires_grad(gen, False)

    # Bank overwrite.
    with torch.no_grad():
        state.bank_x[idx] = x_neg
        state.bank_z[idx] = z
    if phases is not None:
        t3 = clock()
        for key, dt in (("langevin", t1 - t0), ("ebm_update", t2 - t1), ("gen_update", t3 - t2)):
            phases[key] = phases.get(key, 0.0) + dt

    return StepResult(z, res, x_pos, x_neg, loss_ebm.detach(), loss_gen.detach(),
                      grad_norm_res, ebm_grads, gen_grads)
