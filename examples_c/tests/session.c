/*
 * hatebm_session on a tiny toy2d configuration (MLPs on 2-D points, so it runs
 * under Valgrind in seconds): shapes, the networks on host buffers (gradients
 * checked by finite differences), Langevin on the session's networks, steps,
 * training with a progress callback that cancels, the bank, sampling,
 * checkpoints and exact resume, weights, the picture/npy writers, and wrong
 * buffer sizes (each with its status, and outputs left untouched).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define N 4

static hatebm_config *tiny_config(void) {
    const char *toml =
        "preset = \"toy2d\"\n"
        "seed = 3\n"
        "[data]\nkind = \"toy\"\nname = \"ring8\"\nn = 256\n"
        "[model.energy]\nkind = \"mlp\"\ndims = [2, 16, 16, 1]\n"
        "[model.generator]\nkind = \"mlp\"\ndims = [2, 16, 16, 2]\n"
        "[train]\nsteps = 1000\nbatch_size = 16\nbank_size = 64\n"
        "[langevin]\nsteps = 3\n"
        "[ebm_optim]\nema_decay = 0.9\n"
        "[output]\nprogress = \"never\"\nlog_every = 1\nplot = false\n";
    return test_config(toml, "session", "out");
}

static void test_shapes(hatebm_session *s) {
    size_t dims[4] = {9, 9, 9, 9}, n = 0, sl = 0, ll = 0;
    char name[16], tiny[2] = {'x', 'y'};
    uint64_t it = 77;

    CHECK_OK(hatebm_session_backend_name(s, name, sizeof name, &n));
    CHECK_STREQ(name, "cpu");
    CHECK(n == 4);
    CHECK_STATUS(hatebm_session_backend_name(s, tiny, sizeof tiny, &n), HATEBM_INSUFFICIENT_SIZE);
    CHECK(tiny[0] == 'x' && tiny[1] == 'y');
    CHECK_OK(hatebm_session_iteration(s, &it));
    CHECK(it == 0);
    CHECK_OK(hatebm_session_sample_shape(s, dims, 4, &n));
    CHECK(n == 1 && dims[0] == 2);
    CHECK_STATUS(hatebm_session_latent_shape(s, NULL, 0, &n), HATEBM_INSUFFICIENT_SIZE);
    CHECK(n == 1);
    CHECK_OK(hatebm_session_latent_shape(s, dims, 4, &n));
    CHECK(n == 1 && dims[0] == 2);
    CHECK_OK(hatebm_session_image_shape(s, dims, 4, &n));
    CHECK(n == 0); /* 2-D points are not images */
    CHECK_OK(hatebm_session_sizes(s, &sl, &ll));
    CHECK(sl == 2 && ll == 2);
    CHECK_OK(hatebm_session_sizes(s, NULL, NULL));
}

