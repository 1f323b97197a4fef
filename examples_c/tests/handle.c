/*
 * Handle lifecycle, buffers and callbacks (the patterns every real handle
 * follows), run under ASan and Valgrind for leaks and bad accesses.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef struct {
    size_t calls;
    size_t cancel_at; /* return false at this step */
    size_t last_step;
} step_ctx;

static bool on_step(size_t step, void *user_data) {
    step_ctx *ctx = (step_ctx *)user_data;
    ctx->calls++;
    ctx->last_step = step;
    return step != ctx->cancel_at;
}

static void test_lifecycle(void) {
    int i;
    for (i = 0; i < 100; i++) {
        hatebm_test_handle *h = NULL;
        float v = (float)i;
        CHECK_OK(hatebm_test_handle_new("cycle", &h));
        CHECK_OK(hatebm_test_handle_push(h, &v, 1));
        hatebm_test_handle_free(h);
    }
}

static void test_buffers(void) {
    hatebm_test_handle *h = NULL;
    float in[1000];
    float *out;
    size_t i, n = 0;
    double sum = 0.0;

    for (i = 0; i < 1000; i++) {
        in[i] = (float)i * 0.5f;
    }
    CHECK_OK(hatebm_test_handle_new("buffers", &h));
    CHECK_OK(hatebm_test_handle_push(h, in, 1000));
    CHECK_OK(hatebm_test_handle_push(h, in, 10));

    /* The size-query / allocate / copy idiom. */
    CHECK_STATUS(hatebm_test_handle_values(h, NULL, 0, &n), HATEBM_INSUFFICIENT_SIZE);
    CHECK(n == 1010);
    out = (float *)malloc(n * sizeof *out);
    CHECK(out != NULL);
    if (out != NULL) {
        CHECK_OK(hatebm_test_handle_values(h, out, n, &n));
        CHECK(n == 1010);
        CHECK(memcmp(out, in, 1000 * sizeof *out) == 0);
        CHECK(memcmp(out + 1000, in, 10 * sizeof *out) == 0);
        free(out);
    }
    CHECK_OK(hatebm_test_handle_sum(h, &sum));
    CHECK(sum == 0.5 * (999.0 * 1000.0 / 2.0) + 0.5 * 45.0);
    hatebm_test_handle_free(h);
}

static void test_callbacks(void) {
    hatebm_test_handle *h = NULL;
    step_ctx ctx = {0, (size_t)-1, 0};
    size_t steps = 12345, n = 0;
    float vals[8];

    CHECK_OK(hatebm_test_handle_new("callbacks", &h));

    /* Runs to completion; user_data comes back unchanged. */
    CHECK_OK(hatebm_test_handle_run(h, 5, on_step, &ctx, &steps));
    CHECK(steps == 5 && ctx.calls == 5 && ctx.last_step == 4);

    /* Returning false cancels: HATEBM_CANCELLED, out-param untouched. */
    ctx.calls = 0;
    ctx.cancel_at = 2;
    steps = 12345;
    CHECK_STATUS(hatebm_test_handle_run(h, 5, on_step, &ctx, &steps), HATEBM_CANCELLED);
    CHECK(steps == 12345);
    CHECK(ctx.calls == 3);
    CHECK_CONTAINS(hatebm_last_error_message(), "cancelled");

    /* The handle keeps the steps done before the cancel: 0..4 then 0..2. */
    CHECK_OK(hatebm_test_handle_values(h, vals, 8, &n));
    CHECK(n == 8 && vals[4] == 4.0f && vals[5] == 0.0f && vals[7] == 2.0f);

    /* Zero steps: no callback, success. */
    ctx.calls = 0;
    CHECK_OK(hatebm_test_handle_run(h, 0, on_step, &ctx, &steps));
    CHECK(steps == 0 && ctx.calls == 0);

    hatebm_test_handle_free(h);
}

int main(void) {
    test_lifecycle();
    test_buffers();
    test_callbacks();
    return check_summary("handle");
}
