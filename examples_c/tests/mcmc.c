/*
 * The MH and kinetic samplers through the C ABI: hatebm_mcmc_params on a
 * callback energy (MALA keeps an N(0, 1) target's variance where unadjusted
 * Langevin at the same step is biased), the acceptance statistics of a
 * session's training chains (shadow monitor) and of its sampler calls, the
 * method settings of a trained model (a refused setting leaves it unchanged),
 * AIS log Z of a trained model, and the misuse of each.
 */
#include <math.h>
#include <string.h>

#include "check.h"

#define DIM 2
#define NCH 4000

/* U(x) = |x|^2 / 2. */
static int gauss_energy(const float *x, size_t n, size_t len, float *out_e, void *ud) {
    size_t b, j;
    (void)ud;
    for (b = 0; b < n; b++) {
        float s = 0.0f;
        for (j = 0; j < len; j++) {
            s += 0.5f * x[b * len + j] * x[b * len + j];
        }
        out_e[b] = s;
    }
    return 0;
}

static int gauss_grad(const float *x, size_t n, size_t len, float *out_e, float *out_g, void *ud) {
    size_t i;
    gauss_energy(x, n, len, out_e, ud);
    for (i = 0; i < n * len; i++) {
        out_g[i] = x[i];
    }
    return 0;
}

static double variance(const float *y, size_t len) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < len; i++) {
        s += (double)y[i] * y[i];
    }
    return s / (double)len;
}

static void test_custom_energy(void) {
    static float y[NCH * DIM], y_ula[NCH * DIM];
    hatebm_energy_vtable vt = hatebm_energy_default_vtable();
    hatebm_energy *e = NULL;
    size_t shape[1] = {DIM};
    hatebm_langevin_params p = hatebm_langevin_neutral_params();
    hatebm_mcmc_params m = hatebm_mcmc_default_params();
    hatebm_mh_stats mh;
    hatebm_langevin_stats st;
    /* 5 standard errors of a variance from NCH * DIM draws: 5 * sqrt(2 / 8000). */
    const double bound = 5.0 * sqrt(2.0 / (NCH * DIM));
    float seven[4] = {7, 7, 7, 7};

    vt.energy = gauss_energy;
    vt.grad_x = gauss_grad;
    vt.name = "gauss";
    CHECK_OK(hatebm_energy_new(&vt, NULL, shape, 1, &e));
    if (e == NULL) {
        return;
    }
    CHECK(m.method == HATEBM_SAMPLER_METHOD_ULA && !m.shadow_mh && m.adapt_steps == 0);
    p.steps = 60;
    p.eps_res = 1.2f; /* ULA's stationary variance: 1 / (1 - eps^2 / 4) = 1.5625 */
    memset(y, 0, sizeof y);
    memset(y_ula, 0, sizeof y_ula);
    m.method = HATEBM_SAMPLER_METHOD_MALA;
    CHECK_OK(hatebm_langevin_run_custom_mcmc(e, NULL, &p, &m, NULL, 0, y, NCH * DIM, NCH, &st, &mh));
    CHECK(mh.available && mh.struct_size == sizeof mh);
    CHECK(mh.accept_res > 0.3 && mh.accept_res < 0.99);
    CHECK(isnan(mh.alpha_latent) && isnan(mh.suggested_eps_res));
    CHECK(fabs(variance(y, NCH * DIM) - 1.0) < bound);
    CHECK_OK(hatebm_langevin_run_custom(e, NULL, &p, NULL, 0, y_ula, NCH * DIM, NCH, &st));
    CHECK(fabs(variance(y_ula, NCH * DIM) - 1.5625) < 1.5625 * bound);

    /* The shadow monitor: the ULA chain to the bit, plus its acceptance. */
    m.method = HATEBM_SAMPLER_METHOD_ULA;
    m.shadow_mh = true;
    memset(y, 0, sizeof y);
    CHECK_OK(hatebm_langevin_run_custom_mcmc(e, NULL, &p, &m, NULL, 0, y, NCH * DIM, NCH, NULL, &mh));
    CHECK(memcmp(y, y_ula, sizeof y) == 0);
    CHECK(mh.available && isnan(mh.accept_res) && mh.alpha_res > 0.0 && mh.alpha_res < 1.0);
    /* The suggestion grows the step when the acceptance exceeds the target. */
    CHECK(mh.suggested_eps_res > 0.0);
    CHECK((mh.alpha_res > m.target_accept) == (mh.suggested_eps_res > 1.2));

    /* Misuse: the chains are untouched on every failure. */
    memcpy(y, seven, sizeof seven);
    m = hatebm_mcmc_default_params();
    m.method = 9;
    CHECK_STATUS(hatebm_langevin_run_custom_mcmc(e, NULL, &p, &m, NULL, 0, y, 4, 2, NULL, NULL),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "mcmc->method = 9");
    m = hatebm_mcmc_default_params();
    m.method = HATEBM_SAMPLER_METHOD_HMC;
    m.joint_proposal = true;
    CHECK_STATUS(hatebm_langevin_run_custom_mcmc(e, NULL, &p, &m, NULL, 0, y, 4, 2, NULL, NULL),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "mcmc->joint_proposal");
    m = hatebm_mcmc_default_params();
    m.struct_size = 3;
    CHECK_STATUS(hatebm_langevin_run_custom_mcmc(e, NULL, &p, &m, NULL, 0, y, 4, 2, NULL, NULL),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "hatebm_mcmc_default_params()");
    CHECK_STATUS(hatebm_langevin_run_custom_mcmc(e, NULL, &p, NULL, NULL, 0, y, 4, 2, NULL, NULL),
                 HATEBM_NULL_PARAMETER);
    CHECK(memcmp(y, seven, sizeof seven) == 0);
    hatebm_energy_free(e);
}