/* The gradients match central differences of the values (directional check). */
static void test_networks(hatebm_session *s) {
    float x[N * 2] = {0.3f, -0.2f, 1.1f, 0.5f, -0.7f, 0.9f, 0.05f, -1.3f};
    float d[N * 2] = {0.6f, -0.8f, 0.0f, 1.0f, 0.8f, 0.6f, -1.0f, 0.0f};
    float xp[N * 2], xm[N * 2], e[N], g[N * 2], ep[N], em[N], e2[N];
    float z[N * 2], gx[N * 2], cot[N * 2], gz[N * 2], gp[N * 2], gm[N * 2];
    float sentinel[N] = {42, 42, 42, 42};
    const float h = 1e-3f;
    int b, j, ok = 1;

    for (j = 0; j < N * 2; j++) {
        xp[j] = x[j] + h * d[j];
        xm[j] = x[j] - h * d[j];
    }
    CHECK_OK(hatebm_session_energy(s, x, N * 2, N, e, N));
    CHECK_OK(hatebm_session_energy_grad(s, x, N * 2, N, e2, N, g, N * 2));
    CHECK_SAME_FLOATS(e, e2, N);
    CHECK_OK(hatebm_session_energy(s, xp, N * 2, N, ep, N));
    CHECK_OK(hatebm_session_energy(s, xm, N * 2, N, em, N));
    for (b = 0; b < N; b++) {
        double fd = (ep[b] - em[b]) / (2.0 * h);
        double an = g[2 * b] * d[2 * b] + g[2 * b + 1] * d[2 * b + 1];
        ok &= fabs(fd - an) <= 1e-2 * (1.0 + fabs(an));
    }
    CHECK(ok);

    /* Wrong lengths: HATEBM_SHAPE_MISMATCH, output untouched. */
    CHECK_STATUS(hatebm_session_energy(s, x, N * 2 - 1, N, sentinel, N), HATEBM_SHAPE_MISMATCH);
    CHECK_CONTAINS(hatebm_last_error_message(), "n * sample_len = 4 * 2 = 8");
    CHECK_STATUS(hatebm_session_energy(s, x, N * 2, N, sentinel, N - 1), HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_session_energy(s, x, N * 2, 0, sentinel, 0), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_session_energy_grad(s, x, N * 2, N, sentinel, N, g, N), HATEBM_SHAPE_MISMATCH);
    CHECK(sentinel[0] == 42 && sentinel[3] == 42);
    /* Overlapping input and output buffers are refused. */
    CHECK_STATUS(hatebm_session_energy(s, x, N * 2, N, x + 2, N), HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "overlap");
    CHECK_STATUS(hatebm_session_energy(s, NULL, N * 2, N, e, N), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_session_energy(NULL, x, N * 2, N, e, N), HATEBM_NULL_PARAMETER);

    /* Generator: the VJP matches differences of <G(z), cot>. */
    for (j = 0; j < N * 2; j++) {
        z[j] = x[j];
        cot[j] = d[(j + 3) % (N * 2)];
    }
    CHECK_OK(hatebm_session_generate(s, z, N * 2, N, gx, N * 2));
    CHECK_OK(hatebm_session_generator_vjp(s, z, N * 2, cot, N * 2, N, gz, N * 2));
    CHECK_OK(hatebm_session_generate(s, xp, N * 2, N, gp, N * 2));
    CHECK_OK(hatebm_session_generate(s, xm, N * 2, N, gm, N * 2));
    ok = 1;
    for (b = 0; b < N; b++) {
        double fd = 0.0, an = gz[2 * b] * d[2 * b] + gz[2 * b + 1] * d[2 * b + 1];
        for (j = 0; j < 2; j++) {
            fd += (gp[2 * b + j] - gm[2 * b + j]) * cot[2 * b + j] / (2.0 * h);
        }
        ok &= fabs(fd - an) <= 1e-2 * (1.0 + fabs(an));
    }
    CHECK(ok);
    {
        float big[N * 2 + 1];
        CHECK_STATUS(hatebm_session_generate(s, z, N * 2, N, big, N * 2 + 1), HATEBM_SHAPE_MISMATCH);
    }
    CHECK_STATUS(hatebm_session_generator_vjp(s, z, N * 2, cot, N, N, gz, N * 2),
                 HATEBM_SHAPE_MISMATCH);
}

