/*
 * Misuse of the C ABI: NULL everywhere a pointer is taken, unknown status
 * values, too-small copy-out buffers, invalid UTF-8, non-finite data. Every
 * misuse must come back as a status (never a crash), set a message, and leave
 * out-params untouched.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char *const STATUS_NAMES[] = {
    "HATEBM_OK",           "HATEBM_NULL_PARAMETER",      "HATEBM_INVALID_ARGUMENT",
    "HATEBM_BACKEND_UNAVAILABLE", "HATEBM_DEVICE_UNAVAILABLE", "HATEBM_SHAPE_MISMATCH",
    "HATEBM_NUMERIC",      "HATEBM_IO",                  "HATEBM_FORMAT",
    "HATEBM_INSUFFICIENT_SIZE", "HATEBM_PANIC",          "HATEBM_CONFIG",
    "HATEBM_PARAM",        "HATEBM_CALLBACK",            "HATEBM_CANCELLED",
    "HATEBM_DIVERGED",     "HATEBM_BACKEND_ERROR",       "HATEBM_INVALID_UTF8",
    "HATEBM_INTERNAL",     "HATEBM_MISUSE",      "HATEBM_DISTRIBUTED",
};
#define N_STATUS ((int)(sizeof STATUS_NAMES / sizeof STATUS_NAMES[0]))

static void test_status_strings(void) {
    int i;
    const int unknown[] = {-1, N_STATUS, N_STATUS + 1, 1000, INT_MAX, INT_MIN};
    for (i = 0; i < N_STATUS; i++) {
        CHECK_STREQ(hatebm_status_str(i), STATUS_NAMES[i]);
    }
    /* Values are ABI: spot-check the enumerators against their numbers. */
    CHECK(HATEBM_OK == 0 && HATEBM_NULL_PARAMETER == 1 && HATEBM_INSUFFICIENT_SIZE == 9);
    CHECK(HATEBM_PANIC == 10 && HATEBM_INVALID_UTF8 == 17 && HATEBM_INTERNAL == 18);
    CHECK(HATEBM_MISUSE == 19 && HATEBM_DISTRIBUTED == 20);
    for (i = 0; i < (int)(sizeof unknown / sizeof unknown[0]); i++) {
        CHECK_STREQ(hatebm_status_str(unknown[i]), "unknown status");
    }
}

static void test_versions(void) {
    CHECK_STREQ(hatebm_version(), HATEBM_VERSION_STRING);
    CHECK(hatebm_abi_version() == HATEBM_ABI_VERSION);
    CHECK(HATEBM_ABI_VERSION ==
          HATEBM_VERSION_MAJOR * 10000 + HATEBM_VERSION_MINOR * 100 + HATEBM_VERSION_PATCH);
}

static void test_last_error_basics(void) {
    /* Nothing failed yet on this thread. */
    CHECK(hatebm_last_error_message() != NULL);
    CHECK_STREQ(hatebm_last_error_message(), "");

    CHECK_STATUS(hatebm_check_finite(NULL, 3, NULL), HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "hatebm_check_finite");
    CHECK_CONTAINS(hatebm_last_error_message(), "`data`");

    /* Success does not clear it; hatebm_status_str does not touch it. */
    CHECK_OK(hatebm_check_finite(NULL, 0, NULL));
    (void)hatebm_status_str(3);
    CHECK_CONTAINS(hatebm_last_error_message(), "`data`");

    hatebm_last_error_clear();
    CHECK_STREQ(hatebm_last_error_message(), "");
}

