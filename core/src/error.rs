//! The one error type of libhatebm.
//!
//! Every fallible function of the core returns [`Result<T>`]. The variants are
//! grouped by what the caller can do about them; the C ABI maps each variant to
//! a numbered `hatebm_status` (see `ffi/src/status.rs`), so a variant's meaning
//! never changes once released — new variants are only appended.

use std::path::PathBuf;

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in libhatebm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A caller-supplied value is outside its allowed range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A tensor or buffer does not have the shape (or length) it must have.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which tensor / buffer / parameter.
        what: String,
        /// The expected shape, formatted (e.g. `[4, 3, 32, 32]`).
        expected: String,
        /// The shape that was given.
        got: String,
    },

    /// A NaN or infinity was found where finite numbers are required.
    #[error("non-finite value in {0}")]
    NonFinite(String),

    /// The backend named by a spec was not compiled into this build.
    #[error("backend `{name}` is not compiled into this build of libhatebm ({hint})")]
    BackendUnavailable {
        /// The backend spec, e.g. `tch:cuda:0`.
        name: String,
        /// How to get it (which cargo feature).
        hint: String,
    },

    /// The backend is compiled in but the requested device does not exist.
    #[error("device unavailable: {0}")]
    DeviceUnavailable(String),

    /// An operating-system I/O error on a file.
    #[error("I/O error on `{path}`: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file or byte buffer is malformed (corrupt checkpoint, bad npy header, ...).
    #[error("format error in {context}: {message}")]
    Format {
        /// What was being read (usually a path).
        context: String,
        /// What is wrong with it.
        message: String,
    },

    /// A configuration key is unknown or a value cannot be parsed / is out of range.
    #[error("config error: {0}")]
    Config(String),

    /// A named parameter tensor is missing, unexpected or mis-shaped in a weights file.
    #[error("parameter error: {0}")]
    Param(String),

    /// A user callback (C or Rust) reported a failure.
    #[error("callback failed: {0}")]
    Callback(String),

    /// A long-running operation was cancelled by a progress callback.
    #[error("cancelled by the caller")]
    Cancelled,

    /// Training diverged (NaN/Inf, or energy difference beyond the configured bound).
    #[error("training diverged: {0}")]
    Diverged(String),

    /// An error reported by a backend library (e.g. libtorch).
    #[error("backend error: {0}")]
    Backend(String),

    /// A distributed run cannot go on: a collective failed (a rank is gone, a
    /// transport error, a timeout), another rank failed, or the ranks disagree
    /// (configuration, library version, replicated state).
    #[error("distributed run: {0}")]
    Distributed(String),

    /// `source`, with what was being done when it happened (`loading
    /// checkpoint out/x.safetensors`). Added by [`Error::context`] or
    /// [`ResultExt::context`] as an error travels outward, so the message
    /// reads outermost first (`loading checkpoint out/x.safetensors:
    /// restoring the trainer: the energy's optimiser state: invalid
    /// argument: ...`) and no layer rewrites another's message. What kind of
    /// error it is — and the C ABI's status — is the innermost one's,
    /// [`Error::root`]; match on that, not on the wrapper.
    #[error("{context}: {source}")]
    Context {
        /// What was being done.
        context: String,
        /// The error it failed with.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Builds an [`Error::ShapeMismatch`] from two shapes.
    pub fn shape(what: impl Into<String>, expected: &[usize], got: &[usize]) -> Self {
        Error::ShapeMismatch {
            what: what.into(),
            expected: format!("{expected:?}"),
            got: format!("{got:?}"),
        }
    }

    /// Builds an [`Error::Io`] for a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// This error with `context` (what was being done) in front; see
    /// [`Error::Context`].
    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// The innermost error, below every [`Error::Context`]: what kind of
    /// failure this is.
    pub fn root(&self) -> &Error {
        let mut e = self;
        while let Error::Context { source, .. } = e {
            e = source;
        }
        e
    }

    /// The contexts, outermost first (empty for an error without any).
    pub fn contexts(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut e = self;
        while let Error::Context { context, source } = e {
            out.push(context.as_str());
            e = source;
        }
        out
    }

    /// Builds an [`Error::Format`].
    pub fn format(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Format {
            context: context.into(),
            message: message.into(),
        }
    }
}

/// Context for the error of a [`Result`]: `load(path).context("loading
/// the weights")?`. The error keeps its kind ([`Error::root`]).
pub trait ResultExt<T> {
    /// Wraps an error in [`Error::Context`] with `context`.
    ///
    /// # Errors
    /// The error of `self`, with `context` in front.
    fn context(self, context: impl Into<String>) -> Result<T>;

    /// As [`ResultExt::context`], building the context only on error.
    ///
    /// # Errors
    /// The error of `self`, with `f()` in front.
    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.context(context))
    }

    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.context(f()))
    }
}

/// Returns early with an [`Error::InvalidArgument`] built from a format string.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::InvalidArgument(format!($($arg)*)))
    };
}

/// Returns early with an [`Error::InvalidArgument`] unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !($cond) {
            return Err($crate::Error::InvalidArgument(format!($($arg)*)));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> Result<()> {
        Err(Error::format("x.safetensors", "truncated header"))
    }

    #[test]
    fn contexts_read_outermost_first_and_keep_the_kind() {
        let e = load()
            .context("reading the weights")
            .with_context(|| format!("loading checkpoint {}", "out/x.safetensors"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "loading checkpoint out/x.safetensors: reading the weights: \
             format error in x.safetensors: truncated header"
        );
        assert!(matches!(e.root(), Error::Format { message, .. } if message == "truncated header"));
        assert_eq!(
            e.contexts(),
            [
                "loading checkpoint out/x.safetensors",
                "reading the weights"
            ]
        );
        // std's source chain walks the same layers.
        let mut n = 0;
        let mut s: Option<&dyn std::error::Error> = Some(&e);
        while let Some(x) = s {
            n += 1;
            s = x.source();
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn an_error_without_context_is_its_own_root() {
        let e = Error::Cancelled;
        assert!(matches!(e.root(), Error::Cancelled));
        assert!(e.contexts().is_empty());
        // `with_context` builds nothing on success.
        let ok: Result<u8> = Ok(1);
        assert_eq!(ok.with_context(|| -> String { unreachable!() }).unwrap(), 1);
    }
}
