//! Metropolis–Hastings and kinetic samplers over the residual and latent
//! blocks, and the shadow-MH monitor of the unadjusted chain.
//!
//! All methods target the density of the Langevin sampler,
//! `π(y, z) ∝ exp(−U)`, per chain `b`
//!
//! ```text
//! U_b(y, z) = H(G(z_b) + y_b)/T + τ‖y_b‖² [+ ½‖z_b‖²]
//! ```
//!
//! with gradients `g_y = ∇ₓH/T + 2τy` and `g_z = J_Gᵀ∇ₓH/T [+ z]`, and use the
//! *force* `F_s = clip_s(g_s)`: each sample's gradient scaled down so that
//! `(ε_s²/2)‖F_s‖ ≤ clip_s` (no clipping when `clip_s` is off). Any force that
//! is a function of the position keeps the MH corrections below exact, so
//! clipping changes efficiency, not correctness, for MALA and HMC.
//!
//! * **MALA** (`method = "mala"`): per step, the latent block (if it moves)
//!   and then the residual block, each proposed with the ULA move
//!   `s' = s − (ε²/2)F(s) + εξ` (ξ the same noise the ULA would draw) and
//!   accepted per chain with probability `min(1, α)`,
//!   `ln α = U(s) − U(s') + ½‖ξ‖² − ‖s − s' + (ε²/2)F(s')‖²/(2ε²)`
//!   (MH within Gibbs; one energy gradient per block per step, plus a
//!   generator VJP for the latent block). With `joint_proposal`, both blocks
//!   are proposed from the same point and accepted together: `ln α` sums the
//!   two blocks' proposal terms (one energy gradient and one VJP per step).
//! * **HMC** (`method = "hmc"`): momenta `p_s = √m_s·ξ_s`, L leapfrog steps of
//!   size ε_s on all moving blocks at once, accepted per chain with
//!   probability `min(1, exp(−ΔH))`, `H = U + Σ_s ‖p_s‖²/(2m_s)`. A transition
//!   is *divergent* when ΔH is not finite or exceeds [`MAX_ENERGY_ERROR`]
//!   (Stan's `max_deltaH`). With L = 1 and m = 1 HMC is MALA with a joint
//!   proposal. With `adapt_mass`, each block's `m_s·I` becomes a diagonal
//!   `M_s` estimated in the warm-up (`M_s⁻¹` = the coordinates' variances over
//!   chains and steps `[W/4, W/2)`, regularised and scaled to a mean of
//!   `1/m_s`), then ε is adapted again: `p_s = M_s^{1/2}ξ_s`, the drift moves
//!   by `ε_s M_s⁻¹p_s`, `H = U + Σ_s p_sᵀM_s⁻¹p_s/2`.
//! * **BAOAB** (`method = "baoab"`): underdamped Langevin with friction γ,
//!   kick (½ε) – drift (½ε) – Ornstein–Uhlenbeck `p ← c₁p + √(1−c₁²)√m ξ`,
//!   `c₁ = exp(−γε)` – drift (½ε) – kick (½ε); unadjusted; fresh momenta per
//!   call.
//! * **Shadow MH** (`method = "ula"`, `shadow_mh = true`): the ULA chain,
//!   unchanged to the bit, plus the MALA `min(1, α)` of every move it makes.
//!   The proposal's energy and gradient are the next step's current ones, so
//!   the monitor costs one extra energy gradient per call (the initial point)
//!   and, when the latents move, one extra generator VJP per step.
//!
//! Noise: proposals and momenta use the ULA streams (`ChainNoiseRes`,
//! `ChainNoiseLatent`, counter `[iteration, k]`); accept uniforms use
//! `ChainAcceptRes` / `ChainAcceptLatent` (HMC: `ChainAcceptRes`); BAOAB's
//! initial momenta `ChainInitMomentum [iteration, 0 | 1]`. Every draw is per
//! global chain row, so chains do not depend on the batch split — except under
//! step-size adaptation (`adapt_steps > 0`), whose ε follows the batch's mean
//! acceptance.
//!
//! The generator's batch-norm must be in inference mode for the per-chain MH
//! step to be exact (training-mode statistics couple the chains).

use super::langevin::{
    ChainKey, Chains, DriftSum, LangevinConfig, LangevinStats, Method, StepRecorder, mean, mean_f64,
};
use super::probit::probit;
use crate::backend::{Backend, LangevinUpdate};
use crate::model::{Energy, Generator};
use crate::noise::{NoiseSource, Stream};
use crate::{Error, Result};

/// HMC transitions with an energy error above this are divergent (Stan's
/// default `max_deltaH`).
pub const MAX_ENERGY_ERROR: f64 = 1000.0;

/// Acceptance diagnostics of one call (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct MhStats {
    /// The method that ran.
    pub method: String,
    /// Mean of `min(1, α)` over steps and chains for residual-block moves
    /// (HMC: joint moves); `None` when the block does not move.
    pub alpha_res: Option<f64>,
    /// The same for latent-block moves.
    pub alpha_latent: Option<f64>,
    /// Fraction of residual-block (HMC: joint) proposals accepted (`None`
    /// for the shadow monitor, which never rejects).
    pub accept_res: Option<f64>,
    /// Fraction of latent-block proposals accepted.
    pub accept_latent: Option<f64>,
    /// Per chain, the mean of `min(1, α)` over its moves in the call.
    pub chain_alpha: Vec<f64>,
    /// HMC: per chain, the energy error ΔH of its last transition.
    pub energy_error: Vec<f64>,
    /// HMC: per chain, whether any transition of the call was divergent.
    pub divergent: Vec<bool>,
    /// HMC: divergent transitions in the call (over steps and chains).
    pub divergences: usize,
    /// Residual-block step size at the end of the call (after adaptation).
    pub eps_res: f64,
    /// Latent-block step size at the end of the call.
    pub eps_latent: f64,
    /// Shadow monitor: ε for which MALA would reach `target_accept`, from
    /// the optimal-scaling law `Φ⁻¹(a/2) ∝ ε³` (within 10× of ε).
    pub suggested_eps_res: Option<f64>,
    /// The same for the latent block.
    pub suggested_eps_latent: Option<f64>,
    /// HMC with `adapt_mass`: the diagonal inverse mass `M⁻¹` of the residual
    /// block after the warm-up, one value per coordinate of a sample (empty
    /// for a scalar mass).
    pub inv_mass_res: Vec<f32>,
    /// The same for the latent block.
    pub inv_mass_latent: Vec<f32>,
}