static hatebm_config *tiny_config(void) {
    char dir[512], quoted[600];
    hatebm_config *cfg = NULL;
    const char *toml =
        "preset = \"toy2d\"\n"
        "seed = 3\n"
        "[data]\nkind = \"toy\"\nname = \"ring8\"\nn = 256\n"
        "[model.energy]\nkind = \"mlp\"\ndims = [2, 16, 16, 1]\n"
        "[model.generator]\nkind = \"mlp\"\ndims = [2, 16, 16, 2]\n"
        "[train]\nsteps = 1000\nbatch_size = 16\nbank_size = 64\n"
        "[langevin]\nsteps = 4\nshadow_mh = true\n"
        "[sample]\nbatch_size = 8\n"
        "[output]\nprogress = \"never\"\nplot = false\n";
    if (hatebm_config_from_toml(toml, &cfg) != HATEBM_OK) {
        return NULL;
    }
    snprintf(quoted, sizeof quoted, "\"%s\"", test_path(dir, sizeof dir, "mcmc", "out"));
    hatebm_config_set(cfg, "output.dir", quoted);
    return cfg;
}

static void test_session(hatebm_session *s) {
    hatebm_mh_stats mh;
    hatebm_mcmc_params m;
    hatebm_langevin_params p;
    hatebm_langevin_stats st;
    float y1[8 * 2], y2[8 * 2];
    int i;

    CHECK_STATUS(hatebm_session_mh_stats(s, &mh), HATEBM_INVALID_ARGUMENT);
    CHECK_OK(hatebm_session_mcmc_params(s, &m));
    CHECK(m.method == HATEBM_SAMPLER_METHOD_ULA && m.shadow_mh);
    CHECK_OK(hatebm_session_step(s, NULL));
    CHECK_OK(hatebm_session_mh_stats(s, &mh));
    CHECK(mh.available && mh.alpha_res >= 0.0 && mh.alpha_res <= 1.0 && isnan(mh.accept_res));
    CHECK(mh.suggested_eps_res > 0.0);
    CHECK_STATUS(hatebm_session_mh_stats(s, NULL), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_session_mh_stats(NULL, &mh), HATEBM_NULL_PARAMETER);

    /* The session's networks under HMC: reproducible, with statistics. */
    CHECK_OK(hatebm_session_langevin_params(s, &p));
    m.method = HATEBM_SAMPLER_METHOD_HMC;
    m.shadow_mh = false;
    m.leapfrog_steps = 3;
    for (i = 0; i < 16; i++) {
        y1[i] = y2[i] = 0.1f * (float)(i % 5) - 0.2f;
    }
    CHECK_OK(hatebm_session_langevin_mcmc(s, &p, &m, NULL, 0, y1, 16, 8, &st, &mh));
    CHECK(mh.available && mh.accept_res >= 0.0 && mh.accept_res <= 1.0 && mh.divergences == 0);
    CHECK(st.steps == p.steps);
    CHECK_OK(hatebm_session_langevin_mcmc(s, &p, &m, NULL, 0, y2, 16, 8, NULL, NULL));
    CHECK(memcmp(y1, y2, sizeof y1) == 0);
    CHECK_STATUS(hatebm_session_langevin_mcmc(s, &p, NULL, NULL, 0, y2, 16, 8, NULL, NULL),
                 HATEBM_NULL_PARAMETER);
}

