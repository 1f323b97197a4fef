//! Backend-independent descriptions of the built-in networks.
//!
//! An architecture value ([`EnergyArch`], [`GeneratorArch`]) determines the
//! block structure, the parameter names and shapes ([`ParamSpec`]), the sample
//! and latent shapes, and the FLOP count. Every backend builds its networks from
//! these descriptions, so names, shapes and initialisation cannot drift between
//! backends. The architectures are exactly those of the golden README
//! (`tests/golden/README.md`), i.e. the official Hat EBM code's SN-GAN nets
//! without spectral norm.

use serde::{Deserialize, Serialize};

use crate::params::{Init, ParamSpec};
use crate::{Error, Result};

/// An energy network architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EnergyArch {
    /// MLP `dims = [d_in, h1, ..., 1]`, LeakyReLU(0.2) between layers, biases everywhere.
    Mlp {
        /// Layer widths, input first; the last must be 1.
        dims: Vec<usize>,
    },
    /// SN-GAN EBM (no spectral norm) for `res ∈ {32, 64, 128}`.
    Sngan {
        /// Image resolution (32, 64 or 128).
        res: usize,
        /// Image channels.
        nch: usize,
        /// Channel factor (the paper uses 128 at 32×32, 1024 at 64/128).
        ngf: usize,
    },
}

/// A generator architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GeneratorArch {
    /// MLP `dims = [nz, h1, ..., d_out]`, LeakyReLU(0.2) between layers, linear output.
    Mlp {
        /// Layer widths, latent first.
        dims: Vec<usize>,
    },
    /// SN-GAN generator (batch norm in inference mode, eps 1e-3).
    Sngan {
        /// Output resolution (32, 64 or 128).
        res: usize,
        /// Latent size.
        nz: usize,
        /// Channel factor.
        ngf: usize,
        /// Output channels.
        nch: usize,
        /// The tanh output is multiplied by this (the paper's `gen_factor`, 2.0).
        out_factor: f32,
    },
    /// The retrofit decoder `GenDecoder32`: latent `[1, 16, 16]` → `[nch, 32, 32]`.
    Decoder32 {
        /// Channel width (official: 256).
        ngf: usize,
        /// Output channels.
        nch: usize,
        /// Output scale after tanh (official: 2.0).
        out_factor: f32,
    },
}

/// Batch-norm epsilon of every generator (Keras default used by the paper).
pub const BN_EPS: f32 = 1e-3;
/// Negative slope of the MLPs' LeakyReLU.
pub const LEAKY_SLOPE: f32 = 0.2;
/// Spatial size of the SN-GAN generator's first feature map.
pub const BOTTOM_WIDTH: usize = 4;

/// One residual block of the SN-GAN EBM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EbmBlockSpec {
    /// Parameter prefix, e.g. `block2`.
    pub name: String,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Input spatial size (square).
    pub size: usize,
    /// Whether the block ends with a 2×2 average pool.
    pub down: bool,
    /// The stem (block 1): no leading ReLU, pool *before* the 1×1 shortcut conv.
    pub stem: bool,
    /// Whether the shortcut has a 1×1 conv (always for the stem; else iff
    /// `cin != cout || down`).
    pub learnable_sc: bool,
}

/// One residual block of the SN-GAN generator / decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenBlockSpec {
    /// Parameter prefix, e.g. `block2`.
    pub name: String,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Input spatial size (square).
    pub size: usize,
    /// Whether the block upsamples ×2 (bilinear, half-pixel centres).
    pub up: bool,
    /// The decoder stem: no `bn1`, no leading ReLU, no upsampling.
    pub stem: bool,
    /// Whether the shortcut has a 1×1 conv (always for the stem; else iff
    /// `cin != cout || up`).
    pub learnable_sc: bool,
}

fn conv_specs(out: &mut Vec<ParamSpec>, prefix: &str, cout: usize, cin: usize, k: usize) {
    out.push(ParamSpec::trainable(
        format!("{prefix}.weight"),
        vec![cout, cin, k, k],
        Init::GlorotUniform {
            fan_in: cin * k * k,
            fan_out: cout * k * k,
        },
    ));
    out.push(ParamSpec::trainable(
        format!("{prefix}.bias"),
        vec![cout],
        Init::Zeros,
    ));
}