/// The two blocks of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Res,
    Latent,
}

impl Block {
    fn index(self) -> usize {
        match self {
            Block::Res => 0,
            Block::Latent => 1,
        }
    }
    fn noise_stream(self) -> Stream {
        match self {
            Block::Res => Stream::ChainNoiseRes,
            Block::Latent => Stream::ChainNoiseLatent,
        }
    }
    fn accept_stream(self) -> Stream {
        match self {
            Block::Res => Stream::ChainAcceptRes,
            Block::Latent => Stream::ChainAcceptLatent,
        }
    }
}

/// The per-chain potential `U` and its gradients (module docs).
pub struct Target<'a, B: Backend> {
    be: &'a B,
    energy: &'a dyn Energy<B>,
    generator: Option<&'a dyn Generator<B>>,
    inv_t: f32,
    tau: f32,
    latent_prior: bool,
}

impl<B: Backend> std::fmt::Debug for Target<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("energy", &self.energy.describe())
            .field("inv_t", &self.inv_t)
            .field("tau", &self.tau)
            .finish_non_exhaustive()
    }
}

/// The potential and gradients at the chains' current state.
#[derive(Clone)]
struct Point<B: Backend> {
    /// `G(z)` (`None` without a generator).
    gen_out: Option<B::Tensor>,
    /// `H(x_b)` (not divided by T).
    h: Vec<f32>,
    /// `U_b`.
    u: Vec<f64>,
    /// `∇ₓH` (not divided by T), `[B, ...sample]`.
    gx: B::Tensor,
    /// `g_z` once computed (invalidated when the residual moves).
    grad_z: Option<B::Tensor>,
}

impl<'a, B: Backend> Target<'a, B> {
    /// The target of the sampler settings `c`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if latents must move without a generator.
    pub fn new(
        be: &'a B,
        energy: &'a dyn Energy<B>,
        generator: Option<&'a dyn Generator<B>>,
        c: &LangevinConfig,
    ) -> Result<Self> {
        if c.update_latents && generator.is_none() {
            return Err(Error::InvalidArgument(
                "update_latents needs a generator and latents".into(),
            ));
        }
        Ok(Target {
            be,
            energy,
            generator,
            inv_t: 1.0 / c.temperature,
            tau: c.tau_res(),
            latent_prior: c.latent_prior,
        })
    }

    fn gen_out(&self, z: Option<&B::Tensor>) -> Result<Option<B::Tensor>> {
        match (self.generator, z) {
            (Some(g), Some(z)) => Ok(Some(g.forward(z)?)),
            _ => Ok(None),
        }
    }

    fn images(&self, gen_out: Option<&B::Tensor>, y: &B::Tensor) -> Result<B::Tensor> {
        match gen_out {
            Some(g) => {
                let mut x = g.clone();
                self.be.axpy(&mut x, 1.0, y)?;
                Ok(x)
            }
            None => Ok(y.clone()),
        }
    }

    /// Energy, gradient and potential at `chains` with `gen_out = G(z)`.
    fn eval(&self, chains: &Chains<B>, gen_out: Option<B::Tensor>) -> Result<Point<B>> {
        let be = self.be;
        let x = self.images(gen_out.as_ref(), &chains.y)?;
        let shape = be.shape(&chains.y);
        let mut e = be.zeros(&shape[..1])?;
        let mut gx = be.zeros(&shape)?;
        self.energy.energy_grad_x_into(&x, &mut e, &mut gx)?;
        let h = be.to_host(&e)?;
        let u = self.potential(&h, chains)?;
        Ok(Point {
            gen_out,
            h,
            u,
            gx,
            grad_z: None,
        })
    }

    fn potential(&self, h: &[f32], chains: &Chains<B>) -> Result<Vec<f64>> {
        let mut u: Vec<f64> = h
            .iter()
            .map(|&e| f64::from(e) * f64::from(self.inv_t))
            .collect();
        if self.tau != 0.0 {
            let n = self.be.to_host(&self.be.row_norms(&chains.y)?)?;
            for (u, n) in u.iter_mut().zip(n) {
                *u += f64::from(self.tau) * f64::from(n) * f64::from(n);
            }
        }
        if let (true, Some(z)) = (self.latent_prior, &chains.z) {
            let n = self.be.to_host(&self.be.row_norms(z)?)?;
            for (u, n) in u.iter_mut().zip(n) {
                *u += 0.5 * f64::from(n) * f64::from(n);
            }
        }
        Ok(u)
    }

    /// `g_y` at the point (the same operations, in the same order, as the ULA).
    fn grad_y(&self, p: &Point<B>, y: &B::Tensor) -> Result<B::Tensor> {
        let mut g = p.gx.clone();
        self.be.scale(&mut g, self.inv_t)?;
        if self.tau != 0.0 {
            self.be.axpy(&mut g, 2.0 * self.tau, y)?;
        }
        Ok(g)
    }

