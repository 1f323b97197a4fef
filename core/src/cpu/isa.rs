//! Which instruction set the CPU backend's kernels use, and the one switch
//! that forces a path: `HATEBM_CPU_ISA=avx512|avx2|generic`.
//!
//! By default the best path this CPU can run is used ([`detected`]). The
//! environment variable lowers it (never raises it: a path the CPU cannot
//! execute would fault), so one machine with AVX-512 runs the suite's kernel,
//! golden, property and cross-backend tests on every path it can execute —
//! `scripts/test.sh` does, so CI covers the generic path whatever machine it
//! lands on. A value the CPU lacks, or that is not one of the three names, is
//! refused with a clear error by [`check_env`] (called when a run resolves its
//! backend); the kernels themselves then use [`detected`], so they never
//! execute an instruction the CPU lacks.
//!
//! Paths today: `avx512` — the direct convolution and MLP kernels
//! (`conv_direct`); `generic` — im2col + `matrixmultiply` GEMMs (which pick
//! their own SIMD at run time) and scalar element-wise loops. `avx2` is
//! accepted on CPUs with AVX2 + FMA and currently runs the generic kernels
//! (AVX2 direct kernels are issue 12, item 1).
//!
//! Results differ between paths in float rounding only (a different
//! summation order), and are bit-identical across thread counts and batch
//! splits on each path.

use std::sync::OnceLock;

use crate::{Error, Result};

/// The environment variable that forces a path.
pub const ENV: &str = "HATEBM_CPU_ISA";

/// A kernel path of the CPU backend, in increasing order of requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Baseline x86-64 (or any architecture): GEMM kernels, scalar loops.
    Generic,
    /// AVX2 + FMA.
    Avx2,
    /// AVX-512F: the direct convolution and MLP kernels.
    Avx512,
}

impl Isa {
    /// The name used by [`ENV`].
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a name of [`ENV`].
    ///
    /// # Errors
    /// [`Error::Config`] for anything but `avx512`, `avx2`, `generic`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "avx512" => Ok(Isa::Avx512),
            "avx2" => Ok(Isa::Avx2),
            "generic" => Ok(Isa::Generic),
            other => Err(Error::Config(format!(
                "{ENV}=`{other}`: expected `avx512`, `avx2` or `generic`"
            ))),
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The best path this CPU can run.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Generic
}

/// The path `requested` resolves to on a CPU whose best is `best`.
///
/// # Errors
/// [`Error::DeviceUnavailable`] if the CPU cannot run `requested`.
pub fn choose(requested: Option<Isa>, best: Isa) -> Result<Isa> {
    match requested {
        None => Ok(best),
        Some(r) if r <= best => Ok(r),
        Some(r) => Err(Error::DeviceUnavailable(format!(
            "{ENV}={r}: this CPU cannot run the {r} kernels (the best it supports is {best})"
        ))),
    }
}

fn requested_from_env() -> Result<Option<Isa>> {
    match std::env::var(ENV) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Isa::parse(&v).map(Some),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::Config(format!("{ENV} is not valid UTF-8")))
        }
    }
}

/// Checks [`ENV`] against this CPU.
///
/// # Errors
/// [`Error::Config`] for an unknown name; [`Error::DeviceUnavailable`] for a
/// path this CPU cannot run.
pub fn check_env() -> Result<Isa> {
    choose(requested_from_env()?, detected())
}

/// The CPU's model name as the operating system reports it (Linux:
/// `/proc/cpuinfo`), for logs; `None` where it is not available. Read once.
pub fn cpu_model() -> Option<&'static str> {
    static MODEL: OnceLock<Option<String>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
            info.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == "model name")
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|v| !v.is_empty())
        })
        .as_deref()
}

/// The path the kernels use: [`ENV`] if it is valid for this CPU, else the
/// detected best (with a warning in the log). Read once per process.
pub fn active() -> Isa {
    static ACTIVE: OnceLock<Isa> = OnceLock::new();
    *ACTIVE.get_or_init(|| match check_env() {
        Ok(isa) => isa,
        Err(e) => {
            let best = detected();
            log::warn!("{e}; using {best}");
            best
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_round_trip() {
        for isa in [Isa::Generic, Isa::Avx2, Isa::Avx512] {
            assert_eq!(Isa::parse(isa.name()).unwrap(), isa);
        }
        assert_eq!(Isa::parse(" AVX512 ").unwrap(), Isa::Avx512);
        let e = Isa::parse("sse9").unwrap_err().to_string();
        assert!(
            e.contains(ENV) && e.contains("sse9") && e.contains("generic"),
            "{e}"
        );
    }

    #[test]
    fn a_path_can_be_lowered_never_raised() {
        assert_eq!(choose(None, Isa::Avx2).unwrap(), Isa::Avx2);
        assert_eq!(
            choose(Some(Isa::Generic), Isa::Avx512).unwrap(),
            Isa::Generic
        );
        assert_eq!(choose(Some(Isa::Avx2), Isa::Avx512).unwrap(), Isa::Avx2);
        let e = choose(Some(Isa::Avx512), Isa::Avx2).unwrap_err();
        assert!(matches!(e, Error::DeviceUnavailable(_)), "{e}");
        assert!(e.to_string().contains("best it supports is avx2"), "{e}");
    }

    #[test]
    fn the_active_path_runs_on_this_cpu() {
        assert!(active() <= detected());
    }
}