static void test_langevin(hatebm_session *s) {
    hatebm_langevin_params p, bad;
    hatebm_langevin_stats st;
    float z[N * 2] = {0.1f, 0.2f, -0.3f, 0.4f, 0.5f, -0.6f, 0.7f, 0.8f};
    float y[N * 2] = {0}, z0[N * 2], y0[N * 2], z1[N * 2], y1[N * 2];

    CHECK_OK(hatebm_session_langevin_params(s, &p));
    CHECK(p.struct_size == sizeof p);
    CHECK(p.steps == 3 && p.update_res && !p.update_latents && p.seed == 3);
    p.steps = 6;
    memcpy(z0, z, sizeof z);
    memcpy(y0, y, sizeof y);
    CHECK_OK(hatebm_session_langevin(s, &p, z, N * 2, y, N * 2, N, &st));
    CHECK(st.struct_size == sizeof st && st.steps == 6);
    CHECK(isfinite(st.mean_energy) && st.drift_norm_res > 0.0);
    CHECK(memcmp(z, z0, sizeof z) == 0); /* latents do not move in synthesis mode */
    CHECK(memcmp(y, y0, sizeof y) != 0);
    /* Same inputs, same result; a batch split with row_offset gives the same chains. */
    memcpy(z1, z0, sizeof z);
    memcpy(y1, y0, sizeof y);
    CHECK_OK(hatebm_session_langevin(s, &p, z1, 4, y1, 4, 2, NULL));
    p.row_offset = 2;
    CHECK_OK(hatebm_session_langevin(s, &p, z1 + 4, 4, y1 + 4, 4, 2, NULL));
    CHECK_SAME_FLOATS(y1, y, N * 2);
    p.row_offset = 0;

    /* Moving latents too; and sampling in sample space (z = NULL). */
    p.update_latents = 1;
    p.eps_latent = 0.01f;
    CHECK_OK(hatebm_session_langevin(s, &p, z, N * 2, y, N * 2, N, &st));
    CHECK(memcmp(z, z0, sizeof z) != 0 && st.mean_latent_norm > 0.0);
    p.update_latents = 0;
    p.use_ema = 1;
    CHECK_OK(hatebm_session_langevin(s, &p, NULL, 0, y, N * 2, N, &st));
    CHECK(st.mean_latent_norm == 0.0);

    /* Misuse: params not initialised, bad knobs, wrong lengths; chains untouched. */
    memcpy(y0, y, sizeof y);
    memset(&bad, 0, sizeof bad);
    CHECK_STATUS(hatebm_session_langevin(s, &bad, z, N * 2, y, N * 2, N, NULL),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "struct_size");
    bad = p;
    bad.temperature = 0.0f;
    CHECK_STATUS(hatebm_session_langevin(s, &bad, z, N * 2, y, N * 2, N, NULL),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "params->temperature");
    bad = p;
    bad.clip_res = NAN;
    CHECK_STATUS(hatebm_session_langevin(s, &bad, z, N * 2, y, N * 2, N, NULL),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_session_langevin(s, &p, z, N * 2 - 1, y, N * 2, N, NULL),
                 HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_session_langevin(s, &p, z, N * 2, y, N * 2, N + 1, NULL),
                 HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_session_langevin(s, &p, z, N * 2, z, N * 2, N, NULL),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_session_langevin(s, NULL, z, N * 2, y, N * 2, N, NULL),
                 HATEBM_NULL_PARAMETER);
    CHECK(memcmp(y, y0, sizeof y) == 0);
}

typedef struct {
    int calls;
    int cancel_at;
    uint64_t last_iteration;
} progress_state;

static bool on_progress(const hatebm_progress *p, void *user_data) {
    progress_state *ps = (progress_state *)user_data;
    ps->calls++;
    ps->last_iteration = p->iterations_done;
    return ps->calls != ps->cancel_at;
}

static void test_training(hatebm_session *s) {
    hatebm_step_stats st, last;
    progress_state ps = {0, 2, 0};
    uint64_t it0 = 0, it = 0;

    CHECK_STATUS(hatebm_session_last_stats(s, &last), HATEBM_INVALID_ARGUMENT);
    CHECK_OK(hatebm_session_step(s, &st));
    CHECK(st.struct_size == sizeof st && st.iterations_done == 1);
    CHECK(isfinite(st.loss_ebm) && isfinite(st.loss_gen) && st.langevin.steps == 3);
    CHECK_OK(hatebm_session_last_stats(s, &last));
    CHECK(st.iterations_done == last.iterations_done && st.loss_ebm == last.loss_ebm &&
          st.loss_gen == last.loss_gen && st.langevin.mean_energy == last.langevin.mean_energy);
    CHECK_OK(hatebm_session_step(s, NULL));
    CHECK_OK(hatebm_session_iteration(s, &it0));
    CHECK(it0 == 2);

    /* A long run cancelled by its progress callback after 2 iterations: the
     * session is consistent and keeps training afterwards. */
    CHECK_STATUS(hatebm_session_train(s, 50, on_progress, &ps), HATEBM_CANCELLED);
    CHECK(ps.calls == 2 && ps.last_iteration == it0 + 2);
    CHECK_OK(hatebm_session_iteration(s, &it));
    CHECK(it == it0 + 2);
    ps.cancel_at = -1;
    CHECK_OK(hatebm_session_train(s, 3, on_progress, &ps));
    CHECK(ps.calls == 5);
    CHECK_OK(hatebm_session_train(s, 1, NULL, NULL));
    CHECK_OK(hatebm_session_iteration(s, &it));
    CHECK(it == it0 + 6);
}