fn linear_specs(out: &mut Vec<ParamSpec>, prefix: &str, dout: usize, din: usize, bias: bool) {
    out.push(ParamSpec::trainable(
        format!("{prefix}.weight"),
        vec![dout, din],
        Init::GlorotUniform {
            fan_in: din,
            fan_out: dout,
        },
    ));
    if bias {
        out.push(ParamSpec::trainable(
            format!("{prefix}.bias"),
            vec![dout],
            Init::Zeros,
        ));
    }
}

fn bn_specs(out: &mut Vec<ParamSpec>, prefix: &str, c: usize) {
    out.push(ParamSpec::trainable(
        format!("{prefix}.weight"),
        vec![c],
        Init::Ones,
    ));
    out.push(ParamSpec::trainable(
        format!("{prefix}.bias"),
        vec![c],
        Init::Zeros,
    ));
    out.push(ParamSpec::buffer(
        format!("{prefix}.running_mean"),
        vec![c],
        Init::Zeros,
    ));
    out.push(ParamSpec::buffer(
        format!("{prefix}.running_var"),
        vec![c],
        Init::Ones,
    ));
}

/// The widest MLP layer accepted (2²⁰ units): beyond any use here, and small
/// enough that `width²` cannot overflow a size. Whether a network fits in
/// memory is checked separately, against a budget, by the run.
pub const MAX_MLP_WIDTH: usize = 1 << 20;
/// The largest SN-GAN base width `ngf` (and latent size `nz`, channel count
/// `nch`) accepted.
pub const MAX_SNGAN_WIDTH: usize = 1 << 14;
/// The most MLP layers accepted.
pub const MAX_MLP_LAYERS: usize = 1024;

fn check_mlp(dims: &[usize], what: &str) -> Result<()> {
    if dims.len() < 2 || dims.contains(&0) {
        return Err(Error::Config(format!(
            "{what} dims must have at least 2 positive entries, got {dims:?}"
        )));
    }
    if dims.len() > MAX_MLP_LAYERS + 1 {
        return Err(Error::Config(format!(
            "{what} has {} layers, more than {MAX_MLP_LAYERS}",
            dims.len() - 1
        )));
    }
    if let Some(d) = dims.iter().find(|&&d| d > MAX_MLP_WIDTH) {
        return Err(Error::Config(format!(
            "{what} dims entry {d} exceeds the largest width {MAX_MLP_WIDTH}"
        )));
    }
    Ok(())
}

fn check_widths(widths: &[(&str, usize)]) -> Result<()> {
    if let Some((name, v)) = widths.iter().find(|(_, v)| *v > MAX_SNGAN_WIDTH) {
        return Err(Error::Config(format!(
            "{name} = {v} exceeds the largest SN-GAN width {MAX_SNGAN_WIDTH}"
        )));
    }
    Ok(())
}

fn check_res(res: usize) -> Result<()> {
    if ![32, 64, 128].contains(&res) {
        return Err(Error::Config(format!(
            "SN-GAN resolution must be 32, 64 or 128, got {res}"
        )));
    }
    Ok(())
}

/// The channel widths of the SN-GAN 64/128 nets: `ngf/16, ngf/8, ngf/4, ngf/2, ngf`.
fn pyramid(ngf: usize) -> Result<[usize; 5]> {
    if ngf < 16 || !ngf.is_multiple_of(16) {
        return Err(Error::Config(format!(
            "ngf must be a positive multiple of 16 at 64/128 resolution, got {ngf}"
        )));
    }
    Ok([ngf / 16, ngf / 8, ngf / 4, ngf / 2, ngf])
}

impl EnergyArch {
    /// Checks sizes.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad value.
    pub fn validate(&self) -> Result<()> {
        match self {
            EnergyArch::Mlp { dims } => {
                check_mlp(dims, "energy MLP")?;
                if *dims.last().unwrap_or(&0) != 1 {
                    return Err(Error::Config(format!(
                        "energy MLP must end in 1 output, got {dims:?}"
                    )));
                }
                Ok(())
            }
            EnergyArch::Sngan { res, nch, ngf } => {
                check_res(*res)?;
                check_widths(&[("model.energy.nch", *nch), ("model.energy.ngf", *ngf)])?;
                if *nch == 0 || *ngf == 0 {
                    return Err(Error::Config("nch and ngf must be positive".into()));
                }
                if *res != 32 {
                    pyramid(*ngf)?;
                }
                Ok(())
            }
        }
    }

