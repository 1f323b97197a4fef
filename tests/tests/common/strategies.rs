//! proptest strategies for the sampler, bank and backend-spec properties.
//!
//! Every case is a plain struct (so a shrunk failure prints readably and can be
//! pasted into a regression) with the derived quantities (step sizes chosen to
//! hit a target stability ratio, ...) as methods.

use hatebm_rs::BackendSpec;
use hatebm_rs::config::Config;
use hatebm_rs::optim::AdamConfig;
use hatebm_rs::sampler::LangevinConfig;
use hatebm_rs::train::{GenUpdate, Mode, NoiseInit, TrainConfig};
use proptest::collection::vec;
use proptest::prelude::*;

/// A log-uniform `f64` in `[lo, hi)`.
pub fn log_uniform(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    (lo.ln()..hi.ln()).prop_map(f64::exp)
}

/// A log-uniform `f32` in `[lo, hi)`.
pub fn log_uniform_f32(lo: f64, hi: f64) -> impl Strategy<Value = f32> {
    log_uniform(lo, hi).prop_map(|v| v as f32)
}

/// Noiseless Langevin on `U(x) = ½ Σ a_i x_i²`.
#[derive(Clone, Debug)]
pub struct QuadraticCase {
    /// Chains.
    pub batch: usize,
    /// Curvatures `a_i > 0` (the sample dimension is their count).
    pub curv: Vec<f32>,
    /// Temperature T.
    pub temperature: f32,
    /// Target `s·λ_max/T` (the stability bound is 2).
    pub ratio: f64,
    /// Initial chains `[batch · dim]`.
    pub x0: Vec<f32>,
    /// Steps K.
    pub steps: usize,
}

impl QuadraticCase {
    /// `λ_max`.
    pub fn lambda_max(&self) -> f32 {
        self.curv.iter().copied().fold(0.0, f32::max)
    }

    /// The Langevin ε giving drift step `s = ε²/2 = ratio·T/λ_max`.
    pub fn eps(&self) -> f32 {
        let s = self.ratio * f64::from(self.temperature) / f64::from(self.lambda_max());
        (2.0 * s).sqrt() as f32
    }
}

/// Quadratics below the stability bound: `s·λ_max/T ∈ [0.05, 1.95]`.
pub fn quadratic_case() -> impl Strategy<Value = QuadraticCase> {
    (1usize..8, 1usize..12)
        .prop_flat_map(|(batch, dim)| {
            (
                Just(batch),
                vec(log_uniform_f32(1e-3, 1e3), dim),
                log_uniform_f32(1e-4, 1e2),
                0.05f64..1.95,
                vec(-10.0f32..10.0, batch * dim),
                1usize..40,
            )
        })
        .prop_map(
            |(batch, curv, temperature, ratio, x0, steps)| QuadraticCase {
                batch,
                curv,
                temperature,
                ratio,
                x0,
                steps,
            },
        )
}

/// Noisy Langevin with a Gaussian energy `‖x‖²/(2σ_e²)` (optional), a residual
/// prior σ_p (optional) and temperature T: the update is
/// `x ← (1 − a)x + εξ` with `a = (ε²/2)(1/(Tσ_e²) + 1/σ_p²)`.
#[derive(Clone, Debug)]
pub struct GaussianCase {
    /// σ_e of the energy (`None` = zero energy).
    pub sigma_energy: Option<f32>,
    /// σ_p of the residual prior (`None` = no prior).
    pub sigma_prior: Option<f32>,
    /// Temperature T.
    pub temperature: f32,
    /// Target contraction `a ∈ (0, 2)`.
    pub a: f64,
    /// Noise seed.
    pub seed: u64,
}

impl GaussianCase {
    /// The precision `1/(Tσ_e²) + 1/σ_p²` of the chain's target, in f64.
    pub fn precision(&self) -> f64 {
        let t = f64::from(self.temperature);
        self.sigma_energy
            .map_or(0.0, |s| 1.0 / (t * f64::from(s).powi(2)))
            + self.sigma_prior.map_or(0.0, |s| 1.0 / f64::from(s).powi(2))
    }