/* Issue 17, item 2: a progress callback that calls its own session. */
typedef struct {
    hatebm_session *s;
    int calls;
    hatebm_status step, save, iteration;
} reentry_state;

static bool reenter(const hatebm_progress *p, void *user_data) {
    reentry_state *r = (reentry_state *)user_data;
    uint64_t it = 0;
    (void)p;
    r->calls++;
    r->step = hatebm_session_step(r->s, NULL);
    r->save = hatebm_session_save_checkpoint(r->s, "reentry.safetensors");
    r->iteration = hatebm_session_iteration(r->s, &it);
    hatebm_session_free(r->s); /* refused: the session is inside a call */
    return true;
}

static void test_reentry(hatebm_session *s) {
    reentry_state r = {s, 0, HATEBM_OK, HATEBM_OK, HATEBM_OK};
    uint64_t it0 = 0, it = 0;
    CHECK_OK(hatebm_session_iteration(s, &it0));
    CHECK_OK(hatebm_session_train(s, 2, reenter, &r));
    CHECK(r.calls == 2);
    CHECK(r.step == HATEBM_MISUSE && r.save == HATEBM_MISUSE && r.iteration == HATEBM_MISUSE);
    CHECK_CONTAINS(hatebm_last_error_message(), "not freed");
    /* The inner calls changed nothing: exactly the 2 iterations of the train call. */
    CHECK_OK(hatebm_session_iteration(s, &it));
    CHECK(it == it0 + 2);
    /* And the session works normally once the outer call has returned. */
    CHECK_OK(hatebm_session_step(s, NULL));
}

static void test_bank(hatebm_session *s) {
    size_t cap = 0;
    float z[2] = {7, 7}, x[2] = {7, 7}, x2[2];
    CHECK_OK(hatebm_session_bank_size(s, &cap));
    CHECK(cap == 64);
    CHECK_OK(hatebm_session_bank_read(s, 5, z, 2, x, 2));
    CHECK(isfinite(z[0]) && isfinite(x[1]) && !(z[0] == 7 && z[1] == 7));
    CHECK_OK(hatebm_session_bank_read(s, 5, NULL, 0, x2, 2));
    CHECK_SAME_FLOATS(x, x2, 2);
    CHECK_STATUS(hatebm_session_bank_read(s, 64, NULL, 0, x2, 2), HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "out of range");
    CHECK_STATUS(hatebm_session_bank_read(s, 0, z, 1, x2, 2), HATEBM_SHAPE_MISMATCH);
}

static void test_sampling(hatebm_session *s) {
    hatebm_sample_params p = hatebm_sample_default_params(), bad;
    float a[10], b[10], c[10];
    CHECK(p.struct_size == sizeof p && p.n == 64 && p.steps == -1 && p.use_ema);
    p.n = 5;
    p.seed = 11;
    CHECK_OK(hatebm_session_sample(s, &p, a, 10));
    CHECK_OK(hatebm_session_sample(s, &p, b, 10));
    CHECK_SAME_FLOATS(a, b, 10);
    p.batch_size = 2; /* results do not depend on the batch size */
    CHECK_OK(hatebm_session_sample(s, &p, c, 10));
    CHECK_SAME_FLOATS(a, c, 10);
    p.steps = 0; /* generator only */
    CHECK_OK(hatebm_session_sample(s, &p, c, 10));
    CHECK(memcmp(a, c, sizeof a) != 0);
    CHECK_STATUS(hatebm_session_sample(s, &p, c, 9), HATEBM_SHAPE_MISMATCH);
    bad = p;
    bad.struct_size = 8;
    CHECK_STATUS(hatebm_session_sample(s, &bad, c, 10), HATEBM_INVALID_ARGUMENT);
    bad = p;
    bad.n = 0;
    CHECK_STATUS(hatebm_session_sample(s, &bad, c, 0), HATEBM_INVALID_ARGUMENT);
    /* A huge step count is refused up front, not an abort or an endless call. */
    bad = p;
    bad.n = 1;
    bad.steps = 100000000000;
    CHECK_STATUS(hatebm_session_sample(s, &bad, c, 2), HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "at most");
}

