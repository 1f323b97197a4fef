//! A small, strict reader and writer for NumPy `.npy` files (format versions 1.0,
//! 2.0 and 3.0).
//!
//! Supported: dtypes `|u1` (also spelled `<u1` / `>u1`), `<f4` and `<f8`
//! (little-endian), C order, any rank (including 0-d scalars). Everything else —
//! Fortran order, big-endian floats, other or structured dtypes, pickled objects —
//! is rejected with an [`Error::Format`] that names the file (or the context string
//! given for in-memory bytes) and says what is wrong.
//!
//! The format: the magic `\x93NUMPY`, a major and minor version byte, the header
//! length (`u16` LE for 1.0, `u32` LE for 2.0 and 3.0), then a Python dict literal
//! such as `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with
//! spaces and ending in `\n`, then the raw array bytes. The header is parsed as a
//! Python literal (either quote style, any whitespace, trailing commas), so files
//! written by any NumPy version are read.

use std::fmt::Write as _;
use std::path::Path;

use crate::{Error, Result};

/// The six magic bytes every `.npy` file starts with.
pub const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

/// An n-dimensional array read from (or to be written to) a `.npy` file, in C
/// (row-major) order.
///
/// Invariant for arrays returned by the reader: `data.len()` equals the product of
/// `shape` (1 for a 0-d array). The writer checks it.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The dimensions, outermost first; empty for a 0-d (scalar) array.
    pub shape: Vec<usize>,
    /// The elements in C order.
    pub data: NpyData,
}

/// The elements of an [`NpyArray`], by dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `|u1`: unsigned bytes.
    U8(Vec<u8>),
    /// `<f4`: little-endian IEEE-754 single precision.
    F32(Vec<f32>),
    /// `<f8`: little-endian IEEE-754 double precision.
    F64(Vec<f64>),
}

impl NpyData {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyData::U8(v) => v.len(),
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The NumPy dtype string written for this data (`|u1`, `<f4` or `<f8`).
    pub fn descr(&self) -> &'static str {
        match self {
            NpyData::U8(_) => "|u1",
            NpyData::F32(_) => "<f4",
            NpyData::F64(_) => "<f8",
        }
    }

    /// The size of one element in bytes.
    fn item_size(&self) -> usize {
        match self {
            NpyData::U8(_) => 1,
            NpyData::F32(_) => 4,
            NpyData::F64(_) => 8,
        }
    }

    /// The elements converted to `f32` (`u8` exactly, `f64` rounded to nearest).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            NpyData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            NpyData::F32(v) => v.clone(),
            NpyData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

impl NpyArray {
    /// The number of elements (the product of [`shape`](Self::shape)).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Reads a `.npy` file.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Format`] (context = the path)
/// when it is not a well-formed `.npy` of a supported dtype — see [`read_npy_bytes`].
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_npy_bytes(&bytes, &path.display().to_string())
}

