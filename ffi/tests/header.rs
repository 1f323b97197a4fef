//! Checks that tie the committed header and the sources together (after
//! rustls-ffi's header-version test):
//! * the version macros match `Cargo.toml`;
//! * the status values are frozen (never renumbered) and match the Rust enum;
//! * the header is plain ASCII;
//! * every exported `extern "C" fn` is `#[unsafe(no_mangle)]` and wraps its body
//!   in `ffi_panic_boundary!`.

use std::fs;
use std::path::{Path, PathBuf};

use hatebm::status::hatebm_status;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header() -> String {
    fs::read_to_string(manifest_dir().join("../include/hatebm.h")).expect("read include/hatebm.h")
}

fn define(header: &str, name: &str) -> String {
    let prefix = format!("#define {name} ");
    header
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{name} not defined in hatebm.h"))
        .trim()
        .to_owned()
}

#[test]
fn version_macros_match_cargo_toml() {
    let h = header();
    let major: u32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
    let minor: u32 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
    let patch: u32 = env!("CARGO_PKG_VERSION_PATCH").parse().unwrap();
    let hint = "update after_includes in ffi/cbindgen.toml, then scripts/regen-header.sh";
    assert_eq!(
        define(&h, "HATEBM_VERSION_MAJOR"),
        major.to_string(),
        "{hint}"
    );
    assert_eq!(
        define(&h, "HATEBM_VERSION_MINOR"),
        minor.to_string(),
        "{hint}"
    );
    assert_eq!(
        define(&h, "HATEBM_VERSION_PATCH"),
        patch.to_string(),
        "{hint}"
    );
    assert_eq!(
        define(&h, "HATEBM_VERSION_STRING"),
        format!("\"{}\"", env!("CARGO_PKG_VERSION")),
        "{hint}"
    );
    let abi = major * 10000 + minor * 100 + patch;
    assert_eq!(define(&h, "HATEBM_ABI_VERSION"), abi.to_string(), "{hint}");
    assert_eq!(hatebm::version::ABI_VERSION, abi);
    assert_eq!(hatebm::version::hatebm_abi_version(), abi);
}

/// The ABI's status values. Append only: a failure here after an edit means a
/// value was renumbered or reused, which breaks every compiled C caller.
const FROZEN: &[(&str, i32)] = &[
    ("HATEBM_OK", 0),
    ("HATEBM_NULL_PARAMETER", 1),
    ("HATEBM_INVALID_ARGUMENT", 2),
    ("HATEBM_BACKEND_UNAVAILABLE", 3),
    ("HATEBM_DEVICE_UNAVAILABLE", 4),
    ("HATEBM_SHAPE_MISMATCH", 5),
    ("HATEBM_NUMERIC", 6),
    ("HATEBM_IO", 7),
    ("HATEBM_FORMAT", 8),
    ("HATEBM_INSUFFICIENT_SIZE", 9),
    ("HATEBM_PANIC", 10),
    ("HATEBM_CONFIG", 11),
    ("HATEBM_PARAM", 12),
    ("HATEBM_CALLBACK", 13),
    ("HATEBM_CANCELLED", 14),
    ("HATEBM_DIVERGED", 15),
    ("HATEBM_BACKEND_ERROR", 16),
    ("HATEBM_INVALID_UTF8", 17),
    ("HATEBM_INTERNAL", 18),
    ("HATEBM_MISUSE", 19),
    ("HATEBM_DISTRIBUTED", 20),
];

#[test]
fn status_values_are_frozen() {
    let h = header();
    let start = h
        .find("typedef enum hatebm_status {")
        .expect("enum in header");
    let end = start + h[start..].find("} hatebm_status;").expect("enum end");
    let in_header: Vec<(String, i32)> = h[start..end]
        .lines()
        .filter_map(|l| {
            let (name, value) = l.trim().trim_end_matches(',').split_once(" = ")?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect();
    // Every frozen entry is still there with its value (new ones may follow).
    assert!(in_header.len() >= FROZEN.len());
    for (i, (name, value)) in FROZEN.iter().enumerate() {
        assert_eq!(
            (in_header[i].0.as_str(), in_header[i].1),
            (*name, *value),
            "status {name} moved"
        );
    }
    // The Rust enum agrees with the header, name for name.
    assert_eq!(in_header.len(), hatebm_status::ALL.len());
    for (s, (name, value)) in hatebm_status::ALL.iter().zip(&in_header) {
        assert_eq!((s.name(), *s as i32), (name.as_str(), *value));
    }
}

#[test]
fn header_is_ascii() {
    let h = header();
    if let Some((line, text)) = h.lines().enumerate().find(|(_, l)| !l.is_ascii()) {
        panic!(
            "include/hatebm.h:{} is not ASCII (fix the Rust doc comment): {text}",
            line + 1
        );
    }
}

fn rust_sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn every_entry_point_is_exported_and_behind_the_panic_boundary() {
    let mut checked = 0;
    for path in rust_sources(&manifest_dir().join("src")) {
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(pos) = line.find("extern \"C\" fn ") else {
                continue;
            };
            let name: String = line[pos + "extern \"C\" fn ".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let where_ = format!("{}:{} ({name})", path.display(), i + 1);
            if !line.starts_with("pub ") {
                continue; // test-local callbacks and the like
            }
            assert!(
                name.starts_with("hatebm_"),
                "{where_}: exported names start with hatebm_"
            );
            // Attributes and docs directly above must include no_mangle.
            let above: Vec<&str> = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.starts_with("///") || l.starts_with("#["))
                .copied()
                .collect();
            assert!(
                above.contains(&"#[unsafe(no_mangle)]"),
                "{where_}: missing #[unsafe(no_mangle)]"
            );
            assert!(
                above.iter().any(|l| l.starts_with("///")),
                "{where_}: undocumented"
            );
            // The body (up to the closing brace in column 0) uses the boundary.
            let body_end = lines[i..]
                .iter()
                .position(|l| *l == "}")
                .unwrap_or_else(|| panic!("{where_}: no closing brace"));
            let body = lines[i..i + body_end].join("\n");
            assert!(
                body.contains("ffi_panic_boundary!"),
                "{where_}: body is not wrapped in ffi_panic_boundary!"
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "found only {checked} entry points");
}
