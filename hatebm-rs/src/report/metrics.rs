//! Training curves from a metrics log in JSON Lines form (one JSON object per
//! line, e.g. `{"step": 100, "loss": 0.31, "energy": {"data": -1.2}}`).

use std::path::Path;

use serde_json::Value;

use super::{Panel, PlotOptions, Series, save_svg};
use crate::{Error, Result};

/// Reads a `.jsonl` metrics file: one JSON value per non-blank line.
///
/// Lines written by Python's `json.dumps` with bare `NaN`, `Infinity` or
/// `-Infinity` (not valid JSON) are accepted: those tokens become `null`.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Format`] naming the file and
/// the line number of a line that is not JSON.
pub fn read_metrics_jsonl(path: impl AsRef<Path>) -> Result<Vec<Value>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_metrics_jsonl(&text, &path.display().to_string())
}

/// Parses JSON Lines text as [`read_metrics_jsonl`] does; `context` names the source.
///
/// # Errors
/// [`Error::Format`] with the line number of a line that is not JSON.
pub fn parse_metrics_jsonl(text: &str, context: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v = serde_json::from_str(line)
            .or_else(|e| serde_json::from_str(&python_specials_to_null(line)).map_err(|_| e))
            .map_err(|e| Error::format(context, format!("line {}: not JSON: {e}", i + 1)))?;
        out.push(v);
    }
    Ok(out)
}

/// Replaces the bare tokens `NaN`, `Infinity`, `-Infinity` outside strings by `null`.
fn python_specials_to_null(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let (mut in_str, mut escaped) = (false, false);
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if in_str {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_str = true;
        }
        if let Some(token) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            out.push_str("null");
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Looks up `key` in a record: the key itself, else a dotted path into nested
/// objects (`energy.data` → `record["energy"]["data"]`).
fn lookup<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    if let Some(v) = record.get(key) {
        return Some(v);
    }
    key.split('.').try_fold(record, |v, k| v.get(k))
}

/// A number from a JSON value: numbers as they are, `null` and the strings
/// `"nan"`, `"inf"`, `"-inf"` (any case) as gaps (NaN) or infinities.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Null => Some(f64::NAN),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// The series of `key` against `x_key` (usually `step`) over the records: one
/// point per record that has a numeric `x_key` and a `key` entry; `null`/NaN
/// values become gaps. Keys may be dotted paths into nested objects.
pub fn metrics_series(records: &[Value], key: &str, x_key: &str) -> Series {
    let points = records
        .iter()
        .filter_map(|r| {
            let x = lookup(r, x_key)
                .and_then(number)
                .filter(|x| x.is_finite())?;
            let y = lookup(r, key).and_then(number)?;
            Some((x, y))
        })
        .collect();
    Series::new(key, points)
}

/// Plots selected keys of a metrics `.jsonl` file against `step` as an SVG, one
/// panel per entry of `keys`, written atomically to `out_svg`.
///
/// Each entry names one panel: several keys joined by `+` share it
/// (`"loss_ebm+loss_gen"`), and a `log:` prefix gives it a log y axis
/// (`"log:lr"`). Keys may be dotted paths into nested objects (`"energy.data"`).
/// A key that never appears is drawn as "(no data)" rather than failing, so a plot
/// can be made while a run is still writing its log.
///
/// # Errors
/// As [`read_metrics_jsonl`]; [`Error::InvalidArgument`] for an empty `keys` list;
/// [`Error::Io`] when writing fails.
pub fn plot_metrics(
    jsonl_path: impl AsRef<Path>,
    keys: &[&str],
    out_svg: impl AsRef<Path>,
) -> Result<()> {
    crate::ensure!(!keys.is_empty(), "no metric keys to plot");
    let path = jsonl_path.as_ref();
    let records = read_metrics_jsonl(path)?;
    let panels: Vec<Panel> = keys
        .iter()
        .map(|entry| {
            let (log_y, names) = match entry.strip_prefix("log:") {
                Some(rest) => (true, rest),
                None => (false, *entry),
            };
            let names: Vec<&str> = names
                .split('+')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .collect();
            Panel {
                title: names.join(", "),
                x_label: "step".into(),
                y_label: if names.len() == 1 {
                    names[0].to_owned()
                } else {
                    String::new()
                },
                series: names
                    .iter()
                    .map(|k| metrics_series(&records, k, "step"))
                    .collect(),
                log_y,
            }
        })
        .collect();
    let columns = if panels.len() > 3 { 2 } else { 1 };
    let title = path.file_name().map(|n| n.to_string_lossy().into_owned());
    save_svg(
        out_svg,
        &panels,
        &PlotOptions {
            columns,
            title,
            ..Default::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::TempDir;
    use crate::report::plot::check_balanced;

    const LOG: &str = r#"{"step": 0, "loss": 1.0, "lr": 0.001, "energy": {"data": -1.0}}
{"step": 10, "loss": NaN, "lr": 0.001, "energy": {"data": -1.5}, "note": "NaN stays"}

{"step": 20, "loss": 0.5, "lr": 0.0005, "energy": {"data": -2.0}}
{"loss": 9.0}
{"step": 30, "loss": "inf", "lr": null}
"#;

    #[test]
    fn parses_jsonl_with_python_specials() {
        let recs = parse_metrics_jsonl(LOG, "m.jsonl").unwrap();
        assert_eq!(recs.len(), 5);
        assert!(recs[1]["loss"].is_null());
        assert_eq!(recs[1]["note"], "NaN stays");
        let loss = metrics_series(&recs, "loss", "step");
        assert_eq!(loss.points.len(), 4);
        assert!(loss.points[1].1.is_nan() && loss.points[3].1.is_infinite());
        let e = metrics_series(&recs, "energy.data", "step");
        assert_eq!(e.points, vec![(0.0, -1.0), (10.0, -1.5), (20.0, -2.0)]);
        assert!(metrics_series(&recs, "missing", "step").points.is_empty());
        let err = parse_metrics_jsonl("{\"a\":1}\n{oops\n", "m.jsonl").unwrap_err();
        assert!(
            matches!(&err, Error::Format { context, message } if context == "m.jsonl" && message.contains("line 2")),
            "{err}"
        );
    }

    #[test]
    fn plots_selected_keys() {
        let dir = TempDir::new("metrics");
        let log = dir.write("metrics.jsonl", LOG.as_bytes());
        let out = dir.path().join("curves.svg");
        plot_metrics(&log, &["loss+energy.data", "log:lr", "missing"], &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.starts_with("<svg"));
        for name in [
            "loss",
            "energy.data",
            "lr",
            "missing (no data)",
            "metrics.jsonl",
        ] {
            assert!(svg.contains(name), "{name} missing");
        }
        check_balanced(&svg);
        assert!(plot_metrics(&log, &[], &out).is_err());
        assert!(matches!(
            plot_metrics(dir.path().join("none.jsonl"), &["a"], &out),
            Err(Error::Io { .. })
        ));
    }
}