    /// The golden-README class name, e.g. `EBMSNGAN32`.
    pub fn describe(&self) -> String {
        match self {
            EnergyArch::Mlp { dims } => format!("MLPEnergy{dims:?}"),
            EnergyArch::Sngan { res, nch, ngf } => format!("EBMSNGAN{res}(nch={nch}, ngf={ngf})"),
        }
    }

    /// Shape of one input sample.
    pub fn sample_shape(&self) -> Vec<usize> {
        match self {
            EnergyArch::Mlp { dims } => vec![dims[0]],
            EnergyArch::Sngan { res, nch, .. } => vec![*nch, *res, *res],
        }
    }

    /// The residual blocks of an SN-GAN EBM (empty for MLPs).
    ///
    /// # Errors
    /// [`Error::Config`] for invalid sizes.
    pub fn blocks(&self) -> Result<Vec<EbmBlockSpec>> {
        self.validate()?;
        let (res, nch, ngf) = match self {
            EnergyArch::Mlp { .. } => return Ok(Vec::new()),
            EnergyArch::Sngan { res, nch, ngf } => (*res, *nch, *ngf),
        };
        // (cin, cout, down) per block, block1 first.
        let plan: Vec<(usize, usize, bool)> = match res {
            32 => vec![
                (nch, ngf, true),
                (ngf, ngf, true),
                (ngf, ngf, false),
                (ngf, ngf, false),
            ],
            _ => {
                let p = pyramid(ngf)?;
                let mut v = vec![(nch, p[0], true)];
                for i in 1..5 {
                    v.push((p[i - 1], p[i], true));
                }
                if res == 128 {
                    v.push((ngf, ngf, false));
                }
                v
            }
        };
        let mut size = res;
        Ok(plan
            .into_iter()
            .enumerate()
            .map(|(i, (cin, cout, down))| {
                let stem = i == 0;
                let b = EbmBlockSpec {
                    name: format!("block{}", i + 1),
                    cin,
                    cout,
                    size,
                    down,
                    stem,
                    learnable_sc: stem || cin != cout || down,
                };
                if down {
                    size /= 2;
                }
                b
            })
            .collect())
    }

    /// The parameter specifications in canonical order.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid sizes.
    pub fn param_specs(&self) -> Result<Vec<ParamSpec>> {
        self.validate()?;
        let mut v = Vec::new();
        match self {
            EnergyArch::Mlp { dims } => {
                for (i, w) in dims.windows(2).enumerate() {
                    linear_specs(&mut v, &format!("fc{}", i + 1), w[1], w[0], true);
                }
            }
            EnergyArch::Sngan { .. } => {
                let blocks = self.blocks()?;
                for b in &blocks {
                    conv_specs(&mut v, &format!("{}.conv1", b.name), b.cout, b.cin, 3);
                    conv_specs(&mut v, &format!("{}.conv2", b.name), b.cout, b.cout, 3);
                    if b.learnable_sc {
                        conv_specs(&mut v, &format!("{}.shortcut", b.name), b.cout, b.cin, 1);
                    }
                }
                let c_last = blocks.last().map_or(0, |b| b.cout);
                linear_specs(&mut v, "fc", 1, c_last, false);
            }
        }
        Ok(v)
    }

    /// Multiply-accumulates of one forward pass per sample (convolutions and
    /// linear layers only). A Langevin step (forward + input gradient) costs
    /// about twice this; see `docs/benchmarks.md` for the exact counting rule.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid sizes.
    pub fn forward_macs_per_sample(&self) -> Result<u64> {
        Ok(match self {
            EnergyArch::Mlp { dims } => dims.windows(2).map(|w| (w[0] * w[1]) as u64).sum(),
            EnergyArch::Sngan { .. } => {
                let mut m = 0u64;
                for b in self.blocks()? {
                    let hw = (b.size * b.size) as u64;
                    m += hw * (b.cin * b.cout * 9) as u64 + hw * (b.cout * b.cout * 9) as u64;
                    if b.learnable_sc {
                        let sc_hw = if b.stem && b.down { hw / 4 } else { hw };
                        m += sc_hw * (b.cin * b.cout) as u64;
                    }
                }
                m + self.blocks()?.last().map_or(0, |b| b.cout as u64)
            }
        })
    }
}

