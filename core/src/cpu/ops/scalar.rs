//! The [`Scalar`] trait: the element types (`f32`, `f64`) every kernel is generic over.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use super::gemm::RawGemm;
use super::util::ScratchPool;

/// A floating-point element type of the CPU kernels: `f32` (the production path) or
/// `f64` (finite-difference checks and float64 reference computations).
///
/// The trait is sealed: its supertraits `RawGemm` (the dispatch to
/// `matrixmultiply::sgemm` / `dgemm`, used only through the checked [`gemm`](super::gemm())
/// wrapper) and `ScratchPool` (per-thread scratch buffers) are implemented inside this
/// crate for `f32` and `f64` only.
///
/// All methods are the exact (correctly rounded or libm-accurate) operations of the
/// underlying primitive type; nothing is approximated.
pub trait Scalar:
    Copy
    + Send
    + Sync
    + Default
    + Debug
    + Display
    + PartialEq
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + RawGemm
    + ScratchPool
    + 'static
{
    /// Additive identity, `0`.
    const ZERO: Self;
    /// Multiplicative identity, `1`.
    const ONE: Self;
    /// Machine epsilon (`f32::EPSILON` / `f64::EPSILON`).
    const EPSILON: Self;
    /// The type's name, `"f32"` or `"f64"` (for messages and benchmarks).
    const NAME: &'static str;

    /// `0` (same as [`Scalar::ZERO`]).
    #[inline]
    fn zero() -> Self {
        Self::ZERO
    }
    /// `1` (same as [`Scalar::ONE`]).
    #[inline]
    fn one() -> Self {
        Self::ONE
    }
    /// Converts from `f64`, rounding to nearest (`as` semantics).
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` (exact for both `f32` and `f64`).
    fn to_f64(self) -> f64;
    /// Converts a count to the type, rounding to nearest (exact below 2^24 for `f32`).
    fn from_usize(n: usize) -> Self;
    /// Hyperbolic tangent (the standard library's, i.e. libm's, accuracy).
    fn tanh(self) -> Self;
    /// Correctly rounded square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// The larger of two values; if one is NaN the other is returned (IEEE `maxNum`).
    fn max(self, other: Self) -> Self;
    /// The smaller of two values; if one is NaN the other is returned (IEEE `minNum`).
    fn min(self, other: Self) -> Self;
    /// `true` unless the value is NaN or ±∞.
    fn is_finite(self) -> bool;
    /// `true` if the value is NaN.
    fn is_nan(self) -> bool;
    /// The slice as `&[f32]` when `Self` is `f32` (for `f32`-only SIMD kernels), else `None`.
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    /// The slice as `&mut [f32]` when `Self` is `f32`, else `None`.
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;
}

macro_rules! impl_scalar {
    ($t:ty, $as32:expr, $as32mut:expr) => {
        impl Scalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const EPSILON: Self = <$t>::EPSILON;
            const NAME: &'static str = stringify!($t);

            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_usize(n: usize) -> Self {
                n as $t
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline]
            fn as_f32(s: &[Self]) -> Option<&[f32]> {
                $as32(s)
            }
            #[inline]
            fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
                $as32mut(s)
            }
        }
    };
}

impl_scalar!(f32, Some, Some);
impl_scalar!(f64, |_| None, |_| None);

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T: Scalar>() {
        assert_eq!(T::from_f64(0.5).to_f64(), 0.5);
        assert_eq!(T::zero() + T::one(), T::ONE);
        assert_eq!(T::from_usize(7).to_f64(), 7.0);
        assert_eq!(T::from_f64(-2.0).abs().to_f64(), 2.0);
        assert_eq!(T::from_f64(9.0).sqrt().to_f64(), 3.0);
        assert_eq!(T::from_f64(f64::NAN).max(T::ONE), T::ONE);
        assert!(!T::from_f64(f64::INFINITY).is_finite());
        assert!(T::from_f64(f64::NAN).is_nan());
        assert!((T::from_f64(0.3).tanh().to_f64() - 0.3f64.tanh()).abs() < 1e-7);
        let mut v = [T::ONE; 3];
        assert_eq!(T::as_f32(&v).is_some(), T::NAME == "f32");
        assert_eq!(
            T::as_f32_mut(&mut v).map(|s| s.len()),
            T::as_f32(&v).map(|s| s.len())
        );
    }

    #[test]
    fn scalar_basics() {
        roundtrip::<f32>();
        roundtrip::<f64>();
        assert_eq!(f32::NAME, "f32");
        assert_eq!(f64::NAME, "f64");
    }
}