    /// The ε that gives contraction `a`: `ε²/2 = a / precision`.
    pub fn eps(&self) -> f32 {
        (2.0 * self.a / self.precision()).sqrt() as f32
    }
}

/// Gaussian energy, no prior: `a ∈ [0.1, 1]`, σ_e ∈ [1e-2, 1e2], T ∈ [1e-3, 10].
pub fn gaussian_energy_case() -> impl Strategy<Value = GaussianCase> {
    (
        log_uniform_f32(1e-2, 1e2),
        log_uniform_f32(1e-3, 1e1),
        0.1f64..1.0,
        any::<u64>(),
    )
        .prop_map(|(s, temperature, a, seed)| GaussianCase {
            sigma_energy: Some(s),
            sigma_prior: None,
            temperature,
            a,
            seed,
        })
}

/// Zero energy with a residual prior σ_p ∈ [1e-2, 1e2] at any temperature
/// T ∈ [1e-8, 1e8] (the prior must not depend on T).
pub fn prior_only_case() -> impl Strategy<Value = GaussianCase> {
    (
        log_uniform_f32(1e-2, 1e2),
        log_uniform_f32(1e-8, 1e8),
        0.1f64..1.0,
        any::<u64>(),
    )
        .prop_map(|(s, temperature, a, seed)| GaussianCase {
            sigma_energy: None,
            sigma_prior: Some(s),
            temperature,
            a,
            seed,
        })
}

/// Gaussian energy and residual prior together (precisions add).
pub fn energy_and_prior_case() -> impl Strategy<Value = GaussianCase> {
    (
        log_uniform_f32(1e-2, 1e2),
        log_uniform_f32(1e-2, 1e2),
        log_uniform_f32(1e-3, 1e1),
        0.1f64..1.0,
        any::<u64>(),
    )
        .prop_map(|(se, sp, temperature, a, seed)| GaussianCase {
            sigma_energy: Some(se),
            sigma_prior: Some(sp),
            temperature,
            a,
            seed,
        })
}

/// One fused `Backend::langevin_update` with clipping on rows of wildly
/// different gradient norms.
#[derive(Clone, Debug)]
pub struct ClipCase {
    /// Rows.
    pub batch: usize,
    /// Elements per row.
    pub dim: usize,
    /// Gradient `[batch · dim]` (row norms spread over ~9 decades).
    pub g: Vec<f32>,
    /// State `[batch · dim]`.
    pub state: Vec<f32>,
    /// Drift step s.
    pub step: f32,
    /// Maximum drift norm `s·‖clip(g_b)‖`.
    pub max_drift: f32,
}

/// Clip cases: row scales log-uniform in `[1e-3, 1e6]`, s ∈ `[1e-8, 1]`,
/// max drift ∈ `[1e-4, 10]`.
pub fn clip_case() -> impl Strategy<Value = ClipCase> {
    (1usize..16, 1usize..32)
        .prop_flat_map(|(batch, dim)| {
            (
                Just(batch),
                Just(dim),
                vec(log_uniform_f32(1e-3, 1e6), batch),
                vec(-1.0f32..1.0, batch * dim),
                vec(-1.0f32..1.0, batch * dim),
                log_uniform_f32(1e-8, 1.0),
                log_uniform_f32(1e-4, 10.0),
            )
        })
        .prop_map(|(batch, dim, scales, u, state, step, max_drift)| {
            let g = u
                .chunks(dim)
                .zip(&scales)
                .flat_map(|(r, &s)| r.iter().map(move |&v| v * s))
                .collect();
            ClipCase {
                batch,
                dim,
                g,
                state,
                step,
                max_drift,
            }
        })
}