impl GeneratorArch {
    /// Checks sizes.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad value.
    pub fn validate(&self) -> Result<()> {
        match self {
            GeneratorArch::Mlp { dims } => check_mlp(dims, "generator MLP"),
            GeneratorArch::Sngan {
                res,
                nz,
                ngf,
                nch,
                out_factor,
            } => {
                check_res(*res)?;
                check_widths(&[
                    ("model.generator.nz", *nz),
                    ("model.generator.ngf", *ngf),
                    ("model.generator.nch", *nch),
                ])?;
                if *nz == 0 || *ngf == 0 || *nch == 0 {
                    return Err(Error::Config("nz, ngf and nch must be positive".into()));
                }
                if *res != 32 {
                    pyramid(*ngf)?;
                }
                check_factor(*out_factor)
            }
            GeneratorArch::Decoder32 {
                ngf,
                nch,
                out_factor,
            } => {
                check_widths(&[("model.generator.ngf", *ngf), ("model.generator.nch", *nch)])?;
                if *ngf == 0 || *nch == 0 {
                    return Err(Error::Config("ngf and nch must be positive".into()));
                }
                check_factor(*out_factor)
            }
        }
    }

    /// The golden-README class name, e.g. `GenSNGAN32`.
    pub fn describe(&self) -> String {
        match self {
            GeneratorArch::Mlp { dims } => format!("MLPGenerator{dims:?}"),
            GeneratorArch::Sngan {
                res,
                nz,
                ngf,
                nch,
                out_factor,
            } => {
                format!("GenSNGAN{res}(nz={nz}, ngf={ngf}, nch={nch}, out_factor={out_factor})")
            }
            GeneratorArch::Decoder32 {
                ngf,
                nch,
                out_factor,
            } => {
                format!("GenDecoder32(ngf={ngf}, nch={nch}, out_factor={out_factor})")
            }
        }
    }

    /// Shape of one latent.
    pub fn latent_shape(&self) -> Vec<usize> {
        match self {
            GeneratorArch::Mlp { dims } => vec![dims[0]],
            GeneratorArch::Sngan { nz, .. } => vec![*nz],
            GeneratorArch::Decoder32 { .. } => vec![1, 16, 16],
        }
    }

    /// Shape of one output sample.
    pub fn output_shape(&self) -> Vec<usize> {
        match self {
            GeneratorArch::Mlp { dims } => vec![*dims.last().unwrap_or(&0)],
            GeneratorArch::Sngan { res, nch, .. } => vec![*nch, *res, *res],
            GeneratorArch::Decoder32 { nch, .. } => vec![*nch, 32, 32],
        }
    }

    /// The residual blocks (empty for MLPs).
    ///
    /// # Errors
    /// [`Error::Config`] for invalid sizes.
    pub fn blocks(&self) -> Result<Vec<GenBlockSpec>> {
        self.validate()?;
        // (cin, cout, up, stem)
        let (plan, mut size): (Vec<(usize, usize, bool, bool)>, usize) = match self {
            GeneratorArch::Mlp { .. } => return Ok(Vec::new()),
            GeneratorArch::Sngan { res, ngf, .. } => {
                let ngf = *ngf;
                let plan = match res {
                    32 => vec![(ngf, ngf, true, false); 3],
                    _ => {
                        let p = pyramid(ngf)?;
                        let mut v = Vec::new();
                        if *res == 128 {
                            v.push((ngf, ngf, true, false));
                        }
                        for i in (0..4).rev() {
                            v.push((p[i + 1], p[i], true, false));
                        }
                        v
                    }
                };
                (plan, BOTTOM_WIDTH)
            }
            GeneratorArch::Decoder32 { ngf, .. } => {
                let n = *ngf;
                (
                    vec![
                        (1, n, false, true),
                        (n, n, true, false),
                        (n, n, false, false),
                        (n, n, false, false),
                    ],
                    16,
                )
            }
        };
        let first = if matches!(self, GeneratorArch::Decoder32 { .. }) {
            1
        } else {
            2
        };
        Ok(plan
            .into_iter()
            .enumerate()
            .map(|(i, (cin, cout, up, stem))| {
                let b = GenBlockSpec {
                    name: format!("block{}", i + first),
                    cin,
                    cout,
                    size,
                    up,
                    stem,
                    learnable_sc: stem || cin != cout || up,
                };
                if up {
                    size *= 2;
                }
                b
            })
            .collect())
    }