    /// `g_z` at the point, computed once.
    fn grad_z(&self, p: &mut Point<B>, z: &B::Tensor) -> Result<B::Tensor> {
        if p.grad_z.is_none() {
            let gnet = self
                .generator
                .ok_or_else(|| Error::InvalidArgument("latent moves need a generator".into()))?;
            let mut g = gnet.vjp_latent(z, &p.gx)?;
            self.be.scale(&mut g, self.inv_t)?;
            if self.latent_prior {
                self.be.axpy(&mut g, 1.0, z)?;
            }
            p.grad_z = Some(g);
        }
        Ok(p.grad_z.clone().expect("set above"))
    }

    fn grad(&self, p: &mut Point<B>, chains: &Chains<B>, block: Block) -> Result<B::Tensor> {
        match block {
            Block::Res => self.grad_y(p, &chains.y),
            Block::Latent => self.grad_z(p, latent(chains)?),
        }
    }
}

fn latent<B: Backend>(chains: &Chains<B>) -> Result<&B::Tensor> {
    chains
        .z
        .as_ref()
        .ok_or_else(|| Error::InvalidArgument("latent moves need latents".into()))
}

fn block_of<B: Backend>(chains: &Chains<B>, block: Block) -> Result<&B::Tensor> {
    match block {
        Block::Res => Ok(&chains.y),
        Block::Latent => latent(chains),
    }
}

fn block_mut<B: Backend>(chains: &mut Chains<B>, block: Block) -> Result<&mut B::Tensor> {
    match block {
        Block::Res => Ok(&mut chains.y),
        Block::Latent => chains
            .z
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("latent moves need latents".into())),
    }
}

/// Dual averaging of `log ε` towards a target acceptance (Hoffman & Gelman
/// 2014, Alg. 5; γ = 0.05, t₀ = 10, κ = 0.75).
#[derive(Clone, Debug)]
struct DualAveraging {
    mu: f64,
    log_eps: f64,
    log_eps_bar: f64,
    h_bar: f64,
    t: f64,
    target: f64,
}

impl DualAveraging {
    fn new(eps0: f64, target: f64) -> Self {
        DualAveraging {
            mu: (10.0 * eps0).ln(),
            log_eps: eps0.ln(),
            log_eps_bar: 0.0,
            h_bar: 0.0,
            t: 0.0,
            target,
        }
    }

    /// One update with the mean acceptance probability of the last step;
    /// returns the next ε.
    fn update(&mut self, alpha: f64) -> f64 {
        const GAMMA: f64 = 0.05;
        const T0: f64 = 10.0;
        const KAPPA: f64 = 0.75;
        self.t += 1.0;
        let w = 1.0 / (self.t + T0);
        self.h_bar = (1.0 - w) * self.h_bar + w * (self.target - alpha);
        self.log_eps = self.mu - self.t.sqrt() / GAMMA * self.h_bar;
        let eta = self.t.powf(-KAPPA);
        self.log_eps_bar = eta * self.log_eps + (1.0 - eta) * self.log_eps_bar;
        self.log_eps.exp()
    }

    /// The frozen ε after warm-up.
    fn final_eps(&self) -> f64 {
        self.log_eps_bar.exp()
    }
}

/// Running acceptance sums of one block.
#[derive(Clone, Debug, Default)]
struct AcceptSum {
    alpha: f64,
    accepted: usize,
    n: usize,
}

impl AcceptSum {
    fn add(&mut self, alpha: &[f64], accepted: &[bool]) {
        self.alpha += alpha.iter().sum::<f64>();
        self.accepted += accepted.iter().filter(|&&a| a).count();
        self.n += alpha.len();
    }
    fn alpha(&self) -> Option<f64> {
        (self.n > 0).then(|| self.alpha / self.n as f64)
    }
    fn accept(&self) -> Option<f64> {
        (self.n > 0).then(|| self.accepted as f64 / self.n as f64)
    }
}

/// `min(1, exp(ln α))`, 0 for NaN.
fn alpha_of(log_alpha: f64) -> f64 {
    if log_alpha.is_nan() {
        0.0
    } else {
        log_alpha.min(0.0).exp()
    }
}

fn sq(v: f32) -> f64 {
    f64::from(v) * f64::from(v)
}

/// The mass matrix of one block: `m·I`, or a diagonal estimated in the
/// warm-up (`adapt_mass`), held as `[B, ...sample]` tensors (the same row for
/// every chain) so that every use is one element-wise product.
enum Mass<B: Backend> {
    Scalar(f32),
    Diag {
        /// `M⁻¹`.
        inv: B::Tensor,
        /// `M^{1/2}`.
        sqrt_m: B::Tensor,
        /// `M^{-1/2}`.
        inv_sqrt: B::Tensor,
        /// `M⁻¹` of one chain, on the host (for the statistics).
        host_inv: Vec<f32>,
    },
}

impl<B: Backend> Mass<B> {
    /// `s ← s + a·M⁻¹p`.
    fn move_by(&self, be: &B, s: &mut B::Tensor, a: f32, p: &B::Tensor) -> Result<()> {
        match self {
            Mass::Scalar(m) => be.axpy(s, a / m, p),
            Mass::Diag { inv, .. } => {
                let mut v = p.clone();
                be.mul_assign(&mut v, inv)?;
                be.axpy(s, a, &v)
            }
        }
    }