/// The sampler with clipping on an energy with huge gradients.
#[derive(Clone, Debug)]
pub struct SamplerClipCase {
    /// Chains.
    pub batch: usize,
    /// Sample dimension.
    pub dim: usize,
    /// Curvature of `(a/2)‖x‖²` (huge).
    pub a: f32,
    /// Temperature.
    pub temperature: f32,
    /// Langevin ε.
    pub eps: f32,
    /// Maximum drift norm.
    pub max_drift: f32,
    /// Residual prior σ (optional).
    pub prior: Option<f32>,
    /// Initial residuals (row scales over 5 decades).
    pub y0: Vec<f32>,
    /// Steps.
    pub steps: usize,
    /// Noise seed.
    pub seed: u64,
}

/// Sampler clip cases: `a ∈ [1e3, 1e9]`, T ∈ `[1e-6, 1]`, ε ∈ `[1e-4, 0.1]`,
/// max drift ∈ `[1e-3, 1]`.
pub fn sampler_clip_case() -> impl Strategy<Value = SamplerClipCase> {
    (1usize..10, 1usize..20)
        .prop_flat_map(|(batch, dim)| {
            (
                (Just(batch), Just(dim)),
                (
                    log_uniform_f32(1e3, 1e9),
                    log_uniform_f32(1e-6, 1.0),
                    log_uniform_f32(1e-4, 0.1),
                    log_uniform_f32(1e-3, 1.0),
                    proptest::option::of(log_uniform_f32(1e-2, 1e2)),
                ),
                vec(log_uniform_f32(1e-4, 10.0), batch),
                vec(-1.0f32..1.0, batch * dim),
                (1usize..8, any::<u64>()),
            )
        })
        .prop_map(
            |((batch, dim), (a, temperature, eps, max_drift, prior), scales, u, (steps, seed))| {
                let y0 = u
                    .chunks(dim)
                    .zip(&scales)
                    .flat_map(|(r, &s)| r.iter().map(move |&v| v * s))
                    .collect();
                SamplerClipCase {
                    batch,
                    dim,
                    a,
                    temperature,
                    eps,
                    max_drift,
                    prior,
                    y0,
                    steps,
                    seed,
                }
            },
        )
}

/// A fused update with step 0 and noise scale 0.
#[derive(Clone, Debug)]
pub struct IdentityCase {
    /// Rows.
    pub batch: usize,
    /// State, gradient and noise, `[batch · dim]` each.
    pub state: Vec<f32>,
    /// Gradient (finite, possibly huge).
    pub g: Vec<f32>,
    /// Noise (`None` = no noise tensor).
    pub noise: Option<Vec<f32>>,
    /// Clip threshold on the gradient norm (optional).
    pub clip: Option<f32>,
}

/// Identity cases with arbitrary finite values.
pub fn identity_case() -> impl Strategy<Value = IdentityCase> {
    (1usize..12, 1usize..24)
        .prop_flat_map(|(batch, dim)| {
            let n = batch * dim;
            (
                Just(batch),
                vec(-1e6f32..1e6, n),
                vec(-1e30f32..1e30, n),
                proptest::option::of(vec(-10.0f32..10.0, n)),
                proptest::option::of(log_uniform_f32(1e-6, 1e6)),
            )
        })
        .prop_map(|(batch, state, g, noise, clip)| IdentityCase {
            batch,
            state,
            g,
            noise,
            clip,
        })
}

/// A bank workload: capacity, batch, iterations and row sizes.
#[derive(Clone, Debug)]
pub struct BankCase {
    /// Slots N.
    pub capacity: usize,
    /// Rows drawn per iteration (≤ N).
    pub batch: usize,
    /// Iterations.
    pub iterations: u64,
    /// Latent row size.
    pub zdim: usize,
    /// Image row size.
    pub xdim: usize,
    /// Run seed.
    pub seed: u64,
    /// Bank shard id.
    pub shard: u64,
}

