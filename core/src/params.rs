//! Named parameter tensors: specification, storage, gradients, initialisation.
//!
//! A network is described by an ordered list of [`ParamSpec`]s (PyTorch
//! `state_dict` names and shapes, see `docs/architecture.md` and the golden
//! README). Every backend stores the values in a [`ParamSet`] in that order and
//! its gradients in a [`Grads`] aligned with it. Initial values are generated on
//! the host from the [`Stream::Init`] stream and uploaded, so every backend
//! starts from bit-identical weights for the same seed.

use rand::Rng;

use crate::backend::{Backend, shape::numel};
use crate::noise::{NoiseKey, Stream};
use crate::{Error, Result};

/// A named host tensor `(name, shape, row-major data)`: the exchange format of
/// weights files and checkpoints.
pub type HostTensor = (String, Vec<usize>, Vec<f32>);

/// How a parameter is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Keras `glorot_uniform`: `U(−l, l)`, `l = sqrt(6 / (fan_in + fan_out))`.
    GlorotUniform {
        /// Inputs per output unit (`in · kh · kw` for convolutions).
        fan_in: usize,
        /// Outputs per input unit (`out · kh · kw` for convolutions).
        fan_out: usize,
    },
    /// All zeros (biases, BN beta and running mean).
    Zeros,
    /// All ones (BN gamma and running variance).
    Ones,
}

/// The specification of one named parameter (or buffer).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// The PyTorch `state_dict` name, e.g. `block2.conv1.weight`.
    pub name: String,
    /// The shape, e.g. `[Cout, Cin, 3, 3]`.
    pub shape: Vec<usize>,
    /// Whether an optimiser updates it (false for BN running statistics).
    pub trainable: bool,
    /// Its initial value.
    pub init: Init,
}

impl ParamSpec {
    /// A trainable parameter.
    pub fn trainable(name: impl Into<String>, shape: Vec<usize>, init: Init) -> Self {
        ParamSpec {
            name: name.into(),
            shape,
            trainable: true,
            init,
        }
    }

    /// A non-trainable buffer (BN running statistics).
    pub fn buffer(name: impl Into<String>, shape: Vec<usize>, init: Init) -> Self {
        ParamSpec {
            name: name.into(),
            shape,
            trainable: false,
            init,
        }
    }

    /// Generates the initial host values; the Glorot draws of parameter `index`
    /// come from the [`Stream::Init`] stream, row `index`, of `seed`.
    pub fn initial_values(&self, seed: u64, index: usize) -> Vec<f32> {
        let n = numel(&self.shape);
        match self.init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::GlorotUniform { fan_in, fan_out } => {
                let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
                let mut rng = NoiseKey::new(seed, Stream::Init, [0, 0]).rng_for_row(index as u64);
                (0..n)
                    .map(|_| rng.random_range(-limit..limit) as f32)
                    .collect()
            }
        }
    }
}

/// One stored parameter.
#[derive(Clone, Debug)]
pub struct Param<B: Backend> {
    /// Its specification (name, shape, trainable).
    pub spec: ParamSpec,
    /// Its current value.
    pub value: B::Tensor,
}

/// An ordered set of named parameters on one backend.
#[derive(Clone, Debug)]
pub struct ParamSet<B: Backend> {
    params: Vec<Param<B>>,
}