    /// `ξ ← M^{1/2}ξ` (a momentum from standard normal noise).
    fn momentum(&self, be: &B, xi: &mut B::Tensor) -> Result<()> {
        match self {
            Mass::Scalar(m) => be.scale(xi, m.sqrt()),
            Mass::Diag { sqrt_m, .. } => be.mul_assign(xi, sqrt_m),
        }
    }

    /// Per chain, `pᵀM⁻¹p / 2`.
    fn kinetic(&self, be: &B, p: &B::Tensor) -> Result<Vec<f64>> {
        let (n, m) = match self {
            Mass::Scalar(m) => (be.to_host(&be.row_norms(p)?)?, f64::from(*m)),
            Mass::Diag { inv_sqrt, .. } => {
                let mut q = p.clone();
                be.mul_assign(&mut q, inv_sqrt)?;
                (be.to_host(&be.row_norms(&q)?)?, 1.0)
            }
        };
        Ok(n.iter().map(|&n| sq(n) / (2.0 * m)).collect())
    }

    fn host_inv(&self) -> Vec<f32> {
        match self {
            Mass::Scalar(_) => Vec::new(),
            Mass::Diag { host_inv, .. } => host_inv.clone(),
        }
    }
}

/// Running per-coordinate sums of one block's positions (mass warm-up).
struct MassEstimate<B: Backend> {
    sum: B::Tensor,
    sum_sq: B::Tensor,
    steps: usize,
}

impl<B: Backend> MassEstimate<B> {
    fn new(be: &B, like: &B::Tensor) -> Result<Self> {
        let shape = be.shape(like);
        Ok(MassEstimate {
            sum: be.zeros(&shape)?,
            sum_sq: be.zeros(&shape)?,
            steps: 0,
        })
    }

    fn add(&mut self, be: &B, s: &B::Tensor) -> Result<()> {
        be.axpy(&mut self.sum, 1.0, s)?;
        let mut q = s.clone();
        be.mul_assign(&mut q, s)?;
        be.axpy(&mut self.sum_sq, 1.0, &q)?;
        self.steps += 1;
        Ok(())
    }

    /// The diagonal mass: inverse mass = each coordinate's variance over
    /// chains and steps, shrunk towards the block's mean variance v̄ with
    /// weight `n/(n + 5)` (Stan's regulariser, relative to v̄ rather than 1),
    /// divided by `v̄·m` so that the mean inverse mass stays `1/m`. `None`
    /// when the chains do not vary (v̄ not positive).
    fn finish(&self, be: &B, m: f32) -> Result<Option<Mass<B>>> {
        let shape = be.shape(&self.sum);
        let batch = shape[0];
        let d = crate::backend::shape::row_len(&shape);
        let (sum, sum_sq) = (be.to_host(&self.sum)?, be.to_host(&self.sum_sq)?);
        let n = (self.steps * batch) as f64;
        let var: Vec<f64> = (0..d)
            .map(|i| {
                let (mut s1, mut s2) = (0.0f64, 0.0f64);
                for b in 0..batch {
                    s1 += f64::from(sum[b * d + i]);
                    s2 += f64::from(sum_sq[b * d + i]);
                }
                let mean = s1 / n;
                (s2 / n - mean * mean).max(0.0)
            })
            .collect();
        let vbar = var.iter().sum::<f64>() / d as f64;
        if !(vbar.is_finite() && vbar > 0.0) {
            return Ok(None);
        }
        let w = n / (n + 5.0);
        let host_inv: Vec<f32> = var
            .iter()
            .map(|&v| ((w * v + (1.0 - w) * vbar) / (vbar * f64::from(m))) as f32)
            .collect();
        let rows = |f: &dyn Fn(f32) -> f32| -> Result<B::Tensor> {
            let one: Vec<f32> = host_inv.iter().map(|&v| f(v)).collect();
            be.from_host(&one.repeat(batch), &shape)
        };
        Ok(Some(Mass::Diag {
            inv: rows(&|v| v)?,
            sqrt_m: rows(&|v| 1.0 / v.sqrt())?,
            inv_sqrt: rows(&|v| v.sqrt())?,
            host_inv,
        }))
    }
}

/// What one call keeps between steps.
struct State<'t, 'n, B: Backend> {
    t: &'t Target<'t, B>,
    c: &'t LangevinConfig,
    noise: &'n mut dyn NoiseSource<B>,
    key: ChainKey,
    batch: usize,
    eps: [f32; 2],
    mass: [Mass<B>; 2],
    sums: [AcceptSum; 2],
    drift: [DriftSum; 2],
    chain_alpha: Vec<f64>,
    chain_moves: usize,
    energy_error: Vec<f64>,
    divergent: Vec<bool>,
    divergences: usize,
}

impl<B: Backend> State<'_, '_, B> {
    fn clip(&self, block: Block) -> Option<f32> {
        let eps = self.eps[block.index()];
        let c = match block {
            Block::Res => self.c.clip_res,
            Block::Latent => self.c.clip_latent,
        };
        c.map(|m| m / (eps * eps / 2.0))
    }

    fn uniforms(&mut self, stream: Stream, k: usize) -> Result<Vec<f64>> {
        self.noise.uniform(self.key.key(stream, k), self.batch)
    }

    fn record_alpha(&mut self, alpha: &[f64]) {
        for (s, a) in self.chain_alpha.iter_mut().zip(alpha) {
            *s += a;
        }
        self.chain_moves += 1;
    }

