/*
 * A data-parallel run over the harness's own collectives: two threads, each
 * rank 0 or 1 of a `hatebm_comm` whose all-gather goes through shared memory
 * (a barrier and a buffer per rank), train a toy run with dist.shards = 2.
 * Both ranks end with the same networks as one process with the same shards,
 * bit for bit (energies and generator outputs at fixed inputs, statistics).
 * Also: a failing callback fails the call with HATEBM_DISTRIBUTED and its
 * message, a bad rank/size is refused, `free` runs only for a session made,
 * and hatebm_session_new_mpi without the mpi feature says so.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define RANKS 2
#define STEPS 4
#define MAX_BYTES (1 << 20)
#define NP 8

typedef struct {
    pthread_barrier_t barrier;
    unsigned char buf[RANKS][MAX_BYTES];
    size_t count[RANKS];
    int fail_at; /* fail the n-th all-gather call of rank 1 (0 = never) */
} shared_mem;

typedef struct {
    shared_mem *mem;
    size_t rank;
    int calls;
    int freed;
} rank_ctx;

static int all_gather(const void *send, size_t count, void *recv, void *user_data) {
    rank_ctx *c = (rank_ctx *)user_data;
    shared_mem *m = c->mem;
    size_t r;
    c->calls++;
    if (count > MAX_BYTES) {
        hatebm_callback_set_error("message too large for the test's buffers");
        return 2;
    }
    memcpy(m->buf[c->rank], send, count);
    m->count[c->rank] = count;
    pthread_barrier_wait(&m->barrier);
    for (r = 0; r < RANKS; r++) {
        memcpy((unsigned char *)recv + r * count, m->buf[r], count);
    }
    pthread_barrier_wait(&m->barrier);
    return 0;
}

static int failing_all_gather(const void *send, size_t count, void *recv, void *user_data) {
    (void)send;
    (void)count;
    (void)recv;
    (void)user_data;
    hatebm_callback_set_error("the interconnect is down");
    return 5;
}

static void free_ctx(void *user_data) {
    ((rank_ctx *)user_data)->freed++;
}

static hatebm_config *config(const char *out) {
    const char *toml =
        "preset = \"toy2d\"\n"
        "seed = 5\n"
        "threads = 1\n"
        "[data]\nkind = \"toy\"\nname = \"ring8\"\nn = 256\n"
        "[model.energy]\nkind = \"mlp\"\ndims = [2, 16, 16, 1]\n"
        "[model.generator]\nkind = \"mlp\"\ndims = [2, 16, 16, 2]\n"
        "[train]\nsteps = 100\nbatch_size = 16\nbank_size = 64\n"
        "[langevin]\nsteps = 3\n"
        "[dist]\nshards = 2\ncheck_every = 1\n"
        "[output]\nprogress = \"never\"\nplot = false\n";
    return test_config(toml, "distributed", out);
}

/* What the networks compute at fixed inputs, and the last step's losses. */
typedef struct {
    float energy[NP];
    float gen[NP * 2];
    double loss_ebm, loss_gen;
    hatebm_status status;
} result;

static void fingerprint(hatebm_session *s, result *out) {
    float x[NP * 2], z[NP * 2];
    int i;
    for (i = 0; i < NP * 2; i++) {
        x[i] = 0.1f * (float)i - 0.7f;
        z[i] = 0.05f * (float)(i * i % 7) - 0.2f;
    }
    CHECK_OK(hatebm_session_energy(s, x, NP * 2, NP, out->energy, NP));
    CHECK_OK(hatebm_session_generate(s, z, NP * 2, NP, out->gen, NP * 2));
}

static void train(hatebm_session *s, result *out) {
    hatebm_step_stats st;
    int i;
    out->status = HATEBM_OK;
    for (i = 0; i < STEPS; i++) {
        out->status = hatebm_session_step(s, &st);
        if (out->status != HATEBM_OK) {
            return;
        }
    }
    out->loss_ebm = st.loss_ebm;
    out->loss_gen = st.loss_gen;
    fingerprint(s, out);
}

typedef struct {
    rank_ctx ctx;
    result res;
    hatebm_status created;
    char error[512];
} worker_arg;

static void *worker(void *p) {
    worker_arg *w = (worker_arg *)p;
    hatebm_comm comm = hatebm_comm_default();
    hatebm_config *cfg = config(w->ctx.rank == 0 ? "rank0" : "rank1");
    hatebm_session *s = NULL;
    comm.rank = w->ctx.rank;
    comm.size = RANKS;
    comm.all_gather = all_gather;
    comm.user_data = &w->ctx;
    comm.free = free_ctx;
    w->created = hatebm_session_new_distributed(cfg, &comm, &s);
    hatebm_config_free(cfg);
    if (w->created != HATEBM_OK) {
        snprintf(w->error, sizeof w->error, "%s", hatebm_last_error_message());
        return NULL;
    }
    train(s, &w->res);
    if (w->res.status != HATEBM_OK) {
        snprintf(w->error, sizeof w->error, "%s", hatebm_last_error_message());
    }
    hatebm_session_free(s);
    return NULL;
}

