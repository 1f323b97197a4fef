//! Sharded checkpoints: a run with `dist.shards = S > 1` keeps each bank
//! shard in a file of its own, written by the rank that owns it, next to the
//! checkpoint: `<checkpoint file name>.bank-<iteration>-<shard>-of-<S>.safetensors`.
//! The checkpoint itself (replicated state: weights, optimisers, counters,
//! config) is written last, by rank 0, atomically, and is the **manifest**:
//! its metadata `bank_shards` names every shard file with its size and
//! FNV-1a 64 checksum. Shard files carry the iteration in their name, so a
//! save never overwrites the files the previous manifest names: a crash at
//! any point leaves the previous checkpoint complete. Once the new manifest
//! is on disk, each rank removes its shards' older files.
//!
//! On resume each rank reads only its own shards' files and checks them
//! against the manifest (checksum, shard, iteration, shape, finiteness).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, shape};
use crate::bank::Bank;
use crate::train::Trainer;
use crate::weights::TensorFile;
use crate::{Error, Result};

/// The checkpoint metadata key of the manifest.
pub(crate) const MANIFEST_KEY: &str = "bank_shards";

/// The `format` of a shard file.
const SHARD_FORMAT: &str = "hatebm-bank-shard";

/// One shard file, as the manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShardEntry {
    /// The shard id, `0..S`.
    pub(crate) shard: usize,
    /// The file name (in the checkpoint's folder).
    pub(crate) file: String,
    /// Its size in bytes.
    pub(crate) bytes: u64,
    /// FNV-1a 64 of its bytes, hex.
    pub(crate) fnv64: String,
}

fn fnv64(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{h:016x}")
}