    /// One MALA (or, with `always`, shadow-monitored ULA) move of `blocks`:
    /// one block (MH within Gibbs), or the latent and residual blocks proposed
    /// together from the same point (`joint_proposal`), accepted per chain.
    fn mala_move(
        &mut self,
        chains: &mut Chains<B>,
        point: &mut Point<B>,
        blocks: &[Block],
        k: usize,
        always: bool,
    ) -> Result<Vec<f64>> {
        let (t, be) = (self.t, self.t.be);
        let mut norms = be.zeros(&[self.batch])?;
        let mut props: [Option<B::Tensor>; 2] = [None, None];
        let mut xis: [Option<B::Tensor>; 2] = [None, None];
        for &block in blocks {
            let eps = self.eps[block.index()];
            let step = eps * eps / 2.0;
            let clip = self.clip(block);
            let mut g = t.grad(point, chains, block)?;
            let cur = block_of(chains, block)?;
            let mut xi = be.zeros(&be.shape(cur))?;
            self.noise
                .normal(be, self.key.key(block.noise_stream(), k), &mut xi)?;
            let mut prop = cur.clone();
            be.langevin_update(
                &mut prop,
                &mut g,
                Some(&xi),
                LangevinUpdate {
                    step,
                    noise_scale: eps,
                    clip,
                },
                &mut norms,
            )?;
            self.drift[block.index()].add(&be.to_host(&norms)?, step, clip);
            props[block.index()] = Some(prop);
            xis[block.index()] = Some(xi);
        }
        let moves_latent = props[1].is_some();
        // Only the moving blocks are new; the other is copied once for the proposal.
        let prop_chains = Chains {
            z: match props[1].take() {
                Some(z) => Some(z),
                None => chains.z.clone(),
            },
            y: match props[0].take() {
                Some(y) => y,
                None => chains.y.clone(),
            },
        };
        let gen_out = if moves_latent {
            t.gen_out(prop_chains.z.as_ref())?
        } else {
            point.gen_out.clone()
        };
        let mut pp = t.eval(&prop_chains, gen_out)?;
        let mut log_alpha: Vec<f64> = (0..self.batch).map(|b| point.u[b] - pp.u[b]).collect();
        for &block in blocks {
            let eps = self.eps[block.index()];
            // Reverse move: s − (s' − (ε²/2)F(s')).
            let mut g2 = t.grad(&mut pp, &prop_chains, block)?;
            let mut back = block_of(&prop_chains, block)?.clone();
            be.langevin_update(
                &mut back,
                &mut g2,
                None,
                LangevinUpdate {
                    step: eps * eps / 2.0,
                    noise_scale: 0.0,
                    clip: self.clip(block),
                },
                &mut norms,
            )?;
            let r = be.sub(block_of(chains, block)?, &back)?;
            let rn = be.to_host(&be.row_norms(&r)?)?;
            let xi = xis[block.index()].as_ref().expect("drawn above");
            let xn = be.to_host(&be.row_norms(xi)?)?;
            let inv2e2 = 1.0 / (2.0 * f64::from(eps) * f64::from(eps));
            for (b, la) in log_alpha.iter_mut().enumerate() {
                *la = *la + 0.5 * sq(xn[b]) - sq(rn[b]) * inv2e2;
            }
        }
        for (la, u) in log_alpha.iter_mut().zip(&pp.u) {
            if !u.is_finite() {
                *la = f64::NEG_INFINITY;
            }
        }
        // A joint move is one decision, counted with the residual block.
        let sum_block = if blocks.len() == 1 {
            blocks[0]
        } else {
            Block::Res
        };
        let accepted: Vec<bool> = if always {
            vec![true; self.batch]
        } else {
            let u = self.uniforms(sum_block.accept_stream(), k)?;
            log_alpha
                .iter()
                .zip(&u)
                .map(|(&la, &u)| u.ln() < la)
                .collect()
        };
        let alpha: Vec<f64> = log_alpha.iter().map(|&la| alpha_of(la)).collect();
        self.sums[sum_block.index()].add(&alpha, &accepted);
        self.record_alpha(&alpha);
        let moved = [blocks.contains(&Block::Res), moves_latent];
        commit(be, chains, point, prop_chains, pp, &accepted, moved)?;
        Ok(alpha)
    }

    /// Kicks the momenta: `p_s ← p_s − step_s·F_s` for the moving blocks.
    fn kick(
        &self,
        p: &mut [Option<B::Tensor>; 2],
        point: &mut Point<B>,
        chains: &Chains<B>,
        frac: f32,
    ) -> Result<()> {
        for block in [Block::Res, Block::Latent] {
            if let Some(pb) = p[block.index()].as_mut() {
                let mut g = self.t.grad(point, chains, block)?;
                let mut norms = self.t.be.zeros(&[self.batch])?;
                self.t.be.langevin_update(
                    pb,
                    &mut g,
                    None,
                    LangevinUpdate {
                        step: frac * self.eps[block.index()],
                        noise_scale: 0.0,
                        clip: self.clip(block),
                    },
                    &mut norms,
                )?;
            }
        }
        Ok(())
    }

    /// Moves the positions: `s ← s + frac·ε_s/m_s·p_s`, then evaluates there
    /// (`G(z)` is recomputed only when the latents move, else taken from `prev`).
    fn drift_positions(
        &self,
        p: &[Option<B::Tensor>; 2],
        chains: &mut Chains<B>,
        frac: f32,
        prev: &Point<B>,
    ) -> Result<Point<B>> {
        for block in [Block::Res, Block::Latent] {
            if let Some(pb) = &p[block.index()] {
                let a = frac * self.eps[block.index()];
                self.mass[block.index()].move_by(self.t.be, block_mut(chains, block)?, a, pb)?;
            }
        }
        let gen_out = if p[1].is_some() {
            self.t.gen_out(chains.z.as_ref())?
        } else {
            prev.gen_out.clone()
        };
        self.t.eval(chains, gen_out)
    }

