//! [`TchDevice`]: where a [`crate::TchBackend`] computes (burn-tch's
//! `LibTorchDevice` shape), with conversions to and from [`tch::Device`].

use std::fmt;

/// A libtorch device.
///
/// libhatebm computes on [`TchDevice::Cpu`] and [`TchDevice::Cuda`]; the other
/// variants exist so that the conversion from [`tch::Device`] is total, and a
/// backend on them is refused with
/// [`Error::DeviceUnavailable`](hatebm_core::Error::DeviceUnavailable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TchDevice {
    /// The CPU (threads from libtorch's intra-op pool).
    #[default]
    Cpu,
    /// CUDA device `n`.
    Cuda(usize),
    /// Apple Metal (not supported by libhatebm).
    Mps,
    /// Vulkan (not supported by libhatebm).
    Vulkan,
}

impl From<TchDevice> for tch::Device {
    fn from(d: TchDevice) -> Self {
        match d {
            TchDevice::Cpu => tch::Device::Cpu,
            TchDevice::Cuda(n) => tch::Device::Cuda(n),
            TchDevice::Mps => tch::Device::Mps,
            TchDevice::Vulkan => tch::Device::Vulkan,
        }
    }
}

impl From<tch::Device> for TchDevice {
    fn from(d: tch::Device) -> Self {
        match d {
            tch::Device::Cpu => TchDevice::Cpu,
            tch::Device::Cuda(n) => TchDevice::Cuda(n),
            tch::Device::Mps => TchDevice::Mps,
            tch::Device::Vulkan => TchDevice::Vulkan,
        }
    }
}

impl fmt::Display for TchDevice {
    /// `cpu`, `cuda:N`, `mps`, `vulkan`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TchDevice::Cpu => f.write_str("cpu"),
            TchDevice::Cuda(n) => write!(f, "cuda:{n}"),
            TchDevice::Mps => f.write_str("mps"),
            TchDevice::Vulkan => f.write_str("vulkan"),
        }
    }
}

impl std::str::FromStr for TchDevice {
    type Err = hatebm_core::Error;

    /// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N` (an optional `tch:`
    /// prefix is accepted, so backend specs parse too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix("tch:").unwrap_or(t);
        match t {
            "cpu" => Ok(TchDevice::Cpu),
            "cuda" => Ok(TchDevice::Cuda(0)),
            _ => match t.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(TchDevice::Cuda(n)),
                _ => Err(hatebm_core::Error::Config(format!(
                    "unknown tch device `{s}` (accepted: cpu, cuda, cuda:N)"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        for d in [
            TchDevice::Cpu,
            TchDevice::Cuda(0),
            TchDevice::Cuda(3),
            TchDevice::Mps,
            TchDevice::Vulkan,
        ] {
            assert_eq!(TchDevice::from(tch::Device::from(d)), d);
        }
        assert_eq!("cuda".parse::<TchDevice>().unwrap(), TchDevice::Cuda(0));
        assert_eq!(
            "tch:cuda:2".parse::<TchDevice>().unwrap(),
            TchDevice::Cuda(2)
        );
        assert_eq!("cpu".parse::<TchDevice>().unwrap(), TchDevice::Cpu);
        assert!("gpu".parse::<TchDevice>().is_err());
        assert_eq!(TchDevice::Cuda(1).to_string(), "cuda:1");
    }
}