/* Issue 17, item 1: the model-only API samples and scores a checkpoint as
 * the session that wrote it does, with no data, bank or optimiser. */
static void test_model_only(hatebm_session *s) {
    char ck[512];
    hatebm_trained_model *m = NULL, *untouched = (hatebm_trained_model *)(void *)&ck;
    hatebm_sample_params p = hatebm_sample_default_params();
    float a[12], b[12], e1[6], e2[6];
    size_t dims[4], nd = 0, sl = 0;
    uint64_t it_s = 0, it_m = 0;

    test_path(ck, sizeof ck, "session", "model.safetensors");
    CHECK_OK(hatebm_session_save_checkpoint(s, ck));
    CHECK_OK(hatebm_trained_model_load(ck, NULL, &m));
    CHECK_OK(hatebm_trained_model_info(m, &sl, &it_m));
    CHECK_OK(hatebm_session_iteration(s, &it_s));
    CHECK(sl == 2 && it_m == it_s);
    CHECK_OK(hatebm_trained_model_sample_shape(m, dims, 4, &nd));
    CHECK(nd == 1 && dims[0] == 2);
    CHECK_OK(hatebm_trained_model_image_shape(m, dims, 4, &nd));
    CHECK(nd == 0);
    p.n = 6;
    p.steps = 3;
    p.seed = 4;
    CHECK_OK(hatebm_session_sample(s, &p, a, 12));
    CHECK_OK(hatebm_trained_model_sample(m, &p, b, 12));
    CHECK_SAME_FLOATS(a, b, 12);
    CHECK_OK(hatebm_session_energy(s, a, 12, 6, e1, 6));
    CHECK_OK(hatebm_trained_model_energy(m, a, 12, 6, false, e2, 6));
    CHECK_SAME_FLOATS(e1, e2, 6);
    /* Misuse: wrong lengths, NULLs, a missing file, a backend that is not there. */
    CHECK_STATUS(hatebm_trained_model_sample(m, &p, b, 11), HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_trained_model_energy(m, a, 12, 6, false, e2, 5), HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_trained_model_sample(NULL, &p, b, 12), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_trained_model_load("/nonexistent/ck.safetensors", NULL, &untouched), HATEBM_IO);
    CHECK_STATUS(hatebm_trained_model_load(ck, "nonsense", &untouched), HATEBM_CONFIG);
    CHECK_STATUS(hatebm_trained_model_load(ck, NULL, NULL), HATEBM_NULL_PARAMETER);
    CHECK(untouched == (hatebm_trained_model *)(void *)&ck);
    /* The MH samplers (docs/samplers.md): statistics after a MALA call, none
     * after BAOAB; bad names and NULLs refused. */
    {
        hatebm_mh_stats st;
        CHECK_OK(hatebm_trained_model_set_sampler(m, "mala"));
        CHECK_OK(hatebm_trained_model_sample(m, &p, b, 12));
        CHECK_OK(hatebm_trained_model_mh_stats(m, &st));
        CHECK(st.struct_size == sizeof st && st.available);
        CHECK(st.accept_res >= 0.0 && st.accept_res <= 1.0);
        CHECK(st.alpha_res >= 0.0 && st.alpha_res <= 1.0);
        CHECK(isnan(st.suggested_eps_res) && st.divergences == 0);
        CHECK_OK(hatebm_trained_model_set_sampler(m, "baoab"));
        CHECK_OK(hatebm_trained_model_sample(m, &p, b, 12));
        CHECK_OK(hatebm_trained_model_mh_stats(m, &st));
        CHECK(!st.available && isnan(st.alpha_res));
        CHECK_STATUS(hatebm_trained_model_set_sampler(m, "hmcc"), HATEBM_CONFIG);
        CHECK_STATUS(hatebm_trained_model_set_sampler(m, NULL), HATEBM_NULL_PARAMETER);
        CHECK_STATUS(hatebm_trained_model_mh_stats(m, NULL), HATEBM_NULL_PARAMETER);
        CHECK_STATUS(hatebm_trained_model_mh_stats(NULL, &st), HATEBM_NULL_PARAMETER);
    }
    hatebm_trained_model_free(m);
    hatebm_trained_model_free(NULL);
}