static void test_trained_model(hatebm_trained_model *model) {
    hatebm_mcmc_params m, got;
    hatebm_sample_params sp = hatebm_sample_default_params();
    hatebm_mh_stats mh;
    hatebm_ais_params ap = hatebm_ais_default_params();
    hatebm_ais_result r1, r2;
    double w[16];
    float out[8 * 2];

    CHECK_OK(hatebm_trained_model_mcmc_params(model, &m));
    CHECK(m.method == HATEBM_SAMPLER_METHOD_ULA && m.shadow_mh);
    /* A warm-up longer than the run's 4 steps is refused; nothing changes. */
    m.method = HATEBM_SAMPLER_METHOD_HMC;
    m.shadow_mh = false;
    m.adapt_steps = 8;
    m.adapt_mass = true;
    CHECK_STATUS(hatebm_trained_model_set_mcmc(model, &m), HATEBM_CONFIG);
    CHECK_CONTAINS(hatebm_last_error_message(), "adapt_steps");
    CHECK_OK(hatebm_trained_model_mcmc_params(model, &got));
    CHECK(got.method == HATEBM_SAMPLER_METHOD_ULA);
    m.adapt_steps = 0;
    m.adapt_mass = false;
    m.leapfrog_steps = 2;
    CHECK_OK(hatebm_trained_model_set_mcmc(model, &m));
    CHECK_OK(hatebm_trained_model_mcmc_params(model, &got));
    CHECK(got.method == HATEBM_SAMPLER_METHOD_HMC && got.leapfrog_steps == 2);
    sp.n = 8;
    CHECK_OK(hatebm_trained_model_sample(model, &sp, out, 16));
    CHECK_OK(hatebm_trained_model_mh_stats(model, &mh));
    CHECK(mh.available && mh.accept_res >= 0.0 && mh.accept_res <= 1.0);

    /* AIS: reproducible from its seed, consistent, and checked. */
    ap.temperatures = 20;
    ap.chains = 16;
    ap.transitions = 1;
    ap.eps = 0.05f;
    CHECK_OK(hatebm_trained_model_log_z(model, &ap, false, &r1, w, 16));
    CHECK_OK(hatebm_trained_model_log_z(model, &ap, false, &r2, NULL, 0));
    CHECK(r1.log_z == r2.log_z && isfinite(r1.log_z) && r1.log_z_se >= 0.0);
    CHECK(r1.ess >= 1.0 && r1.ess <= 16.0 + 1e-9 && r1.mean_accept > 0.0);
    CHECK(isfinite(w[0]) && isfinite(w[15]));
    r2.log_z = 42.0;
    CHECK_STATUS(hatebm_trained_model_log_z(model, &ap, false, &r2, w, 15), HATEBM_INVALID_ARGUMENT);
    ap.method = HATEBM_SAMPLER_METHOD_ULA;
    CHECK_STATUS(hatebm_trained_model_log_z(model, &ap, false, &r2, NULL, 0), HATEBM_INVALID_ARGUMENT);
    ap = hatebm_ais_default_params();
    ap.chains = 1;
    CHECK_STATUS(hatebm_trained_model_log_z(model, &ap, false, &r2, NULL, 0), HATEBM_CONFIG);
    CHECK_CONTAINS(hatebm_last_error_message(), "chains");
    ap.struct_size = 1;
    CHECK_STATUS(hatebm_trained_model_log_z(model, &ap, false, &r2, NULL, 0), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_trained_model_log_z(model, NULL, false, &r2, NULL, 0), HATEBM_NULL_PARAMETER);
    ap = hatebm_ais_default_params();
    CHECK_STATUS(hatebm_trained_model_log_z(model, &ap, false, NULL, NULL, 0), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_trained_model_log_z(NULL, &ap, false, &r2, NULL, 0), HATEBM_NULL_PARAMETER);
    CHECK(r2.log_z == 42.0);
}

int main(void) {
    hatebm_config *cfg = tiny_config();
    hatebm_session *s = NULL;
    hatebm_trained_model *model = NULL;
    char ck[512];

    test_custom_energy();
    CHECK(cfg != NULL);
    CHECK_OK(hatebm_session_new(cfg, &s));
    hatebm_config_free(cfg);
    if (s == NULL) {
        return check_summary("mcmc");
    }
    test_session(s);
    test_path(ck, sizeof ck, "mcmc", "model.safetensors");
    CHECK_OK(hatebm_session_save_checkpoint(s, ck));
    CHECK_OK(hatebm_trained_model_load(ck, NULL, &model));
    if (model != NULL) {
        test_trained_model(model);
    }
    hatebm_trained_model_free(model);
    hatebm_session_free(s);
    return check_summary("mcmc");
}
