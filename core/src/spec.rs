//! [`BackendSpec`]: the one config line that picks a backend at run time.
//!
//! Accepted strings: `cpu`, `tch:cpu`, `tch:cuda` (= `tch:cuda:0`),
//! `tch:cuda:N`, `auto`. Parsing never depends on which backends were compiled
//! in; *building* a backend from a spec does (the FFI crate's run-time dispatch
//! returns [`crate::Error::BackendUnavailable`] for a backend that is not
//! compiled in, [`crate::Error::DeviceUnavailable`] for a missing device, and
//! only `auto` may fall back).

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Which backend and device to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BackendSpec {
    /// The CPU reference backend (ndarray + matrixmultiply).
    #[default]
    Cpu,
    /// libtorch on the CPU.
    TchCpu,
    /// libtorch on CUDA device `N`.
    TchCuda(usize),
    /// CUDA through libtorch if compiled in and a device is present, else `cpu`.
    Auto,
}

impl BackendSpec {
    /// Every accepted form, for error messages.
    pub const ACCEPTED: &'static str = "cpu, tch:cpu, tch:cuda, tch:cuda:N, auto";
}

impl fmt::Display for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendSpec::Cpu => f.write_str("cpu"),
            BackendSpec::TchCpu => f.write_str("tch:cpu"),
            BackendSpec::TchCuda(n) => write!(f, "tch:cuda:{n}"),
            BackendSpec::Auto => f.write_str("auto"),
        }
    }
}

impl FromStr for BackendSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim();
        let spec = match t {
            "cpu" => BackendSpec::Cpu,
            "tch:cpu" => BackendSpec::TchCpu,
            "tch:cuda" => BackendSpec::TchCuda(0),
            "auto" => BackendSpec::Auto,
            _ => match t.strip_prefix("tch:cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => BackendSpec::TchCuda(n),
                _ => {
                    return Err(Error::Config(format!(
                        "unknown backend `{s}` (accepted: {})",
                        BackendSpec::ACCEPTED
                    )));
                }
            },
        };
        Ok(spec)
    }
}

impl TryFrom<String> for BackendSpec {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<BackendSpec> for String {
    fn from(b: BackendSpec) -> String {
        b.to_string()
    }
}

impl serde::Serialize for BackendSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for BackendSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // The message alone: the caller's error adds its own category prefix.
        s.parse().map_err(|e| match e {
            crate::Error::Config(m) => serde::de::Error::custom(m),
            other => serde::de::Error::custom(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("cpu".parse::<BackendSpec>().unwrap(), BackendSpec::Cpu);
        assert_eq!(
            "tch:cpu".parse::<BackendSpec>().unwrap(),
            BackendSpec::TchCpu
        );
        assert_eq!(
            "tch:cuda".parse::<BackendSpec>().unwrap(),
            BackendSpec::TchCuda(0)
        );
        assert_eq!(
            "tch:cuda:3".parse::<BackendSpec>().unwrap(),
            BackendSpec::TchCuda(3)
        );
        assert_eq!("auto".parse::<BackendSpec>().unwrap(), BackendSpec::Auto);
        for bad in ["", "gpu", "tch", "tch:cuda:x", "tch:cuda:-1", "CPU"] {
            let e = bad.parse::<BackendSpec>().unwrap_err().to_string();
            assert!(e.contains("accepted"), "{e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            BackendSpec::Cpu,
            BackendSpec::TchCpu,
            BackendSpec::TchCuda(0),
            BackendSpec::TchCuda(7),
            BackendSpec::Auto,
        ] {
            assert_eq!(s.to_string().parse::<BackendSpec>().unwrap(), s);
        }
    }
}