/// Parses the bytes of a `.npy` file; `context` names the source in error messages.
///
/// # Errors
/// [`Error::Format`] for: a missing or wrong magic, an unknown format version, a
/// truncated header, a header that is not a `{'descr', 'fortran_order', 'shape'}`
/// dict literal, `fortran_order: True`, an unsupported dtype, or data whose length
/// is not exactly `product(shape) * itemsize` (truncated or with trailing bytes).
pub fn read_npy_bytes(bytes: &[u8], context: &str) -> Result<NpyArray> {
    let fail = |msg: String| Error::format(context, msg);
    if bytes.len() < 8 || &bytes[..6] != NPY_MAGIC {
        let hint = if bytes.starts_with(&[0x1f, 0x8b]) {
            " (this is a gzip file: decompress it first)"
        } else if bytes.starts_with(b"PK") {
            " (this looks like a zip archive, e.g. an .npz: extract the .npy first)"
        } else {
            ""
        };
        return Err(fail(format!(
            "not a .npy file: missing the magic bytes \\x93NUMPY{hint}"
        )));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_size, utf8) = match (major, minor) {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => {
            return Err(fail(format!(
                "unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)"
            )));
        }
    };
    let prefix = 8 + len_size;
    if bytes.len() < prefix {
        return Err(fail("truncated: file ends inside the header length".into()));
    }
    let header_len = if len_size == 2 {
        usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))
    } else {
        u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
    };
    let data_start = prefix
        .checked_add(header_len)
        .ok_or_else(|| fail("header length overflows".into()))?;
    if bytes.len() < data_start {
        return Err(fail(format!(
            "truncated: header says {header_len} bytes but only {} follow",
            bytes.len() - prefix
        )));
    }
    let raw = &bytes[prefix..data_start];
    let header: String = if utf8 {
        std::str::from_utf8(raw)
            .map_err(|_| fail("header of a version 3.0 file is not valid UTF-8".into()))?
            .to_owned()
    } else {
        raw.iter().map(|&b| char::from(b)).collect() // latin-1
    };
    let h = parse_header(&header).map_err(|m| fail(format!("bad header {header:?}: {m}")))?;
    if h.fortran_order {
        return Err(fail(
            "fortran_order is True: only C-order arrays are supported \
             (save with np.save(path, np.ascontiguousarray(a)))"
                .into(),
        ));
    }
    let (item, kind) = dtype_of(&h.descr).map_err(fail)?;
    let count = h
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| fail(format!("shape {:?} overflows the element count", h.shape)))?;
    let expected = count
        .checked_mul(item)
        .ok_or_else(|| fail(format!("shape {:?} overflows the byte count", h.shape)))?;
    let body = &bytes[data_start..];
    if body.len() < expected {
        return Err(fail(format!(
            "truncated data: shape {:?} of {} needs {expected} bytes, found {}",
            h.shape,
            h.descr,
            body.len()
        )));
    }
    if body.len() > expected {
        return Err(fail(format!(
            "{} trailing bytes after the data of shape {:?} of {}",
            body.len() - expected,
            h.shape,
            h.descr
        )));
    }
    let data = match kind {
        Kind::U8 => NpyData::U8(body.to_vec()),
        Kind::F32 => NpyData::F32(
            body.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Kind::F64 => NpyData::F64(
            body.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")))
                .collect(),
        ),
    };
    Ok(NpyArray {
        shape: h.shape,
        data,
    })
}

/// Encodes an array as `.npy` bytes (format 1.0, or 2.0 for headers over 64 KiB),
/// with the header padded so the data starts on a 64-byte boundary, as NumPy does.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the product of `shape` is not `data.len()`.
pub fn encode_npy(array: &NpyArray) -> Result<Vec<u8>> {
    let count = array
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::InvalidArgument(format!("shape {:?} overflows", array.shape)))?;
    if count != array.data.len() {
        return Err(Error::ShapeMismatch {
            what: "npy data".into(),
            expected: format!("{count} elements for shape {:?}", array.shape),
            got: format!("{} elements", array.data.len()),
        });
    }
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': (",
        array.data.descr()
    );
    for (i, d) in array.shape.iter().enumerate() {
        if i > 0 {
            dict.push_str(", ");
        }
        write!(dict, "{d}").expect("write to String");
    }
    if array.shape.len() == 1 {
        dict.push(',');
    }
    dict.push_str("), }");
    // Magic (6) + version (2) + length (2 or 4) + dict + padding + '\n' ≡ 0 (mod 64).
    let v1_total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let (version, prefix, total) = if v1_total - 10 <= usize::from(u16::MAX) {
        (1u8, 10, v1_total)
    } else {
        (2u8, 12, (12 + dict.len() + 1).div_ceil(64) * 64)
    };
    let header_len = total - prefix;
    let mut out = Vec::with_capacity(total + count * array.data.item_size());
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    match &array.data {
        NpyData::U8(v) => out.extend_from_slice(v),
        NpyData::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    Ok(out)
}

/// Writes an array to a `.npy` file atomically (temporary file in the same
/// directory, then rename), readable by `numpy.load`.
///
/// # Errors
/// [`Error::ShapeMismatch`] as for [`encode_npy`]; [`Error::Io`] when writing fails.
pub fn write_npy(path: impl AsRef<Path>, array: &NpyArray) -> Result<()> {
    let bytes = encode_npy(array)?;
    super::write_atomic(path.as_ref(), &bytes)
}