static void test_checkpoint_and_weights(hatebm_session *s) {
    char ck[512], we[512], wg[512], wema[512], junk[512];
    hatebm_session *r = NULL, *fresh = NULL, *untouched = s;
    hatebm_config *cfg = NULL;
    hatebm_step_stats a, b;
    uint64_t it_s = 0, it_r = 0;
    float x[4] = {0.5f, 0.5f, -1.0f, 0.25f}, e1[2], e2[2], e3[2];
    FILE *f;

    test_path(ck, sizeof ck, "session", "ck.safetensors");
    CHECK_OK(hatebm_session_save_checkpoint(s, ck));
    CHECK_OK(hatebm_session_resume(ck, NULL, &r));
    CHECK_OK(hatebm_session_iteration(s, &it_s));
    CHECK_OK(hatebm_session_iteration(r, &it_r));
    CHECK(it_s == it_r);
    /* Exact resume: the next step is bit-identical. */
    CHECK_OK(hatebm_session_step(s, &a));
    CHECK_OK(hatebm_session_step(r, &b));
    CHECK(a.loss_ebm == b.loss_ebm && a.energy_neg == b.energy_neg && a.loss_gen == b.loss_gen);
    CHECK(a.iterations_done == b.iterations_done && a.iterations_done == it_s + 1);

    /* Resume with a changed configuration (same networks). */
    CHECK_OK(hatebm_config_from_checkpoint(ck, &cfg));
    CHECK_OK(hatebm_config_set(cfg, "train.steps", "2000"));
    hatebm_session_free(r);
    r = NULL;
    CHECK_OK(hatebm_session_resume(ck, cfg, &r));
    hatebm_config_free(cfg);

    CHECK_STATUS(hatebm_session_resume("/nonexistent/ck.safetensors", NULL, &untouched), HATEBM_IO);
    CHECK(untouched == s);
    test_path(junk, sizeof junk, "session", "junk.safetensors");
    f = fopen(junk, "wb");
    if (f != NULL) {
        fputs("definitely not safetensors", f);
        fclose(f);
    }
    CHECK_STATUS(hatebm_session_resume(junk, NULL, &untouched), HATEBM_FORMAT);
    remove(junk);

    /* Weights: save from one session, load into a fresh one -> same energies. */
    test_path(we, sizeof we, "session", "energy.safetensors");
    test_path(wg, sizeof wg, "session", "generator.safetensors");
    test_path(wema, sizeof wema, "session", "ema.safetensors");
    CHECK_OK(hatebm_session_save_weights(s, HATEBM_MODEL_ENERGY, we));
    CHECK_OK(hatebm_session_save_weights(s, HATEBM_MODEL_GENERATOR, wg));
    CHECK_OK(hatebm_session_save_weights(s, HATEBM_MODEL_ENERGY_EMA, wema));
    cfg = tiny_config();
    CHECK(cfg != NULL);
    CHECK_OK(hatebm_session_new(cfg, &fresh));
    hatebm_config_free(cfg);
    CHECK_OK(hatebm_session_energy(s, x, 4, 2, e1, 2));
    CHECK_OK(hatebm_session_energy(fresh, x, 4, 2, e2, 2));
    CHECK(memcmp(e1, e2, sizeof e1) != 0);
    CHECK_OK(hatebm_session_load_weights(fresh, HATEBM_MODEL_ENERGY, we));
    CHECK_OK(hatebm_session_load_weights(fresh, HATEBM_MODEL_GENERATOR, wg));
    CHECK_OK(hatebm_session_energy(fresh, x, 4, 2, e2, 2));
    CHECK_SAME_FLOATS(e1, e2, 2);
    /* A checkpoint holds the weights too (under `ebm.`). */
    CHECK_OK(hatebm_session_load_weights(fresh, HATEBM_MODEL_ENERGY, ck));
    CHECK_OK(hatebm_session_load_weights(fresh, HATEBM_MODEL_ENERGY_EMA, wema));
    /* Wrong files and models: HATEBM_PARAM naming the tensor; nothing changes. */
    CHECK_OK(hatebm_session_load_weights(fresh, HATEBM_MODEL_ENERGY, we));
    CHECK_STATUS(hatebm_session_load_weights(fresh, HATEBM_MODEL_ENERGY, wg), HATEBM_PARAM);
    CHECK_CONTAINS(hatebm_last_error_message(), "generator.safetensors");
    CHECK_OK(hatebm_session_energy(fresh, x, 4, 2, e3, 2));
    CHECK_SAME_FLOATS(e1, e3, 2);
    CHECK_STATUS(hatebm_session_load_weights(fresh, 7, we), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_session_save_weights(fresh, -1, we), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_session_load_weights(fresh, HATEBM_MODEL_ENERGY, "/nonexistent.st"),
                 HATEBM_IO);
    remove(ck);
    remove(we);
    remove(wg);
    remove(wema);
    hatebm_session_free(fresh);
    hatebm_session_free(r);
}

