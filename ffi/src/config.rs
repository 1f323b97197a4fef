//! `hatebm_config`: a run configuration built from TOML text, a TOML file and
//! single `key = value` settings (the core's [`ConfigBuilder`]).
//!
//! The handle holds the *document* (preset name plus overrides), not a resolved
//! [`Config`]: every `hatebm_config_set` is checked at once (unknown keys with a
//! suggestion, wrong types, single-knob ranges), and cross-field checks run when
//! a session is built from it or it is printed with `hatebm_config_to_toml`.

use std::ffi::c_char;
use std::path::{Path, PathBuf};

use hatebm_rs::config::{Config, ConfigBuilder};
use hatebm_rs::run::Checkpoint;
use hatebm_rs::{Error, ResultExt};

use crate::handle::{
    box_castable, free_box, into_raw_box, try_copy_out, try_mut, try_out, try_ref, try_str,
};
use crate::status::hatebm_status;

/// A run configuration (backend, seed, networks, sampler, training, data,
/// outputs), edited key by key.
///
/// Thread-safety: mutating calls (`hatebm_config_set`, `_unset`) need exclusive
/// use; calls taking a `const hatebm_config *` may run concurrently from several
/// threads while nobody mutates it. A session copies the resolved configuration
/// when it is built, so the config may be changed or freed afterwards without
/// affecting the session.
#[derive(Debug)]
pub struct hatebm_config {
    _private: [u8; 0],
}

/// The Rust value behind a `hatebm_config`.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConfigHandle {
    builder: ConfigBuilder,
    /// The folder of the file it was read from: relative data and weight paths
    /// resolve against it (as `Config::from_file` does).
    base_dir: Option<PathBuf>,
}

box_castable!(hatebm_config => ConfigHandle);

impl ConfigHandle {
    /// Resolves the preset, deserialises, validates and resolves relative paths.
    pub(crate) fn build(&self) -> hatebm_rs::Result<Config> {
        let mut cfg = self.builder.build()?;
        if let Some(base) = &self.base_dir {
            cfg.resolve_paths(base);
        }
        Ok(cfg)
    }

    fn from_toml(text: &str, base_dir: Option<PathBuf>) -> hatebm_rs::Result<Self> {
        let mut builder = ConfigBuilder::new();
        builder.merge_toml_str(text)?;
        Ok(ConfigHandle { builder, base_dir })
    }

    fn from_file(path: &Path) -> hatebm_rs::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, path.parent().map(Path::to_path_buf))
            .with_context(|| format!("reading config {}", path.display()))
    }
}

/// Creates an empty configuration (the library defaults; set `preset` first to
/// start from a built-in preset, e.g. `hatebm_config_set(cfg, "preset", "digits")`).
/// Free it with `hatebm_config_free`.
///
/// # Safety
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_config_new(out: *mut *mut hatebm_config) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        out.write(into_raw_box(ConfigHandle::default()));
        Ok(())
    }
}

/// Parses a TOML document (UTF-8, NUL-terminated), e.g.
/// `"preset = \"toy2d\"\n[train]\nsteps = 10\n"`. Unknown keys, wrong types and
/// out-of-range values are `HATEBM_CONFIG` with a message naming the key (and the
/// closest valid key). Relative paths stay relative to the working directory.
///
/// # Safety
/// `toml` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_config_from_toml(
    toml: *const c_char,
    out: *mut *mut hatebm_config,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let text = unsafe { try_str(toml, "toml") }?;
        out.write(into_raw_box(ConfigHandle::from_toml(text, None)?));
        Ok(())
    }
}

/// Reads a TOML configuration file. Relative data and weight paths in it are
/// resolved against the file's folder. `HATEBM_IO` if it cannot be read,
/// `HATEBM_CONFIG` (message naming the file and key) if it is invalid.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_config_from_file(
    path: *const c_char,
    out: *mut *mut hatebm_config,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { try_str(path, "path") }?;
        out.write(into_raw_box(ConfigHandle::from_file(Path::new(path))?));
        Ok(())
    }
}

