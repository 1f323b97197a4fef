/*
 * hatebm_trained_model_scores: out-of-distribution scores (energy and the L2
 * norm of its input gradient) of a model loaded from a checkpoint of a tiny
 * toy2d session. The energies equal hatebm_trained_model_energy's, the norms
 * those of the session's own gradients; the EMA weights give other scores;
 * misuse (NULLs, wrong lengths, n = 0, overlapping buffers, non-finite input)
 * returns its status and leaves the outputs untouched.
 */
#include <math.h>
#include <string.h>

#include "check.h"

#define N 5

static hatebm_config *tiny_config(void) {
    const char *toml =
        "preset = \"toy2d\"\n"
        "seed = 5\n"
        "[data]\nkind = \"toy\"\nname = \"ring8\"\nn = 256\n"
        "[model.energy]\nkind = \"mlp\"\ndims = [2, 16, 16, 1]\n"
        "[model.generator]\nkind = \"mlp\"\ndims = [2, 16, 16, 2]\n"
        "[train]\nsteps = 1000\nbatch_size = 16\nbank_size = 64\n"
        "[langevin]\nsteps = 3\n"
        "[ebm_optim]\nema_decay = 0.5\n"
        "[sample]\nbatch_size = 2\n"
        "[output]\nprogress = \"never\"\nplot = false\n";
    return test_config(toml, "scores", "out");
}

static void test_scores(hatebm_session *s, hatebm_trained_model *m) {
    float x[N * 2] = {0.1f, -0.2f, 1.5f, 0.3f, -2.0f, 2.0f, 0.0f, 0.0f, 3.0f, -1.0f};
    float e[N], g[N], e_ref[N], grad[N * 2], e_ema[N], g_ema[N];
    float sentinel[N] = {7, 7, 7, 7, 7}, s2[N] = {7, 7, 7, 7, 7};
    float seven[N] = {7, 7, 7, 7, 7};
    int i, close = 1;

    CHECK_OK(hatebm_trained_model_scores(m, x, N * 2, N, false, e, g, N));
    CHECK_OK(hatebm_trained_model_energy(m, x, N * 2, N, false, e_ref, N));
    CHECK_SAME_FLOATS(e, e_ref, N);
    /* The norms of the (raw-weight) session's own input gradients. */
    CHECK_OK(hatebm_session_energy_grad(s, x, N * 2, N, e_ref, N, grad, N * 2));
    CHECK_SAME_FLOATS(e, e_ref, N);
    for (i = 0; i < N; i++) {
        double want = sqrt((double)grad[2 * i] * grad[2 * i] + (double)grad[2 * i + 1] * grad[2 * i + 1]);
        close &= fabs(g[i] - want) <= 1e-5 * (want + 1e-30);
        close &= g[i] >= 0.0f;
    }
    CHECK(close);
    CHECK_OK(hatebm_trained_model_scores(m, x, N * 2, N, true, e_ema, g_ema, N));
    CHECK(memcmp(e, e_ema, sizeof e) != 0); /* the EMA weights differ */

    /* Misuse: every failure leaves both outputs untouched. */
    CHECK_STATUS(hatebm_trained_model_scores(NULL, x, N * 2, N, true, sentinel, s2, N), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_trained_model_scores(m, NULL, N * 2, N, true, sentinel, s2, N), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_trained_model_scores(m, x, N * 2, N, true, NULL, s2, N), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_trained_model_scores(m, x, N * 2, N, true, sentinel, NULL, N), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_trained_model_scores(m, x, N * 2 - 1, N, true, sentinel, s2, N), HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_trained_model_scores(m, x, N * 2, N, true, sentinel, s2, N - 1), HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_trained_model_scores(m, x, 0, 0, true, sentinel, s2, 0), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_trained_model_scores(m, x, N * 2, N, true, sentinel, sentinel, N), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_trained_model_scores(m, x, N * 2, N, true, x, s2, N), HATEBM_INVALID_ARGUMENT);
    x[3] = NAN;
    CHECK_STATUS(hatebm_trained_model_scores(m, x, N * 2, N, true, sentinel, s2, N), HATEBM_NUMERIC);
    CHECK_CONTAINS(hatebm_last_error_message(), "hatebm_trained_model_scores");
    CHECK_SAME_FLOATS(sentinel, seven, N);
    CHECK_SAME_FLOATS(s2, seven, N);
}

int main(void) {
    hatebm_config *cfg = tiny_config();
    hatebm_session *s = NULL;
    hatebm_trained_model *m = NULL;
    char ck[512];

    CHECK(cfg != NULL);
    CHECK_OK(hatebm_session_new(cfg, &s));
    hatebm_config_free(cfg);
    if (s == NULL) {
        return check_summary("scores");
    }
    CHECK_OK(hatebm_session_train(s, 3, NULL, NULL));
    test_path(ck, sizeof ck, "scores", "model.safetensors");
    CHECK_OK(hatebm_session_save_checkpoint(s, ck));
    CHECK_OK(hatebm_trained_model_load(ck, NULL, &m));
    if (m != NULL) {
        test_scores(s, m);
    }
    hatebm_trained_model_free(m);
    hatebm_session_free(s);
    return check_summary("scores");
}