impl<B: Backend> ParamSet<B> {
    /// Allocates the parameters of `specs` with their initial values for `seed`.
    ///
    /// # Errors
    /// A backend allocation error, or [`Error::Param`] on duplicate names.
    pub fn init(backend: &B, specs: &[ParamSpec], seed: u64) -> Result<Self> {
        let mut params = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].iter().any(|o| o.name == s.name) {
                return Err(Error::Param(format!(
                    "duplicate parameter name `{}`",
                    s.name
                )));
            }
            let value = backend.from_host(&s.initial_values(seed, i), &s.shape)?;
            params.push(Param {
                spec: s.clone(),
                value,
            });
        }
        Ok(ParamSet { params })
    }

    /// The number of parameters (trainable and buffers).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// All parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = &Param<B>> {
        self.params.iter()
    }

    /// All parameters in order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Param<B>> {
        self.params.iter_mut()
    }

    /// Parameter `i`.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn get(&self, i: usize) -> &Param<B> {
        &self.params[i]
    }

    /// Parameter `i`, mutably.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn get_mut(&mut self, i: usize) -> &mut Param<B> {
        &mut self.params[i]
    }

    /// The value of parameter `i` (the fast path used by networks).
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn value(&self, i: usize) -> &B::Tensor {
        &self.params[i].value
    }

    /// The index of a parameter by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.spec.name == name)
    }

    /// The specifications, in order.
    pub fn specs(&self) -> Vec<ParamSpec> {
        self.params.iter().map(|p| p.spec.clone()).collect()
    }

    /// The name of the first tensor (in parameter order) holding a NaN or an
    /// infinity, if any: the check run on every update and checkpoint.
    ///
    /// # Errors
    /// A backend error.
    pub fn first_non_finite(&self, backend: &B) -> Result<Option<&str>> {
        for p in &self.params {
            if !backend.all_finite(&p.value)? {
                return Ok(Some(&p.spec.name));
            }
        }
        Ok(None)
    }

    /// Total number of trainable scalars.
    pub fn num_trainable(&self) -> usize {
        self.params
            .iter()
            .filter(|p| p.spec.trainable)
            .map(|p| numel(&p.spec.shape))
            .sum()
    }

    /// Copies all values to the host as `(name, shape, data)` in order.
    ///
    /// # Errors
    /// A backend error.
    pub fn to_host(&self, backend: &B) -> Result<Vec<HostTensor>> {
        self.params
            .iter()
            .map(|p| {
                Ok((
                    p.spec.name.clone(),
                    p.spec.shape.clone(),
                    backend.to_host(&p.value)?,
                ))
            })
            .collect()
    }

    /// Replaces all values from named host tensors. Strict: every parameter must
    /// be present with its exact shape and finite values, and no unknown name may
    /// appear; the error names the offending tensor. Nothing is modified on error.
    ///
    /// # Errors
    /// [`Error::Param`] for a missing, unexpected or mis-shaped tensor,
    /// [`Error::NonFinite`] for NaN/Inf values.
    pub fn load_host(&mut self, backend: &B, tensors: &[HostTensor]) -> Result<()> {
        for (name, _, _) in tensors {
            if self.index_of(name).is_none() {
                return Err(Error::Param(format!(
                    "unexpected tensor `{name}` (this network has: {})",
                    abbreviate_names(self.params.iter().map(|p| p.spec.name.as_str()))
                )));
            }
        }
        let mut new_values = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let (_, shape, data) = tensors
                .iter()
                .find(|(n, _, _)| *n == p.spec.name)
                .ok_or_else(|| {
                    Error::Param(format!(
                        "missing tensor `{}` (shape {:?})",
                        p.spec.name, p.spec.shape
                    ))
                })?;
            if *shape != p.spec.shape || data.len() != numel(shape) {
                return Err(Error::Param(format!(
                    "tensor `{}` has shape {shape:?}, expected {:?}",
                    p.spec.name, p.spec.shape
                )));
            }
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "tensor `{}` element {i}",
                    p.spec.name
                )));
            }
            new_values.push(backend.from_host(data, shape)?);
        }
        for (p, v) in self.params.iter_mut().zip(new_values) {
            p.value = v;
        }
        Ok(())
    }

    /// Overwrites every value with the corresponding value of `other` (same specs).
    ///
    /// # Errors
    /// [`Error::Param`] if the specs differ.
    pub fn copy_values_from(&mut self, backend: &B, other: &ParamSet<B>) -> Result<()> {
        if self.specs() != other.specs() {
            return Err(Error::Param("parameter sets have different layouts".into()));
        }
        for (p, o) in self.params.iter_mut().zip(&other.params) {
            backend.copy_from(&mut p.value, &o.value)?;
        }
        Ok(())
    }
}

fn abbreviate_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.len() <= 6 {
        v.join(", ")
    } else {
        format!("{}, ... ({} in all)", v[..6].join(", "), v.len())
    }
}

/// Gradients aligned with a [`ParamSet`]: entry `i` is `Some` for trainable
/// parameter `i` and `None` for buffers.
#[derive(Clone, Debug)]
pub struct Grads<B: Backend> {
    /// One optional tensor per parameter, in the set's order.
    pub tensors: Vec<Option<B::Tensor>>,
}

impl<B: Backend> Grads<B> {
    /// Zero gradients for every trainable parameter of `params`.
    ///
    /// # Errors
    /// A backend allocation error.
    pub fn zeros_like(backend: &B, params: &ParamSet<B>) -> Result<Self> {
        let tensors = params
            .iter()
            .map(|p| {
                if p.spec.trainable {
                    backend.zeros(&p.spec.shape).map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect::<Result<_>>()?;
        Ok(Grads { tensors })
    }

    /// Resets every gradient to zero (no allocation).
    ///
    /// # Errors
    /// A backend error.
    pub fn zero(&mut self, backend: &B) -> Result<()> {
        for t in self.tensors.iter_mut().flatten() {
            backend.fill(t, 0.0)?;
        }
        Ok(())
    }

    /// The gradient of parameter `i`, if trainable.
    pub fn get(&self, i: usize) -> Option<&B::Tensor> {
        self.tensors.get(i).and_then(Option::as_ref)
    }

    /// Whether every gradient is finite.
    ///
    /// # Errors
    /// A backend error.
    pub fn all_finite(&self, backend: &B) -> Result<bool> {
        for t in self.tensors.iter().flatten() {
            if !backend.all_finite(t)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
