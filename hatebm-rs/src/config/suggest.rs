//! "Did you mean ...?" for unknown config keys and variants.
//!
//! serde reports unknown fields as ``unknown field `x`, expected one of `a`,
//! `b` `` (and variants likewise). We add the closest candidate by edit
//! distance, so that a typo such as `max_langevin_norm` (the paper's configs
//! silently disabled clipping this way) is caught *and* corrected.

/// Key names of the official Hat EBM code (`configs_*/*.py`) and where the
/// same setting lives here.
const OFFICIAL_KEYS: &[(&str, &str)] = &[
    ("epsilon", "langevin.eps_res"),
    ("epsilon_latent", "langevin.eps_latent"),
    ("mcmc_steps", "langevin.steps"),
    ("mcmc_temp", "langevin.temperature"),
    ("use_noise", "langevin.noise"),
    (
        "update_latents",
        "langevin.update_latents (set by train.mode)",
    ),
    ("max_langevin_norm_res", "langevin.clip_res"),
    (
        "clip_langevin_grad_res",
        "langevin.clip_res (a number, or false for no clipping)",
    ),
    (
        "tau_res",
        "langevin.prior_sigma_res (sigma = sqrt(1 / (2 tau)))",
    ),
    ("data_epsilon", "train.data_epsilon"),
    ("init_scale_latent", "train.init_scale_latent"),
    ("init_scale_res", "train.init_scale_res"),
    ("persistent_size", "train.bank_size"),
    ("gen_loss_factor_coop", "train.gen_loss_factor"),
    ("num_training_steps", "train.steps"),
    ("batch_size", "train.batch_size"),
    ("max_grad_norm", "ebm_optim.clip_grad_norm"),
    (
        "clip_ebm_grad",
        "ebm_optim.clip_grad_norm (a number, or absent for no clipping)",
    ),
    ("ebm_opt_decay", "ebm_optim.ema_decay"),
    ("gen_opt_decay", "gen_optim.ema_decay"),
    ("ebm_lr_info", "ebm_optim.lr and ebm_optim.lr_schedule"),
    ("gen_lr_info", "gen_optim.lr and gen_optim.lr_schedule"),
    ("gen_factor", "model.generator.out_factor"),
];

/// Adds a suggestion to a deserialisation error message when it reports an
/// unknown field or variant (the closest valid name, or where a key of the
/// official code lives here).
pub fn explain(msg: &str) -> String {
    // toml's deserialisation errors read "message\nin `key`": one line instead.
    let msg = msg.trim_end();
    match msg.rsplit_once("\nin `") {
        Some((m, key)) if !key.contains('\n') => {
            let m = m.trim_end();
            let explained = explain_one(m);
            format!("{m} (in `{key}){}", &explained[m.len()..])
        }
        _ => explain_one(msg),
    }
}

/// [`explain`] of a one-line message: appends the suggestion, if any.
fn explain_one(msg: &str) -> String {
    for marker in ["unknown field `", "unknown variant `"] {
        let Some(start) = msg.find(marker) else {
            continue;
        };
        let rest = &msg[start + marker.len()..];
        let Some(end) = rest.find('`') else { continue };
        let bad = &rest[..end];
        if let Some((_, ours)) = OFFICIAL_KEYS.iter().find(|(k, _)| *k == bad) {
            return format!(
                "{msg}; note: `{bad}` is the official Hat EBM code's name; here it is `{ours}`"
            );
        }
        let after = &rest[end + 1..];
        let candidates: Vec<&str> = after.split('`').skip(1).step_by(2).collect();
        if let Some(best) = closest(bad, &candidates) {
            return format!("{msg}; did you mean `{best}`?");
        }
    }
    msg.to_string()
}

/// The candidate with the smallest edit distance, if it is close enough
/// (at most a third of the longer word, rounded up; between 1 and 4 edits).
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for &c in candidates {
        let d = levenshtein(word, c);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let limit = (word.len().max(c.len()).div_ceil(3)).clamp(1, 4);
    // A candidate that contains the word (or vice versa) is a good suggestion too.
    if d <= limit || c.contains(word) || word.contains(c) {
        Some(c)
    } else {
        None
    }
}

/// Edit distance with adjacent transpositions (optimal string alignment;
/// bytes — keys are ASCII).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, v) in d.iter_mut().enumerate().take(w) {
        *v = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j - 1] + cost)
                .min(d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_closest_field() {
        let m = explain(
            "unknown field `max_langevin_norm_res`, expected one of `steps`, `clip_res`, `clip_latent`",
        );
        assert!(m.contains("here it is `langevin.clip_res`"), "{m}");
        let m = explain(
            "unknown field `clip_ress`, expected one of `steps`, `clip_res`, `clip_latent`",
        );
        assert!(m.ends_with("did you mean `clip_res`?"), "{m}");
        let m = explain("unknown field `stpes`, expected one of `steps`, `temperature`");
        assert!(m.ends_with("did you mean `steps`?"), "{m}");
        let m = explain("unknown variant `synthesys`, expected one of `synthesis`, `retrofit`");
        assert!(m.ends_with("did you mean `synthesis`?"), "{m}");
        // Nothing close: no suggestion.
        let m = explain("unknown field `zzzzzzzz`, expected one of `steps`, `temperature`");
        assert!(!m.contains("did you mean"), "{m}");
    }
}