/// Bank cases: N ∈ [1, 200), B ∈ [1, N], up to 20 iterations.
pub fn bank_case() -> impl Strategy<Value = BankCase> {
    (1usize..200)
        .prop_flat_map(|capacity| {
            (
                Just(capacity),
                1..=capacity,
                1u64..20,
                1usize..5,
                1usize..7,
                any::<u64>(),
                0u64..4,
            )
        })
        .prop_map(
            |(capacity, batch, iterations, zdim, xdim, seed, shard)| BankCase {
                capacity,
                batch,
                iterations,
                zdim,
                xdim,
                seed,
                shard,
            },
        )
}

/// Every valid [`BackendSpec`] value.
pub fn backend_spec() -> impl Strategy<Value = BackendSpec> {
    prop_oneof![
        Just(BackendSpec::Cpu),
        Just(BackendSpec::TchCpu),
        any::<usize>().prop_map(BackendSpec::TchCuda),
        Just(BackendSpec::Auto),
    ]
}

/// Candidate backend strings: valid forms with surrounding whitespace, near
/// misses, device indices of every length (overflowing ones included) and
/// arbitrary text. Classify them with [`expected_spec`].
pub fn backend_string() -> impl Strategy<Value = String> {
    let ws = prop_oneof![Just(""), Just(" "), Just("\t"), Just("\n "), Just("  ")];
    let word = prop_oneof![
        Just("cpu".to_string()),
        Just("tch:cpu".to_string()),
        Just("tch:cuda".to_string()),
        Just("auto".to_string()),
        "[0-9]{1,25}".prop_map(|d| format!("tch:cuda:{d}")),
        "[+-]?[0-9]{0,4}".prop_map(|d| format!("tch:cuda:{d}")),
        "(tch|TCH|cuda|cpu|CPU|gpu|torch|auto|Auto)(:(cpu|cuda|gpu|[0-9]|))*",
        "tch:cuda:[ -~]{0,6}",
        "[a-z:0-9 ]{0,12}",
        any::<String>(),
    ];
    (ws.clone(), word, ws).prop_map(|(a, w, b)| format!("{a}{w}{b}"))
}

/// The documented grammar, written independently of the parser: after trimming
/// white space, `cpu`, `tch:cpu`, `tch:cuda` (= device 0), `auto`, or
/// `tch:cuda:N` with `N` a `usize` in Rust's integer syntax (ASCII digits, an
/// optional leading `+`).
pub fn expected_spec(s: &str) -> Option<BackendSpec> {
    match s.trim() {
        "cpu" => Some(BackendSpec::Cpu),
        "tch:cpu" => Some(BackendSpec::TchCpu),
        "tch:cuda" => Some(BackendSpec::TchCuda(0)),
        "auto" => Some(BackendSpec::Auto),
        t => {
            let n = t.strip_prefix("tch:cuda:")?;
            let digits = n.strip_prefix('+').unwrap_or(n);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Overflow check by long arithmetic on the digits.
            let mut v: usize = 0;
            for b in digits.bytes() {
                v = v.checked_mul(10)?.checked_add(usize::from(b - b'0'))?;
            }
            Some(BackendSpec::TchCuda(v))
        }
    }
}

/// A `u64` that is usually moderate and sometimes beyond `i64::MAX` (which
/// TOML cannot represent).
fn counter() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..1_000_000, 1 => any::<u64>()]
}