    /// The parameter specifications in canonical order.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid sizes.
    pub fn param_specs(&self) -> Result<Vec<ParamSpec>> {
        self.validate()?;
        let mut v = Vec::new();
        match self {
            GeneratorArch::Mlp { dims } => {
                for (i, w) in dims.windows(2).enumerate() {
                    linear_specs(&mut v, &format!("fc{}", i + 1), w[1], w[0], true);
                }
                return Ok(v);
            }
            GeneratorArch::Sngan { nz, ngf, .. } => {
                linear_specs(&mut v, "fc", BOTTOM_WIDTH * BOTTOM_WIDTH * ngf, *nz, true);
            }
            GeneratorArch::Decoder32 { .. } => {}
        }
        let blocks = self.blocks()?;
        for b in &blocks {
            if !b.stem {
                bn_specs(&mut v, &format!("{}.bn1", b.name), b.cin);
            }
            conv_specs(&mut v, &format!("{}.conv1", b.name), b.cout, b.cin, 3);
            bn_specs(&mut v, &format!("{}.bn2", b.name), b.cout);
            conv_specs(&mut v, &format!("{}.conv2", b.name), b.cout, b.cout, 3);
            if b.learnable_sc {
                conv_specs(&mut v, &format!("{}.shortcut", b.name), b.cout, b.cin, 1);
            }
        }
        let c_last = blocks.last().map_or(0, |b| b.cout);
        let nch = self.output_shape()[0];
        bn_specs(&mut v, "bn", c_last);
        conv_specs(&mut v, "conv", nch, c_last, 3);
        Ok(v)
    }

    /// The tanh output factor (1 for MLPs, which have no tanh).
    pub fn out_factor(&self) -> f32 {
        match self {
            GeneratorArch::Mlp { .. } => 1.0,
            GeneratorArch::Sngan { out_factor, .. }
            | GeneratorArch::Decoder32 { out_factor, .. } => *out_factor,
        }
    }
}

/// An encoder architecture (the retrofit autoencoder's inference network).
///
/// Implemented as a [`crate::model::Generator`] from images to codes, so the
/// same VJP machinery trains it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EncoderArch {
    /// `InfEncoder32` of the official code: EBM blocks (stem without pooling,
    /// block 2 pools 32 → 16, blocks 3–4 identity), ReLU, a 3×3 conv to one
    /// channel, and a projection of each code onto the sphere of radius
    /// `sqrt(256) = 16`. Input `[nch, 32, 32]`, code `[1, 16, 16]`.
    Encoder32 {
        /// Image channels.
        nch: usize,
        /// Channel width (official: 256).
        ngf: usize,
    },
}

/// Epsilon of the encoder's sphere projection `x·R/(‖x‖ + eps)`.
pub const ENCODER_NORM_EPS: f32 = 1e-6;

impl EncoderArch {
    /// Checks sizes.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad value.
    pub fn validate(&self) -> Result<()> {
        let EncoderArch::Encoder32 { nch, ngf } = self;
        check_widths(&[
            ("autoencoder.encoder.nch", *nch),
            ("autoencoder.encoder.ngf", *ngf),
        ])?;
        if *nch == 0 || *ngf == 0 {
            return Err(Error::Config("encoder nch and ngf must be positive".into()));
        }
        Ok(())
    }