static void run_ranks(shared_mem *mem, worker_arg w[RANKS]) {
    pthread_t t[RANKS];
    size_t r;
    pthread_barrier_init(&mem->barrier, NULL, RANKS);
    for (r = 0; r < RANKS; r++) {
        memset(&w[r], 0, sizeof w[r]);
        w[r].ctx.mem = mem;
        w[r].ctx.rank = r;
        pthread_create(&t[r], NULL, worker, &w[r]);
    }
    for (r = 0; r < RANKS; r++) {
        pthread_join(t[r], NULL);
    }
    pthread_barrier_destroy(&mem->barrier);
}

static void test_two_ranks_equal_one_process(void) {
    static shared_mem mem;
    worker_arg w[RANKS];
    result one;
    hatebm_config *cfg = config("one");
    hatebm_session *s = NULL;
    size_t r;

    CHECK_OK(hatebm_session_new(cfg, &s));
    hatebm_config_free(cfg);
    train(s, &one);
    CHECK(one.status == HATEBM_OK);
    hatebm_session_free(s);

    run_ranks(&mem, w);
    for (r = 0; r < RANKS; r++) {
        CHECK(w[r].created == HATEBM_OK);
        if (w[r].created != HATEBM_OK || w[r].res.status != HATEBM_OK) {
            printf("rank %zu: %s\n", r, w[r].error);
            continue;
        }
        CHECK(w[r].ctx.calls > 0);
        CHECK(w[r].ctx.freed == 1); /* freed with its session, once */
        CHECK_SAME_FLOATS(w[r].res.energy, one.energy, NP);
        CHECK_SAME_FLOATS(w[r].res.gen, one.gen, NP * 2);
        CHECK(memcmp(&w[r].res.loss_ebm, &one.loss_ebm, sizeof(double)) == 0);
        CHECK(memcmp(&w[r].res.loss_gen, &one.loss_gen, sizeof(double)) == 0);
    }
}

static void test_errors(void) {
    rank_ctx ctx;
    hatebm_comm comm = hatebm_comm_default();
    hatebm_config *cfg = config("errors");
    hatebm_session *s = NULL;

    memset(&ctx, 0, sizeof ctx);
    /* A rank outside the size, and a group without an all-gather. */
    comm.rank = 2;
    comm.size = 2;
    comm.all_gather = all_gather;
    CHECK_STATUS(hatebm_session_new_distributed(cfg, &comm, &s), HATEBM_INVALID_ARGUMENT);
    CHECK(s == NULL);
    comm.rank = 0;
    comm.all_gather = NULL;
    CHECK_STATUS(hatebm_session_new_distributed(cfg, &comm, &s), HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "all_gather");
    CHECK_STATUS(hatebm_session_new_distributed(cfg, NULL, &s), HATEBM_NULL_PARAMETER);
    /* A failing callback: HATEBM_DISTRIBUTED with its text; `free` is not
     * called for a session that was never made. */
    comm.all_gather = failing_all_gather;
    comm.user_data = &ctx;
    comm.free = free_ctx;
    CHECK_STATUS(hatebm_session_new_distributed(cfg, &comm, &s), HATEBM_DISTRIBUTED);
    CHECK_CONTAINS(hatebm_last_error_message(), "the interconnect is down");
    CHECK(s == NULL && ctx.freed == 0);
    /* Rank 0 of 1 is a plain session (its all-gather is never called). */
    comm.all_gather = failing_all_gather;
    comm.size = 1;
    CHECK_OK(hatebm_session_new_distributed(cfg, &comm, &s));
    hatebm_session_free(s);
    CHECK(ctx.freed == 1);
    s = NULL;
#if !defined(HATEBM_WITH_MPI)
    CHECK_STATUS(hatebm_session_new_mpi(cfg, 0, &s), HATEBM_DISTRIBUTED);
    CHECK_CONTAINS(hatebm_last_error_message(), "without MPI");
#endif
    CHECK_STREQ(hatebm_status_str(HATEBM_DISTRIBUTED), "HATEBM_DISTRIBUTED");
    hatebm_config_free(cfg);
}

int main(void) {
    test_two_ranks_equal_one_process();
    test_errors();
    return check_summary("distributed");
}
