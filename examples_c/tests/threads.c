/*
 * Threads: the last error is per thread (also under concurrency), and the log
 * callback can be replaced while other threads are logging; once
 * hatebm_log_set returns, the old callback is never called again.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

#define N_THREADS 4
#define N_CALLS 200

static atomic_int calls_a;
static atomic_int calls_b;
static atomic_int calls_after_removal;
static atomic_int removed;

static void count_a(int level, const char *target, const char *message, void *user_data) {
    (void)level;
    (void)target;
    (void)message;
    (void)user_data;
    atomic_fetch_add(&calls_a, 1);
    if (atomic_load(&removed)) {
        atomic_fetch_add(&calls_after_removal, 1);
    }
}

static void count_b(int level, const char *target, const char *message, void *user_data) {
    (void)level;
    (void)target;
    (void)message;
    (void)user_data;
    atomic_fetch_add(&calls_b, 1);
    if (atomic_load(&removed)) {
        atomic_fetch_add(&calls_after_removal, 1);
    }
}

typedef struct {
    size_t id;
    int failures;
} worker_arg;

static void *worker(void *p) {
    worker_arg *arg = (worker_arg *)p;
    char want[64];
    int i;
    if (strcmp(hatebm_last_error_message(), "") != 0) {
        arg->failures++; /* a new thread starts with no message */
    }
    snprintf(want, sizeof want, "its length is %zu", arg->id + 1);
    for (i = 0; i < N_CALLS; i++) {
        if (hatebm_check_finite(NULL, arg->id + 1, NULL) != HATEBM_NULL_PARAMETER) {
            arg->failures++;
        }
        /* Another thread's failure never shows up here. */
        if (strstr(hatebm_last_error_message(), want) == NULL) {
            arg->failures++;
        }
    }
    return NULL;
}

int main(void) {
    pthread_t threads[N_THREADS];
    worker_arg args[N_THREADS];
    size_t t;
    int i, before;

    CHECK_STATUS(hatebm_log_set_level(77), HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "log level 77");

    CHECK_OK(hatebm_log_set(count_a, NULL));
    for (t = 0; t < N_THREADS; t++) {
        args[t].id = t;
        args[t].failures = 0;
        CHECK(pthread_create(&threads[t], NULL, worker, &args[t]) == 0);
    }
    /* Swap callbacks while the workers log. */
    for (i = 0; i < 100; i++) {
        CHECK_OK(hatebm_log_set(i % 2 ? count_a : count_b, NULL));
    }
    for (t = 0; t < N_THREADS; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
        CHECK(args[t].failures == 0);
    }

    /* The main thread's message survived the workers' failures. */
    CHECK_CONTAINS(hatebm_last_error_message(), "log level 77");

    /* After removal, no callback runs, even with more failures. */
    CHECK_OK(hatebm_log_set(NULL, NULL));
    atomic_store(&removed, 1);
    before = atomic_load(&calls_a) + atomic_load(&calls_b);
    CHECK(before <= N_THREADS * N_CALLS);
    for (i = 0; i < 50; i++) {
        CHECK_STATUS(hatebm_check_finite(NULL, 1, NULL), HATEBM_NULL_PARAMETER);
    }
    CHECK(atomic_load(&calls_a) + atomic_load(&calls_b) == before);
    CHECK(atomic_load(&calls_after_removal) == 0);

    return check_summary("threads");
}