static void test_writers(void) {
    char png[512], npy[512];
    float img[2 * 1 * 3 * 4];
    size_t shape[3] = {2, 3, 4};
    int i;
    for (i = 0; i < 24; i++) {
        img[i] = (float)i / 12.0f - 1.0f;
    }
    test_path(png, sizeof png, "session", "grid.png");
    test_path(npy, sizeof npy, "session", "x.npy");
    CHECK_OK(hatebm_save_image_grid(png, img, 24, 2, 1, 3, 4));
    CHECK_STATUS(hatebm_save_image_grid(png, img, 23, 2, 1, 3, 4), HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_save_image_grid(png, img, 24, 2, 2, 3, 2), HATEBM_INVALID_ARGUMENT);
    {
        /* A path below a regular file cannot be created. */
        char below[600];
        snprintf(below, sizeof below, "%s/g.png", png);
        CHECK_STATUS(hatebm_save_image_grid(below, img, 24, 2, 1, 3, 4), HATEBM_IO);
    }
    CHECK_OK(hatebm_save_npy(npy, img, 24, shape, 3));
    CHECK_STATUS(hatebm_save_npy(npy, img, 23, shape, 3), HATEBM_SHAPE_MISMATCH);
    remove(png);
    remove(npy);
}

int main(void) {
    hatebm_config *cfg = tiny_config();
    hatebm_session *s = NULL;
    char *toml;
    size_t n = 0;

    CHECK(cfg != NULL);
    CHECK_OK(hatebm_session_new(cfg, &s));
    hatebm_config_free(cfg); /* the session keeps its own copy */
    hatebm_session_free(NULL);
    if (s == NULL) {
        return check_summary("session");
    }
    CHECK_STATUS(hatebm_session_config_toml(s, NULL, 0, &n), HATEBM_INSUFFICIENT_SIZE);
    toml = malloc(n);
    CHECK_OK(hatebm_session_config_toml(s, toml, n, &n));
    CHECK_CONTAINS(toml, "bank_size = 64");
    free(toml);

    test_shapes(s);
    test_networks(s);
    test_langevin(s);
    test_training(s);
    test_reentry(s);
    test_bank(s);
    test_sampling(s);
    test_checkpoint_and_weights(s);
    test_model_only(s);
    test_writers();
    hatebm_session_free(s);
    return check_summary("session");
}