static void test_last_error_copy(void) {
    char buf[256];
    char small[8];
    size_t n = 12345, needed, len;
    const char *msg;

    CHECK_STATUS(hatebm_log_set_level(99), HATEBM_INVALID_ARGUMENT);
    msg = hatebm_last_error_message();
    needed = strlen(msg) + 1;
    CHECK(needed > sizeof small);

    /* Size query. */
    CHECK_STATUS(hatebm_last_error_copy(NULL, 0, &n), HATEBM_INSUFFICIENT_SIZE);
    CHECK(n == needed);

    /* Every too-small length: nothing written, size reported. */
    for (len = 0; len < needed && len <= sizeof buf; len++) {
        memset(buf, 'Z', sizeof buf);
        n = 0;
        CHECK_STATUS(hatebm_last_error_copy(buf, len, &n), HATEBM_INSUFFICIENT_SIZE);
        CHECK(n == needed);
        CHECK(buf[0] == 'Z' && buf[sizeof buf - 1] == 'Z');
        if (len > 0) {
            CHECK(memchr(buf, 'Z', len) == buf && buf[len - 1] == 'Z');
        }
    }

    /* Exact and larger buffers. */
    memset(buf, 'Z', sizeof buf);
    CHECK_OK(hatebm_last_error_copy(buf, needed, &n));
    CHECK(n == needed);
    CHECK_STREQ(buf, hatebm_last_error_message());
    CHECK(buf[needed] == 'Z');
    CHECK_OK(hatebm_last_error_copy(buf, sizeof buf, &n));
    CHECK(n == needed);

    /* Its own misuse fails without replacing the message. */
    CHECK_STATUS(hatebm_last_error_copy(buf, sizeof buf, NULL), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_last_error_copy(NULL, 5, &n), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_last_error_copy(NULL, 0, NULL), HATEBM_NULL_PARAMETER);
    CHECK_STREQ(hatebm_last_error_message(), buf);

    /* Empty message: one byte (the NUL). */
    hatebm_last_error_clear();
    CHECK_STATUS(hatebm_last_error_copy(NULL, 0, &n), HATEBM_INSUFFICIENT_SIZE);
    CHECK(n == 1);
    CHECK_OK(hatebm_last_error_copy(small, 1, &n));
    CHECK(small[0] == '\0');
}

static void test_check_finite(void) {
    float data[5] = {0.0f, 1.0f, 2.0f, 3.0f, 4.0f};
    size_t bad = 777;

    CHECK_OK(hatebm_check_finite(data, 5, &bad));
    CHECK(bad == 5);
    CHECK_OK(hatebm_check_finite(data, 5, NULL));

    data[3] = NAN;
    bad = 777;
    CHECK_STATUS(hatebm_check_finite(data, 5, &bad), HATEBM_NUMERIC);
    CHECK(bad == 3);
    CHECK_CONTAINS(hatebm_last_error_message(), "data[3] = NaN");

    data[1] = -INFINITY;
    CHECK_STATUS(hatebm_check_finite(data, 5, &bad), HATEBM_NUMERIC);
    CHECK(bad == 1);
    CHECK_CONTAINS(hatebm_last_error_message(), "-inf");

    /* NULL data with a length: nothing written to the diagnostic either. */
    bad = 777;
    CHECK_STATUS(hatebm_check_finite(NULL, 5, &bad), HATEBM_NULL_PARAMETER);
    CHECK(bad == 777);
    CHECK_OK(hatebm_check_finite(NULL, 0, &bad));
    CHECK(bad == 0);

    /* A misaligned float pointer is rejected, not dereferenced. */
    {
        float storage[4] = {0};
        const float *misaligned = (const float *)(const void *)((const char *)storage + 1);
        CHECK_STATUS(hatebm_check_finite(misaligned, 2, NULL), HATEBM_INVALID_ARGUMENT);
        CHECK_CONTAINS(hatebm_last_error_message(), "misaligned");
    }

    /* A length no buffer can have. */
    CHECK_STATUS(hatebm_check_finite(data, SIZE_MAX / 2, NULL), HATEBM_INVALID_ARGUMENT);
}