fn folder(ck: &Path) -> PathBuf {
    ck.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn base_name(ck: &Path) -> String {
    ck.file_name()
        .map_or_else(|| "checkpoint".into(), |n| n.to_string_lossy().into_owned())
}

fn shard_prefix(ck: &Path) -> String {
    format!("{}.bank-", base_name(ck))
}

fn shard_suffix(shard: usize, shards: usize) -> String {
    format!("-{shard:05}-of-{shards:05}.safetensors")
}

fn shard_file_name(ck: &Path, iteration: u64, shard: usize, shards: usize) -> String {
    format!(
        "{}{iteration:012}{}",
        shard_prefix(ck),
        shard_suffix(shard, shards)
    )
}

/// Rows of one bank shard, and whether the bank stores latents.
fn shard_layout<B: Backend>(t: &Trainer<B>) -> Option<(usize, bool)> {
    let has_z = t.bank_layout()?;
    let plan = t.shard_plan();
    let total = if has_z {
        t.config().bank_size
    } else {
        t.config().persistent_bank_size
    };
    Some((total / plan.shards(), has_z))
}

/// Writes this rank's bank shards (atomically, one file each) next to
/// checkpoint `ck`; returns their manifest entries (none without a bank).
///
/// # Errors
/// [`Error::Diverged`] for a non-finite bank (nothing written);
/// [`Error::Io`]; backend errors.
pub(crate) fn write_local<B: Backend>(ck: &Path, t: &Trainer<B>) -> Result<Vec<ShardEntry>> {
    let (Some(bank), Some((rows, _))) = (t.bank(), shard_layout(t)) else {
        return Ok(Vec::new());
    };
    let be = t.be();
    if !be.all_finite(&bank.x)? || !bank.z.as_ref().map_or(Ok(true), |z| be.all_finite(z))? {
        return Err(Error::Diverged(format!(
            "refusing to write checkpoint {}: non-finite value in the bank (the previous checkpoint is intact)",
            ck.display()
        )));
    }
    let plan = *t.shard_plan();
    let dir = folder(ck);
    let mut entries = Vec::new();
    for (j, s) in plan.local_shards().enumerate() {
        let mut tensors = Vec::new();
        let x = be.slice_rows(&bank.x, j * rows, rows)?;
        tensors.push(("bank.x".to_string(), be.shape(&x), be.to_host(&x)?));
        if let Some(z) = &bank.z {
            let z = be.slice_rows(z, j * rows, rows)?;
            tensors.push(("bank.z".to_string(), be.shape(&z), be.to_host(&z)?));
        }
        let meta = [
            ("format", SHARD_FORMAT.to_string()),
            ("shard", s.to_string()),
            ("shards", plan.shards().to_string()),
            ("iteration", t.iteration().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let bytes = crate::weights::to_bytes(&tensors, &meta)?;
        let file = shard_file_name(ck, t.iteration(), s, plan.shards());
        crate::fsutil::write_atomic(&dir.join(&file), &bytes)?;
        entries.push(ShardEntry {
            shard: s,
            file,
            bytes: bytes.len() as u64,
            fnv64: fnv64(&bytes),
        });
    }
    Ok(entries)
}

/// Removes this rank's shard files of checkpoint `ck` from other iterations
/// than `iteration` (superseded by the manifest just written, or orphaned by
/// a save that failed). Best effort: a file that cannot be removed is logged.
pub(crate) fn remove_superseded<B: Backend>(ck: &Path, t: &Trainer<B>) {
    let plan = *t.shard_plan();
    let (dir, prefix) = (folder(ck), shard_prefix(ck));
    let Ok(listing) = std::fs::read_dir(&dir) else {
        return;
    };
    let keep: Vec<String> = plan
        .local_shards()
        .map(|s| shard_file_name(ck, t.iteration(), s, plan.shards()))
        .collect();
    let mine: Vec<String> = plan
        .local_shards()
        .map(|s| shard_suffix(s, plan.shards()))
        .collect();
    for e in listing.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix)
            && mine.iter().any(|m| name.ends_with(m.as_str()))
            && !keep.contains(&name)
            && let Err(err) = std::fs::remove_file(e.path())
        {
            log::warn!("could not remove superseded bank shard {name}: {err}");
        }
    }
}

/// This rank's part of the bank, read from the shard files the manifest
/// names (in the folder `dir` of checkpoint `context`).
///
/// # Errors
/// [`Error::Format`] for a missing entry or file, a checksum, shard,
/// iteration or shape that does not match, or a non-finite value; [`Error::Io`].
pub(crate) fn read_local<B: Backend>(
    dir: &Path,
    context: &str,
    manifest: &str,
    iteration: u64,
    t: &Trainer<B>,
) -> Result<Option<Bank<B>>> {
    let Some((rows, has_z)) = shard_layout(t) else {
        return Ok(None);
    };
    let entries: Vec<ShardEntry> = serde_json::from_str(manifest)
        .map_err(|e| Error::format(context, format!("metadata `{MANIFEST_KEY}`: {e}")))?;
    let plan = *t.shard_plan();
    let be = t.be();
    let sample = t.energy().sample_shape().to_vec();
    let (mut xs, mut zs) = (Vec::new(), Vec::new());
    for s in plan.local_shards() {
        let e = entries.iter().find(|e| e.shard == s).ok_or_else(|| {
            Error::format(
                context,
                format!("the manifest names no file for bank shard {s}"),
            )
        })?;
        if e.file.contains('/') || e.file.contains('\\') || e.file.starts_with('.') {
            return Err(Error::format(
                context,
                format!("bank shard file name `{}` is not a plain file name", e.file),
            ));
        }
        let path = dir.join(&e.file);
        let bytes = std::fs::read(&path).map_err(|err| Error::io(&path, err))?;
        let shown = path.display().to_string();
        if bytes.len() as u64 != e.bytes || fnv64(&bytes) != e.fnv64 {
            return Err(Error::format(
                &shown,
                format!(
                    "bank shard {s} does not match the manifest in {context} ({} bytes, checksum {}; the manifest says {} bytes, {}): it belongs to another save",
                    bytes.len(),
                    fnv64(&bytes),
                    e.bytes,
                    e.fnv64
                ),
            ));
        }
        let f = TensorFile::from_bytes(&bytes, &shown)?;
        let meta = |k: &str| f.metadata.get(k).map(String::as_str);
        let (want_s, want_n, want_it) = (
            s.to_string(),
            plan.shards().to_string(),
            iteration.to_string(),
        );
        if meta("format") != Some(SHARD_FORMAT)
            || meta("shard") != Some(want_s.as_str())
            || meta("shards") != Some(want_n.as_str())
            || meta("iteration") != Some(want_it.as_str())
        {
            return Err(Error::format(
                &shown,
                format!(
                    "not bank shard {s} of {} at iteration {iteration}",
                    plan.shards()
                ),
            ));
        }
        let load = |key: &str, row_shape: &[usize], out: &mut Vec<B::Tensor>| -> Result<()> {
            let (shp, data) = f
                .f32(key)
                .map_err(|_| Error::format(&shown, format!("tensor `{key}` missing")))?;
            let want = shape::batched(rows, row_shape);
            if shp != want.as_slice() {
                return Err(Error::format(
                    &shown,
                    format!("`{key}` has shape {shp:?}, expected {want:?}"),
                ));
            }
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(Error::format(
                    &shown,
                    format!("tensor `{key}` holds {} at index {i}", data[i]),
                ));
            }
            out.push(be.from_host(data, shp)?);
            Ok(())
        };
        load("bank.x", &sample, &mut xs)?;
        if has_z {
            let latent = t
                .generator()
                .map(|g| g.latent_shape().to_vec())
                .unwrap_or_default();
            load("bank.z", &latent, &mut zs)?;
        }
    }
    let cat = |v: &[B::Tensor]| -> Result<B::Tensor> {
        let refs: Vec<&B::Tensor> = v.iter().collect();
        be.concat_rows(&refs)
    };
    let z = if has_z { Some(cat(&zs)?) } else { None };
    Ok(Some(Bank::from_tensors(
        be,
        z,
        cat(&xs)?,
        plan.local_shards().start as u64,
    )?))
}