    /// The class name of the official code.
    pub fn describe(&self) -> String {
        let EncoderArch::Encoder32 { nch, ngf } = self;
        format!("InfEncoder32(nch={nch}, ngf={ngf})")
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> Vec<usize> {
        let EncoderArch::Encoder32 { nch, .. } = self;
        vec![*nch, 32, 32]
    }

    /// Shape of one code (the decoder's latent).
    pub fn code_shape(&self) -> Vec<usize> {
        vec![1, 16, 16]
    }

    /// The EBM-style blocks.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid sizes.
    pub fn blocks(&self) -> Result<Vec<EbmBlockSpec>> {
        self.validate()?;
        let EncoderArch::Encoder32 { nch, ngf } = *self;
        let b = |i: usize, cin: usize, size: usize, down: bool, stem: bool| EbmBlockSpec {
            name: format!("block{i}"),
            cin,
            cout: ngf,
            size,
            down,
            stem,
            learnable_sc: stem || cin != ngf || down,
        };
        Ok(vec![
            b(1, nch, 32, false, true),
            b(2, ngf, 32, true, false),
            b(3, ngf, 16, false, false),
            b(4, ngf, 16, false, false),
        ])
    }

    /// The parameter specifications in canonical order.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid sizes.
    pub fn param_specs(&self) -> Result<Vec<ParamSpec>> {
        let mut v = Vec::new();
        for b in self.blocks()? {
            conv_specs(&mut v, &format!("{}.conv1", b.name), b.cout, b.cin, 3);
            conv_specs(&mut v, &format!("{}.conv2", b.name), b.cout, b.cout, 3);
            if b.learnable_sc {
                conv_specs(&mut v, &format!("{}.shortcut", b.name), b.cout, b.cin, 1);
            }
        }
        let EncoderArch::Encoder32 { ngf, .. } = self;
        conv_specs(&mut v, "conv2latent", 1, *ngf, 3);
        Ok(v)
    }
}

fn check_factor(f: f32) -> Result<()> {
    if !(f.is_finite() && f > 0.0) {
        return Err(Error::Config(format!(
            "out_factor must be finite and positive, got {f}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(specs: &[ParamSpec]) -> Vec<&str> {
        specs.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn ebm32_matches_golden_layout() {
        let a = EnergyArch::Sngan {
            res: 32,
            nch: 3,
            ngf: 16,
        };
        let s = a.param_specs().unwrap();
        assert_eq!(s.len(), 21);
        assert_eq!(s[0].name, "block1.conv1.weight");
        assert_eq!(s[0].shape, vec![16, 3, 3, 3]);
        assert!(names(&s).contains(&"block2.shortcut.weight"));
        assert!(!names(&s).contains(&"block3.shortcut.weight"));
        assert_eq!(s.last().unwrap().shape, vec![1, 16]);
    }

    #[test]
    fn ebm128_has_identity_block6() {
        let a = EnergyArch::Sngan {
            res: 128,
            nch: 3,
            ngf: 32,
        };
        let s = a.param_specs().unwrap();
        assert_eq!(s.len(), 35);
        let b = a.blocks().unwrap();
        assert_eq!(b.len(), 6);
        assert_eq!(
            (b[5].cin, b[5].cout, b[5].down, b[5].size),
            (32, 32, false, 4)
        );
    }

    #[test]
    fn gen_layouts_match_golden_counts() {
        let g32 = GeneratorArch::Sngan {
            res: 32,
            nz: 16,
            ngf: 16,
            nch: 3,
            out_factor: 2.0,
        };
        assert_eq!(g32.param_specs().unwrap().len(), 50);
        let g64 = GeneratorArch::Sngan {
            res: 64,
            nz: 16,
            ngf: 64,
            nch: 3,
            out_factor: 1.0,
        };
        assert_eq!(g64.param_specs().unwrap().len(), 64);
        let g128 = GeneratorArch::Sngan {
            res: 128,
            nz: 16,
            ngf: 32,
            nch: 3,
            out_factor: 2.0,
        };
        assert_eq!(g128.param_specs().unwrap().len(), 78);
        let d = GeneratorArch::Decoder32 {
            ngf: 16,
            nch: 3,
            out_factor: 2.0,
        };
        let s = d.param_specs().unwrap();
        assert_eq!(s.len(), 54);
        assert_eq!(s[0].name, "block1.conv1.weight");
        assert_eq!(s[0].shape, vec![16, 1, 3, 3]);
    }

    #[test]
    fn invalid_sizes_are_config_errors() {
        assert!(
            EnergyArch::Sngan {
                res: 48,
                nch: 3,
                ngf: 16
            }
            .validate()
            .is_err()
        );
        assert!(
            EnergyArch::Sngan {
                res: 64,
                nch: 3,
                ngf: 24
            }
            .validate()
            .is_err()
        );
        assert!(
            EnergyArch::Mlp {
                dims: vec![2, 8, 2]
            }
            .validate()
            .is_err()
        );
        assert!(GeneratorArch::Mlp { dims: vec![4] }.validate().is_err());
    }
}