fn train_config() -> impl Strategy<Value = TrainConfig> {
    (
        (
            prop_oneof![Just(Mode::Synthesis), Just(Mode::Cooperative)],
            counter(),
            1usize..512,
            0usize..20_000,
            0usize..20_000,
        ),
        (
            proptest::option::of(log_uniform_f32(1e-6, 1.0)),
            log_uniform_f32(1e-3, 10.0),
            proptest::option::of(log_uniform_f32(1e-3, 10.0)),
            log_uniform_f32(1e-3, 1e4),
        ),
        (
            prop_oneof![Just(GenUpdate::Historical), Just(GenUpdate::Current)],
            prop_oneof![Just(NoiseInit::Uniform), Just(NoiseInit::Normal)],
            0.0f32..=1.0,
        ),
        (
            0usize..100,
            log_uniform_f32(1e-4, 1.0),
            log_uniform_f32(1e-3, 10.0),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (mode, steps, batch_size, extra_bank, extra_pbank),
                (data_eps, init_z, init_y, gen_factor),
                (gen_update, noise_init, rejuvenation),
                (coop_steps, coop_eps, coop_sigma, coop_bn),
            )| TrainConfig {
                mode,
                steps,
                batch_size,
                data_epsilon: data_eps.unwrap_or(0.0),
                init_scale_latent: init_z,
                init_scale_res: init_y.unwrap_or(0.0),
                gen_loss_factor: gen_factor,
                bank_size: batch_size + extra_bank,
                gen_update,
                noise_init,
                rejuvenation,
                persistent_bank_size: batch_size + extra_pbank,
                coop_latent_steps: coop_steps,
                coop_latent_eps: coop_eps,
                coop_sigma,
                coop_bn_training: coop_bn,
            },
        )
}

fn langevin_config() -> impl Strategy<Value = LangevinConfig> {
    (
        (
            0usize..500,
            log_uniform_f32(1e-9, 10.0),
            log_uniform_f32(1e-6, 1.0),
            log_uniform_f32(1e-6, 1.0),
        ),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (
            proptest::option::of(log_uniform_f32(1e-4, 100.0)),
            proptest::option::of(log_uniform_f32(1e-4, 100.0)),
            proptest::option::of(log_uniform_f32(1e-3, 10.0)),
        ),
    )
        .prop_map(
            |(
                (steps, temperature, eps_res, eps_latent),
                (update_res, update_latents, noise, latent_prior),
                (clip_res, clip_latent, prior_sigma_res),
            )| LangevinConfig {
                steps,
                temperature,
                eps_res,
                eps_latent,
                update_res,
                update_latents,
                noise,
                clip_res,
                clip_latent,
                prior_sigma_res,
                latent_prior,
                ..LangevinConfig::default()
            },
        )
}

fn adam_config() -> impl Strategy<Value = AdamConfig> {
    (
        log_uniform_f32(1e-7, 1e-1),
        0.0f32..0.99,
        0.9f32..0.9999,
        log_uniform_f32(1e-10, 1e-3),
        proptest::option::of(log_uniform_f32(1e-2, 100.0)),
        proptest::option::of(0.0f32..0.9999),
        vec((1u64..1000, log_uniform_f32(1e-8, 1e-2)), 0..4),
    )
        .prop_map(|(lr, beta1, beta2, eps, clip, ema, gaps)| {
            // Strictly increasing schedule steps.
            let mut at = 0u64;
            let lr_schedule = gaps
                .into_iter()
                .map(|(gap, l)| {
                    at += gap;
                    (at, l)
                })
                .collect();
            AdamConfig {
                lr,
                beta1,
                beta2,
                eps,
                clip_grad_norm: clip,
                ema_warmup: ema.is_some_and(|d| d > 0.5),
                ema_decay: ema,
                lr_schedule,
            }
        })
}

/// Run configurations with random training, sampler and optimiser knobs (all
/// in range) and random seeds, some beyond `i64::MAX`.
pub fn run_config() -> impl Strategy<Value = Config> {
    (
        train_config(),
        langevin_config(),
        adam_config(),
        adam_config(),
        any::<u64>(),
        counter(),
        backend_spec(),
    )
        .prop_map(
            |(train, langevin, ebm_optim, gen_optim, seed, sample_seed, backend)| {
                let mut c = Config {
                    backend,
                    seed,
                    train,
                    langevin,
                    ebm_optim,
                    gen_optim,
                    ..Config::default()
                };
                c.sample.seed = sample_seed;
                // The mode decides which blocks move (a conflict is invalid).
                (c.langevin.update_latents, c.langevin.update_res) =
                    hatebm_rs::train::mode_blocks(c.train.mode);
                c
            },
        )
}
