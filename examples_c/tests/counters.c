/*
 * Issue 17, item 7: one iteration-counter convention. Every counter is the
 * number of iterations completed, resumed ones included, and an iteration's
 * own statistics carry its 1-based number: hatebm_step_stats.iterations_done,
 * hatebm_progress.iterations_done, hatebm_session_iteration and
 * hatebm_trained_model_info agree, before and after a resume; n_iterations
 * counts the iterations a train call runs (never beyond train.steps).
 */
#include <stdbool.h>
#include <stdint.h>

#include "check.h"

#define TOTAL 8

static hatebm_config *tiny_config(void) {
    const char *toml =
        "preset = \"toy2d\"\n"
        "seed = 5\n"
        "[data]\nkind = \"toy\"\nname = \"ring8\"\nn = 128\n"
        "[model.energy]\nkind = \"mlp\"\ndims = [2, 8, 1]\n"
        "[model.generator]\nkind = \"mlp\"\ndims = [2, 8, 2]\n"
        "[train]\nsteps = 8\nbatch_size = 8\nbank_size = 32\n"
        "[langevin]\nsteps = 2\n"
        "[eval]\nnum_samples = 0\n"
        "[output]\nprogress = \"never\"\nplot = false\nsample_every = 0\n";
    return test_config(toml, "counters", "out");
}

/* What the progress callback saw. */
typedef struct {
    int calls;
    int mismatches; /* progress.iterations_done != its stats' iterations_done */
    int gaps;       /* a value that is not the previous one + 1 */
    uint64_t first, last, total;
} seen;

static bool on_progress(const hatebm_progress *p, void *user_data) {
    seen *v = (seen *)user_data;
    if (p->iterations_done != p->stats.iterations_done) {
        v->mismatches++;
    }
    if (v->calls == 0) {
        v->first = p->iterations_done;
    } else if (p->iterations_done != v->last + 1) {
        v->gaps++;
    }
    v->last = p->iterations_done;
    v->total = p->total;
    v->calls++;
    return true;
}

/* Trains n_iterations with the callback; checks the callback saw exactly the
 * iterations first..last (one call each, progress and stats agreeing) and that
 * the session's counter and last stats then say `last`. */
static void train_and_check(hatebm_session *s, uint64_t n_iterations, int calls, uint64_t first,
                            uint64_t last) {
    seen v = {0, 0, 0, 0, 0, 0};
    uint64_t it = 0;
    hatebm_step_stats st;
    CHECK_OK(hatebm_session_train(s, n_iterations, on_progress, &v));
    CHECK(v.calls == calls && v.mismatches == 0 && v.gaps == 0);
    if (calls > 0) {
        CHECK(v.first == first && v.last == last && v.total == TOTAL);
    }
    CHECK_OK(hatebm_session_iteration(s, &it));
    CHECK(it == last);
    CHECK_OK(hatebm_session_last_stats(s, &st));
    CHECK(st.iterations_done == last);
}

int main(void) {
    hatebm_config *cfg = tiny_config();
    hatebm_session *s = NULL, *r = NULL;
    hatebm_trained_model *m = NULL;
    hatebm_step_stats a, b;
    uint64_t it = 99, model_it = 99;
    char ck[512];

    CHECK(cfg != NULL);
    CHECK_OK(hatebm_session_new(cfg, &s));
    CHECK_OK(hatebm_session_iteration(s, &it));
    CHECK(it == 0);

    /* The first step is iteration 1, and the counter says 1 after it. */
    CHECK_OK(hatebm_session_step(s, &a));
    CHECK(a.iterations_done == 1);
    CHECK_OK(hatebm_session_iteration(s, &it));
    CHECK(it == a.iterations_done);

    /* n_iterations = 2 runs iterations 2 and 3. */
    train_and_check(s, 2, 2, 2, 3);

    /* A checkpoint after 3 iterations: resumed, trained model and session agree. */
    test_path(ck, sizeof ck, "counters", "ck.safetensors");
    CHECK_OK(hatebm_session_save_checkpoint(s, ck));
    CHECK_OK(hatebm_session_resume(ck, NULL, &r));
    CHECK_OK(hatebm_session_iteration(r, &it));
    CHECK(it == 3);
    CHECK_OK(hatebm_trained_model_load(ck, NULL, &m));
    CHECK_OK(hatebm_trained_model_info(m, NULL, &model_it));
    CHECK(model_it == 3);

    /* The next iteration after the resume is number 4, in both sessions. */
    CHECK_OK(hatebm_session_step(s, &a));
    CHECK_OK(hatebm_session_step(r, &b));
    CHECK(a.iterations_done == 4 && b.iterations_done == 4);
    CHECK(a.loss_ebm == b.loss_ebm); /* the exact resume this relies on */

    /* Counting resumed ones: 2 more are 5 and 6; 0 = up to train.steps (7, 8);
     * more than is left stops at train.steps (no iteration at all here). */
    train_and_check(r, 2, 2, 5, 6);
    train_and_check(r, 0, 2, 7, TOTAL);
    train_and_check(r, 5, 0, 0, TOTAL);

    hatebm_trained_model_free(m);
    hatebm_session_free(r);
    hatebm_session_free(s);
    hatebm_config_free(cfg);
    return check_summary("counters");
}