    /// Momenta `√m_s·ξ_s` for the moving blocks from `stream`/counter.
    fn momenta(
        &mut self,
        chains: &Chains<B>,
        key: impl Fn(Block) -> crate::noise::NoiseKey,
    ) -> Result<[Option<B::Tensor>; 2]> {
        let mut p: [Option<B::Tensor>; 2] = [None, None];
        for block in self.moving() {
            let be = self.t.be;
            let mut pb = be.zeros(&be.shape(block_of(chains, block)?))?;
            self.noise.normal(be, key(block), &mut pb)?;
            self.mass[block.index()].momentum(be, &mut pb)?;
            p[block.index()] = Some(pb);
        }
        Ok(p)
    }

    fn kinetic(&self, p: &[Option<B::Tensor>; 2]) -> Result<Vec<f64>> {
        let mut k = vec![0.0; self.batch];
        for block in [Block::Res, Block::Latent] {
            if let Some(pb) = &p[block.index()] {
                let kb = self.mass[block.index()].kinetic(self.t.be, pb)?;
                for (k, kb) in k.iter_mut().zip(kb) {
                    *k += kb;
                }
            }
        }
        Ok(k)
    }

    fn moving(&self) -> Vec<Block> {
        let mut v = Vec::new();
        if self.c.update_latents {
            v.push(Block::Latent);
        }
        if self.c.update_res {
            v.push(Block::Res);
        }
        v
    }

    /// One HMC transition (L leapfrog steps over all moving blocks).
    fn hmc(&mut self, chains: &mut Chains<B>, point: &mut Point<B>, k: usize) -> Result<Vec<f64>> {
        let key = self.key;
        let mut p = self.momenta(chains, |b| key.key(b.noise_stream(), k))?;
        let h0: Vec<f64> = self
            .kinetic(&p)?
            .iter()
            .zip(&point.u)
            .map(|(k, u)| k + u)
            .collect();
        let mut cur = chains.clone();
        let mut pt = point.clone();
        self.kick(&mut p, &mut pt, &cur, 0.5)?;
        let l_steps = self.c.leapfrog_steps;
        for l in 0..l_steps {
            pt = self.drift_positions(&p, &mut cur, 1.0, &pt)?;
            let frac = if l + 1 < l_steps { 1.0 } else { 0.5 };
            self.kick(&mut p, &mut pt, &cur, frac)?;
        }
        let k1 = self.kinetic(&p)?;
        let de: Vec<f64> = (0..self.batch).map(|b| pt.u[b] + k1[b] - h0[b]).collect();
        let u = self.uniforms(Stream::ChainAcceptRes, k)?;
        let accepted: Vec<bool> = de
            .iter()
            .zip(&u)
            .map(|(&d, &u)| d.is_finite() && u.ln() < -d)
            .collect();
        let alpha: Vec<f64> = de.iter().map(|&d| alpha_of(-d)).collect();
        for (b, &d) in de.iter().enumerate() {
            if !d.is_finite() || d > MAX_ENERGY_ERROR {
                self.divergent[b] = true;
                self.divergences += 1;
            }
        }
        self.energy_error = de;
        self.sums[0].add(&alpha, &accepted);
        self.record_alpha(&alpha);
        let moved = [self.c.update_res, self.c.update_latents];
        commit(self.t.be, chains, point, cur, pt, &accepted, moved)?;
        Ok(alpha)
    }

    /// One BAOAB step; `p` persists over the call.
    fn baoab(
        &mut self,
        chains: &mut Chains<B>,
        point: &mut Point<B>,
        p: &mut [Option<B::Tensor>; 2],
        k: usize,
    ) -> Result<()> {
        self.kick(p, point, chains, 0.5)?;
        for block in [Block::Res, Block::Latent] {
            if let Some(pb) = &p[block.index()] {
                let a = 0.5 * self.eps[block.index()];
                self.mass[block.index()].move_by(self.t.be, block_mut(chains, block)?, a, pb)?;
            }
        }
        for block in self.moving() {
            let be = self.t.be;
            let pb = p[block.index()]
                .as_mut()
                .expect("moving blocks have momenta");
            let mut xi = be.zeros(&be.shape(pb))?;
            self.noise
                .normal(be, self.key.key(block.noise_stream(), k), &mut xi)?;
            let c1 = (-self.c.friction * self.eps[block.index()]).exp();
            self.mass[block.index()].momentum(be, &mut xi)?;
            be.axpby(pb, c1, (1.0 - c1 * c1).max(0.0).sqrt(), &xi)?;
        }
        *point = self.drift_positions(p, chains, 0.5, point)?;
        self.kick(p, point, chains, 0.5)
    }
}

/// One dual-averaging update with the mean acceptance of `alpha`; the next ε
/// (or factor), or the frozen one at the end of the warm-up (`last`).
fn adapted(da: &mut DualAveraging, alpha: &[f64], last: bool) -> f64 {
    let next = da.update(mean_f64(alpha));
    if last { da.final_eps() } else { next }
}