/// Reads the configuration stored in a checkpoint (written by
/// `hatebm_session_save_checkpoint`), e.g. to change its backend or output
/// folder before `hatebm_session_resume(path, cfg, ...)`. `HATEBM_IO` /
/// `HATEBM_FORMAT` for a missing, corrupt or foreign file.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_config_from_checkpoint(
    path: *const c_char,
    out: *mut *mut hatebm_config,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { try_str(path, "path") }?;
        let ck = Checkpoint::read(Path::new(path))?;
        let text = ck
            .meta_str("config")
            .ok_or_else(|| Error::format(&ck.context, "metadata `config` missing"))?;
        let handle = ConfigHandle::from_toml(text, None)
            .map_err(|e| Error::format(&ck.context, format!("stored config: {e}")))?;
        out.write(into_raw_box(handle));
        Ok(())
    }
}

/// Copies a configuration into a new handle (free both).
///
/// # Safety
/// `cfg` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_config_clone(
    cfg: *const hatebm_config,
    out: *mut *mut hatebm_config,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_out(out, "out") }?;
        // SAFETY: forwarded from this function's contract.
        let cfg = unsafe { try_ref(cfg, "cfg") }?;
        out.write(into_raw_box(cfg.clone()));
        Ok(())
    }
}

/// Frees a configuration. NULL is a no-op. Sessions built from it are unaffected.
///
/// # Safety
/// `cfg` is NULL or a live handle from a `hatebm_config_*` constructor, not
/// used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_config_free(cfg: *mut hatebm_config) {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        unsafe { free_box(cfg) }
    }
}

/// Sets one dotted key, e.g. `("backend", "tch:cuda:0")`, `("seed", "7")`,
/// `("langevin.steps", "50")`, `("preset", "digits")`,
/// `("model.energy.dims", "[2, 64, 1]")`. `value` is parsed as a TOML value
/// (number, boolean, array, inline table, quoted string); anything else is taken
/// as a bare string, so `"cpu"` and `"\"cpu\""` are the same.
///
/// `HATEBM_CONFIG` for an unknown key (the message names it and suggests the
/// closest valid key), a wrong type or an out-of-range value; the configuration
/// is unchanged then. Cross-field constraints (e.g. a mode that needs a
/// generator) are checked when a session is built.
///
/// # Safety
/// `cfg` is NULL or live and not used by another thread during the call; `key`
/// and `value` are NULL or NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_config_set(
    cfg: *mut hatebm_config,
    key: *const c_char,
    value: *const c_char,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let cfg = unsafe { try_mut(cfg, "cfg") }?;
        // SAFETY: forwarded from this function's contract.
        let key = unsafe { try_str(key, "key") }?;
        // SAFETY: forwarded from this function's contract.
        let value = unsafe { try_str(value, "value") }?;
        cfg.builder.set(key, value)?;
        Ok(())
    }
}

/// Removes a dotted key so that its default (or the preset's value) applies.
/// `HATEBM_CONFIG` if the key is not set; the configuration is unchanged then.
///
/// # Safety
/// `cfg` is NULL or live and not used by another thread during the call; `key`
/// is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_config_unset(
    cfg: *mut hatebm_config,
    key: *const c_char,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let cfg = unsafe { try_mut(cfg, "cfg") }?;
        // SAFETY: forwarded from this function's contract.
        let key = unsafe { try_str(key, "key") }?;
        cfg.builder.unset(key)?;
        Ok(())
    }
}

/// Copies the fully resolved configuration (preset expanded, every key with its
/// value) as TOML text, NUL-terminated, into `buf` (copy-out convention:
/// `*out_n` = bytes needed including the NUL, also on
/// `HATEBM_INSUFFICIENT_SIZE`). Resolving runs every check, so an inconsistent
/// configuration is `HATEBM_CONFIG` here.
///
/// # Safety
/// `cfg` is NULL or live; `buf` is NULL (with `len == 0`) or has `len` writable
/// bytes; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hatebm_config_to_toml(
    cfg: *const hatebm_config,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> hatebm_status {
    crate::ffi_panic_boundary! {
        // SAFETY: forwarded from this function's contract.
        let cfg = unsafe { try_ref(cfg, "cfg") }?;
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { try_copy_out(buf, len, out_n, "buf") }?;
        let text = cfg.build()?.to_toml_string()?;
        out.write_str(&text)
    }
}