/// Writes `f32` data of the given `shape` (C order) to a `.npy` file as `<f4`,
/// atomically — e.g. a batch of generated samples `[N, C, H, W]`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the product of `shape` is not `data.len()`;
/// [`Error::Io`] when writing fails.
pub fn write_npy_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    write_npy(
        path,
        &NpyArray {
            shape: shape.to_vec(),
            data: NpyData::F32(data.to_vec()),
        },
    )
}

// ---------------------------------------------------------------------------------
// dtype

enum Kind {
    U8,
    F32,
    F64,
}

fn dtype_of(descr: &str) -> std::result::Result<(usize, Kind), String> {
    match descr {
        "|u1" | "<u1" | ">u1" => Ok((1, Kind::U8)),
        "<f4" => Ok((4, Kind::F32)),
        "<f8" => Ok((8, Kind::F64)),
        ">f4" | ">f8" => Err(format!(
            "big-endian dtype '{descr}' is not supported (use a.astype('<{}'))",
            &descr[1..]
        )),
        _ => Err(format!(
            "unsupported dtype '{descr}' (supported: |u1, <f4, <f8)"
        )),
    }
}

// ---------------------------------------------------------------------------------
// header: a tiny Python-literal parser

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

#[derive(Debug)]
enum Lit {
    Str(String),
    Bool(bool),
    Int(u64),
    None,
    Seq(Vec<Lit>),
}

fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = match p.value()? {
            Lit::Str(k) => k,
            other => return Err(format!("dict key {other:?} is not a string")),
        };
        p.ws();
        p.expect(b':')?;
        p.ws();
        let value = p.value()?;
        let slot_taken = match key.as_str() {
            "descr" => match value {
                Lit::Str(s) => descr.replace(s).is_some(),
                Lit::Seq(_) => return Err("structured dtypes are not supported".into()),
                other => return Err(format!("'descr' is {other:?}, not a string")),
            },
            "fortran_order" => match value {
                Lit::Bool(b) => fortran.replace(b).is_some(),
                other => return Err(format!("'fortran_order' is {other:?}, not a bool")),
            },
            "shape" => match value {
                Lit::Seq(items) => {
                    let dims = items
                        .into_iter()
                        .map(|d| match d {
                            Lit::Int(n) => usize::try_from(n)
                                .map_err(|_| format!("dimension {n} is too large")),
                            other => Err(format!("shape entry {other:?} is not an integer")),
                        })
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    shape.replace(dims).is_some()
                }
                other => return Err(format!("'shape' is {other:?}, not a tuple")),
            },
            other => return Err(format!("unexpected key '{other}'")),
        };
        if slot_taken {
            return Err(format!("duplicate key '{key}'"));
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text after the dict at byte {}", p.i));
    }
    Ok(Header {
        descr: descr.ok_or("missing key 'descr'")?,
        fortran_order: fortran.ok_or("missing key 'fortran_order'")?,
        shape: shape.ok_or("missing key 'shape'")?,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(got) => format!(
                    "expected '{}' at byte {}, found '{}'",
                    c as char, self.i, got as char
                ),
                None => format!("expected '{}' but the header ended", c as char),
            })
        }
    }

    fn value(&mut self) -> std::result::Result<Lit, String> {
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c == b'\\' {
                        return Err("escape sequences in strings are not supported".into());
                    }
                    if c == q {
                        let s = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                        self.i += 1;
                        return Ok(Lit::Str(s));
                    }
                    self.i += 1;
                }
                Err("unterminated string".into())
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.eat(close) {
                        return Ok(Lit::Seq(items));
                    }
                    items.push(self.value()?);
                    self.ws();
                    if !self.eat(b',') {
                        self.ws();
                        self.expect(close)?;
                        return Ok(Lit::Seq(items));
                    }
                }
            }
            Some(b'{') => Err("nested dicts are not supported".into()),
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.i]).expect("ascii digits");
                let n = digits
                    .parse::<u64>()
                    .map_err(|_| format!("integer {digits} is too large"))?;
                // Python 2 long suffix, as written by very old NumPy versions.
                let _ = self.eat(b'L');
                Ok(Lit::Int(n))
            }
            Some(b'-') => Err("negative numbers are not allowed here".into()),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(Lit::Bool(true)),
                    b"False" => Ok(Lit::Bool(false)),
                    b"None" => Ok(Lit::None),
                    word => Err(format!("unknown name '{}'", String::from_utf8_lossy(word))),
                }
            }
            Some(c) => Err(format!("unexpected '{}' at byte {}", c as char, self.i)),
            None => Err("the header ended inside a value".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::TempDir;

    /// Builds raw `.npy` bytes with an arbitrary header dict (version 1.0).
    pub(crate) fn raw_npy(dict: &str, body: &[u8]) -> Vec<u8> {
        let mut h = dict.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = NPY_MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out
    }

    fn format_msg(r: Result<NpyArray>) -> String {
        match r {
            Err(Error::Format { context, message }) => format!("{context}: {message}"),
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn roundtrip_f32_via_file() {
        let dir = TempDir::new("npy-rt");
        let p = dir.path().join("x.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        write_npy_f32(&p, &[2, 3, 4], &data).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let header_end = bytes.len() - 24 * 4;
        assert_eq!(header_end % 64, 0, "data must start 64-byte aligned");
        let a = read_npy(&p).unwrap();
        assert_eq!(a.shape, vec![2, 3, 4]);
        assert_eq!(a.data, NpyData::F32(data));
    }

    #[test]
    fn roundtrip_all_dtypes_and_ranks() {
        for arr in [
            NpyArray {
                shape: vec![],
                data: NpyData::F64(vec![2.5]),
            },
            NpyArray {
                shape: vec![3],
                data: NpyData::U8(vec![1, 2, 255]),
            },
            NpyArray {
                shape: vec![0, 5],
                data: NpyData::F32(vec![]),
            },
            NpyArray {
                shape: vec![1, 2, 1, 2, 1],
                data: NpyData::F64(vec![1.0, -2.0, f64::NAN, 4.0]),
            },
        ] {
            let back = read_npy_bytes(&encode_npy(&arr).unwrap(), "mem").unwrap();
            assert_eq!(back.shape, arr.shape);
            // NaN != NaN: compare bit patterns.
            assert_eq!(format!("{:?}", back.data), format!("{:?}", arr.data));
        }
    }

    #[test]
    fn header_text_matches_numpy() {
        let bytes = encode_npy(&NpyArray {
            shape: vec![7],
            data: NpyData::U8(vec![0; 7]),
        })
        .unwrap();
        assert_eq!(bytes.len(), 128 + 7);
        let text = String::from_utf8_lossy(&bytes[10..128]);
        assert!(text.starts_with("{'descr': '|u1', 'fortran_order': False, 'shape': (7,), }"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn header_parsing_is_lenient_about_style() {
        let body = [1u8, 2, 3, 4, 5, 6];
        for dict in [
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }",
            "{\"shape\":(2,3),\"descr\":\"|u1\",\"fortran_order\":False}",
            "{ 'descr' : '<u1' ,\n 'fortran_order':False,'shape':[2, 3 , ] }",
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2L, 3L), }",
        ] {
            let a = read_npy_bytes(&raw_npy(dict, &body), "mem").unwrap();
            assert_eq!(a.shape, vec![2, 3], "{dict}");
            assert_eq!(a.data, NpyData::U8(body.to_vec()));
        }
    }

    #[test]
    fn versions_2_and_3_are_read() {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n";
        for major in [2u8, 3] {
            let mut b = NPY_MAGIC.to_vec();
            b.extend_from_slice(&[major, 0]);
            b.extend_from_slice(&(dict.len() as u32).to_le_bytes());
            b.extend_from_slice(dict.as_bytes());
            b.extend_from_slice(&1.5f32.to_le_bytes());
            let a = read_npy_bytes(&b, "mem").unwrap();
            assert_eq!(a.data, NpyData::F32(vec![1.5]));
        }
    }

    #[test]
    fn rejects_bad_magic_naming_the_file() {
        let dir = TempDir::new("npy-magic");
        let p = dir.write("bad.npy", b"hello world, not numpy");
        let msg = format_msg(read_npy(&p));
        assert!(msg.contains("bad.npy") && msg.contains("magic"), "{msg}");
        let msg = format_msg(read_npy_bytes(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0], "gz"));
        assert!(msg.contains("gzip"), "{msg}");
    }

    #[test]
    fn rejects_truncated_files() {
        let good = encode_npy(&NpyArray {
            shape: vec![4],
            data: NpyData::F32(vec![1.0, 2.0, 3.0, 4.0]),
        })
        .unwrap();
        let msg = format_msg(read_npy_bytes(&good[..good.len() - 3], "t.npy"));
        assert!(
            msg.contains("t.npy") && msg.contains("truncated data"),
            "{msg}"
        );
        let msg = format_msg(read_npy_bytes(&good[..30], "t.npy"));
        assert!(msg.contains("truncated"), "{msg}");
        let msg = format_msg(read_npy_bytes(&good[..9], "t.npy"));
        assert!(msg.contains("truncated"), "{msg}");
        let mut long = good.clone();
        long.push(0);
        let msg = format_msg(read_npy_bytes(&long, "t.npy"));
        assert!(msg.contains("trailing"), "{msg}");
    }

    #[test]
    fn rejects_unsupported_dtypes() {
        for (descr, needle) in [
            ("<i8", "unsupported dtype '<i8'"),
            (">f4", "big-endian"),
            ("|b1", "unsupported dtype"),
            ("<f2", "unsupported dtype"),
        ] {
            let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}");
            let msg = format_msg(read_npy_bytes(&raw_npy(&dict, &[0; 8]), "d.npy"));
            assert!(msg.contains(needle), "{descr}: {msg}");
        }
        let dict = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }";
        let msg = format_msg(read_npy_bytes(&raw_npy(dict, &[0; 4]), "s.npy"));
        assert!(msg.contains("structured"), "{msg}");
    }

    #[test]
    fn rejects_fortran_order() {
        let dict = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }";
        let msg = format_msg(read_npy_bytes(&raw_npy(dict, &[0; 16]), "f.npy"));
        assert!(
            msg.contains("fortran_order") && msg.contains("C-order"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_malformed_headers() {
        for (dict, needle) in [
            (
                "{'descr': '<f4', 'shape': (1,), }",
                "missing key 'fortran_order'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                "unexpected key 'x'",
            ),
            (
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
                "duplicate key",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                "negative",
            ),
            (
                "{'descr': '<f4', 'fortran_order': Nope, 'shape': (1,)}",
                "unknown name",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
                "ended",
            ),
            ("['descr']", "expected '{'"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} extra",
                "after the dict",
            ),
        ] {
            let msg = format_msg(read_npy_bytes(&raw_npy(dict, &[0; 4]), "h.npy"));
            assert!(
                msg.contains("bad header") && msg.contains(needle),
                "{dict}: {msg}"
            );
        }
    }

    #[test]
    fn rejects_unknown_version() {
        let mut b = encode_npy(&NpyArray {
            shape: vec![1],
            data: NpyData::U8(vec![0]),
        })
        .unwrap();
        b[6] = 4;
        let msg = format_msg(read_npy_bytes(&b, "v.npy"));
        assert!(msg.contains("version 4.0"), "{msg}");
    }

    #[test]
    fn writer_checks_the_shape() {
        let dir = TempDir::new("npy-w");
        let r = write_npy_f32(dir.path().join("x.npy"), &[2, 2], &[1.0; 3]);
        assert!(matches!(r, Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn reads_the_bundled_digits_header() {
        let a = read_npy_bytes(crate::data::DIGITS_IMAGES_NPY, "digits").unwrap();
        assert_eq!(a.shape, vec![1797, 8, 8]);
        assert!(matches!(a.data, NpyData::U8(_)));
    }
}
