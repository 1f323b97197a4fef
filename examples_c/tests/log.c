/*
 * The log bridge: records reach the C callback with the right level, target,
 * message and user_data; levels filter; removal stops delivery; a callback may
 * call into the library (and is not re-entered), but cannot replace itself.
 */
#include <math.h>
#include <string.h>

#include "check.h"

#define MAX_RECORDS 64

typedef struct {
    int count;
    int levels[MAX_RECORDS];
    char messages[MAX_RECORDS][256];
    char targets[MAX_RECORDS][64];
    int nested_set_status;
} log_ctx;

static void on_log(int level, const char *target, const char *message, void *user_data) {
    log_ctx *ctx = (log_ctx *)user_data;
    if (ctx->count < MAX_RECORDS) {
        ctx->levels[ctx->count] = level;
        strncpy(ctx->messages[ctx->count], message, sizeof ctx->messages[0] - 1);
        strncpy(ctx->targets[ctx->count], target, sizeof ctx->targets[0] - 1);
    }
    ctx->count++;
    /* Calling into the library from the callback: a failing call is fine (its
       own record is dropped, not delivered recursively) ... */
    (void)hatebm_check_finite(NULL, 1, NULL);
    /* ... but replacing the callback from inside it is refused. */
    ctx->nested_set_status = (int)hatebm_log_set(NULL, NULL);
}

static void on_log_count_only(int level, const char *target, const char *message,
                              void *user_data) {
    (void)level;
    (void)target;
    (void)message;
    ++*(int *)user_data;
}

int main(void) {
    static log_ctx ctx; /* zeroed */
    int other = 0;
    float bad[2] = {1.0f, HUGE_VALF}; /* +inf */

    CHECK_OK(hatebm_log_set(on_log, &ctx));

    /* Default level is WARN: a caller mistake (NULL) is delivered, a plain
       numeric failure (DEBUG) is not. */
    CHECK_STATUS(hatebm_check_finite(NULL, 2, NULL), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_check_finite(bad, 2, NULL), HATEBM_NUMERIC);
    CHECK(ctx.count == 1);
    CHECK(ctx.levels[0] == HATEBM_LOG_LEVEL_WARN);
    CHECK_STREQ(ctx.targets[0], "hatebm::ffi");
    CHECK_CONTAINS(ctx.messages[0], "hatebm_check_finite: argument `data` is NULL");
    CHECK_CONTAINS(ctx.messages[0], "(HATEBM_NULL_PARAMETER)");
    CHECK(ctx.nested_set_status == HATEBM_INVALID_ARGUMENT);

    /* DEBUG delivers every failure. */
    CHECK_OK(hatebm_log_set_level(HATEBM_LOG_LEVEL_DEBUG));
    CHECK_STATUS(hatebm_check_finite(bad, 2, NULL), HATEBM_NUMERIC);
    CHECK(ctx.count == 2);
    CHECK(ctx.levels[1] == HATEBM_LOG_LEVEL_DEBUG);
    CHECK_CONTAINS(ctx.messages[1], "non-finite value in data[1] = inf");

    /* Panics are logged at ERROR. */
    CHECK_OK(hatebm_log_set_level(HATEBM_LOG_LEVEL_ERROR));
    CHECK_STATUS(hatebm_check_finite(NULL, 2, NULL), HATEBM_NULL_PARAMETER); /* filtered */
    CHECK_STATUS(hatebm_test_panic(0), HATEBM_PANIC);
    CHECK(ctx.count == 3);
    CHECK(ctx.levels[2] == HATEBM_LOG_LEVEL_ERROR);
    CHECK_CONTAINS(ctx.messages[2], "test panic (literal)");

    /* Replacing the callback: the new one gets records, the old one none. */
    CHECK_OK(hatebm_log_set_level(HATEBM_LOG_LEVEL_TRACE));
    CHECK_OK(hatebm_log_set(on_log_count_only, &other));
    CHECK_STATUS(hatebm_check_finite(NULL, 2, NULL), HATEBM_NULL_PARAMETER);
    CHECK(other == 1 && ctx.count == 3);

    /* OFF silences; removal stops delivery for good. */
    CHECK_OK(hatebm_log_set_level(HATEBM_LOG_LEVEL_OFF));
    CHECK_STATUS(hatebm_check_finite(NULL, 2, NULL), HATEBM_NULL_PARAMETER);
    CHECK(other == 1);
    CHECK_OK(hatebm_log_set_level(HATEBM_LOG_LEVEL_TRACE));
    CHECK_OK(hatebm_log_set(NULL, NULL));
    CHECK_STATUS(hatebm_check_finite(NULL, 2, NULL), HATEBM_NULL_PARAMETER);
    CHECK(other == 1 && ctx.count == 3);

    return check_summary("log");
}