/// Keeps, per chain, the current state or the proposal's (`accepted[b]`),
/// for the blocks that moved (`[res, latent]`), with their points.
fn commit<B: Backend>(
    be: &B,
    chains: &mut Chains<B>,
    point: &mut Point<B>,
    prop: Chains<B>,
    pp: Point<B>,
    accepted: &[bool],
    moved: [bool; 2],
) -> Result<()> {
    let idx: Vec<usize> = (0..accepted.len()).filter(|&b| accepted[b]).collect();
    if idx.len() == accepted.len() {
        *chains = prop;
        *point = pp;
        return Ok(());
    }
    if idx.is_empty() {
        return Ok(());
    }
    let merge = |dst: &mut B::Tensor, src: &B::Tensor| -> Result<()> {
        let rows = be.gather_rows(src, &idx)?;
        be.scatter_rows(dst, &idx, &rows)
    };
    if moved[0] {
        merge(&mut chains.y, &prop.y)?;
    }
    if moved[1] {
        if let (Some(z), Some(pz)) = (chains.z.as_mut(), prop.z.as_ref()) {
            merge(z, pz)?;
        }
        if let (Some(g), Some(pg)) = (point.gen_out.as_mut(), pp.gen_out.as_ref()) {
            merge(g, pg)?;
        }
    }
    merge(&mut point.gx, &pp.gx)?;
    match (point.grad_z.as_mut(), pp.grad_z.as_ref()) {
        (Some(g), Some(pg)) => merge(g, pg)?,
        _ => point.grad_z = None,
    }
    for &b in &idx {
        point.h[b] = pp.h[b];
        point.u[b] = pp.u[b];
    }
    Ok(())
}

/// The ε for which MALA would accept with probability `target`, from the mean
/// acceptance `alpha` at `eps`: `Φ⁻¹(a/2) ∝ ε³` (Roberts & Rosenthal 1998),
/// kept within `[ε/10, 10ε]`.
pub fn suggest_eps(eps: f64, alpha: f64, target: f64) -> Option<f64> {
    if !(alpha > 0.0 && alpha < 1.0 && target > 0.0 && target < 1.0) {
        return (alpha >= 1.0).then_some(10.0 * eps);
    }
    let ratio = (probit(target / 2.0) / probit(alpha / 2.0)).cbrt();
    Some(eps * ratio.clamp(0.1, 10.0))
}

/// Runs `c.steps` steps of `c.method` on `chains` (shapes checked by the
/// caller); returns the diagnostics and the final images.
///
/// # Errors
/// Model, noise and backend errors.
pub fn run<B: Backend>(
    t: &Target<'_, B>,
    c: &LangevinConfig,
    chains: &mut Chains<B>,
    noise: &mut dyn NoiseSource<B>,
    key: ChainKey,
    mut record: Option<StepRecorder<'_, B>>,
) -> Result<(LangevinStats, B::Tensor)> {
    let batch = t.be.shape(&chains.y)[0];
    let mut st = State {
        t,
        c,
        noise,
        key,
        batch,
        eps: [c.eps_res, c.eps_latent],
        mass: [Mass::Scalar(c.mass_res), Mass::Scalar(c.mass_latent)],
        sums: Default::default(),
        drift: Default::default(),
        chain_alpha: vec![0.0; batch],
        chain_moves: 0,
        energy_error: Vec::new(),
        divergent: vec![false; batch],
        divergences: 0,
    };
    let target = f64::from(c.target_accept);
    // HMC and joint MALA make one decision per step: they adapt one scale
    // factor of both step sizes (in `adapt[0]`); block MALA adapts each ε.
    let one_factor = c.method == Method::Hmc || c.joint_proposal;
    let mut adapt: [Option<DualAveraging>; 2] = if one_factor {
        [
            (c.adapt_steps > 0).then(|| DualAveraging::new(1.0, target)),
            None,
        ]
    } else {
        [
            (c.adapt_steps > 0).then(|| DualAveraging::new(f64::from(c.eps_res), target)),
            (c.adapt_steps > 0 && c.method == Method::Mala)
                .then(|| DualAveraging::new(f64::from(c.eps_latent), target)),
        ]
    };
    let eps0 = st.eps;
    let mut factor = 1.0f64;
    let mut mass_est: [Option<MassEstimate<B>>; 2] = [None, None];
    let mut point = t.eval(chains, t.gen_out(chains.z.as_ref())?)?;
    let mut momenta = if c.method == Method::Baoab {
        let iteration = key.iteration;
        let k0 = key;
        st.momenta(chains, |b| crate::noise::NoiseKey {
            seed: k0.seed,
            stream: Stream::ChainInitMomentum,
            counter: [iteration, b.index() as u64],
            row_offset: k0.row_offset,
        })?
    } else {
        [None, None]
    };
    let mut energy_per_step = Vec::new();
    energy_per_step.try_reserve_exact(c.steps).map_err(|_| {
        Error::InvalidArgument(format!(
            "{}: {} steps: out of memory for the per-step energies",
            c.method.name(),
            c.steps
        ))
    })?;
    for k in 0..c.steps {
        let adapting = k < c.adapt_steps;
        match c.method {
            Method::Mala if c.joint_proposal => {
                energy_per_step.push(mean(&point.h));
                let blocks = st.moving();
                let alpha = st.mala_move(chains, &mut point, &blocks, k, false)?;
                if let (true, Some(da)) = (adapting, adapt[0].as_mut()) {
                    factor = adapted(da, &alpha, k + 1 == c.adapt_steps);
                    st.eps = [eps0[0] * factor as f32, eps0[1] * factor as f32];
                }
            }
            Method::Ula | Method::Mala => {
                let always = c.method == Method::Ula;
                for block in st.moving() {
                    if block == Block::Res || !c.update_res {
                        energy_per_step.push(mean(&point.h));
                    }
                    let alpha = st.mala_move(chains, &mut point, &[block], k, always)?;
                    if let (true, Some(da)) = (adapting, adapt[block.index()].as_mut()) {
                        st.eps[block.index()] = adapted(da, &alpha, k + 1 == c.adapt_steps) as f32;
                    }
                }
            }
            Method::Hmc => {
                energy_per_step.push(mean(&point.h));
                let alpha = st.hmc(chains, &mut point, k)?;
                if let (true, Some(da)) = (adapting, adapt[0].as_mut()) {
                    factor = adapted(da, &alpha, k + 1 == c.adapt_steps);
                    st.eps = [eps0[0] * factor as f32, eps0[1] * factor as f32];
                }
                if c.adapt_mass && (c.adapt_steps / 4..c.adapt_steps / 2).contains(&k) {
                    for block in st.moving() {
                        let s = block_of(chains, block)?;
                        let est = &mut mass_est[block.index()];
                        if est.is_none() {
                            *est = Some(MassEstimate::new(t.be, s)?);
                        }
                        est.as_mut().expect("set above").add(t.be, s)?;
                    }
                    if k + 1 == c.adapt_steps / 2 {
                        for block in st.moving() {
                            let m = [c.mass_res, c.mass_latent][block.index()];
                            let est = mass_est[block.index()].take().expect("collected above");
                            if let Some(mass) = est.finish(t.be, m)? {
                                st.mass[block.index()] = mass;
                            }
                        }
                        // A new metric: adapt the step size afresh from here.
                        adapt[0] = Some(DualAveraging::new(factor, target));
                    }
                }
            }
            Method::Baoab => {
                energy_per_step.push(mean(&point.h));
                st.baoab(chains, &mut point, &mut momenta, k)?;
            }
        }
        if let Some(r) = record.as_deref_mut() {
            r(k, None, chains);
        }
    }
    let images = t.images(point.gen_out.as_ref(), &chains.y)?;
    finish(st, chains, energy_per_step, images)
}

