/*
 * Issue 17, item 6: what a training run logs, seen through hatebm_log_set at
 * INFO. The run-start line names the device (for the CPU backend its kernel
 * path), throughput is logged, every checkpoint is logged (one asked for with
 * hatebm_session_save_checkpoint as well as train's own), and guard events
 * (a rollback, then a stop) are WARN records.
 */
#include <string.h>

#include "check.h"

#define MAX_RECORDS 256

typedef struct {
    int count;
    int levels[MAX_RECORDS];
    char messages[MAX_RECORDS][768];
} records;

static void on_log(int level, const char *target, const char *message, void *user_data) {
    records *r = (records *)user_data;
    (void)target;
    if (r->count < MAX_RECORDS) {
        r->levels[r->count] = level;
        strncpy(r->messages[r->count], message, sizeof r->messages[0] - 1);
    }
    r->count++;
}

/* How many records at `level` contain `a` and (unless NULL) `b`. */
static int count_with(const records *r, int level, const char *a, const char *b) {
    int n = 0;
    for (int i = 0; i < r->count && i < MAX_RECORDS; i++) {
        if (r->levels[i] == level && strstr(r->messages[i], a) != NULL &&
            (b == NULL || strstr(r->messages[i], b) != NULL)) {
            n++;
        }
    }
    return n;
}

static hatebm_config *config(const char *out, const char *guard) {
    char toml[1024];
    snprintf(toml, sizeof toml,
             "preset = \"toy2d\"\n"
             "seed = 9\n"
             "[data]\nkind = \"toy\"\nname = \"ring8\"\nn = 128\n"
             "[model.energy]\nkind = \"mlp\"\ndims = [2, 8, 1]\n"
             "[model.generator]\nkind = \"mlp\"\ndims = [2, 8, 2]\n"
             "[train]\nsteps = 50\nbatch_size = 8\nbank_size = 32\n"
             "[langevin]\nsteps = 2\n"
             "[eval]\nnum_samples = 0\n"
             "[output]\nprogress = \"never\"\nplot = false\nsample_every = 0\n"
             "[guard]\n%s\n",
             guard);
    return test_config(toml, "run_log", out);
}

static void test_start_throughput_checkpoints(records *r) {
    hatebm_config *cfg = config("out", "");
    hatebm_session *s = NULL;
    char ck[512];
    CHECK(cfg != NULL);
    CHECK_OK(hatebm_session_new(cfg, &s));

    r->count = 0;
    CHECK_OK(hatebm_session_train(s, 2, NULL, NULL));
    /* Start: mode, device with its kernel path, threads, seed. */
    CHECK(count_with(r, HATEBM_LOG_LEVEL_INFO, "training `toy2d` (synthesis mode) on cpu (",
                     " kernels) from iteration 0 to 2 of 50") == 1);
    CHECK(count_with(r, HATEBM_LOG_LEVEL_INFO, "threads, seed 9, config ", NULL) == 1);
    CHECK(count_with(r, HATEBM_LOG_LEVEL_INFO, "iteration 1/50: ", " it/s") == 1);
    /* The end-of-call checkpoint, after 2 iterations. */
    CHECK(count_with(r, HATEBM_LOG_LEVEL_INFO, "checkpoint written: ", "(iteration 2)") == 1);

    /* A checkpoint asked for outside train is logged too. */
    test_path(ck, sizeof ck, "run_log", "asked.safetensors");
    r->count = 0;
    CHECK_OK(hatebm_session_save_checkpoint(s, ck));
    CHECK(count_with(r, HATEBM_LOG_LEVEL_INFO, "checkpoint written: ", ck) == 1);
    CHECK(count_with(r, HATEBM_LOG_LEVEL_INFO, "checkpoint written: ", "(iteration 2)") == 1);

    hatebm_session_free(s);
    hatebm_config_free(cfg);
}

static void test_guard_events(records *r) {
    /* Every |loss_ebm| above 1e-30 is a divergence: the first iteration rolls
     * back (the one rollback allowed), its retry stops the run. */
    hatebm_config *cfg =
        config("guard", "policy = \"rollback\"\nmax_rollbacks = 1\nmax_energy_diff = 1e-30");
    hatebm_session *s = NULL;
    CHECK(cfg != NULL);
    CHECK_OK(hatebm_session_new(cfg, &s));
    r->count = 0;
    CHECK_STATUS(hatebm_session_train(s, 3, NULL, NULL), HATEBM_DIVERGED);
    CHECK(count_with(r, HATEBM_LOG_LEVEL_WARN, "guard: iteration 1: ",
                     "rolled back to the state after iteration 0") == 1);
    CHECK(count_with(r, HATEBM_LOG_LEVEL_WARN, "guard: iteration 1: ",
                     "1 rollbacks already used (guard.max_rollbacks)") == 1);
    CHECK(count_with(r, HATEBM_LOG_LEVEL_WARN, "energy difference", NULL) == 2);
    /* Rolled back to the start: no throughput line with a zero rate. */
    CHECK(count_with(r, HATEBM_LOG_LEVEL_INFO, " it/s", NULL) == 0);
    hatebm_session_free(s);
    hatebm_config_free(cfg);
}

int main(void) {
    static records r; /* zeroed */
    CHECK_OK(hatebm_log_set(on_log, &r));
    CHECK_OK(hatebm_log_set_level(HATEBM_LOG_LEVEL_INFO));
    test_start_throughput_checkpoints(&r);
    test_guard_events(&r);
    CHECK_OK(hatebm_log_set(NULL, NULL));
    return check_summary("run_log");
}
