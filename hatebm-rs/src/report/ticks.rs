//! Axis ticks: "nice" round values and their labels.

/// Ticks for a linear axis covering `[lo, hi]` (`lo < hi`, finite) with about
/// `target` intervals: `(axis_lo, axis_hi, ticks, step)`, where the step is
/// 1, 2 or 5 × 10^k and the axis is widened to whole steps.
pub(crate) fn linear_ticks(lo: f64, hi: f64, target: usize) -> (f64, f64, Vec<f64>, f64) {
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag);
    let k0 = (lo / step + 1e-9).floor() as i64;
    let k1 = (hi / step - 1e-9).ceil() as i64;
    let ticks = (k0..=k1).map(|k| k as f64 * step).collect();
    (k0 as f64 * step, k1 as f64 * step, ticks, step)
}

/// Ticks for a log axis covering `[lo, hi]` (`0 < lo < hi`): powers of ten
/// (every `stride`-th decade so that at most ~8 are labelled) as
/// `(axis_lo, axis_hi, ticks)`; the axis spans whole decades.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> (f64, f64, Vec<f64>) {
    let e0 = (lo.log10() + 1e-9).floor() as i32;
    let mut e1 = (hi.log10() - 1e-9).ceil() as i32;
    if e1 <= e0 {
        e1 = e0 + 1;
    }
    let ticks = if e1 - e0 <= 2 {
        // Few decades: 1, 2 and 5 times each power of ten.
        let mut t: Vec<f64> = (e0..e1)
            .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
            .collect();
        t.push(10f64.powi(e1));
        t
    } else {
        let stride = ((e1 - e0) as f64 / 8.0).ceil().max(1.0) as usize;
        (e0..=e1).step_by(stride).map(|e| 10f64.powi(e)).collect()
    };
    (10f64.powi(e0), 10f64.powi(e1), ticks)
}

/// A tick label for `v` on a linear axis with tick spacing `step`: as few decimals
/// as the step needs, scientific notation for very large or small magnitudes.
pub(crate) fn format_tick(v: f64, step: f64) -> String {
    if v.abs() < step * 1e-6 {
        return "0".to_owned();
    }
    let step_exp = step.log10().floor() as i32;
    if v.abs() >= 1e5 || v.abs() < 1e-3 {
        let digits = (v.abs().log10().floor() as i32 - step_exp).clamp(0, 4) as usize;
        return format!("{v:.digits$e}");
    }
    let decimals = (-step_exp).clamp(0, 10) as usize;
    format!("{v:.decimals$}")
}

/// A label for a log-axis tick `m × 10^e` (`m` = 1, 2 or 5): plain for
/// `10^-3 ≤ v < 10^5` (`0.01`, `2`, `5000`), else `1e-5`, `2e6`.
pub(crate) fn format_log_tick(v: f64) -> String {
    let e = (v.log10() + 1e-9).floor() as i32;
    let m = (v / 10f64.powi(e)).round();
    match e {
        -3..=-1 => format!("{v:.prec$}", prec = (-e) as usize),
        0..=4 => format!("{v:.0}"),
        _ => format!("{m}e{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round() {
        let (a, b, t, s) = linear_ticks(0.13, 0.87, 5);
        assert_eq!(s, 0.2);
        assert!((a - 0.0).abs() < 1e-12 && (b - 1.0).abs() < 1e-12);
        assert_eq!(t.len(), 6);
        let (a, b, _, s) = linear_ticks(-3.0, 1234.0, 5);
        assert_eq!((a, b, s), (-500.0, 1500.0, 500.0));
        let (_, _, t, s) = linear_ticks(1.0, 2.0, 5);
        assert_eq!((t.len(), s), (6, 0.2));
    }

    #[test]
    fn log_ticks_cover_decades() {
        let (a, b, t) = log_ticks(0.003, 20.0);
        assert_eq!((a, b), (0.001, 100.0));
        assert_eq!(t, vec![0.001, 0.01, 0.1, 1.0, 10.0, 100.0]);
        let (a, b, t) = log_ticks(2.0, 3.0);
        assert_eq!((a, b), (1.0, 10.0));
        assert_eq!(t, vec![1.0, 2.0, 5.0, 10.0]);
        let (_, _, t) = log_ticks(1e-4, 1e-3);
        assert_eq!(t.len(), 4);
        let (_, _, t) = log_ticks(1e-20, 1e20);
        assert!(t.len() <= 9, "{t:?}");
    }

    #[test]
    fn labels() {
        assert_eq!(format_tick(0.4000000001, 0.2), "0.4");
        assert_eq!(format_tick(1500.0, 500.0), "1500");
        assert_eq!(format_tick(1e-17, 0.1), "0");
        assert_eq!(format_tick(250000.0, 50000.0), "2.5e5");
        assert_eq!(format_tick(0.00015, 0.00005), "1.5e-4");
        assert_eq!(format_tick(-2.5, 0.5), "-2.5");
        assert_eq!(
            [1e-4, 2e-4, 0.01, 0.05, 1.0, 2.0, 1e4, 1e5, 5e6].map(format_log_tick),
            [
                "1e-4", "2e-4", "0.01", "0.05", "1", "2", "10000", "1e5", "5e6"
            ]
        );
    }
}