fn finish<B: Backend>(
    st: State<'_, '_, B>,
    chains: &Chains<B>,
    energy_per_step: Vec<f64>,
    images: B::Tensor,
) -> Result<(LangevinStats, B::Tensor)> {
    let c = st.c;
    let be = st.t.be;
    let mut stats = LangevinStats {
        steps: c.steps,
        ..Default::default()
    };
    if c.steps > 0 {
        stats.mean_energy = mean_f64(&energy_per_step);
        stats.last_energy = *energy_per_step.last().unwrap_or(&0.0);
        stats.energy_per_step = energy_per_step;
    }
    if matches!(c.method, Method::Ula | Method::Mala) {
        (stats.drift_norm_res, stats.clip_frac_res) = st.drift[0].finish();
        (stats.drift_norm_latent, stats.clip_frac_latent) = st.drift[1].finish();
    }
    if let Some(z) = &chains.z {
        stats.mean_latent_norm = mean(&be.to_host(&be.row_norms(z)?)?);
    }
    if c.method == Method::Baoab {
        return Ok((stats, images));
    }
    let shadow = c.method == Method::Ula;
    let target = f64::from(c.target_accept);
    let moves = st.chain_moves.max(1) as f64;
    let eps = |i: usize| f64::from(st.eps[i]);
    let suggest = |i: usize| {
        if shadow {
            st.sums[i]
                .alpha()
                .and_then(|a| suggest_eps(eps(i), a, target))
        } else {
            None
        }
    };
    stats.mh = Some(MhStats {
        method: c.method.name().into(),
        alpha_res: st.sums[0].alpha(),
        alpha_latent: st.sums[1].alpha(),
        accept_res: if shadow { None } else { st.sums[0].accept() },
        accept_latent: if shadow { None } else { st.sums[1].accept() },
        chain_alpha: st.chain_alpha.iter().map(|a| a / moves).collect(),
        energy_error: st.energy_error.clone(),
        divergent: if c.method == Method::Hmc {
            st.divergent.clone()
        } else {
            Vec::new()
        },
        divergences: st.divergences,
        eps_res: eps(0),
        eps_latent: eps(1),
        suggested_eps_res: suggest(0),
        suggested_eps_latent: suggest(1),
        inv_mass_res: st.mass[0].host_inv(),
        inv_mass_latent: st.mass[1].host_inv(),
    });
    Ok((stats, images))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_averaging_moves_towards_the_target() {
        // Acceptance falls with ε: α(ε) = exp(−ε); target 0.5 ⇒ ε* = ln 2.
        let mut da = DualAveraging::new(0.1, 0.5);
        let mut eps: f64 = 0.1;
        for _ in 0..2000 {
            eps = da.update((-eps).exp());
        }
        assert!(
            (da.final_eps() - 2f64.ln()).abs() < 0.05,
            "{}",
            da.final_eps()
        );
        assert!(eps > 0.0);
    }

    #[test]
    fn suggestion_follows_the_scaling_law() {
        // At the target acceptance the suggestion is the current ε.
        assert!((suggest_eps(0.3, 0.574, 0.574).unwrap() - 0.3).abs() < 1e-12);
        // Higher acceptance than the target ⇒ a larger step, and vice versa.
        assert!(suggest_eps(0.3, 0.95, 0.574).unwrap() > 0.3);
        assert!(suggest_eps(0.3, 0.2, 0.574).unwrap() < 0.3);
        assert_eq!(suggest_eps(0.3, 1.0, 0.574), Some(3.0));
        assert_eq!(suggest_eps(0.3, 0.0, 0.574), None);
    }

    #[test]
    fn alpha_is_a_probability() {
        assert_eq!(alpha_of(1.0), 1.0);
        assert_eq!(alpha_of(f64::NEG_INFINITY), 0.0);
        assert_eq!(alpha_of(f64::NAN), 0.0);
        assert!((alpha_of(-1.0) - (-1f64).exp()).abs() < 1e-15);
    }
}