static void test_handle_nulls(void) {
    hatebm_test_handle *const sentinel = (hatebm_test_handle *)(uintptr_t)0x10;
    hatebm_test_handle *h = sentinel;
    float data[2] = {1.0f, 2.0f};
    float fbuf[2] = {-1.0f, -1.0f};
    char cbuf[16];
    size_t n = 999;
    double sum = -1.0;

    /* Constructor: NULL label, NULL out; *out untouched on failure. */
    CHECK_STATUS(hatebm_test_handle_new(NULL, &h), HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "`label`");
    CHECK(h == sentinel);
    CHECK_STATUS(hatebm_test_handle_new("x", NULL), HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "`out`");
    CHECK_STATUS(hatebm_test_handle_new(NULL, NULL), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_test_handle_new("", &h), HATEBM_INVALID_ARGUMENT);
    CHECK(h == sentinel);

    /* free(NULL) is a no-op. */
    hatebm_test_handle_free(NULL);

    h = NULL;
    CHECK_OK(hatebm_test_handle_new("misuse", &h));
    CHECK(h != NULL);

    /* NULL handle everywhere. */
    CHECK_STATUS(hatebm_test_handle_label(NULL, cbuf, sizeof cbuf, &n), HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "`handle`");
    CHECK_STATUS(hatebm_test_handle_push(NULL, data, 2), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_test_handle_values(NULL, fbuf, 2, &n), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_test_handle_sum(NULL, &sum), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_test_handle_run(NULL, 3, NULL, NULL, &n), HATEBM_NULL_PARAMETER);
    CHECK(n == 999 && sum == -1.0);

    /* NULL buffers and out-params. */
    CHECK_STATUS(hatebm_test_handle_label(h, NULL, 4, &n), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_test_handle_label(h, cbuf, sizeof cbuf, NULL), HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "`out_n`");
    CHECK_STATUS(hatebm_test_handle_push(h, NULL, 2), HATEBM_NULL_PARAMETER);
    CHECK_OK(hatebm_test_handle_push(h, NULL, 0));
    CHECK_STATUS(hatebm_test_handle_values(h, NULL, 2, &n), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_test_handle_sum(h, NULL), HATEBM_NULL_PARAMETER);
    /* out_steps is checked before any work: no step runs. */
    CHECK_STATUS(hatebm_test_handle_run(h, 3, NULL, NULL, NULL), HATEBM_NULL_PARAMETER);
    CHECK_OK(hatebm_test_handle_values(h, NULL, 0, &n));
    CHECK(n == 0);
    /* A NULL callback is allowed (optional). */
    CHECK_OK(hatebm_test_handle_run(h, 2, NULL, NULL, &n));
    CHECK(n == 2);

    /* Too-small copy-out buffers: untouched, size reported. */
    CHECK_STATUS(hatebm_test_handle_values(h, fbuf, 1, &n), HATEBM_INSUFFICIENT_SIZE);
    CHECK(n == 2 && fbuf[0] == -1.0f);
    CHECK_OK(hatebm_test_handle_values(h, fbuf, 2, &n));
    CHECK(n == 2 && fbuf[0] == 0.0f && fbuf[1] == 1.0f);
    memset(cbuf, 'Z', sizeof cbuf);
    CHECK_STATUS(hatebm_test_handle_label(h, cbuf, 6, &n), HATEBM_INSUFFICIENT_SIZE);
    CHECK(n == 7 && cbuf[0] == 'Z');
    CHECK_OK(hatebm_test_handle_label(h, cbuf, 7, &n));
    CHECK_STREQ(cbuf, "misuse");

    /* Non-finite data is rejected whole. */
    data[1] = NAN;
    CHECK_STATUS(hatebm_test_handle_push(h, data, 2), HATEBM_NUMERIC);
    CHECK_CONTAINS(hatebm_last_error_message(), "hatebm_test_handle_push");
    CHECK_STATUS(hatebm_test_handle_values(h, NULL, 0, &n), HATEBM_INSUFFICIENT_SIZE);
    CHECK(n == 2); /* still the two values from the run */

    hatebm_test_handle_free(h);
}

static void test_invalid_utf8(void) {
    /* Each is invalid UTF-8: lone continuation, bad lead, overlong, surrogate,
       truncated sequence, byte 0xFF. */
    static const char *const bad[] = {
        "\x80", "\xC3\x28", "\xC0\xAF", "\xED\xA0\x80", "abc\xE2\x82", "ok\xFF",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hatebm_test_handle *h = NULL;
        CHECK_STATUS(hatebm_test_handle_new(bad[i], &h), HATEBM_INVALID_UTF8);
        CHECK(h == NULL);
        CHECK_CONTAINS(hatebm_last_error_message(), "not valid UTF-8");
    }
    {
        /* Valid multi-byte UTF-8 round-trips. */
        hatebm_test_handle *h = NULL;
        char buf[32];
        size_t n = 0;
        const char *label = "h\xC3\xA9llo \xE2\x9C\x93";
        CHECK_OK(hatebm_test_handle_new(label, &h));
        CHECK_OK(hatebm_test_handle_label(h, buf, sizeof buf, &n));
        CHECK_STREQ(buf, label);
        CHECK(n == strlen(label) + 1);
        hatebm_test_handle_free(h);
    }
}

static void test_log_misuse(void) {
    CHECK_STATUS(hatebm_log_set_level(-1), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_log_set_level(6), HATEBM_INVALID_ARGUMENT);
    CHECK_OK(hatebm_log_set(NULL, NULL)); /* removing when none is set */
    CHECK_OK(hatebm_log_set_level(HATEBM_LOG_LEVEL_OFF));
}

int main(void) {
    test_last_error_basics(); /* first: relies on a fresh thread */
    test_status_strings();
    test_versions();
    test_last_error_copy();
    test_check_finite();
    test_handle_nulls();
    test_invalid_utf8();
    test_log_misuse();
    return check_summary("misuse");
}
