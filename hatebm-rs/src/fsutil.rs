//! Crash-safe file writing.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary path used while writing `path`: a hidden file in the same
/// directory (so the final rename never crosses file systems).
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Removes the temporary files that earlier writes of `path` left behind when
/// their process was killed mid-write (`.<name>.<pid>.<n>.tmp` whose process
/// no longer exists). Files of live processes — this one included, which may
/// be writing the same path from another thread — are left alone. Where there
/// is no `/proc` to ask (not Linux), nothing is removed. Best effort: errors
/// are ignored, since the write itself does not depend on it.
pub fn remove_stale_temps(path: &Path) {
    let proc = Path::new("/proc/self");
    if !proc.exists() {
        return;
    }
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for e in entries.flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = f.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".tmp")) else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('.') else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), n.parse::<u64>()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Writes `bytes` to `path` atomically: the data goes to a temporary file in
/// the same directory, is flushed to disk (`fsync`), and is then renamed over
/// `path`; the directory is synced too. A crash or error at any point leaves
/// either the old file or the new one, never a torn file. The temporary file is
/// removed on error.
///
/// # Errors
/// [`Error::Io`] naming the path that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Like [`write_atomic`], with the content produced by a writer callback.
///
/// # Errors
/// [`Error::Io`] naming the path that failed (including errors returned by `fill`).
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    remove_stale_temps(path);
    let tmp = temp_path_for(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        fill(&mut f)?;
        f.flush()?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Best effort: make the rename durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hatebm-fsutil-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn temporaries_of_dead_processes_are_removed_on_the_next_write() {
        let d = scratch("stale");
        let p = d.join("ck.bin");
        // A pid above the kernel's limit (4194304) never names a live process.
        let dead = d.join(".ck.bin.4999999.0.tmp");
        let ours = d.join(format!(".ck.bin.{}.77.tmp", std::process::id()));
        let other = d.join(".other.bin.4999999.0.tmp");
        for f in [&dead, &ours, &other] {
            fs::write(f, b"partial").unwrap();
        }
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        if Path::new("/proc/self").exists() {
            assert!(!dead.exists(), "a dead process's temporary is removed");
        }
        assert!(
            ours.exists(),
            "this process's own temporaries are left alone"
        );
        assert!(other.exists(), "another file's temporaries are left alone");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn failed_write_keeps_old_file_and_cleans_up() {
        let d = scratch("fail");
        let p = d.join("ck.bin");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |f| {
            f.write_all(b"partial")?;
            Err(std::io::Error::other("simulated crash mid-write"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("simulated crash"), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"old");
        let leftovers: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name() != "ck.bin")
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        let _ = fs::remove_dir_all(&d);
    }
}
